"""Make a large-photo data set: clean pictures scaled up, under wide soft or thin sharp rain.

    python benchmarks/large.py OUT --clean DIR [--n 12] [--scale 3] [--seed 5] [--kind wide]

The project's rules were set on 480x320 pictures; in a large photo the same
scene is several times as many pixels across (frames 10-30 px wide, out-of-focus
streaks 5-20 px). This takes the first ``--n`` pictures of ``--clean DIR``
(in natural order, as ``rain2avoid.io.list_images`` lists them: ``2.png``
before ``10.png``), scales them up ``--scale`` times (bicubic) and draws one layer of
rain with :func:`rain2avoid.synth.add_heavy_rain`, no veil:

* ``wide``: streaks 6-14 px wide, blurred by 0.3-0.5 of their width, 80-250 px
  long, at up to 45 degrees from vertical; on half of the pictures a second
  layer of thin streaks (2-3 px) within 10 degrees of it;
* ``wide-vertical``: the same within 8 degrees of vertical, along window frames;
* ``thin``: sharp streaks 2-4 px wide, 60-150 px long, within 20 degrees of vertical;
* ``none``: the pictures as they are (any change is a loss).

Every kind draws the wide layer first, so that the same seed gives each picture
the same wide rain. Writes ``OUT/input/<k>.png``, ``OUT/target/<k>.png`` and
``OUT/settings.json`` for ``benchmarks/ablation.py OUT``. The clean pictures are only
drawn on and scored against.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rain2avoid.io import list_images, read_image, write_image
from rain2avoid.synth import add_heavy_rain

KINDS = ("wide", "wide-vertical", "thin", "none")


def draw_rain(rng: np.random.Generator, kind: str) -> list[dict]:
    """The rain layers (``add_heavy_rain`` settings) of one picture."""
    base = float(rng.uniform(-8, 8)) if kind == "wide-vertical" else float(rng.uniform(-45, 45))
    width = int(rng.choice([6, 8, 10, 14]))
    layers = [dict(angle=base, density=float(rng.uniform(0.01, 0.04)), length=float(rng.uniform(80, 250)),
                   width=width, intensity=float(rng.uniform(0.1, 0.3)), blur=float(rng.uniform(0.3, 0.5) * width))]
    if kind == "thin":
        return [dict(angle=float(rng.uniform(-20, 20)), density=float(rng.uniform(0.01, 0.03)),
                     length=float(rng.uniform(60, 150)), width=int(rng.choice([2, 3, 4])),
                     intensity=float(rng.uniform(0.3, 0.6)), blur=1.0)]
    if rng.uniform() < 0.5:
        layers.append(dict(angle=base + float(rng.uniform(-10, 10)), density=float(rng.uniform(0.01, 0.03)),
                           length=float(rng.uniform(40, 100)), width=int(rng.choice([2, 3])),
                           intensity=float(rng.uniform(0.2, 0.5)), blur=1.0))
    return layers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--clean", type=Path, required=True, help="folder of clean pictures (only drawn on)")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--kind", choices=KINDS, default="wide")
    args = ap.parse_args()
    if args.n < 1 or args.scale < 1:
        ap.error("--n and --scale must be at least 1")
    paths = list_images(args.clean)[:args.n]
    if not paths:
        ap.error(f"no images in {args.clean}")
    rng = np.random.default_rng(args.seed)
    settings = {}
    for k, path in enumerate(tqdm(paths, desc="large photos", unit="image")):
        clean = read_image(path)[..., :3]
        clean = cv2.resize(clean, (clean.shape[1] * args.scale, clean.shape[0] * args.scale),
                           interpolation=cv2.INTER_CUBIC)
        layers = draw_rain(rng, args.kind)
        rainy = clean if args.kind == "none" else add_heavy_rain(clean, layers, seed=args.seed * 100 + k)[0]
        write_image(args.out / "input" / f"{k}.png", rainy)
        write_image(args.out / "target" / f"{k}.png", clean)
        settings[str(k)] = {"source": path.name, "layers": [] if args.kind == "none" else layers}
    (args.out / "settings.json").write_text(json.dumps(settings, indent=1))


if __name__ == "__main__":
    main()
