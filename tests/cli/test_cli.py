"""Tests of the `ngs` command line, run by ctest (tests/cpp/cli.cmake) on a fixture model.

Environment: NGS_BIN (the built ngs program), NGS_FIXTURES_DIR (weights_converter
make_fixtures output), NGS_LIBRARY (the built libngs.so, for the Python bindings; found
in the build folder otherwise). Audio is read back with Python's own `wave` module (PCM)
or a small RIFF reader (float WAV); latents with numpy. Every output is compared with the
C API's result for the same options (through the Python bindings, bindings/python) or
with the golden fixture, and two seeds must give different outputs. Every error case
checks: non-zero exit status, exactly one stderr line "ngs: error: ...", and no output
(or temporary) file left.
"""
import glob
import json
import math
import os
import resource
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np
import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, _REPO)
sys.path.insert(0, os.path.join(_REPO, "bindings", "python"))
from weights_converter import safetensors  # noqa: E402
import ngs as api  # noqa: E402  (the C API through the Python bindings)

NGS = os.environ.get("NGS_BIN", "")
FIXTURES = os.environ.get("NGS_FIXTURES_DIR", "")


# ---- helpers ---------------------------------------------------------------------------

def _limit_memory(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def run(*args, ok=True, memory_limit=None):
    """Runs ngs; memory_limit (bytes of address space) makes a large allocation fail."""
    p = subprocess.run([NGS, *map(str, args)], capture_output=True, text=True, timeout=300,
                       preexec_fn=_limit_memory(memory_limit) if memory_limit else None)
    if ok:
        assert p.returncode == 0, f"ngs {' '.join(map(str, args))} failed:\n{p.stderr}"
        assert "\r" not in p.stderr, "progress bar drawn although stderr is a pipe"
    return p


def read_wav(path):
    """(samples float64 [n] mono, sample rate) of a mono PCM or float WAV."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", f"{path} is not a WAV file"
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            pcm = body
            assert len(body) == size, "data chunk truncated"
        pos += 8 + size + (size & 1)
    assert fmt is not None and pcm is not None
    tag, channels, rate, _, _, bits = fmt
    assert channels == 1, "ngs writes mono"
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag
        i = data.find(b"fmt ") + 8
        tag = struct.unpack("<H", data[i + 24:i + 26])[0]
    if tag == 3:
        assert bits == 32
        x = np.frombuffer(pcm, dtype="<f4").astype(np.float64)
    else:
        assert tag == 1, f"unexpected WAV format tag {tag}"
        if bits == 16:
            x = np.frombuffer(pcm, dtype="<i2") / 32768.0
        elif bits == 24:
            b = np.frombuffer(pcm, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            v = np.where(v >= 1 << 23, v - (1 << 24), v)
            x = v / float(1 << 23)
        else:
            raise AssertionError(f"unexpected bit depth {bits}")
    # Cross-check PCM files with the standard library reader.
    if tag == 1:
        with wave.open(path, "rb") as w:
            assert w.getframerate() == rate and w.getnframes() == len(x)
    return x, rate


def write_wav(path, x, rate, channels=1):
    """16-bit PCM WAV from float samples [n] or [n, channels]."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, channels)
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def write_wav_float(path, x, rate):
    """Mono 32-bit float WAV (format tag 3)."""
    data = np.asarray(x, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + \
        struct.pack("<I", len(data)) + data
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def read_safetensors(path):
    return safetensors.load(path)  # (tensors, metadata)


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def assert_audio(x, n=None):
    assert np.all(np.isfinite(x))
    if n is not None:
        assert len(x) == n, f"length {len(x)}, expected {n}"
    assert np.max(np.abs(x)) > 1e-4, "silent output"
    assert np.max(np.abs(x)) <= 1.0


def assert_error(p, outputs, folder):
    assert p.returncode != 0, "expected a failure"
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("ngs: error: "), f"stderr: {p.stderr!r}"
    for o in outputs:
        assert not os.path.exists(o), f"{o} left behind"
    leftovers = [f for f in os.listdir(folder) if ".tmp" in f]
    assert not leftovers, f"temporary files left: {leftovers}"


def assert_same(x, ref, what, tol=1e-5):
    """CLI output x equals the C API's ref (float WAV / .npy: float32 both ways)."""
    ref = np.ravel(np.asarray(ref, np.float64))
    x = np.ravel(np.asarray(x, np.float64))
    assert len(x) == len(ref), f"{what}: length {len(x)}, the C API gives {len(ref)}"
    assert np.all(np.isfinite(ref)) and np.max(np.abs(ref)) > 0, f"{what}: degenerate reference"
    err = rel_l2(x, ref)
    assert err < tol, f"{what}: relative L2 {err:.3g} from the C API's output"


def assert_differ(a, b, what):
    assert rel_l2(a, b) > 1e-3, f"{what}: two seeds gave the same output"


def read_f32_wav(path):
    x, _ = read_wav(path)
    return x


def grains_for_duration(seconds, sr, l_grain):
    tar_l = math.floor(seconds * sr / l_grain) * l_grain
    return 4 * tar_l // l_grain - 3


# ---- fixtures --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def model():
    assert NGS and os.access(NGS, os.X_OK), "NGS_BIN does not name the ngs program"
    candidates = sorted(glob.glob(os.path.join(FIXTURES, "*", "model.safetensors")))
    assert candidates, (f"no fixture models in {FIXTURES!r}: run "
                        "/usr/bin/python3 -m weights_converter.make_fixtures --out <build>/fixtures")
    best = None
    for path in candidates:
        info = json.loads(run("info", path, "--json").stdout)
        if info["has_latent_model"] and info["n_classes"] > 1:
            best = (path, info)
            break
    assert best, f"no conditional fixture model among {candidates}"
    return best


@pytest.fixture(scope="session")
def lib(model):
    """The fixture model through the C API (CPU, one thread, like the CLI's default)."""
    m = api.Model(model[0], backend="cpu")
    yield m
    m.close()


def api_context(m, **kw):
    return m.context(**kw)


@pytest.fixture()
def tmp():
    with tempfile.TemporaryDirectory(prefix="ngs-cli-") as d:
        yield d


# ---- info ------------------------------------------------------------------------------

def test_info(model, lib):
    path, info = model
    li = lib.info
    for key in ["sample_rate", "grain_length", "hop_size", "n_grains", "sample_length", "z_dim",
                "n_classes", "e_dim", "weight_bits"]:
        assert info[key] == getattr(li, key), key
    assert info["classes"] == list(lib.classes)
    for key in ["sample_rate", "grain_length", "hop_size", "n_grains", "sample_length", "z_dim",
                "n_classes", "classes", "weight_dtype", "sources", "config", "file_bytes",
                "parameters", "tensors", "backend"]:
        assert key in info, key
    assert info["hop_size"] * 4 == info["grain_length"]
    assert info["sample_length"] == (info["n_grains"] + 3) * info["hop_size"]
    assert len(info["classes"]) == info["n_classes"]
    assert info["file_bytes"] == os.path.getsize(path)
    assert info["config"]["waveform"]["sr"] == info["sample_rate"]
    assert info["weight_dtype"] in ("fp32", "fp16")
    assert isinstance(info["sources"], dict)
    for src in info["sources"].values():
        assert len(src["sha256"]) == 64
    text = run("info", path).stdout
    for c in info["classes"]:
        assert c in text
    assert str(info["sample_rate"]) in text


# ---- sample ----------------------------------------------------------------------------

def test_sample_count_and_single_file(model, lib, tmp):
    """--class, --count, --temperature, --seed against the C API; --single-file; 24-bit."""
    path, info = model
    n, sr = info["sample_length"], info["sample_rate"]
    out = os.path.join(tmp, "s.wav")
    p = run("sample", path, "--class", info["classes"][1], "--count", 3, "--seed", 7,
            "--temperature", 0.8, "--bits", 32, "-o", out)
    assert "real-time factor" in p.stderr
    ref = np.asarray(lib.context().sample(cls=1, temperature=0.8, seed=7, count=3)).reshape(3, n)
    parts = []
    for i in range(3):
        x, rate = read_wav(os.path.join(tmp, f"s_{i}.wav"))
        assert rate == sr
        assert_audio(x, n)
        assert_same(x, ref[i], f"sample {i}")
        parts.append(x)
    assert not os.path.exists(out)
    assert rel_l2(parts[0], parts[1]) > 1e-3, "two samples are identical"
    single = os.path.join(tmp, "all.wav")
    run("sample", path, "--class", "1", "-n", "3", "-s", "7", "-t", 0.8, "--single-file", "-o", single)
    y, _ = read_wav(single)
    assert_audio(y, 3 * n)
    np.testing.assert_allclose(y, ref.ravel(), atol=2.0 / (1 << 23))  # 24-bit PCM
    # another seed, temperature and class each change the sound
    for args, what in [(["--seed", 8, "-t", 0.8, "--class", 1], "seed"),
                       (["--seed", 7, "-t", 1.3, "--class", 1], "temperature"),
                       (["--seed", 7, "-t", 0.8, "--class", 2], "class")]:
        o = os.path.join(tmp, f"other_{what}.wav")
        run("sample", path, *args, "--bits", 32, "-o", o)
        x = read_f32_wav(o)
        assert_differ(x, ref[0], what)
    ref8 = lib.context().sample(cls=1, temperature=0.8, seed=8)
    assert_same(read_f32_wav(os.path.join(tmp, "other_seed.wav")), ref8, "seed 8")
    ref2 = lib.context().sample(cls=2, temperature=0.8, seed=7)
    assert_same(read_f32_wav(os.path.join(tmp, "other_class.wav")), ref2, "class 2")


def test_sample_16_bit(model, lib, tmp):
    path, info = model
    out = os.path.join(tmp, "s16.wav")
    run("sample", path, "--class", 3, "--seed", 21, "--bits", 16, "-o", out)
    x = read_f32_wav(out)
    ref = np.asarray(lib.context().sample(cls=3, seed=21), np.float64)
    np.testing.assert_allclose(x, ref, atol=1.0 / 32768 + 1e-7)


def test_sample_matches_reference(model, tmp):
    """The CLI's one-shot equals the PyTorch reference's (golden fixture) for the same seed."""
    path, info = model
    golden = os.path.join(os.path.dirname(path), "golden.safetensors")
    g, meta = read_safetensors(golden)
    out = os.path.join(tmp, "g.wav")
    run("sample", path, "--class", meta["golden.class_index"], "--seed", meta["golden.seed"],
        "--temperature", meta["golden.temperature"], "--bits", 32, "-o", out)
    x, _ = read_wav(out)
    assert rel_l2(x, g["sample.audio"]) < 1e-3


def test_sample_peak_option(model, lib, tmp):
    """--peak scales the whole file by one gain so that its peak is at the asked level."""
    path, info = model
    plain, peaked = os.path.join(tmp, "plain.wav"), os.path.join(tmp, "peak.wav")
    run("sample", path, "--class", 0, "--seed", 5, "--bits", 32, "-o", plain)
    run("sample", path, "--class", 0, "--seed", 5, "--bits", 32, "--peak", -6, "-o", peaked)
    x, _ = read_wav(plain)
    y, _ = read_wav(peaked)
    ref = np.asarray(lib.context().sample(cls=0, seed=5), np.float64)
    assert_same(x, ref, "sample without --peak")
    target = 10 ** (-6 / 20)
    assert abs(np.abs(y).max() - target) < 1e-5
    np.testing.assert_allclose(y, ref * (target / np.abs(ref).max()), rtol=1e-5, atol=1e-7)
    p = run("--peak", 3, "sample", path, "--class", 0, "-o", os.path.join(tmp, "bad.wav"), ok=False)
    assert p.returncode == 2 and not os.path.exists(os.path.join(tmp, "bad.wav"))


def test_decode_matches_reference(model, tmp):
    path, info = model
    g, meta = read_safetensors(os.path.join(os.path.dirname(path), "golden.safetensors"))
    z = os.path.join(tmp, "z.npy")
    np.save(z, g["decode.z"])
    out = os.path.join(tmp, "d.wav")
    run("decode", path, z, "--seed", meta["golden.seed"], "--bits", 32, "-o", out)
    x, rate = read_wav(out)
    assert rate == info["sample_rate"]
    assert rel_l2(x, g["decode.audio"]) < 1e-3
    other = os.path.join(tmp, "d2.wav")
    run("decode", path, z, "--seed", int(meta["golden.seed"]) + 1, "--bits", 32, "-o", other)
    assert_differ(read_f32_wav(other), x, "decode --seed")


def test_sample_flac(model, lib, tmp):
    path, info = model
    out = os.path.join(tmp, "s.flac")
    run("sample", path, "--class", "0", "--seed", 11, "-o", out)
    with open(out, "rb") as f:
        assert f.read(4) == b"fLaC"
    # Read it back through ngs itself: the encoder sees exactly one one-shot, the C API's
    # one-shot of the same seed (24-bit samples).
    z = os.path.join(tmp, "z.npy")
    run("encode", path, out, "--no-preprocess", "-o", z)
    mu = np.load(z)
    assert mu.shape == (info["n_grains"], info["z_dim"])
    ref = np.asarray(lib.context().sample(cls=0, seed=11), np.float64)
    q = (np.round(ref * (1 << 23)) / (1 << 23)).astype(np.float32)
    assert_same(mu, lib.context().encode(q).mu, "encode of the FLAC one-shot", tol=1e-4)


# ---- path ------------------------------------------------------------------------------

PATH_OPTIONS = {
    "line": [],
    "circle": ["--turns", 2.5],
    "spiral": ["--turns", 1.5],
    "random": ["--points", 6],
    "back_and_forth": ["--legs", 3, "--gamma", 1.5],
}


def _path_kwargs(args):
    kw = {}
    for k, v in zip(args[::2], args[1::2]):
        kw[k[2:]] = v
    return kw


def _api_path_audio(lib, kinds, seconds, seed, temperature=1.0, **kw):
    n = lib.grains_for_duration(seconds)
    zs, k0 = [], 0
    for k, kind in enumerate(kinds):
        nk = n // len(kinds) + (1 if k < n % len(kinds) else 0)
        zs.append(lib.path(kind, n_grains=nk, temperature=temperature, seed=seed, sequence=k, **kw))
        k0 += nk
    z = np.concatenate(zs)
    return lib.context(max_grains=n).decode(z, seed=seed)


@pytest.mark.parametrize("kind", ["line", "circle", "spiral", "random", "back_and_forth"])
def test_path_kinds(model, lib, tmp, kind):
    """--kind with its options, --duration, --seed, --temperature against the C API."""
    path, info = model
    sr, lg, hop = info["sample_rate"], info["grain_length"], info["hop_size"]
    out = os.path.join(tmp, f"{kind}.wav")
    opts = PATH_OPTIONS[kind]
    p = run("path", path, "--kind", kind, "--duration", 1.5, "--seed", 3, "--temperature", 0.7,
            *opts, "--bits", 32, "-o", out)
    assert "real-time factor" in p.stderr
    x, rate = read_wav(out)
    assert rate == sr
    assert_audio(x, (grains_for_duration(1.5, sr, lg) + 3) * hop)
    ref = _api_path_audio(lib, [kind], 1.5, 3, 0.7, **_path_kwargs(opts))
    assert_same(x, ref, f"path {kind}")
    other = os.path.join(tmp, f"{kind}_4.wav")
    run("path", path, "--kind", kind, "--duration", 1.5, "--seed", 4, "--temperature", 0.7,
        *opts, "--bits", 32, "-o", other)
    assert_differ(read_f32_wav(other), x, f"path {kind} --seed")
    if opts:  # the kind's own option is passed through
        changed = [opts[0], opts[1] + 1] + opts[2:]
        o2 = os.path.join(tmp, f"{kind}_opt.wav")
        run("path", path, "--kind", kind, "--duration", 1.5, "--seed", 3, "--temperature", 0.7,
            *changed, "--bits", 32, "-o", o2)
        y = read_f32_wav(o2)
        assert_same(y, _api_path_audio(lib, [kind], 1.5, 3, 0.7, **_path_kwargs(changed)),
                    f"path {kind} {opts[0]}")
        assert_differ(y, x, f"path {kind} {opts[0]}")


def test_path_concat(model, lib, tmp):
    path, info = model
    sr, lg, hop = info["sample_rate"], info["grain_length"], info["hop_size"]
    out = os.path.join(tmp, "c.wav")
    run("path", path, "--concat", "line,circle,back_and_forth", "--duration", 2, "--seed", 5,
        "--bits", 32, "-o", out)
    x, _ = read_wav(out)
    assert_audio(x, (grains_for_duration(2, sr, lg) + 3) * hop)
    assert_same(x, _api_path_audio(lib, ["line", "circle", "back_and_forth"], 2, 5), "concat")


def test_path_peak_and_24_bit(model, lib, tmp):
    path, info = model
    out = os.path.join(tmp, "p.wav")
    run("path", path, "--kind", "spiral", "-d", 1, "--seed", 8, "--peak", -1, "-o", out)
    x = read_f32_wav(out)
    ref = np.asarray(_api_path_audio(lib, ["spiral"], 1, 8), np.float64)
    ref = ref * (10 ** (-1 / 20) / np.abs(ref).max())
    np.testing.assert_allclose(x, ref, atol=2.0 / (1 << 23))


# ---- resynth / encode / decode ---------------------------------------------------------

def test_resynth_stereo_44k(model, lib, tmp):
    """Stereo is mixed to mono by the mean of the channels (compared with the C API at the
    model's rate); 44.1 kHz input is resampled to the model's rate (length)."""
    path, info = model
    sr = info["sample_rate"]
    rng = np.random.default_rng(11)
    for rate in (sr, 44100):
        n_in = int(1.37 * rate)
        t = np.arange(n_in) / rate
        left = 0.5 * np.sin(2 * np.pi * 330 * t) * np.exp(-3 * t)
        right = 0.3 * rng.uniform(-1, 1, n_in)
        src = os.path.join(tmp, f"in{rate}.wav")
        write_wav(src, np.stack([left, right], 1), rate, channels=2)
        out = os.path.join(tmp, f"r{rate}.wav")
        p = run("resynth", path, src, "--seed", 2, "--bits", 32, "-o", out)
        assert "real-time factor" in p.stderr
        x, got_rate = read_wav(out)
        assert got_rate == sr
        assert_audio(x, int(math.floor(n_in * sr / rate + 0.5)))
        if rate == sr:  # the 16-bit samples as libsndfile reads them, mixed, pre-processed
            pcm = (np.clip(np.stack([left, right], 1), -1, 1) * 32767).astype("<i2") / 32768.0
            mono = pcm.mean(axis=1).astype(np.float32)
            ref = lib.context().resynthesize(lib.preprocess(mono), seed=2)
            assert_same(x, ref, "stereo resynth")


def test_resynth_matches_reference(model, tmp):
    """Segments, crossfades and noise sequences as docs/PROCESSES.md (golden resynth.*)."""
    path, info = model
    g, meta = read_safetensors(os.path.join(os.path.dirname(path), "golden.safetensors"))
    rp = json.loads(meta["golden.resynth_params"])
    src = os.path.join(tmp, "in.wav")
    write_wav_float(src, g["resynth.in"], info["sample_rate"])
    out = os.path.join(tmp, "r.wav")
    args = ["resynth", path, src, "--no-preprocess", "--seed", rp["seed"], "--bits", 32, "-o", out]
    if rp.get("segment_grains"):
        args += ["--segment-grains", rp["segment_grains"]]
    if rp.get("crossfade"):
        args += ["--crossfade", rp["crossfade"]]
    run(*args)
    x, _ = read_wav(out)
    assert len(x) == len(g["resynth.out"])
    assert rel_l2(x, g["resynth.out"]) < 1e-3


def test_resynth_long_mono(model, lib, tmp):
    """Longer than several segments, at the model's own rate; FLAC output."""
    path, info = model
    sr = info["sample_rate"]
    n_in = 3 * info["sample_length"] + 1234
    x = 0.4 * np.random.default_rng(5).uniform(-1, 1, n_in)
    src = os.path.join(tmp, "in.wav")
    write_wav(src, x, sr)
    wav = os.path.join(tmp, "r.wav")
    run("resynth", path, src, "--seed", 3, "--bits", 32, "-o", wav)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2") / 32768.0
    ref = lib.context().resynthesize(lib.preprocess(pcm.astype(np.float32)), seed=3)
    assert_same(read_f32_wav(wav), ref, "long resynth")
    out = os.path.join(tmp, "r.flac")
    run("resynth", path, src, "-o", out)
    z = os.path.join(tmp, "z.npy")
    run("encode", path, out, "-o", z)
    hop = info["hop_size"]
    assert np.load(z).shape[0] == max(1, -(-n_in // hop) - 3)


def _test_signal(n, seed, amp=0.4):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (amp * np.sin(2 * np.pi * 0.013 * t) + 0.2 * rng.uniform(-1, 1, n) + 0.05).astype(np.float32)


@pytest.mark.parametrize("flags", [[], ["--normalize"], ["--no-preprocess"]])
def test_resynth_options_match_api(model, lib, tmp, flags):
    """--seed, --segment-grains, --crossfade, --normalize, --no-preprocess against the C API
    (float WAV at the model's rate in and out: no resampling, no quantisation)."""
    path, info = model
    sr = info["sample_rate"]
    x = _test_signal(int(2.7 * info["sample_length"]), 31)
    src = os.path.join(tmp, "in.wav")
    write_wav_float(src, x, sr)
    out = os.path.join(tmp, "r.wav")
    run("resynth", path, src, *flags, "--seed", 9, "--segment-grains", 5, "--crossfade", 100,
        "--bits", 32, "-o", out)
    y = read_f32_wav(out)
    xin = x.copy() if "--no-preprocess" in flags else lib.preprocess(x, normalize="--normalize" in flags)
    ctx = lib.context()
    ref = ctx.resynthesize(xin, seed=9, segment_grains=5, crossfade=100)
    assert_same(y, ref, f"resynth {flags}")
    other = os.path.join(tmp, "r2.wav")
    run("resynth", path, src, *flags, "--seed", 10, "--segment-grains", 5, "--crossfade", 100,
        "--bits", 32, "-o", other)
    assert_differ(read_f32_wav(other), y, "resynth --seed")
    if not flags:  # segments and crossfade are passed through
        o3 = os.path.join(tmp, "r3.wav")
        run("resynth", path, src, "--seed", 9, "--segment-grains", 7, "--crossfade", 300,
            "--bits", 32, "-o", o3)
        assert_same(read_f32_wav(o3), ctx.resynthesize(xin, seed=9, segment_grains=7, crossfade=300),
                    "resynth --segment-grains 7 --crossfade 300")


def test_encode_decode(model, lib, tmp):
    """encode --what, --seed, --no-preprocess and decode --seed against the C API."""
    path, info = model
    sr, hop, zd = info["sample_rate"], info["hop_size"], info["z_dim"]
    n_in = 10 * hop + 17
    x = _test_signal(n_in, 2)
    src = os.path.join(tmp, "in.wav")
    write_wav_float(src, x, sr)
    n = -(-n_in // hop) - 3
    ctx = lib.context(max_grains=n)

    def padded(a):
        return np.concatenate([a, np.zeros((n + 3) * hop - len(a), np.float32)])

    enc = ctx.encode(padded(lib.preprocess(x)), seed=6)
    got = {}
    for what in ["mu", "logvar", "z"]:
        out = os.path.join(tmp, f"{what}.npy")
        p = run("encode", path, src, "--what", what, "--seed", 6, "-o", out)
        assert "real-time factor" in p.stderr
        a = np.load(out)
        assert a.dtype == np.float32 and a.shape == (n, zd)
        assert_same(a, getattr(enc, what), f"encode --what {what}")
        got[what] = a
    assert rel_l2(got["z"], got["mu"]) > 1e-4
    z7 = os.path.join(tmp, "z7.npy")
    run("encode", path, src, "--what", "z", "--seed", 7, "-o", z7)
    assert_differ(np.load(z7), got["z"], "encode --seed")
    raw = os.path.join(tmp, "raw.npy")
    run("encode", path, src, "--no-preprocess", "-o", raw)
    assert_same(np.load(raw), ctx.encode(padded(x)).mu, "encode --no-preprocess")
    norm = os.path.join(tmp, "norm.npy")
    run("encode", path, src, "--normalize", "-o", norm)
    assert_same(np.load(norm), ctx.encode(padded(lib.preprocess(x, normalize=True))).mu,
                "encode --normalize")
    wav = os.path.join(tmp, "dec.wav")
    run("decode", path, os.path.join(tmp, "mu.npy"), "--seed", 4, "--bits", 32, "-o", wav)
    y, rate = read_wav(wav)
    assert rate == sr
    assert_audio(y, (n + 3) * hop)
    assert_same(y, ctx.decode(got["mu"], seed=4), "decode --seed 4")
    wav5 = os.path.join(tmp, "dec5.wav")
    run("decode", path, os.path.join(tmp, "mu.npy"), "--seed", 5, "--bits", 32, "-o", wav5)
    assert_differ(read_f32_wav(wav5), y, "decode --seed")
    # float64 and a single [z_dim] vector are accepted too.
    z64 = os.path.join(tmp, "z64.npy")
    v = np.random.default_rng(1).standard_normal(zd)
    np.save(z64, v)
    run("decode", path, z64, "--bits", 32, "-o", wav)
    y, _ = read_wav(wav)
    assert_audio(y, 4 * hop)
    assert_same(y, ctx.decode(v.astype(np.float32).reshape(1, zd)), "decode of a float64 vector")


# ---- loop ------------------------------------------------------------------------------

def _api_loop(lib, pattern, bars, bpm, temperature=1.0, seed=0):
    """The C API's loop for a pattern: classes in the order the CLI reads the JSON object
    (sorted keys), events of a class in list order."""
    sr = lib.info.sample_rate
    n = int(round(bars * 4 * 60 / bpm * sr))
    events = [(lib.class_index(name), on, amp) for name in sorted(pattern)
              for on, amp in pattern[name]]
    return lib.context(max_loop_length=n).render_loop(events, n, temperature=temperature, seed=seed)


def _loop_cli(model, tmp, pattern, name, *args):
    pf = os.path.join(tmp, f"{name}.json")
    with open(pf, "w") as f:
        json.dump(pattern, f)
    out = os.path.join(tmp, f"{name}.wav")
    p = run("loop", model[0], pf, *args, "--bits", 32, "-o", out)
    return read_f32_wav(out), p


def test_loop(model, lib, tmp):
    """--bpm, --bars, --temperature, --seed against the C API; another seed differs."""
    path, info = model
    c = info["classes"]
    pat = {c[0]: [[0.0, 1.0], [0.5, 0.8]], c[1].lower(): [[0.25, 0.9], [0.75, 0.6]]}
    x, p = _loop_cli(model, tmp, pat, "a", "--bpm", 100, "--bars", 2, "-t", 0.9, "--seed", 12)
    assert "real-time factor" in p.stderr
    assert_audio(x, int(round(2 * 4 * 60 / 100 * info["sample_rate"])))
    assert np.max(np.abs(x)) <= 0.95 + 1e-5
    assert_same(x, _api_loop(lib, pat, 2, 100, 0.9, 12), "loop")
    y, _ = _loop_cli(model, tmp, pat, "b", "--bpm", 100, "--bars", 2, "-t", 0.9, "--seed", 13)
    assert_differ(y, x, "loop --seed")
    assert_same(y, _api_loop(lib, pat, 2, 100, 0.9, 13), "loop --seed 13")
    t, _ = _loop_cli(model, tmp, pat, "t", "--bpm", 100, "--bars", 2, "-t", 0.5, "--seed", 12)
    assert_same(t, _api_loop(lib, pat, 2, 100, 0.5, 12), "loop --temperature")
    assert_differ(t, x, "loop --temperature")


def test_loop_longer_than_ten_seconds(model, lib, tmp):
    """--bars up to 64 as documented: 6 bars at 120 bpm are 12 s (the context is sized for
    the request)."""
    path, info = model
    pat = {info["classes"][4]: [[0.0, 1.0], [0.9, 0.7]]}
    x, _ = _loop_cli(model, tmp, pat, "long", "--bpm", 120, "--bars", 6, "--seed", 2)
    assert len(x) == 12 * info["sample_rate"]
    assert_same(x, _api_loop(lib, pat, 6, 120, 1.0, 2), "6 bars at 120 bpm")
    x, _ = _loop_cli(model, tmp, pat, "max", "--bpm", 999, "--bars", 64, "--seed", 2)
    assert len(x) == int(round(64 * 4 * 60 / 999 * info["sample_rate"]))


def test_example_pattern_parses(model, lib, tmp):
    """apps/examples/pattern.json renders with `ngs loop` (the fixture has its classes) and
    equals the C API's loop of the same events."""
    src = os.path.join(_REPO, "apps", "examples", "pattern.json")
    with open(src) as f:
        pat = json.load(f)
    for events in pat.values():
        for on, amp in events:
            assert 0 <= on < 1 and 0 <= amp <= 1
    out = os.path.join(tmp, "example.wav")
    run("loop", model[0], src, "--bpm", 96, "--bars", 1, "--seed", 3, "--bits", 32, "-o", out)
    x = read_f32_wav(out)
    assert_audio(x, int(round(4 * 60 / 96 * model[1]["sample_rate"])))
    assert_same(x, _api_loop(lib, pat, 1, 96, 1.0, 3), "example pattern")


# ---- precision -------------------------------------------------------------------------

def test_precision_option(model, lib, tmp):
    """--precision fp32 is the default bit for bit; fast runs (or falls back to fp32 where the
    CPU has no AVX512_BF16, as ngs info says) within 5e-3 of fp32; a bad value is one line,
    exit status 2, no file."""
    path, info = model
    base = os.path.join(tmp, "a.wav")
    run("sample", path, "--class", 0, "--seed", 3, "--bits", 32, "-o", base)
    same = os.path.join(tmp, "b.wav")
    run("--precision", "fp32", "sample", path, "--class", 0, "--seed", 3, "--bits", 32, "-o", same)
    assert read_wav(base)[0].tolist() == read_wav(same)[0].tolist()
    fast = os.path.join(tmp, "c.wav")
    run("sample", path, "--class", 0, "--seed", 3, "--bits", 32, "--precision", "fast", "-o", fast)
    a, f = read_wav(base)[0], read_wav(fast)[0]
    assert np.linalg.norm(f - a) <= 5e-3 * np.linalg.norm(a)
    j = json.loads(run("--precision", "fast", "info", path, "--json").stdout)
    assert j["precision"] == ("fast" if j["fast_precision_available"] else "fp32")
    bad = os.path.join(tmp, "d.wav")
    p = run("--precision", "fp16", "sample", path, "--class", 0, "-o", bad, ok=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--precision" in p.stderr, p.stderr
    assert not os.path.exists(bad)


# ---- bench -----------------------------------------------------------------------------

def test_bench_json(model):
    path, info = model
    p = run("bench", path, "--json", "--seconds", 0.2)
    j = json.loads(p.stdout)
    for key in ["ngs_version", "backend", "threads", "precision", "machine", "model_info", "cases",
                "voices"]:
        assert key in j, key
    assert j["precision"] == "fp32"
    names = [c["name"] for c in j["cases"]]
    assert names == ["decode", "sample", "sample_x8", "latent_decode", "encode", "resynth_10s",
                     "path_10s"]
    for c in j["cases"]:
        assert c["runs"] >= 3
        assert 0 < c["min_ms"] <= c["p50_ms"] <= c["p90_ms"] <= c["p99_ms"] <= c["max_ms"]
        assert c["rtf"] > 0 and c["audio_seconds"] > 0
    assert j["voices"] > 0
    assert j["backend"] == "cpu"


def test_bench_stream_backend(model, tmp):
    """`bench --stream` opens its model on --backend (named in the JSON); a backend that
    cannot run here is one clear error."""
    path, _ = model
    short = ["--json", "--seconds", 0.05, "--blocks", 64, "--voices", 1, "--no-search"]
    j = json.loads(run("bench", path, "--stream", "--backend", "cpu", *short).stdout)
    assert j["backend"] == "cpu"
    assert j["cases"] and all(c["voices"] == 1 for c in j["cases"])
    if run("info", path, "--backend", "cuda", "--json", ok=False).returncode != 0:  # no usable GPU
        p = run("bench", path, "--stream", "--backend", "cuda", *short, ok=False)
        assert_error(p, [], tmp)
        assert "CUDA" in p.stderr
    else:
        j = json.loads(run("bench", path, "--stream", "--backend", "cuda", *short).stdout)
        assert j["backend"] == "cuda"



def test_bench_stream_precision(model):
    """`bench --stream` runs the synth in the global --precision (named in the JSON: fast
    where the CPU has the fast path, else fp32) and reports the one-voice targets of both
    modes."""
    path, _ = model
    short = ["--json", "--seconds", 0.05, "--blocks", 64, "--voices", 1, "--no-search"]
    j = json.loads(run("bench", path, "--stream", *short).stdout)
    assert j["precision"] == "fp32"
    assert set(j["targets"]) == {"one_voice_block64_worst_fraction", "one_voice_block64_worst_fraction_spread"}
    fast_here = json.loads(run("info", path, "--json").stdout).get("fast_precision_available")
    j = json.loads(run("--precision", "fast", "bench", path, "--stream", *short).stdout)
    assert j["precision"] == ("fast" if fast_here else "fp32")


# ---- errors ----------------------------------------------------------------------------

def test_error_bad_model_path(tmp):
    out = os.path.join(tmp, "x.wav")
    assert_error(run("sample", os.path.join(tmp, "missing.safetensors"), "-o", out, ok=False),
                 [out], tmp)
    junk = os.path.join(tmp, "junk.safetensors")
    with open(junk, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    assert_error(run("path", junk, "-o", out, ok=False), [out], tmp)


def test_error_unknown_class(model, tmp):
    path, _ = model
    out = os.path.join(tmp, "x.wav")
    p = run("sample", path, "--class", "NoSuchDrum", "-o", out, ok=False)
    assert_error(p, [out], tmp)
    assert "NoSuchDrum" in p.stderr
    assert_error(run("sample", path, "--class", "99", "-o", out, ok=False), [out], tmp)


@pytest.mark.parametrize("text", ["{not json", "[]", '{"%s": [[1.5, 1.0]]}', '{"%s": [[0.1]]}',
                                  '{"NoSuchDrum": [[0.0, 1.0]]}'])
def test_error_bad_pattern(model, tmp, text):
    path, info = model
    pattern = os.path.join(tmp, "p.json")
    with open(pattern, "w") as f:
        f.write(text.replace("%s", info["classes"][0]))
    out = os.path.join(tmp, "loop.wav")
    assert_error(run("loop", path, pattern, "-o", out, ok=False), [out], tmp)


def test_error_truncated_wav(model, tmp):
    path, info = model
    src = os.path.join(tmp, "in.wav")
    write_wav(src, 0.3 * np.random.default_rng(3).uniform(-1, 1, 20000), info["sample_rate"])
    with open(src, "rb") as f:
        data = f.read()
    with open(src, "wb") as f:
        f.write(data[:len(data) // 2])
    out = os.path.join(tmp, "r.wav")
    p = run("resynth", path, src, "-o", out, ok=False)
    assert_error(p, [out], tmp)
    assert "truncated" in p.stderr
    z = os.path.join(tmp, "z.npy")
    assert_error(run("encode", path, src, "-o", z, ok=False), [z], tmp)


def test_error_bad_npy(model, tmp):
    path, info = model
    out = os.path.join(tmp, "d.wav")
    zd = info["z_dim"]
    cases = {
        "int.npy": np.arange(3 * zd, dtype=np.int32).reshape(3, zd),
        "fortran.npy": np.asfortranarray(np.random.default_rng(0).standard_normal((3, zd)).astype(np.float32)),
        "shape.npy": np.zeros((3, zd + 1), np.float32) + 0.5,
    }
    for name, arr in cases.items():
        f = os.path.join(tmp, name)
        np.save(f, arr)
        assert_error(run("decode", path, f, "-o", out, ok=False), [out], tmp)
    cut = os.path.join(tmp, "cut.npy")
    np.save(cut, np.random.default_rng(0).standard_normal((4, zd)).astype(np.float32))
    with open(cut, "rb") as f:
        data = f.read()
    with open(cut, "wb") as f:
        f.write(data[:-100])
    p = run("decode", path, cut, "-o", out, ok=False)
    assert_error(p, [out], tmp)
    assert "truncated" in p.stderr


def test_error_misc(model, tmp):
    path, _ = model
    out = os.path.join(tmp, "x.wav")
    assert_error(run("path", path, "--kind", "zigzag", "-o", out, ok=False), [out], tmp)
    assert_error(run("path", path, "-o", os.path.join(tmp, "x.mp3"), ok=False),
                 [os.path.join(tmp, "x.mp3")], tmp)
    assert_error(run("path", path, "-o", os.path.join(tmp, "nodir", "x.wav"), ok=False), [], tmp)
    assert_error(run("sample", path, "--frobnicate", "-o", out, ok=False), [out], tmp)
    assert_error(run("decode", path, os.path.join(tmp, "none.npy"), "-o", out, ok=False), [out], tmp)
    src = os.path.join(tmp, "in.wav")
    write_wav(src, 0.3 * np.random.default_rng(3).uniform(-1, 1, 5000), 22050)
    assert_error(run("encode", path, src, "-o", out, ok=False), [out], tmp)


def test_existing_output_survives_failure(model, tmp):
    """A failing command leaves an existing file of the output name untouched."""
    path, _ = model
    out = os.path.join(tmp, "keep.wav")
    with open(out, "wb") as f:
        f.write(b"precious")
    p = run("sample", path, "--class", "NoSuchDrum", "-o", out, ok=False)
    assert p.returncode != 0
    with open(out, "rb") as f:
        assert f.read() == b"precious"


# ---- other fixture models and options ----------------------------------------------------

def _fixture_file(model, name):
    return os.path.join(os.path.dirname(model[0]), name)


def test_sample_threads_do_not_change_output(model, lib, tmp):
    """The random stream is counter-based: the thread count cannot change the audio;
    --backend cpu is the C API's CPU backend."""
    path, info = model
    a, b = os.path.join(tmp, "a.wav"), os.path.join(tmp, "b.wav")
    run("--threads", 1, "path", path, "--kind", "spiral", "-d", 2, "--bits", 32, "-o", a)
    run("path", path, "--kind", "spiral", "-d", 2, "--bits", 32, "--threads", 2,
        "--backend", "cpu", "-o", b)
    xa, _ = read_wav(a)
    xb, _ = read_wav(b)
    ref = _api_path_audio(lib, ["spiral"], 2, 0)
    assert_same(xa, ref, "path, 1 thread")
    assert_same(xb, ref, "path, 2 threads")
    c = os.path.join(tmp, "c.wav")
    run("--threads", 2, "sample", path, "--class", 1, "--seed", 3, "-n", 2, "--single-file",
        "--bits", 32, "-o", c)
    ctx2 = lib.context(n_threads=2)
    assert_same(read_f32_wav(c), ctx2.sample(cls=1, seed=3, count=2), "sample, 2 threads")


def test_sample_unconditional_and_waveform_only(model, tmp):
    out = os.path.join(tmp, "u.wav")
    uncond = None
    for m in sorted(glob.glob(os.path.join(FIXTURES, "*", "model.safetensors"))):
        j = json.loads(run("info", m, "--json").stdout)
        if j["has_latent_model"] and j["n_classes"] == 0:
            uncond = (m, j)
    assert uncond, "no unconditional fixture model"
    m, j = uncond
    run("sample", m, "--seed", 4, "--bits", 32, "-o", out)
    x, _ = read_wav(out)
    assert_audio(x, j["sample_length"])
    with api.Model(m, backend="cpu") as um:
        assert_same(x, um.context().sample(seed=4), "unconditional sample")
    os.remove(out)
    assert_error(run("sample", m, "--class", "Kick", "-o", out, ok=False), [out], tmp)
    wonly = _fixture_file(model, "model_waveform_only.safetensors")
    p = run("sample", wonly, "--class", "0", "-o", out, ok=False)
    assert_error(p, [out], tmp)
    assert "latent" in p.stderr
    run("path", wonly, "--kind", "line", "-d", 1, "--seed", 6, "--bits", 32, "-o", out)
    x, _ = read_wav(out)
    assert_audio(x)
    with api.Model(wonly, backend="cpu") as wm:
        assert_same(x, _api_path_audio(wm, ["line"], 1, 6), "waveform-only path")


def test_info_fp16(model):
    j = json.loads(run("info", _fixture_file(model, "model_fp16.safetensors"), "--json").stdout)
    assert j["weight_dtype"] == "fp16" and j["weight_bits"] == 16


# ---- hardening (issue 9): strict numbers, outputs, hostile files -----------------------

STRICT_CASES = [
    (["sample", "M", "--class", 0, "--seed", -1], "--seed"),
    (["sample", "M", "--class", 0, "--seed", 2 ** 64], "--seed"),
    (["sample", "M", "--class", 0, "--seed", "12abc"], "--seed"),
    (["sample", "M", "--class", 0, "--seed", " 5"], "--seed"),
    (["sample", "M", "--class", 0, "--count", "1e8"], "--count"),
    (["sample", "M", "--class", 0, "--count", 0], "--count"),
    (["sample", "M", "--class", 0, "--count", 100000], "--count"),
    (["sample", "M", "--class", 0, "--temperature", "nan"], "--temperature"),
    (["sample", "M", "--class", 0, "--temperature", "inf"], "--temperature"),
    (["sample", "M", "--class", 0, "--temperature", "1e39"], "--temperature"),
    (["sample", "M", "--class", 0, "--temperature", -0.5], "--temperature"),
    (["sample", "M", "--class", 0, "--bits", 17], "--bits"),
    (["--peak", "nan", "sample", "M", "--class", 0], "--peak"),
    (["--threads", "2.5", "sample", "M", "--class", 0], "--threads"),
    (["--threads", -1, "sample", "M", "--class", 0], "--threads"),
    (["path", "M", "--duration", "1e-300"], "--duration"),
    (["path", "M", "--duration", "nan"], "--duration"),
    (["path", "M", "--duration", 1e9], "--duration"),
    (["path", "M", "--kind", "back_and_forth", "--legs", 2 ** 31 - 1], "--legs"),
    (["path", "M", "--kind", "random", "--points", 2 ** 40], "--points"),
    (["path", "M", "--kind", "circle", "--turns", "inf"], "--turns"),
    (["path", "M", "--gamma", 0], "--gamma"),
    (["loop", "M", "P", "--bpm", "1e-300"], "--bpm"),
    (["loop", "M", "P", "--bpm", "nan"], "--bpm"),
    (["loop", "M", "P", "--bars", 65], "--bars"),
    (["loop", "M", "P", "--bars", "2.0"], "--bars"),
    (["resynth", "M", "IN", "--segment-grains", -3], "--segment-grains"),
    (["resynth", "M", "IN", "--crossfade", "1e3"], "--crossfade"),
]


# ids without option names, so that no other ctest group's -k expression selects them
@pytest.mark.parametrize("args,option", STRICT_CASES, ids=[f"case{i}" for i in range(len(STRICT_CASES))])
def test_hardening_strict_numbers(model, tmp, args, option):
    """Numbers are parsed whole, range-checked and finite: one clear error naming the
    option, exit status 2, no output."""
    pattern = os.path.join(tmp, "p.json")
    with open(pattern, "w") as f:
        json.dump({model[1]["classes"][0]: [[0.0, 1.0]]}, f)
    src = os.path.join(tmp, "in.wav")
    write_wav(src, 0.3 * np.ones(3000), model[1]["sample_rate"])
    out = os.path.join(tmp, "x.wav")
    subst = {"M": model[0], "P": pattern, "IN": src}
    p = run(*[subst.get(a, a) if isinstance(a, str) else a for a in args], "-o", out, ok=False)
    assert p.returncode in (1, 2), p.stderr  # 2: refused while parsing the command line
    assert_error(p, [out], tmp)
    assert option in p.stderr, p.stderr
    for word in ("stoull", "bad_alloc", "stoi", "std::"):
        assert word not in p.stderr


def test_hardening_seed_range_is_whole(model, lib, tmp):
    """--seed takes every uint64, the largest one included (not clamped)."""
    path, _ = model
    out = os.path.join(tmp, "s.wav")
    run("sample", path, "--class", 0, "--seed", 2 ** 64 - 1, "--bits", 32, "-o", out)
    assert_same(read_f32_wav(out), lib.context().sample(cls=0, seed=2 ** 64 - 1), "seed 2^64-1")
    o2 = os.path.join(tmp, "s2.wav")
    run("sample", path, "--class", 0, "--seed", 2 ** 64 - 2, "--bits", 32, "-o", o2)
    assert_differ(read_f32_wav(o2), read_f32_wav(out), "seeds 2^64-1 and 2^64-2")


def test_hardening_output_is_an_input(model, tmp):
    """An output naming an input (same path, a link to it, a hard link) is refused and the
    input is untouched."""
    path, info = model
    sr = info["sample_rate"]
    src = os.path.join(tmp, "in.wav")
    write_wav(src, 0.3 * np.random.default_rng(4).uniform(-1, 1, 9000), sr)
    with open(src, "rb") as f:
        original = f.read()
    os.symlink(src, os.path.join(tmp, "link.wav"))
    os.link(src, os.path.join(tmp, "hard.wav"))
    os.mkdir(os.path.join(tmp, "sub"))
    for out in [src, os.path.join(tmp, "link.wav"), os.path.join(tmp, "hard.wav"),
                os.path.join(tmp, "sub", "..", "in.wav")]:
        p = run("resynth", path, src, "-o", out, ok=False)
        assert_error(p, [], tmp)
        assert "is the input" in p.stderr, p.stderr
        with open(src, "rb") as f:
            assert f.read() == original
    # the model file itself (a model named .wav) and the pattern of a loop
    m_wav = os.path.join(tmp, "model.wav")
    with open(path, "rb") as f, open(m_wav, "wb") as g:
        g.write(f.read())
    for args in (["sample", m_wav, "--class", 0, "-o", m_wav],
                 ["sample", m_wav, "--class", 0, "-n", 2, "--single-file", "-o", m_wav],
                 ["path", m_wav, "-o", m_wav]):
        p = run(*args, ok=False)
        assert_error(p, [], tmp)
        assert "is the input" in p.stderr
    with open(m_wav, "rb") as f, open(path, "rb") as g:
        assert f.read() == g.read()
    pat = os.path.join(tmp, "pat.wav")
    with open(pat, "w") as f:
        json.dump({info["classes"][0]: [[0.0, 1.0]]}, f)
    p = run("loop", path, pat, "-o", pat, ok=False)
    assert_error(p, [], tmp)
    with open(pat) as f:
        assert json.load(f) == {info["classes"][0]: [[0.0, 1.0]]}
    z = os.path.join(tmp, "z.npy")
    run("encode", path, src, "-o", z)
    p = run("encode", path, src, "-o", src, ok=False)
    assert_error(p, [], tmp)


def test_hardening_output_replaces_a_link_not_its_target(model, tmp):
    """The output is renamed onto the name: a link there is replaced, its target is not
    written through it."""
    path, _ = model
    target = os.path.join(tmp, "target.txt")
    with open(target, "w") as f:
        f.write("keep")
    out = os.path.join(tmp, "o.wav")
    os.symlink(target, out)
    run("sample", path, "--class", 0, "-o", out)
    assert not os.path.islink(out) and read_wav(out)[1] > 0
    with open(target) as f:
        assert f.read() == "keep"
    assert not [f for f in os.listdir(tmp) if ".tmp" in f]


MEM = 1 << 30  # address space of ngs in the size-claim tests: a 2 GB allocation fails


def test_hardening_memory_limit_is_enough(model, tmp):
    out = os.path.join(tmp, "s.wav")
    run("sample", model[0], "--class", 0, "-o", out, memory_limit=MEM)


def test_hardening_npy_claiming_a_huge_shape(model, tmp):
    """A 128-byte .npy claiming 2^32 floats: refused from the file size, nothing allocated."""
    path, info = model
    f = os.path.join(tmp, "big.npy")
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (1 << 28, info["z_dim"])
    header += " " * (117 - len(header)) + "\n"
    with open(f, "wb") as fh:
        fh.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    assert os.path.getsize(f) == 128
    out = os.path.join(tmp, "d.wav")
    p = run("decode", path, f, "-o", out, ok=False, memory_limit=MEM)
    assert_error(p, [out], tmp)
    assert "truncated" in p.stderr
    # a dimension beyond any integer type
    with open(f, "wb") as fh:
        h = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s, 16), }\n" % ("9" * 40)
        fh.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode())
    p = run("decode", path, f, "-o", out, ok=False, memory_limit=MEM)
    assert_error(p, [out], tmp)
    assert "too large" in p.stderr


def _flac_with_total_samples(model, tmp, total):
    path, _ = model
    src = os.path.join(tmp, "s.flac")
    run("sample", path, "--class", 0, "-o", src)
    with open(src, "rb") as f:
        data = bytearray(f.read())
    assert data[:4] == b"fLaC" and data[4] & 0x7f == 0  # STREAMINFO first
    v = int.from_bytes(data[18:26], "big")
    v = (v & ~((1 << 36) - 1)) | total
    data[18:26] = v.to_bytes(8, "big")
    bad = os.path.join(tmp, "claims.flac")
    with open(bad, "wb") as f:
        f.write(data)
    return bad


def test_hardening_flac_claiming_many_frames(model, tmp):
    """A small FLAC whose header claims 2^29 frames: refused before reading, one message;
    a claim within the limit fails as truncated after reading what is there."""
    path, info = model
    bad = _flac_with_total_samples(model, tmp, 1 << 29)
    assert os.path.getsize(bad) < 64 * 1024
    out = os.path.join(tmp, "r.wav")
    p = run("resynth", path, bad, "-o", out, ok=False, memory_limit=MEM)
    assert_error(p, [out], tmp)
    assert "1800 s" in p.stderr
    bad = _flac_with_total_samples(model, tmp, 1000 * info["sample_rate"])
    p = run("resynth", path, bad, "-o", out, ok=False, memory_limit=MEM)
    assert_error(p, [out], tmp)
    assert "truncated" in p.stderr


def _deep(n):
    return "[" * n + "]" * n


def test_hardening_deep_pattern(model, tmp):
    path, info = model
    out = os.path.join(tmp, "l.wav")
    for text in ['{"%s": %s}' % (info["classes"][0], _deep(100000)),
                 '{"%s": [%s]}' % (info["classes"][0], _deep(3)),
                 '{"%s": [["%s", 1]]}' % (info["classes"][0], "x" * 100000)]:
        pattern = os.path.join(tmp, "deep.json")
        with open(pattern, "w") as f:
            f.write(text)
        p = run("loop", path, pattern, "-o", out, ok=False)
        assert_error(p, [out], tmp)
        assert len(p.stderr) < 400, p.stderr


def _model_with_metadata(model, tmp, name, key, raw_value_text):
    """The fixture model with metadata `key` set to raw text (kept verbatim)."""
    with open(model[0], "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header["__metadata__"][key] = "@X@"
    text = json.dumps(header).replace('"@X@"', json.dumps(raw_value_text))
    out = os.path.join(tmp, name)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode() + data[8 + n:])
    return out


def test_hardening_deep_json_in_model(model, tmp):
    """ngs info on a model whose config holds a 100,000-deep unknown key: one error line;
    a deep ngs.sources (not read by the library) is shown as text, no crash."""
    path, info = model
    cfg = json.loads(json.loads(run("info", path, "--json").stdout)["config"] and
                     safetensors.load(path)[1]["ngs.config"])
    cfg["waveform"]["unknown"] = "@D@"
    deep_cfg = json.dumps(cfg).replace('"@D@"', _deep(100000))
    m = _model_with_metadata(model, tmp, "deepcfg.safetensors", "ngs.config", deep_cfg)
    for args in (["info", m], ["info", m, "--json"]):
        p = run(*args, ok=False)
        assert p.returncode == 1
        assert_error(p, [], tmp)
        assert "nested deeper" in p.stderr
    m = _model_with_metadata(model, tmp, "deepsrc.safetensors", "ngs.sources", _deep(100000))
    j = json.loads(run("info", m, "--json").stdout)
    assert j["sources"] == _deep(100000)
    assert run("info", m).returncode == 0


def test_hardening_fifo_model(tmp):
    fifo = os.path.join(tmp, "model.safetensors")
    os.mkfifo(fifo)
    out = os.path.join(tmp, "x.wav")
    p = subprocess.run([NGS, "sample", fifo, "-o", out], capture_output=True, text=True, timeout=60)
    assert_error(p, [out], tmp)
    assert "regular file" in p.stderr
