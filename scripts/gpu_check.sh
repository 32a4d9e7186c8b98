#!/usr/bin/env bash
# The one command for the day a GPU is lent (docs/CUDA.md "GPU check"):
#
#   scripts/gpu_check.sh [--out DIR]                 build here for this GPU, then check
#   scripts/gpu_check.sh --package DIR               (on a machine without GPU) build static
#                                                    sm_90 binaries + fixtures into DIR
#   scripts/gpu_check.sh --prebuilt DIR [--out DIR]  run the binaries of a package
#
# It prints the GPU, driver and compute capability first and stops with a clear message
# when there is no GPU (exit 2) or the driver is too old for the CUDA 13 runtime (R580+,
# exit 3). Then it runs every device.* test (a SKIPPED device test counts as a failure
# here), the engine-size device tests on their own (device.CudaEngineSize.*: the drum model
# end to end at 41 and 328 grains, graph sizes 41 -> 328 -> 41, fp16 weights, two models),
# compute-sanitizer (memcheck, racecheck, synccheck) on the device tests and Nsight Compute
# (SpeedOfLight and Occupancy of a short decode run) when they are installed, and the CUDA
# benchmarks (kernels, and `ngs bench --backend cuda` with CUDA_DEVICE_MAX_CONNECTIONS=32
# and a short `ngs bench --stream --backend cuda` when the CLI is there), and writes one
# JSON file (DIR/gpu_check.json) and a summary table. Budget: under 8 minutes (every step's
# timeout is cut to what is left of 470 s; a step with under 10 s left is skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/out/gpu_check
PREBUILT=""
PACKAGE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --prebuilt) PREBUILT=$2; shift 2 ;;
    --package) PACKAGE=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
done
say() { printf 'gpu_check: %s\n' "$*"; }

# --- package mode: no GPU needed ----------------------------------------------------------
if [ -n "$PACKAGE" ]; then
  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
    { say "--package needs nvcc (the CUDA toolkit)"; exit 2; }
  B=$ROOT/build-gpu-package
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNGS_CUDA=ON \
    -DNGS_CUDA_ARCHITECTURES=90-real -DNGS_BUILD_APPS=OFF \
    -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc" >/dev/null || exit 1
  cmake --build "$B" -j"$(nproc)" --target test_cuda_device bench_cuda_kernels bench_cuda_latent || exit 1
  /usr/bin/python3 -m weights_converter.make_fixtures --out "$B/fixtures" >/dev/null || exit 1
  mkdir -p "$PACKAGE/bin" "$PACKAGE/fixtures" "$PACKAGE/models"
  cp "$B/tests/test_cuda_device" "$B/bench/bench_cuda_kernels" "$B/bench/bench_cuda_latent" \
    "$PACKAGE/bin/"
  cp -r "$B/fixtures/." "$PACKAGE/fixtures/"
  cp models/drums.safetensors "$PACKAGE/models/"  # the engine-size tests' model
  cp "$0" "$PACKAGE/gpu_check.sh"
  say "package in $PACKAGE ($(du -sh "$PACKAGE" | cut -f1)); on the GPU machine:"
  say "  $PACKAGE/gpu_check.sh --prebuilt $PACKAGE"
  exit 0
fi

mkdir -p "$OUT"
JSON=$OUT/gpu_check.json
t0=$(date +%s)
BUDGET_S=${NGS_GPU_CHECK_BUDGET_S:-470}
# The timeout of a step: its cap, cut to what is left of the budget; 0 (skip the step)
# when under 10 s are left.
step_timeout() {
  local left=$(( BUDGET_S - ($(date +%s) - t0) ))
  if [ "$left" -lt 10 ]; then echo 0; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}
# Runs a command under step_timeout CAP; a step with no time left is not run (rc 124).
run_limited() {
  local t
  t=$(step_timeout "$1")
  shift
  if [ "$t" -eq 0 ]; then
    say "skipped, the time budget is spent: $(basename "$1")"
    return 124
  fi
  timeout "$t" "$@"
}

# --- 1. the GPU, the driver, the compute capability -------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1; then
  say "no GPU: nvidia-smi is not installed (no NVIDIA driver on this machine)"
  printf '{"gpu": null, "status": "no GPU", "reason": "nvidia-smi not found"}\n' > "$JSON"
  exit 2
fi
info=$(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader 2>&1)
if [ $? -ne 0 ] || [ -z "$info" ]; then
  say "no GPU: nvidia-smi found no usable device ($info)"
  printf '{"gpu": null, "status": "no GPU", "reason": "nvidia-smi: %s"}\n' "$(echo "$info" | head -1 | tr -d '"\\')" > "$JSON"
  exit 2
fi
first=$(echo "$info" | head -1)
IFS=',' read -r gpu_name driver cap mem <<< "$first"
gpu_name=$(echo "$gpu_name" | xargs); driver=$(echo "$driver" | xargs)
cap=$(echo "$cap" | xargs); mem=$(echo "$mem" | xargs)
say "GPU: $gpu_name, driver $driver, compute capability $cap, $mem ($(echo "$info" | wc -l) device(s))"
driver_major=${driver%%.*}
if [ "${driver_major:-0}" -lt 580 ] 2>/dev/null; then
  say "driver $driver is too old for the CUDA 13 runtime that ngs links (needs R580 or newer)"
  printf '{"gpu": "%s", "driver": "%s", "status": "driver too old"}\n' "$gpu_name" "$driver" > "$JSON"
  exit 3
fi

# --- 2. binaries: prebuilt, or built here for this GPU --------------------------------------
if [ -n "$PREBUILT" ]; then
  BIN=$PREBUILT/bin
  FIXTURES=$PREBUILT/fixtures
  MODELS=$PREBUILT/models
  NGS_CLI=""
else
  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
    { say "no nvcc here: build a package on a machine with the toolkit (--package) and use --prebuilt"; exit 4; }
  arch="${cap/./}-real"
  B=$ROOT/build-gpu
  say "building for sm_${cap/./} in $B"
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNGS_CUDA=ON \
    -DNGS_CUDA_ARCHITECTURES="$arch" >"$OUT/configure.log" 2>&1 || { say "configure failed: $OUT/configure.log"; exit 1; }
  cmake --build "$B" -j"$(nproc)" --target test_cuda_device bench_cuda_kernels bench_cuda_latent ngs_cli \
    >"$OUT/build.log" 2>&1 || { say "build failed: $OUT/build.log"; exit 1; }
  FIXTURES=$B/fixtures
  /usr/bin/python3 -m weights_converter.make_fixtures --out "$FIXTURES" >/dev/null 2>&1 ||
    python3 -m weights_converter.make_fixtures --out "$FIXTURES" >/dev/null
  mkdir -p "$B/bin-gpu"
  ln -sf "$B/tests/test_cuda_device" "$B/bench/bench_cuda_kernels" "$B/bench/bench_cuda_latent" \
    "$B/bin-gpu/"
  BIN=$B/bin-gpu
  MODELS=$ROOT/models
  NGS_CLI=$B/bin/ngs
fi
export NGS_FIXTURES_DIR=$FIXTURES NGS_MODEL_DIR=$MODELS

# --- 3. device tests: a skip is a failure here -------------------------------------------------
say "device tests"
run_limited 150 "$BIN/test_cuda_device" --gtest_output="json:$OUT/device_tests.json" \
  >"$OUT/device_tests.log" 2>&1
tests_rc=$?
skipped=$(grep -c '\[  SKIPPED \]' "$OUT/device_tests.log" 2>/dev/null || true)
passed=$(grep -c '\[       OK \]' "$OUT/device_tests.log" 2>/dev/null || true)
failed=$(grep -c '\[  FAILED  \]' "$OUT/device_tests.log" 2>/dev/null || true)
tests_ok=1
{ [ "$tests_rc" -ne 0 ] || [ "${skipped:-0}" -gt 0 ]; } && tests_ok=0
say "device tests: $passed passed, $failed failed lines, $skipped skipped (rc $tests_rc)"

# --- 3b. engine-size device tests on their own (also part of the run above) ----------------
say "engine-size device tests (drum model, 41 and 328 grains, 41 -> 328 -> 41, fp16, two models)"
t=$(step_timeout 90)
if [ "$t" -gt 0 ]; then
  timeout "$t" "$BIN/test_cuda_device" --gtest_filter='CudaEngineSize.*' \
    --gtest_output="json:$OUT/engine_size_tests.json" >"$OUT/engine_size_tests.log" 2>&1
  engine_rc=$?
  e_passed=$(grep -c '\[       OK \]' "$OUT/engine_size_tests.log" 2>/dev/null || true)
  e_skipped=$(grep -c '\[  SKIPPED \]' "$OUT/engine_size_tests.log" 2>/dev/null || true)
  { [ "${e_skipped:-0}" -gt 0 ] || [ "${e_passed:-0}" -eq 0 ]; } && [ "$engine_rc" -eq 0 ] && engine_rc=5
  say "engine-size tests: ${e_passed:-0} passed, ${e_skipped:-0} skipped (rc $engine_rc)"
else
  engine_rc=124
  say "engine-size tests: skipped, the time budget is spent"
fi
[ "$engine_rc" -ne 0 ] && tests_ok=0

# --- 4. compute-sanitizer -----------------------------------------------------------------
san_json=""
if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck synccheck; do
    t=$(step_timeout 100)
    [ "$t" -gt 0 ] || { say "compute-sanitizer $tool: skipped, the time budget is spent"; continue; }
    timeout "$t" compute-sanitizer --tool "$tool" --error-exitcode 99 "$BIN/test_cuda_device" \
      --gtest_filter='*Kernels*:*Backend.StagesMatch*:*Encoder.MatchesCpu*:*Encoder.OddChannels*:*CudaLatent.*' \
      >"$OUT/sanitizer_$tool.log" 2>&1
    rc=$?
    say "compute-sanitizer $tool: rc $rc"
    san_json="$san_json\"$tool\": $rc, "
  done
else
  say "compute-sanitizer not installed: skipped"
fi

# --- 4b. Nsight Compute: SpeedOfLight and Occupancy of a short decode run -------------------
ncu_rc=null
if command -v ncu >/dev/null 2>&1; then
  t=$(step_timeout 120)
  if [ "$t" -gt 0 ]; then
    say "Nsight Compute (SpeedOfLight, Occupancy) of a short decode run"
    timeout "$t" ncu --section SpeedOfLight --section Occupancy --launch-count 40 \
      --export "$OUT/ncu_decode" --force-overwrite \
      "$BIN/test_cuda_device" --gtest_filter='CudaEngineSize.GraphSizes41ToLongTo41' \
      >"$OUT/ncu_decode.txt" 2>&1
    ncu_rc=$?
    say "Nsight Compute: rc $ncu_rc ($OUT/ncu_decode.txt, $OUT/ncu_decode.ncu-rep)"
  else
    say "Nsight Compute: skipped, the time budget is spent"
  fi
else
  say "Nsight Compute (ncu) not installed: skipped"
fi

# --- 5. benchmarks ------------------------------------------------------------------------
say "kernel benchmarks"
run_limited 150 "$BIN/bench_cuda_kernels" --benchmark_min_time=0.2 \
  --benchmark_out="$OUT/bench_cuda_kernels.json" --benchmark_out_format=json \
  >"$OUT/bench_cuda_kernels.log" 2>&1
bench_rc=$?
say "sequence-VAE and streaming benchmarks"
run_limited 90 "$BIN/bench_cuda_latent" --benchmark_min_time=0.2 \
  --benchmark_out="$OUT/bench_cuda_latent.json" --benchmark_out_format=json \
  >"$OUT/bench_cuda_latent.log" 2>&1
latent_rc=$?
cli_rc=null
stream_rc=null
if [ -n "$NGS_CLI" ] && [ -x "$NGS_CLI" ] && [ -f models/drums.safetensors ]; then
  say "ngs bench --backend cuda (CUDA_DEVICE_MAX_CONNECTIONS=32)"
  CUDA_DEVICE_MAX_CONNECTIONS=32 run_limited 60 "$NGS_CLI" bench models/drums.safetensors \
    --backend cuda --json --seconds 1 >"$OUT/ngs_bench_cuda.json" 2>"$OUT/ngs_bench_cuda.log"
  cli_rc=$?
  # The real-time synth on the CUDA backend (docs/CUDA.md "Streaming"): a short run, blocks
  # 64 and 256, 1 / 64 / 256 one-shot voices, no real-time search.
  say "ngs bench --stream --backend cuda (blocks 64, 256; voices 1, 64, 256)"
  run_limited 60 "$NGS_CLI" bench models/drums.safetensors --stream --backend cuda --json \
    --seconds 1 --blocks 64,256 --voices 1,64,256 --no-search \
    >"$OUT/ngs_bench_stream_cuda.json" 2>"$OUT/ngs_bench_stream_cuda.log"
  stream_rc=$?
fi

# --- 6. one JSON file and a summary -------------------------------------------------------
elapsed=$(( $(date +%s) - t0 ))
cat > "$JSON" <<EOF
{"gpu": "$gpu_name", "driver": "$driver", "compute_capability": "$cap", "memory": "$mem",
 "device_tests": {"rc": $tests_rc, "passed": ${passed:-0}, "failed": ${failed:-0}, "skipped": ${skipped:-0},
                  "report": "device_tests.json"},
 "engine_size_tests": {"rc": $engine_rc, "report": "engine_size_tests.json"},
 "compute_sanitizer": {${san_json%, }},
 "nsight_compute": {"rc": $ncu_rc, "report": "ncu_decode.ncu-rep"},
 "bench_cuda_kernels": {"rc": $bench_rc, "report": "bench_cuda_kernels.json"},
 "bench_cuda_latent": {"rc": $latent_rc, "report": "bench_cuda_latent.json"},
 "ngs_bench_cuda": {"rc": $cli_rc, "report": "ngs_bench_cuda.json"},
 "ngs_bench_stream_cuda": {"rc": $stream_rc, "report": "ngs_bench_stream_cuda.json"},
 "elapsed_s": $elapsed}
EOF
printf '\n%-28s %s\n' "check" "result"
printf '%-28s %s\n' "GPU" "$gpu_name (sm_${cap/./}, driver $driver)"
printf '%-28s %s\n' "device tests" "$passed passed, $skipped skipped, rc $tests_rc"
printf '%-28s %s\n' "engine-size tests" "rc $engine_rc ($OUT/engine_size_tests.json)"
printf '%-28s %s\n' "Nsight Compute" "rc $ncu_rc ($OUT/ncu_decode.txt)"
printf '%-28s %s\n' "kernel benchmarks" "rc $bench_rc ($OUT/bench_cuda_kernels.json)"
printf '%-28s %s\n' "sequence-VAE benchmarks" "rc $latent_rc ($OUT/bench_cuda_latent.json)"
printf '%-28s %s\n' "ngs bench (cuda)" "rc $cli_rc ($OUT/ngs_bench_cuda.json)"
printf '%-28s %s\n' "ngs bench --stream (cuda)" "rc $stream_rc ($OUT/ngs_bench_stream_cuda.json)"
printf '%-28s %s\n' "elapsed" "${elapsed} s"
printf '%-28s %s\n' "report" "$JSON"
[ "$tests_ok" -eq 1 ] && [ "$bench_rc" -eq 0 ] && [ "$latent_rc" -eq 0 ]
