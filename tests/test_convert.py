"""Converters on files in the real Keras and torchvision layouts, and downloading."""

import hashlib
import http.server
import io
import os
import pickle
import socket
import threading
import zipfile

import h5py
import numpy as np
import pytest

import jaxstyle
from jaxstyle import vgg
from jaxstyle.vgg import convert
from jaxstyle.vgg.pth import load_state_dict
from tests import reference as ref
from tests.conftest import FIXTURES

KERAS_ORDER = ["input_1", "block1_conv1", "block1_conv2", "block1_pool", "block2_conv1",
               "block2_conv2", "block2_pool", "block3_conv1", "block3_conv2", "block3_conv3",
               "block3_conv4", "block3_pool", "block4_conv1", "block4_conv2", "block4_conv3",
               "block4_conv4", "block4_pool", "block5_conv1", "block5_conv2", "block5_conv3",
               "block5_conv4", "block5_pool"]


# vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 lists VGG16's layers the same way.
KERAS16_ORDER = [n for n in KERAS_ORDER if n not in ("block3_conv4", "block4_conv4",
                                                     "block5_conv4")]


def write_keras_h5(path, params, *, style="keras1"):
  """A Keras weights file in the layout of vgg19_..._notop.h5.

  ``keras1`` names datasets ``block1_conv1_W_1:0`` as the published file
  does; ``keras2`` uses later Keras' ``block1_conv1/kernel:0`` (nested
  groups). Input and pooling layers are listed with no weights, and names
  are fixed-length byte strings, as Keras writes them.
  """
  order = KERAS_ORDER if "block5_conv4" in params else KERAS16_ORDER
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = np.array(order, dtype="S")
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.0.8" if style == "keras2" else b"1.2.2"
    for name in order:
      g = f.create_group(name)
      if name not in params:
        g.attrs["weight_names"] = np.array([], dtype="S")
        continue
      if style == "keras1":
        names = [f"{name}_W_1:0", f"{name}_b_1:0"]
      else:
        names = [f"{name}/kernel:0", f"{name}/bias:0"]
      g.attrs["weight_names"] = np.array(names, dtype="S")
      g.create_dataset(names[0], data=np.asarray(params[name]["kernel"]))
      g.create_dataset(names[1], data=np.asarray(params[name]["bias"]))
  return path


@pytest.mark.parametrize("style", ["keras1", "keras2"])
def test_keras_conversion_preserves_features(narrow_weights, tmp_path, style):
  src = write_keras_h5(tmp_path / convert.KERAS_FILES["vgg19"].filename, narrow_weights.params,
                       style=style)
  dst = tmp_path / "vgg19.h5"
  assert convert.convert(src, dst) == "keras"
  loaded = jaxstyle.load_weights(dst)
  assert loaded.convention == "caffe"
  with h5py.File(dst) as f:
    assert f.attrs["source_name"] == convert.KERAS_FILES["vgg19"].filename
    assert f.attrs["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
  # Features from the converted file vs a NumPy forward over the *source* arrays.
  with h5py.File(src) as f:
    source = {n: {"kernel": f[n][f[n].attrs["weight_names"][0].decode()][()],
                  "bias": f[n][f[n].attrs["weight_names"][1].decode()][()]}
              for n in jaxstyle.LAYER_NAMES}
  rgb = np.random.default_rng(0).uniform(0, 255, (24, 20, 3)).astype(np.float32)
  x = jaxstyle.preprocess(rgb, "caffe")
  want = ref.vgg19_forward(source, np.asarray(x))
  got = jaxstyle.vgg_features(loaded.params, x[None], ["relu3_2", "relu5_1"])
  for name, canonical in (("relu3_2", "block3_conv2"), ("relu5_1", "block5_conv1")):
    np.testing.assert_allclose(got[name][0], want[canonical], rtol=1e-4,
                               atol=1e-4 * np.abs(want[canonical]).max())


def test_keras_file_with_a_wrong_shape_names_the_layer(narrow_weights, tmp_path):
  params = {k: dict(v) for k, v in narrow_weights.params.items()}
  params["block3_conv3"]["kernel"] = np.zeros((3, 3, 32, 31), np.float32)
  src = write_keras_h5(tmp_path / "bad.h5", params)
  with pytest.raises(jaxstyle.WeightsError,
                     match=r"bad.h5: layer block3_conv3 kernel has shape \(3, 3, 32, 31\), "
                           r"expected \(3, 3, 32, 32\)"):
    convert.convert(src, tmp_path / "out.h5")
  assert not (tmp_path / "out.h5").exists()


def test_keras_vgg16_conversion(tmp_path):
  params = jaxstyle.random_weights(seed=2, width_scale=0.125, network="vgg16").params
  src = write_keras_h5(tmp_path / convert.KERAS_FILES["vgg16"].filename, params)
  dst = tmp_path / "vgg16.h5"
  assert convert.convert(src, dst) == "keras"
  loaded = jaxstyle.load_weights(dst, network="vgg16")
  assert loaded.network == "vgg16" and sorted(loaded.params) == sorted(jaxstyle.layer_names("vgg16"))
  for name in loaded.params:
    np.testing.assert_array_equal(loaded.params[name]["kernel"], params[name]["kernel"])
  with pytest.raises(jaxstyle.WeightsError, match="holds VGG16 weights, but VGG19 is needed"):
    jaxstyle.load_weights(dst, network="vgg19")


@pytest.mark.parametrize("fixture", ["vgg19_narrow_zip.pth", "vgg19_narrow_legacy.pth",
                                     "vgg16_narrow_zip.pth"])
def test_torchvision_conversion_matches_torch_features(tmp_path, fixture):
  network = fixture[:5]
  dst = tmp_path / f"{network}.h5"
  assert convert.convert(FIXTURES / fixture, dst) == "torch"
  loaded = jaxstyle.load_weights(dst)
  assert loaded.convention == "torch" and loaded.network == network
  expected = np.load(FIXTURES / f"{network}_narrow_torch_features.npz")
  names = [k for k in expected.files if k != "input_NxHxWx3"]
  got = jaxstyle.vgg_features(loaded.params, expected["input_NxHxWx3"], names)
  for name in names:  # Computed by torch itself when the fixture was made.
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-4,
                               atol=1e-5 * np.abs(expected[name]).max())


def test_both_torch_formats_hold_the_same_tensors():
  a = load_state_dict(FIXTURES / "vgg19_narrow_zip.pth")
  b = load_state_dict(FIXTURES / "vgg19_narrow_legacy.pth")
  assert sorted(a) == sorted(b) and "classifier.6.weight" in a
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert a["features.34.weight"].shape == (16, 16, 3, 3)  # OIHW, as torchvision stores it.


class _RunsCode:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def _zip_pth(payload: bytes) -> bytes:
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    z.writestr("archive/data.pkl", payload)
    z.writestr("archive/version", "3\n")
  return buf.getvalue()


def _legacy_pth(payload: bytes) -> bytes:
  return b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {})) + payload


@pytest.mark.parametrize("wrap", [_zip_pth, _legacy_pth])
def test_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, wrap):
  marker = tmp_path / "pwned"
  evil = tmp_path / "evil.pth"
  evil.write_bytes(wrap(pickle.dumps({"features.0.weight": _RunsCode(marker)}, protocol=2)))
  with pytest.raises(jaxstyle.WeightsError, match=r"evil.pth: refusing to load.*(posix|os)\.system"):
    convert.convert(evil, tmp_path / "out.h5")
  assert not marker.exists()
  assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("cut", [100, 20000, -10])
def test_truncated_pth_is_refused(tmp_path, cut):
  for fixture in ("vgg19_narrow_zip.pth", "vgg19_narrow_legacy.pth"):
    bad = tmp_path / fixture
    bad.write_bytes((FIXTURES / fixture).read_bytes()[:cut])
    with pytest.raises(jaxstyle.WeightsError, match=str(bad)):
      convert.convert(bad, tmp_path / "out.h5")


def test_unknown_sources_are_refused(tmp_path, narrow_h5):
  text = tmp_path / "weights.bin"
  text.write_bytes(b"hello")
  with pytest.raises(jaxstyle.WeightsError, match="not a Keras .h5 or torch .pth"):
    convert.convert(text, tmp_path / "out.h5")
  with pytest.raises(jaxstyle.WeightsError, match="already a jaxstyle weights file"):
    convert.convert(narrow_h5, tmp_path / "out.h5")


def test_offline_download_fails_and_leaves_nothing(tmp_path):
  dest = tmp_path / "weights" / "vgg19.h5"
  # A port bound for the whole test and never listening: connections are refused.
  with socket.socket() as closed:
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}/vgg19.h5"
    with pytest.raises(jaxstyle.WeightsError,
                       match="download failed.*by hand.*jaxstyle weights convert"):
      convert.download(dest, url=url, timeout=5)
  assert not (tmp_path / "weights").exists()  # Not even the directory it made.


@pytest.fixture
def http_server(tmp_path):
  """Serves tmp_path/www on loopback only."""
  root = tmp_path / "www"
  root.mkdir()

  class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
      super().__init__(*args, directory=str(root), **kwargs)

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield root, f"http://127.0.0.1:{server.server_address[1]}"
  server.shutdown()


def test_download_checks_md5_and_converts(http_server, narrow_weights, tmp_path):
  root, base = http_server
  src = write_keras_h5(root / convert.KERAS_FILES["vgg19"].filename,
                       narrow_weights.params)
  md5 = hashlib.md5(src.read_bytes()).hexdigest()
  dest = tmp_path / "weights" / "vgg19.h5"
  with pytest.raises(jaxstyle.WeightsError, match=f"has md5 {md5}, expected 0000"):
    convert.download(dest, url=f"{base}/{src.name}", md5="0" * 32)
  assert not dest.parent.exists()
  assert convert.download(dest, url=f"{base}/{src.name}", md5=md5) == dest
  assert list(dest.parent.iterdir()) == [dest]
  loaded = jaxstyle.load_weights(dest)
  np.testing.assert_array_equal(loaded.params["block2_conv1"]["kernel"],
                                narrow_weights.params["block2_conv1"]["kernel"])


def test_published_constants():
  assert convert.KERAS_FILES["vgg19"].md5 == "253f8cb515780f3b799900260a226db6"
  assert convert.KERAS_FILES["vgg19"].url.endswith(
      "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
  assert vgg.torchvision_feature_indices("vgg19") == (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25,
                                                     28, 30, 32, 34)
  assert vgg.torchvision_feature_indices("vgg16") == (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26,
                                                     28)
  assert convert.KERAS_FILES["vgg16"].md5 == "6d6bbae143d832006294945121d1f1fc"
  assert convert.KERAS_FILES["vgg16"].url.endswith(
      "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
  assert convert.TORCHVISION_FILES["vgg16"].endswith("vgg16-397923af.pth")


@pytest.fixture(scope="module")
def keras_vgg19(tmp_path_factory):
  """Keras's own VGG19 (random weights), saved by Keras in the published file's layout.

  ``keras.applications.VGG19(weights=None, include_top=False)`` is the model
  the published ``..._notop.h5`` was saved from; Keras 3 still writes that
  weights-only HDF5 layout with ``save_weights_to_hdf5_group``, the writer of
  Keras 2's ``save_weights(".h5")`` and the format its ``load_weights``
  reads the published file with. Returns (model, path).
  """
  import jax
  os.environ["KERAS_BACKEND"] = "jax"  # The one backend this project installs.
  keras = pytest.importorskip("keras", reason="keras (a dev dependency) builds this fixture")
  from keras.src.legacy.saving import legacy_h5_format
  keras.utils.set_random_seed(0)
  with jax.numpy_rank_promotion("allow"):  # Keras's own ops broadcast biases by rank.
    model = keras.applications.VGG19(weights=None, include_top=False,
                                     input_shape=(None, None, 3))
  path = tmp_path_factory.mktemp("keras") / convert.KERAS_FILES["vgg19"].filename
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)
  return model, path


@pytest.mark.slow
def test_keras3_file_converts_to_features_equal_to_keras_forward(keras_vgg19, tmp_path):
  import jax
  import keras
  model, src = keras_vgg19
  # Keras itself loads the file back the way it loads the published one.
  with jax.numpy_rank_promotion("allow"):
    twin = keras.applications.VGG19(weights=None, include_top=False, input_shape=(None, None, 3))
    twin.load_weights(src)
  np.testing.assert_array_equal(twin.get_layer("block4_conv3").get_weights()[0],
                                model.get_layer("block4_conv3").get_weights()[0])
  dst = tmp_path / "vgg19.h5"
  assert convert.convert(src, dst) == "keras"
  loaded = jaxstyle.load_weights(dst)
  assert loaded.convention == "caffe" and loaded.network == "vgg19"
  rgb = np.random.default_rng(0).uniform(0, 255, (1, 40, 36, 3)).astype(np.float32)
  layers = ["block1_conv2", "block3_conv2", "block5_conv1"]
  with jax.numpy_rank_promotion("allow"):
    preprocessed = keras.applications.vgg19.preprocess_input(rgb.copy())
    taps = keras.Model(model.input, [model.get_layer(n).output for n in layers])
    want = [np.asarray(a) for a in taps(preprocessed)]
  # jaxstyle's caffe preprocessing is Keras's, and the features are Keras's.
  np.testing.assert_allclose(jaxstyle.preprocess(rgb, "caffe"), preprocessed, atol=1e-4)
  got = jaxstyle.vgg_features(loaded.params, jaxstyle.preprocess(rgb, "caffe"), layers)
  for name, expected in zip(layers, want):
    np.testing.assert_allclose(got[name], expected, rtol=1e-4,
                               atol=1e-5 * np.abs(expected).max(), err_msg=name)
