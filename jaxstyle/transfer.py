"""Gatys-style transfer by optimising pixels: ``stylize``, ``stylize_batch``, ``estimate``.

The run driver: it loads and prepares the inputs, builds the targets
(:mod:`jaxstyle.objective`), runs the compiled optimiser loop
(:mod:`jaxstyle.optim.solver`) over one or many members (:mod:`jaxstyle.optim.members`)
in chunks, and between chunks reports progress, saves images, writes
checkpoints and answers Ctrl-C. Coarse-to-fine runs go scale by scale.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import checkpoint as ckpt
from jaxstyle import color, memory, vgg
from jaxstyle import images as image_io
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError, Interrupted, NonFiniteLossError
from jaxstyle.interrupts import ctrl_c_flag
from jaxstyle.optim.members import init_states, run_chunks, shard_members, shared_program
from jaxstyle.objective import (LossWeights, ObjectiveSpec, Targets, Temporal, content_activations,
                                make_targets, mask_pyramid, normalised_weights, objective,
                                prepare_weights, run_params, stack, style_targets)
from jaxstyle.progress import bar as progress_bar
from jaxstyle.optim.solver import (CHUNK_CAPACITY, RunState, SolverSpec, output_image,
                             recorded_terms)
from jaxstyle.vgg.weights import Weights, resolve_weights

TARGET_CHUNK_SECONDS = 1.0  # Aim for a progress update about once a second.


class Result(NamedTuple):
  """The outcome of one run of :func:`stylize` or member of :func:`stylize_batch`.

  Attributes:
    image: the stylized image, uint8 H x W x 3 (the last finite one if the
      run failed).
    history: ``{"total", "content", "style", "tv"}`` float arrays with one
      entry per iteration: the objective (weighted total) and its unweighted
      terms at the iterate after that iteration.
    initial: the same four values at the initial image.
    iterations: iterations run.
    seconds: wall time of the iterations (compilation excluded; for a batch,
      the whole program's).
    compile_seconds: time spent compiling (0 when the programs were cached).
    config: the configuration that produced it.
    weights: where the VGG19 weights came from (``Weights.source``), their
      sha256 (None for random weights) and whether they were random.
    error: None, or why the run stopped early (the objective went NaN/inf).
    evaluations: objective evaluations (f and ∇f) the optimiser made, the
      initial one included (the linesearch's; not the per-term records').
    convolutions: how VGG convolved: ``{"conv": --conv, "winograd": {"HxW": [layers]}}``,
      the layers run by Winograd at each scale's size (:func:`jaxstyle.objective.winograd_layers`).
  """

  image: np.ndarray
  history: dict
  initial: dict
  iterations: int
  seconds: float
  compile_seconds: float
  config: StyleConfig
  weights: dict
  error: str | None = None
  evaluations: int = 0
  convolutions: dict | None = None


def initial_image(config: StyleConfig, content_rgb_HxWx3, *, key: jax.Array,
                  styles=(), blend_weights=None) -> jax.Array:
  """The init the config names, in RGB 0-255.

  ``content``; ``noise``: seeded uniform noise; ``gray``: mid-grey;
  ``style_stats``: seeded Gaussian noise with the per-channel mean and std
  of the (blended) style images, clipped to 0-255; or an image file.
  """
  height, width = content_rgb_HxWx3.shape[:2]
  if config.init == "content":
    return jnp.asarray(content_rgb_HxWx3, jnp.float32)
  if config.init == "noise":
    return jax.random.uniform(key, (height, width, 3), jnp.float32, 0.0, 255.0)
  if config.init == "gray":
    return jnp.full((height, width, 3), 127.5, jnp.float32)
  if config.init == "style_stats":
    if not styles:
      raise ConfigError("--init style_stats needs the style images")
    blend = normalised_weights(blend_weights, len(styles))
    pixels = [np.asarray(s, np.float64).reshape(-1, 3) for s in styles]
    mean = sum(b * p.mean(0) for b, p in zip(blend, pixels))
    second = sum(b * (p.var(0) + p.mean(0) ** 2) for b, p in zip(blend, pixels))
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    noise = jax.random.normal(key, (height, width, 3), jnp.float32)
    return jnp.clip(noise * _row(std) + _row(mean), 0.0, 255.0)
  rgb = image_io.load_image(config.init, min_side=1)  # Resized to the content's shape.
  return jnp.asarray(image_io.resize_array(rgb, height, width), jnp.float32)


def _row(values) -> jax.Array:
  return jnp.asarray(values, jnp.float32).reshape(1, 1, 3)


def to_uint8(x_HxWx3) -> np.ndarray:
  """Rounds an RGB 0-255 float image to uint8, clipping out-of-range pixels."""
  return np.asarray(jnp.clip(jnp.round(x_HxWx3), 0, 255)).astype(np.uint8)


ChunkCallback = Callable[[int, np.ndarray, dict], None]


def stylize(content_img, style_img, config: StyleConfig = StyleConfig(), *,
            key: jax.Array | None = None, weights: Weights | None = None,
            progress: bool = False, callback: ChunkCallback | None = None,
            save_every: int = 0, checkpoint=None, checkpoint_every: int = 0,
            resume: bool = False, init_image=None, temporal: Temporal | None = None) -> Result:
  """Optimises an image to match ``content_img``'s content and ``style_img``'s style.

  Args:
    content_img: a path or a uint8 RGB H x W x 3 array; resized so that its
      longest side is ``config.size``.
    style_img: the same, or a list of them blended with
      ``config.style_blend_weights``.
    config: the objective and optimiser settings.
    key: PRNG key for the noise init; default ``jax.random.key(config.seed)``.
    weights: VGG weights; default ``resolve_weights(config.weights, network=config.network)``.
    progress: show a progress bar (iteration, loss, it/s, ETA) on stderr.
    callback: called as ``callback(iteration, image_uint8, losses)`` after
      every ``save_every`` iterations (and never when ``save_every`` is 0).
    save_every: see ``callback``.
    checkpoint: a checkpoint file (``.npz``; see :mod:`jaxstyle.checkpoint`).
      With it, one is written every ``checkpoint_every`` iterations (if not
      0) and on Ctrl-C, which then raises :class:`jaxstyle.Interrupted`.
    checkpoint_every: see ``checkpoint``.
    resume: continue from ``checkpoint`` (written with the same config and
      inputs); the result is bit-identical to an uninterrupted run's.
    init_image: a uint8 RGB image to start from instead of ``config.init``
      (resized to the content's shape); a video's warped previous frame.
    temporal: a video frame's :class:`~jaxstyle.objective.Temporal` target,
      weighted by ``config.temporal_weight`` (one scale only).

  Raises:
    NonFiniteLossError: the objective became NaN or inf; it carries the last
      finite image.
    Interrupted: Ctrl-C with a ``checkpoint``: the images and the checkpoint
      written.
    ConfigError: ``resume`` with a missing checkpoint, or one written for
      another config or other inputs.
  """
  member_callback = None
  if callback is not None:
    def member_callback(iteration, images, latest):
      callback(iteration, images[0], latest[0])
  plan = None
  if checkpoint is not None:
    if checkpoint_every < 0:
      raise ConfigError(f"--checkpoint-every: expected a non-negative count, got "
                        f"{checkpoint_every}")
    plan = ckpt.Plan(Path(checkpoint), checkpoint_every,
                     resume=ckpt.load(checkpoint) if resume else None)
  elif resume:
    raise ConfigError("resume=True needs the checkpoint file to resume from")
  if temporal is not None and config.scales != 1:
    raise ConfigError("a temporal target needs --scales 1 (it lives at the frame's size)")
  (result,) = _run([config], content_img, [style_img], [key], weights=weights,
                   progress=progress, callback=member_callback, save_every=save_every,
                   checkpoint=plan, init_images=None if init_image is None else [init_image],
                   temporal=temporal)
  if result.error:
    raise NonFiniteLossError(result.error, image=result.image, iteration=result.iterations)
  return result


class Estimate(NamedTuple):
  """What a run will need, predicted before it starts (:func:`estimate`).

  Attributes:
    height, width: the output's shape at the final scale.
    peak_bytes: predicted peak memory (:mod:`jaxstyle.memory`, calibrated on
      measured peaks).
    available_bytes: what the device has free, and ``device`` its name.
    xla_temp_bytes: XLA's own accounting of one evaluation program's
      temporaries (``compile().memory_analysis()``), for comparison.
    compile_seconds: time to compile (or load from the cache) the programs.
    seconds_per_iteration: measured over a short run at the final size.
    total_seconds: predicted wall time of all iterations, every scale.
  """

  height: int
  width: int
  peak_bytes: int
  available_bytes: int
  device: str
  xla_temp_bytes: int
  compile_seconds: float
  seconds_per_iteration: float
  total_seconds: float


def estimate(content_img, style_img, config: StyleConfig = StyleConfig(), *,
             weights: Weights | None = None, timing_iters: int = 4) -> Estimate:
  """Predicts a stylization's peak memory and time before running it (``--dry-run``).

  Memory comes from the shapes alone; time from compiling the real programs
  and timing ``timing_iters`` iterations after the first at the final size
  (earlier scales are scaled by their pixel count). Raises ConfigError, with the largest
  size that would fit, if the run cannot fit, before compiling anything.
  """
  weights = weights or resolve_weights(config.weights, network=config.network)
  height, width = image_io.fitted_shape(image_io.source_shape(content_img, what="content"),
                                        config.size)
  width_scale = vgg.infer_width_scale(weights.params)
  memory.check_fits(config, height, width, width_scale=width_scale)
  have, device = memory.available_bytes()
  weights = prepare_weights(weights, config)  # For the probe and the analysis both.
  stamps = []
  probe = stylize(content_img, style_img,
                  config.replace(iters=timing_iters + 1, scales=1, scale_iters=None),
                  weights=weights, save_every=1,
                  callback=lambda *_: stamps.append(time.perf_counter()))
  # From the end of the first iteration: L-BFGS's first linesearch takes extra steps.
  per_iteration = (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)
  iters = config.scale_iters or (config.iters,) * config.scales
  total = sum(n * per_iteration * (size / config.size) ** 2
              for size, n in zip(config.scale_sizes, iters))
  spec = ObjectiveSpec.from_config(config, weights.convention, image_hw=(height, width),
                                   width_scale=width_scale)
  params = run_params(weights, spec)
  content = image_io.as_rgb(content_img, config.size, what="content")
  styles = _prepare_styles(style_img, config, content)
  targets = make_targets(params, content, styles, spec, blend_weights=config.style_blend_weights)
  weights_now = LossWeights.from_config(config)
  program = jax.jit(jax.value_and_grad(
      lambda x: objective(params, targets, x, weights_now, spec)[0]))
  analysis = program.lower(jnp.asarray(content, jnp.float32)).compile().memory_analysis()
  return Estimate(height, width, memory.estimate_bytes(config, height, width,
                                                       width_scale=width_scale),
                  have, device, int(getattr(analysis, "temp_size_in_bytes", 0) or 0),
                  probe.compile_seconds, per_iteration, total)


def stylize_batch(content_img, style_imgs, configs, *, keys=None,
                  weights: Weights | None = None, progress: bool = False,
                  max_members: int | None = None) -> list[Result]:
  """N stylizations of one content image in one compiled program.

  Members may differ in their style image (or blended list), loss weights,
  init and seed (the ``MEMBER_FIELDS`` of their config); every other config
  field must agree. Adam members are ``vmap``ped; L-BFGS members run in
  sequence inside the program (see ``over_members`` for why). Member i's result equals ``stylize(content_img,
  style_imgs[i], configs[i], key=keys[i])`` up to float round-off. Members
  are sharded over all local devices; a member whose objective turns
  NaN/inf stops with ``Result.error`` set while the others go on.

  Args:
    content_img: a path or uint8 RGB array, shared by all members.
    style_imgs: one style (path, array or blended list) per member.
    configs: one StyleConfig per member, or one for all.
    keys: one PRNG key per member; default ``jax.random.key(config.seed)``.
    weights: VGG weights; default the first config's.
    progress: show a progress bar.
    max_members: run at most this many members per program (bounds memory);
      default all at once.
  """
  n = len(style_imgs)
  configs = list(configs) if isinstance(configs, (list, tuple)) else [configs] * n
  keys = list(keys) if keys is not None else [None] * n
  if not (len(configs) == len(keys) == n) or n == 0:
    raise ConfigError(f"stylize_batch: expected as many configs and keys as style images "
                      f"({n}), got {len(configs)} configs and {len(keys)} keys")
  group = max_members or n
  if group < 1:
    raise ConfigError(f"max_members: expected at least 1, got {max_members}")
  if weights is None:  # Once for all groups, not once per group.
    weights = resolve_weights(configs[0].weights, network=configs[0].network)
  if weights.network == configs[0].network:  # Else _run says why they do not fit.
    weights = prepare_weights(weights, configs[0])
  results = []
  for start in range(0, n, group):
    stop = min(start + group, n)
    pad = group - (stop - start) if n > group else 0  # Same shape: reuse the program.
    idx = list(range(start, stop)) + [stop - 1] * pad
    results += _run([configs[i] for i in idx], content_img, [style_imgs[i] for i in idx],
                    [keys[i] for i in idx], weights=weights, progress=progress)[: stop - start]
  return results


def _run(configs, content_img, style_imgs, keys, *, weights, progress, callback=None,
         save_every=0, checkpoint: ckpt.Plan | None = None, init_images=None,
         temporal=None) -> list[Result]:
  """Runs len(configs) members, one scale after another (see ``StyleConfig.scales``)."""
  config = shared_program(configs)
  if weights is None:  # Once for all scales, not once per scale.
    weights = resolve_weights(config.weights, network=config.network)
  elif weights.network != config.network:
    raise ConfigError(f"--network {config.network}: the weights given ({weights.source}) are "
                      f"{weights.network.upper()}; pass {config.network.upper()} weights or "
                      f"--network {weights.network}")
  # Refuse what cannot fit before any work; the last scale is the largest.
  # The shape it will have, computed without resizing: at a size that cannot fit,
  # the resize itself could exhaust memory.
  height, width = image_io.fitted_shape(image_io.source_shape(content_img, what="content"),
                                        config.size)
  width_scale = vgg.infer_width_scale(weights.params)
  tile = memory.tile_to_fit(config, height, width, members=len(configs), width_scale=width_scale)
  if tile != config.tile:  # The image does not fit whole: the same objective, tile by tile.
    warnings.warn(f"{width}x{height} px does not fit in memory whole: computing the "
                  f"objective in tiles of {tile} px (--tile; the same result, one more "
                  "forward pass of time)", stacklevel=2)
    configs = [c.replace(tile=tile) for c in configs]
    config = shared_program(configs)
  memory.check_fits(config, height, width, members=len(configs), width_scale=width_scale)
  weights = prepare_weights(weights, config)  # Once for all scales; a no-op if prepared.
  first_stage = 0
  if checkpoint is not None:
    checkpoint = dataclasses.replace(checkpoint, configs=[c.to_dict() for c in configs])
    if checkpoint.resume is not None:  # The options now; the inputs once they are loaded.
      ckpt.check_matches(checkpoint.resume, checkpoint.path, configs=checkpoint.configs)
      first_stage = checkpoint.resume.meta["stage"]
  if config.scales == 1:
    return _run_scale(configs, content_img, style_imgs, keys, weights=weights,
                      progress=progress, callback=callback, save_every=save_every,
                      checkpoint=checkpoint, init_images=init_images, temporal=temporal)
  iters = config.scale_iters or (config.iters,) * config.scales
  previous, stages = None, []
  if first_stage:  # Finished scales come back from the checkpoint; their images are not needed.
    stages = [[_from_summary(m, c, weights) for m, c in zip(stage, configs)]
              for stage in checkpoint.resume.meta["prior"]]
  for stage, (size, count) in enumerate(zip(config.scale_sizes, iters)):
    if stage < first_stage:
      continue
    scaled = [c.replace(size=size, iters=count, scales=1, scale_iters=None) for c in configs]
    final = size == config.scale_sizes[-1]
    here = None  # This scale's plan: only the scale a checkpoint was written in resumes.
    if checkpoint is not None:
      here = dataclasses.replace(checkpoint, stage=stage,
                                 prior=[[_summary(r) for r in done] for done in stages],
                                 resume=checkpoint.resume if stage == first_stage else None)
    try:
      stages.append(_run_scale(scaled, content_img, style_imgs, keys, weights=weights,
                               progress=progress, init_images=previous,
                               callback=callback if final else None, save_every=save_every,
                               checkpoint=here))
    except image_io.ImageError as e:
      raise image_io.ImageError(f"{e} (at the {size} px scale of --scales {config.scales}; "
                                "use fewer scales or a smaller --scale-factor)") from None
    previous = [r.image for r in stages[-1]]
  return [Result(image=last.image,
                 history={k: np.concatenate([s[i].history[k] for s in stages]) for k in
                          last.history},
                 initial=stages[0][i].initial, iterations=sum(s[i].iterations for s in stages),
                 seconds=sum(s[i].seconds for s in stages),
                 compile_seconds=sum(s[i].compile_seconds for s in stages), config=configs[i],
                 weights=last.weights, error=next((s[i].error for s in stages if s[i].error), None),
                 evaluations=sum(s[i].evaluations for s in stages),
                 convolutions=_merged_convolutions([s[i] for s in stages]))
          for i, last in enumerate(stages[-1])]


def _merged_convolutions(scales: list[Result]) -> dict:
  """One member's :attr:`Result.convolutions` over its scales, each scale's size its own."""
  winograd = {}
  for result in scales:  # A scale resumed from a 0.4 checkpoint has none recorded.
    winograd.update((result.convolutions or {}).get("winograd", {}))
  return {"conv": scales[-1].convolutions["conv"], "winograd": winograd}


def _summary(result: Result) -> dict:
  """What a checkpoint keeps of a finished scale's result (not its image)."""
  return {"history": {k: v.tolist() for k, v in result.history.items()},
          "initial": result.initial, "iterations": result.iterations,
          "seconds": result.seconds, "compile_seconds": result.compile_seconds,
          "weights": result.weights, "error": result.error, "evaluations": result.evaluations,
          "convolutions": result.convolutions}


def _from_summary(summary: dict, config: StyleConfig, weights: Weights) -> Result:
  return Result(image=None, history={k: np.asarray(v, np.float32)
                                     for k, v in summary["history"].items()},
                initial=summary["initial"], iterations=summary["iterations"],
                seconds=summary["seconds"], compile_seconds=summary["compile_seconds"],
                config=config, weights=summary["weights"], error=summary["error"],
                evaluations=summary["evaluations"],
                convolutions=summary.get("convolutions"))


class _Problem(NamedTuple):
  """What one scale solves, fixed for its whole run.

  ``config`` is the members' shared program (:func:`~jaxstyle.optim.members.shared_program`);
  ``x0`` and ``loss_weights`` are stacked over the members (sharded over ``mesh`` when
  there is one); ``finish`` turns an output image into the result (colour
  preservation); ``inputs`` are the arrays a checkpoint of this scale must match.
  """

  configs: list
  config: StyleConfig
  spec: ObjectiveSpec
  solver: SolverSpec
  params: dict
  targets: Targets
  x0: jax.Array
  loss_weights: LossWeights
  mesh: object
  finish: Callable
  inputs: list


@dataclasses.dataclass
class _Progress:
  """How far a scale's run has come: what a checkpoint saves and a resume restores.

  ``history``, ``initial`` and ``errors`` are per member; ``seconds_before`` is the
  time spent in earlier processes (a resumed run's).
  """

  done: int
  history: list
  initial: list
  errors: list
  seconds_before: float = 0.0


def _run_scale(configs, content_img, style_imgs, keys, *, weights: Weights, progress,
               callback=None, save_every=0, init_images=None,
               checkpoint: ckpt.Plan | None = None, temporal=None) -> list[Result]:
  """Runs len(configs) members in one program at one size; the engine itself.

  ``init_images`` (one uint8 image per member, any size) replace the
  configured init, resized to the content's shape: the previous scale's results.
  ``checkpoint`` says where and how often to write checkpoints, and holds the
  one to resume from; with it, Ctrl-C writes one and raises Interrupted.
  ``temporal``: a video frame's temporal target, shared by the members.

  Phases: pose the problem (:func:`_pose`), take the first step's measure and compile
  (:func:`_start`), restore a checkpoint (:func:`_resume`), iterate in chunks
  (:func:`_iterate`), and read the results back (:func:`_results`).
  """
  config = shared_program(configs)
  if temporal is None and any(c.temporal_weight for c in configs):
    raise ConfigError("--temporal-weight: the temporal loss needs the previous frame of a "
                      "clip; use jaxstyle video (or pass temporal= to stylize)")
  with progress_bar(config.iters, desc="stylize", unit="it", enabled=progress) as bar, \
      ctrl_c_flag(checkpoint is not None) as interrupted:
    bar.set_description_str("compiling")
    compile_start = time.perf_counter()
    problem = _pose(configs, config, content_img, style_imgs, keys, weights=weights,
                    init_images=init_images, temporal=temporal)
    states, run = _start(problem)
    compile_seconds = time.perf_counter() - compile_start
    bar.set_description_str("stylize")
    bar.reset(total=config.iters)  # Rate and ETA from here on, compilation excluded.
    fingerprint = None
    if checkpoint is not None:
      fingerprint = ckpt.fingerprint(*problem.inputs)
      if checkpoint.resume is not None:
        states, run = _resume(problem, states, checkpoint, fingerprint)
        bar.update(run.done)
    states, seconds = _iterate(problem, states, run, bar, callback=callback,
                               save_every=save_every, checkpoint=checkpoint,
                               fingerprint=fingerprint, interrupted=interrupted)
  return _results(problem, states, run, weights, compile_seconds, seconds)


def _pose(configs, config: StyleConfig, content_img, style_imgs, keys, *, weights: Weights,
          init_images, temporal) -> _Problem:
  """The scale's problem: content features, each member's style targets and starting image,
  the temporal target, stacked and placed on the devices. ``config``: the members' shared
  program."""
  original_content = image_io.as_rgb(content_img, config.size, what="content")
  spec = ObjectiveSpec.from_config(config, weights.convention,
                                   image_hw=original_content.shape[:2],
                                   width_scale=vgg.infer_width_scale(weights.params))
  params = run_params(weights, spec)
  content, finish = original_content, (lambda image: image)
  if config.preserve_colors == "luminance":  # Transfer luminance; chroma from the content.
    content = color.luminance_image(original_content)

    def finish(image):
      return color.with_chroma_of(image, original_content)
  n = len(configs)
  devices = jax.local_devices()
  mesh = None
  if n > 1 and len(devices) > 1:
    from jax.sharding import Mesh
    usable = max(d for d in range(1, len(devices) + 1) if n % d == 0)
    mesh = Mesh(np.array(devices[:usable]), ("members",))
  at_content = content_activations(params, content, spec)  # Shared by all members.
  masks = None
  if config.style_masks is not None:
    masks = mask_pyramid(np.stack([image_io.load_mask(m, *content.shape[:2])
                                   for m in config.style_masks]), at_content, spec)
  member_targets, x0s, inputs = [], [], [content]
  for c, style, key in zip(configs, style_imgs, keys):
    styles = _prepare_styles(style, c, original_content)
    inputs += styles
    member_targets.append(style_targets(params, at_content, styles, spec,
                                         c.style_blend_weights, masks))
    x0s.append(initial_image(c, content, key=jax.random.key(c.seed) if key is None else key,
                             styles=styles, blend_weights=c.style_blend_weights))
  if init_images is not None:  # Coarse to fine: start from the upsampled previous scale.
    x0s = [jnp.asarray(_as_init(img, content.shape, config), jnp.float32) for img in init_images]
  if temporal is not None:
    temporal = _temporal_target(temporal, content.shape, config)
    inputs += [np.asarray(temporal.image_HxWx3), np.asarray(temporal.weights_HxW)]
  targets = Targets(content={n: at_content[n] for n in spec.content_layers},
                    style=stack(member_targets), masks=masks, temporal=temporal)
  x0 = jnp.stack(x0s)
  loss_weights = stack([LossWeights.from_config(c) for c in configs])
  if mesh is not None:
    targets = targets._replace(style=shard_members(targets.style, mesh))
    x0, loss_weights = shard_members((x0, loss_weights), mesh)
  inputs += [] if masks is None else jax.tree.leaves(masks)
  return _Problem(configs, config, spec, SolverSpec.from_config(config), params, targets, x0,
                  loss_weights, mesh, finish, inputs)


def _temporal_target(temporal: Temporal, shape, config: StyleConfig) -> Temporal:
  """A frame's temporal target, checked against the frame's shape, in the iterate's space."""
  image = np.asarray(temporal.image_HxWx3, np.float32)
  if image.shape != shape or np.shape(temporal.weights_HxW) != shape[:2]:
    raise ConfigError(f"temporal target of shape {image.shape} and weights "
                      f"{np.shape(temporal.weights_HxW)}, expected the frame's "
                      f"{shape} and {shape[:2]}")
  if config.preserve_colors == "luminance":  # The iterate lives in luminance space.
    image = color.luminance_image(np.clip(np.round(image), 0, 255).astype(np.uint8))
  return Temporal(jnp.asarray(image, jnp.float32), jnp.asarray(temporal.weights_HxW, jnp.float32))


def _start(problem: _Problem) -> tuple[RunState, _Progress]:
  """The members' optimiser states at their starting images and the initial losses, with the
  chunk program compiled (so that compilation is timed apart from iterating)."""
  p = problem
  states, terms0 = init_states(p.params, p.targets, p.x0, p.loss_weights, p.spec, p.solver,
                               p.mesh)
  initial = [{"total": float(v), **{k: float(t[i]) for k, t in terms0.items()}}
             for i, v in enumerate(np.asarray(states.value))]
  if p.config.iters:  # Zero steps: compiles the chunk program without running it, to time
    # it apart. A run of no iterations (the initial loss alone) never needs it.
    states, _ = run_chunks(p.params, p.targets, states, jnp.int32(0), p.loss_weights, p.spec,
                           p.solver, p.mesh, jnp.int32(p.config.iters))
  jax.block_until_ready(states)
  errors = [None if math.isfinite(v["total"]) else
            f"the objective is {v['total']} at the initial image ({_describe(v)}); check the "
            "weights file and the loss weights" for v in initial]
  history = [{k: [] for k in ("total",) + recorded_terms(p.targets)} for _ in p.configs]
  return states, _Progress(0, history, initial, errors)


def _resume(problem: _Problem, template: RunState, checkpoint: ckpt.Plan,
            fingerprint: str) -> tuple[RunState, _Progress]:
  """The states and progress a checkpoint of this scale saved, after checking that it was
  written for these configs, inputs and scale."""
  ckpt.check_matches(checkpoint.resume, checkpoint.path, configs=checkpoint.configs,
                     inputs=fingerprint, stage=checkpoint.stage)
  states = _restore(template, checkpoint.resume.leaves, checkpoint.path, problem.mesh)
  meta = checkpoint.resume.meta
  return states, _Progress(meta["done"], meta["history"], meta["initial"], meta["errors"],
                           meta["seconds"])


def _iterate(problem: _Problem, states: RunState, run: _Progress, bar, *, callback, save_every,
             checkpoint: ckpt.Plan | None, fingerprint, interrupted) -> tuple[RunState, float]:
  """Iterates in compiled chunks until ``config.iters`` or every member has failed; between
  chunks: the history, progress, images every ``save_every``, checkpoints, Ctrl-C. Updates
  ``run``; returns the states and the seconds spent iterating (earlier processes included)."""
  p = problem
  iters = p.config.iters
  start, chunk = time.perf_counter(), 1
  while run.done < iters and not all(run.errors):
    todo = min(chunk, iters - run.done, CHUNK_CAPACITY)
    for every in (save_every, checkpoint.every if checkpoint else 0):
      if every:  # End the chunk where an image or a checkpoint is due.
        todo = min(todo, every - run.done % every)
    chunk_start = time.perf_counter()
    states, hist = run_chunks(p.params, p.targets, states, jnp.int32(todo), p.loss_weights,
                              p.spec, p.solver, p.mesh, jnp.int32(iters))
    hist, steps, finite = jax.device_get((hist, states.step, states.finite))
    for i, history in enumerate(run.history):
      ran = int(steps[i]) - len(history["total"])
      for k in history:
        history[k].extend(hist[k][i, :ran].tolist())
      if not finite[i] and run.errors[i] is None:
        run.errors[i] = (f"the objective became NaN or inf at iteration {steps[i] + 1} (last "
                         f"finite: {_describe(_latest(history, run.initial[i]))}); lower --lr "
                         "or the loss weights")
    run.done += todo
    latest = [_latest(h, v) for h, v in zip(run.history, run.initial)]
    bar.update(todo)
    bar.set_postfix(loss=f"{min(v['total'] for v in latest):.4g}", refresh=False)
    if callback is not None and save_every and run.done % save_every == 0:
      callback(run.done, _images(p, states), latest)
    if checkpoint is not None and checkpoint.every and run.done % checkpoint.every == 0:
      _save_checkpoint(checkpoint, fingerprint, states, run,
                       run.seconds_before + time.perf_counter() - start)
    if interrupted["hit"] and run.done < iters:  # Read after the save: Ctrl-C may come in it.
      _save_checkpoint(checkpoint, fingerprint, states, run,
                       run.seconds_before + time.perf_counter() - start)
      raise Interrupted(f"interrupted at iteration {run.done} of {iters}; checkpoint written "
                        f"to {checkpoint.path}", checkpoint=checkpoint.path,
                        iteration=run.done, images=_images(p, states))
    # Size the next chunk so that progress is reported about once a second.
    rate = todo / max(time.perf_counter() - chunk_start, 1e-6)
    chunk = max(1, min(CHUNK_CAPACITY, int(rate * TARGET_CHUNK_SECONDS)))
  return states, run.seconds_before + time.perf_counter() - start


def _images(problem: _Problem, states: RunState) -> list[np.ndarray]:
  """The members' current output images, finished (uint8 RGB)."""
  return [problem.finish(to_uint8(x)) for x in jax.device_get(
      jax.vmap(output_image, (0, None))(states, problem.solver))]


def _save_checkpoint(checkpoint: ckpt.Plan, fingerprint: str, states: RunState, run: _Progress,
                     seconds: float) -> None:
  ckpt.save(checkpoint.path, {
      "configs": checkpoint.configs, "inputs": fingerprint, "stage": checkpoint.stage,
      "done": run.done, "history": run.history, "initial": run.initial, "errors": run.errors,
      "prior": checkpoint.prior, "backend": jax.default_backend(), "seconds": seconds,
  }, jax.device_get(jax.tree.leaves(states)))


def _results(problem: _Problem, states: RunState, run: _Progress, weights: Weights,
             compile_seconds: float, seconds: float) -> list[Result]:
  """Each member's result: its finished image, history, losses, time and error."""
  images, evaluations = _images(problem, states), jax.device_get(states.evaluations)
  used = {"source": weights.source, "sha256": weights.sha256, "random": weights.is_random}
  height, width = problem.x0.shape[1:3]
  convolutions = {"conv": problem.config.conv,
                  "winograd": {f"{height}x{width}": list(problem.spec.winograd)}}
  return [Result(image=images[i],
                 history={k: np.asarray(v, np.float32) for k, v in history.items()},
                 initial=run.initial[i], iterations=len(history["total"]), seconds=seconds,
                 compile_seconds=compile_seconds, config=config, weights=used,
                 error=run.errors[i], evaluations=int(evaluations[i]),
                 convolutions=convolutions)
          for i, (history, config) in enumerate(zip(run.history, problem.configs))]


def _restore(template: RunState, leaves, path, mesh) -> RunState:
  """The checkpointed states, checked leaf by leaf against the freshly made ones."""
  expected = jax.tree.leaves(template)
  if len(leaves) != len(expected) or any(
      np.shape(a) != np.shape(b) or np.asarray(a).dtype != b.dtype
      for a, b in zip(leaves, expected)):
    raise ConfigError(f"{path}: its optimiser state does not fit this run (written by another "
                      "jaxstyle version or optimiser); start afresh without --resume")
  states = jax.tree.unflatten(jax.tree.structure(template), [jnp.asarray(a) for a in leaves])
  return shard_members(states, mesh) if mesh is not None else states


def _as_init(image, shape, config: StyleConfig) -> np.ndarray:
  resized = image_io.resize_array(image, shape[0], shape[1])
  # In luminance mode the iterate lives in luminance space; results carry chroma.
  return color.luminance_image(resized) if config.preserve_colors == "luminance" else resized


def _prepare_styles(style, config: StyleConfig, content_rgb) -> list[np.ndarray]:
  """A member's style image(s): loaded at their scale, colour-processed as configured."""
  styles = list(style) if isinstance(style, (list, tuple)) else [style]
  scales = config.style_scale
  if len(scales) not in (1, len(styles)):
    raise ConfigError(f"--style-scale: expected 1 or {len(styles)} factors (one per style "
                      f"image), got {len(scales)}")
  scales = scales * len(styles) if len(scales) == 1 else scales
  out = []
  for image, scale in zip(styles, scales):
    rgb = image_io.as_rgb(image, max(1, round(config.size * scale)), what="style")
    if config.preserve_colors == "histogram":
      rgb = color.match_colors(rgb, content_rgb)
    elif config.preserve_colors == "luminance":
      rgb = color.luminance_image(rgb, match=content_rgb)
    out.append(rgb)
  return out


def _latest(history: dict, initial: dict) -> dict:
  return {k: v[-1] for k, v in history.items()} if history["total"] else initial


def _describe(values: dict) -> str:
  return ", ".join(f"{k}={v:.4g}" for k, v in values.items())

