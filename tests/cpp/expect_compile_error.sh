#!/usr/bin/env bash
# Runs a compile command that must fail, and checks that it fails for the expected reason:
# the diagnostic of case CASE of SOURCE. The case's block in SOURCE ("#if NGS_EMU_CASE == N"
# or "#elif NGS_EMU_CASE == N" up to the next #elif/#else/#endif) holds one or more lines
#   // expect-error: EXTENDED-REGEX
# and the compiler's output must match each of them, with every error located inside that
# block (so a typo elsewhere, or an error of another kind, fails the test).
# Usage: expect_compile_error.sh SOURCE CASE COMPILER ARGS...
set -euo pipefail
src=$1
case_no=$2
shift 2
read -r first last < <(awk -v n="$case_no" '
  /^#(el)?if NGS_EMU_CASE == / && $NF == n && !start { start = NR; next }
  start && /^#(elif|else|endif)/ { print start, NR; exit }' "$src")
if [ -z "${first:-}" ]; then
  echo "expect_compile_error: no block for NGS_EMU_CASE == $case_no in $src" >&2
  exit 2
fi
mapfile -t patterns < <(sed -n "${first},${last}p" "$src" | sed -n 's|.*// expect-error: ||p')
if [ ${#patterns[@]} -eq 0 ]; then
  echo "expect_compile_error: case $case_no (lines $first-$last of $src) has no '// expect-error:' line" >&2
  exit 2
fi
set +e
out=$(LC_ALL=C "$@" 2>&1)
rc=$?
set -e
if [ $rc -eq 0 ]; then
  echo "case $case_no compiled, but it must not" >&2
  exit 1
fi
fail=0
for p in "${patterns[@]}"; do
  if ! grep -qE -- "$p" <<<"$out"; then
    echo "case $case_no: no diagnostic matching '$p'" >&2
    fail=1
  fi
done
base=$(basename "$src")
while IFS= read -r line; do
  n=$(sed -E 's|^[^:]*:([0-9]+):.*|\1|' <<<"$line")
  if [ "$n" -le "$first" ] || [ "$n" -ge "$last" ]; then
    echo "case $case_no: error outside its block (lines $first-$last): $line" >&2
    fail=1
  fi
done < <(grep -E "(^|/)${base}:[0-9]+:([0-9]+:)? (fatal )?error" <<<"$out" || true)
if ! grep -qE "(^|/)${base}:[0-9]+:([0-9]+:)? (fatal )?error" <<<"$out"; then
  echo "case $case_no: no error located in $base" >&2
  fail=1
fi
if [ $fail -ne 0 ]; then
  echo "---- compiler output ----" >&2
  echo "$out" | head -40 >&2
  exit 1
fi
echo "case $case_no: rejected as expected (${#patterns[@]} diagnostic(s) matched)"
