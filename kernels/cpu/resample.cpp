// Rational polyphase sample-rate converter (resample.h).
#include "cpu/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu/ops.h"

namespace ngs::cpu {

namespace {

constexpr double kAttenDb = 100.0;   // Kaiser design target (measured >= 90 dB)
constexpr double kPass = 0.45;       // passband edge, fraction of the lower rate
constexpr double kStop = 0.50;       // stopband edge, fraction of the lower rate
constexpr int kLanes = 8;            // partial sums of the dot product (taps padded to it)

struct Shape {
  int L = 1, M = 1, half = 0, T = 0;
};

Shape shape_of(int in_rate, int out_rate) {
  Shape s;
  const int g = std::gcd(in_rate, out_rate);
  s.L = out_rate / g;
  s.M = in_rate / g;
  const double lower = std::min(in_rate, out_rate);
  const double fs_hi = static_cast<double>(s.L) * in_rate;
  const double dw = 2.0 * M_PI * (kStop - kPass) * lower / fs_hi;
  const double n1 = std::ceil((kAttenDb - 7.95) / (2.285 * dw));
  s.half = static_cast<int>(std::ceil(n1 / 2.0));
  const int n = 2 * s.half + 1;
  const int t = (n + s.L - 1) / s.L;
  s.T = (t + kLanes - 1) / kLanes * kLanes;
  return s;
}

// Modified Bessel function of the first kind, order 0 (power series).
double bessel_i0(double x) {
  double sum = 1.0, term = 1.0;
  const double q = x * x / 4.0;
  for (int k = 1; k < 200; ++k) {
    term *= q / (static_cast<double>(k) * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

}  // namespace

size_t Polyphase::table_floats(int in_rate, int out_rate) {
  const Shape s = shape_of(in_rate, out_rate);
  return static_cast<size_t>(s.L) * s.T;
}

Polyphase::Polyphase(int in_rate, int out_rate, int max_in) {
  const Shape s = shape_of(in_rate, out_rate);
  L_ = s.L;
  M_ = s.M;
  half_ = s.half;
  T_ = s.T;
  max_in_ = std::max(1, max_in);
  // Prototype at the rate L * in_rate: a windowed sinc with its cutoff in the middle of
  // the transition band, gain L (the L - 1 zeros between input samples).
  const double lower = std::min(in_rate, out_rate);
  const double fc = 0.5 * (kPass + kStop) * lower / (static_cast<double>(L_) * in_rate);
  const double beta = 0.1102 * (kAttenDb - 8.7);
  const double i0b = bessel_i0(beta);
  const int n = 2 * half_ + 1;
  proto_.resize(n);
  for (int i = 0; i < n; ++i) {
    const double t = i - half_;
    const double x = 2.0 * fc * t;
    const double sinc = t == 0 ? 1.0 : std::sin(M_PI * x) / (M_PI * x);
    const double r = t / half_;
    const double w = bessel_i0(beta * std::sqrt(std::max(0.0, 1.0 - r * r))) / i0b;
    proto_[i] = L_ * 2.0 * fc * sinc * w;
  }
  // Phase p (output with (k M + half) mod L == p): coefficient u multiplies input
  // n_hi - T + 1 + u, i.e. prototype index p + (T - 1 - u) L.
  phases_.assign(static_cast<size_t>(L_) * T_, 0.0f);
  for (int p = 0; p < L_; ++p)
    for (int u = 0; u < T_; ++u) {
      const int64_t i = p + static_cast<int64_t>(T_ - 1 - u) * L_;
      if (i < n) phases_[static_cast<size_t>(p) * T_ + u] = static_cast<float>(proto_[i]);
    }
  hist_.assign(static_cast<size_t>(T_) + max_in_ + kLanes, 0.0f);
  reset();
}

void Polyphase::reset() {
  std::fill(hist_.begin(), hist_.end(), 0.0f);
  base_ = -T_;  // T zeros before the first input sample
  len_ = T_;
  n_in_ = 0;
  k_ = 0;
}

int64_t Polyphase::first_output(int64_t n_in) const {
  // The smallest k with floor((k M + half) / L) >= n_in.
  const int64_t num = n_in * L_ - half_;
  if (num <= 0) return 0;
  return (num + M_ - 1) / M_;
}

void Polyphase::restart(int64_t n_in, const float *hist, int n_hist) {
  std::fill(hist_.begin(), hist_.end(), 0.0f);
  base_ = n_in - T_;
  len_ = T_;
  const int m = std::min(n_hist, T_);
  if (m > 0) std::memcpy(hist_.data() + (T_ - m), hist + (n_hist - m), sizeof(float) * m);
  n_in_ = n_in;
  k_ = first_output(n_in);
}

namespace {

// The dot product of T (a multiple of 8) coefficients with the input window: 8 partial
// sums, lane j over the taps j, j + 8, ..., combined in a fixed order. The AVX2 build is
// the same arithmetic in one 8-lane register (multiply, then add: no FMA), so both give
// the same bits.
inline float dot8(const float *q, const float *x, int T) {
  float acc[kLanes] = {};
  for (int u = 0; u < T; u += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += q[u + j] * x[u + j];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

float dot_portable(const float *q, const float *x, int T) { return dot8(q, x, T); }

#if defined(__x86_64__)
__attribute__((target("avx2"))) float dot_avx2(const float *q, const float *x, int T) {
  __m256 acc = _mm256_setzero_ps();
  for (int u = 0; u < T; u += kLanes)
    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q + u), _mm256_loadu_ps(x + u)));
  alignas(32) float a[kLanes];
  _mm256_store_ps(a, acc);
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}
#endif

}  // namespace

float Polyphase::dot(int64_t k) const {
  const int64_t K = k * M_ + half_;
  const int64_t n_hi = K / L_;
  const float *q = phases_.data() + static_cast<size_t>(K % L_) * T_;
  const float *x = hist_.data() + (n_hi - T_ + 1 - base_);
#if defined(__x86_64__)
  if (isa_active() != Isa::kPortable) return dot_avx2(q, x, T_);
#endif
  return dot_portable(q, x, T_);
}

void Polyphase::process(const float *in, long n_in, float *out, long max_out, long *used,
                        long *gen) {
  // Drop the history the next output no longer needs.
  const int64_t lo = (k_ * M_ + half_) / L_ - T_ + 1;
  if (lo > base_) {
    const int64_t d = std::min<int64_t>(lo - base_, len_);
    std::memmove(hist_.data(), hist_.data() + d, sizeof(float) * static_cast<size_t>(len_ - d));
    len_ -= static_cast<int>(d);
    base_ += d;
  }
  const long room = static_cast<long>(hist_.size()) - kLanes - len_;
  const long take = std::max(0L, std::min(n_in, room));
  if (take > 0) std::memcpy(hist_.data() + len_, in, sizeof(float) * static_cast<size_t>(take));
  len_ += static_cast<int>(take);
  n_in_ += take;
  long g = 0;
  while (g < max_out && (k_ * M_ + half_) / L_ < n_in_) out[g++] = dot(k_++);
  *used = take;
  *gen = g;
}

}  // namespace ngs::cpu
