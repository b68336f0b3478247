"""jaxstyle.optim.optimizers.torch_lbfgs against torch.optim.LBFGS itself (a fixture torch made)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxstyle.optim.optimizers import torch_lbfgs
from tests.conftest import FIXTURES

RUNS = FIXTURES / "presets_torch_runs.npz"  # tests/fixtures/make_preset_fixtures.py


def rosenbrock(x):
  return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_iterates_equal_torch_lbfgs_in_float64():
  """Rosenbrock, history 3, lr 0.2, 40 iterations: the iterates torch.optim.LBFGS took, to
  float64 round-off. The run fills and wraps the ring of pairs and skips pairs that fail the
  curvature condition, so each of torch's rules is exercised."""
  expected = np.load(RUNS)["rosenbrock_iterates"]
  with jax.enable_x64(True):
    opt = torch_lbfgs(memory_size=3, learning_rate=0.2)
    x = jnp.asarray(np.load(RUNS)["rosenbrock_x0"])
    state = opt.init(x)
    update = jax.jit(opt.update)
    got, kept = [x], 0
    for _ in range(40):
      updates, new = update(jax.grad(rosenbrock)(x), state)
      kept += int(new.next_slot != state.next_slot)  # A pair kept moves the ring on.
      x, state = optax.apply_updates(x, updates), new
      got.append(x)
    assert update._cache_size() == 1  # Every iteration, the first included, is one program.
  np.testing.assert_allclose(np.stack(got), expected, rtol=1e-10, atol=1e-12)
  skipped = 39 - kept  # The first update has no pair.
  assert kept > 3 and skipped > 0


@pytest.mark.slow
def test_first_step_is_lr_over_the_gradients_l1_norm():
  """torch: t = lr·min(1, 1/‖g‖₁) at the first iteration (optax's fixed step uses ‖g‖₂)."""
  g = jnp.asarray([3.0, -4.0, 1.0])
  opt = torch_lbfgs(learning_rate=0.5)
  updates, _ = opt.update(g, opt.init(jnp.zeros(3)))
  np.testing.assert_allclose(updates, -0.5 * g / 8.0, rtol=1e-7)
  small = jnp.asarray([0.1, -0.2])  # ‖g‖₁ < 1: t = lr.
  updates, _ = opt.update(small, opt.init(jnp.zeros(2)))
  np.testing.assert_allclose(updates, -0.5 * small, rtol=1e-7)


def test_memory_size_is_checked():
  with pytest.raises(ValueError, match="memory_size: expected at least 1, got 0"):
    torch_lbfgs(memory_size=0)
