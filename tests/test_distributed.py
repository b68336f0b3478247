"""Several processes on one sweep or one training run: together they do what one process does."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import jaxstyle
from jaxstyle import distributed, sweep
from tests.test_sweep import sweep_file  # noqa: F401  (fixture)


@pytest.fixture
def reserved_port():
  """A loopback port held for the whole test, that only the coordinator can also bind.

  Finding a free port and releasing it before the coordinator binds races
  with every other program on the machine. This socket stays bound with
  SO_REUSEPORT (and never listens): other programs are refused the port,
  while JAX's gRPC coordinator, which sets SO_REUSEPORT too, binds it.
  """
  with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]


@pytest.mark.subprocess
def test_two_processes_split_a_sweep_and_match_one(sweep_file, tmp_path,  # noqa: F811
                                                   reserved_port):
  rundir = tmp_path / "two"
  address = f"127.0.0.1:{reserved_port}"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen(
      [sys.executable, "-m", "jaxstyle.cli", "sweep", str(sweep_file), "-o", str(rundir),
       "--quiet", "--distributed", f"{address},2,{i}"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-2000:]
  per_process = [[json.loads(l) for l in (rundir / f"records.p{i}.jsonl").read_text().splitlines()]
                 for i in range(2)]
  assert [len(r) for r in per_process] == [2, 2]  # Members 0, 2 and 1, 3.
  assert (rundir / "contact_sheet.png").exists()  # Written once, by process 0, after both.

  alone = sweep.run_sweep(sweep.load_sweep(sweep_file), tmp_path / "one", log=lambda *_: None)
  together = {r["id"]: r for r in per_process[0] + per_process[1]}
  assert set(together) == {r["id"] for r in alone}
  for r in alone:
    np.testing.assert_allclose(together[r["id"]]["history"]["total"], r["history"]["total"],
                               rtol=1e-5)


@pytest.mark.subprocess
def test_two_processes_train_one_network_as_one_process_does(training, tmp_path,
                                                             reserved_port):
  from jaxstyle.nets import models
  root, args, _ = training
  out = tmp_path / "model"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen(
      [sys.executable, "-m", "jaxstyle.cli", "train", *args, "-o", str(out), "--steps", "4",
       "--sample-every", "0", "--distributed", f"127.0.0.1:{reserved_port},2,{i}"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-2000:]
  assert "process 0 writes the model" in outputs[1][0]
  # Each batch of 2 split over the two processes' devices: the one-process run's curve (its
  # first 4 of 8 steps; the order of the photos does not depend on the step count), to
  # float32 round-off. Adam at lr 0.01 amplifies round-off within a few steps: one process
  # fed each batch's two photos in the other order (the same loss in exact arithmetic)
  # differs from itself by 0, 1e-7, 0, 4.6e-7, 2.3e-5, 7.9e-4, 7.1e-3 at steps 1-7 (measured
  # under the suite's XLA flags; 0, 0, 0, 0, 1.3e-5, 1.7e-4, 3.5e-4 under the defaults).
  lines = [(out / "metrics.jsonl").read_text(), (root / "model" / "metrics.jsonl").read_text()]
  two, one = ([json.loads(l)["total"] for l in text.splitlines()] for text in lines)
  assert len(two) == 4
  np.testing.assert_allclose(two[:3], one[:3], rtol=1e-5)
  np.testing.assert_allclose(two, one[:4], rtol=1e-4)
  # (The params are not compared: a bias before instance norm has zero gradient in exact
  # arithmetic, so Adam moves it by ±lr on round-off's sign alone, in either run.)
  meta = models.read_meta(out)
  assert (meta["record"]["processes"], meta["record"]["devices"]) == (2, 2)


def test_share_and_bad_spec():
  assert distributed.my_share(5) == [0, 1, 2, 3, 4]  # One process runs everything.
  with pytest.raises(jaxstyle.ConfigError, match="HOST:PORT,NUM_PROCESSES,PROCESS_ID"):
    distributed.initialize("127.0.0.1:1,2,5")
