"""Random-weight models of the benchmark configurations, in the authors' checkpoint format
and converted to ngs model files (same weights for PyTorch and ngs).

    /usr/bin/python3 bench/make_models.py --out build/bench-models

writes <out>/<config>/{waveform.ckpt, waveform.yaml, latent.ckpt, latent.yaml,
model.safetensors} for the configurations in CONFIGS (skipped when already present).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from weights_converter import convert as C  # noqa: E402
from weights_converter import lightning as L  # noqa: E402
from weights_converter import reference as R  # noqa: E402

CLASSES = ["Clap", "Cowbell", "Cymb_Crash_Ride", "Hat", "Kick", "Snare", "Tom"]


def _waveform(sr, l_grain):
    return dict(z_dim=128, h_dim=512, kernel_size=9, channels=128, n_convs=3, stride=4,
                n_linears=3, n_grains=41, hop_size=l_grain // 4, normalize_ola=True,
                pp_chans=5, pp_ker=65, l_grain=l_grain, sr=sr, learning_rate=2e-4)


LATENT = dict(e_dim=256, z_dim=128, h_dim=512, n_linears=2, rnn_type="LSTM", n_RNN=1,
              n_grains=41, classes=CLASSES, conditional=True, learning_rate=2e-4)

# The drum model of the paper (22.05 kHz, 2048-sample grains) and its 16 kHz setting.
CONFIGS = {
    "drums22k": (_waveform(22050, 2048), LATENT),
    "sr16k": (_waveform(16000, 1024), LATENT),
}


def _randomize_norms(model, gen):
    """Non-trivial BatchNorm/LayerNorm statistics and affine parameters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def build(name, seed=1):
    """(waveform VAE, latent VAE) of a configuration with seeded random weights."""
    w_hp, l_hp = CONFIGS[name]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    w = R.WaveformVAE.from_hparams(dict(w_hp))
    l = R.LatentVAE.from_hparams(dict(l_hp))
    _randomize_norms(w, gen)
    _randomize_norms(l, gen)
    return w.eval(), l.eval()


def paths(out, name):
    d = os.path.join(out, name)
    return {k: os.path.join(d, f) for k, f in
            [("dir", ""), ("w_ckpt", "waveform.ckpt"), ("w_yaml", "waveform.yaml"),
             ("l_ckpt", "latent.ckpt"), ("l_yaml", "latent.yaml"),
             ("model", "model.safetensors")]}


def make(out, name, seed=1, force=False):
    """Writes the checkpoints and the converted model; returns the paths."""
    p = paths(out, name)
    if os.path.exists(p["model"]) and not force:
        return p
    os.makedirs(p["dir"], exist_ok=True)
    w, l = build(name, seed)
    L.save_lightning_checkpoint(p["w_ckpt"], w.state_dict(), w.hparams)
    L.save_hparams_yaml(p["w_yaml"], w.hparams)
    L.save_lightning_checkpoint(p["l_ckpt"], l.state_dict(), l.hparams)
    L.save_hparams_yaml(p["l_yaml"], l.hparams)
    tmp = p["model"] + ".tmp"
    C.convert(tmp, w_ckpt=p["w_ckpt"], w_yaml=p["w_yaml"], l_ckpt=p["l_ckpt"],
              l_yaml=p["l_yaml"], dtype="fp32")
    os.replace(tmp, p["model"])
    return p


def load(out, name):
    """The PyTorch models from the written checkpoints (exactly the converted weights)."""
    p = paths(out, name)
    w_hp, l_hp = CONFIGS[name]
    w = R.WaveformVAE.from_hparams(dict(w_hp))
    l = R.LatentVAE.from_hparams(dict(l_hp))
    for m, key in ((w, "w_ckpt"), (l, "l_ckpt")):
        sd = L.load_checkpoint(p[key])["state_dict"]
        m.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in sd.items()})
    return w.eval(), l.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/bench-models")
    ap.add_argument("--force", action="store_true", help="rewrite existing models")
    a = ap.parse_args()
    for name in CONFIGS:
        p = make(a.out, name, force=a.force)
        print(f"{name}: {p['model']}")


if __name__ == "__main__":
    main()
