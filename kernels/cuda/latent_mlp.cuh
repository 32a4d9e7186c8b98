// The per-row MLPs of the sequence VAE (docs/MODEL_SPEC.md §5) and its device weights,
// shared by the stages latent_decode, latent_encode and rnn_step: a chain of Linear
// layers (each optionally followed by LayerNorm, then LeakyReLU 0.2 or nothing; the last
// may clamp a tail of its outputs to [-5, 5], the Hardtanh of logvar) applied to every
// row of a batch, the input row optionally extended by a one-hot class vector. The RNN
// input projections are such chains too (one layer, no activation), so "decoder_e MLP +
// first input projection" and "encoder_z MLP + first input projection" are one launch.
#pragma once

#include <memory>

#include "common.cuh"
#include "rnn.cuh"
#include "weights.h"

namespace ngs::cuda {

constexpr int kRowMlpMaxLayers = 12;

// y = W x + b (W^T stored [in][out], so the threads of a block, one per output, read
// consecutive addresses), then LayerNorm (eps 1e-5, affine) when ln_g, then LeakyReLU
// when lrelu; outputs o >= clamp_from are clamped to [-5, 5].
struct RowLayer {
  const float *wt = nullptr;  // [in][out]
  const float *b = nullptr;   // [out]
  const float *ln_g = nullptr, *ln_b = nullptr;
  int in = 0, out = 0;
  bool lrelu = false;
  int clamp_from = 1 << 30;
};

struct RowMlp {
  RowLayer layer[kRowMlpMaxLayers];
  int n_layers = 0;
  int ld = 0;  // widest input or intermediate row (the shared-memory row stride)
  void add(const RowLayer &l);  // appends, updates ld; throws kBadModel when full
};

// Input rows: x [rows][ldx] with x_width values each, then, when n_conds > 0, one_hot(
// cls[r / rows_per_class]) of n_conds values (cls[...] < 0 or >= n_conds: all zeros).
struct RowInput {
  const float *x = nullptr;
  int ldx = 0, x_width = 0;
  const int *cls = nullptr;  // device, may be null when n_conds == 0
  int rows_per_class = 1, n_conds = 0;
  // Device, may be null: only the first min(rows, *count) rows are computed (the rest of y
  // is not written), so a graph captured for a bucket of `rows` serves every smaller count.
  const int *count = nullptr;
};

// y [rows][ldy] = the chain applied to every input row. All pointers are device pointers.
// Checks the launch. Rows per block: the largest of 8, 4, 2, 1 whose two activation
// buffers fit in 48 KiB of shared memory (the chain must fit with 1: RowMlp::ld <= 6144).
void row_mlp_launch(const RowMlp &m, const RowInput &in, int rows, float *y, int ldy,
                    cudaStream_t stream);
constexpr int kRowMlpMaxWidth = 6144;

// The sequence VAE's weights on the device (uploaded once, one allocation, freed by the
// destructor), in the layouts the kernels read, and the chains built from them.
class LatentDevice {
 public:
  // Throws kBadModel for weights the kernels cannot run (no RNN layer, widths above the
  // shared-memory limits, wrong shapes), kBackendError on a CUDA failure.
  explicit LatentDevice(const LatentWeights &w);
  ~LatentDevice();
  LatentDevice(const LatentDevice &) = delete;
  LatentDevice &operator=(const LatentDevice &) = delete;

  LatentConfig cfg;
  // Decoder (latent_decode, rnn_step): decoder_e MLP + dec_rnn[0]'s input projection
  // (-> gi0 [G0], the constant input projection of every step); dec_rnn[k] (k >= 1) input
  // projections; the recurrences; decoder_z MLP + LayerNorm + the output layer.
  RowMlp dec_start;
  RowMlp dec_ih[kRnnMaxLayers];  // [0] unused
  RnnDevice dec_rnn[kRnnMaxLayers];
  RowMlp dec_z;
  // Encoder (latent_encode): encoder_z MLP + enc_rnn[0]'s input projection; enc_rnn[k]
  // (k >= 1) input projections; the recurrences; encoder_e MLP + the mu and logvar heads
  // as one layer of 2 e_dim outputs (logvar's half clamped).
  RowMlp enc_start;
  RowMlp enc_ih[kRnnMaxLayers];
  RnnDevice enc_rnn[kRnnMaxLayers];
  RowMlp enc_head;
  int n_dec_rnn = 0, n_enc_rnn = 0;
  int h_max = 0, g_max = 0;  // widest RNN hidden size and gate row (ng * hidden)

 private:
  float *mem_ = nullptr;
};

}  // namespace ngs::cuda
