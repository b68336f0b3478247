"""Optimiser comparison: L-BFGS against Adam, same objective and init.

    python experiments/optimizer_comparison.py [-o runs/optimizer_comparison]

Declared in experiments/sweeps/optimizer_comparison.toml (the record of the experiment);
equivalent to `jaxstyle sweep experiments/sweeps/optimizer_comparison.toml -o runs/optimizer_comparison`
plus the summary table. Rerunning resumes: recorded members are skipped.

Expected runtime: about 20 s on a 2-core CPU (random width-0.25 VGG19, 128 px);
GPU: not measured yet. Shows: the loss against iterations (loss_curves.png) and against seconds (loss_vs_seconds.png); measured here (CPU, random features): L-BFGS costs ~1.6x more per iteration than Adam yet ends 2.6x lower and is ahead at every equal time.
Writes runs/optimizer_comparison/: records.jsonl, one PNG per member, contact_sheet.png and
the loss curves. With the default random weights the images show the
optimiser, not style transfer: set weights in the .toml for real results.
"""

from _run import main

if __name__ == "__main__":
  main(__doc__, "optimizer_comparison.toml", by=["optimizer"], curves=("iteration", "seconds"))
