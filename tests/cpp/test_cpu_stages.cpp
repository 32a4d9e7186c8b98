// CPU backend stages against the golden fixtures of every fixture config
// (weights_converter/make_fixtures.py, docs/MODEL_FORMAT.md "Golden fixtures"), on every
// ISA path this machine supports; fp32 relative L2 <= 1e-5 per stage.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "ngs/ngs.h"
#include "common/philox.h"
#include "cpu/cpu.h"
#include "cpu/ops.h"
#include "test_isa.h"
#include "model_file.h"
#include "test_util.h"

using namespace ngs;
using namespace ngs::cpu;
using ngs::test::IsaGuard;
using ngs::test::supported_isas;
using ngs::test::kTolF32;
using ngs::test::poisoned;
using ngs::test::rel_l2;

namespace {

struct Fixture {
  std::string name;
  std::unique_ptr<ModelFile> model;
  test::Golden golden;
  uint64_t seed = 0;
};

std::vector<Fixture> load_all() {
  std::vector<Fixture> out;
  for (const std::string &c : test::fixture_configs()) {
    Fixture f;
    f.name = c;
    f.model = load_model_file(test::fixture_path(c, "model.safetensors"));
    f.golden = test::load_golden(test::fixture_path(c, "golden.safetensors"));
    f.seed = std::stoull(f.golden.meta("golden.seed"));
    out.push_back(std::move(f));
  }
  return out;
}

const std::vector<Fixture> &fixtures() {
  static const std::vector<Fixture> f = load_all();
  return f;
}

}  // namespace

TEST(CpuStages, FixturesPresent) {
  ASSERT_FALSE(fixtures().empty())
      << "no golden fixtures under " << test::fixtures_dir()
      << " (python3 -m weights_converter.make_fixtures --out <build>/fixtures)";
}

TEST(CpuStages, DecodeStagesMatchGolden) {
  IsaGuard guard;
  for (const Fixture &f : fixtures()) {
    const WaveformConfig &c = f.model->waveform.cfg;
    const test::Golden &g = f.golden;
    const int n = g.dim("decode.z", 0), F = c.filter_size(), l = c.l_grain;
    const size_t len = static_cast<size_t>(n + 3) * c.hop;
    // Noise (bit exact, independent of the ISA).
    std::vector<float> noise = poisoned(static_cast<size_t>(n) * l);
    for (int i = 0; i < n; ++i) noise_filter_noise(f.seed, 0, i, l, noise.data() + static_cast<size_t>(i) * l);
    EXPECT_EQ(noise, g.at("decode.noise")) << f.name;
    for (Isa isa : supported_isas()) {
      isa_set(isa);
      SCOPED_TRACE(f.name + " " + isa_name(isa));
      auto backend = make_cpu_backend(f.model->waveform);
      auto s = backend->create_session(n, 1);
      std::vector<float> S = poisoned(static_cast<size_t>(n) * F);
      s->decoder_mlp(g.at("decode.z").data(), n, S.data());
      EXPECT_LE(rel_l2(S, g.at("decode.spectrum")), kTolF32) << "spectrum";
      std::vector<float> y = poisoned(static_cast<size_t>(n) * l);
      s->noise_filter(g.at("decode.spectrum").data(), n, 0, n, NoiseKey{f.seed, 0}, y.data());
      EXPECT_LE(rel_l2(y, g.at("decode.grains")), kTolF32) << "grains";
      std::vector<float> a = poisoned(len);
      s->overlap_add(g.at("decode.grains").data(), n, a.data(), true);
      EXPECT_LE(rel_l2(a, g.at("decode.ola")), kTolF32) << "ola";
      a = poisoned(len);
      s->overlap_add(g.at("decode.grains").data(), n, a.data(), false);
      EXPECT_LE(rel_l2(a, g.at("decode.audio")), kTolF32) << "audio from golden grains";
      a = poisoned(len);
      s->decode(g.at("decode.z").data(), n, NoiseKey{f.seed, 0}, a.data());
      EXPECT_LE(rel_l2(a, g.at("decode.audio")), kTolF32) << "whole decode";
      // Grains in two chunks with absolute indices equal the grains in one call.
      if (n >= 2) {
        const int h = n / 2;
        std::vector<float> y2 = poisoned(static_cast<size_t>(n) * l);
        s->noise_filter(g.at("decode.spectrum").data(), h, 0, n, NoiseKey{f.seed, 0}, y2.data());
        s->noise_filter(g.at("decode.spectrum").data() + static_cast<size_t>(h) * F, n - h, h, n,
                  NoiseKey{f.seed, 0}, y2.data() + static_cast<size_t>(h) * l);
        EXPECT_EQ(y2, y) << "chunked grains";
      }
    }
  }
}

TEST(CpuStages, EncoderMatchesGolden) {
  IsaGuard guard;
  for (const Fixture &f : fixtures()) {
    const test::Golden &g = f.golden;
    const int n = g.dim("encode.mu", 0), zd = g.dim("encode.mu", 1);
    for (Isa isa : supported_isas()) {
      isa_set(isa);
      SCOPED_TRACE(f.name + " " + isa_name(isa));
      WaveformEncoder enc(f.model->waveform);
      std::vector<float> scratch = poisoned(enc.scratch_floats(n));
      std::vector<float> mu = poisoned(static_cast<size_t>(n) * zd), lv = mu;
      enc.encode(g.at("encode.audio").data(), n, mu.data(), lv.data(), scratch.data());
      EXPECT_LE(rel_l2(mu, g.at("encode.mu")), kTolF32) << "mu";
      EXPECT_LE(rel_l2(lv, g.at("encode.logvar")), kTolF32) << "logvar";
    }
  }
}

TEST(CpuStages, LatentModelMatchesGolden) {
  IsaGuard guard;
  int with_latent = 0;
  for (const Fixture &f : fixtures()) {
    if (!f.model->has_latent) continue;
    ++with_latent;
    const test::Golden &g = f.golden;
    const int n = g.dim("latent.z", 0), zd = g.dim("latent.z", 1), ed = g.dim("latent.e", 0);
    const int cls = std::stoi(g.meta("golden.class_index"));
    for (Isa isa : supported_isas()) {
      isa_set(isa);
      SCOPED_TRACE(f.name + " " + isa_name(isa));
      LatentModel lm(f.model->latent);
      std::vector<float> scratch = poisoned(lm.scratch_floats(n));
      std::vector<float> z = poisoned(static_cast<size_t>(n) * zd);
      lm.decode(g.at("latent.e").data(), cls, n, z.data(), scratch.data());
      EXPECT_LE(rel_l2(z, g.at("latent.z")), kTolF32) << "latent.z";
      std::vector<float> mu = poisoned(ed), lv = poisoned(ed);
      lm.encode(g.at("latent.z").data(), n, mu.data(), lv.data(), scratch.data());
      EXPECT_LE(rel_l2(mu, g.at("latent.e_mu")), kTolF32) << "e_mu";
      EXPECT_LE(rel_l2(lv, g.at("latent.e_logvar")), kTolF32) << "e_logvar";
    }
  }
  if (!fixtures().empty()) EXPECT_GT(with_latent, 0) << "no fixture config has a latent model";
}

// The threaded sessions, encoder and sequence VAE are tested in test_cpu_threads.cpp (ctest
// label "threads", also run under ThreadSanitizer).

TEST(CpuStages, SessionRejectsTooManyGrains) {
  for (const Fixture &f : fixtures()) {
    auto backend = make_cpu_backend(f.model->waveform);
    auto s = backend->create_session(4, 2);
    const int zd = f.model->waveform.cfg.z_dim;
    std::vector<float> z(5 * static_cast<size_t>(zd), 0.1f), out(1 << 20);
    try {
      s->decode(z.data(), 5, NoiseKey{1, 0}, out.data());
      ADD_FAILURE() << "no error for 5 grains in a session of 4";
    } catch (const Error &e) {
      EXPECT_EQ(e.status(), NGS_STATUS_CAPACITY);
      EXPECT_NE(std::string(e.what()).find("5 grains"), std::string::npos) << e.what();
    }
    EXPECT_THROW(backend->create_session(0, 1), Error);
    EXPECT_THROW(backend->create_session(4, 0), Error);
  }
}

// A model whose reflection padding exceeds the activation length (PyTorch refuses it
// too) is refused with a message instead of reading outside the activations.
TEST(CpuStages, EncoderRejectsPaddingLongerThanInput) {
  WaveformWeights w;
  WaveformConfig &c = w.cfg;
  c.l_grain = 64; c.hop = 16; c.n_grains = 3; c.z_dim = 4; c.h_dim = 8; c.channels = 4;
  c.kernel_size = 9; c.n_convs = 3; c.stride = 4; c.n_linears = 1; c.pp_chans = 1; c.pp_ker = 3;
  std::vector<float> big(4096, 0.01f);
  const int C = c.channels;
  for (int i = 0; i < c.n_convs; ++i) {
    EncoderStage st;
    st.down = Conv1d{big.data(), big.data(), C, i == 0 ? 1 : C, 9, 4, 1, 4};
    for (int j = 0; j < 3; ++j) {
      const int d = j == 0 ? 1 : j == 1 ? 3 : 9;
      st.res[j].dil = Conv1d{big.data(), big.data(), C, C, 3, 1, d, d};
      st.res[j].pw = Linear{big.data(), nullptr, C, C};
      st.res[j].sc = Linear{big.data(), nullptr, C, C};
      st.res[j].bias = big.data();
    }
    w.enc.push_back(st);
  }
  w.enc_lin[0] = Linear{big.data(), big.data(), c.h_dim, c.flatten_size()};
  w.enc_lin[1] = Linear{big.data(), big.data(), c.z_dim, c.h_dim};
  w.mu = w.logvar = Linear{big.data(), big.data(), c.z_dim, c.z_dim};
  try {
    WaveformEncoder enc(w);
    ADD_FAILURE() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), NGS_STATUS_BAD_MODEL);
    EXPECT_NE(std::string(e.what()).find("stage 1 dilated conv"), std::string::npos) << e.what();
  }
}
