// The grain encoder on the device (encoder.cuh). Activations are channel-major
// [grain][C][L], so the last stage's output is the model's flatten. Every conv is an
// implicit GEMM: a block computes 32 output channels x 64 output times of one grain,
// stepping over the input channels with the reflection-padded (and LReLU'd) input window
// and the weight tile in shared memory; each thread accumulates 8 channels at one time.
// The linears: a warp per output row over a tile of 8 grains, the grains' inputs staged
// in shared memory, one shuffle reduction per grain.
#include "encoder.cuh"

#include <algorithm>
#include <string>

namespace ngs::cuda {

namespace {
constexpr int kFrameThreads = 256;
constexpr int kConvThreads = 256, kConvTL = 64, kConvTC = 32;
constexpr int kConvPerThread = kConvTC / (kConvThreads / kConvTL);  // 8 channels per thread
constexpr size_t kConvSmemLimit = 48 * 1024;  // no opt-in needed
constexpr int kLinThreads = 256, kLinT = 8, kLinKC = 256;

struct ConvRun {
  EncConv c;
  const float *in0, *in1;  // in0: channels 0 .. c0-1, in1: the rest (or null)
  int c0;
  float *out;
  int n_tl;  // time tiles per grain
  // Device, may be null: only grains g < *live - live_base are computed (a bucketed graph).
  const int *live;
  int live_base;
};

struct LinRun {
  EncLinear l;
  const float *x;
  int ldx, n;
  float *y, *y2;
  int ldy, ldy2;
  const int *live;  // as ConvRun
  int live_base;
};

// The grains of a launch of `n` to compute: n, or fewer when a device count is given.
__device__ __forceinline__ int enc_live(int n, const int *live, int base) {
  if (!live) return n;
  const int l = *live - base;
  return l < n ? l : n;
}

int conv_span(const EncConv &c) { return (kConvTL - 1) * c.stride + (c.k - 1) * c.dilation + 1; }
size_t conv_smem_bytes(const EncConv &c, int ci_tile) {
  return sizeof(float) * (static_cast<size_t>(ci_tile) * conv_span(c) +
                          static_cast<size_t>(kConvTC) * ci_tile * c.k);
}
}  // namespace

// Reflection of position p into 0 .. l-1 (pad < l); positions that no valid output reads
// (beyond the last tile's outputs) are clamped so that every load stays in bounds.
__device__ __forceinline__ int enc_reflect(int p, int l) {
  if (p < 0) p = -p;
  if (p >= l) p = 2 * (l - 1) - p;
  return p < 0 ? 0 : (p >= l ? l - 1 : p);
}

static __global__ void __launch_bounds__(kFrameThreads)
    encoder_frames_kernel(const float *__restrict__ audio, int g0, int n_total, int l, int hop,
                          const float *__restrict__ hann, float *__restrict__ frames) {
  NGS_KERNEL_BOUNDS(kFrameThreads);
  const int g = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= l) return;
  const int ga = g0 + g;
  const bool keep = (ga == 0 && i < l / 2) || (ga == n_total - 1 && i >= l / 2);
  const float v = audio[static_cast<size_t>(ga) * hop + i];
  frames[static_cast<size_t>(g) * l + i] = keep ? v : v * hann[i];
}

// B independent grains (Session::encode_grains): grain g's window of l samples at
// windows + g l; edges[g] bit 0 keeps the first half unwindowed (a series' first grain),
// bit 1 the second half (its last).
static __global__ void __launch_bounds__(kFrameThreads)
    encoder_windows_kernel(const float *__restrict__ windows, const unsigned char *__restrict__ edges,
                           int l, const float *__restrict__ hann, const int *__restrict__ live,
                           int live_base, float *__restrict__ frames) {
  NGS_KERNEL_BOUNDS(kFrameThreads);
  const int g = blockIdx.y;
  if (g >= enc_live(static_cast<int>(gridDim.y), live, live_base)) return;  // past the count
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= l) return;
  const unsigned e = edges[g];
  const bool keep = ((e & 1u) && i < l / 2) || ((e & 2u) && i >= l / 2);
  const size_t at = static_cast<size_t>(g) * l + i;
  const float v = windows[at];
  frames[at] = keep ? v : v * hann[i];
}

static __global__ void __launch_bounds__(kConvThreads) encoder_conv_kernel(ConvRun r) {
  NGS_KERNEL_BOUNDS(kConvThreads);
  NGS_DYNAMIC_SHARED(float, smem);
  const EncConv &c = r.c;
  const int g = blockIdx.x / r.n_tl, tl = blockIdx.x - g * r.n_tl;
  if (r.live && g >= *r.live - r.live_base) return;  // the whole block: past the count
  const int t0 = tl * kConvTL, co0 = blockIdx.y * kConvTC;
  const int tx = threadIdx.x % kConvTL, ty = threadIdx.x / kConvTL;
  const int span = (kConvTL - 1) * c.stride + (c.k - 1) * c.dilation + 1;
  const int ci_tile = c.ci_tile, wk = ci_tile * c.k;
  float *xs = smem;                 // [ci_tile][span]: input window of the tile
  float *ws = smem + ci_tile * span;  // [kConvTC][ci_tile][k]: weights of the tile
  const int c1 = c.c_in - r.c0;
  const float *in0 = r.in0 + static_cast<size_t>(g) * r.c0 * c.l_in;
  const float *in1 = r.in1 ? r.in1 + static_cast<size_t>(g) * c1 * c.l_in : nullptr;
  const int base = t0 * c.stride - c.pad;
  float acc[kConvPerThread];
#pragma unroll
  for (int j = 0; j < kConvPerThread; ++j) acc[j] = 0.0f;
  for (int ci0 = 0; ci0 < c.c_in; ci0 += ci_tile) {
    for (int i = threadIdx.x; i < ci_tile * span; i += blockDim.x) {
      const int ci = i / span, j = i - ci * span, cg = ci0 + ci;
      float v = 0.0f;
      if (cg < c.c_in) {
        const int p = enc_reflect(base + j, c.l_in);
        v = cg < r.c0 ? in0[static_cast<size_t>(cg) * c.l_in + p]
                      : in1[static_cast<size_t>(cg - r.c0) * c.l_in + p];
        if (c.in_lrelu) v = v > 0.0f ? v : 0.2f * v;
      }
      xs[i] = v;
    }
    for (int i = threadIdx.x; i < kConvTC * wk; i += blockDim.x) {
      const int co = i / wk, rem = i - co * wk, ci = rem / c.k, kk = rem - ci * c.k;
      const int og = co0 + co, cg = ci0 + ci;
      ws[i] = og < c.c_out && cg < c.c_in
                  ? c.w[(static_cast<size_t>(og) * c.c_in + cg) * c.k + kk]
                  : 0.0f;
    }
    __syncthreads();
    const int nci = c.c_in - ci0 < ci_tile ? c.c_in - ci0 : ci_tile;
    const float *wt = ws + ty * kConvPerThread * wk;
    for (int ci = 0; ci < nci; ++ci)
      for (int kk = 0; kk < c.k; ++kk) {
        const float xv = xs[ci * span + tx * c.stride + kk * c.dilation];
        const float *w = wt + ci * c.k + kk;
#pragma unroll
        for (int j = 0; j < kConvPerThread; ++j) acc[j] = fmaf(w[j * wk], xv, acc[j]);
      }
    __syncthreads();
  }
  const int t = t0 + tx;
  if (t >= c.l_out) return;
  float *out = r.out + static_cast<size_t>(g) * c.c_out * c.l_out;
#pragma unroll
  for (int j = 0; j < kConvPerThread; ++j) {
    const int o = co0 + ty * kConvPerThread + j;
    if (o >= c.c_out) continue;
    float v = acc[j] + c.b[o];
    if (c.out_lrelu) v = v > 0.0f ? v : 0.2f * v;
    out[static_cast<size_t>(o) * c.l_out + t] = v;
  }
}

static __global__ void __launch_bounds__(kLinThreads) encoder_linear_kernel(LinRun r) {
  NGS_KERNEL_BOUNDS(kLinThreads);
  NGS_STATIC_SHARED(float, xs, kLinT * kLinKC);  // [kLinT][kLinKC]: a slice of the inputs
  const EncLinear &L = r.l;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int o = blockIdx.x * (kLinThreads / 32) + warp;
  const int g0 = blockIdx.y * kLinT;
  const int n = enc_live(r.n, r.live, r.live_base);
  if (g0 >= n) return;  // the whole block: past the count
  float acc[kLinT];
#pragma unroll
  for (int t = 0; t < kLinT; ++t) acc[t] = 0.0f;
  for (int k0 = 0; k0 < L.in; k0 += kLinKC) {
    const int kc = L.in - k0 < kLinKC ? L.in - k0 : kLinKC;
    for (int i = threadIdx.x; i < kLinT * kLinKC; i += blockDim.x) {
      const int t = i / kLinKC, k = i - t * kLinKC;
      xs[i] = g0 + t < n && k < kc ? r.x[static_cast<size_t>(g0 + t) * r.ldx + k0 + k] : 0.0f;
    }
    __syncthreads();
    if (o < L.out) {
      const float *w = L.w + static_cast<size_t>(o) * L.in + k0;
      for (int k = lane; k < kc; k += 32) {
        const float wv = w[k];
#pragma unroll
        for (int t = 0; t < kLinT; ++t) acc[t] = fmaf(wv, xs[t * kLinKC + k], acc[t]);
      }
    }
    __syncthreads();
  }
  if (o >= L.out) return;  // the whole warp
#pragma unroll
  for (int t = 0; t < kLinT; ++t) acc[t] = warp_sum(acc[t]);
  if (lane >= kLinT || g0 + lane >= n) return;
  float v = 0.0f;
#pragma unroll
  for (int t = 0; t < kLinT; ++t)
    if (t == lane) v = acc[t];
  v += L.b[o];
  const size_t g = static_cast<size_t>(g0 + lane);
  if (L.split > 0 && o >= L.split) {
    if (r.y2) r.y2[g * r.ldy2 + (o - L.split)] = fminf(fmaxf(v, -5.0f), 5.0f);
  } else {
    if (L.lrelu) v = v > 0.0f ? v : 0.2f * v;
    r.y[g * r.ldy + o] = v;
  }
}

namespace {

void conv_prepare(EncConv &c, const char *what, int stage) {
  auto fail = [&](const std::string &why) {
    throw Error(kBadModel, std::string("CUDA encoder: stage ") + std::to_string(stage) + " " +
                               what + ": " + why);
  };
  if (!c.w || !c.b) fail("missing weights");
  if (c.k < 1 || c.stride < 1 || c.dilation < 1 || c.pad < 0 || c.c_in < 1 || c.c_out < 1)
    fail("bad shape");
  if (c.pad >= c.l_in)
    fail("reflection padding " + std::to_string(c.pad) + " does not fit an input of length " +
         std::to_string(c.l_in));
  const int num = c.l_in + 2 * c.pad - c.dilation * (c.k - 1) - 1;
  if (num < 0) fail("the kernel is longer than the padded input");
  c.l_out = num / c.stride + 1;
  c.ci_tile = 0;
  for (int ci = 64; ci >= 1; ci /= 2) {
    if (ci > c.c_in && ci > 1) continue;
    if (conv_smem_bytes(c, ci) <= kConvSmemLimit) {
      c.ci_tile = ci;
      break;
    }
  }
  if (!c.ci_tile)
    throw Error(kUnsupported, std::string("CUDA encoder: stage ") + std::to_string(stage) + " " +
                                  what + " (kernel " + std::to_string(c.k) + ", stride " +
                                  std::to_string(c.stride) + ", dilation " +
                                  std::to_string(c.dilation) + ") needs more than " +
                                  std::to_string(kConvSmemLimit / 1024) +
                                  " KiB of shared memory per block");
}

void launch_conv(const EncConv &c, const float *in0, int c0, const float *in1, float *out,
                 int count, const int *live, int live_base, cudaStream_t stream) {
  ConvRun r{c, in0, in1, c0, out, ceil_div(c.l_out, kConvTL), live, live_base};
  const dim3 grid(static_cast<unsigned>(count) * r.n_tl, ceil_div(c.c_out, kConvTC));
  NGS_LAUNCH(encoder_conv_kernel, grid, dim3(kConvThreads), conv_smem_bytes(c, c.ci_tile), stream)(r);
  NGS_CUDA_CHECK_LAUNCH();
}

void launch_linear(const EncLinear &l, const float *x, int ldx, int n, float *y, int ldy,
                   float *y2, int ldy2, const int *live, int live_base, cudaStream_t stream) {
  LinRun r{l, x, ldx, n, y, y2, ldy, ldy2, live, live_base};
  const dim3 grid(ceil_div(l.out, kLinThreads / 32), ceil_div(n, kLinT));
  NGS_LAUNCH(encoder_linear_kernel, grid, dim3(kLinThreads), 0, stream)(r);
  NGS_CUDA_CHECK_LAUNCH();
}

}  // namespace

void encoder_prepare(EncoderDevice &e) {
  if (e.n_stages < 1 || e.n_stages > kEncMaxStages)
    throw Error(kUnsupported, "CUDA encoder: " + std::to_string(e.n_stages) +
                                  " conv stages (1 .. " + std::to_string(kEncMaxStages) +
                                  " supported)");
  if (!e.hann || e.l_grain < 8 || e.hop < 1 || e.channels < 1)
    throw Error(kBadModel, "CUDA encoder: bad configuration");
  int l = e.l_grain, c_in = 1;
  e.act_floats = 0;
  for (int s = 0; s < e.n_stages; ++s) {
    EncoderDevice::Stage &st = e.stages[s];
    st.down.l_in = l;
    if (st.down.c_in != c_in || st.down.c_out != e.channels)
      throw Error(kBadModel, "CUDA encoder: stage " + std::to_string(s) +
                                 " strided conv has the wrong channel counts");
    st.down.in_lrelu = false;
    st.down.out_lrelu = true;
    conv_prepare(st.down, "strided conv", s);
    l = st.down.l_out;
    c_in = e.channels;
    e.act_floats = std::max(e.act_floats, e.channels * l);
    for (int j = 0; j < 3; ++j) {
      EncConv &d = st.dil[j], &m = st.mix[j];
      d.l_in = m.l_in = l;
      if (d.c_in != e.channels || d.c_out != e.channels || m.c_in != 2 * e.channels ||
          m.c_out != e.channels || m.k != 1 || m.stride != 1 || m.pad != 0 || d.stride != 1)
        throw Error(kBadModel, "CUDA encoder: stage " + std::to_string(s) +
                                   " residual unit " + std::to_string(j) + " has a wrong shape");
      d.in_lrelu = d.out_lrelu = true;
      m.in_lrelu = m.out_lrelu = false;
      conv_prepare(d, "dilated conv", s);
      conv_prepare(m, "residual 1x1 convs", s);
      if (d.l_out != l || m.l_out != l)
        throw Error(kBadModel, "CUDA encoder: stage " + std::to_string(s) +
                                   " residual unit changes the length");
    }
  }
  if (e.channels * l != e.flatten)
    throw Error(kBadModel, "CUDA encoder: the convs give " + std::to_string(e.channels * l) +
                               " features, flatten_size is " + std::to_string(e.flatten));
  auto check_lin = [](const EncLinear &L, int in, int out, const char *what) {
    if (!L.w || !L.b || L.in != in || L.out != out)
      throw Error(kBadModel, std::string("CUDA encoder: ") + what +
                                 " has missing weights or a wrong shape");
  };
  check_lin(e.lin0, e.flatten, e.h_dim, "encoder linear 0");
  check_lin(e.lin1, e.h_dim, e.z_dim, "encoder linear 1");
  check_lin(e.head, e.z_dim, 2 * e.z_dim, "mu / logvar");
}

size_t encoder_work_floats(const EncoderDevice &e, int chunk) {
  const size_t g = static_cast<size_t>(chunk > 0 ? chunk : 1);
  return g * (static_cast<size_t>(e.l_grain) + 3 * static_cast<size_t>(e.act_floats) +
              e.h_dim + e.z_dim);
}

namespace {
// The convs, the linears and the heads of `count` framed grains (at the start of work).
void encoder_body(const EncoderDevice &e, int count, float *mu, float *logvar, float *work,
                  const int *live, int live_base, cudaStream_t stream) {
  const size_t g = static_cast<size_t>(count);
  float *frames = work;
  float *bufs[3] = {frames + g * e.l_grain, nullptr, nullptr};
  bufs[1] = bufs[0] + g * e.act_floats;
  bufs[2] = bufs[1] + g * e.act_floats;
  float *h1 = bufs[2] + g * e.act_floats;
  float *h2 = h1 + g * e.h_dim;
  const float *x = frames;
  int xi = -1;  // index of x in bufs (-1: the frames)
  for (int s = 0; s < e.n_stages; ++s) {
    const EncoderDevice::Stage &st = e.stages[s];
    const int di = (xi + 1) % 3;
    launch_conv(st.down, x, st.down.c_in, nullptr, bufs[di], count, live, live_base, stream);
    xi = di;
    for (int j = 0; j < 3; ++j) {
      const int hi = (xi + 1) % 3, oi = (xi + 2) % 3;
      launch_conv(st.dil[j], bufs[xi], e.channels, nullptr, bufs[hi], count, live, live_base, stream);
      // [pw | sc] over the stacked [h ; x] + the combined bias: the residual add fused.
      launch_conv(st.mix[j], bufs[hi], e.channels, bufs[xi], bufs[oi], count, live, live_base, stream);
      xi = oi;
    }
    x = bufs[xi];
  }
  launch_linear(e.lin0, x, e.flatten, count, h1, e.h_dim, nullptr, 0, live, live_base, stream);
  launch_linear(e.lin1, h1, e.h_dim, count, h2, e.z_dim, nullptr, 0, live, live_base, stream);
  launch_linear(e.head, h2, e.z_dim, count, mu, e.z_dim, logvar, e.z_dim, live, live_base, stream);
}
}  // namespace

void encoder_launch(const EncoderDevice &e, const float *audio, int g0, int count, int n_total,
                    float *mu, float *logvar, float *work, cudaStream_t stream) {
  if (count <= 0) return;
  {
    const dim3 grid(ceil_div(e.l_grain, kFrameThreads), count);
    NGS_LAUNCH(encoder_frames_kernel, grid, dim3(kFrameThreads), 0, stream)(
        audio, g0, n_total, e.l_grain, e.hop, e.hann, work);
    NGS_CUDA_CHECK_LAUNCH();
  }
  const size_t row = static_cast<size_t>(g0) * e.z_dim;
  encoder_body(e, count, mu + row, logvar ? logvar + row : nullptr, work, nullptr, 0, stream);
}

void encoder_grains_launch(const EncoderDevice &e, const float *windows,
                           const unsigned char *edges, int count, float *mu, float *work,
                           cudaStream_t stream, const int *live, int live_base) {
  if (count <= 0) return;
  {
    const dim3 grid(ceil_div(e.l_grain, kFrameThreads), count);
    NGS_LAUNCH(encoder_windows_kernel, grid, dim3(kFrameThreads), 0, stream)(
        windows, edges, e.l_grain, e.hann, live, live_base, work);
    NGS_CUDA_CHECK_LAUNCH();
  }
  encoder_body(e, count, mu, nullptr, work, live, live_base, stream);
}

// ---- weights ------------------------------------------------------------------------------

const float *EncoderWeights::upload(const float *host, size_t count) {
  void *p = nullptr;
  NGS_CUDA_CHECK(cudaMalloc(&p, sizeof(float) * (count ? count : 1)));
  bufs_.push_back(p);
  NGS_CUDA_CHECK(cudaMemcpy(p, host, sizeof(float) * count, cudaMemcpyHostToDevice));
  return static_cast<const float *>(p);
}

void EncoderWeights::release() {
  for (void *p : bufs_) cudaFree(p);
  bufs_.clear();
}

EncoderWeights::~EncoderWeights() { release(); }

EncoderWeights::EncoderWeights(const WaveformWeights &w, const float *hann) {
  try {
    const WaveformConfig &c = w.cfg;
    EncoderDevice &e = dev_;
    e.l_grain = c.l_grain;
    e.hop = c.hop;
    e.channels = c.channels;
    e.n_stages = static_cast<int>(w.enc.size());
    e.flatten = c.flatten_size();
    e.h_dim = c.h_dim;
    e.z_dim = c.z_dim;
    e.hann = hann;
    if (e.n_stages < 1 || e.n_stages > kEncMaxStages)
      throw Error(kUnsupported, "CUDA encoder: " + std::to_string(e.n_stages) +
                                    " conv stages (1 .. " + std::to_string(kEncMaxStages) +
                                    " supported)");
    auto conv = [&](const Conv1d &src, EncConv &d) {
      if (!src.w || !src.b || src.in < 1 || src.out < 1 || src.k < 1)
        throw Error(kBadModel, "CUDA encoder: a conv has missing weights or a wrong shape");
      d.w = upload(src.w, static_cast<size_t>(src.out) * src.in * src.k);
      d.b = upload(src.b, src.out);
      d.c_in = src.in;
      d.c_out = src.out;
      d.k = src.k;
      d.stride = src.stride;
      d.dilation = src.dilation;
      d.pad = src.pad;
    };
    const int C = c.channels;
    for (int s = 0; s < e.n_stages; ++s) {
      const EncoderStage &src = w.enc[s];
      conv(src.down, e.stages[s].down);
      for (int j = 0; j < 3; ++j) {
        const ResUnit &r = src.res[j];
        conv(r.dil, e.stages[s].dil[j]);
        if (!r.pw.w || !r.sc.w || !r.bias || r.pw.in != C || r.pw.out != C || r.sc.in != C ||
            r.sc.out != C)
          throw Error(kBadModel, "CUDA encoder: a residual unit has missing weights or a "
                                 "wrong shape");
        std::vector<float> cat(static_cast<size_t>(C) * 2 * C);
        for (int o = 0; o < C; ++o)
          for (int i = 0; i < C; ++i) {
            cat[static_cast<size_t>(o) * 2 * C + i] = r.pw.w[static_cast<size_t>(o) * C + i];
            cat[static_cast<size_t>(o) * 2 * C + C + i] = r.sc.w[static_cast<size_t>(o) * C + i];
          }
        EncConv &m = e.stages[s].mix[j];
        m.w = upload(cat.data(), cat.size());
        m.b = upload(r.bias, C);
        m.c_in = 2 * C;
        m.c_out = C;
      }
    }
    auto lin = [&](const Linear &src, EncLinear &d, bool lrelu) {
      if (!src.w || !src.b || src.in < 1 || src.out < 1)
        throw Error(kBadModel, "CUDA encoder: a linear has missing weights or a wrong shape");
      d.w = upload(src.w, static_cast<size_t>(src.out) * src.in);
      d.b = upload(src.b, src.out);
      d.in = src.in;
      d.out = src.out;
      d.lrelu = lrelu;
    };
    lin(w.enc_lin[0], e.lin0, true);
    lin(w.enc_lin[1], e.lin1, true);
    // mu and logvar as one product of 2 z_dim rows; the logvar rows get the Hardtanh.
    if (!w.mu.w || !w.mu.b || !w.logvar.w || !w.logvar.b || w.mu.in != c.z_dim ||
        w.mu.out != c.z_dim || w.logvar.in != c.z_dim || w.logvar.out != c.z_dim)
      throw Error(kBadModel, "CUDA encoder: mu / logvar have missing weights or a wrong shape");
    const size_t zz = static_cast<size_t>(c.z_dim) * c.z_dim;
    std::vector<float> hw(2 * zz), hb(2 * static_cast<size_t>(c.z_dim));
    std::copy(w.mu.w, w.mu.w + zz, hw.begin());
    std::copy(w.logvar.w, w.logvar.w + zz, hw.begin() + zz);
    std::copy(w.mu.b, w.mu.b + c.z_dim, hb.begin());
    std::copy(w.logvar.b, w.logvar.b + c.z_dim, hb.begin() + c.z_dim);
    e.head.w = upload(hw.data(), hw.size());
    e.head.b = upload(hb.data(), hb.size());
    e.head.in = c.z_dim;
    e.head.out = 2 * c.z_dim;
    e.head.split = c.z_dim;
    encoder_prepare(e);
    // The synchronous copies from pageable memory land at the legacy stream's next
    // synchronisation; the sessions' streams are not ordered after it.
    NGS_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  } catch (...) {
    release();
    throw;
  }
}

}  // namespace ngs::cuda
