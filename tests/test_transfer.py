"""The objective against a NumPy reference, and the optimisation loop end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import images as image_io
from jaxstyle import transfer
from tests import reference as ref
from tests.conftest import smooth_image

CONTENT = smooth_image(40, 48, seed=1)
STYLE = smooth_image(56, 40, seed=2)


def test_objective_matches_numpy_reference(narrow_weights):
  config = jaxstyle.StyleConfig(size=48, content_weight=2.0, style_weight=300.0, tv_weight=0.5,
                                tv_beta=2.5, style_layers=("relu1_1", "relu3_1", "relu5_1"),
                                style_layer_weights=(1.0, 2.0, 1.0))
  params = narrow_weights.params
  spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
  content = image_io.as_rgb(CONTENT, 48, what="content")
  style = image_io.as_rgb(STYLE, 48, what="style")  # 48x34: another size than content.
  x = np.random.default_rng(0).uniform(0, 255, content.shape).astype(np.float32)
  targets = jaxstyle.make_targets(params, content, style, spec)
  total, terms = jaxstyle.objective(params, targets, x, jaxstyle.LossWeights.from_config(config), spec)

  feats = {k: ref.vgg19_forward(params, ref.preprocess_caffe(v)) for k, v in
           (("x", x), ("content", content), ("style", style))}
  want_content = ref.content_loss(feats["x"]["block4_conv2"], feats["content"]["block4_conv2"])
  want_style = 0.0
  for name, w in zip(("block1_conv1", "block3_conv1", "block5_conv1"), (0.25, 0.5, 0.25)):
    F, S = feats["x"][name], feats["style"][name]
    A = ref.gram(S) * (F.shape[0] * F.shape[1]) / (S.shape[0] * S.shape[1])  # Rescale M.
    want_style += w * ref.style_layer_loss(F, A)
  want_tv = ref.tv_loss(x, 2.5)
  np.testing.assert_allclose(terms["content"], want_content, rtol=1e-3)
  np.testing.assert_allclose(terms["style"], want_style, rtol=1e-3)
  np.testing.assert_allclose(terms["tv"], want_tv, rtol=1e-4)
  np.testing.assert_allclose(total, 2 * want_content + 300 * want_style + 0.5 * want_tv, rtol=1e-3)


@pytest.mark.slow
def test_objective_gradient_matches_finite_differences(narrow_weights):
  config = jaxstyle.StyleConfig(size=20, tv_beta=2.5)
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), narrow_weights.params)
    spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
    content = image_io.as_rgb(CONTENT, 20, what="content")
    targets = jaxstyle.make_targets(params, content, np.flip(content, 0).copy(), spec)
    weights = jaxstyle.LossWeights(*(jnp.float64(w) for w in (1.0, 1e4, 1e2)))
    f = jax.jit(lambda x: jaxstyle.objective(params, targets, x, weights, spec)[0])
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, content.shape))
    g = jax.jit(jax.grad(f))(x)
    v = jnp.asarray(np.random.default_rng(1).normal(size=x.shape))
    eps = 1e-4  # Larger steps cross max-pool switches, where f has kinks.
    fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(g, v), fd, rtol=1e-5)


def test_lbfgs_lowers_the_objective_tenfold(narrow_weights):
  config = jaxstyle.StyleConfig(size=48, iters=50)
  result = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights)
  assert result.image.shape == (40, 48, 3) and result.image.dtype == np.uint8
  assert result.iterations == 50 and len(result.history["total"]) == 50
  assert result.history["total"][-1] < result.initial["total"] / 10
  h = result.history  # The recorded total is the weighted sum of the recorded terms...
  recorded = np.isfinite(h["style"])
  assert np.flatnonzero(recorded).tolist() == [19, 39, 49]  # ...every 20 iterations, the last.
  np.testing.assert_allclose(h["total"][recorded], (h["content"] + 1e4 * h["style"]
                                                    + 1e2 * h["tv"])[recorded], rtol=1e-4)
  assert np.all(np.diff(h["total"]) <= 0)  # The linesearch only accepts decreases.


def test_adam_lowers_the_objective(narrow_weights):
  config = jaxstyle.StyleConfig(size=48, iters=30, optimizer="adam", lr=5.0)
  result = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights)
  assert result.history["total"][-1] < result.initial["total"] / 3


@pytest.mark.slow
def test_chunks_compile_once_whatever_their_length(narrow_weights):
  config = jaxstyle.StyleConfig(size=32, iters=9, style_layers=("relu2_1",), pooling="avg")
  transfer.run_chunks.clear_cache()  # Count this test's programs only, whatever ran before.
  calls = []
  first = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights, save_every=4,
                           callback=lambda i, img, losses: calls.append(i))
  # Chunks of 4, 4 and 1 iterations, then a run of 13 with another seed: one program.
  again = jaxstyle.stylize(CONTENT, STYLE, config.replace(iters=13, seed=5), weights=narrow_weights)
  assert transfer.run_chunks._cache_size() == 1
  assert calls == [4, 8] and first.iterations == 9 and again.iterations == 13
  # Another objective is another program.
  jaxstyle.stylize(CONTENT, STYLE, config.replace(iters=1, pooling="max"), weights=narrow_weights)
  assert transfer.run_chunks._cache_size() == 2


@pytest.mark.slow
def test_same_seed_same_image_other_seed_other_image(narrow_weights):
  config = jaxstyle.StyleConfig(size=32, iters=5, init="noise")
  a = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights)
  b = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights)
  c = jaxstyle.stylize(CONTENT, STYLE, config.replace(seed=1), weights=narrow_weights)
  np.testing.assert_array_equal(a.image, b.image)
  assert not np.array_equal(a.image, c.image)
  np.testing.assert_array_equal(a.history["total"], b.history["total"])


def test_non_finite_objective_stops_with_the_last_finite_image(narrow_weights):
  config = jaxstyle.StyleConfig(size=32, iters=20, optimizer="adam", lr=1e37)
  with pytest.raises(jaxstyle.NonFiniteLossError, match="NaN or inf at iteration") as e:
    jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights)
  assert e.value.image.dtype == np.uint8 and e.value.image.shape == (27, 32, 3)
  # Adam's first step moves every pixel by ~lr, so the very first iterate is
  # already non-finite: the last finite image is the initial (content) image.
  assert e.value.iteration == 0
  np.testing.assert_array_equal(e.value.image, image_io.as_rgb(CONTENT, 32, what="content"))


def test_init_from_file_and_bad_arrays(narrow_weights, tmp_path):
  from PIL import Image
  path = tmp_path / "init.png"
  Image.fromarray(np.full((10, 20, 3), 200, np.uint8)).save(path)
  x0 = transfer.initial_image(jaxstyle.StyleConfig(init=str(path)), CONTENT, key=jax.random.key(0))
  assert x0.shape == CONTENT.shape and np.allclose(x0, 200)
  with pytest.raises(jaxstyle.ImageError, match="expected uint8"):
    image_io.as_rgb(CONTENT.astype(np.float32), 48, what="content")
  with pytest.raises(jaxstyle.ImageError, match=r"H x W x 3 RGB array, got shape \(40, 48\)"):
    image_io.as_rgb(CONTENT[..., 0], 48, what="content")


@pytest.mark.slow
def test_real_photo_and_painting(narrow_weights, shared_images):
  content, style = shared_images
  photo = jaxstyle.load_image(content)
  config = jaxstyle.StyleConfig(size=48, iters=20)
  result = jaxstyle.stylize(content, style, config, weights=narrow_weights)
  # Aspect ratio kept: the longest side is 48, the other scaled to match.
  assert max(result.image.shape[:2]) == 48
  assert abs(result.image.shape[0] / result.image.shape[1] - photo.shape[0] / photo.shape[1]) < 0.05
  assert result.history["total"][-1] < result.initial["total"] / 3
