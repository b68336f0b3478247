"""The artistic controls side by side: the README's gallery.

    python experiments/controls_gallery.py [-o runs/controls_gallery]

Declared in experiments/sweeps/controls_gallery.toml: one photo and Starry
Night, then one control changed per column: original colours by luminance
transfer and by histogram matching (Gatys et al. 2017), the style at half
scale, the mean-and-covariance (W2) style loss, two scales coarse to fine,
Starry Night and The Scream blended, and the same two confined by masks to
the left and right halves.

Expected runtime: about 2 minutes on a 2-core CPU (random width-0.25 VGG19,
128 px, 100 L-BFGS iterations; the members differ in program-shaping fields,
so each compiles its own program). GPU: not measured. The contact sheet is
docs/gallery/controls.png. With the default random weights the images show
what each control does to the optimisation, not real style transfer.
"""

from _run import main

if __name__ == "__main__":
  main(__doc__, "controls_gallery.toml", by=["preserve_colors", "style_loss", "scales"])
