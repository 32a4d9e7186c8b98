"""Loads an ngs model file (docs/MODEL_FORMAT.md, safetensors) back into the PyTorch
reference models, so the exact shipped weights (fp16 or fp32) can be evaluated and
decoded by `weights_converter.reference`.

The file holds BatchNorm folded into the preceding layers; here each BatchNorm is set to
the identity (running mean 0, running var 1 - 1e-5, weight 1, bias 0, so that
(x - 0) / sqrt(1 - 1e-5 + 1e-5) * 1 + 0 = x exactly) and the folded weights go into the
Linear/Conv. A residual block's combined bias goes into its 1x1 conv (shortcut bias 0).
The post-processing FIR goes into input channel 0 of `post_pro.0` (other channels 0),
which is the same filter since the authors repeat the signal over the channels.

    meta, tensors = read_safetensors(path)       # plain json + numpy
    w, l, config = load_reference(path)          # WaveformVAE, LatentVAE or None, config
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from weights_converter import safetensors  # noqa: E402
from weights_converter.reference import WaveformVAE, LatentVAE  # noqa: E402

def read_safetensors(path):
    """Returns (metadata dict, {name: numpy array}) (weights_converter.safetensors)."""
    tensors, meta = safetensors.load(path)
    return meta, tensors


def _identity_bn(bn):
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.zero_()


def _set(param, array):
    t = torch.as_tensor(np.asarray(array, dtype=np.float32))
    if tuple(param.shape) != tuple(t.shape):
        raise ValueError("shape mismatch: %s vs %s" % (tuple(param.shape), tuple(t.shape)))
    with torch.no_grad():
        param.copy_(t)


def _load_waveform(cfg, hp, T):
    wh = dict(hp.get("waveform") or {})
    wh.update({k: cfg[k] for k in cfg})
    w = WaveformVAE(**wh)
    for i, blk in enumerate(w.encoder_convs):
        sc, res = blk[0].conv, blk[1]
        _set(sc[1].weight, T["w.enc.conv.%d.weight" % i])
        _set(sc[1].bias, T["w.enc.conv.%d.bias" % i])
        _identity_bn(sc[2])
        for j in range(len(res.blocks)):
            b, s = res.blocks[j], res.shortcuts[j]
            p = "w.enc.res.%d.%d." % (i, j)
            _set(b[2].weight, T[p + "dil.weight"])
            _set(b[2].bias, T[p + "dil.bias"])
            _identity_bn(b[3])
            _set(b[5].weight, T[p + "pw.weight"][:, :, None])
            _set(b[5].bias, T[p + "bias"])
            _identity_bn(b[6])
            _set(s[0].weight, T[p + "sc.weight"][:, :, None])
            _set(s[0].bias, np.zeros(s[0].bias.shape))
            _identity_bn(s[1])
    for i in range(2):
        blk = w.encoder_linears[i].block
        _set(blk[0].weight, T["w.enc.lin.%d.weight" % i])
        _set(blk[0].bias, T["w.enc.lin.%d.bias" % i])
        _identity_bn(blk[1])
    _set(w.mu.weight, T["w.enc.mu.weight"])
    _set(w.mu.bias, T["w.enc.mu.bias"])
    _set(w.logvar[0].weight, T["w.enc.logvar.weight"])
    _set(w.logvar[0].bias, T["w.enc.logvar.bias"])
    n_lin = cfg["n_linears"]
    for i in range(n_lin):
        blk = w.decoder_linears[i].block
        _set(blk[0].weight, T["w.dec.lin.%d.weight" % i])
        _set(blk[0].bias, T["w.dec.lin.%d.bias" % i])
        _identity_bn(blk[1])
    _set(w.decoder_linears[n_lin].weight, T["w.dec.out.weight"])
    _set(w.decoder_linears[n_lin].bias, T["w.dec.out.bias"])
    fir = np.zeros(tuple(w.post_pro[0].weight.shape), dtype=np.float32)
    fir[0, 0, :] = T["w.pp.fir"]
    _set(w.post_pro[0].weight, fir)
    _set(w.post_pro[0].bias, T["w.pp.bias"])
    return w.eval()


def _load_rnn(rnn, prefix, T, n_layers):
    for k in range(n_layers):
        _set(getattr(rnn, "weight_ih_l%d" % k), T["%s.%d.w_ih" % (prefix, k)])
        _set(getattr(rnn, "weight_hh_l%d" % k), T["%s.%d.w_hh" % (prefix, k)])
        _set(getattr(rnn, "bias_ih_l%d" % k), T["%s.%d.b_ih" % (prefix, k)])
        _set(getattr(rnn, "bias_hh_l%d" % k), T["%s.%d.b_hh" % (prefix, k)])


def _load_latent(cfg, hp, T):
    lh = dict(hp.get("latent") or {})
    lh.update({k: cfg[k] for k in cfg})
    l = LatentVAE(**lh)
    n_lin = cfg["n_linears"]
    for i in range(n_lin):
        blk = l.encoder_z[i].block
        _set(blk[0].weight, T["l.enc_z.%d.weight" % i])
        _set(blk[0].bias, T["l.enc_z.%d.bias" % i])
        _set(blk[1].weight, T["l.enc_z.%d.ln_weight" % i])
        _set(blk[1].bias, T["l.enc_z.%d.ln_bias" % i])
    _load_rnn(l.encoder_rnn, "l.enc_rnn", T, cfg["n_RNN"])
    for i in range(len(l.encoder_e)):
        blk = l.encoder_e[i].block
        _set(blk[0].weight, T["l.enc_e.%d.weight" % i])
        _set(blk[0].bias, T["l.enc_e.%d.bias" % i])
        _identity_bn(blk[1])
    _set(l.mu.weight, T["l.mu.weight"])
    _set(l.mu.bias, T["l.mu.bias"])
    _set(l.logvar[0].weight, T["l.logvar.weight"])
    _set(l.logvar[0].bias, T["l.logvar.bias"])
    for i in range(len(l.decoder_e)):
        blk = l.decoder_e[i].block
        _set(blk[0].weight, T["l.dec_e.%d.weight" % i])
        _set(blk[0].bias, T["l.dec_e.%d.bias" % i])
        _identity_bn(blk[1])
    _load_rnn(l.decoder_rnn, "l.dec_rnn", T, cfg["n_RNN"])
    for i in range(n_lin):
        blk = l.decoder_z[i].block
        _set(blk[0].weight, T["l.dec_z.%d.weight" % i])
        _set(blk[0].bias, T["l.dec_z.%d.bias" % i])
        _set(blk[1].weight, T["l.dec_z.%d.ln_weight" % i])
        _set(blk[1].bias, T["l.dec_z.%d.ln_bias" % i])
    _set(l.decoder_z[n_lin].weight, T["l.dec_z.out.weight"])
    _set(l.decoder_z[n_lin].bias, T["l.dec_z.out.bias"])
    return l.eval()


def load_reference(path):
    """Returns (WaveformVAE, LatentVAE or None, config dict) from an ngs model file."""
    meta, T = read_safetensors(path)
    if meta.get("ngs.format") != "ngs-model":
        raise ValueError("%s: not an ngs model file (ngs.format = %r)" % (path, meta.get("ngs.format")))
    config = json.loads(meta["ngs.config"])
    hp = config.get("hparams") or {}
    w = _load_waveform(config["waveform"], hp, T)
    l = _load_latent(config["latent"], hp, T) if config.get("latent") else None
    return w, l, config
