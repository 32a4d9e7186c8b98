// One GRU / LSTM layer over whole sequences (rnn.cuh): a block per V sequences, h double
// buffered and c in shared memory, thread j computing the gate rows of unit j for the
// block's V voices and applying the cell; the input projections (hoisted out of the
// recurrence, one GEMM-like launch before it) are read from global memory.
#include "rnn.cuh"

#include <algorithm>

namespace ngs::cuda {

namespace {
constexpr int kRnnMaxThreads = 256;
constexpr size_t kRnnSmemLimit = 48 * 1024;

int rnn_threads(int H) { return std::min(kRnnMaxThreads, ceil_div(H, 32) * 32); }
}  // namespace

int rnn_voices_per_block(size_t floats_per_voice) {
  for (int v = 8; v >= 1; v /= 2)
    if (sizeof(float) * floats_per_voice * v <= kRnnSmemLimit) return v;
  return 0;
}

template <int V>
static __global__ void __launch_bounds__(kRnnMaxThreads)
    rnn_sequence_kernel(RnnDevice L, const float *__restrict__ gi, size_t gi_voice,
                        size_t gi_step, int steps, int n_voices, float *__restrict__ out,
                        size_t out_voice, int ldo, float *__restrict__ h_final) {
  NGS_KERNEL_BOUNDS(kRnnMaxThreads);
  NGS_DYNAMIC_SHARED(float, smem);
  const int H = L.hidden, ng = L.gates(), G = ng * H;
  float *hp = smem, *hn = smem + V * H;  // previous and new h, [V][H] each (swapped per step)
  float *c = smem + 2 * V * H;             // [V][H]
  const int v0 = blockIdx.x * V;
  const int nv = n_voices - v0 < V ? n_voices - v0 : V;
  for (int i = threadIdx.x; i < 3 * V * H; i += blockDim.x) smem[i] = 0.0f;
  __syncthreads();
  for (int t = 0; t < steps; ++t) {
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
      float acc[4][V];
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int v = 0; v < V; ++v) acc[q][v] = 0.0f;
      rnn_gate_rows<V>(L.whh_t, G, H, ng, j, hp, H, H, acc);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        if (v >= nv) break;
        const float *g = gi + static_cast<size_t>(v0 + v) * gi_voice + static_cast<size_t>(t) * gi_step;
        float a[4] = {}, b[4] = {};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          if (q >= ng) break;
          a[q] = g[q * H + j];
          b[q] = acc[q][v] + L.b_hh[q * H + j];
        }
        const float h = rnn_cell(L.gru, a, b, hp[v * H + j], c[v * H + j]);
        hn[v * H + j] = h;
        if (out) out[static_cast<size_t>(v0 + v) * out_voice + static_cast<size_t>(t) * ldo + j] = h;
      }
    }
    __syncthreads();
    float *tmp = hp;
    hp = hn;
    hn = tmp;
  }
  if (h_final)
    for (int i = threadIdx.x; i < nv * H; i += blockDim.x)
      h_final[static_cast<size_t>(v0) * H + i] = hp[i];
}

void rnn_sequence_launch(const RnnDevice &L, const float *gi, size_t gi_voice, size_t gi_step,
                         int steps, int n_voices, float *out, size_t out_voice, int ldo,
                         float *h_final, cudaStream_t stream) {
  if (n_voices <= 0) return;
  const size_t per_voice = 3 * static_cast<size_t>(L.hidden);
  int V = rnn_voices_per_block(per_voice);
  while (V > 1 && V / 2 >= n_voices) V /= 2;  // no idle voice rows for small batches
  if (V == 0)
    throw Error(kUnsupported, "CUDA RNN: hidden size " + std::to_string(L.hidden) +
                                  " does not fit in shared memory");
  const dim3 grid(ceil_div(n_voices, V)), block(rnn_threads(L.hidden));
  const size_t smem = sizeof(float) * per_voice * V;
  switch (V) {
    case 8:
      NGS_LAUNCH(rnn_sequence_kernel<8>, grid, block, smem, stream)(
          L, gi, gi_voice, gi_step, steps, n_voices, out, out_voice, ldo, h_final);
      break;
    case 4:
      NGS_LAUNCH(rnn_sequence_kernel<4>, grid, block, smem, stream)(
          L, gi, gi_voice, gi_step, steps, n_voices, out, out_voice, ldo, h_final);
      break;
    case 2:
      NGS_LAUNCH(rnn_sequence_kernel<2>, grid, block, smem, stream)(
          L, gi, gi_voice, gi_step, steps, n_voices, out, out_voice, ldo, h_final);
      break;
    default:
      NGS_LAUNCH(rnn_sequence_kernel<1>, grid, block, smem, stream)(
          L, gi, gi_voice, gi_step, steps, n_voices, out, out_voice, ldo, h_final);
      break;
  }
  NGS_CUDA_CHECK_LAUNCH();
}

}  // namespace ngs::cuda
