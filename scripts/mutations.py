"""The injected bugs of scripts/mutation_check.sh (docs/TESTING.md "Mutation check").

Each entry: name; file (relative to the repository root); old -> new, an exact text
replacement that must occur exactly once in the file (the driver refuses a mutation that
no longer applies, so this list cannot silently rot); checks, the test subset that must
fail (shell commands run from the scratch copy's root after rebuilding; {ctest} is
`ctest --test-dir build --output-on-failure`, {ctest_tsan} the same in the scratch copy's
ThreadSanitizer build, made only when a selected mutation uses it; {py} the Python); why: what the bug is and
which test is meant to catch it; owner: "tests" where the catching test is on this
branch, otherwise the branch whose test catches it (expected after merge); needs: a CPU
flag without which the mutated code never runs here (the mutation is then skipped);
contrast: commands reported for information only (the fp16 goldens alone, to show why
semantic checks stay on fp32).
"""

MUTATIONS = [
    # ---------------------------------------------------------- issue 16's six survivors
    dict(name="path-tail",
         file="engine/src/paths.cpp",
         old="""  double aa_d = 0.0, pa_d = 0.0;
  for (int j = 0; j < nb; ++j) {""",
         new="""  double aa_d = 0.0, pa_d = 0.0;
  for (int j = 0; j < zd / 4; ++j) {""",
         checks=["build/tests/test_pipeline_golden --gtest_filter='*Paths*'"],
         why="circle/spiral dot products ignore the last partial block of 4; caught by the "
             "'odd' fixture (z_dim 6) in Golden_.Paths",
         owner="tests"),
    dict(name="converter-allowlist-torch-submodules",
         file="weights_converter/lightning.py",
         old="""        g = ALLOWED_GLOBALS.get((module, name))
        if g is not None:
            return g
""",
         new="""        g = ALLOWED_GLOBALS.get((module, name))
        if g is not None:
            return g
        if module.startswith("torch."):  # the injected bug
            return getattr(__import__("importlib").import_module(module), name)
""",
         checks=["{py} -m pytest -q -p no:cacheprovider tests/python/test_converter.py "
                 "tests/python/test_converter_reader.py"],
         why="the unpickler resolves any torch.<submodule> global outside the allow-list "
             "(code execution); normal checkpoints still load",
         owner="converter"),
    dict(name="converter-shape-numel-only",
         file="weights_converter/convert.py",
         old="""        if tuple(v.shape) != tuple(shape):""",
         new="""        if int(np.prod(v.shape)) != int(np.prod(shape)):""",
         checks=["{py} -m pytest -q -p no:cacheprovider tests/python/test_converter.py "
                 "tests/python/test_converter_inputs.py"],
         why="the converter's shape check compares element counts only (a transposed "
             "weight passes)",
         owner="converter"),
    dict(name="bindings-seed-bound-2^63",
         file="bindings/python/ngs/__init__.py",
         old="""    return _int(v, name, 0, (1 << 64) - 1)""",
         new="""    return _int(v, name, 0, (1 << 63) - 1)""",
         checks=["{py} -m pytest -q -p no:cacheprovider tests/python/test_bindings.py"],
         why="the bindings refuse seeds >= 2^63 (the C API takes any uint64)",
         owner="bindings"),
    dict(name="cli-loop-ignores-seed",
         file="apps/ngs/commands.cpp",
         old="""  lp.seed = o.seed;
  lp.temperature = o.temperature;""",
         new="""  lp.seed = 0;
  lp.temperature = o.temperature;""",
         checks=["{ctest} -L cli"],
         why="`ngs loop` ignores --seed",
         owner="cli"),
    dict(name="decoder-threads-share-scratch-row",
         file="kernels/cpu/backend.cpp",
         old="""decoder_mlp_spectrum(S, m, F, S, s.per_[part].row.data());""",
         new="""decoder_mlp_spectrum(S, m, F, S, s.per_[0].row.data());""",
         checks=["{ctest} -L threads", "{ctest_tsan} -L threads"],
         why="every part of the threaded decoder uses part 0's scratch row (a race): "
             "CpuThreadedStages.DecoderSessionsSplitAndMatchOneThread and the Threads.* "
             "tests (sizes that split the spectrum stage; under TSan in scripts/test.sh)",
         owner="tests"),
    # ---------------------------------------------------------- weak tests named in issue 16
    dict(name="gemm-avx2-2-row-tail",
         file="kernels/cpu/gemm_simd.cpp",
         old="""    case 2: k256<2>(t, b, bias, y, ncols); break;""",
         new="""    case 2: k256<1>(t, b, bias, y, ncols); break;""",
         checks=["build/tests/test_cpu_ops --gtest_filter='CpuGemm.*'"],
         why="the AVX2 microkernel's 2-row tail computes one row: CpuGemm.EveryRowTailOnEveryIsa",
         owner="tests", needs="avx2"),
    dict(name="gemm-avx512-10-row-tail",
         file="kernels/cpu/gemm_simd.cpp",
         old="""    case 10: k512<10, TWO>(t); break;""",
         new="""    case 10: k512<9, TWO>(t); break;""",
         checks=["build/tests/test_cpu_ops --gtest_filter='CpuGemm.*'"],
         why="the AVX-512 microkernel's 10-row tail computes 9 rows",
         owner="tests", needs="avx512f"),
    dict(name="gemm-avx512-6-row-tail",
         file="kernels/cpu/gemm_simd.cpp",
         old="""    case 6: k512<6, TWO>(t); break;""",
         new="""    case 6: k512<5, TWO>(t); break;""",
         checks=["build/tests/test_cpu_ops --gtest_filter='CpuGemm.*'"],
         why="the AVX-512 microkernel's 6-row tail computes 5 rows",
         owner="tests", needs="avx512f"),
    dict(name="layernorm-eps",
         file="kernels/cpu/ops.cpp",
         old="""const float inv = 1.0f / std::sqrt(var + 1e-5f);""",
         new="""const float inv = 1.0f / std::sqrt(var + 1.1e-5f);""",
         checks=["build/tests/test_cpu_ops --gtest_filter='CpuLayerNorm.*'"],
         why="LayerNorm eps 10 % off: CpuLayerNorm.LowVarianceRowsUseEps (rows with "
             "variance below eps)",
         owner="tests"),
    # Semantic bugs of ~1e-3 relative size or less: inside the fp16 bound (5e-3), so only the
    # fp32 goldens (1e-5) see them; `contrast` runs the fp16 goldens alone and reports
    # whether they would have caught it (they are not expected to).
    dict(name="fp16-semantic-hann-symmetric",
         file="kernels/cpu/noise_filter.cpp",
         old="""std::cos(2.0 * pi * i / l_grain)""",
         new="""std::cos(2.0 * pi * i / (l_grain - 1))""",
         checks=["build/tests/test_pipeline_golden --gtest_filter='*fp32*'"],
         why="a symmetric instead of a periodic Hann window: fp32 goldens only",
         contrast=["build/tests/test_pipeline_golden --gtest_filter='*fp16*'"],
         owner="tests"),
    dict(name="fp16-semantic-lrelu-slope-avx512",
         file="kernels/cpu/gemm_simd.cpp",
         old="""  const __m512 slope = _mm512_set1_ps(0.2f);
#pragma GCC unroll 12""",
         new="""  const __m512 slope = _mm512_set1_ps(0.201f);
#pragma GCC unroll 12""",
         checks=["build/tests/test_pipeline_golden --gtest_filter='*fp32*'"],
         why="LeakyReLU slope 0.201 in the AVX-512 GEMM epilogue",
         contrast=["build/tests/test_pipeline_golden --gtest_filter='*fp16*'"],
         owner="tests", needs="avx512f"),
    dict(name="fp16-semantic-mod-sigmoid-floor",
         file="kernels/cpu/decoder_simd.inc",
         old="""splat(2.0f) * vexp(splat(-ln10) * sp) + splat(1e-7f)""",
         new="""splat(2.0f) * vexp(splat(-ln10) * sp) + splat(1e-4f)""",
         checks=["build/tests/test_pipeline_golden --gtest_filter='*fp32*'"],
         why="mod_sigmoid's floor 1e-4 instead of 1e-7 on the SIMD paths",
         contrast=["build/tests/test_pipeline_golden --gtest_filter='*fp16*'"],
         owner="tests"),
    dict(name="fp16-semantic-resynth-fade",
         file="engine/src/pipelines.cpp",
         old="""const float w = (static_cast<float>(i) + 0.5f) / static_cast<float>(X);""",
         new="""const float w = static_cast<float>(i) / static_cast<float>(X);""",
         checks=["build/tests/test_pipeline_golden --gtest_filter='*fp32*'"],
         contrast=["build/tests/test_pipeline_golden --gtest_filter='*fp16*'"],
         why="resynthesis crossfade gains i / X instead of (i + 0.5) / X (1e-3 rel L2)",
         owner="tests"),
    dict(name="loader-accepts-non-finite-weights",
         file="engine/src/model_file.cpp",
         old="""      if (!std::isfinite(p[i]))""",
         new="""      if (!std::isfinite(p[i]) && false)""",
         checks=["build/tests/test_api_loader --gtest_filter='Loader.FuzzedBytesAnywhere'"],
         why="the loader no longer refuses Inf/NaN weights: the whole-file fuzz test (its "
             "Inf/NaN weight mutations; Loader.NonFiniteWeightsRefused catches it too)",
         owner="tests"),
    # ---------------------------------------------------------- the oracle
    dict(name="oracle-mod-sigmoid-floor",
         file="weights_converter/reference/model.py",
         old="""    return 2 * torch.sigmoid(x) ** (math.log(10)) + 1e-7""",
         new="""    return 2 * torch.sigmoid(x) ** (math.log(10)) + 1e-6""",
         checks=["{py} -m pytest -q -p no:cacheprovider tests/python/test_reference.py"],
         why="the PyTorch oracle drifts (fused and plain decode share mod_sigmoid): the "
             "closed-form tests of test_reference.py",
         owner="tests"),
]
