"""File helpers: atomic writes and checksums."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator


def sha256_file(path: str | os.PathLike) -> str:
  """Hex sha256 of a file, read in 1 MiB blocks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _umask() -> int:
  """The process's umask, read without changing it where Linux says it (/proc), else by os.umask."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)  # Elsewhere: the only portable way to read it is to set it back.
  os.umask(mask)
  return mask


def _mode_for(dest: Path) -> int:
  try:
    return stat.S_IMODE(os.stat(dest).st_mode)
  except FileNotFoundError:
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
  """Yields a temporary path beside ``dest``; renames it onto ``dest`` on success.

  A crash or an exception leaves ``dest`` untouched (old content or absent)
  and removes the temporary file, so no half-written file ever has the final
  name. The rename is atomic because both live in the same directory, and the
  data is flushed to disk before it. The file gets the mode a plain
  ``open(dest, "w")`` would give it: an existing ``dest``'s own, else 0666
  less the umask (a temporary file is created 0600).
  """
  dest = Path(dest)
  fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or ".tmp",
                             dir=dest.parent if str(dest.parent) else ".")
  os.close(fd)
  try:
    yield Path(tmp)
    with open(tmp, "rb") as f:  # On disk before it takes the name, even across a power cut.
      os.fsync(f.fileno())
    os.chmod(tmp, _mode_for(dest))
    os.replace(tmp, dest)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise
