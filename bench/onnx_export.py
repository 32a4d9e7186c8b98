"""The authors' three networks as ONNX graphs (opset 17), exported with torch.onnx.export
from the reference modules (weights_converter/reference/model.py), and their check
against the float64 reference.

    /usr/bin/python3 bench/onnx_export.py --config drums22k --out DIR [--models build/bench-models]
        (export only: needs torch, not onnx/onnxruntime; bench/compare_ort.py also checks)

Library use (bench/compare_ort.py, tests/python/test_onnx_export.py):
    export_all(w, l, out_dir, n_decode) -> {graph name: path}   every graph and variant
    check_all(w, l, paths, ort, tol=TOL_F32) -> {graph name: (rel_l2, message or None)}
    session(ort, path, threads, spin=True) -> onnxruntime.InferenceSession
    TOL_F32: the repo's fp32 bound, read from tests/cpp/test_util.h (kTolF32)

Graphs (inputs -> outputs; n = grains, L = l_grain, hop = L / 4):
    enc              audio [(n+3)*hop] -> mu, logvar [n, z_dim]: grains gathered at hop,
                     ola windows, the authors' convolutions, linears, mu and logvar heads
    seq.rnn          e [e_dim] (+ cls int64 [] if conditional) -> z [n, z_dim]: decoder_e,
                     the embedding repeated n times into nn.LSTM/GRU (exported as the ONNX
                     LSTM/GRU op, as the authors compute it), decoder_z
    seq.unrolled     the same, the recurrence written out step by step (the first layer's
                     input projection once, since its input is the same at every step)
    dec<n>.dft       z [n, z_dim], noise [n, L] (uniform in [-1, 1), drawn by the caller)
                     -> audio [(n+3)*hop]: the authors' decode (decoder MLP, mod_sigmoid,
                     irfft of the magnitudes, filter window, fftshift, rfft of noise and
                     impulse response, product, irfft, ola windows, overlap-add, divisor,
                     the pp_chans-channel post-processing conv, softsign), every FFT an
                     ONNX DFT node (torch 1.13 cannot export torch.fft: a custom symbolic)
    dec<n>.matmul    the same with each FFT a product by an explicit DFT matrix
    dec<n>.fused-dft ngs' algebra (reference.decode, exact identities): the impulse
                     response's spectrum as a 3-tap stencil on the magnitudes, so 2 FFTs
                     per grain (rfft of the noise, irfft of the product) instead of 4, and
                     the post-processing conv's identical input channels summed into a
                     1-channel FIR (reference.folded_fir); FFTs as DFT nodes
    dec<n>.fused-dft-pairs  the same, two grains per complex DFT node (the real-input
                     DFT costs ORT as much as a complex one): grain 2j as the real part,
                     2j+1 as the imaginary part, split / joined by Hermitian symmetry
    dec<n>.fused-matmul  the fused algebra, the 2 FFTs as products by DFT matrices
"""
import argparse
import copy
import os
import re
import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from weights_converter import reference as R  # noqa: E402

OPSET = 17


def _read_tol_f32():
    """kTolF32 of tests/cpp/test_util.h: the tolerance table of docs/TESTING.md keeps the
    fp32 bound there (fp32 engine vs float64 golden, relative L2)."""
    path = os.path.join(ROOT, "tests", "cpp", "test_util.h")
    with open(path) as f:
        m = re.search(r"constexpr\s+double\s+kTolF32\s*=\s*([0-9.eE+-]+)\s*;", f.read())
    if m is None:
        raise RuntimeError(f"onnx_export: kTolF32 not found in {path}")
    return float(m.group(1))


TOL_F32 = _read_tol_f32()


# ---- DFT as an ONNX node ---------------------------------------------------------------

class _DFT(torch.autograd.Function):
    """ONNX DFT (opset 17) on x [b, N, 1] (real) or [b, N, 2] (complex), axis 1; eager
    forward by torch.fft (ifft includes the 1 / N, as ONNX's inverse DFT does)."""

    @staticmethod
    def forward(ctx, x, inverse, onesided):
        xc = x[..., 0] if x.shape[-1] == 1 else torch.complex(x[..., 0], x[..., 1])
        y = torch.fft.ifft(xc, dim=1) if inverse else torch.fft.fft(xc, dim=1)
        if onesided:
            y = y[:, : x.shape[1] // 2 + 1]
        return torch.view_as_real(y.resolve_conj()).contiguous()

    @staticmethod
    def symbolic(g, x, inverse, onesided):
        return g.op("DFT", x, axis_i=1, inverse_i=int(inverse), onesided_i=int(onesided))


def _cmul(a, b):
    """Complex product of [..., 2] tensors."""
    ar, ai, br, bi = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    return torch.stack([ar * br - ai * bi, ar * bi + ai * br], dim=-1)


class _FFTByDFT(nn.Module):
    """rfft / irfft of length L with ONNX DFT nodes."""

    def __init__(self, L):
        super().__init__()
        self.F = L // 2 + 1
        self.register_buffer("conj", torch.tensor([1.0, -1.0]), persistent=False)

    def _mirror(self, X):
        """Hermitian extension's tail: X[L - k] for k = F .. L-1 (a Slice with step -1)."""
        return X[:, 1:self.F - 1].flip(1)

    def irfft_real(self, H):
        """irfft of a real spectrum H [b, F] (zero imaginary parts) -> [b, L]."""
        full = torch.cat([H, self._mirror(H)], dim=1)
        return _DFT.apply(full.unsqueeze(-1), True, False)[..., 0]

    def rfft(self, x):
        """x [b, L] -> [b, F, 2]."""
        return _DFT.apply(x.unsqueeze(-1), False, True)

    def irfft(self, X):
        """X [b, F, 2] -> [b, L] (imaginary parts of bins 0 and F-1 ignored, as torch)."""
        full = torch.cat([X, self._mirror(X) * self.conj], dim=1)
        return _DFT.apply(full, True, False)[..., 0]


def _pairs_rfft(x):
    """rfft of the rows of x [b, L] (b even) two at a time: one complex DFT of
    x[0::2] + i x[1::2], split by Hermitian symmetry -> ([b/2, F, 2] even, odd rows)."""
    L = x.shape[1]
    F_ = L // 2 + 1
    Z = _DFT.apply(torch.stack([x[0::2], x[1::2]], dim=-1), False, False)   # [b/2, L, 2]
    Zf = Z[:, :F_]
    Zr = torch.cat([Z[:, :1], Z[:, F_ - 1:].flip(1)], dim=1)                # Z[(L - k) % L]
    a, b, c, d = Zf[..., 0], Zf[..., 1], Zr[..., 0], Zr[..., 1]
    even = torch.stack([0.5 * (a + c), 0.5 * (b - d)], dim=-1)
    odd = torch.stack([0.5 * (b + d), 0.5 * (c - a)], dim=-1)
    return even, odd


def _pairs_irfft(E, O, fft):
    """irfft of two sets of half spectra [b/2, F, 2] with one complex inverse DFT:
    real part = irfft(E), imaginary part = irfft(O). Returns [b, L], rows interleaved."""
    Ef = torch.cat([E, fft._mirror(E) * fft.conj], dim=1)
    Of = torch.cat([O, fft._mirror(O) * fft.conj], dim=1)
    C = torch.stack([Ef[..., 0] - Of[..., 1], Ef[..., 1] + Of[..., 0]], dim=-1)
    y = _DFT.apply(C, True, False)                                          # [b/2, L, 2]
    return y.transpose(1, 2).reshape(-1, y.shape[1])


class _FFTByMatmul(nn.Module):
    """rfft / irfft of length L as products with explicit DFT matrices (float64 -> fp32)."""

    def __init__(self, L):
        super().__init__()
        F_ = L // 2 + 1
        k = np.arange(F_)[:, None]
        t = np.arange(L)[None, :]
        ang = 2.0 * np.pi * ((k * t) % L) / L                      # [F, L], exact phase
        c = np.full((F_, 1), 2.0)
        c[0] = c[-1] = 1.0
        f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        self.register_buffer("icos", f32(c * np.cos(ang) / L), persistent=False)   # [F, L]
        self.register_buffer("isin", f32(c * np.sin(ang) / L), persistent=False)   # [F, L]
        self.register_buffer("fwd", f32(np.concatenate([np.cos(ang), -np.sin(ang)]).T),
                             persistent=False)                                      # [L, 2F]
        self.F = F_

    def irfft_real(self, H):
        return H @ self.icos

    def rfft(self, x):
        y = x @ self.fwd
        return torch.stack([y[:, : self.F], y[:, self.F:]], dim=-1)

    def irfft(self, X):
        return X[..., 0] @ self.icos - X[..., 1] @ self.isin


# ---- the graphs ------------------------------------------------------------------------

class EncoderGraph(nn.Module):
    """audio [(n+3)*hop] -> (mu, logvar) [n, z_dim], as reference.encode."""

    def __init__(self, w, n):
        super().__init__()
        L, hop = w.hparams["l_grain"], w.hparams["hop_size"]
        self.w, self.n = w, n
        idx = torch.arange(n)[:, None] * hop + torch.arange(L)[None, :]
        self.register_buffer("idx", idx, persistent=False)
        self.register_buffer("win", torch.as_tensor(R.ola_windows(n, L), dtype=torch.float32),
                             persistent=False)

    def forward(self, audio):
        w = self.w
        h = (audio[self.idx] * self.win).unsqueeze(1)
        for conv in w.encoder_convs:
            h = conv(h)
        h = w.encoder_linears(h.reshape(self.n, w.flatten_size))
        return w.mu(h), w.logvar(h)


def _rnn_layers(rnn):
    """[(W_ih, W_hh, b_ih, b_hh)] per layer of an nn.LSTM / nn.GRU."""
    return [tuple(getattr(rnn, f"{p}_l{i}") for p in ("weight_ih", "weight_hh", "bias_ih",
                                                      "bias_hh"))
            for i in range(rnn.num_layers)]


def _unrolled(rnn, x, n, lstm):
    """The recurrence of rnn (batch_first, one sequence, zero initial state) over n steps,
    written out; x [1, h] is the input of every step. Returns [n, h]."""
    seq = None
    for W_ih, W_hh, b_ih, b_hh in _rnn_layers(rnn):
        hd = W_hh.shape[1]
        if seq is None:  # first layer: the same input at every step
            xp = F.linear(x, W_ih, b_ih)                 # [1, G h]
            xps = [xp] * n
        else:
            xpall = F.linear(seq, W_ih, b_ih)            # [n, G h]
            xps = [xpall[t:t + 1] for t in range(n)]
        h = c = None
        out = []
        for t in range(n):
            if lstm:
                g = xps[t] + b_hh if h is None else xps[t] + F.linear(h, W_hh, b_hh)
                i, f, gg, o = g.split(hd, dim=1)
                i, f, o, gg = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(gg)
                c = i * gg if c is None else f * c + i * gg
                h = o * torch.tanh(c)
            else:
                gh = b_hh.unsqueeze(0) if h is None else F.linear(h, W_hh, b_hh)
                xr, xz, xn = xps[t].split(hd, dim=1)
                hr, hz, hn = gh.split(hd, dim=1)
                r = torch.sigmoid(xr + hr)
                z = torch.sigmoid(xz + hz)
                nn_ = torch.tanh(xn + r * hn)
                h = (1 - z) * nn_ if h is None else (1 - z) * nn_ + z * h
            out.append(h)
        seq = torch.cat(out, dim=0)
    return seq


class SeqDecodeGraph(nn.Module):
    """e [e_dim] (+ cls int64 scalar) -> z [n, z_dim], as reference.latent_decode."""

    def __init__(self, l, unrolled=False):
        super().__init__()
        self.l, self.unrolled = l, unrolled
        self.n = l.hparams["n_grains"]
        self.lstm = l.hparams["rnn_type"] == "LSTM"
        if l.n_conds > 0:
            self.register_buffer("eye", torch.eye(l.n_conds), persistent=False)

    def forward(self, e, cls=None):
        l, n = self.l, self.n
        x = e.reshape(1, -1)
        if l.n_conds > 0:
            oh = self.eye[cls].reshape(1, l.n_conds)
            x = torch.cat([x, oh], dim=1)
        h = l.decoder_e(x)                                        # [1, h]
        if self.unrolled:
            hs = _unrolled(l.decoder_rnn, h, n, self.lstm)        # [n, h]
        else:
            hs, _ = l.decoder_rnn(h.unsqueeze(1).repeat(1, n, 1))
            hs = hs[0]
        if l.n_conds > 0:
            hs = torch.cat([hs, oh.repeat(n, 1)], dim=1)
        return l.decoder_z(hs)


DECODER_VARIANTS = ("dft", "matmul", "fused-dft", "fused-dft-pairs", "fused-matmul")


class DecoderGraph(nn.Module):
    """(z [n, z_dim], noise [n, L]) -> audio [(n+3)*hop], as reference.decode_unfused."""

    def __init__(self, w, n, fft="dft"):
        super().__init__()
        hp = w.hparams
        L, hop = hp["l_grain"], hp["hop_size"]
        if L != 4 * hop:
            raise ValueError("decoder graph: hop_size must be l_grain / 4")
        self.w, self.n, self.L, self.hop, self.pp = w, n, L, hop, hp["pp_chans"]
        if fft not in DECODER_VARIANTS:
            raise ValueError(f"decoder graph: variant {fft!r} not in {DECODER_VARIANTS}")
        self.fused = fft.startswith("fused")
        self.pairs = fft == "fused-dft-pairs"
        self.fft = _FFTByMatmul(L) if fft.endswith("matmul") else _FFTByDFT(L)
        if self.fused:
            sign = torch.ones(L // 2 + 1)
            sign[1::2] = -1
            self.register_buffer("sign", sign, persistent=False)
            taps, bias = R.folded_fir(w)
            self.register_buffer("taps", taps.to(torch.float32).reshape(1, 1, -1),
                                 persistent=False)
            self.register_buffer("bias", bias.to(torch.float32), persistent=False)
            self.pad = int(taps.shape[-1]) // 2
        f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        self.register_buffer("fw", w.filter_window.detach().to(torch.float32).unsqueeze(0),
                             persistent=False)
        self.register_buffer("win", f32(R.ola_windows(n, L)), persistent=False)
        self.normalize = bool(hp["normalize_ola"])
        if self.normalize:
            self.register_buffer("div", f32(R.ola_divisor(n, L)), persistent=False)

    def forward(self, z, noise):
        w, n, L, hop = self.w, self.n, self.L, self.hop
        H = R.mod_sigmoid(w.decoder_linears(z))                   # [n, F]
        if self.fused:
            # rfft(fftshift(irfft(H) * filter window)) as a real 3-tap stencil on H
            # (reference.spectrum_from_magnitudes): 2 DFTs per grain instead of 4.
            Hm = torch.cat([H[:, 1:2], H[:, :-1]], dim=1)
            Hp = torch.cat([H[:, 1:], H[:, -2:-1]], dim=1)
            S = self.sign * (0.5 * H + 0.25 * Hm + 0.25 * Hp)
            if self.pairs:  # two real grains per complex DFT (n padded to even)
                pad = n % 2
                nz = F.pad(noise, (0, 0, 0, pad)) if pad else noise
                Sp = F.pad(S, (0, 0, 0, pad)) if pad else S
                E, O = _pairs_rfft(nz)
                y = _pairs_irfft(E * Sp[0::2].unsqueeze(-1), O * Sp[1::2].unsqueeze(-1),
                                 self.fft)[:n]
            else:
                y = self.fft.irfft(self.fft.rfft(noise) * S.unsqueeze(-1))
        else:
            ir = self.fft.irfft_real(H) * self.fw
            ir = torch.cat([ir[:, L // 2:], ir[:, : L // 2]], dim=1)  # fftshift
            y = self.fft.irfft(_cmul(self.fft.rfft(noise), self.fft.rfft(ir)))
        y = (y * self.win).reshape(n, 4, hop)
        # nn.Fold at hop L / 4: output block j is the sum of y[j - q, q], q = 0..3.
        a = sum(F.pad(y[:, q, :], (0, 0, q, 3 - q)) for q in range(4)).reshape(-1)
        if self.normalize:
            a = a / self.div
        if self.fused:  # the pp_chans identical input channels summed into one FIR
            return F.softsign(F.conv1d(a.reshape(1, 1, -1), self.taps, self.bias,
                                       padding=self.pad)).reshape(-1)
        return w.post_pro(a.reshape(1, 1, -1).repeat(1, self.pp, 1)).reshape(-1)


# ---- export ----------------------------------------------------------------------------

def _export(module, args, path, in_names, out_names):
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(module, args, tmp, opset_version=OPSET, input_names=in_names,
                          output_names=out_names, do_constant_folding=True)
    os.replace(tmp, path)
    return path


def example_inputs(w, l, n, seed=0):
    """Fresh random inputs of each graph (float32 numpy): dict graph kind -> dict."""
    hp = w.hparams
    L, hop, zd = hp["l_grain"], hp["hop_size"], hp["z_dim"]
    r = np.random.default_rng(seed)
    f32 = np.float32
    inp = {"enc": {"audio": (0.5 * r.standard_normal((hp["n_grains"] + 3) * hop)).astype(f32)},
           "dec": {"z": r.standard_normal((n, zd)).astype(f32),
                   "noise": (r.random((n, L), dtype=f32) * 2 - 1).astype(f32)}}
    if l is not None:
        s = {"e": r.standard_normal(l.hparams["e_dim"]).astype(f32)}
        if l.n_conds > 0:
            s["cls"] = np.array(int(r.integers(l.n_conds)), dtype=np.int64)
        inp["seq"] = s
    return inp


def export_all(w, l, out_dir, n_decode=(), fft_variants=DECODER_VARIANTS,
               seq_variants=("rnn", "unrolled")):
    """Exports enc, seq.* (if l), dec<n>.* for the training n_grains and each n of
    n_decode into out_dir; returns {graph name: path}."""
    os.makedirs(out_dir, exist_ok=True)
    w, l = w.float().eval(), (l.float().eval() if l is not None else None)
    N = w.hparams["n_grains"]
    inp = example_inputs(w, l, N)
    t = lambda d: {k: torch.from_numpy(np.asarray(v)) for k, v in d.items()}  # noqa: E731
    paths = {}
    paths["enc"] = _export(EncoderGraph(w, N), (t(inp["enc"])["audio"],),
                           os.path.join(out_dir, "enc.onnx"), ["audio"], ["mu", "logvar"])
    if l is not None:
        s = t(inp["seq"])
        args = (s["e"], s["cls"]) if l.n_conds > 0 else (s["e"],)
        names = ["e", "cls"] if l.n_conds > 0 else ["e"]
        for v in seq_variants:
            paths[f"seq.{v}"] = _export(SeqDecodeGraph(l, unrolled=(v == "unrolled")), args,
                                        os.path.join(out_dir, f"seq.{v}.onnx"), names, ["z"])
    for n in sorted({N, *n_decode}):
        d = t(example_inputs(w, l, n)["dec"])
        for v in fft_variants:
            paths[f"dec{n}.{v}"] = _export(DecoderGraph(w, n, v), (d["z"], d["noise"]),
                                           os.path.join(out_dir, f"dec{n}.{v}.onnx"),
                                           ["z", "noise"], ["audio"])
    return paths


# ---- check against the reference -------------------------------------------------------

def rel_l2(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def session(ort, path, threads=1, spin=True):
    """An ORT session: all graph optimisations, sequential execution, `threads` intra-op
    threads, one inter-op thread; spin=False stops idle pool threads from spinning."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def reference_outputs(w, l, name, inp):
    """The float64 reference's outputs of graph `name` on the float32 inputs inp."""
    kind = name.split(".")[0]
    if kind == "enc":
        r = R.encode(w, inp["audio"].astype(np.float64))
        return [r["mu"].numpy(), r["logvar"].numpy()]
    if kind == "seq":
        cls = int(inp["cls"]) if "cls" in inp else None
        return [R.latent_decode(l, inp["e"].astype(np.float64), cls).numpy()]
    return [R.decode_unfused(w, inp["z"].astype(np.float64),
                             inp["noise"].astype(np.float64)).numpy()]


def check_all(w, l, paths, ort, tol=None, seed=1):
    """Runs every exported graph on fresh random inputs and compares each output with the
    float64 reference (relative L2 <= tol, default TOL_F32). Returns {name: (worst
    rel_l2, None or the failure message)}."""
    tol = TOL_F32 if tol is None else tol
    w64 = copy.deepcopy(w).double().eval()
    l64 = copy.deepcopy(l).double().eval() if l is not None else None
    res = {}
    for name, path in paths.items():
        kind = name.split(".")[0]
        n = w.hparams["n_grains"] if kind in ("enc", "seq") else int(kind[3:])
        inp = example_inputs(w, l, n, seed)["dec" if kind.startswith("dec") else kind]
        try:
            got = session(ort, path).run(None, inp)
        except Exception as e:  # noqa: BLE001 - any ORT failure fails this graph
            res[name] = (float("nan"), f"{name}: onnxruntime failed: {e}".splitlines()[0])
            continue
        want = reference_outputs(w64, l64, name, inp)
        err = max(rel_l2(g, r) for g, r in zip(got, want))
        bad = [g.shape != r.shape for g, r in zip(got, want)]
        msg = None
        if any(bad):
            msg = f"{name}: output shapes {[g.shape for g in got]} != {[r.shape for r in want]}"
        elif not err <= tol:
            msg = f"{name}: relative L2 {err:.3g} from the float64 reference > {tol:g}"
        res[name] = (err, msg)
    return res


def main():
    sys.path.insert(0, HERE)
    import make_models
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="drums22k", choices=sorted(make_models.CONFIGS))
    ap.add_argument("--models", default="build/bench-models")
    ap.add_argument("--out", default="", help="default: <models>/<config>/onnx")
    a = ap.parse_args()
    make_models.make(a.models, a.config)
    w, l = make_models.load(a.models, a.config)
    out = a.out or os.path.join(a.models, a.config, "onnx")
    for name, p in export_all(w, l, out).items():
        print(f"{name}: {p}")


if __name__ == "__main__":
    main()
