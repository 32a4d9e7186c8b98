"""The converter: round trip of every fixture, fp16 bound, hierarchical input, the file
format, and every error path (each reported by name, all at once)."""
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from weights_converter import convert as CV
from weights_converter import folded as FO
from weights_converter import lightning as LT
from weights_converter import make_fixtures as MF
from weights_converter import reference as R
from weights_converter import rng
from weights_converter import safetensors as ST

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

# Documented in docs/CONVERTER.md: fp32 files reproduce the float64 reference to 1e-5
# (relative L2 per stage), fp16 files to 5e-3.
FP32_TOL = 1e-5
FP16_TOL = 5e-3


def rel(a, b):
    a = np.asarray(a.detach().double() if torch.is_tensor(a) else a, dtype=np.float64)
    b = np.asarray(b.detach().double() if torch.is_tensor(b) else b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def load_model(path):
    t, meta = ST.load(path)
    return t, meta, json.loads(meta["ngs.config"])


def doc_tensor_names(cfg):
    """Every tensor name docs/MODEL_FORMAT.md lists, expanded for a config."""
    w, l = cfg["waveform"], cfg["latent"]
    names = []
    for i in range(w["n_convs"]):
        names += ["w.enc.conv.%d.weight" % i, "w.enc.conv.%d.bias" % i]
        for j in range(3):
            p = "w.enc.res.%d.%d." % (i, j)
            names += [p + "dil.weight", p + "dil.bias", p + "pw.weight", p + "sc.weight", p + "bias"]
    for i in range(2):
        names += ["w.enc.lin.%d.weight" % i, "w.enc.lin.%d.bias" % i]
    names += ["w.enc.mu.weight", "w.enc.mu.bias", "w.enc.logvar.weight", "w.enc.logvar.bias"]
    for i in range(w["n_linears"]):
        names += ["w.dec.lin.%d.weight" % i, "w.dec.lin.%d.bias" % i]
    names += ["w.dec.out.weight", "w.dec.out.bias", "w.pp.fir", "w.pp.bias"]
    if l:
        for i in range(l["n_linears"]):
            for p in ("l.enc_z.%d." % i, "l.dec_z.%d." % i):
                names += [p + "weight", p + "bias", p + "ln_weight", p + "ln_bias"]
            names += ["l.enc_e.%d.weight" % i, "l.enc_e.%d.bias" % i,
                      "l.dec_e.%d.weight" % i, "l.dec_e.%d.bias" % i]
        for k in range(l["n_RNN"]):
            for p in ("l.enc_rnn.%d." % k, "l.dec_rnn.%d." % k):
                names += [p + "w_ih", p + "w_hh", p + "b_ih", p + "b_hh"]
        names += ["l.mu.weight", "l.mu.bias", "l.logvar.weight", "l.logvar.bias",
                  "l.dec_z.out.weight", "l.dec_z.out.bias"]
    return names


# ------------------------------------------------------------------ round trips

def test_round_trip_against_goldens(fixtures_dir, config_name):
    d = fixtures_dir / config_name
    t, meta, cfg = load_model(d / "model.safetensors")
    assert meta["ngs.format"] == "ngs-model" and meta["ngs.format_version"] == "1"
    assert meta["ngs.weight_dtype"] == "fp32" and meta["ngs.converter_version"]
    assert sorted(t) == sorted(doc_tensor_names(cfg))
    assert all(v.dtype == np.float32 for v in t.values())
    w, l = cfg["waveform"], cfg["latent"]
    F_ = w["l_grain"] // 2 + 1
    assert t["w.dec.out.weight"].shape == (F_, w["h_dim"])
    assert t["w.pp.fir"].shape == (w["pp_ker"],) and t["w.pp.bias"].shape == (1,)
    assert t["w.enc.res.0.0.pw.weight"].shape == (w["channels"], w["channels"])
    assert cfg["hparams"]["waveform"]["learning_rate"] > 0
    # sources: names, roles, hashes of the real files
    src = json.loads(meta["ngs.sources"])
    for name, role in (("checkpoint_waveform.ckpt", "waveform_checkpoint"),
                       ("hparams_waveform.yaml", "waveform_hparams"),
                       ("checkpoint_latent.ckpt", "latent_checkpoint"),
                       ("hparams_latent.yaml", "latent_hparams")):
        assert src[name]["role"] == role
        assert src[name]["sha256"] == hashlib.sha256((d / name).read_bytes()).hexdigest()
    g, gm = ST.load(d / "golden.safetensors")
    m = FO.FoldedModel(t, cfg)
    enc = m.encode(g["encode.audio"], g["encode.eps"])
    for k in ("mu", "logvar", "z"):
        assert rel(enc[k], g["encode." + k]) < FP32_TOL, k
    dec = m.decode(g["decode.z"], g["decode.noise"])
    np.testing.assert_array_equal(g["decode.noise"], rng.grain_noise(int(gm["golden.seed"]), 0, 0, w["n_grains"], w["l_grain"]))
    assert rel(m.magnitudes(g["decode.z"]), g["decode.magnitudes"]) < FP32_TOL
    for k in ("spectrum", "grains", "ola", "audio"):
        assert rel(dec[k], g["decode." + k]) < FP32_TOL, k
    ci = int(gm["golden.class_index"])
    ci = None if ci < 0 else ci
    assert rel(m.latent_decode(g["latent.e"], ci), g["latent.z"]) < FP32_TOL
    le = m.latent_encode(g["latent.z"])
    assert rel(le["mu"], g["latent.e_mu"]) < FP32_TOL and rel(le["logvar"], g["latent.e_logvar"]) < FP32_TOL
    z = m.latent_decode(g["sample.e"], ci)
    assert rel(z, g["sample.z"]) < FP32_TOL
    assert rel(m.decode(z, rng.grain_noise(int(gm["golden.seed"]), 0, 0, w["n_grains"], w["l_grain"]))["audio"],
               g["sample.audio"]) < FP32_TOL
    n_free = g["free.z"].shape[0]
    assert n_free != w["n_grains"]
    assert rel(m.decode(g["free.z"], rng.grain_noise(int(gm["golden.seed"]), 0, 0, n_free, w["l_grain"]))["audio"],
               g["free.audio"]) < FP32_TOL
    assert set(json.loads(gm["golden.path_params"])) >= {"seed", "sequence", "temperature", "turns", "points", "legs", "gamma", "n"}


def test_fp16_within_documented_bound(fixtures_dir, config_name):
    d = fixtures_dir / config_name
    t16, meta, cfg = load_model(d / "model_fp16.safetensors")
    t32, _, _ = load_model(d / "model.safetensors")
    assert meta["ngs.weight_dtype"] == "fp16"
    for k, v in t16.items():
        assert v.dtype == (np.float32 if k == "w.pp.bias" else np.float16), k
        np.testing.assert_allclose(v.astype(np.float32), t32[k], rtol=1e-3, atol=1e-4)
    g, gm = ST.load(d / "golden.safetensors")
    m = FO.FoldedModel(t16, cfg)
    dec = m.decode(g["decode.z"], g["decode.noise"])
    errs = {"audio": rel(dec["audio"], g["decode.audio"]),
            "spectrum": rel(dec["spectrum"], g["decode.spectrum"]),
            "mu": rel(m.encode(g["encode.audio"])["mu"], g["encode.mu"])}
    ci = int(gm["golden.class_index"])
    errs["latent"] = rel(m.latent_decode(g["latent.e"], None if ci < 0 else ci), g["latent.z"])
    assert max(errs.values()) < FP16_TOL, errs
    assert max(errs.values()) > 1e-6  # really fp16


def test_hierarchical_checkpoint_gives_the_same_file(fixtures_dir, tmp_path):
    d = fixtures_dir / "lstm22k"
    out = tmp_path / "h.safetensors"
    CV.convert(str(out), w_yaml=str(d / "hparams_waveform.yaml"), l_yaml=str(d / "hparams_latent.yaml"),
               h_ckpt=str(d / "checkpoint_hierarchical.ckpt"))
    th, mh, ch = load_model(out)
    t, m, c = load_model(d / "model.safetensors")
    assert sorted(th) == sorted(t)
    for k in t:
        np.testing.assert_array_equal(th[k], t[k])
    assert ch["waveform"] == c["waveform"] and ch["latent"] == c["latent"]
    roles = {v["role"] for v in json.loads(mh["ngs.sources"]).values()}
    assert roles == {"hierarchical_checkpoint", "waveform_hparams", "latent_hparams"}
    with pytest.raises(CV.ConversionError, match="both sub-model yaml"):
        CV.load_sources(h_ckpt=str(d / "checkpoint_hierarchical.ckpt"), w_yaml=str(d / "hparams_waveform.yaml"))


def test_waveform_only_file(fixtures_dir):
    t, meta, cfg = load_model(fixtures_dir / "gru16k" / "model_waveform_only.safetensors")
    assert cfg["latent"] is None and not any(k.startswith("l.") for k in t)
    assert sorted(t) == sorted(doc_tensor_names(cfg))


def test_fixtures_are_deterministic(fixtures_dir, tmp_path):
    MF.main(["--out", str(tmp_path), "--only", "noola"])
    for f in ("golden.safetensors", "model.safetensors", "model_fp16.safetensors"):
        assert (tmp_path / "noola" / f).read_bytes() == (fixtures_dir / "noola" / f).read_bytes(), f


def test_checkpoint_looks_like_lightning(fixtures_dir):
    p = fixtures_dir / "lstm22k" / "checkpoint_latent.ckpt"
    with zipfile.ZipFile(p) as z:
        pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]
        data = z.read(pkl)
    # Lightning 1.4 (the authors' line) keys callbacks by the class: a global used as a key
    assert b"pytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint" in data
    assert b"AttributeDict" not in data  # hyper_parameters is a plain dict in real files
    ck = LT.load_checkpoint(p)
    assert list(ck) == ["epoch", "global_step", "pytorch-lightning_version", "state_dict",
                        "callbacks", "optimizer_states", "lr_schedulers", "hparams_name",
                        "hyper_parameters"]
    assert ck["pytorch-lightning_version"] == "1.4.9"
    assert type(ck["hyper_parameters"]) is dict and ck["hyper_parameters"]["rnn_type"] == "LSTM"
    assert {k.qualname for k in ck["callbacks"]} == {
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
        "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor"}
    assert type(ck["lr_schedulers"][0]["gamma"]) is np.float64
    assert ck["state_dict"]["decoder_e.0.block.1.num_batches_tracked"].dtype == np.int64
    sd = ck["state_dict"]
    assert sd["decoder_e.0.block.1.running_var"].std() > 0.1  # non-trivial BN statistics
    assert np.abs(sd["decoder_e.0.block.1.running_mean"]).max() > 0.1
    y = yaml.safe_load((fixtures_dir / "lstm22k" / "hparams_latent.yaml").read_text())
    assert y["classes"][4] == "Kick" and y["n_RNN"] == 2
    # torch itself reads it back identically when the Lightning class can be imported
    with LT.stand_in_classes():
        ck2 = torch.load(p)
    for k, v in ck2["state_dict"].items():
        np.testing.assert_array_equal(v.numpy(), sd[k])
    assert "pytorch_lightning" not in sys.modules


def test_cli_help_and_check(fixtures_dir, tmp_path):
    h = subprocess.run([PY, "-m", "weights_converter", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert h.returncode == 0 and "--dtype" in h.stdout and "--hierarchical-ckpt" in h.stdout
    d = fixtures_dir / "gru16k"
    out = tmp_path / "m.safetensors"
    code = ("import sys, weights_converter.__main__ as m; r = m.main(sys.argv[1:]); "
            "print('LIGHTNING_LOADED' if 'pytorch_lightning' in sys.modules else 'NO_LIGHTNING'); sys.exit(r)")
    p = subprocess.run([PY, "-c", code, "--waveform-ckpt", str(d / "checkpoint_waveform.ckpt"),
                        "--waveform-hparams", str(d / "hparams_waveform.yaml"),
                        "--latent-ckpt", str(d / "checkpoint_latent.ckpt"),
                        "--latent-hparams", str(d / "hparams_latent.yaml"), "-o", str(out), "--check"],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "NO_LIGHTNING" in p.stdout
    rows = re.findall(r"^(decoder audio|encoder mu|latent decode z)\s+([0-9.e+-]+)\s+([0-9.e+-]+)$", p.stdout, re.M)
    assert len(rows) == 3, p.stdout
    assert all(float(a) < 1e-5 for _, a, _ in rows)
    assert out.read_bytes() == (d / "model.safetensors").read_bytes()


# ------------------------------------------------------------------ error paths

def _write(tmp_path, w_sd, w_hp, name="w"):
    ck, y = tmp_path / (name + ".ckpt"), tmp_path / (name + ".yaml")
    LT.save_lightning_checkpoint(ck, {k: torch.as_tensor(v) for k, v in w_sd.items()}, w_hp)
    LT.save_hparams_yaml(y, w_hp)
    return str(ck), str(y)


@pytest.fixture(scope="module")
def small():
    w, l = MF.random_models(MF.CONFIGS["noola"], seed=3)
    return ({k: v.numpy().copy() for k, v in w.state_dict().items()}, dict(w.hparams),
            {k: v.numpy().copy() for k, v in l.state_dict().items()}, dict(l.hparams))


def _refuse(tmp_path, *args, **kw):
    with pytest.raises(CV.ConversionError) as e:
        CV.convert(str(tmp_path / "out.safetensors"), *args, **kw)
    assert not (tmp_path / "out.safetensors").exists()
    return e.value


def test_all_problems_reported_at_once(tmp_path, small):
    w_sd, w_hp, l_sd, l_hp = small
    sd = dict(w_sd)
    del sd["mu.bias"]                                            # missing key
    sd["decoder_linears.1.block.0.weight"] = np.zeros((5, 7), np.float32)  # wrong shape
    sd["post_pro.0.weight"] = sd["post_pro.0.weight"].astype(np.int32)      # wrong dtype
    sd["extra.weight"] = np.ones(3, np.float32)                  # unexpected key
    sd["encoder_convs.1.0.conv.2.running_var"] = np.full(16, np.nan, np.float32)
    lsd = dict(l_sd)
    lsd["decoder_rnn.weight_hh_l2"] = np.zeros((3, 3), np.float32)
    ck, y = _write(tmp_path, sd, w_hp)
    lck, ly = _write(tmp_path, lsd, l_hp, "l")
    e = _refuse(tmp_path, ck, y, lck, ly)
    msg = str(e)
    assert len(e.problems) == 6, msg
    assert "missing key 'mu.bias' (expected shape [16])" in msg
    assert "'decoder_linears.1.block.0.weight' has shape [5, 7], expected [48, 48]" in msg
    assert "'post_pro.0.weight' has dtype int32" in msg
    assert "unexpected key 'extra.weight'" in msg
    assert "running_var' contains NaN" in msg
    assert "latent: 'decoder_rnn.weight_hh_l2' has shape [3, 3], expected [144, 48]" in msg
    # the CLI prints them all and exits 1
    p = subprocess.run([PY, "-m", "weights_converter", "--waveform-ckpt", ck, "--waveform-hparams", y,
                        "-o", str(tmp_path / "cli.safetensors")], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 1 and "missing key 'mu.bias'" in p.stderr and "extra.weight" in p.stderr
    assert not (tmp_path / "cli.safetensors").exists()


def test_bad_hyper_parameters(tmp_path, small):
    w_sd, w_hp, l_sd, l_hp = small
    hp = dict(w_hp, hop_size=100, pp_ker=64)
    del hp["channels"]
    ck, y = _write(tmp_path, w_sd, hp)
    msg = str(_refuse(tmp_path, ck, y))
    assert "'channels' is missing" in msg
    hp = dict(w_hp, hop_size=100, pp_ker=64, l_grain=500)
    ck, y = _write(tmp_path, w_sd, hp)
    e = _refuse(tmp_path, ck, y)
    assert any("hop_size" in p for p in e.problems) and any("pp_ker" in p for p in e.problems)
    assert any("power of two" in p for p in e.problems)
    ck, y = _write(tmp_path, w_sd, w_hp)
    lck, ly = _write(tmp_path, l_sd, dict(l_hp, z_dim=32, rnn_type="RNN"), "l")
    e = _refuse(tmp_path, ck, y, lck, ly)
    assert any("z_dim = 32 differs" in p for p in e.problems) and any("rnn_type" in p for p in e.problems)


def test_fixed_windows_are_checked(tmp_path, small):
    w_sd, w_hp, _, _ = small
    sd = dict(w_sd)
    sd["ola_windows"] = np.ones_like(sd["ola_windows"])  # e.g. a model trained with other windows
    sd["filter_window"] = sd["filter_window"] * 1.01
    ck, y = _write(tmp_path, sd, w_hp)
    e = _refuse(tmp_path, ck, y)
    assert any("'ola_windows' differs from its definition" in p for p in e.problems)
    assert any("'filter_window' differs" in p for p in e.problems)


def test_not_a_zip_and_truncated(tmp_path, fixtures_dir):
    d = fixtures_dir / "noola"
    y = str(d / "hparams_waveform.yaml")
    bad = tmp_path / "text.ckpt"
    bad.write_text("this is not a checkpoint\n")
    assert "not a zip file" in str(_refuse(tmp_path, str(bad), y))
    raw = (d / "checkpoint_waveform.ckpt").read_bytes()
    for cut in (len(raw) // 2, len(raw) - 30, 100):
        tr = tmp_path / ("trunc%d.ckpt" % cut)
        tr.write_bytes(raw[:cut])
        msg = str(_refuse(tmp_path, str(tr), y))
        assert "truncated" in msg, msg
    legacy = tmp_path / "legacy.ckpt"
    legacy.write_bytes(pickle.dumps({"state_dict": {}}, protocol=2))
    assert "legacy" in str(_refuse(tmp_path, str(legacy), y))
    assert "cannot be read" in str(_refuse(tmp_path, str(tmp_path / "absent.ckpt"), y))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch %s" % self.marker,))


def test_pickle_that_runs_a_command_is_refused(tmp_path, fixtures_dir):
    marker = tmp_path / "PWNED"
    ck = tmp_path / "evil.ckpt"
    sd = {"mu.weight": torch.zeros(2, 2)}
    torch.save({"state_dict": sd, "hyper_parameters": {"z_dim": 2}, "payload": _Evil(marker)}, ck)
    # sanity: a plain unpickler would run it
    with zipfile.ZipFile(ck) as z:
        data = z.read([n for n in z.namelist() if n.endswith("data.pkl")][0])
    assert b"system" in data
    with pytest.raises(LT.CheckpointError) as e:
        LT.load_checkpoint(ck)
    msg = str(e.value)
    assert re.search(r"global '(posix|os|nt)\.system'", msg), msg
    assert "not in the allow-list" in msg and "nothing from the file was executed" in msg
    assert not marker.exists()
    # through the CLI as well
    p = subprocess.run([PY, "-m", "weights_converter", "--waveform-ckpt", str(ck), "--waveform-hparams",
                        str(fixtures_dir / "noola" / "hparams_waveform.yaml"), "-o", str(tmp_path / "o.st")],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 1 and "system" in p.stderr and not marker.exists()
    # other code-bearing globals are refused too
    for mod, name in (("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load")):
        payload = b"\x80\x02c" + mod.encode() + b"\n" + name.encode() + b"\nq\x00."
        z = tmp_path / ("g_%s.ckpt" % name)
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
        with pytest.raises(LT.CheckpointError, match="'%s.%s'" % (mod, name)):
            LT.load_checkpoint(z)


def test_storage_past_its_end_is_refused(tmp_path, fixtures_dir):
    src = fixtures_dir / "noola" / "checkpoint_latent.ckpt"
    out = tmp_path / "short.ckpt"
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(out, "w") as zo:
        for n in zi.namelist():
            data = zi.read(n)
            if re.search(r"/data/0$", n):
                data = data[: len(data) // 2]
            zo.writestr(n, data)
    with pytest.raises(LT.CheckpointError, match="storage"):
        LT.load_checkpoint(out)


def test_safetensors_layout(fixtures_dir):
    raw = (fixtures_dir / "lstm22k" / "model_fp16.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    assert all(isinstance(v, str) for v in meta.values())
    spans = sorted(tuple(h["data_offsets"]) for h in header.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # no holes
    for h in header.values():
        if h["dtype"] == "F32":
            assert h["data_offsets"][0] % 4 == 0


def test_drum_size_model_converts_fast(tmp_path):
    """The released drum configuration (z 128, h 512, channels 128, 41 grains, LSTM 512,
    7 classes, l_grain 2048) converts in under 10 s."""
    cfg = dict(
        waveform=dict(z_dim=128, h_dim=512, kernel_size=9, channels=128, n_convs=3, stride=4,
                      n_linears=3, n_grains=41, hop_size=512, normalize_ola=True, pp_chans=5,
                      pp_ker=65, l_grain=2048, sr=22050, learning_rate=1e-4),
        latent=dict(e_dim=256, z_dim=128, h_dim=512, n_linears=2, rnn_type="LSTM", n_RNN=1,
                    n_grains=41, classes=["Clap", "Cowbell", "Cymb_Crash_Ride", "Hat", "Kick",
                                          "Snare", "Tom"], conditional=True))
    w, l = MF.random_models(cfg, seed=7)
    p = MF.write_checkpoints(str(tmp_path), w, l)
    t0 = time.perf_counter()
    t, meta, src = CV.convert(str(tmp_path / "drums.safetensors"), p["w_ckpt"], p["w_yaml"], p["l_ckpt"], p["l_yaml"])
    dt = time.perf_counter() - t0
    assert dt < 10.0, dt
    assert t["w.enc.lin.0.weight"].shape == (512, 128 * 32)
    assert t["l.dec_rnn.0.w_hh"].shape == (4 * 512, 512)
    assert t["l.dec_e.0.weight"].shape == (512, 256 + 7)


def test_fp16_overflow_is_refused(tmp_path, small):
    w_sd, w_hp, _, _ = small
    sd = dict(w_sd)
    sd["decoder_linears.0.block.1.running_var"] = np.full(48, 1e-12, np.float32)  # huge BN scale
    sd["decoder_linears.0.block.0.weight"] = sd["decoder_linears.0.block.0.weight"] * 1000
    ck, y = _write(tmp_path, sd, w_hp)
    e = _refuse(tmp_path, ck, y, dtype="fp16")
    assert any(p.startswith("w.dec.lin.0.weight: folded values") for p in e.problems), e.problems
    CV.convert(str(tmp_path / "ok.safetensors"), ck, y)  # fine in fp32
    p = subprocess.run([PY, "-m", "weights_converter", "--waveform-ckpt", ck, "--waveform-hparams", y,
                        "-o", str(tmp_path / "no" / "such" / "dir.safetensors")], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 1 and "No such file or directory" in p.stderr and "Traceback" not in p.stderr


def test_harmless_extras_in_real_checkpoints_load(tmp_path):
    """Lightning callbacks may hold numpy scalars/arrays (pickled through _codecs.encode
    and numpy's reconstructors) and Parameters: those load, as data only."""
    ck = tmp_path / "x.ckpt"
    torch.save({"state_dict": {"a": torch.nn.Parameter(torch.arange(3.0))},
                "callbacks": {"ModelCheckpoint": {"best_model_score": np.float64(0.25),
                                                  "scores": np.arange(4.0), "s": {1, 2}}},
                "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 3}}}}}, ck)
    c = LT.load_checkpoint(ck)
    np.testing.assert_array_equal(c["state_dict"]["a"], [0.0, 1.0, 2.0])
    assert c["callbacks"]["ModelCheckpoint"]["best_model_score"] == 0.25
    np.testing.assert_array_equal(c["callbacks"]["ModelCheckpoint"]["scores"], np.arange(4.0))
