"""Sweeps: experiments declared as data, run in batches, recorded line by line.

A sweep file (TOML) names a content image, a ``[base]`` of StyleConfig
fields, and ``[axes]``: value lists over config fields and/or ``style``::

    content = "../shared/images/content/chelsea.jpg"   # relative to this file
    mode = "product"                                   # or "zip"

    [base]
    size = 128
    iters = 100
    weights = "random:0:0.25"

    [axes]
    style = ["../shared/images/style/starry_night.jpg", "../shared/images/style/the_scream.jpg"]
    style_weight = [1e3, 1e4, 1e5]

A top-level ``preset = "keras-example"`` starts every member from that preset
(:mod:`jaxstyle.presets`) instead of the defaults; ``preset`` may also be an
axis, to compare the published objectives side by side. ``[base]`` and the
other axes override the preset's fields.

Members that differ only in ``members.MEMBER_FIELDS`` (style, loss weights,
init, seed) run together as one batched program; others run one program each.
Every finished member appends one JSON line to ``RUNDIR/records.jsonl``; a
rerun skips members already recorded as ok, so an interrupted sweep resumes
with nothing lost and nothing duplicated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import tomllib
from pathlib import Path
from typing import NamedTuple

from jaxstyle import presets
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError

RECORDS = "records.jsonl"


class Sweep(NamedTuple):
  """A parsed sweep: where it came from and the members it declares."""

  path: Path
  content: Path
  axes: dict  # name -> list of values, in file order.
  mode: str
  members: list  # [(axes values: dict, style path, StyleConfig)]


def expand(lists: dict[str, list], *, zipped: bool) -> list[dict]:
  """The members named lists describe: every combination (their product), or with
  ``zipped`` the lists side by side, a list of one value repeating; one dict per member.

  ValueError naming each list's length when zipped lists differ in length (the callers say
  where: a sweep file's axes, batch's options).
  """
  names = list(lists)
  if not zipped:
    return [dict(zip(names, combo)) for combo in itertools.product(*lists.values())]
  longest = max(len(v) for v in lists.values())
  if any(len(v) not in (1, longest) for v in lists.values()):
    raise ValueError(", ".join(f"{n}={len(v)}" for n, v in lists.items()))
  return [{n: v[i % len(v)] for n, v in lists.items()} for i in range(longest)]


def load_sweep(path) -> Sweep:
  """Reads and validates a sweep TOML file; paths in it are relative to it."""
  path = Path(path)
  try:
    data = tomllib.loads(path.read_text())
  except FileNotFoundError:
    raise ConfigError(f"{path}: no such sweep file") from None
  except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
    raise ConfigError(f"{path}: not valid TOML ({e})") from None
  unknown = set(data) - {"content", "style", "mode", "preset", "base", "axes"}
  if unknown:
    raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; expected content, style, mode, "
                      "preset, [base] and [axes]")
  here = path.parent
  if "content" not in data:
    raise ConfigError(f"{path}: missing 'content' (the content image)")
  if not isinstance(data["content"], str):
    raise ConfigError(f"{path}: 'content' must be an image path, got {data['content']!r}")
  for table in ("base", "axes"):
    if not isinstance(data.get(table, {}), dict):
      raise ConfigError(f"{path}: [{table}] must be a table of fields, got "
                        f"{data[table]!r}")
  base, axes = dict(data.get("base", {})), dict(data.get("axes", {}))
  mode = data.get("mode", "product")
  if mode not in ("product", "zip"):
    raise ConfigError(f"{path}: mode must be 'product' or 'zip', got {mode!r}")
  fields = {f.name for f in dataclasses.fields(StyleConfig)}
  for name, values in axes.items():
    if name not in ("style", "preset") and name not in fields:
      raise ConfigError(f"{path}: axis {name!r} is not a StyleConfig field, 'style' or "
                        "'preset'")
    if not isinstance(values, list) or not values:
      raise ConfigError(f"{path}: axis {name!r} needs a non-empty list of values")
  for name in base:
    if name not in fields:
      raise ConfigError(f"{path}: [base] {name!r} is not a StyleConfig field")
  if "style" not in axes:
    if "style" not in data:
      raise ConfigError(f"{path}: give the style image as 'style' or as an axis in [axes]")
    axes = {"style": [data["style"]], **axes}
  for style in axes["style"]:
    if not (isinstance(style, str) or (isinstance(style, list) and style
                                       and all(isinstance(s, str) for s in style))):
      raise ConfigError(f"{path}: a style must be an image path or a list of them (blended), "
                        f"got {style!r}")
  for preset in axes.get("preset", []) + [data.get("preset", "gatys2016")]:
    if not isinstance(preset, str):
      raise ConfigError(f"{path}: a preset must be a name, got {preset!r}")
  try:
    combos = expand(axes, zipped=mode == "zip")
  except ValueError as e:
    raise ConfigError(f"{path}: zip mode needs axes of equal length (or 1), got {e}") from None
  members = []
  for values in combos:
    preset = values.get("preset", data.get("preset"))
    try:
      start = presets.get(preset) if preset is not None else StyleConfig()
    except ConfigError as e:
      raise ConfigError(f"{path}: {e}") from None
    fields_here = {**base, **{k: v for k, v in values.items() if k not in ("style", "preset")}}
    if fields_here.get("style_masks"):  # Files, like the images: relative to the sweep file.
      fields_here["style_masks"] = _resolve(here, fields_here["style_masks"])
    try:
      config = start.replace(**fields_here)
    except ConfigError as e:
      raise ConfigError(f"{path}: {e}") from None
    members.append((values, _resolve(here, values["style"]), config))
  return Sweep(path, _resolve(here, data["content"]), axes, mode, members)


def _resolve(here: Path, style):
  if isinstance(style, list):
    return [_resolve(here, s) for s in style]
  return str(here / style) if not os.path.isabs(style) else style


def member_id(content_sha: str, style_shas, config: StyleConfig) -> str:
  """A stable id of what determines a member's result (inputs and full config)."""
  blob = json.dumps({"content": content_sha, "style": style_shas, "config": config.to_dict()},
                    sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def records_file(rundir) -> Path:
  """This process's records file: records.jsonl, or records.pN.jsonl among several."""
  from jaxstyle.distributed import process
  index, processes = process()
  return Path(rundir) / (RECORDS if processes == 1 else f"records.p{index}.jsonl")


def member_ids(sweep: Sweep) -> list[str]:
  """The id of every member, in order; each input file is hashed once.

  A missing style image gets a placeholder hash, so its member can be run
  (and recorded as failed) while the others go on; once the file exists
  the member has a new id and runs again.

  Raises:
    ImageError: if the content image of the sweep does not exist.
  """
  from jaxstyle.files import sha256_file

  hashes: dict[str, str] = {}

  def sha(path) -> str:
    if path not in hashes:
      hashes[path] = sha256_file(path) if Path(path).is_file() else f"missing:{path}"
    return hashes[path]

  content_sha = sha(_existing(str(sweep.content), "content"))
  ids = []
  for _, style, config in sweep.members:
    styles = style if isinstance(style, list) else [style]
    ids.append(member_id(content_sha, [sha(s) for s in styles], config))
  return ids


def read_records(rundir) -> list[dict]:
  """All records of a run directory (every process's file); torn lines are ignored."""
  records = []
  for path in sorted(Path(rundir).glob("records*.jsonl")):
    for line in path.read_text().splitlines():
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        continue  # A crash mid-write leaves a torn last line.
  return records


def append_record(rundir, record: dict) -> None:
  """Appends one JSON line and syncs it to disk before returning.

  After a crash mid-write the file ends in a torn line; the new record then
  starts on a line of its own, so it is not glued to (and lost with) it.
  """
  line = (json.dumps(record, sort_keys=True) + "\n").encode()
  fd = os.open(records_file(rundir), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
      line = b"\n" + line
    os.write(fd, line)
    os.fsync(fd)
  finally:
    os.close(fd)


def run_sweep(sweep: Sweep, rundir, *, max_members: int | None = None,
              progress: bool = False, log=print) -> list[dict]:
  """Runs the sweep's unrecorded members into ``rundir``; returns all records.

  Among several processes (:mod:`jaxstyle.distributed`), each runs its share
  of the members and appends to its own records file.
  """
  import jax

  from jaxstyle import provenance
  from jaxstyle.distributed import my_share
  from jaxstyle.files import sha256_file
  from jaxstyle.optim.members import MEMBER_FIELDS
  from jaxstyle.objective import prepare_weights
  from jaxstyle.transfer import stylize_batch
  from jaxstyle.vgg.weights import resolve_weights

  if max_members is not None and max_members < 1:
    raise ConfigError(f"--max-members: expected at least 1, got {max_members}")
  rundir = Path(rundir)
  ids = member_ids(sweep)
  content_sha = sha256_file(sweep.content)
  rundir.mkdir(parents=True, exist_ok=True)
  done = {r["id"] for r in read_records(rundir) if r.get("status") == "ok"}
  mine = my_share(len(sweep.members))
  todo = [(ids[i], *sweep.members[i]) for i in mine if ids[i] not in done]
  log(f"sweep: {len(sweep.members)} members, {len(mine)} for this process, "
      f"{len(mine) - len(todo)} already recorded, {len(todo)} to run")
  # One batched program per group of members that share everything but MEMBER_FIELDS.
  groups: dict = {}
  for member in todo:
    key = member[3].replace(**{f: getattr(StyleConfig(), f) for f in MEMBER_FIELDS})
    groups.setdefault(key, []).append(member)
  weights_cache = {}

  def run_group(members, size: int) -> list:
    """One program's Results (padded to ``size`` members, so every sub-batch of a group
    reuses one program); a member that cannot run at all gets its reason (a str)."""
    which = (members[0][3].weights, members[0][3].network)
    padded = members + [members[-1]] * (size - len(members))
    try:
      if which not in weights_cache:
        # Prepared once for every group that uses them (device copy, Winograd kernels).
        weights_cache[which] = prepare_weights(resolve_weights(which[0], network=which[1]),
                                               members[0][3])
      return stylize_batch(str(sweep.content), [m[2] for m in padded],
                           [m[3] for m in padded], weights=weights_cache[which],
                           progress=progress)[:len(members)]
    except RUN_FAILURES as e:  # Bad input, out of memory: find whose, and go on.
      if len(members) > 1:
        return [r for m in members for r in run_group([m], 1)]
      return [_failure_reason(e)]

  common = {"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "versions": provenance.versions(), "content_sha256": content_sha}
  # Each sub-batch of max_members is recorded as soon as it finishes: a kill loses at most
  # the one in flight.
  for members in groups.values():
    size = min(len(members), max_members or len(members))
    for start in range(0, len(members), size):
      _record_all(rundir, members[start:start + size], run_group(members[start:start + size],
                                                                 size), size, common, sweep,
                  log)
  return read_records(rundir)


def _record_all(rundir: Path, members, results, size: int, common: dict, sweep: Sweep,
                log) -> None:
  """Writes each member's PNG and appends its record, in order."""
  from jaxstyle import images, provenance
  for (mid, values, style, config), result in zip(members, results):
    record = {"id": mid, "axes": values, "config": config.to_dict(), "seed": config.seed,
              "members_in_program": size, **common}
    if isinstance(result, str):
      record |= {"status": "failed", "error": result, "output": None, "iterations": 0}
    else:
      output = rundir / f"{mid}.png"
      images.save_image(output, result.image, text=provenance.png_text(
          result, content=str(sweep.content), style=style))
      record |= {
          "status": "failed" if result.error else "ok", "error": result.error,
          "initial": result.initial,
          "final": {k: float(v[-1]) for k, v in result.history.items()} if result.iterations
                   else result.initial,
          "history": {k: [float(f"{x:.6g}") for x in v] for k, v in result.history.items()},
          "iterations": result.iterations, "seconds": round(result.seconds, 3),
          "compile_seconds": round(result.compile_seconds, 3), "output": output.name,
          "weights": result.weights, "convolutions": result.convolutions}
    append_record(rundir, record)
    log(f"  {record['status'].upper() if record['error'] else 'ok'} {mid} "
        + " ".join(f"{k}={_label(v)}" for k, v in values.items())
        + (f": {record['error']}" if record["error"] else
           f" loss {record['final']['total']:.4g}"))


def _run_failures() -> tuple:
  import jax

  from jaxstyle.errors import JaxstyleError
  return (JaxstyleError, MemoryError, jax.errors.JaxRuntimeError)


RUN_FAILURES = _run_failures()  # What fails one member (input, memory, XLA), not the sweep.


def _failure_reason(e: BaseException) -> str:
  text = " ".join(str(e).split())
  if "RESOURCE_EXHAUSTED" in text or isinstance(e, MemoryError):
    return f"out of memory ({text[:300]}); lower size, or run fewer members per program"
  return text[:500] or type(e).__name__


def _existing(path, what: str) -> str:
  from jaxstyle.errors import ImageError
  if not Path(path).exists():
    raise ImageError(f"{path}: {what} image of the sweep does not exist")
  return str(path)


def _label(value) -> str:
  if isinstance(value, list):
    return "+".join(_label(v) for v in value)
  if isinstance(value, str) and ("/" in value or "." in value):
    return Path(value).stem
  return f"{value:g}" if isinstance(value, float) else str(value)


def contact_sheet(sweep: Sweep, rundir, path, *, cell: int = 160) -> None:
  """A grid of the members' outputs, axes labelled; the last axis runs across.

  Rows are the combinations of all other axes (product mode) or one row
  (zip mode). Members not yet recorded appear as grey cells.
  """
  from PIL import Image, ImageDraw, ImageOps

  from jaxstyle.files import atomic_path

  rundir = Path(rundir)
  by_id = {r["id"]: r for r in read_records(rundir)}
  ids = member_ids(sweep)
  names = list(sweep.axes)
  across = names[-1] if sweep.mode == "product" else None
  columns = len(sweep.axes[across]) if across else len(sweep.members)
  rows = (len(sweep.members) + columns - 1) // columns
  margin_left, margin_top = (170 if across else 8), 28
  sheet = Image.new("RGB", (margin_left + columns * cell, margin_top + rows * (cell + 28) + 16),
                    "white")
  draw = ImageDraw.Draw(sheet)
  if across:
    draw.text((4, 6), f"{across} ->", fill="black")
    for j, value in enumerate(sweep.axes[across]):
      draw.text((margin_left + j * cell + 4, 6), _label(value), fill="black")
  for index, (values, _, _) in enumerate(sweep.members):
    r, c = divmod(index, columns)
    x, y = margin_left + c * cell, margin_top + r * (cell + 28)
    record = by_id.get(ids[index])
    tile = Image.new("RGB", (cell - 4, cell - 4), (200, 200, 200))
    if record is not None and record.get("output") and (rundir / record["output"]).exists():
      with Image.open(rundir / record["output"]) as img:
        img = ImageOps.contain(img.convert("RGB"), (cell - 4, cell - 4), Image.Resampling.LANCZOS)
        tile.paste(img, ((cell - 4 - img.width) // 2, (cell - 4 - img.height) // 2))
    sheet.paste(tile, (x + 2, y + 2))
    label = ", ".join(f"{k}={_label(v)}" for k, v in values.items() if k != across)
    if not across:  # zip: each cell says how it differs from the first member, below it.
      first = sweep.members[0][0]
      changed = [f"{k}={_label(v)}" for k, v in values.items() if v != first[k]]
      label = ", ".join(changed) if index and changed else label
      for line, text in enumerate((label[:26], label[26:52])):
        draw.text((x + 2, y + cell + 10 * line - 2), text, fill="black")
    elif c == 0:  # product: one label per row, at its left.
      draw.text((4, y + cell // 2), label[:28], fill="black")
    if record is not None and record["status"] == "failed":
      draw.text((x + 6, y + 6), "FAILED", fill="red")
  if any(r.get("weights", {}).get("random") for r in by_id.values()):
    draw.text((4, sheet.height - 14), "RANDOM VGG features: not real style transfer",
              fill="red")
  with atomic_path(path, suffix=".png") as tmp:
    sheet.save(tmp, format="PNG")


def plot_curves(sweep: Sweep, rundir, path, *, against: str = "iteration") -> bool:
  """Total loss per member against ``"iteration"`` or ``"seconds"``; False without matplotlib.

  Seconds are the member's program time spread evenly over its iterations
  (compilation excluded), which is what comparing optimisers needs.
  """
  import numpy as np

  from jaxstyle.plots import pyplot, save_figure
  plt = pyplot()
  if plt is None:
    return False
  records = read_records(rundir)
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
  for record in records:
    total = record.get("history", {}).get("total")  # Members that never ran have none.
    if total:
      label = " ".join(f"{k}={_label(v)}" for k, v in record["axes"].items())
      x = np.arange(1, len(total) + 1, dtype=float)
      if against == "seconds":
        x *= record["seconds"] / max(record["iterations"], 1)
      ax.plot(x, total, label=label)
  ax.set_yscale("log")
  ax.set_xlabel("seconds (compilation excluded)" if against == "seconds" else "iteration")
  ax.set_ylabel("total loss")
  random = any(r.get("weights", {}).get("random") for r in records)
  ax.set_title(f"{sweep.path.name}" + (" — RANDOM features" if random else ""))
  if len(records) <= 12:
    ax.legend(fontsize=7)
  save_figure(fig, path)
  return True


def summary(records: list[dict], by: list[str]) -> str:
  """A markdown table of final losses, grouped by the named axes (mean ± std over the rest)."""
  import numpy as np

  groups: dict = {}
  for r in records:
    if r["status"] == "ok":
      groups.setdefault(tuple(_label(r["axes"][k]) for k in by), []).append(r)
  terms = ("total", "content", "style", "tv")
  lines = ["| " + " | ".join(by) + " | runs | " + " | ".join(f"final {t}" for t in terms)
           + " | s/iteration |", "|" + "---|" * (len(by) + 2 + len(terms))]
  for key, rows in groups.items():
    cells = []
    for t in terms:
      values = np.array([r["final"][t] for r in rows])
      cells.append(f"{values.mean():.4g}" + (f" ± {values.std():.2g}" if len(rows) > 1 else ""))
    per_iter = np.mean([r["seconds"] / max(r["iterations"], 1) / r["members_in_program"]
                        for r in rows])
    lines.append("| " + " | ".join(key) + f" | {len(rows)} | " + " | ".join(cells)
                 + f" | {per_iter:.3f} |")
  return "\n".join(lines)


def run_file(path, rundir, *, max_members=None, progress=False, curves=("iteration",)):
  """Runs a sweep file into ``rundir`` and writes its contact sheet and loss curves.

  Returns ``(sweep, records, written paths)``; the entry point of
  ``jaxstyle sweep`` and of the scripts in experiments/.
  """
  from jaxstyle.distributed import barrier, process

  spec = load_sweep(path)
  rundir = Path(rundir)
  run_sweep(spec, rundir, max_members=max_members, progress=progress)
  barrier("jaxstyle-sweep-recorded")  # Every process's records are in before the sheet.
  records = read_records(rundir)
  if process()[0] != 0:
    return spec, records, []
  written = [rundir / "contact_sheet.png"]
  contact_sheet(spec, rundir, written[0])
  for against in curves:
    name = "loss_curves.png" if against == "iteration" else f"loss_vs_{against}.png"
    if plot_curves(spec, rundir, rundir / name, against=against):
      written.append(rundir / name)
  return spec, records, written
