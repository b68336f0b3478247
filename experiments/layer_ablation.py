"""Style-layer ablation: relu1_1 alone, then adding relu2_1 ... relu5_1.

    python experiments/layer_ablation.py [-o runs/layer_ablation]

Declared in experiments/sweeps/layer_ablation.toml (the record of the experiment);
equivalent to `jaxstyle sweep experiments/sweeps/layer_ablation.toml -o runs/layer_ablation`
plus the summary table. Rerunning resumes: recorded members are skipped.

Expected runtime: about 40 s on a 2-core CPU (random width-0.25 VGG19, 128 px);
GPU: not measured yet. Shows: the reconstruction of style from increasingly deep layers, as in Gatys et al. 2016 Fig. 2 (five programs, one per layer set).
Writes runs/layer_ablation/: records.jsonl, one PNG per member, contact_sheet.png and
the loss curves. With the default random weights the images show the
optimiser, not style transfer: set weights in the .toml for real results.
"""

from _run import main

if __name__ == "__main__":
  main(__doc__, "layer_ablation.toml", by=["style_layers"], curves=("iteration",))
