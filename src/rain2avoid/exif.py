"""EXIF for rain2avoid's image files: the orientation that makes pixels upright, and the
metadata carried from an input to its output (orientation reset to 1, every other
byte kept). Used by :mod:`rain2avoid.io`; works on bytes and Pillow headers only.
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Optional, Tuple

import numpy as np
from PIL import Image, TiffImagePlugin

__all__ = ["UPRIGHT", "make_upright", "read_exif", "reset_orientation", "exif_for_writing"]

EXIF_HEADER = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112
_SHORT = 3  # TIFF field type of the orientation value

# TIFF tags that describe the pixel layout of a TIFF file.  They are dropped
# when the tags of a TIFF file are turned into EXIF for another file.
_TIFF_LAYOUT_TAGS = (
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281,
    284, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 513, 514,
    529, 530, 531, 532, 34675,
)

# Reorders pixels stored with EXIF orientation 2..8 so that they are upright.
UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def make_upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) so that the pixels are upright."""
    fix = UPRIGHT.get(orientation)
    return pixels if fix is None else np.ascontiguousarray(fix(pixels))


def read_exif(data: bytes, fmt: str, header: Image.Image) -> Tuple[Optional[bytes], int]:
    """Return (EXIF with orientation reset to 1 or None, original orientation)."""
    try:
        if fmt == "tiff":
            orientation = header.tag_v2.get(ORIENTATION_TAG, 1)
            return _tiff_tags_as_exif(data), orientation if orientation in UPRIGHT else 1
        raw = header.info.get("exif") or (_png_late_exif(data) if fmt == "png" else None)
        if not raw:
            return None, 1
        return reset_orientation(raw)
    except Exception:  # unreadable EXIF must not make a good image unreadable
        return None, 1


def reset_orientation(exif: bytes) -> Tuple[bytes, int]:
    """Return (exif with the orientation value set to 1, previous orientation).

    The value is patched in place, so every other byte (maker notes,
    thumbnail) stays exactly as it was.  Accepts EXIF with or without the
    ``Exif\\0\\0`` header and always returns it with the header.
    """
    tiff = exif[len(EXIF_HEADER):] if exif.startswith(EXIF_HEADER) else exif
    position = _orientation_position(tiff)
    if position is None:
        return EXIF_HEADER + tiff, 1
    order = "<" if tiff[:2] == b"II" else ">"
    orientation = struct.unpack_from(order + "H", tiff, position)[0]
    patched = tiff[:position] + struct.pack(order + "H", 1) + tiff[position + 2:]
    return EXIF_HEADER + patched, orientation if orientation in UPRIGHT else 1


def _orientation_position(tiff: bytes) -> Optional[int]:
    """Byte offset of the orientation value in the first IFD, or None."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", tiff, 4)[0]
    if ifd + 2 > len(tiff):
        return None
    count = struct.unpack_from(order + "H", tiff, ifd)[0]
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return None
        tag, kind = struct.unpack_from(order + "HH", tiff, entry)
        if tag == ORIENTATION_TAG and kind == _SHORT:
            return entry + 8
    return None


def _png_late_exif(data: bytes) -> Optional[bytes]:
    """Return the payload of a PNG eXIf chunk placed after the pixel data, if any.

    Pillow's header reader stops at the first IDAT chunk and so misses it.
    """
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"eXIf":
            return data[position + 8:position + 8 + length] or None
        if kind == b"IEND":
            return None
        position += 12 + length
    return None


def _tiff_tags_as_exif(data: bytes) -> Optional[bytes]:
    """Turn the descriptive tags of a TIFF file (Make, Model, Exif IFD...) into EXIF.

    Uses its own header reader: Pillow reads EXIF by seeking in the file,
    which must not disturb the reader that decodes the pixels.
    """
    with TiffImagePlugin.TiffImageFile(BytesIO(data)) as tiff:
        exif = tiff.getexif()
        for tag in _TIFF_LAYOUT_TAGS:
            if tag in exif:
                del exif[tag]
        if ORIENTATION_TAG in exif:
            exif[ORIENTATION_TAG] = 1
        return exif.tobytes() if len(exif) else None


def exif_for_writing(exif: Optional[bytes]) -> Optional[bytes]:
    """Return the TIFF part of ``exif`` with orientation 1, or None if empty."""
    if not exif:
        return None
    upright, _ = reset_orientation(exif)
    tiff = upright[len(EXIF_HEADER):]
    return tiff if len(tiff) >= 8 else None
