"""The structure of PNG files, read in pure Python: chunks, the colour key, and damage.

OpenCV's libpng prints its own lines to stderr for a damaged PNG, beside the
reader's one-line error, so :mod:`.read` refuses the damage before OpenCV sees
the bytes. :func:`check_chunks` finds a chunk type that is not letters, a
critical chunk that fails its CRC, a file that does not start with IHDR, an
unknown critical chunk (the PNG specification says to refuse it), IDAT chunks
that are not consecutive or hold no zlib stream. A bad CRC on a chunk that
holds no pixels (text, time, ..., or IEND) is not refused: libpng drops the
chunk, with a warning line of its own, and reads the image, as viewers do.
:func:`check_image_data` inflates the whole image data, to find a stream that
stops short or is damaged although every chunk is whole (libpng finds it only
while decoding, and Pillow's fallback returns black rows for a stream that ends
too early); more image data than the header's size is :class:`PngExtraData`,
which the reader lets libpng read (the image is whole). It costs about two thirds
of decoding the image: about 0.2 s for a 12 MP photo, little beside deraining it.
"""

from __future__ import annotations

import struct
import zlib
from typing import Iterator, Optional, Tuple

__all__ = ["PngDamage", "PngExtraData", "chunks", "colour_key", "check_chunks", "check_image_data"]

_CRITICAL = (b"IHDR", b"PLTE", b"IDAT", b"IEND")
_CHECKED_CRC = (b"IHDR", b"PLTE", b"IDAT")  # the critical chunks that hold something

# Adam7 passes: first column, first row, column step, row step.
_ADAM7_PASSES = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                 (0, 1, 1, 2))
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # per colour type


class PngDamage(ValueError):
    """What is wrong with a damaged PNG, in a few words."""


class PngExtraData(PngDamage):
    """More image data than the header's size: the image itself is whole (libpng reads it, with a
    warning, and so does every viewer); Pillow refuses it."""


def chunks(data: bytes) -> Iterator[Tuple[bytes, memoryview, int]]:
    """Yield (type, payload, stored CRC) of each whole chunk of a PNG, in order, up to where the
    data stops."""
    view = memoryview(data)
    position = 8
    while position + 12 <= len(data):
        end = position + 12 + int.from_bytes(view[position:position + 4], "big")
        if end > len(data):
            return
        yield (bytes(view[position + 4:position + 8]), view[position + 8:end - 4],
               int.from_bytes(view[end - 4:end], "big"))
        position = end


def colour_key(data: bytes, colour_type: int) -> Optional[list]:
    """The tRNS colour key of a grey (one value) or RGB (three) PNG, in the file's bit depth."""
    if colour_type not in (0, 2):
        return None
    for kind, payload, _ in chunks(data):
        if kind in (b"IDAT", b"IEND"):
            return None
        if kind == b"tRNS":
            count = 1 if colour_type == 0 else 3
            if len(payload) < 2 * count:
                return None
            return [int.from_bytes(payload[2 * k:2 * k + 2], "big") for k in range(count)]
    return None


def check_chunks(data: bytes) -> bool:
    """PngDamage for a PNG whose whole chunks are damaged, up to its IEND chunk (see the module
    docstring); else whether the chunks run whole up to IEND (a truncated file's do not: chunks
    missing at the end are not refused here). Costs about 4 % of decoding the image (mostly
    the CRCs of the image data)."""
    seen_idat, previous, stream_head, complete = False, None, b"", False
    for kind, payload, crc in chunks(data):
        if not kind.isalpha():
            raise PngDamage(f"a chunk has the invalid type {kind!r}")
        name = kind.decode("ascii")
        if kind in _CHECKED_CRC and zlib.crc32(payload, zlib.crc32(kind)) != crc:
            raise PngDamage(f"the {name} chunk fails its CRC check")
        if previous is None and (kind != b"IHDR" or len(payload) != 13):
            raise PngDamage("the file does not start with an IHDR chunk")
        if kind[0] & 0x20 == 0 and kind not in _CRITICAL:
            raise PngDamage(f"unknown critical chunk {name}")
        if kind == b"IDAT":
            if seen_idat and previous != b"IDAT":
                raise PngDamage("the IDAT chunks are not consecutive")
            seen_idat, stream_head = True, stream_head + bytes(payload[:2 - len(stream_head)])
        if kind == b"IEND":
            if len(stream_head) < 2:
                raise PngDamage("no image data before the IEND chunk")
            complete = True
            break
        previous = kind
    if len(stream_head) == 2 and not _is_zlib_header(stream_head):
        raise PngDamage("the image data is not a zlib stream")
    return complete


def check_image_data(data: bytes) -> None:
    """PngDamage unless the IDAT data is one complete zlib stream of the size the header needs.

    Inflates the whole stream (about as costly as decoding), in steps so that memory
    stays small. Assumes :func:`check_chunks` passed (IHDR first).
    """
    expected = _image_data_size(data[16:29])
    stream, size, step = zlib.decompressobj(), 0, 1 << 20
    try:
        for kind, payload, _ in chunks(data):
            if kind == b"IEND":
                break
            while kind == b"IDAT" and not stream.eof:
                produced = len(stream.decompress(payload, step))
                size, payload = size + produced, stream.unconsumed_tail
                if size > expected:
                    raise PngExtraData("more image data than the header's size")
                if not payload and produced < step:  # input used up and no output held back
                    break
    except zlib.error:
        raise PngDamage("the compressed image data is damaged") from None
    if not stream.eof or size != expected:
        raise PngDamage("the image data stops short")


def _is_zlib_header(head: bytes) -> bool:
    """True for the two bytes that start a zlib stream as PNG allows (RFC 1950, no dictionary)."""
    method, flags = head[0], head[1]
    return (method & 0x0F == 8 and method >> 4 <= 7 and (method << 8 | flags) % 31 == 0
            and not flags & 0x20)


def _image_data_size(ihdr: bytes) -> int:
    """Bytes of inflated IDAT data that an IHDR payload implies: per row, a filter byte and the
    packed samples; an interlaced image has such rows for each of its seven passes."""
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    row_bits = bit_depth * _CHANNELS[colour_type]  # a valid pair: Pillow read the header
    size = 0
    for column, row, column_step, row_step in _ADAM7_PASSES if interlace else ((0, 0, 1, 1),):
        columns = max(0, -(-(width - column) // column_step))
        rows = max(0, -(-(height - row) // row_step))
        if columns and rows:
            size += rows * (1 + (columns * row_bits + 7) // 8)
    return size
