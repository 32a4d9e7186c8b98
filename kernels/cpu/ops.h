// CPU ops of the ngs engine (fp32): GEMM with weights packed once, conv1d, LayerNorm,
// GRU/LSTM, real FFT, and the decoder stages as plain free functions over raw
// arrays (the CUDA backend compares its kernels to exactly these). None of the processing
// functions allocates: buffers and scratch come from the caller; packing and FFT planning
// happen once, at prepare time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "weights.h"

namespace ngs::cpu {

// ---------------------------------------------------------------------------------------
// Instruction set selection. Chosen once (first use) from the CPU, overridable with the
// environment variable NGS_CPU_ISA=portable|avx2|avx512 (never above what the CPU has);
// it selects the dispatch table of dispatch.h that every op reads.

enum class Isa { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

Isa isa_best_supported();           // what this CPU can run
Isa isa_active();                   // what the ops use now
bool isa_set(Isa isa);              // for tests and benchmarks; false if unsupported
const char *isa_name(Isa isa);

// ---------------------------------------------------------------------------------------
// Elementwise helpers.

enum class Act { kNone, kLrelu };  // LeakyReLU slope 0.2

inline float lrelu(float x) { return x >= 0.0f ? x : 0.2f * x; }
void lrelu_inplace(float *x, size_t n);
void hardtanh_inplace(float *x, size_t n, float lo, float hi);

// ---------------------------------------------------------------------------------------
// GEMM: Y[M][N] = act(X[M][K] W[N][K]^T + b (+ Y if accumulate)).
// W is packed once into column panels of kGemmNr outputs, K-major inside a panel
// (panel p holds W[p*Nr + j][k] at data[(p*K + k)*Nr + j], zero padded). The same layout
// serves every ISA path.

constexpr int kGemmNr = 16;

struct PackedGemm {
  int n = 0, k = 0;
  std::vector<float> panels;  // [ceil(n / Nr)][k][Nr]
  std::vector<float> bias;    // [n], zeros when the source had none
};

// w [n][k] with row stride ldw (ldw = k when 0); bias may be null. Column permutation:
// if col_map is not null, packed column c (of K) takes source column col_map[c].
PackedGemm gemm_pack(const float *w, int n, int k, const float *bias, int ldw = 0,
                     const int *col_map = nullptr);
PackedGemm gemm_pack(const Linear &lin);

// x rows of K floats at stride ldx; y rows of N floats at stride ldy.
void gemm(const PackedGemm &w, const float *x, int ldx, int m, float *y, int ldy, Act act,
          bool accumulate = false);
// One row, y[N] = act(W x + b), for the recurrences: streams the packed weights once with
// several accumulators (summation order differs from gemm(), so results may differ from
// a gemm() row in the last bits).
void gemv(const PackedGemm &w, const float *x, float *y, Act act);
void gemv_isa(Isa isa, const PackedGemm &w, const float *x, float *y, Act act);
// Same with an explicit ISA (tests, benchmarks).
void gemm_isa(Isa isa, const PackedGemm &w, const float *x, int ldx, int m, float *y, int ldy,
              Act act, bool accumulate);

// ---------------------------------------------------------------------------------------
// Fast precision (backend.h Precision::kFast, docs/PRECISION.md): bf16 weights AND bf16
// activations (both operands of the CPU's bf16 dot product, AVX512_BF16 vdpbf16ps), fp32
// accumulation and fp32 everywhere else (bias, activations between layers, cell state).
// bf16 conversion rounds to nearest even (NaN stays NaN); products of two bf16 values are
// exact in fp32, and each 32-bit lane accumulates acc += x[2p+1] w[2p+1]; acc += x[2p] w[2p]
// per pair p (vdpbf16ps; denormal inputs and results flush to zero). The portable
// kernels emulate that arithmetic for machines without the instruction (tests).

uint16_t bf16_from_float(float f);  // round to nearest even, NaN quiet, denormals +-0
inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
}
// p[i] = bf16_from_float(x[i]) for i < n, exactly n values (the active ISA's kernel).
void bf16_convert(const float *x, int n, uint16_t *p);
// Whether this CPU has the bf16 dot product (AVX512_BF16 with AVX-512 F/VL/BW/DQ); when
// it does not, a fast session runs fp32 (the portable kernels are for tests).
bool cpu_has_bf16();

// A GEMM's weights in bf16: the same 16-column panels as PackedGemm, K in pairs:
// panel p holds W[p*16 + j][2q + s] at data[((p * kp) + q) * 32 + 2 j + s], kp = ceil(k/2),
// zero padded.
struct PackedGemmBf16 {
  int n = 0, k = 0, kp = 0;
  std::vector<uint16_t> panels;  // [ceil(n / 16)][kp][16][2]
  std::vector<float> bias;       // [n]
  size_t bytes() const { return panels.size() * sizeof(uint16_t) + bias.size() * sizeof(float); }
};

// From the fp32 packing (the same weights rounded to bf16), or from a row-major w [n][k]
// (row stride ldw, k when 0; bias may be null: zeros). The one bf16 packing: the MLP
// GEMMs and the encoder's convolutions (encoder_conv.h) both use it.
PackedGemmBf16 gemm_pack_bf16(const PackedGemm &w);
PackedGemmBf16 gemm_pack_bf16(const float *w, int n, int k, const float *bias, int ldw = 0);
// Y[M][N] = act(X W^T + b) with bf16 products (X rounded to bf16 on the fly), as gemm().
void gemm_bf16(const PackedGemmBf16 &w, const float *x, int ldx, int m, float *y, int ldy,
               Act act);
void gemm_bf16_isa(Isa isa, const PackedGemmBf16 &w, const float *x, int ldx, int m, float *y,
                   int ldy, Act act);
// One row (summation order differs from gemm_bf16's).
void gemv_bf16(const PackedGemmBf16 &w, const float *x, float *y, Act act);
void gemv_bf16_isa(Isa isa, const PackedGemmBf16 &w, const float *x, float *y, Act act);

// ---------------------------------------------------------------------------------------
// conv1d over time-major activations: x [L_in][C_in] (row stride ldx), y [L_out][C_out]
// (row stride ldy). Reflection padding `pad`, stride, dilation. The weight is repacked at
// prepare time as [C_out][k][C_in] so that an im2col row is k contiguous copies.
// L_out = (L_in + 2 pad - dilation (k - 1) - 1) / stride + 1.

struct PackedConv {
  int c_in = 0, c_out = 0, k = 0, stride = 1, dilation = 1, pad = 0;
  PackedGemm gemm;  // [C_out][k * C_in]
};

PackedConv conv_pack(const Conv1d &c);
int conv_out_length(const PackedConv &c, int l_in);
// Scratch floats conv1d needs (im2col) for l_in input samples.
size_t conv_scratch_floats(const PackedConv &c, int l_in);
// input_lrelu applies LeakyReLU to the input before the convolution.
void conv1d(const PackedConv &c, const float *x, int ldx, int l_in, float *y, int ldy,
            Act act, bool input_lrelu, float *scratch);

// ---------------------------------------------------------------------------------------
// LayerNorm (eps 1e-5, affine) over rows of n, in place, optionally followed by LReLU.
void layernorm_rows(float *x, int rows, int n, int ld, const float *gamma, const float *beta,
                    Act act);

// ---------------------------------------------------------------------------------------
// Recurrent layers (PyTorch formulas, zero initial state).

class ThreadPool;

// The recurrent matrix is packed by blocks of 16 units: block u is [h][G][16], entry
// (k, g, j) = W_hh[g * h + 16u + j][k] (zero for units past h), so a recurrent step reads
// one contiguous stream and a block's gates are ready together for its cell update.
constexpr int kRnnBlock = 16;

struct PackedRnn {
  RnnType type = RnnType::kLstm;
  int in = 0, hidden = 0;
  int blocks = 0;  // ceil(hidden / kRnnBlock)
  PackedGemm ih;   // [G*h][in] + b_ih
  std::vector<float> hh;    // [blocks][h][G][16], blocked as above
  std::vector<float> hh_b;  // [blocks][G][16] b_hh
  // Fast precision copies (rnn_pack_bf16; empty until then): the input projection and the
  // recurrent matrix in bf16, block u = [ceil(h/2)][G][16][2]: entry (q, g, j, s) =
  // W_hh[g * h + 16u + j][2q + s].
  PackedGemmBf16 ih16;
  std::vector<uint16_t> hh16;
  // Fast precision, where the CPU has AVX512_VNNI (rnn_pack_int8; empty until then): the
  // recurrent matrix in int8 with one scale per gate row, block u = [ceil(h/4)][G][16][4]:
  // entry (q, g, j, s) = round(W_hh[g * h + 16u + j][4q + s] / scale), scale = max |row| /
  // 127; i8_scale and i8_corr (128 x the row's sum of int8 weights) [blocks][G][16].
  std::vector<int8_t> hh8;
  std::vector<float> i8_scale, i8_corr;
  bool has_bf16() const { return !hh16.empty(); }
  bool has_int8() const { return !hh8.empty(); }
  size_t bf16_bytes() const {
    return ih16.bytes() + hh16.size() * sizeof(uint16_t) + hh8.size() +
           (i8_scale.size() + i8_corr.size()) * sizeof(float);
  }
};

PackedRnn rnn_pack(const RnnLayer &l, RnnType type);
// Adds the bf16 copies to r (once, before any fast call).
void rnn_pack_bf16(PackedRnn &r);
// Adds the int8 recurrent matrix (fast calls then use it for the recurrence).
void rnn_pack_int8(PackedRnn &r);
// Whether this CPU has the int8 dot product of the fast recurrence (AVX512_VNNI, with
// AVX512_BF16).
bool cpu_has_int8();
// Scratch floats rnn_forward needs (batch: rnn_forward_batch's B).
size_t rnn_scratch_floats(const PackedRnn &r, int steps, int batch = 1);
// x [steps][in] (stride ldx) -> out [steps][h] (stride ldo; may be null), h_final [h]
// (may be null). When x_constant, x has one row used at every step (the projection is
// computed once).
// With a pool of more than one thread, each thread owns a slice of the unit blocks (its
// gate rows and cell updates) for the whole sequence, with a spinning barrier per step;
// the result is bitwise the same for any thread count.
void rnn_forward(const PackedRnn &r, const float *x, int ldx, bool x_constant, int steps,
                 float *out, int ldo, float *h_final, float *scratch, ThreadPool *pool = nullptr,
                 bool fast = false);
// B independent sequences at once (the recurrent matrix is read once per step for all of
// them): sequence b's input rows at x + b * ldxb (row stride ldx; one row when
// x_constant), its output rows at out + b * ldob (row stride ldo), its final h at
// h_final + b * h. Sequence b's result is bit for bit rnn_forward's of the same input.
// fast: the bf16 copies (rnn_pack_bf16) and kernels; requires r.has_bf16().
void rnn_forward_batch(const PackedRnn &r, int B, const float *x, size_t ldxb, int ldx,
                       bool x_constant, int steps, float *out, size_t ldob, int ldo,
                       float *h_final, float *scratch, ThreadPool *pool = nullptr,
                       bool fast = false);

// ---------------------------------------------------------------------------------------
// Real FFT of a power-of-two length n >= 4. Forward: real [n] -> n/2 + 1 complex numbers,
// interleaved (re, im) [n + 2]. Inverse: [n + 2] -> real [n], scaled by 1/n (numpy
// irfft; the imaginary parts of bins 0 and n/2 are ignored). Twiddles are planned once.

struct FourStepPlan;

class RealFft {
 public:
  explicit RealFft(int n);
  int size() const { return n_; }
  // out may not alias in. scratch: scratch_floats() floats.
  void forward(const float *in, float *out, float *scratch) const;
  void inverse(const float *in, float *out, float *scratch) const;
  size_t scratch_floats() const { return static_cast<size_t>(n_) + 2; }
  // y = irfft(rfft(u) * S) for a real S [n/2 + 1]; scratch: 2 * scratch_floats() floats.
  // (On the vector path the spectrum never leaves split form.)
  void filter(const float *u, const float *S, float *y, float *scratch) const;

 private:
  int n_ = 0, half_ = 0, log2_half_ = 0;
  std::vector<int> bitrev_;     // [n/2]
  std::vector<float> twiddle_;  // complex FFT of n/2: (cos, -sin)(2 pi j / (n/2)), j < n/4
  std::vector<float> post_;     // real-split twiddles: (cos, -sin)(2 pi k / n), k <= n/4
  std::shared_ptr<const FourStepPlan> four_step_;  // SIMD plan when n/2 >= 256
  void complex_fft(float *re, float *im) const;
};

// ---------------------------------------------------------------------------------------
// Decoder stages (docs/MODEL_SPEC.md §4.2), one file each: decoder_mlp (decoder_mlp.cpp;
// the MLP's GEMMs run in the session, backend.cpp), noise_filter (noise_filter.cpp),
// overlap_add (overlap_add.cpp).

// Stage 1 (decoder_mlp) tail, per row: x [n][F] (decoder MLP output, stride ldx) -> S [n][F]:
// H = 2 sigmoid(x)^ln(10) + 1e-7, S[k] = (-1)^k (0.5 H[k] + 0.25 H[k-1] + 0.25 H[k+1]).
// x and S may alias only if identical; scratch [F].
void decoder_mlp_spectrum(const float *x, int n, int F, float *S, float *scratch);

// OLA window value row of grain g of n_total (periodic Hann, first half 1 for g == 0,
// second half 1 for g == n_total - 1): writes [l_grain].
void noise_filter_window(int g, int n_total, int l_grain, float *w);

// Uniform noise of grain g (docs/RANDOM.md domain 1): [l_grain].
void noise_filter_noise(uint64_t seed, uint32_t sequence, int g, int l_grain, float *u);

// Stage 2 (noise_filter) for one grain: y = ola_window(g, n_total) * irfft(rfft(u) * S).
// u [l], S [F], y [l]; hann [l] the periodic Hann window; scratch: 2 * (l + 2) floats.
void noise_filter_grain(const RealFft &fft, const float *S, const float *u, const float *hann,
                        int g, int n_total, float *y, float *scratch);

// Number of grains overlapping each sample of the series: div [(n + 3) * hop] (l = 4 hop).
void overlap_add_divisor(int n, int hop, int l_grain, float *div);

// Stage 3 (overlap_add): grains y [n][l] overlap-added at hop into a [(n + 3) * hop] (a is
// overwritten); divided by the overlap count when normalize.
void overlap_add(const float *y, int n, int l_grain, int hop, bool normalize, float *a);
// The same for hop-sized output blocks [b0, b1) only (b < n + 3): for splitting across
// threads.
void overlap_add_blocks(const float *y, int n, int l_grain, int hop, bool normalize, float *a,
                        int b0, int b1);

// FIR (zero padding, centred: out[t] = bias + sum_k fir[k] a[t + k - taps/2]) then
// softsign. out must not alias a.
void overlap_add_fir_softsign(const float *a, int len, const float *fir, int taps, float bias,
                              float *out);
// Outputs [t0, t1) only.
void overlap_add_fir_softsign_range(const float *a, int len, const float *fir, int taps,
                                    float bias, float *out, int t0, int t1);

}  // namespace ngs::cpu
