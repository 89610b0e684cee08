"""Video deraining that uses time: rain moves from frame to frame, the scene does not.

``derain_video(src, dst)`` reads a clip (mp4, mov, mkv, webm, avi; PyAV, the
``rain2avoid[video]`` extra), builds references for each frame from its aligned
neighbours (``temporal``), trains one network per clip and writes the derained
clip with its audio (``io``), holding only a few frames in memory.
"""

import importlib
from typing import TYPE_CHECKING

from .io import (VIDEO_EXTENSIONS, VideoInfo, VideoReadError, VideoWriteError, VideoWriter, check_output, is_video,
                 probe, read_frames, sniff_video, write_video)
from .temporal import TemporalReference, sliding_references, temporal_reference

if TYPE_CHECKING:
    from .pipeline import VIDEO_STEPS, VideoResult, derain_video, video_job

__all__ = ["derain_video", "video_job", "VideoResult", "VIDEO_STEPS", "VIDEO_EXTENSIONS", "VideoInfo", "VideoReadError",
           "VideoWriteError", "VideoWriter", "check_output", "is_video", "probe", "read_frames", "sniff_video",
           "write_video", "TemporalReference", "sliding_references", "temporal_reference"]

_PIPELINE = ("VIDEO_STEPS", "VideoResult", "derain_video", "video_job")


def __getattr__(name: str):
    """The names of ``pipeline``, imported on first use (PEP 562): it loads torch, which the
    command line's checks of video files (``io``) must not."""
    if name in _PIPELINE:
        return getattr(importlib.import_module(".pipeline", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
