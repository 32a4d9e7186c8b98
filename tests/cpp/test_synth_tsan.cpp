// ngs_synth between threads (issue 11, part 5): posting threads, a statistics reader and
// the audio thread run concurrently (ThreadSanitizer: scripts/test.sh step 3 runs this
// program in build-tsan/); every accepted post is applied or counted as dropped exactly
// once, every refused one is counted as an overflow, voice ids are unique, a posted
// latent is copied before ngs_synth_post returns; and ngs_synth_process completes while a
// posting thread is frozen at an arbitrary instruction, inside ngs_synth_post (wait-free
// with respect to post; a blocking process would hang the test, which ctest times out).
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ngs/ngs.h"
#include "test_util.h"

#if defined(__SANITIZE_THREAD__)
#define NGS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NGS_TSAN 1
#endif
#endif
#ifndef NGS_TSAN
#define NGS_TSAN 0
#endif

namespace {

struct Synth {
  ngs_model *model = nullptr;
  ngs_model_info info{};
  ngs_synth *synth = nullptr;

  explicit Synth(const std::string &config, int queue_size, int max_voices = 16) {
    const std::string path = ngs::test::fixture_path(config, "model.safetensors");
    EXPECT_EQ(ngs_model_init_from_file(path.c_str(), ngs_model_default_params(), &model), NGS_STATUS_OK)
        << ngs_last_error();
    if (model == nullptr) return;
    ngs_model_get_info(model, &info);
    ngs_synth_params p = ngs_synth_default_params();
    p.max_block = 256;
    p.max_voices = max_voices;
    p.queue_size = queue_size;
    p.seed = 9;
    EXPECT_EQ(ngs_synth_init(model, p, &synth), NGS_STATUS_OK) << ngs_last_error();
  }
  ~Synth() {
    ngs_synth_free(synth);
    ngs_model_free(model);
  }
};

// What one posting thread did.
struct PosterLog {
  long ok = 0, capacity = 0, bad_ok = 0;
  long rejected = 0;  // bad events refused at once by ngs_synth_post (and counted as dropped)
  long unexpected = 0;
  std::vector<int32_t> ids;
};

// Posts `count` events of every type from one thread; the latents live in a buffer that
// is overwritten (with NaN) right after each post returns, so a synth that read the
// caller's z after post would see NaN (dropped or NaN output) and TSan a race.
void poster(ngs_synth *s, int z_dim, bool shots, int classes, uint32_t seed, int count, PosterLog *log) {
  std::vector<float> z(static_cast<size_t>(z_dim));
  const auto fresh = ngs::test::random_normal(size_t(z_dim) * 16, seed);
  std::vector<int32_t> mine;
  for (int k = 0; k < count; ++k) {
    ngs_synth_event e;
    bool bad = false;
    const int what = k % 8;
    if (what == 0 || mine.empty()) {
      const int32_t id = ngs_synth_voice_new(s);
      log->ids.push_back(id);
      mine.push_back(id);
      e = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
      e.voice = id;
      if (shots && k % 16 == 0) {
        e.kind = NGS_SYNTH_VOICE_ONE_SHOT;
        e.class_index = classes > 0 ? k % classes : NGS_CLASS_NONE;
      } else {
        e.kind = NGS_SYNTH_VOICE_FREE;
        std::copy_n(fresh.begin() + (k % 16) * z_dim, z_dim, z.begin());
        e.z = z.data();
      }
    } else if (what == 1 || what == 2) {
      e = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_LATENT);
      e.voice = mine[size_t(k) % mine.size()];
      std::copy_n(fresh.begin() + (k % 16) * z_dim, z_dim, z.begin());
      e.z = z.data();
      e.glide = float(k % 3);
    } else if (what == 3) {
      e = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_GAIN);
      e.voice = mine[size_t(k) % mine.size()];
      e.gain = 0.25f * float(k % 4);
      e.fade = k % 100;
    } else if (what == 4) {
      e = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_LATENT);  // bad: NaN latent
      e.voice = mine.back();
      std::fill(z.begin(), z.end(), 0.0f);
      z[size_t(k) % z.size()] = std::nanf("");
      e.z = z.data();
      bad = true;
    } else if (what == 5) {
      e = ngs_synth_default_event(NGS_SYNTH_EVENT_RELEASE);
      e.voice = mine.front();
      mine.erase(mine.begin());
    } else if (what == 6) {
      e = ngs_synth_default_event(NGS_SYNTH_EVENT_STOP);
      e.voice = mine.back();
      e.fade = 40;
      mine.pop_back();
    } else {
      e = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_GAIN);  // bad: invalid voice id
      e.voice = -1 - k;
      bad = true;
    }
    const ngs_status st = ngs_synth_post(s, &e);
    std::fill(z.begin(), z.end(), std::nanf(""));  // the synth has its own copy by now
    if (st == NGS_STATUS_OK) {
      ++log->ok;
      if (bad) ++log->bad_ok;
    } else if (st == NGS_STATUS_CAPACITY) {
      ++log->capacity;
      if (k % 5 == 0) std::this_thread::yield();
    } else if (st == NGS_STATUS_INVALID_ARGUMENT && bad) {
      ++log->rejected;
    } else {
      ++log->unexpected;
    }
  }
}

TEST(SynthThreads, PostersStatsReaderAndAudioThread) {
  for (const char *config : {"gru16k", "lstm22k"}) {
    Synth sy(config, 32);
    ASSERT_NE(sy.synth, nullptr);
    ngs_synth *s = sy.synth;
    const int posts = NGS_TSAN ? 300 : 2000;
    std::atomic<int> running{2};
    std::atomic<bool> stop_reader{false};
    PosterLog logs[2];
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t)
      threads.emplace_back([&, t] {
        poster(s, sy.info.z_dim, sy.info.has_latent_model != 0, sy.info.n_classes, 50 + uint32_t(t), posts,
               &logs[t]);
        running.fetch_sub(1);
      });
    std::atomic<uint64_t> reads{0};
    std::atomic<bool> reader_exited{false};
    std::thread reader([&] {
      struct Exit {  // also when an ASSERT below returns early
        std::atomic<bool> &flag;
        ~Exit() { flag.store(true); }
      } exit_flag{reader_exited};
      ngs_synth_stats st;
      while (!stop_reader.load()) {
        ASSERT_EQ(ngs_synth_get_stats(s, &st), NGS_STATUS_OK);
        ASSERT_LE(st.events_applied + st.events_dropped, uint64_t(2 * posts) + 1000);
        reads.fetch_add(1);
        std::this_thread::yield();
      }
    });
    // The audio thread: blocks of varying size until the posters are done, then enough
    // frames for every queued event to take effect (a posted event is popped at the next
    // block and counted when the synth's clock reaches it: within a hop plus the latency).
    std::vector<float> out(256);
    const auto in = ngs::test::random_uniform(256, 3, -0.5f, 0.5f);
    size_t nonfinite = 0;
    const long settle = 4L * sy.info.hop_size + ngs_synth_latency(s) + 256;
    long after = 0;  // frames rendered since the posters finished
    for (uint32_t b = 0; after < settle; ++b) {
      const bool done = running.load() == 0;
      const int n = 1 + int((b * 37u) % 256u);
      ngs::test::poison(out.data(), size_t(n));
      ASSERT_EQ(ngs_synth_process(s, nullptr, 0, in.data(), out.data(), n), NGS_STATUS_OK) << ngs_last_error();
      nonfinite += ngs::test::count_nonfinite(out.data(), size_t(n));
      if (done) after += n;
    }
    for (auto &t : threads) t.join();
    // On a loaded machine the reader may not have been scheduled yet: let it read once.
    while (reads.load() == 0 && !reader_exited.load()) std::this_thread::yield();
    stop_reader.store(true);
    reader.join();
    EXPECT_GT(reads.load(), 0u);

    ngs_synth_stats st;
    ASSERT_EQ(ngs_synth_get_stats(s, &st), NGS_STATUS_OK);
    const long ok = logs[0].ok + logs[1].ok, refused = logs[0].capacity + logs[1].capacity;
    const long bad = logs[0].bad_ok + logs[1].bad_ok, rejected = logs[0].rejected + logs[1].rejected;
    EXPECT_EQ(logs[0].unexpected + logs[1].unexpected, 0) << config;
    EXPECT_GT(bad + rejected, 0) << config;
    EXPECT_EQ(long(st.events_applied + st.events_dropped), ok + rejected)
        << config << ": every accepted post is applied or dropped, every refused bad one dropped";
    EXPECT_EQ(long(st.queue_overflows), refused) << config;
    EXPECT_GE(long(st.events_dropped), bad + rejected) << config;
    EXPECT_GT(long(st.events_applied), ok / 3) << config;
    EXPECT_EQ(nonfinite, 0u) << config << ": a latent was read after ngs_synth_post returned";
    std::set<int32_t> ids;
    for (const PosterLog &l : logs)
      for (int32_t id : l.ids) {
        EXPECT_GT(id, 0);
        EXPECT_TRUE(ids.insert(id).second) << "voice id " << id << " given twice";
      }
  }
}

TEST(SynthThreads, VoiceIdsFromManyThreadsAreUnique) {
  Synth sy("gru16k", 16);
  ASSERT_NE(sy.synth, nullptr);
  constexpr int kThreads = 4, kIds = NGS_TSAN ? 500 : 5000;
  std::vector<std::vector<int32_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < kIds; ++k) got[size_t(t)].push_back(ngs_synth_voice_new(sy.synth));
    });
  std::vector<float> out(64);
  for (int b = 0; b < 50; ++b) ASSERT_EQ(ngs_synth_process(sy.synth, nullptr, 0, nullptr, out.data(), 64), NGS_STATUS_OK);
  for (auto &t : threads) t.join();
  std::set<int32_t> ids;
  for (const auto &v : got)
    for (int32_t id : v) {
      EXPECT_GT(id, 0);
      ids.insert(id);
    }
  EXPECT_EQ(ids.size(), size_t(kThreads) * kIds);
}

// ---- a posting thread frozen at an arbitrary point ----------------------------------------

std::atomic<int> g_frozen{0}, g_thaw{0}, g_in_post{0}, g_frozen_in_post{0};

void on_freeze(int) {
  if (g_in_post.load(std::memory_order_relaxed)) g_frozen_in_post.fetch_add(1, std::memory_order_relaxed);
  g_frozen.store(1);
  while (!g_thaw.load()) {
  }
  g_frozen.store(0);
}

TEST(SynthThreads, ProcessCompletesWhileAPosterIsFrozenInsidePost) {
#if NGS_TSAN
  GTEST_SKIP() << "ThreadSanitizer defers signals to its own safe points: the freeze would not land inside post";
#else
  Synth sy("gru16k", 1024);  // rarely full: the freezes land in push, between claiming a slot and publishing it
  ASSERT_NE(sy.synth, nullptr);
  ngs_synth *s = sy.synth;
  struct sigaction sa {};
  sa.sa_handler = on_freeze;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);

  std::atomic<bool> stop{false};
  std::atomic<long> accepted{0};
  const auto zs = ngs::test::random_normal(size_t(sy.info.z_dim), 5);
  std::thread poster([&] {
    const int32_t id = ngs_synth_voice_new(s);
    ngs_synth_event start = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
    start.voice = id;
    start.kind = NGS_SYNTH_VOICE_FREE;
    start.z = zs.data();
    ngs_synth_event latent = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_LATENT);
    latent.voice = id;
    latent.z = zs.data();
    for (long k = 0; !stop.load(std::memory_order_relaxed); ++k) {
      g_in_post.store(1, std::memory_order_relaxed);
      const ngs_status st = ngs_synth_post(s, k % 50 == 0 ? &start : &latent);
      g_in_post.store(0, std::memory_order_relaxed);
      if (st == NGS_STATUS_OK) accepted.fetch_add(1, std::memory_order_relaxed);
    }
  });
  const pthread_t poster_thread = poster.native_handle();
  while (accepted.load() == 0) std::this_thread::yield();

  std::vector<float> out(64);
  const int freezes = 300;
  long blocks = 0;
  for (int i = 0; i < freezes; ++i) {
    g_thaw.store(0);
    ASSERT_EQ(pthread_kill(poster_thread, SIGUSR1), 0);
    while (!g_frozen.load()) {
    }
    // The poster is stopped wherever the signal caught it (usually inside
    // ngs_synth_post, possibly between claiming a queue slot and publishing it): the
    // audio thread must still render, without waiting for it.
    for (int b = 0; b < 3; ++b) {
      ASSERT_EQ(ngs_synth_process(s, nullptr, 0, nullptr, out.data(), 64), NGS_STATUS_OK);
      ++blocks;
    }
    g_thaw.store(1);
    while (g_frozen.load()) {
    }
  }
  stop.store(true);
  poster.join();
  sigaction(SIGUSR1, &old, nullptr);
  const int settle = (4 * sy.info.hop_size + ngs_synth_latency(s)) / 64 + 8;
  for (int b = 0; b < settle; ++b) ASSERT_EQ(ngs_synth_process(s, nullptr, 0, nullptr, out.data(), 64), NGS_STATUS_OK);
  EXPECT_EQ(blocks, 3L * freezes);
  EXPECT_GT(g_frozen_in_post.load(), freezes / 4) << "the freezes rarely landed inside ngs_synth_post";
  ngs_synth_stats st;
  ASSERT_EQ(ngs_synth_get_stats(s, &st), NGS_STATUS_OK);
  EXPECT_EQ(long(st.events_applied + st.events_dropped), accepted.load())
      << "a post interrupted at any point is still applied exactly once";
  EXPECT_EQ(st.events_dropped, 0u);
#endif
}

}  // namespace
