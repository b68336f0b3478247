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


def _clip(folder, *, frames=3, shift=(2, 1), shape=(40, 48), seed=0):
  """Frames of a pan (dx, dy px a frame) over a random image, with their exact backward flow."""
  from PIL import Image
  folder.mkdir(parents=True)
  dx, dy = shift
  big = np.random.default_rng(seed).integers(0, 256, (shape[0] + frames * dy,
                                                      shape[1] + frames * dx, 3), dtype=np.uint8)
  for n in range(frames):
    Image.fromarray(big[n * dy:n * dy + shape[0], n * dx:n * dx + shape[1]]).save(
        folder / f"{n:05d}.png")
    if n:  # Frame n at p shows what frame n-1 shows at p + (dx, dy).
      np.save(folder / f"{n:05d}.flow.npy", np.broadcast_to(
          np.float32([dx, dy]), (*shape, 2)).copy())


def test_flow_pairs_warp_the_frame_before_onto_the_frame(tmp_path):
  from jaxstyle.nets.data import FlowPairs
  _clip(tmp_path / "clips" / "a")
  pairs = FlowPairs(tmp_path / "clips", crop=32, batch=3, seed=0)
  assert len(pairs.pairs) == 2
  previous, current, flow, mask = pairs.batch(5)
  assert previous.shape == current.shape == (3, 32, 32, 3) and flow.shape == (3, 32, 32, 2)
  np.testing.assert_array_equal(pairs.batch(5)[0], previous)  # Seeded by the step alone.
  for k in range(3):
    coords = motion.flow_coords(jnp.asarray(flow[k]))
    inside = np.asarray(motion.inside(coords, 32, 32)) * mask[k] > 0
    assert 0.8 < inside.mean() < 1
    warped = np.asarray(motion.warp(jnp.asarray(previous[k], jnp.float32), coords))
    np.testing.assert_allclose(warped[inside], current[k][inside], atol=1e-3)


@pytest.mark.slow
def test_training_on_video_frames_weighs_their_temporal_term_and_refuses_bad_flow(tmp_path,
                                                                                capsys):
  import json

  from PIL import Image

  from jaxstyle import cli
  from tests.conftest import smooth_image
  (tmp_path / "photos").mkdir()
  for i in range(2):
    Image.fromarray(smooth_image(36, 40, seed=60 + i)).save(tmp_path / "photos" / f"{i}.png")
  Image.fromarray(smooth_image(40, 40, seed=4)).save(tmp_path / "style.png")
  _clip(tmp_path / "clips" / "a")
  argv = ["train", str(tmp_path / "style.png"), "--data", str(tmp_path / "photos"),
          "--weights", "random:0:0.125", "--steps", "2", "--batch", "2", "--crop", "32",
          "--width", "0.125", "--sample-every", "0", "--checkpoint-every", "0", "--quiet",
          "--temporal-weight", "0.5", "--temporal-data", str(tmp_path / "clips")]
  assert cli.main(argv + ["-o", str(tmp_path / "model")]) == 0
  weights = json.loads((tmp_path / "model" / "model.json").read_text())["record"]["objective"]
  for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines():
    m = json.loads(line)
    assert m["temporal"] > 0
    want = (weights["content_weight"] * m["content"] + weights["style_weight"] * m["style"]
            + weights["tv_weight"] * m["tv"] + 0.5 * m["temporal"])
    np.testing.assert_allclose(m["total"], want, rtol=1e-4)
  # A still clip (no motion, zero flow): the temporal term of real frames is exactly 0, where
  # moved photos (the frames ignored) would give more.
  _clip(tmp_path / "still" / "a", shift=(0, 0))
  still = [a if a != str(tmp_path / "clips") else str(tmp_path / "still") for a in argv]
  assert cli.main(still + ["-o", str(tmp_path / "still_model")]) == 0
  for line in (tmp_path / "still_model" / "metrics.jsonl").read_text().splitlines():
    assert json.loads(line)["temporal"] < 1e-6
  np.save(tmp_path / "clips" / "a" / "00002.flow.npy", np.zeros((40, 47, 2), np.float32))
  capsys.readouterr()
  assert cli.main(argv + ["-o", str(tmp_path / "bad")]) == 2
  err = capsys.readouterr().err
  assert "00002.flow.npy: expected a 40 x 48 x 2 flow for 48x40 frames" in err, err
  assert len([line for line in err.splitlines() if "error" in line]) == 1, err
  assert not (tmp_path / "bad").exists()
