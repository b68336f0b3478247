"""Checkpoints: a run's whole optimiser state on disk, so that it can stop and go on exactly.

A checkpoint is one ``.npz`` file, written atomically: every leaf of the
members' :class:`jaxstyle.RunState` (image, optimiser state with L-BFGS's
history, f and ∇f, counters) as float/int arrays, and a JSON record of the
rest: the configs, a fingerprint of the inputs, the scale being run, the
iterations done, the loss history so far and the results of finished scales.
Because the compiled loop does the same arithmetic whatever the chunking, a
run resumed from a checkpoint ends bit-identical to one never stopped, on
the same backend and versions (tested with a SIGKILL in ``tests/test_resume.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxstyle.errors import ConfigError
from jaxstyle.files import atomic_path

FORMAT = "jaxstyle-checkpoint"
VERSION = 1


class Saved(NamedTuple):
  """A checkpoint read back: its JSON record and the state leaves, in tree order."""

  meta: dict
  leaves: list


@dataclass(frozen=True)
class Plan:
  """Where to checkpoint and how often, and what to resume from.

  Attributes:
    path: the checkpoint file.
    every: write one every this many iterations (0: only when interrupted).
    resume: the checkpoint to continue from, or None.
    stage: the scale being run (the multi-scale driver gives each scale its own plan).
    prior: summaries of the finished scales' results, per member.
    configs: the members' configs as dicts, which a resumed run must match.
  """

  path: Path
  every: int = 0
  resume: Saved | None = None
  stage: int = 0
  prior: list = field(default_factory=list)
  configs: list = field(default_factory=list)


def fingerprint(*arrays) -> str:
  """sha256 over the arrays' shapes and bytes: the inputs a checkpoint belongs to."""
  digest = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    digest.update(repr((a.shape, a.dtype.str)).encode())
    digest.update(a.tobytes())
  return digest.hexdigest()


def save(path, meta: dict, leaves) -> None:
  """Writes a checkpoint atomically."""
  record = json.dumps({"format": FORMAT, "version": VERSION, **meta}, sort_keys=True)
  arrays = {f"leaf{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
  with atomic_path(path, suffix=".npz") as tmp:
    with open(tmp, "wb") as f:
      np.savez(f, meta=np.frombuffer(record.encode(), np.uint8), **arrays)


def load(path) -> Saved:
  """Reads a checkpoint; ConfigError naming the file if it is missing or not one."""
  path = Path(path)
  if not path.is_file():
    raise ConfigError(f"{path}: no checkpoint to resume from (run without --resume to start "
                      "afresh)")
  try:
    with np.load(path, allow_pickle=False) as data:
      meta = json.loads(bytes(data["meta"]).decode())
      leaves = [data[f"leaf{i}"] for i in range(len(data.files) - 1)]
  except (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError) as e:
    raise ConfigError(f"{path}: not a readable jaxstyle checkpoint ({e})") from None
  if meta.get("format") != FORMAT or meta.get("version") != VERSION:
    raise ConfigError(f"{path}: not a jaxstyle checkpoint of version {VERSION}")
  return Saved(meta, leaves)


def check_matches(saved: Saved, path, *, configs: list[dict], inputs: str | None = None,
                  stage: int = 0) -> None:
  """Refuses a checkpoint written for other settings or inputs, saying which differ.

  ``inputs`` (a :func:`fingerprint`) is compared only in the scale the
  checkpoint was written in, the one whose inputs it saw; None checks the
  options alone.
  """
  theirs = saved.meta["configs"]
  configs = json.loads(json.dumps(configs))  # Tuples become lists, as they were saved.
  if len(theirs) != len(configs):
    raise ConfigError(f"{path}: written for {len(theirs)} members, this run has {len(configs)}")
  for mine, recorded in zip(configs, theirs):
    changed = sorted(k for k in set(mine) | set(recorded) if mine.get(k) != recorded.get(k))
    if changed:
      raise ConfigError(f"{path}: written with other options: " + ", ".join(
          f"--{k.replace('_', '-')} {recorded.get(k)!r} (now {mine.get(k)!r})"
          for k in changed) + "; resume with the same options")
  if inputs is not None and saved.meta["stage"] == stage and saved.meta["inputs"] != inputs:
    raise ConfigError(f"{path}: written for other content or style images; resume with the "
                      "same inputs")
