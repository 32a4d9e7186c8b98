// Latent path generators of docs/PATHS.md, float32 arithmetic (dot products accumulated
// in double, then rounded).
#include <algorithm>
#include <cmath>

#include "common/philox.h"
#include "engine.h"

namespace ngs {

namespace {

float t_of(int i, int n) {
  return n == 1 ? 0.0f : static_cast<float>(i) / static_cast<float>(n - 1);
}

// Elements 4j .. 4j+3 of P_point = T * normals(domain 4, sequence, point).
void point_block(const ngs_path_params &p, int point, int j, float v[4]) {
  philox_normal4(philox4x32_10(static_cast<uint32_t>(j), static_cast<uint32_t>(point), p.sequence,
                               kDomainPathPoints, p.seed),
                 v);
  for (int i = 0; i < 4; ++i) v[i] *= p.temperature;
}

}  // namespace

// The prior points are regenerated block by block from the counter-based stream instead of
// being stored, so the call needs no scratch memory and never allocates.
void path_generate(const ngs_model &m, const ngs_path_params &p, int n, float *z) {
  const int zd = m.z_dim();
  const int nb = (zd + 3) / 4;
  auto at = [&](int g, int i) -> float & { return z[static_cast<size_t>(g) * zd + i]; };

  switch (p.kind) {
    case NGS_PATH_KIND_LINE:
    case NGS_PATH_KIND_BACK_AND_FORTH: {
      for (int j = 0; j < nb; ++j) {
        float p0[4], p1[4];
        point_block(p, 0, j, p0);
        point_block(p, 1, j, p1);
        for (int g = 0; g < n; ++g) {
          const float t = t_of(g, n);
          float q = t;
          if (p.kind == NGS_PATH_KIND_BACK_AND_FORTH) {
            const float u = t * static_cast<float>(p.legs);
            const int leg = std::min(static_cast<int>(std::floor(u)), p.legs - 1);
            const float f = u - static_cast<float>(leg);
            const float fp = std::pow(f, p.gamma);
            q = (leg % 2 == 0) ? fp : 1.0f - fp;
          }
          for (int k = 0; k < 4 && 4 * j + k < zd; ++k) at(g, 4 * j + k) = p0[k] + (p1[k] - p0[k]) * q;
        }
      }
      return;
    }
    case NGS_PATH_KIND_RANDOM: {
      for (int j = 0; j < nb; ++j) {
        int cur = -1;
        float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
        for (int g = 0; g < n; ++g) {  // segments are visited in increasing order
          const float u = t_of(g, n) * static_cast<float>(p.points - 1);
          const int seg = std::min(static_cast<int>(std::floor(u)), p.points - 2);
          const float frac = u - static_cast<float>(seg);
          if (seg != cur) {
            point_block(p, seg, j, a);
            point_block(p, seg + 1, j, b);
            cur = seg;
          }
          for (int k = 0; k < 4 && 4 * j + k < zd; ++k) at(g, 4 * j + k) = a[k] + (b[k] - a[k]) * frac;
        }
      }
      return;
    }
    case NGS_PATH_KIND_CIRCLE:
    case NGS_PATH_KIND_SPIRAL: {
      // a = P_0; b = P_1 - (<P_1, a> / <a, a>) a, rescaled to |a| (dot products in double).
      double aa_d = 0.0, pa_d = 0.0;
      for (int j = 0; j < nb; ++j) {
        float p0[4], p1[4];
        point_block(p, 0, j, p0);
        point_block(p, 1, j, p1);
        for (int k = 0; k < 4 && 4 * j + k < zd; ++k) {
          aa_d += static_cast<double>(p0[k]) * p0[k];
          pa_d += static_cast<double>(p1[k]) * p0[k];
        }
      }
      const float aa = static_cast<float>(aa_d), pa = static_cast<float>(pa_d);
      if (aa == 0.0f) {  // temperature 0: a circle of radius 0
        std::fill(z, z + static_cast<size_t>(n) * zd, 0.0f);
        return;
      }
      const float proj = pa / aa;
      double bb_d = 0.0;
      for (int j = 0; j < nb; ++j) {
        float p0[4], p1[4];
        point_block(p, 0, j, p0);
        point_block(p, 1, j, p1);
        for (int k = 0; k < 4 && 4 * j + k < zd; ++k) {
          const float b = p1[k] - proj * p0[k];
          bb_d += static_cast<double>(b) * b;
        }
      }
      const float bb = static_cast<float>(bb_d);
      const float scale = bb > 0.0f ? std::sqrt(aa) / std::sqrt(bb) : 0.0f;
      const float two_pi = 6.28318530717958647692f;
      for (int j = 0; j < nb; ++j) {
        float p0[4], p1[4], bv[4];
        point_block(p, 0, j, p0);
        point_block(p, 1, j, p1);
        for (int k = 0; k < 4; ++k) bv[k] = (p1[k] - proj * p0[k]) * scale;
        for (int g = 0; g < n; ++g) {
          const float t = t_of(g, n);
          const float theta = two_pi * p.turns * t;
          const float ct = std::cos(theta), st = std::sin(theta);
          for (int k = 0; k < 4 && 4 * j + k < zd; ++k) {
            const float v = ct * p0[k] + st * bv[k];
            at(g, 4 * j + k) = p.kind == NGS_PATH_KIND_SPIRAL ? t * v : v;
          }
        }
      }
      return;
    }
  }
}

}  // namespace ngs
