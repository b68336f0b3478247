"""Applying a trained network: photos in, stylized photos out, in one forward pass each."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxstyle.nets.johnson import JohnsonNet, style_vector


class Stylizer:
  """A network compiled once per input shape: ``stylizer(imgs_NxHxWx3_uint8)`` → uint8.

  Sides that are not multiples of 4 are reflection-padded up to one and the
  output cropped back, so every output has its input's size.
  """

  def __init__(self, net: JohnsonNet, style=0):
    self.styles = net.spec.styles
    self.style_S = style_vector(style, self.styles)
    graphdef, state = nnx.split(net)

    @jax.jit
    def forward(state, img_NxHxWx3, style_NxS):
      return nnx.merge(graphdef, state)(img_NxHxWx3, style_NxS)

    self._forward = forward
    self._state = state

  def __call__(self, imgs_NxHxWx3) -> np.ndarray:
    n, h, w, _ = imgs_NxHxWx3.shape
    pad_h, pad_w = -h % 4, -w % 4
    x = jnp.asarray(imgs_NxHxWx3, jnp.float32)
    if pad_h or pad_w:
      x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    style = jnp.broadcast_to(self.style_S, (n, self.styles))
    out = self._forward(self._state, x, style)[:, :h, :w]
    return np.asarray(jnp.clip(jnp.round(out), 0, 255)).astype(np.uint8)
