"""Minimal safetensors reader/writer with numpy + json (no `safetensors` package needed).

    save(path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None)
    load(path) -> (dict[str, np.ndarray], dict[str, str])   # copies, little-endian

Layout (https://github.com/huggingface/safetensors): u64 little-endian header size N,
N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{...}} padded with spaces to a multiple of 8, then the data. Tensors are written largest
element size first, then by name, so every F32 tensor starts 4-byte aligned.
"""
import json
import os
import struct
import tempfile

import numpy as np

_DT = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
       np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
       np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL"}
_NP = {v: k for k, v in _DT.items()}


def save(path, tensors, metadata=None):
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    for k, a in arrays.items():
        if a.dtype not in _DT:
            raise ValueError("safetensors: tensor %s has unsupported dtype %s" % (k, a.dtype))
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header, off = {}, 0
    for k in order:
        a = arrays[k]
        header[k] = {"dtype": _DT[a.dtype], "shape": list(a.shape),
                     "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-(len(hb) + 8) % 8)

    def write(f):
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for k in order:
            f.write(arrays[k].astype(arrays[k].dtype.newbyteorder("<"), copy=False).tobytes())

    atomic_write(path, write)


def _umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


def atomic_write(path, write):
    """Calls write(file) on a new temporary file in path's folder (created exclusively,
    never following a link), fsyncs it and renames it over `path`; on any failure the
    temporary is removed and `path` is untouched (an existing file stays as it was)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, "cannot create a file in %s: %s" % (folder, e.strerror), path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("safetensors: %s is too short" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("safetensors: %s: header size %d past the end" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    out = {}
    for k, h in header.items():
        b, e = h["data_offsets"]
        dt = _NP[h["dtype"]].newbyteorder("<")
        if e > len(data):
            raise ValueError("safetensors: %s: tensor %s past the end" % (path, k))
        count = int(np.prod(h["shape"])) if h["shape"] else 1
        if e - b != count * dt.itemsize:
            raise ValueError("safetensors: %s: tensor %s has %d bytes for shape %s"
                             % (path, k, e - b, h["shape"]))
        out[k] = np.frombuffer(data[b:e], dtype=dt).astype(dt.newbyteorder("="))\
            .reshape(h["shape"]).copy()
    return out, meta
