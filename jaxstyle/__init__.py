"""jaxstyle: Gatys-style neural style transfer, the JAX way.

VGG19 / VGG16 as pure functions over a params dict, jit-compiled style-transfer
losses, and an optax L-BFGS / Adam loop over pixels compiled on device.
"""

from jaxstyle import checkpoint, presets
from jaxstyle.config import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS, StyleConfig
from jaxstyle.vgg.convert import convert as convert_weights
from jaxstyle.vgg.convert import download as download_weights
from jaxstyle.errors import (ConfigError, ImageError, Interrupted, JaxstyleError,
                             NonFiniteLossError, WeightsError)
from jaxstyle.images import load_image, save_image
from jaxstyle.losses import (content_loss, gram_loss, gram_matrix, normalized_gradient,
                             style_layer_loss, temporal_loss, tv_loss, w2_style_loss,
                             w2_targets)
from jaxstyle.objective import (LossWeights, ObjectiveSpec, Targets, Temporal, make_targets,
                                objective, objective_terms, prepare_weights)
from jaxstyle.optim.optimizers import TorchLBFGSState, torch_lbfgs
from jaxstyle.optim.solver import RunState, SolverSpec
from jaxstyle.transfer import Estimate, Result, estimate, stylize, stylize_batch
from jaxstyle.vgg import (LAYER_NAMES, canonical_layer, deprocess, layer_names, network_of,
                          preprocess, random_vgg, vgg_features)
from jaxstyle.vgg.weights import (RandomWeightsWarning, Weights, load_weights, random_weights,
                              resolve_weights, save_weights)

__version__ = "0.4.0"

__all__ = [
    "canonical_layer", "ConfigError", "content_loss", "convert_weights", "deprocess",
    "download_weights", "Estimate", "estimate", "gram_loss", "gram_matrix", "ImageError",
    "Interrupted", "JaxstyleError", "LAYER_NAMES", "layer_names", "load_image", "load_weights",
    "LossWeights", "make_targets", "network_of", "NonFiniteLossError", "normalized_gradient",
    "objective", "objective_terms", "ObjectiveSpec", "PAPER_CONTENT_LAYERS",
    "PAPER_STYLE_LAYERS", "prepare_weights", "preprocess", "random_vgg", "random_weights",
    "RandomWeightsWarning", "resolve_weights", "Result", "RunState", "save_image",
    "save_weights", "SolverSpec", "style_layer_loss", "StyleConfig", "stylize", "stylize_batch",
    "Targets", "Temporal", "temporal_loss", "torch_lbfgs", "TorchLBFGSState", "tv_loss",
    "vgg_features", "w2_style_loss", "w2_targets", "Weights", "WeightsError",
]
