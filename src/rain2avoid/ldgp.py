"""Stage 1, LDGP (locally dominant gradient prior): a binary mask of rain streaks.

The streak direction is the most frequent dominant HOG orientation over square
patches; the image is rotated so streaks are vertical, bright pixels that form
vertical runs are kept by a morphological opening, and the result is rotated
back, as the reference implementation computes it (README, "How it works", step 1).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

__all__ = ["RAIN_LEVEL", "MaskResult", "rain_mask", "patch_angles", "streak_angle", "rotation_for_angle"]

_CELL = 8
_CELLS_PER_BLOCK = 4
_BINS = 36

RAIN_LEVEL = 10
"""A graded mask (uint8, 0-255) marks rain where it is above this level."""


class MaskResult(NamedTuple):
    """A rain mask (uint8, graded 0-255; rain where > 10) and the dominant gradient angle in degrees."""

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


def patch_angles(image: np.ndarray, patch_size: int = 80) -> list[int]:
    """The dominant HOG orientation (degrees, multiple of 5) of each whole ``patch_size`` tile,
    column by column; empty when the image is smaller than one tile."""
    if patch_size < _CELL * _CELLS_PER_BLOCK:
        raise ValueError(f"patch_size must be at least {_CELL * _CELLS_PER_BLOCK}, got {patch_size}")
    image = np.asarray(image)
    _check_image(image, "patch_angles")
    gray = _gray(image)
    ny, nx = gray.shape[0] // patch_size, gray.shape[1] // patch_size
    return [
        _patch_angle(gray[y * patch_size:(y + 1) * patch_size, x * patch_size:(x + 1) * patch_size])
        for x in range(nx) for y in range(ny)
    ]


def streak_angle(image: np.ndarray, patch_size: int = 80, angles: list[int] | None = None) -> int:
    """Most frequent dominant gradient angle over ``patch_size`` tiles (ties: smallest).

    Returns 0 when the image is smaller than one patch (no evidence: assume
    vertical streaks). ``angles``: what :func:`patch_angles` returned for it, if the
    caller has it.
    """
    if angles is None:
        image = np.asarray(image)
        _check_image(image, "streak_angle")
        angles = patch_angles(image, patch_size)
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
        raise TypeError(f"{who} expects a uint8 RGB image, got {image.dtype}; convert it with "
                        f"rain2avoid.io.to_uint8(rain2avoid.io.to_float_rgb(image))")
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
        ``MaskResult(mask, angle)``: mask is (H, W) uint8, graded from 0 (background)
        to 255; the later stages count a pixel as rain where it is above 10.
    """
    image = np.asarray(image)
    _check_image(image, "rain_mask")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    if angle is None:
        angle = streak_angle(image, patch_size)
    mask = _vertical_streaks(image, rotation_for_angle(angle), kernel_size)
    return MaskResult(mask, int(angle))
