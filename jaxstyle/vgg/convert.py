"""Converting published VGG19 / VGG16 weights to the jaxstyle format, and downloading them.

Sources read (the network is recognised from the layers the file holds):

* Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` and
  ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``: root attribute
  ``layer_names``; one group per layer whose attribute ``weight_names`` lists
  its datasets (``block1_conv1_W_1:0`` kernel HWIO, ``block1_conv1_b_1:0``
  bias). They are read in ``weight_names`` order, so files saved by later
  Keras 2 versions (``block1_conv1/kernel:0``, nested groups) load too.
  Convention ``caffe``.
* torchvision ``vgg19-dcbb9e9d.pth`` and ``vgg16-397923af.pth``:
  ``features.{0,2,5,...}.weight`` (OIHW) and ``.bias``, legacy or zip
  serialisation, via the restricted reader in :mod:`jaxstyle.vgg.pth`.
  Convention ``torch``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxstyle import vgg
from jaxstyle.errors import WeightsError
from jaxstyle.files import sha256_file
from jaxstyle.vgg.weights import FORMATS, default_path, save_weights, validate_params


class Published(NamedTuple):
  """A published Keras weights file: where it is and its md5 (as Keras checks it)."""

  url: str
  filename: str
  md5: str


def _keras(network: str, md5: str) -> Published:
  filename = f"{network}_weights_tf_dim_ordering_tf_kernels_notop.h5"
  return Published(f"https://storage.googleapis.com/tensorflow/keras-applications/{network}/"
                   f"{filename}", filename, md5)


KERAS_FILES = {
    "vgg19": _keras("vgg19", "253f8cb515780f3b799900260a226db6"),
    "vgg16": _keras("vgg16", "6d6bbae143d832006294945121d1f1fc"),
}
# torchvision's files, for converting by hand (their names carry a sha256 prefix).
TORCHVISION_FILES = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}


def detect_format(path) -> str:
  """``"keras"``, ``"torch"`` or ``"jaxstyle"``, from the file's content."""
  path = Path(path)
  if not path.exists():
    raise WeightsError(f"{path}: no such file")
  if path.is_dir():
    raise WeightsError(f"{path}: is a directory, expected a weights file")
  with open(path, "rb") as f:
    head = f.read(8)
  if head == b"\x89HDF\r\n\x1a\n":
    import h5py
    try:
      with h5py.File(path, "r") as f:
        attrs = f.attrs
        if _str(attrs.get("format", "")) in FORMATS:
          return "jaxstyle"
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" in root.attrs:
          return "keras"
    except OSError as e:
      raise WeightsError(f"{path}: corrupt HDF5 file ({str(e).splitlines()[0]})") from None
    raise WeightsError(f"{path}: an HDF5 file but neither Keras weights (no layer_names "
                       "attribute) nor a jaxstyle weights file")
  if zipfile.is_zipfile(path) or head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
    return "torch"
  raise WeightsError(f"{path}: not a Keras .h5 or torch .pth weights file")


def read_keras(path) -> dict:
  """VGG19 or VGG16 params from a Keras h5 weights file (``caffe`` convention)."""
  import h5py

  params = {}
  try:
    with h5py.File(path, "r") as f:
      root = f["model_weights"] if "model_weights" in f else f
      layer_names = [_str(n) for n in root.attrs["layer_names"]]
      network = "vgg19" if "block5_conv4" in layer_names else "vgg16"
      for name in vgg.layer_names(network):
        if name not in layer_names:
          raise WeightsError(f"{path}: layer {name} is missing from layer_names")
        group = root[name]
        weight_names = [_str(n) for n in group.attrs.get("weight_names", [])]
        if len(weight_names) != 2:
          raise WeightsError(
              f"{path}: layer {name} lists {len(weight_names)} weights, expected 2 "
              "(kernel, bias)")
        kernel, bias = (np.asarray(group[w], np.float32) for w in weight_names)
        params[name] = {"kernel": kernel, "bias": bias}
  except OSError as e:
    raise WeightsError(f"{path}: corrupt HDF5 file ({str(e).splitlines()[0]})") from None
  except KeyError as e:
    raise WeightsError(f"{path}: malformed Keras weights ({e})") from None
  _validate_converted(params, path)
  return params


def read_torchvision(path) -> dict:
  """VGG19 or VGG16 params from a torchvision state dict (``torch`` convention)."""
  from jaxstyle.vgg.pth import load_state_dict

  state = load_state_dict(path)
  params = {}
  # VGG19's last conv is features.34; VGG16's features.28 (and it has no 34).
  network = "vgg16" if "features.34.weight" not in state and "features.28.weight" in state \
      else "vgg19"
  for name, index in zip(vgg.layer_names(network), vgg.torchvision_feature_indices(network)):
    try:
      weight = state[f"features.{index}.weight"]
      bias = state[f"features.{index}.bias"]
    except KeyError as e:
      raise WeightsError(f"{path}: {e.args[0]} (layer {name}) is missing") from None
    if weight.ndim != 4:
      raise WeightsError(
          f"{path}: features.{index}.weight (layer {name}) has shape {weight.shape}, "
          "expected a 4-D OIHW kernel")
    params[name] = {"kernel": np.transpose(weight, (2, 3, 1, 0)).astype(np.float32),
                    "bias": bias.astype(np.float32)}
  _validate_converted(params, path)
  return params


def _validate_converted(params, path) -> None:
  width_scale = vgg.infer_width_scale(params)
  validate_params(params, width_scale=width_scale, where=str(path),
                  network=vgg.network_of(params))


def convert(src, dst) -> str:
  """Converts Keras or torchvision VGG19/VGG16 weights at ``src`` to ``dst``; returns the format."""
  src, dst = Path(src), Path(dst)
  fmt = detect_format(src)
  if fmt == "jaxstyle":
    raise WeightsError(f"{src}: already a jaxstyle weights file; use it as --weights {src}")
  params = read_keras(src) if fmt == "keras" else read_torchvision(src)
  _check_dest_dir(dst)
  save_weights(dst, params, convention="caffe" if fmt == "keras" else "torch",
               source_name=src.name, source_sha256=sha256_file(src))
  return fmt


def _check_dest_dir(dst: Path) -> None:
  parent = dst.parent if str(dst.parent) else Path(".")
  if not parent.is_dir():
    raise WeightsError(f"{dst}: directory {parent} does not exist")


def download(dest=None, *, network: str = "vgg19", url: str | None = None,
             md5: str | None = None, timeout: float = 10.0) -> Path:
  """Downloads ``network``'s Keras file, checks its md5, converts it to ``dest``.

  ``dest`` defaults to ``weights/NETWORK.h5``; ``url`` and ``md5`` to the
  published file's (:data:`KERAS_FILES`). Nothing is left behind on failure:
  the raw download goes to a temporary file beside ``dest`` that is always
  removed, and ``dest`` appears (by an atomic rename) only once the converted
  file is complete.
  """
  published = KERAS_FILES[vgg._check_network(network)]
  url, md5 = url or published.url, md5 or published.md5
  dest = Path(dest) if dest is not None else default_path(network)
  made_dir = not dest.parent.exists()
  dest.parent.mkdir(parents=True, exist_ok=True)
  hand_made = (f"download {url} by hand (from a machine with internet) and run "
               f"`jaxstyle weights convert {published.filename} {dest}`")
  fd, raw = tempfile.mkstemp(prefix=f".{published.filename}.", suffix=".part", dir=dest.parent)
  try:
    digest = hashlib.md5()
    try:
      with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
        for block in iter(lambda: response.read(1 << 20), b""):
          digest.update(block)
          out.write(block)
    except OSError as e:  # URLError, timeouts and refused connections are all OSErrors.
      raise WeightsError(f"{url}: download failed ({getattr(e, 'reason', e)}); {hand_made}") from None
    if digest.hexdigest() != md5:
      raise WeightsError(
          f"{url}: downloaded file has md5 {digest.hexdigest()}, expected {md5} "
          f"(corrupt or changed upstream); {hand_made}")
    params = read_keras(raw)
    if vgg.network_of(params) != network:
      raise WeightsError(f"{url}: holds {vgg.network_of(params).upper()} weights, expected "
                         f"{network.upper()}")
    save_weights(dest, params, convention="caffe", source_name=published.filename,
                 source_sha256=sha256_file(raw))
  finally:
    os.unlink(raw)
    if made_dir and not dest.exists():
      dest.parent.rmdir()  # Leave the tree as we found it.
  return dest


def _str(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)
