// The real-time synth behind ngs_synth (docs/SYNTH.md). synth_api.cpp checks arguments
// and catches exceptions; create() may throw ngs::Error, the audio-thread functions
// (process, post, voice_new, reset) never throw, allocate, lock or wait.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend.h"
#include "cpu/cpu.h"
#include "engine.h"
#include "ngs/ngs.h"
#include "paths.h"
#include "synth_pool.h"

typedef struct SRC_STATE_tag SRC_STATE;

namespace ngs::cpu {
class Polyphase;
}

namespace ngs::synth {

// One rate converter: the ngs polyphase converter (kernels/cpu/resample.h) or a
// libsamplerate state. Both are time-aligned (zero group delay) and independent of how
// their input is cut into calls.
struct Converter {
  SRC_STATE *src = nullptr;
  std::unique_ptr<cpu::Polyphase> poly;
  double ratio = 1.0;  // output rate / input rate
  Converter();
  ~Converter();
  Converter(const Converter &) = delete;
  Converter &operator=(const Converter &) = delete;
  // Consumes up to n input samples, writes up to max_out; false on a converter error.
  bool process(const float *in, long n, float *out, long max_out, long *used, long *gen);
  void reset();
};

// Path voices advance the offline path code one point per hop (paths.h).
using ngs::PathCursor;
using ngs::path_params_valid;

// A linear ramp, advanced once per output sample (the step comes before the sample, so a
// ramp of F frames reaches its target at the F-th sample).
struct Ramp {
  float value = 1.0f, target = 1.0f, step = 0.0f;
  int64_t left = 0;
  void set(float to, int64_t frames) {
    target = to;
    if (frames <= 0) {
      value = to;
      left = 0;
      step = 0.0f;
    } else {
      step = (to - value) / static_cast<float>(frames);
      left = frames;
    }
  }
  float next() {
    if (left > 0) {
      value += step;
      if (--left == 0) value = target;
    }
    return value;
  }
};

struct Voice {
  bool active = false;
  int32_t id = 0;  // 0 once detached (stopped because its id was started again)
  ngs_synth_voice_kind kind = NGS_SYNTH_VOICE_ONE_SHOT;
  uint64_t age = 0;            // start order
  bool stopping = false;       // a stop is scheduled: does not count against max_voices
  int64_t out0 = 0;            // engine time of output sample 0
  int64_t in0 = 0;             // resynth: engine time of input sample 0
  int64_t end = INT64_MAX;     // engine time at which the voice is silent for good (fade end)
  NoiseKey key;
  int class_index = -1;
  int next_grain = 0;          // grains computed so far
  int n_total = -1;            // grain count once known
  bool release = false;        // the next grain is the last
  bool use_path = false;
  PathCursor path;
  bool need_start = false;     // one-shot: state not yet started (done with grain 0)
  float temperature = 1.0f;    // one-shot: embedding temperature
  float *z_cur = nullptr, *z_from = nullptr, *z_target = nullptr;  // [z_dim] (free voices)
  int glide_total = 0, glide_done = 0;
  cpu::OlaStream ola;
  float *out = nullptr;        // [hop]: this interval's output before gain
  int64_t out_t0 = 0, out_t1 = 0;  // engine times covered by out in this interval
  Ramp gain, fade;
};

// A timed change of a voice inside the interval being mixed.
struct Command {
  int64_t time = 0;
  int slot = 0;
  int type = 0;  // ngs_synth_event_type (STOP, SET_GAIN)
  float value = 0.0f;
  int64_t frames = 0;
};

// An event with its engine time and its own copy of z.
struct Pending {
  ngs_synth_event ev{};
  int64_t time = 0;
};

// Bounded multi-producer single-consumer queue (D. Vyukov's bounded queue): producers
// claim a slot with a compare-and-swap (lock-free, never blocks); the consumer never
// waits (a slot still being written ends this block's drain).
class PostQueue {
 public:
  void init(int capacity, int z_dim);
  bool push(const ngs_synth_event &ev);  // false when full
  bool pop(ngs_synth_event &ev, float *z);  // consumer; ev.z points at z when it had one
  size_t capacity() const { return mask_ + 1; }

 private:
  struct Cell {
    std::atomic<size_t> seq{0};
    ngs_synth_event ev{};
  };
  std::unique_ptr<Cell[]> cells_;
  std::vector<float> z_;
  size_t mask_ = 0;
  int zd_ = 0;
  alignas(64) std::atomic<size_t> tail_{0};
  alignas(64) size_t head_ = 0;
};

// One batch's session (its one-shots' recurrent states, decoder and encoder scratch) and
// embedding buffer; group g of a job runs on batch g.
struct Batch {
  std::unique_ptr<Session> session;
  std::unique_ptr<Session> enc_session;  // a CPU session when `session` cannot encode_grains
  std::vector<float> e;
};

struct Stats {
  std::atomic<uint64_t> blocks{0}, frames{0}, applied{0}, dropped{0}, overflows{0}, stolen{0},
      grains{0}, ticks_total{0}, ticks_max{0};
  std::atomic<int> active{0};
};

}  // namespace ngs::synth

struct ngs_synth {
  const ngs_model *model = nullptr;
  ngs_synth_params params{};
  // rates and sizes
  int sr_host = 0, sr_model = 0, hop = 0, l = 0, zd = 0, F = 0, la = 0;
  int n_slots = 0, max_voices = 0;
  bool resample = false;
  double r_mh = 1.0;  // model rate / host rate
  int extra = 0;      // spread mode: one hop
  int slices = 1, chunk = 0;
  int lat_ev = 0, lat_in = 0;  // model samples
  int64_t D = 0;               // resampled: engine offset of host events and input
  int latency = 0, input_latency = 0;  // host frames
  int fade_default = 0;                 // model samples
  // kernels
  // The sessions (one per batch: batches[].session) come from the model's backend when it
  // streams (Session::rnn_plan / rnn_start / rnn_step, encode_grains, decode_grains);
  // otherwise from this CPU backend of the synth's own (its packed weights: a few MB).
  std::unique_ptr<ngs::Backend> backend;
  bool has_latent = false;  // the model has a sequence VAE (one-shots)
  bool fast = false;        // params.precision == NGS_PRECISION_FAST (the sessions may run fp32)
  ngs::cpu::OlaStreamShape shape;
  std::vector<float> fir;
  float fir_bias = 0.0f;
  // voices
  std::vector<ngs::synth::Voice> voices;
  std::vector<float> voice_mem;
  uint64_t age_counter = 0;
  uint32_t auto_sequence = 0;
  // per-hop batch work
  // The rows of the current work: slots needing grains, one-shots [0, row_free), free
  // voices [row_free, row_resynth), resynth voices [row_resynth, work_n).
  // Round A: rows [0, rows_a); round B [rows_a, work_n): the voices that need a second
  // grain in the interval. row_free / row_resynth: the round being run.
  std::vector<int> work;
  int work_n = 0, row_free = 0, row_resynth = 0, rows_a = 0;
  int round_free[2] = {0, 0}, round_resynth[2] = {0, 0};
  int rounds_slice = -1;  // the slice that ends the staged rows (extra rounds run there)
  int64_t work_time = 0;  // the interval start W being computed
  // Per-row data of the staged pipeline (synth.cpp "staged per-hop pipeline"), kept
  // across the slices of a hop: z, spectra, grains, resynth input, specs.
  std::vector<float> h_z, h_S, h_y, h_enc;
  std::vector<ngs::GrainSpec> h_spec;
  std::vector<const float *> h_enc_src;
  std::vector<unsigned char> h_first, h_last;
  std::vector<unsigned char> h_start;  // row r's one-shot starts with this grain (round A)
  // Latent sub-stages of a one-shot row: the session's rnn_start parts, then its rnn_step
  // parts (Session::rnn_parts), rnn_cost[q] the estimated cost of sub-stage q.
  int rnn_start_parts = 1, rnn_step_parts = 1, lat_stages = 2;
  int gemm_scale4 = 4;  // the part costs' factor (in quarters) for this hop's row count
  std::vector<int> rnn_cost;
  // Decoder MLP sub-stages (Session::decoder_mlp_parts), their costs, and each row's carry
  // between them (h_carry [rows][carry_ld]).
  int mlp_parts = 1;
  std::vector<int> mlp_cost;
  std::vector<float> h_carry;
  size_t carry_ld = 0;
  // [2 (lat_stages + mlp_parts + 1) + 1][slices + 1]: first row (slot for the outputs) of
  // each slice, per stage: the latent sub-stages, MLP sub-stages and noise of round A,
  // then of round B, then the outputs.
  std::vector<int> bounds;
  std::vector<int64_t> cmd_at;  // sample at which each command applies
  std::vector<int> cmd_next, cmd_head, cmd_tail;  // each slot's commands, in order
  std::vector<ngs::synth::Batch> batches;  // one per thread
  int group_b = 0, group_e = 0, groups = 0, job_stage = 0, job_sub = -1;  // the rows split across threads
  // events
  ngs::synth::PostQueue queue;
  std::vector<ngs::synth::Pending> pending;  // ring
  std::vector<float> pending_z;
  size_t pend_head = 0, pend_count = 0;
  // The events of the process call being run (the caller's array, read in place): applied
  // at their hop points within the block; those after its last hop point go to `pending`.
  const ngs_synth_event *direct = nullptr;
  int direct_n = 0, direct_i = 0, direct_frames = 0;
  uint32_t direct_last = 0;   // frame of the last accepted one (frame order)
  int64_t direct_host = 0;    // host frame of the block's first sample
  int64_t direct_begun = 0;   // `begun` when the block started
  std::vector<ngs::synth::Command> commands;
  int n_commands = 0;
  std::vector<float> drain_z;
  std::atomic<uint32_t> next_voice_id{0};
  // time and buffers
  int64_t host_pos = 0;   // host frames rendered
  int64_t tick = 0;       // engine time of the next tick
  int64_t conv = 0;       // resampled: engine time of the next sample for the output converter
  int64_t begun = -1;     // last interval start W whose work has begun
  std::vector<float> mix[2];
  std::vector<float> in_ring;
  size_t in_mask = 0;
  int64_t in_written = 0;  // engine index of the next input sample
  // resampling (host rate != model rate)
  ngs::synth::Converter conv_out, conv_in;
  bool polyphase = false;     // conv_in / conv_out are the ngs polyphase converter
  // Polyphase input side: the converter runs only while a voice may take input (a
  // resynth voice is playing or one is about to start); meanwhile the host input is only
  // kept in in_hist, and the converter restarts from it (its output is a pure function
  // of the input, so a restarted stream equals an uninterrupted one bit for bit).
  bool in_running = true;
  bool resynth_live = false;  // a resynth voice was started and may still play
  int resynth_pending = 0;    // resynth STARTs waiting in the pending ring
  int64_t in_host = 0;        // host input frames received since reset
  std::vector<float> in_hist;  // host-rate input ring (the converter's history)
  size_t in_hist_mask = 0;
  std::vector<float> fifo;  // host-rate output ring
  size_t fifo_mask = 0, fifo_read = 0, fifo_write = 0;
  std::vector<float> src_buf;
  // stats
  ngs::synth::Stats stats;
  uint64_t tsc0 = 0;
  double clock0 = 0.0;
  // Workers (n_threads > 1); declared last so that they stop before anything is freed.
  std::unique_ptr<ngs::synth::RtPool> pool;

  ~ngs_synth();
};

namespace ngs::synth {

std::unique_ptr<ngs_synth> create(const ngs_model &m, const ngs_synth_params &p);
// The audio-thread calls. Nothing in them throws by design; the C entry point still
// catches, so that a bug could only silence a block, never terminate the host.
void process(ngs_synth &s, const ngs_synth_event *events, int n_events, const float *in,
             float *out, int n_frames);
bool post(ngs_synth &s, const ngs_synth_event &ev) noexcept;
void reset(ngs_synth &s) noexcept;
void get_stats(const ngs_synth &s, ngs_synth_stats &out) noexcept;
// Whether an event is well formed for this synth (frame not checked).
bool event_valid(const ngs_synth &s, const ngs_synth_event &ev) noexcept;

}  // namespace ngs::synth
