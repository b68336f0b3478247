"""Peak memory of a run, measured, against jaxstyle.memory's prediction; remat and bfloat16.

    python benchmarks/bench_memory.py                     # 256, 384, 512 px, L-BFGS and Adam
    python benchmarks/bench_memory.py --sizes 256 --optimizers lbfgs --no-append
    python benchmarks/bench_memory.py --sizes 512 --optimizers lbfgs --iters 20 \
        --variants plain remat bfloat16               # what the memory options save and cost

Expected runtime: about a minute on a 2-core CPU. Each run is a fresh
subprocess (so the peak is that run's alone): full-width RANDOM VGG19, the
default objective, 3 iterations (``--iters``). On CPU the peak is the process's peak
resident memory (VmHWM) minus its peak after importing jaxstyle and making the
inputs; on a GPU, the device's peak bytes in use. Appends a table to
docs/BENCHMARKS.md with the command, machine and versions (unless --no-append).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import jax

import jaxstyle
from bench_core import heading, publish

CHILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import jax, numpy as np, jaxstyle
from jaxstyle import memory
size, optimizer, variant, iters = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
image = np.random.default_rng(0).integers(0, 255, (size, size, 3), np.uint8)
style = np.random.default_rng(1).integers(0, 255, (size, size, 3), np.uint8)
weights = jaxstyle.random_weights(seed=0)
config = jaxstyle.StyleConfig(size=size, iters=iters, optimizer=optimizer,
                              remat=variant == "remat",
                              precision="bfloat16" if variant == "bfloat16" else "float32")
before = memory.process_peak_bytes()
result = jaxstyle.stylize(image, style, config, weights=weights)
device = jax.devices()[0]
if device.platform == "cpu":
  peak = memory.process_peak_bytes() - before
else:
  peak = device.memory_stats()["peak_bytes_in_use"]
print(json.dumps({"measured": peak, "predicted": memory.estimate_bytes(config, size, size),
                  "seconds": result.seconds / max(result.iterations, 1),
                  "final": float(result.history["total"][-1])}))
"""


def measure(size: int, optimizer: str, variant: str, iters: int) -> dict:
  out = subprocess.run([sys.executable, "-c", CHILD, str(size), optimizer, variant, str(iters)],
                       check=True, capture_output=True, text=True).stdout
  return {"size": size, "optimizer": optimizer, "variant": variant,
          **json.loads(out.strip().splitlines()[-1])}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512])
  parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"])
  parser.add_argument("--variants", nargs="+", default=["plain"],
                      choices=["plain", "remat", "bfloat16"])
  parser.add_argument("--iters", type=int, default=3)
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  rows = [measure(size, opt, variant, args.iters) for opt in args.optimizers
          for size in args.sizes for variant in args.variants]
  mib = float(1 << 20)
  lines = ["| size | optimizer | variant | measured peak | predicted | predicted / measured "
           f"| s/iteration | loss after {args.iters} |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['size']}x{r['size']} | {r['optimizer']} | {r['variant']} | "
                 f"{r['measured'] / mib:.0f} MiB | {r['predicted'] / mib:.0f} MiB | "
                 f"{r['predicted'] / r['measured']:.2f} | {r['seconds']:.3f} | "
                 f"{r['final']:.5g} |")
  report = heading("Memory: measured peak vs jaxstyle.memory's prediction", "bench_memory.py",
                   argv, f"weights: RANDOM He-initialised VGG19, full width; default objective; "
                   f"{args.iters} iterations; on CPU the peak is the peak resident memory above "
                   "the process's after import; the prediction does not model remat or "
                   "bfloat16") + "\n".join(lines) + "\n"
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
