"""Every ``jaxstyle`` command in one table, and the parser built from it.

A :class:`Command` declares its name, help, the config field groups it
offers (:class:`Fields`), the shared options it takes (``-o``, ``--quiet``,
``--preset``, ``--distributed``), its own arguments and its handler. The parser,
the list of commands that compile JAX programs (and so use the persistent
compile cache) and ``jaxstyle --help`` all come from :data:`COMMANDS`.

To add a command: write ``NAME_arguments(parser, base)`` and ``NAME(args) -> exit
code`` in the module of its kind (pixels, networks, video, tools) and one
``Command`` here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from jaxstyle.cli import networks, pixels, tools, video
from jaxstyle.cli.options import (PIXEL_GROUPS, VIDEO_GROUPS, Parser, add_config_options,
                                  add_distributed_option, add_output_option, add_preset_option,
                                  add_quiet_option)
from jaxstyle.config import StyleConfig


@dataclass(frozen=True)
class Fields:
  """Config fields a command offers as options: the fields of ``cls`` in ``groups``.

  Their defaults are ``defaults(preset)``, where ``preset`` is the config of
  ``--preset`` or None; without ``defaults``, the preset's (else StyleConfig's
  own) for StyleConfig and the class's own otherwise. ``skip`` names fields the
  command declares its own way.
  """

  groups: tuple[str, ...]
  cls: type = StyleConfig
  defaults: Callable | None = None
  skip: tuple[str, ...] = ()

  def add(self, parser: argparse.ArgumentParser, preset: StyleConfig | None) -> None:
    if self.defaults is not None:
      instance = self.defaults(preset)
    else:
      instance = (preset or StyleConfig()) if self.cls is StyleConfig else self.cls()
    add_config_options(parser, self.cls, groups=self.groups, skip=self.skip, base=instance)


@dataclass(frozen=True)
class Command:
  """One ``jaxstyle`` command.

  Attributes:
    name: as typed; ``"weights convert"`` is ``convert`` in the ``weights`` group
      (:data:`GROUP_HELP`).
    help: one line, for ``jaxstyle --help``.
    run: ``args -> exit code``; raises :class:`~jaxstyle.errors.JaxstyleError` for bad input.
    arguments: ``(parser, base) -> None``: the command's own arguments (``base``: the
      preset's config, else StyleConfig's defaults).
    description: the paragraph of ``jaxstyle NAME --help`` (default: ``help``).
    output: ``(METAVAR, help)`` of ``-o/--output``, or None for a command that takes none.
    output_default: ``-o``'s default; None makes ``-o`` required.
    quiet: takes ``--quiet`` (it shows a progress bar).
    preset: takes ``--preset`` (its options' defaults come from the preset).
    distributed: what each of several processes does, for ``--distributed``'s help; None:
      one process only.
    fields: the config fields it offers.
    compiles: runs JAX programs, so the persistent compile cache is turned on for it.
  """

  name: str
  help: str
  run: Callable[[argparse.Namespace], int]
  arguments: Callable | None = None
  description: str | None = None
  output: tuple[str, str] | None = None
  output_default: str | None = None
  quiet: bool = False
  preset: bool = False
  distributed: str | None = None
  fields: tuple[Fields, ...] = ()
  compiles: bool = False

  def add_to(self, commands, preset: StyleConfig | None) -> argparse.ArgumentParser:
    parser = commands.add_parser(self.name.split()[-1], help=self.help,
                                 description=self.description or self.help)
    if self.arguments is not None:
      self.arguments(parser, preset or StyleConfig())
    if self.output is not None:
      add_output_option(parser, *self.output, default=self.output_default)
    if self.quiet:
      add_quiet_option(parser)
    if self.distributed is not None:
      add_distributed_option(parser, self.distributed)
    if self.preset:
      add_preset_option(parser)
    for fields in self.fields:
      fields.add(parser, preset)
    parser.set_defaults(run=self.run)
    return parser


def _training_objective(preset):
  """Training's objective defaults: the preset's, else Johnson's perceptual-vgg16."""
  from jaxstyle import presets
  return preset or presets.perceptual_vgg16()


def _training_fields(architecture: str) -> tuple[Fields, ...]:
  from jaxstyle.nets.train import OBJECTIVE_GROUPS, TrainConfig
  if architecture == "adain":
    from jaxstyle.nets.train_adain import ADAIN_TRAINING, objective_config
    return (Fields(("training",), TrainConfig, defaults=lambda preset: ADAIN_TRAINING),
            Fields(OBJECTIVE_GROUPS, defaults=lambda preset: objective_config()))
  return (Fields(("training", "johnson"), TrainConfig),
          Fields(OBJECTIVE_GROUPS, defaults=_training_objective))


GROUP_HELP = {
    "weights": "download, convert and inspect VGG19 / VGG16 weights",
    "models": "convert, inspect and export trained feed-forward style networks",
    "bench": "measure this machine (convolution algorithms)",
}
"""The command groups (``jaxstyle weights convert``): name and help."""


def _commands() -> tuple[Command, ...]:
  return (
      Command(
          "stylize", "stylize a content photo with a style image", pixels.stylize,
          pixels.stylize_arguments,
          "Optimise an image so its VGG19 features match CONTENT's and its Gram matrices "
          "match STYLE's (Gatys et al. 2016).",
          output=("OUT.png", "output image; written atomically, with its provenance as PNG "
                             "text"),
          quiet=True, preset=True, fields=(Fields(PIXEL_GROUPS),), compiles=True),
      Command(
          "batch", "many stylizations of one photo in one compiled program", pixels.batch,
          pixels.batch_arguments,
          "Runs every combination of the listed styles, loss weights and seeds (or, with "
          "--zip, the lists side by side) as members of one compiled program, sharded over "
          "all local devices. Writes one PNG per member.",
          output=("OUTDIR", "output directory (created if missing)"), quiet=True, preset=True,
          distributed="each taking every N-th member",
          fields=(Fields(PIXEL_GROUPS, skip=tuple(pixels.MEMBER_LISTS)),), compiles=True),
      Command(
          "sweep", "run a sweep declared in a TOML file, resumably", pixels.sweep,
          pixels.sweep_arguments,
          "Runs the members a sweep file declares (see jaxstyle/sweep.py), batching those "
          "that share a program, appends one JSON line per member to RUNDIR/records.jsonl, "
          "skips members already recorded, and writes RUNDIR/contact_sheet.png and "
          "RUNDIR/loss_curves.png.",
          output=("RUNDIR", "run directory: images, records.jsonl, contact sheet (created; a "
                            "rerun skips the members already recorded there)"),
          quiet=True, distributed="each taking every N-th member", compiles=True),
      Command(
          "reproduce", "re-run the stylization recorded in an output PNG", pixels.reproduce,
          pixels.reproduce_arguments,
          "Reads the provenance record of a jaxstyle PNG, checks that the inputs and weights "
          "are the recorded ones, runs it again and reports whether the new image is "
          "byte-identical.",
          output=("AGAIN.png", "where to write the re-run's image"), quiet=True, compiles=True),
      Command(
          "weights convert", "convert Keras .h5 or torchvision .pth VGG19/VGG16 weights to "
          "jaxstyle's format (the network is recognised from the file)", tools.weights_convert,
          tools.weights_convert_arguments),
      Command(
          "weights download", "download the Keras VGG19 (or VGG16) weights, check the md5 and "
          "convert them", tools.weights_download, tools.weights_download_arguments),
      Command("weights info", "layers, shapes, convention, source, checksum", tools.weights_info,
              tools.weights_info_arguments),
      Command(
          "demo", "stylize the example images and plot the losses", pixels.demo,
          pixels.demo_arguments,
          "Stylizes a sample photo with a sample painting from ../shared/images (or generated "
          "images when absent) and writes the result, a comparison strip and a loss plot. "
          "Without pretrained weights it runs on random features and says so.",
          output=("DIR", "output directory (default: demo_out)"), output_default="demo_out",
          quiet=True, preset=True, fields=(Fields(PIXEL_GROUPS, skip=("size", "iters")),),
          compiles=True),
      Command(
          "train", "train a feed-forward network on photos, for one or more styles",
          networks.train, networks.train_arguments,
          "Trains Johnson's network (one style image: a single-style network; several: one "
          "network with conditional instance norm) on every image under --data, with "
          "jaxstyle's objective (default: the perceptual-vgg16 preset, Johnson's; --preset "
          "and the loss options change it). Writes MODEL_DIR (model.safetensors, "
          "model.json), checkpoints/, samples/, metrics.jsonl and loss.png.",
          output=networks.MODEL_DIR_OUTPUT, quiet=True, preset=True,
          distributed=networks.TRAIN_SPLIT, fields=_training_fields("johnson"), compiles=True),
      Command(
          "train-adain", "train an AdaIN network: any style image, one forward pass",
          networks.train_adain, networks.train_adain_arguments,
          "Trains the decoder of Huang & Belongie's AdaIN network (frozen VGG19 encoder to "
          "relu4_1) on the photos under --data and the paintings under --styles, with "
          "jaxstyle's objective (default: their loss, mean/std style statistics at "
          "relu1_1..relu4_1, content against the AdaIN target at relu4_1) and their "
          "schedule. Writes MODEL_DIR as train does; apply it with jaxstyle apply MODEL_DIR "
          "PHOTO --style-image PAINTING.",
          output=networks.MODEL_DIR_OUTPUT, quiet=True, distributed=networks.TRAIN_SPLIT,
          fields=_training_fields("adain"), compiles=True),
      Command(
          "models convert", "import a PyTorch examples fast_neural_style TransformerNet .pth "
          "(candy.pth, mosaic.pth, ...) as a jaxstyle model directory", networks.models_convert,
          networks.models_convert_arguments),
      Command(
          "models info", "a model in a few lines: architecture, styles, training, versions",
          networks.models_info, networks.models_info_arguments,
          "Loads MODEL_DIR (checking model.safetensors against the sha256 in model.json) and "
          "summarises it; --json prints the whole model.json."),
      Command(
          "models export", "a model as ONNX (any image size), and as a page that stylizes "
          "in the browser", networks.models_export, networks.models_export_arguments,
          "Writes MODEL_DIR's network as one ONNX file (-o) whose height and width are free "
          "(any side from 16 px): inputs image (N x H x W x 3, RGB 0-255, float32), and mix "
          "(N x styles) for a network of several styles, or style (1 x Hs x Ws x 3) and alpha "
          "for AdaIN; output stylized, RGB 0-255. --web DIR writes a static page around it "
          "with onnxruntime-web, which works offline; index.html?photo=URL stylizes on load.",
          output=("FILE.onnx", "the ONNX file to write"), output_default="", compiles=True),
      Command(
          "serve", "serve a page written by models export --web on this machine",
          tools.serve, tools.serve_arguments,
          "A static file server for DIR with the headers onnxruntime-web needs for threads "
          "(cross-origin isolation) and the right types for .mjs and .wasm."),
      Command(
          "apply", "stylize photos with a trained network, one forward pass each",
          networks.apply, networks.apply_arguments,
          "Runs each image through a model directory's network (any size: sides are padded "
          "to a multiple of 4 and cropped back) and writes OUTDIR/NAME.png with its "
          "provenance (model sha256, style weights, input).",
          output=("OUTDIR", "output directory (created): OUTDIR/NAME.png for each IMAGE"),
          quiet=True, compiles=True),
      Command(
          "video", "stylize a clip: by optimisation with temporal consistency, or by a network",
          video.video, video.video_arguments,
          "Stylizes every frame of IN (a video file ffmpeg reads, or a folder of numbered "
          "frames) into OUT (mp4/webm/gif, or a folder), keeping the frame rate and the "
          "audio. With --style, by optimisation with Ruder et al.'s temporal consistency "
          "(each frame starts from the previous one warped by the optical flow, plus their "
          "temporal loss; --temporal-weight 0 stylizes each frame alone). With --model, by a "
          "trained network. Frames are written as they finish (OUT.frames/ beside a video "
          "file); rerunning resumes at the first missing one. Prints the warping error "
          "(flicker) at the end.",
          output=("OUT", "a video file (.mp4, .webm, .gif) or a folder of frames"), quiet=True,
          preset=True, fields=(Fields(VIDEO_GROUPS, defaults=video.video_defaults,
                                      skip=("size",)),), compiles=True),
      Command(
          "video-metrics", "flicker of a stylized clip: its warping error against its input",
          video.video_metrics, video.video_metrics_arguments,
          "Lai et al.'s (ECCV 2018) warping error: the mean over consecutive frames of the "
          "squared difference (RGB in [0, 1]) between output frame t and output frame t-1 "
          "warped by the input's optical flow, over the pixels the input's forward-backward "
          "check finds unoccluded. Scores the frames a viewer sees (a video file's decoded "
          "frames), as jaxstyle video does. Lower is steadier."),
      Command(
          "presets", "list the presets (published objectives) or show one's settings",
          tools.presets, tools.presets_arguments,
          "Presets write the objectives of the classic papers and tools as configs; use one "
          "with --preset NAME."),
      Command(
          "bench convs", "time each style-network layer's convolution algorithms; show and "
          "cache the choices --conv auto makes", tools.bench_convs, tools.bench_convs_arguments,
          "Times every exact algorithm for each distinct convolution of Johnson's net and the "
          "AdaIN decoder, applied (one --size image) and training (--batch x --crop), and "
          "VGG's sets of Winograd layers on the whole objective (stylize's default at --size, "
          "training's perceptual loss at --crop), prints the table and keeps the choices in "
          "the cache that --conv auto reads. Cached ones are shown as cached; --refresh times "
          "them again.", compiles=True),
  )


COMMANDS = _commands()
"""Every command, in ``jaxstyle --help``'s order."""

COMPILING = frozenset(c.name.split()[0] for c in COMMANDS if c.compiles)
"""The commands (first words) that run JAX programs: the compile cache is on for these."""


def build_parser(preset: StyleConfig | None = None) -> argparse.ArgumentParser:
  """The whole ``jaxstyle`` parser, from :data:`COMMANDS`; ``preset`` (a config) gives the
  defaults of the commands that take ``--preset``."""
  import jaxstyle
  parser = Parser(prog="jaxstyle", description="Neural style transfer in JAX (Gatys et al.).")
  parser.add_argument("--version", action="version", version=f"jaxstyle {jaxstyle.__version__}")
  commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
  groups = {}
  for command in COMMANDS:
    if " " in command.name:
      group = command.name.split()[0]
      if group not in groups:
        groups[group] = commands.add_parser(group, help=GROUP_HELP[group]).add_subparsers(
            dest=f"{group}_command", required=True, parser_class=Parser)
      command.add_to(groups[group], preset)
    else:
      command.add_to(commands, preset)
  return parser
