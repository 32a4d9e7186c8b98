// GEMM Y = act(X W^T + b) with W packed once into Nr-wide K-major panels (ops.h).
// Blocking: K in blocks of kKc (the B micro-panel pair, kKc x 32 floats, stays in L1
// while every row block of X streams past it); per ISA a register-blocked microkernel of
// MR rows x 32 columns (two panels). The first K block starts from the bias (or Y when
// accumulating), later blocks from Y; the activation is applied after the last block.
#include <algorithm>
#include <cstring>

#include "cpu/dispatch.h"
#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"

namespace ngs::cpu {

PackedGemm gemm_pack(const float *w, int n, int k, const float *bias, int ldw,
                     const int *col_map) {
  if (ldw == 0) ldw = k;
  PackedGemm p;
  p.n = n;
  p.k = k;
  const int np = (n + kGemmNr - 1) / kGemmNr;
  p.panels.assign(static_cast<size_t>(np) * k * kGemmNr, 0.0f);
  for (int j = 0; j < n; ++j) {
    const int pi = j / kGemmNr, jj = j % kGemmNr;
    float *dst = p.panels.data() + static_cast<size_t>(pi) * k * kGemmNr + jj;
    const float *src = w + static_cast<size_t>(j) * ldw;
    for (int c = 0; c < k; ++c) dst[static_cast<size_t>(c) * kGemmNr] = src[col_map ? col_map[c] : c];
  }
  p.bias.assign(n, 0.0f);
  if (bias) std::copy(bias, bias + n, p.bias.begin());
  return p;
}

PackedGemm gemm_pack(const Linear &lin) { return gemm_pack(lin.w, lin.out, lin.in, lin.b); }

// Portable microkernel: up to 4 rows x up to 32 columns (two panels), one panel at a time;
// the four rows share each load of the panel row (the compiler vectorises the j loops).
void gemm_kernel_portable(const GemmTile &t) {
  const int npan = t.ncols > kGemmNr ? 2 : 1;
  for (int pp = 0; pp < npan; ++pp) {
    const float *b = t.b + static_cast<size_t>(pp) * t.panel_stride;
    const int j0 = pp * kGemmNr, nc = std::min(t.ncols - j0, kGemmNr);
    float acc[4][kGemmNr];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < kGemmNr; ++j) acc[i][j] = 0.0f;
    const float *x0 = t.x, *x1 = t.x + (t.mr > 1 ? t.ldx : 0);
    const float *x2 = t.x + (t.mr > 2 ? 2 * static_cast<size_t>(t.ldx) : 0);
    const float *x3 = t.x + (t.mr > 3 ? 3 * static_cast<size_t>(t.ldx) : 0);
    for (int kk = 0; kk < t.kc; ++kk) {
      const float *br = b + static_cast<size_t>(kk) * kGemmNr;
      const float a0 = x0[kk], a1 = x1[kk], a2 = x2[kk], a3 = x3[kk];
      for (int j = 0; j < kGemmNr; ++j) {
        const float bj = br[j];
        acc[0][j] += a0 * bj;
        acc[1][j] += a1 * bj;
        acc[2][j] += a2 * bj;
        acc[3][j] += a3 * bj;
      }
    }
    for (int i = 0; i < t.mr; ++i) {
      float *yr = t.y + static_cast<size_t>(i) * t.ldy + j0;
      for (int j = 0; j < nc; ++j) {
        const float v = (t.from_bias ? t.bias[j0 + j] : yr[j]) + acc[i][j];
        yr[j] = t.lrelu ? lrelu(v) : v;
      }
    }
  }
}

namespace {

constexpr int kKc = 256;

}  // namespace

void gemm_isa(Isa isa, const PackedGemm &w, const float *x, int ldx, int m, float *y, int ldy,
              Act act, bool accumulate) {
  if (m <= 0 || w.n <= 0) return;
  const KernelTable &table = kernels_for(isa);
  const GemmKernel kernel = table.gemm_kernel;
  const int mr = table.gemm_mr;
  const int K = w.k, N = w.n;
  if (K == 0) {  // degenerate: Y = act(b (+Y))
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < N; ++j) {
        float v = w.bias[j] + (accumulate ? y[static_cast<size_t>(i) * ldy + j] : 0.0f);
        y[static_cast<size_t>(i) * ldy + j] = act == Act::kLrelu ? lrelu(v) : v;
      }
    return;
  }
  const size_t panel_stride = static_cast<size_t>(K) * kGemmNr;
  for (int k0 = 0; k0 < K; k0 += kKc) {
    const int kc = std::min(kKc, K - k0);
    const bool first = k0 == 0, last = k0 + kc == K;
    for (int j0 = 0; j0 < N; j0 += 2 * kGemmNr) {
      GemmTile t;
      t.b = w.panels.data() + static_cast<size_t>(j0 / kGemmNr) * panel_stride +
            static_cast<size_t>(k0) * kGemmNr;
      t.panel_stride = panel_stride;
      t.kc = kc;
      t.ncols = std::min(2 * kGemmNr, N - j0);
      t.bias = w.bias.data() + j0;
      t.from_bias = first && !accumulate;
      t.lrelu = last && act == Act::kLrelu;
      t.ldx = ldx;
      t.ldy = ldy;
      if (first && accumulate) {  // bias added once, to Y, before the K loop
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < t.ncols; ++j) y[static_cast<size_t>(i) * ldy + j0 + j] += t.bias[j];
      }
      for (int i0 = 0; i0 < m; i0 += mr) {
        t.mr = std::min(mr, m - i0);
        t.x = x + static_cast<size_t>(i0) * ldx + k0;
        t.y = y + static_cast<size_t>(i0) * ldy + j0;
        kernel(t);
      }
    }
  }
}

void gemv_isa(Isa isa, const PackedGemm &w, const float *x, float *y, Act act) {
  const bool lr = act == Act::kLrelu;
  const KernelTable &table = kernels_for(isa);
  if (w.k > 0 && table.gemv) return table.gemv(w.panels.data(), w.bias.data(), w.n, w.k, x, y, lr);
  gemm_isa(Isa::kPortable, w, x, w.k, 1, y, w.n, act, false);
}

void gemv(const PackedGemm &w, const float *x, float *y, Act act) {
  gemv_isa(kernels().isa, w, x, y, act);
}

void gemm(const PackedGemm &w, const float *x, int ldx, int m, float *y, int ldy, Act act,
          bool accumulate) {
  gemm_isa(kernels().isa, w, x, ldx, m, y, ldy, act, accumulate);
}

}  // namespace ngs::cpu
