// Sequence-VAE decoder (stage latent_decode, docs/MODEL_SPEC.md §5.2) on the device, batched
// over V independent voices: e [V][e_dim] (+ class) -> z [V][n][z_dim].
#pragma once

#include <cstddef>

#include "latent_mlp.cuh"

namespace ngs::cuda {

// Device floats of the work area latent_decode_launch needs for V voices of n steps.
size_t latent_decode_work_floats(const LatentDevice &d, int voices, int n);

// e [V][e_dim], cls [V] (class indices; may be null when the model is unconditional),
// z [V][n][z_dim], work: all device memory. Launches, in order: decoder_e MLP + the first
// RNN layer's input projection (once per voice: its input is the same at every step), the
// first layer's recurrence, for each further layer its input projection over all V n steps
// (one launch) then its recurrence, and decoder_z MLP + LayerNorm + the output layer over
// all V n rows. Checks every launch.
void latent_decode_launch(const LatentDevice &d, const float *e, const int *cls, int voices,
                          int n, float *z, float *work, cudaStream_t stream);

}  // namespace ngs::cuda
