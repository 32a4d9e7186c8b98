// File input/output of the ngs command line: audio through libsndfile (read any format it
// knows; write WAV or FLAC by extension), resampling through libsoxr, a small .npy
// reader/writer, and outputs that appear only when complete (temporary file in the same
// folder, renamed on success, removed on failure or on Ctrl-C).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ngs_cli {

struct Audio {
  std::vector<float> samples;  // mono
  int sample_rate = 0;
  int channels = 0;  // channels of the file before the mono mix
};

// Longest input ngs reads (its header's frame count is checked before anything is read)
// and most channels.
constexpr double kMaxInputSeconds = 1800.0;
constexpr int kMaxInputChannels = 64;

// Reads an audio file and mixes it to mono (mean of the channels). Throws Failure on
// unreadable, empty, truncated or too long files.
Audio read_audio(const std::string &path);

// Resamples mono audio with libsoxr (very high quality); returns the input if equal rates.
std::vector<float> resample(const std::vector<float> &in, int from_rate, int to_rate);

// Throws Failure if `path` is one of `inputs` (same device and inode, or the same resolved
// path): writing it would destroy an input the command still reads.
void check_not_input(const std::string &path, const std::vector<std::string> &inputs);

// The one way the command line writes a file. The data go to a new temporary file in the
// target's folder (".NAME.tmpPID.RANDOM", created with O_CREAT | O_EXCL | O_NOFOLLOW, so
// never an existing file or a planted link); commit() fsyncs it and renames it onto the
// target. Never committed (an exception, Ctrl-C), the temporary is removed and an existing
// target is untouched. `inputs` are the files the command reads (model, audio, pattern):
// an output naming one of them is refused (check_not_input).
class OutputFile {
 public:
  OutputFile(const std::string &path, const std::vector<std::string> &inputs);
  ~OutputFile();
  OutputFile(const OutputFile &) = delete;
  OutputFile &operator=(const OutputFile &) = delete;
  const std::string &temp_path() const { return tmp_; }
  const std::string &path() const { return path_; }
  int fd() const { return fd_; }  // open for writing until finish() or commit()
  // fsyncs and closes the temporary file (many outputs need not hold many descriptors).
  void finish();
  // finish(), then renames the temporary onto the target.
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  int slot_ = -1;  // entry in the signal handler's table
  bool done_ = false;
};

// Checks that the output's extension is a writable audio format (.wav, .flac).
void check_audio_extension(const std::string &path);

// Writes mono float audio to out (its temporary file) as WAV or FLAC (from out.path()'s
// extension), 24-bit PCM unless bits is 16 or 32 (32 = float, WAV only).
// Every file write_audio() writes from now on is scaled so that its peak is at `dbfs`
// (the global --peak option); by default samples are written as computed.
void set_output_peak_dbfs(double dbfs);
void write_audio(const OutputFile &out, const float *samples, size_t n, int sample_rate,
                 int bits);

// Installs SIGINT/SIGTERM handlers that remove pending temporary files.
void install_signal_cleanup();

// .npy arrays of float32, C order.
struct NpyArray {
  std::vector<size_t> shape;
  std::vector<float> data;
};

// Reads a .npy file (format 1.0-3.0) holding little-endian float32 or float64 (converted)
// in C order. Throws Failure naming the problem otherwise.
NpyArray read_npy(const std::string &path);
// The same on the bytes of a file; `path` names it in the messages.
NpyArray parse_npy(const std::string &bytes, const std::string &path);
// Writes a float32 array in .npy format 1.0 to out (its temporary file).
void write_npy(const OutputFile &out, const float *data, const std::vector<size_t> &shape);

// One event of a drum pattern: a class name (not yet looked up in a model), an onset in
// [0, 1) of the loop and an amplitude in [0, 1].
struct PatternEvent {
  std::string cls;
  float onset = 0, amplitude = 0;
};

// A drum pattern: every class name it mentions (also those with no events), in order,
// and its events.
struct Pattern {
  std::vector<std::string> classes;
  std::vector<PatternEvent> events;
};

// Reads a drum pattern, a JSON object: class name -> [[onset, amplitude], ...]. Throws
// Failure naming the problem (not JSON, wrong structure, values out of range).
Pattern read_pattern(const std::string &path);
// The same on the text of a file; `path` names it in the messages.
Pattern parse_pattern(const std::string &text, const std::string &path);

// "out.wav", 3 -> "out_3.wav".
std::string indexed_path(const std::string &path, int index);

}  // namespace ngs_cli
