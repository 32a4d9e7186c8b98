// The grain encoder on the CUDA backend (kernels/cuda/encoder.cu) against the CPU backend's
// (kernels/cpu/encoder.cpp): random models at sizes that do not divide the tiles (20
// channels for tiles of 32, lengths 64/32/16 for tiles of 64 times, 21 grains for tiles
// of 8 and passes of 16), the drum-size encoder, resynthesis (encoder then decode) on the
// device, the CPU fallback for a conv the device tiles cannot hold, and bad requests.
// Fresh random inputs, outputs poisoned, relative L2 <= 1e-5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/cpu.h"
#include "cuda_backend.cuh"
#include "encoder.cuh"
#include "noise_filter.cuh"
#include "ngs/ngs.h"
#include "test_cuda_util.h"

using namespace ngs;
using ngs::test::DevArray;
using ngs::test::kTolF32;
using ngs::test::poisoned;
using ngs::test::rel_l2;

namespace {

// Random weights of a whole waveform model (encoder + decoder). Conv weights
// U(-1, 1) / sqrt(c_in k), linear weights U(-1, 1) / sqrt(in), biases U(-0.1, 0.1).
struct RandomModel {
  test::RandomDecoder dec;
  WaveformWeights &w = dec.w;
  uint32_t seed;
  int next = 1000;

  const float *uniform(size_t n, float scale) {
    dec.store.push_back(test::random_uniform(n, seed + next++, -scale, scale));
    return dec.store.back().data();
  }
  Conv1d conv(int in, int out, int k, int stride, int dilation, int pad) {
    Conv1d c;
    c.in = in;
    c.out = out;
    c.k = k;
    c.stride = stride;
    c.dilation = dilation;
    c.pad = pad;
    c.w = uniform(static_cast<size_t>(out) * in * k, 1.0f / std::sqrt(static_cast<float>(in * k)));
    c.b = uniform(out, 0.1f);
    return c;
  }
  Linear linear(int in, int out, bool bias = true) {
    Linear l;
    l.in = in;
    l.out = out;
    l.w = uniform(static_cast<size_t>(out) * in, 1.0f / std::sqrt(static_cast<float>(in)));
    l.b = bias ? uniform(out, 0.1f) : nullptr;
    return l;
  }

  RandomModel(int l_grain, int channels, int kernel, int stride, int n_convs, int h_dim,
              int z_dim, uint32_t seed_)
      : dec(z_dim, h_dim, 2, l_grain, 5, seed_), seed(seed_) {
    WaveformConfig &c = w.cfg;
    c.channels = channels;
    c.kernel_size = kernel;
    c.stride = stride;
    c.n_convs = n_convs;
    for (int s = 0; s < n_convs; ++s) {
      EncoderStage st;
      st.down = conv(s == 0 ? 1 : channels, channels, kernel, stride, 1, kernel / 2);
      for (int j = 0; j < 3; ++j) {
        const int d = j == 0 ? 1 : (j == 1 ? 3 : 9);
        st.res[j].dil = conv(channels, channels, 3, 1, d, d);
        st.res[j].pw = linear(channels, channels, false);
        st.res[j].sc = linear(channels, channels, false);
        st.res[j].bias = uniform(channels, 0.1f);
      }
      w.enc.push_back(st);
    }
    w.enc_lin[0] = linear(c.flatten_size(), h_dim);
    w.enc_lin[1] = linear(h_dim, z_dim);
    w.mu = linear(z_dim, z_dim);
    w.logvar = linear(z_dim, z_dim);
  }
};

struct EncPair {
  std::unique_ptr<Backend> cpu, gpu;
  std::unique_ptr<Session> cs, gs;
  EncPair(const WaveformWeights &w, int max_grains, cuda::BackendOptions opt = {}) {
    cpu = cpu::make_cpu_backend(w);
    gpu = cuda::make_backend(w, 0, opt);
    cs = cpu->create_session(max_grains, 1);
    gs = gpu->create_session(max_grains, 1);
  }
};

// Encodes fresh random audio of n grains on both; expects mu and logvar within tolerance.
void expect_encoder_equal(EncPair &p, const WaveformConfig &c, int n, uint32_t seed) {
  SCOPED_TRACE("n " + std::to_string(n));
  const std::vector<float> audio =
      test::random_uniform(static_cast<size_t>(n + 3) * c.hop, seed, -0.9f, 0.9f);
  const size_t rows = static_cast<size_t>(n) * c.z_dim;
  std::vector<float> mu = poisoned(rows), lv = poisoned(rows), mu_ref = mu, lv_ref = lv;
  p.gs->encoder(audio.data(), n, mu.data(), lv.data());
  p.cs->encoder(audio.data(), n, mu_ref.data(), lv_ref.data());
  EXPECT_LE(rel_l2(mu, mu_ref), kTolF32) << "mu";
  EXPECT_LE(rel_l2(lv, lv_ref), kTolF32) << "logvar";
}

}  // namespace

TEST(CudaEncoder, MatchesCpuAtSizesThatDoNotDivideTheTiles) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  RandomModel m(128, 20, 7, 2, 3, 40, 12, seed);  // lengths 64, 32, 16; flatten 320
  cuda::BackendOptions opt;
  opt.encoder_chunk = 16;  // 21 grains: passes of 16 and 5
  EncPair p(m.w, 21, opt);
  EXPECT_EQ(cuda::encoder_on_host(*p.gpu), "");
  for (int n : {1, 3, 21}) expect_encoder_equal(p, m.w.cfg, n, seed + n);
  // Either output may be omitted.
  const int n = 5;
  const std::vector<float> audio = test::random_uniform((n + 3) * m.w.cfg.hop, seed + 99);
  std::vector<float> mu = poisoned(n * 12), mu_ref = poisoned(n * 12);
  p.gs->encoder(audio.data(), n, mu.data(), nullptr);
  p.cs->encoder(audio.data(), n, mu_ref.data(), nullptr);
  EXPECT_LE(rel_l2(mu, mu_ref), kTolF32);
}

TEST(CudaEncoder, OddChannelsStrideAndKernel) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  // 33 channels (two channel tiles, the second of 1), kernel 5, stride 4: 256 -> 64 -> 16;
  // 70 input channels of the fused 1x1 convs span two shared-memory steps.
  RandomModel m(256, 35, 5, 4, 2, 24, 9, seed);
  EncPair p(m.w, 11);
  for (int n : {2, 11}) expect_encoder_equal(p, m.w.cfg, n, seed + n);
}

TEST(CudaEncoder, DrumSizeMatchesCpu) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  RandomModel m(1024, 32, 9, 4, 3, 256, 64, seed);  // the bundled model's shape
  EncPair p(m.w, 6);
  expect_encoder_equal(p, m.w.cfg, 6, seed);
}

// Resynthesis on the device: encoder then decode of mu, against the CPU backend's.
TEST(CudaEncoder, ResynthesisMatchesCpu) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  RandomModel m(128, 16, 7, 2, 3, 32, 10, seed);
  const WaveformConfig &c = m.w.cfg;
  EncPair p(m.w, 9);
  const int n = 9;
  const std::vector<float> audio = test::random_uniform((n + 3) * c.hop, seed + 1, -0.8f, 0.8f);
  std::vector<float> mu = poisoned(n * c.z_dim), mu_ref = poisoned(n * c.z_dim);
  p.gs->encoder(audio.data(), n, mu.data(), nullptr);
  p.cs->encoder(audio.data(), n, mu_ref.data(), nullptr);
  const NoiseKey key{seed * 77ull + 5, 1u};
  std::vector<float> out = poisoned((n + 3) * c.hop), out_ref = out;
  p.gs->decode(mu.data(), n, key, out.data());
  p.cs->decode(mu_ref.data(), n, key, out_ref.data());
  EXPECT_LE(rel_l2(mu, mu_ref), kTolF32);
  EXPECT_LE(rel_l2(out, out_ref), kTolF32);
}

// A strided conv whose tile needs more than 48 KiB of shared memory (kernel 513, stride 64)
// runs on the CPU code instead, with the reason.
TEST(CudaEncoder, ConvTooLargeForTheTilesRunsOnTheHost) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  RandomModel m(1024, 8, 513, 64, 1, 16, 8, seed);  // 1024 -> 16
  EncPair p(m.w, 3);
  const std::string why = cuda::encoder_on_host(*p.gpu);
  EXPECT_NE(why.find("needs more than 48 KiB of shared memory"), std::string::npos) << why;
  const int n = 3;
  const std::vector<float> audio = test::random_uniform((n + 3) * m.w.cfg.hop, seed);
  std::vector<float> mu = poisoned(n * 8), lv = mu, mu_ref = mu, lv_ref = mu;
  p.gs->encoder(audio.data(), n, mu.data(), lv.data());
  p.cs->encoder(audio.data(), n, mu_ref.data(), lv_ref.data());
  EXPECT_EQ(mu, mu_ref);  // the same CPU code
  EXPECT_EQ(lv, lv_ref);
}

TEST(CudaEncoder, RejectsBadRequests) {
  NGS_REQUIRE_CUDA_DEVICE();
  RandomModel m(128, 8, 7, 2, 3, 16, 8, 5u);
  EncPair p(m.w, 4);
  std::vector<float> audio((5 + 3) * m.w.cfg.hop, 0.1f), mu(5 * 8), lv(5 * 8);
  try {
    p.gs->encoder(audio.data(), 5, mu.data(), lv.data());
    ADD_FAILURE() << "no error for 5 grains in a session of 4";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), NGS_STATUS_CAPACITY) << e.what();
  }
  try {
    p.gs->encoder(nullptr, 2, mu.data(), lv.data());
    ADD_FAILURE() << "no error for null audio";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), NGS_STATUS_INVALID_ARGUMENT) << e.what();
  }
  try {
    p.gs->encoder(audio.data(), 0, mu.data(), lv.data());
    ADD_FAILURE() << "no error for 0 grains";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), NGS_STATUS_INVALID_ARGUMENT) << e.what();
  }
  // The session still works afterwards.
  EXPECT_NO_THROW(p.gs->encoder(audio.data(), 4, mu.data(), lv.data()));
}

// encoder_grains_launch with a device count below the launch size (encode_grains' bucketed
// graphs, in chunks: the count is relative to the chunk's first grain): the live grains'
// mu equals the CPU's encode_grains rows, nothing is written past them (poisoned rows stay
// NaN), a chunk wholly past the count writes nothing.
TEST(CudaEncoder, DeviceCountLimitsTheGrainsComputed) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  RandomModel m(128, 16, 7, 2, 3, 32, 10, seed);
  const WaveformConfig &c = m.w.cfg;
  const int cap = 12, chunk = 8, l = c.l_grain, zd = c.z_dim;
  std::vector<float> tw(l), hann(l);
  cuda::noise_filter_tables(l, tw.data(), hann.data());
  DevArray<float> dhann(hann);
  cuda::EncoderWeights ew(m.w, dhann.get());
  auto cpu_b = cpu::make_cpu_backend(m.w);
  auto cs = cpu_b->create_session(cap, 1);
  const std::vector<float> win = test::random_uniform(static_cast<size_t>(cap) * l, seed + 1, -0.8f, 0.8f);
  std::vector<unsigned char> edge(cap), first(cap), last(cap);
  std::vector<const float *> src(cap);
  for (int g = 0; g < cap; ++g) {
    first[g] = (seed + g) % 3 == 0;
    last[g] = (seed + g) % 4 == 1;
    edge[g] = static_cast<unsigned char>((first[g] ? 1 : 0) | (last[g] ? 2 : 0));
    src[g] = win.data() + static_cast<size_t>(g) * l;
  }
  DevArray<float> dwin(win);
  DevArray<unsigned char> dedge(edge);
  DevArray<float> work(cuda::encoder_work_floats(ew.device(), chunk));
  for (const int live : {1, 5, 8, 11, 12}) {
    SCOPED_TRACE("live " + std::to_string(live));
    std::vector<float> ref = poisoned(static_cast<size_t>(live) * zd);
    cs->encode_grains(src.data(), first.data(), last.data(), live, ref.data());
    DevArray<int> dlive(std::vector<int>{live});
    DevArray<float> dmu(static_cast<size_t>(cap) * zd);
    for (int g0 = 0; g0 < cap; g0 += chunk)
      cuda::encoder_grains_launch(ew.device(), dwin.get() + static_cast<size_t>(g0) * l,
                                  dedge.get() + g0, std::min(chunk, cap - g0),
                                  dmu.get() + static_cast<size_t>(g0) * zd, work.get(), nullptr,
                                  dlive.get(), g0);
    const std::vector<float> mu = dmu.host();
    EXPECT_LE(rel_l2(mu.data(), ref.data(), ref.size()), kTolF32);
    for (size_t i = ref.size(); i < mu.size(); ++i)
      ASSERT_TRUE(std::isnan(mu[i])) << "grain " << i / zd << " past the count written";
  }
}
