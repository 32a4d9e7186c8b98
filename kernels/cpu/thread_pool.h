// A small persistent thread pool, one per context, owned by its session (backend.h): every
// CPU stage of the context (encoder, sequence VAE, decoder stages; the CUDA session's CPU
// stages) runs on it. n_threads - 1 workers plus the calling thread run one static split
// of [0, n_items). run() blocks until every part is done; it never allocates. Not
// reentrant: one run() at a time (one session per context).
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace ngs::cpu {

class ThreadPool {
 public:
  // fn(ctx, part, begin, end) handles items [begin, end) as part `part` (0 = caller).
  using Fn = void (*)(void *ctx, int part, int begin, int end);

  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Splits n_items into at most size() contiguous parts of at least min_items each.
  void run(Fn fn, void *ctx, int n_items, int min_items = 1);
  // The number of parts run() uses for these arguments (every part runs on its own
  // thread at the same time, so parts may wait for each other: SpinBarrier).
  int parts(int n_items, int min_items = 1) const;

 private:
  void worker(int part);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  unsigned long generation_ = 0;
  int pending_ = 0, parts_ = 0, n_items_ = 0;
  Fn fn_ = nullptr;
  void *ctx_ = nullptr;
  bool stop_ = false;
};

// A reusable barrier for the parts of one run() (no locks, no allocation): spins, then
// yields to other threads (the machine may be shared).
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait();

 private:
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> generation_{0};
  int n_;
};

}  // namespace ngs::cpu
