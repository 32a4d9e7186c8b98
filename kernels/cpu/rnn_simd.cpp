// AVX-512 (16 lanes) and AVX2 (8 lanes) builds of the recurrent cells (rnn_simd.inc).
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/rnn_internal.h"

namespace ngs::cpu {

#if defined(__x86_64__)

#define NGS_SIMD_NS rnn_avx512
#define NGS_SIMD_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,fma")))
#define NGS_SIMD_W 16
#include "cpu/rnn_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W

#define NGS_SIMD_NS rnn_avx2
#define NGS_SIMD_TARGET __attribute__((target("avx2,fma")))
#define NGS_SIMD_W 8
#include "cpu/rnn_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W

void lstm_cell_avx512(const float *gi, int ldi, const float *gh, int ldh, int n, float *c,
                      float *h) {
  rnn_avx512::lstm_cell(gi, ldi, gh, ldh, n, c, h);
}
void lstm_cell_avx2(const float *gi, int ldi, const float *gh, int ldh, int n, float *c, float *h) {
  rnn_avx2::lstm_cell(gi, ldi, gh, ldh, n, c, h);
}
void gru_cell_avx512(const float *gi, int ldi, const float *gh, int ldh, int n, const float *hp,
                     float *h) {
  rnn_avx512::gru_cell(gi, ldi, gh, ldh, n, hp, h);
}
void gru_cell_avx2(const float *gi, int ldi, const float *gh, int ldh, int n, const float *hp,
                   float *h) {
  rnn_avx2::gru_cell(gi, ldi, gh, ldh, n, hp, h);
}

#else  // not x86-64: never selected (isa_best_supported() is portable)

void lstm_cell_avx512(const float *, int, const float *, int, int, float *, float *) {}
void lstm_cell_avx2(const float *, int, const float *, int, int, float *, float *) {}
void gru_cell_avx512(const float *, int, const float *, int, int, const float *, float *) {}
void gru_cell_avx2(const float *, int, const float *, int, int, const float *, float *) {}

#endif

}  // namespace ngs::cpu
