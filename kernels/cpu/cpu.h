// The CPU backend (backend.h): prepared (packed) weights and the forward passes of the
// grain VAE and the sequence VAE on the CPU. Built once per model; const methods are
// thread-safe, all scratch memory comes from the caller (the session), so no call
// allocates.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "backend.h"
#include "weights.h"

namespace ngs::cpu {

class ThreadPool;  // thread_pool.h

// How the encoder runs its convolutions (docs/CPU_BACKEND.md "Encoder").
enum class EncoderConv {
  kDefault,   // NGS_ENCODER_CONV=direct|winograd from the environment, else Winograd
  kDirect,    // im2col + one GEMM per conv (the reference path)
  kWinograd,  // Winograd F(4,3) for the 3-tap dilated and the strided convs where it is
              // faster: fp32, point GEMMs of at least 16 rows (tiles of 4 outputs); bf16,
              // every such conv
  kWinogradAll,  // Winograd for every conv it supports (tests)
};

// The precision of the encoder's convolutions and residual mixes (the linears, bias and
// activations are always fp32).
enum class EncoderPrecision {
  kFp32,  // fp32 throughout
  kFast,  // fast mode: bf16 products (inputs and weights rounded to nearest even) with
          // fp32 sums where the CPU has AVX-512 BF16 (vdpbf16ps, twice the FMA rate);
          // elsewhere fp32, because emulating the bf16 products with fp32 FMAs is slower
          // than the fp32 path itself (bench/RESULTS.md "Encoder, round 2")
  kBf16,  // bf16 products always: the fp32 emulation of vdpbf16ps where the CPU lacks it
          // (tests, benchmarks; the same numerics as kFast on a bf16 CPU)
};

struct EncoderOptions {
  EncoderConv conv = EncoderConv::kDefault;
  EncoderPrecision precision = EncoderPrecision::kFp32;
};

// Grain VAE encoder (docs/MODEL_SPEC.md §4.1).
class WaveformEncoder {
 public:
  // The choice of kFast is made here, from the active ISA table (NGS_CPU_ISA / isa_set).
  explicit WaveformEncoder(const WaveformWeights &w, const EncoderOptions &opt = {});
  // Whether the convolutions run with bf16 products (kBf16, or kFast on a bf16 CPU).
  bool bf16() const;
  ~WaveformEncoder();
  // Scratch floats encode() needs for up to n grains (n_threads: the size of the pool
  // that will be passed to encode(); each thread has its own per-grain buffers).
  size_t scratch_floats(int n) const;
  size_t scratch_floats(int n, int n_threads) const;
  // audio [(n + 3) * hop] -> mu, logvar [n][z_dim] (logvar after Hardtanh). Slices the
  // grains and applies the OLA windows itself.
  void encode(const float *audio, int n, float *mu, float *logvar, float *scratch) const;
  // Same, the grains' conv stages split across pool (nullptr: one thread; scratch sized
  // by scratch_floats(n, pool->size())). Bitwise the same result for any thread count.
  void encode(const float *audio, int n, float *mu, float *logvar, float *scratch,
              ThreadPool *pool) const;
  // B independent grains (the synth's live resynthesis): src[b] points at l_grain
  // samples; first[b] / last[b] select the edge windows of a series' first / last grain.
  // mu [B][z_dim]. scratch: scratch_floats(B) floats. Row b equals encode()'s row of the
  // same grain.
  void encode_grains(const float *const *src, const unsigned char *first,
                     const unsigned char *last, int B, float *mu, float *scratch) const;

 private:
  void grains(const float *audio, int n, int g0, int g1, float *flat, float *work) const;
  void group(const float *const *src, const unsigned char *first, const unsigned char *last,
             int G, float *flat, float *work) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sequence VAE (docs/MODEL_SPEC.md §5).
class LatentModel {
 public:
  explicit LatentModel(const LatentWeights &w);
  ~LatentModel();
  size_t scratch_floats(int n_grains) const;
  // For decode_batch of up to batch sequences (and encode).
  size_t scratch_floats(int n_grains, int batch) const;
  // e [e_dim], class_index (-1 when n_conds == 0) -> z [n_grains][z_dim].
  void decode(const float *e, int class_index, int n_grains, float *z, float *scratch) const;
  // z [n_grains][z_dim] -> e_mu, e_logvar [e_dim] (either may be null).
  void encode(const float *z, int n_grains, float *e_mu, float *e_logvar, float *scratch) const;
  // Same with the RNN recurrences split across pool (nullptr: one thread; the scratch size
  // does not depend on it). Bitwise the same result for any thread count. fast: the bf16
  // copies and kernels (ops.h "Fast precision"; prepare_fast() must have run).
  void decode(const float *e, int class_index, int n_grains, float *z, float *scratch,
              ThreadPool *pool, bool fast = false) const;
  void encode(const float *z, int n_grains, float *e_mu, float *e_logvar, float *scratch,
              ThreadPool *pool, bool fast = false) const;
  // B sequences at once (batched one-shots): e_b at e + b * ld_e, one class, z_b
  // [n_grains][z_dim] at z + b * ldzb. Every recurrent matrix is read once per step for all
  // B (rnn_forward_batch) and the per-step linears run as one GEMM over B * n_grains rows;
  // z_b is bit for bit decode()'s of e_b. scratch: scratch_floats(n_grains, B).
  void decode_batch(const float *e, int ld_e, int class_index, int B, int n_grains, float *z,
                    size_t ldzb, float *scratch, ThreadPool *pool, bool fast) const;
  // Builds the bf16 copies of every linear and recurrent matrix (fast precision) once and
  // returns their size in bytes. Not thread-safe: call it before sharing the model (the
  // CPU backend does, under a once flag, at the first fast session).
  size_t prepare_fast();
  bool has_fast() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streaming sequence-VAE decoder (the real-time synth, kernels/cpu/stream.cpp): the decoder
// RNN of docs/MODEL_SPEC.md §5 advanced ONE step at a time for a batch of independent voices. A
// voice's state (state_floats()) holds the first layer's constant input projection and
// every layer's h (and c for an LSTM). At each step the recurrent matrices are read once
// for the whole batch (one GEMM over the voices per layer). Matches LatentModel::decode
// step for step within fp32 rounding (the summation order of the recurrent products
// differs). No call allocates; const methods are thread-safe.
// Largest work of one part of the streaming calls (LatentStream::parts, the CPU session's
// decoder_mlp_parts), in multiply-adds: about 18 k instructions at one row.
constexpr long kStreamPartMacs = 35000;

class LatentStream {
 public:
  // part_macs: the size of the parts (kStreamPartMacs; tests use smaller ones).
  explicit LatentStream(const LatentWeights &w, long part_macs = kStreamPartMacs);
  ~LatentStream();
  size_t state_floats() const;
  size_t scratch_floats(int max_batch) const;
  // Starts a voice: e [e_dim], class_index (-1 when n_conds == 0): the embedding MLP and
  // the first RNN layer's input projection, once; zero recurrent state.
  void start(const float *e, int class_index, float *state, float *scratch) const;
  // One step of B voices: states[b] (updated), class_index[b] -> z row b of z [B][ldz].
  // fast: bf16 products with fp32 sums (prepare_fast() done; fp32 otherwise).
  void step(float *const *states, const int *class_index, int B, float *z, int ldz,
            float *scratch, bool fast = false) const;
  // The start and the step in parts (the synth's spread mode runs them in different host
  // blocks): parts(start, macs) = how many, and each one's work in macs[part] (its
  // multiply-adds, plus the cells' and LayerNorms' work as the time of as many)
  // (may be null; room for parts() entries). A voice runs parts 0 .. parts - 1 in order,
  // each in any batch; part 0 of a start reads e, the last part of a step writes z. The
  // parts give the same bits as start() and step() (which run them all).
  int parts(bool start, long *macs = nullptr) const;
  void start_part(int part, const float *e, int class_index, float *state, float *scratch) const;
  void step_part(int part, float *const *states, const int *class_index, int B, float *z, int ldz,
                 float *scratch, bool fast = false) const;
  // The bf16 copies of the step's matrices (fast precision), once; their size in bytes.
  // Not thread-safe: the CPU backend calls it under its once flag, before a fast session.
  size_t prepare_fast();
  bool has_fast() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streaming overlap-add of one voice (stream.cpp): grains arrive one at a time (grain g at
// sample g * hop), and the voice's output (OLA, divisor, FIR, softsign: stage 3 of
// docs/MODEL_FORMAT.md) is produced as soon as the samples it depends on are final. The
// result equals overlap_add + overlap_add_fir_softsign of the same grains bit for bit.
// All memory is the caller's: a window of buffer_floats() floats per voice.
struct OlaStreamShape {
  int l_grain = 0, hop = 0, taps = 0;
  bool normalize = true;
  int lookback() const { return taps / 2; }              // FIR samples before t
  int lookahead() const { return taps - 1 - taps / 2; }  // FIR samples after t
  // Samples the window may keep beyond what the FIR still needs: it is moved (memmove of
  // the live samples) once every slack / hop + 1 hops instead of every hop.
  int slack() const { return 4 * hop; }
  int buffer_floats() const { return l_grain + 2 * hop + taps + 16 + slack(); }
};

struct OlaStream {
  float *buf = nullptr;  // buffer_floats(): local samples [base, base + cap)
  long long base = 0;    // local index of buf[0]
  int grains = 0;        // grains added
  long long final_end = 0;  // local samples [0, final_end) are final (divided)
  long long length = -1;    // total output length once the last grain is known, else -1
  void reset(float *buffer, const OlaStreamShape &s);
};

// Adds grain g == st.grains (y [l_grain], windowed); last: no grain follows it.
void ola_stream_add(OlaStream &st, const OlaStreamShape &s, const float *y, bool last);
// Ends a voice whose last grain was already added (or that has no grain: length 0).
void ola_stream_end(OlaStream &st, const OlaStreamShape &s);
// Output samples [t0, t1) (local indices) of FIR + softsign; needs t1 + lookahead <=
// final_end unless the length is known (and t1 <= length). Frees the window before t0 -
// lookback.
void ola_stream_output(OlaStream &st, const OlaStreamShape &s, const float *fir, float bias,
                       long long t0, long long t1, float *out);

// The encoder and the sequence VAE stages of one session on the CPU: scratch planned once
// for max_grains grains (the sequence VAE also for the model's n_grains) and the session's
// one thread pool (null: one thread). The CPU session runs them through this; so does the
// CUDA session, which has no encoder or sequence-VAE kernels yet and delegates to the CPU.
class HostStages {
 public:
  // latent may be null (no sequence VAE). pool: n_threads of the session, or null.
  // latent_batch: the most sequences latent_decode_batch takes, of up to batch_grains
  // grains each. fast: the sequence VAE in fast precision (latent->prepare_fast() done).
  HostStages(const WaveformEncoder &encoder, const LatentModel *latent, int max_grains,
             int latent_grains, ThreadPool *pool, int latent_batch = 1, int batch_grains = 0,
             bool fast = false);
  void encoder(const float *audio, int n, float *mu, float *logvar);
  // B <= max_grains independent grains (WaveformEncoder::encode_grains), on one thread.
  void encode_grains(const float *const *src, const unsigned char *first,
                     const unsigned char *last, int B, float *mu);
  void latent_decode(const float *e, int class_index, int n, float *z);
  void latent_encode(const float *z, int n, float *e_mu, float *e_logvar);
  // B <= latent_batch() sequences (LatentModel::decode_batch).
  void latent_decode_batch(const float *e, int ld_e, int class_index, int B, int n, float *z,
                           size_t ldzb);
  int latent_batch() const { return latent_batch_; }

 private:
  void check(int n, int max, const char *what) const;
  const WaveformEncoder &enc_;
  const LatentModel *latent_;
  int max_grains_, latent_grains_, latent_batch_, batch_grains_;
  bool fast_;
  ThreadPool *pool_;
  std::vector<float> enc_scratch_, lat_scratch_;
};

// The CPU backend (backend.h): the grain VAE and, when latent is not null, the sequence
// VAE. The weights must outlive the backend.
// Its sessions also stream: rnn_plan / rnn_start / rnn_step (LatentStream, per-voice
// state in the session), encode_grains and decode_grains (the real-time synth).
// stream_part_macs: the size of the streaming calls' parts (kStreamPartMacs).
std::unique_ptr<Backend> make_cpu_backend(const WaveformWeights &w,
                                          const LatentWeights *latent = nullptr,
                                          long stream_part_macs = kStreamPartMacs);

}  // namespace ngs::cpu
