// Each CUDA kernel against the CPU stage functions of kernels/cpu/ops.h on fresh random
// inputs, output buffers poisoned (NaN) first, at several sizes including grain counts that
// do not divide the MLP tile. Built against the emulation (test_cuda_emu) and, with CUDA,
// the real backend (test_cuda_device, skipped without a GPU).
#include <gtest/gtest.h>

#include <algorithm>

#include <vector>

#include "cpu/ops.h"
#include "decoder_mlp.cuh"
#include "noise_filter.cuh"
#include "overlap_add.cuh"
#include "test_cuda_util.h"

using namespace ngs;
using ngs::test::DevArray;
using ngs::test::kTolF32;
using ngs::test::rel_l2;

namespace {

// CPU stage 1: the packed GEMMs (LReLU) of ops.h, then decoder_mlp_spectrum.
std::vector<float> cpu_spectrum(const WaveformWeights &w, const std::vector<float> &z, int n) {
  std::vector<float> x(z), y;
  for (const Linear &l : w.dec_lin) {
    const cpu::PackedGemm g = cpu::gemm_pack(l);
    y.assign(static_cast<size_t>(n) * l.out, 0.0f);
    cpu::gemm(g, x.data(), l.in, n, y.data(), l.out, cpu::Act::kLrelu);
    x.swap(y);
  }
  const int F = w.cfg.filter_size();
  const cpu::PackedGemm g = cpu::gemm_pack(w.dec_out);
  y.assign(static_cast<size_t>(n) * F, 0.0f);
  cpu::gemm(g, x.data(), w.dec_out.in, n, y.data(), F, cpu::Act::kNone);
  std::vector<float> S(static_cast<size_t>(n) * F), scratch(F);
  cpu::decoder_mlp_spectrum(y.data(), n, F, S.data(), scratch.data());
  return S;
}

struct MlpUpload {
  std::vector<std::unique_ptr<DevArray<float>>> f;
  std::vector<std::unique_ptr<DevArray<__half>>> h;
  cuda::MlpDevice m;
  MlpUpload(const WaveformWeights &w, bool half, cuda::MlpKernel kernel) {
    const int n_layers = static_cast<int>(w.dec_lin.size()) + 1;
    m.n_layers = n_layers;
    m.half = half;
    m.kernel = kernel;
    for (int l = 0; l < n_layers; ++l) {
      const Linear &lin = l + 1 < n_layers ? w.dec_lin[l] : w.dec_out;
      const size_t count = static_cast<size_t>(lin.out) * lin.in;
      f.push_back(std::make_unique<DevArray<float>>(std::vector<float>(lin.w, lin.w + count)));
      m.w[l] = f.back()->get();
      f.push_back(std::make_unique<DevArray<float>>(std::vector<float>(lin.b, lin.b + lin.out)));
      m.b[l] = f.back()->get();
      if (half) {
        std::vector<__half> hw(count);
        for (size_t i = 0; i < count; ++i) hw[i] = __float2half(lin.w[i]);
        h.push_back(std::make_unique<DevArray<__half>>(hw));
        m.w_half[l] = h.back()->get();
      }
      m.dims[l] = lin.in;
      m.dims[l + 1] = lin.out;
    }
    cuda::decoder_mlp_prepare(m, test::smem_optin());
  }
};

// Runs the MLP of `up` on device z; returns S (the row kernel with its workspace).
std::vector<float> run_mlp(const MlpUpload &up, const std::vector<float> &z, int n, int F) {
  DevArray<float> dz(z), dS(static_cast<size_t>(n) * F);
  DevArray<float> work(std::max<size_t>(cuda::decoder_mlp_work_floats(up.m, n), 1));
  cuda::decoder_mlp_launch(up.m, dz.get(), n, dS.get(), nullptr, work.get());
  return dS.host();
}

const char *kernel_name(cuda::MlpKernel k) { return k == cuda::MlpKernel::kRows ? "rows" : "tiled"; }
constexpr cuda::MlpKernel kMlpKernels[] = {cuda::MlpKernel::kRows, cuda::MlpKernel::kTiled};

struct MlpCase {
  int z_dim, h_dim, n_linears, l_grain;
  std::vector<int> grains;
  int tile;  // grains per block the launcher must pick
};

}  // namespace

TEST(CudaKernels, DecoderMlpMatchesCpu) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  // Small model: tile 8 in 48 KiB; drum-size model (z 128, h 512, l_grain 2048): tile 8 in
  // 66 KiB (opt-in); h 1024: tile 4. The row kernel: rows and grains that do not divide its
  // 32 x 8 blocks (48, 33, 1025 rows; 1, 5, 13 grains), inputs over two 512-float steps.
  const std::vector<MlpCase> cases = {{16, 48, 2, 64, {1, 5, 13}, 8},
                                      {128, 512, 3, 2048, {6}, 8},
                                      {64, 1024, 1, 2048, {7}, 4},
                                      {7, 33, 2, 64, {9}, 8}};
  for (cuda::MlpKernel kernel : kMlpKernels)
    for (const MlpCase &mc : cases) {
      test::RandomDecoder d(mc.z_dim, mc.h_dim, mc.n_linears, mc.l_grain, 5, seed);
      MlpUpload up(d.w, false, kernel);
      const int F = d.w.cfg.filter_size();
      EXPECT_EQ(cuda::decoder_mlp_tile(up.m), mc.tile) << "h_dim " << mc.h_dim;
      for (int n : mc.grains) {
        SCOPED_TRACE(std::string(kernel_name(kernel)) + " h_dim " + std::to_string(mc.h_dim) +
                     " n " + std::to_string(n) + " tile " +
                     std::to_string(cuda::decoder_mlp_tile(up.m)));
        const std::vector<float> z =
            test::random_normal(static_cast<size_t>(n) * mc.z_dim, seed + n);
        EXPECT_LE(rel_l2(run_mlp(up, z, n, F), cpu_spectrum(d.w, z, n)), kTolF32);
      }
    }
}

TEST(CudaKernels, DecoderMlpHalfWeightsMatchCpuOnRoundedWeights) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  test::RandomDecoder d(16, 64, 3, 256, 5, seed);
  // The CPU reference on the same weights rounded to fp16: the half path is then exact
  // to fp32 accuracy; against the unrounded weights it is within the fp16 bound.
  test::RandomDecoder rounded(16, 64, 3, 256, 5, seed);
  for (size_t i = 0; i + 1 < rounded.store.size(); i += 2)
    for (auto &x : rounded.store[i]) x = __half2float(__float2half(x));
  const int n = 11, F = d.w.cfg.filter_size();
  const std::vector<float> z = test::random_normal(static_cast<size_t>(n) * 16, seed + 1);
  for (cuda::MlpKernel kernel : kMlpKernels) {
    SCOPED_TRACE(kernel_name(kernel));
    MlpUpload up(d.w, true, kernel);
    const std::vector<float> S = run_mlp(up, z, n, F);
    EXPECT_LE(rel_l2(S, cpu_spectrum(rounded.w, z, n)), kTolF32);
    const double err = rel_l2(S, cpu_spectrum(d.w, z, n));
    EXPECT_LE(err, 1e-2);
    EXPECT_GT(err, 0.0);  // the half weights were really used
  }
}

TEST(CudaKernels, NoiseFilterMatchesCpu) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  struct Case {
    int l, n, g0, n_total;
  };
  // First and last grains of a series (fixed windows), a middle chunk, several sizes.
  const std::vector<Case> cases = {{64, 5, 0, 5},     {512, 3, 4, 7}, {2048, 2, 9, 11},
                                   {4096, 1, 0, 1},   {8192, 1, 2, 4}};
  for (const Case &c : cases) {
    SCOPED_TRACE("l_grain " + std::to_string(c.l) + " n " + std::to_string(c.n) + " g0 " +
                 std::to_string(c.g0));
    const int F = c.l / 2 + 1;
    const std::vector<float> S = test::random_uniform(static_cast<size_t>(c.n) * F, seed + c.l);
    std::vector<float> tw(c.l), hann(c.l);
    cuda::noise_filter_tables(c.l, tw.data(), hann.data());
    const cuda::NoiseParams p{0x0123456789ABCDEFull ^ seed, 3u, c.g0, c.n_total};
    cuda::noise_filter_prepare(c.l, test::smem_optin());
    DevArray<float> dS(S), dtw(tw), dhann(hann), dy(static_cast<size_t>(c.n) * c.l);
    DevArray<cuda::NoiseParams> dp(std::vector<cuda::NoiseParams>{p});
    cuda::noise_filter_launch(dS.get(), c.n, c.l, dtw.get(), dhann.get(), dp.get(), dy.get(),
                              nullptr);
    const std::vector<float> y = dy.host();
    cpu::RealFft fft(c.l);
    std::vector<float> ref(static_cast<size_t>(c.n) * c.l), u(c.l), scratch(2 * (c.l + 2));
    for (int i = 0; i < c.n; ++i) {
      cpu::noise_filter_noise(p.seed, p.sequence, c.g0 + i, c.l, u.data());
      cpu::noise_filter_grain(fft, S.data() + static_cast<size_t>(i) * F, u.data(), hann.data(),
                       c.g0 + i, c.n_total, ref.data() + static_cast<size_t>(i) * c.l,
                       scratch.data());
    }
    EXPECT_LE(rel_l2(y, ref), kTolF32);
  }
}

TEST(CudaKernels, OverlapAddMatchesCpu) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  struct Case {
    int l, n, taps;
    bool normalize, ola_only;
  };
  const std::vector<Case> cases = {{64, 1, 5, true, false},   {64, 2, 9, true, true},
                                   {256, 9, 65, true, false}, {256, 9, 65, false, false},
                                   {2048, 3, 65, true, false}, {512, 5, 33, false, true}};
  for (const Case &c : cases) {
    SCOPED_TRACE("l " + std::to_string(c.l) + " n " + std::to_string(c.n) + " taps " +
                 std::to_string(c.taps) + (c.normalize ? " norm" : "") + (c.ola_only ? " ola" : ""));
    const int hop = c.l / 4, len = (c.n + 3) * hop;
    const std::vector<float> y = test::random_uniform(static_cast<size_t>(c.n) * c.l, seed + c.l);
    const std::vector<float> fir = test::random_uniform(c.taps, seed + 1, -0.3f, 0.3f);
    DevArray<float> dy(y), dfir(fir), da(len);
    cuda::OlaParams p;
    p.n = c.n;
    p.l_grain = c.l;
    p.hop = hop;
    p.normalize = c.normalize;
    p.ola_only = c.ola_only;
    p.fir = dfir.get();
    p.fir_len = c.taps;
    p.bias = 0.1f;
    cuda::overlap_add_launch(p, dy.get(), da.get(), nullptr);
    const std::vector<float> a = da.host();
    std::vector<float> ola(len), ref(len);
    cpu::overlap_add(y.data(), c.n, c.l, hop, c.normalize, ola.data());
    cpu::overlap_add_fir_softsign(ola.data(), len, fir.data(), c.taps, p.bias, ref.data());
    EXPECT_LE(rel_l2(a, c.ola_only ? ola : ref), kTolF32);
  }
}

// A device-side count below the launch size (the batch-size buckets of the backend's
// graphs: one graph per bucket, the live count copied in per call): the decoder MLP (both
// kernels), the noise filter (a series and independent grains) and the overlap-add compute
// exactly the live grains, equal to the CPU on them, and write nothing past them (the
// poisoned rows stay NaN).
TEST(CudaKernels, DeviceCountLimitsTheGrainsComputed) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  test::RandomDecoder d(16, 48, 2, 256, 9, seed);
  const WaveformConfig &c = d.w.cfg;
  const int F = c.filter_size(), l = c.l_grain, hop = c.hop;
  auto nan_from = [](const std::vector<float> &v, size_t from) {
    for (size_t i = from; i < v.size(); ++i)
      if (!std::isnan(v[i])) return false;
    return true;
  };
  for (const int cap : {8, 16}) {
    for (const int live : {1, 3, 5, cap - 1, cap}) {
      SCOPED_TRACE("bucket " + std::to_string(cap) + " live " + std::to_string(live));
      DevArray<int> dcount(std::vector<int>{live});
      const std::vector<float> z = test::random_normal(static_cast<size_t>(cap) * c.z_dim, seed + live);
      const std::vector<float> S_ref = cpu_spectrum(d.w, z, live);
      for (cuda::MlpKernel kernel : kMlpKernels) {
        SCOPED_TRACE(kernel_name(kernel));
        MlpUpload up(d.w, false, kernel);
        DevArray<float> dz(z), dS(static_cast<size_t>(cap) * F);
        DevArray<float> work(std::max<size_t>(cuda::decoder_mlp_work_floats(up.m, cap), 1));
        cuda::decoder_mlp_launch(up.m, dz.get(), cap, dS.get(), nullptr, work.get(), dcount.get());
        const std::vector<float> S = dS.host();
        EXPECT_LE(rel_l2(S.data(), S_ref.data(), static_cast<size_t>(live) * F), kTolF32);
        EXPECT_TRUE(nan_from(S, static_cast<size_t>(live) * F)) << "rows past the count written";
      }
      // Noise filter: a series of `live` grains launched for `cap`, and `cap` independent
      // grains of which `live` are live.
      const std::vector<float> S = test::random_uniform(static_cast<size_t>(cap) * F, seed + 5);
      std::vector<float> tw(l), hann(l);
      cuda::noise_filter_tables(l, tw.data(), hann.data());
      cuda::noise_filter_prepare(l, test::smem_optin());
      const cuda::NoiseParams p{0x5DEECE66Dull ^ seed, 2u, 0, live};
      std::vector<cuda::GrainNoise> specs(cap);
      for (int i = 0; i < cap; ++i) specs[i] = cuda::GrainNoise{seed + 11ull * i, 1u, 3 * i + 1, i == 0, i == 2};
      DevArray<float> dS(S), dtw(tw), dhann(hann), dy(static_cast<size_t>(cap) * l),
          dyg(static_cast<size_t>(cap) * l);
      DevArray<cuda::NoiseParams> dp(std::vector<cuda::NoiseParams>{p});
      DevArray<cuda::GrainNoise> dspecs(specs);
      cuda::noise_filter_launch(dS.get(), cap, l, dtw.get(), dhann.get(), dp.get(), dy.get(),
                                nullptr, dcount.get());
      cuda::noise_filter_grains_launch(dS.get(), cap, l, dtw.get(), dhann.get(), dspecs.get(),
                                       dyg.get(), nullptr, dcount.get());
      const std::vector<float> y = dy.host(), yg = dyg.host();
      cpu::RealFft fft(l);
      std::vector<float> ref(static_cast<size_t>(live) * l), refg(ref.size()), u(l), scratch(2 * (l + 2));
      for (int i = 0; i < live; ++i) {
        const float *s_row = S.data() + static_cast<size_t>(i) * F;
        cpu::noise_filter_noise(p.seed, p.sequence, i, l, u.data());
        cpu::noise_filter_grain(fft, s_row, u.data(), hann.data(), i, live,
                                ref.data() + static_cast<size_t>(i) * l, scratch.data());
        // An independent grain: its own key and index; first / last windows from its flags
        // (grain 0 of a series of 1 is both, g of a long series neither).
        const cuda::GrainNoise &q = specs[i];
        cpu::noise_filter_noise(q.seed, q.sequence, q.g, l, u.data());
        const int g = q.first ? 0 : 1, total = q.last ? g + 1 : g + 2;
        cpu::noise_filter_grain(fft, s_row, u.data(), hann.data(), g, total,
                                refg.data() + static_cast<size_t>(i) * l, scratch.data());
      }
      EXPECT_LE(rel_l2(y.data(), ref.data(), ref.size()), kTolF32);
      EXPECT_TRUE(nan_from(y, ref.size())) << "noise filter: grains past the count written";
      EXPECT_LE(rel_l2(yg.data(), refg.data(), refg.size()), kTolF32);
      EXPECT_TRUE(nan_from(yg, refg.size())) << "grains past the count written";
      // Overlap-add of a series of `live` grains in a launch for `cap`.
      const std::vector<float> fir = test::random_uniform(c.pp_ker, seed + 1, -0.3f, 0.3f);
      const int len = (live + 3) * hop;
      DevArray<float> dfir(fir), da(static_cast<size_t>(cap + 3) * hop);
      cuda::OlaParams op;
      op.n = cap;
      op.l_grain = l;
      op.hop = hop;
      op.fir = dfir.get();
      op.fir_len = c.pp_ker;
      op.bias = 0.1f;
      op.count = dcount.get();
      cuda::overlap_add_launch(op, dy.get(), da.get(), nullptr);
      const std::vector<float> a = da.host();
      std::vector<float> ola(len), oref(len);
      cpu::overlap_add(ref.data(), live, l, hop, true, ola.data());
      cpu::overlap_add_fir_softsign(ola.data(), len, fir.data(), c.pp_ker, op.bias, oref.data());
      EXPECT_LE(rel_l2(a.data(), oref.data(), len), kTolF32);
      EXPECT_TRUE(nan_from(a, static_cast<size_t>(len))) << "overlap-add: samples past the series written";
    }
  }
}
