"""Model directories: a network's params and the record of how it was made.

A model directory holds two files:

- ``model.safetensors``: every parameter, keyed by its path in the network
  with dots (``conv1.conv.kernel``, ``res.0.in1.scale``); kernels are HWIO,
  instance-norm scales and biases N_styles x C. safetensors (no pickle: a
  model file cannot run code) reads in any framework.
- ``model.json``: ``{"format": "jaxstyle-model", "version": 1, "architecture":
  "johnson" or "adain", "spec": JohnsonSpec or AdaINSpec fields, "styles": one
  label per style (none for AdaIN, whose style is an image given at apply time),
  "params_sha256": sha256 of model.safetensors, checked on every load, "versions": the
  jaxstyle, jax, jaxlib and Python that wrote it, "thumbnails": one small PNG per style
  under ``styles/`` (trained models), "record": how it was made}`` (the training config,
  objective that took effect, history and held-out evaluation, or the converted file and
  its sha256).
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


THUMBNAIL_SIDE = 128


def save_model(path, net: JohnsonNet | AdaINNet, *, styles: list[str], record: dict,
               thumbnails=()) -> Path:
  """Writes ``net`` to the model directory ``path`` (created), params first, JSON last.

  ``thumbnails``: one RGB image per style (the style images), written as
  ``styles/K_LABEL.png`` with a longest side of :data:`THUMBNAIL_SIDE`.
  """
  from safetensors.numpy import save_file

  from jaxstyle import images, provenance
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
  names = []
  for k, (label, rgb) in enumerate(zip(styles, thumbnails)):
    names.append(f"styles/{k}_{re.sub(r'[^A-Za-z0-9._-]', '_', label)}.png")
    (path / "styles").mkdir(exist_ok=True)
    images.save_image(path / names[-1],
                      images.fit(rgb, min(THUMBNAIL_SIDE, max(rgb.shape[:2])), min_side=1))
  meta = {"format": FORMAT, "version": VERSION, "architecture": architecture,
          "spec": net.spec.to_dict(), "styles": list(styles), "thumbnails": names,
          "params_sha256": sha256_file(path / PARAMS_FILE), "versions": provenance.versions(),
          "record": record}
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


def parameter_counts(net) -> dict[str, int]:
  """Scalars per part of ``net``: ``{"trained": N}``, and ``"frozen"`` (AdaIN's encoder)."""
  counts: dict[str, int] = {}
  for key, leaf in _flat(net).items():
    part = "frozen" if key.startswith("encoder.") else "trained"
    counts[part] = counts.get(part, 0) + int(np.prod(leaf.shape))
  return counts


def _objective_line(objective: dict) -> str:
  """A training objective (StyleConfig fields) in one line."""
  content = (f"content {' '.join(objective['content_layers'])} x{objective['content_weight']:g} "
             f"({objective['content_norm']})")
  style_kind = (f"{objective['style_loss']}, {objective['style_norm']}"
                if objective["style_loss"] == "gram" else objective["style_loss"])
  style = (f"style {' '.join(objective['style_layers'])} x{objective['style_weight']:g} "
           f"({style_kind})")
  return (f"{objective['network'].upper()} {objective['pooling']}-pool; {content}; {style}; "
          f"TV x{objective['tv_weight']:g}")


def summary(path, net, meta: dict) -> list[str]:
  """What ``jaxstyle models info`` prints: a model directory in a few lines."""
  spec, record = meta["spec"], meta["record"]
  counts = parameter_counts(net)
  params = f"{counts['trained'] / 1e6:.2f} M parameters" + (
      f" (+ {counts['frozen'] / 1e6:.2f} M in the frozen VGG19 encoder)" if "frozen" in counts
      else "")
  if meta["architecture"] == "adain":
    lines = [f"architecture: adain (VGG19 encoder to relu4_1 at width {spec['width']:g}, "
             f"{spec['convention']} preprocessing; mirrored decoder), {params}",
             "styles:       any (given with apply --style-image)"]
  else:
    kind = "conditional instance norm, " if spec["styles"] > 1 else ""
    lines = [f"architecture: johnson ({kind}width {spec['width']:g}, {spec['residual_blocks']} "
             f"residual blocks, {spec['upsample']} upsampling), {params}"]
    thumbs = meta.get("thumbnails") or []
    lines.append("styles:       " + ", ".join(
        f"{i}: {label}" + (f" ({Path(path) / thumbs[i]})" if i < len(thumbs) else "")
        for i, label in enumerate(meta["styles"])))
  if "converted_from" in record:
    lines.append(f"made:         converted from {record['converted_from']} "
                 f"({record['source_format']}, sha256 {record['source_sha256'][:16]}...)")
  else:
    train = record.get("train", {})
    steps = len(record.get("history", {}).get("total", []))
    lines.append(f"trained:      {steps} steps on {record.get('photos')} photos from "
                 f"{record.get('data')} (batch {train.get('batch')}, crop {train.get('crop')}, "
                 f"Adam {train.get('lr'):g})")
    if "objective" in record:
      lines.append(f"objective:    {_objective_line(record['objective'])}")
    held = record.get("held_out")
    if held:
      lines.append(f"held out:     objective {held['objective']:.4g} at step {held['step']}"
                   + (f", content kept {held['content_kept']:.2f}" if "content_kept" in held
                      else ""))
    weights = record.get("weights", {})
    if trained_on_random_features(meta):
      lines.append(f"VGG weights:  RANDOM features ({weights.get('source')}): trained on "
                   "untrained features, so not real style transfer")
    elif weights:
      lines.append(f"VGG weights:  {weights.get('source')} (sha256 {weights.get('sha256')})")
  versions = meta.get("versions") or {}
  lines.append(f"jaxstyle:     {versions.get('jaxstyle', 'unrecorded')} (jax "
               f"{versions.get('jax', '?')})")
  lines.append(f"params file:  {Path(path) / PARAMS_FILE}, sha256 {meta['params_sha256']} (ok)")
  return lines


def trained_on_random_features(meta: dict) -> bool:
  """Whether the model was trained against random (untrained) VGG features."""
  return bool(meta["record"].get("weights", {}).get("random"))


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
  from jaxstyle.vgg.pth import load_state_dict
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
