"""The Pure Data external ngs~ in real Pd (ctest pd.external, bindings/pd/CMakeLists.txt).

Each test runs Debian's `pd -nogui -noaudio -batch` on tests/pd/render.pd: a [qlist]
score (written here) opens the model, starts [tabwrite~] into an array and [readsf~ 1]
(the resynthesis input), sends messages to [ngs~] at fixed logical times, writes the array
with [soundfiler] (float32 WAV; synchronous, unlike [writesf~], whose writer thread may
still be closing the file when Pd quits) and quits. The
recording is compared (relative L2 <= 1e-4) with the library's own renders of the same
events by tests/pd/reference.c: ngs_synth driven directly at the same frames and, at the
model's rate, the offline processes (ngs_sample one-shots and ngs_path_generate +
ngs_decode paths placed at the event frame + latency).

Event frames: ngs~ places a message at its logical time t (ms) at frame round(t * sr /
1000) (docs/PD.md), so the scores use times whose frames are integers; event times and the
resynthesis input are drawn fresh each run (the seed is printed on failure).

Environment: NGS_PD (the pd program), NGS_PD_EXTERNAL_DIR (the folder of ngs~.pd_linux),
NGS_PD_REFERENCE (ngs_pd_reference), NGS_SOURCE_DIR, NGS_FIXTURES_DIR.
"""
import json
import os
import struct
import subprocess

import numpy as np
import pytest
from scipy.io import wavfile

PD = os.environ.get("NGS_PD", "pd")
EXT_DIR = os.environ.get("NGS_PD_EXTERNAL_DIR", "")
REFERENCE = os.environ.get("NGS_PD_REFERENCE", "")
SOURCE = os.environ.get("NGS_SOURCE_DIR",
                        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FIXTURES = os.environ.get("NGS_FIXTURES_DIR", os.path.join(SOURCE, "build", "fixtures"))
PATCH = os.path.join(SOURCE, "tests", "pd", "render.pd")
DRUMS = os.path.join(SOURCE, "models", "drums.safetensors")
TOL = 1e-4

pytestmark = pytest.mark.skipif(not EXT_DIR or not REFERENCE,
                                reason="run through ctest (pd.external): needs the built ngs~")


def model_config(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))["__metadata__"]
    return json.loads(meta["ngs.config"])


def path_grains(cfg, seconds):
    """docs/MODEL_SPEC.md §1: tar_l = floor(seconds sr / l_grain) l_grain, n = 4 tar_l / l_grain - 3."""
    w = cfg["waveform"]
    tar = int(np.floor(seconds * w["sr"] / w["l_grain"])) * w["l_grain"]
    return 4 * tar // w["l_grain"] - 3


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


class Score:
    """Messages to ngs~ at absolute logical times (ms), and the reference's events."""

    def __init__(self, sr, seed=5):
        self.sr = sr
        self.seed = seed  # the `seed` message sent at time 0
        self.lines = []   # (time ms, qlist line)
        self.ref = []     # (time ms, reference line, takes an automatic sequence)
        self.send(0, f"seed {seed}")

    def frame(self, t):
        f = t * self.sr / 1000.0
        assert abs(f - round(f)) < 1e-9, f"{t} ms is not a whole frame at {self.sr} Hz"
        return int(round(f))

    def send(self, t, msg, ref=None, auto=False):
        """Message `msg` at t ms; `ref`: the reference's line ({frame}, and {seq} for a voice
        started without a seed: ngs~ gives it the object's seed and its next sequence)."""
        self.lines.append((t, f"ngs-test-in {msg}"))
        if ref is not None:
            self.ref.append((t, ref, auto))

    def reference_lines(self):
        out, seq = [], 0
        for t, ref, auto in sorted(self.ref, key=lambda r: r[0]):  # stable, as Pd's order
            out.append(ref.format(frame=self.frame(t), seq=seq, seed=self.seed))
            seq += auto
        return out

    def frames(self):
        return [self.frame(t) for t, _, _ in self.ref]

    def raw(self, t, line):
        self.lines.append((t, line))

    def qlist(self):
        out, now = [], 0.0
        for t, line in sorted(self.lines, key=lambda p: p[0]):  # stable: same-time order kept
            d = t - now
            out.append(f"{d:g} {line};" if d > 0 else f"{line};")
            now = t
        return "\n".join(out) + "\n"


def run_pd(tmp_path, score, sr, end_ms, model, input_signal=None):
    """Runs the score in pd (model None: none is opened); returns (recording of
    frame(end_ms) frames, pd's stderr+stdout)."""
    out_wav = tmp_path / "out.wav"
    frames = score.frame(end_ms)
    start = [f"ngs-test-in open {model}"] if model else []
    start.append(f"ngs-test-rec resize {frames}")
    if input_signal is not None:
        in_wav = tmp_path / "in.wav"
        wavfile.write(in_wav, sr, input_signal.astype(np.float32))
        start += [f"ngs-test-rd open {in_wav}", "ngs-test-rd start"]
    start += ["ngs-test-rec-start bang", "pd dsp 1"]
    for i, line in enumerate(start):
        score.lines.insert(i, (0.0, line))
    score.raw(end_ms + 10, f"ngs-test-sf write -bytes 4 {out_wav} ngs-test-rec")
    score.raw(end_ms + 10, "pd quit")
    qlist = tmp_path / "score.txt"
    qlist.write_text(score.qlist())
    p = subprocess.run([PD, "-nogui", "-noaudio", "-batch", "-r", str(sr), "-path", EXT_DIR,
                        "-open", PATCH, "-send", f"ngs-test-score read {qlist}",
                        "-send", "ngs-test-score bang"],
                       capture_output=True, text=True, timeout=300)
    log = p.stdout + p.stderr
    assert p.returncode == 0, f"pd failed ({p.returncode}):\n{log}"
    assert "couldn't create" not in log and "connection failed" not in log, log
    rate, rec = wavfile.read(out_wav)
    assert rate == sr and rec.dtype == np.float32 and len(rec) == frames, (rate, rec.dtype, len(rec))
    return rec.astype(np.float64), log


def run_reference(tmp_path, score, sr, frames, model, offline, input_signal=None, block=64):
    lines = [f"model {model}", f"rate {sr}", f"block {block}", f"frames {frames}",
             f"out_synth {tmp_path / 'synth.f32'}"]
    if offline:
        lines.append(f"out_offline {tmp_path / 'offline.f32'}")
    if input_signal is not None:
        input_signal.astype(np.float32).tofile(tmp_path / "in.f32")
        lines.append(f"input {tmp_path / 'in.f32'}")
    lines += score.reference_lines()
    (tmp_path / "ref.txt").write_text("\n".join(lines) + "\n")
    p = subprocess.run([REFERENCE, str(tmp_path / "ref.txt")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    latency = int(p.stdout.split()[1])
    synth = np.fromfile(tmp_path / "synth.f32", dtype=np.float32).astype(np.float64)
    off = (np.fromfile(tmp_path / "offline.f32", dtype=np.float32).astype(np.float64)
           if offline else None)
    return synth, off, latency


def drum_score(sr, rng, cfg, t0=20):
    """Every class at a fresh time (explicit and automatic seeds, names and indices, gains,
    temperatures), then a path; returns (score, end time ms)."""
    classes = cfg["latent"]["classes"]
    score = Score(sr, seed=int(rng.integers(0, 1 << 24)))
    t = t0
    for i, name in enumerate(classes):
        t += int(rng.integers(4, 30)) * 10  # 10 ms steps: whole frames at 16, 44.1, 48 kHz
        gain = round(float(rng.uniform(0.3, 1.0)), 3)
        if i % 3 == 0:    # by name, explicit seed and temperature
            seed, temp = int(rng.integers(0, 1 << 24)), round(float(rng.uniform(0.5, 1.5)), 3)
            score.send(t, f"trigger {name} {gain} {seed} {temp}",
                       f"oneshot {{frame}} {i} {gain} {seed} 0 {temp}")
        elif i % 3 == 1:  # by index, automatic seed
            score.send(t, f"trigger {i} {gain}", f"oneshot {{frame}} {i} {gain} {{seed}} {{seq}} 1",
                       auto=True)
        else:             # by name in another case, defaults
            score.send(t, f"trigger {name.lower()}", f"oneshot {{frame}} {i} 1 {{seed}} {{seq}} 1",
                       auto=True)
        if i == 3:        # two events in the same logical instant
            score.send(t, f"trigger {name} 0.5 -1 0.9",
                       f"oneshot {{frame}} {i} 0.5 {{seed}} {{seq}} 0.9", auto=True)
    t += 130
    grains = path_grains(cfg, 1.5)
    score.send(t, "path circle 1.5 11", f"path {{frame}} 1 {grains} 11 0")
    t += 70
    grains2 = path_grains(cfg, 0.8)
    score.send(t, "path random 0.8", f"path {{frame}} 3 {grains2} {{seed}} {{seq}}", auto=True)
    hop = cfg["waveform"]["hop_size"] / cfg["waveform"]["sr"] * 1000
    end = t + (grains + 3) * hop + 200
    return score, float(np.ceil(end / 10) * 10)


# Malformed messages: each prints one Pd error and changes nothing (the recording must
# still equal the reference, which does not have them). {last}: the model's last class
# index.
BAD_MESSAGES = [
    ("trigger Nope", "unknown class 'Nope'"),
    ("trigger 99", "class index must be an integer in [0, {last}], got 99"),
    ("trigger 2.5", "class index must be an integer"),
    ("trigger", "trigger: needs a class"),
    ("trigger Kick loud", "gain must be a number"),
    ("trigger Kick -1", "gain must be in"),
    ("trigger Kick 1 2.5", "seed (-1 = automatic) must be an integer"),
    ("trigger Kick 1 -7", "seed (-1 = automatic) must be an integer"),
    ("trigger Kick 1 3 -2", "temperature must be in"),
    ("trigger Kick 1 3 1 9", "usage: trigger"),
    ("latent 1 2 3", "latent: needs 64 numbers (the model's z_dim), got 3"),
    ("path nope 1", "unknown kind 'nope'"),
    ("path circle 0.01", "shorter than one grain"),
    ("path circle -1", "seconds must be in"),
    ("path circle", "usage: path"),
    ("path 9 1", "kind must be an integer in [0, 4]"),
    ("resynth 2", "resynth: the switch must be an integer in [0, 1]"),
    ("resynth", "usage: resynth"),
    ("stop -5", "fade (ms) must be in"),
    ("seed -3", "seed: the seed must be an integer"),
    ("seed", "usage: seed"),
    ("threads 0", "thread count must be an integer in [1, 64]"),
    ("voices many", "voices: the voice count must be a number"),
    ("spread 3", "spread: the switch must be an integer in [0, 1]"),
    ("glide -1", "grains must be in"),
    ("open /nonexistent/model.safetensors", "cannot find '/nonexistent/model.safetensors'"),
    ("open", "usage: open"),
    ("frobnicate 1 2", "no method for 'frobnicate'"),
]


def check(rec, ref, what):
    assert len(rec) == len(ref)
    assert np.all(np.isfinite(rec)) and np.all(np.isfinite(ref))
    err = rel_l2(rec, ref)
    assert err <= TOL, f"{what}: relative L2 {err:.3g} > {TOL}"
    print(f"{what}: relative L2 {err:.3g}")
    return err


@pytest.fixture
def rng(request):
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"random seed {seed}")
    return np.random.default_rng(seed)


def test_every_class_and_a_path_match_the_offline_renders(tmp_path, rng):
    """At the model's rate: Pd's recording equals ngs_synth at the same frames and the
    offline one-shots / path placed at frame + latency."""
    cfg = model_config(DRUMS)
    sr = cfg["waveform"]["sr"]
    score, end = drum_score(sr, rng, cfg)
    for msg, _ in BAD_MESSAGES:  # at fresh times, between the good events
        score.send(float(rng.integers(1, int(end / 10))) * 10, msg)
    not_a_model = tmp_path / "not_a_model.safetensors"
    not_a_model.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}junk")
    score.send(float(rng.integers(1, int(end / 10))) * 10, f"open {not_a_model}")
    score.send(end - 10, "stats")
    rec, log = run_pd(tmp_path, score, sr, end, DRUMS)
    stats = [l for l in log.splitlines() if l.startswith("ngs-info: stats ")]
    assert len(stats) == 1, log
    blocks, applied, dropped = (float(v) for v in stats[0].split()[2:5])
    assert (applied, dropped) == (len(score.ref), 0), stats  # no bad message reached the synth
    assert abs(blocks - score.frame(end - 10) / 64) <= 1  # qlist times: +- a hair
    for msg, err in BAD_MESSAGES:
        err = err.replace("{last}", str(len(cfg["latent"]["classes"]) - 1))
        assert err in log, f"no error '{err}' for '{msg}':\n{log}"
    assert "the previous model stays open" in log
    synth, off, latency = run_reference(tmp_path, score, sr, len(rec), DRUMS, offline=True)
    assert f"latency {latency} " in log  # the info outlet
    assert "classes " + " ".join(cfg["latent"]["classes"]) in log
    assert np.max(np.abs(rec)) > 1e-3
    first = min(score.frames())
    assert np.all(rec[:first + latency] == 0) and rec[first + latency] != 0  # sample-accurate
    check(rec, synth, "Pd vs ngs_synth")
    check(rec, off, "Pd vs offline renders")


def test_resampled_host_rate_with_resynthesis(tmp_path, rng):
    """At 44.1 kHz (the synth converts): Pd equals ngs_synth driven directly with the same
    events and the same input signal (a resynthesis voice switched on and off)."""
    cfg = model_config(DRUMS)
    sr = 44100
    score, end = drum_score(sr, rng, cfg)
    n = int(end * sr / 1000)
    x = (0.3 * rng.standard_normal(n) * np.exp(-np.arange(n) / sr)).astype(np.float32)
    t_on = int(rng.integers(5, 40)) * 10
    score.send(t_on, "resynth 1", "resynth {frame} {seed} {seq}", auto=True)
    score.send(t_on + 10, "resynth 1")  # already on: nothing
    score.send(t_on + 600, "resynth 0", "resynth_stop {frame}")
    rec, log = run_pd(tmp_path, score, sr, end, DRUMS, input_signal=x)
    synth, _, _ = run_reference(tmp_path, score, sr, len(rec), DRUMS, offline=False,
                                input_signal=x)
    check(rec, synth, "Pd vs ngs_synth at 44.1 kHz")



def test_open_during_dsp_and_dsp_restarts(tmp_path, rng):
    """A DSP restart (`pd dsp 0` + `pd dsp 1`, or an object added to the patch) calls the
    dsp method again, which keeps the synth and its voices; `open` of another model (22.05 kHz, 16 kHz host) while DSP runs swaps the synth
    between two blocks: the new one renders from the block of the message on."""
    other = os.path.join(FIXTURES, "lstm22k", "model.safetensors")
    if not os.path.exists(other):
        pytest.skip("fixtures missing: python3 -m weights_converter.make_fixtures --out build/fixtures")
    cfg = model_config(DRUMS)
    sr = cfg["waveform"]["sr"]
    score = Score(sr, seed=int(rng.integers(0, 1 << 24)))
    t = 20
    for i in range(3):
        t += int(rng.integers(3, 20)) * 10
        score.send(t, f"trigger {i} 0.9", f"oneshot {{frame}} {i} 0.9 {{seed}} {{seq}} 1", auto=True)
        if i == 1:  # while a one-shot plays: DSP off and on again in the same instant
            score.raw(t + 30, "pd dsp 0")
            score.raw(t + 30, "pd dsp 1")
        else:       # a new signal object: Pd rebuilds the DSP graph
            score.raw(t + 30, f"pd-render.pd obj {600 + 10 * i} 350 osc~ {100 + i}")
    t += 300
    t_open = t + 10 * int(rng.integers(0, 6)) + 1.25  # 20 frames past a 10 ms point
    score.lines.append((t_open, f"ngs-test-in open {other}"))
    score.ref.append((t_open - (score.frame(t_open) % 64) * 1000 / sr, f"reopen {{frame}} {other}",
                      False))
    for i in range(7):
        t = t_open + 5 + int(rng.integers(2, 12)) * 10
        score.send(t, f"trigger {6 - i} 0.7 {100 + i}", f"oneshot {{frame}} {6 - i} 0.7 {100 + i} 0 1")
    end = t + 1500
    rec, log = run_pd(tmp_path, score, sr, end, DRUMS)
    assert "model_samplerate 22050" in log and "samplerate 16000" in log
    synth, _, _ = run_reference(tmp_path, score, sr, len(rec), DRUMS, offline=False)
    k = score.frame(t_open) // 64 * 64
    # a voice plays into the open (it fades out): the last one-shot is 300-350 ms into
    # its decay there, -95 dBFS at the least over 140 seeds of the bundled models (1e-4
    # failed for 5-20 % of the seeds); no voice is exact silence
    assert np.max(np.abs(rec[k - 64:k])) > 1e-6
    assert np.max(np.abs(rec[k:])) > 1e-4
    check(rec[:k], synth[:k], "before the open")
    check(rec[k:], synth[k:], "after the open")


def test_no_model_and_a_missing_model(tmp_path):
    """Without a model every message says so; a missing model at creation or in `open`
    prints an error and leaves a silent, working object; Pd goes on and exits normally."""
    sr = 16000
    score = Score(sr)
    for msg in ["trigger Kick", "latent 0", "path line 1", "resynth 1", "stop", "stats"]:
        score.send(10, msg)
    score.send(20, "open /nonexistent/drums.safetensors")
    score.raw(30, "pd-render.pd obj 300 300 ngs~ /nonexistent/creation.safetensors")
    score.raw(30, "pd-render.pd obj 300 330 ngs~ -voices 0 -bogus 3")
    score.send(40, "info")
    rec, log = run_pd(tmp_path, score, sr, 500, None)
    assert log.count("no model is open") == 5, log
    assert "stats: no synth" in log
    assert "cannot find '/nonexistent/drums.safetensors'" in log
    assert "cannot find '/nonexistent/creation.safetensors'" in log
    assert "-voices: the voice count must be an integer in [1, 256], got 0" in log
    assert "unknown flag '-bogus'" in log
    assert "ngs-info: model" in log  # `info` without a model: an empty `model` message
    assert np.all(rec == 0)


def test_help_patch_opens(tmp_path):
    """The help patch (next to the external in the build tree) creates every object and
    opens its model without an error."""
    help_patch = os.path.join(EXT_DIR, "ngs~-help.pd")
    p = subprocess.run([PD, "-nogui", "-noaudio", "-batch", "-path", EXT_DIR, "-open", help_patch,
                        "-send", "pd quit"], capture_output=True, text=True, timeout=120)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log
    assert "error" not in log and "couldn't create" not in log and "failed" not in log, log


def test_block_128_subpatch(tmp_path, rng):
    """ngs~ in a [block~ 128] subpatch: the dsp method makes a new synth for 128 frames
    (its info says so) and events keep their frames; Pd's reblocking delays the
    subpatch's output by 128 - 64 frames in the parent."""
    cfg = model_config(DRUMS)
    sr = cfg["waveform"]["sr"]
    score, end = drum_score(sr, rng, cfg)
    score.lines.insert(0, (0.0, "ngs-test-block set 128"))
    rec, log = run_pd(tmp_path, score, sr, end, DRUMS)
    assert "blocksize 128" in log
    synth, _, _ = run_reference(tmp_path, score, sr, len(rec), DRUMS, offline=False, block=128)
    delay = 128 - 64  # outlet~ of a subpatch reblocked from 64 to N frames: N - 64
    assert np.all(rec[:delay] == 0)
    check(rec[delay:], synth[:len(rec) - delay], "Pd [block~ 128] vs ngs_synth")


def random_message(rng, classes):
    """A message to ngs~ with random, often wrong, arguments."""
    def num():
        return rng.choice([f"{rng.normal() * 10 ** rng.integers(0, 8):g}", str(int(rng.integers(-3, 40))),
                           "-1", "0", "1", "0.5", "1e30", "-1e30"])
    def arg():
        return num() if rng.random() < 0.7 else rng.choice(["foo", "Kick", "circle", "-", "nan"])
    sel = rng.choice(["trigger", "path", "latent", "resynth", "stop", "seed", "glide", "threads",
                      "voices", "spread", "info", "stats", "open", "bang", "bogus"])
    if sel == "trigger" and rng.random() < 0.5:
        args = [rng.choice(classes)] + [num() for _ in range(rng.integers(0, 4))]
    elif sel == "latent" and rng.random() < 0.5:
        args = [f"{v:.4g}" for v in rng.normal(size=64) * 10 ** rng.integers(0, 6)]
    elif sel == "threads" or sel == "voices":
        args = [str(int(rng.integers(-1, 6)))]
    else:
        args = [arg() for _ in range(rng.integers(0, 5))]
    return " ".join([sel] + args)


def test_random_messages_never_crash(tmp_path, rng):
    """300 random messages (most malformed, some valid, some extreme) at random times: Pd
    neither crashes nor stops, the output stays finite."""
    cfg = model_config(DRUMS)
    sr = cfg["waveform"]["sr"]
    score = Score(sr)
    for _ in range(300):
        score.send(float(rng.integers(1, 300)) * 10, random_message(rng, cfg["latent"]["classes"]))
    rec, log = run_pd(tmp_path, score, sr, 3200, DRUMS)
    assert np.all(np.isfinite(rec)), "non-finite output"
    assert np.max(np.abs(rec)) > 0
