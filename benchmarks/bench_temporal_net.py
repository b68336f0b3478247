"""Feed-forward video without flicker: a network trained with the temporal loss against one
trained without it, and against optimisation per frame and Ruder et al.'s temporal optimisation.

    python benchmarks/bench_temporal_net.py [--steps 300] [--temporal-weight 0.05 ...] [--no-append]

Two Johnson networks, identical but for ``--temporal-weight`` (same seed,
photos, steps; ``jaxstyle train``'s own code), are trained on three sample
photos (chelsea, coffee, rocket) for Starry Night, on **random** VGG16
features (no trained weights here). Both are scored on clips made from the
fourth photo, which no training photo comes from (astronaut.jpg): a pan, a
zoom, and the pan encoded as an H.264 mp4 by imageio-ffmpeg (its
compression noise moves from frame to frame as a camera's does), by the
warping error of ``jaxstyle video-metrics``, with the seconds per frame of
``jaxstyle apply``'s forward and the held-out objective (the training
objective on astronaut.jpg, the last evaluation). The pan is also stylized by
optimisation, each frame alone and with Ruder et al.'s temporal loss
(``jaxstyle video --style``, ``--iters`` L-BFGS iterations a frame).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish  # noqa: E402

from jaxstyle import demo  # noqa: E402
from jaxstyle.video import flow as flows  # noqa: E402
from jaxstyle.video import io as vio  # noqa: E402

TRAINING = ("chelsea", "coffee", "rocket")
HELD_OUT = "astronaut"


def clips(photo: np.ndarray, frames: int, side: int, tmp: Path) -> dict[str, list[np.ndarray]]:
  """A pan (3 px right, 1 px down a frame), a zoom (1% a frame) and the pan as an mp4."""
  h, w = photo.shape[:2]
  pan = [np.asarray(Image.fromarray(photo[t:t + h - frames, 3 * t:3 * t + w - 3 * frames])
                    .resize((side, side), Image.BILINEAR)) for t in range(frames)]
  zoom = []
  for t in range(frames):
    crop = int(round(min(h, w) / (1 + 0.01 * t)))
    y, x = (h - crop) // 2, (w - crop) // 2
    zoom.append(np.asarray(Image.fromarray(photo[y:y + crop, x:x + crop])
                           .resize((side, side), Image.BILINEAR)))
  folder = tmp / "pan"
  folder.mkdir()
  for t, frame in enumerate(pan):
    vio.write_frame(folder, t, frame)
  mp4 = vio.encode(folder, frames, tmp / "pan.mp4", fps=12)
  return {"pan": pan, "zoom": zoom, "pan, mp4 (H.264)": vio.read_clip(mp4).frames}


def train(out: Path, data: Path, style: Path, held: Path, args, weight: float) -> dict:
  from jaxstyle.cli import main
  argv = ["train", str(style), "--data", str(data), "--held-out", str(held), "-o", str(out),
          "--steps", str(args.steps), "--batch", str(args.batch), "--crop", str(args.crop),
          "--width", str(args.width), "--weights", "random", "--quiet",
          "--sample-every", str(args.steps), "--temporal-weight", str(weight),
          "--content-weight", str(args.content_weight), "--lr", str(args.lr)]
  start = time.perf_counter()
  if main(argv):
    raise SystemExit(f"bench_temporal_net: jaxstyle {' '.join(argv)} failed")
  record = json.loads((out / "model.json").read_text())["record"]
  return {"seconds": time.perf_counter() - start, **record["held_out"]}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--crop", type=int, default=128)
  parser.add_argument("--width", type=float, default=0.5)
  parser.add_argument("--temporal-weight", type=float, nargs="+", default=[0.05],
                      help="one network trained with each (and one without)")
  parser.add_argument("--content-weight", type=float, default=100.0,
                      help="random features need about 1e2 to keep the photo (style_mix.py)")
  parser.add_argument("--lr", type=float, default=5e-3)
  parser.add_argument("--frames", type=int, default=8)
  parser.add_argument("--side", type=int, default=192, help="clip frames' side, px")
  parser.add_argument("--iters", type=int, default=30, help="L-BFGS iterations a frame")
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  images = demo.sample_images_dir()
  if images is None:
    raise SystemExit("bench_temporal_net: the sample images (../shared/images) are needed")
  from jaxstyle.nets import models
  from jaxstyle.nets.apply import stylizer_for

  style = images / "style" / "starry_night.jpg"
  rows, trained = [], {}
  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    (tmp / "data").mkdir()
    for name in TRAINING:
      Image.open(images / "content" / f"{name}.jpg").convert("RGB").save(
          tmp / "data" / f"{name}.png")
    held = images / "content" / f"{HELD_OUT}.jpg"
    photo = np.asarray(Image.open(held).convert("RGB"))
    found = clips(photo, args.frames, args.side, tmp)
    for name, weight in [("network", 0.0)] + [(f"network + temporal loss x{w:g}", w)
                                              for w in args.temporal_weight]:
      out = tmp / name.replace(" ", "_")
      trained[name] = train(out, tmp / "data", style, held, args, weight)
      net, _ = models.load_model(out)
      stylizer = stylizer_for(net)
      stylizer(found["pan"][0][None])  # Compiles.
      errors, stamps = {}, []
      for clip, frames in found.items():
        outputs = []
        for frame in frames:
          tick = time.perf_counter()
          outputs.append(stylizer(frame[None])[0])
          stamps.append(time.perf_counter() - tick)
        errors[clip] = flows.warping_error(outputs, frames)
      rows.append((name, float(np.median(stamps)), errors, trained[name]))
    pan = tmp / "pan"
    for name, weight in (("optimisation, each frame alone", 0.0),
                         ("optimisation + Ruder's temporal loss", None)):
      from jaxstyle.cli import main as cli
      out = tmp / f"opt{weight}"
      video = ["video", str(pan), "-o", str(out), "--style", str(style), "--weights", "random",
               "--iters", str(args.iters), "--size", str(args.side), "--quiet"]
      if weight is not None:
        video += ["--temporal-weight", str(weight)]
      start = time.perf_counter()
      if cli(video):
        raise SystemExit(f"bench_temporal_net: jaxstyle {' '.join(video)} failed")
      seconds = (time.perf_counter() - start) / args.frames
      outputs = [np.asarray(Image.open(vio.frame_path(out, t))) for t in range(args.frames)]
      rows.append((name, seconds, {"pan": flows.warping_error(outputs, found["pan"])}, None))
  plain = rows[0][2]
  report = heading(
      "Feed-forward video without flicker: the temporal loss in training", "bench_temporal_net.py",
      argv, f"networks: Johnson width {args.width:g}, {args.steps} steps, batch {args.batch} x "
      f"{args.crop} px on {', '.join(TRAINING)} for starry_night.jpg, RANDOM VGG16 features, "
      f"content weight {args.content_weight:g}, lr {args.lr:g}; "
      f"--temporal-weight {' and '.join(f'{w:g}' for w in args.temporal_weight)} against 0 "
      "(training took "
      + ", ".join(f"{trained[k]['seconds']:.0f} s" for k in trained) + ")",
      f"clips: {args.frames} frames of {args.side} x {args.side} px from {HELD_OUT}.jpg, which no "
      "training photo comes from; optimisation rows: jaxstyle video --style, full-width random "
      f"VGG19, {args.iters} L-BFGS iterations a frame (pan only)",
      "warping error: jaxstyle video-metrics' (lower is steadier); ratio: against the network "
      "trained without the temporal loss; held-out objective: the training objective on the "
      "held-out photo; content kept: how much of it the output keeps (jaxstyle.nets.quality; "
      "a network that lost the photo draws a steady texture: no flicker, and no use)") + (
      "| method | s/frame | warping error, pan | zoom | pan, mp4 | ratio (pan / zoom / mp4) | "
      "held-out objective | content kept |\n|---|---|---|---|---|---|---|---|\n")
  for name, seconds, errors, held in rows:
    cells = [f"{errors[c]:.5f}" if c in errors else "" for c in found]
    ratios = " / ".join(f"{errors[c] / plain[c]:.2f}" for c in found if c in errors)
    held = "| |" if held is None else f"| {held['objective']:.4g} | {held['content_kept']:.2f} |"
    report += f"| {name} | {seconds:.3f} | {' | '.join(cells)} | {ratios} {held}\n"
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
