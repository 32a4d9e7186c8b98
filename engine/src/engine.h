// The objects behind the C API's opaque handles and the processes they run (docs/ENGINE.md,
// docs/PROCESSES.md). api.cpp only checks arguments and catches exceptions; everything
// here may throw ngs::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "model_file.h"
#include "ngs/ngs.h"

// Immutable after creation; shared by threads.
struct ngs_model {
  std::unique_ptr<ngs::ModelFile> file;
  ngs_backend backend = NGS_BACKEND_CPU;
  // The whole model (encoder, sequence VAE, decoder) on the chosen backend (backend.h).
  std::unique_ptr<ngs::Backend> compute;

  const ngs::WaveformConfig &wc() const { return file->waveform.cfg; }
  const ngs::LatentConfig &lc() const { return file->latent.cfg; }
  bool has_latent() const { return compute->has_latent(); }
  int z_dim() const { return wc().z_dim; }
  int hop() const { return wc().hop; }
  int n_grains() const { return wc().n_grains; }
  size_t audio_length(int n) const {
    return n < 1 ? 0 : (static_cast<size_t>(n) + 3) * static_cast<size_t>(hop());
  }
  size_t sample_length() const { return audio_length(n_grains()); }
};

// One caller's workspace, sized once in ngs_context_init.
struct ngs_context {
  const ngs_model *model = nullptr;
  int max_grains = 0;
  int n_threads = 1;
  size_t max_loop_length = 0;
  // Every stage's workspace and the context's one thread pool (n_threads - 1 workers + the
  // caller).
  std::unique_ptr<ngs::Session> session;
  std::vector<float> mu, logvar, z;  // [max_grains][z_dim]
  std::vector<float> e0, e1, e;      // [e_dim]
  // Batched one-shots (ngs_sample with count > 1): embeddings [batch][e_dim], noise keys.
  int batch = 1;
  std::vector<float> eb;
  std::vector<ngs::NoiseKey> keys;
  std::vector<float> seg_in, seg_out;  // [(max_grains + 3) * hop]
  std::vector<float> track;            // [max_loop_length]
};

namespace ngs {

std::unique_ptr<ngs_model> model_create(std::unique_ptr<ModelFile> file, ngs_model_params p);
std::unique_ptr<ngs_context> context_create(const ngs_model &m, ngs_context_params p);

// Processes. Arguments are checked by the caller (api.cpp) unless noted.
void decode(ngs_context &c, const float *z, int n, NoiseKey key, float *audio);
void encode(ngs_context &c, const float *audio, int n, uint64_t seed, uint32_t sequence,
            float *mu, float *logvar, float *z);
void embedding_sample(const ngs_model &m, float temperature, uint64_t seed, uint32_t sequence,
                      float *e);
void latent_decode(ngs_context &c, const float *e, int class_index, int n, float *z);
void latent_encode(ngs_context &c, const float *z, int n, float *e_mu, float *e_logvar);
// One one-shot of model n_grains grains from embedding e, noise (seed, sequence).
void render_one_shot(ngs_context &c, const float *e, int class_index, uint64_t seed,
                     uint32_t sequence, float *audio);
void sample(ngs_context &c, const ngs_sample_params &p, float *audio);
void sample_interpolation(ngs_context &c, const ngs_sample_params &p, int steps, float *audio);
void path_generate(const ngs_model &m, const ngs_path_params &p, int n, float *z);
void preprocess(const ngs_model &m, float *audio, size_t n, bool normalize);
void resynthesize(ngs_context &c, const float *audio, size_t n, const ngs_resynth_params &p,
                  float *out);
void render_loop(ngs_context &c, const ngs_loop_event *events, int n_events,
                 const ngs_loop_params &p, float *audio, size_t loop_length);

}  // namespace ngs
