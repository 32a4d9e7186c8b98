// Real FFT of a power-of-two length n through a complex FFT of n/2 points (the even
// samples as real parts, the odd ones as imaginary parts) and one split pass. Twiddles
// are computed once, in double precision, when the plan is built.
#include <cmath>
#include <stdexcept>
#include <utility>

#include "cpu/ops.h"

namespace ngs::cpu {

RealFft::RealFft(int n) : n_(n), half_(n / 2) {
  if (n < 4 || (n & (n - 1)) != 0) throw std::invalid_argument("RealFft: n must be a power of two >= 4");
  const int m = half_;
  while ((1 << log2_half_) < m) ++log2_half_;
  bitrev_.resize(m);
  for (int i = 0; i < m; ++i) {
    int r = 0;
    for (int b = 0; b < log2_half_; ++b)
      if (i & (1 << b)) r |= 1 << (log2_half_ - 1 - b);
    bitrev_[i] = r;
  }
  const double pi = 3.14159265358979323846;
  twiddle_.resize(static_cast<size_t>(m));  // exp(-2 pi i j / m), j < m/2, as (re, im)
  for (int j = 0; j < m / 2; ++j) {
    twiddle_[2 * j] = static_cast<float>(std::cos(2.0 * pi * j / m));
    twiddle_[2 * j + 1] = static_cast<float>(-std::sin(2.0 * pi * j / m));
  }
  post_.resize(static_cast<size_t>(m / 2 + 1) * 2);  // exp(-2 pi i k / n), k <= m/2
  for (int k = 0; k <= m / 2; ++k) {
    post_[2 * k] = static_cast<float>(std::cos(2.0 * pi * k / n));
    post_[2 * k + 1] = static_cast<float>(-std::sin(2.0 * pi * k / n));
  }
}

void RealFft::complex_fft(float *a, bool inverse) const {
  const int m = half_;
  for (int i = 0; i < m; ++i) {
    const int r = bitrev_[i];
    if (r > i) {
      std::swap(a[2 * i], a[2 * r]);
      std::swap(a[2 * i + 1], a[2 * r + 1]);
    }
  }
  const float sgn = inverse ? -1.0f : 1.0f;
  for (int len = 2; len <= m; len <<= 1) {
    const int h = len / 2, step = m / len;
    for (int i = 0; i < m; i += len) {
      for (int j = 0; j < h; ++j) {
        const float wr = twiddle_[2 * j * step], wi = sgn * twiddle_[2 * j * step + 1];
        float *p = a + 2 * (i + j), *q = a + 2 * (i + j + h);
        const float vr = q[0] * wr - q[1] * wi, vi = q[0] * wi + q[1] * wr;
        q[0] = p[0] - vr;
        q[1] = p[1] - vi;
        p[0] += vr;
        p[1] += vi;
      }
    }
  }
}

void RealFft::forward(const float *in, float *out, float * /*scratch*/) const {
  const int m = half_;
  for (int i = 0; i < n_; ++i) out[i] = in[i];
  complex_fft(out, false);
  // Split: X[k] = E + W^k O, X[m-k] = conj(E - W^k O), E = (Z[k] + conj Z[m-k]) / 2,
  // O = (Z[k] - conj Z[m-k]) / 2i.
  const float z0r = out[0], z0i = out[1];
  out[0] = z0r + z0i;
  out[1] = 0.0f;
  out[2 * m] = z0r - z0i;
  out[2 * m + 1] = 0.0f;
  for (int k = 1; k < m - k; ++k) {
    const float ar = out[2 * k], ai = out[2 * k + 1];
    const float br = out[2 * (m - k)], bi = out[2 * (m - k) + 1];
    const float er = 0.5f * (ar + br), ei = 0.5f * (ai - bi);
    // (Z[k] - conj Z[m-k]) / 2i = ((ai + bi) - i (ar - br)) / 2
    const float orr = 0.5f * (ai + bi), oi = -0.5f * (ar - br);
    const float wr = post_[2 * k], wi = post_[2 * k + 1];
    const float tr = wr * orr - wi * oi, ti = wr * oi + wi * orr;
    out[2 * k] = er + tr;
    out[2 * k + 1] = ei + ti;
    out[2 * (m - k)] = er - tr;
    out[2 * (m - k) + 1] = -(ei - ti);
  }
  if (m >= 2) out[2 * (m / 2) + 1] = -out[2 * (m / 2) + 1];  // X[m/2] = conj Z[m/2]
}

void RealFft::inverse(const float *in, float *out, float * /*scratch*/) const {
  const int m = half_;
  // Z[k] = E + i O, E = (X[k] + conj X[m-k]) / 2, O = (X[k] - conj X[m-k]) W^-k / 2,
  // Z[m-k] = conj E + i conj O.
  {
    const float x0 = in[0], xm = in[2 * m];
    out[0] = 0.5f * (x0 + xm);
    out[1] = 0.5f * (x0 - xm);
  }
  for (int k = 1; k < m - k; ++k) {
    const float ar = in[2 * k], ai = in[2 * k + 1];
    const float br = in[2 * (m - k)], bi = in[2 * (m - k) + 1];
    const float er = 0.5f * (ar + br), ei = 0.5f * (ai - bi);
    const float dr = 0.5f * (ar - br), di = 0.5f * (ai + bi);
    const float wr = post_[2 * k], wi = -post_[2 * k + 1];  // W^-k
    const float orr = dr * wr - di * wi, oi = dr * wi + di * wr;
    out[2 * k] = er - oi;
    out[2 * k + 1] = ei + orr;
    // conj E + i conj O = (er + oi) + i (-ei + orr)
    out[2 * (m - k)] = er + oi;
    out[2 * (m - k) + 1] = -ei + orr;
  }
  if (m >= 2) {
    out[2 * (m / 2)] = in[2 * (m / 2)];
    out[2 * (m / 2) + 1] = -in[2 * (m / 2) + 1];
  }
  complex_fft(out, true);
  const float s = 1.0f / static_cast<float>(m);
  for (int i = 0; i < n_; ++i) out[i] *= s;
}

}  // namespace ngs::cpu
