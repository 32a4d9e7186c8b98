// Per-hop kernels of the real-time synth (cpu.h: LatentStream, OlaStream): the sequence
// VAE's decoder RNN one step at a time for a batch of voices, and the streaming form of
// decode stage 3 (overlap-add, divisor, FIR, softsign) for one voice. No call allocates.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/cpu.h"
#include "cpu/ops.h"
#include "cpu/synth_internal.h"

namespace ngs::cpu {

// ---------------------------------------------------------------------------------------
// LatentStream

struct LatentStream::Impl {
  LatentConfig cfg;
  std::vector<PackedGemm> dec_e;
  struct Layer {
    int in = 0, H = 0, G = 0;
    PackedGemm ih;  // [G][in] + b_ih
    PackedGemm hh;  // [G][H] + b_hh: one GEMM over the batch per step
    size_t off_h = 0, off_c = 0;  // in the voice state
  };
  std::vector<Layer> rnn;
  struct LnLin {
    PackedGemm lin;
    const float *g = nullptr, *b = nullptr;
  };
  std::vector<LnLin> dec_z;
  PackedGemm dec_z_out;
  bool gru = false;
  int width = 0;   // widest activation row
  int gmax = 0;    // widest gate row
  size_t state = 0;
};

LatentStream::LatentStream(const LatentWeights &w) : impl_(new Impl) {
  Impl &m = *impl_;
  m.cfg = w.cfg;
  const LatentConfig &c = w.cfg;
  m.gru = c.rnn == RnnType::kGru;
  const int ng = c.gates();
  for (const Linear &l : w.dec_e) m.dec_e.push_back(gemm_pack(l));
  size_t off = 0;
  for (const RnnLayer &l : w.dec_rnn) {
    Impl::Layer L;
    L.in = l.in;
    L.H = l.hidden;
    L.G = ng * l.hidden;
    L.ih = gemm_pack(l.w_ih, L.G, l.in, l.b_ih);
    L.hh = gemm_pack(l.w_hh, L.G, l.hidden, l.b_hh);
    m.gmax = std::max(m.gmax, L.G);
    m.rnn.push_back(std::move(L));
  }
  // State: [gi0: G of layer 0][h_k, c_k per layer].
  off = m.rnn.empty() ? 0 : static_cast<size_t>(m.rnn[0].G);
  for (Impl::Layer &L : m.rnn) {
    L.off_h = off;
    L.off_c = off + L.H;
    off += 2 * static_cast<size_t>(L.H);
  }
  m.state = off;
  for (const LayerNormLinear &l : w.dec_z) m.dec_z.push_back({gemm_pack(l.lin), l.ln_w, l.ln_b});
  m.dec_z_out = gemm_pack(w.dec_z_out);
  m.width = std::max({c.z_dim, c.e_dim + c.n_conds, c.h_dim + c.n_conds});
  for (const PackedGemm &g : m.dec_e) m.width = std::max(m.width, g.n);
  for (const Impl::Layer &L : m.rnn) m.width = std::max({m.width, L.H + c.n_conds, L.in});
  for (const Impl::LnLin &l : m.dec_z) m.width = std::max(m.width, l.lin.n);
}

LatentStream::~LatentStream() = default;

size_t LatentStream::state_floats() const { return impl_->state; }

size_t LatentStream::scratch_floats(int max_batch) const {
  const Impl &m = *impl_;
  const size_t B = static_cast<size_t>(std::max(max_batch, 1));
  // two activation buffers [B][width], gates gi and gh [B][gmax]
  return 2 * B * m.width + 2 * B * m.gmax + 2 * static_cast<size_t>(m.width) + 64;
}

void LatentStream::start(const float *e, int class_index, float *state, float *scratch) const {
  const Impl &m = *impl_;
  const LatentConfig &c = m.cfg;
  float *a = scratch, *b = scratch + m.width;
  std::memcpy(a, e, sizeof(float) * c.e_dim);
  for (int k = 0; k < c.n_conds; ++k) a[c.e_dim + k] = k == class_index ? 1.0f : 0.0f;
  for (const PackedGemm &l : m.dec_e) {
    gemv(l, a, b, Act::kLrelu);  // as LatentModel::decode
    std::swap(a, b);
  }
  std::fill(state, state + m.state, 0.0f);
  if (!m.rnn.empty()) gemv(m.rnn[0].ih, a, state, Act::kNone);  // constant input, once
}

namespace {

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// The cells of ops.cpp rnn_steps, over the same blocks of 16 units (so the SIMD and
// scalar parts cover the same units as in LatentModel::decode).
void cell_blocks(bool gru, const float *gi, const float *gh, int H, float *c, const float *h_prev,
                 float *h) {
  const Isa isa = isa_active();
  for (int j0 = 0; j0 < H; j0 += kRnnBlock) {
    const int n = std::min(kRnnBlock, H - j0);
    if (isa != Isa::kPortable) {
      const bool a512 = isa == Isa::kAvx512;
      if (gru)
        (a512 ? gru_cell_avx512 : gru_cell_avx2)(gi + j0, H, gh + j0, H, n, h_prev + j0, h + j0);
      else
        (a512 ? lstm_cell_avx512 : lstm_cell_avx2)(gi + j0, H, gh + j0, H, n, c + j0, h + j0);
      continue;
    }
    for (int j = j0; j < j0 + n; ++j) {
      const float *a = gi + j;
      const float *g = gh + j;
      if (gru) {
        const float rg = sigmoidf(a[0] + g[0]);
        const float zg = sigmoidf(a[H] + g[H]);
        const float ngt = std::tanh(a[2 * H] + rg * g[2 * H]);
        h[j] = (1.0f - zg) * ngt + zg * h_prev[j];
      } else {
        const float ig = sigmoidf(a[0] + g[0]);
        const float fg = sigmoidf(a[H] + g[H]);
        const float gg = std::tanh(a[2 * H] + g[2 * H]);
        const float og = sigmoidf(a[3 * H] + g[3 * H]);
        c[j] = fg * c[j] + ig * gg;
        h[j] = og * std::tanh(c[j]);
      }
    }
  }
}

}  // namespace

void LatentStream::step(float *const *states, const int *class_index, int B, float *z, int ldz,
                        float *scratch) const {
  if (B <= 0) return;
  const Impl &m = *impl_;
  const LatentConfig &c = m.cfg;
  const int W = m.width, nc = c.n_conds;
  float *a = scratch;                                   // [B][W]
  float *b = a + static_cast<size_t>(B) * W;            // [B][W]
  float *gi = b + static_cast<size_t>(B) * W;           // [B][gmax]
  float *gh = gi + static_cast<size_t>(B) * m.gmax;     // [B][gmax]
  for (size_t k = 0; k < m.rnn.size(); ++k) {
    const Impl::Layer &L = m.rnn[k];
    // Recurrent products of all voices: one GEMM, the matrix read once.
    for (int v = 0; v < B; ++v)
      std::memcpy(b + static_cast<size_t>(v) * W, states[v] + L.off_h, sizeof(float) * L.H);
    // One voice: the streaming GEMV reads the same panels faster than a 1-row GEMM tile.
    if (B == 1) gemv(L.hh, b, gh, Act::kNone);
    else gemm(L.hh, b, W, B, gh, m.gmax, Act::kNone);
    // Input projections: the constant one of layer 0, else the previous layer's new h (in a).
    if (k > 0) {
      if (B == 1) gemv(L.ih, a, gi, Act::kNone);
      else gemm(L.ih, a, W, B, gi, m.gmax, Act::kNone);
    }
    for (int v = 0; v < B; ++v) {
      float *st = states[v];
      const float *giv = k == 0 ? st : gi + static_cast<size_t>(v) * m.gmax;
      float *h = st + L.off_h;
      cell_blocks(m.gru, giv, gh + static_cast<size_t>(v) * m.gmax, L.H, st + L.off_c, h, h);
      std::memcpy(a + static_cast<size_t>(v) * W, h, sizeof(float) * L.H);
    }
  }
  // a = [h_last ; one_hot(class)] rows, then the per-step MLP.
  const int H = m.rnn.empty() ? 0 : m.rnn.back().H;
  for (int v = 0; v < B; ++v)
    for (int k = 0; k < nc; ++k) a[static_cast<size_t>(v) * W + H + k] = k == class_index[v] ? 1.0f : 0.0f;
  int width = H + nc;
  for (const Impl::LnLin &l : m.dec_z) {
    gemm(l.lin, a, W, B, b, W, Act::kNone);
    layernorm_rows(b, B, l.lin.n, W, l.g, l.b, Act::kLrelu);
    width = l.lin.n;
    std::swap(a, b);
  }
  (void)width;
  gemm(m.dec_z_out, a, W, B, z, ldz, Act::kNone);
}

// ---------------------------------------------------------------------------------------
// OlaStream

void OlaStream::reset(float *buffer, const OlaStreamShape &s) {
  buf = buffer;
  base = 0;
  grains = 0;
  final_end = 0;
  length = -1;
  std::fill(buf, buf + s.buffer_floats(), 0.0f);
}

namespace {

// Moves the window so that local sample `from` is at buf[0] (from >= base); the freed tail
// is zeroed (samples past every added grain are zero).
void ola_shift(OlaStream &st, const OlaStreamShape &s, long long from) {
  const int cap = s.buffer_floats();
  const long long d = from - st.base;
  if (d <= 0) return;
  if (d >= cap) {
    std::fill(st.buf, st.buf + cap, 0.0f);
  } else {
    std::memmove(st.buf, st.buf + d, sizeof(float) * static_cast<size_t>(cap - d));
    std::fill(st.buf + (cap - d), st.buf + cap, 0.0f);
  }
  st.base = from;
}

// Divides block b (samples [b hop, (b + 1) hop)) by its grain count (as
// synth_overlap_add_blocks): grains max(0, b - per + 1) .. min(b, n - 1).
void ola_finish_block(OlaStream &st, const OlaStreamShape &s, int b, int n_known) {
  const int per = s.l_grain / s.hop;
  const int g0 = std::max(0, b - per + 1), g1 = n_known < 0 ? b : std::min(b, n_known - 1);
  const int cnt = g1 - g0 + 1;
  if (s.normalize && cnt > 1) {
    const float d = static_cast<float>(cnt);
    float *ab = st.buf + (static_cast<long long>(b) * s.hop - st.base);
    for (int i = 0; i < s.hop; ++i) ab[i] /= d;
  }
}

}  // namespace

void ola_stream_add(OlaStream &st, const OlaStreamShape &s, const float *y, bool last) {
  const int cap = s.buffer_floats();
  const int g = st.grains;
  const long long at = static_cast<long long>(g) * s.hop;
  if (at + s.l_grain - st.base > cap) ola_shift(st, s, at + s.l_grain - cap);
  float *dst = st.buf + (at - st.base);
  for (int i = 0; i < s.l_grain; ++i) dst[i] += y[i];
  st.grains = g + 1;
  if (!last) {
    ola_finish_block(st, s, g, -1);  // block g now has all its grains
    st.final_end = at + s.hop;
    return;
  }
  const int per = s.l_grain / s.hop;
  for (int b = g; b < g + per; ++b) ola_finish_block(st, s, b, g + 1);
  st.final_end = st.length = static_cast<long long>(g + per) * s.hop;
}

void ola_stream_end(OlaStream &st, const OlaStreamShape &s) {
  if (st.length >= 0) return;
  if (st.grains == 0) {
    st.final_end = st.length = 0;
    return;
  }
  // The last grain added was not marked last: its tail blocks keep the running divisor.
  // (The synth always marks the last grain; this only guards a voice cut short.)
  const int per = s.l_grain / s.hop;
  const int g = st.grains - 1;
  for (int b = g + 1; b < g + per; ++b) ola_finish_block(st, s, b, st.grains);
  st.final_end = st.length = static_cast<long long>(g + per) * s.hop;
}

void ola_stream_output(OlaStream &st, const OlaStreamShape &s, const float *fir, float bias,
                       long long t0, long long t1, float *out) {
  if (t1 <= t0) return;
  const int lb = s.lookback();
  // Keep lookback samples before t0 in the window (never move past sample 0).
  const long long keep = std::max<long long>(0, t0 - lb);
  if (keep > st.base) ola_shift(st, s, keep);
  const long long len = st.length >= 0 ? st.length - st.base : s.buffer_floats();
  // synth_fir_softsign_range writes out[t] for t in [t0, t1) relative to buf; out points at
  // the sample t0, so shift it back.
  synth_fir_softsign_range(st.buf, static_cast<int>(len), fir, s.taps, bias,
                           out - (t0 - st.base), static_cast<int>(t0 - st.base),
                           static_cast<int>(t1 - st.base));
}

}  // namespace ngs::cpu
