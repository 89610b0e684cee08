import math

import cv2
import numpy as np
import pytest

from rain2avoid.io import read_image
from rain2avoid.ldgp import _crop_offsets, rain_mask, rotation_for_angle, streak_angle
from rain2avoid.synth import add_rain, clean_example


def iou(a, b):
    a, b = a > 127, b > 127
    return (a & b).sum() / max((a | b).sum(), 1)


def test_reproduces_reference_masks(dev_dir):
    ious = {}
    for path in sorted((dev_dir / "input").glob("*.png")):
        mask = rain_mask(read_image(path)).mask
        ref = read_image(dev_dir / "ldgp_reference" / path.name)
        ref = ref if ref.ndim == 2 else ref[..., 0]
        ious[path.stem] = iou(mask, ref)
    assert len(ious) == 20
    assert min(ious.values()) >= 0.99, ious


def test_reference_masks_are_matched_bit_for_bit(dev_dir):
    for path in sorted((dev_dir / "input").glob("*.png")):
        ref = read_image(dev_dir / "ldgp_reference" / path.name)
        assert np.array_equal(rain_mask(read_image(path)).mask, ref if ref.ndim == 2 else ref[..., 0]), path.name


def _rotate_like_reference(image, theta):
    """The reference's rotation (canvas enlarged to hold the whole image, white border), written out."""
    rows, cols = image.shape[:2]
    m = cv2.getRotationMatrix2D((cols / 2, rows / 2), theta, 1)
    bound_w = int(rows * abs(m[0, 1]) + cols * abs(m[0, 0]))
    bound_h = int(rows * abs(m[0, 0]) + cols * abs(m[0, 1]))
    m[0, 2] += bound_w / 2 - cols / 2
    m[1, 2] += bound_h / 2 - rows / 2
    return cv2.warpAffine(image, m, (bound_w, bound_h), borderValue=(255, 255, 255))


@pytest.mark.parametrize("lean, angle", [(15, 15), (-15, 165)])
def test_portrait_crop_offsets_are_the_references(lean, angle):
    # A portrait Rain100L-size image whose streaks need a +-15 degree rotation.
    h, w = 480, 320
    rainy, _ = add_rain(clean_example("coffee", size=(h, w)), angle=lean, density=0.05, length=30, seed=0)
    theta = rotation_for_angle(angle)
    assert abs(theta) == 15
    # The reference's offsets: c_H (rows) = floor(W sin cos), c_W (columns) = floor(H cos sin).
    # For H = 480 at 15 degrees the exact product is 120, and the order of multiplication decides
    # on which side of 120 the rounded product falls.
    t = math.radians(abs(theta))
    c_h, c_w = math.floor(w * math.sin(t) * math.cos(t)), math.floor(h * math.cos(t) * math.sin(t))
    other_order = math.floor(h * math.sin(t) * math.cos(t))
    assert (c_h, c_w, other_order) == (80, 120, 119)
    assert _crop_offsets(h, w, theta) == (c_h, c_w)

    # The reference's steps written out: rotate, gray, 5x5 mean threshold, vertical opening,
    # rotate back, crop H x W at (c_H, c_W).
    bright = cv2.adaptiveThreshold(cv2.cvtColor(_rotate_like_reference(rainy, theta), cv2.COLOR_RGB2GRAY),
                                   255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 5, 0)
    line = cv2.getStructuringElement(cv2.MORPH_RECT, (1, 10))
    back = _rotate_like_reference(cv2.dilate(cv2.erode(bright, line), line), -theta)
    mask = rain_mask(rainy, angle=angle).mask
    assert np.array_equal(mask, back[c_h:c_h + h, c_w:c_w + w])
    # One column off (the other order of multiplication) is a different mask.
    assert iou(mask, back[c_h:c_h + h, other_order:other_order + w]) < 0.9
    if lean > 0:  # the HOG vote finds this angle by itself
        assert np.array_equal(rain_mask(rainy).mask, mask)


def test_mask_shape_dtype_and_rain_fraction():
    clean = clean_example("coffee", size=(160, 240))
    rainy, layer = add_rain(clean, angle=0, density=0.04, seed=1)
    result = rain_mask(rainy)
    assert result.mask.shape == rainy.shape[:2] and result.mask.dtype == np.uint8
    flagged = result.mask > 10
    streak = layer > 0.3
    # Most flagged pixels are on streaks, and a fair share of streak pixels is found.
    assert (flagged & streak).sum() / flagged.sum() > 0.5
    assert (flagged & streak).sum() / streak.sum() > 0.3


@pytest.mark.parametrize("angle", [0, 20, -30])
def test_angle_of_synthetic_streaks(angle):
    clean = np.full((320, 480, 3), 90, np.uint8)
    rainy, _ = add_rain(clean, angle=angle, density=0.05, length=30, seed=0)
    estimated = streak_angle(rainy)
    # Gradient angle of streaks leaning `angle` degrees from vertical; rotation undoes the lean.
    assert abs(abs(rotation_for_angle(estimated)) - abs(angle)) <= 5


def test_rotation_mapping():
    assert rotation_for_angle(90) == 0 and rotation_for_angle(85) == 0
    assert rotation_for_angle(175) == -5 and rotation_for_angle(15) == 15


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 300, 3), (20, 20), (79, 81, 3)])
def test_tiny_images(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    result = rain_mask(image)
    assert result.mask.shape == shape[:2]


def test_rejects_float_images():
    with pytest.raises(TypeError, match="uint8"):
        rain_mask(np.zeros((10, 10, 3), np.float32))


def test_streak_angle_of_a_float_image_says_how_to_convert_it():
    with pytest.raises(TypeError, match=r"streak_angle expects a uint8 RGB image, got float64; convert it with "
                                        r"rain2avoid\.io\.to_uint8"):
        streak_angle(np.zeros((96, 96, 3)))   # not OpenCV's error from inside its colour conversion
