// The CPU backend's thread pool: every item handled exactly once, by contiguous parts,
// across repeated runs; the spinning barrier; threaded recurrences bitwise equal to one
// thread.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cpu/ops.h"
#include "test_isa.h"
#include "cpu/thread_pool.h"

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
