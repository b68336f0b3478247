"""The jaxstyle weights format, its validation, and the weights lookup order."""

import warnings

import h5py
import numpy as np
import pytest

import jaxstyle
from jaxstyle.vgg import weights as W


def test_save_load_roundtrip(narrow_weights, narrow_h5):
  loaded = jaxstyle.load_weights(narrow_h5)
  assert loaded.convention == "caffe" and not loaded.is_random
  assert loaded.sha256 == W.sha256_file(narrow_h5) and len(loaded.sha256) == 64
  for name in jaxstyle.LAYER_NAMES:
    for part in ("kernel", "bias"):
      np.testing.assert_array_equal(loaded.params[name][part], narrow_weights.params[name][part])
  with h5py.File(narrow_h5) as f:  # The documented layout, read without jaxstyle.
    assert f.attrs["format"] == "jaxstyle-vgg" and f.attrs["format_version"] == 2
    assert f.attrs["network"] == "vgg19"
    assert f["block3_conv2/kernel"].shape == (3, 3, 32, 32) and f["block3_conv2/bias"].dtype == np.float32


def _copy_with(src, dst, edit):
  with h5py.File(src) as a, h5py.File(dst, "w") as b:
    for k, v in a.attrs.items():
      b.attrs[k] = v
    for name in a:
      a.copy(name, b)
    edit(b)
  return dst


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.__delitem__("block3_conv1"), "layer block3_conv1 is missing"),
    (lambda f: (f["block2_conv2"].__delitem__("kernel"),
                f["block2_conv2"].create_dataset("kernel", data=np.zeros((3, 3, 16, 7), np.float32))),
     r"layer block2_conv2 kernel has shape \(3, 3, 16, 7\), expected \(3, 3, 16, 16\)"),
    (lambda f: f["block5_conv4/bias"].__setitem__(0, np.nan), "layer block5_conv4 bias has NaN"),
    (lambda f: f["block4_conv1/kernel"].__setitem__((0, 0, 0, 0), 0.5),
     "layer block4_conv1 does not match its recorded sha256"),
    (lambda f: f.attrs.__setitem__("format", "something"), "not a jaxstyle weights file"),
    (lambda f: f.attrs.__setitem__("convention", "tf"), "convention attribute 'tf'"),
])
def test_bad_files_name_file_layer_and_shapes(narrow_h5, tmp_path, edit, message):
  bad = _copy_with(narrow_h5, tmp_path / "bad.h5", edit)
  with pytest.raises(jaxstyle.WeightsError, match=message) as e:
    jaxstyle.load_weights(bad)
  assert str(bad) in str(e.value)


def test_truncated_and_non_h5_files(narrow_h5, tmp_path):
  truncated = tmp_path / "truncated.h5"
  truncated.write_bytes(narrow_h5.read_bytes()[:5000])
  text = tmp_path / "notes.h5"
  text.write_text("not hdf5")
  for path in (truncated, text, tmp_path / "missing.h5", tmp_path):
    with pytest.raises(jaxstyle.WeightsError, match=str(path)):
      jaxstyle.load_weights(path)


def test_save_refuses_wrong_shapes_and_leaves_no_file(narrow_weights, tmp_path):
  params = {k: dict(v) for k, v in narrow_weights.params.items()}
  params["block4_conv4"] = {"kernel": np.zeros((3, 3, 64, 64), np.float32),
                            "bias": np.zeros((3,), np.float32)}
  dst = tmp_path / "out.h5"
  with pytest.raises(jaxstyle.WeightsError, match="block4_conv4 bias has shape"):
    jaxstyle.save_weights(dst, params, convention="caffe", source_name="x", source_sha256="")
  assert list(tmp_path.iterdir()) == []


def test_lookup_order(narrow_h5, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.delenv(W.ENV_VAR, raising=False)
  with pytest.raises(jaxstyle.WeightsError, match="weights/vgg19.h5.*jaxstyle weights download"):
    jaxstyle.resolve_weights(None)
  (tmp_path / "weights").mkdir()
  (tmp_path / "weights" / "vgg19.h5").write_bytes(narrow_h5.read_bytes())
  assert jaxstyle.resolve_weights(None).sha256 == W.sha256_file(narrow_h5)
  monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "elsewhere.h5"))
  with pytest.raises(jaxstyle.WeightsError, match=r"elsewhere.h5: no VGG19 weights at \$JAXSTYLE_WEIGHTS"):
    jaxstyle.resolve_weights(None)
  with pytest.raises(jaxstyle.WeightsError, match="nope.h5: no such weights file"):
    jaxstyle.resolve_weights("nope.h5")


def test_random_spec_warns_and_parses():
  with pytest.warns(jaxstyle.RandomWeightsWarning, match="RANDOM VGG features"):
    w = jaxstyle.resolve_weights("random:3:0.25")
  assert w.is_random and w.sha256 is None and w.source == "random:3:0.25"
  assert w.params["block1_conv1"]["kernel"].shape == (3, 3, 3, 16)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    again = jaxstyle.resolve_weights("random:3:0.25")
    other = jaxstyle.resolve_weights("random:4:0.25")
  np.testing.assert_array_equal(w.params["block1_conv1"]["kernel"], again.params["block1_conv1"]["kernel"])
  assert not np.array_equal(w.params["block1_conv1"]["kernel"], other.params["block1_conv1"]["kernel"])
  for bad in ("random:x", "random:1:2", "random:1:0.5:9"):
    with pytest.raises(jaxstyle.WeightsError, match="random:SEED:WIDTH_SCALE"):
      jaxstyle.resolve_weights(bad)
