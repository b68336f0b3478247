"""Feed-forward style networks (flax.nnx): trained once on the shared objective, applied in one pass."""

from jaxstyle.nets.johnson import CondInstanceNorm, JohnsonNet, JohnsonSpec, style_vector

__all__ = ["CondInstanceNorm", "JohnsonNet", "JohnsonSpec", "style_vector"]
