"""`jaxstyle apply` end to end, shell to PNG, against pytorch/examples' `neural_style.py eval`.

    python benchmarks/bench_apply.py --torch-python /tmp/torchenv/bin/python [--size 512]

One photo (a sample photo from ../shared/images cropped to ``--size``
square, else a generated one) and one full-width TransformerNet that torch
saves (seed 0) and ``jaxstyle models convert`` imports, so both sides run the
same weights. Each side runs as a fresh process, timed from the shell's
start to the PNG on disk (imports, model load, compile, forward, save):

* jaxstyle, cold: empty XLA compile cache and empty convolution-choice cache
  (what a user meets on the very first run: it also times each layer's
  algorithms);
* jaxstyle, warm: the same command again, both caches filled;
* jaxstyle, warm, ``--conv direct`` (no choice to read);
* torch: benchmarks/_torch_eval.py, ``neural_style.py eval``'s path.

Each row is the best of ``--repeats`` runs (the cold one is made cold each
time). The outputs are compared (max difference in 0-255 levels). Appends a
table to docs/BENCHMARKS.md unless --no-append.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish  # noqa: E402

HERE = Path(__file__).parent


def run(argv, env=None) -> float:
  start = time.perf_counter()
  proc = subprocess.run(argv, env=env, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f"bench_apply: {' '.join(map(str, argv))} failed: {proc.stderr[-800:]}")
  return seconds


def photo(path: Path, size: int) -> None:
  sample = HERE.parent.parent / "shared" / "images" / "content" / "chelsea.jpg"
  if sample.exists():
    img = Image.open(sample).convert("RGB")
    side = min(img.size)
    img = img.crop((0, 0, side, side)).resize((size, size), Image.LANCZOS)
  else:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
  img.save(path)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--torch-python", default=sys.executable)
  parser.add_argument("--size", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  work = Path(tempfile.mkdtemp())
  make = ("import sys, torch; sys.path.insert(0, 'tests/fixtures'); "
          "from make_transformer_fixture import TransformerNet; torch.manual_seed(0); "
          f"torch.save(TransformerNet(1.0).state_dict(), '{work}/net.pth')")
  subprocess.run([args.torch_python, "-c", make], cwd=HERE.parent, check=True)
  jaxstyle = [str(Path(sys.executable).parent / "jaxstyle")]  # The console script users run.
  run(jaxstyle + ["models", "convert", str(work / "net.pth"), str(work / "model")])
  photo(work / "photo.png", args.size)

  def caches(name: str) -> dict:
    return {**os.environ, "JAXSTYLE_CACHE_DIR": str(work / name / "xla"),
            "JAXSTYLE_CONV_CACHE_DIR": str(work / name / "convs")}

  apply = jaxstyle + ["apply", str(work / "model"), str(work / "photo.png")]
  rows = {}
  cold = []
  for i in range(args.repeats):
    shutil.rmtree(work / "cold", ignore_errors=True)
    cold.append(run(apply + ["-o", str(work / "out_cold")], caches("cold")))
  rows["jaxstyle apply, cold caches (compiles, times each layer's algorithms)"] = min(cold)
  rows["jaxstyle apply, warm caches"] = min(
      run(apply + ["-o", str(work / "out_warm")], caches("cold")) for _ in range(args.repeats))
  run(apply + ["-o", str(work / "out_direct"), "--conv", "direct"], caches("cold"))
  rows["jaxstyle apply --conv direct, warm compile cache"] = min(
      run(apply + ["-o", str(work / "out_direct"), "--conv", "direct"], caches("cold"))
      for _ in range(args.repeats))
  torch_cmd = [args.torch_python, str(HERE / "_torch_eval.py"), str(work / "net.pth"),
               str(work / "photo.png"), str(work / "torch.png")]
  rows["torch: neural_style.py eval's path"] = min(run(torch_cmd) for _ in range(args.repeats))
  ours = np.asarray(Image.open(work / "out_warm" / "photo.png"), np.int16)
  theirs = np.asarray(Image.open(work / "torch.png"), np.int16)
  torch_s = rows["torch: neural_style.py eval's path"]
  report = heading(
      "`jaxstyle apply` end to end against neural_style.py eval", "bench_apply.py", argv,
      f"one {args.size}x{args.size} photo, full-width TransformerNet saved by torch and converted; "
      f"each a fresh process, shell to PNG, best of {args.repeats}",
      f"outputs differ by at most {int(np.abs(ours - theirs).max())} of 255 "
      f"(mean {np.abs(ours - theirs).mean():.3f})")
  report += "| run | seconds | / torch |\n|---|---|---|\n"
  for name, seconds in rows.items():
    report += f"| {name} | {seconds:.2f} | {seconds / torch_s:.2f} |\n"
  publish(report, append=not args.no_append)
  shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
