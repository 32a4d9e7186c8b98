// Sequence-VAE encoder (stage latent_encode, docs/MODEL_SPEC.md §5.1) on the device,
// batched over V independent series: z [V][n][z_dim] -> e_mu, e_logvar.
#pragma once

#include <cstddef>

#include "latent_mlp.cuh"

namespace ngs::cuda {

// Device floats of the work area latent_encode_launch needs for V series of n steps.
size_t latent_encode_work_floats(const LatentDevice &d, int voices, int n);

// z [V][n][z_dim] -> e [V][2 e_dim] (e_mu, then e_logvar after Hardtanh(-5, 5)); device
// memory. Launches encoder_z MLP + LayerNorm + the first RNN layer's input projection
// over all V n rows, each layer's recurrence (the last keeps only its final state), the
// input projections of the further layers, and encoder_e MLP + the mu/logvar heads.
// Throws kUnsupported when the model has no sequence encoder.
void latent_encode_launch(const LatentDevice &d, const float *z, int voices, int n, float *e,
                          float *work, cudaStream_t stream);

}  // namespace ngs::cuda
