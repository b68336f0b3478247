"""The ``jaxstyle`` command line; thin: parsing, files and messages only.

``stylize``'s options are generated from :class:`jaxstyle.StyleConfig`'s
fields (name, type, default, help), so the CLI and the Python API cannot
drift apart. Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import typing
import warnings
from pathlib import Path

from jaxstyle.config import StyleConfig, unwrap_optional
from jaxstyle.errors import Interrupted, JaxstyleError, NonFiniteLossError
from jaxstyle.weights import RandomWeightsWarning

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it.
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `yes | head` reports for yes.


# Options of the classic tools (neural-style, fast_neural_style, the Keras example) that
# jaxstyle names otherwise: a usage error that mentions one says what to write instead.
CLASSIC_NAMES = {
    "--original-colors": "--preserve-colors luminance",
    "--original_colors": "--preserve-colors luminance",
    "--image-size": "--size", "--image_size": "--size",
    "--num-iterations": "--iters", "--num_iterations": "--iters",
    "--init-image": "--init PATH", "--init_image": "--init PATH",
}


class _Parser(argparse.ArgumentParser):
  """argparse, but a usage error is one line (and still exit code 2), with a hint where the
  user wrote a classic tool's name for an option (:data:`CLASSIC_NAMES`)."""

  def error(self, message):
    hints = [f"{old} is {new} here" for old, new in CLASSIC_NAMES.items()
             if re.search(rf"(^|\s){re.escape(old)}(\s|=|$)", message)]
    hint = f"; {', '.join(hints)}" if hints else ""
    self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def _option_kwargs(f: dataclasses.Field, hint, default, values: dict) -> dict:
  """argparse keyword arguments for one config field, defaulting to ``default``.

  ``values`` are the config's values the command actually uses (a preset's, training's
  perceptual-vgg16): a help text's ``{field}`` names one, so help states the real value.
  """
  meta = dict(f.metadata, help=f.metadata["help"].format_map(values))
  kwargs = {"default": default, "metavar": meta.get("metavar"), "choices": meta.get("choices")}
  hint, _ = unwrap_optional(hint)
  if hint is bool:
    kwargs = {"default": default, "action": argparse.BooleanOptionalAction}
  elif typing.get_origin(hint) is tuple:
    kwargs |= {"nargs": "+", "type": typing.get_args(hint)[0]}
  else:
    kwargs["type"] = hint
  shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
  # A help text that already says what the default means keeps its own words.
  kwargs["help"] = (meta["help"] if "default" in meta["help"] and default == f.default
                    else f"{meta['help']} (default: {shown})")
  return {k: v for k, v in kwargs.items() if v is not None or k == "default"}


def add_config_options(parser: argparse.ArgumentParser, cls=StyleConfig, *, groups,
                       skip=(), base=None) -> None:
  """Adds one ``--option`` per field of ``cls`` in ``groups``, with its type, default and help.

  A field's group is its ``metadata["group"]`` (StyleConfig's are
  :data:`jaxstyle.config.GROUPS`); fields outside ``groups`` are not offered,
  so a command never accepts an option it would ignore. ``base`` (an
  instance, e.g. a preset) supplies the defaults instead of the class's own.
  The groups are remembered on the parser: :func:`config_from_args` reads
  exactly these fields back.
  """
  hints = typing.get_type_hints(cls)
  base = base or cls()
  values = dataclasses.asdict(base)
  for f in dataclasses.fields(cls):
    if f.metadata["group"] in groups and f.name not in skip:
      parser.add_argument(_flag(f.name), dest=f.name,
                          **_option_kwargs(f, hints[f.name], getattr(base, f.name), values))
  parser.set_defaults(**{_groups_key(cls): tuple(groups)})


def add_field_option(parser: argparse.ArgumentParser, name: str, cls=StyleConfig) -> None:
  """One field's ``--option`` alone, declared by the field as :func:`add_config_options` does."""
  hints, base = typing.get_type_hints(cls), cls()
  f = next(f for f in dataclasses.fields(cls) if f.name == name)
  parser.add_argument(_flag(name), dest=name, **_option_kwargs(f, hints[name], getattr(base, name),
                                                               dataclasses.asdict(base)))


def _groups_key(cls) -> str:
  return f"_{cls.__name__}_groups"


def add_preset_option(parser: argparse.ArgumentParser) -> None:
  """``--preset NAME``: start from a published objective (see ``jaxstyle presets``)."""
  from jaxstyle.presets import PRESETS
  parser.add_argument("--preset", default=None, choices=list(PRESETS), metavar="NAME",
                      help="start from a published objective, options given explicitly "
                           "override it: " + ", ".join(PRESETS) + " (jaxstyle presets "
                           "describes them)")


def add_distributed_option(parser: argparse.ArgumentParser,
                           what: str = "each taking every N-th member") -> None:
  """``--distributed``: one of several processes/hosts, sharing the work as ``what`` says."""
  parser.add_argument("--distributed", default=None, metavar="auto|HOST:PORT,N,I",
                      help=f"run as one of several processes/hosts, {what}: auto-detect the "
                           "cluster, or name the coordinator, the process count and this "
                           "process's index (default: one process)")


def preset_in(argv: list[str]) -> str | None:
  """The value of ``--preset`` in argv, if any: it sets the other options' defaults."""
  for i, arg in enumerate(argv):
    if arg == "--preset" and i + 1 < len(argv):
      return argv[i + 1]
    if arg.startswith("--preset="):
      return arg.split("=", 1)[1]
  return None


def config_from_args(args: argparse.Namespace, cls=StyleConfig, **overrides):
  """Builds the config dataclass from parsed options (validating it).

  Takes the fields of the groups the command offered (:func:`add_config_options`);
  the others keep their defaults, even where ``args`` has an option of that name
  that belongs to another config of the same command (train's ``--lr`` is
  TrainConfig's, not StyleConfig's).
  """
  groups = getattr(args, _groups_key(cls))
  values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.metadata["group"] in groups and hasattr(args, f.name)}
  return cls(**(values | overrides))


def dropped_preset_fields(preset: StyleConfig, groups) -> dict[str, list[str]]:
  """The fields ``preset`` sets (away from StyleConfig's defaults) outside ``groups``, by group:
  what a command taking only ``groups`` cannot honour."""
  from jaxstyle.config import fields_in, group_of
  default, kept = StyleConfig(), fields_in(groups)
  dropped: dict[str, list[str]] = {}
  for f in dataclasses.fields(StyleConfig):
    if f.name not in kept and getattr(preset, f.name) != getattr(default, f.name):
      dropped.setdefault(group_of(f.name), []).append(f.name)
  return dropped


def _add_training_options(parser: argparse.ArgumentParser, data_help: str) -> None:
  """What every training command takes: data, output, held-out photos, resume, processes."""
  parser.add_argument("--data", required=True, metavar="DIR", help=data_help)
  parser.add_argument("-o", "--output", required=True, metavar="MODEL_DIR",
                      help="the model directory to write (created; with --resume, continued)")
  parser.add_argument("--held-out", nargs="+", default=None, metavar="PHOTO",
                      help="photos for the sample grids and the held-out objective (default: "
                           "the sample photos in ../shared/images/content, if present)")
  parser.add_argument("--resume", action="store_true",
                      help="continue from MODEL_DIR/checkpoints; ends bit-identical to an "
                           "uninterrupted run")
  parser.add_argument("--quiet", action="store_true", help="no progress bar")
  add_distributed_option(parser, TRAIN_SPLIT)


# What running a trained network takes beyond its model (dests of _add_network_options).
NETWORK_OPTIONS = ("style_image", "style_size", "alpha", "batch")


def _add_network_options(parser: argparse.ArgumentParser, batch_help: str, *,
                         conv: bool = True) -> None:
  """What running a trained network takes beyond its model: AdaIN's styles, the batch
  (:data:`NETWORK_OPTIONS`) and, unless the command has it already, ``--conv``."""
  if conv:
    add_field_option(parser, "conv")
  parser.add_argument("--style-image", nargs="+", default=(), metavar="IMAGE",
                      help="AdaIN models: the style image(s); several are mixed by --style-mix "
                           "(default: the first)")
  parser.add_argument("--style-size", type=int, default=512, metavar="N",
                      help="AdaIN models: longest side the style images are resized to "
                           "(default: 512)")
  parser.add_argument("--alpha", type=float, default=1.0,
                      help="AdaIN models: content (0) to style (1) trade-off (default: 1)")
  parser.add_argument("--batch", type=int, default=4, metavar="N", help=batch_help)


def _add_frame_selection(parser: argparse.ArgumentParser, whose: str = "of the input") -> None:
  """``--frames A:B`` and ``--every N``: which frames of a clip (video, video-metrics)."""
  parser.add_argument("--frames", default=None, metavar="A:B",
                      help=f"only frames A to B-1 {whose} (either may be empty)")
  parser.add_argument("--every", type=int, default=1, metavar="N",
                      help=f"every N-th frame {whose}, at 1/N of the frame rate (previews; "
                           "default: 1)")


def _network(args, style) -> tuple:
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
  adain_only = [_flag(d) for d in ("style_image", "style_size", "alpha") if d in args.given]
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
                       batch: int) -> dict:
  """Before any image is loaded: refuses a ``--size`` below the network's smallest side or
  one at which ``batch`` of these images cannot fit in memory (one line each), and returns
  the longest side each shape is loaded at (``size``, or its own; a photo smaller than the
  network's smallest side is enlarged to it, with the warning any enlargement gives)."""
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

  def need(side: int) -> int:  # The largest image at ``side`` (or its own, if smaller).
    pixels = max(fh * fw for fh, fw in (
        images.fitted_shape(s, side if size is not None else min(side, sides[s]))
        for s in shapes))
    return stylizer.peak_bytes(pixels, batch)
  memory.refuse_unless_fits(need, size or max(sides.values()), option="--size",
                            what=f"{batch} image{'s' if batch > 1 else ''} per forward pass "
                                 "(--batch)")
  return sides


def build_parser(base: StyleConfig | None = None) -> argparse.ArgumentParser:
  """The whole ``jaxstyle`` parser with its subcommands; ``base`` gives config defaults."""
  from jaxstyle import presets
  train_base = base or presets.perceptual_vgg16()  # Training defaults to Johnson's objective.
  base = base or StyleConfig()
  import jaxstyle
  parser = _Parser(prog="jaxstyle", description="Neural style transfer in JAX (Gatys et al.).")
  parser.add_argument("--version", action="version", version=f"jaxstyle {jaxstyle.__version__}")
  commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

  stylize = commands.add_parser(
      "stylize", help="stylize a content photo with a style image",
      description="Optimise an image so its VGG19 features match CONTENT's and its Gram "
                  "matrices match STYLE's (Gatys et al. 2016).")
  stylize.add_argument("content", metavar="CONTENT", help="content image file")
  stylize.add_argument("style", metavar="STYLE", nargs="+",
                       help="style image file; several are blended (see --style-blend-weights)")
  stylize.add_argument("-o", "--output", required=True, metavar="OUT.png",
                       help="output image; written atomically, with its provenance as PNG text")
  stylize.add_argument("--save-every", type=int, default=0, metavar="N",
                       help="also write OUT.iterN.png every N iterations (default: 0, never)")
  stylize.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                       help="write the optimiser state to OUT.ckpt.npz every N iterations "
                            "(atomically; Ctrl-C writes one too); removed when the run ends "
                            "(default: 0, only on Ctrl-C)")
  stylize.add_argument("--resume", action="store_true",
                       help="continue from OUT.ckpt.npz, written by a run with the same "
                            "options and inputs; the result is bit-identical to an "
                            "uninterrupted run's")
  stylize.add_argument("--dry-run", action="store_true",
                       help="predict peak memory and run time (compiling the programs and "
                            "timing a few iterations), refuse if it cannot fit, write nothing")
  stylize.add_argument("--quiet", action="store_true", help="no progress bar")
  add_preset_option(stylize)
  add_config_options(stylize, groups=PIXEL_GROUPS, base=base)
  stylize.set_defaults(run=_cmd_stylize)

  batch = commands.add_parser(
      "batch", help="many stylizations of one photo in one compiled program",
      description="Runs every combination of the listed styles, loss weights and seeds "
                  "(or, with --zip, the lists side by side) as members of one compiled "
                  "program, sharded over all local devices. Writes one PNG per member.")
  batch.add_argument("content", metavar="CONTENT", help="content image file")
  batch.add_argument("--styles", nargs="+", required=True, metavar="STYLE",
                     help="style image files")
  batch.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                     help="output directory (created if missing)")
  batch.add_argument("--zip", action="store_true",
                     help="pair the lists element-wise (lists of length 1 repeat) instead of "
                          "taking their product")
  batch.add_argument("--max-members", type=int, default=None, metavar="N",
                     help="at most N members per program, to bound memory (default: all)")
  batch.add_argument("--quiet", action="store_true", help="no progress bar")
  add_distributed_option(batch)
  add_preset_option(batch)
  add_config_options(batch, groups=PIXEL_GROUPS, skip=tuple(MEMBER_LISTS), base=base)
  for field, (flag, kind) in MEMBER_LISTS.items():
    batch.add_argument(flag, dest=field, nargs="+", type=kind, default=[getattr(base, field)],
                       metavar="V", help=f"one or more values (default: {getattr(base, field)})")
  batch.set_defaults(run=_cmd_batch)

  sweep = commands.add_parser(
      "sweep", help="run a sweep declared in a TOML file, resumably",
      description="Runs the members a sweep file declares (see jaxstyle/sweep.py), batching "
                  "those that share a program, appends one JSON line per member to "
                  "RUNDIR/records.jsonl, skips members already recorded, and writes "
                  "RUNDIR/contact_sheet.png and RUNDIR/loss_curves.png.")
  sweep.add_argument("config", metavar="SWEEP.toml",
                     help="the sweep file (see experiments/sweeps/*.toml)")
  sweep.add_argument("-o", "--output", required=True, metavar="RUNDIR",
                     help="run directory: images, records.jsonl, contact sheet (created; a "
                          "rerun skips the members already recorded there)")
  sweep.add_argument("--max-members", type=int, default=None, metavar="N",
                     help="at most N members per program (default: all in a group)")
  sweep.add_argument("--quiet", action="store_true", help="no progress bar")
  add_distributed_option(sweep)
  sweep.set_defaults(run=_cmd_sweep)

  reproduce = commands.add_parser(
      "reproduce", help="re-run the stylization recorded in an output PNG",
      description="Reads the provenance record of a jaxstyle PNG, checks that the inputs and "
                  "weights are the recorded ones, runs it again and reports whether the new "
                  "image is byte-identical.")
  reproduce.add_argument("original", metavar="OUT.png", help="a PNG written by jaxstyle")
  reproduce.add_argument("-o", "--output", required=True, metavar="AGAIN.png",
                         help="where to write the re-run's image")
  reproduce.add_argument("--weights", default=None, metavar="PATH",
                         help="weights to use if the recorded path is not valid here")
  reproduce.add_argument("--quiet", action="store_true", help="no progress bar")
  reproduce.set_defaults(run=_cmd_reproduce)

  weights = commands.add_parser("weights",
                                help="download, convert and inspect VGG19 / VGG16 weights")
  weight_commands = weights.add_subparsers(dest="weights_command", required=True,
                                           parser_class=_Parser)
  convert = weight_commands.add_parser(
      "convert", help="convert Keras .h5 or torchvision .pth VGG19/VGG16 weights to "
      "jaxstyle's format (the network is recognised from the file)")
  convert.add_argument("src", metavar="SRC", help="vgg19_weights_tf_dim_ordering_tf_kernels_"
                       "notop.h5 / vgg16_... (Keras) or vgg19-dcbb9e9d.pth / "
                       "vgg16-397923af.pth (torchvision)")
  convert.add_argument("dst", metavar="DST", help="output .h5 file, e.g. weights/vgg19.h5")
  convert.set_defaults(run=_cmd_convert)
  download = weight_commands.add_parser(
      "download", help="download the Keras VGG19 (or VGG16) weights, check the md5 and "
      "convert them")
  download.add_argument("--network", default="vgg19", choices=("vgg19", "vgg16"),
                        help="which network (default: vgg19)")
  download.add_argument("--dest", default=None, help="(default: weights/NETWORK.h5)")
  download.add_argument("--url", default=None, help="override the download address")
  download.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server (default: 10)")
  download.set_defaults(run=_cmd_download)
  info = weight_commands.add_parser("info", help="layers, shapes, convention, source, checksum")
  info.add_argument("file", metavar="FILE", help="a jaxstyle weights .h5 file")
  info.set_defaults(run=_cmd_info)

  demo = commands.add_parser(
      "demo", help="stylize the example images and plot the losses",
      description="Stylizes a sample photo with a sample painting from ../shared/images "
                  "(or generated images when absent) and writes the result, a comparison "
                  "strip and a loss plot. Without pretrained weights it runs on random "
                  "features and says so.")
  demo.add_argument("-o", "--output", default="demo_out", metavar="DIR",
                    help="output directory (default: demo_out)")
  demo.add_argument("--quiet", action="store_true", help="no progress bar")
  add_preset_option(demo)
  add_config_options(demo, groups=PIXEL_GROUPS, skip=("size", "iters"), base=base)
  from jaxstyle.demo import FEED_FORWARD_STEPS
  demo.add_argument("--size", type=int, default=128,
                    help="longest side of the result; with --feed-forward, of the training "
                         "crops (the held-out photo is stylized at twice it) (default: 128)")
  demo.add_argument("--iters", type=int, default=100,
                    help="optimiser iterations (default: 100)")
  demo.add_argument("--feed-forward", action="store_true",
                    help="train a small network on the sample photos but one (a few minutes "
                         "on 2 cores), then stylize that one in one forward pass")
  demo.add_argument("--steps", type=int, default=FEED_FORWARD_STEPS,
                    help=f"--feed-forward: training steps (default: {FEED_FORWARD_STEPS})")
  demo.set_defaults(run=_cmd_demo)

  from jaxstyle.nets.train import OBJECTIVE_GROUPS, TrainConfig
  train = commands.add_parser(
      "train", help="train a feed-forward network on photos, for one or more styles",
      description="Trains Johnson's network (one style image: a single-style network; "
                  "several: one network with conditional instance norm) on every image under "
                  "--data, with jaxstyle's objective (default: the perceptual-vgg16 preset, "
                  "Johnson's; --preset and the loss options change it). Writes MODEL_DIR "
                  "(model.safetensors, model.json), checkpoints/, samples/, metrics.jsonl "
                  "and loss.png.")
  train.add_argument("styles", metavar="STYLE", nargs="+", help="style image files")
  _add_training_options(train, "folder of training photos (recursive; COCO in real use)")
  add_preset_option(train)
  add_config_options(train, TrainConfig, groups=("training", "johnson"))
  add_config_options(train, groups=OBJECTIVE_GROUPS, base=train_base)
  train.set_defaults(run=_cmd_train)

  from jaxstyle.nets.train_adain import ADAIN_TRAINING, objective_config as adain_objective
  train_adain = commands.add_parser(
      "train-adain", help="train an AdaIN network: any style image, one forward pass",
      description="Trains the decoder of Huang & Belongie's AdaIN network (frozen VGG19 "
                  "encoder to relu4_1) on the photos under --data and the paintings under "
                  "--styles, with jaxstyle's objective (default: their loss, mean/std style "
                  "statistics at relu1_1..relu4_1, content against the AdaIN target at "
                  "relu4_1) and their schedule. Writes MODEL_DIR as train does; apply it with "
                  "jaxstyle apply MODEL_DIR PHOTO --style-image PAINTING.")
  train_adain.add_argument("--styles", required=True, metavar="DIR",
                           help="folder of style images (recursive; WikiArt in real use)")
  _add_training_options(train_adain, "folder of content photos (recursive; COCO in real use)")
  train_adain.add_argument("--held-out-styles", nargs="+", default=None, metavar="IMAGE",
                           help="styles for the sample grids (default: the sample paintings "
                                "in ../shared/images/style, if present)")
  add_config_options(train_adain, TrainConfig, groups=("training",), base=ADAIN_TRAINING)
  add_config_options(train_adain, groups=OBJECTIVE_GROUPS, base=adain_objective())
  train_adain.set_defaults(run=_cmd_train_adain)

  models_command = commands.add_parser(
      "models", help="convert and inspect trained feed-forward style networks")
  model_commands = models_command.add_subparsers(dest="models_command", required=True,
                                                 parser_class=_Parser)
  convert_model = model_commands.add_parser(
      "convert", help="import a PyTorch examples fast_neural_style TransformerNet .pth "
      "(candy.pth, mosaic.pth, ...) as a jaxstyle model directory")
  convert_model.add_argument("src", metavar="SRC.pth",
                             help="a fast_neural_style TransformerNet state dict")
  convert_model.add_argument("dst", metavar="MODEL_DIR", help="the model directory to write")
  convert_model.add_argument("--label", default=None,
                             help="the style's name (default: the file's stem)")
  convert_model.set_defaults(run=_cmd_models_convert)
  model_info = model_commands.add_parser(
      "info", help="a model in a few lines: architecture, styles, training, versions",
      description="Loads MODEL_DIR (checking model.safetensors against the sha256 in "
                  "model.json) and summarises it; --json prints the whole model.json.")
  model_info.add_argument("model", metavar="MODEL_DIR", help="a jaxstyle model directory")
  model_info.add_argument("--json", action="store_true",
                          help="the full record (model.json) instead of the summary")
  model_info.set_defaults(run=_cmd_models_info)

  apply = commands.add_parser(
      "apply", help="stylize photos with a trained network, one forward pass each",
      description="Runs each image through a model directory's network (any size: sides "
                  "are padded to a multiple of 4 and cropped back) and writes "
                  "OUTDIR/NAME.png with its provenance (model sha256, style weights, input).")
  apply.add_argument("model", metavar="MODEL_DIR",
                     help="a model directory (jaxstyle train, train-adain or models convert)")
  apply.add_argument("images", metavar="IMAGE", nargs="+", help="photos to stylize")
  apply.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                     help="output directory (created): OUTDIR/NAME.png for each IMAGE")
  which = apply.add_mutually_exclusive_group()
  which.add_argument("--style", type=int, default=0, metavar="K",
                     help="which of the model's styles (default: 0)")
  which.add_argument("--style-mix", type=float, nargs="+", default=None, metavar="W",
                     help="one weight per style, mixed (normalised to sum 1)")
  _add_network_options(apply, "images of one size per forward pass (default: 4)")
  apply.add_argument("--size", type=int, default=None,
                     help="longest side of each output (default: the input's size)")
  apply.add_argument("--preserve-colors", default="none", choices=("none", "luminance"),
                     help="keep the input's colours: the network's luminance, the input's "
                          "chroma (YIQ)")
  apply.set_defaults(run=_cmd_apply)

  video = commands.add_parser(
      "video", help="stylize a clip: by optimisation with temporal consistency, or by a network",
      description="Stylizes every frame of IN (a video file ffmpeg reads, or a folder of "
                  "numbered frames) into OUT (mp4/webm/gif, or a folder), keeping the frame "
                  "rate and the audio. With --style, by optimisation with Ruder et al.'s "
                  "temporal consistency (each frame starts from the previous one warped by the "
                  "optical flow, plus their temporal loss; --temporal-weight 0 stylizes each "
                  "frame alone). With --model, by a trained network. Frames are "
                  "written as they finish (OUT.frames/ beside a video file); rerunning resumes "
                  "at the first missing one. Prints the warping error (flicker) at the end.")
  video.add_argument("input", metavar="IN",
                     help="a video file ffmpeg reads, or a folder of numbered frames")
  video.add_argument("-o", "--output", required=True, metavar="OUT",
                     help="a video file (.mp4, .webm, .gif) or a folder of frames")
  method = video.add_mutually_exclusive_group(required=True)
  method.add_argument("--style", metavar="IMAGE", help="style image (optimisation)")
  method.add_argument("--model", metavar="MODEL_DIR", help="a trained network (jaxstyle train)")
  _add_frame_selection(video)
  video.add_argument("--style-mix", type=float, nargs="+", default=None, metavar="W",
                     help="--model: weights of the model's styles (or of the --style-image "
                          "list for AdaIN)")
  _add_network_options(video, "--model: frames per forward pass (default: 4)", conv=False)
  video.add_argument("--quiet", action="store_true", help="no progress bar")
  add_preset_option(video)
  from jaxstyle.video.stylize import DEFAULT_TEMPORAL_WEIGHT
  add_config_options(video, groups=VIDEO_GROUPS, skip=("size",),
                     base=base.replace(temporal_weight=DEFAULT_TEMPORAL_WEIGHT))
  video.add_argument("--size", dest="frame_size", type=int, default=None,
                     help=f"longest side of the frames (default: {base.size} by optimisation, "
                          "the input's size by a model)")
  video.set_defaults(run=_cmd_video)

  video_metrics = commands.add_parser(
      "video-metrics", help="flicker of a stylized clip: its warping error against its input",
      description="Lai et al.'s (ECCV 2018) warping error: the mean over consecutive frames "
                  "of the squared difference (RGB in [0, 1]) between output frame t and output "
                  "frame t-1 warped by the input's optical flow, over the pixels the input's "
                  "forward-backward check finds unoccluded. Scores the frames a viewer sees "
                  "(a video file's decoded frames), as jaxstyle video does. Lower is steadier.")
  video_metrics.add_argument("output", metavar="OUT", help="the stylized clip (file or folder)")
  video_metrics.add_argument("input", metavar="IN", help="the clip it was made from")
  _add_frame_selection(video_metrics, "of the input, as given to jaxstyle video when it made OUT")
  video_metrics.set_defaults(run=_cmd_video_metrics)

  presets_command = commands.add_parser(
      "presets", help="list the presets (published objectives) or show one's settings",
      description="Presets write the objectives of the classic papers and tools as "
                  "configs; use one with --preset NAME.")
  presets_command.add_argument("name", metavar="NAME", nargs="?", default=None,
                               help="show this preset's source, notes and every setting")
  presets_command.set_defaults(run=_cmd_presets)

  bench = commands.add_parser("bench", help="measure this machine (convolution algorithms)")
  bench_commands = bench.add_subparsers(dest="bench_command", required=True, parser_class=_Parser)
  bench_convs = bench_commands.add_parser(
      "convs", help="time each style-network layer's convolution algorithms; show and cache "
      "the choices --conv auto makes",
      description="Times every exact algorithm for each distinct convolution of Johnson's net "
                  "and the AdaIN decoder, applied (one --size image) and training (--batch x "
                  "--crop), prints the table and keeps the choices in the cache that --conv "
                  "auto reads. Cached layers are shown as cached; --refresh times them again.")
  bench_convs.add_argument("--size", type=int, default=512, help="apply: image side (default: "
                           "512)")
  bench_convs.add_argument("--crop", type=int, default=256, help="training: crop side (default: "
                           "256)")
  bench_convs.add_argument("--batch", type=int, default=4, help="training: batch (default: 4)")
  bench_convs.add_argument("--width", type=float, default=1.0,
                           help="the networks' channel multiplier (default: 1)")
  bench_convs.add_argument("--refresh", action="store_true",
                           help="time every layer again, replacing the cached choices")
  bench_convs.set_defaults(run=_cmd_bench_convs)
  return parser


def _cmd_bench_convs(args) -> int:
  from jaxstyle import conv
  from jaxstyle.nets.layers import network_shapes
  for option, value in (("--size", args.size), ("--crop", args.crop)):
    if value < 8 or value % 8:
      raise JaxstyleError(f"{option}: expected a multiple of 8 (the AdaIN encoder pools three "
                          f"times), got {value}")
  if args.batch < 1 or not args.width > 0:
    raise JaxstyleError(f"--batch/--width: expected positive values, got {args.batch} and "
                        f"{args.width}")
  cache = conv.ChoiceCache.default()
  shapes = network_shapes(size=args.size, crop=args.crop, batch=args.batch, width=args.width)
  rows = conv.measure_all(shapes, cache, refresh=args.refresh, log=conv.stderr_log)
  print(f"convolution choices ({cache.path or 'not cached: the cache is disabled'}); "
        "ms per call, best of 3")
  for row in rows:
    timings = ", ".join(f"{a} {s * 1e3:.1f}" for a, s in row["seconds"].items()) or "only one"
    print(f"{row['layer']:34} {row['shape']:38} -> {row['algorithm']:8} ({timings})")
  return 0


def _cmd_stylize(args) -> int:
  from jaxstyle import images, provenance
  from jaxstyle.transfer import stylize

  config = config_from_args(args)
  output = images.check_output_path(args.output)
  if args.dry_run:
    return _dry_run(args, config)
  if args.save_every < 0:
    raise JaxstyleError(f"--save-every: expected a non-negative count, got {args.save_every}")

  def save_intermediate(iteration, image, _losses):
    images.save_image(output.with_name(f"{output.stem}.iter{iteration}{output.suffix}"), image)

  checkpoint = output.with_name(f"{output.stem}.ckpt.npz")
  try:
    result = stylize(args.content, _one_or_list(args.style), config, progress=not args.quiet,
                     callback=save_intermediate, save_every=args.save_every,
                     checkpoint=checkpoint, checkpoint_every=args.checkpoint_every,
                     resume=args.resume)
  except Interrupted as e:
    partial = output.with_name(f"{output.stem}.interrupted{output.suffix}")
    images.save_image(partial, e.images[0])
    e.args = (f"{e.args[0]}; the image so far is in {partial}; continue with the same command "
              "and --resume",)
    raise
  except NonFiniteLossError as e:
    if e.image is not None:
      rescue = output.with_name(f"{output.stem}.last-finite{output.suffix}")
      images.save_image(rescue, e.image)
      e.args = (f"{e.args[0]}; the last finite image is in {rescue}",)
    raise
  images.save_image(output, result.image,
                    text=provenance.png_text(result, content=args.content,
                                             style=_one_or_list(args.style)))
  checkpoint.unlink(missing_ok=True)  # The run is done; a stale one could only mislead.
  _print_summary(output, result)
  return 0


def _dry_run(args, config) -> int:
  from jaxstyle.transfer import estimate
  e = estimate(args.content, _one_or_list(args.style), config)
  gib = float(1 << 30)
  minutes, seconds = divmod(round(e.total_seconds), 60)
  print(f"dry run: {e.width}x{e.height} px, {config.network.upper()}, {config.optimizer}: "
        f"predicted peak memory {e.peak_bytes / gib:.2f} GiB of {e.available_bytes / gib:.1f} "
        f"GiB available on {e.device} (XLA's evaluation program: "
        f"{e.xla_temp_bytes / gib:.2f} GiB of temporaries); compile {e.compile_seconds:.1f} s; "
        f"{e.seconds_per_iteration:.3f} s/iteration, about {minutes} min {seconds} s for "
        f"{sum(config.scale_iters or (config.iters,) * config.scales)} iterations; "
        "nothing written")
  return 0


def _one_or_list(styles: list[str]):
  return styles[0] if len(styles) == 1 else styles


# `jaxstyle batch` takes lists for these; the members are their product (or zip).
MEMBER_LISTS = {"content_weight": ("--content-weight", float), "style_weight": ("--style-weight", float),
                "tv_weight": ("--tv-weight", float), "seed": ("--seeds", int)}


def _cmd_batch(args) -> int:
  from jaxstyle import images, provenance, sweep
  from jaxstyle.transfer import stylize_batch

  lists = {"style": args.styles, **{k: getattr(args, k) for k in MEMBER_LISTS}}
  try:
    members = sweep.expand(lists, zipped=args.zip)
  except ValueError as e:
    longest = max(len(v) for v in lists.values())
    raise JaxstyleError(f"--zip: every list needs 1 or {longest} values; got {e}") from None
  from jaxstyle import distributed
  distributed.initialize(args.distributed)
  share = distributed.my_share(len(members))
  base = config_from_args(args, **{k: lists[k][0] for k in MEMBER_LISTS})
  configs = [base.replace(**{k: m[k] for k in MEMBER_LISTS}) for m in members]
  outdir = _output_dir(args.output)
  varying = [k for k in MEMBER_LISTS if len(lists[k]) > 1]
  print(f"batch: {len(members)} members ({'zip' if args.zip else 'product'} of "
        + ", ".join(f"{len(v)} {k}" for k, v in lists.items()) + ")")
  results = stylize_batch(args.content, [members[i]["style"] for i in share],
                          [configs[i] for i in share], progress=not args.quiet,
                          max_members=args.max_members)
  outdir.mkdir(parents=True, exist_ok=True)  # After the run: a refused one leaves nothing.
  failed = 0
  for i, result in zip(share, results):
    member = members[i]
    name = "_".join([f"{i:03d}", Path(member["style"]).stem]
                    + [f"{_short(k)}{member[k]:g}" for k in varying])
    path = outdir / f"{name}{'.failed' if result.error else ''}.png"
    images.save_image(path, result.image,
                      text=provenance.png_text(result, content=args.content, style=member["style"]))
    if result.error:
      failed += 1
      print(f"FAILED {path}: {result.error}")
    else:
      _print_summary(path, result)
  return EXIT_RUN_FAILED if failed else 0


def _cmd_sweep(args) -> int:
  from jaxstyle import distributed, sweep

  distributed.initialize(args.distributed)
  _, records, written = sweep.run_file(args.config, args.output, max_members=args.max_members,
                                       progress=not args.quiet)
  failed = sum(r["status"] == "failed" for r in records)
  print(f"sweep: {len(records)} records in {sweep.records_file(args.output)}, {failed} "
        f"failed" + ("; wrote " + ", ".join(map(str, written)) if written else ""))
  return EXIT_RUN_FAILED if failed else 0


def jax_backend() -> str:
  import jax
  return jax.default_backend()


def _cmd_reproduce(args) -> int:
  from jaxstyle import images, provenance

  original = Path(args.original)
  images.load_image(original, min_side=1)  # A clear error for a missing or non-image file.
  output = images.check_output_path(args.output)
  record = provenance.read_png_record(original)
  if record is None:
    raise JaxstyleError(f"{original}: has no jaxstyle provenance record")
  result, content, style = provenance.rerun(record, weights_spec=args.weights,
                                            progress=not args.quiet)
  images.save_image(output, result.image,
                    text=provenance.png_text(result, content=content, style=style))
  same = output.read_bytes() == original.read_bytes()
  if same:
    print(f"reproduced {original} -> {output}: byte-identical")
    return 0
  diff = abs(images.load_image(output, min_side=1).astype(int)
             - images.load_image(original, min_side=1).astype(int)).max()
  then, now = record.get("versions", {}), provenance.versions()
  changed = [f"{k} {then[k]} -> {now[k]}" for k in now if then.get(k, now[k]) != now[k]]
  if record.get("backend", jax_backend()) != jax_backend():
    changed.append(f"backend {record['backend']} -> {jax_backend()}")
  why = (f"recorded with other versions: {', '.join(changed)}" if changed else
         "a different machine or batch size changes float round-off")
  print(f"reproduced {original} -> {output}: NOT byte-identical (largest pixel difference "
        f"{diff}; {why})")
  return EXIT_RUN_FAILED


def _output_dir(path) -> Path:
  """``path`` as an output directory to be: refused if it is a file."""
  outdir = Path(path)
  if outdir.exists() and not outdir.is_dir():
    raise JaxstyleError(f"{outdir}: exists and is not a directory")
  return outdir


def _short(field: str) -> str:
  return {"content_weight": "cw", "style_weight": "sw", "tv_weight": "tv", "seed": "seed"}[field]


DIVERGED = 1.5  # A final loss this many times the initial one is reported as divergence.


def _print_summary(output: Path, result) -> None:
  h = result.history["total"]
  final = h[-1] if len(h) else result.initial["total"]
  print(f"wrote {output}: {result.iterations} iterations, loss {result.initial['total']:.4g} -> "
        f"{final:.4g}, {result.seconds:.1f} s (+{result.compile_seconds:.1f} s compile)"
        + ("  [RANDOM FEATURES]" if result.weights["random"] else ""))
  if final > DIVERGED * result.initial["total"]:  # A diverged run must not pass as a result.
    fix = ("--lbfgs-linesearch zoom (steps checked by a linesearch)"
           if result.config.optimizer == "lbfgs" else "a smaller --lr")
    print(f"jaxstyle: warning: {output}: the loss ended {final / result.initial['total']:.3g}x "
          f"above where it started ({result.initial['total']:.4g} -> {final:.4g}): the "
          f"optimiser diverged; try {fix}", file=sys.stderr)


def _cmd_convert(args) -> int:
  from jaxstyle.convert import convert
  fmt = convert(args.src, args.dst)
  print(f"converted {args.src} ({fmt}) -> {args.dst}")
  return 0


def _cmd_download(args) -> int:
  from jaxstyle import convert
  dest = convert.download(args.dest, network=args.network, url=args.url, timeout=args.timeout)
  print(f"downloaded, verified (md5 {convert.KERAS_FILES[args.network].md5}) and converted "
        f"-> {dest}")
  return 0


def _cmd_info(args) -> int:
  from jaxstyle.vgg import layer_names
  from jaxstyle.weights import load_weights, read_info

  info = read_info(args.file)
  loaded = load_weights(args.file)  # Full validation: a file that prints fine also loads.
  attrs = info["attrs"]
  print(f"file:        {args.file}")
  print(f"sha256:      {loaded.sha256}")
  print(f"format:      {attrs['format']} v{attrs.get('format_version')}")
  print(f"network:     {loaded.network.upper()}, width scale {attrs.get('width_scale', 1.0):g}")
  print(f"convention:  {attrs.get('convention')}")
  print(f"source:      {attrs.get('source_name')} (sha256 {attrs.get('source_sha256')})")
  print("layers:")
  for name in layer_names(loaded.network):
    shapes = info["layers"][name]
    print(f"  {name:<13} kernel {shapes['kernel']}  bias {shapes['bias']}")
  return 0


def _cmd_presets(args) -> int:
  import inspect

  from jaxstyle import presets
  if args.name is None:
    for name in presets.PRESETS:
      print(f"{name:<22} {presets.describe(name)}")
    return 0
  config = presets.get(args.name)
  print(f"{args.name}\n\n{inspect.getdoc(presets.PRESETS[args.name])}\n\nsettings:")
  for key, value in config.to_dict().items():
    print(f"  --{key.replace('_', '-'):<24} {value}")
  return 0


# The StyleConfig groups (jaxstyle.config.GROUPS) each command honours; training's are
# jaxstyle.nets.train.OBJECTIVE_GROUPS. A clip runs one scale (each frame starts from the
# previous one); a single image has no temporal loss.
PIXEL_GROUPS = ("objective", "compute", "style_images", "color", "pixels", "scales")
VIDEO_GROUPS = ("objective", "compute", "style_images", "color", "pixels", "video")

TRAIN_SPLIT = ("each batch split over all their devices (MODEL_DIR on storage they share; "
               "process 0 writes the model)")


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


def _cmd_train_adain(args) -> int:
  from jaxstyle.nets.train import TrainConfig
  from jaxstyle.nets.train_adain import train_adain

  config = config_from_args(args, TrainConfig)
  objective = config_from_args(args)
  from jaxstyle import distributed
  distributed.initialize(args.distributed)
  return _report_training(train_adain(
      args.styles, args.data, args.output, config, objective,
      held_out=_held_out(args.held_out, "content"),
      held_out_styles=_held_out(args.held_out_styles, "style"), resume=args.resume,
      progress=not args.quiet))


def _cmd_train(args) -> int:
  from jaxstyle.nets.train import TrainConfig, train

  config = config_from_args(args, TrainConfig)
  objective = config_from_args(args, size=config.crop)
  from jaxstyle import distributed
  distributed.initialize(args.distributed)
  return _report_training(train(args.styles, args.data, args.output, config, objective,
                                held_out=_held_out(args.held_out, "content"),
                                resume=args.resume, progress=not args.quiet))


def _cmd_models_convert(args) -> int:
  from jaxstyle.nets import models
  path = models.convert_pth(args.src, args.dst, label=args.label)
  print(f"converted {args.src} -> {path}")
  return 0


def _cmd_models_info(args) -> int:
  from jaxstyle.nets import models
  net, meta = models.load_model(args.model)  # Checks the params against their sha256.
  if args.json:
    print(json.dumps(meta, indent=1, sort_keys=True))
    return 0
  print(f"model:        {args.model}")
  for line in models.summary(args.model, net, meta):
    print(line)
  return 0


def _cmd_apply(args) -> int:
  import time

  import numpy as np

  from jaxstyle import color, images, provenance
  from jaxstyle.files import sha256_file

  stylizer, model_ref, styles = _network(
      args, args.style_mix if args.style_mix is not None else args.style)
  # Every input and output name is checked before anything is written.
  outdir = _output_dir(args.output)
  names, shapes = {}, {}
  for path in args.images:
    shapes[path] = images.source_shape(path, what="input")
    name = Path(path).stem + ".png"
    if name in names:
      raise JaxstyleError(f"{path}: has the same name as {names[name]}; their outputs would "
                          f"both be {outdir / name}")
    names[name] = path
  sides = check_network_fits(stylizer, list(shapes.values()), args.size, args.batch)
  outdir.mkdir(parents=True, exist_ok=True)
  start, done = time.perf_counter(), 0
  for first in range(0, len(args.images), args.batch):
    group: dict = {}  # One forward pass per shape within the batch.
    for path in args.images[first:first + args.batch]:
      rgb = images.load_image(path, size=sides[shapes[path]], min_side=stylizer.min_side)
      group.setdefault(rgb.shape, []).append((path, rgb))
    for members in group.values():
      outputs = stylizer(np.stack([rgb for _, rgb in members]))
      for (path, rgb), out in zip(members, outputs):
        if args.preserve_colors == "luminance":
          out = color.with_chroma_of(out, rgb)
        record = {"model": model_ref, **styles,
                  "input": {"path": str(path), "sha256": sha256_file(path)},
                  "size": args.size, "preserve_colors": args.preserve_colors,
                  "convolutions": stylizer.conv_record(), "versions": provenance.versions()}
        target = outdir / (Path(path).stem + ".png")
        images.save_image(target, out, text={provenance.PNG_KEY: json.dumps(record,
                                                                            sort_keys=True)})
        done += 1
        print(f"wrote {target} ({out.shape[1]}x{out.shape[0]})")
  print(f"apply: {done} images in {time.perf_counter() - start:.1f} s (compilation included)")
  return 0


def _cmd_video(args) -> int:
  from jaxstyle import images
  from jaxstyle.config import fields_in
  from jaxstyle.video import stylize as video

  # Each method has options the other would ignore: refuse them instead.
  # --conv is both's: how the network's, or VGG's, convolutions run.
  method, others = (("--model", ("preset",) + tuple(
      d for d in fields_in(VIDEO_GROUPS) if d != "conv")) if args.model else
                    ("--style", NETWORK_OPTIONS + ("style_mix",)))
  misplaced = [_flag(d) for d in others if d in args.given]
  if misplaced:
    raise JaxstyleError(f"{', '.join(misplaced)}: not used by video {method} ("
                        + ("a trained network's options are its own; pixel optimisation takes "
                           "them with --style" if args.model else
                           "options of a trained network, for --model") + ")")
  config = config_from_args(args)
  stylizer = model_record = None
  if args.model is not None:
    stylizer, model, styles = _network(args, args.style_mix if args.style_mix is not None else 0)
    model_record = model | styles
  else:
    images.source_shape(args.style, what="style")  # A bad style image: before any frame.
    if args.frame_size is not None:
      config = config.replace(size=args.frame_size)
  summary = video.stylize_video(args.input, args.output, config=config, style=args.style,
                                stylizer=stylizer, model_record=model_record,
                                frames=args.frames, every=args.every, size=args.frame_size,
                                batch=args.batch, progress=not args.quiet)
  error = summary["warping_error"]
  print(f"video: {summary['frames']} frames -> {summary['output']} "
        f"({summary['seconds_per_frame']:.2f} s/frame, optical flow "
        f"{summary['flow_seconds_per_frame']:.3f} s/frame); warping error "
        + (f"{error:.6g} (on {summary['scored']})" if error is not None else "n/a (one frame)"))
  return 0


def _cmd_video_metrics(args) -> int:
  from jaxstyle.video import stylize as video
  result = video.metrics(args.output, args.input, frames=args.frames, every=args.every)
  print(f"{args.output}: {result['frames']} frames, warping error {result['warping_error']:.6g} "
        f"(on {result['scored']})")
  return 0


def _cmd_demo(args) -> int:
  from jaxstyle import demo
  from jaxstyle.config import fields_in
  from jaxstyle.nets.train import OBJECTIVE_GROUPS
  objective = fields_in(OBJECTIVE_GROUPS)
  if args.feed_forward:
    # The network trains on the objective; the pixel optimiser's options have no meaning.
    misplaced = [_flag(d) for d in sorted(args.given) if d in fields_in(PIXEL_GROUPS)
                 and d not in objective + ("size",) or d == "preset"]
    if misplaced:
      raise JaxstyleError(f"{', '.join(misplaced)}: not used by demo --feed-forward (it trains "
                          "a network on the objective; jaxstyle train takes --preset)")
    demo.run_feed_forward(args, {d: getattr(args, d) for d in args.given if d in objective})
    return 0
  if "steps" in args.given:
    raise JaxstyleError("--steps: only with --feed-forward (pixel optimisation takes --iters)")
  demo.run(args, config_from_args(args))
  return 0


def _flag(dest: str) -> str:
  return "--" + dest.replace("_", "-")


def _given(parser: argparse.ArgumentParser, args) -> frozenset[str]:
  """The dests of the command's options whose values differ from their defaults (what the
  user set, a preset's values being the defaults)."""
  commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
  sub = commands.choices[args.command]
  return frozenset(a.dest for a in sub._actions
                   if a.option_strings and getattr(args, a.dest, a.default) != a.default)


def _note_dropped(preset: str, args) -> None:
  """One line naming the preset's settings this command cannot honour, and why."""
  from jaxstyle.config import GROUPS
  from jaxstyle.presets import get
  groups = getattr(args, _groups_key(StyleConfig), None)
  dropped = dropped_preset_fields(get(preset), groups) if groups is not None else {}
  if dropped:
    names = [n for fields in dropped.values() for n in fields]
    print(f"jaxstyle: note: --preset {preset}: {args.command} does not use "
          + ", ".join(map(_flag, names)) + " ("
          + "; ".join(GROUPS[g] for g in dropped) + "); dropped", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None):
  print(f"jaxstyle: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
  """Entry point of the ``jaxstyle`` command; returns the exit code."""
  argv = sys.argv[1:] if argv is None else list(argv)
  from jaxstyle import presets
  preset = preset_in(argv)
  # A known preset supplies the defaults; an unknown one is argparse's to refuse.
  parser = build_parser(presets.get(preset) if preset in presets.PRESETS else None)
  args = parser.parse_args(argv)
  args.given = _given(parser, args)
  if preset is not None:
    _note_dropped(preset, args)
  if args.command in ("stylize", "batch", "sweep", "reproduce", "demo", "train", "train-adain",
                      "apply", "video"):
    from jaxstyle import cache
    cache.enable()  # Repeated runs load their compiled programs instead of compiling.
  with warnings.catch_warnings():  # Restores the default display on the way out.
    warnings.showwarning = _show_warning
    # Whatever filters are in force, a user must hear that features are random.
    warnings.simplefilter("default", RandomWeightsWarning)
    try:
      code = args.run(args)
      sys.stdout.flush()  # Here, where a closed pipe can be caught, not at interpreter exit.
      return code
    except BrokenPipeError:  # `jaxstyle presets NAME | head`: the reader has all it wanted.
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
      return EXIT_BROKEN_PIPE
    except NonFiniteLossError as e:
      print(f"jaxstyle: error: {e}", file=sys.stderr)
      return EXIT_RUN_FAILED
    except JaxstyleError as e:
      print(f"jaxstyle: error: {e}", file=sys.stderr)
      return EXIT_BAD_INPUT
    except Interrupted as e:
      print(f"jaxstyle: {e}", file=sys.stderr)
      return EXIT_INTERRUPTED
    except KeyboardInterrupt:
      print("jaxstyle: interrupted", file=sys.stderr)
      return EXIT_INTERRUPTED


if __name__ == "__main__":
  sys.exit(main())
