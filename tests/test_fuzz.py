"""Property-based fuzzing: for any input, a valid result or the documented error, nothing else.

Config parsing (the dataclass, the CLI options, sweep files), image loading
and the .pth reader get random and mutated inputs; each accepts, or raises
its JaxstyleError subclass (argparse's usage errors exit 2).
"""

import dataclasses
import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import jaxstyle
from jaxstyle import cli, sweep
from jaxstyle.vgg.pth import load_state_dict
from tests.conftest import FIXTURES

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True))
words = st.one_of(st.sampled_from(["relu4_2", "conv1_1", "block5_conv3", "relu9_9", "", "max",
                                   "avg", "lbfgs", "adam", "noise", "gray", "chw", "w2",
                                   "keras", "luminance", "vgg16", "half_sum"]),
                  st.text(max_size=12))
values = st.one_of(numbers, words, st.booleans(), st.none(),
                   st.lists(st.one_of(numbers, words), max_size=4).map(tuple))
FIELDS = [f.name for f in dataclasses.fields(jaxstyle.StyleConfig)]


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=5))
def test_style_config_accepts_or_raises_config_error(changes):
  try:
    config = jaxstyle.StyleConfig(**changes)
  except jaxstyle.ConfigError as e:
    assert "\n" not in str(e) and str(e).startswith("--")
  else:
    assert config == jaxstyle.StyleConfig(**config.to_dict())


OPTIONS = ["--size", "--iters", "--style-weight", "--tv-beta", "--style-layers", "--init",
           "--optimizer", "--style-norm", "--scales", "--scale-iters", "--style-scale",
           "--lr", "--ema-decay", "--network", "--preset", "--style-loss", "--lbfgs-restart"]


@FAST
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), st.text(min_size=1, max_size=8)),
                max_size=4))
def test_cli_options_parse_or_fail_with_exit_2(pairs):
  argv = ["stylize", "c.png", "s.png", "-o", "o.png"]
  for option, value in pairs:
    argv += [option, value]
  try:
    preset = cli.preset_in(argv)
    parser = cli.build_parser(jaxstyle.presets.get(preset)
                              if preset in jaxstyle.presets.PRESETS else None)
    cli.config_from_args(parser.parse_args(argv))
  except SystemExit as e:
    assert e.code == 2
  except jaxstyle.ConfigError:
    pass


toml_values = st.one_of(st.integers(-5, 10**5).map(str), st.floats(-1e6, 1e6).map(repr),
                        st.sampled_from(['"a.png"', '"relu1_1"', '["a.png"]', "[1, 2]", "[]",
                                         '"zip"', '"product"', "true", '"gatys2016"']),
                        st.text(max_size=6).map(lambda t: '"' + t.replace('"', "") + '"'))


@FAST
@given(st.lists(st.tuples(st.sampled_from(["content", "style", "mode", "preset", "size", "iters",
                                           "seed", "style_weight", "bogus"]), toml_values),
                max_size=5),
       st.lists(st.tuples(st.sampled_from(["style", "seed", "style_weight", "preset", "size",
                                           "nope"]), toml_values), max_size=3),
       st.binary(max_size=30))
def test_sweep_files_load_or_raise_config_error(top, axes, junk):
  with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "s.toml"
    text = "\n".join(f"{k} = {v}" for k, v in top) + "\n[axes]\n" + "\n".join(
        f"{k} = {v}" for k, v in axes)
    path.write_bytes(text.encode() + (junk if len(junk) % 3 == 0 else b""))
    try:
      sweep.load_sweep(path)
    except jaxstyle.ConfigError as e:
      assert "\n" not in str(e)


def _valid_files():
  rgb = np.random.default_rng(0).integers(0, 255, (20, 24, 3), np.uint8)
  out = {}
  for fmt, mode in (("PNG", "RGB"), ("JPEG", "RGB"), ("PNG", "P"), ("GIF", "P"), ("BMP", "RGB"),
                    ("TIFF", "RGB"), ("WEBP", "RGB")):
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buffer, fmt)
    out[fmt] = buffer.getvalue()
  return out


VALID_IMAGES = _valid_files()


def _mutated(data: bytes, flips, cut):
  data = bytearray(data)
  for position, value in flips:
    data[position % len(data)] = value
  return bytes(data[: max(1, int(len(data) * cut))])


def _load_outcome(data: bytes):
  with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "image"
    path.write_bytes(data)
    try:
      rgb = jaxstyle.load_image(path, min_side=1)
    except jaxstyle.ImageError as e:
      assert str(path) in str(e) and "\n" not in str(e)
      return "refused"
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    return "loaded"


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_are_refused_as_images(data):
  assert _load_outcome(data) in ("loaded", "refused")


@FAST
@given(st.sampled_from(sorted(VALID_IMAGES)),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
       st.floats(0.05, 1.0))
def test_mutated_images_load_or_are_refused(fmt, flips, cut):
  import warnings
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", jaxstyle.images.ImageWarning)
    assert _load_outcome(_mutated(VALID_IMAGES[fmt], flips, cut)) in ("loaded", "refused")


def _pth_outcome(data: bytes):
  with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "weights.pth"
    path.write_bytes(data)
    try:
      state = load_state_dict(path)
    except jaxstyle.WeightsError as e:
      assert str(path) in str(e) and "\n" not in str(e)
      return "refused"
    assert all(isinstance(v, np.ndarray) for v in state.values())
    return "loaded"


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_are_refused_as_pth(data):
  assert _pth_outcome(data) in ("loaded", "refused")


LEGACY = (FIXTURES / "vgg19_narrow_legacy.pth").read_bytes()


@FAST
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
       st.floats(0.02, 1.0))
def test_mutated_legacy_pth_loads_or_is_refused(flips, cut):
  assert _pth_outcome(_mutated(LEGACY, flips, cut)) in ("loaded", "refused")


def _zip_entries():
  with zipfile.ZipFile(FIXTURES / "vgg19_narrow_zip.pth") as z:
    return {info.filename: z.read(info) for info in z.infolist()}


ZIP_ENTRIES = _zip_entries()
PICKLE_NAME = next(n for n in ZIP_ENTRIES if n.endswith("data.pkl"))


@FAST
@given(st.sampled_from(sorted(ZIP_ENTRIES)),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
       st.floats(0.1, 1.0))
def test_mutated_zip_pth_entries_load_or_are_refused(entry, flips, cut):
  """Mutations inside the archive's pickle or storages, behind a valid zip container."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as z:
    for name, data in ZIP_ENTRIES.items():
      z.writestr(name, _mutated(data, flips, cut) if name == entry else data)
  assert _pth_outcome(buffer.getvalue()) in ("loaded", "refused")


def test_fuzzing_reaches_both_outcomes():
  """The properties above are not vacuous: both outcomes occur for each reader."""
  assert _load_outcome(VALID_IMAGES["PNG"]) == "loaded"
  assert _load_outcome(b"GIF89a" + b"\0" * 10) == "refused"
  assert _pth_outcome(LEGACY) == "loaded"
  assert _pth_outcome(LEGACY[:1000]) == "refused"
