"""``jaxstyle``'s entry point: parse by the command table, run the handler, map errors to exit
codes (bad input 2, a failed run 1, interrupted 130, a closed pipe 141) with one line each."""

from __future__ import annotations

import os
import sys
import warnings

from jaxstyle.cli.options import (EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_INTERRUPTED,
                                  EXIT_RUN_FAILED, dropped_preset_fields, flag, given,
                                  groups_key, preset_in)
from jaxstyle.cli.table import COMPILING, build_parser
from jaxstyle.config import StyleConfig
from jaxstyle.errors import Interrupted, JaxstyleError, NonFiniteLossError
from jaxstyle.vgg.weights import RandomWeightsWarning


def _note_dropped(preset: str, args) -> None:
  """One line naming the preset's settings this command cannot honour, and why."""
  from jaxstyle.config import GROUPS
  from jaxstyle.presets import get
  groups = getattr(args, groups_key(StyleConfig), None)
  dropped = dropped_preset_fields(get(preset), groups) if groups is not None else {}
  if dropped:
    names = [n for fields in dropped.values() for n in fields]
    print(f"jaxstyle: note: --preset {preset}: {args.command} does not use "
          + ", ".join(map(flag, names)) + " ("
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
  args.given = given(parser, args)
  if preset is not None:
    _note_dropped(preset, args)
  if args.command in COMPILING:
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
