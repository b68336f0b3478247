"""jaxstyle's convolutions: exact algorithms for each layer, a network's chosen by measurement.

Two kinds of layer. VGG's are 3x3 stride-1 'SAME' (zero-padded)
convolutions (:func:`conv3x3`), run directly or by Winograd F(2x2, 3x3)
(:func:`winograd_conv3x3`, from kernels transformed once). Which layers run
by Winograd is chosen by timing the whole objective with each candidate set
(:func:`jaxstyle.objective.winograd_layers`): timed alone, a layer's cost is
not its cost inside the program (docs/BENCHMARKS.md). :class:`LayerShape` times
them one by one for the benchmarks. Every convolution
of the Johnson, conditional-instance-norm and AdaIN networks is the same
operation,

    y = conv_s(reflect_pad(up_u(x), k // 2), W) + b

a k x k cross-correlation with stride s (VALID, NHWC x HWIO) of the image
reflection-padded by k // 2 and, in the upsampling layers, first
nearest-neighbour upsampled u = 2 times. :func:`reflect_conv` computes it by
any of :data:`ALGORITHMS`, all exact (they differ only in float rounding):

``direct``
    XLA's convolution *with a padding attribute*: pad by s, convolve, crop
    the one-output ring. On XLA:CPU (jax 0.10) a convolution with no padding
    (``VALID``) runs about 3x slower than the same one with padding, at any
    size (benchmarks/bench_conv_padding.py); the ring costs little.
``valid``
    The literal form, reflection pad then a ``VALID`` convolution (jaxstyle
    0.3 and earlier): kept so the benchmarks measure what it cost.
``winograd``
    3x3 stride 1: Winograd F(2x2, 3x3) (:mod:`jaxstyle.optim.winograd`) on the
    reflection-padded image, its zero-padded ring cropped.
``s2d``
    Stride 2: space-to-depth. The padded image's 2x2 pixel blocks become
    4·Cin channels and the kernel, zero-extended to even size, is cut the
    same way, so the strided k x k convolution is a stride-1 ⌈k/2⌉ x ⌈k/2⌉ one
    on a quarter of the positions.
``unfold``
    Stride 1: the k column shifts of the padded image stacked as k·Cin
    channels, then a k x 1 convolution; for layers with k·Cin ≤ 32 (the 9x9
    layer on RGB input), where XLA's convolution feeds its matmuls poorly.
``subpixel``
    Upsampling layers (u = 2, k = 3): each of the four output phases
    (y[2i+a, 2j+b]) is a 2x2 convolution of the *small* image, edge-padded by
    one (reflection of the upsampled image's border is the small image's
    edge pixel), with kernel rows (and columns) merged, k0 | k1+k2 for phase 0
    and k0+k1 | k2 for phase 1: 4 multiply-adds per output pixel and
    channel pair, against 9 for convolving the 4x larger image.
``fftgrad``
    Training only, stride 1 and k ≥ 5: ``direct``'s forward and image
    gradient, the kernel gradient as a cross-correlation of the padded image
    with the cotangent by real FFTs. XLA:CPU's kernel gradient of the last
    9x9 layer (32 -> 3 channels) runs at 17 GFLOP/s.

Gradients: the image's by each algorithm's own adjoint; the kernel's by
``direct``'s form (XLA:CPU's kernel gradients of the small 2x2 and k x 1
kernels the other algorithms convolve with are 10-50x slower), except for
``s2d`` and ``subpixel``, which take it as matrix products
(:func:`_kernel_gradient_by_products`), and ``fftgrad``. Only the arguments
being differentiated get a gradient computed (a network's input photo does
not). Reflection padding has its adjoint written out (:func:`_reflect_adjoint`):
the one autodiff derives took a third of a residual layer's image gradient.

``auto`` picks per layer: :func:`jaxstyle.nets.layers.plan` collects every layer's
:class:`LayerShape`, :func:`choose` times the candidates on it once (forward, or forward and
the gradients it runs) and keeps the fastest; the choice is cached on disk
(:class:`ChoiceCache`, beside XLA's compile cache, one file per backend,
device kind, jax version and :func:`algorithms_digest`), so later runs reuse it and give the
same bytes.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle.optim import winograd
from jaxstyle.errors import ConfigError

ALGORITHMS = ("direct", "winograd", "s2d", "unfold", "subpixel", "fftgrad", "valid")
"""Every algorithm :func:`reflect_conv` knows (``valid`` only for benchmarks and --conv)."""

CHOICES = ("auto",) + ALGORITHMS
"""What ``--conv`` accepts: ``auto`` (measured) or one algorithm for every layer."""

MARGIN = 0.9
"""``auto`` leaves ``direct`` only for an algorithm measured at most this fraction of its time:
a near tie keeps the same choice whatever the timing noise."""

MEASURED_POSITIONS = 256 * 256
"""Layers with more input positions (batch x H x W) are timed on a scaled-down copy."""

UNMEASURED_MACS = 1 << 22
"""Layers of fewer multiply-adds (:meth:`LayerShape.macs`) run ``direct`` untimed: they take
well under a millisecond, so timing them (a compile per candidate) would cost more than it
could save. Work, not positions: a wide layer of a small image has few positions and many
multiply-adds (VGG's block5 at 96 px: 36 positions, 85 M)."""

_DIMS = ("NHWC", "HWIO", "NHWC")


def _lax_conv(x, kernel, stride: int, padding):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                      dimension_numbers=_DIMS)


def _valid_by_padding(x, kernel, stride: int):
  """A VALID convolution computed as one padded by ``stride`` with its outer ring cropped.

  With padding s, output j starts at input j·s − s, so outputs 1 .. n−2 are
  exactly the VALID outputs; the convolution then takes XLA's fast path.
  """
  return _lax_conv(x, kernel, stride, ((stride, stride), (stride, stride)))[:, 1:-1, 1:-1]


def _numpy_reflect(x_NxHxWxC, pad: int):
  """Reflection padding of H and W by ``pad`` as NumPy defines it, with autodiff's adjoint."""
  if not _concrete(x_NxHxWxC.shape[1:3]):  # An export: H, W > pad (its minimum side).
    return _mirror(_mirror(x_NxHxWxC, pad, 1), pad, 2)
  return jnp.pad(x_NxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _concrete(dims) -> bool:
  """Whether every dimension is a number, not a symbol of an export (:mod:`jaxstyle.nets.export`)."""
  return all(isinstance(d, int) for d in dims)


def _mirror(x, pad: int, axis: int):
  """Reflection padding of ``axis`` (size > ``pad``) as flipped slices and a concatenation.

  What an ONNX export needs: ``jnp.pad(mode="reflect")`` of a symbolic size is a
  gather, which jax2onnx fails to convert for sizes pooled by VGG (and which
  onnxruntime runs slower than slices).
  """
  n = x.shape[axis]
  head = jnp.flip(jax.lax.slice_in_dim(x, 1, pad + 1, axis=axis), axis)
  tail = jnp.flip(jax.lax.slice_in_dim(x, n - pad - 1, n - 1, axis=axis), axis)
  return jax.lax.concatenate([head, x, tail], axis)


def _reflect(x, pad: int):
  # An export's symbolic sizes are at least its minimum side, which is more than any pad.
  if _concrete(x.shape[1:3]) and pad >= min(x.shape[1:3]):
    return _numpy_reflect(x, pad)  # NumPy's repeated reflection, which the adjoint does not cover
  return _reflect_pad(x, pad) if pad else x


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _reflect_pad(x_NxHxWxC, pad: int):
  """Reflection padding of H and W by ``pad`` (the border pixel not repeated), with
  :func:`_reflect_adjoint` as its gradient."""
  return _numpy_reflect(x_NxHxWxC, pad)


def _reflect_adjoint(g, pad: int, axis: int):
  """The adjoint of reflection padding along ``axis``: the core plus each mirrored band, flipped
  and added where it came from (positions 1..pad and n-pad-1..n-2).

  Written as pads and adds so XLA fuses it into one pass; the adjoint autodiff derives for
  ``jnp.pad(mode="reflect")`` cost a 3x3 128 -> 128 layer's image gradient 37 ms against 26
  (4 x 64², benchmarks in docs/BENCHMARKS.md).
  """
  n = g.shape[axis] - 2 * pad

  def band(start, stop, before, after):
    widths = [(0, 0)] * g.ndim
    widths[axis] = (before, after)
    return jnp.pad(jnp.flip(jax.lax.slice_in_dim(g, start, stop, axis=axis), axis), widths)

  core = jax.lax.slice_in_dim(g, pad, pad + n, axis=axis)
  return core + band(0, pad, 1, n - pad - 1) + band(pad + n, 2 * pad + n, n - pad - 1, 1)


_reflect_pad.defvjp(lambda x, pad: (_reflect_pad(x, pad), None),
                    lambda pad, _, g: (_reflect_adjoint(_reflect_adjoint(g, pad, 1), pad, 2),))


def _upsample(x, factor: int):
  if factor == 1:
    return x
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


UNFOLD_MAX_CHANNELS = 32
"""``unfold`` runs layers whose k·Cin is at most this: its columns are k times the image, which
pays on RGB input (9·3 = 27) and would cost gigabytes on a wide layer at a large size."""


def applies(algorithm: str, kernel: int, stride: int, upsample: int, cin: int) -> bool:
  """Whether ``algorithm`` can compute a layer of this kind (``direct`` and ``valid`` always)."""
  if algorithm == "winograd":
    return kernel == 3 and stride == 1 and upsample == 1
  if algorithm == "s2d":
    return stride == 2 and upsample == 1
  if algorithm == "unfold":
    return stride == 1 and upsample == 1 and kernel > 1 and kernel * cin <= UNFOLD_MAX_CHANNELS
  if algorithm == "subpixel":
    return kernel == 3 and stride == 1 and upsample == 2
  if algorithm == "fftgrad":
    return stride == 1 and upsample == 1 and kernel >= 5
  return algorithm in ("direct", "valid")


def reflect_conv(x_NxHxWxCin, kernel_KxKxCinxCout, *, stride: int = 1, upsample: int = 1,
                 algorithm: str = "direct"):
  """conv_stride(reflect_pad(up_upsample(x), K // 2), kernel), VALID, by ``algorithm``.

  Output: N x ⌊(uH + 2p − K)/s⌋ + 1 x (the same for W) x Cout, p = K // 2.
  Differentiable in both arguments: the image's gradient by the algorithm's
  own adjoint; the kernel's by ``direct``'s form, by matrix products
  (``s2d``, ``subpixel``) or by FFT (``fftgrad``), never by autodiff of the
  other algorithms' small (2x2, k x 1) kernels, whose kernel gradients
  XLA:CPU computes 10-50x slower (measured: s2d's 1.3 s against 0.09 s for a
  4 x 256² 32 -> 64 layer). The gradient is the same function whichever way
  the forward ran; only the arguments being differentiated get one computed.
  """
  k, _, cin, _ = kernel_KxKxCinxCout.shape
  if not applies(algorithm, k, stride, upsample, cin):
    raise ConfigError(f"convolution algorithm {algorithm!r} cannot run a {k}x{k} layer with "
                      f"stride {stride} and upsampling {upsample}; use direct (or auto)")
  if algorithm in ("direct", "valid"):
    return _forward(x_NxHxWxCin, kernel_KxKxCinxCout, stride, upsample, algorithm)
  return _with_own_gradients(x_NxHxWxCin, kernel_KxKxCinxCout, stride, upsample,
                                      algorithm)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _with_own_gradients(x, kernel, stride, upsample, algorithm):
  return _forward(x, kernel, stride, upsample, algorithm)


def _fwd(x, kernel, stride, upsample, algorithm):
  # Only what is differentiated gets a gradient computed (a network's input photo is not, a
  # frozen network's kernels are not). Residuals hold arrays, so which ones is said by the
  # residuals' structure: () where the gradient is wanted, None where it is not.
  y = _forward(x.value, kernel.value, stride, upsample, algorithm)
  wanted = tuple(() if a.perturbed else None for a in (x, kernel))
  return y, (x.value, kernel.value, wanted)


def _bwd(stride, upsample, algorithm, residuals, g):
  x, kernel, (want_dx, want_dk) = residuals
  if isinstance(g, jax.custom_derivatives.SymbolicZero):
    return None, None
  dx = dk = None
  if want_dx is not None:
    dx = jax.vjp(lambda x: _forward(x, kernel, stride, upsample, algorithm), x)[1](g)[0]
  if want_dk is not None:
    dk = _kernel_gradient(x, kernel, g, stride, upsample, algorithm)
  return dx, dk


def _kernel_gradient(x, kernel, g, stride: int, upsample: int, algorithm: str):
  """The kernel's gradient for ``algorithm`` (module docstring, "Gradients")."""
  k = kernel.shape[0]
  if algorithm == "subpixel":
    return _subpixel_kernel_gradient(x, g)
  if algorithm == "fftgrad":
    return _kernel_gradient_by_fft(_reflect(x, k // 2), g, k)
  if algorithm == "s2d":
    return _kernel_gradient_by_products(_reflect(x, k // 2), g, k, stride)
  return jax.vjp(lambda k: _forward(x, k, stride, upsample, "direct"), kernel)[1](g)[0]


_with_own_gradients.defvjp(_fwd, _bwd, symbolic_zeros=True)


def _forward(x_NxHxWxCin, kernel_KxKxCinxCout, stride: int, upsample: int, algorithm: str):
  k = kernel_KxKxCinxCout.shape[0]
  if algorithm == "subpixel":
    return _subpixel(x_NxHxWxCin, kernel_KxKxCinxCout)
  upsampled = _upsample(x_NxHxWxCin, upsample)
  if algorithm == "valid":
    return _lax_conv(_numpy_reflect(upsampled, k // 2), kernel_KxKxCinxCout, stride, "VALID")
  padded = _reflect(upsampled, k // 2)
  if algorithm in ("direct", "fftgrad"):
    return _valid_by_padding(padded, kernel_KxKxCinxCout, stride)
  if algorithm == "winograd":
    return winograd.conv3x3(padded, winograd.transform_kernel(kernel_KxKxCinxCout, 2))[
        :, 1:-1, 1:-1]
  if algorithm == "unfold":
    return _unfolded_conv(padded, kernel_KxKxCinxCout)
  return _space_to_depth_conv(padded, kernel_KxKxCinxCout)


def _unfolded_conv(padded_NxHxWxC, kernel_KxKxCinxCout):
  """VALID stride-1 convolution as a K x 1 one over the K column shifts stacked as channels."""
  k, _, cin, cout = kernel_KxKxCinxCout.shape
  w = padded_NxHxWxC.shape[2] - k + 1
  # columns[n, y, j, (dx, c)] = x[n, y, j + dx, c], matching the kernel's (dx, c) order.
  columns = jnp.concatenate([padded_NxHxWxC[:, :, dx:dx + w] for dx in range(k)], -1)
  return _valid_by_padding(columns, kernel_KxKxCinxCout.reshape(k, 1, k * cin, cout), 1)


def _space_to_depth_conv(padded_NxHxWxC, kernel_KxKxCinxCout):
  """VALID stride-2 convolution as a stride-1 one over 2x2 pixel blocks stacked as channels."""
  n, h, w, c = padded_NxHxWxC.shape
  k, _, cin, cout = kernel_KxKxCinxCout.shape
  half = -(-k // 2)
  ho, wo = (h - k) // 2 + 1, (w - k) // 2 + 1
  x = jnp.pad(padded_NxHxWxC, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
  hb, wb = x.shape[1] // 2, x.shape[2] // 2
  # blocks[n, i, j, (a, b, c)] = x[n, 2i + a, 2j + b, c].
  blocks = x.reshape(n, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hb, wb, 4 * c)
  # kernel2[ty, tx, (a, b, c), o] = kernel[2ty + a, 2tx + b, c, o], zero past the kernel's edge.
  kernel = jnp.pad(kernel_KxKxCinxCout, ((0, 2 * half - k), (0, 2 * half - k), (0, 0), (0, 0)))
  kernel = kernel.reshape(half, 2, half, 2, cin, cout).transpose(0, 2, 1, 3, 4, 5)
  y = _valid_by_padding(blocks, kernel.reshape(half, half, 4 * cin, cout), 1)
  return y[:, :ho, :wo]


# Which rows of the 3x3 kernel each 2-row sub-pixel kernel sums, per output phase.
_PHASE_ROWS = (((1, 0, 0), (0, 1, 1)), ((1, 1, 0), (0, 0, 1)))


def _subpixel(x_NxHxWxCin, kernel_3x3xCinxCout):
  """reflect_pad(up_2(x), 1) ⊛ W as four 2x2 convolutions of the small image, interleaved."""
  n, h, w, _ = x_NxHxWxCin.shape
  edge = jnp.pad(x_NxHxWxCin, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  rows = []
  for a in range(2):
    cols = []
    for b in range(2):
      merge_a = jnp.asarray(_PHASE_ROWS[a], kernel_3x3xCinxCout.dtype)
      merge_b = jnp.asarray(_PHASE_ROWS[b], kernel_3x3xCinxCout.dtype)
      kernel = jnp.einsum("yi,xj,ijco->yxco", merge_a, merge_b, kernel_3x3xCinxCout)
      cols.append(_valid_by_padding(edge[:, a:a + h + 1, b:b + w + 1], kernel, 1))
    rows.append(jnp.stack(cols, 3))  # N x H x W x 2 x Cout.
  y = jnp.stack(rows, 2)  # N x H x 2 x W x 2 x Cout: y[n, i, a, j, b] = out[n, 2i + a, 2j + b].
  return y.reshape(n, 2 * h, 2 * w, -1)


def _kernel_gradient_by_products(padded_NxHxWxCin, g_NxHoxWoxCout, k: int, stride: int):
  """dW[dy, dx, c, o] = Σ_{n,i,j} padded[n, s·i + dy, s·j + dx, c] · g[n, i, j, o], the kernel
  gradient of a VALID k x k stride-s convolution, as k matrix products (one per row offset dy)
  of the cotangents (P x Cout, P = N·Ho·Wo) with the image's k column shifts stacked as
  channels (P x k·Cin).

  XLA:CPU's own kernel gradient runs at 25-60 GFLOP/s where the image is large (the upsampling
  layers' 128² and 256² at batch 4) or the stride 2 (docs/BENCHMARKS.md); these products run
  near its matmul rate on those shapes, and slower than it on small images (the residual
  layers), so only ``s2d`` and ``subpixel`` take it.
  """
  n, ho, wo, cout = g_NxHoxWoxCout.shape
  cin = padded_NxHxWxCin.shape[-1]
  cotangents_OxP = g_NxHoxWoxCout.reshape(n * ho * wo, cout).T
  rows = []
  for dy in range(k):
    shifts = jnp.concatenate([
        jax.lax.slice(padded_NxHxWxCin, (0, dy, dx, 0),
                      (n, dy + stride * (ho - 1) + 1, dx + stride * (wo - 1) + 1, cin),
                      (1, stride, stride, 1))
        for dx in range(k)], -1)
    rows.append((cotangents_OxP @ shifts.reshape(n * ho * wo, k * cin)).T)  # (dx, c) x o.
  return jnp.stack(rows).reshape(k, k, cin, cout)


def _kernel_gradient_by_fft(padded_NxHxWxCin, g_NxHoxWoxCout, k: int):
  """dW[dy, dx, c, o] = Σ_{n,i,j} padded[n, i + dy, j + dx, c] · g[n, i, j, o] (stride 1), as
  a cross-correlation: the inverse real FFT of Σ_n F(padded) · conj(F(g)), g zero-extended to
  the padded image's size, read at lags 0..k-1.

  About N·(Cin + Cout)·HW·log(HW) work for the transforms, against N·k²·Cin·Cout·HW for the
  products, and none of it in XLA:CPU's slow kernel-gradient convolution.
  """
  n, h, w, _ = padded_NxHxWxCin.shape
  image = jnp.fft.rfft2(padded_NxHxWxCin, axes=(1, 2))
  cotangents = jnp.fft.rfft2(g_NxHoxWoxCout, s=(h, w), axes=(1, 2))
  spectrum = jnp.einsum("nyxc,nyxo->yxco", image, jnp.conj(cotangents))
  return jnp.fft.irfft2(spectrum, s=(h, w), axes=(0, 1))[:k, :k].astype(g_NxHoxWoxCout.dtype)


def _subpixel_kernel_gradient(x_NxHxWxCin, g_Nx2Hx2WxCout):
  """The 3x3 kernel's gradient of :func:`_subpixel`, on the small image.

  Phase (a, b)'s 2x2 kernel is M_a K M_bᵀ (rows merged by ``_PHASE_ROWS``), so
  dK = Σ_ab M_aᵀ dK_ab M_b, and each dK_ab is the window (a, b) of one 3x3
  kernel gradient over the edge-padded small image whose 4·Cout output
  channels are the four phases' cotangents: 2.25x fewer multiplies than the
  upsampled image's, and with :func:`_kernel_gradient_by_products` at the matmul's rate.
  """
  n, h, w, cin = x_NxHxWxCin.shape
  cout = g_Nx2Hx2WxCout.shape[-1]
  edge = jnp.pad(x_NxHxWxCin, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  # phases[n, i, j, (a, b, c)] = g[n, 2i + a, 2j + b, c].
  phases = g_Nx2Hx2WxCout.reshape(n, h, 2, w, 2, cout).transpose(0, 1, 3, 2, 4, 5)
  window = _kernel_gradient_by_products(edge, phases.reshape(n, h, w, 4 * cout), 3, 1)
  window = window.reshape(3, 3, cin, 2, 2, cout)
  merge = jnp.asarray(_PHASE_ROWS, x_NxHxWxCin.dtype)
  return sum(jnp.einsum("yi,xj,yxco->ijco", merge[a], merge[b], window[a:a + 2, b:b + 2, :, a, b])
             for a in range(2) for b in range(2))


# ---- VGG's layers: 3x3, stride 1, zero-padded ('SAME') -------------------------------------


def _conv_same(x_NxHxWxCin, kernel_3x3xCinxCout):
  return _lax_conv(x_NxHxWxCin, kernel_3x3xCinxCout, 1, "SAME")


@jax.custom_vjp
def conv3x3(x_NxHxWxCin, kernel_3x3xCinxCout):
  """VGG's 3x3 stride-1 'SAME' convolution (cross-correlation), NHWC x HWIO, directly.

  Its gradient with respect to the input is written out as an ordinary
  NHWC/HWIO convolution with the spatially flipped, I/O-swapped kernel.
  Mathematically this is JAX's own transpose rule; the difference is speed:
  XLA:CPU runs the convolution JAX emits for that rule 3-4x slower inside a
  ``while`` loop body than outside it (jax-ml/jax#12868), and the compiled
  optimisation loop lives in one. The kernel's gradient keeps JAX's rule;
  XLA removes it when only the image's gradient is used.
  """
  return _conv_same(x_NxHxWxCin, kernel_3x3xCinxCout)


def _conv3x3_fwd(x, kernel):
  return _conv_same(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, g_NxHxWxCout):
  x, kernel = residuals
  dx = _conv_same(g_NxHxWxCout, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
  _, kernel_vjp = jax.vjp(lambda k: _conv_same(x, k), kernel)
  return dx, kernel_vjp(g_NxHxWxCout)[0]


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


WINOGRAD_TILE = 2
"""VGG's Winograd layers run F(2x2, 3x3). F(4x4) is faster still on deep layers (up to 2.5x on
CPU), but at 96 px its gradient came out 4e-3 (RMS, relative) off a float64 reference, against
5e-7 with F(2x2), and it was rejected for that, put down to its constant multiplies fusing into
FMAs differently in different programs. A later measurement (docs/BENCHMARKS.md, 2026-12-05,
"VGG's layers chosen one by one") found the same 4e-3 with F(2x2) for some sets of Winograd
layers and 3e-7 for every set with average pooling: float32 rounding flipping max pooling's
near-ties, which sends a window's gradient to another pixel. The F(4x4) verdict may rest on
that too; it was not re-measured."""


def winograd_kernels(kernel_3x3xCinxCout) -> dict:
  """``{"winograd": U, "winograd_t": U_t}``: the transforms :func:`winograd_conv3x3` takes, of
  the kernel and of its transpose (the image gradient's kernel). Held constant: no gradient
  flows to them (differentiate VGG's own weights with ``conv="direct"``)."""
  kernel = jax.lax.stop_gradient(kernel_3x3xCinxCout)
  return {"winograd": winograd.transform_kernel(kernel, WINOGRAD_TILE),
          "winograd_t": winograd.transform_kernel(winograd.transpose_kernel(kernel),
                                                  WINOGRAD_TILE)}


@jax.custom_vjp
def winograd_conv3x3(x_NxHxWxCin, U, U_t):
  """:func:`conv3x3` by Winograd, from the kernel's transform ``U`` and its transpose's ``U_t``
  (:func:`winograd_kernels`, made once per run).

  The image's gradient is the transposed convolution, by Winograd from ``U_t`` (faster than
  autodiff's adjoint of the forward transforms, measured). The transformed kernels are
  constants: their gradients are zero.
  """
  return winograd.conv3x3(x_NxHxWxCin, U)


def _winograd_fwd(x, U, U_t):
  return winograd.conv3x3(x, U), (U, U_t)


def _winograd_bwd(residuals, g_NxHxWxCout):
  U, U_t = residuals
  return winograd.conv3x3(g_NxHxWxCout, U_t), jnp.zeros_like(U), jnp.zeros_like(U_t)


winograd_conv3x3.defvjp(_winograd_fwd, _winograd_bwd)


# ---- The layer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerShape:
  """What a layer's speed depends on: input, kernel, stride, upsampling, gradients, padding.

  ``grad``: timed with the gradients it runs in training or optimisation. A style network's
  layer (``padding="reflect"``) gets both, the image's and the kernel's; VGG's
  (``padding="zeros"``) only the image's: its weights are frozen wherever they are timed.
  """

  batch: int
  height: int
  width: int
  cin: int
  cout: int
  kernel: int
  stride: int = 1
  upsample: int = 1
  grad: bool = False
  dtype: str = "float32"
  padding: str = "reflect"

  def key(self) -> str:
    """A short, stable name: ``4x256x256x3-32-k9s1u1-reflect-grad-float32``."""
    return (f"{self.batch}x{self.height}x{self.width}x{self.cin}-{self.cout}-k{self.kernel}"
            f"s{self.stride}u{self.upsample}-{self.padding}-{'grad' if self.grad else 'fwd'}"
            f"-{self.dtype}")

  def macs(self) -> int:
    """Multiply-adds of the forward convolution (as ``direct`` computes it)."""
    outputs = self.batch * (self.height * self.upsample // self.stride) * (
        self.width * self.upsample // self.stride)
    return outputs * self.kernel ** 2 * self.cin * self.cout

  def measured_as(self) -> "LayerShape":
    """The shape its algorithms are timed at: itself, or with fewer images and then smaller
    sides, down to :data:`MEASURED_POSITIONS` input positions (batch x H x W). Per-position
    speed is flat beyond that, and timing a 4000 px layer would take long and leave memory
    behind that the run itself needs."""
    if self.batch * self.height * self.width <= MEASURED_POSITIONS:
      return self
    batch = max(1, min(self.batch, MEASURED_POSITIONS // (self.height * self.width)))
    scale = min(1.0, math.sqrt(MEASURED_POSITIONS / (batch * self.height * self.width)))
    return dataclasses.replace(self, batch=batch, height=max(self.kernel, int(self.height * scale)),
                               width=max(self.kernel, int(self.width * scale)))

  def candidates(self) -> tuple[str, ...]:
    """The algorithms ``auto`` times for this layer (``valid`` never wins; not timed, nor is
    ``fftgrad`` where nothing trains: its forward is ``direct``'s)."""
    if self.padding == "zeros":
      return ("direct", "winograd") if (self.kernel, self.stride, self.upsample) == (3, 1, 1) \
          else ("direct",)
    skip = ("valid",) if self.grad else ("valid", "fftgrad")
    return tuple(a for a in ALGORITHMS
                 if a not in skip and applies(a, self.kernel, self.stride, self.upsample, self.cin))


def summary(chosen: dict[str, str]) -> dict[str, int]:
  """How many layers run each algorithm: ``{"direct": 12, "subpixel": 2}`` (for logs)."""
  return dict(sorted(collections.Counter(chosen.values()).items()))


# ---- Measuring and caching the choice -----------------------------------------------------------


def _program(shape: LayerShape, algorithm: str):
  """The jitted work of a layer of ``shape`` by ``algorithm``, called ``(x, *kernels[,
  cotangent])``: forward, or with the gradients it runs (:class:`LayerShape`). VGG's Winograd
  kernels are its transforms, made outside as a run makes them (once)."""
  if shape.padding == "zeros":
    conv, differentiated = (winograd_conv3x3 if algorithm == "winograd" else conv3x3), 1
  else:
    conv, differentiated = partial(reflect_conv, stride=shape.stride, upsample=shape.upsample,
                                   algorithm=algorithm), 2
  if not shape.grad:
    return jax.jit(conv)

  def with_gradients(*args):
    *inputs, cotangent = args
    fixed = inputs[differentiated:]
    y, vjp = jax.vjp(lambda *d: conv(*d, *fixed), *inputs[:differentiated])
    return y, vjp(cotangent)
  return jax.jit(with_gradients)


def time_layer(shape: LayerShape, algorithm: str, *, repeats: int = 3) -> float:
  """Seconds per call of the layer by ``algorithm`` (best of ``repeats``, after a warm-up)."""
  rng = np.random.default_rng(0)
  dtype = jnp.dtype(shape.dtype)
  x = jnp.asarray(rng.standard_normal((shape.batch, shape.height, shape.width, shape.cin)), dtype)
  kernel = jnp.asarray(rng.standard_normal((shape.kernel, shape.kernel, shape.cin, shape.cout))
                       / shape.kernel, dtype)
  args = (x, kernel)
  if shape.padding == "zeros" and algorithm == "winograd":
    args = (x, *jax.jit(winograd_kernels)(kernel).values())
  if shape.grad:
    out = jax.eval_shape(lambda x, k: reflect_conv(x, k, stride=shape.stride,
                                                   upsample=shape.upsample), x, kernel)
    args += (jnp.ones(out.shape, dtype),)  # VGG's 'SAME' layers: the same shape as 'reflect'.
  return best_seconds(_program(shape, algorithm), *args, repeats=repeats)


def best_seconds(fn, *args, repeats: int = 3) -> float:
  """The fastest of ``repeats`` calls of ``fn(*args)``, after one untimed (compiling) call."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best


def fastest(times: dict[str, float]) -> str:
  """``direct`` unless another algorithm took at most :data:`MARGIN` of its time."""
  best = min(times, key=times.get)
  if "direct" in times and times[best] > MARGIN * times["direct"]:
    return "direct"
  return best


class ChoiceCache:
  """Measured choices on disk: ``{layer key: {"algorithm", "seconds": {algorithm: s}}}``.

  One JSON file per backend, device kind, jax version and :func:`algorithms_digest` (a new
  jax, a changed algorithm or another machine measure afresh), written atomically after each
  new choice. ``directory=None`` keeps the choices in memory only.
  """

  def __init__(self, directory: Path | None):
    self.path = None
    if directory is not None:
      device = jax.devices()[0]
      name = (f"{jax.default_backend()}-{device.device_kind}-jax{jax.__version__}"
              f"-algorithms{algorithms_digest()}")
      self.path = Path(directory) / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".json")
    self.entries: dict[str, dict] = {}
    if self.path is not None and self.path.exists():
      try:
        self.entries = json.loads(self.path.read_text())
      except (OSError, ValueError):
        self.entries = {}  # A damaged cache only costs a re-measurement.

  @classmethod
  def default(cls) -> "ChoiceCache":
    """The cache in :func:`default_dir` (memory only when that is disabled)."""
    return cls(default_dir())

  def get(self, shape, choices=ALGORITHMS) -> str | None:
    """The choice cached for ``shape`` (anything with a ``key()``: a :class:`LayerShape`, or
    :class:`jaxstyle.objective.ObjectiveShape` with its own ``choices``), if one of them."""
    entry = self.entries.get(shape.key())
    return entry["algorithm"] if entry and entry.get("algorithm") in choices else None

  def put(self, shape, algorithm: str, seconds: dict[str, float]) -> None:
    self.entries[shape.key()] = {"algorithm": algorithm,
                                 "seconds": {a: round(s, 6) for a, s in seconds.items()}}
    if self.path is None:
      return
    from jaxstyle.files import atomic_path
    try:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      with atomic_path(self.path) as tmp:
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
    except OSError:
      pass  # Unwritable: the choice still holds for this run.


@cache
def algorithms_digest() -> str:
  """A short hash of the algorithms' source (this module and Winograd's): what a choice was
  measured against. A version number would keep stale choices across edits of a development
  tree, where a changed algorithm is exactly what should be timed again. Read once a process:
  the source does not change under a running one."""
  digest = hashlib.sha256()
  for module in (sys.modules[__name__], winograd):
    digest.update(Path(module.__file__).read_bytes())
  return digest.hexdigest()[:10]


ENV_VAR = "JAXSTYLE_CONV_CACHE_DIR"


def default_dir() -> Path | None:
  """``$JAXSTYLE_CONV_CACHE_DIR`` (empty: memory only), else beside XLA's compile cache:
  its directory's name + ``-convs`` (``~/.cache/jaxstyle/xla-convs``); memory only when that
  cache is disabled."""
  if ENV_VAR in os.environ:
    return Path(os.environ[ENV_VAR]) if os.environ[ENV_VAR] else None
  from jaxstyle import cache
  xla = cache.default_dir()
  return xla.with_name(xla.name + "-convs") if xla is not None else None


def choose(shape: LayerShape, cache: ChoiceCache, *, log=None) -> str:
  """The layer's algorithm: the cache's, or the fastest measured now (then cached), each for
  :meth:`LayerShape.measured_as`."""
  shape = shape.measured_as()
  known = cache.get(shape)
  if known is not None:
    return known
  candidates = shape.candidates()
  if len(candidates) == 1 or shape.macs() < UNMEASURED_MACS:
    return "direct"
  seconds = {a: time_layer(shape, a) for a in candidates}
  algorithm = fastest(seconds)
  cache.put(shape, algorithm, seconds)
  if log is not None:
    timings = ", ".join(f"{a} {s * 1e3:.1f} ms" for a, s in seconds.items())
    log(f"conv {shape.key()}: {algorithm} ({timings})")
  return algorithm


def measure_all(shapes: dict[str, LayerShape], cache: ChoiceCache, *, refresh: bool = False,
                log=None) -> list[dict]:
  """Each layer's choice and candidates' seconds: cached ones as cached (all re-timed with
  ``refresh``), missing ones measured now; the cache keeps the results."""
  rows = []
  for name, shape in shapes.items():
    key = shape.measured_as().key()
    if refresh:
      cache.entries.pop(key, None)
    algorithm = choose(shape, cache, log=log)
    rows.append({"layer": name, "shape": key, "algorithm": algorithm,
                 "seconds": cache.entries.get(key, {}).get("seconds", {})})
  return rows


def stderr_log(message: str) -> None:
  """What :func:`jaxstyle.nets.layers.plan` prints while it measures (the CLI's ``log``)."""
  print(message, file=sys.stderr, flush=True)


def record(chosen: dict[str, str], conv: str, vgg_winograd=None) -> dict:
  """The provenance entry: what was asked and what every layer ran; for training, also the
  loss network's layers that ran by Winograd (``vgg_winograd``)."""
  entry = {"conv": conv, "layers": dict(chosen)}
  if vgg_winograd is not None:
    entry["vgg_winograd"] = list(vgg_winograd)
  return entry


__all__ = ["ALGORITHMS", "CHOICES", "ChoiceCache", "LayerShape", "applies", "best_seconds",
           "choose", "conv3x3", "measure_all", "record", "reflect_conv", "summary", "time_layer",
           "winograd_conv3x3", "winograd_kernels"]
