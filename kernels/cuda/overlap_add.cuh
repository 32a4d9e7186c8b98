// Overlap-add (stage 3): windowed grains y [n][l_grain] of a whole series -> audio
// [(n + 3) * hop]: gather, divisor, then the post-processing FIR and softsign.
#pragma once

#include "common.cuh"

namespace ngs::cuda {

struct OlaParams {
  int n = 0;          // grains in the series
  int l_grain = 0;
  int hop = 0;
  bool normalize = true;  // divide by the number of overlapping grains
  bool ola_only = false;  // stop after the divisor
  const float *fir = nullptr;  // device [fir_len]
  int fir_len = 0;             // odd
  float bias = 0.0f;
  // Device, may be null: the series has min(n, *count) grains (audio [(that + 3) * hop]
  // written, the rest not), so a graph captured for a bucket of n serves every smaller count.
  const int *count = nullptr;
};

// y [n][l_grain] and audio [(n + 3) * hop]: device pointers.
void overlap_add_launch(const OlaParams &p, const float *y, float *audio, cudaStream_t stream);

}  // namespace ngs::cuda
