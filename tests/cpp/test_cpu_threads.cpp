// The CPU backend's thread pool: every item handled exactly once, by contiguous parts,
// across repeated runs; the spinning barrier; threaded recurrences, decoder sessions,
// encoder and sequence VAE bitwise equal to one thread, at sizes that really split the
// work (ctest label "threads": scripts/test.sh also runs this program under
// ThreadSanitizer, which reports any two parts touching the same scratch).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cpu/cpu.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "model_file.h"
#include "test_isa.h"
#include "test_util.h"

using ngs::cpu::ThreadPool;

namespace {
struct Ctx {
  std::vector<std::atomic<int>> hits;
  std::atomic<int> parts_seen{0};
  explicit Ctx(int n) : hits(n) {}
};
void mark(void *c, int, int b, int e) {
  auto *ctx = static_cast<Ctx *>(c);
  ctx->parts_seen.fetch_add(1);
  for (int i = b; i < e; ++i) ctx->hits[i].fetch_add(1);
}
}  // namespace

TEST(CpuThreadPool, EveryItemOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int n : {0, 1, 3, 41, 1000}) {
      for (int rep = 0; rep < 5; ++rep) {
        Ctx ctx(n);
        pool.run(mark, &ctx, n, 1);
        for (int i = 0; i < n; ++i) ASSERT_EQ(ctx.hits[i].load(), 1) << threads << " " << n;
        EXPECT_LE(ctx.parts_seen.load(), threads);
        if (n >= threads) EXPECT_EQ(ctx.parts_seen.load(), threads);
      }
    }
    Ctx ctx(10);
    pool.run(mark, &ctx, 10, 8);  // min_items 8: one part only
    EXPECT_EQ(ctx.parts_seen.load(), 1);
  }
}

namespace {
struct BarrierCtx {
  ngs::cpu::SpinBarrier *barrier;
  std::vector<std::atomic<int>> *slots;
  std::atomic<int> errors{0};
  int rounds, parts;
};
// Round r: every part writes its slot, waits, checks that all slots hold r, waits.
void barrier_part(void *c, int part, int, int) {
  auto *ctx = static_cast<BarrierCtx *>(c);
  for (int r = 1; r <= ctx->rounds; ++r) {
    (*ctx->slots)[part].store(r, std::memory_order_relaxed);
    ctx->barrier->wait();
    for (int p = 0; p < ctx->parts; ++p)
      if ((*ctx->slots)[p].load(std::memory_order_relaxed) != r) ctx->errors.fetch_add(1);
    ctx->barrier->wait();
  }
}
}  // namespace

TEST(CpuThreadPool, SpinBarrierSeparatesRounds) {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    const int parts = pool.parts(threads);
    ASSERT_EQ(parts, threads);
    ngs::cpu::SpinBarrier barrier(parts);
    std::vector<std::atomic<int>> slots(parts);
    BarrierCtx ctx{&barrier, &slots, {0}, 200, parts};
    for (int rep = 0; rep < 3; ++rep) pool.run(barrier_part, &ctx, threads);
    EXPECT_EQ(ctx.errors.load(), 0) << threads << " threads";
  }
}

// rnn_forward with a pool (each thread a slice of the unit blocks, a barrier per step)
// equals the single-thread result bit for bit, on every ISA path, for hidden sizes with
// partial blocks and several split counts.
TEST(CpuRnnThreads, BitwiseEqualToOneThread) {
  using namespace ngs;
  using namespace ngs::cpu;
  const Isa saved = isa_active();
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-0.3f, 0.3f);
  auto vec = [&](size_t n) {
    std::vector<float> v(n);
    for (float &x : v) x = dist(rng);
    return v;
  };
  const std::vector<Isa> isas = ngs::test::supported_isas();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int t : {2, 3, 5}) pools.push_back(std::make_unique<ThreadPool>(t));
  for (Isa isa : isas) {
    isa_set(isa);
    for (RnnType type : {RnnType::kGru, RnnType::kLstm})
      for (int H : {150, 520})
        for (bool constant : {false, true}) {
          const int in = 37, steps = 11, G = (type == RnnType::kGru ? 3 : 4) * H;
          auto wih = vec(static_cast<size_t>(G) * in), whh = vec(static_cast<size_t>(G) * H);
          for (float &w : whh) w *= 0.2f;
          auto bih = vec(G), bhh = vec(G), x = vec(static_cast<size_t>(steps) * in);
          RnnLayer l{wih.data(), whh.data(), bih.data(), bhh.data(), in, H};
          PackedRnn p = rnn_pack(l, type);
          auto run = [&](ThreadPool *pool, std::vector<float> &out, std::vector<float> &hf) {
            std::vector<float> scratch(rnn_scratch_floats(p, steps), nan);
            out.assign(static_cast<size_t>(steps) * H, nan);
            hf.assign(H, nan);
            rnn_forward(p, x.data(), in, constant, steps, out.data(), H, hf.data(), scratch.data(),
                        pool);
          };
          std::vector<float> want, want_h;
          run(nullptr, want, want_h);
          for (float v : want) ASSERT_TRUE(std::isfinite(v));
          for (auto &pool : pools) {
            std::vector<float> got, got_h;
            run(pool.get(), got, got_h);
            EXPECT_EQ(0, std::memcmp(got.data(), want.data(), sizeof(float) * want.size()))
                << isa_name(isa) << " H " << H << " threads " << pool->size();
            EXPECT_EQ(0, std::memcmp(got_h.data(), want_h.data(), sizeof(float) * H));
          }
        }
  }
  isa_set(saved);
}

namespace {

struct Fixture {
  std::string name;
  std::unique_ptr<ngs::ModelFile> model;
  ngs::test::Golden golden;
  uint64_t seed = 0;
};

const std::vector<Fixture> &fixtures() {
  static const std::vector<Fixture> all = [] {
    std::vector<Fixture> out;
    for (const std::string &c : ngs::test::fixture_configs()) {
      Fixture f;
      f.name = c;
      f.model = ngs::load_model_file(ngs::test::fixture_path(c, "model.safetensors"));
      f.golden = ngs::test::load_golden(ngs::test::fixture_path(c, "golden.safetensors"));
      f.seed = std::stoull(f.golden.meta("golden.seed"));
      out.push_back(std::move(f));
    }
    return out;
  }();
  return all;
}

// The decoder session's smallest parts (kernels/cpu/backend.cpp): 8 grains of spectrum, 2
// grains, 4 OLA blocks, 2048 output samples of FIR.
constexpr int kSpectrumMin = 8, kFirMin = 2048;

}  // namespace

TEST(CpuThreadedStages, FixturesPresent) {
  ASSERT_FALSE(fixtures().empty())
      << "no golden fixtures under " << ngs::test::fixtures_dir()
      << " (python3 -m weights_converter.make_fixtures --out <build>/fixtures)";
}

// A decode long enough that every stage is split into as many parts as threads (checked
// with the pool's own arithmetic): bitwise equal to one thread, on each fixture config, with
// the pool reused across calls; a part writing another part's rows or sharing its scratch
// changes the result here and is a race under ThreadSanitizer.
TEST(CpuThreadedStages, DecoderSessionsSplitAndMatchOneThread) {
  using namespace ngs;
  using namespace ngs::cpu;
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("random seed " + std::to_string(seed));
  for (const Fixture &f : fixtures()) {
    SCOPED_TRACE(f.name);
    const WaveformConfig &c = f.model->waveform.cfg;
    const int threads_max = 5;
    int n = kSpectrumMin * threads_max;
    while ((n + 3) * c.hop < kFirMin * threads_max) ++n;
    const size_t len = static_cast<size_t>(n + 3) * c.hop;
    const auto z = ngs::test::random_normal(static_cast<size_t>(n) * c.z_dim, seed);
    auto backend = make_cpu_backend(f.model->waveform);
    auto s1 = backend->create_session(n, 1);
    std::vector<float> want = ngs::test::poisoned(len);
    s1->decode(z.data(), n, NoiseKey{f.seed, 3}, want.data());
    ASSERT_EQ(ngs::test::count_nonfinite(want), 0u);
    for (int threads : {2, 3, threads_max}) {
      ThreadPool probe(threads);
      ASSERT_EQ(probe.parts(n, kSpectrumMin), threads);
      ASSERT_EQ(probe.parts(static_cast<int>(len), kFirMin), threads);
      auto s = backend->create_session(n + 7, threads);
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<float> got = ngs::test::poisoned(len);
        s->decode(z.data(), n, NoiseKey{f.seed, 3}, got.data());
        EXPECT_EQ(0, std::memcmp(got.data(), want.data(), len * sizeof(float)))
            << threads << " threads, call " << rep;
      }
      // The spectrum stage alone on many rows, repeated, so that the parts' row loops
      // overlap in time even on a loaded machine (a shared scratch row then corrupts
      // rows here, and is a race for ThreadSanitizer in any case).
      const int ns = 64 * threads;
      const int F = c.filter_size();
      const auto zs = ngs::test::random_normal(static_cast<size_t>(ns) * c.z_dim, seed + 1);
      auto big1 = backend->create_session(ns, 1), bigt = backend->create_session(ns, threads);
      std::vector<float> S1 = ngs::test::poisoned(static_cast<size_t>(ns) * F);
      big1->decoder_mlp(zs.data(), ns, S1.data());
      for (int rep = 0; rep < 16; ++rep) {
        std::vector<float> St = ngs::test::poisoned(S1.size());
        bigt->decoder_mlp(zs.data(), ns, St.data());
        ASSERT_EQ(0, std::memcmp(St.data(), S1.data(), S1.size() * sizeof(float)))
            << "spectrum, " << threads << " threads, call " << rep;
      }
      // The golden-size OLA stage alone, threaded, against the golden.
      const ngs::test::Golden &g = f.golden;
      const int gn = g.dim("decode.z", 0);
      std::vector<float> a = ngs::test::poisoned(static_cast<size_t>(gn + 3) * c.hop);
      s->overlap_add(g.at("decode.grains").data(), gn, a.data(), true);
      EXPECT_LE(ngs::test::rel_l2(a, g.at("decode.ola")), ngs::test::kTolF32);
    }
  }
}

// The encoder (grains split across the pool) and the sequence VAE (recurrences split by
// unit blocks) with 2, 3 and 5 threads: bitwise equal to one thread, on every ISA path.
// The recurrence splits only where the LSTM/GRU has >= 8 unit blocks (the "odd" config's
// 150 units); rnn_forward alone is split at larger sizes in CpuRnnThreads above.
TEST(CpuThreadedStages, EncoderAndLatentMatchOneThread) {
  using namespace ngs;
  using namespace ngs::cpu;
  using ngs::test::poisoned;
  ngs::test::IsaGuard guard;
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int t : {2, 3, 5}) pools.push_back(std::make_unique<ThreadPool>(t));
  int latent_split = 0;
  for (const Fixture &f : fixtures()) {
    const ngs::test::Golden &g = f.golden;
    for (Isa isa : ngs::test::supported_isas()) {
      isa_set(isa);
      SCOPED_TRACE(f.name + " " + isa_name(isa));
      const int n = g.dim("encode.mu", 0), zd = g.dim("encode.mu", 1);
      WaveformEncoder enc(f.model->waveform);
      std::vector<float> scratch = poisoned(enc.scratch_floats(n));
      std::vector<float> mu = poisoned(static_cast<size_t>(n) * zd), lv = mu;
      enc.encode(g.at("encode.audio").data(), n, mu.data(), lv.data(), scratch.data());
      for (auto &pool : pools) {
        ASSERT_EQ(pool->parts(n), pool->size());
        std::vector<float> s2 = poisoned(enc.scratch_floats(n, pool->size()));
        std::vector<float> mu2 = poisoned(mu.size()), lv2 = poisoned(lv.size());
        for (int rep = 0; rep < 2; ++rep) {
          enc.encode(g.at("encode.audio").data(), n, mu2.data(), lv2.data(), s2.data(), pool.get());
          EXPECT_EQ(mu2, mu) << pool->size() << " threads";
          EXPECT_EQ(lv2, lv) << pool->size() << " threads";
        }
      }
      if (!f.model->has_latent) continue;
      const int nl = g.dim("latent.z", 0), ed = g.dim("latent.e", 0);
      const int cls = std::stoi(g.meta("golden.class_index"));
      LatentModel lm(f.model->latent);
      std::vector<float> ls = poisoned(lm.scratch_floats(nl));
      std::vector<float> z = poisoned(static_cast<size_t>(nl) * g.dim("latent.z", 1));
      std::vector<float> em = poisoned(ed), el = poisoned(ed);
      lm.decode(g.at("latent.e").data(), cls, nl, z.data(), ls.data());
      lm.encode(g.at("latent.z").data(), nl, em.data(), el.data(), ls.data());
      const int blocks = (f.model->latent.cfg.h_dim + kRnnBlock - 1) / kRnnBlock;
      if (pools[0]->parts(blocks, 4) > 1) ++latent_split;
      for (auto &pool : pools) {
        std::vector<float> z2 = poisoned(z.size()), em2 = poisoned(ed), el2 = poisoned(ed);
        lm.decode(g.at("latent.e").data(), cls, nl, z2.data(), ls.data(), pool.get());
        lm.encode(g.at("latent.z").data(), nl, em2.data(), el2.data(), ls.data(), pool.get());
        EXPECT_EQ(z2, z) << pool->size() << " threads";
        EXPECT_EQ(em2, em) << pool->size() << " threads";
        EXPECT_EQ(el2, el) << pool->size() << " threads";
      }
    }
  }
  EXPECT_GT(latent_split, 0) << "no fixture config has a recurrence wide enough to be split";
}
