// The plain-C host (apps/synth_host, ngs-synth-host) drives ngs_synth block by block from
// its audio thread while its control thread posts a score; its WAV must equal the offline
// renders of the same voices (ngs_sample one-shots, ngs_decode of the held latent and of
// the path, same seeds) placed at the frame of the block start that applied each posted
// event, plus the synth's latency: relative L2 <= 1e-5 over the whole file and over each
// voice's span, and exact silence elsewhere. Which block applies a post depends on the
// threads' timing; the host logs the block starts the thread ordering allows (one when
// the post fell between two process calls, two when it overlapped one) and the check
// picks, per voice, the allowed start that matches (the others are off by a block).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sndfile.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "ngs/ngs.h"
#include "test_util.h"

extern char **environ;

namespace {

struct LoggedVoice {
  std::string type;
  std::vector<uint64_t> starts, releases;  // allowed frames (block starts)
  int class_index = NGS_CLASS_NONE, kind = 0, grains = 0;
  uint32_t sequence = 0;
  float gain = 1;
  std::vector<float> z;
};

struct Log {
  int rate = 0, model_rate = 0, block = 0, latency = 0;
  uint64_t frames = 0, seed = 0;
  std::vector<LoggedVoice> voices;
};

bool read_log(const std::string &path, Log *log, std::string *err) {
  std::ifstream f(path);
  std::string line;
  if (!std::getline(f, line) || line != "ngs-synth-host 1") {
    *err = "not a host log: " + path;
    return false;
  }
  while (std::getline(f, line)) {
    std::istringstream ss(line);
    std::string word;
    ss >> word;
    if (word == "rate") {
      std::string k;
      int variable = 0;
      ss >> log->rate >> k >> log->model_rate >> k >> log->block >> k >> variable >> k >> log->latency >> k >>
          log->frames >> k >> log->seed;
      continue;
    }
    LoggedVoice v;
    v.type = word;
    std::string key;
    while (ss >> key) {
      if (key == "start" || key == "release") {
        std::string list;
        ss >> list;
        std::stringstream ls(list);
        std::string item;
        while (std::getline(ls, item, ',')) (key == "start" ? v.starts : v.releases).push_back(std::stoull(item));
      }
      else if (key == "class") ss >> v.class_index;
      else if (key == "sequence") ss >> v.sequence;
      else if (key == "gain") ss >> v.gain;
      else if (key == "kind") ss >> v.kind;
      else if (key == "grains") ss >> v.grains;
      else if (key == "z") {
        float x;
        while (ss >> x) v.z.push_back(x);
      } else {
        *err = "unknown log field " + key;
        return false;
      }
    }
    if (v.starts.empty() || (v.type == "free" && v.releases.empty())) {
      *err = "voice without start/release frames: " + line;
      return false;
    }
    log->voices.push_back(v);
  }
  return !log->voices.empty();
}

std::vector<float> read_wav(const std::string &path, int *rate) {
  SF_INFO si{};
  SNDFILE *f = sf_open(path.c_str(), SFM_READ, &si);
  if (f == nullptr) return {};
  std::vector<float> x(size_t(si.frames) * size_t(si.channels));
  sf_readf_float(f, x.data(), si.frames);
  sf_close(f);
  *rate = si.samplerate;
  return si.channels == 1 ? x : std::vector<float>{};
}

// Runs a program; its standard output goes to stdout_path when given, its standard error
// then to stdout_path + ".err". Returns the exit status (-1 if it did not exit normally).
int run(const std::vector<std::string> &args, const std::string &stdout_path = "") {
  std::vector<char *> argv;
  for (const std::string &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const std::string stderr_path = stdout_path + ".err";
  if (!stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (spawned != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Grains of a free voice started at frame `start` and released at frame `release` (host
// frames = model frames here, from the synth's init), docs/SYNTH.md "Timing": grain j is
// computed at the hop point W_j = hop * floor((out0 + max(0, j hop - la)) / hop), out0 =
// start + latency, la = the post-processing FIR's look-ahead (taps - 1 - taps / 2); the
// first grain computed at a hop point >= release is the last.
int free_voice_grains(uint64_t start, uint64_t release, int hop, int latency, int la) {
  const int64_t out0 = int64_t(start) + latency, h = hop;
  for (int64_t j = 0;; ++j) {
    const int64_t w = h * ((out0 + std::max<int64_t>(0, j * h - la)) / h);
    if (w >= int64_t(release)) return int(j + 1);
  }
}

// The FIR look-ahead of a model (its configuration's pp_ker).
int fir_lookahead(const ngs_model *m) {
  const char *cfg = ngs_model_metadata(m, "ngs.config");
  if (cfg == nullptr) return -1;
  const auto j = nlohmann::json::parse(cfg, nullptr, false);
  if (j.is_discarded() || !j.contains("waveform") || !j["waveform"].contains("pp_ker")) return -1;
  const int taps = j["waveform"]["pp_ker"].get<int>();
  return taps - 1 - taps / 2;
}

struct Span {
  std::string what;
  size_t begin, end;
};

// One way a logged voice may have played: its offline render and where it lies.
struct Option {
  std::vector<float> audio;  // gain applied
  size_t at;                 // first output frame
  std::string what;
};

// Every allowed placement of every voice of a host log, rendered offline.
std::vector<std::vector<Option>> offline_options(ngs_model *m, const ngs_model_info &info, const Log &log) {
  std::vector<std::vector<Option>> all;
  ngs_context_params cp = ngs_context_default_params();
  int most = info.n_grains;
  for (const LoggedVoice &v : log.voices) most = std::max(most, v.grains + 64);
  cp.max_grains = std::max(8 * info.n_grains, most);
  ngs_context *c = nullptr;
  EXPECT_EQ(ngs_context_init(m, cp, &c), NGS_STATUS_OK) << ngs_last_error();
  if (c == nullptr) return all;
  for (const LoggedVoice &v : log.voices) {
    std::vector<Option> opts;
    auto place = [&](std::vector<float> audio, uint64_t at, float gain, const std::string &what) {
      for (float &x : audio) x *= gain;
      opts.push_back({std::move(audio), size_t(at) + size_t(log.latency), what + " at " + std::to_string(at)});
    };
    if (v.type == "one_shot") {
      ngs_sample_params sp = ngs_sample_default_params();
      sp.class_index = v.class_index;
      sp.seed = log.seed;
      sp.count = int(v.sequence) + 1;
      std::vector<float> all(info.sample_length * size_t(sp.count));
      EXPECT_EQ(ngs_sample(c, sp, all.data(), all.size()), NGS_STATUS_OK) << ngs_last_error();
      for (uint64_t at : v.starts)
        place(std::vector<float>(all.end() - long(info.sample_length), all.end()), at, v.gain,
              "one-shot class " + std::to_string(v.class_index));
    } else if (v.type == "free" || v.type == "path") {
      std::vector<std::pair<uint64_t, int>> placements;  // start, grains
      const int la = fir_lookahead(m);
      EXPECT_GE(la, 0);
      for (uint64_t a : v.starts) {
        if (v.type == "path") placements.push_back({a, v.grains});
        else
          for (uint64_t r : v.releases) placements.push_back({a, free_voice_grains(a, r, info.hop_size, log.latency, la)});
      }
      for (const auto &pr : placements) {
      const int n = pr.second;
      std::vector<float> z;
      if (v.type == "free") {
        EXPECT_EQ(v.z.size(), size_t(info.z_dim));
        for (int g = 0; g < n; ++g) z.insert(z.end(), v.z.begin(), v.z.end());
      } else {
        ngs_path_params pp = ngs_path_default_params();
        pp.kind = static_cast<ngs_path_kind>(v.kind);
        pp.seed = log.seed;
        pp.sequence = v.sequence;
        z.resize(size_t(n) * size_t(info.z_dim));
        EXPECT_EQ(ngs_path_generate(m, pp, n, z.data()), NGS_STATUS_OK) << ngs_last_error();
      }
      ngs_decode_params dp = ngs_decode_default_params();
      dp.seed = log.seed;
      dp.sequence = v.sequence;
      std::vector<float> audio(ngs_model_audio_length(m, n));
      EXPECT_EQ(ngs_decode(c, z.data(), n, dp, audio.data(), audio.size()), NGS_STATUS_OK) << ngs_last_error();
      place(audio, pr.first, v.gain, v.type + " voice, " + std::to_string(n) + " grains");
      }
    }
    all.push_back(std::move(opts));
  }
  ngs_context_free(c);
  return all;
}

// The sum of one option per voice.
std::vector<float> mix(const std::vector<std::vector<Option>> &opts, const std::vector<size_t> &pick, size_t frames) {
  std::vector<float> ref(frames, 0.0f);
  for (size_t v = 0; v < opts.size(); ++v) {
    const Option &o = opts[v][pick[v]];
    for (size_t i = 0; i < o.audio.size() && o.at + i < frames; ++i) ref[o.at + i] += o.audio[i];
  }
  return ref;
}

double error_over(const std::vector<float> &got, const std::vector<float> &ref, size_t b, size_t e) {
  double num = 0, den = 0;
  for (size_t i = b; i < e && i < got.size(); ++i) {
    num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// The offline render of a host log: the combination of allowed placements (one per voice)
// that matches best, searched exhaustively (a handful of voices have two or more; voices
// overlap, so they are not chosen one by one).
std::vector<float> offline(ngs_model *m, const ngs_model_info &info, const Log &log, const std::vector<float> &got,
                           std::vector<Span> *spans, int *ambiguous) {
  const auto opts = offline_options(m, info, log);
  std::vector<size_t> pick(opts.size(), 0), best_pick = pick;
  *ambiguous = 0;
  double combos = 1;
  for (const auto &o : opts) {
    *ambiguous += o.size() > 1;
    combos *= double(o.size());
  }
  EXPECT_LE(combos, 1e5) << "too many allowed placements to search";
  double best = 1e300;
  for (bool more = combos <= 1e5; more;) {
    const double err = ngs::test::rel_l2(got, mix(opts, pick, got.size()));
    if (err < best) {
      best = err;
      best_pick = pick;
    }
    more = false;
    for (size_t v = 0; v < pick.size(); ++v) {  // next combination (odometer)
      if (++pick[v] < opts[v].size()) {
        more = true;
        break;
      }
      pick[v] = 0;
    }
  }
  pick = best_pick;
  for (size_t v = 0; v < opts.size(); ++v) {
    const Option &o = opts[v][pick[v]];
    spans->push_back({o.what, std::min(o.at, got.size()), std::min(o.at + o.audio.size(), got.size())});
  }
  return mix(opts, pick, got.size());
}

// A fresh folder under /tmp, removed with its files when the test ends (also on failure).
struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/ngs_synth_host_XXXXXX";
    if (mkdtemp(t) != nullptr) path = t;
  }
  ~TempDir() {
    if (path.empty()) return;
    if (DIR *d = opendir(path.c_str())) {
      while (dirent *e = readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") unlink((path + "/" + e->d_name).c_str());
      closedir(d);
    }
    rmdir(path.c_str());
  }
};

struct HostCase {
  std::string model;
  std::vector<std::string> options;
};

void check_host(const HostCase &hc) {
  const std::string model = hc.model.find('/') != std::string::npos
                                ? std::string(NGS_SOURCE_DIR) + "/" + hc.model
                                : ngs::test::fixture_path(hc.model, "model.safetensors");
  TempDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const std::string dir = tmp.path, wav = dir + "/out.wav", logp = dir + "/out.log";
  std::vector<std::string> args = {NGS_SYNTH_HOST, model, "-o", wav, "--log", logp};
  args.insert(args.end(), hc.options.begin(), hc.options.end());
  std::string cmd;
  for (const auto &a : args) cmd += a + " ";
  ASSERT_EQ(run(args), 0) << cmd;

  Log log;
  std::string err;
  ASSERT_TRUE(read_log(logp, &log, &err)) << err;
  int rate = 0;
  const std::vector<float> got = read_wav(wav, &rate);
  ASSERT_EQ(got.size(), size_t(log.frames)) << cmd;
  ASSERT_EQ(rate, log.rate);
  ASSERT_EQ(log.rate, log.model_rate) << "the offline comparison is at the model's rate";

  ngs_model *m = nullptr;
  ASSERT_EQ(ngs_model_init_from_file(model.c_str(), ngs_model_default_params(), &m), NGS_STATUS_OK);
  ngs_model_info info;
  ngs_model_get_info(m, &info);
  std::vector<Span> spans;
  int ambiguous = 0;
  const std::vector<float> ref = offline(m, info, log, got, &spans, &ambiguous);
  ngs_model_free(m);
  std::printf("%d of %zu voices had more than one allowed start (a post overlapped a process call)\n", ambiguous,
              log.voices.size());

  EXPECT_EQ(ngs::test::count_nonfinite(got), 0u);
  EXPECT_LE(ngs::test::rel_l2(got, ref), 1e-5) << cmd;
  size_t kinds[3] = {0, 0, 0};
  for (const Span &s : spans) {
    ASSERT_LT(s.begin, s.end) << s.what << " lies beyond the render";
    EXPECT_LE(ngs::test::rel_l2(got.data() + s.begin, ref.data() + s.begin, s.end - s.begin), 1e-5)
        << cmd << ": " << s.what << ", output from frame " << s.begin;
    kinds[s.what.rfind("one-shot", 0) == 0 ? 0 : s.what.rfind("free", 0) == 0 ? 1 : 2]++;
  }
  EXPECT_GT(kinds[1], 0u);
  EXPECT_GT(kinds[2], 0u);
  if (info.has_latent_model) EXPECT_GE(kinds[0], size_t(std::max(1, info.n_classes)));
  // Silence outside every voice: nothing extra was played.
  std::vector<char> covered(got.size(), 0);
  for (const Span &s : spans) std::fill(covered.begin() + long(s.begin), covered.begin() + long(s.end), 1);
  for (size_t i = 0; i < got.size(); ++i)
    if (!covered[i]) ASSERT_EQ(got[i], 0.0f) << "frame " << i << " outside every voice";
}

TEST(SynthHost, PacedFixedBlocksEqualsOfflineRenders) {
  check_host({"lstm22k", {"--block", "64", "--seconds", "1.5", "--seed", "3"}});
}

TEST(SynthHost, FreeRunningVaryingBlocksEqualsOfflineRenders) {
  check_host({"gru16k", {"--block", "333", "--variable", "--free-run", "--seconds", "2", "--seed", "4"}});
}

TEST(SynthHost, BundledDrumModel) {
  check_host({"models/drums.safetensors", {"--block", "128", "--seconds", "2", "--seed", "5"}});
}

TEST(SynthHost, ResampledHostRateRuns) {
  // At 48 kHz the synth resamples inside; the offline comparison at the model's rate is
  // test_synth's (through the same converter). Here: the host's file is at the host
  // rate, as long as the log says, finite and not silent.
  TempDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const std::string wav = tmp.path + "/out.wav", logp = tmp.path + "/out.log";
  ASSERT_EQ(run({NGS_SYNTH_HOST, ngs::test::fixture_path("lstm22k", "model.safetensors"), "-o", wav, "--log", logp,
                 "--rate", "48000", "--block", "256", "--free-run", "--seconds", "1"}),
            0);
  Log log;
  std::string err;
  ASSERT_TRUE(read_log(logp, &log, &err)) << err;
  EXPECT_EQ(log.rate, 48000);
  int rate = 0;
  const auto got = read_wav(wav, &rate);
  EXPECT_EQ(rate, 48000);
  ASSERT_EQ(got.size(), size_t(log.frames));
  EXPECT_GT(got.size(), size_t(48000));
  EXPECT_EQ(ngs::test::count_nonfinite(got), 0u);
  double energy = 0;
  for (float v : got) energy += double(v) * v;
  EXPECT_GT(energy, 0.0);
}

TEST(SynthHost, BadArgumentsFailCleanly) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const std::string dir = tmp.path, wav = dir + "/x.wav";
  const std::string model = ngs::test::fixture_path("gru16k", "model.safetensors");
  EXPECT_EQ(run({NGS_SYNTH_HOST, model, "-o", wav, "--block", "0"}), 1);
  EXPECT_EQ(run({NGS_SYNTH_HOST, model, "-o", wav, "--rate", "7"}), 1);
  EXPECT_EQ(run({NGS_SYNTH_HOST, dir + "/missing.safetensors", "-o", wav}), 1);
  EXPECT_EQ(run({NGS_SYNTH_HOST, model}), 2);
  EXPECT_EQ(run({NGS_SYNTH_HOST, model, "-o", dir + "/no/such/dir/x.wav", "--seconds", "0.2"}), 1);
  EXPECT_FALSE(ngs::test::file_exists(wav)) << "no output file after a failure";
  EXPECT_FALSE(ngs::test::file_exists(wav + ".partial"));
}

#ifdef NGS_CLI
// `ngs bench --stream` (apps/ngs/bench_stream.cpp): the JSON report's structure and
// consistency on a tiny run (no timing is checked), and its argument errors.
TEST(SynthBench, StreamJsonReport) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const std::string dir = tmp.path, out = dir + "/bench.json";
  const std::string model = ngs::test::fixture_path("lstm22k", "model.safetensors");
  ASSERT_EQ(run({NGS_CLI, "bench", model, "--stream", "--json", "--blocks", "64,300", "--voices", "1,3", "--rate",
                 "44100", "--seconds", "0.1", "--search-block", "64", "--max-search", "2"},
                out),
            0);
  std::ifstream f(out);
  const auto j = nlohmann::json::parse(f, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << out;
  EXPECT_EQ(j["host_rate"], 44100);
  EXPECT_EQ(j["model_rate"], 22050);
  ASSERT_TRUE(j["cases"].is_array());
  // 2 blocks x (2 voice counts + the searched maxima not already listed) x 3 variants.
  EXPECT_GE(j["cases"].size(), 12u);
  for (const auto &c : j["cases"]) {
    for (const char *k : {"p50_fraction", "p99_fraction", "max_fraction", "cpu_p99_fraction", "mean_fraction"})
      ASSERT_TRUE(c[k].is_number()) << k;
    EXPECT_LE(c["p50_fraction"].get<double>(), c["p99_fraction"].get<double>());
    EXPECT_LE(c["p99_fraction"].get<double>(), c["max_fraction"].get<double>());
    EXPECT_GT(c["blocks_measured"].get<int>(), 0);
    EXPECT_EQ(c["events_dropped"], 0);
    EXPECT_EQ(c["voices_stolen"], 0);
    EXPECT_GT(c["active_voices_mean"].get<double>(), 0.5 * c["voices"].get<double>());
    EXPECT_GT(c["latency_frames"].get<int>(), 0);
  }
  ASSERT_TRUE(j["realtime_voices"].is_array());
  EXPECT_EQ(j["realtime_voices"].size(), 2u);  // without and with spread mode
  EXPECT_TRUE(j["latency_frames"]["spread"].get<int>() > j["latency_frames"]["default"].get<int>());

  const std::string err = dir + "/err.txt";
  EXPECT_EQ(run({NGS_CLI, "bench", model, "--stream", "--blocks", "0"}, err), 1);
  EXPECT_EQ(run({NGS_CLI, "bench", model, "--stream", "--voices", "two"}, err), 1);
  EXPECT_EQ(run({NGS_CLI, "bench", model, "--stream", "--rate", "7"}, err), 2);
  EXPECT_EQ(run({NGS_CLI, "bench", model, "--stream", "--clock", "sundial"}, err), 2);
  std::ifstream e(err + ".err");
  const std::string last((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
  EXPECT_EQ(last.rfind("ngs: error: --clock", 0), 0u) << last;
  EXPECT_EQ(std::count(last.begin(), last.end(), '\n'), 1) << "one line: " << last;
}
#endif

}  // namespace
