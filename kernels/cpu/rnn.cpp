// GRU / LSTM layers over a whole sequence (ops.h rnn_pack, rnn_forward): the input
// projections as one GEMM, then the recurrence by blocks of 16 units (rnn_block_gemv and
// the cells of the dispatch table: rnn_simd.cpp, or the portable ones here), optionally
// split across a thread pool by unit blocks with a spinning barrier per step.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
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

void rnn_pack_bf16(PackedRnn &r) {
  if (r.has_bf16()) return;
  const int H = r.hidden, ng = r.type == RnnType::kGru ? 3 : 4, kp = (H + 1) / 2;
  r.ih16 = gemm_pack_bf16(r.ih);
  const size_t bsz = static_cast<size_t>(H) * ng * kRnnBlock;        // fp32 block
  const size_t bsz16 = static_cast<size_t>(kp) * ng * kRnnBlock * 2;  // bf16 block
  r.hh16.assign(bsz16 * r.blocks, 0);
  for (int u = 0; u < r.blocks; ++u)
    for (int k = 0; k < H; ++k)
      for (int q = 0; q < ng; ++q)
        for (int j = 0; j < kRnnBlock; ++j)
          r.hh16[bsz16 * u + ((static_cast<size_t>(k / 2) * ng + q) * kRnnBlock + j) * 2 + (k & 1)] =
              bf16_from_float(r.hh[bsz * u + (static_cast<size_t>(k) * ng + q) * kRnnBlock + j]);
}

void rnn_pack_int8(PackedRnn &r) {
  if (r.has_int8()) return;
  const int H = r.hidden, ng = r.type == RnnType::kGru ? 3 : 4, k4 = (H + 3) / 4;
  const size_t bsz = static_cast<size_t>(H) * ng * kRnnBlock;       // fp32 block
  const size_t bsz8 = static_cast<size_t>(k4) * ng * kRnnBlock * 4;  // int8 block
  r.hh8.assign(bsz8 * r.blocks, 0);
  r.i8_scale.assign(static_cast<size_t>(r.blocks) * ng * kRnnBlock, 0.0f);
  r.i8_corr.assign(r.i8_scale.size(), 0.0f);
  for (int u = 0; u < r.blocks; ++u)
    for (int q = 0; q < ng; ++q)
      for (int j = 0; j < kRnnBlock; ++j) {
        auto wv = [&](int k) { return r.hh[bsz * u + (static_cast<size_t>(k) * ng + q) * kRnnBlock + j]; };
        float m = 0.0f;
        for (int k = 0; k < H; ++k) m = std::max(m, std::fabs(wv(k)));
        const size_t row = (static_cast<size_t>(u) * ng + q) * kRnnBlock + j;
        const float sc = m / 127.0f;
        r.i8_scale[row] = sc;
        int sum = 0;
        for (int k = 0; k < H; ++k) {
          const int v = m > 0.0f ? static_cast<int>(std::lrint(wv(k) / sc)) : 0;
          const int c = std::max(-127, std::min(127, v));
          r.hh8[bsz8 * u + ((static_cast<size_t>(k / 4) * ng + q) * kRnnBlock + j) * 4 + (k & 3)] =
              static_cast<int8_t>(c);
          sum += c;
        }
        r.i8_corr[row] = 128.0f * static_cast<float>(sum);
      }
}

size_t rnn_scratch_floats(const PackedRnn &r, int steps, int batch) {
  const size_t g = static_cast<size_t>(r.type == RnnType::kGru ? 3 : 4) * r.hidden;
  const size_t b = static_cast<size_t>(std::max(batch, 1));
  return b * (g * static_cast<size_t>(std::max(steps, 1)) + r.hh_b.size() +
              3 * static_cast<size_t>(r.hidden));
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

// B rows of the portable block GEMV (each row exactly rnn_block_gemv_portable's).
void rnn_block_gemm_portable(const float *w, const float *bias, int ng, int k, const float *x,
                             int ldx, int B, float *y, int ldy) {
  for (int b = 0; b < B; ++b)
    rnn_block_gemv_portable(w, bias, ng, k, x + static_cast<size_t>(b) * ldx, y + static_cast<size_t>(b) * ldy);
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
  int B;            // sequences
  const float *xp;  // input projections, sequence b at xp + b * rows * G: [rows][G]
  int rows;         // steps, or 1 for a constant input
  int steps;
  float *out;       // sequence b, step t at out + b * ldob + t * ldo (may be null)
  size_t ldob;
  int ldo;
  float *gh;       // [B][blocks * bs]: block u of row b at gh + b * ldg + u * bs
  float *hbuf[2];  // [B][h] at even / odd steps
  float *c;        // [B][h]
  bool fast;             // the bf16 matrix and kernels
  const KernelTable *k;  // the ISA's kernels
  SpinBarrier *barrier;  // null with one part
};

// Unit blocks [b0, b1) of every sequence for every step.
void rnn_steps(const RnnJob &jb, int b0, int b1) {
  const PackedRnn &r = *jb.r;
  const int H = r.hidden, ng = r.type == RnnType::kGru ? 3 : 4, G = ng * H, B = jb.B;
  const int bs = ng * kRnnBlock;  // gate rows per block
  const int ldg = r.blocks * bs;
  const KernelTable &kt = *jb.k;
  const size_t bsz = static_cast<size_t>(H) * bs;
  const size_t bsz16 = static_cast<size_t>((H + 1) / 2) * bs * 2;
  const size_t bsz8 = static_cast<size_t>((H + 3) / 4) * bs * 4;
  const bool int8 = jb.fast && r.has_int8();
  const int u0 = b0 * kRnnBlock, u1 = std::min(H, b1 * kRnnBlock);
  for (int t = 0; t < jb.steps; ++t) {
    const float *h = jb.hbuf[t & 1];
    float *hn = jb.hbuf[(t + 1) & 1];
    for (int u = b0; u < b1; ++u) {
      float *g = jb.gh + static_cast<size_t>(u) * bs;
      const float *bias = r.hh_b.data() + static_cast<size_t>(u) * bs;
      if (int8)
        kt.rnn_block_gemm_i8(r.hh8.data() + bsz8 * u, r.i8_scale.data() + static_cast<size_t>(u) * bs,
                             r.i8_corr.data() + static_cast<size_t>(u) * bs, bias, ng, H, h, H, B,
                             g, ldg);
      else if (jb.fast)
        kt.rnn_block_gemm_bf16(r.hh16.data() + bsz16 * u, bias, ng, H, h, H, B, g, ldg);
      else
        kt.rnn_block_gemm(r.hh.data() + bsz * u, bias, ng, H, h, H, B, g, ldg);
      const int j0 = u * kRnnBlock, n = std::min(kRnnBlock, H - j0);
      for (int b = 0; b < B; ++b) {
        const float *gi = jb.xp + (static_cast<size_t>(b) * jb.rows + (jb.rows == 1 ? 0 : t)) * G;
        const float *gb = g + static_cast<size_t>(b) * ldg;
        const size_t hb = static_cast<size_t>(b) * H;
        if (r.type == RnnType::kGru)
          kt.gru_cell(gi + j0, H, gb, kRnnBlock, n, h + hb + j0, hn + hb + j0);
        else
          kt.lstm_cell(gi + j0, H, gb, kRnnBlock, n, jb.c + hb + j0, hn + hb + j0);
      }
    }
    if (jb.out && u1 > u0)
      for (int b = 0; b < B; ++b)
        std::memcpy(jb.out + b * jb.ldob + static_cast<size_t>(t) * jb.ldo + u0,
                    hn + static_cast<size_t>(b) * H + u0, sizeof(float) * (u1 - u0));
    if (jb.barrier && t + 1 < jb.steps) jb.barrier->wait();
  }
}

void rnn_part(void *ctx, int, int b0, int b1) { rnn_steps(*static_cast<const RnnJob *>(ctx), b0, b1); }

}  // namespace

void rnn_forward_batch(const PackedRnn &r, int B, const float *x, size_t ldxb, int ldx,
                       bool x_constant, int steps, float *out, size_t ldob, int ldo,
                       float *h_final, float *scratch, ThreadPool *pool, bool fast) {
  if (B < 1) return;
  if (fast && !r.has_bf16()) throw Error(kInternalError, "rnn_forward: bf16 weights not prepared");
  const int H = r.hidden;
  const int G = (r.type == RnnType::kGru ? 3 : 4) * H;
  const int rows = x_constant ? 1 : std::max(steps, 1);
  RnnJob jb{};
  jb.r = &r;
  jb.B = B;
  jb.xp = scratch;  // [B][rows][G]
  jb.rows = x_constant ? 1 : steps;
  jb.steps = steps;
  jb.out = out;
  jb.ldob = ldob;
  jb.ldo = ldo;
  jb.gh = scratch + static_cast<size_t>(B) * rows * G;  // [B][blocks * G * 16]
  jb.hbuf[0] = jb.gh + static_cast<size_t>(B) * r.hh_b.size();
  jb.hbuf[1] = jb.hbuf[0] + static_cast<size_t>(B) * H;
  jb.c = jb.hbuf[1] + static_cast<size_t>(B) * H;
  jb.fast = fast;
  jb.k = &kernels();
  // All input projections in one GEMM per sequence (one GEMV for a constant input).
  for (int b = 0; b < B; ++b) {
    float *xp = scratch + static_cast<size_t>(b) * rows * G;
    const float *xb = x + b * ldxb;
    if (fast) {
      if (x_constant) gemv_bf16(r.ih16, xb, xp, Act::kNone);
      else gemm_bf16(r.ih16, xb, ldx, steps, xp, G, Act::kNone);
    } else {
      if (x_constant) gemv(r.ih, xb, xp, Act::kNone);
      else gemm(r.ih, xb, ldx, steps, xp, G, Act::kNone);
    }
  }
  std::fill(jb.hbuf[0], jb.hbuf[0] + static_cast<size_t>(B) * H, 0.0f);
  std::fill(jb.c, jb.c + static_cast<size_t>(B) * H, 0.0f);
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
  if (h_final)
    std::memcpy(h_final, jb.hbuf[steps & 1], sizeof(float) * static_cast<size_t>(B) * H);
}

void rnn_forward(const PackedRnn &r, const float *x, int ldx, bool x_constant, int steps,
                 float *out, int ldo, float *h_final, float *scratch, ThreadPool *pool, bool fast) {
  rnn_forward_batch(r, 1, x, 0, ldx, x_constant, steps, out, 0, ldo, h_final, scratch, pool, fast);
}

}  // namespace ngs::cpu
