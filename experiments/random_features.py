"""Loss weights for the offline demo on random VGG19 features: TV weight x style weight.

    python experiments/random_features.py [-o runs/random_features]

Declared in experiments/sweeps/random_features.toml: the demo's settings
(Chelsea and The Starry Night, 128 px, 100 L-BFGS iterations, full-width
random VGG19) with the TV weight at 1e2 (the default, converted for trained
weights), 10 and 1, and the style weight at 1e4 (the default) and 1e5.
Random-feature networks carry texture statistics (Ustyuzhaninov et al.
2016; He, Wang & Hopcroft, NeurIPS 2016), but their Gram magnitudes are not
a trained VGG's: the weights that balance the terms differ. The pick is
jaxstyle.demo.RANDOM_FEATURE_WEIGHTS; the contact sheet is the evidence.

Expected runtime: about 2 minutes on a 2-core CPU. Images: RANDOM features.
"""

from _run import main

if __name__ == "__main__":
  main(__doc__, "random_features.toml", by=["tv_weight", "style_weight"], curves=("iteration",))
