"""VGG19 and VGG16 as pure functions over a plain params pytree (this module), and their
weights: the jaxstyle format and random weights (:mod:`~jaxstyle.vgg.weights`), converting
Keras and torchvision files (:mod:`~jaxstyle.vgg.convert`), reading .pth files without torch
(:mod:`~jaxstyle.vgg.pth`).

The architectures are data (:data:`ARCHITECTURES`); params are a nested dict
keyed by the Keras layer names::

    params["block1_conv1"]["kernel"]  # (3, 3, Cin, Cout) float32, HWIO
    params["block1_conv1"]["bias"]    # (Cout,)

Every block is ``conv3x3 + ReLU`` repeated, then a 2x2 stride-2 pool; VGG19
has 2, 2, 4, 4, 4 convs per block, VGG16 2, 2, 3, 3, 3. Which network a
params tree holds is read off its layers (:func:`network_of`).

Layer names: ``block4_conv2`` and ``relu4_2`` name the *post-ReLU* output
(what Keras' ``block4_conv2`` layer outputs); ``conv4_2`` names the same
convolution *before* its ReLU, as in the Lua/Caffe tools and the PyTorch
tutorial, whose losses sit right after the conv modules. Canonically that
tap is ``block4_conv2_preact``.
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle.conv import conv3x3, winograd_conv3x3, winograd_kernels
from jaxstyle.errors import ConfigError


class ConvSpec(NamedTuple):
  """One 3x3 conv layer: its Keras name, block, index in block and widths."""

  name: str
  block: int
  index: int
  in_channels: int
  out_channels: int


WIDTHS = (64, 128, 256, 512, 512)
DEPTHS = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}
NETWORKS = tuple(DEPTHS)


def _layers(depths) -> tuple[ConvSpec, ...]:
  layers, cin = [], 3
  for block, (width, depth) in enumerate(zip(WIDTHS, depths), start=1):
    for index in range(1, depth + 1):
      layers.append(ConvSpec(f"block{block}_conv{index}", block, index, cin, width))
      cin = width
  return tuple(layers)


ARCHITECTURES: dict[str, tuple[ConvSpec, ...]] = {n: _layers(d) for n, d in DEPTHS.items()}
"""The conv layers of each network, in forward order, at full width."""

VGG19_LAYERS = ARCHITECTURES["vgg19"]
LAYER_NAMES: tuple[str, ...] = tuple(spec.name for spec in VGG19_LAYERS)
PREACT = "_preact"  # Suffix of a canonical pre-ReLU tap: block4_conv2_preact.


def _check_network(network: str) -> str:
  if network not in DEPTHS:
    raise ConfigError(f"network must be one of {NETWORKS}, got {network!r}")
  return network


def layer_names(network: str = "vgg19") -> tuple[str, ...]:
  """The conv layer names of ``network``, in forward order."""
  return tuple(spec.name for spec in _architecture(network))


def torchvision_feature_indices(network: str = "vgg19") -> tuple[int, ...]:
  """Indices of the convs inside torchvision's ``vggNN().features`` Sequential.

  Each conv is followed by a ReLU module and each block by a MaxPool, none
  of which hold weights: VGG19 gives 0, 2, 5, 7, 10, ..., 34.
  """
  indices, i = [], 0
  for depth in DEPTHS[_check_network(network)]:
    for _ in range(depth):
      indices.append(i)
      i += 2  # conv, relu
    i += 1  # pool
  return tuple(indices)


_ALIAS = re.compile(r"^(relu|conv)(\d)_(\d)$")

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
CONVENTIONS = ("caffe", "torch")


def _architecture(network: str) -> tuple[ConvSpec, ...]:
  return ARCHITECTURES[_check_network(network)]


def network_of(params) -> str:
  """``"vgg19"`` or ``"vgg16"``: the network whose layers ``params`` holds.

  Told by block 3's fourth conv, which VGG16 lacks, so that params cut after
  it (AdaIN's encoder ends at block4_conv1) are still recognised.
  """
  return "vgg19" if "block3_conv4" in params else "vgg16"


def canonical_layer(name: str, network: str = "vgg19") -> str:
  """``relu4_2`` / ``block4_conv2`` -> ``block4_conv2``; ``conv4_2`` -> ``block4_conv2_preact``."""
  match = _ALIAS.match(name)
  canonical = name
  if match:
    canonical = f"block{match[2]}_conv{match[3]}" + (PREACT if match[1] == "conv" else "")
  names = layer_names(network)
  if canonical.removesuffix(PREACT) not in names:
    raise ConfigError(
        f"unknown {network.upper()} layer {name!r}; valid layers are " + ", ".join(names)
        + " (post-ReLU; also spelled reluB_I, e.g. relu4_2) or convB_I for the "
        "pre-ReLU output")
  return canonical


def layer_widths(width_scale: float = 1.0, network: str = "vgg19"
                 ) -> dict[str, tuple[int, int]]:
  """(in_channels, out_channels) of every conv layer at ``width_scale``."""
  def scaled(c: int) -> int:
    return max(1, int(round(c * width_scale)))
  return {
      spec.name: (3 if spec.in_channels == 3 else scaled(spec.in_channels),
                  scaled(spec.out_channels))
      for spec in _architecture(network)
  }


def expected_shapes(width_scale: float = 1.0, network: str = "vgg19"
                    ) -> dict[str, dict[str, tuple[int, ...]]]:
  """The kernel (HWIO) and bias shape of every layer at ``width_scale``."""
  return {
      name: {"kernel": (3, 3, cin, cout), "bias": (cout,)}
      for name, (cin, cout) in layer_widths(width_scale, network).items()
  }


def infer_width_scale(params) -> float:
  """The width scale of a params tree, read off ``block1_conv1``'s width."""
  return float(np.shape(params["block1_conv1"]["bias"])[0]) / 64.0


def random_vgg(*, key: jax.Array, network: str = "vgg19", width_scale: float = 1.0) -> dict:
  """He-initialised VGG19 or VGG16 params (random features, no ImageNet training).

  Kernels are drawn from N(0, 2 / fan_in) with fan_in = 9 * Cin, biases are
  zero; ``width_scale`` < 1 shrinks every layer's width (not the input's 3
  channels), which keeps tests fast while exercising the same code.
  """
  params = {}
  shapes = expected_shapes(width_scale, network)
  names = layer_names(network)
  for name, layer_key in zip(names, jax.random.split(key, len(names))):
    kh, kw, cin, cout = shapes[name]["kernel"]
    std = np.sqrt(2.0 / (kh * kw * cin))
    params[name] = {
        "kernel": std * jax.random.normal(layer_key, (kh, kw, cin, cout), jnp.float32),
        "bias": jnp.zeros((cout,), jnp.float32),
    }
  return params


WINOGRAD_MIN_CHANNEL_PRODUCT = 256 * 256
"""The ``deep`` set's layers: Cin·Cout at least this (block3_conv2 on, at full width)."""


def winograd_sets(network: str, layers: Iterable[str], width_scale: float = 1.0
                  ) -> dict[str, tuple[str, ...]]:
  """The sets of conv layers (up to the deepest of ``layers``) that may run by Winograd F(2x2):
  ``direct`` none, ``deep`` those with Cin·Cout >= :data:`WINOGRAD_MIN_CHANNEL_PRODUCT`
  (jaxstyle 0.4's rule), ``every`` all.

  ``--conv auto`` times the whole objective with each at the run's size and keeps the fastest
  (:func:`jaxstyle.objective.winograd_layers`): a layer's cost inside the program is not its
  cost alone, and timing layers one by one lost to the rule at 512 px (docs/BENCHMARKS.md,
  2026-12-05). On XLA:CPU the transforms are memory traffic proportional to Cin + Cout against
  matmul work proportional to Cin·Cout, so Winograd pays most on the deep layers; on GPU and
  TPU the backends' own convolutions usually win.
  """
  names = tuple(spec.name for spec in layers_through(network, layers))
  widths = layer_widths(width_scale, network)
  return {"direct": (),
          "deep": tuple(n for n in names
                        if widths[n][0] * widths[n][1] >= WINOGRAD_MIN_CHANNEL_PRODUCT),
          "every": names}


def layers_through(network: str, layers: Iterable[str] | None = None) -> tuple[ConvSpec, ...]:
  """The conv layers of ``network`` in forward order, up to the deepest of ``layers`` (or all)."""
  specs = _architecture(network)
  if layers is None:
    return specs
  names = layer_names(network)
  return specs[: 1 + max(names.index(canonical_layer(n, network).removesuffix(PREACT))
                         for n in layers)]


def conv_shapes(network: str, image_hw: tuple[int, int], layers: Iterable[str] | None = None
                ) -> dict[str, tuple[int, int]]:
  """Each conv layer's (H, W) for an image of ``image_hw``, up to the deepest of ``layers``."""
  h, w = image_hw
  shapes = {}
  for spec in layers_through(network, layers):
    if spec.index == 1 and spec.block > 1:
      h, w = h // 2, w // 2
    shapes[spec.name] = (h, w)
  return shapes


def prepare_convs(params, layers: Iterable[str]) -> dict:
  """``params`` with the Winograd kernels of ``layers`` (conv layer names) made.

  Each of those layers gains ``"winograd"`` (U) and ``"winograd_t"`` (U of the transposed
  kernel, for the image gradient) beside its kernel and bias
  (:func:`jaxstyle.conv.winograd_kernels`); layers prepared already keep theirs. Call it once,
  outside the optimisation loop: the transforms cost about as much as one convolution and
  grow the layer's weights 2·(4/3)² times. :func:`vgg_features` runs the layers its
  ``winograd`` names from these kernels.
  """
  prepared = dict(params)
  for name in layers:
    if "winograd" not in params[name]:  # Prepared already: keep those (bit-identical everywhere).
      prepared[name] = {**params[name], **winograd_kernels(params[name]["kernel"])}
  return prepared


def convs_prepared(params, layers: Iterable[str]) -> bool:
  """Whether every one of ``layers`` (conv layer names) has its Winograd kernels."""
  return all("winograd" in params[name] for name in layers)


def without_winograd(params) -> dict:
  """``params`` with any Winograd kernels dropped."""
  return {name: {k: v for k, v in layer.items() if not k.startswith("winograd")}
          for name, layer in params.items()}


def _pool(x_NxHxWxC, pooling: str):
  """2x2 stride-2 pooling; an odd last row or column is dropped (XLA's 'VALID')."""
  n, h, w, c = x_NxHxWxC.shape
  # lax slices, not x[:, :h // 2 * 2]: indexing a symbolic size (an ONNX export) is a gather.
  x = jax.lax.slice_in_dim(jax.lax.slice_in_dim(x_NxHxWxC, 0, h // 2 * 2, axis=1),
                           0, w // 2 * 2, axis=2)
  if pooling == "max":
    return _max_pool(x)
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean((2, 4))


@jax.custom_vjp
def _max_pool(x_NxHxWxC):
  """2x2 stride-2 max pool of an image with even sides.

  Written as a reshape and a max, with its gradient routed to the first
  maximum of each window in row-major order: what XLA's select-and-scatter
  (JAX's rule for ``reduce_window``) does, ties included, without its
  window scan, which took 15% of an evaluation on CPU.
  """
  n, h, w, c = x_NxHxWxC.shape
  return x_NxHxWxC.reshape(n, h // 2, 2, w // 2, 2, c).max((2, 4))


def _max_pool_fwd(x):
  y = _max_pool(x)
  return y, (x, y)


def _max_pool_bwd(residuals, g_NxhxwxC):
  x, y = residuals
  n, h, w, c = x.shape
  windows = x.reshape(n, h // 2, 2, w // 2, 2, c)
  taken = jnp.zeros(y.shape, bool)
  rows = []
  for a in range(2):
    row = []
    for b in range(2):
      first = (windows[:, :, a, :, b] == y) & ~taken
      taken = taken | first
      row.append(jnp.where(first, g_NxhxwxC, 0))
    rows.append(jnp.stack(row, 3))
  return (jnp.stack(rows, 2).reshape(n, h, w, c),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def vgg_features(params, images_NxHxWx3, layers: Iterable[str], *,
                 pooling: str = "max", remat: bool = False,
                 winograd: Iterable[str] = ()) -> dict[str, jax.Array]:
  """Activations of ``layers`` for preprocessed images, VGG19 or VGG16.

  Args:
    params: VGG19 or VGG16 params (see module docstring; :func:`network_of`
      tells which); narrow widths are fine.
    images_NxHxWx3: images already passed through :func:`preprocess`.
    layers: post-ReLU names (``block4_conv2``, ``relu4_2``) or pre-ReLU ones
      (``conv4_2``).
    pooling: ``"max"`` or ``"avg"`` 2x2 stride-2 pooling between blocks.
    remat: rematerialise each block (``jax.checkpoint``): its gradient keeps
      only the block's input and the requested outputs and recomputes the
      rest, trading one more forward pass for memory.
    winograd: conv layers run by Winograd (:func:`jaxstyle.objective.winograd_layers`), from
      the kernels :func:`prepare_convs` made, or made here where it did not; the rest
      convolve directly.

  Returns:
    ``{name: N x H' x W' x C}`` keyed by the names as given. The forward pass
    stops after the deepest requested layer.
  """
  if pooling not in ("max", "avg"):
    raise ConfigError(f"pooling must be 'max' or 'avg', got {pooling!r}")
  if np.ndim(images_NxHxWx3) != 4 or np.shape(images_NxHxWx3)[-1] != 3:
    raise ConfigError(
        f"vgg_features expects images of shape N x H x W x 3, "
        f"got {np.shape(images_NxHxWx3)}; add a batch axis with x[None]")
  network = network_of(params)
  requested = {name: canonical_layer(name, network) for name in layers}
  if not requested:
    return {}
  names = layer_names(network)
  deepest = max(names.index(c.removesuffix(PREACT)) for c in requested.values())
  wanted = set(requested.values())
  by_winograd = frozenset(winograd)
  found: dict[str, jax.Array] = {}
  x = images_NxHxWx3
  specs = _architecture(network)[: deepest + 1]
  for block in sorted({spec.block for spec in specs}):
    layers = tuple(spec.name for spec in specs if spec.block == block)

    def run_block(x, block_params, layers=layers, first=block == 1):
      if not first:
        x = _pool(x, pooling)
      taps = {}
      for name, layer in zip(layers, block_params):
        if name in by_winograd:
          kernels = layer if "winograd" in layer else winograd_kernels(layer["kernel"])
          x = winograd_conv3x3(x, kernels["winograd"], kernels["winograd_t"])
        else:
          x = conv3x3(x, layer["kernel"])
        x = x + layer["bias"][None, None, None, :]
        if name + PREACT in wanted:
          taps[name + PREACT] = x
        x = jax.nn.relu(x)
        if name in wanted:
          taps[name] = x
      return x, taps

    if remat:  # Keep only the block's input and taps for the backward pass; recompute the rest.
      run_block = jax.checkpoint(run_block)
    x, taps = run_block(x, [params[name] for name in layers])
    found.update(taps)
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
    return jnp.flip(rgb, -1) - _channels(CAFFE_MEAN_BGR, rgb)
  if convention == "torch":
    return (rgb / 255.0 - _channels(TORCH_MEAN_RGB, rgb)) / _channels(TORCH_STD_RGB, rgb)
  raise ConfigError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def deprocess(x_HxWx3, convention: str):
  """Inverse of :func:`preprocess`: network input -> RGB in [0, 255] (unclipped)."""
  x = _as_float(x_HxWx3)
  if convention == "caffe":
    return jnp.flip(x + _channels(CAFFE_MEAN_BGR, x), -1)
  if convention == "torch":
    return (x * _channels(TORCH_STD_RGB, x) + _channels(TORCH_MEAN_RGB, x)) * 255.0
  raise ConfigError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _as_float(x):
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _channels(values, like):
  """A per-channel constant in ``like``'s dtype, shaped to broadcast against (..., 3)."""
  return jnp.asarray(values, like.dtype).reshape((1,) * (like.ndim - 1) + (3,))
