"""The synthetic motion that trains networks against flicker (jaxstyle.nets.motion): the moved
photo against the motion's geometry and OpenCV's warp, the temporal term against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.nets import motion

H, W = 40, 56
# Asymmetric: a row/column or sign swap, or a rotation the wrong way, moves the dot elsewhere.
MOTION = motion.Motion(jnp.float32(3.0), jnp.float32(-5.0), jnp.float32(1.04),
                       jnp.deg2rad(jnp.float32(6.0)), jnp.float32(0.0))


def _forward(p_row, p_col, m):
  """Where frame 1's point p lands in the moved frame: c + zoom·R(θ)(p − c) + d, in NumPy."""
  cy, cx = (H - 1) / 2, (W - 1) / 2
  y, x = p_row - cy, p_col - cx
  th, z = float(m.radians), float(m.zoom)
  # R(θ) in (x, y) with y down: x' = cos·x − sin·y, y' = sin·x + cos·y.
  return (cy + z * (np.sin(th) * x + np.cos(th) * y) + float(m.dy),
          cx + z * (np.cos(th) * x - np.sin(th) * y) + float(m.dx))


def test_the_moved_frame_puts_each_point_where_the_motion_takes_it():
  rows, cols = np.mgrid[0:H, 0:W]
  for p in ((12.0, 15.0), (27.0, 40.0)):
    blob = np.exp(-((rows - p[0]) ** 2 + (cols - p[1]) ** 2) / (2 * 1.5 ** 2))
    img = np.repeat(blob[..., None], 3, -1).astype(np.float32)
    moved = np.asarray(motion.warp(jnp.asarray(img), motion.source_coords(MOTION, H, W)))[..., 0]
    centroid = (np.sum(rows * moved) / moved.sum(), np.sum(cols * moved) / moved.sum())
    np.testing.assert_allclose(centroid, _forward(*p, MOTION), atol=0.1)


def test_the_warp_is_opencvs_remap_by_the_motions_flow():
  pytest.importorskip("cv2", reason="OpenCV (the video extra) is the independent warp")
  from jaxstyle.video import flow
  img = np.random.default_rng(0).uniform(0, 255, (H, W, 3)).astype(np.float32)
  coords = motion.source_coords(MOTION, H, W)
  ours = np.asarray(motion.warp(jnp.asarray(img), coords))
  flow_HxWx2 = np.stack([np.asarray(coords[1]) - np.arange(W)[None],
                         np.asarray(coords[0]) - np.arange(H)[:, None]], -1).astype(np.float32)
  mask = np.asarray(motion.inside(coords, H, W)) > 0
  assert 0.8 < mask.mean() < 1.0
  np.testing.assert_allclose(ours[mask], flow.warp(img, flow_HxWx2)[mask], atol=1e-3)


def test_a_moved_pair_is_seeded_bounded_and_masked_where_frame_one_saw_nothing():
  photo = jnp.asarray(np.random.default_rng(1).uniform(0, 255, (64, 64, 3)), jnp.float32)
  a = motion.moved_pair(photo, key=jax.random.key(3))
  b = motion.moved_pair(photo, key=jax.random.key(3))
  c = motion.moved_pair(photo, key=jax.random.key(4))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0])
  moved, coords, mask = map(np.asarray, a)
  assert moved.min() >= 0 and moved.max() <= 255
  shift = np.abs(coords - np.mgrid[0:64, 0:64]).max()
  assert 0 < shift <= 64 * (motion.MAX_SHIFT + motion.MAX_ZOOM) + 32 * np.deg2rad(
      motion.MAX_DEGREES) * 1.5
  outside = (coords[0] < 0) | (coords[0] > 63) | (coords[1] < 0) | (coords[1] > 63)
  np.testing.assert_array_equal(mask, ~outside)


def test_the_temporal_term_is_zero_for_a_network_that_moves_with_its_input():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.uniform(0, 255, (H, W, 3)), jnp.float32)
  coords = motion.source_coords(MOTION, H, W)
  mask = motion.inside(coords, H, W)
  # The identity moves with its input: T = 0 wherever frame 1 saw the pixel.
  assert float(motion.temporal_term(x, motion.warp(x, coords), coords, mask)) < 1e-3
  # A fixed pattern added to every output does not: T = Σ m ‖P − warp(P)‖², in NumPy.
  pattern = rng.uniform(-20, 20, (H, W, 3)).astype(np.float32)
  moved_out = np.asarray(motion.warp(x, coords)) + pattern
  want = np.sum(np.asarray(mask)[..., None] * np.square(
      pattern - (np.asarray(motion.warp(jnp.asarray(pattern), coords)))))
  got = motion.temporal_term(x + pattern, jnp.asarray(moved_out), coords, mask)
  np.testing.assert_allclose(float(got), want, rtol=1e-4)
