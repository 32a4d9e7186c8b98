// The ISA dispatch table (dispatch.h) and run-time instruction set selection (ops.h).
#include "cpu/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/decoder_internal.h"
#include "cpu/fft_internal.h"
#include "cpu/rnn_internal.h"

namespace ngs::cpu {
namespace {

void bf16_portable(KernelTable &t);
Isa detect();

KernelTable portable_table() {
  KernelTable t;
  bf16_portable(t);
  t.isa = Isa::kPortable;
  t.gemm_kernel = gemm_kernel_portable;
  t.gemm_mr = kGemmMrPortable;
  t.rnn_block_gemv = rnn_block_gemv_portable;
  t.rnn_block_gemm = rnn_block_gemm_portable;
  t.lstm_cell = lstm_cell_portable;
  t.gru_cell = gru_cell_portable;
  t.wino_input = wino_input_portable;
  t.wino_input_bf16 = wino_input_bf16_portable;
  t.wino_output = wino_output_portable;
  t.conv_bf16_kernel = conv_bf16_kernel_portable;
  t.conv_bf16_mr = kBf16MrPortable;
  return t;
}

KernelTable avx2_table() {
  KernelTable t;
  bf16_portable(t);
  t.isa = Isa::kAvx2;
  t.gemm_kernel = gemm_kernel_avx2;
  t.gemm_mr = kGemmMrAvx2;
  t.gemv = gemv_avx2;
  t.lrelu_copy = lrelu_copy_avx2;
  t.rnn_block_gemv = rnn_block_gemv_avx2;
  t.rnn_block_gemm = rnn_block_gemm_avx2;
  t.lstm_cell = lstm_cell_avx2;
  t.gru_cell = gru_cell_avx2;
  t.rfft_forward = rfft_forward_avx2;
  t.rfft_inverse = rfft_inverse_avx2;
  t.rfft_filter = rfft_filter_avx2;
  t.decoder_mlp_spectrum = decoder_mlp_spectrum_avx2;
  t.decoder_mlp_spectrum_min_f = 24;
  t.noise_filter_noise = noise_filter_noise_avx2;
  t.overlap_add_fir_softsign = overlap_add_fir_softsign_avx2;
  t.wino_input = wino_input_avx2;
  t.wino_input_bf16 = wino_input_bf16_avx2;
  t.wino_output = wino_output_avx2;
  t.bf16_convert = bf16_convert_avx2;
  t.conv_bf16_kernel = conv_bf16_kernel_avx2;
  t.conv_bf16_mr = 6;
  return t;
}

KernelTable avx512_table() {
  KernelTable t;
  bf16_portable(t);
  t.isa = Isa::kAvx512;
  t.gemm_kernel = gemm_kernel_avx512;
  t.gemm_mr = kGemmMrAvx512;
  t.gemv = gemv_avx512;
  t.lrelu_copy = lrelu_copy_avx512;
  t.rnn_block_gemv = rnn_block_gemv_avx512;
  t.rnn_block_gemm = rnn_block_gemm_avx512;
  t.lstm_cell = lstm_cell_avx512;
  t.gru_cell = gru_cell_avx512;
  t.rfft_forward = rfft_forward_avx512;
  t.rfft_inverse = rfft_inverse_avx512;
  t.rfft_filter = rfft_filter_avx512;
  t.decoder_mlp_spectrum = decoder_mlp_spectrum_avx512;
  t.decoder_mlp_spectrum_min_f = 40;
  t.noise_filter_noise = noise_filter_noise_avx512;
  t.overlap_add_fir_softsign = overlap_add_fir_softsign_avx512;
  t.wino_input = wino_input_avx512;
  t.wino_input_bf16 = wino_input_bf16_avx512;
  t.wino_output = wino_output_avx512;
  t.bf16_convert = bf16_convert_avx512;
  t.conv_bf16_kernel = conv_bf16_kernel_avx512;
  t.conv_bf16_mr = 12;
  if (cpu_has_bf16()) {  // AVX512_BF16 (Zen 4, Cooper Lake, Sapphire Rapids and later)
    t.bf16_native = true;
    t.gemm_bf16_kernel = gemm_bf16_kernel_avx512;
    t.conv_bf16_kernel = gemm_bf16_kernel_avx512;  // the one bf16 tile
    t.conv_bf16_mr = kGemmBf16Mr;
    t.gemv_bf16 = gemv_bf16_avx512;
    t.rnn_block_gemm_bf16 = rnn_block_gemm_bf16_avx512;
  }
  if (cpu_has_int8()) {
    t.int8_native = true;
    t.rnn_block_gemm_i8 = rnn_block_gemm_i8_avx512;
  }
  return t;
}

// The portable emulation of the fast-precision kernels: every table starts with it.
void bf16_portable(KernelTable &t) {
  t.bf16_native = false;
  t.bf16_convert = bf16_convert_portable;
  t.gemm_bf16_kernel = gemm_bf16_kernel_portable;
  t.gemv_bf16 = gemv_bf16_portable;
  t.rnn_block_gemm_bf16 = rnn_block_gemm_bf16_portable;
  t.int8_native = false;
  t.rnn_block_gemm_i8 = rnn_block_gemm_i8_portable;
}

// All three, filled once (first use), indexed by Isa.
const KernelTable *tables() {
  static const KernelTable t[3] = {portable_table(), avx2_table(), avx512_table()};
  return t;
}

bool detect_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return detect() == Isa::kAvx512 && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

Isa initial() {
  Isa best = isa_best_supported();
  const char *env = std::getenv("NGS_CPU_ISA");
  if (env == nullptr) return best;
  Isa want = best;
  if (std::strcmp(env, "portable") == 0) want = Isa::kPortable;
  else if (std::strcmp(env, "avx2") == 0) want = Isa::kAvx2;
  else if (std::strcmp(env, "avx512") == 0) want = Isa::kAvx512;
  return static_cast<int>(want) <= static_cast<int>(best) ? want : best;
}

std::atomic<const KernelTable *> &active() {
  static std::atomic<const KernelTable *> a{&tables()[static_cast<int>(initial())]};
  return a;
}

}  // namespace

const KernelTable &kernels() { return *active().load(std::memory_order_relaxed); }

const KernelTable &kernels_for(Isa isa) { return tables()[static_cast<int>(isa)]; }

bool cpu_has_bf16() {
  static const bool has = detect_bf16();
  return has;
}

bool cpu_has_int8() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = cpu_has_bf16() && __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

Isa isa_best_supported() {
  static const Isa best = detect();
  return best;
}

Isa isa_active() { return kernels().isa; }

bool isa_set(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(isa_best_supported())) return false;
  active().store(&kernels_for(isa), std::memory_order_relaxed);
  return true;
}

const char *isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace ngs::cpu
