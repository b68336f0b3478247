"""How much memory a run needs, predicted before it starts; refusing one that cannot fit.

The prediction is analytic, from the shapes alone, so it costs nothing and
runs before any compilation:

* activations: Σ_l H_l·W_l·C_l over the conv layers the objective runs
  (up to the deepest requested layer); the backward pass keeps each conv's
  input and its ReLU mask, XLA adds temporaries of the same order, and
  L-BFGS's linesearch holds a second evaluation's: :data:`ACTIVATION_COPIES`
  float32 copies, factors measured on CPU (docs/BENCHMARKS.md, "Memory"):
  4.5 with XLA's direct convolutions, whose backward holds more
  temporaries; with Winograd 4.0 for L-BFGS and 2.5 for Adam;
* image-sized buffers: the iterate, its gradient, the optimiser's state
  (2 · history for L-BFGS, 2 for Adam), the moving average and a few
  temporaries: (2·m + 8) · H·W·3 floats;
* the network's weights (three copies: the host arrays, the device arrays
  and a transient one), the content targets, and 250 MiB for the runtime
  and the compiled program;
* where ``--conv`` may run Winograd (``auto``, ``winograd``), every objective
  layer's two transformed kernels, (m+2)² · Cin · Cout floats each (m = 2:
  184 MB for the default objective at full width).

Measured on CPU (full-width VGG19, peak RSS above the process's after
import), with the default Winograd convolutions: L-BFGS 996 / 1353 / 1789
MiB at 256 / 384 / 512 px, Adam 838 / 1052 / 1399 MiB.

Adam members are vmapped, so their activations add up; L-BFGS members run
one after another and share them. ``benchmarks/`` compares this against
measured peaks.
"""

from __future__ import annotations

import os


from jaxstyle import conv, tiled, vgg
from jaxstyle.errors import ConfigError

GIB = float(1 << 30)
ACTIVATION_COPIES = {  # Activations kept for the backward pass, temporaries, linesearch.
    ("direct", "lbfgs"): 4.5, ("direct", "adam"): 4.5,
    ("winograd", "lbfgs"): 4.0, ("winograd", "adam"): 2.5,
}
RUNTIME_BYTES = 250 << 20  # XLA runtime and compiled program, measured on CPU.
TILED_COPIES = 1.9
"""With ``--tile``, a crop's activations count this many times more: the second pass's
vector-Jacobian product runs inside a scan beside the first pass's forward. Measured on CPU:
4096 x 2725 px in tiles of 1024, a peak of 16.6 GiB against 10.9 predicted without it
(benchmarks/bench_tiled.py, docs/BENCHMARKS.md "Gatys beyond memory"). That peak was later
found to be a whole-image forward pass for the content targets, which a tiled run no longer
makes (jaxstyle.objective.content_activations); the tiled program itself peaks lower, so the
factor now errs high (it refuses or tiles some runs that would fit) until it is refitted:
4096² in tiles of 1024 peaked at 15.25 GiB against 18.5 predicted."""


def _layer_shapes(config, height: int, width: int, width_scale: float):
  """(name, H_l, W_l, C_l) of every conv layer the objective runs, as :mod:`jaxstyle.vgg` says."""
  widths = vgg.layer_widths(width_scale, config.network)
  shapes = vgg.conv_shapes(config.network, (height, width),
                           config.content_layers + config.style_layers)
  return [(name, h, w, widths[name][1]) for name, (h, w) in shapes.items()]


def estimate_bytes(config, height: int, width: int, *, width_scale: float = 1.0,
                   members: int = 1) -> int:
  """Predicted peak bytes of a run at height x width (see the module docstring); with
  ``config.tile``, the activations are one crop's (jaxstyle.tiled)."""
  shapes = _layer_shapes(config, *tiled.crop_shape(config, height, width), width_scale)
  activations = sum(h * w * c for _, h, w, c in shapes)
  content = sum(h * w * c for name, h, w, c in _layer_shapes(config, height, width, width_scale)
                if name in {vgg.canonical_layer(n, config.network).removesuffix(vgg.PREACT)
                            for n in config.content_layers})
  history = 2 * config.lbfgs_memory if config.optimizer == "lbfgs" else 2
  image_buffers = (history + 8) * height * width * 3
  weights = sum(3 * 3 * cin * cout + cout
                for cin, cout in vgg.layer_widths(width_scale, config.network).values())
  live = members if config.optimizer == "adam" else 1
  copies = ACTIVATION_COPIES[_convolutions(config), config.optimizer] * (
      TILED_COPIES if config.tile else 1.0)
  floats = (copies * activations * live + image_buffers * members + 3 * weights
            + content + _winograd_floats(config, width_scale))
  return int(4 * floats) + RUNTIME_BYTES


def _convolutions(config) -> str:
  """The factor's kind, ``"winograd"`` or ``"direct"``: ``--conv auto`` chooses Winograd for
  most of the work on CPU (the deep layers) and the backend's own convolutions elsewhere."""
  import jax
  if config.conv == "winograd" or (config.conv == "auto" and jax.default_backend() == "cpu"):
    return "winograd"
  return "direct"


def _winograd_floats(config, width_scale: float) -> int:
  """Floats of the transformed kernels (U and U_t) a run keeps: every objective layer's where
  ``--conv`` may run Winograd (:func:`jaxstyle.objective.prepare_weights` makes them all,
  whichever the size then picks)."""
  if config.conv not in ("auto", "winograd"):
    return 0
  widths = vgg.layer_widths(width_scale, config.network)
  every = vgg.winograd_sets(config.network, config.content_layers + config.style_layers,
                            width_scale)["every"]
  return sum(2 * (conv.WINOGRAD_TILE + 2) ** 2 * widths[name][0] * widths[name][1]
             for name in every)


def available_bytes(device=None) -> tuple[int, str]:
  """Memory a run may use on ``device`` (default: the first), and a name for it."""
  import jax
  device = device or jax.devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
      return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), str(device.device_kind)
  try:
    with open("/proc/meminfo") as f:
      info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info["MemAvailable"], "this machine"
  except (OSError, KeyError, ValueError, IndexError):
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    return int(pages * os.sysconf("SC_PAGE_SIZE")) if pages else 1 << 62, "this machine"


def tile_to_fit(config, height: int, width: int, *, width_scale: float = 1.0, members: int = 1,
                available: tuple[int, str] | None = None) -> int:
  """``config.tile``, unless the run does not fit whole and the objective tiles (the Gram loss,
  no masks, no normalised gradients): then the largest tile (1024 down to 128 px) that fits."""
  from jaxstyle import tiled
  if config.tile or tiled.refusal(config.style_loss, bool(config.style_masks),
                                  config.normalize_gradients):
    return config.tile
  have = (available or available_bytes())[0]
  if estimate_bytes(config, height, width, width_scale=width_scale, members=members) <= have:
    return 0
  for tile in (1024, 512, 256, 128):
    if estimate_bytes(config.replace(tile=tile), height, width, width_scale=width_scale,
                      members=members) <= have:
      return tile
  return 0


def check_fits(config, height: int, width: int, *, width_scale: float = 1.0,
               members: int = 1, available: tuple[int, str] | None = None) -> None:
  """Raises ConfigError, saying the largest ``--size`` that would fit, if a run cannot fit."""
  def need(side: int) -> int:  # The same aspect ratio, longest side ``side``.
    scale = side / max(height, width)
    return estimate_bytes(config, max(round(height * scale), 1), max(round(width * scale), 1),
                          width_scale=width_scale, members=members)

  refuse_unless_fits(need, max(height, width), option="--size", floor=16,
                     available=available,
                     what=f"{width}x{height} px" + (f" and {members} members" if members > 1
                                                   else ""))


MIB = 1 << 20

# Feed-forward networks on CPU. XLA's convolutions keep workspace that its own memory
# analysis does not count, and it grows with the channels, so these are fitted to peaks
# measured through the commands themselves (each run's peak resident memory above the
# process's after importing jax, compiling with no cache: `python -m jaxstyle.memory
# jaxstyle ARGS`), over widths 0.25-1 and 256-2048 px, one image per forward pass;
# benchmarks/bench_memory_nets.py checks them (docs/BENCHMARKS.md, "Memory of every command").
# A forward pass over a batch of N images costs (2 - 1/N) times N single images' pixel term
# for the AdaIN decoder (measured: XLA:CPU's convolution workspace grows faster than the
# batch); Johnson's network, since its convolutions run on XLA:CPU's padded fast path
# (jaxstyle.conv), costs N times one image. Its constant includes what timing the
# convolution algorithms at a new shape leaves behind (about 150 MiB; a warm choice cache,
# the usual case after the first run, peaks that much lower).


def _batched(pixels: int, images: int) -> float:
  return images * pixels * (2.0 - 1.0 / images)


def johnson_forward_bytes(width: float, pixels: int, images: int = 1) -> int:
  """Peak of applying Johnson's network (``width``) to ``images`` images of ``pixels`` each
  in one forward pass (jaxstyle apply, video --model)."""
  return int((231 + 111 * width) * MIB + images * pixels * 490 * width)


def adain_style_bytes(width: float, style_pixels: int) -> int:
  """Peak of taking an AdaIN model's (encoder ``width``) style statistics of an image of
  ``style_pixels`` (jaxstyle apply --style-size). The constant covers compiling the encoder,
  which dominates up to about 1024 px (docs/BENCHMARKS.md, 2026-12-05: 70 MiB measured too
  low at 512 px)."""
  return int((120 + 250 * width) * MIB + style_pixels * (89 + 274 * width))


def adain_forward_bytes(width: float, pixels: int, images: int = 1) -> int:
  """Peak of an AdaIN model (encoder ``width``) stylizing ``images`` photos of ``pixels``
  each in one forward pass, its style statistics taken (encoder and decoder)."""
  return int((10 + 250 * width) * MIB + _batched(pixels, images) * (419 + 535 * width))


VGG_MEASURING_BYTES = 120 * MIB
"""What timing the loss network at a new crop (``--conv auto``:
:func:`jaxstyle.objective.winograd_layers`, one compiled value-and-gradient per candidate set)
adds to a training run's peak. Measured with cold caches (width 0.25, batch 2, VGG width
0.25): train peaked at 1031 / 1290 MiB at crop 128 / 256, against 920 / 1204 before VGG was
timed; train-adain at 953 / 1140. Counted always, so a warm cache's run is over-estimated by
it (the safe side)."""


def johnson_training_bytes(width: float, vgg_width: float, pixels: int) -> int:
  """Peak of training Johnson's network (``width``) against a VGG16 (``vgg_width``) loss,
  ``pixels`` = batch x crop² (its backward pass dominates: it grows as width²)."""
  return int((360 + 324 * width) * MIB + VGG_MEASURING_BYTES
             + pixels * (10414 * width ** 2 + 3360 * vgg_width))


def adain_training_bytes(vgg_width: float, pixels: int) -> int:
  """Peak of training an AdaIN decoder against its VGG19 encoder (``vgg_width``), ``pixels``
  = batch x crop² of photos (the paintings as many again)."""
  return int(312 * MIB + VGG_MEASURING_BYTES + pixels * (1646 + 11868 * vgg_width ** 2))


def refuse_unless_fits(need, value: int, *, option: str, what: str, floor: int = 1,
                       available: tuple[int, str] | None = None) -> None:
  """ConfigError unless ``need(value)`` bytes fit in the memory available.

  ``need`` maps the option's value (a size, a crop, a batch) to the bytes a run needs,
  growing with it; the message gives the estimate, the memory available, and the largest
  value of ``option`` that fits (or that none does), in one line.
  """
  have, where = available or available_bytes()
  needed = need(value)
  if needed <= have:
    return
  low, high = floor - 1, value  # need(low) fits (or low < floor), need(high) does not.
  while high - low > 1:
    middle = (low + high) // 2
    low, high = (middle, high) if need(middle) <= have else (low, middle)
  advice = (f"the largest {option} that fits is about {low}" if low >= floor
            else f"not even {option} {floor} fits")
  raise ConfigError(f"{option} {value}: needs about {needed / GIB:.1f} GiB for {what}; {where} "
                    f"has {have / GIB:.1f} GiB available; {advice}")


def _status_bytes(field: str) -> int | None:
  """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None without /proc."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def resident_bytes() -> int:
  """This process's resident memory now (VmRSS; 0 where /proc is missing)."""
  return _status_bytes("VmRSS") or 0


def process_peak_bytes() -> int:
  """This process's peak resident memory since it started (or exec'd).

  Linux's ``VmHWM`` belongs to the process's own address space; ``ru_maxrss``
  would do elsewhere, but on Linux it carries the parent's peak over a
  fork+exec, so a child of a large process (a test runner) would read its
  parent's peak.
  """
  peak = _status_bytes("VmHWM")
  if peak is not None:
    return peak
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None) -> int:
  """``python -m jaxstyle.memory ARGS...``: runs ``jaxstyle ARGS`` in this process and prints,
  as one JSON line on stdout, its exit code, its peak resident memory, the peak after
  importing jax, and each memory estimate the command made before it allocated (option,
  value, bytes, and the process's resident memory at that moment: an estimate is of the
  memory the run adds to it, which is what the memory available is compared with). How the
  estimates are checked (tests/test_memory_estimates.py, benchmarks/bench_memory_nets.py)."""
  import json
  import sys

  import jax  # noqa: F401  (the baseline includes jax, as every command's does)

  from jaxstyle import cli
  baseline = process_peak_bytes()
  estimates = []
  # The module the commands call (under ``python -m`` this file also runs as __main__).
  from jaxstyle import memory as module
  refuse, fits = module.refuse_unless_fits, module.check_fits

  def recording_refuse(need, value, **kwargs):
    estimates.append({"option": kwargs["option"], "value": value, "bytes": need(value),
                      "resident": resident_bytes()})
    return refuse(need, value, **kwargs)

  def recording_fits(config, height, width, **kwargs):
    estimates.append({"option": "--size", "value": config.size, "bytes": module.estimate_bytes(
        config, height, width, width_scale=kwargs.get("width_scale", 1.0),
        members=kwargs.get("members", 1)), "resident": resident_bytes()})
    return fits(config, height, width, **kwargs)

  module.refuse_unless_fits, module.check_fits = recording_refuse, recording_fits
  try:
    code = cli.main(sys.argv[1:] if argv is None else argv)
  finally:
    module.refuse_unless_fits, module.check_fits = refuse, fits
  print(json.dumps({"code": code, "peak": process_peak_bytes(), "baseline": baseline,
                    "estimates": estimates}))
  return code


if __name__ == "__main__":
  raise SystemExit(main())
