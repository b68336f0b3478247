"""jaxstyle: Gatys-style neural style transfer, the JAX way.

VGG19 / VGG16 as pure functions over a params dict, jit-compiled style-transfer
losses, and an optax L-BFGS / Adam loop over pixels compiled on device.
"""

from jaxstyle import checkpoint, presets
from jaxstyle.config import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS, StyleConfig
from jaxstyle.convert import convert as convert_weights
from jaxstyle.convert import download as download_weights
from jaxstyle.errors import (ConfigError, ImageError, Interrupted, JaxstyleError,
                             NonFiniteLossError, WeightsError)
from jaxstyle.images import load_image, save_image
from jaxstyle.losses import (content_loss, gram_loss, gram_matrix, normalized_gradient,
                             style_layer_loss, temporal_loss, tv_loss, w2_style_loss,
                             w2_targets)
from jaxstyle.objective import (LossWeights, ObjectiveSpec, Targets, Temporal, make_targets,
                                objective, objective_terms, prepare_weights)
from jaxstyle.solver import RunState, SolverSpec
from jaxstyle.transfer import Estimate, Result, estimate, stylize, stylize_batch
from jaxstyle.vgg import (LAYER_NAMES, canonical_layer, deprocess, layer_names, network_of,
                          preprocess, random_vgg, vgg_features)
from jaxstyle.weights import (RandomWeightsWarning, Weights, load_weights, random_weights,
                              resolve_weights, save_weights)

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "Estimate", "ImageError", "Interrupted", "JaxstyleError", "LAYER_NAMES",
    "LossWeights", "NonFiniteLossError", "ObjectiveSpec", "PAPER_CONTENT_LAYERS",
    "PAPER_STYLE_LAYERS", "RandomWeightsWarning", "Result", "RunState", "SolverSpec",
    "StyleConfig", "Targets", "Temporal", "Weights", "WeightsError", "canonical_layer", "content_loss",
    "convert_weights", "deprocess", "download_weights", "estimate", "gram_loss", "gram_matrix",
    "layer_names", "load_image", "load_weights", "make_targets", "network_of",
    "normalized_gradient", "objective", "objective_terms", "prepare_weights", "preprocess", "random_vgg",
    "random_weights", "resolve_weights", "save_image", "save_weights", "style_layer_loss",
    "stylize", "stylize_batch", "temporal_loss", "tv_loss", "vgg_features", "w2_style_loss", "w2_targets",
]
