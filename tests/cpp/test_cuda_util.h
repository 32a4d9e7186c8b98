// Helpers of the CUDA test suites (compiled against the real backend or its emulation):
// device arrays, the skip when no device, random decoder weights.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common.cuh"
#include "cuda/cuda_backend.h"
#include "test_util.h"
#include "weights.h"

namespace ngs::test {

// Skips (never passes) a test when the CUDA backend cannot run here.
#define NGS_REQUIRE_CUDA_DEVICE()                                                \
  do {                                                                           \
    const std::string ngs_reason_ = ::ngs::cuda_unavailable_reason(0);           \
    if (!ngs_reason_.empty()) GTEST_SKIP() << "skipped: " << ngs_reason_;        \
  } while (0)

#define NGS_TEST_CUDA(expr) ASSERT_EQ((expr), cudaSuccess) << #expr << ": " << cudaGetErrorString(expr)

// A device array filled from / read back to host vectors. The device copy starts as NaN.
template <class T>
class DevArray {
 public:
  explicit DevArray(size_t n) : n_(n) {
    if (cudaMalloc(&p_, sizeof(T) * (n ? n : 1)) != cudaSuccess) throw std::runtime_error("cudaMalloc");
    std::vector<unsigned char> nan(sizeof(T) * n, 0xff);
    cudaMemcpy(p_, nan.data(), nan.size(), cudaMemcpyHostToDevice);
  }
  explicit DevArray(const std::vector<T> &v) : DevArray(v.size()) {
    cudaMemcpy(p_, v.data(), sizeof(T) * n_, cudaMemcpyHostToDevice);
  }
  ~DevArray() { cudaFree(p_); }
  DevArray(const DevArray &) = delete;
  DevArray &operator=(const DevArray &) = delete;
  T *get() const { return p_; }
  std::vector<T> host() const {
    std::vector<T> v(n_);
    if (cudaDeviceSynchronize() != cudaSuccess) throw std::runtime_error("sync");
    cudaMemcpy(v.data(), p_, sizeof(T) * n_, cudaMemcpyDeviceToHost);
    return v;
  }

 private:
  T *p_ = nullptr;
  size_t n_ = 0;
};

// The device's sharedMemPerBlockOptin (what the backend opts its kernels in to).
inline size_t smem_optin(int device = 0) {
  int v = 0;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
    throw std::runtime_error("cudaDeviceGetAttribute");
  return static_cast<size_t>(v);
}

// A seed for "fresh" random inputs, printed by the tests that use it.
inline uint32_t fresh_seed() {
  static std::random_device rd;
  return rd();
}

// Random decoder weights (and the config) of a waveform model: z_dim, h_dim, n_linears,
// l_grain (hop = l_grain / 4), pp_ker. Weights ~ U(-1, 1) / sqrt(in), biases U(-0.5, 0.5).
struct RandomDecoder {
  WaveformWeights w;
  std::vector<std::vector<float>> store;

  RandomDecoder(int z_dim, int h_dim, int n_linears, int l_grain, int pp_ker, uint32_t seed,
                bool normalize = true) {
    WaveformConfig &c = w.cfg;
    c.sr = 16000;
    c.l_grain = l_grain;
    c.hop = l_grain / 4;
    c.n_grains = 8;
    c.z_dim = z_dim;
    c.h_dim = h_dim;
    c.n_linears = n_linears;
    c.pp_chans = 1;
    c.pp_ker = pp_ker;
    c.normalize_ola = normalize;
    store.reserve(2 * n_linears + 4);
    for (int l = 0; l <= n_linears; ++l) {
      const int in = l == 0 ? z_dim : h_dim, out = l == n_linears ? c.filter_size() : h_dim;
      Linear lin;
      lin.in = in;
      lin.out = out;
      store.push_back(random_uniform(static_cast<size_t>(in) * out, seed + 7 * l, -1.0f, 1.0f));
      for (auto &x : store.back()) x /= std::sqrt(static_cast<float>(in));
      lin.w = store.back().data();
      store.push_back(random_uniform(out, seed + 7 * l + 1, -0.5f, 0.5f));
      lin.b = store.back().data();
      if (l < n_linears)
        w.dec_lin.push_back(lin);
      else
        w.dec_out = lin;
    }
    store.push_back(random_uniform(pp_ker, seed + 99, -0.3f, 0.3f));
    w.pp_fir = store.back().data();
    w.pp_bias = 0.05f;
  }
};

}  // namespace ngs::test
