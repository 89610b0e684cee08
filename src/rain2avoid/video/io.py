"""Video files in and out, one frame at a time (PyAV, which bundles FFmpeg).

* The container is recognised from the file's first bytes, not its name
  (:func:`sniff_video`): MP4/MOV, Matroska/WebM and AVI.
* :func:`read_frames` yields upright RGB uint8 frames (a rotation flag is
  applied to the pixels) and raises one :class:`VideoReadError` for a file
  that is missing, not a video, damaged or truncated (fewer frames than the
  file announces) or whose frames change size.
* :func:`check_output` refuses, from the frame size alone, an output its format
  cannot hold (e.g. an odd size in ``.avi``): call it before any work.
* :class:`VideoWriter` keeps the frame rate and size, copies the source's audio
  (re-encoding it only where the output container cannot hold it), and writes a
  hidden temporary file next to the target that is renamed over it only when
  everything is written: a failure leaves no partial output.

Codecs by output suffix: ``.mkv`` FFV1 (lossless RGB), ``.mp4``/``.mov``/``.m4v``
H.264 (libx264, CRF 16), ``.webm`` VP9 (CRF 20), ``.avi`` MPEG-4 part 2 at
quantiser 2. Frames are 8-bit RGB; videos are written at a constant frame rate, with
FFmpeg's ``bitexact`` flag (the same frames give the same file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional, Union

import numpy as np

from ..files import ImageWriteError, locked_temporary, replaceable_mode

PathLike = Union[str, "os.PathLike[str]"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
"""Lower-case suffixes written (and listed in folders); reading goes by content."""

INSTALL_HINT = 'video needs PyAV: pip install "rain2avoid[video]"'

# Output suffix -> (FFmpeg muxer, video encoders to try in order, audio codecs the muxer takes, audio fallback)
_OUTPUTS = {
    ".mkv": ("matroska", ("ffv1",), None, "flac"),
    ".mp4": ("mp4", ("libx264", "h264", "mpeg4"), ("aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"), "aac"),
    ".m4v": ("mp4", ("libx264", "h264", "mpeg4"), ("aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"), "aac"),
    ".mov": ("mov", ("libx264", "h264", "mpeg4"), ("aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le",
                                                    "pcm_s24le", "pcm_f32le"), "aac"),
    ".webm": ("webm", ("libvpx-vp9", "libvpx"), ("opus", "vorbis"), "libopus"),
    ".avi": ("avi", ("mpeg4",), ("mp3", "ac3", "pcm_s16le", "pcm_u8"), "pcm_s16le"),
}


class VideoReadError(ValueError):
    """An input file cannot be used as a video: ``"cannot read <path>: <reason>"``."""

    def __init__(self, path: PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot read {path}: {reason}")


class VideoWriteError(OSError):
    """An output video cannot be written: ``"cannot write <path>: <reason>"``."""

    def __init__(self, path: PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot write {path}: {reason}")


def _output_format(path: Path) -> tuple:
    """``_OUTPUTS[suffix]`` of ``path``; :class:`VideoWriteError` for another suffix."""
    suffix = path.suffix.lower()
    if suffix not in _OUTPUTS:
        raise VideoWriteError(path, f"unsupported video format {suffix!r} (use one of {' '.join(VIDEO_EXTENSIONS)})")
    return _OUTPUTS[suffix]


def check_output(path: PathLike, width: int, height: int, codec: Optional[str] = None) -> str:
    """The encoder that :class:`VideoWriter` will write ``path`` with, for frames of ``width`` x ``height``.

    Raises :class:`VideoWriteError` when the output cannot be written: a suffix
    that is not a video format, no encoder for it in this FFmpeg build, or a
    size the encoder refuses (MPEG-4, the ``.avi`` codec: an odd width or
    height). The size is known from the input's header (:func:`probe`), so a
    job can call this before any work. ``codec``: the encoder asked for instead
    of the format's own.
    """
    av = require_av()
    path = Path(path)
    encoders = (codec,) if codec is not None else _output_format(path)[1]
    for name in encoders:
        try:
            av.Codec(name, "w")
        except Exception:  # encoder not in this FFmpeg build: try the next
            continue
        if name == "mpeg4" and (width % 2 or height % 2):
            raise VideoWriteError(path, f"{width}x{height}: MPEG-4 needs an even width and height; "
                                        f"write .mkv or .mp4 instead")
        return name
    raise VideoWriteError(path, f"no encoder for {path.suffix} here ({', '.join(encoders)})")


def require_av():
    """The ``av`` module, or an ImportError that says how to install it."""
    try:
        import av
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    av.logging.set_level(None)  # our errors say what went wrong; FFmpeg's log lines would repeat it
    return av


def sniff_video(path: PathLike) -> Optional[str]:
    """The container of ``path`` from its first bytes: "mp4", "mov", "mkv", "webm", "avi" or None.

    Needs no PyAV, so a caller can tell videos from images before the extra is installed.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska or WebM, told apart by the DocType
        return "webm" if b"webm" in head else "mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def is_video(path: PathLike) -> bool:
    """True when ``path`` is a file whose content is one of the supported video containers."""
    return Path(path).is_file() and sniff_video(path) is not None


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns from a video's header.

    frames: the frame count the file announces, else its duration times ``fps``
    (``announced`` False: an estimate, wrong for a variable frame rate), else its
    packets counted; fps: the average frame rate; rotation: degrees the pixels are
    turned to be upright (``width``/``height`` are those of the upright frames);
    audio: the audio codec's name, or None.
    """

    path: Path
    container: str
    codec: str
    width: int
    height: int
    fps: Fraction
    frames: int
    seconds: float
    audio: Optional[str]
    rotation: int = 0
    announced: bool = True


def probe(path: PathLike) -> VideoInfo:
    """Read a video's header (no frames are decoded); :class:`VideoReadError` if it is not one."""
    av = require_av()
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "no such file" if not path.exists() else "not a file")
    kind = sniff_video(path)
    if kind is None:
        raise VideoReadError(path, "not a video (mp4, mov, mkv, webm or avi)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not fps:
                raise VideoReadError(path, "no frame rate in the file")
            seconds = _stream_seconds(stream, container)
            frames = int(stream.frames or 0)
            announced = frames > 0
            if not frames and seconds:
                frames = int(round(seconds * float(fps)))
            if not frames:  # the header does not say: count the packets (no decoding)
                frames = sum(1 for packet in container.demux(stream) if packet.size)
                container.seek(0)
            audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
            width, height = stream.codec_context.width, stream.codec_context.height
            rotation = _rotation(container, stream)
    except VideoReadError:
        raise
    except Exception as e:  # PyAV's InvalidDataError, EOFError, ... for damaged files
        raise VideoReadError(path, f"damaged or truncated {kind} file ({_short(e)})") from None
    if rotation % 180:
        width, height = height, width
    return VideoInfo(path, kind, stream.codec_context.name, width, height, Fraction(fps), frames, seconds,
                     audio, rotation, announced)


def _stream_seconds(stream, container) -> float:
    """The video stream's duration in seconds: its own, its DURATION tag (Matroska), or 0."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:  # Matroska's tag is the stream's end time; its first frame may start later than 0
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        try:
            h, m, s = tag.split(":")
            return max(int(h) * 3600 + int(m) * 60 + float(s) - start, 0.0)
        except ValueError:
            pass
    if container.duration and len(container.streams) == 1:  # the container's duration is the video's
        return container.duration / 1_000_000
    return 0.0


def _rotation(container, stream) -> int:
    """Clockwise degrees (0, 90, 180, 270) the stored frames must turn to be upright."""
    for frame in container.decode(stream):
        return int(round(-(getattr(frame, "rotation", 0) or 0))) % 360
    return 0


def read_frames(path: PathLike, info: Optional[VideoInfo] = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video as upright uint8 RGB (H, W, 3) arrays, one at a time.

    Raises :class:`VideoReadError` (after the frames it could decode) when the
    file is damaged, holds fewer frames than it announces, or has a frame whose
    size differs from the first frame's (one size per clip).
    """
    av = require_av()
    info = info or probe(path)
    count, last = 0, None
    turns = {0: 0, 90: -1, 180: 2, 270: 1}.get(info.rotation, 0)
    try:
        with av.open(str(info.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if getattr(frame, "is_corrupt", False):
                    raise VideoReadError(info.path, f"frame {count + 1} is damaged")
                rgb = frame.to_ndarray(format="rgb24")
                rgb = np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
                if count == 0:
                    first = rgb.shape
                elif rgb.shape != first:
                    raise VideoReadError(info.path, f"frame {count + 1} is {rgb.shape[1]}x{rgb.shape[0]}, the first "
                                                    f"frames {first[1]}x{first[0]}: rain2avoid needs one frame size "
                                                    f"per clip")
                yield rgb
                count += 1
                last = frame.time if frame.time is not None else last
    except VideoReadError:
        raise
    except Exception as e:
        raise VideoReadError(info.path, f"damaged video: decoding stopped after {count} frame(s) "
                                        f"({_short(e)})") from None
    if count == 0:
        raise VideoReadError(info.path, "no frames could be decoded")
    # Containers round their durations; a frame or 2 % less is not a truncation. Without an announced
    # count, the frames' times against the duration: frames at a variable rate are no fewer than it says.
    if info.announced and info.frames and count < info.frames - max(1, int(0.02 * info.frames)):
        raise VideoReadError(info.path, f"truncated: {count} of {info.frames} frames could be decoded")
    end = (last or 0.0) + 2 / float(info.fps)   # the last frame's time, and room for its own duration
    if not info.announced and info.seconds and last is not None and end < 0.98 * info.seconds:
        raise VideoReadError(info.path, f"truncated: frames up to {last:.2f} s of {info.seconds:.2f} s could be "
                                        f"decoded")


class VideoWriter:
    """Write RGB uint8 frames to a video file, atomically, keeping a source's audio.

    >>> with VideoWriter("out.mkv", fps=info.fps, audio_from="in.mp4") as w:
    ...     for frame in frames:
    ...         w.write(frame)

    The target appears only when the ``with`` block ends without an error.
    ``notes`` lists what could not be kept as it was (e.g. audio re-encoded).
    """

    def __init__(self, path: PathLike, fps: Union[Fraction, float], audio_from: Optional[PathLike] = None,
                 codec: Optional[str] = None):
        self.av = require_av()
        self.path = Path(path)
        self.muxer, self.encoders, self.audio_ok, self.audio_fallback = _output_format(self.path)
        self.codec = codec
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.notes: List[str] = []
        self.frames = 0
        self._tmp: Optional[Path] = None
        self._lock: Optional[int] = None   # holds the temporary file's lock: a run that finds it knows it is live
        self._mode: Optional[int] = None   # the permissions of the file replaced, which the new one keeps
        self._out = self._video = None
        self._audio_in = self._audio_packets = self._audio_out = self._transcode = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, height: int, width: int) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VideoWriteError(self.path, f"cannot create folder {folder}: {e.strerror or e}") from None
        try:
            self._mode = replaceable_mode(self.path)
        except ImageWriteError as e:   # a read-only file
            raise VideoWriteError(self.path, e.reason) from None
        try:   # named as an image's, so that a later run removes it if this one is killed
            self._tmp, self._lock = locked_temporary(self.path)
            # FFmpeg's "bitexact": no random ID (Matroska's SegmentUID) nor version strings in the
            # container, so that identical runs write identical files
            self._out = self.av.open(str(self._tmp), "w", format=self.muxer, container_options={"fflags": "+bitexact"})
        except OSError as e:
            self.abort()
            raise VideoWriteError(self.path, e.strerror or str(e)) from None
        self._video = self._video_stream(height, width)
        if self.audio_from is not None:
            self._add_audio()

    def _video_stream(self, height: int, width: int):
        name = check_output(self.path, width, height, self.codec)
        stream = self._out.add_stream(name, rate=self.fps)
        stream.width, stream.height = width, height
        if name == "ffv1":
            stream.pix_fmt = "bgr0"  # lossless RGB
        else:
            stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"  # MPEG-4: even only
            if stream.pix_fmt == "yuv444p":
                self.notes.append(f"an odd frame size ({width}x{height}) is written in 4:4:4 colour, which many "
                                  f"players (browsers, phones) cannot play: write .mkv, or crop the clip to an "
                                  f"even size")
        if name == "libx264":
            stream.options = {"crf": "16", "preset": "medium"}
        elif name.startswith("libvpx"):
            stream.options = {"crf": "20", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
        elif name == "mpeg4":
            stream.options = {"flags": "+qscale", "global_quality": str(2 * 118)}  # -q:v 2
        wanted = self.codec or self.encoders[0]
        if name != wanted:
            self.notes.append(f"encoder {wanted} is not available; used {name}")
        return stream

    def _add_audio(self) -> None:
        """Copy the source's first audio stream; re-encode it where this container cannot hold it."""
        try:
            self._audio_in = self.av.open(str(self.audio_from))
        except Exception:
            return
        if not self._audio_in.streams.audio:
            self._audio_in.close()
            self._audio_in = None
            return
        source = self._audio_in.streams.audio[0]
        name = source.codec_context.name
        if self.audio_ok is None or name in self.audio_ok:
            add = getattr(self._out, "add_stream_from_template", None)
            self._audio_out = add(source) if add else self._out.add_stream(template=source)
        else:
            rate = source.codec_context.sample_rate or 48000
            if self.audio_fallback == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                rate = 48000
            self._audio_out = self._out.add_stream(self.audio_fallback, rate=rate)
            layout = source.codec_context.layout.name if source.codec_context.layout else "stereo"
            self._audio_out.layout = layout if source.codec_context.channels <= 2 else "stereo"
            fmt = self._audio_out.codec_context.codec.audio_formats[0].name
            self._transcode = self.av.AudioResampler(format=fmt, layout=self._audio_out.layout, rate=rate)
            self.notes.append(f"audio re-encoded from {name} to {self.audio_fallback}: "
                              f"{self.path.suffix} cannot hold {name}")
        self._audio_packets = self._audio_in.demux(source)

    def _mux_audio(self, until: Optional[float]) -> None:
        """Write the source's audio up to ``until`` seconds (None: all of it), interleaved with the video."""
        if self._audio_packets is None:
            return
        for packet in self._audio_packets:
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            if self._transcode is None:
                packet.stream = self._audio_out
                self._out.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None
                    for part in self._transcode.resample(frame):
                        self._out.mux(self._audio_out.encode(part))
            if until is not None and packet.pts is not None and packet.pts * packet.time_base > until:
                return
        if self._transcode is not None:
            for part in self._transcode.resample(None):
                self._out.mux(self._audio_out.encode(part))
            self._out.mux(self._audio_out.encode(None))
        self._audio_packets = None

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 RGB (H, W, 3) frame; every frame must have the first one's size."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB frame, got {frame.dtype} {frame.shape}")
        if self._out is None:
            self._open(*frame.shape[:2])
        elif (frame.shape[1], frame.shape[0]) != (self._video.width, self._video.height):
            raise ValueError(f"frame {self.frames + 1} is {frame.shape[1]}x{frame.shape[0]}, the video "
                             f"{self._video.width}x{self._video.height}")
        picture = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        picture.pts = self.frames
        picture.time_base = 1 / self.fps
        try:
            self._out.mux(self._video.encode(picture))
            self.frames += 1
            self._mux_audio(self.frames / self.fps)
        except OSError as e:
            raise VideoWriteError(self.path, e.strerror or str(e)) from None

    def close(self) -> None:
        """Finish the file and rename it over the target (nothing is written for no frames)."""
        if self._out is None:
            raise VideoWriteError(self.path, "no frames to write")
        try:
            self._out.mux(self._video.encode(None))
            self._mux_audio(None)
            self._out.close()
            self._out = None
            if self._audio_in is not None:  # closed before the rename: the source may be the target
                self._audio_in.close()
                self._audio_in = None
            if self._mode is not None:   # a file replaced keeps its permissions
                os.chmod(self._tmp, self._mode)
            os.replace(self._tmp, self.path)
            self._tmp = None
            self._unlock()
        except OSError as e:
            self.abort()
            raise VideoWriteError(self.path, e.strerror or str(e)) from None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop and remove the temporary file; the target is left as it was."""
        for handle in (self._out, self._audio_in):
            try:
                if handle is not None:
                    handle.close()
            except Exception:
                pass
        self._out = self._audio_in = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def write_video(path: PathLike, frames, fps: Union[Fraction, float] = 25,
                audio_from: Optional[PathLike] = None) -> List[str]:
    """Write an iterable of uint8 RGB frames to ``path`` (see :class:`VideoWriter`); returns its notes."""
    with VideoWriter(path, fps, audio_from=audio_from) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.notes


def list_videos(folder: PathLike) -> List[Path]:
    """The videos directly inside ``folder``, sorted by name, from one listing of it: the files
    named as videos (:data:`VIDEO_EXTENSIONS`, so that one that is not a video is reported, not
    ignored) and the others that are videos by content. Hidden files and files named as images
    (``rain2avoid.io.IMAGE_EXTENSIONS``) are skipped without being opened."""
    from ..io import IMAGE_EXTENSIONS
    return sorted(p for p in Path(folder).iterdir() if not p.name.startswith(".")
                  and p.suffix.lower() not in IMAGE_EXTENSIONS and p.is_file()
                  and (p.suffix.lower() in VIDEO_EXTENSIONS or sniff_video(p)))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
