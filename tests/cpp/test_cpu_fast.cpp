// Fast precision (bf16 products, fp32 accumulation; ops.h "Fast precision",
// docs/PRECISION.md) and batched one-shots (rnn_forward_batch, Session::sample_batch,
// ngs_sample with count > 1):
//  * the bf16 kernels (GEMM, GEMV, recurrent block) against a double reference over the
//    bf16-rounded operands, on the portable emulation and, where the CPU has it, on
//    AVX512_BF16; the two against each other;
//  * batched recurrences bit for bit equal to one sequence at a time, fp32 on every ISA
//    and fast;
//  * fast against fp32 per stage (latent_decode, decoder_mlp, whole sample) within the
//    tolerances of test_util.h, on fresh random inputs;
//  * ngs_sample with count 1..9 bit for bit equal to the separate one-shots, both
//    precisions; the public switch and its fallback.
// Fresh random inputs each run: the seed is printed with every failure.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/cpu.h"
#include "cpu/dispatch.h"
#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"
#include "model_file.h"
#include "ngs/ngs.h"
#include "test_isa.h"
#include "test_util.h"

using namespace ngs;
using namespace ngs::cpu;
using ngs::test::IsaGuard;
using ngs::test::poisoned;
using ngs::test::rel_l2;
using ngs::test::supported_isas;

namespace {

const float kNan = std::numeric_limits<float>::quiet_NaN();

// One fresh seed per test program run (printed with every failure).
uint32_t run_seed() {
  static const uint32_t s = std::random_device{}();
  return s;
}

std::vector<float> randv(std::mt19937 &g, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float &x : v) x = u(g);
  return v;
}

double bf(float x) { return bf16_to_float(bf16_from_float(x)); }

// The ISA paths of the fast kernels here: the portable emulation always, AVX512_BF16 when
// the CPU has it (the avx512 table's entries are then native).
std::vector<Isa> fast_isas() {
  std::vector<Isa> v{Isa::kPortable};
  if (cpu_has_bf16()) v.push_back(Isa::kAvx512);
  return v;
}

// max |got - want| / (sum of |terms| + |bias|) over outputs.
struct Scaled {
  double worst = 0;
  void add(double got, double want, double scale) {
    const double e = std::fabs(got - want) / std::max(scale, 1e-30);
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
};

}  // namespace

TEST(CpuFast, Bf16Conversion) {
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  EXPECT_EQ(bf16_from_float(1.0f), 0x3f80);
  EXPECT_EQ(bf16_from_float(-2.0f), 0xc000);
  EXPECT_EQ(bf16_to_float(bf16_from_float(INFINITY)), INFINITY);
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(kNan))));
  // Ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> 1; 1 + 3 * 2^-8 -> 1 + 2^-6.
  EXPECT_EQ(bf16_to_float(bf16_from_float(1.0f + 0.00390625f)), 1.0f);
  EXPECT_EQ(bf16_to_float(bf16_from_float(1.0f + 3 * 0.00390625f)), 1.0f + 0.015625f);
  std::mt19937 g(run_seed());
  for (float x : randv(g, 10000, -1e3f, 1e3f)) {
    const float r = bf16_to_float(bf16_from_float(x));
    ASSERT_LE(std::fabs(r - x), std::ldexp(std::fabs(x), -8)) << x;  // half an ulp of 8 bits
  }
}

TEST(CpuFast, DispatchTableSelectsBf16OnlyWithTheInstruction) {
  EXPECT_FALSE(kernels_for(Isa::kPortable).bf16_native);
  EXPECT_FALSE(kernels_for(Isa::kAvx2).bf16_native);
  EXPECT_EQ(kernels_for(Isa::kAvx512).bf16_native, cpu_has_bf16());
  for (Isa i : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    const KernelTable &t = kernels_for(i);
    EXPECT_NE(t.gemm_bf16_kernel, nullptr);
    EXPECT_NE(t.gemv_bf16, nullptr);
    EXPECT_NE(t.rnn_block_gemm_bf16, nullptr);
    EXPECT_NE(t.rnn_block_gemm, nullptr);
  }
  if (cpu_has_bf16()) EXPECT_EQ(isa_best_supported(), Isa::kAvx512);
}

// gemm_bf16 / gemv_bf16 = the products of the bf16-rounded operands summed in fp32: against
// a double sum of the same rounded products (1e-6 of the sum of |terms|, the fp32 GEMM's
// bound), and against the fp32 operands (the bf16 rounding: kTolFastKernel).
TEST(CpuFast, GemmAndGemvMatchReference) {
  IsaGuard guard;
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  std::mt19937 g(run_seed() + 1);
  struct Shape { int m, n, k; };
  const Shape shapes[] = {{1, 1, 1}, {3, 5, 7}, {41, 512, 128}, {13, 33, 17}, {7, 16, 300},
                          {29, 47, 513}, {12, 32, 256}, {1, 1025, 512}, {25, 20, 4100}};
  for (Isa isa : fast_isas())
    for (const Shape &s : shapes)
      for (int variant = 0; variant < 2; ++variant) {  // 0: bias, 1: bias + LReLU
        SCOPED_TRACE(std::string(isa_name(isa)) + " m=" + std::to_string(s.m) + " n=" +
                     std::to_string(s.n) + " k=" + std::to_string(s.k));
        const Act act = variant ? Act::kLrelu : Act::kNone;
        const int ldx = s.k + 3, ldy = s.n + 5;
        auto x = randv(g, static_cast<size_t>(s.m) * ldx);
        auto w = randv(g, static_cast<size_t>(s.n) * s.k);
        auto b = randv(g, s.n);
        PackedGemmBf16 p = gemm_pack_bf16(gemm_pack(w.data(), s.n, s.k, b.data()));
        std::vector<float> y(static_cast<size_t>(s.m) * ldy, kNan);
        gemm_bf16_isa(isa, p, x.data(), ldx, s.m, y.data(), ldy, act);
        std::vector<float> yv(s.n, kNan);
        gemv_bf16_isa(isa, p, x.data(), yv.data(), act);
        Scaled exact, exact_v;
        std::vector<float> want32;
        std::vector<float> got;
        for (int i = 0; i < s.m; ++i)
          for (int j = 0; j < s.n; ++j) {
            double v = b[j], v32 = b[j], sc = std::fabs(b[j]);
            for (int q = 0; q < s.k; ++q) {
              const float xv = x[static_cast<size_t>(i) * ldx + q], wv = w[static_cast<size_t>(j) * s.k + q];
              v += bf(xv) * bf(wv);
              v32 += static_cast<double>(xv) * wv;
              sc += std::fabs(bf(xv) * bf(wv));
            }
            auto a = [&](double t) { return act == Act::kLrelu && t < 0 ? 0.2 * t : t; };
            exact.add(y[static_cast<size_t>(i) * ldy + j], a(v), sc);
            if (i == 0) exact_v.add(yv[j], a(v), sc);
            want32.push_back(static_cast<float>(a(v32)));
            got.push_back(y[static_cast<size_t>(i) * ldy + j]);
          }
        EXPECT_LT(exact.worst, 1e-6) << "gemm vs the rounded operands";
        EXPECT_LT(exact_v.worst, 1e-6) << "gemv vs the rounded operands";
        if (s.k >= 100) EXPECT_LT(rel_l2(got, want32), test::kTolFastKernel) << "vs fp32";
        for (int i = 0; i < s.m; ++i)
          for (int j = s.n; j < ldy; ++j)
            ASSERT_TRUE(std::isnan(y[static_cast<size_t>(i) * ldy + j])) << "padding column written";
      }
}

// The AVX512_BF16 kernels and the portable emulation compute the same sums (same pairs,
// same order of accumulators): equal to the last bits.
TEST(CpuFast, NativeAndPortableKernelsAgree) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  std::mt19937 g(run_seed() + 2);
  const int m = 37, n = 70, k = 515;
  auto x = randv(g, static_cast<size_t>(m) * k), w = randv(g, static_cast<size_t>(n) * k), b = randv(g, n);
  PackedGemmBf16 p = gemm_pack_bf16(gemm_pack(w.data(), n, k, b.data()));
  std::vector<float> y0(static_cast<size_t>(m) * n, kNan), y1 = y0;
  gemm_bf16_isa(Isa::kPortable, p, x.data(), k, m, y0.data(), n, Act::kNone);
  gemm_bf16_isa(Isa::kAvx512, p, x.data(), k, m, y1.data(), n, Act::kNone);
  EXPECT_LE(rel_l2(y1, y0), 1e-6);
  std::vector<float> v0(n, kNan), v1(n, kNan);
  gemv_bf16_isa(Isa::kPortable, p, x.data(), v0.data(), Act::kNone);
  gemv_bf16_isa(Isa::kAvx512, p, x.data(), v1.data(), Act::kNone);
  EXPECT_LE(rel_l2(v1, v0), 1e-6);
  // Recurrent block, 5 rows.
  const int H = 150, ng = 4, B = 5, ldg = ng * kRnnBlock + 3;
  const int kp = (H + 1) / 2;
  std::vector<uint16_t> wb(static_cast<size_t>(kp) * ng * kRnnBlock * 2);
  for (auto &v : wb) v = bf16_from_float(std::uniform_real_distribution<float>(-0.5f, 0.5f)(g));
  for (int q = 0; q < ng * kRnnBlock; ++q) wb[(static_cast<size_t>(kp - 1) * ng * kRnnBlock) * 2 + 2 * q + 1] = 0;  // odd H pad
  auto bias = randv(g, ng * kRnnBlock), hx = randv(g, static_cast<size_t>(B) * H);
  std::vector<float> r0(static_cast<size_t>(B) * ldg, kNan), r1 = r0;
  kernels_for(Isa::kPortable).rnn_block_gemm_bf16(wb.data(), bias.data(), ng, H, hx.data(), H, B, r0.data(), ldg);
  kernels_for(Isa::kAvx512).rnn_block_gemm_bf16(wb.data(), bias.data(), ng, H, hx.data(), H, B, r1.data(), ldg);
  for (int r = 0; r < B; ++r)
    EXPECT_LE(rel_l2(r1.data() + static_cast<size_t>(r) * ldg, r0.data() + static_cast<size_t>(r) * ldg, ng * kRnnBlock), 1e-6);
}

// The int8 recurrent block (fast recurrence where the CPU has AVX512_VNNI): the
// AVX512_VNNI kernel and the portable emulation give the same bits (exact integer sums,
// the same float operations); against the fp32 block within kTolFastRnnStepInt8.
TEST(CpuFast, Int8RecurrentBlock) {
  IsaGuard guard;
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  std::mt19937 g(run_seed() + 6);
  for (int H : {24, 131, 512, 1500}) {  // partial quads and blocks; > 1024: chunked quantization
    for (RnnType type : {RnnType::kLstm, RnnType::kGru}) {
      SCOPED_TRACE("H=" + std::to_string(H));
      const int ng = type == RnnType::kGru ? 3 : 4, G = ng * H, in = 5, B = 6;
      auto wih = randv(g, static_cast<size_t>(G) * in), whh = randv(g, static_cast<size_t>(G) * H, -0.1f, 0.1f);
      auto bih = randv(g, G), bhh = randv(g, G);
      RnnLayer l{wih.data(), whh.data(), bih.data(), bhh.data(), in, H};
      PackedRnn p = rnn_pack(l, type);
      rnn_pack_int8(p);
      ASSERT_TRUE(p.has_int8());
      auto h = randv(g, static_cast<size_t>(B) * H);
      h[3] = 1.0f;  // the row's max: quantized exactly
      const int bs = ng * kRnnBlock, ldg = bs + 1;
      const size_t bsz = static_cast<size_t>(H) * bs, bsz8 = static_cast<size_t>((H + 3) / 4) * bs * 4;
      for (int u = 0; u < p.blocks; ++u) {
        std::vector<float> y0(static_cast<size_t>(B) * ldg, kNan), y1 = y0, y32 = y0;
        const float *sc = p.i8_scale.data() + static_cast<size_t>(u) * bs;
        const float *co = p.i8_corr.data() + static_cast<size_t>(u) * bs;
        const float *bias = p.hh_b.data() + static_cast<size_t>(u) * bs;
        kernels_for(Isa::kPortable).rnn_block_gemm_i8(p.hh8.data() + bsz8 * u, sc, co, bias, ng, H,
                                                      h.data(), H, B, y0.data(), ldg);
        kernels_for(Isa::kPortable).rnn_block_gemm(p.hh.data() + bsz * u, bias, ng, H, h.data(), H, B,
                                                   y32.data(), ldg);
        if (cpu_has_int8()) {
          kernels_for(Isa::kAvx512).rnn_block_gemm_i8(p.hh8.data() + bsz8 * u, sc, co, bias, ng, H,
                                                      h.data(), H, B, y1.data(), ldg);
          for (int b = 0; b < B; ++b)
            ASSERT_EQ(0, std::memcmp(y0.data() + b * ldg, y1.data() + b * ldg, sizeof(float) * bs))
                << "block " << u << " row " << b << ": native and emulation differ";
        }
        for (int b = 0; b < B; ++b) {
          // Only the units of this block that exist (past H the weights are 0).
          std::vector<float> a, c;
          for (int q = 0; q < ng; ++q)
            for (int j = 0; j < kRnnBlock && u * kRnnBlock + j < H; ++j) {
              a.push_back(y0[b * ldg + q * kRnnBlock + j] - bias[q * kRnnBlock + j]);
              c.push_back(y32[b * ldg + q * kRnnBlock + j] - bias[q * kRnnBlock + j]);
            }
          EXPECT_LE(rel_l2(a, c), test::kTolFastRnnStepInt8) << "block " << u << " row " << b;
        }
      }
    }
  }
}

namespace {

struct RnnCase {
  std::vector<float> wih, whh, bih, bhh;
  RnnLayer layer;
};

RnnCase make_rnn(std::mt19937 &g, RnnType type, int in, int H) {
  const int G = (type == RnnType::kGru ? 3 : 4) * H;
  RnnCase c;
  c.wih = randv(g, static_cast<size_t>(G) * in, -0.5f, 0.5f);
  c.whh = randv(g, static_cast<size_t>(G) * H, -0.5f, 0.5f);
  c.bih = randv(g, G);
  c.bhh = randv(g, G);
  c.layer = RnnLayer{c.wih.data(), c.whh.data(), c.bih.data(), c.bhh.data(), in, H};
  return c;
}

}  // namespace

// rnn_forward_batch: sequence b bit for bit rnn_forward's, B = 1..9, fp32 on every ISA and
// fast (bf16 and int8 recurrence) on every fast path; fast within kTolFastRnn(Int8) of fp32.
TEST(CpuFast, BatchedRecurrenceEqualsOneSequenceAtATime) {
  IsaGuard guard;
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  std::mt19937 g(run_seed() + 3);
  for (RnnType type : {RnnType::kGru, RnnType::kLstm})
    for (bool constant : {true, false})
      for (int H : {24, 131}) {
        const int in = 19, steps = 7, G = (type == RnnType::kGru ? 3 : 4) * H;
        RnnCase rc = make_rnn(g, type, in, H);
        for (bool with_int8 : {false, true}) {
        PackedRnn p = rnn_pack(rc.layer, type);
        rnn_pack_bf16(p);
        if (with_int8) rnn_pack_int8(p);
        for (int B : {1, 2, 3, 8, 9}) {
          const int rows = constant ? 1 : steps;
          auto x = randv(g, static_cast<size_t>(B) * rows * in);
          const int ldo = H + 1;
          for (bool fast : {false, true}) {
            const std::vector<Isa> isas = fast ? fast_isas() : supported_isas();
            for (Isa isa : isas) {
              isa_set(isa);
              SCOPED_TRACE(std::string(isa_name(isa)) + (fast ? (with_int8 ? " fast int8" : " fast") : " fp32") + " B=" +
                           std::to_string(B) + " H=" + std::to_string(H) +
                           (constant ? " constant" : ""));
              std::vector<float> scratch = poisoned(rnn_scratch_floats(p, steps, B));
              std::vector<float> out(static_cast<size_t>(B) * steps * ldo, kNan), hf(static_cast<size_t>(B) * H, kNan);
              rnn_forward_batch(p, B, x.data(), static_cast<size_t>(rows) * in, in, constant, steps,
                                out.data(), static_cast<size_t>(steps) * ldo, ldo, hf.data(),
                                scratch.data(), nullptr, fast);
              for (int b = 0; b < B; ++b) {
                std::vector<float> s1 = poisoned(rnn_scratch_floats(p, steps));
                std::vector<float> o1(static_cast<size_t>(steps) * ldo, kNan), h1(H, kNan);
                rnn_forward(p, x.data() + static_cast<size_t>(b) * rows * in, in, constant, steps,
                            o1.data(), ldo, h1.data(), s1.data(), nullptr, fast);
                for (int t = 0; t < steps; ++t)
                  ASSERT_EQ(0, std::memcmp(o1.data() + static_cast<size_t>(t) * ldo,
                                           out.data() + (static_cast<size_t>(b) * steps + t) * ldo,
                                           sizeof(float) * H))
                      << "sequence " << b << " step " << t;
                ASSERT_EQ(0, std::memcmp(h1.data(), hf.data() + static_cast<size_t>(b) * H, sizeof(float) * H));
                if (fast && b == 0) {
                  std::vector<float> o32(static_cast<size_t>(steps) * ldo, kNan);
                  rnn_forward(p, x.data(), in, constant, steps, o32.data(), ldo, nullptr, s1.data());
                  std::vector<float> a, c;
                  for (int t = 0; t < steps; ++t)
                    for (int j = 0; j < H; ++j) {
                      a.push_back(o1[static_cast<size_t>(t) * ldo + j]);
                      c.push_back(o32[static_cast<size_t>(t) * ldo + j]);
                    }
                  EXPECT_LE(rel_l2(a, c), with_int8 ? test::kTolFastRnnInt8 : test::kTolFastRnn)
                      << "fast vs fp32";
                }
              }
              (void)G;
            }
          }
        }
        }
      }
}

namespace {

struct Fixture {
  std::string name;
  std::unique_ptr<ModelFile> model;
};

const std::vector<Fixture> &fixtures() {
  static const std::vector<Fixture> f = [] {
    std::vector<Fixture> out;
    for (const std::string &c : test::fixture_configs()) {
      Fixture x;
      x.name = c;
      x.model = load_model_file(test::fixture_path(c, "model.safetensors"));
      out.push_back(std::move(x));
    }
    return out;
  }();
  return f;
}

}  // namespace

TEST(CpuFast, FixturesPresent) {
  ASSERT_FALSE(fixtures().empty()) << "no fixtures under " << test::fixtures_dir();
}

// Per stage, fast against fp32 on the same fresh random inputs (each fast path of this
// CPU); the bounds are test_util.h's kTolFast*, measured in docs/PRECISION.md.
TEST(CpuFast, StagesMatchFp32WithinTolerance) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "no AVX512_BF16: fast sessions run fp32 here";
  IsaGuard guard;
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  std::mt19937 g(run_seed() + 4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Fixture &f : fixtures()) {
    const WaveformConfig &wc = f.model->waveform.cfg;
    const LatentWeights *lw = f.model->has_latent ? &f.model->latent : nullptr;
    auto backend = make_cpu_backend(f.model->waveform, lw);
    const int n = wc.n_grains, F = wc.filter_size();
    std::vector<float> z(static_cast<size_t>(n) * wc.z_dim);
    for (float &v : z) v = nd(g);
    // Sessions made on the native path; each fast path then runs through them.
    isa_set(isa_best_supported());
    auto s32 = backend->create_session(n, 1, Precision::kFp32);
    auto sf = backend->create_session(n, 1, Precision::kFast);
    ASSERT_EQ(sf->precision(), Precision::kFast);
    ASSERT_EQ(s32->precision(), Precision::kFp32);
    for (Isa isa : fast_isas()) {
      isa_set(isa);
      SCOPED_TRACE(f.name + " " + isa_name(isa));
      std::vector<float> S32 = poisoned(static_cast<size_t>(n) * F), Sf = S32;
      s32->decoder_mlp(z.data(), n, S32.data());
      sf->decoder_mlp(z.data(), n, Sf.data());
      EXPECT_LE(rel_l2(Sf, S32), test::kTolFastDecoderMlp) << "decoder_mlp";
      EXPECT_GT(rel_l2(Sf, S32), 0.0) << "fast decoder_mlp ran the fp32 weights";
      {  // the encoder's bf16 convolutions (EncoderPrecision::kFast through the session)
        std::vector<float> audio(static_cast<size_t>(n + 3) * wc.hop);
        for (float &v : audio) v = 0.3f * nd(g);
        std::vector<float> mu32 = poisoned(static_cast<size_t>(n) * wc.z_dim), muf = mu32;
        s32->encoder(audio.data(), n, mu32.data(), nullptr);
        sf->encoder(audio.data(), n, muf.data(), nullptr);
        EXPECT_LE(rel_l2(muf, mu32), test::kTolFastEncoder) << "encoder";
        EXPECT_GT(rel_l2(muf, mu32), 0.0) << "fast encoder ran the fp32 convolutions";
      }
      if (!lw) continue;
      const int ed = lw->cfg.e_dim, cls = lw->cfg.n_conds > 0 ? 1 % lw->cfg.n_conds : -1;
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<float> e(ed);
        for (float &v : e) v = nd(g);
        std::vector<float> zl32 = poisoned(static_cast<size_t>(n) * wc.z_dim), zlf = zl32;
        s32->latent_decode(e.data(), cls, n, zl32.data());
        sf->latent_decode(e.data(), cls, n, zlf.data());
        EXPECT_LE(rel_l2(zlf, zl32), test::kTolFastLatentDecode) << "latent_decode";
        EXPECT_GT(rel_l2(zlf, zl32), 0.0) << "fast latent_decode ran the fp32 weights";
        const size_t len = static_cast<size_t>(n + 3) * wc.hop;
        std::vector<float> a32 = poisoned(len), af = a32;
        s32->sample(e.data(), cls, n, NoiseKey{9, 0}, a32.data());
        sf->sample(e.data(), cls, n, NoiseKey{9, 0}, af.data());
        EXPECT_LE(rel_l2(af, a32), test::kTolFastSample) << "sample";
        std::vector<float> mu32(ed, kNan), muf(ed, kNan);
        s32->latent_encode(zl32.data(), n, mu32.data(), nullptr);
        sf->latent_encode(zl32.data(), n, muf.data(), nullptr);
        EXPECT_LE(rel_l2(muf, mu32), test::kTolFastLatentEncode) << "latent_encode";
      }
    }
  }
}

// Session::sample_batch: bit for bit B separate sample() calls, both precisions, every
// supported path.
TEST(CpuFast, SessionSampleBatchEqualsSeparateSamples) {
  IsaGuard guard;
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  std::mt19937 g(run_seed() + 5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int tested = 0;
  for (const Fixture &f : fixtures()) {
    if (!f.model->has_latent) continue;
    const WaveformConfig &wc = f.model->waveform.cfg;
    auto backend = make_cpu_backend(f.model->waveform, &f.model->latent);
    const int n = wc.n_grains, ed = f.model->latent.cfg.e_dim;
    const int cls = f.model->latent.cfg.n_conds > 0 ? 0 : -1;
    const size_t len = static_cast<size_t>(n + 3) * wc.hop;
    for (Precision pr : {Precision::kFp32, Precision::kFast}) {
      isa_set(isa_best_supported());
      auto s = backend->create_session(8 * n, 1, pr);  // on the best path
      auto s2 = backend->create_session(8 * n, 3, pr);
      EXPECT_EQ(s->precision(), pr == Precision::kFast && cpu_has_bf16() ? pr : Precision::kFp32);
      for (Isa isa : pr == Precision::kFast ? fast_isas() : supported_isas()) {
        isa_set(isa);
        SCOPED_TRACE(f.name + " " + isa_name(isa) + (pr == Precision::kFast ? " fast" : " fp32"));
        ASSERT_EQ(s->sample_batch_max(n), 8) << "the CPU session batches up to 8 one-shots";
        for (int B : {2, 5, 8}) {
          std::vector<float> e(static_cast<size_t>(B) * ed);
          for (float &v : e) v = nd(g);
          std::vector<NoiseKey> keys;
          for (int b = 0; b < B; ++b) keys.push_back(NoiseKey{77, static_cast<uint32_t>(b + 3)});
          const size_t ld = len + 11;
          std::vector<float> got(B * ld, 1234.5f);
          for (int b = 0; b < B; ++b) std::fill(got.begin() + b * ld, got.begin() + b * ld + len, kNan);
          s->sample_batch(e.data(), ed, cls, B, n, keys.data(), got.data(), ld);
          for (int b = 0; b < B; ++b) {
            std::vector<float> one = poisoned(len);
            s->sample(e.data() + static_cast<size_t>(b) * ed, cls, n, keys[b], one.data());
            ASSERT_EQ(0, std::memcmp(one.data(), got.data() + b * ld, sizeof(float) * len))
                << "one-shot " << b << " of " << B;
            ASSERT_EQ(got[b * ld + len], 1234.5f) << "wrote past the one-shot";
          }
          ++tested;
        }
        EXPECT_THROW(s->sample_batch(nullptr, ed, cls, 9, n, nullptr, nullptr, len), Error);
        // Threads split the batch's recurrence by unit blocks: the same bits.
        std::vector<float> e(static_cast<size_t>(8) * ed);
        for (float &v : e) v = nd(g);
        std::vector<NoiseKey> keys(8, NoiseKey{5, 0});
        for (int b = 0; b < 8; ++b) keys[b].sequence = static_cast<uint32_t>(b);
        std::vector<float> a1 = poisoned(8 * len), a3 = poisoned(8 * len);
        s->sample_batch(e.data(), ed, cls, 8, n, keys.data(), a1.data(), len);
        s2->sample_batch(e.data(), ed, cls, 8, n, keys.data(), a3.data(), len);
        EXPECT_EQ(0, std::memcmp(a1.data(), a3.data(), sizeof(float) * a1.size())) << "3 threads";
      }
    }
  }
  if (!fixtures().empty()) EXPECT_GT(tested, 0) << "no fixture has a sequence VAE";
}

namespace {

struct ApiModel {
  ngs_model *m = nullptr;
  ~ApiModel() { ngs_model_free(m); }
};
struct ApiCtx {
  ngs_context *c = nullptr;
  ~ApiCtx() { ngs_context_free(c); }
};

}  // namespace

// ngs_sample with count 1..9 (batches of up to 8, then the rest) equals one-shot i made
// separately (embedding sequence i -> ngs_latent_decode -> ngs_decode with noise sequence
// i), bit for bit, in both precisions.
TEST(CpuFast, ApiSampleCountEqualsSeparateOneShots) {
  int tested = 0;
  for (const std::string &c : test::fixture_configs()) {
    ApiModel m;
    ngs_model_params mp = ngs_model_default_params();
    mp.backend = NGS_BACKEND_CPU;
    ASSERT_EQ(ngs_model_init_from_file(test::fixture_path(c, "model.safetensors").c_str(), mp, &m.m),
              NGS_STATUS_OK);
    ngs_model_info info;
    ngs_model_get_info(m.m, &info);
    if (!info.has_latent_model) continue;
    for (ngs_precision pr : {NGS_PRECISION_FP32, NGS_PRECISION_FAST}) {
      SCOPED_TRACE(c + (pr == NGS_PRECISION_FAST ? " fast" : " fp32"));
      ApiCtx ctx;
      ngs_context_params cp = ngs_context_default_params();
      cp.precision = pr;
      ASSERT_EQ(ngs_context_init(m.m, cp, &ctx.c), NGS_STATUS_OK);
      EXPECT_EQ(ngs_context_precision(ctx.c), pr == NGS_PRECISION_FAST && kernels().bf16_native
                                                   ? NGS_PRECISION_FAST
                                                   : NGS_PRECISION_FP32);
      const size_t len = info.sample_length;
      const int n = info.n_grains;
      for (int count = 1; count <= 9; ++count) {
        ngs_sample_params sp = ngs_sample_default_params();
        sp.class_index = info.n_classes > 0 ? count % info.n_classes : NGS_CLASS_NONE;
        sp.seed = run_seed() + static_cast<uint64_t>(count);
        sp.temperature = 0.9f;
        sp.count = count;
        std::vector<float> all = poisoned(count * len + 1);
        ASSERT_EQ(ngs_sample(ctx.c, sp, all.data(), all.size()), NGS_STATUS_OK) << ngs_last_error();
        EXPECT_TRUE(std::isnan(all.back())) << "wrote past count one-shots";
        ASSERT_EQ(test::count_nonfinite(all.data(), count * len), 0u) << "count " << count;
        std::vector<float> e(info.e_dim), z(static_cast<size_t>(n) * info.z_dim);
        for (int i = 0; i < count; ++i) {
          ASSERT_EQ(ngs_embedding_sample(m.m, sp.temperature, sp.seed, i, e.data()), NGS_STATUS_OK);
          ASSERT_EQ(ngs_latent_decode(ctx.c, e.data(), sp.class_index, n, z.data()), NGS_STATUS_OK);
          ngs_decode_params dp = ngs_decode_default_params();
          dp.seed = sp.seed;
          dp.sequence = static_cast<uint32_t>(i);
          std::vector<float> one = poisoned(len);
          ASSERT_EQ(ngs_decode(ctx.c, z.data(), n, dp, one.data(), len), NGS_STATUS_OK);
          size_t first = len;
          for (size_t t = 0; t < len && first == len; ++t)
            if (std::memcmp(&one[t], &all[i * len + t], sizeof(float)) != 0) first = t;
          ASSERT_EQ(first, len) << "one-shot " << i << " of " << count << ": sample " << first
                                << " differs: " << one[first] << " vs " << all[i * len + first];
        }
        ++tested;
      }
      // ngs_sample_interpolation (batched the same way): step k = embedding
      // e0 + (e1 - e0) k / (steps - 1), noise sequence k.
      for (int steps : {2, 9, 11}) {
        ngs_sample_params sp = ngs_sample_default_params();
        sp.class_index = info.n_classes > 0 ? 0 : NGS_CLASS_NONE;
        sp.seed = run_seed() + 100;
        std::vector<float> all = poisoned(steps * len);
        ASSERT_EQ(ngs_sample_interpolation(ctx.c, sp, steps, all.data(), all.size()), NGS_STATUS_OK)
            << ngs_last_error();
        std::vector<float> e0(info.e_dim), e1(info.e_dim), e(info.e_dim),
            z(static_cast<size_t>(n) * info.z_dim);
        ASSERT_EQ(ngs_embedding_sample(m.m, sp.temperature, sp.seed, 0, e0.data()), NGS_STATUS_OK);
        ASSERT_EQ(ngs_embedding_sample(m.m, sp.temperature, sp.seed, 1, e1.data()), NGS_STATUS_OK);
        for (int k = 0; k < steps; ++k) {
          const float t = static_cast<float>(k) / static_cast<float>(steps - 1);
          for (int i = 0; i < info.e_dim; ++i) e[i] = e0[i] + (e1[i] - e0[i]) * t;
          ASSERT_EQ(ngs_latent_decode(ctx.c, e.data(), sp.class_index, n, z.data()), NGS_STATUS_OK);
          ngs_decode_params dp = ngs_decode_default_params();
          dp.seed = sp.seed;
          dp.sequence = static_cast<uint32_t>(k);
          std::vector<float> one = poisoned(len);
          ASSERT_EQ(ngs_decode(ctx.c, z.data(), n, dp, one.data(), len), NGS_STATUS_OK);
          ASSERT_EQ(0, std::memcmp(one.data(), all.data() + k * len, sizeof(float) * len))
              << "interpolation step " << k << " of " << steps;
        }
      }
    }
  }
  if (!test::fixture_configs().empty()) EXPECT_GT(tested, 0);
}

// A fast session needs the native bf16 kernels in the active table when it is made: below
// AVX-512 (NGS_CPU_ISA, isa_set) it runs fp32, not the slow emulation.
TEST(CpuFast, FastFallsBackToFp32WithoutNativeBf16) {
  IsaGuard guard;
  ASSERT_FALSE(fixtures().empty());
  const Fixture &f = fixtures()[0];
  auto backend = make_cpu_backend(f.model->waveform);
  for (Isa isa : supported_isas()) {
    isa_set(isa);
    auto s = backend->create_session(4, 1, Precision::kFast);
    EXPECT_EQ(s->precision(), kernels_for(isa).bf16_native ? Precision::kFast : Precision::kFp32)
        << isa_name(isa);
  }
}

TEST(CpuFast, ApiPrecisionParameter) {
  const auto configs = test::fixture_configs();
  ASSERT_FALSE(configs.empty());
  ApiModel m;
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = NGS_BACKEND_CPU;
  ASSERT_EQ(ngs_model_init_from_file(test::fixture_path(configs[0], "model.safetensors").c_str(), mp, &m.m),
            NGS_STATUS_OK);
  EXPECT_EQ(ngs_context_default_params().precision, NGS_PRECISION_FP32);
  for (int bad : {-1, 2, 77}) {
    ngs_context_params cp = ngs_context_default_params();
    std::memcpy(&cp.precision, &bad, sizeof bad);  // as a C caller could store it
    ngs_context *ctx = reinterpret_cast<ngs_context *>(0x1);
    EXPECT_EQ(ngs_context_init(m.m, cp, &ctx), NGS_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(ctx, nullptr);
    EXPECT_NE(std::string(ngs_last_error()).find("precision"), std::string::npos) << ngs_last_error();
  }
  EXPECT_EQ(ngs_context_precision(nullptr), NGS_PRECISION_FP32);
  ApiCtx c32;
  ASSERT_EQ(ngs_context_init(m.m, ngs_context_default_params(), &c32.c), NGS_STATUS_OK);
  EXPECT_EQ(ngs_context_precision(c32.c), NGS_PRECISION_FP32);
}
