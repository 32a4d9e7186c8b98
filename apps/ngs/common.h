// Shared helpers of the ngs command line: the error type every command throws (main
// turns it into one "ngs: error: ..." line), RAII owners of the C API handles, timing,
// the real-time factor report, and a progress bar that only draws on a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ngs/ngs.h"

namespace ngs_cli {

// What every failing command throws; main prints "ngs: error: <what>" and exits 1.
class Failure : public std::runtime_error {
 public:
  explicit Failure(const std::string &message) : std::runtime_error(message) {}
};

// Throws Failure with the C API's last error when status is not OK.
void check(ngs_status status, const char *what);

// Global options shared by every subcommand.
struct GlobalOptions {
  std::string backend = "auto";
  int threads = 1;
  std::string precision = "fp32";  // fp32 | fast (ngs_context_params.precision)
  bool quiet = false;
};

// A loaded model and one context, freed in the right order.
class Engine {
 public:
  // max_grains: longest series one call handles (0 = the library's default).
  Engine(const std::string &path, const GlobalOptions &opt, int max_grains = 0);
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  ngs_model *model = nullptr;
  ngs_context *ctx = nullptr;
  ngs_model_info info{};
  double load_ms = 0;
  int max_grains = 0;

  // Makes sure the context can handle series of n grains (re-creates it if needed).
  void reserve_grains(int n);
  // Makes sure the context can render loops of `samples` samples (re-creates it if needed).
  void reserve_loop(size_t samples);
  // Class index from a name (case-insensitive) or a decimal index; throws on failure.
  int parse_class(const std::string &text) const;
  // All class names, comma separated.
  std::string class_list() const;
  double seconds(size_t samples) const { return double(samples) / info.sample_rate; }

 private:
  ngs_context_params cparams_{};
  void recreate();
};

ngs_backend parse_backend(const std::string &name);

// Wall-clock stopwatch in milliseconds.
class Stopwatch {
 public:
  Stopwatch() : t0_(std::chrono::steady_clock::now()) {}
  double ms() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_)
        .count();
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};

// Prints "ngs: <cmd>: <audio_s> s of audio in <ms> ms, real-time factor <x>x" to stderr.
void report_rtf(const char *command, double audio_seconds, double compute_ms);

// A progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  Progress(const std::string &label, int total);
  ~Progress();
  void update(int done);

 private:
  std::string label_;
  int total_;
  bool enabled_;
  int last_drawn_ = -1;
};

}  // namespace ngs_cli
