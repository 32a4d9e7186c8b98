// The C entry points of the real-time synth (ngs.h "real-time synth", docs/SYNTH.md):
// argument checks, through the C API's exception guard (api_error.h). The synth itself is
// synth.cpp.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "api_error.h"
#include "common/error.h"
#include "ngs/ngs.h"
#include "synth.h"


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
  p.resampler = NGS_SYNTH_RESAMPLER_POLYPHASE;
  p.precision = NGS_PRECISION_FP32;
  return p;
}

namespace {

[[noreturn]] void invalid(const std::string &msg) { throw ngs::Error(NGS_STATUS_INVALID_ARGUMENT, msg); }

void check_range(const char *what, long long v, long long lo, long long hi) {
  if (v < lo || v > hi)
    invalid(std::string("ngs_synth_params.") + what + " = " + std::to_string(v) + " is outside [" +
            std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

}  // namespace

ngs_status ngs_synth_init(const ngs_model *model, ngs_synth_params params, ngs_synth **out) {
  if (out) *out = nullptr;
  return ngs::api_guard([&] {
    if (!model) invalid("model is NULL");
    if (!out) invalid("out is NULL");
    if (params.sample_rate != 0) check_range("sample_rate", params.sample_rate, 8000, 192000);
    check_range("max_block", params.max_block, 1, 1 << 20);
    check_range("max_voices", params.max_voices, 1, 1024);
    check_range("n_threads", params.n_threads, 1, 256);
    check_range("queue_size", params.queue_size, 1, 1 << 16);
    check_range("fade_frames", params.fade_frames, -1, 1 << 24);
    check_range("spread", params.spread, 0, 1);
    check_range("resampler", params.resampler, 0, NGS_SYNTH_RESAMPLER_POLYPHASE);
    ngs::api_precision_is_fast(params.precision, "ngs_synth_params.precision");
    *out = ngs::synth::create(*model, params).release();
  });
}

void ngs_synth_free(ngs_synth *synth) { delete synth; }

ngs_status ngs_synth_process(ngs_synth *synth, const ngs_synth_event *events, int n_events,
                             const float *in, float *out, int n_frames) {
  // No guard: the audio thread gets no exception machinery and no message formatting
  // beyond a fixed string.
  if (!synth || !out || n_frames < 1 || n_frames > synth->params.max_block || n_events < 0 ||
      (n_events > 0 && !events)) {
    if (synth && out && n_frames >= 1 && n_frames <= synth->params.max_block)
      std::memset(out, 0, sizeof(float) * static_cast<size_t>(n_frames));
    ngs::api_set_error("ngs_synth_process: NULL synth/out/events or n_frames outside 1..max_block");
    return NGS_STATUS_INVALID_ARGUMENT;
  }
  try {
    ngs::synth::process(*synth, events, n_events, in, out, n_frames);
  } catch (...) {  // never expected; costs nothing when nothing is thrown
    std::memset(out, 0, sizeof(float) * static_cast<size_t>(n_frames));
    ngs::api_set_error("ngs_synth_process: internal error");
    return NGS_STATUS_INTERNAL_ERROR;
  }
  return NGS_STATUS_OK;
}

ngs_status ngs_synth_post(ngs_synth *synth, const ngs_synth_event *event) {
  if (!synth || !event) {
    ngs::api_set_error("ngs_synth_post: NULL synth or event");
    return NGS_STATUS_INVALID_ARGUMENT;
  }
  if (!ngs::synth::event_valid(*synth, *event)) {
    synth->stats.dropped.fetch_add(1, std::memory_order_relaxed);
    ngs::api_set_error("ngs_synth_post: malformed event (type, kind, voice, class, latent, gain or fade)");
    return NGS_STATUS_INVALID_ARGUMENT;
  }
  if (!ngs::synth::post(*synth, *event)) {
    ngs::api_set_error("ngs_synth_post: the queue is full");
    return NGS_STATUS_CAPACITY;
  }
  return NGS_STATUS_OK;
}

int32_t ngs_synth_voice_new(ngs_synth *synth) {
  if (!synth) return 0;
  const uint32_t n = synth->next_voice_id.fetch_add(1, std::memory_order_relaxed);
  return static_cast<int32_t>(0x40000000u + n % 0x3fffffffu);
}

int ngs_synth_latency(const ngs_synth *synth) { return synth ? synth->latency : 0; }
int ngs_synth_input_latency(const ngs_synth *synth) { return synth ? synth->input_latency : 0; }

ngs_status ngs_synth_reset(ngs_synth *synth) {
  if (!synth) {
    ngs::api_set_error("ngs_synth_reset: synth is NULL");
    return NGS_STATUS_INVALID_ARGUMENT;
  }
  ngs::synth::reset(*synth);
  return NGS_STATUS_OK;
}

ngs_status ngs_synth_get_stats(const ngs_synth *synth, ngs_synth_stats *out) {
  // Any thread, the audio thread included: NULL arguments are reported with a fixed
  // message, without the exception machinery (no allocation), as process and post do.
  if (!synth || !out) {
    ngs::api_set_error("ngs_synth_get_stats: NULL synth or out");
    return NGS_STATUS_INVALID_ARGUMENT;
  }
  ngs::synth::get_stats(*synth, *out);  // relaxed loads and arithmetic: cannot throw
  return NGS_STATUS_OK;
}

}  // extern "C"
