import numpy as np
import pytest

from rain2avoid.io import read_image
from rain2avoid.metrics import as_rgb, psnr, ssim, to_y


def test_luma_range():
    assert to_y(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16.0)
    assert to_y(np.full((1, 1, 3), 255.0))[0, 0] == pytest.approx(235.0)


def test_psnr_known_values():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[..., :] = 110  # RGB error 10 everywhere -> MSE 100
    assert psnr(a, b, "rgb") == pytest.approx(10 * np.log10(255 ** 2 / 100))
    # Y difference of a grey step of 10 is 10 * 219 / 255.
    assert psnr(a, b, "y") == pytest.approx(10 * np.log10(255 ** 2 / (10 * 219 / 255) ** 2))
    assert psnr(a, a) == float("inf")


def test_ssim_identity_and_order():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    noisy = np.clip(a + rng.normal(0, 10, a.shape), 0, 255)
    noisier = np.clip(a + rng.normal(0, 30, a.shape), 0, 255)
    assert ssim(a, a) == pytest.approx(1.0)
    assert 1 > ssim(noisy, a) > ssim(noisier, a)


def test_crop_border_and_errors():
    a = np.zeros((10, 10, 3))
    b = a.copy()
    b[0] = 50  # only the first row differs
    assert psnr(a, b, crop_border=1) == float("inf")
    with pytest.raises(ValueError, match="differ"):
        psnr(a, np.zeros((9, 10, 3)))
    with pytest.raises(ValueError, match="channel"):
        psnr(a, b, channel="lab")
    with pytest.raises(ValueError, match="no pixels"):
        psnr(a, b, crop_border=5)


def test_rgba_scored_on_rgb():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    alpha = np.zeros((16, 16, 1), np.uint8)
    assert psnr(np.concatenate([a, alpha], 2), b) == pytest.approx(psnr(a, b))


def test_dev_set_known_scores(dev_pairs, dev_dir):
    """The values stated in the dev README for the untouched input and the released outputs."""
    rainy = np.array([[psnr(x, t), ssim(x, t), psnr(x, t, "rgb"), ssim(x, t, "rgb")] for _, x, t in dev_pairs])
    assert rainy.mean(0) == pytest.approx([26.18, 0.814, 24.80, 0.798], abs=0.006)
    released = np.array([[psnr(read_image(dev_dir / "r2a_released_output" / f"{n}.png"), t),
                          ssim(read_image(dev_dir / "r2a_released_output" / f"{n}.png"), t)]
                         for n, _, t in dev_pairs])
    assert released.mean(0) == pytest.approx([29.25, 0.901], abs=0.006)


def test_flicker_known_values():
    from rain2avoid.metrics import flicker
    clean = np.zeros((3, 4, 5, 3), np.uint8)
    clean[1] = 10                                             # the scene itself changes: that is not flicker
    assert flicker(clean, clean) == 0.0
    out = clean.copy()
    out[1, :2] += 4                                          # half of frame 1 is 4 grey levels too bright
    # Y of a grey change g is 219/255 * g; frame pairs (0, 1) and (1, 2) each see half the pixels off.
    assert flicker(out, clean) == pytest.approx(0.5 * 4 * 219 / 255)
    assert flicker(out, clean, channel="rgb") == pytest.approx(0.5 * 4)
    assert flicker(out + 7, clean + 7) == pytest.approx(flicker(out, clean))   # a constant offset does not flicker
    with pytest.raises(ValueError):
        flicker(clean[:1], clean[:1])
    with pytest.raises(ValueError):
        flicker(clean, clean[:2])
    with pytest.raises(ValueError):
        flicker(clean, clean, channel="lab")


def test_one_scale_uint16_and_float_0_255_score_as_uint8():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 256, (2, 24, 32, 3)).astype(np.uint8)
    p, s = psnr(a, b), ssim(a, b, "rgb")
    wide_a, wide_b = a.astype(np.uint16) * 257, b.astype(np.uint16) * 257
    assert psnr(wide_a, b) == pytest.approx(p) and psnr(wide_a, wide_b) == pytest.approx(p)
    assert ssim(wide_a, wide_b, "rgb") == pytest.approx(s) and ssim(a, wide_b, "rgb") == pytest.approx(s)
    assert psnr(a.astype(np.float32), b) == pytest.approx(p)   # float is on the 0-255 scale
    black = np.zeros((24, 32, 3))                              # constant floats within [0, 1] are taken as they are
    assert psnr(black, a) == pytest.approx(psnr(np.zeros_like(a), a))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_images_on_another_scale_are_refused(metric):
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 256, (2, 24, 32, 3)).astype(np.uint8)
    for pred, target in [(a / 255, b / 255), (a, b / 255), (a / 255, b.astype(np.uint16) * 257)]:
        with pytest.raises(ValueError, match=r"\[0, 1\].*0-255 scale; multiply by 255"):
            metric(pred, target)
    for far in (a.astype(np.float64) * 257, a - 100.0):           # a 16-bit image as floats; far below 0
        with pytest.raises(ValueError, match=r"reach .* 0-255 scale.*divide by 257"):
            metric(far, b)
    assert np.isfinite(metric(np.clip(a * 1.2, -60, 310), b))      # a network's overshoot is scored
    with pytest.raises(ValueError, match="int64"):
        metric(a.astype(np.int64), b)
    with pytest.raises(ValueError, match="NaN"):
        metric(np.full(a.shape, np.nan), b)
    with pytest.raises(ValueError, match="crop_border"):
        metric(a, b, crop_border=-1)


def test_flicker_has_the_same_scale():
    from rain2avoid.metrics import flicker
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 256, (2, 3, 4, 5, 3)).astype(np.uint8)
    assert flicker(a.astype(np.uint16) * 257, b) == pytest.approx(flicker(a, b))
    with pytest.raises(ValueError, match="multiply by 255"):
        flicker(a / 255, b / 255)


def test_as_rgb_repeats_gray_and_drops_alpha():
    """The one convention eval and report score pictures by: gray repeated, alpha dropped, RGB as it is."""
    gray = np.arange(12, dtype=np.uint16).reshape(3, 4)
    np.testing.assert_array_equal(as_rgb(gray), np.dstack([gray, gray, gray]))
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb(rgba), rgba[..., :3])
    np.testing.assert_array_equal(as_rgb(rgba[..., :3]), rgba[..., :3])


def test_grey_images_are_scored_as_their_rgb():
    rng = np.random.default_rng(4)
    a, b = (rng.integers(0, 256, (24, 32), dtype=np.uint8) for _ in range(2))
    for metric in (psnr, ssim):
        for channel in ("y", "rgb"):
            assert metric(a, b, channel) == metric(as_rgb(a), as_rgb(b), channel)
    with pytest.raises(ValueError, match=r"expected \(H, W\) grey or \(H, W, 3\) RGB images"):
        psnr(a[..., None].repeat(2, axis=2), b[..., None].repeat(2, axis=2))
