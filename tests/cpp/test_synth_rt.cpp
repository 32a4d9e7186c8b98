// Real-time safety of ngs_synth_process and ngs_synth_post (issue 11, part 5), proven by
// interposition (rt_interpose.cpp): no allocation, lock, wait or system call inside them.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <mutex>
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
      {"operator new", [] { std::vector<float> v(100); v[1] = 2; }},
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

}  // namespace
