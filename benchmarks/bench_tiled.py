"""Gatys beyond memory: ``stylize --tile`` against the untiled run, and a 4096 px stylization.

    python benchmarks/bench_tiled.py [--compare 768] [--big 4096] [--iters 3] [--no-append]

Each row is ``jaxstyle stylize`` in a fresh process (the sample photo and
painting, full-width **random** VGG19, L-BFGS, defaults otherwise), timed
from the shell, its peak memory the child's own peak resident set (VmHWM):

* at ``--compare`` px: untiled, and in tiles of 256 px; the last total
  loss of each (the tiled objective is the untiled one to float rounding, so
  a few iterations agree closely);
* at ``--big`` px with no ``--tile``: the run that does not fit whole
  (the memory estimate's verdict, printed) and is tiled on its own.

The last column is what stylize printed: iterations, losses, and the
seconds of the iterations apart from compiling.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish, run_cli  # noqa: E402
from PIL import Image  # noqa: E402

GIB = 2 ** 30


def stylize(content: Path, style: Path, out: Path, size: int, iters: int, *extra):
  seconds, peak, done = run_cli("stylize", str(content), str(style), "-o", str(out), "--size",
                                str(size), "--iters", str(iters), "--weights", "random",
                                "--quiet", *extra, script="bench_tiled")
  notes = [line.split("warning: ")[-1] for line in done.stderr.splitlines() if "tiles of" in line]
  wrote = [line for line in done.stdout.splitlines() if line.startswith("wrote ")][-1]
  return seconds, peak, notes, wrote.split(": ", 1)[-1]


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--compare", type=int, default=768)
  parser.add_argument("--big", type=int, default=4096)
  parser.add_argument("--iters", type=int, default=3)
  parser.add_argument("--square", action="store_true",
                      help="the photo's centre square, so that --big is BIG x BIG px")
  parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs",
                      help="every row's optimizer (default: stylize's, L-BFGS)")
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  from jaxstyle import demo, memory
  from jaxstyle.config import StyleConfig
  images = demo.sample_images_dir()
  if images is None:
    raise SystemExit("bench_tiled: the sample images (../shared/images) are needed")
  content, style = images / demo.CONTENT, images / demo.STYLE
  tmp = Path(tempfile.mkdtemp(prefix="bench-tiled-"))
  if args.square:
    photo = Image.open(content).convert("RGB")
    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    photo.crop((left, top, left + side, top + side)).save(tmp / "square.png")
    content = tmp / "square.png"
  rows = []
  for name, size, extra in ((f"{args.compare} px, whole", args.compare, ()),
                            (f"{args.compare} px, tiles of 256", args.compare, ("--tile", "256")),
                            (f"{args.big} px, tiled on its own", args.big, ())):
    out = tmp / f"{len(rows)}.png"
    seconds, peak, notes, said = stylize(content, style, out, size, args.iters,
                                         "--optimizer", args.optimizer, *extra)
    record = json.loads(Image.open(out).text["jaxstyle"])
    rows.append((name, seconds, peak, record["final_loss"]["total"], notes, said))
  whole = memory.estimate_bytes(StyleConfig(optimizer=args.optimizer), args.big, args.big)
  report = heading(
      "Gatys beyond memory: stylize --tile", "bench_tiled.py", argv,
      f"{demo.CONTENT}{' (its centre square)' if args.square else ''} with {demo.STYLE}, "
      "full-width RANDOM VGG19, "
      f"{'L-BFGS' if args.optimizer == 'lbfgs' else 'Adam'} {args.iters} "
      "iterations, each row one `jaxstyle stylize` process (start-up, targets, compiling, "
      "iterations, saving)",
      f"{args.big} px whole: estimated {whole / GIB:.0f} GiB; "
      + ("; ".join(rows[-1][4]) or "(no tiling message)")
  ) + ("| run | seconds, shell to PNG | peak memory (GiB) | final total loss | stylize said |\n"
         "|---|---|---|---|---|\n")
  for name, seconds, peak, total, _, said in rows:
    report += f"| {name} | {seconds:.0f} | {peak / GIB:.2f} | {total:.6g} | {said} |\n"
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
