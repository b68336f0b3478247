"""The pixel-optimisation commands: stylize, batch, sweep, reproduce, demo (their own options
and handlers; :mod:`jaxstyle.cli.table` declares what else each takes)."""

from __future__ import annotations

import sys
from pathlib import Path

from jaxstyle.cli.options import (EXIT_RUN_FAILED, config_from_args, flag, output_dir,
                                  PIXEL_GROUPS)
from jaxstyle.errors import Interrupted, JaxstyleError, NonFiniteLossError

DIVERGED = 1.5
"""A final loss this many times the initial one is reported as divergence."""

MEMBER_LISTS = {"content_weight": ("--content-weight", float, "cw"),
                "style_weight": ("--style-weight", float, "sw"),
                "tv_weight": ("--tv-weight", float, "tv"), "seed": ("--seeds", int, "seed")}
"""``jaxstyle batch`` takes lists for these fields (option, type, short name in file names);
the members are their product (or zip)."""


# ---- stylize ---------------------------------------------------------------------------------


def stylize_arguments(parser, base) -> None:
  parser.add_argument("content", metavar="CONTENT", help="content image file")
  parser.add_argument("style", metavar="STYLE", nargs="+",
                      help="style image file; several are blended (see --style-blend-weights)")
  parser.add_argument("--save-every", type=int, default=0, metavar="N",
                      help="also write OUT.iterN.png every N iterations (default: 0, never)")
  parser.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                      help="write the optimiser state to OUT.ckpt.npz every N iterations "
                           "(atomically; Ctrl-C writes one too); removed when the run ends "
                           "(default: 0, only on Ctrl-C)")
  parser.add_argument("--resume", action="store_true",
                      help="continue from OUT.ckpt.npz, written by a run with the same "
                           "options and inputs; the result is bit-identical to an "
                           "uninterrupted run's")
  parser.add_argument("--dry-run", action="store_true",
                      help="predict peak memory and run time (compiling the programs and "
                           "timing a few iterations), refuse if it cannot fit, write nothing")


def stylize(args) -> int:
  from jaxstyle import images, provenance
  from jaxstyle.transfer import stylize

  config = config_from_args(args)
  output = images.check_output_path(args.output)
  if args.dry_run:
    return _dry_run(args, config)
  if args.save_every < 0:
    raise JaxstyleError(f"--save-every: expected a non-negative count, got {args.save_every}")

  def save_intermediate(iteration, image, _losses):
    images.save_image(output.with_name(f"{output.stem}.iter{iteration}{output.suffix}"), image)

  checkpoint = output.with_name(f"{output.stem}.ckpt.npz")
  try:
    result = stylize(args.content, _one_or_list(args.style), config, progress=not args.quiet,
                     callback=save_intermediate, save_every=args.save_every,
                     checkpoint=checkpoint, checkpoint_every=args.checkpoint_every,
                     resume=args.resume)
  except Interrupted as e:
    partial = output.with_name(f"{output.stem}.interrupted{output.suffix}")
    images.save_image(partial, e.images[0])
    e.args = (f"{e.args[0]}; the image so far is in {partial}; continue with the same command "
              "and --resume",)
    raise
  except NonFiniteLossError as e:
    if e.image is not None:
      rescue = output.with_name(f"{output.stem}.last-finite{output.suffix}")
      images.save_image(rescue, e.image)
      e.args = (f"{e.args[0]}; the last finite image is in {rescue}",)
    raise
  images.save_image(output, result.image,
                    text=provenance.png_text(result, content=args.content,
                                             style=_one_or_list(args.style)))
  checkpoint.unlink(missing_ok=True)  # The run is done; a stale one could only mislead.
  _print_summary(output, result)
  return 0


def _dry_run(args, config) -> int:
  from jaxstyle.transfer import estimate
  e = estimate(args.content, _one_or_list(args.style), config)
  gib = float(1 << 30)
  minutes, seconds = divmod(round(e.total_seconds), 60)
  print(f"dry run: {e.width}x{e.height} px, {config.network.upper()}, {config.optimizer}: "
        f"predicted peak memory {e.peak_bytes / gib:.2f} GiB of {e.available_bytes / gib:.1f} "
        f"GiB available on {e.device} (XLA's evaluation program: "
        f"{e.xla_temp_bytes / gib:.2f} GiB of temporaries); compile {e.compile_seconds:.1f} s; "
        f"{e.seconds_per_iteration:.3f} s/iteration, about {minutes} min {seconds} s for "
        f"{sum(config.scale_iters or (config.iters,) * config.scales)} iterations; "
        "nothing written")
  return 0


def _one_or_list(styles: list[str]):
  return styles[0] if len(styles) == 1 else styles


def _print_summary(output: Path, result) -> None:
  h = result.history["total"]
  final = h[-1] if len(h) else result.initial["total"]
  print(f"wrote {output}: {result.iterations} iterations, loss {result.initial['total']:.4g} -> "
        f"{final:.4g}, {result.seconds:.1f} s (+{result.compile_seconds:.1f} s compile)"
        + ("  [RANDOM FEATURES]" if result.weights["random"] else ""))
  if final > DIVERGED * result.initial["total"]:  # A diverged run must not pass as a result.
    fix = ("--lbfgs-linesearch zoom (steps checked by a linesearch)"
           if result.config.optimizer == "lbfgs" else "a smaller --lr")
    print(f"jaxstyle: warning: {output}: the loss ended {final / result.initial['total']:.3g}x "
          f"above where it started ({result.initial['total']:.4g} -> {final:.4g}): the "
          f"optimiser diverged; try {fix}", file=sys.stderr)


# ---- batch -----------------------------------------------------------------------------------


def batch_arguments(parser, base) -> None:
  parser.add_argument("content", metavar="CONTENT", help="content image file")
  parser.add_argument("--styles", nargs="+", required=True, metavar="STYLE",
                      help="style image files")
  parser.add_argument("--zip", action="store_true",
                      help="pair the lists element-wise (lists of length 1 repeat) instead of "
                           "taking their product")
  parser.add_argument("--max-members", type=int, default=None, metavar="N",
                      help="at most N members per program, to bound memory (default: all)")
  for field, (option, kind, _) in MEMBER_LISTS.items():
    parser.add_argument(option, dest=field, nargs="+", type=kind, default=[getattr(base, field)],
                        metavar="V", help=f"one or more values (default: {getattr(base, field)})")


def batch(args) -> int:
  from jaxstyle import distributed, images, provenance, sweep
  from jaxstyle.transfer import stylize_batch

  lists = {"style": args.styles, **{k: getattr(args, k) for k in MEMBER_LISTS}}
  try:
    members = sweep.expand(lists, zipped=args.zip)
  except ValueError as e:
    longest = max(len(v) for v in lists.values())
    raise JaxstyleError(f"--zip: every list needs 1 or {longest} values; got {e}") from None
  distributed.initialize(args.distributed)
  share = distributed.my_share(len(members))
  base = config_from_args(args, **{k: lists[k][0] for k in MEMBER_LISTS})
  configs = [base.replace(**{k: m[k] for k in MEMBER_LISTS}) for m in members]
  outdir = output_dir(args.output)
  varying = [k for k in MEMBER_LISTS if len(lists[k]) > 1]
  print(f"batch: {len(members)} members ({'zip' if args.zip else 'product'} of "
        + ", ".join(f"{len(v)} {k}" for k, v in lists.items()) + ")")
  results = stylize_batch(args.content, [members[i]["style"] for i in share],
                          [configs[i] for i in share], progress=not args.quiet,
                          max_members=args.max_members)
  outdir.mkdir(parents=True, exist_ok=True)  # After the run: a refused one leaves nothing.
  failed = 0
  for i, result in zip(share, results):
    member = members[i]
    name = "_".join([f"{i:03d}", Path(member["style"]).stem]
                    + [f"{MEMBER_LISTS[k][2]}{member[k]:g}" for k in varying])
    path = outdir / f"{name}{'.failed' if result.error else ''}.png"
    images.save_image(path, result.image,
                      text=provenance.png_text(result, content=args.content, style=member["style"]))
    if result.error:
      failed += 1
      print(f"FAILED {path}: {result.error}")
    else:
      _print_summary(path, result)
  return EXIT_RUN_FAILED if failed else 0


# ---- sweep -----------------------------------------------------------------------------------


def sweep_arguments(parser, base) -> None:
  parser.add_argument("config", metavar="SWEEP.toml",
                      help="the sweep file (see experiments/sweeps/*.toml)")
  parser.add_argument("--max-members", type=int, default=None, metavar="N",
                      help="at most N members per program (default: all in a group)")


def sweep(args) -> int:
  from jaxstyle import distributed, sweep

  distributed.initialize(args.distributed)
  _, records, written = sweep.run_file(args.config, args.output, max_members=args.max_members,
                                       progress=not args.quiet)
  failed = sum(r["status"] == "failed" for r in records)
  print(f"sweep: {len(records)} records in {sweep.records_file(args.output)}, {failed} "
        f"failed" + ("; wrote " + ", ".join(map(str, written)) if written else ""))
  return EXIT_RUN_FAILED if failed else 0


# ---- reproduce -------------------------------------------------------------------------------


def reproduce_arguments(parser, base) -> None:
  parser.add_argument("original", metavar="OUT.png", help="a PNG written by jaxstyle")
  parser.add_argument("--weights", default=None, metavar="PATH",
                      help="weights to use if the recorded path is not valid here")


def jax_backend() -> str:
  import jax
  return jax.default_backend()


def reproduce(args) -> int:
  from jaxstyle import images, provenance

  original = Path(args.original)
  images.load_image(original, min_side=1)  # A clear error for a missing or non-image file.
  output = images.check_output_path(args.output)
  record = provenance.read_png_record(original)
  if record is None:
    raise JaxstyleError(f"{original}: has no jaxstyle provenance record")
  result, content, style = provenance.rerun(record, weights_spec=args.weights,
                                            progress=not args.quiet)
  images.save_image(output, result.image,
                    text=provenance.png_text(result, content=content, style=style))
  same = output.read_bytes() == original.read_bytes()
  if same:
    print(f"reproduced {original} -> {output}: byte-identical")
    return 0
  diff = abs(images.load_image(output, min_side=1).astype(int)
             - images.load_image(original, min_side=1).astype(int)).max()
  then, now = record.get("versions", {}), provenance.versions()
  changed = [f"{k} {then[k]} -> {now[k]}" for k in now if then.get(k, now[k]) != now[k]]
  if record.get("backend", jax_backend()) != jax_backend():
    changed.append(f"backend {record['backend']} -> {jax_backend()}")
  why = (f"recorded with other versions: {', '.join(changed)}" if changed else
         "a different machine or batch size changes float round-off")
  print(f"reproduced {original} -> {output}: NOT byte-identical (largest pixel difference "
        f"{diff}; {why})")
  return EXIT_RUN_FAILED


# ---- demo ------------------------------------------------------------------------------------


def demo_arguments(parser, base) -> None:
  from jaxstyle.demo import FEED_FORWARD_STEPS
  parser.add_argument("--size", type=int, default=128,
                      help="longest side of the result; with --feed-forward, of the training "
                           "crops (the held-out photo is stylized at twice it) (default: 128)")
  parser.add_argument("--iters", type=int, default=100,
                      help="optimiser iterations (default: 100)")
  parser.add_argument("--feed-forward", action="store_true",
                      help="train a small network on the sample photos but one (a few minutes "
                           "on 2 cores), then stylize that one in one forward pass")
  parser.add_argument("--steps", type=int, default=FEED_FORWARD_STEPS,
                      help=f"--feed-forward: training steps (default: {FEED_FORWARD_STEPS})")


def demo(args) -> int:
  from jaxstyle import demo
  from jaxstyle.config import fields_in
  from jaxstyle.nets.train import OBJECTIVE_GROUPS
  objective = fields_in(OBJECTIVE_GROUPS)
  if args.feed_forward:
    # The network trains on the objective; the pixel optimiser's options have no meaning.
    misplaced = [flag(d) for d in sorted(args.given) if d in fields_in(PIXEL_GROUPS)
                 and d not in objective + ("size",) or d == "preset"]
    if misplaced:
      raise JaxstyleError(f"{', '.join(misplaced)}: not used by demo --feed-forward (it trains "
                          "a network on the objective; jaxstyle train takes --preset)")
    demo.run_feed_forward(args, {d: getattr(args, d) for d in args.given if d in objective})
    return 0
  if "steps" in args.given:
    raise JaxstyleError("--steps: only with --feed-forward (pixel optimisation takes --iters)")
  demo.run(args, config_from_args(args))
  return 0
