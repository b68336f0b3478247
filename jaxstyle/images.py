"""Reading and writing images: RGB uint8 H x W x 3 arrays, written atomically."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxstyle.errors import ImageError
from jaxstyle.files import atomic_path

MIN_SIDE = 16  # Four 2x2 poolings before block5: a smaller side vanishes.
MAX_ENLARGEMENT = 4.0  # Resizing up by more than this warns.
MAX_PIXELS = 1 << 28  # Refuse decompression bombs well before they eat memory.


class ImageWarning(UserWarning):
  """An image was usable but changed on reading (transparency, colour profile)."""


def load_image(path, *, size: int | None = None, min_side: int = MIN_SIDE) -> np.ndarray:
  """Reads an image as sRGB uint8 H x W x 3, optionally resized.

  Any mode Pillow reads is accepted: grey, palette, CMYK and 16-bit images
  are converted (16-bit keeps its top 8 bits); EXIF orientation is applied;
  an embedded ICC profile other than sRGB is converted to sRGB; transparency
  is composited on white, with an :class:`ImageWarning` saying so. With
  ``size``, the longest side is resized to ``size`` (Lanczos), keeping the
  aspect ratio. Images whose shorter side ends up below ``min_side`` are
  refused (VGG19 cannot pool them four times).

  Raises:
    ImageError: naming the file and the problem (missing, a directory, empty,
      not an image, truncated, too small or too large).
  """
  path = Path(path)
  if not path.exists():
    raise ImageError(f"{path}: no such file")
  if path.is_dir():
    raise ImageError(f"{path}: is a directory, expected an image file")
  if path.stat().st_size == 0:
    raise ImageError(f"{path}: empty file")
  try:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      # Pillow warns from 89 Mpx and refuses from 179; apply --tile takes such photos (a 12000
      # x 8000 one is 96 Mpx), so its refusal is the limit, not its warning.
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(path) as img:
        if img.width * img.height > MAX_PIXELS:
          raise ImageError(f"{path}: {img.width}x{img.height} exceeds the limit of "
                           f"{MAX_PIXELS} pixels")
        img = ImageOps.exif_transpose(img)
        img.load()
    for w in caught:  # Pillow's own warnings ("Corrupt EXIF data"...), said with the file name.
      warnings.warn(f"{path}: {' '.join(str(w.message).split())}", ImageWarning, stacklevel=2)
  except UnidentifiedImageError:
    raise ImageError(f"{path}: not an image file (or a format Pillow cannot read)") from None
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise ImageError(f"{path}: too large to be safe to decode ({e})") from None
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageError(f"{path}: truncated or corrupt image ({e})") from None
  rgb = np.asarray(_to_rgb(img, path), np.uint8)
  return fit(rgb, size, min_side=min_side, where=str(path))


def _to_rgb(img: Image.Image, path) -> Image.Image:
  profile = img.info.get("icc_profile")
  if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
    rgba = img.convert("RGBA")
    if np.asarray(rgba.getchannel("A")).min() < 255:
      warnings.warn(f"{path}: has transparency; composited on white", ImageWarning,
                    stacklevel=3)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, rgba).convert("RGB")
  elif img.mode.startswith("I;16") or img.mode == "I":
    array = np.asarray(img, np.uint32) >> 8  # 16-bit grey: keep the top 8 bits.
    img = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
  elif img.mode == "P":
    img = img.convert("RGB")
  if profile:
    img = _to_srgb(img, profile, path)
  return img.convert("RGB")


def _to_srgb(img: Image.Image, profile: bytes, path) -> Image.Image:
  """Converts an image tagged with an ICC profile to sRGB (unchanged if already sRGB)."""
  from PIL import ImageCms
  try:
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    if ImageCms.getProfileDescription(source).strip().lower().startswith("srgb"):
      return img  # Already sRGB: a round trip through lcms would only add rounding.
    return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"),
                                     outputMode="RGB")
  except (OSError, ValueError, ImageCms.PyCMSError) as e:
    warnings.warn(f"{path}: its embedded colour profile could not be applied ({e}); "
                  "colours are used as stored", ImageWarning, stacklevel=4)
    return img


def fitted_shape(shape_HxW, size: int | None) -> tuple[int, int]:
  """(height, width) after resizing the longest side to ``size`` (None: unchanged)."""
  height, width = shape_HxW
  if size is None or max(height, width) == size:
    return height, width
  scale = size / max(height, width)
  return max(1, round(height * scale)), max(1, round(width * scale))


def fit(rgb_HxWx3: np.ndarray, size: int | None, *, min_side: int = MIN_SIDE,
        where: str = "image") -> np.ndarray:
  """Resizes so the longest side is ``size`` px (aspect kept); checks the shorter side.

  Enlarging more than :data:`MAX_ENLARGEMENT` times warns (an
  :class:`ImageWarning` naming the image and the factor): the result is a
  blur of a few pixels, rarely what was meant.

  Raises:
    ImageError: if the result is smaller than ``min_side`` on a side.
  """
  height, width = fitted_shape(rgb_HxWx3.shape[:2], size)
  factor = max(height, width) / max(rgb_HxWx3.shape[:2])
  if factor > MAX_ENLARGEMENT:
    warnings.warn(f"{where}: enlarged {factor:.1f}x, from {rgb_HxWx3.shape[1]}x"
                  f"{rgb_HxWx3.shape[0]} to {width}x{height} px; it will be a blur (pass a "
                  "larger image or a smaller --size)", ImageWarning, stacklevel=2)
  if (height, width) != rgb_HxWx3.shape[:2]:
    rgb_HxWx3 = resize_array(rgb_HxWx3, height, width)
  if min(height, width) < min_side:
    raise ImageError(f"{where}: {width}x{height} is too small; VGG19 needs at least "
                     f"{min_side} px on each side")
  return rgb_HxWx3


def source_shape(image, *, what: str) -> tuple[int, int]:
  """(height, width) of an image file or array as given, before any resizing."""
  if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
    return load_image(image, min_side=1).shape[:2]
  return as_rgb(image, None, what=what, min_side=1).shape[:2]


def as_rgb(image, size: int | None, *, what: str, min_side: int = MIN_SIDE) -> np.ndarray:
  """An image file or a uint8 RGB array, fitted to ``size`` (see :func:`fit`)."""
  if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
    return load_image(image, size=size, min_side=min_side)
  array = np.asarray(image)
  if array.ndim != 3 or array.shape[-1] != 3:
    raise ImageError(f"{what} image: expected an H x W x 3 RGB array, got shape {array.shape}")
  if array.dtype != np.uint8:
    raise ImageError(f"{what} image: expected uint8 values 0-255, got {array.dtype}")
  return fit(array, size, min_side=min_side, where=f"{what} image")


def resize_array(rgb_HxWx3: np.ndarray, height: int, width: int) -> np.ndarray:
  """Lanczos-resizes a uint8 RGB array to height x width."""
  img = Image.fromarray(np.asarray(rgb_HxWx3, np.uint8))
  return np.asarray(img.resize((width, height), Image.Resampling.LANCZOS), np.uint8)


def load_mask(path, height: int, width: int) -> np.ndarray:
  """A mask image as float32 H x W in [0, 1] (white 1, black 0), resized to height x width.

  Colour masks count by their mean over R, G, B; the mask's own aspect ratio
  is not kept, it is stretched over the content image it refers to.
  """
  rgb = load_image(path, min_side=1)
  return resize_array(rgb, height, width).mean(-1).astype(np.float32) / 255.0


def check_output_path(path) -> Path:
  """Fails fast, before any compute, if ``path`` cannot be written as an image."""
  path = Path(path)
  parent = path.parent if str(path.parent) else Path(".")
  if path.is_dir():
    raise ImageError(f"{path}: is a directory, expected an output image file name")
  if not parent.is_dir():
    raise ImageError(f"{path}: directory {parent} does not exist")
  extension = path.suffix.lower()
  if extension not in Image.registered_extensions():
    raise ImageError(f"{path}: unknown image extension {extension or '(none)'!r}; use .png")
  return path


def save_image(path, rgb_HxWx3, *, text: dict[str, str] | None = None) -> None:
  """Writes uint8 RGB atomically; ``text`` becomes PNG text chunks (provenance)."""
  from PIL import PngImagePlugin

  path = check_output_path(path)
  img = Image.fromarray(np.asarray(rgb_HxWx3, np.uint8))
  options = {}
  if text and path.suffix.lower() == ".png":
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
      info.add_itxt(key, value)
    options["pnginfo"] = info
  with atomic_path(path, suffix=path.suffix) as tmp:
    img.save(tmp, format=Image.registered_extensions()[path.suffix.lower()], **options)
