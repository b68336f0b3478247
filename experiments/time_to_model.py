"""Time to a usable model: the held-out objective against steps and against seconds.

    python experiments/time_to_model.py [-o runs/time_to_model] [--steps 150] [--crop 128]

Trains Johnson's network at full width with its defaults (Adam lr 1e-3,
batch 4, the perceptual-vgg16 objective; content weight raised to 1e2 so
that random features keep the photo's layout, as in style_mix.py) for
Starry Night on three sample photos of ../shared/images/content, holding
Chelsea out, and evaluates the objective on the held-out photo every 10
steps. Writes docs/gallery/time_to_model.png (the curves against steps and
against seconds, compilation excluded and reported apart) and prints a
table: steps and seconds until the held-out objective is within 2x, 1.25x
and 1.1x of its final value. **Random VGG16 features** (no trained weights
can be downloaded here): the curve shows how fast the optimisation
settles, not how good the style is.

Expected runtime on a 2-core CPU: about 6 minutes at 128 px (150 steps).
Result: see docs/BENCHMARKS.md, "Time to a usable model".
"""

import argparse
import json
from pathlib import Path

import numpy as np

import jaxstyle
from jaxstyle import demo, presets
from jaxstyle.nets.train import TrainConfig, train
from jaxstyle.plots import pyplot, save_figure

ROOT = Path(__file__).resolve().parents[1]


def milestones(steps, seconds, held_out, factors=(2.0, 1.25, 1.1)):
  """For each factor f: the first (step, seconds) where the held-out objective ≤ f · final."""
  final = held_out[-1]
  out = {}
  for f in factors:
    i = next(i for i, v in enumerate(held_out) if v <= f * final)
    out[f] = (steps[i], seconds[i])
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("-o", "--output", default="runs/time_to_model")
  parser.add_argument("--steps", type=int, default=150)
  parser.add_argument("--crop", type=int, default=128)
  parser.add_argument("--quiet", action="store_true")
  args = parser.parse_args()
  folder = demo.sample_images_dir()
  if folder is None:
    raise SystemExit("time_to_model: the sample images (../shared/images) are needed")
  out = Path(args.output)
  data = out / "photos"  # Three photos to train on; Chelsea is held out.
  data.mkdir(parents=True, exist_ok=True)
  for name in ("astronaut.jpg", "coffee.jpg", "rocket.jpg"):
    if not (data / name).exists():
      (data / name).symlink_to((folder / "content" / name).resolve())
  config = TrainConfig(steps=args.steps, crop=args.crop, sample_every=10,
                       checkpoint_every=50)
  objective = presets.perceptual_vgg16().replace(size=args.crop, content_weight=100.0,
                                                 weights="random:0")
  weights = jaxstyle.resolve_weights(objective.weights, network="vgg16")
  train([folder / "style" / "starry_night.jpg"], data, out / "model", config, objective,
        weights=weights, held_out=[folder / "content" / "chelsea.jpg"],
        progress=not args.quiet, resume=(out / "model" / "checkpoints").exists())
  lines = [json.loads(line) for line in (out / "model" / "metrics.jsonl").read_text().splitlines()]
  step_s = float(np.median(np.diff([m["seconds"] for m in lines])))
  compile_s = lines[0]["seconds"] - step_s  # Step 1 compiles the step.
  held = [m for m in lines if "held_out" in m]
  steps = [m["step"] for m in held]
  seconds = [m["seconds"] - compile_s for m in held]
  values = [m["held_out"] for m in held]
  plt = pyplot()
  if plt is not None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    train_steps = [m["step"] for m in lines]
    for ax, x, x_train, label in ((axes[0], steps, train_steps, "step"),
                                  (axes[1], seconds, [m["seconds"] - compile_s for m in lines],
                                   "seconds (compilation excluded)")):
      ax.semilogy(x_train, [m["total"] for m in lines], color="0.7", lw=0.8,
                  label="training batch")
      ax.semilogy(x, values, "ko-", ms=3, label="held-out photo")
      ax.set_xlabel(label)
    axes[0].set_ylabel("objective")
    axes[0].legend()
    fig.suptitle(f"Johnson's network, {args.crop} px, batch 4, this CPU: RANDOM VGG16 features "
                 f"(compilation {compile_s:.1f} s)", fontsize=9, color="red")
    save_figure(fig, ROOT / "docs" / "gallery" / "time_to_model.png")
  print(f"compilation {compile_s:.1f} s, then {step_s:.2f} s/step "
        f"({4 / step_s:.1f} images/s); held-out objective {values[0]:.4g} -> {values[-1]:.4g}")
  print("| held-out objective within | steps | seconds |\n|---|---|---|")
  for f, (step, sec) in milestones(steps, seconds, values).items():
    print(f"| {f:g}x of final | {step} | {sec:.0f} |")


if __name__ == "__main__":
  main()
