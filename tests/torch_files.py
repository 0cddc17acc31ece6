"""Writes PyTorch checkpoint files without PyTorch, for the tests of
`semseg.weights.torch_checkpoint`.

`torch.save` pickles tensors as `torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, requires_grad, hooks)` with the storage as a persistent id
`("storage", torch.FloatStorage, key, "cpu", numel)`. Stand-ins of those two
globals (registered under the torch module names while a file is written) make
`pickle` write the same opcodes, in both layouts: the zip archive and the legacy
stream of pickles.
"""

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


@contextlib.contextmanager
def _torch_stand_ins():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in STORAGE_NAMES.values():
        storage_class = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(torch, name, storage_class)
    torch._utils = utils
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch, utils
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Storage:
    def __init__(self, key, array):
        self.key = key
        self.array = array


class _Tensor:
    def __init__(self, key, array):
        self.key = key
        self.array = np.array(array, order="C")
        self.storage = _Storage(key, self.array)


class _Pickler(pickle.Pickler):
    def __init__(self, file, torch, utils):
        super().__init__(file, protocol=2)
        self.torch = torch
        self.utils = utils

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            array = obj.array
            strides = tuple(step // array.itemsize for step in array.strides)
            hooks = collections.OrderedDict()
            return self.utils._rebuild_tensor_v2, (
                obj.storage,
                0,
                array.shape,
                strides,
                False,
                hooks,
            )
        return NotImplemented

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            storage = getattr(self.torch, STORAGE_NAMES[obj.array.dtype])
            return ("storage", storage, obj.key, "cpu", obj.array.size)
        return None


def _tensors(state_dict):
    wrapped = collections.OrderedDict()
    for index, (key, value) in enumerate(state_dict.items()):
        wrapped[key] = _Tensor(str(index), np.asarray(value))
    return wrapped


def write_torch_zip(path, state_dict, wrap=None):
    """Writes `state_dict` ({key: numpy array}) as `torch.save` does (zip layout).

    Args:
        wrap: optional function of the wrapped dict returning the object to save,
            e.g. `lambda tensors: {"state_dict": tensors, "epoch": 3}`.
    """
    tensors = _tensors(state_dict)
    root = "archive"
    with _torch_stand_ins() as (torch, utils):
        data = io.BytesIO()
        _Pickler(data, torch, utils).dump(wrap(tensors) if wrap else tensors)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{root}/data.pkl", data.getvalue())
        archive.writestr(f"{root}/byteorder", "little")
        for tensor in tensors.values():
            archive.writestr(f"{root}/data/{tensor.key}", tensor.array.tobytes())
        archive.writestr(f"{root}/version", "3\n")


def write_torch_legacy(path, state_dict):
    """Writes `state_dict` in the legacy (PyTorch < 1.6) layout."""
    tensors = _tensors(state_dict)
    stream = io.BytesIO()
    for header in (LEGACY_MAGIC_NUMBER, 1001, {"little_endian": True}):
        pickle.dump(header, stream, protocol=2)
    with _torch_stand_ins() as (torch, utils):
        _Pickler(stream, torch, utils).dump(tensors)
    pickle.dump([tensor.key for tensor in tensors.values()], stream, protocol=2)
    for tensor in tensors.values():
        stream.write(struct.pack("<q", tensor.array.size))
        stream.write(tensor.array.tobytes())
    with open(path, "wb") as file:
        file.write(stream.getvalue())


def write_pickle_zip(path, payload):
    """A torch-layout zip whose data.pkl is `pickle.dumps(payload)` (any object)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("archive/version", "3\n")
