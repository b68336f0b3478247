"""The jaxstyle VGG weights format (h5), and finding the weights to use.

A jaxstyle weights file is an HDF5 file (``weights/README.md`` documents it):

* one group per conv layer, ``block1_conv1`` ... ``block5_conv4`` (VGG19) or
  ``block5_conv3`` (VGG16), each with datasets ``kernel`` (3, 3, Cin, Cout)
  float32 HWIO and ``bias`` (Cout,);
* root attributes ``format`` (``"jaxstyle-vgg"``), ``format_version`` (2),
  ``network`` (``"vgg19"`` or ``"vgg16"``), ``convention`` (``"caffe"`` or
  ``"torch"``, see :func:`jaxstyle.preprocess`), ``source_name`` and
  ``source_sha256`` (the file it was converted from) and ``width_scale``
  (1.0 for real weights; smaller for narrow test networks);
* on each layer group, attribute ``sha256``: the checksum of its kernel's
  then its bias's float32 little-endian bytes, checked on loading, so a
  modified or bit-rotten layer is named.

Version 1 files (``format`` ``"jaxstyle-vgg19"``, no ``network``) are VGG19
files and still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxstyle import vgg
from jaxstyle.errors import WeightsError
from jaxstyle.files import atomic_path, sha256_file

FORMAT = "jaxstyle-vgg"
FORMAT_VERSION = 2
FORMAT_V1 = "jaxstyle-vgg19"  # Version 1: VGG19 only, no network attribute.
FORMATS = (FORMAT, FORMAT_V1)
ENV_VAR = "JAXSTYLE_WEIGHTS"

def default_path(network: str = "vgg19") -> Path:
  """Where the weights of ``network`` are looked for by default: weights/NETWORK.h5."""
  return Path("weights") / f"{network}.h5"


def how_to_get(network: str = "vgg19", *, random: bool = True) -> str:
  """The advice for a user who has no weights for ``network``."""
  flag = "" if network == "vgg19" else f" --network {network}"
  advice = (f"run `jaxstyle weights download{flag}`, or convert a file you downloaded "
            f"with `jaxstyle weights convert SRC {default_path(network)}`")
  return advice + (", or pass `--weights random` to run on random (untrained) features"
                   if random else "")



class Weights(NamedTuple):
  """VGG params with what is needed to use and cite them.

  Attributes:
    params: ``{layer: {"kernel", "bias"}}`` (see :mod:`jaxstyle.vgg`).
    convention: preprocessing the weights expect, ``"caffe"`` or ``"torch"``.
    source: where they came from: a file name, or ``random:SEED:WIDTH``.
    sha256: the jaxstyle file's sha256, or ``None`` for random weights.
    is_random: True for He-initialised (untrained) weights.
    network: ``"vgg19"`` or ``"vgg16"``.
  """

  params: dict
  convention: str
  source: str
  sha256: str | None
  is_random: bool = False
  network: str = "vgg19"


def validate_params(params, *, width_scale: float, where: str, network: str = "vgg19") -> None:
  """Checks every layer's presence, shape and finiteness; raises WeightsError."""
  for name, shapes in vgg.expected_shapes(width_scale, network).items():
    if name not in params:
      raise WeightsError(f"{where}: layer {name} is missing")
    for part, shape in shapes.items():
      if part not in params[name]:
        raise WeightsError(f"{where}: layer {name} has no {part}")
      found = tuple(np.shape(params[name][part]))
      if found != shape:
        raise WeightsError(
            f"{where}: layer {name} {part} has shape {found}, expected {shape}")
      if not np.all(np.isfinite(params[name][part])):
        raise WeightsError(f"{where}: layer {name} {part} has NaN or inf values")


def save_weights(path, params, *, convention: str, source_name: str,
                 source_sha256: str) -> None:
  """Writes params in the jaxstyle format, atomically (validated first)."""
  import h5py

  if convention not in vgg.CONVENTIONS:
    raise WeightsError(f"{path}: convention must be one of {vgg.CONVENTIONS}, got {convention!r}")
  width_scale = vgg.infer_width_scale(params)
  network = vgg.network_of(params)
  validate_params(params, width_scale=width_scale, where=str(path), network=network)
  with atomic_path(path, suffix=".h5") as tmp:
    with h5py.File(tmp, "w") as f:
      f.attrs["format"] = FORMAT
      f.attrs["format_version"] = FORMAT_VERSION
      f.attrs["network"] = network
      f.attrs["convention"] = convention
      f.attrs["source_name"] = source_name
      f.attrs["source_sha256"] = source_sha256
      f.attrs["width_scale"] = width_scale
      for name in vgg.layer_names(network):
        group = f.create_group(name)
        arrays = [np.asarray(params[name][part], "<f4") for part in ("kernel", "bias")]
        for part, array in zip(("kernel", "bias"), arrays):
          group.create_dataset(part, data=array)
        group.attrs["sha256"] = layer_sha256(*arrays)


def layer_sha256(kernel, bias) -> str:
  """The checksum a weights file records per layer: sha256 of kernel then bias bytes."""
  digest = hashlib.sha256(np.ascontiguousarray(kernel, "<f4").tobytes())
  digest.update(np.ascontiguousarray(bias, "<f4").tobytes())
  return digest.hexdigest()


def read_info(path) -> dict:
  """The root attributes and per-layer shapes of a jaxstyle weights file."""
  with _open_h5(path) as f:
    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if attrs.get("format") not in FORMATS:
      raise WeightsError(
          f"{path}: not a jaxstyle weights file (format attribute "
          f"{attrs.get('format')!r}, expected {FORMAT!r}); convert it with "
          f"`jaxstyle weights convert {path} OUT.h5`")
    layers = {name: {part: tuple(f[name][part].shape) for part in f[name]}
              for name in f if isinstance(f[name], _h5py().Group)}
  return {"attrs": attrs, "layers": layers}


def load_weights(path, *, network: str | None = None) -> Weights:
  """Loads and validates a jaxstyle weights file (VGG19 or VGG16).

  ``network``, if given, is the network the caller needs; a file holding the
  other one is refused.

  Raises:
    WeightsError: naming the file and the offending layer, with the expected
      and found shapes, for a missing layer, a wrong shape, NaN / inf values,
      or a file that is not in the jaxstyle format.
  """
  info = read_info(path)
  attrs = info["attrs"]
  version = attrs.get("format_version")
  if (attrs["format"], version) not in ((FORMAT, FORMAT_VERSION), (FORMAT_V1, 1)):
    raise WeightsError(
        f"{path}: format {attrs['format']!r} version {version!r} is not supported "
        f"(this jaxstyle reads {FORMAT!r} version {FORMAT_VERSION} and {FORMAT_V1!r} "
        "version 1)")
  found = attrs.get("network", "vgg19")
  if found not in vgg.NETWORKS:
    raise WeightsError(f"{path}: network attribute {found!r} is not one of {vgg.NETWORKS}")
  if network is not None and found != network:
    raise WeightsError(f"{path}: holds {found.upper()} weights, but {network.upper()} is "
                       f"needed (--network {network}); {how_to_get(network, random=False)}")
  convention = attrs.get("convention")
  if convention not in vgg.CONVENTIONS:
    raise WeightsError(f"{path}: convention attribute {convention!r} is not one of {vgg.CONVENTIONS}")
  with _open_h5(path) as f:
    params = {name: {part: np.asarray(f[name][part], np.float32) for part in f[name]}
              for name in vgg.layer_names(found) if name in f}
    recorded = {name: _plain(f[name].attrs["sha256"]) for name in params
                if "sha256" in f[name].attrs}
  validate_params(params, width_scale=float(attrs.get("width_scale", 1.0)), where=str(path),
                  network=found)
  for name, checksum in recorded.items():  # Shapes are right; now the values.
    if layer_sha256(params[name]["kernel"], params[name]["bias"]) != checksum:
      raise WeightsError(f"{path}: layer {name} does not match its recorded sha256 (the file "
                         "was modified or is corrupt); convert or download it again")
  return Weights(params=params, convention=convention,
                 source=str(attrs.get("source_name", Path(path).name)),
                 sha256=sha256_file(path), network=found)


def random_weights(*, seed: int = 0, width_scale: float = 1.0,
                   network: str = "vgg19") -> Weights:
  """He-initialised VGG :class:`Weights` (caffe convention), for offline use."""
  import jax

  params = vgg.random_vgg(key=jax.random.key(seed), network=network, width_scale=width_scale)
  return Weights(params=params, convention="caffe",
                 source=f"random:{seed}:{width_scale:g}", sha256=None, is_random=True,
                 network=network)


def random_warning(network: str) -> str:
  """What a run on random ``network`` features says once, and how to get real weights."""
  return ("running on RANDOM VGG features (He-initialised, untrained): results show "
          "the optimisation, not real style transfer. For real weights, "
          + how_to_get(network, random=False))


def resolve_weights(spec: str | None, *, network: str = "vgg19") -> Weights:
  """Loads ``network``'s weights from a spec: a path, ``random[:SEED[:WIDTH_SCALE]]``, or None.

  None means ``$JAXSTYLE_WEIGHTS`` if set, else ``weights/NETWORK.h5``. A file
  holding another network is refused. Random weights emit a warning saying
  so, since their output is not style transfer.
  """
  vgg._check_network(network)
  if spec is None:
    spec = os.environ.get(ENV_VAR) or str(default_path(network))
    if not Path(spec).exists():
      origin = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default path"
      raise WeightsError(f"{spec}: no {network.upper()} weights at {origin}; "
                         f"{how_to_get(network)}")
  if spec == "random" or spec.startswith("random:"):
    parts = spec.split(":")[1:]
    try:
      seed = int(parts[0]) if parts and parts[0] else 0
      width = float(parts[1]) if len(parts) > 1 else 1.0
      if len(parts) > 2 or not 0 < width <= 1:
        raise ValueError
    except ValueError:
      raise WeightsError(
          f"{spec}: expected random, random:SEED or random:SEED:WIDTH_SCALE "
          "with an integer seed and 0 < WIDTH_SCALE <= 1") from None
    warnings.warn(random_warning(network), RandomWeightsWarning, stacklevel=2)
    return random_weights(seed=seed, width_scale=width, network=network)
  path = Path(spec)
  if not path.exists():
    raise WeightsError(f"{spec}: no such weights file; {how_to_get(network)}")
  return load_weights(path, network=network)


class RandomWeightsWarning(UserWarning):
  """Output was computed with random, untrained VGG features (or by a network trained on them)."""


def _h5py():
  import h5py
  return h5py


@contextlib.contextmanager
def _open_h5(path):
  h5py = _h5py()
  path = Path(path)
  if path.is_dir():
    raise WeightsError(f"{path}: is a directory, expected an .h5 weights file")
  try:
    f = h5py.File(path, "r")
  except FileNotFoundError:
    raise WeightsError(f"{path}: no such file") from None
  except OSError as e:
    raise WeightsError(f"{path}: not a readable HDF5 file ({_first_line(e)})") from None
  try:
    with f:
      yield f
  except (OSError, KeyError) as e:  # Truncated datasets surface lazily, on read.
    raise WeightsError(f"{path}: corrupt HDF5 file ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
  return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _plain(value):
  if isinstance(value, bytes):
    return value.decode()
  if isinstance(value, np.generic):
    return value.item()
  return value
