"""No-reference image quality: NIQE and BRISQUE (lower = better for both), no clean image needed.

>>> from rain2avoid import niqe, brisque
>>> niqe(image), brisque(image)

One convention, the one of :mod:`rain2avoid.metrics`: images are gray, RGB or
RGBA (alpha ignored); uint8 as it is, uint16 divided by 257, float taken as
already on the 0-255 scale (a non-constant float image within [0, 1] is refused:
multiply it by 255). Both reproduce published reference implementations
(NIQE: MATLAB ``niqe`` / BasicSR 1.4.2; BRISQUE: the ``brisque`` 0.2.0 package)
with their parameter files shipped here: see NOTICE.md beside this file.
"""

from .brisque_metric import BRISQUE_MIN_SIZE, brisque, brisque_features
from .niqe_metric import NIQE_BLOCK, imresize, niqe

__all__ = ["niqe", "brisque", "brisque_features", "imresize", "NIQE_BLOCK", "BRISQUE_MIN_SIZE"]
