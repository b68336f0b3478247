"""Long runs survive interruption: checkpoints, SIGKILL, Ctrl-C, and bit-identical resumes.

Interruptions happen at an exact checkpoint (``tests/interrupt.py``), not
after polling for a file, so a fast machine cannot finish the run first.
"""

import numpy as np
import pytest

import jaxstyle
from jaxstyle import cli
from tests import interrupt
from tests.conftest import smooth_image

ITERS = "40"
OPTIONS = ["--weights", "random:0:0.125", "--size", "48", "--iters", ITERS, "--quiet",
           "--init", "noise", "--seed", "3"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  from PIL import Image
  folder = tmp_path_factory.mktemp("inputs")
  content, style = folder / "content.png", folder / "style.png"
  Image.fromarray(smooth_image(40, 48, seed=1)).save(content)
  Image.fromarray(smooth_image(56, 40, seed=2)).save(style)
  return content, style


@pytest.fixture(scope="module")
def uninterrupted(inputs, tmp_path_factory):
  """The reference: the same run, never stopped."""
  out = tmp_path_factory.mktemp("reference") / "out.png"
  assert cli.main(["stylize", *map(str, inputs), "-o", str(out), *OPTIONS]) == 0
  return out.read_bytes()


@pytest.mark.subprocess
def test_sigkill_then_resume_is_bit_identical(inputs, uninterrupted, tmp_path):
  out = tmp_path / "out.png"
  # Killed right after its second checkpoint (iteration 20 of 40), in a real process.
  interrupt.run_killed("checkpoint", 2, "stylize", *map(str, inputs), "-o", str(out),
                       *OPTIONS, "--checkpoint-every", "10")
  # Nothing half-written under a final name: only the checkpoint (complete, renamed into place).
  assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
      "out.ckpt.npz"]
  assert jaxstyle.checkpoint.load(tmp_path / "out.ckpt.npz").meta["done"] == 20
  assert cli.main(["stylize", *map(str, inputs), "-o", str(out), *OPTIONS,
                   "--checkpoint-every", "10", "--resume"]) == 0
  assert out.read_bytes() == uninterrupted
  assert not (tmp_path / "out.ckpt.npz").exists()  # Removed once the run is done.


@pytest.mark.subprocess
def test_ctrl_c_writes_image_and_checkpoint_and_exits_130(inputs, uninterrupted, tmp_path,
                                                          monkeypatch, capsys):
  out = tmp_path / "out.png"
  # A real SIGINT to this process, right after the first checkpoint (iteration 10).
  interrupt.hook(monkeypatch.setattr, "checkpoint", 1, ["INT"])
  assert cli.main(["stylize", *map(str, inputs), "-o", str(out), *OPTIONS,
                   "--checkpoint-every", "10"]) == 130
  err = capsys.readouterr().err
  assert "interrupted at iteration 10 of 40" in err and "--resume" in err
  assert (tmp_path / "out.interrupted.png").exists() and not out.exists()
  monkeypatch.undo()
  assert cli.main(["stylize", *map(str, inputs), "-o", str(out), *OPTIONS, "--resume"]) == 0
  assert out.read_bytes() == uninterrupted


@pytest.mark.subprocess
def test_a_second_ctrl_c_stops_at_once(inputs, tmp_path, monkeypatch, capsys):
  out = tmp_path / "out.png"
  interrupt.hook(monkeypatch.setattr, "checkpoint", 1, ["INT", "INT"])
  assert cli.main(["stylize", *map(str, inputs), "-o", str(out), *OPTIONS,
                   "--checkpoint-every", "10"]) == 130
  assert capsys.readouterr().err.strip().endswith("jaxstyle: interrupted")
  # No second checkpoint, no image: it stopped where the second signal came.
  assert jaxstyle.checkpoint.load(tmp_path / "out.ckpt.npz").meta["done"] == 10
  assert not out.exists() and not (tmp_path / "out.interrupted.png").exists()


def test_resume_refuses_a_missing_or_mismatched_checkpoint(inputs, tmp_path, capsys):
  out = tmp_path / "out.png"
  assert cli.main(["stylize", *map(str, inputs), "-o", str(out), *OPTIONS, "--resume"]) == 2
  assert "out.ckpt.npz: no checkpoint to resume from" in capsys.readouterr().err
  config = jaxstyle.StyleConfig(size=48, iters=4, weights="random:0:0.125")
  content, style = inputs
  jaxstyle.stylize(content, style, config, checkpoint=tmp_path / "out.ckpt.npz",
                   checkpoint_every=2)
  assert cli.main(["stylize", *map(str, inputs), "-o", str(out), *OPTIONS, "--resume"]) == 2
  err = capsys.readouterr().err
  assert "out.ckpt.npz: written with other options: --init 'content' (now 'noise')" in err
  assert "--iters 4 (now 40)" in err
  # The same options with another style image: refused too.
  other = tmp_path / "other.png"
  from PIL import Image
  Image.fromarray(smooth_image(56, 40, seed=9)).save(other)
  with pytest.raises(jaxstyle.ConfigError, match="written for other content or style images"):
    jaxstyle.stylize(content, other, config, checkpoint=tmp_path / "out.ckpt.npz", resume=True)
  (tmp_path / "out.ckpt.npz").write_bytes(b"garbage")
  with pytest.raises(jaxstyle.ConfigError, match="not a readable jaxstyle checkpoint"):
    jaxstyle.stylize(content, style, config, checkpoint=tmp_path / "out.ckpt.npz", resume=True)


@pytest.mark.slow
@pytest.mark.parametrize("scale_iters", [(8, 0), (6, 6)])
def test_multiscale_resumes_in_the_scale_it_stopped(scale_iters, tmp_path, narrow_weights):
  content, style = smooth_image(64, 80, seed=1), smooth_image(56, 40, seed=2)
  config = jaxstyle.StyleConfig(size=80, scales=2, scale_iters=scale_iters)
  path = tmp_path / "run.ckpt.npz"
  full = jaxstyle.stylize(content, style, config, weights=narrow_weights, checkpoint=path,
                          checkpoint_every=4)
  saved = jaxstyle.checkpoint.load(path).meta  # The last one written, in the last busy scale.
  assert saved["stage"] == (0 if scale_iters[1] == 0 else 1) and saved["done"] == 4 * (
      1 + (scale_iters[1] == 0))
  resumed = jaxstyle.stylize(content, style, config, weights=narrow_weights, checkpoint=path,
                             resume=True)
  np.testing.assert_array_equal(resumed.image, full.image)
  for k in full.history:
    np.testing.assert_array_equal(resumed.history[k], full.history[k])
  assert resumed.iterations == full.iterations == sum(scale_iters)
