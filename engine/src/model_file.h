// The model file loader (docs/MODEL_FORMAT.md): validates the magic, the format version,
// every config field and every tensor, and fills WaveformWeights / LatentWeights with fp32
// views. F32 tensors are used in place from the owned file bytes (when 4-byte aligned), F16 ones are
// expanded once into owned fp32 buffers. Every error is an ngs::Error naming the problem.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "safetensors.h"
#include "weights.h"

namespace ngs {

struct ModelFile {
  std::unique_ptr<SafetensorsFile> file;
  WaveformWeights waveform;
  bool has_latent = false;
  LatentWeights latent;
  int weight_bits = 32;
  std::string config_json;  // the ngs.config metadata, verbatim
  std::vector<std::unique_ptr<float[]>> owned;  // fp32 copies (F16 or misaligned tensors)
};

std::unique_ptr<ModelFile> load_model_file(const std::string &path);
// Copies the bytes.
std::unique_ptr<ModelFile> load_model_buffer(const void *data, size_t size);
// Validates an already opened safetensors file (takes ownership).
std::unique_ptr<ModelFile> load_model(std::unique_ptr<SafetensorsFile> file);

}  // namespace ngs
