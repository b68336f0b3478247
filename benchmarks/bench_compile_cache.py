"""Compile time of a cold run against a run that finds the persistent compilation cache.

    python benchmarks/bench_compile_cache.py                # 128 and 256 px
    python benchmarks/bench_compile_cache.py --sizes 128 --no-append

Expected runtime: about a minute on a 2-core CPU. For each size, runs
``jaxstyle stylize`` twice as separate processes with a fresh cache directory
(``$JAXSTYLE_CACHE_DIR``): full-width RANDOM VGG19, 5 L-BFGS iterations, and
reads the compile time each reports. Appends the table to docs/BENCHMARKS.md
(unless --no-append).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


import jaxstyle
from bench_core import heading, images, publish


def run(content, style, size: int, cache_dir: str, out: Path) -> tuple[float, float]:
  """(compile seconds the run reports, wall seconds of the whole process)."""
  start = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, "-m", "jaxstyle.cli", "stylize", str(content), str(style), "-o",
       str(out), "--weights", "random", "--size", str(size), "--iters", "5", "--quiet"],
      capture_output=True, text=True, check=True, env={**os.environ, "JAXSTYLE_CACHE_DIR": cache_dir})
  wall = time.perf_counter() - start
  return float(re.search(r"\+([\d.]+) s compile", proc.stdout)[1]), wall


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  lines = ["| size | compile, cold | compile, cached | process wall, cold | process wall, cached |",
           "|---|---|---|---|---|"]
  with tempfile.TemporaryDirectory() as folder:
    for size in args.sizes:
      content, style = (Path(folder) / "content.png", Path(folder) / "style.png")
      for path, image in zip((content, style), images(size)):
        jaxstyle.save_image(path, image)
      cache_dir = str(Path(folder) / f"xla{size}")
      cold = run(content, style, size, cache_dir, Path(folder) / "a.png")
      warm = run(content, style, size, cache_dir, Path(folder) / "b.png")
      lines.append(f"| {size} | {cold[0]:.1f} s | {warm[0]:.1f} s | {cold[1]:.1f} s | "
                   f"{warm[1]:.1f} s |")
  report = heading("Persistent compilation cache", "bench_compile_cache.py", argv,
                   "`jaxstyle stylize`, RANDOM full-width VGG19, 5 L-BFGS iterations; 'compile' "
                   "is what the run reports (tracing, lowering and compiling or loading the "
                   "programs)") + "\n".join(lines) + "\n"
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
