// `ngs bench --stream`: the real-time synth measured as a host runs it. For each host
// block size and voice count, a synth at the host rate renders one-shot voices, each
// retriggered (with a fresh voice id, at a sample-accurate offset in the block) once per
// one-shot length plus two hops, so that about `voices` voices play at every moment:
//   - random triggers: each voice's first trigger at a uniformly random frame;
//   - aligned triggers: all voices triggered in the same block (the worst case: every
//     voice needs its grain at the same hop), also in the synth's spread mode.
// Each ngs_synth_process call is timed (wall clock, and the thread's CPU time) after one
// warm-up cycle; the report gives p50 / p99 / max as a fraction of the block period, and
// the largest voice count that stays real-time (p99 < 50 % of the period) with random
// triggers, found by doubling then bisection.
#include "bench_stream.h"

#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

namespace ngs_cli {

using json = nlohmann::json;

namespace {

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(c + 2);
    }
  return "unknown";
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a.empty() ? "unknown" : a + " " + b + " " + c;
}

double clock_s(clockid_t id) {
  timespec t{};
  clock_gettime(id, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

double nearest_rank(const std::vector<double> &sorted, double p) {
  size_t k = size_t(std::ceil(p / 100.0 * double(sorted.size())));
  k = std::min(std::max<size_t>(k, 1), sorted.size());
  return sorted[k - 1];
}

std::vector<int> parse_list(const std::string &text, const char *what, int lo, int hi) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char *end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < lo || v > hi)
      throw Failure(std::string("--") + what + ": '" + item + "' is not an integer in " +
                    std::to_string(lo) + ".." + std::to_string(hi));
    out.push_back(int(v));
  }
  if (out.empty()) throw Failure(std::string("--") + what + " is empty");
  return out;
}

struct StreamCase {
  int block = 0, voices = 0, spread = 0, latency = 0;
  bool aligned = false;
  size_t blocks = 0;
  double period_us = 0, p50 = 0, p99 = 0, max = 0, mean = 0, active_mean = 0;
  double cpu_p50 = 0, cpu_p99 = 0, cpu_max = 0, cpu_mean = 0;  // the thread's CPU time
  uint64_t stolen = 0, dropped = 0;
};

class StreamBench {
 public:
  StreamBench(const std::string &path, const GlobalOptions &g, int rate, double seconds, uint64_t seed,
              int resampler)
      : rate_(rate), threads_(g.threads), resampler_(resampler), fast_(g.precision == "fast"),
        seconds_(seconds), seed_(seed) {
    ngs_model_params mp = ngs_model_default_params();
    mp.backend = parse_backend(g.backend);  // --backend: the synth's sessions are the model's
    check(ngs_model_init_from_file(path.c_str(), mp, &model_), "model");
    check(ngs_model_get_info(model_, &info_), "model info");
    if (!info_.has_latent_model)
      throw Failure("the model has no sequence VAE: the streaming benchmark plays one-shots");
    if (fast_) {  // what --precision fast gives here (fp32 without a fast path): as a context's
      ngs_context_params cp = ngs_context_default_params();
      cp.precision = NGS_PRECISION_FAST;
      ngs_context *ctx = nullptr;
      check(ngs_context_init(model_, cp, &ctx), "context");
      effective_fast_ = ngs_context_precision(ctx) == NGS_PRECISION_FAST;
      ngs_context_free(ctx);
    }
  }
  // The precision the synth runs: "fast" or "fp32".
  const char *precision() const { return effective_fast_ ? "fast" : "fp32"; }
  ~StreamBench() { ngs_model_free(model_); }
  StreamBench(const StreamBench &) = delete;
  StreamBench &operator=(const StreamBench &) = delete;

  const ngs_model_info &info() const { return info_; }

  StreamCase measure(int block, int voices, bool aligned, int spread) {
    ngs_synth_params p = ngs_synth_default_params();
    p.sample_rate = rate_;
    p.max_block = block;
    p.max_voices = voices + voices / 4 + 2;  // a retriggered voice never steals
    p.n_threads = threads_;
    p.spread = spread;
    p.seed = seed_;
    p.precision = fast_ ? NGS_PRECISION_FAST : NGS_PRECISION_FP32;
    if (resampler_ >= 0) p.resampler = resampler_;
    p.queue_size = std::max(256, 2 * voices);  // the pending-event ring (2 queue_size + 64) holds a block's triggers
    ngs_synth *s = nullptr;
    check(ngs_synth_init(model_, p, &s), "synth init");
    struct Free {
      ngs_synth *s;
      ~Free() { ngs_synth_free(s); }
    } guard{s};
    const int latency = ngs_synth_latency(s);

    const auto to_host = [&](double model_frames) {
      return int64_t(std::ceil(model_frames * double(rate_) / double(info_.sample_rate)));
    };
    const int64_t length = to_host(double(info_.sample_length));
    const int64_t period = length + 2 * to_host(double(info_.hop_size));
    std::mt19937_64 rng(seed_ * 1000003u + uint64_t(voices) * 31u + uint64_t(block));
    std::vector<int64_t> next(size_t(voices), 0);
    if (!aligned)
      for (int64_t &t : next) t = int64_t(rng() % uint64_t(period));
    const int classes = std::max(1, info_.n_classes);
    const int64_t warm = period;
    const int64_t measured = std::max<int64_t>(int64_t(seconds_ * rate_), period);
    const int64_t total = warm + measured;

    std::vector<float> out(static_cast<size_t>(block));
    std::vector<ngs_synth_event> events;
    events.reserve(size_t(voices));
    std::vector<double> frac, cpu;
    frac.reserve(size_t(measured / block + 1));
    cpu.reserve(size_t(measured / block + 1));
    const double period_s = double(block) / double(rate_);
    double cpu_sum = 0, active_sum = 0;
    StreamCase c;
    c.block = block;
    c.voices = voices;
    c.aligned = aligned;
    c.spread = spread;
    c.period_us = period_s * 1e6;
    c.latency = latency;
    for (int64_t f = 0; f < total; f += block) {
      events.clear();
      for (int i = 0; i < voices; ++i) {
        if (next[size_t(i)] >= f + block) continue;
        ngs_synth_event e = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
        e.kind = NGS_SYNTH_VOICE_ONE_SHOT;
        e.voice = ngs_synth_voice_new(s);
        e.class_index = info_.n_classes > 0 ? i % classes : NGS_CLASS_NONE;
        e.frame = uint32_t(next[size_t(i)] - f);
        events.push_back(e);
        next[size_t(i)] += period;
      }
      std::sort(events.begin(), events.end(),
                [](const ngs_synth_event &a, const ngs_synth_event &b) { return a.frame < b.frame; });
      const double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
      const double t0 = clock_s(CLOCK_MONOTONIC);
      const ngs_status st = ngs_synth_process(s, events.empty() ? nullptr : events.data(),
                                              int(events.size()), nullptr, out.data(), block);
      const double t1 = clock_s(CLOCK_MONOTONIC);
      const double c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
      check(st, "synth process");
      if (f >= warm) {
        frac.push_back((t1 - t0) / period_s);
        cpu.push_back((c1 - c0) / period_s);
        cpu_sum += (c1 - c0) / period_s;
        ngs_synth_stats ss;
        if (ngs_synth_get_stats(s, &ss) == NGS_STATUS_OK) active_sum += ss.active_voices;
      }
    }
    ngs_synth_stats ss;
    check(ngs_synth_get_stats(s, &ss), "synth stats");
    c.stolen = ss.voices_stolen;
    c.dropped = ss.events_dropped;
    c.blocks = frac.size();
    double sum = 0;
    for (double v : frac) sum += v;
    std::sort(frac.begin(), frac.end());
    c.mean = sum / double(frac.size());
    c.p50 = nearest_rank(frac, 50);
    c.p99 = nearest_rank(frac, 99);
    c.max = frac.back();
    c.cpu_mean = cpu_sum / double(frac.size());
    std::sort(cpu.begin(), cpu.end());
    c.cpu_p50 = nearest_rank(cpu, 50);
    c.cpu_p99 = nearest_rank(cpu, 99);
    c.cpu_max = cpu.back();
    c.active_mean = active_sum / double(frac.size());
    return c;
  }

 private:
  ngs_model *model_ = nullptr;
  ngs_model_info info_{};
  int rate_, threads_, resampler_;
  bool fast_ = false, effective_fast_ = false;
  double seconds_;
  uint64_t seed_;
};

json to_json(const StreamCase &c) {
  return {{"block", c.block},
          {"period_us", c.period_us},
          {"voices", c.voices},
          {"triggers", c.aligned ? "aligned" : "random"},
          {"spread", c.spread},
          {"latency_frames", c.latency},
          {"blocks_measured", c.blocks},
          {"p50_fraction", c.p50},
          {"p99_fraction", c.p99},
          {"max_fraction", c.max},
          {"mean_fraction", c.mean},
          {"cpu_p50_fraction", c.cpu_p50},
          {"cpu_p99_fraction", c.cpu_p99},
          {"cpu_max_fraction", c.cpu_max},
          {"cpu_mean_fraction", c.cpu_mean},
          {"active_voices_mean", c.active_mean},
          {"voices_stolen", c.stolen},
          {"events_dropped", c.dropped}};
}

void print_header() {
  std::printf("\n%6s %9s %7s %-8s %6s | %8s %8s %8s | %8s %8s %8s %8s | %7s %7s\n", "block", "period_us", "voices",
              "triggers", "spread", "p50 %", "p99 %", "max %", "cpu p50", "cpu p99", "cpu max", "cpu mean", "active",
              "dropped");
}

void print_row(const StreamCase &c) {
  std::printf("%6d %9.0f %7d %-8s %6d | %8.2f %8.2f %8.2f | %8.2f %8.2f %8.2f %8.2f | %7.1f %7llu\n", c.block,
              c.period_us, c.voices, c.aligned ? "aligned" : "random", c.spread, 100 * c.p50, 100 * c.p99,
              100 * c.max, 100 * c.cpu_p50, 100 * c.cpu_p99, 100 * c.cpu_max, 100 * c.cpu_mean, c.active_mean,
              (unsigned long long)c.dropped);
  std::fflush(stdout);
}

}  // namespace

StreamBenchOptions &add_stream_bench_options(CLI::App *bench) {
  static StreamBenchOptions o;
  bench->add_flag("--stream", o.enabled,
                  "Benchmark the real-time synth (ngs_synth) block by block instead");
  bench->add_option("--blocks", o.blocks, "--stream: host block sizes")->capture_default_str();
  bench->add_option("--voices", o.voices, "--stream: simultaneous one-shot voices (the real-time maximum N is added)")
      ->capture_default_str();
  bench->add_option("--rate", o.rate, "--stream: host sample rate")->check(CLI::Range(8000, 192000))->capture_default_str();
  bench->add_option("--search-block", o.search_block, "--stream: block size of the real-time voice search")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  bench->add_option("--max-search", o.max_search, "--stream: largest voice count the search tries")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  bench->add_flag("--no-search", o.no_search, "--stream: skip the real-time voice search");
  bench->add_option("--clock", o.clock,
                    "--stream: clock of the real-time criterion: wall (default) or cpu (the thread's CPU "
                    "time: what a dedicated core would see, on a machine shared with other work)")
      ->check(CLI::IsMember({"wall", "cpu"}))
      ->capture_default_str();
  bench->add_option("--stream-seed", o.seed, "--stream: seed of the trigger times and voices")->capture_default_str();
  bench->add_option("--resampler", o.resampler,
                    "--stream: the synth's rate converter (ngs_synth_params.resampler: 5 ngs polyphase, "
                    "0..4 libsamplerate; -1 = the synth's default)")
      ->check(CLI::Range(-1, 5))
      ->capture_default_str();
  return o;
}

void run_bench_stream(const GlobalOptions &g, const std::string &model, bool as_json, double seconds,
                      const StreamBenchOptions &o) {
  if (!(seconds > 0)) throw Failure("--seconds must be positive");
  const std::vector<int> blocks = parse_list(o.blocks, "blocks", 1, 4096);
  std::vector<int> voices = parse_list(o.voices, "voices", 1, 65536);
  StreamBench b(model, g, o.rate, seconds, o.seed, o.resampler);
  const ngs_model_info &in = b.info();
  const std::string load_before = load_average();
  errno = 0;
  const int nice_value = getpriority(PRIO_PROCESS, 0);

  json j;
  utsname un{};
  uname(&un);
  j["ngs_version"] = ngs_version();
  j["model"] = model;
  j["host_rate"] = o.rate;
  j["model_rate"] = in.sample_rate;
  j["backend"] = ngs_backend_name(in.backend);
  j["threads"] = g.threads;
  j["precision"] = b.precision();
  j["seconds_per_case"] = seconds;
  j["clock"] = o.clock;
  j["resampler"] = o.resampler < 0 ? ngs_synth_default_params().resampler : o.resampler;
  j["machine"] = {{"cpu", cpu_model_name()},
                  {"logical_cores", std::thread::hardware_concurrency()},
                  {"os", std::string(un.sysname) + " " + un.release + " " + un.machine},
                  {"load_average_before", load_before},
                  {"nice", nice_value}};
  j["method"] =
      "one-shot voices retriggered every one-shot length + 2 hops with fresh ids at "
      "sample-accurate offsets; random: first triggers uniform over that period; aligned: "
      "all in the same block; after one warm-up period, each ngs_synth_process call timed "
      "(wall clock); fractions of the block period; p99 nearest rank";

  if (!as_json) {
    std::printf("ngs bench --stream: %s, backend %s, host %d Hz (model %d Hz%s), %d synth thread%s, precision %s\n",
                model.c_str(), ngs_backend_name(in.backend), o.rate, in.sample_rate,
                o.rate == in.sample_rate ? "" : ", resampled", g.threads, g.threads == 1 ? "" : "s",
                b.precision());
    std::printf("CPU %s, load average %s, nice %d; %.1f s of audio per case\n", cpu_model_name().c_str(),
                load_before.c_str(), nice_value, seconds);
  }

  // The largest voice count that stays real-time with random triggers (p99 of the chosen
  // clock under half the period), without and with the spread mode.
  const bool by_cpu = o.clock == "cpu";
  int n_max = 0;
  json searches = json::array();
  if (!o.no_search) {
    for (int spread = 0; spread <= (o.spread ? 1 : 0); ++spread) {
      json probes = json::array();
      auto ok = [&](int v) {
        const StreamCase c = b.measure(o.search_block, v, false, spread);
        probes.push_back(to_json(c));
        const double p99 = by_cpu ? c.cpu_p99 : c.p99;
        if (!as_json)
          std::fprintf(stderr, "ngs: bench --stream: search (spread %d): %d voices, p99 %.1f %% of the period (%s)\n",
                       spread, v, 100 * p99, o.clock.c_str());
        return p99 < 0.5 && c.dropped == 0;
      };
      int lo = 0, hi = -1;
      for (int v = std::min(16, o.max_search);;) {
        if (!ok(v)) {
          hi = v;
          break;
        }
        lo = v;
        if (v >= o.max_search) break;
        v = std::min(2 * v, o.max_search);
      }
      if (hi > 0) {
        while (hi - lo > std::max(1, lo / 32)) {
          const int mid = lo + (hi - lo) / 2;
          (ok(mid) ? lo : hi) = mid;
        }
      }
      searches.push_back({{"block", o.search_block},
                          {"spread", spread},
                          {"voices", lo},
                          {"capped", hi < 0},
                          {"clock", o.clock},
                          {"criterion", "p99 < 50 % of the block period, random triggers, nothing dropped"},
                          {"probes", probes}});
      if (!as_json)
        std::printf("real-time voices (block %d, random triggers, spread %d, %s p99 < 50 %% of the period): %d%s\n",
                    o.search_block, spread, o.clock.c_str(), lo, hi < 0 ? " (search cap)" : "");
      n_max = std::max(n_max, lo);
      if (lo > 0 && std::find(voices.begin(), voices.end(), lo) == voices.end()) voices.push_back(lo);
    }
    j["realtime_voices"] = searches;
  }

  if (!as_json) print_header();
  j["cases"] = json::array();
  const double one_voice_worst_target = 0.05;
  double one_voice_worst = -1, one_voice_worst_spread = -1;
  Progress bar("bench --stream", int(blocks.size() * voices.size()));
  int done = 0;
  for (int block : blocks) {
    for (int v : voices) {
      for (int variant = 0; variant < (o.spread ? 3 : 2); ++variant) {
        const bool aligned = variant > 0;
        const int spread = variant == 2 ? 1 : 0;
        const StreamCase c = b.measure(block, v, aligned, spread);
        if (v == 1 && block == 64) {
          double &w = spread ? one_voice_worst_spread : one_voice_worst;
          w = std::max(w, by_cpu ? c.cpu_max : c.max);
        }
        j["cases"].push_back(to_json(c));
        if (!as_json) print_row(c);
      }
      bar.update(++done);
    }
  }
  for (int spread = 0; spread < 2; ++spread)
    for (const json &c : j["cases"])
      if (c["spread"] == spread) {
        j["latency_frames"][spread ? "spread" : "default"] = c["latency_frames"];
        break;
      }
  j["machine"]["load_average_after"] = load_average();
  json targets = json::object();
  if (one_voice_worst >= 0)
    targets["one_voice_block64_worst_fraction"] = {{"value", one_voice_worst},
                                                   {"target", one_voice_worst_target},
                                                   {"met", one_voice_worst < one_voice_worst_target}};
  if (one_voice_worst_spread >= 0)
    targets["one_voice_block64_worst_fraction_spread"] = {{"value", one_voice_worst_spread},
                                                          {"target", one_voice_worst_target},
                                                          {"met", one_voice_worst_spread < one_voice_worst_target}};
  if (!o.no_search && o.search_block == 64)
    targets["realtime_voices_block64"] = {{"value", n_max}, {"target", 256}, {"met", n_max >= 256}};
  j["targets"] = targets;

  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("\nlatency at %d Hz: %s frames (spread mode: %s); load average after %s\n", o.rate,
              j["latency_frames"].value("default", json(nullptr)).dump().c_str(),
              j["latency_frames"].value("spread", json(nullptr)).dump().c_str(), load_average().c_str());
  if (one_voice_worst >= 0)
    std::printf("target: one voice, 64-frame blocks, worst block (%s) %.2f %% of the period (< 5 %%): %s\n",
                o.clock.c_str(), 100 * one_voice_worst, one_voice_worst < one_voice_worst_target ? "met" : "NOT met");
  if (one_voice_worst_spread >= 0)
    std::printf("target: one voice, 64-frame blocks, spread mode, worst block (%s) %.2f %% of the period (< 5 %%): %s\n",
                o.clock.c_str(), 100 * one_voice_worst_spread,
                one_voice_worst_spread < one_voice_worst_target ? "met" : "NOT met");
  if (!o.no_search && o.search_block == 64)
    std::printf("target: >= 256 simultaneous one-shot voices real-time (%s): %d, %s\n", o.clock.c_str(), n_max,
                n_max >= 256 ? "met" : "NOT met");
}

}  // namespace ngs_cli
