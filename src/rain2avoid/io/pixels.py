"""Converting image arrays to and from float RGB in [0, 1], the pipeline's working form."""

from __future__ import annotations

import numpy as np
from PIL import Image

FLOAT_TOLERANCE = 1 / 255
"""How far outside [0, 1] float pixels may stray (rounding) before :func:`to_float_rgb` refuses them."""


UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
"""Pillow's modes of 16-bit grey pixels."""


def pillow_in_supported_mode(picture: Image.Image) -> Image.Image:
    """A Pillow image in a mode whose array the pipeline takes: L, I;16, RGB or RGBA, as
    it is or converted (palette, CMYK, YCbCr, LAB and HSV to RGB; bilevel to L; grey or
    palette with alpha to RGBA). ValueError for the modes of other pixel types (``"I"``:
    32-bit integers, ``"F"``: 32-bit floats)."""
    mode = picture.mode
    if mode in ("L", "RGB", "RGBA") or mode in UINT16_MODES:
        return picture
    if mode == "1":
        return picture.convert("L")
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and picture.has_transparency_data):
        return picture.convert("RGBA")
    if mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return picture.convert("RGB")
    raise ValueError(f"unsupported pixel format {mode!r}")


def as_image(image) -> np.ndarray:
    """An image argument as a numpy array: arrays and array-likes (a CPU tensor) pass
    through ``np.asarray``; a Pillow image is first converted to L, I;16, RGB or RGBA as
    :func:`pillow_in_supported_mode` says (a palette image's colours, not its indices),
    and ValueError for one whose mode has no such form; anything else (a path, None, a
    list) raises a TypeError."""
    if isinstance(image, np.ndarray):
        return _native(image)
    if isinstance(image, Image.Image):
        try:
            return np.asarray(pillow_in_supported_mode(image))
        except ValueError:
            how = ("np.asarray(image).astype(np.uint16) if its values are 0-65535 (Pillow opens some 16-bit "
                   "files so)" if image.mode == "I" else "np.asarray(image) scaled to [0, 1]")
            raise ValueError(f"a Pillow image in mode {image.mode!r} has no 8- or 16-bit form to derain: pass "
                             f"{how}, or read its file with rain2avoid.read_image") from None
    if not (hasattr(image, "__array__") or hasattr(image, "__array_interface__")):
        raise TypeError(f"expected an image array (numpy (H, W), (H, W, 3) or (H, W, 4)), got "
                        f"{type(image).__name__}; to derain a file, read it with rain2avoid.read_image first")
    return _native(np.asarray(image))


def _native(array: np.ndarray) -> np.ndarray:
    """``array`` in the machine's byte order: big-endian 16-bit samples (a FITS or raw file's) as
    the uint16 they are."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def same_pixels(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two image arrays hold the same picture exactly: dtype, shape and every value."""
    return a.dtype == b.dtype and bool(np.array_equal(a, b))


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an image array to float32 RGB of shape (H, W, 3) in [0, 1].

    Gray is replicated into three channels, alpha is dropped, uint8 is divided
    by 255 and uint16 by 65535.  Float input must already be in [0, 1] (within
    :data:`FLOAT_TOLERANCE`, then clipped) and is returned as a float32 copy.
    Raises ValueError for an image without pixels, for NaN or infinite pixels
    and for float pixels outside [0, 1] (a 0-255 float image, say).
    """
    if image.ndim == 2:
        rgb = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 1:
        rgb = np.repeat(image, 3, axis=2)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[:, :, :3]
    else:
        first = " (channels first? image.transpose(1, 2, 0) puts them last)" if (
            image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[2] > 4) else ""
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}{first}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image has no pixels (shape {image.shape})")
    if image.dtype == np.uint8:
        return rgb.astype(np.float32) / np.float32(255)
    if image.dtype == np.uint16:
        return rgb.astype(np.float32) / np.float32(65535)
    if np.issubdtype(image.dtype, np.floating):
        return _checked_floats(rgb)
    hint = ""
    if image.dtype == np.bool_:
        hint = ": a mask? image.astype(np.uint8) * 255 makes it a grey image"
    elif np.issubdtype(image.dtype, np.integer):
        hint = ": for values in 0-255, image.astype(np.uint8); in 0-65535, image.astype(np.uint16)"
    raise ValueError(f"expected uint8, uint16 or float pixels, got {image.dtype}{hint}")


def _checked_floats(rgb: np.ndarray) -> np.ndarray:
    """Float RGB pixels as a float32 copy in [0, 1]; ValueError for non-finite or out-of-range ones."""
    bad = int(np.count_nonzero(~np.isfinite(rgb).all(axis=2)))
    if bad:
        raise ValueError(f"{bad} pixel{'s are' if bad > 1 else ' is'} NaN or infinite; "
                         "replace them (np.nan_to_num) before deraining")
    low, high = float(rgb.min()), float(rgb.max())
    if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
        raise ValueError(f"float pixels must be in [0, 1], found [{low:.4g}, {high:.4g}]: divide a 0-255 "
                         "image by 255 (or pass it as uint8)")
    return np.clip(rgb, 0, 1).astype(np.float32, copy=False)


def from_float_rgb(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Convert a float RGB result (H, W, 3) back to the shape and dtype of ``like``.

    Values are clipped to [0, 1] (NaN becomes 0).  A gray ``like`` gets the
    plain mean of the three channels; an RGBA ``like`` gets the result's RGB
    plus its own alpha channel unchanged.  uint8/uint16 are rounded to the
    nearest value; a float ``like`` gives its own float dtype.
    """
    if not (like.ndim == 2 or (like.ndim == 3 and like.shape[2] in (1, 3, 4))):
        raise ValueError(f"unsupported 'like' shape {like.shape}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != like.shape[:2]:
        raise ValueError(
            f"expected a float RGB array of shape {like.shape[:2] + (3,)}, got {rgb.shape}"
        )
    values = np.clip(np.nan_to_num(rgb.astype(np.float32), nan=0.0), 0.0, 1.0)
    if like.ndim == 2 or (like.ndim == 3 and like.shape[2] == 1):
        values = values.mean(axis=2, dtype=np.float32).reshape(like.shape)
    out = _float_to_dtype(values, like.dtype)
    if like.ndim == 3 and like.shape[2] == 4:
        out = np.concatenate([out, like[:, :, 3:4].astype(out.dtype)], axis=2)
    return out


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float (H, W, 3) in [0, 1] -> uint8, rounded (what the mask functions take)."""
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _float_to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Scale [0, 1] floats to ``dtype`` (uint8, uint16 or a float dtype)."""
    if dtype == np.uint8:
        return np.rint(values * 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.rint(values * 65535).astype(np.uint16)
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    raise ValueError(f"unsupported 'like' dtype {dtype}")
