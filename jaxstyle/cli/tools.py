"""The commands around the runs: weights convert/download/info, presets, bench convs."""

from __future__ import annotations

from jaxstyle.errors import JaxstyleError

# ---- weights ---------------------------------------------------------------------------------


def weights_convert_arguments(parser, base) -> None:
  parser.add_argument("src", metavar="SRC", help="vgg19_weights_tf_dim_ordering_tf_kernels_"
                      "notop.h5 / vgg16_... (Keras) or vgg19-dcbb9e9d.pth / vgg16-397923af.pth "
                      "(torchvision)")
  parser.add_argument("dst", metavar="DST", help="output .h5 file, e.g. weights/vgg19.h5")


def weights_convert(args) -> int:
  from jaxstyle.vgg.convert import convert
  fmt = convert(args.src, args.dst)
  print(f"converted {args.src} ({fmt}) -> {args.dst}")
  return 0


def weights_download_arguments(parser, base) -> None:
  parser.add_argument("--network", default="vgg19", choices=("vgg19", "vgg16"),
                      help="which network (default: vgg19)")
  parser.add_argument("--dest", default=None, help="(default: weights/NETWORK.h5)")
  parser.add_argument("--url", default=None, help="override the download address")
  parser.add_argument("--timeout", type=float, default=10.0,
                      help="seconds to wait for the server (default: 10)")


def weights_download(args) -> int:
  from jaxstyle.vgg import convert
  dest = convert.download(args.dest, network=args.network, url=args.url, timeout=args.timeout)
  print(f"downloaded, verified (md5 {convert.KERAS_FILES[args.network].md5}) and converted "
        f"-> {dest}")
  return 0


def weights_info_arguments(parser, base) -> None:
  parser.add_argument("file", metavar="FILE", help="a jaxstyle weights .h5 file")


def weights_info(args) -> int:
  from jaxstyle.vgg import layer_names
  from jaxstyle.vgg.weights import load_weights, read_info

  info = read_info(args.file)
  loaded = load_weights(args.file)  # Full validation: a file that prints fine also loads.
  attrs = info["attrs"]
  print(f"file:        {args.file}")
  print(f"sha256:      {loaded.sha256}")
  print(f"format:      {attrs['format']} v{attrs.get('format_version')}")
  print(f"network:     {loaded.network.upper()}, width scale {attrs.get('width_scale', 1.0):g}")
  print(f"convention:  {attrs.get('convention')}")
  print(f"source:      {attrs.get('source_name')} (sha256 {attrs.get('source_sha256')})")
  print("layers:")
  for name in layer_names(loaded.network):
    shapes = info["layers"][name]
    print(f"  {name:<13} kernel {shapes['kernel']}  bias {shapes['bias']}")
  return 0


# ---- presets ---------------------------------------------------------------------------------


def presets_arguments(parser, base) -> None:
  parser.add_argument("name", metavar="NAME", nargs="?", default=None,
                      help="show this preset's source, notes and every setting")


def presets(args) -> int:
  import inspect

  from jaxstyle import presets
  if args.name is None:
    for name in presets.PRESETS:
      print(f"{name:<22} {presets.describe(name)}")
    return 0
  config = presets.get(args.name)
  print(f"{args.name}\n\n{inspect.getdoc(presets.PRESETS[args.name])}\n\nsettings:")
  for key, value in config.to_dict().items():
    print(f"  --{key.replace('_', '-'):<24} {value}")
  return 0


# ---- bench -----------------------------------------------------------------------------------


def bench_convs_arguments(parser, base) -> None:
  parser.add_argument("--size", type=int, default=512, help="apply: image side (default: 512)")
  parser.add_argument("--crop", type=int, default=256, help="training: crop side (default: 256)")
  parser.add_argument("--batch", type=int, default=4, help="training: batch (default: 4)")
  parser.add_argument("--width", type=float, default=1.0,
                      help="the networks' and VGG's channel multiplier (default: 1)")
  parser.add_argument("--refresh", action="store_true",
                      help="time every layer again, replacing the cached choices")


def bench_convs(args) -> int:
  from jaxstyle import conv
  from jaxstyle.nets.layers import network_shapes
  for option, value in (("--size", args.size), ("--crop", args.crop)):
    if value < 8 or value % 8:
      raise JaxstyleError(f"{option}: expected a multiple of 8 (the AdaIN encoder pools three "
                          f"times), got {value}")
  if args.batch < 1 or not args.width > 0:
    raise JaxstyleError(f"--batch/--width: expected positive values, got {args.batch} and "
                        f"{args.width}")
  cache = conv.ChoiceCache.default()
  shapes = network_shapes(size=args.size, crop=args.crop, batch=args.batch, width=args.width)
  rows = conv.measure_all(shapes, cache, refresh=args.refresh, log=conv.stderr_log)
  # VGG's Winograd sets: the default objective at --size, the perceptual loss at the crop.
  from jaxstyle import presets
  from jaxstyle.config import StyleConfig
  from jaxstyle.objective import measure_sets
  for run, config, side in (("stylize", StyleConfig(), args.size),
                            ("train", presets.perceptual_vgg16(), args.crop)):
    row = measure_sets(config, (side, side), cache, width_scale=args.width,
                       refresh=args.refresh, log=conv.stderr_log)
    rows.append({**row, "layer": f"{run}: {row['layer']}"})
  print(f"convolution choices ({cache.path or 'not cached: the cache is disabled'}); "
        "ms per call, best of 3")
  for row in rows:
    timings = ", ".join(f"{a} {s * 1e3:.1f}" for a, s in row["seconds"].items()) or "only one"
    print(f"{row['layer']:34} {row['shape']:38} -> {row['algorithm']:8} ({timings})")
  return 0


# ---- serve -----------------------------------------------------------------------------------


def serve_arguments(parser, base) -> None:
  parser.add_argument("directory", metavar="DIR", help="a page written by models export --web")
  parser.add_argument("--port", type=int, default=8000, help="(default: 8000)")
  parser.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default: 127.0.0.1, this machine only)")


def serve(args) -> int:
  import signal

  from jaxstyle.nets import web
  # Ctrl-C stops the server even where it was started with SIGINT ignored (a background job
  # of a script inherits that), which would leave no way but SIGKILL.
  signal.signal(signal.SIGINT, signal.default_int_handler)
  httpd = web.server(args.directory, host=args.host, port=args.port, verbose=True)
  host, port = httpd.server_address[:2]
  print(f"serving {args.directory} at http://{host}:{port}/ (Ctrl-C stops)", flush=True)
  try:
    httpd.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    httpd.server_close()
  return 0
