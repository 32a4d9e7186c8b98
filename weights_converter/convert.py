"""Converter: authors' Lightning checkpoints -> one ngs model file (docs/MODEL_FORMAT.md).

Library API:
    convert(out, w_ckpt=None, w_yaml=None, l_ckpt=None, l_yaml=None, h_ckpt=None,
            dtype="fp32") -> (tensors, metadata, sources)   writes `out`
    load_sources(...) -> Sources(w_sd, w_hp, l_sd, l_hp, files)
    validate_waveform(sd, hp) / validate_latent(sd, hp) -> list of problem strings
    expected_waveform_shapes(hp) / expected_latent_shapes(hp) -> {key: shape}
    fold_waveform(sd, hp) / fold_latent(sd, hp) -> {output name: float64 array}
    check(src, tensors, config, seed=1234) -> list of (stage, max_rel, rel_l2)
    ConversionError: every refusal; .problems lists all of them
"""
import collections
import hashlib
import json
import math
import os
import time

import numpy as np

from . import __version__
from . import lightning
from . import reference as R
from . import safetensors

FORMAT_VERSION = 1
BN_EPS = 1e-5

W_KEYS = ("z_dim", "h_dim", "kernel_size", "channels", "n_convs", "stride", "n_linears",
          "n_grains", "hop_size", "normalize_ola", "pp_chans", "pp_ker", "l_grain", "sr")
W_DEFAULTS = {"l_grain": 2048, "sr": 16000}
L_KEYS = ("e_dim", "z_dim", "h_dim", "n_linears", "rnn_type", "n_RNN", "n_grains", "classes",
          "conditional")


class ConversionError(Exception):
    def __init__(self, problems, what="conversion refused"):
        self.problems = list(problems)
        super().__init__("%s: %d problem(s):\n  - %s" % (what, len(self.problems),
                                                        "\n  - ".join(self.problems)))


Sources = collections.namedtuple("Sources", "w_sd w_hp l_sd l_hp files")


# ------------------------------------------------------------------ hyper-parameters

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_waveform_hparams(hp):
    """Completes defaults and returns (hp, problems)."""
    hp = dict(hp)
    probs = []
    for k, v in W_DEFAULTS.items():
        hp.setdefault(k, v)
    for k in W_KEYS:
        if k not in hp:
            probs.append("waveform hparams: '%s' is missing" % k)
    if probs:
        return hp, probs
    for k in W_KEYS:
        if k == "normalize_ola":
            if not isinstance(hp[k], bool):
                probs.append("waveform hparams: normalize_ola must be true/false, found %r" % hp[k])
        elif not _is_int(hp[k]) or hp[k] < 1:
            probs.append("waveform hparams: '%s' must be a positive integer, found %r" % (k, hp[k]))
    if probs:
        return hp, probs
    L = hp["l_grain"]
    if L < 16 or L & (L - 1):
        probs.append("waveform hparams: l_grain must be a power of two >= 16, found %d" % L)
    if hp["hop_size"] * 4 != L:
        probs.append("waveform hparams: hop_size must be l_grain/4 = %d, found %d" % (L // 4, hp["hop_size"]))
    if hp["pp_ker"] % 2 == 0:
        probs.append("waveform hparams: pp_ker must be odd, found %d" % hp["pp_ker"])
    if hp["kernel_size"] % 2 == 0:
        probs.append("waveform hparams: kernel_size must be odd, found %d" % hp["kernel_size"])
    if L % (hp["stride"] ** hp["n_convs"]):
        probs.append("waveform hparams: stride^n_convs = %d does not divide l_grain %d"
                     % (hp["stride"] ** hp["n_convs"], L))
    else:
        # reflection padding needs the padded length > pad at every stage
        Lk = L
        for i in range(hp["n_convs"]):
            if Lk <= hp["kernel_size"] // 2 or Lk // hp["stride"] <= 9:
                probs.append("waveform hparams: the encoder's length %d at stage %d is too "
                             "short for its padding" % (Lk, i))
                break
            Lk //= hp["stride"]
    return hp, probs


def check_latent_hparams(hp, w_hp=None):
    hp = dict(hp)
    probs = []
    for k in L_KEYS:
        if k not in hp:
            probs.append("latent hparams: '%s' is missing" % k)
    if probs:
        return hp, probs
    for k in ("e_dim", "z_dim", "h_dim", "n_linears", "n_RNN", "n_grains"):
        if not _is_int(hp[k]) or hp[k] < 1:
            probs.append("latent hparams: '%s' must be a positive integer, found %r" % (k, hp[k]))
    if hp["rnn_type"] not in ("GRU", "LSTM"):
        probs.append("latent hparams: rnn_type must be GRU or LSTM, found %r" % (hp["rnn_type"],))
    if not isinstance(hp["conditional"], bool):
        probs.append("latent hparams: conditional must be true/false, found %r" % (hp["conditional"],))
    cl = hp["classes"]
    if not isinstance(cl, (list, tuple)) or not all(isinstance(c, str) for c in cl):
        probs.append("latent hparams: classes must be a list of names, found %r" % (cl,))
    else:
        hp["classes"] = list(cl)
    if w_hp is not None:
        for k in ("z_dim", "n_grains"):
            if _is_int(hp[k]) and hp[k] != w_hp.get(k):
                probs.append("latent hparams: %s = %r differs from the waveform model's %r"
                             % (k, hp[k], w_hp.get(k)))
    return hp, probs


def n_conds(l_hp):
    return len(l_hp["classes"]) if (l_hp["conditional"] is True and len(l_hp["classes"]) > 1) else 0


# ------------------------------------------------------------------ expected keys

def _bn(d, p, n):
    for s in ("weight", "bias", "running_mean", "running_var"):
        d[p + s] = (n,)
    d[p + "num_batches_tracked"] = None  # integer scalar, optional


def expected_waveform_shapes(hp):
    z, h, K, C = hp["z_dim"], hp["h_dim"], hp["kernel_size"], hp["channels"]
    L, N = hp["l_grain"], hp["n_grains"]
    Fs = L // 2 + 1
    d = collections.OrderedDict()
    d["filter_window"] = (L,)
    d["ola_windows"] = (N, L)
    d["slice_kernel"] = (L, 1, L)
    if hp["normalize_ola"]:
        d["ola_divisor"] = ((N + 3) * L // 4,)
    for i in range(hp["n_convs"]):
        p = "encoder_convs.%d." % i
        d[p + "0.conv.1.weight"] = (C, 1 if i == 0 else C, K)
        d[p + "0.conv.1.bias"] = (C,)
        _bn(d, p + "0.conv.2.", C)
        for j in range(3):
            b = p + "1.blocks.%d." % j
            d[b + "2.weight"] = (C, C, 3)
            d[b + "2.bias"] = (C,)
            _bn(d, b + "3.", C)
            d[b + "5.weight"] = (C, C, 1)
            d[b + "5.bias"] = (C,)
            _bn(d, b + "6.", C)
            s = p + "1.shortcuts.%d." % j
            d[s + "0.weight"] = (C, C, 1)
            d[s + "0.bias"] = (C,)
            _bn(d, s + "1.", C)
    flat = C * (L // hp["stride"] ** hp["n_convs"])
    for i, (o, n_in) in enumerate(((h, flat), (z, h))):
        d["encoder_linears.%d.block.0.weight" % i] = (o, n_in)
        d["encoder_linears.%d.block.0.bias" % i] = (o,)
        _bn(d, "encoder_linears.%d.block.1." % i, o)
    d["mu.weight"], d["mu.bias"] = (z, z), (z,)
    d["logvar.0.weight"], d["logvar.0.bias"] = (z, z), (z,)
    for i in range(hp["n_linears"]):
        d["decoder_linears.%d.block.0.weight" % i] = (h, z if i == 0 else h)
        d["decoder_linears.%d.block.0.bias" % i] = (h,)
        _bn(d, "decoder_linears.%d.block.1." % i, h)
    d["decoder_linears.%d.weight" % hp["n_linears"]] = (Fs, h)
    d["decoder_linears.%d.bias" % hp["n_linears"]] = (Fs,)
    d["post_pro.0.weight"] = (1, hp["pp_chans"], hp["pp_ker"])
    d["post_pro.0.bias"] = (1,)
    return d


def _rnn_shapes(d, p, hp):
    G = 4 if hp["rnn_type"] == "LSTM" else 3
    h = hp["h_dim"]
    for k in range(hp["n_RNN"]):
        d[p + "weight_ih_l%d" % k] = (G * h, h)
        d[p + "weight_hh_l%d" % k] = (G * h, h)
        d[p + "bias_ih_l%d" % k] = (G * h,)
        d[p + "bias_hh_l%d" % k] = (G * h,)


def expected_latent_shapes(hp):
    z, h, e, nl = hp["z_dim"], hp["h_dim"], hp["e_dim"], hp["n_linears"]
    nc = n_conds(hp)
    d = collections.OrderedDict()
    for i in range(nl):
        d["encoder_z.%d.block.0.weight" % i] = (h, z if i == 0 else h)
        d["encoder_z.%d.block.0.bias" % i] = (h,)
        d["encoder_z.%d.block.1.weight" % i] = (h,)
        d["encoder_z.%d.block.1.bias" % i] = (h,)
    _rnn_shapes(d, "encoder_rnn.", hp)
    for i in range(nl):
        o = e if i == nl - 1 else h
        d["encoder_e.%d.block.0.weight" % i] = (o, h)
        d["encoder_e.%d.block.0.bias" % i] = (o,)
        _bn(d, "encoder_e.%d.block.1." % i, o)
    d["mu.weight"], d["mu.bias"] = (e, e), (e,)
    d["logvar.0.weight"], d["logvar.0.bias"] = (e, e), (e,)
    for i in range(nl):
        d["decoder_e.%d.block.0.weight" % i] = (h, e + nc if i == 0 else h)
        d["decoder_e.%d.block.0.bias" % i] = (h,)
        _bn(d, "decoder_e.%d.block.1." % i, h)
    _rnn_shapes(d, "decoder_rnn.", hp)
    for i in range(nl):
        d["decoder_z.%d.block.0.weight" % i] = (h, h + nc if i == 0 else h)
        d["decoder_z.%d.block.0.bias" % i] = (h,)
        d["decoder_z.%d.block.1.weight" % i] = (h,)
        d["decoder_z.%d.block.1.bias" % i] = (h,)
    d["decoder_z.%d.weight" % nl] = (z, h)
    d["decoder_z.%d.bias" % nl] = (z,)
    return d


FLOAT_DTYPES = (np.float32, np.float64, np.float16)


def validate_state_dict(sd, expected, what):
    """Every problem of a state_dict against the expected shapes, at once."""
    probs = []
    for k, shape in expected.items():
        if k not in sd:
            if shape is not None:
                probs.append("%s: missing key '%s' (expected shape %s)" % (what, k, list(shape)))
            continue
        v = sd[k]
        if not isinstance(v, np.ndarray):
            probs.append("%s: '%s' is a %s, not a tensor" % (what, k, type(v).__name__))
            continue
        if shape is None:  # num_batches_tracked
            if v.dtype.kind not in "iu" or v.size != 1:
                probs.append("%s: '%s' must be an integer scalar, found %s %s"
                             % (what, k, v.dtype, list(v.shape)))
            continue
        if v.dtype.type not in FLOAT_DTYPES:
            probs.append("%s: '%s' has dtype %s, a floating-point tensor is expected"
                         % (what, k, v.dtype))
            continue
        if tuple(v.shape) != tuple(shape):
            probs.append("%s: '%s' has shape %s, expected %s" % (what, k, list(v.shape), list(shape)))
            continue
        if not np.all(np.isfinite(v)):
            probs.append("%s: '%s' contains NaN or Inf" % (what, k))
    for k in sd:
        if k not in expected:
            probs.append("%s: unexpected key '%s' (shape %s)"
                         % (what, k, list(getattr(sd[k], "shape", []))))
    return probs


def check_fixed_tensors(sd, hp):
    """filter_window, ola_windows, ola_divisor must match their definitions."""
    probs = []
    L, N = hp["l_grain"], hp["n_grains"]
    want = {"filter_window": R.filter_window(L), "ola_windows": R.ola_windows(N, L)}
    if hp["normalize_ola"]:
        want["ola_divisor"] = R.ola_divisor(N, L)
    for k, ref in want.items():
        v = sd.get(k)
        if isinstance(v, np.ndarray) and v.shape == ref.shape:
            err = float(np.max(np.abs(v.astype(np.float64) - ref)))
            if not err <= 1e-5:
                probs.append("waveform: '%s' differs from its definition (docs/MODEL_SPEC.md §4.3) by up to "
                             "%.3g; the engine rebuilds it, so the model would not match" % (k, err))
    sk = sd.get("slice_kernel")
    if isinstance(sk, np.ndarray) and sk.shape == (L, 1, L):
        if not np.array_equal(sk[:, 0, :], np.eye(L, dtype=sk.dtype)):
            probs.append("waveform: 'slice_kernel' is not the identity")
    return probs


def validate_waveform(sd, hp):
    probs = validate_state_dict(sd, expected_waveform_shapes(hp), "waveform")
    return probs + check_fixed_tensors(sd, hp)


def validate_latent(sd, hp):
    return validate_state_dict(sd, expected_latent_shapes(hp), "latent")


# ------------------------------------------------------------------ folding

def _f64(sd, k):
    return np.asarray(sd[k], dtype=np.float64)


def bn_scale(sd, p):
    s = _f64(sd, p + "weight") / np.sqrt(_f64(sd, p + "running_var") + BN_EPS)
    return s, _f64(sd, p + "bias") - _f64(sd, p + "running_mean") * s


def fold_bn(sd, wk, bk, bnp):
    """(W * s, (b - mean) * s + beta) for a Linear/Conv weight wk, bias bk, BN prefix bnp."""
    s, shift = bn_scale(sd, bnp)
    W = _f64(sd, wk)
    return W * s.reshape((-1,) + (1,) * (W.ndim - 1)), _f64(sd, bk) * s + shift


def fold_waveform(sd, hp):
    out = collections.OrderedDict()
    for i in range(hp["n_convs"]):
        p = "encoder_convs.%d." % i
        out["w.enc.conv.%d.weight" % i], out["w.enc.conv.%d.bias" % i] = fold_bn(
            sd, p + "0.conv.1.weight", p + "0.conv.1.bias", p + "0.conv.2.")
        for j in range(3):
            b = p + "1.blocks.%d." % j
            s = p + "1.shortcuts.%d." % j
            o = "w.enc.res.%d.%d." % (i, j)
            out[o + "dil.weight"], out[o + "dil.bias"] = fold_bn(sd, b + "2.weight", b + "2.bias", b + "3.")
            pw, pwb = fold_bn(sd, b + "5.weight", b + "5.bias", b + "6.")
            sc, scb = fold_bn(sd, s + "0.weight", s + "0.bias", s + "1.")
            out[o + "pw.weight"] = pw[:, :, 0]
            out[o + "sc.weight"] = sc[:, :, 0]
            out[o + "bias"] = pwb + scb
    for i in range(2):
        p = "encoder_linears.%d.block." % i
        out["w.enc.lin.%d.weight" % i], out["w.enc.lin.%d.bias" % i] = fold_bn(
            sd, p + "0.weight", p + "0.bias", p + "1.")
    out["w.enc.mu.weight"], out["w.enc.mu.bias"] = _f64(sd, "mu.weight"), _f64(sd, "mu.bias")
    out["w.enc.logvar.weight"] = _f64(sd, "logvar.0.weight")
    out["w.enc.logvar.bias"] = _f64(sd, "logvar.0.bias")
    for i in range(hp["n_linears"]):
        p = "decoder_linears.%d.block." % i
        out["w.dec.lin.%d.weight" % i], out["w.dec.lin.%d.bias" % i] = fold_bn(
            sd, p + "0.weight", p + "0.bias", p + "1.")
    n = hp["n_linears"]
    out["w.dec.out.weight"] = _f64(sd, "decoder_linears.%d.weight" % n)
    out["w.dec.out.bias"] = _f64(sd, "decoder_linears.%d.bias" % n)
    out["w.pp.fir"] = _f64(sd, "post_pro.0.weight")[0].sum(axis=0)
    out["w.pp.bias"] = _f64(sd, "post_pro.0.bias")
    return out


def fold_latent(sd, hp):
    out = collections.OrderedDict()
    nl = hp["n_linears"]
    for i in range(nl):
        p = "encoder_z.%d.block." % i
        o = "l.enc_z.%d." % i
        out[o + "weight"], out[o + "bias"] = _f64(sd, p + "0.weight"), _f64(sd, p + "0.bias")
        out[o + "ln_weight"], out[o + "ln_bias"] = _f64(sd, p + "1.weight"), _f64(sd, p + "1.bias")
    for src, dst in (("encoder_rnn.", "l.enc_rnn."), ("decoder_rnn.", "l.dec_rnn.")):
        for k in range(hp["n_RNN"]):
            for a, b in (("weight_ih", "w_ih"), ("weight_hh", "w_hh"), ("bias_ih", "b_ih"),
                         ("bias_hh", "b_hh")):
                out["%s%d.%s" % (dst, k, b)] = _f64(sd, "%s%s_l%d" % (src, a, k))
    for i in range(nl):
        p = "encoder_e.%d.block." % i
        out["l.enc_e.%d.weight" % i], out["l.enc_e.%d.bias" % i] = fold_bn(
            sd, p + "0.weight", p + "0.bias", p + "1.")
    out["l.mu.weight"], out["l.mu.bias"] = _f64(sd, "mu.weight"), _f64(sd, "mu.bias")
    out["l.logvar.weight"], out["l.logvar.bias"] = _f64(sd, "logvar.0.weight"), _f64(sd, "logvar.0.bias")
    for i in range(nl):
        p = "decoder_e.%d.block." % i
        out["l.dec_e.%d.weight" % i], out["l.dec_e.%d.bias" % i] = fold_bn(
            sd, p + "0.weight", p + "0.bias", p + "1.")
    for i in range(nl):
        p = "decoder_z.%d.block." % i
        o = "l.dec_z.%d." % i
        out[o + "weight"], out[o + "bias"] = _f64(sd, p + "0.weight"), _f64(sd, p + "0.bias")
        out[o + "ln_weight"], out[o + "ln_bias"] = _f64(sd, p + "1.weight"), _f64(sd, p + "1.bias")
    out["l.dec_z.out.weight"] = _f64(sd, "decoder_z.%d.weight" % nl)
    out["l.dec_z.out.bias"] = _f64(sd, "decoder_z.%d.bias" % nl)
    return out


ALWAYS_F32 = ("w.pp.bias",)


def cast_tensors(folded, dtype):
    """Casts the folded float64 tensors to the file's dtype; refuses values that do not
    fit (e.g. |w| > 65504 in fp16, which BatchNorm folding can produce)."""
    out = collections.OrderedDict()
    probs = []
    for k, v in folded.items():
        t = np.float16 if (dtype == "fp16" and k not in ALWAYS_F32) else np.float32
        with np.errstate(over="ignore"):
            out[k] = v.astype(t)
        if not np.all(np.isfinite(out[k])):
            probs.append("%s: folded values up to %.3g do not fit in %s"
                         % (k, float(np.max(np.abs(v))), "fp16" if t == np.float16 else "fp32"))
    if probs:
        raise ConversionError(probs + (["use --dtype fp32"] if dtype == "fp16" else []))
    return out


def build_config(w_hp, l_hp, w_raw=None, l_raw=None):
    w = {k: w_hp[k] for k in ("sr", "l_grain", "hop_size", "n_grains", "z_dim", "h_dim",
                              "channels", "kernel_size", "n_convs", "stride", "n_linears",
                              "normalize_ola", "pp_chans", "pp_ker")}
    lat = None
    if l_hp is not None:
        lat = {k: l_hp[k] for k in ("z_dim", "h_dim", "e_dim", "n_linears", "n_RNN",
                                    "rnn_type", "n_grains", "conditional", "classes")}
    return {"waveform": w, "latent": lat,
            "hparams": {"waveform": _jsonable(w_raw or w_hp),
                        "latent": _jsonable(l_raw or l_hp) if l_hp is not None else None}}


def _jsonable(d):
    return json.loads(json.dumps(dict(d), default=str))


# ------------------------------------------------------------------ loading sources

def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_yaml(path, what):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # yaml.dump of a tuple writes !!python/tuple; read it as a list, run nothing
    Loader.add_constructor("tag:yaml.org,2002:python/tuple",
                           lambda loader, node: loader.construct_sequence(node))
    try:
        with open(path) as f:
            d = yaml.load(f, Loader=Loader)
    except OSError as e:
        raise ConversionError(["%s: cannot read %s: %s" % (what, path, e)]) from None
    except yaml.YAMLError as e:
        raise ConversionError(["%s: %s is not valid YAML: %s" % (what, path, e)]) from None
    if not isinstance(d, dict):
        raise ConversionError(["%s: %s does not hold a mapping of hyper-parameters" % (what, path)])
    return d


def _read_ckpt(path, what):
    try:
        ck = lightning.load_checkpoint(path)
    except lightning.CheckpointError as e:
        raise ConversionError([str(e)], "%s checkpoint refused" % what) from None
    sd = ck.get("state_dict")
    if not isinstance(sd, dict):
        raise ConversionError(["%s: %s has no state_dict" % (what, path)])
    return ck, dict(sd)


def _merge_hparams(ck, yaml_hp):
    hp = dict(ck.get("hyper_parameters") or {})
    hp.update(yaml_hp or {})
    return hp


def load_sources(w_ckpt=None, w_yaml=None, l_ckpt=None, l_yaml=None, h_ckpt=None):
    files = collections.OrderedDict()
    if h_ckpt is not None:
        if w_yaml is None or l_yaml is None:
            raise ConversionError(["a hierarchical checkpoint needs both sub-model yaml files "
                                   "(--waveform-hparams and --latent-hparams)"])
        ck, sd = _read_ckpt(h_ckpt, "hierarchical")
        files[h_ckpt] = "hierarchical_checkpoint"
        w_sd = {k[len("w_model."):]: v for k, v in sd.items() if k.startswith("w_model.")}
        l_sd = {k[len("l_model."):]: v for k, v in sd.items() if k.startswith("l_model.")}
        other = [k for k in sd if not k.startswith(("w_model.", "l_model."))]
        if other:
            raise ConversionError(["hierarchical: unexpected key '%s' (neither w_model. nor "
                                   "l_model.)" % k for k in other])
        w_hp, l_hp = _read_yaml(w_yaml, "waveform"), _read_yaml(l_yaml, "latent")
        files[w_yaml], files[l_yaml] = "waveform_hparams", "latent_hparams"
        return Sources(w_sd, w_hp, l_sd, l_hp, files)
    if w_ckpt is None:
        raise ConversionError(["no waveform checkpoint given"])
    ck, w_sd = _read_ckpt(w_ckpt, "waveform")
    files[w_ckpt] = "waveform_checkpoint"
    w_hp = _merge_hparams(ck, _read_yaml(w_yaml, "waveform") if w_yaml else None)
    if w_yaml:
        files[w_yaml] = "waveform_hparams"
    l_sd = l_hp = None
    if l_ckpt is not None:
        ck, l_sd = _read_ckpt(l_ckpt, "latent")
        files[l_ckpt] = "latent_checkpoint"
        l_hp = _merge_hparams(ck, _read_yaml(l_yaml, "latent") if l_yaml else None)
        if l_yaml:
            files[l_yaml] = "latent_hparams"
    return Sources(w_sd, w_hp, l_sd, l_hp, files)


def prepare(src):
    """Validates everything, returns (w_hp, l_hp, folded tensors); raises ConversionError
    listing every problem."""
    w_hp, probs = check_waveform_hparams(src.w_hp)
    l_hp = None
    if src.l_sd is not None:
        l_hp, lp = check_latent_hparams(src.l_hp, None if probs else w_hp)
        probs += lp
    if probs:
        raise ConversionError(probs)
    probs = validate_waveform(src.w_sd, w_hp)
    if l_hp is not None:
        probs += validate_latent(src.l_sd, l_hp)
    if probs:
        raise ConversionError(probs)
    folded = fold_waveform(src.w_sd, w_hp)
    if l_hp is not None:
        folded.update(fold_latent(src.l_sd, l_hp))
    return w_hp, l_hp, folded


def convert(out, w_ckpt=None, w_yaml=None, l_ckpt=None, l_yaml=None, h_ckpt=None,
            dtype="fp32", src=None):
    if dtype not in ("fp32", "fp16"):
        raise ConversionError(["--dtype must be fp32 or fp16, found %r" % dtype])
    if src is None:
        src = load_sources(w_ckpt, w_yaml, l_ckpt, l_yaml, h_ckpt)
    w_hp, l_hp, folded = prepare(src)
    tensors = cast_tensors(folded, dtype)
    config = build_config(w_hp, l_hp, src.w_hp, src.l_hp)
    sources = {os.path.basename(p): {"sha256": _sha256(p), "role": r} for p, r in src.files.items()}
    meta = {"ngs.format": "ngs-model", "ngs.format_version": str(FORMAT_VERSION),
            "ngs.config": json.dumps(config), "ngs.converter_version": __version__,
            "ngs.weight_dtype": dtype, "ngs.sources": json.dumps(sources)}
    safetensors.save(out, tensors, meta)
    return tensors, meta, src


# ------------------------------------------------------------------ --check

def _err(ref, got):
    ref = ref.detach().double().reshape(-1)
    got = got.detach().double().reshape(-1)
    peak = float(ref.abs().max())
    max_rel = float((ref - got).abs().max()) / peak if peak > 0 else float((ref - got).abs().max())
    l2 = float((ref - got).norm() / ref.norm()) if float(ref.norm()) > 0 else float((ref - got).norm())
    return max_rel, l2


def check(src, tensors, config, seed=1234):
    """Reference on the original (unfolded) weights in float64 vs the converted tensors
    in float32. Returns [(stage, max_abs_err / max_abs_ref, relative L2)]."""
    import torch
    from . import folded as FO
    from . import rng
    w_hp, l_hp = config["waveform"], config["latent"]
    w = R.WaveformVAE.from_hparams(w_hp)
    w.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in src.w_sd.items()}, strict=True)
    w = w.double()
    m = FO.FoldedModel({k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}, config)
    N, L, hop = w_hp["n_grains"], w_hp["l_grain"], w_hp["hop_size"]
    r = np.random.default_rng(seed)
    audio = np.convolve(r.uniform(-1, 1, (N + 3) * hop + 15), np.hanning(16), "valid") * 0.3
    audio = audio.astype(np.float32)
    eps = rng.encoder_eps(seed, 0, 0, N, w_hp["z_dim"])
    rows = []
    a = R.encode(w, audio, eps)
    b = m.encode(audio, eps)
    for k in ("mu", "logvar", "z"):
        rows.append(("encoder " + k, *_err(a[k], b[k])))
    z = a["mu"].float().numpy()
    noise = rng.grain_noise(seed, 0, 0, N, L)
    a = R.decode(w, z, noise)
    b = m.decode(z, noise)
    rows.append(("decoder magnitudes", *_err(a["H"], m.magnitudes(z))))
    for k in ("spectrum", "grains", "ola", "audio"):
        rows.append(("decoder " + k, *_err(a[k], b[k])))
    rows.append(("decoder audio (authors' unfused path)",
                 *_err(R.decode_unfused(w, z, noise), b["audio"])))
    if l_hp is not None:
        l = R.LatentVAE.from_hparams(l_hp)
        l.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in src.l_sd.items()}, strict=True)
        l = l.double()
        e = rng.embedding_sample(seed, 0, l_hp["e_dim"])
        ci = 0 if n_conds(l_hp) else None
        za = R.latent_decode(l, e, ci)
        zb = m.latent_decode(e, ci)
        rows.append(("latent decode z", *_err(za, zb)))
        ea = R.latent_encode(l, za.float())
        eb = m.latent_encode(za.float())
        rows.append(("latent encode mu", *_err(ea["mu"], eb["mu"])))
        rows.append(("latent encode logvar", *_err(ea["logvar"], eb["logvar"])))
    return rows


def format_check(rows):
    lines = ["%-40s %14s %14s" % ("stage", "max rel err", "rel L2 err")]
    for name, mr, l2 in rows:
        lines.append("%-40s %14.3e %14.3e" % (name, mr, l2))
    lines.append("(max rel err = max |converted - original| / max |original| over the stage's "
                 "output; original = authors' module structure, unfolded, float64; converted = "
                 "the file's tensors, float32 arithmetic)")
    return "\n".join(lines)
