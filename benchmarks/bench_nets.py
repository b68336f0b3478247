"""Feed-forward networks against PyTorch's fast_neural_style, same weights, this machine.

    python benchmarks/bench_nets.py [--torch-python PATH] [--size 512] [--crop 256]

(a) apply: one 512 px image through Johnson's network (width 1), jaxstyle's
Stylizer (what ``jaxstyle apply`` runs, ``--conv auto`` by default) against torch's eager one, on the *same* weights (torch
saves the network, ``jaxstyle models convert`` imports that file); the
outputs are compared too. (b) a training step, batch 4 of 256 px, VGG16
loss (relu2_2 content, relu1_2/2_2/3_3/4_3 Grams; random VGG16 weights,
which cost what trained ones do), jaxstyle's compiled ``train_step`` against
the example's step (forward, VGG on output and input, backward, Adam).
Compile time is reported apart. (c) and (d), for timing only (random weights
on each side, outputs not compared): the network with conditional instance
norm over 4 styles applied as (a), and the AdaIN decoder alone on a ``--size``
image's relu4_1 features, against pytorch-AdaIN's decoder. The torch side
runs in ``--torch-python`` (default: this Python), which needs torch
installed; jaxstyle does not.

``--phases`` adds where jaxstyle's step goes: each phase of it jitted alone at
the step's shapes (best of the repeats), beside the whole step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import add_network_comparison_options, heading, publish  # noqa: E402

import jaxstyle  # noqa: E402
from jaxstyle import conv, presets  # noqa: E402
from jaxstyle.nets import models  # noqa: E402
from jaxstyle.nets.adain import AdaINNet, AdaINSpec  # noqa: E402
from jaxstyle.nets.apply import Stylizer, _Compiled  # noqa: E402
from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec  # noqa: E402
from jaxstyle.nets.layers import plan  # noqa: E402
from jaxstyle.nets.train import _Static, batch_objectives, train_step  # noqa: E402
from jaxstyle.objective import (LossWeights, ObjectiveSpec, features,  # noqa: E402
                                network_features, run_params, stack, style_targets)


def timed(fn, repeats: int) -> float:
  jax.block_until_ready(fn())
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn())
  return (time.perf_counter() - start) / repeats


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  add_network_comparison_options(parser, repeats=6)
  parser.add_argument("--conv", default="auto", choices=conv.CHOICES,
                      help="the networks' convolutions, as jaxstyle's --conv (default: auto)")
  parser.add_argument("--phases", action="store_true",
                      help="also time each phase of jaxstyle's training step alone")
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  work = Path(tempfile.mkdtemp())
  proc = subprocess.run([args.torch_python, str(Path(__file__).parent / "_torch_nets.py"),
                         str(work), str(args.size), str(args.batch), str(args.crop),
                         str(args.repeats)], capture_output=True, text=True)
  if proc.returncode:
    raise SystemExit(f"bench_nets: the torch side failed (needs torch in {args.torch_python}; "
                     f"pass --torch-python): {proc.stderr.strip()[-500:]}")
  torch_row = json.loads(proc.stdout.strip().splitlines()[-1])

  # (a) apply, same weights, as `jaxstyle apply` runs it: --conv auto (its choices measured on
  # the first call, or read from the cache), the float image rounded to uint8 on the host.
  net, _ = models.load_model(models.convert_pth(work / "transformer.pth", work / "model"))
  image = np.load(work / "input.npy")
  stylizer = Stylizer(net, conv=args.conv)
  start = time.perf_counter()
  stylizer(image[None])
  apply_compile = time.perf_counter() - start
  apply_s = timed(lambda: stylizer(image[None]), args.repeats)
  forward = stylizer._forward  # The same compiled program, before rounding: compare with torch.
  out = forward(jnp.asarray(image[None]), jnp.ones((1, 1)))
  difference = float(np.abs(np.asarray(out[0]) - np.load(work / "torch_out.npy")).max())
  apply_plan = conv.summary(next(iter(stylizer.conv_record()["plans"].values())))

  # (b) one training step.
  weights = jaxstyle.random_weights(seed=0, network="vgg16")
  objective = presets.perceptual_vgg16().replace(size=args.crop, conv=args.conv)
  spec = ObjectiveSpec.from_config(objective, weights.convention,  # As train does.
                                   image_hw=(args.crop, args.crop))
  vgg = run_params(weights, spec)
  vgg_layers = jaxstyle.vgg.layers_through("vgg16", spec.layers)
  rng = np.random.default_rng(0)
  style = rng.uniform(0, 255, (args.crop, args.crop, 3)).astype(np.uint8)
  at_crop = features(vgg, jnp.zeros((args.crop, args.crop, 3)), spec.layers, spec)
  targets = stack([style_targets(vgg, at_crop, [style], spec, None)])
  model = JohnsonNet(JohnsonSpec(), rngs=nnx.Rngs(0))
  photos = jnp.asarray(rng.uniform(0, 255, (args.batch, args.crop, args.crop, 3)), jnp.float32)
  train_plan = conv.summary(plan(model, model, photos, jnp.ones((args.batch, 1)), grad=True,
                                 conv=args.conv))  # As jaxstyle.nets.train.train does.
  graphdef, state = nnx.split(model)
  state = nnx.to_pure_dict(state)
  import optax
  opt_state = optax.adam(1e-3).init(state)
  styles_b = jnp.zeros((args.batch,), jnp.int32)
  static = _Static(spec, 1, 1e-3)
  lw = LossWeights.from_config(objective)
  carry = {"state": state, "opt": opt_state}

  def one_step():
    carry["state"], carry["opt"], terms = train_step(carry["state"], carry["opt"], graphdef,
                                                     vgg, targets, photos, styles_b, lw, static)
    return terms["total"]

  start = time.perf_counter()
  jax.block_until_ready(one_step())
  train_compile = time.perf_counter() - start
  train_s = timed(one_step, max(1, args.repeats // 2))

  # (c) conditional instance norm, applied as (a); (d) the AdaIN decoder alone.
  cin = Stylizer(JohnsonNet(JohnsonSpec(1.0, styles=torch_row["styles"]), rngs=nnx.Rngs(0)),
                 conv=args.conv)
  start = time.perf_counter()
  cin(image[None])
  cin_compile = time.perf_counter() - start
  cin_s = timed(lambda: cin(image[None]), args.repeats)
  decoder = _Compiled(AdaINNet(AdaINSpec(1.0), rngs=nnx.Rngs(0)).decoder, "__call__", args.conv)
  t = jnp.asarray(np.random.default_rng(4).uniform(0, 1, (1, args.size // 8, args.size // 8,
                                                           512)), jnp.float32)
  start = time.perf_counter()
  jax.block_until_ready(decoder(t))
  decoder_compile = time.perf_counter() - start
  decoder_s = timed(lambda: decoder(t), args.repeats)

  report = heading(
      "Feed-forward networks: apply and a training step against PyTorch", "bench_nets.py",
      argv, f"torch {torch_row['torch']} ({torch_row['threads']} threads), eager, "
      "fast_neural_style's TransformerNet; both sides run the same weights (torch saved them, "
      "jaxstyle converted the file); compile times apart",
      f"the outputs of (a) differ by at most {difference:.2e} (values 0-255 scale)",
      "PyTorch's forwards as a fresh process runs them (its defaults); the last column: the "
      "same after its training step, once glibc's heap has grown (no page faults for large "
      "buffers; jaxstyle's time does not change with glibc's settings)",
      f"--conv {args.conv}: apply ran {apply_plan}; the training step {train_plan} (layers per "
      f"algorithm), its VGG16 loss {len(spec.winograd)} of {len(vgg_layers)} layers by "
      "Winograd; apply's time includes rounding to uint8 and the copy to the host")
  after = torch_row["after_training"]

  def row(what, ours, key, compiled):
    warmed = (f"{after[key]:.3f} ({ours / after[key]:.2f})" if key in after else "")
    return (f"| {what} | {ours:.3f} | {torch_row[key]:.3f} | {ours / torch_row[key]:.2f} | "
            f"{compiled:.1f} | {warmed} |\n")
  report += ("| what | jaxstyle (s) | PyTorch (s) | jaxstyle / PyTorch | jaxstyle compile (s) | "
             "PyTorch, heap grown (s, ratio) |\n|---|---|---|---|---|---|\n"
             + row(f"apply, 1 image {args.size}x{args.size}", apply_s, "apply_s", apply_compile)
             + row(f"training step, batch {args.batch} x {args.crop} px, VGG16 loss", train_s,
                   "train_step_s", train_compile)
             + row(f"apply, conditional instance norm ({torch_row['styles']} styles), 1 image "
                   f"{args.size}x{args.size}", cin_s, "cin_apply_s", cin_compile)
             + row(f"AdaIN decoder, relu4_1 of a {args.size} px image", decoder_s,
                   "adain_decoder_s", decoder_compile))
  if args.phases:
    report += "\nWhere jaxstyle's step goes, each phase jitted alone (ms, best of " \
              f"{args.repeats}):\n\n| phase | ms |\n|---|---|\n"
    report += "".join(f"| {name} | {ms:.0f} |\n" for name, ms in step_phases(
        graphdef, carry["state"], vgg, targets, photos, styles_b, lw, spec, args.repeats))
  publish(report, append=not args.no_append)


def step_phases(graphdef, state, vgg, targets, photos, styles_b, lw, spec, repeats: int):
  """(phase, ms) for the parts of ``train_step``, each compiled alone with its inputs as
  arguments (as constants XLA would fold them at compile time)."""
  onehot = jnp.ones((photos.shape[0], 1))

  def forward(state, photos):
    return nnx.merge(graphdef, state)(photos, onehot)

  def network_vjp(state, photos, cotangent):
    return jax.vjp(lambda s: forward(s, photos), state)[1](cotangent)

  def content(vgg, photos):
    return network_features(vgg, photos, spec.content_layers, spec)

  def objectives(vgg, out, content):
    return batch_objectives(vgg, targets, out, content, styles_b, lw, spec)["total"].mean()

  def best_ms(fn, *args):
    return 1e3 * conv.best_seconds(jax.jit(fn), *args, repeats=repeats)

  out = jax.jit(forward)(state, photos)
  features_of_photos = jax.jit(content)(vgg, photos)
  rows = [("Johnson forward", best_ms(forward, state, photos)),
          ("Johnson forward + gradient to its params",
           best_ms(network_vjp, state, photos, jnp.ones_like(out))),
          ("VGG16 content features of the photos", best_ms(content, vgg, photos)),
          ("VGG16 objective of the outputs, forward", best_ms(objectives, vgg, out,
                                                             features_of_photos)),
          ("VGG16 objective, forward + image gradient",
           best_ms(jax.grad(objectives, 1), vgg, out, features_of_photos))]
  parts = rows[1][1] + rows[2][1] + rows[4][1]
  return rows + [("the step's phases together (rows 2, 3 and 5)", parts)]


if __name__ == "__main__":
  main()
