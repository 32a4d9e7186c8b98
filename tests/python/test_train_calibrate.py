"""training/train.py calibrate and export: the output gain is fitted on the training split
so that the median energy ratio resynthesis / original is 0 dB, and export scales exactly
post_pro.0 (weight and bias) by it, nothing else. A tiny random model, a tiny random data
set, one thread: a few seconds."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "training"))
import train  # noqa: E402
from weights_converter import lightning  # noqa: E402
from weights_converter.reference import LatentVAE, WaveformVAE  # noqa: E402

W_HP = dict(z_dim=8, h_dim=16, kernel_size=9, channels=4, n_convs=3, stride=4, n_linears=2,
            n_grains=5, hop_size=256, normalize_ola=True, pp_chans=5, pp_ker=65, l_grain=1024,
            sr=16000, learning_rate=1e-3)
L_HP = dict(e_dim=8, z_dim=8, h_dim=16, n_linears=2, rnn_type="GRU", n_RNN=1, n_grains=5,
            conditional=True, learning_rate=1e-3, classes=["Kick", "Snare"])


def make_run(tmp_path, seed):
    torch.manual_seed(seed)
    rs = np.random.RandomState(seed)
    w = WaveformVAE(**W_HP)
    w.eval()
    n = 24
    t = np.arange(w.tar_l) / 16000.0
    audio = np.stack([0.9 * np.exp(-t * rs.uniform(5, 30)) * np.sin(2 * np.pi * rs.uniform(50, 400) * t)
                      + 0.05 * rs.randn(w.tar_l) for _ in range(n)]).astype(np.float32)
    split = (np.arange(n) % 4 == 0).astype(np.int64)
    data = tmp_path / "data.npz"
    np.savez(data, audio=audio, labels=(np.arange(n) % 2).astype(np.int64), split=split,
             classes=np.array(L_HP["classes"]), sr=16000)
    run = tmp_path / "run"
    run.mkdir()
    train.save_state(str(run / "stage1_state.pt"),
                     {"hparams": W_HP, "model": w.state_dict(), "step": 7, "config": {"lr": 1e-3}})
    l = LatentVAE(**L_HP)
    train.save_state(str(run / "stage2_state.pt"),
                     {"hparams": L_HP, "model": l.state_dict(), "step": 3, "config": {"lr": 1e-3}})
    return data, run, audio, split


def run_train(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "training", "train.py")] + list(args),
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout


def median_ratio_db(run, data_audio, split, gain_db):
    """Independently of calibrate(): resynthesis with the gain applied to a fresh copy of
    the model, same noise seed, energy ratio per training sound, median in dB."""
    st = torch.load(os.path.join(run, "stage1_state.pt"))
    w = WaveformVAE(**st["hparams"])
    w.load_state_dict(st["model"])
    w.eval()
    train.apply_output_gain(w, gain_db)
    x = torch.from_numpy(data_audio[split == 0])
    torch.manual_seed(1)  # calibrate's --seed default
    with torch.no_grad():
        ys = []
        for i in range(0, len(x), 16):
            mu, _ = train.w_encode(w, x[i:i + 16])
            ys.append(train.w_decode(w, mu, x[i:i + 16].shape[0]))
        y = torch.cat(ys)
    return float(np.median(10 * np.log10((y ** 2).mean(1).numpy() / (x ** 2).mean(1).numpy())))


@pytest.mark.parametrize("seed", [int(s) for s in np.random.SeedSequence().generate_state(2) % 1000])
def test_calibrate_matches_energy_and_export_scales_post_pro_only(tmp_path, seed):
    data, run, audio, split = make_run(tmp_path, seed)
    before = median_ratio_db(str(run), audio, split, 0.0)
    run_train("calibrate", "--data", str(data), "--run", str(run))
    cal = json.load(open(run / train.CALIBRATION))
    assert cal["n_training_sounds"] == int(np.sum(split == 0))
    assert abs(cal["median_energy_ratio_db_before"] - before) < 0.05
    gain = cal["output_gain_db"]
    assert abs(gain) > 0.5, "the random model should need a gain: the test would see nothing"
    assert abs(median_ratio_db(str(run), audio, split, gain)) < 0.05
    assert abs(train.output_gain_db(str(run)) - gain) < 1e-9

    out_gain, out_plain = tmp_path / "with", tmp_path / "without"
    run_train("export", "--run", str(run), "--out", str(out_gain))
    os.rename(run / train.CALIBRATION, run / "set_aside.json")
    run_train("export", "--run", str(run), "--out", str(out_plain))
    a = lightning.load_checkpoint(str(out_gain / "drums_waveform.ckpt"))["state_dict"]
    b = lightning.load_checkpoint(str(out_plain / "drums_waveform.ckpt"))["state_dict"]
    g = 10 ** (gain / 20.0)
    assert set(a) == set(b)
    for k in a:
        if k in ("post_pro.0.weight", "post_pro.0.bias"):
            np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]) * g, rtol=1e-6, atol=0)
        else:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
    la = lightning.load_checkpoint(str(out_gain / "drums_latent.ckpt"))["state_dict"]
    lb = lightning.load_checkpoint(str(out_plain / "drums_latent.ckpt"))["state_dict"]
    assert all(np.array_equal(np.asarray(la[k]), np.asarray(lb[k])) for k in la)
