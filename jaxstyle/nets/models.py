"""Model directories: a network's params and the record of how it was made.

A model directory holds two files:

- ``model.safetensors``: every parameter, keyed by its path in the network
  with dots (``conv1.conv.kernel``, ``res.0.in1.scale``); kernels are HWIO,
  instance-norm scales and biases N_styles x C. safetensors (no pickle: a
  model file cannot run code) reads in any framework.
- ``model.json``: ``{"format": "jaxstyle-model", "version": 1, "architecture":
  "johnson" or "adain", "spec": JohnsonSpec or AdaINSpec fields, "styles": one
  label per style (none for AdaIN, whose style is an image given at apply time),
  "params_sha256": sha256 of model.safetensors, "record": how it was made}``
  (a training config and history, or the converted file and its sha256).
  An AdaIN model holds its frozen VGG19 encoder too (``encoder.block1_conv1.kernel``):
  the decoder is only meaningful with the encoder it was trained against.

Both are written atomically, the JSON last: a directory without it is not a
model. :func:`convert_pth` imports the PyTorch examples' fast_neural_style
``TransformerNet`` state dicts (candy.pth, mosaic.pth, ...) through
jaxstyle's restricted unpickler.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jaxstyle.errors import JaxstyleError
from jaxstyle.files import atomic_path, sha256_file
from jaxstyle.nets.adain import AdaINNet, AdaINSpec
from jaxstyle.nets.johnson import JohnsonNet, JohnsonSpec

FORMAT, VERSION = "jaxstyle-model", 1
PARAMS_FILE, META_FILE = "model.safetensors", "model.json"
ARCHITECTURES = {"johnson": (JohnsonNet, JohnsonSpec), "adain": (AdaINNet, AdaINSpec)}


class ModelError(JaxstyleError):
  """A model directory or file that cannot be read, named with the problem."""


def _flat(net: nnx.Module) -> dict:
  """The network's weights (arrays, or shapes of an :func:`abstract` one) by dotted path."""
  leaves = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(net)))[0]
  return {".".join(str(k.key) for k in path): leaf for path, leaf in leaves}


def flat_params(net: nnx.Module) -> dict[str, np.ndarray]:
  """The network's weights (trained and frozen) as ``{"conv1.conv.kernel": array}``."""
  return {key: np.asarray(leaf) for key, leaf in _flat(net).items()}


def abstract(cls, spec) -> nnx.Module:
  """A network of ``cls(spec)`` whose weights are only shapes, to load into (no init to run)."""
  return nnx.eval_shape(lambda: cls(spec, rngs=nnx.Rngs(0)))


def set_flat_params(net: nnx.Module, flat: dict[str, np.ndarray], *, source) -> None:
  """Loads ``flat`` into ``net`` (concrete or :func:`abstract`); ModelError naming ``source``
  on a missing, extra or misshapen key."""
  expected = {key: tuple(leaf.shape) for key, leaf in _flat(net).items()}
  missing, extra = sorted(set(expected) - set(flat)), sorted(set(flat) - set(expected))
  if missing or extra:
    raise ModelError(f"{source}: parameters do not fit the recorded architecture (missing: "
                     f"{', '.join(missing[:4]) or 'none'}; unexpected: "
                     f"{', '.join(extra[:4]) or 'none'})")
  for key, want in expected.items():
    if flat[key].shape != want:
      raise ModelError(f"{source}: {key} has shape {flat[key].shape}, expected {want}")
  state = nnx.state(net)
  pure = nnx.to_pure_dict(state)
  for key, value in flat.items():
    *parents, last = [int(p) if p.isdigit() else p for p in key.split(".")]
    node = pure
    for p in parents:
      node = node[p]
    node[last] = jax.numpy.asarray(value, jax.numpy.float32)
  nnx.replace_by_pure_dict(state, pure)
  nnx.update(net, state)


def architecture_of(net: nnx.Module) -> str:
  """``"johnson"`` or ``"adain"``: the name model.json records for ``net``'s class."""
  for name, (cls, _) in ARCHITECTURES.items():
    if isinstance(net, cls):
      return name
  raise ModelError(f"expected a JohnsonNet or AdaINNet, got {type(net).__name__}")


def save_model(path, net: JohnsonNet | AdaINNet, *, styles: list[str], record: dict) -> Path:
  """Writes ``net`` to the model directory ``path`` (created), params first, JSON last."""
  from safetensors.numpy import save_file
  path = Path(path)
  if path.exists() and not path.is_dir():
    raise ModelError(f"{path}: exists and is not a directory")
  architecture = architecture_of(net)
  want = net.spec.styles if architecture == "johnson" else 0
  if len(styles) != want:
    raise ModelError(f"expected {want} style labels, got {len(styles)}")
  path.mkdir(parents=True, exist_ok=True)
  with atomic_path(path / PARAMS_FILE, suffix=".safetensors") as tmp:
    save_file(flat_params(net), str(tmp))
  meta = {"format": FORMAT, "version": VERSION, "architecture": architecture,
          "spec": net.spec.to_dict(), "styles": list(styles),
          "params_sha256": sha256_file(path / PARAMS_FILE), "record": record}
  with atomic_path(path / META_FILE, suffix=".json") as tmp:
    Path(tmp).write_text(json.dumps(meta, indent=1, sort_keys=True))
  return path


def read_meta(path) -> dict:
  """The model directory's ``model.json``, checked; ModelError naming the directory otherwise."""
  path = Path(path)
  meta_file = path / META_FILE
  if not path.is_dir():
    raise ModelError(f"{path}: no such model directory")
  if not meta_file.is_file():
    raise ModelError(f"{path}: not a jaxstyle model directory (no {META_FILE}; convert or "
                     "train one first)")
  try:
    meta = json.loads(meta_file.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ModelError(f"{meta_file}: unreadable ({e})") from None
  if meta.get("format") != FORMAT or meta.get("version") != VERSION:
    raise ModelError(f"{meta_file}: not a {FORMAT} file of version {VERSION}")
  if meta.get("architecture") not in ARCHITECTURES:
    raise ModelError(f"{meta_file}: unknown architecture {meta.get('architecture')!r} "
                     f"(expected one of {', '.join(ARCHITECTURES)})")
  return meta


def load_model(path) -> tuple[JohnsonNet | AdaINNet, dict]:
  """The network a model directory holds, and its ``model.json``."""
  from safetensors import SafetensorError
  from safetensors.numpy import load_file
  path = Path(path)
  meta = read_meta(path)
  params_file = path / PARAMS_FILE
  if not params_file.is_file():
    raise ModelError(f"{path}: {PARAMS_FILE} is missing")
  if sha256_file(params_file) != meta["params_sha256"]:
    raise ModelError(f"{params_file}: does not match the sha256 in {META_FILE} (changed or "
                     "damaged after it was written)")
  try:
    flat = load_file(str(params_file))
  except (SafetensorError, OSError, ValueError) as e:
    raise ModelError(f"{params_file}: unreadable ({e})") from None
  cls, spec_cls = ARCHITECTURES[meta["architecture"]]
  try:
    spec = spec_cls(**meta["spec"])
  except (TypeError, JaxstyleError) as e:
    raise ModelError(f"{path / META_FILE}: its spec does not describe a "
                     f"{meta['architecture']} network ({e})") from None
  net = abstract(cls, spec)
  set_flat_params(net, flat, source=params_file)
  return net, meta


# fast_neural_style's TransformerNet state dict key → our parameter path.
_TORCH_CONV = re.compile(r"^(conv[123]|deconv3|res(\d)\.conv[12]|deconv[12])\.conv2d\.(weight|bias)$")
_TORCH_NORM = re.compile(r"^(in[1-5]|res(\d)\.in[12])\.(weight|bias)$")
_TORCH_STALE = re.compile(r"(^|\.)in\d\.(running_mean|running_var|num_batches_tracked)$")


def _torch_key(key: str) -> tuple[str, str] | None:
  """Our dotted parameter path for one state-dict key and its kind, "conv" or "norm"."""
  def ours(module: str) -> str:
    match = re.match(r"^res(\d)\.(.*)$", module)
    return f"res.{int(match.group(1)) - 1}.{match.group(2)}" if match else module
  if m := _TORCH_CONV.match(key):
    module, part = m.group(1), m.group(3)
    conv = "conv.conv" if module in ("deconv1", "deconv2") else "conv"
    return f"{ours(module)}.{conv}.{'kernel' if part == 'weight' else 'bias'}", "conv"
  if m := _TORCH_NORM.match(key):
    return f"{ours(m.group(1))}.{'scale' if m.group(3) == 'weight' else 'bias'}", "norm"
  return None


def convert_pth(src, dst, *, label: str | None = None) -> Path:
  """Imports a fast_neural_style ``TransformerNet`` ``.pth`` into the model directory ``dst``.

  The width and the number of residual blocks are read off the tensors;
  the old files' ``in*.running_mean``/``running_var`` entries (unused by
  their own ``stylize``, which deletes them) are ignored; any other key is
  refused by name.
  """
  from jaxstyle.errors import WeightsError
  from jaxstyle.pth import load_state_dict
  src = Path(src)
  try:
    state = load_state_dict(src)
  except WeightsError as e:
    raise ModelError(str(e)) from None
  flat, unknown = {}, []
  for key, value in state.items():
    if _TORCH_STALE.search(key):
      continue
    mapped = _torch_key(key)
    if mapped is None:
      unknown.append(key)
      continue
    ours, kind = mapped
    value = np.asarray(value, np.float32)
    if ours.endswith("kernel"):
      value = value.transpose(2, 3, 1, 0)  # OIHW → HWIO.
    elif kind == "norm":
      value = value[None]  # One style: 1 x C.
    flat[ours] = value
  if unknown:
    raise ModelError(f"{src}: not a fast_neural_style TransformerNet (unexpected keys: "
                     f"{', '.join(sorted(unknown)[:4])})")
  if "conv1.conv.kernel" not in flat:
    raise ModelError(f"{src}: not a fast_neural_style TransformerNet (no conv1.conv2d.weight)")
  width = flat["conv1.conv.kernel"].shape[-1] / 32
  blocks = len({k.split(".")[1] for k in flat if k.startswith("res.")})
  net = abstract(JohnsonNet, JohnsonSpec(width=width, residual_blocks=blocks))
  set_flat_params(net, flat, source=src)
  record = {"converted_from": src.name, "source_sha256": sha256_file(src),
            "source_format": "PyTorch examples fast_neural_style TransformerNet"}
  return save_model(dst, net, styles=[label or src.stem], record=record)
