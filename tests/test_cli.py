"""The jaxstyle command end to end: outputs, provenance, and one-line errors."""

import json
import os
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import cli, provenance
from jaxstyle.cli import pixels
from tests.conftest import FIXTURES
from tests.test_convert import http_server  # noqa: F401  (fixture)

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


@pytest.mark.slow
def test_demo_writes_result_comparison_and_plot(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("JAXSTYLE_IMAGES", str(tmp_path / "no-images-here"))
  out = tmp_path / "demo"
  assert cli.main(["demo", "-o", str(out), "--weights", "random:0:0.125", "--size", "32",
                   "--iters", "3", "--quiet"]) == 0
  assert Image.open(out / "stylized.png").size == (32, 32)
  assert Image.open(out / "comparison.png").size == (96, 32)
  assert (out / "loss.png").stat().st_size > 1000
  text = capsys.readouterr().out
  assert "using generated images" in text and "random features: --tv-weight 1 (chosen" in text
  # On random features the TV weight is the one chosen for them, unless one was given.
  assert provenance.read_png_record(out / "stylized.png")["config"]["tv_weight"] == 1.0
  assert cli.main(["demo", "-o", str(out), "--weights", "random:0:0.125", "--size", "32",
                   "--iters", "1", "--quiet", "--tv-weight", "50"]) == 0
  assert provenance.read_png_record(out / "stylized.png")["config"]["tv_weight"] == 50.0


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


def _main(*args):
  """cli.main in this process: the exit code (argparse's SystemExit included)."""
  try:
    return cli.main(list(args))
  except SystemExit as e:
    return e.code


@pytest.mark.subprocess
def test_bad_inputs_exit_2_with_one_line(image_files, bad_inputs, tmp_path, capsys):
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
    assert _main("stylize", *args) == 2, args
    lines = [l for l in capsys.readouterr().err.splitlines() if "warning" not in l]
    assert len(lines) == 1 and message in lines[0], (args, lines)
  assert not any(p.name.startswith("out") for p in tmp_path.iterdir())
  # And in a real process: the exit status, and no traceback on stderr.
  proc = run_cli("stylize", *cases[1][0])
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert [l for l in proc.stderr.splitlines() if "warning" not in l] == [
      f"jaxstyle: error: {bad_inputs['text']}: not an image file (or a format Pillow cannot read)"]


def test_missing_weights_say_how_to_get_them(image_files, tmp_path, monkeypatch, capsys):
  content, style = map(str, image_files)
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", "")
  assert cli.main(["stylize", content, style, "-o", str(tmp_path / "o.png")]) == 2
  err = capsys.readouterr().err
  assert "no VGG19 weights" in err and "jaxstyle weights download" in err
  assert "--weights random" in err


@pytest.mark.subprocess
def test_offline_download_exits_2_quickly(tmp_path):
  proc = run_cli("weights", "download", "--dest", str(tmp_path / "w" / "vgg19.h5"),
                 "--url", "http://127.0.0.1:9/vgg19.h5", "--timeout", "3")
  assert proc.returncode == 2 and "download failed" in proc.stderr
  assert "jaxstyle weights convert" in proc.stderr
  assert not (tmp_path / "w").exists()


def test_non_finite_loss_saves_last_finite_image_and_exits_1(image_files, tmp_path, capsys):
  content, style = map(str, image_files)
  out = tmp_path / "out.png"
  assert cli.main(["stylize", content, style, "-o", str(out), *TINY, "--optimizer", "adam",
                   "--lr", "1e37"]) == 1
  err = capsys.readouterr().err
  assert "NaN or inf" in err and "out.last-finite.png" in err
  assert (tmp_path / "out.last-finite.png").exists() and not out.exists()


@pytest.mark.slow
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


def test_batch_zip_pairs_the_lists(image_files, tmp_path, capsys):
  content, style = image_files
  other = tmp_path / "other.png"
  Image.open(content).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(other)
  outdir = tmp_path / "zipped"
  # Four members, element by element (a list of one value repeats): not 2 x 4 x 1.
  assert cli.main(["batch", str(content), "--styles", str(style), str(other), str(style),
                   str(other), "--seeds", "0", "1", "2", "3", "--init", "noise", "--zip",
                   "-o", str(outdir), *TINY]) == 0
  names = sorted(p.name for p in outdir.iterdir())
  assert names == ["000_style_seed0.png", "001_other_seed1.png", "002_style_seed2.png",
                   "003_other_seed3.png"]
  assert "batch: 4 members (zip" in capsys.readouterr().out
  assert cli.main(["batch", str(content), "--styles", str(style), str(style), "--seeds", "0", "1",
                   "2", "--zip", "-o", str(tmp_path / "z"), *TINY]) == 2
  assert ("--zip: every list needs 1 or 3 values; got style=2, content_weight=1, "
          "style_weight=1, tv_weight=1, seed=3") in capsys.readouterr().err


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


# --- Paths a user takes that had no test -------------------------------------------------


def test_presets_lists_every_preset_and_shows_one(capsys):
  from jaxstyle import presets
  assert cli.main(["presets"]) == 0
  listed = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in listed] == list(presets.PRESETS)
  assert cli.main(["presets", "keras-example"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("keras-example\n") and "neural_style_transfer.py" in out
  settings = dict(line.split(None, 1) for line in out.split("settings:\n")[1].splitlines())
  expected = presets.get("keras-example").to_dict()
  assert settings == {f"--{k.replace('_', '-')}": str(v) for k, v in expected.items()}
  assert settings["--tv-beta"] == "2.5" and settings["--lbfgs-restart"] == "20"


def test_presets_unknown_name_exits_2(capsys):
  assert cli.main(["presets", "nope"]) == 2
  assert "--preset: expected one of gatys2016" in capsys.readouterr().err


def test_progress_bar_shows_iterations_loss_and_rate(image_files, tmp_path, capsys):
  content, style = image_files
  assert cli.main(["stylize", str(content), str(style), "-o", str(tmp_path / "o.png"),
                   *TINY[:-1]]) == 0  # Without --quiet.
  err = capsys.readouterr().err
  last = err.replace("\r", "\n").strip().splitlines()[-1]
  assert last.startswith("stylize") and "4/4" in last and "loss=" in last, last
  assert "it/s" in last or "s/it" in last, last


def _reproduce(original, again, *extra):
  return cli.main(["reproduce", str(original), "-o", str(again), "--quiet", *extra])


def test_reproduce_reports_a_different_result_and_exits_1(image_files, tmp_path, capsys):
  from PIL import PngImagePlugin
  content, style = image_files
  out = tmp_path / "out.png"
  assert cli.main(["stylize", str(content), str(style), "-o", str(out), *TINY]) == 0
  # The same record, one pixel changed: the rerun cannot be byte-identical.
  image = np.asarray(Image.open(out)).copy()
  image[0, 0] = 255 - image[0, 0]
  info = PngImagePlugin.PngInfo()
  for key, value in Image.open(out).text.items():
    info.add_text(key, value)
  Image.fromarray(image).save(out, pnginfo=info)
  capsys.readouterr()
  assert _reproduce(out, tmp_path / "again.png") == 1
  text = capsys.readouterr().out
  assert "NOT byte-identical" in text
  changed = np.abs(255 - 2 * image[0, 0].astype(int)).max()  # |new − old| at that pixel.
  assert f"largest pixel difference {changed}; a different machine" in text, text
  # A record written by another jaxstyle version: the message names the change.
  record = json.loads(Image.open(out).text[provenance.PNG_KEY])
  record["versions"]["jaxstyle"] = "0.0.1"
  info = PngImagePlugin.PngInfo()
  info.add_text(provenance.PNG_KEY, json.dumps(record))
  Image.fromarray(image).save(out, pnginfo=info)
  assert _reproduce(out, tmp_path / "again.png") == 1
  now = jaxstyle.__version__
  assert f"recorded with other versions: jaxstyle 0.0.1 -> {now})" in capsys.readouterr().out


def test_reproduce_refuses_other_weights_and_unrecorded_pngs(image_files, narrow_h5, tmp_path,
                                                             capsys):
  import jaxstyle
  from tests.conftest import NARROW
  content, style = image_files
  out = tmp_path / "out.png"
  assert cli.main(["stylize", str(content), str(style), "-o", str(out), *TINY[2:],
                   "--weights", str(narrow_h5)]) == 0
  other = tmp_path / "other.h5"
  jaxstyle.save_weights(other, jaxstyle.random_weights(seed=1, width_scale=NARROW).params,
                        convention="caffe", source_name="random", source_sha256="1" * 64)
  capsys.readouterr()
  assert _reproduce(out, tmp_path / "again.png", "--weights", str(other)) == 2
  err = capsys.readouterr().err
  recorded = jaxstyle.load_weights(narrow_h5).sha256
  given = jaxstyle.load_weights(other).sha256
  assert f"(sha256 {given}) are not the recorded" in err and f"(sha256 {recorded})" in err
  assert not (tmp_path / "again.png").exists()
  plain = tmp_path / "plain.png"
  Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(plain)
  assert _reproduce(plain, tmp_path / "again.png") == 2
  assert "plain.png: has no jaxstyle provenance record" in capsys.readouterr().err


@pytest.fixture
def program_sizes(monkeypatch):
  """The member count of every program run (jaxstyle.transfer._run calls), in order."""
  from jaxstyle import transfer
  sizes, real = [], transfer._run

  def counting(configs, *args, **kwargs):
    sizes.append(len(configs))
    return real(configs, *args, **kwargs)

  monkeypatch.setattr(transfer, "_run", counting)
  return sizes


def test_batch_weight_lists_max_members_and_a_failing_member(image_files, tmp_path, capsys,
                                                             program_sizes):
  content, style = image_files
  outdir = tmp_path / "runs"
  # 1 style x 2 style weights x 2 TV weights, at most 3 per program; TV 1e38 overflows.
  assert cli.main(["batch", str(content), "--styles", str(style), "--style-weight", "100",
                   "1e5", "--tv-weight", "1", "1e38", "--max-members", "3", "-o", str(outdir),
                   *TINY]) == 1
  assert program_sizes == [3, 3]  # 4 members: 3, then 1 padded to the same program shape.
  names = sorted(p.name for p in outdir.iterdir())
  assert names == ["000_style_sw100_tv1.png", "001_style_sw100_tv1e+38.failed.png",
                   "002_style_sw100000_tv1.png", "003_style_sw100000_tv1e+38.failed.png"]
  records = {n: provenance.read_png_record(outdir / n) for n in names}
  assert [(r["config"]["style_weight"], r["config"]["tv_weight"]) for r in records.values()] == [
      (100.0, 1.0), (100.0, 1e38), (1e5, 1.0), (1e5, 1e38)]
  out = capsys.readouterr().out
  assert out.count("FAILED") == 2 and "objective is inf at the initial image" in out
  low, high = (np.asarray(Image.open(outdir / n), float) for n in (names[0], names[2]))
  assert np.abs(low - high).mean() > 1  # The style weight changed the result.


def test_sweep_max_members_splits_each_program(tmp_path, program_sizes):
  from jaxstyle import sweep
  from tests.conftest import smooth_image
  Image.fromarray(smooth_image(40, 48, seed=1)).save(tmp_path / "photo.png")
  Image.fromarray(smooth_image(56, 40, seed=2)).save(tmp_path / "a.png")
  path = tmp_path / "sweep.toml"
  path.write_text('content = "photo.png"\nstyle = "a.png"\n[base]\nsize = 32\niters = 2\n'
                  'weights = "random:0:0.125"\n[axes]\nseed = [0, 1, 2]\n')
  assert cli.main(["sweep", str(path), "-o", str(tmp_path / "run"), "--max-members", "2",
                   "--quiet"]) == 0
  assert program_sizes == [2, 2]
  records = sweep.read_records(tmp_path / "run")
  assert sorted(r["seed"] for r in records) == [0, 1, 2]
  assert {r["members_in_program"] for r in records} == {2}


@pytest.mark.slow
def test_demo_uses_the_sample_images(shared_images, tmp_path, monkeypatch, capsys):
  monkeypatch.delenv("JAXSTYLE_IMAGES", raising=False)
  out = tmp_path / "demo"
  assert cli.main(["demo", "-o", str(out), "--weights", "random:0:0.125", "--size", "32",
                   "--iters", "2", "--quiet"]) == 0
  text = capsys.readouterr().out
  content, style = shared_images
  assert f"demo: content {content}, style {style}" in text and "RANDOM features" in text
  photo = Image.open(content)
  result = Image.open(out / "stylized.png")
  assert max(result.size) == 32  # The sample photo's aspect ratio, at --size.
  assert abs(result.size[0] / result.size[1] - photo.size[0] / photo.size[1]) < 0.05


@pytest.mark.parametrize("network", ["vgg19", "vgg16"])
def test_weights_download_checks_the_md5_converts_and_info_names_the_network(
    network, http_server, tmp_path, monkeypatch, capsys):
  import hashlib

  import jaxstyle
  from jaxstyle.vgg import convert
  from tests.conftest import NARROW
  from tests.test_convert import write_keras_h5
  root, base = http_server
  published = convert.KERAS_FILES[network]
  params = jaxstyle.random_weights(seed=3, width_scale=NARROW, network=network).params
  served = write_keras_h5(root / published.filename, params)
  # The published md5 is for the real file; expect the served one's instead.
  md5 = hashlib.md5(served.read_bytes()).hexdigest()
  monkeypatch.setitem(convert.KERAS_FILES, network, published._replace(md5=md5))
  dest = tmp_path / "weights" / f"{network}.h5"
  assert cli.main(["weights", "download", "--network", network, "--url",
                   f"{base}/{published.filename}", "--dest", str(dest)]) == 0
  assert f"downloaded, verified (md5 {md5}) and converted -> {dest}" in capsys.readouterr().out
  assert cli.main(["weights", "info", str(dest)]) == 0
  info = capsys.readouterr().out
  assert f"network:     {network.upper()}, width scale 0.125" in info
  assert f"source:      {published.filename}" in info
  loaded = jaxstyle.load_weights(dest, network=network)
  np.testing.assert_array_equal(loaded.params["block3_conv2"]["kernel"],
                                params["block3_conv2"]["kernel"])
  # A served file that is not the published one (another md5) is refused, leaving nothing.
  monkeypatch.setitem(convert.KERAS_FILES, network, published._replace(md5="0" * 32))
  again = tmp_path / "again" / f"{network}.h5"
  assert cli.main(["weights", "download", "--network", network, "--url",
                   f"{base}/{published.filename}", "--dest", str(again)]) == 2
  assert f"has md5 {md5}, expected {'0' * 32}" in capsys.readouterr().err
  assert not again.parent.exists()


def test_batch_distributed_runs_and_writes_only_this_process_share(image_files, tmp_path,
                                                                    monkeypatch, capsys):
  from jaxstyle import distributed
  content, style = image_files
  # Process 1 of 2 (the two-process mechanism itself: test_distributed.py).
  monkeypatch.setattr(distributed, "initialize", lambda spec: None)
  monkeypatch.setattr(distributed, "process", lambda: (1, 2))
  outdir = tmp_path / "share"
  assert cli.main(["batch", str(content), "--styles", str(style), "--seeds", "0", "1", "2",
                   "--init", "noise", "-o", str(outdir), "--distributed", "auto", *TINY]) == 0
  assert sorted(p.name for p in outdir.iterdir()) == ["001_style_seed1.png"]
  assert provenance.read_png_record(outdir / "001_style_seed1.png")["config"]["seed"] == 1


def test_weights_download_gives_up_after_timeout(tmp_path, capsys):
  import http.server
  import threading
  import time as clock

  class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
      clock.sleep(2)  # Longer than --timeout 0.5, far shorter than the default 10 s.
      try:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"too late")
      except OSError:  # The client gave up long ago, as it should.
        pass

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  dest = tmp_path / "w" / "vgg19.h5"
  try:
    code = cli.main(["weights", "download", "--url",
                     f"http://127.0.0.1:{server.server_address[1]}/x.h5", "--timeout", "0.5",
                     "--dest", str(dest)])
  finally:
    server.shutdown()
  # An ignored timeout would wait for the answer and refuse it for its md5 instead.
  assert code == 2 and "download failed (timed out)" in capsys.readouterr().err
  assert not dest.parent.exists()


def test_every_argument_of_every_command_says_what_it_is():
  import argparse

  def walk(parser, path):
    for action in parser._actions:
      if isinstance(action, argparse._SubParsersAction):
        for name, sub in action.choices.items():
          yield from walk(sub, path + [name])
      elif action.dest != "help":
        yield " ".join(path), action
  missing = [f"{path} {action.option_strings or action.dest}"
             for path, action in walk(cli.build_parser(), ["jaxstyle"]) if not action.help]
  assert not missing, missing


@pytest.mark.subprocess
def test_version_classic_option_names_and_a_closed_pipe(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["--version"])
  assert e.value.code == 0 and capsys.readouterr().out == f"jaxstyle {jaxstyle.__version__}\n"
  with pytest.raises(SystemExit) as e:
    cli.main(["stylize", "a.png", "b.png", "-o", "c.png", "--original-colors"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert "unrecognized arguments: --original-colors; --original-colors is --preserve-colors " \
         "luminance here" in err and len(err.splitlines()) == 1
  # `jaxstyle presets NAME | head`: the reader goes away before the output is written.
  proc = subprocess.Popen([sys.executable, "-m", "jaxstyle.cli", "presets", "gatys2016"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  proc.stdout.close()
  err = proc.stderr.read().decode()
  assert proc.wait() == cli.EXIT_BROKEN_PIPE and err == "", err


@pytest.mark.slow
def test_a_run_whose_loss_rose_says_so_and_names_the_fix(image_files, tmp_path, capsys):
  content, style = image_files
  # Adam with a huge step; the PyTorch tutorial's unit L-BFGS steps without a linesearch
  # (here on a photo that is its own style, so that the objective starts small).
  for images, extra, fix in (
      ((content, style), ["--optimizer", "adam", "--lr", "3000"], "try a smaller --lr"),
      ((content, content), ["--preset", "pytorch-tutorial", "--iters", "10", "--size", "48"],
       "try --lbfgs-linesearch zoom")):
    assert cli.main(["stylize", *map(str, images), "-o", str(tmp_path / "o.png"), *TINY,
                     *extra]) == 0
    captured = capsys.readouterr()
    initial, final = map(float, captured.out.split("loss ")[1].split(",")[0].split(" -> "))
    assert final > pixels.DIVERGED * initial
    warning = [line for line in captured.err.splitlines() if "the loss ended" in line]
    assert len(warning) == 1 and f"{final / initial:.3g}x above where it started" in warning[0]
    assert fix in warning[0], warning
  assert cli.main(["stylize", str(content), str(style), "-o", str(tmp_path / "o.png"),
                   *TINY]) == 0
  assert "the loss ended" not in capsys.readouterr().err  # A run that descends: nothing.


def test_the_command_table_is_the_parser_and_the_compile_cache_list(tmp_path, monkeypatch):
  import argparse
  from jaxstyle.cli import table

  names = [c.name for c in table.COMMANDS]
  assert len(names) == len(set(names))
  parser = cli.build_parser()
  for command in table.COMMANDS:
    sub = parser
    for word in command.name.split():
      sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    output = next((a for a in sub._actions if "-o" in a.option_strings), None)
    assert (output.metavar if output else None) == (command.output or (None,))[0], command.name
    options = {o for a in sub._actions for o in a.option_strings}
    for shared, wanted in (("--quiet", command.quiet), ("--preset", command.preset),
                           ("--distributed", command.distributed is not None)):
      assert (shared in options) == wanted, (command.name, shared)
  # The compile cache: turned on by a command that compiles (its directory appears), not by one
  # that does not.
  assert "stylize" in table.COMPILING and "presets" not in table.COMPILING
  calls = []
  monkeypatch.setattr("jaxstyle.cache.enable", lambda *a: calls.append(a))
  assert cli.main(["presets"]) == 0 and calls == []
  assert cli.main(["stylize", "missing.png", "missing.png", "-o", str(tmp_path / "o.png")]) == 2
  assert calls == [()]
