// `ngs bench --stream`: the real-time synth (ngs_synth) measured block by block
// (bench_stream.cpp, bench/RESULTS.md "Streaming").
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "common.h"

namespace ngs_cli {

struct StreamBenchOptions {
  bool enabled = false;                            // --stream
  std::string blocks = "32,64,128,256,512,1024";   // host block sizes
  std::string voices = "1,8,64,256";               // simultaneous one-shot voices (plus N)
  int rate = 48000;                                // host sample rate
  int search_block = 64;                           // block size of the voice-count search
  int max_search = 4096;                           // largest voice count tried
  bool no_search = false;
  bool spread = true;                              // also measure the synth's spread mode
  std::string clock = "wall";                      // real-time criterion: wall or cpu
  uint64_t seed = 1;
  int resampler = -1;                              // ngs_synth_params.resampler; -1: the default
};

// Adds --stream and the options above to the bench subcommand; the returned object is
// filled by the parse.
StreamBenchOptions &add_stream_bench_options(CLI::App *bench);

// Runs the streaming benchmark; seconds: measured audio per case.
void run_bench_stream(const GlobalOptions &g, const std::string &model, bool json,
                      double seconds, const StreamBenchOptions &o);

}  // namespace ngs_cli
