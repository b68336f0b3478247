"""Seconds per L-BFGS / Adam iteration, compile time, and cost relative to f+∇f.

    python benchmarks/bench_core.py                 # 128 and 256 px, full-width random VGG19
    python benchmarks/bench_core.py --sizes 128 --iters 10 --no-append

Expected runtime: ~3 min on a 2-core CPU; seconds on a GPU. Appends a table to
docs/BENCHMARKS.md with the command, machine and versions (unless --no-append).

What it measures, per size (content and style: the sample images in
../shared/images when present, else generated ones; weights: random
He-initialised VGG19 at full width, so FLOPs are those of the real network):

* value_and_grad: one jitted evaluation of the objective and its gradient
  (median of repeats, after warm-up);
* L-BFGS iteration: wall time of ``--iters`` iterations through the same
  compiled chunk loop :func:`jaxstyle.stylize` uses, divided by the count,
  with the per-term history at its default (every 20 iterations and the last), every
  iteration, and off;
* evaluations per iteration: linesearch steps taken per L-BFGS iteration
  (optax's zoom linesearch, read from its state);
* compile: time to compile the init and the chunk program;
* a stylize call's fixed cost: its time with ``iters=0`` (programs cached),
  given weights as a file loads them and given ``jaxstyle.prepare_weights``'
  result, beside the work it cannot skip (two forwards for the targets and
  f+∇f at the initial image);
* efficiency: the FLOPs of f+∇f (the convolutions of every VGG layer the
  objective runs, forward and the image gradient's backward: 2 · 2·9·H·W·Cin·Cout
  per layer; the kernels' gradients are not computed) per second, as a
  fraction of a 2048x2048 float32 matmul's FLOP/s measured in the same run.
  These are the direct convolution's FLOPs: with the Winograd convolutions
  (the default on CPU, 2.25x fewer multiplies on deep layers) it is an
  effective rate, and can pass the matmul's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import jaxstyle
from jaxstyle import demo
from jaxstyle.optim.members import init_states, run_chunks
from jaxstyle.objective import features, prepare_params_jit
from jaxstyle.optim.solver import value_and_grad

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
  """CPU model and cores, or the accelerator, in words."""
  device = jax.devices()[0]
  if device.platform != "cpu":
    return f"{device.device_kind} ({device.platform})"
  model = platform.processor() or "unknown CPU"
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        model = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{model}, {os.cpu_count()} cores visible to the process"


def commit() -> str:
  """The checked-out commit, marked when the measured code has uncommitted changes."""
  import subprocess

  def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
  head = git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
  changed = git("status", "--porcelain", "--", "jaxstyle", "benchmarks")
  return head + (" with uncommitted changes to jaxstyle/ or benchmarks/" if changed else "")


def add_network_comparison_options(parser, *, repeats: int) -> None:
  """The options bench_nets.py and bench_convs.py share: the torch side's Python, Johnson's
  apply size and training batch (fast_neural_style's: 512 px; 4 x 256 px crops)."""
  parser.add_argument("--torch-python", default=sys.executable,
                      help="a Python with torch installed (default: this one)")
  parser.add_argument("--size", type=int, default=512, help="apply: image side")
  parser.add_argument("--crop", type=int, default=256, help="training: crop side")
  parser.add_argument("--batch", type=int, default=4, help="training: batch")
  parser.add_argument("--repeats", type=int, default=repeats)


def heading(title: str, script: str, argv, *details: str) -> str:
  """The start of every appended report: title and date, command, commit, machine, versions."""
  command = f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
  lines = [f"\n### {title} ({datetime.date.today()})\n", f"- command: `{command.strip()}`",
           f"- commit: {commit()}", f"- machine: {machine()}",
           f"- versions: jaxstyle {jaxstyle.__version__}, jax {jax.__version__}, optax "
           f"{optax.__version__}, backend {jax.default_backend()}"]
  return "\n".join(lines + [f"- {d}" for d in details]) + "\n\n"


def publish(report: str, *, append: bool) -> None:
  """Prints a report and appends it to docs/BENCHMARKS.md (unless told not to)."""
  print(report)
  if append:
    with open(ROOT / "docs" / "BENCHMARKS.md", "a") as f:
      f.write(report)


# The CLI in a child process that reports its own peak (VmHWM) as it exits: getrusage's
# children's peak is the largest of all children so far, so a smaller run would hide.
_CHILD = ("import sys; from jaxstyle.cli.main import main; from jaxstyle import memory; "
          "code = main(sys.argv[1:]); print('peak', memory.process_peak_bytes(), "
          "file=sys.stderr); sys.exit(code)")


def run_cli(*args: str, script: str):
  """``jaxstyle ARGS`` in a child process: (seconds, its own peak resident bytes, the finished
  process); exits naming ``script`` with the end of stderr when the command fails."""
  start = time.perf_counter()
  done = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if done.returncode:
    raise SystemExit(f"{script}: {args[0]} failed: {done.stderr[-1500:]}")
  peak = [line for line in done.stderr.splitlines() if line.startswith("peak ")][-1]
  return seconds, int(peak.split()[1]), done


def images(size: int):
  folder = demo.sample_images_dir()
  if folder is not None:
    return (jaxstyle.load_image(folder / demo.CONTENT, size=size),
            jaxstyle.load_image(folder / demo.STYLE, size=size))
  return demo.generated_images(size)


def timed(fn, *args, repeats: int):
  jax.block_until_ready(fn(*args))  # Warm-up (and compile).
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def batch_of_one(targets, x0, lw):
  """Adds the member axis that the engine's programs take."""
  return (targets._replace(style=jax.tree.map(lambda a: a[None], targets.style)), x0[None],
          jax.tree.map(lambda a: a[None], lw))


def linesearch_evaluations(params, targets, x0, lw, spec, solver, iters: int) -> int:
  """Objective evaluations the zoom linesearch made over ``iters`` iterations (untimed)."""
  targets, x0, lw = batch_of_one(targets, x0, lw)
  state, _ = init_states(params, targets, x0, lw, spec, solver)
  total = 0
  for _ in range(iters):  # One step per chunk, to read each iteration's count.
    state, _ = run_chunks(params, targets, state, jnp.int32(1), lw, spec, solver)
    total += int(optax.tree.get(state.opt_state, "info").num_linesearch_steps[0])
  return total


def objective_flops(config: jaxstyle.StyleConfig, height: int, width: int,
                    width_scale: float = 1.0) -> float:
  """FLOPs of one f+∇f: each conv run forward and once more for the image's gradient."""
  from jaxstyle import memory, vgg
  widths = vgg.layer_widths(width_scale, config.network)
  return sum(2 * 2 * 9 * h * w * widths[name][0] * c
             for name, h, w, c in memory._layer_shapes(config, height, width, width_scale))


def matmul_flops_per_second(n: int = 2048) -> float:
  a = jnp.ones((n, n), jnp.float32)
  seconds = timed(jax.jit(lambda a: a @ a), a, repeats=5)
  return 2 * n**3 / seconds


def bench_size(size: int, iters: int, weights: jaxstyle.Weights) -> dict:
  content, style = images(size)
  row = {"size": f"{content.shape[1]}x{content.shape[0]}"}
  params = jax.tree.map(jnp.asarray, weights.params)
  for variant, changes in (("default", {}), ("every", {"terms_every": 1}),
                           ("off", {"record_terms": False})):
    record_terms = variant == "default"  # The rows' other measurements: with the defaults.
    config = jaxstyle.StyleConfig(size=size, **changes)
    spec = jaxstyle.ObjectiveSpec.from_config(config, weights.convention)
    solver = jaxstyle.SolverSpec.from_config(config)
    lw = jaxstyle.LossWeights.from_config(config)
    x0 = jnp.asarray(content, jnp.float32)
    # Winograd kernels (the default on CPU) made once, as stylize does.
    prepared = prepare_params_jit(params, spec)
    targets = jaxstyle.make_targets(prepared, content, style, spec)
    if record_terms:
      vg = jax.jit(lambda x: value_and_grad(prepared, targets, lw, spec)(x))
      row["value_and_grad_s"] = timed(vg, x0, repeats=5)
    # A batch of one, exactly what stylize runs.
    targets1, x01, lw1 = batch_of_one(targets, x0, lw)
    start = time.perf_counter()
    state, _ = init_states(prepared, targets1, x01, lw1, spec, solver)
    state, _ = run_chunks(prepared, targets1, state, jnp.int32(0), lw1, spec, solver, None,
                          jnp.int32(iters))
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - start
    per_iter = float("inf")
    for _ in range(3):  # One chunk of `iters` iterations, as stylize runs them; best of 3.
      state, _ = init_states(prepared, targets1, x01, lw1, spec, solver)
      jax.block_until_ready(state)
      start = time.perf_counter()
      state, _ = run_chunks(prepared, targets1, state, jnp.int32(iters), lw1, spec, solver,
                            None, jnp.int32(iters))
      jax.block_until_ready(state)
      per_iter = min(per_iter, (time.perf_counter() - start) / int(state.step[0]))
    row[{"default": "lbfgs_iter_s", "every": "lbfgs_iter_every_s",
         "off": "lbfgs_iter_no_terms_s"}[variant]] = per_iter
    if record_terms:
      row["compile_s"] = compile_s
      row["evals_per_iter"] = linesearch_evaluations(
          prepared, targets, x0, lw, spec, solver, iters) / iters
  row.update(fixed_cost(content, style, size, weights, prepared, spec))
  row["call_floor_s"] += row["value_and_grad_s"]
  adam = jaxstyle.StyleConfig(size=size, iters=iters, optimizer="adam")
  result = jaxstyle.stylize(content, style, adam, weights=weights)
  row["adam_iter_s"] = result.seconds / result.iterations
  row["gflops"] = objective_flops(adam, *content.shape[:2]) / row["value_and_grad_s"] / 1e9
  row["lbfgs_over_vg"] = row["lbfgs_iter_s"] / row["value_and_grad_s"]
  row["lbfgs_no_terms_over_vg"] = row["lbfgs_iter_no_terms_s"] / row["value_and_grad_s"]
  row["history_cost"] = row["lbfgs_iter_s"] / row["lbfgs_iter_no_terms_s"] - 1
  row["history_cost_every"] = row["lbfgs_iter_every_s"] / row["lbfgs_iter_no_terms_s"] - 1
  return row


def fixed_cost(content, style, size, weights, prepared, spec) -> dict:
  """A stylize call's time outside its iterations (``iters=0``, programs cached; best of 3).

  With weights as a file loads them (host arrays, copied to the device and
  their Winograd kernels made in every call) and with ``prepare_weights``'
  (that work done once); beside the work the call cannot skip: the content's
  and the style's features (a forward each) and f+∇f at the initial image.
  """
  config = jaxstyle.StyleConfig(size=size, iters=0)
  host = weights._replace(params=jax.device_get(weights.params))
  ready = jaxstyle.prepare_weights(host, config)
  out = {}
  for key, w in (("call_s", host), ("call_prepared_s", ready)):
    def call():
      jaxstyle.stylize(content, style, config, weights=w)
    call()  # Compiles, or loads the programs from the cache.
    out[key] = min(_seconds(call) for _ in range(3))
  forward = timed(lambda x: features(prepared, x, spec.layers, spec),
                  jnp.asarray(content, jnp.float32), repeats=5)
  out["call_floor_s"] = 2 * forward
  return out


def _seconds(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


COLUMNS = [("size", "size", "{}"), ("value_and_grad_s", "f+∇f (s)", "{:.3f}"),
           ("lbfgs_iter_s", "L-BFGS it (s)", "{:.3f}"),
           ("lbfgs_iter_no_terms_s", "L-BFGS it, no term history (s)", "{:.3f}"),
           ("history_cost", "term history's cost (default: every 20 its)", "{:+.1%}"),
           ("history_cost_every", "same, every iteration", "{:+.1%}"),
           ("evals_per_iter", "linesearch evals / it", "{:.2f}"),
           ("lbfgs_over_vg", "L-BFGS it / f+∇f", "{:.2f}"),
           ("lbfgs_no_terms_over_vg", "same, no term history", "{:.2f}"),
           ("adam_iter_s", "Adam it (s)", "{:.3f}"), ("compile_s", "compile (s)", "{:.1f}"),
           ("gflops", "f+∇f GFLOP/s", "{:.1f}"), ("of_matmul", "of matmul's", "{:.0%}"),
           ("call_s", "stylize call outside its iterations (s)", "{:.3f}"),
           ("call_prepared_s", "same, weights prepared (s)", "{:.3f}"),
           ("call_floor_s", "its own work: 2 forwards + f+∇f (s)", "{:.3f}")]


def table(rows) -> str:
  lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
           "|" + "---|" * len(COLUMNS)]
  for row in rows:
    lines.append("| " + " | ".join(fmt.format(row[k]) for k, _, fmt in COLUMNS) + " |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
  parser.add_argument("--iters", type=int, default=20, help="L-BFGS iterations timed per size")
  parser.add_argument("--width-scale", type=float, default=1.0)
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  weights = jaxstyle.random_weights(seed=0, width_scale=args.width_scale)
  rows = [bench_size(size, args.iters, weights) for size in args.sizes]
  matmul = matmul_flops_per_second() / 1e9
  for row in rows:
    row["of_matmul"] = row["gflops"] / matmul
  command = "python benchmarks/bench_core.py " + " ".join(argv if argv is not None else sys.argv[1:])
  report = (f"\n### Core: L-BFGS iteration cost ({datetime.date.today()})\n\n"
            f"- command: `{command.strip()}`\n- commit: {commit()}\n- machine: {machine()}\n"
            f"- versions: jaxstyle {jaxstyle.__version__}, jax {jax.__version__}, "
            f"optax {optax.__version__}, backend {jax.default_backend()}\n"
            f"- weights: RANDOM He-initialised VGG19, width scale {args.width_scale:g}; "
            f"{args.iters} L-BFGS iterations timed from the content init; default objective "
            "(relu4_2 content, relu1_1..relu5_1 style, TV); a 2048x2048 float32 matmul ran at "
            f"{matmul:.1f} GFLOP/s\n\n" + table(rows) + "\n")
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
