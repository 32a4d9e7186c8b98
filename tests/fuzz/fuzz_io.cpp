// libFuzzer target: the ngs CLI's readers of user files, as linked into the program
// (apps/ngs/io.cpp, library ngs_cli_io): the .npy reader (parse_npy) and the drum pattern
// reader (parse_pattern), each on every input. They must either return what they promise
// or throw ngs_cli::Failure; any other exception, crash or sanitizer report is a finding.
// docs/FUZZING.md.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common.h"
#include "io.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string bytes(reinterpret_cast<const char *>(data), size);
  try {
    const ngs_cli::NpyArray a = ngs_cli::parse_npy(bytes, "fuzz.npy");
    size_t count = 1;
    for (size_t d : a.shape) count *= d;
    require(count == a.data.size());
  } catch (const ngs_cli::Failure &) {
  }
  try {
    const ngs_cli::Pattern p = ngs_cli::parse_pattern(bytes, "fuzz.json");
    require(!p.classes.empty());
    for (const ngs_cli::PatternEvent &e : p.events)
      require(e.onset >= 0 && e.onset < 1 && e.amplitude >= 0 && e.amplitude <= 1);
  } catch (const ngs_cli::Failure &) {
  }
  return 0;
}
