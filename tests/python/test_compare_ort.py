"""bench/compare_ort.py's own PyTorch code (no ONNX Runtime needed): the batched sequence VAE
of its sample_x8 case equals the reference's latent_decode of each embedding, for a model
without classes (GRU) and a conditional one (LSTM, 7 classes; class 0, as every side of the
comparison samples), on fresh random embeddings; and --cases rejects an unknown case with
one message.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import compare_ort as CO  # noqa: E402
from weights_converter import make_fixtures as MF  # noqa: E402
from weights_converter import reference as R  # noqa: E402


@pytest.mark.parametrize("config", ["gru16k", "lstm22k"])
def test_batched_latent_equals_reference(config):
    w, l = MF.random_models(MF.CONFIGS[config])
    seed = int(np.random.SeedSequence().entropy % 2**32)  # fresh inputs, printed on failure
    e = torch.randn(8, l.hparams["e_dim"], generator=torch.Generator().manual_seed(seed),
                    dtype=next(l.parameters()).dtype)
    cls = 0 if l.n_conds > 0 else None
    n = w.hparams["n_grains"]
    with torch.no_grad():
        got = CO.torch_latent_batch(l, e, n).numpy()
        want = np.stack([R.latent_decode(l, e[i], cls).numpy() for i in range(8)])
    assert got.shape == want.shape == (8, n, l.hparams["z_dim"])
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert err <= 1e-5, f"{config} seed {seed}: relative L2 {err:.2e}"


def test_unknown_case_is_one_message():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "compare_ort.py"), "--cases",
                        "decode,nope", "--no-install"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode != 0
    assert "unknown case nope" in r.stderr and "Traceback" not in r.stderr
