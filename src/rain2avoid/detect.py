"""Rain detection beyond the reference LDGP: a finer, more robust streak angle and a
guarded mask that keeps texture out (not part of the reference method).

The reference LDGP mask (:mod:`rain2avoid.ldgp`) also flags rain-free texture
that is bright and runs roughly along the streaks (bridge pillars, animal
stripes, branches), and its 5-degree HOG vote can miss the streak angle by
~10 degrees. Replacing such texture with neighbouring colours destroys detail.
This module adds
  * a finer, more robust streak-angle estimate from the orientation of
    straight, thin, achromatic bright segments (:func:`estimate_rotation`),
  * a ridge (width) test in the rotated frame: a streak pixel must stand out
    against a horizontal grey opening of ``ridge_width`` px, so edges and
    wide bright bars do not count (:func:`guarded_rain_mask`),
  * a direction test on the mask's straight pieces: window frames and mullions
    a few degrees off the rain are left out (:func:`keep_aligned`), and, where the
    photo shows a lattice, its lines pixel by pixel (:mod:`rain2avoid.lattice`);
    where the direction found runs along a lattice's lines and the spectrum shows
    rain across them, that rain's direction (:func:`_across_lattice`);
  * no piece that runs edge to edge across the photo (:func:`keep_within_frame`).
The photometric guard on derained estimates is :mod:`rain2avoid.guard`.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from .lattice import (MAX_CROSS, MIN_CLARITY, Spectrum, _achromatic_tophat, _along_lattice, _angle_gap,
                      off_lattice_lines, spectral_rotation)
from .ldgp import (MaskResult, _check_image, _colour, _vertical_streaks, patch_angles, rain_mask,
                   rotation_for_angle, streak_angle)

__all__ = ["CONFIDENT", "MIN_AGREEMENT", "ACROSS_CLARITY", "ACROSS_SUPPORT", "Streaks", "find_streaks", "main_support",
           "support_along", "estimate_rotation",
           "keep_aligned", "keep_within_frame", "hog_vote", "guarded_rain_mask", "streak_mask", "compute_mask", "MASKS"]

_STEP = 0.5                                         # degrees per orientation bin
CONFIDENT = 8           # a direction with this much support (``Streaks.support``) is sure to be rain
MIN_AGREEMENT = 0.5     # share of HOG patches that must agree with the HOG vote for it to be used
FURTHER_CROSS = 2.0     # cross lines (``Spectrum.cross``) that make a lattice of a further direction's lines
ACROSS_CLARITY = 2.5    # a further spectral direction (``Spectrum.other``) this clear ...
ACROSS_SUPPORT = 2      # ... with this much support is rain across a lattice (``_across_lattice``)
_CELLS = 8                                          # support counts cells of an 8 x 8 grid per tile
_GRID = np.arange(int(round(180 / _STEP))) * _STEP - 90   # bin centres, degrees in [-90, 90)


def _segments(binary: np.ndarray, centres: bool = False) -> tuple[np.ndarray, ...]:
    """Orientation, length and width (and with ``centres`` the centre row and column) of
    each 8-connected component of ``binary`` (:func:`_shapes`)."""
    n, labels = cv2.connectedComponents(binary, connectivity=8)
    lean, length, width, cy, cx = _shapes(labels, n)
    return (lean, length, width, cy, cx) if centres else (lean, length, width)


def _shapes(labels: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Lean, length, width, centre row and centre column of components ``1..n-1`` of ``labels``.

    From the second moments of the component's pixels (each pixel a unit
    square): the major axis gives the orientation, as the lean of the axis
    from vertical in degrees in (-90, 90] (positive = top to the right, the
    convention of :func:`rotation_for_angle`); ``sqrt(12 * variance)`` along
    and across the axis is the length and width of a bar with those moments.
    """
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    count = np.maximum(np.bincount(lab, minlength=n), 1).astype(np.float64)
    cx, cy = np.bincount(lab, xs, n) / count, np.bincount(lab, ys, n) / count
    dx, dy = xs - cx[lab], ys - cy[lab]
    sxx = np.bincount(lab, dx * dx, n)[1:] / count[1:] + 1 / 12
    syy = np.bincount(lab, dy * dy, n)[1:] / count[1:] + 1 / 12
    sxy = np.bincount(lab, dx * dy, n)[1:] / count[1:]
    half_gap = np.sqrt(((sxx - syy) / 2) ** 2 + sxy ** 2)
    major = (sxx + syy) / 2 + half_gap
    minor = np.maximum((sxx + syy) / 2 - half_gap, 0)
    phi = 0.5 * np.arctan2(2 * sxy, sxx - syy)          # major axis from +x, y pointing down
    lean = np.degrees(np.arctan2(np.cos(phi), -np.sin(phi)))
    lean = (lean + 90) % 180 - 90
    return lean, np.sqrt(12 * major), np.sqrt(12 * minor), cy[1:], cx[1:]


def _sample_tiles(image: np.ndarray, max_pixels: int, tile: int = 256) -> list[np.ndarray]:
    """The image itself if it has at most ``max_pixels`` pixels, else a regular grid of
    ``tile`` x ``tile`` crops, evenly spread over it, with about ``max_pixels`` pixels in all.

    Crops keep the native resolution, so streaks keep the width and length
    in pixels that the mask (also computed at native resolution) sees.
    """
    h, w = image.shape[:2]
    if h * w <= max_pixels:
        return [image]
    th, tw = min(tile, h), min(tile, w)
    count = max(1, max_pixels // (th * tw))
    rows = min(-(-h // th), max(1, round(math.sqrt(count * h / w))))
    cols = min(-(-w // tw), max(1, count // rows))
    ys = np.linspace(0, h - th, rows).round().astype(int)
    xs = np.linspace(0, w - tw, cols).round().astype(int)
    return [image[y:y + th, x:x + tw] for y in ys for x in xs]


def _kept_segments(tops: list[np.ndarray], height: float, min_length: float, max_length: float,
                   elongation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orientation, length and cell (tile and ``_CELLS`` x ``_CELLS`` grid of it) of every
    straight segment of the top-hat maps ``tops`` above ``height``."""
    leans, lengths, cells = [], [], []
    for i, top in enumerate(tops):
        lean, length, width, cy, cx = _segments(((top > height) * 255).astype(np.uint8), centres=True)
        keep = (length >= min_length) & (length <= max_length) & (length >= elongation * width)
        leans.append(lean[keep])
        lengths.append(length[keep])
        row = (cy[keep] * _CELLS // top.shape[0]).astype(int)
        col = (cx[keep] * _CELLS // top.shape[1]).astype(int)
        cells.append((i * _CELLS + row) * _CELLS + col)
    return np.concatenate(leans), np.concatenate(lengths), np.concatenate(cells)


def _segment_votes(tiles: list[np.ndarray], tophat_size: int, heights: tuple[float, ...], min_length: float,
                   max_length: float, elongation: float, spread: float) -> tuple[np.ndarray, list[tuple]]:
    """Steps 1-3 of :func:`estimate_rotation` on a list of image tiles.

    Returns the smoothed votes over the orientation grid ``_GRID`` (0.5-degree
    bins, degrees in [-90, 90)) and, per height, the orientations and cells of
    the bright segments and of the dark ones, for :func:`_peak`'s support count.

    Rain only adds light: it makes bright lines and no dark ones. Texture that
    is made of lines (wood grain, fabric, a fence) shows dark lines as well as
    bright ones along the same direction, so the dark segments' votes are
    taken off the bright segments' votes, orientation by orientation.
    """
    radius = int(math.ceil(4 * spread / _STEP))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) * _STEP / spread) ** 2)
    bright = [_achromatic_tophat(t, tophat_size, balance=0.5) for t in tiles]
    dark = [_achromatic_tophat(255 - t, tophat_size, balance=0.5) for t in tiles]

    def smoothed(lean, length):
        hist = np.bincount(np.round((lean + 90) / _STEP).astype(int) % _GRID.size, length, _GRID.size)
        wrapped = np.concatenate([hist[-radius:], hist, hist[:radius]])   # orientations wrap at 180
        return np.convolve(wrapped, kernel, mode="valid")

    votes = np.zeros(_GRID.size)
    found = []
    for height in heights:
        lean, length, cells = _kept_segments(bright, height, min_length, max_length, elongation)
        if lean.size == 0:
            continue
        dlean, dlength, dcells = _kept_segments(dark, height, min_length, max_length, elongation)
        smooth = smoothed(lean, length)
        votes += np.maximum(smooth - smoothed(dlean, dlength), 0) / smooth.max()
        found.append((lean, cells, dlean, dcells))
    return votes, found


def _peak(votes: np.ndarray, found: list[tuple], search: float, spread: float,
          avoid: tuple[float, ...] = (), separation: float = 0.0) -> tuple[float, int]:
    """Step 4 of :func:`estimate_rotation`: the orientation with most votes within ``search``
    degrees of vertical and more than ``separation`` degrees from each of ``avoid``, and its
    support: the number of cells of the picture (``_CELLS`` x ``_CELLS`` per tile) that hold a
    bright segment within ``2 * spread`` degrees of it, less those that hold such a dark
    segment, at the height that has most. Rain falls all over a picture; line-like texture
    (a roof, a railing) lies in a few places, and has dark lines too.
    Orientations steeper than 45 degrees have their votes scaled down (by half at 75
    degrees). ``(0.0, 0)`` when there is none."""
    allowed = np.abs(_GRID) <= search
    for a in avoid:
        allowed &= _angle_gap(_GRID, a) > separation
    if not found or not votes[allowed].any():
        return 0.0, 0
    # Rain seldom falls at more than 45 degrees from vertical: votes there count less (half at 75).
    prior = 1.0 - np.clip((np.abs(_GRID) - 45.0) / 60.0, 0.0, 0.5)
    best = float(_GRID[allowed][np.argmax((votes * prior)[allowed])])
    return best, _support(found, best, spread)


def _support(found: list[tuple], rotation: float, spread: float) -> int:
    """The cells holding a bright segment within ``2 * spread`` degrees of ``rotation``, less
    those holding such a dark one, at the height of ``found`` (:func:`_segment_votes`) that
    has most."""
    return int(max(np.unique(cells[_angle_gap(lean, rotation) <= 2 * spread]).size
                   - np.unique(dcells[_angle_gap(dlean, rotation) <= 2 * spread]).size
                   for lean, cells, dlean, dcells in found))


def support_along(image: np.ndarray, rotation: float, copies: int = 2, tophat_size: int = 7,
                  heights: tuple[float, ...] = (10, 20, 40), min_length: float = 8.0, max_length: float = 80.0,
                  elongation: float = 3.0, spread: float = 1.5, max_pixels: int = 1 << 20) -> int:
    """The support (as :attr:`Streaks.support`) of one given direction: the most, over the
    image and its first ``copies - 1`` halved copies, of the cells that hold a bright
    straight segment along ``rotation`` less those that hold a dark one (0 when none does).
    The arguments are :func:`find_streaks`'s."""
    image = np.ascontiguousarray(_colour(np.asarray(image)))
    best = 0
    for copy in range(copies):
        h, w = image.shape[:2]
        if copy:
            if min(h, w) < 2:
                break
            image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        _, found = _segment_votes(_sample_tiles(image, max_pixels), tophat_size, heights, min_length,
                                  max_length, elongation, spread)
        if found:
            best = max(best, _support(found, rotation, spread))
    return best


class Streaks(NamedTuple):
    """One direction of rain streaks found by :func:`find_streaks`.

    rotation: degrees, as :func:`rotation_for_angle` returns (0 = vertical streaks).
    support: how many cells of the picture (8 x 8 per tile) hold a bright straight segment
        in that direction, less those holding a dark one (:func:`_peak`).
    scale: the copy it was seen on was ``scale`` times smaller than the image (1, 2, 4, ...).
    first: the direction with most votes on that copy (the others are further directions).
    """

    rotation: float
    support: int
    scale: int
    first: bool = True


def find_streaks(image: np.ndarray, search: float = 75.0, tophat_size: int = 7,
                 heights: tuple[float, ...] = (10, 20, 40), min_length: float = 8.0,
                 max_length: float = 80.0, elongation: float = 3.0, spread: float = 1.5,
                 min_segments: int = 5, max_directions: int = 2, separation: float = 10.0,
                 min_share: float = 0.3, max_gap: float = 45.0, max_pixels: int = 1 << 20,
                 min_side: int = 128) -> list[Streaks]:
    """Every direction of rain streaks in ``image``, at every scale where they show.

    The steps of :func:`estimate_rotation` run on the image and on copies
    halved again and again (area averaging; streaks wider than the top-hat
    become thin on a smaller copy) while the shorter side stays at least
    ``min_side`` px. On each copy the orientation with most votes is a
    direction if its support (cells with a bright segment in that direction, less
    those with a dark one) is at least ``min_segments``; up to
    ``max_directions - 1`` more orientations, each more than ``separation``
    degrees from those found and at most ``max_gap`` from the first, count
    too if their support is at least ``min_share`` times the first's (rain
    falling in two directions, or a near and a far layer). Returns them sorted by support, largest first;
    an empty list when no copy shows straight streaks.
    """
    image = np.ascontiguousarray(_colour(np.asarray(image)))
    found: list[Streaks] = []
    scale = 1
    while True:
        votes, leans = _segment_votes(_sample_tiles(image, max_pixels), tophat_size, heights, min_length,
                                      max_length, elongation, spread)
        first = None
        chosen: list[float] = []
        for _ in range(max_directions):
            angle, count = _peak(votes, leans, search, spread, tuple(chosen), separation)
            if count < min_segments or (first is not None and count < min_share * first):
                break
            if chosen and _angle_gap(angle, chosen[0]) > max_gap:
                break
            first = count if first is None else first
            chosen.append(angle)
            found.append(Streaks(angle, count, scale, len(chosen) == 1))
        h, w = image.shape[:2]
        if min(h, w) // 2 < min_side:
            break
        image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        scale *= 2
    return sorted(found, key=lambda s: (-s.support, s.scale))


def main_support(streaks: list[Streaks]) -> int:
    """How surely ``streaks`` (what :func:`find_streaks` returned) show one direction of rain:
    the support of the best-supported copy's main direction, the one :func:`estimate_rotation`
    trusts from ``confident`` (:data:`CONFIDENT`, 8) on; 0 when no straight streaks were found."""
    return max((s.support for s in streaks if s.first), default=0)


def estimate_rotation(image: np.ndarray, search: float = 75.0, tophat_size: int = 7,
                      heights: tuple[float, ...] = (10, 20, 40), min_length: float = 8.0,
                      max_length: float = 80.0, elongation: float = 3.0, spread: float = 1.5,
                      min_segments: int = 5, default: float | None = 0.0,
                      max_pixels: int = 1 << 20, min_side: int = 128, confident: int = CONFIDENT,
                      min_clarity: float = MIN_CLARITY, spectral_search: float = 60.0, max_cross: float = MAX_CROSS,
                      found: list[Streaks] | None = None, spectrum: Spectrum | None = None) -> float | None:
    """Rotation (degrees, as :func:`rotation_for_angle` returns) that makes streaks vertical.

    ``image`` is uint8 RGB (further channels ignored) or gray. Rain streaks
    are many short, straight, thin, achromatic bright segments that share one
    direction; texture is rarely all of these at once, and its line-like
    pieces point in many directions. So:

    1. mark pixels that stand out by more than ``h`` grey levels as a bright
       detail narrower than ``tophat_size`` px in every colour channel
       (:func:`_achromatic_tophat`), for each ``h`` in ``heights``;
    2. keep the connected components shaped like a straight segment: length
       in [``min_length``, ``max_length``] px and at least ``elongation``
       times their width (:func:`_segments`); blobs, curves, networks of
       edges and merged streaks fail;
    3. each kept segment votes for its orientation with its length, smoothed
       by a Gaussian of ``spread`` degrees; the same is done for dark segments
       (rain only adds light, line-like texture has dark lines too) and their
       votes are taken off; the votes of each height are scaled to a peak of 1
       and summed, so no single contrast level (faint rain, or strong texture
       edges) decides alone;
    4. the answer is the orientation with most votes within ``search``
       degrees of vertical (votes beyond 45 degrees count less); its support
       is the number of picture cells holding a bright segment within
       ``2 * spread`` degrees of it, less those holding such a dark one, at
       the height that has most (:func:`_peak`).

    Streaks wider than the top-hat sees become visible once the image is
    scaled down, so steps 1-4 run on the image and on copies halved again
    and again (area averaging) while the shorter side stays at least
    ``min_side`` px, and the scale with the largest support wins (ties: the
    finer scale).

    Dense fine rain leaves few separate segments. When the support is below
    ``confident``, the direction that dominates the spectrum of the bright
    detail (:func:`spectral_rotation`) is taken instead, if it is clear (peak
    at least ``min_clarity`` times the median) and within ``spectral_search``
    degrees of vertical, and no lines cross it (the direction square to it below
    ``max_cross`` times the median): a clear peak with lines across it comes from a
    lattice such as brickwork, whose joints would otherwise be taken for rain.
    Otherwise, with a support below ``min_segments`` (no visible straight
    streaks), ``default`` is returned. Images (or copies) with
    more than ``max_pixels`` pixels are searched on evenly spread 256 x 256
    crops (:func:`_sample_tiles`), so the cost is bounded.

    ``found``: what :func:`find_streaks` returned for this image with the same
    settings, if the caller has it (only each copy's ``first`` direction counts
    here); computed otherwise. ``spectrum``: what :func:`spectral_rotation`
    returned for it with the same ``tophat_size``, likewise.
    """
    if found is None:
        found = find_streaks(image, search, tophat_size, heights, min_length, max_length, elongation, spread,
                             min_segments, 1, max_pixels=max_pixels, min_side=min_side)
    found = [s for s in found if s.first]
    if found and found[0].support >= confident:
        return found[0].rotation
    spectrum = spectral_rotation(image, tophat_size) if spectrum is None else spectrum
    if (spectrum.clarity >= min_clarity and spectrum.cross < max_cross
            and abs(spectrum.rotation) <= min(search, spectral_search)):
        return spectrum.rotation
    return found[0].rotation if found else default


def keep_aligned(mask: np.ndarray, rotation: float | tuple[float, ...], max_tilt: float = 6.0,
                 min_length: float = 12.0, min_elongation: float = 3.0) -> np.ndarray:
    """``mask`` without its straight pieces that run in another direction than the rain.

    The vertical opening of the rotated mask keeps any bright line within
    about ``atan(width / kernel_size)`` of the streak direction: 10-15 degrees
    for a line 2-3 px wide. So the window frames, mullions and downpipes of a
    facade, standing a few degrees off slanted rain, pass it; taken for rain,
    they are flattened. The rain streaks of one photo share their direction.
    Each 8-connected piece of ``mask`` (uint8, > 127 = rain) at least
    ``min_length`` px long and ``min_elongation`` times longer than wide (so that
    its direction can be measured: second moments, :func:`_shapes`) is dropped
    when it leans more than ``max_tilt`` degrees off ``rotation`` (the rotation
    that makes the streaks vertical, :func:`estimate_rotation`), or off every one
    of several (rain in several directions). Short pieces and blobs stay. Lines
    within ``max_tilt`` of the rain cannot be told apart this way.

    On Rain100L dev 95 % of the pieces that are mostly rain lean less than
    4-6 degrees off the streak direction (the rest: streaks merged with
    texture). Returns a new uint8 mask.
    """
    mask = np.asarray(mask)
    n, labels = cv2.connectedComponents((mask > 127).astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.copy()
    lean, length, width, _, _ = _shapes(labels, n)
    tilt = np.min([_angle_gap(lean, r) for r in np.atleast_1d(rotation)], axis=0)
    drop = (length >= min_length) & (length >= min_elongation * width) & (tilt > max_tilt)
    out = mask.copy()
    out[np.r_[False, drop][labels]] = 0
    return out


def _chords(height: int, width: int, cx: np.ndarray, cy: np.ndarray, lean: np.ndarray) -> np.ndarray:
    """Length of the chord of the ``height`` x ``width`` frame along each line through
    (``cx``, ``cy``) that leans ``lean`` degrees from vertical (as :func:`_shapes` gives it)."""
    dx, dy = np.sin(np.radians(lean)), -np.cos(np.radians(lean))
    spans = []
    for d, c, size in ((dx, cx, width), (dy, cy, height)):
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = (0 - c) / d, (size - c) / d
        flat = np.abs(d) < 1e-9
        spans.append((np.where(flat, -np.inf, np.minimum(a, b)), np.where(flat, np.inf, np.maximum(a, b))))
    return np.maximum(np.minimum(spans[0][1], spans[1][1]) - np.maximum(spans[0][0], spans[1][0]), 0)


def keep_within_frame(mask: np.ndarray, min_share: float = 0.95, min_elongation: float = 3.0) -> np.ndarray:
    """``mask`` without its straight pieces that run across the whole photo, edge to edge.

    A rain streak is a drop's path during the exposure: it starts and ends within the
    frame. A thin bright line that runs from one edge of the photo to the other (a pole, a
    downpipe, the edge of a building) is structure, and flattened as rain it is lost. Each
    8-connected piece of ``mask`` (uint8, > 127 = rain) at least ``min_elongation`` times
    longer than wide is dropped when its length is at least ``min_share`` of the frame's
    chord along it (through its centre, in its direction, :func:`_shapes`) and that chord
    is at least half the photo's shorter side (so that short streaks across a corner
    stay). Rain merged into such a line goes with it. Returns a new uint8 mask.
    """
    mask = np.asarray(mask)
    h, w = mask.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype(np.uint8), connectivity=8)
    # No piece is longer (``_shapes``: sqrt(12 variance + 1)) than sqrt(3 d^2 + 1) for its box's
    # diagonal d, nor dropped unless at least min_share of half the shorter side: most masks hold none.
    diagonal = np.hypot(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    if not (np.sqrt(3 * diagonal ** 2 + 1) >= min_share * min(h, w) / 2).any():
        return mask.copy()
    lean, length, width, cy, cx = _shapes(labels, n)
    chord = _chords(h, w, cx, cy, lean)
    drop = (length >= min_elongation * width) & (chord >= min(h, w) / 2) & (length >= min_share * chord)
    out = mask.copy()
    out[np.r_[False, drop][labels]] = 0
    return out


def _aligned_streaks(image: np.ndarray, theta: float, kernel_size: int, ridge_width: int, ridge_height: int,
                     max_tilt: float | None, also: tuple[float, ...] = ()) -> np.ndarray:
    """LDGP's bright vertical runs after rotating by ``theta`` (with the ridge test), without the
    straight pieces more than ``max_tilt`` degrees off ``theta`` and off every rotation in
    ``also`` (:func:`keep_aligned`; None: all kept).

    A streak that crosses a frame merges with it into one piece, which is dropped
    whole; runs at least twice ``kernel_size`` long along the streaks are kept
    anyway (a line a few degrees off cannot stay under such a long opening).
    """
    mask = _vertical_streaks(image, theta, kernel_size, ridge_width, ridge_height)
    if max_tilt is None:
        return mask
    long_runs = _vertical_streaks(image, theta, 2 * kernel_size, ridge_width, ridge_height)
    return keep_aligned(mask, (theta, *also), max_tilt) | long_runs


def _copies_disagree(streaks: list[Streaks], confident: int, gap: float = 10.0) -> bool:
    """Whether a copy's main direction, found with ``confident`` support, lies more than
    ``gap`` degrees from the best one (frames on the full-size copy, rain on a smaller one)."""
    first = [s for s in streaks if s.first]
    return any(s.support >= confident and _angle_gap(s.rotation, first[0].rotation) > gap for s in first[1:])


def _further_direction(streaks: list[Streaks], confident: int) -> bool:
    """Whether ``streaks`` hold a direction other than a copy's main one with ``confident`` support."""
    return any(not s.first and s.support >= confident for s in streaks)


def _further_off_lattice(streaks: list[Streaks], spectrum: Spectrum) -> list[Streaks]:
    """``streaks`` without the further directions (not a copy's main one) that run along a
    lattice's lines (:func:`_along_lattice`): on a facade under slanted rain, the mullions
    are found as a second direction of rain, and the mask would keep them. A further
    direction is less sure to be rain than a main one, so here a lattice needs cross lines
    of only ``FURTHER_CROSS`` times the median (windows with one transom each: 2.6-2.9;
    a second layer of rain along the spectrum's peak: 0.7-1.1)."""
    return [s for s in streaks if s.first or not _along_lattice(s.rotation, spectrum, min_cross=FURTHER_CROSS)]


def _off_lattice(streaks: list[Streaks], spectrum: Spectrum, confident: int) -> list[Streaks]:
    """``streaks`` without the directions along a lattice's lines (:func:`_along_lattice`),
    when the best one runs along them and another one found with ``confident`` support
    does not: window frames can outvote faint rain, which then shows on a smaller copy."""
    first = [s for s in streaks if s.first]
    if not first or not _along_lattice(first[0].rotation, spectrum):
        return streaks
    if not any(s.support >= confident and not _along_lattice(s.rotation, spectrum) for s in first):
        return streaks
    return [s for s in streaks if not _along_lattice(s.rotation, spectrum)]


def _across_lattice(image: np.ndarray, rotation: float, spectrum: Spectrum, streaks: Sequence[Streaks] = (),
                    search: float = 75.0, min_support: int = ACROSS_SUPPORT) -> float | None:
    """The rotation of rain that falls across a lattice's lines, when ``rotation`` (the streak
    direction found) runs along them (:func:`_along_lattice`, within 10 degrees) and the
    rain more than 10 degrees off it; None otherwise.

    Dense rain over windows leaves few separate streaks, and the mullions' straight
    segments outvote it. It still shows in the spectrum as a further direction of its
    own (``Spectrum.other``, within ``search`` degrees of vertical, as far as
    :func:`find_streaks` looks: rain at 70 degrees over bricks, at least
    ``ACROSS_CLARITY`` times the median), with at least ``min_support`` cells of straight
    bright segments along it (:func:`support_along`). A lattice of windows also makes
    such a peak along the diagonal of its grid (two window pitches, 60 px across and 93 px
    down, make one at 33 degrees), but no segments run along it. Rain within 10 degrees of
    the direction found is that direction's rain: its segments place it more finely. For
    the same reason, where ``streaks`` (what :func:`find_streaks` returned) hold a further
    direction within 10 degrees of the spectrum's, the best supported one is returned.
    """
    if not (_along_lattice(rotation, spectrum) and spectrum.other_clarity >= ACROSS_CLARITY
            and abs(spectrum.other) <= search and _angle_gap(spectrum.other, rotation) > 10
            and support_along(image, spectrum.other) >= min_support):
        return None
    near = [s for s in streaks if _angle_gap(s.rotation, spectrum.other) <= 10]
    return max(near, key=lambda s: s.support).rotation if near else spectrum.other


def hog_vote(image: np.ndarray, patch_size: int = 80) -> tuple[int, float]:
    """The reference's HOG vote (:func:`streak_angle`) and how far its patches agree on it:
    the share of them whose dominant orientation is within one 5-degree bin of the vote
    (1.0 for an image smaller than one patch, where no patch disagrees).

    Rain too dense and faint to leave straight segments still turns most patches' gradients
    one way (0.67-1.0 on our synthetic dense faint rain). A photo without streaks mostly
    sends them many ways: of the pictures of our sets whose segments are too few, 36 of 48
    clean ones score 0.12-0.42, and so do all four rainy ones (a photo of drops on the
    glass, and three synthetic ones whose vote was 40-90 degrees off their rain).
    """
    angles = patch_angles(image, patch_size)
    angle = streak_angle(image, patch_size, angles)
    if not angles:
        return angle, 1.0
    gap = np.abs(np.asarray(angles) - angle)
    return angle, float((np.minimum(gap, 180 - gap) <= 5).mean())


def guarded_rain_mask(image: np.ndarray, kernel_size: int = 10, ridge_width: int = 7,
                      ridge_height: int = 2, rotation: float | None = None,
                      max_tilt: float | None = 6.0, confident: int = CONFIDENT,
                      streaks: list[Streaks] | None = None,
                      min_agreement: float = MIN_AGREEMENT) -> MaskResult:
    """Rain mask with a finer streak angle and a ridge (width) test.

    Same steps as :func:`rain_mask` (rotate so streaks are vertical, adaptive
    5x5 mean threshold, vertical opening of ``kernel_size`` px, rotate back),
    except that
      * the rotation comes from :func:`estimate_rotation` (orientation of
        straight, thin, achromatic bright segments, 0.5-degree steps, or the
        spectrum of the bright detail where such segments are few), or from
        the HOG vote of :func:`streak_angle` where neither finds streaks,
        unless ``rotation`` is given. The HOG vote is used only where at least
        ``min_agreement`` of its patches agree on it (:func:`hog_vote`); otherwise
        no rain is found and the mask is empty. Where the spectrum shows a lattice (see
        :func:`estimate_rotation`), directions found along its lines give way
        to one found off them with ``confident`` support (frames that outvote
        faint rain); where the direction runs along its lines and the spectrum shows
        rain across them (a peak of its own with segments along it,
        :func:`_across_lattice`: dense rain over mullions), that rain's direction is
        taken; otherwise, where the segments are too few to be sure (support
        under ``confident``) and the direction runs along its lines, the
        mask is empty: window frames and brick joints are all it would mark;
      * before the vertical opening, a pixel must also exceed the grey opening
        of its row with a 1 x ``ridge_width`` element by more than
        ``ridge_height`` grey levels: it is brighter than both horizontal
        neighbours within ``ridge_width`` px, i.e. part of a bright line
        narrower than ``ridge_width`` across the streak direction. Edges and
        wide bright structures (pillars, stripes) fail this test;
      * straight pieces leaning more than ``max_tilt`` degrees off the streak
        direction are dropped (:func:`keep_aligned`): window frames and
        mullions a few degrees off slanted rain. Runs twice ``kernel_size``
        long stay (rain that crosses a frame), and so do pieces along any other
        direction :func:`find_streaks` is confident of (support at least
        ``confident``: rain falling in several directions), when the rotation
        is estimated here;
      * where the image shows a lattice (:func:`spectral_rotation`), the pixels on its
        lines more than 4 degrees off the rain are dropped too (:func:`off_lattice_lines`):
        where streaks cross frames, the pieces merge and cannot be judged whole; where
        the rain runs along its lines, the lines from one rail to the next are.
        Directions other than a copy's main one that run along the lattice's lines
        are its mullions, not a second direction of rain;
      * straight pieces that run across the whole photo, edge to edge, are dropped
        (:func:`keep_within_frame`): rain streaks end within the frame, poles and
        downpipes do not.
    ``ridge_width=0`` disables the ridge test, ``max_tilt=None`` the direction and frame tests.
    ``streaks``: what :func:`find_streaks` returned for this image, if the caller
    has it; searched here otherwise.

    Returns ``MaskResult(mask, angle)`` with ``angle`` in the convention of
    :func:`streak_angle` (degrees in [0, 180), ``rotation_for_angle(angle)``
    gives back the rounded rotation).
    """
    image = np.asarray(image)
    _check_image(image, "guarded_rain_mask")
    if kernel_size < 1 or ridge_width < 0 or (max_tilt is not None and max_tilt < 0):
        raise ValueError("kernel_size must be >= 1, ridge_width >= 0 and max_tilt >= 0 (or None)")
    also: tuple[float, ...] = ()
    spectrum = None
    if rotation is None:
        streaks = find_streaks(image) if streaks is None else streaks
        weak = main_support(streaks) < confident
        # The spectrum (a second look at the whole photo: 1.3 s at 12 MP) is needed here where
        # the segments are few, where the copies disagree on the direction, or where a further
        # direction may be a lattice's lines; below, for the lattice test of any mask.
        spectrum = (spectral_rotation(image) if weak or _copies_disagree(streaks, confident)
                    or _further_direction(streaks, confident) else None)
        if spectrum is not None:
            streaks = _further_off_lattice(_off_lattice(streaks, spectrum, confident), spectrum)
        rotation = estimate_rotation(image, default=None, confident=confident, found=streaks, spectrum=spectrum)
        if max_tilt is not None:
            also = tuple(s.rotation for s in streaks if s.support >= confident)
        if rotation is None:
            # No straight streak-like segments at all: fall back on the reference HOG vote, where
            # most patches agree on it; a photo with no streaks sends their gradients many ways.
            angle, agreement = hog_vote(image)
            rotation = rotation_for_angle(angle)
            if agreement < min_agreement:
                return MaskResult(np.zeros(image.shape[:2], np.uint8), int(round(rotation)) % 180)
        spectrum = spectral_rotation(image) if spectrum is None else spectrum
        across = _across_lattice(image, rotation, spectrum, streaks)
        if across is not None:
            rotation, also = across, tuple(r for r in also if not _along_lattice(r, spectrum))
        elif weak and _along_lattice(rotation, spectrum):
            return MaskResult(np.zeros(image.shape[:2], np.uint8), int(round(rotation)) % 180)
    theta = float(rotation)
    mask = _aligned_streaks(image, theta, kernel_size, ridge_width, ridge_height, max_tilt, also)
    if max_tilt is not None and mask.any():
        spectrum = spectral_rotation(image) if spectrum is None else spectrum
        mask = keep_within_frame(off_lattice_lines(image, mask, (theta, *also), spectrum))
    angle = int(round(theta)) % 180
    return MaskResult(mask, angle)


MASKS = ("guarded", "ldgp", "streaks")


def compute_mask(rgb8: np.ndarray, kind: str = "guarded", streaks: list[Streaks] | None = None) -> MaskResult:
    """Rain mask of a uint8 RGB image: ``"ldgp"`` (the reference's, :func:`rain_mask`),
    ``"guarded"`` (:func:`guarded_rain_mask`) or ``"streaks"`` (:func:`streak_mask`: every
    direction and width found), as ``Settings.mask`` names them. ``streaks``: what
    :func:`find_streaks` returned for this image, if the caller has it."""
    if kind not in MASKS:
        raise ValueError(f"mask must be one of {', '.join(MASKS)}, got {kind!r}")
    if kind == "streaks":
        return streak_mask(rgb8, streaks)
    return guarded_rain_mask(rgb8, streaks=streaks) if kind == "guarded" else rain_mask(rgb8)


def streak_mask(image: np.ndarray, streaks: list[Streaks] | None = None, kernel_size: int = 10,
                ridge_width: int = 7, ridge_height: int = 2, overlap: float = 0.5,
                max_tilt: float = 6.0) -> MaskResult:
    """Rain mask for rain in several directions and of several widths.

    The union of :func:`guarded_rain_mask`'s masks for every direction in
    ``streaks`` (default: :func:`find_streaks`), each computed on the copy of
    the image it was seen on (wide streaks are thin on a smaller copy), without
    the pieces more than ``max_tilt`` degrees off that direction (:func:`keep_aligned`),
    and scaled back up. A connected piece of a coarser mask is left out when more
    than ``overlap`` of it is already covered (after dilating by the scale) by
    the finer masks: thin streaks are best masked at full size. With no
    streaks found at all this is :func:`guarded_rain_mask` (the HOG fallback).

    Returns ``MaskResult(mask, angle)``, ``angle`` that of the best-supported
    direction.
    """
    image = np.asarray(image)
    _check_image(image, "streak_mask")
    if streaks is None:
        streaks = find_streaks(image)
    if not streaks:
        return guarded_rain_mask(image, streaks=streaks)
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    colour = _colour(image)
    for scale in sorted({s.scale for s in streaks}):
        small = colour if scale == 1 else cv2.resize(colour, (max(1, w // scale), max(1, h // scale)),
                                                     interpolation=cv2.INTER_AREA)
        part = np.zeros(small.shape[:2], np.uint8)
        for s in streaks:
            if s.scale == scale:
                part |= _aligned_streaks(small, float(s.rotation), kernel_size, ridge_width, ridge_height, max_tilt)
        if scale == 1:
            mask |= part
            continue
        part = cv2.resize(part, (w, h), interpolation=cv2.INTER_NEAREST)
        covered = cv2.dilate(mask, np.ones((2 * scale + 1,) * 2, np.uint8)) > 0
        n, labels = cv2.connectedComponents((part > 127).astype(np.uint8), connectivity=8)
        if n > 1:
            size = np.bincount(labels.ravel(), minlength=n)
            inside = np.bincount(labels.ravel(), covered.ravel(), minlength=n)
            keep = inside <= overlap * size
            keep[0] = False
            mask |= (keep[labels] * 255).astype(np.uint8)
    return MaskResult(mask, int(round(streaks[0].rotation)) % 180)
