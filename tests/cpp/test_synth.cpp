// The real-time synth (ngs_synth_*, docs/SYNTH.md) against the offline processes of the C
// API: each voice kind equals its offline render (relative L2 <= 1e-5), the output does
// not depend on the host's block size, events land at their exact frame, the reported
// latency is the measured delay, bad events are dropped and counted, voice stealing and
// stop fades follow the documented policy, resampled host rates equal the offline render
// through the same libsamplerate converter. Outputs are NaN-poisoned before each call.
#include <gtest/gtest.h>
#include <samplerate.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <atomic>
#include <vector>

#include "cpu/cpu.h"
#include "cpu/resample.h"
#include "engine.h"
#include "ngs/ngs.h"
#include "synth.h"
#include "synth_render.h"
#include "test_util.h"

namespace {

constexpr double kTol = 1e-5;

using Timed = ngs::test::TimedEvent;

class SynthTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string path = ngs::test::fixture_path(GetParam(), "model.safetensors");
    if (!ngs::test::file_exists(path)) GTEST_SKIP() << "fixtures missing: " << path;
    ngs_model_params mp = ngs_model_default_params();
    mp.backend = NGS_BACKEND_CPU;
    ASSERT_EQ(ngs_model_init_from_file(path.c_str(), mp, &model_), NGS_STATUS_OK) << ngs_last_error();
    ASSERT_EQ(ngs_model_get_info(model_, &info_), NGS_STATUS_OK);
    ASSERT_EQ(ngs_context_init(model_, ngs_context_default_params(), &ctx_), NGS_STATUS_OK);
    cls_ = info_.n_classes > 0 ? info_.n_classes - 1 : NGS_CLASS_NONE;
    taps_ = model_->wc().pp_ker;
    la_ = taps_ - 1 - taps_ / 2;
  }
  void TearDown() override {
    ngs_context_free(ctx_);
    ngs_model_free(model_);
  }

  ngs_synth *make(ngs_synth_params p = ngs_synth_default_params()) {
    ngs_synth *s = nullptr;
    EXPECT_EQ(ngs_synth_init(model_, p, &s), NGS_STATUS_OK) << ngs_last_error();
    return s;
  }

  // Renders `frames` frames in blocks of `block` with the timed events (sorted by frame).
  std::vector<float> render(ngs_synth *s, const std::vector<Timed> &evs, int64_t frames, int block,
                            const std::vector<float> *in = nullptr) {
    return ngs::test::render_synth(s, evs, frames, block, in);
  }

  Timed one_shot(int64_t frame, int32_t voice, uint64_t seed, uint32_t seq = 0, float gain = 1.0f) {
    Timed t{frame, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
    t.ev.voice = voice;
    t.ev.kind = NGS_SYNTH_VOICE_ONE_SHOT;
    t.ev.class_index = cls_;
    t.ev.temperature = 0.9f;
    t.ev.seed = seed;
    t.ev.sequence = seq;
    t.ev.gain = gain;
    return t;
  }
  Timed free_voice(int64_t frame, int32_t voice, const std::vector<float> &z, int grains,
                   uint64_t seed, uint32_t seq = 0) {
    Timed t{frame, ngs_synth_default_event(NGS_SYNTH_EVENT_START), z};
    t.ev.voice = voice;
    t.ev.kind = NGS_SYNTH_VOICE_FREE;
    t.ev.seed = seed;
    t.ev.sequence = seq;
    t.ev.path_grains = grains;
    return t;
  }
  Timed simple(int64_t frame, ngs_synth_event_type type, int32_t voice, int32_t fade = -1) {
    Timed t{frame, ngs_synth_default_event(type), {}};
    t.ev.voice = voice;
    t.ev.fade = fade;
    return t;
  }

  std::vector<float> random_z(uint32_t seed) const {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> z(static_cast<size_t>(info_.z_dim));
    for (float &v : z) v = nd(rng);
    return z;
  }
  std::vector<float> random_audio(size_t n, uint32_t seed) const {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> ud(-0.5f, 0.5f);
    std::vector<float> a(n);
    for (size_t i = 0; i < n; ++i) a[i] = ud(rng) * (0.6f + 0.4f * std::sin(0.003f * i));
    return a;
  }

  std::vector<float> offline_one_shot(uint64_t seed, uint32_t seq) {
    ngs_sample_params sp = ngs_sample_default_params();
    sp.class_index = cls_;
    sp.temperature = 0.9f;
    sp.seed = seed;
    sp.count = static_cast<int>(seq) + 1;
    std::vector<float> a(info_.sample_length * sp.count, std::nanf(""));
    EXPECT_EQ(ngs_sample(ctx_, sp, a.data(), a.size()), NGS_STATUS_OK) << ngs_last_error();
    return std::vector<float>(a.begin() + seq * info_.sample_length, a.end());
  }
  std::vector<float> offline_decode(const std::vector<float> &z, int n, uint64_t seed, uint32_t seq) {
    std::vector<float> a(ngs_model_audio_length(model_, n), std::nanf(""));
    ngs_decode_params dp = ngs_decode_default_params();
    dp.seed = seed;
    dp.sequence = seq;
    EXPECT_EQ(ngs_decode(ctx_, z.data(), n, dp, a.data(), a.size()), NGS_STATUS_OK) << ngs_last_error();
    return a;
  }

  // Expects out == ref placed at `at`, and silence elsewhere.
  void expect_placed(const std::vector<float> &out, const std::vector<float> &ref, int64_t at,
                     double tol = kTol) {
    ASSERT_LE(at + static_cast<int64_t>(ref.size()), static_cast<int64_t>(out.size()));
    const double e = ngs::test::rel_l2(out.data() + at, ref.data(), ref.size());
    EXPECT_LE(e, tol);
    if (std::getenv("NGS_TEST_VERBOSE")) std::printf("  rel L2 %.3g\n", e);
    for (int64_t t = 0; t < static_cast<int64_t>(out.size()); ++t)
      if (t < at || t >= at + static_cast<int64_t>(ref.size())) {
        ASSERT_EQ(out[t], 0.0f) << "frame " << t;
      }
  }

  static int64_t first_nonzero(const std::vector<float> &v) {
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] != 0.0f) return static_cast<int64_t>(i);
    return -1;
  }

  ngs_model *model_ = nullptr;
  ngs_context *ctx_ = nullptr;
  ngs_model_info info_{};
  int cls_ = NGS_CLASS_NONE, taps_ = 0, la_ = 0;
};

TEST_P(SynthTest, OneShotEqualsOfflineSample) {
  ngs_synth *s = make();
  const int lat = ngs_synth_latency(s);
  EXPECT_EQ(lat, info_.hop_size - 1);
  // Two one-shots overlapping, different sequences of one seed, the second at an odd frame.
  const int64_t f0 = 37, f1 = 37 + info_.sample_length / 3 + 5;
  std::vector<Timed> ev = {one_shot(f0, 1, 1234, 0), one_shot(f1, 2, 1234, 2)};
  const int64_t frames = f1 + lat + info_.sample_length + 2 * info_.hop_size;
  const std::vector<float> out = render(s, ev, frames, 64);
  const std::vector<float> a = offline_one_shot(1234, 0), b = offline_one_shot(1234, 2);
  std::vector<float> ref(out.size(), 0.0f);
  for (size_t i = 0; i < a.size(); ++i) ref[f0 + lat + i] += a[i];
  for (size_t i = 0; i < b.size(); ++i) ref[f1 + lat + i] += b[i];
  EXPECT_LE(ngs::test::rel_l2(out.data(), ref.data(), out.size()), kTol);
  // Alone: exact placement, silence before and after.
  ngs_synth_reset(s);
  const std::vector<float> solo = render(s, {one_shot(f0, 1, 99, 0)}, frames, 333);
  expect_placed(solo, offline_one_shot(99, 0), f0 + lat);
  ngs_synth_stats st{};
  ASSERT_EQ(ngs_synth_get_stats(s, &st), NGS_STATUS_OK);
  EXPECT_EQ(st.active_voices, 0);  // the one-shot ended by itself
  EXPECT_EQ(st.events_dropped, 0u);
  ngs_synth_free(s);
}

TEST_P(SynthTest, FreeVoiceConstantZEqualsDecode) {
  ngs_synth *s = make();
  const int lat = ngs_synth_latency(s);
  for (int n : {1, 2, 5, 17}) {
    const std::vector<float> z1 = random_z(7 + n);
    std::vector<float> zs;
    for (int g = 0; g < n; ++g) zs.insert(zs.end(), z1.begin(), z1.end());
    const int64_t f0 = 11 + n;
    const int64_t frames = f0 + lat + ngs_model_audio_length(model_, n) + info_.hop_size;
    ngs_synth_reset(s);
    const std::vector<float> out = render(s, {free_voice(f0, 5, z1, n, 42, 3)}, frames, 7);
    expect_placed(out, offline_decode(zs, n, 42, 3), f0 + lat);
  }
  ngs_synth_free(s);
}

// RELEASE ends a free voice: its last grain is the first one computed at a hop point at
// or after the release (docs/SYNTH.md); here the release frame is chosen for n grains.
TEST_P(SynthTest, ReleaseEndsFreeVoiceLikeDecode) {
  ngs_synth *s = make();
  const int lat = ngs_synth_latency(s), hop = info_.hop_size;
  const int n = 6;
  const std::vector<float> z1 = random_z(3);
  std::vector<float> zs;
  for (int g = 0; g < n; ++g) zs.insert(zs.end(), z1.begin(), z1.end());
  const int64_t f0 = 100;
  const int64_t out0 = f0 + lat;
  // Grain j is computed at the hop point floor((out0 + j hop - la) / hop) hop.
  const int64_t rel = out0 + static_cast<int64_t>(n - 2) * hop - la_ + 1;
  const int64_t frames = out0 + ngs_model_audio_length(model_, n) + 3 * hop;
  const std::vector<float> out =
      render(s, {free_voice(f0, 9, z1, 0, 5, 0), simple(rel, NGS_SYNTH_EVENT_RELEASE, 9)}, frames, 64);
  expect_placed(out, offline_decode(zs, n, 5, 0), out0);
  ngs_synth_free(s);
}

// SET_LATENT with a glide of G grains: the grains computed at hop points at or after
// the event move linearly to the new target over G grains (docs/SYNTH.md).
TEST_P(SynthTest, SetLatentGlidesLikeDecodeOfTheRamp) {
  ngs_synth *s = make();
  const int lat = ngs_synth_latency(s), hop = info_.hop_size, zd = info_.z_dim;
  const int n = 12;
  for (float glide : {1.0f, 3.0f}) {
    const std::vector<float> z1 = random_z(21), z2 = random_z(22);
    const int64_t f0 = 45, out0 = f0 + lat, t = f0 + 3 * hop + 7;
    const int G = std::max(1, static_cast<int>(std::lround(glide)));
    std::vector<float> zs(static_cast<size_t>(n) * zd);
    int k = 0;
    for (int j = 0; j < n; ++j) {
      const int64_t need = out0 + std::max<int64_t>(0, static_cast<int64_t>(j) * hop - la_);
      const int64_t W = need / hop * hop;  // the hop point that computes grain j
      float *zj = zs.data() + static_cast<size_t>(j) * zd;
      if (W < t) {
        std::copy(z1.begin(), z1.end(), zj);
        continue;
      }
      ++k;
      const float w = static_cast<float>(k) / static_cast<float>(G);
      for (int i = 0; i < zd; ++i) zj[i] = k >= G ? z2[i] : z1[i] + (z2[i] - z1[i]) * w;
    }
    ASSERT_GT(k, G);  // the change and the whole glide happen inside the n grains
    Timed sl{t, ngs_synth_default_event(NGS_SYNTH_EVENT_SET_LATENT), z2};
    sl.ev.voice = 6;
    sl.ev.glide = glide;
    ngs_synth_reset(s);
    const int64_t frames = out0 + ngs_model_audio_length(model_, n) + hop;
    const std::vector<float> out = render(s, {free_voice(f0, 6, z1, n, 13, 1), sl}, frames, 7);
    expect_placed(out, offline_decode(zs, n, 13, 1), out0);
  }
  ngs_synth_free(s);
}

TEST_P(SynthTest, PathVoiceEqualsDecodeOfPath) {
  ngs_synth *s = make();
  const int lat = ngs_synth_latency(s);
  const int n = 13;
  for (int kind = NGS_PATH_KIND_LINE; kind <= NGS_PATH_KIND_BACK_AND_FORTH; ++kind) {
    ngs_path_params pp = ngs_path_default_params();
    pp.kind = static_cast<ngs_path_kind>(kind);
    pp.seed = 77 + kind;
    pp.sequence = 1;
    pp.temperature = 0.8f;
    pp.turns = 1.5f;
    pp.points = 5;
    pp.legs = 3;
    std::vector<float> z(static_cast<size_t>(n) * info_.z_dim);
    ASSERT_EQ(ngs_path_generate(model_, pp, n, z.data()), NGS_STATUS_OK);
    // The streamed path points equal the offline ones bit for bit.
    ngs::synth::PathCursor pc;
    pc.start(pp, n, info_.z_dim);
    std::vector<float> row(static_cast<size_t>(info_.z_dim));
    for (int g = 0; g < n; ++g) {
      pc.point(g, row.data());
      ASSERT_EQ(0, std::memcmp(row.data(), z.data() + static_cast<size_t>(g) * info_.z_dim,
                               sizeof(float) * info_.z_dim))
          << "kind " << kind << " point " << g;
    }
    Timed t{20, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
    t.ev.voice = 3;
    t.ev.kind = NGS_SYNTH_VOICE_FREE;
    t.ev.use_path = 1;
    t.ev.path = pp;
    t.ev.path_grains = n;
    t.ev.seed = 8;
    t.ev.sequence = 0;
    ngs_synth_reset(s);
    const int64_t frames = 20 + lat + ngs_model_audio_length(model_, n) + 100;
    const std::vector<float> out = render(s, {t}, frames, 333);
    expect_placed(out, offline_decode(z, n, 8, 0), 20 + lat);
  }
  ngs_synth_free(s);
}

TEST_P(SynthTest, ResynthEqualsEncodeDecode) {
  ngs_synth *s = make();
  const int lin = ngs_synth_input_latency(s);
  EXPECT_EQ(lin, info_.grain_length + info_.hop_size - 1 + la_);
  const int n = 9;
  const int64_t s0 = 300;
  const size_t seg = ngs_model_audio_length(model_, n);
  const int64_t frames = s0 + lin + static_cast<int64_t>(seg) + info_.hop_size;
  const std::vector<float> in = random_audio(static_cast<size_t>(frames), 5);
  Timed t{s0, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
  t.ev.voice = 4;
  t.ev.kind = NGS_SYNTH_VOICE_RESYNTH;
  t.ev.seed = 31;
  t.ev.sequence = 2;
  t.ev.path_grains = n;
  const std::vector<float> out = render(s, {t}, frames, 64, &in);
  // Offline: mu of the input from s0, decoded with the same noise.
  std::vector<float> mu(static_cast<size_t>(n) * info_.z_dim);
  int ng = 0;
  ASSERT_EQ(ngs_encode(ctx_, in.data() + s0, seg, ngs_encode_default_params(), mu.data(), nullptr,
                       nullptr, n, &ng),
            NGS_STATUS_OK)
      << ngs_last_error();
  ASSERT_EQ(ng, n);
  expect_placed(out, offline_decode(mu, n, 31, 2), s0 + lin);
  ngs_synth_free(s);
}

// One mixed scene (one-shots, free voices with latent changes and gain ramps, a resynth
// voice, a steal, stops) rendered with different block sizes: bit-identical.
TEST_P(SynthTest, BlockSizesGiveIdenticalOutput) {
  for (int rate : {0, 48000}) {
    ngs_synth_params p = ngs_synth_default_params();
    p.sample_rate = rate;
    p.max_voices = 4;
    ngs_synth *s = make(p);
    const int hop = info_.hop_size;
    std::vector<Timed> ev = {one_shot(3, 1, 10), free_voice(50, 2, random_z(1), 0, 11),
                             one_shot(3 * hop + 1, 3, 12)};
    Timed sl{4 * hop + 17, ngs_synth_default_event(NGS_SYNTH_EVENT_SET_LATENT), random_z(2)};
    sl.ev.voice = 2;
    sl.ev.glide = 3;
    ev.push_back(sl);
    Timed rs{5 * hop, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
    rs.ev.voice = 4;
    rs.ev.kind = NGS_SYNTH_VOICE_RESYNTH;
    ev.push_back(rs);
    Timed g{6 * hop + 3, ngs_synth_default_event(NGS_SYNTH_EVENT_SET_GAIN), {}};
    g.ev.voice = 2;
    g.ev.gain = 0.25f;
    g.ev.fade = 100;
    ev.push_back(g);
    ev.push_back(one_shot(7 * hop + 5, 5, 13));  // steals the oldest one-shot (4 voices)
    ev.push_back(simple(9 * hop + 9, NGS_SYNTH_EVENT_STOP, 2, 300));
    ev.push_back(simple(12 * hop + 1, NGS_SYNTH_EVENT_STOP_ALL, 0));
    const int64_t frames = 14 * hop + 4 * info_.sample_length / 3;
    const std::vector<float> in = random_audio(static_cast<size_t>(frames) + 8192, 9);
    std::vector<float> ref;
    for (int block : {1, 7, 64, 333, 4096}) {
      ngs_synth_reset(s);
      const std::vector<float> out = render(s, ev, frames, block, &in);
      if (ref.empty()) {
        ref = out;
        double e = 0;
        for (float v : out) e += static_cast<double>(v) * v;
        ASSERT_GT(e, 0.0);
        continue;
      }
      ASSERT_EQ(0, std::memcmp(out.data(), ref.data(), sizeof(float) * out.size()))
          << "rate " << rate << " block " << block;
    }
    ngs_synth_free(s);
  }
}

// Any number of events passed directly to process is applied (none is lost to the
// pending ring): thousands of events in one block, a few thousand at its last frame,
// give the same output bit for bit as the same events spread over 1- and 333-frame
// blocks, every event is applied or dropped as it should be and none counts as an
// overflow. Native and 48 kHz host, with and without spread.
TEST_P(SynthTest, ManyEventsInOneBlockAreAllApplied) {
  for (int rate : {0, 48000}) {
    for (int spread : {0, 1}) {
      ngs_synth_params p = ngs_synth_default_params();
      p.sample_rate = rate;
      p.spread = spread;
      p.queue_size = 16;
      p.max_voices = 6;
      ngs_synth *s = make(p);
      std::mt19937 rng(1234u + static_cast<uint32_t>(rate) + 7u * spread);
      std::uniform_int_distribution<int> frame_d(0, 4095), voice_d(1, 6), type_d(0, 9);
      std::uniform_real_distribution<float> gain_d(0.0f, 1.5f);
      std::vector<int64_t> frames;
      for (int i = 0; i < 5000; ++i) frames.push_back(frame_d(rng));
      for (int i = 0; i < 2500; ++i) frames.push_back(4095);  // after the last hop point
      std::sort(frames.begin(), frames.end());
      std::vector<Timed> ev;
      for (int64_t f : frames) {
        const int32_t v = voice_d(rng);
        const int t = type_d(rng);
        if (t < 2) {
          ev.push_back(free_voice(f, v, random_z(static_cast<uint32_t>(rng())), 0, rng() % 100));
        } else if (t < 6) {
          Timed g = simple(f, NGS_SYNTH_EVENT_SET_GAIN, v, static_cast<int32_t>(rng() % 50));
          g.ev.gain = gain_d(rng);
          ev.push_back(g);
        } else if (t < 9) {
          Timed sl{f, ngs_synth_default_event(NGS_SYNTH_EVENT_SET_LATENT), random_z(static_cast<uint32_t>(rng()))};
          sl.ev.voice = v;
          sl.ev.glide = 2;
          ev.push_back(sl);
        } else {
          ev.push_back(simple(f, NGS_SYNTH_EVENT_STOP, v, static_cast<int32_t>(rng() % 200)));
        }
      }
      ev.push_back(free_voice(4095, 1, random_z(5), 0, 3));  // a voice that surely plays
      const int64_t total = 4096 + 2 * info_.sample_length + 4 * info_.hop_size;
      std::vector<float> ref;
      ngs_synth_stats ref_st{};
      for (int block : {4096, 1, 333}) {
        ngs_synth_reset(s);
        ngs_synth_stats st0{}, st{};
        ngs_synth_get_stats(s, &st0);
        const std::vector<float> out = render(s, ev, total, block);
        ASSERT_EQ(ngs_synth_get_stats(s, &st), NGS_STATUS_OK);
        const std::string what = "rate " + std::to_string(rate) + " spread " +
                                 std::to_string(spread) + " block " + std::to_string(block);
        EXPECT_EQ(st.queue_overflows - st0.queue_overflows, 0u) << what;
        EXPECT_EQ(st.events_applied + st.events_dropped - st0.events_applied - st0.events_dropped,
                  ev.size()) << what;
        if (ref.empty()) {
          ref = out;
          ref_st = st;
          ref_st.events_applied -= st0.events_applied;
          double e = 0;
          for (float x : out) e += static_cast<double>(x) * x;
          ASSERT_GT(e, 0.0) << what;
          ASSERT_GT(ref_st.events_applied, ev.size() / 2) << what;
          continue;
        }
        EXPECT_EQ(st.events_applied - st0.events_applied, ref_st.events_applied) << what;
        ASSERT_EQ(0, std::memcmp(out.data(), ref.data(), sizeof(float) * out.size())) << what;
      }
      ngs_synth_free(s);
    }
  }
}

// n_threads > 1 splits each hop's voices into one batch per thread: the same output bit
// for bit as one thread (a voice's numbers do not depend on its batch).
TEST_P(SynthTest, ThreadCountDoesNotChangeOutput) {
  const int hop = info_.hop_size;
  std::vector<Timed> ev;
  for (int i = 0; i < 12; ++i) ev.push_back(one_shot(5 + i * hop / 3, 1 + i, 100 + i));
  for (int i = 0; i < 4; ++i) ev.push_back(free_voice(7 + i * hop / 2, 20 + i, random_z(i), 0, i));
  for (int i = 0; i < 2; ++i) {
    Timed rs{11 + i * hop, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
    rs.ev.voice = 30 + i;
    rs.ev.kind = NGS_SYNTH_VOICE_RESYNTH;
    ev.push_back(rs);
  }
  std::stable_sort(ev.begin(), ev.end(), [](const Timed &a, const Timed &b) { return a.frame < b.frame; });
  const int64_t frames = 6 * hop + info_.sample_length;
  const std::vector<float> in = random_audio(static_cast<size_t>(frames) + 4096, 4);
  for (int spread : {0, 1}) {
    std::vector<float> ref;
    for (int threads : {1, 3, 2}) {
      ngs_synth_params p = ngs_synth_default_params();
      p.max_voices = 24;
      p.n_threads = threads;
      p.spread = spread;
      ngs_synth *s = make(p);
      const std::vector<float> out = render(s, ev, frames, threads == 2 ? 7 : 64, &in);
      if (ref.empty()) ref = out;
      else
        EXPECT_EQ(0, std::memcmp(out.data(), ref.data(), sizeof(float) * out.size()))
            << threads << " threads, spread " << spread;
      ngs_synth_free(s);
    }
  }
}

TEST_P(SynthTest, EventAtEveryOffsetLandsAtThatFrame) {
  ngs_synth *s = make();
  const int lat = ngs_synth_latency(s);
  const int block = 64;
  const std::vector<float> ref = offline_one_shot(5, 0);
  for (int off = 0; off < block; ++off) {
    ngs_synth_reset(s);
    const int64_t f = 2 * block + off;
    const std::vector<float> out = render(s, {one_shot(f, 1, 5)}, f + lat + 3 * info_.hop_size, block);
    ASSERT_EQ(first_nonzero(out), f + lat) << "offset " << off;
    EXPECT_LE(ngs::test::rel_l2(out.data() + f + lat, ref.data(), 3 * info_.hop_size), kTol);
  }
  ngs_synth_free(s);
}

TEST_P(SynthTest, LatencyEqualsMeasuredDelay) {
  for (int spread : {0, 1}) {
    ngs_synth_params p = ngs_synth_default_params();
    p.spread = spread;
    ngs_synth *s = make(p);
    const int lat = ngs_synth_latency(s);
    EXPECT_EQ(lat, info_.hop_size - 1 + spread * info_.hop_size);
    const int64_t f = 1000;
    const std::vector<float> out = render(s, {one_shot(f, 1, 5)}, f + lat + 2 * info_.hop_size, 32);
    EXPECT_EQ(first_nonzero(out) - f, lat) << "spread " << spread;
    // Input latency: a resynth voice's first output frame.
    ngs_synth_reset(s);
    const int lin = ngs_synth_input_latency(s);
    Timed rs{f, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
    rs.ev.voice = 2;
    rs.ev.kind = NGS_SYNTH_VOICE_RESYNTH;
    const std::vector<float> in = random_audio(static_cast<size_t>(f + lin + 4096), 2);
    const std::vector<float> o2 = render(s, {rs}, f + lin + 2 * info_.hop_size, 32, &in);
    EXPECT_EQ(first_nonzero(o2) - f, lin) << "spread " << spread;
    ngs_synth_free(s);
  }
}

// Spread mode: the same output one hop later, for any number of slices (one per host
// block of max_block frames in a hop: 4 for large blocks, up to one per sample).
TEST_P(SynthTest, SpreadModeIsOneHopLater) {
  ngs_synth_params p = ngs_synth_default_params();
  ngs_synth *a = make(p);
  const int hop = info_.hop_size;
  std::vector<Timed> ev = {one_shot(10, 1, 3), free_voice(hop + 3, 2, random_z(4), 0, 1),
                           one_shot(2 * hop + 7, 3, 4), simple(5 * hop, NGS_SYNTH_EVENT_STOP, 2)};
  for (int i = 0; i < 9; ++i) ev.push_back(one_shot(3 * hop + 5 * i, 10 + i, 20 + i));  // 9 in one hop
  std::stable_sort(ev.begin(), ev.end(), [](const Timed &x, const Timed &y) { return x.frame < y.frame; });
  const int64_t frames = 8 * hop + info_.sample_length;
  const std::vector<float> oa = render(a, ev, frames, 64);
  for (int max_block : {4096, 64, 17, 5, 1}) {
    p.spread = 1;
    p.max_block = max_block;
    ngs_synth *b = make(p);
    const std::vector<float> ob = render(b, ev, frames + hop, std::min(17, max_block));
    // Bit for bit: a voice's grain does not depend on which batch computes it.
    EXPECT_EQ(0, std::memcmp(ob.data() + hop, oa.data(), sizeof(float) * oa.size())) << "max_block " << max_block;
    for (int t = 0; t < hop; ++t) ASSERT_EQ(ob[t], 0.0f) << "max_block " << max_block;
    ngs_synth_free(b);
  }
  ngs_synth_free(a);
}

TEST_P(SynthTest, BadEventsAreDroppedAndCounted) {
  ngs_synth *s = make();
  const int64_t frames = 4 * info_.hop_size + info_.sample_length;
  const std::vector<float> good = render(s, {one_shot(5, 1, 3)}, frames, 64);
  ngs_synth_reset(s);
  ngs_synth_stats st0{};
  ngs_synth_get_stats(s, &st0);
  std::vector<float> nanz = random_z(1);
  nanz[2] = std::nanf("");
  std::vector<Timed> ev = {one_shot(5, 1, 3)};
  ev.push_back(free_voice(6, 2, nanz, 0, 1));                 // NaN latent
  Timed bc = one_shot(7, 3, 3);
  bc.ev.class_index = info_.n_classes + 5;                    // unknown class
  ev.push_back(bc);
  ev.push_back(simple(8, NGS_SYNTH_EVENT_STOP, 12345));        // unknown voice id
  Timed bt = simple(9, NGS_SYNTH_EVENT_STOP, 1);
  bt.ev.type = static_cast<ngs_synth_event_type>(77);         // unknown type
  ev.push_back(bt);
  Timed bz = simple(10, NGS_SYNTH_EVENT_SET_LATENT, 1);       // latent for a one-shot, no z
  ev.push_back(bz);
  Timed bg = simple(11, NGS_SYNTH_EVENT_SET_GAIN, 1);
  bg.ev.gain = -1.0f;                                          // negative gain
  ev.push_back(bg);
  Timed bv = one_shot(12, 0, 3);                               // voice id 0
  ev.push_back(bv);
  const std::vector<float> out = render(s, ev, frames, 64);
  EXPECT_EQ(0, std::memcmp(out.data(), good.data(), sizeof(float) * out.size()));
  // An offset outside the block and an out-of-order event.
  std::vector<float> buf(64);
  ngs_synth_event e2[2] = {one_shot(0, 7, 1).ev, one_shot(0, 8, 1).ev};
  e2[0].frame = 64;
  EXPECT_EQ(ngs_synth_process(s, e2, 1, nullptr, buf.data(), 64), NGS_STATUS_OK);
  e2[0].frame = 10;
  e2[1].frame = 3;
  EXPECT_EQ(ngs_synth_process(s, e2, 2, nullptr, buf.data(), 64), NGS_STATUS_OK);
  ngs_synth_stats st{};
  ASSERT_EQ(ngs_synth_get_stats(s, &st), NGS_STATUS_OK);
  EXPECT_EQ(st.events_dropped - st0.events_dropped, 9u);
  // A full post queue says so and counts it; nothing blocks.
  ngs_synth_params p = ngs_synth_default_params();
  p.queue_size = 4;
  ngs_synth *q = make(p);
  const ngs_synth_event st_ev = simple(0, NGS_SYNTH_EVENT_STOP_ALL, 0).ev;
  int ok = 0, full = 0;
  for (int i = 0; i < 10; ++i) {
    const ngs_status r = ngs_synth_post(q, &st_ev);
    ok += r == NGS_STATUS_OK;
    full += r == NGS_STATUS_CAPACITY;
  }
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(full, 6);
  ngs_synth_stats qs{};
  ngs_synth_get_stats(q, &qs);
  EXPECT_EQ(qs.queue_overflows, 6u);
  EXPECT_EQ(ngs_synth_post(q, &bg.ev), NGS_STATUS_INVALID_ARGUMENT);
  // Bad calls fail cleanly.
  EXPECT_EQ(ngs_synth_process(q, nullptr, 0, nullptr, buf.data(), 0), NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(ngs_synth_process(nullptr, nullptr, 0, nullptr, buf.data(), 4), NGS_STATUS_INVALID_ARGUMENT);
  ngs_synth_free(q);
  ngs_synth_free(s);
}

TEST_P(SynthTest, PostedEventsApplyAtTheNextBlock) {
  ngs_synth *a = make(), *b = make();
  const int64_t frames = 3 * info_.hop_size + info_.sample_length;
  const std::vector<float> ref = render(a, {one_shot(128, 1, 3)}, frames, 64);
  std::vector<float> out(static_cast<size_t>(frames));
  for (int64_t pos = 0; pos < frames; pos += 64) {
    if (pos == 128) {
      const ngs_synth_event e = one_shot(0, 1, 3).ev;
      ASSERT_EQ(ngs_synth_post(b, &e), NGS_STATUS_OK);
    }
    ASSERT_EQ(ngs_synth_process(b, nullptr, 0, nullptr, out.data() + pos,
                                static_cast<int>(std::min<int64_t>(64, frames - pos))),
              NGS_STATUS_OK);
  }
  EXPECT_EQ(0, std::memcmp(out.data(), ref.data(), sizeof(float) * out.size()));
  ngs_synth_free(a);
  ngs_synth_free(b);
}

// Posts from another thread while the audio thread processes: every accepted event is
// applied, every refused one counted as an overflow, nothing blocks or is lost.
TEST_P(SynthTest, ConcurrentPostsAreAllAppliedOrCounted) {
  ngs_synth_params p = ngs_synth_default_params();
  p.queue_size = 16;
  p.max_voices = 64;
  ngs_synth *s = make(p);
  const int total = 2000;
  std::atomic<int> accepted{0}, refused{0};
  std::atomic<bool> done{false};
  // Voice 1 plays throughout (started before the producer), so every SET_GAIN finds it.
  std::vector<float> buf(64);
  Timed start = free_voice(0, 1, random_z(1), 0, 1);
  start.ev.z = start.z.data();
  ASSERT_EQ(ngs_synth_process(s, &start.ev, 1, nullptr, buf.data(), 64), NGS_STATUS_OK);
  std::thread producer([&] {
    for (int i = 0; i < total; ++i) {
      Timed t = simple(0, NGS_SYNTH_EVENT_SET_GAIN, 1);
      t.ev.gain = 0.5f + 0.5f * (i & 1);
      const ngs_status r = ngs_synth_post(s, &t.ev);
      (r == NGS_STATUS_OK ? accepted : refused).fetch_add(1);
      if ((i & 63) == 0) std::this_thread::yield();
    }
    done = true;
  });
  while (!done) ASSERT_EQ(ngs_synth_process(s, nullptr, 0, nullptr, buf.data(), 64), NGS_STATUS_OK);
  producer.join();
  // Drain the queue, then reach the next hop point (where pending events apply).
  for (int i = 0; i < 2 * info_.hop_size / 64 + 2; ++i)
    ngs_synth_process(s, nullptr, 0, nullptr, buf.data(), 64);
  ngs_synth_stats st{};
  ngs_synth_get_stats(s, &st);
  EXPECT_EQ(accepted + refused, total);
  EXPECT_EQ(st.events_applied, static_cast<uint64_t>(accepted) + 1);  // + the START
  EXPECT_EQ(st.queue_overflows, static_cast<uint64_t>(refused));
  EXPECT_EQ(st.events_dropped, 0u);
  ngs_synth_free(s);
}

// max_voices 2: a third voice steals the oldest ONE-SHOT (not the older free voice); a
// steal is a stop with the default fade at the new voice's start.
TEST_P(SynthTest, StealingTakesOldestOneShotFirst) {
  ngs_synth_params p = ngs_synth_default_params();
  p.max_voices = 2;
  ngs_synth *s = make(p);
  p.max_voices = 8;
  ngs_synth *big = make(p);
  const int hop = info_.hop_size;
  std::vector<Timed> ev = {free_voice(1, 1, random_z(5), 0, 2), one_shot(hop, 2, 3),
                           one_shot(2 * hop + 5, 3, 4), one_shot(3 * hop + 9, 4, 6)};
  const int64_t frames = 4 * hop + info_.sample_length + hop;
  const std::vector<float> out = render(s, ev, frames, 64);
  // The same with explicit stops of the voices the policy picks: 2 at voice 3's start,
  // 3 at voice 4's start.
  std::vector<Timed> ev2 = ev;
  ev2.insert(ev2.begin() + 2, simple(2 * hop + 5, NGS_SYNTH_EVENT_STOP, 2));
  ev2.push_back(simple(3 * hop + 9, NGS_SYNTH_EVENT_STOP, 3));
  std::stable_sort(ev2.begin(), ev2.end(), [](const Timed &a, const Timed &b) { return a.frame < b.frame; });
  const std::vector<float> ref = render(big, ev2, frames, 64);
  EXPECT_EQ(0, std::memcmp(out.data(), ref.data(), sizeof(float) * out.size()));
  ngs_synth_stats st{};
  ngs_synth_get_stats(s, &st);
  EXPECT_EQ(st.voices_stolen, 2u);
  EXPECT_EQ(st.active_voices, 1);  // the free voice plays on
  ngs_synth_free(s);
  ngs_synth_free(big);
}

TEST_P(SynthTest, StopFadesLinearlyAndGainScales) {
  ngs_synth *s = make();
  const int lat = ngs_synth_latency(s), hop = info_.hop_size;
  const std::vector<float> z = random_z(8);
  const int64_t frames = 12 * hop;
  const std::vector<float> full = render(s, {free_voice(0, 1, z, 0, 4)}, frames, 64);
  // Stop at frame t with a fade of F frames: out = full * (1 - (i + 1) / F) from t + lat.
  const int64_t t = 5 * hop + 13;
  const int F = 200;
  ngs_synth_reset(s);
  const std::vector<float> out =
      render(s, {free_voice(0, 1, z, 0, 4), simple(t, NGS_SYNTH_EVENT_STOP, 1, F)}, frames, 64);
  for (int64_t i = 0; i < frames; ++i) {
    const int64_t k = i - (t + lat);
    const double w = k < 0 ? 1.0 : k >= F ? 0.0 : 1.0 - (k + 1.0) / F;
    ASSERT_NEAR(out[i], full[i] * w, 1e-6 + 1e-5 * std::fabs(full[i])) << "frame " << i;
  }
  ngs_synth_stats st{};
  ngs_synth_get_stats(s, &st);
  EXPECT_EQ(st.active_voices, 0);
  // Gain: a voice at gain 0.5 is half the voice at gain 1.
  ngs_synth_reset(s);
  Timed h = free_voice(0, 1, z, 0, 4);
  h.ev.gain = 0.5f;
  const std::vector<float> half = render(s, {h}, frames, 64);
  for (int64_t i = 0; i < frames; ++i) ASSERT_EQ(half[i], full[i] * 0.5f);
  ngs_synth_free(s);
}

// START with an id that is playing = STOP of that voice (default fade) + a new voice;
// STOP_ALL = a STOP of every voice; a START fade-in ramps from 0.
TEST_P(SynthTest, IdReuseStopAllAndFadeInAreTheirEquivalents) {
  ngs_synth *a = make(), *b = make();
  const int hop = info_.hop_size, lat = ngs_synth_latency(a);
  const std::vector<float> z1 = random_z(31), z2 = random_z(32);
  const int64_t t = 3 * hop + 11, t2 = 7 * hop + 2, frames = 10 * hop;
  const std::vector<float> oa = render(a, {free_voice(0, 1, z1, 0, 1), free_voice(t, 1, z2, 0, 2),
                                           one_shot(t + 5, 3, 9), simple(t2, NGS_SYNTH_EVENT_STOP_ALL, 0, 50)},
                                       frames, 64);
  const std::vector<float> ob =
      render(b, {free_voice(0, 1, z1, 0, 1), simple(t, NGS_SYNTH_EVENT_STOP, 1), free_voice(t, 2, z2, 0, 2),
                 one_shot(t + 5, 3, 9), simple(t2, NGS_SYNTH_EVENT_STOP, 2, 50),
                 simple(t2, NGS_SYNTH_EVENT_STOP, 3, 50)},
             frames, 64);
  EXPECT_EQ(0, std::memcmp(oa.data(), ob.data(), sizeof(float) * oa.size()));
  // Fade-in over F frames: out = full * (k + 1) / F.
  ngs_synth_reset(a);
  const std::vector<float> full = render(a, {free_voice(0, 1, z1, 0, 1)}, 4 * hop, 64);
  ngs_synth_reset(a);
  Timed fi = free_voice(0, 1, z1, 0, 1);
  const int F = 100;
  fi.ev.fade = F;
  const std::vector<float> in = render(a, {fi}, 4 * hop, 64);
  for (int64_t i = 0; i < 4 * hop; ++i) {
    const int64_t k = i - lat;
    const double w = k < 0 ? 0.0 : k >= F ? 1.0 : (k + 1.0) / F;
    ASSERT_NEAR(in[i], full[i] * w, 1e-6 + 1e-5 * std::fabs(full[i])) << "frame " << i;
  }
  ngs_synth_free(a);
  ngs_synth_free(b);
}

TEST_P(SynthTest, ResetRestartsIdentically) {
  ngs_synth *s = make();
  const std::vector<Timed> ev = {one_shot(3, 1, 1), free_voice(40, 2, random_z(2), 0, 3)};
  const int64_t frames = info_.sample_length + 1000;
  const std::vector<float> a = render(s, ev, frames, 128);
  ngs_synth_reset(s);
  const std::vector<float> b = render(s, ev, frames, 100);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * a.size()));
  ngs_synth_free(s);
}

// Converts x (rate in_rate) to out_rate in one call, as the synth's converter of that
// type: a fresh ngs polyphase converter over the whole stream, or libsamplerate's
// src_simple. Returns the output count.
long convert_whole(const float *x, long n, float *y, long max_out, int in_rate, int out_rate,
                   int resampler) {
  if (resampler == NGS_SYNTH_RESAMPLER_POLYPHASE) {
    ngs::cpu::Polyphase r(in_rate, out_rate, static_cast<int>(n));
    long used = 0, gen = 0;
    r.process(x, n, y, max_out, &used, &gen);
    EXPECT_EQ(used, n);
    return gen;
  }
  SRC_DATA d{};
  d.data_in = x;
  d.input_frames = n;
  d.data_out = y;
  d.output_frames = max_out;
  d.src_ratio = static_cast<double>(out_rate) / in_rate;
  EXPECT_EQ(src_simple(&d, resampler, 1), 0);
  return d.output_frames_gen;
}

// Host rates other than the model's: the output equals the offline one-shot placed at its
// engine time and converted by the same converter (the ngs polyphase converter, the
// default, and libsamplerate's SRC_SINC_MEDIUM_QUALITY), and the reported latency is its
// measured delay.
TEST_P(SynthTest, ResampledRatesEqualOfflineThroughTheSameConverter) {
  for (int resampler : {NGS_SYNTH_RESAMPLER_POLYPHASE, 1})
  for (int rate : {48000, 44100, 8000, 192000}) {
    ngs_synth_params p = ngs_synth_default_params();
    EXPECT_EQ(p.resampler, NGS_SYNTH_RESAMPLER_POLYPHASE);
    p.resampler = resampler;
    p.sample_rate = rate;
    p.max_block = 512;
    ngs_synth *s = make(p);
    const int sr = info_.sample_rate;
    // The polyphase converter where both phase tables fit 64 Ki floats (every pair here
    // but 22.05 <-> 192 kHz), else SRC_SINC_MEDIUM_QUALITY.
    const bool fits = ngs::cpu::Polyphase::table_floats(sr, rate) <= 65536 &&
                      ngs::cpu::Polyphase::table_floats(rate, sr) <= 65536;
    ASSERT_EQ(s->polyphase, resampler == NGS_SYNTH_RESAMPLER_POLYPHASE && fits) << "rate " << rate;
    if (sr == 16000) EXPECT_TRUE(fits) << "rate " << rate;
    const int conv_type = s->polyphase ? NGS_SYNTH_RESAMPLER_POLYPHASE : 1;
    const int lat = ngs_synth_latency(s);
    const double r = static_cast<double>(info_.sample_rate) / rate;  // model / host
    const int64_t f0 = 123;
    const int64_t frames = f0 + lat + static_cast<int64_t>(info_.sample_length / r) + 2000;
    const std::vector<float> out = render(s, {one_shot(f0, 1, 21)}, frames, 512);
    // Reference: the engine's model-rate stream, converted in one call.
    // Engine time of the event: the nearest model-rate sample, plus the synth's offset.
    const int64_t M = (2 * f0 * info_.sample_rate + rate) / (2 * rate) + s->D + s->lat_ev;
    const std::vector<float> shot = offline_one_shot(21, 0);
    std::vector<float> model_stream(static_cast<size_t>(M + frames * r) + shot.size() + 8192, 0.0f);
    std::copy(shot.begin(), shot.end(), model_stream.begin() + M);
    std::vector<float> ref(static_cast<size_t>(model_stream.size() / r) + 4096, 0.0f);
    const long d_gen = convert_whole(model_stream.data(), static_cast<long>(model_stream.size()), ref.data(), static_cast<long>(ref.size()), sr, rate, conv_type);
    ASSERT_GE(d_gen, frames);
    EXPECT_LE(ngs::test::rel_l2(out.data(), ref.data(), static_cast<size_t>(frames)), kTol)
        << "rate " << rate << " resampler " << resampler;
    // Measured delay: the lag of the best match of the output with the one-shot converted
    // alone (from host frame 0).
    std::vector<float> alone(static_cast<size_t>(shot.size() / r) + 4096, 0.0f);
    const long d2_gen = convert_whole(shot.data(), static_cast<long>(shot.size()), alone.data(), static_cast<long>(alone.size()), sr, rate, conv_type);
    const int64_t n = std::min<int64_t>(d2_gen, frames - f0 - lat - 8);
    int64_t best = -1;
    double best_v = -1e300;
    for (int64_t lag = lat - 8; lag <= lat + 8; ++lag) {
      double c = 0;
      for (int64_t i = 0; i < n; ++i) c += static_cast<double>(out[f0 + lag + i]) * alone[i];
      if (c > best_v) {
        best_v = c;
        best = lag;
      }
    }
    // Events are placed on the nearest model-rate sample: within half a model sample.
    EXPECT_NEAR(static_cast<double>(best), lat, 0.5 / r + 1.0) << "rate " << rate << " resampler " << resampler;

    // Resynthesis at this rate: the input through the input converter, encoded and
    // decoded offline, through the output converter.
    ngs_synth_reset(s);
    const int ng5 = 5;
    const size_t seg = ngs_model_audio_length(model_, ng5);
    // Late enough that the polyphase input converter was skipped before (no voice took
    // input) and restarts for this voice.
    const int64_t h0 = 3077;  // 5 frames into a block: the restart needs the history
    const int64_t rframes =
        h0 + ngs_synth_input_latency(s) + static_cast<int64_t>(seg / r) + 2000;
    const std::vector<float> in = random_audio(static_cast<size_t>(rframes), 3);
    Timed rs{h0, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
    rs.ev.voice = 2;
    rs.ev.kind = NGS_SYNTH_VOICE_RESYNTH;
    rs.ev.seed = 4;
    rs.ev.path_grains = ng5;
    const std::vector<float> rout = render(s, {rs}, rframes, 512, &in);
    std::vector<float> min(static_cast<size_t>(rframes * r) + 4096, 0.0f);
    const long di_gen = convert_whole(in.data(), static_cast<long>(in.size()), min.data(), static_cast<long>(min.size()), rate, sr, conv_type);
    const int64_t m0 = (2 * h0 * info_.sample_rate + rate) / (2 * rate);  // without D
    ASSERT_GE(di_gen, m0 + static_cast<int64_t>(seg));
    std::vector<float> mu(static_cast<size_t>(ng5) * info_.z_dim);
    int ng = 0;
    ASSERT_EQ(ngs_encode(ctx_, min.data() + m0, seg, ngs_encode_default_params(), mu.data(),
                         nullptr, nullptr, ng5, &ng),
              NGS_STATUS_OK);
    const std::vector<float> dec = offline_decode(mu, ng5, 4, 0);
    const int64_t E = m0 + s->D + s->lat_in;  // engine time of the first output sample
    std::vector<float> rstream(static_cast<size_t>(E + rframes * r) + dec.size() + 8192, 0.0f);
    std::copy(dec.begin(), dec.end(), rstream.begin() + E);
    std::vector<float> rref(static_cast<size_t>(rstream.size() / r) + 4096, 0.0f);
    const long dr_gen = convert_whole(rstream.data(), static_cast<long>(rstream.size()), rref.data(), static_cast<long>(rref.size()), sr, rate, conv_type);
    EXPECT_LE(ngs::test::rel_l2(rout.data(), rref.data(), static_cast<size_t>(rframes)), kTol)
        << "resynth, rate " << rate << " resampler " << resampler;
    ngs_synth_free(s);
  }
}

// The polyphase input converter runs only while a voice may take input; restarted for a
// resynth voice from its history, it gives that voice exactly the input of a converter
// that never stopped (here kept running by a silent resynth voice): bit for bit.
TEST_P(SynthTest, SkippedInputConverterRestartsExactly) {
  for (int rate : {48000, 44100}) {
    for (int block : {64, 333}) {
      ngs_synth_params p = ngs_synth_default_params();
      p.sample_rate = rate;
      p.max_block = 512;
      ngs_synth *a = make(p), *b = make(p);
      ASSERT_TRUE(a->polyphase);
      const int64_t x = 4000 + block / 3;
      Timed late{x, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
      late.ev.voice = 2;
      late.ev.kind = NGS_SYNTH_VOICE_RESYNTH;
      late.ev.seed = 8;
      late.ev.path_grains = 6;
      Timed silent{0, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
      silent.ev.voice = 1;
      silent.ev.kind = NGS_SYNTH_VOICE_RESYNTH;
      silent.ev.gain = 0.0f;
      const int64_t frames = x + ngs_synth_input_latency(a) + 12 * info_.hop_size * rate / info_.sample_rate;
      const std::vector<float> in = random_audio(static_cast<size_t>(frames), static_cast<uint32_t>(rate + block));
      const std::vector<float> ya = render(a, {late}, frames, block, &in);
      const std::vector<float> yb = render(b, {silent, late}, frames, block, &in);
      double e = 0;
      for (float v : ya) e += static_cast<double>(v) * v;
      EXPECT_GT(e, 0.0);
      EXPECT_EQ(0, std::memcmp(ya.data(), yb.data(), sizeof(float) * ya.size()))
          << "rate " << rate << " block " << block;
      EXPECT_TRUE(b->in_running);
      // a's converter stopped again once its voice had ended.
      std::vector<float> more(static_cast<size_t>(block) + 4 * info_.sample_length * rate / info_.sample_rate);
      render(a, {}, static_cast<int64_t>(more.size()), block, &more);
      EXPECT_FALSE(a->in_running) << "rate " << rate << " block " << block;
      ngs_synth_free(a);
      ngs_synth_free(b);
    }
  }
}

// A backend wrapper (the synth's view of "the model's backend"): its sessions delegate to
// the model's CPU sessions and count the streaming calls; with streams = false the
// streaming calls report kUnsupported, as a backend without them does.
struct Counts {
  std::atomic<long> rnn_step{0}, rnn_start{0}, decode_grains{0}, encode_grains{0}, stage_calls{0};
};
class WrapSession final : public ngs::Session {
 public:
  WrapSession(std::unique_ptr<ngs::Session> in, bool streams, bool encodes, Counts &c)
      : in_(std::move(in)), streams_(streams), encodes_(encodes), c_(c) {}
  void encoder(const float *a, int n, float *mu, float *lv) override { in_->encoder(a, n, mu, lv); }
  void encode_grains(const float *const *src, const unsigned char *f, const unsigned char *l, int B,
                     float *mu) override {
    if (!encodes_) throw ngs::Error(ngs::kUnsupported, "test: no encode_grains");
    ++c_.encode_grains;
    in_->encode_grains(src, f, l, B, mu);
  }
  void latent_decode(const float *e, int ci, int n, float *z) override { in_->latent_decode(e, ci, n, z); }
  void latent_encode(const float *z, int n, float *m, float *l) override { in_->latent_encode(z, n, m, l); }
  void rnn_plan(int v) override {
    if (!streams_) throw ngs::Error(ngs::kUnsupported, "test: no rnn_plan");
    in_->rnn_plan(v);
  }
  void rnn_start(int slot, const float *e, int ci) override {
    ++c_.rnn_start;
    in_->rnn_start(slot, e, ci);
  }
  void rnn_step(const int *slots, int B, float *z, int ldz) override {
    ++c_.rnn_step;
    in_->rnn_step(slots, B, z, ldz);
  }
  void decode(const float *z, int n, ngs::NoiseKey k, float *a) override { in_->decode(z, n, k, a); }
  void decoder_mlp(const float *z, int n, float *S) override {
    ++c_.stage_calls;
    in_->decoder_mlp(z, n, S);
  }
  void noise_filter(const float *S, int n, int g0, int nt, ngs::NoiseKey k, float *y) override {
    ++c_.stage_calls;
    in_->noise_filter(S, n, g0, nt, k, y);
  }
  void overlap_add(const float *y, int n, float *a, bool o) override { in_->overlap_add(y, n, a, o); }
  void decode_grains(const float *z, int B, const ngs::GrainSpec *spec, float *y) override {
    if (!streams_) throw ngs::Error(ngs::kUnsupported, "test: no decode_grains");
    ++c_.decode_grains;
    in_->decode_grains(z, B, spec, y);
  }
  void sample(const float *e, int ci, int n, ngs::NoiseKey k, float *a) override { in_->sample(e, ci, n, k, a); }

 private:
  std::unique_ptr<ngs::Session> in_;
  bool streams_, encodes_;
  Counts &c_;
};
class WrapBackend final : public ngs::Backend {
 public:
  WrapBackend(std::unique_ptr<ngs::Backend> in, bool streams, bool encodes, Counts &c)
      : in_(std::move(in)), streams_(streams), encodes_(encodes), c_(c) {}
  const char *name() const override { return "wrap"; }
  bool has_latent() const override { return in_->has_latent(); }
  std::unique_ptr<ngs::Session> create_session(int g, int t, ngs::Precision p) override {
    return std::make_unique<WrapSession>(in_->create_session(g, t, p), streams_, encodes_, c_);
  }
  std::unique_ptr<ngs::Backend> release() { return std::move(in_); }

 private:
  std::unique_ptr<ngs::Backend> in_;
  bool streams_, encodes_;
  Counts &c_;
};

// The synth runs on the model's backend when that streams (rnn_plan / rnn_start /
// rnn_step, encode_grains, decode_grains: every call of the synth's work goes there), and
// on a CPU backend of its own when it reports kUnsupported (for encode_grains alone: only
// the resynth encoding on the CPU): the same output bit for bit every way (all voice
// kinds; native and 48 kHz, spread, 1 and 3 threads).
TEST_P(SynthTest, RunsOnTheModelsBackendOrFallsBackToCpu) {
  const int hop = info_.hop_size;
  std::vector<Timed> ev;
  if (info_.has_latent_model)
    for (int i = 0; i < 5; ++i) ev.push_back(one_shot(7 + i * hop / 2, 1 + i, 50 + i));
  ev.push_back(free_voice(30, 10, random_z(3), 6, 9));
  Timed rs{2 * hop + 3, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
  rs.ev.voice = 11;
  rs.ev.kind = NGS_SYNTH_VOICE_RESYNTH;
  rs.ev.path_grains = 5;
  ev.push_back(rs);
  std::sort(ev.begin(), ev.end(), [](const Timed &a, const Timed &b) { return a.frame < b.frame; });
  for (int rate : {0, 48000})
    for (int spread : {0, 1})
      for (int threads : {1, 3}) {
        ngs_synth_params p = ngs_synth_default_params();
        p.sample_rate = rate;
        p.spread = spread;
        p.n_threads = threads;
        p.max_block = 64;
        const int64_t frames = 3 * info_.sample_length * (rate ? rate / info_.sample_rate + 1 : 1);
        const std::vector<float> in = random_audio(static_cast<size_t>(frames), 77);
        ngs_synth *s0 = make(p);
        ASSERT_TRUE(s0->backend == nullptr);  // the model's CPU backend streams: no own backend
        const std::vector<float> ref = render(s0, ev, frames, 64, &in);
        ngs_synth_free(s0);
        for (int mode : {0, 1, 2}) {  // streams and encodes / neither / streams only
          const bool streams = mode != 1, encodes = mode == 0;
          Counts c;
          auto *wrap = new WrapBackend(std::move(model_->compute), streams, encodes, c);
          model_->compute.reset(wrap);
          ngs_synth *s = make(p);
          const std::vector<float> out = render(s, ev, frames, 64, &in);
          const std::string what = "rate " + std::to_string(rate) + " spread " + std::to_string(spread) +
                                   " threads " + std::to_string(threads) + " mode " + std::to_string(mode);
          EXPECT_EQ(0, std::memcmp(out.data(), ref.data(), sizeof(float) * out.size())) << what;
          if (streams) {
            EXPECT_EQ(s->backend == nullptr, encodes) << what;
            if (info_.has_latent_model) EXPECT_GT(c.rnn_step.load(), 0) << what;
            if (encodes) EXPECT_GT(c.encode_grains.load(), 0) << what;
            else EXPECT_EQ(c.encode_grains.load(), 0) << what;
            EXPECT_GT(c.decode_grains.load() + c.stage_calls.load(), 0) << what;
          } else {
            EXPECT_TRUE(s->backend != nullptr) << what;
            EXPECT_EQ(c.rnn_step.load() + c.rnn_start.load() + c.decode_grains.load() +
                          c.encode_grains.load() + c.stage_calls.load(), 0) << what;
          }
          ngs_synth_free(s);
          std::unique_ptr<ngs::Backend> inner = wrap->release();
          model_->compute = std::move(inner);
        }
      }
}

// params.precision = FAST: the synth's sessions are the backend's fast ones (bf16
// products with fp32 sums), so one-shots and free voices match the offline fast-mode
// renders within the fast tolerances (test_util.h), in both modes of the pipeline; the
// fp32 synth is the default and an unknown precision is refused.
TEST_P(SynthTest, FastPrecisionMatchesOfflineFastRenders) {
  ngs_context_params cp = ngs_context_default_params();
  cp.precision = NGS_PRECISION_FAST;
  ngs_context *fctx = nullptr;
  ASSERT_EQ(ngs_context_init(model_, cp, &fctx), NGS_STATUS_OK) << ngs_last_error();
  {
    ngs_synth_params bad = ngs_synth_default_params();
    const int seven = 7;
    std::memcpy(&bad.precision, &seven, sizeof seven);  // as a C caller could store it
    ngs_synth *s = nullptr;
    EXPECT_EQ(ngs_synth_init(model_, bad, &s), NGS_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(s, nullptr);
    EXPECT_EQ(ngs_synth_default_params().precision, NGS_PRECISION_FP32);
  }
  if (ngs_context_precision(fctx) != NGS_PRECISION_FAST) {
    ngs_context_free(fctx);
    GTEST_SKIP() << "no fast path on this CPU (AVX512_BF16)";
  }
  const uint32_t seed = std::random_device{}();
  std::mt19937 rng(seed);
  const std::string what0 = GetParam() + " seed " + std::to_string(seed);
  const uint64_t key = rng() % 100000;
  const std::vector<float> z1 = random_z(rng() % 1000);
  const int n_free = 6;
  // Offline renders, fp32 and fast.
  auto offline = [&](ngs_context *c, uint32_t seq, bool one_shot) {
    if (one_shot) {
      ngs_sample_params sp = ngs_sample_default_params();
      sp.class_index = cls_;
      sp.temperature = 0.9f;
      sp.seed = key;
      sp.count = static_cast<int>(seq) + 1;
      std::vector<float> a(info_.sample_length * sp.count, std::nanf(""));
      EXPECT_EQ(ngs_sample(c, sp, a.data(), a.size()), NGS_STATUS_OK) << ngs_last_error();
      return std::vector<float>(a.begin() + seq * info_.sample_length, a.end());
    }
    std::vector<float> zs;
    for (int g = 0; g < n_free; ++g) zs.insert(zs.end(), z1.begin(), z1.end());
    std::vector<float> a(ngs_model_audio_length(model_, n_free), std::nanf(""));
    ngs_decode_params dp = ngs_decode_default_params();
    dp.seed = key;
    dp.sequence = 7;
    EXPECT_EQ(ngs_decode(c, zs.data(), n_free, dp, a.data(), a.size()), NGS_STATUS_OK) << ngs_last_error();
    return a;
  };
  for (int spread : {0, 1}) {
    const std::string what = what0 + " spread " + std::to_string(spread);
    ngs_synth_params p = ngs_synth_default_params();
    p.spread = spread;
    p.max_block = 64;
    p.precision = NGS_PRECISION_FAST;
    ngs_synth *s = make(p);
    ngs_synth_params p32 = p;
    p32.precision = NGS_PRECISION_FP32;
    ngs_synth *s32 = make(p32);
    const int lat = ngs_synth_latency(s);
    std::vector<Timed> ev;
    const int64_t f0 = 5 + rng() % 64, f1 = f0 + info_.sample_length / 3 + rng() % 64, f2 = 3 + rng() % 200;
    if (info_.has_latent_model) ev = {one_shot(f0, 1, key, 0), one_shot(f1, 2, key, 2)};
    ev.push_back(free_voice(f2, 3, z1, n_free, key, 7));
    std::sort(ev.begin(), ev.end(), [](const Timed &a, const Timed &b) { return a.frame < b.frame; });
    const int64_t frames = f1 + lat + info_.sample_length + 2 * info_.hop_size;
    const std::vector<float> out = render(s, ev, frames, 64), out32 = render(s32, ev, frames, 64);
    for (ngs_context *c : {fctx, ctx_}) {
      std::vector<float> ref(out.size(), 0.0f);
      auto place = [&](const std::vector<float> &a, int64_t at) {
        for (size_t i = 0; i < a.size(); ++i) ref[static_cast<size_t>(at + lat) + i] += a[i];
      };
      if (info_.has_latent_model) {
        place(offline(c, 0, true), f0);
        place(offline(c, 2, true), f1);
      }
      place(offline(c, 7, false), f2);
      const double e = ngs::test::rel_l2(out.data(), ref.data(), out.size());
      const double e32 = ngs::test::rel_l2(out32.data(), ref.data(), out.size());
      if (c == fctx) {
        // Against the offline fast renders: both within the fast tolerance of fp32.
        EXPECT_LE(e, ngs::test::kTolFastSample) << what;
      } else {
        EXPECT_LE(e, ngs::test::kTolFastSample) << what;  // fast vs fp32: the fast tolerance
        EXPECT_LE(e32, kTol) << what;                     // the fp32 synth: as before
        EXPECT_GT(e, 1e-6) << what;                       // fast really ran
      }
    }
    ngs_synth_free(s);
    ngs_synth_free(s32);
  }
  ngs_context_free(fctx);
}

// The CPU session's streaming calls in parts (spread mode runs them in different host
// blocks): rnn_start_part / rnn_step_part and decoder_mlp_part, each part in random
// batches of the voices (or rows) in random order, give the same bits as rnn_start /
// rnn_step with every matrix in one piece and decoder_mlp, for part sizes that cut every
// matrix into chunks (GRU, 2-layer LSTM, 3-layer GRU), and the default size.
TEST_P(SynthTest, StreamingPartsGiveTheBitsOfTheWholeCalls) {
  const ngs::WaveformConfig &wc = model_->wc();
  std::mt19937 rng(20261202u + static_cast<uint32_t>(GetParam().size()));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (long part_macs : {300L, 2000L, ngs::cpu::kStreamPartMacs}) {
    const std::string what = GetParam() + " part_macs " + std::to_string(part_macs);
    // The reference: every matrix in one piece (the unsliced step, as before the parts).
    auto whole_b = ngs::cpu::make_cpu_backend(model_->file->waveform,
                                              model_->has_latent() ? &model_->file->latent : nullptr,
                                              1L << 40);
    auto parts_b = ngs::cpu::make_cpu_backend(model_->file->waveform,
                                              model_->has_latent() ? &model_->file->latent : nullptr, part_macs);
    const int V = 6;
    // A: whole calls, matrices in one piece; P: the parts; C: whole calls on P's chunks.
    auto A = whole_b->create_session(V, 1), P = parts_b->create_session(V, 1),
         C = parts_b->create_session(V, 1);
    // Random batches of the items 0..n-1 in random order (each item once).
    auto batches = [&](int n) {
      std::vector<int> order(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<std::vector<int>> out;
      for (size_t i = 0; i < order.size();) {
        const size_t len = std::min(order.size() - i, static_cast<size_t>(1 + rng() % 3));
        out.emplace_back(order.begin() + static_cast<long>(i), order.begin() + static_cast<long>(i + len));
        i += len;
      }
      return out;
    };
    if (model_->has_latent()) {
      const ngs::LatentConfig &lc = model_->lc();
      int cost[ngs::Session::kMaxRnnParts];
      const int ns = P->rnn_parts(true, cost), np = P->rnn_parts(false, cost);
      if (part_macs == 300) {
        EXPECT_GT(ns, 2) << what;
        EXPECT_GT(np, 2 * lc.n_rnn) << what;
      }
      A->rnn_plan(V);
      P->rnn_plan(V);
      C->rnn_plan(V);
      for (int v = 0; v < V; ++v) {
        std::vector<float> e(static_cast<size_t>(lc.e_dim));
        for (float &x : e) x = nd(rng);
        const int cls = lc.n_conds > 0 ? static_cast<int>(rng() % lc.n_conds) : -1;
        A->rnn_start(v, e.data(), cls);
        C->rnn_start(v, e.data(), cls);
        for (int q = 0; q < ns; ++q) P->rnn_start_part(q, v, q == 0 ? e.data() : nullptr, cls);
      }
      const int zd = lc.z_dim;
      std::vector<int> all(V);
      for (int v = 0; v < V; ++v) all[static_cast<size_t>(v)] = v;
      for (int step = 0; step < 5; ++step) {
        std::vector<float> za(static_cast<size_t>(V) * zd, std::nanf("")), zp = za, zb(za.size());
        A->rnn_step(all.data(), V, za.data(), zd);
        std::vector<float> zc(za.size(), std::nanf(""));
        C->rnn_step(all.data(), V, zc.data(), zd);
        ASSERT_EQ(0, std::memcmp(za.data(), zc.data(), sizeof(float) * za.size())) << what << " whole, step " << step;
        for (int q = 0; q < np; ++q)
          for (const std::vector<int> &b : batches(V)) {
            std::fill(zb.begin(), zb.end(), std::nanf(""));
            P->rnn_step_part(q, b.data(), static_cast<int>(b.size()), zb.data(), zd);
            if (q + 1 == np)
              for (size_t i = 0; i < b.size(); ++i)
                std::memcpy(zp.data() + static_cast<size_t>(b[i]) * zd, zb.data() + i * zd, sizeof(float) * zd);
          }
        ASSERT_EQ(0, std::memcmp(za.data(), zp.data(), sizeof(float) * za.size())) << what << " step " << step;
      }
    }
    // The decoder MLP.
    int cost[ngs::Session::kMaxRnnParts];
    const int nm = P->decoder_mlp_parts(cost);
    if (part_macs == 300) EXPECT_GT(nm, 2) << what;
    const int n = 5, F = wc.filter_size();
    const size_t ld = P->decoder_mlp_carry_floats() + 3;
    std::vector<float> z(static_cast<size_t>(n) * wc.z_dim);
    for (float &x : z) x = nd(rng);
    std::vector<float> sa(static_cast<size_t>(n) * F, std::nanf("")), sp = sa, carry(n * ld, std::nanf(""));
    A->decoder_mlp(z.data(), n, sa.data());
    std::vector<float> rows_z(z.size()), rows_s(sa.size()), rows_c(carry.size());
    for (int q = 0; q < nm; ++q)
      for (const std::vector<int> &b : batches(n)) {
        // Gather the batch's rows (z, carry, S), run the part, scatter them back.
        for (size_t i = 0; i < b.size(); ++i) {
          std::memcpy(rows_z.data() + i * wc.z_dim, z.data() + static_cast<size_t>(b[i]) * wc.z_dim, sizeof(float) * wc.z_dim);
          std::memcpy(rows_c.data() + i * ld, carry.data() + static_cast<size_t>(b[i]) * ld, sizeof(float) * ld);
          std::memcpy(rows_s.data() + i * F, sp.data() + static_cast<size_t>(b[i]) * F, sizeof(float) * F);
        }
        P->decoder_mlp_part(q, rows_z.data(), static_cast<int>(b.size()), rows_c.data(), ld, rows_s.data());
        for (size_t i = 0; i < b.size(); ++i) {
          std::memcpy(carry.data() + static_cast<size_t>(b[i]) * ld, rows_c.data() + i * ld, sizeof(float) * ld);
          std::memcpy(sp.data() + static_cast<size_t>(b[i]) * F, rows_s.data() + i * F, sizeof(float) * F);
        }
      }
    EXPECT_EQ(0, std::memcmp(sa.data(), sp.data(), sizeof(float) * sa.size())) << what;
  }
}

// A model without the sequence VAE: free and resynth voices play, one-shots are dropped.
TEST_P(SynthTest, WaveformOnlyModelDropsOneShots) {
  const std::string path = ngs::test::fixture_path(GetParam(), "model_waveform_only.safetensors");
  if (!ngs::test::file_exists(path)) GTEST_SKIP() << "fixture missing: " << path;
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = NGS_BACKEND_CPU;
  ngs_model *wm = nullptr;
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), mp, &wm), NGS_STATUS_OK) << ngs_last_error();
  ngs_synth *s = nullptr;
  ASSERT_EQ(ngs_synth_init(wm, ngs_synth_default_params(), &s), NGS_STATUS_OK) << ngs_last_error();
  const int lat = ngs_synth_latency(s), n = 4;
  const std::vector<float> z1 = random_z(17);
  std::vector<float> zs;
  for (int g = 0; g < n; ++g) zs.insert(zs.end(), z1.begin(), z1.end());
  const int64_t frames = 9 + lat + ngs_model_audio_length(model_, n) + 50;
  Timed os = one_shot(3, 1, 2);
  os.ev.class_index = NGS_CLASS_NONE;
  const std::vector<float> out = render(s, {os, free_voice(9, 2, z1, n, 6, 0)}, frames, 64);
  expect_placed(out, offline_decode(zs, n, 6, 0), 9 + lat);
  ngs_synth_stats st{};
  ngs_synth_get_stats(s, &st);
  EXPECT_EQ(st.events_dropped, 1u);
  EXPECT_EQ(ngs_synth_post(s, &os.ev), NGS_STATUS_INVALID_ARGUMENT);
  ngs_synth_free(s);
  ngs_model_free(wm);
}

TEST_P(SynthTest, InitRejectsBadParams) {
  ngs_synth *s = reinterpret_cast<ngs_synth *>(1);
  ngs_synth_params p = ngs_synth_default_params();
  p.sample_rate = 7999;
  EXPECT_EQ(ngs_synth_init(model_, p, &s), NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(s, nullptr);
  p = ngs_synth_default_params();
  p.max_voices = 0;
  EXPECT_EQ(ngs_synth_init(model_, p, &s), NGS_STATUS_INVALID_ARGUMENT);
  p = ngs_synth_default_params();
  p.max_block = 0;
  EXPECT_EQ(ngs_synth_init(model_, p, &s), NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(ngs_synth_init(nullptr, ngs_synth_default_params(), &s), NGS_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ngs_last_error()), "");
}

// The synth's worker pool: every item of every job runs exactly once, whoever claims it;
// workers do take items (the caller is slowed down so they get the chance).
TEST(SynthPool, EveryItemRunsExactlyOnce) {
  ngs::synth::RtPool pool(4);
  struct Ctx {
    std::atomic<int> count[64];
    std::atomic<int> by_workers{0};
  } c;
  long total = 0;
  for (int job = 0; job < 3000; ++job) {
    const int n = 1 + job % 64;
    for (int i = 0; i < n; ++i) c.count[i].store(0);
    pool.run(
        [](void *ctx, int item, int part) {
          Ctx &k = *static_cast<Ctx *>(ctx);
          k.count[item].fetch_add(1);
          if (part > 0) k.by_workers.fetch_add(1);
          else for (volatile int w = 0; w < 2000; w = w + 1) {
          }
        },
        &c, n);
    for (int i = 0; i < n; ++i) ASSERT_EQ(c.count[i].load(), 1) << "job " << job << " item " << i;
    total += n;
  }
  EXPECT_GT(c.by_workers.load(), 0);
  EXPECT_LT(c.by_workers.load(), total);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SynthTest, ::testing::Values("gru16k", "lstm22k", "noola"),
                         [](const auto &info) { return info.param; });

}  // namespace
