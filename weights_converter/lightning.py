"""Authors'-format PyTorch Lightning checkpoints, written and read without Lightning.

Writing (needs torch):
    save_lightning_checkpoint(path, state_dict, hparams, epoch=99, global_step=12345,
                              pl_version="1.4.9", optimizer=True)
        torch.save of the dict the given Lightning line writes (see LIGHTNING_LINES):
        epoch, global_step, pytorch-lightning_version, state_dict, loops (1.5+),
        callbacks (keyed by the callback CLASS up to 1.4: the file references
        `pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint` and
        `...lr_monitor.LearningRateMonitor` as globals, through stand-in classes registered
        under those names while writing; string keys from 1.5), optimizer_states,
        lr_schedulers (an ExponentialLR with a numpy float64 gamma), hparams_name and
        hyper_parameters (a plain dict, as real Lightning writes it).
    save_hparams_yaml(path, hparams)   the `hparams.yaml` Lightning writes next to it.

Reading (no torch needed, never runs pickled code):
    load_checkpoint(path) -> dict        tensors become numpy arrays; AttributeDict -> dict
    load_pickle_bytes(data, zf=None, prefix="archive/", path="<pickle>") -> object
    CheckpointError                      every refusal, with a message saying why

The pickle is interpreted by this module's own pickle machine (_Machine), not by
pickle.Unpickler: every opcode is checked, nothing is imported, and the only callables
are this module's validating re-implementations in ALLOWED_GLOBALS (tensor/parameter
rebuild, OrderedDict, set/frozenset, `_codecs.encode(str, 'latin1')`, numpy scalar/dtype/
array reconstruction of plain numeric dtypes, Lightning's AttributeDict, read as a dict).
References to Lightning callback/logger classes (OPAQUE_PREFIXES) become inert
placeholders (`Opaque`), usable as dict keys only: calling, constructing or BUILDing one
is refused. Limits (LIMITS) bound the pickle, memo, stack, nesting, expanded size,
storages and decompressed zip members.
"""
import collections
import contextlib
import os
import re
import struct
import sys
import types
import zipfile

import numpy as np


class CheckpointError(Exception):
    pass


class AttributeDict(dict):
    """What a Lightning AttributeDict becomes when read."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as e:
            raise AttributeError(key) from e


# ------------------------------------------------------------------ limits

LIMITS = dict(
    pickle_bytes=64 << 20,        # data.pkl, decompressed
    memo=1 << 20,                 # memo entries
    stack=1 << 20,                # values on the pickle stack
    marks=1000,                   # open MARKs
    depth=100,                    # nesting depth of the loaded object
    nodes=4_000_000,              # values of the loaded object, shared ones counted each time
    int_bytes=16,                 # LONG1/LONG4 payloads
    text_int_digits=40,           # INT/LONG/PUT/GET text
    ndim=16,                      # tensor/array dimensions
    elements=1 << 32,             # elements of one tensor/array
    storage_bytes=8 << 30,        # one storage
    total_storage_bytes=32 << 30,  # all storages
    deflate_ratio=64,             # decompressed/compressed for a deflated member
    key_depth=8,                  # nesting of a tuple used as a dict key / set item
)

OPAQUE_PREFIXES = ("pytorch_lightning.callbacks", "pytorch_lightning.loggers",
                   "lightning.pytorch.callbacks", "lightning.pytorch.loggers",
                   "lightning.fabric.loggers", "lightning_fabric.loggers")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]*$")


def _err(msg):
    return CheckpointError(msg)


class Opaque:
    """An inert placeholder for a Lightning callback/logger class referenced by a
    checkpoint (Lightning <= 1.4 keys `callbacks` by the class). Nothing is imported; it
    compares and hashes by its name and can be a dict key, nothing else."""
    __slots__ = ("module", "name")

    def __init__(self, module, name):
        object.__setattr__(self, "module", module)
        object.__setattr__(self, "name", name)

    def __setattr__(self, k, v):
        raise AttributeError("Opaque placeholders are immutable")

    @property
    def qualname(self):
        return "%s.%s" % (self.module, self.name)

    def __repr__(self):
        return "<class %s (placeholder, not loaded)>" % self.qualname

    __str__ = __repr__

    def __eq__(self, other):
        return isinstance(other, Opaque) and other.qualname == self.qualname

    def __hash__(self):
        return hash(("Opaque", self.module, self.name))


class _Global:
    """An allow-listed global: kind 'call' (REDUCE with validated arguments), 'class'
    (NEWOBJ with no arguments), 'marker' (only an argument of another global)."""

    def __init__(self, module, name, kind, fn=None, extra=None):
        self.module, self.name, self.kind, self.fn, self.extra = module, name, kind, fn, extra

    @property
    def qualname(self):
        return "%s.%s" % (self.module, self.name)

    def __repr__(self):
        return "<global %s>" % self.qualname


class _Stub:
    """A numpy dtype/array under construction: the reader's own object, finished by BUILD."""

    def __init__(self, what, value=None):
        self.what, self.value, self.memo_keys, self.done = what, value, [], False


class _Storage:
    def __init__(self, key, dtype_name, array):
        self.key, self.dtype_name, self.array = key, dtype_name, array


_STORAGES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": "bf16", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
    "UntypedStorage": "u1",
}


def _is_int(v):
    return type(v) is int


def _is_bool(v):
    return type(v) is bool


def _eq(v, const):
    """v == const without invoking any comparison but those of plain str/bytes/int/tuple."""
    if type(v) is not type(const):
        return False
    if type(v) is tuple:
        return len(v) == len(const) and all(_eq(a, b) for a, b in zip(v, const))
    return v == const


def _empty_mapping(v):
    return v is None or (type(v) in (dict, collections.OrderedDict) and not v)


def _want(cond, what, args):
    if not cond:
        raise _err("refused: %s called with unexpected arguments %s" % (what, _short(args)))


def _short(v, n=120):
    try:
        r = repr(v)
    except Exception:  # noqa: BLE001  (a repr of our own plain values; be safe anyway)
        r = "<%s>" % type(v).__name__
    return r if len(r) <= n else r[:n] + "..."


def _prod(shape, cap):
    n = 1
    for s in shape:
        n *= s
        if n > cap:
            return None
    return n


def _rebuild_tensor_v2(args):
    what = "torch._utils._rebuild_tensor_v2"
    _want(type(args) is tuple and len(args) in (6, 7), what, args)
    storage, offset, size, stride, requires_grad, hooks = args[:6]
    metadata = args[6] if len(args) == 7 else None
    _want(isinstance(storage, _Storage), what + " (storage)", args[:1])
    _want(_is_int(offset) and offset >= 0, what + " (storage_offset)", offset)
    _want(type(size) is tuple and type(stride) is tuple and len(size) == len(stride)
          and len(size) <= LIMITS["ndim"], what + " (size/stride)", (size, stride))
    _want(all(_is_int(s) and 0 <= s <= LIMITS["elements"] for s in size), what + " (size)", size)
    _want(all(_is_int(s) and 0 <= s <= LIMITS["elements"] for s in stride), what + " (stride)", stride)
    _want(_is_bool(requires_grad), what + " (requires_grad)", requires_grad)
    _want(_empty_mapping(hooks), what + " (backward_hooks)", hooks)
    _want(_empty_mapping(metadata), what + " (metadata: conjugate/negative/other tensor flags "
          "are not supported)", metadata)
    arr = storage.array
    n = _prod(size, LIMITS["elements"])
    if n is None:
        raise _err("refused: a tensor of shape %s has too many elements" % (list(size),))
    if n == 0:
        if offset > arr.size:
            raise _err("refused: a tensor's storage offset %d is past its storage (%d elements)"
                       % (offset, arr.size))
        return np.zeros(size, dtype=arr.dtype)
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= arr.size:
        raise _err("refused: a tensor of shape %s, offset %d, stride %s reaches element %d of "
                   "its storage %s, which holds %d" % (list(size), offset, list(stride), last,
                                                     storage.key, arr.size))
    if n > arr.size:
        raise _err("refused: a tensor of shape %s (%d elements) overlaps itself in its storage "
                   "%s of %d elements (stride %s)" % (list(size), n, storage.key, arr.size,
                                                     list(stride)))
    isz = arr.dtype.itemsize
    # offset, size and stride are checked above: every index lies inside the storage
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=size,
                                           strides=tuple(st * isz for st in stride),
                                           writeable=False)
    return np.array(view, copy=True)


def _rebuild_parameter(args):
    what = "torch._utils._rebuild_parameter"
    _want(type(args) is tuple and len(args) == 3, what, args)
    data, requires_grad, hooks = args
    _want(type(data) is np.ndarray and _is_bool(requires_grad) and _empty_mapping(hooks),
          what, args)
    return data


def _rebuild_parameter_with_state(args):
    what = "torch._utils._rebuild_parameter_with_state"
    _want(type(args) is tuple and len(args) == 4, what, args)
    data, requires_grad, hooks, state = args
    _want(type(data) is np.ndarray and _is_bool(requires_grad) and _empty_mapping(hooks)
          and _empty_mapping(state), what, args)
    return data


def _rebuild_from_type_v2(args):
    what = "torch._tensor._rebuild_from_type_v2"
    _want(type(args) is tuple and len(args) == 4, what, args)
    func, new_type, fargs, state = args
    _want(func is _G_REBUILD_TENSOR and isinstance(new_type, _Global)
          and new_type.qualname in ("torch.nn.parameter.Parameter", "torch.Tensor")
          and type(fargs) is tuple and _empty_mapping(state), what, args)
    return _rebuild_tensor_v2(fargs)


def _ordered_dict(args):
    _want(type(args) is tuple and (len(args) == 0 or (len(args) == 1 and type(args[0]) is list
          and all(type(p) in (tuple, list) and len(p) == 2 for p in args[0]))),
          "collections.OrderedDict", args)
    d = collections.OrderedDict()
    for k, v in (args[0] if args else ()):
        _check_key(k)
        d[k] = v
    return d


def _make_set(ctor, name):
    def f(args):
        _want(type(args) is tuple and (len(args) == 0 or (len(args) == 1 and type(args[0]) is list)),
              name, args)
        items = args[0] if args else []
        for k in items:
            _check_key(k)
        return ctor(items)
    return f


def _codecs_encode(args):
    _want(type(args) is tuple and len(args) == 2 and type(args[0]) is str
          and (_eq(args[1], "latin1") or _eq(args[1], "latin-1")), "_codecs.encode", args)
    try:
        return args[0].encode("latin1")
    except UnicodeEncodeError:
        raise _err("refused: _codecs.encode of a string that is not latin-1") from None


_DTYPE_CODE = re.compile(r"^[biufc][0-9]{1,2}$")


def _plain_dtype(d, what):
    if isinstance(d, _Stub) and d.what == "dtype":
        d = d.value
    if not isinstance(d, np.dtype) or d.kind not in "biufc" or d.fields is not None \
            or d.subdtype is not None or d.hasobject:
        raise _err("refused: %s needs a plain numeric numpy dtype, found %s" % (what, _short(d)))
    return d


def _np_dtype(args):
    what = "numpy.dtype"
    _want(type(args) is tuple and len(args) == 3 and type(args[0]) is str
          and _DTYPE_CODE.match(args[0]) and _is_bool(args[1]) and _is_bool(args[2]), what, args)
    try:
        d = np.dtype(args[0])
    except TypeError:
        raise _err("refused: numpy.dtype of unknown code %r" % args[0]) from None
    return _Stub("dtype", _plain_dtype(d, what))


def _finish_dtype(stub, state):
    _want(type(state) is tuple and len(state) in (8, 9) and _is_int(state[0])
          and state[0] in (3, 4) and type(state[1]) is str
          and state[1] in ("<", ">", "|", "=") and state[2] is None and state[3] is None
          and state[4] is None and all(_is_int(s) for s in state[5:8])
          and (len(state) == 8 or _empty_mapping(state[8])), "numpy.dtype.__setstate__", state)
    d = stub.value
    if state[1] in "<>" and d.itemsize > 1:
        d = d.newbyteorder(state[1])
    return d


def _np_scalar(args):
    what = "numpy.core.multiarray.scalar"
    _want(type(args) is tuple and len(args) == 2, what, args)
    d = _plain_dtype(args[0], what)
    _want(type(args[1]) is bytes and len(args[1]) == d.itemsize, what + " (payload)", args[1:])
    return np.frombuffer(args[1], dtype=d)[0]


def _np_reconstruct(args):
    what = "numpy.core.multiarray._reconstruct"
    _want(type(args) is tuple and len(args) == 3 and args[0] is _G_NDARRAY
          and _eq(args[1], (0,)) and _eq(args[2], b"b"), what, args)
    return _Stub("ndarray")


def _finish_array(stub, state):
    what = "numpy.ndarray.__setstate__"
    _want(type(state) is tuple and len(state) == 5 and _eq(state[0], 1)
          and type(state[1]) is tuple and len(state[1]) <= LIMITS["ndim"]
          and all(_is_int(s) and s >= 0 for s in state[1]) and _is_bool(state[3])
          and type(state[4]) is bytes, what, state)
    d = _plain_dtype(state[2], what)
    n = _prod(state[1], LIMITS["elements"])
    if n is None or n * d.itemsize != len(state[4]):
        raise _err("refused: a numpy array of shape %s, dtype %s with %d bytes of data"
                   % (list(state[1]), d, len(state[4])))
    a = np.frombuffer(state[4], dtype=d).reshape(state[1], order="F" if state[3] else "C")
    return np.array(a, copy=True)


def _new_attribute_dict():
    return AttributeDict()


_G_REBUILD_TENSOR = _Global("torch._utils", "_rebuild_tensor_v2", "call", _rebuild_tensor_v2)
_G_NDARRAY = _Global("numpy", "ndarray", "marker")

ALLOWED_GLOBALS = {}


def _allow(g):
    ALLOWED_GLOBALS[(g.module, g.name)] = g


_allow(_G_REBUILD_TENSOR)
_allow(_G_NDARRAY)
_allow(_Global("torch._utils", "_rebuild_parameter", "call", _rebuild_parameter))
_allow(_Global("torch._utils", "_rebuild_parameter_with_state", "call",
               _rebuild_parameter_with_state))
_allow(_Global("torch._tensor", "_rebuild_from_type_v2", "call", _rebuild_from_type_v2))
_allow(_Global("torch.nn.parameter", "Parameter", "marker"))
_allow(_Global("torch", "Tensor", "marker"))
_allow(_Global("collections", "OrderedDict", "class", _ordered_dict, collections.OrderedDict))
_allow(_Global("builtins", "set", "call", _make_set(set, "builtins.set")))
_allow(_Global("builtins", "frozenset", "call", _make_set(frozenset, "builtins.frozenset")))
_allow(_Global("_codecs", "encode", "call", _codecs_encode))


def _empty_bytes(args):  # protocol 2 pickles b"" as builtins.bytes()
    _want(_eq(args, ()), "builtins.bytes", args)
    return b""


_allow(_Global("builtins", "bytes", "call", _empty_bytes))
for _m in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _allow(_Global(_m, "scalar", "call", _np_scalar))
    _allow(_Global(_m, "_reconstruct", "call", _np_reconstruct))
_allow(_Global("numpy", "dtype", "call", _np_dtype))
for _m in ("pytorch_lightning.utilities.parsing", "lightning_fabric.utilities.data",
           "lightning.fabric.utilities.data"):
    _allow(_Global(_m, "AttributeDict", "class", None, _new_attribute_dict))
for _n, _d in _STORAGES.items():
    _allow(_Global("torch", _n, "marker", None, _d))

_KEY_SCALARS = (str, bytes, int, float, bool, type(None), Opaque)


def _check_key(k, depth=0):
    """Dict keys and set items: scalars, placeholders and shallow tuples of those (so
    hashing them cannot recurse without bound)."""
    if type(k) in _KEY_SCALARS:
        return
    if type(k) is tuple and depth < LIMITS["key_depth"]:
        for x in k:
            _check_key(x, depth + 1)
        return
    raise _err("refused: a %s as a dict key or set item" % type(k).__name__)


# ------------------------------------------------------------------ the pickle machine

_MAPPINGS = (dict, collections.OrderedDict, AttributeDict)


class _Stop(Exception):
    pass


class _Machine:
    """A pickle interpreter for protocols 0-5 that runs only ALLOWED_GLOBALS' validating
    functions. Unsupported opcodes (INST, OBJ, NEWOBJ_EX, EXT*, out-of-band buffers, text
    STRING/UNICODE/PERSID) are refused."""

    def __init__(self, data, path, persistent_load):
        self.data, self.pos, self.path = data, 0, path
        self.persistent_load = persistent_load
        self.stack, self.marks, self.memo = [], [], {}

    # -- reading
    def read(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise _err("the pickle ends inside an opcode (truncated?)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def readline(self, limit=1024):
        i = self.data.find(b"\n", self.pos, self.pos + limit + 1)
        if i < 0:
            raise _err("the pickle ends inside a text opcode or has an over-long line")
        b = self.data[self.pos:i]
        self.pos = i + 1
        return b

    def u(self, fmt):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    # -- stack
    def push(self, v):
        if len(self.stack) >= LIMITS["stack"]:
            raise _err("refused: more than %d values on the pickle stack" % LIMITS["stack"])
        self.stack.append(v)

    def pop(self):
        if not self.stack:
            raise _err("corrupt pickle: pop from an empty stack")
        return self.stack.pop()

    def top(self):
        if not self.stack:
            raise _err("corrupt pickle: empty stack")
        return self.stack[-1]

    def pop_mark(self):
        if not self.marks:
            raise _err("corrupt pickle: no MARK")
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def put(self, i, v=None):
        if i not in self.memo and len(self.memo) >= LIMITS["memo"]:
            raise _err("refused: more than %d memo entries" % LIMITS["memo"])
        v = self.top() if v is None else v
        self.memo[i] = v
        if isinstance(v, _Stub):
            v.memo_keys.append(i)

    def get(self, i):
        try:
            self.push(self.memo[i])
        except KeyError:
            raise _err("corrupt pickle: memo entry %d was never stored" % i) from None

    def text_int(self):
        s = self.readline(LIMITS["text_int_digits"] + 2)
        if s.endswith(b"L"):
            s = s[:-1]
        if not re.fullmatch(rb"[+-]?[0-9]{1,%d}" % LIMITS["text_int_digits"], s):
            raise _err("corrupt pickle: bad text integer %r" % s[:40])
        return int(s)

    def text_str(self, b, what):
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise _err("corrupt pickle: %s is not UTF-8" % what) from None

    def long_bytes(self, n):
        if n > LIMITS["int_bytes"]:
            raise _err("refused: a %d-byte integer in the pickle" % n)
        return int.from_bytes(self.read(n), "little", signed=True)

    # -- globals
    def find_global(self, module, name):
        if type(module) is not str or type(name) is not str:
            raise _err("corrupt pickle: a global named by non-strings")
        if module == "__builtin__":  # protocol-2 pickles written by Python 3 (fix_imports)
            module = "builtins"
        g = ALLOWED_GLOBALS.get((module, name))
        if g is not None:
            return g
        parts = module.split(".")
        if (all(_IDENT.match(p) for p in parts) and _CLASS_NAME.match(name)
                and any(module == p or module.startswith(p + ".") for p in OPAQUE_PREFIXES)):
            return Opaque(module, name)
        raise _err(
            "refused: the checkpoint's pickle references the global '%s.%s', which is not in "
            "the allow-list (tensors, storages, ordered dicts, plain containers, numpy "
            "scalars, Lightning AttributeDict and callback classes as inert keys); nothing "
            "from the file was executed" % (_short(module, 80)[1:-1], _short(name, 80)[1:-1]))

    def refuse_call(self, f, how):
        if isinstance(f, Opaque):
            raise _err("refused: the pickle tries to %s the Lightning class '%s', which is "
                       "accepted only as an inert placeholder (a dict key); nothing was "
                       "executed" % (how, f.qualname))
        if isinstance(f, _Global):
            raise _err("refused: the pickle tries to %s '%s', which is allowed only %s; "
                       "nothing was executed" % (how, f.qualname, {
                           "marker": "as an argument of a tensor/array rebuild",
                           "class": "as an empty container (NEWOBJ with no arguments)",
                           "call": "as a call with validated arguments (REDUCE)"}[f.kind]))
        raise _err("refused: the pickle tries to %s a %s, which is not an allow-listed "
                   "global; nothing was executed" % (how, type(f).__name__))

    # -- containers
    def check_list(self, v):
        if type(v) is not list:
            raise _err("refused: APPEND/APPENDS on a %s (only lists)" % type(v).__name__)
        return v

    def check_map(self, v):
        if type(v) not in _MAPPINGS:
            raise _err("refused: SETITEM(S) on a %s (only dicts)" % type(v).__name__)
        return v

    def setitems(self, d, items):
        if len(items) % 2:
            raise _err("corrupt pickle: SETITEMS with an odd number of values")
        for i in range(0, len(items), 2):
            _check_key(items[i])
            d[items[i]] = items[i + 1]

    def build(self):
        state = self.pop()
        inst = self.top()
        if isinstance(inst, _Stub) and not inst.done:
            value = (_finish_dtype if inst.what == "dtype" else _finish_array)(inst, state)
            inst.done, inst.value = True, value
            self.stack[-1] = value
            for k in inst.memo_keys:
                if self.memo.get(k) is inst:
                    self.memo[k] = value
            return
        if type(inst) in _MAPPINGS and (_empty_mapping(state) or (
                type(state) is tuple and len(state) == 2 and all(_empty_mapping(s) for s in state))):
            return  # an empty __dict__: nothing to set
        if isinstance(inst, (Opaque, _Global)):
            self.refuse_call(inst, "set the state of (BUILD)")
        raise _err("refused: BUILD (__setstate__) on a %s with state %s; only numpy "
                   "dtypes/arrays under construction accept a state"
                   % (type(inst).__name__, _short(state, 60)))

    def run(self):
        ops = _OPS
        data = self.data
        while True:
            if self.pos >= len(data):
                raise _err("the pickle ends without a STOP opcode (truncated?)")
            op = data[self.pos]
            self.pos += 1
            f = ops.get(op)
            if f is None:
                raise _err("refused: pickle opcode %r at byte %d is not supported"
                           % (bytes([op]), self.pos - 1))
            try:
                f(self)
            except _Stop:
                return self.value


_OPS = {}


def _simple(code, fn):
    _OPS[ord(code) if isinstance(code, str) else code] = fn


def _refused_op(name):
    def f(m):
        raise _err("refused: the pickle uses the %s opcode, which can construct arbitrary "
                   "objects; nothing was executed" % name)
    return f


def _stop(m):
    m.value = m.pop()
    raise _Stop()


def _proto(m):
    p = m.read(1)[0]
    if p > 5:
        raise _err("unsupported pickle protocol %d" % p)


def _frame(m):
    n = m.u("<Q")
    if n > len(m.data) - m.pos:
        raise _err("the pickle's frame runs past its end (truncated?)")


def _global(m):
    mod = m.text_str(m.readline(256), "a global's module")
    name = m.text_str(m.readline(256), "a global's name")
    m.push(m.find_global(mod, name))


def _stack_global(m):
    name = m.pop()
    mod = m.pop()
    m.push(m.find_global(mod, name))


def _reduce(m):
    args = m.pop()
    f = m.pop()
    if not (isinstance(f, _Global) and f.kind in ("call", "class") and f.fn is not None):
        m.refuse_call(f, "call (REDUCE)")
    if type(args) is not tuple:
        raise _err("refused: REDUCE of '%s' with %s arguments" % (f.qualname, type(args).__name__))
    m.push(f.fn(args))


def _newobj(m):
    args = m.pop()
    cls = m.pop()
    if not (isinstance(cls, _Global) and cls.kind == "class"):
        m.refuse_call(cls, "construct (NEWOBJ)")
    if not _eq(args, ()):
        raise _err("refused: NEWOBJ of '%s' with arguments %s" % (cls.qualname, _short(args)))
    m.push(cls.extra())


def _binpersid(m):
    m.push(m.persistent_load(m.pop()))


def _mark(m):
    if len(m.marks) >= LIMITS["marks"]:
        raise _err("refused: more than %d nested MARKs in the pickle" % LIMITS["marks"])
    m.marks.append(m.stack)
    m.stack = []


def _tuple_n(n):
    def f(m):
        if len(m.stack) < n:
            raise _err("corrupt pickle: TUPLE%d on a short stack" % n)
        items = tuple(m.stack[len(m.stack) - n:])
        del m.stack[len(m.stack) - n:]
        m.push(items)
    return f


def _dict(m):
    items = m.pop_mark()
    d = {}
    m.setitems(d, items)
    m.push(d)


def _setitem(m):
    v = m.pop()
    k = m.pop()
    m.setitems(m.check_map(m.top()), [k, v])


def _setitems(m):
    items = m.pop_mark()
    m.setitems(m.check_map(m.top()), items)


def _append(m):
    v = m.pop()
    m.check_list(m.top()).append(v)


def _appends(m):
    items = m.pop_mark()
    m.check_list(m.top()).extend(items)


def _additems(m):
    items = m.pop_mark()
    s = m.top()
    if type(s) is not set:
        raise _err("refused: ADDITEMS on a %s (only sets)" % type(s).__name__)
    for k in items:
        _check_key(k)
        s.add(k)


def _frozenset(m):
    items = m.pop_mark()
    for k in items:
        _check_key(k)
    m.push(frozenset(items))


def _pop(m):
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


def _binfloat(m):
    m.push(m.u(">d"))


def _text_float(m):
    s = m.readline(64)
    try:
        m.push(float(s))
    except ValueError:
        raise _err("corrupt pickle: bad text float") from None


def _text_int(m):
    s = m.readline(LIMITS["text_int_digits"] + 2)
    if s == b"00":
        return m.push(False)
    if s == b"01":
        return m.push(True)
    m.pos -= len(s) + 1
    m.push(m.text_int())


def _memoize(m):
    m.put(len(m.memo))


def _bytes_n(fmt):
    def f(m):
        m.push(bytes(m.read(m.u(fmt))))
    return f


def _unicode_n(fmt):
    def f(m):
        m.push(m.text_str(m.read(m.u(fmt)), "a string"))
    return f


def _binstring_n(fmt):
    def f(m):  # a Python 2 str: read as ASCII text, as pickle.Unpickler does by default
        b = m.read(m.u(fmt))
        try:
            m.push(b.decode("ascii"))
        except UnicodeDecodeError:
            raise _err("corrupt pickle: a non-ASCII Python 2 string") from None
    return f


_simple(".", _stop)
_simple(0x80, _proto)
_simple(0x95, _frame)
_simple("c", _global)
_simple(0x93, _stack_global)
_simple("R", _reduce)
_simple(0x81, _newobj)
_simple("b", lambda m: m.build())
_simple("Q", _binpersid)
_simple("(", _mark)
_simple("N", lambda m: m.push(None))
_simple(0x88, lambda m: m.push(True))
_simple(0x89, lambda m: m.push(False))
_simple("J", lambda m: m.push(m.u("<i")))
_simple("K", lambda m: m.push(m.u("<B")))
_simple("M", lambda m: m.push(m.u("<H")))
_simple(0x8a, lambda m: m.push(m.long_bytes(m.u("<B"))))
_simple(0x8b, lambda m: m.push(m.long_bytes(m.u("<I"))))
_simple("I", _text_int)
_simple("L", lambda m: m.push(m.text_int()))
_simple("G", _binfloat)
_simple("F", _text_float)
_simple("X", _unicode_n("<I"))
_simple(0x8c, _unicode_n("<B"))
_simple(0x8d, _unicode_n("<Q"))
_simple("B", _bytes_n("<I"))
_simple("C", _bytes_n("<B"))
_simple(0x8e, _bytes_n("<Q"))
_simple("T", _binstring_n("<I"))
_simple("U", _binstring_n("<B"))
_simple(")", lambda m: m.push(()))
_simple("t", lambda m: m.push(tuple(m.pop_mark())))
_simple(0x85, _tuple_n(1))
_simple(0x86, _tuple_n(2))
_simple(0x87, _tuple_n(3))
_simple("]", lambda m: m.push([]))
_simple("l", lambda m: m.push(list(m.pop_mark())))
_simple("}", lambda m: m.push({}))
_simple("d", _dict)
_simple(0x8f, lambda m: m.push(set()))
_simple(0x90, _additems)
_simple(0x91, _frozenset)
_simple("a", _append)
_simple("e", _appends)
_simple("s", _setitem)
_simple("u", _setitems)
_simple("0", _pop)
_simple("1", lambda m: m.pop_mark())
_simple("2", lambda m: m.push(m.top()))
_simple("p", lambda m: m.put(m.text_int()))
_simple("q", lambda m: m.put(m.u("<B")))
_simple("r", lambda m: m.put(m.u("<I")))
_simple(0x94, _memoize)
_simple("g", lambda m: m.get(m.text_int()))
_simple("h", lambda m: m.get(m.u("<B")))
_simple("j", lambda m: m.get(m.u("<I")))
def _inst(m):
    mod = m.text_str(m.readline(256), "a global's module")
    name = m.text_str(m.readline(256), "a global's name")
    raise _err("refused: the pickle uses the INST opcode to construct '%s.%s'%s; nothing was "
               "executed" % (_short(mod, 80)[1:-1], _short(name, 80)[1:-1],
                             " (a Lightning class, accepted only as an inert placeholder)"
                             if any(mod == p or mod.startswith(p + ".") for p in OPAQUE_PREFIXES)
                             else ""))


def _obj(m):
    items = m.pop_mark()
    if items and isinstance(items[0], (Opaque, _Global)):
        m.refuse_call(items[0], "construct (OBJ)")
    raise _err("refused: the pickle uses the OBJ opcode, which can construct arbitrary "
               "objects; nothing was executed")


_simple("i", _inst)
_simple("o", _obj)
for _c, _name in ((0x92, "NEWOBJ_EX"), (0x82, "EXT1"),
                  (0x83, "EXT2"), (0x84, "EXT4"), (0x96, "BYTEARRAY8"),
                  (0x97, "NEXT_BUFFER"), (0x98, "READONLY_BUFFER"), ("P", "PERSID (text)"),
                  ("S", "STRING (text)"), ("V", "UNICODE (text)")):
    _simple(_c, _refused_op(_name))


def _check_tree(root):
    """Refuses cycles, nesting deeper than LIMITS['depth'], more than LIMITS['nodes']
    values counted with sharing expanded (a pickle 'billion laughs'), values of types the
    reader does not produce, and numpy objects whose construction never finished.
    Iterative: deep structures cannot overflow the interpreter's stack."""
    scalars = (str, bytes, int, float, bool, type(None), Opaque, np.ndarray)
    done = {}
    onpath = set()

    def children(o):
        if type(o) in _MAPPINGS:
            for k, v in o.items():
                yield k
                yield v
        else:
            yield from o

    def leaf(o):
        if type(o) in scalars or isinstance(o, np.generic):
            return True
        if type(o) in _MAPPINGS or type(o) in (list, tuple, set, frozenset):
            return False
        if isinstance(o, _Stub):
            raise _err("refused: a numpy %s whose construction never finished" % o.what)
        if isinstance(o, _Global):
            raise _err("refused: the global '%s' appears as a value" % o.qualname)
        if isinstance(o, _Storage):
            raise _err("refused: a bare storage appears as a value")
        raise _err("refused: a %s in the checkpoint" % type(o).__name__)

    if leaf(root):
        return
    stack = [(root, children(root), [0, 1])]
    onpath.add(id(root))
    while stack:
        obj, it, acc = stack[-1]
        for ch in it:
            if leaf(ch):
                acc[1] += 1
            elif id(ch) in done:
                h, s = done[id(ch)]
                acc[0] = max(acc[0], h)
                acc[1] += s
            elif id(ch) in onpath:
                raise _err("refused: the pickle holds a container that contains itself")
            else:
                if len(stack) >= LIMITS["depth"]:
                    raise _err("refused: containers nested deeper than %d" % LIMITS["depth"])
                onpath.add(id(ch))
                stack.append((ch, children(ch), [0, 1]))
                break
            if acc[1] > LIMITS["nodes"]:
                raise _err("refused: more than %d values (counting shared ones each time)"
                           % LIMITS["nodes"])
        else:
            stack.pop()
            onpath.discard(id(obj))
            res = (acc[0] + 1, acc[1])
            done[id(obj)] = res
            if stack:
                pacc = stack[-1][2]
                pacc[0] = max(pacc[0], res[0])
                pacc[1] += res[1]
                if pacc[1] > LIMITS["nodes"]:
                    raise _err("refused: more than %d values (counting shared ones each time)"
                               % LIMITS["nodes"])


# ------------------------------------------------------------------ zip access

def _read_member(zf, name, limit, what):
    """Reads a zip member incrementally, never decompressing more than `limit` bytes (nor
    more than LIMITS['deflate_ratio'] times its compressed size). Returns bytes, or
    raises CheckpointError (too large)."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        limit = min(limit, info.compress_size * LIMITS["deflate_ratio"] + (1 << 20))
    if info.file_size > limit:
        raise _err("refused: %s %s declares %d bytes, more than the %d expected"
                   % (what, name, info.file_size, limit))
    out = bytearray()
    with zf.open(info) as f:
        while True:
            chunk = f.read(min(1 << 20, limit + 1 - len(out)))
            if not chunk:
                break
            out += chunk
            if len(out) > limit:
                raise _err("refused: %s %s decompresses to more than the %d bytes expected"
                           % (what, name, limit))
    return bytes(out)


class _StorageReader:
    def __init__(self, zf, prefix, path):
        self.zf, self.prefix, self.path, self.storages, self.total = zf, prefix, path, {}, 0

    def __call__(self, pid):
        if not (type(pid) is tuple and len(pid) == 5 and _eq(pid[0], "storage")
                and isinstance(pid[1], _Global) and pid[1].module == "torch"
                and pid[1].name in _STORAGES):
            raise _err("refused: unexpected persistent id %s" % _short(pid, 80))
        st, key, numel = pid[1], pid[2], pid[4]
        if type(key) is not str or not re.fullmatch(r"[A-Za-z0-9_]{1,64}", key):
            raise _err("refused: a storage key %s" % _short(key, 80))
        if not _is_int(numel) or numel < 0:
            raise _err("refused: storage %s with %s elements" % (key, _short(numel, 40)))
        if self.zf is None:
            raise _err("refused: a storage reference outside a checkpoint zip")
        if key in self.storages:
            s = self.storages[key]
            if s.dtype_name != st.name:
                raise _err("refused: storage %s is read as both %s and %s"
                           % (key, s.dtype_name, st.name))
            return s
        code = st.extra
        isz = 2 if code == "bf16" else np.dtype(code).itemsize
        want = numel * (1 if st.name == "UntypedStorage" else isz)
        if want > LIMITS["storage_bytes"] or self.total + want > LIMITS["total_storage_bytes"]:
            raise _err("refused: storage %s declares %d bytes, over the limit" % (key, want))
        member = "%sdata/%s" % (self.prefix, key)
        try:
            self.zf.getinfo(member)
        except KeyError:
            raise _err("storage record %s is missing (truncated file?)" % member) from None
        raw = _read_member(self.zf, member, want, "storage record")
        if len(raw) != want:
            raise _err("storage %s holds %d bytes, %d expected (%d %s elements)"
                       % (key, len(raw), want, numel, st.name))
        if code == "bf16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(code))
        self.total += want
        s = self.storages[key] = _Storage(key, st.name, arr)
        return s


def load_pickle_bytes(data, zf=None, prefix="archive/", path="<pickle>"):
    """Runs the restricted pickle machine over `data` (storages from the open zip `zf`).
    Returns the object or raises CheckpointError; never any other exception."""
    try:
        if len(data) > LIMITS["pickle_bytes"]:
            raise _err("refused: a pickle of %d bytes" % len(data))
        obj = _Machine(bytes(data), path, _StorageReader(zf, prefix, path)).run()
        _check_tree(obj)
        return obj
    except CheckpointError as e:
        raise CheckpointError("%s: %s" % (path, e)) from None
    except RecursionError:
        raise CheckpointError("%s: refused: structures nested too deeply" % path) from None
    except MemoryError:
        raise CheckpointError("%s: refused: out of memory while reading" % path) from None
    except Exception as e:  # noqa: BLE001  zip/zlib/struct errors of a corrupt file
        raise CheckpointError("%s: truncated or corrupt (%s: %s)"
                              % (path, type(e).__name__, _short(str(e), 200))) from None


def load_checkpoint(path):
    """Reads a torch.save zip checkpoint with the restricted pickle machine."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError("%s: cannot be read: %s" % (path, e.strerror or e)) from None
    if head[:1] == b"\x80":
        raise CheckpointError("%s: a legacy (pre-zip, torch < 1.6) pickle checkpoint; "
                              "re-save it with torch >= 1.6" % path)
    if head != b"PK\x03\x04":
        raise CheckpointError("%s: not a zip file, so not a torch.save checkpoint" % path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pkls) != 1:
                raise CheckpointError("%s: no data.pkl record in the zip (truncated or not a "
                                      "torch checkpoint)" % path)
            prefix = pkls[0][: -len("data.pkl")]
            if (prefix + "byteorder") in names:
                bo = _read_member(zf, prefix + "byteorder", 16, "record")
                if bo.strip() != b"little":
                    raise CheckpointError("%s: big-endian checkpoints are not supported" % path)
            data = _read_member(zf, pkls[0], LIMITS["pickle_bytes"], "record")
            obj = load_pickle_bytes(data, zf, prefix, path)
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError("%s: refused: structures nested too deeply" % path) from None
    except Exception as e:  # noqa: BLE001  zipfile raises many types for corrupt archives
        raise CheckpointError("%s: truncated or corrupt zip (%s: %s)"
                              % (path, type(e).__name__, _short(str(e), 200))) from None
    if not isinstance(obj, dict):
        raise CheckpointError("%s: the pickle is a %s, not a checkpoint dict" % (path, type(obj).__name__))
    return obj


# ------------------------------------------------------------------ writer

LIGHTNING_LINES = ("1.4.9", "1.5.10", "1.9.5", "2.1.0")

_STAND_INS = {
    "pytorch_lightning.utilities.parsing": ("AttributeDict", dict),
    "pytorch_lightning.callbacks.model_checkpoint": ("ModelCheckpoint", object),
    "pytorch_lightning.callbacks.lr_monitor": ("LearningRateMonitor", object),
}


@contextlib.contextmanager
def stand_in_classes():
    """Registers stand-in classes under the Lightning names the writer pickles (when
    Lightning is not installed), yields {name: class}, and removes what it added."""
    added, classes = [], {}
    try:
        for mod, (name, base) in _STAND_INS.items():
            try:
                m = __import__(mod, fromlist=[name])
                classes[name] = getattr(m, name)
                continue
            except ImportError:
                pass
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                if sub not in sys.modules:
                    sys.modules[sub] = types.ModuleType(sub)
                    added.append(sub)
            m = sys.modules[mod]
            cls = getattr(m, name, None)
            if cls is None:
                cls = type(name, (base,), {"__module__": mod, "__qualname__": name})
                setattr(m, name, cls)
            classes[name] = cls
        yield classes
    finally:
        for sub in reversed(added):
            sys.modules.pop(sub, None)


def _progress(n):
    return {"ready": n, "started": n, "processed": n, "completed": n}


def _loops_state(epoch, global_step, v2):
    fit = {
        "state_dict": {},
        "epoch_loop.state_dict": {"_batches_that_stepped": global_step},
        "epoch_loop.batch_progress": {"total": _progress(global_step), "current": _progress(0),
                                      "is_last_batch": False},
        "epoch_loop.scheduler_progress": {"total": {"ready": epoch, "completed": epoch},
                                          "current": {"ready": 0, "completed": 0}},
        "epoch_loop.automatic_optimization.state_dict": {},
        "epoch_loop.automatic_optimization.optim_progress": {
            "optimizer": {"step": {"total": {"ready": global_step, "completed": global_step},
                                   "current": {"ready": 0, "completed": 0}},
                          "zero_grad": {"total": _progress(global_step), "current": _progress(0)}}},
        "epoch_loop.manual_optimization.state_dict": {},
        "epoch_loop.manual_optimization.optim_step_progress": {
            "total": {"ready": 0, "completed": 0}, "current": {"ready": 0, "completed": 0}},
        "epoch_loop.val_loop.state_dict": {},
        "epoch_loop.val_loop.batch_progress": {"total": _progress(0), "current": _progress(0),
                                               "is_last_batch": False},
        "epoch_progress": {"total": _progress(epoch), "current": _progress(epoch)},
    }
    other = {"state_dict": {}, "batch_progress": {"total": _progress(0), "current": _progress(0),
                                                  "is_last_batch": False}}
    loops = {"fit_loop": fit, "validate_loop": dict(other), "test_loop": dict(other),
             "predict_loop": {"state_dict": {}, "batch_progress": {"total": _progress(0),
                                                                   "current": _progress(0)}}}
    if not v2:
        fit["epoch_loop.val_loop.dataloader_progress"] = {"total": _progress(0),
                                                          "current": _progress(0)}
    return loops


def lightning_checkpoint_dict(state_dict, hparams, epoch=99, global_step=12345,
                              pl_version="1.4.9", optimizer=True, classes=None):
    """The checkpoint dict the given Lightning line writes (torch tensors inside)."""
    import torch
    major, minor = (int(x) for x in pl_version.split(".")[:2])
    sd = collections.OrderedDict((k, v.detach().clone()) for k, v in state_dict.items())
    params = [k for k, v in sd.items() if v.is_floating_point() and not k.endswith(
        ("running_mean", "running_var", "filter_window", "ola_windows", "slice_kernel",
         "ola_divisor"))]
    lr = float(hparams.get("learning_rate", 1e-4))
    ckpt = collections.OrderedDict()
    ckpt["epoch"] = epoch
    ckpt["global_step"] = global_step
    ckpt["pytorch-lightning_version"] = pl_version
    ckpt["state_dict"] = sd
    if (major, minor) >= (1, 5):
        ckpt["loops"] = _loops_state(epoch, global_step, major >= 2)
    mc_state = {"monitor": None, "best_model_score": None,
                "best_model_path": "runs/checkpoints/epoch=%d-step=%d.ckpt" % (epoch, global_step),
                "current_score": None, "dirpath": "runs/checkpoints"}
    if (major, minor) >= (1, 5):
        mc_state.update({"best_k_models": {}, "kth_best_model_path": "",
                         "kth_value": torch.tensor(float("inf")), "last_model_path": ""})
        key = ("ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, "
               "'every_n_epochs': 1, 'train_time_interval': None%s}"
               % ("" if major >= 2 else ", 'save_on_train_epoch_end': True"))
        ckpt["callbacks"] = {key: mc_state}
    else:  # keyed by the callback class (LearningRateMonitor's empty state included)
        ckpt["callbacks"] = {classes["ModelCheckpoint"]: mc_state,
                             classes["LearningRateMonitor"]: {}}
    state = {}
    if optimizer:
        step = torch.tensor(float(global_step)) if major >= 2 else global_step
        for i, k in enumerate(params[:3]):
            state[i] = {"step": step, "exp_avg": torch.zeros_like(sd[k]),
                        "exp_avg_sq": torch.zeros_like(sd[k])}
    group = {"lr": lr * 0.5, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0,
             "amsgrad": False, "initial_lr": lr, "params": list(range(len(params)))}
    if major >= 2:
        group.update({"maximize": False, "foreach": None, "capturable": False,
                      "differentiable": False, "fused": None})
    ckpt["optimizer_states"] = [{"state": state, "param_groups": [group]}]
    ckpt["lr_schedulers"] = [{"gamma": np.float64(0.9999), "base_lrs": [lr],
                              "last_epoch": epoch, "_step_count": epoch + 1, "verbose": False,
                              "_get_lr_called_within_step": False, "_last_lr": [lr * 0.5]}]
    ckpt["hparams_name"] = "kwargs"
    ckpt["hyper_parameters"] = dict(hparams)
    return ckpt


def save_lightning_checkpoint(path, state_dict, hparams, epoch=99, global_step=12345,
                              pl_version="1.4.9", optimizer=True):
    import torch
    if pl_version.split(".")[0] not in ("1", "2"):
        raise ValueError("pl_version must be a 1.x or 2.x version")
    with stand_in_classes() as classes:
        ckpt = lightning_checkpoint_dict(state_dict, hparams, epoch, global_step, pl_version,
                                         optimizer, classes)
        torch.save(ckpt, path)


def save_hparams_yaml(path, hparams):
    import yaml
    with open(path, "w", newline="") as f:
        yaml.dump(dict(hparams), f)
