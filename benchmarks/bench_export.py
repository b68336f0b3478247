"""The exported network against ``jaxstyle apply``: onnxruntime (CPU) and the page in Chromium.

    python benchmarks/bench_export.py [--sizes 256 512 1024] [--repeats 3] [--no-append]

One full-width Johnson network (random init; speed does not depend on the
weights) exported with ``jaxstyle models export``. Per image, square photos
of each size, median of ``--repeats`` after a warm-up:

* ``jaxstyle apply``'s forward (``Stylizer``, ``--conv auto``: compiled, layers
  chosen, rounding and the copy to the host included);
* onnxruntime's CPU provider on the exported file, default session options
  (its own thread pool, one thread per core);
* the exported page in headless Chromium (``jaxstyle serve``'s headers, so
  onnxruntime-web runs WebAssembly with threads): the seconds the page itself
  reports for ``session.run`` (``document.body.dataset.seconds``), the model
  already loaded. Skipped where no chromium or playwright is installed.

Also checks onnxruntime's output against apply's (max difference, 0-255 levels).
Appends a table to docs/BENCHMARKS.md unless --no-append.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from flax import nnx
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import heading, publish  # noqa: E402


def _median_seconds(fn, repeats: int) -> float:
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _page_seconds(folder: Path, sizes, repeats: int) -> dict[int, float]:
  chromium = shutil.which("chromium")
  try:
    from playwright.sync_api import sync_playwright
  except ImportError:
    return {}
  if chromium is None:
    return {}
  from jaxstyle.nets import web
  httpd = web.server(folder, port=0)
  threading.Thread(target=httpd.serve_forever, daemon=True).start()
  url = f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
  found = {}
  try:
    with sync_playwright() as p:
      browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
      page = browser.new_page()
      for size in sizes:
        times = []
        for _ in range(repeats + 1):  # The first run warms onnxruntime-web up.
          page.goto(f"{url}?photo=photo{size}.png")
          page.wait_for_function("document.body.dataset.state === 'done' || "
                                 "document.body.dataset.state.startsWith('error')",
                                 timeout=600_000)
          state = page.evaluate("document.body.dataset.state")
          if state != "done":
            raise SystemExit(f"bench_export: the page said {state}")
          times.append(float(page.evaluate("document.body.dataset.seconds")))
        found[size] = statistics.median(times[1:])
      browser.close()
  finally:
    httpd.shutdown()
  return found


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--no-append", action="store_true")
  args = parser.parse_args(argv)

  import onnxruntime as ort

  from jaxstyle import cli
  from jaxstyle.nets import models
  from jaxstyle.nets.apply import Stylizer
  from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec

  tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
  net = JohnsonNet(JohnsonSpec(), rngs=nnx.Rngs(0))
  net.deconv3.conv.bias[...] = net.deconv3.conv.bias[...] + 128.0  # Mid-grey, not clipped.
  models.save_model(tmp / "model", net, styles=["random"], record={})
  start = time.perf_counter()
  assert cli.main(["models", "export", str(tmp / "model"), "-o", str(tmp / "model.onnx"),
                   "--web", str(tmp / "page")]) == 0
  export_seconds = time.perf_counter() - start
  session = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
  loaded, _ = models.load_model(tmp / "model")
  stylizer = Stylizer(loaded)
  rng = np.random.default_rng(0)
  rows, agree = [], []
  for size in args.sizes:
    photo = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp / "page" / f"photo{size}.png")
    jax_s = _median_seconds(lambda: stylizer(photo[None]), args.repeats)
    feeds = {"image": photo[None].astype(np.float32)}
    ort_s = _median_seconds(lambda: session.run(None, feeds), args.repeats)
    diff = np.abs(np.round(session.run(None, feeds)[0]) - stylizer(photo[None]).astype(float))
    agree.append(f"{size} px: max {diff.max():.0f}, mean {diff.mean():.4f}")
    rows.append([size, jax_s, ort_s])
  page = _page_seconds(tmp / "page", args.sizes, args.repeats)
  lines = ["| image | jaxstyle apply (forward) | onnxruntime CPU | onnxruntime / apply | "
           "page in Chromium (onnxruntime-web, wasm) | page / apply |",
           "|---|---|---|---|---|---|"]
  for size, jax_s, ort_s in rows:
    web_s = page.get(size)
    web = (f"{web_s:.3f} s | {web_s / jax_s:.2f}" if web_s is not None
           else "(no chromium) | ")
    lines.append(f"| {size} x {size} | {jax_s:.3f} s | {ort_s:.3f} s | {ort_s / jax_s:.2f} | "
                 f"{web} |")
  report = heading(
      "Exported network: onnxruntime and the page against jaxstyle apply", "bench_export.py",
      argv, "Johnson network, full width, random init; per image, median of "
      f"{args.repeats} after a warm-up", f"export (jaxstyle models export -o and --web): "
      f"{export_seconds:.1f} s",
      "onnxruntime's output rounded against apply's PNG values (0-255): " + "; ".join(agree),
      f"onnxruntime {ort.__version__}, threads: its default; the page: onnxruntime-web's "
      "WebAssembly build with 2 threads (cross-origin isolated), session.run only"
  ) + "\n".join(lines) + "\n"
  publish(report, append=not args.no_append)
  shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
  main()
