// Decoder MLP (stage 1, "spectrum"): z [n][z_dim] -> S [n][F], hidden layers with folded
// BN and LeakyReLU(0.2), the output layer, mod_sigmoid and the window identity.
#pragma once

#include "common.cuh"

namespace ngs::cuda {

constexpr int kMlpMaxLayers = 8;  // hidden layers + the output layer

// Device pointers of the decoder MLP. Weights row-major [out][in], fp32 or fp16 (w_half);
// biases fp32. dims[0] = z_dim, dims[1..n_layers-1] hidden widths, dims[n_layers] = F.
struct MlpDevice {
  const float *w[kMlpMaxLayers] = {};
  const __half *w_half[kMlpMaxLayers] = {};
  const float *b[kMlpMaxLayers] = {};
  int dims[kMlpMaxLayers + 1] = {};
  int n_layers = 0;  // n_linears + 1
  bool half = false;  // use w_half
};

// Grains per block the launcher uses for this MLP: the largest of 8, 4, 2, 1 whose
// activations fit in 96 KiB of shared memory (sm_86/sm_89 allow 99 KiB per block).
int decoder_mlp_tile(const MlpDevice &mlp);

// Once per MLP shape, before any launch (not during a graph capture): checks that the
// tile's shared memory fits smem_optin (the device's sharedMemPerBlockOptin; kUnsupported
// with the sizes otherwise) and opts the kernel in to smem_optin, the same value for every
// model, so that loading another model never lowers the limit an earlier one needs.
void decoder_mlp_prepare(const MlpDevice &mlp, size_t smem_optin);

// z, S: device arrays [n][dims[0]], [n][F]. Checks the launch.
void decoder_mlp_launch(const MlpDevice &mlp, const float *z, int n, float *S,
                        cudaStream_t stream);

}  // namespace ngs::cuda
