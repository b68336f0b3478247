"""Predictions before a run: the memory estimate's shape, the refusal, and --dry-run.

The estimate against measured peaks, through the commands: test_memory_estimates.py.
"""

import pytest

import jaxstyle
from jaxstyle import cli, memory


def test_estimate_grows_with_pixels_and_history():
  config = jaxstyle.StyleConfig(conv="direct")
  small, large = (memory.estimate_bytes(config, s, s) for s in (256, 512))
  assert 2.0 < (large - memory.RUNTIME_BYTES) / (small - memory.RUNTIME_BYTES) < 4.1
  assert memory.estimate_bytes(config.replace(lbfgs_memory=100), 512, 512) > large
  # Adam members are vmapped: their activations add up; L-BFGS members run in turn.
  adam = config.replace(optimizer="adam")
  assert (memory.estimate_bytes(adam, 256, 256, members=4)
          > 3 * (memory.estimate_bytes(adam, 256, 256) - memory.RUNTIME_BYTES))


def test_estimate_counts_winograd_kernels():
  # Default objective: every layer to block5_conv1 has F(2x2) kernels made (a run's size picks
  # which it uses), whose U and U_t hold 2 · 16 floats per (Cin, Cout) pair.
  pairs = (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 3 * 256 * 256 + 256 * 512
           + 3 * 512 * 512 + 512 * 512)
  for conv in ("winograd", "auto"):
    assert memory._winograd_floats(jaxstyle.StyleConfig(conv=conv), 1.0) == 2 * 16 * pairs
  assert memory._winograd_floats(jaxstyle.StyleConfig(conv="direct"), 1.0) == 0
  assert memory._winograd_floats(jaxstyle.StyleConfig(conv="s2d"), 1.0) == 0


def test_refusal_names_the_largest_size_that_fits():
  config = jaxstyle.StyleConfig(size=1024, conv="direct")  # No fixed Winograd kernels.
  need = memory.estimate_bytes(config, 1024, 1024)
  try:
    memory.check_fits(config, 1024, 1024, available=(need // 4, "a small device"))
  except jaxstyle.ConfigError as e:
    message = str(e)
  assert "a small device has" in message
  largest = int(message.split("fits is about ")[1].split(" px")[0])
  assert 400 < largest < 560  # A quarter of the memory: about half the side.
  assert memory.estimate_bytes(config, largest, largest) <= need // 4
  assert memory.estimate_bytes(config, largest + 16, largest + 16) > need // 4


@pytest.mark.slow
def test_dry_run_predicts_and_writes_nothing(image_files, tmp_path, capsys):
  content, style = image_files
  out = tmp_path / "out.png"
  assert cli.main(["stylize", str(content), str(style), "-o", str(out), "--weights",
                   "random:0:0.125", "--size", "48", "--iters", "200", "--dry-run",
                   "--quiet"]) == 0
  text = capsys.readouterr().out
  assert text.startswith("dry run: 48x40 px, VGG19, lbfgs: predicted peak memory")
  assert "s/iteration, about" in text and "for 200 iterations" in text
  assert not out.exists() and not list(tmp_path.glob("out*"))
