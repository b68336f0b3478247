"""Winograd F(m x m, 3 x 3): a 3x3 'SAME' convolution as (m+2)² batched matmuls.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016).
The image is cut into m x m output tiles; tile t reads the (m+2) x (m+2)
input patch d_t around it (zero padded at the borders), and for a 3x3 kernel
g[c, o] the correlation is::

    Y_t[o] = Aᵀ [ Σ_c U[c, o] ⊙ V_t[c] ] A,   U = G g Gᵀ,   V_t = Bᵀ d_t B

(⊙ elementwise over the (m+2)² positions). For each position the sum over c
is a matmul ``(tiles x Cin) @ (Cin x Cout)``, so the whole convolution is
(m+2)² matmuls, with (m+2)²/m² multiplies per output where the direct
convolution does 9: 2.25x fewer for F(2x2), 4x fewer for F(4x4). The
transforms B, A are additions (and small constants for m = 4): memory
traffic, which only deep layers (many channels) repay; see
:func:`jaxstyle.objective.winograd_layers` for where jaxstyle uses it (measured) and
:data:`jaxstyle.conv.WINOGRAD_TILE` for why F(2x2).

The kernel transform U is computed once per run (:func:`transform_kernel`),
not per evaluation: kernels are constants while an image is optimised.

Rounding: F(2x2) is as accurate as the direct convolution (relative error
~2e-7 in float32) and its data transforms are additions only; F(4x4) loses
about one and a half digits (~6e-6), from its 1/6 and 1/24 coefficients
and the multiplications in its data transforms.
"""

from __future__ import annotations

import jax.numpy as jnp

TILES = (2, 4)
"""Output tile sizes m supported: F(2x2, 3x3) and F(4x4, 3x3)."""

# Lavin & Gray's matrices; F(4x4) interpolates at 0, ±1, ±2 and infinity.
_MATRICES = {
    2: {"BT": ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        "G": ((1, 0, 0), (1 / 2, 1 / 2, 1 / 2), (1 / 2, -1 / 2, 1 / 2), (0, 0, 1)),
        "AT": ((1, 1, 1, 0), (0, 1, -1, -1))},
    4: {"BT": ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
               (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
        "G": ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
              (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1)),
        "AT": ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0),
               (0, 1, -1, 8, -8, 1))},
}


def _check_tile(tile: int) -> None:
  if tile not in TILES:
    raise ValueError(f"Winograd tile must be one of {TILES}, got {tile!r}")


def _combine(coefficients, arrays):
  """Σ_i c_i · a_i with the zero terms skipped and ±1 as additions (XLA fuses it)."""
  total = None
  for c, a in zip(coefficients, arrays):
    if c == 0:
      continue
    term = a if c == 1 else -a if c == -1 else a * c
    total = term if total is None else total + term
  return total


def transform_kernel(kernel_3x3xCinxCout, tile: int):
  """U = G g Gᵀ for every (Cin, Cout) pair: shape (m+2) x (m+2) x Cin x Cout, same dtype."""
  _check_tile(tile)
  G = _MATRICES[tile]["G"]
  k = kernel_3x3xCinxCout
  rows = [_combine(G[i], [k[a] for a in range(3)]) for i in range(tile + 2)]  # Each 3 x Cin x Cout.
  return jnp.stack([jnp.stack([_combine(G[j], [r[b] for b in range(3)]) for j in range(tile + 2)])
                    for r in rows])


def transpose_kernel(kernel_3x3xCinxCout):
  """The kernel whose 'SAME' correlation is the transpose of ``kernel``'s: flipped, I/O swapped."""
  return jnp.flip(kernel_3x3xCinxCout, (0, 1)).transpose(0, 1, 3, 2)


def conv3x3(x_NxHxWxCin, U_AxAxCinxCout):
  """3x3 stride-1 'SAME' correlation of NHWC images with a transformed kernel.

  ``U`` comes from :func:`transform_kernel`; its leading size A = m + 2 gives
  the tile. Any H, W: the last tiles are zero padded and cropped.
  """
  alpha = U_AxAxCinxCout.shape[0]
  tile = alpha - 2
  _check_tile(tile)
  BT, AT = _MATRICES[tile]["BT"], _MATRICES[tile]["AT"]
  n, h, w, cin = x_NxHxWxCin.shape
  cout = U_AxAxCinxCout.shape[-1]
  if U_AxAxCinxCout.shape != (alpha, alpha, cin, cout):
    raise ValueError(f"transformed kernel of shape {U_AxAxCinxCout.shape} does not fit images "
                     f"with {cin} channels; expected ({alpha}, {alpha}, {cin}, Cout)")
  rows_t, cols_t = -(-h // tile), -(-w // tile)
  padded = jnp.pad(x_NxHxWxCin, ((0, 0), (1, rows_t * tile - h + 1), (1, cols_t * tile - w + 1),
                                 (0, 0)))
  # Bᵀ d B separably, each step on every tile at once: strided slices pick the
  # a-th row (then column) of each tile, and the combinations are stacked so
  # that the column step runs once for all rows (a few hundred ops in the
  # program, not a few thousand: compile time grows with them).
  rows = [padded[:, a:a + tile * rows_t:tile] for a in range(alpha)]
  mixed = jnp.stack([_combine(BT[k], rows) for k in range(alpha)])  # A x N x rows_t x W' x Cin.
  cols = [mixed[:, :, :, b:b + tile * cols_t:tile] for b in range(alpha)]
  V = jnp.stack([_combine(BT[l], cols) for l in range(alpha)], 1)  # A x A x N x tiles x Cin.
  M_PxTxCout = jnp.einsum("ptc,pco->pto", V.reshape(alpha * alpha, -1, cin),
                          U_AxAxCinxCout.reshape(alpha * alpha, cin, cout))
  M = M_PxTxCout.reshape(alpha, alpha, n, rows_t, cols_t, cout)
  # Aᵀ M A, then the m x m outputs of each tile interleaved back into the image.
  mixed = jnp.stack([_combine(AT[i], [M[k] for k in range(alpha)]) for i in range(tile)])
  y = jnp.stack([_combine(AT[j], [mixed[:, l] for l in range(alpha)]) for j in range(tile)], -2)
  # y: m_i x N x rows_t x cols_t x m_j x Cout -> N x rows_t x m_i x cols_t x m_j x Cout.
  y = y.transpose(1, 2, 0, 3, 4, 5).reshape(n, rows_t * tile, cols_t * tile, cout)
  return y[:, :h, :w]
