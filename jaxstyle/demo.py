"""``jaxstyle demo``: a first stylization with nothing to download.

Images: the sample photo and painting in ``../shared/images`` beside the
project (``$JAXSTYLE_IMAGES`` overrides; see that folder's README for their
sources and licences), else two images generated here from a fixed seed.
Weights: the usual lookup, falling back to random features with a banner.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from jaxstyle.config import StyleConfig
from jaxstyle.errors import ImageError

CONTENT = Path("content") / "chelsea.jpg"  # Chelsea the cat, Stefan van der Walt, CC0.
STYLE = Path("style") / "starry_night.jpg"  # Van Gogh, The Starry Night (1889), public domain.

BANNER = """\
==============================================================================
 RANDOM FEATURES: no pretrained VGG19 weights were found, so this demo runs on
 random He-initialised weights. The output shows the optimiser at work, NOT
 real style transfer. For real weights:   jaxstyle weights download
==============================================================================
"""


# On random features the default TV weight (1e2, converted for trained VGG19 weights) smooths
# the result into a colour blur; experiments/random_features.py (TV 1e2, 10, 1 x style 1e4,
# 1e5, the demo's settings) shows the photo's shapes under the painting's texture at TV 1.
RANDOM_FEATURE_WEIGHTS = {"tv_weight": 1.0}


def for_random_features(config: StyleConfig) -> tuple[StyleConfig, dict]:
  """``config`` with :data:`RANDOM_FEATURE_WEIGHTS` where it still has the defaults, and what
  changed (a weight the user chose, or a preset's, is kept)."""
  changed = {k: v for k, v in RANDOM_FEATURE_WEIGHTS.items()
             if getattr(config, k) == getattr(StyleConfig(), k)}
  return config.replace(**changed), changed


def sample_images_dir() -> Path | None:
  """``$JAXSTYLE_IMAGES``, else ``../shared/images`` beside the project, if present."""
  env = os.environ.get("JAXSTYLE_IMAGES")
  candidate = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "images"
  return candidate if (candidate / CONTENT).exists() and (candidate / STYLE).exists() else None


def generated_images(size: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """A synthetic landscape (content) and swirl texture (style), uint8 RGB."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:size, 0:size] / size
  sky = np.stack([0.4 + 0.3 * y, 0.6 + 0.2 * y, 0.95 - 0.2 * y], -1)
  hills = (y > 0.65 + 0.08 * np.sin(7 * x + 1.0))[..., None]
  sun = ((x - 0.72) ** 2 + (y - 0.28) ** 2 < 0.012)[..., None]
  content = np.where(hills, [0.2, 0.5, 0.2], np.where(sun, [1.0, 0.85, 0.3], sky))
  angle = np.arctan2(y - 0.5, x - 0.5) + 12 * np.hypot(y - 0.5, x - 0.5)
  swirl = 0.5 + 0.5 * np.sin(5 * angle)[..., None]
  style = swirl * np.array([0.1, 0.2, 0.6]) + (1 - swirl) * np.array([0.95, 0.8, 0.2])
  style = style + 0.05 * rng.standard_normal(style.shape)
  return tuple(np.clip(a * 255, 0, 255).astype(np.uint8) for a in (content, style))


def run(args, config: StyleConfig) -> None:
  """Runs the demo: writes stylized.png, comparison.png and loss.png to args.output."""
  from jaxstyle import images, provenance, weights
  from jaxstyle.transfer import stylize

  out = Path(args.output)
  if out.exists() and not out.is_dir():
    raise ImageError(f"{out}: exists and is not a directory")
  out.mkdir(parents=True, exist_ok=True)
  folder = sample_images_dir()
  if folder is not None:
    content, style = folder / CONTENT, folder / STYLE
    print(f"demo: content {content}, style {style}")
  else:
    content, style = generated_images(config.size)
    print("demo: sample images not found (../shared/images or $JAXSTYLE_IMAGES); "
          "using generated images")
  spec = config.weights or os.environ.get(weights.ENV_VAR)
  if spec is None and not weights.default_path(config.network).exists():
    print(BANNER, end="")
    spec = "random"
  with warnings.catch_warnings():
    if spec == "random":  # The banner already said it, louder.
      warnings.simplefilter("ignore", weights.RandomWeightsWarning)
    vgg_weights = weights.resolve_weights(spec, network=config.network)
  if vgg_weights.is_random:
    config, changed = for_random_features(config)
    if changed:
      print("demo: random features: " + ", ".join(f"--{k.replace('_', '-')} {v:g}"
                                                   for k, v in changed.items())
            + " (chosen for random features by experiments/random_features.py; trained "
            "weights use the defaults)")
  result = stylize(content, style, config, weights=vgg_weights, progress=not args.quiet)
  images.save_image(out / "stylized.png", result.image,
                    text=provenance.png_text(result, content=content if folder else None,
                                             style=style if folder else None))
  style_rgb = images.as_rgb(style, config.size, what="style")
  strip = [images.as_rgb(content, config.size, what="content"),
           images.resize_array(style_rgb, *result.image.shape[:2]), result.image]
  images.save_image(out / "comparison.png", np.concatenate(strip, axis=1))
  plotted = plot_losses(result, out / "loss.png")
  print(f"demo: wrote {out / 'stylized.png'}, {out / 'comparison.png'} (content | style | "
        f"result)" + (f", {out / 'loss.png'}" if plotted else
                      "; install jaxstyle[plot] (matplotlib) for loss.png"))
  if result.weights["random"]:
    print("demo: these images come from RANDOM features, not a trained VGG19")


def plot_losses(result, path) -> bool:
  """Plots the weighted loss terms per iteration (log scale); False without matplotlib."""
  from jaxstyle.plots import pyplot, save_figure
  plt = pyplot()
  if plt is None:
    return False
  c = result.config
  scale = {"total": 1.0, "content": c.content_weight, "style": c.style_weight, "tv": c.tv_weight}
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  for name, values in result.history.items():
    iterations = np.arange(1, len(values) + 1)
    recorded = np.isfinite(values)  # The terms are recorded every StyleConfig.terms_every.
    if scale[name] > 0 and recorded.any():
      ax.plot(iterations[recorded], scale[name] * values[recorded],
              marker="." if not recorded.all() else None,
              label=name if name == "total" else f"{name} × weight")
  ax.set_yscale("log")
  ax.set_xlabel("iteration")
  ax.set_ylabel("loss")
  title = f"{c.optimizer}, {c.size} px" + (" — RANDOM features" if result.weights["random"] else "")
  ax.set_title(title)
  ax.legend()
  save_figure(fig, path)
  return True
