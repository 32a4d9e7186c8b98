// Real-time safety of ngs_synth_process and ngs_synth_post (issue 11, part 5), proven by
// interposition (rt_interpose.cpp): no allocation, lock, wait or system call inside them.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xmmintrin.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "ngs/ngs.h"
#include "rt_interpose.h"
#include "test_util.h"

namespace {

// Counts the interposed calls f() makes on this thread inside a guarded section.
template <class F>
long violations_of(F &&f) {
  ngs::rt::reset();
  {
    ngs::rt::Section s;
    f();
  }
  return ngs::rt::violations();
}

// ---- the harness itself -----------------------------------------------------------------

TEST(RtHarness, IsActive) { EXPECT_TRUE(ngs::rt::active()); }

TEST(RtHarness, CatchesEachKindOfCall) {
  // A test of the test: each deliberate call inside a guarded section is seen and named.
  struct Probe {
    const char *name;
    void (*call)();
  };
  static std::mutex mu;
  static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  const Probe probes[] = {
      {"malloc", [] { void *volatile p = std::malloc(77); std::free(p); }},
      {"calloc", [] { void *volatile p = std::calloc(3, 7); std::free(p); }},
      {"realloc", [] { void *volatile none = nullptr; void *volatile p = std::realloc(none, 9); std::free(p); }},
      {"posix_memalign", [] { void *p = nullptr; if (posix_memalign(&p, 64, 64) == 0) std::free(p); }},
      {"aligned_alloc", [] { void *volatile p = aligned_alloc(64, 128); std::free(p); }},
      // (a std::vector whose memory does not escape may be elided by clang: its
      // new-expression is allowed to be removed; a call through a volatile pointer is not)
      {"operator new", [] { void *(*volatile op_new)(std::size_t) = &::operator new;
                            void *p = op_new(400); ::operator delete(p); }},
      {"operator new (aligned)", [] { struct alignas(128) A { float x[64]; }; A *volatile a = new A; delete a; }},
      {"pthread_mutex_lock", [] { std::lock_guard<std::mutex> l(mu); }},
      {"pthread_cond_signal", [] { pthread_cond_signal(&cv); }},
      {"pthread_cond_broadcast", [] { pthread_cond_broadcast(&cv); }},
      {"write", [] { (void)!write(-1, "", 0); }},
      {"nanosleep", [] { timespec t{0, 1}; nanosleep(&t, nullptr); }},
      {"usleep", [] { usleep(0); }},
      {"sched_yield", [] { sched_yield(); }},
      {"syscall", [] { (void)syscall(SYS_gettid); }},
  };
  for (const Probe &p : probes) {
    EXPECT_GE(violations_of(p.call), 1) << p.name;
    EXPECT_NE(ngs::rt::report().find(p.name), std::string::npos) << p.name << ": " << ngs::rt::report();
  }
}

TEST(RtHarness, OnlyTheGuardedThreadAndSectionCount) {
  ngs::rt::reset();
  { void *volatile p = std::malloc(10); std::free(p); }
  EXPECT_EQ(ngs::rt::violations(), 0) << "outside a section";
  std::atomic<bool> go{false}, done{false};
  std::thread other([&] {
    while (!go.load()) {
    }
    void *volatile p = std::malloc(10);
    std::free(p);
    done.store(true);
  });
  {
    ngs::rt::Section s;
    go.store(true);
    while (!done.load()) {
    }
  }
  other.join();
  EXPECT_EQ(ngs::rt::violations(), 0) << "another thread's allocation while this one is guarded";
  EXPECT_EQ(violations_of([] {}), 0);
}

TEST(RtHarness, SeesCallsMadeInsideTheSharedLibrary) {
  // The library is linked as a host links it (libngs.so): its allocations reach the
  // interposer through the PLT. Model and context set-up allocate by design.
  const std::string path = ngs::test::fixture_path("gru16k", "model.safetensors");
  ngs_model *m = nullptr;
  ngs_context *c = nullptr;
  const long n = violations_of([&] {
    if (ngs_model_init_from_file(path.c_str(), ngs_model_default_params(), &m) == NGS_STATUS_OK)
      ngs_context_init(m, ngs_context_default_params(), &c);
  });
  ASSERT_NE(c, nullptr) << ngs_last_error();
  EXPECT_GT(n, 0) << "context set-up inside libngs.so went unseen";
  EXPECT_NE(ngs::rt::report().find("operator new"), std::string::npos) << ngs::rt::report();
  ngs_context_free(c);
  ngs_model_free(m);
}

// ---- the synth ------------------------------------------------------------------------

// A scripted event: at absolute host frame `at`, either passed to ngs_synth_process in the
// block holding that frame (direct) or posted before that block (post). z points into the
// script's own storage.
struct Scripted {
  uint64_t at;
  ngs_synth_event e;
  bool post;
  bool bad;  // expected to be dropped and counted
};

struct Config {
  std::string model;    // fixture name, or a path
  int rate = 0;         // host rate, 0 = the model's
  int block = 64;       // frames per call; 0 = random sizes in 1..333
  int threads = 1;
  int spread = 0;
  int max_voices = 16;
  int queue_size = 256;
  bool input = true;    // pass an input buffer (resynthesis voices)
};

std::string describe(const Config &c) {
  return c.model + " rate " + std::to_string(c.rate) + " block " +
         (c.block ? std::to_string(c.block) : std::string("random")) + " threads " +
         std::to_string(c.threads) + " spread " + std::to_string(c.spread) + " voices " +
         std::to_string(c.max_voices) + " queue " + std::to_string(c.queue_size);
}

std::string model_path(const std::string &name) {
  return name.find('/') != std::string::npos ? std::string(NGS_SOURCE_DIR) + "/" + name
                                             : ngs::test::fixture_path(name, "model.safetensors");
}

// What a run saw, for the non-vacuity checks.
struct RunResult {
  long violations = 0;
  std::string report;
  ngs_synth_stats stats{};
  long post_capacity = 0;  // posts refused with NGS_STATUS_CAPACITY
  long post_rejected_bad = 0;  // bad events refused by ngs_synth_post (INVALID_ARGUMENT)
  long unexpected_status = 0;  // any other non-OK status (no gtest macro runs in the section)
  long expected_bad = 0;
  long good_events = 0;
  double energy = 0;
  size_t nonfinite = 0;
  int voices_started_in_section = 0;
};

// Renders a script exercising every event kind, bad events, stealing (when max_voices is
// small), a queue overflow burst (when queue_size is small), reset, and checks that no
// synth call made inside the guarded section allocates, locks, waits or calls the system.
RunResult run_script(const Config &cfg) {
  RunResult r;
  ngs_model *m = nullptr;
  EXPECT_EQ(ngs_model_init_from_file(model_path(cfg.model).c_str(), ngs_model_default_params(), &m),
            NGS_STATUS_OK)
      << ngs_last_error();
  if (m == nullptr) return r;
  ngs_model_info info;
  ngs_model_get_info(m, &info);
  ngs_synth_params sp = ngs_synth_default_params();
  sp.sample_rate = cfg.rate;
  sp.max_block = cfg.block ? cfg.block : 333;
  sp.max_voices = cfg.max_voices;
  sp.n_threads = cfg.threads;
  sp.spread = cfg.spread;
  sp.queue_size = cfg.queue_size;
  sp.seed = 11;
  ngs_synth *s = nullptr;
  EXPECT_EQ(ngs_synth_init(m, sp, &s), NGS_STATUS_OK) << ngs_last_error();
  if (s == nullptr) {
    ngs_model_free(m);
    return r;
  }
  const int rate = cfg.rate ? cfg.rate : info.sample_rate;
  const uint64_t H = std::max<uint64_t>(1, uint64_t(info.hop_size) * uint64_t(rate) / uint64_t(info.sample_rate));
  const uint64_t L = uint64_t(info.sample_length) * uint64_t(rate) / uint64_t(info.sample_rate);
  const int zd = info.z_dim;
  const bool shots = info.has_latent_model != 0;
  const int n_cls = info.n_classes;
  const int cls_first = n_cls > 0 ? 0 : NGS_CLASS_NONE, cls_last = n_cls > 0 ? n_cls - 1 : NGS_CLASS_NONE;

  // Latents (fresh random), and a NaN one.
  std::vector<std::vector<float>> zs;
  for (uint32_t k = 0; k < 4; ++k) zs.push_back(ngs::test::random_normal(size_t(zd), 100 + k));
  std::vector<float> znan = zs[0];
  znan[size_t(zd) / 2] = std::nanf("");

  std::vector<Scripted> script;
  auto add = [&](uint64_t at, ngs_synth_event e, bool post, bool bad = false) {
    script.push_back({at, e, post, bad});
  };
  auto ev = [](ngs_synth_event_type t, int32_t voice) {
    ngs_synth_event e = ngs_synth_default_event(t);
    e.voice = voice;
    return e;
  };
  const int32_t A = ngs_synth_voice_new(s), B = ngs_synth_voice_new(s), C = ngs_synth_voice_new(s),
                R = ngs_synth_voice_new(s);
  int32_t P[5];
  for (int32_t &p : P) p = ngs_synth_voice_new(s);
  auto start_shot = [&](int32_t v, int cls) {
    ngs_synth_event e = ev(NGS_SYNTH_EVENT_START, v);
    e.kind = NGS_SYNTH_VOICE_ONE_SHOT;
    e.class_index = cls;
    return e;
  };
  if (shots) {
    add(3, start_shot(A, cls_first), false);
    add(H / 2, start_shot(B, cls_last), true);
  }
  {
    ngs_synth_event e = ev(NGS_SYNTH_EVENT_START, C);
    e.kind = NGS_SYNTH_VOICE_FREE;
    e.z = zs[0].data();
    e.gain = 0.7f;
    e.fade = 32;
    add(H, e, false);
    e.voice = ngs_synth_voice_new(s);
    e.z = znan.data();
    add(H + 3, e, false, true);  // NaN latent
  }
  for (int k = 0; k < 5; ++k) {
    ngs_synth_event e = ev(NGS_SYNTH_EVENT_START, P[k]);
    e.kind = NGS_SYNTH_VOICE_FREE;
    e.use_path = 1;
    e.path.kind = static_cast<ngs_path_kind>(k);
    e.path.seed = 3;
    e.path_grains = 6;
    add(2 * H + uint64_t(k), e, k % 2 == 0);
  }
  {
    ngs_synth_event e = ev(NGS_SYNTH_EVENT_SET_LATENT, C);
    e.z = znan.data();
    add(2 * H + 1, e, true, true);  // NaN latent, posted
    ngs_synth_event r0 = ev(NGS_SYNTH_EVENT_START, R);
    r0.kind = NGS_SYNTH_VOICE_RESYNTH;
    add(2 * H + 5, r0, false);
  }
  if (shots) {
    ngs_synth_event e = start_shot(ngs_synth_voice_new(s), 99);
    add(3 * H, e, false, true);  // unknown class
  }
  {
    ngs_synth_event e = ev(NGS_SYNTH_EVENT_SET_LATENT, C);
    e.z = zs[1].data();
    e.glide = 3;
    add(3 * H + 1, e, false);
    e.z = zs[2].data();
    e.glide = 0.5f;
    add(3 * H + 2, e, true);
  }
  {
    ngs_synth_event g = ev(NGS_SYNTH_EVENT_SET_GAIN, shots ? A : C);
    g.gain = 0.5f;
    g.fade = 64;
    add(4 * H, g, false);
    g = ev(NGS_SYNTH_EVENT_SET_GAIN, R);
    g.gain = 0.3f;
    g.fade = 0;
    add(4 * H, g, true);
    ngs_synth_event bad_type = ev(static_cast<ngs_synth_event_type>(77), C);
    add(4 * H + 1, bad_type, false, true);  // unknown type
    ngs_synth_event bad_kind = ev(NGS_SYNTH_EVENT_START, ngs_synth_voice_new(s));
    bad_kind.kind = static_cast<ngs_synth_voice_kind>(9);
    add(4 * H + 2, bad_kind, true, true);  // unknown kind, posted
    ngs_synth_event bad_voice = ev(NGS_SYNTH_EVENT_SET_GAIN, -5);
    add(4 * H + 3, bad_voice, false, true);  // invalid voice id
    bad_voice.voice = 0;
    add(4 * H + 4, bad_voice, true, true);  // invalid voice id, posted
  }
  if (shots) {
    ngs_synth_event e = ev(NGS_SYNTH_EVENT_STOP, B);
    e.fade = 50;
    add(5 * H, e, false);
  }
  add(6 * H, ev(NGS_SYNTH_EVENT_RELEASE, C), true);
  add(6 * H + 7, ev(NGS_SYNTH_EVENT_RELEASE, R), false);
  // A burst of one-shots (or free voices): steals voices when max_voices is small.
  for (int k = 0; k < 8; ++k) {
    ngs_synth_event e;
    if (shots) {
      e = start_shot(ngs_synth_voice_new(s), n_cls > 0 ? k % n_cls : NGS_CLASS_NONE);
      e.seed = 40 + uint64_t(k);
      e.sequence = uint32_t(k);
      e.temperature = 0.5f + 0.1f * float(k);
    } else {
      e = ev(NGS_SYNTH_EVENT_START, ngs_synth_voice_new(s));
      e.kind = NGS_SYNTH_VOICE_FREE;
      e.z = zs[3].data();
    }
    add(L / 2 + uint64_t(k) * (H / 4 + 1), e, k % 3 == 0);
  }
  {
    ngs_synth_event e = ev(NGS_SYNTH_EVENT_STOP_ALL, 0);
    e.fade = 30;
    add(L, e, true);
    ngs_synth_event f = ev(NGS_SYNTH_EVENT_START, ngs_synth_voice_new(s));
    f.kind = NGS_SYNTH_VOICE_FREE;
    f.z = zs[3].data();
    add(L + H, f, false);
    add(L + 2 * H, ev(NGS_SYNTH_EVENT_STOP, f.voice), false);
    add(L + 2 * H + 1, ev(NGS_SYNTH_EVENT_STOP_ALL, 0), false);
  }
  std::stable_sort(script.begin(), script.end(),
                   [](const Scripted &a, const Scripted &b) { return a.at < b.at; });
  for (const Scripted &x : script) (x.bad ? r.expected_bad : r.good_events) += 1;

  const uint64_t total = 2 * L + 3 * H;
  const uint64_t reset_at = 2 * L;
  const int max_block = sp.max_block;
  const auto input = ngs::test::random_uniform(size_t(total) + size_t(max_block), 7, -0.5f, 0.5f);
  std::vector<float> out(size_t(total) + size_t(max_block));
  ngs::test::poison(out);
  std::vector<ngs_synth_event> block_events(script.size() + 8);
  std::mt19937 sizes(cfg.block + 17);
  // Block sizes decided beforehand (nothing in the section may allocate, and the test's
  // own calls are in it).
  std::vector<int> block_sizes;
  for (uint64_t f = 0; f < total;) {
    int n = cfg.block ? cfg.block : int(1 + sizes() % 333);
    block_sizes.push_back(n);
    f += uint64_t(n);
  }
  std::vector<int32_t> late_ids(block_sizes.size());
  std::vector<float> spare(size_t(max_block) + 1);
  bool did_burst = false, did_reset = false;

  ngs::rt::reset();
  size_t next = 0;
  uint64_t frame = 0;
  for (size_t b = 0; b < block_sizes.size(); ++b) {
    const int n = block_sizes[b];
    ngs::rt::Section guard;
    // Posted events due by this block's start, then the block's own.
    int n_direct = 0;
    while (next < script.size() && script[next].at < frame + uint64_t(n)) {
      Scripted &x = script[next++];
      if (x.post) {
        const ngs_status st = ngs_synth_post(s, &x.e);
        if (st == NGS_STATUS_CAPACITY) ++r.post_capacity;
        else if (st == NGS_STATUS_INVALID_ARGUMENT && x.bad) ++r.post_rejected_bad;  // dropped at once
        else if (st != NGS_STATUS_OK) ++r.unexpected_status;
      } else {
        block_events[size_t(n_direct)] = x.e;
        block_events[size_t(n_direct)].frame = uint32_t(x.at - frame);
        ++n_direct;
      }
    }
    // Some blocks: an event at an offset outside the block (dropped), or two events out of
    // order (one dropped).
    if (b % 97 == 5) {
      ngs_synth_event e = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_GAIN);
      e.voice = C;
      e.frame = uint32_t(n);
      block_events[size_t(n_direct++)] = e;
      ++r.expected_bad;
    }
    if (b % 89 == 3 && n >= 6) {
      ngs_synth_event e = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_GAIN);
      e.voice = C;
      e.frame = 5;
      block_events[size_t(n_direct++)] = e;
      e.frame = 2;
      block_events[size_t(n_direct++)] = e;
      ++r.expected_bad;
    }
    // A burst of posts beyond the queue's size (overflow when queue_size is small): each
    // a valid SET_GAIN of the free voice C, or its unknown-voice drop once it has ended.
    if (!did_burst && frame >= L / 4) {
      did_burst = true;
      for (int k = 0; k < 40; ++k) {
        ngs_synth_event e = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_GAIN);
        e.voice = C;
        e.gain = 0.7f;
        const ngs_status st = ngs_synth_post(s, &e);
        if (st == NGS_STATUS_CAPACITY) ++r.post_capacity;
        else if (st != NGS_STATUS_OK) ++r.unexpected_status;
      }
    }
    late_ids[b] = ngs_synth_voice_new(s);
    if (b == 2) {
      // The error paths (they set the thread's error message) on the audio thread too.
      if (ngs_synth_post(s, nullptr) != NGS_STATUS_INVALID_ARGUMENT) ++r.unexpected_status;
      if (ngs_synth_process(s, nullptr, 0, nullptr, nullptr, n) != NGS_STATUS_INVALID_ARGUMENT) ++r.unexpected_status;
      if (ngs_synth_process(s, nullptr, 0, nullptr, spare.data(), max_block + 1) != NGS_STATUS_INVALID_ARGUMENT)
        ++r.unexpected_status;
      if (ngs_synth_process(s, nullptr, 0, nullptr, spare.data(), 0) != NGS_STATUS_INVALID_ARGUMENT)
        ++r.unexpected_status;
    }
    if (!did_reset && frame >= reset_at) {
      did_reset = true;
      if (ngs_synth_reset(s) != NGS_STATUS_OK) ++r.unexpected_status;
    }
    const float *in = cfg.input ? input.data() + frame : nullptr;
    if (ngs_synth_process(s, n_direct ? block_events.data() : nullptr, n_direct, in, out.data() + frame, n) !=
        NGS_STATUS_OK)
      ++r.unexpected_status;
    if (ngs_synth_get_stats(s, &r.stats) != NGS_STATUS_OK) ++r.unexpected_status;
    frame += uint64_t(n);
  }
  r.violations = ngs::rt::violations();
  r.report = ngs::rt::report();
  ngs_synth_get_stats(s, &r.stats);
  for (uint64_t i = 0; i < frame; ++i) r.energy += double(out[i]) * double(out[i]);
  r.nonfinite = ngs::test::count_nonfinite(out.data(), size_t(frame));
  ngs_synth_free(s);
  ngs_model_free(m);
  return r;
}

void expect_clean(const Config &c, const RunResult &r) {
  EXPECT_EQ(r.violations, 0) << describe(c) << ": " << r.report;
  EXPECT_EQ(r.unexpected_status, 0) << describe(c);
  EXPECT_EQ(r.nonfinite, 0u) << describe(c);
  EXPECT_GT(r.energy, 0.0) << describe(c) << ": the script made no sound (the test would prove nothing)";
  EXPECT_GT(r.stats.grains, 0u) << describe(c);
  EXPECT_GE(long(r.stats.events_dropped), r.expected_bad) << describe(c);
  EXPECT_GT(long(r.stats.events_applied), r.good_events / 2) << describe(c);
}

TEST(SynthRt, EveryBlockSizeEveryEventKind) {
  for (const char *model : {"gru16k", "lstm22k", "noola"}) {
    for (int block : {1, 7, 64, 333, 4096, 0}) {
      Config c;
      c.model = model;
      c.block = block;
      const RunResult r = run_script(c);
      expect_clean(c, r);
    }
  }
}

TEST(SynthRt, VoiceStealingAndQueueOverflow) {
  for (const char *model : {"lstm22k", "gru16k"}) {
    for (int block : {1, 64, 333}) {
      Config c;
      c.model = model;
      c.block = block;
      c.max_voices = 2;
      c.queue_size = 4;
      const RunResult r = run_script(c);
      expect_clean(c, r);
      EXPECT_GT(r.stats.voices_stolen, 0u) << describe(c) << ": no voice was stolen";
      EXPECT_GT(r.post_capacity, 0) << describe(c) << ": the queue never overflowed";
      EXPECT_EQ(long(r.stats.queue_overflows), r.post_capacity) << describe(c);
    }
  }
}

TEST(SynthRt, ResampledRatesThreadsSpreadAndSilentInput) {
  std::vector<Config> cs;
  for (int rate : {8000, 44100, 48000, 192000}) {
    for (int block : {1, 64, 333}) {
      Config c;
      c.model = "lstm22k";
      c.rate = rate;
      c.block = rate == 192000 && block == 1 ? 7 : block;
      cs.push_back(c);
    }
  }
  for (int block : {1, 64, 4096}) {
    Config c;
    c.model = "lstm22k";
    c.block = block;
    c.spread = 1;
    cs.push_back(c);
    c.spread = 0;
    c.threads = 2;
    cs.push_back(c);
  }
  Config silent;
  silent.model = "gru16k";
  silent.input = false;
  cs.push_back(silent);
  for (const Config &c : cs) expect_clean(c, run_script(c));
}

TEST(SynthRt, BundledDrumModel) {
  Config c;
  c.model = "models/drums.safetensors";
  for (int block : {64, 1024}) {
    c.block = block;
    expect_clean(c, run_script(c));
  }
  c.block = 64;
  c.rate = 48000;
  expect_clean(c, run_script(c));
}

// ---- denormals ------------------------------------------------------------------------

constexpr unsigned kFtzDaz = 0x8040;  // MXCSR flush-to-zero (bit 15) and denormals-are-zero (bit 6)

// Renders a free voice of the given gain for a few hops; returns the output.
std::vector<float> render_gain(ngs_synth *s, const ngs_model_info &info, float gain, unsigned *mxcsr_after,
                               unsigned mxcsr_before) {
  const auto z = ngs::test::random_normal(size_t(info.z_dim), 77);
  ngs_synth_event e = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
  e.kind = NGS_SYNTH_VOICE_FREE;
  e.voice = ngs_synth_voice_new(s);
  e.z = z.data();
  e.gain = gain;
  e.fade = 0;
  const int n = info.hop_size;
  std::vector<float> out(size_t(8 * n));
  ngs::test::poison(out);
  EXPECT_EQ(ngs_synth_reset(s), NGS_STATUS_OK);
  for (int b = 0; b < 8; ++b) {
    _mm_setcsr(mxcsr_before);
    const ngs_status st = ngs_synth_process(s, b == 0 ? &e : nullptr, b == 0 ? 1 : 0, nullptr, out.data() + b * n, n);
    *mxcsr_after = _mm_getcsr();
    EXPECT_EQ(st, NGS_STATUS_OK);
  }
  return out;
}

TEST(SynthRt, DenormalsAreFlushedInsideProcessAndTheCallersModeIsRestored) {
  ngs_model *m = nullptr;
  ASSERT_EQ(ngs_model_init_from_file(ngs::test::fixture_path("gru16k", "model.safetensors").c_str(),
                                     ngs_model_default_params(), &m),
            NGS_STATUS_OK);
  ngs_model_info info;
  ngs_model_get_info(m, &info);
  ngs_synth *s = nullptr;
  ASSERT_EQ(ngs_synth_init(m, ngs_synth_default_params(), &s), NGS_STATUS_OK) << ngs_last_error();
  const unsigned saved = _mm_getcsr();
  for (unsigned caller : {saved & ~kFtzDaz, saved | kFtzDaz}) {
    unsigned after = 0;
    // A normal tiny gain: the voice plays (values around 1e-31, normal floats).
    const auto loud = render_gain(s, info, 1e-30f, &after, caller);
    EXPECT_EQ(after, caller) << "MXCSR of the caller not restored";
    size_t nonzero = 0;
    for (float v : loud) nonzero += v != 0.0f;
    EXPECT_GT(nonzero, loud.size() / 4) << "the free voice is silent: the denormal check would prove nothing";
    // A subnormal gain: every product is subnormal, so inside process (FTZ and DAZ) the
    // output is exactly zero whatever the caller's mode.
    const float tiny = 1e-39f;
    ASSERT_EQ(std::fpclassify(tiny), FP_SUBNORMAL);
    const auto flushed = render_gain(s, info, tiny, &after, caller);
    EXPECT_EQ(after, caller);
    size_t subnormal = 0, nonzero_tiny = 0;
    for (float v : flushed) {
      subnormal += std::fpclassify(v) == FP_SUBNORMAL;
      nonzero_tiny += v != 0.0f;
    }
    EXPECT_EQ(subnormal, 0u) << "caller MXCSR " << std::hex << caller;
    EXPECT_EQ(nonzero_tiny, 0u) << "caller MXCSR " << std::hex << caller;
  }
  _mm_setcsr(saved);
  ngs_synth_free(s);
  ngs_model_free(m);
}

// ngs_synth_get_stats is callable from any thread, the audio thread included (a host reads
// it after each block), and its normal path is real-time safe (run_script above). Its
// NULL-argument error path is too: a fixed message, no exception machinery (the first
// implementation threw an ngs::Error, an allocated exception and message).
TEST(SynthRt, GetStatsErrorPathIsRealTimeSafe) {
  ngs_model *m = nullptr;
  ASSERT_EQ(ngs_model_init_from_file(ngs::test::fixture_path("gru16k", "model.safetensors").c_str(),
                                     ngs_model_default_params(), &m),
            NGS_STATUS_OK);
  ngs_synth *s = nullptr;
  ASSERT_EQ(ngs_synth_init(m, ngs_synth_default_params(), &s), NGS_STATUS_OK);
  ngs_status st = NGS_STATUS_OK;
  const long v = violations_of([&] { st = ngs_synth_get_stats(s, nullptr); });
  EXPECT_EQ(st, NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(v, 0) << ngs::rt::report();
  ngs_synth_stats stats;
  ngs_status st2 = NGS_STATUS_OK;
  const long v2 = violations_of([&] { st2 = ngs_synth_get_stats(nullptr, &stats); });
  EXPECT_EQ(st2, NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(v2, 0) << ngs::rt::report();
  EXPECT_NE(std::string(ngs_last_error()).find("ngs_synth_get_stats"), std::string::npos);
  ngs_synth_free(s);
  ngs_model_free(m);
}

}  // namespace
