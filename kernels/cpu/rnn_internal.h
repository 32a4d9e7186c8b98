// Internal to kernels/cpu: ISA builds of the recurrent cells (rnn_simd.cpp), entries of
// the dispatch table (dispatch.h).
#pragma once

namespace ngs::cpu {

// Recurrent cells over n units (rnn.cpp rnn_forward): pre-activations of gate g, unit j at
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
