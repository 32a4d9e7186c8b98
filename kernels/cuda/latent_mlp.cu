// Row MLPs of the sequence VAE (latent_mlp.cuh): a block per tile of T rows, the rows'
// activations in shared memory (two buffers), one thread per output with T accumulators
// (W^T [in][out]: consecutive threads read consecutive weights; x is a broadcast), then
// LayerNorm with one warp per row. And the upload of the sequence VAE's weights.
#include "latent_mlp.cuh"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace ngs::cuda {

namespace {
constexpr int kRowThreads = 256;
constexpr size_t kRowSmemLimit = 48 * 1024;

// Shared-memory row stride: every layer's input, and every output kept in shared memory
// (all but the last layer's, unless the last has a LayerNorm).
int row_ld(const RowMlp &m) {
  int ld = 0;
  for (int l = 0; l < m.n_layers; ++l) {
    const RowLayer &L = m.layer[l];
    ld = std::max(ld, L.in);
    if (l + 1 < m.n_layers || L.ln_g) ld = std::max(ld, L.out);
  }
  return ld;
}

size_t row_smem_bytes(int ld, int tile) { return sizeof(float) * 2 * static_cast<size_t>(tile) * ld; }
}  // namespace

void RowMlp::add(const RowLayer &l) {
  if (n_layers == kRowMlpMaxLayers)
    throw Error(kBadModel, "CUDA backend: more than " + std::to_string(kRowMlpMaxLayers) +
                               " layers in one MLP of the sequence VAE");
  if (n_layers > 0 && layer[n_layers - 1].out != l.in)
    throw Error(kBadModel, "CUDA backend: sequence-VAE layer of " + std::to_string(l.in) +
                               " inputs after one of " +
                               std::to_string(layer[n_layers - 1].out) + " outputs");
  layer[n_layers++] = l;
  ld = row_ld(*this);
  if (ld > kRowMlpMaxWidth)
    throw Error(kBadModel, "CUDA backend: a sequence-VAE layer of width " + std::to_string(ld) +
                               " (at most " + std::to_string(kRowMlpMaxWidth) + ")");
}

__device__ __forceinline__ float row_act(const RowLayer &L, int o, float v) {
  if (L.lrelu) v = v > 0.0f ? v : 0.2f * v;
  if (o >= L.clamp_from) v = fminf(5.0f, fmaxf(-5.0f, v));
  return v;
}

template <int T>
static __global__ void __launch_bounds__(kRowThreads)
    row_mlp_kernel(RowMlp m, RowInput in, int rows, float *__restrict__ y, int ldy) {
  NGS_KERNEL_BOUNDS(kRowThreads);
  NGS_DYNAMIC_SHARED(float, smem);
  const int ld = m.ld;
  float *x = smem, *xn = smem + T * ld;
  const int r0 = blockIdx.x * T;
  const int live = in.count && *in.count < rows ? *in.count : rows;
  if (r0 >= live) return;  // the whole block: past the live rows
  const int nt = live - r0 < T ? live - r0 : T;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_warps = blockDim.x >> 5;

  const int w0 = in.x_width + in.n_conds;
  for (int i = tid; i < T * w0; i += blockDim.x) {
    const int t = i / w0, k = i - t * w0;
    float v = 0.0f;
    if (t < nt) {
      const int r = r0 + t;
      if (k < in.x_width) v = in.x[static_cast<size_t>(r) * in.ldx + k];
      else v = k - in.x_width == in.cls[r / in.rows_per_class] ? 1.0f : 0.0f;
    }
    x[t * ld + k] = v;
  }
  __syncthreads();

  for (int l = 0; l < m.n_layers; ++l) {
    const RowLayer &L = m.layer[l];
    const bool last = l == m.n_layers - 1, ln = L.ln_g != nullptr;
    const bool direct = last && !ln;  // straight to global memory
    for (int o = tid; o < L.out; o += blockDim.x) {
      float acc[T];
#pragma unroll
      for (int t = 0; t < T; ++t) acc[t] = 0.0f;
      for (int k = 0; k < L.in; ++k) {
        const float w = L.wt[static_cast<size_t>(k) * L.out + o];
#pragma unroll
        for (int t = 0; t < T; ++t) acc[t] = fmaf(w, x[t * ld + k], acc[t]);
      }
      const float b = L.b[o];
      for (int t = 0; t < nt; ++t) {
        float v = acc[t] + b;
        if (!ln) v = row_act(L, o, v);
        if (direct) y[static_cast<size_t>(r0 + t) * ldy + o] = v;
        else xn[t * ld + o] = v;
      }
    }
    __syncthreads();
    if (ln) {
      // LayerNorm of each row (two passes, as the CPU), one warp per row.
      for (int t = warp; t < nt; t += n_warps) {
        float *v = xn + t * ld;
        float s = 0.0f;
        for (int o = lane; o < L.out; o += 32) s += v[o];
        const float mean = warp_sum(s) / static_cast<float>(L.out);
        float q = 0.0f;
        for (int o = lane; o < L.out; o += 32) q += (v[o] - mean) * (v[o] - mean);
        const float inv = 1.0f / sqrtf(warp_sum(q) / static_cast<float>(L.out) + 1e-5f);
        for (int o = lane; o < L.out; o += 32) {
          const float u = row_act(L, o, (v[o] - mean) * inv * L.ln_g[o] + L.ln_b[o]);
          if (last) y[static_cast<size_t>(r0 + t) * ldy + o] = u;
          else v[o] = u;
        }
      }
      __syncthreads();
    }
    float *tmp = x;
    x = xn;
    xn = tmp;
  }
}

void row_mlp_launch(const RowMlp &m, const RowInput &in, int rows, float *y, int ldy,
                    cudaStream_t stream) {
  if (rows <= 0 || m.n_layers == 0) return;
  if (in.x_width + in.n_conds != m.layer[0].in || in.x_width + in.n_conds > m.ld)
    throw Error(kInvalidArgument, "CUDA row MLP: input of " +
                                      std::to_string(in.x_width + in.n_conds) +
                                      " values for a layer of " + std::to_string(m.layer[0].in));
  int T = 8;
  while (T > 1 && (row_smem_bytes(m.ld, T) > kRowSmemLimit || T / 2 >= rows)) T /= 2;
  const size_t smem = row_smem_bytes(m.ld, T);
  const dim3 grid(ceil_div(rows, T)), block(kRowThreads);
  switch (T) {
    case 8: NGS_LAUNCH(row_mlp_kernel<8>, grid, block, smem, stream)(m, in, rows, y, ldy); break;
    case 4: NGS_LAUNCH(row_mlp_kernel<4>, grid, block, smem, stream)(m, in, rows, y, ldy); break;
    case 2: NGS_LAUNCH(row_mlp_kernel<2>, grid, block, smem, stream)(m, in, rows, y, ldy); break;
    default: NGS_LAUNCH(row_mlp_kernel<1>, grid, block, smem, stream)(m, in, rows, y, ldy); break;
  }
  NGS_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------------------------------
// LatentDevice: every array appended to one host image (16-byte aligned pieces), uploaded
// with one copy; the recorded slots then get their device pointers.

namespace {

class Image {
 public:
  void put(const float **slot, const float *src, size_t n) {
    fix_.emplace_back(slot, data_.size());
    if (src) data_.insert(data_.end(), src, src + n);
    else data_.insert(data_.end(), n, 0.0f);
    data_.resize((data_.size() + 3) / 4 * 4, 0.0f);
  }
  // w [rows][cols] -> [cols][rows].
  void put_transposed(const float **slot, const float *w, int rows, int cols) {
    std::vector<float> t(static_cast<size_t>(rows) * cols);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c)
        t[static_cast<size_t>(c) * rows + r] = w[static_cast<size_t>(r) * cols + c];
    put(slot, t.data(), t.size());
  }
  float *upload() {
    float *mem = nullptr;
    NGS_CUDA_CHECK(cudaMalloc(&mem, sizeof(float) * std::max<size_t>(data_.size(), 1)));
    const cudaError_t err =
        cudaMemcpy(mem, data_.data(), sizeof(float) * data_.size(), cudaMemcpyHostToDevice);
    if (err != cudaSuccess) {
      cudaFree(mem);
      NGS_CUDA_CHECK(err);
    }
    for (auto &f : fix_) *f.first = mem + f.second;
    return mem;
  }

 private:
  std::vector<float> data_;
  std::vector<std::pair<const float **, size_t>> fix_;
};

void check_linear(const Linear &l, const char *what) {
  if (!l.w || l.in <= 0 || l.out <= 0)
    throw Error(kBadModel, std::string("CUDA backend: sequence-VAE layer ") + what +
                               " has missing weights");
}

}  // namespace

LatentDevice::LatentDevice(const LatentWeights &w) : cfg(w.cfg) {
  const LatentConfig &c = w.cfg;
  const bool gru = c.rnn == RnnType::kGru;
  const int ng = c.gates();
  if (w.dec_rnn.empty() || w.dec_rnn.size() > static_cast<size_t>(kRnnMaxLayers) ||
      w.enc_rnn.size() > static_cast<size_t>(kRnnMaxLayers))
    throw Error(kBadModel, "CUDA backend: the sequence VAE needs 1 .. " +
                               std::to_string(kRnnMaxLayers) + " RNN layers");
  n_dec_rnn = static_cast<int>(w.dec_rnn.size());
  n_enc_rnn = static_cast<int>(w.enc_rnn.size());
  // RowMlp::add stores copies: the pointer slots of the image are those of the copies, so
  // each layer is added before its weights' slots are recorded.
  Image img;
  auto add_linear = [&](RowMlp &m, const Linear &l, bool lrelu, const char *what) {
    check_linear(l, what);
    RowLayer r;
    r.in = l.in;
    r.out = l.out;
    r.lrelu = lrelu;
    m.add(r);
    RowLayer &s = m.layer[m.n_layers - 1];
    img.put_transposed(&s.wt, l.w, l.out, l.in);
    img.put(&s.b, l.b, l.out);
    return &s;
  };
  auto add_ln = [&](RowMlp &m, const LayerNormLinear &l, const char *what) {
    RowLayer *s = add_linear(m, l.lin, true, what);
    if (!l.ln_w || !l.ln_b)
      throw Error(kBadModel, std::string("CUDA backend: ") + what + " has no LayerNorm weights");
    img.put(&s->ln_g, l.ln_w, l.lin.out);
    img.put(&s->ln_b, l.ln_b, l.lin.out);
  };
  auto add_rnn = [&](RnnDevice &d, RowMlp &ih, const RnnLayer &l, const char *what) {
    if (!l.w_ih || !l.w_hh || l.in <= 0 || l.hidden <= 0)
      throw Error(kBadModel, std::string("CUDA backend: ") + what + " has missing weights");
    const int H = l.hidden, G = ng * H;
    if (rnn_voices_per_block(3 * static_cast<size_t>(H)) == 0)
      throw Error(kBadModel, "CUDA backend: RNN hidden size " + std::to_string(H) +
                                 " does not fit in shared memory");
    d.in = l.in;
    d.hidden = H;
    d.gru = gru;
    RowLayer r;
    r.in = l.in;
    r.out = G;
    ih.add(r);
    RowLayer &s = ih.layer[ih.n_layers - 1];
    img.put_transposed(&s.wt, l.w_ih, G, l.in);
    img.put(&s.b, l.b_ih, G);
    img.put_transposed(&d.whh_t, l.w_hh, G, H);
    img.put(&d.b_hh, l.b_hh, G);
    h_max = std::max(h_max, H);
    g_max = std::max(g_max, G);
    return &s;
  };
  // The RNN's input-projection slots: the RowLayer of the chain that computes it.
  const RowLayer *dec_ih_layer[kRnnMaxLayers] = {};
  for (const Linear &l : w.dec_e) add_linear(dec_start, l, true, "decoder_e");
  dec_ih_layer[0] = add_rnn(dec_rnn[0], dec_start, w.dec_rnn[0], "decoder_rnn layer 0");
  auto check_stack = [](const std::vector<RnnLayer> &v, const char *what) {
    for (size_t k = 1; k < v.size(); ++k)
      if (v[k].in != v[k - 1].hidden)
        throw Error(kBadModel, std::string("CUDA backend: ") + what + " layer " +
                                   std::to_string(k) + " takes " + std::to_string(v[k].in) +
                                   " inputs after " + std::to_string(v[k - 1].hidden) + " units");
  };
  check_stack(w.dec_rnn, "decoder_rnn");
  check_stack(w.enc_rnn, "encoder_rnn");
  for (int k = 1; k < n_dec_rnn; ++k)
    dec_ih_layer[k] = add_rnn(dec_rnn[k], dec_ih[k], w.dec_rnn[k], "decoder_rnn");
  for (const LayerNormLinear &l : w.dec_z) add_ln(dec_z, l, "decoder_z");
  add_linear(dec_z, w.dec_z_out, false, "decoder_z output");
  if (n_enc_rnn > 0) {
    for (const LayerNormLinear &l : w.enc_z) add_ln(enc_start, l, "encoder_z");
    add_rnn(enc_rnn[0], enc_start, w.enc_rnn[0], "encoder_rnn layer 0");
    for (int k = 1; k < n_enc_rnn; ++k) add_rnn(enc_rnn[k], enc_ih[k], w.enc_rnn[k], "encoder_rnn");
    for (const Linear &l : w.enc_e) add_linear(enc_head, l, true, "encoder_e");
    // mu and logvar as one layer [2 e_dim][e_dim].
    check_linear(w.mu, "mu");
    check_linear(w.logvar, "logvar");
    if (w.mu.in != w.logvar.in || w.mu.out != w.logvar.out)
      throw Error(kBadModel, "CUDA backend: mu and logvar have different shapes");
    const int E = w.mu.out, K = w.mu.in;
    std::vector<float> wcat(static_cast<size_t>(2) * E * K), bcat(2 * static_cast<size_t>(E), 0.0f);
    std::copy(w.mu.w, w.mu.w + static_cast<size_t>(E) * K, wcat.begin());
    std::copy(w.logvar.w, w.logvar.w + static_cast<size_t>(E) * K, wcat.begin() + static_cast<size_t>(E) * K);
    if (w.mu.b) std::copy(w.mu.b, w.mu.b + E, bcat.begin());
    if (w.logvar.b) std::copy(w.logvar.b, w.logvar.b + E, bcat.begin() + E);
    Linear cat;
    cat.w = wcat.data();
    cat.b = bcat.data();
    cat.in = K;
    cat.out = 2 * E;
    RowLayer *head = add_linear(enc_head, cat, false, "mu/logvar");
    head->clamp_from = E;
  }
  if (dec_start.layer[0].in != c.e_dim + c.n_conds)
    throw Error(kBadModel, "CUDA backend: decoder_e takes " +
                               std::to_string(dec_start.layer[0].in) + " inputs, e_dim + n_conds is " +
                               std::to_string(c.e_dim + c.n_conds));
  if (dec_z.layer[0].in != dec_rnn[n_dec_rnn - 1].hidden + c.n_conds ||
      dec_z.layer[dec_z.n_layers - 1].out != c.z_dim)
    throw Error(kBadModel, "CUDA backend: decoder_z has the wrong shape");
  if (n_enc_rnn > 0 && (enc_start.layer[0].in != c.z_dim ||
                        enc_head.layer[enc_head.n_layers - 1].out != 2 * c.e_dim))
    throw Error(kBadModel, "CUDA backend: the sequence encoder has the wrong shape");
  mem_ = img.upload();
  // The RNNs' input weights (rnn_step reads those of the decoder layers k >= 1).
  for (int k = 0; k < n_dec_rnn; ++k) {
    dec_rnn[k].wih_t = dec_ih_layer[k]->wt;
    dec_rnn[k].b_ih = dec_ih_layer[k]->b;
  }
  for (int k = 1; k < n_enc_rnn; ++k) {
    enc_rnn[k].wih_t = enc_ih[k].layer[0].wt;
    enc_rnn[k].b_ih = enc_ih[k].layer[0].b;
  }
}

LatentDevice::~LatentDevice() {
  if (mem_) cudaFree(mem_);
}

}  // namespace ngs::cuda
