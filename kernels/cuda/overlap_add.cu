// a[t] = sum_{g : 0 <= t - g hop < L} y[g][t - g hop] / count(t), then
// out[t] = softsign(bias + sum_k fir[k] a[t + k - K/2]) (zeros outside); y [n][L], out [T].
// Deterministic: each output sample gathers its (at most L/hop) grains in ascending order;
// a block computes a tile of outputs from the OLA of the tile plus the FIR halo in shared memory.
#include "overlap_add.cuh"

namespace ngs::cuda {

namespace {
constexpr int kOlaThreads = 256;
}

__device__ __forceinline__ float ola_sample(const float *__restrict__ y, int t, int n, int l,
                                            int hop, bool normalize) {
  int g_hi = t / hop;
  if (g_hi > n - 1) g_hi = n - 1;
  const int g_lo = t >= l ? (t - l) / hop + 1 : 0;
  float acc = 0.0f;
  for (int g = g_lo; g <= g_hi; ++g) acc += y[static_cast<size_t>(g) * l + (t - g * hop)];
  const int count = g_hi - g_lo + 1;
  return normalize && count > 0 ? acc / static_cast<float>(count) : acc;
}

static __global__ void __launch_bounds__(kOlaThreads)
    overlap_add_kernel(OlaParams p, const float *__restrict__ y, float *__restrict__ audio) {
  NGS_KERNEL_BOUNDS(kOlaThreads);
  if (p.count && *p.count < p.n) p.n = *p.count;  // the live series
  const int total = (p.n + 3) * p.hop;
  const int t0 = blockIdx.x * blockDim.x;
  if (t0 >= total) return;  // the whole block: past the live series' audio
  if (p.ola_only) {
    const int t = t0 + threadIdx.x;
    if (t < total) audio[t] = ola_sample(y, t, p.n, p.l_grain, p.hop, p.normalize);
    return;
  }
  NGS_DYNAMIC_SHARED(float, smem);
  const int halo = p.fir_len / 2;
  const int width = blockDim.x + p.fir_len - 1;
  float *a = smem;              // [width]: OLA of t0 - halo .. t0 + blockDim.x + halo - 1
  float *fir = smem + width;    // [fir_len]
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    const int t = t0 - halo + i;
    a[i] = t >= 0 && t < total ? ola_sample(y, t, p.n, p.l_grain, p.hop, p.normalize) : 0.0f;
  }
  for (int k = threadIdx.x; k < p.fir_len; k += blockDim.x) fir[k] = p.fir[k];
  __syncthreads();
  const int t = t0 + threadIdx.x;
  if (t < total) {
    float acc = p.bias;
    for (int k = 0; k < p.fir_len; ++k) acc = fmaf(fir[k], a[threadIdx.x + k], acc);
    audio[t] = acc / (1.0f + fabsf(acc));
  }
}

void overlap_add_launch(const OlaParams &p, const float *y, float *audio, cudaStream_t stream) {
  if (p.n <= 0) return;
  if (!p.ola_only && (p.fir_len <= 0 || p.fir_len % 2 == 0 || !p.fir))
    throw Error(kInvalidArgument, "CUDA overlap-add: FIR length must be odd");
  const int total = (p.n + 3) * p.hop;
  const dim3 grid(ceil_div(total, kOlaThreads)), block(kOlaThreads);
  const size_t smem = p.ola_only ? 0 : sizeof(float) * (kOlaThreads + 2 * p.fir_len - 1);
  auto *kernel = overlap_add_kernel;
  NGS_LAUNCH(kernel, grid, block, smem, stream)(p, y, audio);
  NGS_CUDA_CHECK_LAUNCH();
}

}  // namespace ngs::cuda
