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
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxstyle import conv as convs
from jaxstyle import images, memory
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError, NonFiniteLossError
from jaxstyle.nets import models, motion, quality
from jaxstyle.nets.data import FlowPairs, Photos, Prefetch, crop_square
from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec
from jaxstyle.nets.layers import plan
from jaxstyle.objective import (TERMS as OBJECTIVE_TERMS, LossWeights, ObjectiveSpec, Targets,
                                features, network_features, objective, run_params, stack,
                                style_targets)
from jaxstyle.progress import bar as progress_bar
from jaxstyle.vgg import infer_width_scale
from jaxstyle.vgg.weights import Weights, resolve_weights

TERMS = ("total",) + OBJECTIVE_TERMS
"""What a training step reports: the objective and each of its terms."""


#: The StyleConfig groups (:data:`jaxstyle.config.GROUPS`) training honours: the loss and
#: how the VGG runs. Pixel optimisation, scales, style-image handling, colours and the
#: temporal loss have no meaning here, so they are neither offered nor recorded.
OBJECTIVE_GROUPS = ("objective", "compute")


def _opt(default, help: str, group: str = "training"):
  return field(default=default, metadata={"help": help, "group": group})


@dataclass(frozen=True)
class TrainConfig:
  """How a network is trained (the objective is a StyleConfig beside it)."""

  steps: int = _opt(40000, "training steps (Johnson: 40k at batch 4, about 2 COCO epochs)")
  batch: int = _opt(4, "photos per step")
  crop: int = _opt(256, "training photos: shorter side resized to this, centre-cropped square")
  lr: float = _opt(1e-3, "Adam learning rate")
  lr_decay: float = _opt(0.0, "inverse learning-rate decay: lr / (1 + d·step) (AdaIN: 5e-5)")
  seed: int = _opt(0, "seed of the network's init and the photos' order")
  width: float = _opt(1.0, "channel multiplier of the network (0.25 for tests and small "
                      "machines)", "johnson")
  residual_blocks: int = _opt(5, "residual blocks", "johnson")
  upsample: str = _opt("nearest", "nearest (resize + conv) or transposed (Johnson's)", "johnson")
  temporal_weight: float = _opt(
      0.0, "weight of the temporal loss: each photo's output against the output of the photo "
      "moved by a small random motion, warped back (jaxstyle.nets.motion; Huang et al. 2017), "
      "so that video stylized frame by frame does not flicker; 0: none", "johnson")
  temporal_data: str | None = _opt(
      None, "with --temporal-weight, pairs of real video frames and their precomputed flow "
      "instead of moved photos: a folder of clips, NNNNN.png frames with NNNNN.flow.npy "
      "(backward flow, H x W x 2, dx dy) and optionally NNNNN.mask.png (jaxstyle.nets.data."
      "FlowPairs)", "johnson")
  sample_every: int = _opt(500, "write a sample grid of held-out photos every N steps (0: never)")
  checkpoint_every: int = _opt(1000, "write a checkpoint every N steps (0: only at the end)")

  def __post_init__(self):
    for name in ("steps", "batch", "crop", "sample_every", "checkpoint_every", "residual_blocks"):
      minimum = 1 if name in ("batch", "crop") else 0
      if not isinstance(getattr(self, name), int) or getattr(self, name) < minimum:
        raise ConfigError(f"--{name.replace('_', '-')}: expected an integer of at least "
                          f"{minimum}, got {getattr(self, name)!r}")
    if not self.lr_decay >= 0:
      raise ConfigError(f"--lr-decay: expected a non-negative decay, got {self.lr_decay}")
    if not self.lr > 0:
      raise ConfigError(f"--lr: expected a positive learning rate, got {self.lr}")
    if not self.temporal_weight >= 0:
      raise ConfigError(f"--temporal-weight: expected a non-negative weight, got "
                        f"{self.temporal_weight}")
    if self.temporal_data and not self.temporal_weight:
      raise ConfigError("--temporal-data: the frames feed the temporal loss; give it a "
                        "--temporal-weight")
    if self.crop < 16:
      raise ConfigError(f"--crop: expected at least 16 px (VGG pools 4 times), got {self.crop}")
    JohnsonSpec(self.width, 1, self.residual_blocks, self.upsample)  # Checks those three.

  def to_dict(self, groups=None) -> dict:
    """The fields (those in ``groups``: "training", "johnson") as a JSON-ready dict."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if groups is None or f.metadata["group"] in groups}


@dataclass(frozen=True)
class _Static:
  """What the compiled step closes over, beside the arrays it is given."""

  spec: ObjectiveSpec
  styles: int
  lr: float
  lr_decay: float = 0.0
  temporal_weight: float = 0.0


def batch_objectives(vgg, style_targets_N, out_BxHxWx3, content_B, style_B, weights,
                     spec: ObjectiveSpec) -> dict:
  """Each output's objective against its photo's content (``content_B``, the photos' content
  features) and its style's targets: ``{"total": B, term: B, ...}``."""
  def one(x_HxWx3, content_i, k):
    targets = Targets(content={n: content_i[n] for n in spec.content_layers},
                      style={n: style_targets_N[n][k] for n in spec.style_layers})
    total, terms = objective(vgg, targets, x_HxWx3, weights, spec)
    return {"total": total, **terms}
  return jax.vmap(one)(out_BxHxWx3, content_B, style_B)


def _loss(state, graphdef, vgg, style_targets_N, photos_BxHxWx3, style_B, weights, static,
          key=None, pairs=None):
  """Mean objective over the batch, and the mean of each term (see the module docstring);
  with ``static.temporal_weight``, plus the weighted temporal term of each photo and the photo
  moved by a motion drawn from ``key`` (:mod:`jaxstyle.nets.motion`), or of ``pairs`` of video
  frames with their flow (:class:`jaxstyle.nets.data.FlowPairs`)."""
  net = nnx.merge(graphdef, state)
  onehot = jax.nn.one_hot(style_B, static.styles)
  out = net(photos_BxHxWx3, onehot)
  spec = static.spec
  content = jax.lax.stop_gradient(
      network_features(vgg, photos_BxHxWx3, spec.content_layers, spec))
  terms = batch_objectives(vgg, style_targets_N, out, content, style_B, weights, spec)
  if static.temporal_weight and (pairs is not None or key is not None):
    if pairs is not None:
      previous, current, flow, given = pairs
      coords = jax.vmap(motion.flow_coords)(flow)
      h, w = flow.shape[1:3]
      masks = given * jax.vmap(lambda c: motion.inside(c, h, w))(coords)
      terms["temporal"] = jax.vmap(motion.temporal_term)(
          net(previous.astype(jnp.float32), onehot), net(current.astype(jnp.float32), onehot),
          coords, masks)
    else:
      keys = jax.random.split(key, photos_BxHxWx3.shape[0])
      moved, coords, masks = jax.vmap(lambda x, k: motion.moved_pair(x, key=k))(photos_BxHxWx3,
                                                                             keys)
      terms["temporal"] = jax.vmap(motion.temporal_term)(out, net(moved, onehot), coords, masks)
    terms["total"] = terms["total"] + static.temporal_weight * terms["temporal"]
  means = {k: v.mean() for k, v in terms.items()}
  return means["total"], means


held_out_loss = jax.jit(_loss, static_argnames=("graphdef", "static"))


@partial(jax.jit, static_argnames=("graphdef", "static"), donate_argnames=("state", "opt_state"))
def train_step(state, opt_state, graphdef, vgg, style_targets_N, photos_BxHxWx3, style_B,
               weights, static: _Static, key=None, pairs=None):
  """One Adam step on the batch; returns the new state, optimiser state and the loss terms.
  ``key`` (the step's motions) or ``pairs`` (video frames and flow): the temporal loss's
  inputs, when ``static.temporal_weight`` asks for it."""
  grads, terms = jax.grad(_loss, has_aux=True)(state, graphdef, vgg, style_targets_N,
                                               photos_BxHxWx3.astype(jnp.float32), style_B,
                                               weights, static, key, pairs)
  updates, opt_state = optimizer(static.lr, static.lr_decay).update(grads, opt_state, state)
  return optax.apply_updates(state, updates), opt_state, terms


def style_indices(step: int, batch: int, styles: int) -> np.ndarray:
  """Which style each example of ``step`` trains: (step·B + i) mod N."""
  return (step * batch + np.arange(batch)) % styles


def optimizer(lr: float, lr_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam at ``lr``, decayed as lr / (1 + lr_decay · step) when ``lr_decay`` (AdaIN's schedule)."""
  if not lr_decay:
    return optax.adam(lr)
  return optax.adam(lambda count: lr / (1.0 + lr_decay * count))


@dataclass
class Job:
  """One network's training as :func:`run` drives it; the network kind fills it in.

  Attributes:
    state: the trainable params (a pure dict), at step 0.
    opt_state: the optimiser's state for ``state``.
    step: ``(state, opt_state, batch, step) -> (state, opt_state, terms)``, one compiled
      update; ``terms`` holds the scalars of :data:`TERMS`.
    batch: ``step -> host batch``, called in the loading thread.
    save: ``(state, record) -> model directory``, once the last step is done.
    sample: ``(path, state) -> None``, a grid of held-out results, or None.
    record: how the model is made (written into model.json with the history).
    evaluate: ``state -> {"objective", "content_kept"}`` on held-out examples (see
      :func:`held_out_evaluation`), or None.
    terms: the scalars ``step`` reports (:data:`TERMS`, and ``"temporal"`` when trained so).
  """

  state: dict
  opt_state: tuple
  step: Callable
  batch: Callable
  save: Callable
  sample: Callable | None
  record: dict
  evaluate: Callable | None = None
  terms: tuple[str, ...] = TERMS


def run(job: Job, config: TrainConfig, out_dir, *, resume: bool = False, progress: bool = False,
        log=print) -> dict:
  """The training loop every network shares: checkpoints, resume, metrics, samples, plot.

  Writes ``out_dir/checkpoints/`` (orbax) every ``config.checkpoint_every``
  steps, ``samples/step{N}.png`` every ``config.sample_every`` steps,
  ``metrics.jsonl`` (one line per step: the loss terms, images/s, seconds
  since the loop began, and at sample steps the held-out objective and how much
  of the held-out photos the outputs keep, :mod:`jaxstyle.nets.quality`), then the
  model directory (``job.save``), ``samples/final.png`` and ``loss.png``. When the
  photos' content falls below :data:`~jaxstyle.nets.quality.CONTENT_KEPT_WARNING` at
  an evaluation past the first fifth of the run, one warning says so and names the fix.
  Returns ``{"history": ..., "model": path or None, "seconds": ...}``.

  Under ``jax.distributed`` (``--distributed``) every process runs this loop
  on its share of each batch (:func:`batch_placement`) and saves the orbax
  checkpoints together (``out_dir`` must be storage they share); only
  process 0 writes metrics, samples, the plot and the model.
  """
  import orbax.checkpoint as ocp

  out_dir = Path(out_dir)
  state, opt_state = job.state, job.opt_state
  manager = ocp.CheckpointManager((out_dir / "checkpoints").absolute(),
                                  options=ocp.CheckpointManagerOptions(max_to_keep=2))
  start, history = 0, {k: [] for k in job.terms}
  if resume:
    step = manager.latest_step()
    if step is None:
      raise ConfigError(f"{out_dir}: no checkpoint to resume from (run without --resume)")
    template = {"state": state, "opt_state": opt_state, "history": {k: np.zeros(step, np.float32)
                                                                    for k in job.terms}}
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

  primary = jax.process_index() == 0  # Under --distributed, one process writes the files.
  feed = Prefetch(job.batch, start, config.steps)
  out_dir.mkdir(parents=True, exist_ok=True)
  metrics_file = out_dir / "metrics.jsonl" if primary else Path(os.devnull)
  if primary:
    earlier = [line for line in (metrics_file.read_text().splitlines() if metrics_file.exists()
                                 else []) if line and json.loads(line)["step"] <= start]
    metrics_file.write_text("".join(line + "\n" for line in earlier))  # Later steps rerun.
  metrics = open(metrics_file, "a", buffering=1)  # Line-buffered: a kill loses no written step.
  bar = progress_bar(config.steps, desc="train", unit="step", enabled=progress and primary,
                     initial=start)
  began = time.perf_counter()
  held, warned = {}, False  # The last held-out evaluation, shown on the progress line.
  try:
    for step in range(start, config.steps):
      batch = next(feed)
      tick = time.perf_counter()
      state, opt_state, terms = job.step(state, opt_state, batch, step)
      terms = {k: float(v) for k, v in terms.items()}
      if not math.isfinite(terms["total"]):
        raise NonFiniteLossError(f"the training loss became {terms['total']} at step {step + 1} "
                                 f"({json.dumps(terms)}); lower --lr or the loss weights")
      for k in job.terms:
        history[k].append(terms[k])
      now = time.perf_counter()
      rate = config.batch / max(now - tick, 1e-9)
      done = step + 1
      line = {"step": done, **terms, "images_per_s": round(rate, 2),
              "seconds": round(now - began, 3)}  # Since the loop began; step 1 compiles.
      sampling = config.sample_every and (done % config.sample_every == 0
                                          or done == config.steps)
      if sampling and job.evaluate:  # Before the line, so a kill never half-writes a step.
        evaluation = job.evaluate(state)
        line["held_out"], kept = evaluation["objective"], evaluation["content_kept"]
        line["content_kept"] = kept
        held = {"held_out": f"{line['held_out']:.4g}", "kept": f"{kept:.2f}"}
        if (kept < quality.CONTENT_KEPT_WARNING and not warned and primary
            and done >= config.steps / 5):
          warned = True
          warnings.warn(f"step {done}: the held-out photos keep little of their content "
                        f"(content kept {kept:.2f}, below {quality.CONTENT_KEPT_WARNING}: the "
                        f"network is drawing a texture, not the photo); "
                        f"{quality.CONTENT_KEPT_FIX}", quality.ContentLostWarning, stacklevel=2)
      metrics.write(json.dumps(line) + "\n")
      bar.update(1)
      bar.set_postfix(loss=f"{terms['total']:.4g}", style=f"{terms['style']:.3g}",
                      content=f"{terms['content']:.3g}", img_s=f"{rate:.1f}", **held,
                      refresh=False)
      if sampling and done % config.sample_every == 0 and job.sample and primary:
        job.sample(out_dir / "samples" / f"step{done}.png", state)
      if config.checkpoint_every and done % config.checkpoint_every == 0:
        save_checkpoint(done)
  finally:
    feed.close()
    metrics.close()
    bar.close()
  if start < config.steps and (not config.checkpoint_every
                               or config.steps % config.checkpoint_every):
    save_checkpoint(config.steps)  # The last step's, unless the schedule just wrote it.
  seconds = time.perf_counter() - began
  if not primary:
    return {"history": history, "model": None, "seconds": seconds}
  held_out = _held_out(out_dir / "metrics.jsonl")
  record = job.record | {"history": {k: [float(f"{x:.6g}") for x in v]
                                     for k, v in history.items()},
                         "processes": jax.process_count(), "devices": jax.device_count()}
  if held_out:  # The last evaluation: what `jaxstyle models info` reports.
    record["held_out"] = held_out[-1]
  model = job.save(state, record)
  if job.sample:
    job.sample(out_dir / "samples" / "final.png", state)
  _plot(history, out_dir / "loss.png", held_out)
  return {"history": history, "model": model, "seconds": seconds}


def _held_out(metrics_file: Path) -> list[dict]:
  """The held-out evaluations in metrics.jsonl: ``{"step", "objective", "content_kept"}`` each."""
  lines = (json.loads(line) for line in metrics_file.read_text().splitlines() if line)
  return [{"step": m["step"], "objective": m["held_out"], "content_kept": m["content_kept"]}
          for m in lines if "held_out" in m]


def held_out_evaluation(objective, outputs_NxHxWx3, photos_NxHxWx3) -> dict:
  """What an evaluation reports: the held-out objective, and the mean over the outputs of
  :func:`jaxstyle.nets.quality.content_kept` against their photos."""
  kept = [quality.content_kept(o, p) for o, p in zip(np.asarray(outputs_NxHxWx3),
                                                      np.asarray(photos_NxHxWx3))]
  return {"objective": float(objective), "content_kept": float(np.mean(kept))}


def train(style_images, data, out_dir, config: TrainConfig = TrainConfig(),
          objective_config: StyleConfig | None = None, *, weights: Weights | None = None,
          held_out=(), resume: bool = False, progress: bool = False, log=print) -> dict:
  """Trains Johnson's network for ``style_images`` (N paths: N styles) on the photos under ``data``.

  The loop, its files and its return value are :func:`run`'s; the model
  directory holds a :class:`~jaxstyle.nets.johnson.JohnsonNet`. The sample
  grids show the ``held_out`` photos in the first row, each style below.
  """
  style_images = [str(s) for s in style_images]
  if not style_images:
    raise ConfigError("train: expected at least one style image")
  if objective_config is None:  # Johnson's own objective, style images at the crop size.
    from jaxstyle import presets
    objective_config = presets.perceptual_vgg16().replace(size=config.crop)
  weights = weights or resolve_weights(objective_config.weights,
                                       network=objective_config.network)
  vgg_width = infer_width_scale(weights.params)
  check_training_fits(lambda crop: memory.johnson_training_bytes(
      config.width, vgg_width, config.batch * crop * crop), config)
  spec = ObjectiveSpec.from_config(objective_config, weights.convention,
                                   image_hw=(config.crop, config.crop), width_scale=vgg_width,
                                   log=log)
  vgg = run_params(weights, spec)
  out_dir = Path(out_dir)
  photos = Photos(data, crop=config.crop, batch=config.batch, seed=config.seed)
  held = [crop_square(images.load_image(p, min_side=1), config.crop) for p in held_out]
  # Targets are computed once: the Gram of each style, scaled to the crop's positions.
  at_crop = features(vgg, jnp.zeros((config.crop, config.crop, 3)), spec.layers, spec)
  targets_N = stack([style_targets(vgg, at_crop, [images.load_image(p, size=objective_config.size)],
                                   spec, None) for p in style_images])
  loss_weights = LossWeights.from_config(objective_config)
  styles = len(style_images)
  net = JohnsonNet(JohnsonSpec(config.width, styles, config.residual_blocks, config.upsample),
                   rngs=nnx.Rngs(config.seed))
  chosen = plan(net, net, jax.ShapeDtypeStruct((config.batch, config.crop, config.crop, 3),
                                                jnp.float32),
                jax.ShapeDtypeStruct((config.batch, styles), jnp.float32), grad=True,
                conv=objective_config.conv, log=log)
  graphdef, state = nnx.split(net)
  state = nnx.to_pure_dict(state)
  static = _Static(spec, styles, config.lr, config.lr_decay, config.temporal_weight)
  place = batch_placement(config.batch)
  motions = jax.random.key(config.seed)  # Step i's motions: fold_in(motions, i).
  pairs = (FlowPairs(config.temporal_data, crop=config.crop, batch=config.batch,
                     seed=config.seed) if config.temporal_data else None)

  def load(i):
    return (photos.batch(i), pairs.batch(i)) if pairs else (photos.batch(i), None)

  def step(state, opt_state, batch, i):
    batch, frames = batch
    key = jax.random.fold_in(motions, i) if config.temporal_weight and not pairs else None
    return train_step(state, opt_state, graphdef, vgg, targets_N, place(batch),
                      place(style_indices(i, config.batch, styles)), loss_weights, static,
                      key, None if frames is None else tuple(map(place, frames)))

  def save(state, record):
    return models.save_model(out_dir, nnx.merge(graphdef, state),
                             styles=[Path(s).stem for s in style_images], record=record,
                             thumbnails=[images.load_image(p, min_side=1) for p in style_images])

  def sample(path, state):
    _sample(path, graphdef, state, held, styles)

  # Held out: every photo with every style, the training objective's mean over the pairs.
  held_photos = np.concatenate([np.stack(held)] * styles) if held else None
  held_styles = np.repeat(np.arange(styles), len(held))

  def evaluate(state):
    photos = jnp.asarray(held_photos, jnp.float32)
    objective = held_out_loss(state, graphdef, vgg, targets_N, photos, held_styles,
                              loss_weights, static)[0]
    outputs = forward(graphdef, state, photos, jax.nn.one_hot(held_styles, styles))
    return held_out_evaluation(objective, outputs, held_photos)

  record = {"architecture": "johnson", "styles": style_images, "data": str(data),
            "photos": len(photos.files), "train": config.to_dict(),
            "objective": objective_config.to_dict(OBJECTIVE_GROUPS),
            "weights": weights_record(weights),
            "convolutions": convs.record(chosen, objective_config.conv, spec.winograd)}
  job = Job(state, optimizer(config.lr, config.lr_decay).init(state), step, load, save,
            sample if held else None, record, evaluate if held else None,
            TERMS + ("temporal",) if config.temporal_weight else TERMS)
  return run(job, config, out_dir, resume=resume, progress=progress, log=log)


def check_training_fits(need, config: TrainConfig) -> None:
  """Refuses, before anything is loaded, a ``--crop`` at which a batch cannot fit in memory:
  ``need(crop)`` is the training step's predicted peak (:mod:`jaxstyle.memory`)."""
  memory.refuse_unless_fits(need, config.crop, option="--crop", floor=16,
                            what=f"a training step on a batch of {config.batch} (--batch)")


def weights_record(weights: Weights) -> dict:
  """Which VGG weights a model was trained with (its provenance)."""
  return {"source": weights.source, "sha256": weights.sha256, "random": weights.is_random}


def _write_checkpoint(manager, step: int, tree) -> None:
  """Saves and waits: when this returns, the step's checkpoint is complete on disk."""
  import orbax.checkpoint as ocp
  manager.save(step, args=ocp.args.StandardSave(tree))
  manager.wait_until_finished()


def batch_placement(batch: int):
  """Puts a host batch on the devices: split along its first axis (data parallel).

  The split is over every device of every process when they divide the
  batch; the params follow, replicated, by jit's propagation. Each process
  holds the whole host batch (every process reads the same seeded order;
  decoding a batch of 4-8 photos is cheap beside the step) and places only
  its own devices' rows. One process whose devices do not divide the batch
  runs it on one device.
  """
  devices = jax.devices()
  if len(devices) == 1 or batch % len(devices):
    if jax.process_count() > 1:
      raise ConfigError(f"--batch: {jax.process_count()} processes with {len(devices)} devices "
                        f"in all need a batch they divide, got {batch}")
    return jnp.asarray
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  sharding = NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))

  def place(array):
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])
  return place


def _plot(history: dict, path: Path, held_out=()) -> bool:
  """The loss terms (and held-out objective, if any) against the step, if matplotlib is installed."""
  from jaxstyle.plots import pyplot, save_figure
  plt = pyplot()
  if plt is None:
    return False
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for k in history:
    if history[k]:
      ax.semilogy(np.arange(1, len(history[k]) + 1), np.maximum(history[k], 1e-30), label=k)
  if held_out:
    ax.semilogy([h["step"] for h in held_out], [h["objective"] for h in held_out], "ko-", ms=3,
                label="total, held out")
  ax.set_xlabel("step")
  ax.set_ylabel("loss (mean over the batch)")
  ax.legend()
  save_figure(fig, path)
  return True


@partial(jax.jit, static_argnames="graphdef")
def forward(graphdef, state, *inputs):
  """The network ``graphdef`` with weights ``state`` on ``inputs``, rounded to uint8 (compiled)."""
  return jnp.clip(jnp.round(nnx.merge(graphdef, state)(*inputs)), 0, 255).astype(jnp.uint8)


def _sample(path, graphdef, state, held, styles: int) -> None:
  """A grid: the held-out photos in the first row, each style's stylization below."""
  photos = jnp.asarray(np.stack(held), jnp.float32)
  rows = [np.stack(held)]
  for k in range(styles):
    onehot = jax.nn.one_hot(jnp.full((len(held),), k), styles)
    rows.append(np.asarray(forward(graphdef, state, photos, onehot)))
  grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
  path.parent.mkdir(parents=True, exist_ok=True)
  images.save_image(path, grid)

