// The encoder's convolution algorithms (encoder_conv.h): the bf16 GEMM driver,
// Winograd F(4,3) weight transform and the tiled convolution, and the portable builds of
// their kernels.
#include "cpu/encoder_conv.h"

#include <algorithm>
#include <cstring>

#include "cpu/dispatch.h"

namespace ngs::cpu {

#define NGS_SIMD_NS enc_portable
#define NGS_SIMD_TARGET
#define NGS_SIMD_W 4
#define NGS_BF16_MR kBf16MrPortable
#include "cpu/encoder_simd.inc"
#undef NGS_SIMD_NS
#undef NGS_SIMD_TARGET
#undef NGS_SIMD_W
#undef NGS_BF16_MR

void conv_bf16_kernel_portable(const Bf16Tile &t) { enc_portable::bf16_tile(t); }
void wino_input_portable(const float *const *d, int n, bool lrelu, float *u, size_t ldu) {
  enc_portable::wino_input(d, n, lrelu, u, ldu);
}
void wino_input_bf16_portable(const float *const *d, int n, bool lrelu, uint16_t *u,
                              size_t ldu) {
  enc_portable::wino_input_bf16(d, n, lrelu, u, ldu);
}
void wino_output_portable(const float *m, size_t ldm, int n, const float *bias, bool lrelu,
                          float *const *y) {
  enc_portable::wino_output(m, ldm, n, bias, lrelu, y);
}

// ---------------------------------------------------------------------------------------
// bf16

void gemm_bf16(const PackedGemmBf16 &w, const uint16_t *x, int ldx, int m, float *y, int ldy,
               Act act) {
  if (m <= 0 || w.n <= 0) return;
  const KernelTable &table = kernels();
  const Bf16Kernel kernel = table.conv_bf16_kernel ? table.conv_bf16_kernel
                                                   : conv_bf16_kernel_portable;
  const int mr = table.conv_bf16_kernel ? table.conv_bf16_mr : kBf16MrPortable;
  const int K = 2 * w.kp, N = w.n;
  constexpr int kKc = kGemmBf16Kc;  // two panels of 256 k: 32 KiB of bf16
  const size_t panel_stride = static_cast<size_t>(K) * 16;
  if (K == 0) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < N; ++j) {
        const float v = w.bias[j];
        y[static_cast<size_t>(i) * ldy + j] = act == Act::kLrelu ? lrelu(v) : v;
      }
    return;
  }
  for (int k0 = 0; k0 < K; k0 += kKc) {
    const int kc = std::min(kKc, K - k0);
    for (int j0 = 0; j0 < N; j0 += 32) {
      Bf16Tile t;
      t.b = w.panels.data() + static_cast<size_t>(j0 / 16) * panel_stride +
            static_cast<size_t>(k0) * 16;
      t.panel_stride = panel_stride;
      t.kc = kc;
      t.ncols = std::min(32, N - j0);
      t.bias = w.bias.data() + j0;
      t.from_bias = k0 == 0;
      t.lrelu = k0 + kc == K && act == Act::kLrelu;
      t.ldx = ldx;
      t.ldy = ldy;
      for (int i0 = 0; i0 < m; i0 += mr) {
        t.mr = std::min(mr, m - i0);
        t.x = x + static_cast<size_t>(i0) * ldx + k0;
        t.y = y + static_cast<size_t>(i0) * ldy + j0;
        kernel(t);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Winograd F(4,3)

namespace {

// G: the weight transform, 6 points x 3 taps.
constexpr double kG[kWinoPoints][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1},
};

// Tiles of a chunk held in the scratch at once: U and M of 48 tiles x 128 channels x 6
// points are 144 KiB each, so they stay in L2 with the point weights.
constexpr int kChunk = 48;

bool wino_dilated(const Conv1d &c) { return c.stride == 1 && c.k == 3; }
bool wino_strided(const Conv1d &c) {
  return !wino_dilated(c) && c.dilation == 1 && c.stride > 1 && c.k <= 3 * c.stride;
}

int out_length(const WinoConv &c, int l_in) {
  return (l_in + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
}

// Tiles: dilated, phase p of dilation d has n_p = ceil((l_out - p) / d) outputs, in
// ceil(n_p / 4) tiles; strided: ceil(l_out / 4) tiles.
struct TileIter {
  int d = 1, l_out = 0, p = 0, s0 = 0, g = 0, batch = 1;
  bool dilated = true;
  int phase_len() const { return p < l_out ? (l_out - p + d - 1) / d : 0; }
};

struct Tile {
  int in0, istep, out0, ostep, valid, g;
};

// The tiles of one input of the batch, then the next input's.
bool next_tile_one(TileIter &it, Tile &t) {
  if (!it.dilated) {
    if (it.s0 >= it.l_out) return false;
    t = Tile{it.s0, 0, it.s0, 1, std::min(kWinoTile, it.l_out - it.s0), it.g};
    it.s0 += kWinoTile;
    return true;
  }
  while (it.p < it.d && it.s0 >= it.phase_len()) {
    ++it.p;
    it.s0 = 0;
  }
  if (it.p >= it.d) return false;
  t = Tile{it.p + it.d * it.s0, it.d, it.p + it.d * it.s0, it.d,
           std::min(kWinoTile, it.phase_len() - it.s0), it.g};
  it.s0 += kWinoTile;
  return true;
}

bool next_tile(TileIter &it, Tile &t) {
  while (it.g < it.batch) {
    if (next_tile_one(it, t)) return true;
    ++it.g;
    it.p = 0;
    it.s0 = 0;
  }
  return false;
}

size_t ldu_of(const WinoConv &c) { return static_cast<size_t>((c.kdim + 1) & ~1); }

}  // namespace

bool wino_supported(const Conv1d &c) {
  return c.k >= 1 && c.stride >= 1 && c.dilation >= 1 && (wino_dilated(c) || wino_strided(c));
}

int wino_tiles(const Conv1d &c, int l_in) {
  const int l_out = (l_in + 2 * c.pad - c.dilation * (c.k - 1) - 1) / c.stride + 1;
  if (l_out <= 0) return 0;
  if (!wino_dilated(c)) return (l_out + kWinoTile - 1) / kWinoTile;
  int n = 0;
  for (int p = 0; p < c.dilation && p < l_out; ++p)
    n += ((l_out - p + c.dilation - 1) / c.dilation + kWinoTile - 1) / kWinoTile;
  return n;
}

WinoConv wino_pack(const Conv1d &c, bool bf16) {
  WinoConv p;
  p.c_in = c.in;
  p.c_out = c.out;
  p.k = c.k;
  p.stride = c.stride;
  p.dilation = c.dilation;
  p.pad = c.pad;
  p.groups = wino_dilated(c) ? 1 : c.stride;
  p.kdim = p.groups * c.in;
  p.bf16 = bf16;
  const int S = p.groups;
  std::vector<float> gt(static_cast<size_t>(c.out) * p.kdim);
  for (int pt = 0; pt < kWinoPoints; ++pt) {
    for (int o = 0; o < c.out; ++o)
      for (int q = 0; q < S; ++q)
        for (int i = 0; i < c.in; ++i) {
          double s = 0.0;
          for (int j = 0; j < 3; ++j) {
            const int tap = S == 1 ? j : q + S * j;
            if (tap < c.k)
              s += kG[pt][j] * c.w[(static_cast<size_t>(o) * c.in + i) * c.k + tap];
          }
          gt[static_cast<size_t>(o) * p.kdim + q * c.in + i] = static_cast<float>(s);
        }
    // Point inf (G row (0, 0, 1)) sees only tap 2 of each group: in a strided conv the
    // groups q >= k - 2S have none (taps q + 2S past k), so its GEMM covers only the
    // leading groups (for k 9, S 4: one group of 4, 1/8 of the conv's products saved).
    // In bf16 the GEMM's K must stay even, so an odd reduced K keeps the full one.
    int kpt = p.kdim;
    if (pt == kWinoPoints - 1 && S > 1) {
      const int kr = std::max(0, c.k - 2 * S) * c.in;
      if (!bf16 || kr % 2 == 0) kpt = kr;
    }
    // The bias is added once, by the output transform: the point GEMMs have none.
    if (bf16) p.pb[pt] = gemm_pack_bf16(gt.data(), c.out, kpt, nullptr, p.kdim);
    else p.pt[pt] = gemm_pack(gt.data(), c.out, kpt, nullptr, p.kdim);
  }
  p.bias.assign(c.out, 0.0f);
  if (c.b) std::copy(c.b, c.b + c.out, p.bias.begin());
  return p;
}

size_t wino_scratch_floats(const WinoConv &c, int l_in) {
  (void)l_in;
  const size_t u = kWinoPoints * kChunk * ldu_of(c);  // fp32 U, or bf16 U in half of it
  const size_t m = kWinoPoints * kChunk * static_cast<size_t>(c.c_out);
  return u + m;
}

void wino_conv1d(const WinoConv &c, const float *x, int ldx, int l_in, float *y, int ldy,
                 Act act, bool input_lrelu, float *scratch, int batch, size_t xstride,
                 size_t ystride) {
  const KernelTable &table = kernels();
  const WinoInputFn input = table.wino_input ? table.wino_input : wino_input_portable;
  const WinoInputBf16Fn input_bf16 =
      table.wino_input_bf16 ? table.wino_input_bf16 : wino_input_bf16_portable;
  const WinoOutputFn output = table.wino_output ? table.wino_output : wino_output_portable;
  const size_t ldu = ldu_of(c);
  const size_t upoint = kChunk * ldu, mpoint = static_cast<size_t>(kChunk) * c.c_out;
  float *U = scratch;
  uint16_t *Ub = reinterpret_cast<uint16_t *>(scratch);  // bf16 mode: U in bf16
  float *M = U + kWinoPoints * upoint;
  const float *bias = c.bias.data();
  const bool lr = act == Act::kLrelu;
  const int S = c.groups;

  TileIter it;
  it.dilated = S == 1;
  it.d = S == 1 ? c.dilation : 1;
  it.l_out = out_length(c, l_in);
  it.batch = batch;
  // Input position of transform tap i of a tile (group q): dilated in0 + d i - pad,
  // strided S (s0 + i) + q - pad; reflected, or null past the padded input.
  auto row = [&](const Tile &t, int i, int q) -> const float * {
    int pos = S == 1 ? t.in0 + t.istep * i - c.pad : S * (t.in0 + i) + q - c.pad;
    if (pos < -c.pad || pos > l_in - 1 + c.pad) return nullptr;
    if (pos < 0) pos = -pos;
    if (pos >= l_in) pos = 2 * (l_in - 1) - pos;
    return x + static_cast<size_t>(t.g) * xstride + static_cast<size_t>(pos) * ldx;
  };

  Tile tiles[kChunk];
  for (;;) {
    int nt = 0;
    while (nt < kChunk && next_tile(it, tiles[nt])) ++nt;
    if (nt == 0) break;
    // Input transform: U_i[tile][q * c_in + ch] (fp32, or bf16 in fast mode); the K pad
    // column (odd kdim) is zero.
    for (int ti = 0; ti < nt; ++ti) {
      for (int q = 0; q < S; ++q) {
        const float *d[kWinoPoints];
        for (int i = 0; i < kWinoPoints; ++i) d[i] = row(tiles[ti], i, q);
        const size_t off = static_cast<size_t>(ti) * ldu + static_cast<size_t>(q) * c.c_in;
        if (c.bf16) input_bf16(d, c.c_in, input_lrelu, Ub + off, upoint);
        else input(d, c.c_in, input_lrelu, U + off, upoint);
      }
      if (ldu != static_cast<size_t>(c.kdim))
        for (int i = 0; i < kWinoPoints; ++i) {
          const size_t at = i * upoint + static_cast<size_t>(ti) * ldu + c.kdim;
          if (c.bf16) Ub[at] = 0;
          else U[at] = 0.0f;
        }
    }
    // The 6 point GEMMs.
    for (int i = 0; i < kWinoPoints; ++i) {
      float *mi = M + i * mpoint;
      if (c.bf16)
        gemm_bf16(c.pb[i], Ub + i * upoint, static_cast<int>(ldu), nt, mi, c.c_out, Act::kNone);
      else
        gemm(c.pt[i], U + i * upoint, static_cast<int>(ldu), nt, mi, c.c_out, Act::kNone);
    }
    // Output transform, bias, activation; only a tile's valid outputs are stored.
    for (int ti = 0; ti < nt; ++ti) {
      const Tile &t = tiles[ti];
      float *yr[kWinoTile];
      for (int r = 0; r < kWinoTile; ++r)
        yr[r] = r < t.valid ? y + static_cast<size_t>(t.g) * ystride +
                                  static_cast<size_t>(t.out0 + t.ostep * r) * ldy
                            : nullptr;
      output(M + static_cast<size_t>(ti) * c.c_out, mpoint, c.c_out, bias, lr, yr);
    }
  }
}

}  // namespace ngs::cpu
