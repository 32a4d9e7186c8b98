// The real-time synth (docs/SYNTH.md has the design and the exact timing rules).
//
// Engine time counts samples at the model's rate. The work is organised on a global grid
// of hops: the work for the interval [W, W + hop) starts with the events of engine time
// <= W, decodes every grain that a voice's output in that interval needs (all voices in
// one batch: one RNN step for the one-shots, one matrix product for the decoder), and
// mixes the voices' outputs for the interval, applying gain and fade changes at their
// exact samples. Everything an event does is heard lat_ev = hop - 1 samples after it, so
// every event of an interval's work is known when that work starts; the output depends
// on the events and the input only, never on the host's block sizes. With
// params.spread the work for [W, W + hop) is done in slices during the previous hop
// (events and input are delayed by one more hop): the staged pipeline below, cut by cost.
// All model compute goes through Session calls of the model's backend (or of a CPU
// backend of the synth's own when that backend does not stream).
//
// With a host rate other than the model's, the engine runs at the model's rate between
// two rate converters (the ngs polyphase converter, kernels/cpu/resample.h, or
// libsamplerate): events and input are mapped to engine time with a fixed
// offset D, found at init by simulating the worst case (one-frame host blocks), so that
// no event or input sample is ever needed before it has arrived.
#include "synth.h"

#include <samplerate.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#include <xmmintrin.h>
#define NGS_SYNTH_X86 1
#endif

#include "common/error.h"
#include "cpu/ops.h"
#include "cpu/resample.h"

ngs_synth::~ngs_synth() = default;

namespace ngs::synth {

Converter::Converter() = default;
Converter::~Converter() {
  if (src) src_delete(src);
}

bool Converter::process(const float *in, long n, float *out, long max_out, long *used, long *gen) {
  if (poly) {
    poly->process(in, n, out, max_out, used, gen);
    return true;
  }
  SRC_DATA d;
  std::memset(&d, 0, sizeof d);
  d.data_in = in;
  d.input_frames = n;
  d.data_out = out;
  d.output_frames = max_out;
  d.src_ratio = ratio;
  d.end_of_input = 0;
  const bool ok = src_process(src, &d) == 0;
  *used = ok ? d.input_frames_used : 0;
  *gen = ok ? d.output_frames_gen : 0;
  return ok;
}

void Converter::reset() {
  if (poly) poly->reset();
  if (src) src_reset(src);
}

namespace {

// ---- clock and floating-point environment ----------------------------------------------

inline uint64_t cycles() {
#ifdef NGS_SYNTH_X86
  return __rdtsc();  // no system call; converted to time in get_stats
#else
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// FTZ and DAZ for the duration of a process call (MXCSR bits 15 and 6), restored after.
struct DenormalScope {
#ifdef NGS_SYNTH_X86
  unsigned csr;
  DenormalScope() : csr(_mm_getcsr()) { _mm_setcsr(csr | 0x8040u); }
  ~DenormalScope() { _mm_setcsr(csr); }
#endif
};

int enum_int(const void *p) {
  int v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

bool finite_all(const float *x, int n) {
  for (int i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

size_t pow2_at_least(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Largest piece of engine output fed to the output converter at once (resampled hosts).
constexpr int kConvPiece = 16;
// Largest phase table (floats, L * taps) for which the polyphase converter is used.
constexpr size_t kPolyphaseMaxTable = 65536;

inline bool is_resynth_start(const ngs_synth_event &ev) {
  return enum_int(&ev.type) == NGS_SYNTH_EVENT_START && enum_int(&ev.kind) == NGS_SYNTH_VOICE_RESYNTH;
}

// ---- voices ------------------------------------------------------------------------------

// Engine time at which voice v's output first needs grain j (the FIR reads la samples
// ahead, so grain j is needed la samples before its start; grain 0 at the voice's start).
inline int64_t need_time(const ngs_synth &s, const Voice &v, int j) {
  return v.out0 + std::max<int64_t>(0, static_cast<int64_t>(j) * s.hop - s.la);
}

inline bool needs_grain(const ngs_synth &s, const Voice &v, int64_t W) {
  if (!v.active) return false;
  if (v.n_total >= 0 && v.next_grain >= v.n_total) return false;
  const int64_t t = need_time(s, v, v.next_grain);
  return t < W + s.hop && t < v.end;
}

int find_voice(const ngs_synth &s, int32_t id) {
  for (int i = 0; i < s.n_slots; ++i)
    if (s.voices[i].active && s.voices[i].id == id) return i;
  return -1;
}

int64_t host_to_model_frames(const ngs_synth &s, int32_t frames) {
  if (!s.resample) return frames;
  return static_cast<int64_t>(std::llround(static_cast<double>(frames) * s.r_mh));
}

bool add_command(ngs_synth &s, int64_t time, int slot, int type, float value, int64_t frames) {
  if (s.n_commands >= static_cast<int>(s.commands.size())) {
    s.stats.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Command &c = s.commands[s.n_commands++];
  c.time = time;
  c.slot = slot;
  c.type = type;
  c.value = value;
  c.frames = frames;
  return true;
}

void schedule_stop(ngs_synth &s, int slot, int64_t at, int64_t frames) {
  s.voices[slot].stopping = true;
  add_command(s, at, slot, NGS_SYNTH_EVENT_STOP, 0.0f, frames);
}

void start_voice(ngs_synth &s, const ngs_synth_event &ev, int64_t M) {
  const int64_t e = M + s.lat_ev;
  // A voice id that is playing: that voice fades out (default fade) and is detached.
  const int old = find_voice(s, ev.voice);
  if (old >= 0) {
    if (!s.voices[old].stopping) schedule_stop(s, old, e, s.fade_default);
    s.voices[old].id = 0;
  }
  // Stealing (max_voices voices not stopping): the oldest one-shot, else the oldest voice.
  int playing = 0, victim = -1;
  bool victim_one_shot = false;
  for (int i = 0; i < s.n_slots; ++i) {
    const Voice &v = s.voices[i];
    if (!v.active || v.stopping) continue;
    ++playing;
    const bool os = v.kind == NGS_SYNTH_VOICE_ONE_SHOT;
    if (victim < 0 || (os && !victim_one_shot) ||
        (os == victim_one_shot && v.age < s.voices[victim].age)) {
      victim = i;
      victim_one_shot = os;
    }
  }
  if (playing >= s.max_voices && victim >= 0) {
    schedule_stop(s, victim, e, s.fade_default);
    s.stats.stolen.fetch_add(1, std::memory_order_relaxed);
  }
  int slot = -1;
  for (int i = 0; i < s.n_slots && slot < 0; ++i)
    if (!s.voices[i].active) slot = i;
  if (slot < 0) {  // every slot busy: cut the oldest voice that is fading out
    for (int i = 0; i < s.n_slots; ++i) {
      const Voice &v = s.voices[i];
      if (slot < 0 || (v.stopping && !s.voices[slot].stopping) ||
          (v.stopping == s.voices[slot].stopping && v.age < s.voices[slot].age))
        slot = i;
    }
    s.voices[slot].active = false;
    // Its commands in this interval now refer to the new voice: neutralise them.
    for (int c = 0; c < s.n_commands; ++c)
      if (s.commands[c].slot == slot) s.commands[c].slot = -1;
  }
  Voice &v = s.voices[slot];
  const int kind = enum_int(&ev.kind);
  v.active = true;
  v.id = ev.voice;
  v.kind = static_cast<ngs_synth_voice_kind>(kind);
  v.age = ++s.age_counter;
  v.stopping = false;
  v.in0 = M;
  v.out0 = kind == NGS_SYNTH_VOICE_RESYNTH ? M + s.lat_in : e;
  if (kind == NGS_SYNTH_VOICE_RESYNTH) s.resynth_live = true;
  v.end = INT64_MAX;
  if (ev.seed == NGS_SYNTH_SEED_AUTO) {
    v.key.seed = s.params.seed;
    v.key.sequence = s.auto_sequence++;
  } else {
    v.key.seed = ev.seed;
    v.key.sequence = ev.sequence;
  }
  v.next_grain = 0;
  v.need_start = false;
  v.n_total = -1;
  v.release = false;
  v.use_path = false;
  v.glide_total = v.glide_done = 0;
  v.class_index = -1;
  if (kind == NGS_SYNTH_VOICE_ONE_SHOT) {
    v.class_index = s.model->lc().n_conds > 0 ? ev.class_index : -1;
    v.n_total = s.model->n_grains();
    // The RNN's start (embedding, decoder MLP, first input projection) runs with the
    // voice's first grain (one_shot_rows), so that in spread mode the starts of a hop are
    // sliced with its grains instead of all landing in its first slice.
    v.temperature = ev.temperature;
    v.need_start = true;
  } else if (kind == NGS_SYNTH_VOICE_FREE) {
    if (ev.use_path) {
      v.use_path = true;
      v.path.start(ev.path, ev.path_grains, s.zd);
      v.n_total = ev.path_grains;
    } else {
      std::memcpy(v.z_cur, ev.z, sizeof(float) * s.zd);
      std::memcpy(v.z_target, ev.z, sizeof(float) * s.zd);
      if (ev.path_grains > 0) v.n_total = ev.path_grains;
    }
  } else if (ev.path_grains > 0) {  // resynth
    v.n_total = ev.path_grains;
  }
  v.ola.reset(v.ola.buf, s.shape);
  v.out_t0 = v.out_t1 = 0;
  v.fade = Ramp{};
  v.gain = Ramp{};
  const int64_t fin = ev.fade > 0 ? host_to_model_frames(s, ev.fade) : 0;
  v.gain.value = fin > 0 ? 0.0f : ev.gain;
  v.gain.set(ev.gain, fin);  // runs from the voice's first output sample
}

void apply_event(ngs_synth &s, const ngs_synth_event &ev, int64_t M) {
  const int type = enum_int(&ev.type);
  const int64_t e = M + s.lat_ev;
  const int64_t fade = ev.fade < 0 ? -1 : host_to_model_frames(s, ev.fade);
  const int64_t stop_fade = fade < 0 ? s.fade_default : fade;
  bool ok = true;
  if (type == NGS_SYNTH_EVENT_START) {
    start_voice(s, ev, M);
  } else if (type == NGS_SYNTH_EVENT_STOP_ALL) {
    for (int i = 0; i < s.n_slots; ++i)
      if (s.voices[i].active && !s.voices[i].stopping) schedule_stop(s, i, e, stop_fade);
  } else {
    const int slot = find_voice(s, ev.voice);
    if (slot < 0) {
      ok = false;
    } else {
      Voice &v = s.voices[slot];
      switch (type) {
        case NGS_SYNTH_EVENT_STOP: schedule_stop(s, slot, e, stop_fade); break;
        case NGS_SYNTH_EVENT_RELEASE:
          if (v.kind == NGS_SYNTH_VOICE_ONE_SHOT) schedule_stop(s, slot, e, stop_fade);
          else if (v.n_total < 0) v.release = true;
          break;
        case NGS_SYNTH_EVENT_SET_LATENT:
          if (v.kind != NGS_SYNTH_VOICE_FREE || v.use_path) {
            ok = false;
            break;
          }
          std::memcpy(v.z_from, v.z_cur, sizeof(float) * s.zd);
          std::memcpy(v.z_target, ev.z, sizeof(float) * s.zd);
          v.glide_total = std::max(1, static_cast<int>(std::lround(std::min(ev.glide, 1e6f))));
          v.glide_done = 0;
          break;
        case NGS_SYNTH_EVENT_SET_GAIN:
          add_command(s, e, slot, NGS_SYNTH_EVENT_SET_GAIN, ev.gain, fade < 0 ? 0 : fade);
          break;
        default: ok = false;
      }
    }
  }
  if (ok) s.stats.applied.fetch_add(1, std::memory_order_relaxed);
  else s.stats.dropped.fetch_add(1, std::memory_order_relaxed);
}

// ---- the per-hop work ----------------------------------------------------------------------

// The z of free voice v's next grain (path point, glide towards the target, or the target).
void free_voice_z(ngs_synth &s, Voice &v, float *z) {
  const int zd = s.zd;
  if (v.use_path) {
    v.path.point(v.next_grain, z);
    return;
  }
  if (v.glide_done < v.glide_total) {
    ++v.glide_done;
    if (v.glide_done >= v.glide_total) {
      std::memcpy(v.z_cur, v.z_target, sizeof(float) * zd);
    } else {
      const float w = static_cast<float>(v.glide_done) / static_cast<float>(v.glide_total);
      for (int i = 0; i < zd; ++i) v.z_cur[i] = v.z_from[i] + (v.z_target[i] - v.z_from[i]) * w;
    }
  }
  std::memcpy(z, v.z_cur, sizeof(float) * zd);
}

int64_t engine_time(const ngs_synth &s, int64_t host_frame, int64_t begun);

// Engine time of the current block's event e, or -1 when it is dropped (malformed, frame
// outside the block or out of frame order); counts the drop once.
int64_t direct_time(ngs_synth &s, const ngs_synth_event &e, int n_frames) {
  if (e.frame >= static_cast<uint32_t>(n_frames) || e.frame < s.direct_last || !event_valid(s, e))
    return -1;
  return engine_time(s, s.direct_host + e.frame, s.direct_begun);
}

// The current block's own events of engine time <= W, in frame order, straight from the
// caller's array (no copy, so any number of them): they come after every pending event
// of engine time <= W (posted earlier, or from earlier blocks).
void apply_direct(ngs_synth &s, int64_t W, int n_frames) {
  while (s.direct_i < s.direct_n) {
    const ngs_synth_event &e = s.direct[s.direct_i];
    const int64_t M = direct_time(s, e, n_frames);
    if (M < 0) {
      s.stats.dropped.fetch_add(1, std::memory_order_relaxed);
      ++s.direct_i;
      continue;
    }
    if (M > W) break;
    s.direct_last = e.frame;
    ++s.direct_i;
    apply_event(s, e, M);
  }
}

// ---- the staged per-hop pipeline ------------------------------------------------------------
//
// The work for one interval is a sequence of units in four stages: for every row (a voice
// that needs a grain, one-shots first, then free, then resynth voices) 0 latent (the
// one-shot's start and RNN step, the free voice's z, the resynth voice's encode), 1 the
// decoder MLP, 2 the noise filter and the overlap-add of the grain; then for every voice
// slot 3 its output for the interval (FIR + softsign) and its mix. Each stage's rows can
// run in any batches (a row's numbers do not depend on the other rows of its GEMMs), so
// the units are cut, in this order, into `slices` runs of about equal estimated cost:
// spread mode then spreads even one voice's grain (RNN step, MLP, noise filter, output)
// over several host blocks, and the outputs and mixes of many voices too. The mix adds
// the voices in slot order, so every sample is summed in the same order as before.

// Estimated cost of each unit (what matters is their ratio), in units of 2000
// multiply-adds: the CPU session reports its parts' costs (Session::rnn_parts,
// decoder_mlp_parts: their GEMMs, cells, LayerNorms and spectrum); the defaults below
// are for a backend that does not (the RNN step and the MLP of one grain of the bundled
// model); the noise filter (with the grain's overlap-add) and a voice's output + mix were
// calibrated against the GEMMs with 256 voices (perf: the FFT, noise and OLA against the
// GEMM kernel; then the median time of each spread slice). The output does not depend on
// them, only how evenly the slices cost.
constexpr int kCostOneShot = 180, kCostStart = 20, kCostFree = 1, kCostResynth = 150,
              kCostMlp = 132, kCostNoise = 135, kCostOutput = 45, kCostSetup = 12;

// The decoder specs of rows [b, e): noise key, grain index, edge windows.
void fill_specs(ngs_synth &s, int b, int e) {
  for (int r = b; r < e; ++r) {
    const Voice &v = s.voices[s.work[r]];
    GrainSpec &g = s.h_spec[r];
    g.key = v.key;
    g.g = v.next_grain;
    g.first = v.next_grain == 0;
    g.last = v.release || (v.n_total >= 0 && v.next_grain == v.n_total - 1);
  }
}

void latent_rows(ngs_synth &s, Batch &q, int b, int e);

// A one-shot's recurrent state lives in the session of batch owner(slot) (rnn_start /
// rnn_step), so its rows always run on that session, whichever thread takes them.
inline int owner(const ngs_synth &s, int slot) { return slot % static_cast<int>(s.batches.size()); }

// One-shot rows [b, e) (all owned by batch q): latent sub-stage `sub` (the session's
// rnn_start parts, then its rnn_step parts: Session::rnn_parts), or all of them (sub < 0:
// their RNN starts and one batched step).
void one_shot_rows(ngs_synth &s, Batch &q, int b, int e, int sub) {
  if (e <= b) return;
  if (sub < 0) {
    for (int r = b; r < e; ++r) {
      Voice &v = s.voices[s.work[r]];
      if (v.need_start) {  // its first grain: the state from the embedding (same numbers as at START)
        embedding_sample(*s.model, v.temperature, v.key.seed, v.key.sequence, q.e.data());
        q.session->rnn_start(s.work[r], q.e.data(), v.class_index);
        v.need_start = false;
      }
    }
    q.session->rnn_step(s.work.data() + b, e - b, s.h_z.data() + static_cast<size_t>(b) * s.zd, s.zd);
    fill_specs(s, b, e);
    return;
  }
  if (sub < s.rnn_start_parts) {
    for (int r = b; r < e; ++r) {
      if (!s.h_start[r]) continue;
      Voice &v = s.voices[s.work[r]];
      if (sub == 0) embedding_sample(*s.model, v.temperature, v.key.seed, v.key.sequence, q.e.data());
      q.session->rnn_start_part(sub, s.work[r], sub == 0 ? q.e.data() : nullptr, v.class_index);
      if (sub + 1 == s.rnn_start_parts) v.need_start = false;
    }
    return;
  }
  const int part = sub - s.rnn_start_parts;
  q.session->rnn_step_part(part, s.work.data() + b, e - b, s.h_z.data() + static_cast<size_t>(b) * s.zd, s.zd);
  if (part + 1 == s.rnn_step_parts) fill_specs(s, b, e);
}

// Stage 0 (latent sub-stage `sub`, or all of them when sub < 0) of rows [b, e), part g of
// `parts` on batch g: the one-shot rows that batch g owns (the one-shot rows are sorted
// by owner) and, in the last sub-stage, a contiguous share of the others.
void latent_part(ngs_synth &s, int g, int parts, int b, int e, int sub) {
  Batch &q = s.batches[g];
  const int oe = std::min(e, s.row_free);
  int ob = b;
  while (ob < oe && owner(s, s.work[ob]) < g) ++ob;
  int oend = ob;
  while (oend < oe && owner(s, s.work[oend]) == g) ++oend;
  one_shot_rows(s, q, ob, oend, sub);
  if (sub >= 0 && sub + 1 < s.lat_stages) return;
  const int rb = std::max(b, s.row_free), n = e - rb;
  if (n > 0) latent_rows(s, q, rb + n * g / parts, rb + n * (g + 1) / parts);
}

// Rows [b, e) of stage 0 that are not one-shots, on batch q's session.
void latent_rows(ngs_synth &s, Batch &q, int b, int e) {
  const int zd = s.zd;
  for (int r = std::max(b, s.row_free); r < std::min(e, s.row_resynth); ++r)
    free_voice_z(s, s.voices[s.work[r]], s.h_z.data() + static_cast<size_t>(r) * zd);
  const int rb = std::max(b, s.row_resynth);
  for (int r = rb; r < e; ++r) {
    Voice &v = s.voices[s.work[r]];
    float *dst = s.h_enc.data() + static_cast<size_t>(r) * s.l;
    const int64_t t0 = v.in0 + static_cast<int64_t>(v.next_grain) * s.hop;
    for (int k = 0; k < s.l; ++k) dst[k] = s.in_ring[static_cast<size_t>(t0 + k) & s.in_mask];
    s.h_enc_src[r] = dst;
    s.h_first[r] = v.next_grain == 0;
    s.h_last[r] = v.release || (v.n_total >= 0 && v.next_grain == v.n_total - 1);
  }
  if (e > rb)
    (q.enc_session ? q.enc_session : q.session)
        ->encode_grains(s.h_enc_src.data() + rb, s.h_first.data() + rb, s.h_last.data() + rb, e - rb,
                        s.h_z.data() + static_cast<size_t>(rb) * zd);
  fill_specs(s, std::max(b, s.row_free), e);
}

// Stage 1 of rows [b, e): MLP part `sub` (Session::decoder_mlp_part, its carry in h_carry),
// or the whole MLP (sub < 0).
void mlp_rows(ngs_synth &s, Batch &q, int b, int e, int sub) {
  if (e <= b) return;
  if (sub < 0)
    q.session->decoder_mlp(s.h_z.data() + static_cast<size_t>(b) * s.zd, e - b,
                           s.h_S.data() + static_cast<size_t>(b) * s.F);
  else
    q.session->decoder_mlp_part(sub, s.h_z.data() + static_cast<size_t>(b) * s.zd, e - b,
                                s.h_carry.data() + static_cast<size_t>(b) * s.carry_ld, s.carry_ld,
                                s.h_S.data() + static_cast<size_t>(b) * s.F);
}

// The grains of rows [b, e) are in h_y: each voice's overlap-add takes its grain.
void add_grains(ngs_synth &s, int b, int e) {
  for (int r = b; r < e; ++r) {
    Voice &v = s.voices[s.work[r]];
    const bool last = s.h_spec[r].last;
    cpu::ola_stream_add(v.ola, s.shape, s.h_y.data() + static_cast<size_t>(r) * s.l, last);
    ++v.next_grain;
    if (last) {
      v.n_total = v.next_grain;
      v.release = false;
    }
  }
  if (e > b) s.stats.grains.fetch_add(static_cast<uint64_t>(e - b), std::memory_order_relaxed);
}

// Stage 2 for rows [b, e): each grain's noise with its own key, index and window (the
// window is chosen by (g, n_total) as in a whole decode: an equivalent pair selects the
// edge halves), then the overlap-add.
void noise_rows(ngs_synth &s, Batch &q, int b, int e) {
  for (int r = b; r < e; ++r) {
    const GrainSpec &g = s.h_spec[r];
    const int n_total = g.last ? g.g + 1 : g.g + 2;
    q.session->noise_filter(s.h_S.data() + static_cast<size_t>(r) * s.F, 1, g.g, n_total, g.key,
                            s.h_y.data() + static_cast<size_t>(r) * s.l);
  }
  add_grains(s, b, e);
}

// Stages 1 and 2 of rows [b, e) in one call (the whole of both stages in one slice).
void decode_rows(ngs_synth &s, Batch &q, int b, int e) {
  if (e <= b) return;
  q.session->decode_grains(s.h_z.data() + static_cast<size_t>(b) * s.zd, e - b, s.h_spec.data() + b,
                           s.h_y.data() + static_cast<size_t>(b) * s.l);
  add_grains(s, b, e);
}

// Slots [b, e): each voice's output (before gain) for the interval being finished.
void voice_outputs(ngs_synth &s, int b, int e) {
  const int64_t W = s.work_time, W1 = W + s.hop;
  for (int i = b; i < e; ++i) {
    Voice &v = s.voices[i];
    v.out_t0 = v.out_t1 = W;
    if (!v.active) continue;
    int64_t t0 = std::max(W, v.out0), t1 = std::min(W1, v.end);
    if (v.ola.length >= 0) t1 = std::min<int64_t>(t1, v.out0 + v.ola.length);
    if (t1 <= t0) continue;
    cpu::ola_stream_output(v.ola, s.shape, s.fir.data(), s.fir_bias, t0 - v.out0, t1 - v.out0, v.out);
    v.out_t0 = t0;
    v.out_t1 = t1;
  }
}

// Samples [a, b) of voice v into the mix, its gain and fade advanced per sample.
inline void mix_span(Voice &v, float *mix, int64_t W, int64_t a, int64_t b) {
  for (int64_t t = std::max(a, v.out0); t < b; ++t) {
    const float g = v.gain.next() * v.fade.next();
    if (t >= v.out_t0 && t < v.out_t1) mix[t - W] += v.out[t - v.out_t0] * g;
  }
}

// Slots [b, e) mixed into the interval, in slot order, each with its commands at their
// samples (cmd_at: the sample at which each command applies, found at begin_work).
void mix_voices(ngs_synth &s, int b, int e) {
  const int64_t W = s.work_time, W1 = W + s.hop;
  float *mix = s.mix[(W / s.hop) & 1].data();
  for (int i = b; i < e; ++i) {
    Voice &v = s.voices[i];
    if (!v.active) continue;
    int64_t cursor = W;
    for (int c = s.cmd_head[i]; c >= 0; c = s.cmd_next[c]) {
      const Command &cmd = s.commands[c];
      const int64_t at = s.cmd_at[c];
      mix_span(v, mix, W, cursor, at);
      cursor = at;
      if (cmd.type == NGS_SYNTH_EVENT_STOP) {
        v.fade.set(0.0f, cmd.frames);
        v.end = std::min(v.end, std::max(cmd.time, v.out0) + cmd.frames);
      } else {
        v.gain.set(cmd.value, cmd.frames);
      }
    }
    mix_span(v, mix, W, cursor, W1);
  }
}

// A stage's rows [b, e) on the threads: one contiguous group per thread, each batched on
// its own (its own session and scratch); the same numbers for any split.
// Stage 0: latent sub-stage `sub`, or all of them (sub < 0); stage 1 likewise its MLP parts.
void run_rows(ngs_synth &s, int stage, int b, int e, int sub = -1) {
  if (e <= b) return;
  const int nb = static_cast<int>(s.batches.size());
  if (stage == 0 && (!s.pool || e - b < 2)) {
    for (int g = 0; g < nb; ++g) latent_part(s, g, nb, b, e, sub);
    return;
  }
  if (stage == 0) {
    s.group_b = b;
    s.group_e = e;
    s.groups = nb;
    s.job_sub = sub;
    s.pool->run([](void *ctx, int g, int) {
      ngs_synth &t = *static_cast<ngs_synth *>(ctx);
      latent_part(t, g, t.groups, t.group_b, t.group_e, t.job_sub);
    }, &s, nb);
    return;
  }
  if (!s.pool || e - b < 2) {
    Batch &q = s.batches[0];
    switch (stage) {
      case 1: mlp_rows(s, q, b, e, sub); break;
      case 2: noise_rows(s, q, b, e); break;
      case 3: decode_rows(s, q, b, e); break;
      default: voice_outputs(s, b, e); break;
    }
    return;
  }
  s.job_stage = stage;
  s.job_sub = sub;
  s.group_b = b;
  s.group_e = e;
  s.groups = std::min(e - b, s.pool->size());
  s.pool->run(
      [](void *ctx, int g, int) {
        ngs_synth &t = *static_cast<ngs_synth *>(ctx);
        const int n = t.group_e - t.group_b;
        const int gb = t.group_b + n * g / t.groups, ge = t.group_b + n * (g + 1) / t.groups;
        Batch &q = t.batches[g];  // group g runs once per job: batch g is its alone
        switch (t.job_stage) {
          case 1: mlp_rows(t, q, gb, ge, t.job_sub); break;
          case 2: noise_rows(t, q, gb, ge); break;
          case 3: decode_rows(t, q, gb, ge); break;
          default: voice_outputs(t, gb, ge); break;
        }
      },
      &s, s.groups);
}

// Cuts n units of the given costs (in order, after `done` of `total`) into the slices:
// bound[k] = the first unit of slice k, bound[slices] = n.
template <class Cost>
int64_t cut_units(const ngs_synth &s, int n, int64_t done, int64_t total, Cost cost, int *bound) {
  int k = 0;
  for (int u = 0; u < n; ++u) {
    const int64_t c = cost(u);
    // The slice of the unit's midpoint.
    const int sl = total <= 0 ? 0 : static_cast<int>(std::min<int64_t>(s.slices - 1, (2 * done + c) * s.slices / (2 * total)));
    while (k <= sl) bound[k++] = u;
    done += c;
  }
  while (k <= s.slices) bound[k++] = n;
  return done;
}

// The rows of the work at W: the voices that need a grain, one-shots first (sorted by the
// batch that holds their state), then free voices, then resynth voices.
void build_rows(ngs_synth &s, int64_t W) {
  s.work_n = 0;
  const int nb = static_cast<int>(s.batches.size());
  for (int g = 0; g < nb; ++g)
    for (int i = g; i < s.n_slots; i += nb)
      if (s.voices[i].kind == NGS_SYNTH_VOICE_ONE_SHOT && needs_grain(s, s.voices[i], W)) s.work[s.work_n++] = i;
  s.row_free = s.round_free[0] = s.work_n;
  for (int i = 0; i < s.n_slots; ++i)
    if (s.voices[i].kind == NGS_SYNTH_VOICE_FREE && needs_grain(s, s.voices[i], W)) s.work[s.work_n++] = i;
  s.row_resynth = s.round_resynth[0] = s.work_n;
  for (int i = 0; i < s.n_slots; ++i)
    if (s.voices[i].kind == NGS_SYNTH_VOICE_RESYNTH && needs_grain(s, s.voices[i], W)) s.work[s.work_n++] = i;
  s.rows_a = s.work_n;
}

// Whether voice v needs another grain in the interval at W after the one of round A (its
// grain 1 when its first sample is less than la past W).
bool needs_second(const ngs_synth &s, const Voice &v, int64_t W) {
  const int g = v.next_grain;
  if (v.release || (v.n_total >= 0 && g + 1 >= v.n_total)) return false;  // g is its last
  const int64_t t = need_time(s, v, g + 1);
  return t < W + s.hop && t < v.end;
}

// Round B: the rows of round A whose voices need a second grain, in the same order.
void build_second_rows(ngs_synth &s, int64_t W) {
  const int nA = s.work_n;
  int n = nA;
  for (int r = 0; r < nA; ++r) {
    if (r == s.round_free[0]) s.round_free[1] = n;
    if (r == s.round_resynth[0]) s.round_resynth[1] = n;
    if (needs_second(s, s.voices[s.work[r]], W)) s.work[n++] = s.work[r];
  }
  if (s.round_free[0] >= nA) s.round_free[1] = n;
  if (s.round_resynth[0] >= nA) s.round_resynth[1] = n;
  s.rows_a = nA;
  s.work_n = n;
}

// Cost of row r in latent sub-stage q: a one-shot's start part (its first grain only) or
// step part; a free or resynth voice's latent in the last sub-stage.
int row_cost(const ngs_synth &s, int r, int q) {
  const int R = r < s.rows_a ? 0 : 1;
  if (r < s.round_free[R])
    return (q < s.rnn_start_parts ? (s.h_start[r] ? s.rnn_cost[q] : 0) : s.rnn_cost[q]) * s.gemm_scale4 / 4;
  if (q + 1 < s.lat_stages) return 0;
  return r < s.round_resynth[R] ? kCostFree : kCostResynth;
}

// The slice of the last of n units cut with bound (-1 when n == 0).
int last_slice(const ngs_synth &s, const int *bound, int n) {
  if (n <= 0) return -1;
  int k = 0;
  while (k + 1 < s.slices && bound[k + 1] <= n - 1) ++k;
  return k;
}

// Work for [W, W + hop) begins: its events, the rows (voices that need grains, one-shots
// first), the commands' samples, and the cut of the units into slices.
void begin_work(ngs_synth &s, int64_t W) {
  s.begun = W;
  s.work_time = W;
  s.n_commands = 0;
  const size_t cap = s.pending.size();
  while (s.pend_count > 0 && s.pending[s.pend_head].time <= W) {
    const Pending &p = s.pending[s.pend_head];
    if (is_resynth_start(p.ev)) --s.resynth_pending;
    apply_event(s, p.ev, p.time);
    s.pend_head = (s.pend_head + 1) % cap;
    --s.pend_count;
  }
  if (s.direct_i < s.direct_n) apply_direct(s, W, s.direct_frames);
  build_rows(s, W);
  build_second_rows(s, W);
  // The samples at which the commands apply (in order, never before the previous one),
  // and each slot's commands as a list.
  const int64_t W1 = W + s.hop;
  std::fill(s.cmd_head.begin(), s.cmd_head.end(), -1);
  int64_t cursor = W;
  for (int c = 0; c < s.n_commands; ++c) {
    const Command &cmd = s.commands[c];
    cursor = std::min(std::max(cmd.time, cursor), W1);
    s.cmd_at[c] = cursor;
    s.cmd_next[c] = -1;
    if (cmd.slot < 0) continue;
    if (s.cmd_head[cmd.slot] < 0) s.cmd_head[cmd.slot] = c;
    else s.cmd_next[s.cmd_tail[cmd.slot]] = c;
    s.cmd_tail[cmd.slot] = c;
  }
  float *mix = s.mix[(W / s.hop) & 1].data();
  std::fill(mix, mix + s.hop, 0.0f);
  // The cut: rows of the latent sub-stages and stages 1, 2 of round A, then of round B,
  // then the slots' outputs and mixes.
  const int n = s.work_n, nA = s.rows_a, nB = n - nA, S = s.slices, L = s.lat_stages, Mp = s.mlp_parts;
  for (int r = 0; r < n; ++r)
    s.h_start[r] = r < nA && r < s.round_free[0] && s.voices[s.work[r]].need_start;
  // The part costs are for many rows; at a few rows a GEMM (and a voice's FIR output)
  // costs relatively more against the noise filter (one row: about 3.5 times, callgrind),
  // so that one voice's GEMMs are spread over as many slices as its other work allows and
  // its output does not share the noise filter's slice.
  s.gemm_scale4 = 4 + 10 * std::max(0, 12 - nA) / 11;
  int64_t total = static_cast<int64_t>(n) * kCostNoise;
  for (int q = 0; q < Mp; ++q) total += static_cast<int64_t>(n) * s.mlp_cost[q] * s.gemm_scale4 / 4;
  for (int r = 0; r < n; ++r)
    for (int q = 0; q < L; ++q) total += row_cost(s, r, q);
  int active = 0;
  for (int i = 0; i < s.n_slots; ++i) active += s.voices[i].active;
  total += static_cast<int64_t>(active) * kCostOutput * s.gemm_scale4 / 4;
  // The first slice also carries this hop's set-up (events, rows, commands, the cut): it
  // counts as work done before the units.
  const int64_t setup = static_cast<int64_t>(active) * kCostSetup;
  total += setup;
  int *bd = s.bounds.data();
  const int stride = S + 1, per = L + Mp + 1;
  int64_t done = setup;
  for (int R = 0; R < 2; ++R) {
    const int off = R ? nA : 0, rows = R ? nB : nA;
    for (int q = 0; q < L; ++q)
      done = cut_units(s, rows, done, total, [&](int r) { return row_cost(s, off + r, q); },
                       bd + (per * R + q) * stride);
    for (int q = 0; q < Mp; ++q)
      done = cut_units(s, rows, done, total, [&](int) { return s.mlp_cost[q] * s.gemm_scale4 / 4; },
                       bd + (per * R + L + q) * stride);
    done = cut_units(s, rows, done, total, [](int) { return kCostNoise; }, bd + (per * R + L + Mp) * stride);
  }
  cut_units(s, s.n_slots, done, total,
            [&](int i) { return s.voices[i].active ? kCostOutput * s.gemm_scale4 / 4 : 0; },
            bd + 2 * per * stride);
  s.rounds_slice = -1;
  for (int st = 0; st < 2 * per; ++st)
    s.rounds_slice = std::max(s.rounds_slice, last_slice(s, bd + st * stride, st < per ? nA : nB));
}

// Voices that still need a grain for this interval after the staged work: rounds of one
// grain per voice, all stages at once.
void extra_rounds(ngs_synth &s) {
  const int64_t W = s.work_time;
  for (;;) {
    build_rows(s, W);
    if (s.work_n == 0) return;
    run_rows(s, 0, 0, s.work_n);
    run_rows(s, 3, 0, s.work_n);
  }
}

// Slice k of the work: its part of each stage, in stage order.
void slice_work(ngs_synth &s, int k) {
  const int S = s.slices, stride = S + 1, L = s.lat_stages, Mp = s.mlp_parts, per = L + Mp + 1;
  const int *bd = s.bounds.data();
  for (int R = 0; R < 2; ++R) {
    const int off = R ? s.rows_a : 0;
    const int *b0 = bd + (per * R) * stride, *b1 = b0 + L * stride, *b2 = b1 + Mp * stride;
    bool empty = true, fused = true, mlp_whole = true;
    for (int q = 0; q < L; ++q) {
      const int *bq = b0 + q * stride;
      empty = empty && bq[k] == bq[k + 1];
      fused = fused && bq[k] == b0[k] && bq[k + 1] == b0[k + 1];
    }
    for (int q = 0; q < Mp; ++q) {
      const int *bq = b1 + q * stride;
      empty = empty && bq[k] == bq[k + 1];
      mlp_whole = mlp_whole && bq[k] == b1[k] && bq[k + 1] == b1[k + 1];
    }
    if (empty && b2[k] == b2[k + 1]) continue;
    s.row_free = s.round_free[R];
    s.row_resynth = s.round_resynth[R];
    if (fused) {  // every latent sub-stage of the same rows: the whole start and step
      run_rows(s, 0, off + b0[k], off + b0[k + 1]);
    } else {
      for (int q = 0; q < L; ++q) {
        const int *bq = b0 + q * stride;
        run_rows(s, 0, off + bq[k], off + bq[k + 1], q);
      }
    }
    if (mlp_whole && b1[k] == b2[k] && b1[k + 1] == b2[k + 1]) {
      run_rows(s, 3, off + b1[k], off + b1[k + 1]);  // both decoder stages of the same rows: one call
    } else {
      if (mlp_whole) {
        run_rows(s, 1, off + b1[k], off + b1[k + 1]);
      } else {
        for (int q = 0; q < Mp; ++q) {
          const int *bq = b1 + q * stride;
          run_rows(s, 1, off + bq[k], off + bq[k + 1], q);
        }
      }
      run_rows(s, 2, off + b2[k], off + b2[k + 1]);
    }
  }
  // A voice that needs a third grain in one interval (only when the FIR looks ahead more
  // than a hop): rounds in the slice that ends the staged rows, before any output.
  if (k == s.rounds_slice) extra_rounds(s);
  const int *b3 = bd + 2 * per * stride;
  run_rows(s, 4, b3[k], b3[k + 1]);
  mix_voices(s, b3[k], b3[k + 1]);
}

// The interval's end: voices that are over, the counts, the commands consumed.
void finish_work(ngs_synth &s, int64_t W) {
  const int64_t W1 = W + s.hop;
  s.n_commands = 0;
  int active = 0;
  bool resynth = false;
  for (int i = 0; i < s.n_slots; ++i) {
    Voice &v = s.voices[i];
    if (!v.active) continue;
    const bool done = v.end <= W1 || (v.ola.length >= 0 && v.out0 + static_cast<int64_t>(v.ola.length) <= W1);
    if (done) {
      v.active = false;
    } else {
      ++active;
      resynth = resynth || v.kind == NGS_SYNTH_VOICE_RESYNTH;
    }
  }
  s.resynth_live = resynth;
  s.stats.active.store(active, std::memory_order_relaxed);
}

// Ticks: slice k of a hop covers engine samples [P + bound(k), P + bound(k + 1)) of the
// hop starting at P, bound(k) = floor(k hop / slices) (slices <= hop, so none is empty).
inline int tick_bound(const ngs_synth &s, int k) {
  return static_cast<int>(static_cast<int64_t>(k) * s.hop / s.slices);
}
// The slice whose tick starts at offset `off` of its hop (off = bound(k)).
inline int tick_slice(const ngs_synth &s, int64_t off) {
  return static_cast<int>((off * s.slices + s.hop - 1) / s.hop);
}
// Engine time just past the tick that starts at T.
inline int64_t tick_end(const ngs_synth &s, int64_t T) {
  const int64_t P = T - T % s.hop;
  return P + tick_bound(s, tick_slice(s, T - P) + 1);
}

// One tick: the engine samples [s.tick, tick_end) and slice k of a hop's work.
void do_tick(ngs_synth &s) {
  const int64_t T = s.tick;
  const int64_t P = T - T % s.hop;
  const int k = tick_slice(s, T - P);
  const int64_t W = P + s.extra;
  if (k == 0) begin_work(s, W);
  slice_work(s, k);
  if (k == s.slices - 1) finish_work(s, W);
  s.tick = P + tick_bound(s, k + 1);
}

inline const float *tick_output(const ngs_synth &s, int64_t T) {
  const int64_t P = T - T % s.hop;
  return s.mix[(P / s.hop) & 1].data() + (T - P);
}

// ---- events in -----------------------------------------------------------------------------

int64_t engine_time(const ngs_synth &s, int64_t host_frame, int64_t begun) {
  // Resampled: the nearest model-rate sample (half up), in exact integer arithmetic.
  int64_t M = s.resample ? (2 * host_frame * s.sr_model + s.sr_host) / (2 * s.sr_host) + s.D
                         : host_frame;
  M += s.extra;
  // Never before work that had begun when the event arrived (cannot happen with the
  // offset chosen at init).
  return std::max(M, begun + 1);
}

void push_pending(ngs_synth &s, const ngs_synth_event &ev, int64_t M) {
  const size_t cap = s.pending.size();
  if (s.pend_count >= cap) {
    s.stats.overflows.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const size_t i = (s.pend_head + s.pend_count) % cap;
  if (is_resynth_start(ev)) ++s.resynth_pending;
  Pending &p = s.pending[i];
  p.ev = ev;
  p.time = M;
  if (ev.z != nullptr) {
    float *dst = s.pending_z.data() + i * s.zd;
    std::memcpy(dst, ev.z, sizeof(float) * s.zd);
    p.ev.z = dst;
  }
  ++s.pend_count;
}

// ---- input and output -----------------------------------------------------------------------

void write_input(ngs_synth &s, const float *x, int n) {
  for (int i = 0; i < n; ++i) s.in_ring[static_cast<size_t>(s.in_written + i) & s.in_mask] = x ? x[i] : 0.0f;
  s.in_written += n;
}

// Resampled output: feeds chunk engine samples to the output converter, into the FIFO.
void resample_out(ngs_synth &s, const float *x, int n) {
  long used_total = 0;
  while (used_total < n) {
    long used = 0, gen = 0;
    if (!s.conv_out.process(x + used_total, n - used_total, s.src_buf.data(),
                            static_cast<long>(s.src_buf.size()), &used, &gen))
      break;
    for (long i = 0; i < gen; ++i) s.fifo[(s.fifo_write++) & s.fifo_mask] = s.src_buf[i];
    used_total += used;
    if (used == 0 && gen == 0) break;
  }
}

// Whether a voice may take input in this block: a resynth voice started (and not seen
// ended by a hop since), a resynth START waiting in the pending ring or in this block's
// events.
bool input_wanted(const ngs_synth &s, const ngs_synth_event *events, int n_events) {
  if (s.resynth_live || s.resynth_pending > 0) return true;
  for (int i = 0; i < n_events; ++i)
    if (is_resynth_start(events[i])) return true;
  return false;
}

void resample_in(ngs_synth &s, const float *x, int n, bool wanted) {
  static const float zeros[256] = {};
  if (s.polyphase) {
    // Keep the host input as the converter's history; skip the converter while no voice
    // takes input (engine input indices still advance as if it ran: nobody reads them).
    for (int i = 0; i < n; ++i) s.in_hist[static_cast<size_t>(s.in_host + i) & s.in_hist_mask] = x ? x[i] : 0.0f;
    if (!wanted) {
      s.in_host += n;
      s.in_running = false;
      s.in_written = (s.D + s.extra) + s.conv_in.poly->first_output(s.in_host);
      return;
    }
    if (!s.in_running) {  // restart from the last history() host frames
      cpu::Polyphase &p = *s.conv_in.poly;
      const int nh = static_cast<int>(std::min<int64_t>(s.in_host, p.history()));
      float *h = s.src_buf.data();  // src_buf holds >= history() floats (create)
      for (int i = 0; i < nh; ++i) h[i] = s.in_hist[static_cast<size_t>(s.in_host - nh + i) & s.in_hist_mask];
      p.restart(s.in_host, h, nh);
      s.in_running = true;
    }
    s.in_host += n;
  }
  int done = 0;
  while (done < n) {
    const int m = x ? n - done : std::min(n - done, 256);
    long used = 0, gen = 0;
    if (!s.conv_in.process(x ? x + done : zeros, m, s.src_buf.data(), static_cast<long>(s.src_buf.size()),
                           &used, &gen))
      break;
    write_input(s, s.src_buf.data(), static_cast<int>(gen));
    done += static_cast<int>(used);
    if (used == 0 && gen == 0) break;
  }
}

void clear_state(ngs_synth &s) {
  for (Voice &v : s.voices) v.active = false;
  ngs_synth_event ev;
  while (s.queue.pop(ev, s.drain_z.data())) {
  }
  s.pend_head = s.pend_count = 0;
  s.n_commands = 0;
  s.work_n = 0;
  s.host_pos = 0;
  s.tick = 0;
  s.conv = 0;
  s.begun = s.extra - s.hop;  // in spread mode the first work is for [hop, 2 hop)
  for (auto &m : s.mix) std::fill(m.begin(), m.end(), 0.0f);
  std::fill(s.in_ring.begin(), s.in_ring.end(), 0.0f);
  s.in_written = (s.resample ? s.D : 0) + s.extra;
  s.fifo_read = s.fifo_write = 0;
  if (s.resample) {
    s.conv_out.reset();
    s.conv_in.reset();
    std::fill(s.in_hist.begin(), s.in_hist.end(), 0.0f);
  }
  s.in_running = true;
  s.resynth_live = false;
  s.resynth_pending = 0;
  s.in_host = 0;
  s.auto_sequence = 0;
  s.stats.active.store(0, std::memory_order_relaxed);
}

// The engine offset D for resampled hosts: simulates one-frame blocks (the case where
// events and input arrive latest relative to the engine's work) and takes the largest
// lead the engine ever has over the host's events and input, plus a margin.
int64_t find_offset(ngs_synth &s) {
  const int64_t frames = std::max<int64_t>(s.sr_host / 2, 64 * static_cast<int64_t>(s.hop));
  int64_t need = 0;
  int64_t produced_in = 0, produced_out = 0, T = 0, begun = -1;
  std::vector<float> zero(static_cast<size_t>(s.chunk), 0.0f), one(1, 0.0f);
  for (int64_t h = 0; h < frames; ++h) {
    // An event at frame 0 of block h: engine time floor(h r) + D + extra > begun.
    need = std::max(need, begun + 1 - ((2 * h * s.sr_model + s.sr_host) / (2 * s.sr_host) + s.extra));
    long used = 0, gen = 0;
    s.conv_in.process(one.data(), 1, s.src_buf.data(), static_cast<long>(s.src_buf.size()), &used, &gen);
    produced_in += gen;
    while (produced_out < h + 1) {
      if (T % s.hop == 0) {
        begun = T + s.extra;
        // Input indices < begun must be written: D + extra + produced_in >= begun.
        need = std::max(need, T - produced_in);
      }
      long used = 0, gen = 0;
      s.conv_out.process(zero.data(), static_cast<long>(tick_end(s, T) - T), s.src_buf.data(),
                         static_cast<long>(s.src_buf.size()), &used, &gen);
      produced_out += gen;
      T = tick_end(s, T);
    }
  }
  s.conv_in.reset();
  s.conv_out.reset();
  return need + 2;
}

// Runs every code path once at init (a voice of each kind for a few hops, then reset),
// so that the first real block meets no first-touch page, lazy initialisation or cold
// converter state. Stats are zeroed after.
void prime(ngs_synth &s) {
  std::vector<float> out(static_cast<size_t>(s.params.max_block)), z(static_cast<size_t>(s.zd), 0.0f);
  ngs_synth_event ev[3];
  int n = 0;
  if (s.has_latent) {
    ev[n] = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
    ev[n].voice = 1;
    ev[n].kind = NGS_SYNTH_VOICE_ONE_SHOT;
    ev[n].class_index = s.model->lc().n_conds > 0 ? 0 : NGS_CLASS_NONE;
    ++n;
  }
  ev[n] = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
  ev[n].voice = 2;
  ev[n].kind = NGS_SYNTH_VOICE_FREE;
  ev[n].z = z.data();
  ++n;
  ev[n] = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
  ev[n].voice = 3;
  ev[n].kind = NGS_SYNTH_VOICE_RESYNTH;
  ++n;
  const int64_t engine = s.D + s.extra + s.lat_in + 3 * static_cast<int64_t>(s.hop);
  const int64_t frames = static_cast<int64_t>(std::ceil(static_cast<double>(engine) / s.r_mh));
  for (int64_t done = 0; done < frames;) {
    const int m = static_cast<int>(std::min<int64_t>(s.params.max_block, frames - done));
    process(s, done == 0 ? ev : nullptr, done == 0 ? n : 0, nullptr, out.data(), m);
    done += m;
  }
  clear_state(s);
  for (auto *c : {&s.stats.blocks, &s.stats.frames, &s.stats.applied, &s.stats.dropped,
                  &s.stats.overflows, &s.stats.stolen, &s.stats.grains, &s.stats.ticks_total,
                  &s.stats.ticks_max})
    c->store(0, std::memory_order_relaxed);
}

}  // namespace

// ---- PostQueue ---------------------------------------------------------------------------------

void PostQueue::init(int capacity, int z_dim) {
  const size_t cap = pow2_at_least(static_cast<size_t>(std::max(capacity, 2)));
  cells_.reset(new Cell[cap]);
  for (size_t i = 0; i < cap; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  z_.assign(cap * static_cast<size_t>(z_dim), 0.0f);
  mask_ = cap - 1;
  zd_ = z_dim;
  tail_.store(0, std::memory_order_relaxed);
  head_ = 0;
}

bool PostQueue::push(const ngs_synth_event &ev) {
  size_t pos = tail_.load(std::memory_order_relaxed);
  Cell *c;
  for (;;) {
    c = &cells_[pos & mask_];
    const size_t seq = c->seq.load(std::memory_order_acquire);
    const intptr_t diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
    if (diff == 0) {
      if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
    } else if (diff < 0) {
      return false;  // full
    } else {
      pos = tail_.load(std::memory_order_relaxed);
    }
  }
  c->ev = ev;
  if (ev.z != nullptr) {
    float *dst = z_.data() + (pos & mask_) * static_cast<size_t>(zd_);
    std::memcpy(dst, ev.z, sizeof(float) * zd_);
    c->ev.z = dst;
  }
  c->seq.store(pos + 1, std::memory_order_release);
  return true;
}

bool PostQueue::pop(ngs_synth_event &ev, float *z) {
  Cell *c = &cells_[head_ & mask_];
  const size_t seq = c->seq.load(std::memory_order_acquire);
  if (seq != head_ + 1) return false;  // empty, or the producer is still writing it
  ev = c->ev;
  if (ev.z != nullptr) {
    std::memcpy(z, ev.z, sizeof(float) * zd_);
    ev.z = z;
  }
  c->seq.store(head_ + mask_ + 1, std::memory_order_release);
  ++head_;
  return true;
}

// ---- public ------------------------------------------------------------------------------------

bool event_valid(const ngs_synth &s, const ngs_synth_event &ev) noexcept {
  const int type = enum_int(&ev.type);
  if (type < NGS_SYNTH_EVENT_START || type > NGS_SYNTH_EVENT_STOP_ALL) return false;
  if (type != NGS_SYNTH_EVENT_STOP_ALL && ev.voice <= 0) return false;
  if (ev.fade < -1) return false;
  switch (type) {
    case NGS_SYNTH_EVENT_START: {
      if (!std::isfinite(ev.gain) || ev.gain < 0.0f) return false;
      const int kind = enum_int(&ev.kind);
      if (kind == NGS_SYNTH_VOICE_ONE_SHOT) {
        if (!s.has_latent) return false;
        const int nc = s.model->lc().n_conds;
        if (nc == 0 ? ev.class_index != NGS_CLASS_NONE : (ev.class_index < 0 || ev.class_index >= nc))
          return false;
        return std::isfinite(ev.temperature) && ev.temperature >= 0.0f;
      }
      if (kind == NGS_SYNTH_VOICE_FREE) {
        if (ev.use_path == 1) return ev.path_grains >= 1 && path_params_valid(ev.path);
        return ev.use_path == 0 && ev.path_grains >= 0 && ev.z != nullptr && finite_all(ev.z, s.zd);
      }
      return kind == NGS_SYNTH_VOICE_RESYNTH && ev.path_grains >= 0;
    }
    case NGS_SYNTH_EVENT_SET_LATENT:
      return ev.z != nullptr && finite_all(ev.z, s.zd) && !std::isnan(ev.glide);
    case NGS_SYNTH_EVENT_SET_GAIN: return std::isfinite(ev.gain) && ev.gain >= 0.0f;
    default: return true;
  }
}

namespace {

// One session per batch on backend b, each planned for every slot; false when b does not
// stream (kUnsupported from rnn_plan, encode_grains or decode_grains, probed here).
bool make_sessions(ngs_synth &s, Backend &b) {
  try {
    for (Batch &q : s.batches) {
      q.session = b.create_session(s.n_slots, 1, s.fast ? Precision::kFast : Precision::kFp32);
      if (s.has_latent) q.session->rnn_plan(s.n_slots);
      // Probe (its output is scratch): one grain.
      GrainSpec spec;
      spec.first = spec.last = true;
      std::fill(s.h_z.begin(), s.h_z.begin() + s.zd, 0.0f);
      q.session->decode_grains(s.h_z.data(), 1, &spec, s.h_y.data());
    }
  } catch (const Error &e) {
    if (e.status() != kUnsupported) throw;
    for (Batch &q : s.batches) q.session.reset();
    return false;
  }
  return true;
}

// Whether the batches' sessions encode independent grains (probed with one grain).
bool sessions_encode(ngs_synth &s) {
  try {
    const float *src = s.h_enc.data();
    const unsigned char one = 1;
    for (Batch &q : s.batches) q.session->encode_grains(&src, &one, &one, 1, s.h_z.data());
  } catch (const Error &e) {
    if (e.status() != kUnsupported) throw;
    return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<ngs_synth> create(const ngs_model &m, const ngs_synth_params &p) {
  auto sp = std::make_unique<ngs_synth>();
  ngs_synth &s = *sp;
  const WaveformConfig &c = m.wc();
  s.model = &m;
  s.params = p;
  s.sr_model = c.sr;
  s.sr_host = p.sample_rate == 0 ? c.sr : p.sample_rate;
  s.resample = s.sr_host != s.sr_model;
  s.r_mh = static_cast<double>(s.sr_model) / s.sr_host;
  s.hop = c.hop;
  s.l = c.l_grain;
  s.zd = c.z_dim;
  s.F = c.filter_size();
  s.shape.l_grain = c.l_grain;
  s.shape.hop = c.hop;
  s.shape.taps = c.pp_ker;
  s.shape.normalize = c.normalize_ola;
  s.la = s.shape.lookahead();
  s.max_voices = p.max_voices;
  s.n_slots = 2 * p.max_voices;  // room for voices fading out after a stop or a steal
  s.extra = p.spread ? s.hop : 0;
  // Spread mode: as many slices as a hop has host blocks of max_block frames (at least
  // 4, at most one per engine sample), so that a block meets about one slice of the work.
  if (p.spread) {
    const int64_t hop_host = static_cast<int64_t>(s.hop) * s.sr_host / s.sr_model;
    s.slices = static_cast<int>(std::min<int64_t>(s.hop, std::max<int64_t>(4, hop_host / p.max_block)));
  } else {
    s.slices = 1;
  }
  s.chunk = (s.hop + s.slices - 1) / s.slices;  // the longest tick
  s.lat_ev = s.hop - 1;
  s.lat_in = s.l + s.hop - 1 + s.la;
  s.has_latent = m.has_latent();
  s.fast = p.precision == NGS_PRECISION_FAST;  // a valid value: checked by ngs_synth_init
  s.fir.assign(m.file->waveform.pp_fir, m.file->waveform.pp_fir + c.pp_ker);
  s.fir_bias = m.file->waveform.pp_bias;

  // Voices: every buffer carved out of one allocation.
  const size_t per = 3 * static_cast<size_t>(s.zd) + s.shape.buffer_floats() + s.hop;
  s.voice_mem.assign(per * s.n_slots, 0.0f);
  s.voices.resize(s.n_slots);
  for (int i = 0; i < s.n_slots; ++i) {
    float *b = s.voice_mem.data() + per * i;
    Voice &v = s.voices[i];
    v.z_cur = b;
    v.z_from = v.z_cur + s.zd;
    v.z_target = v.z_from + s.zd;
    v.ola.reset(v.z_target + s.zd, s.shape);
    v.out = v.ola.buf + s.shape.buffer_floats();
  }
  // Batch buffers: one set per thread, each for every slot (a thread may get them all).
  const size_t B = static_cast<size_t>(s.n_slots);
  s.work.assign(2 * B, 0);
  s.batches.resize(static_cast<size_t>(p.n_threads));
  s.h_z.assign(2 * B * s.zd, 0.0f);
  s.h_S.assign(2 * B * s.F, 0.0f);
  s.h_y.assign(2 * B * s.l, 0.0f);
  s.h_enc.assign(2 * B * s.l, 0.0f);
  s.h_spec.resize(2 * B);
  s.h_enc_src.assign(2 * B, nullptr);
  s.h_first.assign(2 * B, 0);
  s.h_last.assign(2 * B, 0);
  s.h_start.assign(2 * B, 0);
  s.cmd_head.assign(B, -1);
  s.cmd_tail.assign(B, -1);
  // The sessions: of the model's backend when it streams (rnn_plan, encode_grains,
  // decode_grains), else of a CPU backend of the synth's own.
  if (!make_sessions(s, *m.compute)) {
    s.backend = cpu::make_cpu_backend(m.file->waveform, s.has_latent ? &m.file->latent : nullptr);
    if (!make_sessions(s, *s.backend))
      throw Error(kInternalError, "ngs_synth: the CPU backend does not stream");
  } else if (!sessions_encode(s)) {
    // The backend streams the sequence VAE and the decoder but does not encode grains:
    // resynth voices encode on CPU sessions of the synth's own.
    s.backend = cpu::make_cpu_backend(m.file->waveform, nullptr);
    for (Batch &q : s.batches)
      q.enc_session = s.backend->create_session(s.n_slots, 1, s.fast ? Precision::kFast : Precision::kFp32);
  }
  for (Batch &q : s.batches) q.e.assign(s.has_latent ? m.lc().e_dim : 1, 0.0f);
  // The latent sub-stages: the sessions' rnn_start parts then rnn_step parts (every
  // batch's session is of the same backend), with their estimated costs.
  {
    int cost[Session::kMaxRnnParts];
    s.rnn_cost.clear();
    s.rnn_start_parts = s.has_latent ? s.batches[0].session->rnn_parts(true, cost) : 1;
    if (s.rnn_start_parts < 1 || s.rnn_start_parts > Session::kMaxRnnParts)
      throw Error(kInternalError, "ngs_synth: the backend's rnn_parts is out of range");
    for (int i = 0; i < s.rnn_start_parts; ++i)
      s.rnn_cost.push_back(s.has_latent && cost[i] >= 0 ? cost[i] : kCostStart / s.rnn_start_parts);
    s.rnn_step_parts = s.has_latent ? s.batches[0].session->rnn_parts(false, cost) : 1;
    if (s.rnn_step_parts < 1 || s.rnn_step_parts > Session::kMaxRnnParts)
      throw Error(kInternalError, "ngs_synth: the backend's rnn_parts is out of range");
    for (int i = 0; i < s.rnn_step_parts; ++i)
      s.rnn_cost.push_back(s.has_latent && cost[i] >= 0 ? cost[i] : kCostOneShot / s.rnn_step_parts);
    s.lat_stages = s.rnn_start_parts + s.rnn_step_parts;
  }
  // The MLP sub-stages: the sessions' decoder_mlp parts, their carry rows.
  {
    int cost[Session::kMaxRnnParts];
    s.mlp_parts = s.batches[0].session->decoder_mlp_parts(cost);
    if (s.mlp_parts < 1 || s.mlp_parts > Session::kMaxRnnParts)
      throw Error(kInternalError, "ngs_synth: the backend's decoder_mlp_parts is out of range");
    s.mlp_cost.clear();
    for (int i = 0; i < s.mlp_parts; ++i) s.mlp_cost.push_back(cost[i] >= 0 ? cost[i] : kCostMlp / s.mlp_parts);
    s.carry_ld = s.mlp_parts > 1 ? s.batches[0].session->decoder_mlp_carry_floats() : 0;
    s.h_carry.assign(2 * B * s.carry_ld, 0.0f);
  }
  s.bounds.assign(static_cast<size_t>(2 * (s.lat_stages + s.mlp_parts + 1) + 1) * (s.slices + 1), 0);
  if (p.n_threads > 1) s.pool = std::make_unique<RtPool>(p.n_threads);

  // Events.
  s.queue.init(p.queue_size, s.zd);
  s.drain_z.assign(s.zd, 0.0f);
  s.mix[0].assign(s.hop, 0.0f);
  s.mix[1].assign(s.hop, 0.0f);

  // Resamplers and the engine offset.
  size_t block_model = static_cast<size_t>(p.max_block);
  if (s.resample) {
    // The ngs polyphase converter (the default) when both phase tables fit the bound,
    // else (or when a libsamplerate converter is asked for) libsamplerate.
    s.polyphase = p.resampler == NGS_SYNTH_RESAMPLER_POLYPHASE &&
                  cpu::Polyphase::table_floats(s.sr_model, s.sr_host) <= kPolyphaseMaxTable &&
                  cpu::Polyphase::table_floats(s.sr_host, s.sr_model) <= kPolyphaseMaxTable;
    s.conv_out.ratio = 1.0 / s.r_mh;
    s.conv_in.ratio = s.r_mh;
    if (s.polyphase) {
      s.conv_out.poly = std::make_unique<cpu::Polyphase>(s.sr_model, s.sr_host, kConvPiece + s.chunk);
      s.conv_in.poly = std::make_unique<cpu::Polyphase>(s.sr_host, s.sr_model, p.max_block + 256);
      s.in_hist.assign(pow2_at_least(static_cast<size_t>(s.conv_in.poly->history()) + p.max_block + 256), 0.0f);
      s.in_hist_mask = s.in_hist.size() - 1;
    } else {
      const int type = p.resampler == NGS_SYNTH_RESAMPLER_POLYPHASE ? SRC_SINC_MEDIUM_QUALITY : p.resampler;
      int err = 0;
      s.conv_out.src = src_new(type, 1, &err);
      if (!s.conv_out.src) throw Error(kInternalError, std::string("libsamplerate: ") + src_strerror(err));
      s.conv_in.src = src_new(type, 1, &err);
      if (!s.conv_in.src) throw Error(kInternalError, std::string("libsamplerate: ") + src_strerror(err));
    }
    const double up = 1.0 / s.r_mh;
    block_model = static_cast<size_t>(std::ceil(p.max_block * s.r_mh)) + 64;
    const size_t out_chunk = static_cast<size_t>(std::ceil(s.chunk * up)) + 64;
    size_t buf = std::max(out_chunk, block_model) + 256;
    if (s.polyphase) buf = std::max(buf, static_cast<size_t>(s.conv_in.poly->history()));
    s.src_buf.assign(buf, 0.0f);
    s.fifo.assign(pow2_at_least(static_cast<size_t>(p.max_block) + 4 * out_chunk + 256), 0.0f);
    s.fifo_mask = s.fifo.size() - 1;
    s.D = find_offset(s);
  }
  s.in_ring.assign(pow2_at_least(static_cast<size_t>(s.lat_in + s.l + 4 * s.hop + s.extra + s.D) +
                                 block_model + 256),
                   0.0f);
  s.in_mask = s.in_ring.size() - 1;
  // The pending ring: the posts of up to two blocks' drains, and the events passed to
  // process after a block's last hop point, until their hop point: those of at most the
  // lead window (a hop, the engine offset D and spread's hop, in host frames) and one
  // block, at two events per host frame (events before a block's last hop point never
  // enter it). The commands of one interval: as many, and the stops of every slot.
  const size_t lead = static_cast<size_t>(std::ceil((s.D + s.extra + s.hop) / s.r_mh)) + 1;
  const size_t pend = 2 * static_cast<size_t>(p.queue_size) + 64 +
                      2 * (static_cast<size_t>(p.max_block) + lead);
  s.pending.resize(pend);
  s.pending_z.assign(pend * s.zd, 0.0f);
  s.commands.resize(pend + 2 * static_cast<size_t>(p.max_block) + 4 * B);
  s.cmd_at.assign(s.commands.size(), 0);
  s.cmd_next.assign(s.commands.size(), -1);
  if (s.resample) {
    s.latency = static_cast<int>(std::llround((s.D + s.extra + s.lat_ev) / s.r_mh));
    s.input_latency = static_cast<int>(std::llround((s.D + s.extra + s.lat_in) / s.r_mh));
  } else {
    s.latency = s.extra + s.lat_ev;
    s.input_latency = s.extra + s.lat_in;
  }
  s.fade_default = p.fade_frames < 0
                       ? static_cast<int>(std::lround(0.005 * s.sr_model))
                       : static_cast<int>(host_to_model_frames(s, p.fade_frames));
  s.tsc0 = cycles();
  s.clock0 = seconds_now();
  clear_state(s);
  prime(s);
  return sp;
}

void process(ngs_synth &s, const ngs_synth_event *events, int n_events, const float *in,
             float *out, int n_frames) {
  DenormalScope fp;
  const uint64_t c0 = cycles();
  // Posted events apply at the start of the block, then the block's own, in frame order.
  // At most one queue's worth per block (a fast producer cannot make the drain unbounded),
  // and only while the pending ring has room: otherwise events stay in the queue and
  // ngs_synth_post reports it full (back-pressure instead of a silent loss).
  ngs_synth_event ev;
  for (size_t k = 0; k < s.queue.capacity() && s.pend_count < s.pending.size(); ++k) {
    if (!s.queue.pop(ev, s.drain_z.data())) break;
    push_pending(s, ev, engine_time(s, s.host_pos, s.begun));
  }
  // The block's own events are applied at their hop points as the block runs (begin_work),
  // read from the caller's array; only those after the block's last hop point are copied
  // (below), so a block may carry any number of events.
  s.direct = events;
  s.direct_n = n_events;
  s.direct_i = 0;
  s.direct_last = 0;
  s.direct_host = s.host_pos;
  s.direct_begun = s.begun;
  s.direct_frames = n_frames;
  if (!s.resample) {
    write_input(s, in, n_frames);
    int i = 0;
    while (i < n_frames) {
      const int64_t h = s.host_pos + i;
      if (h == s.tick) do_tick(s);
      const int run = static_cast<int>(std::min<int64_t>(n_frames - i, s.tick - h));
      std::memcpy(out + i, tick_output(s, h), sizeof(float) * run);
      i += run;
    }
  } else {
    resample_in(s, in, n_frames, !s.polyphase || input_wanted(s, events, n_events));
    // The output converter is fed in pieces of at most kConvPiece engine samples, only as
    // far as this block needs: its cost (libsamplerate's sinc filters dominate the cost of
    // a few voices) is spread over the blocks instead of landing a whole tick's worth in
    // one. The converter's output does not depend on how its input is cut, and a tick's
    // work begins no earlier in host time than before, so the offset D stays valid.
    while (s.fifo_write - s.fifo_read < static_cast<size_t>(n_frames)) {
      if (s.conv == s.tick) do_tick(s);
      const int m = static_cast<int>(std::min<int64_t>(kConvPiece, s.tick - s.conv));
      resample_out(s, tick_output(s, s.conv), m);
      s.conv += m;
    }
    for (int i = 0; i < n_frames; ++i) out[i] = s.fifo[(s.fifo_read++) & s.fifo_mask];
  }
  // Events after the block's last hop point wait for theirs in the pending ring.
  for (; s.direct_i < s.direct_n; ++s.direct_i) {
    const ngs_synth_event &e = events[s.direct_i];
    const int64_t M = direct_time(s, e, n_frames);
    if (M < 0) {
      s.stats.dropped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    s.direct_last = e.frame;
    push_pending(s, e, M);
  }
  s.direct = nullptr;
  s.direct_n = s.direct_i = 0;
  s.host_pos += n_frames;
  const uint64_t dt = cycles() - c0;
  s.stats.blocks.fetch_add(1, std::memory_order_relaxed);
  s.stats.frames.fetch_add(static_cast<uint64_t>(n_frames), std::memory_order_relaxed);
  s.stats.ticks_total.fetch_add(dt, std::memory_order_relaxed);
  if (dt > s.stats.ticks_max.load(std::memory_order_relaxed))
    s.stats.ticks_max.store(dt, std::memory_order_relaxed);
}

bool post(ngs_synth &s, const ngs_synth_event &ev) noexcept {
  if (!event_valid(s, ev)) {
    s.stats.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!s.queue.push(ev)) {
    s.stats.overflows.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void reset(ngs_synth &s) noexcept { clear_state(s); }

void get_stats(const ngs_synth &s, ngs_synth_stats &o) noexcept {
  o.blocks = s.stats.blocks.load(std::memory_order_relaxed);
  o.frames = s.stats.frames.load(std::memory_order_relaxed);
  o.events_applied = s.stats.applied.load(std::memory_order_relaxed);
  o.events_dropped = s.stats.dropped.load(std::memory_order_relaxed);
  o.queue_overflows = s.stats.overflows.load(std::memory_order_relaxed);
  o.voices_stolen = s.stats.stolen.load(std::memory_order_relaxed);
  o.grains = s.stats.grains.load(std::memory_order_relaxed);
  o.active_voices = s.stats.active.load(std::memory_order_relaxed);
  // Cycles to microseconds with the rate measured since init.
  const double secs = seconds_now() - s.clock0;
  const double cyc = static_cast<double>(cycles() - s.tsc0);
#ifdef NGS_SYNTH_X86
  const double per_us = secs > 0.0 && cyc > 0.0 ? cyc / (secs * 1e6) : 1.0;
#else
  const double per_us = 1000.0;  // steady_clock nanoseconds
  (void)cyc;
#endif
  const double total = static_cast<double>(s.stats.ticks_total.load(std::memory_order_relaxed));
  o.process_max_us = static_cast<double>(s.stats.ticks_max.load(std::memory_order_relaxed)) / per_us;
  o.process_mean_us = o.blocks ? total / per_us / static_cast<double>(o.blocks) : 0.0;
}

}  // namespace ngs::synth
