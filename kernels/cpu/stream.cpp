// Per-hop kernels of the real-time synth (cpu.h: LatentStream, OlaStream): the sequence
// VAE's decoder RNN one step at a time for a batch of voices, and the streaming form of
// decode stage 3 (overlap-add, divisor, FIR, softsign) for one voice. No call allocates.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/cpu.h"
#include "cpu/ops.h"
#include "cpu/decoder_internal.h"
#include "cpu/dispatch.h"

namespace ngs::cpu {

// ---------------------------------------------------------------------------------------
// LatentStream

// The start and the step are cut into parts (LatentStream::parts) of about part_macs
// (kStreamPartMacs) multiply-adds each, so that the synth's spread mode can put them in different
// host blocks: the first layer's input projection (start) and every recurrent matrix
// (step) are packed as column chunks of a multiple of 32 outputs. A GEMM tile covers 32
// columns from a multiple of 32 (gemm.cpp) and the GEMV 16 (one panel), so a chunk's
// columns are computed exactly as in the whole matrix: the parts give the same bits as
// the whole start and step. What a voice carries from one part to the next is in its
// state (the gate pre-activations, the MLP activations).
namespace {

// At most this many chunks per matrix (so that a start and a step of up to three layers
// stay within Session::kMaxRnnParts parts).
constexpr long kMaxChunks = 8;

struct GemmChunk {
  int c0 = 0;  // first output column
  PackedGemm w;
  PackedGemmBf16 w16;  // fast precision (prepare_fast)
};

// One GEMM of a streaming step: fp32, or bf16 products with fp32 sums (fast precision).
void step_gemm(bool fast, const PackedGemm &w, const PackedGemmBf16 &w16, const float *x, int ldx,
               int rows, float *y, int ldy) {
  if (fast) gemm_bf16(w16, x, ldx, rows, y, ldy, Act::kNone);
  else gemm(w, x, ldx, rows, y, ldy, Act::kNone);
}

// w [n][k] (+ bias) packed as even column chunks of a multiple of `align` columns, of
// about part_macs multiply-adds each.
std::vector<GemmChunk> pack_chunks(const float *w, int n, int k, const float *bias, int align,
                                   long part_macs) {
  std::vector<GemmChunk> out;
  const long macs = static_cast<long>(n) * std::max(1, k);
  const int n_chunks = static_cast<int>(std::min<long>(kMaxChunks, std::max<long>(1, (macs + part_macs - 1) / part_macs)));
  const int cols = ((n + n_chunks - 1) / n_chunks + align - 1) / align * align;
  for (int c0 = 0; c0 < n; c0 += cols) {
    const int c1 = std::min(n, c0 + cols);
    GemmChunk chunk;
    chunk.c0 = c0;
    chunk.w = gemm_pack(w + static_cast<size_t>(c0) * k, c1 - c0, k, bias ? bias + c0 : nullptr);
    out.push_back(std::move(chunk));
  }
  return out;
}

}  // namespace

struct LatentStream::Impl {
  LatentConfig cfg;
  struct DecE {
    int n = 0;
    std::vector<GemmChunk> lin;  // column chunks of 16 (a GEMV panel) multiples
  };
  std::vector<DecE> dec_e;
  using Chunk = GemmChunk;
  struct Layer {
    int in = 0, H = 0, G = 0;
    PackedGemm ih;               // [G][in] + b_ih (layers k > 0: one GEMM over the batch per step)
    PackedGemmBf16 ih16;         // fast precision (prepare_fast)
    std::vector<Chunk> ih0;      // layer 0: the constant input projection in column chunks (start)
    std::vector<Chunk> hh;       // [G][H] + b_hh in column chunks: one GEMM each over the batch
    size_t off_h = 0, off_c = 0;  // in the voice state
  };
  std::vector<Layer> rnn;
  struct LnLin {
    int n = 0, k = 0;
    std::vector<Chunk> lin;  // [n][k] + bias in column chunks (LayerNorm after the last)
    const float *g = nullptr, *b = nullptr;
  };
  std::vector<LnLin> dec_z;
  PackedGemm dec_z_out;
  PackedGemmBf16 dec_z_out16;
  bool has_fast = false;  // the bf16 copies of the step's matrices (prepare_fast)
  bool gru = false;
  int width = 0;   // widest activation row
  int gmax = 0;    // widest gate row
  size_t off_gh = 0, off_gi = 0, off_act = 0, off_out = 0;  // per voice: gate rows, input
                                                            // projection, activation, dec_z output
  size_t state = 0;
  // The parts, in order. Start: kind 0 = chunk `index` of dec_e layer `layer` (its output
  // becomes the activation after its last chunk), 1 = chunk `index` of layer 0's
  // input projection. Step: kind 2 = layer `layer`'s input projection (k > 0), 3 = chunk
  // `index` of layer `layer`'s recurrent matrix (the layer's cells after its last chunk),
  // 4 = chunk `index` of dec_z layer `layer` (its LayerNorm after its last chunk; the last
  // part also runs dec_z_out).
  struct Part {
    int kind = 0, layer = 0, index = 0;
    long macs = 0;
  };
  std::vector<Part> start_parts, step_parts;
};

LatentStream::LatentStream(const LatentWeights &w, long part_macs) : impl_(new Impl) {
  part_macs = std::max(1L, part_macs);
  Impl &m = *impl_;
  m.cfg = w.cfg;
  const LatentConfig &c = w.cfg;
  m.gru = c.rnn == RnnType::kGru;
  const int ng = c.gates();
  for (const Linear &l : w.dec_e) m.dec_e.push_back({l.out, pack_chunks(l.w, l.out, l.in, l.b, kGemmNr, part_macs)});
  for (const RnnLayer &l : w.dec_rnn) {
    Impl::Layer L;
    L.in = l.in;
    L.H = l.hidden;
    L.G = ng * l.hidden;
    if (m.rnn.empty()) L.ih0 = pack_chunks(l.w_ih, L.G, l.in, l.b_ih, kGemmNr, part_macs);
    else L.ih = gemm_pack(l.w_ih, L.G, l.in, l.b_ih);
    L.hh = pack_chunks(l.w_hh, L.G, l.hidden, l.b_hh, 2 * kGemmNr, part_macs);
    m.gmax = std::max(m.gmax, L.G);
    m.rnn.push_back(std::move(L));
  }
  for (const LayerNormLinear &l : w.dec_z)
    m.dec_z.push_back({l.lin.out, l.lin.in, pack_chunks(l.lin.w, l.lin.out, l.lin.in, l.lin.b, 2 * kGemmNr, part_macs),
                       l.ln_w, l.ln_b});
  m.dec_z_out = gemm_pack(w.dec_z_out);
  m.width = std::max({c.z_dim, c.e_dim + c.n_conds, c.h_dim + c.n_conds});
  for (const Impl::DecE &g : m.dec_e) m.width = std::max(m.width, g.n);
  for (const Impl::Layer &L : m.rnn) m.width = std::max({m.width, L.H + c.n_conds, L.in});
  for (const Impl::LnLin &l : m.dec_z) m.width = std::max(m.width, l.n);
  // State: [gi0: G of layer 0][h_k, c_k per layer][gh: gmax][gi: gmax][act: width].
  size_t off = m.rnn.empty() ? 0 : static_cast<size_t>(m.rnn[0].G);
  for (Impl::Layer &L : m.rnn) {
    L.off_h = off;
    L.off_c = off + L.H;
    off += 2 * static_cast<size_t>(L.H);
  }
  m.off_gh = off;
  m.off_gi = m.off_gh + m.gmax;
  m.off_act = m.off_gi + m.gmax;
  m.off_out = m.off_act + m.width;
  m.state = m.off_out + m.width;
  // The parts.
  for (size_t i = 0; i < m.dec_e.size(); ++i)
    for (size_t j = 0; j < m.dec_e[i].lin.size(); ++j) {
      const PackedGemm &g = m.dec_e[i].lin[j].w;
      m.start_parts.push_back({0, static_cast<int>(i), static_cast<int>(j), static_cast<long>(g.n) * g.k});
    }
  if (!m.rnn.empty())
    for (size_t i = 0; i < m.rnn[0].ih0.size(); ++i) {
      const PackedGemm &g = m.rnn[0].ih0[i].w;
      m.start_parts.push_back({1, 0, static_cast<int>(i), static_cast<long>(g.n) * g.k});
    }
  if (m.start_parts.empty()) m.start_parts.push_back({0, 0, -1, 1});  // zero state only
  for (size_t k = 0; k < m.rnn.size(); ++k) {
    const Impl::Layer &L = m.rnn[k];
    if (k > 0) m.step_parts.push_back({2, static_cast<int>(k), 0, static_cast<long>(L.ih.n) * L.ih.k});
    for (size_t i = 0; i < L.hh.size(); ++i)
      m.step_parts.push_back({3, static_cast<int>(k), static_cast<int>(i),
                              static_cast<long>(L.hh[i].w.n) * L.hh[i].w.k});
    // The cells (after the last chunk): about 200 multiply-adds' time per unit (GRU; LSTM
    // 260), measured with 256 voices (perf: gru_cell against the GEMMs).
    m.step_parts.back().macs += static_cast<long>(L.H) * (m.gru ? 200 : 260);
  }
  for (size_t i = 0; i < m.dec_z.size(); ++i) {
    for (size_t j = 0; j < m.dec_z[i].lin.size(); ++j) {
      const PackedGemm &g = m.dec_z[i].lin[j].w;
      m.step_parts.push_back({4, static_cast<int>(i), static_cast<int>(j), static_cast<long>(g.n) * g.k});
    }
    m.step_parts.back().macs += static_cast<long>(m.dec_z[i].n) * 150;  // its LayerNorm (as the cells)
  }
  if (m.dec_z.empty()) m.step_parts.push_back({4, -1, 0, 0});
  m.step_parts.back().macs += static_cast<long>(m.dec_z_out.n) * m.dec_z_out.k;
}

LatentStream::~LatentStream() = default;

size_t LatentStream::state_floats() const { return impl_->state; }

size_t LatentStream::scratch_floats(int max_batch) const {
  const Impl &m = *impl_;
  const size_t B = static_cast<size_t>(std::max(max_batch, 1));
  // two activation buffers [B][width], gates gi and gh [B][gmax]
  return 2 * B * m.width + 2 * B * m.gmax + 2 * static_cast<size_t>(m.width) + 64;
}

int LatentStream::parts(bool start, long *macs) const {
  const std::vector<Impl::Part> &p = start ? impl_->start_parts : impl_->step_parts;
  if (macs)
    for (size_t i = 0; i < p.size(); ++i) macs[i] = p[i].macs;
  return static_cast<int>(p.size());
}

void LatentStream::start(const float *e, int class_index, float *state, float *scratch) const {
  for (int p = 0; p < static_cast<int>(impl_->start_parts.size()); ++p)
    start_part(p, e, class_index, state, scratch);
}

void LatentStream::start_part(int part, const float *e, int class_index, float *state,
                              float * /*scratch: the start's parts need none*/) const {
  const Impl &m = *impl_;
  const LatentConfig &c = m.cfg;
  const Impl::Part &P = m.start_parts[static_cast<size_t>(part)];
  float *act = state + m.off_act;
  if (part == 0) {  // zero state; the activation starts as [e ; one_hot(class)]
    std::fill(state, state + m.state, 0.0f);
    std::memcpy(act, e, sizeof(float) * c.e_dim);
    for (int k = 0; k < c.n_conds; ++k) act[c.e_dim + k] = k == class_index ? 1.0f : 0.0f;
  }
  if (P.index < 0) return;
  if (P.kind == 0) {
    // A GEMV panel's columns do not depend on the others: the chunks give the layer's bits.
    const Impl::DecE &l = m.dec_e[static_cast<size_t>(P.layer)];
    const Impl::Chunk &ch = l.lin[static_cast<size_t>(P.index)];
    float *o = state + m.off_out;
    gemv(ch.w, act, o + ch.c0, Act::kLrelu);  // as LatentModel::decode
    if (static_cast<size_t>(P.index) + 1 == l.lin.size()) std::memcpy(act, o, sizeof(float) * l.n);
  } else {
    const Impl::Chunk &ch = m.rnn[0].ih0[static_cast<size_t>(P.index)];
    gemv(ch.w, act, state + ch.c0, Act::kNone);  // the constant input projection, once
  }
}

namespace {


// The cells of rnn.cpp's recurrences (the dispatch table's), over the same blocks of 16
// units, so the SIMD and scalar parts cover the same units as in LatentModel::decode.
void cell_blocks(bool gru, const float *gi, const float *gh, int H, float *c, const float *h_prev,
                 float *h) {
  const KernelTable &kt = kernels();
  for (int j0 = 0; j0 < H; j0 += kRnnBlock) {
    const int n = std::min(kRnnBlock, H - j0);
    if (gru)
      kt.gru_cell(gi + j0, H, gh + j0, H, n, h_prev + j0, h + j0);
    else
      kt.lstm_cell(gi + j0, H, gh + j0, H, n, c + j0, h + j0);
  }
}

}  // namespace

size_t LatentStream::prepare_fast() {
  Impl &m = *impl_;
  if (m.has_fast) return 0;
  size_t bytes = 0;
  for (Impl::Layer &L : m.rnn) {
    if (L.ih.n > 0) {
      L.ih16 = gemm_pack_bf16(L.ih);
      bytes += L.ih16.bytes();
    }
    for (Impl::Chunk &ch : L.hh) {
      ch.w16 = gemm_pack_bf16(ch.w);
      bytes += ch.w16.bytes();
    }
  }
  for (Impl::LnLin &l : m.dec_z)
    for (Impl::Chunk &ch : l.lin) {
      ch.w16 = gemm_pack_bf16(ch.w);
      bytes += ch.w16.bytes();
    }
  m.dec_z_out16 = gemm_pack_bf16(m.dec_z_out);
  m.has_fast = true;
  return bytes + m.dec_z_out16.bytes();
}

bool LatentStream::has_fast() const { return impl_->has_fast; }

// The whole step: the parts' GEMMs (the same chunks, so the same bits) without carrying
// anything through the voices' states: the gate rows and activations stay in the scratch.
void LatentStream::step(float *const *states, const int *class_index, int B, float *z, int ldz,
                        float *scratch, bool fast) const {
  if (B <= 0) return;
  const Impl &m = *impl_;
  fast = fast && m.has_fast;
  auto mm = [fast](const PackedGemm &w, const PackedGemmBf16 &w16, const float *x, int ldx,
                   int rows, float *y, int ldy) { step_gemm(fast, w, w16, x, ldx, rows, y, ldy); };
  const LatentConfig &c = m.cfg;
  const int W = m.width, nc = c.n_conds;
  float *a = scratch;                                   // [B][W]
  float *b = a + static_cast<size_t>(B) * W;            // [B][W]
  float *gi = b + static_cast<size_t>(B) * W;           // [B][gmax]
  float *gh = gi + static_cast<size_t>(B) * m.gmax;     // [B][gmax]
  for (size_t k = 0; k < m.rnn.size(); ++k) {
    const Impl::Layer &L = m.rnn[k];
    for (int v = 0; v < B; ++v)
      std::memcpy(b + static_cast<size_t>(v) * W, states[v] + L.off_h, sizeof(float) * L.H);
    for (const Impl::Chunk &ch : L.hh) mm(ch.w, ch.w16, b, W, B, gh + ch.c0, m.gmax);
    if (k > 0) mm(L.ih, L.ih16, a, W, B, gi, m.gmax);  // a: the previous layer's new h
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
  if (m.rnn.empty())
    for (int v = 0; v < B; ++v) std::fill(a + static_cast<size_t>(v) * W, a + static_cast<size_t>(v) * W + W, 0.0f);
  for (int v = 0; v < B; ++v)
    for (int k = 0; k < nc; ++k) a[static_cast<size_t>(v) * W + H + k] = k == class_index[v] ? 1.0f : 0.0f;
  for (const Impl::LnLin &l : m.dec_z) {
    for (const Impl::Chunk &ch : l.lin) mm(ch.w, ch.w16, a, W, B, b + ch.c0, W);
    layernorm_rows(b, B, l.n, W, l.g, l.b, Act::kLrelu);
    std::swap(a, b);
  }
  mm(m.dec_z_out, m.dec_z_out16, a, W, B, z, ldz);
}

void LatentStream::step_part(int part, float *const *states, const int *class_index, int B, float *z,
                             int ldz, float *scratch, bool fast) const {
  if (B <= 0) return;
  const Impl &m = *impl_;
  fast = fast && m.has_fast;
  auto mm = [fast](const PackedGemm &w, const PackedGemmBf16 &w16, const float *x, int ldx,
                   int rows, float *y, int ldy) { step_gemm(fast, w, w16, x, ldx, rows, y, ldy); };
  const LatentConfig &c = m.cfg;
  const int W = m.width, nc = c.n_conds;
  const Impl::Part &P = m.step_parts[static_cast<size_t>(part)];
  float *a = scratch;                                   // [B][W]
  float *b = a + static_cast<size_t>(B) * W;            // [B][W]
  float *g = b + static_cast<size_t>(B) * W;            // [B][gmax]
  if (P.kind == 2 || P.kind == 3) {
    const Impl::Layer &L = m.rnn[static_cast<size_t>(P.layer)];
    if (P.kind == 2) {
      // The input projection of layer k > 0: the previous layer's new h.
      const Impl::Layer &Lp = m.rnn[static_cast<size_t>(P.layer) - 1];
      for (int v = 0; v < B; ++v)
        std::memcpy(a + static_cast<size_t>(v) * W, states[v] + Lp.off_h, sizeof(float) * Lp.H);
      mm(L.ih, L.ih16, a, W, B, g, m.gmax);
      for (int v = 0; v < B; ++v)
        std::memcpy(states[v] + m.off_gi, g + static_cast<size_t>(v) * m.gmax, sizeof(float) * L.G);
      return;
    }
    // Recurrent products of all voices, one column chunk: one GEMM, the chunk read once.
    // Always a GEMM, even for one voice: a GEMM row does not depend on the other rows, so a
    // voice's numbers do not depend on the batch it is in (spread slices, thread groups).
    const Impl::Chunk &ch = L.hh[static_cast<size_t>(P.index)];
    for (int v = 0; v < B; ++v)
      std::memcpy(b + static_cast<size_t>(v) * W, states[v] + L.off_h, sizeof(float) * L.H);
    mm(ch.w, ch.w16, b, W, B, g, m.gmax);
    for (int v = 0; v < B; ++v)
      std::memcpy(states[v] + m.off_gh + ch.c0, g + static_cast<size_t>(v) * m.gmax, sizeof(float) * ch.w.n);
    if (static_cast<size_t>(P.index) + 1 < L.hh.size()) return;
    // The layer's last chunk: the cells (input projection: layer 0's constant one, else gi).
    for (int v = 0; v < B; ++v) {
      float *st = states[v];
      const float *giv = P.layer == 0 ? st : st + m.off_gi;
      float *h = st + L.off_h;
      cell_blocks(m.gru, giv, st + m.off_gh, L.H, st + L.off_c, h, h);
    }
    return;
  }
  // Chunk P.index of dec_z layer i = P.layer: its input is [h_last ; one_hot(class)]
  // (i == 0) or the activation; the chunk's columns go to the voice's dec_z output, and
  // after the layer's last chunk the LayerNorm makes the next activation.
  const int H = m.rnn.empty() ? 0 : m.rnn.back().H;
  const size_t off_last = m.rnn.empty() ? 0 : m.rnn.back().off_h;
  const int i = P.layer;
  int n_in = 0;
  if (i <= 0) {
    for (int v = 0; v < B; ++v) {
      float *row = a + static_cast<size_t>(v) * W;
      std::memcpy(row, states[v] + off_last, sizeof(float) * H);
      for (int k = 0; k < nc; ++k) row[H + k] = k == class_index[v] ? 1.0f : 0.0f;
    }
    n_in = H + nc;
  } else {
    n_in = m.dec_z[static_cast<size_t>(i) - 1].n;
    for (int v = 0; v < B; ++v)
      std::memcpy(a + static_cast<size_t>(v) * W, states[v] + m.off_act, sizeof(float) * n_in);
  }
  if (i >= 0) {
    const Impl::LnLin &l = m.dec_z[static_cast<size_t>(i)];
    const Impl::Chunk &ch = l.lin[static_cast<size_t>(P.index)];
    mm(ch.w, ch.w16, a, W, B, b, W);
    for (int v = 0; v < B; ++v)
      std::memcpy(states[v] + m.off_out + ch.c0, b + static_cast<size_t>(v) * W, sizeof(float) * ch.w.n);
    if (static_cast<size_t>(P.index) + 1 < l.lin.size()) return;
    for (int v = 0; v < B; ++v)
      std::memcpy(b + static_cast<size_t>(v) * W, states[v] + m.off_out, sizeof(float) * l.n);
    layernorm_rows(b, B, l.n, W, l.g, l.b, Act::kLrelu);
    std::swap(a, b);
    n_in = l.n;
  }
  if (static_cast<size_t>(part) + 1 < m.step_parts.size()) {
    for (int v = 0; v < B; ++v)
      std::memcpy(states[v] + m.off_act, a + static_cast<size_t>(v) * W, sizeof(float) * n_in);
    return;
  }
  mm(m.dec_z_out, m.dec_z_out16, a, W, B, z, ldz);
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
// overlap_add_blocks): grains max(0, b - per + 1) .. min(b, n - 1).
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
  // Keep lookback samples before t0 in the window (never move past sample 0); the window
  // moves only when more than slack() samples before them have been kept (the positions
  // of the samples in it do not change any value).
  const long long keep = std::max<long long>(0, t0 - lb);
  if (keep > st.base + s.slack()) ola_shift(st, s, keep);
  const long long len = st.length >= 0 ? st.length - st.base : s.buffer_floats();
  // overlap_add_fir_softsign_range writes out[t] for t in [t0, t1) relative to buf; out points at
  // the sample t0, so shift it back.
  overlap_add_fir_softsign_range(st.buf, static_cast<int>(len), fir, s.taps, bias,
                           out - (t0 - st.base), static_cast<int>(t0 - st.base),
                           static_cast<int>(t1 - st.base));
}

}  // namespace ngs::cpu
