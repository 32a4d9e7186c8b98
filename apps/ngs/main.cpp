// ngs: command line of the Neural Granular Sound Synthesis engine (docs/CLI.md).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <new>
#include <thread>

#include "args.h"
#include "bench_stream.h"
#include "commands.h"
#include "io.h"

using namespace ngs_cli;

int main(int argc, char **argv) {
  CLI::App app{"ngs: neural granular sound synthesis (docs/CLI.md)", "ngs"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  app.set_version_flag("--version", std::string("ngs ") + ngs_version());

  GlobalOptions g;
  app.add_option("--backend", g.backend, "Compute backend: cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  add_int(&app, "--threads", g.threads, 0, 1024, "CPU threads per call (0 = all cores)");
  app.add_option("--precision", g.precision,
                 "Arithmetic: fp32 (reference) or fast (bf16 products, fp32 sums, int8 recurrence; "
                 "docs/PRECISION.md)")
      ->check(CLI::IsMember({"fp32", "fast"}))
      ->capture_default_str();

  double peak_dbfs = 0.0;
  auto *peak = add_real(&app, "--peak", peak_dbfs, -60.0, 0.0,
                        "Scale each output audio file so that its peak is at this level "
                        "in dBFS (e.g. -1); default: samples as computed");

  const char *bits_help = "Sample format: 16, 24 (PCM) or 32 (float, WAV only)";

  InfoOptions io;
  auto *info = app.add_subcommand("info", "Show a model's hyper-parameters, classes, sizes, dtype and source hashes");
  info->add_option("MODEL", io.model, "Model file (.safetensors)")->required();
  info->add_flag("--json", io.json, "Print JSON");

  SampleOptions so;
  auto *sample = app.add_subcommand("sample", "Sample one-shots of a class from the sequence model");
  sample->add_option("MODEL", so.model, "Model file")->required();
  sample->add_option("--class,-c", so.cls, "Class name (case-insensitive) or index");
  add_int(sample, "--count,-n", so.count, 1, kMaxCount, "Number of one-shots");
  add_real(sample, "--temperature,-t", so.temperature, 0.0, kMaxTemperature, "Prior temperature");
  add_u64(sample, "--seed,-s", so.seed, "Random seed");
  sample->add_option("-o,--output", so.out, "Output .wav/.flac (count > 1: OUT_0 .. OUT_n-1)")->required();
  sample->add_flag("--single-file", so.single_file, "With --count > 1, write all one-shots back to back in one file");
  add_bits(sample, so.bits, bits_help);

  PathOptions po;
  auto *path = app.add_subcommand("path", "Render a latent path (free synthesis)");
  path->add_option("MODEL", po.model, "Model file")->required();
  auto *kind = path->add_option("--kind,-k", po.kind, "line, circle, spiral, random or back_and_forth")
                   ->capture_default_str();
  path->add_option("--concat", po.concat, "Comma-separated kinds joined end to end (sharing --duration)")
      ->excludes(kind);
  add_real(path, "--duration,-d", po.duration, 0.0, kMaxPathSeconds, "Seconds of audio", true);
  add_u64(path, "--seed,-s", po.seed, "Random seed");
  add_real(path, "--temperature,-t", po.temperature, 0.0, kMaxTemperature, "Prior temperature");
  add_real(path, "--turns", po.turns, -10000.0, 10000.0, "circle, spiral: turns");
  add_int(path, "--points", po.points, 2, 1 << 24, "random: prior points");
  add_int(path, "--legs", po.legs, 1, 1 << 24, "back_and_forth: traversals");
  add_real(path, "--gamma", po.gamma, 0.0, 100.0, "back_and_forth: step shape", true);
  path->add_option("-o,--output", po.out, "Output .wav/.flac")->required();
  add_bits(path, po.bits, bits_help);

  ResynthOptions ro;
  auto *resynth = app.add_subcommand("resynth", "Resynthesise audio through the model (any rate, mono or stereo, any length)");
  resynth->add_option("MODEL", ro.model, "Model file")->required();
  resynth->add_option("INPUT", ro.in, "Input audio file")->required();
  resynth->add_option("-o,--output", ro.out, "Output .wav/.flac at the model's rate")->required();
  add_u64(resynth, "--seed,-s", ro.seed, "Noise seed");
  resynth->add_flag("--normalize", ro.normalize, "Normalise the input peak to 0.9");
  resynth->add_flag("--no-preprocess", ro.no_preprocess, "Skip the pre-processing (input already prepared)");
  add_int(resynth, "--segment-grains", ro.segment_grains, 0, 1 << 20, "Grains per segment (0 = the model's n_grains)");
  add_int(resynth, "--crossfade", ro.crossfade, 0, 1 << 30, "Crossfade of segments in samples (0 = one hop)");
  add_bits(resynth, ro.bits, bits_help);

  EncodeOptions eo;
  auto *encode = app.add_subcommand("encode", "Encode audio into grain latents (.npy, float32 [n_grains, z_dim])");
  encode->add_option("MODEL", eo.model, "Model file")->required();
  encode->add_option("INPUT", eo.in, "Input audio file")->required();
  encode->add_option("-o,--output", eo.out, "Output .npy")->required();
  encode->add_option("--what", eo.what, "mu, z or logvar")
      ->check(CLI::IsMember({"mu", "z", "logvar"}))
      ->capture_default_str();
  add_u64(encode, "--seed,-s", eo.seed, "Seed of the reparametrisation noise (--what z)");
  encode->add_flag("--normalize", eo.normalize, "Normalise the input peak to 0.9");
  encode->add_flag("--no-preprocess", eo.no_preprocess, "Skip the pre-processing (input already prepared)");

  DecodeOptions dop;
  auto *decode = app.add_subcommand("decode", "Decode grain latents (.npy [n_grains, z_dim]) to audio");
  decode->add_option("MODEL", dop.model, "Model file")->required();
  decode->add_option("INPUT", dop.in, "Latents .npy (float32 or float64, C order)")->required();
  decode->add_option("-o,--output", dop.out, "Output .wav/.flac")->required();
  add_u64(decode, "--seed,-s", dop.seed, "Noise seed");
  add_bits(decode, dop.bits, bits_help);

  LoopOptions lo;
  auto *loop = app.add_subcommand("loop", "Render a drum loop from a pattern (JSON: class -> [[onset, amplitude], ...])");
  loop->add_option("MODEL", lo.model, "Model file")->required();
  loop->add_option("PATTERN", lo.pattern, "Pattern .json")->required();
  add_real(loop, "--bpm", lo.bpm, kMinBpm, kMaxBpm, "Tempo in beats per minute");
  add_int(loop, "--bars", lo.bars, 1, kMaxBars, "Loop length in 4/4 bars");
  add_real(loop, "--temperature,-t", lo.temperature, 0.0, kMaxTemperature, "Prior temperature");
  add_u64(loop, "--seed,-s", lo.seed, "Random seed");
  loop->add_option("-o,--output", lo.out, "Output .wav/.flac")->required();
  add_bits(loop, lo.bits, bits_help);

  BenchOptions bo;
  auto *bench = app.add_subcommand("bench", "Benchmark the end-to-end set on this machine");
  bench->add_option("MODEL", bo.model, "Model file")->required();
  bench->add_flag("--json", bo.json, "Print JSON");
  add_real(bench, "--seconds", bo.seconds, 0.0, 3600.0, "Measuring time per case", true);
  bench->add_option("--cases", bo.cases, "Comma-separated subset: decode,sample,encode,resynth_10s,path_10s");
  const StreamBenchOptions &stream = add_stream_bench_options(bench);

  if (argc == 1) {
    std::fprintf(stderr, "%s", app.help().c_str());
    return 2;
  }
  bool done = false;
  if (const int rc = ngs_cli::parse_command_line(app, argc, argv, "ngs", &done); done) return rc;

  if (peak->count() > 0) set_output_peak_dbfs(peak_dbfs);
  if (g.threads == 0) g.threads = int(std::max(1u, std::thread::hardware_concurrency()));
  install_signal_cleanup();
  try {
    if (*info) run_info(g, io);
    else if (*sample) run_sample(g, so);
    else if (*path) run_path(g, po);
    else if (*resynth) run_resynth(g, ro);
    else if (*encode) run_encode(g, eo);
    else if (*decode) run_decode(g, dop);
    else if (*loop) run_loop(g, lo);
    else if (*bench && stream.enabled) run_bench_stream(g, bo.model, bo.json, bo.seconds, stream);
    else if (*bench) run_bench(g, bo);
  } catch (const Failure &e) {
    std::fprintf(stderr, "ngs: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "ngs: error: out of memory (the request is too large for this machine)\n");
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "ngs: error: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "ngs: error: internal error (unknown exception)\n");
    return 1;
  }
  return 0;
}
