
import re

import numpy as np
import pytest
import torch

from rain2avoid.sdrl import (
    PRESETS,
    Model,
    ModelFileError,
    Settings,
    load_model,
    resolve_settings,
    train_folder,
    train_image,
)


def tiny_settings(**kw):
    return Settings(**{"steps": 30, "crop": 32, "batch": 4, **kw})


def test_training_lowers_loss(rainy_pair):
    rainy, clean = rainy_pair
    x = rainy.astype(np.float32) / 255
    target = clean[None].astype(np.float32) / 255   # any fixed target: the loss must fall
    losses = []
    train_image(x, target, tiny_settings(steps=60), on_step=lambda s, l: losses.append(l))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_same_seed_same_model(rainy_pair):
    x = rainy_pair[0].astype(np.float32) / 255
    t = x[None] * 0.9
    a = train_image(x, t, tiny_settings(seed=3)).predict(x)
    b = train_image(x, t, tiny_settings(seed=3)).predict(x)
    c = train_image(x, t, tiny_settings(seed=4)).predict(x)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_save_load_round_trip(tmp_path, rainy_pair):
    x = rainy_pair[0].astype(np.float32) / 255
    model = train_folder([x, x[::-1].copy()], [x[None] * 0.9, x[::-1][None] * 0.9], tiny_settings())
    path = tmp_path / "m.pt"
    model.save(path)
    loaded = load_model(path)
    assert loaded.settings == model.settings
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]   # no temp file left


@pytest.mark.parametrize("content", [b"", b"not a model", b"PK\x03\x04garbage" * 10])
def test_damaged_model_file(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="bad.pt"):
        load_model(path)


def test_foreign_and_malicious_files(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ModelFileError, match="not a rain2avoid model"):
        load_model(foreign)

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "rain2avoid-model", "x": Evil()}, evil, pickle_protocol=2)
    assert not marker.exists()
    with pytest.raises(ModelFileError):
        load_model(evil)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="no such"):
        load_model(tmp_path / "missing.pt")


def test_tiled_prediction_has_no_seams(rainy_pair):
    x = np.tile(rainy_pair[0], (2, 2, 1)).astype(np.float32) / 255    # 192 x 256
    model = train_image(x, x[None] * 0.8, tiny_settings(steps=10))
    whole = model.predict(x, tile=4096)
    tiled = model.predict(x, tile=48, overlap=32)
    assert np.abs(whole - tiled).max() < 1e-5


@pytest.mark.parametrize("backbone", ["unet", "resnet"])
def test_other_backbones_train(backbone, rainy_pair):
    x = rainy_pair[0][:64, :64].astype(np.float32) / 255
    model = train_image(x, x[None], tiny_settings(backbone=backbone, steps=2, batch=2))
    assert model.predict(x).shape == x.shape


def test_presets_and_overrides():
    ref = PRESETS["reference"]
    assert (ref.backbone, ref.steps, ref.lr, ref.batch, ref.crop, ref.refs, ref.sampler) == \
        ("unet", 5000, 1e-3, 1, 0, 50, "nss")
    assert resolve_settings("fast", steps=7, seed=None).steps == 7
    with pytest.raises(ValueError, match="preset"):
        resolve_settings("turbo")
    with pytest.raises(TypeError, match="colour"):
        resolve_settings("fast", colour=1)
    with pytest.raises(ValueError, match="backbone"):
        Settings(backbone="vgg")


def test_full_image_training_cycles_references(rainy_pair):
    x = rainy_pair[0][:32, :32].astype(np.float32) / 255
    refs = np.stack([x * 0.5, x * 0.6, x * 0.7])
    model = train_image(x, refs, Settings(steps=6, crop=0, batch=1, backbone="fast", schedule="constant"))
    assert isinstance(model, Model)


def test_zero_loss_weight_pixels_do_not_pull_the_output(rainy_pair):
    # Target: darken the left half, keep the right. With the left half weighted 0 the
    # network (which starts as the identity) only sees "keep the input"; unweighted it darkens.
    x = rainy_pair[0].astype(np.float32) / 255
    t = x.copy()
    t[:, : x.shape[1] // 2] *= 0.5
    w = np.ones(x.shape[:2], np.float32)
    w[:, : x.shape[1] // 2] = 0
    left = np.s_[:, : x.shape[1] // 2]
    plain = train_image(x, t[None], tiny_settings(steps=60)).predict(x)
    weighted = train_image(x, t[None], tiny_settings(steps=60), weights=w).predict(x)
    moved_plain = np.abs(plain[left] - x[left]).mean()
    moved_weighted = np.abs(weighted[left] - x[left]).mean()
    assert moved_plain > 0.25 * (0.5 * x[left].mean())   # the target asks for 0.5 * x
    assert moved_weighted < 0.2 * moved_plain


def test_weight_maps_are_checked(rainy_pair):
    x = rainy_pair[0].astype(np.float32) / 255
    with pytest.raises(ValueError, match="weight map shape"):
        train_image(x, x[None], tiny_settings(steps=1), weights=np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="1 weight maps for 2 images"):
        train_folder([x, x], [x[None], x[None]], tiny_settings(steps=1), weights=[np.ones(x.shape[:2])])


class _DimAndBlackSquare(torch.nn.Module):
    """Takes 0.01 off every pixel (a plausible rain increment) and blacks out a square."""

    def forward(self, x):
        y = x - 0.01
        y[..., 10:40, 10:40] = 0
        return y


def test_apply_caps_changes_like_derain(rainy_pair):
    # Changes far above the image's typical rain increment are undone; apply (no mask
    # given) computes the same mask that derain passes in.
    from rain2avoid.detect import compute_mask
    rainy = rainy_pair[0]
    x = rainy.astype(np.float32) / 255
    capped = Model(_DimAndBlackSquare(), Settings(output_cap=6.0, flip_tta=False))
    uncapped = Model(_DimAndBlackSquare(), Settings(output_cap=0.0, flip_tta=False))
    a, b = capped.clean(x), uncapped.clean(x)
    assert np.array_equal(a, capped.clean(x, compute_mask(rainy, "guarded").mask))
    square, bright = np.s_[10:40, 10:40], x.min(axis=2) > 0.2
    assert np.all(b[square] == 0)
    assert np.allclose(a[square][bright[square]], x[square][bright[square]], atol=1e-6)  # put back
    assert np.allclose(a[50:], b[50:], atol=0.003)                                    # kept
    assert np.array_equal(capped.apply(rainy), np.round(a * 255).astype(np.uint8))


@pytest.mark.parametrize("augment, view", [("mirror", lambda a: a.flip(-1)),
                                           ("turn", lambda a: a.flip((-2, -1)))])
def test_training_crops_are_mirrored_or_turned(augment, view):
    # Crops as large as the image: every sample is the image itself or its one view, never another.
    from rain2avoid.sdrl import _Samples
    x = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
    samples = _Samples([x], [x[None] * 0.5], Settings(crop=16, batch=32, augment=augment))
    inputs, targets, _ = samples.batch()
    plain, seen = torch.from_numpy(x).permute(2, 0, 1), []
    for a, t in zip(inputs, targets):
        assert torch.equal(t, a * 0.5)
        seen.append("plain" if torch.equal(a, plain) else "view" if torch.equal(a, view(plain)) else "other")
    assert {"plain", "view"} == set(seen)
    none = _Samples([x], [x[None]], Settings(crop=16, batch=32, augment="none")).batch()[0]
    assert all(torch.equal(a, plain) for a in none)
    with pytest.raises(ValueError, match="augment must be one of auto, mirror, turn, none"):
        Settings(augment="rotate")


class _FromUpperLeft(torch.nn.Module):
    """Not symmetric: each pixel takes the value of its upper-left neighbour (edges repeated)."""

    def forward(self, x):
        return torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")[..., :-2, :-2]


@pytest.mark.parametrize("augment, dy, dx", [("mirror", -1, 1), ("turn", 1, 1), ("auto", -1, 1)])
def test_test_time_average_uses_the_training_view(augment, dy, dx):
    # Seen mirrored, "from the upper left" becomes "from the upper right"; turned, "from the lower right".
    # "auto" is resolved per image by the pipeline; a model that still holds it mirrors.
    x = np.random.default_rng(1).random((9, 11, 3)).astype(np.float32)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    def shifted(sy, sx):
        return padded[1 + sy:10 + sy, 1 + sx:12 + sx]
    model = Model(_FromUpperLeft(), Settings(augment=augment, output_cap=0.0, only_darken=False))
    np.testing.assert_allclose(model.predict(x), (shifted(-1, -1) + shifted(dy, dx)) / 2, atol=1e-6)
    plain = Model(_FromUpperLeft(), Settings(augment=augment, flip_tta=False))
    np.testing.assert_allclose(plain.predict(x), shifted(-1, -1), atol=1e-6)


def test_training_on_a_folder_mirrors_when_augment_is_auto():
    # "auto" is a per-image choice: one network for many images mirrors, and its model says so.
    from rain2avoid.sdrl import FOLDER_PRESETS, PRESETS, train_folder, train_image
    x = np.random.default_rng(2).random((24, 32, 3)).astype(np.float32)
    assert PRESETS["fast"].augment == "auto"
    assert PRESETS["reference"].augment == FOLDER_PRESETS["reference"].augment == "mirror"
    assert train_image(x, x[None], Settings(steps=2, crop=16)).settings.augment == "mirror"
    assert train_folder([x, x], [x[None]] * 2, Settings(steps=2, crop=16)).settings.augment == "mirror"
    assert train_image(x, x[None], Settings(steps=2, crop=16, augment="turn")).settings.augment == "turn"


def test_training_can_start_from_a_trained_model_and_leaves_it_as_it_is(rainy_pair):
    x = rainy_pair[0].astype(np.float32) / 255
    first = train_image(x, x[None] * 0.8, tiny_settings(steps=60))
    before = {k: v.clone() for k, v in first.net.state_dict().items()}
    fresh = train_image(x, x[None] * 0.8, tiny_settings(steps=2, lr=1e-4))
    tuned = train_image(x, x[None] * 0.8, tiny_settings(steps=2, lr=1e-4), init=first)
    target = x * 0.8
    # two small steps from the trained network stay where it was; a fresh one is still the identity
    assert np.abs(tuned.predict(x) - first.predict(x)).mean() < 0.003
    assert np.abs(tuned.predict(x) - target).mean() < 0.5 * np.abs(fresh.predict(x) - target).mean()
    assert all(torch.equal(v, first.net.state_dict()[k]) for k, v in before.items())   # init untouched


def test_starting_from_a_model_of_another_backbone_is_refused(rainy_pair):
    x = rainy_pair[0].astype(np.float32) / 255
    first = train_image(x, x[None], tiny_settings(steps=1))
    with pytest.raises(ValueError, match="'fast' network.*'unet'"):
        train_image(x, x[None], tiny_settings(steps=1, backbone="unet"), init=first)


# --- threads, divergence, validation ------------------------------------------------------------------------------

def _small(seed=0):
    return np.random.default_rng(seed).random((24, 32, 3), dtype=np.float32)


def _fresh_weights(seed):
    x = _small()
    return [p.detach().clone() for p in train_image(x, x[None], Settings(steps=0, seed=seed)).net.parameters()]


@pytest.mark.parametrize("backbone", ["fast", "unet", "dncnn", "resnet", "restormer", "drsformer"])
def test_a_fresh_network_is_the_one_torch_manual_seed_gives(backbone):
    """Drawn from a generator of its own, every backbone's first weights are still those of
    torch.manual_seed(seed): no result measured before changes."""
    from rain2avoid.networks import build_network
    from rain2avoid.sdrl import _new_network
    torch.manual_seed(5)
    expected = build_network(backbone).state_dict()
    torch.manual_seed(42)
    state = torch.get_rng_state()
    got = _new_network(Settings(backbone=backbone, seed=5)).state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert torch.equal(torch.get_rng_state(), state)   # the global generator is neither read nor moved


def test_with_torch_before_2_2_a_network_is_built_from_the_seeded_global_generator(monkeypatch):
    import rain2avoid.sdrl as sdrl
    expected = _fresh_weights(9)
    monkeypatch.setattr(sdrl, "_INITIALISERS_TAKE_A_GENERATOR", False)   # nn.init without generator=
    torch.manual_seed(42)
    state = torch.get_rng_state()
    assert all(torch.equal(a, b) for a, b in zip(_fresh_weights(9), expected))
    assert torch.equal(torch.get_rng_state(), state)


def test_torch_random_builtins_draw_from_the_build_s_generator():
    from rain2avoid.sdrl import _DrawingFrom
    torch.manual_seed(3)
    expected = [torch.randn(4), torch.rand(2), torch.randint(0, 9, (3,)), torch.empty(3).normal_()]
    torch.manual_seed(42)
    state = torch.get_rng_state()
    with _DrawingFrom(torch.Generator().manual_seed(3)):
        got = [torch.randn(4), torch.rand(2), torch.randint(0, 9, (3,)), torch.empty(3).normal_()]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert torch.equal(torch.get_rng_state(), state)


def test_another_thread_drawing_from_torch_changes_neither_the_seeds_weights_nor_its_stream():
    import threading
    alone = _fresh_weights(3)
    stop, drawn = threading.Event(), []

    def other():   # another library in the process: seeded, drawing all the while
        torch.manual_seed(12345)
        while not stop.is_set():
            drawn.append(torch.rand(8))
    thread = threading.Thread(target=other)
    thread.start()
    try:
        builds = [_fresh_weights(3) for _ in range(10)]
    finally:
        stop.set()
        thread.join()
    assert all(all(torch.equal(a, b) for a, b in zip(weights, alone)) for weights in builds)
    torch.manual_seed(12345)   # the other thread's stream, drawn again without any build beside it
    assert all(torch.equal(torch.rand(8), x) for x in drawn)


def test_threads_building_networks_at_once_get_their_own_seeds_weights():
    import threading
    alone = {seed: _fresh_weights(seed) for seed in (0, 1)}
    torch.manual_seed(42)
    state = torch.get_rng_state()
    wrong = 0
    for _ in range(20):
        start, got = threading.Barrier(2), {}

        def build(seed):
            start.wait()
            got[seed] = _fresh_weights(seed)
        threads = [threading.Thread(target=build, args=(seed,)) for seed in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wrong += sum(not all(torch.equal(a, b) for a, b in zip(got[s], alone[s])) for s in (0, 1))
    assert wrong == 0
    assert torch.equal(torch.get_rng_state(), state)   # the caller's random state is left as it was


def test_loading_a_model_leaves_the_random_state_as_it_was(tmp_path):
    x = _small()
    train_image(x, x[None], Settings(steps=1, crop=16)).save(tmp_path / "m.pt")
    torch.manual_seed(42)
    state = torch.get_rng_state()
    load_model(tmp_path / "m.pt")
    assert torch.equal(torch.get_rng_state(), state)


def test_a_diverged_training_is_an_error_not_a_black_image(tmp_path):
    x = _small()
    with pytest.raises(ValueError, match="training diverged.*lower the learning rate"):
        train_image(x, x[None] * 0.8, Settings(steps=5, crop=16, lr=1e6))

    class NaNs(torch.nn.Module):
        def forward(self, t):
            return t * float("nan")
    with pytest.raises(ValueError, match="not finite"):
        Model(NaNs(), Settings()).predict(x)

    model = train_image(x, x[None], Settings(steps=1, crop=16))
    with torch.no_grad():
        next(model.net.parameters()).fill_(float("nan"))
    model.save(tmp_path / "nan.pt")
    with pytest.raises(ModelFileError, match="nan.pt: the model's weights are not finite"):
        load_model(tmp_path / "nan.pt")


@pytest.mark.parametrize("field, value, error", [
    ("seed", -1, ValueError), ("seed", 2 ** 64, ValueError), ("seed", "a", TypeError), ("seed", 1.0, TypeError),
    ("steps", 2.5, TypeError), ("steps", "5", TypeError), ("steps", True, TypeError), ("steps", -1, ValueError),
    ("batch", 2.5, TypeError), ("crop", 3.5, TypeError), ("halo", 1.5, TypeError), ("ensemble", 2.5, TypeError),
    ("refs", 1.5, TypeError), ("guard", "no", TypeError), ("flip_tta", 1, TypeError), ("veil", True, TypeError),
    ("veil_threshold", float("nan"), ValueError), ("veil_threshold", -1, ValueError), ("lr", float("inf"), ValueError),
    ("lr", float("nan"), ValueError), ("lr", 0, ValueError), ("lr", "x", TypeError),
    ("output_cap", float("nan"), ValueError), ("target_cap", -1, ValueError), ("backbone", None, TypeError),
])
def test_settings_name_the_bad_field_its_value_and_what_is_allowed(field, value, error):
    with pytest.raises(error, match=rf"^invalid settings: {field} must be .+, got {re.escape(repr(value))}$"):
        Settings(**{field: value})


def test_settings_take_numpy_scalars_as_plain_values(tmp_path):
    s = Settings(steps=np.int64(1), crop=np.int32(16), lr=1, seed=np.uint32(2 ** 32 - 1), guard=np.bool_(False),
                 veil_threshold=np.float64(0.5), augment="mirror")
    assert s == Settings(steps=1, crop=16, lr=1.0, seed=2 ** 32 - 1, guard=False, veil_threshold=0.5, augment="mirror")
    assert [type(v) for v in (s.steps, s.lr, s.seed, s.guard)] == [int, float, int, bool]
    x = _small()
    train_image(x, x[None], s).save(tmp_path / "m.pt")    # a model file holds plain values only
    assert load_model(tmp_path / "m.pt").settings == s
    assert Settings(seed=2 ** 64 - 1).seed == 2 ** 64 - 1     # derain's ensemble adds 1, 2 to a seed


def test_saving_a_model_to_a_folder_says_so(tmp_path):
    from rain2avoid.io import ImageWriteError
    x = _small()
    with pytest.raises(ImageWriteError, match="it is a folder"):
        train_image(x, x[None], Settings(steps=0)).save(tmp_path)


@pytest.mark.parametrize("inputs, targets, message", [
    ([_small(), _small(1)], [_small()[None]], "2 images"),                               # one target for two
    ([_small()[:10]], [_small()[None]], r"image 0: expected float \(R, 10, 32, 3\) targets"),
    ([_small(), _small()], [_small()[None], _small()[None, :, :16]], "image 1: expected float"),
    ([_small()], [_small()], r"targets .* got float32 of shape \(24, 32, 3\)"),            # no R axis
    ([(_small() * 255).astype(np.uint8)], [_small()[None]], "image 0: expected a float .* got uint8"),
    ([_small() * 255], [_small()[None]], r"image 0: input pixels must be finite and in \[0, 1\]"),
    ([np.full((24, 32, 3), np.nan, np.float32)], [_small()[None]], "finite"),
    ([_small()[..., 0]], [_small()[None]], r"image 0: expected a float \(H, W, 3\) input"),
    ([_small()], [_small()[None] * 255], r"image 0: target pixels must be finite and in \[0, 1\].*divide"),
])
def test_train_folder_refuses_inputs_and_targets_that_do_not_fit(inputs, targets, message):
    with pytest.raises(ValueError, match=message):
        train_folder(inputs, targets, Settings(steps=1, crop=16))


def test_train_folder_wants_settings():
    x = _small()
    with pytest.raises(TypeError, match="settings must be a rain2avoid.Settings.*got dict"):
        train_folder([x], [x[None]], {"steps": 5})


def test_adam_takes_torch_optim_adams_steps():
    """sdrl._Adam (all tensors at once, imports nothing) against torch.optim.Adam, whose first
    use imports torch._dynamo: the same weights after 30 steps, to float rounding."""
    import copy
    from rain2avoid.sdrl import _Adam
    torch.manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    theirs, start = copy.deepcopy(ours), copy.deepcopy(ours)
    a, b = _Adam(ours.parameters()), torch.optim.Adam(theirs.parameters(), lr=2e-3)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    for _ in range(30):
        for net, step in ((ours, lambda: a.step(2e-3)), (theirs, b.step)):
            net.zero_grad()
            ((net(x) - 0.5) ** 2).mean().backward()
            step()
    for p, q, p0 in zip(ours.parameters(), theirs.parameters(), start.parameters()):
        assert (p - p0).abs().max() > 0.01                  # 30 steps of 2e-3 moved every weight
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7)
