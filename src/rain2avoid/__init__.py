"""rain2avoid: self-supervised single-image rain removal (Rain2Avoid), fast on a CPU.

>>> import rain2avoid
>>> clean = rain2avoid.derain(rain2avoid.read_image("rainy.jpg"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "derain", "derain_detailed", "DerainResult", "read_image", "write_image", "ImageReadError",
    "ImageWriteError", "MaskResult", "rain_mask", "streak_angle", "psnr", "ssim", "niqe", "brisque",
    "expected_reference", "sample_references", "PRESETS", "Settings", "Model", "ModelFileError", "load_model",
    "train_folder", "train_image", "derain_video", "__version__",
]

# Where each public name is defined. They are imported on first use (PEP 562), not here, so that
# `import rain2avoid` and `rain2avoid --help` do not load torch.
_SOURCES = {
    "io": ("read_image", "write_image", "ImageReadError", "ImageWriteError"),
    "ldgp": ("MaskResult", "rain_mask", "streak_angle"),
    "metrics": ("psnr", "ssim"),
    "noref": ("niqe", "brisque"),
    "pipeline": ("derain", "derain_detailed", "DerainResult"),
    "sdr": ("expected_reference", "sample_references"),
    "sdrl": ("PRESETS", "Settings", "Model", "ModelFileError", "load_model", "train_folder", "train_image"),
    "video": ("derain_video",),  # PyAV (the "video" extra) is imported only when a video is opened
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported at once
    from .io import ImageReadError, ImageWriteError, read_image, write_image
    from .ldgp import MaskResult, rain_mask, streak_angle
    from .metrics import psnr, ssim
    from .noref import brisque, niqe
    from .pipeline import DerainResult, derain, derain_detailed
    from .sdr import expected_reference, sample_references
    from .sdrl import PRESETS, Model, ModelFileError, Settings, load_model, train_folder, train_image
    from .video import derain_video


def __getattr__(name: str):
    """A public name (or a submodule, such as ``rain2avoid.io``), imported on first access."""
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
        globals()[name] = value  # found directly from now on
        return value
    if name.isidentifier() and not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":  # the submodule exists but needs what is missing
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
