"""Peers side by side: jaxstyle with its defaults against the classic loops, one objective.

    python benchmarks/bench_peers.py                       # 96, 256 and 512 px, 100 iterations
    python benchmarks/bench_peers.py --sizes 128 --iters 50 --no-append

Expected runtime: about 15 minutes on a 2-core CPU (most of it at 512 px).
At each size every method minimises the *same* objective (jaxstyle's
default: relu4_2 content, relu1_1..relu5_1 Gram style, TV; the same RANDOM
full-width VGG19 weights, the same targets) from the same initial image (the
content), for ``--iters`` iterations:

* jaxstyle with its defaults (``StyleConfig(size=..., iters=...)``, nothing
  else: L-BFGS with optax's zoom linesearch, history 10, the per-term
  history every 20 iterations), through ``jaxstyle.stylize``, run on to 1.5x
  the iterations so that its loss at torch's final wall time is measured,
  not extrapolated, when it is the faster per iteration;
* jaxstyle, L-BFGS with a fixed step (``--lbfgs-linesearch none``, history
  100): Torch's iteration (jaxstyle.optim.optimizers.torch_lbfgs), compiled;
* scipy's ``fmin_l_bfgs_b`` (history 10, as the classic Keras example uses
  it) calling jaxstyle's jitted value-and-gradient from the host;
* PyTorch's ``torch.optim.LBFGS`` (history 100, no line search, lr 1, as
  Johnson's neural-style and its PyTorch port), the objective written in
  torch, when torch is installed; skipped with a reason otherwise. Its
  objective is checked equal to jaxstyle's at the initial image.

Reported per size: the loss after 10/50/100 iterations and the wall time to
reach it (compilation excluded, reported apart), evaluations; then, against
torch: jaxstyle's (defaults) loss when torch finished, and the time
jaxstyle took to reach torch's final loss as a fraction of torch's time
(below 1: jaxstyle got there first). Times per iteration are interpolated
between jaxstyle's progress reports every 10 iterations. Appends the tables
to docs/BENCHMARKS.md (unless --no-append).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxstyle
from bench_core import heading, images, publish

MARKS = (10, 50, 100)


def jaxstyle_run(content, style, config, weights) -> dict:
  """A run through jaxstyle.stylize: the loss and the wall time after every iteration."""
  marks = []

  def on_chunk(iteration, _image, _losses):
    marks.append((iteration, time.perf_counter()))

  result = jaxstyle.stylize(content, style, config, weights=weights, callback=on_chunk,
                            save_every=10)
  loop_start = time.perf_counter() - result.seconds  # Compilation excluded.
  done = [0] + [i for i, _ in marks]
  stamps = [0.0] + [t - loop_start for _, t in marks]
  iterations = np.arange(1, result.iterations + 1)
  return {"losses": np.asarray(result.history["total"], np.float64),
          "times": np.interp(iterations, done, stamps), "compile": result.compile_seconds,
          "evaluations": result.evaluations}


def scipy_run(f_and_g, x0, iters: int) -> dict:
  """scipy.optimize.fmin_l_bfgs_b driving the jitted value and gradient from the host."""
  from scipy.optimize import fmin_l_bfgs_b
  shape = x0.shape
  count = {"evals": 0}

  def func(x_flat):
    count["evals"] += 1
    value, grad = f_and_g(jnp.asarray(x_flat.reshape(shape), jnp.float32))
    return float(value), np.asarray(grad, np.float64).ravel()

  compile_start = time.perf_counter()
  func(np.asarray(x0, np.float64).ravel())
  compile_seconds = time.perf_counter() - compile_start
  count["evals"] = 0
  last, losses, times = {}, [], []

  def recording(x_flat):
    last["f"], grad = func(x_flat)
    return last["f"], grad

  def callback(_xk):  # Once per iteration; the last evaluation was at the accepted point.
    losses.append(last["f"])
    times.append(time.perf_counter() - start)

  start = time.perf_counter()
  fmin_l_bfgs_b(recording, np.asarray(x0, np.float64).ravel(), m=10, maxiter=iters,
                maxfun=100 * iters, factr=0.0, pgtol=0.0, callback=callback)
  return {"losses": np.asarray(losses), "times": np.asarray(times), "compile": compile_seconds,
          "evaluations": count["evals"]}


def torch_run(params, targets, spec, loss_weights, x0, iters: int) -> dict | str:
  """torch.optim.LBFGS (history 100, no line search) on the same objective, or why not."""
  try:
    import torch
    import torch.nn.functional as F
  except ImportError:
    return "skipped: torch is not installed (pip install torch to compare)"
  from jaxstyle import vgg
  network = vgg.ARCHITECTURES["vgg19"]
  deepest = max(vgg.LAYER_NAMES.index(n) for n in spec.layers)
  convs = [(spec_.name, spec_.index, torch.tensor(np.transpose(np.asarray(
      params[spec_.name]["kernel"]), (3, 2, 0, 1)).copy()),
            torch.tensor(np.asarray(params[spec_.name]["bias"])))
           for spec_ in network[: deepest + 1]]
  mean_bgr = torch.tensor(vgg.CAFFE_MEAN_BGR, dtype=torch.float32).view(1, 3, 1, 1)
  content = {n: torch.tensor(np.asarray(v)).permute(2, 0, 1)[None]
             for n, v in targets.content.items()}
  style = {n: torch.tensor(np.asarray(v)) for n, v in targets.style.items()}
  alpha, beta, gamma = (float(w) for w in loss_weights[:3])  # No temporal term here.

  def objective(x_1x3xHxW):
    h = x_1x3xHxW.flip(1) - mean_bgr  # RGB 0-255 -> caffe BGR, mean subtracted.
    feats = {}
    for i, (name, index, weight, bias) in enumerate(convs):
      if i > 0 and index == 1:
        h = F.max_pool2d(h, 2)
      h = F.relu(F.conv2d(h, weight, bias, padding=1))
      feats[name] = h
    total_content = sum(0.5 * ((feats[n] - p) ** 2).sum() for n, p in content.items())
    total_style = 0.0
    for n, w in zip(spec.style_layers, spec.style_layer_weights):
      f = feats[n][0].reshape(feats[n].shape[1], -1)
      N, M = f.shape
      total_style = total_style + w * ((f @ f.T - style[n]) ** 2).sum() / (4 * N**2 * M**2)
    dx = x_1x3xHxW[:, :, :-1, 1:] - x_1x3xHxW[:, :, :-1, :-1]
    dy = x_1x3xHxW[:, :, 1:, :-1] - x_1x3xHxW[:, :, :-1, :-1]
    return alpha * total_content + beta * total_style + gamma * (dx**2 + dy**2).sum()

  x = torch.tensor(np.asarray(x0)).permute(2, 0, 1)[None].contiguous().requires_grad_(True)
  with torch.no_grad():
    initial = float(objective(x))
  opt = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=100, line_search_fn=None,
                          tolerance_grad=-1, tolerance_change=-1)
  count = {"evals": 0}

  def closure():
    count["evals"] += 1
    opt.zero_grad()
    loss = objective(x)
    loss.backward()
    return loss

  # Each step evaluates f at the current point, then moves: step k+1 returns f(x_k). The
  # loss of x_k is known after one more evaluation, timed once at the end and added.
  returned, elapsed = [], [0.0]
  for _ in range(iters):
    start = time.perf_counter()
    returned.append(float(opt.step(closure)))
    elapsed.append(elapsed[-1] + time.perf_counter() - start)
  start = time.perf_counter()
  returned.append(float(closure()))
  evaluation = time.perf_counter() - start
  return {"losses": np.asarray(returned[1:]), "times": np.asarray(elapsed[1:]) + evaluation,
          "compile": 0.0, "evaluations": count["evals"], "initial": initial,
          "threads": torch.get_num_threads()}


def loss_at_time(run: dict, seconds: float) -> float:
  """The loss a run had reached by ``seconds`` (NaN before its first iteration)."""
  reached = run["losses"][run["times"] <= seconds]
  return float(reached[-1]) if reached.size else float("nan")


def time_to_loss(run: dict, loss: float) -> float:
  """Seconds a run took to first reach ``loss`` (inf if it never did)."""
  hit = np.flatnonzero(run["losses"] <= loss)
  return float(run["times"][hit[0]]) if hit.size else float("inf")


def bench_size(size: int, iters: int, weights) -> tuple[str, dict | None]:
  """One size: every method's table, and the defaults-against-torch summary row."""
  content, style = images(size)
  base = jaxstyle.StyleConfig(size=size, iters=iters)  # The defaults: what users get.
  spec = jaxstyle.ObjectiveSpec.from_config(base, weights.convention)
  params = jax.tree.map(jnp.asarray, weights.params)
  content = jaxstyle.images.as_rgb(content, size, what="content")
  targets = jaxstyle.make_targets(params, content, style, spec)
  loss_weights = jaxstyle.LossWeights.from_config(base)
  x0 = jnp.asarray(content, jnp.float32)
  f_and_g = jax.jit(jax.value_and_grad(
      lambda x: jaxstyle.objective(params, targets, x, loss_weights, spec)[0]))
  initial = float(f_and_g(x0)[0])
  defaults = (f"jaxstyle, defaults (L-BFGS, zoom linesearch, history 10; run on to "
              f"{iters * 3 // 2} iterations)")
  runs = {
      # Run on past --iters (to 1.5x), so that its loss at torch's final wall time is its
      # own, not its final one, when it is faster per iteration.
      defaults: jaxstyle_run(content, style, base.replace(iters=iters * 3 // 2), weights),
      "jaxstyle L-BFGS, fixed step (Torch's), history 100":
          jaxstyle_run(content, style, base.replace(lbfgs_linesearch="none", lbfgs_memory=100),
                       weights),
      "scipy fmin_l_bfgs_b (host loop), history 10": scipy_run(f_and_g, x0, iters),
  }
  torch_result = torch_run(params, targets, spec, loss_weights, x0, iters)
  notes, summary = [], None
  if isinstance(torch_result, str):
    notes.append(f"torch.optim.LBFGS: {torch_result}")
  else:
    runs["torch.optim.LBFGS, no line search, history 100"] = torch_result
    notes.append(f"torch objective at the initial image: {torch_result['initial']:.6g} vs "
                 f"jaxstyle's {initial:.6g} (relative difference "
                 f"{abs(torch_result['initial'] - initial) / initial:.1e}); torch "
                 f"{__import__('torch').__version__}, {torch_result['threads']} threads")
    ours, theirs = runs[defaults], torch_result
    final_t, final_loss = float(theirs["times"][-1]), float(theirs["losses"][-1])
    ours_then = loss_at_time(ours, final_t)
    if ours["times"][-1] <= final_t:  # Finished first even so: its final loss is what it has.
      ours_then = float(ours["losses"][-1])
    summary = {"size": f"{content.shape[1]}x{content.shape[0]}", "torch_s": final_t,
               "torch_loss": final_loss, "ours_s": float(ours["times"][iters - 1]),
               "ours_loss": float(ours["losses"][iters - 1]), "ours_then": ours_then,
               "ratio": time_to_loss(ours, final_loss) / final_t}

  header = ("| method | " + " | ".join(f"loss @{m}" for m in MARKS) + " | "
            + " | ".join(f"s @{m}" for m in MARKS) + " | s/iteration | evaluations | compile |")
  lines = [header, "|" + "---|" * (2 * len(MARKS) + 4)]
  for name, run in runs.items():
    points = [(run["times"][m - 1], run["losses"][m - 1]) if m <= len(run["losses"])
              else (float("nan"),) * 2 for m in MARKS]
    lines.append(f"| {name} | " + " | ".join(f"{loss:.4g}" for _, loss in points) + " | "
                 + " | ".join(f"{t:.2f}" for t, _ in points)
                 + f" | {run['times'][-1] / len(run['times']):.3f} | "
                 f"{run['evaluations'] or '-'} | {run['compile']:.1f} s |")
  table = (f"\n#### {size} px (initial loss {initial:.4g})\n\n" + "\n".join(lines) + "\n\n"
           + "\n".join(f"- {n}" for n in notes) + "\n")
  return table, summary


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[96, 256, 512])
  parser.add_argument("--iters", type=int, default=100)
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  weights = jaxstyle.random_weights(seed=0)
  tables, summaries = [], []
  for size in args.sizes:
    table, summary = bench_size(size, args.iters, weights)
    print(table, flush=True)
    tables.append(table)
    summaries.append(summary)
  lines = []
  if all(summaries):
    lines = ["| size | torch: s, loss after --iters | jaxstyle defaults: loss when torch "
             "finished | jaxstyle defaults: s, loss after --iters | time to torch's final "
             "loss, jaxstyle / torch |",
             "|---|---|---|---|---|"]
    for r in summaries:
      ratio = f"{r['ratio']:.2f}" if np.isfinite(r["ratio"]) else "not reached"
      mark = "≤" if r["ours_then"] <= r["torch_loss"] else "**>**"
      lines.append(f"| {r['size']} | {r['torch_s']:.1f} s, {r['torch_loss']:.4g} | "
                   f"{r['ours_then']:.4g} ({mark} torch's) | {r['ours_s']:.1f} s, "
                   f"{r['ours_loss']:.4g} | {ratio} |")
  report = (heading("Peers: jaxstyle's defaults against the classic loops, one objective",
                    "bench_peers.py", argv,
                    f"RANDOM full-width VGG19, default objective, content init, {args.iters} "
                    "iterations per method; times exclude compilation")
            + "\n".join(lines) + "\n" + "".join(tables))
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
