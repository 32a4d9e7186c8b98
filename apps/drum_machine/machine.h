// The drum machine's state as the model worker sees it: the 8 tracks' sounds (written by
// the model through the public C API), the pattern, tempo, temperature and the seeds of
// every draw; offline renders of that state (--offline, /save) through the same
// Sequencer the audio thread runs. Used by one thread (the worker, or main for --offline).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"  // ngs_cli::Engine, Failure
#include "io.h"      // ngs_cli::Pattern
#include "sequencer.h"

namespace ngs_drum {

// Peak of every buffer the model writes, linear (-6 dBFS): the model's one-shots come out
// near -11 dBFS; normalised hits at full velocity leave headroom for a few at once.
constexpr float kBufferPeak = 0.5f;
// Longest offline render (--offline, /save): 30 minutes.
constexpr double kMaxRenderSeconds = 1800.0;

// One track's sound: a one-shot of a class, or a decoded linear latent path.
struct TrackSound {
  bool path = false;
  int class_index = -1;  // one-shot: its class (NGS_CLASS_NONE for an unconditional model)
  uint64_t seed = 0;     // the draw's seed (ngs_sample / ngs_path_generate + ngs_decode)
  std::vector<float> audio;  // at the output rate, peak-normalised
};

class Machine {
 public:
  // rate: the output rate (JACK's, or the offline render's); seed: key of the draws.
  Machine(ngs_cli::Engine &engine, int rate, uint64_t seed, float temperature);

  // The next draw's seed: splitmix64(seed + n) >> 1 for the n-th draw (63 bits, so that it
  // travels as an OSC int64).
  uint64_t next_seed();
  // A one-shot of class cls (ngs_sample, count 1, the machine's temperature), peak-normalised
  // to kBufferPeak at the model's rate, then resampled to the output rate.
  TrackSound sample_note(int cls, uint64_t seed);
  // A linear latent path of the one-shot's length (ngs_path_generate kind line, n_grains
  // of the model, the machine's temperature, sequence 0) decoded with noise key `seed`,
  // normalised and resampled as above.
  TrackSound sample_path(uint64_t seed);

  // Class index from a name (case-insensitive) or a decimal index; throws Failure.
  int parse_class(const std::string &text) const;
  std::string class_name(int cls) const;
  std::string label(int track) const;  // "Kick" or "path"

  // The grid of a pattern (apps/examples/pattern.json format): keys are track numbers
  // ("0".."7") or class names (the first track holding a one-shot of that class); onsets
  // must fall on the 16-step grid (multiples of 1/16). Throws Failure naming the problem.
  Grid pattern_grid(const ngs_cli::Pattern &p) const;

  // Renders `bars` bars of the current state from step 0 (tails cut at the end):
  // ceil(bars * 16 * frames_per_step) frames at the output rate; at most
  // kMaxRenderSeconds (Failure beyond).
  std::vector<float> render(int bars) const;

  ngs_cli::Engine &engine;
  const int rate;
  const uint64_t base_seed;
  uint64_t draws = 0;
  float temperature;
  double bpm = 120;
  bool playing = false;
  Grid grid;
  TrackSound tracks[kTracks];

 private:
  void finish(std::vector<float> &model_rate_audio, TrackSound &t) const;
};

// The pattern every start uses unless --pattern is given (the same as
// apps/examples/pattern.json).
extern const char *const kDefaultPattern;

}  // namespace ngs_drum
