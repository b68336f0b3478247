"""Batched runs: one vmapped program equals N single runs; blending; sharding."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jaxstyle
from jaxstyle import images as image_io
from jaxstyle import transfer
from tests.conftest import smooth_image

CONTENT = smooth_image(40, 48, seed=1)
STYLES = [smooth_image(56, 40, seed=2), smooth_image(30, 60, seed=3), smooth_image(48, 48, seed=4)]
BASE = jaxstyle.StyleConfig(size=32, iters=6)
CONFIGS = [BASE, BASE.replace(style_weight=1e3, init="noise", seed=7),
           BASE.replace(tv_weight=1.0, content_weight=3.0)]


def _assert_same_run(batched, single):
  assert batched.iterations == single.iterations and batched.error is None
  for k in single.history:
    np.testing.assert_allclose(batched.history[k], single.history[k], rtol=2e-3)
  assert np.abs(batched.image.astype(int) - single.image.astype(int)).max() <= 2


@pytest.mark.slow
def test_members_equal_single_runs(narrow_weights):
  batch = jaxstyle.stylize_batch(CONTENT, STYLES, CONFIGS, weights=narrow_weights)
  assert len(batch) == 3
  for style, config, result in zip(STYLES, CONFIGS, batch):
    _assert_same_run(result, jaxstyle.stylize(CONTENT, style, config, weights=narrow_weights))
  # The members really differ (different styles, weights and inits).
  assert not np.array_equal(batch[0].image, batch[1].image)


@pytest.mark.slow
def test_max_members_splits_into_programs_of_one_shape(narrow_weights):
  whole = jaxstyle.stylize_batch(CONTENT, STYLES, CONFIGS, weights=narrow_weights)
  transfer.run_chunks.clear_cache()  # Count the split run's programs only.
  split = jaxstyle.stylize_batch(CONTENT, STYLES, CONFIGS, weights=narrow_weights, max_members=2)
  for a, b in zip(whole, split):
    _assert_same_run(a, b)
  # Groups of 2 and 1 (padded to 2) share one program of 2 members.
  assert transfer.run_chunks._cache_size() == 1


def test_a_failing_member_does_not_stop_the_others(narrow_weights):
  configs = [BASE, BASE.replace(tv_weight=1e38)]  # TV x 1e38 overflows float32.
  good, bad = jaxstyle.stylize_batch(CONTENT, STYLES[:2], configs, weights=narrow_weights)
  assert good.error is None and good.iterations == 6
  assert "objective is inf at the initial image" in bad.error and bad.iterations == 0


def test_members_may_differ_only_in_member_fields(narrow_weights):
  with pytest.raises(jaxstyle.ConfigError, match="member 1: size is 48 but member 0 has 32"):
    jaxstyle.stylize_batch(CONTENT, STYLES[:2], [BASE, BASE.replace(size=48)],
                           weights=narrow_weights)
  with pytest.raises(jaxstyle.ConfigError, match="as many configs and keys"):
    jaxstyle.stylize_batch(CONTENT, STYLES, CONFIGS[:2], weights=narrow_weights)


def test_blended_target_is_the_weighted_sum_of_grams(narrow_weights):
  spec = jaxstyle.ObjectiveSpec.from_config(BASE, "caffe")
  params = narrow_weights.params
  content = image_io.as_rgb(CONTENT, 32, what="content")
  a, b = (image_io.as_rgb(s, 32, what="style") for s in STYLES[:2])
  blend = jaxstyle.make_targets(params, content, [a, b], spec, blend_weights=[1.0, 3.0])
  ta = jaxstyle.make_targets(params, content, a, spec)
  tb = jaxstyle.make_targets(params, content, b, spec)
  for name in spec.style_layers:
    np.testing.assert_allclose(blend.style[name], 0.25 * ta.style[name] + 0.75 * tb.style[name],
                               rtol=1e-5)
  with pytest.raises(jaxstyle.ConfigError, match="--style-blend-weights: expected 2"):
    jaxstyle.make_targets(params, content, [a, b], spec, blend_weights=[1.0])


SHARDED = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    import jax, numpy as np, jaxstyle
    from jaxstyle import transfer
    from tests.conftest import smooth_image
    assert len(jax.local_devices()) == 4, jax.local_devices()
    seen = []
    original = transfer.run_chunks
    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(len(out[0].image.sharding.device_set))
        return out
    transfer.run_chunks = recording
    w = jaxstyle.random_weights(seed=0, width_scale=0.125)
    content = smooth_image(40, 48, seed=1)
    styles = [smooth_image(56, 40, seed=s) for s in range(4)]
    for optimizer in ("lbfgs", "adam"):  # lax.map and vmap inside shard_map.
        config = jaxstyle.StyleConfig(size=32, iters=4, optimizer=optimizer)
        seen.clear()
        sharded = jaxstyle.stylize_batch(content, styles, config, weights=w)
        placed = set(seen)
        # The last member (on device 3) against a single run.
        single = jaxstyle.stylize(content, styles[3], config, weights=w)
        np.testing.assert_allclose(sharded[3].history["total"], single.history["total"],
                                   rtol=2e-3)
        assert np.abs(sharded[3].image.astype(int) - single.image.astype(int)).max() <= 2
        print(optimizer, "sharded over", placed, "devices")
    # A training step with the batch split over the 4 devices, against the same on one.
    import optax
    from flax import nnx
    from jaxstyle import presets
    from jaxstyle.nets import JohnsonNet, JohnsonSpec
    from jaxstyle.nets import train as training
    from jaxstyle.objective import LossWeights, ObjectiveSpec, features, run_params, stack
    from jaxstyle.objective import style_targets
    # Johnson's layers on the VGG19 made above (a VGG16 would cost its own init).
    objective = presets.perceptual_vgg16().replace(size=16, network="vgg19")
    spec = ObjectiveSpec.from_config(objective, "caffe")
    vgg = run_params(w, spec)
    at_crop = features(vgg, jax.numpy.zeros((16, 16, 3)), spec.layers, spec)
    targets = stack([style_targets(vgg, at_crop, [smooth_image(16, 16, seed=9)], spec, None)])
    photos = np.stack([smooth_image(16, 16, seed=i) for i in range(4)])
    static = training._Static(spec, 1, 1e-3)
    placed, losses = [], []
    for place in (training.batch_placement(4), jax.numpy.asarray):
        graphdef, state = nnx.split(JohnsonNet(JohnsonSpec(width=0.125), rngs=nnx.Rngs(0)))
        state = nnx.to_pure_dict(state)
        opt_state = optax.adam(1e-3).init(state)
        curve = []
        for step in range(5):
            batch = place(photos)
            placed.append(len(batch.sharding.device_set))
            state, opt_state, terms = training.train_step(
                state, opt_state, graphdef, vgg, targets, batch, place(np.zeros(4, np.int32)),
                LossWeights.from_config(objective), static)
            curve.append(float(terms["total"]))
        losses.append(curve)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    placed = set(placed[:5])
    print("training batch split over", set(placed), "devices")
""")


@pytest.mark.subprocess
def test_members_are_sharded_over_devices():
  root = str(Path(__file__).resolve().parents[1])
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
         "PATH": "/usr/bin:/bin"}
  proc = subprocess.run([sys.executable, "-c", SHARDED.format(root=root)], capture_output=True,
                        text=True, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "lbfgs sharded over {4} devices" in proc.stdout
  assert "adam sharded over {4} devices" in proc.stdout
  assert "training batch split over {4} devices" in proc.stdout  # Same losses as one device.
