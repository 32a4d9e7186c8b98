"""Golden fixtures: python3 -m weights_converter.make_fixtures --out DIR [--only NAME ...]

For each configuration in CONFIGS, writes DIR/<name>/ as docs/MODEL_FORMAT.md "Golden
fixtures" describes: authors'-format Lightning checkpoints of a random model (non-trivial
BatchNorm statistics and LayerNorm affines) with their hparams yaml files, the converted
model files (fp32, fp16), and golden.safetensors with the inputs and expected outputs of
every stage. Weights come from numpy's seeded generator and the goldens from the float64
reference, so the output is the same on every run. Takes a few seconds.

Library use (training/bench helpers):
    random_models(cfg) -> (WaveformVAE, LatentVAE)  deterministic random weights
    write_checkpoints(dirpath, w, l, hierarchical=False, pl_version="1.4.9") -> dict of paths
The process references (resynthesize, render_loop, sample_interpolation) live in
weights_converter.reference.processes; they are imported here for the goldens.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from . import convert as CV
from . import lightning as LT
from . import reference as R
from . import rng
from . import safetensors as ST
from .reference import paths as PA
from .reference.processes import _np, render_loop, resynthesize, sample_interpolation

SEED = 0x0123456789ABCDEF  # > 2^32 so both key words matter

CONFIGS = {
    "gru16k": dict(
        waveform=dict(z_dim=16, h_dim=64, kernel_size=9, channels=8, n_convs=2, stride=4,
                      n_linears=3, n_grains=9, hop_size=256, normalize_ola=True, pp_chans=5,
                      pp_ker=65, l_grain=1024, sr=16000, learning_rate=2e-4),
        latent=dict(e_dim=32, z_dim=16, h_dim=64, n_linears=2, rnn_type="GRU", n_RNN=1,
                    n_grains=9, classes=["drums"], conditional=False, learning_rate=2e-4),
        class_index=-1, resynth=dict(segment_grains=9, crossfade=256), hierarchical=False),
    "lstm22k": dict(
        waveform=dict(z_dim=16, h_dim=64, kernel_size=9, channels=12, n_convs=3, stride=4,
                      n_linears=3, n_grains=11, hop_size=512, normalize_ola=True, pp_chans=5,
                      pp_ker=65, l_grain=2048, sr=22050, learning_rate=1e-4),
        latent=dict(e_dim=32, z_dim=16, h_dim=64, n_linears=2, rnn_type="LSTM", n_RNN=2,
                    n_grains=11, classes=["Clap", "Cowbell", "Cymb_Crash_Ride", "Hat", "Kick",
                                          "Snare", "Tom"], conditional=True, learning_rate=1e-4),
        class_index=4, resynth=dict(segment_grains=7, crossfade=300), hierarchical=True),
    "noola": dict(
        waveform=dict(z_dim=16, h_dim=48, kernel_size=7, channels=16, n_convs=2, stride=4,
                      n_linears=2, n_grains=13, hop_size=128, normalize_ola=False, pp_chans=3,
                      pp_ker=33, l_grain=512, sr=16000, learning_rate=1e-4),
        latent=dict(e_dim=24, z_dim=16, h_dim=48, n_linears=3, rnn_type="GRU", n_RNN=3,
                    n_grains=13, classes=["a", "b", "c"], conditional=True, learning_rate=1e-4),
        class_index=1, resynth=dict(segment_grains=13, crossfade=128), hierarchical=False),
    # No width a multiple of 4, 8 or 16 (z 6, e 10, h 37, LSTM 150 = 9 blocks of 16 + 6,
    # 6 channels, 21 grains), so each SIMD tail of every stage (paths, GEMM, convs, RNN
    # blocks, LayerNorm) runs against the goldens; the LSTM is wide enough (10 unit
    # blocks) that 2 threads split its recurrence.
    "odd": dict(
        waveform=dict(z_dim=6, h_dim=37, kernel_size=5, channels=6, n_convs=2, stride=4,
                      n_linears=3, n_grains=21, hop_size=128, normalize_ola=True, pp_chans=3,
                      pp_ker=31, l_grain=512, sr=16000, learning_rate=1e-4),
        latent=dict(e_dim=10, z_dim=6, h_dim=150, n_linears=2, rnn_type="LSTM", n_RNN=2,
                    n_grains=21, classes=["x", "y", "z"], conditional=True, learning_rate=1e-4),
        class_index=2, resynth=dict(segment_grains=5, crossfade=100), hierarchical=False),
}

PATH_PARAMS = dict(seed=SEED, sequence=2, temperature=0.8, turns=1.5, points=5, legs=3, gamma=2.0)
TEMPERATURE = 0.9


# ------------------------------------------------------------------ random models

def _randomise(module, seed):
    """Deterministic, non-trivial weights from numpy (independent of torch's RNG)."""
    r = np.random.default_rng(seed)
    sd = module.state_dict()
    new = {}
    for k, v in sd.items():
        shape = tuple(v.shape)
        if k in ("filter_window", "ola_windows", "slice_kernel", "ola_divisor"):
            new[k] = v
            continue
        leaf = k.rsplit(".", 1)[-1]
        owner = module.get_submodule(k.rsplit(".", 1)[0]) if "." in k else module
        if isinstance(owner, torch.nn.BatchNorm1d):
            val = {"weight": lambda: r.uniform(0.6, 1.4, shape),
                   "bias": lambda: r.normal(0, 0.1, shape),
                   "running_mean": lambda: r.normal(0, 0.2, shape),
                   "running_var": lambda: r.uniform(0.5, 2.0, shape),
                   "num_batches_tracked": lambda: np.array(int(r.integers(100, 10000)))}[leaf]()
        elif isinstance(owner, torch.nn.LayerNorm):
            val = r.uniform(0.7, 1.3, shape) if leaf == "weight" else r.normal(0, 0.1, shape)
        elif leaf.startswith("weight"):
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            val = r.uniform(-1, 1, shape) * math.sqrt(3.0 / fan_in)
        else:
            val = r.uniform(-0.1, 0.1, shape)
        new[k] = torch.as_tensor(np.asarray(val)).to(v.dtype)
    module.load_state_dict(new, strict=True)
    return module


def random_models(cfg, seed=1):
    w = _randomise(R.WaveformVAE.from_hparams(cfg["waveform"]), seed)
    l = _randomise(R.LatentVAE.from_hparams(cfg["latent"]), seed + 1)
    return w, l


def write_checkpoints(d, w, l, hierarchical=False, pl_version="1.4.9"):
    """Lightning checkpoints in the structure of the given Lightning line
    (lightning.LIGHTNING_LINES; 1.4.9 is the authors') with their hparams yaml files."""
    p = {"w_ckpt": os.path.join(d, "checkpoint_waveform.ckpt"),
         "w_yaml": os.path.join(d, "hparams_waveform.yaml"),
         "l_ckpt": os.path.join(d, "checkpoint_latent.ckpt"),
         "l_yaml": os.path.join(d, "hparams_latent.yaml")}
    LT.save_lightning_checkpoint(p["w_ckpt"], w.state_dict(), w.hparams, pl_version=pl_version)
    LT.save_hparams_yaml(p["w_yaml"], w.hparams)
    LT.save_lightning_checkpoint(p["l_ckpt"], l.state_dict(), l.hparams, pl_version=pl_version)
    LT.save_hparams_yaml(p["l_yaml"], l.hparams)
    if hierarchical:
        h = R.HierarchicalVAE(w.hparams, l.hparams)
        h.w_model.load_state_dict(w.state_dict())
        h.l_model.load_state_dict(l.state_dict())
        hhp = dict(w_ckpt_file=p["w_ckpt"], w_yaml_file=p["w_yaml"], l_ckpt_file=p["l_ckpt"],
                   l_yaml_file=p["l_yaml"], learning_rate=1e-5)
        p["h_ckpt"] = os.path.join(d, "checkpoint_hierarchical.ckpt")
        p["h_yaml"] = os.path.join(d, "hparams_hierarchical.yaml")
        LT.save_lightning_checkpoint(p["h_ckpt"], h.state_dict(), hhp, pl_version=pl_version)
        LT.save_hparams_yaml(p["h_yaml"], hhp)
    return p


# ------------------------------------------------------------------ goldens

def make_goldens(w, l, cfg, name):
    wh = w.hparams
    N, L, hop, zd, sr = wh["n_grains"], wh["l_grain"], wh["hop_size"], wh["z_dim"], wh["sr"]
    tar_l = (N + 3) * hop
    ci = cfg["class_index"]
    cls = None if ci < 0 else ci
    r = np.random.default_rng(sum(map(ord, name)))
    w64, l64 = w.double(), l.double()
    g = {}
    # encoder
    audio = np.convolve(r.uniform(-1, 1, tar_l + 7), np.hanning(8), "valid")[:tar_l] * 0.4
    audio = audio.astype(np.float32)
    eps = rng.encoder_eps(SEED, 0, 0, N, zd)
    enc = R.encode(w64, audio, eps)
    g["encode.audio"], g["encode.eps"] = audio, eps
    g["encode.mu"], g["encode.logvar"], g["encode.z"] = enc["mu"], enc["logvar"], enc["z"]
    # decoder stages
    z = r.normal(0, 1, (N, zd)).astype(np.float32)
    noise = rng.grain_noise(SEED, 0, 0, N, L)
    dec = R.decode(w64, z, noise)
    g["decode.z"], g["decode.noise"] = z, noise
    g["decode.magnitudes"] = dec["H"]
    for k in ("spectrum", "grains", "ola", "audio"):
        g["decode." + k] = dec[k]
    # latent model
    e = r.normal(0, 1, l.hparams["e_dim"]).astype(np.float32)
    lz = R.latent_decode(l64, e, cls)
    le = R.latent_encode(l64, lz.float())
    g["latent.e"], g["latent.z"] = e, lz
    g["latent.e_mu"], g["latent.e_logvar"] = le["mu"], le["logvar"]
    # one-shot
    s = R.sample_one_shot(w64, l64, SEED, cls, TEMPERATURE, 0)
    g["sample.e"], g["sample.z"], g["sample.audio"] = s["e"], s["z"], s["audio"]
    # paths and free synthesis
    n_free = N + 4
    pp = dict(PATH_PARAMS)
    for kind in PA.KINDS:
        g["path." + kind] = PA.generate(kind, n_free, zd, pp["seed"], pp["sequence"],
                                        pp["temperature"], pp["turns"], pp["points"],
                                        pp["legs"], pp["gamma"])
    g["free.z"] = g["path.line"]
    g["free.audio"] = R.decode(w64, g["free.z"], rng.grain_noise(SEED, 0, 0, n_free, L))["audio"]
    # pre-processing (no resampling): DC offset, rumble, peak > 1
    n_pre = 3001
    t = np.arange(n_pre) / sr
    pin = (0.3 + 0.8 * np.sin(2 * np.pi * 30 * t) + 0.9 * r.uniform(-1, 1, n_pre)).astype(np.float32)
    g["preprocess.in"] = pin
    g["preprocess.out"] = R.preprocess(pin, sr, normalize=False)
    # resynthesis of a length that is a multiple of nothing
    rs = cfg["resynth"]
    n_rs = 2 * (rs["segment_grains"] + 3) * hop + 1237
    rin = (np.convolve(r.uniform(-1, 1, n_rs + 5), np.hanning(6), "valid")[:n_rs] * 0.5).astype(np.float32)
    g["resynth.in"] = rin
    g["resynth.out"] = resynthesize(w64, rin, SEED + 1, rs["segment_grains"], rs["crossfade"])
    # drum loop
    nc = CV.n_conds(l.hparams)
    classes = [(i % nc) if nc else -1 for i in range(5)]
    if nc:
        classes[1] = classes[0]  # two events of one class share a track
    onsets = [0.0, 0.25, 0.5, 0.625, 0.9]
    amps = [1.0, 0.5, 0.8, 0.3, 0.7]
    loop_length = int(2.5 * tar_l) + 17
    events = [dict(class_index=c, onset=o, amplitude=a) for c, o, a in zip(classes, onsets, amps)]
    g["loop.audio"] = render_loop(w64, l64, events, loop_length, SEED + 2, TEMPERATURE)
    steps = 3
    g["interp.audio"] = sample_interpolation(w64, l64, SEED + 3, ci, TEMPERATURE, steps)
    meta = {
        "golden.seed": str(SEED),
        "golden.class_index": str(ci),
        "golden.temperature": repr(TEMPERATURE),
        "golden.path_params": json.dumps(dict(pp, n=n_free)),
        "golden.preprocess_normalize": "0",
        "golden.resynth_params": json.dumps(dict(seed=SEED + 1, **rs)),
        "golden.loop_events": json.dumps(dict(seed=SEED + 2, temperature=TEMPERATURE,
                                              loop_length=loop_length, events=events)),
        "golden.interp_params": json.dumps(dict(seed=SEED + 3, class_index=ci,
                                                temperature=TEMPERATURE, steps=steps)),
        "golden.precision": "float64 reference (authors' modules), stored as F32",
    }
    out = {k: (_np(v) if torch.is_tensor(v) else np.asarray(v)).astype(np.float32) for k, v in g.items()}
    return out, meta


def make_one(out_dir, name, cfg):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    w, l = random_models(cfg, seed=sum(map(ord, name)))
    p = write_checkpoints(d, w, l, cfg.get("hierarchical", False))
    CV.convert(os.path.join(d, "model.safetensors"), p["w_ckpt"], p["w_yaml"], p["l_ckpt"], p["l_yaml"])
    CV.convert(os.path.join(d, "model_fp16.safetensors"), p["w_ckpt"], p["w_yaml"], p["l_ckpt"],
               p["l_yaml"], dtype="fp16")
    CV.convert(os.path.join(d, "model_waveform_only.safetensors"), p["w_ckpt"], p["w_yaml"])
    g, meta = make_goldens(w, l, cfg, name)
    ST.save(os.path.join(d, "golden.safetensors"), g, meta)
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m weights_converter.make_fixtures",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (DIR/<config>/...)")
    ap.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configs to build")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    for name in (a.only or CONFIGS):
        t = time.perf_counter()
        make_one(a.out, name, CONFIGS[name])
        print("fixtures: %s/%s in %.2f s" % (a.out, name, time.perf_counter() - t))
    print("fixtures: done in %.2f s" % (time.perf_counter() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
