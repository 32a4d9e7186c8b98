// Decode and encode at lengths other than the training series (1 grain, a few, many):
// outputs fully written, deterministic, and local: a grain's latent only changes the
// samples its window and the FIR reach; an encoded grain only depends on its own samples.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ngs/ngs.h"
#include "test_util.h"

namespace {

class Lengths : public testing::TestWithParam<const char *> {
 protected:
  void SetUp() override {
    const std::string path = ngs::test::fixture_path(GetParam(), "model.safetensors");
    ngs_model_params mp = ngs_model_default_params();
    mp.backend = NGS_BACKEND_CPU;
    ASSERT_EQ(ngs_model_init_from_file(path.c_str(), mp, &m_), NGS_STATUS_OK) << ngs_last_error();
    ASSERT_EQ(ngs_model_get_info(m_, &info_), NGS_STATUS_OK);
    ASSERT_EQ(ngs_context_init(m_, ngs_context_default_params(), &c_), NGS_STATUS_OK);
  }
  void TearDown() override {
    ngs_context_free(c_);
    ngs_model_free(m_);
  }
  std::vector<float> decode(const std::vector<float> &z, int n, uint64_t seed) {
    const size_t len = ngs_model_audio_length(m_, n);
    std::vector<float> y = ngs::test::poisoned(len + 8);
    ngs_decode_params dp = ngs_decode_default_params();
    dp.seed = seed;
    EXPECT_EQ(ngs_decode(c_, z.data(), n, dp, y.data(), len + 8), NGS_STATUS_OK) << ngs_last_error();
    for (size_t i = len; i < len + 8; ++i) EXPECT_TRUE(std::isnan(y[i])) << "wrote past the end";
    y.resize(len);
    EXPECT_EQ(ngs::test::count_nonfinite(y), 0u);
    return y;
  }
  ngs_model *m_ = nullptr;
  ngs_context *c_ = nullptr;
  ngs_model_info info_{};
};

TEST_P(Lengths, DecodeAnyLengthIsLocal) {
  const int hop = info_.hop_size;
  for (int n : {1, 2, 5, 3 * info_.n_grains + 1}) {
    auto z = ngs::test::random_normal(static_cast<size_t>(n) * info_.z_dim, 100 + n);
    const auto a = decode(z, n, 9);
    EXPECT_EQ(a, decode(z, n, 9)) << "n = " << n;
    if (n < 5) continue;
    // Change grain k's latent: only samples within [k hop, (k + 4) hop) widened by the
    // FIR half-width may change, and some of them must.
    const int k = n / 2;
    for (int i = 0; i < info_.z_dim; ++i) z[static_cast<size_t>(k) * info_.z_dim + i] += 1.0f;
    const auto b = decode(z, n, 9);
    const long lo = static_cast<long>(k) * hop - 64, hi = static_cast<long>(k + 4) * hop + 64;
    size_t changed = 0;
    for (size_t t = 0; t < a.size(); ++t) {
      const long tt = static_cast<long>(t);
      if (tt < lo || tt >= hi) {
        ASSERT_EQ(a[t], b[t]) << "n = " << n << ": sample " << t << " outside grain " << k << "'s reach changed";
      } else if (a[t] != b[t]) {
        ++changed;
      }
    }
    EXPECT_GT(changed, static_cast<size_t>(2 * hop)) << "n = " << n;
  }
}

TEST_P(Lengths, EncodeGrainsDependOnTheirOwnSamples) {
  const int hop = info_.hop_size, zd = info_.z_dim;
  const int n_long = 2 * info_.n_grains + 3, n_short = info_.n_grains;
  const auto audio = ngs::test::random_uniform(ngs_model_audio_length(m_, n_long), 21, -0.5f, 0.5f);
  std::vector<float> mu_long = ngs::test::poisoned(static_cast<size_t>(n_long) * zd);
  std::vector<float> mu_short = ngs::test::poisoned(static_cast<size_t>(n_short) * zd);
  int got = 0;
  ASSERT_EQ(ngs_encode(c_, audio.data(), audio.size(), ngs_encode_default_params(), mu_long.data(), nullptr,
                       nullptr, n_long, &got),
            NGS_STATUS_OK);
  EXPECT_EQ(got, n_long);
  ASSERT_EQ(ngs_encode(c_, audio.data(), ngs_model_audio_length(m_, n_short), ngs_encode_default_params(),
                       mu_short.data(), nullptr, nullptr, n_short, &got),
            NGS_STATUS_OK);
  EXPECT_EQ(got, n_short);
  EXPECT_EQ(ngs::test::count_nonfinite(mu_long), 0u);
  // Grains 0 .. n_short-2 see the same samples and the same window in both calls (the last
  // grain of a series has its own window, docs/MODEL_SPEC.md §4.3).
  const size_t same = static_cast<size_t>(n_short - 1) * zd;
  const std::vector<float> a(mu_long.begin(), mu_long.begin() + static_cast<std::ptrdiff_t>(same));
  const std::vector<float> b(mu_short.begin(), mu_short.begin() + static_cast<std::ptrdiff_t>(same));
  EXPECT_LE(ngs::test::rel_l2(a, b), 1e-6);
  const std::vector<float> la(mu_long.begin() + static_cast<std::ptrdiff_t>(same),
                              mu_long.begin() + static_cast<std::ptrdiff_t>(same + zd));
  const std::vector<float> lb(mu_short.begin() + static_cast<std::ptrdiff_t>(same), mu_short.end());
  EXPECT_GT(ngs::test::rel_l2(la, lb), 1e-4) << "the last grain's window was not applied";
  (void)hop;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Lengths, testing::Values("gru16k", "lstm22k", "noola"));

}  // namespace
