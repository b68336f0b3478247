"""Each command offers the options it honours and no other: config field groups, presets.

StyleConfig's fields fall into groups (jaxstyle.config.GROUPS); a command
takes the groups it can honour. These tests derive what each command
offers from its parser and check it against what the command consumes, so
a new field or option that a command would silently ignore fails here.
"""

import argparse
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from jaxstyle import cli, presets
from jaxstyle.config import GROUPS, StyleConfig, fields_in
from jaxstyle.objective import LossWeights, ObjectiveSpec
from tests.conftest import FIXTURES, smooth_image


def _options(command: str) -> dict[str, argparse.Action]:
  """The options ``jaxstyle COMMAND`` offers, by dest."""
  parser = cli.build_parser()
  commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
  return {a.dest: a for a in commands.choices[command]._actions
          if a.option_strings and a.dest != "help"}


def _other_value(name: str, config: StyleConfig):
  """A valid value of StyleConfig field ``name`` other than ``config``'s."""
  field = next(f for f in dataclasses.fields(StyleConfig) if f.name == name)
  value = getattr(config, name)
  special = {"content_layers": ("relu3_1",), "style_layers": ("relu2_1", "relu3_1"),
             "style_layer_weights": tuple(float(i + 1) for i in range(len(config.style_layers))),
             "weights": "random:1:0.125", "conv": "winograd" if value != "winograd" else "direct",
             "init": "noise", "style_scale": (0.5,), "style_blend_weights": (1.0, 2.0),
             "style_masks": ("mask.png",), "scale_iters": (3,)}
  if name in special:
    return special[name]
  if field.metadata["choices"]:
    return next(c for c in field.metadata["choices"] if c != value)
  if isinstance(value, bool):
    return not value
  if isinstance(value, float):
    return 2 * value + 1
  if isinstance(value, int):
    return value + 1
  raise AssertionError(f"no alternative value for {name}")


def _training_inputs(config: StyleConfig):
  """Everything of the objective config that training consumes (jaxstyle.nets.train.train):
  the weights it resolves, the objective's static spec and its loss weights."""
  # At a size too small to measure, auto convolves directly and --conv winograd does not.
  spec = ObjectiveSpec.from_config(config, "caffe", image_hw=(16, 16), width_scale=0.125)
  return ((config.weights, config.network), spec,
          tuple(float(w) for w in LossWeights.from_config(config)))


@pytest.mark.parametrize("command", ["train", "train-adain"])
def test_training_offers_only_objective_options_and_each_reaches_the_objective(command):
  offered = set(_options(command)) & {f.name for f in dataclasses.fields(StyleConfig)}
  # train's --lr and --seed are TrainConfig's (Adam on the network, its init), not StyleConfig's;
  # so is train's --temporal-weight (the network's temporal loss, not a video frame's).
  own = {"lr", "seed"} | ({"temporal_weight"} if command == "train" else set())
  offered -= own
  assert offered == set(fields_in(("objective", "compute")))
  for name in sorted(offered):
    args = ([command, "style.png"] if command == "train" else [command, "--styles", "s/"])
    base = cli.config_from_args(cli.build_parser().parse_args(args + ["--data", "d", "-o", "m"]))
    value = _other_value(name, base)
    argv = [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    flag = cli.flag(name)
    if isinstance(value, bool):
      flag, argv = (flag if value else "--no-" + flag[2:]), []
    parsed = cli.build_parser().parse_args(args + ["--data", "d", "-o", "m", flag, *argv])
    config = cli.config_from_args(parsed)
    assert getattr(config, name) == value, name  # The option reaches the config ...
    assert _training_inputs(config) != _training_inputs(base), name  # ... and the training.
  for field in {"clamp", "pixel_range", "iters", "init", "temporal_weight", "scales",
                "preserve_colors", "style_masks"} - own:
    assert field not in _options(command), field  # Pixel optimisation's, video's, ...


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  root = tmp_path_factory.mktemp("photos")
  (root / "photos").mkdir()
  for i in range(2):
    Image.fromarray(smooth_image(36, 40, seed=40 + i)).save(root / "photos" / f"p{i}.png")
  Image.fromarray(smooth_image(40, 40, seed=2)).save(root / "style.png")
  return root


@pytest.mark.slow
@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_trains(name, photos, tmp_path, capsys):
  out = tmp_path / "model"
  assert cli.main(["train", str(photos / "style.png"), "--data", str(photos / "photos"),
                   "-o", str(out), "--preset", name, "--weights", "random:0:0.125",
                   "--steps", "1", "--batch", "1", "--crop", "32", "--width", "0.125",
                   "--sample-every", "0", "--checkpoint-every", "0", "--quiet"]) == 0
  preset = presets.get(name)
  record = json.loads((out / "model.json").read_text())["record"]
  # model.json holds the objective that took effect, and only that.
  assert set(record["objective"]) == set(fields_in(("objective", "compute")))
  for key, value in record["objective"].items():
    want = getattr(preset, key) if key != "weights" else "random:0:0.125"
    assert value == (list(want) if isinstance(want, tuple) else want), key
  # What the preset sets outside those groups is named once, as dropped.
  err = capsys.readouterr().err
  dropped = [f for f in dataclasses.fields(StyleConfig)
             if f.metadata["group"] not in ("objective", "compute")
             and getattr(preset, f.name) != f.default]
  notes = [line for line in err.splitlines() if "note: --preset" in line]
  if dropped:
    assert len(notes) == 1 and "train does not use" in notes[0], err
    for f in dropped:
      assert cli.flag(f.name) in notes[0], (f.name, notes)
    assert GROUPS["pixels"] in notes[0]
  else:
    assert not notes, err
  if name == "pytorch-tutorial":  # Refused before groups: its clamp is pixel optimisation's.
    assert "--clamp" in notes[0] and "--pixel-range" in notes[0]


def test_train_help_names_the_network_and_weights_it_uses(capsys):
  with pytest.raises(SystemExit):
    cli.main(["train", "--help"])
  text = " ".join(capsys.readouterr().out.split())
  assert "--network {vgg19,vgg16} the VGG network whose features define the losses " \
         "(default: vgg16)" in text
  assert "else weights/vgg16.h5" in text and "weights/vgg19.h5" not in text


@pytest.fixture(scope="module")
def johnson_model(tmp_path_factory):
  from jaxstyle.nets import models
  return models.convert_pth(FIXTURES / "transformer_narrow_legacy.pth",
                            tmp_path_factory.mktemp("model") / "model")


# Options of `video` that both methods use; every other one belongs to one method. --conv:
# how the network's convolutions run, or VGG's.
VIDEO_SHARED = {"output", "frames", "every", "frame_size", "quiet", "conv"}


def test_video_refuses_the_other_methods_options_instead_of_ignoring_them(photos, johnson_model,
                                                                         tmp_path, capsys):
  values = {"style_image": ["x.png"], "style_size": ["64"], "alpha": ["0.5"], "batch": ["2"],
            "style_mix": ["1", "2"], "preset": ["gatys2016"]}
  base = StyleConfig()
  optimisation_only = set(fields_in(cli.VIDEO_GROUPS)) - {"size", "conv"} | {"preset"}
  network_only = set(cli.NETWORK_OPTIONS) | {"style_mix"}
  options = _options("video")
  assert set(options) == VIDEO_SHARED | optimisation_only | network_only | {"style", "model"}
  for dest in sorted(optimisation_only | network_only):
    if dest in values:
      argv = values[dest]
    else:
      value = _other_value(dest, base)
      argv = [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    flag = cli.flag(dest)
    if isinstance(options[dest], argparse.BooleanOptionalAction):
      flag, argv = (flag if not options[dest].default else "--no-" + flag[2:]), []
    method = (["--model", str(johnson_model)] if dest in optimisation_only
              else ["--style", str(photos / "style.png")])
    out = tmp_path / "out"
    assert cli.main(["video", str(photos / "photos"), "-o", str(out), *method, flag,
                     *argv]) == 2, dest
    err = capsys.readouterr().err
    assert f"{cli.flag(dest)}: not used by video {method[0]}" in err, err
    assert len(err.splitlines()) == 1, err
    assert not out.exists()


def test_apply_refuses_adain_options_for_a_johnson_network(photos, johnson_model, tmp_path,
                                                           capsys):
  photo = str(photos / "photos" / "p0.png")
  for argv, message in [(["--style-size", "64"], "--style-size: "),
                        (["--style-image", photo], "--style-image: "),
                        (["--alpha", "0.5"], "--alpha: ")]:
    assert cli.main(["apply", str(johnson_model), photo, "-o", str(tmp_path / "o"),
                     *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1, err
  assert not (tmp_path / "o").exists()
  assert cli.main(["apply", str(johnson_model), photo, "-o", str(tmp_path / "o"),
                   "--style-size", "512"]) == 0  # Its default: nothing given, nothing refused.
  assert np.asarray(Image.open(tmp_path / "o" / "p0.png")).shape == (36, 40, 3)


def test_a_photo_below_the_networks_smallest_side_is_enlarged_like_stylizes(johnson_model,
                                                                           tmp_path, capsys):
  # stylize enlarges a tiny photo to --size (warning past 4x); apply, which keeps the photo's
  # size, enlarges it to the network's smallest side the same way instead of refusing it;
  # a --size below that side is refused in stylize's words.
  Image.fromarray(smooth_image(1, 3, seed=1)).save(tmp_path / "tiny.png")
  assert cli.main(["apply", str(johnson_model), str(tmp_path / "tiny.png"), "-o",
                   str(tmp_path / "o")]) == 0
  assert np.asarray(Image.open(tmp_path / "o" / "tiny.png")).shape == (4, 12, 3)
  capsys.readouterr()
  assert cli.main(["apply", str(johnson_model), str(tmp_path / "tiny.png"), "-o",
                   str(tmp_path / "p"), "--size", "2"]) == 2
  assert capsys.readouterr().err.strip() == ("jaxstyle: error: --size: expected at least 4 "
                                             "pixels (the network's smallest side), got 2")
  assert not (tmp_path / "p").exists()
