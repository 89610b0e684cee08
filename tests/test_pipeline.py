import numpy as np
import pytest

import rain2avoid
from rain2avoid.metrics import psnr
from rain2avoid.pipeline import loss_weights

FAST = dict(steps=80)


def test_derain_is_closer_to_clean_than_input(rainy_pair):
    rainy, clean = rainy_pair
    out = rain2avoid.derain(rainy, **FAST)
    assert out.shape == rainy.shape and out.dtype == np.uint8
    assert psnr(out, clean) > psnr(rainy, clean) + 1.0


def test_same_seed_same_output(rainy_pair):
    rainy = rainy_pair[0][:48, :64]
    a = rain2avoid.derain(rainy, steps=10, seed=1)
    assert np.array_equal(a, rain2avoid.derain(rainy, steps=10, seed=1))


def test_keeps_dtype_gray_and_alpha(rainy_pair):
    rainy = rainy_pair[0][:48, :64]
    gray = rainy.mean(axis=2).astype(np.uint8)
    assert rain2avoid.derain(gray, steps=5).shape == gray.shape
    alpha = np.random.default_rng(0).integers(0, 256, rainy.shape[:2], dtype=np.uint8)
    rgba = np.dstack([rainy, alpha])
    out = rain2avoid.derain(rgba, steps=5)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], alpha)
    deep = rainy.astype(np.uint16) * 257
    out16 = rain2avoid.derain(deep, steps=5)
    assert out16.dtype == np.uint16 and out16.shape == deep.shape
    as_float = rain2avoid.derain(rainy.astype(np.float32) / 255, steps=5)
    assert as_float.dtype == np.float32 and 0 <= as_float.min() and as_float.max() <= 1


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 300, 3), (20, 20, 3), (37, 53, 3)])
def test_tiny_and_odd_images(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert rain2avoid.derain(image, steps=3).shape == shape


def test_never_brightens(rainy_pair):
    rainy = rainy_pair[0]
    out = rain2avoid.derain(rainy, steps=20)
    assert np.all(out <= rainy)


def test_detailed_result(rainy_pair):
    r = rain2avoid.derain_detailed(rainy_pair[0], steps=5)
    assert r.mask.shape == rainy_pair[0].shape[:2] and r.targets.shape[1:] == (*rainy_pair[0].shape[:2], 3)
    assert r.seconds > 0


def test_reference_preset_runs(rainy_pair):
    """The faithful preset (U-Net, full image, sampled NSS references), shortened."""
    rainy = rainy_pair[0][:48, :64]
    r = rain2avoid.derain_detailed(rainy, preset="reference", steps=2, refs=3)
    assert r.image.shape == rainy.shape and r.targets.shape[0] == 3
    assert r.settings.backbone == "unet" and r.settings.mask == "ldgp"


def test_loss_weights_leave_out_the_halo_only():
    mask = np.zeros((7, 9), np.uint8)
    mask[1:6, 4] = 255
    w = loss_weights(mask, 1)
    expected = np.ones((7, 9), np.float32)
    expected[0:7, 3:6] = 0      # 3x3 neighbourhood of the streak column ...
    expected[1:6, 4] = 1        # ... but the rain pixels themselves count
    assert w.dtype == np.float32 and np.array_equal(w, expected)
    assert np.array_equal(loss_weights(mask, 0), np.ones((7, 9), np.float32))
    assert loss_weights(mask, 2)[:, 2:7].sum() == 5   # wider halo: only the streak itself left
    with pytest.raises(ValueError):
        loss_weights(mask, -1)


def test_progress_callback_counts_every_step():
    from rain2avoid.pipeline import derain_detailed
    rng = np.random.default_rng(0)
    image = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    seen = []
    derain_detailed(image, steps=5, ensemble=2, on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 10) for i in range(1, 11)]
