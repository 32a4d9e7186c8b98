// Decoder synthesis stages (docs/MODEL_FORMAT.md "Decode stages") as free functions over
// raw arrays: the reference the CUDA backend compares its kernels to.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/philox.h"
#include "cpu/ops.h"
#include "cpu/synth_internal.h"

namespace ngs::cpu {

void synth_spectrum_from_logits(const float *x, int n, int F, float *S, float *scratch) {
  const Isa isa = isa_active();
  if (isa == Isa::kAvx512 && F >= 40) return spectrum_rows_avx512(x, n, F, S, scratch);
  if (isa == Isa::kAvx2 && F >= 24) return spectrum_rows_avx2(x, n, F, S, scratch);
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

void synth_ola_window(int g, int n_total, int l_grain, float *w) {
  const double pi = 3.14159265358979323846;
  const int half = l_grain / 2;
  for (int i = 0; i < l_grain; ++i) {
    float v = static_cast<float>(0.5 - 0.5 * std::cos(2.0 * pi * i / l_grain));
    if ((g == 0 && i < half) || (g == n_total - 1 && i >= half)) v = 1.0f;
    w[i] = v;
  }
}

void synth_noise(uint64_t seed, uint32_t sequence, int g, int l_grain, float *u) {
  int j0 = 0;
  const Isa isa = isa_active();
  if (isa == Isa::kAvx512) j0 = noise_avx512(seed, sequence, static_cast<uint32_t>(g), l_grain, u);
  else if (isa == Isa::kAvx2) j0 = noise_avx2(seed, sequence, static_cast<uint32_t>(g), l_grain, u);
  for (int j = j0; 4 * j < l_grain; ++j) {
    const Philox4 p = philox4x32_10(static_cast<uint32_t>(j), static_cast<uint32_t>(g), sequence,
                                    kDomainGrainNoise, seed);
    for (int i = 0; i < 4 && 4 * j + i < l_grain; ++i) u[4 * j + i] = philox_uniform_pm1(p.x[i]);
  }
}

void synth_grain(const RealFft &fft, const float *S, const float *u, const float *hann, int g,
                 int n_total, float *y, float *scratch) {
  const int l = fft.size(), half = l / 2;
  fft.filter(u, S, y, scratch);
  const int a0 = g == 0 ? half : 0;              // samples [0, a0) keep weight 1
  const int a1 = g == n_total - 1 ? half : l;    // samples [a1, l) keep weight 1
  for (int i = a0; i < a1; ++i) y[i] *= hann[i];
}

void synth_ola_divisor(int n, int hop, int l_grain, float *div) {
  const int per = l_grain / hop;
  const int len = (n + per - 1) * hop;
  for (int t = 0; t < len; ++t) {
    const int b = t / hop;
    div[t] = static_cast<float>(std::min(b, n - 1) - std::max(0, b - per + 1) + 1);
  }
}

void synth_overlap_add_blocks(const float *y, int n, int l_grain, int hop, bool normalize,
                              float *a, int b0, int b1) {
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

void synth_overlap_add(const float *y, int n, int l_grain, int hop, bool normalize, float *a) {
  synth_overlap_add_blocks(y, n, l_grain, hop, normalize, a, 0, n + l_grain / hop - 1);
}

void synth_fir_softsign_range(const float *a, int len, const float *fir, int taps, float bias,
                              float *out, int t0, int t1) {
  const Isa isa = isa_active();
  if (isa == Isa::kAvx512) return fir_softsign_avx512(a, len, fir, taps, bias, out, t0, t1);
  if (isa == Isa::kAvx2) return fir_softsign_avx2(a, len, fir, taps, bias, out, t0, t1);
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

void synth_fir_softsign(const float *a, int len, const float *fir, int taps, float bias,
                        float *out) {
  synth_fir_softsign_range(a, len, fir, taps, bias, out, 0, len);
}

}  // namespace ngs::cpu
