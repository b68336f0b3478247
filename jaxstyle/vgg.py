"""VGG19 as pure functions over a plain params pytree.

The architecture is data (:data:`VGG19_LAYERS`); params are a nested dict
keyed by the Keras layer names::

    params["block1_conv1"]["kernel"]  # (3, 3, Cin, Cout) float32, HWIO
    params["block1_conv1"]["bias"]    # (Cout,)

Every block is ``conv3x3 + ReLU`` repeated, then a 2x2 stride-2 pool. A
requested layer's output is its *post-ReLU* activation, so ``block4_conv2``,
``relu4_2`` and ``conv4_2`` all name the same tensor (the papers' and the
Lua/PyTorch tools' spellings).
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle.errors import ConfigError


class ConvSpec(NamedTuple):
  """One 3x3 conv layer: its Keras name, block, index in block and widths."""

  name: str
  block: int
  index: int
  in_channels: int
  out_channels: int


def _vgg19_layers() -> tuple[ConvSpec, ...]:
  widths = (64, 128, 256, 512, 512)
  depths = (2, 2, 4, 4, 4)
  layers, cin = [], 3
  for block, (width, depth) in enumerate(zip(widths, depths), start=1):
    for index in range(1, depth + 1):
      layers.append(ConvSpec(f"block{block}_conv{index}", block, index, cin, width))
      cin = width
  return tuple(layers)


VGG19_LAYERS: tuple[ConvSpec, ...] = _vgg19_layers()
"""The 16 conv layers of VGG19, in forward order, at full width."""

LAYER_NAMES: tuple[str, ...] = tuple(spec.name for spec in VGG19_LAYERS)

# Indices of the conv layers inside torchvision's ``vgg19().features``
# (ReLU and MaxPool modules sit in between and hold no weights).
TORCHVISION_FEATURE_INDICES: tuple[int, ...] = (
    0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

_ALIAS = re.compile(r"^(?:relu|conv)(\d)_(\d)$")

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
CONVENTIONS = ("caffe", "torch")


def canonical_layer(name: str) -> str:
  """Maps ``relu4_2`` / ``conv4_2`` / ``block4_conv2`` to ``block4_conv2``."""
  match = _ALIAS.match(name)
  canonical = f"block{match[1]}_conv{match[2]}" if match else name
  if canonical not in LAYER_NAMES:
    raise ConfigError(
        f"unknown VGG19 layer {name!r}; valid layers are "
        + ", ".join(LAYER_NAMES)
        + " (or the same as reluB_I / convB_I, e.g. relu4_2)")
  return canonical


def layer_widths(width_scale: float = 1.0) -> dict[str, tuple[int, int]]:
  """(in_channels, out_channels) of every conv layer at ``width_scale``."""
  def scaled(c: int) -> int:
    return max(1, int(round(c * width_scale)))
  return {
      spec.name: (3 if spec.in_channels == 3 else scaled(spec.in_channels),
                  scaled(spec.out_channels))
      for spec in VGG19_LAYERS
  }


def expected_shapes(width_scale: float = 1.0) -> dict[str, dict[str, tuple[int, ...]]]:
  """The kernel (HWIO) and bias shape of every layer at ``width_scale``."""
  return {
      name: {"kernel": (3, 3, cin, cout), "bias": (cout,)}
      for name, (cin, cout) in layer_widths(width_scale).items()
  }


def infer_width_scale(params) -> float:
  """The width scale of a params tree, read off ``block1_conv1``'s width."""
  return float(np.shape(params["block1_conv1"]["bias"])[0]) / 64.0


def random_vgg19(*, key: jax.Array, width_scale: float = 1.0) -> dict:
  """He-initialised VGG19 params (random features, no ImageNet training).

  Kernels are drawn from N(0, 2 / fan_in) with fan_in = 9 * Cin, biases are
  zero; ``width_scale`` < 1 shrinks every layer's width (not the input's 3
  channels), which keeps tests fast while exercising the same code.
  """
  params = {}
  shapes = expected_shapes(width_scale)
  for name, layer_key in zip(LAYER_NAMES, jax.random.split(key, len(LAYER_NAMES))):
    kh, kw, cin, cout = shapes[name]["kernel"]
    std = np.sqrt(2.0 / (kh * kw * cin))
    params[name] = {
        "kernel": std * jax.random.normal(layer_key, (kh, kw, cin, cout), jnp.float32),
        "bias": jnp.zeros((cout,), jnp.float32),
    }
  return params


_CONV_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv_same(x_NxHxWxCin, kernel_3x3xCinxCout):
  return jax.lax.conv_general_dilated(x_NxHxWxCin, kernel_3x3xCinxCout, (1, 1), "SAME",
                                      dimension_numbers=_CONV_DIMS)


@jax.custom_vjp
def conv3x3(x_NxHxWxCin, kernel_3x3xCinxCout):
  """3x3 stride-1 'SAME' convolution (cross-correlation), NHWC x HWIO.

  Its gradient with respect to the input is written out as an ordinary
  NHWC/HWIO convolution with the spatially flipped, I/O-swapped kernel.
  Mathematically this is JAX's own transpose rule; the difference is speed:
  XLA:CPU runs the convolution JAX emits for that rule 3-4x slower inside a
  ``while`` loop body than outside it (jax-ml/jax#12868), and the compiled
  optimisation loop lives in one. The kernel's gradient keeps JAX's rule;
  XLA removes it when only the image's gradient is used.
  """
  return _conv_same(x_NxHxWxCin, kernel_3x3xCinxCout)


def _conv3x3_fwd(x, kernel):
  return _conv_same(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, g_NxHxWxCout):
  x, kernel = residuals
  dx = _conv_same(g_NxHxWxCout, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
  _, kernel_vjp = jax.vjp(lambda k: _conv_same(x, k), kernel)
  return dx, kernel_vjp(g_NxHxWxCout)[0]


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def _conv_relu(x_NxHxWxC, layer):
  y = conv3x3(x_NxHxWxC, layer["kernel"])
  return jax.nn.relu(y + layer["bias"][None, None, None, :])


def _pool(x_NxHxWxC, pooling: str):
  window, strides = (1, 2, 2, 1), (1, 2, 2, 1)
  if pooling == "max":
    return jax.lax.reduce_window(x_NxHxWxC, -jnp.inf, jax.lax.max, window, strides, "VALID")
  summed = jax.lax.reduce_window(x_NxHxWxC, 0.0, jax.lax.add, window, strides, "VALID")
  return summed / 4.0


def vgg19_features(params, images_NxHxWx3, layers: Iterable[str], *,
                   pooling: str = "max") -> dict[str, jax.Array]:
  """Post-ReLU activations of ``layers`` for preprocessed images.

  Args:
    params: VGG19 params (see module docstring); narrow widths are fine.
    images_NxHxWx3: images already passed through :func:`preprocess`.
    layers: layer names, Keras (``block4_conv2``) or paper style (``relu4_2``).
    pooling: ``"max"`` or ``"avg"`` 2x2 stride-2 pooling between blocks.

  Returns:
    ``{name: N x H' x W' x C}`` keyed by the names as given. The forward pass
    stops after the deepest requested layer.
  """
  if pooling not in ("max", "avg"):
    raise ConfigError(f"pooling must be 'max' or 'avg', got {pooling!r}")
  if np.ndim(images_NxHxWx3) != 4 or np.shape(images_NxHxWx3)[-1] != 3:
    raise ConfigError(
        f"vgg19_features expects images of shape N x H x W x 3, "
        f"got {np.shape(images_NxHxWx3)}; add a batch axis with x[None]")
  requested = {name: canonical_layer(name) for name in layers}
  if not requested:
    return {}
  deepest = max(LAYER_NAMES.index(c) for c in requested.values())
  wanted = set(requested.values())
  found: dict[str, jax.Array] = {}
  x = images_NxHxWx3
  for i, spec in enumerate(VGG19_LAYERS[: deepest + 1]):
    if i > 0 and spec.index == 1:
      x = _pool(x, pooling)
    x = _conv_relu(x, params[spec.name])
    if spec.name in wanted:
      found[spec.name] = x
  return {name: found[canonical] for name, canonical in requested.items()}


def preprocess(rgb_HxWx3, convention: str):
  """RGB in [0, 255] -> the input the weights were trained on.

  ``caffe`` (Keras / original VGG files): RGB -> BGR, then subtract the
  ImageNet mean (103.939, 116.779, 123.68) in BGR order; scale stays 0-255.
  ``torch`` (torchvision files): x / 255, subtract mean (0.485, 0.456, 0.406),
  divide by std (0.229, 0.224, 0.225), RGB order. Works on any leading axes;
  integer input becomes float32, float input keeps its precision.
  """
  rgb = _as_float(rgb_HxWx3)
  if convention == "caffe":
    return rgb[..., ::-1] - _channels(CAFFE_MEAN_BGR, rgb)
  if convention == "torch":
    return (rgb / 255.0 - _channels(TORCH_MEAN_RGB, rgb)) / _channels(TORCH_STD_RGB, rgb)
  raise ConfigError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def deprocess(x_HxWx3, convention: str):
  """Inverse of :func:`preprocess`: network input -> RGB in [0, 255] (unclipped)."""
  x = _as_float(x_HxWx3)
  if convention == "caffe":
    return (x + _channels(CAFFE_MEAN_BGR, x))[..., ::-1]
  if convention == "torch":
    return (x * _channels(TORCH_STD_RGB, x) + _channels(TORCH_MEAN_RGB, x)) * 255.0
  raise ConfigError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _as_float(x):
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _channels(values, like):
  """A per-channel constant in ``like``'s dtype, shaped to broadcast against (..., 3)."""
  return jnp.asarray(values, like.dtype).reshape((1,) * (like.ndim - 1) + (3,))
