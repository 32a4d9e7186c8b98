// The CPU decoder backend (backend.h): the decoder MLP as batched GEMMs over grains, the
// synthesis stages of synth.cpp, and a session workspace planned once for max_grains.
// The grain noise uses the absolute grain index, so any split of a request gives the
// same numbers.
#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/cpu.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace ngs::cpu {
namespace {

struct Prepared {
  WaveformConfig cfg;
  std::vector<PackedGemm> lin;
  PackedGemm out;
  RealFft fft;
  std::vector<float> hann;
  std::vector<float> fir;
  float fir_bias = 0.0f;
  explicit Prepared(const WaveformWeights &w) : cfg(w.cfg), fft(w.cfg.l_grain) {
    for (const Linear &l : w.dec_lin) lin.push_back(gemm_pack(l));
    out = gemm_pack(w.dec_out);
    hann.resize(cfg.l_grain);
    synth_ola_window(1, 3, cfg.l_grain, hann.data());
    fir.assign(w.pp_fir, w.pp_fir + cfg.pp_ker);
    fir_bias = w.pp_bias;
  }
};

// Workspace planned once for max_grains; with n_threads > 1 a persistent pool splits the
// grains (stages 1 and 2) and the output samples (stage 3). Every grain is computed the
// same way whatever the split, so the result does not depend on n_threads.
class CpuSession final : public DecoderSession {
 public:
  CpuSession(const Prepared &p, int max_grains, int n_threads)
      : p_(p), max_(max_grains), parts_(std::max(1, n_threads)), per_(parts_) {
    const WaveformConfig &c = p.cfg;
    const size_t n = static_cast<size_t>(max_grains);
    const int F = c.filter_size(), l = c.l_grain;
    width_ = c.h_dim;
    for (const auto &g : p.lin) width_ = std::max(width_, g.n);
    mlp_a_.resize(n * width_);
    mlp_b_.resize(n * width_);
    S_.resize(n * F);
    y_.resize(n * l);
    ola_.resize((n + 3) * c.hop);
    for (PerThread &t : per_) {
      t.noise.resize(l);
      t.fft.resize(2 * (static_cast<size_t>(l) + 2));
      t.row.resize(F);
    }
    if (parts_ > 1) pool_ = std::make_unique<ThreadPool>(parts_);
  }

  void decode(const float *z, int n, NoiseKey key, float *audio) override {
    check(n);
    spectrum(z, n, S_.data());
    grains(S_.data(), n, 0, n, key, y_.data());
    overlap_add(y_.data(), n, audio, false);
  }

  void spectrum(const float *z, int n, float *S) override {
    check(n);
    Job j;
    j.s = this;
    j.in = z;
    j.out = S;
    parallel(&CpuSession::spectrum_part, &j, n, 8);
  }

  void grains(const float *S, int n, int g0, int n_total, NoiseKey key, float *y) override {
    check(n);
    Job j;
    j.s = this;
    j.in = S;
    j.out = y;
    j.g0 = g0;
    j.n_total = n_total;
    j.key = key;
    parallel(&CpuSession::grains_part, &j, n, 2);
  }

  void decode_grains(const float *z, int n, const GrainSpec *spec, float *y) override {
    check(n);
    spectrum(z, n, S_.data());
    Job j;
    j.s = this;
    j.in = S_.data();
    j.out = y;
    j.spec = spec;
    parallel(&CpuSession::grains_spec_part, &j, n, 2);
  }

  void overlap_add(const float *y, int n, float *audio, bool ola_only) override {
    check(n);
    const WaveformConfig &c = p_.cfg;
    Job j;
    j.s = this;
    j.in = y;
    j.n = n;
    j.out = ola_only ? audio : ola_.data();
    parallel(&CpuSession::ola_part, &j, n + 3, 4);
    if (ola_only) return;
    j.in = ola_.data();
    j.out = audio;
    parallel(&CpuSession::fir_part, &j, (n + 3) * c.hop, 2048);
  }

 private:
  struct PerThread {
    std::vector<float> noise, fft, row;
  };
  struct Job {
    CpuSession *s = nullptr;
    const float *in = nullptr;
    float *out = nullptr;
    int n = 0, g0 = 0, n_total = 0;
    NoiseKey key;
    const GrainSpec *spec = nullptr;
  };

  void parallel(ThreadPool::Fn fn, Job *j, int items, int min_items) {
    if (pool_) pool_->run(fn, j, items, min_items);
    else fn(j, 0, 0, items);
  }

  // Rows [b, e) of z -> S.
  static void spectrum_part(void *ctx, int part, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    CpuSession &s = *j.s;
    const WaveformConfig &c = s.p_.cfg;
    const int F = c.filter_size(), m = e - b;
    const float *x = j.in + static_cast<size_t>(b) * c.z_dim;
    int width = c.z_dim;
    float *a = s.mlp_a_.data() + static_cast<size_t>(b) * s.width_;
    float *bb = s.mlp_b_.data() + static_cast<size_t>(b) * s.width_;
    for (const PackedGemm &g : s.p_.lin) {
      gemm(g, x, width, m, a, g.n, Act::kLrelu);
      width = g.n;
      x = a;
      std::swap(a, bb);
    }
    float *S = j.out + static_cast<size_t>(b) * F;
    gemm(s.p_.out, x, width, m, S, F, Act::kNone);
    synth_spectrum_from_logits(S, m, F, S, s.per_[part].row.data());
  }

  static void grains_part(void *ctx, int part, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    CpuSession &s = *j.s;
    const WaveformConfig &c = s.p_.cfg;
    const int F = c.filter_size(), l = c.l_grain;
    PerThread &t = s.per_[part];
    for (int i = b; i < e; ++i) {
      synth_noise(j.key.seed, j.key.sequence, j.g0 + i, l, t.noise.data());
      synth_grain(s.p_.fft, j.in + static_cast<size_t>(i) * F, t.noise.data(), s.p_.hann.data(),
                  j.g0 + i, j.n_total, j.out + static_cast<size_t>(i) * l, t.fft.data());
    }
  }

  // Grains [b, e) of a batch of independent grains: synth_grain's window is chosen by
  // (g, n_total), so an equivalent pair (0 or 1, 1 or 2 or 3) selects the edge halves.
  static void grains_spec_part(void *ctx, int part, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    CpuSession &s = *j.s;
    const WaveformConfig &c = s.p_.cfg;
    const int F = c.filter_size(), l = c.l_grain;
    PerThread &t = s.per_[part];
    for (int i = b; i < e; ++i) {
      const GrainSpec &sp = j.spec[i];
      const int gw = sp.first ? 0 : 1, nw = sp.last ? gw + 1 : gw + 2;
      synth_noise(sp.key.seed, sp.key.sequence, sp.g, l, t.noise.data());
      synth_grain(s.p_.fft, j.in + static_cast<size_t>(i) * F, t.noise.data(), s.p_.hann.data(), gw,
                  nw, j.out + static_cast<size_t>(i) * l, t.fft.data());
    }
  }

  static void ola_part(void *ctx, int, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    const WaveformConfig &c = j.s->p_.cfg;
    synth_overlap_add_blocks(j.in, j.n, c.l_grain, c.hop, c.normalize_ola, j.out, b, e);
  }

  static void fir_part(void *ctx, int, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    const Prepared &p = j.s->p_;
    synth_fir_softsign_range(j.in, (j.n + 3) * p.cfg.hop, p.fir.data(),
                             static_cast<int>(p.fir.size()), p.fir_bias, j.out, b, e);
  }

  void check(int n) const {
    if (n < 1 || n > max_)
      throw Error(kCapacity, "cpu backend: " + std::to_string(n) +
                                           " grains requested, session planned for 1.." +
                                           std::to_string(max_));
  }

  const Prepared &p_;
  int max_, parts_, width_ = 0;
  std::vector<PerThread> per_;
  std::vector<float> mlp_a_, mlp_b_, S_, y_, ola_;
  std::unique_ptr<ThreadPool> pool_;
};

class CpuBackend final : public DecoderBackend {
 public:
  explicit CpuBackend(const WaveformWeights &w) : p_(w) {}
  const char *name() const override { return "cpu"; }
  std::unique_ptr<DecoderSession> create_session(int max_grains, int n_threads) override {
    if (max_grains < 1)
      throw Error(kInvalidArgument, "cpu backend: max_grains must be >= 1");
    if (n_threads < 1 || n_threads > 256)
      throw Error(kInvalidArgument, "cpu backend: n_threads must be in 1..256");
    return std::make_unique<CpuSession>(p_, max_grains, n_threads);
  }

 private:
  Prepared p_;
};

}  // namespace

std::unique_ptr<DecoderBackend> make_cpu_backend(const WaveformWeights &w) {
  return std::make_unique<CpuBackend>(w);
}

}  // namespace ngs::cpu
