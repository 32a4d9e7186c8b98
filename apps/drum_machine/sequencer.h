// The drum machine's sequencer and mixer: 8 tracks x 16 steps, one sample buffer per
// track, hits mixed at sample-accurate step positions. One object is driven by one
// thread: the JACK process callback (live), or the worker (offline renders: --offline and
// /save). Nothing here allocates, locks or waits after construction, so it runs on the
// audio thread; buffers are owned elsewhere and only borrowed (README "Neural drum
// machine", threading design).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ngs_drum {

constexpr int kTracks = 8;
constexpr int kSteps = 16;     // one bar of 16th notes
constexpr int kMaxVoices = 128;  // hits sounding at once; beyond, the oldest is cut
constexpr int kMaxRetired = 512;

// One track's sound at the output rate. `refs` (voices playing it) and `retired` (no
// longer the track's buffer) are touched by the sequencer's thread only.
struct Buffer {
  std::vector<float> data;
  int refs = 0;
  bool retired = false;
};

// Velocities in [0, 1] per track and step; 0 = no hit.
struct Grid {
  float v[kTracks][kSteps] = {};
};

// A change of the sequencer's state, applied at the start of the next block.
struct SeqCommand {
  enum Type { kGrid, kBpm, kPlay, kStop } type = kGrid;
  double bpm = 120;
  Grid grid;
};

// Frames per 16th-note step.
inline double frames_per_step(int rate, double bpm) { return double(rate) * 60.0 / (bpm * 4.0); }

class Sequencer {
 public:
  explicit Sequencer(int rate);

  void apply(const SeqCommand &c);
  // Makes b (may be null) the track's buffer. Hits already sounding keep playing the old
  // buffer; once none does, it is handed out by take_retired().
  void set_buffer(int track, Buffer *b);
  // Mixes n frames into out (overwritten): starts the hits of every step whose frame
  // falls in the block and adds every sounding hit, in the order they started.
  void render(float *out, int n);

  // Buffers that no track and no hit uses any more, for their owner to free (the
  // sequencer's thread never frees). Returns the count written to out (at most max);
  // the rest stay for the next call.
  int take_retired(Buffer **out, int max);

  int64_t frame() const { return frame_; }        // frames rendered so far
  int64_t play_frame() const { return play_frame_; }  // frame of the last start, -1 if stopped
  bool playing() const { return playing_; }
  int active_voices() const { return n_voices_; }
  uint64_t voices_cut() const { return voices_cut_; }

 private:
  struct Voice {
    Buffer *buf;
    size_t pos;
    float gain;
  };
  void start_hit(int track, float gain);
  void release(Buffer *b);
  void mix(float *out, int n);

  int rate_;
  double bpm_ = 120;
  Grid grid_;
  Buffer *track_[kTracks] = {};
  bool playing_ = false;
  int64_t frame_ = 0, play_frame_ = -1;
  // The next step: global index since the start, and its time as origin + k * fps
  // (origin and k restart at every tempo change, so no error accumulates).
  int64_t step_ = 0, k_ = 0;
  double origin_ = 0, fps_ = 0;
  Voice voices_[kMaxVoices];
  int n_voices_ = 0;
  uint64_t voices_cut_ = 0;
  Buffer *retired_[kMaxRetired];
  int n_retired_ = 0;
};

}  // namespace ngs_drum
