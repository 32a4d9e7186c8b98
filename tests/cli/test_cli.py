"""Tests of the `ngs` command line, run by ctest (tests/cpp/cli.cmake) on a fixture model.

Environment: NGS_BIN (the built ngs program), NGS_FIXTURES_DIR (weights_converter
make_fixtures output). Audio is read back with Python's own `wave` module (PCM) or a
small RIFF reader (float WAV); latents with numpy. Every error case checks: non-zero exit
status, exactly one stderr line "ngs: error: ...", and no output (or temporary) file left.
"""
import glob
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from weights_converter import safetensors  # noqa: E402

NGS = os.environ.get("NGS_BIN", "")
FIXTURES = os.environ.get("NGS_FIXTURES_DIR", "")


# ---- helpers ---------------------------------------------------------------------------

def run(*args, ok=True):
    p = subprocess.run([NGS, *map(str, args)], capture_output=True, text=True, timeout=300)
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


@pytest.fixture()
def tmp():
    with tempfile.TemporaryDirectory(prefix="ngs-cli-") as d:
        yield d


# ---- info ------------------------------------------------------------------------------

def test_info(model):
    path, info = model
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

def test_sample_count_and_single_file(model, tmp):
    path, info = model
    n, sr = info["sample_length"], info["sample_rate"]
    out = os.path.join(tmp, "s.wav")
    p = run("sample", path, "--class", info["classes"][1], "--count", 3, "--seed", 7, "-o", out)
    assert "real-time factor" in p.stderr
    parts = []
    for i in range(3):
        x, rate = read_wav(os.path.join(tmp, f"s_{i}.wav"))
        assert rate == sr
        assert_audio(x, n)
        parts.append(x)
    assert not os.path.exists(out)
    assert rel_l2(parts[0], parts[1]) > 1e-3, "two samples are identical"
    single = os.path.join(tmp, "all.wav")
    run("sample", path, "--class", "1", "-n", "3", "-s", "7", "--single-file", "-o", single)
    y, _ = read_wav(single)
    assert_audio(y, 3 * n)
    np.testing.assert_allclose(y, np.concatenate(parts), atol=2.0 / (1 << 23))


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


def test_sample_peak_option(model, tmp):
    """--peak scales the whole file by one gain so that its peak is at the asked level."""
    path, info = model
    plain, peaked = os.path.join(tmp, "plain.wav"), os.path.join(tmp, "peak.wav")
    run("sample", path, "--class", 0, "--seed", 5, "--bits", 32, "-o", plain)
    run("sample", path, "--class", 0, "--seed", 5, "--bits", 32, "--peak", -6, "-o", peaked)
    x, _ = read_wav(plain)
    y, _ = read_wav(peaked)
    target = 10 ** (-6 / 20)
    assert abs(np.abs(y).max() - target) < 1e-5
    np.testing.assert_allclose(y, x * (target / np.abs(x).max()), rtol=1e-5, atol=1e-7)
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


def test_sample_flac(model, tmp):
    path, info = model
    out = os.path.join(tmp, "s.flac")
    run("sample", path, "--class", "0", "-o", out)
    with open(out, "rb") as f:
        assert f.read(4) == b"fLaC"
    # Read it back through ngs itself: the encoder sees exactly one one-shot.
    z = os.path.join(tmp, "z.npy")
    run("encode", path, out, "-o", z)
    assert np.load(z).shape == (info["n_grains"], info["z_dim"])


# ---- path ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["line", "circle", "spiral", "random", "back_and_forth"])
def test_path_kinds(model, tmp, kind):
    path, info = model
    sr, lg, hop = info["sample_rate"], info["grain_length"], info["hop_size"]
    out = os.path.join(tmp, f"{kind}.wav")
    p = run("path", path, "--kind", kind, "--duration", 1.5, "--seed", 3, "-o", out)
    assert "real-time factor" in p.stderr
    x, rate = read_wav(out)
    assert rate == sr
    assert_audio(x, (grains_for_duration(1.5, sr, lg) + 3) * hop)


def test_path_concat(model, tmp):
    path, info = model
    sr, lg, hop = info["sample_rate"], info["grain_length"], info["hop_size"]
    out = os.path.join(tmp, "c.wav")
    run("path", path, "--concat", "line,circle,back_and_forth", "--duration", 2, "-o", out)
    x, _ = read_wav(out)
    assert_audio(x, (grains_for_duration(2, sr, lg) + 3) * hop)


# ---- resynth / encode / decode ---------------------------------------------------------

def test_resynth_stereo_44k(model, tmp):
    path, info = model
    sr = info["sample_rate"]
    rng = np.random.default_rng(11)
    n_in = int(1.37 * 44100)
    t = np.arange(n_in) / 44100
    left = 0.5 * np.sin(2 * np.pi * 330 * t) * np.exp(-3 * t)
    right = 0.3 * rng.uniform(-1, 1, n_in)
    src = os.path.join(tmp, "in.wav")
    write_wav(src, np.stack([left, right], 1), 44100, channels=2)
    out = os.path.join(tmp, "r.wav")
    p = run("resynth", path, src, "-o", out)
    assert "real-time factor" in p.stderr
    x, rate = read_wav(out)
    assert rate == sr
    assert_audio(x, int(math.floor(n_in * sr / 44100 + 0.5)))


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


def test_resynth_long_mono(model, tmp):
    """Longer than several segments, at the model's own rate."""
    path, info = model
    sr = info["sample_rate"]
    n_in = 3 * info["sample_length"] + 1234
    src = os.path.join(tmp, "in.wav")
    write_wav(src, 0.4 * np.random.default_rng(5).uniform(-1, 1, n_in), sr)
    out = os.path.join(tmp, "r.flac")
    run("resynth", path, src, "-o", out)
    z = os.path.join(tmp, "z.npy")
    run("encode", path, out, "-o", z)
    hop = info["hop_size"]
    assert np.load(z).shape[0] == max(1, -(-n_in // hop) - 3)


def test_encode_decode(model, tmp):
    path, info = model
    sr, hop, zd = info["sample_rate"], info["hop_size"], info["z_dim"]
    n_in = 10 * hop + 17
    src = os.path.join(tmp, "in.wav")
    write_wav(src, 0.5 * np.random.default_rng(2).uniform(-1, 1, n_in), sr)
    got = {}
    for what in ["mu", "logvar", "z"]:
        out = os.path.join(tmp, f"{what}.npy")
        p = run("encode", path, src, "--what", what, "-o", out)
        assert "real-time factor" in p.stderr
        a = np.load(out)
        assert a.dtype == np.float32 and a.shape == (-(-n_in // hop) - 3, zd)
        assert np.all(np.isfinite(a))
        got[what] = a
    assert np.all(got["logvar"] >= -5) and np.all(got["logvar"] <= 5)
    assert rel_l2(got["z"], got["mu"]) > 1e-4
    wav = os.path.join(tmp, "dec.wav")
    run("decode", path, os.path.join(tmp, "mu.npy"), "-o", wav)
    x, rate = read_wav(wav)
    assert rate == sr
    assert_audio(x, (len(got["mu"]) + 3) * hop)
    # float64 and a single [z_dim] vector are accepted too.
    z64 = os.path.join(tmp, "z64.npy")
    np.save(z64, np.random.default_rng(1).standard_normal(zd))
    run("decode", path, z64, "-o", wav)
    x, _ = read_wav(wav)
    assert_audio(x, 4 * hop)


# ---- loop ------------------------------------------------------------------------------

def test_loop(model, tmp):
    path, info = model
    c = info["classes"]
    pattern = os.path.join(tmp, "p.json")
    with open(pattern, "w") as f:
        json.dump({c[0]: [[0.0, 1.0], [0.5, 0.8]], c[1].lower(): [[0.25, 0.9], [0.75, 0.6]]}, f)
    out = os.path.join(tmp, "loop.wav")
    p = run("loop", path, pattern, "--bpm", 100, "--bars", 2, "-o", out)
    assert "real-time factor" in p.stderr
    x, rate = read_wav(out)
    assert_audio(x, int(round(2 * 4 * 60 / 100 * rate)))
    assert np.max(np.abs(x)) <= 0.95 + 1e-5


def test_example_pattern_parses(model, tmp):
    """apps/examples/pattern.json is valid; with the fixture's classes only known names pass."""
    src = os.path.join(os.path.dirname(__file__), "..", "..", "apps", "examples", "pattern.json")
    with open(src) as f:
        pat = json.load(f)
    for events in pat.values():
        for on, amp in events:
            assert 0 <= on < 1 and 0 <= amp <= 1


# ---- bench -----------------------------------------------------------------------------

def test_bench_json(model):
    path, info = model
    p = run("bench", path, "--json", "--seconds", 0.2)
    j = json.loads(p.stdout)
    for key in ["ngs_version", "backend", "threads", "machine", "model_info", "cases", "voices"]:
        assert key in j, key
    names = [c["name"] for c in j["cases"]]
    assert names == ["decode", "sample", "encode", "resynth_10s", "path_10s"]
    for c in j["cases"]:
        assert c["runs"] >= 3
        assert 0 < c["min_ms"] <= c["p50_ms"] <= c["p90_ms"] <= c["p99_ms"] <= c["max_ms"]
        assert c["rtf"] > 0 and c["audio_seconds"] > 0
    assert j["voices"] > 0
    assert j["backend"] == "cpu"


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


def test_sample_threads_do_not_change_output(model, tmp):
    """The random stream is counter-based: the thread count cannot change the audio."""
    path, info = model
    a, b = os.path.join(tmp, "a.wav"), os.path.join(tmp, "b.wav")
    run("--threads", 1, "path", path, "--kind", "spiral", "-d", 2, "--bits", 32, "-o", a)
    run("path", path, "--kind", "spiral", "-d", 2, "--bits", 32, "--threads", 2, "-o", b)
    xa, _ = read_wav(a)
    xb, _ = read_wav(b)
    assert rel_l2(xb, xa) < 1e-5


def test_sample_unconditional_and_waveform_only(model, tmp):
    out = os.path.join(tmp, "u.wav")
    uncond = None
    for m in sorted(glob.glob(os.path.join(FIXTURES, "*", "model.safetensors"))):
        j = json.loads(run("info", m, "--json").stdout)
        if j["has_latent_model"] and j["n_classes"] == 0:
            uncond = (m, j)
    assert uncond, "no unconditional fixture model"
    m, j = uncond
    run("sample", m, "--seed", 4, "-o", out)
    x, _ = read_wav(out)
    assert_audio(x, j["sample_length"])
    os.remove(out)
    assert_error(run("sample", m, "--class", "Kick", "-o", out, ok=False), [out], tmp)
    wonly = _fixture_file(model, "model_waveform_only.safetensors")
    p = run("sample", wonly, "--class", "0", "-o", out, ok=False)
    assert_error(p, [out], tmp)
    assert "latent" in p.stderr
    run("path", wonly, "--kind", "line", "-d", 1, "-o", out)
    x, _ = read_wav(out)
    assert_audio(x)


def test_info_fp16(model):
    j = json.loads(run("info", _fixture_file(model, "model_fp16.safetensors"), "--json").stdout)
    assert j["weight_dtype"] == "fp16" and j["weight_bits"] == 16
