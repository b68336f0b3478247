"""Every command's memory estimate against its measured peak, at two sizes each.

    python benchmarks/bench_memory_nets.py [--no-append]

Each case runs one ``jaxstyle`` command in a fresh subprocess through
``python -m jaxstyle.memory``, which reports the process's peak resident
memory (VmHWM) and the estimate the command made before allocating (the one it
refuses a size by), with the process's resident memory at that moment. Error
= (resident + estimate − peak) / peak, the total the machine sees; the table
also gives the estimate against the run's own memory (peak − resident).
Random weights (no trained ones here), random 800x600 photos, one step or a
few iterations: memory does not depend on the weights' values. The network
models in jaxstyle/memory.py were fitted to runs like these (widths 0.25-1,
256-2048 px); this table is their check, and tests/test_memory_estimates.py
runs one case per command. Expected runtime: about 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish  # noqa: E402


def inputs(root: Path) -> dict:
  """The photos, style images, clip, sweep file and models the cases use, made under root."""
  from flax import nnx

  import jaxstyle
  from jaxstyle.nets import models
  from jaxstyle.nets.adain import AdaINNet, AdaINSpec
  from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec
  rng = np.random.default_rng(0)
  (root / "data").mkdir()
  (root / "styles").mkdir()
  (root / "clip").mkdir()
  photo = rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)
  Image.fromarray(photo).save(root / "photo.png")
  for i in range(4):
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(
        root / "data" / f"{i}.png")
  style = rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)
  Image.fromarray(style).save(root / "style.png")
  Image.fromarray(style).save(root / "styles" / "a.png")
  for t in range(8):  # A pan, 8 frames.
    Image.fromarray(photo[t:t + 540, 2 * t:2 * t + 720]).save(root / "clip" / f"{t}.png")
  for w in (0.25, 1.0):
    models.save_model(root / f"johnson{w}", JohnsonNet(JohnsonSpec(width=w), rngs=nnx.Rngs(0)),
                      styles=["s"], record={})
  weights = jaxstyle.random_weights(seed=0, width_scale=0.25)
  models.save_model(root / "adain0.25", AdaINNet(AdaINSpec(0.25, "caffe"), weights.params,
                                                 rngs=nnx.Rngs(0)), styles=[], record={})
  (root / "sweep.toml").write_text(
      f'content = "{root / "photo.png"}"\nstyle = "{root / "style.png"}"\n[base]\n'
      'iters = 2\nweights = "random:0:0.5"\nSIZE\n[axes]\nstyle_weight = [1e3, 1e4]\n')
  return {"root": root}


def cases(root: Path) -> list[tuple[str, list[str]]]:
  """(name, jaxstyle argv) of every case; two sizes per command."""
  r = str(root)
  out = []
  for side in (1024, 2048):
    out.append((f"apply, Johnson width 0.25, --size {side}",
                ["apply", f"{r}/johnson0.25", f"{r}/photo.png", "-o", f"{r}/o", "--size", str(side)]))
  for side in (512, 1024):
    out.append((f"apply, Johnson width 1, --size {side}",
                ["apply", f"{r}/johnson1.0", f"{r}/photo.png", "-o", f"{r}/o", "--size", str(side)]))
  for side in (512, 1024):
    out.append((f"apply, AdaIN width 0.25, --size {side}",
                ["apply", f"{r}/adain0.25", f"{r}/photo.png", "-o", f"{r}/o", "--size", str(side),
                 "--style-image", f"{r}/style.png", "--style-size", "256"]))
  for side in (1024, 2048):
    out.append((f"apply, AdaIN width 0.25, --style-size {side}",
                ["apply", f"{r}/adain0.25", f"{r}/photo.png", "-o", f"{r}/o", "--size", "256",
                 "--style-image", f"{r}/style.png", "--style-size", str(side)]))
  for crop in (256, 512):
    out.append((f"train, width 0.25, VGG16 width 0.25, batch 2, --crop {crop}",
                ["train", f"{r}/style.png", "--data", f"{r}/data", "-o", f"{r}/m", "--width",
                 "0.25", "--weights", "random:0:0.25", "--batch", "2", "--crop", str(crop),
                 "--steps", "1", "--sample-every", "0", "--checkpoint-every", "0", "--quiet"]))
  for crop in (256, 512):
    out.append((f"train-adain, VGG19 width 0.25, batch 2, --crop {crop}",
                ["train-adain", "--styles", f"{r}/styles", "--data", f"{r}/data", "-o", f"{r}/m",
                 "--weights", "random:0:0.25", "--batch", "2", "--crop", str(crop), "--steps",
                 "1", "--sample-every", "0", "--checkpoint-every", "0", "--quiet"]))
  for side in (512, 1024):
    out.append((f"video --model, Johnson width 0.25, 8 frames, --size {side}",
                ["video", f"{r}/clip", "-o", f"{r}/v", "--model", f"{r}/johnson0.25", "--size",
                 str(side), "--quiet"]))
  for side in (256, 512):
    out.append((f"video --style, VGG19 width 0.5, 8 frames x 2 iterations, --size {side}",
                ["video", f"{r}/clip", "-o", f"{r}/v", "--style", f"{r}/style.png", "--size",
                 str(side), "--iters", "2", "--weights", "random:0:0.5", "--quiet"]))
  for side in (256, 512):
    out.append((f"batch, VGG19 width 0.5, 2 members x 2 iterations, --size {side}",
                ["batch", f"{r}/photo.png", "--styles", f"{r}/style.png", "--style-weight", "1e3",
                 "1e4", "-o", f"{r}/b", "--size", str(side), "--iters", "2", "--weights",
                 "random:0:0.5", "--quiet"]))
  for side in (256, 512):
    out.append((f"sweep, VGG19 width 0.5, 2 members x 2 iterations, size {side}",
                ["sweep", f"{r}/sweep{side}.toml", "-o", f"{r}/s{side}", "--quiet"]))
    text = (root / "sweep.toml").read_text().replace("SIZE", f"size = {side}")
    (root / f"sweep{side}.toml").write_text(text)
  return out


def measure(argv: list[str], cwd: Path) -> dict:
  """One command's peak and estimates, run by ``python -m jaxstyle.memory``."""
  import shutil
  for name in ("o", "m", "v", "b"):
    shutil.rmtree(cwd / name, ignore_errors=True)
  # No compilation cache: every program compiles, as on a first run (the worst case, and
  # what the estimates were fitted to; a warm cache lowers the peak by the compiler's share).
  env = {**os.environ, "JAXSTYLE_CACHE_DIR": ""}
  proc = subprocess.run([sys.executable, "-m", "jaxstyle.memory", *argv], cwd=cwd,
                        capture_output=True, text=True, env=env)
  last = (proc.stdout.strip().splitlines() or [""])[-1]
  if proc.returncode != 0 or not last.startswith("{"):
    raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
  return json.loads(last)


def estimate_of(result: dict, option: str) -> dict:
  """The estimate the command made for ``option`` (AdaIN's apply makes one per option)."""
  return next(e for e in result["estimates"] if e["option"] == option)


def error(result: dict, option: str) -> tuple[float, float]:
  """(total error, own-memory error) of the command's estimate for ``option``, as fractions:
  the estimate is of what the run adds to the process's resident memory at the check."""
  estimate = estimate_of(result, option)
  own = result["peak"] - estimate["resident"]
  return ((estimate["resident"] + estimate["bytes"] - result["peak"]) / result["peak"],
          (estimate["bytes"] - own) / own)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  mib = float(1 << 20)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    inputs(root)
    for name, command in cases(root):
      result = measure(command, root)
      option = name.split(", ")[-1].split()[0]  # The option the case varies.
      option = option if option.startswith("--") else "--size"
      total, own = error(result, option)
      rows.append((name, estimate_of(result, option)["resident"] / mib, result["peak"] / mib,
                   estimate_of(result, option)["bytes"] / mib, total, own))
      print(rows[-1], flush=True)
  report = heading("Memory of every command: estimate against measured peak", "bench_memory_nets.py",
                   argv, "each case a fresh process (`python -m jaxstyle.memory jaxstyle ...`, no "
                   "compilation cache); MiB; error = (resident + estimate - peak) / peak, "
                   "resident = the process's memory when the command made its estimate; own = "
                   "against peak - resident")
  report += ("| case | resident at the check | peak | estimate | error | error (own) |\n"
             "|---|---|---|---|---|---|\n")
  for name, resident, peak, estimate, total, own in rows:
    report += (f"| {name} | {resident:.0f} | {peak:.0f} | {estimate:.0f} | {total:+.0%} | "
               f"{own:+.0%} |\n")
  worst = max(abs(r[4]) for r in rows)
  report += f"\nLargest error against the peak: {worst:.0%}.\n"
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
