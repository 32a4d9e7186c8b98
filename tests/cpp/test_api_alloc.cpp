// Real-time discipline: after ngs_context_init, ngs_decode, ngs_encode, ngs_sample (and
// the other processes) must not allocate. Global operator new/delete and, outside
// sanitizer builds, malloc/calloc/realloc are replaced in this test program and count the
// allocations made while a call is "armed".
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "ngs/ngs.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NGS_HOOK_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NGS_HOOK_MALLOC 0
#endif
#endif
#ifndef NGS_HOOK_MALLOC
#define NGS_HOOK_MALLOC 1
#endif

namespace {
std::atomic<bool> g_armed{false};
std::atomic<long> g_count{0};
inline void note() {
  if (g_armed.load(std::memory_order_relaxed)) g_count.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if NGS_HOOK_MALLOC
extern "C" {
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void __libc_free(void *);
void *malloc(size_t n) {
  note();
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  note();
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  note();
  return __libc_realloc(p, n);
}
void *aligned_alloc(size_t a, size_t n) {
  note();
  return __libc_memalign(a, n);
}
int posix_memalign(void **out, size_t a, size_t n) {
  note();
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;
}
void free(void *p) { __libc_free(p); }
}
#endif

void *operator new(size_t n) {
  note();
  if (void *p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void *operator new[](size_t n) { return operator new(n); }
void *operator new(size_t n, std::align_val_t a) {
  note();
  void *p = nullptr;
  if (posix_memalign(&p, std::max(sizeof(void *), static_cast<size_t>(a)), n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}
void *operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void *p) noexcept { std::free(p); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }
void operator delete[](void *p, size_t) noexcept { std::free(p); }
void operator delete(void *p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void *p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void *p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void *p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

// Counts the allocations of f().
template <class F>
long allocations(F &&f) {
  g_count.store(0);
  g_armed.store(true);
  f();
  g_armed.store(false);
  return g_count.load();
}

TEST(Alloc, HookSeesAllocations) {
  // The hook must notice an allocation, or the tests below prove nothing.
  EXPECT_GE(allocations([] { std::vector<float> v(1000); v[3] = 1; (void)v; }), 1);
#if NGS_HOOK_MALLOC
  // (volatile: clang removes a malloc/free pair whose pointer is not used otherwise)
  EXPECT_GE(allocations([] { void *volatile p = std::malloc(77); std::free(p); }), 1);
#endif
}

class AllocFree : public testing::TestWithParam<int> {};

TEST_P(AllocFree, ProcessingCallsDoNotAllocate) {
  const char *config = GetParam() == 0 ? "lstm22k" : "gru16k";
  ngs_model *m = nullptr;
  const std::string path = ngs::test::fixture_path(config, "model.safetensors");
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), ngs_model_default_params(), &m), NGS_STATUS_OK);
  ngs_model_info info;
  ASSERT_EQ(ngs_model_get_info(m, &info), NGS_STATUS_OK);
  for (int mode = 0; mode < 4; ++mode) {  // 1 and 2 threads, fp32 and fast precision
    const int threads = 1 + mode % 2;
    ngs_context_params cp = ngs_context_default_params();
    cp.n_threads = threads;
    cp.precision = mode >= 2 ? NGS_PRECISION_FAST : NGS_PRECISION_FP32;
    ngs_context *c = nullptr;
    ASSERT_EQ(ngs_context_init(m, cp, &c), NGS_STATUS_OK);
    const int n_max = 8 * info.n_grains;  // the default max_grains
    const auto z = ngs::test::random_normal(static_cast<size_t>(n_max) * info.z_dim, 1);
    std::vector<float> audio(ngs_model_audio_length(m, n_max));
    std::vector<float> mu(z.size()), lv(z.size()), zz(z.size());
    const auto in = ngs::test::random_uniform(audio.size(), 2, -0.5f, 0.5f);
    std::vector<float> e(static_cast<size_t>(info.e_dim));
    const int cls = info.n_classes > 0 ? 1 : NGS_CLASS_NONE;
    for (int n : {1, info.n_grains, n_max}) {
      const size_t len = ngs_model_audio_length(m, n);
      ngs_decode_params dp = ngs_decode_default_params();
      dp.seed = 5;
      EXPECT_EQ(allocations([&] {
                  EXPECT_EQ(ngs_decode(c, z.data(), n, dp, audio.data(), len), NGS_STATUS_OK);
                }),
                0)
          << "ngs_decode, n = " << n << ", threads " << threads;
      EXPECT_EQ(allocations([&] {
                  EXPECT_EQ(ngs_encode(c, in.data(), len, ngs_encode_default_params(), mu.data(), lv.data(),
                                       zz.data(), n_max, nullptr),
                            NGS_STATUS_OK);
                  EXPECT_EQ(ngs_encode(c, in.data(), len, ngs_encode_default_params(), nullptr, nullptr,
                                       zz.data(), n_max, nullptr),
                            NGS_STATUS_OK);
                }),
                0)
          << "ngs_encode, n = " << n << ", threads " << threads;
      EXPECT_EQ(allocations([&] {
                  EXPECT_EQ(ngs_latent_decode(c, e.data(), cls, n, zz.data()), NGS_STATUS_OK);
                  EXPECT_EQ(ngs_latent_encode(c, z.data(), n, e.data(), nullptr), NGS_STATUS_OK);
                }),
                0)
          << "ngs_latent_*, n = " << n;
    }
    ngs_sample_params sp = ngs_sample_default_params();
    sp.class_index = cls;
    sp.count = 3;
    EXPECT_EQ(allocations([&] {
                EXPECT_EQ(ngs_sample(c, sp, audio.data(), audio.size()), NGS_STATUS_OK);
                EXPECT_EQ(ngs_sample_interpolation(c, sp, 3, audio.data(), audio.size()), NGS_STATUS_OK);
                EXPECT_EQ(ngs_embedding_sample(m, 1.0f, 3, 4, e.data()), NGS_STATUS_OK);
              }),
              0)
        << "ngs_sample, threads " << threads;
    int progress_calls = 0;
    EXPECT_EQ(allocations([&] {
                for (int k = 0; k < 5; ++k) {
                  ngs_path_params pp = ngs_path_default_params();
                  pp.kind = static_cast<ngs_path_kind>(k);
                  EXPECT_EQ(ngs_path_generate(m, pp, n_max, zz.data()), NGS_STATUS_OK);
                }
                ngs_resynth_params rp = ngs_resynth_default_params();
                EXPECT_EQ(ngs_resynthesize(c, in.data(), in.size() - 77, rp, audio.data()), NGS_STATUS_OK);
                rp.progress = [](float, void *u) { ++*static_cast<int *>(u); };
                rp.progress_user_data = &progress_calls;
                EXPECT_EQ(ngs_resynthesize(c, in.data(), in.size() - 77, rp, audio.data()), NGS_STATUS_OK);
                std::vector<float> *none = nullptr;
                (void)none;
                const ngs_loop_event ev[2] = {{cls, 0.0f, 1.0f}, {cls, 0.5f, 0.5f}};
                EXPECT_EQ(ngs_render_loop(c, ev, 2, ngs_loop_default_params(), audio.data(), audio.size() / 2),
                          NGS_STATUS_OK);
                EXPECT_EQ(ngs_preprocess(m, audio.data(), audio.size(), 1), NGS_STATUS_OK);
              }),
              0)
        << "paths, resynthesis (with and without a progress callback), loop, preprocess";
    EXPECT_GT(progress_calls, 1) << "the resynthesis above spans several segments";
    ngs_context_free(c);
  }
  ngs_model_free(m);
}

INSTANTIATE_TEST_SUITE_P(Models, AllocFree, testing::Values(0, 1));

}  // namespace
