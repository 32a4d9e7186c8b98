#include "cpu/thread_pool.h"

#include <algorithm>

namespace ngs::cpu {

namespace {
void part_range(int n_items, int parts, int part, int *begin, int *end) {
  const int base = n_items / parts, extra = n_items % parts;
  *begin = part * base + std::min(part, extra);
  *end = *begin + base + (part < extra ? 1 : 0);
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back(&ThreadPool::worker, this, i);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto &t : workers_) t.join();
}

int ThreadPool::parts(int n_items, int min_items) const {
  return std::max(1, std::min(size(), n_items / std::max(1, min_items)));
}

void SpinBarrier::wait() {
  const unsigned g = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    generation_.store(g + 1, std::memory_order_release);
    return;
  }
  for (int spin = 0; generation_.load(std::memory_order_acquire) == g; ++spin) {
    if (spin < 256) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::run(Fn fn, void *ctx, int n_items, int min_items) {
  if (n_items <= 0) return;
  const int parts = this->parts(n_items, min_items);
  if (parts == 1) {
    fn(ctx, 0, 0, n_items);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = fn;
    ctx_ = ctx;
    n_items_ = n_items;
    parts_ = parts;
    pending_ = parts - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  int b, e;
  part_range(n_items, parts, 0, &b, &e);
  fn(ctx, 0, b, e);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
}

void ThreadPool::worker(int part) {
  unsigned long seen = 0;
  for (;;) {
    Fn fn;
    void *ctx;
    int n_items, parts;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      fn = fn_;
      ctx = ctx_;
      n_items = n_items_;
      parts = parts_;
    }
    if (part < parts) {
      int b, e;
      part_range(n_items, parts, part, &b, &e);
      fn(ctx, part, b, e);
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace ngs::cpu
