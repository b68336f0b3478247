"""Optimising pixels: the optimiser step and its compiled chunks (``solver``), Torch's L-BFGS
as an optax pair (``optimizers``), many runs as one program (``members``), and VGG's Winograd
convolution (``winograd``)."""
