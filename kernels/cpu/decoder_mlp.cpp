// Decoder stage 1, decoder_mlp (docs/MODEL_SPEC.md §4.2): the tail that turns the
// decoder MLP's logits into the real filter spectrum S. The MLP itself runs as batched
// GEMMs in the CPU session (backend.cpp). The reference the CUDA kernel is compared to.
#include <cmath>
#include <cstddef>

#include "cpu/dispatch.h"
#include "cpu/ops.h"

namespace ngs::cpu {

void decoder_mlp_spectrum(const float *x, int n, int F, float *S, float *scratch) {
  const KernelTable &kt = kernels();
  if (kt.decoder_mlp_spectrum && F >= kt.decoder_mlp_spectrum_min_f)
    return kt.decoder_mlp_spectrum(x, n, F, S, scratch);
  const float ln10 = 2.302585092994045684f;
  float *H = scratch;
  for (int r = 0; r < n; ++r) {
    const float *xr = x + static_cast<size_t>(r) * F;
    for (int k = 0; k < F; ++k) {
      const float s = 1.0f / (1.0f + std::exp(-xr[k]));
      H[k] = 2.0f * std::pow(s, ln10) + 1e-7f;
    }
    float *Sr = S + static_cast<size_t>(r) * F;
    for (int k = 0; k < F; ++k) {
      const float hm = k == 0 ? H[1] : H[k - 1];
      const float hp = k == F - 1 ? H[F - 2] : H[k + 1];
      const float v = 0.5f * H[k] + 0.25f * hm + 0.25f * hp;
      Sr[k] = (k & 1) ? -v : v;
    }
  }
}

}  // namespace ngs::cpu
