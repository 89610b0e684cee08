"""Fuzz read_image with malformed files.

Random bytes, valid PNG/JPEG/TIFF/BMP/WebP files truncated at random points,
with random byte flips or with spans cut out or repeated.  Whatever the
content, read_image may only succeed (a mildly corrupted file can still
decode) or raise ImageReadError; any other exception is a bug.
"""

import io
import os
import tempfile

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from rain2avoid.io import IMAGE_EXTENSIONS, ImageMeta, ImageReadError, read_image

SEED = 20_240_601
CASE_COUNT = 300
# Corrupted headers may claim large sizes; keep the decoders' allocations small.
FUZZ_MAX_PIXELS = 4_000_000

# Pillow warns about the corrupt TIFF/EXIF structures these files are full of.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM6\x00\x00\x00",
              b"RIFF\x00\x01\x00\x00WEBPVP8L", b"RIFF\x00\x01\x00\x00WEBPVP8 "]


def pillow_bytes(array, fmt, **options):
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **options)
    return out.getvalue()


def opencv_bytes(array, ext):
    ok, buffer = cv2.imencode(ext, array)
    assert ok
    return buffer.tobytes()


def valid_files():
    """Small valid files of every supported format and several pixel layouts."""
    rng = np.random.default_rng(SEED)
    rgb = rng.integers(0, 256, (24, 31, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (17, 13, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (19, 23), dtype=np.uint8)
    deep = rng.integers(0, 65536, (15, 21, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Fuzz"
    return [
        pillow_bytes(rgb, "PNG"),
        pillow_bytes(gray, "PNG", exif=exif.tobytes()),
        pillow_bytes(rgba, "PNG"),
        opencv_bytes(deep, ".png"),
        pillow_bytes(rgb, "JPEG", quality=90, exif=exif.tobytes()),
        pillow_bytes(rgb, "JPEG", quality=70, progressive=True),
        pillow_bytes(gray, "JPEG"),
        opencv_bytes(rgba, ".tif"),
        opencv_bytes(deep, ".tif"),
        pillow_bytes(rgb, "TIFF", compression="tiff_lzw", exif=exif.tobytes()),
        pillow_bytes(gray, "TIFF"),
        opencv_bytes(rgb, ".bmp"),
        opencv_bytes(rgba, ".bmp"),
        pillow_bytes(rgba, "WEBP", lossless=True),
        pillow_bytes(rgb, "WEBP", quality=60, exif=exif.tobytes()),
    ]


def mutate(data, rng):
    """Return a damaged copy of ``data`` and a short label for the damage."""
    kind = rng.choice(["truncate", "flip", "flip_header", "splice"], p=[0.35, 0.3, 0.2, 0.15])
    damaged = bytearray(data)
    if kind == "truncate":
        return bytes(damaged[: int(rng.integers(1, len(data)))]), kind
    if kind in ("flip", "flip_header"):
        limit = min(len(data), 96) if kind == "flip_header" else len(data)
        for _ in range(int(rng.integers(1, 9))):
            damaged[int(rng.integers(0, limit))] = int(rng.integers(0, 256))
        return bytes(damaged), kind
    start = int(rng.integers(0, len(data)))
    stop = min(len(data), start + int(rng.integers(1, 64)))
    if rng.random() < 0.5:
        del damaged[start:stop]
    else:
        damaged[start:start] = data[start:stop]
    return bytes(damaged), kind


def build_cases():
    """Deterministic list of (label, file bytes, file suffix) fuzz cases."""
    rng = np.random.default_rng(SEED)
    bases = valid_files()
    cases = []
    for index in range(CASE_COUNT):
        suffix = str(rng.choice(IMAGE_EXTENSIONS))
        roll = rng.random()
        if roll < 0.1:
            data, label = rng.bytes(int(rng.integers(1, 3000))), "random"
        elif roll < 0.2:
            magic = SIGNATURES[int(rng.integers(0, len(SIGNATURES)))]
            data, label = magic + rng.bytes(int(rng.integers(0, 3000))), "magic+random"
        else:
            base = int(rng.integers(0, len(bases)))
            data, kind = mutate(bases[base], rng)
            label = f"base{base}-{kind}"
        cases.append(pytest.param(data, suffix, id=f"{index:03d}-{label}"))
    return cases


def check_read(path, with_meta):
    """read_image must return a sane image or raise ImageReadError naming the path."""
    try:
        result = read_image(path, max_pixels=FUZZ_MAX_PIXELS, with_meta=with_meta)
    except ImageReadError as error:
        message = str(error)
        assert str(path) in message and "\n" not in message
        return
    pixels, meta = result if with_meta else (result, None)
    assert isinstance(pixels, np.ndarray)
    assert pixels.dtype in (np.uint8, np.uint16)
    assert pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))
    assert pixels.shape[0] * pixels.shape[1] <= FUZZ_MAX_PIXELS
    if with_meta:
        assert isinstance(meta, ImageMeta)


def test_valid_bases_read():
    for index, data in enumerate(valid_files()):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, f"base{index}.img")
            with open(path, "wb") as handle:
                handle.write(data)
            assert read_image(path).size > 0


@pytest.mark.parametrize("data, suffix", build_cases())
def test_malformed_file(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    check_read(path, with_meta=len(data) % 2 == 0)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(magic=st.sampled_from(SIGNATURES), tail=st.binary(max_size=600))
def test_signature_followed_by_anything(magic, tail):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "h.png")
        with open(path, "wb") as handle:
            handle.write(magic + tail)
        check_read(path, with_meta=True)
