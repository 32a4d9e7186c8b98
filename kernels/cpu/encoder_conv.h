// Internal to kernels/cpu: the encoder's convolution algorithms (encoder_conv.cpp,
// encoder_simd.cpp): Winograd F(4,3) for the 3-tap convolutions, and bf16 GEMMs with
// fp32 accumulation for the encoder's fast mode.
//
// Winograd F(4,3) along time (Lavin & Gray, points 0, +-1, +-2, inf): 4 outputs of a
// 3-tap correlation from 6 inputs with 6 products instead of 12:
//   y = A^T [(G g) . (B^T d)], d [6] inputs, g [3] taps, y [4] outputs.
// Per tile the 6 transformed input vectors (one per point, over the input channels) are
// the rows of 6 matrices U_i [tiles][K]; 6 GEMMs M_i = U_i G_i^T (G_i [C_out][K], the
// transformed weights, packed once) and the output transform give the outputs.
// Two convolutions map onto it:
//  * dilated, stride 1, 3 taps, dilation d: the outputs of phase p (t = p + d s) are a
//    stride-1 3-tap conv over the input phase x[p + d s - pad]; a tile is 4 consecutive s
//    of one phase (the dilation costs nothing);
//  * strided, stride S, k <= 3 S taps, dilation 1: tap k = q + S j (q = k mod S) reads
//    x[S (t + j) + q - pad], so the conv is a 3-tap stride-1 conv over the S input phases
//    stacked as K = S C_in channels (taps past k are zero): 6 products per 4 outputs
//    instead of 4 x 9 for the encoder's k = 9, S = 4.
// The reflection padding is fused into the input transform's gather (no padded copy),
// and the input LeakyReLU into the same pass; bias and output LeakyReLU into the output
// transform. Positions past the padded input (only in tiles' unused outputs) read 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"

namespace ngs::cpu {

// ---------------------------------------------------------------------------------------
// bf16 GEMM over X already in bf16: Y[M][N] = act(X[M][K] W[N][K]^T + b), products and
// sums in fp32; W in the MLP's packing (ops.h PackedGemmBf16, from a row-major matrix by
// gemm_pack_bf16), X rows of 2 w.kp values (K and its zero pad), the tile of
// gemm_kernels.h (vdpbf16ps where the CPU has AVX512_BF16).

// The fp32 emulation of the tile's products for CPUs without AVX512_BF16 (portable,
// AVX2, AVX-512 builds; sums in another order than vdpbf16ps: the encoder's kBf16 tests).
constexpr int kBf16MrPortable = 4;
void conv_bf16_kernel_portable(const Bf16Tile &t);
void conv_bf16_kernel_avx2(const Bf16Tile &t);
void conv_bf16_kernel_avx512(const Bf16Tile &t);

// x: m rows of 2 w.kp bf16 values at stride ldx (>= 2 w.kp); y rows of N floats at stride
// ldy.
void gemm_bf16(const PackedGemmBf16 &w, const uint16_t *x, int ldx, int m, float *y, int ldy,
               Act act);

// ---------------------------------------------------------------------------------------
// Winograd F(4,3) convolution.

constexpr int kWinoTile = 4, kWinoPoints = 6;

struct WinoConv {
  int c_in = 0, c_out = 0, k = 0, stride = 1, dilation = 1, pad = 0;
  int groups = 1;  // input phases stacked as channels: 1 (dilated) or stride (strided)
  int kdim = 0;    // groups * c_in: K of the point GEMMs
  bool bf16 = false;
  PackedGemm pt[kWinoPoints];   // fp32: G_i [c_out][kdim] (point 5 of a strided conv: fewer)
  PackedGemmBf16 pb[kWinoPoints];  // bf16 (fast mode)
  std::vector<float> bias;      // [c_out], added by the output transform
};

// Whether c (a stride-1 3-tap conv of any dilation, or a dilation-1 strided conv of k <=
// 3 stride taps) can run as Winograd F(4,3).
bool wino_supported(const Conv1d &c);
WinoConv wino_pack(const Conv1d &c, bool bf16);
// Tiles (rows of each point GEMM) of c over l_in input samples.
int wino_tiles(const Conv1d &c, int l_in);
// Scratch floats wino_conv1d needs for l_in input samples.
size_t wino_scratch_floats(const WinoConv &c, int l_in);
// Same contract as conv1d (ops.h): x [l_in][c_in] (stride ldx) -> y [l_out][c_out]
// (stride ldy), input_lrelu before, act after; for batch inputs at x + b xstride, outputs
// at y + b ystride (floats), whose tiles share the point GEMMs (the same results as one
// call per input, bit for bit).
void wino_conv1d(const WinoConv &c, const float *x, int ldx, int l_in, float *y, int ldy,
                 Act act, bool input_lrelu, float *scratch, int batch = 1, size_t xstride = 0,
                 size_t ystride = 0);

// Transform kernels (dispatch table entries), over n contiguous channels:
// input: d_i = the 6 input rows (null: zeros), u_i = U row i (ldu values apart; the
// _bf16 one stores U in bf16);
// output: m_i rows of the 6 point products (stride ldm), y_r = 4 output rows (null: not
// stored), bias [n], lrelu.
using WinoInputFn = void (*)(const float *const *d, int n, bool lrelu, float *u, size_t ldu);
using WinoInputBf16Fn = void (*)(const float *const *d, int n, bool lrelu, uint16_t *u,
                                 size_t ldu);
using WinoOutputFn = void (*)(const float *m, size_t ldm, int n, const float *bias, bool lrelu,
                              float *const *y);
void wino_input_portable(const float *const *d, int n, bool lrelu, float *u, size_t ldu);
void wino_input_bf16_portable(const float *const *d, int n, bool lrelu, uint16_t *u, size_t ldu);
void wino_input_bf16_avx512(const float *const *d, int n, bool lrelu, uint16_t *u, size_t ldu);
void wino_input_bf16_avx2(const float *const *d, int n, bool lrelu, uint16_t *u, size_t ldu);
void wino_output_portable(const float *m, size_t ldm, int n, const float *bias, bool lrelu,
                          float *const *y);
void wino_input_avx512(const float *const *d, int n, bool lrelu, float *u, size_t ldu);
void wino_output_avx512(const float *m, size_t ldm, int n, const float *bias, bool lrelu,
                        float *const *y);
void wino_input_avx2(const float *const *d, int n, bool lrelu, float *u, size_t ldu);
void wino_output_avx2(const float *m, size_t ldm, int n, const float *bias, bool lrelu,
                      float *const *y);

}  // namespace ngs::cpu
