#!/usr/bin/env python3
"""Measures the bundled drum model the way a musician would listen to it, reproducibly.

    python3 training/prepare_data.py            # once: the data set and its held-out split
    git show 1094474:models/drums.safetensors > /tmp/drums_v1.safetensors   # previous model
    python3 training/evaluate.py --baseline /tmp/drums_v1.safetensors \\
        --json models/quality.json --png models/spectrograms
    python3 training/evaluate.py --run training/runs/drums2   # a run's state instead
    python3 training/evaluate.py --data training/data/drums16k.npz \\
        --exclude_trained_in training/data/drums16k_mit.npz ...  # held out for both models

All decoding goes through the PyTorch reference (`weights_converter.reference`) with the
ngs random stream (seeded: one-shots are `ngs sample --seed 7`, sequences 0..K-1), on
the exact weights of the model file (fp16 included; training/ngs_file.py). Sets compared
per class: `real` (the held-out test sounds), `resynth` (the test sounds encoded to mu and
decoded by the model: stage 1 alone, like `ngs resynth`), `gen` (K = 16 one-shots per
class sampled at temperature 1, e ~ N(0, T^2 I)) and, with --baseline, `prev` (the same
for the previous model). Per sound:

* `lo150` / `hi4k`: share of the energy below 150 Hz (reported for Kick, Tom) or above
  4 kHz (the other classes), from the power spectrum of the whole sound;
* `centroid`: energy-weighted spectral centroid (Hz); `flatness`: spectral flatness
  (geometric / arithmetic mean of the power over 50 Hz-8 kHz) of the frames within 30 dB
  of the loudest, energy-weighted (0 tonal .. 1 white noise);
* envelope: RMS in 2 ms frames; `attack`: time from the first frame within 20 dB of the
  loudest to the loudest (ms); `decay30`: from the loudest frame to the last frame above
  -30 dB of it (s);
* `tail`: power of the last 100 ms relative to the loudest 10 ms (dB);
* `peak`: raw peak (dBFS), no normalisation; `start`: |sample 0| / peak; `swell`: level
  of the last hop (256 samples) minus the hop before it (dB);
* `variety` (per class): median over pairs of sounds of the RMS difference of their band
  spectra (40 mel bands, dB, each sound's mean level removed, floored 80 dB below its
  loudest band);
* `acc`: a multinomial logistic regression on log-mel statistics trained on the real
  training sounds classifies the sound (its accuracy on the real test sounds is the
  ceiling);
* reconstruction `LSD` (dB) of the held-out sounds against two baselines (silence; noise
  with the class-average magnitude spectrogram), and the sequence VAE's relative MSE on
  the test mu series.

--png writes per class a spectrogram picture (log frequency 30 Hz-8 kHz, 80 dB range):
one row each of held-out real sounds, the model's one-shots and the previous model's.
"""
import argparse
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
from weights_converter import reference as ref  # noqa: E402
from weights_converter import rng  # noqa: E402
from losses import mel_filterbank  # noqa: E402

N_FFT, HOP = 1024, 256
LOW_CLASSES = ("Kick", "Tom")


def stft_mag(x):
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if x.dim() == 1:
        x = x[None]
    win = torch.hann_window(N_FFT)
    return torch.stft(x, N_FFT, HOP, window=win, center=True, pad_mode="constant",
                      return_complex=True).abs().numpy()  # [B, F, frames]


def lsd(est, tar, floor_db=-80.0, gate_db=60.0):
    """Log-spectral distance in dB per row of est, tar [B, T]."""
    se, st = stft_mag(est), stft_mag(tar)
    out = np.zeros(len(st))
    for i in range(len(st)):
        fl = st[i].max() * 10 ** (floor_db / 20.0)
        le = 20 * np.log10(np.maximum(se[i], fl))
        lt = 20 * np.log10(np.maximum(st[i], fl))
        per_frame = np.sqrt(np.mean((le - lt) ** 2, axis=0))
        energy = 10 * np.log10(np.sum(st[i] ** 2, axis=0) + 1e-20)
        keep = energy >= energy.max() - gate_db
        out[i] = per_frame[keep].mean()
    return out


def class_noise(mean_mag, T, rs):
    """Noise with the magnitude spectrogram mean_mag [F, frames], random phase."""
    phase = np.exp(2j * np.pi * rs.random_sample(mean_mag.shape))
    spec = torch.as_tensor(mean_mag * phase, dtype=torch.complex64)
    y = torch.istft(spec[None], N_FFT, HOP, window=torch.hann_window(N_FFT), center=True,
                    length=T)
    return y[0].numpy()


def features(audio, sr):
    """[B, 130] log-mel mean/std (64 bands each), log centroid, decay time."""
    mag = stft_mag(audio)  # [B, F, frames]
    fb = mel_filterbank(N_FFT, 64, sr, f_min=30.0).numpy()  # [F, 64]
    mel = np.einsum("bft,fm->bmt", mag, fb)
    lm = np.log(mel + 1e-5)
    cent, decay = centroid_and_decay(audio, sr, mag)
    return np.concatenate([lm.mean(2), lm.std(2), np.log(cent)[:, None], decay[:, None]], 1)


def centroid_and_decay(audio, sr, mag=None):
    """Energy-weighted spectral centroid (Hz) and -20 dB decay time (s) per row."""
    mag = stft_mag(audio) if mag is None else mag
    freqs = np.linspace(0, sr / 2, mag.shape[1])
    p = mag ** 2
    e = p.sum(1)  # [B, frames]
    cent = (p * freqs[None, :, None]).sum(1) / np.maximum(e, 1e-20)
    cent = (cent * e).sum(1) / np.maximum(e.sum(1), 1e-20)
    env = 10 * np.log10(e + 1e-20)
    decay = np.zeros(len(e))
    for i in range(len(e)):
        k = int(np.argmax(env[i]))
        below = np.flatnonzero(env[i, k:] < env[i, k] - 20.0)
        decay[i] = (below[0] if below.size else env.shape[1] - k) * HOP / sr
    return np.maximum(cent, 1.0), decay


def fit_logreg(X, y, n_classes, l2=1e-2, iters=300):
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Xt = torch.as_tensor((X - mu) / sd, dtype=torch.float64)
    yt = torch.as_tensor(y)
    W = torch.zeros(X.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(Xt @ W + b, yt) + l2 * (W ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    Wn, bn = W.detach().numpy(), b.detach().numpy()
    return lambda Z: np.argmax(((Z - mu) / sd) @ Wn + bn, axis=1)


# ---------------------------------------------------------------- musician-facing metrics

def sound_metrics(audio, sr):
    """Per-sound metrics (see the module doc) of audio [B, T]: dict of arrays [B]."""
    a = np.asarray(audio, dtype=np.float64)
    B, T = a.shape
    P = np.abs(np.fft.rfft(a, axis=1)) ** 2
    f = np.fft.rfftfreq(T, 1.0 / sr)
    tot = P.sum(1) + 1e-30
    lo150 = P[:, f < 150].sum(1) / tot
    hi4k = P[:, f >= 4000].sum(1) / tot
    mag = stft_mag(a.astype(np.float32))
    p = mag.astype(np.float64) ** 2
    fr = np.linspace(0, sr / 2, p.shape[1])
    e = p.sum(1)
    cent = ((p * fr[None, :, None]).sum(1) * 1.0 / np.maximum(e, 1e-30) * e).sum(1) / np.maximum(e.sum(1), 1e-30)
    band = (fr >= 50) & (fr <= 8000)
    pb = p[:, band, :] + 1e-20
    flat_fr = np.exp(np.log(pb).mean(1)) / pb.mean(1)  # [B, frames]
    flat = np.zeros(B)
    for i in range(B):
        keep = e[i] >= e[i].max() * 1e-3
        flat[i] = np.sum(flat_fr[i, keep] * e[i, keep]) / np.sum(e[i, keep])
    fl = int(0.002 * sr)
    nfr = T // fl
    env = 10 * np.log10(np.mean(a[:, :nfr * fl].reshape(B, nfr, fl) ** 2, axis=2) + 1e-20)
    attack, decay30 = np.zeros(B), np.zeros(B)
    for i in range(B):
        k = int(np.argmax(env[i]))
        first = int(np.argmax(env[i] >= env[i, k] - 20.0))
        attack[i] = (k - first) * fl / sr * 1000.0
        above = np.flatnonzero(env[i] >= env[i, k] - 30.0)
        decay30[i] = (above[-1] - k + 1) * fl / sr
    w10 = int(0.010 * sr)
    c = np.cumsum(np.concatenate([np.zeros((B, 1)), a ** 2], 1), axis=1)
    loud = np.max(c[:, w10:] - c[:, :-w10], axis=1) / w10
    n100 = int(0.100 * sr)
    tail = 10 * np.log10((np.mean(a[:, -n100:] ** 2, axis=1) + 1e-30) / (loud + 1e-30))
    pk = np.max(np.abs(a), axis=1)
    peak = 20 * np.log10(pk + 1e-30)
    start = np.abs(a[:, 0]) / (pk + 1e-30)
    hop = 256
    swell = 10 * np.log10((np.mean(a[:, -hop:] ** 2, 1) + 1e-30) / (np.mean(a[:, -2 * hop:-hop] ** 2, 1) + 1e-30))
    return {"lo150": lo150, "hi4k": hi4k, "centroid": np.maximum(cent, 1.0), "flatness": flat,
            "attack": attack, "decay30": decay30, "tail": tail, "peak": peak, "start": start,
            "swell": swell}


def band_spectra(audio, sr, n_bands=40):
    mag = stft_mag(audio)
    fb = mel_filterbank(N_FFT, n_bands, sr, f_min=30.0).numpy()
    bp = np.einsum("bft,fm->bm", mag.astype(np.float64) ** 2, fb)
    db = 10 * np.log10(bp + 1e-30)
    db = np.maximum(db, db.max(1, keepdims=True) - 80.0)
    return db - db.mean(1, keepdims=True)


def variety(audio, sr):
    """Median pairwise RMS distance (dB) of the band spectra of a set of sounds."""
    if len(audio) < 2:
        return float("nan")
    s = band_spectra(audio, sr)
    d = [np.sqrt(np.mean((s[i] - s[j]) ** 2)) for i in range(len(s)) for j in range(i + 1, len(s))]
    return float(np.median(d))


# ---------------------------------------------------------------- PNG pictures

_CMAP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)


def _colour(v):
    """v in [0, 1] -> RGB uint8 (an inferno-like map)."""
    x = np.clip(v, 0, 1) * (len(_CMAP) - 1)
    i = np.minimum(x.astype(int), len(_CMAP) - 2)
    t = (x - i)[..., None]
    return (_CMAP[i] * (1 - t) + _CMAP[i + 1] * t).astype(np.uint8)


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def spectrogram_tile(x, sr, rows=80, xscale=2):
    """Log-frequency spectrogram of one sound, dB relative to its own maximum, 80 dB."""
    mag = stft_mag(x)[0]
    fr = np.linspace(0, sr / 2, mag.shape[0])
    edges = np.geomspace(30, sr / 2, rows + 1)
    img = np.zeros((rows, mag.shape[1]))
    for r in range(rows):
        sel = (fr >= edges[r]) & (fr < edges[r + 1])
        if not np.any(sel):
            sel = np.array([np.argmin(np.abs(fr - edges[r]))])
        img[r] = (mag[sel] ** 2).mean(0) if sel.dtype == bool else mag[sel[0]] ** 2
    db = 10 * np.log10(img + 1e-20)
    db = (db - db.max() + 80.0) / 80.0
    return np.repeat(_colour(db[::-1]), xscale, axis=1)


def class_picture(path, rows_of_sounds, sr, per_row=4):
    tiles = []
    for sounds in rows_of_sounds:
        row = [spectrogram_tile(s, sr) for s in sounds[:per_row]]
        if not row:
            continue
        gap = np.full((row[0].shape[0], 3, 3), 255, np.uint8)
        while len(row) < per_row:
            row.append(np.zeros_like(row[0]))
        r = row[0]
        for t in row[1:]:
            r = np.concatenate([r, gap, t], 1)
        tiles.append(r)
    img = tiles[0]
    for t in tiles[1:]:
        img = np.concatenate([img, np.full((4, img.shape[1], 3), 255, np.uint8), t], 0)
    write_png(path, img)


# ---------------------------------------------------------------- models

def load_models(run=None, model=None):
    if run:
        st1 = torch.load(os.path.join(run, "stage1_state.pt"))
        w = ref.WaveformVAE(**st1["hparams"])
        w.load_state_dict(st1["model"])
        w.eval()
        cal = os.path.join(run, "calibration.json")
        if os.path.exists(cal):  # train.py calibrate: the gain export applies
            with open(cal) as f:
                g = 10 ** (float(json.load(f)["output_gain_db"]) / 20.0)
            with torch.no_grad():
                w.post_pro[0].weight.mul_(g)
                w.post_pro[0].bias.mul_(g)
        l = None
        p2 = os.path.join(run, "stage2_state.pt")
        if os.path.exists(p2):
            st2 = torch.load(p2)
            l = ref.LatentVAE(**st2["hparams"])
            l.load_state_dict(st2["model"])
            l.eval()
        return w, l, "run " + run
    import ngs_file
    w, l, _ = ngs_file.load_reference(model)
    return w, l, model


def generate(w, l, model_classes, classes, per_class, seed, T):
    """{class name: [K, tar_l]} one-shots of the classes the model has (by name)."""
    out = {}
    for c in classes:
        if c not in model_classes:
            continue
        ci = model_classes.index(c)
        out[c] = np.stack([ref.sample_one_shot(w, l, seed, ci, T, sequence=k)["audio"].numpy()
                           for k in range(per_class)]).astype(np.float32)
    return out


def summarise(audio, sr):
    m = sound_metrics(audio, sr)
    r = {k: float(np.median(v)) for k, v in m.items()}
    r["variety"] = variety(audio, sr)
    r["n"] = int(len(audio))
    return r


TARGETS = [
    ("Kick lo150 >= 50 %", lambda g: g["per_class"]["Kick"]["gen"]["lo150"] >= 0.5),
    ("Snare centroid <= 1.5 kHz", lambda g: g["per_class"]["Snare"]["gen"]["centroid"] <= 1500),
    ("accuracy >= 60 % overall", lambda g: g["gen_accuracy"] >= 0.6),
    ("accuracy >= 25 % every class", lambda g: min(g["gen_accuracy_per_class"].values()) >= 0.25),
    ("variety >= 4 dB median", lambda g: g["gen_variety_median"] >= 4.0),
    ("tail <= -60 dB (Kick, Snare, Tom, Clap, Rim)",
     lambda g: max(g["per_class"][c]["gen"]["tail"] for c in ("Kick", "Snare", "Tom", "Clap", "Rim")
                   if "gen" in g["per_class"].get(c, {})) <= -60.0),
    ("median raw peak >= -6 dBFS", lambda g: g["gen_peak_median_dbfs"] >= -6.0),
    ("held-out LSD < 9.71 dB", lambda g: g["reconstruction_lsd_db"]["model"] < 9.71),
]


def evaluate_model(w, l, d, args, clf, label):
    audio, labels, split = d["audio"], d["labels"], d["split"]
    classes = [str(c) for c in d["classes"]]
    sr = int(d["sr"])
    L, N = w.hparams["l_grain"], w.hparams["n_grains"]
    te = np.flatnonzero(split == 1)
    tr = np.flatnonzero(split == 0)
    res = {}
    recon = np.zeros((len(te), audio.shape[1]), dtype=np.float32)
    mus = []
    for k, i in enumerate(te):
        mu = ref.encode(w, audio[i])["mu"]
        recon[k] = ref.decode(w, mu, rng.grain_noise(0, int(i), 0, N, L))["audio"].numpy()
        mus.append(mu.numpy())
    mus = np.stack(mus)
    model_classes = list(l.hparams["classes"]) if l is not None else []
    if l is not None and model_classes == classes:
        zr = np.stack([ref.latent_decode(l, ref.latent_encode(l, m)["mu"], int(labels[i])).numpy()
                       for m, i in zip(mus, te)])
        mse = float(np.mean((zr - mus) ** 2))
        var = float(np.mean(mus.var(axis=0)))
        res["sequence_vae_test"] = {"mse": mse, "mu_variance": var, "relative": mse / var}
    if not np.all(np.isfinite(recon)):
        sys.exit("reconstruction produced non-finite values")
    rs = np.random.RandomState(0)
    mags = stft_mag(audio[tr])
    cls_mean = {c: mags[labels[tr] == c].mean(0) for c in range(len(classes))}
    noise = np.stack([class_noise(cls_mean[labels[i]], audio.shape[1], rs) for i in te])
    r = {"model": lsd(recon, audio[te]), "class_noise": lsd(noise, audio[te]),
         "silence": lsd(np.zeros_like(recon), audio[te])}
    res["reconstruction_lsd_db"] = {k: float(v.mean()) for k, v in r.items()}
    res["reconstruction_lsd_db_per_class"] = {
        classes[c]: {k: float(v[labels[te] == c].mean()) for k, v in r.items()}
        for c in range(len(classes)) if np.any(labels[te] == c)}
    if "sources" in d:
        fam = np.array(["hydrogen-drumkits" if str(x).startswith("hydrogen") else "soundfonts"
                        for x in d["sources"][te]])
        res["reconstruction_lsd_db_per_source"] = {
            f_: {k: float(v[fam == f_].mean()) for k, v in r.items()} | {"n": int(np.sum(fam == f_))}
            for f_ in sorted(set(fam))}
    res["resynth_classifier_accuracy"] = float(np.mean(clf(features(recon, sr)) == labels[te]))
    gen = generate(w, l, model_classes, classes, args.per_class, args.seed, 1.0) if l is not None else {}
    for c, g in gen.items():
        if not np.all(np.isfinite(g)):
            sys.exit("generation produced non-finite values")
    per = {}
    accs, peaks = {}, []
    for ci, c in enumerate(classes):
        sel = labels[te] == ci
        per[c] = {"resynth": summarise(recon[sel], sr) if np.any(sel) else None}
        if c in gen:
            per[c]["gen"] = summarise(gen[c], sr)
            pred = clf(features(gen[c], sr))
            accs[c] = float(np.mean(pred == ci))
            per[c]["gen"]["acc"] = accs[c]
            peaks.append(np.max(np.abs(gen[c]), axis=1))
    res["per_class"] = per
    if gen:
        res["gen_accuracy_per_class"] = accs
        res["gen_accuracy"] = float(np.mean(list(accs.values())))
        res["gen_peak_median_dbfs"] = float(20 * np.log10(np.median(np.concatenate(peaks))))
        res["gen_variety_median"] = float(np.median([per[c]["gen"]["variety"] for c in gen]))
    res["source"] = label
    return res, recon, gen


def fmt_table(res, base, real, classes):
    """Markdown table per class: real held-out | resynth | gen | prev gen."""
    keys = [("energy lo150/hi4k %", None), ("centroid Hz", "centroid"), ("flatness", "flatness"),
            ("attack ms", "attack"), ("decay -30 dB s", "decay30"), ("tail dB", "tail"),
            ("raw peak dBFS", "peak"), ("variety dB", "variety"), ("classifier acc", "acc")]
    lines = []
    for c in classes:
        cols = [("real", real[c]), ("resynth", res["per_class"][c]["resynth"]),
                ("gen", res["per_class"][c].get("gen"))]
        if base is not None:
            cols.append(("prev gen", base["per_class"].get(c, {}).get("gen")))
        lines.append("\n**%s**\n" % c)
        lines.append("| | " + " | ".join(n for n, _ in cols) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for name, k in keys:
            vals = []
            for _, v in cols:
                if v is None:
                    vals.append("-")
                    continue
                if k is None:
                    kk = "lo150" if c in LOW_CLASSES else "hi4k"
                    vals.append("%.0f" % (100 * v[kk]))
                elif k not in v or v[k] != v[k]:
                    vals.append("-")
                elif k == "centroid":
                    vals.append("%.0f" % v[k])
                elif k in ("flatness", "decay30", "acc"):
                    vals.append("%.2f" % v[k])
                else:
                    vals.append("%.1f" % v[k])
            nm = ("energy below 150 Hz %" if c in LOW_CLASSES else "energy above 4 kHz %") if k is None else name
            lines.append("| %s | %s |" % (nm, " | ".join(vals)))
    return "\n".join(lines)


def exclude_trained_in(d, other):
    """(split, count): d's split with every held-out sound whose path is in the training
    split of the data set `other` marked 2 (neither training nor held out)."""
    seen = {str(p) for p, s in zip(other["paths"], other["split"]) if s == 0}
    drop = np.array([s == 1 and str(p) in seen for p, s in zip(d["paths"], d["split"])], bool)
    return np.where(drop, 2, d["split"]), int(drop.sum())


def _nan_to_null(o):
    if isinstance(o, dict):
        return {k: _nan_to_null(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_null(v) for v in o]
    if isinstance(o, float) and o != o:
        return None
    return o


def main():
    ap = argparse.ArgumentParser(description="quality of the drum model (see module doc)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "drums.safetensors"))
    ap.add_argument("--run", default=None, help="evaluate <run>/stage*_state.pt instead")
    ap.add_argument("--baseline", default=None, help="previous model file to compare with")
    ap.add_argument("--data", default=os.path.join(HERE, "data", "drums16k.npz"))
    ap.add_argument("--per_class", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--md", default=None, help="write the per-class markdown tables here")
    ap.add_argument("--png", default=None, help="folder for the spectrogram pictures")
    ap.add_argument("--exclude_trained_in", default=None, metavar="NPZ",
                    help="leave out of the held-out set every sound (by path) in the training "
                         "split of this other data set (the one the baseline was trained on), so "
                         "that the held-out sounds are unseen by both models")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    d = dict(np.load(args.data))
    n_excluded = 0
    if args.exclude_trained_in:
        d["split"], n_excluded = exclude_trained_in(d, np.load(args.exclude_trained_in))
        if not np.any(d["split"] == 1):
            sys.exit("no held-out sound is left after --exclude_trained_in")
    audio, labels, split = d["audio"], d["labels"], d["split"]
    classes = [str(c) for c in d["classes"]]
    sr = int(d["sr"])
    te = np.flatnonzero(split == 1)
    tr = np.flatnonzero(split == 0)
    Xtr = features(audio[tr], sr)
    clf = fit_logreg(Xtr, labels[tr], len(classes))
    acc_real = float(np.mean(clf(features(audio[te], sr)) == labels[te]))
    real = {}
    for ci, c in enumerate(classes):
        sel = te[labels[te] == ci]
        if sel.size == 0:  # no held-out sound of the class (e.g. after --exclude_trained_in)
            real[c] = None
            continue
        real[c] = summarise(audio[sel], sr)
        real[c]["variety_all_real"] = variety(audio[labels == ci], sr)
        real[c]["acc"] = float(np.mean(clf(features(audio[sel], sr)) == ci))

    w, l, source = load_models(args.run, args.model)
    if w.hparams["sr"] != sr or w.tar_l != audio.shape[1]:
        sys.exit("model (sr %d, tar_l %d) does not match the data (sr %d, tar_l %d)"
                 % (w.hparams["sr"], w.tar_l, sr, audio.shape[1]))
    res, recon, gen = evaluate_model(w, l, d, args, clf, source)
    base = base_gen = None
    if args.baseline:
        wb, lb, sb = load_models(None, args.baseline)
        base, _, base_gen = evaluate_model(wb, lb, d, args, clf, sb)
    out = {"source": source, "classes": classes, "n_test": int(len(te)),
           "data": os.path.basename(args.data), "baseline_file": args.baseline and os.path.basename(args.baseline),
           "excluded_trained_in": args.exclude_trained_in and os.path.basename(args.exclude_trained_in),
           "n_test_excluded": n_excluded,
           "classifier_real_test_accuracy": acc_real, "chance": 1.0 / len(classes),
           "real_test": real, "model": res, "baseline": base}
    out["targets"] = {}
    for name, f in TARGETS:
        try:
            out["targets"][name] = {"model": bool(f(res)), "baseline": bool(f(base)) if base else None}
        except (KeyError, TypeError, ValueError):
            out["targets"][name] = {"model": None, "baseline": None}

    print("source:", source, "| baseline:", args.baseline)
    print("held-out sounds: %d of %s%s" % (len(te), args.data, " (%d left out: in the training split of %s)"
                                           % (n_excluded, args.exclude_trained_in) if args.exclude_trained_in else ""))
    print("classifier on real test sounds: %.3f (chance %.3f)" % (acc_real, 1.0 / len(classes)))
    for tag, r in (("model", res), ("baseline", base)):
        if r is None:
            continue
        v = r["reconstruction_lsd_db"]
        print("\n[%s] held-out reconstruction LSD %.2f dB (class noise %.2f, silence %.2f); "
              "classifier on resynth %.3f" % (tag, v["model"], v["class_noise"], v["silence"],
                                              r["resynth_classifier_accuracy"]))
        for f_, v in r.get("reconstruction_lsd_db_per_source", {}).items():
            print("  held-out LSD on the %d %s sounds: %.2f dB" % (v["n"], f_, v["model"]))
        if "sequence_vae_test" in r:
            print("  sequence VAE relative MSE on test mu: %.3f" % r["sequence_vae_test"]["relative"])
        if "gen_accuracy" in r:
            print("  generated: accuracy %.3f, per class %s; median raw peak %.1f dBFS; "
                  "median variety %.2f dB" % (r["gen_accuracy"], json.dumps(
                      {k: round(x, 2) for k, x in r["gen_accuracy_per_class"].items()}),
                      r["gen_peak_median_dbfs"], r["gen_variety_median"]))
        print("  %-16s %8s" % ("class", "LSD") + "".join("%10s" % k for k in (
            "lo/hi%", "cent", "flat", "att ms", "dec30 s", "tail", "peak", "start", "swell", "var", "acc")))
        for c in classes:
            g = r["per_class"][c].get("gen")
            lsd_c = r["reconstruction_lsd_db_per_class"].get(c, {}).get("model", float("nan"))
            for name, v in (("real", real[c]), ("resynth", r["per_class"][c]["resynth"]), ("gen", g)):
                if v is None:
                    continue
                kk = "lo150" if c in LOW_CLASSES else "hi4k"
                print("  %-16s %8s" % (c + " " + name if name == "real" else "  " + name,
                                       "%.2f" % lsd_c if name == "resynth" else "")
                      + "%10.1f%10.0f%10.3f%10.1f%10.3f%10.1f%10.1f%10.3f%10.1f%10.2f%10s" % (
                          100 * v[kk], v["centroid"], v["flatness"], v["attack"], v["decay30"],
                          v["tail"], v["peak"], v["start"], v["swell"],
                          v["variety"] if v["variety"] == v["variety"] else float("nan"),
                          "%.2f" % v["acc"] if "acc" in v else ""))
    print("\ntargets:")
    for name, v in out["targets"].items():
        print("  %-48s model %-5s baseline %s" % (name, v["model"], v["baseline"]))
    if args.md:
        with open(args.md, "w") as f:
            f.write(fmt_table(res, base, real, classes) + "\n")
    if args.png:
        os.makedirs(args.png, exist_ok=True)
        for ci, c in enumerate(classes):
            rows = [audio[te[labels[te] == ci]]]
            if c in gen:
                rows.append(gen[c])
            if base_gen and c in base_gen:
                rows.append(base_gen[c])
            class_picture(os.path.join(args.png, "%s.png" % c.lower()), rows, sr)
    if args.json:
        with open(args.json, "w") as f:  # strict JSON: an undefined value (NaN) is null
            json.dump(_nan_to_null(out), f, indent=1, allow_nan=False)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
