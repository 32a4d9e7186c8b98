// Model file loading: the safetensors reader and the model validation, through the C API.
// Every broken file must give a status and a message naming the problem, never a crash.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "model_file.h"
#include "ngs/ngs.h"
#include "test_util.h"

namespace {

using ngs::test::SafetensorsEdit;
using nlohmann::json;

std::vector<uint8_t> fixture_bytes(const std::string &config, const std::string &file) {
  const std::string path = ngs::test::fixture_path(config, file);
  if (!ngs::test::file_exists(path))
    throw std::runtime_error(path + " is missing: run python3 -m weights_converter.make_fixtures");
  return ngs::test::read_file_bytes(path);
}

ngs_model_params cpu_params() {
  ngs_model_params p = ngs_model_default_params();
  p.backend = NGS_BACKEND_CPU;
  return p;
}

// Loads bytes; returns the status and the message; the model (if any) is freed.
struct LoadResult {
  ngs_status status;
  std::string message;
};
LoadResult load(const std::vector<uint8_t> &bytes) {
  ngs_model *m = reinterpret_cast<ngs_model *>(0x1);
  const ngs_status s = ngs_model_init_from_buffer(bytes.empty() ? "" : static_cast<const void *>(bytes.data()),
                                                  bytes.size(), cpu_params(), &m);
  LoadResult r{s, s == NGS_STATUS_OK ? "" : ngs_last_error()};
  if (s != NGS_STATUS_OK) EXPECT_EQ(m, nullptr) << "out not reset on failure";
  ngs_model_free(s == NGS_STATUS_OK ? m : nullptr);
  return r;
}

#define EXPECT_LOAD_FAILS(bytes, want_status, substr)                                          \
  do {                                                                                     \
    const LoadResult r_ = load(bytes);                                                     \
    EXPECT_EQ(r_.status, want_status) << r_.message;                                          \
    EXPECT_NE(r_.message.find(substr), std::string::npos)                                  \
        << "message '" << r_.message << "' does not mention '" << (substr) << "'";         \
  } while (0)

class Loader : public testing::Test {
 protected:
  void SetUp() override {
    bytes_ = fixture_bytes("lstm22k", "model.safetensors");
    edit_ = SafetensorsEdit::parse(bytes_);
  }
  std::vector<uint8_t> bytes_;
  SafetensorsEdit edit_;
};

TEST(Half, ConvertsExactly) {
  EXPECT_EQ(ngs::half_to_float(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(ngs::half_to_float(0x8000)));
  EXPECT_EQ(ngs::half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(ngs::half_to_float(0xc000), -2.0f);
  EXPECT_EQ(ngs::half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(ngs::half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(ngs::half_to_float(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(ngs::half_to_float(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(ngs::half_to_float(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isinf(ngs::half_to_float(0x7c00)));
  EXPECT_TRUE(std::isnan(ngs::half_to_float(0x7e00)));
  // Every finite half against its definition, computed in double.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const int e = static_cast<int>((h >> 10) & 0x1f), m = static_cast<int>(h & 0x3ff);
    if (e == 0x1f) continue;
    const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    const double want = (h & 0x8000) ? -mag : mag;
    ASSERT_EQ(static_cast<double>(ngs::half_to_float(static_cast<uint16_t>(h))), want) << std::hex << h;
  }
}

TEST_F(Loader, ValidFileAndBufferLoadAlike) {
  ngs_model *a = nullptr, *b = nullptr;
  const std::string path = ngs::test::fixture_path("lstm22k", "model.safetensors");
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), cpu_params(), &a), NGS_STATUS_OK) << ngs_last_error();
  ASSERT_EQ(ngs_model_init_from_buffer(bytes_.data(), bytes_.size(), cpu_params(), &b), NGS_STATUS_OK);
  bytes_.assign(bytes_.size(), 0);  // the buffer was copied
  ngs_context *ca = nullptr, *cb = nullptr;
  ASSERT_EQ(ngs_context_init(a, ngs_context_default_params(), &ca), NGS_STATUS_OK);
  ASSERT_EQ(ngs_context_init(b, ngs_context_default_params(), &cb), NGS_STATUS_OK);
  ngs_model_info info;
  ASSERT_EQ(ngs_model_get_info(a, &info), NGS_STATUS_OK);
  const auto z = ngs::test::random_normal(static_cast<size_t>(info.n_grains) * info.z_dim, 5);
  std::vector<float> ya(info.sample_length), yb(info.sample_length);
  ASSERT_EQ(ngs_decode(ca, z.data(), info.n_grains, ngs_decode_default_params(), ya.data(), ya.size()), NGS_STATUS_OK);
  ASSERT_EQ(ngs_decode(cb, z.data(), info.n_grains, ngs_decode_default_params(), yb.data(), yb.size()), NGS_STATUS_OK);
  EXPECT_EQ(ya, yb);
  ngs_context_free(ca);
  ngs_context_free(cb);
  ngs_model_free(a);
  ngs_model_free(b);
}

TEST_F(Loader, MisalignedTensorsAreCopied) {
  // A header whose length is not a multiple of 4 leaves every F32 tensor misaligned.
  std::string h = edit_.header.dump() + " ";
  while ((8 + h.size()) % 4 == 0) h += ' ';
  std::vector<uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(static_cast<uint64_t>(h.size()) >> (8 * i));
  bytes.insert(bytes.end(), h.begin(), h.end());
  bytes.insert(bytes.end(), edit_.data.begin(), edit_.data.end());
  auto m = ngs::load_model_buffer(bytes.data(), bytes.size());
  EXPECT_FALSE(m->owned.empty());
  auto ref = ngs::load_model_buffer(bytes_.data(), bytes_.size());
  const auto &l1 = m->waveform.dec_out, &l2 = ref->waveform.dec_out;
  EXPECT_EQ(std::memcmp(l1.w, l2.w, sizeof(float) * l1.out * l1.in), 0);
}

TEST(LoaderFiles, MissingFileIsIoError) {
  ngs_model *m = reinterpret_cast<ngs_model *>(0x1);
  EXPECT_EQ(ngs_model_init_from_file("/nonexistent/dir/model.safetensors", cpu_params(), &m),
            NGS_STATUS_IO_ERROR);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(ngs_last_error()).find("/nonexistent/dir/model.safetensors"), std::string::npos);
  EXPECT_EQ(ngs_model_init_from_file("/", cpu_params(), &m), NGS_STATUS_IO_ERROR);
  EXPECT_EQ(ngs_model_init_from_file(nullptr, cpu_params(), &m), NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(ngs_model_init_from_file("x", cpu_params(), nullptr), NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(ngs_model_init_from_buffer(nullptr, 10, cpu_params(), &m), NGS_STATUS_INVALID_ARGUMENT);
}

TEST(LoaderFiles, FileThatIsNotSafetensors) {
  char tmpl[] = "/tmp/ngs_test_XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  const char text[] = "This is a WAV file, honestly. RIFF....WAVEfmt ";
  ASSERT_EQ(write(fd, text, sizeof text), static_cast<ssize_t>(sizeof text));
  close(fd);
  ngs_model *m = nullptr;
  EXPECT_EQ(ngs_model_init_from_file(tmpl, cpu_params(), &m), NGS_STATUS_BAD_MODEL);
  EXPECT_NE(std::string(ngs_last_error()).find("not a safetensors file"), std::string::npos) << ngs_last_error();
  // An empty file.
  FILE *f = std::fopen(tmpl, "wb");
  std::fclose(f);
  EXPECT_EQ(ngs_model_init_from_file(tmpl, cpu_params(), &m), NGS_STATUS_BAD_MODEL);
  unlink(tmpl);
}

TEST_F(Loader, TruncatedAnywhere) {
  const size_t cuts[] = {0, 4, 8, 20, 200, bytes_.size() / 2, bytes_.size() - 1};
  for (size_t cut : cuts) {
    std::vector<uint8_t> b(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(cut));
    const LoadResult r = load(b);
    EXPECT_EQ(r.status, NGS_STATUS_BAD_MODEL) << "cut at " << cut << ": " << r.message;
    EXPECT_FALSE(r.message.empty());
  }
  std::vector<uint8_t> b(bytes_.begin(), bytes_.end() - 3);
  EXPECT_LOAD_FAILS(b, NGS_STATUS_BAD_MODEL, "truncated?");
}

TEST_F(Loader, CorruptedHeader) {
  std::vector<uint8_t> b = bytes_;
  b[8] = 'X';
  EXPECT_LOAD_FAILS(b, NGS_STATUS_BAD_MODEL, "not a safetensors file");
  b = bytes_;
  b[8 + 40] = '\x01';
  EXPECT_LOAD_FAILS(b, NGS_STATUS_BAD_MODEL, "JSON");
  b = bytes_;
  b[7] = 0x7f;  // header length ~ 2^63
  EXPECT_LOAD_FAILS(b, NGS_STATUS_BAD_MODEL, "header length");
  b = bytes_;
  for (size_t i = 8; i < 16; ++i) b[i] ^= 0x5a;  // garbage fuzz-style bytes in the header
  EXPECT_EQ(load(b).status, NGS_STATUS_BAD_MODEL);
}

// One mutated file: a documented load status with a one-line message, or a model that
// makes a context and decodes its training length to finite audio (or fails with a
// documented status and message). Returns whether it loaded.
bool check_mutated(const std::vector<uint8_t> &b, const std::string &what) {
  SCOPED_TRACE(what);
  ngs_model *m = reinterpret_cast<ngs_model *>(0x1);
  const ngs_status s = ngs_model_init_from_buffer(b.empty() ? "" : static_cast<const void *>(b.data()),
                                                  b.size(), cpu_params(), &m);
  if (s != NGS_STATUS_OK) {
    const std::string msg = ngs_last_error();
    EXPECT_TRUE(s == NGS_STATUS_BAD_MODEL || s == NGS_STATUS_UNSUPPORTED)
        << "status " << ngs_status_string(s) << ": " << msg;
    EXPECT_EQ(m, nullptr);
    EXPECT_FALSE(msg.empty());
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return false;
  }
  ngs_model_info info;
  EXPECT_EQ(ngs_model_get_info(m, &info), NGS_STATUS_OK);
  ngs_context *c = nullptr;
  const ngs_status cs = ngs_context_init(m, ngs_context_default_params(), &c);
  if (cs != NGS_STATUS_OK) {
    EXPECT_TRUE(cs == NGS_STATUS_OUT_OF_MEMORY || cs == NGS_STATUS_CAPACITY)
        << ngs_status_string(cs) << ": " << ngs_last_error();
    EXPECT_FALSE(std::string(ngs_last_error()).empty());
  } else {
    const int n = info.n_grains;
    const auto z = ngs::test::random_normal(static_cast<size_t>(n) * info.z_dim, 5);
    const size_t len = ngs_model_audio_length(m, n);
    std::vector<float> y = ngs::test::poisoned(len);
    ngs_decode_params dp = ngs_decode_default_params();
    const ngs_status ds = ngs_decode(c, z.data(), n, dp, y.data(), len);
    if (ds == NGS_STATUS_OK)
      EXPECT_EQ(ngs::test::count_nonfinite(y), 0u) << "a loaded mutated model decodes to non-finite audio";
    else
      ADD_FAILURE() << "decode of a loaded model failed: " << ngs_status_string(ds) << ": "
                    << ngs_last_error();
    ngs_context_free(c);
  }
  ngs_model_free(m);
  return true;
}

// Mutations across the whole file, each region on its own: the 8-byte header length, the
// JSON header (metadata, config, tensor table) and the tensor data; random bytes, single
// bit flips, truncations and (data) a weight made Inf/NaN, on an fp32 and an fp16 file.
// Fresh random positions per run (the seed is printed on failure).
TEST_F(Loader, FuzzedBytesAnywhere) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("random seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (const auto &file : {std::make_pair("lstm22k", "model.safetensors"),
                           std::make_pair("odd", "model_fp16.safetensors")}) {
    const std::vector<uint8_t> orig = fixture_bytes(file.first, file.second);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | orig[static_cast<size_t>(i)];
    ASSERT_LT(8 + hlen, orig.size());
    const size_t lo[3] = {0, 8, 8 + hlen}, hi[3] = {8, 8 + hlen, orig.size()};
    const size_t esize = std::string(file.second).find("fp16") != std::string::npos ? 2 : 4;
    const char *names[3] = {"length", "header", "data"};
    for (int region = 0; region < 3; ++region) {
      const int trials = region == 0 ? 40 : 150;
      int loaded = 0;
      for (int t = 0; t < trials; ++t) {
        std::vector<uint8_t> b = orig;
        const size_t span = hi[region] - lo[region];
        const int kind = static_cast<int>(rng() % (region == 2 ? 4 : 3));
        std::string what = std::string(file.first) + "/" + file.second + " " + names[region];
        if (kind == 0) {  // 1-4 random bytes
          const int k = 1 + static_cast<int>(rng() % 4);
          for (int q = 0; q < k; ++q) b[lo[region] + rng() % span] = static_cast<uint8_t>(rng());
          what += " bytes";
        } else if (kind == 1) {  // one bit
          const size_t at = lo[region] + rng() % span;
          b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          what += " bit at " + std::to_string(at);
        } else if (kind == 2) {  // cut inside the region
          const size_t at = lo[region] + rng() % span;
          b.resize(at);
          what += " truncated at " + std::to_string(at);
        } else {  // one weight's exponent all ones: Inf or NaN, which must be refused
          const size_t at = lo[region] + (rng() % (span / esize)) * esize;
          if (esize == 4) b[at + 3] |= 0x7F, b[at + 2] |= 0x80;
          else b[at + 1] |= 0x7C;
          what += " non-finite weight at " + std::to_string(at);
        }
        const bool ok = check_mutated(b, what);
        if (kind == 3) EXPECT_FALSE(ok) << what << ": a non-finite weight was accepted";
        loaded += ok ? 1 : 0;
        if (HasFatalFailure()) return;
      }
      // Flips in the tensor data mostly keep a valid (finite) model: those must decode.
      if (region == 2) EXPECT_GT(loaded, 0) << "no mutated data region loaded";
      if (region == 0) EXPECT_LT(loaded, trials);
    }
  }
}

TEST_F(Loader, MagicAndVersion) {
  edit_.header["__metadata__"]["ngs.format"] = "gguf";
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "not an ngs model file");
  edit_.header["__metadata__"].erase("ngs.format");
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "ngs.format is missing");
  edit_ = SafetensorsEdit::parse(bytes_);
  edit_.header["__metadata__"]["ngs.format_version"] = "2";
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_UNSUPPORTED, "version '2'");
  edit_.header.erase("__metadata__");
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "ngs.format is missing");
}

TEST_F(Loader, WeightDtype) {
  edit_.header["__metadata__"]["ngs.weight_dtype"] = "bf16";
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "bf16");
  // An fp32 file that claims fp16 has F32 tensors where F16 ones are expected.
  edit_.header["__metadata__"]["ngs.weight_dtype"] = "fp16";
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "expected F16");
  edit_ = SafetensorsEdit::parse(bytes_);
  edit_.header["w.dec.out.bias"]["dtype"] = "I32";
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "tensor 'w.dec.out.bias': dtype I32");
  edit_.header["w.dec.out.bias"]["dtype"] = "BF16";
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "dtype BF16");
}

TEST_F(Loader, ConfigFieldsValidated) {
  const json good = edit_.config();
  struct Case {
    std::function<void(json &)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](json &c) { c["waveform"].erase("sr"); }, "waveform.sr is missing"},
      {[](json &c) { c["waveform"]["sr"] = "22050"; }, "waveform.sr is not an integer"},
      {[](json &c) { c["waveform"]["sr"] = 0; }, "waveform.sr = 0 is out of range"},
      {[](json &c) { c["waveform"]["l_grain"] = 2000; }, "not a power of two"},
      {[](json &c) { c["waveform"]["hop_size"] = 500; }, "waveform.hop_size = 500"},
      {[](json &c) { c["waveform"]["kernel_size"] = 8; }, "kernel_size = 8 is not odd"},
      {[](json &c) { c["waveform"]["n_convs"] = 6; }, "too short for the residual dilation"},
      {[](json &c) { c["waveform"]["stride"] = 3; }, "not divisible by stride"},
      {[](json &c) { c["waveform"]["normalize_ola"] = 1; }, "normalize_ola is not a boolean"},
      {[](json &c) { c["waveform"]["pp_ker"] = 64; }, "pp_ker = 64 is not odd"},
      {[](json &c) { c["waveform"]["n_grains"] = -3; }, "waveform.n_grains = -3"},
      {[](json &c) { c["waveform"]["z_dim"] = 1.5; }, "waveform.z_dim is not an integer"},
      {[](json &c) { c.erase("waveform"); }, "config waveform is missing"},
      {[](json &c) { c["latent"]["z_dim"] = 17; }, "differs from waveform.z_dim"},
      {[](json &c) { c["latent"]["n_grains"] = 12; }, "latent.n_grains = 12 differs"},
      {[](json &c) { c["latent"]["rnn_type"] = "RNN"; }, "rnn_type = 'RNN'"},
      {[](json &c) { c["latent"]["classes"] = json::array({"a", 3}); }, "non-string"},
      {[](json &c) { c["latent"]["classes"] = json::array({"Kick", "kick"}); }, "twice"},
      {[](json &c) { c["latent"].erase("conditional"); }, "latent.conditional is missing"},
      {[](json &c) { c["latent"]["n_RNN"] = 0; }, "latent.n_RNN = 0"},
      {[](json &c) { c["latent"] = 5; }, "latent is not an object"},
      // Consistent config, but the tensors no longer match it.
      {[](json &c) { c["waveform"]["h_dim"] = 65; }, "tensor 'w.enc.lin.0.weight' has shape [64, "},
      {[](json &c) { c["latent"]["n_RNN"] = 3; }, "tensor 'l.enc_rnn.2.w_ih' is missing"},
      {[](json &c) { c["latent"]["rnn_type"] = "GRU"; }, "l.enc_rnn.0.w_ih"},
      {[](json &c) { c["latent"] = nullptr; }, "belongs to a latent model"},
  };
  for (const auto &cs : cases) {
    json c = good;
    cs.edit(c);
    edit_.set_config(c);
    EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, cs.expect);
  }
  edit_.header["__metadata__"]["ngs.config"] = "{not json";
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "ngs.config is not valid JSON");
}

TEST_F(Loader, MissingTensor) {
  edit_.header.erase("l.dec_z.1.ln_bias");
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "tensor 'l.dec_z.1.ln_bias' is missing");
  edit_ = SafetensorsEdit::parse(bytes_);
  edit_.header.erase("w.pp.fir");
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "tensor 'w.pp.fir' is missing");
}

TEST_F(Loader, WrongShape) {
  // Same byte count, other shape: only the model validation can see it.
  auto &t = edit_.header["w.enc.res.1.2.pw.weight"];
  const auto shape = t["shape"];
  t["shape"] = json::array({shape[1], shape[0].get<int>() * 1, 1});
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "tensor 'w.enc.res.1.2.pw.weight' has shape [12, 12, 1], expected [12, 12]");
  edit_ = SafetensorsEdit::parse(bytes_);
  edit_.header["l.mu.bias"]["shape"] = json::array({31});
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "tensor 'l.mu.bias': 128 bytes of data for shape [31]");
}

TEST_F(Loader, OffsetsValidated) {
  const auto off = edit_.header["w.dec.out.bias"]["data_offsets"];
  edit_.header["w.dec.out.bias"]["data_offsets"] = json::array({off[1], off[0]});
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "end before they begin");
  edit_ = SafetensorsEdit::parse(bytes_);
  // Point one tensor at another's bytes (same size): overlap.
  edit_.header["w.enc.lin.1.bias"]["data_offsets"] = edit_.header["w.enc.mu.bias"]["data_offsets"];
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "overlaps");
  edit_ = SafetensorsEdit::parse(bytes_);
  edit_.header["w.pp.bias"]["data_offsets"] = json::array({uint64_t{1} << 62, (uint64_t{1} << 62) + 4});
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "outside the data area");
  edit_ = SafetensorsEdit::parse(bytes_);
  edit_.header["w.pp.bias"]["shape"] = json::array({uint64_t{1} << 62, 1 << 20});
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "overflows");
  edit_ = SafetensorsEdit::parse(bytes_);
  edit_.header["w.pp.bias"]["shape"] = json::array({-1});
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "negative");
}

TEST_F(Loader, NonFiniteWeightsRefused) {
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()};
  for (float v : bad) {
    SafetensorsEdit e = SafetensorsEdit::parse(bytes_);
    std::memcpy(e.tensor_data("w.dec.lin.1.weight") + 4 * 7, &v, 4);
    EXPECT_LOAD_FAILS(e.bytes(), NGS_STATUS_BAD_MODEL, "tensor 'w.dec.lin.1.weight' holds a non-finite value");
  }
  // fp16: the Inf half 0x7c00.
  SafetensorsEdit e = SafetensorsEdit::parse(fixture_bytes("lstm22k", "model_fp16.safetensors"));
  const uint16_t inf16 = 0x7c00;
  std::memcpy(e.tensor_data("l.dec_rnn.1.w_hh") + 2 * 3, &inf16, 2);
  EXPECT_LOAD_FAILS(e.bytes(), NGS_STATUS_BAD_MODEL, "tensor 'l.dec_rnn.1.w_hh' holds a non-finite value");
}

TEST_F(Loader, UnknownTensorRefused) {
  edit_.header["w.enc.conv.9.weight"] = edit_.header["w.pp.bias"];
  edit_.header["w.enc.conv.9.weight"]["data_offsets"] = json::array({0, 0});
  edit_.header["w.enc.conv.9.weight"]["shape"] = json::array({0});
  EXPECT_LOAD_FAILS(edit_.bytes(), NGS_STATUS_BAD_MODEL, "'w.enc.conv.9.weight' is not part of");
}

TEST(LoaderFiles, WaveformOnlyModel) {
  const std::string path = ngs::test::fixture_path("gru16k", "model_waveform_only.safetensors");
  ngs_model *m = nullptr;
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), cpu_params(), &m), NGS_STATUS_OK) << ngs_last_error();
  ngs_model_info info;
  ASSERT_EQ(ngs_model_get_info(m, &info), NGS_STATUS_OK);
  EXPECT_EQ(info.has_latent_model, 0);
  EXPECT_EQ(info.e_dim, 0);
  EXPECT_EQ(info.n_classes, 0);
  ngs_context *c = nullptr;
  ASSERT_EQ(ngs_context_init(m, ngs_context_default_params(), &c), NGS_STATUS_OK);
  std::vector<float> audio(info.sample_length);
  EXPECT_EQ(ngs_sample(c, ngs_sample_default_params(), audio.data(), audio.size()), NGS_STATUS_UNSUPPORTED);
  EXPECT_NE(std::string(ngs_last_error()).find("no latent"), std::string::npos);
  std::vector<float> e(64);
  EXPECT_EQ(ngs_embedding_sample(m, 1.0f, 1, 0, e.data()), NGS_STATUS_UNSUPPORTED);
  // The grain VAE still works.
  const auto z = ngs::test::random_normal(static_cast<size_t>(info.n_grains) * info.z_dim, 3);
  EXPECT_EQ(ngs_decode(c, z.data(), info.n_grains, ngs_decode_default_params(), audio.data(), audio.size()),
            NGS_STATUS_OK);
  EXPECT_EQ(ngs::test::count_nonfinite(audio), 0u);
  ngs_context_free(c);
  ngs_model_free(m);
}

}  // namespace
