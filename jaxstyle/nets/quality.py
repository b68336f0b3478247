"""How much of a photo a stylization keeps: one number training can watch.

A network trained with too little content weight (or, on random VGG features,
with the weights meant for trained ones) turns every photo into the same
texture; its loss still falls, so the loss does not say so. The number here
does: the correlation between the photo's edges and the output's,

    kept = corr(|∇ blur(Y(output))|, |∇ blur(Y(photo))|)

Pearson's correlation over pixels of the gradient magnitudes (Sobel) of the
luminance Y (YIQ's), each blurred first by a binomial filter of radius
:data:`BLUR_RADIUS` so that the style's fine texture weighs less than the
photo's structure. 1 for the photo itself, about 0 for a texture that
ignores it. A network whose held-out photos fall below
:data:`CONTENT_KEPT_WARNING` gets one warning during training
(``jaxstyle.nets.train.run``), naming the options that fix it.
"""

from __future__ import annotations

import numpy as np

from jaxstyle import color

BLUR_RADIUS = 2
#: Below this, training warns that the photo is being lost. Measured on the sample photos
#: (docs/BENCHMARKS.md, "content kept"): Johnson's objective on random VGG16 features at
#: content weight 1 gives 0.05-0.15 (grey textures); at content weight 1e2, 0.4-0.6.
CONTENT_KEPT_WARNING = 0.25
CONTENT_KEPT_FIX = ("raise --content-weight (or lower --style-weight): random VGG features "
                    "need a content weight near 1e2 where trained ones work at 1")


class ContentLostWarning(UserWarning):
  """A network in training turns held-out photos into textures that keep little of them."""


def _blur(y_HxW: np.ndarray, radius: int) -> np.ndarray:
  """A separable binomial blur (edge-replicated), radius ``radius``."""
  kernel = np.array([1.0])
  for _ in range(2 * radius):
    kernel = np.convolve(kernel, [0.5, 0.5])
  padded = np.pad(y_HxW, radius, mode="edge")
  rows = np.apply_along_axis(np.convolve, 1, padded, kernel, mode="valid")
  return np.apply_along_axis(np.convolve, 0, rows, kernel, mode="valid")


def edge_magnitude(rgb_HxWx3, *, radius: int = BLUR_RADIUS) -> np.ndarray:
  """|∇ blur(Y)|: the Sobel gradient magnitude of the blurred luminance, H x W."""
  y = _blur(color.rgb_to_yiq(rgb_HxWx3)[..., 0], radius)
  p = np.pad(y, 1, mode="edge")
  gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
  gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
  return np.hypot(gx, gy)


def content_kept(output_HxWx3, photo_HxWx3) -> float:
  """corr(|∇ blur(Y(output))|, |∇ blur(Y(photo))|), in [-1, 1] (see the module docstring)."""
  if np.shape(output_HxWx3) != np.shape(photo_HxWx3):
    raise ValueError(f"expected an output of the photo's shape {np.shape(photo_HxWx3)}, got "
                     f"{np.shape(output_HxWx3)}")
  a, b = edge_magnitude(output_HxWx3).ravel(), edge_magnitude(photo_HxWx3).ravel()
  a, b = a - a.mean(), b - b.mean()
  scale = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / scale) if scale > 0 else 0.0
