// The grain encoder's convolution algorithms on a model file (kernels/cpu/encoder_conv.h):
// the direct im2col path, Winograd F(4,3) (where the size rule picks it, and on every conv
// it supports), and the bf16 fast mode (the same choices and direct),
// one encode of the model's n_grains (a one-shot) per call, 1 thread. The variants are
// interleaved call by call (so that load from other processes hits them alike) and timed
// in the thread's CPU time; per variant: median and best ms per call, the conv FLOPs
// counted the direct way (so GFLOP/s above the FMA peak means fewer multiplications),
// % of --peak, the speed-up over the first variant and mu's relative L2 distance from the
// direct fp32 encoder's.
//
//   build/bench/bench_encoder MODEL [--seconds S] [--peak GFLOPS] [--isa avx512|avx2|portable]
//                                   [--only I] (only variant I, e.g. under perf)
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu.h"
#include "cpu/dispatch.h"
#include "cpu/ops.h"
#include "model_file.h"

using namespace ngs;
using namespace ngs::cpu;

namespace {

double thread_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// Multiply-add FLOPs of one encode of n grains, convolutions by the direct formula.
double encode_flops(const WaveformWeights &w, int n) {
  const WaveformConfig &c = w.cfg;
  double f = 0;
  int l = c.l_grain;
  for (const EncoderStage &s : w.enc) {
    l = (l + 2 * s.down.pad - s.down.dilation * (s.down.k - 1) - 1) / s.down.stride + 1;
    f += 2.0 * l * s.down.out * s.down.in * s.down.k;
    for (const ResUnit &r : s.res)
      f += 2.0 * l * r.dil.out * r.dil.in * r.dil.k + 2.0 * l * c.channels * 2 * c.channels;
  }
  f *= n;
  f += 2.0 * n * (static_cast<double>(c.flatten_size()) * c.h_dim + c.h_dim * c.z_dim +
                  2.0 * c.z_dim * c.z_dim);
  return f;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_encoder MODEL [--seconds S] [--peak GFLOPS] [--isa NAME]\n");
    return 2;
  }
  double seconds = 3, peak = 0;
  int only = -1;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--peak")) peak = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--only")) only = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--isa")) {
      const std::string s = argv[i + 1];
      const Isa isa = s == "portable" ? Isa::kPortable : s == "avx2" ? Isa::kAvx2 : Isa::kAvx512;
      if (!isa_set(isa)) {
        std::fprintf(stderr, "bench_encoder: this CPU has no %s\n", argv[i + 1]);
        return 2;
      }
    }
  }
  std::unique_ptr<ModelFile> model;
  try {
    model = load_model_file(argv[1]);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "bench_encoder: %s\n", e.what());
    return 1;
  }
  const WaveformWeights &w = model->waveform;
  const int n = w.cfg.n_grains;
  struct Variant {
    const char *name;
    EncoderOptions opt;
    std::unique_ptr<WaveformEncoder> enc;
    std::vector<float> scratch;
    std::vector<double> ms;
  };
  std::vector<Variant> v;
  v.push_back({"direct fp32", {EncoderConv::kDirect, EncoderPrecision::kFp32}, nullptr, {}, {}});
  v.push_back({"winograd fp32", {EncoderConv::kWinograd, EncoderPrecision::kFp32}, nullptr, {}, {}});
  v.push_back({"fast (bf16) winograd", {EncoderConv::kWinograd, EncoderPrecision::kBf16}, nullptr, {}, {}});
  v.push_back({"fast (bf16) direct", {EncoderConv::kDirect, EncoderPrecision::kBf16}, nullptr, {}, {}});
  v.push_back({"winograd_all fp32", {EncoderConv::kWinogradAll, EncoderPrecision::kFp32}, nullptr, {}, {}});
  v.push_back({"fast winograd_all", {EncoderConv::kWinogradAll, EncoderPrecision::kBf16}, nullptr, {}, {}});
  if (only >= 0 && only < static_cast<int>(v.size())) {
    Variant keep = std::move(v[only]);
    v.clear();
    v.push_back(std::move(keep));
  }
  for (Variant &x : v) {
    x.enc = std::make_unique<WaveformEncoder>(w, x.opt);
    x.scratch.resize(x.enc->scratch_floats(n));
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> audio(static_cast<size_t>(n + 3) * w.cfg.hop);
  for (float &a : audio) a = u(rng);
  std::vector<float> mu(static_cast<size_t>(n) * w.cfg.z_dim), lv(mu.size());
  // Warm-up, and each variant's mu against the direct fp32 one (relative L2, in double).
  std::vector<double> err(v.size(), 0.0);
  std::vector<float> mu_ref(mu.size());
  {
    const WaveformEncoder ref(w, {EncoderConv::kDirect, EncoderPrecision::kFp32});
    std::vector<float> s(ref.scratch_floats(n));
    ref.encode(audio.data(), n, mu_ref.data(), lv.data(), s.data());
  }
  for (size_t i = 0; i < v.size(); ++i) {
    v[i].enc->encode(audio.data(), n, mu.data(), lv.data(), v[i].scratch.data());
    double e = 0, r = 0;
    for (size_t j = 0; j < mu.size(); ++j) {
      e += (double(mu[j]) - mu_ref[j]) * (double(mu[j]) - mu_ref[j]);
      r += double(mu_ref[j]) * mu_ref[j];
    }
    err[i] = std::sqrt(e / r);
  }
  const double t_end = thread_ms() + seconds * 1e3;
  while (thread_ms() < t_end)
    for (Variant &x : v) {
      const double t0 = thread_ms();
      x.enc->encode(audio.data(), n, mu.data(), lv.data(), x.scratch.data());
      x.ms.push_back(thread_ms() - t0);
    }
  const double flops = encode_flops(w, n);
  const KernelTable &k = kernels();
  std::printf("model %s: l_grain %d, channels %d, kernel %d, stride %d, %d grains; ISA %s%s; "
              "%.2f GFLOP per encode (direct count)\n",
              argv[1], w.cfg.l_grain, w.cfg.channels, w.cfg.kernel_size, w.cfg.stride, n,
              isa_name(isa_active()), k.bf16_native ? " + avx512_bf16" : "", flops * 1e-9);
  std::printf("%-22s %10s %10s %8s %10s %8s %10s %12s\n", "variant", "median ms", "best ms",
              "calls", "GFLOP/s", "% peak", "speed-up", "mu rel. L2");
  const double base = [&] {
    std::vector<double> s = v[0].ms;
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
  }();
  for (size_t i = 0; i < v.size(); ++i) {
    Variant &x = v[i];
    std::sort(x.ms.begin(), x.ms.end());
    const double med = x.ms[x.ms.size() / 2];
    const double gf = flops / (med * 1e-3) * 1e-9;
    std::printf("%-22s %10.2f %10.2f %8zu %10.1f %7.0f%% %9.2fx %12.2e\n", x.name, med, x.ms[0],
                x.ms.size(), gf, peak > 0 ? 100.0 * gf / peak : 0.0, base / med, err[i]);
  }
  return 0;
}
