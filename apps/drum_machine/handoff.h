// The lock-free channels between the drum machine's model worker and its audio thread
// (README "Neural drum machine", threading). The worker publishes a track's new buffer by
// exchanging the track's atomic pointer (a buffer the audio thread had not taken yet comes
// back from the exchange and is freed by the worker), and sends sequencer changes through
// an SPSC ring; the audio thread, once per block, takes both, mixes, and hands back the
// buffers that no track and no sounding hit uses any more through a second SPSC ring: it
// never frees. The worker keeps at most kMaxLive buffers alive, fewer than the
// sequencer's list of retired buffers holds, so that list never fills.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_set>
#include <vector>

#include "sequencer.h"
#include "spsc.h"

namespace ngs_drum {

class Handoff {
 public:
  static constexpr size_t kMaxLive = 256;
  static_assert(kMaxLive < size_t(kMaxRetired), "the retired list must hold every buffer");

  // rate: the output rate; record_frames > 0: a recording ring of at least that many frames.
  Handoff(int rate, size_t record_frames);
  // Frees every buffer. No thread may call the object any more (the audio thread stopped).
  ~Handoff();
  Handoff(const Handoff &) = delete;
  Handoff &operator=(const Handoff &) = delete;

  // ---- the audio thread, once per block: no allocation, lock, wait or system call.
  // Applies the changes sent since the last block, takes new buffers, mixes n frames into
  // out, returns retired buffers, copies the block into the recording ring.
  void process(float *out, int n);

  // ---- the worker (one thread). Both wait (1 ms sleeps) while the audio thread is
  // behind, and throw std::runtime_error after 2 s without progress.
  void publish(int track, const std::vector<float> &data);
  void send(const SeqCommand &c);
  // Frees the buffers the audio thread handed back.
  void reclaim();
  size_t alive() const { return all_.size(); }
  // Frees a buffer on the worker; null = delete. Tests keep the buffers and poison their
  // samples instead, so that a buffer given back while it still plays shows in the mix.
  void (*free_fn)(Buffer *) = nullptr;
  uint64_t returned() const { return returned_; }  // buffers freed after the audio thread gave them back
  uint64_t untaken() const { return untaken_; }    // buffers replaced before the audio thread took them

  // ---- any thread.
  int64_t frame() const { return frame_.load(std::memory_order_acquire); }
  int64_t play_frame() const { return play_frame_.load(std::memory_order_acquire); }
  int voices() const { return voices_.load(std::memory_order_relaxed); }
  SampleRing *record() { return record_.get(); }  // consumer side: the recorder thread
  uint64_t record_lost() const { return record_lost_.load(std::memory_order_relaxed); }

 private:
  void free_buffer(Buffer *b);

  Sequencer seq_;                          // the audio thread's
  std::atomic<Buffer *> pending_[kTracks];  // worker -> audio
  SpscRing<SeqCommand> commands_{64};      // worker -> audio
  SpscRing<Buffer *> freed_{1024};         // audio -> worker
  std::unique_ptr<SampleRing> record_;     // audio -> recorder
  std::atomic<uint64_t> record_lost_{0};
  std::atomic<int64_t> frame_{0}, play_frame_{-1};
  std::atomic<int> voices_{0};
  std::unordered_set<Buffer *> all_;       // the worker's: every buffer made and not yet freed
  uint64_t returned_ = 0, untaken_ = 0;
};

}  // namespace ngs_drum
