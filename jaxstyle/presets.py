"""Presets: the objectives of the classic papers and tools, as StyleConfigs.

Each preset is a function returning the :class:`StyleConfig` that writes its
source's objective in jaxstyle's terms; its docstring cites the source and
lists every setting, with the arithmetic where a source's weighting has to
be re-expressed (jaxstyle's style weight multiplies Σ_l w_l E_l with the w_l
summing to 1, so a source that gives each of L layers the weight s has
``style_weight`` = L·s). ``tests/test_presets.py`` checks every preset's
objective against a NumPy transcription of its source's formulas.

Each docstring ends with what of the source's *run* the preset replays.
The Torch-based ones replay it: ``lbfgs_linesearch="none"`` is Torch's
fixed-step L-BFGS exactly (:func:`jaxstyle.optim.optimizers.torch_lbfgs`), with
the tutorial's [0, 1] pixels and clamp, and ``tests/test_presets.py`` checks
their loss per iteration against runs of the sources made by torch. The
Keras ones cannot: scipy's L-BFGS-B searches every step with its own
Moré-Thuente linesearch, which jaxstyle does not reproduce. Sizes are given
as the longest side.

Use ``jaxstyle stylize --preset NAME`` (options given explicitly override
the preset's), ``preset = "NAME"`` in a sweep file, or
``presets.get(NAME).replace(...)`` in Python.
"""

from __future__ import annotations

from typing import Callable

from jaxstyle.config import PAPER_STYLE_LAYERS, StyleConfig
from jaxstyle.errors import ConfigError

KERAS_STYLE_LAYERS = tuple(f"block{b}_conv1" for b in range(1, 6))


def gatys2016() -> StyleConfig:
  """Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
  Networks", CVPR 2016.

  * network VGG19, average pooling (the paper: "replacing the max-pooling
    operation by average pooling yields slightly more appealing results");
  * content: relu4_2, L = ½ Σ (F − P)² (eq. 1), α = 1;
  * style: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, each w_l = 1/5,
    E_l = Σ (G − A)² / (4 N² M²) (eq. 4), β = 1e3, so α/β = 1e-3;
  * no total variation; init white noise; L-BFGS, 500 iterations; 512 px.

  The paper's α/β assumes its VGG rescaled to unit mean activations; with
  the plain ImageNet weights the style term is weaker than in the paper.
  Replay: the objective only; the paper names L-BFGS without its settings.
  """
  return StyleConfig(size=512, iters=500, network="vgg19", pooling="avg",
                     content_layers=("relu4_2",), style_layers=PAPER_STYLE_LAYERS,
                     content_norm="half_sum", style_norm="gatys", content_weight=1.0,
                     style_weight=1e3, tv_weight=0.0, init="noise", optimizer="lbfgs")


def keras_example() -> StyleConfig:
  """The classic Keras example, ``examples/neural_style_transfer.py``
  (Keras 2, F. Chollet), VGG19 with Keras' caffe-convention weights.

  * content: block5_conv2, ``content_weight * K.sum(K.square(comb - base))``,
    content_weight 0.025 (content_norm ``sum``);
  * style: block1_conv1 … block5_conv1, each layer
    ``(style_weight / 5) * K.sum(K.square(S - C)) / (4. * 3**2 * size**2)``
    with S, C unnormalised Grams, ``channels = 3`` and ``size`` the image's
    rows·cols (style_norm ``keras``), style_weight 1.0;
  * TV: ``K.sum(K.pow(a + b, 1.25))`` with a, b the squared right and down
    differences (tv_beta 2.5), weight 1.0;
  * init: the content image; ``fmin_l_bfgs_b(maxfun=20)`` called 10 times,
    each call starting a fresh L-BFGS: lbfgs_restart 20 evaluations and
    200 iterations (the example's budget is 200 evaluations; jaxstyle counts
    iterations, each of at least one evaluation).
  * size: the example fixes the height at 400 px; here the longest side is 400.

  Replay: the objective only. scipy's ``fmin_l_bfgs_b`` (the Fortran
  L-BFGS-B) takes each step with a Moré-Thuente linesearch that jaxstyle does
  not reproduce; jaxstyle runs optax's zoom linesearch on the same objective,
  so the loss per iteration differs from the example's.
  """
  return StyleConfig(size=400, iters=200, network="vgg19", pooling="max",
                     content_layers=("block5_conv2",), style_layers=KERAS_STYLE_LAYERS,
                     content_norm="sum", style_norm="keras", content_weight=0.025,
                     style_weight=1.0, tv_weight=1.0, tv_beta=2.5, init="content",
                     optimizer="lbfgs", lbfgs_restart=20)


def keras_vgg16() -> StyleConfig:
  """The Keras example's objective on VGG16, as its VGG16 notebook variant runs it.

  The same loss functions as :func:`keras_example` (content ``sum``, style
  ``keras`` Σ(S−C)²/(4·3²·(rows·cols)²), TV exponent 1.25) on VGG16:

  * content: block4_conv2, weight 0.025;
  * style: block1_conv1 … block5_conv1, style_weight 1.0 split equally;
  * TV weight 1.0, tv_beta 2.5;
  * init: noise; 30 rounds of L-BFGS-B with 20 evaluations each:
    lbfgs_restart 20 and 600 iterations; 512 px.

  Replay: the objective only; scipy's Moré-Thuente linesearch is not
  reproduced (see :func:`keras_example`).
  """
  return keras_example().replace(size=512, iters=600, network="vgg16",
                                 content_layers=("block4_conv2",), init="noise")


def perceptual_vgg16() -> StyleConfig:
  """Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer
  and Super-Resolution", ECCV 2016, as its code (fast-neural-style) computes it.

  * network VGG16 (caffe weights), max pooling;
  * content: relu2_2 (the paper's style-transfer setting, sec. 4.1),
    mean squared error Σ(F−P)²/(C·H·W), weight 1;
  * style: relu1_2, relu2_2, relu3_3, relu4_3, Gram divided by C·H·W, then
    the mean squared error (style_norm ``chw``), each layer weight 5, so
    style_weight = 4 · 5 = 20;
  * TV: squared differences, weight 1e-6 (the low end of the paper's 1e-6 to
    1e-4); 256 px, init from the content.

  Content is relu2_2, the paper's layer for style transfer (relu3_3, which
  some write for it, is its super-resolution layer). The paper writes the
  style term as the squared Frobenius norm of Gram/(CHW) differences, C²
  times the code's mean; the code's weights are calibrated for the mean.
  This is the loss the feed-forward networks train with, used here per image.
  Replay: the objective only (the paper trains networks; there is no
  per-image run to follow).
  """
  return StyleConfig(size=256, iters=500, network="vgg16", pooling="max",
                     content_layers=("relu2_2",),
                     style_layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
                     content_norm="mean", style_norm="chw", content_weight=1.0,
                     style_weight=20.0, tv_weight=1e-6, init="content", optimizer="lbfgs")


def pytorch_tutorial() -> StyleConfig:
  """The PyTorch "Neural Transfer Using PyTorch" tutorial (A. Jacq), torchvision VGG19.

  * its losses sit right after conv modules, i.e. *before* the ReLUs:
    content conv_4 = conv2_2, style conv_1 … conv_5 = conv1_1, conv1_2,
    conv2_1, conv2_2, conv3_1 (pre-ReLU taps);
  * content: ``F.mse_loss`` (content_norm ``mean``), weight 1;
  * style: ``gram = F Fᵀ / (a·b·c·d)`` (C·H·W for one image) then
    ``F.mse_loss`` (style_norm ``chw``); the five layer losses are summed and
    multiplied by 1e6, so style_weight = 5 · 1e6;
  * no TV; init from the content; 300 steps of ``torch.optim.LBFGS``
    (history 100, no linesearch: lbfgs_linesearch ``none``); 512 px. Needs
    torchvision-converted weights (torch convention); with caffe weights the
    objective has the same form;
  * the image is a [0, 1] tensor (pixel_range 1: L-BFGS's first step,
    lr·min(1, 1/‖g‖₁), is taken in those units) clamped to [0, 1] before
    every evaluation (clamp).

  Replay: the run. On the same weights and images, its loss per iteration
  equals the tutorial's code run by torch to float64 round-off (1e-13) for
  20 iterations, and in float32 stays within 3e-5 of it, about as close as
  torch's own float32 run (2e-5; ``tests/test_presets.py``). The tutorial's ``Resize(imsize)``
  makes both images square; here they keep their aspect, longest side 512.
  """
  return StyleConfig(size=512, iters=300, network="vgg19", pooling="max",
                     content_layers=("conv2_2",),
                     style_layers=("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"),
                     content_norm="mean", style_norm="chw", content_weight=1.0,
                     style_weight=5e6, tv_weight=0.0, init="content", optimizer="lbfgs",
                     lbfgs_memory=100, lbfgs_linesearch="none", pixel_range=1.0, clamp=True)


def johnson_neural_style() -> StyleConfig:
  """Johnson's neural-style (Lua Torch, github.com/jcjohnson/neural-style) defaults.

  * network VGG19 (caffe), max pooling, 512 px, 1000 iterations of L-BFGS
    (optim.lbfgs, history 100, no linesearch: lbfgs_linesearch ``none``);
  * content: relu4_2, ``nn.MSECriterion`` (content_norm ``mean``), weight 5;
  * style: relu1_1 … relu5_1, Gram divided by C·H·W, ``nn.MSECriterion``
    (style_norm ``chw``), each layer weight 100, so style_weight = 5 · 100;
  * TV: its module's gradient is that of ½·Σ(Δx² + Δy²) times 1e-3, so
    tv_weight = 5e-4 on jaxstyle's Σ(Δx² + Δy²);
  * init: ``-init random`` is N(0, 0.001²) noise around the ImageNet mean
    colour; the closest here is ``gray`` (``-init image`` is ``content``).

  Replay: the run. The image it optimises is caffe-preprocessed (0-255, as
  jaxstyle's). On the same weights and images, from ``-init image``, its
  loss per iteration equals a torch transcription of neural-style (PyTorch's
  LBFGS being a port of optim.lbfgs) to 4e-8 in float64 for 20 iterations.
  In float32 this run is chaotic: torch's own float32 run leaves its float64
  one by 2e-3 at the second iteration and by 30% at the twentieth, so no
  float32 run, the original included, is reproducible past the first few.
  Caffe's ceil-mode pooling differs from jaxstyle's at sides that are not
  multiples of 16.
  """
  return StyleConfig(size=512, iters=1000, network="vgg19", pooling="max",
                     content_layers=("relu4_2",), style_layers=PAPER_STYLE_LAYERS,
                     content_norm="mean", style_norm="chw", content_weight=5.0,
                     style_weight=500.0, tv_weight=5e-4, init="gray", optimizer="lbfgs",
                     lbfgs_memory=100, lbfgs_linesearch="none")


PRESETS: dict[str, Callable[[], StyleConfig]] = {
    "gatys2016": gatys2016,
    "keras-example": keras_example,
    "keras-vgg16": keras_vgg16,
    "perceptual-vgg16": perceptual_vgg16,
    "pytorch-tutorial": pytorch_tutorial,
    "johnson-neural-style": johnson_neural_style,
}


def get(name: str) -> StyleConfig:
  """The named preset's StyleConfig; ConfigError listing the names if unknown."""
  if name not in PRESETS:
    raise ConfigError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}")
  return PRESETS[name]()


def describe(name: str) -> str:
  """The preset's first docstring paragraph, on one line (its source)."""
  doc = PRESETS[name].__doc__ or ""
  return " ".join(doc.split("\n\n")[0].split())
