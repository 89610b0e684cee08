"""rain2avoid: self-supervised single-image rain removal (Rain2Avoid), fast on a CPU."""

from .ldgp import MaskResult, rain_mask, streak_angle
from .metrics import psnr, ssim
from .sdr import expected_reference, sample_references

__version__ = "0.1.0"

__all__ = [
    "MaskResult", "rain_mask", "streak_angle", "psnr", "ssim",
    "expected_reference", "sample_references", "__version__",
]
