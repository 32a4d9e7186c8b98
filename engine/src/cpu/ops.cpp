// Elementwise ops, conv1d (im2col + GEMM), LayerNorm, GRU/LSTM (ops.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"
#include "cpu/synth_internal.h"

namespace ngs::cpu {

void lrelu_inplace(float *x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = lrelu(x[i]);
}

void hardtanh_inplace(float *x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; ++i) x[i] = std::min(hi, std::max(lo, x[i]));
}

// ---------------------------------------------------------------------------------------
// conv1d

PackedConv conv_pack(const Conv1d &c) {
  PackedConv p;
  p.c_in = c.in;
  p.c_out = c.out;
  p.k = c.k;
  p.stride = c.stride;
  p.dilation = c.dilation;
  p.pad = c.pad;
  // Packed column kk * C_in + i takes source column i * k + kk.
  std::vector<int> map(static_cast<size_t>(c.in) * c.k);
  for (int kk = 0; kk < c.k; ++kk)
    for (int i = 0; i < c.in; ++i) map[static_cast<size_t>(kk) * c.in + i] = i * c.k + kk;
  p.gemm = gemm_pack(c.w, c.out, c.in * c.k, c.b, 0, map.data());
  return p;
}

int conv_out_length(const PackedConv &c, int l_in) {
  return (l_in + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
}

static bool conv_is_pointwise(const PackedConv &c, bool input_lrelu) {
  return c.k == 1 && c.stride == 1 && c.pad == 0 && !input_lrelu;
}

size_t conv_scratch_floats(const PackedConv &c, int l_in) {
  return static_cast<size_t>(conv_out_length(c, l_in)) * c.k * c.c_in;
}

void conv1d(const PackedConv &c, const float *x, int ldx, int l_in, float *y, int ldy, Act act,
            bool input_lrelu, float *scratch) {
  const int l_out = conv_out_length(c, l_in);
  if (conv_is_pointwise(c, input_lrelu)) {
    gemm(c.gemm, x, ldx, l_out, y, ldy, act);
    return;
  }
  const int kc = c.k * c.c_in;
  const Isa isa = isa_active();
  void (*copy_lrelu)(float *, const float *, int) = nullptr;
  if (input_lrelu && isa == Isa::kAvx512) copy_lrelu = lrelu_copy_avx512;
  if (input_lrelu && isa == Isa::kAvx2) copy_lrelu = lrelu_copy_avx2;
  if (c.c_in == 1 && !input_lrelu) {  // first encoder conv: single floats, no memcpy calls
    for (int t = 0; t < l_out; ++t) {
      float *row = scratch + static_cast<size_t>(t) * kc;
      for (int kk = 0; kk < c.k; ++kk) {
        int pos = t * c.stride + kk * c.dilation - c.pad;
        if (pos < 0) pos = -pos;
        if (pos >= l_in) pos = 2 * (l_in - 1) - pos;
        row[kk] = x[static_cast<size_t>(pos) * ldx];
      }
    }
    gemm(c.gemm, scratch, kc, l_out, y, ldy, act);
    return;
  }
  for (int t = 0; t < l_out; ++t) {
    float *row = scratch + static_cast<size_t>(t) * kc;
    for (int kk = 0; kk < c.k; ++kk) {
      int pos = t * c.stride + kk * c.dilation - c.pad;
      if (pos < 0) pos = -pos;
      if (pos >= l_in) pos = 2 * (l_in - 1) - pos;
      const float *src = x + static_cast<size_t>(pos) * ldx;
      float *dst = row + static_cast<size_t>(kk) * c.c_in;
      if (copy_lrelu) {
        copy_lrelu(dst, src, c.c_in);
      } else if (input_lrelu) {
        for (int i = 0; i < c.c_in; ++i) dst[i] = lrelu(src[i]);
      } else {
        std::memcpy(dst, src, sizeof(float) * c.c_in);
      }
    }
  }
  gemm(c.gemm, scratch, kc, l_out, y, ldy, act);
}

// ---------------------------------------------------------------------------------------
// LayerNorm

void layernorm_rows(float *x, int rows, int n, int ld, const float *gamma, const float *beta,
                    Act act) {
  for (int r = 0; r < rows; ++r) {
    float *v = x + static_cast<size_t>(r) * ld;
    float mean = 0.0f;
    for (int i = 0; i < n; ++i) mean += v[i];
    mean /= static_cast<float>(n);
    float var = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float d = v[i] - mean;
      var += d * d;
    }
    var /= static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(var + 1e-5f);
    for (int i = 0; i < n; ++i) {
      float o = (v[i] - mean) * inv * gamma[i] + beta[i];
      v[i] = act == Act::kLrelu ? lrelu(o) : o;
    }
  }
}

// ---------------------------------------------------------------------------------------
// GRU / LSTM

PackedRnn rnn_pack(const RnnLayer &l, RnnType type) {
  PackedRnn r;
  r.type = type;
  r.in = l.in;
  r.hidden = l.hidden;
  const int g = (type == RnnType::kGru ? 3 : 4) * l.hidden;
  r.ih = gemm_pack(l.w_ih, g, l.in, l.b_ih);
  r.hh = gemm_pack(l.w_hh, g, l.hidden, l.b_hh);
  return r;
}

size_t rnn_scratch_floats(const PackedRnn &r, int steps) {
  const size_t g = static_cast<size_t>(r.type == RnnType::kGru ? 3 : 4) * r.hidden;
  return g * static_cast<size_t>(std::max(steps, 1)) + g + 2 * static_cast<size_t>(r.hidden);
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void rnn_forward(const PackedRnn &r, const float *x, int ldx, bool x_constant, int steps,
                 float *out, int ldo, float *h_final, float *scratch) {
  const int H = r.hidden;
  const int G = (r.type == RnnType::kGru ? 3 : 4) * H;
  float *xp = scratch;  // [steps or 1][G]
  const int rows = x_constant ? 1 : steps;
  float *gh = xp + static_cast<size_t>(std::max(rows, 1)) * G;  // [G]
  float *h = gh + G;                                            // [H]
  float *c = h + H;                                             // [H]
  gemm(r.ih, x, ldx, rows, xp, G, Act::kNone);  // all input projections in one GEMM
  std::fill(h, h + H, 0.0f);
  std::fill(c, c + H, 0.0f);
  const Isa isa = isa_active();
  for (int t = 0; t < steps; ++t) {
    const float *gi = xp + static_cast<size_t>(x_constant ? 0 : t) * G;
    gemv(r.hh, h, gh, Act::kNone);
    if (isa != Isa::kPortable) {
      const bool a512 = isa == Isa::kAvx512;
      if (r.type == RnnType::kGru) (a512 ? gru_cell_avx512 : gru_cell_avx2)(gi, gh, H, h);
      else (a512 ? lstm_cell_avx512 : lstm_cell_avx2)(gi, gh, H, c, h);
    } else if (r.type == RnnType::kGru) {
      for (int j = 0; j < H; ++j) {
        const float rg = sigmoidf(gi[j] + gh[j]);
        const float zg = sigmoidf(gi[H + j] + gh[H + j]);
        const float ng = std::tanh(gi[2 * H + j] + rg * gh[2 * H + j]);
        h[j] = (1.0f - zg) * ng + zg * h[j];
      }
    } else {
      for (int j = 0; j < H; ++j) {
        const float ig = sigmoidf(gi[j] + gh[j]);
        const float fg = sigmoidf(gi[H + j] + gh[H + j]);
        const float gg = std::tanh(gi[2 * H + j] + gh[2 * H + j]);
        const float og = sigmoidf(gi[3 * H + j] + gh[3 * H + j]);
        c[j] = fg * c[j] + ig * gg;
        h[j] = og * std::tanh(c[j]);
      }
    }
    if (out) std::memcpy(out + static_cast<size_t>(t) * ldo, h, sizeof(float) * H);
  }
  if (h_final) std::memcpy(h_final, h, sizeof(float) * H);
}

}  // namespace ngs::cpu
