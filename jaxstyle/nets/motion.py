"""Synthetic motion for training networks that do not flicker: a photo and the photo moved.

A feed-forward network applied frame by frame flickers: a small change of its
input moves its textures. Huang et al. (CVPR 2017) and ReCoNet (Gao et al.,
ACCV 2018) train the network itself with a temporal loss, the output of frame
t+1 against the output of frame t warped by the flow. Here the second frame is
made from a training photo by a known small motion, a similarity transform
(translation, scale, rotation about the centre) and a brightness change, so the
flow is exact and needs neither a video dataset nor a flow network:

    x' = warp(x, p ↦ A⁻¹p) + b,   T = Σ_p m(p) ‖f(x')(p) − warp(f(x), A⁻¹)(p)‖²

with ``warp`` bilinear sampling, m(p) = 1 where A⁻¹p falls inside the photo
(the pixels frame t sees), and T the temporal loss of
:func:`jaxstyle.losses.temporal_loss` (Ruder et al.'s, summed). The
brightness change asks the network to keep its textures where only the light
changes (ReCoNet's luminance term has the same aim).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxstyle import losses

MAX_SHIFT = 1 / 32
"""Largest translation, as a fraction of the photo's side (8 px of a 256 px crop)."""
MAX_ZOOM = 0.04
"""Largest scale change: 1 ± this."""
MAX_DEGREES = 2.0
"""Largest rotation."""
MAX_BRIGHTNESS = 8.0
"""Largest brightness change, in 0-255 levels."""


class Motion(NamedTuple):
  """One similarity transform and brightness change (each a scalar, or a batch of them)."""

  dy: jax.Array  # Translation, px.
  dx: jax.Array
  zoom: jax.Array  # Scale factor.
  radians: jax.Array
  brightness: jax.Array  # Added to every channel, 0-255 levels.


def random_motion(*, key: jax.Array, side: int) -> Motion:
  """A motion drawn uniformly within the MAX_* bounds, for a photo of ``side`` px."""
  k = jax.random.split(key, 5)
  u = [jax.random.uniform(ki, minval=-1.0, maxval=1.0) for ki in k]
  return Motion(u[0] * MAX_SHIFT * side, u[1] * MAX_SHIFT * side, 1.0 + u[2] * MAX_ZOOM,
                jnp.deg2rad(u[3] * MAX_DEGREES), u[4] * MAX_BRIGHTNESS)


def source_coords(motion: Motion, height: int, width: int):
  """Where each pixel of the moved frame comes from in the first: ``2 x H x W`` (row, col).

  The moved frame is the first transformed by A: p' = c + zoom·R(θ)(p − c) +
  d, c the centre; so p = c + R(−θ)(p' − c − d) / zoom.
  """
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                            jnp.arange(width, dtype=jnp.float32), indexing="ij")
  cy, cx = (height - 1) / 2, (width - 1) / 2
  y, x = rows - cy - motion.dy, cols - cx - motion.dx
  cos, sin = jnp.cos(motion.radians), jnp.sin(motion.radians)
  # R(−θ) in (row, col) = (y, x) coordinates: x' = cos·x + sin·y, y' = −sin·x + cos·y.
  return jnp.stack([cy + (cos * y - sin * x) / motion.zoom,
                    cx + (cos * x + sin * y) / motion.zoom])


def warp(img_HxWxC, coords_2xHxW):
  """``img`` sampled bilinearly at ``coords`` (row, col), zero outside it."""
  return jnp.stack([jax.scipy.ndimage.map_coordinates(img_HxWxC[..., c], list(coords_2xHxW),
                                                      order=1, mode="constant", cval=0.0)
                    for c in range(img_HxWxC.shape[-1])], axis=-1)


def inside(coords_2xHxW, height: int, width: int):
  """1 where the coordinates fall inside the image (every bilinear neighbour in it), else 0."""
  rows, cols = coords_2xHxW
  return ((rows >= 0) & (rows <= height - 1) & (cols >= 0) & (cols <= width - 1)).astype(
      jnp.float32)


def moved_pair(photo_HxWx3, *, key: jax.Array):
  """The photo moved by a random motion: ``(moved_HxWx3, coords_2xHxW, mask_HxW)``."""
  h, w, _ = photo_HxWx3.shape
  motion = random_motion(key=key, side=min(h, w))
  coords = source_coords(motion, h, w)
  mask = inside(coords, h, w)
  # Where the first frame has no pixel, the edge's is repeated (mask 0 there: not compared).
  clipped = jnp.stack([jnp.clip(coords[0], 0, h - 1), jnp.clip(coords[1], 0, w - 1)])
  moved = warp(photo_HxWx3, clipped) + motion.brightness
  return jnp.clip(moved, 0, 255), coords, mask


def flow_coords(flow_HxWx2):
  """A backward flow ((dx, dy) px: where each pixel was in the frame before) as the
  ``2 x H x W`` (row, col) coordinates :func:`warp` samples at."""
  h, w, _ = flow_HxWx2.shape
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                            indexing="ij")
  return jnp.stack([rows + flow_HxWx2[..., 1], cols + flow_HxWx2[..., 0]])


def temporal_term(out_HxWx3, out_moved_HxWx3, coords_2xHxW, mask_HxW):
  """T = Σ m ‖f(x') − warp(f(x))‖² (module docstring): the output of the moved photo against
  the output of the photo, moved."""
  return losses.temporal_loss(out_moved_HxWx3, warp(out_HxWx3, coords_2xHxW), mask_HxW)
