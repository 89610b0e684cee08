"""Stage 3, SDRL: train a network to map the rainy image to its derained references.

Three ways (README, "How it works", step 3):

* per image: :func:`train_image` trains a fresh network on one image's references;
* per folder: :func:`train_folder` trains one network on random crops of many
  images and their references, saved with :meth:`Model.save` and applied to new
  images (no references needed) with :meth:`Model.apply`;
* both: either can start from a trained model (``init``) instead of a fresh network;
  ``TUNE_PRESETS`` are the per-image settings for that (fewer steps, a lower rate).

Settings are plain frozen dataclasses, checked field by field, in
:mod:`rain2avoid.settings` (named here too); ``PRESETS`` holds the named ones,
``"reference"`` being the faithful reproduction of the original scripts.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math
import os
import sys
import threading
from pathlib import Path
from typing import Callable, Protocol, Sequence, Union

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from tqdm.auto import tqdm

from .io import from_float_rgb, to_float_rgb, to_uint8
from .io.pixels import as_image
from .detect import compute_mask
from .guard import rain_guard
from .veil import clear_veil
from .networks import build_network
from .settings import FOLDER_PRESETS, PRESETS, TARGETS, TUNE_PRESETS, Settings, resolve_settings

__all__ = [
    "Settings", "PRESETS", "FOLDER_PRESETS", "TUNE_PRESETS", "TARGETS", "TargetSampler", "resolve_settings", "Model",
    "ModelFileError", "train_image", "train_folder", "train_stream", "load_model",
]

_FORMAT = "rain2avoid-model"
_FORMAT_VERSION = 1


class TargetSampler(Protocol):
    """Training targets drawn afresh at every step (``Settings.target = "online"``), e.g.
    ``pipeline.OnlineTargets``: ``draw(rng)`` gives a float32 (H, W, 3) reference in [0, 1];
    ``draw(rng, (y0, y1, x0, x1))`` only that window of one."""

    def draw(self, rng: np.random.Generator, box: tuple[int, int, int, int] | None = None) -> np.ndarray: ...




def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) float array -> (N, 3, H, W) float32 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return t.reshape(-1, *t.shape[-3:]).permute(0, 3, 1, 2)


Targets = Union[np.ndarray, TargetSampler]


def _flip(t: torch.Tensor, augment: str) -> torch.Tensor:
    """``t`` (..., H, W) mirrored left-right for ``augment="mirror"`` (and ``"auto"``, which
    only the per-image pipeline resolves), else turned 180 degrees (a turn keeps every
    streak's direction; a mirror turns +a degrees into -a)."""
    return t.flip(-1) if augment in ("mirror", "auto") else t.flip((-2, -1))


def _flip_hwc(a: np.ndarray, augment: str) -> np.ndarray:
    """:func:`_flip` of an (..., H, W, C) array (a view)."""
    return a[..., ::-1, :] if augment in ("mirror", "auto") else a[..., ::-1, ::-1, :]


def _batch(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """(H, W, C) arrays -> one (N, C, H, W) float32 tensor in channels-last memory, as training
    uses it (stacked once, in numpy: no per-crop torch calls, no second copy; a whole
    contiguous float32 image is not copied at all)."""
    one = arrays[0] if len(arrays) == 1 else None
    if one is not None and one.dtype == np.float32 and one.flags.c_contiguous:
        return torch.from_numpy(one[None]).permute(0, 3, 1, 2)
    return torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False)).permute(0, 3, 1, 2)


class _Samples:
    """Draws training batches of (rainy, reference, loss weight) from one or more images.

    Each image's targets are a fixed stack of references or a :class:`TargetSampler`,
    which gives a fresh one (or a crop of one) whenever asked, from its own generator
    seeded with ``settings.seed``. Images are kept as (H, W, C) arrays and batches are
    cut and stacked in numpy: a step's batch costs about 0.4 ms instead of 0.75.
    """

    def __init__(self, inputs: Sequence[np.ndarray], targets: Sequence[Targets], settings: Settings,
                 weights: Sequence[np.ndarray] | None = None):
        self.inputs, self.targets, self.weights = [], [], []
        if weights is None:
            weights = [None] * len(inputs)
        for x, t, w in zip(inputs, targets, weights):
            self.add(x, t, w)
        self.s = settings
        self.rng = np.random.default_rng(settings.seed)
        self.reference_rng = np.random.default_rng(settings.seed)      # online references
        self.step = 0

    def _target(self, i: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """(h, w, 3): a reference of image ``i`` (its ``box`` window): a fresh draw from a
        sampler, else one of its fixed references, in turn for full images, at random for crops."""
        t = self.targets[i]
        if hasattr(t, "draw"):
            return np.asarray(t.draw(self.reference_rng, box), np.float32)
        if box is None:
            k = self.step % t.shape[0]
            self.step += 1
            return t[k]
        y0, y1, x0, x1 = box
        return t[int(self.rng.integers(t.shape[0])), y0:y1, x0:x1]

    def add(self, x: np.ndarray, t: Targets, w: np.ndarray | None = None) -> None:
        """One more image to draw from (float32 arrays are shared, not copied)."""
        if w is None:
            w = np.ones(x.shape[:2], np.float32)
        self.inputs.append(np.asarray(x, np.float32))                                     # (H, W, 3)
        self.targets.append(t if hasattr(t, "draw") else np.asarray(t, np.float32).reshape(-1, *np.shape(x)))
        self.weights.append(np.asarray(w, np.float32)[..., None])                         # (H, W, 1)

    def drop_oldest(self) -> None:
        for images in (self.inputs, self.targets, self.weights):
            images.pop(0)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rainy, reference, weight): (N, 3, h, w), (N, 3, h, w), (N, 1, h, w) channels-last tensors."""
        s, rng = self.s, self.rng
        if s.crop == 0:  # full image, batch 1, cycling through the references in order
            i = int(rng.integers(len(self.inputs)))
            return tuple(_batch([a]) for a in (self.inputs[i], self._target(i), self.weights[i]))
        crops = []
        for _ in range(s.batch):
            i = int(rng.integers(len(self.inputs)))
            x, w = self.inputs[i], self.weights[i]
            h, wd = x.shape[:2]
            ch, cw = min(s.crop, h), min(s.crop, wd)
            y0, x0 = int(rng.integers(h - ch + 1)), int(rng.integers(wd - cw + 1))
            window = np.s_[y0:y0 + ch, x0:x0 + cw]
            crop = [x[window], self._target(i, (y0, y0 + ch, x0, x0 + cw)), w[window]]
            if rng.random() < 0.5 and s.augment != "none":
                crop = [_flip_hwc(a, s.augment) for a in crop]
            crops.append(crop)
        if len({c[0].shape for c in crops}) > 1:  # images smaller than the crop: one per batch
            return tuple(_batch([a]) for a in crops[0])
        return tuple(_batch(a) for a in zip(*crops))


class _Adam:
    """Adam (Kingma and Ba, 2015) with torch.optim.Adam's defaults and update rule.

    Written out because the first ``torch.optim`` optimizer of a process imports
    ``torch._dynamo`` (about 0.9 s here), longer than a whole default training run's
    share of the time budget. The learning rate is passed to each step.
    """

    def __init__(self, params, betas=(0.9, 0.999), eps=1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.betas, self.eps, self.t = betas, eps, 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        have = [(p, m, v) for p, m, v in zip(self.params, self.m, self.v) if p.grad is not None]
        if not have:
            return
        params, m, v = (list(a) for a in zip(*have))
        grads = [p.grad for p in params]
        # One call per operation for all tensors: the same arithmetic as a loop over them.
        torch._foreach_mul_(m, b1)
        torch._foreach_add_(m, grads, alpha=1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denominators = torch._foreach_div(v, c2)
        torch._foreach_sqrt_(denominators)
        torch._foreach_add_(denominators, self.eps)
        torch._foreach_addcdiv_(params, m, denominators, value=-lr / c1)


def _learning_rate(settings: Settings, step: int) -> float:
    """Constant, or cosine decay from ``settings.lr`` to 0 over the run."""
    if settings.schedule == "constant":
        return settings.lr
    return 0.5 * settings.lr * (1 + math.cos(math.pi * step / max(settings.steps, 1)))


def _fit(net: torch.nn.Module, samples: _Samples, settings: Settings, device: str,
         progress: bool, desc: str, on_step: Callable[[int, float], None] | None = None,
         before_step: Callable[[int], None] | None = None) -> torch.nn.Module:
    """Adam on the (loss-weighted) MSE between the network's output and the references.

    ``before_step(step)``, if given, may change ``samples`` before each step's batch is drawn.
    """
    # Channels-last convolutions are about 20 % faster on a CPU for these small crops.
    net.to(device, memory_format=torch.channels_last).train()
    opt = _Adam(net.parameters())
    bar = tqdm(range(settings.steps), desc=desc, unit="step", disable=not progress or sys.stderr is None, leave=False)
    for step in bar:
        if before_step is not None:
            before_step(step)
        x, t, w = (a.to(device, memory_format=torch.channels_last) for a in samples.batch())
        loss = torch.sum(w * (net(x) - t) ** 2) / (torch.sum(w) * x.shape[1]).clamp_min(1e-8)
        opt.zero_grad()
        loss.backward()
        opt.step(_learning_rate(settings, step))
        if on_step is not None:
            on_step(step, loss.item())
        if progress and step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.2e}")
    if not _finite(net):
        raise ValueError(_DIVERGED)
    return net.eval()


_DIVERGED = "training diverged: the network's weights or output are not finite; lower the learning rate (lr)"


def _finite(net: torch.nn.Module) -> bool:
    """Whether every weight of ``net`` is finite (no NaN, no infinity)."""
    return all(bool(torch.isfinite(v).all()) for v in net.state_dict().values() if v.is_floating_point())


class _DrawingFrom(TorchFunctionMode):
    """Within it, this thread's random fills draw from ``generator`` instead of torch's one global
    CPU generator: the initialisers layers call as they are built (``nn.init.kaiming_uniform_``,
    ``Tensor.uniform_``, ``normal_``: anything taking a ``generator``), which take none. Other
    threads are not touched (torch's mode stack is per thread), and neither is the global
    generator: a caller's seeded stream, or another thread's, is neither read nor moved."""

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.generator = generator

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if kwargs.get("generator") is None and _draws(func):
            kwargs["generator"] = self.generator
        return func(*args, **kwargs)


_RANDOM_BUILTINS = frozenset((
    torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.bernoulli_, torch.Tensor.random_,
    torch.Tensor.exponential_, torch.Tensor.cauchy_, torch.Tensor.log_normal_, torch.Tensor.geometric_,
    torch.rand, torch.randn, torch.randint, torch.randperm, torch.normal, torch.bernoulli, torch.multinomial))
"""torch's random functions that take a ``generator`` but show no signature to inspect."""


@functools.lru_cache(maxsize=None)
def _draws(func) -> bool:
    """Whether ``func`` draws random numbers from a ``generator`` it can be given."""
    if func in _RANDOM_BUILTINS:
        return True
    try:
        return "generator" in inspect.signature(func).parameters
    except (TypeError, ValueError):   # a builtin without a signature
        return False


_INITIALISERS_TAKE_A_GENERATOR = "generator" in inspect.signature(torch.nn.init.kaiming_uniform_).parameters
"""torch 2.2 and later; before, :func:`_new_network` seeds torch's global generator under
:data:`_SEEDED_BUILD`, which other threads' builds wait for, but other torch code does not."""
_SEEDED_BUILD = threading.Lock()


def _new_network(settings: Settings) -> torch.nn.Module:
    """A freshly initialised backbone whose weights depend only on ``settings.seed``, whatever
    other threads do: the same weights as ``torch.manual_seed(seed)`` then building gives,
    drawn from a generator of its own (a new CPU generator seeded so draws the same stream).
    Nothing else here draws from torch's generators (no dropout; crops and references come
    from numpy generators of their own). With torch before 2.2, whose initialisers take no
    generator, the global one is seeded for the build and given back its state after it."""
    if _INITIALISERS_TAKE_A_GENERATOR:
        with _DrawingFrom(torch.Generator().manual_seed(settings.seed)):
            return build_network(settings.backbone)
    with _SEEDED_BUILD:
        state = torch.get_rng_state()
        try:
            torch.default_generator.manual_seed(settings.seed)   # what torch.manual_seed does on the CPU
            return build_network(settings.backbone)
        finally:
            torch.set_rng_state(state)


def _start_network(settings: Settings, init: Model | None) -> torch.nn.Module:
    """A copy of ``init``'s network to train further, or a fresh one if ``init`` is None."""
    if init is None:
        return _new_network(settings)
    if init.settings.backbone != settings.backbone:
        raise ValueError(f"the model to start from is a {init.settings.backbone!r} network, but the settings "
                         f"ask for {settings.backbone!r}: leave the backbone unset or set it to "
                         f"{init.settings.backbone!r}")
    return copy.deepcopy(init.net)


class Model:
    """A trained network with the settings it was trained with."""

    def __init__(self, net: torch.nn.Module, settings: Settings, device: str = "cpu"):
        self.net = net.eval()
        self.settings = settings
        self.device = device

    @torch.no_grad()
    def predict(self, image: np.ndarray, tile: int = 1024, overlap: int = 64) -> np.ndarray:
        """Network output for a float32 (H, W, 3) image in [0, 1], clipped to [0, 1]; ValueError
        if it is not finite (a diverged training).

        Large images are processed in ``tile`` x ``tile`` tiles that overlap by
        ``overlap`` pixels on each side; only each tile's interior is kept, so
        the result has no seams (the overlap exceeds the network's reach).
        """
        h, w = image.shape[:2]
        out = np.empty_like(image, dtype=np.float32)
        step = tile
        for y0 in range(0, h, step):
            for x0 in range(0, w, step):
                ya, xa = max(y0 - overlap, 0), max(x0 - overlap, 0)
                yb, xb = min(y0 + step + overlap, h), min(x0 + step + overlap, w)
                x = _to_tensor(image[ya:yb, xa:xb]).to(self.device)
                y = self.net(x)
                if self.settings.flip_tta:
                    aug = self.settings.augment
                    y = (y + _flip(self.net(_flip(x, aug)), aug)) / 2
                if not bool(torch.isfinite(y).all()):  # clamp would turn NaN into black
                    raise ValueError(_DIVERGED)
                y = y.clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
                ye, xe = min(y0 + step, h), min(x0 + step, w)
                out[y0:ye, x0:xe] = y[y0 - ya:ye - ya, x0 - xa:xe - xa]
        return out

    def clean(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Derained float32 (H, W, 3) in [0, 1] for a float32 (H, W, 3) image in [0, 1].

        The prediction, never brighter than the input when ``settings.only_darken``;
        with ``settings.output_cap``, changes larger than that many times the image's
        median rain increment over ``mask`` are undone (``guard.rain_guard``). The
        mask (uint8 (H, W), 255 = rain) is computed with ``settings.mask`` if not given.
        """
        y = self.predict(rgb)
        if self.settings.only_darken:
            y = np.minimum(y, rgb)
        if self.settings.output_cap:
            if mask is None:
                mask = compute_mask(to_uint8(rgb), self.settings.mask).mask
            y = rain_guard(rgb * 255, y * 255, mask, cap=self.settings.output_cap, component_cap=None) / 255
        return y.astype(np.float32)

    def apply(self, image: np.ndarray, veil: str | None = None, veil_threshold: float | None = None) -> np.ndarray:
        """Derain ``image`` (any dtype/shape ``rain2avoid.io`` accepts) and take its veil away
        as ``veil`` and ``veil_threshold`` (defaults: ``settings.veil`` and
        ``settings.veil_threshold``) say; same dtype and shape back."""
        image = as_image(image)
        threshold = self.settings.veil_threshold if veil_threshold is None else \
            dataclasses.replace(self.settings, veil_threshold=veil_threshold).veil_threshold  # checked as a setting
        out, _ = clear_veil(self.clean(to_float_rgb(image)), veil or self.settings.veil, threshold)
        return from_float_rgb(out, like=image)

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and settings atomically (loadable with ``weights_only=True``), as
        every output is written (``rain2avoid.files.write_bytes``: a new file gets the usual
        permissions under the umask); raises ``ImageWriteError`` (an OSError) when it cannot."""
        from io import BytesIO

        from .files import ImageWriteError, write_bytes
        if Path(path).is_dir():
            raise ImageWriteError(path, "it is a folder; give the model a file name, e.g. model.pt")
        payload = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "settings": dataclasses.asdict(self.settings),
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
        }
        buffer = BytesIO()
        torch.save(payload, buffer)
        write_bytes(path, buffer.getvalue())


class ModelFileError(ValueError):
    """A model file that is missing, damaged or not a rain2avoid model."""


def check_device(device: str) -> None:
    """Raise a ValueError unless ``device`` names the CPU or a CUDA GPU (``"cpu"``, ``"cuda"``,
    ``"cuda:1"`` or such a ``torch.device``) that this torch can use: before any work, not
    from deep inside torch once training starts."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        why = "this torch is a CPU build" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ValueError(f"device {str(device)!r}: {why}; use device='cpu'")


def load_model(path: str | os.PathLike, device: str = "cpu") -> Model:
    """Load a model saved by :meth:`Model.save`. Never executes code from the file.

    Raises :class:`ModelFileError` for a missing, damaged or foreign file, and for a model
    whose weights are not finite (a diverged training); ValueError for a ``device`` this torch
    cannot use (:func:`check_device`)."""
    check_device(device)
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # damaged zip, forbidden pickle globals, not a torch file ...
        raise ModelFileError(f"{path}: damaged or not a rain2avoid model file "
                             f"(make one with `rain2avoid train`)") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ModelFileError(f"{path}: not a rain2avoid model file (made by another program?)")
    if payload.get("version") != _FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {payload.get('version')} is not supported; "
                             f"this rain2avoid reads version {_FORMAT_VERSION}")
    try:
        settings = Settings(**payload["settings"])
        net = _new_network(settings)  # seeded like any build: it must not draw on the caller's random state
        net.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise ModelFileError(f"{path}: damaged rain2avoid model (its settings or weights do not fit "
                             f"the network it names)") from None
    if not _finite(net):
        raise ModelFileError(f"{path}: the model's weights are not finite (NaN or infinite): its training "
                             f"diverged; train it again with a lower learning rate")
    return Model(net.to(device), settings, device)


def _for_folder(settings: Settings) -> Settings:
    """``settings`` (TypeError unless a :class:`Settings`) for one network on many images (maybe
    of many directions): ``augment="auto"`` becomes the mirror, and the model records it."""
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a rain2avoid.Settings (e.g. Settings(steps=500) or "
                        f"sdrl.resolve_settings(...)), got {type(settings).__name__}")
    return dataclasses.replace(settings, augment="mirror") if settings.augment == "auto" else settings


def _check_image(x: np.ndarray, t: Targets, w: np.ndarray | None, name: str) -> None:
    """ValueError unless ``x``, ``t`` and ``w`` are one image's input, targets and weights (or None)
    as :func:`train_folder` takes them; ``name`` says which image."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != 3 or 0 in x.shape or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name}: expected a float (H, W, 3) input in [0, 1], got {x.dtype} of shape {x.shape} "
                         f"(rain2avoid.io.to_float_rgb converts an image)")
    low, high = float(x.min()), float(x.max())
    if not 0 <= low <= high <= 1:
        raise ValueError(f"{name}: input pixels must be finite and in [0, 1], found [{low:.4g}, {high:.4g}]")
    if not hasattr(t, "draw"):
        t = np.asarray(t)
        if t.ndim != 4 or t.shape[1:] != x.shape or not len(t) or not np.issubdtype(t.dtype, np.floating):
            raise ValueError(f"{name}: expected float (R, {x.shape[0]}, {x.shape[1]}, 3) targets for its "
                             f"{x.shape} input (or a TargetSampler), got {t.dtype} of shape {t.shape}")
        low, high = float(t.min()), float(t.max())
        if not 0 <= low <= high <= 1:  # e.g. expected_reference's 0-255 output: it would teach "change nothing"
            raise ValueError(f"{name}: target pixels must be finite and in [0, 1], found [{low:.4g}, {high:.4g}] "
                             f"(divide 0-255 references by 255)")
    if w is not None and np.shape(w) != x.shape[:2]:
        raise ValueError(f"{name}: weight map shape {np.shape(w)} does not match image shape {x.shape[:2]}")


def train_image(image: np.ndarray, targets: Targets, settings: Settings, device: str = "cpu",
                progress: bool = False, on_step: Callable[[int, float], None] | None = None,
                weights: np.ndarray | None = None, init: Model | None = None) -> Model:
    """Train a network on one image: :func:`train_folder` on a folder of one.

    Args:
        image: float32 (H, W, 3) rainy image in [0, 1].
        targets: float32 (R, H, W, 3) references in [0, 1] (R = 1 for the expected reference),
            or a :class:`TargetSampler` that draws a fresh one at every step.
        weights: optional (H, W) per-pixel loss weights (e.g. ``pipeline.loss_weights``).
        init: a trained model to start from (a copy of it is trained; it is left as it
            is); None starts from a fresh network.
    """
    return train_folder([image], [targets], settings, device, progress, on_step,
                        None if weights is None else [weights], init)


def train_folder(inputs: Sequence[np.ndarray], targets: Sequence[Targets], settings: Settings,
                 device: str = "cpu", progress: bool = False,
                 on_step: Callable[[int, float], None] | None = None,
                 weights: Sequence[np.ndarray] | None = None, init: Model | None = None) -> Model:
    """Train one network on many images (random crops of (image, one of its references)).

    ``inputs[i]`` is float32 (H_i, W_i, 3) in [0, 1]; ``targets[i]`` is (R_i, H_i, W_i, 3)
    or a :class:`TargetSampler` of that image;
    ``weights[i]``, if given, is (H_i, W_i): how much each pixel counts in the loss
    (0 = not at all; all ones, the default, is the plain mean squared error).
    ``init``: a trained model whose network (a copy) training starts from, instead of a
    fresh one; its backbone must be ``settings.backbone``.

    Raises ValueError for inputs, targets or weights that do not fit this (one of each per
    image) and for a training that diverges (lower ``settings.lr``), TypeError unless
    ``settings`` is a :class:`Settings`.
    """
    if not inputs:
        raise ValueError("no images to train on")
    if len(targets) != len(inputs):
        raise ValueError(f"got {len(targets)} targets for {len(inputs)} images: give one per image")
    if weights is not None and len(weights) != len(inputs):
        raise ValueError(f"got {len(weights)} weight maps for {len(inputs)} images")
    for i, (x, t) in enumerate(zip(inputs, targets)):
        _check_image(x, t, None if weights is None else weights[i], f"image {i}")
    settings = _for_folder(settings)
    net = _start_network(settings, init)
    samples = _Samples(inputs, targets, settings, weights)
    return Model(_fit(net, samples, settings, device, progress, "training", on_step), settings, device)


def train_stream(sources: Sequence[Callable[[], tuple | None]], settings: Settings, budget_mb: float = 1024,
                 device: str = "cpu", progress: bool = False,
                 on_step: Callable[[int, float], None] | None = None) -> Model:
    """:func:`train_folder` on images loaded when needed, holding at most ``budget_mb`` of training data.

    ``sources[i]()`` returns image i's ``(input, targets, weights)``, shaped as
    :func:`train_folder` takes them, or None to leave the image out. Images are
    loaded in order while their data fits in the budget; when all fit, this is
    exactly :func:`train_folder`. Otherwise the rest are loaded during training,
    in a random order (from ``settings.seed``), into a pool that drops its oldest
    images to stay within the budget: evenly over the steps, the last ones before
    the last step, so that each image spends about the same number of steps in the
    pool (less than one when there are more images than steps times the pool).
    Memory then holds at most the budget plus one image, whatever the number of
    images; every image is still loaded (and its references computed) once.
    """
    settings = _for_folder(settings)
    budget = budget_mb * 2 ** 20
    first, used, n = [], 0, 0
    while n < len(sources) and used <= budget:  # in order, while the data fits
        item = sources[n]()
        n += 1
        if item is not None:
            first.append(item)
            used += _nbytes(item)
        del item  # the pool below must hold the only reference
    if n == len(sources) and used <= budget:  # everything fits: the plain way, the same result
        if not first:
            raise ValueError("no images to train on")
        inputs, targets, weights = (list(a) for a in zip(*first))
        return train_folder(inputs, targets, settings, device, progress, on_step, weights)

    rest = [sources[i] for i in np.random.default_rng([settings.seed, 1]).permutation(np.arange(n, len(sources)))]
    samples, sizes = _Samples([], [], settings), []

    def add(item: tuple) -> None:  # into the pool; drop the oldest images beyond the budget
        _check_image(*item, name="a source's image")
        samples.add(*item)
        sizes.append(_nbytes(item))
        while sum(sizes) > budget and len(sizes) > 1:
            samples.drop_oldest()
            sizes.pop(0)

    while first:
        add(first.pop(0))
    taken = 0

    def refresh(step: int) -> None:  # len(rest) / steps new images per step; all are in by the last step
        nonlocal taken
        due = min(len(rest), -(-(step + 1) * len(rest) // max(settings.steps, 1)))
        while taken < due:
            item = rest[taken]()
            taken += 1
            if item is not None:
                add(item)
            del item

    net = _fit(_new_network(settings), samples, settings, device, progress, "training", on_step, refresh)
    return Model(net, settings, device)


def _nbytes(item: tuple) -> int:
    return sum(np.asarray(a).nbytes for a in item if a is not None)
