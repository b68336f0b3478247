"""A trained network as an ONNX file that runs anywhere: onnxruntime, a phone, a web page.

The exported graph is the network's own JAX forward (:func:`padded_forward`,
the function ``jaxstyle apply`` runs before rounding), traced by jax2onnx
with the batch, height and width symbolic, so one file takes any image of at
least :data:`MIN_SIDE` px a side. Inputs and output, all float32, images RGB
0-255 NHWC (``N x H x W x 3``), as :func:`signature` lists them:

- ``johnson`` with one style: ``image`` → ``stylized``;
- conditional instance norm (N styles): ``image``, ``mix`` (``N_images x
  N_styles`` non-negative weights, normalised in the graph) → ``stylized``;
- ``adain``: ``image``, ``style`` (one style image, ``1 x Hs x Ws x 3``, its own
  size), ``alpha`` (a scalar in [0, 1]) → ``stylized``.

The output is clipped to 0-255 and not rounded: round it to show it. Why
jax2onnx rather than ``jax.export``: ``jax.export`` serialises StableHLO,
which only a JAX (or XLA) runtime reads; ONNX is what onnxruntime, its web
and mobile builds, and every other inference engine read, and jax2onnx
converts the traced JAX program, so the network keeps one definition.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from jaxstyle.errors import ConfigError
from jaxstyle.files import atomic_path
from jaxstyle.nets.adain import AdaINNet
from jaxstyle.nets.apply import padded_forward, stride_multiple
from jaxstyle.nets.layers import layers_of, use

OPSET = 17
"""ONNX opset of the export: onnxruntime (CPU and web) 1.16+ run it."""

MIN_SIDE = 16
"""The smallest side an exported network takes: every reflection pad, at every depth, stays
narrower than its image (the encoder's relu4_1 is 1/8 of the photo; Johnson's middle 1/4)."""


def signature(net) -> dict[str, tuple]:
  """The exported graph's inputs, by name, with their shapes (symbols as strings)."""
  if isinstance(net, AdaINNet):
    return {"image": ("N", "H", "W", 3), "style": (1, "Hs", "Ws", 3), "alpha": ()}
  if net.spec.styles > 1:
    return {"image": ("N", "H", "W", 3), "mix": ("N", net.spec.styles)}
  return {"image": ("N", "H", "W", 3)}


def forward(net):
  """The exported function: ``signature(net)``'s inputs → stylized RGB 0-255 (float32)."""
  multiple = stride_multiple(net)
  if isinstance(net, AdaINNet):
    def adain(image, style, alpha):
      mean, std = net.style_stats(style)
      mix = jnp.ones((image.shape[0], 1), image.dtype)
      return padded_forward(lambda x: net.stylize(x, mean.reshape(1, -1), std.reshape(1, -1),
                                                  mix, alpha), image, multiple)
    return adain
  if net.spec.styles > 1:
    def cin(image, mix):
      return padded_forward(lambda x: net(x, mix / mix.sum(1, keepdims=True)), image, multiple)
    return cin
  return lambda image: padded_forward(net, image, multiple)


def _abstract_inputs(net) -> list[jax.ShapeDtypeStruct]:
  """``signature(net)`` as symbolic shapes, each image side constrained to ≥ MIN_SIDE."""
  sig = signature(net)
  symbols = sorted({d for shape in sig.values() for d in shape if isinstance(d, str)})
  sides = [s for s in symbols if s != "N"]
  values = dict(zip(symbols, jax.export.symbolic_shape(
      ", ".join(symbols), constraints=[f"{s} >= {MIN_SIDE}" for s in sides])))
  return [jax.ShapeDtypeStruct(tuple(values.get(d, d) for d in shape), jnp.float32)
          for shape in sig.values()]


def to_onnx(net):
  """The ONNX ModelProto of ``net``'s :func:`forward`, its convolutions in the ``valid`` form
  (``net`` itself keeps its plan)."""
  try:
    from jax2onnx import to_onnx as convert
  except ImportError:
    raise ConfigError("exporting to ONNX needs jax2onnx: pip install -e \".[export]\"") from None
  # Pad then convolve unpadded: ONNX's Conv takes no reflection, so the other algorithms'
  # padded-and-cropped forms (fast under XLA) would only add nodes there.
  net = nnx.merge(*nnx.split(net))  # A copy: the caller's network keeps its plan.
  use(net, {name: "valid" for name in layers_of(net)})
  # onnx_ir warns of every shape tensor it writes without a dtype: noise, not a problem.
  logging.getLogger("onnx_ir").setLevel(logging.ERROR)
  return convert(forward(net), _abstract_inputs(net), opset=OPSET,
                 input_names=list(signature(net)), output_names=["stylized"],
                 model_name="jaxstyle")


def export_onnx(net, path) -> Path:
  """Writes ``net`` as a self-contained ONNX file at ``path`` (atomically); returns the path."""
  model = to_onnx(net)
  path = Path(path)
  with atomic_path(path, suffix=".onnx") as tmp:
    Path(tmp).write_bytes(model.SerializeToString())
  return path
