"""Sweeps declared as data: parsing, records, resuming, contact sheet."""

import json

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import provenance, sweep
from tests.conftest import smooth_image
from tests.interrupt import run_killed


def write_sweep(folder, text: str):
  """``folder``/sweep.toml holding ``text``, beside its inputs photo.png and a.png."""
  Image.fromarray(smooth_image(40, 48, seed=1)).save(folder / "photo.png")
  Image.fromarray(smooth_image(56, 40, seed=2)).save(folder / "a.png")
  path = folder / "sweep.toml"
  path.write_text(text)
  return path


@pytest.fixture
def sweep_file(tmp_path):
  Image.fromarray(smooth_image(30, 60, seed=3)).save(tmp_path / "b.png")
  return write_sweep(tmp_path, """
content = "photo.png"
[base]
size = 32
iters = 3
weights = "random:0:0.125"
init = "noise"
[axes]
style = ["a.png", "b.png"]
seed = [0, 1]
""")


def test_product_and_zip_members(sweep_file):
  spec = sweep.load_sweep(sweep_file)
  assert [(m[0]["style"], m[0]["seed"]) for m in spec.members] == [
      ("a.png", 0), ("a.png", 1), ("b.png", 0), ("b.png", 1)]
  assert spec.members[3][1] == str(sweep_file.parent / "b.png")  # Relative to the file.
  assert spec.members[1][2].seed == 1 and spec.members[1][2].size == 32
  sweep_file.write_text(sweep_file.read_text().replace('[base]', 'mode = "zip"\n[base]'))
  assert [m[0]["seed"] for m in sweep.load_sweep(sweep_file).members] == [0, 1]


@pytest.mark.parametrize("text, message", [
    ('content = "p.png"\nstyle = "s.png"\n[axes]\nstyle_wieght = [1.0]', "axis 'style_wieght' is not"),
    ('content = "p.png"\nstyle = "s.png"\nmode = "grid"', "mode must be 'product' or 'zip'"),
    ('content = "p.png"\nmode = "zip"\n[axes]\nstyle = ["a", "b"]\nseed = [1, 2, 3]',
     "zip mode needs axes of equal length"),
    ('content = "p.png"\n[axes]\nseed = [1]', "give the style image"),
    ('content = "p.png"\nstyle = "s.png"\n[base]\nsize = 8', "--size: expected at least 16"),
    ('content = [', "not valid TOML"),
])
def test_bad_sweep_files_are_explained(tmp_path, text, message):
  path = tmp_path / "bad.toml"
  path.write_text(text)
  with pytest.raises(jaxstyle.ConfigError, match=message):
    sweep.load_sweep(path)


def test_records_resume_and_sheet(sweep_file, tmp_path):
  spec = sweep.load_sweep(sweep_file)
  rundir = tmp_path / "run"
  records = sweep.run_sweep(spec, rundir, log=lambda *_: None)
  assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
  r = records[0]
  assert r["members_in_program"] == 4  # Styles and seeds differ: one batched program.
  assert r["config"]["size"] == 32 and r["seed"] == 0 and r["iterations"] == 3
  assert set(r["final"]) == {"total", "content", "style", "tv"} and len(r["history"]["total"]) == 3
  assert r["weights"]["random"] and r["versions"]["jaxstyle"] == jaxstyle.__version__
  # What VGG ran, as the member's PNG records it: a 32 px narrow objective is not timed.
  assert r["convolutions"] == {"conv": "auto", "winograd": {"27x32": []}}
  assert r["versions"] == provenance.versions() and r["content_sha256"]  # Python too.
  assert (rundir / r["output"]).exists() and len({x["id"] for x in records}) == 4

  # A crash: the last record half-written, its image never made.
  lines = (rundir / sweep.RECORDS).read_text().splitlines()
  (rundir / sweep.RECORDS).write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
  messages = []
  records = sweep.run_sweep(spec, rundir, log=messages.append)
  assert "3 already recorded, 1 to run" in messages[0]
  assert sorted(x["id"] for x in records) == sorted(json.loads(l)["id"] for l in lines)
  assert sweep.run_sweep(spec, rundir, log=messages.append) == records  # Nothing left to do.

  sweep.contact_sheet(spec, rundir, tmp_path / "sheet.png", cell=40)
  assert Image.open(tmp_path / "sheet.png").size == (170 + 2 * 40, 28 + 2 * (40 + 28) + 16)
  assert sweep.plot_curves(spec, rundir, tmp_path / "curves.png")


def test_sweep_command_writes_records_sheet_and_curves(sweep_file, tmp_path, capsys):
  from jaxstyle import cli
  rundir = tmp_path / "cli-run"
  assert cli.main(["sweep", str(sweep_file), "-o", str(rundir), "--quiet"]) == 0
  assert len(sweep.read_records(rundir)) == 4
  assert (rundir / "contact_sheet.png").exists() and (rundir / "loss_curves.png").exists()
  assert "4 records" in capsys.readouterr().out


@pytest.mark.slow
def test_failing_members_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
  # Member 1 has no style image yet; member 2 diverges (Adam with an absurd step);
  # member 3 runs out of memory (simulated: XLA's error, raised for lr 2).
  path = write_sweep(tmp_path, """
content = "photo.png"
mode = "zip"
[base]
size = 32
iters = 3
weights = "random:0:0.125"
optimizer = "adam"
[axes]
style = ["a.png", "late.png", "a.png", "a.png"]
lr = [1.0, 1.0, 1e37, 2.0]
""")
  from jaxstyle import transfer
  real = transfer.stylize_batch

  def out_of_memory_for_lr_2(content, styles, configs, **kwargs):
    if any(c.lr == 2.0 for c in configs):
      raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 99 GiB")
    return real(content, styles, configs, **kwargs)

  import jax
  monkeypatch.setattr(transfer, "stylize_batch", out_of_memory_for_lr_2)
  rundir = tmp_path / "run"
  records = sweep.run_sweep(sweep.load_sweep(path), rundir, log=lambda *_: None)
  by_lr_style = {(r["config"]["lr"], r["axes"]["style"]): r for r in records}
  assert by_lr_style[(1.0, "a.png")]["status"] == "ok"
  missing = by_lr_style[(1.0, "late.png")]
  assert missing["status"] == "failed" and "late.png: no such file" in missing["error"]
  nan = by_lr_style[(1e37, "a.png")]
  assert nan["status"] == "failed" and "NaN or inf" in nan["error"]
  oom = by_lr_style[(2.0, "a.png")]
  assert oom["status"] == "failed" and oom["error"].startswith("out of memory")

  # A rerun retries only what failed; the style now exists, so that member succeeds.
  monkeypatch.setattr(transfer, "stylize_batch", real)
  Image.fromarray(smooth_image(56, 40, seed=3)).save(tmp_path / "late.png")
  messages = []
  records = sweep.run_sweep(sweep.load_sweep(path), rundir, log=messages.append)
  assert "1 already recorded, 3 to run" in messages[0]
  latest = {}
  for r in records:  # Later records of a member supersede earlier ones.
    latest[(r["config"]["lr"], r["axes"]["style"])] = r["status"]
  assert latest == {(1.0, "a.png"): "ok", (1.0, "late.png"): "ok", (1e37, "a.png"): "failed",
                    (2.0, "a.png"): "ok"}
  sweep.contact_sheet(sweep.load_sweep(path), rundir, tmp_path / "sheet.png", cell=40)
  # The same records with every status "ok": the two sheets differ by the FAILED mark
  # alone, which must lie in the failed member's cell (column 2 of 4) and be red.
  lines = (rundir / sweep.RECORDS).read_text().splitlines()
  (rundir / sweep.RECORDS).write_text("".join(
      json.dumps({**json.loads(l), "status": "ok"}) + "\n" for l in lines))
  sweep.contact_sheet(sweep.load_sweep(path), rundir, tmp_path / "sheet_ok.png", cell=40)
  marked, plain = (np.asarray(Image.open(tmp_path / n).convert("RGB")).astype(int)
                   for n in ("sheet.png", "sheet_ok.png"))
  rows, cols = np.nonzero(np.any(marked != plain, axis=-1))
  assert len(rows) > 20 and {(c - 8) // 40 for c in cols} == {2}
  # Red ink, antialiased: its edge pixels blend with the image below (measured: 86% red).
  red = marked[rows, cols, 0] > marked[rows, cols, 1:].max(-1) + 30
  assert red.mean() > 0.75, red.mean()


@pytest.mark.slow
def test_a_sweep_killed_half_way_finishes_on_rerun(tmp_path):
  # tv_beta shapes the program: one program per member, so records arrive one by one.
  path = write_sweep(tmp_path, 'content = "photo.png"\nstyle = "a.png"\n[base]\nsize = 32\n'
                     'iters = 5\nweights = "random:0:0.125"\n[axes]\ntv_beta = [2.0, 2.1]\n')
  rundir = tmp_path / "run"
  # SIGKILL right after the first record is appended (tests/interrupt.py): no race.
  run_killed("record", 1, "sweep", str(path), "-o", str(rundir), "--quiet")
  before = sweep.read_records(rundir)
  assert [r["config"]["tv_beta"] for r in before] == [2.0]
  messages = []
  records = sweep.run_sweep(sweep.load_sweep(path), rundir, log=messages.append)
  assert "1 already recorded, 1 to run" in messages[0]
  assert sorted(r["config"]["tv_beta"] for r in records) == [2.0, 2.1]
  assert all(r["status"] == "ok" for r in records)


@pytest.mark.slow
def test_a_sweep_killed_between_sub_batches_keeps_the_finished_one(tmp_path):
  # Three members of one program, run two at a time: sub-batches {0, 1} and {2 (+ a pad)}.
  path = write_sweep(tmp_path, 'content = "photo.png"\nstyle = "a.png"\n[base]\nsize = 32\n'
                     'iters = 3\nweights = "random:0:0.125"\n[axes]\nseed = [0, 1, 2]\n')
  rundir = tmp_path / "run"
  # SIGKILL as the second sub-batch's program is about to run (one program for the whole
  # group would never get there: the run would end, and exit 0).
  run_killed("batch-start", 2, "sweep", str(path), "-o", str(rundir), "--max-members", "2",
             "--quiet")
  before = sweep.read_records(rundir)
  assert [r["seed"] for r in before] == [0, 1]  # Recorded, PNGs written, before the kill.
  assert all((rundir / r["output"]).exists() for r in before)
  messages = []
  records = sweep.run_sweep(sweep.load_sweep(path), rundir, max_members=2,
                            log=messages.append)
  assert "2 already recorded, 1 to run" in messages[0]
  assert sorted(r["seed"] for r in records) == [0, 1, 2]
  assert [r["members_in_program"] for r in records] == [2, 2, 1]  # The rerun: one left.
