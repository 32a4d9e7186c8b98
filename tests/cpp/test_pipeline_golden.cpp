// Every pipeline of the C API against the golden fixtures of every configuration
// (weights_converter/make_fixtures.py; "odd" has no width that is a multiple of 4, 8 or 16,
// so every SIMD tail runs), for the fp32 file (relative L2 <= 1e-5: the semantic check)
// and the fp16 file (the converter's bound, 5e-3: a coarse check of the fp16 path only).
// Output buffers are NaN-poisoned before each call and carry a sentinel tail that must
// stay untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ngs/ngs.h"
#include "test_util.h"

namespace {

using ngs::test::Golden;
using ngs::test::rel_l2;

const char *const kConfigs[] = {"gru16k", "lstm22k", "noola", "odd"};
constexpr float kSentinel = 12345.0f;

struct Param {
  std::string config;
  bool fp16;
};

void PrintTo(const Param &p, std::ostream *os) { *os << p.config << (p.fp16 ? " fp16" : " fp32"); }

std::string param_name(const testing::TestParamInfo<Param> &i) {
  return i.param.config + (i.param.fp16 ? "_fp16" : "_fp32");
}

std::vector<Param> all_params() {
  std::vector<Param> v;
  for (const char *c : kConfigs) {
    v.push_back({c, false});
    v.push_back({c, true});
  }
  return v;
}

class Golden_ : public testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    const Param &p = GetParam();
    const std::string gpath = ngs::test::fixture_path(p.config, "golden.safetensors");
    ASSERT_TRUE(ngs::test::file_exists(gpath))
        << gpath << " is missing: run python3 -m weights_converter.make_fixtures --out "
        << ngs::test::fixtures_dir();
    g_ = ngs::test::load_golden(gpath);
    const std::string mpath =
        ngs::test::fixture_path(p.config, p.fp16 ? "model_fp16.safetensors" : "model.safetensors");
    ngs_model_params mp = ngs_model_default_params();
    mp.backend = NGS_BACKEND_CPU;
    ASSERT_EQ(ngs_model_init_from_file(mpath.c_str(), mp, &model_), NGS_STATUS_OK) << ngs_last_error();
    ASSERT_EQ(ngs_model_get_info(model_, &info_), NGS_STATUS_OK);
    ASSERT_EQ(ngs_context_init(model_, ngs_context_default_params(), &ctx_), NGS_STATUS_OK)
        << ngs_last_error();
    tol_ = p.fp16 ? ngs::test::tol_f16() : ngs::test::kTolF32;
    seed_ = std::stoull(g_.meta("golden.seed"));
    class_ = std::stoi(g_.meta("golden.class_index"));
    temperature_ = std::stof(g_.meta("golden.temperature"));
  }
  void TearDown() override {
    ngs_context_free(ctx_);
    ngs_model_free(model_);
  }

  // n poisoned floats followed by 16 sentinels.
  static std::vector<float> out_buffer(size_t n) {
    std::vector<float> v = ngs::test::poisoned(n + 16);
    std::fill(v.begin() + static_cast<std::ptrdiff_t>(n), v.end(), kSentinel);
    return v;
  }
  // Checks the sentinel tail and returns the first n values.
  static std::vector<float> body(const std::vector<float> &v, size_t n) {
    for (size_t i = n; i < v.size(); ++i) EXPECT_EQ(v[i], kSentinel) << "wrote past the end at " << i;
    EXPECT_EQ(ngs::test::count_nonfinite(v.data(), n), 0u) << "elements left unwritten (NaN)";
    return std::vector<float>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
  }
  void expect_close(const std::vector<float> &got, const std::string &name, double tol = -1) {
    const double t = tol < 0 ? tol_ : tol;
    const double err = rel_l2(got, g_.at(name));
    EXPECT_LE(err, t) << name << " (" << GetParam().config << (GetParam().fp16 ? " fp16" : " fp32")
                      << "): relative L2 " << err;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3e", err);
    RecordProperty(name, buf);
  }

  Golden g_;
  ngs_model *model_ = nullptr;
  ngs_context *ctx_ = nullptr;
  ngs_model_info info_{};
  double tol_ = 0;
  uint64_t seed_ = 0;
  int class_ = -1;
  float temperature_ = 1;
};

TEST_P(Golden_, ModelInfo) {
  EXPECT_EQ(info_.n_grains, g_.dim("decode.z", 0));
  EXPECT_EQ(info_.z_dim, g_.dim("decode.z", 1));
  EXPECT_EQ(info_.grain_length, g_.dim("decode.grains", 1));
  EXPECT_EQ(info_.hop_size * 4, info_.grain_length);
  EXPECT_EQ(info_.filter_size, info_.grain_length / 2 + 1);
  EXPECT_EQ(info_.sample_length, g_.at("decode.audio").size());
  EXPECT_EQ(info_.has_latent_model, 1);
  EXPECT_EQ(info_.e_dim, g_.dim("latent.e", 0));
  EXPECT_EQ(info_.weight_bits, GetParam().fp16 ? 16 : 32);
  EXPECT_EQ(info_.backend, NGS_BACKEND_CPU);
  EXPECT_EQ(ngs_model_audio_length(model_, 5), static_cast<size_t>(8 * info_.hop_size));
  for (int i = 0; i < info_.n_classes; ++i) {
    const char *name = ngs_model_class_name(model_, i);
    ASSERT_NE(name, nullptr);
    EXPECT_EQ(ngs_model_find_class(model_, name), i);
  }
  EXPECT_EQ(ngs_model_class_name(model_, info_.n_classes), nullptr);
  EXPECT_NE(ngs_model_metadata(model_, "ngs.config"), nullptr);
  EXPECT_EQ(ngs_model_metadata(model_, "no.such.key"), nullptr);
}

TEST_P(Golden_, Decode) {
  const auto &z = g_.at("decode.z");
  const int n = g_.dim("decode.z", 0);
  const size_t len = ngs_model_audio_length(model_, n);
  auto out = out_buffer(len);
  ngs_decode_params dp = ngs_decode_default_params();
  dp.seed = seed_;
  ASSERT_EQ(ngs_decode(ctx_, z.data(), n, dp, out.data(), len), NGS_STATUS_OK) << ngs_last_error();
  expect_close(body(out, len), "decode.audio");
}

TEST_P(Golden_, DecodeSameSeedIdenticalOtherSeedDifferent) {
  const auto &z = g_.at("decode.z");
  const int n = g_.dim("decode.z", 0);
  const size_t len = ngs_model_audio_length(model_, n);
  auto a = out_buffer(len), b = out_buffer(len), c = out_buffer(len);
  ngs_decode_params dp = ngs_decode_default_params();
  dp.seed = seed_;
  ASSERT_EQ(ngs_decode(ctx_, z.data(), n, dp, a.data(), len), NGS_STATUS_OK);
  ASSERT_EQ(ngs_decode(ctx_, z.data(), n, dp, b.data(), len), NGS_STATUS_OK);
  dp.seed = seed_ + 1;
  ASSERT_EQ(ngs_decode(ctx_, z.data(), n, dp, c.data(), len), NGS_STATUS_OK);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), len * sizeof(float)), 0);
  EXPECT_GT(rel_l2(body(c, len), body(a, len)), 1e-2);
  dp.seed = seed_;
  dp.sequence = 1;
  ASSERT_EQ(ngs_decode(ctx_, z.data(), n, dp, c.data(), len), NGS_STATUS_OK);
  EXPECT_GT(rel_l2(body(c, len), body(a, len)), 1e-2);
}

TEST_P(Golden_, Encode) {
  const auto &audio = g_.at("encode.audio");
  const int n = g_.dim("encode.mu", 0);
  const size_t zn = static_cast<size_t>(n) * info_.z_dim;
  auto mu = out_buffer(zn), lv = out_buffer(zn), z = out_buffer(zn);
  int n_out = -1;
  ngs_encode_params ep = ngs_encode_default_params();
  ep.seed = seed_;
  ASSERT_EQ(ngs_encode(ctx_, audio.data(), audio.size(), ep, mu.data(), lv.data(), z.data(), n, &n_out),
            NGS_STATUS_OK)
      << ngs_last_error();
  EXPECT_EQ(n_out, n);
  expect_close(body(mu, zn), "encode.mu");
  expect_close(body(lv, zn), "encode.logvar");
  expect_close(body(z, zn), "encode.z");
  // Only z requested: same z (mu/logvar kept in the context).
  auto z2 = out_buffer(zn);
  ASSERT_EQ(ngs_encode(ctx_, audio.data(), audio.size(), ep, nullptr, nullptr, z2.data(), n, nullptr),
            NGS_STATUS_OK);
  EXPECT_EQ(std::memcmp(z.data(), z2.data(), zn * sizeof(float)), 0);
  // Another seed: mu unchanged, z different.
  ep.seed = seed_ + 7;
  ASSERT_EQ(ngs_encode(ctx_, audio.data(), audio.size(), ep, nullptr, nullptr, z2.data(), n, nullptr),
            NGS_STATUS_OK);
  EXPECT_GT(rel_l2(body(z2, zn), body(z, zn)), 1e-3);
}

TEST_P(Golden_, LatentDecodeEncode) {
  const auto &e = g_.at("latent.e");
  const int n = g_.dim("latent.z", 0);
  const size_t zn = static_cast<size_t>(n) * info_.z_dim;
  auto z = out_buffer(zn);
  ASSERT_EQ(ngs_latent_decode(ctx_, e.data(), class_, n, z.data()), NGS_STATUS_OK) << ngs_last_error();
  expect_close(body(z, zn), "latent.z");
  const size_t ed = static_cast<size_t>(info_.e_dim);
  auto mu = out_buffer(ed), lv = out_buffer(ed);
  const auto &zin = g_.at("latent.z");
  ASSERT_EQ(ngs_latent_encode(ctx_, zin.data(), n, mu.data(), lv.data()), NGS_STATUS_OK)
      << ngs_last_error();
  expect_close(body(mu, ed), "latent.e_mu");
  expect_close(body(lv, ed), "latent.e_logvar");
}

TEST_P(Golden_, EmbeddingSample) {
  const size_t ed = static_cast<size_t>(info_.e_dim);
  auto e = out_buffer(ed);
  ASSERT_EQ(ngs_embedding_sample(model_, temperature_, seed_, 0, e.data()), NGS_STATUS_OK);
  expect_close(body(e, ed), "sample.e", ngs::test::kTolF32);
}

TEST_P(Golden_, Sample) {
  const size_t len = info_.sample_length;
  ngs_sample_params sp = ngs_sample_default_params();
  sp.class_index = class_;
  sp.temperature = temperature_;
  sp.seed = seed_;
  auto one = out_buffer(len);
  ASSERT_EQ(ngs_sample(ctx_, sp, one.data(), len), NGS_STATUS_OK) << ngs_last_error();
  expect_close(body(one, len), "sample.audio");
  // count = 3: sound 0 is the same one-shot; sounds 1, 2 differ from it.
  sp.count = 3;
  auto three = out_buffer(3 * len);
  ASSERT_EQ(ngs_sample(ctx_, sp, three.data(), 3 * len), NGS_STATUS_OK) << ngs_last_error();
  const auto b = body(three, 3 * len);
  EXPECT_EQ(std::memcmp(b.data(), one.data(), len * sizeof(float)), 0);
  const std::vector<float> s0(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len));
  const std::vector<float> s1(b.begin() + static_cast<std::ptrdiff_t>(len), b.begin() + static_cast<std::ptrdiff_t>(2 * len));
  EXPECT_GT(rel_l2(s1, s0), 1e-2);
  // Other seed: different.
  sp.count = 1;
  sp.seed = seed_ + 1;
  auto other = out_buffer(len);
  ASSERT_EQ(ngs_sample(ctx_, sp, other.data(), len), NGS_STATUS_OK);
  EXPECT_GT(rel_l2(body(other, len), s0), 1e-2);
}

TEST_P(Golden_, Interpolation) {
  const auto j = nlohmann::json::parse(g_.meta("golden.interp_params"));
  ngs_sample_params sp = ngs_sample_default_params();
  sp.class_index = j["class_index"].get<int>();
  sp.temperature = j["temperature"].get<float>();
  sp.seed = j["seed"].get<uint64_t>();
  const int steps = j["steps"].get<int>();
  const size_t len = info_.sample_length * static_cast<size_t>(steps);
  auto out = out_buffer(len);
  ASSERT_EQ(ngs_sample_interpolation(ctx_, sp, steps, out.data(), len), NGS_STATUS_OK) << ngs_last_error();
  expect_close(body(out, len), "interp.audio");
}

TEST_P(Golden_, Paths) {
  const auto j = nlohmann::json::parse(g_.meta("golden.path_params"));
  const int n = j["n"].get<int>();
  const char *kinds[] = {"line", "circle", "spiral", "random", "back_and_forth"};
  for (const char *kind : kinds) {
    ngs_path_params pp = ngs_path_default_params();
    pp.kind = static_cast<ngs_path_kind>(ngs_path_kind_from_name(kind));
    pp.seed = j["seed"].get<uint64_t>();
    pp.sequence = j["sequence"].get<uint32_t>();
    pp.temperature = j["temperature"].get<float>();
    pp.turns = j["turns"].get<float>();
    pp.points = j["points"].get<int>();
    pp.legs = j["legs"].get<int>();
    pp.gamma = j["gamma"].get<float>();
    const size_t zn = static_cast<size_t>(n) * info_.z_dim;
    auto z = out_buffer(zn);
    ASSERT_EQ(ngs_path_generate(model_, pp, n, z.data()), NGS_STATUS_OK) << ngs_last_error();
    expect_close(body(z, zn), std::string("path.") + kind, ngs::test::kTolF32);
  }
}

TEST_P(Golden_, FreeSynthesisAtNonTrainingLength) {
  const auto &z = g_.at("free.z");
  const int n = g_.dim("free.z", 0);
  ASSERT_NE(n, info_.n_grains);
  const size_t len = ngs_model_audio_length(model_, n);
  auto out = out_buffer(len);
  ngs_decode_params dp = ngs_decode_default_params();
  dp.seed = seed_;
  ASSERT_EQ(ngs_decode(ctx_, z.data(), n, dp, out.data(), len), NGS_STATUS_OK) << ngs_last_error();
  expect_close(body(out, len), "free.audio");
}

TEST_P(Golden_, Preprocess) {
  std::vector<float> x = g_.at("preprocess.in");
  const int normalize = std::stoi(g_.meta("golden.preprocess_normalize"));
  ASSERT_EQ(ngs_preprocess(model_, x.data(), x.size(), normalize), NGS_STATUS_OK) << ngs_last_error();
  expect_close(x, "preprocess.out", ngs::test::kTolF32);
}

TEST_P(Golden_, Resynthesize) {
  const auto j = nlohmann::json::parse(g_.meta("golden.resynth_params"));
  ngs_resynth_params rp = ngs_resynth_default_params();
  rp.seed = j["seed"].get<uint64_t>();
  rp.segment_grains = j["segment_grains"].get<int>();
  rp.crossfade = j["crossfade"].get<int>();
  const auto &in = g_.at("resynth.in");
  auto out = out_buffer(in.size());
  ASSERT_EQ(ngs_resynthesize(ctx_, in.data(), in.size(), rp, out.data()), NGS_STATUS_OK) << ngs_last_error();
  expect_close(body(out, in.size()), "resynth.out");
}

// The progress callback: called once per segment (count from docs/PROCESSES.md) with
// strictly increasing fractions ending at exactly 1; the output is bit-identical to a call
// without it.
TEST_P(Golden_, ResynthesizeProgress) {
  const auto j = nlohmann::json::parse(g_.meta("golden.resynth_params"));
  ngs_resynth_params rp = ngs_resynth_default_params();
  rp.seed = j["seed"].get<uint64_t>();
  rp.segment_grains = j["segment_grains"].get<int>();
  rp.crossfade = j["crossfade"].get<int>();
  const int G = rp.segment_grains > 0 ? rp.segment_grains : info_.n_grains;
  const size_t seg = ngs_model_audio_length(model_, G);
  const size_t X = rp.crossfade > 0 ? static_cast<size_t>(rp.crossfade) : static_cast<size_t>(info_.hop_size);
  // Three and a half segments of fresh random audio, so that there is more than one call.
  const size_t n = seg + static_cast<size_t>(2.5 * static_cast<double>(seg - X));
  const size_t K = 1 + (n - seg + (seg - X) - 1) / (seg - X);
  ASSERT_GE(K, 3u);
  const auto in = ngs::test::random_uniform(n, 11, -0.5f, 0.5f);
  auto plain = out_buffer(n);
  ASSERT_EQ(ngs_resynthesize(ctx_, in.data(), n, rp, plain.data()), NGS_STATUS_OK) << ngs_last_error();
  struct Log {
    std::vector<float> fractions;
  } log;
  log.fractions.reserve(K + 1);
  rp.progress = [](float f, void *u) { static_cast<Log *>(u)->fractions.push_back(f); };
  rp.progress_user_data = &log;
  auto with = out_buffer(n);
  ASSERT_EQ(ngs_resynthesize(ctx_, in.data(), n, rp, with.data()), NGS_STATUS_OK) << ngs_last_error();
  ASSERT_EQ(log.fractions.size(), K);
  for (size_t k = 0; k < K; ++k) {
    EXPECT_GT(log.fractions[k], k ? log.fractions[k - 1] : 0.0f) << "call " << k;
    EXPECT_NEAR(log.fractions[k], static_cast<double>(k + 1) / static_cast<double>(K), 1e-6) << "call " << k;
  }
  EXPECT_EQ(log.fractions.back(), 1.0f);
  EXPECT_EQ(std::memcmp(plain.data(), with.data(), with.size() * sizeof(float)), 0)
      << "the callback changed the output";
  body(with, n);
  // A single-segment input reports once, with 1.
  log.fractions.clear();
  auto one = out_buffer(seg / 2);
  ASSERT_EQ(ngs_resynthesize(ctx_, in.data(), seg / 2, rp, one.data()), NGS_STATUS_OK) << ngs_last_error();
  ASSERT_EQ(log.fractions.size(), 1u);
  EXPECT_EQ(log.fractions[0], 1.0f);
}

TEST_P(Golden_, DrumLoop) {
  const auto j = nlohmann::json::parse(g_.meta("golden.loop_events"));
  std::vector<ngs_loop_event> ev;
  for (const auto &e : j["events"])
    ev.push_back({e["class_index"].get<int>(), e["onset"].get<float>(), e["amplitude"].get<float>()});
  ngs_loop_params lp = ngs_loop_default_params();
  lp.seed = j["seed"].get<uint64_t>();
  lp.temperature = j["temperature"].get<float>();
  const size_t L = j["loop_length"].get<size_t>();
  auto out = out_buffer(L);
  ASSERT_EQ(ngs_render_loop(ctx_, ev.data(), static_cast<int>(ev.size()), lp, out.data(), L), NGS_STATUS_OK)
      << ngs_last_error();
  const auto b = body(out, L);
  expect_close(b, "loop.audio");
  float peak = 0;
  for (float v : b) peak = std::max(peak, std::fabs(v));
  EXPECT_LE(peak, 0.95f + 1e-6f);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden_, testing::ValuesIn(all_params()), param_name);

}  // namespace
