#!/usr/bin/env bash
# Checks that the shared library exports only the C API: every defined dynamic symbol
# starts with ngs_, and every function of ngs.h is exported. Usage: check_exports.sh LIB HEADER
#
# No `producer | grep -q` pipelines: under pipefail, grep -q exits at its first match and
# the producer (bash's echo writes line by line) may then die of SIGPIPE, which made the
# pipeline fail and reported an exported function as missing about once in 350 runs.
# Symbols are read once into a variable (nm's POSIX format: "name type value size") and
# matched with here-strings.
set -euo pipefail
lib=$1
header=$2
nm_out=$(nm -D --defined-only -P "$lib")
syms=$(awk '{print $1}' <<<"$nm_out" | sed 's/@.*//' | sort -u)
if [ -z "$syms" ]; then
  echo "no defined dynamic symbols read from $lib" >&2
  exit 1
fi
bad=$(grep -v '^ngs_' <<<"$syms" || true)
if [ -n "$bad" ]; then
  echo "symbols exported beyond the C API:" >&2
  head -20 <<<"$bad" >&2
  exit 1
fi
api=$(grep -oE 'NGS_API [^;(]*\(' "$header" | grep -oE 'ngs_[a-z0-9_]+\($' | tr -d '(' | sort -u)
if [ -z "$api" ]; then
  echo "no NGS_API functions found in $header" >&2
  exit 1
fi
missing=$(comm -23 <(cat <<<"$api") <(cat <<<"$syms"))
if [ -n "$missing" ]; then
  echo "not exported: $missing" | tr '\n' ' ' >&2
  echo >&2
  exit 1
fi
soname=$(objdump -p "$lib" | awk '/SONAME/{print $2}')
echo "exports ok: $(wc -l <<<"$syms") ngs_* symbols, $(wc -l <<<"$api") API functions; SONAME $soname"
