// A safetensors reader (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {string: string}}, then the raw tensor data. Only F32 and F16 tensors
// are accepted. The bytes are always owned (a file is read whole into memory, a caller's
// buffer is copied), so a loaded model does not depend on the file any more; tensor views
// point into them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace ngs {

enum class DType { kF32, kF16 };

const char *dtype_name(DType t);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  size_t numel = 0;
  size_t begin = 0, end = 0;       // byte offsets inside the data area
  const uint8_t *data = nullptr;   // first byte of the tensor
  std::string shape_string() const;  // "[2, 3]"
};

// Bytes of a file or buffer, kept alive for the tensor views. Read-only.
class Bytes {
 public:
  virtual ~Bytes() = default;
  virtual const uint8_t *data() const = 0;
  virtual size_t size() const = 0;
};

// Largest model file read_file accepts (the models are a few MB).
constexpr uint64_t kMaxModelFileBytes = uint64_t(1) << 30;
// Deepest JSON nesting (arrays and objects) accepted in a header or in metadata; the
// format needs 3.
constexpr size_t kMaxJsonDepth = 64;

// Reads a whole regular file into an owned, 64-byte aligned buffer (later changes to the
// file do not reach it). A FIFO or device is refused without blocking. Throws
// Error(NGS_STATUS_IO_ERROR) naming the path.
std::unique_ptr<Bytes> read_file(const std::string &path);
// The former name of read_file (the file used to be memory-mapped).
inline std::unique_ptr<Bytes> map_file(const std::string &path) { return read_file(path); }
// Copies size bytes into an owned, 64-byte aligned buffer.
std::unique_ptr<Bytes> copy_bytes(const void *data, size_t size);

class SafetensorsFile {
 public:
  // Parses and validates the header; keeps `bytes` alive. Throws Error(NGS_STATUS_BAD_MODEL)
  // with a message naming the offending tensor. `what` names the source in messages.
  SafetensorsFile(std::unique_ptr<Bytes> bytes, const std::string &what);

  const TensorView *find(const std::string &name) const;
  const std::vector<TensorView> &tensors() const { return tensors_; }
  const std::map<std::string, std::string> &metadata() const { return metadata_; }
  // nullptr if absent.
  const std::string *meta(const std::string &key) const;
  const std::string &what() const { return what_; }

 private:
  std::unique_ptr<Bytes> bytes_;
  std::string what_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Deepest nesting of [ ] and { } in JSON text, brackets inside strings ignored. Checked
// before parsing: printing, copying or comparing a deeply nested value recurses.
size_t json_nesting_depth(const char *p, size_t n);
// Untrusted text in messages: at most max_chars characters ("..." marks a cut).
std::string truncated(const std::string &s, size_t max_chars = 60);
// A JSON value in a message: its type and size for arrays and objects, else its text cut
// to 40 characters. Never the whole value.
std::string json_brief(const nlohmann::json &v);

// IEEE 754 binary16 -> binary32, exact (subnormals, infinities and NaN included).
float half_to_float(uint16_t h);
// Reads a tensor as fp32 values (F16 expanded); any alignment.
void tensor_to_f32(const TensorView &t, float *out);

}  // namespace ngs
