"""PyTorch reference (the oracle) of the authors' two models, docs/MODEL_SPEC.md §4 and §5.

Module structure and state_dict keys are the authors' (`codes/models.py` of
adrienchaton/neural_granular_synthesis): an authors' `state_dict` loads with
`strict=True` into `WaveformVAE`, `LatentVAE`, and `HierarchicalVAE` (`w_model.`,
`l_model.` prefixes). Nothing is random inside: the grain noise, the encoder eps and the
embeddings are inputs (tensors or numpy arrays), supplied by `weights_converter.rng`.

Everything works on ONE sequence (no batch axis): z series are [n, z_dim], audio [T].
Modules are built in eval mode. Call `.double()` on a model to get a float64 oracle
(noise and eps are then used in float64; the goldens are made that way).

Waveform VAE (`w` a WaveformVAE):
    WaveformVAE(**hparams) / WaveformVAE.from_hparams(dict)
    encode(w, audio, eps=None)          -> dict mu, logvar, z  ([n, z_dim]); audio [(n+3)*hop]
    filter_magnitudes(w, z)             -> H [n, F]   (decoder MLP + mod_sigmoid)
    spectrum_from_magnitudes(H)         -> S [n, F]   (the fused identity, real)
    spectrum(w, z)                      -> S [n, F]   stage 1 of docs/MODEL_FORMAT.md
    grains(S, noise, g0, N)             -> [n, l_grain] stage 2 (windowed grains)
    overlap_add(grains, N, normalize)   -> [(N+3)*hop] OLA (divided by the count if normalize)
    post_process(w, ola)                -> final audio (FIR of post_pro, softsign)
    decode(w, z, noise)                 -> dict of every stage (fused path, 2 FFTs/grain)
    decode_unfused(w, z, noise)         -> audio by the authors' plain path: irfft -> window
                                           -> fftshift -> rfft, times rfft(noise), irfft
                                           (4 FFTs), stored ola_windows/divisor, nn.Fold
Latent VAE (`l` a LatentVAE):
    LatentVAE(**hparams) / LatentVAE.from_hparams(dict); l.n_conds
    latent_encode(l, z, eps=None)       -> dict mu, logvar, e ([e_dim])
    latent_decode(l, e, class_index=None, n_grains=None) -> z [n, z_dim]
Helpers: hann_periodic, ola_window(g, N, L), ola_windows(N, L), ola_divisor(N, L),
    filter_window(L), mod_sigmoid, sample_one_shot, preprocess (docs/MODEL_SPEC.md §6 without
    resampling), waveform_hparams_defaults.
"""
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.2


# ---------------------------------------------------------------- fixed tensors

def hann_periodic(L):
    """Periodic Hann window, float64 numpy: 0.5 - 0.5 cos(2 pi n / L)."""
    n = np.arange(L, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / L)


def filter_window(L):
    """fftshift(periodic Hann) = 0.5 + 0.5 cos(2 pi n / L), float64 numpy [L]."""
    n = np.arange(L, dtype=np.float64)
    return 0.5 + 0.5 * np.cos(2.0 * np.pi * n / L)


def ola_window(g, N, L):
    """Window of grain g of N: Hann, first half 1 if g == 0, second half 1 if g == N-1."""
    w = hann_periodic(L)
    if g == 0:
        w[: L // 2] = w[L // 2]
    if g == N - 1:
        w[L // 2:] = w[L // 2]
    return w


def ola_windows(N, L):
    """[N, L] float64 numpy, the authors' `ola_windows` for N grains."""
    return np.stack([ola_window(g, N, L) for g in range(N)])


def ola_divisor(N, L):
    """[(N+3)*L/4] float64 numpy: number of grains overlapping each sample."""
    hop = L // 4
    d = np.zeros((N + 3) * hop)
    for g in range(N):
        d[g * hop: g * hop + L] += 1.0
    return d


def mod_sigmoid(x):
    return 2 * torch.sigmoid(x) ** (math.log(10)) + 1e-7


# ---------------------------------------------------------------- authors' modules

class StrideConv(nn.Module):
    def __init__(self, kernel_size, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Sequential(nn.ReflectionPad1d(kernel_size // 2),
                                  nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride),
                                  nn.BatchNorm1d(out_channels), nn.LeakyReLU(LRELU_SLOPE))

    def forward(self, x):
        return self.conv(x)


class ResidualConv(nn.Module):
    def __init__(self, channels, n_blocks=3):
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.LeakyReLU(LRELU_SLOPE), nn.ReflectionPad1d(3 ** j),
                          nn.Conv1d(channels, channels, 3, dilation=3 ** j),
                          nn.BatchNorm1d(channels), nn.LeakyReLU(LRELU_SLOPE),
                          nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels))
            for j in range(n_blocks)])
        self.shortcuts = nn.ModuleList([
            nn.Sequential(nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels))
            for _ in range(n_blocks)])

    def forward(self, x):
        for block, shortcut in zip(self.blocks, self.shortcuts):
            x = shortcut(x) + block(x)
        return x


class LinearBlock(nn.Module):
    def __init__(self, in_size, out_size, norm="BN"):
        super().__init__()
        normm = nn.BatchNorm1d(out_size) if norm == "BN" else nn.LayerNorm(out_size)
        self.block = nn.Sequential(nn.Linear(in_size, out_size), normm, nn.LeakyReLU(LRELU_SLOPE))

    def forward(self, x):
        return self.block(x)


def _fixed(t):
    return nn.Parameter(torch.as_tensor(t, dtype=torch.float32), requires_grad=False)


class WaveformVAE(nn.Module):
    """The authors' `waveform_model` (grain VAE), state_dict-compatible."""

    def __init__(self, z_dim, h_dim, kernel_size, channels, n_convs, stride, n_linears,
                 n_grains, hop_size, normalize_ola, pp_chans, pp_ker, l_grain=2048, sr=16000,
                 learning_rate=1e-4, **_ignored):
        super().__init__()
        self.hparams = dict(z_dim=z_dim, h_dim=h_dim, kernel_size=kernel_size,
                            channels=channels, n_convs=n_convs, stride=stride,
                            n_linears=n_linears, n_grains=n_grains, hop_size=hop_size,
                            normalize_ola=bool(normalize_ola), pp_chans=pp_chans, pp_ker=pp_ker,
                            l_grain=l_grain, sr=sr, learning_rate=learning_rate)
        self.tar_l = int((n_grains + 3) / 4 * l_grain)
        self.filter_size = l_grain // 2 + 1
        self.filter_window = _fixed(torch.fft.fftshift(torch.hann_window(l_grain)))
        self.ola_windows = _fixed(ola_windows(n_grains, l_grain))
        self.slice_kernel = _fixed(torch.eye(l_grain).unsqueeze(1))
        if normalize_ola:
            self.ola_divisor = _fixed(ola_divisor(n_grains, l_grain))
        convs = [nn.Sequential(StrideConv(kernel_size, 1, channels, stride), ResidualConv(channels))]
        convs += [nn.Sequential(StrideConv(kernel_size, channels, channels, stride),
                                ResidualConv(channels)) for _ in range(1, n_convs)]
        self.encoder_convs = nn.ModuleList(convs)
        self.flatten_size = int(channels * l_grain / (stride ** n_convs))
        self.encoder_linears = nn.Sequential(LinearBlock(self.flatten_size, h_dim),
                                             LinearBlock(h_dim, z_dim))
        self.mu = nn.Linear(z_dim, z_dim)
        self.logvar = nn.Sequential(nn.Linear(z_dim, z_dim), nn.Hardtanh(-5.0, 5.0))
        dec = [LinearBlock(z_dim, h_dim)] + [LinearBlock(h_dim, h_dim) for _ in range(1, n_linears)]
        dec += [nn.Linear(h_dim, self.filter_size)]
        self.decoder_linears = nn.Sequential(*dec)
        self.post_pro = nn.Sequential(nn.Conv1d(pp_chans, 1, pp_ker, padding=pp_ker // 2),
                                      nn.Softsign())
        self.eval()

    @classmethod
    def from_hparams(cls, hp):
        return cls(**hp)

    # convenience wrappers
    def encode(self, audio, eps=None):
        return encode(self, audio, eps)

    def decode(self, z, noise):
        return decode(self, z, noise)["audio"]


class LatentVAE(nn.Module):
    """The authors' `latent_model` (sequence VAE), state_dict-compatible."""

    def __init__(self, e_dim, z_dim, h_dim, n_linears, rnn_type, n_RNN, n_grains, classes,
                 conditional, learning_rate=1e-4, **_ignored):
        super().__init__()
        self.hparams = dict(e_dim=e_dim, z_dim=z_dim, h_dim=h_dim, n_linears=n_linears,
                            rnn_type=rnn_type, n_RNN=n_RNN, n_grains=n_grains,
                            classes=list(classes), conditional=conditional,
                            learning_rate=learning_rate)
        self.n_conds = len(classes) if (conditional is True and len(classes) > 1) else 0
        if rnn_type not in ("GRU", "LSTM"):
            raise ValueError("rnn_type must be GRU or LSTM, got %r" % (rnn_type,))
        rnn = nn.GRU if rnn_type == "GRU" else nn.LSTM
        enc_z = [LinearBlock(z_dim, h_dim, "LN")] + [LinearBlock(h_dim, h_dim, "LN")
                                                     for _ in range(1, n_linears)]
        self.encoder_z = nn.Sequential(*enc_z)
        self.encoder_rnn = rnn(h_dim, h_dim, num_layers=n_RNN, batch_first=True)
        enc_e = [LinearBlock(h_dim, h_dim) for _ in range(1, n_linears)] + [LinearBlock(h_dim, e_dim)]
        self.encoder_e = nn.Sequential(*enc_e)
        self.mu = nn.Linear(e_dim, e_dim)
        self.logvar = nn.Sequential(nn.Linear(e_dim, e_dim), nn.Hardtanh(-5.0, 5.0))
        dec_e = [LinearBlock(e_dim + self.n_conds, h_dim)] + [LinearBlock(h_dim, h_dim)
                                                             for _ in range(1, n_linears)]
        self.decoder_e = nn.Sequential(*dec_e)
        self.decoder_rnn = rnn(h_dim, h_dim, num_layers=n_RNN, batch_first=True)
        dec_z = [LinearBlock(h_dim + self.n_conds, h_dim, "LN")]
        dec_z += [LinearBlock(h_dim, h_dim, "LN") for _ in range(1, n_linears)]
        dec_z += [nn.Linear(h_dim, z_dim)]
        self.decoder_z = nn.Sequential(*dec_z)
        self.eval()

    @classmethod
    def from_hparams(cls, hp):
        return cls(**hp)


class HierarchicalVAE(nn.Module):
    """The authors' fine-tuned `hierarchical_model`: keys `w_model.*`, `l_model.*`."""

    def __init__(self, w_hparams, l_hparams):
        super().__init__()
        self.w_model = WaveformVAE.from_hparams(w_hparams)
        self.l_model = LatentVAE.from_hparams(l_hparams)
        self.eval()


# ---------------------------------------------------------------- waveform functions

def _dt(model):
    return model.mu.weight.dtype


def _as(x, model):
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(_dt(model))


def _windows_for(w, N):
    if N == w.hparams["n_grains"]:
        return w.ola_windows.to(_dt(w))
    return torch.as_tensor(ola_windows(N, w.hparams["l_grain"]), dtype=_dt(w))


@torch.no_grad()
def encode(w, audio, eps=None):
    """Encode audio [(n+3)*hop] into n grain latents: dict mu, logvar, z ([n, z_dim]).
    z = mu + eps * exp(0.5 * logvar) if eps [n, z_dim] is given, else z = mu."""
    L, hop = w.hparams["l_grain"], w.hparams["hop_size"]
    x = _as(audio, w).reshape(-1)
    if x.numel() < L or (x.numel() - L) % hop:
        raise ValueError("encoder input length %d is not (n+3)*hop" % x.numel())
    g = x.unfold(0, L, hop)  # [n, L], what the slice_kernel conv computes
    n = g.shape[0]
    h = (g * _windows_for(w, n)).unsqueeze(1)
    for conv in w.encoder_convs:
        h = conv(h)
    h = h.reshape(n, w.flatten_size)
    h = w.encoder_linears(h)
    mu = w.mu(h)
    logvar = w.logvar(h)
    z = mu if eps is None else mu + _as(eps, w) * torch.exp(0.5 * logvar)
    return {"mu": mu, "logvar": logvar, "z": z}


@torch.no_grad()
def filter_magnitudes(w, z):
    return mod_sigmoid(w.decoder_linears(_as(z, w)))


def spectrum_from_magnitudes(H):
    """S[k] = (-1)^k (0.5 H[k] + 0.25 H[k-1] + 0.25 H[k+1]), H[-1] = H[1], H[F] = H[F-2]."""
    Hm = torch.cat([H[..., 1:2], H[..., :-1]], dim=-1)   # H[k-1]
    Hp = torch.cat([H[..., 1:], H[..., -2:-1]], dim=-1)  # H[k+1]
    sign = torch.ones(H.shape[-1], dtype=H.dtype)
    sign[1::2] = -1
    return sign * (0.5 * H + 0.25 * Hm + 0.25 * Hp)


@torch.no_grad()
def spectrum(w, z):
    return spectrum_from_magnitudes(filter_magnitudes(w, z))


@torch.no_grad()
def grains(S, noise, g0, N):
    """Windowed grains g0 .. g0+n-1 of N: irfft(rfft(noise) * S) * ola_window(g, N)."""
    noise = torch.as_tensor(np.asarray(noise) if not torch.is_tensor(noise) else noise).to(S.dtype)
    L = noise.shape[-1]
    y = torch.fft.irfft(torch.fft.rfft(noise, dim=-1) * S, n=L, dim=-1)
    win = torch.as_tensor(np.stack([ola_window(g0 + i, N, L) for i in range(S.shape[0])]),
                          dtype=S.dtype)
    return y * win


@torch.no_grad()
def overlap_add(gr, N, normalize):
    """Sum of N windowed grains [N, L] at hop L/4, divided by the overlap count if normalize."""
    n, L = gr.shape
    hop = L // 4
    out = torch.zeros((N + 3) * hop, dtype=gr.dtype)
    for g in range(n):
        out[g * hop: g * hop + L] += gr[g]
    if normalize:
        out = out / torch.as_tensor(ola_divisor(N, L), dtype=gr.dtype)
    return out


def folded_fir(w):
    """post_pro.0 as one FIR: taps [pp_ker] (weight summed over input channels), bias [1]."""
    return w.post_pro[0].weight.detach().sum(dim=1)[0], w.post_pro[0].bias.detach()


@torch.no_grad()
def post_process(w, ola):
    """The authors' post_pro on the signal repeated over pp_chans channels."""
    x = _as(ola, w).reshape(1, 1, -1).repeat(1, w.hparams["pp_chans"], 1)
    return w.post_pro(x).reshape(-1)


@torch.no_grad()
def decode(w, z, noise, g0=0, N=None):
    """Fused decode of a whole series (g0 = 0, N = n): dict z, H, spectrum, noise, grains,
    ola, audio."""
    z = _as(z, w)
    n = z.shape[0]
    N = n if N is None else N
    H = filter_magnitudes(w, z)
    S = spectrum_from_magnitudes(H)
    gr = grains(S, _as(noise, w), g0, N)
    ola = overlap_add(gr, N, w.hparams["normalize_ola"])
    return {"z": z, "H": H, "spectrum": S, "noise": _as(noise, w), "grains": gr, "ola": ola,
            "audio": post_process(w, ola)}


@torch.no_grad()
def decode_unfused(w, z, noise):
    """The authors' decode, step by step (4 FFTs per grain, stored windows, nn.Fold)."""
    z = _as(z, w)
    n = z.shape[0]
    L, hop = w.hparams["l_grain"], w.hparams["hop_size"]
    H = mod_sigmoid(w.decoder_linears(z))
    Hc = torch.complex(H, torch.zeros_like(H))
    ir = torch.fft.irfft(Hc) * w.filter_window.to(H.dtype).unsqueeze(0)
    ir = torch.fft.fftshift(ir, dim=-1)
    y = torch.fft.irfft(torch.fft.rfft(_as(noise, w), dim=1) * torch.fft.rfft(ir, dim=1))
    y = y * _windows_for(w, n)
    tar_l = (n + 3) * hop
    fold = nn.Fold((tar_l, 1), (L, 1), stride=(hop, 1))
    a = fold(y.t().unsqueeze(0)).reshape(-1)
    if w.hparams["normalize_ola"]:
        div = (w.ola_divisor.to(H.dtype) if n == w.hparams["n_grains"]
               else torch.as_tensor(ola_divisor(n, L), dtype=H.dtype))
        a = a / div
    return w.post_pro(a.reshape(1, 1, -1).repeat(1, w.hparams["pp_chans"], 1)).reshape(-1)


# ---------------------------------------------------------------- latent functions

@torch.no_grad()
def latent_encode(l, z, eps=None):
    """Encode a z series [n, z_dim]: dict mu, logvar, e ([e_dim]); e = mu without eps."""
    h = l.encoder_z(_as(z, l).unsqueeze(0))
    _, h_n = l.encoder_rnn(h)
    if l.hparams["rnn_type"] == "LSTM":
        h_n = h_n[0]
    h = l.encoder_e(h_n[-1])
    mu = l.mu(h)[0]
    logvar = l.logvar(h)[0]
    e = mu if eps is None else mu + _as(eps, l) * torch.exp(0.5 * logvar)
    return {"mu": mu, "logvar": logvar, "e": e}


@torch.no_grad()
def latent_decode(l, e, class_index=None, n_grains=None):
    """Decode an embedding [e_dim] (class_index required iff l.n_conds > 0) into a z
    series [n_grains, z_dim] (default: the training n_grains)."""
    n = l.hparams["n_grains"] if n_grains is None else n_grains
    x = _as(e, l).reshape(1, -1)
    if l.n_conds > 0:
        if class_index is None or not 0 <= class_index < l.n_conds:
            raise ValueError("class_index must be in [0, %d)" % l.n_conds)
        oh = F.one_hot(torch.tensor([class_index]), l.n_conds).to(x.dtype)
        x = torch.cat([x, oh], dim=1)
    h = l.decoder_e(x)
    h = h.unsqueeze(1).repeat(1, n, 1).contiguous()
    h, _ = l.decoder_rnn(h)
    if l.n_conds > 0:
        h = torch.cat([h, oh.unsqueeze(1).repeat(1, n, 1)], dim=2)
    return l.decoder_z(h)[0]


# ---------------------------------------------------------------- composite processes

@torch.no_grad()
def sample_one_shot(w, l, seed, class_index=None, temperature=1.0, sequence=0, n_grains=None):
    """ngs_sample for one sound: e = T * normals(domain 3, sequence), z = latent_decode,
    audio = decode with the noise of `sequence`. Returns dict e, z, audio."""
    from .. import rng
    e = rng.embedding_sample(seed, sequence, l.hparams["e_dim"], temperature)
    z = latent_decode(l, e, class_index, n_grains)
    noise = rng.grain_noise(seed, sequence, 0, z.shape[0], w.hparams["l_grain"])
    return {"e": _as(e, l), "z": z, "audio": decode(w, z, noise)["audio"]}


def biquad_highpass_coeffs(sr, cutoff=50.0, Q=0.707):
    """RBJ cookbook high-pass, normalised by a0: (b0, b1, b2, a1, a2), float64."""
    w0 = 2.0 * math.pi * cutoff / sr
    alpha = math.sin(w0) / (2.0 * Q)
    c = math.cos(w0)
    b0, b1, b2 = (1 + c) / 2, -(1 + c), (1 + c) / 2
    a0, a1, a2 = 1 + alpha, -2 * c, 1 - alpha
    return b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0


def preprocess(audio, sr, normalize=False):
    """docs/MODEL_SPEC.md §6 without resampling/cropping (ngs_preprocess), float64 numpy:
    subtract the mean, 50 Hz RBJ high-pass biquad (Q 0.707, direct form I, no clamping),
    peak-normalise to 0.9 if the peak >= 1 or normalize."""
    x = np.asarray(audio, dtype=np.float64)
    x = x - x.mean()
    b0, b1, b2, a1, a2 = biquad_highpass_coeffs(sr)
    y = np.empty_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for i in range(len(x)):
        v = b0 * x[i] + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2, x1 = x1, x[i]
        y2, y1 = y1, v
        y[i] = v
    peak = np.max(np.abs(y)) if len(y) else 0.0
    if peak > 0 and (peak >= 1.0 or normalize):
        y = y * (0.9 / peak)
    return y
