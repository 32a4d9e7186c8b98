// Rendering helper of the synth test suites (test_synth.cpp, test_cuda_synth.cpp): timed
// events at absolute host frames, delivered block by block to ngs_synth_process with each
// block's output buffer NaN-poisoned first.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ngs/ngs.h"

namespace ngs::test {

struct TimedEvent {
  int64_t frame;  // absolute host frame
  ngs_synth_event ev;
  std::vector<float> z;  // owned copy (ev.z points into it when set)
};

// Renders `frames` host frames in blocks of `block` with the timed events (sorted by frame)
// and the input `in` (null: none); a failed block is a test failure naming ngs_last_error.
inline std::vector<float> render_synth(ngs_synth *s, const std::vector<TimedEvent> &evs,
                                       int64_t frames, int block,
                                       const std::vector<float> *in = nullptr) {
  std::vector<float> out(static_cast<size_t>(frames), std::nanf(""));
  std::vector<ngs_synth_event> blk;
  std::vector<float> buf(static_cast<size_t>(block));
  size_t next = 0;
  for (int64_t pos = 0; pos < frames; pos += block) {
    const int n = static_cast<int>(std::min<int64_t>(block, frames - pos));
    blk.clear();
    while (next < evs.size() && evs[next].frame < pos + n) {
      ngs_synth_event e = evs[next].ev;
      e.frame = static_cast<uint32_t>(evs[next].frame - pos);
      if (!evs[next].z.empty()) e.z = evs[next].z.data();
      blk.push_back(e);
      ++next;
    }
    std::fill(buf.begin(), buf.end(), std::nanf(""));
    const float *ip = in ? in->data() + pos : nullptr;
    EXPECT_EQ(ngs_synth_process(s, blk.data(), static_cast<int>(blk.size()), ip, buf.data(), n),
              NGS_STATUS_OK)
        << ngs_last_error();
    std::copy(buf.begin(), buf.begin() + n, out.begin() + pos);
  }
  return out;
}

}  // namespace ngs::test
