"""Winograd convolutions and the reshape max pool: parity with the plain definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import transfer, vgg
from jaxstyle.optim import winograd
from tests import reference as ref


def _direct(x, k):
  return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.slow
@pytest.mark.parametrize("tile", winograd.TILES)
@pytest.mark.parametrize("hw", [(12, 8), (7, 9), (1, 1), (5, 2)])
def test_conv_matches_numpy_reference_in_float64(tile, hw):
  rng = np.random.default_rng(tile)
  x = rng.normal(size=(2, *hw, 5))
  k = rng.normal(size=(3, 3, 5, 4))
  with jax.enable_x64(True):
    got = winograd.conv3x3(jnp.asarray(x), winograd.transform_kernel(jnp.asarray(k), tile))
    assert got.dtype == jnp.float64
  for n in range(2):
    want = ref.conv3x3_same(x[n], k, np.zeros(4))
    np.testing.assert_allclose(got[n], want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.slow
@pytest.mark.parametrize("tile, tolerance", [(2, 2e-6), (4, 2e-5)])
def test_float32_rounding_is_as_documented(tile, tolerance):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, 24, 20, 64)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 64, 32)) / 24, jnp.float32)
  with jax.enable_x64(True):
    want = np.asarray(_direct(x.astype(jnp.float64), k.astype(jnp.float64)))
  got = np.asarray(winograd.conv3x3(x, winograd.transform_kernel(k, tile)), np.float64)
  error = np.abs(got - want).max() / np.abs(want).max()
  assert error < tolerance


def test_bad_tile_and_mismatched_kernel_are_explained():
  k = jnp.zeros((3, 3, 4, 2))
  with pytest.raises(ValueError, match=r"tile must be one of \(2, 4\), got 3"):
    winograd.transform_kernel(k, 3)
  with pytest.raises(ValueError, match="does not fit images with 5 channels"):
    winograd.conv3x3(jnp.zeros((1, 4, 4, 5)), winograd.transform_kernel(k, 2))


@pytest.mark.slow
@pytest.mark.parametrize("tile", winograd.TILES)
def test_image_gradient_equals_the_direct_convolutions(tile, monkeypatch):
  """The custom rule's image gradient (Winograd of the transposed kernel) equals autodiff
  of the direct convolution; the prepared kernels are constants, with zero gradient."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 7, 6, 3))
  k = rng.normal(size=(3, 3, 3, 4))
  w = rng.normal(size=(2, 7, 6, 4))
  params = {name: {"kernel": jnp.ones((3, 3, 3, 3)), "bias": jnp.zeros(3)}
            for name in vgg.layer_names()}

  monkeypatch.setattr(vgg, "winograd_tile", lambda *args, **kwargs: tile)

  def by_winograd(x, k):
    layer = vgg.prepare_convs({**params, "block1_conv1": {"kernel": k, "bias": jnp.zeros(4)}},
                              ["relu1_1"])["block1_conv1"]
    assert layer["winograd"].shape[0] == tile + 2
    return jnp.vdot(w, jnp.tanh(vgg.winograd_conv3x3(x, layer["winograd"],
                                                     layer["winograd_t"])))

  def direct(x, k):
    return jnp.vdot(w, jnp.tanh(_direct(x, k)))

  with jax.enable_x64(True):
    x, k = jnp.asarray(x), jnp.asarray(k)
    ours = jax.grad(by_winograd, argnums=(0, 1))(x, k)
    theirs = jax.grad(direct)(x, k)
  np.testing.assert_allclose(ours[0], theirs, rtol=1e-10, atol=1e-10)
  assert not np.any(ours[1])


def test_prepare_picks_the_deep_layers():
  shapes = jax.eval_shape(lambda: jaxstyle.random_vgg(key=jax.random.key(0)))
  prepared = jax.eval_shape(lambda p: vgg.prepare_convs(p, ["relu5_1"]), shapes)
  tiles = {name: prepared[name]["winograd"].shape[0] - 2 for name in prepared
           if "winograd" in prepared[name]}
  # Blocks 1-2 and block3_conv1 stay direct (Cin·Cout < 256·256); nothing past
  # the deepest layer asked for is prepared.
  assert tiles == {"block3_conv2": 2, "block3_conv3": 2, "block3_conv4": 2, "block4_conv1": 2,
                   "block4_conv2": 2, "block4_conv3": 2, "block4_conv4": 2, "block5_conv1": 2}
  assert prepared["block4_conv1"]["winograd"].shape == (4, 4, 256, 512)
  assert prepared["block4_conv1"]["winograd_t"].shape == (4, 4, 512, 256)


@pytest.mark.slow
def test_prepared_features_match_numpy_reference(narrow_weights):
  x = np.random.default_rng(0).normal(scale=50, size=(1, 35, 42, 3)).astype(np.float32)
  params = vgg.prepare_convs(narrow_weights.params, min_channel_product=0)
  assert all("winograd" in params[name] for name in vgg.LAYER_NAMES)
  # Compiled: op by op, the Winograd transforms take 20x longer to dispatch than to compile.
  got = jax.jit(lambda p, x: jaxstyle.vgg_features(p, x, ["relu3_4", "conv4_2", "relu5_1"]))(
      params, x)
  want = ref.vgg19_forward(narrow_weights.params, x[0])
  for name, reference_name in [("relu3_4", "block3_conv4"), ("conv4_2", "pre 4_2"),
                               ("relu5_1", "block5_conv1")]:
    np.testing.assert_allclose(got[name][0], want[reference_name], rtol=2e-4,
                               atol=2e-4 * np.abs(want[reference_name]).max())


@pytest.mark.slow
def test_prepared_weights_pass_through_and_run_as_the_raw_ones(narrow_weights, monkeypatch):
  """prepare_weights does a run's preparation once: run_params hands its params back as
  they are, and runs given them equal runs given the raw weights bit for bit, by Winograd
  and (its kernels dropped) by the direct convolution."""
  monkeypatch.setattr(vgg, "WINOGRAD_MIN_CHANNEL_PRODUCT", 0)
  from jaxstyle.objective import ObjectiveSpec, run_params
  rng = np.random.default_rng(4)
  content = rng.uniform(0, 255, (20, 24, 3)).astype(np.uint8)
  style = rng.uniform(0, 255, (24, 20, 3)).astype(np.uint8)
  config = jaxstyle.StyleConfig(size=24, iters=3, conv="winograd",
                                style_layers=("relu1_1", "relu3_2"))
  prepared = jaxstyle.prepare_weights(narrow_weights, config)
  assert "winograd" in prepared.params["block3_conv2"]
  assert prepared._replace(params=None) == narrow_weights._replace(params=None)
  again = run_params(prepared, ObjectiveSpec.from_config(config, prepared.convention))
  assert all(a is b for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(prepared.params)))
  for conv in ("winograd", "direct"):
    raw = jaxstyle.stylize(content, style, config.replace(conv=conv), weights=narrow_weights)
    fast = jaxstyle.stylize(content, style, config.replace(conv=conv), weights=prepared)
    np.testing.assert_array_equal(fast.history["total"], raw.history["total"])
    np.testing.assert_array_equal(fast.image, raw.image)


def test_auto_is_winograd_on_cpu_only():
  assert vgg.resolve_conv("auto", "cpu") == "winograd"
  assert vgg.resolve_conv("auto", "gpu") == "direct"
  assert vgg.resolve_conv("direct", "cpu") == "direct"
  with pytest.raises(jaxstyle.ConfigError, match="conv must be one of"):
    vgg.resolve_conv("fft")


@pytest.mark.slow
def test_winograd_run_matches_direct_and_compiles_once(narrow_weights, monkeypatch):
  """A whole run by Winograd (every layer, narrow network) follows the direct run's losses."""
  monkeypatch.setattr(vgg, "WINOGRAD_MIN_CHANNEL_PRODUCT", 0)
  rng = np.random.default_rng(3)
  content = rng.uniform(0, 255, (24, 20, 3)).astype(np.uint8)
  style = rng.uniform(0, 255, (20, 24, 3)).astype(np.uint8)
  histories = {}
  for conv in ("direct", "winograd"):
    config = jaxstyle.StyleConfig(size=24, iters=6, conv=conv, style_layers=("relu1_1", "relu3_2"))
    transfer.run_chunks.clear_cache()
    result = jaxstyle.stylize(content, style, config, weights=narrow_weights, save_every=3)
    histories[conv] = result.history["total"]
    assert transfer.run_chunks._cache_size() == 1  # Chunks of 3 reuse one program.
  np.testing.assert_allclose(histories["winograd"], histories["direct"], rtol=1e-3)
  # Through the batch engine (two members in one program), the same losses.
  batch = jaxstyle.stylize_batch(content, [style, style[::-1]], [config, config],
                                 weights=narrow_weights)
  np.testing.assert_allclose(batch[0].history["total"], histories["winograd"], rtol=1e-5)
  assert not np.allclose(batch[1].history["total"], histories["winograd"])


@pytest.mark.parametrize("hw", [(6, 8), (7, 9)])
def test_max_pool_and_its_gradient_equal_reduce_window(hw):
  """Values and gradients equal XLA's reduce_window / select-and-scatter, ties included."""
  rng = np.random.default_rng(2)
  # Rounded values and ReLU zeros make ties: the gradient must go to the first maximum.
  x = jnp.asarray(np.maximum(np.round(rng.normal(size=(2, *hw, 3))), 0), jnp.float32)
  g = jnp.asarray(rng.normal(size=(2, hw[0] // 2, hw[1] // 2, 3)), jnp.float32)

  def builtin(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

  ours, ours_vjp = jax.vjp(lambda x: vgg._pool(x, "max"), x)
  theirs, theirs_vjp = jax.vjp(builtin, x)
  np.testing.assert_array_equal(ours, theirs)
  np.testing.assert_array_equal(ours_vjp(g)[0], theirs_vjp(g)[0])
  assert int(jnp.sum(ours_vjp(jnp.ones_like(g))[0] != 0)) == g.size  # One winner per window.
