"""bench/onnx_export.py: the ONNX graphs of the fixture models (encoder; sequence VAE decode
as the ONNX RNN op and unrolled; decoder with DFT nodes or DFT matrices, as the authors
compute it or with the fused algebra) equal the float64 reference within the fp32 bound
(kTolF32), and the check fails when a weight of the exported graph is perturbed.

Needs the `onnx` and `onnxruntime` modules, which Debian does not package: without them
the tests are skipped (this test never installs anything). bench/compare_ort.py installs
them into build/bench-venv; run these tests there with
    build/bench-venv/bin/python -m pytest -q -p no:cacheprovider tests/python/test_onnx_export.py
"""
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

_WHY = ("not importable by %s (Debian has no package; bench/compare_ort.py installs it "
        "into build/bench-venv)" % sys.executable)
onnx = pytest.importorskip("onnx", reason="onnx " + _WHY)
ort = pytest.importorskip("onnxruntime", reason="onnxruntime " + _WHY)
from onnx import numpy_helper  # noqa: E402

import onnx_export as OX  # noqa: E402
from weights_converter import make_fixtures as MF  # noqa: E402

# GRU without classes; LSTM, 2 layers, 7 classes.
CONFIGS = ["gru16k", "lstm22k"]


@pytest.fixture(scope="module", params=CONFIGS)
def exported(request, tmp_path_factory):
    w, l = MF.random_models(MF.CONFIGS[request.param])
    out = tmp_path_factory.mktemp("onnx_" + request.param)
    paths = OX.export_all(w, l, str(out), n_decode=(5,))
    return request.param, w, l, paths


def test_tolerance_is_the_repos():
    assert OX.TOL_F32 == 1e-5  # kTolF32 of tests/cpp/test_util.h (docs/TESTING.md)


def test_graphs_match_reference(exported):
    name, w, l, paths = exported
    n = w.hparams["n_grains"]
    assert set(paths) == {"enc", "seq.rnn", "seq.unrolled"} | {
        f"dec{m}.{v}" for m in (n, 5) for v in OX.DECODER_VARIANTS}, sorted(paths)
    seed = int(np.random.SeedSequence().entropy % 2**32)  # fresh inputs, printed on failure
    res = OX.check_all(w, l, paths, ort, seed=seed)
    for g, (err, msg) in res.items():
        assert msg is None, f"{name} seed {seed}: {msg}"
        assert err <= OX.TOL_F32
    # The exported graphs are what they claim: DFT nodes, the recurrent op.
    ops = {g: {nd.op_type for nd in onnx.load(p).graph.node} for g, p in paths.items()}
    rnn = "LSTM" if l.hparams["rnn_type"] == "LSTM" else "GRU"
    assert rnn in ops["seq.rnn"] and rnn not in ops["seq.unrolled"]
    for g, o in ops.items():
        variant = g.split(".", 1)[1] if "." in g else ""
        if "dft" in variant:
            assert "DFT" in o, g
        if "matmul" in variant:
            assert "DFT" not in o and "MatMul" in o, g


def _largest_model_weight(model_path, modules):
    """(graph, initializer index) of the largest initializer equal to a model parameter."""
    m = onnx.load(model_path)
    params = [p.detach().numpy() for mod in modules if mod is not None
              for p in mod.state_dict().values() if p.ndim >= 1 and p.numel() > 1]
    best = None
    for i, init in enumerate(m.graph.initializer):
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32 or a.size < 2:
            continue
        if any(p.shape == a.shape and np.array_equal(p, a) for p in params):
            if best is None or a.size > best[1]:
                best = (i, a.size)
    assert best is not None, f"no model weight found among the initializers of {model_path}"
    return m, best[0]


def test_check_fails_on_perturbed_weight(exported, tmp_path):
    name, w, l, paths = exported
    for g, p in paths.items():
        m, i = _largest_model_weight(p, (w, l))
        init = m.graph.initializer[i]
        a = numpy_helper.to_array(init) * np.float32(1.01)
        init.CopyFrom(numpy_helper.from_array(a.astype(np.float32), init.name))
        bad = str(tmp_path / f"{g}.perturbed.onnx")
        onnx.save(m, bad)
        res = OX.check_all(w, l, {g: bad}, ort)
        err, msg = res[g]
        assert msg is not None and "relative L2" in msg and err > OX.TOL_F32, \
            f"{name} {g}: a 1 % change of {init.name} passed the check (rel L2 {err:.3g})"
