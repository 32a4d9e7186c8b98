// Google Benchmark of the CPU ops: GEMM on decoder-sized shapes per ISA (GFLOP/s), the
// real FFT, one grain of stage 2, and a whole drum-size decode (41 grains, l_grain 2048,
// h 512, z 128) on random weights.
//
//   g++ -O2 -std=c++17 -Iengine/src -Iengine/include bench/cpu_ops_bench.cpp \
//       build/engine/libngs_core.a -lbenchmark -lpthread -o /tmp/cpu_ops_bench
//   /tmp/cpu_ops_bench --benchmark_filter=Gemm
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <immintrin.h>

#include "cpu/cpu.h"
#include "cpu/dispatch.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

using namespace ngs;
using namespace ngs::cpu;

namespace {

std::vector<float> rnd(size_t n, float scale = 1.0f) {
  static std::mt19937 r(1234);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto &x : v) x = d(r);
  return v;
}

void BM_Gemm(benchmark::State &st) {
  const Isa isa = static_cast<Isa>(st.range(0));
  const int m = static_cast<int>(st.range(1)), n = static_cast<int>(st.range(2)),
            k = static_cast<int>(st.range(3));
  if (static_cast<int>(isa) > static_cast<int>(isa_best_supported())) {
    st.SkipWithError("ISA not supported");
    return;
  }
  auto w = rnd(static_cast<size_t>(n) * k), b = rnd(n), x = rnd(static_cast<size_t>(m) * k);
  std::vector<float> y(static_cast<size_t>(m) * n);
  PackedGemm p = gemm_pack(w.data(), n, k, b.data());
  for (auto _ : st) {
    gemm_isa(isa, p, x.data(), k, m, y.data(), n, Act::kLrelu, false);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
  st.SetLabel(isa_name(isa));
}
BENCHMARK(BM_Gemm)
    ->ArgsProduct({{0, 1, 2}, {41}, {512, 1025}, {128, 512}})
    ->Args({2, 400, 1025, 512})
    ->Args({1, 400, 1025, 512});

// Fast precision GEMM (bf16 products, fp32 sums: gemm_bf16, AVX512_BF16), the decoder
// MLP's shapes; GFLOP/s counts 2 per multiply-add like BM_Gemm.
void BM_GemmBf16(benchmark::State &st) {
  if (!cpu_has_bf16()) {
    st.SkipWithError("no AVX512_BF16");
    return;
  }
  const int m = static_cast<int>(st.range(0)), n = static_cast<int>(st.range(1)),
            k = static_cast<int>(st.range(2));
  auto w = rnd(static_cast<size_t>(n) * k), b = rnd(n), x = rnd(static_cast<size_t>(m) * k);
  std::vector<float> y(static_cast<size_t>(m) * n);
  PackedGemmBf16 p = gemm_pack_bf16(gemm_pack(w.data(), n, k, b.data()));
  for (auto _ : st) {
    gemm_bf16_isa(Isa::kAvx512, p, x.data(), k, m, y.data(), n, Act::kLrelu);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
}
// Read bandwidth of a buffer of the size of a recurrent matrix (drum size: 4 MiB fp32,
// 2 MiB bf16), read whole again and again as the recurrence does at each step: the bound of
// a one-sequence step. Bytes per second in the "bytes_per_second" counter.
__attribute__((target("avx512f"))) float read_all(const float *p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
void BM_ReadBandwidth(benchmark::State &st) {
  if (isa_best_supported() != Isa::kAvx512) {
    st.SkipWithError("no AVX-512");
    return;
  }
  const size_t bytes = static_cast<size_t>(st.range(0)) << 10;
  std::vector<float> buf = rnd(bytes / sizeof(float));
  for (auto _ : st) benchmark::DoNotOptimize(read_all(buf.data(), buf.size()));
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ReadBandwidth)->Arg(512)->Arg(1024)->Arg(2048)->Arg(4096)->Arg(8192);

// One recurrent step of the drum-size LSTM (h 512: 32 unit blocks of [512][4][16]), one
// sequence, the matrix read whole from L3 at every step: fp32 (rnn_block_gemv), bf16
// (vdpbf16ps, the fast path) and, as a measured alternative for fp16 model files, fp16
// weights widened in the kernel (vcvtph2ps + FMA, exact fp16 weights, fp32 h; a
// prototype here, not in the library). Arg: 0 fp32, 1 bf16, 2 fp16.
__attribute__((target("avx512f,avx512vl,f16c,fma"))) void step_fp16(const uint16_t *w,
                                                                     const float *bias, int k,
                                                                     const float *x, float *y) {
  __m512 a[4];
  for (int q = 0; q < 4; ++q) a[q] = _mm512_loadu_ps(bias + q * 16);
  for (int i = 0; i < k; ++i) {
    const __m512 xv = _mm512_set1_ps(x[i]);
    for (int q = 0; q < 4; ++q) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(w + (static_cast<size_t>(i) * 4 + q) * 16));
      a[q] = _mm512_fmadd_ps(xv, _mm512_cvtph_ps(h), a[q]);
    }
  }
  for (int q = 0; q < 4; ++q) _mm512_storeu_ps(y + q * 16, a[q]);
}
__attribute__((target("f16c"))) uint16_t to_fp16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, 0));
}
// int8 weights with per-row scales and h quantized to u8 per step (AVX512_VNNI vpdpbusd, 64
// products per instruction; a prototype for the measurement, not in the library).
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void step_i8(
    const int8_t *w, const float *scale, const float *corr, const float *bias, int k,
    const uint8_t *xq, float xscale, float *y) {
  __m512i a[4];
  for (int q = 0; q < 4; ++q) a[q] = _mm512_setzero_si512();
  for (int i = 0; i < k / 4; ++i) {
    int32_t x4;
    std::memcpy(&x4, xq + 4 * i, 4);
    const __m512i xv = _mm512_set1_epi32(x4);
    for (int q = 0; q < 4; ++q)
      a[q] = _mm512_dpbusd_epi32(a[q], xv, _mm512_loadu_si512(w + (static_cast<size_t>(i) * 4 + q) * 64));
  }
  const __m512 xs = _mm512_set1_ps(xscale);
  for (int q = 0; q < 4; ++q) {
    const __m512 v = _mm512_sub_ps(_mm512_cvtepi32_ps(a[q]), _mm512_loadu_ps(corr + q * 16));
    _mm512_storeu_ps(y + q * 16, _mm512_fmadd_ps(_mm512_mul_ps(v, xs), _mm512_loadu_ps(scale + q * 16),
                                                 _mm512_loadu_ps(bias + q * 16)));
  }
}
__attribute__((target("avx512f,avx512bw"))) float quantize_u8(const float *x, int n, uint8_t *q) {
  float mx = 1e-30f;
  for (int i = 0; i < n; ++i) mx = std::max(mx, std::fabs(x[i]));
  const float s = 127.0f / mx;
  for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(static_cast<int>(std::lrint(x[i] * s)) + 128);
  return mx / 127.0f;
}
void BM_RecurrentStep(benchmark::State &st) {
  const int kind = static_cast<int>(st.range(0));
  __builtin_cpu_init();
  if (kind == 3 && !__builtin_cpu_supports("avx512vnni")) {
    st.SkipWithError("no AVX512_VNNI");
    return;
  }
  if ((kind == 1 && !cpu_has_bf16()) || isa_best_supported() != Isa::kAvx512) {
    st.SkipWithError("needs AVX-512 (and AVX512_BF16 for bf16)");
    return;
  }
  const int H = 512, blocks = H / 16, bs = 4 * 16;
  const size_t bsz = static_cast<size_t>(H) * bs;
  auto w32 = rnd(bsz * blocks, 0.05f), bias = rnd(bs), x = rnd(H);
  std::vector<uint16_t> w16(bsz * blocks);
  for (size_t i = 0; i < w16.size(); ++i)
    w16[i] = kind == 2 ? to_fp16(w32[i]) : bf16_from_float(w32[i]);
  // bf16 pairs layout: [k/2][4][16][2] per block (PackedRnn::hh16)
  std::vector<uint16_t> wbf(bsz * blocks);
  for (int u = 0; u < blocks; ++u)
    for (int k = 0; k < H; ++k)
      for (int q = 0; q < 4; ++q)
        for (int j = 0; j < 16; ++j)
          wbf[bsz * u + ((static_cast<size_t>(k / 2) * 4 + q) * 16 + j) * 2 + (k & 1)] =
              bf16_from_float(w32[bsz * u + (static_cast<size_t>(k) * 4 + q) * 16 + j]);
  // int8: per gate row (lane) scale max|w| / 127; layout [k/4][4][16][4]; corr = 128 sum(w).
  std::vector<int8_t> w8(bsz * blocks);
  std::vector<float> sc(static_cast<size_t>(blocks) * bs), corr(static_cast<size_t>(blocks) * bs);
  for (int u = 0; u < blocks; ++u)
    for (int q = 0; q < 4; ++q)
      for (int j = 0; j < 16; ++j) {
        float mx = 1e-30f;
        for (int k = 0; k < H; ++k) mx = std::max(mx, std::fabs(w32[bsz * u + (static_cast<size_t>(k) * 4 + q) * 16 + j]));
        const size_t r = static_cast<size_t>(u) * bs + q * 16 + j;
        sc[r] = mx / 127.0f;
        float sum = 0;
        for (int k = 0; k < H; ++k) {
          const int v = static_cast<int>(std::lrint(w32[bsz * u + (static_cast<size_t>(k) * 4 + q) * 16 + j] / sc[r]));
          w8[bsz * u + ((static_cast<size_t>(k / 4) * 4 + q) * 16 + j) * 4 + (k & 3)] = static_cast<int8_t>(v);
          sum += static_cast<float>(v);
        }
        corr[r] = 128.0f * sum;
      }
  std::vector<uint8_t> xq(H);
  std::vector<float> y(static_cast<size_t>(blocks) * bs);
  const KernelTable &t = kernels_for(Isa::kAvx512);
  for (auto _ : st) {
    const float xs = kind == 3 ? quantize_u8(x.data(), H, xq.data()) : 0.0f;
    for (int u = 0; u < blocks; ++u) {
      float *yu = y.data() + static_cast<size_t>(u) * bs;
      if (kind == 0) t.rnn_block_gemv(w32.data() + bsz * u, bias.data(), 4, H, x.data(), yu);
      else if (kind == 1) t.rnn_block_gemm_bf16(wbf.data() + bsz * u, bias.data(), 4, H, x.data(), H, 1, yu, bs);
      else if (kind == 2) step_fp16(w16.data() + bsz * u, bias.data(), H, x.data(), yu);
      else step_i8(w8.data() + bsz * u, sc.data() + static_cast<size_t>(u) * bs,
                   corr.data() + static_cast<size_t>(u) * bs, bias.data(), H, xq.data(), xs, yu);
    }
    benchmark::DoNotOptimize(y.data());
  }
  // Error of the step's pre-activations against fp32 (relative L2), as a counter.
  std::vector<float> y32(y.size());
  for (int u = 0; u < blocks; ++u)
    t.rnn_block_gemv(w32.data() + bsz * u, bias.data(), 4, H, x.data(), y32.data() + static_cast<size_t>(u) * bs);
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    num += (double(y[i]) - y32[i]) * (double(y[i]) - y32[i]);
    den += double(y32[i]) * y32[i];
  }
  st.counters["rel_l2_vs_fp32"] = std::sqrt(num / den);
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(bsz * blocks) *
                       (kind == 0 ? 4 : kind == 3 ? 1 : 2));
  st.SetLabel(kind == 0 ? "fp32" : kind == 1 ? "bf16 vdpbf16ps" : kind == 2 ? "fp16 vcvtph2ps + fma"
                                                                            : "int8 vpdpbusd, per-row scales");
}
BENCHMARK(BM_RecurrentStep)->Arg(0)->Arg(1)->Arg(2)->Arg(3)->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_GemmBf16)->ArgsProduct({{41, 328}, {512, 1025}, {128, 512}});

void BM_RealFft(benchmark::State &st) {
  const int n = static_cast<int>(st.range(0));
  RealFft fft(n);
  auto x = rnd(n);
  std::vector<float> X(n + 2), y(n), s(fft.scratch_floats());
  for (auto _ : st) {
    fft.forward(x.data(), X.data(), s.data());
    fft.inverse(X.data(), y.data(), s.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.SetLabel("forward + inverse");
}
BENCHMARK(BM_RealFft)->Arg(1024)->Arg(2048);

struct DrumDecoder {
  WaveformWeights w;
  std::vector<std::vector<float>> store;
  const float *add(std::vector<float> v) {
    store.push_back(std::move(v));
    return store.back().data();
  }
  DrumDecoder() {
    WaveformConfig &c = w.cfg;
    c.sr = 22050; c.l_grain = 2048; c.hop = 512; c.n_grains = 41; c.z_dim = 128; c.h_dim = 512;
    c.channels = 128; c.kernel_size = 9; c.n_convs = 3; c.stride = 4; c.n_linears = 3;
    c.pp_chans = 5; c.pp_ker = 65; c.normalize_ola = true;
    int in = c.z_dim;
    for (int i = 0; i < c.n_linears; ++i) {
      Linear l{add(rnd(static_cast<size_t>(c.h_dim) * in, 1.0f / std::sqrt(in))), add(rnd(c.h_dim, 0.1f)), c.h_dim, in};
      w.dec_lin.push_back(l);
      in = c.h_dim;
    }
    const int F = c.filter_size();
    w.dec_out = Linear{add(rnd(static_cast<size_t>(F) * in, 1.0f / std::sqrt(in))), add(rnd(F, 0.1f)), F, in};
    w.pp_fir = add(rnd(c.pp_ker, 0.1f));
    w.pp_bias = 0.01f;
    // Encoder.
    const int C = c.channels;
    for (int i = 0; i < c.n_convs; ++i) {
      EncoderStage st;
      const int cin = i == 0 ? 1 : C;
      st.down = Conv1d{add(rnd(static_cast<size_t>(C) * cin * 9, 1.0f / std::sqrt(cin * 9.0f))),
                       add(rnd(C, 0.1f)), C, cin, 9, 4, 1, 4};
      for (int j = 0; j < 3; ++j) {
        const int d = j == 0 ? 1 : j == 1 ? 3 : 9;
        st.res[j].dil = Conv1d{add(rnd(static_cast<size_t>(C) * C * 3, 0.05f)), add(rnd(C, 0.1f)),
                               C, C, 3, 1, d, d};
        st.res[j].pw = Linear{add(rnd(static_cast<size_t>(C) * C, 0.08f)), nullptr, C, C};
        st.res[j].sc = Linear{add(rnd(static_cast<size_t>(C) * C, 0.08f)), nullptr, C, C};
        st.res[j].bias = add(rnd(C, 0.1f));
      }
      w.enc.push_back(st);
    }
    const int fl = c.flatten_size();
    w.enc_lin[0] = Linear{add(rnd(static_cast<size_t>(c.h_dim) * fl, 0.02f)), add(rnd(c.h_dim, 0.1f)), c.h_dim, fl};
    w.enc_lin[1] = Linear{add(rnd(static_cast<size_t>(c.z_dim) * c.h_dim, 0.04f)), add(rnd(c.z_dim, 0.1f)), c.z_dim, c.h_dim};
    w.mu = Linear{add(rnd(static_cast<size_t>(c.z_dim) * c.z_dim, 0.08f)), add(rnd(c.z_dim, 0.1f)), c.z_dim, c.z_dim};
    w.logvar = w.mu;
  }
};

void BM_EncodeDrum(benchmark::State &st) {
  DrumDecoder d;
  WaveformEncoder enc(d.w);
  const int n = static_cast<int>(st.range(0));
  std::vector<float> scratch(enc.scratch_floats(n)), mu(n * 128), lv(n * 128);
  auto audio = rnd(static_cast<size_t>(n + 3) * 512, 0.5f);
  for (auto _ : st) {
    enc.encode(audio.data(), n, mu.data(), lv.data(), scratch.data());
    benchmark::DoNotOptimize(mu.data());
  }
  st.SetLabel("drum-size encoder");
}
BENCHMARK(BM_EncodeDrum)->Arg(41)->Unit(benchmark::kMillisecond);

void BM_DecodeDrum(benchmark::State &st) {
  DrumDecoder d;
  auto backend = make_cpu_backend(d.w);
  const int threads = static_cast<int>(st.range(0));
  auto session = backend->create_session(41, threads);
  auto z = rnd(41 * 128);
  std::vector<float> audio(44 * 512);
  for (auto _ : st) {
    session->decode(z.data(), 41, NoiseKey{7, 0}, audio.data());
    benchmark::DoNotOptimize(audio.data());
  }
  st.SetLabel(std::string(isa_name(isa_active())) + ", " + std::to_string(threads) + " thread(s)");
}
BENCHMARK(BM_DecodeDrum)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_DecodeDrumStages(benchmark::State &st) {
  DrumDecoder d;
  auto backend = make_cpu_backend(d.w);
  auto session = backend->create_session(41, 1);
  auto z = rnd(41 * 128);
  std::vector<float> S(41 * 1025), y(41 * 2048), audio(44 * 512);
  session->decoder_mlp(z.data(), 41, S.data());
  session->noise_filter(S.data(), 41, 0, 41, NoiseKey{7, 0}, y.data());
  const int stage = static_cast<int>(st.range(0));
  for (auto _ : st) {
    if (stage == 1) session->decoder_mlp(z.data(), 41, S.data());
    if (stage == 2) session->noise_filter(S.data(), 41, 0, 41, NoiseKey{7, 0}, y.data());
    if (stage == 3) session->overlap_add(y.data(), 41, audio.data(), false);
    benchmark::ClobberMemory();
  }
  st.SetLabel(stage == 1 ? "decoder_mlp" : stage == 2 ? "noise_filter" : "overlap_add");
}
BENCHMARK(BM_DecodeDrumStages)->Arg(1)->Arg(2)->Arg(3)->Unit(benchmark::kMicrosecond);

}  // namespace



namespace {
// FP32 FMA peak of one core in CPU time (the GEMM rates above are CPU-time rates too, so
// the ratio holds on a loaded machine): 24 independent zmm FMA chains.
__attribute__((target("avx512f"), noinline)) float fma_loop(long iters) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (long k = 0; k < iters; ++k) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}
void BM_FmaPeak(benchmark::State &st) {
  if (isa_best_supported() != Isa::kAvx512) {
    st.SkipWithError("no AVX-512");
    return;
  }
  long iters = 100000;
  for (auto _ : st) {
    benchmark::DoNotOptimize(iters);  // keeps the call inside the loop
    benchmark::DoNotOptimize(fma_loop(iters));
  }
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * 16 * 24 * iters, benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
  st.SetLabel("avx512 peak, one core");
}
BENCHMARK(BM_FmaPeak);

void BM_NoiseFilterNoise(benchmark::State &st) {
  std::vector<float> u(2048);
  for (auto _ : st) {
    noise_filter_noise(42, 0, 7, 2048, u.data());
    benchmark::DoNotOptimize(u.data());
  }
  st.SetLabel("one grain, 2048 samples");
}
BENCHMARK(BM_NoiseFilterNoise);

void BM_DecoderMlpSpectrum(benchmark::State &st) {
  auto x = rnd(41 * 1025, 4.0f);
  std::vector<float> S(x.size()), scratch(1025);
  for (auto _ : st) {
    decoder_mlp_spectrum(x.data(), 41, 1025, S.data(), scratch.data());
    benchmark::DoNotOptimize(S.data());
  }
  st.SetLabel("41 x 1025 mod_sigmoid + window identity");
}
BENCHMARK(BM_DecoderMlpSpectrum);
// Drum-size sequence VAE decode: e_dim 256, h 512, one RNN layer, 2 linears, 7 classes.
void BM_LatentDecodeDrum(benchmark::State &st) {
  std::vector<std::vector<float>> store;
  store.reserve(64);
  auto add = [&](size_t n, float scale) {
    store.push_back(rnd(n, scale));
    return static_cast<const float *>(store.back().data());
  };
  LatentWeights w;
  LatentConfig &c = w.cfg;
  c.z_dim = 128; c.h_dim = 512; c.e_dim = 256; c.n_linears = 2; c.n_rnn = 1; c.n_grains = 41;
  c.n_conds = 7; c.rnn = st.range(0) ? RnnType::kLstm : RnnType::kGru;
  const int H = c.h_dim, G = c.gates() * H;
  auto lin = [&](int out, int in) {
    return Linear{add(static_cast<size_t>(out) * in, 1.0f / std::sqrt(in)), add(out, 0.1f), out, in};
  };
  std::vector<float> ones(H, 1.0f), zeros(H, 0.0f);
  auto rnn = [&]() {
    return RnnLayer{add(static_cast<size_t>(G) * H, 0.04f), add(static_cast<size_t>(G) * H, 0.04f),
                    add(G, 0.1f), add(G, 0.1f), H, H};
  };
  w.dec_e = {lin(H, c.e_dim + c.n_conds), lin(H, H)};
  w.dec_rnn = {rnn()};
  w.dec_z = {LayerNormLinear{lin(H, H + c.n_conds), ones.data(), zeros.data()},
             LayerNormLinear{lin(H, H), ones.data(), zeros.data()}};
  w.dec_z_out = lin(c.z_dim, H);
  w.enc_z = {LayerNormLinear{lin(H, c.z_dim), ones.data(), zeros.data()},
             LayerNormLinear{lin(H, H), ones.data(), zeros.data()}};
  w.enc_rnn = {rnn()};
  w.enc_e = {lin(H, H), lin(c.e_dim, H)};
  w.mu = lin(c.e_dim, c.e_dim);
  w.logvar = lin(c.e_dim, c.e_dim);
  LatentModel lm(w);
  const bool fast = st.range(2) != 0;
  const int B = static_cast<int>(st.range(3));
  if (fast && !cpu_has_bf16()) {
    st.SkipWithError("no AVX512_BF16");
    return;
  }
  if (fast) lm.prepare_fast();
  std::vector<float> scratch(lm.scratch_floats(41, B)), z(static_cast<size_t>(B) * 41 * 128);
  auto e = rnd(static_cast<size_t>(B) * 256);
  const int threads = static_cast<int>(st.range(1));
  std::unique_ptr<ThreadPool> pool;
  if (threads > 1) pool = std::make_unique<ThreadPool>(threads);
  for (auto _ : st) {
    lm.decode_batch(e.data(), 256, 3, B, 41, z.data(), 41 * 128, scratch.data(), pool.get(), fast);
    benchmark::DoNotOptimize(z.data());
  }
  st.SetLabel(std::string(st.range(0) ? "LSTM" : "GRU") + ", " + std::to_string(threads) +
              " thread(s), " + (fast ? "fast" : "fp32") + ", " + std::to_string(B) +
              " sequence(s), CPU time of all threads");
}
// Args: LSTM (1) or GRU (0), threads, fast (1) or fp32 (0), sequences at once.
BENCHMARK(BM_LatentDecodeDrum)
    ->Args({1, 1, 0, 1})->Args({1, 1, 1, 1})->Args({1, 1, 0, 8})->Args({1, 1, 1, 8})
    ->Args({0, 1, 0, 1})->Args({1, 2, 0, 1})->Args({0, 2, 0, 1})
    ->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
