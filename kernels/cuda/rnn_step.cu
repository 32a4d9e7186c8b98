// rnn_step (rnn_step.cuh): the step kernel (a block per V voices; per layer, thread j
// computes unit j's gate rows against the voices' previous h and, for layers k >= 1, the
// new h of the layer below, both read from shared memory; the state is read and written in
// place in the voices' slots), then the decoder_z row MLP.
#include "rnn_step.cuh"

#include <algorithm>

#include "rnn.cuh"

namespace ngs::cuda {

namespace {
constexpr int kStepMaxThreads = 256;

struct StepLayers {
  RnnDevice L[kRnnMaxLayers];
  int off_h[kRnnMaxLayers], off_c[kRnnMaxLayers];
  int n_layers = 0;
  int h_max = 0;
  size_t stride = 0;
};

StepLayers step_layers(const LatentDevice &d) {
  StepLayers s;
  s.n_layers = d.n_dec_rnn;
  s.h_max = d.h_max;
  size_t off = static_cast<size_t>(d.dec_rnn[0].gates()) * d.dec_rnn[0].hidden;
  for (int k = 0; k < d.n_dec_rnn; ++k) {
    s.L[k] = d.dec_rnn[k];
    s.off_h[k] = static_cast<int>(off);
    s.off_c[k] = static_cast<int>(off + d.dec_rnn[k].hidden);
    off += 2 * static_cast<size_t>(d.dec_rnn[k].hidden);
  }
  s.stride = (off + 3) / 4 * 4;
  return s;
}

size_t step_smem_floats_per_voice(const LatentDevice &d) { return 3 * static_cast<size_t>(d.h_max); }
}  // namespace

size_t rnn_step_state_floats(const LatentDevice &d) { return step_layers(d).stride; }

void rnn_start_launch(const LatentDevice &d, const float *e, const int *cls, float *state_slot,
                      cudaStream_t stream) {
  const RnnDevice &L0 = d.dec_rnn[0];
  const int G0 = L0.gates() * L0.hidden;
  RowInput in;
  in.x = e;
  in.ldx = in.x_width = d.cfg.e_dim;
  in.cls = cls;
  in.n_conds = d.cfg.n_conds;
  row_mlp_launch(d.dec_start, in, 1, state_slot, G0, stream);
  const size_t stride = rnn_step_state_floats(d);
  NGS_CUDA_CHECK(cudaMemsetAsync(state_slot + G0, 0, sizeof(float) * (stride - G0), stream));
}

template <int V>
static __global__ void __launch_bounds__(kStepMaxThreads)
    rnn_step_kernel(StepLayers s, float *__restrict__ state, const int *__restrict__ slot_cls,
                    const int *__restrict__ slots, const int *__restrict__ count,
                    float *__restrict__ h_last, int ld_last, int *__restrict__ cls_rows) {
  NGS_KERNEL_BOUNDS(kStepMaxThreads);
  const int B = *count;
  const int v0 = blockIdx.x * V;
  if (v0 >= B) return;  // the whole block: past the live voices
  const int nv = B - v0 < V ? B - v0 : V;
  NGS_DYNAMIC_SHARED(float, smem);
  const int Hm = s.h_max;
  float *x = smem, *xn = smem + V * Hm;  // a layer's input (the new h below) / output
  float *hp = smem + 2 * V * Hm;          // the layer's previous h
  for (int i = threadIdx.x; i < 3 * V * Hm; i += blockDim.x) smem[i] = 0.0f;
  __syncthreads();
  for (int k = 0; k < s.n_layers; ++k) {
    const RnnDevice &L = s.L[k];
    const int H = L.hidden, ng = L.gates(), G = ng * H;
    for (int i = threadIdx.x; i < nv * H; i += blockDim.x) {
      const int v = i / H, j = i - v * H;
      hp[v * Hm + j] = state[static_cast<size_t>(slots[v0 + v]) * s.stride + s.off_h[k] + j];
    }
    __syncthreads();
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
      float ah[4][V], ai[4][V];
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int v = 0; v < V; ++v) ah[q][v] = ai[q][v] = 0.0f;
      rnn_gate_rows<V>(L.whh_t, G, H, ng, j, hp, Hm, H, ah);
      if (k > 0) rnn_gate_rows<V>(L.wih_t, G, H, ng, j, x, Hm, L.in, ai);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        if (v >= nv) break;
        float *st = state + static_cast<size_t>(slots[v0 + v]) * s.stride;
        float a[4] = {}, b[4] = {};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          if (q >= ng) break;
          a[q] = k == 0 ? st[q * H + j] : ai[q][v] + L.b_ih[q * H + j];
          b[q] = ah[q][v] + L.b_hh[q * H + j];
        }
        float c = st[s.off_c[k] + j];
        const float h = rnn_cell(L.gru, a, b, hp[v * Hm + j], c);
        st[s.off_c[k] + j] = c;
        st[s.off_h[k] + j] = h;
        xn[v * Hm + j] = h;
      }
    }
    __syncthreads();
    float *tmp = x;
    x = xn;
    xn = tmp;
  }
  const int H = s.L[s.n_layers - 1].hidden;
  for (int i = threadIdx.x; i < nv * H; i += blockDim.x) {
    const int v = i / H, j = i - v * H;
    h_last[static_cast<size_t>(v0 + v) * ld_last + j] = x[v * Hm + j];
  }
  for (int v = threadIdx.x; v < nv; v += blockDim.x) cls_rows[v0 + v] = slot_cls[slots[v0 + v]];
}

void rnn_step_launch(const LatentDevice &d, float *state, const int *slot_cls,
                     const int *slots, const int *count, int rows, float *z, float *h_last,
                     int *cls_rows, cudaStream_t stream) {
  if (rows <= 0) return;
  const StepLayers s = step_layers(d);
  const size_t per_voice = step_smem_floats_per_voice(d);
  int V = rnn_voices_per_block(per_voice);
  while (V > 1 && V / 2 >= rows) V /= 2;
  if (V == 0)
    throw Error(kUnsupported, "CUDA rnn_step: hidden size " + std::to_string(d.h_max) +
                                  " does not fit in shared memory");
  const int H = s.L[s.n_layers - 1].hidden;
  const dim3 grid(ceil_div(rows, V)), block(std::min(kStepMaxThreads, ceil_div(d.h_max, 32) * 32));
  const size_t smem = sizeof(float) * per_voice * V;
  switch (V) {
    case 8:
      NGS_LAUNCH(rnn_step_kernel<8>, grid, block, smem, stream)(s, state, slot_cls, slots, count, h_last, H, cls_rows);
      break;
    case 4:
      NGS_LAUNCH(rnn_step_kernel<4>, grid, block, smem, stream)(s, state, slot_cls, slots, count, h_last, H, cls_rows);
      break;
    case 2:
      NGS_LAUNCH(rnn_step_kernel<2>, grid, block, smem, stream)(s, state, slot_cls, slots, count, h_last, H, cls_rows);
      break;
    default:
      NGS_LAUNCH(rnn_step_kernel<1>, grid, block, smem, stream)(s, state, slot_cls, slots, count, h_last, H, cls_rows);
      break;
  }
  NGS_CUDA_CHECK_LAUNCH();
  RowInput in;
  in.x = h_last;
  in.ldx = in.x_width = H;
  in.cls = cls_rows;
  in.n_conds = d.cfg.n_conds;
  in.count = count;  // rows past the live voices: not computed
  row_mlp_launch(d.dec_z, in, rows, z, d.cfg.z_dim, stream);
}

}  // namespace ngs::cuda
