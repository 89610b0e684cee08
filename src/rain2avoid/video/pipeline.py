"""Derain a video: one network per clip, trained on temporal references, applied frame by frame.

Two passes over the file, each holding only a sliding window of frames:

1. **Read**: decode every frame (a damaged or truncated file stops here, before
   anything is written) and, for an evenly spaced sample of frames, build the
   training data: the temporal reference (``temporal.py``) where the neighbours
   can be trusted, the single-image reference (``pipeline.training_data``)
   elsewhere, blended by the temporal confidence.
2. **Derain**: train one network on the sample (``sdrl.train_folder``), then for
   each frame keep the temporal reference where it is trusted and the network's
   output (``Model.clean``) where it is not (frame borders entering a pan, wide
   changes, a clip of one frame). The temporal reference removes the rain each
   frame's neighbours show, and nothing else, so the output does not flicker.

A still image given to :func:`derain_video` goes through ``derain_detailed``,
exactly as ``rain2avoid derain photo.png``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
from tqdm.auto import tqdm

from ..io import IMAGE_EXTENSIONS, read_image, to_float_rgb, to_uint8, write_image
from ..pipeline import check_device, check_init, derain_detailed, training_data, with_init_backbone
from ..sdrl import Model, Settings, resolve_settings, train_folder
from .io import VIDEO_EXTENSIONS, PathLike, VideoInfo, VideoWriter, check_output, probe, read_frames, sniff_video
from .temporal import TemporalReference, sliding_references

__all__ = ["derain_video", "video_job", "VideoResult", "VIDEO_STEPS"]

VIDEO_STEPS = {"fast": 700, "high": 2000, "reference": 5000}
"""Training steps per clip for each preset (``steps=`` overrides)."""

SAMPLE_PIXELS = 12_000_000
"""At most this many pixels of sample frames are kept for training (8 frames of 1.5 MP)."""


@dataclass
class VideoResult:
    """What :func:`derain_video` did.

    frames: frames written; seconds: wall time; sample: indices of the frames
    trained on; trusted: mean temporal confidence over the clip (share of pixels
    taken from the neighbours rather than the network); notes: what could not be
    kept as it was (e.g. audio re-encoded); model: the network trained or given
    (None for a still image written as an image); info: the input video's header
    (None for a still image).
    """

    source: Path
    output: Path
    frames: int
    seconds: float
    sample: List[int] = field(default_factory=list)
    trusted: float = 0.0
    notes: List[str] = field(default_factory=list)
    model: Optional[Model] = None
    info: Optional[VideoInfo] = None


def _sample_indices(frames: int, sample: int, height: int, width: int) -> List[int]:
    """Up to ``sample`` evenly spaced frame indices, fewer when the frames are large."""
    n = max(1, min(sample, frames, SAMPLE_PIXELS // max(height * width, 1)))
    return sorted({int(round(i)) for i in np.linspace(0, frames - 1, n)})


def _training_pair(frame: np.ndarray, ref: TemporalReference, settings: Settings):
    """(input, targets, weights) for one sample frame: temporal where trusted, single-image elsewhere."""
    rgb = to_float_rgb(frame)
    conf = ref.confidence
    if conf.min() >= 1.0:
        return rgb, ref.image[None], np.ones(conf.shape, np.float32)
    spatial = training_data(rgb, settings)
    targets = conf[None, ..., None] * ref.image[None] + (1 - conf)[None, ..., None] * spatial.targets
    weights = conf + (1 - conf) * spatial.weights
    return rgb, targets.astype(np.float32), weights.astype(np.float32)


def _derain_frame(frame: np.ndarray, ref: TemporalReference, model: Model, fuse: bool = True) -> np.ndarray:
    """The temporal reference where trusted, the network's output elsewhere: uint8 (H, W, 3)."""
    conf = ref.confidence if fuse else np.zeros_like(ref.confidence)
    if conf.min() >= 1.0:
        return to_uint8(ref.image)
    rgb = to_float_rgb(frame)
    mask = ref.mask if ref.neighbours >= 2 else None  # None: the model computes the single-image mask
    net = model.clean(rgb, mask)
    return to_uint8(conf[..., None] * ref.image + (1 - conf[..., None]) * net)


def _bar(progress: bool, total: int, desc: str):
    return tqdm(total=total or None, desc=desc, unit="frame", disable=not progress or sys.stderr is None,
                leave=False)


def derain_video(src: PathLike, dst: PathLike, preset: str = "fast", model: Optional[Model] = None,
                 radius: int = 3, sample: int = 8, device: str = "cpu", progress: bool = False,
                 on_frame: Optional[Callable[[str, int, int], None]] = None, fuse: bool = True,
                 init: Optional[Model] = None, overwrite: bool = False, **options) -> VideoResult:
    """Remove rain from a video file, using its neighbouring frames; write ``dst``.

    Args:
        src: the rainy video (mp4, mov, mkv, webm or avi, told apart by content),
            or a still image (derained as ``rain2avoid.derain`` does).
        dst: output file; its suffix picks the format (``.mkv``: lossless FFV1;
            ``.mp4``/``.mov``: H.264; ``.webm``: VP9; ``.avi``: MPEG-4). Written
            atomically: on any error nothing appears there. Audio is copied. A
            format that cannot hold the frames (an odd size in ``.avi``) is
            refused before any work.
        preset: "fast", "high" or "reference": the network and training settings
            (``sdrl.PRESETS``), trained for ``VIDEO_STEPS[preset]`` steps.
        model: a trained model (``rain2avoid.load_model``) to apply instead of
            training one on the clip.
        radius: each frame is compared with its ``2 * radius`` nearest frames.
        sample: frames of the clip the network is trained on (evenly spaced).
        progress: show progress bars (frames, training steps).
        on_frame: called as ``on_frame(stage, done, total)`` after each frame of
            the "read" and "derain" passes (``total`` 0 when unknown).
        fuse: keep the temporal reference where it is trusted (default); False
            writes the network's output everywhere (to see what each part does).
        init: a trained model for the clip's network to start from (still images: as
            ``derain``'s ``init``); its backbone unless ``options`` name one.
        overwrite: allow ``dst`` to be ``src``: the input is read to its end before
            the output replaces it, and on an error it is left as it was.
        **options: :class:`rain2avoid.Settings` fields (``steps``, ``seed``, ``backbone``, ...).

    Returns:
        A :class:`VideoResult`. Raises ``VideoReadError`` for a damaged or
        truncated input and ``VideoWriteError`` when the output cannot be written.
    """
    start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    check_device(device)
    check_init(init)
    if model is not None and init is not None:
        raise ValueError("give a model to apply or one to start training from (init), not both")
    if src.is_file() and sniff_video(src) is None and dst.suffix.lower() in IMAGE_EXTENSIONS:
        return _derain_still(src, dst, preset, model, device, progress, start, init, **options)
    if init is not None:
        options = with_init_backbone(init, options)
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"output {dst}: unsupported video format {dst.suffix!r} "
                         f"(use one of {' '.join(VIDEO_EXTENSIONS)})")
    if not overwrite and dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"output {dst} is the input file; choose another output or pass overwrite=True")
    if sniff_video(src) is None and src.is_file():
        frames_in, fps, info = _still_as_clip(src), 25, None
        height, width = frames_in[0].shape[:2]
    else:
        info = probe(src)
        frames_in, fps = None, info.fps
        height, width = info.height, info.width
    check_output(dst, width, height)  # e.g. an odd size for .avi: refused before the training

    def frames():
        return iter(frames_in) if frames_in is not None else read_frames(src, info)

    settings = resolve_settings(preset, **{"steps": VIDEO_STEPS.get(preset), **options})
    sample_at: List[int] = []
    if model is None:
        model, sample_at = _train_on_clip(frames, info, radius, sample, settings, device, progress, on_frame, init)
    total = info.frames if info is not None else 1
    trusted, count = 0.0, 0
    bar = _bar(progress, total, "derain")
    with VideoWriter(dst, fps, audio_from=src if info is not None and info.audio else None) as writer:
        for _, frame, ref in sliding_references(frames(), radius):
            writer.write(_derain_frame(frame, ref, model, fuse))
            trusted += float(ref.confidence.mean())
            count += 1
            bar.update()
            if on_frame is not None:
                on_frame("derain", count, total)
    bar.close()
    return VideoResult(src, dst, count, time.perf_counter() - start, sample_at, trusted / max(count, 1),
                       writer.notes, model, info)


def _train_on_clip(frames, info: Optional[VideoInfo], radius: int, sample: int, settings: Settings,
                   device: str, progress: bool, on_frame, init: Optional[Model] = None) -> tuple:
    """Pass 1: decode the whole clip, build the training data of the sample, train one network."""
    total = info.frames if info is not None else 1
    height, width = (info.height, info.width) if info is not None else (0, 0)
    wanted = set(_sample_indices(total or 1, sample, height, width))
    inputs, targets, weights, at = [], [], [], []
    bar = _bar(progress, total, "read")
    count = 0
    for t, frame, ref in sliding_references(frames(), radius, wanted=lambda i: i in wanted):
        if ref is not None:
            x, y, w = _training_pair(frame, ref, settings)
            inputs.append(x)
            targets.append(y)
            weights.append(w)
            at.append(t)
        count += 1
        bar.update()
        if on_frame is not None:
            on_frame("read", count, total)
    bar.close()
    if not inputs:  # the file announced more frames than it has: train on its last frame
        for t, frame, ref in sliding_references(frames(), radius, wanted=lambda i: i == count - 1):
            if ref is not None:
                x, y, w = _training_pair(frame, ref, settings)
                inputs, targets, weights, at = [x], [y], [w], [t]
    model = train_folder(inputs, targets, settings, device=device, progress=progress, weights=weights, init=init)
    return model, at


def _still_as_clip(path: Path) -> List[np.ndarray]:
    """A still image as a clip of one uint8 RGB frame."""
    return [to_uint8(to_float_rgb(read_image(path)))]


def _derain_still(src: Path, dst: Path, preset: str, model: Optional[Model], device: str, progress: bool,
                  start: float, init: Optional[Model] = None, **options) -> VideoResult:
    """A still image to a still image: today's ``derain`` (or ``Model.apply``), unchanged."""
    image, meta = read_image(src, with_meta=True)
    if model is not None:
        write_image(dst, model.apply(image), meta=meta)
    else:
        write_image(dst, derain_detailed(image, preset, device=device, progress=progress, init=init,
                                         **options).image, meta=meta)
    return VideoResult(src, dst, 1, time.perf_counter() - start, [0], 0.0, model=model)


def video_job(src: PathLike, dst: PathLike, model: Optional[Model] = None, preset: str = "fast",
              max_pixels: Optional[int] = None, progress: bool = False, **options) -> str:
    """One file of ``rain2avoid derain``/``apply``: derain ``src`` into ``dst``; returns the line to print.

    Refuses frames of more than ``max_pixels`` pixels before any work.
    """
    src, dst = Path(src), Path(dst)
    if max_pixels is not None and sniff_video(src) is not None:
        info = probe(src)
        if info.width * info.height > max_pixels:
            raise ValueError(f"{src}: frames of {info.width}x{info.height} are larger than --max-pixels "
                             f"{max_pixels}")
    r = derain_video(src, dst, preset=preset, model=model, progress=progress, **options)
    notes = "".join(f"; {note}" for note in r.notes)
    return (f"{src.name} -> {dst} ({r.frames} frame{'s' * (r.frames != 1)}, {r.seconds:.1f} s, "
            f"{100 * r.trusted:.0f} % from neighbouring frames{notes})")
