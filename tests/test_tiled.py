"""The objective tile by tile (jaxstyle.tiled, --tile): its value, gradient and targets against
the untiled ones (float64 and float32), the tiles in the compiled program, and stylize --tile
as users run it."""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import tiled
from jaxstyle.errors import ConfigError
from jaxstyle.objective import LossWeights, ObjectiveSpec, make_targets, objective

# Sides that are not multiples of 16: the last crops end at the image's edge, off the grid.
H, W = 150, 237
# Layers to block3_conv1 (a halo of 16 px): 5 x 8 tiles of 32 px, crops of 64 px and the rest.
SHALLOW = jaxstyle.StyleConfig(content_layers=("block2_conv2",),
                               style_layers=("block1_conv1", "block2_conv1", "block3_conv1"))


def _problem(weights, dtype, config=SHALLOW, shape=(H, W)):
  params = jax.tree.map(lambda a: jnp.asarray(a, dtype), weights.params)
  rng = np.random.default_rng(0)
  content = jnp.asarray(rng.uniform(0, 255, (*shape, 3)), dtype)
  style = jnp.asarray(rng.uniform(0, 255, (90, 101, 3)), dtype)
  x = jnp.asarray(rng.uniform(0, 255, (*shape, 3)), dtype)
  return params, content, style, x, ObjectiveSpec.from_config(config, weights.convention), \
      LossWeights.from_config(config)


def _value_and_grad(params, targets, x, lw, spec):
  return jax.jit(jax.value_and_grad(lambda x: objective(params, targets, x, lw, spec)[0]))(x)


def test_the_receptive_field_sets_the_halo():
  # conv5_1 sees 85 px each way: 2 (block1) + 1 (pool) + 2·2 + 2 + 4·4 + 4 + 4·8 + 8 + 16.
  assert tiled.halo(("block5_conv1",), "vgg19") == 96
  assert tiled.halo(("block4_conv2",), "vgg19") == 48  # 45 px.
  assert tiled.halo(("block1_conv1",), "vgg16") == 16


@pytest.mark.slow
def test_tiled_targets_objective_and_gradient_are_the_untiled_ones_in_float64(narrow_weights):
  with jax.enable_x64(True):
    params, content, style, x, spec, lw = _problem(narrow_weights, jnp.float64)
    tiled_spec = dataclasses.replace(spec, tile=32)
    targets = make_targets(params, content, style, spec)
    tiled_targets = make_targets(params, content, style, tiled_spec)
    for want, got in zip(jax.tree.leaves(targets), jax.tree.leaves(tiled_targets)):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    v, g = _value_and_grad(params, targets, x, lw, spec)
    v_t, g_t = _value_and_grad(params, targets, x, lw, tiled_spec)
    np.testing.assert_allclose(v_t, v, rtol=1e-12)
    np.testing.assert_allclose(g_t, g, rtol=0, atol=1e-12 * np.abs(g).max())


@pytest.mark.slow
def test_tiled_float32_matches_within_1e4_and_the_program_convolves_crops(narrow_weights):
  # The default objective (to conv5_1: a halo of 96 px) on an image wider than two halos.
  params, content, style, x, spec, lw = _problem(narrow_weights, jnp.float32,
                                                 jaxstyle.StyleConfig(), (300, 350))
  tiled_spec = dataclasses.replace(spec, tile=48)
  targets = make_targets(params, content, style, spec)
  v, g = _value_and_grad(params, targets, x, lw, spec)
  v_t, g_t = _value_and_grad(params, targets, x, lw, tiled_spec)
  np.testing.assert_allclose(v_t, v, rtol=1e-4)
  assert np.abs(g_t - g).max() <= 1e-4 * np.abs(g).max()
  # The tiles are what runs: the first layer convolves crops of 48 + 2·96 px and the side's
  # remainder modulo 16, never the whole image.
  text = jax.jit(lambda x: objective(params, targets, x, lw, tiled_spec)[0]).lower(x).as_text()
  convs = [line for line in text.splitlines() if "stablehlo.convolution" in line]
  first = [line for line in convs if "tensor<3x3x3x" in line]  # RGB in: the first layer.
  assert first and all("tensor<1x252x254x3xf32>" in line for line in first), first[:1]
  assert not any("1x300x350x" in line for line in convs)


def test_tiling_refuses_what_it_does_not_decompose(narrow_weights):
  params, content, style, x, spec, lw = _problem(narrow_weights, jnp.float32)
  targets = make_targets(params, content, style, spec)
  for change, message in (({"style_loss": "w2"}, "the Gram style loss only"),
                          ({"normalize_gradients": True}, "--normalize-gradients")):
    with pytest.raises(ConfigError, match=message):
      objective(params, targets, x, lw, dataclasses.replace(spec, tile=32, **change))
  with pytest.raises(ConfigError, match="--tile: expected 0 or a multiple of 16 px, got 40"):
    jaxstyle.StyleConfig(tile=40)


@pytest.mark.slow
def test_stylize_tile_runs_as_the_untiled_run(narrow_weights):
  """As users run it: a few L-BFGS iterations, tiled and not, end at the same loss."""
  rng = np.random.default_rng(3)
  content = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
  style = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
  config = SHALLOW.replace(size=70, iters=4, init="content")
  whole = jaxstyle.stylize(content, style, config, weights=narrow_weights)
  tiles = jaxstyle.stylize(content, style, config.replace(tile=16), weights=narrow_weights)
  np.testing.assert_allclose(tiles.history["total"], whole.history["total"], rtol=1e-3)
  assert np.abs(tiles.image.astype(int) - whole.image).mean() < 0.5


def test_a_tiled_stylize_never_runs_the_network_over_the_whole_image(narrow_weights,
                                                                      monkeypatch):
  # The content targets of a tiled run once came from one untiled forward pass, which at
  # 4096² alone outgrew a 24 GB machine before any tile ran.
  module = importlib.import_module("jaxstyle.objective")  # The package's name is a function.
  seen = []
  network_features = module.network_features

  def spy(params, rgb_NxHxWx3, *args, **kwargs):
    seen.append(tuple(rgb_NxHxWx3.shape[1:3]))
    return network_features(params, rgb_NxHxWx3, *args, **kwargs)
  monkeypatch.setattr(module, "network_features", spy)
  rng = np.random.default_rng(2)  # A shape no other test compiles: every program traces.
  content = rng.integers(0, 256, (44, 74, 3), dtype=np.uint8)
  style = rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)
  config = SHALLOW.replace(size=74, iters=1, init="content")
  jaxstyle.stylize(content, style, config.replace(tile=16), weights=narrow_weights)
  assert seen and (44, 74) not in seen, seen
  jaxstyle.stylize(content, style, config, weights=narrow_weights)
  assert (44, 74) in seen  # The spy sees the untiled run's whole-image pass.


def test_a_run_that_does_not_fit_whole_is_tiled_and_one_that_fits_is_not():
  config = jaxstyle.StyleConfig()
  have = (20 << 30, "a machine")  # 4096 px whole: about 79 GiB; tiles of 1024: 18.5.
  assert jaxstyle.memory.estimate_bytes(config, 4096, 4096) > have[0]
  tile = jaxstyle.memory.tile_to_fit(config, 4096, 4096, available=have)
  assert tile == 1024
  assert jaxstyle.memory.estimate_bytes(config.replace(tile=tile), 4096, 4096) <= have[0]
  assert jaxstyle.memory.tile_to_fit(config, 512, 512, available=have) == 0
  assert jaxstyle.memory.tile_to_fit(config.replace(style_loss="w2"), 4096, 4096,
                                     available=have) == 0  # Not tiled: refused as before.
  assert jaxstyle.memory.tile_to_fit(config.replace(tile=256), 4096, 4096,
                                     available=have) == 256  # Given: kept.
