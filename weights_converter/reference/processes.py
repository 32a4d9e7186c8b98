"""References of the composite processes of docs/PROCESSES.md (float64 numpy over the
oracle of weights_converter.reference.model); the golden fixtures are made with them.

    resynthesize(w, audio, seed, segment_grains=0, crossfade=0)   ngs_resynthesize
    render_loop(w, l, events, loop_length, seed, temperature=1.0) ngs_render_loop
    sample_interpolation(w, l, seed, class_index, temperature, steps)
                                                                  ngs_sample_interpolation
"""
import math

import numpy as np
import torch

from .. import rng
from . import model as R


def _np(t):
    return t.detach().double().numpy() if torch.is_tensor(t) else np.asarray(t, dtype=np.float64)


def resynthesize(w, audio, seed, segment_grains=0, crossfade=0):
    """ngs_resynthesize: segments of S = segment_grains grains (seg = (S+3)*hop samples)
    start every seg - c samples (c = crossfade); segment k is x[k*step : k*step + seg]
    zero-padded, encoded (mu), decoded with noise (seed, sequence k, g0 0, N = S); K =
    1 if n <= seg else 1 + ceil((n - seg) / step). Gains: segment k > 0 fades in over its
    first c samples with f(i) = (i + 0.5) / c, segment k < K-1 fades out over its last c
    samples with 1 - f(i); output = sum of gained segments, cut to n samples."""
    hop = w.hparams["hop_size"]
    S = segment_grains or w.hparams["n_grains"]
    seg = (S + 3) * hop
    c = crossfade or hop
    if not 1 <= c <= seg // 2:
        raise ValueError("crossfade must be in [1, seg/2]")
    x = np.asarray(audio, dtype=np.float32)
    n = len(x)
    step = seg - c
    K = 1 if n <= seg else 1 + -(-(n - seg) // step)
    out = np.zeros(max(n, (K - 1) * step + seg))
    f = (np.arange(c) + 0.5) / c
    for k in range(K):
        s = np.zeros(seg, dtype=np.float32)
        part = x[k * step: k * step + seg]
        s[:len(part)] = part
        mu = R.encode(w, s)["mu"]
        y = _np(R.decode(w, mu, rng.grain_noise(seed, k, 0, S, w.hparams["l_grain"]))["audio"])
        if k > 0:
            y[:c] *= f
        if k < K - 1:
            y[seg - c:] *= 1.0 - f
        out[k * step: k * step + seg] += y
    return out[:n]


def _peak_limit(x, limit=0.95):
    p = np.max(np.abs(x)) if len(x) else 0.0
    return x * (limit / p) if p > limit else x


def render_loop(w, l, events, loop_length, seed, temperature=1.0):
    """ngs_render_loop: event i = one-shot of its class with sequence i, mean removed,
    peak-normalised, times amplitude, added at floor(onset * loop_length), cut at the end;
    each class track then the mix limited to a peak of 0.95 only if above it."""
    tracks = {}
    for i, ev in enumerate(events):
        ci = ev["class_index"]
        y = _np(R.sample_one_shot(w, l, seed, None if ci < 0 else ci, temperature, i)["audio"])
        y = y - y.mean()
        p = np.max(np.abs(y))
        if p > 0:
            y = y / p
        y = y * ev["amplitude"]
        start = min(loop_length, int(math.floor(float(np.float32(ev["onset"])) * float(loop_length))))
        tr = tracks.setdefault(ci, np.zeros(loop_length))
        m = min(len(y), loop_length - start)
        if m > 0:
            tr[start:start + m] += y[:m]
    mix = np.zeros(loop_length)
    for ci in sorted(tracks):
        mix += _peak_limit(tracks[ci])
    return _peak_limit(mix)


def sample_interpolation(w, l, seed, class_index, temperature, steps):
    """ngs_sample_interpolation: e_k = e0 + (e1 - e0) k / (steps-1) (float32), e0/e1 the
    embeddings of sequences 0/1, noise sequence k; one-shots back to back."""
    e0 = rng.embedding_sample(seed, 0, l.hparams["e_dim"], temperature)
    e1 = rng.embedding_sample(seed, 1, l.hparams["e_dim"], temperature)
    out = []
    for k in range(steps):
        e = (e0 + (e1 - e0) * np.float32(np.float32(k) / np.float32(steps - 1))).astype(np.float32)
        z = R.latent_decode(l, e, None if class_index < 0 else class_index)
        noise = rng.grain_noise(seed, k, 0, z.shape[0], w.hparams["l_grain"])
        out.append(_np(R.decode(w, z, noise)["audio"]))
    return np.concatenate(out)
