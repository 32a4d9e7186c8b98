// The CPU backend (backend.h): the encoder and the sequence VAE (encoder.cpp, latent.cpp,
// run through HostStages), the decoder MLP as batched GEMMs over grains, the decoder
// stages noise_filter and overlap_add (ops.h), and a session workspace planned once for
// max_grains with one thread pool for every stage. The grain noise uses the absolute
// grain index, so any split of a request gives the same numbers.
#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/cpu.h"
#include "cpu/dispatch.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace ngs::cpu {
namespace {

struct Prepared {
  WaveformConfig cfg;
  std::vector<PackedGemm> lin;
  PackedGemm out;
  // Fast precision copies of the decoder MLP (prepare_fast; empty until then).
  std::vector<PackedGemmBf16> lin16;
  PackedGemmBf16 out16;
  // The streaming decoder MLP in parts (Session::decoder_mlp_part): part p runs column
  // chunk `chunk` of layer `layer` (lin.size(): the output layer, the spectrum after its
  // last chunk). Chunks are columns of a multiple of 32 from a multiple of 32, a GEMM
  // tile's (fp32 and bf16), so they give the bits of the whole layers. They copy the
  // matrices (their size again).
  struct Chunk {
    int c0 = 0;
    PackedGemm w;
    PackedGemmBf16 w16;  // fast precision (prepare_fast)
  };
  struct MlpPart {
    size_t layer = 0;
    size_t chunk = 0;
    long macs = 0;
  };
  std::vector<MlpPart> mlp_parts;
  std::vector<std::vector<Chunk>> mlp_chunks;  // [lin.size() + 1][chunks]
  RealFft fft;
  std::vector<float> hann;
  std::vector<float> fir;
  float fir_bias = 0.0f;
  Prepared(const WaveformWeights &w, long part_macs) : cfg(w.cfg), fft(w.cfg.l_grain) {
    for (const Linear &l : w.dec_lin) lin.push_back(gemm_pack(l));
    out = gemm_pack(w.dec_out);
    hann.resize(cfg.l_grain);
    noise_filter_window(1, 3, cfg.l_grain, hann.data());
    fir.assign(w.pp_fir, w.pp_fir + cfg.pp_ker);
    fir_bias = w.pp_bias;
    // Parts of about part_macs multiply-adds: every layer in even column chunks (at most 8).
    const long kPartMacs = std::max(1L, part_macs);
    const int align = 2 * kGemmNr;
    for (size_t i = 0; i <= w.dec_lin.size(); ++i) {
      const Linear &o = i < w.dec_lin.size() ? w.dec_lin[i] : w.dec_out;
      const long macs = static_cast<long>(o.out) * o.in;
      const int n_chunks = static_cast<int>(std::min<long>(8, std::max<long>(1, (macs + kPartMacs - 1) / kPartMacs)));
      const int cols = ((o.out + n_chunks - 1) / n_chunks + align - 1) / align * align;
      mlp_chunks.emplace_back();
      for (int c0 = 0; c0 < o.out; c0 += cols) {
        const int c1 = std::min(o.out, c0 + cols);
        Chunk ch;
        ch.c0 = c0;
        ch.w = gemm_pack(o.w + static_cast<size_t>(c0) * o.in, c1 - c0, o.in, o.b ? o.b + c0 : nullptr);
        mlp_parts.push_back({i, mlp_chunks.back().size(), static_cast<long>(c1 - c0) * o.in});
        mlp_chunks.back().push_back(std::move(ch));
      }
    }
    // The spectrum after the output layer: about 100 multiply-adds' time per value
    // (measured with 256 voices: decoder_mlp_spectrum against the GEMMs).
    mlp_parts.back().macs += static_cast<long>(cfg.filter_size()) * 100;
  }
  size_t prepare_fast() {
    size_t bytes = 0;
    for (const PackedGemm &g : lin) {
      lin16.push_back(gemm_pack_bf16(g));
      bytes += lin16.back().bytes();
    }
    out16 = gemm_pack_bf16(out);
    bytes += out16.bytes();
    for (std::vector<Chunk> &layer : mlp_chunks)  // the bf16 GEMM's tiles are 32 columns too
      for (Chunk &ch : layer) {
        ch.w16 = gemm_pack_bf16(ch.w);
        bytes += ch.w16.bytes();
      }
    return bytes;
  }
};

// One-shots per sample_batch call at most: past 8 rows the recurrence is bound by the
// multiplications, not by reading the matrix, and the latent scratch grows with the batch.
constexpr int kMaxSampleBatch = 8;

// Workspace planned once for max_grains; with n_threads > 1 one persistent pool splits
// the grains (decoder stages 1 and 2, the encoder's conv stages), the output samples
// (stage 3) and the sequence VAE's recurrent units. Every grain is computed the same way
// whatever the split, so the result does not depend on n_threads.
class CpuSession final : public Session {
 public:
  CpuSession(const Prepared &p, const WaveformEncoder &enc, const LatentModel *latent,
             const LatentStream *stream, int max_grains, int n_threads, bool fast)
      : p_(p),
        stream_(stream),
        max_(max_grains),
        parts_(std::max(1, n_threads)),
        fast_(fast),
        per_(parts_),
        pool_(parts_ > 1 ? std::make_unique<ThreadPool>(parts_) : nullptr),
        host_(enc, latent, max_grains, std::max(max_grains, p.cfg.n_grains), pool_.get(),
              latent ? std::max(1, std::min(kMaxSampleBatch, max_grains / std::max(1, p.cfg.n_grains)))
                     : 1,
              p.cfg.n_grains, fast) {
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
    stream_->step(rnn_ptr_.data(), rnn_batch_class_.data(), B, z, ldz, rnn_scratch_.data(), fast_);
  }

  int rnn_parts(bool start, int *cost) const override {
    if (!stream_) return Session::rnn_parts(start, cost);
    long macs[kMaxRnnParts];
    const int n = stream_->parts(start, nullptr);
    if (n > kMaxRnnParts) throw Error(kInternalError, "rnn_parts: more parts than kMaxRnnParts");
    stream_->parts(start, macs);
    // In the synth's cost unit: 2000 multiply-adds (about a thousand instructions at one row;
    // the GEMMs of a fast session take about 0.65 of the time, its cells and LayerNorms the same: 0.8 overall).
    const long unit = fast_ ? 2500 : 2000;
    if (cost)
      for (int i = 0; i < n; ++i) cost[i] = static_cast<int>(std::max<long>(1, macs[i] / unit));
    return n;
  }

  void rnn_start_part(int part, int slot, const float *e, int class_index) override {
    rnn_check(slot);
    if (part < 0 || part >= stream_->parts(true))
      throw Error(kInvalidArgument, "rnn_start_part: part out of range");
    stream_->start_part(part, e, class_index, rnn_state(slot), rnn_scratch_.data());
    if (part == 0) rnn_class_[static_cast<size_t>(slot)] = class_index;
  }

  void rnn_step_part(int part, const int *slots, int B, float *z, int ldz) override {
    if (B <= 0) return;
    if (B > rnn_voices_) throw Error(kCapacity, "rnn_step: more voices than rnn_plan planned");
    if (part < 0 || part >= stream_->parts(false))
      throw Error(kInvalidArgument, "rnn_step_part: part out of range");
    for (int b = 0; b < B; ++b) {
      rnn_check(slots[b]);
      rnn_ptr_[static_cast<size_t>(b)] = rnn_state(slots[b]);
      rnn_batch_class_[static_cast<size_t>(b)] = rnn_class_[static_cast<size_t>(slots[b])];
    }
    stream_->step_part(part, rnn_ptr_.data(), rnn_batch_class_.data(), B, z, ldz, rnn_scratch_.data(), fast_);
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

  int sample_batch_max(int n) const override {
    if (n < 1 || n > max_ || n > p_.cfg.n_grains) return 1;
    return std::max(1, std::min(host_.latent_batch(), max_ / n));
  }

  // The B sequences' recurrences together, the decoder MLP over all B * n grains, then the
  // noise filter and overlap-add of each one-shot (its own noise key): bit for bit B
  // sample() calls.
  void sample_batch(const float *e, int ld_e, int class_index, int B, int n, const NoiseKey *keys,
                    float *audio, size_t ld_audio) override {
    if (B < 1 || B > sample_batch_max(n))
      throw Error(kCapacity, "cpu backend: " + std::to_string(B) + " one-shots of " +
                                 std::to_string(n) + " grains requested, session planned for 1.." +
                                 std::to_string(sample_batch_max(n)));
    check(B * n);
    const WaveformConfig &c = p_.cfg;
    host_.latent_decode_batch(e, ld_e, class_index, B, n, z_.data(),
                              static_cast<size_t>(n) * c.z_dim);
    decoder_mlp(z_.data(), B * n, S_.data());
    for (int b = 0; b < B; ++b) {
      noise_filter(S_.data() + static_cast<size_t>(b) * n * c.filter_size(), n, 0, n, keys[b],
                   y_.data());
      overlap_add(y_.data(), n, audio + b * ld_audio, false);
    }
  }

  Precision precision() const override { return fast_ ? Precision::kFast : Precision::kFp32; }

  void decoder_mlp(const float *z, int n, float *S) override {
    check(n);
    Job j;
    j.s = this;
    j.in = z;
    j.out = S;
    parallel(&CpuSession::decoder_mlp_rows, &j, n, 8);
  }

  int decoder_mlp_parts(int *cost) const override {
    const int n = static_cast<int>(p_.mlp_parts.size());
    if (n > kMaxRnnParts) return Session::decoder_mlp_parts(cost);
    // In the synth's cost unit: 2000 multiply-adds (see rnn_parts).
    const long unit = fast_ ? 2500 : 2000;
    if (cost)
      for (int i = 0; i < n; ++i) cost[i] = static_cast<int>(std::max<long>(1, p_.mlp_parts[i].macs / unit));
    return n;
  }
  size_t decoder_mlp_carry_floats() const override { return 2 * static_cast<size_t>(width_); }

  // Part `part` of rows [0, n): the layers' activations ping-pong between the two halves
  // of each carry row (layer i writes half (i + 1) % 2), as decoder_mlp_part's a / b.
  void decoder_mlp_part(int part, const float *z, int n, float *carry, size_t ldc, float *S) override {
    if (p_.mlp_parts.size() > static_cast<size_t>(kMaxRnnParts))
      return Session::decoder_mlp_part(part, z, n, carry, ldc, S);
    check(n);
    if (part < 0 || part >= static_cast<int>(p_.mlp_parts.size()))
      throw Error(kInvalidArgument, "decoder_mlp_part: part out of range");
    const WaveformConfig &c = p_.cfg;
    const Prepared::MlpPart &P = p_.mlp_parts[static_cast<size_t>(part)];
    const int ld = static_cast<int>(ldc);
    const size_t L = p_.lin.size(), i = P.layer;
    auto half = [&](size_t layer) { return carry + (layer % 2) * width_; };  // input of `layer`
    const float *x = i == 0 ? z : half(i);
    const int ldx = i == 0 ? c.z_dim : ld;
    const Prepared::Chunk &ch = p_.mlp_chunks[i][P.chunk];
    const int F = c.filter_size();
    if (i < L) {  // a hidden layer's columns (LeakyReLU), into the other half
      float *y = half(i + 1) + ch.c0;
      if (fast_) gemm_bf16(ch.w16, x, ldx, n, y, ld, Act::kLrelu);
      else gemm(ch.w, x, ldx, n, y, ld, Act::kLrelu);
      return;
    }
    float *Sc = S + ch.c0;
    if (fast_) gemm_bf16(ch.w16, x, ldx, n, Sc, F, Act::kNone);
    else gemm(ch.w, x, ldx, n, Sc, F, Act::kNone);
    if (P.chunk + 1 == p_.mlp_chunks[i].size()) decoder_mlp_spectrum(S, n, F, S, per_[0].row.data());
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
  static void decoder_mlp_rows(void *ctx, int part, int b, int e) {
    const Job &j = *static_cast<Job *>(ctx);
    CpuSession &s = *j.s;
    const WaveformConfig &c = s.p_.cfg;
    const int F = c.filter_size(), m = e - b;
    const float *x = j.in + static_cast<size_t>(b) * c.z_dim;
    int width = c.z_dim;
    float *a = s.mlp_a_.data() + static_cast<size_t>(b) * s.width_;
    float *bb = s.mlp_b_.data() + static_cast<size_t>(b) * s.width_;
    for (size_t i = 0; i < s.p_.lin.size(); ++i) {
      const int n_out = s.p_.lin[i].n;
      if (s.fast_) gemm_bf16(s.p_.lin16[i], x, width, m, a, n_out, Act::kLrelu);
      else gemm(s.p_.lin[i], x, width, m, a, n_out, Act::kLrelu);
      width = n_out;
      x = a;
      std::swap(a, bb);
    }
    float *S = j.out + static_cast<size_t>(b) * F;
    if (s.fast_) gemm_bf16(s.p_.out16, x, width, m, S, F, Act::kNone);
    else gemm(s.p_.out, x, width, m, S, F, Act::kNone);
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
  bool fast_;  // Precision::kFast (bf16 copies prepared by the backend)
  std::vector<PerThread> per_;
  std::vector<float> mlp_a_, mlp_b_, S_, y_, ola_, z_;
  std::unique_ptr<ThreadPool> pool_;  // the session's one pool (null with one thread)
  HostStages host_;                   // encoder and sequence VAE, on pool_
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const WaveformWeights &w, const LatentWeights *latent, long part_macs)
      : w_(w),
        p_(w, part_macs),
        encoder_(w),
        latent_(latent ? std::make_unique<LatentModel>(*latent) : nullptr),
        stream_(latent ? std::make_unique<LatentStream>(*latent, part_macs) : nullptr) {}
  const char *name() const override { return "cpu"; }
  bool has_latent() const override { return latent_ != nullptr; }
  std::unique_ptr<Session> create_session(int max_grains, int n_threads,
                                          Precision precision) override {
    if (max_grains < 1)
      throw Error(kInvalidArgument, "cpu backend: max_grains must be >= 1");
    if (n_threads < 1 || n_threads > 256)
      throw Error(kInvalidArgument, "cpu backend: n_threads must be in 1..256");
    // Fast needs the bf16 dot product in the active dispatch table (not on a CPU without
    // AVX512_BF16, nor below AVX-512 with NGS_CPU_ISA): otherwise the session runs fp32
    // (precision()) rather than the slow portable emulation.
    const bool fast = precision == Precision::kFast && kernels().bf16_native;
    if (fast) prepare_fast();
    return std::make_unique<CpuSession>(p_, fast ? *encoder_fast_ : encoder_, latent_.get(),
                                        stream_.get(), max_grains, n_threads, fast);
  }

  // The bf16 copies of the decoder MLP and of the sequence VAE, and the encoder with bf16
  // convolutions (EncoderPrecision::kFast), built once (at the first fast session;
  // sessions already running read only the fp32 weights).
  void prepare_fast() {
    std::call_once(fast_once_, [this] {
      fast_bytes_ = p_.prepare_fast();
      if (latent_) fast_bytes_ += latent_->prepare_fast();
      if (stream_) fast_bytes_ += stream_->prepare_fast();
      EncoderOptions opt;
      opt.precision = EncoderPrecision::kFast;
      encoder_fast_ = std::make_unique<WaveformEncoder>(w_, opt);
    });
  }
  size_t fast_bytes() const { return fast_bytes_; }

 private:
  const WaveformWeights &w_;  // owned by the model, which outlives its backend
  Prepared p_;
  WaveformEncoder encoder_;
  std::unique_ptr<WaveformEncoder> encoder_fast_;  // prepare_fast
  std::unique_ptr<LatentModel> latent_;
  std::once_flag fast_once_;
  size_t fast_bytes_ = 0;
  std::unique_ptr<LatentStream> stream_;  // the streaming form of latent_ (rnn_*)
};

}  // namespace

HostStages::HostStages(const WaveformEncoder &encoder, const LatentModel *latent,
                       int max_grains, int latent_grains, ThreadPool *pool, int latent_batch,
                       int batch_grains, bool fast)
    : enc_(encoder),
      latent_(latent),
      max_grains_(max_grains),
      latent_grains_(latent_grains),
      latent_batch_(std::max(1, latent_batch)),
      batch_grains_(latent_batch_ > 1 ? std::max(1, batch_grains) : 0),
      fast_(fast && latent != nullptr && latent->has_fast()),
      pool_(pool),
      enc_scratch_(encoder.scratch_floats(max_grains, pool ? pool->size() : 1), 0.0f),
      lat_scratch_(latent ? std::max(latent->scratch_floats(latent_grains),
                                     latent->scratch_floats(batch_grains_, latent_batch_))
                          : 0,
                   0.0f) {}

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
  latent_->decode(e, class_index, n, z, lat_scratch_.data(), pool_, fast_);
}

void HostStages::latent_decode_batch(const float *e, int ld_e, int class_index, int B, int n,
                                     float *z, size_t ldzb) {
  if (!latent_) throw Error(kInvalidArgument, "latent_decode: the model has no sequence VAE");
  check(n, latent_grains_, "latent_decode");
  if (B == 1) return latent_->decode(e, class_index, n, z, lat_scratch_.data(), pool_, fast_);
  if (B < 1 || B > latent_batch_ || n > batch_grains_)
    throw Error(kCapacity, "latent_decode: " + std::to_string(B) + " sequences of " +
                               std::to_string(n) + " grains requested, session planned for 1.." +
                               std::to_string(latent_batch_) + " of up to " +
                               std::to_string(batch_grains_));
  latent_->decode_batch(e, ld_e, class_index, B, n, z, ldzb, lat_scratch_.data(), pool_, fast_);
}

void HostStages::latent_encode(const float *z, int n, float *e_mu, float *e_logvar) {
  if (!latent_) throw Error(kInvalidArgument, "latent_encode: the model has no sequence VAE");
  check(n, latent_grains_, "latent_encode");
  latent_->encode(z, n, e_mu, e_logvar, lat_scratch_.data(), pool_, fast_);
}

std::unique_ptr<Backend> make_cpu_backend(const WaveformWeights &w, const LatentWeights *latent,
                                          long stream_part_macs) {
  return std::make_unique<CpuBackend>(w, latent, stream_part_macs);
}

}  // namespace ngs::cpu
