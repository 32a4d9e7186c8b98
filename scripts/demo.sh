#!/usr/bin/env bash
# The main job: installs what is missing, builds the ngs command line, and renders audio
# from the bundled model into out/: one one-shot per class, a latent path and a drum
# loop, printing the real-time factor of each. Idempotent; a second run only re-renders.
#
# Environment: NGS_BUILD_DIR (default build, the folder scripts/test.sh uses too),
# NGS_OUT (default out), NGS_MODEL (default models/drums.safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
BUILD=${NGS_BUILD_DIR:-build}
OUT=${NGS_OUT:-out}
MODEL=${NGS_MODEL:-models/drums.safetensors}
UNTRAINED=0

say() { printf '\n== %s\n' "$*"; }
# Runs one ngs command, printing its output file and real-time factor (all of its
# messages if it fails).
render() {
  local log
  if ! log=$("$NGS" "$@" 2>&1); then
    printf '%s\n' "$log" >&2
    exit 1
  fi
  printf '%s\n' "$log" | grep -E "wrote|real-time" | sed 's/^ngs: /  /'
}

say "1/4 dependencies (scripts/setup.sh)"
./scripts/setup.sh

say "2/4 build (Release, $BUILD/)"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target ngs_cli
NGS="$BUILD/bin/ngs"

say "3/4 model"
if [ -f "$MODEL" ]; then
  echo "model: $MODEL (trained)"
else
  echo "!! $MODEL is not in this checkout: using an UNTRAINED fixture model instead."
  echo "!! Its weights are random: the files below show that the whole pipeline runs,"
  echo "!! but they sound like filtered noise, not like drums. It is also a tiny model"
  echo "!! (h_dim 64): its real-time factors are not those of the drum-size model"
  echo "!! (see bench/RESULTS.md)."
  MODEL="$BUILD/fixtures/lstm22k/model.safetensors"
  UNTRAINED=1
  if [ ! -f "$MODEL" ]; then
    $PY -m weights_converter.make_fixtures --out "$BUILD/fixtures"
  fi
  echo "model: $MODEL (UNTRAINED random fixture, 7 drum class names)"
fi
"$NGS" info "$MODEL" 2>/dev/null | sed -n '1,5p'

say "4/4 rendering into $OUT/ (real-time factor = audio seconds per compute second, 1 thread; one-shots and path normalised to -1 dBFS)"
mkdir -p "$OUT"
rm -f "$OUT"/oneshot_*.wav "$OUT"/path_*.wav "$OUT"/loop.wav "$OUT"/pattern_used.json
classes=$("$NGS" info "$MODEL" --json 2>/dev/null |
          $PY -c 'import json,sys; print("\n".join(json.load(sys.stdin)["classes"]))')
if [ -z "$classes" ]; then
  echo "the model has no classes: one unconditional one-shot"
  render sample "$MODEL" --seed 1 --peak -1 -o "$OUT/oneshot.wav"
else
  while IFS= read -r c; do
    render sample "$MODEL" --class "$c" --seed 1 --peak -1 -o "$OUT/oneshot_$c.wav"
  done <<< "$classes"
fi
render path "$MODEL" --kind circle --duration 4 --seed 2 --peak -1 -o "$OUT/path_circle.wav"

# The example pattern names Kick, Snare, Hat and Clap; keep only the model's classes.
pattern=apps/examples/pattern.json
$PY - "$pattern" "$OUT/pattern_used.json" <<PYEOF
import json, sys
known = {c.lower() for c in """$classes""".split("\n") if c}
pat = json.load(open(sys.argv[1]))
kept = {k: v for k, v in pat.items() if k.lower() in known}
json.dump(kept, open(sys.argv[2], "w"), indent=1)
dropped = sorted(set(pat) - set(kept))
if dropped:
    print("pattern: the model has no class", ", ".join(dropped), "- left out")
PYEOF
if [ "$($PY -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$OUT/pattern_used.json")" -gt 0 ]; then
  render loop "$MODEL" "$OUT/pattern_used.json" --bpm 110 --bars 2 --seed 3 -o "$OUT/loop.wav"
else
  echo "loop: skipped (no class of $pattern is in the model)"
fi

if [ "$UNTRAINED" = 1 ]; then
  say "done: the files are in $OUT/ (rendered by the UNTRAINED fixture model: noise, not drums)"
else
  say "done: the files are in $OUT/ (model $MODEL)"
fi
ls -l "$OUT"
