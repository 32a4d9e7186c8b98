// Entry points of the CUDA backend. Defined in kernels/: by the nvcc build of the CUDA
// backend, by its CPU-emulation build (tests), or by a stub when CUDA is not built.
#pragma once

#include <memory>
#include <string>

#include "backend.h"

namespace ngs {

// Empty when a CUDA device `device` can run the backend; otherwise the reason, e.g.
// "built without CUDA" or "CUDA: no device found".
std::string cuda_unavailable_reason(int device);

// Uploads the decoder weights and the sequence VAE's (latent, may be null) to the device;
// the encoder runs on the CPU by delegation. Throws ngs::Error (kUnsupported or
// kBackendError) on failure.
std::unique_ptr<Backend> make_cuda_backend(const WaveformWeights &weights,
                                           const LatentWeights *latent, int device);

}  // namespace ngs
