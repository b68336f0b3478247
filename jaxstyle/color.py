"""Colour control (Gatys, Bethge, Hertzmann & Shechtman, CVPR 2017, sec. 5).

Two ways to keep the content photo's colours:

* **luminance-only transfer**: run the transfer on luminance images (Y of
  YIQ, replicated to three channels; the style's luminance first matched to
  the content's mean and std), then give the result the content's chroma
  (I and Q): :func:`luminance_image` and :func:`with_chroma_of`.
* **colour histogram matching**: before the transfer, map the style's
  pixels linearly, x' = A (x − μ_s) + μ_c with A = Σ_c^½ Σ_s^−½, so their
  mean and covariance equal the content's: :func:`match_colors`.

These run once, on the host, on uint8 RGB images.
"""

from __future__ import annotations

import numpy as np

RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]])
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


def rgb_to_yiq(rgb_HxWx3) -> np.ndarray:
  """RGB (any scale) to YIQ, float64; Y has the RGB scale."""
  return np.asarray(rgb_HxWx3, np.float64) @ RGB_TO_YIQ.T


def yiq_to_rgb(yiq_HxWx3) -> np.ndarray:
  """Inverse of :func:`rgb_to_yiq`, float64."""
  return np.asarray(yiq_HxWx3, np.float64) @ YIQ_TO_RGB.T


def _to_uint8(x) -> np.ndarray:
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def luminance_image(rgb_HxWx3, *, match=None) -> np.ndarray:
  """The luminance Y as a grey uint8 RGB image.

  With ``match`` (an RGB image), Y is first shifted and scaled to the mean
  and std of ``match``'s luminance, as Gatys et al. 2017 do for the style.
  """
  y = rgb_to_yiq(rgb_HxWx3)[..., 0]
  if match is not None:
    target = rgb_to_yiq(match)[..., 0]
    y = (y - y.mean()) / max(y.std(), 1e-6) * target.std() + target.mean()
  return _to_uint8(np.repeat(y[..., None], 3, axis=-1))


def with_chroma_of(rgb_HxWx3, content_rgb_HxWx3) -> np.ndarray:
  """``rgb``'s luminance with ``content``'s chroma (I, Q), as uint8 RGB."""
  yiq = rgb_to_yiq(content_rgb_HxWx3)
  yiq[..., 0] = rgb_to_yiq(rgb_HxWx3)[..., 0]
  return _to_uint8(yiq_to_rgb(yiq))


def _sqrtm_psd(cov_3x3, power: float) -> np.ndarray:
  values, vectors = np.linalg.eigh(cov_3x3)
  return (vectors * np.maximum(values, 1e-8) ** power) @ vectors.T


def match_colors(style_rgb_HxWx3, content_rgb_HxWx3) -> np.ndarray:
  """The style image with its colour mean and covariance set to the content's (uint8)."""
  style = np.asarray(style_rgb_HxWx3, np.float64).reshape(-1, 3)
  content = np.asarray(content_rgb_HxWx3, np.float64).reshape(-1, 3)
  mu_s, mu_c = style.mean(0), content.mean(0)
  A = _sqrtm_psd(np.cov(content.T), 0.5) @ _sqrtm_psd(np.cov(style.T), -0.5)
  matched = (style - mu_s) @ A.T + mu_c
  return _to_uint8(matched.reshape(np.shape(style_rgb_HxWx3)))
