"""StyleConfig validation: errors name the option, what was expected and what was got."""

import pytest

import jaxstyle


@pytest.mark.parametrize("changes, message", [
    ({"size": 8}, "--size: expected at least 16 pixels.*got 8"),
    ({"style_weight": -1.0}, "--style-weight: expected a non-negative weight, got -1.0"),
    ({"style_layers": ("relu9_1",)}, "unknown VGG19 layer 'relu9_1'"),
    ({"style_layer_weights": (1.0, 2.0)}, "--style-layer-weights: expected 5 weights"),
    ({"optimizer": "sgd"}, "--optimizer: expected lbfgs or adam, got 'sgd'"),
    ({"pooling": "min"}, "--pooling: expected max or avg"),
    ({"content_layers": (), "style_layers": ()}, "at least one content or style layer"),
    ({"clamp": True}, "--clamp: expected --optimizer adam or --lbfgs-linesearch none"),
    ({"pixel_range": 0.0}, "--pixel-range: expected a positive range"),
])
def test_invalid_values_are_explained(changes, message):
  with pytest.raises(jaxstyle.ConfigError, match=message):
    jaxstyle.StyleConfig(**changes)


def test_defaults_follow_the_paper_and_normalise_layer_weights():
  config = jaxstyle.StyleConfig()
  assert config.content_layers == ("relu4_2",)
  assert config.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
  assert config.pooling == "max" and config.optimizer == "lbfgs" and config.init == "content"
  assert config.normalised_style_layer_weights == (0.2,) * 5
  weighted = config.replace(style_layer_weights=[1, 1, 2, 0, 0])
  assert weighted.normalised_style_layer_weights == (0.25, 0.25, 0.5, 0.0, 0.0)
  assert jaxstyle.StyleConfig(style_layers=["relu1_1"]) == jaxstyle.StyleConfig(style_layers=("relu1_1",))
  assert hash(config) == hash(jaxstyle.StyleConfig())
  assert config.to_dict()["style_weight"] == 1e4
