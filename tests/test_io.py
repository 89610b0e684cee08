"""Tests for rain2avoid.io: reading, writing, listing and float conversion."""

import dataclasses
import errno
import io
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from rain2avoid.io import read as rio
from rain2avoid.io import webp
from rain2avoid.exif import UPRIGHT
from rain2avoid.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageMeta,
    ImageReadError,
    ImageWriteError,
    decode_image,
    encode_image,
    from_float_rgb,
    is_input_as_read,
    list_images,
    read_image,
    to_float_rgb,
    write_image,
)

LOSSLESS_EXTS = [".png", ".bmp", ".tif", ".tiff", ".webp"]
EIGHT_BIT_EXTS = (".bmp", ".webp", ".jpg", ".jpeg")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def random_image(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)


def blocky_gray(height=32, width=48, seed=0, block=8):
    """Gray image of flat blocks: survives JPEG almost exactly."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(height // block, width // block), dtype=np.uint8)
    return np.kron(blocks, np.ones((block, block), dtype=np.uint8))


def blocky_rgb(seed=0):
    """Colour image of flat 16x16 blocks (survives JPEG chroma subsampling)."""
    return np.stack([blocky_gray(seed=seed + c, block=16) for c in range(3)], axis=2)


def to_8bit(array):
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def exif_bytes(orientation=None, make=None, date=None):
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if make is not None:
        exif[0x010F] = make
    if date is not None:
        exif.get_ifd(0x8769)[0x9003] = date
    return exif.tobytes()


def parse_exif(data):
    exif = Image.Exif()
    exif.load(data)
    return exif


def upright_like_pillow(array, orientation):
    """What Pillow's exif_transpose makes of ``array`` stored with ``orientation``."""
    picture = Image.fromarray(array)
    picture.getexif()[0x0112] = orientation
    return np.asarray(ImageOps.exif_transpose(picture))


def orient_like_io(image, orientation):
    """rain2avoid.io's own orientation fix (checked against Pillow below)."""
    return UPRIGHT.get(orientation, lambda a: a)(image)


def png_chunks(data):
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        chunks.append(data[position:position + 12 + length])
        position += 12 + length
    return chunks


def png_chunk(kind, payload):
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_with_size(width, height):
    """A real 1x1 PNG whose IHDR is patched to claim width x height (CRC fixed)."""
    out = io.BytesIO()
    Image.new("RGB", (1, 1)).save(out, "PNG")
    data = out.getvalue()
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    chunk = png_chunk(b"IHDR", bytes(ihdr))
    return data[:8] + chunk + data[33:]


def tiff_bytes(pixels, orientation=1):
    """Minimal uncompressed little-endian TIFF, one strip, unassociated alpha."""
    height, width = pixels.shape[:2]
    samples = 1 if pixels.ndim == 2 else pixels.shape[2]
    bits = pixels.dtype.itemsize * 8
    strip = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    tags = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, samples, None),
        (259, 3, 1, 1),
        (262, 3, 1, 2 if samples >= 3 else 1),
        (273, 4, 1, None),
        (274, 3, 1, orientation),
        (277, 3, 1, samples),
        (278, 4, 1, height),
        (279, 4, 1, len(strip)),
        (284, 3, 1, 1),
    ]
    if samples in (2, 4):
        tags.append((338, 3, 1, 2))
    ifd_size = 2 + 12 * len(tags) + 4
    bits_offset = 8 + ifd_size
    strip_offset = bits_offset + 2 * samples
    entries = b""
    for tag, kind, count, value in tags:
        if tag == 258:
            inline = struct.pack("<HH", bits, bits if samples == 2 else 0)
            value_field = inline if samples <= 2 else struct.pack("<I", bits_offset)
        elif tag == 273:
            value_field = struct.pack("<I", strip_offset)
        elif kind == 3:
            value_field = struct.pack("<HH", value, 0)
        else:
            value_field = struct.pack("<I", value)
        entries += struct.pack("<HHI", tag, kind, count) + value_field
    header = b"II*\x00" + struct.pack("<I", 8)
    ifd = struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0)
    return header + ifd + struct.pack("<" + "H" * samples, *([bits] * samples)) + strip


def temp_files(folder):
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


def assert_read_error(path, fragment=None):
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    assert caught.value.path == str(path)
    if fragment is not None:
        assert fragment in message
    return message


# ---------------------------------------------------------------------------
# constants and error types
# ---------------------------------------------------------------------------


def test_public_constants():
    assert DEFAULT_MAX_PIXELS == 100_000_000
    assert set(IMAGE_EXTENSIONS) == {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
    assert all(ext == ext.lower() for ext in IMAGE_EXTENSIONS)


def test_error_types_and_pickling():
    read_error = ImageReadError("/x/a.png", "file is empty")
    assert isinstance(read_error, ValueError)
    assert str(read_error) == "cannot read /x/a.png: file is empty"
    copy = pickle.loads(pickle.dumps(read_error))
    assert str(copy) == str(read_error) and copy.path == "/x/a.png"

    write_error = ImageWriteError("/x/b.png", "no space left on device", errno.ENOSPC)
    assert isinstance(write_error, OSError)
    assert str(write_error) == "cannot write /x/b.png: no space left on device"
    assert write_error.errno == errno.ENOSPC
    copy = pickle.loads(pickle.dumps(write_error))
    assert str(copy) == str(write_error) and copy.errno == errno.ENOSPC


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext", LOSSLESS_EXTS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_lossless_round_trip(tmp_path, ext, dtype, channels):
    shape = (7, 11) if channels == 1 else (7, 11, channels)
    image = random_image(shape, dtype, seed=channels)
    if channels == 4:
        image[..., 3] = np.iinfo(dtype).max  # webp may rewrite colours under alpha 0
        image[0, :5, 3] = [0, 1, 2, np.iinfo(dtype).max // 2, 7]
    path = tmp_path / f"image{ext}"
    assert write_image(path, image) == path
    back, meta = read_image(path, with_meta=True)

    expected = to_8bit(image) if (dtype == np.uint16 and ext in EIGHT_BIT_EXTS) else image
    if ext == ".webp" and channels == 1:  # WebP has no gray mode
        expected = np.repeat(expected[..., None], 3, axis=2)
    assert back.dtype == expected.dtype
    assert back.shape == expected.shape
    if ext == ".webp" and channels == 4:
        visible = expected[..., 3] > 0
        np.testing.assert_array_equal(back[..., 3], expected[..., 3])
        np.testing.assert_array_equal(back[visible], expected[visible])
    else:
        np.testing.assert_array_equal(back, expected)
    assert meta.format == {".tif": "tiff", ".tiff": "tiff"}.get(ext, ext[1:])
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".JPG"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_jpeg_round_trip_is_close(tmp_path, ext, dtype):
    for image in (blocky_gray(), blocky_rgb()):
        stored = image.astype(dtype) * 257 if dtype == np.uint16 else image
        path = tmp_path / f"photo{ext}"
        write_image(path, stored, jpeg_quality=95)
        back, meta = read_image(path, with_meta=True)
        assert meta.format == "jpeg"
        assert back.dtype == np.uint8 and back.shape == image.shape
        assert np.abs(back.astype(int) - image).mean() < 6  # a channel swap gives ~80


def test_jpeg_quality_changes_size(tmp_path):
    image = random_image((64, 64, 3))
    write_image(tmp_path / "low.jpg", image, jpeg_quality=20)
    write_image(tmp_path / "high.jpg", image, jpeg_quality=98)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size
    with pytest.raises(ValueError):
        write_image(tmp_path / "bad.jpg", image, jpeg_quality=0)


def test_sixteen_to_eight_bit_rounds(tmp_path):
    values = np.array([[0, 128, 129, 257, 385, 386, 65535, 65406]], dtype=np.uint16)
    write_image(tmp_path / "v.bmp", values)
    np.testing.assert_array_equal(
        read_image(tmp_path / "v.bmp"), [[0, 0, 1, 1, 1, 2, 255, 254]]
    )


def test_rgba_to_jpeg(tmp_path):
    image = random_image((8, 8, 4))
    image[..., 3] = 255
    write_image(tmp_path / "opaque.jpg", image)  # opaque alpha is simply dropped
    assert read_image(tmp_path / "opaque.jpg").shape == (8, 8, 3)
    image[2, 3, 3] = 10
    with pytest.raises(ValueError, match="transparency"):
        write_image(tmp_path / "clear.jpg", image)
    assert not (tmp_path / "clear.jpg").exists()


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp", ".jpg"])
@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 300, 3), (300, 3), (1, 1), (1, 5, 4)])
def test_tiny_images(tmp_path, ext, shape):
    if ext == ".jpg" and len(shape) == 3 and shape[2] == 4:
        shape = shape[:2] + (3,)
    image = random_image(shape, seed=3)
    write_image(tmp_path / f"t{ext}", image)
    back = read_image(tmp_path / f"t{ext}")
    assert back.shape[:2] == shape[:2]
    if ext in (".png", ".bmp", ".tif"):
        np.testing.assert_array_equal(back, image)


def test_gray_image_with_channel_axis_is_written_as_gray(tmp_path):
    image = random_image((5, 6, 1))
    write_image(tmp_path / "g.png", image)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), image[..., 0])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 3), dtype=np.float32),
        np.zeros((4, 4, 2), dtype=np.uint8),
        np.zeros((4,), dtype=np.uint8),
        np.zeros((0, 4, 3), dtype=np.uint8),
        [[1, 2], [3, 4]],
    ],
)
def test_write_refuses_bad_arrays(tmp_path, bad):
    with pytest.raises(ValueError):
        write_image(tmp_path / "bad.png", bad)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# pixel formats from other writers
# ---------------------------------------------------------------------------


def pillow_file(path, picture, fmt, **options):
    picture.save(path, fmt, **options)
    return path


def test_palette_gray_alpha_and_bilevel_png(tmp_path):
    gray = random_image((6, 9))
    alpha = random_image((6, 9), seed=5)

    palette = Image.fromarray(gray).convert("P")
    back = read_image(pillow_file(tmp_path / "p.png", palette, "PNG"))
    assert back.shape == (6, 9, 3) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, np.asarray(palette.convert("RGB")))

    back = read_image(pillow_file(tmp_path / "pt.png", palette, "PNG", transparency=0))
    assert back.shape == (6, 9, 4)
    np.testing.assert_array_equal(back, np.asarray(palette.convert("RGBA")))

    gray_alpha = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(alpha)])
    back = read_image(pillow_file(tmp_path / "la.png", gray_alpha, "PNG"))
    np.testing.assert_array_equal(back, np.stack([gray, gray, gray, alpha], axis=2))

    bilevel = Image.fromarray(gray > 128)
    back = read_image(pillow_file(tmp_path / "1.png", bilevel, "PNG"))
    np.testing.assert_array_equal(back, np.where(gray > 128, 255, 0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("opencv", [True, False])
def test_png_colour_key_becomes_alpha(tmp_path, monkeypatch, dtype, channels, opencv):
    """A gray or RGB PNG with a tRNS colour key keeps its transparency, like a palette PNG."""
    shape = (6, 9) if channels == 1 else (6, 9, 3)
    image = np.full(shape, 1000 if dtype == np.uint16 else 100, dtype=dtype)
    key = 7 * 257 if dtype == np.uint16 else 7
    image[0, 0] = image[2, 3] = key
    write_image(tmp_path / "plain.png", image)
    chunks = png_chunks((tmp_path / "plain.png").read_bytes())
    trns = png_chunk(b"tRNS", struct.pack(">" + "H" * channels, *[key] * channels))
    path = tmp_path / "key.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks[0] + trns + b"".join(chunks[1:]))
    if not opencv:
        monkeypatch.setattr(rio.cv2, "imdecode", lambda *args: None)
    back = read_image(path)
    top = np.iinfo(back.dtype).max
    np.testing.assert_array_equal(back[:, :, 3], np.where(image.reshape(6, 9, -1)[:, :, 0] == key, 0, top))
    if dtype == np.uint16 and channels == 3 and not opencv:
        return  # Pillow's fallback decodes 16-bit colour PNGs to 8 bits
    rgb = np.stack([image] * 3, axis=2) if channels == 1 else image
    np.testing.assert_array_equal(back[:, :, :3], rgb)


def test_low_bit_gray_png_colour_key(tmp_path):
    """A 2-bit gray PNG's key is in 0..3; the decoded pixels are scaled to 0..255."""
    values = np.array([[0, 1, 2, 3], [2, 2, 0, 1]])
    rows = b"".join(b"\0" + bytes([(r[0] << 6) | (r[1] << 4) | (r[2] << 2) | r[3]]) for r in values)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 2, 2, 0, 0, 0, 0))
            + png_chunk(b"tRNS", struct.pack(">H", 2)) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))
    (tmp_path / "g2.png").write_bytes(data)
    back = read_image(tmp_path / "g2.png")
    np.testing.assert_array_equal(back[:, :, 0], values * 85)
    np.testing.assert_array_equal(back[:, :, 3], np.where(values == 2, 0, 255))


def test_tiff_alpha_kept_exactly(tmp_path):
    """OpenCV would premultiply unassociated alpha or drop gray alpha; we must not."""
    rgba = random_image((6, 9, 4), seed=8)
    (tmp_path / "rgba.tif").write_bytes(tiff_bytes(rgba))
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.tif"), rgba)

    gray_alpha = random_image((6, 9, 2), seed=9)
    (tmp_path / "la.tif").write_bytes(tiff_bytes(gray_alpha))
    g, a = gray_alpha[..., 0], gray_alpha[..., 1]
    np.testing.assert_array_equal(read_image(tmp_path / "la.tif"), np.stack([g, g, g, a], 2))


def test_sixteen_bit_colour_tiff_from_other_writer(tmp_path):
    rgb = random_image((6, 9, 3), np.uint16, seed=10)
    (tmp_path / "deep.tif").write_bytes(tiff_bytes(rgb))
    back = read_image(tmp_path / "deep.tif")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, rgb)


def test_sixteen_bit_tiffs_the_decoders_get_wrong_are_refused_saying_why(tmp_path):
    rgb = random_image((6, 9, 3), np.uint16, seed=11)
    planar = tiff_bytes(rgb)
    at = planar.index(struct.pack("<HHI", 284, 3, 1))   # PlanarConfiguration: 1 (interleaved) -> 2 (per channel)
    (tmp_path / "planar.tif").write_bytes(planar[:at + 8] + struct.pack("<H", 2) + planar[at + 10:])
    assert_read_error(tmp_path / "planar.tif", "unsupported TIFF layout: 16-bit colour stored per channel (planar)")
    (tmp_path / "grey_alpha.tif").write_bytes(tiff_bytes(random_image((6, 9, 2), np.uint16, seed=12)))
    assert_read_error(tmp_path / "grey_alpha.tif", "unsupported TIFF layout: 16-bit grey with alpha; convert it")
    tifffile = pytest.importorskip("tifffile")   # as Photoshop writes "Pixel Order: Per Channel"
    tifffile.imwrite(tmp_path / "photoshop.tif", rgb.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    assert_read_error(tmp_path / "photoshop.tif", "stored per channel (planar)")   # OpenCV decoded it as noise
    tifffile.imwrite(tmp_path / "planar8.tif", (rgb >> 8).astype(np.uint8).transpose(2, 0, 1), photometric="rgb",
                     planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "planar8.tif"), rgb >> 8)   # Pillow reads 8 bits right


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    rgb = Image.fromarray(np.full((8, 8, 3), (200, 30, 60), dtype=np.uint8))
    path = pillow_file(tmp_path / "cmyk.jpg", rgb.convert("CMYK"), "JPEG", quality=100)
    back = read_image(path)
    assert back.shape == (8, 8, 3) and back.dtype == np.uint8


def test_float_tiff_is_refused_clearly(tmp_path):
    picture = Image.fromarray(np.random.default_rng(0).random((4, 5)).astype(np.float32))
    path = pillow_file(tmp_path / "float.tif", picture, "TIFF")
    assert_read_error(path, "float32")


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_float_and_signed_colour_tiff_name_the_sample_type(tmp_path, dtype):
    """Pillow cannot even open a float colour TIFF; the error must still say why, not 'corrupt'."""
    pixels = np.random.default_rng(0).random((4, 5, 3)) * (1 if dtype == np.float32 else 1000)
    path = tmp_path / "colour.tif"
    cv2.imwrite(str(path), pixels.astype(dtype))
    message = assert_read_error(path, f"unsupported sample type {np.dtype(dtype).name}")
    assert "corrupt" not in message and "convert it to a 16-bit TIFF or PNG" in message


def test_pillow_fallback_when_opencv_fails(tmp_path, monkeypatch):
    image = random_image((6, 9, 4))
    write_image(tmp_path / "a.png", image)
    monkeypatch.setattr(rio.cv2, "imdecode", lambda *args: None)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), image)


# ---------------------------------------------------------------------------
# EXIF orientation and metadata
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_orientation_applied(tmp_path, orientation):
    gray = blocky_gray()
    path = tmp_path / "o.jpg"
    Image.fromarray(gray).save(path, "JPEG", quality=95, exif=exif_bytes(orientation, "Cam"))
    back, meta = read_image(path, with_meta=True)
    expected = upright_like_pillow(gray, orientation)
    assert back.shape == expected.shape
    assert np.abs(back.astype(int) - expected).max() <= 3
    exif = parse_exif(meta.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "Cam"


def test_input_as_read_only_when_nothing_would_differ(tmp_path):
    """The input file's bytes may stand for an output only for the same pixels, dtype and format."""
    image = random_image((6, 9, 3))
    meta = ImageMeta(format="png")
    assert is_input_as_read(tmp_path / "out.png", image.copy(), image, meta)
    assert is_input_as_read(tmp_path / "OUT.PNG", image.copy(), image, meta)
    changed = image.copy()
    changed[3, 4, 1] ^= 1
    assert not is_input_as_read(tmp_path / "out.png", changed, image, meta)
    assert not is_input_as_read(tmp_path / "out.png", image.astype(np.uint16), image, meta)
    assert not is_input_as_read(tmp_path / "out.png", image[:5], image, meta)
    assert not is_input_as_read(tmp_path / "out.tif", image.copy(), image, meta)
    assert not is_input_as_read(tmp_path / "out.png", image.copy(), image, ImageMeta(format="jpeg"))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_orientation_colour(tmp_path, orientation):
    image = np.zeros((16, 32, 3), dtype=np.uint8)
    image[:8, :8] = (255, 0, 0)  # red block in the stored top-left corner
    path = tmp_path / "c.jpg"
    Image.fromarray(image).save(path, "JPEG", quality=100, exif=exif_bytes(orientation))
    back = read_image(path)
    expected = upright_like_pillow(image, orientation)
    assert back.shape == expected.shape
    red = (back[..., 0] > 128) & (back[..., 1] < 100)
    np.testing.assert_array_equal(red, expected[..., 0] > 128)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_orientation_exact(tmp_path, orientation):
    image = random_image((5, 8, 3))
    path = tmp_path / "o.png"
    Image.fromarray(image).save(path, "PNG", exif=exif_bytes(orientation))
    np.testing.assert_array_equal(read_image(path), upright_like_pillow(image, orientation))


def test_png_exif_after_pixel_data(tmp_path):
    image = random_image((5, 8, 3))
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG", exif=exif_bytes(6, "Late"))
    chunks = png_chunks(out.getvalue())
    exif_chunk = next(c for c in chunks if c[4:8] == b"eXIf")
    others = [c for c in chunks if c is not exif_chunk]
    moved = b"\x89PNG\r\n\x1a\n" + b"".join(others[:-1]) + exif_chunk + others[-1]
    (tmp_path / "late.png").write_bytes(moved)
    back, meta = read_image(tmp_path / "late.png", with_meta=True)
    np.testing.assert_array_equal(back, np.rot90(image, -1))
    assert parse_exif(meta.exif)[0x010F] == "Late"


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_webp_and_tiff_orientation(tmp_path, orientation):
    image = random_image((5, 8, 3))
    expected = upright_like_pillow(image, orientation)
    webp = tmp_path / "o.webp"
    Image.fromarray(image).save(webp, "WEBP", lossless=True, exif=exif_bytes(orientation))
    np.testing.assert_array_equal(read_image(webp), expected)
    tiff = tmp_path / "o.tif"
    Image.fromarray(image).save(tiff, "TIFF", exif=exif_bytes(orientation, "T"))
    back, meta = read_image(tiff, with_meta=True)
    np.testing.assert_array_equal(back, expected)
    exif = parse_exif(meta.exif)
    assert exif[0x010F] == "T" and exif[0x0112] == 1
    assert 273 not in exif and 256 not in exif  # TIFF layout tags are not EXIF


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_sixteen_bit_tiff_orientation(tmp_path, orientation):
    """16-bit colour TIFF is decoded by OpenCV, which orients it itself: not twice."""
    image = random_image((5, 8, 3), np.uint16, seed=orientation)
    (tmp_path / "o.tif").write_bytes(tiff_bytes(image, orientation))
    expected = orient_like_io(image, orientation)
    np.testing.assert_array_equal(read_image(tmp_path / "o.tif"), expected)


def test_orient_helper_matches_pillow():
    image = random_image((4, 6))
    for orientation in range(1, 9):
        np.testing.assert_array_equal(
            orient_like_io(image, orientation), upright_like_pillow(image, orientation)
        )


def test_exif_bytes_are_patched_in_place(tmp_path):
    path = tmp_path / "p.jpg"
    original = exif_bytes(6, "Canon", "2021:02:03 04:05:06")
    Image.fromarray(blocky_gray()).save(path, "JPEG", exif=original)
    _, meta = read_image(path, with_meta=True)
    assert meta.exif.startswith(b"Exif\x00\x00")
    assert len(meta.exif) == len(original)
    differing = [i for i, (a, b) in enumerate(zip(meta.exif, original)) if a != b]
    assert len(differing) == 1  # only the orientation value (6 -> 1)


def test_meta_without_exif(tmp_path):
    write_image(tmp_path / "plain.png", random_image((4, 4, 3)))
    _, meta = read_image(tmp_path / "plain.png", with_meta=True)
    assert meta == ImageMeta(format="png", exif=None, icc_profile=None)


def srgb_profile():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_a_cmyk_photo_s_profile_is_not_put_on_its_rgb_result(tmp_path):
    cmyk_profile = srgb_profile()[:16] + b"CMYK" + srgb_profile()[20:]   # the header says what colours it describes
    picture = Image.fromarray(np.full((8, 8, 3), (200, 30, 60), np.uint8)).convert("CMYK")
    picture.save(tmp_path / "cmyk.jpg", quality=100, icc_profile=cmyk_profile)
    pixels, meta = read_image(tmp_path / "cmyk.jpg", with_meta=True)
    assert pixels.shape == (8, 8, 3) and meta.icc_profile == cmyk_profile
    with pytest.warns(UserWarning, match=r"the input's ICC profile describes CMYK colours, not the output's RGB "
                                         r"ones; writing without it"):
        write_image(tmp_path / "out.jpg", pixels, meta=meta)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "RGB" and "icc_profile" not in out.info
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a matching profile is kept, without a word
        write_image(tmp_path / "rgb.jpg", pixels, meta=dataclasses.replace(meta, icc_profile=srgb_profile()))
    assert read_image(tmp_path / "rgb.jpg", with_meta=True)[1].icc_profile == srgb_profile()


@pytest.mark.parametrize("out_ext", [".jpg", ".png", ".webp", ".tif"])
def test_rewrite_keeps_exif_and_icc(tmp_path, out_ext):
    source = tmp_path / "in.jpg"
    image = np.stack([blocky_gray()] * 3, axis=2)
    icc = srgb_profile()
    Image.fromarray(image).save(
        source, "JPEG", exif=exif_bytes(6, "Canon", "2020:01:02 03:04:05"), icc_profile=icc
    )
    pixels, meta = read_image(source, with_meta=True)
    target = tmp_path / f"out{out_ext}"
    write_image(target, pixels, meta=meta)

    back, back_meta = read_image(target, with_meta=True)
    assert back.shape == pixels.shape  # upright, not rotated a second time
    exif = parse_exif(back_meta.exif)
    assert exif[0x0112] == 1
    assert exif[0x010F] == "Canon"
    assert exif.get_ifd(0x8769)[0x9003] == "2020:01:02 03:04:05"
    assert back_meta.icc_profile == icc
    with Image.open(target) as reopened:  # other readers see the same
        assert reopened.getexif()[0x010F] == "Canon"


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
       b' tiff:Orientation="6"><dc:subject>rain, street</dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')
IPTC = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0c\x1c\x02\x74\x00\x08(c) Me.."   # a copyright record


def _with_app13(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with an APP13 segment holding ``payload`` right after SOI."""
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_jpeg_xmp_iptc_and_comments_are_kept_and_the_xmp_set_upright(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.stack([blocky_gray()] * 3, axis=2)).save(buffer, "JPEG", exif=exif_bytes(6, "Canon"),
                                                                  xmp=XMP, comment=b"shot in the rain")
    (tmp_path / "in.jpg").write_bytes(_with_app13(buffer.getvalue(), IPTC))
    pixels, meta = read_image(tmp_path / "in.jpg", with_meta=True)
    assert [kind for kind, _ in meta.extra] == [b"\xff\xed", b"\xff\xe1", b"\xff\xfe"]
    write_image(tmp_path / "out.jpg", pixels, meta=meta)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.info["xmp"] == XMP.replace(b'tiff:Orientation="6"', b'tiff:Orientation="1"')   # shown upright
        assert out.info["comment"] == b"shot in the rain" and out.getexif()[0x010F] == "Canon"
        assert out.applist.count(("APP13", IPTC)) == 1 and out.size == (32, 48)
    np.testing.assert_array_equal(read_image(tmp_path / "out.jpg"), decode_image(encode_image("x.jpg", pixels), "x.jpg"))
    with pytest.warns(UserWarning, match=r"the JPEG file's metadata \(IPTC, comments\) cannot be carried "
                                         r"into a PNG file; writing without it \(write JPEG to keep it\)"):
        write_image(tmp_path / "out.png", pixels, meta=meta)   # the XMP packet can: a PNG holds one too
    upright = XMP.replace(b'tiff:Orientation="6"', b'tiff:Orientation="1"')
    with Image.open(tmp_path / "out.png") as out:
        assert out.text == {"XML:com.adobe.xmp": upright.decode()}
    with pytest.warns(UserWarning, match=r"\(IPTC, comments\) cannot be carried into a WEBP file"):
        write_image(tmp_path / "out.webp", pixels, meta=meta)
    for name in ("out.png", "out.webp"):   # and from there into any of the three
        _, again = read_image(tmp_path / name, with_meta=True)
        write_image(tmp_path / f"{name}.jpg", pixels, meta=again)
        with Image.open(tmp_path / f"{name}.jpg") as out:
            assert out.info["xmp"] == upright


def test_png_text_chunks_are_kept_in_order(tmp_path):
    from PIL import PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Me")
    info.add_text("Comment", "a long note " * 40, zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    Image.fromarray(random_image((8, 9, 3))).save(tmp_path / "in.png", pnginfo=info)
    pixels, meta = read_image(tmp_path / "in.png", with_meta=True)
    assert [kind for kind, _ in meta.extra] == [b"tEXt", b"zTXt", b"iTXt"]
    write_image(tmp_path / "out.png", pixels[::-1], meta=meta)
    with Image.open(tmp_path / "out.png") as out:
        assert out.text == {"Author": "Me", "Comment": "a long note " * 40, "XML:com.adobe.xmp": XMP.decode()}
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), pixels[::-1])


@pytest.mark.parametrize("channels, options", [(3, {"quality": 90, "exif": exif_bytes(6, "Canon")}),
                                                (4, {"lossless": True})])
def test_webp_xmp_is_kept_and_set_upright(tmp_path, channels, options):
    pixels = random_image((24, 40, channels))
    if channels == 4:
        pixels[..., 3] = np.arange(40, dtype=np.uint8)[None] * 6   # varied alpha: a VP8L file that says it has one
    Image.fromarray(pixels).save(tmp_path / "in.webp", xmp=XMP, **options)
    read, meta = read_image(tmp_path / "in.webp", with_meta=True)
    assert [kind for kind, _ in meta.extra] == [b"XMP "]
    write_image(tmp_path / "out.webp", read, meta=meta)
    with Image.open(tmp_path / "out.webp") as out:
        turned = "exif" in options   # the pixels were turned upright, so the XMP says 1
        assert out.info["xmp"] == (XMP.replace(b'tiff:Orientation="6"', b'tiff:Orientation="1"') if turned else XMP)
        assert out.mode == ("RGB", "RGBA")[channels == 4] and out.size == read.shape[1::-1]
        if turned:
            assert out.getexif()[0x010F] == "Canon"
    same_without_xmp = encode_image("x.webp", read, dataclasses.replace(meta, extra=()))
    np.testing.assert_array_equal(read_image(tmp_path / "out.webp"), decode_image(same_without_xmp, "x.webp"))


def test_print_size_and_gamma_are_kept_in_the_same_format(tmp_path):
    from PIL import PngImagePlugin
    pixels = random_image((8, 9, 3))
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", 100000))   # gamma 1.0: linear values
    Image.fromarray(pixels).save(tmp_path / "in.png", pnginfo=info, dpi=(300, 300))
    Image.fromarray(pixels).save(tmp_path / "in.jpg", dpi=(240, 240), quality=95)
    for name in ("in.png", "in.jpg"):
        read, meta = read_image(tmp_path / name, with_meta=True)
        out = tmp_path / name.replace("in", "out")
        write_image(out, read, meta=meta)
        with Image.open(tmp_path / name) as before, Image.open(out) as after:
            assert after.info["dpi"] == before.info["dpi"] and after.info.get("gamma") == before.info.get("gamma")
        np.testing.assert_array_equal(read_image(out), decode_image(encode_image(name, read), name))
    with pytest.warns(UserWarning, match=r"the JPEG file's metadata \(resolution\) cannot be carried into a PNG"):
        write_image(tmp_path / "jpeg.png", read, meta=meta)
    Image.fromarray(pixels).save(tmp_path / "plain.jpg")   # JFIF without a print size (aspect 1:1)
    read, meta = read_image(tmp_path / "plain.jpg", with_meta=True)
    assert meta.extra == ()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / "plain.png", read, meta=meta)


def test_a_lossy_webp_is_written_lossy_and_a_lossless_one_lossless(tmp_path):
    from rain2avoid.synth import clean_example
    photo = clean_example("chelsea", size=(96, 128))
    Image.fromarray(photo).save(tmp_path / "lossy.webp", quality=80)
    Image.fromarray(photo).save(tmp_path / "lossless.webp", lossless=True)
    for name, lossy in (("lossy.webp", True), ("lossless.webp", False)):
        pixels, meta = read_image(tmp_path / name, with_meta=True)
        assert meta.lossy is lossy
        write_image(tmp_path / f"out-{name}", pixels, meta=meta)
        kinds = webp.chunks((tmp_path / f"out-{name}").read_bytes())
        assert (b"VP8 " in kinds, b"VP8L" in kinds) == (lossy, not lossy)
    assert (tmp_path / "out-lossy.webp").stat().st_size < 2 * (tmp_path / "lossy.webp").stat().st_size
    np.testing.assert_array_equal(read_image(tmp_path / "out-lossless.webp"), read_image(tmp_path / "lossless.webp"))
    write_image(tmp_path / "from-png.webp", pixels)   # no meta, or another format's: lossless, as before
    assert b"VP8L" in webp.chunks((tmp_path / "from-png.webp").read_bytes())


def test_a_png_s_compressed_xmp_goes_into_a_jpeg(tmp_path):
    from PIL import PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.decode(), zip=True)
    info.add_text("Author", "Me")
    Image.fromarray(random_image((8, 9, 3))).save(tmp_path / "in.png", pnginfo=info)
    pixels, meta = read_image(tmp_path / "in.png", with_meta=True)
    with pytest.warns(UserWarning, match=r"the PNG file's metadata \(text\) cannot be carried into a JPEG file"):
        write_image(tmp_path / "out.jpg", pixels, meta=meta)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.info["xmp"] == XMP


def test_a_png_xmp_that_unpacks_to_more_than_a_mebibyte_is_not_carried(tmp_path):
    Image.fromarray(random_image((8, 9, 3))).save(tmp_path / "plain.png")
    data = (tmp_path / "plain.png").read_bytes()
    packet = zlib.compress(b"<x:xmpmeta>" + b" " * (3 << 20))   # 3 MiB, a few kB packed
    itxt = png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\x01\x00\x00\x00" + packet)
    at = data.index(b"IEND") - 4   # after the image data, where Pillow's own size check does not look
    (tmp_path / "bomb.png").write_bytes(data[:at] + itxt + data[at:])
    pixels, meta = read_image(tmp_path / "bomb.png", with_meta=True)
    with pytest.warns(UserWarning, match=r"the PNG file's metadata \(text\) cannot be carried into a WEBP file"):
        write_image(tmp_path / "out.webp", pixels, meta=meta)
    assert (tmp_path / "out.webp").stat().st_size < 10_000   # not the 3 MiB unpacked


def test_a_png_s_usual_colour_and_aspect_chunks_are_no_loss_worth_a_warning(tmp_path):
    from PIL import PngImagePlugin
    info = PngImagePlugin.PngInfo()   # what Microsoft Paint writes: sRGB, its gamma, square pixels
    info.add(b"sRGB", b"\x00")
    info.add(b"gAMA", struct.pack(">I", 45455))
    Image.fromarray(random_image((8, 9, 3))).save(tmp_path / "paint.png", pnginfo=info)
    data = (tmp_path / "paint.png").read_bytes()
    at = data.index(b"IDAT") - 4
    aspect = png_chunk(b"pHYs", struct.pack(">IIB", 3780, 3780, 0))
    (tmp_path / "paint.png").write_bytes(data[:at] + aspect + data[at:])
    pixels, meta = read_image(tmp_path / "paint.png", with_meta=True)
    assert [kind for kind, _ in meta.extra] == [b"sRGB", b"gAMA", b"pHYs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / "paint.jpg", pixels, meta=meta)


def test_write_resets_orientation_of_given_meta(tmp_path):
    meta = ImageMeta(format="jpeg", exif=exif_bytes(8, "X"))
    write_image(tmp_path / "w.jpg", blocky_gray(), meta=meta)
    back, back_meta = read_image(tmp_path / "w.jpg", with_meta=True)
    assert back.shape == (32, 48)
    assert parse_exif(back_meta.exif)[0x0112] == 1


def test_sixteen_bit_png_keeps_exif_and_depth(tmp_path):
    image = random_image((6, 7, 3), np.uint16)
    meta = ImageMeta(format="png", exif=exif_bytes(1, "Deep"), icc_profile=srgb_profile())
    write_image(tmp_path / "d.png", image, meta=meta)
    back, back_meta = read_image(tmp_path / "d.png", with_meta=True)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image)
    assert parse_exif(back_meta.exif)[0x010F] == "Deep"
    assert back_meta.icc_profile == meta.icc_profile


def test_sixteen_bit_gray_tiff_keeps_exif(tmp_path):
    image = random_image((6, 7), np.uint16)
    write_image(tmp_path / "g.tif", image, meta=ImageMeta("tiff", exif_bytes(1, "Gray16")))
    back, meta = read_image(tmp_path / "g.tif", with_meta=True)
    np.testing.assert_array_equal(back, image)
    assert parse_exif(meta.exif)[0x010F] == "Gray16"


def test_sixteen_bit_colour_tiff_metadata_warns_but_keeps_pixels(tmp_path):
    image = random_image((6, 7, 3), np.uint16)
    with pytest.warns(UserWarning, match="16-bit colour TIFF"):
        write_image(tmp_path / "c.tif", image, meta=ImageMeta("tiff", exif_bytes(1, "C")))
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif"), image)


def test_oversized_jpeg_exif_warns_and_writes_pixels(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Big"
    exif.get_ifd(0x8769)[0x927C] = b"x" * 70_000  # maker note too big for a JPEG segment
    meta = ImageMeta(format="jpeg", exif=exif.tobytes())
    with pytest.warns(UserWarning, match="does not fit"):
        write_image(tmp_path / "big.jpg", blocky_gray(), meta=meta)
    assert read_image(tmp_path / "big.jpg").shape == (32, 48)
    write_image(tmp_path / "big.png", blocky_gray(), meta=meta)  # PNG has room
    assert parse_exif(read_image(tmp_path / "big.png", with_meta=True)[1].exif)[0x010F] == "Big"


def test_bmp_ignores_metadata(tmp_path):
    meta = ImageMeta(format="jpeg", exif=exif_bytes(1, "X"), icc_profile=b"icc")
    write_image(tmp_path / "m.bmp", random_image((3, 4, 3)), meta=meta)
    assert read_image(tmp_path / "m.bmp", with_meta=True)[1].exif is None


# ---------------------------------------------------------------------------
# size limit
# ---------------------------------------------------------------------------


def test_max_pixels_refused_before_decoding(tmp_path, monkeypatch):
    write_image(tmp_path / "small.png", random_image((20, 30, 3)))

    def must_not_decode(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(rio.cv2, "imdecode", must_not_decode)
    monkeypatch.setattr(rio, "_decode_pixels", must_not_decode)
    with pytest.raises(ImageReadError) as caught:
        read_image(tmp_path / "small.png", max_pixels=100)
    message = str(caught.value)
    assert message == (
        f"cannot read {tmp_path / 'small.png'}: image is 30x20 = 600 pixels (0.0 MP), above the "
        "limit of 100 pixels (raise --max-pixels to allow it)"
    )


def test_huge_header_refused_without_pillow_bomb_errors(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_size(20000, 20000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        message = assert_read_error(path)
    assert message == (
        f"cannot read {path}: image is 20000x20000 = 400,000,000 pixels (400.0 MP), "
        "above the limit of 100,000,000 pixels (raise --max-pixels to allow it)"
    )
    path.write_bytes(png_with_size(50000, 50000))
    assert_read_error(path, "50000x50000 = 2,500,000,000 pixels (2500.0 MP)")
    path.write_bytes(png_with_size(12000, 12000))  # above Pillow's warning level only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_read_error(path, "(144.0 MP)")
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's global left alone


def webp_with_canvas(width, height):
    """A real lossless WebP in extended (VP8X) form, its canvas patched to width x height."""
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "WEBP", lossless=True, exif=exif_bytes(1))
    data = bytearray(out.getvalue())
    assert data[12:16] == b"VP8X"
    data[24:27] = (width - 1).to_bytes(3, "little")
    data[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def test_huge_webp_canvas_gets_our_limit_message(tmp_path):
    """The canvas size is checked before Pillow's WebP reader (which allocates the canvas) runs."""
    path = tmp_path / "big.webp"
    path.write_bytes(webp_with_canvas(16383, 16383))
    assert_read_error(path, "(268.4 MP), above the limit of 100,000,000 pixels")
    # Allowed by max_pixels, the canvas disagrees with the 4x4 picture: damaged, with every Pillow.
    message = str(pytest.raises(ImageReadError, read_image, path, max_pixels=300_000_000).value)
    assert "truncated or corrupt WEBP file" in message


def test_webp_above_pillows_own_limit_obeys_max_pixels_only(tmp_path, monkeypatch):
    """Pillow 13's WebP reader refuses, while reading the header, an image above Pillow's own
    decompression-bomb limit (179 MP) whatever --max-pixels allows; Pillow 12 and older read it.
    A lowered Pillow limit stands in for such a photo: it is read, metadata and all, anyway."""
    image = random_image((6, 9, 3))
    path = tmp_path / "big.webp"
    Image.fromarray(image).save(path, "WEBP", lossless=True, exif=exif_bytes(6, "Wide"),
                                icc_profile=srgb_profile())
    below_limit = read_image(path, with_meta=True)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # Pillow refuses above 40 pixels: this has 54
    back, meta = read_image(path, with_meta=True)
    np.testing.assert_array_equal(back, np.rot90(image, -1))
    np.testing.assert_array_equal(back, below_limit[0])
    assert meta == below_limit[1]
    assert parse_exif(meta.exif)[0x010F] == "Wide" and parse_exif(meta.exif)[0x0112] == 1
    assert read_image(path, max_pixels=None).shape == (9, 6, 3)
    message = str(pytest.raises(ImageReadError, read_image, path, max_pixels=50).value)
    assert message.endswith("image is 9x6 = 54 pixels (0.0 MP), above the limit of 50 pixels "
                            "(raise --max-pixels to allow it)")
    path.write_bytes(path.read_bytes()[:-40])
    assert_read_error(path, "truncated or corrupt WEBP file")
    frames = [Image.fromarray(random_image((6, 9, 3), seed=k)) for k in range(2)]
    frames[0].save(path, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert_read_error(path, "the file is an animation of 2 frames")


@pytest.mark.parametrize("shape", [(5, 7, 3), (300, 2, 4), (1, 1, 3)])
@pytest.mark.parametrize("lossless", [True, False])
def test_webp_canvas_size_parser(shape, lossless):
    out = io.BytesIO()
    Image.fromarray(random_image(shape)).save(out, "WEBP", lossless=lossless)
    assert webp.canvas_size(out.getvalue()) == (shape[1], shape[0])


def test_limit_none_and_invalid(tmp_path):
    write_image(tmp_path / "a.png", random_image((5, 5)))
    assert read_image(tmp_path / "a.png", max_pixels=None).shape == (5, 5)
    assert read_image(tmp_path / "a.png", max_pixels=25).shape == (5, 5)
    with pytest.raises(ValueError):
        read_image(tmp_path / "a.png", max_pixels=0)


# ---------------------------------------------------------------------------
# unreadable input
# ---------------------------------------------------------------------------


def test_missing_empty_folder_garbage(tmp_path):
    assert_read_error(tmp_path / "missing.png", "no such file")
    (tmp_path / "empty.png").write_bytes(b"")
    assert_read_error(tmp_path / "empty.png", "file is empty")
    (tmp_path / "folder.png").mkdir()
    assert_read_error(tmp_path / "folder.png", "folder")
    (tmp_path / "garbage.jpg").write_bytes(np.random.default_rng(1).bytes(3000))
    assert_read_error(tmp_path / "garbage.jpg", "not an image")
    (tmp_path / "text.bmp").write_bytes(b"BMW is not a bitmap\n" * 10)
    assert_read_error(tmp_path / "text.bmp", "not an image")


@pytest.mark.parametrize("fmt, name", [("GIF", "GIF"), ("JPEG2000", "JPEG 2000"), ("ICO", "ICO (Windows icon)"),
                                       ("PPM", "Netpbm (PBM/PGM/PPM)")])
def test_known_unsupported_format_is_named(tmp_path, fmt, name):
    path = pillow_file(tmp_path / "picture.img", Image.new("RGB", (16, 16)), fmt)
    message = assert_read_error(path, f"unsupported image format: {name} (")
    assert "convert it to PNG" in message


@pytest.mark.parametrize("fmt, suffix, kind", [("TIFF", ".tif", "2 pages"), ("PNG", ".png", "2 frames"),
                                               ("WEBP", ".webp", "2 frames")])
def test_several_images_in_one_file_refused(tmp_path, fmt, suffix, kind):
    pages = [Image.fromarray(random_image((6, 9, 3), seed=k)) for k in range(2)]
    path = tmp_path / f"several{suffix}"
    pages[0].save(path, fmt, save_all=True, append_images=pages[1:], lossless=True)
    assert_read_error(path, kind)


def test_tiff_with_a_reduced_resolution_preview_page_is_read(tmp_path):
    image = random_image((6, 9, 3))
    preview = Image.fromarray(image[::2, ::2].copy())
    preview.encoderinfo = {"tiffinfo": {254: 1}}  # NewSubfileType: a reduced-resolution copy
    path = tmp_path / "with-preview.tif"
    Image.fromarray(image).save(path, "TIFF", save_all=True, append_images=[preview])
    np.testing.assert_array_equal(read_image(path), image)
    Image.fromarray(image).save(tmp_path / "two.tif", "TIFF", save_all=True,
                                append_images=[Image.fromarray(image[::2, ::2].copy())])
    assert_read_error(tmp_path / "two.tif", "2 pages")


def test_one_page_tiff_with_broken_next_page_link_is_read(tmp_path):
    image = random_image((6, 9, 3))
    write_image(tmp_path / "a.tif", image)
    data = bytearray((tmp_path / "a.tif").read_bytes())
    endian = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(endian + "I", data[4:8])
    (entries,) = struct.unpack(endian + "H", data[ifd:ifd + 2])
    link = ifd + 2 + 12 * entries
    data[link:link + 4] = struct.pack(endian + "I", len(data) + 1000)  # a next page beyond the end
    (tmp_path / "b.tif").write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the broken link
        np.testing.assert_array_equal(read_image(tmp_path / "b.tif"), image)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")
@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif", ".webp"])
@pytest.mark.parametrize("keep", [0.05, 0.5, 0.9])
def test_truncated_files(tmp_path, ext, keep):
    image = random_image((40, 50, 3), seed=4)
    full = tmp_path / f"full{ext}"
    write_image(full, image)
    data = full.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: max(1, int(len(data) * keep))])
    assert_read_error(cut)


@pytest.mark.parametrize("extra", [0, 2, 11])
def test_png_that_stops_after_its_header_says_so(tmp_path, extra):
    """Pillow's own reason ("unpack_from requires a buffer of at least 4 bytes...") says nothing to a user."""
    write_image(tmp_path / "full.png", random_image((40, 50, 3), seed=4))
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:8 + 25 + extra])   # signature, IHDR
    assert_read_error(tmp_path / "cut.png", "truncated or corrupt PNG file (the image data stops short)")


def test_truncated_png_is_refused_without_decoder_noise(tmp_path, capfd):
    """libpng (inside OpenCV) prints its own errors to stderr; the one-line error must be all."""
    write_image(tmp_path / "full.png", random_image((120, 100, 3), seed=4))
    data = (tmp_path / "full.png").read_bytes()
    chunks = png_chunks(data)
    assert [c[4:8] for c in chunks].count(b"IDAT") > 2
    cuts = {"inside": data[: len(data) // 2], "between": b"\x89PNG\r\n\x1a\n" + b"".join(chunks[:-2])}
    for name, cut in cuts.items():
        (tmp_path / f"{name}.png").write_bytes(cut)
        assert_read_error(tmp_path / f"{name}.png", "truncated")
    (tmp_path / "no_end.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(chunks[:-1]))  # only IEND missing
    np.testing.assert_array_equal(read_image(tmp_path / "no_end.png"), read_image(tmp_path / "full.png"))
    assert capfd.readouterr().err == ""


# PNGs whose chunks are whole but damaged; libpng (inside OpenCV) prints a line to stderr for each.
PNG_DAMAGES = {  # name -> what the error says
    "idat-crc": "the IDAT chunk fails its CRC check",
    "idat-byte-flipped": "the IDAT chunk fails its CRC check",
    "no-idat": "no image data before the IEND chunk",
    "idat-split": "the IDAT chunks are not consecutive",
    "not-zlib": "the image data is not a zlib stream",
    "unknown-critical-chunk": "unknown critical chunk ABCD",
    "invalid-chunk-type": "a chunk has the invalid type b't1Xt'",
    "ihdr-not-first": "the file does not start with an IHDR chunk",
}


def small_png_chunks():
    """The chunks of a small RGB PNG as OpenCV writes it: IHDR, IDAT, IEND."""
    return png_chunks(cv2.imencode(".png", random_image((24, 32, 3), seed=5))[1].tobytes())


def damaged_png(damage):
    """A small PNG with the named damage (see PNG_DAMAGES), its chunk CRCs fixed unless broken on purpose."""
    chunks = small_png_chunks()
    ihdr, end = chunks[0], png_chunk(b"IEND", b"")
    data = b"".join(c[8:-4] for c in chunks if c[4:8] == b"IDAT")
    idat, text = png_chunk(b"IDAT", data), png_chunk(b"tEXt", b"Comment\0rain")
    bad_crc = idat[:-4] + bytes(b ^ 0xFF for b in idat[-4:])
    flipped = idat[:20] + bytes([idat[20] ^ 0xFF]) + idat[21:]
    parts = {
        "idat-crc": [ihdr, bad_crc, end],
        "idat-byte-flipped": [ihdr, flipped, end],
        "text-crc-after-idat": [ihdr, idat, text[:-1] + bytes([text[-1] ^ 0xFF]), end],
        "iend-crc": [ihdr, idat, end[:-1] + bytes([end[-1] ^ 0xFF])],
        "no-idat": [ihdr, end],
        "idat-split": [ihdr, png_chunk(b"IDAT", data[:20]), text, png_chunk(b"IDAT", data[20:]), end],
        "not-zlib": [ihdr, png_chunk(b"IDAT", b"\x78\x00" + data[2:]), end],
        "unknown-critical-chunk": [ihdr, png_chunk(b"ABCD", b"?"), idat, end],
        "invalid-chunk-type": [ihdr, idat, png_chunk(b"t1Xt", b"?"), end],
        "ihdr-not-first": [text, ihdr, idat, end],
    }[damage]
    return b"\x89PNG\r\n\x1a\n" + b"".join(parts)


@pytest.mark.parametrize("damage", sorted(PNG_DAMAGES))
def test_damaged_png_chunks_are_refused_without_decoder_noise(tmp_path, capfd, damage):
    (tmp_path / "a.png").write_bytes(damaged_png(damage))
    assert_read_error(tmp_path / "a.png", f"truncated or corrupt PNG file ({PNG_DAMAGES[damage]})")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("damage", ["text-crc-after-idat", "iend-crc"])
def test_png_with_a_bad_crc_outside_its_image_data_is_still_read(tmp_path, damage):
    """A text chunk or IEND that fails its CRC holds no pixels: the image is read, as viewers do."""
    (tmp_path / "a.png").write_bytes(damaged_png(damage))
    expected = cv2.cvtColor(random_image((24, 32, 3), seed=5), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), expected)


def test_program_reports_damaged_pngs_in_one_line_each_without_libpng_lines(tmp_path):
    """Through the real program: libpng writes to the process's stderr, which only a subprocess shows."""
    folder = tmp_path / "in"
    folder.mkdir()
    for damage in PNG_DAMAGES:
        (folder / f"{damage}.png").write_bytes(damaged_png(damage))
    write_image(folder / "good.png", random_image((24, 32, 3)))
    command = [sys.executable, "-m", "rain2avoid.cli", "derain", folder, "-o", tmp_path / "out",
               "--steps", "2"]
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr
    assert os.listdir(tmp_path / "out") == ["good.png"]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert sorted(errors) == sorted(f"error: cannot read {folder / f'{damage}.png'}: "
                                    f"truncated or corrupt PNG file ({reason})"
                                    for damage, reason in PNG_DAMAGES.items())
    assert "libpng" not in done.stderr and "WARN" not in done.stderr


def test_png_whose_image_data_holds_too_few_rows_is_refused(tmp_path, capfd):
    """A zlib stream that ends properly but early: Pillow, the fallback when libpng fails, decoded it
    with black rows; with its IEND chunk, libpng printed "Not enough image data"."""
    chunks = small_png_chunks()
    rows = zlib.decompress(b"".join(c[8:-4] for c in chunks if c[4:8] == b"IDAT"))
    for name, data in [("few-rows", zlib.compress(rows[: len(rows) // 2])),
                       ("no-checksum", zlib.compress(rows)[:-4])]:
        idat = png_chunk(b"IDAT", data)
        (tmp_path / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunks[0] + idat + chunks[-1])
        assert_read_error(tmp_path / f"{name}.png", "(the image data stops short)")
    assert capfd.readouterr().err == ""


def whole_chunked_png_with_bad_image_data(damage):
    """A PNG whose chunks are all whole, with right lengths and CRCs, up to IEND, but whose image
    data (a 120x100 RGB image) stops short, is damaged or holds more rows than the header says;
    libpng finds it only while decoding."""
    chunks = png_chunks(cv2.imencode(".png", random_image((120, 100, 3), seed=4))[1].tobytes())
    ihdr, end = chunks[0], png_chunk(b"IEND", b"")
    stream = b"".join(c[8:-4] for c in chunks if c[4:8] == b"IDAT")
    half = stream[: len(stream) // 2]
    rows = zlib.decompress(stream)
    flipped = stream[:100] + bytes([stream[100] ^ 0x55]) + stream[101:]
    parts = {
        "half-of-the-stream": [png_chunk(b"IDAT", half)],
        "later-idat-chunks-lost": [png_chunk(b"IDAT", half[k:k + 4096]) for k in range(0, len(half), 4096)],
        "text-after-a-short-stream": [png_chunk(b"IDAT", half), png_chunk(b"tEXt", b"Comment\0rain")],
        "only-the-zlib-header": [png_chunk(b"IDAT", stream[:2])],
        "damaged-stream": [png_chunk(b"IDAT", flipped)],
        "wrong-checksum": [png_chunk(b"IDAT", stream[:-1] + bytes([stream[-1] ^ 1]))],
        "too-many-rows": [png_chunk(b"IDAT", zlib.compress(rows + rows[: len(rows) // 120]))],
    }[damage]
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(parts) + end


BAD_IMAGE_DATA = {  # name -> what the error says
    "half-of-the-stream": "the image data stops short",
    "later-idat-chunks-lost": "the image data stops short",
    "text-after-a-short-stream": "the image data stops short",
    "only-the-zlib-header": "the image data stops short",
    "damaged-stream": "the compressed image data is damaged",
    "wrong-checksum": "the compressed image data is damaged",
}


@pytest.mark.parametrize("damage", sorted(BAD_IMAGE_DATA))
def test_png_with_whole_chunks_but_bad_image_data_is_refused_without_decoder_noise(tmp_path, capfd, damage):
    """libpng printed "libpng error: Not enough image data" (or "incorrect data check") beside the
    reader's one-line error: the image data is checked before OpenCV decodes a PNG."""
    (tmp_path / "a.png").write_bytes(whole_chunked_png_with_bad_image_data(damage))
    assert_read_error(tmp_path / "a.png", f"truncated or corrupt PNG file ({BAD_IMAGE_DATA[damage]})")
    assert capfd.readouterr().err == ""


def test_png_with_more_rows_than_its_header_is_read_as_libpng_reads_it(tmp_path):
    """Its image is whole and every viewer shows it: read (libpng warns), not refused."""
    (tmp_path / "a.png").write_bytes(whole_chunked_png_with_bad_image_data("too-many-rows"))
    cut = whole_chunked_png_with_bad_image_data("too-many-rows")
    (tmp_path / "b.png").write_bytes(cut[:-12])                      # and its IEND lost: Pillow's path
    clean = random_image((120, 100, 3), seed=4)[..., ::-1]         # written by OpenCV, as BGR
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), clean)
    assert_read_error(tmp_path / "b.png", "truncated or corrupt PNG file (more image data than the header's size)")


def adam7_png(width, height, bit_depth, colour_type):
    """An interlaced PNG (Pillow and OpenCV do not write them): filter byte 0, arbitrary samples."""
    bits = bit_depth * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    rows = b""
    for column, row, column_step, row_step in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
        columns, count = max(0, -(-(width - column) // column_step)), max(0, -(-(height - row) // row_step))
        if columns:
            rows += (b"\0" + bytes(range(1, 1 + (columns * bits + 7) // 8))) * count
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 1)
    palette = [png_chunk(b"PLTE", bytes(range(256)) * 3)] if colour_type == 3 else []
    chunks = [png_chunk(b"IHDR", ihdr), *palette, png_chunk(b"IDAT", zlib.compress(rows)),
              png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


@pytest.mark.parametrize("layout", [(1, 0), (4, 0), (16, 0), (2, 3), (8, 2), (16, 2), (8, 4), (16, 6)])
def test_pillow_fallback_reads_interlaced_pngs_of_every_layout(tmp_path, monkeypatch, layout):
    """The image-data check before the Pillow fallback knows the size of each layout and pass."""
    (tmp_path / "a.png").write_bytes(adam7_png(11, 7, *layout))
    expected = read_image(tmp_path / "a.png")
    monkeypatch.setattr(rio.cv2, "imdecode", lambda *args: None)
    assert read_image(tmp_path / "a.png").shape[:2] == expected.shape[:2] == (7, 11)


def test_truncated_jpeg_end_marker(tmp_path):
    write_image(tmp_path / "a.jpg", random_image((40, 50, 3)))
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "b.jpg").write_bytes(data[:-2])
    assert_read_error(tmp_path / "b.jpg", "corrupt")


def test_zero_size_images(tmp_path):
    (tmp_path / "zero.png").write_bytes(png_with_size(0, 10))
    assert_read_error(tmp_path / "zero.png")
    header = bytearray(struct.pack("<2sIHHIIiiHHIIiiII", b"BM", 54, 0, 0, 54, 40, 4, 0,
                                   1, 24, 0, 0, 0, 0, 0, 0))
    (tmp_path / "zero.bmp").write_bytes(bytes(header))
    assert_read_error(tmp_path / "zero.bmp")


def test_content_decides_format(tmp_path):
    image = random_image((6, 9, 3))
    write_image(tmp_path / "real.png", image)
    os.replace(tmp_path / "real.png", tmp_path / "looks_like.jpg")
    back, meta = read_image(tmp_path / "looks_like.jpg", with_meta=True)
    assert meta.format == "png"
    np.testing.assert_array_equal(back, image)

    write_image(tmp_path / "real.jpg", blocky_gray())
    os.replace(tmp_path / "real.jpg", tmp_path / "looks_like.tif")
    assert read_image(tmp_path / "looks_like.tif", with_meta=True)[1].format == "jpeg"


def test_no_raw_library_exceptions_for_corrupt_header(tmp_path):
    write_image(tmp_path / "a.png", random_image((6, 9, 3)))
    data = bytearray((tmp_path / "a.png").read_bytes())
    data[20] ^= 0xFF  # break the IHDR CRC
    (tmp_path / "b.png").write_bytes(bytes(data))
    assert_read_error(tmp_path / "b.png", "corrupt")


# ---------------------------------------------------------------------------
# file names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_non_ascii_and_spaced_names(tmp_path, ext):
    folder = tmp_path / "Fotos régen ☔"
    path = folder / f"régen ☔ 1{ext}"
    image = np.stack([blocky_gray()] * 3, axis=2)
    write_image(path, image)
    assert read_image(path).shape == image.shape
    assert list_images(folder) == [path]


def test_error_message_names_non_ascii_path(tmp_path):
    path = tmp_path / "régen ☔ 1.png"
    path.write_bytes(b"nope")
    assert_read_error(path, "régen ☔ 1.png")


# ---------------------------------------------------------------------------
# atomic writing
# ---------------------------------------------------------------------------


def test_creates_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "c.png"
    write_image(target, random_image((3, 3)))
    assert target.is_file()


def test_new_file_mode_follows_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        write_image(tmp_path / "m.png", random_image((3, 3)))
    finally:
        os.umask(previous)
    assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o644


def test_a_replaced_file_keeps_its_permissions_and_a_read_only_one_is_not_replaced(tmp_path):
    target = tmp_path / "private.png"
    write_image(target, random_image((3, 3), seed=1))
    target.chmod(0o600)
    write_image(target, random_image((3, 3), seed=2))
    assert target.stat().st_mode & 0o777 == 0o600   # not made readable by others (0o644)
    np.testing.assert_array_equal(read_image(target), random_image((3, 3), seed=2))
    before = target.read_bytes()
    target.chmod(0o444)   # a rename replaces it whatever its permissions (even for root): refused first
    with pytest.raises(ImageWriteError, match=r"private\.png: the file is read-only; make it writable "
                                              r"\(chmod u\+w\) to replace it, or write elsewhere"):
        write_image(target, random_image((3, 3), seed=3))
    assert target.read_bytes() == before and temp_files(tmp_path) == []


def test_overwrite(tmp_path):
    target = tmp_path / "o.png"
    first, second = random_image((4, 4), seed=1), random_image((4, 4), seed=2)
    write_image(target, first)
    with pytest.raises(FileExistsError, match="o.png"):
        write_image(target, second, overwrite=False)
    np.testing.assert_array_equal(read_image(target), first)
    write_image(target, second)
    np.testing.assert_array_equal(read_image(target), second)
    write_image(tmp_path / "new.png", second, overwrite=False)
    assert temp_files(tmp_path) == []


def test_unsupported_suffix_leaves_target_untouched(tmp_path):
    target = tmp_path / "keep.xyz"
    target.write_bytes(b"user data")
    with pytest.raises(ValueError, match="unsupported output format"):
        write_image(target, random_image((4, 4, 3)))
    assert target.read_bytes() == b"user data"
    with pytest.raises(ValueError):
        write_image(tmp_path / "noext", random_image((4, 4, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.xyz"]


def test_encoder_failure_leaves_target_untouched(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    original = random_image((4, 4, 3), seed=1)
    write_image(target, original)
    before = target.read_bytes()
    monkeypatch.setattr(rio.cv2, "imencode", lambda *args, **kwargs: (False, None))
    with pytest.raises(ValueError, match="encoder failed"):
        write_image(target, random_image((4, 4, 3), seed=2))
    assert target.read_bytes() == before
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_disk_full_raises_write_error_and_cleans_up(tmp_path, monkeypatch, failing):
    target = tmp_path / "full.png"
    write_image(target, random_image((4, 4), seed=1))
    before = target.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, no_space)
    with pytest.raises(ImageWriteError) as caught:
        write_image(target, random_image((4, 4), seed=2))
    message = str(caught.value)
    assert message == f"cannot write {target}: no space left on device"
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_interrupted_write_cleans_up(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "i.png", random_image((4, 4)))
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ImageWriteError, match="cannot write .*file/x.png"):
        write_image(blocker / "x.png", random_image((4, 4)))

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ImageWriteError, match="permission denied") as caught:
        write_image(tmp_path / "y.png", random_image((4, 4)))
    assert caught.value.errno == errno.EACCES
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_long_file_name(tmp_path):
    target = tmp_path / ("é" * 120 + ".png")  # 240 bytes: fits, but name + suffixes would not
    write_image(target, random_image((3, 3)))
    assert read_image(target).shape == (3, 3)
    assert temp_files(tmp_path) == []


def test_target_is_a_folder(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ImageWriteError, match="d.png"):
        write_image(tmp_path / "d.png", random_image((4, 4)))
    assert temp_files(tmp_path) == []


# ---------------------------------------------------------------------------
# listing
# ---------------------------------------------------------------------------


def test_list_images(tmp_path):
    names = ["10.png", "2.png", "1.JPG", "a.tif", "img_10.webp", "IMG_3.webp", "img_2.webp",
             "x.jpeg", "y.TIFF", "z.bmp", ".hidden.png", "notes.txt", "archive.png.zip",
             "noext"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    (tmp_path / "sub.png" / "inner.png").write_bytes(b"x")
    found = [p.name for p in list_images(tmp_path)]
    assert found == ["1.JPG", "2.png", "10.png", "a.tif", "img_2.webp", "IMG_3.webp",
                     "img_10.webp", "x.jpeg", "y.TIFF", "z.bmp"]
    assert all(isinstance(p, Path) and p.parent == tmp_path for p in list_images(str(tmp_path)))


def test_list_images_errors(tmp_path):
    assert list_images(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        list_images(tmp_path / "f.png")


# ---------------------------------------------------------------------------
# float conversion
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 3), (5, 7, 4)])
def test_float_round_trip_exact(dtype, shape):
    image = random_image(shape, dtype, seed=11)
    if len(shape) == 2 or shape[2] == 1:
        image[0, 0] = 0
        image[0, 1] = np.iinfo(dtype).max
    rgb = to_float_rgb(image)
    assert rgb.dtype == np.float32 and rgb.shape == (5, 7, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1
    back = from_float_rgb(rgb, image)
    assert back.dtype == image.dtype and back.shape == image.shape
    np.testing.assert_array_equal(back, image)


def test_full_value_range_round_trip():
    every8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(from_float_rgb(to_float_rgb(every8), every8), every8)
    every16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).reshape(256, 256)
    np.testing.assert_array_equal(from_float_rgb(to_float_rgb(every16), every16), every16)


def test_to_float_rgb_values():
    gray = np.array([[0, 255]], dtype=np.uint8)
    np.testing.assert_allclose(to_float_rgb(gray), [[[0, 0, 0], [1, 1, 1]]])
    rgba = np.array([[[65535, 0, 32768, 7]]], dtype=np.uint16)
    np.testing.assert_allclose(to_float_rgb(rgba), [[[1, 0, 32768 / 65535]]], rtol=1e-6)
    floats = np.full((2, 2, 3), 0.25, dtype=np.float64)
    out = to_float_rgb(floats)
    assert out.dtype == np.float32 and np.all(out == 0.25)
    out[0, 0, 0] = 9
    assert floats[0, 0, 0] == 0.25  # a copy
    with pytest.raises(ValueError):
        to_float_rgb(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError):
        to_float_rgb(np.zeros((2, 2), dtype=np.int32))


def test_to_float_rgb_refuses_floats_outside_0_1_nan_and_empty_images():
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], found \[0, 255\]: divide .* by 255"):
        to_float_rgb(np.array([[0.0, 255.0]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"found \[-0.5, 1\]"):
        to_float_rgb(np.array([[-0.5, 1.0]]))
    rounded = to_float_rgb(np.array([[-0.5 / 255, 1 + 0.5 / 255]]))  # rounding slack: clipped
    assert rounded.dtype == np.float32 and rounded.min() == 0 and rounded.max() == 1
    pixels = np.full((3, 4, 3), 0.5)
    pixels[0, 0, 1], pixels[2, 3] = np.nan, np.inf
    with pytest.raises(ValueError, match="^2 pixels are NaN or infinite"):
        to_float_rgb(pixels)
    for shape in [(0, 0, 3), (0, 5, 3), (5, 0), (0, 5, 4)]:
        with pytest.raises(ValueError, match=r"no pixels \(shape"):
            to_float_rgb(np.zeros(shape, dtype=np.uint8))


def test_as_image_takes_arrays_and_array_likes_only():
    from PIL import Image

    from rain2avoid.io.pixels import as_image
    image = random_image((4, 5, 3), np.uint8)
    assert as_image(image) is image
    np.testing.assert_array_equal(as_image(Image.fromarray(image)), image)
    for wrong in ["rainy.png", Path("rainy.png"), None, image.tolist()]:
        with pytest.raises(TypeError, match="expected an image array .* read it with rain2avoid.read_image"):
            as_image(wrong)


def test_from_float_rgb_rules():
    rgb = np.array([[[0.0, 0.5, 1.0], [1.5, -2.0, np.nan]]], dtype=np.float32)
    gray_like = np.zeros((1, 2), dtype=np.uint8)
    np.testing.assert_array_equal(from_float_rgb(rgb, gray_like), [[128, 85]])  # mean(1, 0, 0)
    rgba_like = np.array([[[1, 2, 3, 40], [4, 5, 6, 50]]], dtype=np.uint8)
    out = from_float_rgb(rgb, rgba_like)
    np.testing.assert_array_equal(out, [[[0, 128, 255, 40], [255, 0, 0, 50]]])
    for dtype in (np.float16, np.float32, np.float64):   # a float like keeps its own dtype
        out = from_float_rgb(rgb, np.zeros((1, 2, 3), dtype=dtype))
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, [[[0, 0.5, 1], [1, 0, 0]]])
    with pytest.raises(ValueError):
        from_float_rgb(rgb, np.zeros((3, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        from_float_rgb(rgb[..., :2], np.zeros((1, 2, 3), dtype=np.uint8))


def test_read_process_write_pipeline(tmp_path):
    image = random_image((6, 9, 4), np.uint16)
    write_image(tmp_path / "in.png", image)
    pixels, meta = read_image(tmp_path / "in.png", with_meta=True)
    result = from_float_rgb(1.0 - to_float_rgb(pixels), pixels)
    write_image(tmp_path / "out.png", result, meta=meta)
    back = read_image(tmp_path / "out.png")
    np.testing.assert_array_equal(back[..., 3], image[..., 3])
    np.testing.assert_array_equal(back[..., :3], 65535 - image[..., :3])


def test_arrays_are_writable(tmp_path, monkeypatch):
    write_image(tmp_path / "w.png", random_image((4, 5, 3)))
    read_image(tmp_path / "w.png")[0, 0, 0] = 1
    monkeypatch.setattr(rio.cv2, "imdecode", lambda *args: None)  # Pillow path
    read_image(tmp_path / "w.png")[0, 0, 0] = 1


def test_writing_float_pixels_says_how_to_convert_them(tmp_path):
    with pytest.raises(ValueError, match=r"got float32 \(convert float results with "
                                         r"rain2avoid\.io\.from_float_rgb\(result, like=image\) first\)"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
    assert not (tmp_path / "x.png").exists()


def test_a_pillow_image_is_written_as_its_pixels(tmp_path):
    pixels = random_image((6, 7, 3))
    write_image(tmp_path / "rgb.png", Image.fromarray(pixels))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), pixels)
    palette = Image.fromarray(pixels).quantize(8)   # written as the colours it shows, not its indices
    write_image(tmp_path / "p.png", palette)
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(palette.convert("RGB")))


def test_a_jpeg_s_full_resolution_colour_is_kept_in_a_jpeg_output(tmp_path):
    from PIL import JpegImagePlugin
    pixels = random_image((16, 24, 3))
    for subsampling, full in ((0, True), (2, False)):   # 4:4:4, as a photographer's export; 4:2:0
        Image.fromarray(pixels).save(tmp_path / "in.jpg", quality=95, subsampling=subsampling)
        read, meta = read_image(tmp_path / "in.jpg", with_meta=True)
        assert meta.full_chroma is full
        write_image(tmp_path / "out.jpg", read, meta=meta)
        with Image.open(tmp_path / "out.jpg") as out:
            assert JpegImagePlugin.get_sampling(out) == subsampling
    Image.fromarray(pixels[..., 0]).save(tmp_path / "grey.jpg", quality=95)
    assert read_image(tmp_path / "grey.jpg", with_meta=True)[1].full_chroma is False   # one component
