"""Stage 1, LDGP (locally dominant gradient prior): a binary mask of rain streaks.

The streak direction is the most frequent dominant HOG orientation over square
patches; the image is rotated so streaks are vertical, bright pixels that form
vertical runs are kept by a morphological opening, and the result is rotated
back. See ``method.md`` section 1; this module reproduces that computation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

__all__ = ["MaskResult", "rain_mask", "streak_angle", "rotation_for_angle",
           "estimate_rotation", "guarded_rain_mask", "compute_mask", "rain_guard"]

_CELL = 8
_CELLS_PER_BLOCK = 4
_BINS = 36


class MaskResult(NamedTuple):
    """A rain mask (uint8, 255 = rain) and the dominant gradient angle in degrees."""

    mask: np.ndarray
    angle: int


def _gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale of an RGB (or already gray) uint8 image, OpenCV weights."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


def _patch_angle(gray_patch: np.ndarray) -> int:
    """Dominant HOG orientation (degrees, multiple of 5) of one square patch.

    OpenCV's HOG returns L2-Hys normalised block histograms; each cell's
    histogram is the average over the blocks that contain it, and the patch's
    angle is the largest bin of the sum of all cell histograms.
    """
    h, w = gray_patch.shape
    cx, cy = w // _CELL, h // _CELL
    block = _CELL * _CELLS_PER_BLOCK
    hog = cv2.HOGDescriptor((cx * _CELL, cy * _CELL), (block, block), (_CELL, _CELL), (_CELL, _CELL), _BINS)
    desc = hog.compute(gray_patch)
    nbx, nby = cx - _CELLS_PER_BLOCK + 1, cy - _CELLS_PER_BLOCK + 1
    # OpenCV orders blocks x-major; the reference then treats axes as (by, bx, i, j).
    blocks = desc.reshape(nbx, nby, _CELLS_PER_BLOCK, _CELLS_PER_BLOCK, _BINS).transpose(1, 0, 2, 3, 4)
    total = np.zeros((cy, cx, _BINS))
    count = np.zeros((cy, cx, 1))
    for i in range(_CELLS_PER_BLOCK):
        for j in range(_CELLS_PER_BLOCK):
            total[i:i + nby, j:j + nbx] += blocks[:, :, i, j]
            count[i:i + nby, j:j + nbx] += 1
    hist = (total / count).sum(axis=(0, 1))
    return int(np.argmax(hist)) * (180 // _BINS)


def streak_angle(image: np.ndarray, patch_size: int = 80) -> int:
    """Most frequent dominant gradient angle over ``patch_size`` tiles (ties: smallest).

    Returns 0 when the image is smaller than one patch (no evidence: assume
    vertical streaks).
    """
    if patch_size < _CELL * _CELLS_PER_BLOCK:
        raise ValueError(f"patch_size must be at least {_CELL * _CELLS_PER_BLOCK}, got {patch_size}")
    gray = _gray(image)
    ny, nx = gray.shape[0] // patch_size, gray.shape[1] // patch_size
    angles = [
        _patch_angle(gray[y * patch_size:(y + 1) * patch_size, x * patch_size:(x + 1) * patch_size])
        for x in range(nx) for y in range(ny)
    ]
    if not angles:
        return 0
    values, counts = np.unique(angles, return_counts=True)
    return int(values[np.argmax(counts)])


def rotation_for_angle(angle: int) -> int:
    """Rotation (degrees, counter-clockwise) that makes streaks with this gradient angle vertical."""
    if angle in (85, 90):
        return 0
    return angle - 180 if angle > 90 else angle


def _rotate(image: np.ndarray, theta: float, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Rotate about the centre on a canvas enlarged to hold the whole image, white border."""
    rows, cols = image.shape[:2]
    centre = (cols / 2, rows / 2)
    m = cv2.getRotationMatrix2D(centre, theta, 1)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    bw, bh = int(rows * sin + cols * cos), int(rows * cos + cols * sin)
    m[0, 2] += bw / 2 - centre[0]
    m[1, 2] += bh / 2 - centre[1]
    return cv2.warpAffine(image, m, (bw, bh), flags=interpolation, borderValue=(255, 255, 255))


def _check_image(image: np.ndarray, who: str) -> None:
    if image.dtype != np.uint8:
        raise TypeError(f"{who} expects a uint8 image, got {image.dtype}; convert with rain2avoid.io")
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{who} expects an (H, W) or (H, W, C) image, got shape {image.shape}")


def _colour(image: np.ndarray) -> np.ndarray:
    """The image without alpha, contiguous (OpenCV wants that)."""
    return np.ascontiguousarray(image[..., :3]) if image.ndim == 3 else image


def _crop_offsets(h: int, w: int, theta: float) -> tuple[int, int]:
    """(row, column) offset of the H x W window cut from the back-rotated canvas (LDGP step 6).

    Bit for bit as the reference: rows ``floor(W * sin t * cos t)``, columns
    ``floor(H * cos t * sin t)``, t = |theta| in radians, multiplied left to
    right in exactly that order. The product is often a whole number in exact
    arithmetic (480 x sin 15 x cos 15 = 120), and the two orders of
    multiplication round it to either side of it (120.0 and 119.99999999999999),
    which floor turns into different offsets.
    """
    t = math.radians(abs(theta))
    return math.floor(w * math.sin(t) * math.cos(t)), math.floor(h * math.cos(t) * math.sin(t))


def _vertical_streaks(image: np.ndarray, theta: float, kernel_size: int, ridge_width: int = 0,
                      ridge_height: int = 0) -> np.ndarray:
    """Steps 3-6 of LDGP: rotate by ``theta``, keep bright vertical runs, rotate back, crop.

    Bright = above the 5x5 mean; with ``ridge_width`` also more than
    ``ridge_height`` above the row's grey opening with a 1 x ``ridge_width``
    line (a line narrower than that across the streaks). Runs shorter than
    ``kernel_size`` are removed by a vertical opening.
    """
    h, w = image.shape[:2]
    off_r, off_c = _crop_offsets(h, w, theta)
    # Rotate the colour image, then take gray, as the reference does (rounding differs otherwise).
    rotated = _gray(_rotate(_colour(image), theta))
    bright = cv2.adaptiveThreshold(rotated, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 5, 0)
    if ridge_width:
        opened = cv2.morphologyEx(rotated, cv2.MORPH_OPEN, np.ones((1, ridge_width), np.uint8))
        ridge = (rotated.astype(np.int16) - opened.astype(np.int16)) > ridge_height
        bright &= (ridge * 255).astype(np.uint8)
    line = cv2.getStructuringElement(cv2.MORPH_RECT, (1, kernel_size))
    back = _rotate(cv2.dilate(cv2.erode(bright, line), line), -theta)
    mask = np.zeros((h, w), np.uint8)
    crop = back[off_r:off_r + h, off_c:off_c + w]
    mask[:crop.shape[0], :crop.shape[1]] = crop
    return mask


def rain_mask(image: np.ndarray, patch_size: int = 80, kernel_size: int = 10,
              angle: int | None = None) -> MaskResult:
    """LDGP rain mask of an RGB (or gray) uint8 image.

    Args:
        image: (H, W, 3) RGB or (H, W) gray, uint8.
        patch_size: side of the square tiles used to vote for the streak angle.
        kernel_size: height of the vertical line used in the opening; bright
            vertical runs shorter than this are not rain.
        angle: dominant gradient angle to use instead of estimating it.

    Returns:
        ``MaskResult(mask, angle)``: mask is (H, W) uint8, 255 = rain, 0 = background.
    """
    image = np.asarray(image)
    _check_image(image, "rain_mask")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    if angle is None:
        angle = streak_angle(image, patch_size)
    mask = _vertical_streaks(image, rotation_for_angle(angle), kernel_size)
    return MaskResult(mask, int(angle))


# ---------------------------------------------------------------------------
# Guarded variant (not part of the reference method).
#
# The reference LDGP mask also flags rain-free texture that is bright and runs
# roughly along the streaks (bridge pillars, animal stripes, branches), and its
# 5-degree HOG vote can miss the streak angle by ~10 degrees. Replacing such
# texture with neighbouring colours destroys detail. The functions below add
#   * a finer, more robust streak-angle estimate from the orientation of
#     straight, thin, achromatic bright segments,
#   * a ridge (width) test in the rotated frame: a streak pixel must stand out
#     against a horizontal grey opening of ``ridge_width`` px, so edges and
#     wide bright bars do not count,
#   * a photometric guard on the derained estimate: rain only adds an
#     achromatic (equal in R, G, B) positive increment of a plausible size.
# ---------------------------------------------------------------------------

def _achromatic_tophat(image: np.ndarray, size: int = 7, saturated: int = 250) -> np.ndarray:
    """uint8 map of how far each pixel stands out as a thin bright detail in every colour channel.

    White top-hat (image minus its grey opening with a ``size`` x ``size``
    ellipse, so bright structures narrower than about ``size`` px) per channel,
    then the minimum over channels: rain adds about the same light to R, G and
    B, so a rain pixel is a bright detail in all of them, while coloured
    texture is not. Channels at ``saturated`` or above cannot show the
    increment (they are clipped) and are left out of the minimum, unless all
    channels of the pixel are.
    """
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    top = cv2.subtract(image, cv2.morphologyEx(image, cv2.MORPH_OPEN, se))
    if top.ndim == 2:
        return top
    clipped = image >= saturated
    clipped &= ~clipped.all(axis=2, keepdims=True)
    top[clipped] = 255
    return top.min(axis=2)


def _segments(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orientation, length and width of each 8-connected component of ``binary``.

    From the second moments of the component's pixels (each pixel a unit
    square): the major axis gives the orientation, as the lean of the axis
    from vertical in degrees in (-90, 90] (positive = top to the right, the
    convention of :func:`rotation_for_angle`); ``sqrt(12 * variance)`` along
    and across the axis is the length and width of a bar with those moments.
    """
    n, labels = cv2.connectedComponents(binary, connectivity=8)
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    count = np.maximum(np.bincount(lab, minlength=n), 1).astype(np.float64)
    dx = xs - (np.bincount(lab, xs, n) / count)[lab]
    dy = ys - (np.bincount(lab, ys, n) / count)[lab]
    sxx = np.bincount(lab, dx * dx, n)[1:] / count[1:] + 1 / 12
    syy = np.bincount(lab, dy * dy, n)[1:] / count[1:] + 1 / 12
    sxy = np.bincount(lab, dx * dy, n)[1:] / count[1:]
    half_gap = np.sqrt(((sxx - syy) / 2) ** 2 + sxy ** 2)
    major = (sxx + syy) / 2 + half_gap
    minor = np.maximum((sxx + syy) / 2 - half_gap, 0)
    phi = 0.5 * np.arctan2(2 * sxy, sxx - syy)          # major axis from +x, y pointing down
    lean = np.degrees(np.arctan2(np.cos(phi), -np.sin(phi)))
    lean = (lean + 90) % 180 - 90
    return lean, np.sqrt(12 * major), np.sqrt(12 * minor)


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


def _segment_orientation(tiles: list[np.ndarray], search: float, tophat_size: int,
                         heights: tuple[float, ...], min_length: float, max_length: float,
                         elongation: float, spread: float) -> tuple[float, int]:
    """Steps 1-4 of :func:`estimate_rotation` on a list of image tiles.

    Returns the orientation with most votes (degrees, 0.5-degree steps) and its
    support: the number of kept segments within ``2 * spread`` degrees of it,
    at the height that has most; ``(0.0, 0)`` when no segment is kept.
    """
    step = 0.5                                   # degrees per histogram bin
    bins = int(round(180 / step))
    grid = np.arange(bins) * step - 90           # bin centres, degrees in [-90, 90)
    radius = int(math.ceil(4 * spread / step))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) * step / spread) ** 2)
    tops = [_achromatic_tophat(t, tophat_size) for t in tiles]
    votes = np.zeros(bins)
    found = []
    for height in heights:
        leans, lengths = [], []
        for top in tops:
            lean, length, width = _segments(((top > height) * 255).astype(np.uint8))
            keep = (length >= min_length) & (length <= max_length) & (length >= elongation * width)
            leans.append(lean[keep])
            lengths.append(length[keep])
        lean, length = np.concatenate(leans), np.concatenate(lengths)
        if lean.size == 0:
            continue
        hist = np.bincount(np.round((lean + 90) / step).astype(int) % bins, length, bins)
        wrapped = np.concatenate([hist[-radius:], hist, hist[:radius]])   # orientations wrap at 180
        smooth = np.convolve(wrapped, kernel, mode="valid")
        votes += smooth / smooth.max()
        found.append(lean)
    inside = np.abs(grid) <= search
    if not found or not votes[inside].any():
        return 0.0, 0
    best = float(grid[inside][np.argmax(votes[inside])])
    support = max(int((np.abs((lean - best + 90) % 180 - 90) <= 2 * spread).sum()) for lean in found)
    return best, support


def estimate_rotation(image: np.ndarray, search: float = 45.0, tophat_size: int = 7,
                      heights: tuple[float, ...] = (10, 20, 40), min_length: float = 8.0,
                      max_length: float = 80.0, elongation: float = 3.0, spread: float = 1.5,
                      min_segments: int = 5, default: float | None = 0.0,
                      max_pixels: int = 1 << 20, min_side: int = 128) -> float | None:
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
       by a Gaussian of ``spread`` degrees; the votes of each height are
       scaled to a peak of 1 and summed, so no single contrast level (faint
       rain, or strong texture edges) decides alone;
    4. the answer is the orientation with most votes within ``search``
       degrees of vertical; its support is the number of kept segments (at
       the height that has most) within ``2 * spread`` degrees of it.

    Streaks wider than the top-hat sees become visible once the image is
    scaled down, so steps 1-4 run on the image and on copies halved again
    and again (area averaging) while the shorter side stays at least
    ``min_side`` px, and the scale with the largest support wins (ties: the
    finer scale). ``default`` is returned when that support is below
    ``min_segments``: no visible straight streaks. Images (or copies) with
    more than ``max_pixels`` pixels are searched on evenly spread 256 x 256
    crops (:func:`_sample_tiles`), so the cost is bounded.
    """
    image = np.ascontiguousarray(_colour(np.asarray(image)))
    best, support = 0.0, 0
    while True:
        angle, count = _segment_orientation(_sample_tiles(image, max_pixels), search, tophat_size,
                                            heights, min_length, max_length, elongation, spread)
        if count > support:
            best, support = angle, count
        h, w = image.shape[:2]
        if min(h, w) // 2 < min_side:
            break
        image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return best if support >= min_segments else default


def guarded_rain_mask(image: np.ndarray, kernel_size: int = 10, ridge_width: int = 7,
                      ridge_height: int = 2, rotation: float | None = None) -> MaskResult:
    """Rain mask with a finer streak angle and a ridge (width) test.

    Same steps as :func:`rain_mask` (rotate so streaks are vertical, adaptive
    5x5 mean threshold, vertical opening of ``kernel_size`` px, rotate back),
    except that
      * the rotation comes from :func:`estimate_rotation` (orientation of
        straight, thin, achromatic bright segments, 0.5-degree steps), or
        from the HOG vote of :func:`streak_angle` where that finds no such
        segments at any scale, unless ``rotation`` is given;
      * before the vertical opening, a pixel must also exceed the grey opening
        of its row with a 1 x ``ridge_width`` element by more than
        ``ridge_height`` grey levels: it is brighter than both horizontal
        neighbours within ``ridge_width`` px, i.e. part of a bright line
        narrower than ``ridge_width`` across the streak direction. Edges and
        wide bright structures (pillars, stripes) fail this test.
    ``ridge_width=0`` disables the ridge test.

    Returns ``MaskResult(mask, angle)`` with ``angle`` in the convention of
    :func:`streak_angle` (degrees in [0, 180), ``rotation_for_angle(angle)``
    gives back the rounded rotation).
    """
    image = np.asarray(image)
    _check_image(image, "guarded_rain_mask")
    if kernel_size < 1 or ridge_width < 0:
        raise ValueError("kernel_size must be >= 1 and ridge_width >= 0")
    if rotation is None:
        rotation = estimate_rotation(image, default=None)
    if rotation is None:
        # No straight streak-like segments at all: fall back on the reference HOG vote.
        rotation = rotation_for_angle(streak_angle(image))
    theta = float(rotation)
    mask = _vertical_streaks(image, theta, kernel_size, ridge_width, ridge_height)
    angle = int(round(theta)) % 180
    return MaskResult(mask, angle)


def compute_mask(rgb8: np.ndarray, kind: str = "guarded") -> MaskResult:
    """Rain mask of a uint8 RGB image: ``"ldgp"`` (the reference's, :func:`rain_mask`)
    or ``"guarded"`` (:func:`guarded_rain_mask`), as ``Settings.mask`` names them."""
    if kind not in ("guarded", "ldgp"):
        raise ValueError(f"mask must be 'ldgp' or 'guarded', got {kind!r}")
    return guarded_rain_mask(rgb8) if kind == "guarded" else rain_mask(rgb8)


def rain_guard(image: np.ndarray, estimate: np.ndarray, mask: np.ndarray, cap: float = 4.0,
               component_cap: float = 3.0, colour: str = "median", saturated: int = 250,
               threshold: int = 10) -> np.ndarray:
    """Keep only the part of ``image - estimate`` that rain can explain.

    Rain only adds light, and (in Rain100L and for white rain generally) about
    the same amount to R, G and B. Per pixel the rain increment ``a`` is
    estimated from ``d = image - estimate``:
      * ``colour="median"`` (default): ``a = max(0, median_c d_c)``;
      * ``colour="min"``: ``a = max(0, min_c d_c)`` over the channels below
        ``saturated`` (clipped channels under-report the increment). Strictly
        achromatic; best on Rain100L, but biased low where the estimate is
        noisy and the rain strong (-0.7 dB on heavy synthetic rain);
      * ``colour="free"``: each channel applies its own ``max(0, d_c)``; the
        median is used only for the tests below.
    The output is ``image_c - min(w * a, max(0, d_c))`` per channel: never
    darker than ``min(estimate, image)``, and never a change rain cannot make.

    The weight ``w`` in [0, 1] falls back to the input where the change is
    larger than rain plausibly makes in this image. The scale ``s`` is the
    median of ``a`` over the mask pixels with ``a > 0.5`` (one robust
    statistic per image, no ground truth):
      * per pixel, ``w = clip(2 - a / (cap * s), 0, 1)``: full removal up to
        ``cap * s``, none above ``2 * cap * s``;
      * per connected component of the mask (8-connected), ``w = 0`` where the
        component's median ``a`` exceeds ``component_cap * s``: a whole bright
        structure that stands far above the image's rain increments is texture.
    ``None`` disables either test.

    Args:
        image: (H, W, 3) rainy image (any numeric dtype, 0-255 scale).
        estimate: (H, W, 3) derained estimate on the same scale (e.g.
            :func:`rain2avoid.sdr.expected_reference` or a network's output).
        mask: (H, W) rain mask, > ``threshold`` = rain (scale and components).

    Returns:
        float32 (H, W, 3) image in [0, 255].
    """
    x = np.asarray(image, dtype=np.float32)
    e = np.asarray(estimate, dtype=np.float32)
    mask = np.asarray(mask)
    if x.ndim != 3 or e.shape != x.shape or mask.shape != x.shape[:2]:
        raise ValueError(f"shapes do not match: image {x.shape}, estimate {e.shape}, mask {mask.shape}")
    if colour not in ("min", "median", "free"):
        raise ValueError(f"colour must be 'min', 'median' or 'free', got {colour!r}")
    d = x - e
    if colour == "min":
        unsat = x < saturated
        unsat = np.where(unsat.any(axis=2, keepdims=True), unsat, True)
        a = np.maximum(np.where(unsat, d, np.float32(np.inf)).min(axis=2), 0)
    else:
        a = np.maximum(np.median(d, axis=2), 0)
    rain = mask > threshold
    sel = rain & (a > 0.5)
    s = float(np.median(a[sel])) if sel.any() else 0.0
    wgt = np.ones_like(a)
    if s > 0 and cap is not None:
        wgt = np.clip(2 - a / (cap * s), 0, 1)
    if s > 0 and component_cap is not None:
        n, labels = cv2.connectedComponents(rain.astype(np.uint8), connectivity=8)
        if n > 1:
            lab = labels[rain]
            order = np.lexsort((a[rain], lab))          # by label, then by a
            lab_sorted, a_sorted = lab[order], a[rain][order]
            starts = np.searchsorted(lab_sorted, np.arange(n))
            ends = np.append(starts[1:], lab_sorted.size)
            counts = ends - starts
            lo = starts + np.maximum(counts - 1, 0) // 2
            hi = starts + counts // 2
            med = np.zeros(n, np.float32)
            ok = counts > 0
            med[ok] = 0.5 * (a_sorted[np.minimum(lo[ok], a_sorted.size - 1)]
                             + a_sorted[np.minimum(hi[ok], a_sorted.size - 1)])
            bad = med > component_cap * s
            bad[0] = False
            wgt = wgt * ~bad[labels]
    pos = np.maximum(d, 0)
    if colour == "free":
        sub = wgt[..., None] * pos
    else:
        sub = np.minimum((wgt * a)[..., None], pos)
    return np.clip(x - sub, 0, 255).astype(np.float32)
