"""Johnson's feed-forward style network in flax.nnx, with conditional instance norm.

Johnson, Alahi & Fei-Fei (ECCV 2016), as the PyTorch examples'
``fast_neural_style`` ``TransformerNet`` writes it (the layout whose trained
``.pth`` files users have):

    9x9 conv (32) → 3x3 conv /2 (64) → 3x3 conv /2 (128)
    → 5 residual blocks (two 3x3 convs of 128 each)
    → 2x upsample + 3x3 conv (64) → 2x upsample + 3x3 conv (32) → 9x9 conv (3)

Every conv is reflection-padded (k // 2); every conv but the last is followed
by instance normalisation (Ulyanov et al. 2016) and a ReLU (no ReLU after a
residual block's second norm). Upsampling is nearest-neighbour resize then
convolution (Odena et al. 2016), which avoids the checkerboard artifacts of
the paper's stride-½ transposed convolutions; ``upsample="transposed"``
restores those (3x3, stride 2). Channel counts scale with ``width``.

Conditional instance norm (Dumoulin, Shlens & Kudlur, ICLR 2017): with
``styles = N`` each norm layer holds γ, β of shape N x C, every convolution is
shared, and a style is a weight vector s over the N styles: γ = sᵀΓ, β = sᵀB.
One-hot s picks a style, a convex s interpolates. ``styles = 1`` is Johnson's
single-style network (s = [1]).

Images are RGB 0-255 in and out (``img_NxHxWx3``), the space of
:func:`jaxstyle.objective.objective`, so the network trains on the very
objective the pixel optimiser uses. The network is fully convolutional: a side that
is a multiple of 4 comes back at its size, any other rounded up to the next
multiple of 4 (as in fast_neural_style); :func:`jaxstyle.nets.apply.stylize_image`
pads and crops so that outputs keep the input's size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from jaxstyle.errors import ConfigError
from jaxstyle.nets.layers import WHOLE_IMAGE, ReflectConv

EPS = 1e-5  # torch.nn.InstanceNorm2d's default.
UPSAMPLING = ("nearest", "transposed")


@dataclass(frozen=True)
class JohnsonSpec:
  """The architecture: what a model file must record to rebuild the network."""

  width: float = 1.0  # Channel multiplier: 32, 64, 128 channels at 1.0.
  styles: int = 1  # N styles in one network (conditional instance norm).
  residual_blocks: int = 5
  upsample: str = "nearest"

  def __post_init__(self):
    if not self.width > 0:
      raise ConfigError(f"--width: expected a positive multiplier, got {self.width}")
    if self.styles < 1 or self.residual_blocks < 0:
      raise ConfigError(f"expected at least 1 style and 0 residual blocks, got {self.styles} "
                        f"and {self.residual_blocks}")
    if self.upsample not in UPSAMPLING:
      raise ConfigError(f"--upsample: expected nearest or transposed, got {self.upsample!r}")

  @property
  def channels(self) -> tuple[int, int, int]:
    """The three widths (32, 64, 128 at width 1)."""
    return tuple(max(1, round(c * self.width)) for c in (32, 64, 128))

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


class CondInstanceNorm(nnx.Module):
  """Instance norm whose scale and shift are mixed from N styles' (N x C each).

  y = γ(s) · (x − μ) / √(σ² + ε) + β(s), with μ, σ² the per-image, per-channel
  mean and (biased) variance over H x W, and γ(s) = sᵀΓ, β(s) = sᵀB. On a tile
  of a larger image, μ and σ² are the whole image's (:data:`WHOLE_IMAGE`).
  """

  def __init__(self, channels: int, styles: int):
    self.scale = nnx.Param(jnp.ones((styles, channels)))
    self.bias = nnx.Param(jnp.zeros((styles, channels)))

  def __call__(self, x_NxHxWxC, style_NxS):
    statistics = WHOLE_IMAGE.get()
    if statistics is None:
      mean = x_NxHxWxC.mean((1, 2), keepdims=True)
      var = jnp.square(x_NxHxWxC - mean).mean((1, 2), keepdims=True)
    else:  # A tile of a larger image: the whole image's statistics (jaxstyle.nets.tiles).
      mean, var = statistics(x_NxHxWxC)
    normalised = (x_NxHxWxC - mean) * jax.lax.rsqrt(var + EPS)
    gamma, beta = style_NxS @ self.scale[...], style_NxS @ self.bias[...]
    return normalised * gamma[:, None, None, :] + beta[:, None, None, :]


class ConvLayer(nnx.Module):
  """Reflection padding (k // 2), then a k x k convolution with ``stride`` (after 2x nearest
  upsampling when ``upsample`` is 2): one :class:`jaxstyle.nets.layers.ReflectConv`."""

  def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, upsample: int = 1,
               rngs: nnx.Rngs):
    self.conv = ReflectConv(cin, cout, kernel, stride=stride, upsample=upsample, rngs=rngs)

  def __call__(self, x_NxHxWxC):
    return self.conv(x_NxHxWxC)


class UpsampleConv(nnx.Module):
  """2x upsampling then a 3x3 convolution: nearest resize + conv, or a transposed conv."""

  def __init__(self, cin: int, cout: int, upsample: str, *, rngs: nnx.Rngs):
    if upsample == "nearest":
      self.conv = ConvLayer(cin, cout, 3, upsample=2, rngs=rngs)
    else:  # Johnson's stride-½ convolution (torch: padding 1, output_padding 1).
      self.conv = nnx.ConvTranspose(cin, cout, (3, 3), strides=2, padding=((1, 2), (1, 2)),
                                    rngs=rngs)

  def __call__(self, x_NxHxWxC):
    return self.conv(x_NxHxWxC)


class ResidualBlock(nnx.Module):
  """x + IN(conv(ReLU(IN(conv(x))))), both convs 3x3 (He et al.; Gross & Wilber's variant)."""

  def __init__(self, channels: int, styles: int, *, rngs: nnx.Rngs):
    self.conv1 = ConvLayer(channels, channels, 3, rngs=rngs)
    self.in1 = CondInstanceNorm(channels, styles)
    self.conv2 = ConvLayer(channels, channels, 3, rngs=rngs)
    self.in2 = CondInstanceNorm(channels, styles)

  def __call__(self, x_NxHxWxC, style_NxS):
    y = jax.nn.relu(self.in1(self.conv1(x_NxHxWxC), style_NxS))
    return x_NxHxWxC + self.in2(self.conv2(y), style_NxS)


class JohnsonNet(nnx.Module):
  """The transformer network; ``net(img_NxHxWx3, style_NxS)`` → stylized RGB 0-255."""

  def __init__(self, spec: JohnsonSpec = JohnsonSpec(), *, rngs: nnx.Rngs):
    self.spec = spec
    c1, c2, c3 = spec.channels
    n = spec.styles
    self.conv1, self.in1 = ConvLayer(3, c1, 9, rngs=rngs), CondInstanceNorm(c1, n)
    self.conv2, self.in2 = ConvLayer(c1, c2, 3, 2, rngs=rngs), CondInstanceNorm(c2, n)
    self.conv3, self.in3 = ConvLayer(c2, c3, 3, 2, rngs=rngs), CondInstanceNorm(c3, n)
    self.res = nnx.List([ResidualBlock(c3, n, rngs=rngs) for _ in range(spec.residual_blocks)])
    self.deconv1 = UpsampleConv(c3, c2, spec.upsample, rngs=rngs)
    self.in4 = CondInstanceNorm(c2, n)
    self.deconv2 = UpsampleConv(c2, c1, spec.upsample, rngs=rngs)
    self.in5 = CondInstanceNorm(c1, n)
    self.deconv3 = ConvLayer(c1, 3, 9, rngs=rngs)

  def __call__(self, img_NxHxWx3, style_NxS=None):
    """Stylizes a batch; ``style_NxS`` weighs the N styles (default: the first, or the only one)."""
    if img_NxHxWx3.ndim != 4 or img_NxHxWx3.shape[-1] != 3:
      raise ConfigError(f"expected images N x H x W x 3, got shape {img_NxHxWx3.shape}; "
                        "add a batch axis with x[None]")
    batch = img_NxHxWx3.shape[0]
    if style_NxS is None:
      style_NxS = jnp.zeros((batch, self.spec.styles)).at[:, 0].set(1.0)
    if style_NxS.shape != (batch, self.spec.styles):
      raise ConfigError(f"expected style weights of shape {(batch, self.spec.styles)} (one "
                        f"weight per style for each image), got {style_NxS.shape}")
    x = img_NxHxWx3
    for conv, norm in ((self.conv1, self.in1), (self.conv2, self.in2), (self.conv3, self.in3)):
      x = jax.nn.relu(norm(conv(x), style_NxS))
    for block in self.res:
      x = block(x, style_NxS)
    x = jax.nn.relu(self.in4(self.deconv1(x), style_NxS))
    x = jax.nn.relu(self.in5(self.deconv2(x), style_NxS))
    return self.deconv3(x)


def style_vector(mix, styles: int):
  """A style weight vector: an index (one-hot) or N weights normalised to sum 1."""
  if isinstance(mix, int):
    if not 0 <= mix < styles:
      raise ConfigError(f"--style: expected a style index in 0..{styles - 1}, got {mix}")
    return jnp.zeros((styles,)).at[mix].set(1.0)
  mix = jnp.asarray(mix, jnp.float32)
  if mix.shape != (styles,) or bool(jnp.any(mix < 0)) or not float(mix.sum()) > 0:
    raise ConfigError(f"--style-mix: expected {styles} non-negative weights with a positive "
                      f"sum (one per style the model holds), got {mix.tolist()}")
  return mix / mix.sum()
