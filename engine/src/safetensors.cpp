#include "safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "ngs/ngs.h"

namespace ngs {

namespace {

class OwnedBytes : public Bytes {
 public:
  explicit OwnedBytes(size_t n) : n_(n) {
    const size_t alloc = (std::max<size_t>(n, 1) + 63) / 64 * 64;
    p_ = static_cast<uint8_t *>(std::aligned_alloc(64, alloc));
    if (p_ == nullptr) throw std::bad_alloc();
  }
  ~OwnedBytes() override { std::free(p_); }
  const uint8_t *data() const override { return p_; }
  size_t size() const override { return n_; }
  uint8_t *mutable_data() { return p_; }

 private:
  uint8_t *p_;
  size_t n_;
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

[[noreturn]] void bad(const std::string &what, const std::string &msg) {
  throw Error(NGS_STATUS_BAD_MODEL, what + ": " + msg);
}

}  // namespace

const char *dtype_name(DType t) { return t == DType::kF32 ? "F32" : "F16"; }

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::unique_ptr<Bytes> read_file(const std::string &path) {
  Fd f;
  // O_NONBLOCK: opening a FIFO (or a device) for reading must not wait for a writer; it is
  // cleared once fstat says the file is a regular one.
  do {
    f.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  } while (f.fd < 0 && errno == EINTR);
  if (f.fd < 0)
    throw Error(NGS_STATUS_IO_ERROR, "cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (fstat(f.fd, &st) != 0)
    throw Error(NGS_STATUS_IO_ERROR, "cannot stat '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(NGS_STATUS_IO_ERROR, "'" + path + "' is not a regular file");
  const int fl = fcntl(f.fd, F_GETFL);
  if (fl < 0 || fcntl(f.fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
    throw Error(NGS_STATUS_IO_ERROR, "cannot read '" + path + "': " + std::strerror(errno));
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > kMaxModelFileBytes)
    throw Error(NGS_STATUS_IO_ERROR, "'" + path + "' is " + std::to_string(st.st_size) +
                                         " bytes, more than the " +
                                         std::to_string(kMaxModelFileBytes >> 20) +
                                         " MiB a model file may have");
  const size_t n = static_cast<size_t>(st.st_size);
  auto b = std::make_unique<OwnedBytes>(n);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = read(f.fd, b->mutable_data() + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      throw Error(NGS_STATUS_IO_ERROR, "cannot read '" + path + "': " + std::strerror(errno));
    if (r == 0)
      throw Error(NGS_STATUS_IO_ERROR, "'" + path + "' shrank while it was read (" +
                                           std::to_string(got) + " of " + std::to_string(n) +
                                           " bytes)");
    got += static_cast<size_t>(r);
  }
  return b;
}

size_t json_nesting_depth(const char *p, size_t n) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::string truncated(const std::string &s, size_t max_chars) {
  if (s.size() <= max_chars) return s;
  return s.substr(0, max_chars > 3 ? max_chars - 3 : 0) + "...";
}

std::string json_brief(const nlohmann::json &v) {
  switch (v.type()) {
    case nlohmann::json::value_t::array: return "an array of " + std::to_string(v.size()) + " elements";
    case nlohmann::json::value_t::object: return "an object of " + std::to_string(v.size()) + " keys";
    default: break;
  }
  return truncated(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 40);
}

std::unique_ptr<Bytes> copy_bytes(const void *data, size_t size) {
  auto b = std::make_unique<OwnedBytes>(size);
  if (size) std::memcpy(b->mutable_data(), data, size);
  return b;
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Bytes> bytes, const std::string &what)
    : bytes_(std::move(bytes)), what_(what) {
  const uint8_t *p = bytes_->data();
  const size_t size = bytes_->size();
  if (size < 8) bad(what_, "not a safetensors file (" + std::to_string(size) + " bytes, shorter than the 8-byte header length)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | p[i];
  if (hlen < 2 || hlen > 100u * 1024u * 1024u)
    bad(what_, "not a safetensors file (header length " + std::to_string(hlen) + " is implausible)");
  if (hlen > size - 8)
    bad(what_, "truncated: header of " + std::to_string(hlen) + " bytes but only " +
                   std::to_string(size - 8) + " bytes follow");
  const char *hp = reinterpret_cast<const char *>(p + 8);
  if (hp[0] != '{') bad(what_, "not a safetensors file (header does not start with '{')");

  if (json_nesting_depth(hp, hlen) > kMaxJsonDepth)
    bad(what_, "header is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hp, hp + hlen);
  } catch (const nlohmann::json::exception &e) {
    bad(what_, "header is not valid JSON: " + truncated(e.what(), 200));
  }
  if (!header.is_object()) bad(what_, "header is not a JSON object");

  const uint8_t *data = p + 8 + hlen;
  const size_t data_size = size - 8 - hlen;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    const nlohmann::json &v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad(what_, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) bad(what_, "metadata '" + truncated(m.key()) + "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tn = "tensor '" + truncated(name) + "'";
    if (!v.is_object()) bad(what_, tn + ": entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) bad(what_, tn + ": missing dtype");
    if (!v.contains("shape") || !v["shape"].is_array()) bad(what_, tn + ": missing shape");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      bad(what_, tn + ": missing or malformed data_offsets");
    TensorView t;
    t.name = name;
    const std::string dt = v["dtype"].get<std::string>();
    size_t esize = 0;
    if (dt == "F32") {
      t.dtype = DType::kF32;
      esize = 4;
    } else if (dt == "F16") {
      t.dtype = DType::kF16;
      esize = 2;
    } else {
      bad(what_, tn + ": dtype " + truncated(dt) + " is not supported (F32 or F16 expected)");
    }
    size_t numel = 1;
    for (const auto &d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        bad(what_, tn + ": shape has a non-integer or negative dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<size_t>::max() / esize / dim)
        bad(what_, tn + ": shape overflows");
      numel *= static_cast<size_t>(dim);
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto &o : v["data_offsets"])
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        bad(what_, tn + ": data_offsets are not non-negative integers");
    const uint64_t b = v["data_offsets"][0].get<uint64_t>();
    const uint64_t e = v["data_offsets"][1].get<uint64_t>();
    if (b > e) bad(what_, tn + ": data_offsets end before they begin");
    if (e > data_size)
      bad(what_, tn + ": data [" + std::to_string(b) + ", " + std::to_string(e) +
                     ") lies outside the data area of " + std::to_string(data_size) +
                     " bytes (file truncated?)");
    if (e - b != numel * esize)
      bad(what_, tn + ": " + std::to_string(e - b) + " bytes of data for shape " +
                     t.shape_string() + " " + dt + " (" + std::to_string(numel * esize) +
                     " expected)");
    t.numel = numel;
    t.begin = static_cast<size_t>(b);
    t.end = static_cast<size_t>(e);
    t.data = data + t.begin;
    tensors_.push_back(std::move(t));
  }

  // No two tensors may share bytes.
  std::vector<const TensorView *> order;
  for (const auto &t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorView *a, const TensorView *b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end &&
        order[i - 1]->begin != order[i - 1]->end)
      bad(what_, "tensor '" + truncated(order[i]->name) + "' overlaps tensor '" +
                     truncated(order[i - 1]->name) + "'");
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorView *SafetensorsFile::find(const std::string &name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const std::string *SafetensorsFile::meta(const std::string &key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void tensor_to_f32(const TensorView &t, float *out) {
  if (t.dtype == DType::kF32) {
    std::memcpy(out, t.data, t.numel * 4);
    return;
  }
  for (size_t i = 0; i < t.numel; ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + 2 * i, 2);
    out[i] = half_to_float(h);
  }
}

}  // namespace ngs
