// Google Benchmark of the real-time synth (ngs_synth) on the bundled drum model, at a
// 48 kHz host rate (resampled inside the synth): one ngs_synth_process call per iteration
// in steady state, with `voices` one-shot voices retriggered (fresh ids, sample-accurate
// offsets) once per one-shot length plus two hops, their first triggers at random frames
// (random) or all in one block (aligned). Arguments: block, voices, aligned, spread.
// Counters: period_fraction = mean process time / block period (the real-time budget
// used), active = mean playing voices. Percentiles and the real-time voice search:
// `ngs bench --stream` (bench/RESULTS.md "Streaming").
//
//   build/bench/bench_stream [--benchmark_filter=Synth/64/]
// Environment: NGS_BENCH_STREAM_MODEL (default models/drums.safetensors in the source tree).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "ngs/ngs.h"

namespace {

constexpr int kRate = 48000;

ngs_model *model(ngs_model_info *info, std::string *error) {
  static ngs_model *m = nullptr;
  static ngs_model_info i{};
  static std::string err;
  if (m == nullptr && err.empty()) {
    const char *env = std::getenv("NGS_BENCH_STREAM_MODEL");
    const std::string path = env ? env : NGS_SOURCE_DIR "/models/drums.safetensors";
    if (ngs_model_init_from_file(path.c_str(), ngs_model_default_params(), &m) != NGS_STATUS_OK)
      err = "cannot load " + path + ": " + ngs_last_error();
    else
      ngs_model_get_info(m, &i);
  }
  *info = i;
  *error = err;
  return m;
}

void Synth(benchmark::State &state) {
  const int block = int(state.range(0)), voices = int(state.range(1));
  const bool aligned = state.range(2) != 0;
  ngs_model_info info;
  std::string error;
  ngs_model *m = model(&info, &error);
  if (m == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  ngs_synth_params p = ngs_synth_default_params();
  p.sample_rate = kRate;
  p.max_block = block;
  p.max_voices = voices + voices / 4 + 2;
  p.spread = int(state.range(3));
  ngs_synth *s = nullptr;
  if (ngs_synth_init(m, p, &s) != NGS_STATUS_OK) {
    state.SkipWithError(ngs_last_error());
    return;
  }
  const auto host = [&](double f) { return int64_t(std::ceil(f * kRate / info.sample_rate)); };
  const int64_t period = host(double(info.sample_length)) + 2 * host(double(info.hop_size));
  std::mt19937_64 rng(uint64_t(voices) * 7 + uint64_t(block));
  std::vector<int64_t> next(size_t(voices), 0);
  if (!aligned)
    for (int64_t &t : next) t = int64_t(rng() % uint64_t(period));
  std::vector<float> out(static_cast<size_t>(block));
  std::vector<ngs_synth_event> events;
  events.reserve(size_t(voices));
  int64_t frame = 0;
  double active = 0;
  auto step = [&] {
    events.clear();
    for (int i = 0; i < voices; ++i) {
      if (next[size_t(i)] >= frame + block) continue;
      ngs_synth_event e = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
      e.kind = NGS_SYNTH_VOICE_ONE_SHOT;
      e.voice = ngs_synth_voice_new(s);
      e.class_index = info.n_classes > 0 ? i % info.n_classes : NGS_CLASS_NONE;
      e.frame = uint32_t(next[size_t(i)] - frame);
      events.push_back(e);
      next[size_t(i)] += period;
    }
    std::sort(events.begin(), events.end(),
              [](const ngs_synth_event &a, const ngs_synth_event &b) { return a.frame < b.frame; });
    ngs_synth_process(s, events.empty() ? nullptr : events.data(), int(events.size()), nullptr, out.data(),
                      block);
    frame += block;
  };
  while (frame < period) step();  // warm-up: every voice has started once
  for (auto _ : state) {
    step();
    benchmark::DoNotOptimize(out.data());
    state.PauseTiming();
    ngs_synth_stats st;
    ngs_synth_get_stats(s, &st);
    active += st.active_voices;
    state.ResumeTiming();
  }
  const double period_s = double(block) / kRate;
  state.counters["period_fraction"] =
      benchmark::Counter(double(state.iterations()) * period_s, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["active"] = active / double(std::max<int64_t>(1, int64_t(state.iterations())));
  ngs_synth_free(s);
}

void Args(benchmark::internal::Benchmark *b) {
  for (int block : {32, 64, 256, 1024})
    for (int voices : {1, 8, 64, 256})
      for (int aligned : {0, 1}) b->Args({block, voices, aligned, 0});
  for (int block : {32, 64}) b->Args({block, 256, 1, 1});  // aligned, spread mode
  b->ArgNames({"block", "voices", "aligned", "spread"});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(Synth)->Apply(Args);

}  // namespace

BENCHMARK_MAIN();
