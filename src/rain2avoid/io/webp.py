"""The structure of WebP files (RIFF), read in pure Python: the canvas size and the chunks.

:mod:`.read` checks a WebP's size from its first chunk before Pillow reads the header (Pillow's
WebP reader allocates the canvas there), and reads the frames, EXIF and ICC profile of a WebP
too large for Pillow from its chunks.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

__all__ = ["canvas_size", "chunks", "add_chunks"]


def canvas_size(data: bytes) -> Optional[Tuple[int, int]]:
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


def chunks(data: bytes) -> Dict[bytes, List[bytes]]:
    """The top-level chunks of a WebP file: payloads by FourCC, in file order.

    The walk stops at the end of the RIFF data or at a chunk cut short.
    """
    found: Dict[bytes, List[bytes]] = {}
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    position = 12
    while position + 8 <= end:
        kind = data[position:position + 4]
        size = int.from_bytes(data[position + 4:position + 8], "little")
        if position + 8 + size > end:
            break
        found.setdefault(kind, []).append(data[position + 8:position + 8 + size])
        position += 8 + size + (size & 1)  # payloads are padded to an even length
    return found


_XMP_FLAG, _ALPHA_FLAG = 0x04, 0x10   # VP8X feature flags


def add_chunks(data: bytes, added: List[Tuple[bytes, bytes]]) -> bytes:
    """A whole WebP file ``data`` with ``added`` ((FourCC, payload) pairs, XMP only) put at its
    end, where the format places metadata. A simple file (one VP8 or VP8L chunk) becomes an
    extended one, since only a VP8X header can announce them. ValueError for data that is
    not a whole WebP file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP" or len(data) != 8 + int.from_bytes(data[4:8], "little"):
        raise ValueError("not a whole WebP file")
    if any(kind != b"XMP " for kind, _ in added):
        raise ValueError("only XMP chunks can be put into a WebP file")
    body = data[12:]
    if body[:4] != b"VP8X":
        size = canvas_size(data)
        if size is None:
            raise ValueError("not a whole WebP file")
        alpha = body[:4] == b"VP8L" and len(body) >= 13 and body[12] & 0x10   # VP8L's alpha_is_used bit
        width, height = size
        header = bytes([_ALPHA_FLAG if alpha else 0, 0, 0, 0]) + (width - 1).to_bytes(3, "little") \
            + (height - 1).to_bytes(3, "little")
        body = b"VP8X" + len(header).to_bytes(4, "little") + header + body
    body = body[:8] + bytes([body[8] | _XMP_FLAG]) + body[9:]
    for kind, payload in added:
        body += kind + len(payload).to_bytes(4, "little") + payload + b"\0" * (len(payload) & 1)
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + body
