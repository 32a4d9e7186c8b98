// Fast precision (ops.h "Fast precision", docs/PRECISION.md): bf16 conversion, the bf16
// packing of GEMM weights, the GEMM / GEMV drivers over the dispatch table's bf16 kernels,
// and the portable emulation of those kernels (the arithmetic of vdpbf16ps, for machines
// without it and for the tests). The AVX512_BF16 kernels are in gemm_bf16_simd.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/dispatch.h"
#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"

namespace ngs::cpu {

uint16_t bf16_from_float(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  if ((u & 0x7f800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);  // denormal: +-0
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

// The portable build of simd.inc's bf16 conversion (4 lanes of plain vector code).
namespace bf16_portable_ns {
#define NGS_SIMD_TARGET
#define NGS_SIMD_W 4
#include "cpu/simd.inc"
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W
}  // namespace bf16_portable_ns

void bf16_convert_portable(const float *x, int n, uint16_t *p) {
  bf16_portable_ns::bf16_convert_vec(x, n, p);
}

void bf16_convert(const float *x, int n, uint16_t *p) { kernels().bf16_convert(x, n, p); }

namespace {

// The operand of the emulated dot product: denormals read as zero.
inline float bf16_in(uint16_t h) {
  if ((h & 0x7f80u) == 0) h &= 0x8000u;
  return bf16_to_float(h);
}

inline float ftz(float a) { return std::fabs(a) < 1.17549435e-38f ? std::copysign(0.0f, a) : a; }

// acc += x1 w1; acc += x0 w0 (one lane of vdpbf16ps; the products are exact).
inline float dp_pair(float acc, uint16_t x0, uint16_t x1, uint16_t w0, uint16_t w1) {
  acc = ftz(acc + bf16_in(x1) * bf16_in(w1));
  return ftz(acc + bf16_in(x0) * bf16_in(w0));
}

// x[i] rounded to bf16, pairs (x[2q], x[2q + 1]); k odd: the last pair's second half 0.
inline void to_pairs(const float *x, int k, uint16_t *p) {
  bf16_convert_portable(x, k, p);
  if (k & 1) p[k] = 0;
}

// The one bf16 packing (ops.h PackedGemmBf16): W[j][c] = w(j, c), j < n, c < k.
template <class W>
PackedGemmBf16 pack_bf16(int n, int k, W w) {
  PackedGemmBf16 p;
  p.n = n;
  p.k = k;
  p.kp = (k + 1) / 2;
  const int np = (n + kGemmNr - 1) / kGemmNr;
  p.panels.assign(static_cast<size_t>(np) * p.kp * 2 * kGemmNr, 0);
  for (int j = 0; j < n; ++j)
    for (int c = 0; c < k; ++c)
      p.panels[((static_cast<size_t>(j / kGemmNr) * p.kp + c / 2) * kGemmNr + j % kGemmNr) * 2 +
               (c & 1)] = bf16_from_float(w(j, c));
  return p;
}

}  // namespace

PackedGemmBf16 gemm_pack_bf16(const PackedGemm &w) {
  PackedGemmBf16 p = pack_bf16(w.n, w.k, [&](int j, int c) {
    return w.panels[(static_cast<size_t>(j / kGemmNr) * w.k + c) * kGemmNr + j % kGemmNr];
  });
  p.bias = w.bias;
  return p;
}

PackedGemmBf16 gemm_pack_bf16(const float *w, int n, int k, const float *bias, int ldw) {
  if (ldw == 0) ldw = k;
  PackedGemmBf16 p =
      pack_bf16(n, k, [&](int j, int c) { return w[static_cast<size_t>(j) * ldw + c]; });
  p.bias.assign(n, 0.0f);
  if (bias) std::copy(bias, bias + n, p.bias.begin());
  return p;
}

// Portable tile: up to 12 rows x up to 32 columns, the same per-lane arithmetic as the
// AVX512_BF16 kernel (one accumulator per output, pairs in order).
void gemm_bf16_kernel_portable(const Bf16Tile &t) {
  const int kp = (t.kc + 1) / 2;
  const int npan = t.ncols > kGemmNr ? 2 : 1;
  for (int pp = 0; pp < npan; ++pp) {
    const uint16_t *b = t.b + static_cast<size_t>(pp) * t.panel_stride;
    const int j0 = pp * kGemmNr, nc = std::min(t.ncols - j0, kGemmNr);
    for (int i = 0; i < t.mr; ++i) {
      float *yr = t.y + static_cast<size_t>(i) * t.ldy + j0;
      for (int j = 0; j < nc; ++j) {
        float acc = t.from_bias ? t.bias[j0 + j] : yr[j];
        for (int q = 0; q < kp; ++q) {
          const uint16_t *wq = b + (static_cast<size_t>(q) * kGemmNr + j) * 2;
          const uint16_t *xq = t.x + static_cast<size_t>(i) * t.ldx + 2 * q;
          acc = dp_pair(acc, xq[0], xq[1], wq[0], wq[1]);
        }
        yr[j] = t.lrelu ? lrelu(acc) : acc;
      }
    }
  }
}

// Portable GEMV: four partial sums per output over the pairs q mod 4 (as the AVX512_BF16
// kernel's four accumulators), added (a0 + a1) + (a2 + a3), the bias in a0.
void gemv_bf16_portable(const uint16_t *panels, int kp, const float *bias, int n, int k,
                        const float *x, float *y, bool lrelu_out) {
  constexpr int kChunk = 2048;  // K values converted at a time
  uint16_t xp[kChunk + 2];
  const int np = (n + kGemmNr - 1) / kGemmNr;
  for (int p = 0; p < np; ++p) {
    const int nc = std::min(n - p * kGemmNr, kGemmNr);
    for (int j = 0; j < nc; ++j) {
      float a[4] = {bias[p * kGemmNr + j], 0.0f, 0.0f, 0.0f};
      for (int c0 = 0; c0 < k; c0 += kChunk) {
        const int kc = std::min(kChunk, k - c0);
        to_pairs(x + c0, kc, xp);
        for (int q = 0; q < (kc + 1) / 2; ++q) {
          const int qq = c0 / 2 + q;
          const uint16_t *wq = panels + ((static_cast<size_t>(p) * kp + qq) * kGemmNr + j) * 2;
          a[qq & 3] = dp_pair(a[qq & 3], xp[2 * q], xp[2 * q + 1], wq[0], wq[1]);
        }
      }
      const float v = (a[0] + a[1]) + (a[2] + a[3]);
      y[p * kGemmNr + j] = lrelu_out ? lrelu(v) : v;
    }
  }
}

// Portable recurrent block, B rows: per row and gate one sum from the bias over the pairs
// in order, as the AVX512_BF16 kernel.
void rnn_block_gemm_bf16_portable(const uint16_t *w, const float *bias, int ng, int k,
                                  const float *x, int ldx, int B, float *y, int ldy) {
  const int kp = (k + 1) / 2;
  for (int b = 0; b < B; ++b) {
    const float *xb = x + static_cast<size_t>(b) * ldx;
    float *yb = y + static_cast<size_t>(b) * ldy;
    for (int g = 0; g < ng; ++g)
      for (int j = 0; j < kRnnBlock; ++j) {
        float a = bias[g * kRnnBlock + j];
        for (int q = 0; q < kp; ++q) {
          const uint16_t x0 = bf16_from_float(xb[2 * q]);
          const uint16_t x1 = 2 * q + 1 < k ? bf16_from_float(xb[2 * q + 1]) : 0;
          const uint16_t *wq = w + ((static_cast<size_t>(q) * ng + g) * kRnnBlock + j) * 2;
          a = dp_pair(a, x0, x1, wq[0], wq[1]);
        }
        yb[g * kRnnBlock + j] = a;
      }
  }
}

// Portable int8 recurrent block: the same quantization and exact integer sums as the
// AVX512_VNNI kernel, the same float operations after them: the same bits.
void rnn_block_gemm_i8_portable(const int8_t *w, const float *scale, const float *corr,
                                const float *bias, int ng, int k, const float *x, int ldx,
                                int B, float *y, int ldy) {
  const int k4 = (k + 3) / 4;
  for (int b = 0; b < B; ++b) {
    const float *xb = x + static_cast<size_t>(b) * ldx;
    float *yb = y + static_cast<size_t>(b) * ldy;
    float m = 0.0f;
    for (int i = 0; i < k; ++i) m = std::max(m, std::fabs(xb[i]));
    const float inv = m > 0.0f ? 127.0f / m : 0.0f, xs = m / 127.0f;
    for (int g = 0; g < ng; ++g)
      for (int j = 0; j < kRnnBlock; ++j) {
        int32_t acc = 0;
        for (int q = 0; q < k4; ++q)
          for (int s2 = 0; s2 < 4; ++s2) {
            const int i = 4 * q + s2;
            const int xq = i < k ? static_cast<int>(std::lrint(xb[i] * inv)) + 128 : 128;
            acc += xq * w[((static_cast<size_t>(q) * ng + g) * kRnnBlock + j) * 4 + s2];
          }
        const int r = g * kRnnBlock + j;
        const float v = static_cast<float>(acc) - corr[r];
        yb[r] = std::fma(v * xs, scale[r], bias[r]);
      }
  }
}

void gemm_bf16_isa(Isa isa, const PackedGemmBf16 &w, const float *x, int ldx, int m, float *y,
                   int ldy, Act act) {
  if (m <= 0 || w.n <= 0) return;
  const Bf16Kernel kernel = kernels_for(isa).gemm_bf16_kernel;
  const int K = w.k, N = w.n;
  if (K == 0) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < N; ++j)
        y[static_cast<size_t>(i) * ldy + j] = act == Act::kLrelu ? lrelu(w.bias[j]) : w.bias[j];
    return;
  }
  const size_t panel_stride = static_cast<size_t>(w.kp) * 2 * kGemmNr;
  const auto convert = kernels_for(isa).bf16_convert;
  // The X tile of a row block in bf16, converted once for all column panels (an odd
  // last block's pad 0).
  alignas(64) uint16_t xp[kGemmBf16Mr][kGemmBf16Kc];
  for (int k0 = 0; k0 < K; k0 += kGemmBf16Kc) {
    const int kc = std::min(kGemmBf16Kc, K - k0);
    Bf16Tile t;
    t.x = xp[0];
    t.ldx = kGemmBf16Kc;
    t.panel_stride = panel_stride;
    t.kc = kc;
    t.from_bias = k0 == 0;
    t.lrelu = k0 + kc == K && act == Act::kLrelu;
    t.ldy = ldy;
    for (int i0 = 0; i0 < m; i0 += kGemmBf16Mr) {
      t.mr = std::min(kGemmBf16Mr, m - i0);
      for (int i = 0; i < t.mr; ++i) {
        convert(x + static_cast<size_t>(i0 + i) * ldx + k0, kc, xp[i]);
        if (kc & 1) xp[i][kc] = 0;
      }
      for (int j0 = 0; j0 < N; j0 += 2 * kGemmNr) {
        t.b = w.panels.data() + static_cast<size_t>(j0 / kGemmNr) * panel_stride +
              static_cast<size_t>(k0) * kGemmNr;  // pair k0 / 2, 32 values per pair row
        t.ncols = std::min(2 * kGemmNr, N - j0);
        t.bias = w.bias.data() + j0;
        t.y = y + static_cast<size_t>(i0) * ldy + j0;
        kernel(t);
      }
    }
  }
}

void gemm_bf16(const PackedGemmBf16 &w, const float *x, int ldx, int m, float *y, int ldy,
               Act act) {
  gemm_bf16_isa(kernels().isa, w, x, ldx, m, y, ldy, act);
}

void gemv_bf16_isa(Isa isa, const PackedGemmBf16 &w, const float *x, float *y, Act act) {
  if (w.k == 0) return gemm_bf16_isa(isa, w, x, w.k, 1, y, w.n, act);
  kernels_for(isa).gemv_bf16(w.panels.data(), w.kp, w.bias.data(), w.n, w.k, x, y,
                             act == Act::kLrelu);
}

void gemv_bf16(const PackedGemmBf16 &w, const float *x, float *y, Act act) {
  gemv_bf16_isa(kernels().isa, w, x, y, act);
}

}  // namespace ngs::cpu
