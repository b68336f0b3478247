"""Gatys et al. losses for one image; ``vmap`` them at the call site.

Notation (Gatys, Ecker & Bethge, CVPR 2016): a layer's activations F are
reshaped to M x N, with M = H * W positions and N = C channels.

=====================  ==================================================
``gram_matrix``        G = Fᵀ F                      (N x N, unnormalised)
``style_layer_loss``   E = Σᵢⱼ (Gᵢⱼ − Aᵢⱼ)² / (4 N² M²)        (eq. 4)
  ``norm="chw"``       E = mean over N² of ((G − A) / (N M))²  (= Σ/(N⁴M²))
  ``norm="hw"``        E = mean over N² of ((G − A) / M)²      (= Σ/(N²M²))
``content_loss``       L = ½ Σ (F − P)²                         (eq. 1)
``tv_loss``            TV = Σ (Δx² + Δy²)^(β/2) over the (H−1)x(W−1) grid
=====================  ==================================================

All accumulate in float32 and are pure; :func:`jaxstyle.objective` combines
them with the loss weights.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


@jax.jit
def gram_matrix(F_HxWxC):
  """G = Fᵀ F with F the activations as an (H·W) x C matrix; C x C, unnormalised."""
  F_MxN = F_HxWxC.reshape(-1, F_HxWxC.shape[-1])
  return jnp.matmul(F_MxN.T, F_MxN, precision=jax.lax.Precision.HIGHEST)


GRAM_NORMS = ("gatys", "chw", "hw")


@functools.partial(jax.jit, static_argnames="norm")
def style_layer_loss(F_HxWxC, A_CxC, *, norm: str = "gatys"):
  """Gram style loss of one layer, G = gram_matrix(F), N = C, M = H·W.

  ``norm="gatys"`` (default): E = Σ (G − A)² / (4 N² M²), Gatys et al. 2016
  eq. 4. ``"chw"``: the Gram divided by C·H·W, then the mean squared error,
  i.e. Σ (G − A)² / (N⁴ M²) (the PyTorch tutorial, Johnson et al. 2016).
  ``"hw"``: the Gram divided by H·W, then the mean squared error, i.e.
  Σ (G − A)² / (N² M²). All three are invariant to the image's size.

  ``A_CxC`` is the target's unnormalised Gram matrix computed on a style image
  of the *same* M; for a style image of another size, rescale it by
  M_target / M_style first (see :func:`jaxstyle.make_targets`).
  """
  M = F_HxWxC.shape[0] * F_HxWxC.shape[1]
  N = F_HxWxC.shape[2]
  scale = {"gatys": 4.0 * N**2, "chw": float(N**4), "hw": float(N**2)}[norm]
  G_CxC = gram_matrix(F_HxWxC)
  return jnp.sum(jnp.square(G_CxC - A_CxC)) / (scale * M**2)


@jax.jit
def content_loss(F_HxWxC, P_HxWxC):
  """L = ½ Σ (F − P)² over all positions and channels (eq. 1)."""
  return 0.5 * jnp.sum(jnp.square(F_HxWxC - P_HxWxC))


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
