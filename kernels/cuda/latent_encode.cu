// latent_encode (latent_encode.cuh): row-MLP launches (latent_mlp.cu) around the
// recurrences (rnn.cu); nothing leaves the device.
#include "latent_encode.cuh"

#include <algorithm>

namespace ngs::cuda {

size_t latent_encode_work_floats(const LatentDevice &d, int voices, int n) {
  const size_t V = static_cast<size_t>(std::max(voices, 1)), rows = V * std::max(n, 1);
  // input projections [V n][G], a layer's output [V n][H], final states [V][H]
  return rows * d.g_max + rows * d.h_max + V * d.h_max;
}

void latent_encode_launch(const LatentDevice &d, const float *z, int voices, int n, float *e,
                          float *work, cudaStream_t stream) {
  if (d.n_enc_rnn == 0) throw Error(kUnsupported, "CUDA backend: the model has no sequence encoder");
  if (voices <= 0 || n <= 0) return;
  const LatentConfig &c = d.cfg;
  const size_t V = static_cast<size_t>(voices), rows = V * n;
  float *gi = work;
  float *out = gi + rows * d.g_max;
  float *h_final = out + rows * d.h_max;
  RowInput in;
  in.x = z;
  in.ldx = in.x_width = c.z_dim;
  const RnnDevice &L0 = d.enc_rnn[0];
  row_mlp_launch(d.enc_start, in, static_cast<int>(rows), gi, L0.gates() * L0.hidden, stream);
  for (int k = 0; k < d.n_enc_rnn; ++k) {
    const RnnDevice &L = d.enc_rnn[k];
    const int G = L.gates() * L.hidden;
    const bool last = k + 1 == d.n_enc_rnn;
    rnn_sequence_launch(L, gi, static_cast<size_t>(n) * G, G, n, voices, last ? nullptr : out,
                        static_cast<size_t>(n) * L.hidden, L.hidden, last ? h_final : nullptr,
                        stream);
    if (last) break;
    const RnnDevice &N = d.enc_rnn[k + 1];
    RowInput x;
    x.x = out;
    x.ldx = x.x_width = L.hidden;
    row_mlp_launch(d.enc_ih[k + 1], x, static_cast<int>(rows), gi, N.gates() * N.hidden, stream);
  }
  RowInput hf;
  hf.x = h_final;
  hf.ldx = hf.x_width = d.enc_rnn[d.n_enc_rnn - 1].hidden;
  row_mlp_launch(d.enc_head, hf, voices, e, 2 * c.e_dim, stream);
}

}  // namespace ngs::cuda
