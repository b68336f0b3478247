"""Feed-forward networks: the forward against torch's, conditional instance norm, model files."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import jaxstyle
from jaxstyle.nets import JohnsonNet, JohnsonSpec, models, style_vector
from tests.conftest import FIXTURES

SPEC = JohnsonSpec(width=0.125)


def test_converted_transformer_net_matches_torch_forward(tmp_path):
  # A fast_neural_style TransformerNet (width 1/8) saved by torch itself in the
  # legacy format of the published models, with their stale running stats.
  out = models.convert_pth(FIXTURES / "transformer_narrow_legacy.pth", tmp_path / "model")
  net, meta = models.load_model(out)
  assert meta["spec"] == {"width": 0.125, "styles": 1, "residual_blocks": 5,
                          "upsample": "nearest"}
  assert meta["record"]["converted_from"] == "transformer_narrow_legacy.pth"
  expected = np.load(FIXTURES / "transformer_narrow_torch_output.npz")
  got = net(jnp.asarray(expected["input_NxHxWx3"]))
  want = expected["output_NxHxWx3"]
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def _randomise_norms(net, seed):
  """Random instance-norm scales and shifts (fresh ones are 1 and 0, which test nothing)."""
  flat = models.flat_params(net)
  rng = np.random.default_rng(seed)
  for key in flat:
    if key.endswith(("scale", "bias")) and flat[key].ndim == 2:
      flat[key] = rng.uniform(0.5, 1.5, flat[key].shape).astype(np.float32)
  models.set_flat_params(net, flat, source="test")
  return flat


def test_conditional_instance_norm_picks_and_mixes_styles():
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (1, 16, 20, 3)), jnp.float32)
  multi = JohnsonNet(JohnsonSpec(width=0.125, styles=3), rngs=nnx.Rngs(0))
  flat = _randomise_norms(multi, 1)

  one = models.abstract(JohnsonNet, SPEC)  # Shapes only: single() loads every weight.

  def single(style_weights):
    """A single-style network with the convolutions and γ = sᵀΓ, β = sᵀB of ``multi``."""
    models.set_flat_params(one, {k: (np.asarray(style_weights, np.float32) @ v)[None]
                                 if k.endswith(("scale", "bias")) and v.ndim == 2 else v
                                 for k, v in flat.items()}, source="test")
    return one(x)

  for k in range(3):  # One-hot: exactly that style's single-style network.
    np.testing.assert_allclose(multi(x, style_vector(k, 3)[None]), single(np.eye(3)[k]),
                               rtol=1e-5, atol=1e-4)
  mix = style_vector([0.2, 0.0, 0.6], 3)  # Normalised to (0.25, 0, 0.75).
  np.testing.assert_allclose(mix, [0.25, 0.0, 0.75])
  np.testing.assert_allclose(multi(x, mix[None]), single([0.25, 0.0, 0.75]), rtol=1e-5,
                             atol=1e-4)
  assert not np.allclose(multi(x, style_vector(0, 3)[None]), multi(x, style_vector(2, 3)[None]))
  with pytest.raises(jaxstyle.ConfigError, match="--style-mix: expected 3 non-negative"):
    style_vector([1.0, 2.0], 3)
  with pytest.raises(jaxstyle.ConfigError, match=r"style weights of shape \(1, 3\)"):
    multi(x, jnp.ones((1, 2)))


@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_sides_come_back_rounded_up_to_a_multiple_of_4(upsample):
  net = JohnsonNet(JohnsonSpec(width=0.125, upsample=upsample), rngs=nnx.Rngs(0))
  for (h, w), want in (((28, 36), (28, 36)), ((29, 30), (32, 32)), ((17, 23), (20, 24))):
    assert jax.eval_shape(net, jax.ShapeDtypeStruct((2, h, w, 3), jnp.float32)).shape == (
        2, *want, 3)


def test_model_directory_round_trip_and_refusals(tmp_path):
  net = JohnsonNet(JohnsonSpec(width=0.125, styles=2), rngs=nnx.Rngs(3))
  _randomise_norms(net, 2)
  path = models.save_model(tmp_path / "m", net, styles=["starry", "scream"],
                           record={"trained": "test"})
  again, meta = models.load_model(path)
  assert meta["styles"] == ["starry", "scream"] and meta["record"] == {"trained": "test"}
  for key, value in models.flat_params(net).items():
    np.testing.assert_array_equal(models.flat_params(again)[key], value, err_msg=key)
  with pytest.raises(models.ModelError, match="no such model directory"):
    models.load_model(tmp_path / "nope")
  (tmp_path / "empty").mkdir()
  with pytest.raises(models.ModelError, match="not a jaxstyle model directory"):
    models.load_model(tmp_path / "empty")
  params = path / models.PARAMS_FILE
  params.write_bytes(params.read_bytes()[:-4] + b"\0\0\0\0")
  with pytest.raises(models.ModelError, match="does not match the sha256"):
    models.load_model(path)
  models.save_model(path, net, styles=["starry", "scream"], record={})
  m = json.loads((path / models.META_FILE).read_text())
  m["spec"]["width"] = 0.25  # Parameters that do not fit the recorded architecture.
  (path / models.META_FILE).write_text(json.dumps(m))
  with pytest.raises(models.ModelError, match=r"conv1\.conv\.bias has shape \(4,\), "
                                              r"expected \(8,\)"):
    models.load_model(path)


def test_convert_refuses_other_state_dicts(tmp_path):
  with pytest.raises(models.ModelError, match="not a fast_neural_style TransformerNet "
                                              r"\(unexpected keys: classifier"):
    models.convert_pth(FIXTURES / "vgg19_narrow_zip.pth", tmp_path / "m")
  assert not (tmp_path / "m").exists()
  bad = tmp_path / "bad.pth"
  bad.write_bytes(b"not a pickle")
  with pytest.raises(models.ModelError, match="bad.pth"):
    models.convert_pth(bad, tmp_path / "m")


@pytest.mark.slow
def test_models_convert_info_and_apply_from_the_cli(tmp_path, capsys):
  from PIL import Image

  from jaxstyle import cli, color, provenance
  from tests.conftest import smooth_image
  model = tmp_path / "candy"
  assert cli.main(["models", "convert", str(FIXTURES / "transformer_narrow_legacy.pth"),
                   str(model), "--label", "candy"]) == 0
  assert cli.main(["models", "info", str(model)]) == 0
  info = capsys.readouterr().out
  assert "styles:       0: candy" in info and "width 0.125, 5 residual blocks" in info
  photos = {"a": smooth_image(32, 40, seed=1), "b": smooth_image(32, 40, seed=2),
            "odd": smooth_image(29, 37, seed=3)}
  for name, rgb in photos.items():
    Image.fromarray(rgb).save(tmp_path / f"{name}.png")
  inputs = [str(tmp_path / f"{n}.png") for n in photos]
  outdir = tmp_path / "out"
  assert cli.main(["apply", str(model), *inputs, "-o", str(outdir)]) == 0
  assert sorted(p.name for p in outdir.iterdir()) == ["a.png", "b.png", "odd.png"]
  net, meta = models.load_model(model)
  for name, rgb in photos.items():
    out = np.asarray(Image.open(outdir / f"{name}.png"))
    assert out.shape == rgb.shape  # The odd size too: padded, then cropped back.
    record = provenance.read_png_record(outdir / f"{name}.png")
    assert record["model"]["params_sha256"] == meta["params_sha256"]
    assert record["style_weights"] == [1.0] and record["input"]["path"].endswith(f"{name}.png")
  direct = np.clip(np.round(np.asarray(net(jnp.asarray(photos["a"][None], jnp.float32)))), 0, 255)
  np.testing.assert_allclose(np.asarray(Image.open(outdir / "a.png")), direct[0], atol=1)
  # Colours kept: the output's chroma is the input's.
  assert cli.main(["apply", str(model), inputs[0], "-o", str(tmp_path / "kept"),
                   "--preserve-colors", "luminance"]) == 0
  kept = np.asarray(Image.open(tmp_path / "kept" / "a.png")).astype(int)
  # The network's luminance with the photo's chroma (the colour maths: test_controls.py).
  want = color.with_chroma_of(direct[0].astype(np.uint8), photos["a"]).astype(int)
  assert np.abs(kept - want).max() <= 1 and np.abs(kept - direct[0]).max() > 10
  capsys.readouterr()
  # Bad input: one line, exit 2, nothing written.
  assert cli.main(["apply", str(model), inputs[0], str(tmp_path / "missing.png"), "-o",
                   str(tmp_path / "none")]) == 2
  assert "missing.png: no such file" in capsys.readouterr().err
  assert cli.main(["apply", str(model), inputs[0], "-o", str(tmp_path / "none"), "--style-mix",
                   "1", "2"]) == 2
  assert "--style-mix: expected 1 non-negative weights" in capsys.readouterr().err
  assert cli.main(["apply", str(tmp_path), inputs[0], "-o", str(tmp_path / "none")]) == 2
  assert "not a jaxstyle model directory" in capsys.readouterr().err
  assert not (tmp_path / "none").exists()


# --- Training ----------------------------------------------------------------------------

@pytest.mark.slow
def test_training_writes_a_model_that_lowers_the_objective_on_held_out_photos(training):
  from jaxstyle import images, presets
  from jaxstyle.nets.data import crop_square
  from jaxstyle.nets.train import TrainConfig, _loss, _Static
  from jaxstyle.objective import (LossWeights, ObjectiveSpec, features, run_params, stack,
                                  style_targets)
  root, _, held = training
  model = root / "model"
  assert sorted(p.name for p in (model / "samples").iterdir()) == ["final.png", "step4.png",
                                                                   "step8.png"]
  assert [json.loads(l)["step"] for l in (model / "metrics.jsonl").read_text().splitlines()] == [
      1, 2, 3, 4, 5, 6, 7, 8]
  net, meta = models.load_model(model)
  record = meta["record"]
  assert record["photos"] == 6 and record["train"]["steps"] == 8 and record["weights"]["random"]
  assert record["objective"]["network"] == "vgg16" and len(record["history"]["total"]) == 8
  # The objective on photos it never saw: the trained network against its initialisation.
  weights = jaxstyle.resolve_weights("random:0:0.125", network="vgg16")
  objective = presets.perceptual_vgg16().replace(size=32)
  spec = ObjectiveSpec.from_config(objective, weights.convention)
  vgg = run_params(weights, spec)
  at_crop = features(vgg, jnp.zeros((32, 32, 3)), spec.layers, spec)
  targets = stack([style_targets(vgg, at_crop, [images.load_image(root / "style.png", size=32)],
                                 spec, None)])
  photos = jnp.asarray(np.stack([crop_square(images.load_image(p, min_side=1), 32)
                                 for p in held]), jnp.float32)
  static = _Static(spec, 1, 0.01)

  def held_out_loss(network):
    graphdef, state = nnx.split(network)
    return float(_loss(nnx.to_pure_dict(state), graphdef, vgg, targets, photos,
                       jnp.zeros(2, jnp.int32), LossWeights.from_config(objective), static)[0])
  initial = JohnsonNet(JohnsonSpec(width=0.125), rngs=nnx.Rngs(TrainConfig().seed))
  before, after = held_out_loss(initial), held_out_loss(net)
  assert after < 0.9 * before, (before, after)
  # metrics.jsonl records that same held-out objective at the sample steps, and the time.
  lines = [json.loads(l) for l in (model / "metrics.jsonl").read_text().splitlines()]
  assert {m["step"]: m["held_out"] for m in lines if "held_out" in m}.keys() == {4, 8}
  np.testing.assert_allclose(lines[-1]["held_out"], after, rtol=1e-4)
  assert all(a["seconds"] < b["seconds"] for a, b in zip(lines, lines[1:]))


@pytest.mark.slow
def test_training_killed_then_resumed_ends_bit_identical(training, tmp_path):
  from jaxstyle import cli
  from tests.interrupt import run_killed
  root, args, _ = training
  out = tmp_path / "model"
  # SIGKILL right after the first checkpoint (step 4 of 8) is complete on disk.
  run_killed("train-checkpoint", 1, "train", *args, "-o", str(out), timeout=600)
  assert not (out / models.META_FILE).exists()  # Not a model yet.
  assert cli.main(["train", *args, "-o", str(out), "--resume"]) == 0
  assert (out / models.PARAMS_FILE).read_bytes() == (root / "model" / models.PARAMS_FILE).read_bytes()
  lines = (out / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(l)["step"] for l in lines] == list(range(1, 9))  # No step twice.
  for a, b in zip(lines, (root / "model" / "metrics.jsonl").read_text().splitlines()):
    assert json.loads(a)["total"] == json.loads(b)["total"]


def test_photo_order_is_seeded_per_epoch_and_unreadable_files_are_skipped(tmp_path):
  from PIL import Image

  from jaxstyle.images import ImageWarning
  from jaxstyle.nets.data import Photos, crop_square
  for i in range(5):  # Each photo a flat grey of its own level, to tell them apart.
    Image.fromarray(np.full((20 + i, 24, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
  (tmp_path / "nested").mkdir()
  Image.fromarray(np.full((30, 20, 3), 200, np.uint8)).save(tmp_path / "nested" / "5.jpg")
  photos = Photos(tmp_path, crop=16, batch=3, seed=7)
  assert len(photos.files) == 6

  def levels(step, p=photos):
    return [int(round(img.mean())) for img in p.batch(step)]
  epoch0 = levels(0) + levels(1)  # Steps 0 and 1: the six photos of epoch 0, each once.
  assert sorted(epoch0) == [0, 40, 80, 120, 160, 200]
  assert crop_square(np.zeros((30, 20, 3), np.uint8), 16).shape == (16, 16, 3)
  assert levels(0) == levels(0)  # A step's batch is the same every time it is asked for.
  assert levels(2) + levels(3) != epoch0  # Epoch 1 has its own order...
  assert sorted(levels(2) + levels(3)) == sorted(epoch0)  # ...of the same photos.
  assert levels(0, Photos(tmp_path, crop=16, batch=3, seed=8)) != levels(0)  # The seed matters.
  (tmp_path / "3.png").write_bytes(b"not an image")
  damaged = Photos(tmp_path, crop=16, batch=3, seed=7)
  with pytest.warns(ImageWarning, match=r"skipping .*3\.png: not an image file"):
    seen = levels(0, damaged) + levels(1, damaged)
  # The unreadable photo (level 120) is skipped; the next ones in the order fill its place.
  assert len(seen) == 6 and 120 not in seen and {0, 40, 80, 160, 200} <= set(seen)


def test_models_info_summarises_a_trained_model_and_refuses_a_damaged_one(training, tmp_path,
                                                                         capsys):
  import shutil

  from jaxstyle import cli
  root, _, held = training
  model = root / "model"
  capsys.readouterr()
  assert cli.main(["models", "info", str(model)]) == 0
  lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
  net, meta = models.load_model(model)
  count = sum(v.size for v in models.flat_params(net).values())
  assert lines["architecture"].strip() == (
      f"johnson (width 0.125, 5 residual blocks, nearest upsampling), {count / 1e6:.2f} M "
      "parameters")
  thumbnail = model / "styles" / "0_style.png"
  assert lines["styles"].strip() == f"0: style ({thumbnail})"
  assert np.asarray(Image.open(thumbnail)).shape == (48, 48, 3)  # Small styles not enlarged.
  assert lines["trained"].strip().startswith("8 steps on 6 photos from ")
  assert "VGG16 max-pool; content relu2_2 x1 (mean); style relu1_2 relu2_2 relu3_3 relu4_3" in (
      lines["objective"])
  metrics = [json.loads(x) for x in (model / "metrics.jsonl").read_text().splitlines()]
  assert lines["held out"].strip().startswith(
      f"objective {metrics[-1]['held_out']:.4g} at step 8")
  assert "RANDOM features (random:0:0.125)" in lines["VGG weights"]
  assert lines["jaxstyle"].strip().startswith(jaxstyle.__version__)
  assert lines["params file"].strip().endswith(f"sha256 {meta['params_sha256']} (ok)")
  assert cli.main(["models", "info", str(model), "--json"]) == 0
  assert json.loads(capsys.readouterr().out) == json.loads((model / "model.json").read_text())
  # apply says once that the network learnt from random features.
  assert cli.main(["apply", str(model), str(held[0]), "-o", str(tmp_path / "out")]) == 0
  err = capsys.readouterr().err
  assert err.count("trained on RANDOM VGG features") == 1, err
  # A damaged params file: every load refuses it in one line naming the file.
  damaged = tmp_path / "damaged"
  shutil.copytree(model, damaged)
  params = damaged / models.PARAMS_FILE
  data = bytearray(params.read_bytes())
  data[-1] ^= 1
  params.write_bytes(bytes(data))
  for argv in (["models", "info", str(damaged)],
               ["apply", str(damaged), str(held[0]), "-o", str(tmp_path / "none")]):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{params}: does not match the sha256 in model.json" in err, err
    assert len(err.splitlines()) == 1
  assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_training_weighs_each_loss_term_by_its_own_option(tmp_path):
  # Asymmetric weights, given as users give them, that make the weighted terms comparable
  # (about 6e3, 1e4, 4e3 and 1e3 here): every step's recorded total is Σ_k w_k · term_k with these
  # weights, so a dropped, defaulted or swapped weight fails.
  from PIL import Image

  from jaxstyle import cli
  from tests.conftest import smooth_image
  (tmp_path / "photos").mkdir()
  for i in range(2):
    Image.fromarray(smooth_image(36, 40, seed=50 + i)).save(tmp_path / "photos" / f"{i}.png")
  Image.fromarray(smooth_image(40, 40, seed=3)).save(tmp_path / "style.png")
  weights = {"content": 2.0, "style": 0.03, "tv": 7.0, "temporal": 0.5}
  assert cli.main(["train", str(tmp_path / "style.png"), "--data", str(tmp_path / "photos"),
                   "-o", str(tmp_path / "model"), "--weights", "random:0:0.125", "--steps", "2",
                   "--batch", "2", "--crop", "32", "--width", "0.125", "--sample-every", "0",
                   "--checkpoint-every", "0", "--quiet", "--content-weight", "2",
                   "--style-weight", "0.03", "--tv-weight", "7", "--temporal-weight", "0.5"]) == 0
  for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines():
    m = json.loads(line)
    assert all(m[k] > 0 for k in weights)
    np.testing.assert_allclose(m["total"], sum(w * m[k] for k, w in weights.items()), rtol=1e-4)
