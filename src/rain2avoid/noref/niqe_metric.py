"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan and Bovik, IEEE SPL 2013).

A "completely blind" score: the distance between a multivariate Gaussian fitted
to local statistics of the image and one fitted to pristine natural images.
Lower is better. This follows MATLAB's ``niqe`` with its default pristine model
(96x96 blocks, no overlap, two scales) on the BT.601 luma of the 8-bit image,
rounded to integers, with no border crop: the convention of BasicSR's
``calculate_niqe(img, crop_border=0)``.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.special import gamma

from .common import checked_image, gaussian_window, load_parameters

__all__ = ["niqe", "imresize", "NIQE_BLOCK"]

NIQE_BLOCK = 96
"""Side of the square blocks NIQE fits; the image is cropped to whole blocks, and needs two of them."""

_ALPHAS = 0.2 + 0.001 * np.arange(9801)  # the AGGD shape is looked up on this grid, as in MATLAB
_RATIOS = gamma(2 / _ALPHAS) ** 2 / (gamma(1 / _ALPHAS) * gamma(3 / _ALPHAS))  # increasing in alpha
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and the two diagonal neighbours
_BT601 = (65.481, 128.553, 24.966)  # studio-range luma: Y = 16 + BT601 . RGB / 255 (as metrics.to_y)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``bicubic``)."""
    ax = np.abs(x)
    near = (1.5 * ax - 2.5) * ax ** 2 + 1
    far = ((-0.5 * ax + 2.5) * ax - 4) * ax + 2
    return np.where(ax <= 1, near, np.where(ax <= 2, far, 0.0))


def _resize_taps(n_in: int, n_out: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, each (n_out, taps), of MATLAB's antialiased bicubic resize on one axis.

    When shrinking, the kernel is stretched by 1/scale (antialiasing); source
    positions outside the image are mirrored back into it (edge included).
    """
    stretch = min(scale, 1.0)
    width = 4.0 / stretch
    centre = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based source coordinates
    first = np.floor(centre - width / 2)
    index = first[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]
    weights = stretch * _cubic(stretch * (centre[:, None] - index))
    weights /= weights.sum(axis=1, keepdims=True)
    index = np.mod(index.astype(np.int64) - 1, 2 * n_in)
    index = np.where(index >= n_in, 2 * n_in - 1 - index, index)
    used = np.any(weights != 0, axis=0)  # the outermost taps can be zero everywhere
    return index[:, used], weights[:, used]


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize a 2-D float image like MATLAB's ``imresize(image, scale)`` (bicubic, antialiased).

    The output has ``ceil(scale * size)`` rows and columns, as in MATLAB.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or scale <= 0:
        raise ValueError(f"imresize needs a 2-D image and a positive scale, got {image.shape} and {scale}")
    for axis in (0, 1):
        n_in = image.shape[0]
        index, weights = _resize_taps(n_in, int(np.ceil(n_in * scale)), scale)
        out = np.zeros((index.shape[0], image.shape[1]))
        for tap in range(index.shape[1]):
            out += weights[:, tap, None] * image[index[:, tap]]
        image = np.ascontiguousarray(out.T)  # the second pass works on the columns; two transposes restore the layout
    return image


def _mscn(y: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (7x7 Gaussian, edges replicated, C = 1).

    The local moments are filtered in double precision and the rest is done in
    single precision, as the reference implementation does. It matters where a
    picture is flat (a blown-out sky): there the coefficients come out exactly
    zero, where double precision would leave rounding noise for NIQE to score.
    """
    window = gaussian_window()
    y = y.astype(np.float32)
    mu = cv2.filter2D(y.astype(np.float64), -1, window, borderType=cv2.BORDER_REPLICATE).astype(np.float32)
    y2 = cv2.filter2D(np.square(y, dtype=np.float64), -1, window, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(y2.astype(np.float32) - mu * mu))
    return (y - mu) / (sigma + np.float32(1))


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit of each row of ``x``: shape alpha and scales beta_l, beta_r.

    A row with no negative (or no positive) values has undefined scales (NaN);
    its alpha is then the grid's first value, as the reference implementations give.
    """
    neg, pos = np.minimum(x, 0), np.maximum(x, 0)
    n_neg, n_pos = np.count_nonzero(neg, axis=1), np.count_nonzero(pos, axis=1)
    sq_neg = np.einsum("ij,ij->i", neg, neg).astype(np.float64)
    sq_pos = np.einsum("ij,ij->i", pos, pos).astype(np.float64)
    mean_abs = (pos.sum(axis=1, dtype=np.float64) - neg.sum(axis=1, dtype=np.float64)) / x.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        left, right = np.sqrt(sq_neg / n_neg), np.sqrt(sq_pos / n_pos)
        g = left / right
        r = mean_abs ** 2 / ((sq_neg + sq_pos) / x.shape[1])
        r = r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    i = np.clip(np.searchsorted(_RATIOS, r), 1, len(_RATIOS) - 1)  # nearest grid value
    i = np.where(r - _RATIOS[i - 1] <= _RATIOS[i] - r, i - 1, i)
    i = np.where(np.isnan(r), 0, i)
    alpha = _ALPHAS[i]
    c = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * c, right * c


def _block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """The 18 NIQE features of each ``block`` x ``block`` tile of ``mscn``: (tiles, 18)."""
    rows, cols = mscn.shape[0] // block, mscn.shape[1] // block
    tiles = mscn.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    alpha, left, right = _aggd(tiles.reshape(len(tiles), -1))
    features = [alpha, (left + right) / 2]
    for shift in _SHIFTS:  # products with a neighbour, wrapping around inside the tile
        pairs = tiles * np.roll(tiles, shift, axis=(1, 2))
        alpha, left, right = _aggd(pairs.reshape(len(tiles), -1))
        mean = (right - left) * gamma(2 / alpha) / gamma(1 / alpha)
        features += [alpha, mean, left, right]
    return np.stack(features, axis=1)


def _luma(image) -> np.ndarray:
    """Rounded BT.601 studio-range luma (as :func:`rain2avoid.metrics.to_y`), channel by channel."""
    image, scale = checked_image(image, "niqe")
    if image.ndim == 2:  # a gray picture scores like its RGB copy
        y = 16.0 + sum(_BT601) * (image.astype(np.float64) * scale) / 255.0
    else:
        r, g, b = (image[..., c].astype(np.float64) * scale for c in range(3))
        y = 16.0 + (_BT601[0] * r + _BT601[1] * g + _BT601[2] * b) / 255.0
    return np.round(y).astype(np.float32)


def niqe(image) -> float:
    """NIQE of an image (lower = more natural); typical photos score 2-8.

    ``image``: gray, RGB or RGBA; uint8, uint16 or float on the 0-255 scale
    (see :mod:`rain2avoid.noref`). It is scored on its rounded BT.601 luma,
    cropped to whole 96x96 blocks: it needs at least two blocks (192x96).
    Raises ``ValueError`` for a smaller image, or one without texture.
    """
    y = _luma(image)
    rows, cols = y.shape[0] // NIQE_BLOCK, y.shape[1] // NIQE_BLOCK
    if rows * cols < 2:
        raise ValueError(f"niqe: the image must hold at least two whole {NIQE_BLOCK}x{NIQE_BLOCK} blocks "
                         f"(e.g. 192x96 pixels), got {y.shape[1]}x{y.shape[0]}")
    y = y[:rows * NIQE_BLOCK, :cols * NIQE_BLOCK]
    fine = _block_features(_mscn(y), NIQE_BLOCK)
    half = imresize(y / 255.0, 0.5).astype(np.float32) * np.float32(255)  # single, see _mscn
    coarse = _block_features(_mscn(half), NIQE_BLOCK // 2)
    features = np.concatenate([fine, coarse], axis=1)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        raise ValueError("niqe: undefined for this image: fewer than two 96x96 blocks have any texture")
    pristine = load_parameters("niqe_pristine.npz")
    d = pristine["mean"] - np.nanmean(features, axis=0)
    cov = (pristine["cov"] + np.cov(complete, rowvar=False)) / 2
    return float(np.sqrt(d @ np.linalg.pinv(cov) @ d))
