// Internal to engine/src/cpu: the plan of the lane-vectorised four-step complex FFT
// (fft_simd.inc) used by RealFft for n/2 >= 256 points.
#pragma once

#include <vector>

namespace ngs::cpu {

struct FourStepPlan {
  int R = 0, C = 0;                 // M = R * C, both powers of two >= 16
  std::vector<int> rev_r, rev_c;    // bit reversal of R and C
  std::vector<float> tw_r, tw_c;    // (cos, -sin)(2 pi j / R), j < R/2; same for C
  std::vector<float> tw2r, tw2i;    // [R][C]: exp(-2 pi i r c / M)
};

void fft4step_avx512(const FourStepPlan &p, float *zr, float *zi, float *xr, float *xi);
void fft4step_avx2(const FourStepPlan &p, float *zr, float *zi, float *xr, float *xi);

}  // namespace ngs::cpu
