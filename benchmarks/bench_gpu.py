"""Issue #5's accelerator rows: 512 px x 500 L-BFGS iterations, a batch of 8, the largest image.

    python benchmarks/bench_gpu.py                  # on a GPU (or TPU): all three
    python benchmarks/bench_gpu.py --smoke          # tiny sizes, any backend: checks the script

Expected runtime on one H100: a few minutes (each measurement is a fresh
process, so each pays its compilation, reported apart). Weights: RANDOM
He-initialised full-width VGG19 (the FLOPs and memory of the real network).

* 512 px x 500 iterations: wall time of the iterations and compile time of
  one ``stylize`` run (default objective, L-BFGS), and the device's peak
  bytes in use (the process's peak resident memory on CPU);
* batch of 8 at 256 px: 8 members (8 seeds of the noise init) in one
  program against 8 runs one after another, ``--batch-iters`` iterations each;
* the largest square image that fits, with and without ``--remat``: a
  binary search in steps of ``--step`` px, each size tried for 2 iterations in
  a fresh process, jaxstyle's own memory check switched off so that the
  device, not the estimate, decides.

Appends a table to docs/BENCHMARKS.md unless --no-append (--smoke never appends).
On a CPU-only machine it refuses to run without --smoke: these rows are for
accelerators, and the CPU ones are in bench_core, bench_scaling and bench_memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import jax

from bench_core import heading, publish

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import jax, numpy as np, jaxstyle
from jaxstyle import demo, memory
task = json.loads(sys.argv[1])
memory.check_fits = lambda *args, **kwargs: None  # The device decides, not the estimate.
size = task["size"]
content, style = demo.generated_images(size)
weights = jaxstyle.random_weights(seed=0)
config = jaxstyle.StyleConfig(size=size, iters=task["iters"], remat=task.get("remat", False))
before = memory.process_peak_bytes()
start = time.perf_counter()
if task["kind"] == "batch":
  results = jaxstyle.stylize_batch(content, [style] * task["members"],
                                   [config.replace(init="noise", seed=s)
                                    for s in range(task["members"])], weights=weights)
else:
  results = [jaxstyle.stylize(content, style, config.replace(init="noise", seed=s),
                              weights=weights) for s in range(task.get("members", 1))]
device = jax.devices()[0]
peak = (memory.process_peak_bytes() - before if device.platform == "cpu"
        else (device.memory_stats() or {}).get("peak_bytes_in_use", 0))
print(json.dumps({"seconds": sum(r.seconds for r in results) if task["kind"] != "batch"
                  else results[0].seconds,
                  "compile": sum(r.compile_seconds for r in results) if task["kind"] != "batch"
                  else results[0].compile_seconds,
                  "wall": time.perf_counter() - start, "peak": peak,
                  "finite": all(r.error is None for r in results)}))
"""


def run_child(task: dict, timeout: float) -> dict | str:
  """The child's measurements, or why it failed (out of memory, or the error's last line)."""
  try:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(task)], capture_output=True,
                          text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return f"timed out after {timeout:.0f} s"
  if done.returncode == 0:
    return json.loads(done.stdout.strip().splitlines()[-1])
  if "RESOURCE_EXHAUSTED" in done.stderr or "out of memory" in done.stderr.lower():
    return "out of memory"
  lines = done.stderr.strip().splitlines()
  return lines[-1] if lines else f"exit code {done.returncode}"


def largest_fitting(low: int, high: int, step: int, remat: bool, timeout: float) -> tuple[int, str]:
  """The largest multiple of ``step`` in [low, high] that runs, and what stopped the next one."""
  lo, hi, why = low // step - 1, high // step, "not reached"
  while lo < hi:
    middle = (lo + hi + 1) // 2
    outcome = run_child({"kind": "single", "size": middle * step, "iters": 2, "remat": remat},
                        timeout)
    print(f"  {middle * step} px, remat={remat}: "
          f"{'fits' if isinstance(outcome, dict) else outcome}", flush=True)
    if isinstance(outcome, dict):
      lo = middle
    else:
      hi, why = middle - 1, f"{middle * step} px: {outcome}"
  return lo * step, why


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--smoke", action="store_true",
                      help="tiny sizes on any backend, to check the script; never appends")
  parser.add_argument("--iters", type=int, default=500, help="iterations of the 512 px run")
  parser.add_argument("--batch-iters", type=int, default=100)
  parser.add_argument("--step", type=int, default=256, help="size step of the largest-image search")
  parser.add_argument("--max-size", type=int, default=8192)
  parser.add_argument("--timeout", type=float, default=1200, help="seconds per child process")
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  if jax.default_backend() == "cpu" and not args.smoke:
    print("bench_gpu.py: no GPU or TPU here (JAX backend is cpu); these rows are for "
          "accelerators. Run with --smoke to check the script.", file=sys.stderr)
    raise SystemExit(2)
  size, batch_size, iters, batch_iters, step, top = (
      (64, 32, 3, 2, 16, 64) if args.smoke
      else (512, 256, args.iters, args.batch_iters, args.step, args.max_size))

  rows = []
  single = run_child({"kind": "single", "size": size, "iters": iters}, args.timeout)
  if isinstance(single, str):
    rows.append(f"| {size} px x {iters} L-BFGS iterations | failed: {single} |")
  else:
    rows.append(f"| {size} px x {iters} L-BFGS iterations | {single['seconds']:.2f} s "
                f"(compile {single['compile']:.1f} s), peak {single['peak'] / 2**30:.2f} GiB |")
  batched = run_child({"kind": "batch", "size": batch_size, "iters": batch_iters, "members": 8},
                      args.timeout)
  sequential = run_child({"kind": "single", "size": batch_size, "iters": batch_iters,
                          "members": 8}, args.timeout)
  failed = [o for o in (batched, sequential) if isinstance(o, str)]
  if failed:
    rows.append(f"| batch of 8 at {batch_size} px | failed: {failed[0]} |")
  else:
    rows.append(f"| batch of 8 at {batch_size} px, {batch_iters} iterations | one program "
                f"{batched['seconds']:.2f} s, 8 runs {sequential['seconds']:.2f} s: "
                f"{sequential['seconds'] / batched['seconds']:.2f}x |")
  for remat in (False, True):
    largest, why = largest_fitting(step, top, step, remat, args.timeout)
    rows.append(f"| largest square image{', --remat' if remat else ''} | {largest} px "
                f"(next: {why}) |")
  report = (heading("Accelerator rows (issue #5)", "bench_gpu.py", argv,
                    "RANDOM full-width VGG19, default objective, L-BFGS; noise init; each "
                    "measurement a fresh process; times exclude compilation")
            + "| measurement | result |\n|---|---|\n" + "\n".join(rows) + "\n")
  publish(report, append=not (args.no_append or args.smoke))


if __name__ == "__main__":
  main()
