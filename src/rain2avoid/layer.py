"""The rain layer of a photo from a directional sparse model, and the rain the mask misses.

The guarded mask (:mod:`rain2avoid.detect`) keeps only streaks it is sure of, so faint
streaks, streak ends and the parts of dense rain that touch keep the input as their
reference, and the network learns to keep them. The rain layer sees them: with the
photo turned so that the streaks are vertical, rain ``R`` is the part of the picture
that is smooth along the streaks, sparse, and whose removal leaves a background with
few horizontal edges (the unidirectional global sparse model of Deng et al., "A
directional global sparse model for single image rain removal", Applied Mathematical
Modelling 2018), found by ADMM with one FFT solve per iteration:

    min_R  along * |d_y R|_1 + sparse * |R|_1 + |d_x (O - R)|_1,   0 <= R <= O

The layer also takes texture that runs along the streaks, so it does not make
references. :func:`unsure_rain` keeps its long, colourless pieces (rain only adds light,
equally in every channel) and ``pipeline.training_data`` leaves those pixels out of the
loss where the mask does not cover them: the network decides them from what it learned
on the mask's streaks, instead of learning to keep them. All functions are pure.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import fft

__all__ = ["rain_layer", "unsure_rain", "rotation_of_angle", "work_size", "MAX_PIXELS"]

MAX_PIXELS = 1 << 21
"""Photos larger than this (2 MP) are looked at on a shrunk copy (:func:`unsure_rain`)."""


def _shrink(a: np.ndarray, t: float) -> np.ndarray:
    return np.sign(a) * np.maximum(np.abs(a) - t, 0)


def _dx(a: np.ndarray) -> np.ndarray:
    return np.roll(a, -1, 1) - a


def _dy(a: np.ndarray) -> np.ndarray:
    return np.roll(a, -1, 0) - a


def _dx_t(a: np.ndarray) -> np.ndarray:
    return np.roll(a, 1, 1) - a


def _dy_t(a: np.ndarray) -> np.ndarray:
    return np.roll(a, 1, 0) - a


def rain_layer(gray: np.ndarray, along: float = 1.0, sparse: float = 0.5, iters: int = 30,
               beta: float = 10.0) -> np.ndarray:
    """Rain layer ``R`` (float32, same shape, ``0 <= R <= gray``) of a gray image in [0, 1]
    whose streaks are vertical: the model of the module docstring, ``iters`` ADMM
    iterations with penalty ``beta`` (periodic borders, solved in the Fourier domain)."""
    gray = np.asarray(gray, np.float32)
    if gray.ndim != 2 or min(gray.shape) < 2:
        raise ValueError(f"expected an (H, W) gray image, at least 2 x 2, got shape {gray.shape}")
    if along < 0 or sparse < 0 or beta <= 0 or iters < 1:
        raise ValueError("along and sparse must be >= 0, beta > 0 and iters >= 1")
    h, w = gray.shape
    # eigenvalues of d_y^T d_y + d_x^T d_x + 1 for periodic forward differences
    ey = (2 - 2 * np.cos(2 * np.pi * np.arange(h) / h))[:, None]
    ex = (2 - 2 * np.cos(2 * np.pi * np.arange(w // 2 + 1) / w))[None, :]
    denominator = (ey + ex + 1).astype(np.float32)
    grad_x = _dx(gray)
    smooth, rain, edges = np.zeros_like(gray), np.zeros_like(gray), grad_x.copy()
    u_smooth, u_rain, u_edges = np.zeros_like(gray), np.zeros_like(gray), np.zeros_like(gray)
    for _ in range(iters):
        rhs = _dy_t(smooth - u_smooth) + (rain - u_rain) + _dx_t(grad_x - edges + u_edges)
        layer = fft.irfft2(fft.rfft2(rhs) / denominator, s=(h, w))
        along_y = _dy(layer)
        smooth = _shrink(along_y + u_smooth, along / beta)
        rain = np.clip(_shrink(layer + u_rain, sparse / beta), 0, gray)
        across = grad_x - _dx(layer)
        edges = _shrink(across + u_edges, 1 / beta)
        u_smooth += along_y - smooth
        u_rain += layer - rain
        u_edges += across - edges
    return rain


def work_size(height: int, width: int, max_pixels: int = MAX_PIXELS) -> tuple[int, int] | None:
    """``(width, height)`` of a copy of a ``height`` x ``width`` photo shrunk to about
    ``max_pixels`` pixels (same shape), or None when the photo is no larger than that."""
    if height * width <= max_pixels:
        return None
    scale = (max_pixels / (height * width)) ** 0.5
    return max(1, round(width * scale)), max(1, round(height * scale))


def rotation_of_angle(angle: int) -> float:
    """The rotation (degrees, as ``detect.estimate_rotation`` gives it) of the guarded or
    streaks mask's ``MaskResult.angle`` (that rotation modulo 180)."""
    return float(angle if angle <= 90 else angle - 180)


def _turn(image: np.ndarray, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` turned by ``rotation`` degrees on a canvas that holds all of it (mirrored
    borders), and the affine matrix that did it."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rotation, 1)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    bw, bh = int(h * sin + w * cos) + 1, int(h * cos + w * sin) + 1
    m[0, 2] += bw / 2 - w / 2
    m[1, 2] += bh / 2 - h / 2
    return cv2.warpAffine(image, m, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), m


def unsure_rain(rgb8: np.ndarray, rotation: float, level: float = 3.0, min_length: int = 8,
                elongation: float = 2.5, max_spread: float = 0.25, across: int = 7,
                max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Pixels (bool (H, W)) the rain layer takes for rain, in pieces shaped and coloured like it.

    ``rgb8``: uint8 (H, W, 3) RGB; ``rotation``: the rotation (degrees) that makes its streaks
    vertical. The rain layer (:func:`rain_layer`, on BT.601 luma) is at least ``level`` grey
    levels high on a pixel; its 8-connected pieces are kept when, turned with the streaks,
    they are at least ``min_length`` px high and ``elongation`` times as high as wide, and
    colourless: over the piece, the spread of the channels' rise above a 1 x ``across`` grey
    opening is at most ``max_spread`` times the rise's mean. A photo of more than
    ``max_pixels`` pixels is looked at on a copy shrunk to that many (area averaging; its
    streaks are wide enough to show there), and the answer scaled back up, so that the
    cost stays under a few seconds.
    """
    rgb8 = np.asarray(rgb8)
    if rgb8.ndim != 3 or rgb8.shape[2] != 3 or rgb8.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {rgb8.dtype} {rgb8.shape}")
    h, w = rgb8.shape[:2]
    size = work_size(h, w, max_pixels)
    if size is not None:
        small = cv2.resize(rgb8, size, interpolation=cv2.INTER_AREA)
        found = unsure_rain(small, rotation, level, min_length, elongation, max_spread, across, max_pixels)
        return cv2.resize(found.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    turned, m = _turn(rgb8, rotation)
    turned = turned.astype(np.float32)
    gray = (turned @ np.array([0.299, 0.587, 0.114], np.float32)) / 255
    rain = rain_layer(gray) * 255 >= level
    line = np.ones((1, across), np.uint8)
    rise = np.maximum(turned - np.stack([cv2.morphologyEx(turned[..., c], cv2.MORPH_OPEN, line)
                                         for c in range(3)], -1), 0)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(rain.astype(np.uint8), connectivity=8)
    flat = labels.ravel()
    spread = np.bincount(flat, (rise.max(-1) - rise.min(-1)).ravel(), n)
    mean = np.bincount(flat, rise.mean(-1).ravel(), n)
    high, wide = stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_WIDTH]
    keep = (high >= min_length) & (high >= elongation * wide) & (spread <= max_spread * np.maximum(mean, 1e-6))
    keep[0] = False
    pieces = keep[labels].astype(np.float32)
    back = cv2.warpAffine(pieces, cv2.invertAffineTransform(m), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return back > 0.5
