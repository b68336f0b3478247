"""The PyTorch side of bench_convs.py: each layer it names, timed in torch (eager), one JSON line.

    python benchmarks/_torch_convs.py < layers.json

Reads bench_convs.py's layer list (one home for it: that file); for each
layer runs what pytorch/examples' fast_neural_style does (ReflectionPad2d +
Conv2d, nearest ``interpolate`` first for upsampling layers) or, for VGG's
``zero`` layers, Conv2d(padding=1), forward under no_grad or forward and
backward (``grad``: ``input`` for the frozen VGG, ``both`` for a trained
layer). Also times a 2048² matmul: the machine's matmul rate.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F


def best_s(fn, repeats):
  fn()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def layer_fn(spec):
  g = torch.Generator().manual_seed(0)
  x = torch.randn(spec["n"], spec["cin"], spec["h"], spec["w"], generator=g)
  k = spec["k"]
  weight = torch.randn(spec["cout"], spec["cin"], k, k, generator=g) / k
  bias = torch.zeros(spec["cout"])

  def forward(x, weight):
    if spec["upsample"] > 1:
      x = F.interpolate(x, scale_factor=spec["upsample"], mode="nearest")
    if spec["pad"] == "reflect":
      return F.conv2d(F.pad(x, (k // 2,) * 4, mode="reflect"), weight, bias, spec["stride"])
    return F.conv2d(x, weight, bias, spec["stride"], padding=k // 2)

  if spec["grad"] == "none":
    def run():
      with torch.no_grad():
        forward(x, weight)
    return run
  x.requires_grad_(True)
  weight.requires_grad_(spec["grad"] == "both")

  def run():
    x.grad = weight.grad = None
    y = forward(x, weight)
    y.backward(torch.ones_like(y))
  return run


def main():
  request = json.load(sys.stdin)
  repeats = request["repeats"]
  a = torch.randn(2048, 2048)
  matmul_s = best_s(lambda: a @ a, repeats)
  times = {spec["name"]: best_s(layer_fn(spec), repeats) for spec in request["layers"]}
  print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                    "matmul_gflops": 2 * 2048 ** 3 / matmul_s / 1e9, "seconds": times}))


if __name__ == "__main__":
  main()
