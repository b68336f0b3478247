"""What every command's parser is made of: the parser, config fields as options, shared options.

A config field becomes an ``--option`` here, from the field itself (type,
default, help, group), so the CLI and the Python API cannot drift apart. The
options several commands share are declared once, below, and a command's
entry in :data:`jaxstyle.cli.table.COMMANDS` says which it takes.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from pathlib import Path

from jaxstyle.config import StyleConfig, unwrap_optional

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it.
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `yes | head` reports for yes.

# The StyleConfig groups (jaxstyle.config.GROUPS) the pixel and video commands honour;
# training's are jaxstyle.nets.train.OBJECTIVE_GROUPS. A clip runs one scale (each frame
# starts from the previous one); a single image has no temporal loss.
PIXEL_GROUPS = ("objective", "compute", "style_images", "color", "pixels", "scales")
VIDEO_GROUPS = ("objective", "compute", "style_images", "color", "pixels", "video")

# Options of the classic tools (neural-style, fast_neural_style, the Keras example) that
# jaxstyle names otherwise: a usage error that mentions one says what to write instead.
CLASSIC_NAMES = {
    "--original-colors": "--preserve-colors luminance",
    "--original_colors": "--preserve-colors luminance",
    "--image-size": "--size", "--image_size": "--size",
    "--num-iterations": "--iters", "--num_iterations": "--iters",
    "--init-image": "--init PATH", "--init_image": "--init PATH",
}


class Parser(argparse.ArgumentParser):
  """argparse, but a usage error is one line (and still exit code 2), with a hint where the
  user wrote a classic tool's name for an option (:data:`CLASSIC_NAMES`)."""

  def error(self, message):
    hints = [f"{old} is {new} here" for old, new in CLASSIC_NAMES.items()
             if re.search(rf"(^|\s){re.escape(old)}(\s|=|$)", message)]
    hint = f"; {', '.join(hints)}" if hints else ""
    self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def flag(dest: str) -> str:
  """The option an argparse destination comes from: ``style_weight`` -> ``--style-weight``."""
  return "--" + dest.replace("_", "-")


# ---- Config fields as options --------------------------------------------------------------


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
      parser.add_argument(flag(f.name), dest=f.name,
                          **_option_kwargs(f, hints[f.name], getattr(base, f.name), values))
  parser.set_defaults(**{groups_key(cls): tuple(groups)})


def add_field_option(parser: argparse.ArgumentParser, name: str, cls=StyleConfig) -> None:
  """One field's ``--option`` alone, declared by the field as :func:`add_config_options` does."""
  hints, base = typing.get_type_hints(cls), cls()
  f = next(f for f in dataclasses.fields(cls) if f.name == name)
  parser.add_argument(flag(name), dest=name, **_option_kwargs(f, hints[name], getattr(base, name),
                                                              dataclasses.asdict(base)))


def groups_key(cls) -> str:
  """Where :func:`add_config_options` leaves the groups of ``cls`` a command offered."""
  return f"_{cls.__name__}_groups"


def config_from_args(args: argparse.Namespace, cls=StyleConfig, **overrides):
  """Builds the config dataclass from parsed options (validating it).

  Takes the fields of the groups the command offered (:func:`add_config_options`);
  the others keep their defaults, even where ``args`` has an option of that name
  that belongs to another config of the same command (train's ``--lr`` is
  TrainConfig's, not StyleConfig's).
  """
  groups = getattr(args, groups_key(cls))
  values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.metadata["group"] in groups and hasattr(args, f.name)}
  return cls(**(values | overrides))


# ---- Presets ---------------------------------------------------------------------------------


def add_preset_option(parser: argparse.ArgumentParser) -> None:
  """``--preset NAME``: start from a published objective (see ``jaxstyle presets``)."""
  from jaxstyle.presets import PRESETS
  parser.add_argument("--preset", default=None, choices=list(PRESETS), metavar="NAME",
                      help="start from a published objective, options given explicitly "
                           "override it: " + ", ".join(PRESETS) + " (jaxstyle presets "
                           "describes them)")


def preset_in(argv: list[str]) -> str | None:
  """The value of ``--preset`` in argv, if any: it sets the other options' defaults."""
  for i, arg in enumerate(argv):
    if arg == "--preset" and i + 1 < len(argv):
      return argv[i + 1]
    if arg.startswith("--preset="):
      return arg.split("=", 1)[1]
  return None


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


# ---- Options several commands share ----------------------------------------------------------


def add_output_option(parser: argparse.ArgumentParser, metavar: str, help: str, *,
                      default: str | None = None) -> None:
  """``-o/--output``: where a command writes (required unless it has a ``default``)."""
  parser.add_argument("-o", "--output", required=default is None, default=default,
                      metavar=metavar, help=help)


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
  """``--quiet``: no progress bar (long runs show one on stderr by default)."""
  parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_distributed_option(parser: argparse.ArgumentParser, what: str) -> None:
  """``--distributed``: one of several processes/hosts, sharing the work as ``what`` says."""
  parser.add_argument("--distributed", default=None, metavar="auto|HOST:PORT,N,I",
                      help=f"run as one of several processes/hosts, {what}: auto-detect the "
                           "cluster, or name the coordinator, the process count and this "
                           "process's index (default: one process)")


def add_frame_selection(parser: argparse.ArgumentParser, whose: str = "of the input") -> None:
  """``--frames A:B`` and ``--every N``: which frames of a clip (video, video-metrics)."""
  parser.add_argument("--frames", default=None, metavar="A:B",
                      help=f"only frames A to B-1 {whose} (either may be empty)")
  parser.add_argument("--every", type=int, default=1, metavar="N",
                      help=f"every N-th frame {whose}, at 1/N of the frame rate (previews; "
                           "default: 1)")


NETWORK_OPTIONS = ("style_image", "style_size", "alpha", "batch")
"""What running a trained network takes beyond its model (dests of :func:`add_network_options`)."""


def add_network_options(parser: argparse.ArgumentParser, batch_help: str, *,
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


def given(parser: argparse.ArgumentParser, args) -> frozenset[str]:
  """The dests of the command's options whose values differ from their defaults (what the
  user set, a preset's values being the defaults)."""
  while True:  # Down to the parser of the command that runs (``weights convert``'s own).
    commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not commands:
      break
    parser = commands[0].choices[getattr(args, commands[0].dest)]
  return frozenset(a.dest for a in parser._actions
                   if a.option_strings and getattr(args, a.dest, a.default) != a.default)


def output_dir(path) -> Path:
  """``path`` as an output directory to be: refused (one line) if it is a file."""
  from jaxstyle.errors import JaxstyleError
  outdir = Path(path)
  if outdir.exists() and not outdir.is_dir():
    raise JaxstyleError(f"{outdir}: exists and is not a directory")
  return outdir
