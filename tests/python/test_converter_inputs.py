"""The converter's inputs and output: bounded hyper-parameters and YAML, all inputs'
problems at once, full-shape checks, and an output that never destroys an input.
Every failure is a ConversionError (the CLI: one `error:` line, exit 1, no traceback)."""
import os
import time

import numpy as np
import pytest
import torch
import yaml

from weights_converter import __main__ as M
from weights_converter import convert as CV
from weights_converter import lightning as LT
from weights_converter import make_fixtures as MF
from weights_converter import safetensors as ST


@pytest.fixture(scope="module")
def models():
    w, _ = MF.random_models(MF.CONFIGS["noola"], seed=3)
    _, l = MF.random_models(MF.CONFIGS["lstm22k"], seed=4)
    return ({k: v.numpy().copy() for k, v in w.state_dict().items()}, dict(w.hparams),
            {k: v.numpy().copy() for k, v in l.state_dict().items()}, dict(l.hparams))


def _write(d, sd, hp, name, yaml_text=None):
    ck, y = d / (name + ".ckpt"), d / (name + ".yaml")
    LT.save_lightning_checkpoint(ck, {k: torch.as_tensor(v) for k, v in sd.items()}, hp)
    if yaml_text is None:
        LT.save_hparams_yaml(y, hp)
    else:
        y.write_text(yaml_text)
    return str(ck), str(y)


def _cli(capsys, *args):
    """Runs the CLI in-process: nothing may escape main() but its exit status."""
    rc = M.main(list(args))
    err = capsys.readouterr().err
    return rc, err


def _refused(tmp_path, *args, **kw):
    out = tmp_path / "out.safetensors"
    with pytest.raises(CV.ConversionError) as e:
        CV.convert(str(out), *args, **kw)
    assert not out.exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    return e.value


# ------------------------------------------------------------------ hyper-parameters

@pytest.mark.parametrize("change,match", [
    (dict(stride=1000000, n_convs=1000000000), "'stride' must be an integer in \\[1, 64\\], found 1000000"),
    (dict(n_convs=10 ** 5000), "'n_convs' must be an integer in \\[1, 16\\], found an integer of about 16610 bits"),
    (dict(n_grains=9.5), "'n_grains' must be an integer"),
    (dict(z_dim="16"), "'z_dim' must be an integer"),
    (dict(l_grain=1 << 40), "'l_grain' must be an integer in"),
    (dict(channels=-3), "'channels' must be an integer"),
    (dict(sr=True), "'sr' must be an integer"),
    (dict(h_dim=[1] * 10 ** 6), "'h_dim' must be an integer in \\[1, 16384\\], found a list of 1000000 items"),
], ids=["stride_n_convs", "n_convs_5000_digits", "n_grains_float", "z_dim_str", "l_grain_huge",
        "channels_negative", "sr_bool", "h_dim_list"])
def test_hyper_parameters_are_bounded_before_arithmetic(change, match):
    w_hp = dict(MF.CONFIGS["noola"]["waveform"], **change)
    t0 = time.process_time()
    _, probs = CV.check_waveform_hparams(w_hp)
    assert time.process_time() - t0 < 1.0
    assert any(__import__("re").search(match, p) for p in probs), probs
    assert all(len(p) < 300 for p in probs)


def test_latent_hyper_parameters_are_bounded():
    l_hp = dict(MF.CONFIGS["lstm22k"]["latent"], n_RNN=10 ** 9, h_dim=2.0, classes=["x" * 10 ** 5],
                rnn_type=["GRU"])
    _, probs = CV.check_latent_hparams(l_hp)
    assert any("'n_RNN' must be an integer in [1, 64]" in p for p in probs), probs
    assert any("'h_dim' must be an integer" in p for p in probs)
    assert any("classes must be a list of at most" in p for p in probs)
    assert any("rnn_type must be GRU or LSTM" in p for p in probs)
    assert all(len(p) < 300 for p in probs)


def test_huge_hyper_parameters_in_yaml_through_the_cli(tmp_path, models, capsys):
    w_sd, w_hp, _, _ = models
    ck, y = _write(tmp_path, w_sd, w_hp, "w", yaml.dump(dict(w_hp, stride=1000000, n_convs=1000000000)))
    t0 = time.process_time()
    rc, err = _cli(capsys, "--waveform-ckpt", ck, "--waveform-hparams", y, "-o", str(tmp_path / "o.st"))
    assert time.process_time() - t0 < 10
    assert rc == 1 and err.startswith("error: ") and "'stride' must be an integer" in err
    assert "Traceback" not in err and not (tmp_path / "o.st").exists()


# ------------------------------------------------------------------ YAML

LAUGHS = "\n".join(['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
    "%s: &%s [%s]" % (c, c, ",".join(["*" + p] * 9)) for p, c in zip("abcdefgh", "bcdefghi")]) + "\n"


@pytest.mark.parametrize("text,match", [
    (LAUGHS, "more than 100000 values once its aliases are expanded"),
    ("a: &a [*a]\n", "recursive alias"),
    ("a: &a {b: *a}\n", "recursive alias"),
    ("[" * 50000 + "]" * 50000 + "\n", "nesting deeper than 64"),
    ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 200)), "nesting deeper than 64|not valid YAML"),
    ("z_dim: " + "9" * 5000 + "\n", "an integer of 5000 digits"),
    ("z_dim: 0x" + "f" * 5000 + "\n", "an integer of 5000 digits"),
    ("{a: 1, [1]: 2}\n", "not valid YAML"),
    ("- 1\n- 2\n", "does not hold a mapping"),
    ("a: !!python/object/apply:os.system ['touch PWNED']\n", "not valid YAML"),
    ("\xff\xfe", "not UTF-8|not valid YAML"),
    ("a: 2001-13-45\n", "not valid YAML|not a usable"),
], ids=["billion_laughs", "recursive_seq", "recursive_map", "deep_50000", "deep_block", "int_5000",
        "hex_5000", "unhashable_key", "not_mapping", "python_tag", "not_utf8", "bad_date"])
def test_hostile_yaml_is_refused(tmp_path, models, text, match, capsys):
    w_sd, w_hp, _, _ = models
    ck, _ = _write(tmp_path, w_sd, w_hp, "w")
    y = tmp_path / "h.yaml"
    y.write_bytes(text.encode("latin1") if text.startswith("\xff") else text.encode())
    assert len(LAUGHS) < 800
    t0 = time.process_time()
    e = _refused(tmp_path, ck, str(y))
    assert time.process_time() - t0 < 5
    assert __import__("re").search(match, str(e)), str(e)
    assert not (tmp_path / "PWNED").exists()
    rc, err = _cli(capsys, "--waveform-ckpt", ck, "--waveform-hparams", str(y), "-o", str(tmp_path / "o.st"))
    assert rc == 1 and err.startswith("error: ") and "Traceback" not in err


def test_oversized_yaml_is_refused(tmp_path, models):
    w_sd, w_hp, _, _ = models
    ck, _ = _write(tmp_path, w_sd, w_hp, "w")
    y = tmp_path / "big.yaml"
    y.write_text("a: '" + "x" * (2 << 20) + "'\n")
    assert "larger than" in str(_refused(tmp_path, ck, str(y)))


def test_checkpoint_hyper_parameters_must_be_a_mapping(tmp_path, models):
    w_sd, w_hp, _, _ = models
    ck = tmp_path / "w.ckpt"
    torch.save({"state_dict": {k: torch.as_tensor(v) for k, v in w_sd.items()},
                "hyper_parameters": [1, 2]}, ck)
    y = tmp_path / "w.yaml"
    LT.save_hparams_yaml(y, w_hp)
    assert "hyper_parameters is a list" in str(_refused(tmp_path, str(ck), str(y)))


# ------------------------------------------------------------------ all inputs at once

def test_problems_of_every_input_are_reported(tmp_path, models, capsys):
    w_sd, w_hp, l_sd, l_hp = models
    bad_w = tmp_path / "bad_w.ckpt"
    bad_w.write_text("not a zip")
    bad_l = tmp_path / "bad_l.ckpt"
    bad_l.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    bad_y = tmp_path / "bad.yaml"
    bad_y.write_text("a: [unclosed\n")
    _, wy = _write(tmp_path, w_sd, w_hp, "w")
    lck, ly = _write(tmp_path, l_sd, l_hp, "l")
    # two bad checkpoints
    e = _refused(tmp_path, str(bad_w), wy, str(bad_l), ly)
    assert any("bad_w.ckpt" in p for p in e.problems) and any("bad_l.ckpt" in p for p in e.problems)
    # a bad checkpoint and its bad yaml
    e = _refused(tmp_path, str(bad_w), str(bad_y))
    assert any("bad_w.ckpt" in p for p in e.problems) and any("bad.yaml" in p for p in e.problems)
    # a good waveform pair, bad latent checkpoint and bad latent yaml
    wck, wy = _write(tmp_path, w_sd, w_hp, "w2")
    e = _refused(tmp_path, wck, wy, str(bad_l), str(bad_y))
    assert len(e.problems) == 2, e.problems
    # hierarchical: bad checkpoint and both bad yamls
    e = _refused(tmp_path, h_ckpt=str(bad_w), w_yaml=str(bad_y), l_yaml=str(tmp_path / "absent.yaml"))
    assert len(e.problems) == 3, e.problems
    rc, err = _cli(capsys, "--waveform-ckpt", str(bad_w), "--waveform-hparams", str(bad_y),
                   "--latent-ckpt", str(bad_l), "--latent-hparams", ly, "-o", str(tmp_path / "o.st"))
    assert rc == 1 and err.startswith("error: ") and "3 problem(s)" in err, err
    assert "bad_w.ckpt" in err and "bad_l.ckpt" in err and "bad.yaml" in err


# ------------------------------------------------------------------ shapes

def test_transposed_weights_are_refused_by_full_shape(tmp_path, models):
    """Same element count, other shape: [in, 4h] for weight_ih, [out, k, in] for a conv."""
    w_sd, w_hp, l_sd, l_hp = models
    sd = dict(w_sd)
    k = "encoder_convs.1.0.conv.1.weight"
    C, K = w_hp["channels"], w_hp["kernel_size"]
    assert sd[k].shape == (C, C, K)
    sd[k] = np.ascontiguousarray(sd[k].transpose(0, 2, 1))
    k2 = "encoder_linears.0.block.0.weight"
    sd[k2] = np.ascontiguousarray(sd[k2].T)
    lsd = dict(l_sd)
    h = l_hp["h_dim"]
    lk = "encoder_rnn.weight_ih_l1"
    assert lsd[lk].shape == (4 * h, h)
    lsd[lk] = np.ascontiguousarray(lsd[lk].T)
    ck, y = _write(tmp_path, sd, w_hp, "w")
    e = _refused(tmp_path, ck, y)
    msg = str(e)
    assert "waveform: '%s' has shape [%d, %d, %d], expected [%d, %d, %d]" % (k, C, K, C, C, C, K) in msg, msg
    flat = w_hp["channels"] * (w_hp["l_grain"] // w_hp["stride"] ** w_hp["n_convs"])
    assert "'%s' has shape [%d, %d], expected [%d, %d]" % (k2, flat, w_hp["h_dim"], w_hp["h_dim"], flat) in msg
    probs = CV.validate_latent(lsd, l_hp)
    assert probs == ["latent: '%s' has shape [%d, %d], expected [%d, %d]" % (lk, h, 4 * h, 4 * h, h)], probs


# ------------------------------------------------------------------ output never destroys inputs

def test_output_equal_to_an_input_is_refused(tmp_path, models, capsys):
    w_sd, w_hp, _, _ = models
    ck, y = _write(tmp_path, w_sd, w_hp, "w")
    before = {p: open(p, "rb").read() for p in (ck, y)}
    os.link(ck, tmp_path / "hard.ckpt")
    os.symlink(y, tmp_path / "sym.yaml")
    for out in (ck, y, str(tmp_path / "hard.ckpt"), str(tmp_path / "sym.yaml"),
                os.path.join(str(tmp_path), ".", "w.ckpt")):
        with pytest.raises(CV.ConversionError, match="refusing to overwrite an input"):
            CV.convert(out, ck, y)
        rc, err = _cli(capsys, "--waveform-ckpt", ck, "--waveform-hparams", y, "-o", out)
        assert rc == 1 and "refusing to overwrite an input" in err and "Traceback" not in err
    for p, b in before.items():
        assert open(p, "rb").read() == b, p
    with pytest.raises(CV.ConversionError, match="is a folder"):
        CV.convert(str(tmp_path), ck, y)


def test_failed_write_leaves_no_output_and_no_temporary(tmp_path, models, monkeypatch, capsys):
    w_sd, w_hp, _, _ = models
    ck, y = _write(tmp_path, w_sd, w_hp, "w")
    out = tmp_path / "m.safetensors"
    old = tmp_path / "old.safetensors"
    old.write_bytes(b"previous model")
    names = sorted(os.listdir(tmp_path))

    def boom(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ST.os, "fsync", boom)
    for target in (out, old):
        with pytest.raises(OSError, match="No space left"):
            CV.convert(str(target), ck, y)
        rc, err = _cli(capsys, "--waveform-ckpt", ck, "--waveform-hparams", y, "-o", str(target))
        assert rc == 1 and err.startswith("error: ") and "No space left" in err and "Traceback" not in err
        assert sorted(os.listdir(tmp_path)) == names  # no output, no temporary
    assert old.read_bytes() == b"previous model"
    monkeypatch.undo()
    CV.convert(str(old), ck, y)
    assert ST.load(old)[1]["ngs.format"] == "ngs-model"
    assert sorted(os.listdir(tmp_path)) == names
    mode = os.stat(old).st_mode & 0o777
    um = os.umask(0)
    os.umask(um)
    assert mode == 0o666 & ~um


def test_write_into_a_missing_folder_is_one_clear_error(tmp_path, models, capsys):
    w_sd, w_hp, _, _ = models
    ck, y = _write(tmp_path, w_sd, w_hp, "w")
    rc, err = _cli(capsys, "--waveform-ckpt", ck, "--waveform-hparams", y,
                   "-o", str(tmp_path / "no" / "such" / "m.safetensors"))
    assert rc == 1 and "No such file or directory" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_odd_but_harmless_hyper_parameters_convert(tmp_path, models):
    """Checkpoint hyper_parameters with a class key, numpy numbers and NaN: the model file's
    metadata stays strict JSON (no NaN, string keys)."""
    import json
    w_sd, w_hp, _, _ = models
    ck = tmp_path / "w.ckpt"
    with LT.stand_in_classes() as cls:
        hp = dict(w_hp, callbacks={cls["ModelCheckpoint"]: 1}, gamma=np.float64(0.5),
                  lr_max=float("nan"), shape=(1, 2))
        LT.save_lightning_checkpoint(ck, {k: torch.as_tensor(v) for k, v in w_sd.items()}, hp)
    y = tmp_path / "w.yaml"
    LT.save_hparams_yaml(y, w_hp)
    _, meta, _ = CV.convert(str(tmp_path / "m.safetensors"), str(ck), str(y))
    cfg = json.loads(meta["ngs.config"], parse_constant=lambda c: pytest.fail("non-strict JSON " + c))
    raw = cfg["hparams"]["waveform"]
    assert raw["gamma"] == 0.5 and raw["lr_max"] == "nan" and raw["shape"] == [1, 2]
    assert list(raw["callbacks"]) == [str(LT.Opaque("pytorch_lightning.callbacks.model_checkpoint",
                                                    "ModelCheckpoint"))]


def test_large_but_in_range_hyper_parameters_cost_nothing(tmp_path, models):
    """n_grains and l_grain at their maxima with a small file: refused by shape at once,
    without building 2^40-element reference windows."""
    w_sd, w_hp, _, _ = models
    ck, y = _write(tmp_path, w_sd, dict(w_hp, n_grains=1 << 20), "w")
    t0 = time.process_time()
    e = _refused(tmp_path, ck, y)
    assert time.process_time() - t0 < 10
    assert any("'ola_windows' has shape" in p for p in e.problems), e.problems
