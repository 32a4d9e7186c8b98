// Every error path of the C API on a valid model: NULL pointers, wrong sizes, NaN/Inf
// inputs, unknown classes, requests beyond the context's capacity, bad parameters. Each
// must return the documented status and set a one-line message; outputs stay untouched
// where the header promises it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "ngs/ngs.h"
#include "test_util.h"

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Runs a call, checks its status and that the message is set and mentions `substr`.
#define EXPECT_STATUS(call, want, substr)                                                  \
  do {                                                                                     \
    ngs_status s_ = (call);                                                                \
    EXPECT_EQ(s_, want) << #call << ": " << ngs_last_error();                              \
    const std::string m_ = ngs_last_error();                                               \
    EXPECT_NE(m_.find(substr), std::string::npos) << #call << ": message '" << m_          \
                                                  << "' lacks '" << (substr) << "'";       \
  } while (0)

class Errors : public testing::Test {
 protected:
  void open(const char *config) {
    const std::string path = ngs::test::fixture_path(config, "model.safetensors");
    ngs_model_params mp = ngs_model_default_params();
    mp.backend = NGS_BACKEND_CPU;
    ASSERT_EQ(ngs_model_init_from_file(path.c_str(), mp, &model_), NGS_STATUS_OK) << ngs_last_error();
    ASSERT_EQ(ngs_model_get_info(model_, &info_), NGS_STATUS_OK);
    ngs_context_params cp = ngs_context_default_params();
    cp.max_grains = 2 * info_.n_grains;
    ASSERT_EQ(ngs_context_init(model_, cp, &ctx_), NGS_STATUS_OK);
    n_ = info_.n_grains;
    zn_ = static_cast<size_t>(n_) * info_.z_dim;
    z_ = ngs::test::random_normal(zn_, 11);
    audio_ = ngs::test::random_uniform(info_.sample_length, 12, -0.5f, 0.5f);
    out_.assign(4 * info_.sample_length, 0.0f);
    e_ = ngs::test::random_normal(static_cast<size_t>(info_.e_dim), 13);
  }
  void SetUp() override { open("lstm22k"); }
  void TearDown() override {
    ngs_context_free(ctx_);
    ngs_model_free(model_);
  }
  ngs_sample_params sp() const {
    ngs_sample_params p = ngs_sample_default_params();
    p.class_index = info_.n_classes > 0 ? 0 : NGS_CLASS_NONE;
    return p;
  }

  ngs_model *model_ = nullptr;
  ngs_context *ctx_ = nullptr;
  ngs_model_info info_{};
  int n_ = 0;
  size_t zn_ = 0;
  std::vector<float> z_, audio_, out_, e_;
};

TEST(Library, VersionAndStatusStrings) {
  EXPECT_STREQ(ngs_version(), "0.1.0");
  EXPECT_EQ(ngs_model_format_version(), static_cast<uint32_t>(NGS_MODEL_FORMAT_VERSION));
  for (int s = 0; s <= 8; ++s) {
    ASSERT_NE(ngs_status_string(static_cast<ngs_status>(s)), nullptr);
    EXPECT_GT(std::strlen(ngs_status_string(static_cast<ngs_status>(s))), 0u);
  }
  EXPECT_NE(ngs_status_string(static_cast<ngs_status>(15)), nullptr);
  EXPECT_STREQ(ngs_backend_name(NGS_BACKEND_CPU), "cpu");
  EXPECT_STREQ(ngs_backend_name(NGS_BACKEND_CUDA), "cuda");
  EXPECT_STREQ(ngs_backend_name(NGS_BACKEND_AUTO), "auto");
  EXPECT_NE(ngs_backend_name(static_cast<ngs_backend>(3)), nullptr);
  EXPECT_EQ(ngs_backend_probe(NGS_BACKEND_CPU), NGS_STATUS_OK);
  EXPECT_EQ(ngs_backend_probe(static_cast<ngs_backend>(3)), NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(ngs_path_kind_from_name("spiral"), NGS_PATH_KIND_SPIRAL);
  EXPECT_EQ(ngs_path_kind_from_name("back_and_forth"), NGS_PATH_KIND_BACK_AND_FORTH);
  EXPECT_EQ(ngs_path_kind_from_name("zigzag"), -1);
  EXPECT_EQ(ngs_path_kind_from_name(nullptr), -1);
}

TEST(Library, LastErrorIsPerThread) {
  EXPECT_EQ(ngs_model_init_from_file(nullptr, ngs_model_default_params(), nullptr),
            NGS_STATUS_INVALID_ARGUMENT);
  const std::string mine = ngs_last_error();
  EXPECT_FALSE(mine.empty());
  std::string theirs = "unset";
  std::thread([&] { theirs = ngs_last_error(); }).join();
  EXPECT_EQ(theirs, "");
  EXPECT_EQ(mine, ngs_last_error());
}

TEST_F(Errors, CudaBackendWhenUnavailable) {
  if (ngs_backend_probe(NGS_BACKEND_CUDA) == NGS_STATUS_OK) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_STATUS(ngs_backend_probe(NGS_BACKEND_CUDA), NGS_STATUS_UNSUPPORTED, "CUDA");
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = NGS_BACKEND_CUDA;
  ngs_model *m = nullptr;
  const std::string path = ngs::test::fixture_path("lstm22k", "model.safetensors");
  EXPECT_STATUS(ngs_model_init_from_file(path.c_str(), mp, &m), NGS_STATUS_UNSUPPORTED, "CUDA");
  EXPECT_EQ(m, nullptr);
  mp.backend = NGS_BACKEND_AUTO;  // falls back to the CPU
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), mp, &m), NGS_STATUS_OK);
  ngs_model_info info;
  ASSERT_EQ(ngs_model_get_info(m, &info), NGS_STATUS_OK);
  EXPECT_EQ(info.backend, NGS_BACKEND_CPU);
  ngs_model_free(m);
  mp.backend = static_cast<ngs_backend>(3);
  EXPECT_STATUS(ngs_model_init_from_file(path.c_str(), mp, &m), NGS_STATUS_INVALID_ARGUMENT, "backend");
}

TEST_F(Errors, NullPointers) {
  const auto dp = ngs_decode_default_params();
  const auto ep = ngs_encode_default_params();
  const size_t L = info_.sample_length;
  EXPECT_STATUS(ngs_model_get_info(nullptr, &info_), NGS_STATUS_INVALID_ARGUMENT, "model is NULL");
  EXPECT_STATUS(ngs_model_get_info(model_, nullptr), NGS_STATUS_INVALID_ARGUMENT, "out is NULL");
  ngs_context *c = reinterpret_cast<ngs_context *>(0x1);
  EXPECT_STATUS(ngs_context_init(nullptr, ngs_context_default_params(), &c), NGS_STATUS_INVALID_ARGUMENT, "model is NULL");
  EXPECT_EQ(c, nullptr);
  EXPECT_STATUS(ngs_context_init(model_, ngs_context_default_params(), nullptr), NGS_STATUS_INVALID_ARGUMENT, "out is NULL");
  EXPECT_STATUS(ngs_decode(nullptr, z_.data(), n_, dp, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "ctx is NULL");
  EXPECT_STATUS(ngs_decode(ctx_, nullptr, n_, dp, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "z is NULL");
  EXPECT_STATUS(ngs_decode(ctx_, z_.data(), n_, dp, nullptr, L), NGS_STATUS_INVALID_ARGUMENT, "audio is NULL");
  EXPECT_STATUS(ngs_encode(nullptr, audio_.data(), L, ep, out_.data(), nullptr, nullptr, n_, nullptr),
                NGS_STATUS_INVALID_ARGUMENT, "ctx is NULL");
  EXPECT_STATUS(ngs_encode(ctx_, nullptr, L, ep, out_.data(), nullptr, nullptr, n_, nullptr),
                NGS_STATUS_INVALID_ARGUMENT, "audio is NULL");
  EXPECT_STATUS(ngs_embedding_sample(nullptr, 1, 0, 0, e_.data()), NGS_STATUS_INVALID_ARGUMENT, "model is NULL");
  EXPECT_STATUS(ngs_embedding_sample(model_, 1, 0, 0, nullptr), NGS_STATUS_INVALID_ARGUMENT, "e is NULL");
  EXPECT_STATUS(ngs_latent_decode(ctx_, nullptr, 0, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "e is NULL");
  EXPECT_STATUS(ngs_latent_decode(ctx_, e_.data(), 0, n_, nullptr), NGS_STATUS_INVALID_ARGUMENT, "z is NULL");
  EXPECT_STATUS(ngs_latent_decode(nullptr, e_.data(), 0, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "ctx is NULL");
  EXPECT_STATUS(ngs_latent_encode(ctx_, nullptr, n_, e_.data(), nullptr), NGS_STATUS_INVALID_ARGUMENT, "z is NULL");
  EXPECT_STATUS(ngs_latent_encode(nullptr, z_.data(), n_, e_.data(), nullptr), NGS_STATUS_INVALID_ARGUMENT, "ctx is NULL");
  EXPECT_STATUS(ngs_sample(nullptr, sp(), out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "ctx is NULL");
  EXPECT_STATUS(ngs_sample(ctx_, sp(), nullptr, L), NGS_STATUS_INVALID_ARGUMENT, "audio is NULL");
  EXPECT_STATUS(ngs_sample_interpolation(ctx_, sp(), 2, nullptr, 2 * L), NGS_STATUS_INVALID_ARGUMENT, "audio is NULL");
  EXPECT_STATUS(ngs_path_generate(nullptr, ngs_path_default_params(), n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "model is NULL");
  EXPECT_STATUS(ngs_path_generate(model_, ngs_path_default_params(), n_, nullptr), NGS_STATUS_INVALID_ARGUMENT, "z is NULL");
  EXPECT_STATUS(ngs_preprocess(nullptr, out_.data(), 10, 0), NGS_STATUS_INVALID_ARGUMENT, "model is NULL");
  EXPECT_STATUS(ngs_preprocess(model_, nullptr, 10, 0), NGS_STATUS_INVALID_ARGUMENT, "audio is NULL");
  EXPECT_STATUS(ngs_resynthesize(ctx_, nullptr, L, ngs_resynth_default_params(), out_.data()), NGS_STATUS_INVALID_ARGUMENT, "audio is NULL");
  EXPECT_STATUS(ngs_resynthesize(ctx_, audio_.data(), L, ngs_resynth_default_params(), nullptr), NGS_STATUS_INVALID_ARGUMENT, "out is NULL");
  EXPECT_STATUS(ngs_resynthesize(nullptr, audio_.data(), L, ngs_resynth_default_params(), out_.data()), NGS_STATUS_INVALID_ARGUMENT, "ctx is NULL");
  ngs_loop_event ev{0, 0.0f, 1.0f};
  EXPECT_STATUS(ngs_render_loop(ctx_, nullptr, 1, ngs_loop_default_params(), out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "events is NULL");
  EXPECT_STATUS(ngs_render_loop(ctx_, &ev, 1, ngs_loop_default_params(), nullptr, L), NGS_STATUS_INVALID_ARGUMENT, "audio is NULL");
  EXPECT_STATUS(ngs_render_loop(nullptr, &ev, 1, ngs_loop_default_params(), out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "ctx is NULL");
  // Functions without a status tolerate NULL.
  EXPECT_EQ(ngs_model_class_name(nullptr, 0), nullptr);
  EXPECT_EQ(ngs_model_find_class(nullptr, "Kick"), -1);
  EXPECT_EQ(ngs_model_find_class(model_, nullptr), -1);
  EXPECT_EQ(ngs_model_metadata(nullptr, "ngs.config"), nullptr);
  EXPECT_EQ(ngs_model_metadata(model_, nullptr), nullptr);
  EXPECT_EQ(ngs_model_audio_length(nullptr, 5), 0u);
  EXPECT_EQ(ngs_model_grains_for_duration(nullptr, 1.0), 0);
  ngs_model_free(nullptr);
  ngs_context_free(nullptr);
}

TEST_F(Errors, WrongSizes) {
  const auto dp = ngs_decode_default_params();
  const auto ep = ngs_encode_default_params();
  const size_t L = info_.sample_length;
  const size_t hop = static_cast<size_t>(info_.hop_size);
  EXPECT_STATUS(ngs_decode(ctx_, z_.data(), n_, dp, out_.data(), L - 1), NGS_STATUS_INVALID_ARGUMENT, "audio_len");
  EXPECT_STATUS(ngs_decode(ctx_, z_.data(), 0, dp, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "n_grains = 0");
  EXPECT_STATUS(ngs_decode(ctx_, z_.data(), -4, dp, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "n_grains = -4");
  EXPECT_STATUS(ngs_encode(ctx_, audio_.data(), L - 1, ep, out_.data(), nullptr, nullptr, n_, nullptr),
                NGS_STATUS_INVALID_ARGUMENT, "n_samples");
  EXPECT_STATUS(ngs_encode(ctx_, audio_.data(), 3 * hop, ep, out_.data(), nullptr, nullptr, n_, nullptr),
                NGS_STATUS_INVALID_ARGUMENT, "n_samples");
  EXPECT_STATUS(ngs_encode(ctx_, audio_.data(), L, ep, out_.data(), nullptr, nullptr, n_ - 1, nullptr),
                NGS_STATUS_INVALID_ARGUMENT, "max_grains");
  EXPECT_STATUS(ngs_sample(ctx_, sp(), out_.data(), L - 1), NGS_STATUS_INVALID_ARGUMENT, "audio_len");
  ngs_sample_params p = sp();
  p.count = 2;
  EXPECT_STATUS(ngs_sample(ctx_, p, out_.data(), 2 * L - 1), NGS_STATUS_INVALID_ARGUMENT, "audio_len");
  p.count = 0;
  EXPECT_STATUS(ngs_sample(ctx_, p, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "count");
  EXPECT_STATUS(ngs_sample_interpolation(ctx_, sp(), 3, out_.data(), 3 * L - 1), NGS_STATUS_INVALID_ARGUMENT, "audio_len");
  EXPECT_STATUS(ngs_sample_interpolation(ctx_, sp(), 1, out_.data(), 3 * L), NGS_STATUS_INVALID_ARGUMENT, "steps");
  EXPECT_STATUS(ngs_latent_decode(ctx_, e_.data(), 0, 0, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "n_grains");
  EXPECT_STATUS(ngs_latent_encode(ctx_, z_.data(), 0, e_.data(), nullptr), NGS_STATUS_INVALID_ARGUMENT, "n_grains");
  EXPECT_STATUS(ngs_path_generate(model_, ngs_path_default_params(), 0, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "n_grains");
  EXPECT_STATUS(ngs_preprocess(model_, out_.data(), 0, 0), NGS_STATUS_INVALID_ARGUMENT, "n_samples");
  EXPECT_STATUS(ngs_resynthesize(ctx_, audio_.data(), 0, ngs_resynth_default_params(), out_.data()),
                NGS_STATUS_INVALID_ARGUMENT, "n_samples");
  ngs_loop_event ev{0, 0.0f, 1.0f};
  EXPECT_STATUS(ngs_render_loop(ctx_, &ev, 1, ngs_loop_default_params(), out_.data(), 0), NGS_STATUS_INVALID_ARGUMENT, "loop_length");
  EXPECT_STATUS(ngs_render_loop(ctx_, &ev, -1, ngs_loop_default_params(), out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "n_events");
}

TEST_F(Errors, NonFiniteInputs) {
  const auto dp = ngs_decode_default_params();
  const size_t L = info_.sample_length;
  for (float bad : {kNaN, kInf, -kInf}) {
    auto z = z_;
    z[zn_ - 1] = bad;
    EXPECT_STATUS(ngs_decode(ctx_, z.data(), n_, dp, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "z holds a non-finite");
    EXPECT_STATUS(ngs_latent_encode(ctx_, z.data(), n_, e_.data(), nullptr), NGS_STATUS_INVALID_ARGUMENT, "non-finite");
    auto e = e_;
    e[3] = bad;
    EXPECT_STATUS(ngs_latent_decode(ctx_, e.data(), 0, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "e holds a non-finite");
    auto a = audio_;
    a[L / 2] = bad;
    EXPECT_STATUS(ngs_encode(ctx_, a.data(), L, ngs_encode_default_params(), out_.data(), nullptr, nullptr, n_, nullptr),
                  NGS_STATUS_INVALID_ARGUMENT, "audio holds a non-finite");
    EXPECT_STATUS(ngs_preprocess(model_, a.data(), L, 0), NGS_STATUS_INVALID_ARGUMENT, "non-finite");
    EXPECT_STATUS(ngs_resynthesize(ctx_, a.data(), L, ngs_resynth_default_params(), out_.data()),
                  NGS_STATUS_INVALID_ARGUMENT, "non-finite");
  }
  // Temperatures.
  for (float t : {kNaN, kInf, -0.5f}) {
    ngs_sample_params p = sp();
    p.temperature = t;
    EXPECT_STATUS(ngs_sample(ctx_, p, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "temperature");
    EXPECT_STATUS(ngs_embedding_sample(model_, t, 0, 0, e_.data()), NGS_STATUS_INVALID_ARGUMENT, "temperature");
    ngs_path_params pp = ngs_path_default_params();
    pp.temperature = t;
    EXPECT_STATUS(ngs_path_generate(model_, pp, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "temperature");
    ngs_loop_params lp = ngs_loop_default_params();
    lp.temperature = t;
    ngs_loop_event ev{0, 0.0f, 1.0f};
    EXPECT_STATUS(ngs_render_loop(ctx_, &ev, 1, lp, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "temperature");
  }
}

TEST_F(Errors, UnknownClass) {
  const size_t L = info_.sample_length;
  ASSERT_GT(info_.n_classes, 1);
  for (int c : {info_.n_classes, 99, -2, static_cast<int>(NGS_CLASS_NONE)}) {
    ngs_sample_params p = sp();
    p.class_index = c;
    EXPECT_STATUS(ngs_sample(ctx_, p, out_.data(), L), NGS_STATUS_INVALID_ARGUMENT, "class_index");
    EXPECT_STATUS(ngs_sample_interpolation(ctx_, p, 2, out_.data(), 2 * L), NGS_STATUS_INVALID_ARGUMENT, "class_index");
    EXPECT_STATUS(ngs_latent_decode(ctx_, e_.data(), c, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "class_index");
    ngs_loop_event ev{c, 0.0f, 1.0f};
    EXPECT_STATUS(ngs_render_loop(ctx_, &ev, 1, ngs_loop_default_params(), out_.data(), L),
                  NGS_STATUS_INVALID_ARGUMENT, "event 0: class_index");
  }
  EXPECT_EQ(ngs_model_find_class(model_, "kick"), 4);  // case-insensitive
  EXPECT_EQ(ngs_model_find_class(model_, "Kic"), -1);
  EXPECT_EQ(ngs_model_find_class(model_, "Tuba"), -1);
  EXPECT_EQ(ngs_model_class_name(model_, -1), nullptr);
}

TEST(ErrorsUnconditional, ClassGivenToUnconditionalModel) {
  ngs_model *m = nullptr;
  ngs_context *c = nullptr;
  const std::string path = ngs::test::fixture_path("gru16k", "model.safetensors");
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), ngs_model_default_params(), &m), NGS_STATUS_OK);
  ASSERT_EQ(ngs_context_init(m, ngs_context_default_params(), &c), NGS_STATUS_OK);
  ngs_model_info info;
  ASSERT_EQ(ngs_model_get_info(m, &info), NGS_STATUS_OK);
  EXPECT_EQ(info.n_classes, 0);
  EXPECT_EQ(ngs_model_class_name(m, 0), nullptr);
  std::vector<float> out(info.sample_length);
  ngs_sample_params p = ngs_sample_default_params();
  p.class_index = 0;
  EXPECT_STATUS(ngs_sample(c, p, out.data(), out.size()), NGS_STATUS_INVALID_ARGUMENT, "unconditional");
  p.class_index = NGS_CLASS_NONE;
  EXPECT_EQ(ngs_sample(c, p, out.data(), out.size()), NGS_STATUS_OK) << ngs_last_error();
  ngs_context_free(c);
  ngs_model_free(m);
}

TEST_F(Errors, Capacity) {
  const int maxg = 2 * n_;  // SetUp's max_grains
  const size_t big = static_cast<size_t>(maxg + 1) * info_.z_dim;
  const auto z = ngs::test::random_normal(big, 3);
  std::vector<float> out(ngs_model_audio_length(model_, maxg + 1));
  EXPECT_STATUS(ngs_decode(ctx_, z.data(), maxg + 1, ngs_decode_default_params(), out.data(), out.size()),
                NGS_STATUS_CAPACITY, "max_grains");
  // The largest request fits.
  EXPECT_EQ(ngs_decode(ctx_, z.data(), maxg, ngs_decode_default_params(), out.data(), out.size()), NGS_STATUS_OK);
  const auto a = ngs::test::random_uniform(out.size(), 4, -0.5f, 0.5f);
  std::vector<float> mu(big);
  EXPECT_STATUS(ngs_encode(ctx_, a.data(), a.size(), ngs_encode_default_params(), mu.data(), nullptr, nullptr, maxg + 1, nullptr),
                NGS_STATUS_CAPACITY, "max_grains");
  EXPECT_STATUS(ngs_latent_decode(ctx_, e_.data(), 0, maxg + 1, mu.data()), NGS_STATUS_CAPACITY, "max_grains");
  EXPECT_STATUS(ngs_latent_encode(ctx_, z.data(), maxg + 1, e_.data(), nullptr), NGS_STATUS_CAPACITY, "max_grains");
  ngs_resynth_params rp = ngs_resynth_default_params();
  rp.segment_grains = maxg + 1;
  EXPECT_STATUS(ngs_resynthesize(ctx_, a.data(), a.size(), rp, out.data()), NGS_STATUS_CAPACITY, "segment_grains");
  // A loop longer than max_loop_length (default 10 s).
  const size_t too_long = static_cast<size_t>(info_.sample_rate) * 10 + 1;
  std::vector<float> loop(too_long);
  ngs_loop_event ev{0, 0.0f, 1.0f};
  EXPECT_STATUS(ngs_render_loop(ctx_, &ev, 1, ngs_loop_default_params(), loop.data(), too_long),
                NGS_STATUS_CAPACITY, "max_loop_length");
  // A context too small for one-shots.
  ngs_context_params cp = ngs_context_default_params();
  cp.max_grains = n_ - 1;
  ngs_context *small = nullptr;
  ASSERT_EQ(ngs_context_init(model_, cp, &small), NGS_STATUS_OK);
  EXPECT_STATUS(ngs_sample(small, sp(), out.data(), out.size()), NGS_STATUS_CAPACITY, "one-shots");
  EXPECT_STATUS(ngs_render_loop(small, &ev, 1, ngs_loop_default_params(), out.data(), 100), NGS_STATUS_CAPACITY, "one-shots");
  ngs_context_free(small);
}

TEST_F(Errors, BadParameters) {
  ngs_context_params cp = ngs_context_default_params();
  ngs_context *c = nullptr;
  cp.n_threads = 0;
  EXPECT_STATUS(ngs_context_init(model_, cp, &c), NGS_STATUS_INVALID_ARGUMENT, "n_threads");
  cp = ngs_context_default_params();
  cp.max_grains = -1;
  EXPECT_STATUS(ngs_context_init(model_, cp, &c), NGS_STATUS_INVALID_ARGUMENT, "max_grains");
  EXPECT_EQ(c, nullptr);

  ngs_path_params pp = ngs_path_default_params();
  pp.kind = static_cast<ngs_path_kind>(7);
  EXPECT_STATUS(ngs_path_generate(model_, pp, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "unknown path kind");
  pp = ngs_path_default_params();
  pp.kind = NGS_PATH_KIND_RANDOM;
  pp.points = 1;
  EXPECT_STATUS(ngs_path_generate(model_, pp, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "points");
  pp = ngs_path_default_params();
  pp.kind = NGS_PATH_KIND_BACK_AND_FORTH;
  pp.legs = 0;
  EXPECT_STATUS(ngs_path_generate(model_, pp, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "legs");
  pp.legs = 2;
  pp.gamma = 0.0f;
  EXPECT_STATUS(ngs_path_generate(model_, pp, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "gamma");
  pp = ngs_path_default_params();
  pp.kind = NGS_PATH_KIND_CIRCLE;
  pp.turns = kInf;
  EXPECT_STATUS(ngs_path_generate(model_, pp, n_, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "turns");

  ngs_resynth_params rp = ngs_resynth_default_params();
  rp.crossfade = static_cast<int>(info_.sample_length / 2 + 1);
  EXPECT_STATUS(ngs_resynthesize(ctx_, audio_.data(), audio_.size(), rp, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "crossfade");
  rp.crossfade = -1;
  EXPECT_STATUS(ngs_resynthesize(ctx_, audio_.data(), audio_.size(), rp, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "crossfade");
  rp = ngs_resynth_default_params();
  rp.segment_grains = -3;
  EXPECT_STATUS(ngs_resynthesize(ctx_, audio_.data(), audio_.size(), rp, out_.data()), NGS_STATUS_INVALID_ARGUMENT, "segment_grains");

  const ngs_loop_event bad_events[] = {{0, 1.0f, 0.5f}, {0, -0.1f, 0.5f}, {0, kNaN, 0.5f}, {0, 0.5f, 1.5f}, {0, 0.5f, -0.1f}, {0, 0.5f, kNaN}};
  for (const auto &ev : bad_events) {
    const ngs_loop_event evs[2] = {{1, 0.0f, 1.0f}, ev};
    EXPECT_STATUS(ngs_render_loop(ctx_, evs, 2, ngs_loop_default_params(), out_.data(), 1000), NGS_STATUS_INVALID_ARGUMENT, "event 1");
  }
}

TEST_F(Errors, FailedCallsLeaveOutputsAlone) {
  // Argument errors are detected before any output is written.
  std::vector<float> out(info_.sample_length, 7.0f);
  auto z = z_;
  z[0] = kNaN;
  ASSERT_NE(ngs_decode(ctx_, z.data(), n_, ngs_decode_default_params(), out.data(), out.size()), NGS_STATUS_OK);
  for (float v : out) ASSERT_EQ(v, 7.0f);
  ngs_sample_params p = sp();
  p.class_index = 77;
  ASSERT_NE(ngs_sample(ctx_, p, out.data(), out.size()), NGS_STATUS_OK);
  for (float v : out) ASSERT_EQ(v, 7.0f);
  // And the context still works afterwards.
  EXPECT_EQ(ngs_decode(ctx_, z_.data(), n_, ngs_decode_default_params(), out.data(), out.size()), NGS_STATUS_OK);
  EXPECT_EQ(ngs::test::count_nonfinite(out), 0u);
}

TEST_F(Errors, GrainsForDuration) {
  const double sr = info_.sample_rate, lg = info_.grain_length;
  EXPECT_EQ(ngs_model_grains_for_duration(model_, 0.0), 0);
  EXPECT_EQ(ngs_model_grains_for_duration(model_, -1.0), 0);
  EXPECT_EQ(ngs_model_grains_for_duration(model_, std::nan("")), 0);
  EXPECT_EQ(ngs_model_grains_for_duration(model_, (lg - 1) / sr), 0);
  EXPECT_EQ(ngs_model_grains_for_duration(model_, lg / sr), 1);
  for (double sec : {0.5, 1.0, 2.7, 10.0}) {
    const long tar_l = static_cast<long>(std::floor(sec * sr / lg)) * static_cast<long>(lg);
    EXPECT_EQ(ngs_model_grains_for_duration(model_, sec), static_cast<int>(4 * tar_l / static_cast<long>(lg) - 3)) << sec;
  }
}

}  // namespace
