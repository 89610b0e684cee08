"""Make a heavy-rain data set with the project's renderer: several streak layers through a veil.

    python benchmarks/heavy.py OUT [--n 24] [--seed 0] [--clean DIR] [--no-veil] [--blend screen]

Writes ``OUT/input/<k>.png`` (rainy), ``OUT/target/<k>.png`` (clean) and
``OUT/settings.json`` (the rain drawn on each), so ``benchmarks/ablation.py OUT``
and ``rain2avoid eval`` can score methods on it. The clean pictures are crops of
the photos that ship inside scikit-image (resized to 480x320 or 320x480), or of
the images in ``--clean DIR`` (for example the clean half of a paired data set:
it is only drawn on and scored against, never trained on). The rain is
``rain2avoid.synth.random_heavy_rain``: 1-3 layers of streaks up to 70
degrees from vertical, 1-5 px wide, soft or sharp, dense or sparse, and a veil of
0.05-0.3 with an airlight of 0.8-0.95.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rain2avoid.io import list_images, read_image, write_image
from rain2avoid.synth import add_heavy_rain, random_heavy_rain

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "camera", "brick", "grass")


def _skimage_photo(name: str) -> np.ndarray:
    from skimage import data

    image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    image = np.asarray(image)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def _crop(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random 480x320 (or 320x480, following the photo) crop at a random scale."""
    h, w = image.shape[:2]
    oh, ow = (320, 480) if w >= h else (480, 320)
    s = max(oh / h, ow / w) * rng.uniform(1.0, 1.4)
    image = cv2.resize(image, (max(ow, round(w * s)), max(oh, round(h * s))), interpolation=cv2.INTER_AREA)
    y = int(rng.integers(image.shape[0] - oh + 1))
    x = int(rng.integers(image.shape[1] - ow + 1))
    return np.ascontiguousarray(image[y:y + oh, x:x + ow])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clean", type=Path, help="folder of clean images to draw on (default: scikit-image photos)")
    ap.add_argument("--no-veil", action="store_true")
    ap.add_argument("--blend", choices=("add", "screen"), default="add",
                    help="how the streaks are laid on: added (default) or as a 'screen' layer")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.clean:
        sources = [(p.stem, lambda p=p: read_image(p)[..., :3]) for p in list_images(args.clean)]
    else:
        sources = [(name, lambda name=name: _skimage_photo(name)) for name in PHOTOS]
    settings = {}
    for k in tqdm(range(args.n), desc="heavy rain", unit="image"):
        name, load = sources[k % len(sources)]
        clean = _crop(load(), rng)
        rain = random_heavy_rain(rng, veil=not args.no_veil)
        rainy, _, _ = add_heavy_rain(clean, seed=args.seed * 1000 + k, blend=args.blend, **rain)
        write_image(args.out / "input" / f"{k}.png", rainy)
        write_image(args.out / "target" / f"{k}.png", clean)
        settings[str(k)] = {"source": name, "blend": args.blend, **rain}
    (args.out / "settings.json").write_text(json.dumps(settings, indent=1))


if __name__ == "__main__":
    main()
