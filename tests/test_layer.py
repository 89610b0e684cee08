"""The rain layer (directional sparse model) and the rain the mask misses."""

import numpy as np
import pytest

from rain2avoid.layer import rain_layer, rotation_of_angle, unsure_rain
from rain2avoid.ldgp import RAIN_LEVEL
from rain2avoid.pipeline import loss_weights, training_data
from rain2avoid.settings import resolve_settings
from rain2avoid.synth import add_rain, clean_example


def _background(h=96, w=128):
    """A smooth gray ramp with one vertical and one horizontal edge: texture-free background."""
    y, x = np.mgrid[0:h, 0:w]
    g = 60 + 0.5 * x + 0.3 * y
    g[:, w // 2:] += 40   # a vertical edge (along the streaks): background, not rain
    g[h // 2:, :] -= 20   # a horizontal edge
    return g.astype(np.float32)


def _streaks(h=96, w=128, rise=25.0, columns=range(10, 120, 12), top=20, length=50):
    r = np.zeros((h, w), np.float32)
    for c in columns:
        r[top:top + length, c] = rise
    return r


def test_rain_layer_finds_thin_vertical_streaks_and_leaves_the_background():
    bg, rain = _background(), _streaks()
    layer = rain_layer((bg + rain) / 255) * 255
    on, off = rain > 0, rain == 0
    assert layer[on].mean() > 15                      # most of each streak's 25 levels
    assert np.percentile(layer[off], 99) < 3          # the ramp and both edges stay background
    assert (layer >= 0).all() and (layer <= (bg + rain) + 1e-3).all()


def test_rain_layer_validates_its_arguments():
    with pytest.raises(ValueError, match="gray image"):
        rain_layer(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="iters"):
        rain_layer(np.zeros((8, 8)), iters=0)


def _rgb(gray, tint=(0, 0, 0)):
    return np.clip(gray[..., None] + np.array(tint, np.float32), 0, 255).round().astype(np.uint8)


def test_unsure_rain_keeps_long_colourless_pieces_only():
    bg = _background()
    grey = unsure_rain(_rgb(bg + _streaks()), rotation=0.0)
    assert grey[20:70, 10].mean() > 0.8 and grey[20:70, 34].mean() > 0.8
    assert not grey[:, 60:68].any() and not grey[80:, :].any()   # the edges and below the streaks
    # the same lines in red only are coloured texture, not rain
    red = np.repeat(bg[..., None], 3, 2)
    red[..., 0] += _streaks()
    assert not unsure_rain(np.clip(red, 0, 255).round().astype(np.uint8), 0.0).any()
    # short dots are no streaks
    assert not unsure_rain(_rgb(bg + _streaks(length=4)), 0.0).any()


def test_unsure_rain_follows_the_rotation():
    import cv2
    rain = _streaks(h=160, w=160, columns=range(20, 150, 14), top=40, length=80)
    m = cv2.getRotationMatrix2D((80, 80), 25, 1)       # streaks leaning 25 degrees
    slanted = cv2.warpAffine(rain, m, (160, 160), flags=cv2.INTER_LINEAR)
    image = _rgb(_background(160, 160) + slanted)
    back = -25.0                                        # the rotation that makes them vertical again
    found = unsure_rain(image, back)
    assert found[slanted > 12].mean() > 0.7
    assert found[slanted > 12].sum() > 3 * unsure_rain(image, 0.0)[slanted > 12].sum()


def test_rotation_of_angle_undoes_the_modulo():
    assert rotation_of_angle(30) == 30 and rotation_of_angle(150) == -30 and rotation_of_angle(0) == 0


def test_training_data_leaves_the_missed_rain_out_of_the_loss():
    clean = clean_example("astronaut", (160, 240))
    rainy, _ = add_rain(clean, angle=15, density=0.04, seed=3)
    rgb = rainy.astype(np.float32) / 255
    off = training_data(rgb, resolve_settings("fast", layer=0.0))
    on = training_data(rgb, resolve_settings("fast"))
    np.testing.assert_array_equal(off.mask, on.mask)
    np.testing.assert_array_equal(off.weights, loss_weights(off.mask, 1))
    extra = (on.weights == 0) & (off.weights == 1)
    assert extra.sum() > 50                                   # rain the mask missed is left out
    assert not extra[on.mask > RAIN_LEVEL].any()              # never a pixel of the mask itself
    assert (on.weights <= off.weights).all()


def test_the_reference_preset_has_no_layer():
    assert resolve_settings("reference").layer == 0 and resolve_settings("fast").layer == 3.0


def test_unsure_rain_of_a_large_photo_is_found_on_a_smaller_copy():
    rain = _streaks(h=192, w=256, columns=range(20, 240, 24), top=40, length=100)
    rain = np.maximum(rain, np.roll(rain, 1, axis=1))        # streaks 2 px wide
    image = _rgb(_background(192, 256) + rain)
    full = unsure_rain(image, 0.0)
    capped = unsure_rain(image, 0.0, max_pixels=image.shape[0] * image.shape[1] // 4)
    assert capped.shape == full.shape
    assert capped[rain > 0].mean() > 0.8 and (capped & ~full).mean() < 0.02


def test_missed_rain_leaves_window_frames_alone():
    from rain2avoid.pipeline import missed_rain
    from rain2avoid.synth import facade
    picture = facade(np.random.default_rng(5), (240, 320))
    mask = np.zeros(picture.shape[:2], np.uint8)
    mask[10:30, 5] = 255                                   # some rain elsewhere, so the layer is asked
    frames = unsure_rain(picture, 0.0)                      # mullions: long, thin, bright, colourless
    assert frames.sum() > 200
    missed = missed_rain(picture, mask, 0, resolve_settings("fast"))
    assert missed.sum() < 0.2 * frames.sum()                # the lattice's lines stay in the loss


def test_missed_rain_of_a_large_photo_is_found_on_a_smaller_copy(monkeypatch):
    import rain2avoid.pipeline as pipeline
    clean = clean_example("astronaut", (160, 240))
    rainy, _ = add_rain(clean, angle=10, density=0.04, seed=4)
    settings = resolve_settings("fast")
    data = training_data(rainy.astype(np.float32) / 255, resolve_settings("fast", layer=0.0))
    full = pipeline.missed_rain(rainy, data.mask, data.angle, settings)
    monkeypatch.setattr(pipeline, "MAX_PIXELS", 160 * 240 // 4)
    half = pipeline.missed_rain(rainy, data.mask, data.angle, settings)
    assert half.shape == full.shape and half.any()
    assert not half[data.mask > RAIN_LEVEL].any()                  # never a pixel of the mask
    # thin streaks fade on the half-size copy (on a 12 MP photo they are wide), but what is found is rain
    assert (half & full).sum() > 0.1 * full.sum() and half.sum() < 2 * full.sum()


def test_work_size_keeps_the_shape_and_the_pixel_budget():
    from rain2avoid.layer import work_size
    assert work_size(100, 100, 10_000) is None
    assert work_size(200, 100, 5_000) == (50, 100)
    assert work_size(3000, 4000, 1 << 21) == (1672, 1254)
