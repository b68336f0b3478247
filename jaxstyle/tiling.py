"""Tiles for computing on images larger than memory: the geometry every tiled computation shares
(:mod:`jaxstyle.nets.tiles` for the networks, :mod:`jaxstyle.tiled` for the objective)."""

from __future__ import annotations

from typing import NamedTuple

from jaxstyle.errors import ConfigError


class Tile(NamedTuple):
  """One tile: where its crop starts in the image, and the rows and columns of the crop that
  it owns (writes and counts in the statistics), ``[top, bottom) x [left, right)``."""

  y: int
  x: int
  top: int
  bottom: int
  left: int
  right: int


def tiles(height: int, width: int, tile: int, halo: int, align: int
          ) -> tuple[tuple[int, int], list[Tile]]:
  """The crop shape every tile shares and the tiles covering ``height x width``, each owning a
  ``tile``-sided block (less at the far edges).

  Every crop has the same shape (one compiled program), ``tile + 2 halo`` a
  side (plus the side modulo ``align``) or the whole image's, and starts on a
  multiple of ``align`` (the network's strides multiplied: the strided layers
  sample the whole image's grid); ``tile`` and ``halo`` must be multiples of it. A crop has
  ``halo`` real pixels beyond what it owns on every side that is not the
  image's edge; where it is, the network pads there as it pads the whole image.
  """
  if tile % align or tile < align:
    raise ConfigError(f"--tile: expected a multiple of {align} px, got {tile}")
  # A side's crop is as long as the side modulo ``align`` more, so that the last crop, which
  # ends at the image's edge, starts on a multiple of ``align`` too.
  crop = (min(height, tile + 2 * halo + height % align),
          min(width, tile + 2 * halo + width % align))
  found = []
  for top in range(0, height, tile):
    y = min(max(top - halo, 0), height - crop[0])
    for left in range(0, width, tile):
      x = min(max(left - halo, 0), width - crop[1])
      found.append(Tile(y, x, top - y, min(top + tile, height) - y, left - x,
                        min(left + tile, width) - x))
  return crop, found
