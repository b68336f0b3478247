"""Winograd convolutions and the reshape max pool: parity with the plain definitions."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import conv, transfer, vgg
from jaxstyle.optim import winograd
from tests import reference as ref

# The module: the package's name `objective` is the objective function.
objective = importlib.import_module("jaxstyle.objective")


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
def test_image_gradient_equals_the_direct_convolutions(tile):
  """The custom rule's image gradient (Winograd of the transposed kernel) equals autodiff
  of the direct convolution; the prepared kernels are constants, with zero gradient."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 7, 6, 3))
  k = rng.normal(size=(3, 3, 3, 4))
  w = rng.normal(size=(2, 7, 6, 4))

  def by_winograd(x, k):
    if tile == conv.WINOGRAD_TILE:  # The kernels a run makes.
      kernels = vgg.prepare_convs({"block1_conv1": {"kernel": k, "bias": jnp.zeros(4)}},
                                  ["block1_conv1"])["block1_conv1"]
      U, U_t = kernels["winograd"], kernels["winograd_t"]
    else:
      k = jax.lax.stop_gradient(k)
      U = winograd.transform_kernel(k, tile)
      U_t = winograd.transform_kernel(winograd.transpose_kernel(k), tile)
    assert U.shape[0] == tile + 2
    return jnp.vdot(w, jnp.tanh(vgg.winograd_conv3x3(x, U, U_t)))

  def direct(x, k):
    return jnp.vdot(w, jnp.tanh(_direct(x, k)))

  with jax.enable_x64(True):
    x, k = jnp.asarray(x), jnp.asarray(k)
    ours = jax.grad(by_winograd, argnums=(0, 1))(x, k)
    theirs = jax.grad(direct)(x, k)
  np.testing.assert_allclose(ours[0], theirs, rtol=1e-10, atol=1e-10)
  assert not np.any(ours[1])


def test_prepare_makes_the_named_layers_kernels_only():
  shapes = jax.eval_shape(lambda: jaxstyle.random_vgg(key=jax.random.key(0)))
  prepared = jax.eval_shape(lambda p: vgg.prepare_convs(p, ["block1_conv2", "block4_conv1"]),
                            shapes)
  assert {name for name in prepared if "winograd" in prepared[name]} == {"block1_conv2",
                                                                       "block4_conv1"}
  assert prepared["block4_conv1"]["winograd"].shape == (4, 4, 256, 512)
  assert prepared["block4_conv1"]["winograd_t"].shape == (4, 4, 512, 256)


def test_vgg_features_runs_exactly_the_named_layers_by_winograd(monkeypatch):
  params = jaxstyle.random_vgg(key=jax.random.key(0), width_scale=0.125)
  ran = []
  real = vgg.winograd_conv3x3

  def spy(x, U, U_t):
    ran.append((x.shape[1:], U.shape[2:]))
    return real(x, U, U_t)
  monkeypatch.setattr(vgg, "winograd_conv3x3", spy)
  x = jax.ShapeDtypeStruct((1, 32, 24, 3), jnp.float32)
  prepared = vgg.prepare_convs(params, ["block2_conv1"])  # One prepared, one made in the trace.
  jax.eval_shape(lambda x: vgg.vgg_features(prepared, x, ["relu3_1"],
                                            winograd=("block2_conv1", "block3_conv1")), x)
  assert ran == [((16, 12, 8), (8, 16)), ((8, 6, 16), (16, 32))]
  ran.clear()
  jax.eval_shape(lambda x: vgg.vgg_features(prepared, x, ["relu3_1"]), x)
  assert not ran  # Prepared kernels alone do not make a layer run by Winograd.


@pytest.mark.slow
def test_prepared_features_match_numpy_reference(narrow_weights):
  x = np.random.default_rng(0).normal(scale=50, size=(1, 35, 42, 3)).astype(np.float32)
  params = vgg.prepare_convs(narrow_weights.params, vgg.LAYER_NAMES)
  # Compiled: op by op, the Winograd transforms take 20x longer to dispatch than to compile.
  got = jax.jit(lambda p, x: jaxstyle.vgg_features(p, x, ["relu3_4", "conv4_2", "relu5_1"],
                                                   winograd=vgg.LAYER_NAMES))(params, x)
  want = ref.vgg19_forward(narrow_weights.params, x[0])
  for name, reference_name in [("relu3_4", "block3_conv4"), ("conv4_2", "pre 4_2"),
                               ("relu5_1", "block5_conv1")]:
    np.testing.assert_allclose(got[name][0], want[reference_name], rtol=2e-4,
                               atol=2e-4 * np.abs(want[reference_name]).max())


@pytest.mark.slow
def test_prepared_weights_pass_through_and_run_as_the_raw_ones(narrow_weights):
  """prepare_weights does a run's preparation once: run_params hands its params back as
  they are, and runs given them equal runs given the raw weights bit for bit, by Winograd
  and (its kernels dropped) by the direct convolution."""
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
  # A run that convolves directly does not hold the Winograd kernels' memory.
  direct = run_params(prepared, ObjectiveSpec.from_config(config.replace(conv="direct"),
                                                          prepared.convention))
  assert not any("winograd" in layer for layer in direct.values())
  for choice in ("winograd", "direct"):
    raw = jaxstyle.stylize(content, style, config.replace(conv=choice), weights=narrow_weights)
    fast = jaxstyle.stylize(content, style, config.replace(conv=choice), weights=prepared)
    np.testing.assert_array_equal(fast.history["total"], raw.history["total"])
    np.testing.assert_array_equal(fast.image, raw.image)


def _fake_times(monkeypatch, seconds_by_set):
  """objective.time_objective answers ``seconds_by_set[name]``, the set named as
  vgg.winograd_sets names it; records what it was asked."""
  asked = []

  def fake(shape, winograd, **_):
    sets = vgg.winograd_sets(shape.network, shape.spec.layers, shape.width_scale)
    name = next(n for n, layers in sets.items() if layers == winograd)
    asked.append((shape, name))
    return seconds_by_set[name]
  monkeypatch.setattr(objective, "time_objective", fake)
  return asked


def _spec(**kwargs):
  return objective.ObjectiveSpec.from_config(jaxstyle.StyleConfig(**kwargs), "caffe")


def test_auto_times_the_whole_objective_per_size_and_keeps_the_fastest_set(tmp_path, monkeypatch):
  spec = _spec(style_layers=("relu1_1", "relu3_1"), content_layers=("relu3_2",))
  sets = vgg.winograd_sets("vgg19", spec.layers)
  assert sets == {"direct": (), "deep": ("block3_conv2",),
                  "every": ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
                            "block3_conv1", "block3_conv2")}
  cache = conv.ChoiceCache(tmp_path)
  asked = _fake_times(monkeypatch, {"direct": 1.0, "deep": 0.5, "every": 2.0})
  assert objective.winograd_layers(spec, "auto", "vgg19", (96, 128), cache=cache) == sets["deep"]
  assert sorted(name for _, name in asked) == ["deep", "direct", "every"]
  assert {(s.height, s.width) for s, _ in asked} == {(96, 128)}
  asked.clear()
  fresh = conv.ChoiceCache(tmp_path)  # Read back from the file: nothing timed again.
  assert objective.winograd_layers(spec, "auto", "vgg19", (96, 128), cache=fresh) == sets["deep"]
  assert not asked
  # Another size is timed afresh (here every layer wins); a large one at MEASURED_PIXELS.
  asked = _fake_times(monkeypatch, {"direct": 1.0, "deep": 0.8, "every": 0.5})
  assert objective.winograd_layers(spec, "auto", "vgg19", (192, 256), cache=cache) == sets["every"]
  objective.winograd_layers(spec, "auto", "vgg19", (3000, 4000), cache=cache)
  (big, _), *_ = asked[3:]
  assert big.height * big.width <= objective.MEASURED_PIXELS
  assert abs(big.width / big.height - 4 / 3) < 0.01
  # Near a tie the direct convolutions stay (conv.MARGIN).
  asked = _fake_times(monkeypatch, {"direct": 1.0, "deep": 0.95, "every": 0.97})
  assert objective.winograd_layers(spec, "auto", "vgg19", (100, 100), cache=cache) == ()
  # Untimed: no size, or a small objective, takes the deep set; a narrow VGG has none deep.
  asked.clear()
  assert objective.winograd_layers(spec, "auto", "vgg19", None, cache=cache) == sets["deep"]
  assert objective.winograd_layers(spec, "auto", "vgg19", (16, 16), cache=cache) == sets["deep"]
  assert not asked
  assert vgg.winograd_sets("vgg19", spec.layers, 0.125)["deep"] == ()
  # One algorithm for every layer, or none.
  assert objective.winograd_layers(spec, "winograd", "vgg19", (96, 128)) == sets["every"]
  for choice in ("direct", "s2d", "subpixel"):
    assert objective.winograd_layers(spec, choice, "vgg19", (96, 128)) == ()
  with pytest.raises(jaxstyle.ConfigError, match="--conv: expected one of"):
    objective.winograd_layers(spec, "fft", "vgg19", (96, 128))


def test_stylize_times_vgg_at_its_size_and_records_what_ran(tmp_path, monkeypatch):
  """As users run it, measured for real: --conv auto (the default) times the objective at the
  run's size with each candidate set, runs the fastest, and the PNG records which layers ran
  by Winograd."""
  from PIL import Image

  from jaxstyle import cli, provenance
  monkeypatch.setattr(objective, "UNMEASURED_MACS", 0)  # A narrow network, timed all the same.
  monkeypatch.setenv(conv.ENV_VAR, str(tmp_path / "convs"))
  rng = np.random.default_rng(5)
  for name, hw in (("content", (20, 28)), ("style", (24, 24))):
    Image.fromarray(rng.uniform(0, 255, (*hw, 3)).astype(np.uint8)).save(tmp_path / f"{name}.png")
  argv = ["stylize", str(tmp_path / "content.png"), str(tmp_path / "style.png"), "--size", "28",
          "--iters", "2", "--weights", "random:1:0.125", "--content-layers", "relu2_2",
          "--style-layers", "relu1_1", "relu2_2", "--quiet", "-o"]
  assert cli.main(argv + [str(tmp_path / "auto.png")]) == 0
  (cached,) = (tmp_path / "convs").iterdir()
  (entry,) = [e for key, e in json.loads(cached.read_text()).items()
              if key.startswith("objective-vgg19-w0.125-20x28-")]
  assert set(entry["seconds"]) == {"direct", "every"}  # "deep" is "direct" at this width.
  # With the choice cached, a rerun reads it and gives the same bytes.
  cached_before = cached.read_text()
  assert cli.main(argv + [str(tmp_path / "warm.png")]) == 0
  assert (tmp_path / "warm.png").read_bytes() == (tmp_path / "auto.png").read_bytes()
  assert cached.read_text() == cached_before
  every = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2"]
  record = provenance.read_png_record(tmp_path / "auto.png")
  assert record["convolutions"] == {
      "conv": "auto", "winograd": {"20x28": every if entry["algorithm"] == "every" else []}}
  for choice, layers in (("winograd", every), ("direct", [])):
    assert cli.main(argv + [str(tmp_path / f"{choice}.png"), "--conv", choice]) == 0
    assert provenance.read_png_record(tmp_path / f"{choice}.png")["convolutions"][
        "winograd"] == {"20x28": layers}
  losses = {c: provenance.read_png_record(tmp_path / f"{c}.png")["final_loss"]["total"]
            for c in ("winograd", "direct")}
  assert losses["winograd"] != losses["direct"]  # Each ran what it says (its own rounding).


@pytest.mark.slow
def test_winograd_run_matches_direct_and_compiles_once(narrow_weights):
  """A whole run by Winograd (every layer, narrow network) follows the direct run's losses."""
  rng = np.random.default_rng(3)
  content = rng.uniform(0, 255, (24, 20, 3)).astype(np.uint8)
  style = rng.uniform(0, 255, (20, 24, 3)).astype(np.uint8)
  histories = {}
  for choice in ("direct", "winograd"):
    config = jaxstyle.StyleConfig(size=24, iters=6, conv=choice,
                                  style_layers=("relu1_1", "relu3_2"))
    transfer.run_chunks.clear_cache()
    result = jaxstyle.stylize(content, style, config, weights=narrow_weights, save_every=3)
    histories[choice] = result.history["total"]
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


def test_training_times_its_loss_network_at_the_crop_and_records_it(tmp_path, monkeypatch):
  """train chooses VGG's Winograd layers for its crop, as stylize does for its size, and the
  model's record says which ran."""
  from PIL import Image

  from jaxstyle import cli
  asked = _fake_times(monkeypatch, {"direct": 1.0, "deep": 1.0, "every": 0.5})
  monkeypatch.setattr(objective, "UNMEASURED_MACS", 0)
  monkeypatch.setenv(conv.ENV_VAR, str(tmp_path / "convs"))
  rng = np.random.default_rng(6)
  (tmp_path / "data").mkdir()
  for name in ("data/a.png", "data/b.png", "style.png"):
    Image.fromarray(rng.uniform(0, 255, (40, 40, 3)).astype(np.uint8)).save(tmp_path / name)
  assert cli.main(["train", str(tmp_path / "style.png"), "--data", str(tmp_path / "data"),
                   "-o", str(tmp_path / "model"), "--width", "0.125", "--weights",
                   "random:0:0.125", "--batch", "1", "--crop", "32", "--steps", "1",
                   "--sample-every", "0", "--checkpoint-every", "0", "--quiet"]) == 0
  assert {(s.height, s.width) for s, _ in asked} == {(32, 32)}
  record = json.loads((tmp_path / "model" / "model.json").read_text())
  assert record["record"]["convolutions"]["vgg_winograd"] == list(
      vgg.winograd_sets("vgg16", ["relu4_3"])["every"])
