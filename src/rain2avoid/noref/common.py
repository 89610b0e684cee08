"""What NIQE and BRISQUE share: one image convention, the 7x7 Gaussian window and the parameter files."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from ..metrics import scale_to_255

__all__ = ["checked_image", "gaussian_window", "load_parameters"]

def checked_image(image, who: str) -> tuple[np.ndarray, float]:
    """``image`` as gray (H, W) or RGB (H, W, 3) in its own dtype, and the factor to the 0-255 scale.

    The convention of :mod:`rain2avoid.metrics` (:func:`~rain2avoid.metrics.scale_to_255`):
    uint8 as it is, uint16 divided by 257, float taken as already on the 0-255
    scale (a non-constant float image within [0, 1] is refused). (H, W, 1) is
    gray; the alpha of RGBA is ignored. Raises ``ValueError`` naming ``who`` otherwise.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"{who}: expected a gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4) image, "
                         f"got shape {image.shape}")
    image = image if image.ndim == 2 else image[..., :3]
    return image, scale_to_255(image, who)


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """Normalised 2-D Gaussian (MATLAB ``fspecial('gaussian', 7, 7/6)``), used by both metrics."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    window = np.outer(g, g)
    return window / window.sum()


@lru_cache(maxsize=None)
def load_parameters(name: str) -> dict:
    """The arrays of the parameter file ``name`` shipped beside this module (read-only, loaded once)."""
    with resources.files(__package__).joinpath(name).open("rb") as file, np.load(file) as data:
        arrays = {key: data[key] for key in data.files}
    for value in arrays.values():
        value.flags.writeable = False
    return arrays
