"""The veil of heavy rain (rain accumulation, mist): estimate it and take it away.

Heavy rain is seen through a veil: far from the camera, countless drops scatter
light towards it, so a photo is ``I = t * J + (1 - t) * A`` (the heavy-rain
model of Li et al., CVPR 2019, which is the haze model of Koschmieder): the
scene ``J`` attenuated by the transmission ``t`` in (0, 1], plus the airlight
``A`` (the colour of the veil, a bright grey). The dark channel prior (He et
al., CVPR 2009) estimates ``t``: in most patches of a clear outdoor photo some
pixel is dark in some channel, so whatever lifts the darkest value of a patch
is veil.

The estimate is conservative: only a fraction ``omega`` of the veil is taken
away, nowhere more than ``MAX_LIFT`` times what lifts the darkest pixels, and the
transmission never goes below ``t_min``. :func:`clear_veil`'s
``"auto"`` acts only in a colour photo where the veil is strong enough
(:func:`veil_strength`), lifts even the darkest pixels (:func:`floor_lift`), is near
neutral in colour at the photo's bright or dark end (:func:`tint`, :func:`dark_end`) and
about as bright as the photo's bright parts (:func:`bright_level`), so that clear photos,
pale scenes, colour casts, pale walls and facades are left alone. All functions take float32 RGB
images in [0, 1].
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from .io import to_uint8
from .lattice import spectral_rotation

__all__ = ["Veil", "dark_channel", "guided_filter", "estimate_veil", "veil_strength", "remove_veil",
           "clear_veil", "find_veil", "colourfulness", "tint", "bright_level", "dark_end", "floor_lift", "VEIL_MODES",
           "VEIL_THRESHOLD", "BUILDING_CROSS", "MAX_LIFT"]

VEIL_MODES = ("auto", "on", "off")
VEIL_THRESHOLD = 0.05
"""The veil strength from which ``"auto"`` takes a veil away (:func:`clear_veil`). Light veils
(0.05-0.1) of our heavy sets' colour photos gain 0.8-4.6 dB when taken away (scored on the
closed-form reference, no network); clear photos are told apart by the other tests, the
darkest pixels' lift above all (docs/quality.md, twenty-third round; 0.1 before)."""
BUILDING_CROSS = 6.0
"""The cross lines (``lattice.Spectrum.cross``) from which ``"auto"`` takes a photo for a
building's windows and leaves it as it is (:func:`find_veil`)."""
MAX_LIFT = 1.5
"""The veil :func:`estimate_veil` takes from any pixel is at most this many times what lifts the
photo's darkest pixels (:func:`floor_lift`)."""
_WORK_SIDE = 640   # the veil is smooth: its statistics are taken on a copy at most this long


class Veil(NamedTuple):
    """A veil estimate: ``airlight`` float32 (3,) in [0, 1], ``transmission`` float32
    (H, W) in (0, 1] at the image's size, ``strength`` (:func:`veil_strength`) and ``floor``
    (:func:`floor_lift` of the photo under that airlight)."""

    airlight: np.ndarray
    transmission: np.ndarray
    strength: float
    floor: float


def _check(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected a float (H, W, 3) RGB image in [0, 1], got shape {rgb.shape}")
    return rgb.astype(np.float32, copy=False)


def dark_channel(rgb: np.ndarray, radius: int = 7) -> np.ndarray:
    """Minimum over the colour channels and over the ``(2 radius + 1)`` square around each pixel."""
    rgb = _check(rgb)
    return cv2.erode(np.ascontiguousarray(rgb.min(axis=2)), np.ones((2 * radius + 1,) * 2, np.uint8),
                     borderType=cv2.BORDER_REPLICATE)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` that follows the edges of ``guide`` (both (H, W)
    float32; He et al., ECCV 2010): a local linear model ``a * guide + b`` per window."""
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(a):
        return cv2.boxFilter(a, -1, size, borderType=cv2.BORDER_REFLECT)

    mg, ms = mean(guide), mean(src)
    a = (mean(guide * src) - mg * ms) / (mean(guide * guide) - mg * mg + eps)
    b = ms - a * mg
    return mean(a) * guide + mean(b)


def _airlight(small: np.ndarray, dark: np.ndarray, fraction: float = 0.001) -> np.ndarray:
    """Mean colour of the pixels whose dark channel is in the top ``fraction``: the most
    veiled, where the photo shows the veil itself."""
    count = max(1, int(dark.size * fraction))
    idx = np.argpartition(dark.ravel(), -count)[-count:]
    return small.reshape(-1, 3)[idx].mean(axis=0).clip(0.05, 1.0).astype(np.float32)


def veil_strength(dark: np.ndarray, airlight: np.ndarray) -> float:
    """How much veil an image shows: the 5th percentile of its dark channel relative to
    the airlight's darkest channel (0 = some dark pixel almost everywhere: no veil).

    A veil lifts every dark value, the darkest ones too; a clear photo keeps some
    shadows or saturated colours. Bright, low-contrast scenes (snow, water in
    daylight) also score high, which is why ``"auto"`` needs a clear margin.
    """
    return float(np.percentile(dark, 5) / max(float(airlight.min()), 1e-3))


def _working_copy(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` shrunk (area average) so that its longer side is at most ``max_side`` px."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def floor_lift(rgb: np.ndarray, airlight: np.ndarray, percentile: float = 0.1, max_side: int = _WORK_SIDE) -> float:
    """How far a veil lifts even the darkest pixels: the ``percentile`` of the pixels'
    darkest channel (on a copy at most ``max_side`` px on its longer side) relative to
    the airlight's darkest channel.

    A veil ``(1 - t) A`` is added to every pixel, so none stays near black. A pale
    scene without one (snow, a white bear, a pale wall) has a high dark channel over
    most patches (:func:`veil_strength`) but keeps a few black pixels: eyes, twigs,
    gaps. This looks at single pixels, not at patches, and at the darkest 0.1 %.
    """
    small = _working_copy(_check(rgb), max_side)
    lowest = float(np.percentile(small.min(axis=2), percentile))
    return lowest / max(float(np.asarray(airlight).min()), 1e-3)


def estimate_veil(rgb: np.ndarray, omega: float = 0.5, radius: int = 7, max_side: int = _WORK_SIDE,
                  airlight: np.ndarray | None = None, max_lift: float | None = MAX_LIFT) -> Veil:
    """Estimate the veil of a float32 RGB image in [0, 1] with the dark channel prior.

    Works on a copy at most ``max_side`` px on its longer side (the veil is
    smooth, so this loses nothing and bounds the cost): the airlight ``A`` is
    the mean colour of the most veiled 0.1 % of pixels, unless ``airlight``
    (float (3,) in (0, 1]) is given; the raw transmission ``1 - omega *
    dark_channel(I / A)`` is refined with a guided filter on the grey image (so
    it follows object edges) and scaled back up.

    A veil is added to every pixel, and the darkest pixels show how much of it there is
    (:func:`floor_lift`, relative to ``A``): so the transmission is kept at least ``1 -
    max_lift * floor`` (None: no bound). Without it, a pale object's high dark channel
    reads as thick veil, and taking that away darkens the object below its shade. On the
    heavy sets' images whose veil ``"auto"`` takes away, 1.5 makes none worse and lifts the
    sets by 0.02-0.18 dB (docs/quality.md, twenty-first round); 1 gains more on some and
    loses up to 1.4 dB on others.
    """
    rgb = _check(rgb)
    if not 0 < omega <= 1:
        raise ValueError(f"omega must be in (0, 1], got {omega}")
    if max_lift is not None and not max_lift > 0:
        raise ValueError(f"max_lift must be > 0 (or None), got {max_lift}")
    h, w = rgb.shape[:2]
    small = _working_copy(rgb, max_side)
    dark = dark_channel(small, radius)
    if airlight is None:
        airlight = _airlight(small, dark)
    airlight = np.clip(np.asarray(airlight, np.float32).reshape(3), 0.05, 1.0)
    raw = 1.0 - omega * dark_channel(small / airlight, radius)
    grey = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY)
    t = guided_filter(grey, raw.astype(np.float32), max(2, 4 * radius), 1e-3)
    if small.shape[:2] != (h, w):
        t = cv2.resize(t, (w, h), interpolation=cv2.INTER_LINEAR)
    floor = floor_lift(small, airlight, max_side=max_side)
    if max_lift is not None:
        t = np.maximum(t, 1.0 - max_lift * floor)
    return Veil(airlight, np.clip(t, 0.05, 1.0).astype(np.float32), veil_strength(dark, airlight), floor)


def dark_end(rgb: np.ndarray, fraction: float = 0.01, max_side: int = _WORK_SIDE) -> np.ndarray:
    """Mean colour (float32 (3,)) of the darkest ``fraction`` of a photo's pixels (by the
    sum of their channels, after a 5 x 5 box blur against noise; on a copy at most
    ``max_side`` px on its longer side).

    Under a veil ``I = t * J + (1 - t) * A`` the scene's darkest parts (``J`` near 0)
    show ``(1 - t) * A``: the veil's own colour, even where the veil is too light for
    the most veiled pixels (:func:`estimate_veil`'s airlight) to be anything but the
    scene's brightest colour.
    """
    rgb = _check(rgb)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    small = cv2.blur(_working_copy(rgb, max_side), (5, 5))
    total = small.sum(axis=2).ravel()
    count = max(1, int(total.size * fraction))
    darkest = np.argpartition(total, count - 1)[:count]
    return small.reshape(-1, 3)[darkest].mean(axis=0).astype(np.float32)


def remove_veil(rgb: np.ndarray, veil: Veil, t_min: float = 0.5) -> np.ndarray:
    """``J = (I - A) / t + A`` with ``t`` clipped to at least ``t_min``; float32 in [0, 1]."""
    rgb = _check(rgb)
    if veil.transmission.shape != rgb.shape[:2]:
        raise ValueError(f"veil of shape {veil.transmission.shape} does not fit an image of shape {rgb.shape[:2]}")
    t = np.maximum(veil.transmission, t_min)[..., None]
    return np.clip((rgb - veil.airlight) / t + veil.airlight, 0, 1).astype(np.float32)


def colourfulness(rgb: np.ndarray) -> float:
    """Mean spread between the brightest and darkest colour channel of each pixel (0: grey)."""
    rgb = _check(rgb)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]   # channel by channel: a 12 MP photo in 0.2 s, not 1.3
    return float((np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)).mean())


def bright_level(rgb: np.ndarray, percentile: float = 95, max_side: int = _WORK_SIDE) -> float:
    """How bright a photo's bright parts are: the ``percentile`` of its pixels' brightest
    channel (on every k-th pixel, so that at most about ``max_side`` px per side count)."""
    rgb = _check(rgb)
    step = max(1, max(rgb.shape[:2]) // max_side)
    return float(np.percentile(rgb[::step, ::step].max(axis=2), percentile))


def tint(airlight: np.ndarray) -> float:
    """How coloured an airlight is: (largest - smallest channel) / largest (0: neutral grey)."""
    airlight = np.asarray(airlight, np.float32)
    return float((airlight.max() - airlight.min()) / max(float(airlight.max()), 1e-3))


def clear_veil(rgb: np.ndarray, mode: str = "auto", threshold: float = VEIL_THRESHOLD,
               max_tint: float = 0.12, min_colour: float = 0.02,
               min_brightness: float = 0.9, min_floor: float = 0.05,
               max_cross: float = BUILDING_CROSS) -> tuple[np.ndarray, Veil | None]:
    """Take the veil away as ``mode`` says: ``"on"`` always, ``"off"`` never, ``"auto"`` where
    the photo shows the veil of rain (:func:`find_veil`, with the same arguments; then
    :func:`remove_veil`).

    Returns the image (float32 RGB in [0, 1]; the input itself when nothing is
    done) and the veil that was taken away, or ``None``.
    """
    veil = find_veil(rgb, mode, threshold, max_tint, min_colour, min_brightness, min_floor, max_cross)
    return (rgb, None) if veil is None else (remove_veil(rgb, veil), veil)


def find_veil(rgb: np.ndarray, mode: str = "auto", threshold: float = VEIL_THRESHOLD,
              max_tint: float = 0.12, min_colour: float = 0.02,
              min_brightness: float = 0.9, min_floor: float = 0.05,
              max_cross: float = BUILDING_CROSS) -> Veil | None:
    """The veil :func:`clear_veil` takes away, as ``mode`` says: ``"on"`` always the estimated
    one, ``"off"`` none (None), ``"auto"`` the one the photo shows, or None.

    ``"auto"`` finds the veil when all six hold:

    * :func:`estimate_veil` finds a strength of at least ``threshold``;
    * even the darkest pixels are lifted (:func:`floor_lift` at least ``min_floor``): a
      veil is added to every pixel, while a pale scene without one keeps some black. A
      crop of Rain100L's polar bears on snow under rain and no veil scores a strength of
      0.20 with a neutral airlight, but its eyes and twigs give a floor of 0.03 (dehazing
      it cost 9 dB). On our sets, no picture without a veil reaches both this floor and
      the other tests and loses more than 0.1 dB to the veil taken away;
    * the veil is near neutral (:func:`tint` at most ``max_tint``) at one end of the
      photo at least: rain and mist scatter daylight, so their veil is white or grey.
      The airlight (the most veiled pixels) is tested first. Under a light veil
      those are still mostly the scene's brightest colour, so where the airlight is
      tinted, the colour of the photo's darkest pixels (:func:`dark_end`, where the
      veil itself shows) is tested instead; where that one is neutral, the veil takes
      its colour from it (and its brightness from the airlight), provided they are
      lifted as the strength test asks (their darkest channel at least ``threshold``
      times the airlight's): the tint of near-black pixels says nothing. A scene
      coloured at both ends has a colour cast, not a veil: golden grass or blue water
      lift the darkest channel just as a veil does (clear Rain100L photos of that kind
      score strengths up to 0.32 with tints of 0.17-0.36, and dehazing the derained
      result costs them 3-10 dB);
    * the airlight is about as bright as the photo's bright parts (its largest channel
      at least ``min_brightness`` times :func:`bright_level`, the brightness that 95 %
      of the pixels stay under): seen through a veil, only a few highlights (lamps,
      glints) are much brighter than the veil itself. Where white window frames
      fill more of the photo and are brighter than the "airlight", the most veiled
      pixels are a pale wall, not a veil;
    * the photo has colour (:func:`colourfulness` at least ``min_colour``): in a
      grey photo the dark channel is the brightness itself and says nothing;
    * the photo shows no building's lattice of windows (on the working copy, a clear
      direction of thin bright lines, ``lattice.Spectrum.clarity`` at least
      ``lattice.MIN_CLARITY``, with lines square to it, ``cross`` under ``max_cross``): a
      pale facade with no black in it passes every other test. On our facade sets every
      veil ``auto`` found was such a facade (cross 7.6-104; dehazing cost them 0.3-6.1 dB);
      on the heavy sets and real photos whose veil it takes away, cross stays under 4.8.
      A veiled building keeps its veil: ``"on"`` takes it away.

    Use ``"on"`` for a misty photo that auto leaves alone (a tinted veil under
    street lights, a black-and-white photo), ``"off"`` for a hazy scene that should
    stay hazy.
    """
    if mode not in VEIL_MODES:
        raise ValueError(f"veil must be one of {', '.join(VEIL_MODES)}, got {mode!r}")
    if mode == "off":
        return None
    veil = estimate_veil(rgb)
    if mode == "auto":
        small = _working_copy(_check(rgb), _WORK_SIDE)   # estimate_veil's copy, made once for the tests
        if (veil.strength < threshold or colourfulness(rgb) < min_colour
                or veil.airlight.max() < min_brightness * bright_level(rgb)
                or veil.floor < min_floor
                or spectral_rotation(to_uint8(small)).lattice_at(max_cross)):
            return None
        if tint(veil.airlight) > max_tint:
            floor = dark_end(small)
            if tint(floor) > max_tint or floor.min() < threshold * veil.airlight.min():
                return None   # coloured at both ends, or dark pixels that no veil lifts
            veil = estimate_veil(rgb, airlight=veil.airlight.max() * floor / max(float(floor.max()), 1e-3))
    return veil
