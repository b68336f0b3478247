"""The PyTorch side of bench_nets.py, run by a Python that has torch (jaxstyle does not need it).

    python benchmarks/_torch_nets.py WORKDIR SIZE BATCH CROP REPEATS

Builds the fast_neural_style TransformerNet at width 1 (seed 0) and saves it
to WORKDIR/transformer.pth (bench_nets.py converts that very file, so both
sides run the same weights), then times (a) its forward on SIZE x SIZE
images, batch 1, as the example's ``stylize`` runs it, and (b) the example's
training step: batch BATCH of CROP px, VGG16 features at relu1_2, relu2_2,
relu3_3, relu4_3 (random weights: same cost as trained ones), content MSE at
relu2_2, Gram MSE, Adam lr 1e-3. Then, for timing only (random weights on
each side, outputs not compared), the forward of (c) the same network with
conditional instance norm over STYLES styles (Dumoulin et al.: each norm's
scale and shift are a style mix's) and (d) the AdaIN decoder as
pytorch-AdaIN builds it, on the relu4_1 features of a SIZE px image. The
forwards are timed in the fresh process, as users run an eval (the table's
figures), and again after the training step, where glibc's allocator has
grown and they run 25-35% faster (``after_training``). Prints one JSON line.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
from make_transformer_fixture import TransformerNet  # noqa: E402

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)  # Through relu4_3.
TAPS = (3, 8, 15, 22)  # Module indices of relu1_2, relu2_2, relu3_3, relu4_3.


def vgg16_features():
  layers, cin = [], 3
  for v in VGG16:
    if v == "M":
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
      cin = v
  return nn.Sequential(*layers).eval()


def taps(vgg, x):
  out = []
  for i, layer in enumerate(vgg):
    x = layer(x)
    if i in TAPS:
      out.append(x)
  return out


def gram(f):
  b, c, h, w = f.shape
  f = f.view(b, c, h * w)
  return f.bmm(f.transpose(1, 2)) / (c * h * w)


STYLES = 4
"""(c): the conditional network's styles (bench_nets.py builds jaxstyle's with as many)."""


class CondInstanceNorm(nn.Module):
  """Instance norm whose scale and shift are those of a style mix s: IN(x)·(sΓ) + sB."""

  def __init__(self, channels, styles):
    super().__init__()
    self.norm = nn.InstanceNorm2d(channels, affine=False)
    self.gamma = nn.Parameter(1 + 0.1 * torch.randn(styles, channels))
    self.beta = nn.Parameter(0.1 * torch.randn(styles, channels))
    self.mix = torch.eye(styles)[:1]

  def forward(self, x):
    scale, shift = self.mix @ self.gamma, self.mix @ self.beta
    return self.norm(x) * scale[..., None, None] + shift[..., None, None]


def conditional(net, styles):
  """``net`` with every InstanceNorm2d made a CondInstanceNorm over ``styles``."""
  for module in list(net.modules()):
    for name, child in list(module.named_children()):
      if isinstance(child, nn.InstanceNorm2d):
        setattr(module, name, CondInstanceNorm(child.num_features, styles))
  return net


def adain_decoder():
  """pytorch-AdaIN's decoder, relu4_1 (512 channels) to RGB: reflection-padded 3x3 convs."""
  def conv(cin, cout, relu=True):
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)] + ([nn.ReLU()] if relu else [])

  def up():
    return [nn.Upsample(scale_factor=2, mode="nearest")]
  return nn.Sequential(*conv(512, 256), *up(), *conv(256, 256), *conv(256, 256), *conv(256, 256),
                       *conv(256, 128), *up(), *conv(128, 128), *conv(128, 64), *up(),
                       *conv(64, 64), *conv(64, 3, relu=False)).eval()


def forward_seconds(module, x, repeats):
  """Seconds per forward, no gradients, after a warm-up (as (a) times the network)."""
  with torch.no_grad():
    module(x)
    start = time.perf_counter()
    for _ in range(repeats):
      module(x)
    return (time.perf_counter() - start) / repeats


def normalize(batch):
  mean = torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
  std = torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)
  return (batch / 255.0 - mean) / std


def main():
  workdir, size, batch, crop, repeats = sys.argv[1], *map(int, sys.argv[2:6])
  torch.set_num_threads(torch.get_num_threads())
  torch.manual_seed(0)
  net = TransformerNet(1.0)
  torch.save(net.state_dict(), Path(workdir) / "transformer.pth")
  image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)) * 255
  net.eval()
  with torch.no_grad():
    out = net(image)  # Warm-up.
    start = time.perf_counter()
    for _ in range(repeats):
      out = net(image)
    apply_s = (time.perf_counter() - start) / repeats
  np.save(Path(workdir) / "torch_out.npy", out[0].permute(1, 2, 0).numpy())
  np.save(Path(workdir) / "input.npy", image[0].permute(1, 2, 0).numpy())
  # The forwards are timed again after the training step, where the same eval forwards run
  # 25-35% faster: a large backward pass grows glibc's heap and raises its mmap threshold, and
  # the forwards' large buffers then come without page faults (measured: one backward of
  # 4 x 256 px does it, 16 eval forwards alone do not; glibc tunables do part of it).
  cin = conditional(TransformerNet(1.0), STYLES).eval()
  features = torch.rand(1, 512, size // 8, size // 8, generator=torch.Generator().manual_seed(4))
  decoder = adain_decoder()
  forwards = {"apply_s": (net, image), "cin_apply_s": (cin, image),
              "adain_decoder_s": (decoder, features)}
  seconds = {key: forward_seconds(module, x, repeats) for key, (module, x) in forwards.items()}
  seconds["apply_s"] = min(seconds["apply_s"], apply_s)  # Both are the fresh process's.

  net.train()
  vgg = vgg16_features()
  for p in vgg.parameters():
    p.requires_grad_(False)
  style = torch.rand(1, 3, crop, crop, generator=torch.Generator().manual_seed(2)) * 255
  style_grams = [gram(f) for f in taps(vgg, normalize(style))]
  photos = torch.rand(batch, 3, crop, crop, generator=torch.Generator().manual_seed(3)) * 255
  opt = torch.optim.Adam(net.parameters(), 1e-3)
  mse = nn.MSELoss()

  def step():
    opt.zero_grad()
    y = net(photos)
    fy, fx = taps(vgg, normalize(y)), taps(vgg, normalize(photos))
    content = 1e5 * mse(fy[1], fx[1])
    style_loss = 1e10 * sum(mse(gram(f), g[:batch].expand_as(gram(f)))
                            for f, g in zip(fy, style_grams))
    (content + style_loss).backward()
    opt.step()

  step()  # Warm-up.
  start = time.perf_counter()
  for _ in range(max(1, repeats // 2)):
    step()
  train_s = (time.perf_counter() - start) / max(1, repeats // 2)
  net.eval()
  after = {key: forward_seconds(module, x, repeats) for key, (module, x) in forwards.items()}
  print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                    "train_step_s": train_s, "styles": STYLES, **seconds,
                    "after_training": after}))


if __name__ == "__main__":
  main()
