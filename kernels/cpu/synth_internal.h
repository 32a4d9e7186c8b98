// Internal to kernels/cpu: ISA builds of the synthesis loops (synth_simd.cpp).
#pragma once

#include <cstdint>

namespace ngs::cpu {

// Rows of logits x [n][F] -> S [n][F] (synth_spectrum_from_logits); H: [F] scratch.
void spectrum_rows_avx512(const float *x, int n, int F, float *S, float *H);
void spectrum_rows_avx2(const float *x, int n, int F, float *S, float *H);
// Outputs [t0, t1) of synth_fir_softsign.
void fir_softsign_avx512(const float *a, int len, const float *fir, int taps, float bias,
                         float *out, int t0, int t1);
void fir_softsign_avx2(const float *a, int len, const float *fir, int taps, float bias,
                       float *out, int t0, int t1);
// Uniform noise of the first 4 * j samples for the returned block count j (a multiple of
// the vector's block count); the caller finishes the rest.
int noise_avx512(uint64_t seed, uint32_t sequence, uint32_t g, int l_grain, float *u);
int noise_avx2(uint64_t seed, uint32_t sequence, uint32_t g, int l_grain, float *u);

// Recurrent cells over n units (ops.cpp rnn_forward): pre-activations of gate g, unit j at
// gi[g * ldi + j] and gh[g * ldh + j]. LSTM updates c in place and writes h; GRU reads the
// previous state h_prev and writes h (they may alias).
void lstm_cell_avx512(const float *gi, int ldi, const float *gh, int ldh, int n, float *c,
                      float *h);
void lstm_cell_avx2(const float *gi, int ldi, const float *gh, int ldh, int n, float *c, float *h);
void gru_cell_avx512(const float *gi, int ldi, const float *gh, int ldh, int n, const float *h_prev,
                     float *h);
void gru_cell_avx2(const float *gi, int ldi, const float *gh, int ldh, int n, const float *h_prev,
                   float *h);

}  // namespace ngs::cpu
