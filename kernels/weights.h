// Model configuration and fp32 weight views, filled by the loader (model_file.cpp) from a
// model file (docs/MODEL_FORMAT.md) and read by every backend. Pointers refer to memory
// owned by the ngs_model (the mapped file, or fp32 copies of fp16 tensors).
#pragma once

#include <string>
#include <vector>

namespace ngs {

struct WaveformConfig {
  int sr = 0, l_grain = 0, hop = 0, n_grains = 0;
  int z_dim = 0, h_dim = 0, channels = 0, kernel_size = 0, n_convs = 0, stride = 0;
  int n_linears = 0, pp_chans = 0, pp_ker = 0;
  bool normalize_ola = true;
  int filter_size() const { return l_grain / 2 + 1; }
  int conv_length(int k) const {  // L_k = l_grain / stride^k
    int l = l_grain;
    for (int i = 0; i < k; ++i) l /= stride;
    return l;
  }
  int flatten_size() const { return channels * conv_length(n_convs); }
};

enum class RnnType { kGru, kLstm };

struct LatentConfig {
  int z_dim = 0, h_dim = 0, e_dim = 0, n_linears = 0, n_rnn = 0, n_grains = 0, n_conds = 0;
  RnnType rnn = RnnType::kLstm;
  std::vector<std::string> classes;
  int gates() const { return rnn == RnnType::kGru ? 3 : 4; }
};

// y = W x + b, W row-major [out][in].
struct Linear {
  const float *w = nullptr;
  const float *b = nullptr;
  int out = 0, in = 0;
};

// y[o][t] = b[o] + sum_{i,k} w[o][i][k] * xpad[i][t * stride + k * dilation], reflection pad.
struct Conv1d {
  const float *w = nullptr;  // [out][in][k]
  const float *b = nullptr;  // [out]
  int out = 0, in = 0, k = 0, stride = 1, dilation = 1, pad = 0;
};

// x <- sc x + pw LReLU(dil(LReLU(x))) + bias (BN folded, see MODEL_FORMAT.md).
struct ResUnit {
  Conv1d dil;               // LReLU applied to its output
  Linear pw;                // [C][C], b == nullptr
  Linear sc;                // [C][C], b == nullptr
  const float *bias = nullptr;  // [C]
};

struct EncoderStage {
  Conv1d down;  // LReLU applied to its output
  ResUnit res[3];
};

struct LayerNormLinear {  // LReLU(LN(W x + b))
  Linear lin;
  const float *ln_w = nullptr, *ln_b = nullptr;
};

struct RnnLayer {  // PyTorch layout and gate order
  const float *w_ih = nullptr, *w_hh = nullptr, *b_ih = nullptr, *b_hh = nullptr;
  int in = 0, hidden = 0;
};

struct WaveformWeights {
  WaveformConfig cfg;
  std::vector<EncoderStage> enc;  // n_convs stages
  Linear enc_lin[2];              // LReLU after each
  Linear mu, logvar;              // Hardtanh(-5, 5) after logvar
  std::vector<Linear> dec_lin;    // n_linears, LReLU after each
  Linear dec_out;                 // [F][h_dim]
  const float *pp_fir = nullptr;  // [pp_ker]
  float pp_bias = 0.0f;
};

struct LatentWeights {
  LatentConfig cfg;
  std::vector<LayerNormLinear> enc_z;
  std::vector<RnnLayer> enc_rnn;
  std::vector<Linear> enc_e;  // LReLU after each
  Linear mu, logvar;          // Hardtanh(-5, 5) after logvar
  std::vector<Linear> dec_e;  // LReLU after each
  std::vector<RnnLayer> dec_rnn;
  std::vector<LayerNormLinear> dec_z;
  Linear dec_z_out;
};

}  // namespace ngs
