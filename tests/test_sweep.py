"""Sweeps declared as data: parsing, records, resuming, contact sheet."""

import json

import pytest
from PIL import Image

import jaxstyle
from jaxstyle import sweep
from tests.conftest import smooth_image


@pytest.fixture
def sweep_file(tmp_path):
  Image.fromarray(smooth_image(40, 48, seed=1)).save(tmp_path / "photo.png")
  Image.fromarray(smooth_image(56, 40, seed=2)).save(tmp_path / "a.png")
  Image.fromarray(smooth_image(30, 60, seed=3)).save(tmp_path / "b.png")
  path = tmp_path / "sweep.toml"
  path.write_text("""
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
  return path


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
  assert set(r["versions"]) == {"jaxstyle", "jax", "jaxlib"} and r["content_sha256"]
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
  assert Image.open(tmp_path / "sheet.png").size == (170 + 2 * 40, 28 + 2 * 58 + 16)
  assert sweep.plot_curves(spec, rundir, tmp_path / "curves.png")


def test_sweep_command_writes_records_sheet_and_curves(sweep_file, tmp_path, capsys):
  from jaxstyle import cli
  rundir = tmp_path / "cli-run"
  assert cli.main(["sweep", str(sweep_file), "-o", str(rundir), "--quiet"]) == 0
  assert len(sweep.read_records(rundir)) == 4
  assert (rundir / "contact_sheet.png").exists() and (rundir / "loss_curves.png").exists()
  assert "4 records" in capsys.readouterr().out
