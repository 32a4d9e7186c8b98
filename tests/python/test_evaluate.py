"""training/evaluate.py's bookkeeping (the measurements themselves are exercised by the
model card's reproduction, models/README.md): --exclude_trained_in keeps exactly the
held-out sounds the other data set did not train on, and the JSON it writes is strict."""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "training"))


def _data(rs, paths, p_test):
    return {"paths": np.array(paths), "split": (rs.random_sample(len(paths)) < p_test).astype(np.int64)}


def test_exclude_trained_in_keeps_only_sounds_unseen_by_both():
    import evaluate
    seed = int(np.random.SeedSequence().entropy % (1 << 32))
    rs = np.random.RandomState(seed)
    pool = ["kit%d/s%03d.wav" % (rs.randint(4), i) for i in range(300)]
    d = _data(rs, list(rs.permutation(pool)[:200]), 0.3)
    other = _data(rs, list(rs.permutation(pool)[:150]), 0.2)
    split, n = evaluate.exclude_trained_in(d, other)
    trained = {p for p, s in zip(other["paths"], other["split"]) if s == 0}
    for p, s_old, s_new in zip(d["paths"], d["split"], split):
        if s_old == 1 and p in trained:
            assert s_new == 2, (p, seed)
        else:
            assert s_new == s_old, (p, seed)  # training sounds and unseen held-out ones stay
    assert n == int(np.sum(split == 2)) and n > 0, seed
    assert np.array_equal(d["split"] == 0, split == 0), seed  # the classifier's training set


def test_json_is_strict():
    import evaluate
    out = {"a": float("nan"), "b": [1.0, float("nan"), {"c": float("nan"), "d": 2}], "e": "x"}
    s = json.dumps(evaluate._nan_to_null(out), allow_nan=False)
    assert json.loads(s) == {"a": None, "b": [1.0, None, {"c": None, "d": 2}], "e": "x"}
