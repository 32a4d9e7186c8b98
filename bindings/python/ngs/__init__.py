"""ngs: Python bindings of the ngs inference engine (Neural Granular Sound Synthesis).

Pure Python over the C API of the shared library (engine/include/ngs/ngs.h) with ctypes
and numpy; nothing to compile. Every array going in is validated (dtype, shape) and
converted to a C-contiguous float32 array; every array coming out is a fresh float32
numpy array (or the caller's `out=` buffer). A failing C call raises NgsError(status,
message) with the library's own message (ngs_last_error()).

    import ngs
    with ngs.Model("models/drums.safetensors") as model:
        ctx = model.context(n_threads=2)
        kick = ctx.sample("Kick", seed=42)          # float32 [info.sample_length]
        z = ctx.path("circle", seconds=4.0, seed=1)
        audio = ctx.decode(z, seed=1)

The shared library is found, in this order: the file (or folder) named by the environment
variable NGS_LIBRARY; the copy installed inside this package (ngs/libngs.so*, which
`pip install ./bindings/python` builds and bundles); the build folder of this source tree
(<repo>/build/engine/libngs.so*, <repo>/build/lib*/libngs.so*, <repo>/build/libngs.so*);
the system loader ("libngs.so.0", "libngs.so", ctypes.util.find_library("ngs")).
ngs.load_library(path) picks one explicitly; it must be called before the first use.

Thread safety follows the C API: a Model may be shared by threads; use one Context per
thread. The C calls release the GIL. A Context called from a second thread while a call
is running raises ContextBusyError (nothing is computed); close() waits for the calls in
flight on other threads and refuses (RuntimeError) to run inside one of its own handle's
calls, e.g. from a progress callback.
"""
import ctypes
import ctypes.util
import dataclasses
import enum
import functools
import glob
import math
import os
import re
import threading
import weakref
from collections import namedtuple
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int,
                    c_size_t, c_uint32, c_uint64, c_void_p)

import numpy as np

__all__ = [
    "NgsError", "LibraryNotFoundError", "ContextBusyError", "Status", "Backend", "PathKind",
    "Precision", "CLASS_NONE",
    "ModelInfo", "Model", "Context", "LoopEvent", "Encoded", "LatentEncoded",
    "load_library", "library_path", "version", "model_format_version", "backend_probe",
    "backend_available", "PATH_KINDS",
]


def _tree_version():
    """The ngs project's version in the source tree: project(ngs VERSION x.y.z) of
    <repo>/CMakeLists.txt (an installed package has ngs/_version.py, written from it)."""
    try:
        repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
        with open(os.path.join(repo, "CMakeLists.txt"), encoding="utf-8") as f:
            m = re.search(r"project\(ngs\s+VERSION\s+([0-9][0-9.]*)", f.read())
    except OSError:
        m = None
    return m.group(1) if m else "unknown"


try:
    from ._version import __version__
except ImportError:
    __version__ = _tree_version()
# The C API these bindings mirror (ngs.h NGS_VERSION_MAJOR/MINOR): a library of another
# major version, or an older minor one, is refused.
API_VERSION = (0, 1)

CLASS_NONE = -1
PATH_KINDS = ("line", "circle", "spiral", "random", "back_and_forth")


class Status(enum.IntEnum):
    """ngs_status."""
    OK = 0
    INVALID_ARGUMENT = 1
    IO_ERROR = 2
    BAD_MODEL = 3
    UNSUPPORTED = 4
    CAPACITY = 5
    OUT_OF_MEMORY = 6
    BACKEND_ERROR = 7
    INTERNAL_ERROR = 8


class Backend(enum.IntEnum):
    """ngs_backend."""
    AUTO = 0
    CPU = 1
    CUDA = 2


class Precision(enum.IntEnum):
    """ngs_precision (docs/PRECISION.md)."""
    FP32 = 0
    FAST = 1


class PathKind(enum.IntEnum):
    """ngs_path_kind."""
    LINE = 0
    CIRCLE = 1
    SPIRAL = 2
    RANDOM = 3
    BACK_AND_FORTH = 4


class NgsError(RuntimeError):
    """A C API call failed: `status` (Status), `message` (ngs_last_error() of the call),
    `function` (the C function's name)."""

    def __init__(self, status, message, function=None):
        try:
            status = Status(status)
        except ValueError:
            pass
        self.status = status
        self.message = message
        self.function = function
        name = status.name.lower() if isinstance(status, Status) else "status %d" % status
        text = "%s (%s)" % (message, name) if message else name
        super().__init__("%s: %s" % (function, text) if function else text)

    def __reduce__(self):
        return (type(self), (self.status, self.message, self.function))


class LibraryNotFoundError(OSError):
    """The shared library libngs could not be found or loaded."""


class ContextBusyError(RuntimeError):
    """A Context was called while another thread is in a call on it (use one Context per
    thread); the call was not made."""


# ---- C structs (field order and types exactly as in ngs.h; C enums are int) ------------

class _model_params(Structure):
    _fields_ = [("backend", c_int), ("cuda_device", c_int)]


class _model_info(Structure):
    _fields_ = [("sample_rate", c_int), ("grain_length", c_int), ("hop_size", c_int),
                ("n_grains", c_int), ("sample_length", c_size_t), ("z_dim", c_int),
                ("filter_size", c_int), ("has_latent_model", c_int), ("e_dim", c_int),
                ("n_classes", c_int), ("weight_bits", c_int), ("backend", c_int)]


class _context_params(Structure):
    _fields_ = [("max_grains", c_int), ("n_threads", c_int), ("max_loop_length", c_size_t),
                ("precision", c_int)]


class _decode_params(Structure):
    _fields_ = [("seed", c_uint64), ("sequence", c_uint32)]


class _encode_params(Structure):
    _fields_ = [("seed", c_uint64), ("sequence", c_uint32)]


class _sample_params(Structure):
    _fields_ = [("class_index", c_int), ("temperature", c_float), ("seed", c_uint64),
                ("count", c_int)]


class _path_params(Structure):
    _fields_ = [("kind", c_int), ("temperature", c_float), ("seed", c_uint64),
                ("sequence", c_uint32), ("turns", c_float), ("points", c_int),
                ("legs", c_int), ("gamma", c_float)]


# ngs_progress_callback: void (*)(float fraction, void *user_data).
_progress_callback = CFUNCTYPE(None, c_float, c_void_p)


class _resynth_params(Structure):
    _fields_ = [("seed", c_uint64), ("segment_grains", c_int), ("crossfade", c_int),
                ("progress", _progress_callback), ("progress_user_data", c_void_p)]


class _loop_event(Structure):
    _fields_ = [("class_index", c_int), ("onset", c_float), ("amplitude", c_float)]


class _loop_params(Structure):
    _fields_ = [("temperature", c_float), ("seed", c_uint64)]


# ngs_synth_* (the real-time synth, docs/SYNTH.md).
class _synth_event(Structure):
    _fields_ = [("type", c_int), ("frame", c_uint32), ("voice", ctypes.c_int32),
                ("kind", c_int), ("class_index", c_int), ("temperature", c_float),
                ("seed", c_uint64), ("sequence", c_uint32), ("gain", c_float),
                ("z", c_void_p), ("use_path", c_int), ("path", _path_params),
                ("path_grains", c_int), ("glide", c_float), ("fade", ctypes.c_int32)]


class _synth_params(Structure):
    _fields_ = [("sample_rate", c_int), ("max_block", c_int), ("max_voices", c_int),
                ("n_threads", c_int), ("seed", c_uint64), ("queue_size", c_int),
                ("fade_frames", c_int), ("spread", c_int), ("resampler", c_int),
                ("precision", c_int)]


class _synth_stats(Structure):
    _fields_ = [("blocks", c_uint64), ("frames", c_uint64), ("events_applied", c_uint64),
                ("events_dropped", c_uint64), ("queue_overflows", c_uint64),
                ("voices_stolen", c_uint64), ("grains", c_uint64), ("active_voices", c_int),
                ("process_max_us", c_double), ("process_mean_us", c_double)]


# C name of each struct (used by the layout tests).
STRUCTS = {
    "ngs_model_params": _model_params, "ngs_model_info": _model_info,
    "ngs_context_params": _context_params, "ngs_decode_params": _decode_params,
    "ngs_encode_params": _encode_params, "ngs_sample_params": _sample_params,
    "ngs_path_params": _path_params, "ngs_resynth_params": _resynth_params,
    "ngs_loop_event": _loop_event, "ngs_loop_params": _loop_params,
    "ngs_synth_event": _synth_event, "ngs_synth_params": _synth_params,
    "ngs_synth_stats": _synth_stats,
}

_p = c_void_p  # float buffers and opaque handles
_status = c_int
# name: (restype, argtypes), in the order of ngs.h. Every NGS_API function is bound.
_SIGNATURES = {
    "ngs_version": (c_char_p, []),
    "ngs_model_format_version": (c_uint32, []),
    "ngs_status_string": (c_char_p, [c_int]),
    "ngs_last_error": (c_char_p, []),
    "ngs_backend_probe": (_status, [c_int]),
    "ngs_backend_name": (c_char_p, [c_int]),
    "ngs_model_default_params": (_model_params, []),
    "ngs_model_init_from_file": (_status, [c_char_p, _model_params, POINTER(c_void_p)]),
    "ngs_model_init_from_buffer": (_status, [_p, c_size_t, _model_params, POINTER(c_void_p)]),
    "ngs_model_free": (None, [_p]),
    "ngs_model_get_info": (_status, [_p, POINTER(_model_info)]),
    "ngs_model_class_name": (c_char_p, [_p, c_int]),
    "ngs_model_find_class": (c_int, [_p, c_char_p]),
    "ngs_model_metadata": (c_char_p, [_p, c_char_p]),
    "ngs_model_audio_length": (c_size_t, [_p, c_int]),
    "ngs_model_grains_for_duration": (c_int, [_p, c_double]),
    "ngs_context_default_params": (_context_params, []),
    "ngs_context_init": (_status, [_p, _context_params, POINTER(c_void_p)]),
    "ngs_context_free": (None, [_p]),
    "ngs_context_precision": (c_int, [_p]),
    "ngs_decode_default_params": (_decode_params, []),
    "ngs_decode": (_status, [_p, _p, c_int, _decode_params, _p, c_size_t]),
    "ngs_encode_default_params": (_encode_params, []),
    "ngs_encode": (_status, [_p, _p, c_size_t, _encode_params, _p, _p, _p, c_int,
                             POINTER(c_int)]),
    "ngs_embedding_sample": (_status, [_p, c_float, c_uint64, c_uint32, _p]),
    "ngs_latent_decode": (_status, [_p, _p, c_int, c_int, _p]),
    "ngs_latent_encode": (_status, [_p, _p, c_int, _p, _p]),
    "ngs_sample_default_params": (_sample_params, []),
    "ngs_sample": (_status, [_p, _sample_params, _p, c_size_t]),
    "ngs_sample_interpolation": (_status, [_p, _sample_params, c_int, _p, c_size_t]),
    "ngs_path_default_params": (_path_params, []),
    "ngs_path_generate": (_status, [_p, _path_params, c_int, _p]),
    "ngs_path_kind_from_name": (c_int, [c_char_p]),
    "ngs_resynth_default_params": (_resynth_params, []),
    "ngs_preprocess": (_status, [_p, _p, c_size_t, c_int]),
    "ngs_resynthesize": (_status, [_p, _p, c_size_t, _resynth_params, _p]),
    "ngs_loop_default_params": (_loop_params, []),
    "ngs_render_loop": (_status, [_p, POINTER(_loop_event), c_int, _loop_params, _p,
                                  c_size_t]),
    "ngs_synth_default_event": (_synth_event, [c_int]),
    "ngs_synth_default_params": (_synth_params, []),
    "ngs_synth_init": (_status, [_p, _synth_params, POINTER(c_void_p)]),
    "ngs_synth_free": (None, [_p]),
    "ngs_synth_process": (_status, [_p, POINTER(_synth_event), c_int, _p, _p, c_int]),
    "ngs_synth_post": (_status, [_p, POINTER(_synth_event)]),
    "ngs_synth_voice_new": (ctypes.c_int32, [_p]),
    "ngs_synth_latency": (c_int, [_p]),
    "ngs_synth_input_latency": (c_int, [_p]),
    "ngs_synth_reset": (_status, [_p]),
    "ngs_synth_get_stats": (_status, [_p, POINTER(_synth_stats)]),
}

# ---- finding and loading the library --------------------------------------------------

_PKG = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(_PKG)))
_lib = None
_lib_path = None
_lib_lock = threading.Lock()

BUILD_HINT = ("install the package with its library (`pip install ./bindings/python` in the "
              "ngs source tree), or build it with `cmake -S . -B build -G Ninja && cmake "
              "--build build --target ngs` there, or set NGS_LIBRARY to the path of libngs.so")


def _in_tree():
    """The package sits in the ngs source tree (bindings/python/ngs), not installed."""
    return os.path.isfile(os.path.join(_REPO, "engine", "include", "ngs", "ngs.h"))


def _candidates():
    """(description, path-or-name) pairs in search order."""
    env = os.environ.get("NGS_LIBRARY", "")
    if env:
        if os.path.isdir(env):
            found = sorted(glob.glob(os.path.join(env, "libngs.so*")), key=len)
            return [("NGS_LIBRARY", found[0] if found else os.path.join(env, "libngs.so"))]
        return [("NGS_LIBRARY", env)]
    # the library bundled by the wheel build (bindings/python/CMakeLists.txt), by path
    out = [("package", f) for f in sorted(glob.glob(os.path.join(_PKG, "libngs.so*")), key=len)]
    build = os.path.join(_REPO, "build")
    for pattern in ("engine/libngs.so", "engine/libngs.so.*", "lib*/libngs.so",
                    "lib*/libngs.so.*", "libngs.so", "libngs.so.*") if _in_tree() else ():
        for f in sorted(glob.glob(os.path.join(build, pattern)), key=len):
            out.append(("build folder", f))
    for name in ("libngs.so.%d" % API_VERSION[0], "libngs.so", ctypes.util.find_library("ngs")):
        if name:
            out.append(("system loader", name))
    return out


def _bind(lib, path):
    for name, (res, args) in _SIGNATURES.items():
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise LibraryNotFoundError(
                "ngs: %s has no symbol %s: the library is older than these bindings; "
                "rebuild it (%s)" % (path, name, BUILD_HINT)) from None
        f.restype = res
        f.argtypes = args
    v = lib.ngs_version().decode()
    try:
        major, minor = (int(x) for x in v.split(".")[:2])
    except ValueError:
        raise LibraryNotFoundError("ngs: %s reports a malformed version %r" % (path, v)) from None
    if major != API_VERSION[0] or minor < API_VERSION[1]:
        raise LibraryNotFoundError("ngs: %s is version %s; these bindings need %d.%d.x or a "
                                   "newer minor version" % ((path, v) + API_VERSION))


def load_library(path=None):
    """Loads (once) the shared library and returns the ctypes handle. `path`: an explicit
    file; otherwise the search order of the module's docstring. Raises
    LibraryNotFoundError, saying where it looked and how to build the library."""
    global _lib, _lib_path
    with _lib_lock:
        if _lib is not None:
            if path is not None and os.path.realpath(path) != os.path.realpath(_lib_path):
                raise LibraryNotFoundError("ngs: the library %s is already loaded; "
                                           "load_library(%r) must come first" % (_lib_path, path))
            return _lib
        cands = [("argument", path)] if path is not None else _candidates()
        tried = []
        for how, cand in cands:
            try:
                lib = ctypes.CDLL(cand)
            except OSError as e:
                tried.append("%s (%s): %s" % (cand, how, e))
                continue
            _bind(lib, cand)
            _lib, _lib_path = lib, cand
            return _lib
        where = ("NGS_LIBRARY=%s" % os.environ["NGS_LIBRARY"] if path is None and
                 os.environ.get("NGS_LIBRARY") else
                 "%s/libngs.so*, %s/{engine,lib*,.}/libngs.so*, then the system loader"
                 % (_PKG, os.path.join(_REPO, "build")) if path is None and _in_tree() else
                 "%s/libngs.so*, then the system loader" % _PKG if path is None else path)
        raise LibraryNotFoundError(
            "ngs: the shared library libngs.so was not found (searched %s); %s. Tried: %s"
            % (where, BUILD_HINT, "; ".join(tried) if tried else "nothing"))


def _L():
    return _lib if _lib is not None else load_library()


def library_path():
    """Path (or loader name) of the loaded library; loads it if needed."""
    _L()
    return _lib_path


def version():
    """Version string of the loaded library, e.g. "0.1.0"."""
    return _L().ngs_version().decode()


def model_format_version():
    return int(_L().ngs_model_format_version())


def _last_error():
    m = _L().ngs_last_error()
    return m.decode("utf-8", "replace") if m else ""


def _check(status, function):
    if status != Status.OK:
        msg = _last_error()
        if not msg:
            msg = _L().ngs_status_string(status).decode("utf-8", "replace")
        raise NgsError(status, msg, function)


def _backend(b):
    if isinstance(b, Backend):
        return b
    if isinstance(b, str):
        try:
            return Backend[b.upper()]
        except KeyError:
            raise ValueError("ngs: unknown backend %r (auto, cpu, cuda)" % b) from None
    if isinstance(b, (int, np.integer)) and not isinstance(b, bool) and int(b) in (0, 1, 2):
        return Backend(int(b))
    raise ValueError("ngs: unknown backend %r (auto, cpu, cuda)" % (b,))


def backend_probe(backend):
    """(True, "") if the backend can run here, else (False, reason)."""
    b = _backend(backend)
    st = _L().ngs_backend_probe(int(b))
    return (True, "") if st == Status.OK else (False, _last_error())


def backend_available(backend):
    return backend_probe(backend)[0]


# ---- argument checks ------------------------------------------------------------------

def _int(v, name, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError("ngs: %s must be an integer, got %r" % (name, v))
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError("ngs: %s = %d is outside [%s, %s]" % (
            name, v, lo if lo is not None else "-inf", hi if hi is not None else "inf"))
    return v


def _u64(v, name):
    return _int(v, name, 0, (1 << 64) - 1)


def _u32(v, name):
    return _int(v, name, 0, (1 << 32) - 1)


def _c_int(v, name, lo=None):
    return _int(v, name, -(1 << 31) if lo is None else lo, (1 << 31) - 1)


def _float(v, name):
    """A Python number for a C float; NaN/Inf pass through (the library reports them)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError("ngs: %s must be a number, got %r" % (name, v))
    try:
        return float(v)
    except OverflowError:  # an int beyond the double range
        raise ValueError("ngs: %s = %d is out of range" % (name, v)) from None


def _array(x, name, ndim, cols=None, min_rows=1):
    """x as a C-contiguous float32 array of `ndim` dims (and `cols` columns if 2-D).
    Accepts array-likes of real numbers (converted); raises ValueError otherwise."""
    if x is None:
        raise ValueError("ngs: %s is None; expected a float32 array" % name)
    if isinstance(x, (str, bytes)):
        raise ValueError("ngs: %s must be an array of numbers, got %s" % (name, type(x).__name__))
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError("ngs: %s is not convertible to an array: %s" % (name, e)) from None
    if a.dtype.kind not in "fiu":
        raise ValueError("ngs: %s has dtype %s; expected float32 (real numbers are converted)"
                         % (name, a.dtype))
    if a.ndim != ndim:
        want = "[n, %d]" % cols if ndim == 2 else "[n]" if ndim == 1 else "%d-D" % ndim
        raise ValueError("ngs: %s has shape %s; expected %s" % (name, a.shape, want))
    if ndim == 2 and cols is not None and a.shape[1] != cols:
        raise ValueError("ngs: %s has shape %s; expected [n, %d] (z_dim = %d)"
                         % (name, a.shape, cols, cols))
    if ndim >= 1 and a.shape[0] < min_rows:
        raise ValueError("ngs: %s is empty (shape %s); at least %d %s needed"
                         % (name, a.shape, min_rows, "row" if ndim == 2 else "sample"))
    with np.errstate(over="ignore"):  # values beyond float32 become Inf: the library
        return np.ascontiguousarray(a, dtype=np.float32)  # reports them


def _vector(x, name, size):
    a = _array(x, name, 1)
    if a.shape[0] != size:
        raise ValueError("ngs: %s has %d values; expected %d" % (name, a.shape[0], size))
    return a


def _out(out, size, shape, name="out"):
    """A float32 buffer of `size` elements, shaped `shape` when allocated here; a given
    `out` must be a writeable C-contiguous float32 ndarray of exactly `size` elements (its
    shape is kept)."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray):
        raise ValueError("ngs: %s must be a numpy.ndarray, got %s" % (name, type(out).__name__))
    if out.dtype != np.float32:
        raise ValueError("ngs: %s has dtype %s; expected float32" % (name, out.dtype))
    if not out.flags.c_contiguous:
        raise ValueError("ngs: %s must be C-contiguous" % name)
    if not out.flags.writeable:
        raise ValueError("ngs: %s is read-only" % name)
    if out.size != size:
        raise ValueError("ngs: %s has %d elements; expected %d (shape %s)"
                         % (name, out.size, size, shape))
    return out


def _ptr(a):
    return None if a is None else a.ctypes.data


# ---- calls in flight -------------------------------------------------------------------

_get_ident = threading.get_ident

def _model_call(f):
    """A Model method that calls the library: the model cannot be freed meanwhile."""
    @functools.wraps(f)
    def call(self, *args, **kwargs):
        me = _get_ident()
        self._enter(me)
        try:
            return f(self, *args, **kwargs)
        finally:
            self._leave(me)
    return call


def _context_call(f):
    """A Context method that uses the context's scratch memory: one at a time. A call
    while another thread is in one raises ContextBusyError; a call from inside one on
    the same thread (its progress callback) raises RuntimeError; close() waits."""
    @functools.wraps(f)
    def call(self, *args, **kwargs):
        me = _get_ident()
        if not self._busy.acquire(blocking=False):
            if self._owner == me:
                raise RuntimeError("ngs: Context.%s called from inside another call on the "
                                   "same Context (e.g. its progress callback)" % f.__name__)
            raise ContextBusyError("ngs: Context.%s: the Context is in a call on another "
                                   "thread; use one Context per thread" % f.__name__)
        self._owner = me
        try:
            if self._handle is None:
                raise ValueError("ngs: the context is closed")
            model = self.model
            model._enter(me)
            try:
                return f(self, *args, **kwargs)
            finally:
                model._leave(me)
        finally:
            self._owner = None
            self._busy.release()
    return call


# ---- model ----------------------------------------------------------------------------

class _Closable:
    """Context-manager use and finalisation for handles with a close() method."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """ngs_model_info."""
    sample_rate: int       # Hz
    grain_length: int      # l_grain, samples
    hop_size: int          # l_grain / 4
    n_grains: int          # grains of the training series (one-shot length)
    sample_length: int     # (n_grains + 3) * hop_size: samples of a one-shot
    z_dim: int             # grain latent size
    filter_size: int       # l_grain / 2 + 1
    has_latent_model: bool  # the file holds the sequence VAE
    e_dim: int             # embedding size (0 without latent model)
    n_classes: int         # class count (0 if unconditional)
    weight_bits: int       # 32 or 16
    backend: str           # "cpu" or "cuda" (never "auto")

    @property
    def duration(self):
        """Seconds of a one-shot."""
        return self.sample_length / self.sample_rate


class Model(_Closable):
    """A loaded model file (read whole into memory by the library). Immutable; may be shared by
    threads. `backend`: "auto" (CUDA when available, else CPU), "cpu" or "cuda".

        with ngs.Model("drums.safetensors", backend="cpu") as m: ...
        m = ngs.Model.from_bytes(open(path, "rb").read())
    """

    def __init__(self, path, backend="auto", cuda_device=0):
        self._lifetime_init()
        if path is None:
            raise ValueError("ngs: Model path is None")
        try:
            path = os.fspath(path)
        except TypeError:
            raise ValueError("ngs: Model path must be a str or os.PathLike, got %s"
                             % type(path).__name__) from None
        bpath = os.fsencode(path)
        if b"\0" in bpath:
            raise ValueError("ngs: Model path contains a NUL byte")
        params = self._params(backend, cuda_device)
        h = c_void_p()
        _check(_L().ngs_model_init_from_file(bpath, params, ctypes.byref(h)),
               "ngs_model_init_from_file")
        self._init(h, path)

    @classmethod
    def from_bytes(cls, data, backend="auto", cuda_device=0):
        """Loads a model from bytes (bytes, bytearray, memoryview or a uint8 array); the
        library copies them."""
        if data is None:
            raise ValueError("ngs: Model.from_bytes data is None")
        try:
            buf = memoryview(data).cast("B")
        except TypeError:
            raise ValueError("ngs: Model.from_bytes needs a bytes-like object, got %s"
                             % type(data).__name__) from None
        arr = np.frombuffer(buf, dtype=np.uint8) if buf.nbytes else np.zeros(1, np.uint8)
        arr = np.ascontiguousarray(arr)
        self = cls.__new__(cls)
        self._lifetime_init()
        params = cls._params(backend, cuda_device)
        h = c_void_p()
        _check(_L().ngs_model_init_from_buffer(arr.ctypes.data, buf.nbytes, params,
                                               ctypes.byref(h)), "ngs_model_init_from_buffer")
        self._init(h, "<bytes>")
        return self

    @staticmethod
    def _params(backend, cuda_device):
        p = _L().ngs_model_default_params()
        p.backend = int(_backend(backend))
        p.cuda_device = _c_int(cuda_device, "cuda_device", 0)
        return p

    def _init(self, h, path):
        self._handle = h.value
        self.filename = path
        lib = _L()
        info = _model_info()
        _check(lib.ngs_model_get_info(self._handle, ctypes.byref(info)), "ngs_model_get_info")
        self._info = ModelInfo(
            sample_rate=info.sample_rate, grain_length=info.grain_length,
            hop_size=info.hop_size, n_grains=info.n_grains, sample_length=info.sample_length,
            z_dim=info.z_dim, filter_size=info.filter_size,
            has_latent_model=bool(info.has_latent_model), e_dim=info.e_dim,
            n_classes=info.n_classes, weight_bits=info.weight_bits,
            backend=lib.ngs_backend_name(info.backend).decode())
        self._classes = tuple(lib.ngs_model_class_name(self._handle, i).decode("utf-8", "replace")
                              for i in range(info.n_classes))

    # lifetime: the C model is freed after its last context (ngs.h). close() closes the
    # live contexts first; contexts that are being finalized by the garbage collector
    # (their weak references already cleared) free the model when the last one goes.
    # Every call that uses the handle (its own and its contexts') is counted in _users
    # (thread id -> nesting depth) for its duration: close() waits until none is left.
    def _lifetime_init(self):
        self._handle = None
        self._contexts = weakref.WeakSet()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when _users empties
        self._users = {}       # thread id -> calls in flight on that thread
        self._closing = False  # set by close(): no new calls
        self._live = 0         # contexts created and not yet freed
        self._pending = None   # handle to free once _live reaches 0

    def _enter(self, me):
        """Holds the model open for a call on thread `me` (until _leave(me)); returns the
        handle. A call nested in one already running on this thread is let through
        while closing."""
        with self._lock:
            if self._handle is None or (self._closing and me not in self._users):
                raise ValueError("ngs: the model is closed")
            self._users[me] = self._users.get(me, 0) + 1
            return self._handle

    def _leave(self, me):
        with self._lock:
            n = self._users[me] - 1
            if n:
                self._users[me] = n
            else:
                del self._users[me]
                if not self._users:
                    self._idle.notify_all()

    def _context_created(self):
        with self._lock:
            self._live += 1

    def _context_freed(self):
        with self._lock:
            self._live -= 1
            h = self._pending if self._live == 0 else None
            if h is not None:
                self._pending = None
        if h is not None:
            _lib.ngs_model_free(h)

    @property
    def closed(self):
        return self._handle is None

    def _h(self):
        if self._handle is None:
            raise ValueError("ngs: the model is closed")
        return self._handle

    def close(self):
        """Frees the model, after closing its live contexts. Idempotent. Waits for the
        calls in flight on other threads (on the model and its contexts); new calls
        raise ValueError("... closed") from now on. Raises RuntimeError, closing nothing,
        when called from inside a call on this model or one of its contexts (e.g. a
        progress callback)."""
        if getattr(self, "_handle", None) is None:
            return
        me = threading.get_ident()
        with self._lock:
            if me in self._users:
                raise RuntimeError("ngs: Model.close() called from inside a call on the model "
                                   "or one of its contexts (e.g. a progress callback); close "
                                   "it after the call returns")
            self._closing = True
            while self._users:  # calls in flight on other threads
                self._idle.wait()
            if self._handle is None:  # closed meanwhile by another thread
                return
        for ctx in list(self._contexts):
            ctx.close()
        with self._lock:
            h, self._handle = self._handle, None
            if self._live > 0:
                self._pending, h = h, None
        if h is not None:
            _lib.ngs_model_free(h)

    def __repr__(self):
        if self._handle is None:
            return "<ngs.Model closed>"
        i = self._info
        return ("<ngs.Model %s: %d Hz, l_grain %d, %d grains, %d classes, fp%d, %s>"
                % (self.filename, i.sample_rate, i.grain_length, i.n_grains, i.n_classes,
                   i.weight_bits, i.backend))

    # queries
    @property
    def info(self):
        self._h()
        return self._info

    @property
    def classes(self):
        """Class names, in index order (empty for unconditional models)."""
        self._h()
        return self._classes

    @_model_call
    def class_index(self, cls):
        """Index of a class given by name (case-insensitive) or index; None gives
        CLASS_NONE (-1). Raises ValueError for an unknown name. An index is passed on
        unchecked (the library reports one out of range)."""
        h = self._h()
        if cls is None:
            return CLASS_NONE
        if isinstance(cls, str):
            b = cls.encode("utf-8")
            i = _lib.ngs_model_find_class(h, b) if b"\0" not in b else -1
            if i < 0:
                raise ValueError("ngs: the model has no class %r (classes: %s)"
                                 % (cls, ", ".join(self._classes) or "none, unconditional"))
            return i
        return _c_int(cls, "class")

    @_model_call
    def metadata(self, key):
        """Raw metadata string of the model file (e.g. "ngs.config"), or None if absent."""
        h = self._h()
        if not isinstance(key, str):
            raise ValueError("ngs: metadata key must be a str, got %r" % (key,))
        b = key.encode("utf-8")
        if b"\0" in b:
            return None
        v = _lib.ngs_model_metadata(h, b)
        return None if v is None else v.decode("utf-8", "replace")

    @_model_call
    def audio_length(self, n_grains):
        """Samples of a decode of n_grains grains: (n_grains + 3) * hop (0 if n < 1)."""
        return int(_lib.ngs_model_audio_length(self._h(), _c_int(n_grains, "n_grains")))

    @_model_call
    def grains_for_duration(self, seconds):
        """Grains of a free synthesis of `seconds` (0 if shorter than one grain)."""
        s = _float(seconds, "seconds")
        return int(_lib.ngs_model_grains_for_duration(self._h(), s))

    def context(self, max_grains=0, n_threads=1, max_loop_length=0, precision="fp32"):
        """A new Context (scratch memory for one thread) on this model."""
        return Context(self, max_grains=max_grains, n_threads=n_threads,
                       max_loop_length=max_loop_length, precision=precision)

    # model-level processes (no context needed)
    @_model_call
    def embedding_sample(self, temperature=1.0, seed=0, sequence=0, out=None):
        """e [e_dim] = temperature * standard normals (domain 3, docs/RANDOM.md)."""
        h = self._h()
        e = _out(out, self._info.e_dim, (self._info.e_dim,))
        _check(_lib.ngs_embedding_sample(h, _float(temperature, "temperature"),
                                         _u64(seed, "seed"), _u32(sequence, "sequence"),
                                         _ptr(e)), "ngs_embedding_sample")
        return e

    @_model_call
    def path(self, kind, n_grains=None, seconds=None, temperature=1.0, seed=0, sequence=0,
             turns=1.0, points=4, legs=4, gamma=2.0, out=None):
        """A latent path (docs/PATHS.md) of n_grains grains, or of the grains of `seconds`:
        float32 [n_grains, z_dim]. kind: "line", "circle", "spiral", "random",
        "back_and_forth" (or a PathKind)."""
        h = self._h()
        n = self._grains(n_grains, seconds)
        p = _lib.ngs_path_default_params()
        p.kind = _path_kind(kind)
        p.temperature = _float(temperature, "temperature")
        p.seed = _u64(seed, "seed")
        p.sequence = _u32(sequence, "sequence")
        p.turns = _float(turns, "turns")
        p.points = _c_int(points, "points")
        p.legs = _c_int(legs, "legs")
        p.gamma = _float(gamma, "gamma")
        zd = self._info.z_dim
        z = _out(out, n * zd, (n, zd))
        _check(_lib.ngs_path_generate(h, p, n, _ptr(z)), "ngs_path_generate")
        return z

    @_model_call
    def preprocess(self, audio, normalize=False):
        """docs/MODEL_SPEC.md §6 pre-processing (mean removal, 50 Hz high-pass, peak normalisation
        to 0.9 if the peak is >= 1 or `normalize`) of mono audio at the model's rate;
        returns a new float32 array (the input is not changed)."""
        h = self._h()
        a = _array(audio, "audio", 1)
        if not isinstance(normalize, (bool, int, np.bool_, np.integer)):
            raise ValueError("ngs: normalize must be a bool, got %r" % (normalize,))
        a = np.array(a, dtype=np.float32, copy=True)
        _check(_lib.ngs_preprocess(h, _ptr(a), a.shape[0], 1 if normalize else 0),
               "ngs_preprocess")
        return a

    def _grains(self, n_grains, seconds):
        if (n_grains is None) == (seconds is None):
            raise ValueError("ngs: give exactly one of n_grains and seconds")
        if seconds is not None:
            s = _float(seconds, "seconds")
            if not math.isfinite(s) or s <= 0:
                raise ValueError("ngs: seconds = %r must be finite and > 0" % s)
            n = self.grains_for_duration(s)
            if n < 1:
                raise ValueError("ngs: %g s is shorter than one grain (%d samples at %d Hz)"
                                 % (s, self._info.grain_length, self._info.sample_rate))
            return n
        return _c_int(n_grains, "n_grains", 1)


def _precision(precision):
    if isinstance(precision, Precision):
        return int(precision)
    if isinstance(precision, str) and precision in ("fp32", "fast"):
        return int(Precision[precision.upper()])
    raise ValueError("ngs: precision must be \"fp32\" or \"fast\", got %r" % (precision,))


def _path_kind(kind):
    if isinstance(kind, PathKind):
        return int(kind)
    if isinstance(kind, str):
        b = kind.encode("utf-8")
        k = _L().ngs_path_kind_from_name(b) if b"\0" not in b else -1
        if k < 0:
            raise ValueError("ngs: unknown path kind %r (%s)" % (kind, ", ".join(PATH_KINDS)))
        return k
    if isinstance(kind, (int, np.integer)) and not isinstance(kind, bool) \
            and 0 <= int(kind) < len(PATH_KINDS):
        return int(kind)
    raise ValueError("ngs: unknown path kind %r (%s)" % (kind, ", ".join(PATH_KINDS)))


# ---- context --------------------------------------------------------------------------

Encoded = namedtuple("Encoded", "mu logvar z")
LatentEncoded = namedtuple("LatentEncoded", "mu logvar")


@dataclasses.dataclass
class LoopEvent:
    """ngs_loop_event: `cls` a class name, index or None (unconditional models);
    `onset` a fraction of the loop in [0, 1); `amplitude` in [0, 1]."""
    cls: object
    onset: float
    amplitude: float = 1.0


class Context(_Closable):
    """Scratch memory of one caller (one per thread) on a Model; all processing calls.
    max_grains: longest series one call may decode/encode (0 = 8 x the model's
    n_grains); n_threads: CPU threads per call; max_loop_length: longest render_loop in
    samples (0 = 10 s); precision: "fp32" (default, the reference) or "fast" (bf16
    products with fp32 sums, int8 recurrence, docs/PRECISION.md; runs fp32 where the CPU has no bf16: see
    the `precision` attribute, the precision actually used)."""

    def __init__(self, model, max_grains=0, n_threads=1, max_loop_length=0, precision="fp32"):
        self._handle = None
        self._busy = threading.Lock()  # held by a call in flight (_context_call)
        self._owner = None             # thread id of that call
        if not isinstance(model, Model):
            raise ValueError("ngs: Context needs an ngs.Model, got %s" % type(model).__name__)
        me = _get_ident()
        mh = model._enter(me)
        try:
            p = _L().ngs_context_default_params()
            p.max_grains = _c_int(max_grains, "max_grains", 0)
            p.n_threads = _c_int(n_threads, "n_threads")
            p.max_loop_length = _int(max_loop_length, "max_loop_length", 0, (1 << 63) - 1)
            p.precision = _precision(precision)
            h = c_void_p()
            _check(_lib.ngs_context_init(mh, p, ctypes.byref(h)), "ngs_context_init")
            self._handle = h.value
            self.model = model  # keeps the model alive while the context lives
            info = model._info
            # The effective limits (ngs.h: 0 means 8 x n_grains and 10 s at the model's
            # rate).
            self.max_grains = p.max_grains or 8 * info.n_grains
            self.max_loop_length = p.max_loop_length or 10 * info.sample_rate
            self.n_threads = p.n_threads
            # What the context runs (fast falls back to fp32 without bf16).
            self.precision = Precision(_lib.ngs_context_precision(self._handle)).name.lower()
            model._context_created()
            model._contexts.add(self)
        finally:
            model._leave(me)

    @property
    def closed(self):
        return self._handle is None

    def close(self):
        """Frees the context. Idempotent. Waits for a call in flight on another thread;
        raises RuntimeError, closing nothing, when called from inside one of its own
        calls (e.g. its progress callback)."""
        if getattr(self, "_handle", None) is None:
            return
        if self._owner == threading.get_ident():
            raise RuntimeError("ngs: Context.close() called from inside one of its own calls "
                               "(e.g. its progress callback); close it after the call returns")
        with self._busy:  # waits for a call in flight on another thread
            if self._handle is None:  # closed meanwhile by another thread
                return
            h, self._handle = self._handle, None
            _lib.ngs_context_free(h)
        self.model._context_freed()

    def __repr__(self):
        return "<ngs.Context %s on %r>" % ("closed" if self.closed else
                                          "%d threads" % self.n_threads, self.model)

    def _h(self):
        if self._handle is None:
            raise ValueError("ngs: the context is closed")
        self.model._h()
        return self._handle

    @property
    def info(self):
        return self.model.info

    # grain VAE
    @_context_call
    def decode(self, z, seed=0, sequence=0, out=None):
        """Decodes z [n_grains, z_dim] into (n_grains + 3) * hop samples."""
        h = self._h()
        info = self.model._info
        zz = _array(z, "z", 2, info.z_dim)
        n = zz.shape[0]
        if n > (1 << 31) - 1:
            raise ValueError("ngs: z has too many grains (%d)" % n)
        length = self.model.audio_length(n)
        a = _out(out, length, (length,))
        p = _lib.ngs_decode_default_params()
        p.seed = _u64(seed, "seed")
        p.sequence = _u32(sequence, "sequence")
        _check(_lib.ngs_decode(h, _ptr(zz), n, p, _ptr(a), length), "ngs_decode")
        return a

    @_context_call
    def encode(self, audio, seed=0, sequence=0):
        """Encodes audio of (n + 3) * hop samples into Encoded(mu, logvar, z), each
        float32 [n, z_dim]; z = mu + eps * exp(0.5 logvar) with eps of (seed, sequence)."""
        h = self._h()
        info = self.model._info
        a = _array(audio, "audio", 1)
        hop = info.hop_size
        if a.shape[0] % hop != 0 or a.shape[0] // hop < 4:
            raise ValueError("ngs: audio has %d samples; encode needs (n + 3) * %d samples "
                             "for n >= 1 grains" % (a.shape[0], hop))
        n = a.shape[0] // hop - 3
        cap = max(n, 1)
        mu = np.empty((cap, info.z_dim), np.float32)
        lv = np.empty((cap, info.z_dim), np.float32)
        z = np.empty((cap, info.z_dim), np.float32)
        p = _lib.ngs_encode_default_params()
        p.seed = _u64(seed, "seed")
        p.sequence = _u32(sequence, "sequence")
        n_out = c_int(-1)
        if n > (1 << 31) - 1:
            raise ValueError("ngs: audio is too long")
        _check(_lib.ngs_encode(h, _ptr(a), a.shape[0], p, _ptr(mu), _ptr(lv), _ptr(z), cap,
                               ctypes.byref(n_out)), "ngs_encode")
        m = n_out.value
        return Encoded(mu[:m], lv[:m], z[:m])

    # sequence VAE
    def embedding_sample(self, temperature=1.0, seed=0, sequence=0, out=None):
        """See Model.embedding_sample."""
        self._h()
        return self.model.embedding_sample(temperature, seed, sequence, out)

    @_context_call
    def latent_decode(self, e, cls=None, n_grains=None, out=None):
        """Decodes an embedding e [e_dim] into z [n_grains, z_dim] (n_grains defaults to
        the model's training length). cls: class name, index, or None (unconditional)."""
        h = self._h()
        info = self.model._info
        ee = _vector(e, "e", info.e_dim) if info.has_latent_model else _array(e, "e", 1)
        n = info.n_grains if n_grains is None else _c_int(n_grains, "n_grains", 1)
        ci = self.model.class_index(cls)
        z = _out(out, n * info.z_dim, (n, info.z_dim))
        _check(_lib.ngs_latent_decode(h, _ptr(ee), ci, n, _ptr(z)), "ngs_latent_decode")
        return z

    @_context_call
    def latent_encode(self, z):
        """Encodes z [n_grains, z_dim] into LatentEncoded(mu, logvar), each [e_dim]."""
        h = self._h()
        info = self.model._info
        zz = _array(z, "z", 2, info.z_dim)
        ed = max(info.e_dim, 1)
        mu = np.empty(ed, np.float32)
        lv = np.empty(ed, np.float32)
        _check(_lib.ngs_latent_encode(h, _ptr(zz), zz.shape[0], _ptr(mu), _ptr(lv)),
               "ngs_latent_encode")
        return LatentEncoded(mu[:info.e_dim], lv[:info.e_dim])

    # one-shots
    def _sample_params(self, cls, temperature, seed, count=1):
        p = _lib.ngs_sample_default_params()
        p.class_index = self.model.class_index(cls)
        p.temperature = _float(temperature, "temperature")
        p.seed = _u64(seed, "seed")
        p.count = count
        return p

    @_context_call
    def sample(self, cls=None, temperature=1.0, seed=0, count=None, out=None):
        """One-shots of info.sample_length samples. count=None: one, float32 [sample_length];
        count=k: float32 [k, sample_length], one-shot i with noise/embedding sequence i."""
        h = self._h()
        k = 1 if count is None else _c_int(count, "count", 1)
        sl = self.model._info.sample_length
        shape = (sl,) if count is None else (k, sl)
        a = _out(out, k * sl, shape)
        p = self._sample_params(cls, temperature, seed, k)
        _check(_lib.ngs_sample(h, p, _ptr(a), k * sl), "ngs_sample")
        return a

    @_context_call
    def sample_interpolation(self, steps, cls=None, temperature=1.0, seed=0, out=None):
        """`steps` one-shots (>= 2) along the line between the embeddings of sequences 0
        and 1 of `seed`: float32 [steps, sample_length]."""
        h = self._h()
        k = _c_int(steps, "steps")
        if k < 2:
            raise ValueError("ngs: steps = %d; interpolation needs at least 2" % k)
        sl = self.model._info.sample_length
        a = _out(out, k * sl, (k, sl))
        p = self._sample_params(cls, temperature, seed)
        _check(_lib.ngs_sample_interpolation(h, p, k, _ptr(a), k * sl),
               "ngs_sample_interpolation")
        return a

    # free synthesis
    def path(self, kind, n_grains=None, seconds=None, **kwargs):
        """See Model.path."""
        self._h()
        return self.model.path(kind, n_grains, seconds, **kwargs)

    # resynthesis
    def preprocess(self, audio, normalize=False):
        """See Model.preprocess."""
        self._h()
        return self.model.preprocess(audio, normalize)

    @_context_call
    def resynthesize(self, audio, seed=0, segment_grains=0, crossfade=0, out=None,
                     progress=None):
        """Encodes (mu) and decodes mono audio of any length in segments of segment_grains
        grains (0 = the model's n_grains) joined with a crossfade of `crossfade` samples
        (0 = one hop); float32, as long as the input. progress: None or a callable
        progress(fraction) called after each segment with the fraction done, in (0, 1],
        the last call with 1; it must not use or close this Context or close its Model
        (that raises RuntimeError). An exception it raises is re-raised once the call has
        finished (the remaining segments still run)."""
        h = self._h()
        a = _array(audio, "audio", 1)
        if progress is not None and not callable(progress):
            raise TypeError("ngs: progress must be a callable progress(fraction) or None")
        p = _lib.ngs_resynth_default_params()
        p.seed = _u64(seed, "seed")
        p.segment_grains = _c_int(segment_grains, "segment_grains")
        p.crossfade = _c_int(crossfade, "crossfade")
        o = _out(out, a.shape[0], (a.shape[0],))
        errors, cb = [], None
        if progress is not None:
            def trampoline(fraction, _user):
                if errors:
                    return
                try:
                    progress(float(fraction))
                except BaseException as e:  # never unwind through C
                    errors.append(e)
            cb = _progress_callback(trampoline)  # referenced until the call returns
            p.progress = cb
        _check(_lib.ngs_resynthesize(h, _ptr(a), a.shape[0], p, _ptr(o)), "ngs_resynthesize")
        del cb
        if errors:
            raise errors[0]
        return o

    # drum machine
    @_context_call
    def render_loop(self, events, loop_length, temperature=1.0, seed=0, out=None):
        """A loop of loop_length samples. events: LoopEvent, (cls, onset, amplitude)
        tuples or dicts {"class"/"cls"/"class_index", "onset", "amplitude"}; event i is a
        fresh one-shot with sequence i (docs/PROCESSES.md)."""
        h = self._h()
        if events is None:
            raise ValueError("ngs: events is None; give a (possibly empty) list of events")
        evs = list(events)
        n = len(evs)
        arr = (_loop_event * max(n, 1))()
        for i, ev in enumerate(evs):
            cls, onset, amp = _event_fields(ev, i)
            arr[i].class_index = self.model.class_index(cls)
            arr[i].onset = _float(onset, "events[%d].onset" % i)
            arr[i].amplitude = _float(amp, "events[%d].amplitude" % i)
        length = _int(loop_length, "loop_length", 1, (1 << 63) - 1)
        if length > self.max_loop_length:  # checked here, before allocating the output
            raise NgsError(Status.CAPACITY, "loop_length %d exceeds the context's "
                           "max_loop_length %d" % (length, self.max_loop_length),
                           "ngs_render_loop")
        p = _lib.ngs_loop_default_params()
        p.temperature = _float(temperature, "temperature")
        p.seed = _u64(seed, "seed")
        a = _out(out, length, (length,))
        _check(_lib.ngs_render_loop(h, arr, _c_int(n, "len(events)"), p, _ptr(a), length),
               "ngs_render_loop")
        return a


def _event_fields(ev, i):
    if isinstance(ev, LoopEvent):
        return ev.cls, ev.onset, ev.amplitude
    if isinstance(ev, dict):
        keys = [k for k in ("cls", "class", "class_index") if k in ev]
        if len(keys) > 1 or "onset" not in ev:
            raise ValueError("ngs: events[%d] = %r: needs one of cls/class/class_index and "
                             "onset (amplitude defaults to 1)" % (i, ev))
        return (ev[keys[0]] if keys else None), ev["onset"], ev.get("amplitude", 1.0)
    if isinstance(ev, (tuple, list)) and len(ev) in (2, 3):
        return ev[0], ev[1], (ev[2] if len(ev) == 3 else 1.0)
    raise ValueError("ngs: events[%d] = %r: expected LoopEvent, (cls, onset[, amplitude]) "
                     "or a dict" % (i, ev))


# ---- real-time synth ------------------------------------------------------------------

SYNTH_EVENT_TYPES = ("start", "stop", "release", "set_latent", "set_gain", "stop_all")
SYNTH_VOICE_KINDS = ("one_shot", "free", "resynth")
_SYNTH_EVENT_KEYS = {"type", "frame", "voice", "kind", "cls", "class", "class_index",
                     "temperature", "seed", "sequence", "gain", "z", "path", "path_grains",
                     "glide", "fade"}
_PATH_KEYS = {"kind", "temperature", "seed", "sequence", "turns", "points", "legs", "gamma"}


def _name_index(v, names, what):
    if isinstance(v, str) and v in names:
        return names.index(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= int(v) < len(names):
        return int(v)
    raise ValueError("ngs: unknown synth %s %r (%s)" % (what, v, ", ".join(names)))


class Synth(_Closable):
    """The real-time synth ngs_synth (docs/SYNTH.md, README "Real time") on a Model:
    one-shots, free voices from a latent or a latent path, live resynthesis; events with
    frame offsets inside the block; mono float32 out. `sample_rate` is the host rate (0:
    the model's); `block` the largest block; `voices` the voices playing at once;
    `precision` "fp32" (default) or "fast" (ngs_synth_params.precision, docs/PRECISION.md).

        with ngs.Synth(model, 48000, 256) as s:
            v = s.voice_new()
            out = s.process(256, [{"type": "start", "kind": "one_shot", "class": "Kick",
                                   "voice": v, "frame": 17, "seed": 1}])

    Events are dicts with the fields of ngs_synth_event ("type": start / stop / release /
    set_latent / set_gain / stop_all; "kind": one_shot / free / resynth; "class" a name or
    index; "z" a float array of z_dim; "path" a dict of ngs_path_params fields with
    "kind" a path kind name, plus "path_grains"). process() and reset() run one at a time
    (a call while another thread is in one raises ContextBusyError); post() and
    voice_new() may be called from any thread at any time."""

    def __init__(self, model, sample_rate=0, block=4096, voices=16, threads=1, seed=0,
                 queue_size=256, spread=False, fade_frames=-1, resampler=5, precision="fp32"):
        self._handle = None
        self._busy = threading.Lock()
        if not isinstance(model, Model):
            raise ValueError("ngs: Synth needs an ngs.Model, got %s" % type(model).__name__)
        me = _get_ident()
        mh = model._enter(me)
        try:
            p = _L().ngs_synth_default_params()
            p.sample_rate = _c_int(sample_rate, "sample_rate", 0)
            p.max_block = _c_int(block, "block")
            p.max_voices = _c_int(voices, "voices")
            p.n_threads = _c_int(threads, "threads")
            p.seed = _u64(seed, "seed")
            p.queue_size = _c_int(queue_size, "queue_size")
            if not isinstance(spread, (bool, int, np.bool_, np.integer)):
                raise ValueError("ngs: spread must be a bool, got %r" % (spread,))
            p.spread = 1 if spread else 0
            p.fade_frames = _c_int(fade_frames, "fade_frames", -1)
            p.resampler = _c_int(resampler, "resampler", 0)
            p.precision = _precision(precision)
            h = c_void_p()
            _check(_lib.ngs_synth_init(mh, p, ctypes.byref(h)), "ngs_synth_init")
            self._handle = h.value
            self.model = model
            self.sample_rate = p.sample_rate or model._info.sample_rate
            self.max_block = p.max_block
            self.latency = _lib.ngs_synth_latency(self._handle)
            self.input_latency = _lib.ngs_synth_input_latency(self._handle)
            model._context_created()
        finally:
            model._leave(me)

    @property
    def closed(self):
        return self._handle is None

    def close(self):
        """Frees the synth. Idempotent; waits for a process() in flight on another thread."""
        if getattr(self, "_handle", None) is None:
            return
        with self._busy:
            if self._handle is None:
                return
            h, self._handle = self._handle, None
            _lib.ngs_synth_free(h)
        self.model._context_freed()

    def __repr__(self):
        return "<ngs.Synth %s on %r>" % ("closed" if self.closed else "%d Hz" % self.sample_rate,
                                         self.model)

    def _h(self):
        if self._handle is None:
            raise ValueError("ngs: the synth is closed")
        return self._handle

    def voice_new(self):
        """A fresh voice id (> 0), unique for the synth's life."""
        return int(_lib.ngs_synth_voice_new(self._h()))

    def _event(self, ev, i, keep):
        if not isinstance(ev, dict):
            raise ValueError("ngs: events[%d] = %r: expected a dict" % (i, ev))
        unknown = set(ev) - _SYNTH_EVENT_KEYS
        if unknown:
            raise ValueError("ngs: events[%d]: unknown field(s) %s" % (i, ", ".join(sorted(unknown))))
        t = _name_index(ev.get("type", "start"), SYNTH_EVENT_TYPES, "event type")
        e = _lib.ngs_synth_default_event(t)
        e.frame = _u32(ev.get("frame", 0), "events[%d].frame" % i)
        if "voice" in ev:
            e.voice = _int(ev["voice"], "events[%d].voice" % i, -(1 << 31), (1 << 31) - 1)
        if "kind" in ev:
            e.kind = _name_index(ev["kind"], SYNTH_VOICE_KINDS, "voice kind")
        keys = [k for k in ("cls", "class", "class_index") if k in ev]
        if len(keys) > 1:
            raise ValueError("ngs: events[%d]: give one of cls/class/class_index" % i)
        if keys:
            e.class_index = self.model.class_index(ev[keys[0]])
        if "temperature" in ev:
            e.temperature = _float(ev["temperature"], "events[%d].temperature" % i)
        if "seed" in ev and ev["seed"] is not None:
            e.seed = _u64(ev["seed"], "events[%d].seed" % i)
        if "sequence" in ev:
            e.sequence = _u32(ev["sequence"], "events[%d].sequence" % i)
        if "gain" in ev:
            e.gain = _float(ev["gain"], "events[%d].gain" % i)
        if "glide" in ev:
            e.glide = _float(ev["glide"], "events[%d].glide" % i)
        if "fade" in ev:
            e.fade = _int(ev["fade"], "events[%d].fade" % i, -1, (1 << 31) - 1)
        if ev.get("z") is not None:
            z = np.ascontiguousarray(_vector(ev["z"], "events[%d].z" % i, self.model._info.z_dim),
                                     dtype=np.float32)
            keep.append(z)
            e.z = z.ctypes.data
        if ev.get("path") is not None:
            path = ev["path"]
            if not isinstance(path, dict) or set(path) - _PATH_KEYS:
                raise ValueError("ngs: events[%d].path: a dict of %s" % (i, ", ".join(sorted(_PATH_KEYS))))
            e.use_path = 1
            e.path.kind = _path_kind(path.get("kind", "line"))
            for k, conv in (("temperature", _float), ("turns", _float), ("gamma", _float),
                            ("points", _c_int), ("legs", _c_int)):
                if k in path:
                    setattr(e.path, k, conv(path[k], "events[%d].path.%s" % (i, k)))
            if "seed" in path:
                e.path.seed = _u64(path["seed"], "events[%d].path.seed" % i)
            if "sequence" in path:
                e.path.sequence = _u32(path["sequence"], "events[%d].path.sequence" % i)
        if "path_grains" in ev:
            e.path_grains = _c_int(ev["path_grains"], "events[%d].path_grains" % i, 0)
        return e

    def process(self, frames, events=(), out=None):
        """Renders one block: `frames` a frame count, or the block's input signal (a float
        array, for resynthesis voices; its length is the frame count). events: dicts (see
        the class doc), sorted by "frame" (an offset in the block). Returns float32
        [frames]. Bad events are dropped and counted (stats()), as in C."""
        if not self._busy.acquire(blocking=False):
            raise ContextBusyError("ngs: Synth.process: the synth is in a call on another thread")
        try:
            h = self._h()
            if isinstance(frames, (int, np.integer)) and not isinstance(frames, bool):
                n, inp = _c_int(frames, "frames"), None
            else:
                inp = np.ascontiguousarray(_array(frames, "input", 1), dtype=np.float32)
                n = len(inp)
            if n > self.max_block:
                raise ValueError("ngs: %d frames exceed the synth's block of %d" % (n, self.max_block))
            if events is None:
                raise ValueError("ngs: events is None; give a (possibly empty) list")
            evs = list(events)
            keep = []
            arr = (_synth_event * max(len(evs), 1))()
            for i, ev in enumerate(evs):
                arr[i] = self._event(ev, i, keep)
            a = _out(out, n, (n,))
            _check(_lib.ngs_synth_process(h, arr, len(evs), _ptr(inp), _ptr(a), n),
                   "ngs_synth_process")
            return a
        finally:
            self._busy.release()

    def post(self, event):
        """Queues an event (its "frame" is ignored) for the start of the next block, from
        any thread; returns False when the queue is full (the event is not queued)."""
        keep = []
        e = self._event(event, 0, keep)
        st = _lib.ngs_synth_post(self._h(), ctypes.byref(e))
        if st == Status.CAPACITY:
            return False
        _check(st, "ngs_synth_post")
        return True

    def reset(self):
        """Ends every voice, clears the queue and the clock, as right after creation."""
        with self._busy:
            _check(_lib.ngs_synth_reset(self._h()), "ngs_synth_reset")

    def stats(self):
        """The counters of ngs_synth_stats, as a dict."""
        st = _synth_stats()
        _check(_lib.ngs_synth_get_stats(self._h(), ctypes.byref(st)), "ngs_synth_get_stats")
        return {name: getattr(st, name) for name, _ in _synth_stats._fields_}
