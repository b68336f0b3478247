"""Video on this machine: seconds per frame and flicker, per-frame vs temporal vs feed-forward.

    python benchmarks/bench_video.py [--size 256] [--frames 6] [--iters 50]

A clip made from the sample photo (../shared/images/content/chelsea.jpg) by
a slow synthetic camera pan (2 px right, 1 px down per frame, then resized
to ``--size``), stylized with Starry Night three ways, each through
``jaxstyle video``'s own code: (1) by optimisation, each frame on its own
(``--temporal-weight 0``); (2) with Ruder et al.'s temporal loss and
warped-previous-frame init (the default, ``DEFAULT_TEMPORAL_WEIGHT``); (3) by a
feed-forward network (Johnson's, width 1, untrained: its speed is a trained
one's). L-BFGS, ``--iters`` per frame, full-width **random** VGG19 (no
trained weights here: the warping errors compare the methods' flicker on
random features, not real stylizations). Seconds per frame exclude the
first frame (compilation); the optical flow's share is reported apart.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish  # noqa: E402

import jaxstyle  # noqa: E402
from jaxstyle import demo  # noqa: E402
from jaxstyle.nets.apply import Stylizer  # noqa: E402
from jaxstyle.video import flow as flows  # noqa: E402
from jaxstyle.video import io as vio  # noqa: E402
from jaxstyle.video import stylize as video  # noqa: E402


def pan_clip(folder: Path, frames: int, size: int) -> Path:
  """The sample photo panned by (2, 1) px per frame, each frame resized so its long side is size."""
  photo = np.asarray(Image.open(demo.sample_images_dir() / "content" / "chelsea.jpg").convert("RGB"))
  h, w = photo.shape[0] - frames, photo.shape[1] - 2 * frames
  folder.mkdir(parents=True, exist_ok=True)
  for t in range(frames):
    window = photo[t:t + h, 2 * t:2 * t + w]
    Image.fromarray(window).save(folder / f"{t:03d}.png")
  return folder


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--frames", type=int, default=6)
  parser.add_argument("--iters", type=int, default=50)
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  if demo.sample_images_dir() is None:
    raise SystemExit("bench_video: the sample images (../shared/images) are needed")
  style = demo.sample_images_dir() / "style" / "starry_night.jpg"
  weights = jaxstyle.random_weights(seed=0)
  rows, strips = [], []
  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    clip = pan_clip(tmp / "in", args.frames, args.size)
    for name, weight in (("optimisation, each frame alone", 0.0),
                         ("optimisation + temporal consistency (Ruder; the default)",
                          video.DEFAULT_TEMPORAL_WEIGHT)):
      config = jaxstyle.StyleConfig(size=args.size, iters=args.iters, temporal_weight=weight)
      stamps = []
      out = tmp / ("temporal" if weight else "alone")
      source = video.read_clip(clip, size=args.size)
      prev_time = time.perf_counter()
      flow_total = 0.0
      method = video.ByOptimisation(style, config, weights)
      for t in range(args.frames):  # The driver's own per-frame steps, timed one by one.
        tick = time.perf_counter()
        previous = video.previous_frame(source, out, t) if t and method.temporal else None
        flow_total += (time.perf_counter() - tick) if t else 0.0
        ((image, _),) = method.stylize(source.frames[t][None], previous)
        out.mkdir(exist_ok=True)
        vio.write_frame(out, t, image)
        now = time.perf_counter()
        stamps.append(now - prev_time)
        prev_time = now
      outputs = [np.asarray(Image.open(vio.frame_path(out, t))) for t in range(args.frames)]
      strips.append((name, outputs))
      rows.append((name, float(np.mean(stamps[1:])), flow_total / (args.frames - 1),
                   stamps[0], flows.warping_error(outputs, source.frames)))
    from flax import nnx

    from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec
    stylizer = Stylizer(JohnsonNet(JohnsonSpec(), rngs=nnx.Rngs(0)))
    source = video.read_clip(clip, size=args.size)
    stamps, outputs = [], []
    for frame in source.frames:
      tick = time.perf_counter()
      outputs.append(stylizer(frame[None])[0])
      stamps.append(time.perf_counter() - tick)
    rows.append(("feed-forward network (Johnson, width 1)", float(np.mean(stamps[1:])), 0.0,
                 stamps[0], flows.warping_error(outputs, source.frames)))
  h, w = source.frames[0].shape[:2]
  report = heading("Video: seconds per frame and warping error", "bench_video.py", argv,
                   f"clip: {args.frames} frames of a synthetic pan of chelsea.jpg, {w}x{h} px; "
                   f"style starry_night.jpg; L-BFGS {args.iters} iterations per frame; RANDOM "
                   "full-width VGG19 (the errors compare methods, not real stylizations)")
  report += ("| method | s/frame | of which optical flow | first frame (compiles) | "
             "warping error |\n|---|---|---|---|---|\n")
  for name, per_frame, flow_s, first, error in rows:
    report += f"| {name} | {per_frame:.2f} | {flow_s:.3f} | {first:.1f} | {error:.5f} |\n"
  publish(report, append=not args.no_append)
  if not args.no_append:
    strip(strips, source.frames, ROOT / "docs" / "gallery" / "video_strip.png")


def strip(rows, inputs, path: Path, frames: int = 4) -> None:
  """The README's picture: the input's first frames, then each method's, labelled RANDOM."""
  from PIL import ImageDraw

  from jaxstyle.files import atomic_path
  h, w = inputs[0].shape[:2]
  rows = [("input (synthetic pan)", inputs)] + rows
  sheet = Image.new("RGB", (w * frames, (h + 16) * len(rows) + 16), "white")
  draw = ImageDraw.Draw(sheet)
  for r, (name, images_) in enumerate(rows):
    y = r * (h + 16)
    draw.text((4, y + 2), name, fill="black")
    for t in range(frames):
      sheet.paste(Image.fromarray(np.asarray(images_[t])), (t * w, y + 16))
  draw.text((4, len(rows) * (h + 16) + 2),
            "RANDOM VGG19 features and an untrained network: not real style transfer", fill="red")
  with atomic_path(path, suffix=".png") as tmp:
    sheet.save(tmp, format="PNG")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
