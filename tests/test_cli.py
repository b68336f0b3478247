"""The jaxstyle command end to end: outputs, provenance, and one-line errors."""

import os
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest
from PIL import Image

from jaxstyle import cli, provenance
from tests.conftest import FIXTURES

TINY = ["--weights", "random:0:0.125", "--size", "32", "--iters", "4", "--quiet"]


def test_stylize_writes_image_with_provenance(image_files, tmp_path, capsys):
  content, style = image_files
  out = tmp_path / "out.png"
  assert cli.main(["stylize", str(content), str(style), "-o", str(out), *TINY,
                   "--style-weight", "100", "--style-layers", "relu1_1", "conv2_1",
                   "--save-every", "2"]) == 0
  image = np.asarray(Image.open(out))
  assert image.shape == (27, 32, 3)
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == [
      "out.iter2.png", "out.iter4.png", "out.png"]
  record = provenance.read_png_record(out)
  assert record["config"]["style_weight"] == 100.0
  assert record["config"]["style_layers"] == ["relu1_1", "conv2_1"]
  assert record["weights"] == {"source": "random:0:0.125", "sha256": None, "random": True}
  assert record["content"]["sha256"] and record["iterations"] == 4
  captured = capsys.readouterr()
  assert f"wrote {out}: 4 iterations" in captured.out and "[RANDOM FEATURES]" in captured.out
  assert "jaxstyle: warning: running on RANDOM VGG features" in captured.err


def test_help_shows_every_config_option_with_its_default(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["stylize", "--help"])
  assert e.value.code == 0
  text = " ".join(capsys.readouterr().out.split())
  for option, default in [("--size", "512"), ("--iters", "500"), ("--style-weight", "10000.0"),
                          ("--tv-weight", "100.0"), ("--content-layers", "relu4_2"),
                          ("--style-layers", "relu1_1 relu2_1 relu3_1 relu4_1 relu5_1"),
                          ("--pooling", "max"), ("--init", "content"), ("--optimizer", "lbfgs"),
                          ("--lr", "10.0"), ("--seed", "0"), ("--save-every", "0")]:
    assert option in text and f"(default: {default})" in text[text.index(option):], option


def test_weights_convert_and_info(tmp_path, capsys):
  dst = tmp_path / "vgg19.h5"
  assert cli.main(["weights", "convert", str(FIXTURES / "vgg19_narrow_legacy.pth"), str(dst)]) == 0
  assert cli.main(["weights", "info", str(dst)]) == 0
  out = capsys.readouterr().out
  assert "convention:  torch" in out and "source:      vgg19_narrow_legacy.pth" in out
  assert "block5_conv4  kernel (3, 3, 16, 16)  bias (16,)" in out
  assert "network:     VGG19, width scale 0.03125" in out


def test_weights_info_names_vgg16(tmp_path, capsys):
  dst = tmp_path / "vgg16.h5"
  assert cli.main(["weights", "convert", str(FIXTURES / "vgg16_narrow_zip.pth"), str(dst)]) == 0
  assert cli.main(["weights", "info", str(dst)]) == 0
  out = capsys.readouterr().out
  assert "network:     VGG16, width scale 0.03125" in out
  assert "block5_conv3  kernel (3, 3, 16, 16)" in out and "block5_conv4" not in out


def test_demo_writes_result_comparison_and_plot(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("JAXSTYLE_IMAGES", str(tmp_path / "no-images-here"))
  out = tmp_path / "demo"
  assert cli.main(["demo", "-o", str(out), "--weights", "random:0:0.125", "--size", "32",
                   "--iters", "3", "--quiet"]) == 0
  assert Image.open(out / "stylized.png").size == (32, 32)
  assert Image.open(out / "comparison.png").size == (96, 32)
  assert (out / "loss.png").stat().st_size > 1000
  assert "using generated images" in capsys.readouterr().out


def run_cli(*args, cwd=None, env=None):
  """Runs ``python -m jaxstyle.cli`` in a subprocess: real exit codes and streams."""
  return subprocess.run([sys.executable, "-m", "jaxstyle.cli", *args], capture_output=True,
                        text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture
def bad_inputs(tmp_path, narrow_h5):
  import h5py
  text = tmp_path / "notes.jpg"
  text.write_text("this is not an image")
  wrong = tmp_path / "wrong.h5"
  with h5py.File(narrow_h5) as a, h5py.File(wrong, "w") as b:
    for k, v in a.attrs.items():
      b.attrs[k] = v
    for name in a:
      a.copy(name, b)
    del b["block2_conv1/kernel"]
    b["block2_conv1"].create_dataset("kernel", data=np.zeros((3, 3, 8, 5), np.float32))
  return {"text": text, "wrong_weights": wrong}


def test_bad_inputs_exit_2_with_one_line(image_files, bad_inputs, tmp_path):
  content, style = map(str, image_files)
  out = str(tmp_path / "out.png")
  cases = [
      ((str(tmp_path / "missing.jpg"), style, "-o", out, *TINY), "missing.jpg: no such file"),
      ((str(bad_inputs["text"]), style, "-o", out, *TINY), "notes.jpg: not an image file"),
      ((content, style, "-o", out, *TINY[2:], "--weights", str(bad_inputs["wrong_weights"])),
       r"wrong.h5: layer block2_conv1 kernel has shape (3, 3, 8, 5), expected (3, 3, 8, 16)"),
      ((content, style, "-o", str(tmp_path / "no" / "out.png"), *TINY), "directory"),
      ((content, style, "-o", out, *TINY, "--style-layers", "relu9_9"), "unknown VGG19 layer"),
      ((content, style, "-o", out, *TINY, "--size", "abc"), "invalid int value: 'abc'"),
  ]
  for args, message in cases:
    proc = run_cli("stylize", *args)
    assert proc.returncode == 2, (args, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if "warning" not in l]
    assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
    assert "Traceback" not in proc.stderr
  assert not any(p.name.startswith("out") for p in tmp_path.iterdir())


def test_missing_weights_say_how_to_get_them(image_files, tmp_path):
  content, style = map(str, image_files)
  env = {"JAXSTYLE_WEIGHTS": ""}
  proc = run_cli("stylize", content, style, "-o", str(tmp_path / "o.png"), cwd=tmp_path, env=env)
  assert proc.returncode == 2
  assert "no VGG19 weights" in proc.stderr and "jaxstyle weights download" in proc.stderr
  assert "--weights random" in proc.stderr and "Traceback" not in proc.stderr


def test_offline_download_exits_2_quickly(tmp_path):
  proc = run_cli("weights", "download", "--dest", str(tmp_path / "w" / "vgg19.h5"),
                 "--url", "http://127.0.0.1:9/vgg19.h5", "--timeout", "3")
  assert proc.returncode == 2 and "download failed" in proc.stderr
  assert "jaxstyle weights convert" in proc.stderr
  assert not (tmp_path / "w").exists()


def test_non_finite_loss_saves_last_finite_image_and_exits_1(image_files, tmp_path):
  content, style = map(str, image_files)
  out = tmp_path / "out.png"
  proc = run_cli("stylize", content, style, "-o", str(out), *TINY, "--optimizer", "adam",
                 "--lr", "1e37")
  assert proc.returncode == 1, proc.stderr
  assert "NaN or inf" in proc.stderr and "out.last-finite.png" in proc.stderr
  assert (tmp_path / "out.last-finite.png").exists() and not out.exists()


def test_batch_runs_the_product_of_lists(image_files, tmp_path, capsys):
  content, style = image_files
  other = tmp_path / "other.png"
  Image.open(content).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(other)
  outdir = tmp_path / "runs"
  assert cli.main(["batch", str(content), "--styles", str(style), str(other), "--seeds", "0", "1",
                   "--init", "noise", "-o", str(outdir), *TINY]) == 0
  names = sorted(p.name for p in outdir.iterdir())
  assert names == ["000_style_seed0.png", "001_style_seed1.png", "002_other_seed0.png",
                   "003_other_seed1.png"]
  records = [provenance.read_png_record(outdir / n) for n in names]
  assert [r["config"]["seed"] for r in records] == [0, 1, 0, 1]
  assert [Path(r["style"]["path"]).name for r in records] == ["style.png"] * 2 + ["other.png"] * 2
  images = [np.asarray(Image.open(outdir / n)) for n in names]
  assert not np.array_equal(images[0], images[1])  # Seeds matter with a noise init.
  assert "batch: 4 members (product" in capsys.readouterr().out


def test_batch_zip_needs_matching_lengths(image_files, tmp_path, capsys):
  content, style = image_files
  assert cli.main(["batch", str(content), "--styles", str(style), str(style), "--seeds", "0", "1",
                   "2", "--zip", "-o", str(tmp_path / "z"), *TINY]) == 2
  assert "--zip: every list needs 1 or 3 values; style has 2" in capsys.readouterr().err


def test_blended_styles_and_reproduce_byte_identical(image_files, tmp_path, capsys):
  content, style = image_files
  out, again = tmp_path / "blend.png", tmp_path / "again.png"
  assert cli.main(["stylize", str(content), str(style), str(content), "-o", str(out), *TINY,
                   "--style-blend-weights", "3", "1", "--init", "noise", "--seed", "5"]) == 0
  record = provenance.read_png_record(out)
  assert record["config"]["style_blend_weights"] == [3.0, 1.0] and len(record["style"]) == 2
  assert cli.main(["reproduce", str(out), "-o", str(again), "--quiet"]) == 0
  assert again.read_bytes() == out.read_bytes()
  assert "byte-identical" in capsys.readouterr().out
  Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(style)  # The input changes...
  assert cli.main(["reproduce", str(out), "-o", str(tmp_path / "x.png"), "--quiet"]) == 2
  assert "style.png: recorded style image has changed" in capsys.readouterr().err
