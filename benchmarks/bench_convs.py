"""Every convolution of the Johnson net (512 px) and of the VGG16 loss (256 px), per layer,
jaxstyle's algorithms against PyTorch's in one run.

    python benchmarks/bench_convs.py [--torch-python PATH] [--size 512] [--crop 256] [--batch 4]

Three tables, ms per layer (best of ``--repeats``), GFLOP/s of the chosen
algorithm and that as a share of the machine's matmul rate (a 2048² matmul,
measured in the same run on both sides):

1. Johnson's network applied to one ``--size`` image (forward): jaxstyle
   0.3's form (reflect pad + ``VALID``), XLA's convolution in its fast form
   (``direct``), what ``--conv auto`` chose for the layer, and PyTorch
   (ReflectionPad2d + Conv2d; nearest ``interpolate`` first where the layer
   upsamples), as pytorch/examples' fast_neural_style runs it.
2. The same layers in a training step: batch ``--batch`` of ``--crop`` px,
   forward and both gradients (image and kernel).
3. The VGG16 loss network's layers (through relu4_3, zero padding) at the
   training step's size, forward and the image's gradient (VGG is frozen):
   ``direct`` (jaxstyle.conv.conv3x3) and Winograd F(2x2) from precomputed
   kernels (jaxstyle.conv.time_layer), and which of them a training step runs (``--conv
   auto`` times whole sets of layers on the loss: jaxstyle.objective.winograd_layers).

The layer list lives here once; the torch side (_torch_convs.py) reads it.
Writes the choices it measures to jaxstyle's conv cache, as ``jaxstyle bench
convs`` does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import add_network_comparison_options, heading, publish  # noqa: E402

from jaxstyle import conv, vgg
from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec  # noqa: E402
from jaxstyle.nets.layers import layer_shapes  # noqa: E402


def johnson_layers(batch: int, side: int, grad: bool) -> list[dict]:
  """Each distinct convolution of Johnson's net (width 1) at ``side``, with how often it occurs."""
  from flax import nnx
  net = JohnsonNet(JohnsonSpec(), rngs=nnx.Rngs(0))
  shapes = layer_shapes(net, net, jax.ShapeDtypeStruct((batch, side, side, 3), jnp.float32),
                             jax.ShapeDtypeStruct((batch, 1), jnp.float32), grad=grad)
  layers: dict[conv.LayerShape, dict] = {}
  for name, s in shapes.items():
    if s in layers:
      layers[s]["count"] += 1
      continue
    layers[s] = {"name": f"{name} ({'train' if grad else 'apply'})", "shape": s, "count": 1,
                 "n": s.batch, "h": s.height, "w": s.width, "cin": s.cin, "cout": s.cout,
                 "k": s.kernel, "stride": s.stride, "upsample": s.upsample, "pad": "reflect",
                 "grad": "both" if grad else "none"}
  return list(layers.values())


def vgg16_layers(batch: int, side: int) -> list[dict]:
  """VGG16's convolutions through relu4_3 (the perceptual loss's deepest tap) at ``side``."""
  hw = vgg.conv_shapes("vgg16", (side, side), ["block4_conv3"])
  widths = vgg.layer_widths(1.0, "vgg16")
  return [{"name": f"VGG16 {name}", "count": 1, "n": batch, "h": h, "w": w, "cin": widths[name][0],
           "cout": widths[name][1], "k": 3, "stride": 1, "upsample": 1, "pad": "zero",
           "grad": "input", "shape": conv.LayerShape(batch, h, w, *widths[name], 3, grad=True,
                                                     padding="zeros")}
          for name, (h, w) in hw.items()]


def flops(layer: dict) -> float:
  """Multiply-adds x 2 of the forward convolution (x 3 with both gradients, x 2 with one)."""
  out_h = (layer["h"] * layer["upsample"]) // layer["stride"]
  out_w = (layer["w"] * layer["upsample"]) // layer["stride"]
  forward = 2 * layer["n"] * out_h * out_w * layer["k"] ** 2 * layer["cin"] * layer["cout"]
  return forward * {"none": 1, "input": 2, "both": 3}[layer["grad"]]


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  add_network_comparison_options(parser, repeats=3)
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)
  tables = {"apply": johnson_layers(1, args.size, False),
            "train": johnson_layers(args.batch, args.crop, True),
            "vgg": vgg16_layers(args.batch, args.crop)}
  request = {"repeats": args.repeats,
             "layers": [{k: v for k, v in layer.items() if k != "shape"}
                        for rows in tables.values() for layer in rows]}
  proc = subprocess.run([args.torch_python, str(Path(__file__).parent / "_torch_convs.py")],
                        input=json.dumps(request), capture_output=True, text=True)
  if proc.returncode:
    raise SystemExit(f"bench_convs: the torch side failed (needs torch in {args.torch_python}; "
                     f"pass --torch-python): {proc.stderr.strip()[-500:]}")
  torch_side = json.loads(proc.stdout.strip().splitlines()[-1])
  a = jnp.asarray(np.random.default_rng(0).standard_normal((2048, 2048)), jnp.float32)
  matmul = 2 * 2048 ** 3 / conv.best_seconds(jax.jit(lambda a: a @ a), a, repeats=args.repeats) / 1e9
  cache = conv.ChoiceCache.default()
  # What a training step at this crop runs: --conv auto's set for the perceptual loss.
  from jaxstyle import presets
  from jaxstyle.objective import ObjectiveSpec
  vgg_winograd = ObjectiveSpec.from_config(presets.perceptual_vgg16().replace(size=args.crop),
                                           "caffe", image_hw=(args.crop, args.crop)).winograd

  report = heading(
      "Convolutions per layer: jaxstyle's algorithms against PyTorch", "bench_convs.py", argv,
      f"torch {torch_side['torch']} ({torch_side['threads']} threads), eager; matmul (2048², "
      f"float32): jax {matmul:.0f} GFLOP/s, torch {torch_side['matmul_gflops']:.0f} GFLOP/s",
      "ms per layer, best of the repeats; x N: the layer occurs N times (totals count each); "
      "GFLOP/s of the chosen algorithm, % of jax's matmul rate")
  titles = {"apply": f"Johnson net, apply: 1 x {args.size}² forward",
            "train": f"Johnson net, training: {args.batch} x {args.crop}², forward + both "
                     "gradients",
            "vgg": f"VGG16 loss network through relu4_3: {args.batch} x {args.crop}², forward + "
                   "image gradient (frozen)"}
  for key, rows in tables.items():
    report += f"**{titles[key]}**\n\n"
    if key == "vgg":
      report += ("| layer | Cin -> Cout | H x W | direct | Winograd | auto runs | PyTorch | "
                 "auto / PyTorch | GFLOP/s (% matmul) |\n|---|---|---|---|---|---|---|---|---|\n")
    else:
      report += ("| layer | Cin -> Cout, k, stride, up | H x W in | 0.3 form (VALID) | direct | "
                 "auto's choice | PyTorch | auto / PyTorch | GFLOP/s (% matmul) |\n"
                 "|---|---|---|---|---|---|---|---|---|\n")
    totals = {"old": 0.0, "direct": 0.0, "chosen": 0.0, "torch": 0.0}
    for layer in rows:
      torch_s = torch_side["seconds"][layer["name"]]
      count = layer["count"]
      if key == "vgg":
        times = {a: conv.time_layer(layer["shape"], a, repeats=args.repeats)
                 for a in ("direct", "winograd")}
        pick = "winograd" if layer["name"].removeprefix("VGG16 ") in vgg_winograd else "direct"
        old, chosen = times["direct"], times[pick]
        cells = f"{times['direct'] * 1e3:.1f} | {times['winograd'] * 1e3:.1f} | {pick}"
      else:
        shape = layer["shape"]
        pick = conv.choose(shape, cache, log=lambda m: print(m, file=sys.stderr))
        old = conv.time_layer(shape, "valid", repeats=args.repeats)
        direct = conv.time_layer(shape, "direct", repeats=args.repeats)
        chosen = conv.time_layer(shape, pick, repeats=args.repeats)
        totals["direct"] += count * direct
        cells = (f"{old * 1e3:.1f} | {direct * 1e3:.1f} | {pick} {chosen * 1e3:.1f}")
      totals["old"] += count * old
      totals["chosen"] += count * chosen
      totals["torch"] += count * torch_s
      rate = flops(layer) / chosen / 1e9
      label = layer["name"].split(" (")[0] + (f" x {count}" if count > 1 else "")
      report += (f"| {label} | {layer['cin']} -> {layer['cout']}, {layer['k']}, "
                 f"{layer['stride']}, {layer['upsample']} | {layer['h']} x {layer['w']} | {cells} | "
                 f"{torch_s * 1e3:.1f} | {chosen / torch_s:.2f} | {rate:.0f} "
                 f"({100 * rate / matmul:.0f}%) |\n") if key != "vgg" else (
          f"| {label} | {layer['cin']} -> {layer['cout']} | {layer['h']} x {layer['w']} | "
          f"{cells} | {torch_s * 1e3:.1f} | {chosen / torch_s:.2f} | {rate:.0f} "
          f"({100 * rate / matmul:.0f}%) |\n")
    if key == "vgg":
      report += (f"| **all** | | | **{totals['old'] * 1e3:.0f}** | | **{totals['chosen'] * 1e3:.0f}**"
                 f" | **{totals['torch'] * 1e3:.0f}** | **{totals['chosen'] / totals['torch']:.2f}**"
                 " | |\n\n")
    else:
      report += (f"| **all** | | | **{totals['old'] * 1e3:.0f}** | **{totals['direct'] * 1e3:.0f}**"
                 f" | **{totals['chosen'] * 1e3:.0f}** | **{totals['torch'] * 1e3:.0f}** | "
                 f"**{totals['chosen'] / totals['torch']:.2f}** | |\n\n")
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
