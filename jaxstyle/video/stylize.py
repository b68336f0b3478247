"""Stylizing a clip: by optimisation with temporal consistency, or by a trained network.

Optimisation (Ruder, Dosovitskiy & Brox, GCPR 2016): frame t starts from
the stylized frame t−1 warped to t by the backward flow, and its objective
gains the temporal term λ_t · (1/D) Σ c (x − warp(x_{t−1}))² (see
:func:`jaxstyle.losses.temporal_loss`), c = 0 where the flow is unreliable
(:func:`jaxstyle.video.flow.reliable`). With ``temporal_weight`` 0 every
frame is stylized on its own from the configured init: the flickering
baseline. Every frame runs the same compiled programs (frame 0 carries a
temporal target of weight c = 0, so its objective has the same structure).

Feed-forward: frames go through the network in batches.

The two are implementations of one small interface, :class:`FrameStylizer`
(:class:`ByOptimisation`, :class:`ByNetwork`): stylize frames, given the previous
output and the flow (:class:`Previous`) where the method builds on them. The
driver, :func:`stylize_video`, owns the clip, resuming, the frames' records and
the warping error; a new method is one class.

Frames are written as they finish (``frame_000000.png`` ..., each with its
provenance); a rerun resumes at the first missing frame from the stylized
frame before it, on disk, so a resumed clip equals an uninterrupted one.
Ctrl-C finishes the frames in hand, encodes the frames done so far (a playable
partial clip) and stops; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np

from jaxstyle import images, provenance
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError, Interrupted
from jaxstyle.files import sha256_file
from jaxstyle.interrupts import ctrl_c_flag
from jaxstyle.objective import Temporal, prepare_weights
from jaxstyle.progress import bar as progress_bar
from jaxstyle.video import flow as flows
from jaxstyle.video import io as vio
from jaxstyle.video.io import (Clip, encode, first_missing, frame_path, frames_dir,
                               is_video_path, read_clip)


#: ``jaxstyle video``'s temporal weight λ_t unless given: Ruder et al.'s consistency (each frame
#: from the previous one warped, plus their term). Their λ_t = 1e3 is about 270 in jaxstyle's
#: units at every size (:func:`jaxstyle.losses.temporal_loss`); the calibration on this
#: project's pan (docs/BENCHMARKS.md, "the temporal weight") is why it is this round value.
DEFAULT_TEMPORAL_WEIGHT = 300.0


def _frame_text(record: dict) -> dict:
  return {provenance.PNG_KEY: json.dumps(record, sort_keys=True)}


class Previous(NamedTuple):
  """What frame t builds on: frame t−1 as stylized (read back from disk, so a resumed clip
  equals an uninterrupted one) and the optical flow between the input frames t and t−1
  (backward: t → t−1, forward: t−1 → t; :func:`jaxstyle.video.flow.optical_flow`)."""

  output_HxWx3: np.ndarray
  backward_HxWx2: np.ndarray
  forward_HxWx2: np.ndarray


class FrameStylizer(Protocol):
  """One way of stylizing a clip's frames; :func:`stylize_video` drives any of them.

  ``temporal``: frame t builds on frame t−1's output and the flow. The driver then passes
  one frame per call with its :class:`Previous` (None for the first frame stylized);
  otherwise up to ``batch`` frames at once and no previous, and computes no flow.
  ``stylize`` returns each frame stylized, with what its PNG records beyond the clip's
  record (the input, the frame index, versions).
  """

  temporal: bool
  batch: int

  def stylize(self, frames_BxHxWx3: np.ndarray,
              previous: Previous | None) -> list[tuple[np.ndarray, dict]]: ...


@dataclass
class ByNetwork:
  """A trained network (:func:`jaxstyle.nets.apply.stylizer_for`), ``batch`` frames per
  forward pass; each frame on its own."""

  stylizer: Any
  model_record: dict | None = None
  batch: int = 4
  temporal: bool = False

  def stylize(self, frames_BxHxWx3, previous=None):
    return [(rgb, {"model": self.model_record, "convolutions": self.stylizer.conv_record()})
            for rgb in self.stylizer(frames_BxHxWx3)]


@dataclass
class ByOptimisation:
  """Pixel optimisation with ``config``; with a temporal weight, Ruder et al.'s: frame t starts
  from frame t−1's output warped by the flow, and the temporal term holds it there where the
  flow is reliable. ``weights``: resolved VGG weights, prepared once for the clip."""

  style: Any
  config: StyleConfig
  weights: Any
  batch: int = 1

  def __post_init__(self):
    if self.config.scales != 1:
      raise ConfigError("video: --scales must be 1 (each frame starts from the previous one)")
    self.weights = prepare_weights(self.weights, self.config)
    self.style_ref = ({"path": str(self.style), "sha256": sha256_file(self.style)}
                      if isinstance(self.style, (str, Path)) else None)

  @property
  def temporal(self) -> bool:
    return bool(self.config.temporal_weight)

  def stylize(self, frames_BxHxWx3, previous=None):
    (frame,) = frames_BxHxWx3
    init, temporal = temporal_inputs(frame, previous, self.config)
    from jaxstyle.transfer import stylize
    result = stylize(frame, self.style, self.config, key=jax.random.key(self.config.seed),
                     weights=self.weights, init_image=init, temporal=temporal)
    final = ({k: float(v[-1]) for k, v in result.history.items()} if result.iterations
             else result.initial)
    return [(result.image, {"style": self.style_ref, "config": self.config.to_dict(),
                            "weights": result.weights, "final_loss": final["total"],
                            "initial": result.initial,
                            "terms": {k: v for k, v in final.items() if k != "total"}})]


def stylize_video(src, out, *, config: StyleConfig, style=None, stylizer=None, model_record=None,
                  method: FrameStylizer | None = None, frames: str | None = None,
                  every: int = 1, size: int | None = None, weights=None, batch: int = 4,
                  progress: bool = False, log=print) -> dict:
  """Stylizes the clip ``src`` into ``out`` (a video file or a folder of frames).

  One of ``style`` (a style image: optimisation with ``config``, whose
  ``temporal_weight`` switches Ruder's temporal term on; :class:`ByOptimisation`),
  ``stylizer`` (a trained network's :func:`jaxstyle.nets.apply.stylizer_for`, with its
  ``model_record`` for provenance; :class:`ByNetwork`) or ``method``, any
  :class:`FrameStylizer` (its memory is its own to check; ``size``: the frames' longest
  side). Returns a summary: frames, seconds per frame, the warping error of the output
  against the input.
  """
  if sum(x is not None for x in (style, stylizer, method)) != 1:
    raise ConfigError("video: expected a style image (--style) or a model (--model), not both")
  probed = vio.probe(src, frames=frames, every=every)  # A bad clip: before anything else.
  if style is not None and weights is None:  # Once for the clip (and its warning once).
    from jaxstyle.vgg.weights import resolve_weights
    weights = resolve_weights(config.weights, network=config.network)
  size = size if stylizer is not None or method is not None else config.size
  if method is None:
    check_fits(src, probed, size=size, config=config, stylizer=stylizer, batch=batch,
               weights=weights)
    method = (ByNetwork(stylizer, model_record, batch) if stylizer is not None else
              ByOptimisation(style, config, weights))
  clip = read_clip(src, size=size, frames=frames, every=every)
  folder = frames_dir(out)
  if folder.exists() and not folder.is_dir():
    raise ConfigError(f"{folder}: exists and is not a folder of frames")
  folder.mkdir(parents=True, exist_ok=True)
  count = len(clip.frames)
  start = first_missing(folder, count)
  if start:
    log(f"video: {start} of {count} frames already in {folder}; resuming at frame {start}")
  base = {"input": {"path": str(clip.source), "fps": clip.fps, "every": every,
                    "frames": frames}, "versions": provenance.versions()}
  bar = progress_bar(count, desc="video", unit="frame", enabled=progress, initial=start)
  began, flow_seconds = time.perf_counter(), 0.0
  step = 1 if method.temporal else method.batch  # Frame t builds on t−1: one at a time.
  try:
    with ctrl_c_flag() as interrupted:  # Ctrl-C: the frames in hand are written, then stop.
      for first in range(start, count, step):
        if interrupted["hit"]:
          raise KeyboardInterrupt
        previous = None
        if method.temporal and first > 0:
          tick = time.perf_counter()
          previous = previous_frame(clip, folder, first)
          flow_seconds += time.perf_counter() - tick
        group = np.stack(clip.frames[first:first + step])
        for i, (rgb, record) in enumerate(method.stylize(group, previous), start=first):
          vio.write_frame(folder, i, rgb,
                          _frame_text(base | {"frame": clip.indices[i]} | record))
          bar.update(1)
          if "final_loss" in record:
            bar.set_postfix(loss=f"{record['final_loss']:.4g}", refresh=False)
  except KeyboardInterrupt:
    bar.close()
    done = first_missing(folder, count)  # What is on disk (Ctrl-C may land mid-bookkeeping).
    if done and is_video_path(out):
      encode(folder, done, out, fps=clip.fps, audio_from=clip.source if clip.audio else None)
    raise Interrupted(f"video: stopped after {done} of {count} frames"
                      + (f"; {out} holds them" if done and is_video_path(out) else "")
                      + "; run the same command again to resume") from None
  bar.close()
  seconds = time.perf_counter() - began
  if is_video_path(out):
    encode(folder, count, out, fps=clip.fps, audio_from=clip.source if clip.audio else None)
  outputs, scored = _viewed_frames(out)
  summary = {"frames": count, "stylized_now": count - start, "fps": clip.fps,
             "seconds_per_frame": seconds / max(count - start, 1),
             "flow_seconds_per_frame": flow_seconds / max(count - start, 1),
             "warping_error": flows.warping_error(outputs, clip.frames) if count > 1 else None,
             "scored": scored, "output": str(out)}
  return summary


def check_fits(src, probed, *, size, config, stylizer=None, batch=4, weights=None) -> None:
  """Refuses, from the clip's headers alone, a ``--size`` at which the clip cannot be
  stylized in memory (one line, naming the estimate, the memory available and the largest
  size that fits). What it counts: the clip's frames, held decoded, twice (the input and the
  output read back for the warping error), and the method's own peak: the network's on a
  batch of frames, or one frame's optimisation (:func:`jaxstyle.memory.estimate_bytes`).
  ``probed``: the clip's frame count and shape (:func:`jaxstyle.video.io.probe`)."""
  from jaxstyle import memory, vgg
  count, shape = probed

  def need(side: int) -> int:
    h, w = images.fitted_shape(shape, side)
    held = 2 * count * h * w * 3
    if stylizer is not None:
      return held + stylizer.peak_bytes(h * w, min(batch, count))
    return held + memory.estimate_bytes(config.replace(size=max(side, 16)), h, w,
                                        width_scale=vgg.infer_width_scale(weights.params))
  memory.refuse_unless_fits(need, size or max(shape), option="--size",
                            what=f"{count} frames of {src} and their stylization")


def _viewed_frames(out) -> tuple[list, str]:
  """The frames a viewer of ``out`` sees, and which they are: a video file's decoded frames
  (encoding changes them), or a folder's PNGs."""
  frames = read_clip(out).frames
  return frames, (f"the encoded frames of {out}" if is_video_path(out) else
                  f"the PNG frames in {out}")


def previous_frame(clip: Clip, folder: Path, t: int) -> Previous:
  """Frame t−1 as stylized, read from ``folder``, and the flows between input frames t and
  t−1."""
  frame, before = clip.frames[t], clip.frames[t - 1]
  return Previous(images.load_image(frame_path(folder, t - 1), min_side=1),
                  flows.optical_flow(frame, before), flows.optical_flow(before, frame))


def temporal_inputs(frame_HxWx3, previous: Previous | None, config: StyleConfig):
  """A frame's init image and temporal target: frame t−1's output warped to t, and c."""
  if not config.temporal_weight:
    return None, None  # Per-frame stylization: the configured init, no temporal term.
  if previous is None:  # Same structure as later frames, so one program; c = 0: no term.
    return None, Temporal(np.asarray(frame_HxWx3, np.float32),
                          np.zeros(frame_HxWx3.shape[:2], np.float32))
  warped = flows.warp(previous.output_HxWx3, previous.backward_HxWx2)
  return (np.clip(np.round(warped), 0, 255).astype(np.uint8),
          Temporal(warped, flows.reliable(previous.backward_HxWx2, previous.forward_HxWx2)))


def metrics(output, source, *, frames: str | None = None, every: int = 1) -> dict:
  """``jaxstyle video-metrics``: the warping error of ``output`` against the clip ``source``.

  ``frames`` and ``every`` select the source's frames as ``jaxstyle video`` did when it
  made ``output``, so that an output of a part of a clip is scored against that part;
  the same frames give the same number as the one ``jaxstyle video`` printed.
  """
  out, scored = _viewed_frames(output)
  src = read_clip(source, size=max(out[0].shape[:2]), frames=frames, every=every).frames
  if len(out) != len(src):
    raise ConfigError(f"{output}: {len(out)} frames, but {source} has {len(src)}"
                      + (" in the frames chosen" if frames or every != 1 else "")
                      + "; compare a stylized clip with its own input (and the same "
                        "--frames/--every)")
  if out[0].shape != src[0].shape:
    raise ConfigError(f"{output}: frames of {out[0].shape[1]}x{out[0].shape[0]}, {source} "
                      f"resized to {src[0].shape[1]}x{src[0].shape[0]}")
  if len(out) < 2:
    raise ConfigError(f"{output}: one frame; the warping error compares consecutive frames")
  return {"frames": len(out), "scored": scored, "warping_error": flows.warping_error(out, src)}
