// The CPU backend: prepared (packed) weights and the forward passes of the grain VAE and
// the sequence VAE on the CPU. Built once per model; const methods are thread-safe, all
// scratch memory comes from the caller (the context), so no call allocates.
#pragma once

#include <cstddef>
#include <memory>

#include "backend.h"
#include "weights.h"

namespace ngs::cpu {

class ThreadPool;  // thread_pool.h

// Grain VAE encoder (MODEL_SPEC 4, encoder 1-5).
class WaveformEncoder {
 public:
  explicit WaveformEncoder(const WaveformWeights &w);
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

 private:
  void grains(const float *audio, int n, int g0, int g1, float *flat, float *work) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sequence VAE (MODEL_SPEC 5).
class LatentModel {
 public:
  explicit LatentModel(const LatentWeights &w);
  ~LatentModel();
  size_t scratch_floats(int n_grains) const;
  // e [e_dim], class_index (-1 when n_conds == 0) -> z [n_grains][z_dim].
  void decode(const float *e, int class_index, int n_grains, float *z, float *scratch) const;
  // z [n_grains][z_dim] -> e_mu, e_logvar [e_dim] (either may be null).
  void encode(const float *z, int n_grains, float *e_mu, float *e_logvar, float *scratch) const;
  // Same with the RNN recurrences split across pool (nullptr: one thread; the scratch size
  // does not depend on it). Bitwise the same result for any thread count.
  void decode(const float *e, int class_index, int n_grains, float *z, float *scratch,
              ThreadPool *pool) const;
  void encode(const float *z, int n_grains, float *e_mu, float *e_logvar, float *scratch,
              ThreadPool *pool) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The CPU implementation of the decoder path (backend.h).
std::unique_ptr<DecoderBackend> make_cpu_backend(const WaveformWeights &w);

}  // namespace ngs::cpu
