// Elementwise ops, conv1d (im2col + GEMM), LayerNorm (ops.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/ops.h"

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
  void (*copy_lrelu)(float *, const float *, int) = input_lrelu ? kernels().lrelu_copy : nullptr;
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

namespace {
// Sum of f(v[i]) in 16 interleaved partial sums (vectorised by the compiler without
// -ffast-math), then a fixed pairwise reduction.
template <typename F>
float sum16(const float *v, int n, F f) {
  float acc[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += f(v[i + j]);
  for (int j = 0; i < n; ++i, ++j) acc[j] += f(v[i]);
  for (int w = 8; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
}  // namespace

void layernorm_rows(float *x, int rows, int n, int ld, const float *gamma, const float *beta,
                    Act act) {
  for (int r = 0; r < rows; ++r) {
    float *v = x + static_cast<size_t>(r) * ld;
    const float mean = sum16(v, n, [](float a) { return a; }) / static_cast<float>(n);
    const float var =
        sum16(v, n, [mean](float a) { return (a - mean) * (a - mean); }) / static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(var + 1e-5f);
    for (int i = 0; i < n; ++i) {
      float o = (v[i] - mean) * inv * gamma[i] + beta[i];
      v[i] = act == Act::kLrelu ? lrelu(o) : o;
    }
  }
}

}  // namespace ngs::cpu
