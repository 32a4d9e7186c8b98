// The CUDA backend entry points when ngs is built without CUDA.
#include "cuda_backend.h"
#include "common/error.h"

namespace ngs {

std::string cuda_unavailable_reason(int) { return "CUDA: ngs was built without CUDA"; }

std::unique_ptr<Backend> make_cuda_backend(const WaveformWeights &, const LatentWeights *,
                                           int device) {
  throw Error(kUnsupported, cuda_unavailable_reason(device));
}

}  // namespace ngs
