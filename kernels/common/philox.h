// Philox4x32-10 counter-based generator and the number transforms of docs/RANDOM.md.
// One source for the CPU backend, the CUDA kernels and their CPU-emulation build.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(NGS_CUDA_EMULATION)
#define NGS_HD __host__ __device__
#else
#define NGS_HD
#endif

namespace ngs {

enum RandomDomain : uint32_t {
  kDomainGrainNoise = 1,
  kDomainEncoderEps = 2,
  kDomainEmbedding = 3,
  kDomainPathPoints = 4,
};

struct Philox4 {
  uint32_t x[4];
};

NGS_HD inline Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                    uint64_t seed) {
  uint32_t k0 = static_cast<uint32_t>(seed);
  uint32_t k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in [-1, 1), exact multiple of 2^-23.
NGS_HD inline float philox_uniform_pm1(uint32_t x) {
  return static_cast<float>(x >> 8) * (1.0f / 8388608.0f) - 1.0f;
}

// Box-Muller on a pair of words; writes two standard normals.
NGS_HD inline void philox_normal_pair(uint32_t a, uint32_t b, float *n_first, float *n_second) {
  const float u1 = static_cast<float>((a >> 8) + 1u) * (1.0f / 16777216.0f);
  const float u2 = static_cast<float>(b >> 8) * (1.0f / 16777216.0f);
  const float r = sqrtf(-2.0f * logf(u1));
  const float t = 6.28318530717958647692f * u2;
  *n_first = r * cosf(t);
  *n_second = r * sinf(t);
}

// Four standard normals of block j: element 4j + i is n[i].
NGS_HD inline void philox_normal4(const Philox4 &p, float n[4]) {
  philox_normal_pair(p.x[0], p.x[1], &n[0], &n[1]);
  philox_normal_pair(p.x[2], p.x[3], &n[2], &n[3]);
}

// Fills out[0..count) with the normals of (domain, sequence, item), starting at element 0.
inline void philox_fill_normal(uint64_t seed, uint32_t domain, uint32_t sequence, uint32_t item,
                               float *out, int count) {
  for (int j = 0; 4 * j < count; ++j) {
    float n[4];
    philox_normal4(philox4x32_10(static_cast<uint32_t>(j), item, sequence, domain, seed), n);
    for (int i = 0; i < 4 && 4 * j + i < count; ++i) out[4 * j + i] = n[i];
  }
}

}  // namespace ngs
