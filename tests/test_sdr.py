import numpy as np
import pytest

from rain2avoid.ldgp import rain_mask
from rain2avoid.metrics import psnr
from rain2avoid.sdr import (
    ReferenceSampler,
    candidates,
    expected_reference,
    sample_references,
)


def slow_nss_weights(image, mask, K=7, k=3, eta=0.5, threshold=10):
    """A direct per-pixel transcription of the NSS weights of the method's stage 2 (the known answer)."""
    h, w = mask.shape
    x = image.astype(np.float64)
    out = {}
    for y0, x0 in zip(*np.nonzero(mask > threshold)):
        size = k
        while True:
            r = size // 2
            window = mask[max(y0 - r, 0):y0 + r + 1, max(x0 - r, 0):x0 + r + 1]
            if np.any(window == 0) or size >= K:
                break
            size += 2
        r = size // 2

        def patch(cy, cx):
            p = np.zeros((size, size, 3))
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if 0 <= cy + dy < h and 0 <= cx + dx < w:
                        p[dy + r, dx + r] = x[cy + dy, cx + dx]
            return p

        bg = np.ones((size, size))
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if 0 <= y0 + dy < h and 0 <= x0 + dx < w and mask[y0 + dy, x0 + dx] > 0:
                    bg[dy + r, dx + r] = 0
        centre = patch(y0, x0)
        R = K // 2
        for dy in range(-R, R + 1):
            for dx in range(-R, R + 1):
                qy, qx = y0 + dy, x0 + dx
                if 0 <= qy < h and 0 <= qx < w and mask[qy, qx] == 0:
                    d = (np.abs(centre - patch(qy, qx)).sum(axis=2) * bg).sum()
                    out[(y0, x0, dy, dx)] = 1 / max(d ** eta, 1e-4)
    return out


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (14, 17, 3)).astype(np.uint8)
    mask = np.zeros((14, 17), np.uint8)
    mask[rng.random((14, 17)) < 0.35] = 255
    mask[2:9, 3:9] = 255          # a blob that forces the similarity patch to grow
    mask[0, :] = 5                # neither rain (<= 10) nor a candidate (> 0)
    return image, mask


def test_nss_weights_match_direct_definition(small):
    image, mask = small
    c = candidates(image, mask, "nss")
    expected = slow_nss_weights(image, mask)
    got = {}
    for i, (y, x) in enumerate(zip(c.rows, c.cols)):
        for j, (dy, dx) in enumerate(c.offsets):
            if c.weights[i, j] > 0:
                got[(y, x, dy, dx)] = c.weights[i, j]
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-4)


@pytest.mark.parametrize("sampler", ["nss", "uniform"])
def test_reference_invariants(small, sampler):
    image, mask = small
    refs = sample_references(image, mask, n=20, sampler=sampler, seed=1)
    assert refs.shape == (20, *image.shape) and refs.dtype == image.dtype
    rain = mask > 10
    assert np.all(refs[:, ~rain] == image[~rain])
    h, w = mask.shape
    for y, x in zip(*np.nonzero(rain)):
        ys, xs = slice(max(y - 3, 0), y + 4), slice(max(x - 3, 0), x + 4)
        allowed = {tuple(v) for v in image[ys, xs][mask[ys, xs] == 0]}
        for ref in refs:
            if allowed:
                assert tuple(ref[y, x]) in allowed
            else:
                assert np.all(ref[y, x] == image[y, x])


@pytest.mark.parametrize("sampler", ["nss", "uniform"])
def test_expected_reference_is_the_mean_of_samples(small, sampler):
    image, mask = small
    mean = sample_references(image, mask, n=3000, sampler=sampler, seed=2).astype(np.float64).mean(0)
    closed = expected_reference(image, mask, sampler)
    assert np.abs(mean - closed).max() < 6.0      # 3000 samples of values in 0..255
    assert np.abs(mean - closed).mean() < 0.5


def test_seed_controls_samples(small):
    image, mask = small
    a = sample_references(image, mask, n=4, seed=7)
    assert np.array_equal(a, sample_references(image, mask, n=4, seed=7))
    assert not np.array_equal(a, sample_references(image, mask, n=4, seed=8))


def test_argument_errors(small):
    image, mask = small
    with pytest.raises(ValueError, match="sampler"):
        expected_reference(image, mask, "gauss")
    with pytest.raises(ValueError, match="mask shape"):
        expected_reference(image, mask[1:])


def test_expected_nss_gain_on_dev_set(dev_pairs):
    gains = [psnr(expected_reference(x, rain_mask(x).mask), t) - psnr(x, t) for _, x, t in dev_pairs]
    assert np.mean(gains) >= 2.0


def test_bands_give_the_whole_image_result(small):
    image, mask = small
    whole = expected_reference(image, mask, band=10_000)
    assert np.allclose(expected_reference(image, mask, band=3), whole, atol=1e-4)
    refs = sample_references(image, mask, n=5, band=4, seed=0)
    rain = mask > 10
    assert np.all(refs[:, ~rain] == image[~rain])


def test_expected_reference_does_not_depend_on_how_many_pixels_are_gathered_at_once(small, monkeypatch):
    import rain2avoid.sdr as sdr
    image, mask = small
    whole = expected_reference(image, mask)
    monkeypatch.setattr(sdr, "_CHUNK", 7)
    assert np.array_equal(expected_reference(image, mask), whole)


def test_reference_sampler_draws_what_sample_references_draws(small):
    # One band: k draws from a generator seeded s are sample_references(n=k, seed=s).
    image, mask = small
    sampler = ReferenceSampler(image, mask, "nss")
    rng = np.random.default_rng(7)
    drawn = np.stack([sampler.draw(rng) for _ in range(4)])
    assert np.array_equal(drawn, sample_references(image, mask, n=4, seed=7))
    assert not np.array_equal(drawn[0], drawn[1])          # each draw is a fresh reference


def test_reference_sampler_windows_and_bands(small):
    image, mask = small
    rain = mask > 10
    banded = ReferenceSampler(image, mask, "nss", band=4)
    whole = ReferenceSampler(image, mask, "nss")
    assert np.array_equal(banded.cum, whole.cum) and np.array_equal(banded.rows, whole.rows)
    window = banded.draw(np.random.default_rng(0), (3, 11, 5, 16))
    assert window.shape == (8, 11, 3)
    inside = rain[3:11, 5:16]
    assert np.array_equal(window[~inside], image[3:11, 5:16][~inside])   # background kept
    # every replaced pixel took a colour from its 7x7 window
    for y, x in zip(*np.nonzero(inside)):
        y0, x0 = y + 3, x + 5
        block = image[max(y0 - 3, 0):y0 + 4, max(x0 - 3, 0):x0 + 4].reshape(-1, 3)
        assert (block == window[y, x]).all(axis=1).any()
    with pytest.raises(ValueError, match="window"):
        banded.draw(np.random.default_rng(0), (0, 20, 0, 5))


def test_a_bool_mask_is_the_255_mask_and_a_0_1_mask_is_refused(small):
    image, mask = small
    rain = mask > 10
    binary = (rain * 255).astype(np.uint8)                      # the 0/255 mask that rain stands for
    closed = expected_reference(image, rain)
    assert np.array_equal(closed, expected_reference(image, binary)) and not np.array_equal(closed, image)
    assert np.array_equal(sample_references(image, rain, n=3, seed=1), sample_references(image, binary, n=3, seed=1))
    assert np.array_equal(ReferenceSampler(image, rain, band=4).cum, ReferenceSampler(image, binary, band=4).cum)
    assert np.array_equal(candidates(image, rain).weights, candidates(image, binary).weights)
    ones = rain.astype(np.uint8)
    for call in (lambda: expected_reference(image, ones), lambda: sample_references(image, ones, n=2),
                 lambda: ReferenceSampler(image, ones), lambda: candidates(image, ones),
                 lambda: expected_reference(image, ones.astype(np.float32), band=4)):
        with pytest.raises(ValueError, match=r"\[0, 1\].*pass a bool mask"):
            call()
    # With threshold=0 a 0/1 mask means what it says: 1 is rain.
    assert np.array_equal(expected_reference(image, ones, threshold=0), expected_reference(image, binary, threshold=0))


def test_a_grey_image_gets_grey_references_as_rain_mask_takes_it():
    from rain2avoid.synth import add_rain, clean_example
    rgb = add_rain(clean_example("coffee", size=(96, 128)), angle=5, density=0.04, length=16, seed=1)[0]
    grey = rgb[..., 1].copy()
    mask = rain_mask(grey).mask
    assert mask.any()
    mean = expected_reference(grey, mask)
    np.testing.assert_array_equal(mean, expected_reference(grey[..., None], mask)[..., 0])
    refs = sample_references(grey, mask, n=2, seed=3)
    assert refs.shape == (2, 96, 128) and refs.dtype == np.uint8
    np.testing.assert_array_equal(refs, sample_references(grey[..., None], mask, n=2, seed=3)[..., 0])
