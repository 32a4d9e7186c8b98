// The decoder backend interface: the grain decoder path (docs/MODEL_FORMAT.md "Decode
// stages") behind one dispatch, implemented by the CPU backend (kernels/cpu) and the
// CUDA backend (kernels/). Model code hands host arrays in and gets host arrays back; a
// device backend copies, runs on its own stream and synchronises before returning, so no
// model code touches device memory. The sequence VAE and the encoder run on the CPU.
#pragma once

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

// Per-context state of a backend: the workspace for up to max_grains grains, planned once.
// None of these calls allocates. Not thread-safe: one session per context.
class DecoderSession {
 public:
  virtual ~DecoderSession() = default;
  // Whole decode: z [n][z_dim] -> audio [(n + 3) * hop]. Grain i has absolute index i of n.
  virtual void decode(const float *z, int n, NoiseKey key, float *audio) = 0;
  // Stage 1: z [n][z_dim] -> S [n][F].
  virtual void spectrum(const float *z, int n, float *S) = 0;
  // Stage 2: S [n][F] of grains g0 .. g0+n-1 of a series of n_total -> windowed grains
  // [n][l_grain].
  virtual void grains(const float *S, int n, int g0, int n_total, NoiseKey key, float *y) = 0;
  // Stage 3: grains [n][l_grain] of a whole series -> audio [(n + 3) * hop]. When
  // ola_only, stops after the divisor (before the FIR and softsign).
  virtual void overlap_add(const float *y, int n, float *audio, bool ola_only = false) = 0;
  // Stages 1 and 2 for B independent grains (one per voice of the synth): z [B][z_dim]
  // -> windowed grains y [B][l_grain], grain b with spec[b]'s noise and window. Stage 1 is
  // one matrix product over the B rows. Row b equals the row of the same grain in a whole
  // decode. Backends that do not stream throw kUnsupported (the synth uses the CPU).
  virtual void decode_grains(const float *z, int B, const GrainSpec *spec, float *y);
};

inline void DecoderSession::decode_grains(const float *, int, const GrainSpec *, float *) {
  throw Error(kUnsupported, "this decoder backend does not decode batches of independent grains");
}

class DecoderBackend {
 public:
  virtual ~DecoderBackend() = default;
  virtual const char *name() const = 0;
  // Throws ngs::Error on failure (the C API turns it into a status).
  virtual std::unique_ptr<DecoderSession> create_session(int max_grains, int n_threads) = 0;
};

}  // namespace ngs
