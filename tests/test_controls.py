"""Artistic controls: each one's effect, measured."""

import jax
import numpy as np
import pytest

import jaxstyle
from jaxstyle import color, transfer
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
  mse_of_normalised = np.mean(((G - A) / (N * M if norm == "chw" else M)) ** 2)
  np.testing.assert_allclose(np.sum((G - A) ** 2) / (scale(N) * M**2), mse_of_normalised)
  np.testing.assert_allclose(jaxstyle.style_layer_loss(F, A.astype(np.float32), norm=norm),
                             mse_of_normalised, rtol=1e-5)


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


def test_controls_from_the_cli(image_files, tmp_path):
  from jaxstyle import cli, provenance
  content, style = image_files
  out = tmp_path / "out.png"
  assert cli.main(["stylize", str(content), str(style), "-o", str(out), "--weights",
                   "random:0:0.125", "--size", "40", "--iters", "3", "--quiet",
                   "--preserve-colors", "histogram", "--style-scale", "0.8", "--init",
                   "style_stats", "--style-norm", "hw", "--style-layer-weight-exp", "0.5"]) == 0
  config = provenance.read_png_record(out)["config"]
  assert config["preserve_colors"] == "histogram" and config["style_scale"] == [0.8]
  assert config["style_norm"] == "hw" and config["init"] == "style_stats"


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
