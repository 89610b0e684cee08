"""The whole method on one image: mask -> references -> training -> derained image.

``derain(image)`` is the one-liner; :func:`derain_detailed` also returns the
mask, the angle and the references for people who want to look inside.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import cv2
import numpy as np
from tqdm.auto import tqdm

from .detect import CONFIDENT, compute_mask, find_streaks, main_support
from .guard import mask_chroma, rain_guard
from .io import from_float_rgb, to_float_rgb, to_uint8
from .io.pixels import as_image
from .lattice import off_lattice_lines, spectral_rotation
from .layer import MAX_PIXELS, rotation_of_angle, unsure_rain, work_size
from .ldgp import RAIN_LEVEL, rotation_for_angle
from .sdr import ReferenceSampler, expected_reference, sample_references
from .sdrl import TUNE_PRESETS, Model, Settings, check_device, resolve_settings, train_image
from .veil import Veil, find_veil, remove_veil
from .wide import merge_removal, shrink, shrink_factor, shows_lattice

__all__ = ["derain", "derain_detailed", "DerainResult", "compute_mask", "make_targets", "loss_weights",
           "training_data", "missed_rain", "TrainingData", "OnlineTargets", "training_view", "TURN_SUPPORT",
           "texture_only", "MAX_CHROMA", "nothing_to_learn", "derain_settings", "PAIRED_STEPS", "check_device",
           "check_init", "with_init_backbone", "STAGES", "MIN_SIDE"]

TURN_SUPPORT = 12
"""The support of the main streak direction (``detect.main_support``) from which
``augment="auto"`` turns training crops instead of mirroring them (:func:`training_view`)."""

PAIRED_STEPS = 500
"""With a model to start from, ``--preset high`` averages the started network with a fresh
one trained this many steps (:func:`_runs`): 500 steps score as 700 do on Rain100L dev
(32.87 dB; SSIM 0.9373 against 0.9381) in 5.5 s per image instead of 8.0 (docs/quality.md,
fourteenth round)."""

MIN_SIDE = 20
"""An image narrower or lower than this has no rain sought in it (:func:`training_data`), nor
a veil under ``veil="auto"``, whatever the preset (:func:`nothing_to_learn`): a streak must
outlast the mask's 10 px opening twice over to be told from texture, and a veil's dark channel
takes 15 px windows. Thumbnails of rain-free photos (8-16 px) had a fifth of their pixels taken
for rain and changed by 12-19 grey levels on average; from 20 px no rain is found in them."""

MAX_CHROMA = 0.12
"""Where the rain direction is unsure, a mask whose change is more coloured than this
(``guard.mask_chroma``) marks texture, not rain (:func:`texture_only`)."""


@dataclass
class DerainResult:
    """Everything :func:`derain_detailed` computed.

    image: the derained image (same dtype and shape as the input).
    mask: uint8 (H, W) rain mask used (graded 0-255; rain where > 10).
    angle: dominant gradient angle in degrees (0 = vertical streaks).
    targets: float32 (R, H, W, 3) references in [0, 1] the network was trained on; with
        ``target="online"`` (a fresh reference each step) the closed-form mean reference.
    settings: the settings used (``augment`` as :func:`training_view` resolved it).
    seconds: wall time.
    veil: the veil taken away (``rain2avoid.veil.Veil``), or None.
    wide: the factor of the copy also derained for wide soft streaks (``Settings.wide``); 0 where
        none was (the option off, the photo too small, or a lattice in it).
    """

    image: np.ndarray
    mask: np.ndarray
    angle: int
    targets: np.ndarray
    settings: Settings
    seconds: float
    veil: Veil | None = None
    wide: int = 0


class OnlineTargets:
    """A fresh stochastic reference for every training step (``Settings.target = "online"``).

    The reference implementation's online variant: instead of a fixed set of N
    references, every step trains on a new one. The candidates and weights are
    computed once (``sdr.ReferenceSampler``); each :meth:`draw` only samples,
    then applies the rain guard if ``settings.guard``, as :func:`make_targets`
    does for sampled references. ``sdrl`` training asks for one per step
    (a ``sdrl.TargetSampler``).
    """

    def __init__(self, rgb: np.ndarray, mask: np.ndarray, settings: Settings):
        self.scaled = rgb.astype(np.float32) * 255.0
        self.mask = mask
        self.settings = settings
        self.sampler = ReferenceSampler(self.scaled, mask, settings.sampler)

    def draw(self, rng: np.random.Generator, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """A new float32 reference in [0, 1]: (H, W, 3), or its ``box = (y0, y1, x0, x1)`` window."""
        if self.settings.guard:   # the guard looks at the whole image (its typical rain increment)
            ref = _guard_reference(self.scaled, self.sampler.draw(rng), self.mask, self.settings)
            if box is not None:
                ref = ref[box[0]:box[1], box[2]:box[3]]
        else:
            ref = self.sampler.draw(rng, box)
        return (ref / 255.0).astype(np.float32)


def _guard_reference(scaled: np.ndarray, reference: np.ndarray, mask: np.ndarray, settings: Settings) -> np.ndarray:
    """``guard.rain_guard`` on one reference (0-255 scale), with ``settings.target_cap`` as its
    per-pixel cap (0: none)."""
    return rain_guard(scaled, reference, mask, cap=settings.target_cap or None)


def make_targets(rgb: np.ndarray, mask: np.ndarray, settings: Settings) -> np.ndarray | OnlineTargets:
    """Training targets for a float (H, W, 3) image in [0, 1]: (R, H, W, 3) float32.

    ``target="expected"`` gives the closed-form mean reference (R = 1);
    ``"sampled"`` gives ``settings.refs`` stochastic references; ``"online"``
    an :class:`OnlineTargets` that draws a new one at every training step.
    Distances are measured on the 0-255 scale, as in the reference
    implementation. With ``settings.guard`` each reference keeps only the
    change rain can explain (``guard.rain_guard``, with ``settings.target_cap`` as
    its per-pixel cap): texture mistaken for rain falls back to the input.
    """
    if settings.target == "online":
        return OnlineTargets(rgb, mask, settings)
    scaled = rgb.astype(np.float32) * 255.0
    if settings.target == "expected":
        refs = expected_reference(scaled, mask, settings.sampler)[None]
    else:
        refs = sample_references(scaled, mask, settings.refs, settings.sampler, seed=settings.seed)
    if settings.guard:
        refs = np.stack([_guard_reference(scaled, ref, mask, settings) for ref in refs])
    return (refs / 255.0).astype(np.float32)


def loss_weights(mask: np.ndarray, halo: int, threshold: int = RAIN_LEVEL) -> np.ndarray:
    """Per-pixel loss weights for training on references made with ``mask``: float32 (H, W).

    0 on the pixels within ``halo`` px of a rain pixel (a square neighbourhood)
    that are not rain themselves, 1 elsewhere. Their reference keeps the input,
    but many are the faint edges of streaks the mask missed; left out of the
    loss, the network decides them from what it learned on the streaks.
    ``halo=0`` gives all ones.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    if halo < 0:
        raise ValueError(f"halo must be >= 0, got {halo}")
    rain = (mask > threshold).astype(np.uint8)
    if halo == 0:
        return np.ones(mask.shape, np.float32)
    near = cv2.dilate(rain, np.ones((2 * halo + 1, 2 * halo + 1), np.uint8))
    return 1.0 - (near & (1 - rain)).astype(np.float32)


class TrainingData(NamedTuple):
    """What one rainy image brings to training (:func:`training_data`).

    mask: uint8 (H, W), 255 = rain. angle: streak angle (``DerainResult.angle``).
    targets: float32 (R, H, W, 3) references in [0, 1], or :class:`OnlineTargets`.
    weights: float32 (H, W) loss weights.
    support: how surely the image shows one direction of rain (``detect.main_support``;
        0 when it was not searched: the reference mask with a fixed ``augment``).
    """

    mask: np.ndarray
    angle: int
    targets: np.ndarray | OnlineTargets
    weights: np.ndarray
    support: int = 0


def texture_only(rgb: np.ndarray, mask: np.ndarray, support: int, settings: Settings,
                 reference: np.ndarray | None = None) -> bool:
    """Whether ``mask`` (uint8, 255 = rain) of a float (H, W, 3) image in [0, 1] marks
    coloured texture rather than rain, so that nothing should be taken away.

    Only where the rain direction is unsure (``support``, ``detect.main_support``, under
    ``detect.CONFIDENT``), and never for the reference mask (``settings.mask="ldgp"``):
    then the mask's change against the guarded closed-form reference must be
    colourless, as rain's is (``guard.mask_chroma`` at most :data:`MAX_CHROMA`). Orange
    fur under sparse wide rain, whose streaks give too few segments, scores 0.15; the
    masks of the eight rainy images of this project's sets with unsure directions and a
    mask (three real photos, five of heavy rain) 0.008-0.094; colour photos without rain
    0.09-0.65. A grey photo scores 0 and keeps its mask. ``reference``: that guarded
    closed-form reference (float (H, W, 3) in [0, 1]), if the caller has it.
    """
    if settings.mask == "ldgp" or support >= CONFIDENT or not mask.any():
        return False
    if reference is None:
        reference = make_targets(rgb, mask, dataclasses.replace(settings, target="expected", guard=True))[0]
    return mask_chroma(rgb * 255.0, reference * 255.0, mask) > MAX_CHROMA


def training_data(rgb: np.ndarray, settings: Settings) -> TrainingData:
    """Mask, references and loss weights of a float (H, W, 3) image in [0, 1], made
    as ``settings`` says (``sdrl.train_image`` / ``train_folder`` take these two last), and
    how surely it shows one rain direction (for :func:`training_view`). A mask that
    :func:`texture_only` finds to be coloured texture is emptied: the references are then
    the image itself, as is the mask of an image under :data:`MIN_SIDE` on a side (the
    reference's too). Beside the mask's halo, the rain it missed
    (``settings.layer``: :func:`layer.unsure_rain`) is left out of the loss."""
    if min(rgb.shape[:2]) < MIN_SIDE:
        mask = np.zeros(rgb.shape[:2], np.uint8)
        return TrainingData(mask, 0, make_targets(rgb, mask, settings), loss_weights(mask, settings.halo), 0)
    rgb8 = to_uint8(rgb)
    streaks = find_streaks(rgb8) if settings.mask != "ldgp" or settings.augment == "auto" else []
    mask, angle = compute_mask(rgb8, settings.mask, streaks)
    support = main_support(streaks)
    targets = make_targets(rgb, mask, settings)
    reference = targets[0] if settings.target == "expected" and settings.guard else None
    if texture_only(rgb, mask, support, settings, reference):
        mask = np.zeros_like(mask)
        targets = make_targets(rgb, mask, settings)
    weights = loss_weights(mask, settings.halo)
    if settings.layer and mask.any():
        weights[missed_rain(rgb8, mask, angle, settings)] = 0
    return TrainingData(mask, angle, targets, weights, support)


def missed_rain(rgb8: np.ndarray, mask: np.ndarray, angle: int, settings: Settings) -> np.ndarray:
    """Rain the mask missed, bool (H, W): the pixels outside ``mask`` that the rain layer
    takes for rain (:func:`layer.unsure_rain`, from ``settings.layer`` grey levels), less
    those on a lattice's lines that the guarded mask leaves out too
    (:func:`lattice.off_lattice_lines`: window frames along the streaks). A photo of more
    than ``layer.MAX_PIXELS`` is looked at on a copy shrunk to that many pixels."""
    h, w = mask.shape
    size = work_size(h, w, MAX_PIXELS)
    if size is not None:
        small = missed_rain(cv2.resize(rgb8, size, interpolation=cv2.INTER_AREA),
                            cv2.resize(mask, size, interpolation=cv2.INTER_AREA), angle, settings)
        back = cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        return back & (mask <= RAIN_LEVEL)
    rotation = rotation_for_angle(angle) if settings.mask == "ldgp" else rotation_of_angle(angle)
    missed = unsure_rain(rgb8, rotation, settings.layer) & (mask <= RAIN_LEVEL)
    if not missed.any():
        return missed
    kept = off_lattice_lines(rgb8, missed.astype(np.uint8) * 255, (rotation,), spectral_rotation(rgb8))
    return kept > RAIN_LEVEL


def nothing_to_learn(mask: np.ndarray, settings: Settings) -> bool:
    """Whether an image with ``mask`` (uint8, 255 = rain) is returned as it is, untrained.

    With an empty mask every reference is the image itself: a network trained on them
    could only learn to copy it (and take seconds to do so). The reference preset's
    mask (``settings.mask="ldgp"``) still trains, as the reference implementation does,
    but not on an image under :data:`MIN_SIDE` on a side (its U-Net, trained on the whole
    image, cannot train on one of 16 px: its smallest scale is one pixel).
    """
    return min(mask.shape[:2]) < MIN_SIDE or (settings.mask != "ldgp" and not mask.any())


def training_view(augment: str, support: int) -> str:
    """How one image's training crops vary (``Settings.augment``), with ``"auto"`` resolved.

    A 180-degree turn keeps every streak's direction, so the network learns one
    direction of rain and removes it more thoroughly; a mirror shows it two
    (+a and -a degrees), which brakes it where the mask follows texture instead
    of rain. ``"auto"`` turns where the image shows its rain direction surely
    (``support``, ``detect.main_support``, at least :data:`TURN_SUPPORT`) and
    mirrors elsewhere. Other values are returned as they are.
    """
    if augment != "auto":
        return augment
    return "turn" if support >= TURN_SUPPORT else "mirror"


def _runs(settings: Settings, init: Model | None, **options) -> list[tuple[Settings, Model | None]]:
    """The ``settings.ensemble`` networks to train and average: their settings (each its own
    seed) and the model each starts from. With ``init``, the first starts from it and any
    other starts fresh, with the ``"fast"`` preset's rate and :data:`PAIRED_STEPS` steps
    (``options``, the caller's overrides, may change both): ``sdrl.TUNE_PRESETS["high"]``,
    two networks that learned the image differently, which average better than two alike."""
    runs = []
    for k in range(settings.ensemble):
        run = dataclasses.replace(settings, seed=(settings.seed + k) % 2 ** 64)   # the largest seed wraps to 0
        if init is not None and k > 0:
            given = {name: value for name, value in options.items() if value is not None}
            fresh = resolve_settings("fast", **{"steps": PAIRED_STEPS, **given})
            run = dataclasses.replace(run, steps=fresh.steps, lr=fresh.lr)
        runs.append((run, init if k == 0 else None))
    return runs


STAGES = {"rain": "finding the rain and its references", "training": "training",
          "cleaning": "cleaning the whole image"}
"""What :func:`derain_detailed` tells ``on_stage`` (and, with ``progress``, shows) as it goes."""


def _stage(name: str, progress: bool, on_stage: Callable[[str], None] | None, note: str = "") -> None:
    """Tell ``on_stage`` that stage ``name`` (:data:`STAGES`) starts, and say it on stderr with ``progress``
    (training has its own bar)."""
    if on_stage is not None:
        on_stage(name)
    if progress and name != "training":
        tqdm.write(f"{STAGES[name]}{note}...", file=sys.stderr)


def _train_and_clean(rgb: np.ndarray, data: TrainingData, runs: list[tuple[Settings, Model | None]], device: str,
                     progress: bool, on_progress: Callable[[int, int], None] | None,
                     on_stage: Callable[[str], None] | None = None) -> np.ndarray:
    """The average of the outputs of the networks ``runs`` (:func:`_runs`) describes."""
    out = np.zeros_like(rgb)
    total, done = sum(run.steps for run, _ in runs), 0
    for k, (run, init) in enumerate(runs):
        on_step = None
        if on_progress is not None:
            def on_step(step: int, loss: float, done: int = done) -> None:
                on_progress(done + step + 1, total)
        _stage("training", progress, on_stage)
        model = train_image(rgb, data.targets, run, device=device, progress=progress, weights=data.weights,
                            on_step=on_step, init=init)
        _stage("cleaning", progress, on_stage, f" (network {k + 1} of {len(runs)})" if len(runs) > 1 else "")
        out += model.clean(rgb, data.mask) / len(runs)
        done += run.steps
    return out


def _with_wide_rain(rgb: np.ndarray, out: np.ndarray, factor: int, preset: str, device: str, progress: bool,
                    init: Model | None, on_stage: Callable[[str], None] | None, options: dict) -> np.ndarray | None:
    """``out`` with the rain of a copy of ``rgb`` shrunk ``factor`` times taken off too: the same
    method there (its stages told again), then ``wide.merge_removal``; None where the photo shows
    a lattice (``wide.shows_lattice``)."""
    small = shrink(rgb, factor)
    if shows_lattice(rgb, small):
        if progress:
            tqdm.write("wide rain: skipped, the photo shows a lattice (windows, bricks)", file=sys.stderr)
        return None
    if progress:
        tqdm.write(f"wide rain: the same on a copy shrunk {factor}x...", file=sys.stderr)
    small_out = derain_detailed(small, preset, device, progress, init=init, on_stage=on_stage,
                                **{**options, "veil": "off", "wide": 0})
    return merge_removal(rgb, out, small, to_float_rgb(small_out.image))


def derain_detailed(image: np.ndarray, preset: str = "fast", device: str = "cpu", progress: bool = False,
                    on_progress: Callable[[int, int], None] | None = None, init: Model | None = None,
                    on_stage: Callable[[str], None] | None = None, **options) -> DerainResult:
    """Remove rain from one image, training a network on it. See :func:`derain`.

    An image in which no rain is found (an empty mask) trains nothing: it comes back as
    it is, its veil aside (:func:`nothing_to_learn`). An image under :data:`MIN_SIDE` on a
    side comes back as it is (but under ``veil="on"``).

    ``on_progress(done, total)``, if given, is called after every training step
    (``total`` counts the steps of every network of the ensemble). ``on_stage(name)``, if
    given, is called as each stage starts: ``"rain"``, then ``"training"`` and ``"cleaning"``
    for each network (:data:`STAGES`); finding the rain takes most of a large photo's time
    and has no steps to count. With ``progress`` the stages are also said on stderr (where
    there is one: not under ``pythonw``, whose ``sys.stderr`` is None).
    """
    start = time.perf_counter()
    progress = progress and sys.stderr is not None
    check_device(device)
    for name, callback in (("on_progress", on_progress), ("on_stage", on_stage)):
        if callback is not None and not callable(callback):
            raise TypeError(f"{name} must be a function (or None), got {type(callback).__name__}")
    settings = derain_settings(preset, init, **options)
    image = as_image(image)
    rgb = to_float_rgb(image)
    _stage("rain", progress, on_stage)
    data = training_data(rgb, settings)
    settings = dataclasses.replace(settings, augment=training_view(settings.augment, data.support))
    runs = _runs(settings, init, **options)
    if nothing_to_learn(data.mask, settings):
        out = rgb.copy()
        if on_progress is not None:
            total = sum(run.steps for run, _ in runs)
            on_progress(total, total)
    else:
        out = _train_and_clean(rgb, data, runs, device, progress, on_progress, on_stage)
    # The veil as the full-size pass's output shows it: taking wide streaks off lowers the dark channel.
    # A thumbnail's veil is not sought either (MIN_SIDE): its dark channel's 15 px window fills it.
    small = settings.veil == "auto" and min(rgb.shape[:2]) < MIN_SIDE
    veil = None if small else find_veil(out, settings.veil, settings.veil_threshold)
    factor = shrink_factor(rgb.shape, settings.wide)
    merged = _with_wide_rain(rgb, out, factor, preset, device, progress, init, on_stage, options) if factor else None
    if merged is None:
        factor = 0
    else:
        out = merged
    if veil is not None:
        out = remove_veil(out, veil)
    targets = data.targets
    if isinstance(targets, OnlineTargets):   # no fixed set: report the mean they are drawn around
        targets = make_targets(rgb, data.mask, dataclasses.replace(settings, target="expected"))
    return DerainResult(from_float_rgb(out, like=image), data.mask, data.angle, targets, settings,
                        time.perf_counter() - start, veil, factor)


def derain_settings(preset: str = "fast", init: Model | None = None, **options) -> Settings:
    """The settings :func:`derain_detailed` trains with: the ``preset`` with ``options``; for a
    network that starts from ``init``, ``sdrl.TUNE_PRESETS``'s (fewer steps at a lower rate)
    with ``init``'s backbone unless ``options`` name one."""
    if init is None:
        return resolve_settings(preset, **options)
    check_init(init)
    if preset not in TUNE_PRESETS:
        raise ValueError(f"preset {preset!r} trains from scratch; starting from a trained model works with "
                         f"{' or '.join(TUNE_PRESETS)}")
    return resolve_settings(preset, TUNE_PRESETS, **with_init_backbone(init, options))


def with_init_backbone(init: Model, options: dict) -> dict:
    """``options`` (:class:`~rain2avoid.sdrl.Settings` fields) with the backbone of ``init``, the model
    a network starts from; ValueError if they name another backbone."""
    backbone = init.settings.backbone
    if options.get("backbone") not in (None, backbone):
        raise ValueError(f"the model to start from is a {backbone!r} network, not {options['backbone']!r}: "
                         f"leave the backbone unset or set it to {backbone!r}")
    return {**options, "backbone": backbone}


def check_init(init) -> None:
    """Raise a TypeError unless ``init`` is None or a :class:`~rain2avoid.sdrl.Model`."""
    if init is not None and not isinstance(init, Model):
        raise TypeError(f"init must be a Model, got {type(init).__name__}: load a model file with "
                        "rain2avoid.load_model(path)")


def derain(image: np.ndarray, preset: str = "fast", device: str = "cpu", progress: bool = False,
           init: Model | None = None, **options) -> np.ndarray:
    """Remove rain streaks from one image; no training data needed.

    Args:
        image: (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA array; uint8, uint16 or
            float in [0, 1] (a float image outside it, with NaN or infinite pixels, or
            without pixels raises ValueError). Alpha is passed through unchanged. A PIL
            image is taken as its grey, RGB or RGBA array (a palette or CMYK image as
            RGB, as ``read_image`` reads such files); the result has that array's shape.
        preset: "fast" (default, seconds per image), "high" (three networks
            averaged: 3x slower, a little better) or "reference" (the original
            method's settings: slow).
        device: "cpu" or "cuda".
        progress: show progress on stderr: each stage (:data:`STAGES`), and a bar for the training steps.
        init: a ``Model`` trained on other rainy images (``rain2avoid train``, ``load_model``)
            for the network to start from, instead of a fresh network: the preset's
            settings then come from ``sdrl.TUNE_PRESETS``. "fast": 150 steps instead of
            700, about 3x faster (1.7 s against 5.8 s per 480x320 image), nearly as good;
            "high": that network averaged with a fresh one of :data:`PAIRED_STEPS` steps
            (better than the default and as good as three fresh networks, in less time;
            docs/quality.md, fourteenth round).
        **options: any :class:`rain2avoid.sdrl.Settings` field to override
            (``steps``, ``backbone``, ``seed``, ``target``, ...); ``target="online"``
            trains on a fresh stochastic reference at every step.

    Returns:
        The derained image, same shape and dtype as ``image``.

    Example:
        >>> from rain2avoid import derain, read_image, write_image
        >>> write_image("clean.png", derain(read_image("rainy.png")))
    """
    return derain_detailed(image, preset, device, progress, init=init, **options).image
