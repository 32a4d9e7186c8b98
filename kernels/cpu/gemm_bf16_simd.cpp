// AVX512_BF16 kernels of the fast precision (ops.h "Fast precision"; the drivers and the
// portable emulation are in gemm_bf16.cpp): vdpbf16ps multiplies pairs of bf16 values and
// accumulates in fp32, 32 products per instruction (twice the fp32 FMA's 16). The GEMM
// tile here is the only bf16 tile: the MLP GEMMs and the encoder's convolutions run it.
// Compiled with function-level target attributes and selected at start-up by the dispatch
// table (dispatch.cpp) only when the CPU has AVX512_BF16.
// GCC 12 reports its own _mm512_undefined_* placeholders as (maybe-)uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"
#include "cpu/tile_avx512.h"

namespace ngs::cpu {

#if defined(__x86_64__)

#define NGS_BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")))

// simd.inc (the bf16 conversion) for this file's kernels.
namespace bf16_avx512_ns {
#define NGS_SIMD_TARGET NGS_BF16
#define NGS_SIMD_W 16
#include "cpu/simd.inc"
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W
}  // namespace bf16_avx512_ns

namespace {

// k floats -> bf16 pairs at p (k rounded up to even; an odd k's pad 0).
NGS_BF16 inline void to_pairs(const float *x, int k, uint16_t *p) {
  bf16_avx512_ns::bf16_convert_vec(x, k, p);
  if (k & 1) p[k] = 0;
}

NGS_BF16 inline __m512bh ldbh(const uint16_t *p) {
  return (__m512bh)_mm512_loadu_si512(reinterpret_cast<const void *>(p));
}

// The bf16 tile (gemm_kernels.h Bf16Tile; the frame: tile_avx512.h): MR rows x 32
// columns = 2 MR zmm sums; per K pair two panel loads (16 columns x 2 k each), MR 32-bit
// broadcasts of the X pair, 2 MR vdpbf16ps. LDX > 0: the rows are LDX values apart (the
// MLP driver's X tile, kGemmBf16Kc; the broadcasts then address one base register, 5-6 %
// faster at K = 128 than MR row pointers); 0: t.ldx.
template <int MR, bool TWO, int LDX>
struct KBf16 {
  NGS_BF16 static void run(const Bf16Tile &t) {
    const tile512::Masks m = tile512::masks<TWO>(t.ncols);
    __m512 c0[MR], c1[MR];
    tile512::load<MR, TWO>(t, m, c0, c1);
    const size_t ldx = LDX > 0 ? static_cast<size_t>(LDX) : static_cast<size_t>(t.ldx);
    const uint16_t *xp[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) xp[i] = t.x + i * ldx;
    const int kp = (t.kc + 1) / 2;
    const uint16_t *b = t.b;
    const uint16_t *b2 = t.b + t.panel_stride;
    for (int q = 0; q < kp; ++q) {
      const __m512bh w0 = ldbh(b + static_cast<size_t>(q) * 32);
      const __m512bh w1 = TWO ? ldbh(b2 + static_cast<size_t>(q) * 32) : w0;
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) {
        int32_t pair;
        std::memcpy(&pair, xp[i] + 2 * q, 4);
        const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
        c0[i] = _mm512_dpbf16_ps(c0[i], a, w0);
        if (TWO) c1[i] = _mm512_dpbf16_ps(c1[i], a, w1);
      }
    }
    tile512::store<MR, TWO>(t, m, c0, c1);
  }
};
template <int MR, bool TWO>
using KBf16Packed = KBf16<MR, TWO, kGemmBf16Kc>;
template <int MR, bool TWO>
using KBf16Strided = KBf16<MR, TWO, 0>;

// Recurrent block rows (rnn_block_gemm_bf16_avx512): per row and gate one chain from the
// bias over the pairs in order, whatever the number of rows. R (1..4) rows share every
// weight load; x converted to pairs kRnnConv values at a time.
constexpr int kRnnConv = 512;

template <int NG, int R>
NGS_BF16 void rnn_bf16_rows(const uint16_t *w, const float *bias, int k, const float *x, int ldx,
                            float *y, int ldy) {
  alignas(64) uint32_t xp[R][kRnnConv / 2];
  __m512 a[R][NG];
  for (int g = 0; g < NG; ++g) {
    const __m512 b = _mm512_loadu_ps(bias + g * 16);
    for (int r = 0; r < R; ++r) a[r][g] = b;
  }
  for (int c0 = 0; c0 < k; c0 += kRnnConv) {
    const int kc = k - c0 < kRnnConv ? k - c0 : kRnnConv;
    for (int r = 0; r < R; ++r)
      to_pairs(x + static_cast<size_t>(r) * ldx + c0, kc, reinterpret_cast<uint16_t *>(xp[r]));
    const int kp = (kc + 1) / 2;
    const uint16_t *wc = w + static_cast<size_t>(c0 / 2) * NG * 32;
    for (int q = 0; q < kp; ++q) {
      const uint16_t *wq = wc + static_cast<size_t>(q) * NG * 32;
      __m512bh xv[R];
      for (int r = 0; r < R; ++r) xv[r] = (__m512bh)_mm512_set1_epi32(static_cast<int>(xp[r][q]));
      for (int g = 0; g < NG; ++g) {
        const __m512bh wv = ldbh(wq + g * 32);
        for (int r = 0; r < R; ++r) a[r][g] = _mm512_dpbf16_ps(a[r][g], xv[r], wv);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < NG; ++g) _mm512_storeu_ps(y + static_cast<size_t>(r) * ldy + g * 16, a[r][g]);
}

template <int NG>
void rnn_bf16_batch(const uint16_t *w, const float *bias, int k, const float *x, int ldx, int B,
                    float *y, int ldy) {
  int b = 0;
  for (; b + 4 <= B; b += 4)
    rnn_bf16_rows<NG, 4>(w, bias, k, x + static_cast<size_t>(b) * ldx, ldx,
                         y + static_cast<size_t>(b) * ldy, ldy);
  const float *xb = x + static_cast<size_t>(b) * ldx;
  float *yb = y + static_cast<size_t>(b) * ldy;
  switch (B - b) {
    case 3: rnn_bf16_rows<NG, 3>(w, bias, k, xb, ldx, yb, ldy); break;
    case 2: rnn_bf16_rows<NG, 2>(w, bias, k, xb, ldx, yb, ldy); break;
    case 1: rnn_bf16_rows<NG, 1>(w, bias, k, xb, ldx, yb, ldy); break;
    default: break;
  }
}

// int8 recurrent block rows (rnn_block_gemm_i8_avx512): R (1..4) rows share every weight
// load; per row: max |x| (exact), u8 quantization in chunks of kI8Conv, exact int32 sums.
#define NGS_VNNI __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,fma")))
constexpr int kI8Conv = 1024;

NGS_VNNI inline float absmax(const float *x, int k) {
  __m512 m = _mm512_setzero_ps();
  const __m512 sign = _mm512_set1_ps(-0.0f);
  int i = 0;
  for (; i + 16 <= k; i += 16) m = _mm512_max_ps(m, _mm512_andnot_ps(sign, _mm512_loadu_ps(x + i)));
  float r = _mm512_reduce_max_ps(m);
  for (; i < k; ++i) r = std::max(r, std::fabs(x[i]));
  return r;
}

// q[i] = round(x[i] * inv) + 128 for i < n, 128 past n up to a multiple of 16 (4-aligned
// groups of the last quad hold the zero point, whose weights are 0).
NGS_VNNI inline void quantize(const float *x, int n, float inv, uint8_t *q) {
  const __m512 vi = _mm512_set1_ps(inv);
  const __m512i off = _mm512_set1_epi32(128);
  for (int i = 0; i < n; i += 16) {
    const int c = n - i < 16 ? n - i : 16;
    const __mmask16 mk = static_cast<__mmask16>(c >= 16 ? 0xFFFFu : (1u << c) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(mk, x + i);
    const __m512i qi = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, vi)), off);
    _mm_storeu_si128(reinterpret_cast<__m128i *>(q + i), _mm512_cvtepi32_epi8(qi));
  }
}

template <int NG, int R>
NGS_VNNI void rnn_i8_rows(const int8_t *w, const float *scale, const float *corr, const float *bias,
                          int k, const float *x, int ldx, float *y, int ldy) {
  alignas(64) uint8_t xq[R][kI8Conv + 16];
  float inv[R], xs[R];
  for (int r = 0; r < R; ++r) {
    const float m = absmax(x + static_cast<size_t>(r) * ldx, k);
    inv[r] = m > 0.0f ? 127.0f / m : 0.0f;
    xs[r] = m / 127.0f;
  }
  __m512i a[R][NG];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < NG; ++g) a[r][g] = _mm512_setzero_si512();
  for (int c0 = 0; c0 < k; c0 += kI8Conv) {
    const int kc = k - c0 < kI8Conv ? k - c0 : kI8Conv;
    for (int r = 0; r < R; ++r) quantize(x + static_cast<size_t>(r) * ldx + c0, kc, inv[r], xq[r]);
    const int k4 = (kc + 3) / 4;
    const int8_t *wc = w + static_cast<size_t>(c0 / 4) * NG * 64;
    for (int q = 0; q < k4; ++q) {
      __m512i xv[R];
      for (int r = 0; r < R; ++r) {
        int32_t x4;
        std::memcpy(&x4, xq[r] + 4 * q, 4);
        xv[r] = _mm512_set1_epi32(x4);
      }
      for (int g = 0; g < NG; ++g) {
        const __m512i wv = _mm512_loadu_si512(wc + (static_cast<size_t>(q) * NG + g) * 64);
        for (int r = 0; r < R; ++r) a[r][g] = _mm512_dpbusd_epi32(a[r][g], xv[r], wv);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m512 s = _mm512_set1_ps(xs[r]);
    for (int g = 0; g < NG; ++g) {
      const __m512 v = _mm512_sub_ps(_mm512_cvtepi32_ps(a[r][g]), _mm512_loadu_ps(corr + g * 16));
      _mm512_storeu_ps(y + static_cast<size_t>(r) * ldy + g * 16,
                       _mm512_fmadd_ps(_mm512_mul_ps(v, s), _mm512_loadu_ps(scale + g * 16),
                                       _mm512_loadu_ps(bias + g * 16)));
    }
  }
}

template <int NG>
void rnn_i8_batch(const int8_t *w, const float *scale, const float *corr, const float *bias, int k,
                  const float *x, int ldx, int B, float *y, int ldy) {
  int b = 0;
  for (; b + 4 <= B; b += 4)
    rnn_i8_rows<NG, 4>(w, scale, corr, bias, k, x + static_cast<size_t>(b) * ldx, ldx,
                       y + static_cast<size_t>(b) * ldy, ldy);
  const float *xb = x + static_cast<size_t>(b) * ldx;
  float *yb = y + static_cast<size_t>(b) * ldy;
  switch (B - b) {
    case 3: rnn_i8_rows<NG, 3>(w, scale, corr, bias, k, xb, ldx, yb, ldy); break;
    case 2: rnn_i8_rows<NG, 2>(w, scale, corr, bias, k, xb, ldx, yb, ldy); break;
    case 1: rnn_i8_rows<NG, 1>(w, scale, corr, bias, k, xb, ldx, yb, ldy); break;
    default: break;
  }
}

}  // namespace

void rnn_block_gemm_i8_avx512(const int8_t *w, const float *scale, const float *corr,
                              const float *bias, int ng, int k, const float *x, int ldx, int B,
                              float *y, int ldy) {
  if (ng == 4) rnn_i8_batch<4>(w, scale, corr, bias, k, x, ldx, B, y, ldy);
  else rnn_i8_batch<3>(w, scale, corr, bias, k, x, ldx, B, y, ldy);
}

void gemm_bf16_kernel_avx512(const Bf16Tile &t) {
  if (t.ldx == kGemmBf16Kc) tile512::dispatch<KBf16Packed>(t);
  else tile512::dispatch<KBf16Strided>(t);
}

// y[N] = act(W x + b): x converted once per chunk, one panel at a time with four
// accumulators over the pairs q mod 4 (the bias in the first), (a0 + a1) + (a2 + a3).
NGS_BF16 void gemv_bf16_avx512(const uint16_t *panels, int kp_total, const float *bias, int n,
                               int k, const float *x, float *y, bool lrelu) {
  constexpr int kChunk = 2048;
  alignas(64) uint32_t xp[kChunk / 2];
  const bool one = k <= kChunk;
  if (one) to_pairs(x, k, reinterpret_cast<uint16_t *>(xp));
  const int np = (n + 15) / 16;
  for (int p = 0; p < np; ++p) {
    const uint16_t *b = panels + static_cast<size_t>(p) * kp_total * 32;
    const int nc = n - p * 16 < 16 ? n - p * 16 : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << nc) - 1u);
    __m512 a0 = _mm512_maskz_loadu_ps(m, bias + p * 16);
    __m512 a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int c0 = 0; c0 < k; c0 += kChunk) {
      const int kc = k - c0 < kChunk ? k - c0 : kChunk;
      if (!one) to_pairs(x + c0, kc, reinterpret_cast<uint16_t *>(xp));
      const int kp = (kc + 1) / 2;
      const uint16_t *bc = b + static_cast<size_t>(c0 / 2) * 32;
      int q = 0;
      for (; q + 4 <= kp; q += 4) {
        const uint16_t *bq = bc + static_cast<size_t>(q) * 32;
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_set1_epi32(static_cast<int>(xp[q])), ldbh(bq));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_set1_epi32(static_cast<int>(xp[q + 1])), ldbh(bq + 32));
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_set1_epi32(static_cast<int>(xp[q + 2])), ldbh(bq + 64));
        a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_set1_epi32(static_cast<int>(xp[q + 3])), ldbh(bq + 96));
      }
      for (; q < kp; ++q) {
        const __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int>(xp[q]));
        const __m512bh wv = ldbh(bc + static_cast<size_t>(q) * 32);
        switch (q & 3) {
          case 0: a0 = _mm512_dpbf16_ps(a0, xv, wv); break;
          case 1: a1 = _mm512_dpbf16_ps(a1, xv, wv); break;
          case 2: a2 = _mm512_dpbf16_ps(a2, xv, wv); break;
          default: a3 = _mm512_dpbf16_ps(a3, xv, wv); break;
        }
      }
    }
    __m512 v = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    if (lrelu) v = _mm512_max_ps(v, _mm512_mul_ps(v, _mm512_set1_ps(0.2f)));
    _mm512_mask_storeu_ps(y + p * 16, m, v);
  }
}

void rnn_block_gemm_bf16_avx512(const uint16_t *w, const float *bias, int ng, int k,
                                const float *x, int ldx, int B, float *y, int ldy) {
  if (ng == 4) rnn_bf16_batch<4>(w, bias, k, x, ldx, B, y, ldy);
  else rnn_bf16_batch<3>(w, bias, k, x, ldx, B, y, ldy);
}

#else  // not x86-64: never selected (cpu_has_bf16() is false)

void gemm_bf16_kernel_avx512(const Bf16Tile &) {}
void rnn_block_gemm_i8_avx512(const int8_t *, const float *, const float *, const float *, int,
                              int, const float *, int, int, float *, int) {}
void gemv_bf16_avx512(const uint16_t *, int, const float *, int, int, const float *, float *,
                      bool) {}
void rnn_block_gemm_bf16_avx512(const uint16_t *, const float *, int, int, const float *, int,
                                int, float *, int) {}

#endif

}  // namespace ngs::cpu
