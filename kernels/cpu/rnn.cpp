// GRU / LSTM layers over a whole sequence (ops.h rnn_pack, rnn_forward): the input
// projections as one GEMM, then the recurrence by blocks of 16 units (rnn_block_gemv and
// the cells of the dispatch table: rnn_simd.cpp, or the portable ones here), optionally
// split across a thread pool by unit blocks with a spinning barrier per step.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace ngs::cpu {

PackedRnn rnn_pack(const RnnLayer &l, RnnType type) {
  PackedRnn r;
  r.type = type;
  r.in = l.in;
  r.hidden = l.hidden;
  const int H = l.hidden, ng = type == RnnType::kGru ? 3 : 4, g = ng * H;
  r.blocks = (H + kRnnBlock - 1) / kRnnBlock;
  r.ih = gemm_pack(l.w_ih, g, l.in, l.b_ih);
  const size_t bsz = static_cast<size_t>(H) * ng * kRnnBlock;
  r.hh.assign(bsz * r.blocks, 0.0f);
  r.hh_b.assign(static_cast<size_t>(r.blocks) * ng * kRnnBlock, 0.0f);
  for (int u = 0; u < r.blocks; ++u)
    for (int q = 0; q < ng; ++q)
      for (int j = 0; j < kRnnBlock && u * kRnnBlock + j < H; ++j) {
        const int src = q * H + u * kRnnBlock + j;
        for (int k = 0; k < H; ++k)
          r.hh[bsz * u + (static_cast<size_t>(k) * ng + q) * kRnnBlock + j] =
              l.w_hh[static_cast<size_t>(src) * H + k];
        if (l.b_hh) r.hh_b[(static_cast<size_t>(u) * ng + q) * kRnnBlock + j] = l.b_hh[src];
      }
  return r;
}

size_t rnn_scratch_floats(const PackedRnn &r, int steps) {
  const size_t g = static_cast<size_t>(r.type == RnnType::kGru ? 3 : 4) * r.hidden;
  return g * static_cast<size_t>(std::max(steps, 1)) + r.hh_b.size() +
         3 * static_cast<size_t>(r.hidden);
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Portable block GEMV, the same per-gate summation as the SIMD ones (even and odd k in
// two sums).
void rnn_block_gemv_portable(const float *w, const float *bias, int ng, int k, const float *x,
                             float *y) {
  float a[4][kRnnBlock], c[4][kRnnBlock];
  for (int q = 0; q < ng; ++q)
    for (int j = 0; j < kRnnBlock; ++j) {
      a[q][j] = bias[q * kRnnBlock + j];
      c[q][j] = 0.0f;
    }
  for (int i = 0; i < k; ++i) {
    const float *wi = w + static_cast<size_t>(i) * ng * kRnnBlock;
    float(*acc)[kRnnBlock] = (i & 1) ? c : a;
    for (int q = 0; q < ng; ++q)
      for (int j = 0; j < kRnnBlock; ++j) acc[q][j] += x[i] * wi[q * kRnnBlock + j];
  }
  for (int q = 0; q < ng; ++q)
    for (int j = 0; j < kRnnBlock; ++j) y[q * kRnnBlock + j] = a[q][j] + c[q][j];
}

// Portable cells (same contract as rnn_internal.h's): PyTorch formulas.
void lstm_cell_portable(const float *gi, int ldi, const float *gh, int ldh, int n, float *c,
                        float *h) {
  for (int j = 0; j < n; ++j) {
    const float ig = sigmoidf(gi[j] + gh[j]);
    const float fg = sigmoidf(gi[ldi + j] + gh[ldh + j]);
    const float gg = std::tanh(gi[2 * ldi + j] + gh[2 * ldh + j]);
    const float og = sigmoidf(gi[3 * ldi + j] + gh[3 * ldh + j]);
    c[j] = fg * c[j] + ig * gg;
    h[j] = og * std::tanh(c[j]);
  }
}

void gru_cell_portable(const float *gi, int ldi, const float *gh, int ldh, int n,
                       const float *h_prev, float *h) {
  for (int j = 0; j < n; ++j) {
    const float rg = sigmoidf(gi[j] + gh[j]);
    const float zg = sigmoidf(gi[ldi + j] + gh[ldh + j]);
    const float ngt = std::tanh(gi[2 * ldi + j] + rg * gh[2 * ldh + j]);
    h[j] = (1.0f - zg) * ngt + zg * h_prev[j];
  }
}

namespace {

struct RnnJob {
  const PackedRnn *r;
  const float *xp;  // input projections [steps or 1][G]
  bool x_constant;
  int steps;
  float *out;
  int ldo;
  float *gh;       // [blocks * G * 16], blocked
  float *hbuf[2];  // h at even / odd steps
  float *c;
  const KernelTable *k;  // the ISA's kernels
  SpinBarrier *barrier;  // null with one part
};

// Unit blocks [b0, b1) for every step.
void rnn_steps(const RnnJob &jb, int b0, int b1) {
  const PackedRnn &r = *jb.r;
  const int H = r.hidden, ng = r.type == RnnType::kGru ? 3 : 4, G = ng * H;
  const int bs = ng * kRnnBlock;  // gate rows per block
  const KernelTable &kt = *jb.k;
  const auto block_gemv = kt.rnn_block_gemv;
  const size_t bsz = static_cast<size_t>(H) * bs;
  const int u0 = b0 * kRnnBlock, u1 = std::min(H, b1 * kRnnBlock);
  for (int t = 0; t < jb.steps; ++t) {
    const float *gi = jb.xp + static_cast<size_t>(jb.x_constant ? 0 : t) * G;
    const float *h = jb.hbuf[t & 1];
    float *hn = jb.hbuf[(t + 1) & 1];
    for (int u = b0; u < b1; ++u) {
      float *g = jb.gh + static_cast<size_t>(u) * bs;
      block_gemv(r.hh.data() + bsz * u, r.hh_b.data() + static_cast<size_t>(u) * bs, ng, H, h, g);
      const int j0 = u * kRnnBlock, n = std::min(kRnnBlock, H - j0);
      if (r.type == RnnType::kGru)
        kt.gru_cell(gi + j0, H, g, kRnnBlock, n, h + j0, hn + j0);
      else
        kt.lstm_cell(gi + j0, H, g, kRnnBlock, n, jb.c + j0, hn + j0);
    }
    if (jb.out && u1 > u0)
      std::memcpy(jb.out + static_cast<size_t>(t) * jb.ldo + u0, hn + u0, sizeof(float) * (u1 - u0));
    if (jb.barrier && t + 1 < jb.steps) jb.barrier->wait();
  }
}

void rnn_part(void *ctx, int, int b0, int b1) { rnn_steps(*static_cast<const RnnJob *>(ctx), b0, b1); }

}  // namespace

void rnn_forward(const PackedRnn &r, const float *x, int ldx, bool x_constant, int steps,
                 float *out, int ldo, float *h_final, float *scratch, ThreadPool *pool) {
  const int H = r.hidden;
  const int G = (r.type == RnnType::kGru ? 3 : 4) * H;
  float *xp = scratch;  // [steps or 1][G]
  const int rows = x_constant ? 1 : steps;
  RnnJob jb{};
  jb.r = &r;
  jb.xp = xp;
  jb.x_constant = x_constant;
  jb.steps = steps;
  jb.out = out;
  jb.ldo = ldo;
  jb.gh = xp + static_cast<size_t>(std::max(rows, 1)) * G;  // [blocks * G * 16]
  jb.hbuf[0] = jb.gh + r.hh_b.size();
  jb.hbuf[1] = jb.hbuf[0] + H;
  jb.c = jb.hbuf[1] + H;
  jb.k = &kernels();
  // All input projections in one GEMM (one GEMV for a constant input).
  if (x_constant) gemv(r.ih, x, xp, Act::kNone);
  else gemm(r.ih, x, ldx, rows, xp, G, Act::kNone);
  std::fill(jb.hbuf[0], jb.hbuf[0] + H, 0.0f);
  std::fill(jb.c, jb.c + H, 0.0f);
  // At least 4 blocks (64 units) per thread: below that the barrier costs more than it saves.
  constexpr int kMinBlocks = 4;
  const int parts = pool ? pool->parts(r.blocks, kMinBlocks) : 1;
  if (parts > 1 && steps > 0) {
    SpinBarrier barrier(parts);
    jb.barrier = &barrier;
    pool->run(rnn_part, &jb, r.blocks, kMinBlocks);
  } else {
    rnn_steps(jb, 0, r.blocks);
  }
  if (h_final) std::memcpy(h_final, jb.hbuf[steps & 1], sizeof(float) * H);
}

}  // namespace ngs::cpu
