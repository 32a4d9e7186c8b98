// The sequence VAE on the CUDA backend (kernels/cuda/latent_mlp.cu, rnn.cu, latent_decode.cu,
// latent_encode.cu, rnn_step.cu) and the streaming calls of the CUDA session (rnn_plan /
// rnn_start / rnn_step, decode_grains) against the CPU backend: each kernel on its own
// (row MLP with LayerNorm and one-hot input, the recurrence over whole sequences), the
// batched stages over many voices, the session's latent_decode / latent_encode / sample,
// rnn_step of B voices against latent_decode rows, decode_grains against the CPU's. GRU
// and LSTM, 1 and 2 RNN layers, conditional and unconditional, sizes that divide no tile
// (h 37 and 150, 11 voices of 21 steps); fresh random inputs (the seed is printed on
// failure), outputs NaN-poisoned, relative L2 <= 1e-5.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/cpu.h"
#include "cpu/ops.h"
#include "cuda_backend.cuh"
#include "latent_decode.cuh"
#include "latent_encode.cuh"
#include "latent_mlp.cuh"
#include "model_file.h"
#include "ngs/ngs.h"
#include "rnn.cuh"
#include "test_cuda_util.h"

using namespace ngs;
using ngs::test::DevArray;
using ngs::test::kTolF32;
using ngs::test::poisoned;
using ngs::test::rel_l2;

namespace {

// Random sequence-VAE weights of the layout of docs/MODEL_SPEC.md §5 (the loader's
// LatentWeights): weights U(-1, 1) / sqrt(in), biases U(-0.5, 0.5), LayerNorm gains
// U(0.5, 1.5) and offsets U(-0.3, 0.3).
struct RandomLatent {
  LatentWeights w;
  std::vector<std::vector<float>> store;
  uint32_t seed;

  RandomLatent(int z_dim, int e_dim, int h_dim, int n_linears, int n_rnn, RnnType rnn,
               int n_conds, int n_grains, uint32_t s)
      : seed(s) {
    store.reserve(1024);
    LatentConfig &c = w.cfg;
    c.z_dim = z_dim;
    c.e_dim = e_dim;
    c.h_dim = h_dim;
    c.n_linears = n_linears;
    c.n_rnn = n_rnn;
    c.n_grains = n_grains;
    c.n_conds = n_conds;
    c.rnn = rnn;
    for (int k = 0; k < n_conds; ++k) c.classes.push_back("c" + std::to_string(k));
    for (int l = 0; l < n_linears; ++l) w.enc_z.push_back(ln_linear(l ? h_dim : z_dim, h_dim));
    for (int l = 0; l < n_rnn; ++l) w.enc_rnn.push_back(rnn_layer(h_dim, h_dim, c.gates()));
    for (int l = 0; l + 1 < n_linears; ++l) w.enc_e.push_back(linear(h_dim, h_dim));
    w.enc_e.push_back(linear(h_dim, e_dim));
    w.mu = linear(e_dim, e_dim);
    w.logvar = linear(e_dim, e_dim, 4.0f);  // large enough that Hardtanh(-5, 5) clamps some
    w.dec_e.push_back(linear(e_dim + n_conds, h_dim));
    for (int l = 1; l < n_linears; ++l) w.dec_e.push_back(linear(h_dim, h_dim));
    for (int l = 0; l < n_rnn; ++l) w.dec_rnn.push_back(rnn_layer(h_dim, h_dim, c.gates()));
    for (int l = 0; l < n_linears; ++l) w.dec_z.push_back(ln_linear(l ? h_dim : h_dim + n_conds, h_dim));
    w.dec_z_out = linear(h_dim, z_dim);
  }

 private:
  const float *vec(size_t n, float lo, float hi, float scale = 1.0f) {
    store.push_back(test::random_uniform(n, seed++, lo, hi));
    for (float &x : store.back()) x *= scale;
    return store.back().data();
  }
  Linear linear(int in, int out, float gain = 1.0f) {
    Linear l;
    l.in = in;
    l.out = out;
    l.w = vec(static_cast<size_t>(in) * out, -1.0f, 1.0f, gain / std::sqrt(static_cast<float>(in)));
    l.b = vec(out, -0.5f, 0.5f);
    return l;
  }
  LayerNormLinear ln_linear(int in, int out) {
    LayerNormLinear l;
    l.lin = linear(in, out);
    l.ln_w = vec(out, 0.5f, 1.5f);
    l.ln_b = vec(out, -0.3f, 0.3f);
    return l;
  }
  RnnLayer rnn_layer(int in, int hidden, int ng) {
    RnnLayer r;
    r.in = in;
    r.hidden = hidden;
    const size_t G = static_cast<size_t>(ng) * hidden;
    r.w_ih = vec(G * in, -1.0f, 1.0f, 1.0f / std::sqrt(static_cast<float>(in)));
    r.w_hh = vec(G * hidden, -1.0f, 1.0f, 1.0f / std::sqrt(static_cast<float>(hidden)));
    r.b_ih = vec(G, -0.5f, 0.5f);
    r.b_hh = vec(G, -0.5f, 0.5f);
    return r;
  }
};

struct Shape {
  const char *name;
  int z, e, h, n_linears, n_rnn;
  RnnType rnn;
  int n_conds;
};

// GRU and LSTM, 1 and 2 layers, conditional and unconditional; no width a multiple of a
// tile (voices per block 8, rows per block 8, warps of 32, 256 threads).
const Shape kShapes[] = {
    {"gru1_uncond", 6, 10, 37, 2, 1, RnnType::kGru, 0},
    {"gru2_cond", 7, 9, 37, 2, 2, RnnType::kGru, 3},
    {"lstm1_cond", 6, 10, 37, 1, 1, RnnType::kLstm, 5},
    {"lstm2_uncond", 5, 11, 150, 2, 2, RnnType::kLstm, 0},
    {"lstm2_cond_odd", 6, 10, 150, 2, 2, RnnType::kLstm, 3},  // the `odd` fixture's shape
    {"gru2_wide", 9, 13, 300, 3, 2, RnnType::kGru, 2},        // H > 256: threads loop units
};

std::string trace(const Shape &s, uint32_t seed) {
  return std::string(s.name) + " seed " + std::to_string(seed);
}

std::vector<int> random_classes(int V, int n_conds, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int> cls(V, -1);
  if (n_conds > 0)
    for (int &c : cls) c = static_cast<int>(rng() % n_conds);
  return cls;
}

}  // namespace

// Row MLP (latent_mlp.cu): Linear + LayerNorm + LReLU, Linear + LReLU, Linear with a
// clamped tail, on rows of [x ; one_hot] against the CPU ops (gemm, layernorm_rows).
TEST(CudaLatent, RowMlpMatchesCpuOps) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (const int rows : {1, 5, 13}) {
    for (const int nc : {0, 3}) {
      SCOPED_TRACE("rows " + std::to_string(rows) + " n_conds " + std::to_string(nc));
      const int xw = 11, h1 = 37, h2 = 70, out = 2 * 9;
      std::vector<float> w1 = test::random_uniform(static_cast<size_t>(h1) * (xw + nc), seed + 1, -0.3f, 0.3f);
      std::vector<float> b1 = test::random_uniform(h1, seed + 2, -0.5f, 0.5f);
      std::vector<float> g1 = test::random_uniform(h1, seed + 3, 0.5f, 1.5f);
      std::vector<float> be1 = test::random_uniform(h1, seed + 4, -0.3f, 0.3f);
      std::vector<float> w2 = test::random_uniform(static_cast<size_t>(h2) * h1, seed + 5, -0.3f, 0.3f);
      std::vector<float> b2 = test::random_uniform(h2, seed + 6, -0.5f, 0.5f);
      std::vector<float> w3 = test::random_uniform(static_cast<size_t>(out) * h2, seed + 7, -1.0f, 1.0f);
      std::vector<float> b3 = test::random_uniform(out, seed + 8, -0.5f, 0.5f);
      std::vector<float> x = test::random_normal(static_cast<size_t>(rows) * xw, seed + 9);
      const std::vector<int> cls = random_classes(rows, nc, seed + 10);
      // CPU: rows [x ; one_hot(cls[r / 1])].
      const int K0 = xw + nc;
      std::vector<float> in(static_cast<size_t>(rows) * K0);
      for (int i = 0; i < rows; ++i)
        for (int k = 0; k < K0; ++k)
          in[static_cast<size_t>(i) * K0 + k] = k < xw ? x[static_cast<size_t>(i) * xw + k] : (k - xw == cls[i] ? 1.0f : 0.0f);
      std::vector<float> a1(static_cast<size_t>(rows) * h1), a2(static_cast<size_t>(rows) * h2),
          ref(static_cast<size_t>(rows) * out);
      const cpu::PackedGemm p1 = cpu::gemm_pack(w1.data(), h1, K0, b1.data());
      const cpu::PackedGemm p2 = cpu::gemm_pack(w2.data(), h2, h1, b2.data());
      const cpu::PackedGemm p3 = cpu::gemm_pack(w3.data(), out, h2, b3.data());
      cpu::gemm(p1, in.data(), K0, rows, a1.data(), h1, cpu::Act::kNone);
      cpu::layernorm_rows(a1.data(), rows, h1, h1, g1.data(), be1.data(), cpu::Act::kLrelu);
      cpu::gemm(p2, a1.data(), h1, rows, a2.data(), h2, cpu::Act::kLrelu);
      cpu::gemm(p3, a2.data(), h2, rows, ref.data(), out, cpu::Act::kNone);
      for (int i = 0; i < rows; ++i)
        for (int o = out / 2; o < out; ++o) {
          float &v = ref[static_cast<size_t>(i) * out + o];
          v = std::min(5.0f, std::max(-5.0f, v));
        }
      // Device: transposed weights.
      auto transposed = [](const std::vector<float> &w, int o, int i) {
        std::vector<float> t(w.size());
        for (int a = 0; a < o; ++a)
          for (int b = 0; b < i; ++b) t[static_cast<size_t>(b) * o + a] = w[static_cast<size_t>(a) * i + b];
        return t;
      };
      DevArray<float> dw1(transposed(w1, h1, K0)), db1(b1), dg1(g1), dbe1(be1);
      DevArray<float> dw2(transposed(w2, h2, h1)), db2(b2), dw3(transposed(w3, out, h2)), db3(b3);
      DevArray<float> dx(x), dy(static_cast<size_t>(rows) * out);
      DevArray<int> dcls(cls);
      cuda::RowMlp m;
      cuda::RowLayer l1;
      l1.wt = dw1.get();
      l1.b = db1.get();
      l1.ln_g = dg1.get();
      l1.ln_b = dbe1.get();
      l1.in = K0;
      l1.out = h1;
      l1.lrelu = true;
      m.add(l1);
      cuda::RowLayer l2;
      l2.wt = dw2.get();
      l2.b = db2.get();
      l2.in = h1;
      l2.out = h2;
      l2.lrelu = true;
      m.add(l2);
      cuda::RowLayer l3;
      l3.wt = dw3.get();
      l3.b = db3.get();
      l3.in = h2;
      l3.out = out;
      l3.clamp_from = out / 2;
      m.add(l3);
      cuda::RowInput ri;
      ri.x = dx.get();
      ri.ldx = ri.x_width = xw;
      ri.cls = nc ? dcls.get() : nullptr;
      ri.n_conds = nc;
      cuda::row_mlp_launch(m, ri, rows, dy.get(), out, nullptr);
      const std::vector<float> y = dy.host();
      EXPECT_LE(rel_l2(y, ref), kTolF32);
      // A device count below rows (a bucketed graph): the live rows only, nothing past them.
      const int live = (rows + 1) / 2;
      DevArray<int> dcount(std::vector<int>{live});
      DevArray<float> dy2(static_cast<size_t>(rows) * out);
      ri.count = dcount.get();
      cuda::row_mlp_launch(m, ri, rows, dy2.get(), out, nullptr);
      const std::vector<float> y2 = dy2.host();
      EXPECT_LE(rel_l2(y2.data(), ref.data(), static_cast<size_t>(live) * out), kTolF32);
      for (size_t i = static_cast<size_t>(live) * out; i < y2.size(); ++i)
        ASSERT_TRUE(std::isnan(y2[i])) << "row " << i / out << " past the count " << live;
    }
  }
}

// The recurrence over whole sequences (rnn.cu) against cpu::rnn_forward, V voices with
// their own inputs, GRU and LSTM, h 37 (one partial warp) and 300 (threads loop units).
TEST(CudaLatent, RnnSequenceMatchesCpuRnn) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (const RnnType type : {RnnType::kGru, RnnType::kLstm}) {
    for (const int H : {37, 300}) {
      for (const bool constant : {true, false}) {
        SCOPED_TRACE(std::string(type == RnnType::kGru ? "GRU" : "LSTM") + " H " + std::to_string(H) +
                     (constant ? " constant input" : " per-step input"));
        const int in = 13, steps = 9, V = H > 256 ? 3 : 11;
        const int ng = type == RnnType::kGru ? 3 : 4, G = ng * H;
        std::vector<float> wih = test::random_uniform(static_cast<size_t>(G) * in, seed + 1, -0.3f, 0.3f);
        std::vector<float> whh = test::random_uniform(static_cast<size_t>(G) * H, seed + 2, -1.0f, 1.0f);
        for (float &v : whh) v /= std::sqrt(static_cast<float>(H));
        std::vector<float> bih = test::random_uniform(G, seed + 3, -0.5f, 0.5f);
        std::vector<float> bhh = test::random_uniform(G, seed + 4, -0.5f, 0.5f);
        RnnLayer layer;
        layer.w_ih = wih.data();
        layer.w_hh = whh.data();
        layer.b_ih = bih.data();
        layer.b_hh = bhh.data();
        layer.in = in;
        layer.hidden = H;
        const cpu::PackedRnn pr = cpu::rnn_pack(layer, type);
        const int rows = constant ? 1 : steps;
        std::vector<float> x = test::random_normal(static_cast<size_t>(V) * rows * in, seed + 5);
        // Input projections for the device (the kernel's input), from the same GEMM the
        // CPU uses.
        std::vector<float> gi(static_cast<size_t>(V) * rows * G);
        cpu::gemm(pr.ih, x.data(), in, V * rows, gi.data(), G, cpu::Act::kNone);
        std::vector<float> out_ref(static_cast<size_t>(V) * steps * H), hf_ref(static_cast<size_t>(V) * H);
        std::vector<float> scratch(cpu::rnn_scratch_floats(pr, steps));
        for (int v = 0; v < V; ++v)
          cpu::rnn_forward(pr, x.data() + static_cast<size_t>(v) * rows * in, in, constant, steps,
                           out_ref.data() + static_cast<size_t>(v) * steps * H, H,
                           hf_ref.data() + static_cast<size_t>(v) * H, scratch.data());
        std::vector<float> whh_t(static_cast<size_t>(H) * G);
        for (int r = 0; r < G; ++r)
          for (int k = 0; k < H; ++k) whh_t[static_cast<size_t>(k) * G + r] = whh[static_cast<size_t>(r) * H + k];
        DevArray<float> dwhh(whh_t), dbhh(bhh), dgi(gi);
        DevArray<float> dout(out_ref.size()), dhf(hf_ref.size());
        cuda::RnnDevice L;
        L.whh_t = dwhh.get();
        L.b_hh = dbhh.get();
        L.in = in;
        L.hidden = H;
        L.gru = type == RnnType::kGru;
        cuda::rnn_sequence_launch(L, dgi.get(), static_cast<size_t>(rows) * G, constant ? 0 : G,
                                  steps, V, dout.get(), static_cast<size_t>(steps) * H, H,
                                  dhf.get(), nullptr);
        EXPECT_LE(rel_l2(dout.host(), out_ref), kTolF32) << "outputs";
        EXPECT_LE(rel_l2(dhf.host(), hf_ref), kTolF32) << "final state";
      }
    }
  }
}

// latent_decode and latent_encode batched over 11 voices of 21 steps (the kernels
// directly) against the CPU's LatentModel, voice by voice.
TEST(CudaLatent, BatchedStagesMatchCpuLatentModel) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  for (const Shape &s : kShapes) {
    SCOPED_TRACE(trace(s, seed));
    const int n = 21, V = 11;
    RandomLatent r(s.z, s.e, s.h, s.n_linears, s.n_rnn, s.rnn, s.n_conds, n, seed);
    const cuda::LatentDevice d(r.w);
    const cpu::LatentModel cpu_model(r.w);
    std::vector<float> scratch(cpu_model.scratch_floats(n));
    const std::vector<float> e = test::random_normal(static_cast<size_t>(V) * s.e, seed + 11);
    const std::vector<int> cls = random_classes(V, s.n_conds, seed + 12);
    std::vector<float> z_ref(static_cast<size_t>(V) * n * s.z);
    for (int v = 0; v < V; ++v)
      cpu_model.decode(e.data() + static_cast<size_t>(v) * s.e, cls[v], n,
                       z_ref.data() + static_cast<size_t>(v) * n * s.z, scratch.data());
    DevArray<float> de(e), dz(z_ref.size());
    DevArray<int> dcls(cls);
    DevArray<float> work(cuda::latent_decode_work_floats(d, V, n));
    cuda::latent_decode_launch(d, de.get(), dcls.get(), V, n, dz.get(), work.get(), nullptr);
    const std::vector<float> z = dz.host();
    EXPECT_LE(rel_l2(z, z_ref), kTolF32) << "latent_decode";
    // latent_encode of fresh series.
    const std::vector<float> zs = test::random_normal(static_cast<size_t>(V) * n * s.z, seed + 13);
    std::vector<float> e_ref(static_cast<size_t>(V) * 2 * s.e);
    for (int v = 0; v < V; ++v)
      cpu_model.encode(zs.data() + static_cast<size_t>(v) * n * s.z, n,
                       e_ref.data() + static_cast<size_t>(v) * 2 * s.e,
                       e_ref.data() + static_cast<size_t>(v) * 2 * s.e + s.e, scratch.data());
    size_t clamped = 0;
    for (int v = 0; v < V; ++v)
      for (int k = 0; k < s.e; ++k) clamped += std::fabs(e_ref[static_cast<size_t>(v) * 2 * s.e + s.e + k]) == 5.0f;
    DevArray<float> dzs(zs), deo(e_ref.size());
    DevArray<float> work_e(cuda::latent_encode_work_floats(d, V, n));
    cuda::latent_encode_launch(d, dzs.get(), V, n, deo.get(), work_e.get(), nullptr);
    EXPECT_LE(rel_l2(deo.host(), e_ref), kTolF32) << "latent_encode (" << clamped << " logvar values clamped)";
  }
}

namespace {

// A CPU and a CUDA backend of one random model (decoder + sequence VAE of the same z_dim).
struct LatentPair {
  test::RandomDecoder dec;
  RandomLatent lat;
  std::unique_ptr<Backend> cpu, gpu;
  LatentPair(const Shape &s, uint32_t seed, cuda::BackendOptions opt = {})
      : dec(s.z, 40, 2, 256, 9, seed), lat(s.z, s.e, s.h, s.n_linears, s.n_rnn, s.rnn, s.n_conds, 8, seed + 100) {
    dec.w.cfg.n_grains = 8;
    cpu = cpu::make_cpu_backend(dec.w, &lat.w);
    gpu = cuda::make_backend(dec.w, 0, opt, &lat.w);
  }
};

// B grains of decode_grains with random keys, grain indices below max_g and first/last
// windows one time in `one_in`.
std::vector<GrainSpec> random_grain_specs(std::mt19937 &rng, int B, int n_sequences, int max_g,
                                          int one_in) {
  std::vector<GrainSpec> spec(B);
  for (GrainSpec &g : spec) {
    g.key.seed = (static_cast<uint64_t>(rng()) << 32) | rng();
    g.key.sequence = rng() % n_sequences;
    g.g = static_cast<int>(rng() % max_g);
    g.first = rng() % one_in == 0;
    g.last = rng() % one_in == 0;
  }
  return spec;
}

}  // namespace

// The session's latent_decode, latent_encode and sample on the CUDA backend against the
// CPU backend (sample: z stays on the device; the graph is re-used with new inputs and
// keys, and re-captured for a new size); with and without graphs.
TEST(CudaLatent, SessionStagesMatchCpuBackend) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  for (const Shape &s : kShapes) {
    for (const bool graphs : {true, false}) {
      SCOPED_TRACE(trace(s, seed) + (graphs ? " graphs" : " no graphs"));
      LatentPair p(s, seed, cuda::BackendOptions{false, graphs});
      ASSERT_TRUE(p.gpu->has_latent());
      const int max_grains = 13;
      auto cs = p.cpu->create_session(max_grains, 1);
      auto gs = p.gpu->create_session(max_grains, 2);
      const WaveformConfig &c = p.dec.w.cfg;
      int round = 0;
      for (const int n : {8, 8, 13, 1, 8}) {
        SCOPED_TRACE("n " + std::to_string(n));
        ++round;
        const std::vector<float> e = test::random_normal(s.e, seed + 31 * round);
        const int cls = s.n_conds ? round % s.n_conds : -1;
        std::vector<float> z = poisoned(static_cast<size_t>(n) * s.z), z_ref = z;
        gs->latent_decode(e.data(), cls, n, z.data());
        cs->latent_decode(e.data(), cls, n, z_ref.data());
        EXPECT_LE(rel_l2(z, z_ref), kTolF32) << "latent_decode";
        std::vector<float> em = poisoned(s.e), el = poisoned(s.e), em_ref = em, el_ref = el;
        gs->latent_encode(z_ref.data(), n, em.data(), el.data());
        cs->latent_encode(z_ref.data(), n, em_ref.data(), el_ref.data());
        EXPECT_LE(rel_l2(em, em_ref), kTolF32) << "e_mu";
        EXPECT_LE(rel_l2(el, el_ref), kTolF32) << "e_logvar";
        std::vector<float> only_mu = poisoned(s.e);
        gs->latent_encode(z_ref.data(), n, only_mu.data(), nullptr);
        EXPECT_LE(rel_l2(only_mu, em_ref), kTolF32) << "e_mu alone";
        const NoiseKey key{seed * 0x9E3779B97F4A7C15ull + round, static_cast<uint32_t>(round)};
        const size_t len = static_cast<size_t>(n + 3) * c.hop;
        std::vector<float> a = poisoned(len), a_ref = a;
        gs->sample(e.data(), cls, n, key, a.data());
        cs->sample(e.data(), cls, n, key, a_ref.data());
        EXPECT_LE(rel_l2(a, a_ref), kTolF32) << "sample";
      }
      // Bad requests: one clear error each, nothing written.
      std::vector<float> e(s.e, 0.1f), z = poisoned(static_cast<size_t>(14) * s.z);
      try {
        gs->latent_decode(e.data(), -1, 14, z.data());
        ADD_FAILURE() << "no error for 14 grains in a session of 13";
      } catch (const Error &err) {
        EXPECT_EQ(err.status(), NGS_STATUS_CAPACITY) << err.what();
      }
      EXPECT_EQ(test::count_nonfinite(z), z.size());
      std::vector<float> audio = poisoned(static_cast<size_t>(4 + 3) * c.hop);
      try {
        gs->sample(e.data(), s.n_conds + 1, 4, NoiseKey{}, audio.data());
        ADD_FAILURE() << "no error for a class past n_conds";
      } catch (const Error &err) {
        EXPECT_EQ(err.status(), NGS_STATUS_INVALID_ARGUMENT) << err.what();
      }
      EXPECT_EQ(test::count_nonfinite(audio), audio.size());
      EXPECT_THROW(gs->latent_encode(nullptr, 4, e.data(), nullptr), Error);
    }
  }
}

// rnn_step of B voices equals latent_decode rows: voices started at different hops, stepped
// in batches of changing size and order (every bucket, graphs re-used), each voice's k-th
// step against row k of the CPU backend's (and the CUDA session's) latent_decode.
TEST(CudaLatent, RnnStepMatchesLatentDecodeRows) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  for (const Shape &s : kShapes) {
    for (const bool graphs : {true, false}) {
      SCOPED_TRACE(trace(s, seed) + (graphs ? " graphs" : " no graphs"));
      LatentPair p(s, seed, cuda::BackendOptions{false, graphs});
      const int n = 21, max_voices = 13;
      auto cs = p.cpu->create_session(n, 1);
      auto gs = p.gpu->create_session(n, 1);
      gs->rnn_plan(max_voices);
      std::mt19937 rng(seed + 7);
      // Voice v: e_v, class_v; reference rows from the CPU backend's latent_decode.
      std::vector<std::vector<float>> e(max_voices), ref(max_voices), got(max_voices);
      std::vector<int> cls(max_voices);
      for (int v = 0; v < max_voices; ++v) {
        e[v] = test::random_normal(s.e, seed + 1000 + v);
        cls[v] = s.n_conds ? static_cast<int>(rng() % s.n_conds) : -1;
        ref[v] = poisoned(static_cast<size_t>(n) * s.z);
        cs->latent_decode(e[v].data(), cls[v], n, ref[v].data());
      }
      // Slots are a permutation of the voices; voice v starts at hop v % 4.
      std::vector<int> slot_of(max_voices);
      std::iota(slot_of.begin(), slot_of.end(), 0);
      std::shuffle(slot_of.begin(), slot_of.end(), rng);
      std::vector<int> steps(max_voices, 0);
      const int ldz = s.z + 3;
      for (int hop = 0;; ++hop) {
        for (int v = 0; v < max_voices; ++v)
          if (v % 4 == hop) gs->rnn_start(slot_of[v], e[v].data(), cls[v]);
        std::vector<int> live;
        for (int v = 0; v < max_voices; ++v)
          if (v % 4 <= hop && steps[v] < n) live.push_back(v);
        if (live.empty()) break;
        std::shuffle(live.begin(), live.end(), rng);
        // Some hops step only a part of the live voices (the rest wait a hop).
        if (hop % 3 == 1 && live.size() > 2) live.resize(live.size() / 2 + 1);
        std::vector<int> slots;
        for (int v : live) slots.push_back(slot_of[v]);
        const int B = static_cast<int>(slots.size());
        std::vector<float> z = poisoned(static_cast<size_t>(B) * ldz);
        gs->rnn_step(slots.data(), B, z.data(), ldz);
        for (int b = 0; b < B; ++b) {
          const int v = live[b];
          got[v].insert(got[v].end(), z.begin() + static_cast<size_t>(b) * ldz,
                        z.begin() + static_cast<size_t>(b) * ldz + s.z);
          for (int k = s.z; k < ldz; ++k)  // the row padding is not written
            EXPECT_TRUE(std::isnan(z[static_cast<size_t>(b) * ldz + k]));
          ++steps[v];
        }
      }
      for (int v = 0; v < max_voices; ++v)
        EXPECT_LE(rel_l2(got[v], ref[v]), kTolF32) << "voice " << v << " class " << cls[v];
      // A voice restarted in its slot starts over.
      gs->rnn_start(slot_of[0], e[1].data(), cls[1]);
      std::vector<float> z0 = poisoned(s.z);
      gs->rnn_step(&slot_of[0], 1, z0.data(), s.z);
      EXPECT_LE(rel_l2(z0.data(), ref[1].data(), s.z), kTolF32) << "restarted voice";
      // Bad requests.
      std::vector<float> z(static_cast<size_t>(max_voices + 1) * s.z);
      const int twice[2] = {slot_of[2], slot_of[2]};
      EXPECT_THROW(gs->rnn_step(twice, 2, z.data(), s.z), Error);
      const int outside = max_voices;
      EXPECT_THROW(gs->rnn_step(&outside, 1, z.data(), s.z), Error);
      EXPECT_THROW(gs->rnn_start(max_voices, e[0].data(), cls[0]), Error);
      EXPECT_THROW(gs->rnn_start(0, e[0].data(), s.n_conds + 2), Error);
      std::vector<int> many(max_voices + 1, 0);
      try {
        gs->rnn_step(many.data(), max_voices + 1, z.data(), s.z);
        ADD_FAILURE() << "no error for more voices than planned";
      } catch (const Error &err) {
        EXPECT_EQ(err.status(), NGS_STATUS_CAPACITY) << err.what();
      }
      auto fresh = p.gpu->create_session(4, 1);
      EXPECT_THROW(fresh->rnn_step(slot_of.data(), 1, z.data(), s.z), Error);  // no rnn_plan
      fresh->rnn_plan(2);
      const int unstarted = 1;
      EXPECT_THROW(fresh->rnn_step(&unstarted, 1, z.data(), s.z), Error);
    }
  }
}

// More rnn_start calls than slots without a step between them (the staging ring wraps and
// synchronises): each slot steps from its last start.
TEST(CudaLatent, RnnStartsBeyondTheRingKeepTheLastStart) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  for (const Shape &s : {kShapes[0], kShapes[2]}) {
    SCOPED_TRACE(trace(s, seed));
    LatentPair p(s, seed);
    auto cs = p.cpu->create_session(4, 1);
    auto gs = p.gpu->create_session(4, 1);
    gs->rnn_plan(3);
    std::vector<std::vector<float>> e;
    for (int i = 0; i < 8; ++i) e.push_back(test::random_normal(s.e, seed + 50 + i));
    const int cls = s.n_conds ? 1 : -1;
    // Slots in an order unlike the ring rows (0 1 2 0 1 2 0 1).
    const int start_slot[8] = {2, 0, 1, 1, 2, 0, 2, 1};
    for (int i = 0; i < 8; ++i) gs->rnn_start(start_slot[i], e[i].data(), cls);
    const int slots[3] = {2, 0, 1};
    const int last[3] = {6, 5, 7};  // the last start of each of those slots
    std::vector<std::vector<float>> ref(3), got(3);
    for (int b = 0; b < 3; ++b) {
      ref[b] = poisoned(static_cast<size_t>(4) * s.z);
      cs->latent_decode(e[last[b]].data(), cls, 4, ref[b].data());
    }
    for (int t = 0; t < 4; ++t) {
      std::vector<float> z = poisoned(static_cast<size_t>(3) * s.z);
      gs->rnn_step(slots, 3, z.data(), s.z);
      for (int b = 0; b < 3; ++b)
        got[b].insert(got[b].end(), z.begin() + static_cast<size_t>(b) * s.z,
                      z.begin() + static_cast<size_t>(b + 1) * s.z);
    }
    for (int b = 0; b < 3; ++b) EXPECT_LE(rel_l2(got[b], ref[b]), kTolF32) << "slot " << slots[b];
  }
}

// decode_grains: B independent grains with their own keys, indices and windows, against the
// CPU backend's decode_grains; batch sizes across buckets, graphs re-used.
TEST(CudaLatent, DecodeGrainsMatchesCpu) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  test::RandomDecoder d(16, 40, 2, 256, 9, seed);
  const WaveformConfig &c = d.w.cfg;
  for (const bool graphs : {true, false}) {
    SCOPED_TRACE(graphs ? "graphs" : "no graphs");
    auto cpu_b = cpu::make_cpu_backend(d.w);
    auto gpu_b = cuda::make_backend(d.w, 0, cuda::BackendOptions{false, graphs});
    const int max_grains = 12;
    auto cs = cpu_b->create_session(max_grains, 1);
    auto gs = gpu_b->create_session(max_grains, 1);
    std::mt19937 rng(seed + 3);
    int round = 0;
    for (const int B : {7, 1, 12, 5, 7, 3}) {
      SCOPED_TRACE("B " + std::to_string(B));
      ++round;
      const std::vector<float> z = test::random_normal(static_cast<size_t>(B) * c.z_dim, seed + 17 * round);
      const std::vector<GrainSpec> spec = random_grain_specs(rng, B, 5, 100, 3);
      std::vector<float> y = poisoned(static_cast<size_t>(B) * c.l_grain), y_ref = y;
      gs->decode_grains(z.data(), B, spec.data(), y.data());
      cs->decode_grains(z.data(), B, spec.data(), y_ref.data());
      EXPECT_LE(rel_l2(y, y_ref), kTolF32);
    }
    std::vector<float> z(13 * 16), y(13 * 256);
    std::vector<GrainSpec> spec(13);
    EXPECT_THROW(gs->decode_grains(z.data(), 13, spec.data(), y.data()), Error);
    EXPECT_THROW(gs->decode_grains(z.data(), 2, nullptr, y.data()), Error);
  }
}

// The number of batch-size buckets of a session planned for max (1, 2, 4, ..., max).
static int bucket_count(int max) {
  int n = 1;
  for (int r = 1; r < max; r *= 2) ++n;
  return n;
}

// Batch sizes that wander the way a synth's voice count does (non-bucket sizes 3, 5, 41,
// 300 among them): rnn_step and decode_grains of every one equal the CPU backend within
// 1e-5, padded rows of a bucket are not computed (the device count), and no call after the
// planning captures a graph: at most one capture per bucket in all (ngs_emu::capture_count).
TEST(CudaLatent, WanderingBatchSizesReplayOneGraphPerBucket) {
  NGS_REQUIRE_CUDA_DEVICE();
  const uint32_t seed = test::fresh_seed();
  const int max_voices = 300, n = 5;
  const int sizes[] = {1, 3, 5, 41, 300, 2, 17, 129, 257, 7, 64, 255, 256, 33, 9, 100, 4, 63};
  for (const Shape &s : {kShapes[1], kShapes[2]}) {
    SCOPED_TRACE(trace(s, seed));
    LatentPair p(s, seed);
    auto cs = p.cpu->create_session(max_voices, 1);
    auto gs = p.gpu->create_session(max_voices, 1);
#ifdef NGS_CUDA_EMULATION
    const long before = ngs_emu::capture_count();
#endif
    gs->rnn_plan(max_voices);
#ifdef NGS_CUDA_EMULATION
    const long planned = ngs_emu::capture_count();
    // rnn_plan: the step's buckets and decode_grains' (min(max_voices, max_grains)).
    EXPECT_LE(planned - before, 2 * bucket_count(max_voices));
#endif
    std::mt19937 rng(seed + 5);
    std::vector<std::vector<float>> e(max_voices), ref(max_voices), got(max_voices);
    std::vector<int> cls = random_classes(max_voices, s.n_conds, seed + 6);
    for (int v = 0; v < max_voices; ++v) {
      e[v] = test::random_normal(s.e, seed + 2000 + v);
      ref[v] = poisoned(static_cast<size_t>(n) * s.z);
      cs->latent_decode(e[v].data(), cls[v], n, ref[v].data());
      gs->rnn_start(v, e[v].data(), cls[v]);
    }
    // Each hop steps every voice once, in batches of the wandering sizes (shuffled slots).
    size_t next = 0;
    std::vector<int> used_sizes;
    for (int hop = 0; hop < n; ++hop) {
      std::vector<int> order(max_voices);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      for (int at = 0; at < max_voices;) {
        const int B = std::min(sizes[next++ % (sizeof(sizes) / sizeof(sizes[0]))], max_voices - at);
        used_sizes.push_back(B);
        std::vector<float> z = poisoned(static_cast<size_t>(B) * s.z);
        gs->rnn_step(order.data() + at, B, z.data(), s.z);
        for (int b = 0; b < B; ++b)
          got[order[at + b]].insert(got[order[at + b]].end(), z.begin() + static_cast<size_t>(b) * s.z,
                                    z.begin() + static_cast<size_t>(b + 1) * s.z);
        at += B;
      }
    }
    for (int v = 0; v < max_voices; ++v)
      ASSERT_LE(rel_l2(got[v], ref[v]), kTolF32) << "voice " << v;
    // decode_grains of the same sizes (own keys, indices and windows per grain).
    const WaveformConfig &c = p.dec.w.cfg;
    for (const int B : sizes) {
      SCOPED_TRACE("decode_grains B " + std::to_string(B));
      const std::vector<float> z = test::random_normal(static_cast<size_t>(B) * c.z_dim, seed + 31 * B);
      const std::vector<GrainSpec> spec = random_grain_specs(rng, B, 7, 1000, 4);
      std::vector<float> y = poisoned(static_cast<size_t>(B) * c.l_grain), y_ref = y;
      gs->decode_grains(z.data(), B, spec.data(), y.data());
      cs->decode_grains(z.data(), B, spec.data(), y_ref.data());
      ASSERT_LE(rel_l2(y, y_ref), kTolF32);
    }
#ifdef NGS_CUDA_EMULATION
    EXPECT_EQ(ngs_emu::capture_count(), planned) << "a step or decode_grains captured";
#endif
  }
  // A model without a sequence VAE: decode_grains plans its buckets at the first call.
  test::RandomDecoder d(12, 40, 2, 128, 9, seed);
  auto cpu_b = cpu::make_cpu_backend(d.w);
  auto gpu_b = cuda::make_backend(d.w, 0, {});
  auto cs = cpu_b->create_session(max_voices, 1);
  auto gs = gpu_b->create_session(max_voices, 1);
#ifdef NGS_CUDA_EMULATION
  const long before = ngs_emu::capture_count();
#endif
  std::mt19937 rng(seed + 9);
  for (const int B : sizes) {
    SCOPED_TRACE("decode_grains (no sequence VAE) B " + std::to_string(B));
    const std::vector<float> z = test::random_normal(static_cast<size_t>(B) * 12, seed + 7 * B);
    const std::vector<GrainSpec> spec = random_grain_specs(rng, B, 3, 50, 4);
    std::vector<float> y = poisoned(static_cast<size_t>(B) * 128), y_ref = y;
    gs->decode_grains(z.data(), B, spec.data(), y.data());
    cs->decode_grains(z.data(), B, spec.data(), y_ref.data());
    ASSERT_LE(rel_l2(y, y_ref), kTolF32);
  }
#ifdef NGS_CUDA_EMULATION
  EXPECT_LE(ngs_emu::capture_count() - before, bucket_count(max_voices));
#endif
}

// The golden fixtures and the bundled (fp16) drum model: latent_decode, latent_encode and
// sample on the CUDA backend against the CPU backend and the goldens.
TEST(CudaLatent, FixturesAndDrumModelMatchCpu) {
  NGS_REQUIRE_CUDA_DEVICE();
  std::vector<std::string> paths;
  for (const std::string &name : test::fixture_configs())
    paths.push_back(test::fixture_path(name, "model.safetensors"));
  const std::string drums = std::string(NGS_SOURCE_DIR) + "/models/drums.safetensors";
  if (test::file_exists(drums)) paths.push_back(drums);
  if (paths.empty()) GTEST_SKIP() << "skipped: no fixtures and no bundled model";
  const uint32_t seed = test::fresh_seed();
  int with_latent = 0;
  for (const std::string &path : paths) {
    SCOPED_TRACE(path + " seed " + std::to_string(seed));
    const auto model = load_model_file(path);
    if (!model->has_latent) continue;
    ++with_latent;
    const LatentConfig &lc = model->latent.cfg;
    const WaveformConfig &c = model->waveform.cfg;
    auto cpu_b = cpu::make_cpu_backend(model->waveform, &model->latent);
    auto gpu_b = cuda::make_backend(model->waveform, 0, {}, &model->latent);
    const int n = lc.n_grains;
    auto cs = cpu_b->create_session(n, 1);
    auto gs = gpu_b->create_session(n, 1);
    const std::vector<float> e = test::random_normal(lc.e_dim, seed);
    const int cls = lc.n_conds ? static_cast<int>(seed % lc.n_conds) : -1;
    std::vector<float> z = poisoned(static_cast<size_t>(n) * lc.z_dim), z_ref = z;
    gs->latent_decode(e.data(), cls, n, z.data());
    cs->latent_decode(e.data(), cls, n, z_ref.data());
    EXPECT_LE(rel_l2(z, z_ref), kTolF32) << "latent_decode";
    std::vector<float> em = poisoned(lc.e_dim), el = em, em_ref = em, el_ref = em;
    gs->latent_encode(z_ref.data(), n, em.data(), el.data());
    cs->latent_encode(z_ref.data(), n, em_ref.data(), el_ref.data());
    EXPECT_LE(rel_l2(em, em_ref), kTolF32) << "e_mu";
    EXPECT_LE(rel_l2(el, el_ref), kTolF32) << "e_logvar";
    const size_t len = static_cast<size_t>(n + 3) * c.hop;
    std::vector<float> a = poisoned(len), a_ref = a;
    gs->sample(e.data(), cls, n, NoiseKey{seed, 1}, a.data());
    cs->sample(e.data(), cls, n, NoiseKey{seed, 1}, a_ref.data());
    EXPECT_LE(rel_l2(a, a_ref), kTolF32) << "sample";
    const std::string golden = path.substr(0, path.rfind('/')) + "/golden.safetensors";
    if (!test::file_exists(golden)) continue;
    const test::Golden g = test::load_golden(golden);
    if (!g.has("latent.e")) continue;
    const int gcls = std::stoi(g.meta("golden.class_index"));
    const int nl = g.dim("latent.z", 0);
    std::vector<float> zg = poisoned(static_cast<size_t>(nl) * lc.z_dim);
    gs->latent_decode(g.at("latent.e").data(), gcls, nl, zg.data());
    EXPECT_LE(rel_l2(zg, g.at("latent.z")), kTolF32) << "latent.z vs golden";
    std::vector<float> gm = poisoned(lc.e_dim), gl = gm;
    gs->latent_encode(g.at("latent.z").data(), nl, gm.data(), gl.data());
    EXPECT_LE(rel_l2(gm, g.at("latent.e_mu")), kTolF32) << "e_mu vs golden";
    EXPECT_LE(rel_l2(gl, g.at("latent.e_logvar")), kTolF32) << "e_logvar vs golden";
  }
  EXPECT_GT(with_latent, 0);
}
