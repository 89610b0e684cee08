"""Finding the images in a folder, in natural order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

from .read import PathLike

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Lower-case file suffixes that :func:`list_images` picks up."""


def list_images(folder: PathLike) -> List[Path]:
    """Return the image files directly inside ``folder``, in natural order.

    Files count when their suffix is in :data:`IMAGE_EXTENSIONS` (any case);
    hidden files (name starting with '.') and sub-folders are skipped.
    Natural order sorts numbers by value, so ``2.png`` comes before ``10.png``.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"no such folder: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    found = [
        entry
        for entry in root.iterdir()
        if not entry.name.startswith(".")
        and entry.suffix.lower() in IMAGE_EXTENSIONS
        and entry.is_file()
    ]
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> Tuple[list, str]:
    """Sort key that compares digit runs by number and text case-insensitively.

    Splitting on a captured digit run puts text at even and numbers at odd
    positions, so keys of any two names compare element by element.
    """
    parts = re.split(r"([0-9]+)", path.name)
    key = [int(part) if index % 2 else part.casefold() for index, part in enumerate(parts)]
    return key, path.name
