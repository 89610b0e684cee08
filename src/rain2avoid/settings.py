"""How the references are made and the network trained: :class:`Settings`, checked field by
field, and the named presets (``PRESETS``; ``FOLDER_PRESETS`` for one network of a folder;
``TUNE_PRESETS`` for a network that starts from a trained model). :mod:`rain2avoid.sdrl`
trains with them and names them too.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .detect import MASKS
from .veil import VEIL_MODES, VEIL_THRESHOLD

__all__ = ["Settings", "PRESETS", "FOLDER_PRESETS", "TUNE_PRESETS", "BACKBONE_NAMES", "TARGETS", "AUGMENTS",
           "resolve_settings"]

BACKBONE_NAMES = ("fast", "unet", "dncnn", "resnet", "restormer", "drsformer")
"""The keys of ``networks.BACKBONES``, here without torch (the command line's --backbone)."""
TARGETS = ("expected", "sampled", "online")
AUGMENTS = ("auto", "mirror", "turn", "none")


@dataclass(frozen=True)
class Settings:
    """How references are made and how the network is trained.

    backbone: network name (see ``networks.BACKBONES``).
    steps: optimiser steps.
    lr: Adam learning rate; ``schedule`` "cosine" decays it to 0, "constant" keeps it.
    batch: samples per step.
    crop: side of the random square crops; 0 trains on the full image.
    refs: number of sampled references (``target="sampled"``).
    sampler: "nss" or "uniform".
    target: "expected" (closed-form mean reference, one target), "sampled"
        (``refs`` references drawn once) or "online" (a fresh reference drawn
        at every step, the reference's online SDR variant).
    mask: "guarded" (finer angle, thin lines only), "ldgp" (the reference mask) or
        "streaks" (every direction and width ``detect.find_streaks`` sees).
    guard: keep only the part of each reference's change that rain can explain.
    halo: pixels within this many px of the mask (outside it) are left out of
        the loss: faint streak edges the mask misses, whose label (keep the
        input) is uncertain. 0 = every pixel counts.
    layer: pixels outside the mask that the rain layer raises by at least this many grey
        levels, in long colourless pieces along the streaks (``layer.unsure_rain``), are
        left out of the loss too: rain the mask missed. 0 = off.
    target_cap: per reference, fade its change out where it exceeds this many times
        the image's median rain increment (0 = off, the default; ``guard.rain_guard``'s
        ``cap``). Whole bright structures far above that increment keep the input
        whatever this is (the guard's per-component test).
    output_cap: per image, undo the output's change where it exceeds this many
        times the image's median rain increment (0 = off; ``guard.rain_guard``).
    only_darken: rain only adds light, so never brighten a pixel.
    augment: how training crops vary: "mirror" (half of them mirrored left-right, so
        rain at +a degrees is also seen at -a), "turn" (half of them turned 180 degrees,
        which keeps every streak's direction), "none", or "auto": per image,
        ``pipeline.derain`` turns where the streak direction is certain and mirrors
        otherwise (``pipeline.training_view``); :func:`train_image` and
        :func:`train_folder` given "auto" mirror, and their model records that.
    flip_tta: average the prediction with the one on the image mirrored (``augment=
        "mirror"``, or an unresolved "auto") or turned 180 degrees (otherwise): a view
        training has seen.
    ensemble: per-image ``derain`` trains this many networks (seeds ``seed``,
        ``seed + 1``, ..., modulo 2**64) and averages their outputs.
    veil: the veil of heavy rain (mist) on the derained image: "auto" takes it
        away where the photo shows one (``veil.clear_veil``: strength at least
        ``veil_threshold``, a near-neutral veil colour (at its most veiled or at its
        darkest pixels), an airlight as bright as the photo's bright parts, a colour
        photo, no building's lattice of windows), "on" always, "off" never. Photos only: videos keep
        their veil.
    veil_threshold: the strength (0 to 1) from which "auto" takes the veil away.
    wide: wide soft (out-of-focus) streaks of large photos: a photo whose shorter side is at
        least twice this many px is also derained on a copy shrunk by a whole factor to a
        shorter side of ``wide`` to ``2 * wide - 1`` px, and the larger of the two removals
        taken (``rain2avoid.wide``), unless the photo or the copy shows a lattice; 0 = off
        (the default: on buildings it can still take window mullions along the rain for
        streaks). Per-image ``derain`` of photos only: not ``apply``, not videos.
    seed: seeds the references, the network's initial weights and the crops (0 to 2**64 - 1).
        The same seed gives the same result on the same machine with the same number of
        torch threads; another thread count sums in another order, and pixels may differ
        by a grey level.

    Every field is checked when the settings are made: a TypeError names a field of the wrong
    type (a bool is no number; numpy's scalars are taken, as plain Python values), a ValueError
    one out of range (``lr`` and the caps must be finite).
    """

    backbone: str = "fast"
    steps: int = 700
    lr: float = 2e-3
    batch: int = 8
    crop: int = 64
    refs: int = 50
    sampler: str = "nss"
    target: str = "expected"
    mask: str = "guarded"
    guard: bool = True
    halo: int = 1
    layer: float = 3.0
    target_cap: float = 0.0
    output_cap: float = 6.0
    schedule: str = "cosine"
    only_darken: bool = True
    augment: str = "auto"
    flip_tta: bool = True
    ensemble: int = 1
    veil: str = "auto"
    veil_threshold: float = VEIL_THRESHOLD
    wide: int = 0
    seed: int = 0

    def __post_init__(self):
        for name, (kind, allowed, ok) in _RULES.items():
            given = getattr(self, name)
            if not _is_kind(given, kind):
                raise TypeError(f"invalid settings: {name} must be {allowed}, got {given!r}")
            value = kind(given)          # numpy scalars become plain Python ones (a model file holds those)
            if not ok(value):
                raise ValueError(f"invalid settings: {name} must be {allowed}, got {given!r}")
            object.__setattr__(self, name, value)


def _one_of(choices) -> tuple[str, Callable]:
    """A choice field's allowed values in words, and their test."""
    return f"one of {', '.join(choices)}", lambda v: v in choices


_RULES = {  # each field of Settings: (its type, its allowed values in words, their test)
    "backbone": (str, *_one_of(sorted(BACKBONE_NAMES))),
    "steps": (int, "a whole number >= 0", lambda v: v >= 0),
    "lr": (float, "a finite number > 0", lambda v: 0 < v < math.inf),
    "batch": (int, "a whole number >= 1", lambda v: v >= 1),
    "crop": (int, "a whole number >= 0 (0 = full image)", lambda v: v >= 0),
    "refs": (int, "a whole number >= 1", lambda v: v >= 1),
    "sampler": (str, *_one_of(("nss", "uniform"))),
    "target": (str, *_one_of(TARGETS)),
    "mask": (str, *_one_of(MASKS)),
    "guard": (bool, "True or False", lambda v: True),
    "halo": (int, "a whole number >= 0 (0 = off)", lambda v: v >= 0),
    "layer": (float, "a finite number >= 0 (0 = off)", lambda v: 0 <= v < math.inf),
    "target_cap": (float, "a finite number >= 0 (0 = off)", lambda v: 0 <= v < math.inf),
    "output_cap": (float, "a finite number >= 0 (0 = off)", lambda v: 0 <= v < math.inf),
    "schedule": (str, *_one_of(("cosine", "constant"))),
    "only_darken": (bool, "True or False", lambda v: True),
    "augment": (str, *_one_of(AUGMENTS)),
    "flip_tta": (bool, "True or False", lambda v: True),
    "ensemble": (int, "a whole number >= 1", lambda v: v >= 1),
    "veil": (str, *_one_of(VEIL_MODES)),
    "veil_threshold": (float, "a number from 0 to 1", lambda v: 0 <= v <= 1),
    "wide": (int, "a whole number >= 0 (0 = off)", lambda v: v >= 0),
    # numpy and torch take any seed up to 2**64 - 1; the CLI and the web service give at most
    # 2**32 - 1, and derain's ensemble adds 1, 2, ... to it.
    "seed": (int, "a whole number from 0 to 2**64 - 1", lambda v: 0 <= v < 2 ** 64),
}


def _is_kind(value, kind: type) -> bool:
    """Whether ``value`` is a ``kind`` (str, bool, int or float): numpy's scalars count, a bool is
    no number, an int is a float too."""
    if kind is str:
        return isinstance(value, str)
    if isinstance(value, (bool, np.bool_)):
        return kind is bool
    return kind is not bool and isinstance(value, numbers.Integral if kind is int else numbers.Real)


PRESETS = {
    "fast": Settings(),
    "high": Settings(ensemble=3),
    "reference": Settings(backbone="unet", steps=5000, lr=1e-3, batch=1, crop=0, refs=50, sampler="nss",
                          target="sampled", mask="ldgp", guard=False, halo=0, layer=0.0, output_cap=0.0,
                          schedule="constant", only_darken=False, flip_tta=False, veil="off", augment="mirror"),
}

FOLDER_PRESETS = {
    "fast": Settings(steps=2000, batch=16, crop=96),
    "high": Settings(steps=6000, batch=16, crop=96),
    "reference": Settings(backbone="unet", steps=4000, lr=1e-3, batch=64, crop=64, refs=50,
                          target="sampled", mask="ldgp", guard=False, halo=0, layer=0.0, output_cap=0.0,
                          schedule="constant", only_darken=False, flip_tta=False, veil="off", augment="mirror"),
}

TUNE_PRESETS = {
    "fast": Settings(steps=150, lr=1e-3),
    "high": Settings(steps=150, lr=1e-3, ensemble=2),
}
"""Per-image settings when the image's network starts from a trained model (``init`` of
:func:`train_image`; ``rain2avoid derain --init``): a network that already removes rain
needs fewer steps, at a lower rate, than one that starts as the identity. ``"high"``
averages it with a second network that starts fresh (``pipeline.derain_detailed`` trains
it as ``PRESETS["fast"]`` does, for ``pipeline.PAIRED_STEPS`` steps; docs/quality.md,
fourteenth round)."""


def resolve_settings(preset: str = "fast", presets: dict | None = None, **overrides) -> Settings:
    """The named preset with ``overrides`` (None values are ignored) applied."""
    presets = PRESETS if presets is None else presets
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(presets)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    names = [f.name for f in dataclasses.fields(Settings)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        hints = [f"{name!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, names, 1))
                 else repr(name) for name in unknown]
        raise TypeError(f"unknown option(s): {', '.join(hints)}; the options are {', '.join(sorted(names))}")
    return dataclasses.replace(presets[preset], **changes)
