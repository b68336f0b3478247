"""Style-transfer losses for one image; ``vmap`` them at the call site.

Notation (Gatys, Ecker & Bethge, CVPR 2016): a layer's activations F are
reshaped to M x N, with M = H * W positions and N = C channels.

=======================  ================================================
``gram_matrix``          G = Fᵀ F                     (N x N, unnormalised)
``style_layer_loss``     E = Σᵢⱼ (Gᵢⱼ − Aᵢⱼ)² / (4 N² M²)       (eq. 4)
  ``norm="chw"``         E = mean over N² of ((G − A) / (N M))²  (= Σ/(N⁴M²))
  ``norm="hw"``          E = mean over N² of ((G − A) / M)²      (= Σ/(N²M²))
  ``norm="keras"``       E = Σ (G − A)² / (4 · 3² · P²), P the image's pixels
``w2_style_loss``        W₂² = ‖μ − μₛ‖² + tr Σ + tr Σₛ − 2 tr (Σₛ^½ Σ Σₛ^½)^½
``mean_std_loss``        E = (‖μ − μₛ‖² + ‖σ − σₛ‖²) / N   (AdaIN's, eq. 13)
``content_loss``         L = ½ Σ (F − P)²                        (eq. 1)
  ``norm="sum"``         L = Σ (F − P)²
  ``norm="mean"``        L = Σ (F − P)² / (N M)
``tv_loss``              TV = Σ (Δx² + Δy²)^(β/2) over the (H−1)x(W−1) grid
``temporal_loss``        T = Σ c (x − ω)²  (Ruder et al. 2016, eq. 3, summed like TV)
=======================  ================================================

All accumulate in float32 and are pure; :func:`jaxstyle.objective` combines
them with the loss weights. :func:`normalized_gradient` turns any of them
into the variant whose gradient is L1-normalised (Johnson's neural-style).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST


@jax.jit
def gram_matrix(F_HxWxC):
  """G = Fᵀ F with F the activations as an (H·W) x C matrix; C x C, unnormalised."""
  F_MxN = F_HxWxC.reshape(-1, F_HxWxC.shape[-1])
  return jnp.matmul(F_MxN.T, F_MxN, precision=_HIGHEST)


CONTENT_NORMS = ("half_sum", "sum", "mean")


def gram_loss(G_CxC, A_CxC, *, positions, norm: str = "gatys", pixels=None):
  """Σ (G − A)² over the normaliser ``norm`` names (see :func:`style_layer_loss`).

  ``positions`` is M (for a masked Gram, the mask's Σ m²); ``pixels`` is the
  output image's H·W, used only by ``norm="keras"``.
  """
  N = G_CxC.shape[-1]
  if norm == "keras":
    if pixels is None:
      raise ValueError("gram_loss: norm='keras' needs pixels=H*W of the image")
    denominator = 4.0 * 3**2 * jnp.square(jnp.float32(pixels))
  else:
    scale = {"gatys": 4.0 * N**2, "chw": float(N**4), "hw": float(N**2)}[norm]
    denominator = scale * jnp.square(jnp.float32(positions))
  return jnp.sum(jnp.square(G_CxC - A_CxC)) / denominator


@functools.partial(jax.jit, static_argnames=("norm", "pixels"))
def style_layer_loss(F_HxWxC, A_CxC, *, norm: str = "gatys", pixels: int | None = None):
  """Gram style loss of one layer, G = gram_matrix(F), N = C, M = H·W.

  ``norm="gatys"`` (default): E = Σ (G − A)² / (4 N² M²), Gatys et al. 2016
  eq. 4. ``"chw"``: the Gram divided by C·H·W, then the mean squared error,
  i.e. Σ (G − A)² / (N⁴ M²) (the PyTorch tutorial, Johnson's neural-style
  and fast-neural-style). ``"hw"``: the Gram divided by H·W, then the mean
  squared error, i.e. Σ (G − A)² / (N² M²); equal to the squared Frobenius
  norm of the difference of Grams divided by C·H·W (Johnson et al. 2016's
  formula). These three are invariant to the image's size. ``"keras"``:
  Σ (G − A)² / (4 · 3² · P²) with P = ``pixels``, the *image's* H·W, and 3
  in place of N, exactly as the classic Keras example computes it.

  ``A_CxC`` is the target's unnormalised Gram matrix computed on a style image
  of the *same* M; for a style image of another size, rescale it by
  M_target / M_style first (see :func:`jaxstyle.make_targets`).
  """
  return gram_loss(gram_matrix(F_HxWxC), A_CxC, positions=F_HxWxC.shape[0] * F_HxWxC.shape[1],
                   norm=norm, pixels=pixels)


def gaussian_stats(F_HxWxC, weights_HxW=None):
  """Mean μ (C) and covariance Σ (C x C) of the activations over positions.

  With ``weights_HxW`` (e.g. a mask's m²), a weighted mean and covariance.
  """
  F_MxN = F_HxWxC.reshape(-1, F_HxWxC.shape[-1])
  if weights_HxW is None:
    p_M = jnp.full((F_MxN.shape[0],), 1.0 / F_MxN.shape[0], F_MxN.dtype)
  else:
    w_M = weights_HxW.reshape(-1)
    p_M = w_M / jnp.maximum(jnp.sum(w_M), 1e-12)
  mean_N = p_M @ F_MxN
  centred_MxN = F_MxN - mean_N[None, :]
  cov_NxN = jnp.matmul((centred_MxN * p_M[:, None]).T, centred_MxN, precision=_HIGHEST)
  return mean_N, cov_NxN


@jax.custom_jvp
def trace_sqrtm(C_NxN):
  """tr(C^½) for a symmetric positive semi-definite C: Σ √λᵢ.

  Its derivative is ½ C^-½, computed from the eigendecomposition with the
  eigenvalues floored at 1e-6 · λ_max: the true derivative is infinite where
  C is singular (dead ReLU channels make it so), and the floor keeps the
  gradient finite while changing the value by at most √(1e-6 · λ_max) per
  eigenvalue.
  """
  eigenvalues = jnp.linalg.eigvalsh(0.5 * (C_NxN + C_NxN.T))
  return jnp.sum(jnp.sqrt(jnp.maximum(eigenvalues, 0.0)))


@trace_sqrtm.defjvp
def _trace_sqrtm_jvp(primals, tangents):
  (C,), (dC,) = primals, tangents
  eigenvalues, V = jnp.linalg.eigh(0.5 * (C + C.T))
  value = jnp.sum(jnp.sqrt(jnp.maximum(eigenvalues, 0.0)))
  floored = jnp.maximum(eigenvalues, 1e-6 * jnp.maximum(jnp.max(eigenvalues), 1e-30))
  half_inv_sqrt = jnp.matmul(V * (0.5 / jnp.sqrt(floored))[None, :], V.T, precision=_HIGHEST)
  return value, jnp.sum(half_inv_sqrt * 0.5 * (dC + dC.T))


def sqrtm_psd(C_NxN):
  """C^½ of a symmetric positive semi-definite matrix (negative round-off clipped)."""
  eigenvalues, V = jnp.linalg.eigh(0.5 * (C_NxN + C_NxN.T))
  return jnp.matmul(V * jnp.sqrt(jnp.maximum(eigenvalues, 0.0))[None, :], V.T,
                    precision=_HIGHEST)


def w2_targets(mean_N, cov_NxN) -> dict:
  """What :func:`w2_style_loss` compares against, computed once per style layer."""
  return {"mean": mean_N, "cov_sqrt": sqrtm_psd(cov_NxN), "cov_trace": jnp.trace(cov_NxN)}


def w2_style_loss(F_HxWxC, target: dict, weights_HxW=None):
  """Squared Wasserstein-2 distance between Gaussians fitted to F and to the style.

  W₂² = ‖μ − μₛ‖² + tr Σ + tr Σₛ − 2 tr (Σₛ^½ Σ Σₛ^½)^½, with μ, Σ the mean
  and covariance of F over positions (:func:`gaussian_stats`) and the
  style's statistics in ``target`` (:func:`w2_targets`). Invariant to the
  image's size; zero iff the means and covariances match (the "mean and
  covariance" style loss).
  """
  mean_N, cov_NxN = gaussian_stats(F_HxWxC, weights_HxW)
  S = target["cov_sqrt"]
  cross = jnp.matmul(jnp.matmul(S, cov_NxN, precision=_HIGHEST), S, precision=_HIGHEST)
  return (jnp.sum(jnp.square(mean_N - target["mean"])) + jnp.trace(cov_NxN)
          + target["cov_trace"] - 2.0 * trace_sqrtm(cross))


MEAN_STD_EPS = 1e-5  # σ = √(var + ε), as AdaIN's calc_mean_std: finite gradient for dead channels.


def mean_std_targets(mean_N, var_N) -> dict:
  """What :func:`mean_std_loss` compares against: the style's μ and σ = √(var + ε)."""
  return {"mean": mean_N, "std": jnp.sqrt(var_N + MEAN_STD_EPS)}


def mean_std_loss(F_HxWxC, target: dict, weights_HxW=None):
  """AdaIN's style loss: E = (‖μ − μₛ‖² + ‖σ − σₛ‖²) / N over the N channels.

  μ, σ² are F's per-channel mean and (biased) variance over positions
  (weighted by ``weights_HxW`` if given), σ = √(σ² + ε); Huang & Belongie
  (ICCV 2017) eq. 13 with their mean-squared-error normalisation. It matches
  only the diagonal of :func:`w2_style_loss`'s Gaussian: cheaper, coarser.
  """
  mean_N, cov_NxN = gaussian_stats(F_HxWxC, weights_HxW)
  std_N = jnp.sqrt(jnp.diagonal(cov_NxN) + MEAN_STD_EPS)
  return (jnp.sum(jnp.square(mean_N - target["mean"]))
          + jnp.sum(jnp.square(std_N - target["std"]))) / mean_N.shape[0]


@functools.partial(jax.jit, static_argnames="norm")
def content_loss(F_HxWxC, P_HxWxC, *, norm: str = "half_sum"):
  """L = ½ Σ (F − P)² (eq. 1); ``"sum"``: Σ (F − P)²; ``"mean"``: Σ (F − P)² / (N M)."""
  return content_from_squared(jnp.sum(jnp.square(F_HxWxC - P_HxWxC)), norm, F_HxWxC.size)


def content_from_squared(squared, norm: str, size: int):
  """:func:`content_loss` from its sum Σ (F − P)² over ``size`` = N·M activations (a tiled
  objective adds the sum up tile by tile)."""
  if norm == "half_sum":
    return 0.5 * squared
  if norm == "sum":
    return squared
  if norm == "mean":
    return squared / size
  raise ValueError(f"content_loss: norm must be one of {CONTENT_NORMS}, got {norm!r}")


def normalized_gradient(loss_fn: Callable) -> Callable:
  """``loss_fn(F, *rest)`` whose gradient with respect to F is L1-normalised.

  The value is unchanged; the gradient becomes c · ∇L / (‖∇L‖₁ + 1e-8), c the
  cotangent (the loss's weight in the objective), so each layer pushes with
  strength equal to its weight whatever the scale of its activations:
  Johnson's neural-style ``-normalize_gradients``. The result is no longer
  the gradient of any objective, so use it with Adam, not with a linesearch.
  ``rest`` gets zero gradient (targets are constants).
  """
  @jax.custom_vjp
  def wrapped(F, *rest):
    return loss_fn(F, *rest)

  def fwd(F, *rest):
    value, grad = jax.value_and_grad(loss_fn)(F, *rest)
    return value, (grad / (jnp.sum(jnp.abs(grad)) + 1e-8), rest)

  def bwd(residuals, cotangent):
    unit_grad, rest = residuals
    return (cotangent * unit_grad,) + jax.tree.map(jnp.zeros_like, rest)

  wrapped.defvjp(fwd, bwd)
  return wrapped


def temporal_loss(x_HxWx3, warped_HxWx3, weights_HxW):
  """Ruder et al.'s short-term temporal loss, summed: T = Σ_x c(x) ‖x(x) − ω(x)‖².

  ω is the previous stylized frame warped to this one, c ∈ [0, 1] per pixel
  (0 where the flow is unreliable: :func:`jaxstyle.video.flow.reliable`).

  Ruder et al. divide by D = H·W·3; jaxstyle sums, as its content and TV terms
  do, so that one weight keeps its balance against the content term at every
  frame size. Their λ_t = 1e3 (with neural-style's content weight 5 at relu4_2,
  N = 512 channels over M = H·W/64 positions) is λ = 1e3 · N·M / (10·D) = 1e3 ·
  512 / (10 · 64 · 3) ≈ 270 here, whatever the size (jaxstyle.video's default
  and its calibration: docs/BENCHMARKS.md).
  """
  diff = x_HxWx3.astype(jnp.float32) - warped_HxWx3
  return jnp.sum(weights_HxW[..., None] * jnp.square(diff))


@functools.partial(jax.jit, static_argnames="beta")
def tv_loss(x_HxWxC, *, beta: float = 2.0):
  """TV = Σᵢⱼ (Δxᵢⱼ² + Δyᵢⱼ²)^(β/2) over the overlapping (H−1) x (W−1) grid.

  Δx = x[i, j+1] − x[i, j] and Δy = x[i+1, j] − x[i, j], summed over channels
  too. β = 2 is the squared-gradient TV of Johnson's neural-style; β = 2.5 is
  the Keras example's ("total_variation_loss" with exponent 1.25). β < 2
  has an infinite gradient where the image is flat; use it from a noisy init.
  """
  dx = x_HxWxC[:-1, 1:, :] - x_HxWxC[:-1, :-1, :]
  dy = x_HxWxC[1:, :-1, :] - x_HxWxC[:-1, :-1, :]
  squared = jnp.square(dx) + jnp.square(dy)
  if beta == 2.0:  # Skip the pow: exact, cheaper, and its gradient is finite at 0.
    return jnp.sum(squared)
  return jnp.sum(jnp.power(squared, beta / 2.0))
