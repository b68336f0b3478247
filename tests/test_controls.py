"""Artistic controls: each one's effect, measured."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import color, transfer
from jaxstyle.optim.solver import init_state, run_chunk
from jaxstyle.images import as_rgb
from tests import reference as ref
from tests.conftest import smooth_image

CONTENT = smooth_image(40, 48, seed=1)
STYLE = smooth_image(56, 40, seed=2)


@pytest.mark.parametrize("norm, scale", [("chw", lambda N: N**4), ("hw", lambda N: N**2)])
def test_gram_normalisations_match_their_formulas(norm, scale):
  rng = np.random.default_rng(0)
  F = rng.normal(size=(6, 5, 3)).astype(np.float32)
  A = ref.gram(rng.normal(size=(6, 5, 3)))
  M, N = 30, 3
  G = ref.gram(F)
  # The option's two descriptions, the MSE of normalised Grams and Σ(G−A)²/(N^k M²).
  mse_of_normalised = np.mean(((G - A) / (N * M if norm == "chw" else M)) ** 2)
  got = jaxstyle.style_layer_loss(F, A.astype(np.float32), norm=norm)
  np.testing.assert_allclose(got, mse_of_normalised, rtol=1e-5)
  np.testing.assert_allclose(got, np.sum((G - A) ** 2) / (scale(N) * M**2), rtol=1e-5)


def test_geometric_style_layer_weights():
  config = jaxstyle.StyleConfig(style_layer_weight_exp=2.0)
  raw = np.array([1, 2, 4, 8, 16]) / 31
  np.testing.assert_allclose(config.normalised_style_layer_weights, raw)
  with pytest.raises(jaxstyle.ConfigError, match="use one or the other"):
    jaxstyle.StyleConfig(style_layer_weights=(1, 1, 1, 1, 1), style_layer_weight_exp=2.0)


def test_gray_and_style_statistics_inits():
  key = jax.random.key(0)
  gray = transfer.initial_image(jaxstyle.StyleConfig(init="gray"), CONTENT, key=key)
  assert np.all(np.asarray(gray) == 127.5)
  rng = np.random.default_rng(0)
  style = np.clip(rng.normal([90, 120, 150], [10, 20, 15], (64, 64, 3)), 0, 255).astype(np.uint8)
  content = np.zeros((96, 96, 3), np.uint8)
  x0 = np.asarray(transfer.initial_image(jaxstyle.StyleConfig(init="style_stats"), content,
                                         key=key, styles=[style])).reshape(-1, 3)
  np.testing.assert_allclose(x0.mean(0), style.reshape(-1, 3).mean(0), rtol=0.02)
  np.testing.assert_allclose(x0.std(0), style.reshape(-1, 3).std(0), rtol=0.05)


@pytest.mark.slow
def test_luminance_transfer_keeps_the_content_chroma(narrow_weights):
  config = jaxstyle.StyleConfig(size=48, iters=10, preserve_colors="luminance",
                                style_weight=1e6)
  result = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights)
  plain = jaxstyle.stylize(CONTENT, STYLE, config.replace(preserve_colors="none"),
                           weights=narrow_weights)
  def chroma(img):
    return color.rgb_to_yiq(img)[..., 1:]
  content = as_rgb(CONTENT, 48, what="content")
  kept = np.abs(chroma(result.image) - chroma(content))
  assert kept.mean() < 1.0  # Only uint8 rounding and clipping are left.
  # Without the control the chroma moves far more: the measure can fail.
  assert np.abs(chroma(plain.image) - chroma(content)).mean() > 5 * kept.mean()


def test_histogram_matching_gives_the_style_the_content_colours():
  rng = np.random.default_rng(1)
  content = np.clip(rng.multivariate_normal([100, 130, 90], [[300, 120, 40], [120, 250, 60],
                                                            [40, 60, 200]], (64, 64)), 0, 255)
  style = np.clip(rng.multivariate_normal([150, 80, 120], [[150, -30, 20], [-30, 400, 10],
                                                           [20, 10, 100]], (60, 50)), 0, 255)
  matched = color.match_colors(style.astype(np.uint8), content.astype(np.uint8)).reshape(-1, 3)
  c = content.astype(np.uint8).reshape(-1, 3).astype(float)
  np.testing.assert_allclose(matched.mean(0), c.mean(0), atol=1.0)
  np.testing.assert_allclose(np.cov(matched.T), np.cov(c.T), rtol=0.05, atol=5.0)


def test_style_scale_resizes_each_style(narrow_weights):
  config = jaxstyle.StyleConfig(size=64, style_scale=(0.5, 1.0))
  a, b = transfer._prepare_styles([STYLE, STYLE], config, CONTENT)
  assert max(a.shape[:2]) == 32 and max(b.shape[:2]) == 64
  with pytest.raises(jaxstyle.ConfigError, match="--style-scale: expected 1 or 2 factors"):
    transfer._prepare_styles([STYLE, STYLE], config.replace(style_scale=(1, 1, 1)), CONTENT)
  # The effect on the objective: a half-size style gives other Gram targets.
  spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
  half = jaxstyle.make_targets(narrow_weights.params, CONTENT, a, spec)
  full = jaxstyle.make_targets(narrow_weights.params, CONTENT, b, spec)
  assert not np.allclose(half.style["block1_conv1"], full.style["block1_conv1"], rtol=0.05)


def test_multiscale_starts_each_scale_from_the_upsampled_previous_result(narrow_weights):
  photo = smooth_image(80, 96, seed=1)
  config = jaxstyle.StyleConfig(size=96, scales=2, scale_iters=(5, 0))
  assert config.scale_sizes == (48, 96)
  two = jaxstyle.stylize(photo, STYLE, config, weights=narrow_weights)
  coarse = jaxstyle.stylize(photo, STYLE, config.replace(size=48, iters=5, scales=1,
                                                         scale_iters=None),
                            weights=narrow_weights)
  from jaxstyle.images import resize_array
  # No iterations at the fine scale: the result is exactly the upsampled coarse one.
  np.testing.assert_array_equal(two.image, resize_array(coarse.image, 80, 96))
  assert two.iterations == 5 and two.image.shape == (80, 96, 3)
  np.testing.assert_array_equal(two.history["total"], coarse.history["total"])


def test_multiscale_settings_are_checked():
  with pytest.raises(jaxstyle.ConfigError, match="--scales: expected a coarsest size of at least 16"):
    jaxstyle.StyleConfig(size=64, scales=4)
  with pytest.raises(jaxstyle.ConfigError, match="--scale-iters: expected 2 non-negative counts"):
    jaxstyle.StyleConfig(scales=2, scale_iters=(10,))
  assert jaxstyle.StyleConfig(size=512, scales=3, scale_factor=2 ** 0.5).scale_sizes == (256, 362, 512)


@pytest.mark.slow
def test_iterate_averaging_outputs_the_bias_corrected_average(narrow_weights):
  config = jaxstyle.StyleConfig(size=32, optimizer="adam", lr=20.0)
  x1 = jaxstyle.stylize(CONTENT, STYLE, config.replace(iters=1), weights=narrow_weights).image
  x2 = jaxstyle.stylize(CONTENT, STYLE, config.replace(iters=2), weights=narrow_weights).image
  averaged = jaxstyle.stylize(CONTENT, STYLE, config.replace(iters=2, ema_decay=0.5),
                              weights=narrow_weights)
  # decay 0.5: (0.5 * 0.5 * x1 + 0.5 * x2) / (1 - 0.5²), from a zero accumulator.
  expected = (0.25 * x1.astype(float) + 0.5 * x2.astype(float)) / 0.75
  # Outputs are clipped to 0-255 but the average accumulates the raw iterates,
  # so compare where neither iterate was clipped (x1, x2 are rounded: ±1).
  inside = (x1 > 0) & (x1 < 255) & (x2 > 0) & (x2 < 255)
  assert inside.mean() > 0.5
  assert np.abs(averaged.image - expected)[inside].max() <= 1.0
  assert np.abs(x2.astype(float) - expected).max() > 5  # The average is not the last iterate.
  with pytest.raises(jaxstyle.ConfigError, match="--ema-decay: expected 0 with L-BFGS"):
    jaxstyle.StyleConfig(ema_decay=0.9)


def _w2_reference(F_HxWxC, S_HxWxC):
  """W₂² between Gaussians fitted to F and S (float64, scipy's sqrtm)."""
  from scipy.linalg import sqrtm
  def stats(X):
    X = X.reshape(-1, X.shape[-1]).astype(np.float64)
    mu = X.mean(0)
    return mu, (X - mu).T @ (X - mu) / len(X)
  (m1, c1), (m2, c2) = stats(F_HxWxC), stats(S_HxWxC)
  root = sqrtm(c2)
  cross = np.real(sqrtm(root @ c1 @ root))
  return np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(cross)


@pytest.mark.slow
def test_w2_style_loss_matches_scipy_and_its_gradient_is_right():
  from jaxstyle import losses
  rng = np.random.default_rng(0)
  F = rng.normal(size=(7, 6, 4)) @ rng.normal(size=(4, 4))
  S = rng.normal(1.0, 2.0, size=(5, 9, 4)) @ rng.normal(size=(4, 4))
  target = losses.w2_targets(*losses.gaussian_stats(S.astype(np.float32)))
  np.testing.assert_allclose(jaxstyle.w2_style_loss(F.astype(np.float32), target),
                             _w2_reference(F, S), rtol=2e-3)
  assert abs(float(jaxstyle.w2_style_loss(S.astype(np.float32), target))) < 1e-3 * _w2_reference(F, S)
  with jax.enable_x64(True):
    t64 = losses.w2_targets(*losses.gaussian_stats(jnp.asarray(S)))
    f = lambda x: jaxstyle.w2_style_loss(x, t64)
    g = jax.grad(f)(jnp.asarray(F))
    v = jnp.asarray(rng.normal(size=F.shape))
    eps = 1e-6
    np.testing.assert_allclose(jnp.vdot(g, v), (f(F + eps * v) - f(F - eps * v)) / (2 * eps),
                               rtol=1e-5)


@pytest.mark.slow
def test_w2_stylization_reduces_the_w2_distance(narrow_weights):
  config = jaxstyle.StyleConfig(size=40, iters=20, style_loss="w2", content_weight=0.0,
                                style_layers=("relu1_1", "relu2_1"), tv_weight=0.0)
  result = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights)
  assert result.history["style"][-1] < 0.2 * result.initial["style"]


def test_content_norms_and_keras_style_norm_follow_their_formulas():
  from jaxstyle import losses
  rng = np.random.default_rng(0)
  F, P = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  squared = np.sum((F.astype(np.float64) - P) ** 2)
  for norm, want in (("half_sum", squared / 2), ("sum", squared), ("mean", squared / F.size)):
    np.testing.assert_allclose(jaxstyle.content_loss(F, P, norm=norm), want, rtol=1e-5)
  A = ref.gram(P)
  np.testing.assert_allclose(jaxstyle.style_layer_loss(F, A.astype(np.float32), norm="keras",
                                                       pixels=100),
                             np.sum((ref.gram(F) - A) ** 2) / (4 * 9 * 100**2), rtol=1e-5)
  with pytest.raises(ValueError, match="needs pixels"):
    losses.gram_loss(A, A, positions=30, norm="keras")


def _image_grad(params, config, x, **target_kwargs):
  spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
  content = as_rgb(CONTENT, 48, what="content")
  targets = jaxstyle.make_targets(params, content, target_kwargs.pop("style", STYLE), spec,
                                  **target_kwargs)
  weights = jaxstyle.LossWeights.from_config(config)
  return np.asarray(jax.jit(jax.grad(lambda x: jaxstyle.objective(params, targets, x, weights,
                                                                  spec)[0]))(x))


@pytest.mark.slow
def test_normalized_gradients_make_each_layer_push_with_its_weight(narrow_weights):
  from jaxstyle import losses
  F, P = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
  g = jax.grad(lambda f: 3.0 * losses.normalized_gradient(jaxstyle.content_loss)(f, P))(F)
  np.testing.assert_allclose(np.abs(g).sum(), 3.0, rtol=1e-5)  # ‖∇‖₁ = the weight.
  np.testing.assert_allclose(g, 3.0 * (F - P) / np.abs(F - P).sum(), rtol=1e-5)
  # In the objective: the content loss's scale (sum = 2 x half_sum) no longer matters.
  config = jaxstyle.StyleConfig(size=48, optimizer="adam", normalize_gradients=True,
                                style_weight=0.0, tv_weight=0.0)
  x = jnp.asarray(np.random.default_rng(1).uniform(0, 255, (40, 48, 3)), jnp.float32)
  params = narrow_weights.params
  half, full = (_image_grad(params, config.replace(content_norm=n), x)
                for n in ("half_sum", "sum"))
  np.testing.assert_allclose(full, half, rtol=1e-4, atol=1e-6 * np.abs(half).max())
  plain = _image_grad(params, config.replace(content_norm="sum", normalize_gradients=False), x)
  plain_half = _image_grad(params, config.replace(normalize_gradients=False), x)
  np.testing.assert_allclose(plain, 2 * plain_half, rtol=1e-4, atol=1e-6 * np.abs(plain).max())
  with pytest.raises(jaxstyle.ConfigError, match="--normalize-gradients: expected --optimizer adam"):
    jaxstyle.StyleConfig(normalize_gradients=True)


def test_mask_confines_a_style_to_its_region(narrow_weights):
  # relu1_1 sees 3x3 pixels: pixels two or more columns outside the mask are
  # beyond every masked feature's receptive field and get exactly no gradient.
  config = jaxstyle.StyleConfig(size=48, style_layers=("relu1_1",), content_weight=0.0,
                                tv_weight=0.0)
  mask = np.zeros((1, 40, 48), np.float32)
  mask[:, :, :20] = 1.0
  x = jnp.asarray(np.random.default_rng(1).uniform(0, 255, (40, 48, 3)), jnp.float32)
  g = _image_grad(narrow_weights.params, config, x, masks_KxHxW=mask)
  assert np.all(g[:, 22:] == 0.0)
  assert np.all(np.abs(g[:, :20]).sum(-1) > 0)
  # An all-ones mask is the unmasked loss.
  ones = _image_grad(narrow_weights.params, config, x, masks_KxHxW=np.ones_like(mask))
  plain = _image_grad(narrow_weights.params, config, x)
  np.testing.assert_allclose(ones, plain, rtol=1e-4, atol=1e-6 * np.abs(plain).max())


def test_masked_style_loss_is_the_guided_gram_formula(narrow_weights):
  config = jaxstyle.StyleConfig(size=48, style_layers=("relu1_1", "relu2_1"))
  spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
  params = narrow_weights.params
  rng = np.random.default_rng(2)
  masks = rng.uniform(0, 1, (2, 40, 48)).astype(np.float32)
  content = as_rgb(CONTENT, 48, what="content")
  styles = [STYLE, np.flip(STYLE, 1).copy()]
  targets = jaxstyle.make_targets(params, content, styles, spec, masks_KxHxW=masks)
  x = rng.uniform(0, 255, content.shape).astype(np.float32)
  got = jaxstyle.objective_terms(params, targets, x, spec)["style"]
  fx = ref.vgg19_forward(params, ref.preprocess_caffe(x))
  want = 0.0
  for name, w in (("block1_conv1", 0.5), ("block2_conv1", 0.5)):
    F = fx[name]
    for k, style in enumerate(styles):
      m = masks[k] if name == "block1_conv1" else ref.pool2x2(masks[k][..., None], "avg")[..., 0]
      S = ref.vgg19_forward(params, ref.preprocess_caffe(style))[name]
      M_k = np.sum(m**2)  # Guided Gram (F·m)ᵀ(F·m) against the style's, scaled to M_k.
      A = ref.gram(S) / (S.shape[0] * S.shape[1]) * M_k
      want += w * np.sum((ref.gram(F * m[..., None]) - A) ** 2) / (4 * F.shape[-1]**2 * M_k**2)
  np.testing.assert_allclose(got, want, rtol=1e-3)


def test_masks_from_the_cli(image_files, tmp_path):
  from PIL import Image

  from jaxstyle import cli
  content, style = image_files
  left, right = tmp_path / "left.png", tmp_path / "right.png"
  half = np.zeros((40, 48), np.uint8)
  half[:, :24] = 255
  Image.fromarray(half).save(left)
  Image.fromarray(255 - half).save(right)
  out = tmp_path / "out.png"
  # Masked runs: test_effects.py (objective and output, region by region). Here, the refusal.
  assert cli.main(["stylize", str(content), str(style), "-o", str(out), "--weights",
                   "random:0:0.125", "--size", "48", "--iters", "2", "--quiet",
                   "--style-masks", str(left), str(right)]) == 2  # Two masks, one style.


@pytest.mark.slow
def test_lbfgs_restart_forgets_the_history(narrow_weights):
  config = jaxstyle.StyleConfig(size=32, iters=8)
  spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
  params = narrow_weights.params
  content = as_rgb(CONTENT, 32, what="content")
  targets = jaxstyle.make_targets(params, content, STYLE, spec)
  weights = jaxstyle.LossWeights.from_config(config)
  x0 = jnp.asarray(content, jnp.float32)

  def run(restart):
    solver = jaxstyle.SolverSpec.from_config(config.replace(lbfgs_restart=restart))

    @jax.jit  # Compiled, as stylize runs it (op by op it takes 5x longer).
    def eight_steps(x0):
      state, _ = init_state(params, targets, x0, weights, spec, solver)
      return run_chunk(params, targets, state, 8, weights, spec, solver)[0]
    return eight_steps(x0)
  never, every3 = run(0), run(3)
  assert int(never.step) == int(every3.step) == 8
  assert int(never.opt_state[0].count) == 8  # Eight pairs seen (memory keeps the last 10).
  assert int(every3.opt_state[0].count) < 3 and int(every3.since_restart) < 3
  assert int(every3.evaluations) >= 9  # The initial evaluation and at least one per step.
  assert not np.allclose(never.image, every3.image)


@pytest.mark.slow
def test_fixed_step_lbfgs_takes_one_evaluation_per_iteration(narrow_weights):
  # A well-scaled objective: Torch's fixed step has no linesearch to catch an overshoot,
  # and on the default weights at 32 px its second step overshoots 1e16-fold (as torch's).
  config = jaxstyle.StyleConfig(size=32, iters=6, lbfgs_linesearch="none", lbfgs_memory=100,
                                style_weight=1.0, tv_weight=1e-2)
  result = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights)
  assert result.evaluations == 7  # The initial evaluation, then one per iteration.
  assert result.history["total"][-1] < 0.5 * result.initial["total"]
  zoom = jaxstyle.stylize(CONTENT, STYLE, config.replace(lbfgs_linesearch="zoom"),
                          weights=narrow_weights)
  assert zoom.evaluations > 7  # The linesearch's first steps take several.


@pytest.mark.slow
def test_bfloat16_changes_precision_not_the_objective(narrow_weights):
  x = jnp.asarray(np.random.default_rng(1).uniform(0, 255, (40, 48, 3)), jnp.float32)
  config = jaxstyle.StyleConfig(size=48)
  params = narrow_weights.params
  plain = _image_grad(params, config, x)
  # float32 params: the option itself must run the network in bfloat16, whose 8-bit
  # mantissa leaves the gradient's direction right to about 1%.
  low = _image_grad(params, config.replace(precision="bfloat16"), x)
  assert low.dtype == np.float32
  low, plain64 = low.astype(np.float64), plain.astype(np.float64)
  cosine = np.vdot(low, plain64) / (np.linalg.norm(low) * np.linalg.norm(plain64))
  assert cosine > 0.99, cosine
  # And not float32's gradient: bfloat16 rounding moves it by far more than float32's.
  assert np.abs(low - plain64).max() > 1e-3 * np.abs(plain64).max()
  result = jaxstyle.stylize(CONTENT, STYLE, config.replace(size=32, iters=5,
                                                           precision="bfloat16"),
                            weights=narrow_weights)
  assert result.history["total"][-1] < 0.7 * result.initial["total"]


@pytest.mark.slow
@pytest.mark.parametrize("linesearch", ["zoom", "none"])
def test_pixel_range_changes_the_optimisers_units_not_the_objective(linesearch, narrow_weights):
  """With --pixel-range 1 the optimiser works on x/255, but the carry's value and gradient
  stay f and ∇ₓf at the carried image (RGB 0-255), and the run differs from one in 0-255
  units (L-BFGS's first step is not scale-invariant)."""
  from jaxstyle.optim import solver
  config = jaxstyle.StyleConfig(size=32, lbfgs_linesearch=linesearch, style_weight=1.0,
                                tv_weight=1e-2, conv="direct")
  spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
  params = narrow_weights.params
  content = as_rgb(CONTENT, 32, what="content")
  targets = jaxstyle.make_targets(params, content, as_rgb(STYLE, 32, what="style"), spec)
  weights = jaxstyle.LossWeights.from_config(config)
  x0 = jnp.asarray(content, jnp.float32)
  images = {}
  for pixel_range in (1.0, 255.0):
    rules = solver.SolverSpec.from_config(config.replace(pixel_range=pixel_range))
    state, _ = init_state(params, targets, x0, weights, spec, rules)
    step = jax.jit(lambda s: solver.step(params, targets, s, weights, spec, rules)[0])
    for _ in range(3):
      state = step(state)
    (value, _), grad = solver.value_and_grad(params, targets, weights, spec)(state.image)
    np.testing.assert_allclose(state.value, value, rtol=1e-5)
    np.testing.assert_allclose(state.grad, grad, rtol=1e-4, atol=1e-4 * np.abs(grad).max())
    assert state.value < 0.9 * float(jaxstyle.objective(params, targets, x0, weights, spec)[0])
    images[pixel_range] = np.asarray(state.image)
  # The zoom linesearch makes up most of the first step's scale: measured 0.85 px apart.
  assert np.abs(images[1.0] - images[255.0]).max() > 0.1
