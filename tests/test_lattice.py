"""Lattices (window frames, bricks): line orientation, the pixels on a lattice's lines, mullions."""

import cv2
import numpy as np
import pytest


def _line(image, x, angle, value=255, width=2):
    """A bright line through (x, middle row) of ``image``, ``angle`` degrees from vertical
    (positive = top to the right)."""
    h = image.shape[0]
    a = np.radians(angle)
    dx = h / 2 * np.tan(a)
    cv2.line(image, (int(round(x - dx)), h - 1), (int(round(x + dx)), 0), (value,) * image.shape[2], width)


def test_line_orientation_reads_the_lean_of_thin_bright_lines():
    from rain2avoid.lattice import line_orientation
    image = np.zeros((120, 160, 3), np.uint8)
    _line(image, 40, 10.0)
    _line(image, 110, -25.0)
    image = cv2.GaussianBlur(image, (0, 0), 0.8)       # soft, as rain is
    lean, coherence = line_orientation(image)
    assert lean.shape == coherence.shape == image.shape[:2]
    for x, angle in ((40, 10.0), (110, -25.0)):
        on = image[:, x - 20:x + 20, 0] > 100
        assert abs(np.median(lean[:, x - 20:x + 20][on]) - angle) <= 1.5
        assert np.median(coherence[:, x - 20:x + 20][on]) > 0.8
    flat_lean, flat = line_orientation(np.full((30, 30, 3), 90, np.uint8))
    assert np.all(flat == 0) and np.all(np.isfinite(flat_lean))


def test_off_lattice_lines_drops_frame_pixels_only_on_a_lattice():
    from rain2avoid.lattice import Spectrum, off_lattice_lines
    image = np.zeros((120, 200, 3), np.uint8)
    _line(image, 60, 0.0, width=3)       # a mullion
    _line(image, 140, 12.0)              # rain, 12 degrees off it
    mask = (image[..., 0] > 0).astype(np.uint8) * 255
    lattice = Spectrum(rotation=0.0, clarity=30.0, cross=10.0)
    out = off_lattice_lines(image, mask, (12.0,), lattice)
    assert not out[20:100, 50:70].any()                             # the mullion is gone
    assert np.array_equal(out[:, 100:], mask[:, 100:])              # the rain stays
    # Rain in a second direction within 4 degrees of the mullion: it cannot be told apart.
    assert np.array_equal(off_lattice_lines(image, mask, (12.0, 3.0), lattice), mask)
    # Without lines square to the clear direction (no lattice), nothing is dropped.
    assert off_lattice_lines(image, mask, (12.0,), lattice._replace(cross=1.0)) is mask


def _window(width=200):
    """A dark pane between two bright rails (rows 20-23 and 80-83), with a mullion from
    rail to rail at x = 50, a short streak inside the pane at x = 100 and a streak that
    crosses the top rail at x = 150 (all vertical, all as bright)."""
    image = np.full((110, width, 3), 60, np.uint8)
    image[20:24] = image[80:84] = 230
    image[24:80, 49:52] = 230
    image[35:60, 100] = 230
    image[5:45, 150] = 230
    return image


def test_rail_to_rail_finds_mullions_not_streaks():
    from rain2avoid.lattice import rail_to_rail
    runs = rail_to_rail(_window(), 0.0)
    assert runs.shape == (110, 200) and runs.dtype == bool
    assert runs[30:75, 48:53].any(axis=1).all()     # the mullion
    assert not runs[:, 90:].any()                   # both streaks
    assert not runs[:20, :].any() and not runs[84:, :].any()


def test_rain_along_a_lattice_keeps_its_streaks_and_loses_its_mullions():
    from rain2avoid.lattice import Spectrum, off_lattice_lines
    image = _window()
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[24:80, 49:52] = mask[35:60, 100] = mask[5:45, 150] = 255
    lattice = Spectrum(rotation=0.0, clarity=30.0, cross=10.0)
    out = off_lattice_lines(image, mask, (1.0,), lattice)
    assert not out[:, 40:60].any()
    assert np.array_equal(out[:, 90:110], mask[:, 90:110])          # the streak in the pane
    assert out[5:15, 150].all() and out[30:45, 150].all()           # the one across the rail,
    assert not out[20:24, 150].any()                                # but for where it crosses it
    # No lattice: nothing is dropped.
    assert np.array_equal(off_lattice_lines(image, mask, (1.0,), lattice._replace(cross=1.0)), mask)


def test_the_working_size_copy_is_made_of_whole_blocks():
    from rain2avoid.lattice import _grow, _shrink
    image = np.random.default_rng(0).random((7, 10)).astype(np.float32)
    small = _shrink(image, 3)
    assert small.shape == (2, 3)
    assert np.isclose(small[1, 2], image[3:6, 6:9].mean())
    big = _grow(small, image.shape, 3)
    assert big.shape == image.shape
    assert np.all(big[3:6, 6:9] == small[1, 2]) and big[6, 9] == small[1, 2]     # edges extended
    assert _shrink(image, 1) is image and _grow(small, small.shape, 1) is small


def test_off_lattice_lines_refuses_a_working_size_below_one():
    from rain2avoid.lattice import Spectrum, off_lattice_lines
    with pytest.raises(ValueError, match="work_side"):
        off_lattice_lines(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), (0.0,),
                          Spectrum(0.0, 10.0, 10.0), work_side=0)
