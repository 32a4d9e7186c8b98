// AVX-512 (16 lanes) and AVX2 (8 lanes) builds of the four-step complex FFT.
#include <cstring>

#include "cpu/fft_internal.h"

namespace ngs::cpu {

#if defined(__x86_64__)

#define NGS_FFT_NS fft_avx512
#define NGS_FFT_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,fma")))
#define NGS_FFT_W 16
#include "cpu/fft_simd.inc"
#undef NGS_FFT_NS
#undef NGS_FFT_TARGET
#undef NGS_FFT_W

#define NGS_FFT_NS fft_avx2
#define NGS_FFT_TARGET __attribute__((target("avx2,fma")))
#define NGS_FFT_W 8
#include "cpu/fft_simd.inc"
#undef NGS_FFT_NS
#undef NGS_FFT_TARGET
#undef NGS_FFT_W

void fft4step_avx512(const FourStepPlan &p, float *zr, float *zi, float *xr, float *xi) {
  fft_avx512::fft4step(p, zr, zi, xr, xi);
}
void fft4step_avx2(const FourStepPlan &p, float *zr, float *zi, float *xr, float *xi) {
  fft_avx2::fft4step(p, zr, zi, xr, xi);
}

#else

void fft4step_avx512(const FourStepPlan &, float *, float *, float *, float *) {}
void fft4step_avx2(const FourStepPlan &, float *, float *, float *, float *) {}

#endif

}  // namespace ngs::cpu
