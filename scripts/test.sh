#!/usr/bin/env bash
# The test command (README "Tests"): installs what is missing, builds and runs every test:
#   1. GCC Release build (build/, Ninja, CUDA when nvcc is found): every C++ test through
#      ctest (the golden fixtures are a ctest fixture): CPU ops and stages, engine and C
#      API against the goldens, CUDA kernels through the emulation build, CLI, installed
#      library;
#   2. clang Release build (build-clang/, the default generator, CUDA off): the same ctest;
#      then the default generator with GCC and CUDA as detected (build-make/): configure
#      and generate only;
#   3. AddressSanitizer + UBSan build (build-asan/): the C++ unit, golden and
#      emulated-kernel tests;
#   4. ThreadSanitizer build (build-tsan/): the thread-safety tests;
#   5. fuzzing (build-fuzz/, clang + libFuzzer): each fuzzer for NGS_FUZZ_SECONDS (30) s;
#   6. Python (pytest): converter, reference oracle, random stream, bindings, bundled model;
#      then the ONNX export test in build/bench-venv (onnxruntime from PyPI; NGS_SKIP_ONNX=1
#      skips it);
#   7. the pip-installable package (scripts/test_wheel.sh): the wheel of bindings/python
#      built (with libngs inside) and installed into a fresh venv, then a smoke test from
#      outside the tree (needs PyPI once; NGS_SKIP_WHEEL=1 skips it).
# Idempotent: a second run rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
PY=/usr/bin/python3
JOBS=${NGS_JOBS:-$(nproc)}
FIXTURES=$PWD/build/fixtures
step() { printf '\n== test.sh: %s\n' "$*"; }
sanitized_build() {  # DIR SANITIZERS
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNGS_SANITIZE="$2" \
    -DNGS_CUDA=OFF -DNGS_BUILD_BENCH=OFF -DNGS_BUILD_APPS=OFF \
    -DNGS_FIXTURES_DIR="$FIXTURES" >/dev/null
}

step "1/7 GCC Release build and tests (build/, Ninja)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"
ctest --test-dir build --output-on-failure -j"$JOBS"

step "2/7 clang Release build and tests (build-clang/, default generator); GCC configure (build-make/)"
CC=clang CXX=clang++ cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release -DNGS_CUDA=OFF \
  -DNGS_BUILD_BENCH=OFF >/dev/null
cmake --build build-clang -j"$JOBS"
ctest --test-dir build-clang --output-on-failure -j"$JOBS"
cmake -S . -B build-make >/dev/null

step "3/7 AddressSanitizer + UBSan (build-asan/)"
sanitized_build build-asan address,undefined
cmake --build build-asan -j"$JOBS"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$JOBS" -LE 'install|threads'

step "4/7 ThreadSanitizer (build-tsan/)"
sanitized_build build-tsan thread
cmake --build build-tsan -j"$JOBS" --target test_pipeline_threads test_cpu_threads test_synth_tsan
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -L threads

step "5/7 fuzzing (build-fuzz/, docs/FUZZING.md)"
./scripts/fuzz.sh "${NGS_FUZZ_SECONDS:-30}"

step "6/7 Python tests"
$PY -m pytest -q -p no:cacheprovider tests/python
# The ONNX export test needs onnxruntime, which Debian lacks: it runs in the benchmark's
# venv (build/bench-venv, made once from PyPI by compare_ort.py; NGS_SKIP_ONNX=1 skips).
if [ "${NGS_SKIP_ONNX:-0}" != 1 ]; then
  $PY bench/compare_ort.py --prepare --venv build/bench-venv
  build/bench-venv/bin/python -m pytest -q -p no:cacheprovider tests/python/test_onnx_export.py
fi

step "7/7 pip-installable Python package (scripts/test_wheel.sh, build/python-wheel/)"
NGS_JOBS=$JOBS ./scripts/test_wheel.sh
