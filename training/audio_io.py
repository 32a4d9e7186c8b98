"""Audio file reading for the training scripts.

Reads WAV, AIFF and FLAC through libsndfile (Debian package libsndfile1, already needed by
the C++ engine) with ctypes, so training needs no extra Python package. If the
`soundfile` module is installed it is used instead.
"""
import ctypes
import ctypes.util

import numpy as np

_SFM_READ = 0x10


class _SFInfo(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                ("channels", ctypes.c_int), ("format", ctypes.c_int),
                ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


_lib = None


def _libsndfile():
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("sndfile") or "libsndfile.so.1"
        lib = ctypes.CDLL(name)
        lib.sf_open.restype = ctypes.c_void_p
        lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_SFInfo)]
        lib.sf_readf_float.restype = ctypes.c_int64
        lib.sf_readf_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        lib.sf_close.argtypes = [ctypes.c_void_p]
        lib.sf_strerror.restype = ctypes.c_char_p
        lib.sf_strerror.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def read_audio(path):
    """Returns (samples float32 [frames, channels], sample_rate)."""
    try:
        import soundfile  # optional
        data, sr = soundfile.read(path, dtype="float32", always_2d=True)
        return data, sr
    except ImportError:
        pass
    lib = _libsndfile()
    info = _SFInfo()
    handle = lib.sf_open(str(path).encode(), _SFM_READ, ctypes.byref(info))
    if not handle:
        raise IOError("cannot open %s: %s" % (path, lib.sf_strerror(None).decode()))
    try:
        buf = np.zeros((info.frames, info.channels), dtype=np.float32)
        got = lib.sf_readf_float(handle, buf.ctypes.data, info.frames)
    finally:
        lib.sf_close(handle)
    return buf[:got], info.samplerate
