// The C API (engine) running on the CUDA backend: decode and sample of every golden
// fixture with NGS_BACKEND_CUDA equal the CPU backend and the golden audio (relative L2
// <= 1e-5). Linked with the emulation build in test_cuda_emu, with the real backend in
// test_cuda_device (skipped without a GPU).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ngs/ngs.h"
#include "test_cuda_util.h"

using ngs::test::kTolF32;
using ngs::test::poisoned;
using ngs::test::rel_l2;

namespace {

struct Handles {
  ngs_model *model = nullptr;
  ngs_context *ctx = nullptr;
  ~Handles() {
    ngs_context_free(ctx);
    ngs_model_free(model);
  }
};

void open(const std::string &path, ngs_backend backend, Handles &h) {
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = backend;
  ASSERT_EQ(ngs_model_init_from_file(path.c_str(), mp, &h.model), NGS_STATUS_OK) << ngs_last_error();
  ASSERT_EQ(ngs_context_init(h.model, ngs_context_default_params(), &h.ctx), NGS_STATUS_OK)
      << ngs_last_error();
}

}  // namespace

TEST(CudaApi, DecodeAndSampleMatchCpuAndGolden) {
  NGS_REQUIRE_CUDA_DEVICE();
  ASSERT_EQ(ngs_backend_probe(NGS_BACKEND_CUDA), NGS_STATUS_OK) << ngs_last_error();
  const std::vector<std::string> configs = ngs::test::fixture_configs();
  if (configs.empty())
    GTEST_SKIP() << "skipped: no golden fixtures under " << ngs::test::fixtures_dir();
  for (const std::string &name : configs) {
    SCOPED_TRACE(name);
    const std::string path = ngs::test::fixture_path(name, "model.safetensors");
    const ngs::test::Golden g = ngs::test::load_golden(ngs::test::fixture_path(name, "golden.safetensors"));
    Handles gpu, cpu;
    open(path, NGS_BACKEND_CUDA, gpu);
    open(path, NGS_BACKEND_CPU, cpu);
    ngs_model_info info;
    ASSERT_EQ(ngs_model_get_info(gpu.model, &info), NGS_STATUS_OK);
    EXPECT_EQ(info.backend, NGS_BACKEND_CUDA);

    ngs_decode_params dp = ngs_decode_default_params();
    dp.seed = std::stoull(g.meta("golden.seed"));
    const int n = g.dim("decode.z", 0);
    const size_t len = ngs_model_audio_length(gpu.model, n);
    std::vector<float> a = poisoned(len), b = poisoned(len);
    ASSERT_EQ(ngs_decode(gpu.ctx, g.at("decode.z").data(), n, dp, a.data(), len), NGS_STATUS_OK)
        << ngs_last_error();
    ASSERT_EQ(ngs_decode(cpu.ctx, g.at("decode.z").data(), n, dp, b.data(), len), NGS_STATUS_OK);
    EXPECT_LE(rel_l2(a, b), kTolF32) << "decode: CUDA vs CPU backend";
    EXPECT_LE(rel_l2(a, g.at("decode.audio")), kTolF32) << "decode: CUDA vs golden";

    if (!info.has_latent_model || !g.has("sample.audio")) continue;
    ngs_sample_params sp = ngs_sample_default_params();
    sp.seed = dp.seed;
    sp.class_index = std::stoi(g.meta("golden.class_index"));
    sp.temperature = std::stof(g.meta("golden.temperature"));
    std::vector<float> sa = poisoned(info.sample_length), sb = poisoned(info.sample_length);
    ASSERT_EQ(ngs_sample(gpu.ctx, sp, sa.data(), sa.size()), NGS_STATUS_OK) << ngs_last_error();
    ASSERT_EQ(ngs_sample(cpu.ctx, sp, sb.data(), sb.size()), NGS_STATUS_OK) << ngs_last_error();
    EXPECT_LE(rel_l2(sa, sb), kTolF32) << "sample: CUDA vs CPU backend";
    EXPECT_LE(rel_l2(sa, g.at("sample.audio")), kTolF32) << "sample: CUDA vs golden";
  }
}
