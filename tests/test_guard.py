"""The guarded mask and the rain guard (not part of the reference method)."""

import numpy as np
import pytest

from rain2avoid.detect import guarded_rain_mask
from rain2avoid.guard import mask_chroma, rain_guard
from rain2avoid.ldgp import rain_mask, rotation_for_angle
from rain2avoid.metrics import psnr
from rain2avoid.pipeline import compute_mask, make_targets, to_uint8
from rain2avoid.sdrl import Settings
from rain2avoid.synth import add_rain, clean_example


@pytest.mark.parametrize("angle", [-40, -17, 0, 23, 45])
@pytest.mark.parametrize("width", [1, 3])
def test_angle_within_5_degrees(angle, width):
    rainy, _ = add_rain(clean_example("coffee"), angle=angle, density=0.04, length=28, width=width, seed=5)
    assert abs(rotation_for_angle(guarded_rain_mask(rainy).angle) - angle) <= 5


def test_wide_bright_bars_are_not_rain():
    """Pillars: bright vertical bars 9 px wide are texture; thin streaks on them are rain."""
    image = np.full((160, 240, 3), 60, np.uint8)
    for x0 in range(10, 240, 30):
        image[:, x0:x0 + 9] = 170
    bars = image[..., 0] == 170
    rainy, layer = add_rain(image, angle=0, density=0.02, length=20, seed=2)
    streak = layer > 0.3
    ldgp = rain_mask(rainy).mask > 10
    guarded = guarded_rain_mask(rainy).mask > 10
    assert (guarded & bars & ~streak).sum() < 0.3 * (ldgp & bars & ~streak).sum()
    assert (guarded & streak).sum() > 0.3 * streak.sum()


def test_rain_guard_only_removes_light():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (40, 50, 3)).astype(np.float32)
    estimate = np.clip(x + rng.normal(0, 30, x.shape), 0, 255).astype(np.float32)
    mask = (rng.random((40, 50)) < 0.3).astype(np.uint8) * 255
    out = rain_guard(x, estimate, mask)
    assert np.all(out <= x + 1e-4)
    assert np.all(out >= np.minimum(x, estimate) - 1e-4)
    assert np.array_equal(rain_guard(x, x, mask), x)


def test_guard_falls_back_on_implausible_changes():
    """Small uniform rain increments are removed; a change 20x larger is texture and kept."""
    x = np.full((30, 30, 3), 100, np.float32)
    estimate = x - 10
    estimate[10:20, 10:20] = 0                      # a huge "rain" increment: implausible
    mask = np.full((30, 30), 255, np.uint8)
    out = rain_guard(x, estimate, mask, component_cap=None)
    assert np.allclose(out[:5, :5], 90)
    assert np.allclose(out[12:18, 12:18], 100)


def test_mask_chroma_known_values():
    """White rain has chroma 0; an increment of (30, 20, 10) spreads 20 over a mean of 20: 1."""
    x = np.full((20, 20, 3), 100, np.float32)
    mask = np.zeros((20, 20), np.uint8)
    mask[:, :10] = 255
    white = x.copy()
    white[:, :10] -= 12
    assert mask_chroma(x, white, mask) == 0.0
    orange = x - np.array([30, 20, 10], np.float32)
    assert mask_chroma(x, orange, mask) == pytest.approx(1.0)
    mixed = white.copy()
    mixed[:15, :10] = orange[:15, :10]           # 150 of the 200 mask pixels orange: the median is theirs
    assert mask_chroma(x, mixed, mask) == pytest.approx(1.0)
    mixed[:5, :10] = white[:5, :10]               # 100 and 100: the median lies half-way
    assert mask_chroma(x, mixed, mask) == pytest.approx(0.5)


def test_mask_chroma_leaves_out_clipped_pixels():
    # White rain on a pixel whose red is clipped at 255 only shows in green and blue: left out.
    x = np.full((20, 20, 3), 100, np.float32)
    mask = np.full((20, 20), 255, np.uint8)
    x[:10, :, 0] = 255
    estimate = x - 12
    estimate[:10, :, 0] = 255
    assert mask_chroma(x, estimate, mask) == 0.0
    assert mask_chroma(x, estimate, mask, saturated=256) == pytest.approx(0.75)   # half at 1.5, half at 0


def test_mask_chroma_needs_enough_changed_pixels():
    x = np.full((20, 20, 3), 100, np.float32)
    mask = np.full((20, 20), 255, np.uint8)
    assert np.isnan(mask_chroma(x, x - 1, mask))             # below min_increment: no rain to judge
    assert np.isnan(mask_chroma(x, x - 12, np.zeros_like(mask)))
    with pytest.raises(ValueError, match="expected"):
        mask_chroma(x, x[:10], mask)


def test_guarded_closed_form_gain_on_dev_set(dev_pairs):
    settings = Settings()
    gains = []
    for _, x, t in dev_pairs:
        rgb = x.astype(np.float32) / 255
        mask, _ = compute_mask(to_uint8(rgb), settings.mask)
        out = to_uint8(np.minimum(make_targets(rgb, mask, settings)[0], rgb))
        gains.append(psnr(out, t) - psnr(x, t))
    assert np.mean(gains) >= 3.5      # the reference mask's closed form gains about 3.0 dB
    assert sum(g < 0 for g in gains) <= 1
