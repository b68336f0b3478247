"""The XLA:CPU padding effect, reduced to one convolution: VALID vs a padding attribute.

    python benchmarks/bench_conv_padding.py [--channels 128] [--sizes 126 128 130 136]

A 3x3 stride-1 convolution of a 1 x H x H x C image, three ways, each jitted
alone: ``SAME`` padding; ``VALID`` (no padding attribute) of the image
padded by one beforehand, which is what reflection-padded layers do; and
that VALID convolution rewritten as padding 1 plus cropping the one-output
ring (jaxstyle.conv's ``direct``). The three outputs are compared (the last
two must be bit-identical). On jax 0.10.2 XLA:CPU runs the VALID form about
3x slower at every size; rerun this after a jax upgrade: if the VALID column
comes down to the others, jaxstyle.conv's rewrite is no longer needed.

Prints a Markdown table (ms, best of ``--repeats``, and GFLOP/s) for
docs/BENCHMARKS.md.
"""

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

DIMS = ("NHWC", "HWIO", "NHWC")


def best_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best * 1e3


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--channels", type=int, default=128)
  parser.add_argument("--sizes", type=int, nargs="+", default=[126, 128, 130, 136])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  c = args.channels
  kernel = jax.random.normal(jax.random.key(0), (3, 3, c, c)) / 3
  same = jax.jit(lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                                           dimension_numbers=DIMS))
  valid = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
      jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, (1, 1), "VALID", dimension_numbers=DIMS))
  cropped = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
      jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=DIMS)[:, 1:-1, 1:-1])
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, {platform.processor() or 'cpu'}; "
        f"3x3 {c} -> {c} conv, batch 1, best of {args.repeats}")
  print("| H = W | SAME ms | pad + VALID ms | pad + padding 1 + crop ms | VALID / SAME | "
        "GFLOP/s (SAME / VALID) | crop = VALID bits |")
  print("|---|---|---|---|---|---|---|")
  for h in args.sizes:
    x = jax.random.normal(jax.random.key(1), (1, h, h, c))
    flops = 2 * 9 * c * c * h * h
    times = [best_ms(f, x, kernel, repeats=args.repeats) for f in (same, valid, cropped)]
    identical = bool(np.array_equal(np.asarray(valid(x, kernel)), np.asarray(cropped(x, kernel))))
    print(f"| {h} | {times[0]:.1f} | {times[1]:.1f} | {times[2]:.1f} | "
          f"{times[1] / times[0]:.2f} | {flops / times[0] / 1e6:.0f} / "
          f"{flops / times[1] / 1e6:.0f} | {identical} |")


if __name__ == "__main__":
  main()
