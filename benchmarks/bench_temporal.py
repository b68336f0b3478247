"""The temporal weight of `jaxstyle video`, calibrated: flicker and objective against λ.

    python benchmarks/bench_temporal.py [--size 128] [--frames 8] [--iters 50]
        [--weights 0 1e-9 10 30 100 300 1000 3000 10000]

A clip made from the sample photo by bench_video.py's synthetic pan, stylized
with Starry Night by ``jaxstyle.video.stylize_video`` (the command's own
code), once per temporal weight λ: 0 is each frame on its own (the
configured init, no temporal term); 1e-9 starts each frame from the previous
stylized frame warped by the flow with a term too small to act (the warped
init alone); larger λ add Ruder et al.'s term Σ c (x − ω)² with that weight.
Per λ: Lai et al.'s warping error on the PNG frames (lower is steadier), the
mean per frame (after the first) of the objective without its temporal term
(α·content + β·style + γ·TV: what the temporal term costs the stylization),
the mean temporal term, and seconds per frame. L-BFGS, ``--iters`` per frame,
full-width **random** VGG19 (no trained weights here): the balance between
the terms differs on trained features.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish  # noqa: E402
from bench_video import pan_clip  # noqa: E402

import jaxstyle  # noqa: E402
from jaxstyle import demo  # noqa: E402
from jaxstyle.video import io as vio  # noqa: E402
from jaxstyle.video import stylize as video  # noqa: E402


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--frames", type=int, default=8)
  parser.add_argument("--iters", type=int, default=50)
  parser.add_argument("--weights", type=float, nargs="+",
                      default=[0, 1e-9, 10, 30, 100, 300, 1000, 3000, 10000])
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  if demo.sample_images_dir() is None:
    raise SystemExit("bench_temporal: the sample images (../shared/images) are needed")
  style = demo.sample_images_dir() / "style" / "starry_night.jpg"
  weights = jaxstyle.random_weights(seed=0)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    clip = pan_clip(tmp / "in", args.frames, args.size)
    for i, weight in enumerate(args.weights):
      config = jaxstyle.StyleConfig(size=args.size, iters=args.iters, temporal_weight=weight)
      out = tmp / f"out{i}"
      summary = video.stylize_video(clip, out, config=config, style=style, weights=weights,
                                    log=lambda *a: None)
      records = [json.loads(Image.open(vio.frame_path(out, t)).text["jaxstyle"])
                 for t in range(1, args.frames)]
      objective = [config.content_weight * r["terms"]["content"]
                   + config.style_weight * r["terms"]["style"] + config.tv_weight * r["terms"]["tv"]
                   for r in records]
      temporal = [r["terms"].get("temporal", 0.0) for r in records]
      rows.append((weight, summary["warping_error"], float(np.mean(objective)),
                   float(np.mean(temporal)), summary["seconds_per_frame"]))
      print(rows[-1], flush=True)
    h, w = np.asarray(Image.open(vio.frame_path(out, 0))).shape[:2]
  report = heading("Video: the temporal weight against flicker and the objective",
                   "bench_temporal.py", argv,
                   f"clip: {args.frames} frames of a synthetic pan of chelsea.jpg, {w}x{h} px; "
                   f"style starry_night.jpg; L-BFGS {args.iters} iterations per frame; RANDOM "
                   "full-width VGG19; objective = α·content + β·style + γ·TV of the final frame, "
                   "mean over frames 1.., without the temporal term; warping error on the PNGs")
  base = rows[0][2]
  report += ("| λ (--temporal-weight) | warping error | objective (x per-frame's) | temporal "
             "term Σc(x−ω)² | s/frame |\n|---|---|---|---|---|\n")
  for weight, error, objective, temporal, seconds in rows:
    name = {0: "0 (each frame alone)", 1e-9: "1e-9 (warped init alone)"}.get(weight, f"{weight:g}")
    report += (f"| {name} | {error:.5f} | {objective:.4g} ({objective / base:.2f}x) | "
               f"{temporal:.4g} | {seconds:.2f} |\n")
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
