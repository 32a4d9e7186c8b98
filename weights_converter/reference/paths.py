"""Latent paths of docs/PATHS.md (free synthesis), float32 numpy.

    generate(kind, n, z_dim, seed, sequence=0, temperature=1.0, turns=1.0, points=4,
             legs=4, gamma=2.0) -> [n, z_dim] float32
    concat(specs, n_each, z_dim, seed, sequence=0, temperature=1.0) -> concatenation of
        several kinds, spec i using sequence `sequence + i`
    KINDS = ("line", "circle", "spiral", "random", "back_and_forth") (ngs_path_kind order)
"""
import numpy as np

from .. import rng

KINDS = ("line", "circle", "spiral", "random", "back_and_forth")
f32 = np.float32


def _t(n):
    if n == 1:
        return np.zeros(1, dtype=f32)
    return (np.arange(n, dtype=f32) / f32(n - 1)).astype(f32)


def _circle_basis(p0, p1):
    a = p0.astype(f32)
    aa = f32(np.dot(a, a))
    b = (p1 - (f32(np.dot(p1, a)) / aa) * a).astype(f32)
    b = (b * (f32(np.sqrt(aa)) / f32(np.sqrt(f32(np.dot(b, b)))))).astype(f32)
    return a, b


def generate(kind, n, z_dim, seed, sequence=0, temperature=1.0, turns=1.0, points=4,
             legs=4, gamma=2.0):
    if n < 1:
        raise ValueError("path length must be >= 1")
    if kind not in KINDS:
        raise ValueError("unknown path kind %r (known: %s)" % (kind, ", ".join(KINDS)))
    t = _t(n)[:, None]
    if kind == "random":
        if points < 2:
            raise ValueError("random path needs points >= 2")
        P = rng.path_points(seed, sequence, points, z_dim, temperature)
        u = (t[:, 0] * f32(points - 1)).astype(f32)
        p = np.minimum(np.floor(u).astype(np.int64), points - 2)
        frac = (u - p.astype(f32)).astype(f32)[:, None]
        return (P[p] + (P[p + 1] - P[p]) * frac).astype(f32)
    P = rng.path_points(seed, sequence, 2, z_dim, temperature)
    p0, p1 = P[0], P[1]
    if kind == "line":
        return (p0 + (p1 - p0) * t).astype(f32)
    if kind in ("circle", "spiral"):
        a, b = _circle_basis(p0, p1)
        theta = (f32(2.0 * np.pi) * f32(turns) * t).astype(f32)
        z = (np.cos(theta) * a + np.sin(theta) * b).astype(f32)
        if kind == "spiral":
            z = (t * z).astype(f32)
        return z
    # back_and_forth
    if legs < 1 or not gamma > 0:
        raise ValueError("back_and_forth needs legs >= 1 and gamma > 0")
    u = (t[:, 0] * f32(legs)).astype(f32)
    leg = np.minimum(np.floor(u).astype(np.int64), legs - 1)
    f = (u - leg.astype(f32)).astype(f32)
    fp = np.power(f, f32(gamma)).astype(f32)
    q = np.where(leg % 2 == 0, fp, f32(1.0) - fp).astype(f32)[:, None]
    return (p0 + (p1 - p0) * q).astype(f32)


def concat(specs, n_each, z_dim, seed, sequence=0, temperature=1.0):
    """specs: list of kind names or (kind, kwargs) pairs; n_each: int or list."""
    if isinstance(n_each, int):
        n_each = [n_each] * len(specs)
    out = []
    for i, (spec, n) in enumerate(zip(specs, n_each)):
        kind, kw = (spec, {}) if isinstance(spec, str) else spec
        out.append(generate(kind, n, z_dim, seed, sequence + i, temperature, **kw))
    return np.concatenate(out, axis=0)
