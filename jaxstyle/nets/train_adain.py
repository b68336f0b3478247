"""Training an AdaIN decoder on jaxstyle's own objective (Huang & Belongie, ICCV 2017).

Each step pairs B photos c_i with B style images s_i (two folders, each in
its own seeded, resumable order), makes the targets t_i = AdaIN(f(c_i),
f(s_i)) at relu4_1 and minimises the mean over the batch of

    objective(VGG, Targets(content = {relu4_1: t_i}, style = stats(f(s_i))), g(t_i))

over the decoder g only. :func:`objective_config` is their loss: the content
term the MSE between f(g(t)) and t (``content_norm="mean"``), the style term
``style_loss="mean_std"`` at relu1_1..relu4_1 with λ = 10 per layer (40 in
total, since jaxstyle's layer weights sum to 1); any other StyleConfig style
loss (Gram, W2) trains as well, its targets made per style image by the
code the pixel optimiser uses. Their schedule: Adam at 1e-4, decayed as
lr / (1 + 5e-5 · step), batch 8, 160k steps on COCO photos and WikiArt
paintings.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from jaxstyle.errors import ConfigError
from jaxstyle.nets import models
from jaxstyle.nets.adain import ENCODER_LAYER, AdaINNet, AdaINSpec, adain, mean_std
from jaxstyle.nets.data import Photos, crop_square
from jaxstyle.nets.layers import plan
from jaxstyle.nets.train import (OBJECTIVE_GROUPS, Job, TrainConfig, batch_placement,
                                 check_training_fits, forward, held_out_evaluation, optimizer,
                                 run, weights_record)
from jaxstyle.objective import (LossWeights, ObjectiveSpec, Targets, network_features, objective,
                                run_params, style_target_of)
from jaxstyle.vgg import infer_width_scale
from jaxstyle.vgg.weights import Weights, resolve_weights

#: Huang & Belongie's training schedule, as a TrainConfig.
ADAIN_TRAINING = TrainConfig(steps=160000, batch=8, lr=1e-4, lr_decay=5e-5)


def objective_config(**changes) -> StyleConfig:
  """AdaIN's loss as a StyleConfig: content MSE at relu4_1, mean/std style at relu1_1..relu4_1."""
  return StyleConfig(content_layers=("relu4_1",), content_norm="mean",
                     style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
                     style_loss="mean_std", content_weight=1.0, style_weight=40.0,
                     tv_weight=0.0, network="vgg19").replace(**changes)


@dataclass(frozen=True)
class _Static:
  spec: ObjectiveSpec
  lr: float
  lr_decay: float


def _loss(params, graphdef, vgg, photos_BxHxWx3, styles_BxHxWx3, weights, static: _Static):
  """Mean objective over the batch at g(AdaIN(f(c), f(s))), and each term's mean."""
  spec = static.spec
  layers = tuple(dict.fromkeys((ENCODER_LAYER,) + spec.style_layers))
  content = network_features(vgg, photos_BxHxWx3, (ENCODER_LAYER,), spec)[ENCODER_LAYER]
  style = network_features(vgg, styles_BxHxWx3, layers, spec)
  t = jax.lax.stop_gradient(adain(content, *mean_std(style[ENCODER_LAYER])))
  out = nnx.merge(graphdef, params)(t)

  def one(x_HxWx3, t_hxwxC, style_i):  # Style crop and output share a size: their positions too.
    targets = Targets(content={ENCODER_LAYER: t_hxwxC},
                      style={n: style_target_of(style_i[n], spec) for n in spec.style_layers})
    total, terms = objective(vgg, targets, x_HxWx3, weights, spec)
    return {"total": total, **terms}

  terms = jax.vmap(one)(out, t, {n: jax.lax.stop_gradient(style[n]) for n in spec.style_layers})
  means = {k: v.mean() for k, v in terms.items()}
  return means["total"], means


held_out_loss = jax.jit(_loss, static_argnames=("graphdef", "static"))


@partial(jax.jit, static_argnames=("graphdef", "static"), donate_argnames=("params", "opt_state"))
def train_step(params, opt_state, graphdef, vgg, photos_BxHxWx3, styles_BxHxWx3, weights,
               static: _Static):
  """One Adam step of the decoder; the encoder (``vgg``) is a constant."""
  grads, terms = jax.grad(_loss, has_aux=True)(
      params, graphdef, vgg, photos_BxHxWx3.astype(jnp.float32),
      styles_BxHxWx3.astype(jnp.float32), weights, static)
  updates, opt_state = optimizer(static.lr, static.lr_decay).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, terms


def train_adain(style_data, data, out_dir, config: TrainConfig = ADAIN_TRAINING,
                objective: StyleConfig | None = None, *, weights: Weights | None = None,
                held_out=(), held_out_styles=(), resume: bool = False, progress: bool = False,
                log=print) -> dict:
  """Trains an AdaIN decoder on the photos under ``data`` and the paintings under ``style_data``.

  The loop, its files and its return value are :func:`jaxstyle.nets.train.run`'s;
  the model directory holds an :class:`~jaxstyle.nets.adain.AdaINNet` (the
  encoder's weights included, so a model is self-contained). ``config``'s
  width, residual blocks and upsampling are Johnson's and unused here.
  Sample grids: the ``held_out`` photos across, the ``held_out_styles``
  down, each photo in each style.
  """
  objective = objective or objective_config()
  if objective.network != "vgg19":
    raise ConfigError(f"AdaIN: its encoder is VGG19 up to relu4_1, got --network {objective.network}")
  weights = weights or resolve_weights(objective.weights, network="vgg19")
  vgg_width = infer_width_scale(weights.params)
  spec = ObjectiveSpec.from_config(objective, weights.convention,
                                   image_hw=(config.crop, config.crop), width_scale=vgg_width,
                                   log=log)
  if spec.content_layers != (ENCODER_LAYER,):
    raise ConfigError("AdaIN: the content target AdaIN(f(c), f(s)) lives at relu4_1; expected "
                      f"--content-layers relu4_1, got {' '.join(objective.content_layers)}")
  deepest = max(spec.style_layers, key=lambda n: (int(n[5]), n))
  if int(deepest[5]) > 4:
    raise ConfigError(f"AdaIN: the encoder ends at relu4_1; style layer {deepest} is deeper")
  check_training_fits(lambda crop: memory.adain_training_bytes(
      vgg_width, config.batch * crop * crop), config)
  vgg = run_params(weights, spec)
  out_dir = Path(out_dir)
  photos = Photos(data, crop=config.crop, batch=config.batch, seed=config.seed)
  paintings = Photos(style_data, crop=config.crop, batch=config.batch, seed=config.seed + 1)
  net = AdaINNet(AdaINSpec(infer_width_scale(weights.params), weights.convention),
                 weights.params, rngs=nnx.Rngs(config.seed))
  side = config.crop // 8  # relu4_1 of a crop: three 2x2 poolings.
  chosen = plan(net.decoder, net.decoder, jax.ShapeDtypeStruct(
      (config.batch, side, side, net.spec.channels[-1]), jnp.float32), grad=True,
      conv=objective.conv, log=log)
  graphdef, params = nnx.split(net.decoder)
  params = nnx.to_pure_dict(params)
  static = _Static(spec, config.lr, config.lr_decay)
  loss_weights = LossWeights.from_config(objective)
  place = batch_placement(config.batch)

  def step(params, opt_state, batch, i):
    return train_step(params, opt_state, graphdef, vgg, place(batch[0]), place(batch[1]),
                      loss_weights, static)

  def save(params, record):
    net.decoder = nnx.merge(graphdef, params)
    return models.save_model(out_dir, net, styles=[], record=record)

  held = [crop_square(images.load_image(p, min_side=1), config.crop) for p in held_out]
  held_styles = [crop_square(images.load_image(p, min_side=1), config.crop)
                 for p in held_out_styles]

  def sample(path, params):
    net.decoder = nnx.merge(graphdef, params)
    _sample(path, *nnx.split(net), held, held_styles)

  pairs = len(held) * len(held_styles)  # Every held-out photo with every held-out style.
  held_photos = jnp.asarray(np.concatenate([np.stack(held)] * len(held_styles)) if pairs else
                            np.zeros((0, 1, 1, 3)), jnp.float32)
  held_paintings = jnp.asarray(np.repeat(np.stack(held_styles), len(held), axis=0) if pairs else
                               np.zeros((0, 1, 1, 3)), jnp.float32)

  def evaluate(params):
    objective = held_out_loss(params, graphdef, vgg, held_photos, held_paintings, loss_weights,
                              static)[0]
    net.decoder = nnx.merge(graphdef, params)
    outputs = forward(*nnx.split(net), held_photos, held_paintings)
    return held_out_evaluation(objective, outputs, held_photos)

  record = {"architecture": "adain", "style_data": str(style_data), "data": str(data),
            "photos": len(photos.files), "paintings": len(paintings.files),
            "train": config.to_dict(("training",)),
            "objective": objective.to_dict(OBJECTIVE_GROUPS),
            "weights": weights_record(weights),
            "convolutions": convs.record(chosen, objective.conv, spec.winograd)}
  job = Job(params, optimizer(config.lr, config.lr_decay).init(params), step,
            lambda i: (photos.batch(i), paintings.batch(i)), save,
            sample if pairs else None, record, evaluate if pairs else None)
  return run(job, config, out_dir, resume=resume, progress=progress, log=log)


def _sample(path, graphdef, state, held, held_styles) -> None:
  """A grid: the photos across the top, the styles down the left, each pairing inside."""
  photos = jnp.asarray(np.stack(held), jnp.float32)
  crop = held[0].shape[0]
  rows = [np.concatenate([np.full((crop, crop, 3), 255, np.uint8)] + list(held), axis=1)]
  for style in held_styles:
    styles = jnp.broadcast_to(jnp.asarray(style, jnp.float32), photos.shape)
    out = np.asarray(forward(graphdef, state, photos, styles))
    rows.append(np.concatenate([style] + list(out), axis=1))
  path.parent.mkdir(parents=True, exist_ok=True)
  images.save_image(path, np.concatenate(rows, axis=0))


__all__ = ["ADAIN_TRAINING", "objective_config", "train_adain", "train_step"]
