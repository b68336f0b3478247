"""Train a two-style network on the sample photos, then mix its styles: the README's strip.

    python experiments/style_mix.py [-o runs/style_mix] [--steps 300]

One network with conditional instance norm (Dumoulin et al. 2017) learns
Starry Night and The Scream at once on the four sample photos in
../shared/images/content (128 px crops, batch 2, width 0.25, Johnson's
objective: the perceptual-vgg16 preset, content weight raised to 1e1 so
that random features keep the photo's layout), then stylizes Chelsea with
style weights (1, 0), (0.75, 0.25), ..., (0, 1): docs/gallery/style_mix.png.
Every image is labelled RANDOM: the VGG16 here is random (this project
cannot download trained weights), so the strip shows what the mixing does to
a network trained on random features, not real style transfer.

Expected runtime: about 4 minutes on a 2-core CPU (300 steps at ~0.6 s plus
compilation). The loss curve is runs/style_mix/model/loss.png.
"""

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

import jaxstyle
from jaxstyle import demo, presets
from jaxstyle.files import atomic_path
from jaxstyle.nets import models
from jaxstyle.nets.apply import Stylizer
from jaxstyle.nets.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("-o", "--output", default="runs/style_mix")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--quiet", action="store_true")
  args = parser.parse_args()
  folder = demo.sample_images_dir()
  if folder is None:
    raise SystemExit("style_mix: the sample images (../shared/images) are needed")
  out = Path(args.output)
  styles = [folder / "style" / "starry_night.jpg", folder / "style" / "the_scream.jpg"]
  config = TrainConfig(steps=args.steps, batch=2, crop=128, width=0.25, sample_every=100,
                       checkpoint_every=100)
  objective = presets.perceptual_vgg16().replace(size=128, content_weight=10.0,
                                                 weights="random:0:0.25")
  weights = jaxstyle.resolve_weights(objective.weights, network="vgg16")
  result = train(styles, folder / "content", out / "model", config, objective, weights=weights,
                 held_out=[folder / "content" / "chelsea.jpg"], progress=not args.quiet,
                 resume=(out / "model" / "checkpoints").exists())
  net, _ = models.load_model(result["model"] or out / "model")
  photo = jaxstyle.load_image(folder / demo.CONTENT, size=160)
  mixes = [(1.0, 0.0), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0.0, 1.0)]
  cells = [photo] + [Stylizer(net, list(m))(photo[None])[0] for m in mixes]
  h, w = photo.shape[:2]
  strip = Image.new("RGB", (w * len(cells), h + 34), "white")
  draw = ImageDraw.Draw(strip)
  for i, cell in enumerate(cells):
    strip.paste(Image.fromarray(cell), (i * w, 0))
    label = "photo" if i == 0 else f"starry {mixes[i - 1][0]:g} / scream {mixes[i - 1][1]:g}"
    draw.text((i * w + 4, h + 2), label, fill="black")
  draw.text((4, h + 18), "RANDOM VGG16 features: not real style transfer", fill="red")
  target = ROOT / "docs" / "gallery" / "style_mix.png"
  with atomic_path(target, suffix=".png") as tmp:
    strip.save(tmp, format="PNG")
  print(f"wrote {target}")


if __name__ == "__main__":
  main()
