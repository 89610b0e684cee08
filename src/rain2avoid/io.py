"""Image reading and writing for rain2avoid.

This module reads and writes image files (with :mod:`rain2avoid.exif` for
their metadata and :mod:`rain2avoid.files` for atomic writes).  It is careful with users'
photos:

* Reading checks the size in the header before any pixels are decoded, and
  every problem with an input file (missing, empty, not an image, truncated,
  corrupt, too large) is reported as one :class:`ImageReadError` whose message
  names the file and the reason.
* Pixels come back upright (EXIF orientation applied) in RGB order, with the
  bit depth of the file (``uint8`` or ``uint16``) and the alpha channel kept.
* Writing encodes the whole image in memory first, then writes a hidden
  temporary file next to the target, flushes it to disk and renames it over the
  target.  The target is therefore either the old file or the complete new
  one, never a partial file.  Output problems raise :class:`ImageWriteError`.

Pixel decoding uses OpenCV (fast, keeps 16 bits) with Pillow as the fallback;
Pillow also reads the header (size, EXIF, ICC profile) without decoding.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np
from PIL import (
    BmpImagePlugin,
    Image,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from .exif import (
    _TIFF_LAYOUT_TAGS,
    EXIF_HEADER,
    exif_for_writing,
    make_upright,
    read_exif,
)
from .files import ImageWriteError, temporary_files, write_bytes  # noqa: F401  (this module's API too)
from .files import describe_os_error as _describe_os_error
from .files import write_atomically as _write_file

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width * height) that :func:`read_image` accepts by default."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Lower-case file suffixes that :func:`list_images` picks up."""

# Output suffix -> format name (the same names ImageMeta.format uses).
_SUFFIX_FORMATS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
}

# Format name -> extension OpenCV uses to pick its encoder.
_OPENCV_EXTENSIONS = {
    "png": ".png",
    "jpeg": ".jpg",
    "bmp": ".bmp",
    "tiff": ".tif",
    "webp": ".webp",
}

# Formats that can only hold 8 bits per sample.
_EIGHT_BIT_FORMATS = ("jpeg", "bmp", "webp")

# Pillow's header readers.  Building the plugin class directly reads only the
# header and skips Pillow's process-wide decompression-bomb limit, so the
# caller's max_pixels is the only size limit and no Pillow global is touched.
_HEADER_READERS = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
}

# BMP info-header sizes (BITMAPCOREHEADER ... BITMAPV5HEADER).
_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)

_UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")

class ImageReadError(ValueError):
    """An input file cannot be used as an image.

    The message is one line, ``"cannot read <path>: <reason>"``; the path and
    the reason are also available as :attr:`path` and :attr:`reason`.
    """

    def __init__(self, path: PathLike, reason: str):
        super().__init__(f"cannot read {os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class ImageMeta:
    """Metadata of an image file, as returned by ``read_image(..., with_meta=True)``.

    ``format`` is detected from the file content: 'png', 'jpeg', 'bmp',
    'tiff' or 'webp'.  ``exif`` is the EXIF block as ``b"Exif\\0\\0"``
    followed by TIFF-structured data (Pillow's convention), with the
    orientation tag already reset to 1 because the pixels are returned
    upright; ``None`` when the file has no EXIF.  ``icc_profile`` is the
    embedded colour profile, or ``None``.
    """

    format: str
    exif: Optional[bytes] = None
    icc_profile: Optional[bytes] = None


class _BadImage(Exception):
    """Internal: the file content is unusable; carries the reason only."""


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def read_image(
    path: PathLike,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    with_meta: bool = False,
) -> Union[np.ndarray, Tuple[np.ndarray, ImageMeta]]:
    """Read an image file as an upright RGB(A) numpy array.

    Returns an array of shape (H, W) for grayscale, (H, W, 3) for RGB or
    (H, W, 4) for RGBA, with dtype ``uint8`` or ``uint16`` as stored in the
    file.  Palette images become RGB (RGBA when they have transparency) and
    gray+alpha images become RGBA.  The format is detected from the content,
    not from the file name.  EXIF orientation is applied to the pixels.

    The image size is checked from the header before any pixel is decoded:
    an image with more than ``max_pixels`` pixels is refused (``None``
    disables the limit).

    With ``with_meta=True`` returns ``(array, ImageMeta)``.

    Raises :class:`ImageReadError` for every problem with the file.
    """
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive number, got {max_pixels!r}")
    return decode_image(_read_file_bytes(path), path, max_pixels, with_meta)


def decode_image(
    data: bytes,
    name: PathLike,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    with_meta: bool = False,
) -> Union[np.ndarray, Tuple[np.ndarray, ImageMeta]]:
    """:func:`read_image` on the content of a file already in memory.

    ``name`` only names the file in error messages.  Raises
    :class:`ImageReadError` for every problem with the content.
    """
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive number, got {max_pixels!r}")
    if not data:
        raise ImageReadError(name, "file is empty")
    try:
        pixels, meta = _decode(bytes(data), max_pixels)
    except _BadImage as exc:
        raise ImageReadError(name, str(exc)) from None
    except Exception as exc:  # an unforeseen decoder failure still gets the one error type
        raise ImageReadError(name, f"truncated or corrupt image ({_short(exc)})") from exc
    return (pixels, meta) if with_meta else pixels


def _read_file_bytes(path: PathLike) -> bytes:
    """Return the whole content of ``path``; file problems become ImageReadError."""
    target = Path(path)
    try:
        if target.is_dir():
            raise ImageReadError(path, "is a folder, not an image file")
        data = target.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except OSError as exc:
        raise ImageReadError(path, _describe_os_error(exc)) from None
    if not data:
        raise ImageReadError(path, "file is empty")
    return data


def _decode(data: bytes, max_pixels: Optional[int]) -> Tuple[np.ndarray, ImageMeta]:
    """Decode file content into upright RGB(A) pixels and metadata.

    Raises _BadImage with a human-readable reason when the content is unusable.
    """
    fmt = _sniff_format(data)
    if fmt is None:
        raise _BadImage("not an image (expected PNG, JPEG, BMP, TIFF or WebP content)")
    if fmt == "webp":  # Pillow's WebP reader allocates the canvas while reading the header
        canvas = _webp_canvas_size(data)
        if canvas is not None:
            _check_size(canvas, max_pixels)
    try:
        header = _HEADER_READERS[fmt](BytesIO(data))
    except Image.DecompressionBombError as exc:  # only possible above Pillow's own limit
        raise _BadImage(f"image is too large for Pillow's {fmt.upper()} reader ({exc})") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise _BadImage(f"truncated or corrupt {fmt.upper()} file ({_short(exc)})") from None
    with header:
        _check_size(header.size, max_pixels)
        exif, orientation = read_exif(data, fmt, header)
        icc_profile = header.info.get("icc_profile") or None
        pixels, already_upright = _decode_pixels(data, fmt, header)
    _check_size((pixels.shape[1], pixels.shape[0]), max_pixels)
    if not already_upright:
        pixels = make_upright(pixels, orientation)
    return pixels, ImageMeta(format=fmt, exif=exif, icc_profile=icc_profile)


def _sniff_format(data: bytes) -> Optional[str]:
    """Return the image format name from the file signature, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM" and len(data) >= 18:
        if struct.unpack("<I", data[14:18])[0] in _BMP_HEADER_SIZES:
            return "bmp"
    return None


def _webp_canvas_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from the first chunk of a WebP file, or None if unreadable."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:  # extended: 24-bit width-1, height-1
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:  # lossless: 14-bit width-1, height-1
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:  # lossy: 14-bit width, height
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    return None


def _check_size(size: Tuple[int, int], max_pixels: Optional[int]) -> None:
    """Refuse empty images and images above ``max_pixels`` (size is (W, H))."""
    width, height = size
    if width <= 0 or height <= 0:
        raise _BadImage(f"image has no pixels (size {width}x{height})")
    pixels = width * height
    if max_pixels is not None and pixels > max_pixels:
        raise _BadImage(
            f"image is {width}x{height} = {pixels:,} pixels ({pixels / 1e6:.1f} MP), above the "
            f"limit of {max_pixels:,} pixels (raise --max-pixels to allow it)"
        )


def _decode_pixels(data: bytes, fmt: str, header: Image.Image) -> Tuple[np.ndarray, bool]:
    """Decode the pixels; return (RGB(A) array, whether it is already upright).

    OpenCV decodes first because it keeps 16-bit colour, with Pillow as the
    fallback.  TIFF files with at most 8 bits per sample go to Pillow
    directly, because OpenCV drops the alpha of gray+alpha TIFFs and
    premultiplies unassociated alpha.  Both libraries apply the TIFF
    orientation tag themselves (OpenCV even with IMREAD_UNCHANGED), so TIFF
    pixels come back upright; other formats still need the EXIF orientation.
    """
    upright = fmt == "tiff"
    if fmt == "tiff" and _pillow_decodes_tiff_exactly(header):
        return _pillow_pixels(header), upright
    pixels = _opencv_pixels(data)
    if pixels is not None:
        if fmt == "tiff":
            _check_tiff_layout(pixels, header)
        return pixels, upright
    if fmt == "tiff":
        raise _BadImage("truncated or corrupt TIFF file (cannot decode the pixels)")
    return _pillow_pixels(header), upright


def _opencv_pixels(data: bytes) -> Optional[np.ndarray]:
    """Decode with OpenCV into RGB(A) order; None when OpenCV cannot."""
    try:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if bgr is None or bgr.size == 0:
        return None
    if bgr.dtype not in (np.uint8, np.uint16):
        raise _BadImage(
            f"unsupported sample type {bgr.dtype} (only 8- and 16-bit images are supported)"
        )
    return _opencv_to_rgb(bgr)


def _opencv_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """Convert an OpenCV array (gray, gray+alpha, BGR, BGRA) to gray/RGB/RGBA."""
    if bgr.ndim == 2:
        return bgr
    channels = bgr.shape[2]
    if channels == 1:
        return np.ascontiguousarray(bgr[:, :, 0])
    if channels == 2:
        gray, alpha = bgr[:, :, 0], bgr[:, :, 1]
        return np.stack([gray, gray, gray, alpha], axis=2)
    if channels == 3:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGBA)
    raise _BadImage(f"unsupported number of channels ({channels})")


def _pillow_decodes_tiff_exactly(header: Image.Image) -> bool:
    """True when Pillow returns the TIFF's samples unchanged (<= 8 bits or 16-bit gray)."""
    bits = header.tag_v2.get(258, 1)
    deepest = max(bits) if isinstance(bits, tuple) else bits
    return deepest <= 8 or header.mode in _UINT16_MODES


def _check_tiff_layout(pixels: np.ndarray, header: Image.Image) -> None:
    """Refuse a TIFF that OpenCV decoded with fewer channels or bits than stored."""
    samples = header.tag_v2.get(277, 1)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    wide_enough = pixels.dtype == np.uint16
    if channels < samples or not wide_enough:
        raise _BadImage(
            f"unsupported TIFF layout ({samples} samples of {header.tag_v2.get(258)} bits)"
        )


def _pillow_pixels(header: Image.Image) -> np.ndarray:
    """Decode with Pillow into a gray/RGB/RGBA uint8 or gray uint16 array."""
    try:
        header.load()
        picture = _pillow_in_supported_mode(header)
        # np.array copies: arrays viewing Pillow's buffer are read-only.
        return np.array(picture, dtype=np.uint16 if picture.mode in _UINT16_MODES else np.uint8)
    except _BadImage:
        raise
    except Image.DecompressionBombError:  # Pillow's TIFF loader has its own global limit
        raise _BadImage(
            f"image is too large for Pillow's {header.format} decoder "
            f"(limit {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.1f} MP)"
        ) from None
    except Exception as exc:  # Pillow raises many types for broken data
        raise _BadImage(f"truncated or corrupt {header.format} file ({_short(exc)})") from None


def _pillow_in_supported_mode(picture: Image.Image) -> Image.Image:
    """Convert a loaded Pillow image to L, I;16, RGB or RGBA (alpha kept)."""
    mode = picture.mode
    if mode in ("L", "RGB", "RGBA") or mode in _UINT16_MODES:
        return picture
    if mode == "1":
        return picture.convert("L")
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and picture.has_transparency_data):
        return picture.convert("RGBA")
    if mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return picture.convert("RGB")
    raise _BadImage(f"unsupported pixel format {mode!r}")


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def write_image(
    path: PathLike,
    image: np.ndarray,
    meta: Optional[ImageMeta] = None,
    jpeg_quality: int = 95,
    overwrite: bool = True,
) -> Path:
    """Write ``image`` (as returned by :func:`read_image`) to ``path`` atomically.

    The format comes from the suffix of ``path`` (.png .jpg .jpeg .bmp .tif
    .tiff .webp, any case).  ``image`` is (H, W) gray, (H, W, 3) RGB or
    (H, W, 4) RGBA, ``uint8`` or ``uint16``.  16-bit images stay 16-bit in
    PNG and TIFF; JPEG, BMP and WebP get ``round(x / 257)``.  WebP is written
    lossless.  JPEG cannot hold transparency: an RGBA image whose alpha is
    fully opaque is written as RGB, any other RGBA image is refused.

    ``meta.exif`` (orientation forced to 1) and ``meta.icc_profile`` are
    embedded in JPEG, PNG and WebP, and in TIFF except 16-bit colour TIFF;
    BMP cannot hold them.  When metadata cannot be stored a warning is issued
    and the pixels are written without it.

    Parent folders are created.  With ``overwrite=False`` an existing target
    raises FileExistsError.  Returns the path written.

    Raises ValueError for an unsupported suffix or array, and
    :class:`ImageWriteError` when the file cannot be written; in both cases
    an existing target is left untouched and no temporary file remains.
    """
    target = Path(path)
    data = encode_image(target, image, meta, jpeg_quality)
    if not overwrite and os.path.lexists(target):
        raise FileExistsError(
            f"{target} already exists; refusing to overwrite it (overwrite=False)"
        )
    _write_file(target, data)
    return target


def encode_image(
    path: PathLike,
    image: np.ndarray,
    meta: Optional[ImageMeta] = None,
    jpeg_quality: int = 95,
) -> bytes:
    """The bytes :func:`write_image` would write to ``path`` (the format comes from its suffix).

    Nothing is written; write the result with :func:`write_bytes`.  Raises
    ValueError for an unsupported suffix or array.
    """
    target = Path(path)
    fmt = _SUFFIX_FORMATS.get(target.suffix.lower())
    if fmt is None:
        supported = " ".join(sorted(_SUFFIX_FORMATS))
        raise ValueError(
            f"cannot write {target}: unsupported output format {target.suffix!r} "
            f"(use one of {supported})"
        )
    try:
        return _encode(image, fmt, meta, jpeg_quality)
    except ValueError as exc:
        raise ValueError(f"cannot write {target}: {exc}") from None


def _encode(
    image: np.ndarray, fmt: str, meta: Optional[ImageMeta], jpeg_quality: int
) -> bytes:
    """Encode ``image`` as ``fmt`` in memory; ValueError when impossible."""
    pixels = _checked_pixels(image)
    if not (isinstance(jpeg_quality, (int, np.integer)) and 1 <= jpeg_quality <= 100):
        raise ValueError(f"jpeg_quality must be an integer from 1 to 100, got {jpeg_quality!r}")
    if fmt in _EIGHT_BIT_FORMATS and pixels.dtype == np.uint16:
        pixels = _uint16_to_uint8(pixels)
    if fmt == "jpeg" and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = _drop_opaque_alpha(pixels)
    exif = exif_for_writing(meta.exif) if meta is not None else None
    icc = (meta.icc_profile or None) if meta is not None else None
    if (exif or icc) and fmt == "tiff" and _pillow_can_write(pixels):
        return _encode_tiff_with_pillow(pixels, exif, icc)
    if (exif or icc) and fmt in ("jpeg", "png", "webp"):
        encoded = _encode_opencv(pixels, fmt, jpeg_quality, exif, icc)
        if encoded is not None:
            return encoded
        warnings.warn(
            f"the EXIF/ICC metadata does not fit in a {fmt.upper()} file; writing without it",
            stacklevel=3,
        )
    elif (exif or icc) and fmt == "tiff":
        warnings.warn(
            "EXIF/ICC metadata cannot be stored in a 16-bit colour TIFF; writing without it",
            stacklevel=3,
        )
    encoded = _encode_opencv(pixels, fmt, jpeg_quality, None, None)
    if encoded is None:
        raise ValueError(f"the {fmt.upper()} encoder failed for an image of shape {pixels.shape}")
    return encoded


def _checked_pixels(image: np.ndarray) -> np.ndarray:
    """Validate an image array for writing; returns it as (H, W) or (H, W, 3|4)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"expected uint8 or uint16 pixels, got {image.dtype} "
            "(convert float results with from_float_rgb first)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(
            f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"cannot write an image without pixels (shape {image.shape})")
    return image


def _uint16_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale 16-bit samples to 8 bits: round(x / 257), exact for x = 257 * k."""
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _drop_opaque_alpha(rgba: np.ndarray) -> np.ndarray:
    """Return the RGB part of a fully opaque uint8 RGBA image; refuse any other."""
    if not np.all(rgba[:, :, 3] == 255):
        raise ValueError(
            "JPEG cannot store transparency; write PNG, TIFF or WebP to keep the alpha channel"
        )
    return rgba[:, :, :3]


def _encode_opencv(
    pixels: np.ndarray,
    fmt: str,
    jpeg_quality: int,
    exif: Optional[bytes],
    icc: Optional[bytes],
) -> Optional[bytes]:
    """Encode RGB(A) pixels with OpenCV, optionally embedding EXIF/ICC; None on failure."""
    bgr = _rgb_to_opencv(pixels)
    ext = _OPENCV_EXTENSIONS[fmt]
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == "jpeg" else []
    kinds, chunks = [], []
    if exif:
        kinds.append(cv2.IMAGE_METADATA_EXIF)
        chunks.append(np.frombuffer(exif, dtype=np.uint8))
    if icc:
        kinds.append(cv2.IMAGE_METADATA_ICCP)
        chunks.append(np.frombuffer(icc, dtype=np.uint8))
    try:
        if kinds:
            ok, buffer = cv2.imencodeWithMetadata(ext, bgr, kinds, chunks, params)
        else:
            ok, buffer = cv2.imencode(ext, bgr, params)
    except cv2.error:
        return None
    return buffer.tobytes() if ok else None


def _rgb_to_opencv(pixels: np.ndarray) -> np.ndarray:
    """Reorder gray/RGB/RGBA pixels into OpenCV's gray/BGR/BGRA layout."""
    if pixels.ndim == 2:
        return np.ascontiguousarray(pixels)
    if pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)


def _pillow_can_write(pixels: np.ndarray) -> bool:
    """True for arrays Pillow writes to TIFF without loss (8-bit any, 16-bit gray)."""
    return pixels.dtype == np.uint8 or pixels.ndim == 2


def _encode_tiff_with_pillow(
    pixels: np.ndarray, exif: Optional[bytes], icc: Optional[bytes]
) -> bytes:
    """Encode a TIFF with Pillow, which (unlike OpenCV) can embed EXIF and ICC.

    The file is uncompressed: Pillow's compressed (libtiff) TIFF writer cannot
    store the Exif and GPS sub-directories.  Layout tags found in the EXIF
    (width, strip offsets, ...) are dropped so they cannot clash with the
    real ones.
    """
    picture = Image.fromarray(np.ascontiguousarray(pixels))  # uint16 gray -> "I;16"
    extra = {}
    if exif:
        tags = Image.Exif()
        tags.load(EXIF_HEADER + exif)
        for tag in _TIFF_LAYOUT_TAGS:
            if tag in tags:
                del tags[tag]
        extra["exif"] = tags
    if icc:
        extra["icc_profile"] = icc
    out = BytesIO()
    picture.save(out, format="TIFF", **extra)
    return out.getvalue()


# ---------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Float conversion
# ---------------------------------------------------------------------------


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an image array to float32 RGB of shape (H, W, 3) in [0, 1].

    Gray is replicated into three channels, alpha is dropped, uint8 is divided
    by 255 and uint16 by 65535.  Float input is returned as a float32 copy.
    """
    if image.ndim == 2:
        rgb = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 1:
        rgb = np.repeat(image, 3, axis=2)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[:, :, :3]
    else:
        raise ValueError(
            f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}"
        )
    if image.dtype == np.uint8:
        return rgb.astype(np.float32) / np.float32(255)
    if image.dtype == np.uint16:
        return rgb.astype(np.float32) / np.float32(65535)
    if np.issubdtype(image.dtype, np.floating):
        return np.array(rgb, dtype=np.float32)
    raise ValueError(f"expected uint8, uint16 or float pixels, got {image.dtype}")


def from_float_rgb(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Convert a float RGB result (H, W, 3) back to the shape and dtype of ``like``.

    Values are clipped to [0, 1] (NaN becomes 0).  A gray ``like`` gets the
    plain mean of the three channels; an RGBA ``like`` gets the result's RGB
    plus its own alpha channel unchanged.  uint8/uint16 are rounded to the
    nearest value; a float ``like`` gives float32.
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
    """Scale [0, 1] floats to ``dtype`` (uint8, uint16 or float)."""
    if dtype == np.uint8:
        return np.rint(values * 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.rint(values * 65535).astype(np.uint16)
    if np.issubdtype(dtype, np.floating):
        return values.astype(np.float32)
    raise ValueError(f"unsupported 'like' dtype {dtype}")


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    """One-line description of a decoder exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
