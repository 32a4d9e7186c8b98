/* A C program built against the INSTALLED ngs library (pkg-config or find_package) to prove
   the public header and the packaging work from plain C. Usage: ngs_install_check MODEL
   Prints "ngs install check: ok" and exits 0 on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <ngs/ngs.h>

static int fail(const char *what, ngs_status s) {
    fprintf(stderr, "ngs install check: %s failed: %s: %s\n", what, ngs_status_string(s),
            ngs_last_error());
    return 1;
}

int main(int argc, char **argv) {
    ngs_model *model = NULL;
    ngs_context *ctx = NULL;
    ngs_model_info info;
    ngs_sample_params sp;
    ngs_status s;
    float *audio;
    size_t i;
    int cls;

    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    printf("ngs %s, model format %u\n", ngs_version(), (unsigned)ngs_model_format_version());
    s = ngs_model_init_from_file(argv[1], ngs_model_default_params(), &model);
    if (s != NGS_STATUS_OK) return fail("ngs_model_init_from_file", s);
    s = ngs_model_get_info(model, &info);
    if (s != NGS_STATUS_OK) return fail("ngs_model_get_info", s);
    s = ngs_context_init(model, ngs_context_default_params(), &ctx);
    if (s != NGS_STATUS_OK) return fail("ngs_context_init", s);

    audio = (float *)malloc(info.sample_length * sizeof(float));
    if (audio == NULL) return 1;
    for (i = 0; i < info.sample_length; ++i) audio[i] = NAN;
    sp = ngs_sample_default_params();
    cls = info.n_classes > 0 ? 0 : NGS_CLASS_NONE;
    sp.class_index = cls;
    sp.seed = 42;
    s = ngs_sample(ctx, sp, audio, info.sample_length);
    if (s != NGS_STATUS_OK) return fail("ngs_sample", s);
    for (i = 0; i < info.sample_length; ++i)
        if (!isfinite(audio[i]) || fabsf(audio[i]) >= 1.0f) {
            fprintf(stderr, "ngs install check: bad sample %g at %zu\n", audio[i], i);
            return 1;
        }
    /* An error path from C: a class out of range gives a status and a message. */
    sp.class_index = 1000;
    s = ngs_sample(ctx, sp, audio, info.sample_length);
    if (s != NGS_STATUS_INVALID_ARGUMENT || ngs_last_error()[0] == '\0') {
        fprintf(stderr, "ngs install check: expected INVALID_ARGUMENT, got %d\n", (int)s);
        return 1;
    }
    printf("%d Hz, %d grains, %zu samples per one-shot, backend %s\n", info.sample_rate,
           info.n_grains, info.sample_length, ngs_backend_name(info.backend));
    free(audio);
    ngs_context_free(ctx);
    ngs_model_free(model);
    printf("ngs install check: ok\n");
    return 0;
}
