"""Clips in and out: video files through ffmpeg (imageio-ffmpeg's own binary), or folders of frames.

A clip is read as uint8 RGB frames, resized so the longest side is ``size``,
optionally cut to ``frames A:B`` and thinned to every N-th frame; its frame
rate (divided by N) is kept for the output. Output frames are written one
PNG at a time into a folder (``OUT.frames/`` beside an output file, or OUT
itself when OUT is a folder), so a long run loses nothing when stopped and
resumes at the first missing frame; a video output is then encoded from
that folder, with the input's audio when it has any (dropped, with a
warning, where the container cannot carry it).

imageio-ffmpeg is used for its ffmpeg binary in the wheel: no system ffmpeg,
and frames stream through a pipe as raw RGB (no per-frame files when reading).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jaxstyle import images
from jaxstyle.errors import JaxstyleError
from jaxstyle.files import atomic_path

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif"}
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_FPS = 24.0  # For a folder of frames, which records none.


class VideoError(JaxstyleError):
  """A clip that cannot be read or written, named with the problem."""


class VideoWarning(UserWarning):
  """Something about a clip the user should hear (audio dropped, ...)."""


@contextlib.contextmanager
def _spawning():
  """Starting ffmpeg: JAX warns about every fork in its process, but this one execs at once."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    yield


def _ffmpeg():
  try:
    import imageio_ffmpeg
  except ImportError:
    raise VideoError("video needs imageio-ffmpeg and opencv-python-headless: "
                     "pip install 'jaxstyle[video]'") from None
  return imageio_ffmpeg


@dataclass(frozen=True)
class Clip:
  """A clip's frames (uint8 H x W x 3, all one size) and what an output must keep of it."""

  frames: list
  fps: float
  source: Path
  audio: bool
  indices: list  # Each frame's index in the source.


def parse_range(text: str | None) -> tuple[int, int | None]:
  """``"A:B"`` → (A, B) (B exclusive, either side may be empty); None → the whole clip."""
  if text is None:
    return 0, None
  match = re.fullmatch(r"(\d*):(\d*)", text)
  if not match:
    raise VideoError(f"--frames: expected A:B (frame indices, B exclusive, either may be "
                     f"empty), got {text!r}")
  start, stop = (int(g) if g else None for g in match.groups())
  if stop is not None and stop <= (start or 0):
    raise VideoError(f"--frames {text}: the range is empty")
  return start or 0, stop


def read_clip(src, *, size: int | None = None, frames: str | None = None,
              every: int = 1) -> Clip:
  """Reads a video file or a folder of numbered frames; VideoError naming it when it cannot."""
  src = Path(src)
  if every < 1:
    raise VideoError(f"--every: expected at least 1, got {every}")
  start, stop = parse_range(frames)
  if src.is_dir():
    raw, fps, audio = _read_folder(src, start, stop, every), DEFAULT_FPS, False
  elif not src.exists():
    raise VideoError(f"{src}: no such video file or folder of frames")
  else:
    raw, fps, audio = _read_file(src, start, stop, every)
  if not raw:
    raise VideoError(f"{src}: no frames" + (f" in --frames {frames}" if frames else ""))
  indices = [i for i, _ in raw]
  # images.fit, as every other input: Lanczos to the longest side, and a warning when a
  # frame is enlarged more than 4x.
  out = [images.fit(rgb, size, min_side=1, where=f"{src} (its frames)") for _, rgb in raw]
  return Clip(out, fps / every, src, audio, indices)


def probe(src, *, frames: str | None = None, every: int = 1) -> tuple[int, tuple[int, int]]:
  """How many frames :func:`read_clip` would read (with ``frames`` and ``every``) and their
  (height, width) before resizing, from the headers alone: what a memory check needs
  before any frame is decoded. A file's count is its duration times its frame rate (exact
  for constant-rate files, an estimate otherwise). Errors as :func:`read_clip`'s."""
  src = Path(src)
  start, stop = parse_range(frames)
  if src.is_dir():
    files = _numbered(src)
    if not files:
      raise VideoError(f"{src}: no frames (looked for " + ", ".join(sorted(FRAME_SUFFIXES)) + ")")
    total, shape = len(files), images.source_shape(files[0], what="frame")
    chosen = files[start:stop:every]
    sizes = {}
    for path in chosen:  # Headers only: a frame of another size is named now, not mid-clip.
      with Image.open(path) as frame:
        sizes[path] = frame.size
    for path in chosen[1:]:
      if sizes[path] != sizes[chosen[0]]:
        raise VideoError(f"{path}: frame size {sizes[path][0]}x{sizes[path][1]} differs from "
                         f"{chosen[0].name}'s {sizes[chosen[0]][0]}x{sizes[chosen[0]][1]}; a "
                         "clip's frames share one size")
  elif not src.exists():
    raise VideoError(f"{src}: no such video file or folder of frames")
  elif src.suffix.lower() == ".gif":
    try:
      with Image.open(src) as gif:
        total, shape = getattr(gif, "n_frames", 1), (gif.height, gif.width)
    except (OSError, ValueError) as e:
      raise VideoError(f"{src}: not a GIF Pillow can read ({_first_line(e)})") from None
  else:
    try:
      reader = _ffmpeg().read_frames(str(src))
      with _spawning():
        meta = next(reader)
      reader.close()
    except (OSError, RuntimeError, StopIteration) as e:
      raise VideoError(f"{src}: not a video ffmpeg can read ({_first_line(e)})") from None
    total = max(1, round(float(meta.get("duration") or 0) * float(meta.get("fps") or 0)))
    shape = (meta["size"][1], meta["size"][0])
  return len(range(total)[start:stop:every]), shape


def _numbered(folder: Path) -> list[Path]:
  """The folder's image files in the order of the numbers in their names."""
  files = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()]

  def key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]
  return sorted(files, key=key)


def _read_folder(folder: Path, start, stop, every):
  files = _numbered(folder)
  if not files:
    raise VideoError(f"{folder}: no frames (looked for " + ", ".join(sorted(FRAME_SUFFIXES))
                     + ")")
  chosen = list(range(len(files)))[start:stop:every]
  out, first = [], None
  for i in chosen:
    rgb = images.load_image(files[i], min_side=1)
    if first is None:
      first = (files[i], rgb.shape)
    elif rgb.shape != first[1]:
      raise VideoError(f"{files[i]}: frame size {rgb.shape[1]}x{rgb.shape[0]} differs from "
                       f"{first[0].name}'s {first[1][1]}x{first[1][0]}; a clip's frames share "
                       "one size")
    out.append((i, rgb))
  return out


def _read_gif(path: Path, start, stop, every):
  """GIF frames by Pillow: each frame once (ffmpeg resamples GIFs to a constant rate)."""
  from PIL import ImageSequence
  try:
    with Image.open(path) as gif:
      duration = gif.info.get("duration") or 1000 / DEFAULT_FPS
      frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
  except (OSError, ValueError) as e:
    raise VideoError(f"{path}: not a GIF Pillow can read ({_first_line(e)})") from None
  chosen = list(range(len(frames)))[start:stop:every]
  return [(i, frames[i]) for i in chosen], 1000.0 / duration, False


def _read_file(path: Path, start, stop, every):
  if path.suffix.lower() == ".gif":
    return _read_gif(path, start, stop, every)
  ffmpeg = _ffmpeg()
  try:
    # Each frame the file holds, once: by default ffmpeg would duplicate and drop frames of
    # a variable-rate file (phones write them) to a constant rate, miscounting --frames.
    # ffmpeg applies a rotation tag itself, and imageio-ffmpeg reports the turned size.
    reader = ffmpeg.read_frames(str(path), output_params=["-fps_mode", "passthrough"])
    with _spawning():
      meta = next(reader)
  except (OSError, RuntimeError, StopIteration) as e:
    raise VideoError(f"{path}: not a video ffmpeg can read ({_first_line(e)})") from None
  w, h = meta["size"]
  out = []
  try:
    for i, buffer in enumerate(reader):
      if stop is not None and i >= stop:
        break
      if i >= start and (i - start) % every == 0:
        out.append((i, np.frombuffer(buffer, np.uint8).reshape(h, w, 3).copy()))
  except (OSError, RuntimeError) as e:
    raise VideoError(f"{path}: cannot decode its frames ({_first_line(e)})") from None
  finally:
    reader.close()
  return out, float(meta.get("fps") or DEFAULT_FPS), has_audio(path)


def _first_line(e: BaseException) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0]


def has_audio(path) -> bool:
  """Whether ffmpeg sees an audio stream in ``path``."""
  exe = _ffmpeg().get_ffmpeg_exe()
  with _spawning():
    proc = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
  return bool(re.search(r"Stream #\S+.*: Audio:", proc.stderr))


def is_video_path(path) -> bool:
  """Whether an output path names a video file (else it is a folder of frames)."""
  return Path(path).suffix.lower() in VIDEO_SUFFIXES


def frames_dir(out) -> Path:
  """Where an output's frames go: OUT itself for a folder, ``OUT.frames/`` beside a video file."""
  out = Path(out)
  return out.with_name(out.name + ".frames") if is_video_path(out) else out


def frame_path(folder: Path, index: int) -> Path:
  return folder / f"frame_{index:06d}.png"


def write_frame(folder: Path, index: int, rgb: np.ndarray, text: dict | None = None) -> Path:
  """Writes one output frame atomically (a kill leaves it whole or absent)."""
  path = frame_path(folder, index)
  images.save_image(path, rgb, text=text)
  return path


def first_missing(folder: Path, count: int) -> int:
  """The first of ``count`` frames not yet written in ``folder`` (``count`` if none is missing)."""
  return next((i for i in range(count) if not frame_path(folder, i).exists()), count)


def encode(folder: Path, count: int, out, *, fps: float, audio_from=None) -> Path:
  """Encodes frames 0..count-1 of ``folder`` into the video file ``out`` (atomically).

  H.264 in yuv420p (what players expect) for mp4/mov/mkv, VP9 for webm, a
  looping GIF (by Pillow) for gif. With ``audio_from`` (the input clip), its audio is
  copied in, cut to the video's length; GIF cannot carry it (warned).
  """
  ffmpeg = _ffmpeg()
  out = Path(out)
  first = np.asarray(Image.open(frame_path(folder, 0)).convert("RGB"))
  h, w = first.shape[:2]
  suffix = out.suffix.lower()
  codec = {".webm": "libvpx-vp9"}.get(suffix)
  audio_path = None
  if audio_from is not None:
    if suffix == ".gif":
      warnings.warn(f"{out}: a GIF has no audio track; the input's audio is dropped",
                    VideoWarning, stacklevel=2)
    else:
      audio_path = str(audio_from)
  if suffix == ".gif":  # Pillow writes GIFs with a proper palette per frame; ffmpeg's is poor.
    frames = [Image.open(frame_path(folder, i)).convert("RGB") for i in range(count)]
    with atomic_path(out, suffix=suffix) as tmp:
      frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                     duration=round(1000 / fps), loop=0)
    return out
  with atomic_path(out, suffix=suffix) as tmp:
    kwargs = dict(fps=fps, codec=codec, macro_block_size=1, ffmpeg_log_level="error",
                  pix_fmt_out="yuv420p")
    if audio_path:
      # Cut the audio to the frames' duration (-shortest drops the last frame).
      kwargs.update(audio_path=audio_path, audio_codec="aac",
                    output_params=["-t", f"{count / fps:.6f}"])
    writer = ffmpeg.write_frames(str(tmp), (w, h), **kwargs)
    try:
      with _spawning():
        writer.send(None)
      for i in range(count):
        rgb = np.asarray(Image.open(frame_path(folder, i)).convert("RGB"))
        writer.send(np.ascontiguousarray(rgb).tobytes())
    except (OSError, RuntimeError) as e:
      raise VideoError(f"{out}: ffmpeg could not encode it ({_first_line(e)})") from None
    finally:
      writer.close()
  return out
