"""One network for a whole folder, with memory bounded however many images it holds.

:func:`train_files` reads each image and makes its training data (mask,
references, loss weights: ``pipeline.training_data``) only when
``sdrl.train_stream`` asks for it, so at most ``budget_mb`` of training data
is in memory at once. Folders that fit train exactly as ``sdrl.train_folder``
on the whole list would.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..io import DEFAULT_MAX_PIXELS, read_image, to_float_rgb

if TYPE_CHECKING:  # sdrl loads torch, which the command line's --help must not (DEFAULT_BUDGET_MB)
    from ..sdrl import Model, Settings

__all__ = ["train_files", "DEFAULT_BUDGET_MB"]

DEFAULT_BUDGET_MB = 1024
"""Training data held at once by default: about 230 images of 480x320 with the expected reference."""


def train_files(files: Sequence[Path], settings: Settings, budget_mb: float = DEFAULT_BUDGET_MB,
                device: str = "cpu", progress: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                on_error: Callable[[Path, Exception], None] | None = None,
                on_load: Callable[[Path], None] | None = None) -> tuple[Model, int]:
    """Train one network on the images ``files``; returns it and the number of images used.

    A file that cannot be used is left out: ``on_error(path, error)`` is told
    (with no ``on_error`` the error propagates). ``on_load(path)`` is called
    after each file is read, for progress. Raises ValueError when no file could
    be used.
    """
    from ..pipeline import training_data
    from ..sdrl import train_stream
    used = 0

    def source(path: Path) -> Callable[[], tuple | None]:
        def load():
            nonlocal used
            try:
                rgb = to_float_rgb(read_image(path, max_pixels=max_pixels))
                data = training_data(rgb, settings)
            except Exception as e:  # one bad file must not stop the others
                if on_error is None:
                    raise
                on_error(path, e)
                return None
            finally:
                if on_load is not None:
                    on_load(path)
            used += 1
            return rgb, data.targets, data.weights
        return load

    model = train_stream([source(Path(f)) for f in files], settings, budget_mb, device, progress)
    return model, used
