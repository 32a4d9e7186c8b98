// RtPool (synth_pool.h).
#include "synth_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NGS_PAUSE() _mm_pause()
#else
#define NGS_PAUSE() ((void)0)
#endif

namespace ngs::synth {

namespace {
constexpr uint64_t kMask20 = (uint64_t{1} << 20) - 1;
inline uint64_t pack(uint64_t gen, uint64_t n, uint64_t next) { return gen << 40 | n << 20 | next; }
inline int n_of(uint64_t c) { return static_cast<int>((c >> 20) & kMask20); }
inline int next_of(uint64_t c) { return static_cast<int>(c & kMask20); }
}  // namespace

RtPool::RtPool(int n_threads) {
  for (int p = 1; p < n_threads; ++p) workers_.emplace_back(&RtPool::worker, this, p);
}

RtPool::~RtPool() {
  stop_.store(true, std::memory_order_release);
  for (std::thread &t : workers_) t.join();
}

// Claims and runs one item of the current job; false when none is left.
bool RtPool::try_one(int part) {
  uint64_t c = claim_.load(std::memory_order_acquire);
  while (next_of(c) < n_of(c)) {
    if (claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      // fn_ and ctx_ cannot change before this item is counted done.
      fn_(ctx_, next_of(c), part);
      done_.fetch_add(1, std::memory_order_release);
      return true;
    }
  }
  return false;
}

void RtPool::run(Fn fn, void *ctx, int n) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int i = 0; i < n; ++i) fn(ctx, i, 0);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  done_.store(0, std::memory_order_relaxed);
  gen_ = (gen_ + 1) & 0xffffff;
  claim_.store(pack(gen_, static_cast<uint64_t>(n), 0), std::memory_order_release);
  while (try_one(0)) {
  }
  // Only items that a worker claimed and is still running remain.
  while (done_.load(std::memory_order_acquire) < n) NGS_PAUSE();
}

void RtPool::worker(int part) {
  int idle = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    if (try_one(part)) {
      idle = 0;
      continue;
    }
    // Spin for a while after work (the next hop's job comes soon), then nap: the worker
    // thread may sleep, the audio thread never waits for it.
    if (idle < 40000) ++idle;
    if (idle < 20000) NGS_PAUSE();
    else std::this_thread::sleep_for(std::chrono::microseconds(idle < 40000 ? 20 : 200));
  }
}

}  // namespace ngs::synth
