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

import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxstyle import images as image_io
from jaxstyle import losses, vgg
from jaxstyle.config import StyleConfig
from jaxstyle.errors import NonFiniteLossError
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
  tv_beta: float
  pooling: str
  convention: str

  @classmethod
  def from_config(cls, config: StyleConfig, convention: str) -> "ObjectiveSpec":
    """The objective a config describes, for weights of ``convention``."""
    return cls(
        content_layers=tuple(vgg.canonical_layer(n) for n in config.content_layers),
        style_layers=tuple(vgg.canonical_layer(n) for n in config.style_layers),
        style_layer_weights=config.normalised_style_layer_weights,
        tv_beta=config.tv_beta, pooling=config.pooling, convention=convention)

  @property
  def layers(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))


@dataclass(frozen=True)
class SolverSpec:
  """Static settings of the optimiser."""

  optimizer: str
  lr: float
  lbfgs_memory: int
  record_terms: bool

  @classmethod
  def from_config(cls, config: StyleConfig) -> "SolverSpec":
    return cls(config.optimizer, config.lr, config.lbfgs_memory, config.record_terms)

  def make(self) -> optax.GradientTransformationExtraArgs:
    """The optax transformation: L-BFGS with zoom linesearch, or Adam."""
    if self.optimizer == "lbfgs":
      return optax.lbfgs(memory_size=self.lbfgs_memory)
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
  """What the objective matches: content activations and style Gram matrices.

  Attributes:
    content: ``{layer: H x W x C}`` activations of the content image.
    style: ``{layer: C x C}`` Gram matrices of the style image, rescaled by
      M_output / M_style so that eq. 4 compares like with like when the
      style image has another size than the output.
  """

  content: dict
  style: dict


def make_targets(params, content_rgb_HxWx3, style_rgb_HxWx3, spec: ObjectiveSpec) -> Targets:
  """Computes the content activations and style Grams the objective matches."""
  # The output has the content image's shape, so its feature maps give M_output.
  at_content = _features(params, content_rgb_HxWx3, spec.layers, spec)
  style = _features(params, style_rgb_HxWx3, spec.style_layers, spec)
  grams = {name: losses.gram_matrix(f) * (_positions(at_content[name]) / _positions(f))
           for name, f in style.items()}
  return Targets(content={n: at_content[n] for n in spec.content_layers}, style=grams)


def _positions(F_HxWxC) -> int:
  return F_HxWxC.shape[0] * F_HxWxC.shape[1]


@partial(jax.jit, static_argnames=("layers", "spec"))
def _features_jit(params, rgb_HxWx3, layers, spec):
  dtype = params["block1_conv1"]["kernel"].dtype  # Compute in the network's precision.
  x = vgg.preprocess(rgb_HxWx3, spec.convention).astype(dtype)[None]
  return {k: v[0] for k, v in vgg.vgg19_features(params, x, layers, pooling=spec.pooling).items()}


def _features(params, rgb_HxWx3, layers, spec):
  return _features_jit(params, jnp.asarray(rgb_HxWx3), tuple(layers), spec)


def objective_terms(params, targets: Targets, x_HxWx3, spec: ObjectiveSpec):
  """The unweighted loss terms of one image in RGB 0-255.

  Returns ``{"content": Σ_l content_loss, "style": Σ_l w_l E_l, "tv": TV}``.
  """
  feats = vgg.vgg19_features(params, vgg.preprocess(x_HxWx3, spec.convention)[None],
                             spec.layers, pooling=spec.pooling)
  content = sum((losses.content_loss(feats[n][0], targets.content[n])
                 for n in spec.content_layers), jnp.float32(0))
  style = sum((w * losses.style_layer_loss(feats[n][0], targets.style[n])
               for n, w in zip(spec.style_layers, spec.style_layer_weights)), jnp.float32(0))
  return {"content": content, "style": style,
          "tv": losses.tv_loss(x_HxWx3, beta=spec.tv_beta)}


def objective(params, targets: Targets, x_HxWx3, weights: LossWeights, spec: ObjectiveSpec):
  """Total = α Σ content + β Σ_l w_l E_l + γ TV, and the unweighted terms."""
  terms = objective_terms(params, targets, x_HxWx3, spec)
  total = weights.content * terms["content"] + weights.style * terms["style"] + weights.tv * terms["tv"]
  return total, terms


class RunState(NamedTuple):
  """The optimiser loop's carry; ``value``/``grad`` are f and ∇f at ``image``.

  Carrying them (rather than recomputing, or fetching them from the optax
  state through a ``cond``) costs nothing extra for L-BFGS, whose linesearch
  already evaluated f and ∇f at the accepted point.
  """

  image: jax.Array
  opt_state: optax.OptState
  value: jax.Array
  grad: jax.Array
  step: jax.Array
  finite: jax.Array


def _value_and_grad(params, targets, weights, spec):
  def f(x):
    return objective(params, targets, x, weights, spec)
  return jax.value_and_grad(f, has_aux=True)


@partial(jax.jit, static_argnames=("spec", "solver"))
def init_state(params, targets, x0_HxWx3, weights, spec: ObjectiveSpec, solver: SolverSpec):
  """The loop's initial carry: the optimiser state and f, ∇f at ``x0``."""
  (value, terms), grad = _value_and_grad(params, targets, weights, spec)(x0_HxWx3)
  state = RunState(x0_HxWx3, solver.make().init(x0_HxWx3), value, grad, jnp.int32(0),
                   jnp.isfinite(value))
  # optax's init leaves weakly-typed scalars that the loop returns strongly
  # typed; without this, the chunk program would compile a second time.
  return jax.tree.map(lambda a: a.astype(a.dtype), state), terms


def step(params, targets, state: RunState, weights, spec: ObjectiveSpec, solver: SolverSpec):
  """One optimiser iteration; returns the new carry and the new point's terms.

  A step whose objective is not finite is rejected: the carry keeps the last
  finite image and ``finite`` turns False, which stops the loop.
  """
  opt = solver.make()
  if solver.optimizer == "lbfgs":
    def value_fn(x):
      return objective(params, targets, x, weights, spec)[0]
    updates, opt_state = opt.update(state.grad, state.opt_state, state.image,
                                    value=state.value, grad=state.grad, value_fn=value_fn)
    image = optax.apply_updates(state.image, updates)
    value, grad = optax.tree.get(opt_state, "value"), optax.tree.get(opt_state, "grad")
    terms = (objective_terms(params, targets, image, spec) if solver.record_terms
             else {t: jnp.float32(jnp.nan) for t in TERMS})
  else:
    updates, opt_state = opt.update(state.grad, state.opt_state, state.image)
    image = optax.apply_updates(state.image, updates)
    (value, terms), grad = _value_and_grad(params, targets, weights, spec)(image)
  ok = jnp.isfinite(value)
  new = RunState(image, opt_state, value, grad, state.step + 1, ok)
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)._replace(finite=ok), terms


@partial(jax.jit, static_argnames=("spec", "solver"), donate_argnames=("state",))
def run_chunk(params, targets, state: RunState, num_steps, weights, spec: ObjectiveSpec,
              solver: SolverSpec):
  """Runs up to ``num_steps`` (≤ CHUNK_CAPACITY) iterations on device.

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


class Result(NamedTuple):
  """The outcome of :func:`stylize`.

  Attributes:
    image: the stylized image, uint8 H x W x 3.
    history: ``{"total", "content", "style", "tv"}`` float arrays with one
      entry per iteration: the objective (weighted total) and its unweighted
      terms at the iterate after that iteration.
    initial: the same four values at the initial image.
    iterations: iterations run.
    seconds: wall time of the iterations (compilation excluded).
    compile_seconds: time spent compiling (0 when the programs were cached).
    config: the configuration that produced it.
    weights: where the VGG19 weights came from (``Weights.source``), their
      sha256 (None for random weights) and whether they were random.
  """

  image: np.ndarray
  history: dict
  initial: dict
  iterations: int
  seconds: float
  compile_seconds: float
  config: StyleConfig
  weights: dict


def initial_image(config: StyleConfig, content_rgb_HxWx3, *, key: jax.Array) -> jax.Array:
  """The init the config names: the content, seeded uniform noise, or a file."""
  height, width = content_rgb_HxWx3.shape[:2]
  if config.init == "content":
    return jnp.asarray(content_rgb_HxWx3, jnp.float32)
  if config.init == "noise":
    return jax.random.uniform(key, (height, width, 3), jnp.float32, 0.0, 255.0)
  rgb = image_io.load_image(config.init, min_side=1)  # Resized to the content's shape.
  return jnp.asarray(image_io.resize_array(rgb, height, width), jnp.float32)


def to_uint8(x_HxWx3) -> np.ndarray:
  """Rounds an RGB 0-255 float image to uint8, clipping out-of-range pixels."""
  return np.asarray(jnp.clip(jnp.round(x_HxWx3), 0, 255)).astype(np.uint8)


ChunkCallback = Callable[[int, np.ndarray, dict], None]


def stylize(content_img, style_img, config: StyleConfig = StyleConfig(), *,
            key: jax.Array | None = None, weights: Weights | None = None,
            progress: bool = False, callback: ChunkCallback | None = None,
            save_every: int = 0) -> Result:
  """Optimises an image to match ``content_img``'s content and ``style_img``'s style.

  Args:
    content_img, style_img: paths or uint8 RGB H x W x 3 arrays; both are
      resized so their longest side is ``config.size``.
    config: the objective and optimiser settings.
    key: PRNG key for the noise init; default ``jax.random.key(config.seed)``.
    weights: VGG19 weights; default ``resolve_weights(config.weights)``.
    progress: show a progress bar (iteration, loss, it/s, ETA) on stderr.
    callback: called as ``callback(iteration, image_uint8, losses)`` after
      every ``save_every`` iterations (and never when ``save_every`` is 0).
    save_every: see ``callback``.

  Raises:
    NonFiniteLossError: the objective became NaN or inf; it carries the last
      finite image.
  """
  if key is None:
    key = jax.random.key(config.seed)
  if weights is None:
    weights = resolve_weights(config.weights)
  spec = ObjectiveSpec.from_config(config, weights.convention)
  solver = SolverSpec.from_config(config)
  params = jax.tree.map(jnp.asarray, weights.params)
  content = image_io.as_rgb(content_img, config.size, what="content")
  style = image_io.as_rgb(style_img, config.size, what="style")
  loss_weights = LossWeights.from_config(config)

  with _progress_bar(config.iters, progress) as bar:
    bar.set_description_str("compiling")
    compile_start = time.perf_counter()
    targets = make_targets(params, content, style, spec)
    x0 = initial_image(config, content, key=key)
    state, terms0 = init_state(params, targets, x0, loss_weights, spec, solver)
    initial = {"total": float(state.value), **{k: float(v) for k, v in terms0.items()}}
    if not math.isfinite(initial["total"]):
      raise NonFiniteLossError(
          f"the objective is {initial['total']} at the initial image "
          f"({_describe(initial)}); check the weights file and the loss weights",
          image=to_uint8(x0), iteration=0)
    # Zero steps: compiles the chunk program without running it, to time it apart.
    state, _ = run_chunk(params, targets, state, jnp.int32(0), loss_weights, spec, solver)
    jax.block_until_ready(state)
    compile_seconds = time.perf_counter() - compile_start
    bar.set_description_str("stylize")
    bar.reset(total=config.iters)  # Rate and ETA from here on, compilation excluded.

    history = {k: [] for k in ("total",) + TERMS}
    start = time.perf_counter()
    done, chunk = 0, 1
    while done < config.iters:
      todo = min(chunk, config.iters - done, CHUNK_CAPACITY)
      if save_every:
        todo = min(todo, save_every - done % save_every)
      chunk_start = time.perf_counter()
      state, hist = run_chunk(params, targets, state, jnp.int32(todo), loss_weights, spec, solver)
      hist = jax.device_get(hist)
      ran = int(state.step) - done
      for k in history:
        history[k].extend(hist[k][:ran].tolist())
      done += ran
      latest = {k: v[-1] for k, v in history.items()} if done else initial
      bar.update(ran)
      bar.set_postfix(loss=f"{latest['total']:.4g}", refresh=False)
      if not bool(state.finite):
        raise NonFiniteLossError(
            f"the objective became NaN or inf at iteration {done + 1} (last finite: "
            f"{_describe(latest)}); lower --lr or the loss weights",
            image=to_uint8(state.image), iteration=done)
      if callback is not None and save_every and done % save_every == 0:
        callback(done, to_uint8(state.image), latest)
      # Size the next chunk so that progress is reported about once a second.
      rate = ran / max(time.perf_counter() - chunk_start, 1e-6)
      chunk = max(1, min(CHUNK_CAPACITY, int(rate * TARGET_CHUNK_SECONDS)))
    seconds = time.perf_counter() - start
  return Result(
      image=to_uint8(state.image),
      history={k: np.asarray(v, np.float32) for k, v in history.items()},
      initial=initial, iterations=done, seconds=seconds, compile_seconds=compile_seconds,
      config=config,
      weights={"source": weights.source, "sha256": weights.sha256, "random": weights.is_random})


def _describe(values: dict) -> str:
  return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


def _progress_bar(total: int, enabled: bool):
  from tqdm.auto import tqdm
  return tqdm(total=total, disable=not enabled, unit="it", desc="stylize",
              dynamic_ncols=True, mininterval=0.5)
