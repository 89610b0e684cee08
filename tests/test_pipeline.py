import cv2
import numpy as np
import pytest

import rain2avoid
from rain2avoid.io import to_float_rgb
from rain2avoid.metrics import psnr
from rain2avoid.pipeline import loss_weights

FAST = dict(steps=80)


def test_derain_is_closer_to_clean_than_input(rainy_pair):
    rainy, clean = rainy_pair
    out = rain2avoid.derain(rainy, **FAST)
    assert out.shape == rainy.shape and out.dtype == np.uint8
    assert psnr(out, clean) > psnr(rainy, clean) + 1.0


def test_rain_laid_on_as_a_screen_layer_is_removed():
    # Painted rain (an editor's "screen" layer) lifts each channel by its own amount,
    # where the guards expect white rain's equal lift; the coloured cup must still be cleared.
    from rain2avoid.synth import add_heavy_rain, clean_example
    clean = clean_example("coffee")
    rain = dict(angle=20, density=0.04, length=30, width=1, intensity=0.5, blur=0.8)
    rainy, _, _ = add_heavy_rain(clean, [rain], seed=5, blend="screen")
    out = rain2avoid.derain(rainy, **FAST)
    assert psnr(out, clean) > psnr(rainy, clean) + 5.0


def test_targets_take_bright_streak_cores_away_unless_a_target_cap_is_set():
    # A streak's core is far brighter than its edges; the per-pixel cap (target_cap=4)
    # faded such cores out of the references and the network learned to leave them.
    from rain2avoid.pipeline import make_targets
    from rain2avoid.sdrl import resolve_settings
    clean = np.full((64, 96, 3), 30.0, np.float32)
    rainy, mask = clean.copy(), np.zeros((64, 96), np.uint8)
    for x in range(8, 96, 12):
        rainy[:, x - 2:x + 3] += 40.0                     # faint streaks, 5 px wide
        mask[:, x - 2:x + 3] = 255
    rainy[:, 32] += 160.0                                 # one bright core, 5x the others
    rgb = rainy / 255.0
    for settings, left in ((resolve_settings(), (0, 3)), (resolve_settings(target_cap=4.0), (30, 60))):
        target = make_targets(rgb, mask, settings)[0] * 255.0
        assert np.abs(target[:, 8] - 30).max() < 3       # a faint streak is taken away
        assert left[0] <= target[:, 32].mean() - 30 <= left[1]   # the bright core: all of it, or a part


def test_facade_under_slanted_rain_ends_closer_to_clean():
    # Image 0 of `benchmarks/facade.py`: thin bright window frames 10 degrees off the rain.
    # Taken for rain, they were flattened and the result ended 1.4 dB below its input.
    from rain2avoid.synth import add_rain, facade
    clean = facade(np.random.default_rng(7))
    rainy, _ = add_rain(clean, angle=-10.0, density=0.0267, length=34.7, intensity=0.659, blur=0.9, seed=7000)
    out = rain2avoid.derain(rainy)
    assert psnr(out, clean) > psnr(rainy, clean) + 1.5


def test_facade_with_mullions_near_dense_rain_ends_closer_to_clean(mullion_facade):
    # Faint dense rain 9 degrees off the mullions: the mask took the mullions where streaks
    # crossed them, and the result ended 8.9 dB below its input (25.47 dB).
    rainy, clean, _ = mullion_facade
    assert psnr(rain2avoid.derain(rainy), clean) > psnr(rainy, clean) + 0.5


def test_facade_under_vertical_rain_ends_closer_to_clean(vertical_rain_facade):
    # Rain along the mullions cannot be told from them by direction; the mask took them,
    # and the result ended 4.2 dB below its input (23.08 dB).
    rainy, clean, _ = vertical_rain_facade
    assert psnr(rain2avoid.derain(rainy), clean) > psnr(rainy, clean) + 1.0


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


def test_float_images_keep_their_dtype_and_pil_images_are_taken(rainy_pair):
    from PIL import Image
    rainy = rainy_pair[0][:24, :32]
    as_uint8 = rain2avoid.derain(rainy, steps=2)
    for dtype in (np.float16, np.float32, np.float64):
        out = rain2avoid.derain((rainy / 255).astype(dtype), steps=2)
        assert out.dtype == dtype and out.shape == rainy.shape
        assert np.abs(out.astype(np.float64) * 255 - as_uint8).max() <= 1   # the same result
    assert np.array_equal(rain2avoid.derain(Image.fromarray(rainy), steps=2), as_uint8)


def test_pil_images_in_other_modes_are_taken_as_their_colours(rainy_pair):
    # A palette image's array holds indices and a CMYK image's four channels are not RGBA:
    # both are derained as the RGB picture they show, as read_image reads such files.
    from PIL import Image
    rainy = rainy_pair[0][:24, :32]
    palette = Image.fromarray(rainy).quantize(64)
    out = rain2avoid.derain(palette, steps=2)
    assert out.shape == rainy.shape and out.dtype == np.uint8
    assert np.array_equal(out, rain2avoid.derain(np.asarray(palette.convert("RGB")), steps=2))
    cmyk = Image.fromarray(rainy).convert("CMYK")
    assert np.array_equal(rain2avoid.derain(cmyk, steps=2), rain2avoid.derain(np.asarray(cmyk.convert("RGB")), steps=2))
    grey_alpha = rain2avoid.derain(Image.fromarray(rainy).convert("LA"), steps=2)
    assert grey_alpha.shape == rainy.shape[:2] + (4,) and (grey_alpha[..., 3] == 255).all()
    with pytest.raises(ValueError, match=r"mode 'I' has no 8- or 16-bit form to derain: pass "
                                         r"np.asarray\(image\).astype\(np.uint16\) if its values are 0-65535"):
        rain2avoid.derain(Image.fromarray(rainy[..., 0].astype(np.int32)), steps=2)   # convert('RGB') would clip


def test_big_endian_16_bit_pixels_are_taken_as_the_uint16_they_are(rainy_pair):
    rainy = rainy_pair[0][:24, :32].astype(np.uint16) * 257
    out = rain2avoid.derain(rainy.astype(">u2"), steps=2)
    assert out.dtype == np.uint16 and out.dtype.isnative
    np.testing.assert_array_equal(out, rain2avoid.derain(rainy, steps=2))


def test_arrays_of_other_types_or_layouts_are_told_how_to_convert(rainy_pair):
    rainy = rainy_pair[0][:24, :32]
    with pytest.raises(ValueError, match=r"got int32: for values in 0-255, image.astype\(np.uint8\)"):
        rain2avoid.derain(rainy.astype(np.int32), steps=2)
    with pytest.raises(ValueError, match=r"got bool: a mask\?"):
        rain2avoid.derain(rainy[..., 0] > 100, steps=2)
    with pytest.raises(ValueError, match=r"got shape \(3, 24, 32\) \(channels first\? image.transpose\(1, 2, 0\)"):
        rain2avoid.derain(rainy.transpose(2, 0, 1), steps=2)
    with pytest.raises(TypeError, match=r"unknown option\(s\): 'stepz' \(did you mean 'steps'\?\); the options are "):
        rain2avoid.derain(rainy, stepz=2)


def test_wrong_images_are_refused_at_the_entry_with_what_to_do(rainy_pair):
    rainy = rainy_pair[0][:24, :32]
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], found .*: divide a 0-255 image by 255"):
        rain2avoid.derain(rainy.astype(np.float32), steps=2)
    floats = rainy / 255
    floats[3, 4, 0] = np.nan
    with pytest.raises(ValueError, match="1 pixel is NaN or infinite"):
        rain2avoid.derain(floats, steps=2)
    for empty in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 32, 3), np.uint8)):
        with pytest.raises(ValueError, match="no pixels"):
            rain2avoid.derain_detailed(empty, steps=2)
    for wrong in ("rainy.png", None, rainy.tolist()):
        with pytest.raises(TypeError, match="expected an image array .* rain2avoid.read_image first"):
            rain2avoid.derain(wrong, steps=2)


def test_cuda_without_a_gpu_is_refused_before_any_work(rainy_pair, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: device='cuda' is right")
    stages = []
    with pytest.raises(ValueError, match=r"device 'cuda': (this torch is a CPU build|no CUDA GPU is visible); "
                                         r"use device='cpu'"):
        rain2avoid.derain_detailed(rainy_pair[0][:24, :32], device="cuda", steps=1, on_stage=stages.append)
    assert stages == []   # not an AssertionError from inside torch once training starts
    x = to_float_rgb(rainy_pair[0][:24, :32])
    rain2avoid.train_folder([x], [x[None]], rain2avoid.Settings(steps=0)).save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"device 'cuda:0': .*use device='cpu'"):
        rain2avoid.load_model(tmp_path / "m.pt", device="cuda:0")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'gpu'"):
        rain2avoid.load_model(tmp_path / "m.pt", device="gpu")


def test_wrong_init_or_device_is_refused_with_what_to_do(rainy_pair, tmp_path):
    rainy = rainy_pair[0][:24, :32]
    with pytest.raises(TypeError, match=r"init must be a Model, got str: .* rain2avoid.load_model\(path\)"):
        rain2avoid.derain(rainy, init="model.pt")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'gpu'"):
        rain2avoid.derain(rainy, device="gpu")
    clip = tmp_path / "clip.mkv"
    with pytest.raises(TypeError, match=r"init must be a Model, got str"):
        rain2avoid.derain_video(clip, tmp_path / "out.mkv", init="model.pt")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'gpu'"):
        rain2avoid.derain_video(clip, tmp_path / "out.mkv", device="gpu")
    x = to_float_rgb(rainy)
    model = rain2avoid.train_folder([x], [x[None]], rain2avoid.Settings(steps=1))
    with pytest.raises(TypeError, match="expected an image array .* read it with rain2avoid.read_image"):
        model.apply("photo.png")


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 300, 3), (20, 20, 3), (37, 53, 3)])
def test_tiny_and_odd_images(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert rain2avoid.derain(image, steps=3).shape == shape


@pytest.mark.parametrize("side", [8, 12, 16])
def test_a_thumbnail_of_a_dry_photo_comes_back_as_it_is(side):
    from rain2avoid.synth import clean_example
    thumbnail = cv2.resize(clean_example("chelsea", size=(96, 96)), (side, side), interpolation=cv2.INTER_AREA)
    result = rain2avoid.derain_detailed(thumbnail, steps=50, veil="off")
    assert not result.mask.any()   # at 8-16 px a fifth of it was taken for rain and changed by 12-19 levels
    np.testing.assert_array_equal(result.image, thumbnail)
    # the reference preset's mask and U-Net too: at 16 px it failed ("Expected more than 1 value per channel")
    np.testing.assert_array_equal(rain2avoid.derain(thumbnail, "reference", steps=1), thumbnail)
    hazy = (thumbnail * 0.5 + 110).astype(np.uint8)   # pale and grey: the veil auto would take from a photo
    assert rain2avoid.derain_detailed(cv2.resize(hazy, (96, 96)), steps=0).veil is not None
    result = rain2avoid.derain_detailed(hazy, steps=0)
    assert result.veil is None and np.array_equal(result.image, hazy)


def test_the_largest_seed_works_for_an_ensemble_too(rainy_pair):
    from rain2avoid.pipeline import _runs
    settings = rain2avoid.pipeline.derain_settings("high", seed=2 ** 64 - 1)
    assert [run.seed for run, _ in _runs(settings, None)] == [2 ** 64 - 1, 0, 1]
    assert rain2avoid.derain(rainy_pair[0][:24, :32], "high", seed=2 ** 64 - 1, steps=1).shape == (24, 32, 3)


def test_a_callback_that_is_not_a_function_is_refused_before_any_work(rainy_pair):
    for name in ("on_progress", "on_stage"):
        with pytest.raises(TypeError, match=f"{name} must be a function \\(or None\\), got int"):
            rain2avoid.derain(rainy_pair[0][:24, :32], steps=1, **{name: 5})


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


def test_progress_callback_counts_every_step(rainy_pair):
    from rain2avoid.pipeline import derain_detailed
    seen = []
    derain_detailed(rainy_pair[0], steps=5, ensemble=2,
                    on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 10) for i in range(1, 11)]


def test_an_image_without_rain_comes_back_as_it_is_untrained(rainy_pair, monkeypatch):
    import rain2avoid.pipeline as pipeline
    from rain2avoid.veil import clear_veil
    from rain2avoid.synth import clean_example

    def no_training(*args, **kwargs):
        raise AssertionError("trained a network on an image with an empty mask")
    monkeypatch.setattr(pipeline, "train_image", no_training)
    clean = clean_example("chelsea", size=(48, 64))   # no rain found
    seen = []
    r = pipeline.derain_detailed(clean, steps=5, ensemble=2, veil="off",
                                 on_progress=lambda done, total: seen.append((done, total)))
    assert not r.mask.any() and np.array_equal(r.image, clean) and seen == [(10, 10)]
    veiled = pipeline.derain_detailed(clean, veil="on").image      # the veil is still taken away
    expected, _ = clear_veil(clean.astype(np.float32) / 255, "on")
    assert np.abs(veiled.astype(int) - np.round(expected * 255).astype(int)).max() <= 1
    assert not np.array_equal(veiled, clean)
    flat = np.full((48, 64, 3), 120, np.uint8)                  # an empty reference mask still trains,
    assert not pipeline.derain_detailed(flat, steps=5).mask.any()   # as the reference implementation does
    with pytest.raises(AssertionError, match="empty mask"):
        pipeline.derain_detailed(flat, steps=5, mask="ldgp")
    with pytest.raises(AssertionError, match="empty mask"):   # and so does an image with rain
        pipeline.derain_detailed(rainy_pair[0], steps=5)


def test_a_clean_photo_without_streaks_comes_back_as_it_is(dev_dir):
    """A clean Rain100L picture whose patches' gradients point many ways: before the HOG
    vote needed their agreement, its mask took 1.2 % of it, and 2.5 % of the output's pixels
    moved, by up to 35 grey levels (44.4 dB against the picture)."""
    from rain2avoid.io import read_image
    clean = read_image(dev_dir / "target" / "19.png")
    r = rain2avoid.derain_detailed(clean, veil="off")
    assert not r.mask.any() and np.array_equal(r.image, clean)


def _lines(colour, background=(90, 60, 40), step=9, length=14):
    """A (96, 120) picture with short thin vertical lines of ``colour`` 20 levels over
    ``background``, and a mask of them (255)."""
    image = np.zeros((96, 120, 3), np.float32) + np.array(background, np.float32)
    mask = np.zeros((96, 120), np.uint8)
    for y0 in range(4, 80, 2 * length):
        for x0 in range(5, 115, step):
            image[y0:y0 + length, x0] += np.array(colour, np.float32)
            mask[y0:y0 + length, x0] = 255
    return np.clip(image, 0, 255) / 255, mask


def test_texture_only_where_the_direction_is_unsure_and_the_change_coloured():
    # Orange lines (fur, grass) over a brown picture: coloured, so texture where the rain
    # direction is unsure. White lines are rain. A sure direction, or the reference mask, keeps all.
    from rain2avoid.detect import CONFIDENT
    from rain2avoid.pipeline import texture_only
    from rain2avoid.sdrl import Settings
    orange, mask = _lines((40, 20, 0))
    white, _ = _lines((20, 20, 20))
    settings = Settings()
    assert texture_only(orange, mask, 0, settings)
    assert texture_only(orange, mask, CONFIDENT - 1, settings)
    assert not texture_only(white, mask, 0, settings)
    assert not texture_only(orange, mask, CONFIDENT, settings)
    assert not texture_only(orange, mask, 0, Settings(mask="ldgp"))
    assert not texture_only(orange, np.zeros_like(mask), 0, settings)


def test_coloured_texture_under_unsure_rain_is_left_alone(dev_dir):
    # The Rain100L tiger's clean picture has no rain; its fur and grass give a few bright
    # segments (support under 8) and a mask whose change is orange: nothing is taken away.
    # Under Rain100L's own rain (support 16) the mask stays and the image gains.
    from rain2avoid.detect import CONFIDENT
    from rain2avoid.io import read_image
    from rain2avoid.pipeline import derain_detailed, training_data
    from rain2avoid.sdrl import resolve_settings
    clean = read_image(dev_dir / "target" / "9.png")
    data = training_data(clean.astype(np.float32) / 255, resolve_settings("fast"))
    assert data.support < CONFIDENT and not data.mask.any()
    assert np.array_equal(derain_detailed(clean).image, clean)   # no mask: nothing trained, nothing changed
    rainy = read_image(dev_dir / "input" / "9.png")
    data = training_data(rainy.astype(np.float32) / 255, resolve_settings("fast"))
    assert data.support >= CONFIDENT and data.mask.any()


class _Recorder:
    """Online targets that remember every reference (or window) the training asked for."""

    def __init__(self, online):
        self.online, self.seen = online, []

    def draw(self, rng, box=None):
        self.seen.append((box, self.online.draw(rng, box)))
        return self.seen[-1][1]


@pytest.mark.parametrize("crop", [0, 32])
def test_online_targets_are_fresh_at_every_step(rainy_pair, crop):
    from rain2avoid.ldgp import rain_mask
    from rain2avoid.pipeline import OnlineTargets
    from rain2avoid.sdrl import Settings, train_image
    rainy = rainy_pair[0]
    rgb = rainy.astype(np.float32) / 255
    mask = rain_mask(rainy).mask
    settings = Settings(target="online", mask="ldgp", guard=False, steps=3, crop=crop, batch=2)
    online = _Recorder(OnlineTargets(rgb, mask, settings))
    train_image(rgb, online, settings)
    assert len(online.seen) == 3 * (1 if crop == 0 else 2)    # one reference per sample per step
    rain = mask > 10
    full = [t for box, t in online.seen if box is None]
    if crop == 0:
        assert not np.array_equal(full[0], full[1])             # two steps, two different targets
        for t in full:                                          # references: input off the rain
            assert np.array_equal(t[~rain], rgb[~rain])
            assert not np.array_equal(t[rain], rgb[rain])
    else:
        assert all(t.shape == (32, 32, 3) and box[1] - box[0] == 32 for box, t in online.seen)
    again = _Recorder(OnlineTargets(rgb, mask, settings))       # same seed, same references
    train_image(rgb, again, settings)
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(online.seen, again.seen))


def test_online_target_trains_and_is_seeded(rainy_pair):
    rainy, clean = rainy_pair
    out = rain2avoid.derain(rainy, target="online", **FAST)
    assert psnr(out, clean) > psnr(rainy, clean) + 1.0
    small = rainy[:48, :64]
    a = rain2avoid.derain_detailed(small, preset="reference", target="online", backbone="fast", steps=4, seed=1)
    assert np.array_equal(a.image, rain2avoid.derain(small, preset="reference", target="online", backbone="fast",
                                                     steps=4, seed=1))
    assert not np.array_equal(a.image, rain2avoid.derain(small, preset="reference", target="online",
                                                         backbone="fast", steps=4, seed=2))
    assert a.targets.shape == (1, 48, 64, 3)        # the mean the online references are drawn around


def test_auto_augment_turns_only_where_the_rain_direction_is_sure():
    from rain2avoid.pipeline import TURN_SUPPORT, training_view
    assert training_view("auto", TURN_SUPPORT) == "turn"
    assert training_view("auto", TURN_SUPPORT - 1) == "mirror"
    assert training_view("auto", 0) == "mirror"
    for fixed in ("mirror", "turn", "none"):
        assert training_view(fixed, 0) == training_view(fixed, 10 * TURN_SUPPORT) == fixed


def test_derain_resolves_auto_augment_per_image():
    # Clear slanted streaks: the direction is sure, training turns (and the result says so).
    # No streaks at all: the mirror. A fixed choice is kept whatever the image.
    from rain2avoid.detect import find_streaks, main_support
    from rain2avoid.pipeline import TURN_SUPPORT, derain_detailed
    from rain2avoid.synth import add_rain, clean_example
    clean = clean_example("coffee", size=(160, 240))
    rainy, _ = add_rain(clean, angle=20, density=0.04, length=20, seed=3)
    assert main_support(find_streaks(rainy)) >= TURN_SUPPORT > main_support(find_streaks(clean)) == 0
    assert derain_detailed(rainy, steps=3).settings.augment == "turn"
    assert derain_detailed(clean, steps=3).settings.augment == "mirror"
    assert derain_detailed(rainy, steps=3, augment="mirror").settings.augment == "mirror"
    assert derain_detailed(rainy, steps=3, mask="ldgp").settings.augment == "turn"


def test_a_network_started_from_a_model_of_other_rainy_images_removes_more_in_few_steps(rainy_pair):
    # The model is trained (self-supervised) on other pictures under other rain; started from
    # it, a few steps on the image remove much more than the same steps from a fresh network.
    from rain2avoid.pipeline import training_data
    from rain2avoid.sdrl import Settings, train_folder
    from rain2avoid.synth import add_rain, clean_example
    rainy, clean = rainy_pair
    others = [add_rain(clean_example(name, size=(96, 128)), angle=a, density=0.04, length=14, seed=s)[0]
              for name, a, s in (("astronaut", 5, 1), ("chelsea", -5, 2))]
    xs = [o.astype(np.float32) / 255 for o in others]
    data = [training_data(x, Settings()) for x in xs]
    model = train_folder(xs, [d.targets for d in data], Settings(steps=150, batch=8, crop=64),
                         weights=[d.weights for d in data])
    tuned = rain2avoid.derain_detailed(rainy, init=model, steps=15)
    fresh = rain2avoid.derain(rainy, steps=15)
    assert tuned.settings.lr == 1e-3 and tuned.settings.backbone == model.settings.backbone
    assert psnr(tuned.image, clean) > psnr(fresh, clean) + 1.0
    assert psnr(tuned.image, clean) > psnr(rainy, clean) + 1.0
    assert rain2avoid.derain_detailed(rainy, init=model, steps=1).settings.steps == 1
    # "high": the network started from the model, averaged with a fresh one trained as "fast" trains
    runs = rain2avoid.pipeline._runs(rain2avoid.pipeline.derain_settings("high", model), model)
    assert [(r.steps, r.lr, r.seed, start is model) for r, start in runs] == [(150, 1e-3, 0, True), (500, 2e-3, 1, False)]
    seen = []
    rain2avoid.derain_detailed(rainy, "high", init=model, steps=3, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(d, 6) for d in range(1, 7)]   # the steps option applies to both networks


def test_the_reference_preset_or_another_backbone_cannot_start_from_a_model(rainy_pair):
    from rain2avoid.sdrl import Settings, train_image
    x = rainy_pair[0].astype(np.float32) / 255
    model = train_image(x, x[None], Settings(steps=1))
    with pytest.raises(ValueError, match="trains from scratch.*fast or high"):
        rain2avoid.derain(rainy_pair[0], preset="reference", init=model)
    with pytest.raises(ValueError, match="'fast' network, not 'unet'"):
        rain2avoid.derain(rainy_pair[0], init=model, backbone="unet")


def test_progress_without_a_stderr_is_silent(rainy_pair, monkeypatch, capsys):
    # Under pythonw (a GUI app embedding the library) sys.stderr is None: progress=True failed
    # in tqdm with "'NoneType' object has no attribute 'write'" once training began.
    import sys
    from rain2avoid.sdrl import Settings, train_image
    from rain2avoid.pipeline import make_targets
    monkeypatch.setattr(sys, "stderr", None)
    out = rain2avoid.derain(rainy_pair[0], progress=True, steps=3)
    assert out.shape == rainy_pair[0].shape
    rgb = rainy_pair[0].astype(np.float32) / 255
    train_image(rgb, make_targets(rgb, np.zeros(rgb.shape[:2], bool), Settings()), Settings(steps=2), progress=True)
    assert capsys.readouterr().out == ""   # nor were the stages said on stdout instead
