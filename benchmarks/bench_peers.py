"""Peers side by side: jaxstyle's compiled L-BFGS against the classic loops, one objective.

    python benchmarks/bench_peers.py                    # 96 px, 100 iterations
    python benchmarks/bench_peers.py --size 128 --iters 100 --no-append

Expected runtime: about 2 minutes on a 2-core CPU. Every method minimises the
*same* objective (jaxstyle's default: relu4_2 content, relu1_1..relu5_1 Gram
style, TV; the same RANDOM full-width VGG19 weights, the same targets) from
the same initial image (the content):

* jaxstyle, L-BFGS with optax's zoom linesearch (history 10; the default);
* jaxstyle, L-BFGS with a fixed step (``--lbfgs-linesearch none``, history
  100): the classic Torch/PyTorch iteration, compiled;
* scipy's ``fmin_l_bfgs_b`` (history 10, as the classic Keras example uses
  it) calling jaxstyle's jitted value-and-gradient from the host;
* PyTorch's ``torch.optim.LBFGS`` (history 100, no line search, lr 1, as
  Johnson's neural-style and its PyTorch port), the objective written in
  torch, when torch is installed; skipped with a reason otherwise. Its
  objective is checked equal to jaxstyle's at the initial image.

Reported: the loss after 10/50/100 iterations, the wall time to reach each
(compilation excluded, reported apart), objective evaluations, and for each
peer the loss jaxstyle's best method had reached at the peer's final wall
time. Appends the table to docs/BENCHMARKS.md (unless --no-append).
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
  """A run through jaxstyle.stylize, with the time at every 10th iteration."""
  marks = []
  def on_chunk(iteration, _image, losses):
    marks.append((iteration, time.perf_counter(), losses["total"]))
  result = jaxstyle.stylize(content, style, config, weights=weights, callback=on_chunk,
                            save_every=10)
  end = time.perf_counter()
  loop_start = end - result.seconds  # Compilation excluded.
  return {"curve": [(i, t - loop_start, loss) for i, t, loss in marks],
          "compile": result.compile_seconds, "evaluations": result.evaluations}


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
  last, curve = {}, []

  def recording(x_flat):
    last["f"], grad = func(x_flat)
    return last["f"], grad

  def callback(_xk):  # Once per iteration; the last evaluation was at the accepted point.
    last["iteration"] = last.get("iteration", 0) + 1
    if last["iteration"] % 10 == 0:
      curve.append((last["iteration"], time.perf_counter() - start, last["f"]))

  start = time.perf_counter()
  fmin_l_bfgs_b(recording, np.asarray(x0, np.float64).ravel(), m=10, maxiter=iters,
                maxfun=100 * iters, factr=0.0, pgtol=0.0, callback=callback)
  return {"curve": curve, "compile": compile_seconds, "evaluations": count["evals"]}


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
  alpha, beta, gamma = (float(w) for w in loss_weights)

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

  curve, elapsed = [], 0.0
  for iteration in range(1, iters + 1):
    start = time.perf_counter()
    opt.step(closure)
    elapsed += time.perf_counter() - start
    if iteration % 10 == 0:  # Measured outside the timed steps.
      with torch.no_grad():
        curve.append((iteration, elapsed, float(objective(x))))
  return {"curve": curve, "compile": 0.0, "evaluations": count["evals"], "initial": initial,
          "threads": torch.get_num_threads()}


def at(curve, iteration):
  return next(((t, loss) for i, t, loss in curve if i == iteration), (float("nan"),) * 2)


def loss_at_time(curve, seconds):
  """The loss a run had reached by ``seconds`` (its last 10-iteration mark before it)."""
  reached = [loss for _, t, loss in curve if t <= seconds]
  return reached[-1] if reached else float("nan")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--size", type=int, default=96)
  parser.add_argument("--iters", type=int, default=100)
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args(argv)
  weights = jaxstyle.random_weights(seed=0)
  content, style = images(args.size)
  base = jaxstyle.StyleConfig(size=args.size, iters=args.iters, record_terms=False)
  spec = jaxstyle.ObjectiveSpec.from_config(base, weights.convention)
  params = jax.tree.map(jnp.asarray, weights.params)
  content = jaxstyle.images.as_rgb(content, args.size, what="content")
  targets = jaxstyle.make_targets(params, content, style, spec)
  loss_weights = jaxstyle.LossWeights.from_config(base)
  x0 = jnp.asarray(content, jnp.float32)
  f_and_g = jax.jit(jax.value_and_grad(
      lambda x: jaxstyle.objective(params, targets, x, loss_weights, spec)[0]))
  initial = float(f_and_g(x0)[0])

  runs = {
      "jaxstyle L-BFGS, zoom linesearch, history 10":
          jaxstyle_run(content, style, base, weights),
      "jaxstyle L-BFGS, fixed step, history 100":
          jaxstyle_run(content, style, base.replace(lbfgs_linesearch="none", lbfgs_memory=100),
                       weights),
      "scipy fmin_l_bfgs_b (host loop), history 10": scipy_run(f_and_g, x0, args.iters),
  }
  torch_result = torch_run(params, targets, spec, loss_weights, x0, args.iters)
  notes = []
  if isinstance(torch_result, str):
    notes.append(f"torch.optim.LBFGS: {torch_result}")
  else:
    runs["torch.optim.LBFGS, no line search, history 100"] = torch_result
    notes.append(f"torch objective at the initial image: {torch_result['initial']:.6g} vs "
                 f"jaxstyle's {initial:.6g} (relative difference "
                 f"{abs(torch_result['initial'] - initial) / initial:.1e}); torch "
                 f"{__import__('torch').__version__}, {torch_result['threads']} threads")
  jax_names = [n for n in runs if n.startswith("jaxstyle")]

  header = ("| method | " + " | ".join(f"loss @{m}" for m in MARKS) + " | "
            + " | ".join(f"s @{m}" for m in MARKS) + " | s/iteration | evaluations | compile |")
  lines = [header, "|" + "---|" * (2 * len(MARKS) + 4)]
  for name, run in runs.items():
    points = [at(run["curve"], m) for m in MARKS]
    last_t = run["curve"][-1][1] if run["curve"] else float("nan")
    last_i = run["curve"][-1][0] if run["curve"] else 1
    lines.append(f"| {name} | " + " | ".join(f"{loss:.4g}" for _, loss in points) + " | "
                 + " | ".join(f"{t:.2f}" for t, _ in points)
                 + f" | {last_t / last_i:.3f} | {run['evaluations'] or '-'} | "
                 f"{run['compile']:.1f} s |")
  for name, run in runs.items():
    if name in jax_names or not run["curve"]:
      continue
    t = run["curve"][-1][1]
    best = min(loss_at_time(runs[j]["curve"], t) for j in jax_names)
    notes.append(f"at {name}'s final wall time ({t:.2f} s): its loss "
                 f"{run['curve'][-1][2]:.4g}, jaxstyle's best {best:.4g}")
    # Where both have run (a faster method stops earlier at the same iteration count).
    common = min(t, max(runs[j]["curve"][-1][1] for j in jax_names))
    notes.append(f"at {common:.2f} s, the time both have reached: {name} "
                 f"{loss_at_time(run['curve'], common):.4g}, jaxstyle's best "
                 f"{min(loss_at_time(runs[j]['curve'], common) for j in jax_names):.4g}")
  report = (heading("Peers: one objective, four loops", "bench_peers.py", argv,
                    f"{args.size} px, RANDOM full-width VGG19, default objective, content init "
                    f"(initial loss {initial:.4g}); times exclude compilation")
            + "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
  publish(report, append=not args.no_append)


if __name__ == "__main__":
  main()
