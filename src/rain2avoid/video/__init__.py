"""Video deraining that uses time: rain moves from frame to frame, the scene does not.

``derain_video(src, dst)`` reads a clip (mp4, mov, mkv, webm, avi; PyAV, the
``rain2avoid[video]`` extra), builds references for each frame from its aligned
neighbours (``temporal``), trains one network per clip and writes the derained
clip with its audio (``io``), holding only a few frames in memory.
"""

from .io import (VIDEO_EXTENSIONS, VideoInfo, VideoReadError, VideoWriteError, VideoWriter, check_output, is_video,
                 probe, read_frames, sniff_video, write_video)
from .pipeline import VIDEO_STEPS, VideoResult, derain_video, video_job
from .temporal import TemporalReference, sliding_references, temporal_reference

__all__ = ["derain_video", "video_job", "VideoResult", "VIDEO_STEPS", "VIDEO_EXTENSIONS", "VideoInfo", "VideoReadError",
           "VideoWriteError", "VideoWriter", "check_output", "is_video", "probe", "read_frames", "sniff_video",
           "write_video", "TemporalReference", "sliding_references", "temporal_reference"]
