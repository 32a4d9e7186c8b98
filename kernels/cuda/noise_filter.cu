// y_i[t] = w_{g0+i}[t] * irfft(rfft(u_{g0+i}) * S_i)[t], u = Philox uniform noise in [-1, 1),
// w = OLA window; S [n][F], y [n][L]. One block per grain: the real FFT of L points is a
// complex radix-2 FFT of M = L/2 points in shared memory (two buffers) plus the split step.
#include "noise_filter.cuh"

#include <cmath>

#include "common/philox.h"

namespace ngs::cuda {

namespace {
constexpr int kNoiseThreads = 256;
}

__device__ __forceinline__ float2 cmul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
__device__ __forceinline__ float2 cconj(float2 a) { return make_float2(a.x, -a.y); }

// In-place radix-2 decimation-in-time FFT of M = 2^log_m points stored in bit-reversed
// order; tw[k] = exp(-2 pi i k / L), L = 2 M. inverse: conjugate twiddles, no scaling.
__device__ void block_fft(float2 *a, int log_m, const float2 *__restrict__ tw, bool inverse) {
  const int m = 1 << log_m, l = 2 * m;
  for (int s = 1; s <= log_m; ++s) {
    const int h = 1 << (s - 1);
    const int tw_stride = l / (2 * h);
    for (int b = threadIdx.x; b < m / 2; b += blockDim.x) {
      const int j = b & (h - 1);
      const int i0 = ((b >> (s - 1)) << s) + j, i1 = i0 + h;
      float2 w = tw[j * tw_stride];
      if (inverse) w.y = -w.y;
      const float2 u = a[i0], v = cmul(w, a[i1]);
      a[i0] = make_float2(u.x + v.x, u.y + v.y);
      a[i1] = make_float2(u.x - v.x, u.y - v.y);
    }
    __syncthreads();
  }
}

// kSpecs: grain i has its own key, index and window (specs[i], decode_grains); otherwise
// grain i is grain g0 + i of one series (*params).
template <bool kSpecs>
static __global__ void __launch_bounds__(kNoiseThreads)
    noise_filter_kernel(const float *__restrict__ S, int log_m,
                        const float2 *__restrict__ tw, const float *__restrict__ hann,
                        const NoiseParams *__restrict__ params,
                        const GrainNoise *__restrict__ specs, const int *__restrict__ count,
                        float *__restrict__ y) {
  NGS_KERNEL_BOUNDS(kNoiseThreads);
  const int i = blockIdx.x;
  if (count && i >= *count) return;  // past the live grains: not computed
  NGS_DYNAMIC_SHARED(float2, smem);
  const int m = 1 << log_m, l = 2 * m, F = m + 1;
  float2 *a = smem, *b = smem + m;
  NoiseParams p;
  bool first, last;
  if (kSpecs) {
    const GrainNoise q = specs[i];
    p = NoiseParams{q.seed, q.sequence, q.g, 0};
    first = q.first != 0;
    last = q.last != 0;
  } else {
    p = *params;
    first = p.g0 + i == 0;
    last = p.g0 + i == p.n_total - 1;
  }
  const uint32_t g = static_cast<uint32_t>(kSpecs ? p.g0 : p.g0 + i);
  const int shift = 32 - log_m;
  const float *s_row = S + static_cast<size_t>(i) * F;

  // 1. Noise block j (samples 4j..4j+3) -> complex points 2j, 2j+1, bit-reversed.
  for (int j = threadIdx.x; j < l / 4; j += blockDim.x) {
    const Philox4 r = philox4x32_10(static_cast<uint32_t>(j), g, p.sequence, kDomainGrainNoise,
                                    p.seed);
    a[__brev(2u * j) >> shift] = make_float2(philox_uniform_pm1(r.x[0]), philox_uniform_pm1(r.x[1]));
    a[__brev(2u * j + 1u) >> shift] =
        make_float2(philox_uniform_pm1(r.x[2]), philox_uniform_pm1(r.x[3]));
  }
  __syncthreads();
  block_fft(a, log_m, tw, false);

  // 2. Split into the real spectrum X (pairs k, M-k), multiply by S, and pack Y back into
  //    an M-point complex spectrum Z' (bit-reversed, in b) for the inverse.
  for (int k = threadIdx.x; k <= m / 2; k += blockDim.x) {
    const float2 zk = a[k], zmk = a[(m - k) & (m - 1)];
    const float2 w = k == 0 ? make_float2(1.0f, 0.0f) : tw[k];
    float2 xk, xmk;
    if (k == 0) {
      xk = make_float2(zk.x + zk.y, 0.0f);
      xmk = make_float2(zk.x - zk.y, 0.0f);  // X[M]
    } else {
      const float2 e = make_float2(0.5f * (zk.x + zmk.x), 0.5f * (zk.y - zmk.y));
      const float2 o = make_float2(0.5f * (zk.y + zmk.y), -0.5f * (zk.x - zmk.x));
      const float2 wo = cmul(w, o);
      xk = make_float2(e.x + wo.x, e.y + wo.y);
      xmk = make_float2(e.x - wo.x, -(e.y - wo.y));  // conj(E - W O)
    }
    const float sk = s_row[k], smk = s_row[m - k];
    const float2 yk = make_float2(xk.x * sk, xk.y * sk);
    const float2 ymk = make_float2(xmk.x * smk, xmk.y * smk);
    // E' = (Y[k] + conj Y[M-k]) / 2, O' = (Y[k] - conj Y[M-k]) conj(W) / 2, Z' = E' + i O'.
    const float2 e2 = make_float2(0.5f * (yk.x + ymk.x), 0.5f * (yk.y - ymk.y));
    const float2 o2 = cmul(make_float2(0.5f * (yk.x - ymk.x), 0.5f * (yk.y + ymk.y)), cconj(w));
    b[__brev(static_cast<unsigned>(k)) >> shift] = make_float2(e2.x - o2.y, e2.y + o2.x);
    if (k != 0 && k != m / 2)  // Z'[M-k] = conj(E') + i conj(O')
      b[__brev(static_cast<unsigned>(m - k)) >> shift] = make_float2(e2.x + o2.y, -e2.y + o2.x);
  }
  __syncthreads();
  block_fft(b, log_m, tw, true);

  // 3. Unpack, scale by 1/M, apply the OLA window of grain g.
  const float scale = 1.0f / static_cast<float>(m);
  float *out = y + static_cast<size_t>(i) * l;
  for (int t = threadIdx.x; t < m; t += blockDim.x) {
    const float2 v = b[t];
    const int t0 = 2 * t, t1 = 2 * t + 1;
    const float w0 = (first && t0 < m) || (last && t0 >= m) ? 1.0f : hann[t0];
    const float w1 = (first && t1 < m) || (last && t1 >= m) ? 1.0f : hann[t1];
    out[t0] = v.x * scale * w0;
    out[t1] = v.y * scale * w1;
  }
}

void noise_filter_tables(int l_grain, float *twiddles, float *hann) {
  const double pi = 3.14159265358979323846;
  for (int k = 0; k < l_grain / 2; ++k) {
    twiddles[2 * k] = static_cast<float>(std::cos(-2.0 * pi * k / l_grain));
    twiddles[2 * k + 1] = static_cast<float>(std::sin(-2.0 * pi * k / l_grain));
  }
  for (int t = 0; t < l_grain; ++t)
    hann[t] = static_cast<float>(0.5 - 0.5 * std::cos(2.0 * pi * t / l_grain));
}

size_t noise_filter_smem_bytes(int l_grain) {  // two buffers of l_grain / 2 complex
  return sizeof(float) * 2 * static_cast<size_t>(l_grain);
}

static int noise_filter_log_m(int l_grain) {
  int log_m = 0;
  while ((2 << log_m) < l_grain) ++log_m;
  if ((2 << log_m) != l_grain || log_m < 2 || log_m > 13)
    throw Error(kUnsupported,
                "CUDA noise filter: l_grain " + std::to_string(l_grain) +
                    " is not a power of two in 8 .. 16384");
  return log_m;
}

void noise_filter_prepare(int l_grain, size_t smem_optin) {
  noise_filter_log_m(l_grain);
  const size_t smem = noise_filter_smem_bytes(l_grain);
  if (smem > smem_optin)
    throw Error(kUnsupported, "CUDA noise filter: l_grain " + std::to_string(l_grain) +
                                  " needs " + std::to_string(smem / 1024) +
                                  " KiB of shared memory per block; this device allows " +
                                  std::to_string(smem_optin / 1024) + " KiB");
  if (smem > 48 * 1024) {
    NGS_CUDA_CHECK(cudaFuncSetAttribute(noise_filter_kernel<false>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem_optin)));
    NGS_CUDA_CHECK(cudaFuncSetAttribute(noise_filter_kernel<true>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem_optin)));
  }
}

void noise_filter_launch(const float *S, int n, int l_grain, const float *twiddles,
                         const float *hann, const NoiseParams *params, float *y,
                         cudaStream_t stream, const int *count) {
  if (n <= 0) return;
  const int log_m = noise_filter_log_m(l_grain);
  const size_t smem = noise_filter_smem_bytes(l_grain);
  auto *kernel = noise_filter_kernel<false>;
  NGS_LAUNCH(kernel, dim3(n), dim3(kNoiseThreads), smem, stream)(
      S, log_m, reinterpret_cast<const float2 *>(twiddles), hann, params, nullptr, count, y);
  NGS_CUDA_CHECK_LAUNCH();
}

void noise_filter_grains_launch(const float *S, int n, int l_grain, const float *twiddles,
                                const float *hann, const GrainNoise *specs, float *y,
                                cudaStream_t stream, const int *count) {
  if (n <= 0) return;
  const int log_m = noise_filter_log_m(l_grain);
  const size_t smem = noise_filter_smem_bytes(l_grain);
  auto *kernel = noise_filter_kernel<true>;
  NGS_LAUNCH(kernel, dim3(n), dim3(kNoiseThreads), smem, stream)(
      S, log_m, reinterpret_cast<const float2 *>(twiddles), hann, nullptr, specs, count, y);
  NGS_CUDA_CHECK_LAUNCH();
}

}  // namespace ngs::cuda
