"""The clip commands: video (by optimisation or by a network) and video-metrics."""

from __future__ import annotations

from jaxstyle.cli.options import (NETWORK_OPTIONS, VIDEO_GROUPS, add_frame_selection,
                                  add_network_options, config_from_args, flag)
from jaxstyle.errors import JaxstyleError


def video_arguments(parser, base) -> None:
  parser.add_argument("input", metavar="IN",
                      help="a video file ffmpeg reads, or a folder of numbered frames")
  method = parser.add_mutually_exclusive_group(required=True)
  method.add_argument("--style", metavar="IMAGE", help="style image (optimisation)")
  method.add_argument("--model", metavar="MODEL_DIR", help="a trained network (jaxstyle train)")
  add_frame_selection(parser)
  parser.add_argument("--style-mix", type=float, nargs="+", default=None, metavar="W",
                      help="--model: weights of the model's styles (or of the --style-image "
                           "list for AdaIN)")
  # --conv is both methods': how the network's, or VGG's, convolutions run (a config field).
  add_network_options(parser, "--model: frames per forward pass (default: 4)", conv=False)
  parser.add_argument("--size", dest="frame_size", type=int, default=None,
                      help=f"longest side of the frames (default: {base.size} by optimisation, "
                           "the input's size by a model)")


def video_defaults(preset):
  """The video command's config defaults: the preset's (or StyleConfig's), with the temporal
  loss on."""
  from jaxstyle.config import StyleConfig
  from jaxstyle.video.stylize import DEFAULT_TEMPORAL_WEIGHT
  return (preset or StyleConfig()).replace(temporal_weight=DEFAULT_TEMPORAL_WEIGHT)


def video(args) -> int:
  from jaxstyle import images
  from jaxstyle.cli.networks import stylizer_of
  from jaxstyle.config import fields_in
  from jaxstyle.video import stylize as video

  # Each method has options the other would ignore: refuse them instead.
  # --conv is both's: how the network's, or VGG's, convolutions run.
  method, others = (("--model", ("preset",) + tuple(
      d for d in fields_in(VIDEO_GROUPS) if d != "conv")) if args.model else
                    ("--style", NETWORK_OPTIONS + ("style_mix",)))
  misplaced = [flag(d) for d in others if d in args.given]
  if misplaced:
    raise JaxstyleError(f"{', '.join(misplaced)}: not used by video {method} ("
                        + ("a trained network's options are its own; pixel optimisation takes "
                           "them with --style" if args.model else
                           "options of a trained network, for --model") + ")")
  config = config_from_args(args)
  stylizer = model_record = None
  if args.model is not None:
    stylizer, model, styles = stylizer_of(args, args.style_mix if args.style_mix is not None
                                          else 0)
    model_record = model | styles
  else:
    images.source_shape(args.style, what="style")  # A bad style image: before any frame.
    if args.frame_size is not None:
      config = config.replace(size=args.frame_size)
  summary = video.stylize_video(args.input, args.output, config=config, style=args.style,
                                stylizer=stylizer, model_record=model_record,
                                frames=args.frames, every=args.every, size=args.frame_size,
                                batch=args.batch, progress=not args.quiet)
  error = summary["warping_error"]
  print(f"video: {summary['frames']} frames -> {summary['output']} "
        f"({summary['seconds_per_frame']:.2f} s/frame, optical flow "
        f"{summary['flow_seconds_per_frame']:.3f} s/frame); warping error "
        + (f"{error:.6g} (on {summary['scored']})" if error is not None else "n/a (one frame)"))
  return 0


def video_metrics_arguments(parser, base) -> None:
  parser.add_argument("output", metavar="OUT", help="the stylized clip (file or folder)")
  parser.add_argument("input", metavar="IN", help="the clip it was made from")
  add_frame_selection(parser, "of the input, as given to jaxstyle video when it made OUT")


def video_metrics(args) -> int:
  from jaxstyle.video import stylize as video
  result = video.metrics(args.output, args.input, frames=args.frames, every=args.every)
  print(f"{args.output}: {result['frames']} frames, warping error {result['warping_error']:.6g} "
        f"(on {result['scored']})")
  return 0
