"""Training a feed-forward network on jaxstyle's own objective.

Each step takes a batch of photos x_i, runs the network, and minimises the
mean over the batch of the pixel optimiser's objective at its output:

    L(θ) = (1/B) Σ_i  objective(VGG, Targets(content = φ(x_i), style = A_{k_i}), f_θ(x_i, e_{k_i}))

with φ the VGG features of the photo itself (Johnson's perceptual content
loss), A_k style k's targets (computed once: they never change) and e_k the
one-hot style vector; example i of step t trains style k_i = (t·B + i) mod N.
The loss fields of a :class:`jaxstyle.StyleConfig` choose the objective
(``--preset perceptual-vgg16`` is Johnson's); its ``size`` is the style
images' longest side. The VGG is frozen: its params are constants of the
compiled step, only the network's get gradients. Adam (lr 1e-3, Johnson's).

Reproducible and resumable: the network's init comes from the seed, the
photos' order from (seed, epoch) (:class:`jaxstyle.nets.data.Photos`), and
an orbax checkpoint holds the params, the optimiser state and the step, so
``resume=True`` continues bit-identically to a run never stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxstyle import images
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError, NonFiniteLossError
from jaxstyle.nets import models
from jaxstyle.nets.data import Photos, Prefetch, crop_square
from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec
from jaxstyle.objective import (LossWeights, ObjectiveSpec, Targets, features, network_features,
                                objective, run_params, stack, style_targets)
from jaxstyle.weights import Weights, resolve_weights

TERMS = ("total", "content", "style", "tv")


def _opt(default, help: str):
  return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
  """How a network is trained (the objective is a StyleConfig beside it)."""

  steps: int = _opt(40000, "training steps (Johnson: 40k at batch 4, about 2 COCO epochs)")
  batch: int = _opt(4, "photos per step")
  crop: int = _opt(256, "training photos: shorter side resized to this, centre-cropped square")
  lr: float = _opt(1e-3, "Adam learning rate")
  seed: int = _opt(0, "seed of the network's init and the photos' order")
  width: float = _opt(1.0, "channel multiplier of the network (0.25 for tests and small machines)")
  residual_blocks: int = _opt(5, "residual blocks")
  upsample: str = _opt("nearest", "nearest (resize + conv) or transposed (Johnson's)")
  sample_every: int = _opt(500, "write a sample grid of held-out photos every N steps (0: never)")
  checkpoint_every: int = _opt(1000, "write a checkpoint every N steps (0: only at the end)")

  def __post_init__(self):
    for name in ("steps", "batch", "crop", "sample_every", "checkpoint_every", "residual_blocks"):
      minimum = 1 if name in ("batch", "crop") else 0
      if not isinstance(getattr(self, name), int) or getattr(self, name) < minimum:
        raise ConfigError(f"--{name.replace('_', '-')}: expected an integer of at least "
                          f"{minimum}, got {getattr(self, name)!r}")
    if not self.lr > 0:
      raise ConfigError(f"--lr: expected a positive learning rate, got {self.lr}")
    if self.crop < 16:
      raise ConfigError(f"--crop: expected at least 16 px (VGG pools 4 times), got {self.crop}")
    JohnsonSpec(self.width, 1, self.residual_blocks, self.upsample)  # Checks those three.

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Static:
  """What the compiled step closes over, beside the arrays it is given."""

  spec: ObjectiveSpec
  styles: int
  lr: float


def _loss(state, graphdef, vgg, style_targets_N, photos_BxHxWx3, style_B, weights, static):
  """Mean objective over the batch, and the mean of each term (see the module docstring)."""
  net = nnx.merge(graphdef, state)
  onehot = jax.nn.one_hot(style_B, static.styles)
  out = net(photos_BxHxWx3, onehot)
  spec = static.spec
  content = jax.lax.stop_gradient(
      network_features(vgg, photos_BxHxWx3, spec.content_layers, spec))

  def one(x_HxWx3, content_i, k):
    targets = Targets(content={n: content_i[n] for n in spec.content_layers},
                      style={n: style_targets_N[n][k] for n in spec.style_layers})
    total, terms = objective(vgg, targets, x_HxWx3, weights, spec)
    return {"total": total, **terms}

  terms = jax.vmap(one)(out, content, style_B)
  means = {k: v.mean() for k, v in terms.items()}
  return means["total"], means


@partial(jax.jit, static_argnames=("graphdef", "static"), donate_argnames=("state", "opt_state"))
def train_step(state, opt_state, graphdef, vgg, style_targets_N, photos_BxHxWx3, style_B,
               weights, static: _Static):
  """One Adam step on the batch; returns the new state, optimiser state and the loss terms."""
  grads, terms = jax.grad(_loss, has_aux=True)(state, graphdef, vgg, style_targets_N,
                                               photos_BxHxWx3.astype(jnp.float32), style_B,
                                               weights, static)
  updates, opt_state = optax.adam(static.lr).update(grads, opt_state, state)
  return optax.apply_updates(state, updates), opt_state, terms


def style_indices(step: int, batch: int, styles: int) -> np.ndarray:
  """Which style each example of ``step`` trains: (step·B + i) mod N."""
  return (step * batch + np.arange(batch)) % styles


def train(style_images, data, out_dir, config: TrainConfig = TrainConfig(),
          objective_config: StyleConfig | None = None, *, weights: Weights | None = None,
          held_out=(), resume: bool = False, progress: bool = False, log=print,
          stop_after: int | None = None) -> dict:
  """Trains a network for ``style_images`` (N paths: N styles) on the photos under ``data``.

  Writes ``out_dir`` as a model directory (:mod:`jaxstyle.nets.models`) at
  the end, with ``checkpoints/`` (orbax) every ``config.checkpoint_every``
  steps, ``samples/step{N}.png`` (the held-out photos and their stylizations)
  every ``config.sample_every`` steps, and ``metrics.jsonl`` (one line per
  step: the loss terms, images/s). Returns ``{"history": ..., "model": path}``.
  ``stop_after`` ends the run early after that many steps (for tests of resume).
  """
  import orbax.checkpoint as ocp

  style_images = [str(s) for s in style_images]
  if not style_images:
    raise ConfigError("train: expected at least one style image")
  if objective_config is None:  # Johnson's own objective, style images at the crop size.
    from jaxstyle import presets
    objective_config = presets.perceptual_vgg16().replace(size=config.crop)
  weights = weights or resolve_weights(objective_config.weights,
                                       network=objective_config.network)
  spec = ObjectiveSpec.from_config(objective_config, weights.convention)
  vgg = run_params(weights, spec)
  out_dir = Path(out_dir)
  photos = Photos(data, crop=config.crop, batch=config.batch, seed=config.seed)
  held = [crop_square(images.load_image(p, min_side=1), config.crop) for p in held_out]
  # Targets are computed once: the Gram of each style, scaled to the crop's positions.
  at_crop = features(vgg, jnp.zeros((config.crop, config.crop, 3)), spec.layers, spec)
  targets_N = stack([style_targets(vgg, at_crop, [images.load_image(p, size=objective_config.size)],
                                   spec, None) for p in style_images])
  loss_weights = LossWeights.from_config(objective_config)
  net = JohnsonNet(JohnsonSpec(config.width, len(style_images), config.residual_blocks,
                               config.upsample), rngs=nnx.Rngs(config.seed))
  graphdef, state = nnx.split(net)
  state = nnx.to_pure_dict(state)
  opt_state = optax.adam(config.lr).init(state)
  static = _Static(spec, len(style_images), config.lr)
  record = {"styles": style_images, "data": str(data), "photos": len(photos.files),
            "train": config.to_dict(), "objective": objective_config.to_dict(),
            "weights": {"source": weights.source, "sha256": weights.sha256,
                        "random": weights.is_random}}

  manager = ocp.CheckpointManager((out_dir / "checkpoints").absolute(),
                                  options=ocp.CheckpointManagerOptions(max_to_keep=2))
  start, history = 0, {k: [] for k in TERMS}
  if resume:
    step = manager.latest_step()
    if step is None:
      raise ConfigError(f"{out_dir}: no checkpoint to resume from (run without --resume)")
    template = {"state": state, "opt_state": opt_state, "history": {k: np.zeros(step, np.float32)
                                                                    for k in TERMS}}
    saved = manager.restore(step, args=ocp.args.StandardRestore(
        jax.tree.map(ocp.utils.to_shape_dtype_struct, template)))
    state, opt_state = saved["state"], jax.tree.unflatten(
        jax.tree.structure(opt_state), jax.tree.leaves(saved["opt_state"]))
    history = {k: list(np.asarray(v)) for k, v in saved["history"].items()}
    start = step
    log(f"train: resuming at step {start} of {config.steps}")

  def save_checkpoint(step):
    _write_checkpoint(manager, step, {
        "state": state, "opt_state": opt_state,
        "history": {k: np.asarray(v, np.float32) for k, v in history.items()}})

  stop = config.steps if stop_after is None else min(config.steps, start + stop_after)
  place = _placement(config.batch)
  feed = Prefetch(photos.batch, start, stop)
  out_dir.mkdir(parents=True, exist_ok=True)
  metrics_file = out_dir / "metrics.jsonl"
  kept = [line for line in (metrics_file.read_text().splitlines() if metrics_file.exists()
                            else []) if line and json.loads(line)["step"] <= start]
  metrics_file.write_text("".join(line + "\n" for line in kept))  # Steps after the checkpoint rerun.
  metrics = open(metrics_file, "a", buffering=1)  # Line-buffered: a kill loses no written step.
  bar = _progress(config.steps, start, progress)
  began = time.perf_counter()
  try:
    for step in range(start, stop):
      batch = next(feed)
      tick = time.perf_counter()
      state, opt_state, terms = train_step(
          state, opt_state, graphdef, vgg, targets_N, place(batch),
          place(style_indices(step, config.batch, len(style_images))), loss_weights, static)
      terms = {k: float(v) for k, v in terms.items()}
      if not math.isfinite(terms["total"]):
        raise NonFiniteLossError(f"the training loss became {terms['total']} at step {step + 1} "
                                 f"({json.dumps(terms)}); lower --lr or the loss weights")
      for k in TERMS:
        history[k].append(terms[k])
      rate = config.batch / max(time.perf_counter() - tick, 1e-9)
      metrics.write(json.dumps({"step": step + 1, **terms, "images_per_s": round(rate, 2)})
                    + "\n")
      bar.update(1)
      bar.set_postfix(loss=f"{terms['total']:.4g}", style=f"{terms['style']:.3g}",
                      content=f"{terms['content']:.3g}", img_s=f"{rate:.1f}", refresh=False)
      done = step + 1
      if config.sample_every and done % config.sample_every == 0 and held:
        _sample(out_dir / "samples" / f"step{done}.png", graphdef, state, held,
                len(style_images))
      if config.checkpoint_every and done % config.checkpoint_every == 0:
        save_checkpoint(done)
  finally:
    feed.close()
    metrics.close()
    bar.close()
  if stop == config.steps and start < stop and (
      not config.checkpoint_every or stop % config.checkpoint_every):
    save_checkpoint(stop)
  seconds = time.perf_counter() - began
  if stop < config.steps:
    return {"history": history, "model": None, "seconds": seconds}
  net = nnx.merge(graphdef, state)
  record["history"] = {k: [float(f"{x:.6g}") for x in v] for k, v in history.items()}
  model = models.save_model(out_dir, net, styles=[Path(s).stem for s in style_images],
                            record=record)
  if held:
    _sample(out_dir / "samples" / "final.png", graphdef, state, held, len(style_images))
  _plot(history, out_dir / "loss.png")
  return {"history": history, "model": model, "seconds": seconds}


def _write_checkpoint(manager, step: int, tree) -> None:
  """Saves and waits: when this returns, the step's checkpoint is complete on disk."""
  import orbax.checkpoint as ocp
  manager.save(step, args=ocp.args.StandardSave(tree))
  manager.wait_until_finished()


def _placement(batch: int):
  """Puts a batch on the devices: split along its first axis over all local devices if
  they divide it (data parallel; the params follow, replicated, by jit's propagation)."""
  devices = jax.local_devices()
  if len(devices) == 1 or batch % len(devices):
    return jnp.asarray
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  sharding = NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))
  return lambda array: jax.device_put(np.asarray(array), sharding)


def _plot(history: dict, path: Path) -> bool:
  """The loss terms against the step, if matplotlib is installed."""
  from jaxstyle.plots import pyplot, save_figure
  plt = pyplot()
  if plt is None:
    return False
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for k in TERMS:
    if history[k]:
      ax.semilogy(np.arange(1, len(history[k]) + 1), np.maximum(history[k], 1e-30), label=k)
  ax.set_xlabel("step")
  ax.set_ylabel("loss (mean over the batch)")
  ax.legend()
  save_figure(fig, path)
  return True


def _sample(path, graphdef, state, held, styles: int) -> None:
  """A grid: the held-out photos in the first row, each style's stylization below."""
  net = nnx.merge(graphdef, state)
  photos = jnp.asarray(np.stack(held), jnp.float32)
  rows = [np.stack(held)]
  for k in range(styles):
    onehot = jax.nn.one_hot(jnp.full((len(held),), k), styles)
    rows.append(np.asarray(jnp.clip(jnp.round(net(photos, onehot)), 0, 255)).astype(np.uint8))
  grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
  path.parent.mkdir(parents=True, exist_ok=True)
  images.save_image(path, grid)


def _progress(total: int, start: int, enabled: bool):
  from tqdm.auto import tqdm
  return tqdm(total=total, initial=start, disable=not enabled, unit="step", desc="train",
              dynamic_ncols=True, mininterval=0.5)
