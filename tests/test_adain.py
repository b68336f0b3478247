"""AdaIN: the network against a NumPy transcription, training, model files and apply."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxstyle
from jaxstyle.nets import models
from jaxstyle.nets.adain import AdaINNet, AdaINSpec
from tests import reference as ref
from tests.conftest import smooth_image

NARROW = 0.125


@pytest.fixture(scope="module")
def encoder():
  return jaxstyle.random_weights(seed=0, width_scale=NARROW)


def _conv_reflect(x_HxWxC, kernel, bias):
  """3x3 cross-correlation with reflection padding 1."""
  padded = np.pad(x_HxWxC, ((1, 1), (1, 1), (0, 0)), mode="reflect")
  H, W = x_HxWxC.shape[:2]
  out = np.zeros((H, W, kernel.shape[-1]))
  for dy in range(3):
    for dx in range(3):
      out += padded[dy:dy + H, dx:dx + W] @ kernel[dy, dx].astype(np.float64)
  return out + bias


_FEATURES = {}


def _numpy_adain(params, flat_decoder, photo, styles, mix, alpha):
  """Huang & Belongie's network written from the paper, in float64.

  t = α Σ_k w_k AdaIN(f(c), f(s_k)) + (1 − α) f(c), AdaIN(x, y) = σ(y)(x − μ(x))/σ(x) + μ(y)
  over each channel; the decoder: 9 reflection-padded 3x3 convs, ReLU after all but the
  last, 2x nearest upsampling after the 1st, 5th and 7th.
  """
  def relu4_1(rgb):
    key = rgb.tobytes()
    if key not in _FEATURES:  # The slow part; each image's features are reused across cases.
      _FEATURES[key] = ref.vgg19_forward(params, ref.preprocess_caffe(rgb.astype(np.float64)))[
          "block4_conv1"]
    return _FEATURES[key]

  def stats(F):
    X = F.reshape(-1, F.shape[-1])
    return X.mean(0), np.sqrt(X.var(0) + 1e-5)

  fc = relu4_1(photo)
  mu_c, sd_c = stats(fc)
  t = sum(w * (sd_s * (fc - mu_c) / sd_c + mu_s)
          for w, (mu_s, sd_s) in zip(mix, (stats(relu4_1(s)) for s in styles)))
  x = alpha * t + (1 - alpha) * fc
  convs = sorted({k.rsplit(".", 1)[0] for k in flat_decoder},
                 key=lambda k: [int(p) for p in k.split(".") if p.isdigit()])
  for i, name in enumerate(convs, start=1):
    x = _conv_reflect(x, flat_decoder[name + ".kernel"], flat_decoder[name + ".bias"])
    if i < len(convs):
      x = np.maximum(x, 0)
    if i in (1, 5, 7):
      x = x.repeat(2, axis=0).repeat(2, axis=1)
  return x


@pytest.mark.slow
def test_adain_forward_matches_a_numpy_transcription(encoder):
  net = AdaINNet(AdaINSpec(NARROW), encoder.params, rngs=nnx.Rngs(3))
  flat = {k.removeprefix("decoder."): v for k, v in models.flat_params(net).items()
          if k.startswith("decoder.")}
  assert len(flat) == 18  # Nine convolutions.
  photo = smooth_image(24, 32, seed=1).astype(np.float32)
  styles = [smooth_image(16, 24, seed=2).astype(np.float32),
            smooth_image(32, 16, seed=3).astype(np.float32)]
  stats = [net.style_stats(jnp.asarray(s)[None]) for s in styles]
  mean = jnp.concatenate([m.reshape(1, -1) for m, _ in stats])
  std = jnp.concatenate([s.reshape(1, -1) for _, s in stats])
  for mix, alpha in (((1.0, 0.0), 1.0), ((0.3, 0.7), 0.6), ((0.0, 1.0), 0.0)):
    got = net.stylize(jnp.asarray(photo)[None], mean, std, jnp.asarray([mix]), alpha)[0]
    want = _numpy_adain(encoder.params, flat, photo, styles, mix, alpha)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max(),
                               err_msg=f"mix {mix}, alpha {alpha}")


def test_adain_gives_the_content_the_style_statistics():
  from jaxstyle.nets.adain import adain, mean_std
  rng = np.random.default_rng(0)
  content = jnp.asarray(rng.normal(3.0, 2.0, (1, 6, 5, 4)), jnp.float32)
  style = jnp.asarray(rng.normal(-1.0, 0.5, (1, 7, 9, 4)) * np.arange(1, 5), jnp.float32)
  out = adain(content, *mean_std(style))
  for got, want in zip(mean_std(out), mean_std(style)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


TRAIN = ["--weights", "random:0:0.125", "--steps", "4", "--batch", "2", "--crop", "32",
         "--lr", "0.002", "--checkpoint-every", "0", "--sample-every", "2", "--quiet"]


@pytest.mark.slow
def test_adain_trains_on_two_folders_and_applies_with_any_style(tmp_path, encoder, capsys):
  from PIL import Image

  from jaxstyle import cli, images, provenance
  from jaxstyle.nets.apply import stylizer_for
  from jaxstyle.nets.data import crop_square
  from jaxstyle.nets.train_adain import _loss, _Static, objective_config
  from jaxstyle.objective import LossWeights, ObjectiveSpec, run_params
  for folder, seed in (("photos", 10), ("paintings", 40)):
    (tmp_path / folder).mkdir()
    for i in range(4):
      Image.fromarray(smooth_image(36 + 4 * i, 40, seed=seed + i)).save(
          tmp_path / folder / f"{i}.png")
  held = [tmp_path / "held0.png", tmp_path / "held1.png"]
  for i, path in enumerate(held):
    Image.fromarray(smooth_image(33, 45, seed=70 + i)).save(path)
  model = tmp_path / "model"
  assert cli.main(["train-adain", "--data", str(tmp_path / "photos"), "--styles",
                   str(tmp_path / "paintings"), "-o", str(model), "--held-out", *map(str, held),
                   "--held-out-styles", str(tmp_path / "paintings" / "0.png"), *TRAIN]) == 0
  assert sorted(p.name for p in (model / "samples").iterdir()) == ["final.png", "step2.png",
                                                                   "step4.png"]
  net, meta = models.load_model(model)
  assert meta["architecture"] == "adain" and meta["spec"] == {"width": NARROW,
                                                               "convention": "caffe"}
  assert meta["record"]["paintings"] == 4 and meta["record"]["train"]["lr_decay"] == 5e-5
  # The encoder is saved as it was, frozen; the held-out objective fell.
  np.testing.assert_array_equal(models.flat_params(net)["encoder.block3_conv2.kernel"],
                                encoder.params["block3_conv2"]["kernel"])
  spec = ObjectiveSpec.from_config(objective_config(), "caffe")
  photos = jnp.asarray(np.stack([crop_square(images.load_image(p, min_side=1), 32)
                                 for p in held]), jnp.float32)
  styles = jnp.asarray(np.stack([crop_square(images.load_image(
      tmp_path / "paintings" / f"{i}.png"), 32) for i in (1, 3)]), jnp.float32)

  def held_out_loss(decoder):
    graphdef, params = nnx.split(decoder)
    return float(_loss(nnx.to_pure_dict(params), graphdef, run_params(encoder, spec), photos,
                       styles, LossWeights.from_config(objective_config()),
                       _Static(spec, 1e-3, 0.0))[0])
  initial = AdaINNet(AdaINSpec(NARROW), encoder.params, rngs=nnx.Rngs(0)).decoder
  before, after = held_out_loss(initial), held_out_loss(net.decoder)
  assert after < 0.9 * before, (before, after)

  # Apply: any size, any style image, mixed and traded off; provenance names the styles.
  style_files = [str(tmp_path / "paintings" / f"{i}.png") for i in (1, 2)]
  outdir = tmp_path / "out"
  assert cli.main(["apply", str(model), str(held[0]), "-o", str(outdir), "--style-image",
                   *style_files, "--style-mix", "1", "3", "--alpha", "0.7",
                   "--style-size", "24"]) == 0
  out = np.asarray(Image.open(outdir / "held0.png"))
  assert out.shape == (33, 45, 3)  # Padded to multiples of 8 for the encoder, cropped back.
  record = provenance.read_png_record(outdir / "held0.png")
  assert record["alpha"] == 0.7 and record["style_weights"] == [0.25, 0.75]
  assert [s["path"] for s in record["style_images"]] == style_files
  # The training config, not its per-step history (model.json keeps that, by the sha256).
  assert record["model"]["record"]["train"]["steps"] == 4
  assert "history" not in record["model"]["record"] and "history" in meta["record"]
  stylizer = stylizer_for(net, style=[1, 3], alpha=0.7, style_images=[
      images.load_image(p, size=24) for p in style_files])
  np.testing.assert_array_equal(out, stylizer(images.load_image(held[0])[None])[0])
  other = stylizer_for(net, style=[3, 1], alpha=0.7, style_images=[
      images.load_image(p, size=24) for p in style_files])(images.load_image(held[0])[None])[0]
  assert np.abs(other.astype(int) - out).mean() > 1  # The mix's order matters.
  capsys.readouterr()
  assert cli.main(["apply", str(model), str(held[0]), "-o", str(tmp_path / "none")]) == 2
  assert "an AdaIN model stylizes with any style image" in capsys.readouterr().err
  assert cli.main(["apply", str(model), str(held[0]), "-o", str(tmp_path / "none"),
                   "--style-image", style_files[0], "--alpha", "1.5"]) == 2
  assert "--alpha: expected a content/style trade-off in [0, 1], got 1.5" in (
      capsys.readouterr().err)
  assert not (tmp_path / "none").exists()
