// Shared by every kernel file and the backend glue: the CUDA runtime (or its CPU
// emulation), the launch macro, the one error-check macro and warp-level helpers.
#pragma once

#ifdef NGS_CUDA_EMULATION
#include "emu/cuda_emu.h"
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
// NGS_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...): the kernel launch used by
// every host launcher; the emulation build defines it as a call into its scheduler.
#define NGS_LAUNCH(kernel, grid, block, smem, stream) kernel<<<(grid), (block), (smem), (stream)>>>
// Dynamic shared memory of the launch as `T name[]`.
#define NGS_DYNAMIC_SHARED(T, name)                   \
  extern __shared__ __align__(16) unsigned char ngs_dyn_smem_raw[]; \
  T *name = reinterpret_cast<T *>(ngs_dyn_smem_raw)
// A static shared array `T name[count]` (the emulation gives each block a fresh, poisoned
// one; plain __shared__ does not compile there).
#define NGS_STATIC_SHARED(T, name, count) __shared__ T name[count]
// First statement of every kernel declared with __launch_bounds__(N): the emulation checks
// the launch against N (tests/cpp/cuda.cmake checks that the two agree); nothing here.
#define NGS_KERNEL_BOUNDS(max_threads) ((void)0)
#endif

#include <string>

#include "common/error.h"

namespace ngs::cuda {

// Throws ngs::Error(kBackendError) naming the failed expression, the function,
// the file and the line.
[[noreturn]] void throw_cuda_error(cudaError_t err, const char *expr, const char *func,
                                   const char *file, int line);

}  // namespace ngs::cuda

// Checks a CUDA runtime call (or any expression returning cudaError_t).
#define NGS_CUDA_CHECK(expr)                                                       \
  do {                                                                             \
    const cudaError_t ngs_err_ = (expr);                                           \
    if (ngs_err_ != cudaSuccess)                                                   \
      ::ngs::cuda::throw_cuda_error(ngs_err_, #expr, __func__, __FILE__, __LINE__); \
  } while (0)

// After every launch: reports a bad launch configuration or an earlier asynchronous fault.
#define NGS_CUDA_CHECK_LAUNCH() NGS_CUDA_CHECK(cudaGetLastError())

namespace ngs::cuda {
__host__ __device__ inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
}  // namespace ngs::cuda

#if defined(__CUDACC__) || defined(NGS_CUDA_EMULATION)  // device code: not for host-only TUs
namespace ngs::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

__device__ __forceinline__ float load_weight(const float *w, size_t i) { return w[i]; }
__device__ __forceinline__ float load_weight(const __half *w, size_t i) {
  return __half2float(w[i]);
}

}  // namespace ngs::cuda
#endif
