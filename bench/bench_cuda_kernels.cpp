// Google Benchmark cases for the CUDA kernels and the whole CUDA decode, on the drum-size
// model (z 128, h 512, n_linears 3, l_grain 2048, 41 grains, 22.05 kHz) with random
// weights. Times are GPU times from CUDA events (manual time); counters give GFLOP/s,
// GB/s and, for the decode, "x_realtime" (seconds of audio per second of compute).
// Without a usable GPU every case reports "skipped: no device".
#include <benchmark/benchmark.h>

#include <algorithm>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_cuda_util.h"
#include "common.cuh"
#include "cuda_backend.cuh"
#include "cuda/cuda_backend.h"
#include "decoder_mlp.cuh"
#include "noise_filter.cuh"
#include "overlap_add.cuh"

namespace {

using ngs::bench::Dev;
using ngs::bench::no_device;
using ngs::bench::rnd;

constexpr int kZ = 128, kH = 512, kLinears = 3, kL = 2048, kHop = 512, kF = kL / 2 + 1;
constexpr int kGrains = 41, kTaps = 65, kSr = 22050, kEncC = 32;

// Random drum-size decoder weights on the host.
struct Model {
  std::vector<std::vector<float>> store;
  ngs::WaveformWeights w;
  Model() {
    ngs::WaveformConfig &c = w.cfg;
    c.sr = kSr;
    c.l_grain = kL;
    c.hop = kHop;
    c.n_grains = kGrains;
    c.z_dim = kZ;
    c.h_dim = kH;
    c.n_linears = kLinears;
    c.pp_ker = kTaps;
    c.pp_chans = 5;
    c.normalize_ola = true;
    store.reserve(16);
    for (int l = 0; l <= kLinears; ++l) {
      ngs::Linear lin;
      lin.in = l == 0 ? kZ : kH;
      lin.out = l == kLinears ? kF : kH;
      store.push_back(rnd(static_cast<size_t>(lin.in) * lin.out, 0.05f, 10 + l));
      lin.w = store.back().data();
      store.push_back(rnd(lin.out, 0.1f, 20 + l));
      lin.b = store.back().data();
      if (l < kLinears)
        w.dec_lin.push_back(lin);
      else
        w.dec_out = lin;
    }
    store.push_back(rnd(kTaps, 0.1f, 30));
    w.pp_fir = store.back().data();
  }
  // Random encoder weights: 32 channels, kernel 9, stride 4, 3 stages (2048 -> 512 -> 128
  // -> 32 samples), flatten 1024.
  void add_encoder() {
    ngs::WaveformConfig &c = w.cfg;
    c.channels = kEncC;
    c.kernel_size = 9;
    c.stride = 4;
    c.n_convs = 3;
    store.reserve(store.size() + 128);
    uint32_t seed = 100;
    auto conv = [&](int in, int out, int k, int stride, int dil, int pad) {
      ngs::Conv1d cv;
      cv.in = in;
      cv.out = out;
      cv.k = k;
      cv.stride = stride;
      cv.dilation = dil;
      cv.pad = pad;
      store.push_back(rnd(static_cast<size_t>(out) * in * k, 0.1f, seed++));
      cv.w = store.back().data();
      store.push_back(rnd(out, 0.1f, seed++));
      cv.b = store.back().data();
      return cv;
    };
    auto linear = [&](int in, int out) {
      ngs::Linear l;
      l.in = in;
      l.out = out;
      store.push_back(rnd(static_cast<size_t>(out) * in, 0.05f, seed++));
      l.w = store.back().data();
      store.push_back(rnd(out, 0.1f, seed++));
      l.b = store.back().data();
      return l;
    };
    for (int s = 0; s < 3; ++s) {
      ngs::EncoderStage st;
      st.down = conv(s == 0 ? 1 : kEncC, kEncC, 9, 4, 1, 4);
      for (int j = 0; j < 3; ++j) {
        const int d = j == 0 ? 1 : (j == 1 ? 3 : 9);
        st.res[j].dil = conv(kEncC, kEncC, 3, 1, d, d);
        st.res[j].pw = linear(kEncC, kEncC);
        st.res[j].sc = linear(kEncC, kEncC);
        st.res[j].bias = st.res[j].pw.b;
      }
      w.enc.push_back(st);
    }
    w.enc_lin[0] = linear(c.flatten_size(), kH);
    w.enc_lin[1] = linear(kH, kZ);
    w.mu = linear(kZ, kZ);
    w.logvar = linear(kZ, kZ);
  }
};

// Times `body` (enqueueing on `s`) with CUDA events.
template <class Body>
void run_timed(benchmark::State &state, cudaStream_t s, Body body) {
  cudaEvent_t a, b;
  NGS_CUDA_CHECK(cudaEventCreate(&a));
  NGS_CUDA_CHECK(cudaEventCreate(&b));
  body();  // warm-up
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
  for (auto _ : state) {
    NGS_CUDA_CHECK(cudaEventRecord(a, s));
    body();
    NGS_CUDA_CHECK(cudaEventRecord(b, s));
    NGS_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0.0f;
    NGS_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    state.SetIterationTime(ms * 1e-3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
}

void BM_CudaDecoderMlp(benchmark::State &state) {
  if (no_device(state)) return;
  const int n = static_cast<int>(state.range(0));
  const bool half = state.range(1) != 0;
  // range(2): 0 the row kernel (default), 1 the part-1 tiled kernel (the A/B)
  const auto kernel = state.range(2) ? ngs::cuda::MlpKernel::kTiled : ngs::cuda::MlpKernel::kRows;
  Model m;
  std::vector<std::unique_ptr<Dev<float>>> f;
  std::vector<std::unique_ptr<Dev<__half>>> h;
  ngs::cuda::MlpDevice d;
  d.n_layers = kLinears + 1;
  d.half = half;
  d.kernel = kernel;
  double flops = 0.0, weight_bytes = 0.0;
  for (int l = 0; l <= kLinears; ++l) {
    const ngs::Linear &lin = l < kLinears ? m.w.dec_lin[l] : m.w.dec_out;
    const size_t count = static_cast<size_t>(lin.in) * lin.out;
    f.push_back(std::make_unique<Dev<float>>(std::vector<float>(lin.w, lin.w + count)));
    d.w[l] = f.back()->p;
    f.push_back(std::make_unique<Dev<float>>(std::vector<float>(lin.b, lin.b + lin.out)));
    d.b[l] = f.back()->p;
    std::vector<__half> hw(count);
    for (size_t i = 0; i < count; ++i) hw[i] = __float2half(lin.w[i]);
    h.push_back(std::make_unique<Dev<__half>>(hw));
    d.w_half[l] = h.back()->p;
    d.dims[l] = lin.in;
    d.dims[l + 1] = lin.out;
    flops += 2.0 * count * n;
    weight_bytes += count * (half ? 2.0 : 4.0);
  }
  int optin = 0;
  NGS_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
  ngs::cuda::decoder_mlp_prepare(d, static_cast<size_t>(optin));
  Dev<float> z(rnd(static_cast<size_t>(n) * kZ, 1.0f, 1)), S(static_cast<size_t>(n) * kF);
  Dev<float> work(std::max<size_t>(ngs::cuda::decoder_mlp_work_floats(d, n), 1));
  run_timed(state, nullptr,
            [&] { ngs::cuda::decoder_mlp_launch(d, z.p, n, S.p, nullptr, work.p); });
  state.SetLabel(kernel == ngs::cuda::MlpKernel::kRows ? "rows" : "tiled");
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weights_GB/s_per_tile"] = benchmark::Counter(
      weight_bytes * ngs::cuda::ceil_div(n, ngs::cuda::decoder_mlp_tile(d)) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
}

void BM_CudaNoiseFilter(benchmark::State &state) {
  if (no_device(state)) return;
  const int n = static_cast<int>(state.range(0));
  std::vector<float> tw(kL), hann(kL);
  ngs::cuda::noise_filter_tables(kL, tw.data(), hann.data());
  int optin = 0;
  NGS_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
  ngs::cuda::noise_filter_prepare(kL, static_cast<size_t>(optin));
  Dev<float> S(rnd(static_cast<size_t>(n) * kF, 1.0f, 2)), y(static_cast<size_t>(n) * kL);
  Dev<float> dtw(tw), dhann(hann);
  Dev<ngs::cuda::NoiseParams> p(std::vector<ngs::cuda::NoiseParams>{{42u, 0u, 0, n}});
  run_timed(state, nullptr, [&] {
    ngs::cuda::noise_filter_launch(S.p, n, kL, dtw.p, dhann.p, p.p, y.p, nullptr);
  });
  state.counters["GB/s"] = benchmark::Counter(
      (static_cast<double>(n) * (kF + kL) * 4.0) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_CudaOverlapAdd(benchmark::State &state) {
  if (no_device(state)) return;
  const int n = static_cast<int>(state.range(0));
  Dev<float> y(rnd(static_cast<size_t>(n) * kL, 1.0f, 3)), a(static_cast<size_t>(n + 3) * kHop);
  Dev<float> fir(rnd(kTaps, 0.1f, 4));
  ngs::cuda::OlaParams p;
  p.n = n;
  p.l_grain = kL;
  p.hop = kHop;
  p.fir = fir.p;
  p.fir_len = kTaps;
  run_timed(state, nullptr, [&] { ngs::cuda::overlap_add_launch(p, y.p, a.p, nullptr); });
  state.counters["GB/s"] = benchmark::Counter(
      (static_cast<double>(n) * kL + (n + 3.0) * kHop) * 4.0 * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
}

// The whole decode of one series through the backend (host copies, graph, sync): wall time.
void BM_CudaDecode(benchmark::State &state) {
  if (no_device(state)) return;
  const int n = static_cast<int>(state.range(0));
  const bool graphs = state.range(1) != 0;
  Model m;
  auto backend = ngs::cuda::make_backend(m.w, 0, ngs::cuda::BackendOptions{false, graphs});
  auto session = backend->create_session(n, 1);
  const std::vector<float> z = rnd(static_cast<size_t>(n) * kZ, 1.0f, 5);
  std::vector<float> audio(static_cast<size_t>(n + 3) * kHop);
  uint64_t seed = 1;
  for (auto _ : state) session->decode(z.data(), n, ngs::NoiseKey{seed++, 0}, audio.data());
  state.counters["x_realtime"] = benchmark::Counter(
      static_cast<double>(audio.size()) / kSr, benchmark::Counter::kIsIterationInvariantRate);
}

// The device encoder of one series through the backend (host copies, kernels, sync): wall
// time; x_realtime = seconds of audio encoded per second.
void BM_CudaEncode(benchmark::State &state) {
  if (no_device(state)) return;
  const int n = static_cast<int>(state.range(0));
  Model m;
  m.add_encoder();
  auto backend = ngs::cuda::make_backend(m.w, 0, ngs::cuda::BackendOptions{});
  const std::string host = ngs::cuda::encoder_on_host(*backend);
  if (!host.empty()) {
    state.SkipWithError(("the encoder runs on the host: " + host).c_str());
    return;
  }
  auto session = backend->create_session(n, 1);
  const std::vector<float> audio = rnd(static_cast<size_t>(n + 3) * kHop, 0.5f, 6);
  std::vector<float> mu(static_cast<size_t>(n) * kZ), lv(mu.size());
  for (auto _ : state) session->encoder(audio.data(), n, mu.data(), lv.data());
  state.counters["x_realtime"] = benchmark::Counter(
      static_cast<double>(audio.size()) / kSr, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_CudaDecoderMlp)
    ->ArgsProduct({{kGrains, 8 * kGrains, 64 * kGrains}, {0, 1}, {0, 1}})
    ->UseManualTime();
BENCHMARK(BM_CudaNoiseFilter)->Arg(kGrains)->Arg(64 * kGrains)->UseManualTime();
BENCHMARK(BM_CudaOverlapAdd)->Arg(kGrains)->Arg(64 * kGrains)->UseManualTime();
BENCHMARK(BM_CudaDecode)->ArgsProduct({{kGrains}, {0, 1}})->UseRealTime();
BENCHMARK(BM_CudaEncode)->Arg(kGrains)->Arg(431)->UseRealTime();  // a one-shot, 10 s

BENCHMARK_MAIN();
