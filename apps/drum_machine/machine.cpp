#include "machine.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "args.h"  // ngs_cli::truncated

namespace ngs_drum {

using ngs_cli::check;
using ngs_cli::Failure;

const char *const kDefaultPattern = R"({
  "Kick":  [[0.0, 1.0], [0.375, 0.8], [0.5, 1.0]],
  "Snare": [[0.25, 0.9], [0.75, 0.9]],
  "Hat":   [[0.0, 0.5], [0.125, 0.4], [0.25, 0.5], [0.375, 0.4],
            [0.5, 0.5], [0.625, 0.4], [0.75, 0.5], [0.875, 0.6]],
  "Clap":  [[0.75, 0.5]]
})";

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

Machine::Machine(ngs_cli::Engine &e, int rate_, uint64_t seed, float temp)
    : engine(e), rate(rate_), base_seed(seed), temperature(temp) {}

uint64_t Machine::next_seed() { return splitmix64(base_seed + draws++) >> 1; }

void Machine::finish(std::vector<float> &a, TrackSound &t) const {
  float peak = 0.0f;
  for (float v : a) peak = std::max(peak, std::fabs(v));
  if (peak > 0.0f) {
    const float g = kBufferPeak / peak;
    for (float &v : a) v *= g;
  }
  t.audio = rate == engine.info.sample_rate ? std::move(a)
                                            : ngs_cli::resample(a, engine.info.sample_rate, rate);
}

TrackSound Machine::sample_note(int cls, uint64_t seed) {
  if (!engine.info.has_latent_model)
    throw Failure("the model has no sequence VAE: use /sample_path");
  TrackSound t;
  t.class_index = cls;
  t.seed = seed;
  std::vector<float> a(engine.info.sample_length);
  ngs_sample_params sp = ngs_sample_default_params();
  sp.class_index = cls;
  sp.temperature = temperature;
  sp.seed = seed;
  check(ngs_sample(engine.ctx, sp, a.data(), a.size()), "sample");
  finish(a, t);
  return t;
}

TrackSound Machine::sample_path(uint64_t seed) {
  TrackSound t;
  t.path = true;
  t.seed = seed;
  const int n = engine.info.n_grains;
  std::vector<float> z(size_t(n) * size_t(engine.info.z_dim));
  ngs_path_params pp = ngs_path_default_params();
  pp.kind = NGS_PATH_KIND_LINE;
  pp.temperature = temperature;
  pp.seed = seed;
  check(ngs_path_generate(engine.model, pp, n, z.data()), "path");
  std::vector<float> a(ngs_model_audio_length(engine.model, n));
  ngs_decode_params dp = ngs_decode_default_params();
  dp.seed = seed;
  check(ngs_decode(engine.ctx, z.data(), n, dp, a.data(), a.size()), "decode");
  finish(a, t);
  return t;
}

int Machine::parse_class(const std::string &text) const {
  if (engine.info.n_classes == 0) {
    if (text.empty() || text == "none" || text == "-1") return NGS_CLASS_NONE;
    throw Failure("the model is unconditional: the class must be 'none'");
  }
  return engine.parse_class(text);
}

std::string Machine::class_name(int cls) const {
  const char *n = ngs_model_class_name(engine.model, cls);
  return n ? n : "none";
}

std::string Machine::label(int track) const {
  const TrackSound &t = tracks[track];
  return t.path ? "path" : class_name(t.class_index);
}

Grid Machine::pattern_grid(const ngs_cli::Pattern &p) const {
  Grid g;
  for (const std::string &key : p.classes) {
    int track = -1;
    if (key.size() == 1 && key[0] >= '0' && key[0] < '0' + kTracks) {
      track = key[0] - '0';
    } else {
      const int cls = ngs_model_find_class(engine.model, key.c_str());
      if (cls < 0)
        throw Failure("pattern: '" + ngs_cli::truncated(key) + "' is neither a track (0-7) nor a class (" +
                      engine.class_list() + ")");
      for (int t = 0; t < kTracks && track < 0; ++t)
        if (!tracks[t].path && tracks[t].class_index == cls) track = t;
      if (track < 0)
        throw Failure("pattern: no track holds a " + class_name(cls) +
                      " (/sample_note a track with one, or key the pattern by track number)");
    }
    for (const ngs_cli::PatternEvent &e : p.events) {
      if (e.cls != key) continue;
      const double s = double(e.onset) * kSteps;
      const double r = std::round(s);
      if (std::fabs(s - r) > 1e-4)
        throw Failure("pattern: onset " + std::to_string(e.onset) + " of '" + ngs_cli::truncated(key) +
                      "' is not on the 16-step grid (a multiple of 0.0625)");
      g.v[track][int(r)] = e.amplitude;
    }
  }
  return g;
}

std::vector<float> Machine::render(int bars) const {
  const double seconds = bars * kSteps * 60.0 / (bpm * 4.0);
  if (seconds > kMaxRenderSeconds) {
    char b[160];
    std::snprintf(b, sizeof b, "%d bars at %g bpm last %.0f s; a render lasts at most %.0f s", bars, bpm, seconds,
                  kMaxRenderSeconds);
    throw Failure(b);
  }
  Sequencer seq(rate);
  Buffer bufs[kTracks];
  for (int t = 0; t < kTracks; ++t) {
    bufs[t].data = tracks[t].audio;
    seq.set_buffer(t, &bufs[t]);
  }
  SeqCommand c;
  c.type = SeqCommand::kGrid;
  c.grid = grid;
  seq.apply(c);
  c.type = SeqCommand::kBpm;
  c.bpm = bpm;
  seq.apply(c);
  c.type = SeqCommand::kPlay;
  seq.apply(c);
  const size_t n = size_t(std::ceil(double(bars * kSteps) * frames_per_step(rate, bpm)));
  std::vector<float> out(n);
  for (size_t at = 0; at < n; at += 4096) {
    const int m = int(std::min<size_t>(4096, n - at));
    seq.render(out.data() + at, m);
  }
  return out;
}

}  // namespace ngs_drum
