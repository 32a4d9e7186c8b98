// Internal to kernels/cpu: the plan of the lane-vectorised four-step complex FFT
// (fft_simd.inc) used by RealFft for n/2 >= 256 points.
#pragma once

#include <vector>

namespace ngs::cpu {

struct FourStepPlan {
  int R = 0, C = 0;                 // M = R * C, both powers of two >= 16
  std::vector<int> rev_r, rev_c;    // bit reversal of R and C
  std::vector<float> tw_r, tw_c;    // (cos, -sin)(2 pi j / R), j < R/2; same for C
  std::vector<float> tw2r, tw2i;    // [R][C]: exp(-2 pi i r c / M)
  std::vector<float> post_r, post_i;  // [M]: (cos, -sin)(2 pi k / n), n = 2M
};

// Real FFTs of n = 2M points entirely on the vector path (see fft.cpp for the contracts).
void rfft_forward_avx512(const FourStepPlan &p, const float *in, float *out, float *scratch);
void rfft_inverse_avx512(const FourStepPlan &p, const float *in, float *out, float *scratch);
void rfft_filter_avx512(const FourStepPlan &p, const float *u, const float *S, float *y,
                        float *scratch);
void rfft_forward_avx2(const FourStepPlan &p, const float *in, float *out, float *scratch);
void rfft_inverse_avx2(const FourStepPlan &p, const float *in, float *out, float *scratch);
void rfft_filter_avx2(const FourStepPlan &p, const float *u, const float *S, float *y,
                      float *scratch);

}  // namespace ngs::cpu
