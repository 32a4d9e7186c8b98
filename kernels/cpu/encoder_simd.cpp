// AVX-512 and AVX2 builds of the encoder's convolution kernels (encoder_simd.inc), and the
// AVX-512 BF16 GEMM tile (vdpbf16ps: 32 bf16 products per instruction into 16 fp32
// sums). Function-level target attributes, selected at run time (dispatch.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu/encoder_conv.h"

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

#define NGS_BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")))

namespace {

// MR rows x 32 columns = 2 MR zmm sums; per K pair: two panel loads (16 columns x 2 k
// each), MR 32-bit broadcasts of the X pair, 2 MR vdpbf16ps.
template <int MR, bool TWO>
NGS_BF16 void kbf16(const Bf16Tile &t) {
  const int n0 = t.ncols < 16 ? t.ncols : 16;
  const int n1 = TWO ? t.ncols - 16 : 0;
  const __mmask16 m0 = static_cast<__mmask16>((1u << n0) - 1u);
  const __mmask16 m1 = static_cast<__mmask16>((1u << n1) - 1u);
  __m512 c0[MR], c1[MR];
  if (t.from_bias) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, t.bias);
    const __m512 b1 = TWO ? _mm512_maskz_loadu_ps(m1, t.bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      c0[i] = b0;
      c1[i] = b1;
    }
  } else {
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      c0[i] = _mm512_maskz_loadu_ps(m0, t.y + static_cast<size_t>(i) * t.ldy);
      c1[i] = TWO ? _mm512_maskz_loadu_ps(m1, t.y + static_cast<size_t>(i) * t.ldy + 16)
                  : _mm512_setzero_ps();
    }
  }
  const uint16_t *xp[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) xp[i] = t.x + static_cast<size_t>(i) * t.ldx;
  const uint16_t *b = t.b, *b2 = t.b + t.panel_stride;
  const int pairs = t.kc / 2;
  for (int u = 0; u < pairs; ++u) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(b + static_cast<size_t>(u) * 32);
    const __m512bh w1 =
        TWO ? (__m512bh)_mm512_loadu_si512(b2 + static_cast<size_t>(u) * 32) : w0;
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, xp[i] + 2 * u, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      c0[i] = _mm512_dpbf16_ps(c0[i], a, w0);
      if (TWO) c1[i] = _mm512_dpbf16_ps(c1[i], a, w1);
    }
  }
  const __m512 slope = _mm512_set1_ps(0.2f);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    __m512 v0 = c0[i], v1 = c1[i];
    if (t.lrelu) {
      v0 = _mm512_max_ps(v0, _mm512_mul_ps(v0, slope));
      if (TWO) v1 = _mm512_max_ps(v1, _mm512_mul_ps(v1, slope));
    }
    _mm512_mask_storeu_ps(t.y + static_cast<size_t>(i) * t.ldy, m0, v0);
    if (TWO) _mm512_mask_storeu_ps(t.y + static_cast<size_t>(i) * t.ldy + 16, m1, v1);
  }
}

template <bool TWO>
void kbf16_rows(const Bf16Tile &t) {
  switch (t.mr) {
    case 12: kbf16<12, TWO>(t); break;
    case 11: kbf16<11, TWO>(t); break;
    case 10: kbf16<10, TWO>(t); break;
    case 9: kbf16<9, TWO>(t); break;
    case 8: kbf16<8, TWO>(t); break;
    case 7: kbf16<7, TWO>(t); break;
    case 6: kbf16<6, TWO>(t); break;
    case 5: kbf16<5, TWO>(t); break;
    case 4: kbf16<4, TWO>(t); break;
    case 3: kbf16<3, TWO>(t); break;
    case 2: kbf16<2, TWO>(t); break;
    default: kbf16<1, TWO>(t); break;
  }
}

}  // namespace

void conv_bf16_kernel_avx512bf16(const Bf16Tile &t) {
  if (t.ncols > 16) kbf16_rows<true>(t);
  else kbf16_rows<false>(t);
}

void conv_bf16_kernel_avx512(const Bf16Tile &t) { enc_avx512::bf16_tile(t); }
void conv_bf16_convert_avx512(const float *src, int n, uint16_t *dst) {
  enc_avx512::conv_bf16_convert(src, n, dst);
}
void conv_bf16_convert_avx2(const float *src, int n, uint16_t *dst) {
  enc_avx2::conv_bf16_convert(src, n, dst);
}
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

void conv_bf16_kernel_avx512bf16(const Bf16Tile &) {}
void conv_bf16_kernel_avx512(const Bf16Tile &) {}
void conv_bf16_convert_avx512(const float *, int, uint16_t *) {}
void conv_bf16_convert_avx2(const float *, int, uint16_t *) {}
void conv_bf16_kernel_avx2(const Bf16Tile &) {}
void wino_input_avx512(const float *const *, int, bool, float *, size_t) {}
void wino_output_avx512(const float *, size_t, int, const float *, bool, float *const *) {}
void wino_input_avx2(const float *const *, int, bool, float *, size_t) {}
void wino_input_bf16_avx512(const float *const *, int, bool, uint16_t *, size_t) {}
void wino_input_bf16_avx2(const float *const *, int, bool, uint16_t *, size_t) {}
void wino_output_avx2(const float *, size_t, int, const float *, bool, float *const *) {}

#endif

}  // namespace ngs::cpu
