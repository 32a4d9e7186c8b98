// Worker threads for the synth's per-hop work (docs/SYNTH.md "Threads"), safe to drive
// from the audio thread: run() publishes a job with one atomic store and never wakes,
// locks or waits on the kernel. Items are claimed one at a time with a compare-and-swap by
// the caller and by the workers; a worker that is asleep (it naps between polls when
// idle) simply takes no items, so the caller does them all. The caller spins only while
// an item a worker has claimed is still running.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace ngs::synth {

class RtPool {
 public:
  // fn(ctx, item, part): part 0 is the caller, 1 .. size() - 1 the workers.
  using Fn = void (*)(void *ctx, int item, int part);

  explicit RtPool(int n_threads);  // n_threads - 1 workers
  ~RtPool();
  RtPool(const RtPool &) = delete;
  RtPool &operator=(const RtPool &) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Items [0, n) (n < 2^20), each exactly once; returns when all are done.
  void run(Fn fn, void *ctx, int n);

 private:
  bool try_one(int part);
  void worker(int part);

  std::vector<std::thread> workers_;
  // generation (24 bits) | n (20 bits) | next item (20 bits)
  alignas(64) std::atomic<uint64_t> claim_{0};
  alignas(64) std::atomic<int> done_{0};
  alignas(64) std::atomic<bool> stop_{false};
  Fn fn_ = nullptr;
  void *ctx_ = nullptr;
  uint64_t gen_ = 0;
};

}  // namespace ngs::synth
