"""Synthetic rain rendering and built-in clean example images.

``add_rain`` draws bright, slightly blurred line segments on a rain layer and
adds it to the image (``rainy = clip(image + intensity * 255 * layer)``), the
way Rain100L-style data sets are made.  ``clean_example`` gives a clean RGB
image from the samples that ship inside scikit-image (no download needed).
``rainy_clip`` makes a short video: a slow pan across a clean image with rain
redrawn every frame.

Angle convention
----------------
``angle`` is in degrees measured from the vertical image axis.  ``0`` gives
vertical streaks; a positive angle leans the streak clockwise on screen, i.e.
the top end is tilted to the right and the bottom end to the left (``/``);
a negative angle leans the top to the left (``\\``).  A streak with angle
``a`` runs along the unit vector ``(dx, dy) = (sin a, -cos a)`` in image
coordinates (x to the right, y down), so an estimator of the unsigned
deviation from vertical recovers ``|angle|``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = ["EXAMPLES", "clean_example", "facade", "rain_layer", "add_rain", "add_heavy_rain", "rain_presets",
           "heavy_rain_presets", "random_heavy_rain", "rainy_clip"]

# RGB sample images stored inside the scikit-image package (no download).
EXAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
            "immunohistochemistry", "retina")


def clean_example(name: str = "astronaut", size: Optional[Tuple[int, int]] = (320, 480)) -> np.ndarray:
    """Return a clean uint8 RGB sample image from ``skimage.data``.

    ``size = (h, w)`` scales the image to cover that size and centre-crops it;
    ``size=None`` returns the image at its native size.
    """
    from skimage import data

    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; valid names: {', '.join(EXAMPLES)}")
    img = np.ascontiguousarray(getattr(data, name)()[..., :3], dtype=np.uint8)
    if size is None:
        return img
    h, w = int(size[0]), int(size[1])
    H, W = img.shape[:2]
    s = max(h / H, w / W)
    nh, nw = max(h, round(H * s)), max(w, round(W * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    top, left = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(img[top:top + h, left:left + w])


def facade(rng: np.random.Generator, size: Tuple[int, int] = (320, 480)) -> np.ndarray:
    """A clean uint8 RGB picture of a building facade: texture that looks like rain.

    A wall of random colour and grain with a grid of windows (3-5 rows, 4-8
    columns) of dark glass, each framed by thin bright lines 1-3 px wide with
    1-3 vertical mullions and a transom, and 0-2 downpipes running the whole
    height; softened by a 0.6 px Gaussian like a photo. The frames are straight,
    bright, achromatic lines, most of them vertical: what a rain detector must
    not take for streaks. Made for tests and benchmarks (``benchmarks/facade.py``).
    """
    h, w = int(size[0]), int(size[1])
    grain = cv2.GaussianBlur(rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 1.0)
    img = np.empty((h, w, 3), np.float32)
    img[:] = rng.uniform(90, 200, 3)
    img += grain[..., None]
    rows, cols = int(rng.integers(3, 6)), int(rng.integers(4, 9))
    mx, my = int(rng.integers(10, 30)), int(rng.integers(10, 30))
    cell_w, cell_h = (w - 2 * mx) / cols, (h - 2 * my) / rows
    frame = (float(rng.uniform(200, 250)),) * 3
    thick = int(rng.choice([1, 2, 2, 3]))
    glass = rng.uniform(20, 90, 3)
    for r in range(rows):
        for c in range(cols):
            x0, y0 = int(mx + (c + 0.15) * cell_w), int(my + (r + 0.12) * cell_h)
            x1, y1 = int(mx + (c + 0.85) * cell_w), int(my + (r + 0.88) * cell_h)
            img[y0:y1, x0:x1] = glass + rng.uniform(-15, 15) + np.linspace(0, 40, y1 - y0)[:, None, None]
            cv2.rectangle(img, (x0, y0), (x1, y1), frame, thick)
            mullions = int(rng.integers(1, 4))
            for k in range(1, mullions + 1):
                xm = x0 + (x1 - x0) * k // (mullions + 1)
                cv2.line(img, (xm, y0), (xm, y1), frame, thick)
            cv2.line(img, (x0, y0 + (y1 - y0) // 3), (x1, y0 + (y1 - y0) // 3), frame, thick)
    for _ in range(int(rng.integers(0, 3))):
        x = int(rng.integers(5, w - 5))
        cv2.line(img, (x, 0), (x, h), tuple(0.95 * v for v in frame), int(rng.integers(1, 4)))
    return np.clip(np.rint(cv2.GaussianBlur(img, (0, 0), 0.6)), 0, 255).astype(np.uint8)


def _blur_gain(width: int, sigma: float) -> float:
    """Peak of a ``width``-px wide bar after a Gaussian blur of ``sigma`` (1 if no blur)."""
    if sigma <= 0:
        return 1.0
    from scipy.special import erf

    return float(erf(width / (2.0 * np.sqrt(2.0) * sigma)))


def rain_layer(shape: Tuple[int, int], angle: float = 0.0, density: float = 0.03, length: float = 20,
               width: int = 1, blur: float = 1.0, seed: int = 0) -> np.ndarray:
    """One layer of rain streaks: float32 (H, W) in [0, 1] (1 = a streak core at full brightness).

    ``shape = (H, W)``; the other arguments are those of :func:`add_rain`.
    """
    if density < 0 or length <= 0 or width < 1:
        raise ValueError("need density >= 0, length > 0 and width >= 1")
    rng = np.random.default_rng(seed)
    H, W = int(shape[0]), int(shape[1])
    n = int(round(density * H * W / (length * width)))
    canvas = np.zeros((H, W), np.uint8)
    if n > 0:
        shift = 4  # sub-pixel precision of cv2 drawing: coordinates in 1/16 px
        a = np.deg2rad(angle)
        direction = np.array([np.sin(a), -np.cos(a)])
        centre = rng.uniform((0, 0), (W, H), size=(n, 2))
        half = 0.5 * length * rng.uniform(0.5, 1.5, size=(n, 1)) * direction
        pts = np.stack([centre - half, centre + half], axis=1)          # (n, 2, 2) x,y
        pts = np.round(pts * (1 << shift)).astype(np.int32)
        level = rng.integers(0, 4, size=n)
        for k in range(4):  # one vectorised polylines call per brightness level
            sel = pts[level == k]
            if len(sel):
                cv2.polylines(canvas, list(sel), False, int(round(255 * (0.6 + 0.4 * k / 3))),
                              thickness=int(width), lineType=cv2.LINE_AA, shift=shift)
    layer = canvas.astype(np.float32) / 255.0
    if blur > 0 and n > 0:
        layer = cv2.GaussianBlur(layer, (0, 0), sigmaX=blur, borderType=cv2.BORDER_REFLECT)
        layer = np.clip(layer / _blur_gain(int(width), blur), 0.0, 1.0)
    return layer.astype(np.float32)


def add_rain(image: np.ndarray, angle: float = 0.0, density: float = 0.03, length: float = 20,
             width: int = 1, intensity: float = 0.8, blur: float = 1.0,
             seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Render additive rain streaks on a uint8 RGB ``image`` of shape (H, W, 3).

    Parameters
    ----------
    angle:     streak direction in degrees from vertical, positive = top leaning
               right (see the module docstring); typical range [-45, 45].
    density:   fraction of the image covered by streak cores (before blur,
               ignoring overlaps): ``round(density * H * W / (length * width))``
               streaks are drawn, centres uniform over the image.
    length:    mean streak length in px; each streak's length is drawn
               uniformly from ``[0.5, 1.5] * length``.
    width:     line thickness in px.
    intensity: peak brightness of a streak as a fraction of 255.
    blur:      Gaussian sigma (px) softening the streaks; 0 disables.
    seed:      seed of ``np.random.default_rng``.

    Each streak gets a random brightness in [0.6, 1] (four levels).  The
    blurred layer is rescaled so a streak's core keeps its brightness, then
    clipped to [0, 1].  Returns ``(rainy, layer)``: ``rainy`` uint8 (H, W, 3)
    with ``rainy >= image`` everywhere, and the rain layer float32 (H, W)
    in [0, 1]; ``rainy = round(clip(image + intensity * 255 * layer, 0, 255))``.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    layer = rain_layer(image.shape[:2], angle, density, length, width, blur, seed)
    rainy = image.astype(np.float32) + np.float32(intensity * 255.0) * layer[..., None]
    rainy = np.clip(np.rint(rainy), 0, 255).astype(np.uint8)
    return rainy, layer


def add_heavy_rain(image: np.ndarray, layers: Sequence[dict], veil: float = 0.0, airlight: float = 0.9,
                   seed: int = 0, blend: str = "add") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heavy rain: several streak layers seen through a veil of rain accumulation (mist).

    The model of heavy-rain photos (Li et al., CVPR 2019):
    ``rainy = t * (image + 255 * sum_i intensity_i * layer_i) + (1 - t) * 255 * A``,
    clipped and rounded to uint8 (``blend="add"``). ``blend="screen"`` lays the rain on
    as an image editor's "screen" layer does (the way many paired data sets were painted):
    ``1 - (1 - image) * (1 - rain)`` on the 0-1 scale, so rain lifts dark pixels more than
    bright ones and lifts each channel by its own amount. Each entry of ``layers`` is a dict of
    :func:`add_rain` arguments (``angle``, ``density``, ``length``, ``width``,
    ``intensity``, ``blur``; its ``seed`` defaults to ``seed + index``), so
    layers can differ in direction, width and softness. The veil: the
    transmission ``t = 1 - veil * v`` where ``v`` in [0.5, 1] grows smoothly
    towards the top of the picture (farther away) with a little low-frequency
    variation; ``A`` is a bright, slightly bluish grey of level ``airlight``
    (a fraction of 255). ``veil=0`` gives no veil.

    Returns ``(rainy, rain, transmission)``: uint8 (H, W, 3), the summed rain layers
    before the veil (float32 (H, W) on the 0-255 scale: the increment itself when added;
    a screen layer lifts a pixel by ``rain * (255 - image) / 255``) and ``t`` (float32
    (H, W) in (0, 1]).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if blend not in ("add", "screen"):
        raise ValueError(f"blend must be 'add' or 'screen', got {blend!r}")
    if not 0 <= veil < 1 or not 0 < airlight <= 1:
        raise ValueError(f"need 0 <= veil < 1 and 0 < airlight <= 1, got veil={veil}, airlight={airlight}")
    H, W = image.shape[:2]
    rain = np.zeros((H, W), np.float32)
    for i, spec in enumerate(layers):
        spec = dict(spec)
        intensity = float(spec.pop("intensity", 0.8))
        spec.setdefault("seed", seed + i)
        rain += np.float32(255.0 * intensity) * rain_layer((H, W), **spec)
    rng = np.random.default_rng(seed + 1000)
    rows = np.linspace(1.0, 0.0, H, dtype=np.float32)[:, None]          # 1 at the top
    noise = cv2.resize(rng.random((4, 6)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    v = np.clip(0.5 + 0.35 * rows + 0.15 * noise, 0.5, 1.0)
    t = (1.0 - veil * v).astype(np.float32)
    tint = np.array([0.97, 0.99, 1.0], np.float32)                     # slightly bluish grey
    light = 255.0 * airlight * tint
    scene = image.astype(np.float32)
    if blend == "screen":
        scene = 255.0 - (255.0 - scene) * (1.0 - np.minimum(rain, 255.0)[..., None] / 255.0)
    else:
        scene = scene + rain[..., None]
    rainy = t[..., None] * scene + (1 - t[..., None]) * light
    return np.clip(np.rint(rainy), 0, 255).astype(np.uint8), rain, t


def rain_presets() -> Dict[str, dict]:
    """Named ``add_rain`` settings (a fresh dict each call), covering angles
    -45..45 degrees, light and heavy rain, thin and wide streaks."""
    return {
        "light": dict(angle=0.0, density=0.015, length=15, width=1, intensity=0.6, blur=0.8),
        "heavy": dict(angle=10.0, density=0.08, length=30, width=1, intensity=0.9, blur=1.0),
        "wide": dict(angle=-5.0, density=0.03, length=30, width=3, intensity=0.7, blur=1.5),
        "slanted-left": dict(angle=-25.0, density=0.04, length=25, width=1, intensity=0.8, blur=1.0),
        "slanted-right": dict(angle=25.0, density=0.04, length=25, width=1, intensity=0.8, blur=1.0),
        "steep-left": dict(angle=-45.0, density=0.04, length=25, width=2, intensity=0.8, blur=1.0),
        "steep-right": dict(angle=45.0, density=0.04, length=25, width=2, intensity=0.8, blur=1.0),
    }


def heavy_rain_presets() -> Dict[str, dict]:
    """Named :func:`add_heavy_rain` settings (fresh dicts): rain unlike Rain100L's.

    Dense fine rain, two directions at once, wide soft (out-of-focus) streaks,
    faint low-contrast streaks, steep slants, and each of those under a veil.
    """
    return {
        "dense-fine": dict(layers=[dict(angle=-12, density=0.12, length=18, width=1, intensity=0.45, blur=0.6)]),
        "two-directions": dict(layers=[dict(angle=-25, density=0.05, length=30, width=1, intensity=0.7, blur=1.0),
                                       dict(angle=15, density=0.04, length=22, width=1, intensity=0.5, blur=0.8)]),
        "wide-soft": dict(layers=[dict(angle=8, density=0.05, length=45, width=5, intensity=0.35, blur=3.0)]),
        "faint": dict(layers=[dict(angle=5, density=0.06, length=25, width=1, intensity=0.18, blur=0.8)]),
        "steep": dict(layers=[dict(angle=55, density=0.05, length=30, width=2, intensity=0.6, blur=1.0)]),
        "veil-dense": dict(layers=[dict(angle=-10, density=0.10, length=30, width=2, intensity=0.5, blur=1.2),
                                   dict(angle=-8, density=0.06, length=18, width=1, intensity=0.35, blur=0.7)],
                           veil=0.35),
        "veil-mixed": dict(layers=[dict(angle=20, density=0.07, length=35, width=3, intensity=0.45, blur=2.0),
                                   dict(angle=20, density=0.05, length=20, width=1, intensity=0.5, blur=0.8)],
                           veil=0.25),
        "veil-light": dict(layers=[dict(angle=0, density=0.03, length=25, width=1, intensity=0.7, blur=1.0)],
                           veil=0.15),
    }


def random_heavy_rain(rng: np.random.Generator, veil: bool = True) -> dict:
    """Random :func:`add_heavy_rain` settings for benchmarks, heavier and more varied than
    Rain100L's light rain (rainy inputs score about 18-26 dB): 1-3 layers of streaks (angles
    within +-60 degrees, the layers within 30 degrees of one another, widths 1-5 px, blur
    0.5-3 px, semi-transparent) and, with ``veil``, a veil of 0.05-0.3."""
    base = float(rng.uniform(-60, 60))
    count = int(rng.integers(1, 4))
    layers = []
    for _ in range(count):
        width = int(rng.choice([1, 1, 2, 3, 5]))
        layers.append(dict(angle=float(np.clip(base + rng.uniform(-30, 30), -70, 70)),
                           density=float(rng.uniform(0.015, 0.06)) / count ** 0.5,
                           length=float(rng.uniform(15, 50)), width=width,
                           intensity=float(rng.uniform(0.1, 0.4)),
                           blur=float(rng.uniform(0.5, 1.0) * (1 + width / 2))))
    return dict(layers=layers, veil=float(rng.uniform(0.05, 0.3)) if veil else 0.0,
                airlight=float(rng.uniform(0.8, 0.95)))


def rainy_clip(clean: np.ndarray, frames: int = 48, size: Tuple[int, int] = (320, 480),
               pan: Tuple[float, float] = (2.0, 0.5), rain: Union[str, dict, None] = None,
               seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """A synthetic rainy video: a camera panning across ``clean``, rain redrawn every frame.

    Frame ``i`` of the clean clip is the ``size = (h, w)`` window of ``clean``
    whose top-left corner is at ``(x0 + i * pan[0], y0 + i * pan[1])`` (``pan``
    is (dx, dy) in pixels per frame; fractional shifts are resampled with
    bicubic interpolation). ``clean`` is scaled up first if the whole path does
    not fit in it, and the path is centred in it. Each rainy frame is
    :func:`add_rain` on its clean frame with the same rain settings (``rain``:
    a :func:`rain_presets` name, a dict of ``add_rain`` arguments, or ``None``
    for ``add_rain``'s defaults) and a new seed drawn from ``seed``.

    Returns ``(rainy, clean_frames)``: two uint8 arrays (frames, h, w, 3).
    """
    clean = np.asarray(clean)
    if clean.dtype != np.uint8 or clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {clean.dtype} {clean.shape}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    kwargs = rain_presets()[rain] if isinstance(rain, str) else dict(rain or {})
    kwargs.pop("seed", None)
    h, w = int(size[0]), int(size[1])
    dx, dy = float(pan[0]), float(pan[1])
    need_w, need_h = w + abs(dx) * (frames - 1) + 4, h + abs(dy) * (frames - 1) + 4
    H, W = clean.shape[:2]
    scale = max(need_h / H, need_w / W, 1.0)
    if scale > 1:
        clean = cv2.resize(clean, (int(np.ceil(W * scale)), int(np.ceil(H * scale))),
                           interpolation=cv2.INTER_CUBIC)
        H, W = clean.shape[:2]
    # Start so that the path is centred: the window moves from x0 to x0 + dx * (frames - 1).
    x0 = (W - w - dx * (frames - 1)) / 2
    y0 = (H - h - dy * (frames - 1)) / 2
    seeds = np.random.default_rng(seed).integers(0, 2 ** 31, size=frames)
    rainy_frames = np.empty((frames, h, w, 3), np.uint8)
    clean_frames = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        x, y = x0 + i * dx, y0 + i * dy
        if float(x).is_integer() and float(y).is_integer():
            frame = clean[int(y):int(y) + h, int(x):int(x) + w]
        else:
            shift = np.float32([[1, 0, -x], [0, 1, -y]])
            frame = cv2.warpAffine(clean, shift, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        clean_frames[i] = frame
        rainy_frames[i] = add_rain(clean_frames[i], seed=int(seeds[i]), **kwargs)[0]
    return rainy_frames, clean_frames
