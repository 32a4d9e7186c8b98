// CPU ops against naive double-precision references on fresh random inputs, on every
// ISA path this machine supports; outputs poisoned with NaN before each call.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "common/philox.h"
#include "cpu/dispatch.h"
#include "cpu/ops.h"
#include "test_isa.h"

using namespace ngs;
using namespace ngs::cpu;
using ngs::test::IsaGuard;
using ngs::test::supported_isas;

namespace {

std::mt19937 &rng() {
  static std::mt19937 r([] {
    const unsigned s = std::random_device{}();
    std::printf("test_cpu_ops random seed %u\n", s);
    return s;
  }());
  return r;
}

std::vector<float> rand_vec(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng());
  return v;
}

const float kNan = std::numeric_limits<float>::quiet_NaN();

template <class A, class B>
double rel_l2(const A &got, const B &want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
    if (!std::isfinite(static_cast<double>(got[i]))) return INFINITY;
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// max_i |got_i - want_i| / scale_i, scale_i = sum of the magnitudes of the terms of
// element i: a bound that holds for sums with cancellation, unlike a relative error.
double max_scaled_err(const std::vector<float> &got, const std::vector<double> &want,
                      const std::vector<double> &scale) {
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    m = std::max(m, std::fabs(got[i] - want[i]) / std::max(scale[i], 1e-30));
  }
  return m;
}

double lrelu_d(double x) { return x >= 0 ? x : 0.2 * x; }

}  // namespace

TEST(CpuIsa, DetectsAndSets) {
  IsaGuard g;
  for (Isa i : supported_isas()) {
    EXPECT_TRUE(isa_set(i)) << isa_name(i);
    EXPECT_EQ(isa_active(), i);
  }
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) EXPECT_EQ(isa_best_supported(), Isa::kAvx512);
#endif
}

// The dispatch table (dispatch.h): isa_set switches the one active table; each ISA's table
// carries its own kind; the vector tables fill every entry, the portable one the kernels
// that have a portable function (the others are the ops' own loops).
TEST(CpuDispatch, TableFollowsIsaSet) {
  IsaGuard g;
  for (Isa i : supported_isas()) {
    SCOPED_TRACE(isa_name(i));
    ASSERT_TRUE(isa_set(i));
    const KernelTable &t = kernels();
    EXPECT_EQ(&t, &kernels_for(i));
    EXPECT_EQ(t.isa, i);
    EXPECT_NE(t.gemm_kernel, nullptr);
    EXPECT_GT(t.gemm_mr, 0);
    EXPECT_NE(t.rnn_block_gemv, nullptr);
    EXPECT_NE(t.lstm_cell, nullptr);
    EXPECT_NE(t.gru_cell, nullptr);
    const bool vec = i != Isa::kPortable;
    EXPECT_EQ(t.gemv != nullptr, vec);
    EXPECT_EQ(t.lrelu_copy != nullptr, vec);
    EXPECT_EQ(t.rfft_forward != nullptr && t.rfft_inverse != nullptr && t.rfft_filter != nullptr,
              vec);
    EXPECT_EQ(t.decoder_mlp_spectrum != nullptr, vec);
    EXPECT_EQ(t.noise_filter_noise != nullptr, vec);
    EXPECT_EQ(t.overlap_add_fir_softsign != nullptr, vec);
  }
  for (Isa i : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) EXPECT_EQ(kernels_for(i).isa, i);
}

namespace {

// One GEMM call on one ISA path against the double-precision reference; variant 0: bias,
// 1: no bias, 2: bias + accumulate + LeakyReLU, 3: bias + LeakyReLU. Rows are ldx / ldy
// apart with padding columns that must stay untouched.
void check_gemm(Isa isa, int m, int n, int k, int variant) {
  const bool has_bias = variant != 1, acc = variant == 2;
  const Act act = variant == 3 || variant == 2 ? Act::kLrelu : Act::kNone;
  const int ldx = k + 3, ldy = n + 5;
  auto x = rand_vec(static_cast<size_t>(m) * ldx);
  auto w = rand_vec(static_cast<size_t>(n) * k);
  auto b = rand_vec(n);
  auto y0 = rand_vec(static_cast<size_t>(m) * ldy);
  PackedGemm p = gemm_pack(w.data(), n, k, has_bias ? b.data() : nullptr);
  std::vector<float> y = y0;
  if (!acc)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) y[static_cast<size_t>(i) * ldy + j] = kNan;
  gemm_isa(isa, p, x.data(), ldx, m, y.data(), ldy, act, acc);
  std::vector<double> want, scale;
  std::vector<float> got;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double v = has_bias ? b[j] : 0.0, sc = std::fabs(v);
      if (acc) {
        v += y0[static_cast<size_t>(i) * ldy + j];
        sc += std::fabs(y0[static_cast<size_t>(i) * ldy + j]);
      }
      for (int q = 0; q < k; ++q) {
        const double t = static_cast<double>(x[static_cast<size_t>(i) * ldx + q]) * w[static_cast<size_t>(j) * k + q];
        v += t;
        sc += std::fabs(t);
      }
      want.push_back(act == Act::kLrelu ? lrelu_d(v) : v);
      scale.push_back(sc);
      got.push_back(y[static_cast<size_t>(i) * ldy + j]);
    }
  EXPECT_LT(max_scaled_err(got, want, scale), 1e-6)
      << isa_name(isa) << " m=" << m << " n=" << n << " k=" << k << " v=" << variant;
  for (int i = 0; i < m; ++i)
    for (int j = n; j < ldy; ++j)
      ASSERT_EQ(y[static_cast<size_t>(i) * ldy + j], y0[static_cast<size_t>(i) * ldy + j])
          << isa_name(isa) << " m=" << m << " n=" << n << ": padding column written";
}

}  // namespace

TEST(CpuGemm, MatchesReferenceOnEveryIsa) {
  struct Shape { int m, n, k; };
  const Shape shapes[] = {{1, 1, 1},   {3, 5, 7},     {41, 512, 128}, {41, 1025, 512},
                          {13, 33, 17}, {7, 16, 300}, {29, 47, 513},  {12, 32, 256},
                          {100, 130, 1}};
  for (Isa isa : supported_isas())
    for (const Shape &s : shapes)
      for (int variant = 0; variant < 4; ++variant) check_gemm(isa, s.m, s.n, s.k, variant);
}

// Every row count from 1 to twice the largest microkernel height (portable 4, AVX2 6,
// AVX-512 12 rows), so each ISA runs every partial row tile (1 .. MR-1 rows) after full
// ones, with column counts below, at and above one 16-column panel and a partial second.
TEST(CpuGemm, EveryRowTailOnEveryIsa) {
  for (Isa isa : supported_isas())
    for (int m = 1; m <= 24; ++m)
      for (int n : {5, 16, 33})
        for (int k : {3, 70})
          for (int variant = 0; variant < 4; ++variant) check_gemm(isa, m, n, k, variant);
}

TEST(CpuGemv, MatchesReferenceOnEveryIsa) {
  for (Isa isa : supported_isas()) {
    for (int n : {1, 15, 16, 17, 100, 2048}) {
      for (int k : {1, 3, 4, 7, 512}) {
        auto w = rand_vec(static_cast<size_t>(n) * k), b = rand_vec(n), x = rand_vec(k);
        PackedGemm p = gemm_pack(w.data(), n, k, b.data());
        for (Act act : {Act::kNone, Act::kLrelu}) {
          std::vector<float> y(n + 3, kNan);
          y[n] = y[n + 1] = y[n + 2] = 7.0f;  // past the end: untouched
          gemv_isa(isa, p, x.data(), y.data(), act);
          std::vector<double> want(n), scale(n);
          for (int j = 0; j < n; ++j) {
            double v = b[j], sc = std::fabs(v);
            for (int i = 0; i < k; ++i) {
              const double t = static_cast<double>(w[static_cast<size_t>(j) * k + i]) * x[i];
              v += t;
              sc += std::fabs(t);
            }
            want[j] = act == Act::kLrelu ? lrelu_d(v) : v;
            scale[j] = sc;
          }
          const std::vector<float> got(y.begin(), y.begin() + n);
          EXPECT_LT(max_scaled_err(got, want, scale), 1e-6) << isa_name(isa) << " n=" << n << " k=" << k;
          EXPECT_EQ(y[n], 7.0f);
          EXPECT_EQ(y[n + 2], 7.0f);
        }
      }
    }
  }
}

TEST(CpuConv, MatchesReferenceOnEveryIsa) {
  IsaGuard guard;
  struct Case { int cin, cout, k, stride, dil, pad, l; bool in_lrelu; Act act; };
  const Case cases[] = {{1, 16, 9, 4, 1, 4, 64, false, Act::kLrelu},
                        {5, 7, 3, 1, 3, 3, 37, true, Act::kLrelu},
                        {12, 12, 3, 1, 9, 9, 40, true, Act::kNone},
                        {9, 20, 9, 4, 1, 4, 128, false, Act::kLrelu},
                        {6, 3, 1, 1, 1, 0, 11, false, Act::kNone},
                        {4, 5, 1, 1, 1, 0, 11, true, Act::kLrelu}};
  for (Isa isa : supported_isas()) {
    isa_set(isa);
    for (const Case &c : cases) {
      auto w = rand_vec(static_cast<size_t>(c.cout) * c.cin * c.k);
      auto b = rand_vec(c.cout);
      const int ldx = c.cin + 2;
      auto x = rand_vec(static_cast<size_t>(c.l) * ldx);
      Conv1d cv{w.data(), b.data(), c.cout, c.cin, c.k, c.stride, c.dil, c.pad};
      PackedConv p = conv_pack(cv);
      const int lo = conv_out_length(p, c.l);
      ASSERT_EQ(lo, (c.l + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1);
      const int ldy = c.cout + 1;
      std::vector<float> y(static_cast<size_t>(lo) * ldy, kNan);
      std::vector<float> scratch(conv_scratch_floats(p, c.l) + 1, kNan);
      conv1d(p, x.data(), ldx, c.l, y.data(), ldy, c.act, c.in_lrelu, scratch.data());
      std::vector<double> want, got;
      for (int t = 0; t < lo; ++t)
        for (int o = 0; o < c.cout; ++o) {
          double v = b[o];
          for (int i = 0; i < c.cin; ++i)
            for (int kk = 0; kk < c.k; ++kk) {
              int pos = t * c.stride + kk * c.dil - c.pad;
              if (pos < 0) pos = -pos;
              if (pos >= c.l) pos = 2 * (c.l - 1) - pos;
              double xv = x[static_cast<size_t>(pos) * ldx + i];
              if (c.in_lrelu) xv = lrelu_d(xv);
              v += w[(static_cast<size_t>(o) * c.cin + i) * c.k + kk] * xv;
            }
          want.push_back(c.act == Act::kLrelu ? lrelu_d(v) : v);
          got.push_back(y[static_cast<size_t>(t) * ldy + o]);
        }
      EXPECT_LT(rel_l2(got, want, got.size()), 2e-6) << isa_name(isa) << " cin=" << c.cin;
    }
  }
}

TEST(CpuLayerNorm, MatchesReference) {
  for (int n : {1, 7, 128, 513}) {
    const int rows = 5, ld = n + 3;
    auto x = rand_vec(static_cast<size_t>(rows) * ld, -3.0f, 2.0f);
    auto g = rand_vec(n), b = rand_vec(n);
    for (Act act : {Act::kNone, Act::kLrelu}) {
      std::vector<float> y = x;
      layernorm_rows(y.data(), rows, n, ld, g.data(), b.data(), act);
      std::vector<double> want, got;
      for (int r = 0; r < rows; ++r) {
        const float *v = x.data() + static_cast<size_t>(r) * ld;
        double mean = 0, var = 0;
        for (int i = 0; i < n; ++i) mean += v[i];
        mean /= n;
        for (int i = 0; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
        var /= n;
        for (int i = 0; i < n; ++i) {
          double o = (v[i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i];
          want.push_back(act == Act::kLrelu ? lrelu_d(o) : o);
          got.push_back(y[static_cast<size_t>(r) * ld + i]);
        }
      }
      EXPECT_LT(rel_l2(got, want, got.size()), 2e-6) << "n=" << n;
    }
  }
}

// Rows whose variance is far below eps (1e-5, PyTorch's default): there eps dominates the
// normalisation, so a wrong eps changes the output by tens of percent, not by 1e-6. Values
// centred near 0 keep the float mean and differences accurate to ~1e-7 relative.
TEST(CpuLayerNorm, LowVarianceRowsUseEps) {
  for (int n : {1, 7, 16, 37, 128, 513}) {
    const int rows = 4, ld = n + 1;
    const float spread[rows] = {1e-4f, 1e-3f, 3e-3f, 0.0f};  // var ~ spread^2 / 3; last: constant
    std::vector<float> x(static_cast<size_t>(rows) * ld, 7.0f);  // padding: must stay 7
    for (int r = 0; r < rows; ++r) {
      auto v = rand_vec(n, -1.0f, 1.0f);
      const float offset = 0.25f * spread[r];
      for (int i = 0; i < n; ++i) x[static_cast<size_t>(r) * ld + i] = offset + spread[r] * v[i];
    }
    auto g = rand_vec(n, 0.5f, 1.5f), b = rand_vec(n, -0.1f, 0.1f);
    std::vector<float> y = x;
    layernorm_rows(y.data(), rows, n, ld, g.data(), b.data(), Act::kNone);
    for (int r = 0; r < rows; ++r) {
      const float *v = x.data() + static_cast<size_t>(r) * ld;
      double mean = 0, var = 0;
      for (int i = 0; i < n; ++i) mean += v[i];
      mean /= n;
      for (int i = 0; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
      var /= n;
      ASSERT_LT(var, 1e-5) << "the row must be dominated by eps";
      std::vector<double> want, got, centred;
      for (int i = 0; i < n; ++i) {
        want.push_back((v[i] - mean) / std::sqrt(var + 1e-5) * g[i]);
        got.push_back(static_cast<double>(y[static_cast<size_t>(r) * ld + i]) - b[i]);
      }
      if (spread[r] == 0.0f) {  // constant row: exactly beta
        for (int i = 0; i < n; ++i) EXPECT_EQ(y[static_cast<size_t>(r) * ld + i], b[i]) << "n=" << n;
      } else if (n > 1) {
        // The normalised part alone (beta removed), relative to its own size: an eps off
        // by 10 % moves it by >= 1 % at these variances.
        EXPECT_LT(rel_l2(got, want, got.size()), 1e-4) << "n=" << n << " spread " << spread[r];
      }
    }
    EXPECT_EQ(y[static_cast<size_t>(rows - 1) * ld + n], x[static_cast<size_t>(rows - 1) * ld + n]);
  }
}

namespace {

// Double-precision PyTorch GRU/LSTM for one layer.
void rnn_ref(RnnType type, const std::vector<float> &wih, const std::vector<float> &whh,
             const std::vector<float> &bih, const std::vector<float> &bhh, int in, int H,
             const std::vector<float> &x, bool constant, int steps, std::vector<double> &out) {
  const int G = (type == RnnType::kGru ? 3 : 4) * H;
  std::vector<double> h(H, 0.0), c(H, 0.0), gi(G), gh(G);
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  out.clear();
  for (int t = 0; t < steps; ++t) {
    const float *xt = x.data() + static_cast<size_t>(constant ? 0 : t) * in;
    for (int r = 0; r < G; ++r) {
      double a = bih[r], bb = bhh[r];
      for (int k = 0; k < in; ++k) a += static_cast<double>(wih[static_cast<size_t>(r) * in + k]) * xt[k];
      for (int k = 0; k < H; ++k) bb += static_cast<double>(whh[static_cast<size_t>(r) * H + k]) * h[k];
      gi[r] = a;
      gh[r] = bb;
    }
    for (int j = 0; j < H; ++j) {
      if (type == RnnType::kGru) {
        const double r = sig(gi[j] + gh[j]), z = sig(gi[H + j] + gh[H + j]);
        const double n = std::tanh(gi[2 * H + j] + r * gh[2 * H + j]);
        h[j] = (1 - z) * n + z * h[j];
      } else {
        const double i = sig(gi[j] + gh[j]), f = sig(gi[H + j] + gh[H + j]);
        const double g = std::tanh(gi[2 * H + j] + gh[2 * H + j]), o = sig(gi[3 * H + j] + gh[3 * H + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * std::tanh(c[j]);
      }
    }
    out.insert(out.end(), h.begin(), h.end());
  }
}

}  // namespace

TEST(CpuRnn, GruAndLstmMatchReference) {
  IsaGuard guard;
  for (Isa isa : supported_isas()) {
    isa_set(isa);
    for (RnnType type : {RnnType::kGru, RnnType::kLstm}) {
      for (bool constant : {false, true})
      for (int H : {24, 150}) {  // partial unit blocks (ops.h kRnnBlock)
        const int in = 19, steps = 9;
        const int G = (type == RnnType::kGru ? 3 : 4) * H;
        auto wih = rand_vec(static_cast<size_t>(G) * in, -0.5f, 0.5f);
        auto whh = rand_vec(static_cast<size_t>(G) * H, -0.5f, 0.5f);
        auto bih = rand_vec(G), bhh = rand_vec(G);
        auto x = rand_vec(static_cast<size_t>(steps) * in);
        RnnLayer l{wih.data(), whh.data(), bih.data(), bhh.data(), in, H};
        PackedRnn p = rnn_pack(l, type);
        std::vector<float> scratch(rnn_scratch_floats(p, steps), kNan);
        const int ldo = H + 2;
        std::vector<float> out(static_cast<size_t>(steps) * ldo, kNan), hf(H, kNan);
        rnn_forward(p, x.data(), in, constant, steps, out.data(), ldo, hf.data(), scratch.data());
        std::vector<double> want;
        rnn_ref(type, wih, whh, bih, bhh, in, H, x, constant, steps, want);
        std::vector<float> got;
        for (int t = 0; t < steps; ++t)
          for (int j = 0; j < H; ++j) got.push_back(out[static_cast<size_t>(t) * ldo + j]);
        EXPECT_LT(rel_l2(got, want, got.size()), 5e-6) << isa_name(isa);
        std::vector<double> last(want.end() - H, want.end());
        EXPECT_LT(rel_l2(hf, last, H), 5e-6);
      }
    }
  }
}

TEST(CpuFft, ForwardAndInverseMatchDft) {
  IsaGuard guard;
  for (Isa isa : supported_isas())
  for (int n : {4, 8, 16, 64, 256, 512, 1024, 2048, 4096}) {
    isa_set(isa);
    SCOPED_TRACE(isa_name(isa));
    RealFft fft(n);
    auto x = rand_vec(n);
    std::vector<float> X(n + 2, kNan), scratch(fft.scratch_floats(), kNan);
    fft.forward(x.data(), X.data(), scratch.data());
    std::vector<double> want(n + 2);
    const double pi = 3.14159265358979323846;
    for (int k = 0; k <= n / 2; ++k) {
      double re = 0, im = 0;
      for (int t = 0; t < n; ++t) {
        re += x[t] * std::cos(2 * pi * k * t / n);
        im -= x[t] * std::sin(2 * pi * k * t / n);
      }
      want[2 * k] = re;
      want[2 * k + 1] = im;
    }
    EXPECT_LT(rel_l2(X, want, n + 2), 2e-6) << "n=" << n;
    // Inverse of a random half spectrum (imaginary parts of DC and Nyquist ignored).
    auto Y = rand_vec(n + 2);
    std::vector<float> y(n, kNan);
    fft.inverse(Y.data(), y.data(), scratch.data());
    std::vector<double> yw(n);
    for (int t = 0; t < n; ++t) {
      double v = Y[0] + Y[n] * ((t & 1) ? -1.0 : 1.0);
      for (int k = 1; k < n / 2; ++k)
        v += 2 * (Y[2 * k] * std::cos(2 * pi * k * t / n) - Y[2 * k + 1] * std::sin(2 * pi * k * t / n));
      yw[t] = v / n;
    }
    EXPECT_LT(rel_l2(y, yw, n), 2e-6) << "n=" << n;
  }
}

TEST(CpuPhilox, Random123TestVectors) {
  struct V { uint32_t c[4]; uint32_t k[2]; uint32_t x[4]; };
  const V v[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}};
  for (const V &t : v) {
    const uint64_t seed = t.k[0] | (static_cast<uint64_t>(t.k[1]) << 32);
    Philox4 p = philox4x32_10(t.c[0], t.c[1], t.c[2], t.c[3], seed);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(p.x[i], t.x[i]) << i;
  }
}

TEST(CpuNoiseFilter, NoiseIsTheDomainOneStream) {
  IsaGuard guard;
  for (Isa isa : supported_isas())
  for (int l : {16, 64, 100, 2048}) {
  isa_set(isa);
  SCOPED_TRACE(isa_name(isa));
  std::vector<float> u(l, kNan);
  const uint64_t seed = 0x123456789abcull + static_cast<uint64_t>(rng()() % 1000) * 0x100000001ull;
  noise_filter_noise(seed, 7, 5, l, u.data());
  for (int j = 0; j < l / 4; ++j) {
    Philox4 p = philox4x32_10(j, 5, 7, 1, seed);
    for (int i = 0; i < 4; ++i) {
      const float want = static_cast<float>(static_cast<double>(p.x[i] >> 8) / 8388608.0 - 1.0);
      EXPECT_EQ(u[4 * j + i], want);
      EXPECT_GE(u[4 * j + i], -1.0f);
      EXPECT_LT(u[4 * j + i], 1.0f);
    }
  }
  }
}

namespace {

// Double DFT helpers for the synthesis references.
std::vector<std::complex<double>> dft_r(const std::vector<double> &x) {
  const int n = static_cast<int>(x.size());
  std::vector<std::complex<double>> X(n / 2 + 1);
  const double pi = 3.14159265358979323846;
  for (int k = 0; k <= n / 2; ++k)
    for (int t = 0; t < n; ++t) X[k] += x[t] * std::polar(1.0, -2 * pi * k * t / n);
  return X;
}

std::vector<double> idft_r(const std::vector<std::complex<double>> &X, int n) {
  std::vector<double> y(n);
  const double pi = 3.14159265358979323846;
  for (int t = 0; t < n; ++t) {
    double v = X[0].real() + X[n / 2].real() * ((t & 1) ? -1 : 1);
    for (int k = 1; k < n / 2; ++k) v += 2 * (X[k] * std::polar(1.0, 2 * pi * k * t / n)).real();
    y[t] = v / n;
  }
  return y;
}

}  // namespace

// S must equal rfft(fftshift(irfft(H) * filter_window)) (docs/MODEL_SPEC.md §4.2).
TEST(CpuDecoderMlp, SpectrumIdentityMatchesFilterDesign) {
  IsaGuard guard;
  for (Isa isa : supported_isas())
  for (int l : {16, 64, 256, 2048}) {
    isa_set(isa);
    SCOPED_TRACE(isa_name(isa));
    const int F = l / 2 + 1, rows = 3;
    auto x = rand_vec(static_cast<size_t>(rows) * F, -4.0f, 4.0f);
    x[1] = 95.0f;  // saturated and vanishing magnitudes
    x[2] = -120.0f;
    x[F + 3] = -30.0f;
    x[F + 4] = 30.0f;
    std::vector<float> S(x.size(), kNan), scratch(F, kNan);
    decoder_mlp_spectrum(x.data(), rows, F, S.data(), scratch.data());
    const double pi = 3.14159265358979323846;
    for (int r = 0; r < rows; ++r) {
      std::vector<std::complex<double>> H(F);
      for (int k = 0; k < F; ++k) {
        const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(x[r * F + k])));
        H[k] = 2.0 * std::pow(s, std::log(10.0)) + 1e-7;
      }
      std::vector<double> ir = idft_r(H, l), sh(l);
      for (int t = 0; t < l; ++t) ir[t] *= 0.5 + 0.5 * std::cos(2 * pi * t / l);  // filter_window
      for (int t = 0; t < l; ++t) sh[(t + l / 2) % l] = ir[t];                    // fftshift
      auto X = dft_r(sh);
      std::vector<double> want(F);
      double maxim = 0;
      for (int k = 0; k < F; ++k) {
        want[k] = X[k].real();
        maxim = std::max(maxim, std::fabs(X[k].imag()));
      }
      EXPECT_LT(maxim, 1e-9);
      EXPECT_LT(rel_l2(S.data() + r * F, want, F), 2e-6) << "l=" << l;
    }
  }
}

TEST(CpuNoiseFilter, GrainMatchesReference) {
  IsaGuard guard;
  for (Isa isa : supported_isas())
  for (int l : {256, 1024}) {
  isa_set(isa);
  SCOPED_TRACE(isa_name(isa));
  const int F = l / 2 + 1;
  RealFft fft(l);
  std::vector<float> hann(l);
  noise_filter_window(1, 3, l, hann.data());
  const double pi = 3.14159265358979323846;
  for (int t = 0; t < l; ++t) ASSERT_NEAR(hann[t], 0.5 - 0.5 * std::cos(2 * pi * t / l), 1e-7);
  for (int g : {0, 1, 4}) {
    const int n_total = 5;
    auto S = rand_vec(F);
    std::vector<float> u(l);
    noise_filter_noise(99, 3, g, l, u.data());
    std::vector<float> y(l, kNan), scratch(2 * (l + 2), kNan);
    noise_filter_grain(fft, S.data(), u.data(), hann.data(), g, n_total, y.data(), scratch.data());
    std::vector<double> ud(u.begin(), u.end());
    auto U = dft_r(ud);
    for (int k = 0; k < F; ++k) U[k] *= S[k];
    auto want = idft_r(U, l);
    for (int t = 0; t < l; ++t) {
      double w = 0.5 - 0.5 * std::cos(2 * pi * t / l);
      if ((g == 0 && t < l / 2) || (g == n_total - 1 && t >= l / 2)) w = 1.0;
      want[t] *= w;
    }
    EXPECT_LT(rel_l2(y, want, l), 2e-6) << "g=" << g;
  }
  }
}

TEST(CpuOverlapAdd, DivisorAndFir) {
  IsaGuard guard;
  for (Isa isa : supported_isas())
  for (int l : {32, 256}) {
  isa_set(isa);
  SCOPED_TRACE(isa_name(isa));
  const int hop = l / 4;
  for (int n : {1, 2, 5}) {
    const int len = (n + 3) * hop;
    auto y = rand_vec(static_cast<size_t>(n) * l);
    std::vector<float> div(len, kNan);
    overlap_add_divisor(n, hop, l, div.data());
    for (bool norm : {false, true}) {
      std::vector<float> a(len, kNan);
      overlap_add(y.data(), n, l, hop, norm, a.data());
      std::vector<double> want(len, 0.0), cnt(len, 0.0);
      for (int g = 0; g < n; ++g)
        for (int i = 0; i < l; ++i) {
          want[g * hop + i] += y[g * l + i];
          cnt[g * hop + i] += 1;
        }
      for (int t = 0; t < len; ++t) {
        ASSERT_EQ(div[t], cnt[t]);
        if (norm) want[t] /= cnt[t];
      }
      EXPECT_LT(rel_l2(a, want, len), 1e-6) << "n=" << n;
    }
    // FIR (odd taps, centred, zero padding) + softsign.
    auto a = rand_vec(len, -2.0f, 2.0f);
    for (int taps : {1, 5, 65}) {
      auto fir = rand_vec(taps);
      const float bias = 0.3f;
      std::vector<float> out(len, kNan);
      overlap_add_fir_softsign(a.data(), len, fir.data(), taps, bias, out.data());
      std::vector<double> want(len);
      for (int t = 0; t < len; ++t) {
        double v = bias;
        for (int k = 0; k < taps; ++k) {
          const int s = t + k - taps / 2;
          if (s >= 0 && s < len) v += static_cast<double>(fir[k]) * a[s];
        }
        want[t] = v / (1 + std::fabs(v));
      }
      EXPECT_LT(rel_l2(out, want, len), 2e-6) << "taps=" << taps;
    }
  }
  }
}

TEST(CpuOverlapAdd, BlockAndRangeVariantsMatchWholeCalls) {
  IsaGuard guard;
  for (Isa isa : supported_isas()) {
    isa_set(isa);
    const int l = 64, hop = 16, n = 7, len = (n + 3) * hop;
    auto y = rand_vec(static_cast<size_t>(n) * l);
    std::vector<float> whole(len, kNan), parts(len, kNan);
    overlap_add(y.data(), n, l, hop, true, whole.data());
    overlap_add_blocks(y.data(), n, l, hop, true, parts.data(), 0, 3);
    overlap_add_blocks(y.data(), n, l, hop, true, parts.data(), 3, 4);
    overlap_add_blocks(y.data(), n, l, hop, true, parts.data(), 4, n + 3);
    EXPECT_EQ(parts, whole);
    auto fir = rand_vec(17);
    std::vector<float> f1(len, kNan), f2(len, kNan);
    overlap_add_fir_softsign(whole.data(), len, fir.data(), 17, -0.1f, f1.data());
    for (int t0 = 0; t0 < len; t0 += 37)
      overlap_add_fir_softsign_range(whole.data(), len, fir.data(), 17, -0.1f, f2.data(), t0,
                               std::min(len, t0 + 37));
    EXPECT_EQ(f1, f2) << isa_name(isa);
  }
}
