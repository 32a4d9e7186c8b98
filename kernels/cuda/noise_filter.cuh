// Noise filtering (stage 2, "grains"): S [n][F] -> windowed grains y [n][l_grain], with the
// Philox uniform noise of docs/RANDOM.md generated in the kernel.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace ngs::cuda {

// Kept in device memory so a captured CUDA Graph reads the current request's values.
struct NoiseParams {
  uint64_t seed;
  uint32_t sequence;
  int g0;       // absolute index of the first grain of the call
  int n_total;  // grains in the whole series (for the first/last OLA windows)
};

// One grain of a batch of independent grains (decode_grains, backend.h GrainSpec): its
// noise key, its absolute index g in that stream, its OLA window (first: first half 1;
// last: second half 1).
struct GrainNoise {
  uint64_t seed;
  uint32_t sequence;
  int g;
  int first, last;
};

// Host tables the kernel needs, for l_grain: twiddles[k] = exp(-2 pi i k / l_grain) for
// k < l_grain / 2 (interleaved re, im) and the periodic Hann window [l_grain].
void noise_filter_tables(int l_grain, float *twiddles, float *hann);

// Shared memory bytes per block (2 * l_grain floats).
size_t noise_filter_smem_bytes(int l_grain);

// Once per l_grain, before any launch (not during a graph capture): checks l_grain and that
// its 8 * l_grain bytes of shared memory fit smem_optin (the device's
// sharedMemPerBlockOptin: l_grain 16384 needs 128 KiB, more than sm_86/sm_89 allow;
// kUnsupported with the reason otherwise), and opts the kernel in to smem_optin when it
// needs more than 48 KiB (the same value for every model: loading another never lowers it).
void noise_filter_prepare(int l_grain, size_t smem_optin);

// S [n][l_grain/2+1], y [n][l_grain], twiddles [l_grain/2][2], hann [l_grain], params: all
// device pointers. l_grain: power of two, 8 .. 16384. count: null, or a device int: only
// grains 0 .. min(n, *count) - 1 of the call are computed and written (one captured graph
// per bucket of n serves every smaller count).
void noise_filter_launch(const float *S, int n, int l_grain, const float *twiddles,
                         const float *hann, const NoiseParams *params, float *y,
                         cudaStream_t stream, const int *count = nullptr);

// The same for n independent grains: grain i with specs[i] (device [n]).
void noise_filter_grains_launch(const float *S, int n, int l_grain, const float *twiddles,
                                const float *hann, const GrainNoise *specs, float *y,
                                cudaStream_t stream, const int *count = nullptr);

}  // namespace ngs::cuda
