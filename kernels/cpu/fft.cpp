// Real FFT of a power-of-two length n through a complex FFT of M = n/2 points (the even
// samples as real parts, the odd ones as imaginary parts) and one split pass. The complex
// FFT is the lane-vectorised four-step FFT of fft_simd.inc on AVX-512/AVX2 when M >= 256,
// else a scalar radix-2 FFT; both on split re/im arrays. The inverse uses
// ifft(X) = conj(fft(conj X)). Twiddles are computed once, in double, when planned.
#include <cmath>
#include <stdexcept>
#include <utility>

#include "cpu/dispatch.h"
#include "cpu/fft_internal.h"
#include "cpu/ops.h"

namespace ngs::cpu {
namespace {

const double kPi = 3.14159265358979323846;

int ilog2(int v) {
  int l = 0;
  while ((1 << l) < v) ++l;
  return l;
}

std::vector<int> bit_reversal(int m) {
  const int bits = ilog2(m);
  std::vector<int> rev(m);
  for (int i = 0; i < m; ++i) {
    int r = 0;
    for (int b = 0; b < bits; ++b)
      if (i & (1 << b)) r |= 1 << (bits - 1 - b);
    rev[i] = r;
  }
  return rev;
}

std::vector<float> twiddles(int m) {  // (cos, -sin)(2 pi j / m), j < m/2
  std::vector<float> t(static_cast<size_t>(std::max(m / 2, 1)) * 2);
  for (int j = 0; j < m / 2; ++j) {
    t[2 * j] = static_cast<float>(std::cos(2.0 * kPi * j / m));
    t[2 * j + 1] = static_cast<float>(-std::sin(2.0 * kPi * j / m));
  }
  return t;
}

}  // namespace

RealFft::RealFft(int n) : n_(n), half_(n / 2) {
  if (n < 4 || (n & (n - 1)) != 0)
    throw std::invalid_argument("RealFft: n must be a power of two >= 4");
  const int m = half_;
  log2_half_ = ilog2(m);
  bitrev_ = bit_reversal(m);
  twiddle_ = twiddles(m);
  post_.resize(static_cast<size_t>(m / 2 + 1) * 2);  // exp(-2 pi i k / n), k <= m/2
  for (int k = 0; k <= m / 2; ++k) {
    post_[2 * k] = static_cast<float>(std::cos(2.0 * kPi * k / n));
    post_[2 * k + 1] = static_cast<float>(-std::sin(2.0 * kPi * k / n));
  }
  if (m >= 256) {
    auto p = std::make_shared<FourStepPlan>();
    p->C = 1 << ((log2_half_ + 1) / 2);
    p->R = m / p->C;
    p->rev_r = bit_reversal(p->R);
    p->rev_c = bit_reversal(p->C);
    p->tw_r = twiddles(p->R);
    p->tw_c = twiddles(p->C);
    p->tw2r.resize(static_cast<size_t>(m));
    p->tw2i.resize(static_cast<size_t>(m));
    for (int r = 0; r < p->R; ++r)
      for (int c = 0; c < p->C; ++c) {
        const double a = -2.0 * kPi * static_cast<double>(r) * c / m;
        p->tw2r[static_cast<size_t>(r) * p->C + c] = static_cast<float>(std::cos(a));
        p->tw2i[static_cast<size_t>(r) * p->C + c] = static_cast<float>(std::sin(a));
      }
    p->post_r.resize(static_cast<size_t>(m));
    p->post_i.resize(static_cast<size_t>(m));
    for (int k = 0; k < m; ++k) {
      p->post_r[k] = static_cast<float>(std::cos(2.0 * kPi * k / n));
      p->post_i[k] = static_cast<float>(-std::sin(2.0 * kPi * k / n));
    }
    four_step_ = std::move(p);
  }
}

// Scalar radix-2 DIT, in place on split arrays.
void RealFft::complex_fft(float *re, float *im) const {
  const int m = half_;
  for (int i = 0; i < m; ++i) {
    const int r = bitrev_[i];
    if (r > i) {
      std::swap(re[i], re[r]);
      std::swap(im[i], im[r]);
    }
  }
  for (int len = 2; len <= m; len <<= 1) {
    const int h = len / 2, step = m / len;
    for (int i = 0; i < m; i += len) {
      for (int j = 0; j < h; ++j) {
        const float wr = twiddle_[2 * j * step], wi = twiddle_[2 * j * step + 1];
        const int p = i + j, q = i + j + h;
        const float vr = re[q] * wr - im[q] * wi, vi = re[q] * wi + im[q] * wr;
        re[q] = re[p] - vr;
        im[q] = im[p] - vi;
        re[p] += vr;
        im[p] += vi;
      }
    }
  }
}

// Complex FFT of (zr, zi) (destroyed); returns where the result is: (zr, zi) itself for
// the scalar path, (xr, xi) for the four-step path.
// The ISA of the FFT: the vector path needs its four-step plan (n/2 >= 256).
void RealFft::forward(const float *in, float *out, float *scratch) const {
  const int m = half_;
  const KernelTable &kt = kernels();
  if (four_step_ && kt.rfft_forward) return kt.rfft_forward(*four_step_, in, out, scratch);
  // z = x[even] + i x[odd], held in out (2m + 2 floats); the transform goes to scratch.
  // Scalar path: z in scratch, transformed in place.
  float *ar = scratch, *ai = scratch + m;
  for (int i = 0; i < m; ++i) {
    ar[i] = in[2 * i];
    ai[i] = in[2 * i + 1];
  }
  complex_fft(ar, ai);
  // Split: X[k] = E + W^k O, X[m-k] = conj(E - W^k O), E = (Z[k] + conj Z[m-k]) / 2,
  // O = (Z[k] - conj Z[m-k]) / 2i.
  out[0] = ar[0] + ai[0];
  out[1] = 0.0f;
  out[2 * m] = ar[0] - ai[0];
  out[2 * m + 1] = 0.0f;
  for (int k = 1; k < m - k; ++k) {
    const float zr_k = ar[k], zi_k = ai[k], zr_m = ar[m - k], zi_m = ai[m - k];
    const float er = 0.5f * (zr_k + zr_m), ei = 0.5f * (zi_k - zi_m);
    const float orr = 0.5f * (zi_k + zi_m), oi = -0.5f * (zr_k - zr_m);
    const float wr = post_[2 * k], wi = post_[2 * k + 1];
    const float tr = wr * orr - wi * oi, ti = wr * oi + wi * orr;
    out[2 * k] = er + tr;
    out[2 * k + 1] = ei + ti;
    out[2 * (m - k)] = er - tr;
    out[2 * (m - k) + 1] = ti - ei;
  }
  out[2 * (m / 2)] = ar[m / 2];  // X[m/2] = conj Z[m/2]
  out[2 * (m / 2) + 1] = -ai[m / 2];
}

void RealFft::inverse(const float *in, float *out, float *scratch) const {
  const int m = half_;
  const KernelTable &kt = kernels();
  if (four_step_ && kt.rfft_inverse) return kt.rfft_inverse(*four_step_, in, out, scratch);
  // conj Z, Z[k] = E + i O, E = (X[k] + conj X[m-k]) / 2, O = (X[k] - conj X[m-k]) W^-k / 2,
  // Z[m-k] = conj E + i conj O. Held in out (2m floats) for the four-step path.
  float *zr = scratch, *zi = zr + m;
  zr[0] = 0.5f * (in[0] + in[2 * m]);
  zi[0] = -0.5f * (in[0] - in[2 * m]);
  for (int k = 1; k < m - k; ++k) {
    const float ar = in[2 * k], ai = in[2 * k + 1];
    const float br = in[2 * (m - k)], bi = in[2 * (m - k) + 1];
    const float er = 0.5f * (ar + br), ei = 0.5f * (ai - bi);
    const float dr = 0.5f * (ar - br), di = 0.5f * (ai + bi);
    const float wr = post_[2 * k], wi = -post_[2 * k + 1];  // W^-k
    const float orr = dr * wr - di * wi, oi = dr * wi + di * wr;
    zr[k] = er - oi;
    zi[k] = -(ei + orr);
    zr[m - k] = er + oi;
    zi[m - k] = ei - orr;
  }
  zr[m / 2] = in[2 * (m / 2)];
  zi[m / 2] = in[2 * (m / 2) + 1];
  complex_fft(zr, zi);
  const float *ar = zr, *ai = zi;
  const float s = 1.0f / static_cast<float>(m);
  for (int i = 0; i < m; ++i) {
    const float r = ar[i], im = ai[i];
    out[2 * i] = r * s;
    out[2 * i + 1] = -im * s;
  }
}

void RealFft::filter(const float *u, const float *S, float *y, float *scratch) const {
  const KernelTable &kt = kernels();
  if (four_step_ && kt.rfft_filter) return kt.rfft_filter(*four_step_, u, S, y, scratch);
  float *spec = scratch, *fs = scratch + n_ + 2;
  forward(u, spec, fs);
  for (int k = 0; k <= half_; ++k) {
    spec[2 * k] *= S[k];
    spec[2 * k + 1] *= S[k];
  }
  inverse(spec, y, fs);
}

}  // namespace ngs::cpu
