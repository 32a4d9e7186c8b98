// Internal to kernels/cpu: the frame shared by the AVX-512 GEMM tiles (gemm_simd.cpp's
// fp32 FMA tile, gemm_bf16_simd.cpp's vdpbf16ps tile): MR rows x 16 or 32 columns of fp32
// sums in zmm registers, started from the bias or from Y (masked to the valid columns),
// stored with the optional LeakyReLU, and the dispatch of a tile's row count to the
// kernel template. A tile type T has the fields of GemmTile / Bf16Tile (gemm_kernels.h)
// that these read: mr, ncols, y, ldy, bias, from_bias, lrelu.
#pragma once

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstddef>

namespace ngs::cpu::tile512 {

#define NGS_TILE512 \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma"), always_inline)) inline

// Lanes of the first and second panel that hold valid columns.
struct Masks {
  __mmask16 m0, m1;
};

template <bool TWO>
NGS_TILE512 Masks masks(int ncols) {
  const int n0 = ncols < 16 ? ncols : 16;
  const int n1 = TWO ? ncols - 16 : 0;
  return {static_cast<__mmask16>((1u << n0) - 1u), static_cast<__mmask16>((1u << n1) - 1u)};
}

// c0[i], c1[i] = row i of the bias (from_bias) or of Y; c1 is zero with one panel.
template <int MR, bool TWO, class T>
NGS_TILE512 void load(const T &t, Masks m, __m512 *c0, __m512 *c1) {
  if (t.from_bias) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m.m0, t.bias);
    const __m512 b1 = TWO ? _mm512_maskz_loadu_ps(m.m1, t.bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      c0[i] = b0;
      c1[i] = b1;
    }
  } else {
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      c0[i] = _mm512_maskz_loadu_ps(m.m0, t.y + static_cast<size_t>(i) * t.ldy);
      c1[i] = TWO ? _mm512_maskz_loadu_ps(m.m1, t.y + static_cast<size_t>(i) * t.ldy + 16)
                  : _mm512_setzero_ps();
    }
  }
}

// Row i of Y = act(c0[i] | c1[i]) over the valid columns.
template <int MR, bool TWO, class T>
NGS_TILE512 void store(const T &t, Masks m, const __m512 *c0, const __m512 *c1) {
  const __m512 slope = _mm512_set1_ps(0.2f);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    __m512 v0 = c0[i], v1 = c1[i];
    if (t.lrelu) {  // (masked max: GCC 12 warns about the plain one's undefined operand)
      v0 = _mm512_mask_max_ps(v0, 0xFFFF, v0, _mm512_mul_ps(v0, slope));
      if (TWO) v1 = _mm512_mask_max_ps(v1, 0xFFFF, v1, _mm512_mul_ps(v1, slope));
    }
    _mm512_mask_storeu_ps(t.y + static_cast<size_t>(i) * t.ldy, m.m0, v0);
    if (TWO) _mm512_mask_storeu_ps(t.y + static_cast<size_t>(i) * t.ldy + 16, m.m1, v1);
  }
}

// K<MR, TWO>::run(t) for t.mr (1..12).
template <template <int, bool> class K, bool TWO, class T>
void rows(const T &t) {
  switch (t.mr) {
    case 12: K<12, TWO>::run(t); break;
    case 11: K<11, TWO>::run(t); break;
    case 10: K<10, TWO>::run(t); break;
    case 9: K<9, TWO>::run(t); break;
    case 8: K<8, TWO>::run(t); break;
    case 7: K<7, TWO>::run(t); break;
    case 6: K<6, TWO>::run(t); break;
    case 5: K<5, TWO>::run(t); break;
    case 4: K<4, TWO>::run(t); break;
    case 3: K<3, TWO>::run(t); break;
    case 2: K<2, TWO>::run(t); break;
    default: K<1, TWO>::run(t); break;
  }
}

// The tile's kernel for t.mr rows and t.ncols columns (two panels past 16).
template <template <int, bool> class K, class T>
void dispatch(const T &t) {
  if (t.ncols > 16) rows<K, true>(t);
  else rows<K, false>(t);
}

}  // namespace ngs::cpu::tile512

#endif
