"""Many runs in one program: members mapped over, and sharded over devices.

Members differ in style targets, init and loss weights (:data:`MEMBER_FIELDS`);
the content targets and the network are shared. How members are mapped
depends on the optimiser. Adam's step has no data-dependent branches, so
``vmap`` batches it for free. optax's zoom linesearch chooses between two
branches with a per-member ``lax.cond``, and both branches evaluate f and
∇f: under ``vmap`` that cond becomes a select that runs both, and the loop
waits for the slowest member (measured on CPU: two vmapped members cost 5.5x
one). L-BFGS members therefore run one after another with ``lax.map``
inside the same program. With several devices, ``shard_map`` gives each
device its own members either way.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax

from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError
from jaxstyle.objective import ObjectiveSpec, Targets, prepare_params
from jaxstyle.optim.solver import SolverSpec, init_state, run_chunk


# Fields a batch's members may differ in: everything else shapes the program.
MEMBER_FIELDS = ("content_weight", "style_weight", "tv_weight", "seed", "init",
                 "style_blend_weights", "style_scale")


def shared_program(configs: list[StyleConfig]) -> StyleConfig:
  """The config all members share; ConfigError naming a field outside MEMBER_FIELDS that differs."""
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


def shard_members(tree, mesh):
  """Places a member-stacked tree with its leading axis split over ``mesh``."""
  from jax.sharding import NamedSharding, PartitionSpec
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("members")))


def member_split(per_member, shared) -> Targets:
  """A :class:`Targets`-shaped prefix: ``per_member`` for the style targets (what members
  differ in), ``shared`` for every other field. Built by field name, so that a field added
  to Targets is carried (as shared) instead of silently dropped."""
  return Targets(**dict.fromkeys(Targets._fields, shared))._replace(style=per_member)


def over_members(one, params, targets, *members, solver: SolverSpec, mesh):
  """``one(params, targets_i, *members_i)`` for every member, stacked."""
  def local(params, targets, *members):
    if not solver.linesearch:
      return jax.vmap(one, in_axes=(None, member_split(0, None)) + (0,) * len(members))(
          params, targets, *members)
    def member(xs):
      return one(params, targets._replace(style=xs[0]), *xs[1:])
    return jax.lax.map(member, (targets.style,) + members)

  if mesh is None:
    return local(params, targets, *members)
  from jax.sharding import PartitionSpec as P
  specs = (P(), member_split(P("members"), P())) + (P("members"),) * len(members)
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
  return over_members(one, params, targets, x0_NxHxWx3, weights, solver=solver, mesh=mesh)


@partial(jax.jit, static_argnames=("spec", "solver", "mesh"), donate_argnames=("states",))
def run_chunks(params, targets, states, num_steps, weights, spec: ObjectiveSpec,
               solver: SolverSpec, mesh=None, final_step=None):
  """:func:`run_chunk` for N members in one program (one compile per shape)."""
  def one(params, t, s, w):
    return run_chunk(params, t, s, num_steps, w, spec, solver, final_step)
  # Outside the while loop: XLA would not hoist the transforms (they grow the kernels).
  params = prepare_params(params, spec)
  return over_members(one, params, targets, states, weights, solver=solver, mesh=mesh)
