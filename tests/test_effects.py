"""Every control a user can set changes what it claims to, shown end to end.

Each test goes through ``stylize`` (or the CLI) as a user would and compares
against an expectation computed independently (``tests/reference.py`` in
float64, optax, or the compiled program itself), never against the recorded
config. Values are asymmetric wherever order matters, so a control that is
ignored, reversed or wired to another option fails. How each was seen to
fail is in ``tests/README.md``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import color
from jaxstyle.images import as_rgb
from tests import reference as ref
from tests.conftest import NARROW, smooth_image

CONTENT = smooth_image(40, 48, seed=1)
STYLE = smooth_image(56, 40, seed=2)
STYLE2 = smooth_image(48, 48, seed=4)
X0 = smooth_image(40, 48, seed=7)  # The initial image: neither the content nor a style.
# Direct convolutions compile faster; the Winograd path has tests of its own.
BASE = jaxstyle.StyleConfig(size=48, iters=0, conv="direct")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """The initial image and two masks (left third / the rest) as files."""
  folder = tmp_path_factory.mktemp("effects")
  Image.fromarray(X0).save(folder / "x0.png")
  left = np.zeros((40, 48), np.uint8)
  left[:, :16] = 255
  Image.fromarray(left).save(folder / "left.png")
  Image.fromarray(255 - left).save(folder / "right.png")
  return folder


@pytest.fixture(scope="module")
def vgg16_weights():
  return jaxstyle.random_weights(seed=0, width_scale=NARROW, network="vgg16")


LAYERS3 = ("relu1_1", "relu3_1", "relu5_1")
# (config changes, reference arguments, styles): the reference arguments are
# written out by hand from what the option documents, not derived from it.
CASES = {
    "tv_beta": ({"tv_beta": 2.5}, {"tv_beta": 2.5}, [STYLE]),
    "content_layers": ({"content_layers": ("relu3_1", "conv4_2"), "content_norm": "sum"},
                       {"content_layers": ("relu3_1", "conv4_2"), "content_norm": "sum"},
                       [STYLE]),
    "content_norm": ({"content_norm": "mean"}, {"content_norm": "mean"}, [STYLE]),
    "style_layer_weights": ({"style_layers": LAYERS3, "style_layer_weights": (1.0, 2.0, 4.0)},
                            {"style_layers": LAYERS3, "layer_weights": (1 / 7, 2 / 7, 4 / 7)},
                            [STYLE]),
    "style_layer_weight_exp": ({"style_layers": LAYERS3, "style_layer_weight_exp": 3.0},
                               {"style_layers": LAYERS3,
                                "layer_weights": (1 / 13, 3 / 13, 9 / 13)}, [STYLE]),
    "style_norm_chw": ({"style_norm": "chw"}, {"style_norm": "chw"}, [STYLE]),
    "style_norm_hw": ({"style_norm": "hw"}, {"style_norm": "hw"}, [STYLE]),
    "style_norm_keras": ({"style_norm": "keras"}, {"style_norm": "keras"}, [STYLE]),
    "style_loss_w2": ({"style_loss": "w2", "style_layers": ("relu1_1", "relu2_1")},
                      {"style_loss": "w2", "style_layers": ("relu1_1", "relu2_1"),
                       "layer_weights": (0.5, 0.5)}, [STYLE]),
    "style_loss_mean_std": ({"style_loss": "mean_std", "style_layers": LAYERS3,
                             "style_layer_weights": (1.0, 2.0, 4.0)},
                            {"style_loss": "mean_std", "style_layers": LAYERS3,
                             "layer_weights": (1 / 7, 2 / 7, 4 / 7)}, [STYLE, STYLE2]),
    "pooling_avg": ({"pooling": "avg"}, {"pooling": "avg"}, [STYLE]),
    "style_blend_weights": ({"style_blend_weights": (3.0, 1.0)}, {"blend": (0.75, 0.25)},
                            [STYLE, STYLE2]),
}


def _initial_terms(config, styles, files, weights):
  """The loss terms at the initial image of a real run (``Result.initial``)."""
  config = config.replace(init=str(files / "x0.png"))
  style = styles[0] if len(styles) == 1 else styles
  return jaxstyle.stylize(CONTENT, style, config, weights=weights).initial


def _assert_terms(got, want, weights=(1.0, 1e4, 1e2)):
  for k in ("content", "style", "tv"):
    np.testing.assert_allclose(got[k], want[k], rtol=2e-3, err_msg=k)
  total = weights[0] * want["content"] + weights[1] * want["style"] + weights[2] * want["tv"]
  np.testing.assert_allclose(got["total"], total, rtol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_objective_controls_change_the_objective_as_documented(name, files, narrow_weights):
  changes, reference, styles = CASES[name]
  got = _initial_terms(BASE.replace(**changes), styles, files, narrow_weights)
  content = as_rgb(CONTENT, 48, what="content")
  styles = [as_rgb(s, 48, what="style") for s in styles]
  want = ref.objective_terms(narrow_weights.params, X0.astype(np.float64), content, styles,
                             **reference)
  _assert_terms(got, want)


def test_loss_weights_weigh_their_own_terms(files, narrow_weights):
  config = BASE.replace(content_weight=2.0, style_weight=300.0, tv_weight=0.5)
  got = _initial_terms(config, [STYLE], files, narrow_weights)
  want = ref.objective_terms(narrow_weights.params, X0.astype(np.float64),
                             as_rgb(CONTENT, 48, what="content"),
                             [as_rgb(STYLE, 48, what="style")])
  _assert_terms(got, want, weights=(2.0, 300.0, 0.5))


def test_style_scale_resizes_the_style_before_its_statistics(files, narrow_weights):
  got = _initial_terms(BASE.replace(style_scale=(0.5,)), [STYLE], files, narrow_weights)
  want = ref.objective_terms(narrow_weights.params, X0.astype(np.float64),
                             as_rgb(CONTENT, 48, what="content"),
                             [as_rgb(STYLE, 24, what="style", min_side=1)])
  _assert_terms(got, want)
  # Per style image, in order: the second style at half size, the first at full size.
  got = _initial_terms(BASE.replace(style_scale=(1.0, 0.5)), [STYLE, STYLE2], files,
                       narrow_weights)
  want = ref.objective_terms(narrow_weights.params, X0.astype(np.float64),
                             as_rgb(CONTENT, 48, what="content"),
                             [as_rgb(STYLE, 48, what="style"), as_rgb(STYLE2, 24, what="style")])
  _assert_terms(got, want)


def test_network_vgg16_uses_vgg16_features(files, vgg16_weights):
  config = BASE.replace(network="vgg16", style_layers=("relu1_2", "relu3_3", "relu5_3"))
  got = _initial_terms(config, [STYLE], files, vgg16_weights)
  want = ref.objective_terms(vgg16_weights.params, X0.astype(np.float64),
                             as_rgb(CONTENT, 48, what="content"),
                             [as_rgb(STYLE, 48, what="style")], depths=ref.VGG16_DEPTHS,
                             style_layers=("relu1_2", "relu3_3", "relu5_3"),
                             layer_weights=(1 / 3,) * 3)
  _assert_terms(got, want)


def test_style_masks_from_files_give_each_style_its_region(files, narrow_weights):
  config = BASE.replace(style_masks=(str(files / "left.png"), str(files / "right.png")),
                        style_layers=("relu1_1", "relu2_1"))
  got = _initial_terms(config, [STYLE, STYLE2], files, narrow_weights)
  left = np.zeros((40, 48))
  left[:, :16] = 1.0
  want = ref.objective_terms(narrow_weights.params, X0.astype(np.float64),
                             as_rgb(CONTENT, 48, what="content"),
                             [as_rgb(s, 48, what="style") for s in (STYLE, STYLE2)],
                             style_layers=("relu1_1", "relu2_1"), layer_weights=(0.5, 0.5),
                             masks=[left, 1.0 - left])
  _assert_terms(got, want)


def test_histogram_colours_are_matched_before_the_style_statistics(files, narrow_weights):
  got = _initial_terms(BASE.replace(preserve_colors="histogram"), [STYLE], files,
                       narrow_weights)
  content = as_rgb(CONTENT, 48, what="content")
  matched = color.match_colors(as_rgb(STYLE, 48, what="style"), content)
  want = ref.objective_terms(narrow_weights.params, X0.astype(np.float64), content, [matched])
  _assert_terms(got, want)


# --- Controls of the run: inits, optimisers, output --------------------------------------


@pytest.mark.parametrize("init", ["content", "gray", "file", "noise", "style_stats"])
def test_init_is_the_first_iterate(init, files, narrow_weights):
  config = BASE.replace(init=str(files / "x0.png") if init == "file" else init, seed=3)
  image = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights).image
  if init in ("content", "gray", "file"):
    want = {"content": CONTENT, "gray": np.full_like(CONTENT, 128), "file": X0}[init]
    np.testing.assert_array_equal(image, want)
  elif init == "noise":  # Uniform on 0-255: mean 127.5, std 255/√12, and seeded.
    assert abs(image.mean() - 127.5) < 4 and abs(image.std() - 73.6) < 3
    other = jaxstyle.stylize(CONTENT, STYLE, config.replace(seed=4), weights=narrow_weights)
    assert np.abs(image.astype(int) - other.image).mean() > 50
  else:  # Noise with the style's per-channel mean and std (clipped to 0-255).
    style = as_rgb(STYLE, 48, what="style").reshape(-1, 3)
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), style.mean(0), atol=6)
    np.testing.assert_allclose(image.reshape(-1, 3).std(0), style.std(0), rtol=0.15)


def _gradient_at(x, config, weights):
  spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
  content = as_rgb(CONTENT, 48, what="content")
  targets = jaxstyle.make_targets(weights.params, content, as_rgb(STYLE, 48, what="style"), spec)
  loss_weights = jaxstyle.LossWeights.from_config(config)
  return np.asarray(jax.jit(jax.grad(lambda y: jaxstyle.objective(
      weights.params, targets, y, loss_weights, spec)[0]))(x))


@pytest.mark.slow
@pytest.mark.parametrize("lr", [3.0, 7.0])
def test_adam_first_step_moves_each_pixel_by_lr_against_the_gradient(lr, files, narrow_weights):
  # Adam's bias-corrected first step is lr · g / (|g| + ε): every pixel moves by lr.
  config = BASE.replace(optimizer="adam", lr=lr, iters=1, init=str(files / "x0.png"))
  image = jaxstyle.stylize(CONTENT, STYLE, config, weights=narrow_weights).image
  g = _gradient_at(jnp.asarray(X0, jnp.float32), config, narrow_weights)
  want = np.clip(X0 - lr * np.sign(g), 0, 255)
  clear = np.abs(g) > 1e-3 * np.abs(g).max()  # Where ε is negligible against |g|.
  assert clear.mean() > 0.9
  np.testing.assert_array_equal(image[clear], want[clear])


@pytest.mark.slow
def test_lbfgs_memory_is_the_number_of_pairs_kept(narrow_weights):
  # With m pairs, iteration k uses min(k, m) of them: runs with memory 2 and
  # 20 agree for the first three iterations, then part ways. The compiled
  # state holds exactly m pairs.
  config = BASE.replace(size=32, iters=12, lbfgs_linesearch="none", init="noise",
                        content_weight=0.0)
  short, long = (jaxstyle.stylize(CONTENT, STYLE, config.replace(lbfgs_memory=m),
                                  weights=narrow_weights) for m in (2, 20))
  np.testing.assert_allclose(short.history["total"][:3], long.history["total"][:3], rtol=1e-4)
  assert np.abs(short.history["total"][3:] / long.history["total"][3:] - 1).max() > 1e-3
  x = jnp.zeros((8, 8, 3))
  for m in (2, 20):
    state = jaxstyle.SolverSpec.from_config(config.replace(lbfgs_memory=m)).make().init(x)
    assert state.s_memory.shape == state.y_memory.shape == (m, 8, 8, 3)


@pytest.mark.slow
def test_terms_are_recorded_every_n_iterations_and_at_the_last_or_not_at_all(narrow_weights):
  config = BASE.replace(size=32, iters=7, terms_every=3)
  runs = {every: jaxstyle.stylize(CONTENT, STYLE, config.replace(terms_every=every),
                                  weights=narrow_weights) for every in (3, 1)}
  off = jaxstyle.stylize(CONTENT, STYLE, config.replace(record_terms=False),
                         weights=narrow_weights)
  for run in (runs[1], off):  # What is recorded never changes the run.
    np.testing.assert_array_equal(run.history["total"], runs[3].history["total"])
  for k in ("content", "style", "tv"):
    recorded = np.isfinite(runs[3].history[k])
    # Iterations 3 and 6 (every third) and 7 (the last).
    assert recorded.tolist() == [False, False, True, False, False, True, True], k
    np.testing.assert_allclose(runs[3].history[k][recorded], runs[1].history[k][recorded],
                               rtol=1e-6, err_msg=k)
    assert np.all(np.isfinite(runs[1].history[k])) and np.all(np.isnan(off.history[k])), k


def _compiled_gradient(config, weights):
  """The optimised gradient program's convolution count, and the gradient it computes."""
  spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
  content = as_rgb(CONTENT, 32, what="content")
  targets = jaxstyle.make_targets(weights.params, content, STYLE, spec)
  loss_weights = jaxstyle.LossWeights.from_config(config)
  grad = jax.jit(jax.grad(lambda x: jaxstyle.objective(weights.params, targets, x, loss_weights,
                                                       spec)[0]))
  x = jnp.asarray(np.random.default_rng(1).uniform(0, 255, content.shape), jnp.float32)
  compiled = grad.lower(x).compile()
  return compiled.as_text().count("convolution("), np.asarray(compiled(x))


@pytest.mark.slow
def test_remat_recomputes_the_forward_and_keeps_the_gradient(narrow_weights):
  # Without remat the backward pass reuses the stored activations; with it,
  # the blocks' forward convolutions run again (10 of the 13 here: XLA needs
  # no second copy of the last ones), so the optimised program has more.
  config = BASE.replace(size=32, conv="direct")
  plain, g_plain = _compiled_gradient(config, narrow_weights)
  remat, g_remat = _compiled_gradient(config.replace(remat=True), narrow_weights)
  assert plain == 26 and remat == plain + 10, (plain, remat)  # 13 forward, 13 backward.
  np.testing.assert_allclose(g_remat, g_plain, rtol=1e-5, atol=1e-6 * np.abs(g_plain).max())


@pytest.mark.slow
def test_histogram_preservation_gives_the_output_the_contents_colours(narrow_weights):
  # A reddish photo, a bluish painting, and only style and TV in the objective:
  # the output takes its colours from the style's statistics.
  rng = np.random.default_rng(0)
  red = np.clip(rng.normal([190, 70, 60], 25, (40, 48, 3)), 0, 255).astype(np.uint8)
  blue = np.clip(rng.normal([50, 80, 200], 25, (40, 48, 3)), 0, 255).astype(np.uint8)
  config = BASE.replace(iters=30, init="gray", content_weight=0.0, tv_weight=0.0,
                        style_layers=("relu1_1",))
  plain, kept = (jaxstyle.stylize(red, blue, config.replace(preserve_colors=mode),
                                  weights=narrow_weights).image.reshape(-1, 3).mean(0)
                 for mode in ("none", "histogram"))
  # Random features pin colours loosely: without the control the output only
  # turns bluish (measured: mean RGB 108, 111, 165); with it, it has the
  # photo's colours (184, 72, 69 against the photo's 189, 70, 60).
  assert plain[2] > plain[0] + 30, plain
  assert np.abs(kept - red.reshape(-1, 3).mean(0)).max() < 15, kept


@pytest.mark.slow
def test_masks_confine_each_style_to_its_region_in_the_output(files, narrow_weights):
  red = np.full((40, 40, 3), (220, 30, 30), np.uint8)
  blue = np.full((40, 40, 3), (30, 30, 220), np.uint8)
  config = BASE.replace(iters=30, init="gray", content_weight=0.0, tv_weight=0.0,
                        style_layers=("relu1_1",))
  masks = (str(files / "left.png"), str(files / "right.png"))
  image = jaxstyle.stylize(CONTENT, [red, blue], config.replace(style_masks=masks),
                           weights=narrow_weights).image.astype(int)
  # Away from the border (relu1_1 sees 3x3 pixels): left third red, the rest blue.
  # Measured: left (224, 35, 26), right (106, 93, 166); swapped, left (63, 111, 130),
  # right (206, 59, 44). Thirty iterations do not finish, hence the 40-level margins.
  def sides(img):
    return img[:, :14].reshape(-1, 3).mean(0), img[:, 18:].reshape(-1, 3).mean(0)
  left, right = sides(image)
  assert left[0] > left[2] + 40 and right[2] > right[0] + 40, (left, right)
  swapped = jaxstyle.stylize(CONTENT, [red, blue], config.replace(style_masks=masks[::-1]),
                             weights=narrow_weights).image.astype(int)
  left, right = sides(swapped)
  assert left[2] > left[0] + 40 and right[0] > right[2] + 40, (left, right)


def test_every_config_field_has_an_effect_test():
  """A new StyleConfig field needs a test here (or a named one elsewhere) to be listed."""
  elsewhere = {
      "size": "test_transfer.py::test_real_photo_and_painting (output shape)",
      "iters": "test_transfer.py::test_lbfgs_lowers_the_objective_tenfold",
      "scales": "test_controls.py::test_multiscale_starts_each_scale_from_the_upsampled_...",
      "scale_factor": "test_controls.py::test_multiscale_settings_are_checked",
      "scale_iters": "test_controls.py::test_multiscale_starts_each_scale_from_the_upsampled_...",
      "content_weight": "test_loss_weights_weigh_their_own_terms",
      "style_weight": "test_loss_weights_weigh_their_own_terms",
      "tv_weight": "test_loss_weights_weigh_their_own_terms",
      "network": "test_network_vgg16_uses_vgg16_features",
      "style_layers": "style_layer_weights case", "style_scale": "test_style_scale_...",
      "preserve_colors": "test_histogram_... and test_controls.py::test_luminance_...",
      "style_masks": "test_style_masks_from_files_... and test_masks_confine_...",
      "normalize_gradients": "test_controls.py::test_normalized_gradients_...",
      "init": "test_init_is_the_first_iterate", "optimizer": "test_adam_first_step_...",
      "lr": "test_adam_first_step_...", "ema_decay": "test_controls.py::test_iterate_...",
      "lbfgs_memory": "test_lbfgs_memory_is_the_number_of_pairs_kept",
      "lbfgs_linesearch": "test_controls.py::test_fixed_step_lbfgs_takes_one_evaluation_...",
      "lbfgs_restart": "test_controls.py::test_lbfgs_restart_forgets_the_history",
      "pixel_range": "test_presets.py::test_preset_replays_its_sources_run_in_float64",
      "clamp": "test_presets.py::test_preset_replays_its_sources_run_in_float64",
      "remat": "test_remat_recomputes_the_forward_and_keeps_the_gradient",
      "tile": "test_tiled.py::test_tiled_float32_matches_within_1e4_and_the_program_...",
      "precision": "test_controls.py::test_bfloat16_changes_precision_not_the_objective",
      "conv": "test_winograd.py::test_winograd_run_matches_direct_and_compiles_once",
      "seed": "test_transfer.py::test_same_seed_same_image_other_seed_other_image",
      "weights": "test_cli.py (random:SEED:WIDTH and .h5 paths)",
      "record_terms": "test_terms_are_recorded_every_n_iterations_and_at_the_last_or_not_...",
      "terms_every": "test_terms_are_recorded_every_n_iterations_and_at_the_last_or_not_...",
      "temporal_weight": "test_video.py::test_temporal_term_and_its_gradient_against_numpy "
                         "and ::test_temporal_consistency_lowers_the_warping_error",
  }
  covered = set(elsewhere) | {k for changes, _, _ in CASES.values() for k in changes}
  import dataclasses
  fields = {f.name for f in dataclasses.fields(jaxstyle.StyleConfig)}
  assert fields <= covered, sorted(fields - covered)
