"""No size can take the machine down: every command that allocates in proportion to a user's
number refuses, before allocating, what cannot fit, and its estimate is the real peak's.

Each command runs at two sizes in a fresh process (``python -m jaxstyle.memory``, compilation
cache off: the first run's peak, the worst), which reports the process's peak resident memory
and the estimate the command made before it allocated, with the process's resident memory at
that moment; the two added must be within ±25% of the peak. benchmarks/bench_memory_nets.py runs the same over
larger sizes and widths (docs/BENCHMARKS.md).
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import cli, memory

TOLERANCE = 0.25


# Session scope: a module fixture is torn down whenever an xdist worker's next test comes from
# another module, and `measured` (every command measured, ~4 minutes) ran twice that way.
@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
  """Photos, a style, a training folder, a clip, a sweep file and two models."""
  from flax import nnx

  from jaxstyle.nets import models
  from jaxstyle.nets.adain import AdaINNet, AdaINSpec
  from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec
  root = tmp_path_factory.mktemp("memory")
  rng = np.random.default_rng(0)
  for folder in ("data", "styles", "clip"):
    (root / folder).mkdir()
  photo = rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)
  Image.fromarray(photo).save(root / "photo.png")
  for i in range(2):
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(
        root / "data" / f"{i}.png")
  Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(root / "style.png")
  Image.open(root / "style.png").save(root / "styles" / "a.png")
  for t in range(4):
    Image.fromarray(photo[t:t + 540, 2 * t:2 * t + 720]).save(root / "clip" / f"{t}.png")
  models.save_model(root / "johnson", JohnsonNet(JohnsonSpec(width=0.25), rngs=nnx.Rngs(0)),
                    styles=["s"], record={})
  weights = jaxstyle.random_weights(seed=0, width_scale=0.25)
  models.save_model(root / "adain", AdaINNet(AdaINSpec(0.25, "caffe"), weights.params,
                                             rngs=nnx.Rngs(0)), styles=[], record={})
  for side in (128, 256):
    (root / f"sweep{side}.toml").write_text(
        f'content = "{root / "photo.png"}"\nstyle = "{root / "style.png"}"\n[base]\n'
        f'size = {side}\niters = 1\nweights = "random:0:0.5"\n[axes]\n'
        'style_weight = [1e3, 1e4]\n')
  return root


def _measure(argv, cwd) -> dict:
  env = {**os.environ, "JAXSTYLE_CACHE_DIR": ""}  # Every program compiles: the worst case.
  env.pop("XLA_FLAGS", None)  # XLA's defaults, as users run it (conftest lowers them).
  proc = subprocess.run([sys.executable, "-m", "jaxstyle.memory", *argv], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


TRAIN = ["--steps", "1", "--sample-every", "0", "--checkpoint-every", "0", "--quiet"]
CASES = {  # command: (the option varied, its two values, argv with {v} for the value)
    "apply": ("--size", (512, 1024),
              "apply {r}/johnson {r}/photo.png -o {r}/o{v} --size {v}"),
    # The style statistics' phase alone: a tiny photo, and --conv direct, since timing the
    # decoder's convolutions at a new shape leaves ~150 MiB behind (the forward's estimate
    # counts that, and "apply" above checks it), which would swamp this phase at 512 px.
    "adain style size": ("--style-size", (512, 1024),
                         "apply {r}/adain {r}/photo.png -o {r}/a{v} --size 128 --style-image "
                         "{r}/style.png --style-size {v} --conv direct"),
    "train": ("--crop", (128, 256),
              "train {r}/style.png --data {r}/data -o {r}/t{v} --width 0.25 --weights "
              "random:0:0.25 --batch 2 --crop {v} " + " ".join(TRAIN)),
    "train-adain": ("--crop", (128, 256),
                    "train-adain --styles {r}/styles --data {r}/data -o {r}/d{v} --weights "
                    "random:0:0.25 --batch 2 --crop {v} " + " ".join(TRAIN)),
    "video": ("--size", (512, 1024),
              "video {r}/clip -o {r}/v{v} --model {r}/johnson --size {v} --batch 4 --quiet"),
    "batch": ("--size", (128, 256),
              "batch {r}/photo.png --styles {r}/style.png --style-weight 1e3 1e4 -o {r}/b{v} "
              "--size {v} --iters 1 --weights random:0:0.5 --quiet"),
}  # sweep runs batch's program and estimate (jaxstyle.transfer.stylize_batch); its refusal
#   is tested below.


@pytest.fixture(scope="session")
def measured(inputs):
  """Every case's two runs, two processes at a time (one per core; each peak its own)."""
  jobs = [(command, value) for command, (_, values, _) in CASES.items() for value in values]
  with ThreadPoolExecutor(2) as pool:
    results = pool.map(lambda job: _measure(
        CASES[job[0]][2].format(r=inputs, v=job[1]).split(), inputs), jobs)
    return dict(zip(jobs, results))


# One test for every case, so that one worker measures them (a test per case let two xdist
# workers each run the ~4-minute fixture: measured with --durations).
@pytest.mark.subprocess
def test_the_estimate_is_within_a_quarter_of_the_measured_peak_at_two_sizes(measured):
  wrong = []
  for command, (option, values, _) in CASES.items():
    results = [measured[command, value] for value in values]
    for value, result in zip(values, results):
      estimate = next(e for e in result["estimates"] if e["option"] == option)
      predicted = estimate["resident"] + estimate["bytes"]
      error = (predicted - result["peak"]) / result["peak"]
      if abs(error) > TOLERANCE:
        wrong.append(f"{command} {option} {value}: predicted {predicted / 2**20:.0f} MiB, "
                     f"measured {result['peak'] / 2**20:.0f} MiB")
    # The estimate grows with the option, as the memory does.
    small, large = (next(e["bytes"] for e in r["estimates"] if e["option"] == option)
                    for r in results)
    if not large > small:
      wrong.append(f"{command}: the estimate at {option} {values[1]} is not above {values[0]}'s")
  assert not wrong, "; ".join(wrong)


@pytest.mark.parametrize("argv, option", [
    ("apply {r}/johnson {r}/photo.png -o {r}/big --size 1000000", "--size 1000000"),
    ("apply {r}/adain {r}/photo.png -o {r}/big --style-image {r}/style.png --style-size 100000",
     "--style-size 100000"),
    ("video {r}/clip -o {r}/big.mp4 --model {r}/johnson --size 100000", "--size 100000"),
    ("video {r}/clip -o {r}/big --style {r}/style.png --size 100000 --weights random:0:0.25",
     "--size 100000"),
    ("train {r}/style.png --data {r}/data -o {r}/big --crop 100000 --weights random:0:0.25",
     "--crop 100000"),
    ("train-adain --styles {r}/styles --data {r}/data -o {r}/big --crop 100000 --weights "
     "random:0:0.25", "--crop 100000"),
    ("batch {r}/photo.png --styles {r}/style.png -o {r}/big --size 100000 --weights "
     "random:0:0.25", "--size 100000"),
])
def test_a_size_that_cannot_fit_is_refused_before_anything_is_allocated(inputs, argv, option,
                                                                        capsys):
  have, where = memory.available_bytes()
  assert cli.main(argv.format(r=inputs).split()) == 2
  err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
  assert len(err) == 1 and err[0].startswith(f"jaxstyle: error: {option}: needs about "), err
  needed = float(err[0].split("needs about ")[1].split(" GiB")[0])
  assert needed * 2**30 > have and f"{where} has " in err[0]
  largest = int(err[0].split("that fits is about ")[1])  # The option to change, and to what.
  assert 16 <= largest < int(option.split()[1])
  assert not list(inputs.glob("big*"))  # Nothing written.


def test_a_sweep_records_a_member_that_cannot_fit_as_failed_with_the_estimate(inputs, tmp_path,
                                                                            capsys):
  # A sweep goes on past a member that cannot run (its design: find whose, record, go on).
  sweep = tmp_path / "huge.toml"
  sweep.write_text((inputs / "sweep128.toml").read_text().replace("size = 128",
                                                                   "size = 100000"))
  assert cli.main(["sweep", str(sweep), "-o", str(tmp_path / "run"), "--quiet"]) == 1
  records = [json.loads(x) for x in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
  assert [r["status"] for r in records] == ["failed", "failed"]
  assert all(r["error"].startswith("--size 100000: needs about ") for r in records), records
  assert all(r["output"] is None for r in records)  # No member image: nothing ran.


def test_the_largest_size_offered_fits_and_one_more_step_does_not():
  # refuse_unless_fits' search, against a need of known shape: 1 MiB per unit.
  def need(v):
    return v << 20
  memory.refuse_unless_fits(need, 100, option="--x", what="it", available=(100 << 20, "here"))
  with pytest.raises(jaxstyle.ConfigError, match=r"^--x 1000: needs about 1\.0 GiB for it; "
                                                 r"here has 0\.1 GiB available; the largest "
                                                 r"--x that fits is about 100$"):
    memory.refuse_unless_fits(need, 1000, option="--x", what="it", available=(100 << 20, "here"))
  with pytest.raises(jaxstyle.ConfigError, match="not even --x 16 fits"):
    memory.refuse_unless_fits(need, 1000, option="--x", what="it", floor=16,
                              available=(10 << 20, "here"))
