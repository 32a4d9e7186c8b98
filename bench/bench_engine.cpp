// Google Benchmark of the engine's end-to-end cases on the benchmark configurations
// (bench/make_models.py: random weights, drum size at 22.05 kHz and the 16 kHz setting).
//
//   cmake --build build --target bench_models   (or bench/make_models.py --out build/bench-models)
//   build/bench/bench_engine [--benchmark_filter=drums22k]
//
// Each case reports ms per call and the real-time factor (audio seconds per compute
// second) as counters, from wall time (ms, rtf) and from process CPU time (cpu_ms,
// rtf_cpu); the arguments are the thread count (1, then all cores) and the precision
// (fast: 0 fp32, 1 fast, docs/PRECISION.md). sample_x8: 8 one-shots in one ngs_sample.
// Environment: NGS_BENCH_MODELS (model folder, default <build>/bench-models),
// NGS_BENCH_BACKEND (cpu, cuda or auto; default cpu).
#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ngs/ngs.h"

#ifndef NGS_BENCH_MODELS_DIR
#define NGS_BENCH_MODELS_DIR "build/bench-models"
#endif

namespace {

struct Loaded {
  ngs_model *model = nullptr;
  ngs_model_info info{};
  std::string error;
};

Loaded &load(const std::string &config) {
  static std::map<std::string, Loaded> cache;
  auto it = cache.find(config);
  if (it != cache.end()) return it->second;
  Loaded &l = cache[config];
  const char *dir = std::getenv("NGS_BENCH_MODELS");
  std::string path = std::string(dir ? dir : NGS_BENCH_MODELS_DIR) + "/" + config +
                     "/model.safetensors";
  ngs_model_params mp = ngs_model_default_params();
  const char *be = std::getenv("NGS_BENCH_BACKEND");
  std::string b = be ? be : "cpu";
  mp.backend = b == "cuda" ? NGS_BACKEND_CUDA : b == "auto" ? NGS_BACKEND_AUTO : NGS_BACKEND_CPU;
  if (ngs_model_init_from_file(path.c_str(), mp, &l.model) != NGS_STATUS_OK) {
    l.error = "cannot load " + path + " (" + ngs_last_error() +
              "); run: /usr/bin/python3 bench/make_models.py --out " +
              (dir ? dir : NGS_BENCH_MODELS_DIR);
    return l;
  }
  ngs_model_get_info(l.model, &l.info);
  return l;
}

// One context per benchmark run, with room for the longest case (10 s path).
struct Ctx {
  ngs_context *ctx = nullptr;
  ~Ctx() { ngs_context_free(ctx); }
};

double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

enum Case { DECODE, SAMPLE, ENCODE, RESYNTH_10S, PATH_10S, SAMPLE_X8 };

void run_case(benchmark::State &state, const std::string &config, Case c) {
  Loaded &l = load(config);
  if (!l.model) {
    state.SkipWithError(l.error.c_str());
    return;
  }
  const ngs_model_info &in = l.info;
  const int threads = int(state.range(0));
  const bool fast = state.range(1) != 0;  // ngs_context_params.precision
  const int ng = in.n_grains, zd = in.z_dim;
  const int n10 = ngs_model_grains_for_duration(l.model, 10.0);
  Ctx cx;
  ngs_context_params cp = ngs_context_default_params();
  cp.n_threads = threads;
  cp.max_grains = std::max(n10, ng);
  cp.precision = fast ? NGS_PRECISION_FAST : NGS_PRECISION_FP32;
  if (ngs_context_init(l.model, cp, &cx.ctx) != NGS_STATUS_OK) {
    state.SkipWithError(ngs_last_error());
    return;
  }
  if (fast && ngs_context_precision(cx.ctx) != NGS_PRECISION_FAST) {
    state.SkipWithError("fast precision unavailable here (no AVX512_BF16 or CUDA backend)");
    return;
  }
  std::mt19937 rng(42);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ud(-0.5f, 0.5f);
  std::vector<float> z(size_t(ng) * zd), mu(size_t(ng) * zd), audio(in.sample_length);
  std::vector<float> audio8(c == SAMPLE_X8 ? 8 * in.sample_length : 0);
  for (float &v : z) v = nd(rng);
  std::vector<float> enc_in(in.sample_length);
  for (float &v : enc_in) v = ud(rng);
  const size_t len10 = size_t(10 * in.sample_rate);
  std::vector<float> res_in, res_out;
  std::vector<float> zp, path_audio;
  if (c == RESYNTH_10S) {
    res_in.resize(len10);
    res_out.resize(len10);
    for (size_t i = 0; i < len10; ++i)
      res_in[i] = 0.4f * std::sin(float(i) * 0.0627f) + 0.1f * ud(rng);
  }
  if (c == PATH_10S) {
    zp.resize(size_t(n10) * zd);
    path_audio.resize(ngs_model_audio_length(l.model, n10));
  }
  double audio_s = 0;
  switch (c) {
    case DECODE: case SAMPLE: case ENCODE: audio_s = double(in.sample_length) / in.sample_rate; break;
    case SAMPLE_X8: audio_s = 8.0 * double(in.sample_length) / in.sample_rate; break;
    case RESYNTH_10S: audio_s = 10.0; break;
    case PATH_10S: audio_s = double(path_audio.size()) / in.sample_rate; break;
  }
  ngs_sample_params sp = ngs_sample_default_params();
  sp.class_index = in.n_classes > 0 ? 0 : NGS_CLASS_NONE;
  ngs_path_params pp = ngs_path_default_params();
  double total_ms = 0, total_cpu_ms = 0;
  int64_t calls = 0;
  for (auto _ : state) {
    const double c0 = process_cpu_ms();
    auto t0 = std::chrono::steady_clock::now();
    ngs_status st = NGS_STATUS_OK;
    switch (c) {
      case DECODE:
        st = ngs_decode(cx.ctx, z.data(), ng, ngs_decode_default_params(), audio.data(), audio.size());
        break;
      case SAMPLE:
        ++sp.seed;
        st = ngs_sample(cx.ctx, sp, audio.data(), audio.size());
        break;
      case SAMPLE_X8: {  // 8 one-shots in one call: the sequence VAE advances them together
        ngs_sample_params s8 = sp;
        s8.seed = ++sp.seed;
        s8.count = 8;
        st = ngs_sample(cx.ctx, s8, audio8.data(), audio8.size());
        break;
      }
      case ENCODE: {
        int got = 0;
        st = ngs_encode(cx.ctx, enc_in.data(), enc_in.size(), ngs_encode_default_params(),
                        mu.data(), nullptr, nullptr, ng, &got);
        break;
      }
      case RESYNTH_10S:
        st = ngs_resynthesize(cx.ctx, res_in.data(), len10, ngs_resynth_default_params(),
                              res_out.data());
        break;
      case PATH_10S:
        st = ngs_path_generate(l.model, pp, n10, zp.data());
        if (st == NGS_STATUS_OK)
          st = ngs_decode(cx.ctx, zp.data(), n10, ngs_decode_default_params(),
                          path_audio.data(), path_audio.size());
        break;
    }
    auto t1 = std::chrono::steady_clock::now();
    if (st != NGS_STATUS_OK) {
      state.SkipWithError(ngs_last_error());
      break;
    }
    total_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
    total_cpu_ms += process_cpu_ms() - c0;
    ++calls;
    benchmark::ClobberMemory();
  }
  if (calls > 0) {
    state.counters["ms"] = total_ms / double(calls);
    state.counters["rtf"] = audio_s * double(calls) / (total_ms / 1000.0);
    state.counters["audio_s"] = audio_s;
    // Process CPU time (all threads): not inflated by other processes on a shared machine.
    state.counters["cpu_ms"] = total_cpu_ms / double(calls);
    state.counters["rtf_cpu"] = audio_s * double(calls) / (total_cpu_ms / 1000.0);
  }
}

void register_all() {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const char *names[] = {"decode", "sample", "encode", "resynth_10s", "path_10s", "sample_x8"};
  for (const char *config : {"drums22k", "sr16k"}) {
    for (int c = 0; c < 6; ++c) {
      std::string cfg = config;
      auto *b = benchmark::RegisterBenchmark(
          (cfg + "/" + names[c]).c_str(),
          [cfg, c](benchmark::State &s) { run_case(s, cfg, Case(c)); });
      // Args: threads, fast (ngs_context_params.precision: 0 fp32, 1 fast).
      b->ArgNames({"threads", "fast"})->UseRealTime()->Unit(benchmark::kMillisecond);
      for (int fast : {0, 1}) {
        b->Args({1, fast});
        if (cores > 1) b->Args({cores, fast});
      }
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
