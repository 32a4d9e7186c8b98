// The backend interface: the whole model (docs/MODEL_SPEC.md §4 grain VAE, §5 sequence
// VAE) behind one dispatch, implemented by the CPU backend (kernels/cpu) and the CUDA
// backend (kernels/cuda). The engine holds one Backend per model and one Session per
// context. Model code hands host arrays in and gets host arrays back; a device backend
// copies, runs on its own stream and synchronises before returning, so no model code
// touches device memory. Within one call (e.g. sample: latent_decode then decode) a device
// backend keeps the intermediate data on the device.
//
// Stage names (one name per stage everywhere: these methods, the CPU functions, the CUDA
// files, the tests, the doc headings; table in docs/ENGINE.md "Stages"):
//   encoder        audio -> mu, logvar                        docs/MODEL_SPEC.md §4.1
//   latent_decode  embedding (+ class) -> z series            docs/MODEL_SPEC.md §5.2
//   latent_encode  z series -> embedding mu, logvar           docs/MODEL_SPEC.md §5.1
//   rnn_step       one recurrent step of B voices (streaming)  docs/MODEL_SPEC.md §5.2
//   decoder_mlp    z -> spectrum S (decoder stage 1)          docs/MODEL_SPEC.md §4.2
//   noise_filter   S -> windowed grains (decoder stage 2)     docs/MODEL_SPEC.md §4.2
//   overlap_add    grains -> audio, incl. FIR + softsign (3)  docs/MODEL_SPEC.md §4.2
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/error.h"
#include "weights.h"

namespace ngs {

// Which noise a decode call uses (docs/RANDOM.md, domain 1).
struct NoiseKey {
  uint64_t seed = 0;
  uint32_t sequence = 0;
};

// One grain of a batch of independent grains (the real-time synth): its noise stream, its
// absolute grain index g in that stream (uniforms(1, key.sequence, g)) and its OLA window
// (first: the first half is 1; last: the second half is 1; both: a single-grain series).
struct GrainSpec {
  NoiseKey key;
  int g = 0;
  bool first = false, last = false;
};

// Arithmetic of a session (ngs_context_params.precision). kFp32: fp32 weights and fp32
// arithmetic (the reference path, within 1e-5 of the PyTorch oracle). kFast: the CPU
// backend keeps bf16 copies of the linear (GEMM) weights and multiplies with the CPU's
// bf16 dot product (AVX512_BF16 vdpbf16ps), accumulating in fp32, and int8 copies of the
// recurrent matrices for the recurrence (AVX512_VNNI; bf16 without it) (errors per stage:
// docs/PRECISION.md). A backend or CPU without a fast path runs
// kFp32 instead and says so through Session::precision().
enum class Precision { kFp32 = 0, kFast = 1 };

// Per-context state of a backend: the workspace for up to max_grains grains (and the
// sequence VAE's model length), planned once, and the context's one thread pool (CPU
// work of every stage shares it). None of these calls allocates. Not thread-safe: one
// session per context. Every call throws ngs::Error on failure (kCapacity beyond the
// planned size).
class Session {
 public:
  virtual ~Session() = default;

  // ---- Grain encoder (docs/MODEL_SPEC.md §4.1) --------------------------------------
  // audio [(n + 3) * hop] -> mu, logvar [n][z_dim] (logvar after Hardtanh).
  virtual void encoder(const float *audio, int n, float *mu, float *logvar) = 0;
  // B independent grains (the synth's live resynthesis), B <= max_grains: src[b] points at
  // l_grain host samples; first[b] / last[b] select a series' first / last grain windows.
  // -> mu [B][z_dim]; row b equals encoder()'s row of the same grain. Backends that do not
  // stream throw kUnsupported (the synth then uses a CPU session).
  virtual void encode_grains(const float *const *src, const unsigned char *first,
                             const unsigned char *last, int B, float *mu);

  // ---- Sequence VAE (docs/MODEL_SPEC.md §5); only when the backend has latent weights -
  // e [e_dim], class_index (-1 for an unconditional model) -> z [n][z_dim].
  virtual void latent_decode(const float *e, int class_index, int n, float *z) = 0;
  // z [n][z_dim] -> e_mu, e_logvar [e_dim] (either may be null).
  virtual void latent_encode(const float *z, int n, float *e_mu, float *e_logvar) = 0;
  // ---- Streaming sequence VAE (rnn_step; the real-time synth, docs/SYNTH.md) -----------
  // Per-voice recurrent state lives in the session (on the device for a device backend),
  // in slots 0 .. max_voices - 1. rnn_plan sizes it (allocates: call it off the audio
  // thread, once); rnn_start and rnn_step then never allocate, lock or wait on anything
  // but the backend's own compute.
  virtual void rnn_plan(int max_voices);
  // Starts slot: e [e_dim], class_index (-1 for an unconditional model): the embedding MLP
  // (decoder_e) and the first RNN layer's input projection, once; zero recurrent state.
  virtual void rnn_start(int slot, const float *e, int class_index);
  // One recurrent step of B started voices: slots[b] (distinct) -> that voice's next
  // z (row b of z [B][ldz], host memory). The recurrent matrices are read once for all B.
  // Step k of a voice equals row k of latent_decode of the same e and class.
  virtual void rnn_step(const int *slots, int B, float *z, int ldz);
  // The same in parts of about equal work (the synth's spread mode puts them in different
  // host blocks). rnn_parts(start, cost): the number of parts of an rnn_start (start =
  // true) or of an rnn_step, at most kMaxRnnParts, and each part's estimated cost in
  // thousands of instructions in cost[part] (may be null). A voice runs parts 0 .. n - 1 in
  // order, each part in any batch of voices at that part; rnn_start_part's part 0 reads e,
  // rnn_step_part's last part writes z. Parts give the same bits as the whole calls. The
  // default: one part each, the whole call (cost -1: unknown).
  static constexpr int kMaxRnnParts = 32;
  virtual int rnn_parts(bool start, int *cost) const;
  virtual void rnn_start_part(int part, int slot, const float *e, int class_index);
  virtual void rnn_step_part(int part, const int *slots, int B, float *z, int ldz);

  // ---- Grain decoder (docs/MODEL_SPEC.md §4.2) --------------------------------------
  // Whole decode: z [n][z_dim] -> audio [(n + 3) * hop]. Grain i has absolute index i of n.
  virtual void decode(const float *z, int n, NoiseKey key, float *audio) = 0;
  // Stage 1, decoder_mlp: z [n][z_dim] -> S [n][F].
  virtual void decoder_mlp(const float *z, int n, float *S) = 0;
  // Stage 2, noise_filter: S [n][F] of grains g0 .. g0+n-1 of a series of n_total ->
  // windowed grains [n][l_grain].
  virtual void noise_filter(const float *S, int n, int g0, int n_total, NoiseKey key,
                            float *y) = 0;
  // Stage 3, overlap_add: grains [n][l_grain] of a whole series -> audio [(n + 3) * hop].
  // When ola_only, stops after the divisor (before the FIR and softsign).
  virtual void overlap_add(const float *y, int n, float *audio, bool ola_only = false) = 0;
  // Stages 1 and 2 for B independent grains (one per voice of the synth): z [B][z_dim]
  // -> windowed grains y [B][l_grain], grain b with spec[b]'s noise and window. Stage 1 is
  // one matrix product over the B rows. Row b equals the row of the same grain in a whole
  // decode. Backends that do not stream throw kUnsupported (the synth uses the CPU).
  // The per-voice overlap-add state is the synth's (kernels/cpu/cpu.h OlaStream).
  virtual void decode_grains(const float *z, int B, const GrainSpec *spec, float *y);
  // Stage 1 in parts of about equal work (the synth's spread mode). decoder_mlp_parts(cost):
  // how many (at most kMaxRnnParts), each one's estimated cost in thousands of
  // instructions in cost[part] (may be null); decoder_mlp_carry_floats(): the floats per
  // row that the caller keeps between parts. Part p of rows z [n][z_dim] reads and writes
  // their carry rows (carry [n][ldc]); the last part writes S [n][F]. A row runs parts 0 ..
  // parts - 1 in order, each in any batch; the same bits as decoder_mlp(). The default: one
  // part, decoder_mlp() itself (cost -1: unknown).
  virtual int decoder_mlp_parts(int *cost) const;
  virtual size_t decoder_mlp_carry_floats() const { return 0; }
  virtual void decoder_mlp_part(int part, const float *z, int n, float *carry, size_t ldc, float *S);

  // ---- Composite request (one call, so a device backend keeps z on the device) --------
  // latent_decode(e, class_index, n) then decode(z, n, key): audio [(n + 3) * hop].
  virtual void sample(const float *e, int class_index, int n, NoiseKey key, float *audio) = 0;
  // B one-shots in one call: e [B][ld_e] (embedding b at e + b * ld_e), one class, keys[b] -> audio row b at
  // audio + b * ld_audio ([(n + 3) * hop] each), B <= sample_batch_max(n). Equals B calls
  // of sample() (bit for bit on the CPU backend, which runs the B sequences' recurrences
  // together, reading each recurrent matrix once per step for all of them, and the decoder
  // MLP as one GEMM over all B * n grains). The default calls sample() B times.
  virtual void sample_batch(const float *e, int ld_e, int class_index, int B, int n,
                            const NoiseKey *keys, float *audio, size_t ld_audio);
  // Largest B of sample_batch for series of n grains (at least 1 when n is within the
  // session's capacity).
  virtual int sample_batch_max(int n) const;

  // The precision this session runs (kFp32 when kFast was asked for but is unavailable).
  virtual Precision precision() const { return Precision::kFp32; }
};

inline void Session::rnn_plan(int) {
  throw Error(kUnsupported, "this backend does not stream the sequence VAE");
}
inline void Session::rnn_start(int, const float *, int) {
  throw Error(kUnsupported, "this backend does not stream the sequence VAE");
}
inline void Session::rnn_step(const int *, int, float *, int) {
  throw Error(kUnsupported, "this backend does not stream the sequence VAE");
}
inline void Session::sample_batch(const float *e, int ld_e, int class_index, int B, int n,
                                  const NoiseKey *keys, float *audio, size_t ld_audio) {
  for (int b = 0; b < B; ++b)
    sample(e + static_cast<size_t>(b) * ld_e, class_index, n, keys[b],
           audio + static_cast<size_t>(b) * ld_audio);
}
inline int Session::rnn_parts(bool, int *cost) const {
  if (cost) cost[0] = -1;
  return 1;
}
inline void Session::rnn_start_part(int part, int slot, const float *e, int class_index) {
  if (part == 0) rnn_start(slot, e, class_index);
}
inline void Session::rnn_step_part(int part, const int *slots, int B, float *z, int ldz) {
  if (part == 0) rnn_step(slots, B, z, ldz);
}
inline int Session::decoder_mlp_parts(int *cost) const {
  if (cost) cost[0] = -1;
  return 1;
}
inline void Session::decoder_mlp_part(int part, const float *z, int n, float *, size_t, float *S) {
  if (part == 0) decoder_mlp(z, n, S);
}
inline int Session::sample_batch_max(int) const { return 1; }
inline void Session::encode_grains(const float *const *, const unsigned char *,
                                   const unsigned char *, int, float *) {
  throw Error(kUnsupported, "this backend does not encode batches of independent grains");
}
inline void Session::decode_grains(const float *, int, const GrainSpec *, float *) {
  throw Error(kUnsupported, "this backend does not decode batches of independent grains");
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char *name() const = 0;
  // Whether latent_decode / latent_encode / sample are available (latent weights given).
  virtual bool has_latent() const = 0;
  // A session for requests of up to max_grains grains (the sequence VAE's calls also up to
  // the model's n_grains), with n_threads CPU threads (the caller is one of them), in the
  // given precision (the session may run kFp32 instead: Session::precision()).
  // Throws ngs::Error on failure (the C API turns it into a status).
  virtual std::unique_ptr<Session> create_session(int max_grains, int n_threads,
                                                  Precision precision) = 0;
  std::unique_ptr<Session> create_session(int max_grains, int n_threads) {
    return create_session(max_grains, n_threads, Precision::kFp32);
  }
};

}  // namespace ngs
