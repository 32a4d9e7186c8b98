// Helpers of the CUDA benchmarks (bench_cuda_kernels.cpp, bench_cuda_latent.cpp): the skip
// without a usable device, random host vectors, an RAII device array.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "common.cuh"
#include "cuda/cuda_backend.h"

namespace ngs::bench {

// True (and the case reported as "skipped: no device (<reason>)") when no GPU is usable.
inline bool no_device(benchmark::State &state) {
  const std::string reason = ngs::cuda_unavailable_reason(0);
  if (reason.empty()) return false;
  state.SkipWithError(("skipped: no device (" + reason + ")").c_str());
  return true;
}

// n values uniform in [-scale, scale], from seed.
inline std::vector<float> rnd(size_t n, float scale, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto &x : v) x = d(g);
  return v;
}

// A device array, from a host vector (synchronous copy, then a wait for the legacy stream
// so a non-blocking stream may read it) or uninitialised.
template <class T>
struct Dev {
  T *p = nullptr;
  explicit Dev(const std::vector<T> &v) {
    NGS_CUDA_CHECK(cudaMalloc(&p, sizeof(T) * (v.empty() ? 1 : v.size())));
    NGS_CUDA_CHECK(cudaMemcpy(p, v.data(), sizeof(T) * v.size(), cudaMemcpyHostToDevice));
    NGS_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  }
  explicit Dev(size_t n) { NGS_CUDA_CHECK(cudaMalloc(&p, sizeof(T) * (n ? n : 1))); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev &) = delete;
  Dev &operator=(const Dev &) = delete;
};

}  // namespace ngs::bench
