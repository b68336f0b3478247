"""The README's offline commands run as written (at a tiny size): the feed-forward demo and
the training recipe it shows. A README edit that breaks them fails here."""

import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxstyle import cli

ROOT = Path(__file__).resolve().parents[1]
# Appended to a README command: later options win, so the command runs as written but tiny.
TINY_TRAINING = ["--steps", "2", "--crop", "32", "--width", "0.125", "--weights",
                 "random:0:0.125", "--sample-every", "0", "--checkpoint-every", "0", "--quiet"]


def readme_command(start: str) -> list[str]:
  """The one command in the README's ```bash blocks that begins with ``start``, as argv."""
  text = (ROOT / "README.md").read_text()
  blocks = [b.split("```", 1)[0] for b in text.split("```bash\n")[1:]]
  lines = " ".join(blocks).replace("\\\n", " ").splitlines()
  found = [line.split(" #")[0] for line in lines if line.strip().startswith(start)]
  assert len(found) == 1, f"expected one README command starting {start!r}, found {found}"
  return shlex.split(found[0])


def _output(argv: list[str], value: str) -> list[str]:
  i = argv.index("-o")
  return argv[:i + 1] + [value] + argv[i + 2:]


@pytest.mark.slow
def test_the_readme_offline_training_recipe_trains_and_applies(shared_images, tmp_path,
                                                               monkeypatch, capsys):
  monkeypatch.chdir(ROOT)  # Its paths are relative to the project, as a reader runs them.
  train = readme_command("jaxstyle train ../shared/images/style/starry_night.jpg")
  assert "--weights" in train and "--content-weight" in train  # The offline recipe itself.
  model = tmp_path / "starry"
  assert cli.main(_output(train[1:], str(model)) + TINY_TRAINING) == 0
  apply = readme_command("jaxstyle apply models/starry")
  apply = [str(model) if a == "models/starry" else a for a in apply[1:]]
  assert cli.main(_output(apply, str(tmp_path / "stylized"))) == 0
  out = np.asarray(Image.open(tmp_path / "stylized" / "chelsea.png"))
  assert max(out.shape[:2]) == 256
  assert "trained on RANDOM VGG features" in capsys.readouterr().err


@pytest.mark.slow
def test_the_feed_forward_demo_writes_a_photo_it_never_saw(shared_images, tmp_path, capsys):
  assert readme_command("jaxstyle demo --feed-forward") == ["jaxstyle", "demo", "--feed-forward"]
  out = tmp_path / "demo"
  assert cli.main(["demo", "--feed-forward", "--steps", "2", "--size", "32", "--weights",
                   "random:0:0.125", "-o", str(out), "--quiet"]) == 0
  printed = capsys.readouterr().out
  assert "held out" in printed and "chelsea.jpg is held out" in printed
  result = np.asarray(Image.open(out / "feed_forward.png"))
  assert max(result.shape[:2]) == 64  # Twice the training crops.
  comparison = np.asarray(Image.open(out / "feed_forward_comparison.png"))
  assert comparison.shape[1] == 3 * result.shape[1]  # photo | style | result, captioned.
  from jaxstyle.nets import models
  _, meta = models.load_model(out / "feed_forward_model")
  assert meta["record"]["photos"] == 3  # Chelsea is not among them.
  assert meta["record"]["objective"]["content_weight"] == 100.0  # The random-features recipe.
  # Each mode refuses the other's options.
  assert cli.main(["demo", "--steps", "3", "-o", str(out)]) == 2
  assert cli.main(["demo", "--feed-forward", "--iters", "5", "-o", str(out)]) == 2
  err = capsys.readouterr().err
  assert "--steps: only with --feed-forward" in err and "--iters: not used by demo " \
         "--feed-forward" in err
