// GRU / LSTM layers of the sequence VAE on the device (docs/MODEL_SPEC.md §5, PyTorch's
// gate order and formulas), shared by latent_decode, latent_encode (whole sequences,
// rnn.cu) and rnn_step (one step of many voices, rnn_step.cu).
//
// Work split, the same in both kernels: a block owns V voices (sequences) for the whole
// recurrence, their h (and c) in shared memory; thread j owns hidden unit j, computes the
// ng gate rows of unit j for all V voices (W_hh^T is stored [H][ng H], so the threads of
// a warp read consecutive weights and every h[k] is a shared-memory broadcast), and
// applies the cell itself: one __syncthreads per step, no shuffles, no grid sync. The
// recurrent matrix is read from L2/global once per step per block (shared by the block's
// V voices).
#pragma once

#include <cstddef>

#include "common.cuh"

namespace ngs::cuda {

constexpr int kRnnMaxLayers = 8;

// One layer on the device. Weights transposed: whh_t[k * G + q * H + j] = W_hh[q H + j][k],
// wih_t[k * G + r] = W_ih[r][k] (G = ng H); biases as PyTorch's (zeros when absent).
struct RnnDevice {
  const float *whh_t = nullptr, *wih_t = nullptr;
  const float *b_hh = nullptr, *b_ih = nullptr;
  int in = 0, hidden = 0;
  bool gru = false;
  __host__ __device__ int gates() const { return gru ? 3 : 4; }
};

// Launches the recurrence of one layer over `steps` steps for n_voices independent
// sequences (zero initial state). gi: the input projections (W_ih x + b_ih) of voice v,
// step t at gi + v * gi_voice + t * gi_step (gi_step 0: the same projection every step).
// out (may be null): h of voice v, step t at out + v * out_voice + t * ldo. h_final (may
// be null): [n_voices][H], the last step's h. Device pointers; checks the launch.
void rnn_sequence_launch(const RnnDevice &L, const float *gi, size_t gi_voice, size_t gi_step,
                         int steps, int n_voices, float *out, size_t out_voice, int ldo,
                         float *h_final, cudaStream_t stream);

// Voices per block (8, 4, 2 or 1) so that `floats_per_voice` floats of shared memory per
// voice fit in 48 KiB; 0 when not even one fits.
int rnn_voices_per_block(size_t floats_per_voice);

}  // namespace ngs::cuda

#if defined(__CUDACC__) || defined(NGS_CUDA_EMULATION)
namespace ngs::cuda {

__device__ __forceinline__ float rnn_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// The cell of unit j of one voice: gi[q], gh[q] are the input and recurrent
// pre-activations of gate q (biases included). GRU (r, z, n): n = tanh(gi_n + r gh_n),
// h = (1 - z) n + z h_prev. LSTM (i, f, g, o): c = f c + i g, h = o tanh(c).
__device__ __forceinline__ float rnn_cell(bool gru, const float *gi, const float *gh,
                                          float h_prev, float &c) {
  if (gru) {
    const float r = rnn_sigmoid(gi[0] + gh[0]);
    const float z = rnn_sigmoid(gi[1] + gh[1]);
    const float n = tanhf(gi[2] + r * gh[2]);
    return (1.0f - z) * n + z * h_prev;
  }
  const float i = rnn_sigmoid(gi[0] + gh[0]);
  const float f = rnn_sigmoid(gi[1] + gh[1]);
  const float g = tanhf(gi[2] + gh[2]);
  const float o = rnn_sigmoid(gi[3] + gh[3]);
  c = f * c + i * g;
  return o * tanhf(c);
}

// acc[q][v] += sum_k wt[k * G + q * H + j] * x[v * ldx + k] for k < K, the gate rows of
// unit j (ng of them) against the V shared-memory rows x (rows past the live voices are
// zeros, so their sums are unused but finite). Every loop over q and v is unrolled (q
// against the bound 4, guarded by ng) so that acc stays in registers.
template <int V>
__device__ __forceinline__ void rnn_gate_rows(const float *__restrict__ wt, int G, int H, int ng,
                                              int j, const float *x, int ldx, int K,
                                              float (&acc)[4][V]) {
  for (int k = 0; k < K; ++k) {
    const float *w = wt + static_cast<size_t>(k) * G + j;
    float xv[V];
#pragma unroll
    for (int v = 0; v < V; ++v) xv[v] = x[v * ldx + k];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (q >= ng) break;
      const float wq = w[q * H];
#pragma unroll
      for (int v = 0; v < V; ++v) acc[q][v] = fmaf(wq, xv[v], acc[q][v]);
    }
  }
}

}  // namespace ngs::cuda
#endif
