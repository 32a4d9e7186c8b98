// Latent paths (docs/PATHS.md): point g of the path of n grains, one point at a time.
// ngs_path_generate writes every point through it, and the real-time synth's path voices
// advance it once per hop, so both give the same float32 numbers bit for bit.
#pragma once

#include "ngs/ngs.h"

namespace ngs {

struct PathCursor {
  ngs_path_params p{};
  int n = 0, zd = 0;
  bool zero = false;                // circle/spiral with a zero first prior point
  float proj = 0.0f, scale = 0.0f;  // circle/spiral basis (computed once by start)
  // Prepares the path of n_grains points in z_dim dimensions (params must be valid).
  void start(const ngs_path_params &params, int n_grains, int z_dim);
  // Point g (0 <= g < n) into z [z_dim].
  void point(int g, float *z) const;
};

// Whether params describe a path (kind, finite temperature >= 0, the kind's own fields).
bool path_params_valid(const ngs_path_params &p);

}  // namespace ngs
