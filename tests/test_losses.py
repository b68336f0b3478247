"""Losses against NumPy transcriptions of their formulas, and their gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from tests import reference as ref


@pytest.fixture
def rng():
  return np.random.default_rng(0)


def test_gram_matrix_matches_definition(rng):
  F = rng.normal(size=(5, 7, 4)).astype(np.float32)
  np.testing.assert_allclose(jaxstyle.gram_matrix(F), ref.gram(F), rtol=1e-5)


def test_style_layer_loss_matches_eq4(rng):
  F = rng.normal(size=(6, 5, 3)).astype(np.float32)
  A = ref.gram(rng.normal(size=(6, 5, 3)))
  got = jaxstyle.style_layer_loss(F, A.astype(np.float32))
  np.testing.assert_allclose(got, ref.style_layer_loss(F, A), rtol=1e-5)
  # The 4N²M² normalisation with the numbers written out: N = 3 channels, M = 30 positions.
  np.testing.assert_allclose(got, np.sum((ref.gram(F) - A) ** 2) / (4 * 9 * 900), rtol=1e-5)


def test_style_loss_is_zero_at_target_and_size_invariant(rng):
  F = rng.normal(size=(4, 4, 3)).astype(np.float32)
  assert float(jaxstyle.style_layer_loss(F, jaxstyle.gram_matrix(F))) == 0.0
  # Tiling an image 2x2 keeps its feature statistics, so eq. 4 is unchanged
  # when the target Gram is tiled too: the 1/M² normalisation at work.
  tiled = np.tile(F, (2, 2, 1))
  A = ref.gram(rng.normal(size=(4, 4, 3)))
  np.testing.assert_allclose(jaxstyle.style_layer_loss(tiled, 4 * A.astype(np.float32)),
                             jaxstyle.style_layer_loss(F, A.astype(np.float32)), rtol=1e-5)


def test_content_loss_is_half_squared_error(rng):
  F, P = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
  np.testing.assert_allclose(jaxstyle.content_loss(F, P), ref.content_loss(F, P), rtol=1e-5)


@pytest.mark.parametrize("beta", [2.0, 2.5, 1.0])
def test_tv_loss_matches_loop(rng, beta):
  x = rng.uniform(0, 255, size=(5, 6, 3)).astype(np.float32)
  np.testing.assert_allclose(jaxstyle.tv_loss(x, beta=beta), ref.tv_loss(x, beta), rtol=1e-5)


def test_tv_loss_of_constant_and_ramp():
  assert float(jaxstyle.tv_loss(jnp.full((4, 4, 3), 7.0))) == 0.0
  ramp = jnp.broadcast_to(jnp.arange(5.0)[None, :, None], (4, 5, 1))  # Δx = 1, Δy = 0.
  assert float(jaxstyle.tv_loss(ramp)) == 3 * 4  # (H-1)(W-1) grid cells of 1.


def _check_grad(f, x, *, rtol=1e-6):
  """Central finite differences along random directions, in float64, to ``rtol``.

  With ε = 1e-6 the truncation error is O(ε²) and the rounding error about
  1e-16/ε relative, both far below 1e-6.
  """
  g = np.asarray(jax.grad(f)(x))
  rng = np.random.default_rng(1)
  for _ in range(3):
    v = rng.normal(size=x.shape)
    eps = 1e-6
    fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(np.sum(g * v), fd, rtol=rtol)


def test_gradients_match_finite_differences(rng):
  with jax.enable_x64(True):
    F = jnp.asarray(rng.normal(size=(4, 3, 3)))
    A = jnp.asarray(ref.gram(rng.normal(size=(4, 3, 3))))
    P = jnp.asarray(rng.normal(size=(4, 3, 3)))
    x = jnp.asarray(rng.uniform(0, 255, size=(5, 4, 3)))
    _check_grad(lambda f: jaxstyle.style_layer_loss(f, A), F)
    _check_grad(lambda f: jaxstyle.content_loss(f, P), F)
    _check_grad(lambda y: jaxstyle.tv_loss(y), x)
    _check_grad(lambda y: jaxstyle.tv_loss(y, beta=2.5), x)


def test_losses_vmap_over_a_batch(rng):
  F = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
  batched = jax.vmap(jaxstyle.gram_matrix)(F)
  for i in range(3):
    np.testing.assert_allclose(batched[i], ref.gram(F[i]), rtol=1e-5)
