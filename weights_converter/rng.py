"""The ngs random stream (docs/RANDOM.md) in numpy: Philox4x32-10 and its transforms.

Every function is vectorised and deterministic; results match kernels/common/philox.h
bit for bit for uniforms and to a few ULP for normals (platform sin/cos/log).

API (all return float32 numpy arrays):
    philox4x32_10(c0, c1, c2, c3, seed)        -> (x0, x1, x2, x3) uint32 arrays (broadcast)
    grain_noise(seed, sequence, g0, n, l_grain) -> [n, l_grain] uniform in [-1, 1), domain 1
    normals(seed, domain, sequence, items, count) -> [len(items), count] standard normals
    encoder_eps(seed, sequence, g0, n, z_dim)   -> [n, z_dim], domain 2
    embedding_sample(seed, sequence, e_dim, temperature=1.0) -> [e_dim], domain 3
    path_points(seed, sequence, n_points, z_dim, temperature=1.0) -> [n_points, z_dim], domain 4
"""
import numpy as np

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint32(0x9E3779B9)
W1 = np.uint32(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)

DOMAIN_GRAIN_NOISE = 1
DOMAIN_ENCODER_EPS = 2
DOMAIN_EMBEDDING = 3
DOMAIN_PATH_POINTS = 4


def philox4x32_10(c0, c1, c2, c3, seed):
    """Philox4x32-10 of counters (c0..c3, broadcastable integer arrays) under the 64-bit
    key `seed` (k0 = low word, k1 = high word). Returns four uint32 arrays."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    c0, c1, c2, c3 = np.broadcast_arrays(*(np.asarray(c, dtype=np.uint64) & MASK32
                                           for c in (c0, c1, c2, c3)))
    c0, c1, c2, c3 = (c.astype(np.uint64) for c in (c0, c1, c2, c3))
    k0 = np.uint32(seed & 0xFFFFFFFF)
    k1 = np.uint32(seed >> 32)
    with np.errstate(over="ignore"):
        for rnd in range(10):
            if rnd > 0:
                k0 = np.uint32(k0 + W0)
                k1 = np.uint32(k1 + W1)
            p0 = M0 * c0
            p1 = M1 * c2
            hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
            hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
            c0, c1, c2, c3 = (hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0)
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


def uniform_pm1(x):
    """Uniform in [-1, 1) from uint32 words: float(x >> 8) * 2^-23 - 1 (exact)."""
    x = np.asarray(x, dtype=np.uint32)
    return ((x >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -23)
            - np.float32(1.0)).astype(np.float32)


def normal_pair(a, b):
    """Box-Muller in float32 arithmetic on word pairs; returns (n_first, n_second)."""
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    u1 = ((a >> np.uint32(8)) + np.uint32(1)).astype(np.float32) * np.float32(2.0 ** -24)
    u2 = (b >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    r = np.sqrt(np.float32(-2.0) * np.log(u1)).astype(np.float32)
    t = (np.float32(2.0 * np.pi) * u2).astype(np.float32)
    return (r * np.cos(t)).astype(np.float32), (r * np.sin(t)).astype(np.float32)


def _blocks(count):
    return np.arange((count + 3) // 4, dtype=np.uint64)


def uniforms(seed, domain, sequence, items, count):
    """[len(items), count] uniforms in [-1, 1) of (domain, sequence, item)."""
    items = np.asarray(items, dtype=np.uint64).reshape(-1)
    j = _blocks(count)
    x = philox4x32_10(j[None, :], items[:, None], sequence, domain, seed)
    u = np.stack([uniform_pm1(w) for w in x], axis=-1)  # [items, blocks, 4]
    return u.reshape(len(items), -1)[:, :count].copy()


def normals(seed, domain, sequence, items, count):
    """[len(items), count] standard normals of (domain, sequence, item): element 4j + i
    is n_i of block j."""
    items = np.asarray(items, dtype=np.uint64).reshape(-1)
    j = _blocks(count)
    x0, x1, x2, x3 = philox4x32_10(j[None, :], items[:, None], sequence, domain, seed)
    n0, n1 = normal_pair(x0, x1)
    n2, n3 = normal_pair(x2, x3)
    n = np.stack([n0, n1, n2, n3], axis=-1)
    return n.reshape(len(items), -1)[:, :count].copy()


def grain_noise(seed, sequence, g0, n, l_grain):
    """Uniform noise of grains g0 .. g0 + n - 1: [n, l_grain] float32 (domain 1)."""
    return uniforms(seed, DOMAIN_GRAIN_NOISE, sequence, np.arange(g0, g0 + n), l_grain)


def encoder_eps(seed, sequence, g0, n, z_dim):
    """Reparametrisation eps of grains g0 .. g0 + n - 1: [n, z_dim] (domain 2)."""
    return normals(seed, DOMAIN_ENCODER_EPS, sequence, np.arange(g0, g0 + n), z_dim)


def embedding_sample(seed, sequence, e_dim, temperature=1.0):
    """temperature * normals of domain 3, item 0: [e_dim] float32."""
    n = normals(seed, DOMAIN_EMBEDDING, sequence, [0], e_dim)[0]
    return (np.float32(temperature) * n).astype(np.float32)


def path_points(seed, sequence, n_points, z_dim, temperature=1.0):
    """temperature * normals of domain 4, points 0 .. n_points - 1: [n_points, z_dim]."""
    n = normals(seed, DOMAIN_PATH_POINTS, sequence, np.arange(n_points), z_dim)
    return (np.float32(temperature) * n).astype(np.float32)
