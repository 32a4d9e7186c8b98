// AVX-512 (16 lanes) and AVX2 (8 lanes) builds of the four-step complex FFT.
#include <cstdint>
#include <cstring>

#include "cpu/fft_internal.h"

namespace ngs::cpu {

#if defined(__x86_64__)

#define NGS_SIMD_NS fft_avx512
#define NGS_SIMD_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,fma")))
#define NGS_SIMD_W 16
#include "cpu/fft_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W

#define NGS_SIMD_NS fft_avx2
#define NGS_SIMD_TARGET __attribute__((target("avx2,fma")))
#define NGS_SIMD_W 8
#include "cpu/fft_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W

#define NGS_FFT_ENTRY(isa)                                                                  \
  void rfft_forward_##isa(const FourStepPlan &p, const float *in, float *out, float *s) {   \
    fft_##isa::real_forward(p, p.R * p.C, in, out, s);                                     \
  }                                                                                         \
  void rfft_inverse_##isa(const FourStepPlan &p, const float *in, float *out, float *s) {   \
    fft_##isa::real_inverse(p, p.R * p.C, in, out, s);                                     \
  }                                                                                         \
  void rfft_filter_##isa(const FourStepPlan &p, const float *u, const float *S, float *y,   \
                         float *s) {                                                        \
    fft_##isa::real_filter(p, p.R * p.C, u, S, y, s);                                      \
  }
NGS_FFT_ENTRY(avx512)
NGS_FFT_ENTRY(avx2)
#undef NGS_FFT_ENTRY

#else

void rfft_forward_avx512(const FourStepPlan &, const float *, float *, float *) {}
void rfft_inverse_avx512(const FourStepPlan &, const float *, float *, float *) {}
void rfft_filter_avx512(const FourStepPlan &, const float *, const float *, float *, float *) {}
void rfft_forward_avx2(const FourStepPlan &, const float *, float *, float *) {}
void rfft_inverse_avx2(const FourStepPlan &, const float *, float *, float *) {}
void rfft_filter_avx2(const FourStepPlan &, const float *, const float *, float *, float *) {}

#endif

}  // namespace ngs::cpu
