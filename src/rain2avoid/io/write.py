"""Writing image files atomically, with their metadata.

The whole image is encoded in memory first, then written to a hidden temporary
file next to the target, flushed to disk and renamed over the target
(:mod:`rain2avoid.files`). The target is therefore either the old file or the
complete new one, never a partial file. Output problems raise
:class:`~rain2avoid.files.ImageWriteError`.
"""

from __future__ import annotations

import os
import warnings
from io import BytesIO
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np
from PIL import Image

from ..exif import _TIFF_LAYOUT_TAGS, EXIF_HEADER, exif_for_writing
from ..files import write_atomically as _write_file
from .extra import carry_over, describe_segments, insert_segments
from .pixels import as_image, same_pixels
from .read import ImageMeta, PathLike

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

# TIFF tags about the file rather than the picture (description, resolution, software,
# orientation): losing them is no loss of metadata worth a warning.
_HOUSEKEEPING_TAGS = (270, 274, 282, 283, 296, 305)


def output_format(path: PathLike) -> Optional[str]:
    """The format :func:`write_image` writes to ``path`` ('png', 'jpeg', ...), or None."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower())


def format_suffix(fmt: str) -> str:
    """The usual suffix of a format name ('jpeg' -> '.jpg')."""
    return _OPENCV_EXTENSIONS[fmt]


def format_losses(path: PathLike, image: np.ndarray) -> List[str]:
    """What the format of ``path`` cannot hold of ``image``, before it is written: "transparency"
    (JPEG, unless the alpha is fully opaque) and "16 bits per sample" (JPEG, BMP, WebP)."""
    fmt = output_format(path)
    lost = []
    if fmt == "jpeg" and image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3] if image.dtype == np.uint8 else _uint16_to_uint8(image[:, :, 3])
        if not _opaque(alpha):
            lost.append("transparency")
    if fmt in _EIGHT_BIT_FORMATS and image.dtype == np.uint16:
        lost.append("16 bits per sample")
    return lost


def is_input_as_read(path: PathLike, pixels: np.ndarray, image: np.ndarray, meta: ImageMeta) -> bool:
    """Whether ``pixels``, to be written to ``path``, are ``image`` (read with ``meta``) untouched, in
    a file of the same format.

    Then the input file's own bytes can be written instead of encoding the pixels again: the
    same picture, with no second JPEG compression and every byte of metadata kept. A photo
    stored sideways keeps its EXIF orientation then, and shows upright as its input does.
    """
    return output_format(path) == meta.format and same_pixels(pixels, image)


def encode_result(path: PathLike, pixels: np.ndarray, image: np.ndarray, data: bytes, meta: ImageMeta,
                  losses: Optional[list] = None) -> bytes:
    """The bytes of ``pixels``, made from ``image`` (decoded from ``data`` with ``meta``), for ``path``:
    ``data`` itself where the picture came back untouched (:func:`is_input_as_read`: a photo in
    which no rain was found is not compressed a second time), else :func:`encode_image` with
    the input's metadata."""
    if is_input_as_read(path, pixels, image, meta):
        return data
    return encode_image(path, pixels, meta, losses=losses)


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
    (H, W, 4) RGBA, ``uint8`` or ``uint16`` (or a Pillow image, taken as its array,
    a palette one as its colours).  16-bit images stay 16-bit in
    PNG and TIFF; JPEG, BMP and WebP get ``round(x / 257)``.  WebP is written
    lossless, but at ``jpeg_quality`` where ``meta`` is a lossy WebP's (a
    photo's result then has about its size, not 4-5 times it).  A JPEG's colour is
    halved (4:2:0) unless ``meta`` is a 4:4:4 JPEG's.  JPEG cannot hold transparency: an RGBA image whose alpha is
    fully opaque is written as RGB, any other RGBA image is refused.

    ``meta.exif`` (orientation forced to 1) and ``meta.icc_profile`` are
    embedded in JPEG, PNG and WebP, and in TIFF except 16-bit colour TIFF;
    BMP cannot hold them; an ICC profile of other colours than the output's (a CMYK
    profile on RGB pixels) is left out.  ``meta.extra`` (a JPEG's XMP, IPTC, comments
    and print size, a PNG's text, print size and gamma chunks, a WebP's XMP) is written
    into an output of the input's format, and its XMP packet into a JPEG, PNG or WebP
    output too (:func:`.extra.carry_over`).  When
    metadata cannot be stored a warning is issued and the pixels are written without it (TIFF tags about the file alone,
    such as its resolution or the software that wrote it, are dropped quietly).
    :func:`format_losses` tells beforehand what a format cannot hold.

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
    losses: Optional[list] = None,
) -> bytes:
    """The bytes :func:`write_image` would write to ``path`` (the format comes from its suffix).

    Nothing is written; write the result with :func:`write_bytes`.  Raises
    ValueError for an unsupported suffix or array.  ``losses``: a list to append
    the metadata warnings to instead of issuing them (``warnings.catch_warnings``
    is not thread-safe, and threaded callers would lose or mix them up).
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
        return _encode(image, fmt, meta, jpeg_quality, losses)
    except ValueError as exc:
        raise ValueError(f"cannot write {target}: {exc}") from None


def _encode(
    image: np.ndarray, fmt: str, meta: Optional[ImageMeta], jpeg_quality: int, losses: Optional[list] = None
) -> bytes:
    """Encode ``image`` as ``fmt`` in memory; ValueError when impossible. Metadata that cannot
    be stored is a warning, or a line appended to ``losses`` if given."""
    def lose(message: str) -> None:
        if losses is None:
            warnings.warn(message, stacklevel=4)
        else:
            losses.append(message)

    encoded = _encode_with_exif(image, fmt, meta, jpeg_quality, lose)
    extra = meta.extra if meta is not None else ()
    if extra and fmt == meta.format:
        return insert_segments(encoded, fmt, extra)
    carried, lost = carry_over(extra, fmt)   # the XMP packet goes into any format that holds one
    if describe_segments(lost):
        lose(f"the {meta.format.upper()} file's metadata ({describe_segments(lost)}) cannot be carried into a "
             f"{fmt.upper()} file; writing without it (write {meta.format.upper()} to keep it)")
    return insert_segments(encoded, fmt, carried)


def _encode_with_exif(image: np.ndarray, fmt: str, meta: Optional[ImageMeta], jpeg_quality: int, lose) -> bytes:
    """:func:`_encode` but for the :mod:`.extra` segments."""
    pixels = _checked_pixels(image)
    if not (isinstance(jpeg_quality, (int, np.integer)) and 1 <= jpeg_quality <= 100):
        raise ValueError(f"jpeg_quality must be an integer from 1 to 100, got {jpeg_quality!r}")
    if fmt in _EIGHT_BIT_FORMATS and pixels.dtype == np.uint16:
        pixels = _uint16_to_uint8(pixels)
    if fmt == "jpeg" and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = _drop_opaque_alpha(pixels)
    exif = exif_for_writing(meta.exif) if meta is not None else None
    icc = (meta.icc_profile or None) if meta is not None else None
    if icc and _icc_space(icc) not in (None, b"GRAY" if pixels.ndim == 2 else b"RGB "):
        space = _icc_space(icc).decode("latin-1").strip()
        lose(f"the input's ICC profile describes {space} colours, not the output's "
             f"{'grey' if pixels.ndim == 2 else 'RGB'} ones; writing without it (viewers take the colours as sRGB)")
        icc = None
    params = _encoder_params(fmt, pixels, meta, jpeg_quality)
    if (exif or icc) and fmt == "tiff" and _pillow_can_write(pixels):
        return _encode_tiff_with_pillow(pixels, exif, icc)
    if (exif or icc) and fmt in ("jpeg", "png", "webp"):
        encoded = _encode_opencv(pixels, fmt, params, exif, icc)
        if encoded is not None:
            return encoded
        lose(f"the EXIF/ICC metadata does not fit in a {fmt.upper()} file; writing without it")
    elif (icc or _describes_picture(exif)) and fmt == "tiff":
        lose("the metadata (EXIF and ICC; a TIFF's XMP, artist and copyright too) cannot be written into a "
             "16-bit colour TIFF by this program; writing without it (a 16-bit PNG keeps it)")
    encoded = _encode_opencv(pixels, fmt, params, None, None)
    if encoded is None:
        raise ValueError(f"the {fmt.upper()} encoder failed for an image of shape {pixels.shape}")
    return encoded


def _icc_space(icc: bytes) -> Optional[bytes]:
    """The colour space an ICC profile describes (its header's bytes 16-19: b"RGB ", b"GRAY",
    b"CMYK", ...), or None for data too short to be a profile."""
    return icc[16:20] if len(icc) >= 128 else None


def _encoder_params(fmt: str, pixels: np.ndarray, meta: Optional[ImageMeta], jpeg_quality: int) -> list:
    """OpenCV's parameters for a ``fmt`` output: a JPEG's quality, and its full-resolution colour
    (4:4:4) where ``meta`` is a 4:4:4 JPEG's (the default halves it); a WebP at ``jpeg_quality``
    where ``meta`` is a lossy WebP's (without a quality OpenCV writes WebP lossless)."""
    params = []
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        if meta is not None and meta.full_chroma and pixels.ndim == 3:
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    elif fmt == "webp" and meta is not None and meta.lossy:
        params = [cv2.IMWRITE_WEBP_QUALITY, int(jpeg_quality)]
    return params


def _checked_pixels(image: np.ndarray) -> np.ndarray:
    """Validate an image array for writing; returns it as (H, W) or (H, W, 3|4). A Pillow image
    is taken as ``derain`` takes it (:func:`.pixels.as_image`: its grey, RGB or RGBA array)."""
    if isinstance(image, Image.Image):
        image = as_image(image)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"expected uint8 or uint16 pixels, got {image.dtype} "
            "(convert float results with rain2avoid.io.from_float_rgb(result, like=image) first)"
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


NO_TRANSPARENCY_IN_JPEG = "JPEG cannot store transparency; write PNG, TIFF or WebP to keep the alpha channel"
"""Why a transparent image is not written as JPEG (:func:`encode_image`; callers that check first)."""


def _opaque(alpha: np.ndarray) -> bool:
    """Whether a uint8 alpha channel is fully opaque (JPEG can then drop it)."""
    return bool(np.all(alpha == 255))


def _drop_opaque_alpha(rgba: np.ndarray) -> np.ndarray:
    """Return the RGB part of a fully opaque uint8 RGBA image; refuse any other."""
    if not _opaque(rgba[:, :, 3]):
        raise ValueError(NO_TRANSPARENCY_IN_JPEG)
    return rgba[:, :, :3]


def _encode_opencv(
    pixels: np.ndarray,
    fmt: str,
    params: list,
    exif: Optional[bytes],
    icc: Optional[bytes],
) -> Optional[bytes]:
    """Encode RGB(A) pixels with OpenCV (``params``: :func:`_encoder_params`), optionally embedding
    EXIF/ICC; None on failure."""
    bgr = _rgb_to_opencv(pixels)
    ext = _OPENCV_EXTENSIONS[fmt]
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


def _describes_picture(exif: Optional[bytes]) -> bool:
    """Whether ``exif`` (TIFF structure) holds more than the tags about the file itself."""
    if not exif:
        return False
    tags = Image.Exif()
    try:
        tags.load(EXIF_HEADER + exif)
    except Exception:  # unreadable: say it is lost rather than hide it
        return True
    return any(tag not in _HOUSEKEEPING_TAGS for tag in tags)


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
