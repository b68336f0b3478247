"""Batch scaling (N members in one program) and coarse-to-fine time-to-loss.

    python benchmarks/bench_scaling.py                 # both studies
    python benchmarks/bench_scaling.py --study batch --members 1 2 4 --no-append

Expected runtime: about 6 minutes on a 2-core CPU. Full-width RANDOM VGG19,
the sample images of ../shared/images (generated ones when absent).

* batch: N = 1, 2, 4, 8 members (different styles) in one ``stylize_batch``
  program at 96 px, 10 iterations, for each way members are mapped: Adam and
  fixed-step L-BFGS are vmapped, zoom-linesearch L-BFGS runs members in turn
  (``lax.map``). Reported: seconds per member-iteration, and the speed-up over
  N separate runs (N times the N = 1 time). Compilation excluded.
* multiscale: the time to reach, at the full size (256 px), the loss a
  single-scale run reaches after 100 L-BFGS iterations: single scale against
  coarse to fine (128 → 256 px, 100 coarse iterations then up to 100 fine).
"""

from __future__ import annotations

import argparse
import time


import jaxstyle
from bench_batch import content, styles
from bench_core import heading, publish

WAYS = {"Adam (vmap)": {"optimizer": "adam"},
        "L-BFGS fixed step (vmap)": {"lbfgs_linesearch": "none", "lbfgs_memory": 10},
        "L-BFGS zoom (lax.map)": {}}


def batch_study(members, size: int, iters: int, weights) -> str:
  photo = content(size)
  lines = ["| mapping | " + " | ".join(f"N={n}: s/member-it" for n in members)
           + " | " + " | ".join(f"N={n}: speed-up" for n in members[1:]) + " |",
           "|" + "---|" * (1 + 2 * len(members) - 1)]
  for way, fields in WAYS.items():
    config = jaxstyle.StyleConfig(size=size, iters=iters, record_terms=False, **fields)
    per = {}
    for n in members:
      paintings = styles(n, size)
      jaxstyle.stylize_batch(photo, paintings, config.replace(iters=1), weights=weights)
      results = jaxstyle.stylize_batch(photo, paintings, config, weights=weights)
      per[n] = results[0].seconds / (n * iters)
    lines.append(f"| {way} | " + " | ".join(f"{per[n]:.3f}" for n in members) + " | "
                 + " | ".join(f"{per[1] / per[n]:.2f}x" for n in members[1:]) + " |")
  return "\n".join(lines)


def _timed_run(photo, painting, config, weights):
  """(seconds since the loop started, loss) every 5 iterations of the final scale."""
  marks = []
  start = time.perf_counter()
  result = jaxstyle.stylize(photo, painting, config, weights=weights, save_every=5,
                            callback=lambda i, _img, losses: marks.append(
                                (time.perf_counter(), losses["total"])))
  # Marks come from the final scale, after every scale's compilation: take it all out.
  return [(t - start - result.compile_seconds, loss) for t, loss in marks], result


def multiscale_study(size: int, weights) -> str:
  photo, painting = content(size), styles(1, size)[0]
  single = jaxstyle.StyleConfig(size=size, iters=100, record_terms=False)
  jaxstyle.stylize(photo, painting, single.replace(iters=1), weights=weights)  # Compile.
  marks, _ = _timed_run(photo, painting, single, weights)
  target = marks[-1][1]
  fine = single.replace(scales=2, scale_iters=(100, 100))
  jaxstyle.stylize(photo, painting, fine.replace(scale_iters=(1, 1)), weights=weights)
  coarse_marks, result = _timed_run(photo, painting, fine, weights)
  # The callback fires at the fine scale only; its clock includes the coarse scale.
  reached = next((t for t, loss in coarse_marks if loss <= target), None)
  lines = ["| method | time to the target loss | iterations at full size |", "|---|---|---|",
           f"| single scale, {size} px | {marks[-1][0]:.1f} s | 100 |",
           f"| coarse to fine, {size // 2} → {size} px | "
           + (f"{reached:.1f} s | {5 * (1 + [t for t, _ in coarse_marks].index(reached))} |"
              if reached is not None else f"not reached in 100 fine iterations "
              f"(final {coarse_marks[-1][1]:.4g}) | 100 |")]
  return (f"target: {target:.4g}, the single-scale loss after 100 iterations\n\n"
          + "\n".join(lines))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--study", choices=("batch", "multiscale", "both"), default="both")
  parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 8])
  parser.add_argument("--batch-size", type=int, default=96)
  parser.add_argument("--batch-iters", type=int, default=10)
  parser.add_argument("--multiscale-size", type=int, default=256)
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  weights = jaxstyle.random_weights(seed=0)
  parts = []
  if args.study in ("batch", "both"):
    parts.append(f"Batch scaling, {args.batch_size} px, {args.batch_iters} iterations:\n\n"
                 + batch_study(args.members, args.batch_size, args.batch_iters, weights))
  if args.study in ("multiscale", "both"):
    parts.append("Coarse to fine, time to a loss:\n\n"
                 + multiscale_study(args.multiscale_size, weights))
  report = heading("Scaling: batches and coarse to fine", "bench_scaling.py", argv,
                   "RANDOM full-width VGG19, default objective, no per-term history; "
                   "compilation excluded") + "\n\n".join(parts) + "\n"
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
