#include "io.h"

#include <sndfile.h>
#include <soxr.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <nlohmann/json.hpp>
#include <sstream>

#include "args.h"
#include "common.h"

namespace ngs_cli {

// ---- temporary outputs -------------------------------------------------------------

namespace {

// Pending temporary files, removed by the signal handler. Fixed-size table of C strings
// so the handler only calls async-signal-safe functions.
constexpr int kMaxPending = 1024;  // sample --count writes up to 1000 files at once
char g_pending[kMaxPending][4096];
std::atomic<bool> g_used[kMaxPending];
std::mutex g_pending_mutex;

int pending_add(const std::string &path) {
  std::lock_guard<std::mutex> lock(g_pending_mutex);
  for (int i = 0; i < kMaxPending; ++i) {
    if (!g_used[i].load()) {
      std::snprintf(g_pending[i], sizeof g_pending[i], "%s", path.c_str());
      g_used[i].store(true);
      return i;
    }
  }
  return -1;
}

void pending_remove(int slot) {
  if (slot >= 0) g_used[slot].store(false);
}

extern "C" void on_signal(int sig) {
  for (int i = 0; i < kMaxPending; ++i)
    if (g_used[i].load()) unlink(g_pending[i]);
  signal(sig, SIG_DFL);
  raise(sig);
}

std::string lower_extension(const std::string &path) {
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot + 1);
  for (char &c : ext) c = char(std::tolower((unsigned char)c));
  return ext;
}

}  // namespace

void install_signal_cleanup() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

namespace {

bool same_file(const struct stat &a, const struct stat &b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

std::string resolved(const std::string &path) {
  char *r = realpath(path.c_str(), nullptr);
  if (r == nullptr) return "";
  std::string s = r;
  std::free(r);
  return s;
}

}  // namespace

void check_not_input(const std::string &path, const std::vector<std::string> &inputs) {
  struct stat out_st {};
  const bool out_exists = stat(path.c_str(), &out_st) == 0;
  // The output's resolved name: its folder resolved, then its own name.
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string rdir = resolved(dir);
  const std::string rout = rdir.empty() ? "" : (rdir == "/" ? "/" : rdir + "/") + base;
  for (const std::string &in : inputs) {
    if (in.empty()) continue;
    struct stat in_st {};
    const bool in_exists = stat(in.c_str(), &in_st) == 0;
    const std::string rin = resolved(in);
    if ((out_exists && in_exists && same_file(out_st, in_st)) || (!rout.empty() && rout == rin))
      throw Failure("output '" + path + "' is the input '" + in +
                    "': writing it would destroy the input; choose another output name");
  }
}

OutputFile::OutputFile(const std::string &path, const std::vector<std::string> &inputs)
    : path_(path) {
  if (path.empty()) throw Failure("empty output path");
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..")
    throw Failure("output path '" + path + "' names a folder, not a file");
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Failure("output folder '" + dir + "' does not exist");
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw Failure("output path '" + path + "' is a folder");
  check_not_input(path, inputs);
  // A new file of a fresh name, never an existing file or a link planted under that name.
  std::random_device rd;
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "%ld.%08x", long(getpid()), unsigned(rd()));
    tmp_ = (dir == "/" ? "" : dir) + "/." + base + ".tmp" + suffix;
    slot_ = pending_add(tmp_);
    fd_ = open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd_ < 0) {
      const int err = errno;
      pending_remove(slot_);
      slot_ = -1;
      if (err != EEXIST)
        throw Failure("cannot write '" + path + "': cannot create a temporary file in '" + dir +
                      "': " + std::strerror(err));
    }
  }
  if (fd_ < 0) throw Failure("cannot write '" + path + "': no free temporary name in '" + dir + "'");
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) close(fd_);
  if (!done_) unlink(tmp_.c_str());
  pending_remove(slot_);
}

void OutputFile::finish() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  if (fsync(fd) != 0) {
    const int err = errno;
    close(fd);
    throw Failure("cannot write '" + path_ + "': " + std::strerror(err));
  }
  if (close(fd) != 0) throw Failure("cannot write '" + path_ + "': " + std::strerror(errno));
}

void OutputFile::commit() {
  if (done_) return;
  finish();
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Failure("cannot write '" + path_ + "': " + std::strerror(errno));
  done_ = true;
  // Make the rename itself durable (best effort: some file systems refuse to fsync a folder).
  const size_t slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash == 0 ? 1 : slash);
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

std::string indexed_path(const std::string &path, int index) {
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) ||
      dot == (slash == std::string::npos ? 0 : slash + 1))
    return path + "_" + std::to_string(index);
  return path.substr(0, dot) + "_" + std::to_string(index) + path.substr(dot);
}

// ---- audio -------------------------------------------------------------------------

namespace {

uint32_t le32(const unsigned char *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// libsndfile quietly accepts a RIFF/WAVE file whose data chunk is cut short (it shortens
// the frame count); a cut file is an error for us, so walk the chunks ourselves.
void check_wav_not_truncated(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char hdr[12];
  if (!f.read(reinterpret_cast<char *>(hdr), 12)) return;
  if (std::memcmp(hdr, "RIFF", 4) != 0 || std::memcmp(hdr + 8, "WAVE", 4) != 0) return;
  f.seekg(0, std::ios::end);
  const uint64_t size = uint64_t(f.tellg());
  uint64_t pos = 12;
  while (pos + 8 <= size) {
    unsigned char ch[8];
    f.seekg(std::streamoff(pos));
    if (!f.read(reinterpret_cast<char *>(ch), 8)) break;
    const uint32_t len = le32(ch + 4);
    if (std::memcmp(ch, "data", 4) == 0) {
      if (len != 0xffffffffu && pos + 8 + len > size)
        throw Failure("truncated WAV file '" + path + "': its data chunk declares " +
                      std::to_string(len) + " bytes, only " +
                      std::to_string(size - pos - 8) + " are present");
      return;
    }
    pos += 8 + uint64_t(len) + (len & 1u);
  }
  if (pos < size || pos > size)
    throw Failure("truncated WAV file '" + path + "': no complete data chunk");
}

}  // namespace

Audio read_audio(const std::string &path) {
  if (access(path.c_str(), R_OK) != 0)
    throw Failure("cannot read audio file '" + path + "': " + std::strerror(errno));
  check_wav_not_truncated(path);
  SF_INFO info{};
  SNDFILE *sf = sf_open(path.c_str(), SFM_READ, &info);
  if (!sf) throw Failure("cannot read audio file '" + path + "': " + sf_strerror(nullptr));
  Audio a;
  a.sample_rate = info.samplerate;
  a.channels = info.channels;
  if (info.frames <= 0 || info.channels <= 0 || info.samplerate <= 0) {
    sf_close(sf);
    throw Failure("audio file '" + path + "' holds no samples");
  }
  // The header's frame count is a claim, not a size: check it against the limits, then
  // read in blocks so that memory follows the samples actually decoded.
  if (info.channels > kMaxInputChannels) {
    sf_close(sf);
    throw Failure("audio file '" + path + "' has " + std::to_string(info.channels) +
                  " channels, more than the " + std::to_string(kMaxInputChannels) + " ngs reads");
  }
  if (double(info.frames) > kMaxInputSeconds * double(info.samplerate)) {
    sf_close(sf);
    throw Failure("audio file '" + path + "' declares " + std::to_string(info.frames) +
                  " frames at " + std::to_string(info.samplerate) + " Hz, longer than the " +
                  std::to_string(int(kMaxInputSeconds)) + " s ngs reads");
  }
  const int c = info.channels;
  const sf_count_t block = 65536;
  std::vector<float> inter(size_t(block) * size_t(c));
  sf_count_t got = 0;
  while (got < info.frames) {
    const sf_count_t r = sf_readf_float(sf, inter.data(), std::min(block, info.frames - got));
    if (r <= 0) break;
    for (sf_count_t i = 0; i < r; ++i) {
      float s = 0;
      for (int k = 0; k < c; ++k) s += inter[size_t(i) * size_t(c) + size_t(k)];
      a.samples.push_back(s / float(c));
    }
    got += r;
  }
  int err = sf_error(sf);
  sf_close(sf);
  if (err != SF_ERR_NO_ERROR || got != info.frames)
    throw Failure("truncated or unreadable audio file '" + path + "': read " +
                  std::to_string(got) + " of " + std::to_string(info.frames) + " frames");
  for (float v : a.samples)
    if (!std::isfinite(v)) throw Failure("audio file '" + path + "' holds NaN or Inf samples");
  return a;
}

std::vector<float> resample(const std::vector<float> &in, int from_rate, int to_rate) {
  if (from_rate == to_rate) return in;
  const double ratio = double(to_rate) / double(from_rate);
  const size_t olen = size_t(double(in.size()) * ratio + 0.5);
  std::vector<float> out(olen + 16);
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ, 0);
  size_t odone = 0;
  soxr_error_t e = soxr_oneshot(double(from_rate), double(to_rate), 1, in.data(), in.size(),
                                nullptr, out.data(), olen, &odone, &io, &q, nullptr);
  if (e) throw Failure(std::string("resampling failed: ") + soxr_strerror(e));
  out.resize(odone);
  out.resize(olen, 0.0f);  // soxr may deliver a few samples short of the exact length
  return out;
}

void check_audio_extension(const std::string &path) {
  std::string ext = lower_extension(path);
  if (ext != "wav" && ext != "flac")
    throw Failure("output '" + path + "': unsupported audio extension (use .wav or .flac)");
}

namespace {
double g_output_peak = 0.0;  // linear; 0 = write samples as computed
}  // namespace

void set_output_peak_dbfs(double dbfs) { g_output_peak = std::pow(10.0, dbfs / 20.0); }

void write_audio(const OutputFile &out, const float *samples, size_t n, int sample_rate,
                 int bits) {
  check_audio_extension(out.path());
  const bool flac = lower_extension(out.path()) == "flac";
  SF_INFO info{};
  info.samplerate = sample_rate;
  info.channels = 1;
  int sub = bits == 16 ? SF_FORMAT_PCM_16 : bits == 32 ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_24;
  if (bits != 16 && bits != 24 && bits != 32)
    throw Failure("--bits must be 16, 24 or 32 (float)");
  if (flac && bits == 32) throw Failure("FLAC holds 16 or 24 bit samples, not 32-bit float");
  info.format = (flac ? SF_FORMAT_FLAC : SF_FORMAT_WAV) | sub;
  if (!sf_format_check(&info)) throw Failure("libsndfile cannot write this format");
  SNDFILE *sf = sf_open_fd(out.fd(), SFM_WRITE, &info, SF_FALSE);
  if (!sf)
    throw Failure("cannot write '" + out.path() + "': " + sf_strerror(nullptr));
  // Clip rather than wrap around on the (rare) samples outside [-1, 1].
  sf_command(sf, SFC_SET_CLIPPING, nullptr, SF_TRUE);
  // --peak: one gain for the whole file so that its peak sits at the asked level.
  std::vector<float> scaled;
  if (g_output_peak > 0.0) {
    float peak = 0.0f;
    for (size_t i = 0; i < n; ++i) peak = std::max(peak, std::fabs(samples[i]));
    if (peak > 0.0f) {
      const float gain = float(g_output_peak / peak);
      scaled.assign(samples, samples + n);
      for (float &v : scaled) v *= gain;
      samples = scaled.data();
    }
  }
  sf_count_t put = sf_writef_float(sf, samples, sf_count_t(n));
  int err = sf_close(sf);
  if (put != sf_count_t(n) || err != 0) throw Failure("cannot write '" + out.path() + "'");
}

// ---- .npy --------------------------------------------------------------------------

namespace {

// Value of 'key' in a numpy header dict, as raw text up to the next top-level comma.
std::string header_field(const std::string &h, const std::string &key) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t colon = h.find(':', k);
  if (colon == std::string::npos) return "";
  size_t i = colon + 1;
  while (i < h.size() && std::isspace((unsigned char)h[i])) ++i;
  size_t j = i;
  if (j < h.size() && h[j] == '(') {
    j = h.find(')', j);
    return j == std::string::npos ? "" : h.substr(i, j - i + 1);
  }
  while (j < h.size() && h[j] != ',' && h[j] != '}') ++j;
  std::string v = h.substr(i, j - i);
  while (!v.empty() && std::isspace((unsigned char)v.back())) v.pop_back();
  return v;
}

}  // namespace

NpyArray read_npy(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Failure("cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream bytes;
  bytes << f.rdbuf();
  return parse_npy(bytes.str(), path);
}

NpyArray parse_npy(const std::string &bytes, const std::string &path) {
  const std::string where = "'" + path + "' is not a valid .npy file: ";
  const auto *b = reinterpret_cast<const unsigned char *>(bytes.data());
  const size_t size = bytes.size();
  if (size < 8 || std::memcmp(b, "\x93NUMPY", 6) != 0) throw Failure(where + "bad magic");
  const int major = b[6];
  size_t pos = 8;
  uint32_t hlen = 0;
  if (major == 1) {
    if (size < pos + 2) throw Failure(where + "truncated header");
    hlen = uint32_t(b[pos]) | uint32_t(b[pos + 1]) << 8;
    pos += 2;
  } else if (major == 2 || major == 3) {
    if (size < pos + 4) throw Failure(where + "truncated header");
    hlen = le32(b + pos);
    pos += 4;
  } else {
    throw Failure(where + "unsupported format version " + std::to_string(major));
  }
  if (hlen > (1u << 20)) throw Failure(where + "header too long");
  if (size - pos < hlen) throw Failure(where + "truncated header");
  const std::string h = bytes.substr(pos, hlen);
  pos += hlen;

  std::string descr = header_field(h, "descr");
  std::string fortran = header_field(h, "fortran_order");
  std::string shape = header_field(h, "shape");
  if (descr.empty() || fortran.empty() || shape.empty())
    throw Failure(where + "header lacks descr, fortran_order or shape");
  size_t itemsize;
  if (descr == "'<f4'" || descr == "'=f4'" || descr == "'f4'")
    itemsize = 4;
  else if (descr == "'<f8'" || descr == "'=f8'" || descr == "'f8'")
    itemsize = 8;
  else
    throw Failure("'" + path + "': dtype " + descr.substr(0, 40) +
                  " is not supported (expected little-endian float32 '<f4' or float64 '<f8')");
  if (fortran != "False")
    throw Failure("'" + path + "': Fortran-order arrays are not supported (save a C-order array, e.g. np.ascontiguousarray)");

  NpyArray a;
  {
    std::string s = shape.substr(1, shape.size() - 2);
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && (std::isspace((unsigned char)s[i]) || s[i] == ',')) ++i;
      if (i >= s.size()) break;
      size_t j = i;
      size_t d = 0;
      while (j < s.size() && std::isdigit((unsigned char)s[j])) {
        if (d > (size_t(1) << 40)) throw Failure(where + "shape " + shape.substr(0, 60) + " is too large");
        d = d * 10 + size_t(s[j] - '0');
        ++j;
      }
      if (j == i) throw Failure(where + "bad shape " + shape.substr(0, 60));
      if (a.shape.size() == 32) throw Failure(where + "more than 32 dimensions");
      a.shape.push_back(d);
      i = j;
    }
  }
  size_t count = 1;
  for (size_t d : a.shape) {
    if (d != 0 && count > (size_t(1) << 40) / d) throw Failure(where + "shape too large");
    count *= d;
  }
  // The data must be there before anything of its size is allocated.
  if (size - pos < count * itemsize)
    throw Failure("'" + path + "' is truncated: shape " + shape.substr(0, 60) + " needs " +
                  std::to_string(count * itemsize) + " data bytes, the file holds " +
                  std::to_string(size - pos));
  a.data.resize(count);
  if (count == 0) {
    // (memcpy of nothing from/to a null pointer is still undefined)
  } else if (itemsize == 4) {
    std::memcpy(a.data.data(), b + pos, count * 4);
  } else {
    for (size_t i = 0; i < count; ++i) {
      double d;
      std::memcpy(&d, b + pos + i * 8, 8);
      a.data[i] = float(d);
    }
  }
  return a;
}

namespace {

void write_all(const OutputFile &out, const void *p, size_t n) {
  const char *c = static_cast<const char *>(p);
  while (n > 0) {
    const ssize_t w = write(out.fd(), c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Failure("cannot write '" + out.path() + "': " + std::strerror(errno));
    c += w;
    n -= size_t(w);
  }
}

}  // namespace

void write_npy(const OutputFile &out, const float *data, const std::vector<size_t> &shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  size_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    dict += (shape.size() == 1 || i + 1 < shape.size()) ? "," : "";
    if (i + 1 < shape.size()) dict += " ";
    count *= shape[i];
  }
  dict += "), }";
  // magic (6) + version (2) + length (2) + dict + padding + '\n', a multiple of 64.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  const uint16_t hlen = uint16_t(dict.size());
  const unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                  (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
  write_all(out, head, 10);
  write_all(out, dict.data(), dict.size());
  write_all(out, data, count * sizeof(float));
}

// ---- drum patterns -----------------------------------------------------------------

Pattern read_pattern(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Failure("cannot read pattern '" + path + "'");
  // A pattern is a few hundred bytes: a bounded read.
  constexpr size_t kMaxPatternBytes = 1 << 20;
  std::string text(kMaxPatternBytes + 1, '\0');
  f.read(&text[0], std::streamsize(text.size()));
  text.resize(size_t(f.gcount()));
  if (f.bad()) throw Failure("cannot read pattern '" + path + "'");
  if (text.size() > kMaxPatternBytes) throw Failure("pattern '" + path + "': larger than 1 MiB");
  return parse_pattern(text, path);
}

Pattern parse_pattern(const std::string &text, const std::string &path) {
  const std::string where = "pattern '" + path + "': ";
  bool too_deep = false;
  const nlohmann::json p = parse_json(text, &too_deep);  // depth checked before parsing
  if (too_deep)
    throw Failure(where + "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  if (p.is_discarded()) throw Failure(where + "not valid JSON");
  if (!p.is_object() || p.empty())
    throw Failure(where + "expected a JSON object: class name -> [[onset, amplitude], ...]");
  Pattern pattern;
  for (auto it = p.begin(); it != p.end(); ++it) {
    const std::string name = "'" + truncated(it.key()) + "'";
    pattern.classes.push_back(it.key());
    if (!it.value().is_array())
      throw Failure(where + name + " must map to a list of [onset, amplitude] pairs");
    for (auto &pair : it.value()) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() || !pair[1].is_number())
        throw Failure(where + name + ": each event must be [onset, amplitude], got " + json_brief(pair));
      const double on = pair[0].get<double>(), amp = pair[1].get<double>();
      // An onset just below 1 must not round to 1 as the library's float.
      if (!(on >= 0 && on < 1 && float(on) < 1))
        throw Failure(where + name + ": onset " + json_brief(pair[0]) + " not in [0, 1)");
      if (!(amp >= 0 && amp <= 1))
        throw Failure(where + name + ": amplitude " + json_brief(pair[1]) + " not in [0, 1]");
      if (pattern.events.size() >= size_t(1) << 20) throw Failure(where + "more than 1048576 events");
      pattern.events.push_back({it.key(), float(on), float(amp)});
    }
  }
  return pattern;
}

}  // namespace ngs_cli
