// The CPU instruction-set paths the tests run every op and stage on.
#pragma once

#include <vector>

#include "cpu/ops.h"

namespace ngs::test {

// Every path this CPU supports: portable always, then AVX2 and AVX-512 when present.
inline std::vector<cpu::Isa> supported_isas() {
  std::vector<cpu::Isa> v{cpu::Isa::kPortable};
  if (static_cast<int>(cpu::isa_best_supported()) >= 1) v.push_back(cpu::Isa::kAvx2);
  if (static_cast<int>(cpu::isa_best_supported()) >= 2) v.push_back(cpu::Isa::kAvx512);
  return v;
}

// Restores the active path when a test ends.
struct IsaGuard {
  cpu::Isa saved = cpu::isa_active();
  ~IsaGuard() { cpu::isa_set(saved); }
};

}  // namespace ngs::test
