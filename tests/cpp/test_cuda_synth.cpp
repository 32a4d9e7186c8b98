// The real-time synth (ngs_synth_*, docs/SYNTH.md) running entirely on the CUDA backend
// (issue 15): the golden fixture models opened with NGS_BACKEND_CPU and NGS_BACKEND_CUDA,
// the same events (one-shots of several classes and seeds at sample-accurate offsets, a
// free voice gliding between latent targets, a live-resynthesis voice over an input
// signal, a stop, voice stealing) rendered at block sizes 64 and 333, spread off and on,
// the model's rate and 48 kHz, 1 and 2 synth threads: the outputs agree within 1e-5
// relative L2, the synth made no CPU session of its own (every stage on the model's CUDA
// sessions), and in the emulation the RNN step, encoder and decoder kernels ran while it
// played and nothing was captured (planned) after init. Also CudaSession::encode_grains
// against the CPU's, row by row. Outputs NaN-poisoned first, fresh random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "cuda_backend.cuh"
#include "engine.h"
#include "ngs/ngs.h"
#include "synth.h"
#include "synth_render.h"
#include "test_cuda_util.h"

using ngs::test::kTolF32;
using ngs::test::poisoned;
using ngs::test::rel_l2;

namespace {

struct Model {
  ngs_model *m = nullptr;
  ngs_model_info info{};
  ~Model() { ngs_model_free(m); }
};

void open(const std::string &path, ngs_backend backend, Model &h) {
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = backend;
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), mp, &h.m), NGS_STATUS_OK) << ngs_last_error();
  ASSERT_EQ(ngs_model_get_info(h.m, &h.info), NGS_STATUS_OK);
  ASSERT_EQ(h.info.backend, backend);
}

using Timed = ngs::test::TimedEvent;

std::vector<float> random_vec(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float &x : v) x = nd(rng);
  return v;
}

// The events of one run (host frames at rate `rate`; hop_host = the model's hop there):
// five one-shots of cycling classes and seeds (the fifth steals with max_voices 4), a free
// voice with two latent targets, a resynth voice, a stop.
std::vector<Timed> make_events(const ngs_model_info &info, int hop_host, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> jitter(0, hop_host - 1);
  const int nc = info.n_classes;
  std::vector<Timed> ev;
  auto start = [&](int64_t frame, int32_t voice, ngs_synth_voice_kind kind) {
    Timed t{frame, ngs_synth_default_event(NGS_SYNTH_EVENT_START), {}};
    t.ev.voice = voice;
    t.ev.kind = kind;
    return t;
  };
  for (int i = 0; i < 5; ++i) {
    Timed t = start(3 + i * hop_host + jitter(rng), 1 + i, NGS_SYNTH_VOICE_ONE_SHOT);
    t.ev.class_index = nc > 0 ? i % nc : NGS_CLASS_NONE;
    t.ev.temperature = 0.8f + 0.05f * i;
    t.ev.seed = 1000u + seed % 1000u + 17u * i;
    t.ev.sequence = static_cast<uint32_t>(i % 3);
    t.ev.gain = 0.5f + 0.1f * i;
    ev.push_back(t);
  }
  Timed f = start(5 + jitter(rng), 10, NGS_SYNTH_VOICE_FREE);
  f.z = random_vec(static_cast<size_t>(info.z_dim), seed + 1, 1.0f);
  f.ev.seed = seed + 2u;
  ev.push_back(f);
  Timed tgt{4 * hop_host + jitter(rng), ngs_synth_default_event(NGS_SYNTH_EVENT_SET_LATENT),
            random_vec(static_cast<size_t>(info.z_dim), seed + 3, 1.0f)};
  tgt.ev.voice = 10;
  tgt.ev.glide = 3.0f;
  ev.push_back(tgt);
  Timed tgt2 = tgt;
  tgt2.frame = 7 * hop_host + jitter(rng);
  tgt2.z = random_vec(static_cast<size_t>(info.z_dim), seed + 4, 1.0f);
  tgt2.ev.glide = 1.0f;
  ev.push_back(tgt2);
  Timed r = start(2 * hop_host + jitter(rng), 11, NGS_SYNTH_VOICE_RESYNTH);
  r.ev.seed = seed + 5u;
  ev.push_back(r);
  Timed stop{6 * hop_host + jitter(rng), ngs_synth_default_event(NGS_SYNTH_EVENT_STOP), {}};
  stop.ev.voice = 2;
  stop.ev.fade = hop_host / 2;
  ev.push_back(stop);
  Timed rel{9 * hop_host + jitter(rng), ngs_synth_default_event(NGS_SYNTH_EVENT_RELEASE), {}};
  rel.ev.voice = 11;
  ev.push_back(rel);
  std::stable_sort(ev.begin(), ev.end(), [](const Timed &a, const Timed &b) { return a.frame < b.frame; });
  return ev;
}

#ifdef NGS_CUDA_EMULATION
// Emulated launches per stage (ngs_emu::launch_count) and stream captures.
struct Launches {
  long rnn = 0, encoder = 0, all = 0, captures = 0;
  static Launches now() {
    Launches l;
    l.rnn = ngs_emu::launch_count("rnn_step_kernel");
    l.encoder = ngs_emu::launch_count("encoder_");
    l.all = ngs_emu::launch_count("");
    l.captures = ngs_emu::capture_count();
    return l;
  }
};
#endif

// Both with a conditional sequence VAE (GRU of 3 layers, OLA not normalised; LSTM of 2
// layers with widths no SIMD width divides), grains of 512 samples (fast in the emulation).
const char *const kConfigs[] = {"noola", "odd"};

}  // namespace

// Row b of CudaSession::encode_grains equals the CPU session's (B across the batch-size
// buckets, random first / last flags, a smaller batch after a larger one); bad requests
// throw ngs::Error; after the first call nothing is captured any more.
TEST(CudaSynth, EncodeGrainsMatchesCpuRows) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = ngs::test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  int tested = 0;
  for (const char *name : kConfigs) {
    SCOPED_TRACE(name);
    const std::string path = ngs::test::fixture_path(name, "model.safetensors");
    if (!ngs::test::file_exists(path)) continue;
    Model gpu, cpu;
    open(path, NGS_BACKEND_CUDA, gpu);
    open(path, NGS_BACKEND_CPU, cpu);
    ASSERT_TRUE(ngs::cuda::encoder_on_host(*gpu.m->compute).empty());
    const int G = 40, l = gpu.info.grain_length, zd = gpu.info.z_dim;
    auto gs = gpu.m->compute->create_session(G, 1);
    auto cs = cpu.m->compute->create_session(G, 1);
    const std::vector<float> audio = random_vec(static_cast<size_t>(G) * l, seed, 0.3f);
    std::mt19937 rng(seed + 1);
    std::vector<const float *> src(G);
    std::vector<unsigned char> first(G), last(G);
#ifdef NGS_CUDA_EMULATION
    long captures = -1;
#endif
    for (int B : {1, 3, 40, 8, 17, 2}) {
      SCOPED_TRACE("B " + std::to_string(B));
      for (int b = 0; b < B; ++b) {
        src[b] = audio.data() + static_cast<size_t>(rng() % G) * l;  // repeats allowed
        first[b] = static_cast<unsigned char>(rng() % 2);
        last[b] = static_cast<unsigned char>(rng() % 2);
      }
      std::vector<float> a = poisoned(static_cast<size_t>(B) * zd), c = poisoned(a.size());
      gs->encode_grains(src.data(), first.data(), last.data(), B, a.data());
      cs->encode_grains(src.data(), first.data(), last.data(), B, c.data());
      for (int b = 0; b < B; ++b)
        EXPECT_LE(rel_l2(a.data() + static_cast<size_t>(b) * zd, c.data() + static_cast<size_t>(b) * zd, zd),
                  kTolF32)
            << "row " << b << " first " << int(first[b]) << " last " << int(last[b]);
#ifdef NGS_CUDA_EMULATION
      if (captures >= 0) EXPECT_EQ(ngs_emu::capture_count(), captures) << "captured after the first call";
      captures = ngs_emu::capture_count();
#endif
    }
    float mu[64];
    const unsigned char one = 1;
    const float *p = audio.data();
    EXPECT_THROW(gs->encode_grains(&p, &one, &one, 0, mu), ngs::Error);
    EXPECT_THROW(gs->encode_grains(src.data(), first.data(), last.data(), G + 1, mu), ngs::Error);
    const float *null_src = nullptr;
    EXPECT_THROW(gs->encode_grains(&null_src, &one, &one, 1, mu), ngs::Error);
    EXPECT_THROW(gs->encode_grains(nullptr, &one, &one, 1, mu), ngs::Error);
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "skipped: no golden fixtures under " << ngs::test::fixtures_dir();
}

// The synth on a CUDA model equals the synth on a CPU model of the same file, with every
// stage on the model's CUDA sessions.
TEST(CudaSynth, StreamsEntirelyOnTheDeviceAndMatchesCpu) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = ngs::test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  struct Case {
    int block, spread, rate, threads;
  };
  // Every block size, spread mode, rate and thread count on "odd"; two of the cases on
  // "noola" (the emulation's time).
  const Case cases[] = {{64, 0, 0, 1}, {333, 1, 48000, 2}, {64, 1, 0, 1}, {333, 0, 48000, 2}};
  int tested = 0;
  for (const char *name : kConfigs) {
    SCOPED_TRACE(name);
    const bool all_cases = std::string(name) == "odd";
    const std::string path = ngs::test::fixture_path(name, "model.safetensors");
    if (!ngs::test::file_exists(path)) continue;
    Model gpu, cpu;
    open(path, NGS_BACKEND_CUDA, gpu);
    open(path, NGS_BACKEND_CPU, cpu);
    ASSERT_TRUE(gpu.info.has_latent_model);
    ASSERT_TRUE(ngs::cuda::encoder_on_host(*gpu.m->compute).empty());
    for (const Case &k : cases) {
      if (!all_cases && &k - cases >= 2) break;
      const std::string what = "block " + std::to_string(k.block) + " spread " + std::to_string(k.spread) +
                               " rate " + std::to_string(k.rate) + " threads " + std::to_string(k.threads);
      SCOPED_TRACE(what);
      const int rate = k.rate ? k.rate : gpu.info.sample_rate;
      const int hop_host = static_cast<int>(static_cast<int64_t>(gpu.info.hop_size) * rate / gpu.info.sample_rate);
      const std::vector<Timed> ev = make_events(gpu.info, hop_host, seed + k.block + k.rate);
      const int64_t frames = static_cast<int64_t>(gpu.info.sample_length) * rate / gpu.info.sample_rate + 11 * hop_host;
      const std::vector<float> in = random_vec(static_cast<size_t>(frames), seed + 7, 0.25f);
      ngs_synth_params p = ngs_synth_default_params();
      p.sample_rate = k.rate;
      p.max_block = k.block;
      p.max_voices = 4;  // the fifth one-shot steals
      p.spread = k.spread;
      p.n_threads = k.threads;
      ngs_synth *sc = nullptr, *sg = nullptr;
      ASSERT_EQ(ngs_synth_init(cpu.m, p, &sc), NGS_STATUS_OK) << ngs_last_error();
      ASSERT_EQ(ngs_synth_init(gpu.m, p, &sg), NGS_STATUS_OK) << ngs_last_error();
      // No CPU backend of the synth's own (neither the whole fallback nor the encoder's).
      EXPECT_TRUE(sg->backend == nullptr) << "the synth fell back to the CPU";
      for (const auto &q : sg->batches) EXPECT_TRUE(q.enc_session == nullptr);
#ifdef NGS_CUDA_EMULATION
      const Launches before = Launches::now();
#endif
      const std::vector<float> out_g = ngs::test::render_synth(sg, ev, frames, k.block, &in);
#ifdef NGS_CUDA_EMULATION
      const Launches after = Launches::now();
#endif
      const std::vector<float> out_c = ngs::test::render_synth(sc, ev, frames, k.block, &in);
      EXPECT_LE(rel_l2(out_g, out_c), kTolF32);
      double energy = 0.0;
      for (float v : out_c) energy += static_cast<double>(v) * v;
      EXPECT_GT(energy, 0.0);
      ngs_synth_stats st{}, sc_st{};
      ASSERT_EQ(ngs_synth_get_stats(sg, &st), NGS_STATUS_OK);
      ASSERT_EQ(ngs_synth_get_stats(sc, &sc_st), NGS_STATUS_OK);
      EXPECT_GT(st.voices_stolen, 0u);
      EXPECT_EQ(st.voices_stolen, sc_st.voices_stolen);
      EXPECT_EQ(st.events_applied, sc_st.events_applied);
      EXPECT_EQ(st.grains, sc_st.grains);
#ifdef NGS_CUDA_EMULATION
      const long rnn = after.rnn - before.rnn, enc = after.encoder - before.encoder;
      EXPECT_GT(rnn, 0) << "no RNN step ran on the device";
      EXPECT_GT(enc, 0) << "no encoder kernel ran on the device";
      EXPECT_GT(after.all - before.all - rnn - enc, 0) << "no decoder kernel ran on the device";
      EXPECT_EQ(after.captures, before.captures) << "a graph was captured while playing";
#endif
      ngs_synth_free(sg);
      ngs_synth_free(sc);
    }
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "skipped: no golden fixtures under " << ngs::test::fixtures_dir();
}
