"""Independent NumPy (float64) references for the formulas jaxstyle implements.

Written from the papers' definitions, not from jaxstyle's code: loops and
explicit sums where that makes the formula plain.
"""

import numpy as np

VGG19_DEPTHS = (2, 2, 4, 4, 4)
VGG16_DEPTHS = (2, 2, 3, 3, 3)


def conv3x3_same(x_HxWxCin, kernel_3x3xCinxCout, bias):
  """Cross-correlation with zero padding 1, as Caffe, Keras and torch compute it."""
  x = np.pad(x_HxWxCin.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
  H, W = x_HxWxCin.shape[:2]
  out = np.zeros((H, W, kernel_3x3xCinxCout.shape[-1]))
  for dy in range(3):
    for dx in range(3):
      out += x[dy:dy + H, dx:dx + W, :] @ kernel_3x3xCinxCout[dy, dx].astype(np.float64)
  return out + bias


def pool2x2(x_HxWxC, mode):
  H, W, C = x_HxWxC.shape
  blocks = x_HxWxC[: H // 2 * 2, : W // 2 * 2].reshape(H // 2, 2, W // 2, 2, C)
  return blocks.max(axis=(1, 3)) if mode == "max" else blocks.mean(axis=(1, 3))


def vgg19_forward(params, x_HxWx3, pooling="max", depths=VGG19_DEPTHS):
  """All post-ReLU activations, keyed blockB_convI, and pre-ReLU ones, keyed "pre B_I"."""
  out, x = {}, x_HxWx3
  for block, depth in enumerate(depths, start=1):
    if block > 1:
      x = pool2x2(x, pooling)
    for i in range(1, depth + 1):
      name = f"block{block}_conv{i}"
      x = conv3x3_same(x, np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"]))
      out[f"pre {block}_{i}"] = x
      x = np.maximum(x, 0)
      out[name] = x
  return out


def vgg16_forward(params, x_HxWx3, pooling="max"):
  return vgg19_forward(params, x_HxWx3, pooling, depths=VGG16_DEPTHS)


def gram(F_HxWxC):
  F = F_HxWxC.reshape(-1, F_HxWxC.shape[-1]).astype(np.float64)
  N = F.shape[1]
  return np.array([[np.dot(F[:, i], F[:, j]) for j in range(N)] for i in range(N)])


def style_layer_loss(F_HxWxC, A_CxC):
  M = F_HxWxC.shape[0] * F_HxWxC.shape[1]
  N = F_HxWxC.shape[2]
  return np.sum((gram(F_HxWxC) - A_CxC) ** 2) / (4 * N**2 * M**2)


def content_loss(F, P):
  return 0.5 * np.sum((F.astype(np.float64) - P) ** 2)


def tv_loss(x_HxWxC, beta=2.0):
  x = x_HxWxC.astype(np.float64)
  H, W, _ = x.shape
  total = 0.0
  for i in range(H - 1):
    for j in range(W - 1):
      dx = x[i, j + 1] - x[i, j]
      dy = x[i + 1, j] - x[i, j]
      total += np.sum((dx**2 + dy**2) ** (beta / 2))
  return total


def preprocess_caffe(rgb):
  return rgb[..., ::-1].astype(np.float64) - np.array([103.939, 116.779, 123.68])


def preprocess_torch(rgb):
  return (rgb / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
