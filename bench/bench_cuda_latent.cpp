// Google Benchmark cases for the CUDA sequence VAE and the streaming calls (docs/CUDA.md
// "Sequence VAE: design", bench/RESULTS.md "Sequence VAE and streaming on CUDA"), on a model
// of the bundled drum model's shape (models/README.md) with random weights: sequence VAE GRU
// h 256, e 64, z 64, n_linears 2, 1 layer, 7 classes, 41 steps; grain decoder z 64, h 256,
// 3 linears, l_grain 1024, hop 256, 16 kHz. Without a usable GPU every case reports "skipped: no device".
//   BM_CudaLatentDecode/V   latent_decode_launch of V voices (CUDA-event time)
//   BM_CudaSample           one session sample (wall time, one graph), x_realtime
//   BM_CudaStreamHop/B      one hop of B streaming voices: rnn_step + decode_grains (wall
//                           time, two graph launches), hop_fraction of the 16 ms hop
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_cuda_util.h"
#include "common.cuh"
#include "cuda/cuda_backend.h"
#include "cuda_backend.cuh"
#include "latent_decode.cuh"

namespace {

using ngs::bench::Dev;
using ngs::bench::no_device;

constexpr int kZ = 64, kE = 64, kH = 256, kConds = 7, kSteps = 41;
constexpr int kDecH = 256, kDecLinears = 3, kL = 1024, kHop = 256, kSr = 16000, kTaps = 65;

struct Weights {
  std::vector<std::vector<float>> store;
  std::mt19937 rng{1};
  ngs::WaveformWeights wave;
  ngs::LatentWeights lat;

  const float *vec(size_t n, float scale) {
    std::uniform_real_distribution<float> d(-scale, scale);
    store.emplace_back(n);
    for (float &x : store.back()) x = d(rng);
    return store.back().data();
  }
  ngs::Linear linear(int in, int out) {
    ngs::Linear l;
    l.in = in;
    l.out = out;
    l.w = vec(static_cast<size_t>(in) * out, 1.0f / std::sqrt(static_cast<float>(in)));
    l.b = vec(out, 0.1f);
    return l;
  }
  ngs::LayerNormLinear ln(int in, int out) {
    ngs::LayerNormLinear l;
    l.lin = linear(in, out);
    std::vector<float> g(out, 1.0f);
    store.push_back(g);
    l.ln_w = store.back().data();
    l.ln_b = vec(out, 0.1f);
    return l;
  }
  ngs::RnnLayer gru(int in, int h) {
    ngs::RnnLayer r;
    r.in = in;
    r.hidden = h;
    r.w_ih = vec(static_cast<size_t>(3) * h * in, 1.0f / std::sqrt(static_cast<float>(in)));
    r.w_hh = vec(static_cast<size_t>(3) * h * h, 1.0f / std::sqrt(static_cast<float>(h)));
    r.b_ih = vec(3 * static_cast<size_t>(h), 0.1f);
    r.b_hh = vec(3 * static_cast<size_t>(h), 0.1f);
    return r;
  }
  Weights() {
    store.reserve(64);
    ngs::WaveformConfig &c = wave.cfg;
    c.sr = kSr;
    c.l_grain = kL;
    c.hop = kHop;
    c.n_grains = kSteps;
    c.z_dim = kZ;
    c.h_dim = kDecH;
    c.n_linears = kDecLinears;
    c.pp_ker = kTaps;
    c.pp_chans = 5;
    for (int l = 0; l < kDecLinears; ++l) wave.dec_lin.push_back(linear(l ? kDecH : kZ, kDecH));
    wave.dec_out = linear(kDecH, c.filter_size());
    wave.pp_fir = vec(kTaps, 0.1f);
    ngs::LatentConfig &lc = lat.cfg;
    lc.z_dim = kZ;
    lc.e_dim = kE;
    lc.h_dim = kH;
    lc.n_linears = 2;
    lc.n_rnn = 1;
    lc.n_grains = kSteps;
    lc.n_conds = kConds;
    lc.rnn = ngs::RnnType::kGru;
    for (int k = 0; k < kConds; ++k) lc.classes.push_back("c" + std::to_string(k));
    lat.enc_z = {ln(kZ, kH), ln(kH, kH)};
    lat.enc_rnn = {gru(kH, kH)};
    lat.enc_e = {linear(kH, kH), linear(kH, kE)};
    lat.mu = linear(kE, kE);
    lat.logvar = linear(kE, kE);
    lat.dec_e = {linear(kE + kConds, kH), linear(kH, kH)};
    lat.dec_rnn = {gru(kH, kH)};
    lat.dec_z = {ln(kH + kConds, kH), ln(kH, kH)};
    lat.dec_z_out = linear(kH, kZ);
  }
};


void BM_CudaLatentDecode(benchmark::State &state) {
  if (no_device(state)) return;
  const int V = static_cast<int>(state.range(0));
  Weights w;
  const ngs::cuda::LatentDevice d(w.lat);
  Dev<float> e(std::vector<float>(static_cast<size_t>(V) * kE, 0.3f));
  std::vector<int> cls(V);
  for (int v = 0; v < V; ++v) cls[v] = v % kConds;
  Dev<int> dcls(cls);
  Dev<float> z(static_cast<size_t>(V) * kSteps * kZ);
  Dev<float> work(ngs::cuda::latent_decode_work_floats(d, V, kSteps));
  cudaEvent_t a, b;
  NGS_CUDA_CHECK(cudaEventCreate(&a));
  NGS_CUDA_CHECK(cudaEventCreate(&b));
  ngs::cuda::latent_decode_launch(d, e.p, dcls.p, V, kSteps, z.p, work.p, nullptr);  // warm-up
  NGS_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto _ : state) {
    NGS_CUDA_CHECK(cudaEventRecord(a, nullptr));
    ngs::cuda::latent_decode_launch(d, e.p, dcls.p, V, kSteps, z.p, work.p, nullptr);
    NGS_CUDA_CHECK(cudaEventRecord(b, nullptr));
    NGS_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0.0f;
    NGS_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    state.SetIterationTime(ms * 1e-3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  state.counters["one_shots/s"] =
      benchmark::Counter(V, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_CudaSample(benchmark::State &state) {
  if (no_device(state)) return;
  Weights w;
  auto backend = ngs::cuda::make_backend(w.wave, 0, {}, &w.lat);
  auto session = backend->create_session(kSteps, 1);
  const std::vector<float> e(kE, 0.3f);
  std::vector<float> audio(static_cast<size_t>(kSteps + 3) * kHop);
  uint64_t seed = 1;
  for (auto _ : state)
    session->sample(e.data(), static_cast<int>(seed % kConds), kSteps, ngs::NoiseKey{seed++, 0},
                    audio.data());
  state.counters["x_realtime"] = benchmark::Counter(
      static_cast<double>(audio.size()) / kSr, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_CudaStreamHop(benchmark::State &state) {
  if (no_device(state)) return;
  const int B = static_cast<int>(state.range(0));
  Weights w;
  auto backend = ngs::cuda::make_backend(w.wave, 0, {}, &w.lat);
  auto session = backend->create_session(B, 1);
  session->rnn_plan(B);
  const std::vector<float> e(kE, 0.3f);
  std::vector<int> slots(B);
  for (int v = 0; v < B; ++v) {
    slots[v] = v;
    session->rnn_start(v, e.data(), v % kConds);
  }
  std::vector<float> z(static_cast<size_t>(B) * kZ), y(static_cast<size_t>(B) * kL);
  std::vector<ngs::GrainSpec> spec(B);
  int g = 0;
  for (auto _ : state) {
    session->rnn_step(slots.data(), B, z.data(), kZ);
    for (int v = 0; v < B; ++v) spec[v] = ngs::GrainSpec{ngs::NoiseKey{1, static_cast<uint32_t>(v)}, g, g == 0, false};
    session->decode_grains(z.data(), B, spec.data(), y.data());
    ++g;
  }
  const double hop_s = static_cast<double>(kHop) / kSr;
  // (time per hop) / (hop duration), and how many voices one GPU stream keeps in real time.
  state.counters["hop_fraction"] = benchmark::Counter(
      hop_s, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["voices_realtime"] =
      benchmark::Counter(B * hop_s, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_CudaLatentDecode)->Arg(1)->Arg(8)->Arg(256)->UseManualTime();
BENCHMARK(BM_CudaSample)->UseRealTime();
BENCHMARK(BM_CudaStreamHop)->Arg(1)->Arg(8)->Arg(64)->Arg(256)->UseRealTime();

BENCHMARK_MAIN();
