// Self tests of the CUDA emulation layer (kernels/emu): a barrier race is visible without
// __syncthreads() and gone with it, divergent barriers and warp-operation misuse are
// reported (never a hang), out-of-bounds shared/global accesses are caught by
// AddressSanitizer, shuffles/votes/atomics/half conversions/launch checks/graphs are right.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "common.cuh"
#include "test_cuda_util.h"

using ngs::test::DevArray;

namespace {

// out[i] = value written by thread (i + 1) % n into shared memory.
template <bool kSync>
__global__ void neighbour_kernel(float *out) {
  NGS_DYNAMIC_SHARED(float, s);
  const int t = threadIdx.x, n = blockDim.x;
  s[t] = 10.0f * t + blockIdx.x;
  if (kSync) __syncthreads();
  out[blockIdx.x * n + t] = s[(t + 1) % n];
}

__global__ void static_shared_kernel(int *out) {
  __shared__ int tile[64];
  const int t = threadIdx.x;
  tile[63 - t] = t * blockIdx.x;
  __syncthreads();
  out[blockIdx.x * 64 + t] = tile[t];
  __syncthreads();  // the next block reuses tile
}

__global__ void divergent_exit_kernel(float *out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void divergent_site_kernel(float *out) {
  if (threadIdx.x & 1)
    __syncthreads();
  else
    __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void shared_oob_kernel(float *out, int n) {
  NGS_DYNAMIC_SHARED(float, s);
  s[threadIdx.x + 1] = 1.0f;  // the last thread writes one past the end
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x % n];
}

__global__ void static_shared_oob_kernel(float *out) {
  __shared__ float tile[64];
  tile[threadIdx.x + 1] = 1.0f;  // the last thread writes one past the end
  __syncthreads();
  out[threadIdx.x] = tile[threadIdx.x];
}

__global__ void global_oob_kernel(float *out) { out[threadIdx.x + 1] = 1.0f; }

__global__ void warp_kernel(int *out) {
  const int lane = threadIdx.x & 31, t = threadIdx.x;
  const int v = 3 * t + 1;
  int r = 0;
  r = __shfl_sync(0xffffffffu, v, (lane + 5) & 31);
  out[t * 8 + 0] = r;
  int sum = v;
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  out[t * 8 + 1] = sum;
  out[t * 8 + 2] = __shfl_down_sync(0xffffffffu, v, 3);
  out[t * 8 + 3] = __shfl_up_sync(0xffffffffu, v, 2);
  out[t * 8 + 4] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
  out[t * 8 + 5] = __all_sync(0xffffffffu, v > 0);
  out[t * 8 + 6] = __any_sync(0xffffffffu, lane == 7 && t > 32);
  out[t * 8 + 7] = static_cast<int>(__shfl_sync(0xffffffffu, static_cast<float>(v) + 0.5f, 0));
}

__global__ void warp_exit_kernel(float *out) {
  if ((threadIdx.x & 31) == 3) return;  // lane 3 exits, the others shuffle with a full mask
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void atomic_kernel(int *counter, float *sum) {
  __shared__ int block_count;
  if (threadIdx.x == 0) block_count = 0;
  __syncthreads();
  atomicAdd(&block_count, 1);
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(counter, block_count);
  atomicAdd(sum, 0.5f);
}

__global__ void add_kernel(float *x, float v) { x[threadIdx.x] += v; }

__global__ void block_index_kernel(int *out) {
  const int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[b * blockDim.x * blockDim.y * blockDim.z + t] = b * 1000 + t;
}

}  // namespace

TEST(CudaEmu, BarrierRaceVisibleWithoutSyncthreads) {
  const int blocks = 3, threads = 64;
  const size_t smem = threads * sizeof(float);
  auto expected = [&](int b, int t) { return 10.0f * ((t + 1) % threads) + b; };
  DevArray<float> racy(blocks * threads), synced(blocks * threads);
  NGS_LAUNCH(neighbour_kernel<false>, dim3(blocks), dim3(threads), smem, nullptr)(racy.get());
  NGS_LAUNCH(neighbour_kernel<true>, dim3(blocks), dim3(threads), smem, nullptr)(synced.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> r = racy.host(), s = synced.host();
  int racy_wrong = 0;
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) {
      EXPECT_EQ(s[b * threads + t], expected(b, t));
      racy_wrong += !(r[b * threads + t] == expected(b, t));
    }
  // Without the barrier a thread reads its neighbour's slot before it was written.
  EXPECT_GT(racy_wrong, 0);
}

TEST(CudaEmu, StaticSharedMemoryPerBlock) {
  DevArray<int> out(4 * 64);
  NGS_LAUNCH(static_shared_kernel, dim3(4), dim3(64), 0, nullptr)(out.get());
  const std::vector<int> o = out.host();
  for (int b = 0; b < 4; ++b)
    for (int t = 0; t < 64; ++t) EXPECT_EQ(o[b * 64 + t], (63 - t) * b);
}

TEST(CudaEmu, DivergentBarrierIsReported) {
  DevArray<float> out(64);
  try {
    NGS_LAUNCH(divergent_exit_kernel, dim3(1), dim3(64), 0, nullptr)(out.get());
    ADD_FAILURE() << "divergent barrier (threads exited) not detected";
  } catch (const ngs_emu::Error &e) {
    EXPECT_NE(std::string(e.what()).find("divergent __syncthreads()"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("divergent_exit_kernel"), std::string::npos) << e.what();
  }
  try {
    NGS_LAUNCH(divergent_site_kernel, dim3(2), dim3(64), 0, nullptr)(out.get());
    ADD_FAILURE() << "barriers at different places not detected";
  } catch (const ngs_emu::Error &e) {
    EXPECT_NE(std::string(e.what()).find("divergent __syncthreads()"), std::string::npos) << e.what();
  }
  // The emulator is usable again after an error.
  DevArray<int> ok(4 * 64);
  NGS_LAUNCH(static_shared_kernel, dim3(4), dim3(64), 0, nullptr)(ok.get());
  EXPECT_EQ(ok.host()[64 + 1], 62);
}

TEST(CudaEmu, WarpOperationMisuseIsReported) {
  DevArray<float> out(64);
  EXPECT_THROW(NGS_LAUNCH(warp_exit_kernel, dim3(1), dim3(64), 0, nullptr)(out.get()),
               ngs_emu::Error);
}

TEST(CudaEmu, OutOfBoundsSharedAccessIsCaught) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  DevArray<float> out(64);
  EXPECT_DEATH(NGS_LAUNCH(shared_oob_kernel, dim3(1), dim3(64), 64 * sizeof(float), nullptr)(
                   out.get(), 64),
               "heap-buffer-overflow");
  // A static array's index is also checked by UBSan's bounds check, which may report first
  // (with UBSAN_OPTIONS=halt_on_error=1): either report proves the access was caught.
  EXPECT_DEATH(NGS_LAUNCH(static_shared_oob_kernel, dim3(1), dim3(64), 0, nullptr)(out.get()),
               "global-buffer-overflow|index 64 out of bounds");
  EXPECT_DEATH(NGS_LAUNCH(global_oob_kernel, dim3(1), dim3(64), 0, nullptr)(out.get()),
               "heap-buffer-overflow");
#else
  GTEST_SKIP() << "skipped: needs AddressSanitizer (configure with -DNGS_SANITIZE=address,undefined)";
#endif
}

TEST(CudaEmu, ShufflesAndVotes) {
  const int threads = 64;
  DevArray<int> out(threads * 8);
  NGS_LAUNCH(warp_kernel, dim3(1), dim3(threads), 0, nullptr)(out.get());
  const std::vector<int> o = out.host();
  for (int t = 0; t < threads; ++t) {
    const int lane = t % 32, w = t / 32;
    auto v = [&](int l) { return 3 * (32 * w + l) + 1; };
    int sum = 0, ballot = 0;
    for (int l = 0; l < 32; ++l) {
      sum += v(l);
      if (l % 3 == 0) ballot |= 1 << l;
    }
    EXPECT_EQ(o[t * 8 + 0], v((lane + 5) % 32)) << t;
    EXPECT_EQ(o[t * 8 + 1], sum) << t;
    EXPECT_EQ(o[t * 8 + 2], lane + 3 < 32 ? v(lane + 3) : v(lane)) << t;
    EXPECT_EQ(o[t * 8 + 3], lane >= 2 ? v(lane - 2) : v(lane)) << t;
    EXPECT_EQ(o[t * 8 + 4], ballot) << t;
    EXPECT_EQ(o[t * 8 + 5], 1) << t;
    EXPECT_EQ(o[t * 8 + 6], w == 1 ? 1 : 0) << t;
    EXPECT_EQ(o[t * 8 + 7], v(0)) << t;
  }
}

TEST(CudaEmu, Atomics) {
  DevArray<int> counter(std::vector<int>{5});
  DevArray<float> sum(std::vector<float>{0.0f});
  NGS_LAUNCH(atomic_kernel, dim3(7), dim3(96), 0, nullptr)(counter.get(), sum.get());
  EXPECT_EQ(counter.host()[0], 5 + 7 * 96);
  EXPECT_EQ(sum.host()[0], 0.5f * 7 * 96);
}

TEST(CudaEmu, GridAndBlockIndices) {
  const dim3 grid(3, 2, 2), block(4, 2, 3);
  DevArray<int> out(12 * 24);
  NGS_LAUNCH(block_index_kernel, grid, block, 0, nullptr)(out.get());
  const std::vector<int> o = out.host();
  for (int b = 0; b < 12; ++b)
    for (int t = 0; t < 24; ++t) EXPECT_EQ(o[b * 24 + t], b * 1000 + t);
}

TEST(CudaEmu, HalfConversions) {
  auto bits = [](float f) { return __float2half(f).bits; };
  EXPECT_EQ(bits(1.0f), 0x3C00);
  EXPECT_EQ(bits(-2.0f), 0xC000);
  EXPECT_EQ(bits(65504.0f), 0x7BFF);
  EXPECT_EQ(bits(1e6f), 0x7C00);
  EXPECT_EQ(bits(0.1f), 0x2E66);
  EXPECT_EQ(bits(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(bits(1.0f + 1.0f / 2048.0f), 0x3C00);   // tie rounds to even
  EXPECT_EQ(bits(1.0f + 3.0f / 2048.0f), 0x3C02);
  const std::vector<float> x = ngs::test::random_normal(10000, 42u, 100.0f);
  for (float f : x) {
    const float r = __half2float(__float2half(f));
    EXPECT_LE(std::fabs(r - f), std::ldexp(std::fabs(f), -11) + 6e-8f) << f;
    EXPECT_EQ(__float2half(r).bits, __float2half(f).bits);
  }
}

TEST(CudaEmu, LaunchConfigurationChecked) {
  DevArray<float> out(64);
  NGS_LAUNCH(add_kernel, dim3(1), dim3(2048), 0, nullptr)(out.get(), 1.0f);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  const size_t big = 64 * 1024;
  NGS_LAUNCH(neighbour_kernel<true>, dim3(1), dim3(64), big, nullptr)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  ASSERT_EQ(cudaFuncSetAttribute(neighbour_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(big)),
            cudaSuccess);
  NGS_LAUNCH(neighbour_kernel<true>, dim3(1), dim3(64), big, nullptr)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(CudaEmu, GraphCaptureDefersAndReplays) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  DevArray<float> x(std::vector<float>(32, 1.0f));
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  NGS_LAUNCH(add_kernel, dim3(1), dim3(32), 0, s)(x.get(), 2.0f);
  EXPECT_EQ(cudaMemset(x.get(), 0, 4), cudaErrorStreamCaptureUnsupported);
  cudaGraph_t g = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
  EXPECT_EQ(x.host()[0], 1.0f);  // captured, not run
  cudaGraphExec_t e = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&e, g, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(x.host()[31], 5.0f);
  cudaGraphExecDestroy(e);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
}
