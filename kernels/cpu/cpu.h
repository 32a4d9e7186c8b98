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

// Grain VAE encoder (docs/MODEL_SPEC.md §4.1).
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

// Sequence VAE (docs/MODEL_SPEC.md §5).
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

// The encoder and the sequence VAE stages of one session on the CPU: scratch planned once
// for max_grains grains (the sequence VAE also for the model's n_grains) and the session's
// one thread pool (null: one thread). The CPU session runs them through this; so does the
// CUDA session, which has no encoder or sequence-VAE kernels yet and delegates to the CPU.
class HostStages {
 public:
  // latent may be null (no sequence VAE). pool: n_threads of the session, or null.
  HostStages(const WaveformEncoder &encoder, const LatentModel *latent, int max_grains,
             int latent_grains, ThreadPool *pool);
  void encoder(const float *audio, int n, float *mu, float *logvar);
  void latent_decode(const float *e, int class_index, int n, float *z);
  void latent_encode(const float *z, int n, float *e_mu, float *e_logvar);

 private:
  void check(int n, int max, const char *what) const;
  const WaveformEncoder &enc_;
  const LatentModel *latent_;
  int max_grains_, latent_grains_;
  ThreadPool *pool_;
  std::vector<float> enc_scratch_, lat_scratch_;
};

// The CPU backend (backend.h): the grain VAE and, when latent is not null, the sequence
// VAE. The weights must outlive the backend.
std::unique_ptr<Backend> make_cpu_backend(const WaveformWeights &w,
                                          const LatentWeights *latent = nullptr);

}  // namespace ngs::cpu
