"""Video: clips in and out, optical flow and warping, and stylizing a clip without flicker."""

from jaxstyle.video.flow import optical_flow, reliable, warp, warping_error
from jaxstyle.video.io import Clip, VideoError, read_clip
from jaxstyle.video.stylize import (ByNetwork, ByOptimisation, FrameStylizer, Previous, metrics,
                                    stylize_video)

__all__ = ["ByNetwork", "ByOptimisation", "Clip", "FrameStylizer", "Previous", "VideoError",
           "metrics", "optical_flow", "read_clip", "reliable", "stylize_video", "warp",
           "warping_error"]
