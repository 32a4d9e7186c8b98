// Decoder stage 3, overlap_add (docs/MODEL_SPEC.md §4.2): grains overlap-added at hop
// (divided by the overlap count when the model normalises), then the post-processing FIR
// and softsign. The reference the CUDA kernel is compared to.
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "cpu/dispatch.h"
#include "cpu/ops.h"

namespace ngs::cpu {

void overlap_add_divisor(int n, int hop, int l_grain, float *div) {
  const int per = l_grain / hop;
  const int len = (n + per - 1) * hop;
  for (int t = 0; t < len; ++t) {
    const int b = t / hop;
    div[t] = static_cast<float>(std::min(b, n - 1) - std::max(0, b - per + 1) + 1);
  }
}

void overlap_add_blocks(const float *y, int n, int l_grain, int hop, bool normalize, float *a,
                        int b0, int b1) {
  const int per = l_grain / hop;
  for (int b = b0; b < b1; ++b) {
    // Block b (samples [b hop, (b + 1) hop)) is covered by grains b - per + 1 .. b.
    const int g0 = std::max(0, b - per + 1), g1 = std::min(b, n - 1);
    float *ab = a + static_cast<size_t>(b) * hop;
    std::fill(ab, ab + hop, 0.0f);
    for (int g = g0; g <= g1; ++g) {
      const float *src = y + static_cast<size_t>(g) * l_grain + static_cast<size_t>(b - g) * hop;
      for (int i = 0; i < hop; ++i) ab[i] += src[i];
    }
    const int cnt = g1 - g0 + 1;
    if (normalize && cnt > 1) {
      const float d = static_cast<float>(cnt);
      for (int i = 0; i < hop; ++i) ab[i] /= d;
    }
  }
}

void overlap_add(const float *y, int n, int l_grain, int hop, bool normalize, float *a) {
  overlap_add_blocks(y, n, l_grain, hop, normalize, a, 0, n + l_grain / hop - 1);
}

void overlap_add_fir_softsign_range(const float *a, int len, const float *fir, int taps,
                                    float bias, float *out, int t0, int t1) {
  const KernelTable &kt = kernels();
  if (kt.overlap_add_fir_softsign)
    return kt.overlap_add_fir_softsign(a, len, fir, taps, bias, out, t0, t1);
  const int c = taps / 2;
  std::fill(out + t0, out + t1, bias);
  for (int k = 0; k < taps; ++k) {
    const float w = fir[k];
    const int off = k - c;  // out[t] += w a[t + off], 0 <= t + off < len
    const int lo = std::max(t0, -off), hi = std::min(t1, len - off);
    const float *src = a + off;
    for (int t = lo; t < hi; ++t) out[t] += w * src[t];
  }
  for (int t = t0; t < t1; ++t) out[t] = out[t] / (1.0f + std::fabs(out[t]));
}

void overlap_add_fir_softsign(const float *a, int len, const float *fir, int taps, float bias,
                              float *out) {
  overlap_add_fir_softsign_range(a, len, fir, taps, bias, out, 0, len);
}

}  // namespace ngs::cpu
