"""Shared test setup: strict JAX, tiny narrow networks, sample images."""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxstyle

# Tiny shapes make silent broadcasting bugs easy to miss; make them errors.
jax.config.update("jax_numpy_rank_promotion", "raise")
# No persistent compilation cache in tests (CLI runs would write to ~/.cache);
# tests/test_cache.py turns it on where it is the subject.
os.environ["JAXSTYLE_CACHE_DIR"] = ""

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
