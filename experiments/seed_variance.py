"""Seed variance: five seeds from a noise init and from the content init.

    python experiments/seed_variance.py [-o runs/seed_variance]

Declared in experiments/sweeps/seed_variance.toml (the record of the experiment);
equivalent to `jaxstyle sweep experiments/sweeps/seed_variance.toml -o runs/seed_variance`
plus the summary table. Rerunning resumes: recorded members are skipped.

Expected runtime: about 40 s on a 2-core CPU (random width-0.25 VGG19, 128 px);
GPU: not measured yet. Shows: how much the result depends on the seed: the final loss spread over seeds (mean ± std) per init; the content init ignores the seed, so its spread is 0.
Writes runs/seed_variance/: records.jsonl, one PNG per member, contact_sheet.png and
the loss curves. With the default random weights the images show the
optimiser, not style transfer: set weights in the .toml for real results.
"""

from _run import main

if __name__ == "__main__":
  main(__doc__, "seed_variance.toml", by=["init"], curves=("iteration",))
