"""Reads PyTorch checkpoints (`.pth`, `.pt`) without PyTorch, and without running their code.

A PyTorch checkpoint is a pickle, and unpickling runs whatever the file names:
a checkpoint from the internet must not be opened with `pickle.load` (nor with
`torch.load` before `weights_only=True`). `read_torch_checkpoint` unpickles with
an allow-list: tensors (rebuilt as numpy arrays from the raw storages),
`collections.OrderedDict` and the plain types pickle builds by itself (dict,
list, tuple, str, numbers, bool, None). Any other global a file asks for
(`os.system`, `builtins.eval`, a `torch.nn.Module` class, `argparse.Namespace`
...) refuses the whole file with `InputError` before anything of it runs, which
is what `torch.load(weights_only=True)` does too.

Both layouts of `torch.save` are read: the zip archive of PyTorch >= 1.6
(`NAME/data.pkl` + one `NAME/data/KEY` member per storage) and the older
sequence of pickles followed by the raw storages.

Example:

    tensors = read_torch_checkpoint("PIDNet_S_Cityscapes_val.pt")
    state_dict = state_dict_of(tensors, "PIDNet_S_Cityscapes_val.pt")
    state_dict["conv1.0.weight"].shape    # (32, 3, 3, 3), a numpy array
"""

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from semseg.base.errors import InputError

# Storage classes of `torch` (legacy typed storages, still what torch.save writes).
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    # bfloat16 has no numpy dtype: read as uint16 and widened in `_bfloat16_to_float32`.
    "BFloat16Storage": "bfloat16",
}
# Prefixes that wrap the model's own keys: DataParallel and the training wrappers
# (PIDNet's and HRNet-style `FullModel`) save `module.` and `model.` in front of them.
KEY_PREFIXES = ("module.", "model.")
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
ZIP_MAGIC = b"PK\x03\x04"
# Limits against a file that claims more than it holds (values, dimensions).
MAX_DIMENSIONS = 16


class _Storage:
    """A storage's dtype and raw values (a flat numpy array), as the pickle refers to it."""

    def __init__(self, dtype, values):
        self.dtype = dtype
        self.values = values


class _StorageType:
    """What `torch.FloatStorage` & co. unpickle to: the dtype only."""

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _bfloat16_to_float32(values):
    return (values.astype(np.uint32) << 16).view(np.float32)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """`torch._utils._rebuild_tensor_v2`: a strided view of a storage, as a numpy array."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    if storage.values is None:  # legacy layout: the values follow the object
        return _PendingTensor((storage, storage_offset, size, stride))
    size, stride = tuple(size), tuple(stride)
    valid = len(size) == len(stride) <= MAX_DIMENSIONS and all(
        isinstance(value, int) and value >= 0 for value in (storage_offset, *size, *stride)
    )
    if not valid:
        raise pickle.UnpicklingError(f"a tensor with size {size} and stride {stride}")
    count = int(np.prod(size, dtype=np.int64))
    if count == 0:
        return np.zeros(size, dtype=storage.values.dtype)
    last = storage_offset + sum((length - 1) * step for length, step in zip(size, stride))
    if last >= storage.values.size:
        raise pickle.UnpicklingError(
            f"a tensor of size {size} reads past its storage of {storage.values.size} values"
        )
    values = storage.values
    itemsize = values.dtype.itemsize
    if not size:  # a scalar (as_strided would keep the 1-D shape)
        view = values[storage_offset]
    else:
        view = np.lib.stride_tricks.as_strided(
            values[storage_offset:],
            shape=size,
            strides=tuple(step * itemsize for step in stride),
            writeable=False,
        )
    array = np.array(view)  # a contiguous copy, independent of the storage
    if storage.dtype == "bfloat16":
        array = _bfloat16_to_float32(array)
    return array


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    """`torch._utils._rebuild_parameter`: a parameter is its tensor."""
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RefusedGlobal(Exception):
    """The pickle asked for a global outside the allow-list."""


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles tensors and plain containers only; storages come from `load_storage`.

    Args:
        stream: binary file object positioned at the pickle.
        load_storage: `load_storage(key, storage_type, count)` returning a `_Storage`.
    """

    def __init__(self, stream, load_storage):
        super().__init__(stream)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        raise _RefusedGlobal(f"{module}.{name}")

    def persistent_load(self, pid):
        valid = (
            isinstance(pid, tuple)
            and len(pid) >= 5
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
        )
        if not valid:
            raise pickle.UnpicklingError(f"an unknown persistent id {pid!r:.80}")
        _, storage_type, key, _location, count = pid[:5]
        if not isinstance(count, int) or count < 0:
            raise pickle.UnpicklingError(f"storage {key!r} with {count!r} values")
        return self._load_storage(str(key), storage_type, count)


def _storage_values(raw, storage_type, count, where):
    dtype = np.uint16 if storage_type.dtype == "bfloat16" else np.dtype(storage_type.dtype)
    needed = count * np.dtype(dtype).itemsize
    if len(raw) < needed:
        raise pickle.UnpicklingError(
            f"storage {where} holds {len(raw)} bytes, {needed} expected (truncated file?)"
        )
    return _Storage(storage_type.dtype, np.frombuffer(raw, dtype=dtype, count=count))


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") or name == "data.pkl"]
        if len(pickles) != 1:
            raise InputError(
                f"{path}: not a PyTorch checkpoint (a zip without exactly one data.pkl)"
            )
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in names and archive.read(byteorder).strip() not in (b"", b"little"):
            raise InputError(f"{path}: a big-endian checkpoint; only little-endian is read")
        members = set(names)

        def load_storage(key, storage_type, count):
            member = f"{root}data/{key}"
            if member not in members:
                raise pickle.UnpicklingError(f"storage {key!r} is missing from the archive")
            return _storage_values(archive.read(member), storage_type, count, member)

        return _SafeUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _read_legacy(path, data):
    """The layout of `torch.save(..., _use_new_zipfile_serialization=False)`.

    Three header pickles (magic number, protocol version, system info), the object's
    pickle, a pickled list of storage keys, then each storage as its value count
    (int64) and raw values. The object comes before the values it refers to, so its
    tensors are placeholders until the storages are read.
    """
    stream = io.BytesIO(data)
    try:
        magic = _PlainUnpickler(stream).load()
    except Exception as error:
        raise InputError(
            f"{path}: not a PyTorch checkpoint (neither a zip archive nor a torch pickle)"
        ) from error
    if magic != LEGACY_MAGIC_NUMBER:
        raise InputError(
            f"{path}: not a PyTorch checkpoint (neither a zip archive nor a torch pickle)"
        )
    _PlainUnpickler(stream).load()  # protocol version
    _PlainUnpickler(stream).load()  # system info (byte order, type sizes)
    storages = {}

    def load_storage(key, storage_type, count):
        if key not in storages:
            storages[key] = (storage_type, count, _Storage(storage_type.dtype, None))
        return storages[key][2]

    result = _SafeUnpickler(stream, load_storage).load()
    keys = _PlainUnpickler(stream).load()
    if not isinstance(keys, list):
        raise pickle.UnpicklingError("no list of storages after the object")
    for key in keys:
        header = stream.read(8)
        if len(header) < 8:
            raise pickle.UnpicklingError("the file ends inside its storages (truncated file?)")
        (count,) = struct.unpack("<q", header)
        if str(key) not in storages or count != storages[str(key)][1]:
            raise pickle.UnpicklingError(f"storage {key!r} does not match the object")
        storage_type, _, storage = storages[str(key)]
        itemsize = 2 if storage_type.dtype == "bfloat16" else np.dtype(storage_type.dtype).itemsize
        storage.values = _storage_values(
            stream.read(count * itemsize), storage_type, count, repr(key)
        ).values
    return _materialise(result)


class _PlainUnpickler(pickle.Unpickler):
    """Plain values only (the legacy headers and storage list): no global at all."""

    def find_class(self, module, name):
        raise _RefusedGlobal(f"{module}.{name}")


class _PendingTensor:
    """A legacy-format tensor whose storage values come later in the file."""

    def __init__(self, arguments):
        self.arguments = arguments


def _materialise(value):
    """Replaces the `_PendingTensor`s inside plain containers by their arrays."""
    if isinstance(value, _PendingTensor):
        storage = value.arguments[0]
        if storage.values is None:
            raise pickle.UnpicklingError("a tensor whose storage the file does not hold")
        return _rebuild_tensor(*value.arguments)
    if isinstance(value, dict):
        rebuilt = type(value)() if isinstance(value, collections.OrderedDict) else {}
        for key, item in value.items():
            rebuilt[key] = _materialise(item)
        return rebuilt
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(item) for item in value)
    return value


def read_torch_checkpoint(path):
    """Unpickles a PyTorch checkpoint safely (see the module docstring).

    Args:
        path: a `.pth` / `.pt` file written by `torch.save`.

    Returns:
        What the file holds, with every tensor as a numpy array (float32 for
        float32 and bfloat16 tensors, their own dtype otherwise) and
        `OrderedDict`, dict, list, tuple and plain values as they are.

    Raises:
        InputError: naming the file, for a missing, truncated or damaged file, a
            file that is not a PyTorch checkpoint, and a pickle that asks for
            anything outside the allow-list (nothing of it runs).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        data = path.read_bytes()
        if data.startswith(ZIP_MAGIC):
            raise InputError(
                f"{path}: truncated or damaged PyTorch checkpoint (a zip archive whose end, "
                f"the list of its members, is missing: cut off at {len(data):,} bytes?)"
            )
        return _read_legacy(path, data)
    except _RefusedGlobal as error:
        raise InputError(
            f"{path}: refused: the pickle asks for {error}, which could run code; only "
            "tensors and plain containers are read (re-save the state_dict alone)"
        ) from None
    except InputError:
        raise
    except RecursionError:
        # Unpickling builds nested containers without limit; the walks over them do not.
        raise InputError(
            f"{path}: refused: containers nested too deeply for a checkpoint (a hostile file?)"
        ) from None
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as error:
        raise InputError(f"{path}: damaged or truncated PyTorch checkpoint ({error})") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error) as error:
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({error})") from None


def state_dict_of(checkpoint, path):
    """The `{key: array}` state dict inside a checkpoint, with wrapper prefixes removed.

    Accepts a plain state dict, `{"state_dict": ...}` (or `"model"`, `"model_state_dict"`
    holding one), and keys prefixed `module.` (DataParallel) or `model.` (training
    wrappers). With `model.`-prefixed keys, the keys without it (a wrapper's loss
    buffers such as class weights) are dropped, as the authors' loaders drop them.

    Args:
        checkpoint: what `read_torch_checkpoint` returned.
        path: the file, for error messages.

    Returns:
        dict `{key: numpy array}`.

    Raises:
        InputError: when the file holds no tensors in a dict.
    """
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    tensors = {}
    if isinstance(checkpoint, dict):
        tensors = {
            key: value
            for key, value in checkpoint.items()
            if isinstance(key, str) and isinstance(value, np.ndarray)
        }
    if not tensors:
        raise InputError(f"{path}: not a model checkpoint (no state dict of named tensors in it)")
    for prefix in KEY_PREFIXES:
        if any(key.startswith(prefix) for key in tensors):
            tensors = {
                key[len(prefix) :]: value
                for key, value in tensors.items()
                if key.startswith(prefix)
            }
    return tensors
