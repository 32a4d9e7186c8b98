// The drum machine's worker <-> audio thread handoff (apps/drum_machine/handoff.h) and
// its sequencer: a sounding hit keeps its buffer when the track gets a new one, a new hit
// plays the new one, and under a worker publishing thousands of buffers while an audio
// thread renders blocks of random sizes, no buffer is freed while it plays (freed buffers
// are poisoned with NaN and kept), none is kept back, the recording ring keeps every frame,
// and the audio block allocates, locks, waits and calls the system never (the real-time
// interposer of tests/cpp/rt_interpose.cpp, outside sanitizer builds).
// Also built with -fsanitize=thread by hand (apps/drum_machine/README.md, "Test").
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "handoff.h"
#if NGS_DRUM_RT_CHECK
#include "rt_interpose.h"
#endif

using namespace ngs_drum;

namespace {

// One audio block, watched by the real-time interposer when it is linked.
void audio_block(Handoff &h, float *out, int n) {
#if NGS_DRUM_RT_CHECK
  ngs::rt::Section watched;
#endif
  h.process(out, n);
}

// Buffers the handoff freed, poisoned and kept until the end of the test (worker thread).
std::vector<Buffer *> g_graveyard;
void poison_and_keep(Buffer *b) {
  std::fill(b->data.begin(), b->data.end(), NAN);
  g_graveyard.push_back(b);
}

// Stops and joins the test's threads however the test ends, each after the one before.
struct Joiner {
  std::vector<std::pair<std::atomic<bool> *, std::thread *>> threads;
  ~Joiner() {
    for (auto &t : threads) {
      t.first->store(true);
      if (t.second->joinable()) t.second->join();
    }
  }
};

SeqCommand grid_command(float v, int track = -1, int step = -1) {
  SeqCommand c;
  c.type = SeqCommand::kGrid;
  for (int t = 0; t < kTracks; ++t)
    for (int k = 0; k < kSteps; ++k)
      c.grid.v[t][k] = (track < 0 || t == track) && (step < 0 || k == step) ? v : 0.0f;
  return c;
}

SeqCommand command(SeqCommand::Type type, double bpm = 120) {
  SeqCommand c;
  c.type = type;
  c.bpm = bpm;
  return c;
}

}  // namespace

TEST(DrumHandoff, SoundingHitsKeepTheirBufferNewHitsTakeTheNewOne) {
  // 16 kHz, 120 bpm: 2000 frames per step; track 2 on step 0 only (one hit per bar of 32000).
  Handoff h(16000, 0);
  h.send(grid_command(0.5f, 2, 0));
  h.publish(2, std::vector<float>(40000, 1.0f));  // longer than a bar: still sounding at the next hit
  h.send(command(SeqCommand::kPlay));
  std::vector<float> out(1000, -7.0f);
  h.process(out.data(), 1000);  // the hit starts at frame 0
  for (float v : out) ASSERT_EQ(v, 0.5f);
  h.publish(2, std::vector<float>(40000, 2.0f));
  for (int b = 1; b < 32; ++b) {  // frames 1000..31999: the first hit, on the old buffer
    std::fill(out.begin(), out.end(), -7.0f);
    h.process(out.data(), 1000);
    for (float v : out) ASSERT_EQ(v, 0.5f) << "block " << b;
  }
  std::fill(out.begin(), out.end(), -7.0f);
  h.process(out.data(), 1000);  // frame 32000: the second hit, on the new buffer, over the first
  for (float v : out) ASSERT_EQ(v, 0.5f + 1.0f);
  h.reclaim();
  EXPECT_EQ(h.returned(), 0u);  // the old buffer still sounds
  EXPECT_EQ(h.alive(), 2u);
  for (int b = 0; b < 8; ++b) h.process(out.data(), 1000);  // frame 40000: the first hit ends
  h.reclaim();
  EXPECT_EQ(h.returned(), 1u);
  EXPECT_EQ(h.alive(), 1u);
}

TEST(DrumHandoff, StepsLandOnTheirFramesForAnyBlockSize) {
  // 44.1 kHz at 97 bpm: 6819.58... frames per step; every step of track 0 with a 1-frame
  // impulse: the output is 1 exactly at ceil(k * fps), 0 elsewhere.
  const double fps = frames_per_step(44100, 97);
  std::mt19937 rng(7);
  Handoff h(44100, 0);
  h.send(grid_command(1.0f, 0));
  h.send(command(SeqCommand::kBpm, 97));
  h.publish(0, std::vector<float>(1, 1.0f));
  h.send(command(SeqCommand::kPlay));
  const int total = 40 * 6820;
  std::vector<float> all;
  while (int(all.size()) < total) {
    std::vector<float> out(1 + rng() % 700, -7.0f);
    h.process(out.data(), int(out.size()));
    all.insert(all.end(), out.begin(), out.end());
  }
  std::vector<int> want;
  for (int k = 0; std::ceil(k * fps) < all.size(); ++k) want.push_back(int(std::ceil(k * fps)));
  std::vector<int> got;
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_TRUE(all[i] == 0.0f || all[i] == 1.0f) << i;
    if (all[i] == 1.0f) got.push_back(int(i));
  }
  EXPECT_EQ(got, want);
}

TEST(DrumHandoff, StressNoBufferFreedWhilePlayingNoneLost) {
#if NGS_DRUM_RT_CHECK
  ASSERT_TRUE(ngs::rt::active());
  ngs::rt::reset();
#endif
  Handoff h(48000, 1 << 14);
  h.free_fn = poison_and_keep;
  h.send(grid_command(0.25f));  // every track on every step
  h.send(command(SeqCommand::kBpm, 400));  // 1800 frames per step at 48 kHz
  for (int t = 0; t < kTracks; ++t) h.publish(t, std::vector<float>(3000, 1e-3f));
  h.send(command(SeqCommand::kPlay));

  std::atomic<bool> done{false}, recorder_done{false};  // the recorder stops after the audio thread
  std::atomic<uint64_t> bad_samples{0}, recorded{0};
  std::thread audio([&] {
    std::mt19937 rng(1);
    std::vector<float> out(512);
    while (!done.load()) {
      const int n = 1 + int(rng() % 512);
      audio_block(h, out.data(), n);
      for (int i = 0; i < n; ++i)
        if (!std::isfinite(out[i])) bad_samples.fetch_add(1);
    }
  });
  std::thread recorder([&] {
    std::vector<float> buf(4096);
    for (;;) {
      const bool last = recorder_done.load();
      size_t n;
      while ((n = h.record()->read(buf.data(), buf.size())) > 0) recorded.fetch_add(n);
      if (last) break;
      std::this_thread::yield();
    }
  });

  Joiner joiner{{{&done, &audio}, {&recorder_done, &recorder}}};
  std::mt19937 rng(2);
  for (int i = 0; i < 4000; ++i) {
    h.publish(int(rng() % kTracks), std::vector<float>(1 + rng() % 6000, 1e-3f));
    switch (rng() % 16) {
      case 0: h.send(grid_command(float(rng() % 5) / 4.0f)); break;
      case 1: h.send(command(SeqCommand::kBpm, 60 + rng() % 340)); break;
      case 2: h.send(command(SeqCommand::kStop)); break;
      case 3: h.send(command(SeqCommand::kPlay)); break;
      default: break;
    }
    if (rng() % 8 == 0) std::this_thread::yield();
    ASSERT_LE(h.alive(), Handoff::kMaxLive);
  }
  // Stop; once the last hits (at most 6000 frames) have ended, every buffer but the
  // tracks' current ones has come back.
  h.send(command(SeqCommand::kStop));
  const int64_t f0 = h.frame();
  while (h.frame() < f0 + 20000) {
    h.reclaim();
    std::this_thread::yield();
  }
  done.store(true);
  audio.join();
  recorder_done.store(true);
  recorder.join();
  h.reclaim();

  EXPECT_EQ(bad_samples.load(), 0u) << "a buffer was freed while it played";
  EXPECT_GT(h.returned(), 100u);  // both ways back to the worker were taken
  EXPECT_GT(h.untaken(), 0u);
  EXPECT_EQ(h.alive(), size_t(kTracks)) << "buffers nobody plays were not handed back";
  EXPECT_EQ(recorded.load() + h.record_lost(), uint64_t(h.frame()));
#if NGS_DRUM_RT_CHECK
  EXPECT_EQ(ngs::rt::violations(), 0) << "the audio block called: " << ngs::rt::report();
#endif
  for (Buffer *b : g_graveyard) delete b;
  g_graveyard.clear();
}
