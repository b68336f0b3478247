"""Several processes (hosts) on one sweep or batch: each runs its share of members.

Members are independent, so jaxstyle scales across hosts by data
parallelism: under ``jax.distributed.initialize()`` process p of P runs
members p, p + P, p + 2P, ... and shards them over its own local devices.
No tensor crosses hosts; the only collective is a barrier at the end.
Network training (``jaxstyle train --distributed``) is the exception: one
program over every process's devices, each batch split across them, the
gradients all-reduced (:func:`jaxstyle.nets.train.batch_placement`).
"""

from __future__ import annotations

from jaxstyle.errors import ConfigError


def initialize(spec: str | None) -> None:
  """Joins a multi-process run, if ``spec`` asks for one.

  ``"auto"`` lets JAX detect the cluster (SLURM, Open MPI, TPU pod slices,
  Kubernetes, ...); ``"HOST:PORT,NUM_PROCESSES,PROCESS_ID"`` names the
  coordinator, the process count and this process's index explicitly.
  None does nothing (one process).
  """
  if spec is None:
    return
  import jax
  # Training all-reduces gradients across processes; on CPU that needs Gloo's collectives.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")

  if spec == "auto":
    jax.distributed.initialize()
    return
  try:
    address, count, index = spec.split(",")
    count, index = int(count), int(index)
    if not (0 <= index < count):
      raise ValueError
  except ValueError:
    raise ConfigError(f"--distributed: expected auto or HOST:PORT,NUM_PROCESSES,PROCESS_ID "
                      f"(0 <= PROCESS_ID < NUM_PROCESSES), got {spec!r}") from None
  jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)


def process() -> tuple[int, int]:
  """(this process's index, the number of processes); (0, 1) when alone."""
  import jax
  return jax.process_index(), jax.process_count()


def my_share(count: int) -> list[int]:
  """Indices of the members (of ``count``) this process runs."""
  index, processes = process()
  return list(range(index, count, processes))


def barrier(name: str) -> None:
  """Waits until every process got here (nothing to wait for when alone)."""
  if process()[1] > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
