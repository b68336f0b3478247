"""The jaxstyle VGG19 weights format (h5), and finding the weights to use.

A jaxstyle weights file is an HDF5 file (``weights/README.md`` documents it):

* one group per conv layer, ``block1_conv1`` ... ``block5_conv4``, each with
  datasets ``kernel`` (3, 3, Cin, Cout) float32 HWIO and ``bias`` (Cout,);
* root attributes ``format`` (``"jaxstyle-vgg19"``), ``format_version`` (1),
  ``convention`` (``"caffe"`` or ``"torch"``, see :func:`jaxstyle.preprocess`),
  ``source_name`` and ``source_sha256`` (the file it was converted from) and
  ``width_scale`` (1.0 for real weights; smaller for narrow test networks).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxstyle import vgg
from jaxstyle.errors import WeightsError
from jaxstyle.files import atomic_path, sha256_file

FORMAT = "jaxstyle-vgg19"
FORMAT_VERSION = 1
DEFAULT_PATH = Path("weights") / "vgg19.h5"
ENV_VAR = "JAXSTYLE_WEIGHTS"

HOW_TO_REAL = (
    "run `jaxstyle weights download`, or convert a file you downloaded with "
    "`jaxstyle weights convert SRC weights/vgg19.h5`")
HOW_TO_GET = HOW_TO_REAL + ", or pass `--weights random` to run on random (untrained) features"


class Weights(NamedTuple):
  """VGG19 params with what is needed to use and cite them.

  Attributes:
    params: ``{layer: {"kernel", "bias"}}`` (see :mod:`jaxstyle.vgg`).
    convention: preprocessing the weights expect, ``"caffe"`` or ``"torch"``.
    source: where they came from: a file name, or ``random:SEED:WIDTH``.
    sha256: the jaxstyle file's sha256, or ``None`` for random weights.
    is_random: True for He-initialised (untrained) weights.
  """

  params: dict
  convention: str
  source: str
  sha256: str | None
  is_random: bool = False


def validate_params(params, *, width_scale: float, where: str) -> None:
  """Checks every layer's presence, shape and finiteness; raises WeightsError."""
  for name, shapes in vgg.expected_shapes(width_scale).items():
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
  validate_params(params, width_scale=width_scale, where=str(path))
  with atomic_path(path, suffix=".h5") as tmp:
    with h5py.File(tmp, "w") as f:
      f.attrs["format"] = FORMAT
      f.attrs["format_version"] = FORMAT_VERSION
      f.attrs["convention"] = convention
      f.attrs["source_name"] = source_name
      f.attrs["source_sha256"] = source_sha256
      f.attrs["width_scale"] = width_scale
      for name in vgg.LAYER_NAMES:
        group = f.create_group(name)
        for part in ("kernel", "bias"):
          group.create_dataset(part, data=np.asarray(params[name][part], np.float32))


def read_info(path) -> dict:
  """The root attributes and per-layer shapes of a jaxstyle weights file."""
  with _open_h5(path) as f:
    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if attrs.get("format") != FORMAT:
      raise WeightsError(
          f"{path}: not a jaxstyle weights file (format attribute "
          f"{attrs.get('format')!r}, expected {FORMAT!r}); convert it with "
          f"`jaxstyle weights convert {path} OUT.h5`")
    layers = {name: {part: tuple(f[name][part].shape) for part in f[name]}
              for name in f if isinstance(f[name], _h5py().Group)}
  return {"attrs": attrs, "layers": layers}


def load_vgg19(path) -> Weights:
  """Loads and validates a jaxstyle VGG19 weights file.

  Raises:
    WeightsError: naming the file and the offending layer, with the expected
      and found shapes, for a missing layer, a wrong shape, NaN / inf values,
      or a file that is not in the jaxstyle format.
  """
  info = read_info(path)
  attrs = info["attrs"]
  if attrs.get("format_version") != FORMAT_VERSION:
    raise WeightsError(
        f"{path}: format_version {attrs.get('format_version')!r} is not supported "
        f"(this jaxstyle reads version {FORMAT_VERSION})")
  convention = attrs.get("convention")
  if convention not in vgg.CONVENTIONS:
    raise WeightsError(f"{path}: convention attribute {convention!r} is not one of {vgg.CONVENTIONS}")
  with _open_h5(path) as f:
    params = {name: {part: np.asarray(f[name][part], np.float32) for part in f[name]}
              for name in vgg.LAYER_NAMES if name in f}
  validate_params(params, width_scale=float(attrs.get("width_scale", 1.0)), where=str(path))
  return Weights(params=params, convention=convention,
                 source=str(attrs.get("source_name", Path(path).name)),
                 sha256=sha256_file(path))


def random_weights(*, seed: int = 0, width_scale: float = 1.0) -> Weights:
  """He-initialised VGG19 :class:`Weights` (caffe convention), for offline use."""
  import jax

  params = vgg.random_vgg19(key=jax.random.key(seed), width_scale=width_scale)
  return Weights(params=params, convention="caffe",
                 source=f"random:{seed}:{width_scale:g}", sha256=None, is_random=True)


RANDOM_WARNING = (
    "running on RANDOM VGG19 features (He-initialised, untrained): results show "
    "the optimisation, not real style transfer. For real weights, " + HOW_TO_REAL)


def resolve_weights(spec: str | None) -> Weights:
  """Loads weights from a spec: a path, ``random[:SEED[:WIDTH_SCALE]]``, or None.

  None means ``$JAXSTYLE_WEIGHTS`` if set, else ``weights/vgg19.h5``. Random
  weights emit a warning saying so, since their output is not style transfer.
  """
  if spec is None:
    spec = os.environ.get(ENV_VAR) or str(DEFAULT_PATH)
    if not Path(spec).exists():
      origin = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default path"
      raise WeightsError(f"{spec}: no VGG19 weights at {origin}; {HOW_TO_GET}")
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
    warnings.warn(RANDOM_WARNING, RandomWeightsWarning, stacklevel=2)
    return random_weights(seed=seed, width_scale=width)
  path = Path(spec)
  if not path.exists():
    raise WeightsError(f"{spec}: no such weights file; {HOW_TO_GET}")
  return load_vgg19(path)


class RandomWeightsWarning(UserWarning):
  """Output was computed with random, untrained VGG19 features."""


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
