"""Per-image training started from a model of other images (`derain --init`), scored held out.

    python benchmarks/tune.py DATASET [--folds 2 | --in-sample] [--preset fast] [--steps N] [--out DIR]

The images are split into ``--folds`` folds (every k-th image). For each fold, one
model is trained on the *other* folds' rainy inputs as ``rain2avoid train`` does
(``batch.train.train_files``, ``sdrl.FOLDER_PRESETS["fast"]``, no clean images), and
each image of the fold is derained with ``derain_detailed(image, init=model)``
(``sdrl.TUNE_PRESETS[--preset]``; ``--steps`` overrides its steps). So no image is
derained by a model that saw it, as in a pipeline that trained once on earlier photos.
``--in-sample`` trains one model on all the rainy inputs instead, as ``rain2avoid train
rainy/ --model rain.pt`` followed by ``rain2avoid derain rainy/ --init rain.pt`` does
(self-supervised: the model sees each image's rain, never a clean image).

A DATASET with ``input/`` and ``target/`` is scored against the targets (Y PSNR / SSIM,
images worse than their input); a folder of photos with NIQE and BRISQUE. Prints one
line; seconds are per image, in-process, the models' training left out (it is printed
apart). Ground truth is used only to score.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rain2avoid import brisque, derain_detailed, niqe, psnr, ssim
from rain2avoid.batch.train import train_files
from rain2avoid.io import list_images, read_image, write_image
from rain2avoid.sdrl import FOLDER_PRESETS, resolve_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--in-sample", action="store_true", help="one model of all the images (not held out)")
    ap.add_argument("--preset", default="fast", help="fast or high (sdrl.TUNE_PRESETS)")
    ap.add_argument("--steps", type=int, default=None, help="per-image steps (default: the tune preset's)")
    ap.add_argument("--out", type=Path, default=None, help="also write the outputs here")
    args = ap.parse_args()
    paired = (args.dataset / "target").is_dir()
    files = list_images(args.dataset / "input" if paired else args.dataset)
    if not args.in_sample and (len(files) < args.folds or args.folds < 2):
        raise SystemExit(f"need at least 2 folds and one image per fold; got {len(files)} image(s), "
                         f"--folds {args.folds}")
    folds = 1 if args.in_sample else args.folds
    rows, worse, train_seconds = [], [], 0.0
    for k in range(folds):
        held = files[k::folds]
        start = time.perf_counter()
        model, _ = train_files(files if args.in_sample else [f for f in files if f not in held],
                               resolve_settings("fast", FOLDER_PRESETS))
        train_seconds += time.perf_counter() - start
        for path in held:
            x, meta = read_image(path, with_meta=True)
            r = derain_detailed(x, args.preset, init=model, steps=args.steps)
            if args.out is not None:
                write_image(args.out / path.name, r.image, meta=meta)
            if paired:
                t = read_image(args.dataset / "target" / path.name)
                rows.append([psnr(x, t), psnr(r.image, t), ssim(r.image, t), r.seconds])
                if rows[-1][1] < rows[-1][0]:
                    worse.append(f"{path.name} {rows[-1][1] - rows[-1][0]:+.2f} dB")
            else:
                rows.append([niqe(x), niqe(r.image), brisque(x), brisque(r.image), r.seconds])
            print(f"  {path.name}: {' '.join(f'{v:.3f}' for v in rows[-1])}", flush=True)
    a = np.array(rows)
    n = len(rows)
    label = (f"{args.dataset} --preset {args.preset} tuned from "
             + ("one model of all the images" if args.in_sample else f"a model of the other {folds - 1} fold(s)"))
    if paired:
        print(f"{label}: Y {a[:, 1].mean():.2f} / {a[:, 2].mean():.4f}  worse {len(worse)}/{n}"
              f"{' (' + ', '.join(worse) + ')' if worse else ''}  {a[:, 3].mean():.2f} s/image"
              f"  (models: {train_seconds:.0f} s in all)")
    else:
        print(f"{label}: NIQE {a[:, 0].mean():.3f} -> {a[:, 1].mean():.3f} (lower on {int((a[:, 1] < a[:, 0]).sum())}"
              f"/{n})  BRISQUE {a[:, 2].mean():.2f} -> {a[:, 3].mean():.2f} (lower on "
              f"{int((a[:, 3] < a[:, 2]).sum())}/{n})  {a[:, 4].mean():.2f} s/image  (models: {train_seconds:.0f} s)")


if __name__ == "__main__":
    main()
