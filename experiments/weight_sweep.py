"""Style weight x content weight sweep.

    python experiments/weight_sweep.py [-o runs/weight_sweep]

Declared in experiments/sweeps/weight_sweep.toml (the record of the experiment);
equivalent to `jaxstyle sweep experiments/sweeps/weight_sweep.toml -o runs/weight_sweep`
plus the summary table. Rerunning resumes: recorded members are skipped.

Expected runtime: about 30 s on a 2-core CPU (random width-0.25 VGG19, 128 px);
GPU: not measured yet. Shows: how the balance of the two terms moves the result (rows: style weight, columns: content weight).
Writes runs/weight_sweep/: records.jsonl, one PNG per member, contact_sheet.png and
the loss curves. With the default random weights the images show the
optimiser, not style transfer: set weights in the .toml for real results.
"""

from _run import main

if __name__ == "__main__":
  main(__doc__, "weight_sweep.toml", by=["style_weight", "content_weight"], curves=("iteration",))
