"""Training photos: every image under a folder, cropped, in a seeded order that resumes.

The order of epoch e is a permutation drawn from ``(seed, e)`` alone, so the
batch at any step is known without replaying the ones before: a resumed run
reads exactly what an uninterrupted one would. Each photo is resized so its
shorter side is ``crop`` and centre-cropped to ``crop`` x ``crop`` (as the
PyTorch fast_neural_style example prepares COCO). A file that cannot be read
is skipped with one warning line naming it (the next photo in the order takes
its place), never the end of a long run.

Loading runs in a background thread (:class:`Prefetch`), a few batches
ahead, so decoding overlaps the compiled step: Pillow decodes and resizes
with the GIL released, and a thread shares memory with the step where worker
processes (grain's model) would pickle every batch across, for no gain on
the 2-8 cores a single-machine run has.
"""

from __future__ import annotations

import queue
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from jaxstyle import images
from jaxstyle.errors import ConfigError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def image_files(folder) -> list[Path]:
  """Every image file under ``folder`` (recursive, by extension), sorted; ConfigError if none."""
  folder = Path(folder)
  if not folder.is_dir():
    raise ConfigError(f"{folder}: no such folder of training images")
  files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
  if not files:
    raise ConfigError(f"{folder}: no images found (looked for "
                      + ", ".join(sorted(EXTENSIONS)) + ", recursively)")
  return files


def crop_square(rgb_HxWx3: np.ndarray, crop: int) -> np.ndarray:
  """Resized so the shorter side is ``crop``, then the centre ``crop`` x ``crop``."""
  h, w = rgb_HxWx3.shape[:2]
  scale = crop / min(h, w)
  nh, nw = max(crop, round(h * scale)), max(crop, round(w * scale))
  img = Image.fromarray(rgb_HxWx3).resize((nw, nh), Image.Resampling.LANCZOS)
  top, left = (nh - crop) // 2, (nw - crop) // 2
  return np.asarray(img, np.uint8)[top:top + crop, left:left + crop]


class Photos:
  """The training set: ``photos.batch(step)`` is the same uint8 B x crop x crop x 3 every time."""

  def __init__(self, folder, *, crop: int, batch: int, seed: int):
    self.files = image_files(folder)
    self.crop, self.batch_size, self.seed = crop, batch, seed
    self._bad: set[Path] = set()
    self._order: tuple[int, np.ndarray] | None = None  # The last epoch's, drawn once.

  def order(self, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s permutation of the files, from (seed, epoch) alone."""
    if self._order is None or self._order[0] != epoch:
      self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.files))
    return self._order[1]

  def _load(self, path: Path):
    if path in self._bad:
      return None
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # A training photo's oddities are not the user's concern.
        return crop_square(images.load_image(path, min_side=1), self.crop)
    except images.ImageError as e:
      self._bad.add(path)
      warnings.warn(f"skipping {e}", images.ImageWarning, stacklevel=2)
      return None

  def batch(self, step: int) -> np.ndarray:
    """The photos of training step ``step``: positions step·B … step·B + B − 1 of the epochs."""
    n = len(self.files)
    out, position = [], step * self.batch_size
    tried = 0
    while len(out) < self.batch_size:
      epoch, index = divmod(position, n)
      rgb = self._load(self.files[self.order(epoch)[index]])
      if rgb is not None:
        out.append(rgb)
      position += 1
      tried += 1
      if tried > n + self.batch_size and not out:
        raise ConfigError(f"{self.files[0].parent}: none of the {n} images could be read")
    return np.stack(out)


class Prefetch:
  """Iterates ``make(step)`` for step = start, start+1, … in a thread, ``depth`` ahead."""

  def __init__(self, make, start: int, stop: int, depth: int = 2):
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()

    def work():
      for step in range(start, stop):
        if self._stop.is_set():
          return
        try:
          item = make(step)
        except BaseException as e:  # Re-raised in the consumer, where it can be reported.
          self._queue.put(("error", e))
          return
        self._queue.put(("ok", item))

    self._thread = threading.Thread(target=work, daemon=True)
    self._thread.start()

  def __next__(self):
    kind, item = self._queue.get()
    if kind == "error":
      raise item
    return item

  def close(self) -> None:
    self._stop.set()
    while not self._queue.empty():  # Unblock a producer waiting on a full queue.
      self._queue.get_nowait()


FLOW_SUFFIX = ".flow.npy"
MASK_SUFFIX = ".mask.png"


class FlowPairs:
  """Consecutive video frames and their flow, for the temporal loss (``train --temporal-data``).

  The folder holds clips, each a folder of frames ``NNNNN.png`` and, for every
  frame after the first, ``NNNNN.flow.npy``: its backward optical flow to the
  frame before, H x W x 2 floats, (dx, dy) in px (frame N at p shows what frame
  N-1 shows at p + flow(p)), and optionally ``NNNNN.mask.png``, white where the
  flow is to be trusted. ``pairs.batch(step)`` draws ``batch`` pairs and one
  ``crop``-sided window each, from (seed, step) alone, so a resumed run reads
  what an unbroken one would.
  """

  def __init__(self, folder, *, crop: int, batch: int, seed: int):
    folder = Path(folder)
    if not folder.is_dir():
      raise ConfigError(f"{folder}: no such folder of clips (--temporal-data)")
    self.pairs = []
    for flow in sorted(folder.rglob("*" + FLOW_SUFFIX)):
      stem = flow.name[:-len(FLOW_SUFFIX)]
      if not stem.isdigit():
        continue
      previous = flow.with_name(f"{int(stem) - 1:0{len(stem)}d}.png")
      current = flow.with_name(stem + ".png")
      if previous.is_file() and current.is_file():
        self.pairs.append((previous, current, flow, flow.with_name(stem + MASK_SUFFIX)))
    if not self.pairs:
      raise ConfigError(f"{folder}: no frame pairs with flow found (expected clips of NNNNN.png "
                        f"frames with NNNNN{FLOW_SUFFIX} for each frame after the first)")
    self.crop, self.batch_size, self.seed = crop, batch, seed
    for pair in self.pairs:  # Headers only: a bad file is refused before training starts.
      self._check(*pair)

  def _check(self, previous, current, flow_file, mask_file):
    sizes = []
    for frame in (previous, current) + ((mask_file,) if mask_file.is_file() else ()):
      try:
        with Image.open(frame) as img:
          sizes.append(img.size)
      except (OSError, ValueError) as e:
        raise ConfigError(f"{frame}: not a readable image ({e})") from None
    try:
      shape = np.load(flow_file, mmap_mode="r").shape
    except (OSError, ValueError) as e:
      raise ConfigError(f"{flow_file}: unreadable flow ({e})") from None
    w, h = sizes[1]
    if len(set(sizes)) != 1 or shape != (h, w, 2):
      raise ConfigError(f"{flow_file}: expected a {h} x {w} x 2 flow for {w}x{h} frames, got "
                        f"{shape} (frames and mask: {', '.join(f'{a}x{b}' for a, b in sizes)})")
    if min(h, w) < self.crop:
      raise ConfigError(f"{current}: {w}x{h} is smaller than --crop {self.crop}")

  def _pair(self, index: int, rng):
    previous, current, flow_file, mask_file = self.pairs[index]
    a, b = images.load_image(previous, min_side=1), images.load_image(current, min_side=1)
    try:
      flow = np.load(flow_file).astype(np.float32)
    except (OSError, ValueError) as e:
      raise ConfigError(f"{flow_file}: unreadable flow ({e})") from None
    h, w = b.shape[:2]
    mask = (np.asarray(Image.open(mask_file).convert("L"), np.float32) / 255
            if mask_file.is_file() else np.ones((h, w), np.float32))
    y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
    window = (slice(y, y + self.crop), slice(x, x + self.crop))
    return a[window], b[window], flow[window], mask[window]

  def batch(self, step: int):
    """``(previous, current, flow, mask)`` of ``batch`` pairs: B x crop x crop x 3 uint8 twice,
    B x crop x crop x 2 and B x crop x crop float32."""
    rng = np.random.default_rng([self.seed, step, 7])
    chosen = rng.integers(0, len(self.pairs), self.batch_size)
    return tuple(np.stack(parts) for parts in zip(*(self._pair(int(i), rng) for i in chosen)))
