#!/usr/bin/env bash
# The pip-installable Python package (docs/BINDINGS.md "Installing"), step 7 of
# scripts/test.sh: in a fresh virtual environment in a temporary folder,
#   1. the build requirements (scikit-build-core, numpy) from PyPI, kept in a wheelhouse
#      under build/python-wheel/ (later runs take them from there, also offline);
#   2. `pip wheel ./bindings/python` with build isolation, as `pip install` does: CMake
#      builds libngs from this tree into the package (ccache when present; the CMake
#      build folder build/python-wheel/cmake persists, so a rerun recompiles nothing);
#      the wheel must be a platform wheel (py3-none-linux_<arch>) holding ngs/libngs.so.0
#      and ngs/_version.py, with the project's version;
#   3. the wheel installed into the venv, then, from a folder outside the tree, with no
#      NGS_LIBRARY or PYTHONPATH: `import ngs` loads the bundled library (and no other
#      libngs), a one-shot of the bundled model with Context.sample, and the same one-shot
#      through ngs.Synth.process in blocks equals it at the trigger's frame + latency.
# PyPI unreachable and no earlier wheelhouse: a clear error. NGS_SKIP_WHEEL=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf 'test_wheel: %s\n' "$*"; }
die() { printf 'test_wheel: error: %s\n' "$*" >&2; exit 1; }

if [ "${NGS_SKIP_WHEEL:-0}" = 1 ]; then
  say "skipped (NGS_SKIP_WHEEL=1)"
  exit 0
fi

WORK=$ROOT/build/python-wheel
MODEL=$ROOT/models/drums.safetensors
VERSION=$(sed -n 's/^project(ngs VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$VERSION" ] || die "no 'project(ngs VERSION x.y.z' line in CMakeLists.txt"
mkdir -p "$WORK/wheelhouse"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ngs-wheel.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

/usr/bin/python3 -m venv "$TMP/venv" ||
  die "python3 -m venv failed (Debian: apt-get install python3-venv; scripts/setup.sh does)"
PY=$TMP/venv/bin/python
PIP=("$PY" -m pip --disable-pip-version-check --no-input --cache-dir "$WORK/pip-cache")
REQS=("scikit-build-core>=0.10" "numpy>=1.20")

# 1. Build requirements: an earlier run's wheelhouse, else PyPI (delete the wheelhouse to
#    take newer versions).
OFFLINE=(--no-index --find-links "$WORK/wheelhouse")
if "${PIP[@]}" download -q "${OFFLINE[@]}" -d "$TMP/reqs" "${REQS[@]}" >/dev/null 2>&1; then
  say "build requirements from $WORK/wheelhouse: $(cd "$TMP/reqs" && ls | tr '\n' ' ')"
elif "${PIP[@]}" wheel -q --timeout 20 --retries 1 -w "$WORK/wheelhouse" "${REQS[@]}" \
       >"$TMP/pypi.log" 2>&1; then
  say "build requirements from PyPI: $(cd "$WORK/wheelhouse" && ls | tr '\n' ' ')"
else
  cat "$TMP/pypi.log" >&2
  die "cannot download ${REQS[*]} from PyPI (above), and no earlier run left them in" \
      "$WORK/wheelhouse; connect to PyPI, or set NGS_SKIP_WHEEL=1 to skip this step"
fi

# 2. The wheel, built with isolation from the wheelhouse (pyproject.toml's requires).
export CMAKE_BUILD_PARALLEL_LEVEL=${NGS_JOBS:-$(nproc)}
export SKBUILD_BUILD_DIR=$WORK/cmake
if command -v ccache >/dev/null; then
  export SKBUILD_CMAKE_ARGS="-DCMAKE_C_COMPILER_LAUNCHER=ccache;-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
fi
unset NGS_LIBRARY PYTHONPATH
"${PIP[@]}" wheel -q "${OFFLINE[@]}" --no-deps -w "$TMP/dist" ./bindings/python ||
  die "pip wheel ./bindings/python failed (above)"
wheels=("$TMP"/dist/*.whl)
[ ${#wheels[@]} -eq 1 ] || die "expected one wheel, got: ${wheels[*]}"
WHEEL=${wheels[0]}
name=$(basename "$WHEEL")
say "built $name"
case "$name" in
  "ngs-$VERSION-py3-none-linux_$(uname -m).whl") ;;
  *) die "$name: want ngs-$VERSION-py3-none-linux_$(uname -m).whl (a platform wheel of version $VERSION)" ;;
esac
"$PY" - "$WHEEL" "$VERSION" <<'EOF' || die "$name: wrong contents (above)"
import sys, zipfile
wheel, version = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(wheel).namelist()
for want in ("ngs/__init__.py", "ngs/libngs.so.0", "ngs/_version.py"):
    assert want in names, "%s lacks %s: %s" % (wheel, want, names)
bad = [n for n in names if not (n.startswith("ngs/") or n.startswith("ngs-%s.dist-info/" % version))]
assert not bad, "unexpected files in the wheel: %s" % bad
meta = zipfile.ZipFile(wheel).read("ngs-%s.dist-info/WHEEL" % version).decode()
assert "Root-Is-Purelib: false" in meta, meta
EOF

# 3. Install it and use it from outside the tree.
"${PIP[@]}" install -q "${OFFLINE[@]}" "$WHEEL" || die "pip install $name failed (above)"
mkdir "$TMP/run"
cd "$TMP/run"
env -u NGS_LIBRARY -u PYTHONPATH -u LD_LIBRARY_PATH "$PY" - "$MODEL" "$ROOT" "$VERSION" <<'EOF' || die "the installed package failed its smoke test (above)"
import os, sys
import numpy as np
model_path, root, version = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
import ngs

pkg = os.path.dirname(os.path.realpath(ngs.__file__))
assert not (pkg + os.sep).startswith(root + os.sep), "ngs imported from the source tree: " + pkg
lib = os.path.realpath(ngs.library_path())
assert lib == os.path.join(pkg, "libngs.so.0"), "not the bundled library: " + lib
with open("/proc/self/maps") as f:
    mapped = {line.split()[-1] for line in f if "libngs" in line}
assert mapped == {lib}, "libngs mapped from %s" % sorted(mapped)
assert ngs.__version__ == version and ngs.version() == version, (ngs.__version__, ngs.version())

rng = np.random.default_rng()
with ngs.Model(model_path) as model:
    info = model.info
    cls = model.classes[int(rng.integers(0, len(model.classes)))]
    seed = int(rng.integers(0, 2 ** 63))
    ctx = model.context()
    want = ctx.sample(cls, seed=seed)
    assert want.shape == (info.sample_length,) and np.all(np.isfinite(want))
    assert np.max(np.abs(want)) > 1e-3, "silent one-shot"
    block = 256
    with ngs.Synth(model, info.sample_rate, block) as s:
        t0 = int(rng.integers(0, block))
        total = t0 + s.latency + info.sample_length + 2 * info.hop_size
        got = np.full(total, np.nan, np.float32)
        buf = np.full(block, np.nan, np.float32)
        for b0 in range(0, total, block):
            n = min(block, total - b0)
            evs = [{"type": "start", "kind": "one_shot", "class": cls, "seed": seed,
                    "voice": s.voice_new(), "frame": t0}] if b0 == 0 else []
            out = s.process(n, evs, out=buf[:n])
            assert out is not None and np.all(np.isfinite(out))
            got[b0:b0 + n] = out
            buf[:] = np.nan
        at = t0 + s.latency
        err = np.linalg.norm(got[at:at + info.sample_length] - want) / np.linalg.norm(want)
        assert np.all(got[:at] == 0) and np.all(got[at + info.sample_length:] == 0)
        assert err <= 1e-5, "Synth vs Context.sample: relative L2 %.3g" % err
        assert s.stats()["events_applied"] == 1
print("test_wheel: ngs %s from %s: %s one-shot (seed %d) peak %.3f, Synth == Context.sample "
      "(relative L2 %.1e)" % (version, lib, cls, seed, float(np.max(np.abs(want))), err))
EOF
say "ok"
