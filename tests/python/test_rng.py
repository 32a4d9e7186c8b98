"""The random stream of docs/RANDOM.md: Philox4x32-10 test vectors and transforms."""
import math
import re
from pathlib import Path

import numpy as np
import pytest

from weights_converter import rng

ROOT = Path(__file__).resolve().parents[2]

# Random123 kat_vectors, "philox4x32 10" lines: counter, key, expected output.
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff), (0xffffffff, 0xffffffff),
     (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


@pytest.mark.parametrize("ctr,key,out", KAT)
def test_philox_kat(ctr, key, out):
    seed = key[0] | (key[1] << 32)
    got = tuple(int(x) for x in rng.philox4x32_10(*ctr, seed))
    assert got == out


def test_doc_vectors_match():
    """docs/RANDOM.md publishes the same vectors as this test."""
    text = (ROOT / "docs" / "RANDOM.md").read_text()
    rows = re.findall(r"^\|\s*([0-9a-f]{8}(?: [0-9a-f]{8}){3})\s*\|\s*([0-9a-f]{8} [0-9a-f]{8})"
                      r"\s*\|\s*([0-9a-f]{8}(?: [0-9a-f]{8}){3})\s*\|", text, re.M)
    assert len(rows) == 3
    for c, k, o in rows:
        c = [int(v, 16) for v in c.split()]
        k = [int(v, 16) for v in k.split()]
        o = tuple(int(v, 16) for v in o.split())
        assert tuple(int(x) for x in rng.philox4x32_10(*c, k[0] | (k[1] << 32))) == o


def _philox_scalar(c, seed):
    """Plain-int Philox4x32-10, written independently of the vectorised one."""
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    c0, c1, c2, c3 = c
    for r in range(10):
        if r:
            k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
            k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c3 ^ k1,
                          p0 & 0xFFFFFFFF)
    return c0, c1, c2, c3


def test_vectorised_matches_scalar():
    r = np.random.default_rng(1)
    seeds = [int(s) for s in r.integers(0, 2**63, 5, dtype=np.uint64)]
    for seed in seeds:
        c = r.integers(0, 2**32, (7, 4), dtype=np.uint64)
        got = rng.philox4x32_10(c[:, 0], c[:, 1], c[:, 2], c[:, 3], seed)
        for i in range(7):
            want = _philox_scalar([int(v) for v in c[i]], seed)
            assert tuple(int(g[i]) for g in got) == want


def test_grain_noise_layout_and_range():
    seed, seq = 0x123456789ABCDEF0, 3
    u = rng.grain_noise(seed, seq, 5, 4, 64)
    assert u.dtype == np.float32 and u.shape == (4, 64)
    assert u.min() >= -1.0 and u.max() < 1.0
    # element 4j + i of grain g is u(x_i) of counter (j, g, seq, 1)
    for gi, g in enumerate(range(5, 9)):
        for j in (0, 7, 15):
            x = _philox_scalar((j, g, seq, 1), seed)
            for i in range(4):
                assert u[gi, 4 * j + i] == np.float32((x[i] >> 8) * 2.0**-23 - 1.0)
    # absolute grain index: chunking does not change the noise
    whole = rng.grain_noise(seed, seq, 0, 9, 64)
    np.testing.assert_array_equal(whole[5:9], u)
    # a different sequence or seed changes it
    assert not np.array_equal(rng.grain_noise(seed, seq + 1, 5, 4, 64), u)
    assert not np.array_equal(rng.grain_noise(seed + 1, seq, 5, 4, 64), u)


def test_normals_box_muller_and_statistics():
    seed = 77
    n = rng.normals(seed, rng.DOMAIN_EMBEDDING, 2, [0], 10)[0]
    for j in range(3):
        x = _philox_scalar((j, 0, 2, 3), seed)
        for p in range(2):
            a, b = x[2 * p], x[2 * p + 1]
            r = math.sqrt(-2.0 * math.log(((a >> 8) + 1) * 2.0**-24))
            t = 2.0 * math.pi * (b >> 8) * 2.0**-24
            for q, v in enumerate((r * math.cos(t), r * math.sin(t))):
                k = 4 * j + 2 * p + q
                if k < 10:
                    assert abs(n[k] - v) <= 2e-6 * max(1.0, abs(v))
    big = rng.normals(seed, rng.DOMAIN_PATH_POINTS, 0, np.arange(64), 1024).ravel()
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1.0) < 0.01
    assert np.all(np.isfinite(big))
    e = rng.embedding_sample(seed, 2, 10, temperature=0.5)
    np.testing.assert_array_equal(e, np.float32(0.5) * n)
    eps = rng.encoder_eps(seed, 0, 3, 2, 6)
    np.testing.assert_array_equal(eps, rng.normals(seed, 2, 0, [3, 4], 6))
