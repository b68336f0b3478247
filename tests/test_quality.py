"""How much of a photo a network keeps: the metric against scipy, and training's warning."""

import json

import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.nets import models, quality
from tests.conftest import smooth_image


def test_content_kept_is_the_edge_correlation_scipy_computes():
  ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is the independent reference")
  rng = np.random.default_rng(0)
  photo = smooth_image(40, 52, seed=3)
  texture = smooth_image(40, 52, seed=99)
  output = np.clip(0.5 * photo + 0.5 * texture + rng.uniform(0, 10, photo.shape), 0,
                   255).astype(np.uint8)

  def reference(rgb):
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    binomial = np.array([1, 4, 6, 4, 1]) / 16  # Radius 2.
    for axis in (0, 1):
      y = ndimage.convolve1d(y, binomial, axis=axis, mode="nearest")
    return np.hypot(ndimage.sobel(y, axis=0, mode="nearest"),
                    ndimage.sobel(y, axis=1, mode="nearest"))

  want = np.corrcoef(reference(output).ravel(), reference(photo).ravel())[0, 1]
  assert quality.content_kept(output, photo) == pytest.approx(want, rel=1e-9)
  assert 0.3 < want < 0.95  # A half-kept photo: neither extreme.
  # The photo itself and a brightened, contrast-changed copy keep everything; an unrelated
  # texture keeps nothing; the order of the arguments does not matter.
  assert quality.content_kept(photo, photo) == pytest.approx(1.0)
  brighter = np.clip(0.8 * photo.astype(np.float64) + 30, 0, 255).round().astype(np.uint8)
  assert quality.content_kept(brighter, photo) > 0.99
  assert abs(quality.content_kept(texture, photo)) < 0.1
  assert quality.content_kept(photo, output) == pytest.approx(want, rel=1e-9)
  with pytest.raises(ValueError, match=r"expected an output of the photo's shape \(40, 52, 3\)"):
    quality.content_kept(photo[:20], photo)


@pytest.mark.slow
@pytest.mark.parametrize("threshold, warnings", [(1.01, 1), (-1.01, 0)])
def test_training_reports_content_kept_and_warns_once_when_it_is_low(
    training, tmp_path, capsys, monkeypatch, threshold, warnings):
  # The threshold moved to either end, so that the run's own values fall below (or above)
  # it: one warning naming the fix, from the first evaluation past a fifth of the run.
  from jaxstyle.nets.apply import Stylizer
  from jaxstyle import images
  from jaxstyle.nets.data import crop_square
  root, args, held = training
  monkeypatch.setattr(quality, "CONTENT_KEPT_WARNING", threshold)
  out = tmp_path / "model"
  capsys.readouterr()
  assert cli.main(["train", *args, "-o", str(out)]) == 0
  err = capsys.readouterr().err
  lines = [x for x in err.splitlines() if "keep little of their content" in x]
  assert len(lines) == warnings, err
  if warnings:
    assert lines[0].startswith("jaxstyle: warning: step 4: ") and "--content-weight" in lines[0]
  metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
  evaluated = {m["step"]: m["content_kept"] for m in metrics if "content_kept" in m}
  assert set(evaluated) == {4, 8}
  # The last value is the trained network's, on the held-out photos at the crop size.
  net, meta = models.load_model(out)
  photos = [crop_square(images.load_image(p, min_side=1), 32) for p in held]
  outputs = Stylizer(net)(np.stack(photos))
  want = np.mean([quality.content_kept(o, p) for o, p in zip(outputs, photos)])
  assert evaluated[8] == pytest.approx(want, abs=0.02)  # The network's float32 round-off.
  assert meta["record"]["held_out"]["content_kept"] == evaluated[8]
