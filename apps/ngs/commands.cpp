#include "commands.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "args.h"
#include "io.h"

namespace ngs_cli {

using json = nlohmann::json;

namespace {

// Tensor count and parameter count from the safetensors header (8-byte length + JSON).
struct FileSummary {
  uint64_t bytes = 0;
  size_t tensors = 0;
  uint64_t parameters = 0;
};

FileSummary summarize_file(const std::string &path) {
  FileSummary s;
  std::ifstream f(path, std::ios::binary);
  if (!f) return s;
  f.seekg(0, std::ios::end);
  s.bytes = uint64_t(f.tellg());
  f.seekg(0);
  unsigned char b[8];
  if (!f.read(reinterpret_cast<char *>(b), 8)) return s;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | b[i];
  if (n == 0 || n > s.bytes - 8 || n > (64u << 20)) return s;
  std::string h(size_t(n), '\0');
  if (!f.read(&h[0], std::streamsize(n))) return s;
  json j = parse_json(h);
  if (j.is_discarded() || !j.is_object()) return s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__" || !it.value().is_object()) continue;
    ++s.tensors;
    uint64_t c = 1;
    const json &shape = it.value().contains("shape") ? it.value()["shape"] : json::array();
    if (!shape.is_array()) continue;
    for (auto &d : shape) c *= d.is_number_unsigned() ? d.get<uint64_t>() : 0;
    s.parameters += c;
  }
  return s;
}

json metadata_json(const ngs_model *m, const char *key) {
  const char *v = ngs_model_metadata(m, key);
  if (!v) return nullptr;
  json j = parse_json(v);  // refuses nesting deeper than kMaxJsonDepth: kept as text
  return j.is_discarded() ? json(v) : j;
}

std::string meta_string(const ngs_model *m, const char *key) {
  const char *v = ngs_model_metadata(m, key);
  return v ? v : "";
}

void write_one_audio(const std::string &path, const std::vector<std::string> &inputs,
                     const float *a, size_t n, int sr, int bits) {
  OutputFile out(path, inputs);
  write_audio(out, a, n, sr, bits);
  out.commit();
}

// Prints "ngs: wrote PATH (S s, R Hz)" to stderr.
void say_wrote(const std::string &path, size_t n, int sr) {
  std::fprintf(stderr, "ngs: wrote %s (%.2f s at %d Hz)\n", path.c_str(), double(n) / sr, sr);
}

// Reads, mixes to mono, resamples to the model's rate and pre-processes (docs/MODEL_SPEC.md §6).
std::vector<float> load_input(Engine &e, const std::string &path, bool normalize,
                              bool preprocess = true) {
  Audio a = read_audio(path);
  std::vector<float> x = resample(a.samples, a.sample_rate, e.info.sample_rate);
  if (x.empty()) throw Failure("input '" + path + "' is shorter than one sample at the model's rate");
  if (preprocess)
    check(ngs_preprocess(e.model, x.data(), x.size(), normalize ? 1 : 0), "pre-processing");
  std::fprintf(stderr, "ngs: input %s: %d channel(s) at %d Hz, %.2f s\n", path.c_str(),
               a.channels, a.sample_rate, double(a.samples.size()) / a.sample_rate);
  return x;
}

}  // namespace

// ---- info ---------------------------------------------------------------------------

// Whether a context asking for NGS_PRECISION_FAST gets it on this machine and backend.
static bool fast_available(const ngs_model *model) {
  ngs_context_params p = ngs_context_default_params();
  p.precision = NGS_PRECISION_FAST;
  p.max_loop_length = 1;
  ngs_context *ctx = nullptr;
  if (ngs_context_init(model, p, &ctx) != NGS_STATUS_OK) return false;
  const bool fast = ngs_context_precision(ctx) == NGS_PRECISION_FAST;
  ngs_context_free(ctx);
  return fast;
}

void run_info(const GlobalOptions &g, const InfoOptions &o) {
  Engine e(o.model, g);
  FileSummary fs = summarize_file(o.model);
  const ngs_model_info &in = e.info;
  json j;
  j["path"] = o.model;
  j["file_bytes"] = fs.bytes;
  j["tensors"] = fs.tensors;
  j["parameters"] = fs.parameters;
  j["format_version"] = meta_string(e.model, "ngs.format_version");
  j["converter_version"] = meta_string(e.model, "ngs.converter_version");
  j["weight_dtype"] = meta_string(e.model, "ngs.weight_dtype");
  j["weight_bits"] = in.weight_bits;
  j["sample_rate"] = in.sample_rate;
  j["grain_length"] = in.grain_length;
  j["hop_size"] = in.hop_size;
  j["n_grains"] = in.n_grains;
  j["sample_length"] = in.sample_length;
  j["sample_seconds"] = e.seconds(in.sample_length);
  j["z_dim"] = in.z_dim;
  j["filter_size"] = in.filter_size;
  j["has_latent_model"] = in.has_latent_model != 0;
  j["e_dim"] = in.e_dim;
  j["n_classes"] = in.n_classes;
  json classes = json::array();
  for (int i = 0; i < in.n_classes; ++i) classes.push_back(ngs_model_class_name(e.model, i));
  j["classes"] = classes;
  j["config"] = metadata_json(e.model, "ngs.config");
  j["sources"] = metadata_json(e.model, "ngs.sources");
  j["backend"] = ngs_backend_name(in.backend);
  // What --precision gives on this machine (fast falls back to fp32 without bf16).
  const bool fast_here = fast_available(e.model);
  j["precision"] = ngs_context_precision(e.ctx) == NGS_PRECISION_FAST ? "fast" : "fp32";
  j["fast_precision_available"] = fast_here;
  j["library_version"] = ngs_version();
  j["load_ms"] = e.load_ms;
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("model        %s\n", o.model.c_str());
    std::printf("file         %llu bytes, %zu tensors, %llu parameters, weights %s\n",
                (unsigned long long)fs.bytes, fs.tensors, (unsigned long long)fs.parameters,
                meta_string(e.model, "ngs.weight_dtype").c_str());
    std::printf("format       version %s, converter %s\n",
                meta_string(e.model, "ngs.format_version").c_str(),
                meta_string(e.model, "ngs.converter_version").c_str());
    std::printf("audio        %d Hz, grain %d, hop %d, %d grains = one-shot of %zu samples (%.3f s)\n",
                in.sample_rate, in.grain_length, in.hop_size, in.n_grains, in.sample_length,
                e.seconds(in.sample_length));
    const json &cfg = j["config"];
    for (const char *part : {"waveform", "latent"}) {
      if (!cfg.is_object() || !cfg.contains(part) || cfg[part].is_null()) {
        if (std::string(part) == "latent") std::printf("latent       none (no sampling)\n");
        continue;
      }
      std::string line;
      for (auto it = cfg[part].begin(); it != cfg[part].end(); ++it) {
        if (it.key() == "classes") continue;
        if (!line.empty()) line += ", ";
        // Values come from the file: printed in brief (nesting is already bounded).
        line += truncated(it.key()) + " " +
                (it.value().is_string() ? truncated(it.value().get<std::string>())
                                        : json_brief(it.value()));
      }
      std::printf("%-12s %s\n", part, line.c_str());
    }
    std::printf("classes      %d", in.n_classes);
    for (int i = 0; i < in.n_classes; ++i)
      std::printf("%s%d %s", i ? ", " : ": ", i, ngs_model_class_name(e.model, i));
    std::printf("\n");
    const json &src = j["sources"];
    if (src.is_object()) {
      for (auto it = src.begin(); it != src.end(); ++it) {
        auto text = [&](const char *k) {
          const json &v = it.value();
          return v.is_object() && v.contains(k) && v[k].is_string() ? v[k].get<std::string>() : "";
        };
        std::string role = text("role"), sha = text("sha256");
        std::printf("source       %s (%s) sha256 %s\n", truncated(it.key(), 200).c_str(),
                    truncated(role).c_str(), truncated(sha, 64).c_str());
      }
    }
    std::printf("backend      %s (library %s)\n", ngs_backend_name(in.backend), ngs_version());
    std::printf("precision    %s (fast: %s)\n",
                ngs_context_precision(e.ctx) == NGS_PRECISION_FAST ? "fast" : "fp32",
                fast_here ? "available, bf16 dot product"
                          : "not available here (no AVX512_BF16, or CUDA): runs fp32");
  }
  std::fprintf(stderr, "ngs: info: model loaded in %.1f ms (no audio rendered)\n", e.load_ms);
}

// ---- sample -------------------------------------------------------------------------

void run_sample(const GlobalOptions &g, const SampleOptions &o) {
  if (o.count < 1) throw Failure("--count must be at least 1");
  check_audio_extension(o.out);
  const std::vector<std::string> inputs = {o.model};
  if (o.count == 1 || o.single_file)
    check_not_input(o.out, inputs);
  else
    for (int i = 0; i < o.count; ++i) check_not_input(indexed_path(o.out, i), inputs);
  Engine e(o.model, g);
  if (!e.info.has_latent_model)
    throw Failure("model '" + o.model + "' has no latent (sequence) model: it cannot sample one-shots; use 'ngs path'");
  ngs_sample_params sp = ngs_sample_default_params();
  sp.class_index = e.parse_class(o.cls);
  sp.temperature = o.temperature;
  sp.seed = o.seed;
  sp.count = o.count;
  const size_t len = e.info.sample_length;
  std::vector<float> audio(len * size_t(o.count));
  Stopwatch sw;
  check(ngs_sample(e.ctx, sp, audio.data(), audio.size()), "sample");
  const double ms = sw.ms();

  if (o.count == 1 || o.single_file) {
    write_one_audio(o.out, inputs, audio.data(), audio.size(), e.info.sample_rate, o.bits);
    say_wrote(o.out, audio.size(), e.info.sample_rate);
  } else {
    // All files are written under temporary names first, then renamed together.
    std::vector<std::unique_ptr<OutputFile>> outs;
    for (int i = 0; i < o.count; ++i) {
      outs.emplace_back(new OutputFile(indexed_path(o.out, i), inputs));
      write_audio(*outs.back(), audio.data() + size_t(i) * len, len, e.info.sample_rate, o.bits);
      outs.back()->finish();
    }
    for (auto &f : outs) {
      f->commit();
      say_wrote(f->path(), len, e.info.sample_rate);
    }
  }
  report_rtf("sample", e.seconds(audio.size()), ms);
}

// ---- path ---------------------------------------------------------------------------

void run_path(const GlobalOptions &g, const PathOptions &o) {
  check_audio_extension(o.out);
  // One call decodes the whole path; its workspace grows by about 3 MB per second.
  if (!(o.duration > 0 && o.duration <= 1800))
    throw Failure("--duration must be in (0, 1800] seconds");
  std::vector<std::string> kinds;
  if (!o.concat.empty()) {
    std::stringstream ss(o.concat);
    std::string k;
    while (std::getline(ss, k, ',')) kinds.push_back(k);
  } else {
    kinds.push_back(o.kind);
  }
  std::vector<int> kind_ids;
  for (auto &k : kinds) {
    int id = ngs_path_kind_from_name(k.c_str());
    if (id < 0)
      throw Failure("unknown path kind '" + k + "' (line, circle, spiral, random, back_and_forth)");
    kind_ids.push_back(id);
  }
  const std::vector<std::string> inputs = {o.model};
  check_not_input(o.out, inputs);
  Engine e(o.model, g);
  const int n = ngs_model_grains_for_duration(e.model, o.duration);
  if (n < 1) throw Failure("--duration is shorter than one grain");
  if (n < int(kinds.size()))
    throw Failure("--duration too short for " + std::to_string(kinds.size()) + " concatenated paths");
  e.reserve_grains(n);
  const int zd = e.info.z_dim;
  std::vector<float> z(size_t(n) * size_t(zd));
  const size_t len = ngs_model_audio_length(e.model, n);
  std::vector<float> audio(len);

  Stopwatch sw;
  int g0 = 0;
  for (size_t k = 0; k < kinds.size(); ++k) {
    // Equal shares of the grains; the first ones get the remainder.
    int nk = n / int(kinds.size()) + (int(k) < n % int(kinds.size()) ? 1 : 0);
    ngs_path_params pp = ngs_path_default_params();
    pp.kind = ngs_path_kind(kind_ids[k]);
    pp.temperature = o.temperature;
    pp.seed = o.seed;
    pp.sequence = uint32_t(k);
    pp.turns = o.turns;
    pp.points = o.points;
    pp.legs = o.legs;
    pp.gamma = o.gamma;
    check(ngs_path_generate(e.model, pp, nk, z.data() + size_t(g0) * size_t(zd)),
          ("path " + kinds[k]).c_str());
    g0 += nk;
  }
  ngs_decode_params dp = ngs_decode_default_params();
  dp.seed = o.seed;
  check(ngs_decode(e.ctx, z.data(), n, dp, audio.data(), audio.size()), "decode");
  const double ms = sw.ms();
  write_one_audio(o.out, inputs, audio.data(), audio.size(), e.info.sample_rate, o.bits);
  say_wrote(o.out, audio.size(), e.info.sample_rate);
  report_rtf("path", e.seconds(audio.size()), ms);
}

// ---- resynth ------------------------------------------------------------------------

// Resynthesis by ngs_resynthesize (docs/PROCESSES.md); its progress callback, called after
// each segment, drives the progress bar.
void run_resynth(const GlobalOptions &g, const ResynthOptions &o) {
  check_audio_extension(o.out);
  const std::vector<std::string> inputs = {o.model, o.in};
  check_not_input(o.out, inputs);
  Engine e(o.model, g);
  if (o.segment_grains < 0 || o.crossfade < 0)
    throw Failure("--segment-grains and --crossfade must not be negative");
  const int G = o.segment_grains > 0 ? o.segment_grains : e.info.n_grains;
  e.reserve_grains(G);
  Stopwatch sw;
  std::vector<float> x = load_input(e, o.in, o.normalize, !o.no_preprocess);
  std::vector<float> y(x.size());
  ngs_resynth_params rp = ngs_resynth_default_params();
  rp.seed = o.seed;
  rp.segment_grains = o.segment_grains;
  rp.crossfade = o.crossfade;
  rp.progress = [](float fraction, void *user) {  // percent done
    static_cast<Progress *>(user)->update(int(std::lround(double(fraction) * 100.0)));
  };
  {
    Progress bar("resynth", 100);  // cleared before the messages below
    rp.progress_user_data = &bar;
    check(ngs_resynthesize(e.ctx, x.data(), x.size(), rp, y.data()), "resynthesis");
  }
  const double ms = sw.ms();
  write_one_audio(o.out, inputs, y.data(), y.size(), e.info.sample_rate, o.bits);
  say_wrote(o.out, y.size(), e.info.sample_rate);
  report_rtf("resynth", e.seconds(y.size()), ms);
}

// ---- encode -------------------------------------------------------------------------

void run_encode(const GlobalOptions &g, const EncodeOptions &o) {
  if (o.what != "mu" && o.what != "z" && o.what != "logvar")
    throw Failure("--what must be mu, z or logvar");
  if (o.out.size() < 4 || o.out.compare(o.out.size() - 4, 4, ".npy") != 0)
    throw Failure("output '" + o.out + "': latents are written as .npy (use a .npy name)");
  const std::vector<std::string> inputs = {o.model, o.in};
  check_not_input(o.out, inputs);
  Engine e(o.model, g);
  Stopwatch sw;
  std::vector<float> x = load_input(e, o.in, o.normalize, !o.no_preprocess);
  const size_t hop = size_t(e.info.hop_size);
  // n grains cover (n + 3) * hop samples; the end is zero-padded to the next hop.
  const size_t hops = (x.size() + hop - 1) / hop;
  const int n = int(std::max<size_t>(1, hops > 3 ? hops - 3 : 1));
  x.resize(size_t(n + 3) * hop, 0.0f);
  e.reserve_grains(n);
  std::vector<float> lat(size_t(n) * size_t(e.info.z_dim));
  float *mu = o.what == "mu" ? lat.data() : nullptr;
  float *lv = o.what == "logvar" ? lat.data() : nullptr;
  float *z = o.what == "z" ? lat.data() : nullptr;
  ngs_encode_params ep = ngs_encode_default_params();
  ep.seed = o.seed;
  int got = 0;
  check(ngs_encode(e.ctx, x.data(), x.size(), ep, mu, lv, z, n, &got), "encode");
  const double ms = sw.ms();
  if (got != n) throw Failure("encode returned " + std::to_string(got) + " grains, expected " + std::to_string(n));
  OutputFile out(o.out, inputs);
  write_npy(out, lat.data(), {size_t(n), size_t(e.info.z_dim)});
  out.commit();
  std::fprintf(stderr, "ngs: wrote %s (%s, %d grains x %d, float32)\n", o.out.c_str(),
               o.what.c_str(), n, e.info.z_dim);
  report_rtf("encode", e.seconds(x.size()), ms);
}

// ---- decode -------------------------------------------------------------------------

void run_decode(const GlobalOptions &g, const DecodeOptions &o) {
  check_audio_extension(o.out);
  const std::vector<std::string> inputs = {o.model, o.in};
  check_not_input(o.out, inputs);
  NpyArray a = read_npy(o.in);
  Engine e(o.model, g);
  const size_t zd = size_t(e.info.z_dim);
  size_t n;
  if (a.shape.size() == 2 && a.shape[1] == zd)
    n = a.shape[0];
  else if (a.shape.size() == 1 && a.shape[0] == zd)
    n = 1;
  else {
    std::string s;
    for (size_t d : a.shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
    throw Failure("'" + o.in + "' has shape (" + s + "), expected (n_grains, " +
                  std::to_string(zd) + ")");
  }
  if (n < 1) throw Failure("'" + o.in + "' holds no grains");
  if (n > size_t(1) << 24) throw Failure("'" + o.in + "' holds too many grains");
  e.reserve_grains(int(n));
  std::vector<float> audio(ngs_model_audio_length(e.model, int(n)));
  ngs_decode_params dp = ngs_decode_default_params();
  dp.seed = o.seed;
  Stopwatch sw;
  check(ngs_decode(e.ctx, a.data.data(), int(n), dp, audio.data(), audio.size()), "decode");
  const double ms = sw.ms();
  write_one_audio(o.out, inputs, audio.data(), audio.size(), e.info.sample_rate, o.bits);
  say_wrote(o.out, audio.size(), e.info.sample_rate);
  report_rtf("decode", e.seconds(audio.size()), ms);
}

// ---- loop ---------------------------------------------------------------------------

void run_loop(const GlobalOptions &g, const LoopOptions &o) {
  check_audio_extension(o.out);
  if (!(o.bpm >= kMinBpm && o.bpm <= kMaxBpm))
    throw Failure("--bpm must be in [" + std::to_string(int(kMinBpm)) + ", " + std::to_string(int(kMaxBpm)) + "]");
  if (o.bars < 1 || o.bars > kMaxBars) throw Failure("--bars must be in [1, " + std::to_string(kMaxBars) + "]");
  const std::vector<std::string> inputs = {o.model, o.pattern};
  check_not_input(o.out, inputs);
  const Pattern pattern = read_pattern(o.pattern);
  const std::string where = "pattern '" + o.pattern + "': ";
  Engine e(o.model, g);
  if (!e.info.has_latent_model || e.info.n_classes == 0)
    throw Failure("model '" + o.model + "' has no classes: loops need a conditional latent model");
  for (const std::string &name : pattern.classes)
    if (ngs_model_find_class(e.model, name.c_str()) < 0)
      throw Failure(where + "unknown class '" + truncated(name) + "' (classes: " + e.class_list() + ")");
  std::vector<ngs_loop_event> ev;
  for (const PatternEvent &pe : pattern.events)
    ev.push_back({ngs_model_find_class(e.model, pe.cls.c_str()), pe.onset, pe.amplitude});
  const size_t len = size_t(std::llround(o.bars * 4.0 * 60.0 / o.bpm * e.info.sample_rate));
  e.reserve_loop(len);  // the library's default context holds 10 s
  std::vector<float> audio(len);
  ngs_loop_params lp = ngs_loop_default_params();
  lp.seed = o.seed;
  lp.temperature = o.temperature;
  Stopwatch sw;
  check(ngs_render_loop(e.ctx, ev.data(), int(ev.size()), lp, audio.data(), len), "loop");
  const double ms = sw.ms();
  write_one_audio(o.out, inputs, audio.data(), len, e.info.sample_rate, o.bits);
  say_wrote(o.out, len, e.info.sample_rate);
  std::fprintf(stderr, "ngs: loop: %zu events, %d bar(s) at %.1f bpm\n", ev.size(), o.bars, o.bpm);
  report_rtf("loop", e.seconds(len), ms);
}

}  // namespace ngs_cli
