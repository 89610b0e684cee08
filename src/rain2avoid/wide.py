"""Wide soft streaks of large photos: the rain taken off a smaller copy, scaled back up.

The references borrow background from a 7 x 7 window, so a streak wider than a few
pixels cannot be filled where it lies: out-of-focus rain 8-20 px wide stays in a
large photo. On a copy shrunk by a whole factor those streaks are 2-4 px wide, as
the thin rain the method was made for; the same method run there, its removal
scaled back up and merged with the full-size one (the larger of the two, pixel by
pixel and channel by channel), takes them away. Not where the photo or the copy shows a
lattice (:func:`shows_lattice`): there, wide bright lines along the rain are window frames
and mullions more often than streaks.
"""

from __future__ import annotations

import cv2
import numpy as np

from .io import to_uint8
from .lattice import spectral_rotation

WIDE_SIDE = 480
"""The shorter side (px) of the copy that ``derain --wide-rain`` (``Settings.wide``) derains too:
a 1440 x 960 photo is shrunk 2x, a 12 MP one (4288 x 2848) 5x. On large pictures under wide soft
rain, 480 gains 1.3 dB with no picture worse and 320 less (docs/quality.md, twentieth round)."""


def shrink_factor(shape: tuple[int, ...], side: int) -> int:
    """The whole factor that shrinks an image of ``shape`` to a shorter side of ``side`` to
    ``2 * side - 1`` px; 0 where that is no shrinking (``side`` 0, or a shorter side under ``2 * side``)."""
    if side <= 0:
        return 0
    factor = min(shape[:2]) // side
    return factor if factor >= 2 else 0


def shrink(rgb: np.ndarray, factor: int) -> np.ndarray:
    """``rgb`` (H, W, 3) float32 averaged over ``factor`` x ``factor`` blocks (area resampling)."""
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def shows_lattice(rgb: np.ndarray, small: np.ndarray) -> bool:
    """Whether the photo ``rgb`` or its shrunk copy ``small`` (float32 RGB) shows a lattice
    (``lattice.Spectrum.lattice``: windows, bricks, tiles). Either may miss one that the other
    shows: on large facades under wide rain along their frames, each size misses some."""
    return any(spectral_rotation(to_uint8(image)).lattice for image in (rgb, small))


def merge_removal(rgb: np.ndarray, out: np.ndarray, small: np.ndarray, small_out: np.ndarray) -> np.ndarray:
    """``out`` with the removal ``small - small_out`` of a shrunk copy added where it is larger:
    that removal is scaled back up to ``rgb``'s size (bilinear) and, pixel by pixel and channel
    by channel, the larger of it and ``rgb - out`` is taken off ``rgb``."""
    h, w = rgb.shape[:2]
    removal = cv2.resize(small - small_out, (w, h), interpolation=cv2.INTER_LINEAR)
    np.maximum(removal, rgb - out, out=removal)
    return np.clip(rgb - removal, 0.0, 1.0, out=removal)
