"""Rain moves, the scene does not: references for a frame from its aligned neighbours.

A pixel hidden by a streak in one frame is usually clean at the same scene
point in the neighbouring frames, and rain only adds light. So, for frame t:

1. **Align** each neighbour to it. Dense optical flow is unreliable in rain (the
   streaks move from frame to frame and pull the flow with them: OpenCV's DIS flow
   was 0.55-12.7 px off, median, on the project's synthetic clips), so the camera
   motion is taken as a global translation: phase correlation, then robust
   Lucas-Kanade, on images rain barely touches (the grey image with thin bright
   lines opened away, and the colour differences R - G and B - G, which white rain
   does not change). That was within 0.16 px on those clips, dark and heavy rain
   included (``benchmarks/video.py``). A neighbour whose correlation peak is weak
   (a cut) is left out.
2. **Reference**: per pixel, the mean of the two darkest aligned neighbours (by
   luma), since rain only brightens; it is robust to rain in all but one of the
   neighbours and to a single misaligned one.
3. **Rain** is where the frame is brighter than the reference by the same amount
   in R, G and B, by more than the frame's noise: only that achromatic excess is
   removed. Wide regions of excess (a moving object, a region the translation does
   not fit) are not rain: the reference is not trusted there (``confidence`` 0),
   nor where fewer than two neighbours see the pixel (frame borders after a pan).

:func:`temporal_reference` does one frame; :func:`sliding_references` streams a
whole clip with a window of ``2 * radius + 1`` frames in memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

__all__ = ["TemporalReference", "alignment_features", "estimate_shift", "shift_image", "temporal_reference",
           "sliding_references", "refine_shift", "MIN_RESPONSE"]

MIN_RESPONSE = 0.02
"""Correlation peaks below this are not an alignment: on the synthetic clips, aligned rainy
neighbours peaked at 0.03-0.73, pairs of frames of different photos at 0.007-0.010."""

_SHIFT_WIDTH = 640  # frames wider than this are aligned at this width (the shift is scaled back)

@dataclass
class TemporalReference:
    """What the neighbours say about one frame.

    image: float32 (H, W, 3) in [0, 1]: the frame with the rain the neighbours
        show removed (the frame itself where ``confidence`` is 0).
    rain: float32 (H, W) in [0, 1]: how much of the excess was taken as rain.
    confidence: float32 (H, W) in [0, 1]: 1 where the neighbours' view can be
        trusted, 0 where it cannot (too few neighbours, wide changes).
    neighbours: how many neighbours were aligned (and kept).
    """

    image: np.ndarray
    rain: np.ndarray
    confidence: np.ndarray
    neighbours: int

    @property
    def mask(self) -> np.ndarray:
        """uint8 (H, W) rain mask, 255 where the frame was found rainy."""
        return np.where((self.rain > 0.5) & (self.confidence > 0.5), 255, 0).astype(np.uint8)


def alignment_features(rgb: np.ndarray, size: int = 5) -> np.ndarray:
    """float32 (3, h, w) images of a frame that rain barely changes, to align frames on.

    The grey image with bright structures thinner than ``size`` px removed (a
    grey opening: the streaks), and the two colour differences R - G and B - G,
    which rain that adds the same light to R, G and B does not change at all.
    Frames wider than 640 px are reduced to that width.
    """
    rgb = np.ascontiguousarray(rgb)
    if rgb.shape[1] > _SHIFT_WIDTH:
        height = max(round(rgb.shape[0] * _SHIFT_WIDTH / rgb.shape[1]), 8)
        rgb = cv2.resize(rgb, (_SHIFT_WIDTH, height), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = cv2.morphologyEx(grey, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    x = rgb.astype(np.float32)
    return np.stack([grey.astype(np.float32), x[..., 0] - x[..., 1], x[..., 2] - x[..., 1]])


def _parabola(left: float, centre: float, right: float) -> float:
    """Sub-pixel offset of a peak from its value and its two neighbours."""
    curve = left - 2 * centre + right
    return 0.0 if curve >= 0 else float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5))


def estimate_shift(features: np.ndarray, other: np.ndarray) -> Tuple[float, float, float]:
    """``(dx, dy, response)``: ``other`` shows the point at (x, y) of ``features`` at (x + dx, y + dy).

    Phase correlation of :func:`alignment_features` (Hann window), the
    normalised cross-power spectra of the channels averaged with equal votes
    (channels without texture, e.g. colour in a grey video, do not vote).
    ``response`` is the height of the correlation peak: near 0, no shift fits.
    """
    h, w = features.shape[1:]
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    votes, total = 0, np.zeros((h, w // 2 + 1), np.complex128)
    for a, b in zip(features, other):
        if a.std() < 0.5 or b.std() < 0.5:
            continue
        cross = np.fft.rfft2((b - b.mean()) * window) * np.conj(np.fft.rfft2((a - a.mean()) * window))
        total += cross / (np.abs(cross) + 1e-6)
        votes += 1
    if votes == 0:
        return 0.0, 0.0, 0.0
    surface = np.fft.irfft2(total / votes, s=(h, w))
    iy, ix = np.unravel_index(int(np.argmax(surface)), surface.shape)
    dx = ix + _parabola(surface[iy, ix - 1], surface[iy, ix], surface[iy, (ix + 1) % w])
    dy = iy + _parabola(surface[iy - 1, ix], surface[iy, ix], surface[(iy + 1) % h, ix])
    dx, dy = (dx - w if dx > w / 2 else dx), (dy - h if dy > h / 2 else dy)
    return float(dx), float(dy), float(surface[iy, ix])


def refine_shift(features: np.ndarray, other: np.ndarray, dx: float, dy: float, iterations: int = 5,
                 margin: int = 8) -> Tuple[float, float]:
    """Sharpen a shift from :func:`estimate_shift` by robust Lucas-Kanade on all feature channels.

    Gauss-Newton steps on the translation; each channel's residuals get Tukey
    weights (4.685 robust standard deviations, so that rain left in either frame
    does not pull the estimate) and count by the inverse of their variance. Each
    step moves at most 2 px. Returns the refined ``(dx, dy)``.
    """
    h, w = features.shape[1:]
    for _ in range(iterations):
        x0, x1 = max(margin, int(np.ceil(-dx)) + 1), min(w - margin, int(np.floor(w - 1 - dx)) - 1)
        y0, y1 = max(margin, int(np.ceil(-dy)) + 1), min(h - margin, int(np.floor(h - 1 - dy)) - 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            break
        hessian, gradient = np.zeros((2, 2)), np.zeros(2)
        for a, b in zip(features, other):
            moved = _translate(b, dx, dy)[y0:y1, x0:x1]
            r = moved - a[y0:y1, x0:x1]
            gx = cv2.Sobel(moved, cv2.CV_32F, 1, 0, ksize=3) / 8
            gy = cv2.Sobel(moved, cv2.CV_32F, 0, 1, ksize=3) / 8
            scale = 1.4826 * float(np.median(np.abs(r))) + 0.5
            u = r / (4.685 * scale)
            wt = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0).astype(np.float32) / scale ** 2
            hessian += [[np.sum(wt * gx * gx), np.sum(wt * gx * gy)], [np.sum(wt * gx * gy), np.sum(wt * gy * gy)]]
            gradient += [np.sum(wt * gx * r), np.sum(wt * gy * r)]
        if np.linalg.cond(hessian) > 1e6:  # no texture to lock on to
            break
        step = np.clip(-np.linalg.solve(hessian, gradient), -2, 2)
        dx, dy = dx + float(step[0]), dy + float(step[1])
        if np.hypot(*step) < 0.02:
            break
    return dx, dy


def _translate(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` resampled (bicubic) at (x + dx, y + dy), float32, borders replicated."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image.astype(np.float32, copy=False), matrix, (image.shape[1], image.shape[0]),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def shift_image(image: np.ndarray, dx: float, dy: float) -> Tuple[np.ndarray, np.ndarray]:
    """``image`` resampled (bicubic) so that its point (x + dx, y + dy) lands on (x, y).

    Returns the float32 result and a bool (H, W) map of the pixels that came from inside ``image``.
    """
    h, w = image.shape[:2]
    xs, ys = np.arange(w) + dx, np.arange(h) + dy
    inside = ((ys >= 0) & (ys <= h - 1))[:, None] & ((xs >= 0) & (xs <= w - 1))[None, :]
    return _translate(image, dx, dy), inside


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def _wide_regions(binary: np.ndarray, wide: int) -> np.ndarray:
    """The parts of ``binary`` that are objects rather than streaks, grown a little.

    Cores: where discs of diameter ``wide`` fit, over at least 3 disc areas
    (crossing streaks make only small ones). Each core is grown within
    ``binary`` by up to ``wide`` px (thin parts of the same object, not whole
    webs of touching streaks) and then by a quarter of ``wide`` beyond it.
    """
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (wide, wide))
    binary = binary.astype(np.uint8)
    cores = cv2.morphologyEx(binary, cv2.MORPH_OPEN, disc)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cores, connectivity=8)
    big = np.zeros(n, bool)
    big[1:] = stats[1:, cv2.CC_STAT_AREA] >= 3 * int(disc.sum())
    if not big.any():
        return np.zeros(binary.shape, bool)
    grown = big[labels].astype(np.uint8)
    step = np.ones((3, 3), np.uint8)
    for _ in range(wide):
        grown = cv2.dilate(grown, step) & binary
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (wide // 2 * 2 + 1,) * 2)
    return cv2.dilate(grown, margin).astype(bool)


def temporal_reference(frame: np.ndarray, aligned: List[np.ndarray], inside: List[np.ndarray],
                       wide: int = 15) -> TemporalReference:
    """The temporal reference of ``frame`` (uint8 (H, W, 3)) from aligned neighbours.

    Args:
        aligned: the neighbours shifted onto ``frame`` (float (H, W, 3), 0-255 scale).
        inside: for each, a bool (H, W) map of the pixels it really covers.
        wide: excess regions holding discs of this diameter (over 3 disc areas) are not rain.
    """
    x = frame.astype(np.float32)
    h, w = x.shape[:2]
    if len(aligned) < 2:
        return TemporalReference(x / 255, np.zeros((h, w), np.float32), np.zeros((h, w), np.float32), len(aligned))
    stack = np.stack(aligned)                                     # (n, H, W, 3)
    luma = stack @ np.float32([0.299, 0.587, 0.114])
    luma[~np.stack(inside)] = np.inf
    two = np.argpartition(luma, 1, axis=0)[:2]                    # the two darkest neighbours per pixel
    ref = np.take_along_axis(stack, two[..., None], axis=0).mean(axis=0)
    seen = np.isfinite(np.take_along_axis(luma, two, axis=0)).all(axis=0)
    d = x - ref
    excess = np.median(d, axis=2)                                 # the achromatic part of the change
    centre = float(np.median(excess[seen])) if seen.any() else 0.0
    noise = 1.4826 * float(np.median(np.abs(excess[seen] - centre))) if seen.any() else 0.0
    lo = centre + max(2.0, 3.0 * noise)
    rain = _ramp(excess, lo, lo + max(4.0, 3.0 * noise)) * seen
    # Wide bright changes are objects that moved or a view the translation does not fit, not rain.
    trusted = seen & ~_wide_regions(rain > 0.5, wide)
    confidence = cv2.GaussianBlur(trusted.astype(np.float32), (0, 0), 1.5) * trusted
    rain *= trusted
    removed = np.minimum(np.maximum(d, 0), np.maximum(excess, 0)[..., None]) * rain[..., None]
    image = np.clip((x - removed) / 255, 0, 1).astype(np.float32)
    return TemporalReference(image, rain.astype(np.float32), confidence.astype(np.float32), len(aligned))


def _measure(features: np.ndarray, other: np.ndarray, full_width: int) -> Tuple[float, float, float]:
    """Phase correlation, refined; in full-frame pixels."""
    dx, dy, response = estimate_shift(features, other)
    if response >= MIN_RESPONSE:
        dx, dy = refine_shift(features, other, dx, dy)
    scale = full_width / features.shape[2]
    return dx * scale, dy * scale, response


def sliding_references(frames: Iterable[np.ndarray], radius: int = 3,
                       wanted: Optional[Callable[[int], bool]] = None
                       ) -> Iterator[Tuple[int, np.ndarray, Optional[TemporalReference]]]:
    """Stream ``(index, frame, reference)`` for every frame of a clip, in order.

    Each frame is compared with the ``2 * radius`` nearest frames (shifted at the
    ends of the clip so that there are as many); at most ``2 * radius + 1`` frames
    are held. ``wanted(index)`` False skips the reference (None is yielded), e.g.
    to decode a whole clip but build references for a sample of its frames.
    A frame whose shape differs from the first frame's is a ValueError.
    """
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    buffer: "OrderedDict[int, Tuple[np.ndarray, np.ndarray]]" = OrderedDict()  # index -> (frame, features)
    shifts: dict = {}
    stream = iter(frames)
    last: Optional[int] = None          # the last index, once the stream has ended
    loaded = -1
    t = 0
    while True:
        lo = max(0, t - radius) if last is None else max(0, min(t - radius, last - 2 * radius))
        need = lo + 2 * radius
        while last is None and loaded < need:
            try:
                frame = next(stream)
            except StopIteration:
                last = loaded
                break
            loaded += 1
            if loaded == 0:
                first = frame.shape
            elif frame.shape != first:
                raise ValueError(f"frame {loaded + 1} is {frame.shape[1]}x{frame.shape[0]}, the first frames "
                                 f"{first[1]}x{first[0]}: a clip needs one frame size")
            buffer[loaded] = (frame, alignment_features(frame))
        if last is not None:
            if t > last:
                return
            lo = max(0, min(t - radius, last - 2 * radius))
        hi = min(lo + 2 * radius, loaded)
        for i in [i for i in buffer if i < lo]:
            del buffer[i]
        for key in [k for k in shifts if k[0] < lo]:
            del shifts[key]
        frame, grey = buffer[t]
        ref = None
        if wanted is None or wanted(t):
            aligned, inside = [], []
            for n in range(lo, hi + 1):
                if n == t:
                    continue
                key = (min(t, n), max(t, n))
                if key not in shifts:
                    shifts[key] = _measure(buffer[key[0]][1], buffer[key[1]][1], frame.shape[1])
                dx, dy, response = shifts[key]
                if response < MIN_RESPONSE:
                    continue
                if n < t:  # the pair was measured from n to t
                    dx, dy = -dx, -dy
                moved, covered = shift_image(buffer[n][0], dx, dy)
                aligned.append(moved)
                inside.append(covered)
            ref = temporal_reference(frame, aligned, inside)
        yield t, frame, ref
        t += 1
