"""Make a facade data set: Rain100L-like rain on building facades (texture that looks like rain).

    python benchmarks/facade.py OUT [--n 12] [--seed 7] [--dense]

Writes ``OUT/input/<k>.png`` (rainy), ``OUT/target/<k>.png`` (clean) and
``OUT/settings.json`` (the rain drawn on each), for ``benchmarks/ablation.py OUT``.
The clean pictures are ``rain2avoid.synth.facade``: windows framed by thin bright
lines, most of them vertical, the failure case of a streak detector (it takes the
frames for rain, flattens them and leaves the rain between them). The rain is
Rain100L's kind: one layer of thin streaks within 20 degrees of vertical, 20-40 px
long, bright (``rain2avoid.synth.add_rain``). With ``--dense`` it is dense, faint rain
at up to 40 degrees instead (streaks that touch and cross, so few separate segments
are found: the case where the streak direction comes from the spectrum or the HOG
vote, and a lattice of frames can be taken for it). The clean pictures are only drawn
on and scored against, never trained on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rain2avoid.io import write_image
from rain2avoid.synth import add_rain, facade


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dense", action="store_true", help="dense faint rain at up to 40 degrees")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    settings = {}
    for k in tqdm(range(args.n), desc="facades", unit="image"):
        clean = facade(rng)
        if args.dense:
            rain = dict(angle=float(rng.uniform(-40, 40)), density=float(rng.uniform(0.15, 0.3)),
                        length=float(rng.uniform(30, 40)), width=1, intensity=float(rng.uniform(0.15, 0.25)),
                        blur=float(rng.uniform(0.0, 0.8)))
        else:
            rain = dict(angle=float(rng.uniform(-20, 20)), density=float(rng.uniform(0.015, 0.04)),
                        length=float(rng.uniform(20, 40)), width=1, intensity=float(rng.uniform(0.5, 0.8)),
                        blur=float(rng.uniform(0.7, 1.0)))
        rainy, _ = add_rain(clean, seed=args.seed * 1000 + k, **rain)
        write_image(args.out / "input" / f"{k}.png", rainy)
        write_image(args.out / "target" / f"{k}.png", clean)
        settings[str(k)] = rain
    (args.out / "settings.json").write_text(json.dumps(settings, indent=1))


if __name__ == "__main__":
    main()
