// The CUDA backend (kernels/cuda/cuda_backend.cu) against the CPU backend: every decode stage
// and the whole decode (CUDA Graph path, re-used across requests), on random models and on
// the golden fixtures (decode and sample pipelines: the sequence VAE on the CPU, then the
// decode on the CUDA backend), same seed, relative L2 <= 1e-5.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "ngs/ngs.h"
#include "cpu/cpu.h"
#include "cuda_backend.cuh"
#include "model_file.h"
#include "test_cuda_util.h"

using namespace ngs;
using ngs::test::kTolF32;
using ngs::test::poisoned;
using ngs::test::rel_l2;

namespace {

struct Pair {
  std::unique_ptr<Backend> cpu, gpu;
  std::unique_ptr<Session> cs, gs;
  Pair(const WaveformWeights &w, int max_grains, cuda::BackendOptions opt = {}) {
    cpu = cpu::make_cpu_backend(w);
    gpu = cuda::make_backend(w, 0, opt);
    cs = cpu->create_session(max_grains, 1);
    gs = gpu->create_session(max_grains, 1);
  }
};

void expect_decode_equal(Pair &p, const WaveformConfig &c, const std::vector<float> &z, int n,
                         NoiseKey key) {
  const size_t len = static_cast<size_t>(n + 3) * c.hop;
  std::vector<float> a = poisoned(len), b = poisoned(len);
  p.gs->decode(z.data(), n, key, a.data());
  p.cs->decode(z.data(), n, key, b.data());
  EXPECT_LE(rel_l2(a, b), kTolF32) << "n " << n << " seed " << key.seed;
}

}  // namespace

TEST(CudaBackend, StagesMatchCpuBackend) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  test::RandomDecoder d(16, 40, 2, 256, 9, seed);
  const WaveformConfig &c = d.w.cfg;
  Pair p(d.w, 12);
  EXPECT_EQ(std::string(p.gpu->name()).rfind("cuda", 0), 0u) << p.gpu->name();
  const int F = c.filter_size(), l = c.l_grain;
  for (int n : {1, 7, 12}) {
    SCOPED_TRACE("n " + std::to_string(n));
    const std::vector<float> z = test::random_normal(static_cast<size_t>(n) * c.z_dim, seed + n);
    std::vector<float> S = poisoned(static_cast<size_t>(n) * F), S_ref = S;
    p.gs->decoder_mlp(z.data(), n, S.data());
    p.cs->decoder_mlp(z.data(), n, S_ref.data());
    EXPECT_LE(rel_l2(S, S_ref), kTolF32);
    // grains of a chunk in the middle of a longer series
    const NoiseKey key{seed * 0x9E3779B97F4A7C15ull, 2u};
    std::vector<float> y = poisoned(static_cast<size_t>(n) * l), y_ref = y;
    p.gs->noise_filter(S_ref.data(), n, 3, n + 5, key, y.data());
    p.cs->noise_filter(S_ref.data(), n, 3, n + 5, key, y_ref.data());
    EXPECT_LE(rel_l2(y, y_ref), kTolF32);
    for (bool ola_only : {false, true}) {
      const size_t len = static_cast<size_t>(n + 3) * c.hop;
      std::vector<float> a = poisoned(len), a_ref = a;
      p.gs->overlap_add(y_ref.data(), n, a.data(), ola_only);
      p.cs->overlap_add(y_ref.data(), n, a_ref.data(), ola_only);
      EXPECT_LE(rel_l2(a, a_ref), kTolF32) << "ola_only " << ola_only;
    }
    expect_decode_equal(p, c, z, n, key);
  }
}

TEST(CudaBackend, GraphReusedAcrossRequests) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  test::RandomDecoder d(8, 32, 3, 128, 5, seed, false);
  const WaveformConfig &c = d.w.cfg;
  Pair graph(d.w, 9), plain(d.w, 9, cuda::BackendOptions{false, false});
  // Same size with new inputs and keys (the graph must read the new ones), then a new
  // size, then the first size again.
  for (int n : {5, 5, 9, 5}) {
    const std::vector<float> z = test::random_normal(static_cast<size_t>(n) * c.z_dim, seed + n * 31);
    const NoiseKey key{seed + static_cast<uint64_t>(n) * 1000003u, static_cast<uint32_t>(n)};
    expect_decode_equal(graph, c, z, n, key);
    expect_decode_equal(plain, c, z, n, key);
  }
}

TEST(CudaBackend, RejectsBadRequests) {
  NGS_REQUIRE_CUDA_DEVICE();
  test::RandomDecoder d(8, 16, 1, 64, 5, 1u);
  Pair p(d.w, 4);
  std::vector<float> z(5 * 8, 0.5f), a((5 + 3) * 16);
  try {
    p.gs->decode(z.data(), 5, NoiseKey{}, a.data());
    ADD_FAILURE() << "no error for 5 grains in a session of 4";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), NGS_STATUS_CAPACITY);
    EXPECT_NE(std::string(e.what()).find("holds 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(p.gs->decode(nullptr, 2, NoiseKey{}, a.data()), Error);
  EXPECT_THROW(p.gs->noise_filter(z.data(), 2, 3, 4, NoiseKey{}, a.data()), Error);
  // Weights the kernels cannot run.
  test::RandomDecoder bad(8, 16, 1, 64, 4, 2u);  // even FIR length
  try {
    cuda::make_backend(bad.w, 0, {});
    ADD_FAILURE() << "no error for an even FIR";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), NGS_STATUS_BAD_MODEL);
  }
  test::RandomDecoder shape(8, 16, 2, 64, 5, 3u);
  shape.w.dec_lin[1].in = 17;
  EXPECT_THROW(cuda::make_backend(shape.w, 0, {}), Error);
}

// Golden fixtures: decode and sample pipelines through the CUDA backend.
TEST(CudaBackend, FixturePipelinesMatchCpuAndGolden) {
  NGS_REQUIRE_CUDA_DEVICE();
  const std::vector<std::string> configs = test::fixture_configs();
  if (configs.empty())
    GTEST_SKIP() << "skipped: no golden fixtures under " << test::fixtures_dir()
                 << " (python3 -m weights_converter.make_fixtures --out <build>/fixtures)";
  for (const std::string &name : configs) {
    SCOPED_TRACE(name);
    const auto model = load_model_file(test::fixture_path(name, "model.safetensors"));
    const test::Golden g = test::load_golden(test::fixture_path(name, "golden.safetensors"));
    const uint64_t seed = std::stoull(g.meta("golden.seed"));
    const WaveformConfig &c = model->waveform.cfg;
    const int n = g.dim("decode.z", 0);
    Pair p(model->waveform, n);
    const NoiseKey key{seed, 0};
    const size_t len = static_cast<size_t>(n + 3) * c.hop;
    std::vector<float> a = poisoned(len), b = poisoned(len);
    p.gs->decode(g.at("decode.z").data(), n, key, a.data());
    p.cs->decode(g.at("decode.z").data(), n, key, b.data());
    EXPECT_LE(rel_l2(a, b), kTolF32) << "decode vs CPU backend";
    EXPECT_LE(rel_l2(a, g.at("decode.audio")), kTolF32) << "decode vs golden";
    std::vector<float> S = poisoned(static_cast<size_t>(n) * c.filter_size());
    p.gs->decoder_mlp(g.at("decode.z").data(), n, S.data());
    EXPECT_LE(rel_l2(S, g.at("decode.spectrum")), kTolF32) << "spectrum vs golden";
    if (!model->has_latent || !g.has("sample.e")) continue;
    // sample: the sequence VAE on the CPU, the grains on the CUDA backend.
    const int class_index = std::stoi(g.meta("golden.class_index"));
    cpu::LatentModel latent(model->latent);
    const int n_s = model->latent.cfg.n_grains;
    std::vector<float> z = poisoned(static_cast<size_t>(n_s) * c.z_dim);
    std::vector<float> scratch(latent.scratch_floats(n_s));
    latent.decode(g.at("sample.e").data(), class_index, n_s, z.data(), scratch.data());
    Pair ps(model->waveform, n_s);
    const size_t len_s = static_cast<size_t>(n_s + 3) * c.hop;
    std::vector<float> sa = poisoned(len_s), sb = poisoned(len_s);
    ps.gs->decode(z.data(), n_s, key, sa.data());
    ps.cs->decode(z.data(), n_s, key, sb.data());
    EXPECT_LE(rel_l2(sa, sb), kTolF32) << "sample vs CPU backend";
    EXPECT_LE(rel_l2(sa, g.at("sample.audio")), kTolF32) << "sample vs golden";
  }
}

// The whole model through one interface (backend.h): encoder, sequence VAE and sample on
// the CPU and CUDA backends (the encoder and the sequence VAE run on the device, within
// 1e-5 of the CPU and the goldens), against the goldens; 2 threads.
TEST(CudaBackend, WholeModelSessionMatchesCpuAndGolden) {
  NGS_REQUIRE_CUDA_DEVICE();
  const std::vector<std::string> configs = test::fixture_configs();
  if (configs.empty())
    GTEST_SKIP() << "skipped: no golden fixtures under " << test::fixtures_dir()
                 << " (python3 -m weights_converter.make_fixtures --out <build>/fixtures)";
  int with_latent = 0;
  for (const std::string &name : configs) {
    SCOPED_TRACE(name);
    const auto model = load_model_file(test::fixture_path(name, "model.safetensors"));
    const test::Golden g = test::load_golden(test::fixture_path(name, "golden.safetensors"));
    const uint64_t seed = std::stoull(g.meta("golden.seed"));
    const WaveformConfig &c = model->waveform.cfg;
    const LatentWeights *lw = model->has_latent ? &model->latent : nullptr;
    auto cpu_b = cpu::make_cpu_backend(model->waveform, lw);
    auto gpu_b = cuda::make_backend(model->waveform, 0, {}, lw);
    EXPECT_EQ(cpu_b->has_latent(), model->has_latent);
    EXPECT_EQ(gpu_b->has_latent(), model->has_latent);
    const int n = g.dim("encode.mu", 0), zd = c.z_dim;
    const int max_grains = std::max(n, c.n_grains);
    auto cs = cpu_b->create_session(max_grains, 2);
    auto gs = gpu_b->create_session(max_grains, 2);
    std::vector<float> mu = poisoned(static_cast<size_t>(n) * zd), lv = mu, mu2 = mu, lv2 = mu;
    cs->encoder(g.at("encode.audio").data(), n, mu.data(), lv.data());
    gs->encoder(g.at("encode.audio").data(), n, mu2.data(), lv2.data());
    EXPECT_LE(rel_l2(mu, g.at("encode.mu")), kTolF32) << "mu";
    EXPECT_LE(rel_l2(lv, g.at("encode.logvar")), kTolF32) << "logvar";
    EXPECT_LE(rel_l2(mu2, mu), kTolF32) << "CUDA mu vs CPU";  // the device encoder
    EXPECT_LE(rel_l2(lv2, lv), kTolF32) << "CUDA logvar vs CPU";
    EXPECT_LE(rel_l2(mu2, g.at("encode.mu")), kTolF32) << "CUDA mu vs golden";
    EXPECT_LE(rel_l2(lv2, g.at("encode.logvar")), kTolF32) << "CUDA logvar vs golden";
    std::vector<float> e(8);
    if (!model->has_latent) {
      std::vector<float> z(static_cast<size_t>(c.n_grains) * zd);
      EXPECT_THROW(cs->latent_decode(e.data(), -1, c.n_grains, z.data()), Error);
      EXPECT_THROW(gs->latent_decode(e.data(), -1, c.n_grains, z.data()), Error);
      continue;
    }
    ++with_latent;
    const int cls = std::stoi(g.meta("golden.class_index"));
    const int nl = g.dim("latent.z", 0), ed = g.dim("latent.e", 0);
    std::vector<float> z = poisoned(static_cast<size_t>(nl) * zd), z2 = z;
    cs->latent_decode(g.at("latent.e").data(), cls, nl, z.data());
    gs->latent_decode(g.at("latent.e").data(), cls, nl, z2.data());
    EXPECT_LE(rel_l2(z, g.at("latent.z")), kTolF32) << "latent.z";
    EXPECT_LE(rel_l2(z2, z), kTolF32) << "latent_decode vs CPU backend";
    std::vector<float> em = poisoned(ed), el = poisoned(ed), em2 = em, el2 = el;
    cs->latent_encode(g.at("latent.z").data(), nl, em.data(), el.data());
    gs->latent_encode(g.at("latent.z").data(), nl, em2.data(), el2.data());
    EXPECT_LE(rel_l2(em, g.at("latent.e_mu")), kTolF32) << "e_mu";
    EXPECT_LE(rel_l2(el, g.at("latent.e_logvar")), kTolF32) << "e_logvar";
    EXPECT_LE(rel_l2(em2, em), kTolF32) << "e_mu vs CPU backend";
    EXPECT_LE(rel_l2(el2, el), kTolF32) << "e_logvar vs CPU backend";
    if (!g.has("sample.e")) continue;
    const int n_s = model->latent.cfg.n_grains;
    const size_t len_s = static_cast<size_t>(n_s + 3) * c.hop;
    std::vector<float> sa = poisoned(len_s), sb = poisoned(len_s);
    gs->sample(g.at("sample.e").data(), cls, n_s, NoiseKey{seed, 0}, sa.data());
    cs->sample(g.at("sample.e").data(), cls, n_s, NoiseKey{seed, 0}, sb.data());
    EXPECT_LE(rel_l2(sa, sb), kTolF32) << "sample vs CPU backend";
    EXPECT_LE(rel_l2(sa, g.at("sample.audio")), kTolF32) << "sample vs golden";
    EXPECT_LE(rel_l2(sb, g.at("sample.audio")), kTolF32) << "CPU sample vs golden";
  }
  EXPECT_GT(with_latent, 0) << "no fixture config has a latent model";
}
