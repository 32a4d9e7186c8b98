#include "sequencer.h"

#include <cmath>

namespace ngs_drum {

Sequencer::Sequencer(int rate) : rate_(rate), fps_(frames_per_step(rate, bpm_)) {}

void Sequencer::apply(const SeqCommand &c) {
  switch (c.type) {
    case SeqCommand::kGrid:
      grid_ = c.grid;
      break;
    case SeqCommand::kBpm:
      if (playing_) {  // the pending step keeps its time; the following ones use the new tempo
        origin_ = origin_ + double(k_) * fps_;
        k_ = 0;
      }
      bpm_ = c.bpm;
      fps_ = frames_per_step(rate_, bpm_);
      break;
    case SeqCommand::kPlay:
      if (!playing_) {
        playing_ = true;
        play_frame_ = frame_;
        step_ = 0;
        k_ = 0;
        origin_ = double(frame_);
      }
      break;
    case SeqCommand::kStop:
      playing_ = false;  // sounding hits ring out
      play_frame_ = -1;
      break;
  }
}

void Sequencer::release(Buffer *b) {
  if (b->refs == 0 && b->retired && n_retired_ < kMaxRetired) retired_[n_retired_++] = b;
  // (the owner bounds the buffers alive below kMaxRetired, so the list never overflows)
}

void Sequencer::set_buffer(int track, Buffer *b) {
  Buffer *old = track_[track];
  if (old == b) return;
  track_[track] = b;
  if (b) b->retired = false;
  if (old) {
    old->retired = true;
    release(old);
  }
}

int Sequencer::take_retired(Buffer **out, int max) {
  int n = n_retired_ < max ? n_retired_ : max;
  for (int i = 0; i < n; ++i) out[i] = retired_[i];
  for (int i = n; i < n_retired_; ++i) retired_[i - n] = retired_[i];
  n_retired_ -= n;
  return n;
}

void Sequencer::start_hit(int track, float gain) {
  Buffer *b = track_[track];
  if (!b || b->data.empty() || gain <= 0) return;
  if (n_voices_ == kMaxVoices) {  // cut the oldest hit
    Buffer *ob = voices_[0].buf;
    for (int i = 1; i < n_voices_; ++i) voices_[i - 1] = voices_[i];
    --n_voices_;
    ++voices_cut_;
    --ob->refs;
    release(ob);
  }
  voices_[n_voices_++] = {b, 0, gain};
  ++b->refs;
}

void Sequencer::mix(float *out, int n) {
  int kept = 0;
  for (int v = 0; v < n_voices_; ++v) {
    Voice &vc = voices_[v];
    const float *d = vc.buf->data.data();
    const size_t len = vc.buf->data.size();
    const size_t m = len - vc.pos < size_t(n) ? len - vc.pos : size_t(n);
    const float g = vc.gain;
    for (size_t i = 0; i < m; ++i) out[i] += g * d[vc.pos + i];
    vc.pos += m;
    if (vc.pos < len) {
      voices_[kept++] = vc;
    } else {
      --vc.buf->refs;
      release(vc.buf);
    }
  }
  n_voices_ = kept;
}

void Sequencer::render(float *out, int n) {
  for (int i = 0; i < n; ++i) out[i] = 0.0f;
  int done = 0;
  while (done < n) {
    int until = n;
    if (playing_) {
      // The next step sounds at the first whole frame at or after its time.
      const double at = std::ceil(origin_ + double(k_) * fps_);
      const int64_t f = int64_t(at);
      if (f < frame_ + n) {
        until = f <= frame_ + done ? done : int(f - frame_);
        if (until == done) {
          const int s = int(step_ % kSteps);
          for (int t = 0; t < kTracks; ++t)
            if (grid_.v[t][s] > 0) start_hit(t, grid_.v[t][s]);
          ++step_;
          ++k_;
          continue;
        }
      }
    }
    mix(out + done, until - done);
    done = until;
  }
  frame_ += n;
}

}  // namespace ngs_drum
