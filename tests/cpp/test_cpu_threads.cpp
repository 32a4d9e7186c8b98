// The CPU backend's thread pool: every item handled exactly once, by contiguous parts,
// across repeated runs.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

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
