// The C entry points of the real-time synth (ngs.h "real-time synth", docs/SYNTH.md):
// argument checks and the exception guard. The synth itself is synth.cpp.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "api_error.h"
#include "common/error.h"
#include "ngs/ngs.h"

namespace {

template <class F>
ngs_status guard(F &&f) noexcept {
  try {
    f();
    return NGS_STATUS_OK;
  } catch (const ngs::Error &e) {
    ngs::api_set_error(e.what());
    const int s = e.status();
    return s <= NGS_STATUS_OK || s > NGS_STATUS_INTERNAL_ERROR ? NGS_STATUS_INTERNAL_ERROR
                                                              : static_cast<ngs_status>(s);
  } catch (const std::bad_alloc &) {
    ngs::api_set_error("out of memory");
    return NGS_STATUS_OUT_OF_MEMORY;
  } catch (...) {
    ngs::api_set_error("internal error");
    return NGS_STATUS_INTERNAL_ERROR;
  }
}

}  // namespace

extern "C" {

ngs_synth_event ngs_synth_default_event(ngs_synth_event_type type) {
  ngs_synth_event e;
  std::memset(&e, 0, sizeof e);
  e.type = type;
  e.kind = NGS_SYNTH_VOICE_ONE_SHOT;
  e.class_index = NGS_CLASS_NONE;
  e.temperature = 1.0f;
  e.seed = NGS_SYNTH_SEED_AUTO;
  e.gain = 1.0f;
  e.path = ngs_path_default_params();
  e.glide = 1.0f;
  e.fade = -1;
  return e;
}

ngs_synth_params ngs_synth_default_params(void) {
  ngs_synth_params p;
  std::memset(&p, 0, sizeof p);
  p.sample_rate = 0;
  p.max_block = 4096;
  p.max_voices = 16;
  p.n_threads = 1;
  p.seed = 0;
  p.queue_size = 256;
  p.fade_frames = -1;
  p.spread = 0;
  p.resampler = 1;
  return p;
}

// Work in progress (this commit publishes the API only): init reports UNSUPPORTED.
ngs_status ngs_synth_init(const ngs_model *, ngs_synth_params, ngs_synth **out) {
  if (out) *out = nullptr;
  return guard([] { throw ngs::Error(NGS_STATUS_UNSUPPORTED, "ngs_synth: not implemented yet"); });
}

void ngs_synth_free(ngs_synth *) {}

ngs_status ngs_synth_process(ngs_synth *, const ngs_synth_event *, int, const float *, float *,
                             int) {
  return guard([] { throw ngs::Error(NGS_STATUS_UNSUPPORTED, "ngs_synth: not implemented yet"); });
}

ngs_status ngs_synth_post(ngs_synth *, const ngs_synth_event *) {
  return guard([] { throw ngs::Error(NGS_STATUS_UNSUPPORTED, "ngs_synth: not implemented yet"); });
}

int32_t ngs_synth_voice_new(ngs_synth *) { return 0; }
int ngs_synth_latency(const ngs_synth *) { return 0; }
int ngs_synth_input_latency(const ngs_synth *) { return 0; }

ngs_status ngs_synth_reset(ngs_synth *) {
  return guard([] { throw ngs::Error(NGS_STATUS_UNSUPPORTED, "ngs_synth: not implemented yet"); });
}

ngs_status ngs_synth_get_stats(const ngs_synth *, ngs_synth_stats *) {
  return guard([] { throw ngs::Error(NGS_STATUS_UNSUPPORTED, "ngs_synth: not implemented yet"); });
}

}  // extern "C"
