// AVX-512 (16 lanes) and AVX2 (8 lanes) builds of the decoder stages' loops
// (decoder_simd.inc) and of noise_filter's Philox noise (8 or 4 counter blocks per vector,
// bit exact with philox.h).
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/philox.h"
#include "cpu/decoder_internal.h"

namespace ngs::cpu {

#if defined(__x86_64__)

#define NGS_SIMD_NS dec_avx512
#define NGS_SIMD_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,fma")))
#define NGS_SIMD_W 16
#include "cpu/decoder_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W

#define NGS_SIMD_NS dec_avx2
#define NGS_SIMD_TARGET __attribute__((target("avx2,fma")))
#define NGS_SIMD_W 8
#include "cpu/decoder_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W

void decoder_mlp_spectrum_avx512(const float *x, int n, int F, float *S, float *H) {
  dec_avx512::decoder_mlp_spectrum(x, n, F, S, H);
}
void decoder_mlp_spectrum_avx2(const float *x, int n, int F, float *S, float *H) {
  dec_avx2::decoder_mlp_spectrum(x, n, F, S, H);
}
void overlap_add_fir_softsign_avx512(const float *a, int len, const float *fir, int taps,
                                     float bias, float *out, int t0, int t1) {
  dec_avx512::overlap_add_fir_softsign(a, len, fir, taps, bias, out, t0, t1);
}
void overlap_add_fir_softsign_avx2(const float *a, int len, const float *fir, int taps,
                                   float bias, float *out, int t0, int t1) {
  dec_avx2::overlap_add_fir_softsign(a, len, fir, taps, bias, out, t0, t1);
}

namespace {

struct Keys {
  uint32_t k0[10], k1[10];
  explicit Keys(uint64_t seed) {
    k0[0] = static_cast<uint32_t>(seed);
    k1[0] = static_cast<uint32_t>(seed >> 32);
    for (int r = 1; r < 10; ++r) {
      k0[r] = k0[r - 1] + 0x9E3779B9u;
      k1[r] = k1[r - 1] + 0xBB67AE85u;
    }
  }
};

}  // namespace

// Blocks j0 .. j0 + 8 * count - 1 of (g, sequence, domain 1): 32 samples per step.
__attribute__((target("avx512f,avx512vl,avx512dq,fma"))) int noise_filter_noise_avx512(
    uint64_t seed, uint32_t sequence, uint32_t g, int l_grain, float *u) {
  const Keys keys(seed);
  const __m512i mask = _mm512_set1_epi64(0xffffffffll);
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53ll), m1 = _mm512_set1_epi64(0xCD9E8D57ll);
  const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i lo_idx = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
  const __m512i hi_idx = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
  const __m512 scale = _mm512_set1_ps(1.0f / 8388608.0f), one = _mm512_set1_ps(1.0f);
  const int blocks = l_grain / 4;
  int j = 0;
  for (; j + 8 <= blocks; j += 8) {
    __m512i c0 = _mm512_add_epi64(_mm512_set1_epi64(j), lane);
    __m512i c1 = _mm512_set1_epi64(g), c2 = _mm512_set1_epi64(sequence);
    __m512i c3 = _mm512_set1_epi64(kDomainGrainNoise);
    for (int r = 0; r < 10; ++r) {
      const __m512i p0 = _mm512_mul_epu32(c0, m0), p1 = _mm512_mul_epu32(c2, m1);
      const __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p1, 32), c1),
                                          _mm512_set1_epi64(keys.k0[r]));
      const __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p0, 32), c3),
                                          _mm512_set1_epi64(keys.k1[r]));
      c1 = _mm512_and_si512(p1, mask);
      c3 = _mm512_and_si512(p0, mask);
      c0 = n0;
      c2 = n2;
    }
    const __m512i a = _mm512_or_si512(c0, _mm512_slli_epi64(c1, 32));  // (x0, x1) words
    const __m512i b = _mm512_or_si512(c2, _mm512_slli_epi64(c3, 32));  // (x2, x3) words
    const __m512i w0 = _mm512_permutex2var_epi64(a, lo_idx, b);          // blocks j .. j+3
    const __m512i w1 = _mm512_permutex2var_epi64(a, hi_idx, b);          // blocks j+4 .. j+7
    _mm512_storeu_ps(u + 4 * j, _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(w0, 8)), scale, one));
    _mm512_storeu_ps(u + 4 * j + 16, _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(w1, 8)), scale, one));
  }
  return j;
}

__attribute__((target("avx2,fma"))) int noise_filter_noise_avx2(uint64_t seed, uint32_t sequence, uint32_t g,
                                                   int l_grain, float *u) {
  const Keys keys(seed);
  const __m256i mask = _mm256_set1_epi64x(0xffffffffll);
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53ll), m1 = _mm256_set1_epi64x(0xCD9E8D57ll);
  const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
  const __m256 scale = _mm256_set1_ps(1.0f / 8388608.0f), one = _mm256_set1_ps(1.0f);
  const int blocks = l_grain / 4;
  int j = 0;
  for (; j + 4 <= blocks; j += 4) {
    __m256i c0 = _mm256_add_epi64(_mm256_set1_epi64x(j), lane);
    __m256i c1 = _mm256_set1_epi64x(g), c2 = _mm256_set1_epi64x(sequence);
    __m256i c3 = _mm256_set1_epi64x(kDomainGrainNoise);
    for (int r = 0; r < 10; ++r) {
      const __m256i p0 = _mm256_mul_epu32(c0, m0), p1 = _mm256_mul_epu32(c2, m1);
      const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1),
                                          _mm256_set1_epi64x(keys.k0[r]));
      const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3),
                                          _mm256_set1_epi64x(keys.k1[r]));
      c1 = _mm256_and_si256(p1, mask);
      c3 = _mm256_and_si256(p0, mask);
      c0 = n0;
      c2 = n2;
    }
    const __m256i a = _mm256_or_si256(c0, _mm256_slli_epi64(c1, 32));
    const __m256i b = _mm256_or_si256(c2, _mm256_slli_epi64(c3, 32));
    const __m256i lo = _mm256_unpacklo_epi64(a, b), hi = _mm256_unpackhi_epi64(a, b);
    const __m256i w0 = _mm256_permute2x128_si256(lo, hi, 0x20);  // blocks j, j+1
    const __m256i w1 = _mm256_permute2x128_si256(lo, hi, 0x31);  // blocks j+2, j+3
    _mm256_storeu_ps(u + 4 * j, _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w0, 8)), scale, one));
    _mm256_storeu_ps(u + 4 * j + 8, _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w1, 8)), scale, one));
  }
  return j;
}

#else

void decoder_mlp_spectrum_avx512(const float *, int, int, float *, float *) {}
void decoder_mlp_spectrum_avx2(const float *, int, int, float *, float *) {}
void overlap_add_fir_softsign_avx512(const float *, int, const float *, int, float, float *, int, int) {}
void overlap_add_fir_softsign_avx2(const float *, int, const float *, int, float, float *, int, int) {}
int noise_filter_noise_avx512(uint64_t, uint32_t, uint32_t, int, float *) { return 0; }
int noise_filter_noise_avx2(uint64_t, uint32_t, uint32_t, int, float *) { return 0; }

#endif

}  // namespace ngs::cpu
