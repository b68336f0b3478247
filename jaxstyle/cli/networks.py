"""The feed-forward network commands: train, train-adain, models convert/info, apply (their own
options and handlers), and what ``apply`` and ``video --model`` share: loading a model as a
stylizer and refusing sizes that cannot fit."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from jaxstyle.cli.options import add_network_options, config_from_args, flag, output_dir
from jaxstyle.errors import JaxstyleError
from jaxstyle.vgg.weights import RandomWeightsWarning

MODEL_DIR_OUTPUT = ("MODEL_DIR", "the model directory to write (created; with --resume, "
                                 "continued)")
"""``-o``'s metavar and help for the training commands."""

TRAIN_SPLIT = ("each batch split over all their devices (MODEL_DIR on storage they share; "
               "process 0 writes the model)")
"""What each process of a ``--distributed`` training run does."""


# ---- training --------------------------------------------------------------------------------


def _training_inputs(parser, data_help: str) -> None:
  """What every training command reads: the data, held-out photos, and its own checkpoints."""
  parser.add_argument("--data", required=True, metavar="DIR", help=data_help)
  parser.add_argument("--held-out", nargs="+", default=None, metavar="PHOTO",
                      help="photos for the sample grids and the held-out objective (default: "
                           "the sample photos in ../shared/images/content, if present)")
  parser.add_argument("--resume", action="store_true",
                      help="continue from MODEL_DIR/checkpoints; ends bit-identical to an "
                           "uninterrupted run")


def _held_out(given, kind: str) -> list:
  """The sample grids' images: as given, else the first four sample images of ``kind``."""
  from jaxstyle import demo
  if given is not None:
    return given
  folder = demo.sample_images_dir()
  return sorted((folder / kind).glob("*.jpg"))[:4] if folder else []


def _report_training(result) -> int:
  h = result["history"]["total"]
  if result["model"] is None and h:  # A --distributed process other than the first.
    print(f"trained {len(h)} steps, loss {h[0]:.4g} -> {h[-1]:.4g} (process 0 writes the model)")
    return 0
  print(f"wrote {result['model']}: {len(h)} steps, loss {h[0]:.4g} -> {h[-1]:.4g}, "
        f"{result['seconds']:.1f} s" if h else f"wrote {result['model']}")
  return 0


def train_arguments(parser, base) -> None:
  parser.add_argument("styles", metavar="STYLE", nargs="+", help="style image files")
  _training_inputs(parser, "folder of training photos (recursive; COCO in real use)")


def train(args) -> int:
  from jaxstyle import distributed
  from jaxstyle.nets.train import TrainConfig, train

  config = config_from_args(args, TrainConfig)
  objective = config_from_args(args, size=config.crop)
  distributed.initialize(args.distributed)
  return _report_training(train(args.styles, args.data, args.output, config, objective,
                                held_out=_held_out(args.held_out, "content"),
                                resume=args.resume, progress=not args.quiet))


def train_adain_arguments(parser, base) -> None:
  parser.add_argument("--styles", required=True, metavar="DIR",
                      help="folder of style images (recursive; WikiArt in real use)")
  _training_inputs(parser, "folder of content photos (recursive; COCO in real use)")
  parser.add_argument("--held-out-styles", nargs="+", default=None, metavar="IMAGE",
                      help="styles for the sample grids (default: the sample paintings in "
                           "../shared/images/style, if present)")


def train_adain(args) -> int:
  from jaxstyle import distributed
  from jaxstyle.nets.train import TrainConfig
  from jaxstyle.nets.train_adain import train_adain

  config = config_from_args(args, TrainConfig)
  objective = config_from_args(args)
  distributed.initialize(args.distributed)
  return _report_training(train_adain(
      args.styles, args.data, args.output, config, objective,
      held_out=_held_out(args.held_out, "content"),
      held_out_styles=_held_out(args.held_out_styles, "style"), resume=args.resume,
      progress=not args.quiet))


# ---- models ----------------------------------------------------------------------------------


def models_convert_arguments(parser, base) -> None:
  parser.add_argument("src", metavar="SRC.pth",
                      help="a fast_neural_style TransformerNet state dict")
  parser.add_argument("dst", metavar="MODEL_DIR", help="the model directory to write")
  parser.add_argument("--label", default=None, help="the style's name (default: the file's stem)")


def models_convert(args) -> int:
  from jaxstyle.nets import models
  path = models.convert_pth(args.src, args.dst, label=args.label)
  print(f"converted {args.src} -> {path}")
  return 0


def models_info_arguments(parser, base) -> None:
  parser.add_argument("model", metavar="MODEL_DIR", help="a jaxstyle model directory")
  parser.add_argument("--json", action="store_true",
                      help="the full record (model.json) instead of the summary")


def models_info(args) -> int:
  from jaxstyle.nets import models
  net, meta = models.load_model(args.model)  # Checks the params against their sha256.
  if args.json:
    print(json.dumps(meta, indent=1, sort_keys=True))
    return 0
  print(f"model:        {args.model}")
  for line in models.summary(args.model, net, meta):
    print(line)
  return 0


def models_export_arguments(parser, base) -> None:
  parser.add_argument("model", metavar="MODEL_DIR", help="a jaxstyle model directory")
  parser.add_argument("--web", default=None, metavar="DIR",
                      help="also (or instead) write a static page that stylizes in the browser "
                           "into DIR: index.html, the model, onnxruntime-web's files; serve it "
                           "with jaxstyle serve DIR")
  parser.add_argument("--ort-web", default=None, metavar="PATH",
                      help="onnxruntime-web's npm package (unpacked, or its dist/) for --web "
                           "(default: fetched once with npm into ~/.cache/jaxstyle)")


def models_export(args) -> int:
  from jaxstyle.nets import export, models, web
  if not args.output and not args.web:
    raise JaxstyleError("models export: nothing to write; give -o FILE.onnx, --web DIR, or both")
  if args.output and Path(args.output).suffix != ".onnx":
    raise JaxstyleError(f"{args.output}: expected a .onnx file name")
  net, meta = models.load_model(args.model)
  if args.output:
    export.export_onnx(net, args.output)
    names = ", ".join(f"{name} {'x'.join(map(str, shape)) or 'scalar'}"
                      for name, shape in export.signature(net).items())
    print(f"exported {args.model} -> {args.output} (inputs: {names}; RGB 0-255, any side >= "
          f"{export.MIN_SIDE})")
  if args.web:
    web.write_page(net, meta, args.model, args.web, ort_web=args.ort_web)
    print(f"wrote {args.web}/index.html; serve it with: jaxstyle serve {args.web}")
  return 0


# ---- running a trained network ---------------------------------------------------------------


def stylizer_of(args, style) -> tuple:
  """The stylizer of ``args.model`` with ``style`` (an index or mix), what outputs record of
  the model, and of its styles. The model's training history stays in its model.json
  (identified by the params' sha256), not in every output."""
  from jaxstyle import conv, images, memory
  from jaxstyle.files import sha256_file
  from jaxstyle.nets import models
  from jaxstyle.nets.apply import stylizer_for
  if args.batch < 1:
    raise JaxstyleError(f"--batch: expected at least 1, got {args.batch}")
  net, meta = models.load_model(args.model)
  if models.trained_on_random_features(meta):
    warnings.warn(f"{args.model}: trained on RANDOM VGG features (untrained): its outputs show "
                  "the network at work, not real style transfer", RandomWeightsWarning)
  if meta["architecture"] == "adain" and not args.style_image:
    raise JaxstyleError(f"{args.model}: an AdaIN model stylizes with any style image; name "
                        "one with --style-image")
  adain_only = [flag(d) for d in ("style_image", "style_size", "alpha") if d in args.given]
  if meta["architecture"] != "adain" and adain_only:
    raise JaxstyleError(f"{', '.join(adain_only)}: {args.model} is a Johnson network, trained "
                        "for styles of its own (choose one with --style or --style-mix); only "
                        "AdaIN models take style images and --alpha")
  if meta["architecture"] == "adain":  # The style images' statistics: refuse what cannot fit.
    shapes = [images.source_shape(p, what="style") for p in args.style_image]
    memory.refuse_unless_fits(
        lambda side: memory.adain_style_bytes(net.spec.width, max(
            h * w for h, w in (images.fitted_shape(s, side) for s in shapes))),
        args.style_size, option="--style-size", what="the style images' statistics")
  stylizer = stylizer_for(net, style=style, alpha=args.alpha, style_images=[
      images.load_image(p, size=args.style_size) for p in args.style_image],
      conv=args.conv, log=conv.stderr_log)
  model = {"path": str(args.model), "params_sha256": meta["params_sha256"],
           "styles": meta["styles"], "spec": meta["spec"],
           "record": {k: v for k, v in meta["record"].items() if k != "history"}}
  styles = {"style_weights": stylizer.style_S.tolist(),
            "style_images": [{"path": str(p), "sha256": sha256_file(p)} for p in args.style_image],
            "style_size": args.style_size if args.style_image else None, "alpha": args.alpha}
  return stylizer, model, styles


def check_network_fits(stylizer, shapes: list[tuple[int, int]], size: int | None,
                       batch: int, tile: int | None = None) -> tuple[dict, int | None]:
  """Before any image is loaded: refuses a ``--size`` below the network's smallest side or
  one at which ``batch`` of these images cannot fit in memory (one line each), and returns
  the longest side each shape is loaded at (``size``, or its own; a photo smaller than the
  network's smallest side is enlarged to it, with the warning any enlargement gives), and the
  tile side to stylize in: ``tile`` (``--tile``), else the largest that fits when a whole image
  does not, else None."""
  from jaxstyle import images, memory
  if size is not None and size < stylizer.min_side:
    raise JaxstyleError(f"--size: expected at least {stylizer.min_side} pixels (the network's "
                        f"smallest side), got {size}")
  sides = {}
  for h, w in shapes:
    own = max(h, w) if min(h, w) >= stylizer.min_side else -(-max(h, w) * stylizer.min_side
                                                                // min(h, w))
    sides[(h, w)] = size if size is not None else own
  batch = min(batch, len(shapes))

  def largest(side: int) -> int:  # Pixels of the largest image at ``side`` (or its own).
    return max(fh * fw for fh, fw in (
        images.fitted_shape(s, side if size is not None else min(side, sides[s]))
        for s in shapes))

  def need(side: int) -> int:
    return stylizer.peak_bytes(largest(side), batch)
  side = size or max(sides.values())
  available = memory.available_bytes()[0]
  if tile is None and stylizer.peak_bytes(largest(side)) > available:
    tile = stylizer.largest_tile(largest(side), available)
  if tile is not None:
    memory.refuse_unless_fits(lambda t: stylizer.tiled_peak_bytes(t, largest(side)), tile,
                              option="--tile", what="one tile's forward pass and the image",
                              floor=4)
    return sides, tile
  memory.refuse_unless_fits(need, side, option="--size",
                            what=f"{batch} image{'s' if batch > 1 else ''} per forward pass "
                                 "(--batch)")
  return sides, None


def apply_arguments(parser, base) -> None:
  parser.add_argument("model", metavar="MODEL_DIR",
                      help="a model directory (jaxstyle train, train-adain or models convert)")
  parser.add_argument("images", metavar="IMAGE", nargs="+", help="photos to stylize")
  which = parser.add_mutually_exclusive_group()
  which.add_argument("--style", type=int, default=0, metavar="K",
                     help="which of the model's styles (default: 0)")
  which.add_argument("--style-mix", type=float, nargs="+", default=None, metavar="W",
                     help="one weight per style, mixed (normalised to sum 1)")
  add_network_options(parser, "images of one size per forward pass (default: 4)")
  parser.add_argument("--size", type=int, default=None,
                      help="longest side of each output (default: the input's size)")
  parser.add_argument("--preserve-colors", default="none", choices=("none", "luminance"),
                      help="keep the input's colours: the network's luminance, the input's "
                           "chroma (YIQ)")
  parser.add_argument("--tile", type=int, default=None, metavar="N",
                      help="stylize each image in tiles of N px (a multiple of 4), with the "
                           "whole image's instance-norm statistics: the same result in one "
                           "tile's memory, about 8x the time (default: tiles only for an image "
                           "that does not fit in memory whole; Johnson networks)")


def _tiled(stylizer, rgb, tile: int, path, *, quiet: bool):
  """One image by :meth:`Stylizer.tiled`, with a progress bar over its passes' tiles."""
  from jaxstyle.progress import bar as progress_bar
  bar = progress_bar(0, desc=f"{Path(path).name} in tiles", unit="tile", enabled=not quiet)

  def progress(done, total):
    bar.total = total
    bar.update(done - bar.n)
  try:
    return stylizer.tiled(rgb, tile, progress=progress)
  finally:
    bar.close()


def apply(args) -> int:
  import time

  import numpy as np

  from jaxstyle import color, images, provenance
  from jaxstyle.files import sha256_file

  stylizer, model_ref, styles = stylizer_of(
      args, args.style_mix if args.style_mix is not None else args.style)
  # Every input and output name is checked before anything is written.
  outdir = output_dir(args.output)
  names, shapes = {}, {}
  for path in args.images:
    shapes[path] = images.source_shape(path, what="input")
    name = Path(path).stem + ".png"
    if name in names:
      raise JaxstyleError(f"{path}: has the same name as {names[name]}; their outputs would "
                          f"both be {outdir / name}")
    names[name] = path
  sides, tile = check_network_fits(stylizer, list(shapes.values()), args.size, args.batch,
                                   args.tile)
  if tile is not None:
    args.batch = 1  # One image at a time, each tile by tile.
    print(f"apply: stylizing in tiles of {tile} px with whole-image statistics"
          + ("" if args.tile else " (a whole image does not fit in memory)"))
  outdir.mkdir(parents=True, exist_ok=True)
  start, done = time.perf_counter(), 0
  for first in range(0, len(args.images), args.batch):
    group: dict = {}  # One forward pass per shape within the batch.
    for path in args.images[first:first + args.batch]:
      rgb = images.load_image(path, size=sides[shapes[path]], min_side=stylizer.min_side)
      group.setdefault(rgb.shape, []).append((path, rgb))
    for members in group.values():
      if tile is None:
        outputs = stylizer(np.stack([rgb for _, rgb in members]))
      else:
        outputs = [_tiled(stylizer, members[0][1], tile, members[0][0], quiet=args.quiet)]
      for (path, rgb), out in zip(members, outputs):
        if args.preserve_colors == "luminance":
          out = color.with_chroma_of(out, rgb)
        record = {"model": model_ref, **styles,
                  "input": {"path": str(path), "sha256": sha256_file(path)},
                  "size": args.size, "preserve_colors": args.preserve_colors, "tile": tile,
                  "convolutions": stylizer.conv_record(), "versions": provenance.versions()}
        target = outdir / (Path(path).stem + ".png")
        images.save_image(target, out, text={provenance.PNG_KEY: json.dumps(record,
                                                                            sort_keys=True)})
        done += 1
        print(f"wrote {target} ({out.shape[1]}x{out.shape[0]})")
  print(f"apply: {done} images in {time.perf_counter() - start:.1f} s (compilation included)")
  return 0
