// The encoder's convolution algorithms (kernels/cpu/encoder_conv.h): Winograd F(4,3)
// against the direct im2col path, and the bf16 fast mode against fp32, on fresh random
// weights and inputs at awkward sizes (channels that are no multiple of the vector width,
// lengths that are no multiple of the tile), on every ISA path of this CPU (the portable
// and AVX2 paths run the fp32 emulation of the bf16 products, AVX-512 the vdpbf16ps kernel
// where the CPU has AVX-512 BF16); and both algorithms against the goldens.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu.h"
#include "cpu/dispatch.h"
#include "cpu/encoder_conv.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "model_file.h"
#include "test_isa.h"
#include "test_util.h"

using namespace ngs;
using namespace ngs::cpu;
using ngs::test::IsaGuard;
using ngs::test::poisoned;
using ngs::test::rel_l2;
using ngs::test::supported_isas;

namespace {

// Fresh random weights and inputs on every run: the run's seed is printed, and
// NGS_TEST_SEED=<seed> replays it.
uint32_t run_seed() {
  static const uint32_t s = [] {
    const char *e = std::getenv("NGS_TEST_SEED");
    const uint32_t v = e && *e ? static_cast<uint32_t>(std::strtoul(e, nullptr, 10))
                               : std::random_device{}();
    std::printf("test_cpu_encoder random seed %u (NGS_TEST_SEED=%u replays it)\n", v, v);
    return v;
  }();
  return s;
}

// Fast mode against fp32 (relative L2 of mu and of logvar over a series): bf16 keeps 8
// bits of mantissa, so every conv input and weight carries a relative error up to 2^-9;
// Winograd's input transform (coefficients up to 5) rounds values whose cancellation in
// the output transform (up to 8) amplifies it, about 1e-2 per conv (measured up to
// 1.14e-2 against a double conv, fresh seeds: kTolBf16Conv); through the encoder's 13
// convolutions and mixes that stays about 1e-2 of the output norm. Measured: 3e-3 to
// 1.2e-2 on the golden fixtures (kTolFastGolden), up to 3.3e-2 on the random encoders
// below over 12 fresh seeds (kTolFast), the same on every ISA path. The native vdpbf16ps
// kernel and its fp32 emulation are compared at the GEMM level
// (GemmMatchesRoundedReference, 1e-6): through the whole encoder, fp32-level differences
// flip later bf16 roundings, so two correct paths differ by about as much as either
// differs from fp32.
constexpr double kTolFast = test::kTolFastEncoder;
constexpr double kTolFastGolden = test::kTolFastEncoderGolden;
constexpr double kTolBf16Conv = test::kTolFastConv;

std::vector<float> randn(size_t n, std::mt19937 &rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float &x : v) x = d(rng);
  return v;
}

// A random grain-VAE encoder: weights ~ N(0, 1 / fan_in), so activations stay O(1).
struct RandomEncoder {
  WaveformWeights w;
  std::vector<std::vector<float>> store;
  const float *keep(std::vector<float> v) {
    store.push_back(std::move(v));
    return store.back().data();
  }
  RandomEncoder(int channels, int l_grain, int kernel, int stride, int n_convs, uint32_t seed) {
    std::mt19937 rng(seed);
    WaveformConfig &c = w.cfg;
    c.l_grain = l_grain; c.hop = l_grain / 4; c.n_grains = 5; c.z_dim = 6; c.h_dim = 20;
    c.channels = channels; c.kernel_size = kernel; c.n_convs = n_convs; c.stride = stride;
    c.n_linears = 1; c.pp_chans = 1; c.pp_ker = 3;
    const int C = channels;
    auto lin = [&](int out, int in, bool bias) {
      return Linear{keep(randn(static_cast<size_t>(out) * in, rng, 1.0f / std::sqrt(float(in)))),
                    bias ? keep(randn(out, rng, 0.1f)) : nullptr, out, in};
    };
    for (int i = 0; i < n_convs; ++i) {
      EncoderStage st;
      const int cin = i == 0 ? 1 : C;
      st.down = Conv1d{keep(randn(static_cast<size_t>(C) * cin * kernel, rng,
                                  1.0f / std::sqrt(float(cin * kernel)))),
                       keep(randn(C, rng, 0.1f)), C, cin, kernel, stride, 1, kernel / 2};
      for (int j = 0; j < 3; ++j) {
        const int d = j == 0 ? 1 : j == 1 ? 3 : 9;
        st.res[j].dil = Conv1d{keep(randn(static_cast<size_t>(C) * C * 3, rng,
                                          1.0f / std::sqrt(float(3 * C)))),
                               keep(randn(C, rng, 0.1f)), C, C, 3, 1, d, d};
        st.res[j].pw = lin(C, C, false);
        st.res[j].sc = lin(C, C, false);
        st.res[j].bias = keep(randn(C, rng, 0.1f));
      }
      w.enc.push_back(st);
    }
    w.enc_lin[0] = lin(c.h_dim, c.flatten_size(), true);
    w.enc_lin[1] = lin(c.z_dim, c.h_dim, true);
    w.mu = lin(c.z_dim, c.z_dim, true);
    w.logvar = lin(c.z_dim, c.z_dim, true);
  }
};

struct Encoded {
  std::vector<float> mu, lv;
};

Encoded run(const WaveformEncoder &enc, const WaveformConfig &c, const std::vector<float> &audio,
            int n) {
  std::vector<float> scratch = poisoned(enc.scratch_floats(n));
  Encoded e{poisoned(static_cast<size_t>(n) * c.z_dim), poisoned(static_cast<size_t>(n) * c.z_dim)};
  enc.encode(audio.data(), n, e.mu.data(), e.lv.data(), scratch.data());
  return e;
}

// One conv: y = act(conv(input_lrelu ? LReLU(x) : x)) by the direct path, in double.
std::vector<double> conv_reference(const Conv1d &c, const std::vector<float> &x, int ldx, int l,
                                   bool input_lrelu, bool out_lrelu) {
  const int lo = (l + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
  std::vector<double> y(static_cast<size_t>(lo) * c.out);
  for (int t = 0; t < lo; ++t)
    for (int o = 0; o < c.out; ++o) {
      double s = c.b ? c.b[o] : 0.0;
      for (int kk = 0; kk < c.k; ++kk) {
        int pos = t * c.stride + kk * c.dilation - c.pad;
        if (pos < 0) pos = -pos;
        if (pos >= l) pos = 2 * (l - 1) - pos;
        for (int i = 0; i < c.in; ++i) {
          float v = x[static_cast<size_t>(pos) * ldx + i];
          if (input_lrelu) v = lrelu(v);
          s += static_cast<double>(c.w[(static_cast<size_t>(o) * c.in + i) * c.k + kk]) * v;
        }
      }
      y[static_cast<size_t>(t) * c.out + o] = out_lrelu ? (s >= 0 ? s : 0.2 * s) : s;
    }
  return y;
}

}  // namespace

// bf16 rounding: to nearest, ties to even, infinities kept, NaN stays NaN; the vector
// conversion of every ISA equals the scalar one.
TEST(CpuEncoderBf16, RoundingAndConversion) {
  EXPECT_EQ(bf16_from_float(1.0f), 0x3f80);
  EXPECT_EQ(bf16_from_float(-2.0f), 0xc000);
  float f;
  uint32_t b = 0x3f808000u;  // 1 + 2^-8: a tie, rounds to even (down)
  std::memcpy(&f, &b, 4);
  EXPECT_EQ(bf16_from_float(f), 0x3f80);
  b = 0x3f818000u;  // 1 + 3 * 2^-8: a tie, rounds to even (up)
  std::memcpy(&f, &b, 4);
  EXPECT_EQ(bf16_from_float(f), 0x3f82);
  b = 0x3f808001u;  // just above a tie: up
  std::memcpy(&f, &b, 4);
  EXPECT_EQ(bf16_from_float(f), 0x3f81);
  EXPECT_EQ(bf16_from_float(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(bf16_from_float(3.4e38f), 0x7f80);  // rounds up to infinity
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(std::nanf("")))));
  b = 0x7f800001u;  // a signalling NaN with only low mantissa bits: still a NaN
  std::memcpy(&f, &b, 4);
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(f))));
  EXPECT_EQ(bf16_to_float(0x4049), 3.140625f);

  std::mt19937 rng(run_seed() + 7);
  std::vector<float> v = randn(1037, rng, 100.0f);
  v[3] = std::numeric_limits<float>::infinity();
  v[17] = -std::numeric_limits<float>::infinity();
  v[40] = std::nanf("");
  v[41] = 1e-40f;  // subnormal
  v[42] = -0.0f;
  std::vector<uint16_t> ref(v.size());
  for (size_t i = 0; i < v.size(); ++i) ref[i] = bf16_from_float(v[i]);
  IsaGuard guard;
  for (Isa isa : supported_isas()) {
    isa_set(isa);
    SCOPED_TRACE(isa_name(isa));
    std::vector<uint16_t> out(v.size(), 0xdead);
    bf16_convert(v.data(), static_cast<int>(v.size()), out.data());
    for (size_t i = 0; i < v.size(); ++i)
      if (i != 40) EXPECT_EQ(out[i], ref[i]) << i;
    EXPECT_TRUE(std::isnan(bf16_to_float(out[40])));
  }
}

// The bf16 GEMM against a double-precision product of the same rounded values, at shapes
// that exercise every tail: odd K (the zero pad), N past one and two panels, M not a
// multiple of any kernel's rows, several K blocks; every ISA path.
TEST(CpuEncoderBf16, GemmMatchesRoundedReference) {
  IsaGuard guard;
  std::mt19937 rng(run_seed() + 11);
  const int shapes[][3] = {{1, 1, 1}, {25, 37, 13}, {13, 16, 32}, {30, 33, 300}, {7, 128, 600}};
  for (const auto &sh : shapes) {
    const int m = sh[0], n = sh[1], k = sh[2];
    SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k));
    std::vector<float> w = randn(static_cast<size_t>(n) * k, rng, 1.0f);
    std::vector<float> bias = randn(n, rng, 1.0f);
    std::vector<float> x = randn(static_cast<size_t>(m) * k, rng, 1.0f);
    const PackedGemmBf16 p = gemm_pack_bf16(w.data(), n, k, bias.data());
    const int kp = 2 * p.kp;  // K and its zero pad
    const int ldx = kp + 2;    // rows further apart than K
    std::vector<uint16_t> xb(static_cast<size_t>(m) * ldx, 0);
    for (int i = 0; i < m; ++i) {
      for (int c = 0; c < k; ++c) xb[static_cast<size_t>(i) * ldx + c] = bf16_from_float(x[i * k + c]);
      if (kp != k) xb[static_cast<size_t>(i) * ldx + k] = 0;
      xb[static_cast<size_t>(i) * ldx + kp] = 0x7fc0;  // NaN past the row: never read
    }
    for (bool lr : {false, true}) {
      std::vector<double> ref(static_cast<size_t>(m) * n);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          double s = bias[j];
          for (int c = 0; c < k; ++c)
            s += static_cast<double>(bf16_to_float(bf16_from_float(w[static_cast<size_t>(j) * k + c]))) *
                 bf16_to_float(bf16_from_float(x[static_cast<size_t>(i) * k + c]));
          ref[static_cast<size_t>(i) * n + j] = lr && s < 0 ? 0.2 * s : s;
        }
      for (Isa isa : supported_isas()) {
        isa_set(isa);
        SCOPED_TRACE(std::string(isa_name(isa)) + (lr ? " lrelu" : ""));
        const int ldy = n + 3;
        std::vector<float> y = poisoned(static_cast<size_t>(m) * ldy);
        gemm_bf16(p, xb.data(), ldx, m, y.data(), ldy, lr ? Act::kLrelu : Act::kNone);
        double err = 0, norm = 0;
        for (int i = 0; i < m; ++i) {
          for (int j = 0; j < n; ++j) {
            const double d = y[static_cast<size_t>(i) * ldy + j] - ref[static_cast<size_t>(i) * n + j];
            err += d * d;
            norm += ref[static_cast<size_t>(i) * n + j] * ref[static_cast<size_t>(i) * n + j];
          }
          for (int j = n; j < ldy; ++j)  // the row gap is never written
            EXPECT_TRUE(std::isnan(y[static_cast<size_t>(i) * ldy + j])) << i << " " << j;
        }
        EXPECT_LE(std::sqrt(err / norm), 1e-6);
      }
    }
  }
}

// Winograd F(4,3) conv against a double-precision direct conv, fp32 and bf16, for the
// dilated 3-tap convs and strided convs, channels and lengths that are no multiple of 16 or
// of the tile (4), lengths over one chunk of tiles, strides between rows, input LeakyReLU
// and output LeakyReLU, and the row gap left untouched.
TEST(CpuEncoderWinograd, ConvMatchesDirect) {
  IsaGuard guard;
  std::mt19937 rng(run_seed() + 5);
  struct Case { int cin, cout, k, stride, dil, pad, l; };
  const Case cases[] = {
      {13, 17, 3, 1, 1, 1, 37},  {16, 16, 3, 1, 3, 3, 50},   {7, 9, 3, 1, 9, 9, 23},
      {5, 33, 3, 1, 9, 9, 10},   {32, 32, 3, 1, 1, 1, 1001}, {19, 21, 9, 4, 1, 4, 203},
      {8, 16, 9, 4, 1, 4, 16},   {11, 5, 5, 2, 1, 2, 31},    {6, 7, 3, 1, 2, 0, 29},
      {9, 12, 7, 3, 1, 3, 40},   {24, 20, 9, 4, 1, 4, 2000}, {10, 6, 4, 2, 1, 2, 33},
  };
  for (const Case &cs : cases) {
    Conv1d c;
    std::vector<float> w = randn(static_cast<size_t>(cs.cout) * cs.cin * cs.k, rng,
                                 1.0f / std::sqrt(float(cs.cin * cs.k)));
    std::vector<float> b = randn(cs.cout, rng, 0.3f);
    c.w = w.data(); c.b = b.data(); c.out = cs.cout; c.in = cs.cin; c.k = cs.k;
    c.stride = cs.stride; c.dilation = cs.dil; c.pad = cs.pad;
    ASSERT_TRUE(wino_supported(c));
    const int ldx = cs.cin + 3, ldy = cs.cout + 5;
    const std::vector<float> x = randn(static_cast<size_t>(cs.l) * ldx, rng, 1.0f);
    const int lo = (cs.l + 2 * cs.pad - cs.dil * (cs.k - 1) - 1) / cs.stride + 1;
    for (bool in_lr : {false, true})
      for (bool out_lr : {false, true}) {
        const std::vector<double> ref = conv_reference(c, x, ldx, cs.l, in_lr, out_lr);
        for (bool bf : {false, true}) {
          const WinoConv p = wino_pack(c, bf);
          for (Isa isa : supported_isas()) {
            isa_set(isa);
            SCOPED_TRACE(std::to_string(cs.cin) + "->" + std::to_string(cs.cout) + " k" +
                         std::to_string(cs.k) + " s" + std::to_string(cs.stride) + " d" +
                         std::to_string(cs.dil) + " L" + std::to_string(cs.l) + " " +
                         isa_name(isa) + (bf ? " bf16" : " fp32") + (in_lr ? " in_lrelu" : "") +
                         (out_lr ? " out_lrelu" : ""));
            std::vector<float> y = poisoned(static_cast<size_t>(lo) * ldy + 7);
            std::vector<float> scratch = poisoned(wino_scratch_floats(p, cs.l));
            wino_conv1d(p, x.data(), ldx, cs.l, y.data(), ldy, out_lr ? Act::kLrelu : Act::kNone,
                        in_lr, scratch.data());
            double err = 0, norm = 0;
            for (int t = 0; t < lo; ++t) {
              for (int o = 0; o < cs.cout; ++o) {
                const double d = y[static_cast<size_t>(t) * ldy + o] - ref[static_cast<size_t>(t) * cs.cout + o];
                err += d * d;
                norm += ref[static_cast<size_t>(t) * cs.cout + o] * ref[static_cast<size_t>(t) * cs.cout + o];
              }
              for (int o = cs.cout; o < ldy; ++o)
                ASSERT_TRUE(std::isnan(y[static_cast<size_t>(t) * ldy + o])) << "gap written";
            }
            for (size_t i = static_cast<size_t>(lo) * ldy; i < y.size(); ++i)
              ASSERT_TRUE(std::isnan(y[i])) << "written past the output";
            EXPECT_LE(std::sqrt(err / norm), bf ? kTolBf16Conv : 2e-6);
          }
        }
      }
  }
}

// Whole encoders on random weights: Winograd (every conv it supports, and by the size
// rule) against direct (fp32), fast (Winograd and direct) against fp32; channels 13, 20 and 9 (no multiple of 8 or 16),
// stage lengths 208, 52, 13 and 336, 84, 21 and 120, 60, 30 (phases of the dilations 3 and 9
// of every length mod 4), kernel 9 stride 4 and kernel 5 stride 2 (strided Winograd),
// kernel 7 stride 2 (no Winograd for the strided conv: k > 3 stride falls back to direct).
TEST(CpuEncoderWinograd, EncoderMatchesDirectAndFastMatchesFp32) {
  IsaGuard guard;
  struct Case { int C, l, k, s, convs; };
  const Case cases[] = {{13, 832, 9, 4, 3}, {20, 1344, 9, 4, 3}, {16, 240, 5, 2, 3},
                        {9, 96, 7, 2, 2}};
  uint32_t seed = run_seed() + 100;
  for (const Case &cs : cases) {
    RandomEncoder re(cs.C, cs.l, cs.k, cs.s, cs.convs, seed++);
    const WaveformConfig &c = re.w.cfg;
    const int n = c.n_grains;
    std::mt19937 rng(seed++);
    const std::vector<float> audio = randn(static_cast<size_t>(n + 3) * c.hop, rng, 0.5f);
    const WaveformEncoder direct(re.w, {EncoderConv::kDirect, EncoderPrecision::kFp32});
    const WaveformEncoder wino(re.w, {EncoderConv::kWinogradAll, EncoderPrecision::kFp32});
    const WaveformEncoder wino_rule(re.w, {EncoderConv::kWinograd, EncoderPrecision::kFp32});
    const WaveformEncoder fast(re.w, {EncoderConv::kWinogradAll, EncoderPrecision::kBf16});
    const WaveformEncoder fast_rule(re.w, {EncoderConv::kWinograd, EncoderPrecision::kBf16});
    const WaveformEncoder fast_direct(re.w, {EncoderConv::kDirect, EncoderPrecision::kBf16});
    for (Isa isa : supported_isas()) {
      isa_set(isa);
      SCOPED_TRACE("C" + std::to_string(cs.C) + " l" + std::to_string(cs.l) + " k" +
                   std::to_string(cs.k) + " s" + std::to_string(cs.s) + " " + isa_name(isa));
      const Encoded d = run(direct, c, audio, n), w = run(wino, c, audio, n);
      EXPECT_LE(rel_l2(w.mu, d.mu), 1e-5) << "winograd mu";
      EXPECT_LE(rel_l2(w.lv, d.lv), 1e-5) << "winograd logvar";
      const Encoded wr = run(wino_rule, c, audio, n), fr = run(fast_rule, c, audio, n);
      EXPECT_LE(rel_l2(wr.mu, d.mu), 1e-5) << "winograd (size rule) mu";
      EXPECT_LE(rel_l2(fr.mu, d.mu), kTolFast) << "fast (size rule) mu";
      const Encoded f = run(fast, c, audio, n), fd = run(fast_direct, c, audio, n);
      EXPECT_LE(rel_l2(f.mu, d.mu), kTolFast) << "fast mu";
      EXPECT_LE(rel_l2(f.lv, d.lv), kTolFast) << "fast logvar";
      EXPECT_LE(rel_l2(fd.mu, d.mu), kTolFast) << "fast direct mu";
      EXPECT_GT(rel_l2(f.mu, d.mu), 0.0) << "fast mode is not bf16";
    }
  }
}

// Direct and Winograd against the goldens (the shared fp32 bound, test_util.h kTolF32),
// fast mode against the goldens within kTolFastGolden; threads give the same bits.
TEST(CpuEncoderWinograd, GoldensBothAlgorithmsAndFast) {
  IsaGuard guard;
  ThreadPool pool(3);
  for (const std::string &name : test::fixture_configs()) {
    std::unique_ptr<ModelFile> model = load_model_file(test::fixture_path(name, "model.safetensors"));
    const test::Golden g = test::load_golden(test::fixture_path(name, "golden.safetensors"));
    const int n = g.dim("encode.mu", 0), zd = g.dim("encode.mu", 1);
    for (EncoderOptions opt : {EncoderOptions{EncoderConv::kDirect, EncoderPrecision::kFp32},
                               EncoderOptions{EncoderConv::kWinograd, EncoderPrecision::kFp32},
                               EncoderOptions{EncoderConv::kWinogradAll, EncoderPrecision::kFp32},
                               EncoderOptions{EncoderConv::kWinograd, EncoderPrecision::kBf16},
                               EncoderOptions{EncoderConv::kWinogradAll, EncoderPrecision::kBf16},
                               EncoderOptions{EncoderConv::kDirect, EncoderPrecision::kBf16}}) {
      const WaveformEncoder enc(model->waveform, opt);
      for (Isa isa : supported_isas()) {
        isa_set(isa);
        SCOPED_TRACE(name + " " + isa_name(isa) +
                     (opt.conv == EncoderConv::kDirect     ? " direct"
                      : opt.conv == EncoderConv::kWinograd ? " winograd"
                                                           : " winograd_all") +
                     ((opt.precision != EncoderPrecision::kFp32) ? " fast" : ""));
        std::vector<float> scratch = poisoned(enc.scratch_floats(n));
        std::vector<float> mu = poisoned(static_cast<size_t>(n) * zd), lv = mu;
        enc.encode(g.at("encode.audio").data(), n, mu.data(), lv.data(), scratch.data());
        const double tol = (opt.precision != EncoderPrecision::kFp32) ? kTolFastGolden : test::kTolF32;
        EXPECT_LE(rel_l2(mu, g.at("encode.mu")), tol) << "mu";
        EXPECT_LE(rel_l2(lv, g.at("encode.logvar")), tol) << "logvar";
        std::vector<float> s2 = poisoned(enc.scratch_floats(n, pool.size()));
        std::vector<float> mu2 = poisoned(mu.size()), lv2 = poisoned(lv.size());
        enc.encode(g.at("encode.audio").data(), n, mu2.data(), lv2.data(), s2.data(), &pool);
        EXPECT_EQ(mu2, mu) << "threads";
        EXPECT_EQ(lv2, lv) << "threads";
      }
    }
  }
}

// kFast uses bf16 only where the CPU has AVX-512 BF16 (decided at construction from the
// active ISA table); elsewhere it is the fp32 encoder, bit for bit. kBf16 always is bf16.
TEST(CpuEncoderBf16, FastModeFallsBackToFp32WithoutBf16Hardware) {
  IsaGuard guard;
  RandomEncoder re(12, 704, 9, 4, 3, run_seed() + 77);  // stages of 176, 44, 11 steps
  const WaveformConfig &c = re.w.cfg;
  const int n = c.n_grains;
  std::mt19937 rng(run_seed() + 78);
  const std::vector<float> audio = randn(static_cast<size_t>(n + 3) * c.hop, rng, 0.5f);
  for (Isa isa : supported_isas()) {
    isa_set(isa);
    SCOPED_TRACE(isa_name(isa));
    const WaveformEncoder fp32(re.w, {EncoderConv::kWinograd, EncoderPrecision::kFp32});
    const WaveformEncoder fast(re.w, {EncoderConv::kWinograd, EncoderPrecision::kFast});
    const WaveformEncoder bf16(re.w, {EncoderConv::kWinograd, EncoderPrecision::kBf16});
    EXPECT_FALSE(fp32.bf16());
    EXPECT_TRUE(bf16.bf16());
    EXPECT_EQ(fast.bf16(), kernels().bf16_native);
    const Encoded a = run(fp32, c, audio, n), f = run(fast, c, audio, n), b = run(bf16, c, audio, n);
    if (fast.bf16()) {
      EXPECT_EQ(f.mu, b.mu);
      EXPECT_GT(rel_l2(f.mu, a.mu), 0.0);
      EXPECT_LE(rel_l2(f.mu, a.mu), kTolFast);
    } else {
      EXPECT_EQ(f.mu, a.mu);
      EXPECT_EQ(f.lv, a.lv);
    }
  }
}

// encode_grains (B independent grains, the synth's live resynthesis) equals encode()'s
// rows bit for bit, for B and n that are no multiple of the encoder's group of grains
// (later stages run several grains at once), for every algorithm and precision.
TEST(CpuEncoderWinograd, GrainsEqualEncodeRows) {
  IsaGuard guard;
  RandomEncoder re(11, 832, 9, 4, 3, run_seed() + 91);
  WaveformConfig &c = re.w.cfg;
  c.n_grains = 7;
  const int n = c.n_grains;
  std::mt19937 rng(run_seed() + 92);
  const std::vector<float> audio = randn(static_cast<size_t>(n + 3) * c.hop, rng, 0.5f);
  for (EncoderOptions opt : {EncoderOptions{EncoderConv::kDirect, EncoderPrecision::kFp32},
                             EncoderOptions{EncoderConv::kWinograd, EncoderPrecision::kFp32},
                             EncoderOptions{EncoderConv::kWinograd, EncoderPrecision::kBf16}}) {
    const WaveformEncoder enc(re.w, opt);
    const Encoded e = run(enc, c, audio, n);
    // Grains 6, 0, 3, 5, 1 (first and last edge windows included), in that order.
    const int pick[] = {6, 0, 3, 5, 1};
    const int B = 5;
    const float *src[B];
    unsigned char first[B], last[B];
    for (int b = 0; b < B; ++b) {
      src[b] = audio.data() + static_cast<size_t>(pick[b]) * c.hop;
      first[b] = pick[b] == 0;
      last[b] = pick[b] == n - 1;
    }
    std::vector<float> scratch = poisoned(enc.scratch_floats(B));
    std::vector<float> mu = poisoned(static_cast<size_t>(B) * c.z_dim);
    enc.encode_grains(src, first, last, B, mu.data(), scratch.data());
    for (int b = 0; b < B; ++b)
      for (int z = 0; z < c.z_dim; ++z)
        ASSERT_EQ(mu[static_cast<size_t>(b) * c.z_dim + z], e.mu[static_cast<size_t>(pick[b]) * c.z_dim + z])
            << "grain " << pick[b] << " z " << z;
  }
}
