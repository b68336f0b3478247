"""Multi-style batch: one photo, four paintings, one compiled program.

    python experiments/multi_style.py [-o runs/multi_style]

Declared in experiments/sweeps/multi_style.toml (the record of the experiment);
equivalent to `jaxstyle sweep experiments/sweeps/multi_style.toml -o runs/multi_style`
plus the summary table. Rerunning resumes: recorded members are skipped.

Expected runtime: about 30 s on a 2-core CPU (random width-0.25 VGG19, 128 px);
GPU: not measured yet. Shows: the batch machinery end to end: all members run as one vmapped program (records.jsonl: members_in_program = 4).
Writes runs/multi_style/: records.jsonl, one PNG per member, contact_sheet.png and
the loss curves. With the default random weights the images show the
optimiser, not style transfer: set weights in the .toml for real results.
"""

from _run import main

if __name__ == "__main__":
  main(__doc__, "multi_style.toml", by=["style"], curves=("iteration",))
