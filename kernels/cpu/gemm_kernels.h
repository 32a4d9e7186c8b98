// GEMM microkernels (internal to kernels/cpu): one tile of up to MR rows x 32 columns
// (two packed panels) over one K block.
#pragma once

#include <cstddef>

namespace ngs::cpu {

struct GemmTile {
  const float *x = nullptr;  // row 0 of the tile, at the K block start
  int ldx = 0;
  const float *b = nullptr;  // first panel, at the K block start; second at + panel_stride
  size_t panel_stride = 0;
  int kc = 0;
  int mr = 0;     // rows in this tile (<= the kernel's MR)
  int ncols = 0;  // valid columns (1..32); a second panel is read only if ncols > 16
  float *y = nullptr;
  int ldy = 0;
  const float *bias = nullptr;  // [ncols]
  bool from_bias = false;       // start from bias instead of Y
  bool lrelu = false;           // apply LReLU on store
};

using GemmKernel = void (*)(const GemmTile &t);

constexpr int kGemmMrAvx512 = 12;
constexpr int kGemmMrAvx2 = 6;

void gemm_kernel_avx512(const GemmTile &t);
void gemm_kernel_avx2(const GemmTile &t);
// dst[i] = LReLU(src[i]).
void lrelu_copy_avx512(float *dst, const float *src, int n);
void lrelu_copy_avx2(float *dst, const float *src, int n);
// One-row products over the packed panels (see gemv() in ops.h).
void gemv_avx512(const float *panels, const float *bias, int n, int k, const float *x, float *y,
                 bool lrelu);
void gemv_avx2(const float *panels, const float *bias, int n, int k, const float *x, float *y,
               bool lrelu);
// One unit block of a recurrent matrix (ops.h PackedRnn, ng = 3 or 4 gates):
// w [k][ng][16], bias [ng][16] -> y [ng][16] = bias + W x.
void rnn_block_gemv_avx512(const float *w, const float *bias, int ng, int k, const float *x,
                           float *y);
void rnn_block_gemv_avx2(const float *w, const float *bias, int ng, int k, const float *x,
                         float *y);

}  // namespace ngs::cpu
