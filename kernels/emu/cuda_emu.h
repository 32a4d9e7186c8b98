// A small CUDA emulation layer: runs the kernels of kernels/*.cu on the CPU with CUDA
// semantics, for the subset documented in docs/CUDA.md. Included first (before any
// kernel source) by the emulation build, which defines NGS_CUDA_EMULATION.
//
// Model: a launch runs the blocks of the grid one after the other on the calling thread,
// in the order the emulation's order mode says (forward, reverse or shuffled: set_order or
// NGS_EMU_ORDER), so a race between blocks changes the result; the threads of a block are
// fibers (own stacks) switched only at __syncthreads() and at warp-level operations, run
// in the same order mode between two of them, so a barrier is a real barrier, a shuffle a
// real exchange, and a race between lanes changes the result in some mode.
// A barrier that the live threads of a block do not all reach (at the same place) is an
// error (ngs_emu::Error is thrown by the launch), never a hang. Device memory is plain
// malloc'd host memory, poisoned (0xff bytes) by cudaMalloc; dynamic and static shared
// memory are malloc'd buffers of exactly their size per block, poisoned the same way, so
// AddressSanitizer sees out-of-bounds accesses and nothing persists between blocks.
// Launches are checked against the limits of an emulated architecture (set_arch or
// NGS_EMU_ARCH: sm_80, sm_86, sm_89, sm_90 (default)). Anything outside the subset (no
// cuda_runtime.h here) fails to compile.
#pragma once

#ifndef NGS_CUDA_EMULATION
#error "cuda_emu.h is only for the CUDA emulation build (define NGS_CUDA_EMULATION)"
#endif

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

// ---- qualifiers ------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __restrict__ __restrict
// Block-shared storage is declared with NGS_STATIC_SHARED(T, name, count) (a fresh,
// poisoned array per block) and NGS_DYNAMIC_SHARED(T, name); a plain `__shared__` (whose
// function-local static would be zero-initialised and persist across blocks and launches,
// unlike a device's) does not compile in the emulation.
#define __shared__ ngs_emu_plain_shared_is_not_emulated_use_NGS_STATIC_SHARED
// Checked at run time through NGS_KERNEL_BOUNDS(N), the first statement of every kernel
// that has __launch_bounds__(N) (tests/cpp/cuda.cmake checks that the two agree).
#define __launch_bounds__(...)

namespace ngs_emu {

// Thrown by a launch (or an API call) when the emulator detects a programming error.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string &m) : std::runtime_error(m) {}
};

}  // namespace ngs_emu

// ---- built-in vector types and indices --------------------------------------------------
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
struct float2 {
  float x, y;
};
struct float4 {
  float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

namespace ngs_emu {

struct ThreadCtx;
struct BlockCtx {
  uint3 block_idx;
  dim3 block_dim, grid_dim;
  unsigned char *dynamic_smem = nullptr;
};
struct ThreadCtx {
  uint3 thread_idx;
  unsigned linear = 0;  // linear thread index within the block
  BlockCtx *block = nullptr;
};
// The thread (fiber) running now; null outside kernels.
extern thread_local ThreadCtx *g_current;

inline ThreadCtx &current() {
  if (!g_current) throw Error("CUDA emulation: device built-in used outside a kernel");
  return *g_current;
}

void syncthreads(const char *file, int line);
// Warp exchange: every live lane of the warp deposits `bits` (up to 8 bytes), waits for
// the others, reads lane `src`'s deposit; mask must name exactly the live lanes.
uint64_t warp_exchange(unsigned mask, uint64_t bits, int src, const char *what);
// Vote: returns the ballot of `pred` over the warp's live lanes.
unsigned warp_ballot(unsigned mask, bool pred, const char *what);
void *dynamic_shared(size_t elem_size);
// The block's instance of the static shared array identified by `tag` (bytes long): the
// first thread of the block to reach it allocates it, poisoned; freed when the block ends.
void *static_shared(const void *tag, size_t bytes);
// A kernel with __launch_bounds__(max_threads) launched with a larger block fails as on a
// device (cudaErrorLaunchOutOfResources): the launch is abandoned before any thread ran on.
void check_kernel_bounds(int max_threads, const char *kernel);

// ---- strictness controls (tests; defaults from the environment) --------------------------
// Order of the blocks of a grid and of the threads of a block between two synchronisation
// points: kForward (index order), kReverse, kShuffle (a fresh random permutation per launch
// and per scheduling round, from the shuffle seed). Default: NGS_EMU_ORDER=forward|reverse|
// shuffle, else forward. NGS_EMU_SEED sets the shuffle seed (else random, printed to stderr
// once by the first shuffled launch so a failure can be replayed).
enum class Order { kForward, kReverse, kShuffle };
void set_order(Order o);
Order order();
const char *order_name(Order o);
void set_shuffle_seed(uint64_t seed);
uint64_t shuffle_seed();
// Emulated architecture (compute capability 80, 86, 89 or 90; default NGS_EMU_ARCH=sm_XX,
// else 90): what cudaGetDeviceProperties reports and what launches and
// cudaFuncSetAttribute are checked against. Returns false (and changes nothing) for others.
bool set_arch(int sm);
int arch();
size_t arch_smem_optin();  // sharedMemPerBlockOptin of the emulated architecture
// Stream captures begun so far in this process (cudaStreamBeginCapture), for tests of
// graph re-use.
long capture_count();
// Grids run so far in this process (direct launches and graph replays) by the kernels
// whose launch name (NGS_LAUNCH's first argument as written, e.g. "encoder_conv_kernel",
// "rnn_step_kernel<8>") starts with `prefix` ("" counts all): tests prove with it that a
// stage ran on the (emulated) device.
long launch_count(const char *prefix);

}  // namespace ngs_emu

#define threadIdx (::ngs_emu::current().thread_idx)
#define blockIdx (::ngs_emu::current().block->block_idx)
#define blockDim (::ngs_emu::current().block->block_dim)
#define gridDim (::ngs_emu::current().block->grid_dim)
#define warpSize 32

#define __syncthreads() ::ngs_emu::syncthreads(__FILE__, __LINE__)
// Dynamic shared memory of the launch, as `T name[]`.
#define NGS_DYNAMIC_SHARED(T, name) T *name = static_cast<T *>(::ngs_emu::dynamic_shared(sizeof(T)))
// A static shared array `T name[count]` (nvcc: `__shared__ T name[count]`); one per block.
#define NGS_STATIC_SHARED(T, name, count)                                                  \
  static char ngs_emu_tag_##name;  /* its address names the array */                       \
  T *const name = static_cast<T *>(                                                        \
      ::ngs_emu::static_shared(&ngs_emu_tag_##name, sizeof(T) * static_cast<size_t>(count)))
// First statement of a kernel declared with __launch_bounds__(max_threads).
#define NGS_KERNEL_BOUNDS(max_threads) ::ngs_emu::check_kernel_bounds((max_threads), __func__)

// ---- warp shuffles and votes -------------------------------------------------------------
namespace ngs_emu {
template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
inline unsigned lane_id() { return current().linear & 31u; }
}  // namespace ngs_emu

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int lane = static_cast<int>(ngs_emu::lane_id());
  const int s = (lane & ~(width - 1)) + (src & (width - 1));
  return ngs_emu::from_bits<T>(ngs_emu::warp_exchange(mask, ngs_emu::to_bits(v), s, "__shfl_sync"));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = static_cast<int>(ngs_emu::lane_id());
  int s = lane ^ lane_mask;
  if (s >= ((lane & ~(width - 1)) + width)) s = lane;
  return ngs_emu::from_bits<T>(
      ngs_emu::warp_exchange(mask, ngs_emu::to_bits(v), s, "__shfl_xor_sync"));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(ngs_emu::lane_id());
  int s = lane + static_cast<int>(delta);
  if ((s & ~(width - 1)) != (lane & ~(width - 1))) s = lane;
  return ngs_emu::from_bits<T>(
      ngs_emu::warp_exchange(mask, ngs_emu::to_bits(v), s, "__shfl_down_sync"));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(ngs_emu::lane_id());
  int s = lane - static_cast<int>(delta);
  if (s < (lane & ~(width - 1))) s = lane;
  return ngs_emu::from_bits<T>(
      ngs_emu::warp_exchange(mask, ngs_emu::to_bits(v), s, "__shfl_up_sync"));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return ngs_emu::warp_ballot(mask, pred != 0, "__ballot_sync");
}
inline int __all_sync(unsigned mask, int pred) {
  return ngs_emu::warp_ballot(mask, pred != 0, "__all_sync") == mask;
}
inline int __any_sync(unsigned mask, int pred) {
  return ngs_emu::warp_ballot(mask, pred != 0, "__any_sync") != 0u;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ngs_emu::warp_ballot(mask, true, "__syncwarp");
}

// ---- atomics (fibers switch only at barriers, so a plain read-modify-write is atomic) ----
template <class T>
inline T atomicAdd(T *p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <class T>
inline T atomicMax(T *p, T v) {
  T old = *p;
  *p = old < v ? v : old;
  return old;
}
template <class T>
inline T atomicMin(T *p, T v) {
  T old = *p;
  *p = v < old ? v : old;
  return old;
}
template <class T>
inline T atomicExch(T *p, T v) {
  T old = *p;
  *p = v;
  return old;
}
template <class T>
inline T atomicCAS(T *p, T cmp, T v) {
  T old = *p;
  if (old == cmp) *p = v;
  return old;
}

// ---- integer and math intrinsics ---------------------------------------------------------
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
  x = ((x >> 8) & 0x00FF00FFu) | ((x & 0x00FF00FFu) << 8);
  return (x >> 16) | (x << 16);
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
// As on a device (CUDA C Programming Guide, intrinsic functions): for 2^126 < |b| < 2^128
// __fdividef returns 0 (inf / b: NaN); otherwise the quotient through the reciprocal, which
// may differ from a / b in the last bit (the device: up to 2 ulp). docs/CUDA.md "Accuracy".
inline float __fdividef(float a, float b) {
  const float ab = std::fabs(b);
  if (ab > 0x1p126f && std::isfinite(ab)) return std::isinf(a) ? NAN : 0.0f * a;
  return a * (1.0f / b);
}
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
// expf, logf, powf, sinf, cosf, sqrtf, fabsf, fmaf, fmaxf, fminf, floorf, tanhf: <math.h>.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

// ---- half precision ------------------------------------------------------------------------
struct __half {
  uint16_t bits;
};
inline __half __float2half(float f) {  // round to nearest even, as __float2half_rn
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  uint16_t h;
  if (ax >= 0x7f800000u) {  // Inf or NaN
    h = static_cast<uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  } else if (ax >= 0x477ff000u) {  // rounds to >= 65520: overflow
    h = static_cast<uint16_t>(sign | 0x7c00u);
  } else if (ax < 0x38800000u) {  // subnormal half (or zero)
    const int shift = 113 - static_cast<int>(ax >> 23);
    if (shift > 24) {
      h = static_cast<uint16_t>(sign);
    } else {
      const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
      const uint32_t r = m >> (shift + 13);
      const uint32_t rem = m & ((1u << (shift + 13)) - 1u);
      const uint32_t half = 1u << (shift + 12);
      uint32_t v = r + ((rem > half || (rem == half && (r & 1u))) ? 1u : 0u);
      h = static_cast<uint16_t>(sign | v);
    }
  } else {
    const uint32_t e = (ax >> 23) - 112u;
    const uint32_t m = ax & 0x7fffffu;
    uint32_t v = (e << 10) | (m >> 13);
    const uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) ++v;
    h = static_cast<uint16_t>(sign | v);
  }
  return __half{h};
}
inline float __half2float(__half hv) {
  const uint32_t h = hv.bits;
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
  if (e == 0) {
    if (m == 0) {
      x = sign;
    } else {  // subnormal: normalise
      e = 113;
      while (!(m & 0x400u)) {
        m <<= 1;
        --e;
      }
      x = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
  } else if (e == 31) {
    x = sign | 0x7f800000u | (m << 13);
  } else {
    x = sign | ((e + 112u) << 23) | (m << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ---- runtime API subset ------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotPermitted = 800,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureImplicit = 906,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
#define cudaStreamNonBlocking 0x01u
#define cudaEventDefault 0x00u

struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
  size_t sharedMemPerBlock, sharedMemPerBlockOptin, totalGlobalMem;
};

namespace ngs_emu {
struct Stream;
struct Graph;
struct GraphExec;
struct Event {
  double t_ms = 0.0;
};
}  // namespace ngs_emu
using cudaStream_t = ngs_emu::Stream *;
using cudaGraph_t = ngs_emu::Graph *;
using cudaGraphExec_t = ngs_emu::GraphExec *;
using cudaEvent_t = ngs_emu::Event *;

const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
enum cudaDeviceAttr {
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int d);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMalloc(void **p, size_t bytes);
template <class T>
inline cudaError_t cudaMalloc(T **p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
template <class T>
inline cudaError_t cudaMallocHost(T **p, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void **>(p), bytes);
}
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s = nullptr);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);

namespace ngs_emu {
// Runs `body` once per thread of every block of the grid (or records it when `s` is being
// captured into a graph). Launch errors (bad configuration) become cudaGetLastError().
void launch(const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
            const char *name, std::function<void()> body);
void set_max_dynamic_smem(const void *func, int bytes);

template <class... P>
struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  const char *name;
  template <class... A>
  void operator()(A &&...args) const {
    auto k = kernel;
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    launch(reinterpret_cast<const void *>(k), grid, block, smem, stream, name,
           [k, params]() { std::apply(k, params); });
  }
};
template <class... P>
Launch<P...> make_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                         cudaStream_t s, const char *name) {
  return Launch<P...>{kernel, grid, block, smem, s, name};
}
// Sizes the emulated device reports and enforces (the opt-in maximum: arch_smem_optin()).
constexpr size_t kDefaultDynamicSmem = 48 * 1024;
// cudaFuncSetAttribute's checks (the attribute, the value against the architecture,
// rejected during a stream capture on this thread).
cudaError_t func_set_attribute(const void *func, cudaFuncAttribute attr, int value);
}  // namespace ngs_emu

template <class... P>
inline cudaError_t cudaFuncSetAttribute(void (*func)(P...), cudaFuncAttribute attr, int value) {
  return ngs_emu::func_set_attribute(reinterpret_cast<const void *>(func), attr, value);
}

// The launch used by every host launcher, in both builds:
//   NGS_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...);
#define NGS_LAUNCH(kernel, grid, block, smem, stream) \
  ::ngs_emu::make_launch(kernel, grid, block, smem, stream, #kernel)

// Fast-math device intrinsics are outside the subset (docs/RANDOM.md: the kernels use the
// accurate functions); glibc declares some of these names, so reject them explicitly.
#pragma GCC poison __expf __logf __sinf __cosf __powf __exp10f __log2f __log10f __tanf
