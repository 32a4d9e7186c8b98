"""The restricted checkpoint reader (weights_converter.lightning): real Lightning
structures load, crafted pickles are refused with CheckpointError naming the problem.

Pickles are assembled from raw opcodes (helpers below, also used by the other
test_converter_*.py files), so every test states exactly what the file contains."""
import collections
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch

from weights_converter import convert as CV
from weights_converter import lightning as LT
from weights_converter import make_fixtures as MF

# ------------------------------------------------------------------ pickle assembler

PROTO = b"\x80\x02"


def G(module, name):
    """GLOBAL module.name"""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def SG(module, name):
    """STACK_GLOBAL (protocol 4)"""
    return V(module) + V(name) + b"\x93"


def V(x):
    """A plain value (no globals) as pickle opcodes."""
    return pickle.dumps(x, protocol=2)[2:-1]


def T(*parts):
    return b"(" + b"".join(parts) + b"t"


def CALL(module, name, *args):
    return G(module, name) + T(*args) + b"R"


def OD():
    return G("collections", "OrderedDict") + b")R"


def PID(key="0", numel=4, storage="FloatStorage"):
    return b"(" + V("storage") + G("torch", storage) + V(key) + V("cpu") + V(numel) + b"tQ"


def TENSOR(offset, size, stride, key="0", numel=4, storage="FloatStorage", extra=b""):
    return (G("torch._utils", "_rebuild_tensor_v2") + b"(" + PID(key, numel, storage)
            + V(offset) + V(tuple(size)) + V(tuple(stride)) + V(False) + OD() + extra + b"tR")


def P(*body):
    return PROTO + b"".join(body) + b"."


def DICT(**items):
    """{'k': <opcodes>} -> a dict pickle body"""
    out = b"}(" if items else b"}"
    for k, v in items.items():
        out += V(k) + v
    return out + (b"u" if items else b"")


def write_ckpt(path, pkl, storages=None, compress=zipfile.ZIP_STORED, prefix="archive"):
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr(prefix + "/data.pkl", pkl)
        z.writestr(prefix + "/byteorder", "little")
        for k, v in (storages or {}).items():
            z.writestr(prefix + "/data/" + k, v)
        z.writestr(prefix + "/version", "3\n")
    return str(path)


F4 = np.arange(4, dtype="<f4").tobytes()


def load(tmp_path, pkl, storages=None, **kw):
    return LT.load_checkpoint(write_ckpt(tmp_path / "c.ckpt", pkl, storages, **kw))


def refused(tmp_path, pkl, match, storages=None, **kw):
    with pytest.raises(LT.CheckpointError, match=match) as e:
        load(tmp_path, pkl, storages, **kw)
    return str(e.value)


# ------------------------------------------------------------------ Lightning lines

@pytest.fixture(scope="module")
def noola():
    cfg = MF.CONFIGS["noola"]
    return MF.random_models(cfg, seed=5)


@pytest.mark.parametrize("version", LT.LIGHTNING_LINES)
def test_each_lightning_line_converts(tmp_path, noola, version):
    """1.0-1.4: callbacks keyed by the class; 1.5+: string keys and loops; 2.x: 2.1.0.
    Every line converts to the same tensors."""
    w, l = noola
    paths = MF.write_checkpoints(str(tmp_path), w, l, pl_version=version)
    ck = LT.load_checkpoint(paths["w_ckpt"])
    want = ["epoch", "global_step", "pytorch-lightning_version", "state_dict", "callbacks",
            "optimizer_states", "lr_schedulers", "hparams_name", "hyper_parameters"]
    if version != "1.4.9":
        want.insert(4, "loops")
        assert "fit_loop" in ck["loops"]
        assert all(type(k) is str and k.startswith("ModelCheckpoint{") for k in ck["callbacks"])
    else:
        assert all(isinstance(k, LT.Opaque) for k in ck["callbacks"])
    assert list(ck) == want and ck["pytorch-lightning_version"] == version
    assert type(ck["hyper_parameters"]) is dict
    assert type(ck["lr_schedulers"][0]["gamma"]) is np.float64
    t, meta, _ = CV.convert(str(tmp_path / "m.safetensors"), paths["w_ckpt"], paths["w_yaml"],
                            paths["l_ckpt"], paths["l_yaml"])
    ref = tmp_path / "ref"
    ref.mkdir()
    rp = MF.write_checkpoints(str(ref), w, l)
    t2, _, _ = CV.convert(str(ref / "m.safetensors"), rp["w_ckpt"], rp["w_yaml"], rp["l_ckpt"], rp["l_yaml"])
    assert sorted(t) == sorted(t2)
    for k in t:
        np.testing.assert_array_equal(t[k], t2[k])


def test_real_1_4_structure_loads(tmp_path):
    """What Lightning 1.4.9 writes: class-keyed callbacks (ModelCheckpoint and
    LearningRateMonitor), a plain-dict hyper_parameters, numpy float64 gamma, LongStorage."""
    ckpt = tmp_path / "real14.ckpt"
    with LT.stand_in_classes() as cls:
        torch.save({"epoch": 3, "global_step": 10, "pytorch-lightning_version": "1.4.9",
                    "state_dict": collections.OrderedDict(
                        [("a.weight", torch.ones(2, 3)),
                         ("bn.num_batches_tracked", torch.tensor(7))]),
                    "callbacks": {cls["ModelCheckpoint"]: {"monitor": None, "best_model_score": None},
                                  cls["LearningRateMonitor"]: {}},
                    "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]}],
                    "lr_schedulers": [{"gamma": np.float64(0.99), "base_lrs": [1e-4]}],
                    "hparams_name": "kwargs", "hyper_parameters": {"z_dim": 16}}, ckpt)
    with zipfile.ZipFile(ckpt) as z:
        data = z.read([n for n in z.namelist() if n.endswith("data.pkl")][0])
    for g in (b"pytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint",
              b"pytorch_lightning.callbacks.lr_monitor\nLearningRateMonitor",
              b"numpy.core.multiarray\nscalar", b"numpy\ndtype", b"_codecs\nencode",
              b"torch\nLongStorage"):
        assert g in data, g
    c = LT.load_checkpoint(ckpt)
    keys = list(c["callbacks"])
    assert [k.qualname for k in keys] == [
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
        "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor"]
    assert c["callbacks"][LT.Opaque("pytorch_lightning.callbacks.model_checkpoint",
                                    "ModelCheckpoint")]["monitor"] is None
    assert c["lr_schedulers"][0]["gamma"] == 0.99
    assert c["state_dict"]["bn.num_batches_tracked"].dtype == np.int64
    assert type(c["hyper_parameters"]) is dict


def test_opaque_placeholder_is_only_a_key(tmp_path):
    mc = G("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")
    c = load(tmp_path, P(b"}" + mc + b"}s"))
    (k,) = c
    assert isinstance(k, LT.Opaque) and not callable(k)
    with pytest.raises(AttributeError):
        k.module = "os"
    for how, body in (("call", mc + b")R"),
                      ("construct", mc + b")\x81"),
                      ("set the state of", mc + V({"a": 1}) + b"b"),
                      ("call", b"}" + mc + b"(tR" + b"s")):
        msg = refused(tmp_path, P(body), "Lightning class")
        assert how in msg and "ModelCheckpoint" in msg and "nothing was executed" in msg, msg
    # INST and OBJ construct by name / from the stack
    msg = refused(tmp_path, P(b"(ipytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint\n"), "INST")
    assert "ModelCheckpoint" in msg and "inert placeholder" in msg, msg
    msg = refused(tmp_path, P(b"(" + mc + b"o"), "construct \\(OBJ\\) the Lightning class")
    refused(tmp_path, P(b"(ios\nsystem\n"), "INST opcode to construct 'os.system'")
    refused(tmp_path, P(b"(" + V(1) + b"o"), "OBJ opcode")
    # not a class name, or not a Lightning callback/logger module: refused as any global
    refused(tmp_path, P(G("pytorch_lightning.callbacks.model_checkpoint", "rank_zero_warn")),
            "not in the allow-list")
    refused(tmp_path, P(G("pytorch_lightning.trainer", "Trainer")), "not in the allow-list")
    refused(tmp_path, P(G("pytorch_lightning.callbacks_evil", "X")), "not in the allow-list")


# ------------------------------------------------------------------ numpy and codecs

def _dtype(code="f8", order="<"):
    return (CALL("numpy", "dtype", V(code), V(False), V(True))
            + V((3, order, None, None, None, -1, -1, 0)) + b"b")


def test_numpy_scalar_and_codecs(tmp_path):
    payload = CALL("_codecs", "encode", V(np.float64(0.5).tobytes().decode("latin1")), V("latin1"))
    c = load(tmp_path, P(DICT(g=CALL("numpy.core.multiarray", "scalar", _dtype(), payload))))
    assert type(c["g"]) is np.float64 and c["g"] == 0.5
    c = load(tmp_path, P(DICT(g=CALL("numpy.core.multiarray", "scalar", _dtype("i4"), V(b"\x07\0\0\0")))))
    assert c["g"] == 7


@pytest.mark.parametrize("body,match", [
    (CALL("numpy.core.multiarray", "scalar", _dtype(), V(b"\0" * 7)), "payload"),
    (CALL("numpy.core.multiarray", "scalar", _dtype(), V(b"\0" * 9)), "payload"),
    (CALL("numpy.core.multiarray", "scalar", _dtype(), V("\0" * 8)), "payload"),
    (CALL("numpy.core.multiarray", "scalar", V("f8"), V(b"\0" * 8)), "plain numeric"),
    (CALL("numpy.core.multiarray", "scalar", _dtype(), V(b"\0" * 8), V(1)), "unexpected arguments"),
    (CALL("numpy", "dtype", V("O8"), V(False), V(True)), "unexpected arguments"),
    (CALL("numpy", "dtype", V("V8"), V(False), V(True)), "unexpected arguments"),
    (CALL("numpy", "dtype", V("f8"), V(0), V(1)), "unexpected arguments"),
    (CALL("numpy", "dtype", V("f8"), V(False), V(True)) + V((3, "<", (1,), None, None, -1, -1, 0)) + b"b",
     "__setstate__"),
    (CALL("numpy", "dtype", V("f8"), V(False), V(True)) + V({"names": 1}) + b"b", "__setstate__"),
    (CALL("_codecs", "encode", V("abc"), V("utf-8")), "_codecs.encode"),
    (CALL("_codecs", "encode", V(b"abc"), V("latin1")), "_codecs.encode"),
    (CALL("_codecs", "encode", V("\u20ac"), V("latin1")), "latin-1"),
    (CALL("_codecs", "encode", V("abc")), "_codecs.encode"),
    (CALL("numpy.core.multiarray", "_reconstruct", G("numpy", "ndarray"), V((0,)), V(b"b"))
     + V((1, (2,), None, False, b"\0" * 16)) + b"b", "plain numeric"),
    (CALL("numpy.core.multiarray", "_reconstruct", G("numpy", "ndarray"), V((0,)), V(b"b"))
     + b"(" + V(1) + V((3,)) + _dtype() + V(False) + V(b"\0" * 16) + b"tb", "16 bytes"),
    (CALL("numpy.core.multiarray", "_reconstruct", G("numpy", "ndarray"), V((0,)), V(b"b")),
     "never finished"),
    (CALL("numpy.core.multiarray", "_reconstruct", G("collections", "OrderedDict"), V((0,)), V(b"b")),
     "unexpected arguments"),
], ids=lambda v: None if isinstance(v, str) else "case")
def test_numpy_and_codecs_refusals(tmp_path, body, match):
    refused(tmp_path, P(DICT(x=body)), match)


def test_numpy_array(tmp_path):
    arr = (CALL("numpy.core.multiarray", "_reconstruct", G("numpy", "ndarray"), V((0,)), V(b"b"))
           + b"(" + V(1) + V((2, 2)) + _dtype() + V(False) + V(np.arange(4.0).tobytes()) + b"tb")
    c = load(tmp_path, P(DICT(a=arr)))
    np.testing.assert_array_equal(c["a"], [[0, 1], [2, 3]])


# ------------------------------------------------------------------ tensors

def test_valid_tensor_views(tmp_path):
    c = load(tmp_path, P(DICT(a=TENSOR(0, (2, 2), (1, 2)), b=TENSOR(1, (3,), (1,)),
                              e=TENSOR(4, (0, 3), (3, 1)))), {"0": F4})
    np.testing.assert_array_equal(c["a"], [[0, 2], [1, 3]])
    np.testing.assert_array_equal(c["b"], [1, 2, 3])
    assert c["e"].shape == (0, 3)


@pytest.mark.parametrize("offset,size,stride,match", [
    (0, (4,), (-1,), "stride"),                 # the 582-byte crash / heap read
    (3, (4,), (-1,), "stride"),
    (0, (2, 2), (2, -1), "stride"),
    (-1, (4,), (1,), "storage_offset"),
    (0, (-4,), (1,), "size"),
    (0, (1 << 30,), (0,), "overlaps itself"),   # stride 0 over a tiny storage
    (0, (5,), (1,), "reaches element 4"),
    (1, (4,), (1,), "reaches element 4"),
    (0, (2, 3), (3, 1), "reaches element 5"),
    (5, (0,), (1,), "offset 5 is past"),
    (0, (2.5,), (1,), "size"),                  # a non-integer size
    (0, (True,), (1,), "size"),
    (0, (4,), (1.0,), "stride"),
    (0, (4, 1), (1,), "size/stride"),
    (0, (1 << 20, 1 << 20, 1 << 20), (0, 0, 0), "too many elements"),
    (0, (1,) * 17, (1,) * 17, "size/stride"),
])
def test_bad_tensor_views_are_refused(tmp_path, offset, size, stride, match):
    msg = refused(tmp_path, P(DICT(a=TENSOR(offset, size, stride))), match, {"0": F4})
    assert "c.ckpt" in msg


def test_tensor_with_list_size_or_hooks_is_refused(tmp_path):
    body = (G("torch._utils", "_rebuild_tensor_v2") + b"(" + PID() + V(0) + V([4]) + V((1,))
            + V(False) + OD() + b"tR")
    refused(tmp_path, P(DICT(a=body)), "size/stride", {"0": F4})
    hooks = G("collections", "OrderedDict") + b"(" + V([(1, 2)]) + b"tR"
    body = (G("torch._utils", "_rebuild_tensor_v2") + b"(" + PID() + V(0) + V((4,)) + V((1,))
            + V(False) + hooks + b"tR")
    refused(tmp_path, P(DICT(a=body)), "backward_hooks", {"0": F4})
    refused(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,), extra=V({"neg": True})))), "metadata", {"0": F4})


def test_storage_mismatches_are_refused(tmp_path):
    refused(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,), numel=5))), "holds 16 bytes, 20 expected",
            {"0": F4})
    refused(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,), numel=3))), "more than the 12", {"0": F4})
    refused(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,), key="../0"))), "storage key", {"0": F4})
    refused(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,)), b=TENSOR(0, (2,), (1,), numel=2,
                                                                storage="DoubleStorage"))),
            "read as both", {"0": F4})
    refused(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,), numel=-1))), "elements", {"0": F4})
    refused(tmp_path, P(DICT(a=b"(" + V("storage") + G("torch", "FloatStorage") + V("0") + V("cpu")
                             + V(4) + V(5) + b"tQ")), "persistent id", {"0": F4})
    refused(tmp_path, P(DICT(a=V("0") + b"Q")), "persistent id", {"0": F4})


# ------------------------------------------------------------------ globals (allow-list holes)

REFUSED_GLOBALS = [
    ("torch.hub", "load"), ("torch.utils.cpp_extension", "load_inline"),
    ("torch.serialization", "load"), ("torch", "load"), ("torch._utils", "_rebuild_qtensor"),
    ("torch.jit", "load"), ("torch._C", "_jit_pass_inline"), ("torch.storage", "_load_from_bytes"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"), ("torch.nn.modules.module", "Module"),
    ("numpy", "load"), ("numpy.testing._private.utils", "runstring"), ("numpy.core.multiarray", "fromstring"),
    ("numpy", "frombuffer"), ("numpy.lib.npyio", "load"), ("numpy.core.numeric", "_frombuffer"),
    ("builtins", "getattr"), ("builtins", "eval"), ("builtins", "exec"), ("builtins", "__import__"),
    ("builtins", "open"), ("builtins", "compile"), ("builtins", "type"), ("builtins", "object"),
    ("__builtin__", "getattr"), ("__builtin__", "eval"), ("os", "system"), ("posix", "system"),
    ("nt", "system"), ("subprocess", "Popen"), ("subprocess", "check_output"), ("sys", "modules"),
    ("copyreg", "_reconstructor"), ("collections", "defaultdict"), ("collections", "namedtuple"),
    ("functools", "partial"), ("operator", "attrgetter"), ("pickle", "loads"), ("_pickle", "loads"),
    ("codecs", "encode"), ("_codecs", "decode"), ("pytorch_lightning", "LightningModule"),
    ("pytorch_lightning.utilities.parsing", "lightning_getattr"), ("weights_converter.lightning", "load_checkpoint"),
    ("weights_converter.lightning", "ALLOWED_GLOBALS"),
]


@pytest.mark.parametrize("module,name", REFUSED_GLOBALS)
def test_globals_outside_the_allow_list_are_refused(tmp_path, module, name):
    shown = "builtins" if module == "__builtin__" else module
    for body in (G(module, name) + V(("x",)) + b"R", PROTO[:1] + b"\x04" + SG(module, name) + b")R"):
        pkl = body if body.startswith(b"\x80") else P(body)
        if pkl.startswith(b"\x80\x04"):
            pkl += b"."
        msg = refused(tmp_path, pkl, "'%s.%s'" % (shown, name))
        assert "not in the allow-list" in msg and "nothing from the file was executed" in msg


def test_globals_by_odd_names_are_refused(tmp_path):
    refused(tmp_path, P(b"\x80\x04" + V(1) + V("x") + b"\x93"), "non-strings")
    refused(tmp_path, P(G("torch", "FloatStorage.__init__")), "not in the allow-list")
    refused(tmp_path, P(G("collections", "OrderedDict.fromkeys")), "not in the allow-list")
    refused(tmp_path, P(G(" torch", "load")), "not in the allow-list")


# allow-listed callables with unexpected arguments: count, types, keyword tricks
BAD_CALLS = [
    CALL("collections", "OrderedDict", V(1)),
    CALL("collections", "OrderedDict", V({"a": 1})),
    CALL("collections", "OrderedDict", V([(1, 2, 3)])),
    CALL("collections", "OrderedDict", V([]), V([])),
    G("collections", "OrderedDict") + V([]) + b"R",                     # args not a tuple
    G("collections", "OrderedDict") + V({"kw": 1}) + b"R",
    G("collections", "OrderedDict") + b")" + V({"kw": 1}) + b"\x92",    # NEWOBJ_EX kwargs
    G("collections", "OrderedDict") + V((1,)) + b"\x81",                # NEWOBJ with args
    CALL("builtins", "set", V("abc")),
    CALL("builtins", "set", V([[1]])),                                 # unhashable item
    CALL("builtins", "frozenset", V([1]), V([2])),
    CALL("torch._utils", "_rebuild_tensor_v2", V(1), V(2)),
    CALL("torch._utils", "_rebuild_tensor_v2", V("storage"), V(0), V((1,)), V((1,)), V(False), OD()),
    CALL("torch._utils", "_rebuild_parameter", V(1), V(False), OD()),
    CALL("torch._utils", "_rebuild_parameter", TENSOR(0, (4,), (1,)), V(1), OD()),
    CALL("torch._utils", "_rebuild_parameter", TENSOR(0, (4,), (1,)), V(False)),
    CALL("torch._utils", "_rebuild_parameter_with_state", TENSOR(0, (4,), (1,)), V(False), OD(), V({"a": 1})),
    CALL("torch._tensor", "_rebuild_from_type_v2", G("builtins", "set"), G("torch.nn.parameter", "Parameter"),
         V(()), V(None)),
    CALL("torch._tensor", "_rebuild_from_type_v2", G("torch._utils", "_rebuild_tensor_v2"),
         G("collections", "OrderedDict"), V(()), V(None)),
    CALL("torch._tensor", "_rebuild_from_type_v2", G("torch._utils", "_rebuild_tensor_v2"),
         G("torch.nn.parameter", "Parameter"), V(()), V({"x": 1})),
    G("torch.nn.parameter", "Parameter") + T(TENSOR(0, (4,), (1,))) + b"R",  # markers are not callable
    G("numpy", "ndarray") + V((1,)) + b"R",
    G("torch", "FloatStorage") + V((4,)) + b"R",
    G("torch", "FloatStorage") + b")\x81",
    G("pytorch_lightning.utilities.parsing", "AttributeDict") + V(({"a": 1},)) + b"R",
    G("pytorch_lightning.utilities.parsing", "AttributeDict") + V(({"a": 1},)) + b"\x81",
    G("torch._utils", "_rebuild_tensor_v2") + b")\x81",
    V(1) + b")R",                                                      # calling a non-global
    V("os.system") + b")R",
]


@pytest.mark.parametrize("body", BAD_CALLS, ids=range(len(BAD_CALLS)))
def test_allowed_callables_with_unexpected_arguments_are_refused(tmp_path, body):
    refused(tmp_path, P(DICT(x=body)), "refused", {"0": F4})


def test_valid_calls_of_allowed_callables(tmp_path):
    body = DICT(
        od=G("collections", "OrderedDict") + b"(" + V([("a", 1)]) + b"tR",
        s=CALL("builtins", "set", V([1, 2])), fs=CALL("__builtin__", "frozenset", V([3])),
        p=CALL("torch._utils", "_rebuild_parameter", TENSOR(0, (4,), (1,)), V(True), OD()),
        ps=CALL("torch._utils", "_rebuild_parameter_with_state", TENSOR(0, (2,), (1,)), V(False), OD(), V(None)),
        t=CALL("torch._tensor", "_rebuild_from_type_v2", G("torch._utils", "_rebuild_tensor_v2"),
               G("torch.nn.parameter", "Parameter"),
               T(PID(), V(0), V((4,)), V((1,)), V(False), OD()), V(None)),
        ad=G("pytorch_lightning.utilities.parsing", "AttributeDict") + b")\x81" + V(None) + b"b"
        + V("k") + V(1) + b"s")
    c = load(tmp_path, P(body), {"0": F4})
    assert c["od"] == {"a": 1} and c["s"] == {1, 2} and c["fs"] == frozenset([3])
    np.testing.assert_array_equal(c["p"], [0, 1, 2, 3])
    np.testing.assert_array_equal(c["t"], [0, 1, 2, 3])
    assert c["ad"] == {"k": 1} and isinstance(c["ad"], dict)


# ------------------------------------------------------------------ BUILD cannot mutate the reader

def test_build_cannot_mutate_allow_listed_objects(tmp_path):
    before = {k: (g.kind, g.extra, g.fn) for k, g in LT.ALLOWED_GLOBALS.items()}
    for target in (G("torch", "FloatStorage"), G("collections", "OrderedDict"),
                   G("torch._utils", "_rebuild_tensor_v2"), G("numpy", "ndarray")):
        for state in (V({"extra": "<f8"}), V(({"extra": "<f8"}, None)), V((None, {"fn": None}))):
            refused(tmp_path, P(target + state + b"b"), "set the state of")
    # containers accept only an empty state; tensors/arrays/scalars none
    refused(tmp_path, P(b"}" + V({"a": 1}) + b"b"), "BUILD")
    refused(tmp_path, P(OD() + V({"__class__": 1}) + b"b"), "BUILD")
    refused(tmp_path, P(b"]" + V(None) + b"b"), "BUILD")
    refused(tmp_path, P(TENSOR(0, (4,), (1,)) + V((1, (2, 2), None, False, b"x")) + b"b"), "BUILD",
            {"0": F4})
    refused(tmp_path, P(_dtype() + V((3, "<", None, None, None, -1, -1, 0)) + b"b"), "BUILD")
    after = {k: (g.kind, g.extra, g.fn) for k, g in LT.ALLOWED_GLOBALS.items()}
    assert after == before
    # and a later valid load still reads FloatStorage as float32
    c = load(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,)))), {"0": F4})
    assert c["a"].dtype == np.float32


# ------------------------------------------------------------------ stack / memo / nesting abuse

def test_deep_nesting_and_cycles_are_refused(tmp_path):
    n = 50_000
    refused(tmp_path, P(b"]" * n + b"a" * (n - 1)), "nested deeper")
    refused(tmp_path, P(b"(" * n), "nested MARKs")
    refused(tmp_path, P(b"}" + b"".join(V("k") + b"}" for _ in range(n)) + b"s" * n), "nested deeper")
    refused(tmp_path, P(b"]q\x00h\x00a"), "contains itself")              # l = [l]
    refused(tmp_path, P(b"}q\x00X\x01\x00\x00\x00ah\x00s"), "contains itself")  # d = {"a": d}
    # a pickle billion laughs: 10 references per level, 9 levels
    body = V("lol") + b"q\x00"
    for i in range(9):
        body += b"(" + (b"h" + bytes([i])) * 10 + b"lq" + bytes([i + 1])
    refused(tmp_path, P(body), "counting shared ones")


def test_memo_stack_and_opcode_abuse(tmp_path):
    refused(tmp_path, P(b"h\x05"), "never stored")
    refused(tmp_path, P(b"0"), "no MARK")
    refused(tmp_path, P(b"a"), "empty stack")
    refused(tmp_path, P(V(1) + V(2) + b"a"), "APPEND")
    refused(tmp_path, P(V("s") + V(1) + V(2) + b"s"), "SETITEM")
    refused(tmp_path, P(b"}" + b"]" + V(1) + b"s"), "list as a dict key")
    refused(tmp_path, P(b"}" + V(((((((((((1,),),),),),),),),),)) + V(1) + b"s"), "tuple as a dict key")
    refused(tmp_path, PROTO + b"\x8b" + struct.pack("<I", 5000) + b"\x01" * 5000 + b".", "5000-byte integer")
    refused(tmp_path, PROTO + b"I" + b"1" * 5000 + b"\n.", "over-long line|bad text integer")
    refused(tmp_path, PROTO + b"X" + struct.pack("<I", 1 << 30) + b"ab.", "truncated")
    refused(tmp_path, PROTO + b"\x8e" + struct.pack("<Q", 1 << 62) + b".", "truncated")
    refused(tmp_path, PROTO + V(1), "without a STOP")
    refused(tmp_path, P(b"\xff"), "opcode")
    refused(tmp_path, P(b"\x82\x01"), "EXT1")
    refused(tmp_path, PROTO + b"\x95" + struct.pack("<Q", 1 << 40) + b".", "frame")
    refused(tmp_path, b"\x80\x09" + b".", "protocol 9")
    refused(tmp_path, P(b"X\x02\x00\x00\x00\xff\xfe"), "UTF-8")
    # a list of a million references is fine memory-wise but not a checkpoint dict
    refused(tmp_path, P(b"(" + b"N" * 100000 + b"l"), "not a checkpoint dict")


def test_zip_bombs_are_refused(tmp_path):
    # a storage that decompresses past its declared size: read incrementally, stopped early
    bomb = b"\0" * (64 << 20)
    msg = refused(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,)))), "more than the 16 expected",
                  {"0": bomb}, compress=zipfile.ZIP_DEFLATED)
    assert "data/0" in msg
    # a data.pkl bomb (deflated 100 MB): over the pickle cap, never fully decompressed
    big = P(DICT(a=V(b"\0" * (100 << 20))))
    with zipfile.ZipFile(tmp_path / "b.ckpt", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", big)
    with pytest.raises(LT.CheckpointError, match="more than the"):
        LT.load_checkpoint(tmp_path / "b.ckpt")
    # a declared storage size over the limit is refused before reading anything
    refused(tmp_path, P(DICT(a=TENSOR(0, (4,), (1,), numel=1 << 40))), "over the limit", {"0": F4})


def test_only_checkpoint_errors_escape(tmp_path):
    """Odd but well-formed zips: encrypted flag, unknown compression, two data.pkl."""
    p = write_ckpt(tmp_path / "x.ckpt", P(DICT()))
    raw = bytearray(open(p, "rb").read())
    raw[6] |= 1  # 'encrypted' flag of the first local header
    i = raw.find(b"PK\x01\x02")
    raw[i + 8] |= 1
    (tmp_path / "enc.ckpt").write_bytes(bytes(raw))
    with pytest.raises(LT.CheckpointError):
        LT.load_checkpoint(tmp_path / "enc.ckpt")
    raw = bytearray(open(p, "rb").read())
    raw[i + 10] = 99  # compression method 99
    (tmp_path / "meth.ckpt").write_bytes(bytes(raw))
    with pytest.raises(LT.CheckpointError):
        LT.load_checkpoint(tmp_path / "meth.ckpt")
    with zipfile.ZipFile(tmp_path / "two.ckpt", "w") as z:
        z.writestr("a/data.pkl", P(DICT()))
        z.writestr("b/data.pkl", P(DICT()))
    with pytest.raises(LT.CheckpointError, match="no data.pkl"):
        LT.load_checkpoint(tmp_path / "two.ckpt")
    os.chmod(p, 0)
    try:
        if not os.access(p, os.R_OK):
            with pytest.raises(LT.CheckpointError, match="cannot be read"):
                LT.load_checkpoint(p)
    finally:
        os.chmod(p, 0o644)
