"""The objective and its gradient for images larger than memory: tile by tile, exactly.

What makes an image too large is the VGG's activations (block1 alone holds
64 floats a pixel, and the gradient as many again). The objective needs of
them only sums over positions: each Gram matrix G_l = Σ_p F_l(p) F_l(p)ᵀ and
each content term Σ_p (F_l(p) − P_l(p))². So:

    pass 1: every tile's own positions' Grams and content sums, added up:
            G_l, S_l, and from them the objective J (TV and the temporal term
            from the image itself: they are local and cheap);
    pass 2: every tile again, the vector-Jacobian product of its own parts
            with ∂J/∂G_l and ∂J/∂S_l, added into the image's gradient.

A tile is a crop with a halo of real pixels wider than the VGG's receptive
field (:func:`halo`), starting on multiples of 16 (four pools), so its own
positions see exactly what the whole image gives them, and where a crop
reaches the image's edge the VGG pads there as it pads the whole image. The
result equals the untiled objective and gradient to float rounding, for one
tile's activations of memory; the cost is one more forward pass and the
halos. Tiles run in a ``lax.scan`` (one compiled tile), so the whole
optimisation stays one compiled program. The Gram style loss only (the
classic objective); masks and normalised gradients are refused.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxstyle import losses, vgg
from jaxstyle.errors import ConfigError
from jaxstyle.tiling import tiles

ALIGN = 16
"""Crops start on multiples of this: 2⁴, the VGG's pools before block5."""


def level(layer: str) -> int:
  """How many 2x2 pools lie before a VGG layer (``block3_conv1``: 2)."""
  return int(layer[len("block")]) - 1


def halo(layers, network: str) -> int:
  """The receptive field radius in input pixels of the deepest of ``layers``, rounded up to
  :data:`ALIGN`: each 3x3 conv adds one step of its scale, each 2x2 pool one, and the scale
  doubles at each pool (conv5_1: 85 px, so 96)."""
  deepest = max(vgg.layer_names(network).index(n.removesuffix(vgg.PREACT)) for n in layers)
  radius, step, block = 0, 1, 1
  for spec in vgg.ARCHITECTURES[network][:deepest + 1]:
    if spec.block != block:
      radius, step, block = radius + step, step * 2, spec.block
    radius += step
  return -(-radius // ALIGN) * ALIGN


def crop_shape(config, height: int, width: int) -> tuple[int, int]:
  """The image the network runs on at once for a height x width image: with ``config.tile``,
  one tile's crop (its halo included), else the whole image."""
  if not config.tile:
    return height, width
  layers = [vgg.canonical_layer(n, config.network)
            for n in config.content_layers + config.style_layers]
  crop, _ = tiles(height, width, config.tile, halo(layers, config.network), ALIGN)
  return crop


def refusal(style_loss: str, masked: bool, normalize_gradients: bool) -> str | None:
  """Why an objective with these settings cannot be tiled as implemented, or None (the one
  list: :func:`check_supported` raises it, :func:`jaxstyle.memory.tile_to_fit` does not tile)."""
  if style_loss != "gram":
    return f"--tile: the Gram style loss only (got --style-loss {style_loss})"
  if masked:
    return "--tile: style masks are not tiled; leave --style-masks out"
  if normalize_gradients:
    return "--tile: --normalize-gradients is not tiled (it needs each layer's whole gradient)"
  return None


def check_supported(spec, targets) -> None:
  """ConfigError unless the objective decomposes into sums over positions as implemented."""
  why = refusal(spec.style_loss, bool(targets.masks), spec.normalize_gradients)
  if why:
    raise ConfigError(why)


def _mask(h: int, w: int, owned_4, shift: int):
  """1 over the tile's own block at a layer ``shift`` pools deep, else 0 (H x W x 1)."""
  top, bottom, left, right = [jnp.right_shift(v, shift) for v in owned_4]
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
  return inside[..., None].astype(jnp.float32)


def _parts(params, content, crop_HxWx3, origin_2, owned_4, spec):
  """One tile's own Grams ``{style layer: C x C}`` and content sums ``{layer: Σ (F − P)²}``."""
  from jaxstyle.objective import network_features
  feats = network_features(params, crop_HxWx3[None], spec.layers, spec, remat=spec.remat)
  grams, squared = {}, {}
  for name in spec.style_layers:
    F = feats[name][0]
    grams[name] = losses.gram_matrix(F * _mask(*F.shape[:2], owned_4, level(name)))
  for name in spec.content_layers:
    F = feats[name][0]
    k = level(name)
    P = jax.lax.dynamic_slice(content[name], (jnp.right_shift(origin_2[0], k),
                                              jnp.right_shift(origin_2[1], k),
                                              jnp.zeros((), origin_2.dtype)), F.shape)
    squared[name] = jnp.sum(_mask(*F.shape[:2], owned_4, k) * jnp.square(F - P))
  return grams, squared


def _layout(params, x_HxWx3, spec):
  """The crop shape and each tile's origin (T x 2) and own block (T x 4), as arrays."""
  h, w, _ = x_HxWx3.shape
  crop, found = tiles(h, w, spec.tile, halo(spec.layers, vgg.network_of(params)), ALIGN)
  origins = jnp.asarray([(t.y, t.x) for t in found], jnp.int32)
  owned = jnp.asarray([(t.top, t.bottom, t.left, t.right) for t in found], jnp.int32)
  return crop, origins, owned


def _crop(x_HxWx3, origin_2, crop):
  return jax.lax.dynamic_slice(x_HxWx3, _start(origin_2), (*crop, 3))


def _start(origin_2):
  return (origin_2[0], origin_2[1], jnp.zeros((), origin_2.dtype))


def _summed(params, content, x_HxWx3, spec):
  """Pass 1: the Grams and content sums of the whole image, added up tile by tile."""
  crop, origins, owned = _layout(params, x_HxWx3, spec)
  one = partial(_parts, params, content, spec=spec)
  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(
      one, jax.ShapeDtypeStruct((*crop, 3), x_HxWx3.dtype), origins[0], owned[0]))

  def body(total, tile):
    origin, own = tile
    return jax.tree.map(jnp.add, total, one(_crop(x_HxWx3, origin, crop), origin, own)), None
  return jax.lax.scan(body, zeros, (origins, owned))[0]


def _terms(grams, squared, targets, x_HxWx3, spec):
  """The objective's terms (as :func:`jaxstyle.objective.objective_terms` names them) from the
  summed Grams and content sums, and the image itself for TV and the temporal term."""
  h, w, _ = x_HxWx3.shape
  content = sum((losses.content_from_squared(squared[n], spec.content_norm,
                                              targets.content[n].size)
                 for n in spec.content_layers), jnp.float32(0))
  style = sum((weight * losses.gram_loss(grams[n], targets.style[n],
                                         positions=(h >> level(n)) * (w >> level(n)),
                                         norm=spec.style_norm, pixels=h * w)
               for n, weight in zip(spec.style_layers, spec.style_layer_weights)),
              jnp.float32(0))
  terms = {"content": content, "style": style, "tv": losses.tv_loss(x_HxWx3, beta=spec.tv_beta)}
  if targets.temporal is not None:
    terms["temporal"] = losses.temporal_loss(x_HxWx3, *targets.temporal)
  return terms


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def objective_terms(params, targets, x_HxWx3, spec):
  """:func:`jaxstyle.objective.objective_terms` computed tile by tile (``spec.tile`` px), with
  its gradient with respect to the image by the second pass (module docstring)."""
  grams, squared = _summed(params, targets.content, x_HxWx3, spec)
  return _terms(grams, squared, targets, x_HxWx3, spec)


def _fwd(params, targets, x_HxWx3, spec):
  grams, squared = _summed(params, targets.content, x_HxWx3, spec)
  return _terms(grams, squared, targets, x_HxWx3, spec), (params, targets, x_HxWx3, grams,
                                                          squared)


def _bwd(spec, residuals, g_terms):
  params, targets, x_HxWx3, grams, squared = residuals
  _, pullback = jax.vjp(lambda g, s, x: _terms(g, s, targets, x, spec), grams, squared, x_HxWx3)
  g_grams, g_squared, g_x = pullback(g_terms)
  crop, origins, owned = _layout(params, x_HxWx3, spec)

  def body(g_x, tile):
    origin, own = tile
    _, tile_pullback = jax.vjp(
        lambda c: _parts(params, targets.content, c, origin, own, spec),
        _crop(x_HxWx3, origin, crop))
    (g_crop,) = tile_pullback((g_grams, g_squared))
    start = _start(origin)
    return jax.lax.dynamic_update_slice(
        g_x, jax.lax.dynamic_slice(g_x, start, g_crop.shape) + g_crop, start), None
  g_x = jax.lax.scan(body, g_x, (origins, owned))[0]
  zeros = partial(jax.tree.map, jnp.zeros_like)
  return zeros(params), zeros(targets), g_x


objective_terms.defvjp(_fwd, _bwd)


# ---- the targets, for a content or style image as large ------------------------------------


def _network(params, crop_HxWx3, layers, spec):
  from jaxstyle.objective import network_features
  return {n: f[0] for n, f in network_features(params, crop_HxWx3[None], layers, spec).items()}


def content_features(params, rgb_HxWx3, layers, spec) -> dict:
  """``{layer: H_l x W_l x C}`` of the whole image, each tile writing its own block."""
  crop, origins, owned = _layout(params, rgb_HxWx3, spec)
  h, w, _ = rgb_HxWx3.shape
  shapes = jax.eval_shape(lambda c: _network(params, c, layers, spec),
                          jax.ShapeDtypeStruct((*crop, 3), rgb_HxWx3.dtype))
  empty = {n: jnp.zeros((h >> level(n), w >> level(n), f.shape[-1]), f.dtype)
           for n, f in shapes.items()}

  def body(out, tile):
    origin, own = tile
    feats = _network(params, _crop(rgb_HxWx3, origin, crop), layers, spec)
    for n, F in feats.items():
      k = level(n)
      start = (jnp.right_shift(origin[0], k), jnp.right_shift(origin[1], k),
               jnp.zeros((), origin.dtype))
      mask = _mask(*F.shape[:2], own, k) > 0
      here = jax.lax.dynamic_slice(out[n], start, F.shape)
      out[n] = jax.lax.dynamic_update_slice(out[n], jnp.where(mask, F, here), start)
    return out, None
  return jax.lax.scan(body, empty, (origins, owned))[0]


def moments(params, rgb_HxWx3, layers, spec) -> dict:
  """``{layer: (mean_C, second_CxC)}``, the mean and Gram / positions over the whole image
  (what :func:`jaxstyle.objective.style_targets` takes of a style image), tile by tile."""
  crop, origins, owned = _layout(params, rgb_HxWx3, spec)
  h, w, _ = rgb_HxWx3.shape

  def one(c, own):
    feats = _network(params, c, layers, spec)
    out = {}
    for n, F in feats.items():
      masked = F * _mask(*F.shape[:2], own, level(n))
      out[n] = (jnp.sum(masked, (0, 1)), losses.gram_matrix(masked))
    return out
  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(
      one, jax.ShapeDtypeStruct((*crop, 3), rgb_HxWx3.dtype), owned[0]))

  def body(total, tile):
    origin, own = tile
    return jax.tree.map(jnp.add, total, one(_crop(rgb_HxWx3, origin, crop), own)), None
  sums = jax.lax.scan(body, zeros, (origins, owned))[0]
  return {n: (s / ((h >> level(n)) * (w >> level(n))), g / ((h >> level(n)) * (w >> level(n))))
          for n, (s, g) in sums.items()}


def layer_shapes(params, rgb_HxWx3, layers, spec) -> dict:
  """``{layer: ShapeDtypeStruct(H_l x W_l x C)}`` of the whole image, computed abstractly."""
  h, w, _ = rgb_HxWx3.shape
  crop = jax.ShapeDtypeStruct((min(h, 2 * ALIGN), min(w, 2 * ALIGN), 3), jnp.float32)
  shapes = jax.eval_shape(lambda c: _network(params, c, layers, spec), crop)
  return {n: jax.ShapeDtypeStruct((h >> level(n), w >> level(n), f.shape[-1]), f.dtype)
          for n, f in shapes.items()}
