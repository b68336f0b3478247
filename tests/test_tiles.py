"""Tiled application of a network (jaxstyle.nets.tiles): the tiles' geometry, and the tiled
result against the untiled forward, as a function and as users run apply --tile."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from jaxstyle import cli, tiling
from jaxstyle.nets import models, tiles
from jaxstyle.nets.apply import Stylizer
from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec


def _net():
  """A two-style network, one residual block (halo 28 px), whose outputs span 0-255."""
  net = JohnsonNet(JohnsonSpec(0.25, styles=2, residual_blocks=1), rngs=nnx.Rngs(0))
  net.deconv3.conv.kernel[...] = net.deconv3.conv.kernel[...] * 40.0
  net.deconv3.conv.bias[...] = net.deconv3.conv.bias[...] + 128.0
  return net


@pytest.mark.parametrize("height, width, tile, halo, align", [
    (152, 232, 32, 28, 4), (40, 300, 64, 28, 4), (64, 64, 256, 28, 4),
    (150, 237, 32, 32, 16), (333, 97, 48, 96, 16)])  # VGG's: sides not multiples of 16.
def test_tiles_own_every_pixel_once_with_a_halo_of_real_pixels(height, width, tile, halo, align):
  crop, found = tiling.tiles(height, width, tile, halo, align)
  assert crop == (min(height, tile + 2 * halo + height % align),
                  min(width, tile + 2 * halo + width % align))
  owned = np.zeros((height, width), int)
  for t in found:
    assert t.y % align == 0 and t.x % align == 0
    assert 0 <= t.y and t.y + crop[0] <= height and 0 <= t.x and t.x + crop[1] <= width
    owned[t.y + t.top:t.y + t.bottom, t.x + t.left:t.x + t.right] += 1
    # Context: a halo of real pixels on each side, unless that side is the image's edge.
    assert t.top >= halo or t.y == 0
    assert crop[0] - t.bottom >= halo or t.y + crop[0] == height
    assert t.left >= halo or t.x == 0
    assert crop[1] - t.right >= halo or t.x + crop[1] == width
  np.testing.assert_array_equal(owned, 1)


def test_tiled_equals_the_untiled_forward():
  net = _net()
  assert tiles.halo(net) == 28
  img = np.random.default_rng(0).integers(0, 256, (150, 230, 3), dtype=np.uint8)
  mix = [0.3, 0.7]  # Asymmetric: a tile forward that lost the mix would differ.
  want = Stylizer(net, mix)(img[None])[0]
  got = tiles.stylize_tiled(net, img, (jnp.asarray(mix)[None],), 32)
  assert want.std() > 20
  diff = np.abs(got.astype(int) - want)
  assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


def test_tiled_adain_equals_the_untiled_forward(narrow_weights):
  from jaxstyle.nets.adain import AdaINNet, AdaINSpec
  from jaxstyle.nets.apply import AdaINStylizer
  net = AdaINNet(AdaINSpec(0.125), narrow_weights.params, rngs=nnx.Rngs(2))
  last = net.decoder.stages[-1][-1].conv
  last.kernel[...] = last.kernel[...] * 40.0
  last.bias[...] = last.bias[...] + 128.0
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (203, 301, 3), dtype=np.uint8)  # Padded to multiples of 8.
  stylizer = AdaINStylizer(net, [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)], alpha=0.6)
  assert tiles.halo(net) == 80 and tiles.align(net) == 8
  want = stylizer(img[None])[0]
  diff = np.abs(stylizer.tiled(img, 32).astype(int) - want)
  assert want.std() > 20
  assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


@pytest.mark.slow
def test_apply_tile_writes_the_untiled_image_and_refuses_bad_tiles(tmp_path, capsys):
  model = models.save_model(tmp_path / "model", _net(), styles=["a", "b"], record={})
  Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 141, 3), dtype=np.uint8)).save(
      tmp_path / "photo.png")
  common = [str(model), str(tmp_path / "photo.png"), "--style-mix", "1", "3", "--quiet"]
  assert cli.main(["apply", *common, "-o", str(tmp_path / "whole")]) == 0
  assert cli.main(["apply", *common, "-o", str(tmp_path / "tiled"), "--tile", "32"]) == 0
  whole = np.asarray(Image.open(tmp_path / "whole" / "photo.png")).astype(int)
  tiled = Image.open(tmp_path / "tiled" / "photo.png")
  assert np.abs(np.asarray(tiled).astype(int) - whole).max() <= 1
  assert json.loads(tiled.text["jaxstyle"])["tile"] == 32
  capsys.readouterr()
  assert cli.main(["apply", *common, "-o", str(tmp_path / "bad"), "--tile", "30"]) == 2
  err = capsys.readouterr().err
  assert "--tile: expected a multiple of 4 px, got 30" in err and len(err.splitlines()) == 1
