"""The one progress bar every long run shows: done / total, rate and ETA, on stderr."""

from __future__ import annotations


def bar(total: int, *, desc: str, unit: str, enabled: bool, initial: int = 0):
  """A tqdm bar (redrawn at most twice a second, resizing with the terminal); a no-op one when
  ``enabled`` is False. ``initial``: the units already done (a resumed run)."""
  from tqdm.auto import tqdm
  return tqdm(total=total, initial=initial, disable=not enabled, unit=unit, desc=desc,
              dynamic_ncols=True, mininterval=0.5)
