"""Provenance: what made an output, recorded inside it (PNG text chunks)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

PNG_KEY = "jaxstyle"


def record(result, *, content=None, style=None) -> dict:
  """A JSON-ready record of a :class:`jaxstyle.Result`'s inputs and outcome."""
  import jax

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
      "style": [image_ref(s) for s in style] if isinstance(style, list) else image_ref(style),
      "iterations": result.iterations,
      "convolutions": result.convolutions,
      "initial_loss": result.initial,
      "final_loss": final,
      "versions": versions(),
      "backend": jax.default_backend(),
  }


def versions() -> dict[str, str]:
  """The versions that can change an output: jaxstyle, jax, jaxlib, Python."""
  import jax
  import jaxlib

  import jaxstyle
  return {"jaxstyle": jaxstyle.__version__, "jax": jax.__version__,
          "jaxlib": jaxlib.__version__, "python": platform.python_version()}


def png_text(result, *, content=None, style=None) -> dict[str, str]:
  """The PNG text chunks to store with an output image."""
  return {PNG_KEY: json.dumps(record(result, content=content, style=style), sort_keys=True)}


def read_png_record(path) -> dict | None:
  """The provenance record stored in a jaxstyle PNG, or None."""
  from PIL import Image

  with Image.open(path) as img:
    text = getattr(img, "text", {}).get(PNG_KEY)
  return json.loads(text) if text else None


def rerun(record: dict, *, weights_spec: str | None = None, progress: bool = False):
  """Runs the stylization a provenance record describes; returns the Result.

  Checks that the content and style files still have the recorded sha256 and
  that the weights (``weights_spec``, else the recorded spec, else the usual
  lookup) are the recorded ones, so a difference in the output cannot come
  from changed inputs.

  Raises:
    JaxstyleError: naming the input whose file is missing or has changed.
  """
  from jaxstyle.config import StyleConfig
  from jaxstyle.errors import JaxstyleError
  from jaxstyle.files import sha256_file
  from jaxstyle.transfer import stylize
  from jaxstyle.vgg.weights import resolve_weights

  def checked(ref: dict, what: str) -> str:
    path = ref.get("path")
    if not path:
      raise JaxstyleError(f"the record's {what} image was an in-memory array; nothing to re-read")
    if not Path(path).exists():
      raise JaxstyleError(f"{path}: recorded {what} image is missing")
    if sha256_file(path) != ref["sha256"]:
      raise JaxstyleError(f"{path}: recorded {what} image has changed (sha256 differs)")
    return path

  config = StyleConfig(**record["config"])
  content = checked(record["content"], "content")
  style = record["style"]
  style = ([checked(s, "style") for s in style] if isinstance(style, list)
           else checked(style, "style"))
  weights = resolve_weights(weights_spec or config.weights, network=config.network)
  if weights.sha256 != record["weights"]["sha256"] or weights.source != record["weights"]["source"]:
    raise JaxstyleError(
        f"weights {weights.source} (sha256 {weights.sha256}) are not the recorded "
        f"{record['weights']['source']} (sha256 {record['weights']['sha256']}); pass --weights")
  return stylize(content, style, config, weights=weights, progress=progress), content, style
