"""Authors'-format PyTorch Lightning checkpoints, written and read without Lightning.

Writing (needs torch):
    save_lightning_checkpoint(path, state_dict, hparams, epoch=99, global_step=12345,
                              pl_version="1.4.9", optimizer=True)
        torch.save of a dict like Lightning 1.x writes: state_dict (OrderedDict of tensors),
        hyper_parameters (a `pytorch_lightning.utilities.parsing.AttributeDict`: when
        Lightning is not installed, a stand-in class registered under that exact
        module/name is pickled, so the file references that global as real ones do),
        hparams_name, epoch, global_step, pytorch-lightning_version, optimizer_states,
        lr_schedulers, callbacks.
    save_hparams_yaml(path, hparams)   the `hparams.yaml` Lightning writes next to it.

Reading (no torch needed, never runs pickled code):
    load_checkpoint(path) -> dict        tensors become numpy arrays; AttributeDict -> dict
    CheckpointError                      every refusal, with a message saying why
Allowed globals: ALLOWED_GLOBALS (tensor/parameter rebuild functions, torch storage
types, collections.OrderedDict, set/frozenset, numpy scalar/array reconstruction, the
Lightning AttributeDict classes). Anything else is refused naming the global.
"""
import collections
import io
import os
import pickle
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


# ------------------------------------------------------------------ restricted reader

class _StorageType:
    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


_STORAGES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": "bf16", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
    "UntypedStorage": "u1",
}


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    size, stride = tuple(size), tuple(stride)
    isz = storage.dtype.itemsize
    need = storage_offset + (sum((s - 1) * st for s, st in zip(size, stride)) + 1
                             if all(s > 0 for s in size) else 0)
    if need > storage.size:
        raise CheckpointError("a tensor of shape %s reaches past its storage (%d elements)"
                              % (list(size), storage.size))
    base = storage[storage_offset:]
    return np.lib.stride_tricks.as_strided(base, shape=size,
                                           strides=tuple(s * isz for s in stride)).copy()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data


class _ParameterType:
    """Stand-in for torch.nn.Parameter as a `new_type` of _rebuild_from_type_v2."""


def _rebuild_from_type_v2(func, new_type, args, state):
    # func was itself resolved through the allow-list, so this only rebuilds tensors
    return func(*args)


ALLOWED_GLOBALS = {
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): _ParameterType,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): __import__("codecs").encode,  # bytes in protocol-2 pickles
    ("numpy.core.multiarray", "scalar"): np.core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np.core.multiarray.scalar,
    ("numpy._core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("pytorch_lightning.utilities.parsing", "AttributeDict"): AttributeDict,
    ("lightning_fabric.utilities.data", "AttributeDict"): AttributeDict,
    ("lightning.fabric.utilities.data", "AttributeDict"): AttributeDict,
}
for _n, _d in _STORAGES.items():
    ALLOWED_GLOBALS[("torch", _n)] = _StorageType(_n, _d)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, zf, prefix, path):
        super().__init__(io.BytesIO(data))
        self.zf, self.prefix, self.path, self.storages = zf, prefix, path, {}

    def find_class(self, module, name):
        if module == "__builtin__":  # protocol-2 pickles written by Python 3 (fix_imports)
            module = "builtins"
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                "%s: refused: the checkpoint's pickle references the global '%s.%s', which "
                "is not in the allow-list (tensors, storages, ordered dicts, plain "
                "containers, Lightning AttributeDict); nothing from the file was executed"
                % (self.path, module, name)) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise CheckpointError("%s: refused: unexpected persistent id %r" % (self.path, pid[:2]))
        st, key, numel = pid[1], str(pid[2]), pid[4]
        if key not in self.storages:
            member = "%sdata/%s" % (self.prefix, key)
            try:
                raw = self.zf.read(member)
            except KeyError:
                raise CheckpointError("%s: storage record %s is missing (truncated file?)"
                                      % (self.path, member)) from None
            if st.dtype == "bf16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype=np.dtype(st.dtype))
            if st.name != "UntypedStorage" and arr.size < numel:
                raise CheckpointError("%s: storage %s holds %d elements, %d expected"
                                      % (self.path, key, arr.size, numel))
            self.storages[key] = arr
        return self.storages[key]


def load_checkpoint(path):
    """Reads a torch.save zip checkpoint with the restricted unpickler."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError("%s: cannot be read: %s" % (path, e)) from None
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80":
        raise CheckpointError("%s: a legacy (pre-zip, torch < 1.6) pickle checkpoint; "
                              "re-save it with torch >= 1.6" % path)
    if head != b"PK\x03\x04":
        raise CheckpointError("%s: not a zip file, so not a torch.save checkpoint" % path)
    try:
        zf = zipfile.ZipFile(path)
        names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError("%s: truncated or corrupt zip (%s)" % (path, e)) from None
    pkls = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise CheckpointError("%s: no data.pkl record in the zip (truncated or not a "
                              "torch checkpoint)" % path)
    prefix = pkls[0][: -len("data.pkl")]
    if (prefix + "byteorder") in names and zf.read(prefix + "byteorder").strip() != b"little":
        raise CheckpointError("%s: big-endian checkpoints are not supported" % path)
    try:
        data = zf.read(pkls[0])
        obj = _Unpickler(data, zf, prefix, path).load()
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib_error()) as e:
        raise CheckpointError("%s: truncated or corrupt (%s: %s)" % (path, type(e).__name__, e)) from None
    except pickle.UnpicklingError as e:
        raise CheckpointError("%s: corrupt pickle (%s)" % (path, e)) from None
    if not isinstance(obj, dict):
        raise CheckpointError("%s: the pickle is a %s, not a checkpoint dict" % (path, type(obj).__name__))
    return obj


def zlib_error():
    import zlib
    return zlib.error


# ------------------------------------------------------------------ writer

_PL_MODULES = ("pytorch_lightning", "pytorch_lightning.utilities",
               "pytorch_lightning.utilities.parsing")


def _attribute_dict_class():
    """Returns (class, modules registered for pickling)."""
    try:
        from pytorch_lightning.utilities.parsing import AttributeDict as real  # noqa
        return real, []
    except ImportError:
        pass
    added = []
    for name in _PL_MODULES:
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            added.append(name)
    mod = sys.modules["pytorch_lightning.utilities.parsing"]
    cls = getattr(mod, "AttributeDict", None)
    if cls is None:
        cls = type("AttributeDict", (dict,), {"__module__": mod.__name__,
                                               "__qualname__": "AttributeDict"})
        mod.AttributeDict = cls
    return cls, added


def save_lightning_checkpoint(path, state_dict, hparams, epoch=99, global_step=12345,
                              pl_version="1.4.9", optimizer=True):
    import torch
    cls, added = _attribute_dict_class()
    try:
        sd = collections.OrderedDict((k, v.detach().clone()) for k, v in state_dict.items())
        n_params = sum(1 for v in sd.values() if v.is_floating_point())
        lr = float(hparams.get("learning_rate", 1e-4))
        ckpt = {
            "epoch": epoch,
            "global_step": global_step,
            "pytorch-lightning_version": pl_version,
            "state_dict": sd,
            "callbacks": {
                "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, "
                "'every_n_epochs': 1, 'train_time_interval': None, 'save_on_train_epoch_end': True}": {
                    "monitor": None, "best_model_score": None,
                    "best_model_path": "runs/last.ckpt", "current_score": None,
                    "dirpath": "runs", "best_k_models": {}, "kth_best_model_path": "",
                    "kth_value": torch.tensor(float("inf")), "last_model_path": ""}},
            "optimizer_states": [{
                "state": ({i: {"step": torch.tensor(float(global_step))} for i in range(3)}
                          if optimizer else {}),
                "param_groups": [{"lr": lr, "betas": (0.9, 0.999), "eps": 1e-08,
                                  "weight_decay": 0, "amsgrad": False, "maximize": False,
                                  "foreach": None, "capturable": False,
                                  "initial_lr": lr, "params": list(range(n_params))}]}],
            "lr_schedulers": [{"gamma": 0.9999, "base_lrs": [lr], "last_epoch": global_step,
                               "_step_count": global_step + 1, "verbose": False,
                               "_get_lr_called_within_step": False, "_last_lr": [lr * 0.5]}],
            "hparams_name": "kwargs",
            "hyper_parameters": cls(hparams),
        }
        torch.save(ckpt, path)
    finally:
        for name in added:
            sys.modules.pop(name, None)


def save_hparams_yaml(path, hparams):
    import yaml
    with open(path, "w", newline="") as f:
        yaml.dump(dict(hparams), f)
