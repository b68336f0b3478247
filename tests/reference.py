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


def tap(features: dict, name: str) -> np.ndarray:
  """A layer by its user-facing name: reluB_I / blockB_convI after the ReLU, convB_I before."""
  if name.startswith("relu"):
    return features["block%s_conv%s" % tuple(name[4:].split("_"))]
  if name.startswith("conv"):
    return features["pre " + name[4:]]
  return features[name]


def w2_squared(F_HxWxC, mean_N, cov_NxN):
  """W₂² between the Gaussian fitted to F (biased covariance) and N(mean, cov), with scipy's sqrtm."""
  import warnings

  from scipy.linalg import sqrtm
  X = F_HxWxC.reshape(-1, F_HxWxC.shape[-1]).astype(np.float64)
  mu = X.mean(0)
  cov = (X - mu).T @ (X - mu) / len(X)
  with warnings.catch_warnings():  # Dead ReLU channels make both singular; sqrtm copes.
    warnings.simplefilter("ignore")
    root = np.real(sqrtm(cov_NxN))
    cross = np.real(sqrtm(root @ cov @ root))
  return np.sum((mu - mean_N) ** 2) + np.trace(cov) + np.trace(cov_NxN) - 2 * np.trace(cross)


def objective_terms(params, x, content, styles, *, content_layers=("relu4_2",),
                    content_norm="half_sum", style_layers=("relu1_1", "relu2_1", "relu3_1",
                                                           "relu4_1", "relu5_1"),
                    layer_weights=(0.2,) * 5, style_norm="gatys", style_loss="gram",
                    blend=None, masks=None, tv_beta=2.0, pooling="max", depths=VGG19_DEPTHS):
  """The unweighted content, style and TV terms of RGB 0-255 image ``x`` (caffe weights).

  Written from the papers' formulas. ``styles`` are RGB images; ``blend``
  their weights b_k (target Gram Σ b_k G_k·M_x/M_k); ``masks`` one H x W
  mask per style, matched with guided Grams (F·m_k against G_k/M_k·Σm_k²).
  """
  def forward(img):
    return vgg19_forward(params, preprocess_caffe(img), pooling, depths)

  fx, fc = forward(x), forward(content)
  fs = [forward(s) for s in styles]
  blend = blend if blend is not None else [1.0 / len(styles)] * len(styles)
  content_term = 0.0
  for name in content_layers:
    squared = np.sum((tap(fx, name) - tap(fc, name)) ** 2)
    content_term += {"half_sum": squared / 2, "sum": squared,
                     "mean": squared / tap(fx, name).size}[content_norm]
  style_term = 0.0
  for name, w in zip(style_layers, layer_weights):
    F = tap(fx, name)
    M, N = F.shape[0] * F.shape[1], F.shape[2]
    S = [tap(f, name) for f in fs]
    if masks is not None:
      for S_k, m in zip(S, masks):
        for _ in range(int(name[4]) - 1):  # One 2x2 average per pooling before the layer.
          m = pool2x2(m[..., None], "avg")[..., 0]
        weight = np.sum(m**2)
        A = gram(S_k) / (S_k.shape[0] * S_k.shape[1]) * weight
        style_term += w * np.sum((gram(F * m[..., None]) - A) ** 2) / (4 * N**2 * weight**2)
      continue
    if style_loss == "w2":
      flat = [s.reshape(-1, N).astype(np.float64) for s in S]
      mean = sum(b * f.mean(0) for b, f in zip(blend, flat))
      second = sum(b * f.T @ f / len(f) for b, f in zip(blend, flat))
      style_term += w * w2_squared(F, mean, second - np.outer(mean, mean))
      continue
    if style_loss == "mean_std":  # Huang & Belongie eq. 13, σ = √(var + 1e-5), MSE over channels.
      X = F.reshape(-1, N).astype(np.float64)
      flat = [s.reshape(-1, N).astype(np.float64) for s in S]
      mean = sum(b * f.mean(0) for b, f in zip(blend, flat))
      var = sum(b * (f**2).mean(0) for b, f in zip(blend, flat)) - mean**2
      std_x, std_s = np.sqrt(X.var(0) + 1e-5), np.sqrt(var + 1e-5)
      style_term += w * (np.mean((X.mean(0) - mean) ** 2) + np.mean((std_x - std_s) ** 2))
      continue
    A = sum(b * gram(s) * M / (s.shape[0] * s.shape[1]) for b, s in zip(blend, S))
    squared = np.sum((gram(F) - A) ** 2)
    pixels = x.shape[0] * x.shape[1]
    style_term += w * squared / {"gatys": 4 * N**2 * M**2, "chw": N**4 * M**2,
                                 "hw": N**2 * M**2, "keras": 4 * 9 * pixels**2}[style_norm]
  return {"content": content_term, "style": style_term, "tv": tv_loss(x, tv_beta)}
