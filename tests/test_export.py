"""ONNX export (jaxstyle.nets.export) against the network's JAX forward, and the web page
(jaxstyle.nets.web) driven by its query in a real browser, against onnxruntime."""

import shutil
import threading

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import jaxstyle
from jaxstyle import cli
from jaxstyle.nets import models
from jaxstyle.nets.adain import AdaINNet, AdaINSpec
from jaxstyle.nets.apply import stylizer_for
from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec

ort = pytest.importorskip("onnxruntime", reason="the export extra (in dev) installs onnxruntime")
pytest.importorskip("jax2onnx", reason="the export extra (in dev) installs jax2onnx")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _lively(net, last):
  """Random networks write near-black images; give the last layer a grey bias and a gain, so
  that the outputs span 0-255 and a wrong style, mix or alpha shows."""
  last.kernel[...] = last.kernel[...] * 40.0
  last.bias[...] = jnp.full(last.bias.shape, 128.0)
  return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """Each architecture as a model directory and its ONNX file, written by the CLI."""
  root = tmp_path_factory.mktemp("export")
  johnson = JohnsonNet(JohnsonSpec(0.25), rngs=nnx.Rngs(0))
  cin = JohnsonNet(JohnsonSpec(0.25, styles=3), rngs=nnx.Rngs(1))
  for net in (johnson, cin):
    _lively(net, net.deconv3.conv)
    # Distinct styles: each style's norm scales and shifts differ, so a mix matters.
    for _, module in nnx.iter_modules(net):
      if hasattr(module, "scale") and module.scale.shape[0] == 3:
        module.scale[...] = jnp.asarray([[0.5], [1.0], [2.0]]) * module.scale[...]
        module.bias[...] = jnp.asarray([[-0.5], [0.0], [0.5]]) + module.bias[...]
  weights = jaxstyle.random_weights(seed=0, width_scale=0.125)
  adain = AdaINNet(AdaINSpec(0.125), weights.params, rngs=nnx.Rngs(2))
  _lively(adain, adain.decoder.stages[-1][-1].conv)
  found = {}
  for name, net, styles in (("johnson", johnson, ["a"]), ("cin", cin, ["a", "b", "c"]),
                            ("adain", adain, [])):
    model = models.save_model(root / name, net, styles=styles, record={})
    onnx_file = root / f"{name}.onnx"
    assert cli.main(["models", "export", str(model), "-o", str(onnx_file)]) == 0
    found[name] = (model, onnx_file)
  return found


def _inputs(name, h, w, *, seed=0):
  rng = np.random.default_rng(seed)
  feeds = {"image": rng.uniform(0, 255, (2, h, w, 3)).astype(np.float32)}
  if name == "cin":
    feeds["mix"] = np.array([[1, 2, 0], [0, 0.5, 3]], np.float32)  # Normalised in the graph.
  if name == "adain":
    feeds["style"] = rng.uniform(0, 255, (1, 29, 41, 3)).astype(np.float32)
    feeds["alpha"] = np.array(0.7, np.float32)
  return feeds


def _reference(model, name, feeds):
  """What jaxstyle apply computes for the same inputs, before it rounds to uint8."""
  from jaxstyle.nets.apply import padded_forward
  net, _ = models.load_model(model)
  if name == "adain":
    stylizer = stylizer_for(net, style_images=[feeds["style"][0]], alpha=float(feeds["alpha"]))
    return np.asarray(padded_forward(lambda x: stylizer._forward(
        x, stylizer.mean_KxC, stylizer.std_KxC, jnp.ones((x.shape[0], 1)),
        jnp.float32(stylizer.alpha)), jnp.asarray(feeds["image"]), 8))
  outs = []
  for k in range(feeds["image"].shape[0]):
    mix = feeds["mix"][k].tolist() if name == "cin" else 0
    stylizer = stylizer_for(net, style=mix)
    style = stylizer.style_S[None]
    outs.append(np.asarray(padded_forward(lambda x: stylizer._forward(x, style),
                                          jnp.asarray(feeds["image"][k:k + 1]), 4)))
  return np.concatenate(outs)


def test_padding_to_a_multiple_is_numpys_reflection_at_the_end():
  from jaxstyle.nets.apply import pad_to_multiple
  x = np.random.default_rng(0).normal(size=(1, 13, 10, 2)).astype(np.float32)
  for multiple in (4, 8):
    for axis in (1, 2):
      widths = [(0, 0)] * 4
      widths[axis] = (0, -x.shape[axis] % multiple)
      np.testing.assert_array_equal(pad_to_multiple(jnp.asarray(x), multiple, axis),
                                    np.pad(x, widths, mode="reflect"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["johnson", "cin", "adain"])
def test_onnxruntime_runs_the_export_as_apply_does_at_any_size(exported, name):
  model, onnx_file = exported[name]
  session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
  assert [i.name for i in session.get_inputs()] == list(_inputs(name, 16, 16))
  # Sides that are multiples of nothing (padded inside the graph) and a multiple of 8.
  for h, w in ((37, 50), (64, 48)):
    feeds = _inputs(name, h, w, seed=h)
    got = session.run(None, feeds)[0]
    want = _reference(model, name, feeds)
    assert got.shape == (2, h, w, 3)
    assert want.std() > 20, "the test needs outputs that span the range"
    np.testing.assert_allclose(got / 255, want / 255, atol=1e-4, rtol=0)


def test_apply_writes_the_export_rounded(exported, tmp_path):
  """As users run both: jaxstyle apply's PNG is onnxruntime's output rounded."""
  model, onnx_file = exported["cin"]
  photo = np.random.default_rng(3).integers(0, 256, (45, 62, 3), dtype=np.uint8)
  Image.fromarray(photo).save(tmp_path / "a.png")
  out = tmp_path / "out"
  assert cli.main(["apply", str(model), str(tmp_path / "a.png"), "-o", str(out),
                   "--style-mix", "1", "2", "0"]) == 0
  applied = np.asarray(Image.open(out / "a.png")).astype(int)
  session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
  got = session.run(None, {"image": photo[None].astype(np.float32),
                           "mix": np.array([[1, 2, 0]], np.float32)})[0][0]
  diff = np.abs(np.round(got).astype(int) - applied)
  assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


def test_export_refuses_bad_requests_in_one_line(exported, tmp_path, capsys):
  model, _ = exported["johnson"]
  for argv, message in (([], "nothing to write"), (["-o", str(tmp_path / "m.txt")],
                                                   "expected a .onnx file name"),
                        (["--web", str(tmp_path / "page"), "--ort-web", str(tmp_path)],
                         "no onnxruntime-web files here")):
    assert cli.main(["models", "export", str(model), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
  assert not (tmp_path / "page").exists() and not (tmp_path / "m.txt").exists()


# ---- the page in a browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
  if CHROMIUM is None:
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
  playwright = pytest.importorskip("playwright.sync_api",
                                   reason="the dev extra installs playwright")
  with playwright.sync_playwright() as p:
    # Root (CI) cannot use Chromium's sandbox; the page is our own, served from this machine.
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def pages(exported, tmp_path_factory):
  """The CIN and AdaIN pages, with a photo and a style image beside them, being served."""
  from jaxstyle.nets import web
  root = tmp_path_factory.mktemp("pages")
  rng = np.random.default_rng(5)
  served = {}
  for name in ("cin", "adain"):
    model, _ = exported[name]
    assert cli.main(["models", "export", str(model), "--web", str(root / name)]) == 0
    Image.fromarray(rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)).save(
        root / name / "photo.png")
    Image.fromarray(rng.integers(0, 256, (40, 33, 3), dtype=np.uint8)).save(
        root / name / "style.png")
    httpd = web.server(root / name, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    served[name] = (root / name, f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
  yield served


def _drive(browser, url):
  """Opens ``url``, waits for the page to finish; its state and the output canvas's RGB."""
  page = browser.new_page()
  try:
    page.goto(url)
    page.wait_for_function("document.body.dataset.state === 'done' || "
                           "document.body.dataset.state.startsWith('error')", timeout=60_000)
    state = page.evaluate("document.body.dataset.state")
    shown = page.inner_text("#status")
    w, h, rgba = page.evaluate("""() => { const c = document.getElementById('output');
      if (!c.width) return [0, 0, []];
      return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width,
                                                                            c.height).data)]; }""")
    return state, shown, np.asarray(rgba, np.float64).reshape(h, w, 4)[..., :3]
  finally:
    page.close()


def _ort(folder, feeds):
  session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
  return np.round(session.run(None, feeds)[0][0])


@pytest.mark.slow
def test_the_page_stylizes_as_onnxruntime_does_driven_by_its_query(browser, pages):
  folder, url = pages["cin"]
  photo = np.asarray(Image.open(folder / "photo.png"), np.float32)[None]
  state, _, canvas = _drive(browser, url + "?photo=photo.png&mix=1,2,0")
  assert state == "done"
  assert canvas.shape == (37, 50, 3)
  want = _ort(folder, {"image": photo, "mix": np.array([[1, 2, 0]], np.float32)})
  reversed_mix = _ort(folder, {"image": photo, "mix": np.array([[0, 2, 1]], np.float32)})
  assert np.abs(canvas - want).mean() <= 1.0
  assert np.abs(canvas - reversed_mix).mean() > 5 * max(np.abs(canvas - want).mean(), 0.2)

  folder, url = pages["adain"]
  photo = np.asarray(Image.open(folder / "photo.png"), np.float32)[None]
  style = np.asarray(Image.open(folder / "style.png"), np.float32)[None]
  state, _, canvas = _drive(browser, url + "?photo=photo.png&style=style.png&alpha=0.3")
  assert state == "done"
  want = _ort(folder, {"image": photo, "style": style, "alpha": np.array(0.3, np.float32)})
  full = _ort(folder, {"image": photo, "style": style, "alpha": np.array(1.0, np.float32)})
  assert np.abs(canvas - want).mean() <= 1.0
  assert np.abs(canvas - full).mean() > 5 * max(np.abs(canvas - want).mean(), 0.2)


@pytest.mark.slow
def test_the_page_reports_bad_queries_on_the_page(browser, pages):
  _, url = pages["cin"]
  for query, message in (("photo=photo.png&mix=1,-1,0", "mix: expected non-negative numbers"),
                         ("photo=photo.png&mix=1,2", "mix: expected 3 weights"),
                         ("photo=missing.png", "cannot load the image missing.png")):
    state, shown, _ = _drive(browser, f"{url}?{query}")
    assert state.startswith("error: ") and message in state, state
    assert message in shown
  _, url = pages["adain"]
  state, _, _ = _drive(browser, f"{url}?photo=photo.png&style=style.png&alpha=2")
  assert state.startswith("error: alpha: expected a number in [0, 1], got 2"), state


@pytest.mark.subprocess
def test_serve_sends_the_types_and_headers_the_page_needs(pages, tmp_path):
  """As users run it: jaxstyle serve DIR, fetched over HTTP, then Ctrl-C."""
  import signal
  import subprocess
  import sys
  import urllib.request
  folder, _ = pages["cin"]
  # Started with SIGINT ignored, as a background job of a script is (the child inherits it):
  # Ctrl-C must still stop it.
  previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:
    proc = subprocess.Popen([sys.executable, "-m", "jaxstyle.cli", "serve", str(folder),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
  finally:
    signal.signal(signal.SIGINT, previous)
  try:
    line = proc.stdout.readline()
    assert line.startswith(f"serving {folder} at http://127.0.0.1:"), line
    url = line.split(" at ")[1].split()[0]
    for path, kind in (("index.html", "text/html"), ("ort/ort-wasm-simd-threaded.wasm",
                                                     "application/wasm"),
                       ("ort/ort-wasm-simd-threaded.mjs", "text/javascript")):
      with urllib.request.urlopen(url + path, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith(kind), (path, reply.headers)
        assert reply.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert reply.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
  finally:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
  done = subprocess.run([sys.executable, "-m", "jaxstyle.cli", "serve", str(tmp_path)],
                        capture_output=True, text=True, timeout=60)
  assert done.returncode == 2 and "no index.html" in done.stderr
  assert len(done.stderr.strip().splitlines()) == 1, done.stderr
