// Lock-free single-producer / single-consumer rings, the only channels between the
// drum machine's audio thread and its other threads (README "Neural drum machine").
// push/pop never allocate, lock, wait or make a system call; one thread may push and
// one (other) thread may pop at the same time. The capacity is fixed at construction
// (a power of two), the storage allocated there.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace ngs_drum {

// A ring of trivially copyable values.
template <typename T>
class SpscRing {
 public:
  explicit SpscRing(size_t capacity_pow2)
      : mask_(capacity_pow2 - 1), slots_(new T[capacity_pow2]) {}
  SpscRing(const SpscRing &) = delete;
  SpscRing &operator=(const SpscRing &) = delete;

  size_t capacity() const { return mask_ + 1; }

  // Producer. false (nothing queued) when the ring is full.
  bool push(const T &v) {
    const uint64_t w = write_.load(std::memory_order_relaxed);
    if (w - read_.load(std::memory_order_acquire) > mask_) return false;
    slots_[w & mask_] = v;
    write_.store(w + 1, std::memory_order_release);
    return true;
  }
  // Producer: true when a push would fail (only the consumer can make room).
  bool full() const {
    return write_.load(std::memory_order_relaxed) - read_.load(std::memory_order_acquire) > mask_;
  }
  // Consumer. false when the ring is empty.
  bool pop(T &v) {
    const uint64_t r = read_.load(std::memory_order_relaxed);
    if (r == write_.load(std::memory_order_acquire)) return false;
    v = slots_[r & mask_];
    read_.store(r + 1, std::memory_order_release);
    return true;
  }

 private:
  const size_t mask_;
  std::unique_ptr<T[]> slots_;
  alignas(64) std::atomic<uint64_t> write_{0};
  alignas(64) std::atomic<uint64_t> read_{0};
};

// A ring of audio samples written and read in blocks (the recording).
class SampleRing {
 public:
  explicit SampleRing(size_t capacity_pow2)
      : mask_(capacity_pow2 - 1), data_(new float[capacity_pow2]) {}
  SampleRing(const SampleRing &) = delete;
  SampleRing &operator=(const SampleRing &) = delete;

  // Producer: writes all n samples, or none when they do not fit (returns false).
  bool write(const float *x, size_t n) {
    const uint64_t w = write_.load(std::memory_order_relaxed);
    if (mask_ + 1 - (w - read_.load(std::memory_order_acquire)) < n) return false;
    for (size_t i = 0; i < n; ++i) data_[(w + i) & mask_] = x[i];
    write_.store(w + n, std::memory_order_release);
    return true;
  }
  // Consumer: up to max samples; returns how many were read.
  size_t read(float *x, size_t max) {
    const uint64_t r = read_.load(std::memory_order_relaxed);
    const uint64_t avail = write_.load(std::memory_order_acquire) - r;
    const size_t n = avail < max ? size_t(avail) : max;
    for (size_t i = 0; i < n; ++i) x[i] = data_[(r + i) & mask_];
    read_.store(r + n, std::memory_order_release);
    return n;
  }

 private:
  const size_t mask_;
  std::unique_ptr<float[]> data_;
  alignas(64) std::atomic<uint64_t> write_{0};
  alignas(64) std::atomic<uint64_t> read_{0};
};

}  // namespace ngs_drum
