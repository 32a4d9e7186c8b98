// The subcommands of the ngs command line. Each throws Failure on error and writes its
// outputs only when complete (see io.h).
#pragma once

#include <cstdint>
#include <string>

#include "common.h"

namespace ngs_cli {

// Limits of the options (docs/CLI.md): each is checked when the command line is parsed.
constexpr int kMaxCount = 1000;             // sample --count
constexpr double kMaxTemperature = 100.0;   // --temperature
constexpr double kMaxPathSeconds = 1800.0;  // path --duration
constexpr double kMinBpm = 20.0, kMaxBpm = 999.0;
constexpr int kMaxBars = 64;

struct InfoOptions {
  std::string model;
  bool json = false;
};
struct SampleOptions {
  std::string model, cls, out;
  int count = 1;
  float temperature = 1.0f;
  uint64_t seed = 0;
  bool single_file = false;
  int bits = 24;
};
struct PathOptions {
  std::string model, kind = "line", concat, out;
  double duration = 4.0;
  float temperature = 1.0f, turns = 1.0f, gamma = 2.0f;
  int points = 4, legs = 4;
  uint64_t seed = 0;
  int bits = 24;
};
struct ResynthOptions {
  std::string model, in, out;
  uint64_t seed = 0;
  bool normalize = false, no_preprocess = false;
  int segment_grains = 0, crossfade = 0;
  int bits = 24;
};
struct EncodeOptions {
  std::string model, in, out, what = "mu";
  uint64_t seed = 0;
  bool normalize = false, no_preprocess = false;
};
struct DecodeOptions {
  std::string model, in, out;
  uint64_t seed = 0;
  int bits = 24;
};
struct LoopOptions {
  std::string model, pattern, out;
  double bpm = 120.0;
  int bars = 1;
  float temperature = 1.0f;
  uint64_t seed = 0;
  int bits = 24;
};
struct BenchOptions {
  std::string model;
  bool json = false;
  double seconds = 2.0;
  std::string cases;  // comma-separated subset of the case names; empty = all
};

void run_info(const GlobalOptions &g, const InfoOptions &o);
void run_sample(const GlobalOptions &g, const SampleOptions &o);
void run_path(const GlobalOptions &g, const PathOptions &o);
void run_resynth(const GlobalOptions &g, const ResynthOptions &o);
void run_encode(const GlobalOptions &g, const EncodeOptions &o);
void run_decode(const GlobalOptions &g, const DecodeOptions &o);
void run_loop(const GlobalOptions &g, const LoopOptions &o);
void run_bench(const GlobalOptions &g, const BenchOptions &o);

}  // namespace ngs_cli
