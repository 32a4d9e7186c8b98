"""Property-based mutation tests of the checkpoint reader (hypothesis, Debian's
python3-hypothesis): whatever bytes it is given -- mutated real pickles, random opcode
streams, mutated .ckpt zips -- load_checkpoint / load_pickle_bytes either return a result
or raise CheckpointError: no other exception, no hang. Examples and time are bounded so
the whole file runs in well under 30 s; runs are derandomised (reproducible) and write no
example database."""
import pickletools
import time
import zipfile

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from weights_converter import lightning as LT  # noqa: E402

from test_converter_reader import CALL, DICT, F4, G, OD, PID, PROTO, TENSOR, V, _dtype  # noqa: E402

SETTINGS = dict(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PER_EXAMPLE_S = 3.0


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Small checkpoints in the structure of two Lightning lines (1.4: class-keyed
    callbacks; 2.1: loops, string keys), with Parameters, a LongStorage and numpy gamma."""
    d = tmp_path_factory.mktemp("fuzz")
    sd = {"enc.weight": torch.nn.Parameter(torch.arange(6.0).reshape(3, 2)),
          "enc.bias": torch.ones(3), "bn.num_batches_tracked": torch.tensor(5),
          "t.weight": torch.arange(6.0).reshape(2, 3).t()}
    out = {}
    for v in ("1.4.9", "2.1.0"):
        p = d / ("c%s.ckpt" % v)
        with LT.stand_in_classes() as cls:
            ck = LT.lightning_checkpoint_dict(sd, {"z_dim": 3, "classes": ["a", "b"]},
                                              pl_version=v, classes=cls)
            torch.save(ck, p)
        LT.load_checkpoint(p)  # valid to begin with
        with zipfile.ZipFile(p) as z:
            name = [n for n in z.namelist() if n.endswith("data.pkl")][0]
            out[v] = (p, p.read_bytes(), z.read(name), name[: -len("data.pkl")])
    return out


def _check(fn):
    t0 = time.process_time()
    try:
        fn()
    except LT.CheckpointError:
        pass
    dt = time.process_time() - t0
    assert dt < PER_EXAMPLE_S, dt


OPCODES = sorted({ord(o.code) for o in pickletools.opcodes} | {0x00, 0xff, 0x7f})

mutation = st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "opcode"]),
                     st.floats(0, 1, exclude_max=True), st.integers(0, 255))


def _mutate(data, muts):
    b = bytearray(data)
    for kind, where, val in muts:
        if not b:
            break
        i = int(where * len(b))
        if kind == "flip":
            b[i] ^= 1 << (val % 8)
        elif kind == "set":
            b[i] = val
        elif kind == "insert":
            b[i:i] = bytes([val])
        elif kind == "delete":
            del b[i]
        elif kind == "truncate":
            del b[i:]
        else:
            b[i:i] = bytes([OPCODES[val % len(OPCODES)]])
    return bytes(b)


@settings(**SETTINGS)
@given(version=st.sampled_from(["1.4.9", "2.1.0"]), muts=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_pickles_only_raise_checkpoint_error(ckpts, version, muts):
    path, _, pkl, prefix = ckpts[version]
    data = _mutate(pkl, muts)
    with zipfile.ZipFile(path) as zf:
        _check(lambda: LT.load_pickle_bytes(data, zf, prefix, "fuzz"))


SNIPPETS = [
    b"(", b"t", b")", b"]", b"}", b"a", b"e", b"s", b"u", b"l", b"d", b"R", b"b", b"\x81", b"0",
    b"1", b"2", b"\x85", b"\x86", b"\x87", b"\x8f", b"\x90", b"\x91", b"\x94", b"N", b"\x88",
    b"h\x00", b"h\x01", b"q\x00", b"q\x01", b"Q", b"\x93", b".",
    V(0), V(1), V(-1), V(2 ** 70), V("storage"), V("latin1"), V("cpu"), V("0"), V("f8"), V(b"\0" * 8),
    V((0,)), V((1,)), V((2, 2)), V((4,)), V((-1,)), V((1, 2)), V(None), V({}), V([]), V(1.5),
    G("collections", "OrderedDict"), G("builtins", "set"), G("builtins", "frozenset"),
    G("_codecs", "encode"), G("numpy", "dtype"), G("numpy", "ndarray"),
    G("numpy.core.multiarray", "scalar"), G("numpy.core.multiarray", "_reconstruct"),
    G("torch._utils", "_rebuild_tensor_v2"), G("torch._utils", "_rebuild_parameter"),
    G("torch._tensor", "_rebuild_from_type_v2"), G("torch.nn.parameter", "Parameter"),
    G("torch", "FloatStorage"), G("torch", "LongStorage"),
    G("pytorch_lightning.utilities.parsing", "AttributeDict"),
    G("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"), G("os", "system"),
    PID(), PID(numel=5), TENSOR(0, (4,), (1,)), TENSOR(0, (2, 2), (1, 2)), OD(), _dtype(),
    CALL("numpy.core.multiarray", "scalar", _dtype(), V(b"\0" * 8)),
]


@settings(**SETTINGS)
@given(parts=st.lists(st.one_of(st.sampled_from(SNIPPETS), st.binary(max_size=3)), max_size=40))
def test_random_opcode_streams_only_raise_checkpoint_error(tmp_path_factory, parts):
    data = PROTO + b"".join(parts) + b"."
    _check(lambda: LT.load_pickle_bytes(data, _FZ[0], "archive/", "fuzz"))


_FZ = [None]


@pytest.fixture(scope="module", autouse=True)
def _storage_zip(tmp_path_factory):
    p = tmp_path_factory.mktemp("fz") / "s.ckpt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data/0", F4)
        z.writestr("archive/data.pkl", PROTO + DICT() + b".")
    _FZ[0] = zipfile.ZipFile(p)
    yield
    _FZ[0].close()


@settings(**dict(SETTINGS, max_examples=150))
@given(version=st.sampled_from(["1.4.9", "2.1.0"]), muts=st.lists(mutation, min_size=1, max_size=4),
       zone=st.sampled_from(["any", "tail"]))
def test_mutated_checkpoint_zips_only_raise_checkpoint_error(ckpts, tmp_path_factory, version, muts, zone):
    _, raw, _, _ = ckpts[version]
    if zone == "tail":  # the central directory and the last records
        cut = max(0, len(raw) - 600)
        data = raw[:cut] + _mutate(raw[cut:], muts)
    else:
        data = _mutate(raw, muts)
    p = tmp_path_factory.getbasetemp() / "mutated.ckpt"
    p.write_bytes(data)
    _check(lambda: LT.load_checkpoint(p))


def test_valid_results_of_the_fuzz_inputs_are_plain_data(ckpts):
    """What a successful load returns holds only data types (no callables)."""
    for v, (p, _, _, _) in ckpts.items():
        c = LT.load_checkpoint(p)
        seen = [c]
        while seen:
            o = seen.pop()
            if isinstance(o, dict):
                seen += list(o.keys()) + list(o.values())
            elif isinstance(o, (list, tuple, set, frozenset)):
                seen += list(o)
            else:
                assert isinstance(o, (str, bytes, int, float, type(None), np.ndarray, np.generic,
                                      LT.Opaque)), type(o)
        np.testing.assert_array_equal(c["state_dict"]["t.weight"], np.arange(6.0).reshape(2, 3).T)
