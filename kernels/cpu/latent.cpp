// Sequence VAE on the CPU (docs/MODEL_SPEC.md §5). Every per-step linear runs as one GEMM over
// all steps; each RNN layer projects its whole input sequence with one GEMM before the
// recurrence, and the decoder RNN's first layer (same input at every step) projects once.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/cpu.h"
#include "cpu/ops.h"

namespace ngs::cpu {

struct LatentModel::Impl {
  LatentConfig cfg;
  struct LnLin {
    PackedGemm lin;
    const float *g = nullptr, *b = nullptr;
  };
  std::vector<LnLin> enc_z, dec_z;
  std::vector<PackedRnn> enc_rnn, dec_rnn;
  std::vector<PackedGemm> enc_e, dec_e;
  PackedGemm mu, logvar, dec_z_out;
  int width = 0;  // widest row of any activation
};

LatentModel::LatentModel(const LatentWeights &w) : impl_(new Impl) {
  Impl &m = *impl_;
  m.cfg = w.cfg;
  const LatentConfig &c = w.cfg;
  for (const auto &l : w.enc_z) m.enc_z.push_back({gemm_pack(l.lin), l.ln_w, l.ln_b});
  for (const auto &l : w.dec_z) m.dec_z.push_back({gemm_pack(l.lin), l.ln_w, l.ln_b});
  for (const auto &l : w.enc_rnn) m.enc_rnn.push_back(rnn_pack(l, c.rnn));
  for (const auto &l : w.dec_rnn) m.dec_rnn.push_back(rnn_pack(l, c.rnn));
  for (const auto &l : w.enc_e) m.enc_e.push_back(gemm_pack(l));
  for (const auto &l : w.dec_e) m.dec_e.push_back(gemm_pack(l));
  m.mu = gemm_pack(w.mu);
  m.logvar = gemm_pack(w.logvar);
  m.dec_z_out = gemm_pack(w.dec_z_out);
  m.width = std::max({c.z_dim, c.h_dim + c.n_conds, c.e_dim + c.n_conds});
}

LatentModel::~LatentModel() = default;

size_t LatentModel::scratch_floats(int n_grains) const {
  const Impl &m = *impl_;
  size_t rnn = 0;
  for (const auto &r : m.enc_rnn) rnn = std::max(rnn, rnn_scratch_floats(r, n_grains));
  for (const auto &r : m.dec_rnn) rnn = std::max(rnn, rnn_scratch_floats(r, n_grains));
  return 2 * static_cast<size_t>(std::max(n_grains, 1)) * m.width + rnn + 64;
}

void LatentModel::decode(const float *e, int class_index, int n_grains, float *z,
                         float *scratch) const {
  decode(e, class_index, n_grains, z, scratch, nullptr);
}

void LatentModel::encode(const float *z, int n_grains, float *e_mu, float *e_logvar,
                         float *scratch) const {
  encode(z, n_grains, e_mu, e_logvar, scratch, nullptr);
}

void LatentModel::decode(const float *e, int class_index, int n_grains, float *z, float *scratch,
                         ThreadPool *pool) const {
  const Impl &m = *impl_;
  const LatentConfig &c = m.cfg;
  const int H = c.h_dim, nc = c.n_conds, W = m.width, n = n_grains;
  float *a = scratch;
  float *b = a + static_cast<size_t>(std::max(n, 1)) * W;
  float *rs = b + static_cast<size_t>(std::max(n, 1)) * W;
  // x = [e ; one_hot(class)]
  std::memcpy(a, e, sizeof(float) * c.e_dim);
  for (int k = 0; k < nc; ++k) a[c.e_dim + k] = k == class_index ? 1.0f : 0.0f;
  int width = c.e_dim + nc;
  for (const auto &l : m.dec_e) {
    gemv(l, a, b, Act::kLrelu);  // one row: the streaming GEMV beats the GEMM tiles
    width = l.n;
    std::swap(a, b);
  }
  // RNN layers; the last writes [n][H + nc] rows so the one-hot can be appended.
  bool constant = true;
  for (size_t k = 0; k < m.dec_rnn.size(); ++k) {
    const bool last = k + 1 == m.dec_rnn.size();
    const int ldo = last ? H + nc : H;
    rnn_forward(m.dec_rnn[k], a, width, constant, n, b, ldo, nullptr, rs, pool);
    constant = false;
    width = ldo;
    std::swap(a, b);
  }
  for (int t = 0; t < n; ++t)
    for (int k = 0; k < nc; ++k) a[static_cast<size_t>(t) * (H + nc) + H + k] = k == class_index ? 1.0f : 0.0f;
  width = H + nc;
  for (const auto &l : m.dec_z) {
    gemm(l.lin, a, width, n, b, l.lin.n, Act::kNone);
    layernorm_rows(b, n, l.lin.n, l.lin.n, l.g, l.b, Act::kLrelu);
    width = l.lin.n;
    std::swap(a, b);
  }
  gemm(m.dec_z_out, a, width, n, z, c.z_dim, Act::kNone);
}

void LatentModel::encode(const float *z, int n_grains, float *e_mu, float *e_logvar,
                         float *scratch, ThreadPool *pool) const {
  const Impl &m = *impl_;
  const LatentConfig &c = m.cfg;
  const int W = m.width, n = n_grains;
  float *a = scratch;
  float *b = a + static_cast<size_t>(std::max(n, 1)) * W;
  float *rs = b + static_cast<size_t>(std::max(n, 1)) * W;
  const float *x = z;
  int width = c.z_dim;
  for (const auto &l : m.enc_z) {
    gemm(l.lin, x, width, n, b, l.lin.n, Act::kNone);
    layernorm_rows(b, n, l.lin.n, l.lin.n, l.g, l.b, Act::kLrelu);
    width = l.lin.n;
    std::swap(a, b);
    x = a;
  }
  for (size_t k = 0; k < m.enc_rnn.size(); ++k) {
    const bool last = k + 1 == m.enc_rnn.size();
    const int H = m.enc_rnn[k].hidden;
    // The last layer only needs its final state.
    rnn_forward(m.enc_rnn[k], x, width, false, n, last ? nullptr : b, H, last ? b : nullptr, rs,
                pool);
    width = H;
    std::swap(a, b);
    x = a;
  }
  for (const auto &l : m.enc_e) {
    gemv(l, x, b, Act::kLrelu);
    width = l.n;
    std::swap(a, b);
    x = a;
  }
  if (e_mu) gemv(m.mu, x, e_mu, Act::kNone);
  if (e_logvar) {
    gemv(m.logvar, x, e_logvar, Act::kNone);
    hardtanh_inplace(e_logvar, c.e_dim, -5.0f, 5.0f);
  }
}

}  // namespace ngs::cpu
