"""Torch's fixed-step L-BFGS as an optax transformation.

``torch.optim.LBFGS`` without a line search (PyTorch; the PyTorch style
transfer tutorial) and ``optim.lbfgs`` without one (Lua Torch; Johnson's
neural-style, of which PyTorch's is a port) take the step x ← x + t·d with

* d = −H·g, H the L-BFGS inverse-Hessian estimate from the last m pairs
  (s, y) = (t·d, g_new − g_old), by the two-loop recursion, its initial
  scaling γ = sᵀy / yᵀy of the last pair kept;
* a pair kept only if yᵀs > 1e-10 (else skipped: the curvature condition);
* t = lr · min(1, 1/‖g‖₁) at the first iteration, then t = lr.

``optax.lbfgs(linesearch=None)`` differs in three ways that change the
trajectory from the first step on: its first step is min(1, 1/‖g‖₂)·g (here
~4x shorter than torch's on images), it keeps every pair (including those of
negative curvature), and its pairs use the actual change of the parameters
(torch uses t·d, which differs once something, e.g. a clamp, moves them).
:func:`torch_lbfgs` reproduces torch's; ``tests/test_presets.py`` checks it
against ``torch.optim.LBFGS`` itself. Torch's stopping tests (tolerances on
the gradient, the step and the change of the loss) are not reproduced: a
jaxstyle run takes the iterations it is given.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

CURVATURE_THRESHOLD = 1e-10  # torch.optim.LBFGS and optim.lbfgs: a pair is kept if yᵀs > this.


class TorchLBFGSState(NamedTuple):
  """The state of :func:`torch_lbfgs`: torch's, with the pair lists as ring buffers.

  Attributes:
    count: updates made so far.
    direction: d of the last update (zeros before the first).
    step: t of the last update.
    previous_grad: the gradient the last update was made from.
    s_memory, y_memory: m slots of pairs s = t·d and y = g_new − g_old, each
      with the parameters' shape stacked in front; a slot with ``rho`` 0 is
      empty (and the two-loop recursion skips it exactly: it adds 0·s, 0·y).
    rho: 1/(yᵀs) of each slot, 0 where empty.
    next_slot: where the next pair kept goes; the slots from it on, cyclically,
      run oldest to newest.
    h_diag: γ = sᵀy / yᵀy of the last pair kept, 1 before any.
  """

  count: jax.Array
  direction: optax.Updates
  step: jax.Array
  previous_grad: optax.Updates
  s_memory: optax.Updates
  y_memory: optax.Updates
  rho: jax.Array
  next_slot: jax.Array
  h_diag: jax.Array


def torch_lbfgs(memory_size: int = 100, learning_rate: float = 1.0
                ) -> optax.GradientTransformation:
  """Torch's fixed-step L-BFGS (see the module docstring): updates t·d from gradients g.

  Args:
    memory_size: pairs kept (``history_size`` / ``nCorrection``; torch's default 100).
    learning_rate: lr (torch's default 1).
  """
  if memory_size < 1:
    raise ValueError(f"memory_size: expected at least 1, got {memory_size}")

  def init_fn(params):
    dtype = _dtype(params)
    zeros = optax.tree.zeros_like(params)
    stacked = jax.tree.map(lambda a: jnp.zeros((memory_size,) + a.shape, a.dtype), params)
    return TorchLBFGSState(count=jnp.int32(0), direction=zeros, step=jnp.zeros((), dtype),
                           previous_grad=zeros, s_memory=stacked, y_memory=stacked,
                           rho=jnp.zeros(memory_size, dtype), next_slot=jnp.int32(0),
                           h_diag=jnp.ones((), dtype))

  def update_fn(grad, state: TorchLBFGSState, params=None):
    del params  # Pairs are t·d, as torch's, not the parameters' actual change.
    dtype = _dtype(grad)
    # The pair the last step made; at the first update s = 0, so yᵀs = 0 and it is skipped.
    s = optax.tree.scale(state.step, state.direction)
    y = optax.tree.sub(grad, state.previous_grad)
    ys = optax.tree.vdot(y, s)
    keep = ys > CURVATURE_THRESHOLD
    slot = state.next_slot

    def store(memory, new):
      return jnp.where(keep, memory.at[slot].set(new), memory)

    s_memory = jax.tree.map(store, state.s_memory, s)
    y_memory = jax.tree.map(store, state.y_memory, y)
    rho = jnp.where(keep, state.rho.at[slot].set(1.0 / jnp.where(keep, ys, 1.0)), state.rho)
    h_diag = jnp.where(keep, ys / optax.tree.vdot(y, y), state.h_diag)
    next_slot = jnp.where(keep, (slot + 1) % memory_size, slot)

    def pair(i):  # The i-th slot from the oldest (i = 0) to the newest (m − 1).
      k = (next_slot + i) % memory_size
      return (jax.tree.map(lambda m: m[k], s_memory), jax.tree.map(lambda m: m[k], y_memory),
              rho[k])

    def newest_first(j, carry):
      q, alphas = carry
      i = memory_size - 1 - j
      s_i, y_i, rho_i = pair(i)
      alpha = optax.tree.vdot(s_i, q) * rho_i
      return optax.tree.add_scale(q, -alpha, y_i), alphas.at[i].set(alpha)

    def oldest_first(i, r):
      s_i, y_i, rho_i = pair(i)
      beta = optax.tree.vdot(y_i, r) * rho_i
      return optax.tree.add_scale(r, alphas[i] - beta, s_i)

    q, alphas = jax.lax.fori_loop(0, memory_size, newest_first,
                                  (optax.tree.scale(-1.0, grad),
                                   jnp.zeros(memory_size, dtype)))
    direction = jax.lax.fori_loop(0, memory_size, oldest_first, optax.tree.scale(h_diag, q))
    l1 = sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(grad))
    step = jnp.where(state.count == 0, jnp.minimum(1.0, 1.0 / l1) * learning_rate,
                     learning_rate).astype(dtype)
    new = TorchLBFGSState(count=state.count + 1, direction=direction, step=step,
                          previous_grad=grad, s_memory=s_memory, y_memory=y_memory, rho=rho,
                          next_slot=next_slot, h_diag=h_diag.astype(dtype))
    return optax.tree.scale(step, direction), new

  return optax.GradientTransformation(init_fn, update_fn)


def _dtype(tree):
  return jnp.result_type(*jax.tree.leaves(tree))
