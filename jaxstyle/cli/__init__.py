"""The ``jaxstyle`` command line; thin: parsing, files and messages only.

Its spine is one table of commands (:mod:`jaxstyle.cli.table`): each declares
its options (config field groups, shared options, its own) and its handler,
which lives in the module of its kind: :mod:`~jaxstyle.cli.pixels` (stylize,
batch, sweep, reproduce, demo), :mod:`~jaxstyle.cli.networks` (train,
train-adain, models, apply), :mod:`~jaxstyle.cli.video` (video,
video-metrics), :mod:`~jaxstyle.cli.tools` (weights, presets, bench).
Options come from :class:`jaxstyle.StyleConfig`'s fields
(:mod:`~jaxstyle.cli.options`), so the CLI and the Python API cannot drift
apart. Bad input ends with one line on stderr and exit code 2
(:mod:`~jaxstyle.cli.main`).
"""

from jaxstyle.cli.main import main
from jaxstyle.cli.options import (EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_INTERRUPTED,
                                  EXIT_RUN_FAILED, NETWORK_OPTIONS, PIXEL_GROUPS, VIDEO_GROUPS,
                                  add_config_options, add_field_option, config_from_args, flag,
                                  preset_in)
from jaxstyle.cli.table import COMMANDS, build_parser

__all__ = ["COMMANDS", "EXIT_BAD_INPUT", "EXIT_BROKEN_PIPE", "EXIT_INTERRUPTED",
           "EXIT_RUN_FAILED", "NETWORK_OPTIONS", "PIXEL_GROUPS", "VIDEO_GROUPS",
           "add_config_options", "add_field_option", "build_parser", "config_from_args", "flag",
           "main", "preset_in"]
