// `ngs bench`: the end-to-end set on the current machine and backend. Each case runs
// once to warm up, then repeatedly for --seconds (at least 3 runs); it reports latency
// percentiles, the real-time factor (audio seconds per compute second, from the mean) and
// the number of one-shot voices a single context decodes in real time.
#include <sys/utsname.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "commands.h"

namespace ngs_cli {

using json = nlohmann::json;

namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(c + 2);
    }
  }
  return "unknown";
}

struct Case {
  std::string name;
  std::string what;
  double audio_seconds = 0;
  std::function<void()> run;
};

// CPU time of the whole process (all threads) in ms: unlike wall time, it does not grow
// when other processes share the cores.
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

double percentile(const std::vector<double> &sorted, double p) {
  // Nearest-rank percentile.
  size_t k = size_t(std::ceil(p / 100.0 * double(sorted.size())));
  k = std::min(std::max<size_t>(k, 1), sorted.size());
  return sorted[k - 1];
}

}  // namespace

void run_bench(const GlobalOptions &g, const BenchOptions &o) {
  if (!(o.seconds > 0)) throw Failure("--seconds must be positive");
  Engine e(o.model, g);
  const ngs_model_info &in = e.info;
  const int zd = in.z_dim, ng = in.n_grains;
  const size_t one = in.sample_length;
  const int n10 = ngs_model_grains_for_duration(e.model, 10.0);
  e.reserve_grains(std::max(n10, ng));

  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(-0.5f, 0.5f);

  std::vector<float> z(size_t(ng) * size_t(zd));
  for (float &v : z) v = normal(rng);
  std::vector<float> audio(one), mu(size_t(ng) * size_t(zd));
  std::vector<float> enc_in(one);
  for (float &v : enc_in) v = uni(rng);
  const size_t len10 = size_t(10 * in.sample_rate);
  std::vector<float> res_in(len10), res_out(len10);
  // A decaying tone plus noise: not silence, not pure noise.
  for (size_t i = 0; i < len10; ++i)
    res_in[i] = 0.4f * std::sin(2.0f * 3.14159265f * 220.0f * float(i) / float(in.sample_rate)) *
                    std::exp(-float(i % size_t(in.sample_rate)) / float(in.sample_rate)) +
                0.1f * uni(rng);
  std::vector<float> zpath(size_t(n10) * size_t(zd));
  std::vector<float> audio8(8 * one), emb(size_t(std::max(in.e_dim, 1))), zl(size_t(ng) * size_t(zd));
  for (float &v : emb) v = normal(rng);
  std::vector<float> path_audio(ngs_model_audio_length(e.model, n10));

  std::vector<Case> cases;
  cases.push_back({"decode", "decode of a one-shot (" + std::to_string(ng) + " grains)",
                   e.seconds(one), [&] {
                     check(ngs_decode(e.ctx, z.data(), ng, ngs_decode_default_params(),
                                      audio.data(), audio.size()),
                           "decode");
                   }});
  if (in.has_latent_model) {
    ngs_sample_params sp = ngs_sample_default_params();
    sp.class_index = in.n_classes > 0 ? 0 : NGS_CLASS_NONE;
    cases.push_back({"sample", "sampled one-shot (embedding, sequence decoder, decode)",
                     e.seconds(one), [&, sp]() mutable {
                       ++sp.seed;
                       check(ngs_sample(e.ctx, sp, audio.data(), audio.size()), "sample");
                     }});
    // 8 one-shots in one call (the sequence VAE advances all 8 together): compare with
    // 8 x sample.
    cases.push_back({"sample_x8", "8 sampled one-shots in one ngs_sample call",
                     8 * e.seconds(one), [&, sp]() mutable {
                       ++sp.seed;
                       sp.count = 8;
                       check(ngs_sample(e.ctx, sp, audio8.data(), audio8.size()), "sample");
                     }});
    // The sequence VAE alone (embedding -> z series of a one-shot).
    cases.push_back({"latent_decode", "sequence VAE decode of one one-shot (" +
                                          std::to_string(ng) + " steps)",
                     e.seconds(one), [&, sp] {
                       check(ngs_latent_decode(e.ctx, emb.data(), sp.class_index, ng, zl.data()),
                             "latent_decode");
                     }});
  }
  cases.push_back({"encode", "encode of a one-shot to mu", e.seconds(one), [&] {
                     int got = 0;
                     check(ngs_encode(e.ctx, enc_in.data(), enc_in.size(),
                                      ngs_encode_default_params(), mu.data(), nullptr, nullptr,
                                      ng, &got),
                           "encode");
                   }});
  cases.push_back({"resynth_10s", "resynthesis of 10 s", 10.0, [&] {
                     check(ngs_resynthesize(e.ctx, res_in.data(), len10,
                                            ngs_resynth_default_params(), res_out.data()),
                           "resynth");
                   }});
  cases.push_back({"path_10s", "line path of 10 s (" + std::to_string(n10) + " grains)",
                   e.seconds(path_audio.size()), [&] {
                     ngs_path_params pp = ngs_path_default_params();
                     check(ngs_path_generate(e.model, pp, n10, zpath.data()), "path");
                     check(ngs_decode(e.ctx, zpath.data(), n10, ngs_decode_default_params(),
                                      path_audio.data(), path_audio.size()),
                           "decode");
                   }});

  if (!o.cases.empty()) {
    std::vector<Case> picked;
    std::stringstream ss(o.cases);
    std::string name;
    while (std::getline(ss, name, ',')) {
      auto it = std::find_if(cases.begin(), cases.end(),
                             [&](const Case &c) { return c.name == name; });
      if (it == cases.end())
        throw Failure("unknown or unavailable bench case '" + name +
                      "' (decode, sample, sample_x8, latent_decode, encode, resynth_10s, "
                      "path_10s)");
      picked.push_back(*it);
    }
    cases = picked;
  }

  utsname un{};
  uname(&un);
  json j;
  j["ngs_version"] = ngs_version();
  j["model"] = o.model;
  j["backend"] = ngs_backend_name(in.backend);
  j["threads"] = g.threads;
  j["precision"] = ngs_context_precision(e.ctx) == NGS_PRECISION_FAST ? "fast" : "fp32";
  j["seconds_per_case"] = o.seconds;
  j["machine"] = {{"cpu", cpu_model()},
                  {"logical_cores", std::thread::hardware_concurrency()},
                  {"os", std::string(un.sysname) + " " + un.release + " " + un.machine}};
  j["model_info"] = {{"sample_rate", in.sample_rate}, {"grain_length", in.grain_length},
                     {"n_grains", ng},           {"z_dim", zd},
                     {"weight_bits", in.weight_bits}, {"sample_seconds", e.seconds(one)},
                     {"has_latent_model", in.has_latent_model != 0}};
  j["cases"] = json::array();

  Progress bar("bench", int(cases.size()));
  double total_ms = 0, total_audio = 0, decode_mean_ms = 0;
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    Case &c = cases[ci];
    c.run();  // warm-up
    std::vector<double> t;
    double cpu_ms = 0;
    Stopwatch all;
    while (t.size() < 3 || all.ms() < o.seconds * 1000.0) {
      const double c0 = process_cpu_ms();
      Stopwatch sw;
      c.run();
      t.push_back(sw.ms());
      cpu_ms += process_cpu_ms() - c0;
      if (t.size() >= 100000) break;
    }
    std::sort(t.begin(), t.end());
    double sum = 0;
    for (double v : t) sum += v;
    const double mean = sum / double(t.size());
    if (c.name == "decode") decode_mean_ms = mean;
    total_ms += sum;
    total_audio += c.audio_seconds * double(t.size());
    json r = {{"name", c.name},
              {"what", c.what},
              {"audio_seconds", c.audio_seconds},
              {"runs", t.size()},
              {"mean_ms", mean},
              {"min_ms", t.front()},
              {"p50_ms", percentile(t, 50)},
              {"p90_ms", percentile(t, 90)},
              {"p99_ms", percentile(t, 99)},
              {"max_ms", t.back()},
              {"rtf", c.audio_seconds / (mean / 1000.0)},
              {"cpu_mean_ms", cpu_ms / double(t.size())}};
    j["cases"].push_back(r);
    bar.update(int(ci + 1));
  }
  const double voices = decode_mean_ms > 0 ? e.seconds(one) / (decode_mean_ms / 1000.0) : 0;
  j["voices"] = decode_mean_ms > 0 ? json(voices) : json(nullptr);
  j["voices_note"] = "one-shot decodes per second of audio time on one context";

  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("ngs %s bench: %s, backend %s, %d thread(s), precision %s, %s\n", ngs_version(),
                o.model.c_str(), ngs_backend_name(in.backend), g.threads,
                j["precision"].get<std::string>().c_str(), cpu_model().c_str());
    std::printf("%-12s %6s %9s %9s %9s %9s %9s %10s\n", "case", "runs", "mean ms", "p50 ms",
                "p90 ms", "p99 ms", "max ms", "RTF");
    for (auto &r : j["cases"])
      std::printf("%-12s %6d %9.3f %9.3f %9.3f %9.3f %9.3f %9.1fx\n",
                  r["name"].get<std::string>().c_str(), r["runs"].get<int>(),
                  r["mean_ms"].get<double>(), r["p50_ms"].get<double>(),
                  r["p90_ms"].get<double>(), r["p99_ms"].get<double>(),
                  r["max_ms"].get<double>(), r["rtf"].get<double>());
    if (decode_mean_ms > 0)
      std::printf("voices: %.1f one-shots decoded in real time (one context, %d thread(s))\n",
                  voices, g.threads);
  }
  report_rtf("bench", total_audio, total_ms);
}

}  // namespace ngs_cli
