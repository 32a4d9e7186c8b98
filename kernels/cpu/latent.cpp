// Sequence VAE on the CPU (docs/MODEL_SPEC.md §5). Every per-step linear runs as one GEMM over
// all steps; each RNN layer projects its whole input sequence with one GEMM before the
// recurrence, and the decoder RNN's first layer (same input at every step) projects once.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "cpu/cpu.h"
#include "cpu/ops.h"

namespace ngs::cpu {

namespace {

// A linear layer with its fp32 packing and, once prepare_fast() ran, its bf16 copy.
struct Lin {
  PackedGemm f;
  PackedGemmBf16 h;
};

void lin_gemm(const Lin &l, bool fast, const float *x, int ldx, int m, float *y, int ldy, Act act) {
  if (fast) gemm_bf16(l.h, x, ldx, m, y, ldy, act);
  else gemm(l.f, x, ldx, m, y, ldy, act);
}

void lin_gemv(const Lin &l, bool fast, const float *x, float *y, Act act) {
  if (fast) gemv_bf16(l.h, x, y, act);
  else gemv(l.f, x, y, act);
}

}  // namespace

struct LatentModel::Impl {
  LatentConfig cfg;
  struct LnLin {
    Lin lin;
    const float *g = nullptr, *b = nullptr;
  };
  std::vector<LnLin> enc_z, dec_z;
  std::vector<PackedRnn> enc_rnn, dec_rnn;
  std::vector<Lin> enc_e, dec_e;
  Lin mu, logvar, dec_z_out;
  int width = 0;  // widest row of any activation
  size_t fast_bytes = 0;  // bf16 copies (0 until prepare_fast)
};

LatentModel::LatentModel(const LatentWeights &w) : impl_(new Impl) {
  Impl &m = *impl_;
  m.cfg = w.cfg;
  const LatentConfig &c = w.cfg;
  for (const auto &l : w.enc_z) m.enc_z.push_back({{gemm_pack(l.lin), {}}, l.ln_w, l.ln_b});
  for (const auto &l : w.dec_z) m.dec_z.push_back({{gemm_pack(l.lin), {}}, l.ln_w, l.ln_b});
  for (const auto &l : w.enc_rnn) m.enc_rnn.push_back(rnn_pack(l, c.rnn));
  for (const auto &l : w.dec_rnn) m.dec_rnn.push_back(rnn_pack(l, c.rnn));
  for (const auto &l : w.enc_e) m.enc_e.push_back({gemm_pack(l), {}});
  for (const auto &l : w.dec_e) m.dec_e.push_back({gemm_pack(l), {}});
  m.mu.f = gemm_pack(w.mu);
  m.logvar.f = gemm_pack(w.logvar);
  m.dec_z_out.f = gemm_pack(w.dec_z_out);
  m.width = std::max({c.z_dim, c.h_dim + c.n_conds, c.e_dim + c.n_conds});
}

LatentModel::~LatentModel() = default;

size_t LatentModel::prepare_fast() {
  Impl &m = *impl_;
  if (m.fast_bytes) return m.fast_bytes;
  size_t bytes = 0;
  auto lin = [&bytes](Lin &l) {
    l.h = gemm_pack_bf16(l.f);
    bytes += l.h.bytes();
  };
  for (auto &l : m.enc_z) lin(l.lin);
  for (auto &l : m.dec_z) lin(l.lin);
  for (auto &l : m.enc_e) lin(l);
  for (auto &l : m.dec_e) lin(l);
  lin(m.mu);
  lin(m.logvar);
  lin(m.dec_z_out);
  for (auto *v : {&m.enc_rnn, &m.dec_rnn})
    for (auto &r : *v) {
      rnn_pack_bf16(r);
      if (cpu_has_int8()) rnn_pack_int8(r);  // the recurrence in int8 (AVX512_VNNI)
      bytes += r.bf16_bytes();
    }
  m.fast_bytes = std::max<size_t>(bytes, 1);
  return m.fast_bytes;
}

bool LatentModel::has_fast() const { return impl_->fast_bytes != 0; }

size_t LatentModel::scratch_floats(int n_grains) const { return scratch_floats(n_grains, 1); }

size_t LatentModel::scratch_floats(int n_grains, int batch) const {
  const Impl &m = *impl_;
  const int B = std::max(batch, 1);
  size_t rnn = 0;
  for (const auto &r : m.enc_rnn) rnn = std::max(rnn, rnn_scratch_floats(r, n_grains, 1));
  for (const auto &r : m.dec_rnn) rnn = std::max(rnn, rnn_scratch_floats(r, n_grains, B));
  return 2 * static_cast<size_t>(B) * std::max(n_grains, 1) * m.width + rnn + 64;
}

void LatentModel::decode(const float *e, int class_index, int n_grains, float *z,
                         float *scratch) const {
  decode_batch(e, 0, class_index, 1, n_grains, z, 0, scratch, nullptr, false);
}

void LatentModel::encode(const float *z, int n_grains, float *e_mu, float *e_logvar,
                         float *scratch) const {
  encode(z, n_grains, e_mu, e_logvar, scratch, nullptr, false);
}

void LatentModel::decode(const float *e, int class_index, int n_grains, float *z, float *scratch,
                         ThreadPool *pool, bool fast) const {
  decode_batch(e, 0, class_index, 1, n_grains, z, 0, scratch, pool, fast);
}

void LatentModel::decode_batch(const float *e, int ld_e, int class_index, int B, int n_grains,
                               float *z, size_t ldzb, float *scratch, ThreadPool *pool,
                               bool fast) const {
  const Impl &m = *impl_;
  const LatentConfig &c = m.cfg;
  if (fast && !m.fast_bytes) throw Error(kInternalError, "latent_decode: fast weights not prepared");
  const int H = c.h_dim, nc = c.n_conds, W = m.width, n = n_grains;
  const size_t rows = static_cast<size_t>(B) * std::max(n, 1);  // activation rows, sequence-major
  float *a = scratch;
  float *b = a + rows * W;
  float *rs = b + rows * W;
  // x_b = [e_b ; one_hot(class)], rows [B][e_dim + nc]
  int width = c.e_dim + nc;
  for (int s = 0; s < B; ++s) {
    float *xs = a + static_cast<size_t>(s) * width;
    std::memcpy(xs, e + static_cast<size_t>(s) * ld_e, sizeof(float) * c.e_dim);
    for (int k = 0; k < nc; ++k) xs[c.e_dim + k] = k == class_index ? 1.0f : 0.0f;
  }
  for (const auto &l : m.dec_e) {
    for (int s = 0; s < B; ++s)  // one row each: the streaming GEMV beats the GEMM tiles
      lin_gemv(l, fast, a + static_cast<size_t>(s) * width, b + static_cast<size_t>(s) * l.f.n,
               Act::kLrelu);
    width = l.f.n;
    std::swap(a, b);
  }
  // RNN layers, all B sequences together; the last writes [n][H + nc] rows so the one-hot
  // can be appended. Sequence s's rows follow sequence s - 1's.
  bool constant = true;
  for (size_t k = 0; k < m.dec_rnn.size(); ++k) {
    const bool last = k + 1 == m.dec_rnn.size();
    const int ldo = last ? H + nc : H;
    const size_t ldxb = constant ? static_cast<size_t>(width) : static_cast<size_t>(n) * width;
    rnn_forward_batch(m.dec_rnn[k], B, a, ldxb, width, constant, n, b,
                      static_cast<size_t>(n) * ldo, ldo, nullptr, rs, pool, fast);
    constant = false;
    width = ldo;
    std::swap(a, b);
  }
  const size_t m_rows = static_cast<size_t>(B) * n;
  for (size_t t = 0; t < m_rows; ++t)
    for (int k = 0; k < nc; ++k) a[t * (H + nc) + H + k] = k == class_index ? 1.0f : 0.0f;
  width = H + nc;
  const int mr = static_cast<int>(m_rows);
  for (const auto &l : m.dec_z) {
    lin_gemm(l.lin, fast, a, width, mr, b, l.lin.f.n, Act::kNone);
    layernorm_rows(b, mr, l.lin.f.n, l.lin.f.n, l.g, l.b, Act::kLrelu);
    width = l.lin.f.n;
    std::swap(a, b);
  }
  if (B == 1 || ldzb == static_cast<size_t>(n) * c.z_dim) {
    lin_gemm(m.dec_z_out, fast, a, width, mr, z, c.z_dim, Act::kNone);
  } else {
    for (int s = 0; s < B; ++s)
      lin_gemm(m.dec_z_out, fast, a + static_cast<size_t>(s) * n * width, width, n,
               z + s * ldzb, c.z_dim, Act::kNone);
  }
}

void LatentModel::encode(const float *z, int n_grains, float *e_mu, float *e_logvar,
                         float *scratch, ThreadPool *pool, bool fast) const {
  const Impl &m = *impl_;
  const LatentConfig &c = m.cfg;
  if (fast && !m.fast_bytes) throw Error(kInternalError, "latent_encode: fast weights not prepared");
  const int W = m.width, n = n_grains;
  float *a = scratch;
  float *b = a + static_cast<size_t>(std::max(n, 1)) * W;
  float *rs = b + static_cast<size_t>(std::max(n, 1)) * W;
  const float *x = z;
  int width = c.z_dim;
  for (const auto &l : m.enc_z) {
    lin_gemm(l.lin, fast, x, width, n, b, l.lin.f.n, Act::kNone);
    layernorm_rows(b, n, l.lin.f.n, l.lin.f.n, l.g, l.b, Act::kLrelu);
    width = l.lin.f.n;
    std::swap(a, b);
    x = a;
  }
  for (size_t k = 0; k < m.enc_rnn.size(); ++k) {
    const bool last = k + 1 == m.enc_rnn.size();
    const int H = m.enc_rnn[k].hidden;
    // The last layer only needs its final state.
    rnn_forward(m.enc_rnn[k], x, width, false, n, last ? nullptr : b, H, last ? b : nullptr, rs,
                pool, fast);
    width = H;
    std::swap(a, b);
    x = a;
  }
  for (const auto &l : m.enc_e) {
    lin_gemv(l, fast, x, b, Act::kLrelu);
    width = l.f.n;
    std::swap(a, b);
    x = a;
  }
  if (e_mu) lin_gemv(m.mu, fast, x, e_mu, Act::kNone);
  if (e_logvar) {
    lin_gemv(m.logvar, fast, x, e_logvar, Act::kNone);
    hardtanh_inplace(e_logvar, c.e_dim, -5.0f, 5.0f);
  }
}

}  // namespace ngs::cpu
