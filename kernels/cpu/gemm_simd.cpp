// AVX-512 and AVX2+FMA GEMM microkernels (see gemm.cpp). Compiled with function-level
// target attributes, selected at run time (isa.cpp), so no special compile flags.
//
// AVX-512: MR = 12 rows x 32 columns = 24 zmm accumulators; per k two panel loads and 12
// broadcasts feed 24 FMAs. AVX2: MR = 6 rows x 16 columns = 12 ymm accumulators, run once
// per panel of the tile.
#include <immintrin.h>

#include "cpu/dispatch.h"
#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"
#include "cpu/tile_avx512.h"

namespace ngs::cpu {

#if defined(__x86_64__)

#define NGS_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define NGS_AVX2 __attribute__((target("avx2,fma")))

namespace {

// The FMA tile: per k two panel loads and MR broadcasts feed 2 MR FMAs (the frame:
// tile_avx512.h).
template <int MR, bool TWO>
struct K512 {
  NGS_AVX512 static void run(const GemmTile &t) {
    const tile512::Masks m = tile512::masks<TWO>(t.ncols);
    __m512 c0[MR], c1[MR];
    tile512::load<MR, TWO>(t, m, c0, c1);
    const float *xp[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) xp[i] = t.x + static_cast<size_t>(i) * t.ldx;
    const float *b = t.b;
    const float *b2 = t.b + t.panel_stride;
    for (int k = 0; k < t.kc; ++k) {
      const __m512 w0 = _mm512_loadu_ps(b + static_cast<size_t>(k) * 16);
      const __m512 w1 = TWO ? _mm512_loadu_ps(b2 + static_cast<size_t>(k) * 16) : w0;
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) {
        const __m512 a = _mm512_set1_ps(xp[i][k]);
        c0[i] = _mm512_fmadd_ps(a, w0, c0[i]);
        if (TWO) c1[i] = _mm512_fmadd_ps(a, w1, c1[i]);
      }
    }
    tile512::store<MR, TWO>(t, m, c0, c1);
  }
};

// Masks for AVX2 partial stores: lanes < n.
NGS_AVX2 inline __m256i mask8(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

// One panel (16 columns, ncols of them valid) x MR rows.
template <int MR>
NGS_AVX2 void k256(const GemmTile &t, const float *b, const float *bias, float *y, int ncols) {
  const int n0 = ncols < 8 ? ncols : 8;
  const int n1 = ncols > 8 ? ncols - 8 : 0;
  const __m256i m0 = mask8(n0), m1 = mask8(n1);
  __m256 c0[MR], c1[MR];
  if (t.from_bias) {
    const __m256 b0 = _mm256_maskload_ps(bias, m0);
    const __m256 b1 = _mm256_maskload_ps(bias + 8, m1);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      c0[i] = b0;
      c1[i] = b1;
    }
  } else {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      c0[i] = _mm256_maskload_ps(y + static_cast<size_t>(i) * t.ldy, m0);
      c1[i] = _mm256_maskload_ps(y + static_cast<size_t>(i) * t.ldy + 8, m1);
    }
  }
  const float *xp[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) xp[i] = t.x + static_cast<size_t>(i) * t.ldx;
  for (int k = 0; k < t.kc; ++k) {
    const __m256 w0 = _mm256_loadu_ps(b + static_cast<size_t>(k) * 16);
    const __m256 w1 = _mm256_loadu_ps(b + static_cast<size_t>(k) * 16 + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(xp[i] + k);
      c0[i] = _mm256_fmadd_ps(a, w0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, w1, c1[i]);
    }
  }
  const __m256 slope = _mm256_set1_ps(0.2f);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    __m256 v0 = c0[i], v1 = c1[i];
    if (t.lrelu) {
      v0 = _mm256_max_ps(v0, _mm256_mul_ps(v0, slope));
      v1 = _mm256_max_ps(v1, _mm256_mul_ps(v1, slope));
    }
    _mm256_maskstore_ps(y + static_cast<size_t>(i) * t.ldy, m0, v0);
    _mm256_maskstore_ps(y + static_cast<size_t>(i) * t.ldy + 8, m1, v1);
  }
}

void k256_rows(const GemmTile &t, const float *b, const float *bias, float *y, int ncols) {
  switch (t.mr) {
    case 6: k256<6>(t, b, bias, y, ncols); break;
    case 5: k256<5>(t, b, bias, y, ncols); break;
    case 4: k256<4>(t, b, bias, y, ncols); break;
    case 3: k256<3>(t, b, bias, y, ncols); break;
    case 2: k256<2>(t, b, bias, y, ncols); break;
    default: k256<1>(t, b, bias, y, ncols); break;
  }
}

}  // namespace

// y[N] = act(W x + b) for one row: one panel (16 columns) at a time, streaming the packed
// weights once, four independent accumulators to hide the FMA latency.
NGS_AVX512 void gemv_avx512(const float *panels, const float *bias, int n, int k, const float *x,
                            float *y, bool lrelu) {
  const int np = (n + 15) / 16;
  for (int p = 0; p < np; ++p) {
    const float *b = panels + static_cast<size_t>(p) * k * 16;
    const int nc = n - p * 16 < 16 ? n - p * 16 : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << nc) - 1u);
    __m512 a0 = _mm512_maskz_loadu_ps(m, bias + p * 16);
    __m512 a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 4 <= k; i += 4) {
      const float *bi = b + static_cast<size_t>(i) * 16;
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_loadu_ps(bi), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 1]), _mm512_loadu_ps(bi + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 2]), _mm512_loadu_ps(bi + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 3]), _mm512_loadu_ps(bi + 48), a3);
    }
    for (; i < k; ++i)
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_loadu_ps(b + static_cast<size_t>(i) * 16), a0);
    __m512 v = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    if (lrelu) v = _mm512_mask_max_ps(v, 0xFFFF, v, _mm512_mul_ps(v, _mm512_set1_ps(0.2f)));
    _mm512_mask_storeu_ps(y + p * 16, m, v);
  }
}

NGS_AVX2 void gemv_avx2(const float *panels, const float *bias, int n, int k, const float *x,
                        float *y, bool lrelu) {
  const int np = (n + 15) / 16;
  for (int p = 0; p < np; ++p) {
    const float *b = panels + static_cast<size_t>(p) * k * 16;
    const int nc = n - p * 16 < 16 ? n - p * 16 : 16;
    const __m256i m0 = mask8(nc < 8 ? nc : 8), m1 = mask8(nc > 8 ? nc - 8 : 0);
    __m256 a0 = _mm256_maskload_ps(bias + p * 16, m0), a1 = _mm256_maskload_ps(bias + p * 16 + 8, m1);
    __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 2 <= k; i += 2) {
      const float *bi = b + static_cast<size_t>(i) * 16;
      const __m256 x0 = _mm256_broadcast_ss(x + i), x1 = _mm256_broadcast_ss(x + i + 1);
      a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(bi), a0);
      a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(bi + 8), a1);
      c0 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(bi + 16), c0);
      c1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(bi + 24), c1);
    }
    for (; i < k; ++i) {
      const __m256 x0 = _mm256_broadcast_ss(x + i);
      a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b + static_cast<size_t>(i) * 16), a0);
      a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b + static_cast<size_t>(i) * 16 + 8), a1);
    }
    __m256 v0 = _mm256_add_ps(a0, c0), v1 = _mm256_add_ps(a1, c1);
    if (lrelu) {
      const __m256 s = _mm256_set1_ps(0.2f);
      v0 = _mm256_max_ps(v0, _mm256_mul_ps(v0, s));
      v1 = _mm256_max_ps(v1, _mm256_mul_ps(v1, s));
    }
    _mm256_maskstore_ps(y + p * 16, m0, v0);
    _mm256_maskstore_ps(y + p * 16 + 8, m1, v1);
  }
}

// One block of an RNN's recurrent matrix (ops.h PackedRnn): w [k][NG][16], bias [NG][16]
// -> y [NG][16] = bias + W x. The block is one contiguous stream. AVX2: each gate sums the
// even and the odd k in two accumulators (2 NG independent chains). AVX-512: each row and
// gate one chain from the bias over k in order (NG chains per row hide the FMA latency),
// R = 1..4 rows sharing every weight load: the same arithmetic per row whatever R, so a
// batch of rows (rnn_block_gemm) gives bit for bit the single-row results, and with four
// rows the FMAs, not the loads, bound it.
namespace {
template <int NG, int R>
NGS_AVX512 inline void rnn_rows_avx512(const float *w, const float *bias, int k, const float *x,
                                       int ldx, float *y, int ldy) {
  __m512 a[R][NG];
  for (int q = 0; q < NG; ++q) {
    const __m512 b = _mm512_loadu_ps(bias + q * 16);
    for (int r = 0; r < R; ++r) a[r][q] = b;
  }
  const float *xr[R];
  for (int r = 0; r < R; ++r) xr[r] = x + static_cast<size_t>(r) * ldx;
  for (int i = 0; i < k; ++i) {
    const float *wi = w + static_cast<size_t>(i) * NG * 16;
    __m512 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm512_set1_ps(xr[r][i]);
    for (int q = 0; q < NG; ++q) {
      const __m512 wv = _mm512_loadu_ps(wi + q * 16);
      for (int r = 0; r < R; ++r) a[r][q] = _mm512_fmadd_ps(xv[r], wv, a[r][q]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NG; ++q) _mm512_storeu_ps(y + static_cast<size_t>(r) * ldy + q * 16, a[r][q]);
}

template <int NG>
void rnn_batch_avx512(const float *w, const float *bias, int k, const float *x, int ldx, int B,
                      float *y, int ldy) {
  int b = 0;
  for (; b + 4 <= B; b += 4)
    rnn_rows_avx512<NG, 4>(w, bias, k, x + static_cast<size_t>(b) * ldx, ldx,
                           y + static_cast<size_t>(b) * ldy, ldy);
  const float *xb = x + static_cast<size_t>(b) * ldx;
  float *yb = y + static_cast<size_t>(b) * ldy;
  switch (B - b) {
    case 3: rnn_rows_avx512<NG, 3>(w, bias, k, xb, ldx, yb, ldy); break;
    case 2: rnn_rows_avx512<NG, 2>(w, bias, k, xb, ldx, yb, ldy); break;
    case 1: rnn_rows_avx512<NG, 1>(w, bias, k, xb, ldx, yb, ldy); break;
    default: break;
  }
}

template <int NG>
NGS_AVX2 inline void rnn_block_avx2(const float *w, const float *bias, int k, const float *x,
                                    float *y) {
  __m256 a[NG][2], c[NG][2];
  for (int q = 0; q < NG; ++q) {
    a[q][0] = _mm256_loadu_ps(bias + q * 16);
    a[q][1] = _mm256_loadu_ps(bias + q * 16 + 8);
    c[q][0] = c[q][1] = _mm256_setzero_ps();
  }
  int i = 0;
  for (; i + 2 <= k; i += 2) {
    const float *wi = w + static_cast<size_t>(i) * NG * 16;
    const __m256 x0 = _mm256_broadcast_ss(x + i), x1 = _mm256_broadcast_ss(x + i + 1);
    for (int q = 0; q < NG; ++q) {
      a[q][0] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wi + q * 16), a[q][0]);
      a[q][1] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wi + q * 16 + 8), a[q][1]);
    }
    for (int q = 0; q < NG; ++q) {
      c[q][0] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(wi + (NG + q) * 16), c[q][0]);
      c[q][1] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(wi + (NG + q) * 16 + 8), c[q][1]);
    }
  }
  if (i < k) {
    const float *wi = w + static_cast<size_t>(i) * NG * 16;
    const __m256 x0 = _mm256_broadcast_ss(x + i);
    for (int q = 0; q < NG; ++q) {
      a[q][0] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wi + q * 16), a[q][0]);
      a[q][1] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wi + q * 16 + 8), a[q][1]);
    }
  }
  for (int q = 0; q < NG; ++q) {
    _mm256_storeu_ps(y + q * 16, _mm256_add_ps(a[q][0], c[q][0]));
    _mm256_storeu_ps(y + q * 16 + 8, _mm256_add_ps(a[q][1], c[q][1]));
  }
}
}  // namespace

NGS_AVX512 void rnn_block_gemv_avx512(const float *w, const float *bias, int ng, int k,
                                      const float *x, float *y) {
  if (ng == 4) rnn_rows_avx512<4, 1>(w, bias, k, x, 0, y, 0);
  else rnn_rows_avx512<3, 1>(w, bias, k, x, 0, y, 0);
}

NGS_AVX2 void rnn_block_gemv_avx2(const float *w, const float *bias, int ng, int k, const float *x,
                                  float *y) {
  if (ng == 4) rnn_block_avx2<4>(w, bias, k, x, y);
  else rnn_block_avx2<3>(w, bias, k, x, y);
}

NGS_AVX512 void rnn_block_gemm_avx512(const float *w, const float *bias, int ng, int k,
                                      const float *x, int ldx, int B, float *y, int ldy) {
  if (ng == 4) rnn_batch_avx512<4>(w, bias, k, x, ldx, B, y, ldy);
  else rnn_batch_avx512<3>(w, bias, k, x, ldx, B, y, ldy);
}

// AVX2 has 16 registers: one row at a time (the block stays in L2 between rows).
void rnn_block_gemm_avx2(const float *w, const float *bias, int ng, int k, const float *x,
                         int ldx, int B, float *y, int ldy) {
  for (int b = 0; b < B; ++b)
    rnn_block_gemv_avx2(w, bias, ng, k, x + static_cast<size_t>(b) * ldx,
                        y + static_cast<size_t>(b) * ldy);
}

NGS_AVX512 void lrelu_copy_avx512(float *dst, const float *src, int n) {
  const __m512 slope = _mm512_set1_ps(0.2f);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(src + i);
    _mm512_storeu_ps(dst + i, _mm512_mask_max_ps(v, 0xFFFF, v, _mm512_mul_ps(v, slope)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, src + i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_mask_max_ps(v, 0xFFFF, v, _mm512_mul_ps(v, slope)));
  }
}

NGS_AVX2 void lrelu_copy_avx2(float *dst, const float *src, int n) {
  const __m256 slope = _mm256_set1_ps(0.2f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(src + i);
    _mm256_storeu_ps(dst + i, _mm256_max_ps(v, _mm256_mul_ps(v, slope)));
  }
  for (; i < n; ++i) dst[i] = src[i] >= 0.0f ? src[i] : 0.2f * src[i];
}

void gemm_kernel_avx512(const GemmTile &t) { tile512::dispatch<K512>(t); }

void gemm_kernel_avx2(const GemmTile &t) {
  k256_rows(t, t.b, t.bias, t.y, t.ncols < 16 ? t.ncols : 16);
  if (t.ncols > 16) k256_rows(t, t.b + t.panel_stride, t.bias + 16, t.y + 16, t.ncols - 16);
}

#else  // not x86-64: never selected (isa_best_supported() is portable)

void gemm_kernel_avx512(const GemmTile &) {}
void gemm_kernel_avx2(const GemmTile &) {}
void gemv_avx512(const float *, const float *, int, int, const float *, float *, bool) {}
void lrelu_copy_avx512(float *, const float *, int) {}
void lrelu_copy_avx2(float *, const float *, int) {}
void gemv_avx2(const float *, const float *, int, int, const float *, float *, bool) {}
void rnn_block_gemv_avx512(const float *, const float *, int, int, const float *, float *) {}
void rnn_block_gemv_avx2(const float *, const float *, int, int, const float *, float *) {}
void rnn_block_gemm_avx512(const float *, const float *, int, int, const float *, int, int,
                           float *, int) {}
void rnn_block_gemm_avx2(const float *, const float *, int, int, const float *, int, int, float *,
                         int) {}

#endif

}  // namespace ngs::cpu
