"""Gatys-style transfer: the objective, its targets, and the compiled optimiser loop.

The image is optimised in RGB 0-255 space (``x_HxWx3``) and preprocessed
inside the objective, so loss weights mean the same whatever convention the
weights use, and the iterate is always a viewable image.

One iteration is one optax update. The loop runs on device in chunks: each
chunk is one call of a jitted ``lax.while_loop`` with a dynamic trip count,
so chunks of any length reuse one compiled program and the host only wakes
up between chunks to report progress or save an image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxstyle import checkpoint as ckpt
from jaxstyle import color, losses, memory, vgg
from jaxstyle import images as image_io
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError, Interrupted, NonFiniteLossError
from jaxstyle.weights import Weights, resolve_weights

TERMS = ("content", "style", "tv")
CHUNK_CAPACITY = 128  # History slots per compiled chunk; chunks are at most this long.
TARGET_CHUNK_SECONDS = 1.0  # Aim for a progress update about once a second.


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
  conv: str = "direct"  # Resolved: "direct" or "winograd" (see StyleConfig.conv).

  @classmethod
  def from_config(cls, config: StyleConfig, convention: str) -> "ObjectiveSpec":
    """The objective a config describes, for weights of ``convention``."""
    return cls(
        content_layers=tuple(vgg.canonical_layer(n, config.network)
                             for n in config.content_layers),
        style_layers=tuple(vgg.canonical_layer(n, config.network) for n in config.style_layers),
        style_layer_weights=config.normalised_style_layer_weights,
        style_norm=config.style_norm, tv_beta=config.tv_beta, pooling=config.pooling,
        convention=convention, content_norm=config.content_norm, style_loss=config.style_loss,
        normalize_gradients=config.normalize_gradients, remat=config.remat,
        precision=config.precision, conv=vgg.resolve_conv(config.conv))

  @property
  def dtype(self):
    """The network's compute dtype; losses are always accumulated in float32."""
    return jnp.bfloat16 if self.precision == "bfloat16" else jnp.float32

  @property
  def layers(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))


def prepare_params(params, spec: ObjectiveSpec):
  """The params an optimisation loop closes over: Winograd kernels made once, if used.

  Idempotent: params prepared already pass through, so a run prepares once
  (:func:`_run_scale`) and every program it compiles (targets, init, chunks)
  convolves with the same kernels. Programs given raw params prepare their own.
  """
  return vgg.prepare_convs(params, spec.layers) if spec.conv == "winograd" else params


_prepare_params_jit = jax.jit(prepare_params, static_argnums=1)


def _run_params(weights: Weights, spec: ObjectiveSpec):
  """A run's params: on the device in the network's dtype, Winograd kernels made once."""
  return _prepare_params_jit(jax.tree.map(lambda a: jnp.asarray(a, spec.dtype), weights.params),
                             spec)


@dataclass(frozen=True)
class SolverSpec:
  """Static settings of the optimiser."""

  optimizer: str
  lr: float
  lbfgs_memory: int
  record_terms: bool
  ema_decay: float = 0.0
  lbfgs_restart: int = 0
  lbfgs_linesearch: str = "zoom"

  @classmethod
  def from_config(cls, config: StyleConfig) -> "SolverSpec":
    return cls(config.optimizer, config.lr, config.lbfgs_memory, config.record_terms,
               config.ema_decay, config.lbfgs_restart, config.lbfgs_linesearch)

  @property
  def linesearch(self) -> bool:
    """Whether each iteration searches along its direction (optax's zoom linesearch)."""
    return self.optimizer == "lbfgs" and self.lbfgs_linesearch == "zoom"

  def make(self) -> optax.GradientTransformationExtraArgs:
    """The optax transformation: L-BFGS with a zoom linesearch or a fixed step, or Adam.

    The fixed step is the classic one of Torch's ``optim.lbfgs`` / PyTorch's
    ``LBFGS`` without a line search, as neural-style and the PyTorch tutorial
    run it: x ← x − H·g with the L-BFGS inverse-Hessian estimate H, the first
    step scaled down by the gradient's norm.
    """
    if self.optimizer == "lbfgs":
      if self.lbfgs_linesearch == "zoom":
        return optax.lbfgs(memory_size=self.lbfgs_memory)  # optax's default zoom linesearch.
      return optax.lbfgs(memory_size=self.lbfgs_memory, linesearch=None)
    return optax.adam(self.lr)


class LossWeights(NamedTuple):
  """Weights α (content), β (style), γ (TV); arrays, so ``vmap`` can sweep them."""

  content: jax.Array
  style: jax.Array
  tv: jax.Array

  @classmethod
  def from_config(cls, config: StyleConfig) -> "LossWeights":
    return cls(*(jnp.float32(w) for w in
                 (config.content_weight, config.style_weight, config.tv_weight)))


class Targets(NamedTuple):
  """What the objective matches: content activations and style statistics.

  Attributes:
    content: ``{layer: H x W x C}`` activations of the content image.
    style: per style layer, for the Gram loss the style image's C x C Gram
      matrix rescaled by M_output / M_style (so that eq. 4 compares like
      with like when the style image has another size than the output); for
      the W2 loss the dict of :func:`jaxstyle.losses.w2_targets`. With
      masks, each has a leading axis K, one entry per masked style.
    masks: None, or ``{layer: K x H x W}``: each style's mask at that
      layer's resolution, the Gram of style k taken over F·m_k.
  """

  content: dict
  style: dict
  masks: dict | None = None


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
  at_content = _features(params, content_rgb_HxWx3, spec.layers, spec)
  masks = None if masks_KxHxW is None else mask_pyramid(masks_KxHxW, at_content, spec)
  return Targets(content={n: at_content[n] for n in spec.content_layers},
                 style=_style_targets(params, at_content, style_rgb, spec, blend_weights, masks),
                 masks=masks)


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


def _style_targets(params, at_content: dict, style_rgb, spec: ObjectiveSpec, blend_weights,
                   masks=None):
  """Each style layer's target; ``at_content`` gives the output's feature shapes.

  Every style image contributes its mean μ_k and second moment S_k = G_k/M_k
  (size-free). Blended: μ = Σ b_k μ_k, S = Σ b_k S_k; the Gram target is
  M_output · S (= Σ b_k G_k M_output/M_k) and the W2 target the Gaussian with
  mean μ and covariance S − μμᵀ. Masked: one target per style image, the
  Gram one scaled by the mask's Σ m_k² instead of M_output.
  """
  styles = list(style_rgb) if isinstance(style_rgb, (list, tuple)) else [style_rgb]
  stats = [_features(params, style, spec.style_layers, spec) for style in styles]
  moments = [{name: (f.mean((0, 1)), losses.gram_matrix(f) / _positions(f))
              for name, f in feats.items()} for feats in stats]
  if masks:
    if len(styles) != next(iter(masks.values())).shape[0]:
      raise ConfigError(f"--style-masks: expected one mask per style image ({len(styles)}), "
                        f"got {next(iter(masks.values())).shape[0]}")
    return {name: _stack([_target(spec, *m[name], jnp.sum(jnp.square(masks[name][k])))
                          for k, m in enumerate(moments)])
            for name in spec.style_layers}
  blend = _normalised(blend_weights, len(styles))
  out = {}
  for name in spec.style_layers:
    mean = sum(b * m[name][0] for b, m in zip(blend, moments))
    second = sum(b * m[name][1] for b, m in zip(blend, moments))
    out[name] = _target(spec, mean, second, _positions(at_content[name]))
  return out


def _target(spec: ObjectiveSpec, mean_N, second_NxN, positions):
  if spec.style_loss == "w2":
    return losses.w2_targets(mean_N, second_NxN - jnp.outer(mean_N, mean_N))
  return second_NxN * positions


def _normalised(weights, count: int) -> tuple[float, ...]:
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
  return {k: v[0] for k, v in _network(params, rgb_HxWx3[None], layers, spec).items()}


def _network(params, rgb_NxHxWx3, layers, spec: ObjectiveSpec, *, remat: bool = False):
  """VGG features of RGB 0-255 images, in the params' precision (float64 in tests).

  With ``spec.precision == "bfloat16"`` the network runs in bfloat16 and the
  features come back as float32, so that the losses accumulate in float32.
  """
  if spec.precision == "bfloat16":
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
  dtype = params["block1_conv1"]["kernel"].dtype
  x = vgg.preprocess(rgb_NxHxWx3, spec.convention).astype(dtype)
  feats = vgg.vgg_features(params, x, layers, pooling=spec.pooling, remat=remat)
  if spec.precision == "bfloat16":
    feats = {k: v.astype(jnp.float32) for k, v in feats.items()}
  return feats


def _features(params, rgb_HxWx3, layers, spec):
  return _features_jit(params, jnp.asarray(rgb_HxWx3), tuple(layers), spec)


def objective_terms(params, targets: Targets, x_HxWx3, spec: ObjectiveSpec):
  """The unweighted loss terms of one image in RGB 0-255.

  Returns ``{"content": Σ_l content_loss, "style": Σ_l w_l E_l, "tv": TV}``,
  E_l the layer's style loss (summed over the masked styles, if any).
  """
  feats = _network(params, x_HxWx3[None], spec.layers, spec, remat=spec.remat)
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
  return {"content": content, "style": style,
          "tv": losses.tv_loss(x_HxWx3, beta=spec.tv_beta)}


def _style_layer(F_HxWxC, target, masks_KxHxW, *, spec: ObjectiveSpec, pixels: int):
  """One layer's style loss E_l: unmasked, or summed over the K masked styles."""
  if masks_KxHxW is None:
    if spec.style_loss == "w2":
      return losses.w2_style_loss(F_HxWxC, target)
    return losses.style_layer_loss(F_HxWxC, target, norm=spec.style_norm, pixels=pixels)

  def masked(target_k, m_HxW):
    weight_HxW = jnp.square(m_HxW)
    if spec.style_loss == "w2":
      return losses.w2_style_loss(F_HxWxC, target_k, weight_HxW)
    positions = jnp.maximum(jnp.sum(weight_HxW), 1e-6)  # An empty mask gives 0, not 0/0.
    return losses.gram_loss(losses.gram_matrix(F_HxWxC * m_HxW[..., None]), target_k,
                            positions=positions, norm=spec.style_norm,
                            pixels=pixels * positions / m_HxW.size)
  return jnp.sum(jax.vmap(masked)(target, masks_KxHxW))


def objective(params, targets: Targets, x_HxWx3, weights: LossWeights, spec: ObjectiveSpec):
  """Total = α Σ content + β Σ_l w_l E_l + γ TV, and the unweighted terms."""
  terms = objective_terms(params, targets, x_HxWx3, spec)
  total = weights.content * terms["content"] + weights.style * terms["style"] + weights.tv * terms["tv"]
  return total, terms


class RunState(NamedTuple):
  """The optimiser loop's carry for one run; ``value``/``grad`` are f and ∇f at ``image``.

  Carrying them (rather than recomputing, or fetching them from the optax
  state through a ``cond``, which ``vmap`` turns into a select that computes
  both branches) costs nothing extra for L-BFGS, whose linesearch already
  evaluated f and ∇f at the accepted point.
  """

  image: jax.Array
  opt_state: optax.OptState
  value: jax.Array
  grad: jax.Array
  step: jax.Array
  finite: jax.Array
  average: jax.Array  # Σ decay-weighted iterates; see SolverSpec.ema_decay.
  evaluations: jax.Array  # Objective evaluations (f and ∇f) so far, the initial one included.
  since_restart: jax.Array  # Evaluations since L-BFGS last forgot its history.


def output_image(state: RunState, solver: SolverSpec):
  """The image a run outputs: the iterate, or its bias-corrected moving average."""
  if not solver.ema_decay:
    return state.image
  correction = 1.0 - solver.ema_decay ** state.step.astype(jnp.float32)
  return jnp.where(state.step > 0, state.average / jnp.maximum(correction, 1e-12), state.image)


def _value_and_grad(params, targets, weights, spec):
  def f(x):
    return objective(params, targets, x, weights, spec)
  return jax.value_and_grad(f, has_aux=True)


def init_state(params, targets, x0_HxWx3, weights, spec: ObjectiveSpec, solver: SolverSpec):
  """One run's initial carry: the optimiser state and f, ∇f at ``x0``; and the terms."""
  (value, terms), grad = _value_and_grad(params, targets, weights, spec)(x0_HxWx3)
  state = RunState(x0_HxWx3, solver.make().init(x0_HxWx3), value, grad, jnp.int32(0),
                   jnp.isfinite(value), jnp.zeros_like(x0_HxWx3), jnp.int32(1), jnp.int32(0))
  # optax's init leaves weakly-typed scalars that the loop returns strongly
  # typed; without this, the chunk program would compile a second time.
  return jax.tree.map(lambda a: a.astype(a.dtype), state), terms


def step(params, targets, state: RunState, weights, spec: ObjectiveSpec, solver: SolverSpec):
  """One optimiser iteration; returns the new carry and the new point's terms.

  A step whose objective is not finite is rejected: the carry keeps the last
  finite image and ``finite`` turns False, which stops the loop.
  """
  opt = solver.make()
  if solver.linesearch:
    def value_fn(x):
      return objective(params, targets, x, weights, spec)[0]
    updates, opt_state = opt.update(state.grad, state.opt_state, state.image,
                                    value=state.value, grad=state.grad, value_fn=value_fn)
    image = optax.apply_updates(state.image, updates)
    value, grad = optax.tree.get(opt_state, "value"), optax.tree.get(opt_state, "grad")
    evaluations = optax.tree.get(opt_state, "num_linesearch_steps").astype(jnp.int32)
    terms = (objective_terms(params, targets, image, spec) if solver.record_terms
             else {t: jnp.float32(jnp.nan) for t in TERMS})
  else:  # Adam, or L-BFGS with a fixed step: one evaluation, at the new point.
    updates, opt_state = opt.update(state.grad, state.opt_state, state.image)
    image = optax.apply_updates(state.image, updates)
    (value, terms), grad = _value_and_grad(params, targets, weights, spec)(image)
    evaluations = jnp.int32(1)
  since_restart = state.since_restart + evaluations
  if solver.optimizer == "lbfgs" and solver.lbfgs_restart:
    # Forget the curvature history, as a new scipy fmin_l_bfgs_b call would.
    restart = since_restart >= solver.lbfgs_restart
    opt_state = jax.tree.map(lambda fresh, kept: jnp.where(restart, fresh, kept),
                             opt.init(image), opt_state)
    since_restart = jnp.where(restart, 0, since_restart)
  ok = jnp.isfinite(value)
  average = (solver.ema_decay * state.average + (1.0 - solver.ema_decay) * image
             if solver.ema_decay else state.average)
  new = RunState(image, opt_state, value, grad, state.step + 1, ok, average,
                 state.evaluations + evaluations, since_restart)
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)._replace(finite=ok), terms


def run_chunk(params, targets, state: RunState, num_steps, weights, spec: ObjectiveSpec,
              solver: SolverSpec):
  """Runs up to ``num_steps`` (≤ CHUNK_CAPACITY) iterations of one run.

  Stops early if the objective turns non-finite. Returns the new carry and
  the per-iteration history ``{"total", "content", "style", "tv"}``, each of
  length CHUNK_CAPACITY with the first ``steps done`` entries filled.
  """
  empty = {k: jnp.full((CHUNK_CAPACITY,), jnp.nan, jnp.float32) for k in ("total",) + TERMS}

  def cond(carry):
    i, s, _ = carry
    return (i < num_steps) & s.finite

  def body(carry):
    i, s, hist = carry
    s, terms = step(params, targets, s, weights, spec, solver)
    row = {"total": s.value, **terms}
    hist = {k: jnp.where(s.finite, hist[k].at[i].set(row[k]), hist[k]) for k in hist}
    return i + 1, s, hist

  _, state, history = jax.lax.while_loop(cond, body, (jnp.int32(0), state, empty))
  return state, history


# Batched versions: members differ in style targets, init and loss weights;
# the content targets and the network are shared. These are what runs.
#
# How members are mapped depends on the optimiser. Adam's step has no
# data-dependent branches, so ``vmap`` batches it for free. optax's zoom
# linesearch chooses between two branches with a per-member ``lax.cond``, and
# both branches evaluate f and ∇f: under ``vmap`` that cond becomes a select
# that runs both, and the loop waits for the slowest member (measured on CPU:
# two vmapped members cost 5.5x one). L-BFGS members therefore run one after
# another with ``lax.map`` inside the same program. With several devices,
# ``shard_map`` gives each device its own members either way.


def _over_members(one, params, targets, *members, solver: SolverSpec, mesh):
  """``one(params, targets_i, *members_i)`` for every member, stacked."""
  def local(params, targets, *members):
    if not solver.linesearch:
      return jax.vmap(one, in_axes=(None, Targets(None, 0, None)) + (0,) * len(members))(
          params, targets, *members)
    def member(xs):
      return one(params, Targets(targets.content, xs[0], targets.masks), *xs[1:])
    return jax.lax.map(member, (targets.style,) + members)

  if mesh is None:
    return local(params, targets, *members)
  from jax.sharding import PartitionSpec as P
  specs = (P(), Targets(P(), P("members"), P())) + (P("members"),) * len(members)
  # check_vma=False: optax's linesearch has conds whose branches differ in
  # "varies across devices" typing (a constant on one side); every value in
  # ``local`` is per-member anyway, so the check has nothing to protect here.
  return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P("members"),
                       check_vma=False)(params, targets, *members)


@partial(jax.jit, static_argnames=("spec", "solver", "mesh"))
def init_states(params, targets, x0_NxHxWx3, weights, spec: ObjectiveSpec, solver: SolverSpec,
                mesh=None):
  """:func:`init_state` for N members at once."""
  def one(params, t, x, w):
    return init_state(params, t, x, w, spec, solver)
  params = prepare_params(params, spec)
  return _over_members(one, params, targets, x0_NxHxWx3, weights, solver=solver, mesh=mesh)


@partial(jax.jit, static_argnames=("spec", "solver", "mesh"), donate_argnames=("states",))
def run_chunks(params, targets, states, num_steps, weights, spec: ObjectiveSpec,
               solver: SolverSpec, mesh=None):
  """:func:`run_chunk` for N members in one program (one compile per shape)."""
  def one(params, t, s, w):
    return run_chunk(params, t, s, num_steps, w, spec, solver)
  # Outside the while loop: XLA would not hoist the transforms (they grow the kernels).
  params = prepare_params(params, spec)
  return _over_members(one, params, targets, states, weights, solver=solver, mesh=mesh)


class Result(NamedTuple):
  """The outcome of one run of :func:`stylize` or member of :func:`stylize_batch`.

  Attributes:
    image: the stylized image, uint8 H x W x 3 (the last finite one if the
      run failed).
    history: ``{"total", "content", "style", "tv"}`` float arrays with one
      entry per iteration: the objective (weighted total) and its unweighted
      terms at the iterate after that iteration.
    initial: the same four values at the initial image.
    iterations: iterations run.
    seconds: wall time of the iterations (compilation excluded; for a batch,
      the whole program's).
    compile_seconds: time spent compiling (0 when the programs were cached).
    config: the configuration that produced it.
    weights: where the VGG19 weights came from (``Weights.source``), their
      sha256 (None for random weights) and whether they were random.
    error: None, or why the run stopped early (the objective went NaN/inf).
    evaluations: objective evaluations (f and ∇f) the optimiser made, the
      initial one included (the linesearch's; not the per-term records').
  """

  image: np.ndarray
  history: dict
  initial: dict
  iterations: int
  seconds: float
  compile_seconds: float
  config: StyleConfig
  weights: dict
  error: str | None = None
  evaluations: int = 0


def initial_image(config: StyleConfig, content_rgb_HxWx3, *, key: jax.Array,
                  styles=(), blend_weights=None) -> jax.Array:
  """The init the config names, in RGB 0-255.

  ``content``; ``noise``: seeded uniform noise; ``gray``: mid-grey;
  ``style_stats``: seeded Gaussian noise with the per-channel mean and std
  of the (blended) style images, clipped to 0-255; or an image file.
  """
  height, width = content_rgb_HxWx3.shape[:2]
  if config.init == "content":
    return jnp.asarray(content_rgb_HxWx3, jnp.float32)
  if config.init == "noise":
    return jax.random.uniform(key, (height, width, 3), jnp.float32, 0.0, 255.0)
  if config.init == "gray":
    return jnp.full((height, width, 3), 127.5, jnp.float32)
  if config.init == "style_stats":
    if not styles:
      raise ConfigError("--init style_stats needs the style images")
    blend = _normalised(blend_weights, len(styles))
    pixels = [np.asarray(s, np.float64).reshape(-1, 3) for s in styles]
    mean = sum(b * p.mean(0) for b, p in zip(blend, pixels))
    second = sum(b * (p.var(0) + p.mean(0) ** 2) for b, p in zip(blend, pixels))
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    noise = jax.random.normal(key, (height, width, 3), jnp.float32)
    return jnp.clip(noise * _row(std) + _row(mean), 0.0, 255.0)
  rgb = image_io.load_image(config.init, min_side=1)  # Resized to the content's shape.
  return jnp.asarray(image_io.resize_array(rgb, height, width), jnp.float32)


def _row(values) -> jax.Array:
  return jnp.asarray(values, jnp.float32).reshape(1, 1, 3)


def to_uint8(x_HxWx3) -> np.ndarray:
  """Rounds an RGB 0-255 float image to uint8, clipping out-of-range pixels."""
  return np.asarray(jnp.clip(jnp.round(x_HxWx3), 0, 255)).astype(np.uint8)


ChunkCallback = Callable[[int, np.ndarray, dict], None]


def stylize(content_img, style_img, config: StyleConfig = StyleConfig(), *,
            key: jax.Array | None = None, weights: Weights | None = None,
            progress: bool = False, callback: ChunkCallback | None = None,
            save_every: int = 0, checkpoint=None, checkpoint_every: int = 0,
            resume: bool = False) -> Result:
  """Optimises an image to match ``content_img``'s content and ``style_img``'s style.

  Args:
    content_img: a path or a uint8 RGB H x W x 3 array; resized so that its
      longest side is ``config.size``.
    style_img: the same, or a list of them blended with
      ``config.style_blend_weights``.
    config: the objective and optimiser settings.
    key: PRNG key for the noise init; default ``jax.random.key(config.seed)``.
    weights: VGG weights; default ``resolve_weights(config.weights, network=config.network)``.
    progress: show a progress bar (iteration, loss, it/s, ETA) on stderr.
    callback: called as ``callback(iteration, image_uint8, losses)`` after
      every ``save_every`` iterations (and never when ``save_every`` is 0).
    save_every: see ``callback``.
    checkpoint: a checkpoint file (``.npz``; see :mod:`jaxstyle.checkpoint`).
      With it, one is written every ``checkpoint_every`` iterations (if not
      0) and on Ctrl-C, which then raises :class:`jaxstyle.Interrupted`.
    checkpoint_every: see ``checkpoint``.
    resume: continue from ``checkpoint`` (written with the same config and
      inputs); the result is bit-identical to an uninterrupted run's.

  Raises:
    NonFiniteLossError: the objective became NaN or inf; it carries the last
      finite image.
    Interrupted: Ctrl-C with a ``checkpoint``: the images and the checkpoint
      written.
    ConfigError: ``resume`` with a missing checkpoint, or one written for
      another config or other inputs.
  """
  member_callback = None
  if callback is not None:
    def member_callback(iteration, images, latest):
      callback(iteration, images[0], latest[0])
  plan = None
  if checkpoint is not None:
    if checkpoint_every < 0:
      raise ConfigError(f"--checkpoint-every: expected a non-negative count, got "
                        f"{checkpoint_every}")
    plan = ckpt.Plan(Path(checkpoint), checkpoint_every,
                     resume=ckpt.load(checkpoint) if resume else None)
  elif resume:
    raise ConfigError("resume=True needs the checkpoint file to resume from")
  (result,) = _run([config], content_img, [style_img], [key], weights=weights,
                   progress=progress, callback=member_callback, save_every=save_every,
                   checkpoint=plan)
  if result.error:
    raise NonFiniteLossError(result.error, image=result.image, iteration=result.iterations)
  return result


class Estimate(NamedTuple):
  """What a run will need, predicted before it starts (:func:`estimate`).

  Attributes:
    height, width: the output's shape at the final scale.
    peak_bytes: predicted peak memory (:mod:`jaxstyle.memory`, calibrated on
      measured peaks).
    available_bytes: what the device has free, and ``device`` its name.
    xla_temp_bytes: XLA's own accounting of one evaluation program's
      temporaries (``compile().memory_analysis()``), for comparison.
    compile_seconds: time to compile (or load from the cache) the programs.
    seconds_per_iteration: measured over a short run at the final size.
    total_seconds: predicted wall time of all iterations, every scale.
  """

  height: int
  width: int
  peak_bytes: int
  available_bytes: int
  device: str
  xla_temp_bytes: int
  compile_seconds: float
  seconds_per_iteration: float
  total_seconds: float


def estimate(content_img, style_img, config: StyleConfig = StyleConfig(), *,
             weights: Weights | None = None, timing_iters: int = 4) -> Estimate:
  """Predicts a stylization's peak memory and time before running it (``--dry-run``).

  Memory comes from the shapes alone; time from compiling the real programs
  and timing ``timing_iters`` iterations after the first at the final size
  (earlier scales are scaled by their pixel count). Raises ConfigError, with the largest
  size that would fit, if the run cannot fit, before compiling anything.
  """
  weights = weights or resolve_weights(config.weights, network=config.network)
  height, width = image_io.fitted_shape(image_io.source_shape(content_img, what="content"),
                                        config.size)
  width_scale = vgg.infer_width_scale(weights.params)
  memory.check_fits(config, height, width, width_scale=width_scale)
  have, device = memory.available_bytes()
  stamps = []
  probe = stylize(content_img, style_img,
                  config.replace(iters=timing_iters + 1, scales=1, scale_iters=None),
                  weights=weights, save_every=1,
                  callback=lambda *_: stamps.append(time.perf_counter()))
  # From the end of the first iteration: L-BFGS's first linesearch takes extra steps.
  per_iteration = (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)
  iters = config.scale_iters or (config.iters,) * config.scales
  total = sum(n * per_iteration * (size / config.size) ** 2
              for size, n in zip(config.scale_sizes, iters))
  spec = ObjectiveSpec.from_config(config, weights.convention)
  params = _run_params(weights, spec)
  content = image_io.as_rgb(content_img, config.size, what="content")
  styles = _prepare_styles(style_img, config, content)
  targets = make_targets(params, content, styles, spec, blend_weights=config.style_blend_weights)
  weights_now = LossWeights.from_config(config)
  program = jax.jit(jax.value_and_grad(
      lambda x: objective(params, targets, x, weights_now, spec)[0]))
  analysis = program.lower(jnp.asarray(content, jnp.float32)).compile().memory_analysis()
  return Estimate(height, width, memory.estimate_bytes(config, height, width,
                                                       width_scale=width_scale),
                  have, device, int(getattr(analysis, "temp_size_in_bytes", 0) or 0),
                  probe.compile_seconds, per_iteration, total)


# Fields a batch's members may differ in: everything else shapes the program.
MEMBER_FIELDS = ("content_weight", "style_weight", "tv_weight", "seed", "init",
                 "style_blend_weights", "style_scale")


def stylize_batch(content_img, style_imgs, configs, *, keys=None,
                  weights: Weights | None = None, progress: bool = False,
                  max_members: int | None = None) -> list[Result]:
  """N stylizations of one content image in one compiled program.

  Members may differ in their style image (or blended list), loss weights,
  init and seed (the ``MEMBER_FIELDS`` of their config); every other config
  field must agree. Adam members are ``vmap``ped; L-BFGS members run in
  sequence inside the program (see ``_over_members`` for why). Member i's result equals ``stylize(content_img,
  style_imgs[i], configs[i], key=keys[i])`` up to float round-off. Members
  are sharded over all local devices; a member whose objective turns
  NaN/inf stops with ``Result.error`` set while the others go on.

  Args:
    content_img: a path or uint8 RGB array, shared by all members.
    style_imgs: one style (path, array or blended list) per member.
    configs: one StyleConfig per member, or one for all.
    keys: one PRNG key per member; default ``jax.random.key(config.seed)``.
    weights: VGG weights; default the first config's.
    progress: show a progress bar.
    max_members: run at most this many members per program (bounds memory);
      default all at once.
  """
  n = len(style_imgs)
  configs = list(configs) if isinstance(configs, (list, tuple)) else [configs] * n
  keys = list(keys) if keys is not None else [None] * n
  if not (len(configs) == len(keys) == n) or n == 0:
    raise ConfigError(f"stylize_batch: expected as many configs and keys as style images "
                      f"({n}), got {len(configs)} configs and {len(keys)} keys")
  group = max_members or n
  if group < 1:
    raise ConfigError(f"max_members: expected at least 1, got {max_members}")
  if weights is None:  # Once for all groups, not once per group.
    weights = resolve_weights(configs[0].weights, network=configs[0].network)
  results = []
  for start in range(0, n, group):
    stop = min(start + group, n)
    pad = group - (stop - start) if n > group else 0  # Same shape: reuse the program.
    idx = list(range(start, stop)) + [stop - 1] * pad
    results += _run([configs[i] for i in idx], content_img, [style_imgs[i] for i in idx],
                    [keys[i] for i in idx], weights=weights, progress=progress)[: stop - start]
  return results


def _shared_program(configs: list[StyleConfig]) -> StyleConfig:
  first = configs[0]
  for i, config in enumerate(configs[1:], start=1):
    for field in dataclasses.fields(StyleConfig):
      if field.name not in MEMBER_FIELDS and getattr(config, field.name) != getattr(
          first, field.name):
        raise ConfigError(
            f"batch member {i}: {field.name} is {getattr(config, field.name)!r} but member 0 "
            f"has {getattr(first, field.name)!r}; members may differ only in "
            + ", ".join(MEMBER_FIELDS))
  return first


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _shard_members(tree, mesh):
  """Places a member-stacked tree with its leading axis split over ``mesh``."""
  from jax.sharding import NamedSharding, PartitionSpec
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("members")))


def _run(configs, content_img, style_imgs, keys, *, weights, progress, callback=None,
         save_every=0, checkpoint: ckpt.Plan | None = None) -> list[Result]:
  """Runs len(configs) members, one scale after another (see ``StyleConfig.scales``)."""
  config = _shared_program(configs)
  if weights is None:  # Once for all scales, not once per scale.
    weights = resolve_weights(config.weights, network=config.network)
  elif weights.network != config.network:
    raise ConfigError(f"--network {config.network}: the weights given ({weights.source}) are "
                      f"{weights.network.upper()}; pass {config.network.upper()} weights or "
                      f"--network {weights.network}")
  # Refuse what cannot fit before any work; the last scale is the largest.
  # The shape it will have, computed without resizing: at a size that cannot fit,
  # the resize itself could exhaust memory.
  height, width = image_io.fitted_shape(image_io.source_shape(content_img, what="content"),
                                        config.size)
  memory.check_fits(config, height, width, members=len(configs),
                    width_scale=vgg.infer_width_scale(weights.params))
  first_stage = 0
  if checkpoint is not None:
    checkpoint.configs = [c.to_dict() for c in configs]
    if checkpoint.resume is not None:  # The options now; the inputs once they are loaded.
      ckpt.check_matches(checkpoint.resume, checkpoint.path, configs=checkpoint.configs)
      first_stage = checkpoint.resume.meta["stage"]
  if config.scales == 1:
    return _run_scale(configs, content_img, style_imgs, keys, weights=weights,
                      progress=progress, callback=callback, save_every=save_every,
                      checkpoint=checkpoint)
  iters = config.scale_iters or (config.iters,) * config.scales
  previous, stages = None, []
  if first_stage:  # Finished scales come back from the checkpoint; their images are not needed.
    stages = [[_from_summary(m, c, weights) for m, c in zip(stage, configs)]
              for stage in checkpoint.resume.meta["prior"]]
  for stage, (size, count) in enumerate(zip(config.scale_sizes, iters)):
    if stage < first_stage:
      continue
    scaled = [c.replace(size=size, iters=count, scales=1, scale_iters=None) for c in configs]
    final = size == config.scale_sizes[-1]
    if checkpoint is not None:
      checkpoint.stage = stage
      checkpoint.prior = [[_summary(r) for r in done] for done in stages]
    try:
      stages.append(_run_scale(scaled, content_img, style_imgs, keys, weights=weights,
                               progress=progress, init_images=previous,
                               callback=callback if final else None, save_every=save_every,
                               checkpoint=checkpoint))
    except image_io.ImageError as e:
      raise image_io.ImageError(f"{e} (at the {size} px scale of --scales {config.scales}; "
                                "use fewer scales or a smaller --scale-factor)") from None
    if checkpoint is not None:
      checkpoint.resume = None  # Only the scale it was written in resumes from it.
    previous = [r.image for r in stages[-1]]
  return [Result(image=last.image,
                 history={k: np.concatenate([s[i].history[k] for s in stages]) for k in
                          last.history},
                 initial=stages[0][i].initial, iterations=sum(s[i].iterations for s in stages),
                 seconds=sum(s[i].seconds for s in stages),
                 compile_seconds=sum(s[i].compile_seconds for s in stages), config=configs[i],
                 weights=last.weights, error=next((s[i].error for s in stages if s[i].error), None),
                 evaluations=sum(s[i].evaluations for s in stages))
          for i, last in enumerate(stages[-1])]


def _summary(result: Result) -> dict:
  """What a checkpoint keeps of a finished scale's result (not its image)."""
  return {"history": {k: v.tolist() for k, v in result.history.items()},
          "initial": result.initial, "iterations": result.iterations,
          "seconds": result.seconds, "compile_seconds": result.compile_seconds,
          "weights": result.weights, "error": result.error, "evaluations": result.evaluations}


def _from_summary(summary: dict, config: StyleConfig, weights: Weights) -> Result:
  return Result(image=None, history={k: np.asarray(v, np.float32)
                                     for k, v in summary["history"].items()},
                initial=summary["initial"], iterations=summary["iterations"],
                seconds=summary["seconds"], compile_seconds=summary["compile_seconds"],
                config=config, weights=summary["weights"], error=summary["error"],
                evaluations=summary["evaluations"])


@contextlib.contextmanager
def _interrupt_flag(enabled: bool):
  """While running, Ctrl-C only sets a flag that the loop checks between chunks.

  A second Ctrl-C interrupts at once. Off the main thread (where signals
  cannot be handled) or when ``enabled`` is False, Ctrl-C behaves as usual.
  """
  flag = {"hit": False}
  if not enabled or threading.current_thread() is not threading.main_thread():
    yield flag
    return

  def handler(signum, frame):
    if flag["hit"]:
      raise KeyboardInterrupt
    flag["hit"] = True

  previous = signal.signal(signal.SIGINT, handler)
  try:
    yield flag
  finally:
    signal.signal(signal.SIGINT, previous)


def _run_scale(configs, content_img, style_imgs, keys, *, weights: Weights, progress,
               callback=None, save_every=0, init_images=None,
               checkpoint: ckpt.Plan | None = None) -> list[Result]:
  """Runs len(configs) members in one program at one size; the engine itself.

  ``init_images`` (one uint8 image per member, any size) replace the
  configured init, resized to the content's shape: the previous scale's results.
  ``checkpoint`` says where and how often to write checkpoints, and holds the
  one to resume from; with it, Ctrl-C writes one and raises Interrupted.
  """
  config = _shared_program(configs)
  spec = ObjectiveSpec.from_config(config, weights.convention)
  solver = SolverSpec.from_config(config)
  params = _run_params(weights, spec)
  original_content = image_io.as_rgb(content_img, config.size, what="content")
  content, finish = original_content, (lambda image: image)
  if config.preserve_colors == "luminance":  # Transfer luminance; chroma from the content.
    content = color.luminance_image(original_content)
    def finish(image):
      return color.with_chroma_of(image, original_content)
  n = len(configs)
  devices = jax.local_devices()
  mesh = None
  if n > 1 and len(devices) > 1:
    from jax.sharding import Mesh
    usable = max(d for d in range(1, len(devices) + 1) if n % d == 0)
    mesh = Mesh(np.array(devices[:usable]), ("members",))

  with _progress_bar(config.iters, progress) as bar, \
      _interrupt_flag(checkpoint is not None) as interrupted:
    bar.set_description_str("compiling")
    compile_start = time.perf_counter()
    at_content = _features(params, content, spec.layers, spec)  # Shared by all members.
    masks = None
    if config.style_masks is not None:
      masks = mask_pyramid(np.stack([image_io.load_mask(m, *content.shape[:2])
                                     for m in config.style_masks]), at_content, spec)
    member_targets, x0s, inputs = [], [], [content]
    for c, style, key in zip(configs, style_imgs, keys):
      styles = _prepare_styles(style, c, original_content)
      inputs += styles
      member_targets.append(_style_targets(params, at_content, styles, spec,
                                           c.style_blend_weights, masks))
      x0s.append(initial_image(c, content, key=jax.random.key(c.seed) if key is None else key,
                               styles=styles, blend_weights=c.style_blend_weights))
    if init_images is not None:  # Coarse to fine: start from the upsampled previous scale.
      x0s = [jnp.asarray(_as_init(img, content.shape, config), jnp.float32) for img in init_images]
    targets = Targets(content={n: at_content[n] for n in spec.content_layers},
                      style=_stack(member_targets), masks=masks)
    x0 = jnp.stack(x0s)
    loss_weights = _stack([LossWeights.from_config(c) for c in configs])
    if mesh is not None:
      targets = targets._replace(style=_shard_members(targets.style, mesh))
      x0, loss_weights = _shard_members((x0, loss_weights), mesh)
    states, terms0 = init_states(params, targets, x0, loss_weights, spec, solver, mesh)
    initial = [{"total": float(v), **{k: float(t[i]) for k, t in terms0.items()}}
               for i, v in enumerate(np.asarray(states.value))]
    if config.iters:  # Zero steps: compiles the chunk program without running it, to time
      # it apart. A run of no iterations (the initial loss alone) never needs it.
      states, _ = run_chunks(params, targets, states, jnp.int32(0), loss_weights, spec, solver,
                             mesh)
    jax.block_until_ready(states)
    compile_seconds = time.perf_counter() - compile_start
    bar.set_description_str("stylize")
    bar.reset(total=config.iters)  # Rate and ETA from here on, compilation excluded.

    history = [{k: [] for k in ("total",) + TERMS} for _ in range(n)]
    errors: list[str | None] = [
        None if math.isfinite(v["total"]) else
        f"the objective is {v['total']} at the initial image ({_describe(v)}); check the "
        "weights file and the loss weights" for v in initial]
    done, chunk, seconds_before = 0, 1, 0.0
    if checkpoint is not None:
      inputs = ckpt.fingerprint(*inputs, *([] if masks is None else jax.tree.leaves(masks)))
      if checkpoint.resume is not None:
        ckpt.check_matches(checkpoint.resume, checkpoint.path, configs=checkpoint.configs,
                           inputs=inputs, stage=checkpoint.stage)
        states = _restore(states, checkpoint.resume.leaves, checkpoint.path, mesh)
        meta = checkpoint.resume.meta
        history, initial, errors = meta["history"], meta["initial"], meta["errors"]
        done, seconds_before = meta["done"], meta["seconds"]
        bar.update(done)

    def save_checkpoint():
      ckpt.save(checkpoint.path, {
          "configs": checkpoint.configs, "inputs": inputs, "stage": checkpoint.stage,
          "done": done, "history": history, "initial": initial, "errors": errors,
          "prior": checkpoint.prior, "backend": jax.default_backend(),
          "seconds": seconds_before + time.perf_counter() - start,
      }, jax.device_get(jax.tree.leaves(states)))

    start = time.perf_counter()
    while done < config.iters and not all(errors):
      todo = min(chunk, config.iters - done, CHUNK_CAPACITY)
      for every in (save_every, checkpoint.every if checkpoint else 0):
        if every:  # End the chunk where an image or a checkpoint is due.
          todo = min(todo, every - done % every)
      chunk_start = time.perf_counter()
      states, hist = run_chunks(params, targets, states, jnp.int32(todo), loss_weights, spec,
                                solver, mesh)
      hist, steps, finite = jax.device_get((hist, states.step, states.finite))
      for i in range(n):
        ran = int(steps[i]) - len(history[i]["total"])
        for k in history[i]:
          history[i][k].extend(hist[k][i, :ran].tolist())
        if not finite[i] and errors[i] is None:
          errors[i] = (f"the objective became NaN or inf at iteration {steps[i] + 1} (last "
                       f"finite: {_describe(_latest(history[i], initial[i]))}); lower --lr "
                       "or the loss weights")
      done += todo
      latest = [_latest(h, v) for h, v in zip(history, initial)]
      bar.update(todo)
      bar.set_postfix(loss=f"{min(v['total'] for v in latest):.4g}", refresh=False)
      if callback is not None and save_every and done % save_every == 0:
        callback(done, [finish(to_uint8(x)) for x in jax.vmap(output_image, (0, None))(
            states, solver)], latest)
      if checkpoint is not None and checkpoint.every and done % checkpoint.every == 0:
        save_checkpoint()
      if interrupted["hit"] and done < config.iters:
        save_checkpoint()
        raise Interrupted(
            f"interrupted at iteration {done} of {config.iters}; checkpoint written to "
            f"{checkpoint.path}", checkpoint=checkpoint.path, iteration=done,
            images=[finish(to_uint8(x)) for x in jax.device_get(
                jax.vmap(output_image, (0, None))(states, solver))])
      # Size the next chunk so that progress is reported about once a second.
      rate = todo / max(time.perf_counter() - chunk_start, 1e-6)
      chunk = max(1, min(CHUNK_CAPACITY, int(rate * TARGET_CHUNK_SECONDS)))
    seconds = seconds_before + time.perf_counter() - start
  images, evaluations = jax.device_get(
      (jax.vmap(output_image, (0, None))(states, solver), states.evaluations))
  used = {"source": weights.source, "sha256": weights.sha256, "random": weights.is_random}
  return [Result(image=finish(to_uint8(images[i])),
                 history={k: np.asarray(v, np.float32) for k, v in history[i].items()},
                 initial=initial[i], iterations=len(history[i]["total"]), seconds=seconds,
                 compile_seconds=compile_seconds, config=configs[i], weights=used,
                 error=errors[i], evaluations=int(evaluations[i]))
          for i in range(n)]


def _restore(template: RunState, leaves, path, mesh) -> RunState:
  """The checkpointed states, checked leaf by leaf against the freshly made ones."""
  expected = jax.tree.leaves(template)
  if len(leaves) != len(expected) or any(
      np.shape(a) != np.shape(b) or np.asarray(a).dtype != b.dtype
      for a, b in zip(leaves, expected)):
    raise ConfigError(f"{path}: its optimiser state does not fit this run (written by another "
                      "jaxstyle version or optimiser); start afresh without --resume")
  states = jax.tree.unflatten(jax.tree.structure(template), [jnp.asarray(a) for a in leaves])
  return _shard_members(states, mesh) if mesh is not None else states


def _as_init(image, shape, config: StyleConfig) -> np.ndarray:
  resized = image_io.resize_array(image, shape[0], shape[1])
  # In luminance mode the iterate lives in luminance space; results carry chroma.
  return color.luminance_image(resized) if config.preserve_colors == "luminance" else resized


def _prepare_styles(style, config: StyleConfig, content_rgb) -> list[np.ndarray]:
  """A member's style image(s): loaded at their scale, colour-processed as configured."""
  styles = list(style) if isinstance(style, (list, tuple)) else [style]
  scales = config.style_scale
  if len(scales) not in (1, len(styles)):
    raise ConfigError(f"--style-scale: expected 1 or {len(styles)} factors (one per style "
                      f"image), got {len(scales)}")
  scales = scales * len(styles) if len(scales) == 1 else scales
  out = []
  for image, scale in zip(styles, scales):
    rgb = image_io.as_rgb(image, max(1, round(config.size * scale)), what="style")
    if config.preserve_colors == "histogram":
      rgb = color.match_colors(rgb, content_rgb)
    elif config.preserve_colors == "luminance":
      rgb = color.luminance_image(rgb, match=content_rgb)
    out.append(rgb)
  return out


def _latest(history: dict, initial: dict) -> dict:
  return {k: v[-1] for k, v in history.items()} if history["total"] else initial


def _describe(values: dict) -> str:
  return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


def _progress_bar(total: int, enabled: bool):
  from tqdm.auto import tqdm
  return tqdm(total=total, disable=not enabled, unit="it", desc="stylize",
              dynamic_ncols=True, mininterval=0.5)
