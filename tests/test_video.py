"""Video: flow and warping on a pan whose flow is known, the temporal term, flicker, resume, I/O."""

import json
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import cli, transfer
from jaxstyle.objective import LossWeights, ObjectiveSpec, Temporal, objective
from jaxstyle.video import flow as flows
from jaxstyle.video import io as vio
from jaxstyle.video import stylize as video
from tests import interrupt
from tests.conftest import FIXTURES

pytest.importorskip("cv2", reason="video needs opencv-python-headless (the dev extra has it)")
pytest.importorskip("imageio_ffmpeg", reason="video needs imageio-ffmpeg (the dev extra has it)")

STEP = (2, 1)  # The camera moves 2 px right and 1 px down per frame.


def textured(height, width, *, seed):
  """A photo-like texture: noise at 4 px, smoothly interpolated (optical flow needs texture)."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(0, 255, (height // 4 + 2, width // 4 + 2, 3)).astype(np.uint8)
  big = Image.fromarray(coarse).resize(((width // 4 + 2) * 4, (height // 4 + 2) * 4),
                                       Image.Resampling.BICUBIC)
  return np.asarray(big)[:height, :width]


def pan(frames, height, width, *, seed=0):
  """Frame t is the window at offset t·STEP of a larger texture: frame_t(x) = frame_{t−1}(x + STEP)."""
  big = textured(height + STEP[1] * frames + 8, width + STEP[0] * frames + 8, seed=seed)
  return [big[t * STEP[1]:t * STEP[1] + height, t * STEP[0]:t * STEP[0] + width]
          for t in range(frames)]


def test_warping_by_the_pans_true_flow_is_exact_and_its_uncovered_strip_is_unreliable():
  f0, f1 = pan(2, 36, 44)
  backward = np.broadcast_to(np.float32(STEP), (36, 44, 2)).copy()  # flow(t, t−1) = +STEP.
  warped = flows.warp(f0, backward)
  dx, dy = STEP
  # Inside: exact (an integer shift needs no interpolation). The last dx columns and dy rows
  # would come from outside frame t−1: what the pan uncovers.
  np.testing.assert_array_equal(warped[:-dy, :-dx], f1[:-dy, :-dx])
  c = flows.reliable(backward, -backward)
  want = np.ones((36, 44), np.float32)
  want[-dy:, :] = 0
  want[:, -dx:] = 0
  np.testing.assert_array_equal(c, want)
  # A pixel whose round trip does not come back (occlusion, eq. 6) is unreliable too: the
  # forward flow broken at rows 10-13, columns 10-13 of frame t−1, which frame t's pixels
  # 1 row up and 2 columns left land on.
  broken = -backward
  broken[10:14, 10:14] = (5.0, -3.0)
  got = flows.reliable(backward, broken)
  assert got[9:13, 8:12].max() == 0 and got[:-dy, :-dx].sum() == got[:-dy, :-dx].size - 16
  # DIS finds the pan: the estimated flow(t, t−1) is +STEP (the sign convention), to 0.2 px.
  estimated = flows.optical_flow(f1, f0)
  inside = estimated[4:-4, 4:-4]
  np.testing.assert_allclose(np.median(inside.reshape(-1, 2), 0), STEP, atol=0.2)


def test_the_warping_error_is_lais_on_a_pan_with_a_known_occlusion():
  # Outputs that move with the input plus a colour offset δ_t per frame (flicker): Lai et al.'s
  # error is then mean_t Σ_c ((δ_t − δ_{t−1}) / 255)² over the non-occluded pixels, exactly,
  # whatever sub-pixel error the flow has (a constant field warps to itself). The strip the
  # pan uncovers has no counterpart in frame t−1 and is left out.
  frames = pan(4, 36, 44, seed=2)
  offsets = np.array([[0, 0, 0], [6, -3, 2], [1, 4, -5], [8, 0, 3]], np.float64)
  # Inputs scaled into 40..193 so that no offset clips: δ is exact (integers).
  frames = [np.round(0.6 * f + 40).astype(np.uint8) for f in frames]
  outputs = [(f.astype(np.int64) + d.astype(np.int64)).astype(np.uint8)
             for f, d in zip(frames, offsets)]
  want = np.mean([np.sum(((offsets[t] - offsets[t - 1]) / 255) ** 2) for t in range(1, 4)])
  np.testing.assert_allclose(flows.warping_error(outputs, frames), want, rtol=0.05)


def test_temporal_term_and_its_gradient_against_numpy(narrow_weights):
  rng = np.random.default_rng(4)
  x = rng.uniform(0, 255, (20, 24, 3)).astype(np.float32)
  warped = rng.uniform(0, 255, (20, 24, 3)).astype(np.float32)
  c = (rng.uniform(size=(20, 24)) > 0.3).astype(np.float32)
  # The other terms weighted 0, so that the total is λ_t T alone (not a small difference of
  # large float32 totals); that the terms add up is test_effects.py's subject.
  config = jaxstyle.StyleConfig(temporal_weight=3.0, content_weight=0.0, style_weight=0.0,
                                tv_weight=0.0, content_layers=("relu1_1",),
                                style_layers=("relu1_1",))
  spec = ObjectiveSpec.from_config(config, "caffe")
  targets = jaxstyle.make_targets(narrow_weights.params, x, x, spec)
  weights = LossWeights.from_config(config)
  assert float(weights.temporal) == 3.0

  def total(img):
    return objective(narrow_weights.params, targets._replace(temporal=Temporal(warped, c)), img,
                     weights, spec)
  value, terms = total(jnp.asarray(x))
  want = np.sum(c[..., None] * (x.astype(np.float64) - warped) ** 2)  # Σ c (x − ω)²
  np.testing.assert_allclose(terms["temporal"], want, rtol=1e-5)
  np.testing.assert_allclose(value, 3.0 * want, rtol=1e-5)
  grad = jax.grad(lambda img: total(img)[0])(jnp.asarray(x))
  np.testing.assert_allclose(grad, 3.0 * 2 * c[..., None] * (x - warped), rtol=1e-4, atol=1e-5)
  assert "temporal" not in objective(narrow_weights.params, targets, jnp.asarray(x), weights,
                                     spec)[1]  # No target, no term.
  with pytest.raises(jaxstyle.ConfigError, match="--temporal-weight: the temporal loss needs "
                                                 "the previous frame of a clip"):
    jaxstyle.stylize(x.astype(np.uint8), x.astype(np.uint8), config.replace(size=24, iters=1),
                     weights=narrow_weights)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_temporal_weight_reaches_a_real_runs_objective_in_the_amount_the_loss_predicts(
    narrow_weights, optimizer):
  # One frame, every pixel reliable, the temporal target another picture: λ_t = 0, 1, 1e6
  # through stylize(), the public call the video driver makes (members.py once rebuilt the
  # targets without their temporal field, so every real run dropped the term).
  frame = textured(24, 32, seed=1)
  style = textured(32, 32, seed=2)
  warped = textured(24, 32, seed=3).astype(np.float32)
  c = np.ones((24, 32), np.float32)
  config = jaxstyle.StyleConfig(size=32, iters=6, optimizer=optimizer, lr=20.0)
  runs = {w: jaxstyle.stylize(frame, style, config.replace(temporal_weight=w),
                              weights=narrow_weights, temporal=Temporal(warped, c))
          for w in (0.0, 1.0, 1e6)}
  # At the initial image (the frame) the term is NumPy's Σ c (x − ω)², and the totals
  # differ by exactly λ_t times it.
  want = np.sum((frame.astype(np.float64) - warped) ** 2)
  for w, run in runs.items():
    np.testing.assert_allclose(run.initial["temporal"], want, rtol=1e-5)
    np.testing.assert_allclose(run.initial["total"] - runs[0.0].initial["total"], w * want,
                               rtol=1e-4)
    assert run.history["temporal"][-1] == pytest.approx(
        np.sum((run.image.astype(np.float64) - warped) ** 2), rel=0.05, abs=3e3)
  # Each weight gives another image, nearer the temporal target the larger it is; at 1e6
  # the temporal term is all there is and the image goes (most of the way) to the target.
  distance = {w: np.abs(run.image.astype(np.float64) - warped).mean() for w, run in runs.items()}
  assert distance[0.0] > distance[1.0] > distance[1e6], distance
  assert distance[1e6] < 0.5 * distance[0.0], distance


@pytest.mark.slow
def test_the_temporal_term_is_zero_on_a_static_clip(tmp_path):
  # Every frame the same: the flow is 0, the previous stylized frame is its own warp, so the
  # term starts at exactly 0 on every frame after the first (and frame 0's c is 0).
  (tmp_path / "in").mkdir()
  still = textured(24, 32, seed=5)
  for t in range(3):
    Image.fromarray(still).save(tmp_path / "in" / f"{t}.png")
  style = tmp_path / "style.png"
  Image.fromarray(textured(32, 32, seed=9)).save(style)
  assert cli.main(["video", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--style",
                   str(style), *VIDEO[:4], "--iters", "3",
                   "--quiet"]) == 0
  for t in range(3):
    record = json.loads(Image.open(tmp_path / "out" / f"frame_{t:06d}.png").text["jaxstyle"])
    assert record["initial"]["temporal"] == 0.0, (t, record["initial"])
    assert set(record["terms"]) == {"content", "style", "tv", "temporal"}


VIDEO = ["--weights", "random:0:0.125", "--size", "40", "--iters", "12", "--quiet"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
  """A 6-frame pan as numbered PNGs, and its per-frame and temporal (the default)
  stylizations (CLI)."""
  root = tmp_path_factory.mktemp("video")
  (root / "in").mkdir()
  for t, frame in enumerate(pan(6, 32, 40)):
    Image.fromarray(frame).save(root / "in" / f"{t + 1}.png")  # Numbered from 1, unpadded.
  style = root / "style.png"
  Image.fromarray(textured(40, 40, seed=9)).save(style)
  runs, programs = {}, {}
  for name, weight in (("per_frame", ["--temporal-weight", "0"]), ("temporal", [])):
    transfer.run_chunks.clear_cache()
    assert cli.main(["video", str(root / "in"), "-o", str(root / name), "--style", str(style),
                     *weight, *VIDEO]) == 0
    runs[name] = root / name
    programs[name] = transfer.run_chunks._cache_size()
  # Every frame of a clip runs one compiled loop (frame 0's temporal target has c = 0).
  assert programs == {"per_frame": 1, "temporal": 1}
  return root, style, runs


def _frames(folder):
  return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


@pytest.mark.slow
def test_temporal_consistency_lowers_the_warping_error(clip, capsys):
  root, _, runs = clip
  inputs = [np.asarray(Image.open(root / "in" / f"{t + 1}.png")) for t in range(6)]
  errors = {name: flows.warping_error(_frames(folder), inputs) for name, folder in runs.items()}
  print("warping error:", errors)
  assert errors["temporal"] < 0.7 * errors["per_frame"], errors
  record = json.loads(Image.open(runs["temporal"] / "frame_000003.png").text["jaxstyle"])
  assert record["frame"] == 3
  assert record["config"]["temporal_weight"] == video.DEFAULT_TEMPORAL_WEIGHT > 0
  assert record["terms"]["temporal"] > 0 and record["initial"]["temporal"] > 0
  # video-metrics says the same number.
  capsys.readouterr()
  assert cli.main(["video-metrics", str(runs["temporal"]), str(root / "in")]) == 0
  out = capsys.readouterr().out
  assert f"{errors['temporal']:.6g} (on the PNG frames in {runs['temporal']})" in out


@pytest.mark.subprocess
def test_a_killed_clip_resumes_at_the_first_missing_frame_and_equals_an_unbroken_run(
    clip, tmp_path, capsys):
  root, style, runs = clip
  out = tmp_path / "out"
  args = ["video", str(root / "in"), "-o", str(out), "--style", str(style),
          *VIDEO]
  interrupt.run_killed("video-frame", 3, *args, timeout=600)
  assert len(list(out.glob("frame_*.png"))) == 3
  capsys.readouterr()
  assert cli.main(args) == 0
  assert "3 of 6 frames already in" in capsys.readouterr().out  # Only frames 3-5 run again.
  for a, b in zip(_frames(out), _frames(runs["temporal"]), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.subprocess
def test_ctrl_c_leaves_a_playable_partial_clip_and_a_rerun_finishes_it(clip, tmp_path, capsys,
                                                                     monkeypatch):
  root, style, runs = clip
  out = tmp_path / "out.mp4"
  args = ["video", str(root / "in"), "-o", str(out), "--style", str(style),
          *VIDEO]
  interrupt.hook(monkeypatch.setattr, "video-frame", 2, ["INT"])  # Ctrl-C after frame 2.
  assert cli.main(args) == 130
  assert "stopped after 2 of 6 frames" in capsys.readouterr().err
  assert len(vio.read_clip(out).frames) == 2  # Encoded: it plays.
  monkeypatch.undo()
  assert cli.main(args) == 0
  assert len(vio.read_clip(out).frames) == 6
  for a, b in zip(_frames(tmp_path / "out.mp4.frames"), _frames(runs["temporal"]), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.subprocess
def test_video_files_in_and_out_with_audio_and_a_network(clip, tmp_path, capsys):
  from jaxstyle.nets import models
  from jaxstyle.nets.apply import Stylizer
  from tests.conftest import FIXTURES
  root, _, _ = clip
  ffmpeg = __import__("imageio_ffmpeg").get_ffmpeg_exe()
  src = tmp_path / "in.mp4"
  # The pan as an mp4 at 12 fps, with a sine tone for audio.
  subprocess.run([ffmpeg, "-v", "error", "-framerate", "12", "-i", str(root / "in" / "%d.png"),
                  "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-shortest",
                  "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(src)], check=True)
  source = vio.read_clip(src)
  assert (len(source.frames), source.fps, source.audio) == (6, 12.0, True)
  model = models.convert_pth(FIXTURES / "transformer_narrow_legacy.pth", tmp_path / "model")
  out = tmp_path / "out.mp4"
  assert cli.main(["video", str(src), "-o", str(out), "--model", str(model), "--frames", "1:",
                   "--every", "2", "--quiet"]) == 0
  made = vio.read_clip(out)
  assert (len(made.frames), made.fps, made.audio) == (3, 6.0, True)  # Frames 1, 3, 5.
  net, _ = models.load_model(model)
  want = Stylizer(net)(np.stack([source.frames[i] for i in (1, 3, 5)]))
  np.testing.assert_array_equal(_frames(tmp_path / "out.mp4.frames"), want)
  capsys.readouterr()
  assert cli.main(["video", str(src), "-o", str(tmp_path / "out.gif"), "--model", str(model),
                   "--frames", ":2", "--quiet"]) == 0
  assert "warning: " + str(tmp_path / "out.gif") + ": a GIF has no audio track" in (
      capsys.readouterr().err)
  assert len(vio.read_clip(tmp_path / "out.gif").frames) == 2


@pytest.mark.subprocess
def test_bad_clips_are_one_line_and_exit_2(clip, tmp_path, capsys):
  root, style, _ = clip
  bad = tmp_path / "bad.mp4"
  bad.write_bytes(b"not a video at all")
  (tmp_path / "empty").mkdir()
  mixed = tmp_path / "mixed"
  mixed.mkdir()
  Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(mixed / "1.png")
  Image.fromarray(np.zeros((20, 31, 3), np.uint8)).save(mixed / "2.png")
  truncated = tmp_path / "cut.mp4"
  good = tmp_path / "good.mp4"
  ffmpeg = __import__("imageio_ffmpeg").get_ffmpeg_exe()
  subprocess.run([ffmpeg, "-v", "error", "-framerate", "12", "-i", str(root / "in" / "%d.png"),
                  "-c:v", "libx264", "-pix_fmt", "yuv420p", str(good)], check=True)
  truncated.write_bytes(good.read_bytes()[:200])
  cases = [(bad, "bad.mp4: not a video ffmpeg can read"),
           (tmp_path / "empty", "empty: no frames"),
           (mixed, "2.png: frame size 31x20 differs from 1.png's 30x20"),
           (truncated, "cut.mp4: not a video ffmpeg can read"),
           (tmp_path / "missing.mp4", "missing.mp4: no such video file or folder of frames")]
  for src, message in cases:
    out = tmp_path / "o.mp4"
    assert cli.main(["video", str(src), "-o", str(out), "--style", str(style), *VIDEO]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
  assert cli.main(["video", str(root / "in"), "-o", str(tmp_path / "o"), "--style", str(style),
                   "--frames", "10:", *VIDEO]) == 2
  assert "no frames in --frames 10:" in capsys.readouterr().err


def _ffmpeg():
  return __import__("imageio_ffmpeg").get_ffmpeg_exe()


@pytest.mark.subprocess
def test_video_and_video_metrics_score_the_same_frames_of_an_mp4(clip, tmp_path, capsys):
  # Made with --frames and --every, written as an mp4: video scores the decoded frames a
  # viewer sees (not the PNGs it encoded), and video-metrics with the same selection agrees.
  from jaxstyle.nets import models
  root, _, _ = clip
  src = tmp_path / "in.mp4"
  subprocess.run([_ffmpeg(), "-v", "error", "-framerate", "12", "-i", str(root / "in" / "%d.png"),
                  "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)], check=True)
  model = models.convert_pth(FIXTURES / "transformer_narrow_legacy.pth", tmp_path / "model")
  for selection in (["--frames", "0:4"], ["--frames", "1:", "--every", "2"]):
    out = tmp_path / "out.mp4"
    capsys.readouterr()
    assert cli.main(["video", str(src), "-o", str(out), "--model", str(model), *selection,
                     "--quiet"]) == 0
    printed = capsys.readouterr().out.split("warping error ")[1]
    assert printed.rstrip().endswith(f"(on the encoded frames of {out})"), printed
    assert cli.main(["video-metrics", str(out), str(src), *selection]) == 0
    said = capsys.readouterr().out
    assert said.split("warping error ")[1] == printed, (said, printed)
    decoded = vio.read_clip(out).frames
    pngs = _frames(tmp_path / "out.mp4.frames")
    inputs = vio.read_clip(src, frames=selection[1],
                           every=int(selection[3]) if len(selection) > 2 else 1).frames
    assert printed.startswith(f"{flows.warping_error(decoded, inputs):.6g} ")
    assert flows.warping_error(pngs, inputs) != flows.warping_error(decoded, inputs)
    (tmp_path / "out.mp4").unlink()
    for p in (tmp_path / "out.mp4.frames").iterdir():
      p.unlink()
  assert cli.main(["video-metrics", str(tmp_path / "nope.mp4"), str(src)]) == 2


@pytest.mark.subprocess
def test_frames_and_every_on_odd_variable_rate_and_rotated_mp4s(tmp_path):
  # Seven numbered frames (an odd count), each with its index in the red channel and a white
  # marker at the top left, encoded three ways by the ffmpeg imageio-ffmpeg ships.
  (tmp_path / "png").mkdir()
  for t in range(7):
    frame = np.zeros((24, 40, 3), np.uint8)
    frame[..., 0] = 30 * t
    frame[2:6, 2:10] = 255
    Image.fromarray(frame).save(tmp_path / "png" / f"{t}.png")
  odd, vfr, rotated = (tmp_path / f"{n}.mp4" for n in ("odd", "vfr", "rotated"))
  encode = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "0"]
  subprocess.run([_ffmpeg(), "-v", "error", "-framerate", "10", "-i",
                  str(tmp_path / "png" / "%d.png"), *encode, str(odd)], check=True)
  # Frames 3.. shown three times as long: a variable frame rate (ffmpeg would duplicate
  # frames to a constant rate unless told to pass them through).
  subprocess.run([_ffmpeg(), "-v", "error", "-framerate", "10", "-i",
                  str(tmp_path / "png" / "%d.png"), "-vf",
                  "setpts='if(lt(N,3),N,3*N-6)/10/TB'", "-fps_mode", "vfr", *encode, str(vfr)],
                 check=True)
  # A phone's portrait clip: landscape pixels with a display rotation of 90 degrees.
  subprocess.run([_ffmpeg(), "-v", "error", "-display_rotation", "90", "-i", str(odd), "-c",
                  "copy", str(rotated)], check=True)
  for path in (odd, vfr, rotated):
    for frames, every, want in ((None, 1, [0, 1, 2, 3, 4, 5, 6]), ("1:", 2, [1, 3, 5]),
                                ("2:6", 3, [2, 5]), (":", 2, [0, 2, 4, 6])):
      got = vio.read_clip(path, frames=frames, every=every)
      assert got.indices == want, (path.name, frames, every, got.indices)
      assert [round(f[..., 0].mean() / 30) for f in got.frames] == want, path.name
  upright = vio.read_clip(rotated).frames[0]
  assert upright.shape == (40, 24, 3)  # Displayed as portrait, as a player shows it.
  ys, xs = np.nonzero(upright[..., 1] > 128)  # The marker: turned 90 degrees counterclockwise.
  assert (ys.min(), ys.max(), xs.min(), xs.max()) == (30, 37, 2, 5)


def test_any_frame_stylizer_is_driven_with_the_previous_output_and_flow_or_in_batches(tmp_path):
  # Two toy methods through the driver, as a third method would be: a temporal one sees frame
  # t−1's output as written and the flows between the input frames t and t−1 (checked against
  # the pan's true motion), one frame per call; a batched one gets frames in threes, no flow.
  frames = pan(5, 32, 40, seed=4)
  (tmp_path / "in").mkdir()
  for t, frame in enumerate(frames):
    Image.fromarray(frame).save(tmp_path / "in" / f"{t}.png")
  calls = []

  class Temporal:
    temporal, batch = True, 3  # batch is ignored for a temporal method: one frame per call.

    def stylize(self, frames_BxHxWx3, previous):
      calls.append(("temporal", len(frames_BxHxWx3), previous))
      # Frame t's output is frame t−1's output plus 10 (so a stale or missing previous shows).
      base = np.zeros_like(frames_BxHxWx3[0]) if previous is None else previous.output_HxWx3
      return [(base + 10, {"toy": "temporal"})]

  class Batched:
    temporal, batch = False, 3

    def stylize(self, frames_BxHxWx3, previous):
      calls.append(("batched", len(frames_BxHxWx3), previous))
      return [(255 - f, {"toy": "batched"}) for f in frames_BxHxWx3]

  for method in (Temporal(), Batched()):
    out = tmp_path / type(method).__name__
    video.stylize_video(tmp_path / "in", out, config=jaxstyle.StyleConfig(), method=method)
    written = _frames(out)
    assert len(written) == 5
    if method.temporal:
      assert [c[1] for c in calls] == [1] * 5 and calls[0][2] is None
      for t, (_, _, previous) in enumerate(calls[1:], start=1):
        np.testing.assert_array_equal(previous.output_HxWx3, written[t - 1])
        inside = (slice(4, -4), slice(4, -4))
        np.testing.assert_allclose(np.median(previous.backward_HxWx2[inside].reshape(-1, 2), 0),
                                   STEP, atol=0.3)
        np.testing.assert_allclose(np.median(previous.forward_HxWx2[inside].reshape(-1, 2), 0),
                                   np.negative(STEP), atol=0.3)
      assert [int(w[0, 0, 0]) for w in written] == [10, 20, 30, 40, 50]
    else:
      assert [(c[1], c[2]) for c in calls] == [(3, None), (2, None)]
      for got, frame in zip(written, frames, strict=True):
        np.testing.assert_array_equal(got, 255 - frame)
    record = json.loads(Image.open(out / "frame_000004.png").text["jaxstyle"])
    assert record["toy"] == type(method).__name__.lower() and record["frame"] == 4
    calls.clear()
