#!/usr/bin/env bash
# The test command (README "Tests"): installs what is missing, builds, generates the
# golden fixtures and runs every test:
#   1. Release build (build/): every C++ test through ctest: CPU ops and stages, engine
#      and C API against the goldens, CUDA kernels through the emulation build, CLI,
#      installed library;
#   2. AddressSanitizer + UBSan build (build-asan/): the same C++ unit, golden and
#      emulated-kernel tests;
#   3. ThreadSanitizer build (build-tsan/): the thread-safety tests;
#   4. Python (pytest): converter, reference oracle, random stream, bindings, bundled model.
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

step "1/4 Release build and tests (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"
$PY -m weights_converter.make_fixtures --out "$FIXTURES"
ctest --test-dir build --output-on-failure -j"$JOBS"

step "2/4 AddressSanitizer + UBSan (build-asan/)"
sanitized_build build-asan address,undefined
cmake --build build-asan -j"$JOBS"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$JOBS" -LE 'install|threads'

step "3/4 ThreadSanitizer (build-tsan/)"
sanitized_build build-tsan thread
cmake --build build-tsan -j"$JOBS" --target test_pipeline_threads test_cpu_threads test_synth_tsan
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -L threads

step "4/4 Python tests"
$PY -m pytest -q -p no:cacheprovider tests/python
