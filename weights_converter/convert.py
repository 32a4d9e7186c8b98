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
# Sane ranges, checked before any arithmetic on the values (a checkpoint's hparams are
# untrusted: stride 10^6 with n_convs 10^9 must not compute stride**n_convs).
W_RANGES = {"z_dim": (1, 4096), "h_dim": (1, 16384), "kernel_size": (1, 1023),
            "channels": (1, 4096), "n_convs": (1, 16), "stride": (1, 64), "n_linears": (1, 64),
            "n_grains": (1, 1 << 20), "hop_size": (1, 1 << 18), "pp_chans": (1, 4096),
            "pp_ker": (1, 8191), "l_grain": (1, 1 << 20), "sr": (1000, 768000)}
L_RANGES = {"e_dim": (1, 4096), "z_dim": (1, 4096), "h_dim": (1, 16384), "n_linears": (1, 64),
            "n_RNN": (1, 64), "n_grains": (1, 1 << 20)}
MAX_CLASSES = 4096
MAX_CLASS_NAME = 256
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


def _show(v, n=80):
    """A short repr of an untrusted value (never the 5,000-digit int or the 2 GB list)."""
    if _is_int(v) and abs(v) >= 10 ** 30:
        return "an integer of about %d bits" % v.bit_length()
    if isinstance(v, (list, tuple, dict, set)) and len(v) > 20:
        return "a %s of %d items" % (type(v).__name__, len(v))
    try:
        r = repr(v)
    except Exception:  # noqa: BLE001  an untrusted value whose repr fails or recurses
        r = "<%s>" % type(v).__name__
    return r if len(r) <= n else r[:n] + "..."


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
                probs.append("waveform hparams: normalize_ola must be true/false, found %s" % _show(hp[k]))
        elif not _is_int(hp[k]) or not W_RANGES[k][0] <= hp[k] <= W_RANGES[k][1]:
            probs.append("waveform hparams: '%s' must be an integer in [%d, %d], found %s"
                         % ((k,) + W_RANGES[k] + (_show(hp[k]),)))
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
    for k, (lo, hi) in L_RANGES.items():
        if not _is_int(hp[k]) or not lo <= hp[k] <= hi:
            probs.append("latent hparams: '%s' must be an integer in [%d, %d], found %s"
                         % (k, lo, hi, _show(hp[k])))
    if not (type(hp["rnn_type"]) is str and hp["rnn_type"] in ("GRU", "LSTM")):
        probs.append("latent hparams: rnn_type must be GRU or LSTM, found %s" % _show(hp["rnn_type"]))
    if not isinstance(hp["conditional"], bool):
        probs.append("latent hparams: conditional must be true/false, found %s" % _show(hp["conditional"]))
    cl = hp["classes"]
    if (not isinstance(cl, (list, tuple)) or len(cl) > MAX_CLASSES
            or not all(type(c) is str and 0 < len(c) <= MAX_CLASS_NAME for c in cl)):
        probs.append("latent hparams: classes must be a list of at most %d names of 1 to %d "
                     "characters, found %s" % (MAX_CLASSES, MAX_CLASS_NAME, _show(cl)))
    else:
        hp["classes"] = list(cl)
    if w_hp is not None:
        for k in ("z_dim", "n_grains"):
            if _is_int(hp[k]) and hp[k] != w_hp.get(k):
                probs.append("latent hparams: %s = %s differs from the waveform model's %s"
                             % (k, _show(hp[k]), _show(w_hp.get(k))))
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
    # built only for a stored tensor of the right shape, so their size is bounded by the file
    want = {"filter_window": ((L,), lambda: R.filter_window(L)),
            "ola_windows": ((N, L), lambda: R.ola_windows(N, L))}
    if hp["normalize_ola"]:
        want["ola_divisor"] = (((N + 3) * L // 4,), lambda: R.ola_divisor(N, L))
    for k, (shape, make) in want.items():
        v = sd.get(k)
        if isinstance(v, np.ndarray) and v.shape == shape and v.dtype.type in FLOAT_DTYPES:
            err = float(np.max(np.abs(v.astype(np.float64) - make())))
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
    """The source hyper-parameters as JSON values: keys become strings, numpy values plain
    numbers, non-finite floats and anything else strings (the input is bounded in depth
    and size by the readers)."""
    def conv(v):
        if isinstance(v, np.generic):
            v = v.item()
        if v is None or isinstance(v, (bool, str)) or _is_int(v):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else str(v)
        if isinstance(v, dict):
            return {k if isinstance(k, str) else str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, np.ndarray) and v.size <= 64:
            return conv(v.tolist())
        return str(v)
    return conv(dict(d))


# ------------------------------------------------------------------ loading sources

def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


YAML_LIMITS = dict(bytes=1 << 20, depth=64, nodes=100_000, aliases=1000, int_digits=30)


class _YamlLimit(Exception):
    pass


def _yaml_loader_class():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader with bounds: nesting depth, aliases, expanded node count (a
        'billion laughs' is refused before anything is constructed), no recursive
        aliases, integers of at most YAML_LIMITS['int_digits'] digits."""

        def __init__(self, stream):
            super().__init__(stream)
            self._depth, self._aliases, self._open = 0, 0, []

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                ev = self.peek_event()
                self._aliases += 1
                if self._aliases > YAML_LIMITS["aliases"]:
                    raise _YamlLimit("more than %d aliases" % YAML_LIMITS["aliases"])
                if ev.anchor in self._open:
                    raise _YamlLimit("a recursive alias (*%s inside &%s)" % (ev.anchor, ev.anchor))
                return super().compose_node(parent, index)
            self._depth += 1
            if self._depth > YAML_LIMITS["depth"]:
                raise _YamlLimit("nesting deeper than %d" % YAML_LIMITS["depth"])
            anchor = getattr(self.peek_event(), "anchor", None)
            self._open.append(anchor)
            try:
                return super().compose_node(parent, index)
            finally:
                self._open.pop()
                self._depth -= 1

        def construct_yaml_int(self, node):
            digits = sum(c.isalnum() for c in str(node.value).lower().lstrip("+-")
                         .replace("0x", "", 1).replace("0o", "", 1).replace("0b", "", 1))
            if digits > YAML_LIMITS["int_digits"]:
                raise _YamlLimit("an integer of %d digits" % digits)
            return super().construct_yaml_int(node)

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    # yaml.dump of a tuple writes !!python/tuple; read it as a list, run nothing
    Loader.add_constructor("tag:yaml.org,2002:python/tuple",
                           lambda loader, node: loader.construct_sequence(node))
    return Loader


def _yaml_expanded_size(root):
    """Nodes of the composed document with every alias expanded (iterative, memoised)."""
    import yaml
    size, stack = {}, [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = 1
            continue
        kids = ([x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode)
                else list(node.value))
        if ready:
            size[id(node)] = 1 + sum(size[id(k)] for k in kids)
            if size[id(node)] > YAML_LIMITS["nodes"]:
                return size[id(node)]
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in size)
    return size[id(root)]


def _read_yaml(path, what):
    import yaml
    try:
        with open(path, "rb") as f:
            raw = f.read(YAML_LIMITS["bytes"] + 1)
    except OSError as e:
        raise ConversionError(["%s: cannot read %s: %s" % (what, path, e.strerror or e)]) from None
    if len(raw) > YAML_LIMITS["bytes"]:
        raise ConversionError(["%s: %s is larger than %d bytes, not an hparams file"
                               % (what, path, YAML_LIMITS["bytes"])])
    try:
        loader = _yaml_loader_class()(raw.decode("utf-8"))
        try:
            node = loader.get_single_node()
            if node is not None:
                n = _yaml_expanded_size(node)
                if n > YAML_LIMITS["nodes"]:
                    raise _YamlLimit("more than %d values once its aliases are expanded"
                                     % YAML_LIMITS["nodes"])
            d = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _YamlLimit as e:
        raise ConversionError(["%s: %s refused: %s" % (what, path, e)]) from None
    except UnicodeDecodeError:
        raise ConversionError(["%s: %s is not UTF-8 text" % (what, path)]) from None
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())
        raise ConversionError(["%s: %s is not valid YAML: %s" % (what, path, msg[:300])]) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        raise ConversionError(["%s: %s is not a usable hparams file (%s)"
                               % (what, path, type(e).__name__)]) from None
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
    bad = [k for k in sd if type(k) is not str]
    if bad:
        raise ConversionError(["%s: %s has a state_dict key that is not a string: %s"
                               % (what, path, _show(bad[0]))])
    return ck, dict(sd)


def _merge_hparams(ck, yaml_hp, what, path):
    hp = ck.get("hyper_parameters")
    if hp is None:
        hp = {}
    if not isinstance(hp, dict):
        raise ConversionError(["%s: %s: hyper_parameters is a %s, not a mapping"
                               % (what, path, type(hp).__name__)])
    hp = dict(hp)
    hp.update(yaml_hp or {})
    return hp


class _Problems:
    """Collects the ConversionErrors of several inputs, so all are reported at once."""

    def __init__(self):
        self.problems = []

    def run(self, fn, *args):
        try:
            return fn(*args)
        except ConversionError as e:
            self.problems += e.problems
            return None

    def raise_if_any(self):
        if self.problems:
            raise ConversionError(self.problems)


def load_sources(w_ckpt=None, w_yaml=None, l_ckpt=None, l_yaml=None, h_ckpt=None):
    """Reads every input; the problems of all of them are reported together."""
    files = collections.OrderedDict()
    P = _Problems()
    if h_ckpt is not None:
        if w_yaml is None or l_yaml is None:
            raise ConversionError(["a hierarchical checkpoint needs both sub-model yaml files "
                                   "(--waveform-hparams and --latent-hparams)"])
        r = P.run(_read_ckpt, h_ckpt, "hierarchical")
        w_hp = P.run(_read_yaml, w_yaml, "waveform")
        l_hp = P.run(_read_yaml, l_yaml, "latent")
        P.raise_if_any()
        ck, sd = r
        files[h_ckpt] = "hierarchical_checkpoint"
        w_sd = {k[len("w_model."):]: v for k, v in sd.items() if k.startswith("w_model.")}
        l_sd = {k[len("l_model."):]: v for k, v in sd.items() if k.startswith("l_model.")}
        other = [k for k in sd if not k.startswith(("w_model.", "l_model."))]
        if other:
            raise ConversionError(["hierarchical: unexpected key '%s' (neither w_model. nor "
                                   "l_model.)" % k for k in other])
        files[w_yaml], files[l_yaml] = "waveform_hparams", "latent_hparams"
        return Sources(w_sd, w_hp, l_sd, l_hp, files)
    if w_ckpt is None:
        raise ConversionError(["no waveform checkpoint given"])
    wr = P.run(_read_ckpt, w_ckpt, "waveform")
    wy = P.run(_read_yaml, w_yaml, "waveform") if w_yaml else None
    lr = ly = None
    if l_ckpt is not None:
        lr = P.run(_read_ckpt, l_ckpt, "latent")
        ly = P.run(_read_yaml, l_yaml, "latent") if l_yaml else None
    w_hp = P.run(_merge_hparams, wr[0], wy, "waveform", w_ckpt) if wr else None
    l_hp = P.run(_merge_hparams, lr[0], ly, "latent", l_ckpt) if lr else None
    P.raise_if_any()
    files[w_ckpt] = "waveform_checkpoint"
    if w_yaml:
        files[w_yaml] = "waveform_hparams"
    l_sd = None
    if l_ckpt is not None:
        l_sd = lr[1]
        files[l_ckpt] = "latent_checkpoint"
        if l_yaml:
            files[l_yaml] = "latent_hparams"
    return Sources(wr[1], w_hp, l_sd, l_hp, files)


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


def check_output_path(out, inputs):
    """Refuses an output path that is one of the inputs (same resolved path, or the same
    file through another name: a hard or symbolic link), or a folder."""
    out = os.fspath(out)
    probs = []
    for p in inputs:
        p = os.fspath(p)
        same = os.path.realpath(p) == os.path.realpath(out)
        if not same:
            try:
                same = os.path.samefile(p, out)
            except OSError:
                pass
        if same:
            probs.append("the output %s is the input %s: refusing to overwrite an input" % (out, p))
    if not probs and os.path.isdir(out):
        probs.append("the output %s is a folder" % out)
    if probs:
        raise ConversionError(probs)


def convert(out, w_ckpt=None, w_yaml=None, l_ckpt=None, l_yaml=None, h_ckpt=None,
            dtype="fp32", src=None):
    if dtype not in ("fp32", "fp16"):
        raise ConversionError(["--dtype must be fp32 or fp16, found %r" % dtype])
    check_output_path(out, [p for p in (w_ckpt, w_yaml, l_ckpt, l_yaml, h_ckpt) if p is not None]
                      + (list(src.files) if src is not None else []))
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
