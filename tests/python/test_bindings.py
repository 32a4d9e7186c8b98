"""Python bindings (bindings/python/ngs, ctypes over libngs.so).

* the ctypes structs match the C layout (a C program compiled with `cc` at test time prints
  sizeof/offsetof of every struct and field) and the header's field order and types; every
  NGS_API function of ngs.h is bound with the header's argument and return types;
* every process (decode, encode, latent decode/encode, embedding sample, sample,
  interpolation, paths, free synthesis, pre-processing, resynthesis, loop) matches the golden
  fixtures (fp32 relative L2 <= 1e-5, fp16 <= 1e-2) on the three fixture configurations;
* bad input (None, wrong dtype, shape, NaN/Inf, out-of-range classes, seeds, capacity,
  closed handles, garbage model files) raises ValueError or NgsError with the library's
  message, never a crash; the library search (NGS_LIBRARY, <repo>/build/engine) works;
* calls in flight: close() from another thread waits, close() or a call from the progress
  callback is refused, a second thread on a busy Context gets ContextBusyError (child
  interpreters); seeds span the whole uint64 range and equal the C API's output.

The library: NGS_LIBRARY, else <repo>/build/... (scripts/test.sh builds it there). If it is
not built, every test here FAILS saying so, unless NGS_SKIP_BINDINGS=1. NGS_TEST_BACKEND
(default cpu) selects the backend of the golden tests (cuda on a machine with a GPU).
"""
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BINDINGS = ROOT / "bindings" / "python"
sys.path.insert(0, str(BINDINGS))
sys.path.insert(0, str(ROOT))

import ngs  # noqa: E402
from weights_converter import make_fixtures as MF  # noqa: E402
from weights_converter import safetensors as ST  # noqa: E402

HEADER = ROOT / "engine" / "include" / "ngs" / "ngs.h"
BACKEND = os.environ.get("NGS_TEST_BACKEND", "cpu")
TOL_F32 = 1e-5
TOL_F16 = float(os.environ.get("NGS_TOL_F16", "1e-2"))


def _try_load():
    try:
        ngs.load_library()
        return None
    except ngs.LibraryNotFoundError as e:
        return str(e)


_LOAD_ERROR = _try_load()
if _LOAD_ERROR and os.environ.get("NGS_SKIP_BINDINGS") == "1":
    pytest.skip("NGS_SKIP_BINDINGS=1 and libngs.so is not available: " + _LOAD_ERROR,
                allow_module_level=True)


NOT_BUILT = ("the Python bindings need the shared library libngs.so, which is not built (or "
             "not loadable). Build it: `cmake -S . -B build -G Ninja && cmake --build build "
             "--target ngs` (or point NGS_LIBRARY at it); set NGS_SKIP_BINDINGS=1 to skip "
             "these tests.\n%s" % _LOAD_ERROR)


def _need_library_now():
    if _LOAD_ERROR:
        pytest.fail(NOT_BUILT, pytrace=False)


@pytest.fixture(autouse=True)
def _need_library():
    _need_library_now()


def rel(a, b):
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def n_conds(name):
    lat = MF.CONFIGS[name]["latent"]
    return len(lat["classes"]) if lat["conditional"] and len(lat["classes"]) > 1 else 0


class Fix:
    """One fixture configuration: golden tensors, metadata, model, context."""

    def __init__(self, d, name, fp16=False):
        self.name = name
        self.dir = Path(d) / name
        self.g, self.meta = ST.load(str(self.dir / "golden.safetensors"))
        self.seed = int(self.meta["golden.seed"])
        self.ci = int(self.meta["golden.class_index"])
        self.cls = None if self.ci < 0 else self.ci
        self.temperature = float(self.meta["golden.temperature"])
        self.file = self.dir / ("model_fp16.safetensors" if fp16 else "model.safetensors")
        self.model = ngs.Model(self.file, backend=BACKEND)
        self.ctx = self.model.context()
        self.tol = TOL_F16 if fp16 else TOL_F32

    def close(self):
        self.model.close()


@pytest.fixture(scope="module", params=sorted(MF.CONFIGS))
def fx(request, fixtures_dir):
    _need_library_now()
    f = Fix(fixtures_dir, request.param)
    yield f
    f.close()


@pytest.fixture(scope="module")
def lstm(fixtures_dir):
    _need_library_now()
    f = Fix(fixtures_dir, "lstm22k")
    yield f
    f.close()


def fresh_rng():
    seed = np.random.SeedSequence().entropy
    print("rng seed", seed)
    return np.random.default_rng(seed)


# ---- layout and signatures ------------------------------------------------------------

_CTYPE_OF = {"int": ctypes.c_int, "float": ctypes.c_float, "double": ctypes.c_double,
             "size_t": ctypes.c_size_t, "uint64_t": ctypes.c_uint64, "uint32_t": ctypes.c_uint32,
             "int32_t": ctypes.c_int32}


def _strip_comments(text):
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def _header_enums(text):
    return set(re.findall(r"typedef\s+enum\s+\w+\s*\{[^}]*\}\s*(\w+)\s*;", text))


def _header_structs(text):
    """{struct name: [(field, C type)]} of the typedef'd structs with a body."""
    out = {}
    for body, name in re.findall(r"typedef\s+struct\s+\w+\s*\{([^}]*)\}\s*(\w+)\s*;", text):
        fields = []
        for decl in body.split(";"):
            decl = decl.strip()
            if decl:
                m = re.match(r"(.+?)\s*\b(\w+)$", decl)
                fields.append((m.group(2), m.group(1).strip()))
        out[name] = fields
    return out


def _expected_ctype(ctype, enums, structs):
    """The ctypes type a C type must be bound with (C enums are int)."""
    ctype = " ".join(ctype.replace("*", " * ").split())
    base = ctype[6:] if ctype.startswith("const ") else ctype
    stars = base.count("*")
    base = base.replace("*", "").strip()
    if stars == 0:
        if base == "ngs_progress_callback":  # typedef void (*)(float, void *)
            return ngs._progress_callback
        if base == "void":
            return None
        if base in enums:
            return ctypes.c_int
        if base in structs:
            return ngs.STRUCTS[base]
        return _CTYPE_OF[base]
    if stars == 1 and base == "char":
        return ctypes.c_char_p
    if stars == 1 and base in structs:
        return ctypes.POINTER(ngs.STRUCTS[base])
    if stars == 1 and base == "int":
        return ctypes.POINTER(ctypes.c_int)
    if stars == 2:
        return ctypes.POINTER(ctypes.c_void_p)  # ngs_model **out, ngs_context **out
    return ctypes.c_void_p  # float buffers, void data, opaque handles


def test_structs_match_header_fields_and_types():
    text = _strip_comments(HEADER.read_text())
    enums, structs = _header_enums(text), _header_structs(text)
    assert set(structs) == set(ngs.STRUCTS), "structs of ngs.h vs the bindings"
    for name, fields in structs.items():
        py = ngs.STRUCTS[name]._fields_
        assert [f for f, _ in py] == [f for f, _ in fields], "%s field order" % name
        for (f, ct), (_, pt) in zip(fields, py):
            want = _expected_ctype(ct, enums, structs)
            assert pt is want, "%s.%s: C %s, ctypes %s" % (name, f, ct, pt)


def test_every_header_function_is_bound_with_its_signature():
    text = _strip_comments(HEADER.read_text())
    enums, structs = _header_enums(text), _header_structs(text)
    protos = re.findall(r"NGS_API\s+([^;(]*?)\b(ngs_\w+)\s*\(([^)]*)\)\s*;", text)
    assert len(protos) >= 30
    names = [p[1] for p in protos]
    assert set(names) == set(ngs._SIGNATURES), "functions of ngs.h vs the bindings"
    lib = ngs.load_library()
    for ret, name, params in protos:
        restype, argtypes = ngs._SIGNATURES[name]
        assert restype is _expected_ctype(ret, enums, structs), (name, ret, restype)
        args = [] if params.strip() == "void" else [p.strip() for p in params.split(",")]
        assert len(args) == len(argtypes), name
        for a, t in zip(args, argtypes):
            m = re.match(r"(.+?)\s*\b(\w+)$", a)
            want = _expected_ctype(m.group(1), enums, structs)
            assert t is want, "%s(%s): ctypes %s" % (name, a, t)
        f = getattr(lib, name)
        assert f.argtypes == argtypes and f.restype is restype, name


def _c_compiler():
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def test_struct_layout_matches_c_compiler(tmp_path):
    cc = _c_compiler()
    if cc is None:
        pytest.skip("no C compiler (cc) to compare the struct layouts with")
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "ngs/ngs.h"',
             "int main(void) {"]
    for cname, st in ngs.STRUCTS.items():
        lines.append('printf("%s %%zu %%zu\\n", sizeof(%s), _Alignof(%s));' % (cname, cname, cname))
        for f, _ in st._fields_:
            lines.append('printf("%s.%s %%zu %%zu\\n", offsetof(%s, %s), sizeof(((%s *)0)->%s));'
                         % (cname, f, cname, f, cname, f))
    for e in ("ngs_status", "ngs_backend", "ngs_path_kind", "ngs_precision"):
        lines.append('printf("%s %%zu 0\\n", sizeof(%s));' % (e, e))
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    r = subprocess.run([cc, "-std=c11", "-I", str(HEADER.parent.parent), str(src), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = {}
    for line in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split("\n"):
        if line:
            k, a, b = line.split()
            got[k] = (int(a), int(b))
    for cname, st in ngs.STRUCTS.items():
        assert got[cname] == (ctypes.sizeof(st), ctypes.alignment(st)), cname
        for f, t in st._fields_:
            assert got["%s.%s" % (cname, f)] == (getattr(st, f).offset, ctypes.sizeof(t)), \
                "%s.%s" % (cname, f)
    for e in ("ngs_status", "ngs_backend", "ngs_path_kind", "ngs_precision"):
        assert got[e][0] == ctypes.sizeof(ctypes.c_int), e


def test_enums_match_library():
    lib = ngs.load_library()
    for s in ngs.Status:
        assert lib.ngs_status_string(int(s))
    for b in ngs.Backend:
        assert lib.ngs_backend_name(int(b)).decode() == b.name.lower()
    for k in ngs.PathKind:
        assert lib.ngs_path_kind_from_name(k.name.lower().encode()) == int(k)
    assert tuple(k.name.lower() for k in ngs.PathKind) == ngs.PATH_KINDS
    assert [int(x) for x in ngs.version().split(".")[:2]] == list(ngs.API_VERSION)
    assert ngs.model_format_version() == 1
    text = HEADER.read_text()
    for s in ngs.Status:
        assert re.search(r"NGS_STATUS_%s\s*=\s*%d\b" % (s.name, int(s)), text), s
    for b in ngs.Backend:
        assert re.search(r"NGS_BACKEND_%s\s*=\s*%d\b" % (b.name, int(b)), text), b
    for k in ngs.PathKind:
        assert re.search(r"NGS_PATH_KIND_%s\s*=\s*%d\b" % (k.name, int(k)), text), k
    for k in ngs.Precision:
        assert re.search(r"NGS_PRECISION_%s\s*=\s*%d\b" % (k.name, int(k)), text), k
    assert re.search(r"NGS_CLASS_NONE\s*=\s*%d\b" % ngs.CLASS_NONE, text)


# ---- library search -------------------------------------------------------------------

def _run_py(code, env_extra, cwd=None, pkg=BINDINGS):
    env = {k: v for k, v in os.environ.items() if k != "NGS_LIBRARY"}
    env.update(env_extra)
    env["PYTHONPATH"] = str(pkg)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd or "/")


def test_library_from_env_file_and_folder():
    path = os.path.realpath(ngs.library_path()) if os.path.sep in ngs.library_path() else None
    if path is None:
        pytest.skip("the library came from the system loader")
    code = "import ngs; print(ngs.library_path()); print(ngs.version())"
    for target in (path, os.path.dirname(path)):
        r = _run_py(code, {"NGS_LIBRARY": target})
        assert r.returncode == 0, r.stderr
        assert os.path.realpath(r.stdout.split("\n")[0]) == path
    r = _run_py("import ngs; ngs.version()", {"NGS_LIBRARY": "/nonexistent/libngs.so"})
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr and "cmake" in r.stderr and "NGS_LIBRARY" in r.stderr


def test_library_default_search_finds_repo_build_engine(tmp_path):
    """Without NGS_LIBRARY, a package at <repo>/bindings/python/ngs loads
    <repo>/build/engine/libngs.so* (where engine/CMakeLists.txt puts it)."""
    lib = ngs.library_path()
    if os.path.sep not in lib:
        pytest.skip("the library came from the system loader")
    repo = tmp_path / "repo"
    pkg = repo / "bindings" / "python"
    (pkg / "ngs").mkdir(parents=True)
    shutil.copy(BINDINGS / "ngs" / "__init__.py", pkg / "ngs" / "__init__.py")
    (repo / "engine" / "include" / "ngs").mkdir(parents=True)
    shutil.copy(HEADER, repo / "engine" / "include" / "ngs" / "ngs.h")
    (repo / "build" / "engine").mkdir(parents=True)
    os.symlink(os.path.realpath(lib), repo / "build" / "engine" / "libngs.so.0")
    r = _run_py("import ngs; print(ngs.library_path()); print(ngs.version())", {}, pkg=pkg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == str(repo / "build" / "engine" / "libngs.so.0")
    # outside a source tree (an installed package) no build folder is searched
    os.remove(repo / "engine" / "include" / "ngs" / "ngs.h")
    r = _run_py("import ngs; print(ngs.library_path())", {}, pkg=pkg)
    assert "build/engine/libngs.so.0" not in r.stdout
    # ... which is where CMake puts it as long as no output directory is set
    assert "add_library(ngs SHARED" in (ROOT / "engine" / "CMakeLists.txt").read_text()
    for f in (ROOT / "CMakeLists.txt", ROOT / "engine" / "CMakeLists.txt"):
        assert "LIBRARY_OUTPUT_DIRECTORY" not in f.read_text(), \
            "%s moves libngs.so: update the search of bindings/python/ngs" % f


def test_library_bundled_in_the_package(tmp_path):
    """An installed package (`pip install ./bindings/python`, scripts/test_wheel.sh) loads
    the libngs.so.0 next to its __init__.py by path, with no NGS_LIBRARY or loader path;
    NGS_LIBRARY still overrides it. In the tree, __version__ is the CMake project's."""
    lib = ngs.library_path()
    if os.path.sep not in lib:
        pytest.skip("the library came from the system loader")
    assert ngs.__version__ == ngs.version()
    site = tmp_path / "site"
    (site / "ngs").mkdir(parents=True)
    shutil.copy(BINDINGS / "ngs" / "__init__.py", site / "ngs" / "__init__.py")
    shutil.copy(os.path.realpath(lib), site / "ngs" / "libngs.so.0")
    (site / "ngs" / "_version.py").write_text('__version__ = "%s"\n' % ngs.version())
    code = "import ngs; print(ngs.library_path()); print(ngs.version()); print(ngs.__version__)"
    r = _run_py(code, {"LD_LIBRARY_PATH": ""}, pkg=site)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == [str(site / "ngs" / "libngs.so.0"), ngs.version(),
                                         ngs.version()]
    r = _run_py(code, {"NGS_LIBRARY": os.path.realpath(lib)}, pkg=site)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == os.path.realpath(lib)


# ---- goldens --------------------------------------------------------------------------

def test_info_classes_metadata(fx):
    m, g = fx.model, fx.g
    info = m.info
    cfg = MF.CONFIGS[fx.name]
    assert info.n_grains == g["decode.z"].shape[0]
    assert info.z_dim == g["decode.z"].shape[1]
    assert info.grain_length == cfg["waveform"]["l_grain"] == info.hop_size * 4
    assert info.sample_rate == cfg["waveform"]["sr"]
    assert info.filter_size == info.grain_length // 2 + 1
    assert info.sample_length == g["decode.audio"].shape[0]
    assert info.has_latent_model is True and info.e_dim == g["latent.e"].shape[0]
    assert info.weight_bits == 32 and info.backend == BACKEND
    assert info.n_classes == n_conds(fx.name)
    assert m.classes == (tuple(cfg["latent"]["classes"]) if n_conds(fx.name) else ())
    for i, c in enumerate(m.classes):
        assert m.class_index(c) == i and m.class_index(c.upper()) == i
    conf = json.loads(m.metadata("ngs.config"))
    assert conf["waveform"]["l_grain"] == info.grain_length
    assert m.metadata("ngs.format") == "ngs-model"
    assert m.metadata("no.such.key") is None
    assert m.audio_length(5) == 8 * info.hop_size
    assert m.grains_for_duration(0.0) == 0
    n = m.grains_for_duration(1.0)
    assert n == 4 * (info.sample_rate // info.grain_length) - 3
    with pytest.raises(dataclasses_frozen_error()):
        info.z_dim = 3


def dataclasses_frozen_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


def test_decode_golden(fx):
    a = fx.ctx.decode(fx.g["decode.z"], seed=fx.seed)
    assert a.dtype == np.float32 and a.shape == fx.g["decode.audio"].shape
    assert rel(a, fx.g["decode.audio"]) <= fx.tol
    b = fx.ctx.decode(fx.g["decode.z"], seed=fx.seed)
    np.testing.assert_array_equal(a, b)
    c = fx.ctx.decode(fx.g["decode.z"], seed=fx.seed, sequence=1)
    assert rel(c, a) > 1e-2


def test_free_synthesis_golden(fx):
    a = fx.ctx.decode(fx.g["free.z"], seed=fx.seed)
    assert rel(a, fx.g["free.audio"]) <= fx.tol


def test_encode_golden(fx):
    e = fx.ctx.encode(fx.g["encode.audio"], seed=fx.seed)
    assert isinstance(e, ngs.Encoded)
    for k in ("mu", "logvar", "z"):
        v = getattr(e, k)
        assert v.dtype == np.float32 and v.shape == fx.g["encode." + k].shape
        assert rel(v, fx.g["encode." + k]) <= fx.tol, k


def test_latent_golden(fx):
    z = fx.ctx.latent_decode(fx.g["latent.e"], fx.cls)
    assert z.shape == fx.g["latent.z"].shape
    assert rel(z, fx.g["latent.z"]) <= fx.tol
    if fx.cls is not None:  # by name too
        z2 = fx.ctx.latent_decode(fx.g["latent.e"], fx.model.classes[fx.cls])
        np.testing.assert_array_equal(z, z2)
    le = fx.ctx.latent_encode(fx.g["latent.z"])
    assert rel(le.mu, fx.g["latent.e_mu"]) <= fx.tol
    assert rel(le.logvar, fx.g["latent.e_logvar"]) <= fx.tol
    e = fx.ctx.embedding_sample(fx.temperature, fx.seed, 0)
    assert rel(e, fx.g["sample.e"]) <= TOL_F32
    np.testing.assert_array_equal(e, fx.model.embedding_sample(fx.temperature, fx.seed))


def test_sample_golden(fx):
    one = fx.ctx.sample(fx.cls, fx.temperature, fx.seed)
    assert one.shape == (fx.model.info.sample_length,) and one.dtype == np.float32
    assert rel(one, fx.g["sample.audio"]) <= fx.tol
    three = fx.ctx.sample(fx.cls, fx.temperature, fx.seed, count=3)
    assert three.shape == (3, fx.model.info.sample_length)
    np.testing.assert_array_equal(three[0], one)
    assert rel(three[1], three[0]) > 1e-2
    other = fx.ctx.sample(fx.cls, fx.temperature, fx.seed + 1)
    assert rel(other, one) > 1e-2


def test_precision_fast_context(fx):
    """Context(precision=...): "fp32" is the default path bit for bit; "fast" (bf16
    products) runs where the CPU has AVX512_BF16 (else fp32, said by ctx.precision), within
    test_util.h's kTolFastSample (5e-3) of fp32 on the golden one-shot and the golden; count
    > 1 equals the separate one-shots (embedding i, latent_decode, decode with sequence i)."""
    c32 = fx.model.context(precision="fp32")
    assert c32.precision == "fp32"
    one = c32.sample(fx.cls, fx.temperature, fx.seed)
    np.testing.assert_array_equal(one, fx.ctx.sample(fx.cls, fx.temperature, fx.seed))
    cf = fx.model.context(precision=ngs.Precision.FAST)
    assert cf.precision in ("fp32", "fast")
    fast = cf.sample(fx.cls, fx.temperature, fx.seed)
    assert rel(fast, one) <= 5e-3
    assert rel(fast, fx.g["sample.audio"]) <= 5e-3
    if cf.precision == "fast":
        assert rel(fast, one) > 0  # the bf16 path ran
    for ctx in (c32, cf):
        five = ctx.sample(fx.cls, fx.temperature, fx.seed, count=5)
        for i in range(5):
            e = fx.model.embedding_sample(fx.temperature, fx.seed, i)
            z = ctx.latent_decode(e, fx.cls)
            np.testing.assert_array_equal(five[i], ctx.decode(z, seed=fx.seed, sequence=i))
    for bad in ("fp16", "FAST", 1, None):
        with pytest.raises(ValueError):
            fx.model.context(precision=bad)


def test_interpolation_golden(fx):
    j = json.loads(fx.meta["golden.interp_params"])
    cls = None if j["class_index"] < 0 else j["class_index"]
    a = fx.ctx.sample_interpolation(j["steps"], cls, j["temperature"], j["seed"])
    assert a.shape == (j["steps"], fx.model.info.sample_length)
    assert rel(a, fx.g["interp.audio"]) <= fx.tol


def test_paths_golden(fx):
    j = json.loads(fx.meta["golden.path_params"])
    kw = {k: j[k] for k in ("temperature", "seed", "sequence", "turns", "points", "legs", "gamma")}
    for kind in ngs.PATH_KINDS:
        z = fx.ctx.path(kind, j["n"], **kw)
        assert z.shape == (j["n"], fx.model.info.z_dim)
        assert rel(z, fx.g["path." + kind]) <= TOL_F32, kind
        np.testing.assert_array_equal(z, fx.model.path(ngs.PathKind[kind.upper()], n_grains=j["n"], **kw))
    z = fx.ctx.path("line", seconds=1.0, seed=3)
    assert z.shape[0] == fx.model.grains_for_duration(1.0)


def test_preprocess_golden(fx):
    pin = fx.g["preprocess.in"]
    keep = pin.copy()
    out = fx.ctx.preprocess(pin, normalize=False)
    np.testing.assert_array_equal(pin, keep)  # the input is not changed
    assert rel(out, fx.g["preprocess.out"]) <= TOL_F32
    assert abs(np.max(np.abs(out)) - 0.9) < 1e-6  # the input peak was >= 1
    quiet = (pin * 0.1).astype(np.float32)
    assert np.max(np.abs(fx.ctx.preprocess(quiet))) < 0.9 - 1e-3
    assert abs(np.max(np.abs(fx.ctx.preprocess(quiet, normalize=True))) - 0.9) < 1e-6


def test_resynthesize_golden(fx):
    j = json.loads(fx.meta["golden.resynth_params"])
    out = fx.ctx.resynthesize(fx.g["resynth.in"], j["seed"], j["segment_grains"], j["crossfade"])
    assert out.shape == fx.g["resynth.in"].shape
    assert rel(out, fx.g["resynth.out"]) <= fx.tol


def test_resynthesize_progress(fx):
    j = json.loads(fx.meta["golden.resynth_params"])
    x = np.random.default_rng(17).uniform(-0.5, 0.5, 5 * fx.model.info.sample_length).astype(np.float32)
    args = (x, j["seed"], j["segment_grains"], j["crossfade"])
    plain = fx.ctx.resynthesize(*args)
    seen = []
    with_cb = fx.ctx.resynthesize(*args, progress=seen.append)
    assert len(seen) >= 2
    assert all(b > a for a, b in zip(seen, seen[1:])) and seen[0] > 0 and seen[-1] == 1.0
    np.testing.assert_array_equal(plain, with_cb)

    def boom(f):
        raise RuntimeError("stop %g" % f)
    with pytest.raises(RuntimeError, match="stop"):
        fx.ctx.resynthesize(*args, progress=boom)
    with pytest.raises(TypeError):
        fx.ctx.resynthesize(*args, progress=3)


def test_render_loop_golden(fx):
    j = json.loads(fx.meta["golden.loop_events"])
    evs = [(None if e["class_index"] < 0 else e["class_index"], e["onset"], e["amplitude"])
           for e in j["events"]]
    a = fx.ctx.render_loop(evs, j["loop_length"], j["temperature"], j["seed"])
    assert a.shape == (j["loop_length"],)
    assert rel(a, fx.g["loop.audio"]) <= fx.tol
    # the other event spellings give the same loop
    b = fx.ctx.render_loop([ngs.LoopEvent(*e) for e in evs], j["loop_length"], j["temperature"], j["seed"])
    c = fx.ctx.render_loop([dict(class_index=e[0], onset=e[1], amplitude=e[2]) for e in evs],
                           j["loop_length"], j["temperature"], j["seed"])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    silence = fx.ctx.render_loop([], 1000)
    np.testing.assert_array_equal(silence, np.zeros(1000, np.float32))


def test_fp16_model_golden(fixtures_dir):
    f = Fix(fixtures_dir, "lstm22k", fp16=True)
    try:
        assert f.model.info.weight_bits == 16
        assert rel(f.ctx.sample(f.cls, f.temperature, f.seed), f.g["sample.audio"]) <= TOL_F16
        assert rel(f.ctx.decode(f.g["decode.z"], seed=f.seed), f.g["decode.audio"]) <= TOL_F16
    finally:
        f.close()


def test_from_bytes_and_waveform_only_model(fixtures_dir, lstm):
    data = (lstm.dir / "model.safetensors").read_bytes()
    with ngs.Model.from_bytes(data, backend=BACKEND) as m:
        a = m.context().decode(lstm.g["decode.z"], seed=lstm.seed)
        assert rel(a, lstm.g["decode.audio"]) <= TOL_F32
    assert m.closed
    with ngs.Model(lstm.dir / "model_waveform_only.safetensors", backend=BACKEND) as w:
        assert w.info.has_latent_model is False and w.info.e_dim == 0 and w.classes == ()
        ctx = w.context()
        a = ctx.decode(lstm.g["decode.z"], seed=lstm.seed)
        assert rel(a, lstm.g["decode.audio"]) <= TOL_F32
        for call in (lambda: ctx.sample(), lambda: ctx.latent_decode(np.ones(32, np.float32)),
                     lambda: ctx.latent_encode(lstm.g["latent.z"]),
                     lambda: ctx.embedding_sample(),
                     lambda: ctx.sample_interpolation(2),
                     lambda: ctx.render_loop([(None, 0.0, 1.0)], 1000)):
            with pytest.raises(ngs.NgsError) as ei:
                call()
            assert ei.value.status == ngs.Status.UNSUPPORTED and ei.value.message


def test_inputs_converted_float64_strided_lists(lstm):
    z = lstm.g["decode.z"]
    ref = lstm.ctx.decode(z, seed=lstm.seed)
    np.testing.assert_array_equal(lstm.ctx.decode(z.astype(np.float64), seed=lstm.seed), ref)
    np.testing.assert_array_equal(lstm.ctx.decode(z.tolist(), seed=lstm.seed), ref)
    wide = np.zeros((z.shape[0], 2 * z.shape[1]), np.float32)
    wide[:, ::2] = z
    assert not wide[:, ::2].flags.c_contiguous
    np.testing.assert_array_equal(lstm.ctx.decode(wide[:, ::2], seed=lstm.seed), ref)
    np.testing.assert_array_equal(lstm.ctx.decode(np.asfortranarray(z), seed=lstm.seed), ref)
    audio = lstm.g["encode.audio"]
    e = lstm.ctx.encode(audio, seed=lstm.seed)
    e2 = lstm.ctx.encode(audio[::-1].copy()[::-1], seed=lstm.seed)  # negative stride
    np.testing.assert_array_equal(e.z, e2.z)


def test_out_buffers(lstm):
    z = lstm.g["decode.z"]
    n = lstm.model.audio_length(z.shape[0])
    out = np.full(n, np.nan, np.float32)
    r = lstm.ctx.decode(z, seed=lstm.seed, out=out)
    assert r is out and np.all(np.isfinite(out))
    assert rel(out, lstm.g["decode.audio"]) <= TOL_F32
    sl = lstm.model.info.sample_length
    out2 = np.full((2, sl), np.nan, np.float32)
    assert lstm.ctx.sample(lstm.cls, lstm.temperature, lstm.seed, count=2, out=out2) is out2
    assert rel(out2[0], lstm.g["sample.audio"]) <= TOL_F32
    for bad in (np.zeros(n, np.float64), np.zeros(n + 1, np.float32), np.zeros(2 * n, np.float32)[::2],
                [0.0] * n):
        with pytest.raises(ValueError):
            lstm.ctx.decode(z, out=bad)
    ro = np.zeros(n, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        lstm.ctx.decode(z, out=ro)


# ---- errors ---------------------------------------------------------------------------

def _ngs_error(call, status):
    with pytest.raises(ngs.NgsError) as ei:
        call()
    e = ei.value
    assert e.status == status, (e.status, e.message)
    assert isinstance(e.message, str) and e.message, "NgsError without a message"
    assert e.message in str(e)
    return e


def test_model_load_errors(tmp_path, lstm):
    e = _ngs_error(lambda: ngs.Model(tmp_path / "missing.safetensors"), ngs.Status.IO_ERROR)
    assert "missing.safetensors" in e.message and e.function == "ngs_model_init_from_file"
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(fresh_rng().bytes(4096))
    _ngs_error(lambda: ngs.Model(garbage), ngs.Status.BAD_MODEL)
    data = (lstm.dir / "model.safetensors").read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) // 2])
    _ngs_error(lambda: ngs.Model(trunc), ngs.Status.BAD_MODEL)
    with pytest.raises(ngs.NgsError):
        ngs.Model.from_bytes(b"")
    _ngs_error(lambda: ngs.Model.from_bytes(data[:100]), ngs.Status.BAD_MODEL)
    for bad in (None, 3.5, [1, 2]):
        with pytest.raises(ValueError):
            ngs.Model(bad)
    with pytest.raises(ValueError):
        ngs.Model.from_bytes(None)
    with pytest.raises(ValueError, match="backend"):
        ngs.Model(lstm.file, backend="gpu")
    with pytest.raises(ValueError, match="NUL"):
        ngs.Model("a\0b")


def test_cuda_backend_unavailable_or_working(lstm):
    ok, why = ngs.backend_probe("cuda")
    assert ngs.backend_available("cpu")
    if not ok:
        assert why
        e = _ngs_error(lambda: ngs.Model(lstm.file, backend="cuda"), ngs.Status.UNSUPPORTED)
        assert "CUDA" in e.message
        with ngs.Model(lstm.file, backend="auto") as m:
            assert m.info.backend == "cpu"
    else:
        with ngs.Model(lstm.file, backend="cuda") as m:
            assert m.info.backend == "cuda"
            a = m.context().decode(lstm.g["decode.z"], seed=lstm.seed)
            assert rel(a, lstm.g["decode.audio"]) <= TOL_F32


def test_nan_inf_inputs_raise_ngs_error(lstm):
    ctx = lstm.ctx
    for bad in (np.nan, np.inf, -np.inf):
        z = lstm.g["decode.z"].copy()
        z[3, 5] = bad
        e = _ngs_error(lambda: ctx.decode(z, seed=1), ngs.Status.INVALID_ARGUMENT)
        assert "z" in e.message and "finite" in e.message
        a = lstm.g["encode.audio"].copy()
        a[100] = bad
        _ngs_error(lambda: ctx.encode(a), ngs.Status.INVALID_ARGUMENT)
        _ngs_error(lambda: ctx.resynthesize(a), ngs.Status.INVALID_ARGUMENT)
        _ngs_error(lambda: ctx.preprocess(a), ngs.Status.INVALID_ARGUMENT)
        e_ = lstm.g["latent.e"].copy()
        e_[0] = bad
        _ngs_error(lambda: ctx.latent_decode(e_, lstm.cls), ngs.Status.INVALID_ARGUMENT)
        zl = lstm.g["latent.z"].copy()
        zl[0, 0] = bad
        _ngs_error(lambda: ctx.latent_encode(zl), ngs.Status.INVALID_ARGUMENT)
        _ngs_error(lambda: ctx.sample(lstm.cls, temperature=bad), ngs.Status.INVALID_ARGUMENT)
        _ngs_error(lambda: ctx.render_loop([(0, bad, 1.0)], 1000), ngs.Status.INVALID_ARGUMENT)
    # float64 values beyond float32 become Inf: the library reports them
    big = lstm.g["decode.z"].astype(np.float64)
    big[0, 0] = 1e300
    _ngs_error(lambda: ctx.decode(big), ngs.Status.INVALID_ARGUMENT)
    _ngs_error(lambda: ctx.sample(lstm.cls, temperature=-1.0), ngs.Status.INVALID_ARGUMENT)
    _ngs_error(lambda: ctx.sample(lstm.cls, temperature=1e300), ngs.Status.INVALID_ARGUMENT)
    with pytest.raises(ValueError):
        ctx.sample(lstm.cls, temperature=10 ** 400)
    # the context still works after errors
    assert rel(ctx.decode(lstm.g["decode.z"], seed=lstm.seed), lstm.g["decode.audio"]) <= TOL_F32


def test_bad_arrays_raise_value_error(lstm):
    ctx, info = lstm.ctx, lstm.model.info
    z = lstm.g["decode.z"]
    bad_z = [None, "abc", b"abc", np.array(["a", "b"]), np.zeros((3, info.z_dim), complex),
             np.zeros((3, info.z_dim), bool), np.array([object(), object()], dtype=object),
             np.zeros((3, info.z_dim + 1), np.float32), z.ravel(), z[None],
             np.zeros((0, info.z_dim), np.float32), 3.0, [[1, 2], [3]]]
    for b in bad_z:
        with pytest.raises(ValueError):
            ctx.decode(b)
        with pytest.raises(ValueError):
            ctx.latent_encode(b)
    hop = info.hop_size
    for b in (None, np.zeros((2, 4 * hop), np.float32), np.zeros(4 * hop + 1, np.float32),
              np.zeros(3 * hop, np.float32), np.zeros(4 * hop, complex), "x"):
        with pytest.raises(ValueError):
            ctx.encode(b)
    for b in (None, np.zeros(0, np.float32), np.zeros((5, 5), np.float32), "x"):
        with pytest.raises(ValueError):
            ctx.resynthesize(b)
        with pytest.raises(ValueError):
            ctx.preprocess(b)
    for b in (None, np.zeros(info.e_dim + 1, np.float32), np.zeros((1, info.e_dim), np.float32)):
        with pytest.raises(ValueError):
            ctx.latent_decode(b, lstm.cls)


def test_bad_scalars_classes_and_capacity(lstm):
    ctx, m, info = lstm.ctx, lstm.model, lstm.model.info
    z = lstm.g["decode.z"]
    for seed in (-1, 1 << 64, 1.5, "1", None, True):
        with pytest.raises(ValueError):
            ctx.decode(z, seed=seed)
    with pytest.raises(ValueError):
        ctx.decode(z, sequence=1 << 32)
    with pytest.raises(ValueError, match="no class"):
        ctx.sample("NoSuchClass")
    _ngs_error(lambda: ctx.sample(info.n_classes), ngs.Status.INVALID_ARGUMENT)
    _ngs_error(lambda: ctx.sample(-5), ngs.Status.INVALID_ARGUMENT)
    _ngs_error(lambda: ctx.sample(None), ngs.Status.INVALID_ARGUMENT)  # conditional model
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError):
            ctx.sample(0, count=bad)
    with pytest.raises(ValueError):
        ctx.sample_interpolation(1, 0)
    with pytest.raises(ValueError, match="path kind"):
        ctx.path("zigzag", 10)
    with pytest.raises(ValueError):
        ctx.path("line")  # neither n_grains nor seconds
    with pytest.raises(ValueError):
        ctx.path("line", 10, 1.0)  # both
    with pytest.raises(ValueError):
        ctx.path("line", seconds=1e-4)
    with pytest.raises(ValueError):
        ctx.path("line", 0)
    _ngs_error(lambda: ctx.path("line", 10, temperature=np.nan), ngs.Status.INVALID_ARGUMENT)
    with pytest.raises(ValueError):
        m.metadata(None)
    with pytest.raises(ValueError):
        ctx.render_loop(None, 100)
    with pytest.raises(ValueError):
        ctx.render_loop([(0,)], 100)
    with pytest.raises(ValueError):
        ctx.render_loop([(0, 0.0, 1.0)], 0)
    _ngs_error(lambda: ctx.render_loop([(0, 1.5, 1.0)], 100), ngs.Status.INVALID_ARGUMENT)
    _ngs_error(lambda: ctx.render_loop([(0, 0.0, 2.0)], 100), ngs.Status.INVALID_ARGUMENT)
    # capacity: a small context
    with m.context(max_grains=info.n_grains, max_loop_length=1000) as small:
        small.decode(z)
        big = np.concatenate([z, z])
        _ngs_error(lambda: small.decode(big), ngs.Status.CAPACITY)
        _ngs_error(lambda: small.render_loop([], 1001), ngs.Status.CAPACITY)
        assert small.max_loop_length == 1000 and small.max_grains == info.n_grains
        small.render_loop([], 1000)
    with m.context(max_grains=info.n_grains - 1) as tiny:
        _ngs_error(lambda: tiny.sample(0), ngs.Status.CAPACITY)
    _ngs_error(lambda: m.context(n_threads=-3), ngs.Status.INVALID_ARGUMENT)
    with pytest.raises(ValueError):
        m.context(max_grains=-1)
    with pytest.raises(ValueError):
        ngs.Context("not a model")


def test_closed_handles(fixtures_dir, lstm):
    m = ngs.Model(lstm.file, backend=BACKEND)
    c1, c2 = m.context(), m.context()
    c1.close()
    c1.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        c1.decode(lstm.g["decode.z"])
    c2.decode(lstm.g["decode.z"])
    m.close()  # closes c2 first
    assert c2.closed and m.closed
    with pytest.raises(ValueError, match="closed"):
        c2.decode(lstm.g["decode.z"])
    for call in (lambda: m.info, lambda: m.classes, lambda: m.context(), lambda: m.metadata("x"),
                 lambda: m.path("line", 5), lambda: m.preprocess(np.ones(10))):
        with pytest.raises(ValueError, match="closed"):
            call()
    m.close()
    # contexts keep their model alive without a reference from the caller
    ctx = ngs.Model(lstm.file, backend=BACKEND).context()
    import gc
    gc.collect()
    assert rel(ctx.decode(lstm.g["decode.z"], seed=lstm.seed), lstm.g["decode.audio"]) <= TOL_F32
    ctx.close()


def test_garbage_collected_cycles_free_contexts_before_the_model(lstm):
    """A model and its contexts in one reference cycle: the collector may finalize the model
    first; the C model must still be freed only after its contexts (ngs.h)."""
    import gc
    freed = []
    lib = ngs.load_library()
    real_model_free, real_ctx_free = lib.ngs_model_free, lib.ngs_context_free

    class Spy:
        def __init__(self, f, tag):
            self.f, self.tag = f, tag

        def __call__(self, h):
            freed.append(self.tag)
            return self.f(h)

    lib.ngs_model_free, lib.ngs_context_free = Spy(real_model_free, "model"), Spy(real_ctx_free, "ctx")
    try:
        for first_model in (True, False):
            freed.clear()
            m = ngs.Model(lstm.file, backend=BACKEND)
            c1, c2 = m.context(), m.context()
            cycle = [m, c1, c2]
            m.cycle = c1.cycle = c2.cycle = cycle
            if first_model:  # what the collector may do: the weak references go first
                m._contexts = ngs.weakref.WeakSet()
                m.__del__()
                assert freed == [] and m.closed and not c1.closed
            del m, c1, c2, cycle
            gc.collect()
            assert sorted(freed) == ["ctx", "ctx", "model"] and freed[-1] == "model", freed
    finally:
        lib.ngs_model_free, lib.ngs_context_free = real_model_free, real_ctx_free


def test_random_garbage_never_crashes(lstm):
    """Many random bad arguments to every method: only ValueError or NgsError."""
    r = fresh_rng()
    ctx, m = lstm.ctx, lstm.model
    zd, ed = m.info.z_dim, m.info.e_dim

    def garbage():
        k = r.integers(0, 9)
        if k == 0:
            return None
        if k == 1:
            return r.normal(size=tuple(r.integers(0, 5, size=r.integers(0, 4)))).astype(
                r.choice([np.float32, np.float64, np.int32, np.float16]))
        if k == 2:
            a = r.normal(size=(int(r.integers(1, 30)), zd)).astype(np.float32)
            a.flat[r.integers(0, a.size)] = r.choice([np.nan, np.inf, -np.inf, 1e38])
            return a
        if k == 3:
            return r.normal(size=int(r.integers(0, 3000))) * 10.0 ** r.integers(-3, 40)
        if k == 4:
            return float(r.choice([np.nan, -1.0, 1e30, 0.0]))
        if k == 5:  # no large valid counts (a huge count is a legal, endless request)
            return int(r.choice([-5, -1, 0, 1, 2, 2**31, 2**40, 2**64, -2**63]))
        if k == 6:
            return "garbage"
        if k == 7:
            return np.zeros(ed, np.complex64)
        return [[r.normal()] * int(r.integers(0, 4))]

    calls = [
        lambda: ctx.decode(garbage(), seed=garbage()),
        lambda: ctx.encode(garbage(), seed=garbage()),
        lambda: ctx.latent_decode(garbage(), garbage(), garbage()),
        lambda: ctx.latent_encode(garbage()),
        lambda: ctx.embedding_sample(garbage(), garbage(), garbage()),
        lambda: ctx.sample(garbage(), garbage(), garbage()),
        lambda: ctx.sample_interpolation(garbage(), garbage(), garbage()),
        lambda: ctx.path(garbage(), garbage(), temperature=garbage()),
        lambda: ctx.preprocess(garbage(), garbage()),
        lambda: ctx.resynthesize(garbage(), garbage(), garbage(), garbage()),
        lambda: ctx.render_loop([(garbage(), garbage(), garbage())], garbage()),
        lambda: m.metadata(garbage()),
        lambda: m.class_index(garbage()),
        lambda: m.grains_for_duration(garbage()),
    ]
    n_err = 0
    for _ in range(400):
        try:
            out = calls[r.integers(0, len(calls))]()
        except (ValueError, ngs.NgsError) as e:
            n_err += 1
            assert str(e)
            continue
        if isinstance(out, np.ndarray):
            assert out.dtype == np.float32
    assert n_err > 100
    assert rel(ctx.decode(lstm.g["decode.z"], seed=lstm.seed), lstm.g["decode.audio"]) <= TOL_F32


def test_threads_own_contexts_match_serial(lstm):
    """One model, one context per thread (the C calls release the GIL): same results."""
    r = fresh_rng()
    zs = [r.normal(size=(int(r.integers(3, 30)), lstm.model.info.z_dim)).astype(np.float32)
          for _ in range(4)]
    serial = [lstm.ctx.decode(z, seed=7 + i) for i, z in enumerate(zs)]
    got = [None] * len(zs)
    errors = []

    def work(i):
        try:
            with lstm.model.context() as c:
                for _ in range(3):
                    got[i] = c.decode(zs[i], seed=7 + i)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(zs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for a, b in zip(got, serial):
        np.testing.assert_array_equal(a, b)
    # a failing call on another thread does not change this thread's error message
    z = zs[0].copy()
    z[0, 0] = np.nan
    with pytest.raises(ngs.NgsError) as mine:
        lstm.ctx.decode(z)
    def other():
        try:
            ngs.Model("/nonexistent/x")
        except ngs.NgsError:
            pass

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert "finite" in ngs._last_error() and "finite" in mine.value.message


def test_ngs_error_pickles():
    import pickle
    e = ngs.NgsError(ngs.Status.CAPACITY, "too long", "ngs_decode")
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.status, e2.message, e2.function, str(e2)) == (e.status, e.message, e.function, str(e))
    assert "capacity" in str(e) and "too long" in str(e) and "ngs_decode" in str(e)


def test_docs_example_runs(lstm, capsys):
    """The example of docs/BINDINGS.md, on the lstm22k fixture (it has Kick, Snare, Hat)."""
    text = (ROOT / "docs" / "BINDINGS.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert '"models/drums.safetensors"' in code
    code = code.replace('"models/drums.safetensors"', repr(str(lstm.file)))
    ns = {}
    exec(compile(code, "docs/BINDINGS.md", "exec"), ns)
    info = ns["info"]
    assert ns["kick"].shape == (info.sample_length,)
    assert ns["snares"].shape == (4, info.sample_length)
    assert ns["morph"].shape == (5, info.sample_length)
    assert ns["drone"].shape == ((ns["z"].shape[0] + 3) * info.hop_size,)
    assert ns["resynth"].shape == (info.sample_rate,)
    assert ns["loop"].shape == (2 * info.sample_rate,)
    for k in ("kick", "snares", "morph", "drone", "resynth", "kick_like", "loop"):
        assert np.all(np.isfinite(ns[k])) and np.max(np.abs(ns[k])) > 0, k
    assert "INVALID_ARGUMENT" in capsys.readouterr().out
    assert ns["model"].closed


# ---- calls in flight: close() and a second thread (issue 9 item 8) ----------------------
# Each scenario runs in a child interpreter: on bindings without the per-call guard it
# frees a context under a running call, which may crash the interpreter.

_IN_FLIGHT_PRELUDE = r'''
import sys, threading
import numpy as np
import ngs
ngs.load_library(sys.argv[1])
model = ngs.Model(sys.argv[2], backend=sys.argv[3])
ctx = model.context()
info = model.info
seed = int(np.random.SeedSequence().entropy % (1 << 64))
print("seed", seed)
r = np.random.default_rng(seed)
x = r.uniform(-0.5, 0.5, 6 * info.sample_length).astype(np.float32)  # several segments
z = r.normal(size=(info.n_grains, info.z_dim)).astype(np.float32)
ref = ctx.resynthesize(x, seed=5, segment_grains=info.n_grains // 2)
ref_decode = ctx.decode(z, seed=5)
def resynth(progress):
    out = np.full(x.shape, np.nan, np.float32)  # poisoned
    return ctx.resynthesize(x, seed=5, segment_grains=info.n_grains // 2, out=out,
                            progress=progress)
'''


def _in_flight(lstm, body):
    code = _IN_FLIGHT_PRELUDE + body + "\nprint('ok')\n"
    r = subprocess.run([sys.executable, "-c", code, ngs.library_path(), str(lstm.file), BACKEND],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(BINDINGS)))
    assert r.returncode == 0 and r.stdout.rstrip().endswith("ok"), (
        "child exited with %d\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr))


@pytest.mark.parametrize("what", ["context", "model"])
def test_close_from_another_thread_waits_for_the_call(lstm, what):
    _in_flight(lstm, r'''
what = %r
closer, errors = None, []
def close():
    try:
        (ctx if what == "context" else model).close()
    except BaseException as e:
        errors.append(e)
def progress(f):
    global closer
    if closer is None:
        closer = threading.Thread(target=close)
        closer.start()
        # close() cannot finish while this call runs: still blocked after a second
        closer.join(1.0)
        assert closer.is_alive(), "close() returned during a call in flight"
        assert not ctx.closed and not model.closed
out = resynth(progress)
closer.join()
assert not errors, errors
np.testing.assert_array_equal(out, ref)
assert ctx.closed and (model.closed or what == "context")
try:
    ctx.decode(z)
    raise AssertionError("a closed context ran a call")
except ValueError as e:
    assert "closed" in str(e)
''' % what)


def test_close_from_the_progress_callback_is_refused(lstm):
    _in_flight(lstm, r'''
seen = []
def close_ctx(f):
    if not seen:
        seen.append(f)
        ctx.close()
try:
    resynth(close_ctx)
    raise AssertionError("Context.close() in the progress callback did not raise")
except RuntimeError as e:
    assert "close" in str(e) and "callback" in str(e), e
assert not ctx.closed
np.testing.assert_array_equal(resynth(None), ref)   # the context is intact
def close_model(f):
    model.close()
try:
    resynth(close_model)
    raise AssertionError("Model.close() in the progress callback did not raise")
except RuntimeError as e:
    assert "Model.close" in str(e), e
assert not model.closed and not ctx.closed
# another call on the same context from its own callback is refused as well
def reenter(f):
    ctx.decode(z)
try:
    resynth(reenter)
    raise AssertionError("a call from the progress callback did not raise")
except RuntimeError as e:
    assert "inside another call" in str(e), e
np.testing.assert_array_equal(ctx.decode(z, seed=5), ref_decode)
model.close()
assert ctx.closed and model.closed
''')


def test_context_used_from_two_threads_raises(lstm):
    _in_flight(lstm, r'''
results = {}
def other():
    for name, call in (("decode", lambda: ctx.decode(z, seed=5)),
                       ("sample", lambda: ctx.sample(0, seed=5)),
                       ("encode", lambda: ctx.encode(ref_decode))):
        try:
            call()
            results[name] = "ran"
        except ngs.ContextBusyError as e:
            results[name] = str(e)
done = []
def progress(f):
    if not done:
        done.append(f)
        t = threading.Thread(target=other)
        t.start()
        t.join()   # the other thread's calls are refused at once, not queued
out = resynth(progress)
assert set(results) == {"decode", "sample", "encode"}, results
for name, msg in results.items():
    assert "another thread" in msg and name in msg, (name, msg)
np.testing.assert_array_equal(out, ref)
# once the call is over the context serves any thread, with the right numbers
got = []
t = threading.Thread(target=lambda: got.append(ctx.decode(z, seed=5)))
t.start(); t.join()
np.testing.assert_array_equal(got[0], ref_decode)
# model-level processes are not tied to a context: allowed during a context's call
def model_call(f):
    model.embedding_sample(1.0, 3)
    ctx.path("line", 5)
np.testing.assert_array_equal(resynth(model_call), ref)
''')


# ---- seeds: the full uint64 range (issue 16) ---------------------------------------------

def test_seeds_cover_uint64_and_match_the_c_api(lstm):
    """Seeds up to 2^64 - 1 are accepted and give what the C API gives for that seed (a raw
    ctypes call with the same uint64, and the Philox reference for the embedding); 2^64 and
    -1 are refused."""
    from weights_converter import rng as RNG
    lib, ctx, info = ngs.load_library(), lstm.ctx, lstm.model.info
    z = lstm.g["decode.z"]
    n = z.shape[0]
    length = (n + 3) * info.hop_size
    outs = {}
    for seed in ((1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        a = ctx.decode(z, seed=seed)
        raw = np.full(length, np.nan, np.float32)
        p = lib.ngs_decode_default_params()
        p.seed = seed
        zc = np.ascontiguousarray(z, np.float32)
        assert lib.ngs_decode(ctx._handle, zc.ctypes.data, n, p, raw.ctypes.data, length) == 0
        assert p.seed == seed  # the C struct holds all 64 bits
        np.testing.assert_array_equal(a, raw)
        e = lstm.model.embedding_sample(0.7, seed=seed, sequence=2)
        ref = np.asarray(RNG.embedding_sample(seed, 2, info.e_dim, 0.7), np.float64)
        assert rel(e, ref) <= TOL_F32
        s = ctx.sample(lstm.cls, 1.0, seed=seed)
        raws = np.full(info.sample_length, np.nan, np.float32)
        sp = lib.ngs_sample_default_params()
        sp.class_index, sp.temperature, sp.seed, sp.count = lstm.cls, 1.0, seed, 1
        assert lib.ngs_sample(ctx._handle, sp, raws.ctypes.data, info.sample_length) == 0
        np.testing.assert_array_equal(s, raws)
        outs[seed] = (a, e)
    # the top bit matters: 2^63 - 1, 2^63 and 2^64 - 1 are three different streams
    seeds = sorted(outs)
    for i in range(3):
        for j in range(i):
            assert rel(outs[seeds[i]][0], outs[seeds[j]][0]) > 1e-2
            assert rel(outs[seeds[i]][1], outs[seeds[j]][1]) > 1e-2
    for bad in (1 << 64, -1):
        with pytest.raises(ValueError, match="seed"):
            ctx.decode(z, seed=bad)
        with pytest.raises(ValueError, match="seed"):
            ctx.sample(lstm.cls, seed=bad)
        with pytest.raises(ValueError, match="seed"):
            lstm.model.embedding_sample(seed=bad)
