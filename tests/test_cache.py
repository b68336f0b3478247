"""The persistent compilation cache: CLI runs store their programs, and a second run loads them."""

import os
import subprocess
import sys

import pytest

from jaxstyle import cache
from tests.conftest import smooth_image


def test_cache_dir_lookup(monkeypatch, tmp_path):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "c"))
  assert cache.default_dir() == tmp_path / "c"
  monkeypatch.setenv(cache.ENV_VAR, "")
  assert cache.default_dir() is None and cache.enable() is None  # Disabled.
  monkeypatch.delenv(cache.ENV_VAR)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert cache.default_dir() == tmp_path / "xdg" / "jaxstyle" / "xla"


@pytest.mark.subprocess
def test_a_second_cli_run_loads_the_compiled_programs(tmp_path):
  from PIL import Image
  content, style = tmp_path / "c.png", tmp_path / "s.png"
  Image.fromarray(smooth_image(40, 48, seed=1)).save(content)
  Image.fromarray(smooth_image(56, 40, seed=2)).save(style)
  env = {**os.environ, cache.ENV_VAR: str(tmp_path / "xla")}
  outputs = []
  for run in range(2):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxstyle.cli", "stylize", str(content), str(style), "-o",
         str(tmp_path / f"out{run}.png"), "--weights", "random:0:0.125", "--size", "48",
         "--iters", "3", "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    outputs.append((tmp_path / f"out{run}.png").read_bytes())
    if run == 0:
      stored = {p.name for p in (tmp_path / "xla").iterdir()}
      assert stored  # The programs were written...
  # ...and the second run used them: nothing new was compiled and stored.
  assert {p.name for p in (tmp_path / "xla").iterdir()} == stored
  assert outputs[0] == outputs[1]  # A cached program computes the same image.
