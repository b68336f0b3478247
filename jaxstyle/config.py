"""The configuration of one stylization: the experiment record.

:class:`StyleConfig` is a frozen dataclass; each field's ``metadata["help"]``
is the CLI's help text, so ``jaxstyle stylize --help`` and this class never
disagree (the CLI is generated from it, see :mod:`jaxstyle.cli`).

Default loss weights (content 1, style 1e4, TV 1e2) and why
--------------------------------------------------------------
They are Johnson's neural-style defaults (content 5, style 100, TV 1e-3;
caffe VGG19, 512 px), known to work on the un-normalised ImageNet VGG19,
converted to this package's normalisations term by term. neural-style
minimises 5·mean((F−P)²) + Σ_l 100·mean((G−A)²/(N·M)²) + 1e-3·½ΣΔ². With
N channels and M positions: mean((F−P)²) = (2/(N·M))·½Σ(F−P)², which at
relu4_2 and 512 px (N = 512, M = 64²) is 4.8e-6 times our content loss; a
style layer's term is (4/N²) times our E_l; the TV term is 5e-4 times ours.
Dividing through by the content factor: content 1, TV 5e-4 / 4.8e-6 ≈ 1e2,
and per style layer 8.4e7 / N², i.e. 2e4, 5e3, 1.3e3, 320, 320 for
relu1_1 … relu5_1, whose geometric mean 1.7e3 is ``style_weight`` · ⅕ with
``style_weight`` ≈ 1e4. (Gatys et al.'s α/β = 1e-3 is for their re-scaled
VGG with unit mean activations, so it does not carry over.)

Scale matters: content and TV losses grow with the pixel count while the
style loss (eq. 4) does not, so at 256 px the same weights favour style
about 4x more than at 512 px. The defaults could not be checked on real
weights here (no download in this environment); sweep ``style_weight``
over decades when in doubt.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass, field

from jaxstyle import conv as conv_algorithms
from jaxstyle import vgg
from jaxstyle.errors import ConfigError

PAPER_CONTENT_LAYERS = ("relu4_2",)
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def unwrap_optional(hint):
  """``X`` for ``X | None`` (or ``Optional[X]``), and whether it was optional."""
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    return next(a for a in typing.get_args(hint) if a is not type(None)), True
  return hint, False


def _coerce(name: str, hint, value):
  """``value`` as the field's annotated type, or ConfigError saying what was expected."""
  def fail(expected: str):
    raise ConfigError(f"--{name.replace('_', '-')}: expected {expected}, got {value!r}")

  hint, optional = unwrap_optional(hint)
  if optional and value is None:
    return None
  if typing.get_origin(hint) is tuple:
    items = value if isinstance(value, (list, tuple)) else (value,)
    return tuple(_coerce(name, typing.get_args(hint)[0], item) for item in items)
  if hint is bool:
    if not isinstance(value, bool):
      fail("true or false")
    return value
  if isinstance(value, bool) and hint in (int, float):
    fail("a number")
  if hint is int:
    if isinstance(value, float) and value.is_integer():
      return int(value)
    if not isinstance(value, numbers.Integral):
      fail("an integer")
    return int(value)
  if hint is float:
    if not isinstance(value, numbers.Real) or not math.isfinite(value):
      fail("a finite number")
    return float(value)
  if hint is str and not isinstance(value, str):
    fail("a string")
  return value


# The groups StyleConfig's fields fall into, by what they configure. Every field belongs
# to exactly one; each command takes the groups it can honour (jaxstyle stylize: all but
# video; jaxstyle train: objective and compute), so that a field it cannot honour is never
# offered, recorded or silently ignored. A new field joins one group and every command and
# record follows.
GROUPS = {
    "objective": "the loss",  # VGG network and weights, layers, loss weights, normalisations.
    "compute": "how the VGG runs",
    "style_images": "style images' scale, blend and masks",
    "color": "colour preservation",
    "pixels": "pixel optimisation",  # Size, iterations, init, optimiser, seed, recording.
    "scales": "coarse to fine",
    "video": "video frames",
}


def _opt(group: str, default, help: str, *, metavar: str | None = None, choices=None):
  assert group in GROUPS, group
  return field(default=default, metadata={"help": help, "metavar": metavar, "choices": choices,
                                          "group": group})


@dataclass(frozen=True)
class StyleConfig:
  """Everything that determines a stylization's result (and nothing else)."""

  size: int = _opt(
      "pixels", 512,
      "longest side of the output in pixels; the content image is resized to it and the style "
      "image to the same longest side")
  iters: int = _opt(
      "pixels", 500,
      "optimiser iterations (at each scale, unless --scale-iters)")
  scales: int = _opt(
      "scales", 1,
      "coarse to fine: run at this many sizes, each --scale-factor times the previous and ending "
      "at --size, each starting from the upsampled previous result")
  scale_factor: float = _opt(
      "scales", 2.0,
      "size ratio between successive scales")
  scale_iters: tuple[int, ...] | None = _opt(
      "scales", None,
      "iterations per scale, coarse to fine (default: --iters at every scale)",
      metavar="N")
  network: str = _opt(
      "objective", "vgg19",
      "the VGG network whose features define the losses",
      choices=vgg.NETWORKS)
  content_weight: float = _opt(
      "objective", 1.0,
      "weight α of the content loss (--content-norm)")
  style_weight: float = _opt(
      "objective", 1e4,
      "weight β of the style loss Σ_l w_l E_l, w_l summing to 1")
  tv_weight: float = _opt(
      "objective", 1e2,
      "weight of the total-variation loss (0 disables it)")
  tv_beta: float = _opt(
      "objective", 2.0,
      "TV exponent β in Σ(Δx²+Δy²)^(β/2); the Keras example uses 2.5")
  temporal_weight: float = _opt(
      "video", 0.0,
      "video: weight λ_t of Ruder et al.'s temporal loss Σc(x−ω)² against the previous frame "
      "warped by the optical flow, each frame starting from that warped frame; 0 stylizes "
      "each frame on its own (it flickers)")
  content_layers: tuple[str, ...] = _opt(
      "objective", PAPER_CONTENT_LAYERS,
      "content layers: relu4_2 or block4_conv2 (after the ReLU), conv4_2 (before it)",
      metavar="LAYER")
  content_norm: str = _opt(
      "objective", "half_sum",
      "content loss: half_sum ½Σ(F−P)² (Gatys eq. 1), sum Σ(F−P)² (Keras example) or mean "
      "Σ(F−P)²/(C·H·W) (MSE)",
      choices=("half_sum", "sum", "mean"))
  style_layers: tuple[str, ...] = _opt(
      "objective", PAPER_STYLE_LAYERS,
      "style layers",
      metavar="LAYER")
  style_layer_weights: tuple[float, ...] | None = _opt(
      "objective", None,
      "per-style-layer weights w_l (normalised to sum 1); default equal",
      metavar="W")
  style_layer_weight_exp: float = _opt(
      "objective", 1.0,
      "geometric style-layer weights: w_l ∝ exp^l from the first style layer (Athalye's neural- "
      "style); < 1 favours fine features, > 1 coarse ones; 1 is equal weights")
  style_loss: str = _opt(
      "objective", "gram",
      "style loss: gram (Gram matrices, --style-norm), w2 (mean and covariance: Wasserstein-2 "
      "distance between Gaussians) or mean_std (per-channel mean and standard deviation, AdaIN's)",
      choices=("gram", "w2", "mean_std"))
  style_norm: str = _opt(
      "objective", "gatys",
      "Gram loss normalisation: gatys Σ(G−A)²/(4N²M²), chw (Gram/(C·H·W), then MSE), hw "
      "(Gram/(H·W), then MSE) or keras Σ(G−A)²/(4·3²·(H·W)²) with the image's H·W, as the Keras "
      "example",
      choices=("gatys", "chw", "hw", "keras"))
  normalize_gradients: bool = _opt(
      "pixels", False,
      "L1-normalise each content/style layer's gradient before weighting it (Johnson's neural- "
      "style); Adam only")
  style_scale: tuple[float, ...] = _opt(
      "style_images", (1.0,),
      "style image size relative to --size: one factor, or one per style image",
      metavar="S")
  preserve_colors: str = _opt(
      "color", "none",
      "keep the content's colours (Gatys et al. 2017): luminance (transfer on luminance, chroma "
      "from the content) or histogram (match the style's colour statistics to the content's first)",
      choices=("none", "luminance", "histogram"))
  style_blend_weights: tuple[float, ...] | None = _opt(
      "style_images", None,
      "with several style images: blend weights b_k of the style target Σ b_k A_k (normalised); "
      "default equal",
      metavar="B")
  style_masks: tuple[str, ...] | None = _opt(
      "style_images", None,
      "one mask image per style image (white: apply that style, black: not; grey weighs): each "
      "style is matched only where its mask is set, with guided Gram matrices (Gatys et al. 2017); "
      "default: styles blend everywhere",
      metavar="MASK")
  pooling: str = _opt(
      "objective", "max",
      "pooling between VGG blocks",
      choices=("max", "avg"))
  init: str = _opt(
      "pixels", "content",
      "initial image: content, noise (seeded, uniform), gray, style_stats (seeded noise with the "
      "style's per-channel mean and std) or an image file",
      metavar="content|noise|gray|style_stats|PATH")
  optimizer: str = _opt(
      "pixels", "lbfgs",
      "lbfgs (optax, zoom linesearch) or adam",
      choices=("lbfgs", "adam"))
  lr: float = _opt(
      "pixels", 10.0,
      "Adam learning rate in pixel units (0-255 unless --pixel-range; L-BFGS takes its step from "
      "the linesearch, or Torch's rule, and ignores it)")
  ema_decay: float = _opt(
      "pixels", 0.0,
      "Adam only: output the exponential moving average of the iterates with this decay, bias- "
      "corrected (Crowson's style-transfer; e.g. 0.99); 0 outputs the last iterate")
  lbfgs_memory: int = _opt(
      "pixels", 10,
      "L-BFGS history size (memory grows with history x pixels)")
  lbfgs_linesearch: str = _opt(
      "pixels", "zoom",
      "L-BFGS step: zoom (optax's linesearch: more evaluations per iteration, steady descent) or "
      "none (the fixed step of Torch's L-BFGS, as neural-style and the PyTorch tutorial run it: "
      "one evaluation per iteration; with no linesearch to catch an overshoot it needs a well- "
      "scaled objective, as there)",
      choices=("zoom", "none"))
  lbfgs_restart: int = _opt(
      "pixels", 0,
      "restart L-BFGS (forget its history) once this many objective evaluations have run since the "
      "last restart, as repeated scipy fmin_l_bfgs_b(maxfun=N) calls do; 0: never")
  pixel_range: float = _opt(
      "pixels", 255.0,
      "the range the optimiser sees pixels in: 255 (RGB 0-255, as jaxstyle's images and Lua "
      "Torch's caffe-preprocessed ones) or 1 (PyTorch's [0, 1] tensors); it sets the length of "
      "L-BFGS's first step and the unit of Adam's --lr, not the objective")
  clamp: bool = _opt(
      "pixels", False,
      "clip the image to 0-255 after every update, so that each evaluation sees a valid image (the "
      "PyTorch tutorial's clamp_(0, 1)); with Adam or --lbfgs-linesearch none")
  remat: bool = _opt(
      "compute", False,
      "rematerialise each VGG block in the backward pass: less memory for large images, one more "
      "forward pass of time")
  precision: str = _opt(
      "compute", "float32",
      "network activations in float32, or bfloat16 (half the activation memory; losses still "
      "accumulate in float32)",
      choices=("float32", "bfloat16"))
  tile: int = _opt(
      "pixels", 0,
      "compute the objective and its gradient tile by tile, N px a side (a multiple of 16): "
      "the same numbers for an image larger than memory, one tile's VGG activations in memory "
      "and one more forward pass of time (jaxstyle/tiled.py; the Gram style loss); 0: whole",
      metavar="N")
  conv: str = _opt(
      "compute", "auto",
      "how convolutions run: auto (the fastest exact algorithms, measured at the first use of a "
      "shape and cached beside the compile cache: a style network's each layer, VGG's the set "
      "of layers run by Winograd), or one algorithm for every layer it applies to, direct "
      "elsewhere: direct (XLA's own), winograd, s2d (strided layers), unfold, subpixel "
      "(upsampling layers), valid (jaxstyle 0.3's form); see jaxstyle/conv.py",
      choices=conv_algorithms.CHOICES)
  seed: int = _opt(
      "pixels", 0,
      "seed for the noise init and anything else random")
  weights: str | None = _opt(
      "objective", None,
      "VGG weights (of --network): a jaxstyle .h5 file or random[:SEED[:WIDTH_SCALE]]; default "
      "$JAXSTYLE_WEIGHTS, else weights/{network}.h5",
      metavar="PATH|random")
  record_terms: bool = _opt(
      "pixels", True,
      "record the content, style and TV terms (the total is always recorded, every iteration)")
  terms_every: int = _opt(
      "pixels", 20,
      "record the terms every N iterations and at the last (with the zoom linesearch each "
      "recording costs one forward pass; 1 records every iteration)")

  def __post_init__(self):
    # Check each value's type (sweep files and Python callers bypass argparse) and
    # normalise list-likes to tuples, so that configs compare and hash by value.
    hints = typing.get_type_hints(type(self))
    for f in dataclasses.fields(self):
      object.__setattr__(self, f.name, _coerce(f.name, hints[f.name], getattr(self, f.name)))
    if self.style_masks == ():  # An empty list (a sweep's zip axis saying "no masks").
      object.__setattr__(self, "style_masks", None)
    self.validate()

  def validate(self) -> None:
    """Raises ConfigError naming the option, expected and got, for bad values."""
    def need(ok: bool, option: str, expected: str, got) -> None:
      if not ok:
        raise ConfigError(f"--{option.replace('_', '-')}: expected {expected}, got {got!r}")

    # Fields with a fixed set of values say so once, in their metadata (argparse uses it too).
    for f in dataclasses.fields(self):
      choices = f.metadata.get("choices")
      if choices:
        need(getattr(self, f.name) in choices, f.name,
             ", ".join(choices[:-1]) + " or " + choices[-1], getattr(self, f.name))
    need(self.size >= 16, "size", "at least 16 pixels (VGG19 pools 4 times)", self.size)
    need(self.iters >= 0, "iters", "a non-negative count", self.iters)
    need(self.terms_every >= 1, "terms_every", "at least 1", self.terms_every)
    need(self.tile >= 0 and self.tile % 16 == 0, "tile", "0 or a multiple of 16 px",
         self.tile)
    need(self.scales >= 1, "scales", "at least 1", self.scales)
    need(self.scale_factor > 1, "scale_factor", "a factor above 1", self.scale_factor)
    need(self.scale_sizes[0] >= 16, "scales", "a coarsest size of at least 16 px "
         "(--size / --scale-factor^(scales-1))", self.scales)
    need(self.scale_iters is None or (len(self.scale_iters) == self.scales
                                      and min(self.scale_iters) >= 0),
         "scale_iters", f"{self.scales} non-negative counts, one per scale", self.scale_iters)
    for name in ("content_weight", "style_weight", "tv_weight"):
      need(getattr(self, name) >= 0, name, "a non-negative weight", getattr(self, name))
    need(self.tv_beta > 0, "tv_beta", "a positive exponent", self.tv_beta)
    need(len(self.content_layers) + len(self.style_layers) > 0, "style_layers",
         "at least one content or style layer", self.style_layers)
    for option in ("content_layers", "style_layers"):
      for layer in getattr(self, option):
        try:
          vgg.canonical_layer(layer, self.network)
        except ConfigError as e:
          raise ConfigError(f"--{option.replace('_', '-')}: {e}") from None
    if self.style_layer_weights is not None:
      need(len(self.style_layer_weights) == len(self.style_layers), "style_layer_weights",
           f"{len(self.style_layers)} weights, one per style layer", self.style_layer_weights)
      need(all(w >= 0 for w in self.style_layer_weights) and sum(self.style_layer_weights) > 0,
           "style_layer_weights", "non-negative weights with a positive sum",
           self.style_layer_weights)
    need(self.style_layer_weight_exp > 0, "style_layer_weight_exp", "a positive factor",
         self.style_layer_weight_exp)
    need(self.style_layer_weights is None or self.style_layer_weight_exp == 1.0,
         "style_layer_weight_exp", "1 when --style-layer-weights are given (use one or the "
         "other)", self.style_layer_weight_exp)
    need(not self.normalize_gradients or self.optimizer == "adam", "normalize_gradients",
         "--optimizer adam (normalised gradients are not the objective's gradient, so "
         "L-BFGS's linesearch would be misled)", self.normalize_gradients)
    need(self.style_masks is None or self.style_blend_weights is None, "style_masks",
         "no --style-blend-weights with masks (masked styles apply side by side, not "
         "blended)", self.style_masks)
    need(self.lbfgs_restart >= 0, "lbfgs_restart", "a non-negative count", self.lbfgs_restart)
    need(len(self.style_scale) >= 1 and all(v > 0 for v in self.style_scale), "style_scale",
         "positive factors", self.style_scale)
    need(self.lr > 0, "lr", "a positive learning rate", self.lr)
    need(0 <= self.ema_decay < 1, "ema_decay", "a decay in [0, 1)", self.ema_decay)
    need(self.ema_decay == 0 or self.optimizer == "adam", "ema_decay",
         "0 with L-BFGS (iterate averaging is for Adam's noisy iterates)", self.ema_decay)
    need(self.lbfgs_memory >= 1, "lbfgs_memory", "at least 1", self.lbfgs_memory)
    need(self.pixel_range > 0, "pixel_range", "a positive range (255 or 1)", self.pixel_range)
    need(not self.clamp or self.optimizer == "adam" or self.lbfgs_linesearch == "none",
         "clamp", "--optimizer adam or --lbfgs-linesearch none (clipping would move the point "
         "the zoom linesearch accepted, and its f, ∇f with it)", self.clamp)

  @property
  def scale_sizes(self) -> tuple[int, ...]:
    """The longest side at each scale, coarse to fine, ending at ``size``."""
    # A negative power underflows to 0 where a positive one would overflow
    # (--scales 1025), so that validation can refuse it instead of crashing.
    return tuple(round(self.size * self.scale_factor ** -(self.scales - 1 - k))
                 for k in range(self.scales))

  @property
  def normalised_style_layer_weights(self) -> tuple[float, ...]:
    """w_l, summing to 1: given, geometric (``style_layer_weight_exp``) or equal."""
    raw = self.style_layer_weights or tuple(
        self.style_layer_weight_exp ** i for i in range(len(self.style_layers)))
    total = sum(raw)
    return tuple(w / total for w in raw)

  def replace(self, **changes) -> "StyleConfig":
    """A copy with ``changes`` applied (and validated)."""
    return dataclasses.replace(self, **changes)

  def to_dict(self, groups=None) -> dict:
    """Plain JSON-ready dict of every field, or of the fields in ``groups``."""
    names = fields_in(groups) if groups is not None else None
    return {k: v for k, v in dataclasses.asdict(self).items() if names is None or k in names}


def fields_in(groups) -> tuple[str, ...]:
  """The names of StyleConfig's fields in ``groups`` (see :data:`GROUPS`), in field order."""
  unknown = set(groups) - set(GROUPS)
  if unknown:
    raise ValueError(f"expected groups among {', '.join(GROUPS)}, got {', '.join(sorted(unknown))}")
  return tuple(f.name for f in dataclasses.fields(StyleConfig) if f.metadata["group"] in groups)


def group_of(name: str) -> str:
  """The group of StyleConfig's field ``name``."""
  return {f.name: f.metadata["group"] for f in dataclasses.fields(StyleConfig)}[name]
