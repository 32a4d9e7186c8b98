// The CPU kernels' ISA dispatch table: one struct of function pointers per instruction set
// (portable, AVX2, AVX-512), all filled at compile time, and the active one chosen once at
// start-up from the detected CPU (overridable with NGS_CPU_ISA, see ops.h; tests and
// benchmarks switch with isa_set). Every ISA choice of kernels/cpu is made here: the ops
// read their entries from kernels() and never test the ISA themselves. A null entry means
// "the portable loop of the op itself" (the op has no separate portable kernel function).
#pragma once

#include <cstdint>

#include "cpu/encoder_conv.h"
#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"

namespace ngs::cpu {

struct FourStepPlan;

struct KernelTable {
  Isa isa = Isa::kPortable;
  // GEMM (gemm.cpp): the microkernel and its rows per tile.
  GemmKernel gemm_kernel = nullptr;
  int gemm_mr = 0;
  // One-row GEMM over the packed panels (gemm.cpp gemv); null: the portable GEMM.
  void (*gemv)(const float *panels, const float *bias, int n, int k, const float *x, float *y,
               bool lrelu) = nullptr;
  // dst = LReLU(src) for conv1d's input (ops.cpp); null: the portable loop.
  void (*lrelu_copy)(float *dst, const float *src, int n) = nullptr;
  // Recurrences (rnn.cpp): a unit block of the recurrent matrix, and the cells.
  void (*rnn_block_gemv)(const float *w, const float *bias, int ng, int k, const float *x,
                         float *y) = nullptr;
  void (*lstm_cell)(const float *gi, int ldi, const float *gh, int ldh, int n, float *c,
                    float *h) = nullptr;
  void (*gru_cell)(const float *gi, int ldi, const float *gh, int ldh, int n,
                   const float *h_prev, float *h) = nullptr;
  // B rows of rnn_block_gemv at once (x rows at stride ldx, y rows at stride ldy), each row
  // bit for bit rnn_block_gemv's (batched one-shots, rnn_forward_batch).
  void (*rnn_block_gemm)(const float *w, const float *bias, int ng, int k, const float *x,
                         int ldx, int B, float *y, int ldy) = nullptr;
  // Fast precision (ops.h "Fast precision"; gemm_bf16*.cpp). bf16_native: these entries
  // run the CPU's vdpbf16ps (AVX512_BF16, detected at start-up); otherwise they are the
  // portable emulation of the same arithmetic. bf16_convert (never null): fp32 -> bf16 of
  // the MLP GEMMs and the encoder; the same bits in every table.
  bool bf16_native = false;
  void (*bf16_convert)(const float *x, int n, uint16_t *p) = nullptr;
  Bf16Kernel gemm_bf16_kernel = nullptr;
  void (*gemv_bf16)(const uint16_t *panels, int kp, const float *bias, int n, int k,
                    const float *x, float *y, bool lrelu) = nullptr;
  void (*rnn_block_gemm_bf16)(const uint16_t *w, const float *bias, int ng, int k,
                              const float *x, int ldx, int B, float *y, int ldy) = nullptr;
  // The fast recurrence in int8 (AVX512_VNNI when int8_native; else the emulation).
  bool int8_native = false;
  void (*rnn_block_gemm_i8)(const int8_t *w, const float *scale, const float *corr,
                            const float *bias, int ng, int k, const float *x, int ldx, int B,
                            float *y, int ldy) = nullptr;
  // Real FFT on the four-step vector path (fft.cpp); null: the scalar radix-2 path.
  void (*rfft_forward)(const FourStepPlan &p, const float *in, float *out,
                       float *scratch) = nullptr;
  void (*rfft_inverse)(const FourStepPlan &p, const float *in, float *out,
                       float *scratch) = nullptr;
  void (*rfft_filter)(const FourStepPlan &p, const float *u, const float *S, float *y,
                      float *scratch) = nullptr;
  // Decoder stages. decoder_mlp (decoder_mlp.cpp): logits -> spectrum rows, used from
  // F >= decoder_mlp_spectrum_min_f; null: the portable loop.
  void (*decoder_mlp_spectrum)(const float *x, int n, int F, float *S, float *H) = nullptr;
  int decoder_mlp_spectrum_min_f = 0;
  // noise_filter (noise_filter.cpp): the first blocks of a grain's noise (returns the
  // block count done); null: all portable.
  int (*noise_filter_noise)(uint64_t seed, uint32_t sequence, uint32_t g, int l_grain,
                            float *u) = nullptr;
  // overlap_add (overlap_add.cpp): FIR + softsign of outputs [t0, t1); null: portable.
  void (*overlap_add_fir_softsign)(const float *a, int len, const float *fir, int taps,
                                   float bias, float *out, int t0, int t1) = nullptr;
  // Encoder convolutions (encoder_conv.cpp): the Winograd F(4,3) transforms, and the bf16
  // GEMM tile of the fast mode with its rows per tile (where bf16_native, gemm_bf16_kernel
  // itself: the vdpbf16ps tile; else the fp32 emulation of the same products); null:
  // portable.
  WinoInputFn wino_input = nullptr;
  WinoInputBf16Fn wino_input_bf16 = nullptr;
  WinoOutputFn wino_output = nullptr;
  Bf16Kernel conv_bf16_kernel = nullptr;
  int conv_bf16_mr = 0;
};

// The active ISA's table (chosen once, at first use; changed only by isa_set).
const KernelTable &kernels();
// The table of any ISA (tests, benchmarks, gemm_isa / gemv_isa); isa need not be
// supported by this CPU (calling its entries then is not allowed).
const KernelTable &kernels_for(Isa isa);

// The portable kernels the tables point at (gemm.cpp, rnn.cpp).
constexpr int kGemmMrPortable = 4;
void gemm_kernel_portable(const GemmTile &t);
void rnn_block_gemv_portable(const float *w, const float *bias, int ng, int k, const float *x,
                             float *y);
void rnn_block_gemm_portable(const float *w, const float *bias, int ng, int k, const float *x,
                             int ldx, int B, float *y, int ldy);
void rnn_block_gemm_avx2(const float *w, const float *bias, int ng, int k, const float *x,
                         int ldx, int B, float *y, int ldy);
void lstm_cell_portable(const float *gi, int ldi, const float *gh, int ldh, int n, float *c,
                        float *h);
void gru_cell_portable(const float *gi, int ldi, const float *gh, int ldh, int n,
                       const float *h_prev, float *h);

}  // namespace ngs::cpu
