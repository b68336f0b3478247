"""Loss plots need matplotlib (the ``plot`` extra): import it headless, save figures atomically."""

from __future__ import annotations


def pyplot():
  """``matplotlib.pyplot`` on the headless Agg backend, or None when matplotlib is missing."""
  try:
    import matplotlib
  except ImportError:
    return None
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig, path) -> None:
  """Lays ``fig`` out, writes it to ``path`` as a PNG atomically, and closes it."""
  import matplotlib.pyplot as plt

  from jaxstyle.files import atomic_path
  fig.tight_layout()
  with atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png")
  plt.close(fig)
