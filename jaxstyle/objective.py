"""The objective both methods optimise: its settings, targets, and loss terms.

Pixel optimisation (:mod:`jaxstyle.transfer`) and feed-forward networks
share this module: an image in RGB 0-255 (``x_HxWx3``) is preprocessed
inside the objective, so loss weights mean the same whatever convention the
weights use, and the optimised image (or a network's output) is always
viewable. :class:`Targets` are computed once; :func:`objective` is pure and
differentiable in the image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import losses, vgg
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError
from jaxstyle.vgg.weights import Weights


@dataclass(frozen=True)
class ObjectiveSpec:
  """Static settings of the objective, closed over at the jit boundary."""

  content_layers: tuple[str, ...]
  style_layers: tuple[str, ...]
  style_layer_weights: tuple[float, ...]
  style_norm: str
  tv_beta: float
  pooling: str
  convention: str
  content_norm: str = "half_sum"
  style_loss: str = "gram"
  normalize_gradients: bool = False
  remat: bool = False
  precision: str = "float32"
  winograd: tuple[str, ...] = ()  # VGG layers convolving by Winograd (winograd_layers).
  tile: int = 0  # Tile side for images beyond memory (jaxstyle.tiled); 0: whole.

  @classmethod
  def from_config(cls, config: StyleConfig, convention: str, *,
                  image_hw: tuple[int, int] | None = None, width_scale: float = 1.0,
                  log=None) -> "ObjectiveSpec":
    """The objective a config describes, for weights of ``convention`` (and ``width_scale``).

    ``image_hw``: the size it will run at, where ``--conv auto`` times the whole objective
    with each of VGG's candidate Winograd sets (:func:`winograd_layers`; once per size, then
    cached; ``log`` is told of a measurement). Without it, ``auto`` takes the ``deep`` set
    untimed. With ``config.tile`` the network runs on one tile's crop at a time, and that is
    the size.
    """
    spec = cls._unresolved(config, convention)
    if image_hw is not None and config.tile:
      from jaxstyle import tiled
      image_hw = tiled.crop_shape(config, *image_hw)
    return dataclasses.replace(spec, winograd=winograd_layers(
        spec, config.conv, config.network, image_hw, width_scale=width_scale, log=log))

  @classmethod
  def _unresolved(cls, config: StyleConfig, convention: str) -> "ObjectiveSpec":
    return cls(
        content_layers=tuple(vgg.canonical_layer(n, config.network)
                             for n in config.content_layers),
        style_layers=tuple(vgg.canonical_layer(n, config.network) for n in config.style_layers),
        style_layer_weights=config.normalised_style_layer_weights,
        style_norm=config.style_norm, tv_beta=config.tv_beta, pooling=config.pooling,
        convention=convention, content_norm=config.content_norm, style_loss=config.style_loss,
        normalize_gradients=config.normalize_gradients, remat=config.remat,
        precision=config.precision, tile=config.tile)

  @property
  def dtype(self):
    """The network's compute dtype; losses are always accumulated in float32."""
    return jnp.bfloat16 if self.precision == "bfloat16" else jnp.float32

  @property
  def layers(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))


def prepare_params(params, spec: ObjectiveSpec):
  """The params an optimisation loop closes over: the Winograd kernels of ``spec.winograd``
  made once.

  Idempotent: params prepared already pass through, so a run prepares once
  (:func:`jaxstyle.transfer._run_scale`) and every program it compiles
  (targets, init, chunks) convolves with the same kernels. Programs given raw
  params prepare their own.
  """
  return vgg.prepare_convs(params, spec.winograd)


prepare_params_jit = jax.jit(prepare_params, static_argnums=1)

UNMEASURED_MACS = 1 << 27
"""Objectives of fewer VGG multiply-adds than this (about 0.13 G: a few milliseconds an
evaluation) take the ``deep`` set untimed: timing compiles the whole objective once per
candidate, which they would not repay."""

MEASURED_PIXELS = 512 * 512
"""Larger images are timed at this many pixels, their aspect kept: the choice is the same
beyond it and a timing the size of a 4000 px image would cost what the run does."""


@dataclass(frozen=True)
class ObjectiveShape:
  """What the objective's speed with a set of Winograd layers depends on: the network, its
  width, the image's size and the rest of the objective (``spec``, its set left out)."""

  network: str
  width_scale: float
  height: int
  width: int
  spec: ObjectiveSpec

  def key(self) -> str:
    """A stable name: ``objective-vgg19-w1-341x512-<digest of the spec>``."""
    rest = repr(dataclasses.replace(self.spec, winograd=(), tile=0))
    return (f"objective-{self.network}-w{self.width_scale:g}-{self.height}x{self.width}-"
            f"{hashlib.sha256(rest.encode()).hexdigest()[:10]}")

  def macs(self) -> int:
    """Multiply-adds of one forward pass through VGG's layers up to the deepest used."""
    from jaxstyle.conv import LayerShape
    widths = vgg.layer_widths(self.width_scale, self.network)
    return sum(LayerShape(1, h, w, *widths[name], 3).macs() for name, (h, w) in
               vgg.conv_shapes(self.network, (self.height, self.width), self.spec.layers).items())

  def measured_as(self) -> "ObjectiveShape":
    """The shape it is timed at: itself, or scaled down to :data:`MEASURED_PIXELS`."""
    scale = math.sqrt(MEASURED_PIXELS / (self.height * self.width))
    if scale >= 1:
      return self
    return dataclasses.replace(self, height=max(32, int(self.height * scale)),
                               width=max(32, int(self.width * scale)))


def winograd_layers(spec: ObjectiveSpec, conv: str, network: str,
                    image_hw: tuple[int, int] | None, *, width_scale: float = 1.0,
                    cache=None, log=None) -> tuple[str, ...]:
  """The VGG layers that convolve by Winograd for ``--conv`` ``conv`` at ``image_hw``.

  ``winograd``: every layer; ``auto``: whichever of :func:`jaxstyle.vgg.winograd_sets`
  (none, ``deep``, every) made the whole objective's value and gradient fastest at this
  size (:func:`time_objective`, ``direct`` kept unless another set took at most
  :data:`jaxstyle.conv.MARGIN` of its time), cached with the convolutions' choices
  (:class:`jaxstyle.conv.ChoiceCache`); the ``deep`` set without a size or below
  :data:`UNMEASURED_MACS`; any other choice: none.
  """
  from jaxstyle import conv as convs
  if conv not in convs.CHOICES:
    raise ConfigError(f"--conv: expected one of {', '.join(convs.CHOICES)}, got {conv!r}")
  sets = vgg.winograd_sets(network, spec.layers, width_scale)
  if conv == "winograd":
    return sets["every"]
  if conv != "auto":
    return ()
  name, _ = _auto_set(spec, network, image_hw, width_scale, sets, cache=cache, log=log)
  return sets[name]


def _auto_set(spec: ObjectiveSpec, network: str, image_hw: tuple[int, int] | None,
              width_scale: float, sets: dict, *, cache=None, refresh: bool = False,
              log=None) -> tuple[str, "ObjectiveShape | None"]:
  """``--conv auto``'s set (a name of ``sets``) and the shape it was timed at (None: untimed);
  ``refresh`` times it again though cached."""
  from jaxstyle import conv as convs
  if image_hw is None:
    return "deep", None
  shape = ObjectiveShape(network, width_scale, *image_hw, spec).measured_as()
  if shape.macs() < UNMEASURED_MACS:
    return "deep", None
  cache = cache if cache is not None else convs.ChoiceCache.default()
  if refresh:
    cache.entries.pop(shape.key(), None)
  known = cache.get(shape, choices=tuple(sets))
  if known is None:
    distinct = {}  # A narrow network has no deep layers: its "deep" set is "direct".
    for name, layers in sets.items():
      distinct.setdefault(layers, name)
    seconds = {name: time_objective(shape, layers) for layers, name in distinct.items()}
    known = convs.fastest(seconds)
    cache.put(shape, known, seconds)
    if log is not None:
      log(f"conv {shape.key()}: VGG's Winograd layers {known} ("
          + ", ".join(f"{n} {s * 1e3:.1f} ms" for n, s in seconds.items()) + ")")
  return known, shape


def measure_sets(config: StyleConfig, image_hw: tuple[int, int], cache, *,
                 width_scale: float = 1.0, convention: str = "caffe", refresh: bool = False,
                 log=None) -> dict:
  """``jaxstyle bench convs``' row for VGG: the set ``--conv auto`` takes for ``config``'s
  objective at ``image_hw`` (weights of ``convention``: Keras' and the random ones are
  caffe's) and each set's seconds, timed now unless cached (``refresh``: timed again);
  ``{"layer", "shape", "algorithm", "seconds"}`` as :func:`jaxstyle.conv.measure_all`'s rows."""
  spec = ObjectiveSpec._unresolved(config, convention)
  sets = vgg.winograd_sets(config.network, spec.layers, width_scale)
  name, shape = _auto_set(spec, config.network, image_hw, width_scale, sets, cache=cache,
                          refresh=refresh, log=log)
  if shape is None:
    return {"layer": f"{config.network} objective", "shape": "too small to time",
            "algorithm": name, "seconds": {}}
  return {"layer": f"{config.network} objective", "shape": shape.key(), "algorithm": name,
          "seconds": cache.entries[shape.key()]["seconds"]}


def time_objective(shape: ObjectiveShape, winograd: tuple[str, ...], *,
                   repeats: int = 3) -> float:
  """Seconds per value and gradient of the objective of ``shape`` with ``winograd``'s layers
  by Winograd (random weights of its width: the values do not matter for speed)."""
  from jaxstyle import conv as convs
  spec = dataclasses.replace(shape.spec, winograd=winograd, tile=0)
  params = prepare_params_jit(vgg.random_vgg(key=jax.random.key(0), network=shape.network,
                                             width_scale=shape.width_scale), spec)
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (shape.height, shape.width, 3)),
                  jnp.float32)
  targets = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(
      lambda p, x: make_targets(p, x, x, spec), params, x))
  weights = LossWeights(jnp.float32(1), jnp.float32(1), jnp.float32(1))
  program = jax.jit(jax.value_and_grad(
      lambda x, p, t: objective(p, t, x, weights, spec)[0]))
  return convs.best_seconds(program, x, params, targets, repeats=repeats)


def run_params(weights: Weights, spec: ObjectiveSpec):
  """A run's params: on the device in the network's dtype, Winograd kernels made once.

  Weights made by :func:`prepare_weights` pass through untouched, so that a loop of runs pays
  the host-to-device copy and the kernel transforms once instead of once per run. A spec
  with no Winograd layer drops any Winograd kernels the weights carry.
  """
  params = weights.params
  if not spec.winograd:
    params = vgg.without_winograd(params)
  ready = all(isinstance(a, jax.Array) and a.dtype == spec.dtype
              for a in jax.tree.leaves(params))
  if ready and vgg.convs_prepared(params, spec.winograd):
    return params
  return prepare_params_jit(jax.tree.map(lambda a: jnp.asarray(a, spec.dtype), params), spec)


def prepare_weights(weights: Weights, config: StyleConfig) -> Weights:
  """``weights`` made ready for runs of ``config`` once, to pass to many of them.

  Copies the params to the device in the run's dtype and, where ``config.conv`` may run VGG's
  layers by Winograd (``auto``, ``winograd``), makes every objective layer's Winograd kernels
  (:func:`jaxstyle.vgg.prepare_convs`), whichever a run's size then picks; every ``stylize``
  / ``stylize_batch`` call given the result skips that work, about 0.2 s of a 96 px call's
  fixed cost on a 2-core CPU (``benchmarks/bench_core.py``). The result is an ordinary
  :class:`Weights` with the same source and sha256, usable with any config: another one
  prepares what it still needs. Uses the device memory of a second copy of the weights (more
  with Winograd).
  """
  spec = ObjectiveSpec.from_config(config, weights.convention)
  if config.conv in ("auto", "winograd"):
    spec = dataclasses.replace(spec, winograd=vgg.winograd_sets(
        config.network, spec.layers, vgg.infer_width_scale(weights.params))["every"])
  return weights._replace(params=run_params(weights, spec))


class LossWeights(NamedTuple):
  """Weights α (content), β (style), γ (TV), λ_t (temporal); arrays, so ``vmap`` can sweep them."""

  content: jax.Array
  style: jax.Array
  tv: jax.Array
  temporal: jax.Array | float = 0.0

  @classmethod
  def from_config(cls, config: StyleConfig) -> "LossWeights":
    return cls(*(jnp.float32(w) for w in (config.content_weight, config.style_weight,
                                          config.tv_weight, config.temporal_weight)))


class Temporal(NamedTuple):
  """A video frame's temporal target (Ruder et al. 2016): the previous stylized frame warped
  to this one (``image_HxWx3``, RGB 0-255) and each pixel's weight c (``weights_HxW``)."""

  image_HxWx3: jax.Array
  weights_HxW: jax.Array


class Targets(NamedTuple):
  """What the objective matches: content activations and style statistics.

  Attributes:
    content: ``{layer: H x W x C}`` activations of the content image.
    style: per style layer, for the Gram loss the style image's C x C Gram
      matrix rescaled by M_output / M_style (so that eq. 4 compares like
      with like when the style image has another size than the output); for
      the W2 loss the dict of :func:`jaxstyle.losses.w2_targets`, for
      mean/std that of :func:`jaxstyle.losses.mean_std_targets`. With
      masks, each has a leading axis K, one entry per masked style.
    masks: None, or ``{layer: K x H x W}``: each style's mask at that
      layer's resolution, the Gram of style k taken over F·m_k.
    temporal: None, or a video frame's :class:`Temporal` target.
  """

  content: dict
  style: dict
  masks: dict | None = None
  temporal: Temporal | None = None


def make_targets(params, content_rgb_HxWx3, style_rgb, spec: ObjectiveSpec, *,
                 blend_weights=None, masks_KxHxW=None) -> Targets:
  """Computes the content activations and style statistics the objective matches.

  ``style_rgb`` is one image, or a list of images blended into one target,
  A = Σ_k b_k A_k with ``blend_weights`` b (normalised to sum 1; equal by
  default), as ``-style_blend_weights`` in Johnson's neural-style. Each style
  image keeps its own size: its Gram matrix is rescaled by M_output / M_style.
  With ``masks_KxHxW`` (one mask in [0, 1] per style image, at the content's
  size), style k is instead matched only where m_k is set (guided Grams).
  """
  at_content = content_activations(params, content_rgb_HxWx3, spec)
  masks = None if masks_KxHxW is None else mask_pyramid(masks_KxHxW, at_content, spec)
  return Targets(content={n: at_content[n] for n in spec.content_layers},
                 style=style_targets(params, at_content, style_rgb, spec, blend_weights, masks),
                 masks=masks)


def content_activations(params, content_rgb_HxWx3, spec: ObjectiveSpec) -> dict:
  """``{layer: activations}`` of the content image at every layer of ``spec.layers``: what the
  content targets are, and what the style targets take the output's shapes from.

  With ``spec.tile`` (an image that may not fit whole) the content layers are computed tile
  by tile and the other layers are only shapes (``jax.ShapeDtypeStruct``): the whole image's
  forward pass is what a tiled run must never make (at 4096² it alone outgrew 24 GB).
  """
  if not spec.tile:
    return features(params, content_rgb_HxWx3, spec.layers, spec)
  from jaxstyle import tiled
  content_rgb_HxWx3 = jnp.asarray(content_rgb_HxWx3)
  return {**tiled.layer_shapes(params, content_rgb_HxWx3, spec.layers, spec),
          **jax.jit(tiled.content_features, static_argnums=(2, 3))(
              params, content_rgb_HxWx3, spec.content_layers, spec)}


def mask_pyramid(masks_KxHxW, at_content: dict, spec: ObjectiveSpec) -> dict:
  """Each style layer's K masks at its resolution: 2x2 averages, once per pool before it."""
  masks = jnp.asarray(masks_KxHxW, jnp.float32)
  if masks.ndim != 3:
    raise ConfigError(f"masks: expected K x H x W (one mask per style image), got shape "
                      f"{masks.shape}")
  out = {}
  for name in spec.style_layers:
    m = masks
    for _ in range(int(name[len("block")]) - 1):
      m = jax.lax.reduce_window(m, 0.0, jax.lax.add, (1, 2, 2), (1, 2, 2), "VALID") / 4.0
    out[name] = m
  return out


def style_targets(params, at_content: dict, style_rgb, spec: ObjectiveSpec, blend_weights,
                   masks=None):
  """Each style layer's target; ``at_content`` gives the output's feature shapes.

  Every style image contributes its mean μ_k and second moment S_k = G_k/M_k
  (size-free). Blended: μ = Σ b_k μ_k, S = Σ b_k S_k; the Gram target is
  M_output · S (= Σ b_k G_k M_output/M_k) and the W2 target the Gaussian with
  mean μ and covariance S − μμᵀ, the mean/std target μ and diag(S) − μ². Masked: one target per style image, the
  Gram one scaled by the mask's Σ m_k² instead of M_output.
  """
  styles = list(style_rgb) if isinstance(style_rgb, (list, tuple)) else [style_rgb]
  moments = [_moments(params, style, spec) for style in styles]
  if masks:
    if len(styles) != next(iter(masks.values())).shape[0]:
      raise ConfigError(f"--style-masks: expected one mask per style image ({len(styles)}), "
                        f"got {next(iter(masks.values())).shape[0]}")
    return {name: stack([_target(spec, *m[name], jnp.sum(jnp.square(masks[name][k])))
                          for k, m in enumerate(moments)])
            for name in spec.style_layers}
  blend = normalised_weights(blend_weights, len(styles))
  out = {}
  for name in spec.style_layers:
    mean = sum(b * m[name][0] for b, m in zip(blend, moments))
    second = sum(b * m[name][1] for b, m in zip(blend, moments))
    out[name] = _target(spec, mean, second, _positions(at_content[name]))
  return out


def _moments(params, rgb_HxWx3, spec: ObjectiveSpec) -> dict:
  """``{style layer: (μ, S = G / M)}`` of one image; tile by tile with ``spec.tile``."""
  if spec.tile:
    from jaxstyle import tiled
    return jax.jit(tiled.moments, static_argnums=(2, 3))(
        params, jnp.asarray(rgb_HxWx3), spec.style_layers, spec)
  feats = features(params, rgb_HxWx3, spec.style_layers, spec)
  return {name: (f.mean((0, 1)), losses.gram_matrix(f) / _positions(f))
          for name, f in feats.items()}


def style_target_of(F_HxWxC, spec: ObjectiveSpec, positions=None):
  """One style image's target at one layer, from its features ``F_HxWxC`` (traceable).

  ``positions``: the output's positions at that layer (the Gram target's
  scale); default F's own, for an output of the style image's size.
  """
  positions = _positions(F_HxWxC) if positions is None else positions
  return _target(spec, F_HxWxC.mean((0, 1)), losses.gram_matrix(F_HxWxC) / _positions(F_HxWxC),
                 positions)


def _target(spec: ObjectiveSpec, mean_N, second_NxN, positions):
  if spec.style_loss == "w2":
    return losses.w2_targets(mean_N, second_NxN - jnp.outer(mean_N, mean_N))
  if spec.style_loss == "mean_std":
    return losses.mean_std_targets(mean_N, jnp.diagonal(second_NxN) - jnp.square(mean_N))
  return second_NxN * positions


def normalised_weights(weights, count: int) -> tuple[float, ...]:
  """Blend weights b_k summing to 1 (equal when None); ConfigError unless ``count`` of them."""
  if weights is None:
    return (1.0 / count,) * count
  if len(weights) != count or min(weights) < 0 or sum(weights) <= 0:
    raise ConfigError(f"--style-blend-weights: expected {count} non-negative weights with a "
                      f"positive sum, one per style image, got {tuple(weights)}")
  return tuple(w / sum(weights) for w in weights)


def _positions(F_HxWxC) -> int:
  return F_HxWxC.shape[0] * F_HxWxC.shape[1]


@partial(jax.jit, static_argnames=("layers", "spec"))
def _features_jit(params, rgb_HxWx3, layers, spec):
  # The objective's own convolutions (Winograd's rounding differs from direct's).
  params = prepare_params(params, spec)
  return {k: v[0] for k, v in network_features(params, rgb_HxWx3[None], layers, spec).items()}


def network_features(params, rgb_NxHxWx3, layers, spec: ObjectiveSpec, *, remat: bool = False):
  """VGG features of RGB 0-255 images, in the params' precision (float64 in tests).

  With ``spec.precision == "bfloat16"`` the network runs in bfloat16 and the
  features come back as float32, so that the losses accumulate in float32.
  """
  if spec.precision == "bfloat16":
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
  dtype = params["block1_conv1"]["kernel"].dtype
  x = vgg.preprocess(rgb_NxHxWx3, spec.convention).astype(dtype)
  feats = vgg.vgg_features(params, x, layers, pooling=spec.pooling, remat=remat,
                          winograd=spec.winograd)
  if spec.precision == "bfloat16":
    feats = {k: v.astype(jnp.float32) for k, v in feats.items()}
  return feats


def features(params, rgb_HxWx3, layers, spec):
  """``{layer: H x W x C}`` of one RGB 0-255 image, by the objective's own convolutions."""
  return _features_jit(params, jnp.asarray(rgb_HxWx3), tuple(layers), spec)


TERMS = ("content", "style", "tv")
"""The loss terms every objective has, by the names every record (history, metrics, PNG text)
uses; a video frame's adds ``"temporal"``."""


def objective_terms(params, targets: Targets, x_HxWx3, spec: ObjectiveSpec):
  """The unweighted loss terms of one image in RGB 0-255.

  Returns ``{"content": Σ_l content_loss, "style": Σ_l w_l E_l, "tv": TV}``,
  E_l the layer's style loss (summed over the masked styles, if any), and
  ``"temporal"`` (:func:`jaxstyle.losses.temporal_loss`) when the targets have one. With
  ``spec.tile``, the same terms and gradient tile by tile (:mod:`jaxstyle.tiled`).
  """
  if spec.tile:
    from jaxstyle import tiled
    tiled.check_supported(spec, targets)
    return tiled.objective_terms(params, targets, x_HxWx3, spec)
  feats = network_features(params, x_HxWx3[None], spec.layers, spec, remat=spec.remat)
  pixels = x_HxWx3.shape[0] * x_HxWx3.shape[1]
  content_fn = partial(losses.content_loss, norm=spec.content_norm)
  style_fn = partial(_style_layer, spec=spec, pixels=pixels)
  if spec.normalize_gradients:
    content_fn, style_fn = map(losses.normalized_gradient, (content_fn, style_fn))
  masks = targets.masks or {}
  content = sum((content_fn(feats[n][0], targets.content[n]) for n in spec.content_layers),
                jnp.float32(0))
  style = sum((w * style_fn(feats[n][0], targets.style[n], masks.get(n))
               for n, w in zip(spec.style_layers, spec.style_layer_weights)), jnp.float32(0))
  terms = {"content": content, "style": style, "tv": losses.tv_loss(x_HxWx3, beta=spec.tv_beta)}
  if targets.temporal is not None:
    terms["temporal"] = losses.temporal_loss(x_HxWx3, *targets.temporal)
  return terms


# Style losses on weighted moments: a mask weighs positions by m² instead of scaling a Gram.
_MOMENT_LOSSES = {"w2": losses.w2_style_loss, "mean_std": losses.mean_std_loss}


def _style_layer(F_HxWxC, target, masks_KxHxW, *, spec: ObjectiveSpec, pixels: int):
  """One layer's style loss E_l: unmasked, or summed over the K masked styles."""
  if masks_KxHxW is None:
    if spec.style_loss in _MOMENT_LOSSES:
      return _MOMENT_LOSSES[spec.style_loss](F_HxWxC, target)
    return losses.style_layer_loss(F_HxWxC, target, norm=spec.style_norm, pixels=pixels)

  def masked(target_k, m_HxW):
    weight_HxW = jnp.square(m_HxW)
    if spec.style_loss in _MOMENT_LOSSES:
      return _MOMENT_LOSSES[spec.style_loss](F_HxWxC, target_k, weight_HxW)
    positions = jnp.maximum(jnp.sum(weight_HxW), 1e-6)  # An empty mask gives 0, not 0/0.
    return losses.gram_loss(losses.gram_matrix(F_HxWxC * m_HxW[..., None]), target_k,
                            positions=positions, norm=spec.style_norm,
                            pixels=pixels * positions / m_HxW.size)
  return jnp.sum(jax.vmap(masked)(target, masks_KxHxW))


def objective(params, targets: Targets, x_HxWx3, weights: LossWeights, spec: ObjectiveSpec):
  """Total = α Σ content + β Σ_l w_l E_l + γ TV (+ λ_t T for a video frame), and the terms."""
  terms = objective_terms(params, targets, x_HxWx3, spec)
  total = weights.content * terms["content"] + weights.style * terms["style"] + weights.tv * terms["tv"]
  if "temporal" in terms:
    total = total + weights.temporal * terms["temporal"]
  return total, terms


def stack(trees):
  """Trees of the same structure stacked leaf by leaf along a new leading axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
