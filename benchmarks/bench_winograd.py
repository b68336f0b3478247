"""Winograd against the direct convolution: per VGG19 layer, and for a whole f+∇f.

    python benchmarks/bench_winograd.py                       # 96 and 256 px
    python benchmarks/bench_winograd.py --sizes 512 --no-append

Expected runtime: about 3 minutes on a 2-core CPU at 96 and 256 px (512 px
adds about 5). Weights: RANDOM He-initialised full-width VGG19 (the FLOPs
are the real network's; the values do not matter for speed).

Two tables, appended to docs/BENCHMARKS.md unless --no-append:

* per layer: one conv forward and its image gradient (what an evaluation
  runs per layer), direct (XLA's convolution) against F(2x2,3x3) and
  F(4x4,3x3) with the kernels transformed beforehand, best of interleaved
  repeats; and what timing the layer alone would pick
  (:func:`jaxstyle.conv.choose`, which ``--conv auto`` does not use for VGG).
* whole objective: f+∇f of the default objective at the size with each of
  :func:`jaxstyle.vgg.winograd_sets` by Winograd (none, the deep layers,
  every layer), params passed as arguments (as in the optimisation loop, not
  folded into the program as constants), and the set ``--conv auto`` picks
  (:func:`jaxstyle.objective.winograd_layers`, its own timing, cached); and
  the float32 gradients' error against a float64 direct computation (the
  largest error relative to the largest gradient entry, and the RMS one), at
  the content plus uniform noise in [-8, 8]. With max pooling that error
  mostly counts near-ties of the 2x2 max that rounding flips
  (docs/BENCHMARKS.md, 2026-12-05).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxstyle
from bench_core import heading, images, publish
from jaxstyle import conv, vgg
from jaxstyle.optim import winograd
from jaxstyle.objective import prepare_params_jit
from jaxstyle.optim.solver import value_and_grad


def best_of(fns: dict, repeats: int) -> dict:
  """Best wall time of each ``name: (fn, args)``, repeats interleaved (this machine is shared)."""
  for fn, args in fns.values():
    jax.block_until_ready(fn(*args))
  best = {name: float("inf") for name in fns}
  for _ in range(repeats):
    for name, (fn, args) in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      best[name] = min(best[name], time.perf_counter() - start)
  return best


def _conv_and_grad(convolve):
  return jax.jit(jax.value_and_grad(lambda x, kernels, r: jnp.vdot(r, convolve(x, *kernels))))


def layer_rows(size: int) -> list[str]:
  key = jax.random.key(0)
  widths = vgg.layer_widths(1.0)
  rows = []
  cache = conv.ChoiceCache.default()
  by = {"direct": _conv_and_grad(vgg.conv3x3), "winograd": _conv_and_grad(vgg.winograd_conv3x3)}
  for name, (h, w) in vgg.conv_shapes("vgg19", (size, size), ["relu5_1"]).items():
    cin, cout = widths[name]
    x = jax.random.normal(key, (1, h, w, cin))
    kernel = jax.random.normal(key, (3, 3, cin, cout)) / np.sqrt(9 * cin)
    r = jax.random.normal(key, (1, h, w, cout))
    fns = {"direct": (by["direct"], (x, (kernel,), r))}
    for tile in winograd.TILES:
      kernels = (winograd.transform_kernel(kernel, tile),
                 winograd.transform_kernel(winograd.transpose_kernel(kernel), tile))
      fns[f"F{tile}"] = (by["winograd"], (x, kernels, r))
    repeats = int(np.clip(4e9 / (36 * h * w * cin * cout), 3, 20))
    best = best_of(fns, repeats)
    alone = conv.choose(conv.LayerShape(1, h, w, cin, cout, 3, grad=True, padding="zeros"),
                        cache)
    rows.append(f"| {size} | {name} | {h}x{w}x{cin}->{cout} | {best['direct'] * 1e3:.2f} | "
                f"{best['F2'] * 1e3:.2f} ({best['direct'] / best['F2']:.2f}x) | "
                f"{best['F4'] * 1e3:.2f} ({best['direct'] / best['F4']:.2f}x) | "
                f"{'F(2x2)' if alone == 'winograd' else 'direct'} |")
  return rows


def objective_row(size: int, weights: jaxstyle.Weights) -> str:
  content, style = images(size)
  params = jax.tree.map(jnp.asarray, weights.params)
  config = jaxstyle.StyleConfig(size=size)
  lw = jaxstyle.LossWeights.from_config(config)
  auto = jaxstyle.ObjectiveSpec.from_config(config, weights.convention,
                                            image_hw=content.shape[:2])
  sets = vgg.winograd_sets(config.network, auto.layers)
  # Content plus noise: at the content itself the content loss's gradient is ~0.
  x0 = jnp.asarray(content, jnp.float32) + jax.random.uniform(jax.random.key(0), content.shape,
                                                              minval=-8, maxval=8)
  fns, outputs = {}, {}
  for name, layers in sets.items():
    spec = dataclasses.replace(auto, winograd=layers)
    # Once per run, as stylize does: the targets and the objective share these kernels.
    prepared = prepare_params_jit(params, spec)
    targets = jaxstyle.make_targets(prepared, content, style, spec)
    program = jax.jit(lambda p, x, targets=targets, spec=spec:
                      value_and_grad(p, targets, lw, spec)(x))
    fns[name] = (program, (prepared, x0))
    outputs[name] = program(prepared, x0)
  best = best_of(fns, repeats=6)
  with jax.enable_x64(True):  # The reference the float32 gradients are measured against.
    params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    spec = dataclasses.replace(auto, winograd=())
    targets = jaxstyle.make_targets(params64, content, style, spec)
    exact = np.asarray(jax.jit(lambda x: value_and_grad(params64, targets, lw, spec)(x))(
        jnp.asarray(x0, jnp.float64))[1])
  errors = []
  for name in sets:
    g = np.asarray(outputs[name][1], np.float64)
    errors.append(f"{np.abs(g - exact).max() / np.abs(exact).max():.1e} / "
                  f"{np.sqrt(np.mean((g - exact) ** 2) / np.mean(exact ** 2)):.1e}")
  picked = next(name for name, layers in sets.items() if layers == auto.winograd)
  return (f"| {content.shape[1]}x{content.shape[0]} | "
          + " | ".join(f"{best[n] * 1e3:.1f} ({best['direct'] / best[n]:.2f}x)" for n in sets)
          + f" | {picked} | " + " | ".join(errors) + " |")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[96, 256])
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  weights = jaxstyle.random_weights(seed=0)
  layers = ["| size | layer | shape | direct (ms) | F(2x2) (ms) | F(4x4) (ms) | timed alone "
            "picks |", "|---|---|---|---|---|---|---|"]
  sets = tuple(vgg.winograd_sets("vgg19", ["relu5_1"]))
  whole = ["| image | " + " | ".join(f"f+∇f, set {n} (ms)" for n in sets)
           + " | auto picks | " + " | ".join(f"∇ error, {n} (max / rms)" for n in sets) + " |",
           "|---" * (2 + 2 * len(sets)) + "|"]
  for size in args.sizes:
    layers += layer_rows(size)
    whole.append(objective_row(size, weights))
    print("\n".join(layers[-9:] + whole[-1:]), flush=True)
  report = (heading("Winograd convolutions", "bench_winograd.py", argv,
                    "RANDOM full-width VGG19; per layer: forward + image gradient, best of "
                    "interleaved repeats, kernels transformed beforehand; whole: the default "
                    "objective's f+∇f, params as program arguments, with each candidate set of "
                    "Winograd layers")
            + "\n".join(layers) + "\n\n" + "\n".join(whole) + "\n")
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
