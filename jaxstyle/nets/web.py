"""A static page that stylizes in the browser: the ONNX export run by onnxruntime-web.

:func:`write_page` writes a folder that works with no network: ``index.html``
(``page/index.html`` here), ``model.onnx``, ``jaxstyle.json`` (what the page
needs of the model: its inputs, styles, thumbnails, minimum side) and
onnxruntime-web's WebAssembly build under ``ort/``, copied from its npm
package (:func:`ort_web_dist`). :func:`serve` serves such a folder with the
headers that let onnxruntime-web use threads.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from jaxstyle.errors import ConfigError
from jaxstyle.files import atomic_path
from jaxstyle.nets import export

ORT_WEB_VERSION = "1.30.0"
"""The onnxruntime-web release the page is written for (its npm package)."""

ORT_WEB_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
"""What the page loads of the package's ``dist/``: the CPU (WebAssembly) build, 14 MB."""

PAGE = Path(__file__).with_name("page") / "index.html"


def _cache_dir() -> Path:
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "jaxstyle" / f"onnxruntime-web-{ORT_WEB_VERSION}"


def _dist_of(path: Path) -> Path | None:
  """The folder holding :data:`ORT_WEB_FILES` in ``path`` (a dist folder, or a package above)."""
  for candidate in (path, path / "dist", path / "package" / "dist",
                    path / "node_modules" / "onnxruntime-web" / "dist"):
    if all((candidate / name).is_file() for name in ORT_WEB_FILES):
      return candidate
  return None


def ort_web_dist(given: str | os.PathLike | None = None, *, log=print) -> Path:
  """onnxruntime-web's ``dist`` folder: ``given`` (its folder, its package, or a project with
  it in node_modules), else the cache, else fetched there by ``npm pack``."""
  if given is not None:
    dist = _dist_of(Path(given))
    if dist is None:
      raise ConfigError(f"{given}: no onnxruntime-web files here (expected {', '.join(ORT_WEB_FILES)}"
                        " in it or in its dist/); npm pack onnxruntime-web@"
                        f"{ORT_WEB_VERSION} and unpack it, or leave --ort-web out")
    return dist
  cache = _cache_dir()
  dist = _dist_of(cache)
  if dist is not None:
    return dist
  npm = shutil.which("npm")
  if npm is None:
    raise ConfigError(f"the page needs onnxruntime-web {ORT_WEB_VERSION}'s files: install npm "
                      "(apt-get install npm) so that jaxstyle can fetch them, or give --ort-web "
                      "DIR with the package unpacked")
  log(f"fetching onnxruntime-web {ORT_WEB_VERSION} with npm into {cache}")
  cache.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
    done = subprocess.run([npm, "pack", f"onnxruntime-web@{ORT_WEB_VERSION}", "--silent"],
                          cwd=tmp, capture_output=True, text=True)
    tarballs = list(Path(tmp).glob("*.tgz"))
    if done.returncode or not tarballs:
      raise ConfigError(f"npm pack onnxruntime-web@{ORT_WEB_VERSION} failed: "
                        f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}; give --ort-web "
                        "DIR with the package unpacked")
    unpacked = Path(tmp) / "unpacked"
    with tarfile.open(tarballs[0]) as tar:
      if not hasattr(tarfile, "data_filter"):  # Python before 3.11.4: no filter to refuse with.
        raise ConfigError("fetching onnxruntime-web needs Python 3.11.4 or newer (a safe "
                          "tar extraction); give --ort-web DIR with the package unpacked")
      tar.extractall(unpacked, filter="data")
    with contextlib.suppress(OSError):  # Another export filled it meanwhile: keep theirs.
      unpacked.rename(cache)
  return _dist_of(cache)


def page_config(net, meta: dict) -> dict:
  """``jaxstyle.json``: what the page needs of the model (inputs from :func:`export.signature`)."""
  from jaxstyle.nets.models import trained_on_random_features
  inputs = list(export.signature(net))
  styles = meta.get("styles", [])
  name = "AdaIN (any style image)" if "style" in inputs else ", ".join(styles)
  note = ("Trained on random VGG features, not ImageNet's: expect textures, not a painter's "
          "style." if trained_on_random_features(meta) else "")
  return {"model": "model.onnx", "inputs": inputs, "styles": styles,
          "thumbnails": [], "min_side": export.MIN_SIDE, "name": name, "note": note,
          "onnxruntime_web": ORT_WEB_VERSION}


def write_page(net, meta: dict, model_dir, out_dir, *, ort_web=None, log=print) -> Path:
  """Writes the page for ``net`` (loaded from ``model_dir``, with its ``meta``) into ``out_dir``.

  The model and the page's files are written first (each atomically),
  ``index.html`` last, so a page that opens is whole.
  """
  out = Path(out_dir)
  if out.exists() and not out.is_dir():
    raise ConfigError(f"{out}: exists and is not a directory")
  dist = ort_web_dist(ort_web, log=log)
  out.mkdir(parents=True, exist_ok=True)
  (out / "ort").mkdir(exist_ok=True)
  for name in ORT_WEB_FILES:
    with atomic_path(out / "ort" / name) as tmp:
      shutil.copyfile(dist / name, tmp)
  config = page_config(net, meta)
  export.export_onnx(net, out / config["model"])
  for k, thumb in enumerate(meta.get("thumbnails") or []):
    source = Path(model_dir) / thumb
    if source.is_file():
      (out / "styles").mkdir(exist_ok=True)
      with atomic_path(out / "styles" / source.name) as tmp:
        shutil.copyfile(source, tmp)
      config["thumbnails"].append(f"styles/{source.name}")
  with atomic_path(out / "jaxstyle.json", suffix=".json") as tmp:
    Path(tmp).write_text(json.dumps(config, indent=1))
  with atomic_path(out / "index.html", suffix=".html") as tmp:
    shutil.copyfile(PAGE, tmp)
  return out


class _Handler(http.server.SimpleHTTPRequestHandler):
  """Static files, with the headers that make the page cross-origin isolated (threads)."""

  extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                    ".mjs": "text/javascript", ".wasm": "application/wasm",
                    ".onnx": "application/octet-stream"}

  def end_headers(self):
    self.send_header("Cross-Origin-Opener-Policy", "same-origin")
    self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
    self.send_header("Cache-Control", "no-cache")
    super().end_headers()

  def log_message(self, format, *args):  # noqa: A002 (the base class's name)
    if self.server.verbose:
      super().log_message(format, *args)


def server(directory, *, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False):
  """An HTTP server for ``directory`` (not started): ``server(...).serve_forever()``."""
  directory = Path(directory)
  if not (directory / "index.html").is_file():
    raise ConfigError(f"{directory}: no index.html (write a page with jaxstyle models export "
                      "MODEL --web DIR)")
  handler = functools.partial(_Handler, directory=str(directory))
  try:
    httpd = http.server.ThreadingHTTPServer((host, port), handler)
  except OSError as e:
    raise ConfigError(f"cannot serve on {host}:{port} ({e.strerror}); choose another --port")
  httpd.verbose = verbose
  return httpd
