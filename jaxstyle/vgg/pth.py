"""Reads PyTorch ``.pth`` state dicts without torch and without running code.

A ``.pth`` file is a pickle, and unpickling can call any importable function.
:class:`RestrictedUnpickler` resolves only the handful of globals a state dict
of plain tensors needs (``OrderedDict``, the tensor rebuild functions and the
typed storage classes) to harmless local stand-ins, and refuses every other
global *before* anything is called.

Both serialisation formats are read:

* zip (torch >= 1.6): ``ARCHIVE/data.pkl`` plus one raw little-endian entry
  per storage, ``ARCHIVE/data/KEY``;
* legacy (torchvision's 2017 ``vgg19-dcbb9e9d.pth``): consecutive pickles:
  magic number, protocol version, system info, the object, the list of storage
  keys, then per key an int64 element count followed by the raw bytes.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxstyle.errors import WeightsError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("float32"),
    "DoubleStorage": np.dtype("float64"),
    "HalfStorage": np.dtype("float16"),
    "BFloat16Storage": np.dtype("uint16"),  # Widened to float32 when materialised.
    "LongStorage": np.dtype("int64"),
    "IntStorage": np.dtype("int32"),
    "ShortStorage": np.dtype("int16"),
    "CharStorage": np.dtype("int8"),
    "ByteStorage": np.dtype("uint8"),
    "BoolStorage": np.dtype("bool"),
}


class _StorageType(NamedTuple):
  name: str


class _Storage(NamedTuple):
  key: str
  dtype_name: str
  numel: int


class _LazyTensor(NamedTuple):
  """A tensor whose bytes may not have been read yet (legacy files)."""

  storage: _Storage
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
  if not isinstance(storage, _Storage):
    raise pickle.UnpicklingError(f"tensor storage is {type(storage).__name__}, not a storage")
  return _LazyTensor(storage, int(storage_offset), tuple(int(s) for s in size),
                     tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored):
  return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that builds tensors as lazy views and refuses all else.

  ``find_class`` is the only way a pickle reaches importable code (GLOBAL,
  STACK_GLOBAL, INST, OBJ and EXT all go through it), so refusing there means
  nothing outside :data:`_ALLOWED_GLOBALS` can be called.
  """

  def __init__(self, file, *, source: str, legacy: bool):
    super().__init__(file)
    self._source = source
    self._legacy = legacy
    self.storages: dict[str, _Storage] = {}  # Legacy files append data for these after the pickle.

  def find_class(self, module: str, name: str):
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise WeightsError(
          f"{self._source}: refusing to load: its pickle asks for {module}.{name}, "
          "which a state dict of tensors never needs (a pickle can run code; "
          "only tensor-rebuilding globals are allowed)") from None

  def persistent_load(self, pid):
    # zip:    ('storage', storage_type, key, location, numel)
    # legacy: ('storage', storage_type, key, location, numel, view_metadata)
    if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
      raise WeightsError(f"{self._source}: unsupported persistent id {str(pid)[:80]!r}")
    storage_type, key, _location, numel = pid[1:5]
    if self._legacy and len(pid) > 5 and pid[5] is not None:
      raise WeightsError(f"{self._source}: storage views (torch < 0.4 files) are not supported")
    if not isinstance(storage_type, _StorageType):
      raise WeightsError(f"{self._source}: storage type {storage_type!r} is not a tensor storage")
    if not isinstance(numel, int) or numel < 0:
      raise WeightsError(f"{self._source}: storage {key} has invalid size {numel!r}")
    storage = _Storage(str(key), storage_type.name, numel)
    self.storages[storage.key] = storage
    return storage


def load_state_dict(path) -> dict[str, np.ndarray]:
  """Reads a torch ``.pth`` state dict as ``{name: np.ndarray}`` safely.

  Raises:
    WeightsError: naming the file and the problem, for a pickle that asks for
      any global other than tensor rebuilding, a truncated or malformed file,
      or tensor sizes that do not fit their storage.
  """
  path = Path(path)
  source = str(path)
  try:
    data = path.read_bytes()
  except FileNotFoundError:
    raise WeightsError(f"{source}: no such file") from None
  except IsADirectoryError:
    raise WeightsError(f"{source}: is a directory, expected a .pth file") from None
  try:
    if zipfile.is_zipfile(io.BytesIO(data)):
      obj, read_storage = _load_zip(data, source)
    else:
      obj, read_storage = _load_legacy(data, source)
    return _materialise(obj, read_storage, source)
  except WeightsError:
    raise
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
          KeyError, AttributeError, struct.error, zipfile.BadZipFile, UnicodeDecodeError,
          MemoryError, RecursionError, OverflowError) as e:
    raise WeightsError(f"{source}: not a readable torch state dict ({type(e).__name__}: "
                       f"{str(e)[:120]})") from None


def _load_zip(data: bytes, source: str):
  archive = zipfile.ZipFile(io.BytesIO(data))
  pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
  if len(pickles) != 1:
    raise WeightsError(f"{source}: zip archive has no single data.pkl (found {len(pickles)})")
  prefix = pickles[0][: -len("data.pkl")]
  byteorder = "little"
  if prefix + "byteorder" in archive.namelist():
    byteorder = archive.read(prefix + "byteorder").decode().strip()
  unpickler = RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), source=source, legacy=False)
  obj = unpickler.load()

  def read_storage(storage: _Storage) -> np.ndarray:
    name = f"{prefix}data/{storage.key}"
    if name not in archive.namelist():
      raise WeightsError(f"{source}: storage {storage.key} is missing from the archive")
    return _as_array(archive.read(name), storage, byteorder, source)

  return obj, read_storage


def _load_legacy(data: bytes, source: str):
  stream = io.BytesIO(data)

  def next_pickle():
    return RestrictedUnpickler(stream, source=source, legacy=True).load()

  if next_pickle() != LEGACY_MAGIC:
    raise WeightsError(f"{source}: neither a torch zip archive nor a legacy torch file")
  if next_pickle() != LEGACY_PROTOCOL:
    raise WeightsError(f"{source}: unsupported legacy torch protocol version")
  sys_info = next_pickle()
  byteorder = "little" if not isinstance(sys_info, dict) or sys_info.get(
      "little_endian", True) else "big"
  main = RestrictedUnpickler(stream, source=source, legacy=True)
  obj = main.load()
  storages = main.storages
  keys = next_pickle()
  if not isinstance(keys, list):
    raise WeightsError(f"{source}: malformed legacy file (storage key list missing)")
  arrays: dict[str, np.ndarray] = {}
  for key in keys:
    if key not in storages:
      raise WeightsError(f"{source}: storage {key} is listed but never used")
    storage = storages[key]
    header = stream.read(8)
    if len(header) != 8:
      raise WeightsError(f"{source}: truncated before storage {key}")
    (numel,) = struct.unpack("<q" if byteorder == "little" else ">q", header)
    if numel != storage.numel:
      raise WeightsError(
          f"{source}: storage {key} holds {numel} elements, its tensors expect {storage.numel}")
    nbytes = numel * _STORAGE_DTYPES[storage.dtype_name].itemsize
    arrays[key] = _as_array(stream.read(nbytes), storage, byteorder, source)

  def read_storage(storage: _Storage) -> np.ndarray:
    if storage.key not in arrays:
      raise WeightsError(f"{source}: storage {storage.key} has no data")
    return arrays[storage.key]

  return obj, read_storage


def _as_array(raw: bytes, storage: _Storage, byteorder: str, source: str) -> np.ndarray:
  dtype = _STORAGE_DTYPES[storage.dtype_name]
  if len(raw) < storage.numel * dtype.itemsize:
    raise WeightsError(
        f"{source}: storage {storage.key} is truncated ({len(raw)} bytes, "
        f"expected {storage.numel * dtype.itemsize})")
  array = np.frombuffer(raw, dtype.newbyteorder("<" if byteorder == "little" else ">"),
                        count=storage.numel)
  return array.astype(dtype.newbyteorder("="))


def _materialise(obj, read_storage, source: str) -> dict[str, np.ndarray]:
  if not isinstance(obj, dict):
    raise WeightsError(f"{source}: holds a {type(obj).__name__}, expected a state dict")
  # torchvision checkpoints are sometimes wrapped, e.g. {"state_dict": {...}}.
  if "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  out = {}
  for name, value in obj.items():
    if isinstance(value, _LazyTensor):
      out[str(name)] = _tensor(value, read_storage(value.storage), source, name)
  return out


def _tensor(t: _LazyTensor, flat: np.ndarray, source: str, name) -> np.ndarray:
  if len(t.size) != len(t.stride) or any(s < 0 for s in t.size) or any(
      s < 0 for s in t.stride) or t.offset < 0:
    raise WeightsError(f"{source}: tensor {name} has an invalid size/stride {t.size}/{t.stride}")
  if 0 not in t.size:
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= flat.size:
      raise WeightsError(
          f"{source}: tensor {name} of size {t.size} does not fit its storage "
          f"of {flat.size} elements")
  view = np.lib.stride_tricks.as_strided(
      flat[t.offset:] if flat.size else flat, shape=t.size,
      strides=tuple(s * flat.itemsize for s in t.stride), writeable=False)
  array = np.array(view)
  if t.storage.dtype_name == "BFloat16Storage":
    array = (array.astype(np.uint32) << 16).view(np.float32)
  return array
