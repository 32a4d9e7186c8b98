// GEMM microkernels (internal to kernels/cpu): one tile of up to MR rows x 32 columns
// (two packed panels) over one K block.
#pragma once

#include <cstddef>
#include <cstdint>

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

// The one bf16 tile (fast precision, ops.h PackedGemmBf16), shared by the MLP GEMM
// (gemm_bf16.cpp) and the encoder's convolutions (encoder_conv.cpp): Y[mr][ncols] (+)=
// X W^T over one K block, X rows already in bf16, the panels' K in pairs.
struct Bf16Tile {
  // Row i of the tile at x + i * ldx (bf16 values), at the K block start; the pairs
  // (x[2u], x[2u + 1]) for u < ceil(kc / 2) are read, so an odd kc needs x[kc] = 0.
  const uint16_t *x = nullptr;
  int ldx = 0;
  const uint16_t *b = nullptr;  // first panel at the K block's first pair; second at + panel_stride
  size_t panel_stride = 0;      // uint16_t elements
  int kc = 0;                   // K values in this block (odd only in a GEMM's last block)
  int mr = 0;
  int ncols = 0;  // 1..32; a second panel is read only if ncols > 16
  float *y = nullptr;
  int ldy = 0;
  const float *bias = nullptr;
  bool from_bias = false;
  bool lrelu = false;
};

using Bf16Kernel = void (*)(const Bf16Tile &t);
constexpr int kGemmBf16Mr = 12;  // rows per tile of every bf16 kernel
// The bf16 GEMMs' K block (even; the MLP's X tile of kGemmBf16Mr rows is converted on
// the stack).
constexpr int kGemmBf16Kc = 256;

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
// B rows at once: x rows at stride ldx, y rows at stride ldy; row b equals
// rnn_block_gemv's of x row b bit for bit (same summation), the block read once per pair
// of rows.
void rnn_block_gemm_avx512(const float *w, const float *bias, int ng, int k, const float *x,
                           int ldx, int B, float *y, int ldy);

// bf16 kernels (AVX512_BF16, gemm_bf16_simd.cpp; portable emulation in gemm_bf16.cpp).
// p[i] = bf16_from_float(x[i]) for i < n (exactly n values written): one routine, the
// vector code of simd.inc built per ISA (bf16_convert_avx512 also serves the AVX512_BF16
// machines; all give the same bits).
void bf16_convert_avx512(const float *x, int n, uint16_t *p);
void bf16_convert_avx2(const float *x, int n, uint16_t *p);
void bf16_convert_portable(const float *x, int n, uint16_t *p);
// The vdpbf16ps tile (the only one; MLP and encoder), and the portable emulation of the
// same arithmetic (same bits; tests, machines without AVX512_BF16).
void gemm_bf16_kernel_avx512(const Bf16Tile &t);
void gemm_bf16_kernel_portable(const Bf16Tile &t);
// y[N] = act(W x + b), panels [ceil(n/16)][kp][16][2].
void gemv_bf16_avx512(const uint16_t *panels, int kp, const float *bias, int n, int k,
                      const float *x, float *y, bool lrelu);
void gemv_bf16_portable(const uint16_t *panels, int kp, const float *bias, int n, int k,
                        const float *x, float *y, bool lrelu);
// One unit block of a bf16 recurrent matrix (ops.h PackedRnn hh16), B rows: w
// [ceil(k/2)][ng][16][2], bias [ng][16] -> y row b [ng][16] = bias + W x_b; every row the
// same arithmetic whatever B.
void rnn_block_gemm_bf16_avx512(const uint16_t *w, const float *bias, int ng, int k,
                                const float *x, int ldx, int B, float *y, int ldy);
void rnn_block_gemm_bf16_portable(const uint16_t *w, const float *bias, int ng, int k,
                                  const float *x, int ldx, int B, float *y, int ldy);
// The int8 recurrent block (ops.h PackedRnn hh8), B rows: row b's x quantized to u8 with
// its own scale s = max|x| / 127 (q = round(x / s) + 128), the int32 sums of u8 x int8
// exact, y = fma((sum - corr) * s, scale, bias) per gate row. AVX512_VNNI vpdpbusd; the
// portable emulation gives the same bits.
void rnn_block_gemm_i8_avx512(const int8_t *w, const float *scale, const float *corr,
                              const float *bias, int ng, int k, const float *x, int ldx, int B,
                              float *y, int ldy);
void rnn_block_gemm_i8_portable(const int8_t *w, const float *scale, const float *corr,
                                const float *bias, int ng, int k, const float *x, int ldx,
                                int B, float *y, int ldy);

}  // namespace ngs::cpu
