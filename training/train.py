#!/usr/bin/env python3
"""Trains the bundled drum model on the CPU: stage 1 grain VAE, stage 2 sequence VAE.

The models are `weights_converter.reference.WaveformVAE` / `LatentVAE` (the authors'
module structure and state_dict keys), trained here with batched, differentiable
forward passes written from docs/MODEL_SPEC.md §4 (the reference's own functions are inference
only: no batch axis, no grad, noise as an input).

    python3 training/prepare_data.py                    # training/data/drums16k.npz
    python3 training/train.py stage1 --minutes 50       # resumable: rerun to continue
    python3 training/train.py stage2 --minutes 12
    python3 training/train.py calibrate                 # output gain fitted on the training split
    python3 training/train.py export                    # authors'-format .ckpt + hparams yaml
    python3 training/train.py table                     # held-out distance over the steps

State is saved to <run>/stage{1,2}_state.pt every --save_minutes (model, optimiser, step,
RNG states, loss history) and at the end; rerunning a stage resumes it up to --max_steps
(or until --minutes of wall clock in this invocation). Threads: 1 by default
(--threads), as the project machine is shared.

Stage 1 loss: the multi-scale spectral distance of training/losses.py (linear STFT 2048,
1024, 512, 256, 128 and mel 2048, 1024; L1 of magnitudes plus --log_weight (0.3) times
L1 of log magnitudes floored --log_floor_db (-90 dB) below the target's largest
magnitude, so digital silence in the target costs nothing once the output is below the
floor; 'none' restores the first model's eps 1e-7) between input and output audio, plus
beta * KL with beta warmed up from 0 at 10 % to tar_beta at 60 % of max_steps. Encoder
latents are sampled (reparametrised), decoder noise is torch.rand. Adam, learning rate
decaying exponentially from --lr to --lr * 0.1. Batches sample every class equally
often (--class_power 1). Augmentation: random polarity, random delay of 0..127 samples.
New runs start with a post-processing FIR gain of --pp_gain_db and a quiet decoder
(--out_bias), see init_gain: without it the FIR settles at -10 dB and kicks cannot be
loud or bassy. `calibrate` fits one output gain on the training split (see calibrate();
export applies it to post_pro.0). `table` prints the held-out distances logged every --eval_every steps.

Stage 2: the stage-1 encoder (eval mode) gives mu and logvar series [41, z_dim] of every
training sample; the sequence VAE is trained on z = mu + eps * std (input) to
reconstruct mu (MSE), class-conditioned (one-hot), plus beta * KL of the embedding,
beta warmed up to tar_beta2. Batches sample classes as in stage 1 (--class_power).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from weights_converter.reference import WaveformVAE, LatentVAE, mod_sigmoid  # noqa: E402
import losses  # noqa: E402

W_HPARAMS = dict(z_dim=64, h_dim=256, kernel_size=9, channels=32, n_convs=3, stride=4,
                 n_linears=3, n_grains=41, hop_size=256, normalize_ola=True, pp_chans=5,
                 pp_ker=65, l_grain=1024, sr=16000, learning_rate=1e-3)
L_HPARAMS = dict(e_dim=64, z_dim=64, h_dim=256, n_linears=2, rnn_type="GRU", n_RNN=1,
                 n_grains=41, conditional=True, learning_rate=1e-3)


def log(run, msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    with open(os.path.join(run, "train.log"), "a") as f:
        f.write(line + "\n")


def load_data(path):
    d = np.load(path)
    return {k: d[k] for k in d.files}


# ---------------------------------------------------------------- batched forward passes

def w_encode(w, x):
    """x [B, tar_l] -> mu, logvar [B * n_grains, z_dim] (module train/eval mode as set)."""
    L, hop = w.hparams["l_grain"], w.hparams["hop_size"]
    g = x.unfold(1, L, hop) * w.ola_windows
    B, n = g.shape[0], g.shape[1]
    h = g.reshape(B * n, 1, L)
    for conv in w.encoder_convs:
        h = conv(h)
    h = w.encoder_linears(h.reshape(B * n, w.flatten_size))
    return w.mu(h), w.logvar(h)


def w_decode(w, z, B):
    """z [B * n_grains, z_dim] -> audio [B, tar_l], with torch.rand grain noise."""
    L, hop = w.hparams["l_grain"], w.hparams["hop_size"]
    n = w.hparams["n_grains"]
    H = mod_sigmoid(w.decoder_linears(z))
    ir = torch.fft.fftshift(torch.fft.irfft(H, n=L) * w.filter_window, dim=-1)
    noise = torch.rand(z.shape[0], L) * 2 - 1
    y = torch.fft.irfft(torch.fft.rfft(noise) * torch.fft.rfft(ir), n=L)
    y = y.reshape(B, n, L) * w.ola_windows
    a = F.fold(y.transpose(1, 2), (w.tar_l, 1), (L, 1), stride=(hop, 1)).reshape(B, -1)
    if w.hparams["normalize_ola"]:
        a = a / w.ola_divisor
    return w.post_pro(a.unsqueeze(1).repeat(1, w.hparams["pp_chans"], 1)).squeeze(1)


def l_encode(l, z):
    h = l.encoder_z(z)
    _, h_n = l.encoder_rnn(h)
    if l.hparams["rnn_type"] == "LSTM":
        h_n = h_n[0]
    h = l.encoder_e(h_n[-1])
    return l.mu(h), l.logvar(h)


def l_decode(l, e, conds):
    n = l.hparams["n_grains"]
    if l.n_conds > 0:
        oh = F.one_hot(conds, l.n_conds).to(e.dtype)
        e = torch.cat([e, oh], 1)
    h = l.decoder_e(e).unsqueeze(1).repeat(1, n, 1)
    h, _ = l.decoder_rnn(h)
    if l.n_conds > 0:
        h = torch.cat([h, oh.unsqueeze(1).repeat(1, n, 1)], 2)
    return l.decoder_z(h)


# ---------------------------------------------------------------- state save / load

def save_state(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def rng_state():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def set_rng_state(s):
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])


def trainable(m):
    return [p for p in m.parameters() if p.requires_grad]


def batchnorms(m):
    return [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm1d)]


def set_bn_frozen(m, frozen):
    """Frozen BatchNorm: normalise with the running statistics (eval mode) while the
    affine weight and bias keep training, so training and inference compute the same."""
    for b in batchnorms(m):
        b.train(not frozen)


# ---------------------------------------------------------------- stage 1

def augment(x):
    B, T = x.shape
    sign = torch.from_numpy(np.random.choice([-1.0, 1.0], size=(B, 1)).astype(np.float32))
    x = x * sign
    out = torch.zeros_like(x)
    for i in range(B):
        d = int(np.random.randint(0, 128))
        out[i, d:] = x[i, :T - d]
    return out


@torch.no_grad()
def recalibrate_bn_stage1(w, audio, bs=8):
    """Precise BatchNorm statistics: the cumulative average over one pass of the training
    set (sampled z into the decoder, as in training), replacing the running averages of
    small, noisy batches."""
    w.train()
    for b in batchnorms(w):
        b.reset_running_stats()
        b.momentum = None
    for i in range(0, len(audio), bs):
        x = torch.from_numpy(audio[i:i + bs])
        mu, logvar = w_encode(w, x)
        w_decode(w, mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), x.shape[0])
    for b in batchnorms(w):
        b.momentum = 0.1


@torch.no_grad()
def init_gain(w, pp_gain_db, out_bias):
    """Level-aware initialisation (same architecture and keys). The decoder's magnitudes
    are capped (mod_sigmoid <= 2 per bin), so a narrowband sound (a kick's body: a few
    bins) can only be loud if the post-processing FIR has gain; from PyTorch's default
    init the first model's FIR settled at -10 dB (loud broadband noise early in training
    taught it to attenuate) and kick bins saturated at H = 1.9. Here the FIR starts as a
    delay-free gain of pp_gain_db (centre taps, the default random taps scaled by 0.1) and
    the last decoder layer's bias at out_bias (H = 2 sigmoid(out_bias)^ln10: quiet
    start)."""
    conv = w.post_pro[0]
    k = conv.weight.shape[-1] // 2
    conv.weight.mul_(0.1)
    conv.weight[:, :, k] += 10 ** (pp_gain_db / 20.0) / conv.weight.shape[1]
    conv.bias.zero_()
    w.decoder_linears[-1].bias.fill_(out_bias)


def class_weights(labels, power):
    """Sampling probability per item: class weight count^-power (1: every class equally
    often, 0: every item equally often), normalised."""
    counts = np.bincount(labels).astype(np.float64)
    p = (np.maximum(counts, 1) ** -float(power))[labels]
    return p / p.sum()


@torch.no_grad()
def eval_stage1(w, sd, audio, bs=16, bn_frozen=False, with_lsd=False):
    """Held-out spectral distance (the training loss, z = mu, eval mode) and, with
    with_lsd, the log-spectral distance in dB of training/evaluate.py (the card's)."""
    w.eval()
    tot, n, lsds = 0.0, 0, []
    g = torch.get_rng_state()
    torch.manual_seed(0)
    for i in range(0, len(audio), bs):
        x = torch.from_numpy(audio[i:i + bs])
        mu, _ = w_encode(w, x)
        y = w_decode(w, mu, x.shape[0])
        tot += sd(y, x).item() * x.shape[0]
        n += x.shape[0]
        if with_lsd:
            import evaluate
            lsds.append(evaluate.lsd(y.numpy(), x.numpy()))
    torch.set_rng_state(g)
    w.train()
    set_bn_frozen(w, bn_frozen)
    if with_lsd:
        return tot / n, float(np.concatenate(lsds).mean())
    return tot / n


def stage1(args):
    data = load_data(args.data)
    tr = data["audio"][data["split"] == 0]
    te = data["audio"][data["split"] == 1]
    path = os.path.join(args.run, "stage1_state.pt")
    hp = dict(W_HPARAMS)
    if os.path.exists(path):
        st = torch.load(path)
        hp = st["hparams"]
    w = WaveformVAE(**hp)
    w.train()
    opt = torch.optim.Adam(trainable(w), lr=args.lr)
    cfg = st.get("config", {}) if os.path.exists(path) else {}
    # loss and sampling settings: a resumed run keeps its own (older runs: the first model's)
    log_weight = cfg.get("log_weight", 1.0 if cfg else args.log_weight)
    log_floor_db = cfg.get("log_floor_db", None) if cfg else (
        None if args.log_floor_db.lower() == "none" else float(args.log_floor_db))
    class_power = cfg.get("class_power", 0.0 if cfg else args.class_power)
    sd = losses.SpectralDistance(hp["sr"], log_weight=log_weight, log_floor_db=log_floor_db)
    y_tr = data["labels"][data["split"] == 0]
    p_tr = class_weights(y_tr, class_power)
    step, hist, elapsed, bn_frozen = 0, [], 0.0, False
    if os.path.exists(path):
        w.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, hist, elapsed = st["step"], st["history"], st.get("elapsed_s", 0.0)
        bn_frozen = st.get("bn_frozen", False)
        max_steps = st["max_steps"]
        set_rng_state(st["rng"])
        set_bn_frozen(w, bn_frozen)
        log(args.run, "stage1: resumed at step %d (BatchNorm %s)"
            % (step, "frozen" if bn_frozen else "training"))
    else:
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)
        max_steps = args.max_steps
        init_gain(w, args.pp_gain_db, args.out_bias)
        log(args.run, "stage1: new run, hparams %s, %d train / %d test samples, max_steps %d, "
            "loss: log_weight %s, log_floor_db %s; class_power %s"
            % (json.dumps(hp), len(tr), len(te), max_steps, log_weight, log_floor_db, class_power))
    beta = losses.BetaWarmup(args.tar_beta, max_steps)
    lr_of = lambda s: args.lr * (0.1 ** (s / max_steps))  # noqa: E731

    def snapshot():
        save_state(path, {"hparams": hp, "model": w.state_dict(), "optimizer": opt.state_dict(),
                          "step": step, "max_steps": max_steps, "history": hist,
                          "rng": rng_state(), "elapsed_s": elapsed, "bn_frozen": bn_frozen,
                          "config": {"lr": args.lr, "tar_beta": args.tar_beta,
                                     "batch": args.batch, "seed": args.seed,
                                     "freeze_bn_at": args.freeze_bn_at,
                                     "log_weight": log_weight, "log_floor_db": log_floor_db,
                                     "pp_gain_db": args.pp_gain_db, "out_bias": args.out_bias,
                                     "class_power": class_power}})

    freeze_at = int(args.freeze_bn_at * max_steps)
    t_start = time.time()
    t_save = t_start
    acc = {"spec": 0.0, "kld": 0.0, "n": 0}
    while step < max_steps:
        if time.time() - t_start > args.minutes * 60:
            log(args.run, "stage1: time budget of this invocation used up at step %d" % step)
            break
        t0 = time.time()
        if not bn_frozen and step >= freeze_at:
            recalibrate_bn_stage1(w, tr)
            set_bn_frozen(w, True)
            bn_frozen = True
            log(args.run, "stage1: BatchNorm statistics recalibrated on the training set and "
                "frozen at step %d (test spec %.4f)" % (step, eval_stage1(w, sd, te, bn_frozen=True)))
        idx = np.random.choice(len(tr), size=args.batch, p=p_tr)
        x = augment(torch.from_numpy(tr[idx]))
        for g in opt.param_groups:
            g["lr"] = lr_of(step)
        b = beta(step)
        mu, logvar = w_encode(w, x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        y = w_decode(w, z, x.shape[0])
        spec = sd(y, x)
        kl = losses.kld(mu, logvar)
        loss = spec + b * kl
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable(w), 10.0)
        opt.step()
        step += 1
        elapsed += time.time() - t0
        acc["spec"] += spec.item()
        acc["kld"] += kl.item()
        acc["n"] += 1
        if step % args.log_every == 0 or step == max_steps:
            rec = {"step": step, "spec": acc["spec"] / acc["n"], "kld": acc["kld"] / acc["n"],
                   "beta": b, "lr": lr_of(step), "elapsed_s": round(elapsed, 1)}
            if step % args.eval_every == 0 or step == max_steps:
                rec["test_spec"], rec["test_lsd_db"] = eval_stage1(w, sd, te, bn_frozen=bn_frozen,
                                                                   with_lsd=True)
            hist.append(rec)
            log(args.run, "stage1 " + json.dumps(rec))
            acc = {"spec": 0.0, "kld": 0.0, "n": 0}
        if time.time() - t_save > args.save_minutes * 60:
            snapshot()
            t_save = time.time()
    snapshot()
    log(args.run, "stage1: saved at step %d (%.1f min of training)" % (step, elapsed / 60))


# ---------------------------------------------------------------- stage 2

@torch.no_grad()
def encode_all(w, audio, bs=16):
    w.eval()
    mus, lvs = [], []
    n = w.hparams["n_grains"]
    for i in range(0, len(audio), bs):
        x = torch.from_numpy(audio[i:i + bs])
        mu, lv = w_encode(w, x)
        mus.append(mu.reshape(x.shape[0], n, -1))
        lvs.append(lv.reshape(x.shape[0], n, -1))
    return torch.cat(mus), torch.cat(lvs)


def stage2(args):
    data = load_data(args.data)
    classes = [str(c) for c in data["classes"]]
    st1 = torch.load(os.path.join(args.run, "stage1_state.pt"))
    w = WaveformVAE(**st1["hparams"])
    w.load_state_dict(st1["model"])
    w.eval()
    tr_mask, te_mask = data["split"] == 0, data["split"] == 1
    mu_tr, lv_tr = encode_all(w, data["audio"][tr_mask])
    mu_te, _ = encode_all(w, data["audio"][te_mask])
    y_tr = torch.from_numpy(data["labels"][tr_mask])
    y_te = torch.from_numpy(data["labels"][te_mask])

    path = os.path.join(args.run, "stage2_state.pt")
    hp = dict(L_HPARAMS, classes=classes, z_dim=st1["hparams"]["z_dim"],
              n_grains=st1["hparams"]["n_grains"])
    if os.path.exists(path):
        st = torch.load(path)
        hp = st["hparams"]
    l = LatentVAE(**hp)
    l.train()
    opt = torch.optim.Adam(trainable(l), lr=args.lr2)
    step, hist, elapsed, bn_frozen = 0, [], 0.0, False
    if os.path.exists(path):
        l.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, hist, elapsed = st["step"], st["history"], st.get("elapsed_s", 0.0)
        bn_frozen = st.get("bn_frozen", False)
        max_steps = st["max_steps"]
        set_rng_state(st["rng"])
        set_bn_frozen(l, bn_frozen)
        log(args.run, "stage2: resumed at step %d" % step)
    else:
        torch.manual_seed(args.seed + 1)
        np.random.seed(args.seed + 1)
        max_steps = args.max_steps2
        log(args.run, "stage2: new run, hparams %s, max_steps %d" % (json.dumps(hp), max_steps))
    beta = losses.BetaWarmup(args.tar_beta2, max_steps)
    lr_of = lambda s: args.lr2 * (0.1 ** (s / max_steps))  # noqa: E731
    class_power = st["config"].get("class_power", 0.5) if os.path.exists(path) else args.class_power
    p = class_weights(y_tr.numpy(), class_power)

    def snapshot():
        save_state(path, {"hparams": hp, "model": l.state_dict(), "optimizer": opt.state_dict(),
                          "step": step, "max_steps": max_steps, "history": hist,
                          "rng": rng_state(), "elapsed_s": elapsed, "bn_frozen": bn_frozen,
                          "config": {"lr": args.lr2, "tar_beta": args.tar_beta2,
                                     "batch": args.batch2, "seed": args.seed,
                                     "freeze_bn_at": args.freeze_bn_at,
                                     "class_power": class_power}})

    @torch.no_grad()
    def evaluate():
        l.eval()
        mu_e, _ = l_encode(l, mu_te)
        r = F.mse_loss(l_decode(l, mu_e, y_te), mu_te).item()
        l.train()
        set_bn_frozen(l, bn_frozen)
        return r

    @torch.no_grad()
    def recalibrate(bs=32):
        l.train()
        for b in batchnorms(l):
            b.reset_running_stats()
            b.momentum = None
        for i in range(0, len(y_tr), bs):
            mu, logvar = l_encode(l, mu_tr[i:i + bs])
            l_decode(l, mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), y_tr[i:i + bs])
        for b in batchnorms(l):
            b.momentum = 0.1

    t_start, t_save = time.time(), time.time()
    acc = {"rec": 0.0, "kld": 0.0, "n": 0}
    while step < max_steps:
        if time.time() - t_start > args.minutes * 60:
            log(args.run, "stage2: time budget of this invocation used up at step %d" % step)
            break
        t0 = time.time()
        if not bn_frozen and step >= int(args.freeze_bn_at * max_steps):
            recalibrate()
            bn_frozen = True
            set_bn_frozen(l, True)
            log(args.run, "stage2: BatchNorm statistics recalibrated and frozen at step %d "
                "(test rec %.5f)" % (step, evaluate()))
        idx = torch.from_numpy(np.random.choice(len(y_tr), size=args.batch2, p=p))
        target = mu_tr[idx]
        z_in = target + torch.randn_like(target) * torch.exp(0.5 * lv_tr[idx])
        for g in opt.param_groups:
            g["lr"] = lr_of(step)
        b = beta(step)
        mu, logvar = l_encode(l, z_in)
        e = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        rec = F.mse_loss(l_decode(l, e, y_tr[idx]), target)
        kl = losses.kld(mu, logvar)
        loss = rec + b * kl
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable(l), 10.0)
        opt.step()
        step += 1
        elapsed += time.time() - t0
        acc["rec"] += rec.item()
        acc["kld"] += kl.item()
        acc["n"] += 1
        if step % (args.log_every * 4) == 0 or step == max_steps:
            r = {"step": step, "rec": acc["rec"] / acc["n"], "kld": acc["kld"] / acc["n"],
                 "beta": b, "lr": lr_of(step), "elapsed_s": round(elapsed, 1),
                 "test_rec": evaluate()}
            hist.append(r)
            log(args.run, "stage2 " + json.dumps(r))
            acc = {"rec": 0.0, "kld": 0.0, "n": 0}
        if time.time() - t_save > args.save_minutes * 60:
            snapshot()
            t_save = time.time()
    snapshot()
    log(args.run, "stage2: saved at step %d (%.1f min of training)" % (step, elapsed / 60))


# ---------------------------------------------------------------- export

# ---------------------------------------------------------------- output level

CALIBRATION = "calibration.json"


@torch.no_grad()
def output_gain_db(run):
    """The run's calibrated output gain (dB, 0 if not calibrated)."""
    path = os.path.join(run, CALIBRATION)
    if not os.path.exists(path):
        return 0.0
    with open(path) as f:
        return float(json.load(f)["output_gain_db"])


@torch.no_grad()
def apply_output_gain(w, gain_db):
    """Scales post_pro.0 (the post-processing FIR, weight and bias) by the gain: the signal
    before the final Softsign is multiplied by it exactly."""
    g = 10 ** (gain_db / 20.0)
    w.post_pro[0].weight.mul_(g)
    w.post_pro[0].bias.mul_(g)


@torch.no_grad()
def calibrate(args):
    """Fits ONE output gain on the TRAINING split: the stage-1 model resynthesises every
    training sound (z = mu, eval mode, seeded noise) and the gain before the final Softsign
    is chosen so that the median of the per-sound energy ratio resynthesis / original is
    0 dB. The trained model comes out quieter than its targets (the Softsign's gradient
    1 / (1 + |x|)^2 vanishes on loud transients, so the loss settles on a few dB too little
    level); the gain corrects that bias without retraining. Writes <run>/calibration.json
    (export and training/evaluate.py --run apply it)."""
    data = load_data(args.data)
    st1 = torch.load(os.path.join(args.run, "stage1_state.pt"))
    w = WaveformVAE(**st1["hparams"])
    w.load_state_dict(st1["model"])
    w.eval()
    torch.manual_seed(args.seed)
    x_all = data["audio"][data["split"] == 0]
    pre, e_real = [], []
    for i in range(0, len(x_all), 16):
        x = torch.from_numpy(x_all[i:i + 16])
        mu, _ = w_encode(w, x)
        y = w_decode(w, mu, x.shape[0]).clamp(-1 + 1e-6, 1 - 1e-6)
        pre.append(y / (1 - y.abs()))  # the signal before Softsign
        e_real.append((x ** 2).mean(1))
    pre, e_real = torch.cat(pre).double(), torch.cat(e_real).double()

    def median_ratio_db(gain_db):
        p = pre * 10 ** (gain_db / 20.0)
        y = p / (1 + p.abs())
        return float(np.median((10 * torch.log10((y ** 2).mean(1) / e_real)).numpy()))

    lo, hi = -24.0, 24.0  # the energy ratio grows monotonically with the gain
    before = median_ratio_db(0.0)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if median_ratio_db(mid) < 0:
            lo = mid
        else:
            hi = mid
    gain = 0.5 * (lo + hi)
    res = {"output_gain_db": round(gain, 3), "median_energy_ratio_db_before": round(before, 3),
           "median_energy_ratio_db_after": round(median_ratio_db(gain), 3),
           "n_training_sounds": int(len(e_real)), "stage1_step": int(st1["step"])}
    with open(os.path.join(args.run, CALIBRATION), "w") as f:
        json.dump(res, f, indent=1)
    log(args.run, "calibrate " + json.dumps(res))
    print(json.dumps(res))


def export(args):
    """Writes authors'-format Lightning checkpoints (weights and hyper-parameters, no
    optimiser state) and their hparams yaml files with the converter's checkpoint writer
    (weights_converter.lightning): <out>/drums_{waveform,latent}.ckpt and
    <out>/drums_{waveform,latent}_hparams.yaml."""
    from weights_converter import lightning
    out = args.out or os.path.join(args.run, "export")
    os.makedirs(out, exist_ok=True)
    for stage, name in (("stage1", "waveform"), ("stage2", "latent")):
        st = torch.load(os.path.join(args.run, "%s_state.pt" % stage))
        hp = dict(st["hparams"])
        hp["learning_rate"] = st["config"]["lr"]
        model = (WaveformVAE if stage == "stage1" else LatentVAE)(**hp)
        model.load_state_dict(st["model"])
        if stage == "stage1" and output_gain_db(args.run):
            apply_output_gain(model, output_gain_db(args.run))
            print("output gain %+.2f dB applied (%s)" % (output_gain_db(args.run), CALIBRATION))
        ckpt = os.path.join(out, "drums_%s.ckpt" % name)
        yml = os.path.join(out, "drums_%s_hparams.yaml" % name)
        lightning.save_lightning_checkpoint(ckpt, model.state_dict(), hp, epoch=0,
                                            global_step=st["step"], optimizer=False)
        lightning.save_hparams_yaml(yml, hp)
        print("wrote %s (%.1f MB), %s" % (ckpt, os.path.getsize(ckpt) / 1e6, yml))


def table(args):
    """Prints the held-out distances logged during training (a markdown table), to see
    whether they have flattened."""
    st = torch.load(os.path.join(args.run, "stage1_state.pt"))
    print("| step | lr | beta | train spec | held-out spec | held-out LSD dB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in st["history"]:
        if "test_spec" in r:
            print("| %d | %.2e | %.4f | %.4f | %.4f | %s |" % (
                r["step"], r["lr"], r["beta"], r["spec"], r["test_spec"],
                "%.2f" % r["test_lsd_db"] if "test_lsd_db" in r else "-"))
    p2 = os.path.join(args.run, "stage2_state.pt")
    if os.path.exists(p2):
        st = torch.load(p2)
        print("\n| stage 2 step | train MSE | KL nats | beta | held-out MSE |")
        print("|---:|---:|---:|---:|---:|")
        for r in st["history"]:
            print("| %d | %.4f | %.2f | %.4f | %.4f |" % (r["step"], r["rec"], r["kld"], r["beta"],
                                                      r["test_rec"]))


def main():
    ap = argparse.ArgumentParser(description="train the bundled drum model (see module doc)")
    ap.add_argument("what", choices=["stage1", "stage2", "calibrate", "export", "table"])
    ap.add_argument("--data", default=os.path.join(HERE, "data", "drums16k.npz"))
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "drums"))
    ap.add_argument("--out", default=None, help="export folder (default <run>/export)")
    ap.add_argument("--minutes", type=float, default=1e9, help="wall-clock budget of this call")
    ap.add_argument("--save_minutes", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max_steps", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tar_beta", type=float, default=0.003)
    ap.add_argument("--freeze_bn_at", type=float, default=0.2,
                    help="fraction of max_steps after which BatchNorm statistics are "
                    "recalibrated and frozen (stage 1)")
    ap.add_argument("--log_weight", type=float, default=0.3,
                    help="weight of the log-magnitude term of the stage-1 loss (0: off)")
    ap.add_argument("--log_floor_db", default="-90",
                    help="log term floor in dB relative to the target's largest magnitude "
                    "per example and scale; 'none': eps 1e-7 (the first bundled model)")
    ap.add_argument("--class_power", type=float, default=1.0,
                    help="batches sample class c with weight count_c^-power: 1 balanced "
                    "(default, both stages), 0.5 sqrt (the first model's stage 2), 0 none")
    ap.add_argument("--pp_gain_db", type=float, default=24.0,
                    help="new runs: initial gain of the post-processing FIR (see init_gain)")
    ap.add_argument("--out_bias", type=float, default=-1.5,
                    help="new runs: initial bias of the decoder's output layer")
    ap.add_argument("--batch2", type=int, default=32)
    ap.add_argument("--max_steps2", type=int, default=6000)
    ap.add_argument("--lr2", type=float, default=1e-3)
    ap.add_argument("--tar_beta2", type=float, default=0.002,
                    help="stage-2 KL weight (the first model: 0.01, the authors' value; its "
                    "embedding carried 2 nats and one-shots of a class were much alike)")
    ap.add_argument("--log_every", type=int, default=25)
    ap.add_argument("--eval_every", type=int, default=250)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.run, exist_ok=True)
    {"stage1": stage1, "stage2": stage2, "calibrate": calibrate, "export": export, "table": table}[args.what](args)


if __name__ == "__main__":
    main()
