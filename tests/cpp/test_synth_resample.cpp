// The synth's rational polyphase converter (kernels/cpu/resample.h): every output equals a
// direct double-precision evaluation of the same prototype filter; the prototype (as the
// float phase table holds it) has <= 0.001 dB passband ripple to 0.45 of the lower rate
// and >= 90 dB attenuation from 0.5 of it; sines come out with the right amplitude and
// phase (zero group delay: output k is aligned with input k M / L), out-of-band sines are
// removed, an impulse peaks at its aligned position; the output does not depend on how
// the input is cut into calls, and a restart from the last history() samples continues
// the stream bit for bit. Inputs are fresh random signals, outputs NaN-poisoned.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cpu/resample.h"

namespace {

using ngs::cpu::Polyphase;

struct Pair {
  int in, out;
};
const Pair kPairs[] = {{16000, 48000}, {48000, 16000}, {16000, 44100}, {44100, 16000},
                       {22050, 48000}, {48000, 22050}, {16000, 8000},  {192000, 16000},
                       {16000, 96000}};

std::string name(const Pair &p) { return std::to_string(p.in) + "->" + std::to_string(p.out); }

// Streams x through a fresh converter in random chunks (<= max_in) with random output room.
std::vector<float> stream(Polyphase &r, const std::vector<float> &x, int max_in, uint32_t seed,
                          bool random_chunks = true) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> cd(1, max_in), od(1, 300);
  std::vector<float> y;
  std::vector<float> buf(4096);
  size_t pos = 0;
  while (pos < x.size()) {
    const long n = std::min<long>(random_chunks ? cd(rng) : max_in, static_cast<long>(x.size() - pos));
    long done = 0;
    while (done < n) {
      std::fill(buf.begin(), buf.end(), std::nanf(""));
      long used = 0, gen = 0;
      const long room = random_chunks ? od(rng) : static_cast<long>(buf.size());
      r.process(x.data() + pos + done, n - done, buf.data(), room, &used, &gen);
      y.insert(y.end(), buf.begin(), buf.begin() + gen);
      done += used;
      if (used == 0 && gen == 0) ADD_FAILURE() << "no progress";
    }
    pos += static_cast<size_t>(n);
  }
  // Drain what is ready.
  for (;;) {
    long used = 0, gen = 0;
    r.process(nullptr, 0, buf.data(), static_cast<long>(buf.size()), &used, &gen);
    if (gen == 0) break;
    y.insert(y.end(), buf.begin(), buf.begin() + gen);
  }
  return y;
}

std::vector<float> noise(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float &v : x) v = d(rng);
  return x;
}

TEST(SynthResample, EqualsDirectDoubleEvaluation) {
  for (const Pair &p : kPairs) {
    Polyphase r(p.in, p.out, 512);
    const std::vector<float> x = noise(4000, static_cast<uint32_t>(p.in + 3 * p.out));
    const std::vector<float> y = stream(r, x, 512, 7);
    ASSERT_EQ(static_cast<int64_t>(y.size()), r.first_output(static_cast<int64_t>(x.size()))) << name(p);
    const std::vector<double> &h = r.prototype();
    const int64_t L = r.up(), M = r.down(), half = r.half(), n = static_cast<int64_t>(h.size());
    double worst = 0.0;
    for (size_t k = 0; k < y.size(); ++k) {
      ASSERT_TRUE(std::isfinite(y[k])) << name(p) << " k " << k;
      const int64_t K = static_cast<int64_t>(k) * M + half;
      double acc = 0.0;
      for (int64_t i = K % L; i < n; i += L) {  // i = K - m L for input m
        const int64_t m = (K - i) / L;
        if (m >= 0 && m < static_cast<int64_t>(x.size())) acc += h[i] * x[m];
      }
      worst = std::max(worst, std::abs(acc - y[k]));
    }
    // float coefficients and products of a ~100-1000 tap dot product of |x| <= 1
    EXPECT_LT(worst, 2e-6) << name(p);
    EXPECT_GT(y.size(), 0u);
  }
}

// The response of the filter the converter runs (its float phase table, reassembled),
// evaluated in double: passband ripple and stopband attenuation.
TEST(SynthResample, FilterMeetsItsSpec) {
  for (const Pair &p : kPairs) {
    Polyphase r(p.in, p.out, 64);
    // The phase table holds the prototype rounded to float (the direct evaluation test
    // checks the outputs against it): its response, in double.
    const std::vector<double> &h = r.prototype();
    const double fs_hi = static_cast<double>(r.up()) * p.in, lower = std::min(p.in, p.out);
    auto mag = [&](double f) {
      std::complex<double> acc = 0.0;
      const double w = 2.0 * M_PI * f / fs_hi;
      for (size_t i = 0; i < h.size(); ++i)
        acc += static_cast<double>(static_cast<float>(h[i])) * std::polar(1.0, -w * static_cast<double>(i));
      return std::abs(acc) / r.up();  // DC gain L (zero stuffing)
    };
    const int grid = h.size() > 20000 ? 60 : 300;
    double pmin = 1e9, pmax = 0.0, smax = 0.0;
    for (int i = 0; i <= grid; ++i) {
      const double m = mag(0.45 * lower * i / grid);
      pmin = std::min(pmin, m);
      pmax = std::max(pmax, m);
    }
    // Stopband: from 0.5 lower to the lower rate's first image region and beyond (a few
    // lower-rate widths: the sidelobes of a Kaiser window decay with frequency).
    const double top = std::min(fs_hi / 2, 4.0 * lower);
    for (int i = 0; i <= 4 * grid; ++i) smax = std::max(smax, mag(0.5 * lower + (top - 0.5 * lower) * i / (4 * grid)));
    EXPECT_LT(20 * std::log10(pmax), 0.001) << name(p);
    EXPECT_GT(20 * std::log10(pmin), -0.001) << name(p);
    EXPECT_LT(20 * std::log10(smax), -90.0) << name(p);
  }
}

// Amplitude and phase of a fitted sine at frequency f (least squares on sin/cos).
void fit(const std::vector<float> &y, size_t b, size_t e, double f, double fs, double &amp, double &ph) {
  double ss = 0, sc = 0, cc = 0, ys = 0, yc = 0;
  for (size_t k = b; k < e; ++k) {
    const double t = 2 * M_PI * f * k / fs, s = std::sin(t), c = std::cos(t);
    ss += s * s;
    sc += s * c;
    cc += c * c;
    ys += y[k] * s;
    yc += y[k] * c;
  }
  const double det = ss * cc - sc * sc;
  const double a = (ys * cc - yc * sc) / det, bb = (yc * ss - ys * sc) / det;
  amp = std::hypot(a, bb);
  ph = std::atan2(bb, a);
}

TEST(SynthResample, SinesKeepAmplitudeAndPhaseAndOutOfBandIsRemoved) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  for (const Pair &p : kPairs) {
    Polyphase r(p.in, p.out, 256);
    const double lower = std::min(p.in, p.out);
    const size_t n_in = static_cast<size_t>(p.in / 4);  // 0.25 s
    for (int trial = 0; trial < 3; ++trial) {
      const double f = lower * (0.02 + 0.42 * ud(rng)), ph0 = 2 * M_PI * ud(rng);
      std::vector<float> x(n_in);
      for (size_t i = 0; i < n_in; ++i) x[i] = static_cast<float>(0.5 * std::sin(2 * M_PI * f * i / p.in + ph0));
      r.reset();
      const std::vector<float> y = stream(r, x, 256, static_cast<uint32_t>(trial));
      // Steady state: away from the start and the end (the filter's half length).
      const size_t edge = static_cast<size_t>(std::ceil(r.lookahead() * p.out / p.in)) + 16;
      ASSERT_GT(y.size(), 4 * edge) << name(p);
      double amp = 0, ph = 0;
      fit(y, edge, y.size() - edge, f, p.out, amp, ph);
      EXPECT_NEAR(20 * std::log10(amp / 0.5), 0.0, 0.002) << name(p) << " f " << f;
      // Zero group delay: the output's phase is the input's at the aligned time.
      double d = std::remainder(ph - ph0, 2 * M_PI);
      EXPECT_NEAR(d, 0.0, 1e-4) << name(p) << " f " << f;
    }
    // Above the lower rate's Nyquist frequency nothing may come through (down-conversion:
    // no alias; up-conversion: its input cannot hold such a tone, skip).
    if (p.in > p.out) {
      const double f = lower * (0.5 + 0.1 + 0.3 * ud(rng));
      std::vector<float> x(n_in);
      for (size_t i = 0; i < n_in; ++i) x[i] = static_cast<float>(0.5 * std::sin(2 * M_PI * f * i / p.in));
      r.reset();
      const std::vector<float> y = stream(r, x, 256, 5);
      const size_t edge = static_cast<size_t>(std::ceil(r.lookahead() * p.out / p.in)) + 16;
      double e = 0;
      for (size_t k = edge; k < y.size() - edge; ++k) e += static_cast<double>(y[k]) * y[k];
      const double rms = std::sqrt(e / (y.size() - 2 * edge));
      EXPECT_LT(20 * std::log10(rms / (0.5 / std::sqrt(2.0))), -90.0) << name(p) << " f " << f;
    }
  }
}

TEST(SynthResample, ImpulsePeaksAtItsAlignedTime) {
  for (const Pair &p : kPairs) {
    Polyphase r(p.in, p.out, 128);
    const double step = static_cast<double>(p.in) / p.out;
    // Impulses at input samples whose aligned output time is an integer.
    const int64_t m0 = 40 * r.down() + r.down() * static_cast<int64_t>(std::ceil(r.lookahead() / r.down()));
    std::vector<float> x(static_cast<size_t>(m0 + 4 * r.lookahead() + 64), 0.0f);
    x[static_cast<size_t>(m0)] = 1.0f;
    const std::vector<float> y = stream(r, x, 128, 3);
    size_t peak = 0;
    for (size_t k = 0; k < y.size(); ++k)
      if (std::abs(y[k]) > std::abs(y[peak])) peak = k;
    EXPECT_EQ(static_cast<int64_t>(peak), m0 * r.up() / r.down()) << name(p);
    // Its height: the prototype's centre tap (L * 2 fc).
    EXPECT_FLOAT_EQ(y[peak], static_cast<float>(r.prototype()[r.half()])) << name(p) << " step " << step;
  }
}

TEST(SynthResample, ChunkingAndRestartDoNotChangeTheOutput) {
  for (const Pair &p : kPairs) {
    const std::vector<float> x = noise(6000, static_cast<uint32_t>(p.out));
    Polyphase a(p.in, p.out, 700), b(p.in, p.out, 700);
    const std::vector<float> ya = stream(a, x, 700, 1, false);
    const std::vector<float> yb = stream(b, x, 700, 2, true);
    ASSERT_EQ(ya.size(), yb.size()) << name(p);
    ASSERT_EQ(0, std::memcmp(ya.data(), yb.data(), sizeof(float) * ya.size())) << name(p);
    // Restart at input s from the last history() samples: the rest of the stream is the
    // same bit for bit (the synth restarts its input converter when a voice needs input).
    for (int64_t s : {int64_t(0), int64_t(5), int64_t(1777), int64_t(4321)}) {
      Polyphase c(p.in, p.out, 700);
      const int nh = static_cast<int>(std::min<int64_t>(s, c.history()));
      c.restart(s, x.data() + (s - nh), nh);
      const int64_t k0 = c.first_output(s);
      ASSERT_EQ(c.outputs(), k0);
      std::vector<float> rest(x.begin() + s, x.end());
      const std::vector<float> yc = stream(c, rest, 700, 9, true);
      ASSERT_EQ(static_cast<int64_t>(yc.size()) + k0, static_cast<int64_t>(ya.size())) << name(p) << " s " << s;
      ASSERT_EQ(0, std::memcmp(yc.data(), ya.data() + k0, sizeof(float) * yc.size()))
          << name(p) << " s " << s;
    }
  }
}

// Every instruction set computes the same bits (the dot product's lanes and their sum
// in the same order, no FMA).
TEST(SynthResample, SameBitsOnEveryIsa) {
  const ngs::cpu::Isa was = ngs::cpu::isa_active();
  for (const Pair &p : kPairs) {
    const std::vector<float> x = noise(3000, static_cast<uint32_t>(p.in ^ p.out));
    std::vector<float> ref;
    for (ngs::cpu::Isa isa : {ngs::cpu::Isa::kPortable, ngs::cpu::Isa::kAvx2, ngs::cpu::Isa::kAvx512}) {
      if (!ngs::cpu::isa_set(isa)) continue;
      Polyphase r(p.in, p.out, 256);
      const std::vector<float> y = stream(r, x, 256, 4);
      if (ref.empty()) ref = y;
      ASSERT_EQ(y.size(), ref.size());
      EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), sizeof(float) * y.size())) << name(p) << " isa " << int(isa);
    }
  }
  ngs::cpu::isa_set(was);
}

TEST(SynthResample, TableSizes) {
  // The synth uses the converter when L * taps <= 64 Ki floats: every common pair fits.
  for (const Pair &p : kPairs) EXPECT_LE(Polyphase::table_floats(p.in, p.out), 65536u) << name(p);
  EXPECT_EQ(Polyphase::table_floats(16000, 48000), 3u * Polyphase(16000, 48000, 1).taps());
  // An awkward ratio does not (the synth then uses libsamplerate).
  EXPECT_GT(Polyphase::table_floats(16000, 44099), 65536u);
}

}  // namespace
