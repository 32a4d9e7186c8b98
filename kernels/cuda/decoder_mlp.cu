// x_{l+1} = LReLU(W_l x_l + b_l) (BN folded), h = W_o x + b_o, H = 2 sigmoid(h)^ln10 + 1e-7,
// S[k] = (-1)^k (H[k]/2 + (H[k-1] + H[k+1])/4); z [n][z_dim], W [out][in], S [n][F].
// One block = a tile of T grains kept in shared memory; a warp per output row, lanes
// stride the row (coalesced weight reads from global/L2), one shuffle reduction per grain.
#include "decoder_mlp.cuh"

namespace ngs::cuda {

namespace {

constexpr int kMlpThreads = 256;
constexpr size_t kMlpSmemLimit = 96 * 1024;

int mlp_ld(const MlpDevice &m) {  // stride of the hidden activations
  int ld = 0;
  for (int l = 0; l < m.n_layers; ++l) ld = ld > m.dims[l] ? ld : m.dims[l];
  return ld;
}

size_t mlp_smem_bytes(const MlpDevice &m, int tile) {
  const int F = m.dims[m.n_layers];
  return sizeof(float) * static_cast<size_t>(tile) * (2 * mlp_ld(m) + F);
}

}  // namespace

template <int T, bool kHalf>
static __global__ void __launch_bounds__(kMlpThreads)
    decoder_mlp_kernel(MlpDevice m, int ld, const float *__restrict__ z, int n,
                       const int *__restrict__ count, float *__restrict__ S) {
  NGS_KERNEL_BOUNDS(kMlpThreads);
  NGS_DYNAMIC_SHARED(float, smem);
  float *x = smem, *x_next = smem + T * ld;  // ping-pong activations [T][ld]
  float *H = smem + 2 * T * ld;  // [T][F]
  const int F = m.dims[m.n_layers];
  const int z_dim = m.dims[0];
  const int g0 = blockIdx.x * T;
  if (count && *count < n) n = *count;  // grains past the live count: not computed
  if (g0 >= n) return;                  // the whole block
  const int nt = n - g0 < T ? n - g0 : T;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_warps = blockDim.x >> 5;

  for (int i = tid; i < T * z_dim; i += blockDim.x) {
    const int t = i / z_dim, k = i - t * z_dim;
    x[t * ld + k] = t < nt ? z[static_cast<size_t>(g0 + t) * z_dim + k] : 0.0f;
  }
  __syncthreads();

  for (int l = 0; l < m.n_layers; ++l) {
    const int din = m.dims[l], dout = m.dims[l + 1];
    const bool last = l == m.n_layers - 1;
    float *y = last ? H : x_next;
    const int ldy = last ? F : ld;
    const float *bias = m.b[l];
    for (int o = warp; o < dout; o += n_warps) {
      float acc[T];
#pragma unroll
      for (int t = 0; t < T; ++t) acc[t] = 0.0f;
      const size_t row = static_cast<size_t>(o) * din;
      for (int i = lane; i < din; i += 32) {
        const float wv = kHalf ? load_weight(m.w_half[l], row + i) : load_weight(m.w[l], row + i);
#pragma unroll
        for (int t = 0; t < T; ++t) acc[t] = fmaf(wv, x[t * ld + i], acc[t]);
      }
#pragma unroll
      for (int t = 0; t < T; ++t) acc[t] = warp_sum(acc[t]);
      if (lane < T) {
        float v = 0.0f;
#pragma unroll
        for (int t = 0; t < T; ++t)
          if (t == lane) v = acc[t];
        v += bias[o];
        if (last) {
          const float sig = 1.0f / (1.0f + expf(-v));
          v = 2.0f * powf(sig, 2.30258509299404568402f) + 1e-7f;  // mod_sigmoid
        } else {
          v = v > 0.0f ? v : 0.2f * v;
        }
        y[lane * ldy + o] = v;
      }
    }
    __syncthreads();
    x_next = x;
    x = y;
  }

  // Window identity: S[k] = (-1)^k (H[k]/2 + (H[k-1] + H[k+1])/4), H[-1] = H[1],
  // H[F] = H[F-2].
  for (int i = tid; i < nt * F; i += blockDim.x) {
    const int t = i / F, k = i - t * F;
    const float *h = H + t * F;
    const float hm = h[k == 0 ? 1 : k - 1];
    const float hp = h[k == F - 1 ? F - 2 : k + 1];
    const float s = 0.5f * h[k] + 0.25f * (hm + hp);
    S[static_cast<size_t>(g0 + t) * F + k] = (k & 1) ? -s : s;
  }
}

int decoder_mlp_tile(const MlpDevice &mlp) {
  for (int t = 8; t > 1; t /= 2)
    if (mlp_smem_bytes(mlp, t) <= kMlpSmemLimit) return t;
  return 1;
}

template <int T>
static void decoder_mlp_prepare_tile(const MlpDevice &m, size_t smem_optin) {
  const size_t smem = mlp_smem_bytes(m, T);
  if (smem > smem_optin)
    throw Error(kUnsupported, "CUDA decoder MLP: a tile of " + std::to_string(T) +
                                  " grains needs " + std::to_string(smem) +
                                  " bytes of shared memory per block; the device allows " +
                                  std::to_string(smem_optin));
  if (smem <= 48 * 1024) return;
  auto *kernel = m.half ? decoder_mlp_kernel<T, true> : decoder_mlp_kernel<T, false>;
  NGS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem_optin)));
}

void decoder_mlp_prepare(const MlpDevice &mlp, size_t smem_optin) {
  if (mlp.kernel != MlpKernel::kTiled) return;  // the row kernel: 16 KiB of static shared memory
  switch (decoder_mlp_tile(mlp)) {
    case 8: decoder_mlp_prepare_tile<8>(mlp, smem_optin); break;
    case 4: decoder_mlp_prepare_tile<4>(mlp, smem_optin); break;
    case 2: decoder_mlp_prepare_tile<2>(mlp, smem_optin); break;
    default: decoder_mlp_prepare_tile<1>(mlp, smem_optin); break;
  }
}

template <int T>
static void decoder_mlp_launch_tile(const MlpDevice &m, const float *z, int n, float *S,
                                    const int *count, cudaStream_t stream) {
  const dim3 grid(ceil_div(n, T)), block(kMlpThreads);
  const size_t smem = mlp_smem_bytes(m, T);
  auto *kernel = m.half ? decoder_mlp_kernel<T, true> : decoder_mlp_kernel<T, false>;
  NGS_LAUNCH(kernel, grid, block, smem, stream)(m, mlp_ld(m), z, n, count, S);
  NGS_CUDA_CHECK_LAUNCH();
}

// ---- kRows: one launch per layer, 32 rows x 8 grains per block -------------------------

namespace {
constexpr int kRowsThreads = 256;
constexpr int kRowsPerWarp = 4, kRowsGrains = 8;  // 32 sums per warp: one per lane
constexpr int kRowsPerBlock = kRowsPerWarp * (kRowsThreads / 32);  // 32
constexpr int kRowsKChunk = 512;  // inputs staged per step: 8 x 512 floats = 16 KiB
static_assert(kRowsPerWarp * kRowsGrains == 32, "one sum per lane after the transpose");
}  // namespace

// One step of the transpose reduction: a lane keeps the S sums whose index has bit S equal
// to its lane's bit S and adds its partner's copy of them. S is a template argument so that
// every index is a constant and the sums stay in registers.
template <int S>
__device__ __forceinline__ void rows_transpose_step(float (&acc)[32], int lane) {
  const bool upper = (lane & S) != 0;
#pragma unroll
  for (int j = 0; j < S; ++j) {
    const float send = upper ? acc[j] : acc[j + S];
    const float keep = upper ? acc[j + S] : acc[j];
    acc[j] = keep + __shfl_xor_sync(kFullMask, send, S);
  }
}

// y [n][dout] = act(W x + b) of one layer; act: LReLU(0.2), or mod_sigmoid for the output.
template <bool kHalf>
static __global__ void __launch_bounds__(kRowsThreads)
    decoder_mlp_rows_kernel(const float *__restrict__ w, const __half *__restrict__ w_half,
                            const float *__restrict__ bias, int din, int dout,
                            const float *__restrict__ x, int n, const int *__restrict__ count,
                            float *__restrict__ y, bool output_layer) {
  NGS_KERNEL_BOUNDS(kRowsThreads);
  const int g0 = blockIdx.x * kRowsGrains;  // grain tiles in x: up to 2^31 - 1 of them
  if (count && *count < n) n = *count;      // grains past the live count: not computed
  if (g0 >= n) return;                      // the whole block
  NGS_STATIC_SHARED(float, xs, kRowsGrains * kRowsKChunk);  // [8][kRowsKChunk]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int o0 = blockIdx.y * kRowsPerBlock + warp * kRowsPerWarp;
  // After the transpose reduction lane l holds the sum of row o0 + l / 8, grain g0 + l % 8:
  // its bias is loaded before the products.
  const int my_row = o0 + lane / kRowsGrains, my_grain = g0 + lane % kRowsGrains;
  const float my_bias = my_row < dout ? bias[my_row] : 0.0f;
  float acc[kRowsPerWarp * kRowsGrains];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp * kRowsGrains; ++i) acc[i] = 0.0f;
  for (int k0 = 0; k0 < din; k0 += kRowsKChunk) {
    const int kc = din - k0 < kRowsKChunk ? din - k0 : kRowsKChunk;
    for (int i = threadIdx.x; i < kRowsGrains * kRowsKChunk; i += blockDim.x) {
      const int t = i / kRowsKChunk, k = i - t * kRowsKChunk;
      xs[i] = g0 + t < n && k < kc ? x[static_cast<size_t>(g0 + t) * din + k0 + k] : 0.0f;
    }
    __syncthreads();
    for (int k = lane; k < kc; k += 32) {
      float xv[kRowsGrains];
#pragma unroll
      for (int t = 0; t < kRowsGrains; ++t) xv[t] = xs[t * kRowsKChunk + k];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const int o = o0 + r;
        const size_t idx = static_cast<size_t>(o) * din + k0 + k;
        const float wv = o < dout ? (kHalf ? load_weight(w_half, idx) : load_weight(w, idx)) : 0.0f;
#pragma unroll
        for (int t = 0; t < kRowsGrains; ++t)
          acc[r * kRowsGrains + t] = fmaf(wv, xv[t], acc[r * kRowsGrains + t]);
      }
    }
    __syncthreads();
  }
  // Transpose reduction: after 16 + 8 + 4 + 2 + 1 shuffles acc[0] is the warp's total for
  // index `lane` (row lane / 8, grain lane % 8).
  rows_transpose_step<16>(acc, lane);
  rows_transpose_step<8>(acc, lane);
  rows_transpose_step<4>(acc, lane);
  rows_transpose_step<2>(acc, lane);
  rows_transpose_step<1>(acc, lane);
  if (my_row >= dout || my_grain >= n) return;
  float v = acc[0] + my_bias;
  if (output_layer) {
    const float sig = 1.0f / (1.0f + expf(-v));
    v = 2.0f * powf(sig, 2.30258509299404568402f) + 1e-7f;  // mod_sigmoid
  } else {
    v = v > 0.0f ? v : 0.2f * v;
  }
  y[static_cast<size_t>(my_grain) * dout + my_row] = v;
}

// S[k] = (-1)^k (H[k]/2 + (H[k-1] + H[k+1])/4), H[-1] = H[1], H[F] = H[F-2]; H, S [n][F].
// A block per grain.
static __global__ void __launch_bounds__(kRowsThreads)
    decoder_mlp_window_kernel(const float *__restrict__ H, int F, const int *__restrict__ count,
                              float *__restrict__ S) {
  NGS_KERNEL_BOUNDS(kRowsThreads);
  if (count && static_cast<int>(blockIdx.x) >= *count) return;  // past the live grains
  const float *h = H + static_cast<size_t>(blockIdx.x) * F;
  float *out = S + static_cast<size_t>(blockIdx.x) * F;
  for (int k = threadIdx.x; k < F; k += blockDim.x) {
    const float hm = h[k == 0 ? 1 : k - 1];
    const float hp = h[k == F - 1 ? F - 2 : k + 1];
    const float s = 0.5f * h[k] + 0.25f * (hm + hp);
    out[k] = (k & 1) ? -s : s;
  }
}

size_t decoder_mlp_work_floats(const MlpDevice &mlp, int n) {
  if (mlp.kernel != MlpKernel::kRows) return 0;
  size_t h = 0;
  for (int l = 1; l < mlp.n_layers; ++l) h = h > static_cast<size_t>(mlp.dims[l]) ? h : mlp.dims[l];
  const size_t g = static_cast<size_t>(n > 0 ? n : 1);
  return g * (2 * h + static_cast<size_t>(mlp.dims[mlp.n_layers]));
}

static void decoder_mlp_launch_rows(const MlpDevice &m, const float *z, int n, float *S,
                                    float *work, const int *count, cudaStream_t stream) {
  if (!work) throw Error(kInvalidArgument, "CUDA decoder MLP: the row kernel needs a workspace");
  size_t h = 0;
  for (int l = 1; l < m.n_layers; ++l) h = h > static_cast<size_t>(m.dims[l]) ? h : m.dims[l];
  const int F = m.dims[m.n_layers];
  float *ping = work, *pong = work + static_cast<size_t>(n) * h;
  float *H = pong + static_cast<size_t>(n) * h;
  const float *x = z;
  for (int l = 0; l < m.n_layers; ++l) {
    const bool last = l == m.n_layers - 1;
    float *y = last ? H : (l % 2 == 0 ? ping : pong);
    const int din = m.dims[l], dout = m.dims[l + 1];
    const dim3 grid(ceil_div(n, kRowsGrains), ceil_div(dout, kRowsPerBlock));
    auto *kernel = m.half ? decoder_mlp_rows_kernel<true> : decoder_mlp_rows_kernel<false>;
    NGS_LAUNCH(kernel, grid, dim3(kRowsThreads), 0, stream)(m.w[l], m.w_half[l], m.b[l], din,
                                                            dout, x, n, count, y, last);
    NGS_CUDA_CHECK_LAUNCH();
    x = y;
  }
  auto *window = decoder_mlp_window_kernel;
  NGS_LAUNCH(window, dim3(n), dim3(kRowsThreads), 0, stream)(H, F, count, S);
  NGS_CUDA_CHECK_LAUNCH();
}

void decoder_mlp_launch(const MlpDevice &mlp, const float *z, int n, float *S,
                        cudaStream_t stream, float *work, const int *count) {
  if (n <= 0) return;
  if (mlp.kernel == MlpKernel::kRows) {
    decoder_mlp_launch_rows(mlp, z, n, S, work, count, stream);
    return;
  }
  switch (decoder_mlp_tile(mlp)) {
    case 8: decoder_mlp_launch_tile<8>(mlp, z, n, S, count, stream); break;
    case 4: decoder_mlp_launch_tile<4>(mlp, z, n, S, count, stream); break;
    case 2: decoder_mlp_launch_tile<2>(mlp, z, n, S, count, stream); break;
    default: decoder_mlp_launch_tile<1>(mlp, z, n, S, count, stream); break;
  }
}

}  // namespace ngs::cuda
