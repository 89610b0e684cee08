"""Wide soft streaks of large photos, taken off a shrunk copy (rain2avoid.wide, Settings.wide)."""

import numpy as np
import pytest

from rain2avoid import derain, derain_detailed, psnr
from rain2avoid.settings import Settings
from rain2avoid.synth import add_heavy_rain, clean_example
from rain2avoid.io import to_float_rgb
from rain2avoid.wide import WIDE_SIDE, merge_removal, shrink, shrink_factor, shows_lattice


@pytest.mark.parametrize("shape, side, factor", [
    ((960, 1440, 3), 480, 2), ((959, 1440, 3), 480, 0), ((1440, 960), 480, 2), ((2848, 4288, 3), 480, 5),
    ((320, 480, 3), 480, 0), ((2848, 4288, 3), 0, 0), ((1000, 1000, 3), 250, 4)])
def test_shrink_factor(shape, side, factor):
    assert shrink_factor(shape, side) == factor


def test_shrink_averages_blocks():
    rgb = np.zeros((4, 6, 3), np.float32)
    rgb[:2, :2] = 1.0
    small = shrink(rgb, 2)
    assert small.shape == (2, 3, 3)
    np.testing.assert_allclose(small[..., 0], [[1, 0, 0], [0, 0, 0]])


def test_merge_takes_the_larger_removal_per_pixel_and_channel():
    rgb = np.full((4, 4, 3), 0.5, np.float32)
    out = rgb.copy()
    out[:, :2] -= 0.3                         # the full-size pass took 0.3 off the left half
    small = np.full((2, 2, 3), 0.5, np.float32)
    small_out = small.copy()
    small_out[..., 1] -= 0.2                  # the copy took 0.2 off the green channel everywhere
    merged = merge_removal(rgb, out, small, small_out)
    np.testing.assert_allclose(merged[:, :2], 0.2, atol=1e-6)                 # 0.3 > 0.2: kept
    np.testing.assert_allclose(merged[:, 2:, 1], 0.3, atol=1e-6)              # 0.2 > 0: the copy's
    np.testing.assert_allclose(merged[:, 2:, [0, 2]], 0.5, atol=1e-6)         # nothing taken


def test_merge_stays_within_range():
    rgb = np.full((2, 2, 3), 0.1, np.float32)
    merged = merge_removal(rgb, rgb.copy(), rgb[:1, :1] * 0 + 0.9, np.zeros((1, 1, 3), np.float32))
    assert merged.min() == 0.0


def test_settings_check_wide():
    assert Settings().wide == 0
    with pytest.raises(ValueError, match="wide"):
        Settings(wide=-1)


@pytest.fixture(scope="module")
def wide_rain():
    """A 384 x 576 picture under soft streaks 6 px wide (blurred by 2.5 px): too wide to fill at full size."""
    clean = clean_example("chelsea", size=(384, 576))
    rain = dict(angle=10, density=0.03, length=100, width=6, intensity=0.3, blur=2.5)
    rainy, _, _ = add_heavy_rain(clean, [rain], seed=5)
    return rainy, clean


def test_wide_rain_goes_on_a_shrunk_copy(wide_rain):
    rainy, clean = wide_rain
    plain = derain(rainy, steps=150, veil="off")
    detailed = derain_detailed(rainy, steps=150, veil="off", wide=192)   # shrunk 2x: streaks 3 px wide
    wide = detailed.image
    assert detailed.wide == 2 and detailed.settings.wide == 192
    before, without, with_wide = psnr(rainy, clean), psnr(plain, clean), psnr(wide, clean)
    assert with_wide > without + 2.0 and with_wide > before + 3.0, (before, without, with_wide)  # 28.9, 29.8, 34.2
    assert np.all(wide <= rainy)                                   # rain only adds light


def test_wide_is_nothing_below_twice_its_side(wide_rain):
    rainy, _ = wide_rain
    small = np.ascontiguousarray(rainy[:120, :160])
    np.testing.assert_array_equal(derain(small, steps=20, veil="off", wide=64),
                                  derain(small, steps=20, veil="off"))



def test_shows_lattice_on_a_large_facade_not_on_rain(large_facade, wide_rain):
    for rainy, lattice in ((large_facade[0], True), (wide_rain[0], False)):
        rgb = to_float_rgb(rainy)
        assert shows_lattice(rgb, shrink(rgb, shrink_factor(rgb.shape, WIDE_SIDE) or 2)) == lattice


def test_no_copy_is_derained_where_a_lattice_shows(wide_rain, monkeypatch):
    import rain2avoid.pipeline as pipeline
    rainy, _ = wide_rain
    monkeypatch.setattr(pipeline, "shows_lattice", lambda rgb, small: True)
    skipped = pipeline.derain_detailed(rainy, steps=20, veil="off", wide=192)
    np.testing.assert_array_equal(skipped.image, derain(rainy, steps=20, veil="off"))
    assert skipped.wide == 0

def test_cli_wide_rain_flag_reaches_the_pipeline(tmp_path, monkeypatch):
    """derain --wide-rain sets Settings.wide to wide.WIDE_SIDE, and the photo's line says what came of
    it; without it no copy is made."""
    import rain2avoid.pipeline as pipeline
    import rain2avoid.wide as wide
    from rain2avoid.io import write_image
    from rain2avoid.synth import add_rain

    from conftest import invoke
    monkeypatch.setattr(wide, "WIDE_SIDE", 32)
    factors, real = [], pipeline.shrink
    monkeypatch.setattr(pipeline, "shrink", lambda rgb, factor: factors.append(factor) or real(rgb, factor))
    rainy, _ = add_rain(clean_example("astronaut", size=(64, 96)), seed=3)
    write_image(tmp_path / "rainy.png", rainy)
    r = invoke("derain", tmp_path / "rainy.png", "-o", tmp_path / "plain.png", "--steps", "5")
    assert r.exit_code == 0 and factors == [] and "wide rain" not in r.output + r.stderr and "wide-rain" not in r.output + r.stderr
    for lattice, says in ((False, "wide rain from a copy shrunk 2x"), (True, "no wide-rain copy (the photo shows a lattice)")):
        monkeypatch.setattr(pipeline, "shows_lattice", lambda rgb, small, lattice=lattice: lattice)
        r = invoke("derain", tmp_path / "rainy.png", "-o", tmp_path / f"wide{lattice}.png", "--steps", "5", "--wide-rain")
        assert r.exit_code == 0 and factors[-1] == 2 and says in r.output + r.stderr, r.output + r.stderr


def test_wide_note_says_what_the_option_did():
    from rain2avoid.batch.work import _wide_note
    assert _wide_note((960, 1440, 3), 0, 0) == ""
    assert _wide_note((960, 1440, 3), 480, 2) == ", wide rain from a copy shrunk 2x"
    assert _wide_note((959, 1440, 3), 480, 0) == ", no wide-rain copy (shorter side under 960 px)"
    assert _wide_note((960, 1440), 480, 0) == ", no wide-rain copy (the photo shows a lattice)"
