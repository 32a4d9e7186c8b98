// The CUDA backend (backend.h) with its options; cuda_backend.h has the plain entry points.
#pragma once

#include <memory>

#include "backend.h"
#include "weights.h"

namespace ngs::cuda {

struct BackendOptions {
  bool fp16_weights = false;  // keep a half copy of the MLP weights and use it
  bool use_graphs = true;     // capture the whole decode in a CUDA Graph per request size
};

// The decoder and, when latent is not null, the sequence VAE run on the device; the
// encoder is delegated to the CPU implementation (no CUDA kernels for it yet). Throws
// ngs::Error (kUnsupported when no usable device, kBackendError on a CUDA failure,
// kBadModel for weights the kernels cannot run).
std::unique_ptr<Backend> make_backend(const WaveformWeights &w, int device,
                                      const BackendOptions &options,
                                      const LatentWeights *latent = nullptr);

}  // namespace ngs::cuda
