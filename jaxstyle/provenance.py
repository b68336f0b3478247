"""Provenance: what made an output, recorded inside it (PNG text chunks)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

PNG_KEY = "jaxstyle"


def record(result, *, content=None, style=None) -> dict:
  """A JSON-ready record of a :class:`jaxstyle.Result`'s inputs and outcome."""
  import jax
  import jaxlib

  import jaxstyle
  from jaxstyle.files import sha256_file

  def image_ref(source):
    if isinstance(source, (str, Path)):
      return {"path": str(source), "sha256": sha256_file(source)}
    return {"path": None, "sha256": None}  # An in-memory array.

  final = {k: float(v[-1]) for k, v in result.history.items()} if result.iterations else dict(
      result.initial)
  return {
      "config": result.config.to_dict(),
      "weights": result.weights,
      "content": image_ref(content),
      "style": image_ref(style),
      "iterations": result.iterations,
      "initial_loss": result.initial,
      "final_loss": final,
      "versions": {"jaxstyle": jaxstyle.__version__, "jax": jax.__version__,
                   "jaxlib": jaxlib.__version__, "python": platform.python_version()},
      "backend": jax.default_backend(),
  }


def png_text(result, *, content=None, style=None) -> dict[str, str]:
  """The PNG text chunks to store with an output image."""
  return {PNG_KEY: json.dumps(record(result, content=content, style=style), sort_keys=True)}


def read_png_record(path) -> dict | None:
  """The provenance record stored in a jaxstyle PNG, or None."""
  from PIL import Image

  with Image.open(path) as img:
    text = getattr(img, "text", {}).get(PNG_KEY)
  return json.loads(text) if text else None
