"""Runs the jaxstyle CLI and signals it at an exact point: no polling, no races.

    python -m tests.interrupt SIGNALS EVENT N -- ARGS...

runs ``jaxstyle ARGS...`` and, right after the N-th EVENT has completed,
sends the process itself each signal in SIGNALS (comma-separated names:
``KILL``, ``INT``, ``INT,INT``). EVENT is ``checkpoint`` (a checkpoint file
written), ``record`` (a sweep record appended), ``train-checkpoint`` (a
training checkpoint complete on disk), ``video-frame`` (a stylized frame
written) or ``batch-start`` (a batched program about to run: the signal
comes *before* the N-th call). The tests use it to kill or
interrupt a run at a known iteration however fast the machine is (the
SIGKILL case through :func:`run_killed`), and :func:`hook` does the same
inside the test process for SIGINT.
"""

import os
import signal
import sys

EVENTS = {"checkpoint": ("jaxstyle.checkpoint", "save"),
          "record": ("jaxstyle.sweep", "append_record"),
          "train-checkpoint": ("jaxstyle.nets.train", "_write_checkpoint"),
          "video-frame": ("jaxstyle.video.io", "write_frame"),
          "batch-start": ("jaxstyle.transfer", "stylize_batch", "before")}


def hook(monkeypatch_setattr, event: str, n: int, signals: list[str]) -> None:
  """Wraps EVENT's function so that its N-th completed call (or, for a "before" event, its
  N-th call before it starts) sends ``signals`` to this process."""
  import importlib
  module_name, name, *when = EVENTS[event]
  module = importlib.import_module(module_name)
  original = getattr(module, name)
  calls = [0]

  def signal_if_due():
    calls[0] += 1
    if calls[0] == n:
      for sig in signals:
        os.kill(os.getpid(), getattr(signal, "SIG" + sig))

  def wrapped(*args, **kwargs):
    if when == ["before"]:
      signal_if_due()
      return original(*args, **kwargs)
    result = original(*args, **kwargs)
    signal_if_due()
    return result

  monkeypatch_setattr(module, name, wrapped)


def run_killed(event: str, n: int, *args: str, timeout: int = 300):
  """Runs ``jaxstyle ARGS`` in a new process, SIGKILLed right after the N-th EVENT; checks
  that it died of that kill (else shows its stderr's tail) and returns the CompletedProcess."""
  import subprocess
  proc = subprocess.run([sys.executable, "-m", "tests.interrupt", "KILL", event, str(n), "--",
                         *args], capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
  return proc


def main(argv: list[str]) -> int:
  signals, event, n, separator, *args = argv
  assert separator == "--", "usage: python -m tests.interrupt SIGNALS EVENT N -- ARGS..."
  hook(setattr, event, int(n), signals.split(","))
  from jaxstyle import cli
  return cli.main(args)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
