// Device tests at engine sizes (issue 15, item 6; run by scripts/gpu_check.sh as
// device.CudaEngineSize.*): the bundled drum model (models/drums.safetensors: 16 kHz,
// l_grain 1024, z 64, decoder h 256, GRU h 256, 7 classes, fp16 weights in the file) end to
// end on the CUDA backend against the CPU backend: resynthesis (the device encoder, then
// decode of its mu) and sample at 41 grains (a one-shot) and at a long series, decode graph
// sizes 41 -> long -> 41 (the second 41 replays its graph), the fp16-weight copy of the
// decoder MLP, and two models in one process used in turn. The long series is 328 grains
// (8 one-shots, 5.3 s) on a device and 83 in the emulation, which keeps test_cuda_emu fast
// (the same code paths: both cross a bucket boundary from 41). fp32 bound 1e-5 relative L2;
// fresh random inputs (the seed is printed on failure), outputs NaN-poisoned.
// NGS_MODEL_DIR overrides the directory of drums.safetensors (the gpu_check package).
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cpu/cpu.h"
#include "cuda_backend.cuh"
#include "model_file.h"
#include "test_cuda_util.h"

using namespace ngs;
using ngs::test::kTolF32;
using ngs::test::poisoned;
using ngs::test::rel_l2;

namespace {

#ifdef NGS_CUDA_EMULATION
constexpr int kLong = 83;
#else
constexpr int kLong = 328;
#endif

std::string drum_model_path() {
  if (const char *d = std::getenv("NGS_MODEL_DIR"); d != nullptr && *d)
    return std::string(d) + "/drums.safetensors";
  return std::string(NGS_SOURCE_DIR) + "/models/drums.safetensors";
}

// The drum model, or a skip naming the missing file (a failure under gpu_check.sh).
#define NGS_LOAD_DRUM_MODEL(var)                                                      \
  const std::string var##_path = drum_model_path();                                   \
  if (!test::file_exists(var##_path)) GTEST_SKIP() << "skipped: no " << var##_path;   \
  const auto var = load_model_file(var##_path)

struct Pair {
  std::unique_ptr<Backend> cpu, gpu;
  std::unique_ptr<Session> cs, gs;
  Pair(const ModelFile &m, int max_grains, cuda::BackendOptions opt = {}) {
    const LatentWeights *lat = m.has_latent ? &m.latent : nullptr;
    cpu = cpu::make_cpu_backend(m.waveform, lat);
    gpu = cuda::make_backend(m.waveform, 0, opt, lat);
    cs = cpu->create_session(max_grains, 1);
    gs = gpu->create_session(max_grains, 1);
  }
};

// decode of n random latents on both sessions: the relative L2 distance.
double decode_distance(Pair &p, const WaveformConfig &c, int n, uint32_t seed) {
  const std::vector<float> z = test::random_normal(static_cast<size_t>(n) * c.z_dim, seed);
  const NoiseKey key{seed * 0x9E3779B97F4A7C15ull + 3, seed % 7};
  const size_t len = static_cast<size_t>(n + 3) * c.hop;
  std::vector<float> a = poisoned(len), b = poisoned(len);
  p.gs->decode(z.data(), n, key, a.data());
  p.cs->decode(z.data(), n, key, b.data());
  return rel_l2(a, b);
}

}  // namespace

// Resynthesis and sample of the drum model at 41 and kLong grains.
TEST(CudaEngineSize, DrumModelEndToEnd) {
  NGS_REQUIRE_CUDA_DEVICE();
  NGS_LOAD_DRUM_MODEL(m);
  ASSERT_TRUE(m->has_latent);
  const WaveformConfig &c = m->waveform.cfg;
  const LatentConfig &lc = m->latent.cfg;
  Pair p(*m, kLong);
  ASSERT_TRUE(cuda::encoder_on_host(*p.gpu).empty()) << cuda::encoder_on_host(*p.gpu);
  const uint32_t seed = test::fresh_seed();
  for (const int n : {41, kLong}) {
    SCOPED_TRACE("n " + std::to_string(n) + " seed " + std::to_string(seed));
    const size_t len = static_cast<size_t>(n + 3) * c.hop;
    const std::vector<float> audio = test::random_uniform(len, seed + n, -0.7f, 0.7f);
    std::vector<float> mu = poisoned(static_cast<size_t>(n) * c.z_dim), mu_ref = mu;
    std::vector<float> lv = mu, lv_ref = mu;
    p.gs->encoder(audio.data(), n, mu.data(), lv.data());
    p.cs->encoder(audio.data(), n, mu_ref.data(), lv_ref.data());
    EXPECT_LE(rel_l2(mu, mu_ref), kTolF32) << "encoder mu";
    EXPECT_LE(rel_l2(lv, lv_ref), kTolF32) << "encoder logvar";
    const NoiseKey key{seed + 11ull * n, 2u};
    std::vector<float> out = poisoned(len), out_ref = out;
    p.gs->decode(mu_ref.data(), n, key, out.data());
    p.cs->decode(mu_ref.data(), n, key, out_ref.data());
    EXPECT_LE(rel_l2(out, out_ref), kTolF32) << "resynthesis decode";
    const std::vector<float> e = test::random_normal(lc.e_dim, seed + 3 * n);
    const int cls = static_cast<int>((seed + n) % lc.n_conds);
    std::vector<float> s = poisoned(len), s_ref = s;
    p.gs->sample(e.data(), cls, n, key, s.data());
    p.cs->sample(e.data(), cls, n, key, s_ref.data());
    EXPECT_LE(rel_l2(s, s_ref), kTolF32) << "sample, class " << cls;
  }
}

// Graph sizes 41 -> kLong -> 41: each decode equals the CPU's; in the emulation the second
// 41 replays the graph of its bucket (two captures in all).
TEST(CudaEngineSize, GraphSizes41ToLongTo41) {
  NGS_REQUIRE_CUDA_DEVICE();
  NGS_LOAD_DRUM_MODEL(m);
  const WaveformConfig &c = m->waveform.cfg;
  Pair p(*m, kLong);
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
#ifdef NGS_CUDA_EMULATION
  const long before = ngs_emu::capture_count();
#endif
  uint32_t s = seed;
  for (const int n : {41, kLong, 41, kLong, 41})
    EXPECT_LE(decode_distance(p, c, n, ++s), kTolF32) << "n " << n;
#ifdef NGS_CUDA_EMULATION
  EXPECT_EQ(ngs_emu::capture_count() - before, 2);
#endif
}

// BackendOptions::fp16_weights on the drum model: its weights are fp16 in the file (the
// loader widens them), so the half copy is exact and the decode equals the CPU in fp32.
TEST(CudaEngineSize, Fp16WeightsOfTheDrumModel) {
  NGS_REQUIRE_CUDA_DEVICE();
  NGS_LOAD_DRUM_MODEL(m);
  const WaveformWeights &w = m->waveform;
  for (size_t l = 0; l <= w.dec_lin.size(); ++l) {
    const Linear &lin = l < w.dec_lin.size() ? w.dec_lin[l] : w.dec_out;
    const size_t count = static_cast<size_t>(lin.in) * lin.out;
    size_t inexact = 0;
    for (size_t i = 0; i < count; ++i)
      if (__half2float(__float2half(lin.w[i])) != lin.w[i]) ++inexact;
    ASSERT_EQ(inexact, 0u) << "decoder layer " << l << " is not fp16 in the model file";
  }
  cuda::BackendOptions opt;
  opt.fp16_weights = true;
  for (const cuda::MlpKernel k : {cuda::MlpKernel::kRows, cuda::MlpKernel::kTiled}) {
    opt.mlp_kernel = k;
    SCOPED_TRACE(k == cuda::MlpKernel::kRows ? "rows" : "tiled");
    Pair p(*m, kLong, opt);
    const uint32_t seed = test::fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    for (const int n : {41, kLong}) EXPECT_LE(decode_distance(p, w.cfg, n, seed + n), kTolF32) << "n " << n;
  }
}

// Two models in one process (the drum model and each golden fixture), used in turn: each
// keeps decoding right after the other was loaded and used.
TEST(CudaEngineSize, TwoModelsInOneProcess) {
  NGS_REQUIRE_CUDA_DEVICE();
  NGS_LOAD_DRUM_MODEL(drums);
  const std::vector<std::string> fixtures = test::fixture_configs();
  if (fixtures.empty()) GTEST_SKIP() << "skipped: no golden fixtures (NGS_FIXTURES_DIR)";
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Pair a(*drums, kLong);
  for (const std::string &name : fixtures) {
    SCOPED_TRACE(name);
    const auto other = load_model_file(test::fixture_path(name, "model.safetensors"));
    Pair b(*other, 41);
    uint32_t s = seed;
    for (int round = 0; round < 2; ++round) {
      EXPECT_LE(decode_distance(a, drums->waveform.cfg, round ? kLong : 41, ++s), kTolF32) << "drums";
      EXPECT_LE(decode_distance(b, other->waveform.cfg, 41 - 8 * round, ++s), kTolF32) << name;
    }
  }
}
