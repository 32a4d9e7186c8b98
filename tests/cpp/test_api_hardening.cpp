// Hardening of the C API against crafted files and hostile arguments (issue 9, items 4-6):
// deeply nested JSON in a model file, untrusted text in messages, a model file changed
// after loading, FIFOs, negative / huge counts, results that overflow the float range,
// overlapping input and output buffers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfloat>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ngs/ngs.h"
#include "test_util.h"

namespace {

using nlohmann::json;

#define EXPECT_STATUS(call, want, substr)                                                  \
  do {                                                                                     \
    ngs_status s_ = (call);                                                                \
    EXPECT_EQ(s_, want) << #call << ": " << ngs_last_error();                              \
    const std::string m_ = ngs_last_error();                                               \
    EXPECT_NE(m_.find(substr), std::string::npos) << #call << ": message '" << m_          \
                                                  << "' lacks '" << (substr) << "'";       \
  } while (0)

std::string fixture_model(const char *config = "lstm22k",
                          const char *file = "model.safetensors") {
  return ngs::test::fixture_path(config, file);
}

std::vector<uint8_t> slurp(const std::string &path) { return ngs::test::read_file_bytes(path); }

void spit(const std::string &path, const std::vector<uint8_t> &bytes) {
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  ASSERT_EQ(std::fclose(f), 0);
}

// A fresh folder under TMPDIR, removed (with its files) at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char *t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t != nullptr && *t ? t : "/tmp") + "/ngs-hardening-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~TempDir() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  std::string file(const std::string &name) const { return path_ + "/" + name; }
  bool ok() const { return !path_.empty(); }

 private:
  std::string path_;
};

// The safetensors header of a file as JSON, and its data area.
struct Split {
  json header;
  std::vector<uint8_t> data;
};

Split split(const std::vector<uint8_t> &bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  Split s;
  s.header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  s.data.assign(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
  return s;
}

// A safetensors file from header text (kept verbatim) and a data area.
std::vector<uint8_t> join(const std::string &header, const std::vector<uint8_t> &data) {
  std::vector<uint8_t> out(8);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string deep_array(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// The fixture model with its ngs.config rewritten: the placeholder string "@X@" in `cfg`
// is replaced by `raw` (verbatim JSON text) after dumping.
std::vector<uint8_t> with_config(const std::function<void(json &)> &edit, const std::string &raw) {
  Split s = split(slurp(fixture_model()));
  json cfg = json::parse(s.header["__metadata__"]["ngs.config"].get<std::string>());
  edit(cfg);
  std::string text = cfg.dump();
  const size_t at = text.find("\"@X@\"");
  if (at != std::string::npos) text.replace(at, 5, raw);
  s.header["__metadata__"]["ngs.config"] = text;
  return join(s.header.dump(), s.data);
}

ngs_status load_buffer(const std::vector<uint8_t> &bytes, ngs_model **m) {
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = NGS_BACKEND_CPU;
  return ngs_model_init_from_buffer(bytes.data(), bytes.size(), mp, m);
}

ngs_status load_file(const std::string &path, ngs_model **m) {
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = NGS_BACKEND_CPU;
  return ngs_model_init_from_file(path.c_str(), mp, m);
}

// ---- item 4: nesting depth, untrusted text in messages --------------------------------

TEST(HardeningJson, DeepConfigValueIsRefusedWithoutRecursion) {
  // A 100,000-deep array as the value of a checked key: printing it in the message
  // overflowed the stack.
  const auto bytes = with_config([](json &c) { c["waveform"]["sr"] = "@X@"; }, deep_array(100000));
  ngs_model *m = reinterpret_cast<ngs_model *>(1);
  EXPECT_STATUS(load_buffer(bytes, &m), NGS_STATUS_BAD_MODEL, "nested deeper than");
  EXPECT_EQ(m, nullptr);
  EXPECT_LT(std::strlen(ngs_last_error()), 200u);
  // The same through a file.
  TempDir d;
  ASSERT_TRUE(d.ok());
  spit(d.file("deep.safetensors"), bytes);
  EXPECT_STATUS(load_file(d.file("deep.safetensors"), &m), NGS_STATUS_BAD_MODEL, "nested deeper than");
}

TEST(HardeningJson, DeepUnknownConfigKeyIsRefused) {
  const auto bytes =
      with_config([](json &c) { c["waveform"]["unknown"] = "@X@"; }, deep_array(100000));
  ngs_model *m = nullptr;
  EXPECT_STATUS(load_buffer(bytes, &m), NGS_STATUS_BAD_MODEL, "ngs.config is nested deeper");
}

TEST(HardeningJson, DepthLimitIgnoresBracketsInStrings) {
  // 1000 '[' inside a string are no nesting: the model still loads.
  const auto bytes = with_config([](json &c) { c["waveform"]["note"] = std::string(1000, '['); }, "");
  ngs_model *m = nullptr;
  ASSERT_EQ(load_buffer(bytes, &m), NGS_STATUS_OK) << ngs_last_error();
  ngs_model_free(m);
  // 64 levels are accepted, 65 are not (the config object itself is level 1).
  const auto ok = with_config([](json &c) { c["x"] = "@X@"; }, deep_array(63));
  ASSERT_EQ(load_buffer(ok, &m), NGS_STATUS_OK) << ngs_last_error();
  ngs_model_free(m);
  const auto over = with_config([](json &c) { c["x"] = "@X@"; }, deep_array(64));
  EXPECT_STATUS(load_buffer(over, &m), NGS_STATUS_BAD_MODEL, "nested deeper than 64");
}

TEST(HardeningJson, DeepSafetensorsHeaderIsRefused) {
  Split s = split(slurp(fixture_model()));
  std::string h = s.header.dump();
  h.insert(1, "\"deep\":" + deep_array(100000) + ",");
  ngs_model *m = nullptr;
  EXPECT_STATUS(load_buffer(join(h, s.data), &m), NGS_STATUS_BAD_MODEL, "header is nested deeper");
}

TEST(HardeningJson, MessagesQuoteNoWholeValues) {
  // A long string where a type is checked, a long rnn_type, a long tensor name: the
  // message names the key and cuts the value.
  const std::string big(5000, 'A');
  ngs_model *m = nullptr;
  auto b1 = with_config([&](json &c) { c["waveform"]["sr"] = big; }, "");
  EXPECT_STATUS(load_buffer(b1, &m), NGS_STATUS_BAD_MODEL, "config waveform.sr is not an integer");
  EXPECT_LT(std::strlen(ngs_last_error()), 200u) << ngs_last_error();
  auto b2 = with_config([&](json &c) { c["latent"]["rnn_type"] = big; }, "");
  EXPECT_STATUS(load_buffer(b2, &m), NGS_STATUS_BAD_MODEL, "latent.rnn_type");
  EXPECT_LT(std::strlen(ngs_last_error()), 200u) << ngs_last_error();
  auto b3 = with_config([&](json &c) { c["waveform"]["sr"] = json::array({1, 2, 3}); }, "");
  EXPECT_STATUS(load_buffer(b3, &m), NGS_STATUS_BAD_MODEL, "an array of 3 elements");
  Split s = split(slurp(fixture_model()));
  s.header["w." + big] = s.header["w.pp.bias"];
  EXPECT_STATUS(load_buffer(join(s.header.dump(), s.data), &m), NGS_STATUS_BAD_MODEL, "...");
  EXPECT_LT(std::strlen(ngs_last_error()), 300u) << ngs_last_error();
}

// ---- item 5: the model owns its bytes; FIFOs ------------------------------------------

class FileChanged : public testing::Test {
 protected:
  // Loads a copy of the fp32 fixture and renders one reference one-shot.
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    path_ = dir_.file("model.safetensors");
    spit(path_, slurp(fixture_model()));
    ASSERT_EQ(load_file(path_, &model_), NGS_STATUS_OK) << ngs_last_error();
    ngs_model_info info;
    ASSERT_EQ(ngs_model_get_info(model_, &info), NGS_STATUS_OK);
    ASSERT_EQ(info.weight_bits, 32);  // the case where weights were used from the mapping
    ASSERT_EQ(ngs_context_init(model_, ngs_context_default_params(), &ctx_), NGS_STATUS_OK);
    len_ = info.sample_length;
    ref_ = render();
    ASSERT_EQ(ngs::test::count_nonfinite(ref_), 0u);
  }
  void TearDown() override {
    ngs_context_free(ctx_);
    ngs_model_free(model_);
  }
  std::vector<float> render() {
    std::vector<float> out = ngs::test::poisoned(len_);
    ngs_sample_params sp = ngs_sample_default_params();
    sp.class_index = 1;
    sp.seed = 1234;
    EXPECT_EQ(ngs_sample(ctx_, sp, out.data(), out.size()), NGS_STATUS_OK) << ngs_last_error();
    return out;
  }
  TempDir dir_;
  std::string path_;
  ngs_model *model_ = nullptr;
  ngs_context *ctx_ = nullptr;
  size_t len_ = 0;
  std::vector<float> ref_;
};

TEST_F(FileChanged, OverwrittenInPlace) {
  // Rewritten in place (same inode, same size) with bytes that are NaN as floats.
  const int fd = open(path_.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  std::vector<uint8_t> junk(static_cast<size_t>(st.st_size), 0xff);
  ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(render(), ref_);
}

TEST_F(FileChanged, Truncated) {
  ASSERT_EQ(truncate(path_.c_str(), 0), 0);  // a mapping would give SIGBUS here
  EXPECT_EQ(render(), ref_);
  ASSERT_EQ(unlink(path_.c_str()), 0);
  EXPECT_EQ(render(), ref_);
}

TEST(HardeningFiles, FifoIsRefusedWithoutBlocking) {
  TempDir d;
  ASSERT_TRUE(d.ok());
  const std::string fifo = d.file("model.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // Hang guard only: if the open blocks, a writer is opened to release it and the test
  // fails (nothing is timed).
  auto call = std::async(std::launch::async, [&] {
    ngs_model *m = nullptr;
    const ngs_status s = load_file(fifo, &m);
    return std::make_pair(s, std::string(ngs_last_error()));
  });
  if (call.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    const int w = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (w >= 0) close(w);
    call.wait();
    FAIL() << "ngs_model_init_from_file blocked on a FIFO";
  }
  const auto r = call.get();
  EXPECT_EQ(r.first, NGS_STATUS_IO_ERROR) << r.second;
  EXPECT_NE(r.second.find("not a regular file"), std::string::npos) << r.second;
}

TEST(HardeningFiles, FolderAndDeviceAreRefused) {
  ngs_model *m = nullptr;
  EXPECT_STATUS(load_file("/dev/null", &m), NGS_STATUS_IO_ERROR, "not a regular file");
  EXPECT_STATUS(load_file(ngs::test::fixtures_dir(), &m), NGS_STATUS_IO_ERROR, "not a regular file");
}

// ---- item 6: counts, overflowing results, overlapping buffers -------------------------

class Hostile : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(load_file(fixture_model(), &model_), NGS_STATUS_OK) << ngs_last_error();
    ASSERT_EQ(ngs_model_get_info(model_, &info_), NGS_STATUS_OK);
    ASSERT_EQ(ngs_context_init(model_, ngs_context_default_params(), &ctx_), NGS_STATUS_OK);
    n_ = info_.n_grains;
    zn_ = static_cast<size_t>(n_) * info_.z_dim;
  }
  void TearDown() override {
    ngs_context_free(ctx_);
    ngs_model_free(model_);
  }
  // Checks that the first n floats are 0 (zeroed after an overflowing result) and that
  // the sentinel after them is untouched.
  static void expect_zeroed(const std::vector<float> &v, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += v[i] != 0.0f;
    EXPECT_EQ(bad, 0u) << "output not zeroed after the error";
    for (size_t i = n; i < v.size(); ++i) ASSERT_EQ(v[i], 7.0f) << "written past the output at " << i;
  }
  ngs_model *model_ = nullptr;
  ngs_context *ctx_ = nullptr;
  ngs_model_info info_{};
  int n_ = 0;
  size_t zn_ = 0;
};

TEST_F(Hostile, EncodeNegativeMaxGrains) {
  const size_t ns = info_.sample_length;
  const auto audio = ngs::test::random_uniform(ns, 5, -0.5f, 0.5f);
  for (int mg : {-1, INT_MIN}) {
    std::vector<float> mu(zn_ + 64, 7.0f);
    int got = -5;
    EXPECT_STATUS(ngs_encode(ctx_, audio.data(), ns, ngs_encode_default_params(), mu.data(), nullptr,
                             nullptr, mg, &got),
                  NGS_STATUS_INVALID_ARGUMENT, "max_grains");
    EXPECT_EQ(got, -5);
    for (float v : mu) ASSERT_EQ(v, 7.0f);
  }
}

TEST_F(Hostile, AudioLengthDoesNotOverflow) {
  const size_t hop = static_cast<size_t>(info_.hop_size);
  EXPECT_EQ(ngs_model_audio_length(model_, INT_MAX), (static_cast<size_t>(INT_MAX) + 3) * hop);
  EXPECT_EQ(ngs_model_audio_length(model_, INT_MAX - 2), (static_cast<size_t>(INT_MAX) + 1) * hop);
  EXPECT_EQ(ngs_model_audio_length(model_, INT_MIN), 0u);
  EXPECT_EQ(ngs_model_audio_length(model_, 1), 4 * hop);
}

TEST_F(Hostile, PathCountsNearIntMax) {
  std::vector<float> z(zn_ + 16, 7.0f);
  ngs_path_params p = ngs_path_default_params();
  p.kind = NGS_PATH_KIND_BACK_AND_FORTH;
  for (int legs : {INT_MAX, INT_MAX - 1, (1 << 24) + 1}) {
    p.legs = legs;
    EXPECT_STATUS(ngs_path_generate(model_, p, n_, z.data()), NGS_STATUS_INVALID_ARGUMENT, "legs");
  }
  p.legs = 1 << 24;
  ASSERT_EQ(ngs_path_generate(model_, p, n_, z.data()), NGS_STATUS_OK) << ngs_last_error();
  EXPECT_EQ(ngs::test::count_nonfinite(z.data(), zn_), 0u);
  p = ngs_path_default_params();
  p.kind = NGS_PATH_KIND_RANDOM;
  for (int points : {INT_MAX, (1 << 24) + 1}) {
    p.points = points;
    EXPECT_STATUS(ngs_path_generate(model_, p, n_, z.data()), NGS_STATUS_INVALID_ARGUMENT, "points");
  }
  p.points = 1 << 24;
  ASSERT_EQ(ngs_path_generate(model_, p, n_, z.data()), NGS_STATUS_OK) << ngs_last_error();
  EXPECT_EQ(ngs::test::count_nonfinite(z.data(), zn_), 0u);
}

TEST_F(Hostile, OverflowingResultsAreErrors) {
  const size_t len = info_.sample_length;
  const char *msg = "non-finite";
  {  // temperature FLT_MAX: finite, but e = FLT_MAX * normal overflows
    std::vector<float> a(len + 32, 7.0f);
    ngs_sample_params sp = ngs_sample_default_params();
    sp.class_index = 0;
    sp.temperature = FLT_MAX;
    EXPECT_STATUS(ngs_sample(ctx_, sp, a.data(), len), NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(a, len);
    std::vector<float> b(2 * len + 32, 7.0f);
    EXPECT_STATUS(ngs_sample_interpolation(ctx_, sp, 2, b.data(), 2 * len),
                  NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(b, 2 * len);
    std::vector<float> e(static_cast<size_t>(info_.e_dim) + 8, 7.0f);
    EXPECT_STATUS(ngs_embedding_sample(model_, FLT_MAX, 3, 0, e.data()), NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(e, static_cast<size_t>(info_.e_dim));
    ngs_loop_event ev{0, 0.0f, 1.0f};
    ngs_loop_params lp = ngs_loop_default_params();
    lp.temperature = FLT_MAX;
    std::vector<float> l(len + 32, 7.0f);
    EXPECT_STATUS(ngs_render_loop(ctx_, &ev, 1, lp, l.data(), len), NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(l, len);
    std::vector<float> z(zn_ + 8, 7.0f);
    ngs_path_params pp = ngs_path_default_params();
    pp.temperature = FLT_MAX;
    pp.kind = NGS_PATH_KIND_CIRCLE;
    EXPECT_STATUS(ngs_path_generate(model_, pp, n_, z.data()), NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(z, zn_);
  }
  {  // latents and embeddings of 3e38
    std::vector<float> z(zn_, 3e38f);
    std::vector<float> a(len + 32, 7.0f);
    EXPECT_STATUS(ngs_decode(ctx_, z.data(), n_, ngs_decode_default_params(), a.data(), len),
                  NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(a, len);
    std::vector<float> e(static_cast<size_t>(info_.e_dim), 3e38f);
    std::vector<float> zo(zn_ + 8, 7.0f);
    EXPECT_STATUS(ngs_latent_decode(ctx_, e.data(), 0, n_, zo.data()), NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(zo, zn_);
    std::vector<float> em(static_cast<size_t>(info_.e_dim) + 8, 7.0f);
    EXPECT_STATUS(ngs_latent_encode(ctx_, z.data(), n_, em.data(), nullptr), NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(em, static_cast<size_t>(info_.e_dim));
  }
  {  // audio of +-3e38: the high-pass overflows; the encoder overflows
    std::vector<float> a(len + 32, 7.0f);
    for (size_t i = 0; i < len; ++i) a[i] = (i % 2 ? 3e38f : -3e38f);
    std::vector<float> mu(zn_ + 8, 7.0f);
    EXPECT_STATUS(ngs_encode(ctx_, a.data(), len, ngs_encode_default_params(), mu.data(), nullptr,
                             nullptr, n_, nullptr),
                  NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(mu, zn_);
    std::vector<float> r(len + 32, 7.0f);
    EXPECT_STATUS(ngs_resynthesize(ctx_, a.data(), len, ngs_resynth_default_params(), r.data()),
                  NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(r, len);
    // a step from FLT_MAX to -FLT_MAX: the high-pass output jumps to about -2 FLT_MAX
    for (size_t i = 0; i < len; ++i) a[i] = i < len / 2 ? FLT_MAX : -FLT_MAX;
    EXPECT_STATUS(ngs_preprocess(model_, a.data(), len, 0), NGS_STATUS_INVALID_ARGUMENT, msg);
    expect_zeroed(a, len);
    // an alternating +-3e38 signal stays in range: finite result, status OK
    for (size_t i = 0; i < len; ++i) a[i] = (i % 2 ? 3e38f : -3e38f);
    ASSERT_EQ(ngs_preprocess(model_, a.data(), len, 0), NGS_STATUS_OK) << ngs_last_error();
    EXPECT_EQ(ngs::test::count_nonfinite(a.data(), len), 0u);
  }
}

TEST_F(Hostile, OverlappingBuffersAreRefused) {
  const size_t len = info_.sample_length;
  std::vector<float> a = ngs::test::random_uniform(2 * len, 9, -0.5f, 0.5f);
  const std::vector<float> copy = a;
  const ngs_resynth_params rp = ngs_resynth_default_params();
  // in place, and shifted by one sample either way
  EXPECT_STATUS(ngs_resynthesize(ctx_, a.data(), len, rp, a.data()), NGS_STATUS_INVALID_ARGUMENT, "overlap");
  EXPECT_STATUS(ngs_resynthesize(ctx_, a.data() + 1, len, rp, a.data()), NGS_STATUS_INVALID_ARGUMENT, "overlap");
  EXPECT_STATUS(ngs_resynthesize(ctx_, a.data(), len, rp, a.data() + len - 1), NGS_STATUS_INVALID_ARGUMENT, "overlap");
  EXPECT_EQ(a, copy);
  // adjacent is fine
  ASSERT_EQ(ngs_resynthesize(ctx_, a.data(), len, rp, a.data() + len), NGS_STATUS_OK) << ngs_last_error();
  // decode: z inside the audio buffer
  std::vector<float> buf(len + zn_);
  const auto z = ngs::test::random_normal(zn_, 3);
  std::copy(z.begin(), z.end(), buf.begin());
  EXPECT_STATUS(ngs_decode(ctx_, buf.data(), n_, ngs_decode_default_params(), buf.data(), len),
                NGS_STATUS_INVALID_ARGUMENT, "overlap");
  // encode: mu and z sharing memory
  std::vector<float> lat(2 * zn_);
  EXPECT_STATUS(ngs_encode(ctx_, copy.data(), len, ngs_encode_default_params(), lat.data(), nullptr,
                           lat.data() + zn_ / 2, n_, nullptr),
                NGS_STATUS_INVALID_ARGUMENT, "overlap");
}

}  // namespace
