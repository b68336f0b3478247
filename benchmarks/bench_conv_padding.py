"""The XLA:CPU padding effect, reduced to one convolution: VALID vs a padding attribute.

    python benchmarks/bench_conv_padding.py [--channels 128] [--sizes 126 128 130 136]

A 3x3 stride-1 convolution of a 1 x H x H x C image, four ways, each jitted
alone: ``SAME`` padding; ``VALID`` of an input padded beforehand (an
argument); reflection padding then ``VALID`` in one program, what the style
networks did up to jaxstyle 0.3; and that rewritten as reflection padding,
padding 1 and cropping the one-output ring (jaxstyle.conv's ``direct``).
A zero ``jnp.pad`` followed by VALID is not slow: XLA folds it into the
convolution's padding; a reflection pad cannot be folded. Rerun this after
a jax upgrade: if the reflect + VALID column comes down to SAME's,
jaxstyle.conv's rewrite is no longer needed.

Appends a Markdown table (ms, best of ``--repeats``, and GFLOP/s) to
docs/BENCHMARKS.md.
"""

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish  # noqa: E402

from jaxstyle.conv import best_seconds  # noqa: E402

DIMS = ("NHWC", "HWIO", "NHWC")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--channels", type=int, default=128)
  parser.add_argument("--sizes", type=int, nargs="+", default=[126, 128, 130, 136])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  c = args.channels
  kernel = jax.random.normal(jax.random.key(0), (3, 3, c, c)) / 3
  def conv(x, k, padding):
    return jax.lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=DIMS)

  def reflect(x):
    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")

  forms = {  # name: (function, whether it takes the image padded beforehand)
      "SAME": (jax.jit(lambda x, k: conv(x, k, "SAME")), False),
      "VALID of a padded input": (jax.jit(lambda x, k: conv(x, k, "VALID")), True),
      "reflect + VALID": (jax.jit(lambda x, k: conv(reflect(x), k, "VALID")), False),
      "reflect + padding 1 + crop": (
          jax.jit(lambda x, k: conv(reflect(x), k, ((1, 1), (1, 1)))[:, 1:-1, 1:-1]), False),
  }
  report = heading("XLA:CPU's padding effect: one convolution, VALID against a padding "
                   "attribute", "bench_conv_padding.py", argv,
                   f"3x3 {c} -> {c} convolution, batch 1, each form jitted alone, best of "
                   f"{args.repeats}")
  report += ("| H = W | " + " | ".join(f"{name} ms" for name in forms)
             + " | reflect + VALID / SAME | crop = reflect + VALID, bit for bit |\n"
             + "|---" * (len(forms) + 3) + "|\n")
  for h in args.sizes:
    x = jax.random.normal(jax.random.key(1), (1, h, h, c))
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    times = {name: 1e3 * best_seconds(f, padded if pre else x, kernel, repeats=args.repeats)
             for name, (f, pre) in forms.items()}
    outputs = [np.asarray(forms[name][0](x, kernel))
               for name in ("reflect + VALID", "reflect + padding 1 + crop")]
    rate = 2 * 9 * c * c * h * h / times["SAME"] / 1e6
    report += (f"| {h} | " + " | ".join(f"{t:.1f}" for t in times.values())
               + f" | {times['reflect + VALID'] / times['SAME']:.2f} (SAME: {rate:.0f} GFLOP/s) | "
               f"{np.array_equal(*outputs)} |\n")
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
