// Run-time instruction set selection for the CPU ops (see ops.h).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/ops.h"

namespace ngs::cpu {
namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

Isa initial() {
  Isa best = detect();
  const char *env = std::getenv("NGS_CPU_ISA");
  if (env == nullptr) return best;
  Isa want = best;
  if (std::strcmp(env, "portable") == 0) want = Isa::kPortable;
  else if (std::strcmp(env, "avx2") == 0) want = Isa::kAvx2;
  else if (std::strcmp(env, "avx512") == 0) want = Isa::kAvx512;
  return static_cast<int>(want) <= static_cast<int>(best) ? want : best;
}

std::atomic<int> &active() {
  static std::atomic<int> a{static_cast<int>(initial())};
  return a;
}

}  // namespace

Isa isa_best_supported() {
  static const Isa best = detect();
  return best;
}

Isa isa_active() { return static_cast<Isa>(active().load(std::memory_order_relaxed)); }

bool isa_set(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(isa_best_supported())) return false;
  active().store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

const char *isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace ngs::cpu
