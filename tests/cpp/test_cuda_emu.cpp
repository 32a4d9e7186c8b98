// Self tests of the CUDA emulation layer (kernels/emu): a barrier race is visible without
// __syncthreads() and gone with it, races between lanes and between blocks change the
// result under the reversed and shuffled orders, shared and device memory start poisoned
// and nothing persists between blocks, launches follow the emulated architecture's limits
// and __launch_bounds__, unsafe calls during a capture are rejected, pageable copies are
// not ordered with non-blocking streams, divergent barriers and warp-operation misuse are
// reported (never a hang), out-of-bounds shared/global accesses are caught by
// AddressSanitizer, shuffles/votes/atomics/half conversions/launch checks/graphs are right.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <thread>
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
  NGS_STATIC_SHARED(int, tile, 64);
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
  NGS_STATIC_SHARED(float, tile, 64);
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
  NGS_STATIC_SHARED(int, block_count, 1);
  if (threadIdx.x == 0) block_count[0] = 0;
  __syncthreads();
  atomicAdd(block_count, 1);
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(counter, block_count[0]);
  atomicAdd(sum, 0.5f);
}

__global__ void add_kernel(float *x, float v) { x[threadIdx.x] += v; }

__global__ void block_index_kernel(int *out) {
  const int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[b * blockDim.x * blockDim.y * blockDim.z + t] = b * 1000 + t;
}

// Racy between lanes: thread t reads the slot of thread t - 1 without a barrier. Runs
// right only when the lanes happen to run in index order.
__global__ void lane_race_kernel(float *out) {
  NGS_DYNAMIC_SHARED(float, s);
  const int t = threadIdx.x;
  s[t] = 1.0f + t;
  out[t] = t == 0 ? 1.0f : s[t - 1] + 1.0f;
}

// Racy between blocks: block b reads what block b - 1 wrote to global memory.
__global__ void block_race_kernel(float *x) {
  const int b = blockIdx.x;
  if (threadIdx.x == 0) x[b + 1] = x[b] + 1.0f;
}

// Block 0 writes the static shared array, every block reads it: a block sees only what it
// wrote itself (poison otherwise), never a value left by an earlier block or launch.
__global__ void shared_persist_kernel(int *out) {
  NGS_STATIC_SHARED(int, tile, 64);
  const int t = threadIdx.x;
  if (blockIdx.x == 0) tile[t] = 7 + t;
  __syncthreads();
  out[blockIdx.x * 64 + t] = tile[t];
}

__global__ void __launch_bounds__(128) bounded_kernel(float *out) {
  NGS_KERNEL_BOUNDS(128);
  out[threadIdx.x] = 3.0f;
}

// Touches the first and last float of its dynamic shared memory (launch-limit tests).
__global__ void smem_limit_kernel(float *out, int n) {
  NGS_DYNAMIC_SHARED(float, s);
  if (threadIdx.x == 0) s[0] = s[n - 1] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[0] + s[n - 1];
}

__global__ void copy_kernel(const float *in, float *out) { out[threadIdx.x] = in[threadIdx.x]; }

// Restores the emulation's order mode and architecture at the end of a test.
struct EmuModeGuard {
  ngs_emu::Order order = ngs_emu::order();
  int arch = ngs_emu::arch();
  ~EmuModeGuard() {
    ngs_emu::set_order(order);
    ngs_emu::set_arch(arch);
  }
};

}  // namespace

TEST(CudaEmu, LaneRaceChangesResultUnderReversedAndShuffledOrder) {
  EmuModeGuard guard;
  const int threads = 64;
  auto wrong = [&](ngs_emu::Order o) {
    ngs_emu::set_order(o);
    DevArray<float> out(threads);
    NGS_LAUNCH(lane_race_kernel, dim3(1), dim3(threads), threads * sizeof(float), nullptr)(out.get());
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<float> o_ = out.host();
    int n = 0;
    for (int t = 0; t < threads; ++t) n += !(o_[t] == 1.0f + t);
    return n;
  };
  EXPECT_EQ(wrong(ngs_emu::Order::kForward), 0);  // index order hides the race
  EXPECT_EQ(wrong(ngs_emu::Order::kReverse), threads - 1);
  EXPECT_GT(wrong(ngs_emu::Order::kShuffle), 0) << "seed " << ngs_emu::shuffle_seed();
}

TEST(CudaEmu, BlockRaceChangesResultUnderReversedAndShuffledOrder) {
  EmuModeGuard guard;
  const int blocks = 40;
  auto wrong = [&](ngs_emu::Order o) {
    ngs_emu::set_order(o);
    std::vector<float> init(blocks + 1, 0.0f);
    DevArray<float> x(init);
    NGS_LAUNCH(block_race_kernel, dim3(blocks), dim3(32), 0, nullptr)(x.get());
    const std::vector<float> v = x.host();
    int n = 0;
    for (int b = 0; b <= blocks; ++b) n += !(v[b] == static_cast<float>(b));
    return n;
  };
  EXPECT_EQ(wrong(ngs_emu::Order::kForward), 0);
  EXPECT_GT(wrong(ngs_emu::Order::kReverse), blocks / 2);
  EXPECT_GT(wrong(ngs_emu::Order::kShuffle), 0) << "seed " << ngs_emu::shuffle_seed();
}

TEST(CudaEmu, OrderModesKeepCorrectKernelsCorrect) {
  EmuModeGuard guard;
  for (ngs_emu::Order o : {ngs_emu::Order::kForward, ngs_emu::Order::kReverse,
                           ngs_emu::Order::kShuffle}) {
    ngs_emu::set_order(o);
    SCOPED_TRACE(ngs_emu::order_name(o));
    DevArray<int> out(4 * 64);
    NGS_LAUNCH(static_shared_kernel, dim3(4), dim3(64), 0, nullptr)(out.get());
    const std::vector<int> v = out.host();
    for (int b = 0; b < 4; ++b)
      for (int t = 0; t < 64; ++t) EXPECT_EQ(v[b * 64 + t], (63 - t) * b);
    DevArray<int> w(64 * 8);
    NGS_LAUNCH(warp_kernel, dim3(1), dim3(64), 0, nullptr)(w.get());
    EXPECT_EQ(w.host()[8 * 33 + 1], [] {
      int sum = 0;
      for (int l = 0; l < 32; ++l) sum += 3 * (32 + l) + 1;
      return sum;
    }());
  }
}

TEST(CudaEmu, StaticSharedIsPoisonedPerBlock) {
  for (int launch = 0; launch < 2; ++launch) {
    DevArray<int> out(3 * 64);
    NGS_LAUNCH(shared_persist_kernel, dim3(3), dim3(64), 0, nullptr)(out.get());
    const std::vector<int> v = out.host();
    for (int t = 0; t < 64; ++t) {
      EXPECT_EQ(v[t], 7 + t);
      // not the zero of a fresh static, not block 0's value: the poison (0xff bytes)
      EXPECT_EQ(v[64 + t], -1) << "launch " << launch;
      EXPECT_EQ(v[128 + t], -1) << "launch " << launch;
    }
  }
}

TEST(CudaEmu, DeviceMemoryStartsPoisoned) {
  float *p = nullptr;
  NGS_TEST_CUDA(cudaMalloc(&p, 16 * sizeof(float)));
  std::vector<unsigned char> v(16 * sizeof(float), 0);
  NGS_TEST_CUDA(cudaMemcpy(v.data(), p, v.size(), cudaMemcpyDeviceToHost));
  for (unsigned char c : v) EXPECT_EQ(c, 0xff);
  cudaFree(p);
}

// The shared-memory opt-in maximum per emulated architecture (the CUDA programming guide's
// table; the emulation's NGS_EMU_ARCH limits must follow it).
struct ArchOptin {
  int sm;
  size_t optin;
};
constexpr ArchOptin kArchOptin[] = {{80, 163 * 1024}, {86, 99 * 1024}, {89, 99 * 1024}, {90, 227 * 1024}};

TEST(CudaEmu, LaunchLimitsFollowTheEmulatedArchitecture) {
  EmuModeGuard guard;
  DevArray<float> out(1024);
  for (ArchOptin c : kArchOptin) {
    SCOPED_TRACE("sm_" + std::to_string(c.sm));
    ASSERT_TRUE(ngs_emu::set_arch(c.sm));
    cudaDeviceProp prop;
    NGS_TEST_CUDA(cudaGetDeviceProperties(&prop, 0));
    EXPECT_EQ(prop.major * 10 + prop.minor, c.sm);
    EXPECT_EQ(prop.sharedMemPerBlockOptin, c.optin);
    EXPECT_EQ(cudaFuncSetAttribute(smem_limit_kernel,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(c.optin + 1024)),
              cudaErrorInvalidValue);
    NGS_TEST_CUDA(cudaFuncSetAttribute(smem_limit_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(c.optin)));
    NGS_LAUNCH(smem_limit_kernel, dim3(1), dim3(64), c.optin, nullptr)(
        out.get(), static_cast<int>(c.optin / sizeof(float)));
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    NGS_LAUNCH(smem_limit_kernel, dim3(1), dim3(64), c.optin + 4, nullptr)(out.get(), 1);
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  }
  // An attribute set for a larger architecture does not carry over to a smaller one.
  ASSERT_TRUE(ngs_emu::set_arch(86));
  NGS_LAUNCH(smem_limit_kernel, dim3(1), dim3(64), 150 * 1024, nullptr)(out.get(), 1);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_FALSE(ngs_emu::set_arch(75));
  EXPECT_EQ(ngs_emu::arch(), 86);
  // Block and grid dimensions.
  NGS_LAUNCH(add_kernel, dim3(1), dim3(1024), 0, nullptr)(out.get(), 1.0f);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  NGS_LAUNCH(add_kernel, dim3(1), dim3(33, 32), 0, nullptr)(out.get(), 1.0f);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  NGS_LAUNCH(add_kernel, dim3(1), dim3(1, 1, 65), 0, nullptr)(out.get(), 1.0f);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  NGS_LAUNCH(add_kernel, dim3(1, 65536), dim3(1), 0, nullptr)(out.get(), 1.0f);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  NGS_LAUNCH(add_kernel, dim3(1, 1, 65536), dim3(1), 0, nullptr)(out.get(), 1.0f);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
}

TEST(CudaEmu, LaunchBoundsAreEnforced) {
  std::vector<float> zeros(256, 0.0f);
  DevArray<float> out(zeros);
  NGS_LAUNCH(bounded_kernel, dim3(1), dim3(128), 0, nullptr)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(out.host()[127], 3.0f);
  DevArray<float> out2(zeros);
  NGS_LAUNCH(bounded_kernel, dim3(2), dim3(129), 0, nullptr)(out2.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchOutOfResources);
  const std::vector<float> v = out2.host();
  for (float x : v) EXPECT_EQ(x, 0.0f);  // nothing of the kernel ran
  // usable again afterwards
  NGS_LAUNCH(bounded_kernel, dim3(1), dim3(64), 0, nullptr)(out2.get());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(CudaEmu, UnsafeCallsDuringCaptureAreRejected) {
  cudaStream_t s = nullptr;
  NGS_TEST_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  DevArray<float> x(std::vector<float>(32, 1.0f));
  auto capture = [&](auto &&unsafe) {
    EXPECT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    NGS_LAUNCH(add_kernel, dim3(1), dim3(32), 0, s)(x.get(), 2.0f);
    unsafe();
    cudaGraph_t g = reinterpret_cast<cudaGraph_t>(1);
    EXPECT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(g, nullptr);
  };
  capture([&] {
    float *p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, 64), cudaErrorStreamCaptureUnsupported);
  });
  capture([&] {
    EXPECT_EQ(cudaFuncSetAttribute(add_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 1024),
              cudaErrorStreamCaptureUnsupported);
  });
  capture([&] {  // a launch on the legacy stream
    NGS_LAUNCH(add_kernel, dim3(1), dim3(32), 0, nullptr)(x.get(), 2.0f);
    EXPECT_EQ(cudaGetLastError(), cudaErrorStreamCaptureImplicit);
  });
  capture([&] {
    float h = 0.0f;
    EXPECT_EQ(cudaMemcpyAsync(&h, x.get(), 4, cudaMemcpyDeviceToHost, nullptr),
              cudaErrorStreamCaptureImplicit);
  });
  capture([&] { EXPECT_EQ(cudaMemset(x.get(), 0, 4), cudaErrorStreamCaptureUnsupported); });
  capture([&] { EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorStreamCaptureUnsupported); });
  EXPECT_EQ(x.host()[0], 1.0f);  // nothing captured ran
  // A clean capture still works.
  NGS_TEST_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  NGS_LAUNCH(add_kernel, dim3(1), dim3(32), 0, s)(x.get(), 2.0f);
  cudaGraph_t g = nullptr;
  NGS_TEST_CUDA(cudaStreamEndCapture(s, &g));
  ASSERT_NE(g, nullptr);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
}

TEST(CudaEmu, PageableCopyIsNotOrderedWithNonBlockingStreams) {
  cudaStream_t s = nullptr;
  NGS_TEST_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const std::vector<float> src(32, 5.0f);
  float *in = nullptr;
  NGS_TEST_CUDA(cudaMalloc(&in, 32 * sizeof(float)));
  DevArray<float> out(32), out2(32);
  NGS_TEST_CUDA(cudaMemcpy(in, src.data(), 32 * sizeof(float), cudaMemcpyHostToDevice));
  // Not ordered after the copy: rejected (it could read the old contents), nothing runs.
  NGS_LAUNCH(copy_kernel, dim3(1), dim3(32), 0, s)(in, out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorNotPermitted);
  NGS_TEST_CUDA(cudaStreamSynchronize(s));
  NGS_TEST_CUDA(cudaStreamSynchronize(nullptr));  // the copy has landed now
  NGS_LAUNCH(copy_kernel, dim3(1), dim3(32), 0, s)(in, out2.get());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  NGS_TEST_CUDA(cudaStreamSynchronize(s));
  EXPECT_TRUE(std::isnan(out.host()[0]));
  EXPECT_EQ(out2.host()[0], 5.0f);
  // A blocking stream (and the legacy stream) is ordered after the copy.
  cudaStream_t blocking = nullptr;
  NGS_TEST_CUDA(cudaStreamCreate(&blocking));
  const std::vector<float> src2(32, 6.0f);
  NGS_TEST_CUDA(cudaMemcpy(in, src2.data(), 32 * sizeof(float), cudaMemcpyHostToDevice));
  NGS_LAUNCH(copy_kernel, dim3(1), dim3(32), 0, blocking)(in, out.get());
  EXPECT_EQ(out.host()[0], 6.0f);
  cudaStreamDestroy(blocking);
  cudaStreamDestroy(s);
  cudaFree(in);
}

// A legacy-stream cudaMemset of device memory is asynchronous to the host and not ordered
// with a non-blocking stream (rnn_plan's part-1 hazard): work enqueued there while this
// thread's memset is unsynchronised is rejected (cudaErrorNotPermitted: a copy, a memset, a
// launch, a graph launch), work after cudaStreamSynchronize(nullptr) sees the memset, and
// a blocking stream is ordered after it. Another thread's pending memset does not reject
// this thread's work.
TEST(CudaEmu, LegacyMemsetIsNotOrderedWithNonBlockingStreams) {
  cudaStream_t s = nullptr;
  NGS_TEST_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  DevArray<float> in(32), out(32);
  NGS_TEST_CUDA(cudaDeviceSynchronize());
  float *host = nullptr;
  NGS_TEST_CUDA(cudaMallocHost(&host, 32 * sizeof(float)));
  NGS_TEST_CUDA(cudaMemset(in.get(), 0, 32 * sizeof(float)));
  EXPECT_EQ(cudaMemcpyAsync(host, in.get(), 32 * sizeof(float), cudaMemcpyDeviceToHost, s),
            cudaErrorNotPermitted);
  EXPECT_EQ(cudaMemsetAsync(out.get(), 0, 4, s), cudaErrorNotPermitted);
  NGS_LAUNCH(copy_kernel, dim3(1), dim3(32), 0, s)(in.get(), out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorNotPermitted);
  // A graph captured meanwhile (capturing runs nothing) is rejected when launched.
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  NGS_TEST_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  NGS_LAUNCH(copy_kernel, dim3(1), dim3(32), 0, s)(in.get(), out.get());
  NGS_TEST_CUDA(cudaStreamEndCapture(s, &g));
  NGS_TEST_CUDA(cudaGraphInstantiate(&exec, g, 0));
  EXPECT_EQ(cudaGraphLaunch(exec, s), cudaErrorNotPermitted);
  EXPECT_TRUE(std::isnan(out.host()[0]));  // (host(): a device synchronisation)
  // After the legacy stream is synchronised with: allowed, and the zeros have landed.
  NGS_TEST_CUDA(cudaGraphLaunch(exec, s));
  NGS_TEST_CUDA(cudaStreamSynchronize(s));
  EXPECT_EQ(out.host()[0], 0.0f);
  // A blocking stream is ordered after the legacy stream: no rejection.
  cudaStream_t blocking = nullptr;
  NGS_TEST_CUDA(cudaStreamCreate(&blocking));
  NGS_TEST_CUDA(cudaMemset(in.get(), 0xff, 32 * sizeof(float)));
  NGS_TEST_CUDA(cudaMemcpyAsync(host, in.get(), 32 * sizeof(float), cudaMemcpyDeviceToHost, blocking));
  EXPECT_TRUE(std::isnan(host[0]));
  // Another thread's unsynchronised memset: this thread's work is not rejected.
  std::thread other([&] { NGS_TEST_CUDA(cudaMemset(in.get(), 0, 32 * sizeof(float))); });
  other.join();
  EXPECT_EQ(cudaMemsetAsync(out.get(), 0, 4, s), cudaSuccess);
  NGS_TEST_CUDA(cudaDeviceSynchronize());
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(g);
  cudaFreeHost(host);
  cudaStreamDestroy(blocking);
  cudaStreamDestroy(s);
}

// Static shared memory (NGS_STATIC_SHARED) counts with the dynamic bytes against the limit:
// 48 KiB in all without an opt-in, the architecture's opt-in maximum with one, as a device
// checks at launch (cudaErrorInvalidConfiguration, no block runs). The first launch learns
// the kernel's static size in its first block; later launches and cudaFuncSetAttribute
// (dynamic maximum + static above the opt-in maximum: cudaErrorInvalidValue) check it
// before anything runs.
template <int kTag>
__global__ void static_plus_dynamic_kernel(float *out, int n_dyn) {
  NGS_STATIC_SHARED(float, st, 8192);  // 32 KiB
  NGS_DYNAMIC_SHARED(float, dyn);
  st[threadIdx.x] = 1.0f;
  if (n_dyn > 0) dyn[n_dyn - 1 - threadIdx.x % n_dyn] = 2.0f;
  __syncthreads();
  out[threadIdx.x] = st[threadIdx.x] + (n_dyn > 0 ? dyn[n_dyn - 1 - threadIdx.x % n_dyn] : 0.0f);
}

TEST(CudaEmu, StaticPlusDynamicSharedMemoryIsLimited) {
  EmuModeGuard guard;
  DevArray<float> out(64);
  const size_t st = 32 * 1024;
  // No opt-in: 32 KiB static + 16 KiB dynamic fits 48 KiB, 4 bytes more does not (the first
  // launch of a kernel: found in its first block), nor later (known before it runs).
  NGS_LAUNCH(static_plus_dynamic_kernel<0>, dim3(2), dim3(64), 16 * 1024, nullptr)(out.get(), 4096);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(out.host()[5], 3.0f);
  DevArray<float> out1(64), out2(64);
  NGS_LAUNCH(static_plus_dynamic_kernel<1>, dim3(2), dim3(64), 16 * 1024 + 4, nullptr)(out1.get(), 4097);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_TRUE(std::isnan(out1.host()[0]));
  NGS_LAUNCH(static_plus_dynamic_kernel<0>, dim3(2), dim3(64), 16 * 1024 + 4, nullptr)(out2.get(), 4097);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_TRUE(std::isnan(out2.host()[0]));
  // Opted in: static + dynamic up to the architecture's maximum.
  for (ArchOptin c : kArchOptin) {
    SCOPED_TRACE("sm_" + std::to_string(c.sm));
    ASSERT_TRUE(ngs_emu::set_arch(c.sm));
    auto *k = c.sm == 80 ? static_plus_dynamic_kernel<80>
              : c.sm == 86 ? static_plus_dynamic_kernel<86>
              : c.sm == 89 ? static_plus_dynamic_kernel<89>
                           : static_plus_dynamic_kernel<90>;
    NGS_TEST_CUDA(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(c.optin - st)));
    DevArray<float> o(64), bad(64);
    const int n_dyn = static_cast<int>((c.optin - st) / sizeof(float));
    NGS_LAUNCH(k, dim3(1), dim3(64), c.optin - st, nullptr)(o.get(), n_dyn);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    EXPECT_EQ(o.host()[0], 3.0f);
    // The static size is known now: an attribute that leaves no room for it is refused ...
    EXPECT_EQ(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(c.optin - st + 4)),
              cudaErrorInvalidValue);
    // ... and so is a launch whose dynamic bytes exceed the attribute.
    NGS_LAUNCH(k, dim3(1), dim3(64), c.optin - st + 4, nullptr)(bad.get(), n_dyn + 1);
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
    EXPECT_TRUE(std::isnan(bad.host()[0]));
  }
  // An opt-in whose dynamic maximum plus the static bytes exceed the architecture's limit
  // (attribute set before the static size is known): the launch fails in its first block.
  ASSERT_TRUE(ngs_emu::set_arch(86));
  NGS_TEST_CUDA(cudaFuncSetAttribute(static_plus_dynamic_kernel<2>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, 99 * 1024));
  DevArray<float> o3(64);
  NGS_LAUNCH(static_plus_dynamic_kernel<2>, dim3(1), dim3(64), 80 * 1024, nullptr)(o3.get(), 20480);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_TRUE(std::isnan(o3.host()[0]));
}

TEST(CudaEmu, FastDivideFollowsTheDevice) {
  EXPECT_EQ(__fdividef(1.0f, 0x1p127f), 0.0f);  // 2^126 < |b| < 2^128: 0 on a device
  EXPECT_EQ(__fdividef(-3.0f, -0x1.8p126f), 0.0f);
  EXPECT_TRUE(std::isnan(__fdividef(INFINITY, 0x1p127f)));
  EXPECT_NEAR(__fdividef(1.0f, 3.0f), 1.0f / 3.0f, 1e-7f);
  EXPECT_EQ(__fdividef(6.0f, 2.0f), 3.0f);
}

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
  // A static shared array is a per-block allocation of exactly its size.
  EXPECT_DEATH(NGS_LAUNCH(static_shared_oob_kernel, dim3(1), dim3(64), 0, nullptr)(out.get()),
               "heap-buffer-overflow");
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
