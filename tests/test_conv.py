"""The style networks' convolution: every algorithm (jaxstyle.conv) against lax in float64,
and the per-layer choice (jaxstyle.nets.layers): measured once, cached, overridable,
reproducible."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx


from jaxstyle import conv
from jaxstyle.errors import ConfigError
from jaxstyle.nets.adain import AdaINNet, AdaINSpec
from jaxstyle.nets import layers
from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec

# (height, width, kernel, stride, upsample): odd and even sides, every kind of layer the
# networks have (9x9, 3x3, stride 2, 2x upsampling) and 5x5 ones (stride 2 and 1) they do not.
KINDS = [(7, 9, 3, 1, 1), (10, 5, 3, 1, 1), (8, 5, 3, 2, 1), (9, 11, 3, 2, 1), (6, 7, 9, 1, 1),
         (13, 10, 9, 2, 1), (11, 12, 5, 2, 1), (9, 8, 5, 1, 1), (5, 6, 3, 1, 2), (4, 7, 3, 1, 2)]


def _reference(x, kernel, stride, upsample):
  """The definition, literally: upsample by repetition, reflect-pad, VALID convolution."""
  x = jnp.repeat(jnp.repeat(x, upsample, 1), upsample, 2)
  p = kernel.shape[0] // 2
  x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _relative(got, want):
  return float(jnp.abs(got - want).max() / jnp.abs(want).max())


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", conv.ALGORITHMS)
def test_every_algorithm_equals_lax_in_float64_values_and_gradients(algorithm):
  rng = np.random.default_rng(0)
  tried = 0
  with jax.enable_x64(True):
    for h, w, k, stride, upsample in KINDS:
      if not conv.applies(algorithm, k, stride, upsample, 3):
        continue
      tried += 1
      x = jnp.asarray(rng.standard_normal((2, h, w, 3)))
      kernel = jnp.asarray(rng.standard_normal((k, k, 3, 4)))
      want = _reference(x, kernel, stride, upsample)
      cotangent = jnp.asarray(rng.standard_normal(want.shape))

      def run(x, kernel, algorithm=algorithm, stride=stride, upsample=upsample):
        return conv.reflect_conv(x, kernel, stride=stride, upsample=upsample,
                                 algorithm=algorithm)

      got = run(x, kernel)
      assert got.dtype == jnp.float64 and got.shape == want.shape, (h, w, k, stride, upsample)
      assert _relative(got, want) <= 1e-5, (h, w, k, stride, upsample)
      grads = jax.vjp(run, x, kernel)[1](cotangent)
      wants = jax.vjp(lambda x, k: _reference(x, k, stride, upsample), x, kernel)[1](cotangent)
      for g, r in zip(grads, wants):
        assert _relative(g, r) <= 1e-5, (h, w, k, stride, upsample)
  assert tried >= 2, algorithm


def _products(fn, *args) -> int:
  """How many convolutions and matrix products the program of ``fn(*args)`` runs."""
  text = str(jax.make_jaxpr(fn)(*args))
  return text.count("conv_general_dilated") + text.count("dot_general")


@pytest.mark.parametrize("algorithm,kernel,stride,upsample", [
    ("unfold", 9, 1, 1), ("s2d", 3, 2, 1), ("subpixel", 3, 1, 2), ("winograd", 3, 1, 1),
    ("fftgrad", 9, 1, 1)])
def test_only_the_differentiated_argument_gets_a_gradient_computed(algorithm, kernel, stride,
                                                                  upsample):
  # A network's first layer convolves the photo, which training does not differentiate: its
  # image gradient (a whole transposed 9x9 convolution) would be computed and thrown away.
  x = jnp.ones((1, 12, 12, 3))
  k = jnp.ones((kernel, kernel, 3, 4))

  def loss(x, k):
    return conv.reflect_conv(x, k, stride=stride, upsample=upsample, algorithm=algorithm).sum()

  both = _products(jax.grad(loss, (0, 1)), x, k)
  assert _products(jax.grad(loss, 1), x, k) < both
  assert _products(jax.grad(loss, 0), x, k) < both


def test_an_algorithm_that_cannot_run_a_layer_says_so():
  x, kernel = jnp.zeros((1, 8, 8, 3)), jnp.zeros((3, 3, 3, 4))
  with pytest.raises(ConfigError, match="'subpixel' cannot run a 3x3 layer with stride 2"):
    conv.reflect_conv(x, kernel, stride=2, algorithm="subpixel")


def _johnson():
  return JohnsonNet(JohnsonSpec(width=0.125), rngs=nnx.Rngs(0))


def _image(batch=1, side=256):
  """Abstract: plans trace it, nothing computes on it (timings are faked where they are asked)."""
  return jax.ShapeDtypeStruct((batch, side, side, 3), jnp.float32)


def test_layer_shapes_sees_every_layer_at_its_own_size():
  net = _johnson()
  shapes = layers.layer_shapes(net, net, jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32),
                             grad=True)
  assert len(shapes) == 16 and len(layers.layers_of(net)) == 16
  assert shapes["conv1.conv"] == conv.LayerShape(2, 16, 16, 3, 4, 9, 1, 1, True)
  assert shapes["conv2.conv"] == conv.LayerShape(2, 16, 16, 4, 8, 3, 2, 1, True)
  assert shapes["res.4.conv2.conv"] == conv.LayerShape(2, 4, 4, 16, 16, 3, 1, 1, True)
  assert shapes["deconv1.conv.conv"] == conv.LayerShape(2, 4, 4, 16, 8, 3, 1, 2, True)
  assert shapes["deconv3.conv"] == conv.LayerShape(2, 16, 16, 4, 3, 9, 1, 1, True)


def test_one_algorithm_for_every_layer_it_applies_to_direct_elsewhere(tmp_path):
  net = _johnson()
  chosen = layers.plan(net, net, _image(), conv="subpixel", cache=conv.ChoiceCache(tmp_path))
  assert {n for n, a in chosen.items() if a == "subpixel"} == {"deconv1.conv.conv",
                                                               "deconv2.conv.conv"}
  assert set(chosen.values()) == {"subpixel", "direct"}
  assert {n: m.algorithm for n, m in layers.layers_of(net).items()} == chosen  # Set on the net.
  chosen = layers.plan(net, net, _image(), conv="s2d", cache=conv.ChoiceCache(tmp_path))
  assert {n for n, a in chosen.items() if a == "s2d"} == {"conv2.conv", "conv3.conv"}
  assert not list(tmp_path.iterdir())  # Nothing measured, nothing cached.


def _fake_times(monkeypatch, seconds):
  """time_layer answers from ``seconds[algorithm]``; counts the calls."""
  calls = []

  def fake(shape, algorithm, **_):
    calls.append((shape.key(), algorithm))
    return seconds[algorithm]
  monkeypatch.setattr(conv, "time_layer", fake)
  return calls


def test_auto_keeps_the_measured_fastest_and_caches_it(tmp_path, monkeypatch):
  calls = _fake_times(monkeypatch, {"direct": 1.0, "winograd": 0.95, "s2d": 0.5, "unfold": 0.8,
                                    "subpixel": 2.0})
  net = _johnson()
  chosen = layers.plan(net, net, _image(), cache=conv.ChoiceCache(tmp_path))
  # s2d (0.5) wins where it applies; unfold (0.8 <= 0.9 x direct) on the RGB layer, the only one
  # it runs; winograd (0.95) is not enough faster to leave direct; subpixel (2.0) is slower.
  assert chosen["conv2.conv"] == chosen["conv3.conv"] == "s2d"
  assert chosen["conv1.conv"] == "unfold" and chosen["res.0.conv1.conv"] == "direct"
  assert chosen["deconv1.conv.conv"] == "direct"
  assert {a for _, a in calls} == {"direct", "winograd", "s2d", "unfold", "subpixel"}
  measured = len({key for key, _ in calls})
  assert measured == len({s.key() for s in layers.layer_shapes(net, net, _image()).values()
                          if len(s.candidates()) > 1})  # One candidate: nothing to time.
  assert measured == 6
  # The file is keyed by backend, device kind and jax version, and a new cache reads it back.
  (path,) = tmp_path.iterdir()
  assert path.name.startswith("cpu-")
  assert path.name.endswith(f"-jax{jax.__version__}-algorithms{conv.algorithms_digest()}.json")
  entries = json.loads(path.read_text())
  assert len(entries) == measured
  calls.clear()
  warm = _johnson()
  assert layers.plan(warm, warm, _image(), cache=conv.ChoiceCache(tmp_path)) == chosen
  assert not calls  # Warm: nothing timed.


def test_the_cache_is_read_not_remeasured_and_a_damaged_one_is_remeasured(tmp_path, monkeypatch):
  net = _johnson()
  shapes = layers.layer_shapes(net, net, _image())
  cache = conv.ChoiceCache(tmp_path)
  for shape in shapes.values():  # Unusual choices, to see that they are the ones used.
    pick = "winograd" if shape.kernel == 3 and shape.stride == 1 and shape.upsample == 1 \
        else shape.candidates()[-1]
    cache.put(shape, pick, {pick: 1.0})
  calls = _fake_times(monkeypatch, {a: 1.0 for a in conv.ALGORITHMS})
  chosen = layers.plan(net, net, _image(), cache=conv.ChoiceCache(tmp_path))
  assert not calls
  assert chosen["res.2.conv2.conv"] == "winograd" and chosen["deconv1.conv.conv"] == "subpixel"
  cache.path.write_text("{not json")
  layers.plan(net, net, _image(), cache=conv.ChoiceCache(tmp_path))
  assert calls  # Re-measured, not crashed.


def test_margin_keeps_direct_on_a_near_tie():
  assert conv.fastest({"direct": 1.0, "s2d": 0.91}) == "direct"
  assert conv.fastest({"direct": 1.0, "s2d": 0.89}) == "s2d"
  assert conv.fastest({"direct": 1.0, "s2d": 1.2}) == "direct"


@pytest.mark.slow
def test_every_plan_gives_the_same_network_output_to_float_rounding():
  net = _johnson()
  x = jax.random.uniform(jax.random.key(1), (2, 20, 24, 3), maxval=255.0)
  outputs = {}
  for choice in conv.ALGORITHMS:
    layers.plan(net, net, x, conv=choice)
    outputs[choice] = net(x)
  for choice, out in outputs.items():
    assert float(jnp.abs(out - outputs["valid"]).max()) <= 1e-3, choice
  assert float(jnp.abs(outputs["direct"] - outputs["valid"]).max()) == 0.0  # Same arithmetic.


def test_adain_decoder_fuses_its_upsampling_into_three_convolutions():
  net = AdaINNet(AdaINSpec(width=0.125), rngs=nnx.Rngs(0))
  t = jax.ShapeDtypeStruct((1, 4, 4, 64), jnp.float32)
  chosen = layers.plan(net.decoder, net.decoder, t, conv="subpixel")
  assert sorted(n for n, a in chosen.items() if a == "subpixel") == [
      "stages.1.0.conv", "stages.2.0.conv", "stages.3.0.conv"]


def _apply(model, photo, out, *extra):
  from jaxstyle import cli
  assert cli.main(["apply", str(model), str(photo), "-o", str(out), *extra]) == 0
  return (out / (photo.stem + ".png")).read_bytes()


def test_apply_reruns_byte_identical_with_an_empty_and_a_warm_cache(tmp_path, monkeypatch):
  from PIL import Image

  from jaxstyle import provenance
  from jaxstyle.nets import models
  from tests.conftest import FIXTURES, smooth_image
  model = models.convert_pth(FIXTURES / "transformer_narrow_legacy.pth", tmp_path / "model")
  photo = tmp_path / "photo.png"
  Image.fromarray(smooth_image(72, 88, seed=3)).save(photo)  # Its first layers are timed.
  cache_dir = tmp_path / "convs"
  monkeypatch.setenv(conv.ENV_VAR, str(cache_dir))
  empty = _apply(model, photo, tmp_path / "empty")  # Measures every layer, caches the choices.
  (cached,) = cache_dir.iterdir()
  entries = json.loads(cached.read_text())
  warm = _apply(model, photo, tmp_path / "warm")  # Reads them.
  assert warm == empty
  assert json.loads(cached.read_text()) == entries  # Nothing re-measured.
  record = provenance.read_png_record(tmp_path / "warm" / "photo.png")
  (plan,) = record["convolutions"]["plans"].values()
  assert record["convolutions"]["conv"] == "auto" and len(plan) == 16
  # --conv overrides, and the record says what ran: s2d on the two strided layers only.
  _apply(model, photo, tmp_path / "s2d", "--conv", "s2d")
  record = provenance.read_png_record(tmp_path / "s2d" / "photo.png")
  (plan,) = record["convolutions"]["plans"].values()
  assert sorted(n for n, a in plan.items() if a == "s2d") == ["conv2.conv", "conv3.conv"]


def test_tiny_layers_run_direct_untimed(tmp_path, monkeypatch):
  calls = _fake_times(monkeypatch, {"direct": 1.0, "s2d": 0.1, "winograd": 0.1})
  tiny = conv.LayerShape(1, 30, 30, 32, 64, 3, 2)  # 15² x 32 x 64 x 9 < 2²² multiply-adds.
  assert tiny.macs() == 15 * 15 * 32 * 64 * 9 < conv.UNMEASURED_MACS
  assert conv.choose(tiny, conv.ChoiceCache(tmp_path)) == "direct" and not calls
  assert conv.choose(conv.LayerShape(1, 32, 32, 32, 64, 3, 2), conv.ChoiceCache(tmp_path)) == "s2d"
  # Work, not positions: VGG's block5 at 96 px has 36 positions and 85 M multiply-adds.
  deep = conv.LayerShape(1, 6, 6, 512, 512, 3, padding="zeros")
  assert conv.choose(deep, conv.ChoiceCache(tmp_path)) == "winograd"


def test_large_layers_are_timed_on_a_scaled_down_copy(tmp_path, monkeypatch):
  calls = _fake_times(monkeypatch, {"direct": 1.0, "s2d": 0.5})
  big = conv.LayerShape(1, 4000, 3000, 32, 64, 3, 2)
  assert conv.choose(big, conv.ChoiceCache(tmp_path)) == "s2d"
  (key, _), _ = calls
  n, h, w = (int(v) for v in key.split("-")[0].split("x")[:3])
  assert n * h * w <= conv.MEASURED_POSITIONS and abs(h / w - 4 / 3) < 0.01
  small = conv.LayerShape(1, 256, 256, 32, 64, 3, 2)
  assert small.measured_as() == small
  # A training batch is timed on one of its images first: the sides stay as they run.
  batch = conv.LayerShape(4, 256, 256, 32, 64, 3, 2, grad=True)
  assert batch.measured_as() == conv.LayerShape(1, 256, 256, 32, 64, 3, 2, grad=True)


def test_fftgrad_is_timed_only_where_the_layer_trains():
  # Its forward is direct's: timing it for apply would cost compiles and could only tie.
  last = conv.LayerShape(1, 256, 256, 32, 3, 9)
  assert last.candidates() == ("direct",)
  assert conv.dataclasses.replace(last, grad=True).candidates() == ("direct", "fftgrad")
  first = conv.LayerShape(1, 256, 256, 3, 32, 9, grad=True)
  assert first.candidates() == ("direct", "unfold", "fftgrad")


def test_bench_convs_prints_caches_and_refreshes_the_choices(tmp_path, monkeypatch, capsys):
  from jaxstyle import cli
  calls = _fake_times(monkeypatch, {"direct": 1.0, "winograd": 1.0, "s2d": 0.5, "unfold": 1.0,
                                    "subpixel": 1.0, "fftgrad": 1.0})
  monkeypatch.setenv(conv.ENV_VAR, str(tmp_path))
  monkeypatch.setattr(conv, "UNMEASURED_MACS", 1 << 20)
  objective = importlib.import_module("jaxstyle.objective")  # The package's name is a function.
  vgg_calls = []
  monkeypatch.setattr(objective, "time_objective", lambda shape, winograd, **_: (
      vgg_calls.append(winograd) or (0.5 if winograd else 1.0)))
  monkeypatch.setattr(objective, "UNMEASURED_MACS", 0)
  argv = ["bench", "convs", "--size", "128", "--crop", "64", "--batch", "1", "--width", "0.125"]
  assert cli.main(argv) == 0
  out = capsys.readouterr().out
  assert str(tmp_path) in out.splitlines()[0]
  # Johnson's strided layers, applied (128 px, 1.2 M multiply-adds each: timed) and training
  # (64 px, 0.3 M: untimed).
  assert "johnson apply: conv2.conv" in out and "johnson apply: conv3.conv" in out
  rows = [line for line in out.splitlines() if "-> s2d" in line]
  assert len(rows) == 2 and all("s2d 500.0" in row for row in rows), out
  # VGG's Winograd sets on the whole objective: stylize's at --size, training's at --crop.
  assert [line.split()[:3] for line in out.splitlines() if "objective" in line] == [
      ["stylize:", "vgg19", "objective"], ["train:", "vgg16", "objective"]]
  assert all("-> every" in line for line in out.splitlines() if "objective" in line), out
  assert sorted(len(s) for s in vgg_calls) == [0, 0, 10, 13]  # Direct and every, each net.
  timed = len(calls) + len(vgg_calls)
  entries = json.loads(next(tmp_path.iterdir()).read_text())
  assert timed and sum(len(e["seconds"]) for e in entries.values()) == timed
  assert cli.main(argv) == 0 and len(calls) + len(vgg_calls) == timed  # Cached: not timed again.
  assert cli.main(argv + ["--refresh"]) == 0 and len(calls) + len(vgg_calls) == 2 * timed
  assert cli.main(["bench", "convs", "--size", "100"]) == 2
  assert "--size: expected a multiple of 8" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("pad", [1, 2, 4])
def test_reflection_padding_gradient_is_its_adjoint_by_numpy(pad):
  # <reflect(x), g> = <x, reflect^T(g)>: the transpose built index by index from NumPy's padding
  # of an index grid, for odd and even sides and bands that reach the middle (pad = n - 1).
  rng = np.random.default_rng(pad)
  for h, w in [(5, 7), (pad + 1, 6), (8, pad + 2)]:
    x = rng.standard_normal((2, h, w, 3))
    g = rng.standard_normal((2, h + 2 * pad, w + 2 * pad, 3))
    index = np.pad(np.arange(h * w).reshape(h, w), pad, mode="reflect")
    want = np.zeros((2, h * w, 3))
    np.add.at(want, (slice(None), index.ravel()), g.reshape(2, -1, 3))
    with jax.enable_x64(True):
      got = jax.vjp(lambda x: conv._reflect(x, pad), jnp.asarray(x))[1](jnp.asarray(g))[0]
    np.testing.assert_allclose(np.asarray(got), want.reshape(2, h, w, 3), rtol=1e-12)
