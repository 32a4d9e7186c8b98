// latent_decode (latent_decode.cuh): a sequence of launches of the row-MLP kernel
// (latent_mlp.cu) and the recurrence kernel (rnn.cu); nothing leaves the device.
#include "latent_decode.cuh"

#include <algorithm>

namespace ngs::cuda {

size_t latent_decode_work_floats(const LatentDevice &d, int voices, int n) {
  const size_t V = static_cast<size_t>(std::max(voices, 1)), rows = V * std::max(n, 1);
  // gi0 [V][G0], two layer outputs [V n][H], input projections [V n][G]
  return V * d.g_max + 2 * rows * d.h_max + rows * d.g_max;
}

void latent_decode_launch(const LatentDevice &d, const float *e, const int *cls, int voices,
                          int n, float *z, float *work, cudaStream_t stream) {
  if (voices <= 0 || n <= 0) return;
  const LatentConfig &c = d.cfg;
  const size_t V = static_cast<size_t>(voices), rows = V * n;
  float *gi0 = work;
  float *buf[2] = {gi0 + V * d.g_max, gi0 + V * d.g_max + rows * d.h_max};
  float *gi = buf[1] + rows * d.h_max;
  // decoder_e MLP and the first layer's input projection: [e ; one_hot] -> gi0 [V][G0].
  RowInput in;
  in.x = e;
  in.ldx = in.x_width = c.e_dim;
  in.cls = cls;
  in.n_conds = c.n_conds;
  const RnnDevice &L0 = d.dec_rnn[0];
  const int G0 = L0.gates() * L0.hidden;
  row_mlp_launch(d.dec_start, in, voices, gi0, G0, stream);
  rnn_sequence_launch(L0, gi0, G0, 0, n, voices, buf[0], static_cast<size_t>(n) * L0.hidden,
                      L0.hidden, nullptr, stream);
  int cur = 0;
  for (int k = 1; k < d.n_dec_rnn; ++k) {
    const RnnDevice &L = d.dec_rnn[k];
    const int G = L.gates() * L.hidden;
    RowInput x;
    x.x = buf[cur];
    x.ldx = x.x_width = d.dec_rnn[k - 1].hidden;
    row_mlp_launch(d.dec_ih[k], x, static_cast<int>(rows), gi, G, stream);
    rnn_sequence_launch(L, gi, static_cast<size_t>(n) * G, G, n, voices, buf[cur ^ 1],
                        static_cast<size_t>(n) * L.hidden, L.hidden, nullptr, stream);
    cur ^= 1;
  }
  // decoder_z over every step of every voice: [h ; one_hot] -> z.
  RowInput hz;
  hz.x = buf[cur];
  hz.ldx = hz.x_width = d.dec_rnn[d.n_dec_rnn - 1].hidden;
  hz.cls = cls;
  hz.rows_per_class = n;
  hz.n_conds = c.n_conds;
  row_mlp_launch(d.dec_z, hz, static_cast<int>(rows), z, c.z_dim, stream);
}

}  // namespace ngs::cuda
