"""Property tests: any size and dtype in range gives valid shapes and the stated invariants."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rain2avoid.detect import guarded_rain_mask
from rain2avoid.io import from_float_rgb, to_float_rgb
from rain2avoid.ldgp import rain_mask
from rain2avoid.metrics import SSIM_MIN_SIZE, psnr, ssim
from rain2avoid.sdr import expected_reference, sample_references

FAST = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

sizes = st.tuples(st.integers(1, 40), st.integers(1, 40))


@st.composite
def images(draw, dtype=np.uint8, channels=(3,)):
    h, w = draw(sizes)
    c = draw(st.sampled_from(channels))
    shape = (h, w) if c == 1 else (h, w, c)
    return draw(arrays(dtype, shape, elements=st.integers(0, np.iinfo(dtype).max)))


@FAST
@given(images(channels=(1, 3, 4)))
def test_masks_have_the_image_size(image):
    for mask in (rain_mask(image).mask, guarded_rain_mask(image).mask):
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8


@FAST
@given(images(), st.integers(0, 2 ** 16), st.sampled_from(["nss", "uniform"]))
def test_reference_invariants_hold_for_any_mask(image, seed, sampler):
    rng = np.random.default_rng(seed)
    mask = rng.choice(np.array([0, 5, 255], np.uint8), image.shape[:2], p=[0.5, 0.1, 0.4])
    refs = sample_references(image, mask, n=3, sampler=sampler, seed=seed)
    rain = mask > 10
    assert refs.shape == (3, *image.shape) and refs.dtype == image.dtype
    assert np.all(refs[:, ~rain] == image[~rain])
    mean = expected_reference(image, mask, sampler)
    assert np.all(mean[~rain] == image[~rain])
    # The mean of candidates lies within the colour range of the 7x7 background window.
    for y, x in zip(*np.nonzero(rain)):
        ys, xs = slice(max(y - 3, 0), y + 4), slice(max(x - 3, 0), x + 4)
        cand = image[ys, xs][mask[ys, xs] == 0]
        if len(cand):
            assert np.all(mean[y, x] >= cand.min(0) - 1e-3) and np.all(mean[y, x] <= cand.max(0) + 1e-3)
        else:
            assert np.all(mean[y, x] == image[y, x])


@FAST
@given(images(), images())
def test_metrics_are_symmetric_and_bounded(a, b):
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:h, :w], b[:h, :w]
    p = psnr(a, b)
    assert p == psnr(b, a) and (p > 0 or np.isinf(p))
    if min(h, w) >= SSIM_MIN_SIZE:
        s = ssim(a, b)
        assert -1 <= s <= 1 and abs(s - ssim(b, a)) < 1e-9
        assert ssim(a, a) == 1.0
    else:
        with pytest.raises(ValueError, match="at least 11x11"):
            ssim(a, b)


@FAST
@given(st.one_of(images(np.uint8, (1, 3, 4)), images(np.uint16, (1, 3, 4))))
def test_float_round_trip_is_exact(image):
    back = from_float_rgb(to_float_rgb(image), like=image)
    assert back.dtype == image.dtype and back.shape == image.shape
    if image.ndim == 3 and image.shape[2] == 4:
        assert np.array_equal(back[..., 3], image[..., 3])
    if image.ndim == 2 or image.shape[2] == 3:
        assert np.array_equal(back, image)


@FAST
@given(st.sampled_from([np.float16, np.float32, np.float64]), sizes, st.integers(0, 2 ** 16))
def test_floats_in_0_1_round_trip_in_their_own_dtype(dtype, size, seed):
    image = np.random.default_rng(seed).random((*size, 3)).astype(dtype)
    rgb = to_float_rgb(image)
    assert rgb.dtype == np.float32 and 0 <= rgb.min() and rgb.max() <= 1
    back = from_float_rgb(rgb, like=image)
    assert back.dtype == image.dtype and back.shape == image.shape
    assert np.array_equal(back, image.astype(np.float32).astype(dtype))
