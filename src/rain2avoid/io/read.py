"""Reading image files: checked, upright RGB(A) pixels with their bit depth.

Every problem with an input file (missing, empty, not an image, unsupported,
truncated, corrupt, too large, several images in one file) is reported as one
:class:`ImageReadError` whose message names the file and the reason. The size
in the header is checked before any pixels are decoded. Pixels come back
upright (EXIF orientation applied, with :mod:`rain2avoid.exif`) in RGB order,
with the bit depth of the file (``uint8`` or ``uint16``) and the alpha channel
kept.

Pixel decoding uses OpenCV (fast, keeps 16 bits) with Pillow as the fallback;
Pillow also reads the header (size, EXIF, ICC profile) without decoding.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Optional, Tuple, Union

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

from ..exif import make_upright, read_exif, reset_orientation
from ..files import describe_os_error as _describe_os_error
from . import png, webp
from .extra import Segment, extra_segments, full_chroma
from .pixels import UINT16_MODES, pillow_in_supported_mode

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width * height) that :func:`read_image` accepts by default."""

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
    embedded colour profile, or ``None``.  ``extra`` holds a JPEG's XMP, IPTC
    and comment segments, a PNG's text chunks or a WebP's XMP (:mod:`.extra`):
    written into an output of the same format.  ``lossy``: a WebP whose image
    is lossy-compressed (VP8), which a WebP output then is too.  ``full_chroma``: a JPEG
    whose colour is stored at full resolution (4:4:4), which a JPEG output then keeps.
    """

    format: str
    exif: Optional[bytes] = None
    icc_profile: Optional[bytes] = None
    extra: Tuple[Segment, ...] = ()
    lossy: bool = False
    full_chroma: bool = False


class _BadImage(Exception):
    """Internal: the file content is unusable; carries the reason only."""


def read_image(
    path: PathLike,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    with_meta: bool = False,
) -> Union[np.ndarray, Tuple[np.ndarray, ImageMeta]]:
    """Read an image file as an upright RGB(A) numpy array.

    Returns an array of shape (H, W) for grayscale, (H, W, 3) for RGB or
    (H, W, 4) for RGBA, with dtype ``uint8`` or ``uint16`` as stored in the
    file.  Palette images become RGB (RGBA when they have transparency);
    gray+alpha images, and gray or RGB PNGs with a transparent colour (tRNS),
    become RGBA.  The format is detected from the content, not from the file
    name.  EXIF orientation is applied to the pixels.  A file holding several
    images (a multi-page TIFF, an animated PNG or WebP) is refused, because
    writing back one image would lose the others.

    The image size is checked from the header before any pixel is decoded:
    an image with more than ``max_pixels`` pixels is refused (``None``
    disables the limit).

    With ``with_meta=True`` returns ``(array, ImageMeta)``.

    Raises :class:`ImageReadError` for every problem with the file.
    """
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive number, got {max_pixels!r}")
    return decode_image(read_file_bytes(path), path, max_pixels, with_meta)


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


def read_file_bytes(path: PathLike) -> bytes:
    """Return the whole content of ``path`` (for :func:`decode_image`); file problems become
    ImageReadError."""
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
        other = _sniff_unsupported_format(data)
        if other is not None:
            raise _BadImage(
                f"unsupported image format: {other} (rain2avoid reads PNG, JPEG, BMP, TIFF "
                f"and WebP: convert it to PNG or TIFF first)"
            )
        raise _BadImage("not an image (expected PNG, JPEG, BMP, TIFF or WebP content)")
    if fmt == "tiff":
        _check_tiff_sample_type(data)
    if fmt == "webp":  # Pillow's WebP reader allocates the canvas while reading the header
        canvas = webp.canvas_size(data)
        if canvas is not None:
            _check_size(canvas, max_pixels)
            if _above_pillow_limit(canvas):
                return _decode_webp_without_pillow(data, max_pixels)
    try:
        header = _HEADER_READERS[fmt](BytesIO(data))
    except Image.DecompressionBombError as exc:  # only possible above Pillow's own limit
        raise _BadImage(f"image is too large for Pillow's {fmt.upper()} reader ({exc})") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        if fmt == "png" and len(data) >= 33:  # whole IHDR: the PNG's structure says more clearly what is wrong
            _checked_png(png.check_chunks, data)
            _checked_png(png.check_image_data, data)
        raise _BadImage(f"truncated or corrupt {fmt.upper()} file ({_short(exc)})") from None
    with header:
        _check_size(header.size, max_pixels)
        _check_one_image(data, fmt, header)
        exif, orientation = read_exif(data, fmt, header)
        icc_profile = header.info.get("icc_profile") or None
        pixels, already_upright = _decode_pixels(data, fmt, header)
        if fmt == "png":
            pixels = _png_colour_key_to_alpha(pixels, data)
    _check_size((pixels.shape[1], pixels.shape[0]), max_pixels)
    if not already_upright:
        pixels = make_upright(pixels, orientation)
    extra = extra_segments(data, fmt, upright=orientation != 1)
    return pixels, ImageMeta(format=fmt, exif=exif, icc_profile=icc_profile, extra=extra,
                             lossy=fmt == "webp" and b"VP8 " in webp.chunks(data),
                             full_chroma=fmt == "jpeg" and full_chroma(data))


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


# Signatures of image formats that rain2avoid does not read, to name them in the error.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


def _sniff_unsupported_format(data: bytes) -> Optional[str]:
    """Name of a known image format that rain2avoid does not read, or None."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF/HEIC"
    if data.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG 2000"
    if data[:4] == b"8BPS":
        return "Photoshop PSD"
    if data[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and data[4:6] != b"\x00\x00":
        return "ICO (Windows icon)"
    if data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JPEG XL"
    if data[:4] == b"\x76\x2f\x31\x01":
        return "OpenEXR"
    if data[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7") and data[2:3] in (b"\n", b" ", b"\r", b"\t"):
        return "Netpbm (PBM/PGM/PPM)"
    if data.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "Radiance HDR"
    return None


_TIFF_SAMPLE_FORMATS = {1: "uint", 2: "int", 3: "float", 5: "complex int", 6: "complex float"}


def _check_tiff_sample_type(data: bytes) -> None:
    """Refuse a TIFF whose first page holds samples other than 1- to 16-bit unsigned integers,
    or 16-bit samples in a layout the decoders get wrong (colour stored per channel, which
    OpenCV decodes as noise) or cannot open (grey with alpha).

    Reads the SampleFormat, BitsPerSample, SamplesPerPixel and PlanarConfiguration tags of
    the first page itself, because Pillow cannot open float or 16-bit colour TIFFs at all.
    A TIFF whose tags cannot be read passes, so that decoding reports the damage.
    """
    try:
        tags = TiffImagePlugin.ImageFileDirectory_v2(data[:16] if data[2] == 0x2B or data[3] == 0x2B
                                                     else data[:8])
        stream = BytesIO(data)
        stream.seek(tags.next)
        tags.load(stream)
        kinds, bits = tags.get(339, (1,)), tags.get(258, (1,))
        kind = kinds[0] if isinstance(kinds, tuple) else kinds
        depth = max(bits) if isinstance(bits, tuple) else bits
        samples, planar = int(tags.get(277, 1)), int(tags.get(284, 1))
    except Exception:
        return
    if kind not in (1, 4) or depth > 16:  # 4: "undefined", read as unsigned
        name = f"{_TIFF_SAMPLE_FORMATS.get(kind, 'unknown')}{depth}".replace(" ", "-")
        raise _BadImage(_unsupported_sample_type(name))
    if depth > 8 and samples > 1 and planar == 2:
        raise _BadImage("unsupported TIFF layout: 16-bit colour stored per channel (planar); save it with "
                        "interleaved pixels (Photoshop: Pixel Order 'Interleaved') or as PNG")
    if depth > 8 and samples == 2:
        raise _BadImage("unsupported TIFF layout: 16-bit grey with alpha; convert it to a 16-bit RGBA TIFF "
                        "or a PNG")


def _unsupported_sample_type(name: str) -> str:
    """The reason given for pixels that are not 8- or 16-bit unsigned integers."""
    return (
        f"unsupported sample type {name} (only 8- and 16-bit integer images are supported: "
        f"convert it to a 16-bit TIFF or PNG)"
    )


def _check_one_image(data: bytes, fmt: str, header: Image.Image) -> None:
    """Refuse a file holding several images: a multi-page TIFF or an animated PNG or WebP.

    Only the first image would be derained and written back, losing the others.
    """
    frames = _tiff_page_count(data) if fmt == "tiff" else getattr(header, "n_frames", 1)
    _check_frame_count(fmt, frames)


def _check_frame_count(fmt: str, frames: int) -> None:
    """Refuse ``frames`` > 1 with the reason for a multi-page TIFF or an animation."""
    if frames <= 1:
        return
    if fmt == "tiff":
        raise _BadImage(
            f"the file holds {frames} pages; rain2avoid reads one image per file: "
            f"split the pages into separate files first"
        )
    raise _BadImage(
        f"the file is an animation of {frames} frames; rain2avoid reads one image per file: "
        f"save the frames as separate images first"
    )


def _tiff_page_count(data: bytes) -> int:
    """How many full-size pages of a TIFF Pillow can open (a broken link to a next page ends the
    count). A page marked as a reduced-resolution copy (NewSubfileType bit 0: a thumbnail or
    preview of the first) is not counted: it holds no picture of its own."""
    pages = TiffImagePlugin.TiffImageFile(BytesIO(data))  # its own reader: seeking moves it
    count, index = 1, 1
    with pages:
        while True:
            try:
                pages.seek(index)
            except Exception:  # EOFError after the last page; others for a damaged page
                return count
            if not int(pages.tag_v2.get(254, 0)) & 1:
                count += 1
            index += 1


def _png_colour_key_to_alpha(pixels: np.ndarray, data: bytes) -> np.ndarray:
    """Apply a grey or RGB PNG's tRNS colour key as an alpha channel, like palette transparency.

    Pixels equal to the key become transparent (alpha 0), all others opaque;
    the result is RGBA like every image with transparency.
    """
    if data[12:16] != b"IHDR" or (pixels.ndim == 3 and pixels.shape[2] == 4):
        return pixels  # not a standard PNG header, or the decoder already made the alpha
    bit_depth, colour_type = data[24], data[25]
    key = png.colour_key(data, colour_type)
    if key is None:
        return pixels
    top = int(np.iinfo(pixels.dtype).max)
    if bit_depth < 8:  # 1-, 2- and 4-bit grey are decoded scaled to 0..255
        key = [value * (255 // ((1 << bit_depth) - 1)) for value in key]
    elif bit_depth == 16 and top == 255:  # 16 bits decoded to 8 (Pillow's fallback)
        key = [value >> 8 for value in key]
    if colour_type == 0:
        gray = pixels if pixels.ndim == 2 else pixels[:, :, 0]
        rgb, matches = np.stack([gray, gray, gray], axis=2), gray == key[0]
    else:
        rgb, matches = pixels, np.all(pixels == np.asarray(key, dtype=np.int64), axis=2)
    alpha = np.where(matches, 0, top).astype(pixels.dtype)
    return np.concatenate([rgb, alpha[:, :, None]], axis=2)


def _above_pillow_limit(size: Tuple[int, int]) -> bool:
    """True when ``size`` (W, H) is above the limit at which Pillow refuses an image.

    Pillow 13's WebP reader applies that limit (``2 * Image.MAX_IMAGE_PIXELS``)
    while reading the header, whatever max_pixels allows; older Pillow does not.
    """
    limit = Image.MAX_IMAGE_PIXELS
    return limit is not None and size[0] * size[1] > 2 * limit


def _decode_webp_without_pillow(data: bytes, max_pixels: Optional[int]) -> Tuple[np.ndarray, ImageMeta]:
    """Decode a WebP above Pillow's own size limit with OpenCV alone, like :func:`_decode`.

    Only max_pixels limits the size, with every Pillow version: Pillow 13
    refuses such a file while reading its header, and older Pillow allocates
    the whole canvas there.  The frames, EXIF and ICC profile are read from
    the file's chunks instead.
    """
    chunks = webp.chunks(data)
    _check_frame_count("webp", len(chunks.get(b"ANMF", ())))
    pixels = _opencv_pixels(data)
    if pixels is None:
        raise _BadImage("truncated or corrupt WEBP file (cannot decode the pixels)")
    _check_size((pixels.shape[1], pixels.shape[0]), max_pixels)
    exif, orientation = None, 1
    if chunks.get(b"EXIF"):
        try:
            exif, orientation = reset_orientation(chunks[b"EXIF"][0])
        except Exception:  # unreadable EXIF must not make a good image unreadable
            pass
    icc_profile = chunks.get(b"ICCP", [b""])[0] or None
    extra = extra_segments(data, "webp", upright=orientation != 1)
    return make_upright(pixels, orientation), ImageMeta(format="webp", exif=exif, icc_profile=icc_profile,
                                                        extra=extra, lossy=b"VP8 " in chunks)


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
    if fmt == "png":
        # libpng, inside OpenCV, prints its own line to stderr for a damaged PNG,
        # so the chunks and the image data are checked before OpenCV runs.
        complete = _checked_png(png.check_chunks, data)
        try:
            png.check_image_data(data)
        except png.PngDamage as exc:
            # Extra rows after a whole image: libpng reads it, with its warning line (as for
            # other harmless damage); Pillow, for a file without IEND, refuses it.
            if not (complete and isinstance(exc, png.PngExtraData)):
                raise _BadImage(f"truncated or corrupt PNG file ({exc})") from None
        if not complete:  # only IEND missing: libpng would say the input is incomplete
            return _pillow_pixels(header), upright
    pixels = _opencv_pixels(data)
    if pixels is not None:
        if fmt == "tiff":
            _check_tiff_layout(pixels, header)
        return pixels, upright
    if fmt == "tiff":
        raise _BadImage("truncated or corrupt TIFF file (cannot decode the pixels)")
    return _pillow_pixels(header), upright


def _checked_png(check, data: bytes):
    """Run one of :mod:`.png`'s checks (its answer); its PngDamage becomes the reader's error."""
    try:
        return check(data)
    except png.PngDamage as exc:
        raise _BadImage(f"truncated or corrupt PNG file ({exc})") from None


def _opencv_pixels(data: bytes) -> Optional[np.ndarray]:
    """Decode with OpenCV into RGB(A) order; None when OpenCV cannot."""
    try:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if bgr is None or bgr.size == 0:
        return None
    if bgr.dtype not in (np.uint8, np.uint16):
        raise _BadImage(_unsupported_sample_type(str(bgr.dtype)))
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
    return deepest <= 8 or header.mode in UINT16_MODES


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
        picture = _supported_mode(header)
        # np.array copies: arrays viewing Pillow's buffer are read-only.
        return np.array(picture, dtype=np.uint16 if picture.mode in UINT16_MODES else np.uint8)
    except _BadImage:
        raise
    except Image.DecompressionBombError:  # Pillow's TIFF loader has its own global limit
        raise _BadImage(
            f"image is too large for Pillow's {header.format} decoder "
            f"(limit {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.1f} MP)"
        ) from None
    except Exception as exc:  # Pillow raises many types for broken data
        raise _BadImage(f"truncated or corrupt {header.format} file ({_short(exc)})") from None


def _supported_mode(picture: Image.Image) -> Image.Image:
    """:func:`.pixels.pillow_in_supported_mode`, its refusal as a :class:`_BadImage`."""
    try:
        return pillow_in_supported_mode(picture)
    except ValueError as exc:
        raise _BadImage(str(exc)) from None


def _short(exc: BaseException) -> str:
    """One-line description of a decoder exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
