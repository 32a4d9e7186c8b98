// Latent path generators of docs/PATHS.md, float32 arithmetic (dot products accumulated
// in double, then rounded), one point at a time (paths.h): ngs_path_generate and the
// real-time synth's path voices share this code.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/philox.h"
#include "engine.h"
#include "paths.h"

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
  PathCursor c;
  c.start(p, n, zd);
  for (int g = 0; g < n; ++g) c.point(g, z + static_cast<size_t>(g) * zd);
}

bool path_params_valid(const ngs_path_params &p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) return false;
  int kind;
  static_assert(sizeof kind == sizeof p.kind, "enum size");
  std::memcpy(&kind, &p.kind, sizeof kind);
  switch (kind) {
    case NGS_PATH_KIND_LINE: return true;
    case NGS_PATH_KIND_CIRCLE:
    case NGS_PATH_KIND_SPIRAL: return std::isfinite(p.turns);
    case NGS_PATH_KIND_RANDOM: return p.points >= 2;
    case NGS_PATH_KIND_BACK_AND_FORTH:
      return p.legs >= 1 && p.gamma > 0.0f && std::isfinite(p.gamma);
    default: return false;
  }
}

void PathCursor::start(const ngs_path_params &params, int n_grains, int z_dim) {
  p = params;
  n = n_grains;
  zd = z_dim;
  zero = false;
  proj = scale = 0.0f;
  if (p.kind != NGS_PATH_KIND_CIRCLE && p.kind != NGS_PATH_KIND_SPIRAL) return;
  const int nb = (zd + 3) / 4;
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
  if (aa == 0.0f) {
    zero = true;
    return;
  }
  proj = pa / aa;
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
  scale = bb > 0.0f ? std::sqrt(aa) / std::sqrt(bb) : 0.0f;
}

void PathCursor::point(int g, float *z) const {
  const int nb = (zd + 3) / 4;
  switch (p.kind) {
    case NGS_PATH_KIND_LINE:
    case NGS_PATH_KIND_BACK_AND_FORTH: {
      const float t = t_of(g, n);
      float q = t;
      if (p.kind == NGS_PATH_KIND_BACK_AND_FORTH) {
        const float u = t * static_cast<float>(p.legs);
        const int leg = std::min(static_cast<int>(std::floor(u)), p.legs - 1);
        const float f = u - static_cast<float>(leg);
        const float fp = std::pow(f, p.gamma);
        q = (leg % 2 == 0) ? fp : 1.0f - fp;
      }
      for (int j = 0; j < nb; ++j) {
        float p0[4], p1[4];
        point_block(p, 0, j, p0);
        point_block(p, 1, j, p1);
        for (int k = 0; k < 4 && 4 * j + k < zd; ++k) z[4 * j + k] = p0[k] + (p1[k] - p0[k]) * q;
      }
      return;
    }
    case NGS_PATH_KIND_RANDOM: {
      const float u = t_of(g, n) * static_cast<float>(p.points - 1);
      const int seg = std::min(static_cast<int>(std::floor(u)), p.points - 2);
      const float frac = u - static_cast<float>(seg);
      for (int j = 0; j < nb; ++j) {
        float a[4], b[4];
        point_block(p, seg, j, a);
        point_block(p, seg + 1, j, b);
        for (int k = 0; k < 4 && 4 * j + k < zd; ++k) z[4 * j + k] = a[k] + (b[k] - a[k]) * frac;
      }
      return;
    }
    case NGS_PATH_KIND_CIRCLE:
    case NGS_PATH_KIND_SPIRAL: {
      if (zero) {
        std::fill(z, z + zd, 0.0f);
        return;
      }
      const float two_pi = 6.28318530717958647692f;
      const float t = t_of(g, n);
      const float theta = two_pi * p.turns * t;
      const float ct = std::cos(theta), st = std::sin(theta);
      for (int j = 0; j < nb; ++j) {
        float p0[4], p1[4], bv[4];
        point_block(p, 0, j, p0);
        point_block(p, 1, j, p1);
        for (int k = 0; k < 4; ++k) bv[k] = (p1[k] - proj * p0[k]) * scale;
        for (int k = 0; k < 4 && 4 * j + k < zd; ++k) {
          const float v = ct * p0[k] + st * bv[k];
          z[4 * j + k] = p.kind == NGS_PATH_KIND_SPIRAL ? t * v : v;
        }
      }
      return;
    }
  }
  std::fill(z, z + zd, 0.0f);
}

}  // namespace ngs
