"""Seed corpus of the fuzzers (tests/fuzz, docs/FUZZING.md), written by scripts/fuzz.sh:

  OUT/model/  valid model files made the way the golden fixtures are (random weights
              through weights_converter.make_fixtures' models and the converter), on tiny
              configurations so that an execution takes well under a millisecond:
              fp32, fp16, waveform-only, GRU and LSTM, conditional and not;
  OUT/io/     .npy files (float32/float64, 1-D/2-D/3-D, format 1.0/2.0/3.0, empty) and
              drum patterns (the example pattern, edge values).

    /usr/bin/python3 tests/fuzz/make_corpus.py --out build-fuzz/seeds
"""
import argparse
import io
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

TINY = {
    "tiny_gru": dict(
        waveform=dict(z_dim=4, h_dim=8, kernel_size=3, channels=2, n_convs=1, stride=4,
                      n_linears=1, n_grains=3, hop_size=16, normalize_ola=True, pp_chans=1,
                      pp_ker=5, l_grain=64, sr=8000, learning_rate=1e-4),
        latent=dict(e_dim=4, z_dim=4, h_dim=8, n_linears=1, rnn_type="GRU", n_RNN=1,
                    n_grains=3, classes=["a", "b"], conditional=True, learning_rate=1e-4)),
    "tiny_lstm": dict(
        waveform=dict(z_dim=3, h_dim=6, kernel_size=5, channels=3, n_convs=2, stride=2,
                      n_linears=2, n_grains=4, hop_size=32, normalize_ola=False, pp_chans=2,
                      pp_ker=3, l_grain=128, sr=16000, learning_rate=1e-4),
        latent=dict(e_dim=5, z_dim=3, h_dim=6, n_linears=2, rnn_type="LSTM", n_RNN=2,
                    n_grains=4, classes=["drums"], conditional=False, learning_rate=1e-4)),
}


def models(out):
    import torch
    torch.set_num_threads(1)
    from weights_converter import convert as CV
    from weights_converter import make_fixtures as MF
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ngs-corpus-") as tmp:
        for name, cfg in TINY.items():
            w, l = MF.random_models(cfg, seed=sum(map(ord, name)))
            p = MF.write_checkpoints(tmp, w, l)
            both = (p["w_ckpt"], p["w_yaml"], p["l_ckpt"], p["l_yaml"])
            CV.convert(os.path.join(out, name + ".safetensors"), *both)
            CV.convert(os.path.join(out, name + "_fp16.safetensors"), *both, dtype="fp16")
            CV.convert(os.path.join(out, name + "_waveform.safetensors"), p["w_ckpt"], p["w_yaml"])


def npy_bytes(a, version=None):
    f = io.BytesIO()
    if version is None:
        np.save(f, a)
    else:
        np.lib.format.write_array(f, a, version=version)
    return f.getvalue()


def io_seeds(out):
    os.makedirs(out, exist_ok=True)
    r = np.random.default_rng(1)
    arrays = {
        "z_f4.npy": (r.normal(size=(3, 4)).astype("<f4"), None),
        "z_f8.npy": (r.normal(size=(2, 3)).astype("<f8"), None),
        "vec.npy": (r.normal(size=5).astype("<f4"), None),
        "cube.npy": (r.normal(size=(2, 1, 2)).astype("<f4"), None),
        "empty.npy": (np.zeros((0, 4), "<f4"), None),
        "v2.npy": (r.normal(size=(2, 2)).astype("<f4"), (2, 0)),
        "v3.npy": (r.normal(size=(1, 3)).astype("<f8"), (3, 0)),
    }
    for name, (a, version) in arrays.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(npy_bytes(a, version))
    with open(os.path.join(ROOT, "apps", "examples", "pattern.json"), "rb") as f:
        example = f.read()
    patterns = {
        "example.json": example,
        "edges.json": json.dumps({"Kick": [[0, 1], [0.9999999, 0.0]], "Hat": []}).encode(),
        "one.json": b'{"a": [[0.5, 0.5]]}',
    }
    for name, data in patterns.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder of the corpus (OUT/model, OUT/io)")
    a = ap.parse_args(argv)
    models(os.path.join(a.out, "model"))
    io_seeds(os.path.join(a.out, "io"))
    for sub in ("model", "io"):
        d = os.path.join(a.out, sub)
        print("corpus: %s: %d files, %d bytes" % (d, len(os.listdir(d)),
              sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
