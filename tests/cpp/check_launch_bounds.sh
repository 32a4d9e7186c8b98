#!/usr/bin/env bash
# Every kernel declared with __launch_bounds__(N) in DIR/*.cu must state NGS_KERNEL_BOUNDS(N)
# (same N) before the next kernel: the CUDA emulation checks launches against it
# (docs/CUDA.md). Usage: check_launch_bounds.sh DIR
set -euo pipefail
status=0
for f in "$1"/*.cu; do
  awk -v file="$f" '
    function flush() { if (want != "") { printf "%s:%d: __launch_bounds__(%s) without NGS_KERNEL_BOUNDS(%s)\n", file, line, want, want; bad = 1 } }
    /__global__/ { flush(); want = "" }
    match($0, /__launch_bounds__\(([^)]*)\)/) { want = substr($0, RSTART + 18, RLENGTH - 19); line = NR }
    match($0, /NGS_KERNEL_BOUNDS\(([^)]*)\)/) {
      got = substr($0, RSTART + 18, RLENGTH - 19)
      if (want == "") { printf "%s:%d: NGS_KERNEL_BOUNDS(%s) without __launch_bounds__\n", file, NR, got; bad = 1 }
      else if (got != want) { printf "%s:%d: NGS_KERNEL_BOUNDS(%s) but __launch_bounds__(%s)\n", file, NR, got, want; bad = 1 }
      want = ""
    }
    END { flush(); exit bad }' "$f" || status=1
done
[ $status -eq 0 ] && echo "every __launch_bounds__ kernel of $1 states NGS_KERNEL_BOUNDS"
exit $status
