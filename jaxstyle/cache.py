"""JAX's persistent compilation cache, so repeated runs skip XLA compilation.

The first run of a configuration compiles its programs (seconds on a CPU, more
for large images on accelerators) and stores them; later runs with the same
shapes and settings, in any process, load them instead. Programs are keyed by
JAX on their contents, versions and device, so a stale entry cannot be used.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "JAXSTYLE_CACHE_DIR"


def default_dir() -> Path | None:
  """``$JAXSTYLE_CACHE_DIR`` (empty: disabled), else ``jaxstyle/xla`` in the user's cache.

  The user's cache is ``$XDG_CACHE_HOME``, or ``~/.cache``.
  """
  if ENV_VAR in os.environ:
    return Path(os.environ[ENV_VAR]) if os.environ[ENV_VAR] else None
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "jaxstyle" / "xla"


def enable(directory=None) -> Path | None:
  """Turns the persistent cache on at ``directory`` (default :func:`default_dir`).

  Process-wide JAX configuration: the CLI calls it at start-up; library users
  opt in by calling it. Returns the directory, or None when disabled or when
  it cannot be created (then runs simply compile as usual).
  """
  import jax
  directory = Path(directory) if directory is not None else default_dir()
  if directory is None:
    return None
  try:
    directory.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", str(directory))
  # Our programs take seconds to compile; cache every one, however quick.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return directory
