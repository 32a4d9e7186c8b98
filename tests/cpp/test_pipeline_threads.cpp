// Thread safety: one model shared by several threads, each with its own context, running
// every process at once; results must equal a serial run bit for bit. Also built and run
// under ThreadSanitizer (ctest label "threads", build with -DNGS_SANITIZE=thread).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ngs/ngs.h"
#include "test_util.h"

namespace {

// Everything one job computes, concatenated.
std::vector<float> run_job(ngs_model *m, ngs_context *c, int job) {
  ngs_model_info info;
  EXPECT_EQ(ngs_model_get_info(m, &info), NGS_STATUS_OK);
  const uint64_t seed = 1000 + static_cast<uint64_t>(job);
  std::vector<float> all;
  auto append = [&](const std::vector<float> &v) { all.insert(all.end(), v.begin(), v.end()); };

  ngs_sample_params sp = ngs_sample_default_params();
  sp.class_index = info.n_classes > 0 ? job % info.n_classes : NGS_CLASS_NONE;
  sp.seed = seed;
  sp.count = 2;
  std::vector<float> s(2 * info.sample_length);
  EXPECT_EQ(ngs_sample(c, sp, s.data(), s.size()), NGS_STATUS_OK) << ngs_last_error();
  append(s);

  // A different length per job, long enough that a 2- or 3-thread context splits every
  // decoder stage (>= 8 grains of spectrum and >= 2048 FIR samples per part).
  const int n = std::max(3 * info.n_grains, 40) + job;
  ngs_path_params pp = ngs_path_default_params();
  pp.kind = static_cast<ngs_path_kind>(job % 5);
  pp.seed = seed;
  std::vector<float> z(static_cast<size_t>(n) * info.z_dim);
  EXPECT_EQ(ngs_path_generate(m, pp, n, z.data()), NGS_STATUS_OK);
  std::vector<float> y(ngs_model_audio_length(m, n));
  ngs_decode_params dp = ngs_decode_default_params();
  dp.seed = seed;
  EXPECT_EQ(ngs_decode(c, z.data(), n, dp, y.data(), y.size()), NGS_STATUS_OK);
  append(y);

  std::vector<float> mu(z.size()), zz(z.size());
  ngs_encode_params ep = ngs_encode_default_params();
  ep.seed = seed;
  EXPECT_EQ(ngs_encode(c, y.data(), y.size(), ep, mu.data(), nullptr, zz.data(), n, nullptr), NGS_STATUS_OK);
  append(mu);
  append(zz);

  std::vector<float> r(y.size() + 1234);
  const auto in = ngs::test::random_uniform(r.size(), static_cast<uint32_t>(job), -0.5f, 0.5f);
  ngs_resynth_params rp = ngs_resynth_default_params();
  rp.seed = seed;
  EXPECT_EQ(ngs_resynthesize(c, in.data(), in.size(), rp, r.data()), NGS_STATUS_OK) << ngs_last_error();
  append(r);

  const ngs_loop_event ev[3] = {{sp.class_index, 0.0f, 1.0f}, {sp.class_index, 0.5f, 0.6f},
                                {info.n_classes > 0 ? 0 : NGS_CLASS_NONE, 0.75f, 0.9f}};
  ngs_loop_params lp = ngs_loop_default_params();
  lp.seed = seed;
  std::vector<float> loop(2 * info.sample_length);
  EXPECT_EQ(ngs_render_loop(c, ev, 3, lp, loop.data(), loop.size()), NGS_STATUS_OK) << ngs_last_error();
  append(loop);
  return all;
}

void run_parallel(const char *config) {
  ngs_model *m = nullptr;
  const std::string path = ngs::test::fixture_path(config, "model.safetensors");
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), ngs_model_default_params(), &m), NGS_STATUS_OK)
      << ngs_last_error();
  constexpr int kThreads = 4;
  std::vector<std::vector<float>> serial(kThreads);
  {
    ngs_context *c = nullptr;
    ASSERT_EQ(ngs_context_init(m, ngs_context_default_params(), &c), NGS_STATUS_OK);
    for (int j = 0; j < kThreads; ++j) serial[j] = run_job(m, c, j);
    ngs_context_free(c);
  }
  std::vector<std::vector<float>> par(kThreads);
  std::atomic<int> go{0};
  std::vector<std::thread> th;
  for (int j = 0; j < kThreads; ++j)
    th.emplace_back([&, j] {
      ngs_context_params cp = ngs_context_default_params();
      cp.n_threads = j == 0 ? 3 : j == 1 ? 2 : 1;  // two contexts with their own worker threads
      ngs_context *c = nullptr;
      ASSERT_EQ(ngs_context_init(m, cp, &c), NGS_STATUS_OK);
      go.fetch_add(1);
      while (go.load() < kThreads) std::this_thread::yield();
      // Each thread runs its own job and then another thread's, on the same context.
      par[j] = run_job(m, c, j);
      const auto again = run_job(m, c, (j + 1) % kThreads);
      EXPECT_EQ(again, serial[(j + 1) % kThreads]) << "thread " << j;
      ngs_context_free(c);
    });
  for (auto &t : th) t.join();
  for (int j = 0; j < kThreads; ++j) {
    ASSERT_EQ(par[j].size(), serial[j].size());
    EXPECT_EQ(std::memcmp(par[j].data(), serial[j].data(), par[j].size() * sizeof(float)), 0)
        << "job " << j << " differs from the serial run";
    EXPECT_EQ(ngs::test::count_nonfinite(par[j]), 0u);
  }
  ngs_model_free(m);
}

TEST(Threads, ContextsOnOneModelMatchSerialLstm) { run_parallel("lstm22k"); }
TEST(Threads, ContextsOnOneModelMatchSerialGru) { run_parallel("gru16k"); }
// No width a multiple of 4/8/16 and a recurrence wide enough to be split by 2 threads.
TEST(Threads, ContextsOnOneModelMatchSerialOdd) { run_parallel("odd"); }

}  // namespace
