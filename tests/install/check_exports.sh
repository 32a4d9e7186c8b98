#!/usr/bin/env bash
# Checks that the shared library exports only the C API: every defined dynamic symbol
# starts with ngs_, and every function of ngs.h is exported. Usage: check_exports.sh LIB HEADER
set -euo pipefail
lib=$1
header=$2
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
bad=$(echo "$syms" | grep -v '^ngs_' || true)
if [ -n "$bad" ]; then
  echo "symbols exported beyond the C API:" >&2
  echo "$bad" | head -20 >&2
  exit 1
fi
missing=0
for f in $(grep -oE 'NGS_API [^;(]*\(' "$header" | grep -oE 'ngs_[a-z0-9_]+\($' | tr -d '(' | sort -u); do
  if ! grep -qx "$f" <<< "$syms"; then
    echo "not exported: $f" >&2
    missing=1
  fi
done
[ $missing -eq 0 ] || exit 1
echo "exports ok: $(echo "$syms" | wc -l) ngs_* symbols; SONAME $(objdump -p "$lib" | awk '/SONAME/{print $2}')"
