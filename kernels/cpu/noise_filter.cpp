// Decoder stage 2, noise_filter (docs/MODEL_SPEC.md §4.2): uniform noise of each grain,
// filtered by S through the real FFT, times the grain's OLA window. The reference the
// CUDA kernel is compared to.
#include <cmath>
#include <cstdint>

#include "common/philox.h"
#include "cpu/dispatch.h"
#include "cpu/ops.h"

namespace ngs::cpu {

void noise_filter_window(int g, int n_total, int l_grain, float *w) {
  const double pi = 3.14159265358979323846;
  const int half = l_grain / 2;
  for (int i = 0; i < l_grain; ++i) {
    float v = static_cast<float>(0.5 - 0.5 * std::cos(2.0 * pi * i / l_grain));
    if ((g == 0 && i < half) || (g == n_total - 1 && i >= half)) v = 1.0f;
    w[i] = v;
  }
}

void noise_filter_noise(uint64_t seed, uint32_t sequence, int g, int l_grain, float *u) {
  int j0 = 0;
  const KernelTable &kt = kernels();
  if (kt.noise_filter_noise)
    j0 = kt.noise_filter_noise(seed, sequence, static_cast<uint32_t>(g), l_grain, u);
  for (int j = j0; 4 * j < l_grain; ++j) {
    const Philox4 p = philox4x32_10(static_cast<uint32_t>(j), static_cast<uint32_t>(g), sequence,
                                    kDomainGrainNoise, seed);
    for (int i = 0; i < 4 && 4 * j + i < l_grain; ++i) u[4 * j + i] = philox_uniform_pm1(p.x[i]);
  }
}

void noise_filter_grain(const RealFft &fft, const float *S, const float *u, const float *hann,
                        int g, int n_total, float *y, float *scratch) {
  const int l = fft.size(), half = l / 2;
  fft.filter(u, S, y, scratch);
  const int a0 = g == 0 ? half : 0;              // samples [0, a0) keep weight 1
  const int a1 = g == n_total - 1 ? half : l;    // samples [a1, l) keep weight 1
  for (int i = a0; i < a1; ++i) y[i] *= hann[i];
}

}  // namespace ngs::cpu
