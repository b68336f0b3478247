"""Stylizing an image larger than memory with Johnson's network, tile by tile, exactly.

A network is fully convolutional but for its instance norms, whose mean and
variance run over the whole image; a tile normalised by its own statistics
looks different from its neighbour, and the seams show. URST (Chen et al.,
AAAI 2022) takes the statistics from a thumbnail. jaxstyle computes the
whole image's, exactly, in passes over the tiles:

    for each norm layer k in order:  (μ_k, σ²_k) = moments over every tile's own pixels
                                     of layer k's input, layers < k normalised by (μ_j, σ²_j)
    then every tile through the whole network with all (μ_k, σ²_k).

Each tile is cropped with a :func:`halo` of real pixels on every side that
is not the image's edge, wider than the network's receptive field (54 px), so
its own pixels are exactly what the whole image gives them, and tiles start
on multiples of 4, so the stride-2 layers sample the same grid. The result
equals the untiled forward to float rounding (tests/test_tiles.py). The
price is time: layer k's pass runs the network up to k, about 7.5x one
forward for Johnson's 15 norms (the thumbnail's is one forward, plus an error
that grows with the ratio of the sizes); the memory is one tile's.

The moments are combined across tiles in float64 (Chan et al.'s pairwise
update), so a 100-megapixel image loses nothing to float32 sums.
"""

from __future__ import annotations

from functools import partial
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxstyle.errors import ConfigError
from jaxstyle.nets.johnson import WHOLE_IMAGE, CondInstanceNorm, JohnsonNet
from jaxstyle.nets.layers import plan
from jaxstyle.tiling import Tile, tiles

ALIGN = 4
"""Tiles start on multiples of this: the product of the network's strides."""


def halo(net: JohnsonNet) -> int:
  """Pixels of context a tile needs on each side: the network's receptive field radius in
  input pixels (9x9: 4; the stride-2 3x3s: 1 and 2; each residual 3x3 at 1/4 scale: 4; the
  upsampling 3x3s: 2 and 1; the last 9x9: 4; 54 px for Johnson's 5 blocks), plus one
  layer's slack for the transposed form, rounded up to a multiple of :data:`ALIGN`."""
  radius = 4 + 1 + 2 + 2 * net.spec.residual_blocks * 4 + 2 + 1 + 4 + 4
  return -(-radius // ALIGN) * ALIGN


class _Statistics:
  """The norm layers' (μ, σ²) while a tile is traced: given ones for the layers before
  ``capture``, and at layer ``capture`` the moments of the tile's own pixels, kept in
  ``found`` (layers after it are not needed: their work is removed by XLA)."""

  def __init__(self, stats, capture, owned_4, crop_height):
    self.stats, self.capture, self.owned, self.crop_height = stats, capture, owned_4, crop_height
    self.index, self.found = 0, None

  def __call__(self, x_NxHxWxC):
    k = self.index
    self.index += 1
    if k == self.capture:
      self.found = _own_moments(x_NxHxWxC, self.owned, self.crop_height)
    if k < len(self.stats):
      return self.stats[k]
    mean = x_NxHxWxC.mean((1, 2), keepdims=True)
    return mean, jnp.square(x_NxHxWxC - mean).mean((1, 2), keepdims=True)


def _own_moments(x_1xHxWxC, owned_4, crop_height):
  """(count, mean, M2) per channel over the tile's own block, at this layer's scale."""
  h, w = x_1xHxWxC.shape[1:3]
  # Rows and columns shrink alike (crops are multiples of 4): one scale for both.
  top, bottom, left, right = (owned_4 * h) // crop_height
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  mask = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right))[None, ..., None]
  mask = mask.astype(x_1xHxWxC.dtype)
  count = jnp.sum(mask)
  mean = jnp.sum(mask * x_1xHxWxC, (0, 1, 2), keepdims=True) / count
  m2 = jnp.sum(mask * jnp.square(x_1xHxWxC - mean), (0, 1, 2))
  return count, mean.reshape(-1), m2


@partial(jax.jit, static_argnames=("graphdef", "capture"))
def _moments_at(graphdef, state, crop_1xHxWx3, style_1xS, stats, owned_4, *, capture):
  hook = _Statistics(stats, capture, owned_4, crop_1xHxWx3.shape[1])
  token = WHOLE_IMAGE.set(hook)
  try:
    nnx.merge(graphdef, state)(crop_1xHxWx3, style_1xS)
  finally:
    WHOLE_IMAGE.reset(token)
  return hook.found


@partial(jax.jit, static_argnames="graphdef")
def _forward(graphdef, state, crop_1xHxWx3, style_1xS, stats):
  token = WHOLE_IMAGE.set(_Statistics(stats, -1, None, None))
  try:
    out = nnx.merge(graphdef, state)(crop_1xHxWx3, style_1xS)
  finally:
    WHOLE_IMAGE.reset(token)
  return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)


class _Moments:
  """Per-channel count, mean and M2, combined pairwise in float64 (Chan et al. 1979)."""

  def __init__(self):
    self.n, self.mean, self.m2 = 0.0, 0.0, 0.0

  def add(self, n, mean, m2):
    n, mean, m2 = float(n), np.asarray(mean, np.float64), np.asarray(m2, np.float64)
    total = self.n + n
    delta = mean - self.mean
    self.mean = self.mean + delta * n / total
    self.m2 = self.m2 + m2 + delta ** 2 * self.n * n / total
    self.n = total

  def stats(self):
    """(μ, σ²) as the norm layers take them: 1 x 1 x 1 x C, float32."""
    return (jnp.asarray(self.mean, jnp.float32).reshape(1, 1, 1, -1),
            jnp.asarray(self.m2 / self.n, jnp.float32).reshape(1, 1, 1, -1))


def norm_layers(net: JohnsonNet) -> int:
  """How many instance norms the network has (each a pass of the statistics)."""
  return sum(isinstance(m, CondInstanceNorm) for _, m in nnx.iter_modules(net))


def stylize_tiled(net: JohnsonNet, img_HxWx3, style_S, tile: int, *, conv: str = "auto",
                  log=None, progress=None) -> np.ndarray:
  """``img`` (uint8 RGB, any size) stylized tile by tile with whole-image statistics; uint8.

  ``style_S``: the style weights (:func:`jaxstyle.nets.johnson.style_vector`).
  ``progress(done, total)``: called after every tile of every pass.
  """
  if not isinstance(net, JohnsonNet):
    raise ConfigError("--tile: tiles are for Johnson and conditional-instance-norm networks; "
                      "an AdaIN model's encoder statistics are not tiled yet")
  h, w, _ = img_HxWx3.shape
  if min(h, w) < ALIGN:
    raise ConfigError(f"--tile: the image is {w}x{h}; expected sides of at least {ALIGN} px")
  # The whole image padded to multiples of 4 as the untiled forward pads it (pad_to_multiple
  # is NumPy's reflection), on the host and in uint8: no copy when the sides are multiples.
  padded = np.asarray(img_HxWx3)
  if h % ALIGN or w % ALIGN:
    padded = np.pad(padded, ((0, -h % ALIGN), (0, -w % ALIGN), (0, 0)), mode="reflect")
  crop, found = tiles(padded.shape[0], padded.shape[1], tile, halo(net), ALIGN)
  style_1xS = jnp.asarray(style_S, jnp.float32)[None]
  example = jax.ShapeDtypeStruct((1, *crop, 3), jnp.float32)
  plan(net, net, example, jax.ShapeDtypeStruct(style_1xS.shape, jnp.float32), conv=conv,
       log=log)
  graphdef, state = nnx.split(net)
  layers = norm_layers(net)
  total, done = (layers + 1) * len(found), 0

  def crop_of(t: Tile):
    return jnp.asarray(padded[None, t.y:t.y + crop[0], t.x:t.x + crop[1]], jnp.float32)

  stats = []
  for k in range(layers):
    moments = _Moments()
    for t in found:
      owned = jnp.asarray([t.top, t.bottom, t.left, t.right], jnp.int32)
      moments.add(*_moments_at(graphdef, state, crop_of(t), style_1xS, tuple(stats), owned,
                               capture=k))
      done += 1
      if progress:
        progress(done, total)
    stats.append(moments.stats())
  out = np.empty_like(padded)
  for t in found:
    y = np.asarray(_forward(graphdef, state, crop_of(t), style_1xS, tuple(stats)))[0]
    out[t.y + t.top:t.y + t.bottom, t.x + t.left:t.x + t.right] = y[t.top:t.bottom,
                                                                    t.left:t.right]
    done += 1
    if progress:
      progress(done, total)
  return out[:h, :w]
