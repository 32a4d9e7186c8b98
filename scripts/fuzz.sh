#!/usr/bin/env bash
# Fuzzing (docs/FUZZING.md): builds the libFuzzer targets with clang, AddressSanitizer and
# UBSan in build-fuzz/, writes the seed corpus (tests/fuzz/make_corpus.py) and runs each
# fuzzer for SECONDS (default 30: scripts/test.sh's bounded run, about a minute in all).
#   scripts/fuzz.sh [SECONDS]     e.g. scripts/fuzz.sh 3600 for a longer run
# Environment: NGS_FUZZ_JOBS=N runs N fuzzing processes per target (libFuzzer -fork=N);
# NGS_JOBS the build's parallelism. New interesting inputs accumulate in
# build-fuzz/corpus/<target>/ across runs; a finding is written to
# build-fuzz/crashes/<target>-crash-<sha1> (and the script fails). Reproduce one with
#   build-fuzz/tests/fuzz/fuzz_<target> build-fuzz/crashes/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
case $secs in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;; esac
jobs=${NGS_JOBS:-$(nproc)}
B=build-fuzz

CC=clang CXX=clang++ cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNGS_BUILD_FUZZERS=ON -DNGS_CUDA=OFF -DNGS_BUILD_TESTS=OFF -DNGS_BUILD_BENCH=OFF >/dev/null
cmake --build "$B" -j"$jobs" --target fuzz_model fuzz_io
/usr/bin/python3 tests/fuzz/make_corpus.py --out "$B/seeds"

mkdir -p "$B/crashes"
status=0
for t in model io; do
  mkdir -p "$B/corpus/$t"
  fork=()
  [ -n "${NGS_FUZZ_JOBS:-}" ] && fork=(-fork="$NGS_FUZZ_JOBS" -ignore_crashes=0)
  echo "== fuzz.sh: fuzz_$t for ${secs} s"
  # -timeout: one input taking over 10 s is a finding; -rss_limit_mb: so is memory growth.
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "$B/tests/fuzz/fuzz_$t" "${fork[@]}" -max_total_time="$secs" -timeout=10 \
         -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$B/crashes/$t-" \
         "$B/corpus/$t" "$B/seeds/$t" 2> "$B/fuzz_$t.log"; then
    status=1
    tail -n 60 "$B/fuzz_$t.log" >&2
    echo "fuzz.sh: fuzz_$t found a problem: $(ls -t "$B/crashes/$t-"* 2>/dev/null | head -1) (log: $B/fuzz_$t.log)" >&2
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$B/fuzz_$t.log" | tr '\n' ' '
    echo "corpus $(ls "$B/corpus/$t" | wc -l) files: fuzz_$t ok"
  fi
done
exit $status
