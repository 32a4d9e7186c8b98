"""Training losses of the grain VAE (no torchaudio needed).

* `SpectralDistance`: the paper's multi-scale spectral distance, as in the authors'
  `spectral_distances`: for each STFT size, the mean absolute difference of linear STFT
  magnitudes (Hann window, hop size/4, centred with reflection padding, power 1), and for
  each mel size the same on mel magnitudes (HTK mel scale, f_min 50 Hz, n_fft/4 bands, no
  band normalisation); with `log_weight > 0` each term also adds `log_weight *
  mean|log(S_x + eps) - log(S_y + eps)|`. The sum is divided by the number of terms
  (a log term counts `log_weight`), as the authors do. `log_floor_db = None`: eps =
  1e-7 (the first bundled model; against zero-padded targets the term is dominated by
  the output's failure to reach -140 dB in the target's digital silence). A number:
  both magnitudes are floored at the target's largest magnitude (per example and
  scale) times 10^(log_floor_db / 20) instead, so output below that floor in the
  target's silence costs nothing and the term measures dB differences of the audible
  part only.
* `kld(mu, logvar)`: KL(N(mu, exp logvar) || N(0, 1)), summed over latent dims, averaged
  over the rows.
* `BetaWarmup`: beta = 0 for the first `start` fraction of the steps, then linear up to
  `target` at the `end` fraction, then constant (the authors ramp in 1000 steps from 10 %
  to 60 % of max_steps).
"""
import math

import numpy as np
import torch


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft, n_mels, sr, f_min=50.0, f_max=None):
    """[n_fft//2 + 1, n_mels] triangular HTK mel filters (torchaudio melscale_fbanks,
    norm None, mel_scale 'htk')."""
    f_max = sr / 2.0 if f_max is None else f_max
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    m_pts = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    f_pts = mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    return torch.from_numpy(fb.astype(np.float32))


def stft_mag(x, n_fft):
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    s = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, center=True,
                   pad_mode="reflect", return_complex=True)
    return s.abs()  # [B, n_fft//2+1, frames]


class SpectralDistance(torch.nn.Module):
    def __init__(self, sr, stft_scales=(2048, 1024, 512, 256, 128), mel_scales=(2048, 1024),
                 log_weight=1.0, f_min=50.0, log_floor_db=None):
        super().__init__()
        self.log_floor_db = log_floor_db
        self.stft_scales = list(stft_scales)
        self.mel_scales = list(mel_scales)
        self.log_weight = float(log_weight)
        for s in self.mel_scales:
            self.register_buffer("mel_%d" % s, mel_filterbank(s, s // 4, sr, f_min))

    def _term(self, a, b):
        d = (a - b).abs().mean()
        n = 1.0
        if self.log_weight > 0:
            if self.log_floor_db is None:
                la, lb = torch.log(a + 1e-7), torch.log(b + 1e-7)
            else:
                fl = b.detach().flatten(1).max(dim=1).values * 10 ** (self.log_floor_db / 20.0)
                fl = fl.clamp_min(1e-12).reshape(-1, *([1] * (b.dim() - 1)))
                la, lb = torch.log(torch.maximum(a, fl)), torch.log(torch.maximum(b, fl))
            d = d + self.log_weight * (la - lb).abs().mean()
            n += self.log_weight
        return d, n

    def forward(self, x, y):
        """x, y [B, T]: output and target. Returns the scalar distance."""
        total, count = 0.0, 0.0
        cache = {}
        for s in sorted(set(self.stft_scales) | set(self.mel_scales)):
            cache[s] = (stft_mag(x, s), stft_mag(y, s))
        for s in self.stft_scales:
            d, n = self._term(*cache[s])
            total, count = total + d, count + n
        for s in self.mel_scales:
            fb = getattr(self, "mel_%d" % s)
            sx, sy = cache[s]
            mx = torch.matmul(sx.transpose(1, 2), fb)
            my = torch.matmul(sy.transpose(1, 2), fb)
            d, n = self._term(mx, my)
            total, count = total + d, count + n
        return total / count


def kld(mu, logvar):
    mu = mu.reshape(mu.shape[0], -1)
    logvar = logvar.reshape(logvar.shape[0], -1)
    return torch.mean(-0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))


class BetaWarmup:
    def __init__(self, target, max_steps, start=0.1, end=0.6):
        self.target, self.max_steps = float(target), int(max_steps)
        self.start, self.end = start, end

    def __call__(self, step):
        a, b = self.start * self.max_steps, self.end * self.max_steps
        if step < a:
            return 0.0
        if step >= b:
            return self.target
        return self.target * (step - a) / max(1.0, b - a)


def log_spectral_distance(x, y, n_fft=1024, eps=1e-7):
    """Log-spectral distance in dB between two batches of signals [B, T] (numpy or
    torch): per frame sqrt(mean_k (20 log10 |X| - 20 log10 |Y|)^2), averaged over frames
    whose target energy is within 60 dB of the sample's loudest frame. Returns [B]."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(np.asarray(y, dtype=np.float32))
    sx, sy = stft_mag(x, n_fft), stft_mag(y, n_fft)
    lx = 20.0 * torch.log10(sx + eps)
    ly = 20.0 * torch.log10(sy + eps)
    per_frame = torch.sqrt(((lx - ly) ** 2).mean(dim=1))  # [B, frames]
    energy = 10.0 * torch.log10((sy ** 2).sum(dim=1) + 1e-12)
    mask = energy >= energy.max(dim=1, keepdim=True).values - 60.0
    return ((per_frame * mask).sum(dim=1) / mask.sum(dim=1)).numpy()
