// Elementwise ops, conv1d (im2col + GEMM), LayerNorm, GRU/LSTM (ops.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"
#include "cpu/synth_internal.h"
#include "cpu/thread_pool.h"

namespace ngs::cpu {

void lrelu_inplace(float *x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = lrelu(x[i]);
}

void hardtanh_inplace(float *x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; ++i) x[i] = std::min(hi, std::max(lo, x[i]));
}

// ---------------------------------------------------------------------------------------
// conv1d

PackedConv conv_pack(const Conv1d &c) {
  PackedConv p;
  p.c_in = c.in;
  p.c_out = c.out;
  p.k = c.k;
  p.stride = c.stride;
  p.dilation = c.dilation;
  p.pad = c.pad;
  // Packed column kk * C_in + i takes source column i * k + kk.
  std::vector<int> map(static_cast<size_t>(c.in) * c.k);
  for (int kk = 0; kk < c.k; ++kk)
    for (int i = 0; i < c.in; ++i) map[static_cast<size_t>(kk) * c.in + i] = i * c.k + kk;
  p.gemm = gemm_pack(c.w, c.out, c.in * c.k, c.b, 0, map.data());
  return p;
}

int conv_out_length(const PackedConv &c, int l_in) {
  return (l_in + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
}

static bool conv_is_pointwise(const PackedConv &c, bool input_lrelu) {
  return c.k == 1 && c.stride == 1 && c.pad == 0 && !input_lrelu;
}

size_t conv_scratch_floats(const PackedConv &c, int l_in) {
  return static_cast<size_t>(conv_out_length(c, l_in)) * c.k * c.c_in;
}

void conv1d(const PackedConv &c, const float *x, int ldx, int l_in, float *y, int ldy, Act act,
            bool input_lrelu, float *scratch) {
  const int l_out = conv_out_length(c, l_in);
  if (conv_is_pointwise(c, input_lrelu)) {
    gemm(c.gemm, x, ldx, l_out, y, ldy, act);
    return;
  }
  const int kc = c.k * c.c_in;
  const Isa isa = isa_active();
  void (*copy_lrelu)(float *, const float *, int) = nullptr;
  if (input_lrelu && isa == Isa::kAvx512) copy_lrelu = lrelu_copy_avx512;
  if (input_lrelu && isa == Isa::kAvx2) copy_lrelu = lrelu_copy_avx2;
  if (c.c_in == 1 && !input_lrelu) {  // first encoder conv: single floats, no memcpy calls
    for (int t = 0; t < l_out; ++t) {
      float *row = scratch + static_cast<size_t>(t) * kc;
      for (int kk = 0; kk < c.k; ++kk) {
        int pos = t * c.stride + kk * c.dilation - c.pad;
        if (pos < 0) pos = -pos;
        if (pos >= l_in) pos = 2 * (l_in - 1) - pos;
        row[kk] = x[static_cast<size_t>(pos) * ldx];
      }
    }
    gemm(c.gemm, scratch, kc, l_out, y, ldy, act);
    return;
  }
  for (int t = 0; t < l_out; ++t) {
    float *row = scratch + static_cast<size_t>(t) * kc;
    for (int kk = 0; kk < c.k; ++kk) {
      int pos = t * c.stride + kk * c.dilation - c.pad;
      if (pos < 0) pos = -pos;
      if (pos >= l_in) pos = 2 * (l_in - 1) - pos;
      const float *src = x + static_cast<size_t>(pos) * ldx;
      float *dst = row + static_cast<size_t>(kk) * c.c_in;
      if (copy_lrelu) {
        copy_lrelu(dst, src, c.c_in);
      } else if (input_lrelu) {
        for (int i = 0; i < c.c_in; ++i) dst[i] = lrelu(src[i]);
      } else {
        std::memcpy(dst, src, sizeof(float) * c.c_in);
      }
    }
  }
  gemm(c.gemm, scratch, kc, l_out, y, ldy, act);
}

// ---------------------------------------------------------------------------------------
// LayerNorm

namespace {
// Sum of f(v[i]) in 16 interleaved partial sums (vectorised by the compiler without
// -ffast-math), then a fixed pairwise reduction.
template <typename F>
float sum16(const float *v, int n, F f) {
  float acc[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += f(v[i + j]);
  for (int j = 0; i < n; ++i, ++j) acc[j] += f(v[i]);
  for (int w = 8; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
}  // namespace

void layernorm_rows(float *x, int rows, int n, int ld, const float *gamma, const float *beta,
                    Act act) {
  for (int r = 0; r < rows; ++r) {
    float *v = x + static_cast<size_t>(r) * ld;
    const float mean = sum16(v, n, [](float a) { return a; }) / static_cast<float>(n);
    const float var =
        sum16(v, n, [mean](float a) { return (a - mean) * (a - mean); }) / static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(var + 1e-5f);
    for (int i = 0; i < n; ++i) {
      float o = (v[i] - mean) * inv * gamma[i] + beta[i];
      v[i] = act == Act::kLrelu ? lrelu(o) : o;
    }
  }
}

// ---------------------------------------------------------------------------------------
// GRU / LSTM

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

namespace {

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
  Isa isa;
  SpinBarrier *barrier;  // null with one part
};

// Unit blocks [b0, b1) for every step.
void rnn_steps(const RnnJob &jb, int b0, int b1) {
  const PackedRnn &r = *jb.r;
  const int H = r.hidden, ng = r.type == RnnType::kGru ? 3 : 4, G = ng * H;
  const int bs = ng * kRnnBlock;  // gate rows per block
  const Isa isa = jb.isa;
  auto block_gemv = isa == Isa::kAvx512 ? rnn_block_gemv_avx512
                    : isa == Isa::kAvx2 ? rnn_block_gemv_avx2
                                        : rnn_block_gemv_portable;
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
      if (isa != Isa::kPortable) {
        const bool a512 = isa == Isa::kAvx512;
        if (r.type == RnnType::kGru)
          (a512 ? gru_cell_avx512 : gru_cell_avx2)(gi + j0, H, g, kRnnBlock, n, h + j0, hn + j0);
        else
          (a512 ? lstm_cell_avx512 : lstm_cell_avx2)(gi + j0, H, g, kRnnBlock, n, jb.c + j0, hn + j0);
      } else if (r.type == RnnType::kGru) {
        for (int j = 0; j < n; ++j) {
          const float *a = gi + j0 + j;
          const float rg = sigmoidf(a[0] + g[j]);
          const float zg = sigmoidf(a[H] + g[kRnnBlock + j]);
          const float ngt = std::tanh(a[2 * H] + rg * g[2 * kRnnBlock + j]);
          hn[j0 + j] = (1.0f - zg) * ngt + zg * h[j0 + j];
        }
      } else {
        for (int j = 0; j < n; ++j) {
          const float *a = gi + j0 + j;
          float &c = jb.c[j0 + j];
          const float ig = sigmoidf(a[0] + g[j]);
          const float fg = sigmoidf(a[H] + g[kRnnBlock + j]);
          const float gg = std::tanh(a[2 * H] + g[2 * kRnnBlock + j]);
          const float og = sigmoidf(a[3 * H] + g[3 * kRnnBlock + j]);
          c = fg * c + ig * gg;
          hn[j0 + j] = og * std::tanh(c);
        }
      }
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
  jb.isa = isa_active();
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
