#!/usr/bin/env bash
# The PTX and ptxas -v report of one .cu for one architecture, for check_cuda_resources.py:
#   cuda_resources.sh NVCC SM OUT_STEM SOURCE [nvcc flags...]
# writes OUT_STEM.ptx (nvcc -ptx for compute_SM) and OUT_STEM.log (ptxas -v for sm_SM).
set -euo pipefail
nvcc=$1 sm=$2 out=$3 src=$4
shift 4
mkdir -p "$(dirname "$out")"
ptxas="$(dirname "$nvcc")/ptxas"
[ -x "$ptxas" ] || ptxas=ptxas
"$nvcc" -std=c++17 --extended-lambda -arch=compute_"$sm" -ptx "$@" -o "$out.ptx" "$src"
"$ptxas" -arch=sm_"$sm" -v "$out.ptx" -o "$out.cubin" 2> "$out.log.tmp" ||
  { cat "$out.log.tmp" >&2; exit 1; }
mv "$out.log.tmp" "$out.log"
rm -f "$out.cubin"
