"""VGG19 forward, layer names, preprocessing, random init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import vgg
from tests import reference as ref


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_features_match_numpy_reference(narrow_weights, pooling):
  rng = np.random.default_rng(0)
  x = rng.normal(scale=50, size=(1, 35, 42, 3)).astype(np.float32)  # Odd sizes: floor pooling.
  layers = {"block1_conv1": "block1_conv1", "relu2_2": "block2_conv2", "conv3_4": "pre 3_4",
            "relu4_2": "block4_conv2", "conv5_1": "pre 5_1", "block5_conv4": "block5_conv4"}
  got = jaxstyle.vgg_features(narrow_weights.params, x, layers, pooling=pooling)
  want = ref.vgg19_forward(narrow_weights.params, x[0], pooling)
  assert list(got) == list(layers)
  for name, reference_name in layers.items():
    assert got[name].shape == (1,) + want[reference_name].shape
    np.testing.assert_allclose(got[name][0], want[reference_name], rtol=2e-4,
                               atol=2e-4 * np.abs(want[reference_name]).max())
  assert np.min(got["conv3_4"]) < 0  # Pre-ReLU taps keep their negative values.


def test_vgg16_features_match_numpy_reference():
  params = jaxstyle.random_weights(seed=1, width_scale=0.125, network="vgg16").params
  assert jaxstyle.network_of(params) == "vgg16" and "block3_conv4" not in params
  x = np.random.default_rng(0).normal(scale=50, size=(1, 35, 42, 3)).astype(np.float32)
  layers = ["relu1_2", "conv2_2", "relu3_3", "relu4_3", "block5_conv3"]
  got = jaxstyle.vgg_features(params, x, layers)
  want = ref.vgg16_forward(params, x[0])
  for name, reference_name in zip(layers, ["block1_conv2", "pre 2_2", "block3_conv3",
                                           "block4_conv3", "block5_conv3"]):
    np.testing.assert_allclose(got[name][0], want[reference_name], rtol=2e-4,
                               atol=2e-4 * np.abs(want[reference_name]).max())
  with pytest.raises(jaxstyle.ConfigError, match="unknown VGG16 layer 'relu3_4'"):
    jaxstyle.vgg_features(params, x, ["relu3_4"])


def test_batch_members_are_independent(narrow_weights):
  x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype(np.float32)
  both = jaxstyle.vgg_features(narrow_weights.params, x, ["relu3_1"])["relu3_1"]
  one = jaxstyle.vgg_features(narrow_weights.params, x[1:], ["relu3_1"])["relu3_1"]
  np.testing.assert_allclose(both[1:], one, rtol=1e-5, atol=1e-5)


def test_layer_spellings():
  assert jaxstyle.canonical_layer("relu4_2") == "block4_conv2"
  assert jaxstyle.canonical_layer("block4_conv2") == "block4_conv2"
  assert jaxstyle.canonical_layer("conv4_2") == "block4_conv2_preact"  # Before the ReLU.
  assert jaxstyle.canonical_layer("conv5_3", "vgg16") == "block5_conv3_preact"
  assert len(set(jaxstyle.LAYER_NAMES)) == 16


@pytest.mark.parametrize("bad", ["relu6_1", "block1_conv3", "fc7", "relu1_3"])
def test_unknown_layer_lists_the_valid_ones(bad):
  with pytest.raises(jaxstyle.ConfigError, match=f"unknown VGG19 layer '{bad}'.*block5_conv4"):
    jaxstyle.canonical_layer(bad)


def test_forward_stops_at_the_deepest_requested_layer(narrow_weights):
  def count_convs(layers):
    forward = jax.jit(lambda x: jaxstyle.vgg_features(narrow_weights.params, x, layers))
    return forward.lower(jnp.zeros((1, 32, 32, 3))).as_text().count("stablehlo.convolution")

  assert count_convs(["relu1_1"]) == 1
  assert count_convs(["relu2_1", "relu1_2"]) == 3
  assert count_convs(["relu5_4"]) == 16


def test_bad_image_rank_is_explained(narrow_weights):
  with pytest.raises(jaxstyle.ConfigError, match="N x H x W x 3.*x\\[None\\]"):
    jaxstyle.vgg_features(narrow_weights.params, jnp.zeros((8, 8, 3)), ["relu1_1"])


def test_preprocess_conventions_match_their_definitions():
  rgb = np.random.default_rng(0).uniform(0, 255, (4, 5, 3)).astype(np.float32)
  np.testing.assert_allclose(jaxstyle.preprocess(rgb, "caffe"), ref.preprocess_caffe(rgb), atol=1e-4)
  np.testing.assert_allclose(jaxstyle.preprocess(rgb, "torch"), ref.preprocess_torch(rgb), atol=1e-5)
  # A mid-grey pixel in caffe: BGR order, minus the BGR mean.
  np.testing.assert_allclose(jaxstyle.preprocess(np.array([[[10.0, 20.0, 30.0]]]), "caffe")[0, 0],
                             [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-4)
  for convention in ("caffe", "torch"):
    np.testing.assert_allclose(
        jaxstyle.deprocess(jaxstyle.preprocess(rgb, convention), convention), rgb, atol=1e-3)
  with pytest.raises(jaxstyle.ConfigError, match="convention"):
    jaxstyle.preprocess(rgb, "tf")


@pytest.mark.slow
def test_random_vgg_is_he_initialised():
  params = jaxstyle.random_vgg(key=jax.random.key(0))
  for name, shapes in vgg.expected_shapes(1.0).items():
    assert params[name]["kernel"].shape == shapes["kernel"]
    assert params[name]["bias"].shape == shapes["bias"]
    assert not np.any(params[name]["bias"])
  kernel = np.asarray(params["block4_conv1"]["kernel"])  # fan_in = 9 * 256.
  np.testing.assert_allclose(kernel.std(), np.sqrt(2 / (9 * 256)), rtol=0.01)
  narrow = jaxstyle.random_vgg(key=jax.random.key(0), width_scale=0.125)
  assert narrow["block1_conv1"]["kernel"].shape == (3, 3, 3, 8)
  assert narrow["block5_conv4"]["kernel"].shape == (3, 3, 64, 64)
  other = jaxstyle.random_vgg(key=jax.random.key(1), width_scale=0.125)
  assert not np.allclose(narrow["block1_conv1"]["kernel"], other["block1_conv1"]["kernel"])


def test_conv3x3_gradients_equal_jax_own_rule():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 7, 5, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(2, 7, 5, 4)), jnp.float32)

  def builtin(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  # The forward against the NumPy loop (not against the builtin it calls).
  for n in range(2):
    np.testing.assert_allclose(vgg.conv3x3(x, k)[n],
                               ref.conv3x3_same(np.asarray(x[n]), np.asarray(k), 0.0),
                               rtol=1e-5, atol=1e-5)
  # The custom gradient rule against JAX's own rule for the builtin convolution.
  ours = jax.grad(lambda x, k: jnp.vdot(w, jnp.tanh(vgg.conv3x3(x, k))), argnums=(0, 1))(x, k)
  theirs = jax.grad(lambda x, k: jnp.vdot(w, jnp.tanh(builtin(x, k))), argnums=(0, 1))(x, k)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
