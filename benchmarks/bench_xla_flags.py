"""One objective evaluation (f and ∇f) under different XLA:CPU flags.

    python benchmarks/bench_xla_flags.py            # 96 px, the flag sets below
    python benchmarks/bench_xla_flags.py --size 128 --no-append

Expected runtime: about a minute on a 2-core CPU. Each flag set runs in a
fresh subprocess (XLA reads XLA_FLAGS once): full-width RANDOM VGG19, the
default objective at size x size, median of 8 jitted evaluations after a
warm-up. Appends the table to docs/BENCHMARKS.md (unless --no-append).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


from bench_core import heading, publish

FLAG_SETS = (
    "",
    "--xla_cpu_enable_fast_math=true",
    "--xla_cpu_experimental_onednn_custom_call=true",
    "--xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
    "--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
    "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
)

CHILD = r"""
import sys, time, warnings
warnings.simplefilter("ignore")
import jax, jax.numpy as jnp, numpy as np, jaxstyle
size = int(sys.argv[1])
image = np.random.default_rng(0).integers(0, 255, (size, size, 3), np.uint8)
config = jaxstyle.StyleConfig(size=size)
spec = jaxstyle.ObjectiveSpec.from_config(config, "caffe")
params = jax.tree.map(jnp.asarray, jaxstyle.random_weights(seed=0).params)
targets = jaxstyle.make_targets(params, image, image[::-1].copy(), spec)
weights = jaxstyle.LossWeights.from_config(config)
f = jax.jit(jax.value_and_grad(lambda x: jaxstyle.objective(params, targets, x, weights,
                                                            spec)[0]))
x = jnp.asarray(image, jnp.float32)
jax.block_until_ready(f(x))
times = []
for _ in range(8):
  start = time.perf_counter()
  jax.block_until_ready(f(x))
  times.append(time.perf_counter() - start)
print(np.median(times))
"""


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--size", type=int, default=96)
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  lines = ["| XLA_FLAGS | f+∇f |", "|---|---|"]
  for flags in FLAG_SETS:
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.size)], check=True,
                         capture_output=True, text=True, env={**os.environ, "XLA_FLAGS": flags})
    seconds = float(out.stdout.strip().splitlines()[-1])
    lines.append(f"| `{flags or '(none)'}` | {seconds * 1000:.1f} ms |")
  report = heading("XLA:CPU flags and one evaluation", "bench_xla_flags.py", argv,
                   f"{args.size}x{args.size} px, RANDOM full-width VGG19, default objective, "
                   "median of 8") + "\n".join(lines) + "\n"
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
