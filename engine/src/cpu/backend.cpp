// The CPU decoder backend (backend.h): the decoder MLP as batched GEMMs over grains, the
// synthesis stages of synth.cpp, and a session workspace planned once for max_grains.
#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/cpu.h"
#include "cpu/ops.h"

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

class CpuSession final : public DecoderSession {
 public:
  CpuSession(const Prepared &p, int max_grains) : p_(p), max_(max_grains) {
    const WaveformConfig &c = p.cfg;
    const size_t n = static_cast<size_t>(max_grains);
    const int F = c.filter_size(), l = c.l_grain;
    int width = c.h_dim;
    for (const auto &g : p.lin) width = std::max(width, g.n);
    mlp_a_.resize(n * width);
    mlp_b_.resize(n * width);
    S_.resize(n * F);
    y_.resize(n * l);
    ola_.resize((n + 3) * c.hop);
    noise_.resize(l);
    fft_scratch_.resize(2 * (static_cast<size_t>(l) + 2));
    row_scratch_.resize(F);
  }

  void decode(const float *z, int n, NoiseKey key, float *audio) override {
    check(n);
    spectrum(z, n, S_.data());
    grains(S_.data(), n, 0, n, key, y_.data());
    overlap_add(y_.data(), n, audio, false);
  }

  void spectrum(const float *z, int n, float *S) override {
    check(n);
    const WaveformConfig &c = p_.cfg;
    const float *x = z;
    int width = c.z_dim;
    float *a = mlp_a_.data(), *b = mlp_b_.data();
    for (const PackedGemm &g : p_.lin) {
      gemm(g, x, width, n, a, g.n, Act::kLrelu);
      width = g.n;
      x = a;
      std::swap(a, b);
    }
    gemm(p_.out, x, width, n, S, c.filter_size(), Act::kNone);
    synth_spectrum_from_logits(S, n, c.filter_size(), S, row_scratch_.data());
  }

  void grains(const float *S, int n, int g0, int n_total, NoiseKey key, float *y) override {
    check(n);
    const WaveformConfig &c = p_.cfg;
    const int F = c.filter_size(), l = c.l_grain;
    for (int i = 0; i < n; ++i) {
      synth_noise(key.seed, key.sequence, g0 + i, l, noise_.data());
      synth_grain(p_.fft, S + static_cast<size_t>(i) * F, noise_.data(), p_.hann.data(), g0 + i,
                  n_total, y + static_cast<size_t>(i) * l, fft_scratch_.data());
    }
  }

  void overlap_add(const float *y, int n, float *audio, bool ola_only) override {
    check(n);
    const WaveformConfig &c = p_.cfg;
    const int len = (n + 3) * c.hop;
    if (ola_only) {
      synth_overlap_add(y, n, c.l_grain, c.hop, c.normalize_ola, audio);
      return;
    }
    synth_overlap_add(y, n, c.l_grain, c.hop, c.normalize_ola, ola_.data());
    synth_fir_softsign(ola_.data(), len, p_.fir.data(), static_cast<int>(p_.fir.size()),
                       p_.fir_bias, audio);
  }

 private:
  void check(int n) const {
    if (n < 1 || n > max_)
      throw Error(NGS_STATUS_CAPACITY, "cpu backend: " + std::to_string(n) +
                                           " grains requested, session planned for 1.." +
                                           std::to_string(max_));
  }
  const Prepared &p_;
  int max_;
  std::vector<float> mlp_a_, mlp_b_, S_, y_, ola_, noise_, fft_scratch_, row_scratch_;
};

class CpuBackend final : public DecoderBackend {
 public:
  explicit CpuBackend(const WaveformWeights &w) : p_(w) {}
  const char *name() const override { return "cpu"; }
  std::unique_ptr<DecoderSession> create_session(int max_grains, int /*n_threads*/) override {
    if (max_grains < 1)
      throw Error(NGS_STATUS_INVALID_ARGUMENT, "cpu backend: max_grains must be >= 1");
    return std::make_unique<CpuSession>(p_, max_grains);
  }

 private:
  Prepared p_;
};

}  // namespace

std::unique_ptr<DecoderBackend> make_cpu_backend(const WaveformWeights &w) {
  return std::make_unique<CpuBackend>(w);
}

}  // namespace ngs::cpu
