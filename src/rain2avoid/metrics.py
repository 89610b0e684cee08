"""Full-reference metrics with the deraining field's conventions (README, "Measured results").

One convention everywhere (:func:`scale_to_255`; the no-reference metrics of
:mod:`rain2avoid.noref` share it): pixels are scored on the 0-255 scale, so
uint8 is taken as it is, uint16 divided by 257 and float as already on that
scale. A float image whose values all lie in [0, 1], not all equal (the scale of
the rest of the API's float images), is refused with a ``ValueError`` rather
than misread: multiply it by 255 or pass uint8. So is a float image whose values
reach far outside 0-255 (beyond :data:`FLOAT_RANGE`: a 16-bit image as floats, say).
Other dtypes and NaN are refused too. The two images of a full-reference metric may differ in dtype: both are
brought to 0-255. ``"y"`` scores the BT.601 studio-range luma as floats (MATLAB
``rgb2ycbcr``, not rounded); ``"rgb"`` scores each channel and averages. SSIM
uses an 11x11 Gaussian window with sigma 1.5 (scikit-image's
``gaussian_weights=True``), data range 255.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

__all__ = ["to_y", "as_rgb", "scale_to_255", "psnr", "ssim", "flicker", "CHANNELS", "SSIM_MIN_SIZE",
           "FLOAT_RANGE"]

CHANNELS = ("y", "rgb")
SSIM_MIN_SIZE = 11  # side of the Gaussian window: 2 * int(3.5 * 1.5 + 0.5) + 1


def to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma (16-235) of an RGB image on the 0-255 scale, float64."""
    image = np.asarray(image, dtype=np.float64)
    return 16.0 + (65.481 * image[..., 0] + 128.553 * image[..., 1] + 24.966 * image[..., 2]) / 255.0


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A picture as the metrics score it: (H, W, 3), a gray image repeated, an alpha channel dropped."""
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]


FLOAT_RANGE = (-64.0, 319.0)
"""The values a float image may take: 0-255 and a quarter of it beyond either end (the
overshoot of a network's output); beyond that it is on another scale and refused."""


def scale_to_255(image: np.ndarray, who: str) -> float:
    """The factor that brings the pixels of ``image`` to the 0-255 scale the metrics score on.

    uint8: 1; uint16: 1 / 257; float: 1 (taken as already on the 0-255 scale).
    Raises ``ValueError`` naming ``who`` for any other dtype, for NaN or infinite
    values, and for a float image whose values all lie in [0, 1] without being
    constant: it is almost surely on the 0-1 scale, and would be misread; and for a float
    image with values outside :data:`FLOAT_RANGE` (a 16-bit image as floats, say).
    """
    if image.dtype == np.uint8:
        return 1.0
    if image.dtype == np.uint16:
        return 1.0 / 257.0
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"{who}: expected uint8, uint16 or float pixels (0-255 scale), got {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"{who}: the image has NaN or infinite values")
    if image.size and 0 <= image.min() < image.max() <= 1:
        raise ValueError(f"{who}: the float image's values all lie in [0, 1], but float images are scored "
                         f"on the 0-255 scale; multiply by 255 (or pass uint8)")
    low, high = FLOAT_RANGE
    if image.size and not low <= image.min() <= image.max() <= high:
        raise ValueError(f"{who}: the float image's values reach {image.min():g} to {image.max():g}, but float "
                         f"images are scored on the 0-255 scale; bring them to it (a 16-bit image: divide by "
                         f"257, or pass uint16)")
    return 1.0


def _on_255(image: np.ndarray, who: str) -> np.ndarray:
    """The RGB of ``image`` (alpha dropped) as float64 on the 0-255 scale (:func:`scale_to_255`)."""
    rgb = image[..., :3]
    return rgb.astype(np.float64) * scale_to_255(rgb, who)


def _prepare(pred, target, channel: str, crop_border: int, who: str) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    for image in (pred, target):
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
            raise ValueError(f"expected (H, W) grey or (H, W, 3) RGB images (RGBA: alpha is ignored), "
                             f"got {image.shape}")
    pred, target = as_rgb(pred), as_rgb(target)   # grey as eval scores it: the same value in R, G and B
    if pred.shape[:2] != target.shape[:2]:
        raise ValueError(f"image shapes differ: {pred.shape[:2]} vs {target.shape[:2]}")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"crop_border must be a whole number >= 0, got {crop_border!r}")
    pred, target = _on_255(pred, f"{who} pred"), _on_255(target, f"{who} target")
    if crop_border:
        pred = pred[crop_border:-crop_border, crop_border:-crop_border]
        target = target[crop_border:-crop_border, crop_border:-crop_border]
        if pred.size == 0:
            raise ValueError(f"crop_border={crop_border} leaves no pixels")
    if channel == "y":
        return to_y(pred)[..., None], to_y(target)[..., None]
    return pred, target


def psnr(pred, target, channel: str = "y", crop_border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB (peak 255). Identical images give ``inf``.

    ``pred``, ``target``: (H, W, 3) RGB or RGBA (alpha ignored), or (H, W) grey
    (scored as :func:`as_rgb` makes it, as ``derain`` returns a grey image), on the 0-255
    scale (:func:`scale_to_255`). For ``"rgb"`` the MSE is taken over all three
    channels together; ``crop_border`` pixels are left out on each side.
    """
    a, b = _prepare(pred, target, channel, crop_border, "psnr")
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def ssim(pred, target, channel: str = "y", crop_border: int = 0) -> float:
    """Structural similarity (Gaussian 11x11 window, sigma 1.5, range 255), mean over channels.

    Images and arguments as for :func:`psnr`.
    """
    a, b = _prepare(pred, target, channel, crop_border, "ssim")
    if min(a.shape[:2]) < SSIM_MIN_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE} pixels "
                         f"(its Gaussian window), got {a.shape[1]}x{a.shape[0]}")
    return float(np.mean([
        structural_similarity(a[..., c], b[..., c], gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=255)
        for c in range(a.shape[2])
    ]))


def flicker(pred, target, channel: str = "y") -> float:
    """Temporal flicker of a clip against its clean clip (0-255 scale; 0 = none).

    The mean absolute difference between the frame-to-frame changes of ``pred``
    and those of ``target``: ``mean |(p[t+1] - p[t]) - (c[t+1] - c[t])|`` over
    frames and pixels, on Y (as :func:`psnr`) or on RGB. Both are (F, H, W, 3)
    arrays (or sequences of frames) with F >= 2, on the 0-255 scale
    (:func:`scale_to_255`).
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim != 4 or pred.shape != target.shape or pred.shape[0] < 2 or pred.shape[-1] not in (3, 4):
        raise ValueError(f"expected two (F >= 2, H, W, 3) clips of the same shape, got {pred.shape} "
                         f"and {target.shape}")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    p, t = _on_255(pred, "flicker pred"), _on_255(target, "flicker target")
    if channel == "y":
        p, t = to_y(p), to_y(t)
    return float(np.mean(np.abs(np.diff(p, axis=0) - np.diff(t, axis=0))))
