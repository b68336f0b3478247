"""Shared test setup: strict JAX, tiny narrow networks, sample images."""

import os
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxstyle
from jaxstyle import cache

# Tiny shapes make silent broadcasting bugs easy to miss; make them errors.
jax.config.update("jax_numpy_rank_promotion", "raise")
# The suite's time is mostly XLA compiling tiny programs: at backend optimisation level 0
# it compiles about 30% faster (tests/test_effects.py: 72 s -> 50 s). Every result is
# checked against an independent reference with a tolerance, so the looser code
# generation does not weaken a test; benchmarks (and users) run XLA's defaults. Set
# before the backend starts; subprocesses inherit it, except where a test gives its own.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_backend_optimization_level=0").strip()
# XLA's persistent compilation cache, for this process and every CLI run the tests start
# (they inherit the variable): outside the clone, kept between sessions, so a second run of
# the suite loads most programs instead of compiling them (tests/README.md: cold and warm
# times). $JAXSTYLE_TEST_CACHE_DIR moves it; set empty, a session starts cold in a
# directory of its own. A cached program computes what a compiled one does (test_cache.py),
# so no test depends on the cache being warm, and JAX keys entries by program, flags
# (the optimisation level above), versions and device. tests/test_cache.py gives its runs
# their own directory.
_SESSION = tempfile.TemporaryDirectory(prefix="jaxstyle-test-")
_XLA_CACHE = os.environ.get("JAXSTYLE_TEST_CACHE_DIR", os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jaxstyle", "tests-xla"))
os.environ["JAXSTYLE_CACHE_DIR"] = _XLA_CACHE or os.path.join(_SESSION.name, "xla")
cache.enable()
# The convolution choices measured (jaxstyle.conv) are timings: each session its own.
os.environ["JAXSTYLE_CONV_CACHE_DIR"] = os.path.join(_SESSION.name, "convs")

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
NARROW = 0.125  # Width scale: 8..64 channels; same code paths, ~60x fewer FLOPs.


@pytest.fixture(scope="session")
def narrow_weights():
  """Narrow He-initialised VGG19 (caffe convention), shared by the whole suite."""
  return jaxstyle.random_weights(seed=0, width_scale=NARROW)


@pytest.fixture(scope="session")
def narrow_h5(tmp_path_factory, narrow_weights):
  """The narrow weights saved as a jaxstyle .h5 file."""
  path = tmp_path_factory.mktemp("weights") / "narrow.h5"
  jaxstyle.save_weights(path, narrow_weights.params, convention="caffe",
                        source_name="random", source_sha256="0" * 64)
  return path


def smooth_image(height, width, *, seed):
  """A smooth random uint8 RGB image (random blobs, like a blurry photo)."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  img = np.zeros((height, width, 3))
  for _ in range(6):
    cy, cx, r = rng.uniform(0, 1, 3)
    img += rng.uniform(0, 255, 3) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (0.05 + 0.2 * r))[..., None]
  return np.clip(img / img.max() * 255, 0, 255).astype(np.uint8)


@pytest.fixture
def image_files(tmp_path):
  """A content and a style PNG of different sizes."""
  from PIL import Image
  content, style = tmp_path / "content.png", tmp_path / "style.png"
  Image.fromarray(smooth_image(40, 48, seed=1)).save(content)
  Image.fromarray(smooth_image(56, 40, seed=2)).save(style)
  return content, style


@pytest.fixture
def shared_images():
  """The sample photo and painting from ../shared/images, or a skip saying why."""
  content = SHARED_IMAGES / "content" / "chelsea.jpg"
  style = SHARED_IMAGES / "style" / "starry_night.jpg"
  if not (content.exists() and style.exists()):
    pytest.skip(f"sample images not found at {SHARED_IMAGES} (they live beside the project)")
  return content, style


TRAIN = ["--weights", "random:0:0.125", "--steps", "8", "--batch", "2", "--crop", "32",
         "--width", "0.125", "--lr", "0.01", "--checkpoint-every", "4", "--sample-every", "4",
         "--quiet"]


@pytest.fixture(scope="session")
def training(tmp_path_factory):
  """Six generated photos (two in a subfolder), a style, held-out photos, and a run of 8 steps."""
  from PIL import Image

  from jaxstyle import cli
  root = tmp_path_factory.mktemp("training")
  (root / "photos" / "sub").mkdir(parents=True)
  for i in range(6):
    Image.fromarray(smooth_image(40 + 4 * i, 48, seed=10 + i)).save(
        root / "photos" / ("sub" if i % 2 else "") / f"p{i}.png")
  Image.fromarray(smooth_image(48, 48, seed=2)).save(root / "style.png")
  held = []
  for i in range(2):
    held.append(root / f"held{i}.png")
    Image.fromarray(smooth_image(36, 44, seed=30 + i)).save(held[-1])
  args = [str(root / "style.png"), "--data", str(root / "photos"), "--held-out",
          *map(str, held), *TRAIN]
  assert cli.main(["train", *args, "-o", str(root / "model")]) == 0
  return root, args, held
