/*
 * Reference renders for the Pd external's test (tests/pd/test_pd.py), through the public C
 * API only. Reads a score of events at absolute host frames and writes, as raw float32:
 *
 *   out_synth:   ngs_synth driven directly, blocks of `block` frames, each event at its
 *                frame (what ngs~ must produce from the same messages);
 *   out_offline: (host rate = model rate only) the offline processes, each placed at its
 *                event frame + ngs_synth_latency(): one-shots from ngs_sample (one-shot
 *                `sequence` of `seed`) and paths from ngs_path_generate + ngs_decode.
 *
 * Score lines (sorted by frame):
 *   model <file> | rate <hz> | block <n> | frames <n> | voices <n> | input <raw f32 file>
 *   out_synth <file> | out_offline <file>
 *   oneshot <frame> <class> <gain> <seed> <sequence> <temperature>
 *   path <frame> <kind> <grains> <seed> <sequence>
 *   resynth <frame> <seed> <sequence>        (starts the resynth voice)
 *   resynth_stop <frame>
 *   reopen <frame> <file>   (ngs~'s `open` during DSP: a new synth on the model `file`
 *                            renders from the block holding `frame` on, the old one
 *                            fades its voices out (STOP_ALL) and is mixed in; one per
 *                            score)
 * Prints "latency <frames>" on success; exit status 1 with a message on any error.
 */
#include <ngs/ngs.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENTS 1024

typedef struct item {
    long frame;
    ngs_synth_event ev;
    int is_oneshot, is_path, is_reopen;
} item;

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "reference: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static int write_raw(const char *path, const float *x, long n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(x, sizeof(float), (size_t)n, f);
    return fclose(f) == 0 && w == (size_t)n;
}

int main(int argc, char **argv)
{
    if (argc != 2) return fail("usage: ngs_pd_reference <score file>", NULL);
    FILE *f = fopen(argv[1], "r");
    if (!f) return fail("cannot open the score", argv[1]);

    char reopen_path[4096] = "", model_path[4096] = "", input_path[4096] = "", out_synth[4096] = "",
         out_offline[4096] = "";
    int rate = 0, block = 64, voices = 16;
    long frames = 0;
    static item items[MAX_EVENTS];
    int n_items = 0;
    int32_t resynth_voice = 0, next_voice = 1;
    char line[8192], key[64];
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%63s", key) != 1 || key[0] == '#') continue;
        char *rest = line + strlen(key);
        while (*rest == ' ') rest++;
        rest[strcspn(rest, "\r\n")] = 0;
        if (n_items >= MAX_EVENTS) return fail("too many events", NULL);
        item *it = &items[n_items];
        memset(it, 0, sizeof(*it));
        if (!strcmp(key, "reopen")) {
            int off = 0;
            if (sscanf(rest, "%ld %n", &it->frame, &off) != 1 || !off)
                return fail("bad reopen line", rest);
            snprintf(reopen_path, sizeof(reopen_path), "%s", rest + off);
            it->is_reopen = 1;
            n_items++;
        } else if (!strcmp(key, "model")) snprintf(model_path, sizeof(model_path), "%s", rest);
        else if (!strcmp(key, "input")) snprintf(input_path, sizeof(input_path), "%s", rest);
        else if (!strcmp(key, "out_synth")) snprintf(out_synth, sizeof(out_synth), "%s", rest);
        else if (!strcmp(key, "out_offline")) snprintf(out_offline, sizeof(out_offline), "%s", rest);
        else if (!strcmp(key, "rate")) rate = atoi(rest);
        else if (!strcmp(key, "block")) block = atoi(rest);
        else if (!strcmp(key, "voices")) voices = atoi(rest);
        else if (!strcmp(key, "frames")) frames = atol(rest);
        else if (!strcmp(key, "oneshot")) {
            unsigned long long seed;
            unsigned seq;
            it->ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
            it->ev.kind = NGS_SYNTH_VOICE_ONE_SHOT;
            if (sscanf(rest, "%ld %d %f %llu %u %f", &it->frame, &it->ev.class_index,
                       &it->ev.gain, &seed, &seq, &it->ev.temperature) != 6)
                return fail("bad oneshot line", rest);
            it->ev.seed = seed;
            it->ev.sequence = seq;
            it->ev.voice = next_voice++;
            it->is_oneshot = 1;
            n_items++;
        } else if (!strcmp(key, "path")) {
            unsigned long long seed;
            unsigned seq;
            int kind;
            it->ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
            it->ev.kind = NGS_SYNTH_VOICE_FREE;
            it->ev.use_path = 1;
            it->ev.path = ngs_path_default_params();
            if (sscanf(rest, "%ld %d %d %llu %u", &it->frame, &kind, &it->ev.path_grains, &seed,
                       &seq) != 5)
                return fail("bad path line", rest);
            it->ev.path.kind = (ngs_path_kind)kind;
            it->ev.seed = it->ev.path.seed = seed;
            it->ev.sequence = it->ev.path.sequence = seq;
            it->ev.voice = next_voice++;
            it->is_path = 1;
            n_items++;
        } else if (!strcmp(key, "resynth")) {
            unsigned long long seed;
            unsigned seq;
            it->ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
            it->ev.kind = NGS_SYNTH_VOICE_RESYNTH;
            if (sscanf(rest, "%ld %llu %u", &it->frame, &seed, &seq) != 3)
                return fail("bad resynth line", rest);
            it->ev.seed = seed;
            it->ev.sequence = seq;
            it->ev.voice = resynth_voice = next_voice++;
            n_items++;
        } else if (!strcmp(key, "resynth_stop")) {
            it->ev = ngs_synth_default_event(NGS_SYNTH_EVENT_STOP);
            if (sscanf(rest, "%ld", &it->frame) != 1) return fail("bad resynth_stop line", rest);
            it->ev.voice = resynth_voice;
            n_items++;
        } else {
            return fail("unknown score line", line);
        }
    }
    fclose(f);
    if (!model_path[0] || !out_synth[0] || frames <= 0 || block <= 0)
        return fail("the score needs model, out_synth, frames and block", NULL);
    for (int i = 1; i < n_items; i++)
        if (items[i].frame < items[i - 1].frame) return fail("events out of order", NULL);

    ngs_model_params mp = ngs_model_default_params();
    mp.backend = NGS_BACKEND_CPU;
    ngs_model *model = NULL;
    if (ngs_model_init_from_file(model_path, mp, &model) != NGS_STATUS_OK)
        return fail("model", ngs_last_error());
    ngs_model_info info;
    ngs_model_get_info(model, &info);

    float *in = NULL;
    if (input_path[0]) {
        in = (float *)calloc((size_t)frames, sizeof(float));
        FILE *fi = fopen(input_path, "rb");
        if (!in || !fi) return fail("cannot read the input", input_path);
        size_t got = fread(in, sizeof(float), (size_t)frames, fi);
        (void)got; /* a shorter input is padded with silence */
        fclose(fi);
    }

    /* ngs_synth, directly. */
    ngs_synth_params sp = ngs_synth_default_params();
    sp.sample_rate = rate;
    sp.max_block = block;
    sp.max_voices = voices;
    ngs_synth *synth = NULL;
    if (ngs_synth_init(model, sp, &synth) != NGS_STATUS_OK) return fail("synth", ngs_last_error());
    int latency = ngs_synth_latency(synth);
    float *out = (float *)malloc(sizeof(float) * (size_t)frames);
    static ngs_synth_event evs[MAX_EVENTS];
    if (!out) return fail("out of memory", NULL);
    for (long i = 0; i < frames; i++) out[i] = NAN; /* poisoned: process must write it all */
    int next = 0;
    ngs_model *model2 = NULL;
    ngs_synth *old = NULL; /* the synth a reopen replaced */
    for (long start = 0; start < frames; start += block) {
        int n = (int)(frames - start < block ? frames - start : block);
        int k = 0;
        if (next < n_items && items[next].is_reopen && items[next].frame < start + n) {
            /* the old synth fades its voices out (STOP_ALL, default fade) and plays on */
            ngs_synth_event stop = ngs_synth_default_event(NGS_SYNTH_EVENT_STOP_ALL);
            old = synth;
            if (ngs_synth_post(old, &stop) != NGS_STATUS_OK) return fail("post", ngs_last_error());
            if (ngs_model_init_from_file(reopen_path, mp, &model2) != NGS_STATUS_OK)
                return fail("model", ngs_last_error());
            if (ngs_synth_init(model2, sp, &synth) != NGS_STATUS_OK)
                return fail("synth", ngs_last_error());
            next++;
        }
        while (next < n_items && items[next].frame < start + n) {
            if (items[next].is_reopen) return fail("reopen must be the first event of its block", NULL);
            evs[k] = items[next].ev;
            evs[k].frame = (uint32_t)(items[next].frame - start);
            k++, next++;
        }
        if (ngs_synth_process(synth, evs, k, in ? in + start : NULL, out + start, n) !=
            NGS_STATUS_OK)
            return fail("process", ngs_last_error());
        if (old) {
            float tail[8192];
            if (n > 8192 || ngs_synth_process(old, NULL, 0, in ? in + start : NULL, tail, n) !=
                                NGS_STATUS_OK)
                return fail("process (old synth)", ngs_last_error());
            for (int i = 0; i < n; i++) out[start + i] += tail[i];
        }
    }
    ngs_synth_stats st;
    ngs_synth_get_stats(synth, &st);
    if (st.events_dropped) return fail("the synth dropped events of the score", NULL);
    if (model2 && out_offline[0]) return fail("out_offline cannot follow a reopen", NULL);
    if (!write_raw(out_synth, out, frames)) return fail("cannot write", out_synth);

    /* The offline processes. */
    if (out_offline[0]) {
        if (rate != info.sample_rate) return fail("out_offline needs rate = the model's rate", NULL);
        ngs_context_params cp = ngs_context_default_params();
        ngs_context *ctx = NULL;
        if (ngs_context_init(model, cp, &ctx) != NGS_STATUS_OK)
            return fail("context", ngs_last_error());
        int max_grains = 8 * info.n_grains;
        size_t cap = ngs_model_audio_length(model, max_grains);
        size_t zcap = (size_t)max_grains * (size_t)info.z_dim;
        float *buf = (float *)malloc(sizeof(float) * (cap > 64 * info.sample_length ? cap : 64 * info.sample_length));
        float *z = (float *)malloc(sizeof(float) * zcap);
        float *mix = (float *)calloc((size_t)frames, sizeof(float));
        if (!buf || !z || !mix) return fail("out of memory", NULL);
        for (int i = 0; i < n_items; i++) {
            const ngs_synth_event *e = &items[i].ev;
            size_t len = 0;
            const float *src = buf;
            if (items[i].is_oneshot) {
                ngs_sample_params p = ngs_sample_default_params();
                p.class_index = e->class_index;
                p.temperature = e->temperature;
                p.seed = e->seed;
                p.count = (int)e->sequence + 1;
                if (p.count > 64) return fail("oneshot sequence too large for the reference", NULL);
                if (ngs_sample(ctx, p, buf, (size_t)p.count * info.sample_length) != NGS_STATUS_OK)
                    return fail("ngs_sample", ngs_last_error());
                src = buf + (size_t)e->sequence * info.sample_length;
                len = info.sample_length;
            } else if (items[i].is_path) {
                if (e->path_grains > max_grains) return fail("path too long for the reference", NULL);
                if (ngs_path_generate(model, e->path, e->path_grains, z) != NGS_STATUS_OK)
                    return fail("ngs_path_generate", ngs_last_error());
                ngs_decode_params dp = ngs_decode_default_params();
                dp.seed = e->seed;
                dp.sequence = e->sequence;
                len = ngs_model_audio_length(model, e->path_grains);
                if (ngs_decode(ctx, z, e->path_grains, dp, buf, len) != NGS_STATUS_OK)
                    return fail("ngs_decode", ngs_last_error());
            } else {
                return fail("out_offline: only one-shots and paths have an offline render", NULL);
            }
            long at = items[i].frame + latency;
            for (size_t j = 0; j < len && at + (long)j < frames; j++) mix[at + j] += e->gain * src[j];
        }
        if (!write_raw(out_offline, mix, frames)) return fail("cannot write", out_offline);
        free(buf), free(z), free(mix);
        ngs_context_free(ctx);
    }
    printf("latency %d\n", latency);
    ngs_synth_free(synth);
    ngs_synth_free(old);
    ngs_model_free(model2);
    ngs_model_free(model);
    free(out), free(in);
    return 0;
}
