"""Applying a trained network: photos in, stylized photos out, in one forward pass each."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxstyle import memory
from jaxstyle.errors import ConfigError
from jaxstyle.nets.adain import AdaINNet
from jaxstyle.nets.johnson import JohnsonNet, style_vector
from jaxstyle.nets.layers import plan


class _Compiled:
  """A network's forward compiled per input shape, each shape's convolutions planned first.

  ``conv`` is ``--conv``: ``auto`` times each layer's algorithms at the
  first use of a shape (cached on disk, :mod:`jaxstyle.conv`), or one
  algorithm for every layer. ``plans`` maps each input shape to its
  ``{layer: algorithm}``, for provenance.
  """

  def __init__(self, net, method: str, conv: str, log=None):
    self.net, self.method, self.conv, self.log = net, method, conv, log
    self.plans: dict[tuple, dict[str, str]] = {}
    self._programs: dict[tuple, object] = {}

  def __call__(self, x_NxHxWx3, *args):
    shape = tuple(x_NxHxWx3.shape)
    if shape not in self._programs:
      call = getattr(self.net, self.method)
      self.plans[shape] = plan(self.net, call, x_NxHxWx3, *args, conv=self.conv, log=self.log)
      graphdef, state = nnx.split(self.net)
      method = self.method

      @jax.jit
      def forward(state, *inputs):
        return getattr(nnx.merge(graphdef, state), method)(*inputs)
      self._programs[shape] = (forward, state)
    forward, state = self._programs[shape]
    return forward(state, x_NxHxWx3, *args)

  def record(self) -> dict:
    """What ``--conv`` asked and what each layer ran, per input shape (``"1x512x512x3"``)."""
    return {"conv": self.conv,
            "plans": {"x".join(map(str, shape)): chosen for shape, chosen in self.plans.items()}}


class Stylizer:
  """A network compiled once per input shape: ``stylizer(imgs_NxHxWx3_uint8)`` → uint8.

  Sides that are not multiples of 4 are reflection-padded up to one and the
  output cropped back, so every output has its input's size. ``conv``: how
  the convolutions run (:data:`jaxstyle.conv.CHOICES`).
  """

  def __init__(self, net: JohnsonNet, style=0, *, conv: str = "auto", log=None):
    self.styles = net.spec.styles
    self.style_S = style_vector(style, self.styles)
    self._forward = _Compiled(net, "__call__", conv, log)
    self.width = net.spec.width
    self.net, self.conv, self.log = net, conv, log

  def conv_record(self) -> dict:
    """The convolution algorithms used so far (:meth:`_Compiled.record`), for provenance."""
    return self._forward.record()

  @property
  def min_side(self) -> int:
    """The smallest side the network takes (:func:`stride_multiple`)."""
    return stride_multiple(self.net)

  def peak_bytes(self, pixels: int, images: int = 1) -> int:
    """Predicted peak memory of stylizing ``images`` images of ``pixels`` each in one call."""
    return memory.johnson_forward_bytes(self.width, pixels, images)

  def __call__(self, imgs_NxHxWx3) -> np.ndarray:
    style = jnp.broadcast_to(self.style_S, (imgs_NxHxWx3.shape[0], self.styles))
    return _padded(lambda x: self._forward(x, style), imgs_NxHxWx3, self.min_side)

  def tiled(self, img_HxWx3, tile: int, *, progress=None) -> np.ndarray:
    """One image stylized tile by tile with whole-image statistics
    (:func:`jaxstyle.nets.tiles.stylize_tiled`): the same pixels in one tile's memory."""
    from jaxstyle.nets import tiles
    return tiles.stylize_tiled(self.net, img_HxWx3, self._tile_args(), tile,
                               method=self._forward.method, conv=self.conv, log=self.log,
                               progress=progress)

  def _tile_args(self):
    return (self.style_S[None],)

  def tiled_peak_bytes(self, tile: int, pixels: int) -> int:
    """Predicted peak of :meth:`tiled` on an image of ``pixels``: one tile's forward with its
    halo, and the image four times over in uint8 (input, padded, output, the copy saved)."""
    from jaxstyle.nets import tiles
    side = tile + 2 * tiles.halo(self.net)
    return self.peak_bytes(side * side) + 4 * 3 * pixels

  def largest_tile(self, pixels: int, available: int) -> int | None:
    """The largest tile side (1024 down to 256 px) whose :meth:`tiled_peak_bytes` fits. Not
    more: at 1024 px the halo costs 27% more work, at 2048 13%, for 2.6x the memory."""
    for tile in (1024, 768, 512, 384, 256):
      if self.tiled_peak_bytes(tile, pixels) <= available:
        return tile
    return None


class AdaINStylizer:
  """An AdaIN model with its styles fixed: ``stylizer(imgs_NxHxWx3_uint8)`` → uint8.

  ``styles`` are RGB images (any sizes); their relu4_1 statistics are taken
  once. ``mix`` weighs them (an index or K weights, normalised), ``alpha``
  trades content (0) for style (1). Sides are reflection-padded to a
  multiple of 8 (the encoder pools three times) and cropped back.
  """

  def __init__(self, net: AdaINNet, styles, mix=0, alpha: float = 1.0, *, conv: str = "auto",
               log=None):
    if not 0 <= alpha <= 1:
      raise ConfigError(f"--alpha: expected a content/style trade-off in [0, 1], got {alpha}")
    if not styles:
      raise ConfigError("an AdaIN model needs at least one style image (--style-image)")
    stats = [net.style_stats(jnp.asarray(s, jnp.float32)[None]) for s in styles]
    self.mean_KxC = jnp.concatenate([m.reshape(1, -1) for m, _ in stats])
    self.std_KxC = jnp.concatenate([s.reshape(1, -1) for _, s in stats])
    self.style_S = style_vector(mix, len(styles))
    self.alpha = float(alpha)
    self._forward = _Compiled(net, "stylize", conv, log)
    self.width = net.spec.width
    self.net, self.conv, self.log = net, conv, log

  conv_record = Stylizer.conv_record
  tiled, tiled_peak_bytes, largest_tile = (Stylizer.tiled, Stylizer.tiled_peak_bytes,
                                           Stylizer.largest_tile)

  def _tile_args(self):
    return (self.mean_KxC, self.std_KxC, self.style_S[None], jnp.float32(self.alpha))

  min_side = Stylizer.min_side

  def peak_bytes(self, pixels: int, images: int = 1) -> int:
    """Predicted peak memory of stylizing ``images`` images of ``pixels`` each in one call."""
    return memory.adain_forward_bytes(self.width, pixels, images)

  def __call__(self, imgs_NxHxWx3) -> np.ndarray:
    n = imgs_NxHxWx3.shape[0]
    mix = jnp.broadcast_to(self.style_S, (n, self.style_S.shape[0]))
    return _padded(lambda x: self._forward(x, self.mean_KxC, self.std_KxC, mix,
                                           jnp.float32(self.alpha)), imgs_NxHxWx3, self.min_side)


def stride_multiple(net) -> int:
  """The product of a network's strides: its sides are padded to a multiple of this, its tiles
  start on one, and it is the smallest side it takes (Johnson's two stride-2 convolutions: 4;
  AdaIN's encoder pools three times, its decoder upsamples three times: 8)."""
  return 8 if isinstance(net, AdaINNet) else 4


def _padded(forward, imgs_NxHxWx3, multiple: int) -> np.ndarray:
  """:func:`padded_forward` of the images, rounded to uint8."""
  out = padded_forward(forward, jnp.asarray(imgs_NxHxWx3, jnp.float32), multiple)
  return np.asarray(jnp.round(out)).astype(np.uint8)


def padded_forward(forward, x_NxHxWx3, multiple: int):
  """``forward`` on the images reflection-padded (bottom, right) to sides that are multiples of
  ``multiple``, cropped back to the input's size and clipped to 0-255 (float).

  The one definition of a network's output at any size: :class:`Stylizer`
  rounds it, :mod:`jaxstyle.nets.export` writes it into the ONNX graph, where H
  and W are symbols.
  """
  _, h, w, _ = x_NxHxWx3.shape
  x = pad_to_multiple(pad_to_multiple(x_NxHxWx3, multiple, 1), multiple, 2)
  out = jax.lax.slice_in_dim(jax.lax.slice_in_dim(forward(x), 0, h, axis=1), 0, w, axis=2)
  return jnp.clip(out, 0, 255)


def pad_to_multiple(x, multiple: int, axis: int):
  """Reflection-pads ``axis`` at its end up to a multiple of ``multiple`` (size ≥ ``multiple``).

  As the ``multiple - 1`` reflected rows appended, then cut at the multiple:
  no comparison of sizes, so it traces with a symbolic size too.
  """
  n = x.shape[axis]
  if isinstance(n, int) and n % multiple == 0:
    return x
  tail = jnp.flip(jax.lax.slice_in_dim(x, n - multiple, n - 1, axis=axis), axis)
  return jax.lax.slice_in_dim(jax.lax.concatenate([x, tail], axis), 0,
                              (n + multiple - 1) // multiple * multiple, axis=axis)


def stylizer_for(net, *, style=0, style_images=(), alpha: float = 1.0, conv: str = "auto",
                 log=None):
  """The stylizer a model needs: Johnson's picks ``style`` (index or mix) of its own; AdaIN's
  takes ``style_images`` (RGB arrays) mixed by ``style`` and ``alpha``. ``conv`` and ``log``:
  how its convolutions are chosen, and where measuring them is reported
  (:func:`jaxstyle.nets.layers.plan`)."""
  if isinstance(net, AdaINNet):
    return AdaINStylizer(net, list(style_images), style, alpha, conv=conv, log=log)
  if len(style_images):
    raise ConfigError("--style-image: this model was trained for its own styles (a "
                      "Johnson network); choose one with --style or --style-mix")
  if alpha != 1.0:
    raise ConfigError("--alpha: only AdaIN models trade content for style at apply time")
  return Stylizer(net, style, conv=conv, log=log)
