// AVX-512 and AVX2 builds of the encoder's convolution kernels (encoder_simd.inc) and of
// simd.inc's bf16 conversion (every table's bf16_convert). The bf16 GEMM tile itself is
// gemm_bf16_simd.cpp's (one for the MLP and the encoder). Function-level target
// attributes, selected at run time (dispatch.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu/encoder_conv.h"
#include "cpu/gemm_kernels.h"

namespace ngs::cpu {

#if defined(__x86_64__)

#define NGS_SIMD_NS enc_avx512
#define NGS_SIMD_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define NGS_SIMD_W 16
#define NGS_BF16_MR 12
#include "cpu/encoder_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W
#undef NGS_BF16_MR

#define NGS_SIMD_NS enc_avx2
#define NGS_SIMD_TARGET __attribute__((target("avx2,fma")))
#define NGS_SIMD_W 8
#define NGS_BF16_MR 6
#include "cpu/encoder_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W
#undef NGS_BF16_MR

void conv_bf16_kernel_avx512(const Bf16Tile &t) { enc_avx512::bf16_tile(t); }
// The bf16 conversion of every table (simd.inc; gemm_kernels.h).
void bf16_convert_avx512(const float *x, int n, uint16_t *p) { enc_avx512::bf16_convert_vec(x, n, p); }
void bf16_convert_avx2(const float *x, int n, uint16_t *p) { enc_avx2::bf16_convert_vec(x, n, p); }
void conv_bf16_kernel_avx2(const Bf16Tile &t) { enc_avx2::bf16_tile(t); }
void wino_input_avx512(const float *const *d, int n, bool lrelu, float *u, size_t ldu) {
  enc_avx512::wino_input(d, n, lrelu, u, ldu);
}
void wino_input_bf16_avx512(const float *const *d, int n, bool lrelu, uint16_t *u, size_t ldu) {
  enc_avx512::wino_input_bf16(d, n, lrelu, u, ldu);
}
void wino_input_bf16_avx2(const float *const *d, int n, bool lrelu, uint16_t *u, size_t ldu) {
  enc_avx2::wino_input_bf16(d, n, lrelu, u, ldu);
}
void wino_output_avx512(const float *m, size_t ldm, int n, const float *bias, bool lrelu,
                        float *const *y) {
  enc_avx512::wino_output(m, ldm, n, bias, lrelu, y);
}
void wino_input_avx2(const float *const *d, int n, bool lrelu, float *u, size_t ldu) {
  enc_avx2::wino_input(d, n, lrelu, u, ldu);
}
void wino_output_avx2(const float *m, size_t ldm, int n, const float *bias, bool lrelu,
                      float *const *y) {
  enc_avx2::wino_output(m, ldm, n, bias, lrelu, y);
}

#else  // not x86-64: never selected (isa_best_supported() is portable)

void conv_bf16_kernel_avx512(const Bf16Tile &) {}
void bf16_convert_avx512(const float *, int, uint16_t *) {}
void bf16_convert_avx2(const float *, int, uint16_t *) {}
void conv_bf16_kernel_avx2(const Bf16Tile &) {}
void wino_input_avx512(const float *const *, int, bool, float *, size_t) {}
void wino_output_avx512(const float *, size_t, int, const float *, bool, float *const *) {}
void wino_input_avx2(const float *const *, int, bool, float *, size_t) {}
void wino_input_bf16_avx512(const float *const *, int, bool, uint16_t *, size_t) {}
void wino_input_bf16_avx2(const float *const *, int, bool, uint16_t *, size_t) {}
void wino_output_avx2(const float *, size_t, int, const float *, bool, float *const *) {}

#endif

}  // namespace ngs::cpu
