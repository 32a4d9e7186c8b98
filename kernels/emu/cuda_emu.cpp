// The CUDA emulation runtime: block scheduler (threads as fibers with their own stacks,
// barriers and warp operations) and the host-memory runtime API subset of cuda_emu.h.
#include "emu/cuda_emu.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define NGS_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NGS_EMU_ASAN 1
#endif
#endif

#ifdef NGS_EMU_ASAN
extern "C" void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                               size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                                size_t *size_old);
extern "C" void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

// Context switch between fibers: saves the callee-saved registers, MXCSR and the x87
// control word on the current stack, stores its stack pointer in *save_sp and resumes
// the context whose stack pointer is new_sp. (swapcontext makes a signal-mask system
// call per switch; this is 50x faster, which matters with a switch per shuffle.)
#if !defined(__x86_64__)
#error "the CUDA emulation's fiber switch is written for x86-64"
#endif
asm(R"(
.text
.globl ngs_emu_switch_ctx
.hidden ngs_emu_switch_ctx
.type ngs_emu_switch_ctx,@function
ngs_emu_switch_ctx:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size ngs_emu_switch_ctx, .-ngs_emu_switch_ctx
)");
extern "C" void ngs_emu_switch_ctx(void **save_sp, void *new_sp);

namespace ngs_emu {

thread_local ThreadCtx *g_current = nullptr;

struct Stream {
  bool non_blocking = false;  // cudaStreamNonBlocking: not ordered with the legacy stream
  bool capturing = false;
  bool invalidated = false;   // an unsafe call during the capture: EndCapture fails
  std::vector<std::function<void()>> ops;
};
struct Graph {
  std::vector<std::function<void()>> ops;
};
struct GraphExec {
  std::vector<std::function<void()>> ops;
};

namespace {

#ifdef NGS_EMU_ASAN
constexpr size_t kStackBytes = 512 * 1024;
#else
constexpr size_t kStackBytes = 128 * 1024;
#endif

enum class State { kReady, kBarrier, kWarp, kDone };

struct Fiber {
  void *sp = nullptr;  // saved stack pointer while switched out
  unsigned char *stack = nullptr;
  ThreadCtx tc;
  State state = State::kReady;
  // __syncthreads bookkeeping
  const char *bar_file = nullptr;
  int bar_line = 0;
  long bar_count = 0;
  // pending warp operation
  const char *warp_what = nullptr;
  unsigned warp_mask = 0;
  uint64_t deposit = 0;
  int src = 0;
  bool is_vote = false;
  uint64_t result = 0;
  void *fake_stack = nullptr;
};

// One mmap'ed stack per thread slot, kept across launches (guard page below).
struct StackPool {
  std::vector<unsigned char *> stacks;
  // Set when a launch failed and left fibers abandoned mid-frame: their stack redzones
  // are still poisoned for AddressSanitizer and must be cleared before the stacks are reused.
  bool dirty = false;
  void clean() {
#ifdef NGS_EMU_ASAN
    if (dirty)
      for (auto *s : stacks) __asan_unpoison_memory_region(s, kStackBytes);
#endif
    dirty = false;
  }
  ~StackPool() {
    for (auto *s : stacks) munmap(s - 4096, kStackBytes + 4096);
  }
  unsigned char *get(size_t i) {
    while (stacks.size() <= i) {
      void *m = mmap(nullptr, kStackBytes + 4096, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (m == MAP_FAILED) throw Error("CUDA emulation: cannot map a fiber stack");
      mprotect(m, 4096, PROT_NONE);
      stacks.push_back(static_cast<unsigned char *>(m) + 4096);
    }
    return stacks[i];
  }
};

struct BlockRun {
  std::vector<Fiber> fibers;
  std::vector<unsigned> order;  // the scheduling order of the current round
  std::vector<std::pair<const void *, unsigned char *>> statics;  // this block's static shared
  cudaError_t launch_error = cudaSuccess;  // set by check_kernel_bounds / static_shared
  // Shared memory of the launch: its dynamic bytes, the static bytes of this block so far,
  // and the limit of the two together (48 KiB, or the architecture's opt-in maximum for a
  // kernel opted in with cudaFuncSetAttribute).
  const void *func = nullptr;
  size_t dynamic_bytes = 0, static_bytes = 0, smem_total_limit = 0;
  void *sched_sp = nullptr;
  Fiber *running = nullptr;
  const std::function<void()> *body = nullptr;
  std::string error;
  const void *main_bottom = nullptr;
  size_t main_size = 0;
};

thread_local BlockRun *g_run = nullptr;
thread_local StackPool g_stacks;
thread_local cudaError_t g_last_error = cudaSuccess;
std::mutex g_attr_mutex;
std::map<const void *, int> g_max_dyn_smem;
// Static shared bytes per kernel, learnt from its blocks (NGS_STATIC_SHARED allocates them
// when a thread first reaches the declaration): later launches are checked before they run.
std::map<const void *, size_t> g_static_smem;
// Streams being captured by this thread (unsafe calls on it are rejected, as in
// cudaStreamCaptureModeThreadLocal and Global for the capturing thread).
thread_local std::vector<Stream *> t_capturing;
std::atomic<long> g_captures{0};
// Grids run per launch name (launch_count).
std::mutex g_count_mutex;
std::map<std::string, long> g_launch_counts;

// ---- strictness controls ----------------------------------------------------------------
struct ArchInfo {
  int sm;
  size_t smem_optin;  // sharedMemPerBlockOptin
  int sms;            // multiProcessorCount of a representative part
  const char *part;
};
constexpr ArchInfo kArchs[] = {
    {80, 163 * 1024, 108, "A100"},
    {86, 99 * 1024, 84, "RTX 3090 / A40"},
    {89, 99 * 1024, 142, "L40"},
    {90, 227 * 1024, 132, "H100 / H200"},
};
const ArchInfo *find_arch(int sm) {
  for (const ArchInfo &a : kArchs)
    if (a.sm == sm) return &a;
  return nullptr;
}

std::once_flag g_env_once;
std::atomic<int> g_order{static_cast<int>(Order::kForward)};
std::atomic<uint64_t> g_seed{0};
std::atomic<int> g_arch{90};
std::atomic<bool> g_seed_printed{false};
std::atomic<uint64_t> g_launch_counter{0};

void read_env() {
  std::call_once(g_env_once, [] {
    if (const char *o = std::getenv("NGS_EMU_ORDER")) {
      const std::string v = o;
      if (v == "reverse") g_order = static_cast<int>(Order::kReverse);
      else if (v == "shuffle") g_order = static_cast<int>(Order::kShuffle);
      else if (v == "forward" || v.empty()) g_order = static_cast<int>(Order::kForward);
      else std::fprintf(stderr, "ngs CUDA emulation: NGS_EMU_ORDER=%s is not forward, reverse "
                                "or shuffle; using forward\n", o);
    }
    if (const char *sd = std::getenv("NGS_EMU_SEED")) {
      g_seed = std::strtoull(sd, nullptr, 0);
      g_seed_printed = true;  // the user chose it
    } else {
      g_seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    }
    if (const char *a = std::getenv("NGS_EMU_ARCH")) {
      const char *d = a;
      if (std::strncmp(d, "sm_", 3) == 0) d += 3;
      const int sm = std::atoi(d);
      if (find_arch(sm)) g_arch = sm;
      else std::fprintf(stderr, "ngs CUDA emulation: NGS_EMU_ARCH=%s is not sm_80, sm_86, "
                                "sm_89 or sm_90; using sm_90\n", a);
    }
  });
}

const ArchInfo &cur_arch() {
  read_env();
  return *find_arch(g_arch.load());
}

// A fresh permutation of 0 .. n-1 in the current order mode (seeded per launch / round).
void make_order(std::vector<unsigned> &v, unsigned n, std::mt19937_64 *rng) {
  v.resize(n);
  for (unsigned i = 0; i < n; ++i) v[i] = i;
  const Order o = static_cast<Order>(g_order.load());
  if (o == Order::kReverse) std::reverse(v.begin(), v.end());
  else if (o == Order::kShuffle && rng) std::shuffle(v.begin(), v.end(), *rng);
}

// ---- host-side view of device memory ----------------------------------------------------
// Pinned allocations (cudaMallocHost), and synchronous copies from pageable host memory to
// the device that are still in flight: cudaMemcpy returns once the source is staged, and
// the copy lands in device memory only when the legacy stream is next synchronised with
// (cudaDeviceSynchronize, cudaStreamSynchronize of the legacy or a blocking stream, any
// operation on either, cudaFree). A kernel on a non-blocking stream does not wait for it.
std::mutex g_mem_mutex;
std::map<const unsigned char *, size_t> g_pinned;
struct PendingCopy {
  void *dst;
  std::vector<unsigned char> data;
  std::thread::id owner;  // the thread that issued it
  const char *what;       // "cudaMemcpy" or "cudaMemset"
};
std::vector<PendingCopy> g_pending;

// Work enqueued on a non-blocking stream while a legacy-stream copy or memset issued by
// this thread has not been synchronised with: on a device the two are not ordered (the work
// may run before, during or after the legacy write), so it is rejected here, like an unsafe
// call during a capture: the call reports cudaErrorNotPermitted (a launch through
// cudaGetLastError) and does nothing; stderr names both. Only this thread's legacy writes
// count (another thread's are ordered by whatever synchronises the two threads).
cudaError_t check_unordered(cudaStream_t s, const char *what) {
  if (!s || !s->non_blocking) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  const std::thread::id me = std::this_thread::get_id();
  for (const PendingCopy &c : g_pending)
    if (c.owner == me) {
      std::fprintf(stderr,
                   "ngs CUDA emulation: %s on a non-blocking stream while this thread's "
                   "legacy-stream %s of %zu bytes to %p is not synchronised (unordered: "
                   "cudaErrorNotPermitted)\n",
                   what, c.what, c.data.size(), c.dst);
      return cudaErrorNotPermitted;
    }
  return cudaSuccess;
}

bool is_pinned(const void *p) {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  const auto *c = static_cast<const unsigned char *>(p);
  auto it = g_pinned.upper_bound(c);
  if (it == g_pinned.begin()) return false;
  --it;
  return c < it->first + it->second;
}

// The legacy stream's earlier work completes (the pending copies land).
void legacy_sync() {
  std::vector<PendingCopy> done;
  {
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    done.swap(g_pending);
  }
  for (PendingCopy &c : done) std::memcpy(c.dst, c.data.data(), c.data.size());
}

// Work on stream s is ordered after the legacy stream's unless s is non-blocking.
void order_after_legacy(cudaStream_t s) {
  if (!s || !s->non_blocking) legacy_sync();
}

// An unsafe call during a capture on this thread: invalidates the captures (EndCapture
// then fails) and returns the error the call reports.
cudaError_t capture_violation(cudaError_t e) {
  for (Stream *c : t_capturing) c->invalidated = true;
  return e;
}
bool capturing_here() { return !t_capturing.empty(); }

// Launch configurations the device rejects with cudaErrorLaunchOutOfResources (thrown
// from inside the first thread that runs; nothing of the block has run yet).
struct LaunchOutOfResources {};

void switch_to_scheduler(Fiber &f) {
  BlockRun &r = *g_run;
#ifdef NGS_EMU_ASAN
  __sanitizer_start_switch_fiber(&f.fake_stack, r.main_bottom, r.main_size);
#endif
  ngs_emu_switch_ctx(&f.sp, r.sched_sp);
#ifdef NGS_EMU_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, &r.main_bottom, &r.main_size);
#endif
  g_current = &f.tc;
}

extern "C" void ngs_emu_fiber_main() {
  BlockRun &r = *g_run;
  Fiber &f = *r.running;
#ifdef NGS_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &r.main_bottom, &r.main_size);
#endif
  g_current = &f.tc;
  try {
    (*r.body)();
  } catch (const LaunchOutOfResources &) {
  } catch (const std::exception &e) {
    if (r.error.empty()) r.error = e.what();
  } catch (...) {
    if (r.error.empty()) r.error = "unknown exception in a kernel thread";
  }
  f.state = State::kDone;
  g_current = nullptr;
#ifdef NGS_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, r.main_bottom, r.main_size);
#endif
  void *dead_sp = nullptr;
  ngs_emu_switch_ctx(&dead_sp, r.sched_sp);  // never resumed
  __builtin_unreachable();
}

std::string thread_name(const Fiber &f) {
  const uint3 t = f.tc.thread_idx, b = f.tc.block->block_idx;
  return "thread (" + std::to_string(t.x) + "," + std::to_string(t.y) + "," +
         std::to_string(t.z) + ") of block (" + std::to_string(b.x) + "," +
         std::to_string(b.y) + "," + std::to_string(b.z) + ")";
}

std::string site(const char *file, int line) {
  return std::string(file ? file : "?") + ":" + std::to_string(line);
}

// Runs one block to completion; throws Error on a barrier or warp-operation misuse.
void run_block(BlockRun &r, BlockCtx &bc, unsigned n_threads) {
  r.fibers.assign(n_threads, Fiber{});
  for (unsigned i = 0; i < n_threads; ++i) {
    Fiber &f = r.fibers[i];
    f.tc.linear = i;
    f.tc.block = &bc;
    const unsigned bx = bc.block_dim.x, by = bc.block_dim.y;
    f.tc.thread_idx = uint3{i % bx, (i / bx) % by, i / (bx * by)};
    // Initial frame, popped by the first switch: MXCSR/x87 control word, r15..rbp, the
    // return address (the fiber entry) and an empty slot, so the entry sees rsp = 8 mod 16.
    f.stack = g_stacks.get(i);
#ifdef NGS_EMU_ASAN
    // The entry frame of the stack's previous fiber never returned: clear its redzones.
    __asan_unpoison_memory_region(f.stack + kStackBytes - 16384, 16384);
#endif
    uintptr_t top = reinterpret_cast<uintptr_t>(f.stack + kStackBytes) & ~uintptr_t(15);
    uint64_t *frame = reinterpret_cast<uint64_t *>(top) - 9;
    frame[0] = 0x1F80u | (uint64_t{0x037Fu} << 32);  // MXCSR default, x87 control word
    for (int k = 1; k <= 6; ++k) frame[k] = 0;        // r15 r14 r13 r12 rbx rbp
    frame[7] = reinterpret_cast<uint64_t>(&ngs_emu_fiber_main);
    frame[8] = 0;
    f.sp = frame;
  }
  const unsigned n_warps = (n_threads + 31) / 32;
  std::mt19937_64 rng(g_seed.load() ^ (0x9E3779B97F4A7C15ull * (g_launch_counter.load() + 1)) ^
                      (uint64_t{bc.block_idx.x} << 20) ^ (uint64_t{bc.block_idx.y} << 40) ^
                      (uint64_t{bc.block_idx.z} << 52));
  for (;;) {
    bool ran = false;
    make_order(r.order, n_threads, &rng);
    for (unsigned idx : r.order) {
      Fiber &f = r.fibers[idx];
      if (f.state != State::kReady) continue;
      ran = true;
      r.running = &f;
      void *fake = nullptr;
#ifdef NGS_EMU_ASAN
      __sanitizer_start_switch_fiber(&fake, f.stack, kStackBytes);
#endif
      ngs_emu_switch_ctx(&r.sched_sp, f.sp);
#ifdef NGS_EMU_ASAN
      __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
      (void)fake;
      g_current = nullptr;
      if (r.launch_error != cudaSuccess) throw LaunchOutOfResources{};
      if (!r.error.empty()) throw Error(r.error);
    }
    if (ran) continue;
    // Nobody runnable: resolve warp operations first.
    bool released = false;
    for (unsigned w = 0; w < n_warps; ++w) {
      const unsigned lo = 32 * w, hi = std::min(n_threads, lo + 32);
      unsigned live = 0, waiting = 0;
      for (unsigned i = lo; i < hi; ++i) {
        if (r.fibers[i].state != State::kDone) live |= 1u << (i - lo);
        if (r.fibers[i].state == State::kWarp) waiting |= 1u << (i - lo);
      }
      if (!waiting || waiting != live) continue;
      const Fiber &first = r.fibers[lo + __builtin_ctz(waiting)];
      unsigned ballot = 0;
      for (unsigned i = lo; i < hi; ++i) {
        const Fiber &f = r.fibers[i];
        if (f.state != State::kWarp) continue;
        if (f.warp_what != first.warp_what || f.is_vote != first.is_vote)
          throw Error("CUDA emulation: lanes of a warp are in different warp operations (" +
                      std::string(first.warp_what) + " vs " + f.warp_what + ") at " +
                      thread_name(f));
        if (f.warp_mask != live)
          throw Error("CUDA emulation: " + std::string(f.warp_what) + " mask " +
                      std::to_string(f.warp_mask) + " differs from the warp's live lanes " +
                      std::to_string(live) + " at " + thread_name(f));
        if (f.is_vote && f.deposit) ballot |= 1u << (i - lo);
      }
      for (unsigned i = lo; i < hi; ++i) {
        Fiber &f = r.fibers[i];
        if (f.state != State::kWarp) continue;
        if (f.is_vote) {
          f.result = ballot;
        } else {
          const int s = f.src;
          if (s < 0 || s >= 32 || !((live >> s) & 1u))
            throw Error("CUDA emulation: " + std::string(f.warp_what) + " reads lane " +
                        std::to_string(s) + " which does not take part, at " + thread_name(f));
          f.result = r.fibers[lo + s].deposit;
        }
        f.state = State::kReady;
      }
      released = true;
    }
    if (released) continue;
    // Then the block barrier.
    unsigned n_done = 0, n_bar = 0, n_warp = 0;
    const Fiber *at_bar = nullptr, *done = nullptr, *in_warp = nullptr;
    for (const auto &f : r.fibers) {
      if (f.state == State::kDone) {
        ++n_done;
        done = &f;
      } else if (f.state == State::kBarrier) {
        ++n_bar;
        if (!at_bar) at_bar = &f;
      } else if (f.state == State::kWarp) {
        ++n_warp;
        in_warp = &f;
      }
    }
    if (n_done == n_threads) {
      for (const auto &f : r.fibers)
        if (f.bar_count != r.fibers[0].bar_count)
          throw Error("CUDA emulation: divergent __syncthreads(): " + thread_name(f) +
                      " passed " + std::to_string(f.bar_count) + " barriers, " +
                      thread_name(r.fibers[0]) + " " + std::to_string(r.fibers[0].bar_count));
      return;
    }
    if (n_warp)
      throw Error("CUDA emulation: deadlock: " + thread_name(*in_warp) + " waits in " +
                  in_warp->warp_what + " for lanes that are at __syncthreads() or exited");
    if (n_done)
      throw Error("CUDA emulation: divergent __syncthreads() at " +
                  site(at_bar->bar_file, at_bar->bar_line) + ": " + std::to_string(n_bar) +
                  " threads wait but " + std::to_string(n_done) + " exited (e.g. " +
                  thread_name(*done) + ")");
    for (const auto &f : r.fibers)
      if (f.bar_line != at_bar->bar_line || std::strcmp(f.bar_file, at_bar->bar_file) != 0)
        throw Error("CUDA emulation: divergent __syncthreads(): " + thread_name(*at_bar) +
                    " waits at " + site(at_bar->bar_file, at_bar->bar_line) + ", " +
                    thread_name(f) + " at " + site(f.bar_file, f.bar_line));
    for (auto &f : r.fibers) f.state = State::kReady;
  }
}

Fiber &current_fiber(const char *what) {
  if (!g_run || !g_run->running || !g_current)
    throw Error(std::string("CUDA emulation: ") + what + " called outside a kernel");
  return *g_run->running;
}

}  // namespace

void syncthreads(const char *file, int line) {
  Fiber &f = current_fiber("__syncthreads()");
  f.state = State::kBarrier;
  f.bar_file = file;
  f.bar_line = line;
  ++f.bar_count;
  switch_to_scheduler(f);
}

uint64_t warp_exchange(unsigned mask, uint64_t bits, int src, const char *what) {
  Fiber &f = current_fiber(what);
  f.state = State::kWarp;
  f.warp_what = what;
  f.warp_mask = mask;
  f.deposit = bits;
  f.src = src;
  f.is_vote = false;
  switch_to_scheduler(f);
  return f.result;
}

unsigned warp_ballot(unsigned mask, bool pred, const char *what) {
  Fiber &f = current_fiber(what);
  f.state = State::kWarp;
  f.warp_what = what;
  f.warp_mask = mask;
  f.deposit = pred ? 1u : 0u;
  f.is_vote = true;
  switch_to_scheduler(f);
  return static_cast<unsigned>(f.result);
}

void *dynamic_shared(size_t) {
  ThreadCtx &t = current();
  return t.block->dynamic_smem;
}

void *static_shared(const void *tag, size_t bytes) {
  current_fiber("a static __shared__ array");
  BlockRun &r = *g_run;
  for (auto &e : r.statics)
    if (e.first == tag) return e.second;
  // Static plus dynamic shared memory against the limit, as a device checks at launch.
  r.static_bytes += bytes;
  {
    std::lock_guard<std::mutex> lock(g_attr_mutex);
    size_t &known = g_static_smem[r.func];
    if (r.static_bytes > known) known = r.static_bytes;
  }
  if (r.static_bytes + r.dynamic_bytes > r.smem_total_limit) {
    r.launch_error = cudaErrorInvalidConfiguration;
    throw LaunchOutOfResources{};
  }
  unsigned char *p = static_cast<unsigned char *>(std::malloc(bytes ? bytes : 1));
  if (!p) throw Error("CUDA emulation: cannot allocate static shared memory");
  std::memset(p, 0xff, bytes);  // shared memory is not initialised on a device
  r.statics.emplace_back(tag, p);
  return p;
}

void check_kernel_bounds(int max_threads, const char *kernel) {
  Fiber &f = current_fiber("NGS_KERNEL_BOUNDS");
  const dim3 b = f.tc.block->block_dim;
  (void)kernel;
  if (static_cast<long>(b.x) * b.y * b.z > max_threads) {
    g_run->launch_error = cudaErrorLaunchOutOfResources;
    throw LaunchOutOfResources{};
  }
}

void set_order(Order o) {
  read_env();
  g_order = static_cast<int>(o);
}
Order order() {
  read_env();
  return static_cast<Order>(g_order.load());
}
const char *order_name(Order o) {
  switch (o) {
    case Order::kForward: return "forward";
    case Order::kReverse: return "reverse";
    case Order::kShuffle: return "shuffle";
  }
  return "?";
}
void set_shuffle_seed(uint64_t seed) {
  read_env();
  g_seed = seed;
  g_seed_printed = true;
}
uint64_t shuffle_seed() {
  read_env();
  return g_seed.load();
}
bool set_arch(int sm) {
  read_env();
  if (!find_arch(sm)) return false;
  g_arch = sm;
  return true;
}
int arch() { return cur_arch().sm; }
size_t arch_smem_optin() { return cur_arch().smem_optin; }
long capture_count() { return g_captures.load(); }

long launch_count(const char *prefix) {
  const std::string p = prefix ? prefix : "";
  std::lock_guard<std::mutex> lock(g_count_mutex);
  long n = 0;
  for (auto it = g_launch_counts.lower_bound(p);
       it != g_launch_counts.end() && it->first.compare(0, p.size(), p) == 0; ++it)
    n += it->second;
  return n;
}

cudaError_t func_set_attribute(const void *func, cudaFuncAttribute attr, int value) {
  if (capturing_here()) return capture_violation(cudaErrorStreamCaptureUnsupported);
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  size_t static_bytes = 0;
  {
    std::lock_guard<std::mutex> lock(g_attr_mutex);
    auto it = g_static_smem.find(func);
    if (it != g_static_smem.end()) static_bytes = it->second;
  }
  // The dynamic maximum plus the kernel's static shared memory (when a launch has shown
  // it) must fit the opt-in maximum.
  if (value < 0 || static_cast<size_t>(value) + static_bytes > arch_smem_optin())
    return cudaErrorInvalidValue;
  set_max_dynamic_smem(func, value);
  return cudaSuccess;
}

void set_max_dynamic_smem(const void *func, int bytes) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  g_max_dyn_smem[func] = bytes;
}

namespace {
void run_grid(const void *func, dim3 grid, dim3 block, size_t smem, const char *name,
              const std::function<void()> &body) {
  (void)func;
  if (g_run) throw Error("CUDA emulation: kernel launch from inside a kernel");
  {
    std::lock_guard<std::mutex> lock(g_count_mutex);
    ++g_launch_counts[name ? name : ""];
  }
  const unsigned n_threads = block.x * block.y * block.z;
  BlockRun r;
  r.body = &body;
  r.func = func;
  r.dynamic_bytes = smem;
  {
    std::lock_guard<std::mutex> lock(g_attr_mutex);
    r.smem_total_limit =
        g_max_dyn_smem.count(func) ? arch_smem_optin() : std::min(kDefaultDynamicSmem, arch_smem_optin());
    auto it = g_static_smem.find(func);
    if (it != g_static_smem.end() && it->second + smem > r.smem_total_limit) {
      g_last_error = cudaErrorInvalidConfiguration;  // known static + dynamic: before any block
      return;
    }
  }
  BlockCtx bc;
  bc.block_dim = block;
  bc.grid_dim = grid;
  g_stacks.clean();
  g_run = &r;
  const Order mode = static_cast<Order>(g_order.load());
  if (mode == Order::kShuffle && !g_seed_printed.exchange(true))
    std::fprintf(stderr, "ngs CUDA emulation: shuffled order, NGS_EMU_SEED=%llu\n",
                 static_cast<unsigned long long>(g_seed.load()));
  const uint64_t launch_no = g_launch_counter.fetch_add(1);
  std::mt19937_64 rng(g_seed.load() ^ (0xD1B54A32D192ED03ull * (launch_no + 1)));
  const unsigned long long n_blocks = static_cast<unsigned long long>(grid.x) * grid.y * grid.z;
  // The block order: a permutation for reverse/shuffle (grids of up to 2^24 blocks; larger
  // ones run forward), the blocks one after the other.
  std::vector<unsigned> perm;
  if (mode != Order::kForward && n_blocks <= (1u << 24))
    make_order(perm, static_cast<unsigned>(n_blocks), &rng);
  auto free_block = [&] {
    std::free(bc.dynamic_smem);
    bc.dynamic_smem = nullptr;
    for (auto &e : r.statics) std::free(e.second);
    r.statics.clear();
    r.static_bytes = 0;
  };
  try {
    for (unsigned long long k = 0; k < n_blocks; ++k) {
      const unsigned long long b = perm.empty() ? k : perm[k];
      bc.block_idx = uint3{static_cast<unsigned>(b % grid.x),
                           static_cast<unsigned>((b / grid.x) % grid.y),
                           static_cast<unsigned>(b / (static_cast<unsigned long long>(grid.x) * grid.y))};
      // Fresh dynamic shared memory of exactly `smem` bytes per block, filled with a
      // NaN pattern (shared memory is not initialised on a device).
      bc.dynamic_smem = smem ? static_cast<unsigned char *>(std::malloc(smem)) : nullptr;
      if (smem) std::memset(bc.dynamic_smem, 0xff, smem);
      try {
        run_block(r, bc, n_threads);
      } catch (...) {
        free_block();
        throw;
      }
      free_block();
    }
  } catch (const LaunchOutOfResources &) {
    g_run = nullptr;
    g_current = nullptr;
    g_stacks.dirty = true;
    g_last_error = r.launch_error != cudaSuccess ? r.launch_error : cudaErrorLaunchOutOfResources;
    return;
  } catch (const Error &e) {
    g_run = nullptr;
    g_current = nullptr;
    g_stacks.dirty = true;
    throw Error(std::string(e.what()) + " [kernel " + name + "]");
  }
  g_run = nullptr;
  g_current = nullptr;
}
}  // namespace

void launch(const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
            const char *name, std::function<void()> body) {
  const unsigned long long n_threads =
      static_cast<unsigned long long>(block.x) * block.y * block.z;
  size_t smem_limit = kDefaultDynamicSmem;
  {
    std::lock_guard<std::mutex> lock(g_attr_mutex);
    auto it = g_max_dyn_smem.find(func);
    if (it != g_max_dyn_smem.end()) smem_limit = static_cast<size_t>(it->second);
  }
  // The limits of every architecture ngs targets (sm_80 .. sm_90): at most 1024 threads
  // (x, y <= 1024, z <= 64), grid x < 2^31, y, z <= 65535, dynamic shared memory within
  // the kernel's attribute and the architecture's opt-in maximum.
  smem_limit = std::min(smem_limit, arch_smem_optin());
  if (n_threads == 0 || n_threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
      grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
      grid.z > 65535 || smem > smem_limit) {
    g_last_error = cudaErrorInvalidConfiguration;
    return;
  }
  if (!s && capturing_here()) {  // the legacy stream during a capture: an implicit sync
    g_last_error = capture_violation(cudaErrorStreamCaptureImplicit);
    return;
  }
  if (s && s->capturing) {
    s->ops.push_back([=]() { run_grid(func, grid, block, smem, name, body); });
    return;
  }
  if (const cudaError_t e = check_unordered(s, "a kernel launch")) {
    g_last_error = e;
    return;
  }
  order_after_legacy(s);
  run_grid(func, grid, block, smem, name, body);
}

}  // namespace ngs_emu

using ngs_emu::capture_violation;
using ngs_emu::capturing_here;
using ngs_emu::g_last_error;
using ngs_emu::legacy_sync;
using ngs_emu::order_after_legacy;

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorNotPermitted: return "operation not permitted";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
  }
  return "unknown error";
}
const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorNotPermitted: return "cudaErrorNotPermitted";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
  }
  return "cudaErrorUnknown";
}
cudaError_t cudaGetLastError() {
  cudaError_t e = g_last_error;
  g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_last_error; }
cudaError_t cudaGetDeviceCount(int *n) {
  if (!n) return cudaErrorInvalidValue;
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDevice(int *d) {
  if (!d) return cudaErrorInvalidValue;
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
  if (!p || d != 0) return cudaErrorInvalidValue;
  std::memset(p, 0, sizeof(*p));
  const int sm = ngs_emu::arch();
  std::snprintf(p->name, sizeof(p->name), "ngs CUDA emulation (CPU) of sm_%d", sm);
  p->major = sm / 10;
  p->minor = sm % 10;
  for (const ngs_emu::ArchInfo &a : ngs_emu::kArchs)
    if (a.sm == sm) p->multiProcessorCount = a.sms;
  p->sharedMemPerBlock = ngs_emu::kDefaultDynamicSmem;
  p->sharedMemPerBlockOptin = ngs_emu::arch_smem_optin();
  p->totalGlobalMem = size_t(1) << 32;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int d) {
  if (!value || d != 0) return cudaErrorInvalidValue;
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(p.sharedMemPerBlock); break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(p.sharedMemPerBlockOptin);
      break;
    default: return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (capturing_here()) return capture_violation(cudaErrorStreamCaptureUnsupported);
  legacy_sync();
  return cudaSuccess;
}
// Device memory is uninitialised on a device: poisoned (NaN bytes) here. Allocation during
// a capture is rejected (and invalidates it), as cudaMalloc may synchronise the device.
cudaError_t cudaMalloc(void **p, size_t bytes) {
  if (!p) return cudaErrorInvalidValue;
  if (capturing_here()) return capture_violation(cudaErrorStreamCaptureUnsupported);
  *p = std::malloc(bytes ? bytes : 1);
  if (!*p) return cudaErrorMemoryAllocation;
  std::memset(*p, 0xff, bytes);
  return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
  if (capturing_here()) return capture_violation(cudaErrorStreamCaptureUnsupported);
  legacy_sync();  // cudaFree synchronises the device
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) {
  if (!p) return cudaErrorInvalidValue;
  if (capturing_here()) return capture_violation(cudaErrorStreamCaptureUnsupported);
  *p = std::malloc(bytes ? bytes : 1);
  if (!*p) return cudaErrorMemoryAllocation;
  std::lock_guard<std::mutex> lock(ngs_emu::g_mem_mutex);
  ngs_emu::g_pinned[static_cast<unsigned char *>(*p)] = bytes ? bytes : 1;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
  if (capturing_here()) return capture_violation(cudaErrorStreamCaptureUnsupported);
  legacy_sync();
  {
    std::lock_guard<std::mutex> lock(ngs_emu::g_mem_mutex);
    ngs_emu::g_pinned.erase(static_cast<unsigned char *>(p));
  }
  std::free(p);
  return cudaSuccess;
}
// On the legacy stream, after its earlier work. From pageable host memory to the device the
// call returns once the source is staged and the data lands at the legacy stream's next
// synchronisation (see legacy_sync); every other copy is complete on return.
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
  if (capturing_here()) return capture_violation(cudaErrorStreamCaptureUnsupported);
  if (bytes && (!dst || !src)) return cudaErrorInvalidValue;
  legacy_sync();
  if (!bytes) return cudaSuccess;
  if (kind == cudaMemcpyHostToDevice && !ngs_emu::is_pinned(src)) {
    const auto *b = static_cast<const unsigned char *>(src);
    std::lock_guard<std::mutex> lock(ngs_emu::g_mem_mutex);
    ngs_emu::g_pending.push_back(ngs_emu::PendingCopy{dst, std::vector<unsigned char>(b, b + bytes),
                                                      std::this_thread::get_id(), "cudaMemcpy"});
    return cudaSuccess;
  }
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t s) {
  if (bytes && (!dst || !src)) return cudaErrorInvalidValue;
  if (!s && capturing_here()) return capture_violation(cudaErrorStreamCaptureImplicit);
  if (!(s && s->capturing)) {
    if (const cudaError_t e = ngs_emu::check_unordered(s, "cudaMemcpyAsync")) return e;
    order_after_legacy(s);
  }
  if (s && s->capturing) {
    s->ops.push_back([=]() {
      if (bytes) std::memcpy(dst, src, bytes);
    });
    return cudaSuccess;
  }
  if (bytes) std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
// On the legacy stream, after its earlier work, and asynchronous with respect to the host
// for device memory (CUDA runtime API): the bytes land at the legacy stream's next
// synchronisation, like a pageable copy (a non-blocking stream is not ordered after it).
cudaError_t cudaMemset(void *p, int v, size_t bytes) {
  if (capturing_here()) return capture_violation(cudaErrorStreamCaptureUnsupported);
  if (bytes && !p) return cudaErrorInvalidValue;
  legacy_sync();
  if (!bytes) return cudaSuccess;
  if (ngs_emu::is_pinned(p)) {
    std::memset(p, v, bytes);
    return cudaSuccess;
  }
  std::lock_guard<std::mutex> lock(ngs_emu::g_mem_mutex);
  ngs_emu::g_pending.push_back(ngs_emu::PendingCopy{
      p, std::vector<unsigned char>(bytes, static_cast<unsigned char>(v)),
      std::this_thread::get_id(), "cudaMemset"});
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s) {
  if (bytes && !p) return cudaErrorInvalidValue;
  if (!s && capturing_here()) return capture_violation(cudaErrorStreamCaptureImplicit);
  if (!(s && s->capturing)) {
    if (const cudaError_t e = ngs_emu::check_unordered(s, "cudaMemsetAsync")) return e;
    order_after_legacy(s);
  }
  if (s && s->capturing) {
    s->ops.push_back([=]() {
      if (bytes) std::memset(p, v, bytes);
    });
    return cudaSuccess;
  }
  if (bytes) std::memset(p, v, bytes);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) {
  if (!s) return cudaErrorInvalidValue;
  *s = new ngs_emu::Stream();
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
  const cudaError_t e = cudaStreamCreate(s);
  if (e == cudaSuccess) (*s)->non_blocking = (flags & cudaStreamNonBlocking) != 0;
  return e;
}
namespace {
void stop_capturing(cudaStream_t s) {
  auto &v = ngs_emu::t_capturing;
  v.erase(std::remove(v.begin(), v.end(), s), v.end());
}
}  // namespace
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s && s->capturing) stop_capturing(s);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s && s->capturing) return capture_violation(cudaErrorStreamCaptureUnsupported);
  if (!s && capturing_here()) return capture_violation(cudaErrorStreamCaptureImplicit);
  order_after_legacy(s);
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (!s || s->capturing) return cudaErrorInvalidValue;  // the legacy stream cannot capture
  s->capturing = true;
  s->invalidated = false;
  s->ops.clear();
  ngs_emu::t_capturing.push_back(s);
  ++ngs_emu::g_captures;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
  if (!s || !s->capturing || !g) return cudaErrorInvalidValue;
  s->capturing = false;
  stop_capturing(s);
  if (s->invalidated) {  // an unsafe call during the capture
    s->invalidated = false;
    s->ops.clear();
    *g = nullptr;
    return cudaErrorStreamCaptureInvalidated;
  }
  *g = new ngs_emu::Graph{std::move(s->ops)};
  s->ops.clear();
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) {
  if (!e || !g) return cudaErrorInvalidValue;
  *e = new ngs_emu::GraphExec{g->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (!e) return cudaErrorInvalidValue;
  if (!s && capturing_here()) return capture_violation(cudaErrorStreamCaptureImplicit);
  if (s && s->capturing) {
    s->ops.insert(s->ops.end(), e->ops.begin(), e->ops.end());
    return cudaSuccess;
  }
  if (const cudaError_t err = ngs_emu::check_unordered(s, "cudaGraphLaunch")) return err;
  order_after_legacy(s);
  for (auto &op : e->ops) op();
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) {
  if (!e) return cudaErrorInvalidValue;
  *e = new ngs_emu::Event();
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return cudaErrorInvalidValue;
  auto stamp = [e]() {
    e->t_ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now().time_since_epoch())
                  .count();
  };
  if (!s && capturing_here()) return capture_violation(cudaErrorStreamCaptureImplicit);
  if (s && s->capturing) {
    s->ops.push_back(stamp);
    return cudaSuccess;
  }
  order_after_legacy(s);
  stamp();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
  if (!ms || !a || !b) return cudaErrorInvalidValue;
  *ms = static_cast<float>(b->t_ms - a->t_ms);
  return cudaSuccess;
}
