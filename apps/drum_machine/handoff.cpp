#include "handoff.h"

#include <chrono>
#include <stdexcept>
#include <thread>

namespace ngs_drum {

Handoff::Handoff(int rate, size_t record_frames) : seq_(rate) {
  for (auto &p : pending_) p.store(nullptr);
  if (record_frames > 0) {
    size_t cap = 1;
    while (cap < record_frames) cap <<= 1;
    record_.reset(new SampleRing(cap));
  }
}

Handoff::~Handoff() {
  for (Buffer *b : all_) delete b;
}

void Handoff::process(float *out, int n) {
  SeqCommand c;
  while (commands_.pop(c)) seq_.apply(c);
  for (int t = 0; t < kTracks; ++t) {
    if (pending_[t].load(std::memory_order_relaxed) == nullptr) continue;
    Buffer *b = pending_[t].exchange(nullptr, std::memory_order_acq_rel);
    if (b) seq_.set_buffer(t, b);
  }
  seq_.render(out, n);
  Buffer *b;
  while (!freed_.full() && seq_.take_retired(&b, 1) == 1) freed_.push(b);
  if (record_ && !record_->write(out, size_t(n))) record_lost_.fetch_add(uint64_t(n), std::memory_order_relaxed);
  frame_.store(seq_.frame(), std::memory_order_release);
  play_frame_.store(seq_.play_frame(), std::memory_order_release);
  voices_.store(seq_.active_voices(), std::memory_order_relaxed);
}

void Handoff::free_buffer(Buffer *b) {
  all_.erase(b);
  if (free_fn) {
    free_fn(b);
  } else {
    delete b;
  }
}

void Handoff::reclaim() {
  Buffer *b;
  while (freed_.pop(b)) {
    free_buffer(b);
    ++returned_;
  }
}

void Handoff::send(const SeqCommand &c) {
  for (int waited = 0; !commands_.push(c); ++waited) {
    if (waited > 2000) throw std::runtime_error("the audio thread does not run (JACK stopped?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void Handoff::publish(int track, const std::vector<float> &data) {
  reclaim();
  for (int waited = 0; all_.size() >= kMaxLive; ++waited) {
    if (waited > 2000) throw std::runtime_error("the audio thread does not return buffers (JACK stopped?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    reclaim();
  }
  std::unique_ptr<Buffer> owned(new Buffer);
  owned->data = data;
  all_.insert(owned.get());
  Buffer *b = owned.release();
  Buffer *old = pending_[track].exchange(b, std::memory_order_acq_rel);
  if (old) {  // never taken by the audio thread
    free_buffer(old);
    ++untaken_;
  }
}

}  // namespace ngs_drum
