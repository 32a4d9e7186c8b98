// The CUDA backend (backend.h) with its options; cuda_backend.h has the plain entry points.
#pragma once

#include <memory>
#include <string>

#include "backend.h"
#include "decoder_mlp.cuh"
#include "weights.h"

namespace ngs::cuda {

struct BackendOptions {
  bool fp16_weights = false;  // keep a half copy of the MLP weights and use it
  bool use_graphs = true;     // capture the whole decode in a CUDA Graph per request size
  int encoder_chunk = 128;    // grains per pass of the device encoder (its workspace)
  // The decoder MLP kernel (decoder_mlp.cuh): kRows, or the part-1 kTiled for an A/B.
  // make_cuda_backend (the engine) reads NGS_CUDA_MLP=rows|tiled.
  MlpKernel mlp_kernel = MlpKernel::kRows;
};

// The grain encoder, the decoder and, when latent is not null, the sequence VAE run on the
// device (an encoder whose convs need more shared memory than a block has falls back to
// the CPU code, encoder_on_host() names why). Throws
// ngs::Error (kUnsupported when no usable device, kBackendError on a CUDA failure,
// kBadModel for weights the kernels cannot run).
std::unique_ptr<Backend> make_backend(const WaveformWeights &w, int device,
                                      const BackendOptions &options,
                                      const LatentWeights *latent = nullptr);

// For a backend of make_backend: empty when its encoder runs on the device, else the
// reason it runs on the CPU (kUnsupported of the device encoder).
std::string encoder_on_host(const Backend &backend);

}  // namespace ngs::cuda
