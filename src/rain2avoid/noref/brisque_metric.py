"""BRISQUE, the Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy and Bovik, IEEE TIP 2012).

Natural-scene statistics of the gray image and of its half-size copy (36
numbers) go through a support vector regressor trained on the LIVE database's
human opinion scores. Lower is better; photos mostly score 0-60 (the scale is
about 0-100, a score can fall outside). This reproduces the scores of the ``brisque`` 0.2.0 package with the
LIVE-trained RBF model it ships (see NOTICE.md beside this file).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.optimize import brentq
from scipy.special import gamma, gammaln

from .common import checked_image, gaussian_window, load_parameters

__all__ = ["brisque", "brisque_features", "BRISQUE_MIN_SIZE"]

BRISQUE_MIN_SIZE = 14
"""Smallest side BRISQUE accepts: its half-size copy must still hold the 7x7 window."""

_GRAY = (0.2125, 0.7154, 0.0721)  # scikit-image's rgb2gray (Rec. 709 luminance), as the model was used
_C = 1 / 255  # stabilises the contrast normalisation of a 0-1 image
_ALPHA_RANGE = (0.05, 100.0)  # the shape is solved for in here; phi is monotonic on it


def _log_phi(alpha: float) -> float:
    """log of Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), which grows from 0 to 3/4 with the shape a."""
    return 2 * gammaln(2 / alpha) - gammaln(1 / alpha) - gammaln(3 / alpha)


def _shape(target: float) -> float:
    """The generalised Gaussian shape alpha whose moment ratio is ``target`` (clipped to the range)."""
    lo, hi = _ALPHA_RANGE
    if not np.isfinite(target):
        return float("nan")
    if target <= np.exp(_log_phi(lo)):
        return lo
    if target >= np.exp(_log_phi(hi)):
        return hi
    return brentq(lambda a: _log_phi(a) - np.log(target), lo, hi, xtol=1e-12)


def _aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian fit: shape, mean, left and right variance (moment matching).

    Left are the negative values, right the others (zeros included).
    """
    x = x.ravel()
    neg, pos = np.minimum(x, 0), np.maximum(x, 0)
    n_neg = np.count_nonzero(neg)
    sq_neg, sq_pos = float(np.einsum("i,i->", neg, neg)), float(np.einsum("i,i->", pos, pos))  # no BLAS threads
    with np.errstate(divide="ignore", invalid="ignore"):
        var_l = sq_neg / n_neg if n_neg else np.nan
        var_r = sq_pos / (x.size - n_neg) if n_neg < x.size else np.nan
        g = np.sqrt(var_l) / np.sqrt(var_r)
        r = ((pos.sum() - neg.sum()) / x.size) ** 2 / ((sq_neg + sq_pos) / x.size)
        alpha = _shape(r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2)
        mean = ((np.sqrt(var_r) - np.sqrt(var_l)) * np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
                * gamma(2 / alpha) / gamma(1 / alpha))
    return alpha, mean, var_l, var_r


def _scale_features(gray: np.ndarray) -> list[float]:
    """The 18 features of one scale: the normalised image and its products with 4 neighbours."""
    window = gaussian_window()
    mu = cv2.filter2D(gray, -1, window, borderType=cv2.BORDER_CONSTANT)  # zero padding, as the model used
    sd = np.sqrt(np.abs(cv2.filter2D(gray * gray, -1, window, borderType=cv2.BORDER_CONSTANT) - mu * mu))
    m = (gray - mu) / (sd + _C)
    alpha, _, var_l, var_r = _aggd(m)
    features = [alpha, (var_l + var_r) / 2]
    neighbours = ((m[:, :-1], m[:, 1:]), (m[:-1, :], m[1:, :]), (m[:-1, :-1], m[1:, 1:]), (m[1:, :-1], m[:-1, 1:]))
    for a, b in neighbours:  # right, below, below right, above right
        features += list(_aggd(a * b))
    return features


def _gray(image, who: str) -> np.ndarray:
    """Gray on 0-1 exactly as scikit-image's ``rgb2gray`` computes it (scale, then one matrix product).

    Bit for bit: where a picture is flat, BRISQUE scores the sign of rounding
    noise, so another order of the same arithmetic moves the score by up to 0.5.
    """
    image, scale = checked_image(image, who)
    if image.ndim == 2:  # a gray picture scores like its RGB copy (the weights add up to 1)
        return image.astype(np.float64) * (scale / 255.0)
    gray = np.empty(image.shape[:2])
    for top in range(0, len(gray), 256):  # in bands of rows: no float copy of the whole picture
        gray[top:top + 256] = (image[top:top + 256].astype(np.float64) * (scale / 255.0)) @ np.array(_GRAY)
    return gray


def _features(image, who: str) -> np.ndarray:
    gray = _gray(image, who)
    if min(gray.shape) < BRISQUE_MIN_SIZE:
        raise ValueError(f"{who}: the image must be at least {BRISQUE_MIN_SIZE}x{BRISQUE_MIN_SIZE} pixels, "
                         f"got {gray.shape[1]}x{gray.shape[0]}")
    half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    return np.array(_scale_features(gray) + _scale_features(half))


def brisque_features(image) -> np.ndarray:
    """The 36 BRISQUE features: 18 of the gray image, 18 of its half-size copy (OpenCV bicubic)."""
    return _features(image, "brisque_features")


def brisque(image) -> float:
    """BRISQUE score of an image (lower = better): the LIVE-trained RBF support vector regression.

    ``image``: gray, RGB or RGBA; uint8, uint16 or float on the 0-255 scale
    (see :mod:`rain2avoid.noref`), at least 14x14 pixels. Raises ``ValueError``
    for a smaller image or one with no contrast at all (the score is undefined).
    """
    features = _features(image, "brisque")
    if not np.all(np.isfinite(features)):
        raise ValueError("brisque: undefined for this image (it has no contrast to measure)")
    model = load_parameters("brisque_live_svr.npz")
    lo, hi = model["feature_min"], model["feature_max"]
    x = -1 + 2 * (features - lo) / (hi - lo)
    distance = np.sum((model["support_vectors"].astype(np.float64) - x) ** 2, axis=1)
    return float(model["dual_coef"] @ np.exp(-model["gamma"] * distance) - model["rho"])
