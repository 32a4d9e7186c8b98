#!/usr/bin/env python3
"""Measures the quality of the bundled drum model (or of a training run), reproducibly.

    python3 training/prepare_data.py            # once: the held-out test split
    python3 training/evaluate.py [--model models/drums.safetensors] [--json out.json]
    python3 training/evaluate.py --run training/runs/drums   # the run's state instead

All decoding goes through the PyTorch reference (`weights_converter.reference`) with the
ngs random stream (seeded), on the exact weights of the model file (fp16 included; see
training/ngs_file.py). Two measurements:

1. Reconstruction of the held-out test samples (encode to mu, decode; seed 0, sequence =
   sample index) by the log-spectral distance (LSD, dB; STFT 1024 / hop 256, Hann): per
   frame the RMS over bins of the dB difference, magnitudes floored at -80 dB below the
   target's largest bin, averaged over the target's frames within 60 dB of its loudest.
   Baselines: silence, and noise shaped by the class-average magnitude spectrogram of the
   training samples (random phase; it knows the class and the average envelope).
   Also: the sequence VAE's reconstruction of the test samples' mu series (MSE relative
   to the variance of mu over the test samples at each grain and dimension), and the
   classifier of 2a on the reconstructions.
2. Class identity of generated one-shots: for every class, K samples e ~ N(0, T^2 I)
   through the sequence decoder (sequences 0..K-1), then
   a. a multinomial logistic regression on log-mel statistics (mean and std over time of
      64 log-mel bands, spectral centroid, decay time), trained on the real training
      samples, classifies them: accuracy per class vs chance (1 / n_classes);
      its accuracy on the real test samples is printed as the classifier's ceiling;
   b. median spectral centroid and -20 dB decay time per class, real vs generated, and
      whether Kick < Snare < Hat in centroid holds in both.
"""
import argparse
import json
import os
import sys

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


def load_models(args):
    if args.run:
        st1 = torch.load(os.path.join(args.run, "stage1_state.pt"))
        w = ref.WaveformVAE(**st1["hparams"])
        w.load_state_dict(st1["model"])
        w.eval()
        l = None
        p2 = os.path.join(args.run, "stage2_state.pt")
        if os.path.exists(p2):
            st2 = torch.load(p2)
            l = ref.LatentVAE(**st2["hparams"])
            l.load_state_dict(st2["model"])
            l.eval()
        return w, l, "run " + args.run
    import ngs_file
    w, l, _ = ngs_file.load_reference(args.model)
    return w, l, args.model


def main():
    ap = argparse.ArgumentParser(description="quality of the drum model (see module doc)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "drums.safetensors"))
    ap.add_argument("--run", default=None, help="evaluate <run>/stage*_state.pt instead")
    ap.add_argument("--data", default=os.path.join(HERE, "data", "drums16k.npz"))
    ap.add_argument("--per_class", type=int, default=20)
    ap.add_argument("--temperatures", default="1.0,0.5")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    d = np.load(args.data)
    audio, labels, split = d["audio"], d["labels"], d["split"]
    classes = [str(c) for c in d["classes"]]
    sr = int(d["sr"])
    w, l, source = load_models(args)
    if w.hparams["sr"] != sr or w.tar_l != audio.shape[1]:
        sys.exit("model (sr %d, tar_l %d) does not match the data (sr %d, tar_l %d)"
                 % (w.hparams["sr"], w.tar_l, sr, audio.shape[1]))
    L, N = w.hparams["l_grain"], w.hparams["n_grains"]
    res = {"source": source, "classes": classes}
    print("source:", source)

    # 1. reconstruction
    te = np.flatnonzero(split == 1)
    tr = np.flatnonzero(split == 0)
    recon = np.zeros((len(te), audio.shape[1]), dtype=np.float32)
    mus = []
    for k, i in enumerate(te):
        mu = ref.encode(w, audio[i])["mu"]
        recon[k] = ref.decode(w, mu, rng.grain_noise(0, int(i), 0, N, L))["audio"].numpy()
        mus.append(mu.numpy())
    mus = np.stack(mus)
    if l is not None:
        zr = np.stack([ref.latent_decode(l, ref.latent_encode(l, m)["mu"], int(labels[i])).numpy()
                       for m, i in zip(mus, te)])
        mse = float(np.mean((zr - mus) ** 2))
        var = float(np.mean(mus.var(axis=0)))
        res["sequence_vae_test"] = {"mse": mse, "mu_variance": var, "relative": mse / var}
        print("Sequence VAE on the test mu series: MSE %.4f, variance of mu %.4f, "
              "relative %.3f" % (mse, var, mse / var))
    if not np.all(np.isfinite(recon)):
        sys.exit("reconstruction produced non-finite values")
    rs = np.random.RandomState(0)
    mags = stft_mag(audio[tr])
    cls_mean = {c: mags[labels[tr] == c].mean(0) for c in range(len(classes))}
    noise = np.stack([class_noise(cls_mean[labels[i]], audio.shape[1], rs) for i in te])
    silence = np.zeros_like(recon)
    tar = audio[te]
    r = {"model": lsd(recon, tar), "class_noise": lsd(noise, tar), "silence": lsd(silence, tar)}
    res["reconstruction_lsd_db"] = {k: float(v.mean()) for k, v in r.items()}
    res["reconstruction_lsd_db_per_class"] = {
        classes[c]: {k: float(v[labels[te] == c].mean()) for k, v in r.items()}
        for c in range(len(classes)) if np.any(labels[te] == c)}
    res["n_test"] = int(len(te))
    print("\nReconstruction LSD on %d held-out samples (dB, lower is better):" % len(te))
    print("  %-16s %8s %12s %8s" % ("class", "model", "class noise", "silence"))
    for c, v in res["reconstruction_lsd_db_per_class"].items():
        print("  %-16s %8.2f %12.2f %8.2f" % (c, v["model"], v["class_noise"], v["silence"]))
    v = res["reconstruction_lsd_db"]
    print("  %-16s %8.2f %12.2f %8.2f" % ("all", v["model"], v["class_noise"], v["silence"]))

    # 2. class identity of generated samples
    Xtr = features(audio[tr], sr)
    clf = fit_logreg(Xtr, labels[tr], len(classes))
    acc_real = float(np.mean(clf(features(audio[te], sr)) == labels[te]))
    acc_rec = float(np.mean(clf(features(recon, sr)) == labels[te]))
    res["classifier_real_test_accuracy"] = acc_real
    res["classifier_reconstructed_test_accuracy"] = acc_rec
    res["chance"] = 1.0 / len(classes)
    print("\nClassifier (logistic regression on log-mel statistics) on real test samples: "
          "%.3f, on their reconstructions: %.3f (chance %.3f)" % (acc_real, acc_rec, 1.0 / len(classes)))
    cent_r, dec_r = centroid_and_decay(audio[tr], sr)
    res["real_median"] = {classes[c]: {"centroid_hz": float(np.median(cent_r[labels[tr] == c])),
                                       "decay_s": float(np.median(dec_r[labels[tr] == c]))}
                          for c in range(len(classes))}
    res["generated"] = {}
    if l is None:
        print("no sequence model: generation not evaluated")
    else:
        for T in [float(t) for t in args.temperatures.split(",")]:
            gen, gl = [], []
            for c in range(len(classes)):
                for k in range(args.per_class):
                    out = ref.sample_one_shot(w, l, args.seed, c, T, sequence=k)
                    gen.append(out["audio"].numpy())
                    gl.append(c)
            gen, gl = np.stack(gen).astype(np.float32), np.array(gl)
            if not np.all(np.isfinite(gen)):
                sys.exit("generation produced non-finite values")
            pred = clf(features(gen, sr))
            cent_g, dec_g = centroid_and_decay(gen, sr)
            g = {"accuracy": float(np.mean(pred == gl)),
                 "per_class_accuracy": {classes[c]: float(np.mean(pred[gl == c] == c))
                                        for c in range(len(classes))},
                 "median": {classes[c]: {"centroid_hz": float(np.median(cent_g[gl == c])),
                                         "decay_s": float(np.median(dec_g[gl == c]))}
                            for c in range(len(classes))},
                 "peak_median": float(np.median(np.abs(gen).max(1)))}
            order = ["Kick", "Snare", "Hat"]
            if all(o in classes for o in order):
                gc = [g["median"][o]["centroid_hz"] for o in order]
                rc = [res["real_median"][o]["centroid_hz"] for o in order]
                g["centroid_order_kick_snare_hat"] = bool(gc[0] < gc[1] < gc[2])
                res["real_centroid_order_kick_snare_hat"] = bool(rc[0] < rc[1] < rc[2])
            res["generated"]["T=%g" % T] = g
            print("\nGenerated, temperature %g, %d per class: classifier accuracy %.3f "
                  "(chance %.3f)" % (T, args.per_class, g["accuracy"], 1.0 / len(classes)))
            print("  %-16s %6s %14s %14s %12s %12s" % ("class", "acc", "centroid gen", "centroid real",
                                                      "decay gen", "decay real"))
            for c in classes:
                print("  %-16s %6.2f %12.0f Hz %11.0f Hz %10.3f s %10.3f s" % (
                    c, g["per_class_accuracy"][c], g["median"][c]["centroid_hz"],
                    res["real_median"][c]["centroid_hz"], g["median"][c]["decay_s"],
                    res["real_median"][c]["decay_s"]))
            if "centroid_order_kick_snare_hat" in g:
                print("  centroid order Kick < Snare < Hat: generated %s, real %s" % (
                    g["centroid_order_kick_snare_hat"], res["real_centroid_order_kick_snare_hat"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
        print("\nwrote", args.json)


if __name__ == "__main__":
    main()
