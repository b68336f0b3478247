"""The style networks' convolution layer (flax.nnx) and the per-layer plan of its algorithms.

:class:`ReflectConv` is the one layer Johnson's network, conditional
instance norm and the AdaIN decoder convolve with; :mod:`jaxstyle.conv`
holds its arithmetic (every algorithm), the measurement and the choice
cache, without flax, so that commands which never build a network do not
import it. :func:`plan` is where the two meet: it traces a network
abstractly for its layers' shapes, asks :func:`jaxstyle.conv.choose` for
each (or applies one ``--conv`` algorithm) and sets the result on the layers.
"""

from __future__ import annotations

import contextvars

import jax
import jax.numpy as jnp
from flax import nnx

from jaxstyle.conv import CHOICES, ChoiceCache, LayerShape, applies, choose, reflect_conv
from jaxstyle.errors import ConfigError


# Set only inside layer_shapes' abstract trace: each layer called appends its input's shape,
# so a plan sees the shapes the network really produces without a copy of its arithmetic.
_RECORDING: contextvars.ContextVar[list | None] = contextvars.ContextVar("_RECORDING",
                                                                         default=None)

# Set only while a tile of a larger image is traced (jaxstyle.nets.tiles): called with the input
# of each layer that normalises over the whole image (Johnson's instance norms, AdaIN's content
# statistics), in turn, it gives that layer's (mean, var) of the whole image.
WHOLE_IMAGE: contextvars.ContextVar = contextvars.ContextVar("WHOLE_IMAGE", default=None)


class ReflectConv(nnx.Module):
  """``y = conv_stride(reflect_pad(up(x), k // 2), kernel) + bias`` by ``self.algorithm``.

  ``algorithm`` is a static attribute (part of the graph, so jit compiles per
  choice): ``direct`` until :func:`use` sets a plan. Kernel and bias
  initialise as ``nnx.Conv``'s (LeCun normal, zeros) from the same key.
  """

  def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, upsample: int = 1,
               rngs: nnx.Rngs):
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(),
                                                            (kernel, kernel, cin, cout)))
    rngs.params()  # nnx.Conv draws a key for its bias too: keep the stream, so inits match it.
    self.bias = nnx.Param(jnp.zeros((cout,)))
    self.stride, self.upsample, self.algorithm = stride, upsample, "direct"

  def __call__(self, x_NxHxWxCin):
    recording = _RECORDING.get()
    if recording is not None:
      recording.append((self, x_NxHxWxCin.shape, str(x_NxHxWxCin.dtype)))
    kernel = self.kernel[...].astype(x_NxHxWxCin.dtype)
    y = reflect_conv(x_NxHxWxCin, kernel, stride=self.stride, upsample=self.upsample,
                     algorithm=self.algorithm)
    return y + self.bias[...].astype(y.dtype)[None, None, None, :]


def layers_of(net: nnx.Module) -> dict[str, ReflectConv]:
  """Every :class:`ReflectConv` in ``net`` by its dotted path (``res.0.conv1.conv``)."""
  return {".".join(map(str, path)): module for path, module in nnx.iter_modules(net)
          if isinstance(module, ReflectConv)}


def layer_shapes(net: nnx.Module, call, *args, grad: bool = False) -> dict[str, LayerShape]:
  """Each layer's :class:`LayerShape` when ``call(*args)`` runs (abstractly: no compute)."""
  names = {id(module): name for name, module in layers_of(net).items()}
  recording: list = []
  token = _RECORDING.set(recording)
  try:
    jax.eval_shape(lambda *a: call(*a), *args)  # A new function: jax's trace cache misses.
  finally:
    _RECORDING.reset(token)
  shapes = {}
  for module, (n, h, w, cin), dtype in recording:
    k, _, _, cout = module.kernel.shape
    shapes[names[id(module)]] = LayerShape(n, h, w, cin, cout, k, module.stride, module.upsample,
                                           grad, dtype)
  return shapes


def use(net: nnx.Module, plan: dict[str, str]) -> None:
  """Sets each named layer's algorithm (``plan`` from :func:`plan`); others keep theirs."""
  layers = layers_of(net)
  unknown = sorted(set(plan) - set(layers))
  if unknown:
    raise ConfigError(f"convolution plan names layers this network lacks: {', '.join(unknown)}")
  for name, algorithm in plan.items():
    module = layers[name]
    k, _, cin, _ = module.kernel.shape
    if not applies(algorithm, k, module.stride, module.upsample, cin):
      raise ConfigError(f"convolution plan: {name} ({k}x{k}, stride {module.stride}) cannot "
                        f"run {algorithm!r}")
    module.algorithm = algorithm


def plan(net: nnx.Module, call, *args, grad: bool = False, conv: str = "auto",
         cache: "ChoiceCache | None" = None, log=None) -> dict[str, str]:
  """``{layer: algorithm}`` for ``call(*args)``; sets it on ``net`` too (:func:`use`).

  ``conv``: ``auto`` (each layer's fastest, by :func:`choose` with ``cache``)
  or one algorithm for every layer it applies to (``direct`` elsewhere).
  ``grad``: choose for forward and backward (training) rather than forward.
  """
  if conv not in CHOICES:
    raise ConfigError(f"--conv: expected one of {', '.join(CHOICES)}, got {conv!r}")
  if conv == "auto" and cache is None:
    cache = ChoiceCache.default()  # Read once for the whole network, not once per layer.
  chosen = {}
  for name, shape in layer_shapes(net, call, *args, grad=grad).items():
    if conv == "auto":
      chosen[name] = choose(shape, cache, log=log)
    else:
      chosen[name] = conv if applies(conv, shape.kernel, shape.stride, shape.upsample,
                                     shape.cin) else "direct"
  use(net, chosen)
  return chosen


def network_shapes(*, size: int, crop: int, batch: int, width: float = 1.0
                   ) -> dict[str, LayerShape]:
  """The distinct layers of the style networks as they run: Johnson's (width ``width``) and the
  AdaIN decoder's applied to one ``size`` image, and in a training step of ``batch`` x ``crop``
  px; keyed ``"johnson apply: conv1.conv"`` (the first layer of each shape)."""
  from jaxstyle.nets.adain import AdaINNet, AdaINSpec  # They import this module.
  from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec
  johnson = JohnsonNet(JohnsonSpec(width), rngs=nnx.Rngs(0))
  decoder = AdaINNet(AdaINSpec(min(width, 1.0)), rngs=nnx.Rngs(0)).decoder
  c4 = decoder.stages[0][0].conv.kernel.shape[2]
  runs = {"johnson apply": (johnson, (1, size, size, 3), (1, 1), False),
          "johnson train": (johnson, (batch, crop, crop, 3), (batch, 1), True),
          "adain apply": (decoder, (1, size // 8, size // 8, c4), None, False),
          "adain train": (decoder, (batch, crop // 8, crop // 8, c4), None, True)}
  found: dict[str, LayerShape] = {}
  for run, (net, image, style, grad) in runs.items():
    args = [jax.ShapeDtypeStruct(image, jnp.float32)]
    if style is not None:
      args.append(jax.ShapeDtypeStruct(style, jnp.float32))
    for name, shape in layer_shapes(net, net, *args, grad=grad).items():
      if shape not in found.values():
        found[f"{run}: {name}"] = shape
  return found
