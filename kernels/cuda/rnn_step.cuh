// Streaming sequence-VAE decoder (stage rnn_step, docs/MODEL_SPEC.md §5.2) on the device: per
// voice state in device memory, slots of rnn_step_state_floats() floats each:
// [gi0: the first layer's constant input projection, G0][h_0, c_0][h_1, c_1]... (c unused
// by a GRU). A step of B voices is one launch of the step kernel (all RNN layers, a block
// per 8 voices, each layer's input projection for k >= 1 fused into the recurrent product)
// and one of the decoder_z row MLP.
#pragma once

#include <cstddef>

#include "latent_mlp.cuh"

namespace ngs::cuda {

// Floats per voice slot (a multiple of 4).
size_t rnn_step_state_floats(const LatentDevice &d);

// Starts the voice in `state_slot` (device, rnn_step_state_floats()): e [e_dim] and cls [1]
// (device; cls may be null for an unconditional model): decoder_e MLP and the first input
// projection into gi0, zero h and c. Asynchronous on the stream; checks the launch.
void rnn_start_launch(const LatentDevice &d, const float *e, const int *cls, float *state_slot,
                      cudaStream_t stream);

// One step of the voices slots[0 .. *count - 1] (distinct; *count read on the device, so a
// captured graph serves any count up to `rows`): their state is advanced and row b of z
// [rows][z_dim] is voice b's next z. slot_cls [slots]: each slot's class. h_last
// [rows][last hidden] and cls_rows [rows] are work areas; rows past *count are neither
// computed nor written (in z, h_last or cls_rows). Device memory; checks the launches.
void rnn_step_launch(const LatentDevice &d, float *state, const int *slot_cls,
                     const int *slots, const int *count, int rows, float *z, float *h_last,
                     int *cls_rows, cudaStream_t stream);

}  // namespace ngs::cuda
