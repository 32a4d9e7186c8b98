"""Fast precision against fp32 (docs/PRECISION.md): per stage (relative L2 of the sequence
VAE's z series, of a decode of the same z, of a whole one-shot) and at the audio level
(log-spectral distance between the fp32 and the fast one-shot, the model card's LSD of
training/evaluate.py), for every class and several seeds of a model.

    PYTHONPATH=bindings/python NGS_LIBRARY=build/engine/libngs.so \\
        /usr/bin/python3 bench/precision_lsd.py models/drums.safetensors --seeds 16 [--json]
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "training"))
import ngs  # noqa: E402
from evaluate import lsd  # noqa: E402  (the model card's log-spectral distance, dB)


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    m = ngs.Model(a.model, backend="cpu")
    c32 = m.context(precision="fp32")
    cf = m.context(precision="fast")
    if cf.precision != "fast":
        sys.exit("fast precision is not available on this CPU (no AVX512_BF16): nothing to compare")
    info = m.info
    classes = list(range(info.n_classes)) or [None]
    rows = []
    for cls in classes:
        for seed in range(a.seeds):
            e = m.embedding_sample(seed=seed)
            z32 = c32.latent_decode(e, cls=cls)
            zf = cf.latent_decode(e, cls=cls)
            d32 = c32.decode(z32, seed=seed)
            df = cf.decode(z32, seed=seed)
            s32 = c32.sample(cls=cls, seed=seed)
            sf = cf.sample(cls=cls, seed=seed)
            other = c32.sample(cls=cls, seed=seed + 10000)  # another one-shot of the class
            rows.append({
                "class": m.classes[cls] if cls is not None else None, "seed": seed,
                "latent_decode_rel_l2": rel_l2(zf, z32),
                "decode_rel_l2": rel_l2(df, d32),
                "sample_rel_l2": rel_l2(sf, s32),
                "sample_lsd_db": float(lsd(sf[None], s32[None])[0]),
                "decode_lsd_db": float(lsd(df[None], d32[None])[0]),
                "other_seed_lsd_db": float(lsd(other[None], s32[None])[0]),
            })
    keys = [k for k in rows[0] if k not in ("class", "seed")]
    summary = {k: {"mean": float(np.mean([r[k] for r in rows])),
                   "max": float(np.max([r[k] for r in rows]))} for k in keys}
    per_class = {}
    for r in rows:
        per_class.setdefault(r["class"], []).append(r["sample_lsd_db"])
    out = {"model": a.model, "one_shots": len(rows), "summary": summary,
           "sample_lsd_db_per_class": {str(k): float(np.mean(v)) for k, v in per_class.items()}}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print("%s: %d one-shots (%d classes x %d seeds), fast vs fp32" %
          (a.model, len(rows), len(classes), a.seeds))
    for k in keys:
        print("  %-22s mean %.3g  max %.3g" % (k, summary[k]["mean"], summary[k]["max"]))
    for k, v in out["sample_lsd_db_per_class"].items():
        print("  sample LSD %-16s %.3f dB" % (k, v))


if __name__ == "__main__":
    main()
