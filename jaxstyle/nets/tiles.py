"""Stylizing an image larger than memory with a network, tile by tile, exactly.

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

AdaIN's one such layer is its content statistics at relu4_1: one pass for
them, then the tiles; its halo is the encoder's receptive field plus the
decoder's (48 + 30, so 80 px), on the 8-px grid of the encoder's three pools.

The moments are combined across tiles in float64 (Chan et al.'s pairwise
update), so a 100-megapixel image loses nothing to float32 sums.
"""

from __future__ import annotations

from functools import partial
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxstyle import tiled
from jaxstyle.errors import ConfigError
from jaxstyle.nets.adain import ENCODER_LAYER, AdaINNet
from jaxstyle.nets.johnson import CondInstanceNorm
from jaxstyle.nets.apply import stride_multiple
from jaxstyle.nets.layers import WHOLE_IMAGE, plan
from jaxstyle.tiling import Tile, tiles


align = stride_multiple  # Tiles start on multiples of the network's strides.


def halo(net) -> int:
  """Pixels of context a tile needs on each side: the network's receptive field radius in
  input pixels, rounded up to a multiple of :func:`align`.

  Johnson's: 9x9: 4; the stride-2 3x3s: 1 and 2; each residual 3x3 at 1/4 scale: 4; the
  upsampling 3x3s: 2 and 1; the last 9x9: 4 (54 px for 5 blocks), plus one layer's slack for
  the transposed form. AdaIN's: the encoder's to relu4_1 (:func:`jaxstyle.tiled.halo`) plus
  the decoder's, one 3x3 at 1/8, four at 1/4, two at 1/2, two at 1 (8 + 16 + 4 + 2 = 30 px).
  """
  if isinstance(net, AdaINNet):
    radius = tiled.halo((ENCODER_LAYER,), "vgg19") + 8 + 16 + 4 + 2
  else:
    radius = 4 + 1 + 2 + 2 * net.spec.residual_blocks * 4 + 2 + 1 + 4 + 4
  return -(-radius // align(net)) * align(net)


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


def _call(graphdef, state, method, crop_1xHxWx3, args, hook):
  token = WHOLE_IMAGE.set(hook)
  try:
    return getattr(nnx.merge(graphdef, state), method)(crop_1xHxWx3, *args)
  finally:
    WHOLE_IMAGE.reset(token)


@partial(jax.jit, static_argnames=("graphdef", "method", "capture"))
def _moments_at(graphdef, state, crop_1xHxWx3, args, stats, owned_4, *, method, capture):
  hook = _Statistics(stats, capture, owned_4, crop_1xHxWx3.shape[1])
  _call(graphdef, state, method, crop_1xHxWx3, args, hook)
  return hook.found


@partial(jax.jit, static_argnames=("graphdef", "method"))
def _forward(graphdef, state, crop_1xHxWx3, args, stats, *, method):
  out = _call(graphdef, state, method, crop_1xHxWx3, args, _Statistics(stats, -1, None, None))
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


def norm_layers(net) -> int:
  """How many layers normalise over the whole image (each a pass of the statistics)."""
  if isinstance(net, AdaINNet):
    return 1
  return sum(isinstance(m, CondInstanceNorm) for _, m in nnx.iter_modules(net))


def stylize_tiled(net, img_HxWx3, args, tile: int, *, method: str = "__call__",
                  conv: str = "auto", log=None, progress=None) -> np.ndarray:
  """``img`` (uint8 RGB, any size) stylized tile by tile with whole-image statistics; uint8.

  ``getattr(net, method)(crop, *args)`` is the network's forward (Johnson's: ``args`` the
  1 x S style weights; AdaIN's ``stylize``: the styles' statistics, mix and alpha).
  ``progress(done, total)``: called after every tile of every pass.
  """
  step = align(net)
  h, w, _ = img_HxWx3.shape
  if min(h, w) < step:
    raise ConfigError(f"--tile: the image is {w}x{h}; expected sides of at least {step} px")
  # The whole image padded to multiples of the strides as the untiled forward pads it
  # (pad_to_multiple is NumPy's reflection), on the host and in uint8: no copy when the sides
  # are multiples already.
  padded = np.asarray(img_HxWx3)
  if h % step or w % step:
    padded = np.pad(padded, ((0, -h % step), (0, -w % step), (0, 0)), mode="reflect")
  crop, found = tiles(padded.shape[0], padded.shape[1], tile, halo(net), step)
  args = tuple(jnp.asarray(a) for a in args)
  example = jax.ShapeDtypeStruct((1, *crop, 3), jnp.float32)
  plan(net, getattr(net, method), example, *(jax.ShapeDtypeStruct(a.shape, a.dtype)
                                             for a in args), conv=conv, log=log)
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
      moments.add(*_moments_at(graphdef, state, crop_of(t), args, tuple(stats), owned,
                               method=method, capture=k))
      done += 1
      if progress:
        progress(done, total)
    stats.append(moments.stats())
  out = np.empty_like(padded)
  for t in found:
    y = np.asarray(_forward(graphdef, state, crop_of(t), args, tuple(stats),
                            method=method))[0]
    out[t.y + t.top:t.y + t.bottom, t.x + t.left:t.x + t.right] = y[t.top:t.bottom,
                                                                    t.left:t.right]
    done += 1
    if progress:
      progress(done, total)
  return out[:h, :w]
