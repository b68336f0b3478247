"""Optical flow, warping, and where the flow can be trusted (Ruder et al., GCPR 2016).

Conventions: a flow ``w_HxWx2`` holds (dx, dy) per pixel; ``flow(a, b)``
maps each pixel x of frame a to x + w(x) in frame b, so that
a(x) ≈ b(x + w(x)). ``warp(b, w)`` samples b at x + w(x): with w = flow(a, b)
it brings b into a's geometry. For frame t of a clip, the *backward* flow
w_b = flow(t, t−1) brings frame t−1 (and its stylization) to frame t.

Flow is OpenCV's DIS (Kroeger et al., ECCV 2016; ``opencv-python-headless``),
preset "medium", on grey frames: a few milliseconds per frame at 256 px on
a CPU and accurate on the small motions between consecutive frames, where
Farneback is slower and blurrier at motion boundaries. Ruder et al. used
DeepFlow / EpicFlow, which OpenCV's main package does not ship.
"""

from __future__ import annotations

import numpy as np


def _cv2():
  try:
    import cv2
  except ImportError:
    from jaxstyle.video.io import VideoError
    raise VideoError("video needs opencv-python-headless (optical flow): "
                     "pip install 'jaxstyle[video]'") from None
  return cv2


def optical_flow(a_HxWx3: np.ndarray, b_HxWx3: np.ndarray) -> np.ndarray:
  """The flow w from frame a to frame b (a(x) ≈ b(x + w(x))), float32 H x W x 2, by DIS."""
  cv2 = _cv2()
  grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in (a_HxWx3, b_HxWx3)]
  dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  return dis.calc(grey[0], grey[1], None).astype(np.float32)


def warp(img_HxWxC: np.ndarray, flow_HxWx2: np.ndarray) -> np.ndarray:
  """img sampled at x + w(x), bilinearly; points outside take the nearest border pixel.

  Pixels whose x + w(x) falls outside the image have no true value here;
  :func:`reliable` gives them weight 0.
  """
  cv2 = _cv2()
  h, w = flow_HxWx2.shape[:2]
  gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
  img = np.asarray(img_HxWxC, np.float32)
  out = cv2.remap(img, gx + flow_HxWx2[..., 0], gy + flow_HxWx2[..., 1], cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REPLICATE)
  return out.reshape(img.shape)


def reliable(backward_HxWx2: np.ndarray, forward_HxWx2: np.ndarray) -> np.ndarray:
  """Ruder et al.'s per-pixel weights c ∈ {0, 1} for the temporal loss at frame t.

  ``backward`` = flow(t, t−1), ``forward`` = flow(t−1, t). c is 0 where frame t's pixel
  is occluded in frame t−1 or lies outside it (:func:`occluded`), or sits on a motion
  boundary (their eq. 7): |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002, ŵ = (û, v̂) the backward
  flow; 1 elsewhere.
  """
  b = np.asarray(backward_HxWx2, np.float32)
  du_dy, du_dx = np.gradient(b[..., 0])
  dv_dy, dv_dx = np.gradient(b[..., 1])
  boundary = (du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2
              > 0.01 * np.sum(np.square(b), -1) + 0.002)
  return (~(occluded(b, forward_HxWx2) | boundary)).astype(np.float32)


def occluded(backward_HxWx2: np.ndarray, forward_HxWx2: np.ndarray) -> np.ndarray:
  """Where frame t's pixels have no counterpart in frame t−1 (boolean H x W).

  With w̃(x) = forward(x + backward(x)) (the forward flow brought to frame t):

  - occluded by forward-backward inconsistency (Ruder et al.'s eq. 6, the check
    Lai et al. use for the warping error): |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5,
    ŵ the backward flow; a pixel seen in both frames comes back where it
    started, one that was hidden in t−1 does not;
  - or x + ŵ(x) outside frame t−1 (what a pan uncovers): no earlier pixel exists.
  """
  b = np.asarray(backward_HxWx2, np.float32)
  h, w = b.shape[:2]
  carried = warp(forward_HxWx2, b)
  inconsistent = (np.sum(np.square(carried + b), -1)
                  > 0.01 * (np.sum(np.square(carried), -1) + np.sum(np.square(b), -1)) + 0.5)
  gx, gy = np.meshgrid(np.arange(w), np.arange(h))
  tx, ty = gx + b[..., 0], gy + b[..., 1]
  outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
  return inconsistent | outside


def warping_error(outputs, inputs) -> float:
  """Lai et al.'s (ECCV 2018) warping error of a stylized clip against its input clip.

  E = mean over t ≥ 1 of  Σ_x M_t(x) ‖O_t(x) − Ô_{t−1}(x)‖² / Σ_x M_t(x),
  with O the output frames as RGB in [0, 1], Ô_{t−1} = warp(O_{t−1}, flow(I_t, I_{t−1}))
  warped by the *input's* flow, and M_t the non-occluded pixels (not
  :func:`occluded`, by the input's forward-backward check). Lower is steadier: 0 for
  a clip whose output moves exactly with its input. ``outputs`` are the frames a
  viewer sees: a video file's decoded frames, not the PNGs it was encoded from.
  """
  if len(outputs) != len(inputs) or len(inputs) < 2:
    raise ValueError(f"expected two clips of the same length ≥ 2, got {len(outputs)} and "
                     f"{len(inputs)} frames")
  errors = []
  for t in range(1, len(inputs)):
    backward = optical_flow(inputs[t], inputs[t - 1])
    mask = ~occluded(backward, optical_flow(inputs[t - 1], inputs[t]))
    previous = warp(np.asarray(outputs[t - 1], np.float32) / 255.0, backward)
    diff = np.sum(np.square(np.asarray(outputs[t], np.float32) / 255.0 - previous), -1)
    errors.append(float(np.sum(mask * diff) / max(np.sum(mask), 1.0)))
  return float(np.mean(errors))
