// The CPU backend (backend.h): the encoder and the sequence VAE (encoder.cpp, latent.cpp,
// run through HostStages), the decoder MLP as batched GEMMs over grains, the decoder
// stages noise_filter and overlap_add (ops.h), and a session workspace planned once for
// max_grains with one thread pool for every stage. The grain noise uses the absolute
// grain index, so any split of a request gives the same numbers.
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
    noise_filter_window(1, 3, cfg.l_grain, hann.data());
    fir.assign(w.pp_fir, w.pp_fir + cfg.pp_ker);
    fir_bias = w.pp_bias;
  }
};

// Workspace planned once for max_grains; with n_threads > 1 one persistent pool splits
// the grains (decoder stages 1 and 2, the encoder's conv stages), the output samples
// (stage 3) and the sequence VAE's recurrent units. Every grain is computed the same way
// whatever the split, so the result does not depend on n_threads.
class CpuSession final : public Session {
 public:
  CpuSession(const Prepared &p, const WaveformEncoder &enc, const LatentModel *latent,
             const LatentStream *stream, int max_grains, int n_threads)
      : p_(p),
        stream_(stream),
        max_(max_grains),
        parts_(std::max(1, n_threads)),
        per_(parts_),
        pool_(parts_ > 1 ? std::make_unique<ThreadPool>(parts_) : nullptr),
        host_(enc, latent, max_grains, std::max(max_grains, p.cfg.n_grains), pool_.get()) {
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
    z_.resize(static_cast<size_t>(std::max(max_grains, c.n_grains)) * c.z_dim);
  }

  void encoder(const float *audio, int n, float *mu, float *logvar) override {
    host_.encoder(audio, n, mu, logvar);
  }

  void encode_grains(const float *const *src, const unsigned char *first,
                     const unsigned char *last, int B, float *mu) override {
    host_.encode_grains(src, first, last, B, mu);
  }

  void latent_decode(const float *e, int class_index, int n, float *z) override {
    host_.latent_decode(e, class_index, n, z);
  }

  // Streaming sequence VAE: the voices' LatentStream states in the session.
  void rnn_plan(int max_voices) override {
    if (!stream_) throw Error(kInvalidArgument, "rnn_plan: the model has no sequence VAE");
    if (max_voices < 1) throw Error(kInvalidArgument, "rnn_plan: max_voices must be >= 1");
    const size_t n = static_cast<size_t>(max_voices);
    rnn_state_.assign(n * stream_->state_floats(), 0.0f);
    rnn_scratch_.assign(std::max(stream_->scratch_floats(max_voices), stream_->scratch_floats(1)), 0.0f);
    rnn_class_.assign(n, -1);
    rnn_batch_class_.assign(n, -1);
    rnn_ptr_.assign(n, nullptr);
    rnn_voices_ = max_voices;
  }

  void rnn_start(int slot, const float *e, int class_index) override {
    rnn_check(slot);
    stream_->start(e, class_index, rnn_state(slot), rnn_scratch_.data());
    rnn_class_[static_cast<size_t>(slot)] = class_index;
  }

  void rnn_step(const int *slots, int B, float *z, int ldz) override {
    if (B <= 0) return;
    if (B > rnn_voices_) throw Error(kCapacity, "rnn_step: more voices than rnn_plan planned");
    for (int b = 0; b < B; ++b) {
      rnn_check(slots[b]);
      rnn_ptr_[static_cast<size_t>(b)] = rnn_state(slots[b]);
      rnn_batch_class_[static_cast<size_t>(b)] = rnn_class_[static_cast<size_t>(slots[b])];
    }
    stream_->step(rnn_ptr_.data(), rnn_batch_class_.data(), B, z, ldz, rnn_scratch_.data());
  }

  void latent_encode(const float *z, int n, float *e_mu, float *e_logvar) override {
    host_.latent_encode(z, n, e_mu, e_logvar);
  }

  void decode(const float *z, int n, NoiseKey key, float *audio) override {
    check(n);
    decoder_mlp(z, n, S_.data());
    noise_filter(S_.data(), n, 0, n, key, y_.data());
    overlap_add(y_.data(), n, audio, false);
  }

  void sample(const float *e, int class_index, int n, NoiseKey key, float *audio) override {
    check(n);
    host_.latent_decode(e, class_index, n, z_.data());
    decode(z_.data(), n, key, audio);
  }

  void decoder_mlp(const float *z, int n, float *S) override {
    check(n);
    Job j;
    j.s = this;
    j.in = z;
    j.out = S;
    parallel(&CpuSession::decoder_mlp_part, &j, n, 8);
  }

  void noise_filter(const float *S, int n, int g0, int n_total, NoiseKey key,
                    float *y) override {
    check(n);
    Job j;
    j.s = this;
    j.in = S;
    j.out = y;
    j.g0 = g0;
    j.n_total = n_total;
    j.key = key;
    parallel(&CpuSession::noise_filter_part, &j, n, 2);
  }

  void decode_grains(const float *z, int n, const GrainSpec *spec, float *y) override {
    check(n);
    decoder_mlp(z, n, S_.data());
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
    parallel(&CpuSession::overlap_add_part, &j, n + 3, 4);
    if (ola_only) return;
    j.in = ola_.data();
    j.out = audio;
    parallel(&CpuSession::fir_softsign_part, &j, (n + 3) * c.hop, 2048);
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
  static void decoder_mlp_part(void *ctx, int part, int b, int e) {
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
    decoder_mlp_spectrum(S, m, F, S, s.per_[part].row.data());
  }

  static void noise_filter_part(void *ctx, int part, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    CpuSession &s = *j.s;
    const WaveformConfig &c = s.p_.cfg;
    const int F = c.filter_size(), l = c.l_grain;
    PerThread &t = s.per_[part];
    for (int i = b; i < e; ++i) {
      noise_filter_noise(j.key.seed, j.key.sequence, j.g0 + i, l, t.noise.data());
      noise_filter_grain(s.p_.fft, j.in + static_cast<size_t>(i) * F, t.noise.data(),
                         s.p_.hann.data(), j.g0 + i, j.n_total, j.out + static_cast<size_t>(i) * l,
                         t.fft.data());
    }
  }

  // Grains [b, e) of a batch of independent grains: noise_filter_grain's window is chosen by
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
      noise_filter_noise(sp.key.seed, sp.key.sequence, sp.g, l, t.noise.data());
      noise_filter_grain(s.p_.fft, j.in + static_cast<size_t>(i) * F, t.noise.data(), s.p_.hann.data(), gw,
                  nw, j.out + static_cast<size_t>(i) * l, t.fft.data());
    }
  }

  static void overlap_add_part(void *ctx, int, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    const WaveformConfig &c = j.s->p_.cfg;
    overlap_add_blocks(j.in, j.n, c.l_grain, c.hop, c.normalize_ola, j.out, b, e);
  }

  static void fir_softsign_part(void *ctx, int, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    const Prepared &p = j.s->p_;
    overlap_add_fir_softsign_range(j.in, (j.n + 3) * p.cfg.hop, p.fir.data(),
                             static_cast<int>(p.fir.size()), p.fir_bias, j.out, b, e);
  }

  float *rnn_state(int slot) {
    return rnn_state_.data() + static_cast<size_t>(slot) * stream_->state_floats();
  }
  void rnn_check(int slot) const {
    if (slot < 0 || slot >= rnn_voices_)
      throw Error(kInvalidArgument, "rnn: voice slot outside 0..max_voices-1 of rnn_plan");
  }

  void check(int n) const {
    if (n < 1 || n > max_)
      throw Error(kCapacity, "cpu backend: " + std::to_string(n) +
                                           " grains requested, session planned for 1.." +
                                           std::to_string(max_));
  }

  const Prepared &p_;
  const LatentStream *stream_;  // null without sequence VAE
  std::vector<float> rnn_state_, rnn_scratch_;
  std::vector<int> rnn_class_, rnn_batch_class_;
  std::vector<float *> rnn_ptr_;
  int rnn_voices_ = 0;
  int max_, parts_, width_ = 0;
  std::vector<PerThread> per_;
  std::vector<float> mlp_a_, mlp_b_, S_, y_, ola_, z_;
  std::unique_ptr<ThreadPool> pool_;  // the session's one pool (null with one thread)
  HostStages host_;                   // encoder and sequence VAE, on pool_
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const WaveformWeights &w, const LatentWeights *latent)
      : p_(w),
        encoder_(w),
        latent_(latent ? std::make_unique<LatentModel>(*latent) : nullptr),
        stream_(latent ? std::make_unique<LatentStream>(*latent) : nullptr) {}
  const char *name() const override { return "cpu"; }
  bool has_latent() const override { return latent_ != nullptr; }
  std::unique_ptr<Session> create_session(int max_grains, int n_threads) override {
    if (max_grains < 1)
      throw Error(kInvalidArgument, "cpu backend: max_grains must be >= 1");
    if (n_threads < 1 || n_threads > 256)
      throw Error(kInvalidArgument, "cpu backend: n_threads must be in 1..256");
    return std::make_unique<CpuSession>(p_, encoder_, latent_.get(), stream_.get(), max_grains,
                                        n_threads);
  }

 private:
  Prepared p_;
  WaveformEncoder encoder_;
  std::unique_ptr<LatentModel> latent_;
  std::unique_ptr<LatentStream> stream_;  // the streaming form of latent_ (rnn_*)
};

}  // namespace

HostStages::HostStages(const WaveformEncoder &encoder, const LatentModel *latent,
                       int max_grains, int latent_grains, ThreadPool *pool)
    : enc_(encoder),
      latent_(latent),
      max_grains_(max_grains),
      latent_grains_(latent_grains),
      pool_(pool),
      enc_scratch_(encoder.scratch_floats(max_grains, pool ? pool->size() : 1), 0.0f),
      lat_scratch_(latent ? latent->scratch_floats(latent_grains) : 0, 0.0f) {}

void HostStages::check(int n, int max, const char *what) const {
  if (n < 1 || n > max)
    throw Error(kCapacity, std::string(what) + ": " + std::to_string(n) +
                               " grains requested, session planned for 1.." +
                               std::to_string(max));
}

void HostStages::encoder(const float *audio, int n, float *mu, float *logvar) {
  check(n, max_grains_, "encoder");
  enc_.encode(audio, n, mu, logvar, enc_scratch_.data(), pool_);
}

void HostStages::encode_grains(const float *const *src, const unsigned char *first,
                               const unsigned char *last, int B, float *mu) {
  if (B <= 0) return;
  check(B, max_grains_, "encode_grains");
  enc_.encode_grains(src, first, last, B, mu, enc_scratch_.data());  // scratch_floats(B) <= its size
}

void HostStages::latent_decode(const float *e, int class_index, int n, float *z) {
  if (!latent_) throw Error(kInvalidArgument, "latent_decode: the model has no sequence VAE");
  check(n, latent_grains_, "latent_decode");
  latent_->decode(e, class_index, n, z, lat_scratch_.data(), pool_);
}

void HostStages::latent_encode(const float *z, int n, float *e_mu, float *e_logvar) {
  if (!latent_) throw Error(kInvalidArgument, "latent_encode: the model has no sequence VAE");
  check(n, latent_grains_, "latent_encode");
  latent_->encode(z, n, e_mu, e_logvar, lat_scratch_.data(), pool_);
}

std::unique_ptr<Backend> make_cpu_backend(const WaveformWeights &w, const LatentWeights *latent) {
  return std::make_unique<CpuBackend>(w, latent);
}

}  // namespace ngs::cpu
