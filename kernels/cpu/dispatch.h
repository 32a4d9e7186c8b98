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
  // GEMM tile of the fast mode with its rows per tile (vdpbf16ps where the CPU has
  // AVX-512 BF16, else the fp32 emulation of the same products); null: portable.
  WinoInputFn wino_input = nullptr;
  WinoInputBf16Fn wino_input_bf16 = nullptr;
  WinoOutputFn wino_output = nullptr;
  Bf16ConvertFn bf16_convert = nullptr;
  Bf16Kernel gemm_bf16_kernel = nullptr;
  int gemm_bf16_mr = 0;
  bool gemm_bf16_native = false;  // gemm_bf16_kernel is the vdpbf16ps one
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
void lstm_cell_portable(const float *gi, int ldi, const float *gh, int ldh, int n, float *c,
                        float *h);
void gru_cell_portable(const float *gi, int ldi, const float *gh, int ldh, int n,
                       const float *h_prev, float *h);

}  // namespace ngs::cpu
