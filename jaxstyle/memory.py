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
* with ``conv`` resolving to winograd, each Winograd layer's two transformed
  kernels, (m+2)² · Cin · Cout floats each (m = 2: 163 MB for the default
  objective at full width).

Measured on CPU (full-width VGG19, peak RSS above the process's after
import), with the default Winograd convolutions: L-BFGS 996 / 1353 / 1789
MiB at 256 / 384 / 512 px, Adam 838 / 1052 / 1399 MiB.

Adam members are vmapped, so their activations add up; L-BFGS members run
one after another and share them. ``benchmarks/`` compares this against
measured peaks.
"""

from __future__ import annotations

import os


from jaxstyle import vgg
from jaxstyle.errors import ConfigError

GIB = float(1 << 30)
ACTIVATION_COPIES = {  # Activations kept for the backward pass, temporaries, linesearch.
    ("direct", "lbfgs"): 4.5, ("direct", "adam"): 4.5,
    ("winograd", "lbfgs"): 4.0, ("winograd", "adam"): 2.5,
}
RUNTIME_BYTES = 250 << 20  # XLA runtime and compiled program, measured on CPU.


def _layer_shapes(config, height: int, width: int, width_scale: float):
  """(name, H_l, W_l, C_l) of every conv layer the objective runs, as :mod:`jaxstyle.vgg` says."""
  widths = vgg.layer_widths(width_scale, config.network)
  shapes = vgg.conv_shapes(config.network, (height, width),
                           config.content_layers + config.style_layers)
  return [(name, h, w, widths[name][1]) for name, (h, w) in shapes.items()]


def estimate_bytes(config, height: int, width: int, *, width_scale: float = 1.0,
                   members: int = 1) -> int:
  """Predicted peak bytes of a run at height x width (see the module docstring)."""
  shapes = _layer_shapes(config, height, width, width_scale)
  activations = sum(h * w * c for _, h, w, c in shapes)
  content = sum(h * w * c for name, h, w, c in shapes
                if name in {vgg.canonical_layer(n, config.network).removesuffix(vgg.PREACT)
                            for n in config.content_layers})
  history = 2 * config.lbfgs_memory if config.optimizer == "lbfgs" else 2
  image_buffers = (history + 8) * height * width * 3
  weights = sum(3 * 3 * cin * cout + cout
                for cin, cout in vgg.layer_widths(width_scale, config.network).values())
  live = members if config.optimizer == "adam" else 1
  copies = ACTIVATION_COPIES[vgg.resolve_conv(config.conv), config.optimizer]
  floats = (copies * activations * live + image_buffers * members + 3 * weights
            + content + _winograd_floats(config, width_scale))
  return int(4 * floats) + RUNTIME_BYTES


def _winograd_floats(config, width_scale: float) -> int:
  """Floats of the transformed kernels (U and U_t) the Winograd layers keep during a run."""
  if vgg.resolve_conv(config.conv) != "winograd":
    return 0
  widths = vgg.layer_widths(width_scale, config.network)
  total = 0
  for spec in vgg.layers_through(config.network, config.content_layers + config.style_layers):
    cin, cout = widths[spec.name]
    tile = vgg.winograd_tile(cin, cout)
    total += 2 * (tile + 2) ** 2 * cin * cout if tile else 0
  return total


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


def check_fits(config, height: int, width: int, *, width_scale: float = 1.0,
               members: int = 1, available: tuple[int, str] | None = None) -> None:
  """Raises ConfigError, saying the largest size that would fit, if a run cannot fit."""
  need = estimate_bytes(config, height, width, width_scale=width_scale, members=members)
  have, where = available or available_bytes()
  if need <= have:
    return
  def fits(side: int) -> bool:  # The same aspect ratio, longest side ``side``.
    scale = side / max(height, width)
    return estimate_bytes(config, max(round(height * scale), 1), max(round(width * scale), 1),
                          width_scale=width_scale, members=members) <= have

  # Binary search in steps of 16 px: the estimate is not proportional to the
  # area (the weights and Winograd's transformed kernels are fixed costs).
  low, high = 0, max(height, width) // 16
  while low < high:
    middle = (low + high + 1) // 2
    low, high = (middle, high) if fits(16 * middle) else (low, middle - 1)
  largest = 16 * low
  advice = (f"the largest size that fits is about {largest} px" if largest >= 16
            else "not even the smallest size fits")
  raise ConfigError(
      f"--size {config.size}: needs about {need / GIB:.1f} GiB for {width}x{height} px"
      + (f" and {members} members" if members > 1 else "")
      + f", {where} has {have / GIB:.1f} GiB available; {advice}")


def process_peak_bytes() -> int:
  """This process's peak resident memory since it started (or exec'd).

  Linux's ``VmHWM`` belongs to the process's own address space; ``ru_maxrss``
  would do elsewhere, but on Linux it carries the parent's peak over a
  fork+exec, so a child of a large process (a test runner) would read its
  parent's peak.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
