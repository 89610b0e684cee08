"""Tests for rain2avoid.synth."""

import time

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from rain2avoid.synth import EXAMPLES, add_heavy_rain, add_rain, clean_example, rain_presets


@pytest.fixture(scope="module")
def img():
    return clean_example()


def streak_angle(layer, sigma=1.5):
    """Dominant streak direction (degrees from vertical, + = top to the right)
    from the eigenvector of the smallest eigenvalue of the structure tensor."""
    layer = layer.astype(np.float64)
    gx = ndi.gaussian_filter(layer, sigma, order=(0, 1))
    gy = ndi.gaussian_filter(layer, sigma, order=(1, 0))
    J = np.array([[np.sum(gx * gx), np.sum(gx * gy)], [np.sum(gx * gy), np.sum(gy * gy)]])
    d = np.linalg.eigh(J)[1][:, 0]
    if d[1] > 0:  # point "up" (y decreases)
        d = -d
    return np.degrees(np.arctan2(d[0], -d[1]))


def test_clean_example(img):
    assert img.shape == (320, 480, 3) and img.dtype == np.uint8
    for name in EXAMPLES:
        im = clean_example(name, size=(64, 96))
        assert im.shape == (64, 96, 3) and im.dtype == np.uint8
    assert clean_example("coffee", size=None).shape == (400, 600, 3)
    with pytest.raises(ValueError):
        clean_example("nope")


def test_shapes_dtypes_and_range(img):
    rainy, layer = add_rain(img)
    assert rainy.shape == img.shape and rainy.dtype == np.uint8
    assert layer.shape == img.shape[:2] and layer.dtype == np.float32
    assert layer.min() >= 0 and layer.max() <= 1 and layer.max() > 0.5


def test_determinism_and_seed(img):
    r1, l1 = add_rain(img, seed=3)
    r2, l2 = add_rain(img, seed=3)
    r3, _ = add_rain(img, seed=4)
    assert np.array_equal(r1, r2) and np.array_equal(l1, l2)
    assert not np.array_equal(r1, r3)


@pytest.mark.parametrize("name", sorted(rain_presets()))
def test_rain_only_brightens(img, name):
    rainy, layer = add_rain(img, **rain_presets()[name])
    assert np.all(rainy >= img)
    assert np.all(rainy[layer == 0] == img[layer == 0])
    assert (rainy != img).any()


def test_density_zero_is_identity(img):
    rainy, layer = add_rain(img, density=0.0)
    assert np.array_equal(rainy, img) and not layer.any()


def test_more_density_more_change(img):
    changed = [np.count_nonzero((add_rain(img, density=d)[0] != img).any(-1)) for d in (0.005, 0.02, 0.08)]
    assert changed[0] < changed[1] < changed[2]


@pytest.mark.parametrize("angle", [-45.0, -30.0, -10.0, 0.0, 15.0, 30.0, 45.0])
def test_orientation_matches_angle(img, angle):
    _, layer = add_rain(img, angle=angle, density=0.03, length=30, seed=int(angle) + 50)
    assert abs(streak_angle(layer) - angle) < 3.0


def test_positive_angle_leans_top_right():
    # a single long streak: the top end lies to the right of the bottom end
    black = np.zeros((200, 200, 3), np.uint8)
    _, layer = add_rain(black, angle=30, density=60 / 200**2, length=60, blur=0, seed=0)
    ys, xs = np.nonzero(layer > 0.5)
    top, bottom = xs[ys == ys.min()].mean(), xs[ys == ys.max()].mean()
    assert top > bottom


def test_presets_cover_range():
    p = rain_presets()
    assert {"light", "heavy", "wide", "slanted-left", "slanted-right"} <= set(p)
    angles = [v["angle"] for v in p.values()]
    assert min(angles) == -45 and max(angles) == 45
    assert max(v["width"] for v in p.values()) > 1
    p["light"]["angle"] = 99.0
    assert rain_presets()["light"]["angle"] == 0.0  # fresh dict each call


def test_fast(img):
    add_rain(img)
    t = time.perf_counter()
    add_rain(img, **rain_presets()["heavy"])
    assert time.perf_counter() - t < 0.1


# --- rainy_clip -------------------------------------------------------------------------------------------------

def test_rainy_clip_pans_and_redraws_rain():
    from rain2avoid.synth import rainy_clip
    source = clean_example("coffee", size=None)
    rainy, clean = rainy_clip(source, frames=5, size=(48, 64), pan=(3, -1), rain="light", seed=2)
    assert rainy.shape == clean.shape == (5, 48, 64, 3) and rainy.dtype == clean.dtype == np.uint8
    assert (rainy >= clean).all()                                # rain only adds light
    # Integer pan: frame i + 1 is frame i moved 3 px left and 1 px down, exactly.
    assert np.array_equal(clean[1][1:, :-3], clean[0][:-1, 3:])
    layers = [(r.astype(int) - c).max(axis=2) > 0 for r, c in zip(rainy, clean)]
    assert not np.array_equal(layers[0], layers[1])             # rain is redrawn every frame
    again = rainy_clip(source, frames=5, size=(48, 64), pan=(3, -1), rain="light", seed=2)[0]
    assert np.array_equal(again, rainy)
    assert not np.array_equal(rainy_clip(source, frames=5, size=(48, 64), pan=(3, -1), rain="light", seed=3)[0],
                              rainy)


def test_rainy_clip_scales_a_small_photo_and_checks_arguments():
    from rain2avoid.synth import rainy_clip
    small = clean_example("chelsea", size=(40, 50))
    rainy, clean = rainy_clip(small, frames=3, size=(32, 48), pan=(10.5, 0), rain=dict(density=0.0), seed=0)
    assert clean.shape == (3, 32, 48, 3) and np.array_equal(rainy, clean)
    with pytest.raises(ValueError):
        rainy_clip(small.astype(np.float32), frames=3)
    with pytest.raises(ValueError):
        rainy_clip(small, frames=0)


def test_facade_is_seeded_and_has_thin_bright_vertical_lines():
    from rain2avoid.synth import facade
    a = facade(np.random.default_rng(0), size=(120, 200))
    assert a.shape == (120, 200, 3) and a.dtype == np.uint8
    assert np.array_equal(a, facade(np.random.default_rng(0), size=(120, 200)))
    assert not np.array_equal(a, facade(np.random.default_rng(1), size=(120, 200)))
    gray = a.mean(axis=2).astype(np.float32)
    # bright lines narrower than 5 px across: a horizontal white top-hat finds them
    top = gray - cv2.morphologyEx(gray, cv2.MORPH_OPEN, np.ones((1, 5), np.uint8))
    assert (top > 40).mean() > 0.02


def test_heavy_rain_screen_blend_lifts_dark_pixels_more_and_each_channel_by_its_own_amount():
    clean = np.zeros((40, 60, 3), np.uint8)
    clean[:, :30] = (200, 40, 10)                   # a saturated orange half
    clean[:, 30:] = (250, 250, 250)                 # a near-white half
    layers = [dict(angle=0, density=0.3, length=20, width=2, intensity=0.5, blur=0.0)]
    added, rain, t = add_heavy_rain(clean, layers, seed=3)
    screen, rain2, _ = add_heavy_rain(clean, layers, seed=3, blend="screen")
    np.testing.assert_array_equal(rain, rain2)      # the same streaks, laid on differently
    assert (t == 1).all()
    expect = np.rint(255 - (255 - clean.astype(np.float32)) * (1 - np.minimum(rain, 255)[..., None] / 255))
    np.testing.assert_array_equal(screen, np.clip(expect, 0, 255).astype(np.uint8))
    on = rain > 100
    lift = screen.astype(int) - clean
    assert (lift[on][:, 2] >= lift[on][:, 0]).all()                 # blue (dark) lifted more than red
    assert lift[:, :30][on[:, :30]][:, 2].mean() > 3 * lift[:, 30:][on[:, 30:]].mean()   # dark half lifted more
    assert (screen <= added).all()                  # screen never brightens past the sum
    with pytest.raises(ValueError, match="blend"):
        add_heavy_rain(clean, layers, blend="multiply")
