"""rain2avoid: self-supervised single-image rain removal (Rain2Avoid), fast on a CPU.

>>> import rain2avoid
>>> clean = rain2avoid.derain(rain2avoid.read_image("rainy.jpg"))
"""

from .io import ImageReadError, ImageWriteError, read_image, write_image
from .ldgp import MaskResult, rain_mask, streak_angle
from .metrics import psnr, ssim
from .noref import brisque, niqe
from .pipeline import DerainResult, derain, derain_detailed
from .sdr import expected_reference, sample_references
from .sdrl import PRESETS, Model, ModelFileError, Settings, load_model, train_folder, train_image
from .video import derain_video  # PyAV (the "video" extra) is imported only when a video is opened

__version__ = "0.1.0"

__all__ = [
    "derain", "derain_detailed", "DerainResult", "read_image", "write_image", "ImageReadError",
    "ImageWriteError", "MaskResult", "rain_mask", "streak_angle", "psnr", "ssim", "niqe", "brisque",
    "expected_reference", "sample_references", "PRESETS", "Settings", "Model", "ModelFileError", "load_model",
    "train_folder", "train_image", "derain_video", "__version__",
]
