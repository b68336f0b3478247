"""AdaIN: arbitrary style in one forward pass (Huang & Belongie, ICCV 2017).

A frozen encoder f (the VGG19 of :mod:`jaxstyle.vgg`, up to relu4_1) maps
the photo c and any style image s to features; adaptive instance
normalisation gives the photo's features the style's per-channel statistics,

    AdaIN(x, y) = σ(y) · (x − μ(x)) / σ(x) + μ(y)        (their eq. 8)

with μ, σ² the per-channel mean and (biased) variance over positions,
σ = √(σ² + ε); ``alpha`` trades content for style, t = α·AdaIN(f(c), f(s))
+ (1 − α)·f(c), and several styles mix as t = Σ_k w_k AdaIN(f(c), f(s_k))
(their section 7.2). A decoder g, mirroring the encoder (reflection
padding, nearest 2x upsampling, no normalisation), maps t back to RGB 0-255.

Training (:mod:`jaxstyle.nets.train_adain`) minimises jaxstyle's own
objective at g(t): the content term against t at relu4_1, MSE normalised
(``content_norm="mean"``), the style term ``style_loss="mean_std"`` at
relu1_1..relu4_1 (their eq. 11-13), so only g learns.

Differences from Huang's release, on purpose: the encoder is the objective's
VGG (zero padding, the weights' own preprocessing) rather than his
re-normalised, reflection-padded copy, so his ``decoder.pth`` files do not
fit it; the variance is biased (torch's ``var`` is unbiased; the two differ
by M/(M−1), under 0.1% at relu4_1 of a 256 px crop).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from jaxstyle import vgg
from jaxstyle.errors import ConfigError
from jaxstyle.nets.layers import WHOLE_IMAGE, ReflectConv

EPS = 1e-5  # AdaIN's calc_mean_std.
ENCODER_LAYER = "block4_conv1"  # relu4_1.
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
ENCODER_LAYERS = vgg.layer_names()[:vgg.layer_names().index(ENCODER_LAYER) + 1]


@dataclass(frozen=True)
class AdaINSpec:
  """The architecture: the encoder's width and preprocessing, which the decoder mirrors."""

  width: float = 1.0  # The VGG19 encoder's width scale (its conv1_1 has 64·width channels).
  convention: str = "caffe"  # The encoder weights' preprocessing (jaxstyle.vgg.preprocess).

  def __post_init__(self):
    if not 0 < self.width <= 1:
      raise ConfigError(f"expected an encoder width scale in (0, 1], got {self.width}")
    if self.convention not in vgg.CONVENTIONS:
      raise ConfigError(f"expected a convention in {vgg.CONVENTIONS}, got {self.convention!r}")

  @property
  def channels(self) -> tuple[int, int, int, int]:
    """The encoder's widths at relu1_1 .. relu4_1 (64, 128, 256, 512 at width 1)."""
    widths = vgg.layer_widths(self.width)
    return tuple(widths[name][1] for name in STYLE_LAYERS)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def mean_std(F_NxHxWxC):
  """Per-image, per-channel μ and σ = √(σ² + ε) over positions, each N x 1 x 1 x C; on a tile
  of a larger image, the whole image's (:data:`jaxstyle.nets.layers.WHOLE_IMAGE`)."""
  statistics = WHOLE_IMAGE.get()
  if statistics is not None:
    mean, var = statistics(F_NxHxWxC)
  else:
    mean = F_NxHxWxC.mean((1, 2), keepdims=True)
    var = jnp.square(F_NxHxWxC - mean).mean((1, 2), keepdims=True)
  return mean, jnp.sqrt(var + EPS)


def adain(content_NxHxWxC, style_mean, style_std):
  """AdaIN(x, y) = σ(y)(x − μ(x))/σ(x) + μ(y), given the style's μ(y), σ(y) (broadcastable)."""
  mean, std = mean_std(content_NxHxWxC)
  return style_std * (content_NxHxWxC - mean) / std + style_mean


class Frozen(nnx.Variable):
  """An encoder weight: saved with the model, never trained."""


class _Conv(nnx.Module):
  """(2x nearest upsampling,) reflection padding (1), a 3x3 convolution, a ReLU unless ``last``."""

  def __init__(self, cin: int, cout: int, *, upsample: int = 1, last: bool = False,
               rngs: nnx.Rngs):
    self.last = last
    self.conv = ReflectConv(cin, cout, 3, upsample=upsample, rngs=rngs)

  def __call__(self, x_NxHxWxC):
    x = self.conv(x_NxHxWxC)
    return x if self.last else jax.nn.relu(x)


class Decoder(nnx.Module):
  """relu4_1 features → RGB 0-255: the encoder's convolutions mirrored.

  c4 → c3, up, c3 → c3 (x3), c3 → c2, up, c2 → c2, c2 → c1, up, c1 → c1,
  c1 → 3 (no ReLU), with (c1, c2, c3, c4) = 64, 128, 256, 512 at width 1.
  """

  def __init__(self, spec: AdaINSpec, *, rngs: nnx.Rngs):
    c1, c2, c3, c4 = spec.channels
    # Each stage after the first starts by upsampling: its first conv does it (conv.subpixel).
    self.stages = nnx.List([
        nnx.List([_Conv(c4, c3, rngs=rngs)]),
        nnx.List([_Conv(c3, c3, upsample=2, rngs=rngs)]
                 + [_Conv(c3, c3, rngs=rngs) for _ in range(2)] + [_Conv(c3, c2, rngs=rngs)]),
        nnx.List([_Conv(c2, c2, upsample=2, rngs=rngs), _Conv(c2, c1, rngs=rngs)]),
        nnx.List([_Conv(c1, c1, upsample=2, rngs=rngs), _Conv(c1, 3, last=True, rngs=rngs)]),
    ])

  def __call__(self, t_NxhxwxC):
    x = t_NxhxwxC
    for stage in self.stages:
      for conv in stage:
        x = conv(x)
    return x


class AdaINNet(nnx.Module):
  """Encoder (frozen VGG19 to relu4_1) and decoder; ``net(photos, styles)`` → RGB 0-255."""

  def __init__(self, spec: AdaINSpec, encoder_params: dict | None = None, *, rngs: nnx.Rngs):
    """``encoder_params``: VGG19 params (at least through relu4_1); None gives zeros to load into."""
    self.spec = spec
    layers = ENCODER_LAYERS
    expected = vgg.expected_shapes(spec.width)
    if encoder_params is None:
      encoder_params = {n: {k: jnp.zeros(expected[n][k]) for k in ("kernel", "bias")}
                        for n in layers}
    missing = [n for n in layers if n not in encoder_params]
    if missing:
      raise ConfigError(f"AdaIN encoder: expected VGG19 params through {ENCODER_LAYER}, "
                        f"missing {', '.join(missing)}")
    for name in layers:
      got = tuple(encoder_params[name]["kernel"].shape)
      if got != expected[name]["kernel"]:
        raise ConfigError(f"AdaIN encoder: {name} kernel has shape {got}, expected "
                          f"{expected[name]['kernel']} for width {spec.width}")
    self.encoder = nnx.Dict({
        name: nnx.Dict({k: Frozen(jnp.asarray(encoder_params[name][k], jnp.float32))
                        for k in ("kernel", "bias")}) for name in layers})
    self.decoder = Decoder(spec, rngs=rngs)

  def encoder_params(self) -> dict:
    """The encoder as a plain ``{layer: {"kernel", "bias"}}`` dict (jaxstyle.vgg's format)."""
    return {name: {k: v[...] for k, v in layer.items()} for name, layer in self.encoder.items()}

  def encode(self, rgb_NxHxWx3, layers=(ENCODER_LAYER,)) -> dict:
    """VGG features of RGB 0-255 images at ``layers`` (post-ReLU names)."""
    x = vgg.preprocess(rgb_NxHxWx3, self.spec.convention)
    return vgg.vgg_features(self.encoder_params(), x, layers)

  def style_stats(self, styles_NxHxWx3):
    """Each style image's (μ, σ) at relu4_1: what :meth:`stylize` needs of a style."""
    return mean_std(self.encode(styles_NxHxWx3)[ENCODER_LAYER])

  def stylize(self, photos_BxHxWx3, style_mean_KxC, style_std_KxC, mix_BxK, alpha=1.0):
    """Decodes t = α Σ_k w_k AdaIN(f(c), μ_k, σ_k) + (1 − α) f(c); RGB 0-255, any size ×8."""
    content = self.encode(photos_BxHxWx3)[ENCODER_LAYER]
    mean, std = mean_std(content)
    normalised = (content - mean) / std
    target_mean = (mix_BxK @ style_mean_KxC)[:, None, None, :]
    target_std = (mix_BxK @ style_std_KxC)[:, None, None, :]
    # Σ_k w_k (σ_k n + μ_k) = (Σ w_k σ_k) n + Σ w_k μ_k, since the weights sum to 1.
    t = normalised * target_std + target_mean
    alpha = jnp.asarray(alpha, content.dtype).reshape(-1, 1, 1, 1)
    return self.decoder(alpha * t + (1 - alpha) * content)

  def __call__(self, photos_BxHxWx3, styles_BxHxWx3, alpha=1.0):
    """Each photo in the style of its style image (one style each)."""
    mean, std = self.style_stats(styles_BxHxWx3)
    batch = photos_BxHxWx3.shape[0]
    return self.stylize(photos_BxHxWx3, mean.reshape(batch, -1), std.reshape(batch, -1),
                        jnp.eye(batch), alpha)
