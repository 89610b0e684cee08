"""Lattices: texture made of thin bright lines square to each other (window frames, bricks,
tiles), which a streak detector takes for rain (not part of the reference method).

A lattice shows in the spectrum of the bright thin detail as a clear direction with lines
square to it (:func:`spectral_rotation`). Where it does, :func:`off_lattice_lines` takes
its lines out of a rain mask, pixel by pixel: those off the rain's direction
(:func:`line_orientation`), and, where the rain falls along them, those that run from one
rail to the next (:func:`rail_to_rail`). :mod:`rain2avoid.detect` uses them.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from .ldgp import _colour, _crop_offsets, _gray, _rotate

__all__ = ["MIN_CLARITY", "MAX_CROSS", "Spectrum", "spectral_rotation", "line_orientation", "off_lattice_lines",
           "rail_to_rail"]

MIN_CLARITY = 4.0       # a spectral peak this many times the median direction's is a clear direction ...
MAX_CROSS = 3.0         # ... and with lines this strong square to it (``Spectrum.cross``), a lattice


def _achromatic_tophat(image: np.ndarray, size: int = 7, saturated: int = 250, balance: float = 0.0) -> np.ndarray:
    """uint8 map of how far each pixel stands out as a thin bright detail in every colour channel.

    White top-hat (image minus its grey opening with a ``size`` x ``size``
    ellipse, so bright structures narrower than about ``size`` px) per channel,
    then the minimum over channels: rain adds about the same light to R, G and
    B, so a rain pixel is a bright detail in all of them, while coloured
    texture is not. Channels at ``saturated`` or above cannot show the
    increment (they are clipped) and are left out of the minimum, unless all
    channels of the pixel are. With ``balance`` > 0, pixels whose smallest
    channel top-hat is below ``balance`` times their largest (unclipped) one
    score 0: a coloured highlight (wood grain, a red stripe) is not white rain.
    """
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    top = cv2.subtract(image, cv2.morphologyEx(image, cv2.MORPH_OPEN, se))
    if top.ndim == 2:
        return top
    clipped = image >= saturated
    clipped &= ~clipped.all(axis=2, keepdims=True)
    largest = np.where(clipped, 0, top).max(axis=2)
    top[clipped] = 255
    low = top.min(axis=2)
    if balance > 0:
        low[low < balance * largest] = 0
    return low


def _angle_gap(a, b):
    """Smallest difference between orientations (degrees, period 180)."""
    return np.abs((np.asarray(a) - b + 90) % 180 - 90)


class Spectrum(NamedTuple):
    """The direction that dominates the bright thin detail's spectrum (:func:`spectral_rotation`).

    rotation: degrees, as :func:`rotation_for_angle` returns (0 = vertical lines).
    clarity: the energy of that direction over the median direction's.
    cross: the same ratio for the lines square to it (the most within 2 degrees of
        90 degrees off): a lattice (bricks, tiles, windows) has both, rain only one.
    other: the rotation of the clearest further direction: a peak of its own more than
        10 degrees from both of those, with a dip to at most half its height between it
        and each of them (rain falling across a lattice's lines); 0.0 when there is none.
    other_clarity: its energy over the median direction's (0.0: none).
    """

    rotation: float
    clarity: float
    cross: float
    other: float = 0.0
    other_clarity: float = 0.0

    @property
    def lattice(self) -> bool:
        """Whether it shows a lattice: a clear direction (``clarity`` at least
        :data:`MIN_CLARITY`) with lines square to it (``cross`` at least :data:`MAX_CROSS`)."""
        return self.lattice_at(MAX_CROSS)

    def lattice_at(self, min_cross: float) -> bool:
        """:attr:`lattice` with cross lines of at least ``min_cross`` times the median."""
        return self.clarity >= MIN_CLARITY and self.cross >= min_cross

    def gap_to_lines(self, angle):
        """Degrees from ``angle`` (a number or an array) to the nearer of its two line directions."""
        return np.minimum(_angle_gap(angle, self.rotation), _angle_gap(angle, self.rotation + 90))


def spectral_rotation(image: np.ndarray, tophat_size: int = 7, max_side: int = 512,
                      band: tuple[float, float] = (1 / 32, 1 / 4)) -> Spectrum:
    """Streak rotation from the power spectrum of the bright thin detail, and how clear it is.

    Dense fine rain rarely leaves separate segments for :func:`find_streaks`:
    streaks touch and cross. But many parallel thin lines concentrate the
    spectrum of the achromatic top-hat (:func:`_achromatic_tophat`) along the
    direction across them. The energy of a centred square crop (Hann window,
    at most ``max_side`` px), within ``band`` of the sampling frequency, is
    summed per orientation in 0.5-degree bins and smoothed; the peak gives the
    rotation (as :func:`estimate_rotation`), ``peak / median`` how clearly
    one direction dominates, and the same ratio 90 degrees off (within 2 degrees)
    whether lines cross it. Returns a :class:`Spectrum`.
    """
    top = _achromatic_tophat(_colour(np.asarray(image)), tophat_size, balance=0.5).astype(np.float32)
    h, w = top.shape
    n = min(h, w)
    top = top[(h - n) // 2:(h - n) // 2 + n, (w - n) // 2:(w - n) // 2 + n]
    if n > max_side:
        top, n = cv2.resize(top, (max_side, max_side), interpolation=cv2.INTER_AREA), max_side
    if n < 16 or not top.any():
        return Spectrum(0.0, 0.0, 0.0)
    window = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    power = np.abs(np.fft.fftshift(np.fft.fft2((top - top.mean()) * window))) ** 2
    yy, xx = np.mgrid[:n, :n] - n // 2
    radius = np.hypot(yy, xx)
    keep = (radius > n * band[0]) & (radius < n * band[1])
    bins = np.round((np.degrees(np.arctan2(yy[keep], xx[keep])) % 180) * 2).astype(int) % 360
    hist = np.bincount(bins, weights=power[keep], minlength=360)
    hist = np.convolve(np.r_[hist[-2:], hist, hist[:2]], np.ones(5) / 5, "valid")
    k = int(np.argmax(hist))
    median = max(float(np.median(hist)), 1e-12)
    square = hist[(k + 180 + np.arange(-4, 5)) % 360].max()   # 90 +- 2 degrees off, in 0.5-degree bins
    j = _separate_peak(hist, k)
    return Spectrum(_rotation_of_bin(k), float(hist[k] / median), float(square / median),
                    _rotation_of_bin(j) if j is not None else 0.0, float(hist[j] / median) if j is not None else 0.0)


def _rotation_of_bin(k: int) -> float:
    """The streak rotation of 0.5-degree frequency bin ``k``: streaks run across the frequency direction."""
    return float((k / 2 + 90) % 180 - 90)


def _separate_peak(hist: np.ndarray, k: int, gap: int = 20, near: int = 4, max_dip: float = 0.5) -> int | None:
    """The highest bin of ``hist`` (energy per 0.5-degree orientation bin, circular) that is a
    local maximum more than ``gap`` bins from bin ``k`` and from the bin square to it, and
    stands apart from both: on the way from it to either (up to ``near`` bins from it),
    the energy dips to at most ``max_dip`` times its own. None when there is none. A
    shoulder of the main peak does not dip; a second direction of lines does."""
    n = hist.size
    lines = np.array([k, (k + n // 2) % n])
    offset = np.abs((np.arange(n)[:, None] - lines + n // 2) % n - n // 2).min(axis=1)
    peaks = (hist >= np.roll(hist, 1)) & (hist >= np.roll(hist, -1)) & (offset > gap)
    for i in np.argsort(hist)[::-1]:
        if not peaks[i]:
            continue
        dips = []
        for step in (1, -1):
            j, low = i, hist[i]
            while offset[j % n] > near:
                j += step
                low = min(low, hist[j % n])
            dips.append(low)
        if max(dips) <= max_dip * hist[i]:
            return int(i)
    return None


def _along_lattice(rotation: float, spectrum: Spectrum, tolerance: float = 10.0,
                   min_cross: float = MAX_CROSS) -> bool:
    """Whether ``spectrum`` shows a lattice (a clear direction with lines square to it, at
    least ``min_cross`` times the median: bricks, tiles, windows; :attr:`Spectrum.lattice`
    with the default) and ``rotation`` runs within ``tolerance`` degrees of its lines
    (the mask's vertical opening keeps thin lines up to 10-15 degrees off the streaks)."""
    return spectrum.lattice_at(min_cross) and spectrum.gap_to_lines(rotation) <= tolerance


def line_orientation(image: np.ndarray, sigma: float = 2.0, tophat_size: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Direction and coherence of the thin bright lines around each pixel.

    The structure tensor of the achromatic top-hat (:func:`_achromatic_tophat`: bright
    detail narrower than ``tophat_size`` px in every channel), its gradient products
    smoothed by a Gaussian of ``sigma`` px. Returns two float32 (H, W) maps: the lean
    of the lines from vertical in degrees in [-90, 90] (positive = top to the right, as
    :func:`_shapes` and :func:`rotation_for_angle`), and the coherence
    ``(l1 - l2) / (l1 + l2)`` of the tensor's eigenvalues: near 1 where lines of one
    direction dominate, 0 on flat patches.
    """
    top = _achromatic_tophat(_colour(np.asarray(image)), tophat_size).astype(np.float32)
    gx = cv2.Sobel(top, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(top, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = (cv2.GaussianBlur(g, (0, 0), sigma) for g in (gx * gx, gy * gy, gx * gy))
    lean = np.degrees(0.5 * np.arctan2(2 * jxy, jxx - jyy))
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-6)
    return lean, coherence


def _shrink(image: np.ndarray, step: int) -> np.ndarray:
    """``image`` averaged over ``step`` x ``step`` blocks (the rows and columns past the last
    whole block are left out)."""
    if step == 1:
        return image
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    return cv2.resize(np.ascontiguousarray(image[:h, :w]), (w // step, h // step), interpolation=cv2.INTER_AREA)


def _grow(small: np.ndarray, shape: tuple[int, int], step: int) -> np.ndarray:
    """Each value of ``small`` repeated over its ``step`` x ``step`` block, edges extended to ``shape``."""
    if step == 1:
        return small
    big = np.repeat(np.repeat(small, step, axis=0), step, axis=1)
    return np.pad(big, ((0, shape[0] - big.shape[0]), (0, shape[1] - big.shape[1])), mode="edge")


def off_lattice_lines(image: np.ndarray, mask: np.ndarray, rotations: tuple[float, ...], spectrum: Spectrum,
                      max_tilt: float = 4.0, tolerance: float = 5.0, min_coherence: float = 0.3,
                      sigma: float = 2.0, work_side: int = 320) -> np.ndarray:
    """``mask`` without its pixels that lie on a lattice's lines rather than on rain.

    Where ``spectrum`` (:func:`spectral_rotation` of ``image``) shows a lattice (window
    frames, bricks: a clear direction and lines square to it), a mask pixel is dropped
    when the thin bright lines around it (:func:`line_orientation`, coherence above
    ``min_coherence``) run within ``tolerance`` degrees of the lattice's lines and more
    than ``max_tilt`` degrees off every rain direction in ``rotations``. This is
    :func:`keep_aligned` pixel by pixel: where streaks cross the frames, the mask's
    pieces merge with the frames and are too mixed to be judged whole. Rain within
    ``max_tilt`` degrees of the frames cannot be told apart this way; where the main
    rain direction (``rotations[0]``) runs within ``tolerance`` degrees of the lattice's
    lines, the lines that run from one rail to the next (:func:`rail_to_rail`, and
    1 px around them) are dropped instead.

    Where a photo's shorter side holds ``k`` >= 2 times ``work_side`` px, the lines from
    rail to rail are also looked for on a copy averaged over ``k`` x ``k`` blocks, the size
    their thresholds were set for, and spread back over the blocks (the 1 px around them
    becomes ``k`` px). Frames scale with the photo: at 12 MP they are 10-30 px wide, and
    where a wide mullion meets a wide rail the two stand too tall for the rail test over
    more rows than ``rail_to_rail`` reaches. The pixel rule stays at full size (on the
    copy it costs rain and catches no more frames). Returns a new uint8 mask (the same
    one when there is no lattice).
    """
    if work_side < 1:
        raise ValueError(f"work_side must be >= 1, got {work_side}")
    if not spectrum.lattice or not mask.any():
        return mask
    image = _colour(np.asarray(image))
    lean, coherence = line_orientation(image, sigma)
    along = spectrum.gap_to_lines(lean) <= tolerance
    off = np.min([_angle_gap(lean, r) for r in rotations], axis=0) > max_tilt
    out = mask.copy()
    out[along & off & (coherence > min_coherence)] = 0
    along_rain = next((line for line in (spectrum.rotation, spectrum.rotation + 90)
                       if _angle_gap(line, rotations[0]) <= tolerance), None)
    if along_rain is not None:
        for step in sorted({1, max(1, min(mask.shape) // work_side)}):
            runs = rail_to_rail(_shrink(image, step), (along_rain + 90) % 180 - 90).astype(np.uint8)
            out[cv2.dilate(_grow(runs, mask.shape, step), np.ones((2 * step + 1,) * 2, np.uint8)) > 0] = 0
    return out


def rail_to_rail(image: np.ndarray, rotation: float, ridge_height: int = 2, rail_height: int = 10,
                 width: int = 7, rail_length: int = 9, reach: int = 3, min_length: int = 10) -> np.ndarray:
    """bool (H, W) map of the thin bright lines along ``rotation`` that run from one bright
    line square to them to another: a window's mullions, from its top rail to its bottom one.

    In the image rotated so that those lines are vertical (as LDGP rotates it), a line
    pixel stands more than ``ridge_height`` grey levels above the opening of its row with
    a 1 x ``width`` element, as in the mask's ridge test; a rail pixel stands more than
    ``rail_height`` above the opening of its column with a ``width`` x 1 element, on a
    horizontal run at least ``rail_length`` px long. A vertical run of line pixels at
    least ``min_length`` px long is kept when the pixels just above and just below it lie
    within ``reach`` rows and one column of a rail (where a mullion meets a rail the two
    stand too tall for the rail test: the middle column of a mullion 3 px or more wide is
    left to the 1 px that :func:`off_lattice_lines` adds around the runs). Rain that
    falls along the frames seldom starts and ends on them: it crosses them, or ends on
    the wall or on a pane.
    """
    h, w = image.shape[:2]
    off_r, off_c = _crop_offsets(h, w, rotation)
    grey = _gray(_rotate(_colour(np.asarray(image)), rotation))
    grey16 = grey.astype(np.int16)
    lines = (grey16 - cv2.morphologyEx(grey, cv2.MORPH_OPEN, np.ones((1, width), np.uint8))) > ridge_height
    across = grey16 - cv2.morphologyEx(grey, cv2.MORPH_OPEN, np.ones((width, 1), np.uint8))
    rails = cv2.morphologyEx((across > rail_height).astype(np.uint8), cv2.MORPH_OPEN,
                             np.ones((1, rail_length), np.uint8)) > 0
    rails &= ~lines
    near = cv2.dilate(rails.astype(np.uint8), np.ones((2 * reach + 1, 3), np.uint8)) > 0
    rows = grey.shape[0]
    step = np.diff(np.pad(lines, ((1, 1), (0, 0))).astype(np.int8), axis=0).T   # (columns, rows + 1)
    col, top = np.nonzero(step == 1)            # each run: its column, first row ...
    _, end = np.nonzero(step == -1)             # ... and the row after its last
    keep = ((end - top >= min_length) & near[np.clip(top - 1, 0, rows - 1), col]
            & near[np.clip(end, 0, rows - 1), col])
    paint = np.zeros((rows + 1, grey.shape[1]), np.int32)
    np.add.at(paint, (top[keep], col[keep]), 1)
    np.add.at(paint, (end[keep], col[keep]), -1)
    runs = (np.cumsum(paint, axis=0)[:rows] > 0).astype(np.uint8) * 255
    back = _rotate(runs, -rotation)[off_r:off_r + h, off_c:off_c + w]
    out = np.zeros((h, w), bool)
    out[:back.shape[0], :back.shape[1]] = back > 127
    return out
