"""Networks on images larger than memory: ``jaxstyle apply --tile`` against the untiled forward.

    python benchmarks/bench_tiles.py [--compare 1024] [--big 12000x8000] [--tile 1024]

One full-width Johnson network (random init, its last layer given a grey bias
and a gain so that the output is a texture over the whole range: seams would
show). Every run is ``jaxstyle apply`` in a fresh process, timed from the
shell, its peak memory the child's own peak resident set (VmHWM):

* at ``--compare`` px (the sample photo astronaut.jpg, resized; both fit):
  untiled, and tiled at 256 px (many borders); the mean and largest
  difference between the two PNGs, and the seam score: the mean gradient
  magnitude across tile borders over the mean elsewhere (1.0: no seam);
* at ``--big`` (the same photo resized to W x H), tiled at ``--tile``: time,
  peak memory, and the memory the untiled forward would need (the estimate
  that makes apply choose tiles on its own).

Appends a table to docs/BENCHMARKS.md unless --no-append.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish, run_cli  # noqa: E402

GIB = 2 ** 30


def run_apply(model: Path, photo: Path, out: Path, *extra) -> tuple[float, int]:
  """``jaxstyle apply`` in a child process: its seconds and peak resident bytes."""
  seconds, peak, _ = run_cli("apply", str(model), str(photo), "-o", str(out), "--quiet", *extra,
                             script="bench_tiles")
  return seconds, peak


def seam_score(img_HxWx3: np.ndarray, tile: int) -> float:
  """Mean |difference| between neighbours across tile borders over the mean elsewhere."""
  x = img_HxWx3.astype(np.float64)
  dy = np.abs(np.diff(x, axis=0)).mean((1, 2))  # Row y: between rows y and y + 1.
  dx = np.abs(np.diff(x, axis=1)).mean((0, 2))
  across_y = np.zeros(dy.shape, bool)
  across_y[tile - 1::tile] = True
  across_x = np.zeros(dx.shape, bool)
  across_x[tile - 1::tile] = True
  border = np.concatenate([dy[across_y], dx[across_x]]).mean()
  elsewhere = np.concatenate([dy[~across_y], dx[~across_x]]).mean()
  return float(border / elsewhere)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--compare", type=int, default=1024)
  parser.add_argument("--big", default="12000x8000", help="W x H of the large photo")
  parser.add_argument("--tile", type=int, default=1024)
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)

  from flax import nnx

  from jaxstyle import demo, memory
  from jaxstyle.nets import models
  from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec

  images = demo.sample_images_dir()
  source = (Image.open(images / "content" / "astronaut.jpg").convert("RGB") if images
            else Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3),
                                                                    dtype=np.uint8)))
  tmp = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
  net = JohnsonNet(JohnsonSpec(), rngs=nnx.Rngs(0))
  net.deconv3.conv.kernel[...] = net.deconv3.conv.kernel[...] * 20.0
  net.deconv3.conv.bias[...] = net.deconv3.conv.bias[...] + 128.0
  model = models.save_model(tmp / "model", net, styles=["random"], record={})

  side = args.compare
  source.resize((side, side * 3 // 4), Image.BILINEAR).save(tmp / "compare.png")
  whole_s, whole_peak = run_apply(model, tmp / "compare.png", tmp / "whole")
  tiled_s, tiled_peak = run_apply(model, tmp / "compare.png", tmp / "tiled", "--tile", "256")
  whole = np.asarray(Image.open(tmp / "whole" / "compare.png")).astype(int)
  tiled = np.asarray(Image.open(tmp / "tiled" / "compare.png")).astype(int)
  diff = np.abs(whole - tiled)
  rows = [f"| {side} x {side * 3 // 4}, untiled | {whole_s:.1f} | {whole_peak / GIB:.2f} | | |",
          f"| {side} x {side * 3 // 4}, tiles of 256 | {tiled_s:.1f} | {tiled_peak / GIB:.2f} | "
          f"mean {diff.mean():.4f}, max {diff.max()} | {seam_score(tiled, 256):.3f} "
          f"(untiled: {seam_score(whole, 256):.3f}) |"]

  w, h = map(int, args.big.lower().split("x"))
  source.resize((w, h), Image.BILINEAR).save(tmp / "big.png", compress_level=1)
  big_s, big_peak = run_apply(model, tmp / "big.png", tmp / "big", "--tile", str(args.tile))
  big = np.asarray(Image.open(tmp / "big" / "big.png"))
  rows.append(f"| {w} x {h}, tiles of {args.tile} | {big_s:.0f} | {big_peak / GIB:.2f} | "
              f"(untiled needs about {memory.johnson_forward_bytes(1.0, w * h) / GIB:.0f} GiB) "
              f"| {seam_score(big, args.tile):.3f} |")
  report = heading(
      "Networks on images larger than memory: apply --tile", "bench_tiles.py", argv,
      "Johnson network, full width, random init with a textured output; each row one "
      "`jaxstyle apply` process (start-up, loading, compiling, statistics passes, saving)",
      "seam score: mean gradient magnitude across tile borders / elsewhere (goal <= 1.1)"
  ) + ("| image | seconds | peak memory (GiB) | tiled against untiled (0-255) | seam score |\n"
       "|---|---|---|---|---|\n") + "\n".join(rows) + "\n"
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
