// Decoder MLP (stage 1, "spectrum"): z [n][z_dim] -> S [n][F], hidden layers with folded
// BN and LeakyReLU(0.2), the output layer, mod_sigmoid and the window identity.
#pragma once

#include "common.cuh"

namespace ngs::cuda {

constexpr int kMlpMaxLayers = 8;  // hidden layers + the output layer

// Which kernel computes the MLP (an A/B on a GPU: NGS_CUDA_MLP=rows|tiled for the engine).
//   kRows (default): one launch per layer; a block computes 32 output rows x 8 grains, so
//     one voice's 41 grains give 8 x 6 = 48 blocks per hidden layer and 17 x 6 = 102 for the
//     output layer; a warp computes 4 rows x 8 grains (each shared-memory load of an input
//     feeds 4 FMAs), then one transpose reduction (31 shuffles for its 32 sums), bias
//     prefetched; then a small kernel for the window identity. Needs a workspace.
//   kTiled (part 1): one launch; a block per tile of T grains keeps every layer's
//     activations in shared memory, a warp per output row (one 4-byte shared load per
//     FMA, 5 shuffles per row and grain).
enum class MlpKernel { kRows, kTiled };

// Device pointers of the decoder MLP. Weights row-major [out][in], fp32 or fp16 (w_half);
// biases fp32. dims[0] = z_dim, dims[1..n_layers-1] hidden widths, dims[n_layers] = F.
struct MlpDevice {
  const float *w[kMlpMaxLayers] = {};
  const __half *w_half[kMlpMaxLayers] = {};
  const float *b[kMlpMaxLayers] = {};
  int dims[kMlpMaxLayers + 1] = {};
  int n_layers = 0;  // n_linears + 1
  bool half = false;  // use w_half
  MlpKernel kernel = MlpKernel::kRows;
};

// Device floats of the workspace decoder_mlp_launch needs for n grains (0 for kTiled).
size_t decoder_mlp_work_floats(const MlpDevice &mlp, int n);

// Grains per block the launcher uses for this MLP: the largest of 8, 4, 2, 1 whose
// activations fit in 96 KiB of shared memory (sm_86/sm_89 allow 99 KiB per block).
int decoder_mlp_tile(const MlpDevice &mlp);

// Once per MLP shape, before any launch (not during a graph capture): checks that the
// tile's shared memory fits smem_optin (the device's sharedMemPerBlockOptin; kUnsupported
// with the sizes otherwise) and opts the kernel in to smem_optin, the same value for every
// model, so that loading another model never lowers the limit an earlier one needs.
void decoder_mlp_prepare(const MlpDevice &mlp, size_t smem_optin);

// z, S: device arrays [n][dims[0]], [n][F]; work: decoder_mlp_work_floats(mlp, n) device
// floats (kRows; may be null for kTiled). count: null, or a device int read by the kernels:
// only the first min(n, *count) grains are computed and written (a graph captured for a
// bucket of n grains serves every smaller count). Checks the launches.
void decoder_mlp_launch(const MlpDevice &mlp, const float *z, int n, float *S,
                        cudaStream_t stream, float *work = nullptr, const int *count = nullptr);

}  // namespace ngs::cuda
