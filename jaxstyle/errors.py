"""Exceptions that carry a one-line, user-facing message.

Everything the CLI turns into ``exit 2`` derives from :class:`JaxstyleError`;
the message names the file (or option) and the problem, so the CLI can print
it as is, with no traceback.
"""

from __future__ import annotations


class JaxstyleError(Exception):
  """Base class: a problem with the user's input, explained in one line."""


class ImageError(JaxstyleError):
  """An image file is missing, unreadable, or unusable."""


class WeightsError(JaxstyleError):
  """A weights file is missing, malformed, or does not match VGG19."""


class ConfigError(JaxstyleError):
  """An option has a value that cannot work (unknown layer, bad size...)."""


class NonFiniteLossError(JaxstyleError):
  """The objective became NaN or inf; ``image`` holds the last finite image.

  Attributes:
    image: uint8 HxWx3, the last iterate whose objective was finite.
    iteration: the number of completed iterations at that image.
  """

  def __init__(self, message: str, *, image=None, iteration: int = 0):
    super().__init__(message)
    self.image = image
    self.iteration = iteration


class Interrupted(KeyboardInterrupt):
  """The run was interrupted (Ctrl-C) and stopped at a chunk boundary.

  A KeyboardInterrupt, so code that does not know it still stops.

  Attributes:
    images: uint8 HxWx3 per member, the images at the interruption.
    iteration: iterations completed (at the scale being run).
    checkpoint: the checkpoint written, from which ``resume`` continues.
  """

  def __init__(self, message: str, *, images=(), iteration: int = 0, checkpoint=None):
    super().__init__(message)
    self.images = list(images)
    self.iteration = iteration
    self.checkpoint = checkpoint
