"""Stage 2, stochastic derained references (SDR), uniform or NSS-weighted.

Every rain pixel ``p`` (mask > ``threshold``) draws a replacement colour from
the background pixels ``q`` (mask == 0) of the ``window`` x ``window``
neighbourhood around it. The uniform sampler gives every candidate the same
probability; NSS (non-local stochastic sampling) weights candidate ``q`` by
``1 / max(d(p, q) ** eta, 1e-4)``, ``d`` the L1 distance between the
``patch`` x ``patch`` colour patches around ``p`` and ``q`` over the positions
that are background in ``p``'s patch (README, "How it works", step 2).

Masks are LDGP's: uint8 (H, W), graded from 0 (background) to 255; a pixel is
rain where its value is above ``threshold`` (10). A bool mask (True = rain) is
taken as a 0/255 mask. A mask whose values all lie in
[0, 1] (a 0/1 mask), not all 0, is refused with a ``ValueError``: none of its
pixels would count as rain. Pass it as bool (``mask > 0``) or multiply it by 255.

Everything is vectorised over pixels: one pass per window offset.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from .ldgp import RAIN_LEVEL

__all__ = ["Candidates", "candidates", "expected_reference", "sample_references", "ReferenceSampler",
           "SAMPLERS"]

SAMPLERS = ("nss", "uniform")
_CHUNK = 1 << 15   # rain pixels whose candidates expected_reference gathers at once


class Candidates(NamedTuple):
    """Replacement candidates of every rain pixel.

    rows, cols: (n,) coordinates of the rain pixels.
    offsets: (m, 2) window offsets (dy, dx).
    weights: (n, m) float64 unnormalised probabilities, 0 where the offset is not a candidate.
    """

    rows: np.ndarray
    cols: np.ndarray
    offsets: np.ndarray
    weights: np.ndarray


def _check(image: np.ndarray, mask: np.ndarray, sampler: str, window: int, patch: int) -> None:
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an (H, W, C) image (a grey one as image[..., None]), got shape {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if window < 3 or window % 2 == 0 or patch < 1 or patch % 2 == 0:
        raise ValueError(f"window (>= 3) and patch sizes must be odd, got window={window}, patch={patch}")


def _levels(mask, threshold: float) -> np.ndarray:
    """``mask`` as LDGP levels: a bool mask (True = rain) becomes 0/255; ValueError for a 0/1 mask."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask.astype(np.uint8) * 255
    if mask.size and 0 < mask.max() <= min(1, threshold):
        raise ValueError(f"the mask's values lie in [0, 1] (a 0/1 mask?), but rain is mask > {threshold} "
                         f"(255 = rain): pass a bool mask (mask > 0, True = rain) or mask * 255")
    return mask


def candidates(image: np.ndarray, mask: np.ndarray, sampler: str = "nss", window: int = 7,
               patch: int = 3, eta: float = 0.5, threshold: int = RAIN_LEVEL) -> Candidates:
    """Candidate offsets and their sampling weights for every rain pixel.

    Args:
        image: (H, W, C) image, any numeric dtype (distances use its values as they are).
        mask: (H, W) LDGP mask; > threshold is rain, == 0 is background (a candidate).
            A bool mask counts as 255 where True; a 0/1 mask is refused (see the module).
        sampler: "nss" (similarity-weighted) or "uniform".
        window: K, side of the candidate window.
        patch: k, side of the similarity patch; grows by 2 (up to ``window``) while
            the patch around ``p`` holds no background pixel.
        eta: exponent of the NSS distance.
        threshold: mask values above it are rain pixels to replace.
    """
    return _candidates(np.asarray(image), _levels(mask, threshold), sampler, window, patch, eta, threshold)


def _candidates(image: np.ndarray, mask: np.ndarray, sampler: str = "nss", window: int = 7,
                patch: int = 3, eta: float = 0.5, threshold: int = RAIN_LEVEL) -> Candidates:
    """:func:`candidates` of a mask already checked by :func:`_levels`."""
    _check(image, mask, sampler, window, patch)
    h, w = mask.shape
    rows, cols = np.nonzero(mask > threshold)
    r = window // 2
    offsets = np.array([(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)], np.int64)
    background = mask == 0

    # Candidate validity: background and inside the image (a border of r px counts as not
    # background). Arrays are (offset, rain pixel) while they are filled, one offset at a time.
    ring = np.pad(background, r, constant_values=False).ravel()
    in_ring = (rows + r) * (w + 2 * r) + (cols + r)     # each rain pixel in the padded map, flattened
    valid = np.stack([ring[in_ring + dy * (w + 2 * r) + dx] for dy, dx in offsets]) if rows.size else \
        np.zeros((len(offsets), 0), bool)
    if sampler == "uniform" or rows.size == 0:
        return Candidates(rows, cols, offsets, np.ascontiguousarray(valid.T, np.float64))

    # Patch size per rain pixel: smallest k whose (clipped) k x k window holds a
    # pixel with mask == 0 (the reference treats any mask value > 0 as rain here).
    sizes = list(range(patch, window + 1, 2)) or [patch]
    k_of = np.full(rows.size, sizes[-1])
    for k in reversed(sizes):
        count = cv2.boxFilter(background.astype(np.float32), -1, (k, k), normalize=False,
                              borderType=cv2.BORDER_CONSTANT)
        k_of[count[rows, cols] > 0.5] = k

    # Zero-padded canvas, one plane per channel; positions outside the image count as
    # background in p's patch. Each offset's L1 distance map is summed channel by channel
    # (the order numpy's sum takes) and box-filtered once per patch size in use.
    m = sizes[-1] // 2
    pad = r + m
    planes = [np.pad(np.ascontiguousarray(image[..., c], dtype=np.float32), pad) for c in range(image.shape[2])]
    weight_bg = np.pad(background, pad, constant_values=True).astype(np.float32)
    y0, y1, x0, x1 = pad - m, pad + h + m, pad - m, pad + w + m
    centre = [plane[y0:y1, x0:x1] for plane in planes]
    bg = weight_bg[y0:y1, x0:x1]
    in_maps = (rows + m) * (x1 - x0) + (cols + m)     # each rain pixel in the distance maps, flattened
    used = [(sel, in_maps[sel], k) for k in sizes for sel in [np.flatnonzero(k_of == k)] if sel.size]
    dist = np.zeros((len(offsets), rows.size), np.float64)
    diff, part = np.empty(bg.shape, np.float32), np.empty(bg.shape, np.float32)
    for j, (dy, dx) in enumerate(offsets):
        for c, plane in enumerate(planes):
            cv2.absdiff(centre[c], plane[y0 + dy:y1 + dy, x0 + dx:x1 + dx], part if c else diff)
            if c:
                cv2.add(diff, part, diff)
        cv2.multiply(diff, bg, diff)
        for sel, where, k in used:
            box = cv2.boxFilter(diff, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
            dist[j, sel] = box.ravel()[where]
    weights = np.maximum(dist, 0.0, out=dist)
    weights **= eta
    np.maximum(weights, 1e-4, out=weights)
    np.divide(1.0, weights, out=weights)
    weights[~valid] = 0.0
    return Candidates(rows, cols, offsets, np.ascontiguousarray(weights.T))


def _bands(height: int, window: int, band: int):
    """Row bands (a, b) with their halo (lo, hi): the rows that rows a..b-1 depend on.

    A rain pixel looks at most ``window // 2`` rows away for candidates and
    another ``window // 2`` for their similarity patches, so a band computed on
    rows lo..hi-1 alone gives exactly the whole-image result on rows a..b-1.
    """
    halo = 2 * (window // 2)
    for a in range(0, height, band):
        b = min(a + band, height)
        yield a, b, max(a - halo, 0), min(b + halo, height)


def _candidates_in_bands(image: np.ndarray, mask: np.ndarray, sampler: str, band: int,
                         **kwargs):
    """:func:`candidates` of the whole image, computed band by band (bounded memory).

    Yields one :class:`Candidates` per band, with rows in whole-image coordinates,
    holding only the band's own rain pixels that have at least one candidate.
    """
    mask = _levels(mask, kwargs.get("threshold", RAIN_LEVEL))  # the whole mask: a band of it may hold only 0 and 1
    _check(image, mask, sampler, kwargs.get("window", 7), kwargs.get("patch", 3))
    for a, b, lo, hi in _bands(image.shape[0], kwargs.get("window", 7), band):
        c = _candidates(image[lo:hi], mask[lo:hi], sampler, **kwargs)
        keep = (c.rows >= a - lo) & (c.rows < b - lo) & (c.weights.sum(axis=1) > 0)
        if np.any(keep):
            yield Candidates(c.rows[keep] + lo, c.cols[keep], c.offsets, c.weights[keep])


def expected_reference(image: np.ndarray, mask: np.ndarray, sampler: str = "nss", band: int = 512,
                       **kwargs) -> np.ndarray:
    """The mean the stochastic references converge to, computed in closed form.

    Returns a float32 (H, W, C) image on the input's scale (an (H, W) one for a grey
    image): the input on background pixels, the weighted average of the candidates on
    rain pixels (the input where a rain pixel has no candidate). The image is processed
    in bands of ``band`` rows to bound memory; the result does not depend on it.
    ``kwargs`` go to :func:`candidates`.
    """
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim == 2:   # grey, as rain_mask takes it
        return expected_reference(image[..., None], mask, sampler, band, **kwargs)[..., 0]
    out = image.astype(np.float32)
    w = mask.shape[1]
    r = kwargs.get("window", 7) // 2
    colours = np.pad(image, ((r, r), (r, r), (0, 0))).reshape(-1, image.shape[2])  # offsets outside have p = 0
    for c in _candidates_in_bands(image, mask, sampler, band, **kwargs):
        p = c.weights / c.weights.sum(axis=1, keepdims=True)
        at = (c.rows + r) * (w + 2 * r) + (c.cols + r)
        steps = c.offsets[:, 0] * (w + 2 * r) + c.offsets[:, 1]
        for a in range(0, c.rows.size, _CHUNK):   # bounded memory: (chunk, window ** 2, C) at a time
            near = colours[at[a:a + _CHUNK, None] + steps[None, :]].astype(np.float64)
            out[c.rows[a:a + _CHUNK], c.cols[a:a + _CHUNK]] = np.einsum("nm,nmc->nc", p[a:a + _CHUNK], near)
    return out


def sample_references(image: np.ndarray, mask: np.ndarray, n: int = 50, sampler: str = "nss",
                      seed: int = 0, band: int = 512, **kwargs) -> np.ndarray:
    """``n`` stochastic derained references, shape (n, H, W, C) ((n, H, W) for a grey
    image), dtype of ``image``.

    Each reference equals the input on background pixels; each rain pixel takes
    the input colour of one candidate, drawn independently per reference with
    ``numpy.random.default_rng(seed)``. ``kwargs`` go to :func:`candidates`.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim == 2:
        return sample_references(image[..., None], mask, n, sampler, seed, band, **kwargs)[..., 0]
    refs = np.repeat(image[None], n, axis=0)
    rng = np.random.default_rng(seed)
    for c in _candidates_in_bands(image, mask, sampler, band, **kwargs):
        cum = np.cumsum(c.weights, axis=1)
        cum /= cum[:, -1:]
        last = len(c.offsets) - 1
        for i in range(n):
            u = rng.random(c.rows.size)
            pick = np.minimum((cum <= u[:, None]).sum(axis=1), last)
            refs[i, c.rows, c.cols] = image[c.rows + c.offsets[pick, 0], c.cols + c.offsets[pick, 1]]
    return refs


class ReferenceSampler:
    """Stochastic references drawn one at a time from candidates computed once.

    The candidates and their cumulative weights (:func:`candidates`, band by
    band) are kept, so each :meth:`draw` only samples: a fresh reference per
    training step costs a few milliseconds for a 480 x 320 image. Each draw
    has the distribution of one of :func:`sample_references`'s; for an image
    of at most ``band`` rows, ``k`` draws from ``numpy.random.default_rng(seed)``
    are exactly the ``k`` references of ``sample_references(..., n=k, seed=seed)``.
    ``kwargs`` go to :func:`candidates`.
    """

    def __init__(self, image: np.ndarray, mask: np.ndarray, sampler: str = "nss", band: int = 512, **kwargs):
        self.image = np.asarray(image)
        parts = list(_candidates_in_bands(self.image, np.asarray(mask), sampler, band, **kwargs))
        r = kwargs.get("window", 7) // 2
        self.offsets = np.array([(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)], np.int64)
        # Rain pixels in row-major order (bands come in order), as sample_references visits them.
        self.rows = np.concatenate([c.rows for c in parts]) if parts else np.zeros(0, np.int64)
        self.cols = np.concatenate([c.cols for c in parts]) if parts else np.zeros(0, np.int64)
        self.cum = [np.cumsum(c.weights, axis=1) for c in parts]
        self.cum = np.concatenate([c / c[:, -1:] for c in self.cum]) if parts else np.zeros((0, len(self.offsets)))

    def draw(self, rng: np.random.Generator, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """One reference: (H, W, C), the image's dtype; with ``box = (y0, y1, x0, x1)`` only
        that window of it, (y1 - y0, x1 - x0, C), sampling only the rain pixels inside."""
        h, w = self.image.shape[:2]
        y0, y1, x0, x1 = box if box is not None else (0, h, 0, w)
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"box {box} is not a window of the {h} x {w} image")
        out = self.image[y0:y1, x0:x1].copy()
        lo, hi = np.searchsorted(self.rows, [y0, y1])
        inside = lo + np.flatnonzero((self.cols[lo:hi] >= x0) & (self.cols[lo:hi] < x1))
        if inside.size == 0:
            return out
        rows, cols, cum = self.rows[inside], self.cols[inside], self.cum[inside]
        u = rng.random(inside.size)
        pick = np.minimum((cum <= u[:, None]).sum(axis=1), len(self.offsets) - 1)
        out[rows - y0, cols - x0] = self.image[rows + self.offsets[pick, 0], cols + self.offsets[pick, 1]]
        return out
