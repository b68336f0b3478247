"""A batch of N styles in one vmapped program vs N sequential stylize calls.

    python benchmarks/bench_batch.py                  # 4 styles, 128 px, 20 L-BFGS iterations
    python benchmarks/bench_batch.py --members 4 --size 128 --iters 20 --no-append

Expected runtime: ~4 min on a 2-core CPU; under a minute on a GPU. Appends a
table to docs/BENCHMARKS.md. Weights: random full-width VGG19 (same cost as
real weights). Styles: the paintings in ../shared/images (generated textures
when absent). Both ways are warmed up first, so the times exclude
compilation, which is reported separately.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import jax

import jaxstyle
from jaxstyle import demo

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_core import machine, publish  # noqa: E402  (shared helpers of the benchmarks)


def styles(count: int, size: int):
  folder = demo.sample_images_dir()
  if folder is not None:
    paths = sorted((folder / "style").glob("*.jpg"))
    images = [jaxstyle.load_image(p, size=size) for p in paths]
  else:
    images = [demo.generated_images(size, seed=s)[1] for s in range(count)]
  return [images[i % len(images)] for i in range(count)]


def content(size: int):
  folder = demo.sample_images_dir()
  if folder is not None:
    return jaxstyle.load_image(folder / demo.CONTENT, size=size)
  return demo.generated_images(size)[0]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--members", type=int, default=4)
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--iters", type=int, default=20)
  parser.add_argument("--width-scale", type=float, default=1.0)
  parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs",
                      help="lbfgs members run in sequence inside the program; adam's are vmapped")
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  weights = jaxstyle.random_weights(seed=0, width_scale=args.width_scale)
  photo, paintings = content(args.size), styles(args.members, args.size)
  config = jaxstyle.StyleConfig(size=args.size, iters=args.iters, optimizer=args.optimizer)

  warm = [jaxstyle.stylize(photo, paintings[0], config, weights=weights)]
  start = time.perf_counter()
  sequential = [jaxstyle.stylize(photo, p, config, weights=weights) for p in paintings]
  sequential_s = time.perf_counter() - start

  warm.append(jaxstyle.stylize_batch(photo, paintings, config, weights=weights)[0])
  start = time.perf_counter()
  batched = jaxstyle.stylize_batch(photo, paintings, config, weights=weights)
  batched_s = time.perf_counter() - start

  gap = max(abs(a.history["total"][-1] - b.history["total"][-1]) / b.history["total"][-1]
            for a, b in zip(batched, sequential))
  command = "python benchmarks/bench_batch.py " + " ".join(
      argv if argv is not None else sys.argv[1:])
  report = (
      f"\n### Batch ({args.optimizer}): {args.members} styles in one program vs {args.members} "
      f"sequential runs "
      f"({datetime.date.today()})\n\n"
      f"- command: `{command.strip()}`\n- machine: {machine()}\n"
      f"- versions: jaxstyle {jaxstyle.__version__}, jax {jax.__version__}, backend "
      f"{jax.default_backend()}\n"
      f"- {photo.shape[1]}x{photo.shape[0]} px, {args.iters} {args.optimizer} iterations each, "
      f"RANDOM "
      f"He-initialised VGG19 (width scale {args.width_scale:g}); times exclude compilation\n\n"
      "| way | wall time (s) | per member (s) | compile (s) |\n|---|---|---|---|\n"
      f"| {args.members} sequential `stylize` | {sequential_s:.2f} | "
      f"{sequential_s / args.members:.2f} | {warm[0].compile_seconds:.1f} |\n"
      f"| one `stylize_batch` program | {batched_s:.2f} | {batched_s / args.members:.2f} | "
      f"{warm[1].compile_seconds:.1f} |\n\n"
      f"Speed-up of the batch: {sequential_s / batched_s:.2f}x. Largest relative difference "
      f"of a member's final loss from its sequential run: {gap:.1e}.\n")
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
