"""The optimiser over pixels: one iteration, and a chunk of them compiled as one loop.

One iteration is one optax update (L-BFGS with optax's zoom linesearch or a
fixed step, or Adam). :func:`run_chunk` runs up to :data:`CHUNK_CAPACITY`
iterations inside a ``lax.while_loop`` with a dynamic trip count, so chunks
of any length reuse one compiled program and the host only wakes between
chunks to report progress, save an image or write a checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxstyle.config import StyleConfig
from jaxstyle.objective import TERMS, ObjectiveSpec, objective, objective_terms
from jaxstyle.optim.optimizers import torch_lbfgs


def recorded_terms(targets) -> tuple[str, ...]:
  """The terms a run records: :data:`TERMS`, and ``"temporal"`` for a video frame."""
  return TERMS + (("temporal",) if targets.temporal is not None else ())


CHUNK_CAPACITY = 128  # History slots per compiled chunk; chunks are at most this long.


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
  terms_every: int = 1  # With record_terms: the terms every N iterations and at the last.
  pixel_range: float = 255.0  # The optimiser sees the image as RGB 0..pixel_range.
  clamp: bool = False  # Clip the image to 0-255 after every update.

  @classmethod
  def from_config(cls, config: StyleConfig) -> "SolverSpec":
    """The optimiser's settings from the config's fields of the same names (each field is
    declared once, in StyleConfig; this class only says which ones the optimiser reads)."""
    return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})

  @property
  def unit(self) -> float:
    """0-255 pixel values per unit of the optimiser's variable (1; 255 for [0, 1] images)."""
    return 255.0 / self.pixel_range

  @property
  def linesearch(self) -> bool:
    """Whether each iteration searches along its direction (optax's zoom linesearch)."""
    return self.optimizer == "lbfgs" and self.lbfgs_linesearch == "zoom"

  def make(self) -> optax.GradientTransformationExtraArgs:
    """The optax transformation: L-BFGS with a zoom linesearch or a fixed step, or Adam.

    The fixed step is that of Torch's ``optim.lbfgs`` / PyTorch's ``LBFGS``
    without a line search, as neural-style and the PyTorch tutorial run it
    (:func:`jaxstyle.optim.optimizers.torch_lbfgs`, their algorithm exactly).
    """
    if self.optimizer == "lbfgs":
      if self.lbfgs_linesearch == "zoom":
        return optax.lbfgs(memory_size=self.lbfgs_memory)  # optax's default zoom linesearch.
      return torch_lbfgs(memory_size=self.lbfgs_memory)
    return optax.adam(self.lr)


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


def value_and_grad(params, targets, weights, spec):
  """x ↦ ((f(x), terms), ∇f(x)) of the weighted objective (jaxstyle.objective.objective)."""
  def f(x):
    return objective(params, targets, x, weights, spec)
  return jax.value_and_grad(f, has_aux=True)


def init_state(params, targets, x0_HxWx3, weights, spec: ObjectiveSpec, solver: SolverSpec):
  """One run's initial carry: the optimiser state and f, ∇f at ``x0``; and the terms."""
  (value, terms), grad = value_and_grad(params, targets, weights, spec)(x0_HxWx3)
  state = RunState(x0_HxWx3, solver.make().init(x0_HxWx3), value, grad, jnp.int32(0),
                   jnp.isfinite(value), jnp.zeros_like(x0_HxWx3), jnp.int32(1), jnp.int32(0))
  # optax's init leaves weakly-typed scalars that the loop returns strongly
  # typed; without this, the chunk program would compile a second time.
  return jax.tree.map(lambda a: a.astype(a.dtype), state), terms


def step(params, targets, state: RunState, weights, spec: ObjectiveSpec, solver: SolverSpec,
         final_step=None):
  """One optimiser iteration; returns the new carry and the new point's terms.

  A step whose objective is not finite is rejected: the carry keeps the last
  finite image and ``finite`` turns False, which stops the loop.

  With the zoom linesearch the terms cost one more forward pass (the
  linesearch keeps only the total), so they are computed on iterations that
  are multiples of ``solver.terms_every`` and on ``final_step`` (the run's
  last), and are NaN on the others; fixed-step L-BFGS and Adam get them with
  the value, every iteration. Measured (benchmarks/bench_core.py): one
  recording costs about 40% of an iteration at 96 px, so every 20 costs ~2-4%.
  """
  opt = solver.make()
  unit = solver.unit
  if solver.linesearch:
    def value_fn(u):
      return objective(params, targets, _scaled(u, unit), weights, spec)[0]
    grad_u = _scaled(state.grad, unit)
    updates, opt_state = opt.update(grad_u, state.opt_state, _scaled(state.image, 1 / unit),
                                    value=state.value, grad=grad_u, value_fn=value_fn)
    image = state.image + _scaled(updates, unit)
    value = optax.tree.get(opt_state, "value")
    grad = _scaled(optax.tree.get(opt_state, "grad"), 1 / unit)
    evaluations = optax.tree.get(opt_state, "num_linesearch_steps").astype(jnp.int32)
    nan = {t: jnp.float32(jnp.nan) for t in recorded_terms(targets)}
    if solver.record_terms and solver.terms_every == 1:
      terms = _terms(params, targets, image, spec)
    elif solver.record_terms:
      done = state.step + 1
      due = (done % solver.terms_every == 0) | (done == final_step)
      terms = jax.lax.cond(due, lambda x: _terms(params, targets, x, spec), lambda x: nan, image)
    else:
      terms = nan
  else:  # Adam, or L-BFGS with a fixed step: one evaluation, at the new point.
    updates, opt_state = opt.update(_scaled(state.grad, unit), state.opt_state,
                                    _scaled(state.image, 1 / unit))
    image = state.image + _scaled(updates, unit)
    if solver.clamp:  # Evaluated where it is clipped to, as the PyTorch tutorial's closure.
      image = jnp.clip(image, 0.0, 255.0)
    (value, terms), grad = value_and_grad(params, targets, weights, spec)(image)
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


def _scaled(x, factor: float):
  """``x · factor``, skipped for 1 (the default units): no extra work, no extra rounding."""
  return x if factor == 1.0 else x * jnp.asarray(factor, x.dtype)


def _terms(params, targets, x, spec):
  return {t: v for t, v in objective_terms(params, targets, x, spec).items()
          if t in recorded_terms(targets)}


def run_chunk(params, targets, state: RunState, num_steps, weights, spec: ObjectiveSpec,
              solver: SolverSpec, final_step=None):
  """Runs up to ``num_steps`` (≤ CHUNK_CAPACITY) iterations of one run.

  Stops early if the objective turns non-finite. Returns the new carry and
  the per-iteration history ``{"total", "content", "style", "tv"}`` (and ``"temporal"``
  for a video frame), each of
  length CHUNK_CAPACITY with the first ``steps done`` entries filled (the
  terms NaN on iterations :func:`step` does not record them). ``final_step``:
  the run's last iteration, whose terms are always recorded.
  """
  empty = {k: jnp.full((CHUNK_CAPACITY,), jnp.nan, jnp.float32)
           for k in ("total",) + recorded_terms(targets)}

  def cond(carry):
    i, s, _ = carry
    return (i < num_steps) & s.finite

  def body(carry):
    i, s, hist = carry
    s, terms = step(params, targets, s, weights, spec, solver, final_step)
    row = {"total": s.value, **terms}
    hist = {k: jnp.where(s.finite, hist[k].at[i].set(row[k]), hist[k]) for k in hist}
    return i + 1, s, hist

  _, state, history = jax.lax.while_loop(cond, body, (jnp.int32(0), state, empty))
  return state, history
