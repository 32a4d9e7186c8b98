// ngs: command line of the Neural Granular Sound Synthesis engine (docs/CLI.md).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <thread>

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
  app.add_option("--threads", g.threads, "CPU threads per call (0 = all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();

  double peak_dbfs = 0.0;
  auto *peak = app.add_option("--peak", peak_dbfs,
                              "Scale each output audio file so that its peak is at this level "
                              "in dBFS (e.g. -1); default: samples as computed")
                   ->check(CLI::Range(-60.0, 0.0));

  const char *bits_help = "Sample format: 16, 24 (PCM) or 32 (float, WAV only)";

  InfoOptions io;
  auto *info = app.add_subcommand("info", "Show a model's hyper-parameters, classes, sizes, dtype and source hashes");
  info->add_option("MODEL", io.model, "Model file (.safetensors)")->required();
  info->add_flag("--json", io.json, "Print JSON");

  SampleOptions so;
  auto *sample = app.add_subcommand("sample", "Sample one-shots of a class from the sequence model");
  sample->add_option("MODEL", so.model, "Model file")->required();
  sample->add_option("--class,-c", so.cls, "Class name (case-insensitive) or index");
  sample->add_option("--count,-n", so.count, "Number of one-shots")->capture_default_str();
  sample->add_option("--temperature,-t", so.temperature, "Prior temperature")->capture_default_str();
  sample->add_option("--seed,-s", so.seed, "Random seed")->capture_default_str();
  sample->add_option("-o,--output", so.out, "Output .wav/.flac (count > 1: OUT_0 .. OUT_n-1)")->required();
  sample->add_flag("--single-file", so.single_file, "With --count > 1, write all one-shots back to back in one file");
  sample->add_option("--bits", so.bits, bits_help)->capture_default_str();

  PathOptions po;
  auto *path = app.add_subcommand("path", "Render a latent path (free synthesis)");
  path->add_option("MODEL", po.model, "Model file")->required();
  auto *kind = path->add_option("--kind,-k", po.kind, "line, circle, spiral, random or back_and_forth")
                   ->capture_default_str();
  path->add_option("--concat", po.concat, "Comma-separated kinds joined end to end (sharing --duration)")
      ->excludes(kind);
  path->add_option("--duration,-d", po.duration, "Seconds of audio")->capture_default_str();
  path->add_option("--seed,-s", po.seed, "Random seed")->capture_default_str();
  path->add_option("--temperature,-t", po.temperature, "Prior temperature")->capture_default_str();
  path->add_option("--turns", po.turns, "circle, spiral: turns")->capture_default_str();
  path->add_option("--points", po.points, "random: prior points")->capture_default_str();
  path->add_option("--legs", po.legs, "back_and_forth: traversals")->capture_default_str();
  path->add_option("--gamma", po.gamma, "back_and_forth: step shape")->capture_default_str();
  path->add_option("-o,--output", po.out, "Output .wav/.flac")->required();
  path->add_option("--bits", po.bits, bits_help)->capture_default_str();

  ResynthOptions ro;
  auto *resynth = app.add_subcommand("resynth", "Resynthesise audio through the model (any rate, mono or stereo, any length)");
  resynth->add_option("MODEL", ro.model, "Model file")->required();
  resynth->add_option("INPUT", ro.in, "Input audio file")->required();
  resynth->add_option("-o,--output", ro.out, "Output .wav/.flac at the model's rate")->required();
  resynth->add_option("--seed,-s", ro.seed, "Noise seed")->capture_default_str();
  resynth->add_flag("--normalize", ro.normalize, "Normalise the input peak to 0.9");
  resynth->add_flag("--no-preprocess", ro.no_preprocess, "Skip the pre-processing (input already prepared)");
  resynth->add_option("--segment-grains", ro.segment_grains, "Grains per segment (0 = the model's n_grains)")->capture_default_str();
  resynth->add_option("--crossfade", ro.crossfade, "Crossfade of segments in samples (0 = one hop)")->capture_default_str();
  resynth->add_option("--bits", ro.bits, bits_help)->capture_default_str();

  EncodeOptions eo;
  auto *encode = app.add_subcommand("encode", "Encode audio into grain latents (.npy, float32 [n_grains, z_dim])");
  encode->add_option("MODEL", eo.model, "Model file")->required();
  encode->add_option("INPUT", eo.in, "Input audio file")->required();
  encode->add_option("-o,--output", eo.out, "Output .npy")->required();
  encode->add_option("--what", eo.what, "mu, z or logvar")
      ->check(CLI::IsMember({"mu", "z", "logvar"}))
      ->capture_default_str();
  encode->add_option("--seed,-s", eo.seed, "Seed of the reparametrisation noise (--what z)")->capture_default_str();
  encode->add_flag("--normalize", eo.normalize, "Normalise the input peak to 0.9");
  encode->add_flag("--no-preprocess", eo.no_preprocess, "Skip the pre-processing (input already prepared)");

  DecodeOptions dop;
  auto *decode = app.add_subcommand("decode", "Decode grain latents (.npy [n_grains, z_dim]) to audio");
  decode->add_option("MODEL", dop.model, "Model file")->required();
  decode->add_option("INPUT", dop.in, "Latents .npy (float32 or float64, C order)")->required();
  decode->add_option("-o,--output", dop.out, "Output .wav/.flac")->required();
  decode->add_option("--seed,-s", dop.seed, "Noise seed")->capture_default_str();
  decode->add_option("--bits", dop.bits, bits_help)->capture_default_str();

  LoopOptions lo;
  auto *loop = app.add_subcommand("loop", "Render a drum loop from a pattern (JSON: class -> [[onset, amplitude], ...])");
  loop->add_option("MODEL", lo.model, "Model file")->required();
  loop->add_option("PATTERN", lo.pattern, "Pattern .json")->required();
  loop->add_option("--bpm", lo.bpm, "Tempo in beats per minute")->capture_default_str();
  loop->add_option("--bars", lo.bars, "Loop length in 4/4 bars")->capture_default_str();
  loop->add_option("--temperature,-t", lo.temperature, "Prior temperature")->capture_default_str();
  loop->add_option("--seed,-s", lo.seed, "Random seed")->capture_default_str();
  loop->add_option("-o,--output", lo.out, "Output .wav/.flac")->required();
  loop->add_option("--bits", lo.bits, bits_help)->capture_default_str();

  BenchOptions bo;
  auto *bench = app.add_subcommand("bench", "Benchmark the end-to-end set on this machine");
  bench->add_option("MODEL", bo.model, "Model file")->required();
  bench->add_flag("--json", bo.json, "Print JSON");
  bench->add_option("--seconds", bo.seconds, "Measuring time per case")->capture_default_str();
  bench->add_option("--cases", bo.cases, "Comma-separated subset: decode,sample,encode,resynth_10s,path_10s");
  const StreamBenchOptions &stream = add_stream_bench_options(bench);

  if (argc == 1) {
    std::fprintf(stderr, "%s", app.help().c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    std::string msg = e.what();
    for (char &c : msg)
      if (c == '\n') c = ' ';
    std::fprintf(stderr, "ngs: error: %s (see ngs --help)\n", msg.c_str());
    return 2;
  }

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
  } catch (const std::exception &e) {
    std::fprintf(stderr, "ngs: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
