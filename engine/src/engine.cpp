// Model and context creation, and the grain/sequence VAE processes (docs/PROCESSES.md).
#include "engine.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "ngs/ngs.h"
#include "common/philox.h"
#include "cpu/cpu.h"
#include "cuda/cuda_backend.h"

namespace ngs {

std::unique_ptr<ngs_model> model_create(std::unique_ptr<ModelFile> file, ngs_model_params p) {
  auto m = std::make_unique<ngs_model>();
  m->file = std::move(file);
  const LatentWeights *latent = m->file->has_latent ? &m->file->latent : nullptr;
  ngs_backend b = p.backend;
  if (b == NGS_BACKEND_AUTO) b = cuda_unavailable_reason(p.cuda_device).empty() ? NGS_BACKEND_CUDA : NGS_BACKEND_CPU;
  if (b == NGS_BACKEND_CUDA) {
    const std::string why = cuda_unavailable_reason(p.cuda_device);
    if (!why.empty()) throw Error(NGS_STATUS_UNSUPPORTED, why);
    m->compute = make_cuda_backend(m->file->waveform, latent, p.cuda_device);
  } else {
    m->compute = cpu::make_cpu_backend(m->file->waveform, latent);
  }
  m->backend = b;
  return m;
}

std::unique_ptr<ngs_context> context_create(const ngs_model &m, ngs_context_params p) {
  auto c = std::make_unique<ngs_context>();
  c->model = &m;
  c->max_grains = p.max_grains == 0 ? 8 * m.n_grains() : p.max_grains;
  c->n_threads = p.n_threads;
  c->max_loop_length =
      p.max_loop_length == 0 ? static_cast<size_t>(10) * static_cast<size_t>(m.wc().sr) : p.max_loop_length;
  const size_t zn = static_cast<size_t>(c->max_grains) * m.z_dim();
  c->session = m.compute->create_session(
      c->max_grains, c->n_threads,
      p.precision == NGS_PRECISION_FAST ? Precision::kFast : Precision::kFp32);
  c->mu.assign(zn, 0.0f);
  c->logvar.assign(zn, 0.0f);
  c->z.assign(zn, 0.0f);
  if (m.has_latent()) {
    const size_t ed = static_cast<size_t>(m.lc().e_dim);
    c->e0.assign(ed, 0.0f);
    c->e1.assign(ed, 0.0f);
    c->e.assign(ed, 0.0f);
    if (c->max_grains >= m.n_grains()) c->batch = c->session->sample_batch_max(m.n_grains());
    c->eb.assign(static_cast<size_t>(c->batch) * ed, 0.0f);
    c->keys.resize(c->batch);
  }
  c->seg_in.assign(m.audio_length(c->max_grains), 0.0f);
  c->seg_out.assign(m.audio_length(c->max_grains), 0.0f);
  c->track.assign(c->max_loop_length, 0.0f);
  return c;
}

void decode(ngs_context &c, const float *z, int n, NoiseKey key, float *audio) {
  c.session->decode(z, n, key, audio);
}

void encode(ngs_context &c, const float *audio, int n, uint64_t seed, uint32_t sequence,
            float *mu, float *logvar, float *z) {
  const ngs_model &m = *c.model;
  const int zd = m.z_dim();
  float *mu_w = mu != nullptr ? mu : c.mu.data();
  float *lv_w = logvar != nullptr ? logvar : c.logvar.data();
  c.session->encoder(audio, n, mu_w, lv_w);
  if (z == nullptr) return;
  for (int g = 0; g < n; ++g) {
    float *zg = z + static_cast<size_t>(g) * zd;
    philox_fill_normal(seed, kDomainEncoderEps, sequence, static_cast<uint32_t>(g), zg, zd);
    const float *mg = mu_w + static_cast<size_t>(g) * zd;
    const float *lg = lv_w + static_cast<size_t>(g) * zd;
    for (int i = 0; i < zd; ++i) zg[i] = mg[i] + zg[i] * std::exp(0.5f * lg[i]);
  }
}

void embedding_sample(const ngs_model &m, float temperature, uint64_t seed, uint32_t sequence,
                      float *e) {
  const int ed = m.lc().e_dim;
  philox_fill_normal(seed, kDomainEmbedding, sequence, 0, e, ed);
  for (int i = 0; i < ed; ++i) e[i] *= temperature;
}

void latent_decode(ngs_context &c, const float *e, int class_index, int n, float *z) {
  c.session->latent_decode(e, c.model->lc().n_conds > 0 ? class_index : -1, n, z);
}

void latent_encode(ngs_context &c, const float *z, int n, float *e_mu, float *e_logvar) {
  c.session->latent_encode(z, n, e_mu, e_logvar);
}

void render_one_shot(ngs_context &c, const float *e, int class_index, uint64_t seed,
                     uint32_t sequence, float *audio) {
  c.session->sample(e, c.model->lc().n_conds > 0 ? class_index : -1, c.model->n_grains(),
                    NoiseKey{seed, sequence}, audio);
}

// One-shot i: embedding and noise of sequence i. Up to c.batch one-shots per backend call
// (Session::sample_batch: the recurrences of all of them together), bit for bit the same as
// one call per one-shot.
void sample(ngs_context &c, const ngs_sample_params &p, float *audio) {
  const ngs_model &m = *c.model;
  const size_t len = m.sample_length();
  const int ed = m.lc().e_dim;
  const int cls = m.lc().n_conds > 0 ? p.class_index : -1;
  for (int i0 = 0; i0 < p.count; i0 += c.batch) {
    const int B = std::min(c.batch, p.count - i0);
    if (B == 1) {
      const uint32_t seq = static_cast<uint32_t>(i0);
      embedding_sample(m, p.temperature, p.seed, seq, c.e.data());
      render_one_shot(c, c.e.data(), p.class_index, p.seed, seq, audio + static_cast<size_t>(i0) * len);
      continue;
    }
    for (int b = 0; b < B; ++b) {
      const uint32_t seq = static_cast<uint32_t>(i0 + b);
      embedding_sample(m, p.temperature, p.seed, seq, c.eb.data() + static_cast<size_t>(b) * ed);
      c.keys[b] = NoiseKey{p.seed, seq};
    }
    c.session->sample_batch(c.eb.data(), ed, cls, B, m.n_grains(), c.keys.data(),
                            audio + static_cast<size_t>(i0) * len, len);
  }
}

void sample_interpolation(ngs_context &c, const ngs_sample_params &p, int steps, float *audio) {
  const size_t len = c.model->sample_length();
  const int ed = c.model->lc().e_dim;
  embedding_sample(*c.model, p.temperature, p.seed, 0, c.e0.data());
  embedding_sample(*c.model, p.temperature, p.seed, 1, c.e1.data());
  const int cls = c.model->lc().n_conds > 0 ? p.class_index : -1;
  // Step k: embedding e0 + (e1 - e0) k / (steps - 1), noise sequence k; up to c.batch steps
  // per backend call (as sample()).
  for (int k0 = 0; k0 < steps; k0 += c.batch) {
    const int B = std::min(c.batch, steps - k0);
    for (int b = 0; b < B; ++b) {
      const int k = k0 + b;
      const float t = static_cast<float>(k) / static_cast<float>(steps - 1);
      float *e = B == 1 ? c.e.data() : c.eb.data() + static_cast<size_t>(b) * ed;
      for (int i = 0; i < ed; ++i) e[i] = c.e0[i] + (c.e1[i] - c.e0[i]) * t;
      if (B > 1) c.keys[b] = NoiseKey{p.seed, static_cast<uint32_t>(k)};
    }
    if (B == 1)
      render_one_shot(c, c.e.data(), p.class_index, p.seed, static_cast<uint32_t>(k0),
                      audio + static_cast<size_t>(k0) * len);
    else
      c.session->sample_batch(c.eb.data(), ed, cls, B, c.model->n_grains(), c.keys.data(),
                              audio + static_cast<size_t>(k0) * len, len);
  }
}

}  // namespace ngs
