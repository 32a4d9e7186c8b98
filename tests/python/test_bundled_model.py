"""The bundled trained drum model (models/drums.safetensors, models/README.md).

* the file parses (plain safetensors reader), is an ngs model of format version 1 with a
  waveform and a class-conditioned sequence model, its tensors are finite and have the
  dtypes the format prescribes;
* it is exactly what the converter makes of the shipped authors'-format checkpoints
  (models/drums_*.ckpt + hparams yaml): same metadata (config, sources with sha256,
  dtype, format) and bit-identical tensors;
* its weights, loaded into the PyTorch reference modules (training/ngs_file.py), decode
  identically to the converter's independent folded forward pass, and one-shots sampled
  per class with fresh random seeds are finite (no NaN/Inf) and not silent;
* its classes are the permissive data set's seven (Rim merged into Snare), and the card's
  quality numbers (models/quality.json) were measured on this file's classes and data;
* generated kicks are bass-heavy and loud enough (the card's headline against the
  previous bundled model).
"""
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "training"))

MODELS = os.environ.get("NGS_MODELS_DIR", os.path.join(ROOT, "models"))  # override: tests
MODEL = os.path.join(MODELS, "drums.safetensors")
SOURCES = {
    "waveform_ckpt": os.path.join(MODELS, "drums_waveform.ckpt"),
    "waveform_yaml": os.path.join(MODELS, "drums_waveform_hparams.yaml"),
    "latent_ckpt": os.path.join(MODELS, "drums_latent.ckpt"),
    "latent_yaml": os.path.join(MODELS, "drums_latent_hparams.yaml"),
}
SEED = int(np.random.SeedSequence().entropy % (1 << 63))


@pytest.fixture(scope="module")
def bundled():
    from weights_converter import safetensors
    assert os.path.isfile(MODEL), "the bundled model %s is missing" % MODEL
    tensors, meta = safetensors.load(MODEL)
    return tensors, meta


def test_bundled_file_loads(bundled):
    tensors, meta = bundled
    assert meta["ngs.format"] == "ngs-model"
    assert meta["ngs.format_version"] == "1"
    assert meta["ngs.weight_dtype"] in ("fp16", "fp32")
    cfg = json.loads(meta["ngs.config"])
    w, l = cfg["waveform"], cfg["latent"]
    assert l is not None and l["conditional"] is True
    for c in ("Kick", "Snare", "Hat"):
        assert c in l["classes"]
    assert l["z_dim"] == w["z_dim"] and l["n_grains"] == w["n_grains"]
    assert w["hop_size"] * 4 == w["l_grain"]
    want = np.float16 if meta["ngs.weight_dtype"] == "fp16" else np.float32
    for k, v in tensors.items():
        assert np.all(np.isfinite(v.astype(np.float32))), k
        assert v.dtype == (np.float32 if k == "w.pp.bias" else want), (k, v.dtype)
    assert tensors["w.dec.out.weight"].shape == (w["l_grain"] // 2 + 1, w["h_dim"])
    assert tensors["l.dec_e.0.weight"].shape == (l["h_dim"], l["e_dim"] + len(l["classes"]))
    sources = json.loads(meta["ngs.sources"])
    assert {v["role"] for v in sources.values()} >= {"waveform_checkpoint", "latent_checkpoint"}


def test_reconversion_matches(bundled, tmp_path):
    from weights_converter import safetensors
    from weights_converter.convert import convert
    for p in SOURCES.values():
        assert os.path.isfile(p), "shipped source %s is missing" % p
    tensors, meta = bundled
    out = str(tmp_path / "again.safetensors")
    convert(out, w_ckpt=SOURCES["waveform_ckpt"], w_yaml=SOURCES["waveform_yaml"],
            l_ckpt=SOURCES["latent_ckpt"], l_yaml=SOURCES["latent_yaml"],
            dtype=meta["ngs.weight_dtype"])
    again, meta2 = safetensors.load(out)
    for k in ("ngs.format", "ngs.format_version", "ngs.weight_dtype"):
        assert meta2[k] == meta[k], k
    assert json.loads(meta2["ngs.config"]) == json.loads(meta["ngs.config"])
    assert json.loads(meta2["ngs.sources"]) == json.loads(meta["ngs.sources"])
    assert sorted(again) == sorted(tensors)
    for k in tensors:
        assert again[k].dtype == tensors[k].dtype, k
        assert np.array_equal(again[k], tensors[k]), k


def _rel(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_decode_through_reference_is_finite_and_not_silent(bundled):
    import torch
    import ngs_file
    from weights_converter import reference as ref
    from weights_converter import rng
    from weights_converter.folded import FoldedModel
    torch.set_num_threads(1)
    tensors, meta = bundled
    w, l, cfg = ngs_file.load_reference(MODEL)
    folded = FoldedModel(tensors, cfg)
    classes = cfg["latent"]["classes"]
    N, L = cfg["waveform"]["n_grains"], cfg["waveform"]["l_grain"]
    for ci, name in enumerate(classes):
        out = ref.sample_one_shot(w, l, SEED, ci, 1.0, sequence=ci)
        audio = out["audio"].numpy()
        assert audio.shape == ((N + 3) * L // 4,)
        assert np.all(np.isfinite(audio)), (name, SEED)
        peak = float(np.max(np.abs(audio)))
        rms = float(np.sqrt(np.mean(audio ** 2)))
        assert peak > 1e-2 and rms > 1e-4, (name, peak, rms, SEED)
        # the loader's reference modules and the converter's folded forward agree
        e = rng.embedding_sample(SEED, ci, cfg["latent"]["e_dim"], 1.0)
        z_ref = ref.latent_decode(l, e, ci).numpy()
        z_fold = folded.latent_decode(e, ci).numpy()
        assert _rel(z_ref, z_fold) < 1e-4, (name, SEED)
        noise = rng.grain_noise(SEED, ci, 0, N, L)
        a_fold = folded.decode(z_fold, noise)["audio"].numpy()
        assert _rel(audio, a_fold) < 1e-4, (name, SEED)
    # encoding a decoded one-shot gives finite latents that decode to finite audio
    enc = ref.encode(w, audio)
    assert np.all(np.isfinite(enc["mu"].numpy()))
    back = ref.decode(w, enc["mu"], rng.grain_noise(SEED, 99, 0, N, L))["audio"].numpy()
    assert np.all(np.isfinite(back)) and np.max(np.abs(back)) > 1e-3


def test_classes_and_card_numbers_belong_to_this_model(bundled):
    """The shipped model is the permissive one (models/README.md, Data): seven classes,
    Rim merged into Snare; quality.json (every number of the card) was measured on a data
    set with exactly these classes, the permissive held-out split, against the previous
    model as the baseline."""
    _, meta = bundled
    classes = json.loads(meta["ngs.config"])["latent"]["classes"]
    assert classes == ["Clap", "Cowbell", "Cymb_Crash_Ride", "Hat", "Kick", "Snare", "Tom"]
    with open(os.path.join(MODELS, "quality.json")) as f:
        q = json.load(f)
    assert q["classes"] == classes
    assert q["data"] == "drums16k_mit.npz" and q["baseline"] is not None
    assert set(q["model"]["gen_accuracy_per_class"]) == set(classes)
    with open(os.path.join(MODELS, "README.md")) as f:
        card = f.read()
    for c in classes:
        assert c in card, c


def test_kicks_are_low_and_loud(bundled):
    """The card's headline (models/README.md, Quality): generated kicks hold most of
    their energy below 150 Hz (the issue-13 target, >= 50 %) and are louder than the
    previous bundled model's. Seed 7, sequences 0-7, as training/evaluate.py; thresholds
    below the measured values (median 0.79 and 0.46; the previous model: 0.39 and
    0.30)."""
    import torch
    import ngs_file
    from weights_converter import reference as ref
    torch.set_num_threads(1)
    w, l, cfg = ngs_file.load_reference(MODEL)
    classes = cfg["latent"]["classes"]
    sr = cfg["waveform"]["sr"]
    lows, peaks = [], []
    for k in range(8):
        a = ref.sample_one_shot(w, l, 7, classes.index("Kick"), 1.0, sequence=k)["audio"].numpy()
        p = np.abs(np.fft.rfft(a.astype(np.float64))) ** 2
        f = np.fft.rfftfreq(a.size, 1.0 / sr)
        lows.append(p[f < 150].sum() / p.sum())
        peaks.append(np.max(np.abs(a)))
    assert np.median(lows) >= 0.5, lows
    assert np.median(peaks) >= 0.4, peaks
