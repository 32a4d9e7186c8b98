// Grain VAE encoder on the CPU (docs/MODEL_SPEC.md §4.1). Activations are time-major
// [L][C]; the flatten (channel-major in the model) is absorbed by permuting the columns of
// enc.lin.0 at prepare time. Each convolution runs one of three ways (EncoderOptions,
// docs/CPU_BACKEND.md "Encoder"): im2col rows of contiguous copies + one fp32 GEMM (the
// direct path), Winograd F(4,3) (encoder_conv.h: the 3-tap dilated convs and the strided
// ones), or either of them with bf16 products (EncoderPrecision: fast mode). Each residual unit's 1x1
// convolution and its shortcut are one GEMM over the stacked [h ; x] activations.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/cpu.h"
#include "cpu/dispatch.h"
#include "cpu/encoder_conv.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace ngs::cpu {

namespace {

// One convolution of the encoder, in the algorithm chosen at prepare time.
struct ConvOp {
  enum Kind { kDirect, kWino, kDirectBf16 } kind = kDirect;
  PackedConv direct;  // kDirect
  WinoConv wino;      // kWino (fp32 or bf16)
  PackedGemmBf16 dbf;  // kDirectBf16: [C_out][k * C_in], im2col column order
  int c_in = 0, c_out = 0, k = 0, stride = 1, dilation = 1, pad = 0;

  int out_length(int l_in) const { return (l_in + 2 * pad - dilation * (k - 1) - 1) / stride + 1; }
  size_t scratch_floats(int l_in) const {
    switch (kind) {
      case kWino: return wino_scratch_floats(wino, l_in);
      case kDirectBf16:
        return (static_cast<size_t>(l_in) * c_in + static_cast<size_t>(out_length(l_in)) * 2 * dbf.kp) / 2 + 32;
      default: return conv_scratch_floats(direct, l_in);
    }
  }
  // batch inputs at x + b xstride -> outputs at y + b ystride (floats); Winograd shares
  // its point GEMMs across them, the direct paths run one input at a time.
  void run(const float *x, int ldx, int l_in, float *y, int ldy, Act act, bool input_lrelu,
           float *scratch, int batch = 1, size_t xstride = 0, size_t ystride = 0) const {
    if (kind == kWino) {
      wino_conv1d(wino, x, ldx, l_in, y, ldy, act, input_lrelu, scratch, batch, xstride, ystride);
      return;
    }
    for (int b = 0; b < batch; ++b) {
      const float *xb = x + static_cast<size_t>(b) * xstride;
      float *yb = y + static_cast<size_t>(b) * ystride;
      if (kind == kDirectBf16) run_direct_bf16(xb, ldx, l_in, yb, ldy, act, input_lrelu, scratch);
      else conv1d(direct, xb, ldx, l_in, yb, ldy, act, input_lrelu, scratch);
    }
  }
  // The input once to bf16 (input LeakyReLU applied), then im2col rows of bf16 copies
  // (reflection in the gather).
  void run_direct_bf16(const float *x, int ldx, int l_in, float *y, int ldy, Act act,
                       bool input_lrelu, float *scratch) const {
    const int l_out = out_length(l_in), kp = 2 * dbf.kp;  // values per im2col row
    uint16_t *xb = reinterpret_cast<uint16_t *>(scratch);
    uint16_t *col = xb + static_cast<size_t>(l_in) * c_in + 32;
    float tmp[256];
    void (*copy_lrelu)(float *, const float *, int) = kernels().lrelu_copy;
    for (int t = 0; t < l_in; ++t) {
      const float *src = x + static_cast<size_t>(t) * ldx;
      uint16_t *dst = xb + static_cast<size_t>(t) * c_in;
      if (!input_lrelu) {
        bf16_convert(src, c_in, dst);
        continue;
      }
      for (int c0 = 0; c0 < c_in; c0 += 256) {
        const int nc = std::min(256, c_in - c0);
        if (copy_lrelu) copy_lrelu(tmp, src + c0, nc);
        else
          for (int i = 0; i < nc; ++i) tmp[i] = lrelu(src[c0 + i]);
        bf16_convert(tmp, nc, dst + c0);
      }
    }
    for (int t = 0; t < l_out; ++t) {
      uint16_t *row = col + static_cast<size_t>(t) * kp;
      for (int kk = 0; kk < k; ++kk) {
        int pos = t * stride + kk * dilation - pad;
        if (pos < 0) pos = -pos;
        if (pos >= l_in) pos = 2 * (l_in - 1) - pos;
        std::memcpy(row + static_cast<size_t>(kk) * c_in, xb + static_cast<size_t>(pos) * c_in,
                    sizeof(uint16_t) * c_in);
      }
      if (kp != k * c_in) row[k * c_in] = 0;
    }
    gemm_bf16(dbf, col, kp, l_out, y, ldy, act);
  }
};

// Where Winograd pays (measured on the drum-size model, Zen 4, 1 MiB L2, per encode of 41
// grains, one grain at a time, direct -> Winograd): stage 0 (512 steps: 128-135 tiles per
// conv) 104 -> 79 ms, stage 1 (128 steps: 32-36 tiles) 41 -> 34 ms, but stage 2 (32
// steps: 8-9 tiles, too few rows to amortise six weight matrices) 12 -> 14 ms. So an fp32
// conv runs as Winograd when its point GEMMs have at least 16 rows; the later stages run
// kGroup grains together, so stage 2 now has 32-36 and qualifies. In bf16 every
// supported conv does: the bf16 im2col path was not faster at any size measured (bundled
// model: 3.47 ms all-Winograd, 3.54 ms with the last stage direct).
constexpr int kWinoMinTiles = 16;

// batch: inputs whose tiles share the point GEMMs (stages after the first, kGroup grains).
bool use_winograd(const Conv1d &c, int l_in, int batch, EncoderConv algo, bool fast) {
  if (c.in <= 1 || !wino_supported(c)) return false;  // first conv: K of 9, any GEMM is short
  if (algo == EncoderConv::kWinogradAll) return true;
  return algo == EncoderConv::kWinograd &&
         (fast || wino_tiles(c, l_in) * batch >= kWinoMinTiles);
}

ConvOp make_conv(const Conv1d &c, int l_in, int batch, EncoderConv algo, bool fast) {
  ConvOp op;
  op.c_in = c.in;
  op.c_out = c.out;
  op.k = c.k;
  op.stride = c.stride;
  op.dilation = c.dilation;
  op.pad = c.pad;
  if (use_winograd(c, l_in, batch, algo, fast)) {
    op.kind = ConvOp::kWino;
    op.wino = wino_pack(c, fast);
  } else if (fast && c.in > 1) {
    op.kind = ConvOp::kDirectBf16;
    std::vector<float> w(static_cast<size_t>(c.out) * c.in * c.k);
    for (int o = 0; o < c.out; ++o)
      for (int kk = 0; kk < c.k; ++kk)
        for (int i = 0; i < c.in; ++i)
          w[(static_cast<size_t>(o) * c.k + kk) * c.in + i] =
              c.w[(static_cast<size_t>(o) * c.in + i) * c.k + kk];
    op.dbf = gemm_pack_bf16(w.data(), c.out, c.in * c.k, c.b);
  } else {
    op.kind = ConvOp::kDirect;
    op.direct = conv_pack(c);
  }
  return op;
}

EncoderConv resolve(EncoderConv algo) {
  if (algo != EncoderConv::kDefault) return algo;
  const char *env = std::getenv("NGS_ENCODER_CONV");
  if (env && std::strcmp(env, "direct") == 0) return EncoderConv::kDirect;
  if (env && std::strcmp(env, "winograd_all") == 0) return EncoderConv::kWinogradAll;
  return EncoderConv::kWinograd;
}

}  // namespace

struct WaveformEncoder::Impl {
  WaveformConfig cfg;
  bool fast = false;
  struct Res {
    ConvOp dil;
    PackedGemm mix;     // [C][2C]: [pw | sc] over the stacked [h ; x], bias = combined bias
    PackedGemmBf16 mix_bf;  // the same in bf16 (fast mode)
  };
  struct Stage {
    ConvOp down;
    Res res[3];
  };
  std::vector<Stage> stages;
  PackedGemm lin0, lin1, mu, logvar;
  std::vector<float> hann;
  // Stage 0 runs one grain at a time (its activations are the big ones); the later
  // stages run kGroup grains together, so that their convs' weights, read for every
  // grain, are read once per group and their Winograd point GEMMs get rows enough.
  static constexpr int kGroup = 4;
  int l0 = 0, lb = 0;     // stage 0's length, the longest later stage's
  size_t col_floats = 0;  // conv scratch
  // Per-part buffers, in this order: grain [l_grain]; stage 0: xa0 [l0][C], st0 [l0][2C];
  // its outputs in1 [kGroup][l0][C]; later stages: xab [kGroup][lb][C],
  // stb [kGroup][lb][2C]; a bf16 copy of a stacked buffer (fast); conv scratch.
  size_t stacked_floats() const {
    return std::max(static_cast<size_t>(l0), static_cast<size_t>(kGroup) * lb) * 2 * cfg.channels;
  }
  size_t per_floats() const {
    const size_t C = cfg.channels;
    return static_cast<size_t>(cfg.l_grain) + 3 * l0 * C + kGroup * l0 * C +
           3 * static_cast<size_t>(kGroup) * lb * C + (fast ? stacked_floats() / 2 + 16 : 0) +
           col_floats + 64;
  }
};

WaveformEncoder::WaveformEncoder(const WaveformWeights &w, const EncoderOptions &opt)
    : impl_(new Impl) {
  Impl &m = *impl_;
  m.cfg = w.cfg;
  m.fast = opt.precision == EncoderPrecision::kBf16 ||
           (opt.precision == EncoderPrecision::kFast && kernels().bf16_native);
  const EncoderConv algo = resolve(opt.conv);
  const int C = w.cfg.channels;
  int l = w.cfg.l_grain;
  // Reflection padding needs pad < length (PyTorch refuses such a model too); checked
  // here so that no shape can make the im2col read outside the activations.
  auto check_conv = [](const Conv1d &c, int len, const char *what, int i) {
    if (c.pad >= len || c.k < 1 || c.stride < 1 || c.dilation < 1 ||
        (len + 2 * c.pad - c.dilation * (c.k - 1) - 1) < 0)
      throw Error(kBadModel,
                  std::string("encoder stage ") + std::to_string(i) + " " + what +
                      ": reflection padding " + std::to_string(c.pad) +
                      " does not fit an input of length " + std::to_string(len));
  };
  int stage = 0;
  for (const EncoderStage &s : w.enc) {
    Impl::Stage st;
    check_conv(s.down, l, "strided conv", stage);
    const int batch = stage == 0 ? 1 : Impl::kGroup;
    st.down = make_conv(s.down, l, batch, algo, m.fast);
    m.col_floats = std::max(m.col_floats, st.down.scratch_floats(l));
    l = st.down.out_length(l);
    if (stage == 0) m.l0 = l;
    else m.lb = std::max(m.lb, l);
    for (int j = 0; j < 3; ++j) {
      const ResUnit &r = s.res[j];
      check_conv(r.dil, l, "dilated conv", stage);
      st.res[j].dil = make_conv(r.dil, l, batch, algo, m.fast);
      m.col_floats = std::max(m.col_floats, st.res[j].dil.scratch_floats(l));
      std::vector<float> cat(static_cast<size_t>(C) * 2 * C);
      for (int o = 0; o < C; ++o)
        for (int i = 0; i < C; ++i) {
          cat[static_cast<size_t>(o) * 2 * C + i] = r.pw.w[static_cast<size_t>(o) * C + i];
          cat[static_cast<size_t>(o) * 2 * C + C + i] = r.sc.w[static_cast<size_t>(o) * C + i];
        }
      if (m.fast) st.res[j].mix_bf = gemm_pack_bf16(cat.data(), C, 2 * C, r.bias);
      else st.res[j].mix = gemm_pack(cat.data(), C, 2 * C, r.bias);
    }
    m.stages.push_back(std::move(st));
    ++stage;
  }
  // Column (t * C + c) of the time-major flatten reads model column (c * L + t).
  const int L = l;
  std::vector<int> map(static_cast<size_t>(C) * L);
  for (int t = 0; t < L; ++t)
    for (int c = 0; c < C; ++c) map[static_cast<size_t>(t) * C + c] = c * L + t;
  m.lin0 = gemm_pack(w.enc_lin[0].w, w.enc_lin[0].out, w.enc_lin[0].in, w.enc_lin[0].b, 0,
                     map.data());
  m.lin1 = gemm_pack(w.enc_lin[1]);
  m.mu = gemm_pack(w.mu);
  m.logvar = gemm_pack(w.logvar);
  m.hann.resize(w.cfg.l_grain);
  noise_filter_window(1, 3, w.cfg.l_grain, m.hann.data());  // plain Hann
}

WaveformEncoder::~WaveformEncoder() = default;

bool WaveformEncoder::bf16() const { return impl_->fast; }

size_t WaveformEncoder::scratch_floats(int n) const { return scratch_floats(n, 1); }

size_t WaveformEncoder::scratch_floats(int n, int n_threads) const {
  const Impl &m = *impl_;
  const size_t per = m.per_floats();
  const size_t batch = static_cast<size_t>(n) *
                       (m.cfg.flatten_size() + m.cfg.h_dim + m.cfg.z_dim);
  return per * static_cast<size_t>(std::max(n_threads, 1)) + batch + 64;
}

namespace {
struct EncodeJob {
  const WaveformEncoder *enc;
  const float *audio;
  int n;
  float *flat;
  float *work;  // per part: per_floats
  size_t per_floats;
};
}  // namespace

// Grains [g0, g1): conv stages into their rows of flat, kGroup at a time; work: one
// part's buffers.
void WaveformEncoder::grains(const float *audio, int n, int g0, int g1, float *flat,
                             float *work) const {
  const WaveformConfig &cfg = impl_->cfg;
  for (int b = g0; b < g1; b += Impl::kGroup) {
    const int G = std::min(Impl::kGroup, g1 - b);
    const float *src[Impl::kGroup];
    unsigned char first[Impl::kGroup], last[Impl::kGroup];
    for (int i = 0; i < G; ++i) {
      src[i] = audio + static_cast<size_t>(b + i) * cfg.hop;
      first[i] = b + i == 0;
      last[i] = b + i == n - 1;
    }
    group(src, first, last, G, flat + static_cast<size_t>(b) * cfg.flatten_size(), work);
  }
}

// Up to kGroup grains of l_grain samples at src[i] (edge windows: first keeps the first
// half, last the second half unwindowed) -> their flattened conv features, rows of flat.
void WaveformEncoder::group(const float *const *src, const unsigned char *first,
                            const unsigned char *last, int G, float *flat, float *work) const {
  const Impl &m = *impl_;
  const WaveformConfig &cfg = m.cfg;
  const int C = cfg.channels, l = cfg.l_grain, half = l / 2;
  const size_t l0c = static_cast<size_t>(m.l0) * C, lbc = static_cast<size_t>(Impl::kGroup) * m.lb * C;
  float *grain = work;
  float *xa0 = grain + l;
  float *st0 = xa0 + l0c;
  float *in1 = st0 + 2 * l0c;
  float *xab = in1 + Impl::kGroup * l0c;
  float *stk = xab + lbc;
  uint16_t *sth = reinterpret_cast<uint16_t *>(stk + 2 * lbc);  // bf16 copy (fast)
  float *col = stk + 2 * lbc + (m.fast ? m.stacked_floats() / 2 + 16 : 0);
  // One stage over B inputs at x + b xstride ([L][cin] each): outputs xa [B][lo][C], with
  // st [B][lo][2C] the stacked buffer; returns lo. Each residual unit: st[:, 0:C] =
  // LReLU(dil(LReLU(x))), then xa = [pw | sc] st + bias over all B lo rows at once, copied
  // back into st[:, C:2C] for the next unit.
  auto run_stage = [&](const Impl::Stage &s, const float *x, int cin, int L, int B,
                       size_t xstride, float *xa, float *st) {
    const int lo = s.down.out_length(L);
    const size_t rows = static_cast<size_t>(B) * lo;
    s.down.run(x, cin, L, st + C, 2 * C, Act::kLrelu, false, col, B, xstride,
               static_cast<size_t>(lo) * 2 * C);
    for (int j = 0; j < 3; ++j) {
      const Impl::Res &r = s.res[j];
      if (j > 0)
        for (size_t t = 0; t < rows; ++t)
          std::memcpy(st + t * 2 * C + C, xa + t * C, sizeof(float) * C);
      r.dil.run(st + C, 2 * C, lo, st, 2 * C, Act::kLrelu, true, col, B,
                static_cast<size_t>(lo) * 2 * C, static_cast<size_t>(lo) * 2 * C);
      if (m.fast) {
        bf16_convert(st, static_cast<int>(rows * 2 * C), sth);
        gemm_bf16(r.mix_bf, sth, 2 * C, static_cast<int>(rows), xa, C, Act::kNone);
      } else {
        gemm(r.mix, st, 2 * C, static_cast<int>(rows), xa, C, Act::kNone);
      }
    }
    return lo;
  };
  for (int i = 0; i < G; ++i) {
    for (int t = 0; t < l; ++t) {
      const bool keep = (first[i] && t < half) || (last[i] && t >= half);
      grain[t] = keep ? src[i][t] : src[i][t] * m.hann[t];
    }
    run_stage(m.stages[0], grain, 1, l, 1, 0, xa0, st0);
    std::memcpy(in1 + i * l0c, xa0, sizeof(float) * l0c);
  }
  const float *x = in1;
  int L = m.l0;
  for (size_t k = 1; k < m.stages.size(); ++k) {
    const int lo = run_stage(m.stages[k], x, C, L, G, static_cast<size_t>(L) * C, xab, stk);
    x = xab;
    L = lo;
  }
  for (int i = 0; i < G; ++i)
    std::memcpy(flat + static_cast<size_t>(i) * cfg.flatten_size(),
                x + static_cast<size_t>(i) * L * C, sizeof(float) * cfg.flatten_size());
}

void WaveformEncoder::encode_grains(const float *const *src, const unsigned char *first,
                                    const unsigned char *last, int B, float *mu,
                                    float *scratch) const {
  const Impl &m = *impl_;
  const WaveformConfig &cfg = m.cfg;
  if (B <= 0) return;
  const size_t per = m.per_floats();
  float *flat = scratch + per;
  float *h1 = flat + static_cast<size_t>(B) * cfg.flatten_size();
  float *h2 = h1 + static_cast<size_t>(B) * cfg.h_dim;
  for (int b = 0; b < B; b += Impl::kGroup)
    group(src + b, first + b, last + b, std::min(Impl::kGroup, B - b),
          flat + static_cast<size_t>(b) * cfg.flatten_size(), scratch);
  gemm(m.lin0, flat, cfg.flatten_size(), B, h1, cfg.h_dim, Act::kLrelu);
  gemm(m.lin1, h1, cfg.h_dim, B, h2, cfg.z_dim, Act::kLrelu);
  gemm(m.mu, h2, cfg.z_dim, B, mu, cfg.z_dim, Act::kNone);
}

void WaveformEncoder::encode(const float *audio, int n, float *mu, float *logvar,
                             float *scratch) const {
  encode(audio, n, mu, logvar, scratch, nullptr);
}

void WaveformEncoder::encode(const float *audio, int n, float *mu, float *logvar, float *scratch,
                             ThreadPool *pool) const {
  const Impl &m = *impl_;
  const WaveformConfig &cfg = m.cfg;
  const size_t per = m.per_floats();
  const int parts = pool ? pool->parts(n) : 1;
  float *flat = scratch + per * static_cast<size_t>(parts);
  float *h1 = flat + static_cast<size_t>(n) * cfg.flatten_size();
  float *h2 = h1 + static_cast<size_t>(n) * cfg.h_dim;
  if (parts > 1) {
    EncodeJob job{this, audio, n, flat, scratch, per};
    pool->run(
        [](void *c, int part, int b, int e) {
          auto *j = static_cast<EncodeJob *>(c);
          j->enc->grains(j->audio, j->n, b, e, j->flat, j->work + j->per_floats * part);
        },
        &job, n);
  } else {
    grains(audio, n, 0, n, flat, scratch);
  }
  gemm(m.lin0, flat, cfg.flatten_size(), n, h1, cfg.h_dim, Act::kLrelu);
  gemm(m.lin1, h1, cfg.h_dim, n, h2, cfg.z_dim, Act::kLrelu);
  if (mu) gemm(m.mu, h2, cfg.z_dim, n, mu, cfg.z_dim, Act::kNone);
  if (logvar) {
    gemm(m.logvar, h2, cfg.z_dim, n, logvar, cfg.z_dim, Act::kNone);
    hardtanh_inplace(logvar, static_cast<size_t>(n) * cfg.z_dim, -5.0f, 5.0f);
  }
}

}  // namespace ngs::cpu
