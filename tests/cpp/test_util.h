// Helpers shared by the C++ test suites: golden fixture loading, error measures, poisoned
// buffers, random inputs. Header-only; link ngs_core (for the safetensors reader).
//
//   ngs::test::Golden g = ngs::test::load_golden(ngs::test::fixture_path("gru16k", "golden.safetensors"));
//   const std::vector<float> &z = g.at("decode.z");      // throws if absent
//   g.shape("decode.z")                                   // {n, z_dim}
//   EXPECT_LE(ngs::test::rel_l2(out, g.at("decode.audio")), 1e-5);
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <limits>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "safetensors.h"

namespace ngs::test {

// Fixture folder (<build>/fixtures, made by python3 -m weights_converter.make_fixtures).
// NGS_FIXTURES_DIR in the environment overrides the compiled-in path.
inline std::string fixtures_dir() {
  if (const char *e = std::getenv("NGS_FIXTURES_DIR"); e != nullptr && *e) return e;
#ifdef NGS_FIXTURES_DIR
  return NGS_FIXTURES_DIR;
#else
  return "fixtures";
#endif
}

inline std::string fixture_path(const std::string &config, const std::string &file) {
  return fixtures_dir() + "/" + config + "/" + file;
}

inline bool file_exists(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// Names of the fixture configs present (sub-folders holding golden.safetensors), sorted.
inline std::vector<std::string> fixture_configs() {
  std::vector<std::string> out;
  DIR *d = opendir(fixtures_dir().c_str());
  if (d == nullptr) return out;
  while (dirent *e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (file_exists(fixture_path(name, "golden.safetensors"))) out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// All tensors of a safetensors file as fp32 vectors, with their shapes and the metadata.
struct Golden {
  std::map<std::string, std::vector<float>> tensors;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::string> metadata;

  bool has(const std::string &name) const { return tensors.count(name) != 0; }
  const std::vector<float> &at(const std::string &name) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw std::runtime_error("golden tensor '" + name + "' is missing");
    return it->second;
  }
  const std::vector<int64_t> &shape(const std::string &name) const {
    auto it = shapes.find(name);
    if (it == shapes.end()) throw std::runtime_error("golden tensor '" + name + "' is missing");
    return it->second;
  }
  int dim(const std::string &name, int axis) const {
    return static_cast<int>(shape(name).at(static_cast<size_t>(axis)));
  }
  bool has_meta(const std::string &key) const { return metadata.count(key) != 0; }
  const std::string &meta(const std::string &key) const {
    auto it = metadata.find(key);
    if (it == metadata.end()) throw std::runtime_error("golden metadata '" + key + "' is missing");
    return it->second;
  }
};

// Throws std::runtime_error (or ngs::Error) if the file cannot be read.
inline Golden load_golden(const std::string &path) {
  SafetensorsFile f(map_file(path), path);
  Golden g;
  for (const auto &t : f.tensors()) {
    std::vector<float> v(t.numel);
    tensor_to_f32(t, v.data());
    g.tensors[t.name] = std::move(v);
    g.shapes[t.name] = t.shape;
  }
  g.metadata = f.metadata();
  return g;
}

// ||a - b|| / ||b|| in double; +inf on a size mismatch or a non-finite value in a, so
// a NaN left in a poisoned buffer fails every comparison.
inline double rel_l2(const float *a, const float *b, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

inline double rel_l2(const std::vector<float> &a, const std::vector<float> &b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  return rel_l2(a.data(), b.data(), a.size());
}

inline double max_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return m;
}

// Fills with quiet NaN: any element a call fails to write shows up.
inline void poison(float *p, size_t n) {
  std::fill(p, p + n, std::numeric_limits<float>::quiet_NaN());
}
inline void poison(std::vector<float> &v) { poison(v.data(), v.size()); }
inline std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// Number of non-finite elements (0 means every element was written with a number).
inline size_t count_nonfinite(const float *p, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; ++i) c += std::isfinite(p[i]) ? 0 : 1;
  return c;
}
inline size_t count_nonfinite(const std::vector<float> &v) {
  return count_nonfinite(v.data(), v.size());
}

// Uniform in [lo, hi) from a seeded engine.
inline std::vector<float> random_uniform(size_t n, uint32_t seed, float lo = -1.0f,
                                         float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

inline std::vector<float> random_normal(size_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

inline std::vector<uint8_t> read_file_bytes(const std::string &path) {
  std::vector<uint8_t> out;
  FILE *f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + path);
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  std::fclose(f);
  return out;
}


// A safetensors file split into its JSON header and data area, to build broken variants
// of a valid file in tests (edit `header`, then bytes()).
struct SafetensorsEdit {
  nlohmann::json header;
  std::vector<uint8_t> data;

  static SafetensorsEdit parse(const std::vector<uint8_t> &bytes) {
    if (bytes.size() < 8) throw std::runtime_error("not a safetensors file");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
    SafetensorsEdit e;
    e.header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    e.data.assign(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
    return e;
  }
  // Header padded with spaces to a multiple of 8 bytes, as the reference writer does.
  std::vector<uint8_t> bytes() const {
    std::string h = header.dump();
    while ((8 + h.size()) % 8 != 0) h += ' ';
    std::vector<uint8_t> out(8);
    uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }
  nlohmann::json config() const { return nlohmann::json::parse(header["__metadata__"]["ngs.config"].get<std::string>()); }
  void set_config(const nlohmann::json &c) { header["__metadata__"]["ngs.config"] = c.dump(); }
  // Pointer to the first data byte of a tensor.
  uint8_t *tensor_data(const std::string &name) {
    return data.data() + header.at(name).at("data_offsets")[0].get<size_t>();
  }
};

// Tolerances (relative L2) in one place.
constexpr double kTolF32 = 1e-5;
// fp16 weight files versus the fp32 golden: the converter's documented bound
// (docs/CONVERTER.md: 5e-3 relative L2 per stage); overridable with NGS_TOL_F16.
inline double tol_f16() {
  if (const char *e = std::getenv("NGS_TOL_F16"); e != nullptr && *e) return std::atof(e);
  return 5e-3;
}
// Fast precision (bf16 products, fp32 sums; int8 recurrence where the CPU has
// AVX512_VNNI; docs/PRECISION.md) against fp32, relative L2, on fresh random inputs: one
// GEMM / GEMV with K >= 100 (kernel), one int8 recurrent step's W h, one recurrent layer
// over 7 steps (bf16, int8), and per stage of the fixture models (test_cpu_fast.cpp).
// About 2.5x the largest error measured over several runs (docs/PRECISION.md).
constexpr double kTolFastKernel = 6e-3;          // measured <= 2.3e-3
constexpr double kTolFastRnnStepInt8 = 2.5e-2;   // <= 9.9e-3
constexpr double kTolFastRnn = 1.5e-2;           // <= 5.9e-3
constexpr double kTolFastRnnInt8 = 3.5e-2;       // <= 1.45e-2
constexpr double kTolFastDecoderMlp = 4e-3;      // <= 1.4e-3
constexpr double kTolFastLatentDecode = 2e-2;    // <= 8.8e-3
constexpr double kTolFastLatentEncode = 2.5e-2;  // <= 1.1e-2
constexpr double kTolFastSample = 5e-3;          // <= 2.2e-3
// The encoder's bf16 convolutions (test_cpu_encoder.cpp explains the error budget): one
// conv against a double conv, the encoder on the golden fixtures, on random encoders.
constexpr double kTolFastConv = 2e-2;            // <= 1.14e-2
constexpr double kTolFastEncoderGolden = 3e-2;   // <= 1.2e-2
constexpr double kTolFastEncoder = 5e-2;         // <= 3.3e-2

}  // namespace ngs::test
