import numpy as np
import pytest

from rain2avoid.io import read_image
from rain2avoid.ldgp import rain_mask, rotation_for_angle, streak_angle
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
