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

def banner(network: str = "vgg19") -> str:
  """The demo's announcement that it runs on random ``network`` features."""
  flag = "" if network == "vgg19" else f" --network {network}"
  rule = "=" * 78
  return (f"{rule}\n RANDOM FEATURES: no pretrained {network.upper()} weights were found, so "
          f"this demo runs on\n random He-initialised weights. The output shows the optimiser "
          f"at work, NOT\n real style transfer. For real weights:   jaxstyle weights download"
          f"{flag}\n{rule}\n")


# On random features the default TV weight (1e2, converted for trained VGG19 weights) smooths
# the result into a colour blur; experiments/random_features.py (TV 1e2, 10, 1 x style 1e4,
# 1e5, the demo's settings) shows the photo's shapes under the painting's texture at TV 1.
RANDOM_FEATURE_WEIGHTS = {"tv_weight": 1.0}


def demo_weights(spec: str | None, network: str, *, fallback: str):
  """The weights spec a demo runs on and its weights: ``spec``, else $JAXSTYLE_WEIGHTS, else
  the default file, else the random features ``fallback``, announced by the :func:`banner`
  (which says it louder than the usual warning, so that one is not repeated)."""
  from jaxstyle.vgg import weights
  spec = spec or os.environ.get(weights.ENV_VAR)
  if spec is None and not weights.default_path(network).exists():
    print(banner(network), end="")
    spec = fallback
  with warnings.catch_warnings():
    if spec == fallback:
      warnings.simplefilter("ignore", weights.RandomWeightsWarning)
    return spec, weights.resolve_weights(spec, network=network)


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
  from jaxstyle import images, provenance
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
  _, vgg_weights = demo_weights(config.weights, config.network, fallback="random")
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


# The feed-forward demo's training recipe (`jaxstyle demo --feed-forward`, the README's offline
# `jaxstyle train` command): a small network (width 0.25), batch 2, Adam at 5e-3, on the sample
# photos at --size. Johnson's objective (perceptual-vgg16); on random features its content weight
# is raised to 1e2, or the network draws a grey texture that forgets the photo
# (experiments/style_mix.py; content kept: docs/BENCHMARKS.md). With trained VGG16 weights
# Johnson's own settings apply: content weight 1, width 1, batch 4, lr 1e-3, crop 256, 40k steps.
FEED_FORWARD_TRAINING = {"batch": 2, "width": 0.25, "lr": 5e-3}
RANDOM_FEATURE_TRAINING = {"content_weight": 1e2}
FEED_FORWARD_STEPS = 300
HELD_OUT = CONTENT  # Trained on the other sample photos; stylized at the end, never seen.


def run_feed_forward(args, overrides: dict) -> None:
  """``jaxstyle demo --feed-forward``: trains a small network for the sample painting on the
  sample photos but one, then stylizes that one; writes OUT/feed_forward.png (the photo it
  never saw), OUT/feed_forward_comparison.png (photo | style | result) and the model in
  OUT/feed_forward_model/. ``overrides``: objective options the user gave."""
  import tempfile

  from jaxstyle import images, presets
  from jaxstyle.nets import models
  from jaxstyle.nets.apply import stylizer_for
  from jaxstyle.nets.train import TrainConfig, train

  out = Path(args.output)
  if out.exists() and not out.is_dir():
    raise ImageError(f"{out}: exists and is not a directory")
  out.mkdir(parents=True, exist_ok=True)
  objective = presets.perceptual_vgg16().replace(size=args.size, **overrides)
  folder = sample_images_dir()
  with tempfile.TemporaryDirectory() as tmp:
    photos = Path(tmp) / "photos"
    photos.mkdir()
    if folder is not None:
      for path in sorted((folder / "content").glob("*.jpg")):
        if path.name != HELD_OUT.name:
          (photos / path.name).symlink_to(path)
      style, held_out = folder / STYLE, images.load_image(folder / HELD_OUT, min_side=1)
      print(f"demo: training on {len(list(photos.iterdir()))} photos of {folder / 'content'} for "
            f"{style}; {folder / HELD_OUT} is held out")
    else:
      content, style_rgb = generated_images(256)
      for k in range(3):  # Three views of the generated landscape; the fourth is held out.
        images.save_image(photos / f"{k}.png", np.rot90(content, k))
      held_out = np.ascontiguousarray(content[:, ::-1])
      style = Path(tmp) / "style.png"
      images.save_image(style, style_rgb)
      print("demo: sample images not found (../shared/images or $JAXSTYLE_IMAGES); using "
            "generated images")
    # Narrow random features when there are no weights: the same code, 16x fewer FLOPs.
    spec, vgg = demo_weights(objective.weights, objective.network, fallback="random:0:0.25")
    if vgg.is_random:
      changed = {k: v for k, v in RANDOM_FEATURE_TRAINING.items() if k not in overrides}
      objective = objective.replace(**changed)
      if changed:
        print("demo: random features: " + ", ".join(f"--{k.replace('_', '-')} {v:g}"
                                                     for k, v in changed.items())
              + " (trained weights use Johnson's 1)")
    config = TrainConfig(steps=args.steps, crop=args.size, sample_every=0, checkpoint_every=0,
                         **FEED_FORWARD_TRAINING)
    model_dir = out / "feed_forward_model"
    train([style], photos, model_dir, config, objective.replace(weights=spec), weights=vgg,
          progress=not args.quiet, log=lambda *a: None)
    style_rgb = images.load_image(style, size=2 * args.size, min_side=1)
  net, _ = models.load_model(model_dir)
  photo = images.fit(held_out, 2 * args.size, min_side=1)
  result = stylizer_for(net)(photo[None])[0]
  images.save_image(out / "feed_forward.png", result)
  strip = np.concatenate([photo, images.resize_array(style_rgb, *photo.shape[:2]), result], 1)
  if vgg.is_random:
    strip = captioned(strip, "photo (never trained on) | style | network output. RANDOM VGG16 "
                             "features: not real style transfer")
  images.save_image(out / "feed_forward_comparison.png", strip)
  from jaxstyle.nets.quality import content_kept
  print(f"demo: wrote {out / 'feed_forward.png'} (a photo the network never saw; content kept "
        f"{content_kept(result, photo):.2f}), {out / 'feed_forward_comparison.png'} (photo | "
        f"style | result) and the model {model_dir}")
  if vgg.is_random:
    print("demo: these images come from a network trained on RANDOM features, not a trained "
          "VGG16")


def captioned(rgb_HxWx3: np.ndarray, text: str) -> np.ndarray:
  """``rgb`` with a white strip below holding ``text`` in red (how galleries label random
  features)."""
  from PIL import Image, ImageDraw
  h, w = rgb_HxWx3.shape[:2]
  sheet = Image.new("RGB", (w, h + 16), "white")
  sheet.paste(Image.fromarray(rgb_HxWx3), (0, 0))
  ImageDraw.Draw(sheet).text((4, h + 2), text, fill="red")
  return np.asarray(sheet)
