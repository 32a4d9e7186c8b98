// libFuzzer target: ngs_model_init_from_buffer on arbitrary bytes (the model file parser:
// safetensors header, metadata, configuration JSON, tensor table and shapes). A refused
// input must come with an error message; an accepted one is queried (info, classes,
// metadata, lengths) and decodes two grains on the CPU backend. docs/FUZZING.md.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "ngs/ngs.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();  // a broken promise of the C API: reported as a crash
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = NGS_BACKEND_CPU;
  ngs_model *model = nullptr;
  if (ngs_model_init_from_buffer(data, size, mp, &model) != NGS_STATUS_OK) {
    const char *msg = ngs_last_error();
    require(model == nullptr && msg != nullptr && msg[0] != '\0');
    return 0;
  }
  ngs_model_info info;
  require(ngs_model_get_info(model, &info) == NGS_STATUS_OK);
  require(info.z_dim > 0 && info.hop_size > 0 && info.n_grains > 0);
  for (int i = 0; i < info.n_classes; ++i) {
    const char *name = ngs_model_class_name(model, i);
    require(name != nullptr && ngs_model_find_class(model, name) >= 0);
  }
  (void)ngs_model_metadata(model, "ngs.config");

  ngs_context_params cp = ngs_context_default_params();
  cp.max_grains = 4;
  cp.n_threads = 1;
  ngs_context *ctx = nullptr;
  if (ngs_context_init(model, cp, &ctx) == NGS_STATUS_OK) {
    const int n = 2;
    const size_t length = ngs_model_audio_length(model, n);
    require(length == size_t(n + 3) * size_t(info.hop_size));
    std::vector<float> z(size_t(n) * size_t(info.z_dim), 0.25f), audio(length);
    ngs_decode_params dp = ngs_decode_default_params();
    dp.seed = size;
    (void)ngs_decode(ctx, z.data(), n, dp, audio.data(), audio.size());
    ngs_context_free(ctx);
  }
  ngs_model_free(model);
  return 0;
}
