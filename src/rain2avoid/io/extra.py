"""Metadata beyond EXIF and ICC, carried as the file's own segments.

Photographers keep keywords, captions, ratings, copyright and edit history in a
JPEG's XMP (an APP1 segment, and more for extended XMP), its IPTC record (APP13,
Photoshop's resources) and comments (COM), in a PNG's text chunks (tEXt,
zTXt, iTXt; XMP is an iTXt chunk) and in a WebP's XMP chunk; and print sizes in
a JPEG's JFIF density (APP0) or a PNG's pHYs chunk, which a PNG's gAMA, cHRM and
sRGB chunks join (how its values map to colours). :func:`extra_segments`
lists them in a file, :func:`insert_segments` puts them into a file freshly
encoded in the same format.
They are carried as they are, not parsed, so only into the same format, but
for the XMP packet, which JPEG, PNG and WebP hold alike (:func:`carry_over`):
the writer says what an output in another format loses.

One thing in them is changed: an XMP ``tiff:Orientation`` other than 1 becomes
1 where the pixels were turned upright (as the EXIF orientation is reset), so
that no program turns the written photo a second time.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Iterator, Tuple

from . import png, webp

__all__ = ["Segment", "extra_segments", "insert_segments", "describe_segments", "carry_over", "full_chroma"]

Segment = Tuple[bytes, bytes]
"""(kind, payload): a JPEG marker (b"\\xff\\xe1") or a PNG chunk type (b"iTXt"), and its content."""

_XMP = b"http://ns.adobe.com/xap/1.0/\0"
_XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\0"
_APP0, _APP1, _APP13, _COM = b"\xff\xe0", b"\xff\xe1", b"\xff\xed", b"\xff\xfe"
_JFIF = b"JFIF\0"
_PNG_KEPT = (b"tEXt", b"zTXt", b"iTXt", b"pHYs", b"gAMA", b"cHRM", b"sRGB")
_WEBP_XMP = b"XMP "
_ORIENTATION = re.compile(rb"(tiff:Orientation\s*=\s*[\"']|<tiff:Orientation>\s*)[2-8](?=\s*[\"<'])")


def extra_segments(data: bytes, fmt: str, upright: bool = False) -> Tuple[Segment, ...]:
    """The XMP, IPTC and comment segments of a JPEG and its JFIF density where it gives one
    (dots per inch or cm), the text, pHYs, gAMA, cHRM and sRGB chunks of a PNG, or the XMP
    chunk of a WebP, in file order (empty for other formats, or where there are none).
    ``upright``: the pixels were turned by the EXIF orientation, so an XMP orientation is
    set to 1 too (a density is kept as it is: it is the same across and down in nearly
    every file)."""
    if fmt == "jpeg":
        found = [(kind, payload) for kind, payload in _jpeg_segments(data) if kind in (_APP13, _COM) or (
            kind == _APP1 and payload.startswith((_XMP, _XMP_EXTENSION))) or _jfif_density(kind, payload)]
    elif fmt == "png":
        found = [(kind, bytes(payload)) for kind, payload, _ in png.chunks(data) if kind in _PNG_KEPT]
    elif fmt == "webp":
        found = [(_WEBP_XMP, payload) for payload in webp.chunks(data).get(_WEBP_XMP, [])]
    else:
        return ()
    if upright:
        found = [(kind, _upright(payload)) if kind in (_APP1, b"iTXt", _WEBP_XMP) else (kind, payload) for kind, payload in found]
    return tuple(found)


def insert_segments(encoded: bytes, fmt: str, segments: Tuple[Segment, ...]) -> bytes:
    """``encoded`` (a whole JPEG, PNG or WebP, as an encoder wrote it) with ``segments`` (from
    :func:`extra_segments` of a file in the same format) put in: a JPEG's after its
    leading APP segments, a PNG's before its image data, a WebP's at its end. ValueError
    for a segment too long for its format, or another format."""
    if not segments:
        return encoded
    if fmt == "jpeg":
        density = [payload for kind, payload in segments if kind == _APP0]
        segments = tuple((kind, payload) for kind, payload in segments if kind != _APP0)
        position = 2   # after SOI: past the encoder's own APP segments (JFIF, EXIF, ICC)
        for kind, payload in _jpeg_segments(encoded):
            if not 0xE0 <= kind[1] <= 0xEF:
                break
            if density and position == 2 and _is_jfif(kind, payload):
                at = position + 4 + 7   # the encoder's own JFIF segment: its units and densities replaced
                encoded = encoded[:at] + density[0][7:12] + encoded[at + 5:]
            position += 4 + len(payload)
        if any(len(payload) > 65533 for _, payload in segments):
            raise ValueError("a JPEG segment holds at most 65533 bytes")
        added = b"".join(kind + struct.pack(">H", len(payload) + 2) + payload for kind, payload in segments)
    elif fmt == "png":
        position = 8
        for kind, payload, _ in png.chunks(encoded):
            if kind == b"IDAT":
                break
            position += 12 + len(payload)
        added = b"".join(struct.pack(">I", len(payload)) + kind + payload
                         + struct.pack(">I", zlib.crc32(kind + payload)) for kind, payload in segments)
    elif fmt == "webp":
        return webp.add_chunks(encoded, list(segments))
    else:
        raise ValueError(f"no segments can be put into a {fmt.upper()} file")
    return encoded[:position] + added + encoded[position:]


_PNG_XMP = b"XML:com.adobe.xmp\0"
MAX_XMP = 1 << 20
"""The longest XMP packet carried into another format (Pillow's limit for a PNG's text, 1 MiB):
a compressed one is unpacked no further, so a small file cannot ask for gigabytes."""


def carry_over(segments: Tuple[Segment, ...], fmt: str) -> Tuple[Tuple[Segment, ...], Tuple[Segment, ...]]:
    """(carried, lost): ``segments`` of another format's file as a ``fmt`` file holds them. The
    XMP packet (a JPEG's APP1, a PNG's iTXt ``XML:com.adobe.xmp``, a WebP's ``XMP `` chunk)
    goes into a JPEG, PNG or WebP as that format keeps it; the rest is lost (and so is an
    XMP packet too long for a JPEG segment or over :data:`MAX_XMP`, or the extension of an
    extended XMP)."""
    carried, lost = [], []
    for kind, payload in segments:
        packet = _xmp_packet(kind, payload)
        if packet is None or fmt not in ("jpeg", "png", "webp") or (fmt == "jpeg" and len(_XMP + packet) > 65533):
            lost.append((kind, payload))
        elif fmt == "jpeg":
            carried.append((_APP1, _XMP + packet))
        elif fmt == "png":   # iTXt: keyword, not compressed, no language, no translated keyword, the text
            carried.append((b"iTXt", _PNG_XMP + b"\0\0\0\0" + packet))
        else:
            carried.append((_WEBP_XMP, packet))
    return tuple(carried), tuple(lost)


def _xmp_packet(kind: bytes, payload: bytes) -> bytes | None:
    """The XMP packet a segment holds (see :func:`carry_over`), or None."""
    if kind == _APP1 and payload.startswith(_XMP):
        return payload[len(_XMP):]
    if kind == _WEBP_XMP:
        return payload
    if kind == b"iTXt" and payload.startswith(_PNG_XMP) and len(payload) >= len(_PNG_XMP) + 2:
        compressed, rest = payload[len(_PNG_XMP)], payload[len(_PNG_XMP) + 2:]
        parts = rest.split(b"\0", 2)   # language tag, translated keyword, text
        if len(parts) == 3:
            if not compressed:
                return parts[2] if len(parts[2]) <= MAX_XMP else None
            unpack = zlib.decompressobj()
            try:
                packet = unpack.decompress(parts[2], MAX_XMP + 1)   # never more than the limit and a byte
            except zlib.error:
                return None
            return packet if len(packet) <= MAX_XMP and unpack.eof else None
    return None


def describe_segments(segments: Tuple[Segment, ...]) -> str:
    """What ``segments`` hold, in words: "XMP, IPTC", "comments", "text", "resolution"; empty
    where they say nothing another format does not assume: a PNG's sRGB chunk (what every
    other format takes its colours for) with the gAMA and cHRM that go with it, a pHYs chunk
    that gives only the pixels' aspect (unit 0)."""
    srgb = any(kind == b"sRGB" for kind, _ in segments)
    names = {_APP0: "resolution", _APP1: "XMP", _APP13: "IPTC", _COM: "comments", _WEBP_XMP: "XMP",
             b"pHYs": "resolution", b"gAMA": "" if srgb else "gamma", b"cHRM": "" if srgb else "chromaticities",
             b"sRGB": ""}
    kinds = dict.fromkeys("" if kind == b"pHYs" and payload[8:9] != b"\x01" else names.get(kind, "text")
                          for kind, payload in segments)
    return ", ".join(kind for kind in kinds if kind)


def _is_jfif(kind: bytes, payload: bytes) -> bool:
    """Whether a JPEG segment is a whole JFIF header (units at byte 7, densities at 8-11)."""
    return kind == _APP0 and payload.startswith(_JFIF) and len(payload) >= 12


def _jfif_density(kind: bytes, payload: bytes) -> bool:
    """Whether a JPEG segment is a JFIF header giving a print size (units 1 or 2: dots per
    inch or cm; 0 gives only the pixels' aspect, which every encoder writes as 1:1)."""
    return _is_jfif(kind, payload) and payload[7] in (1, 2)


def full_chroma(data: bytes) -> bool:
    """Whether a JPEG stores its colour at full resolution (4:4:4: every component sampled
    alike in its frame header), as photographers' exports at the highest quality do; a
    JPEG output then keeps it (the encoder's default halves the colour, 4:2:0)."""
    for kind, payload in _jpeg_segments(data):
        if 0xC0 <= kind[1] <= 0xCF and kind[1] not in (0xC4, 0xC8, 0xCC) and len(payload) >= 6:
            count = payload[5]
            factors = {payload[6 + 3 * i + 1] for i in range(count) if 6 + 3 * i + 1 < len(payload)}
            return count >= 3 and len(factors) == 1
    return False


def _upright(payload: bytes) -> bytes:
    """An XMP packet with its ``tiff:Orientation`` set to 1."""
    return _ORIENTATION.sub(rb"\g<1>1", payload)


def _jpeg_segments(data: bytes) -> Iterator[Segment]:
    """(marker, payload) of a JPEG's segments from its start up to the image data (SOS), as far
    as the data is whole; nothing for data that does not start with SOI."""
    if not data.startswith(b"\xff\xd8"):
        return
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:   # fill byte
            position += 1
            continue
        if marker in (0xDA, 0xD9):   # start of scan, end of image
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:   # no length
            position += 2
            continue
        end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if end > len(data):
            return
        yield data[position:position + 2], data[position + 4:end]
        position = end
