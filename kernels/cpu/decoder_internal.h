// Internal to kernels/cpu: ISA builds of the decoder stages' loops (decoder_simd.cpp),
// entries of the dispatch table (dispatch.h).
#pragma once

#include <cstdint>

namespace ngs::cpu {

// Rows of logits x [n][F] -> S [n][F] (decoder_mlp_spectrum); H: [F] scratch.
void decoder_mlp_spectrum_avx512(const float *x, int n, int F, float *S, float *H);
void decoder_mlp_spectrum_avx2(const float *x, int n, int F, float *S, float *H);
// Outputs [t0, t1) of overlap_add_fir_softsign.
void overlap_add_fir_softsign_avx512(const float *a, int len, const float *fir, int taps,
                                     float bias, float *out, int t0, int t1);
void overlap_add_fir_softsign_avx2(const float *a, int len, const float *fir, int taps,
                                   float bias, float *out, int t0, int t1);
// Uniform noise of the first 4 * j samples for the returned block count j (a multiple of
// the vector's block count); the caller finishes the rest.
int noise_filter_noise_avx512(uint64_t seed, uint32_t sequence, uint32_t g, int l_grain,
                              float *u);
int noise_filter_noise_avx2(uint64_t seed, uint32_t sequence, uint32_t g, int l_grain,
                            float *u);

}  // namespace ngs::cpu
