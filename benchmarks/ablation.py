"""One ablation row: per-image ``derain`` with settings overrides, scored on a data set.

    python benchmarks/ablation.py DATASET [preset=fast] [SETTING=VALUE ...]
    python benchmarks/ablation.py ../shared/data/rain100l-dev mask=ldgp guard=0
    python benchmarks/ablation.py ../shared/data/rain100l-dev closed-form mask=ldgp
    python benchmarks/ablation.py ../shared/data/real-rain-dev mask=streaks out=/tmp/real

A DATASET with ``input/`` and ``target/`` folders is scored against the targets.
A folder of photos without ground truth (e.g. real-rain-dev) is scored with
NIQE and BRISQUE instead: the means of the inputs and of the outputs, and on
how many photos each score fell. ``out=DIR`` also writes the outputs there.

SETTING is any ``rain2avoid.sdrl.Settings`` field; ``closed-form`` scores the
(guarded, if ``guard=1``) expected reference itself, with no network. Prints one
line: Y PSNR / SSIM, RGB PSNR / SSIM, images worse than the input, and seconds
per image (in-process: imports excluded). Ground truth is used only to score.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from rain2avoid import derain_detailed, psnr, ssim
from rain2avoid.io import list_images, read_image, write_image
from rain2avoid.pipeline import compute_mask, make_targets, to_uint8
from rain2avoid.sdrl import Settings, resolve_settings


def _parse(value: str, kind):
    if kind is bool:
        return value.lower() in ("1", "true", "yes")
    return kind(value)


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    dataset, rest = Path(argv[0]), argv[1:]
    closed_form = "closed-form" in rest
    pairs = dict(a.split("=", 1) for a in rest if "=" in a)
    preset = pairs.pop("preset", "fast")
    out_dir = Path(pairs.pop("out")) if "out" in pairs else None
    types = {f.name: type(getattr(Settings(), f.name)) for f in dataclasses.fields(Settings)}
    unknown = set(pairs) - set(types)
    if unknown:
        sys.exit(f"unknown setting(s): {', '.join(sorted(unknown))}; valid: {', '.join(types)}")
    options = {k: _parse(v, types[k]) for k, v in pairs.items()}
    settings = resolve_settings(preset, **options)
    if not (dataset / "target").is_dir():
        if (dataset / "input").is_dir():
            sys.exit(f"{dataset} has input/ but no target/: give a folder of pairs, or the folder of photos itself")
        if closed_form:
            sys.exit("closed-form needs ground truth (DATASET/target); a folder of photos is scored by derain only")
        return no_reference(dataset, preset, options, out_dir, " ".join(rest) or "defaults")
    rows, worse = [], []
    for path in list_images(dataset / "input"):
        x, t = read_image(path), read_image(dataset / "target" / path.name)
        if closed_form:
            start = time.perf_counter()
            rgb = x.astype(np.float32) / 255
            mask, _ = compute_mask(to_uint8(rgb), settings.mask)
            out = to_uint8(np.minimum(make_targets(rgb, mask, settings)[0], rgb))
            seconds = time.perf_counter() - start
        else:
            r = derain_detailed(x, preset, **options)
            out, seconds = r.image, r.seconds
        if out_dir is not None:
            write_image(out_dir / path.name, out)
        rows.append([psnr(out, t), ssim(out, t), psnr(out, t, "rgb"), ssim(out, t, "rgb"),
                     psnr(out, t) < psnr(x, t), seconds])
        if rows[-1][4]:
            worse.append(f"{path.name} {psnr(out, t) - psnr(x, t):+.2f} dB")
    m = np.array(rows, dtype=float).mean(axis=0)
    label = " ".join(rest) or "defaults"
    print(f"{label}: Y {m[0]:.2f} / {m[1]:.4f}  RGB {m[2]:.2f} / {m[3]:.4f}  worse {int(m[4] * len(rows))}/"
          f"{len(rows)}{' (' + ', '.join(worse) + ')' if worse else ''}  {m[5]:.2f} s/image")


def no_reference(folder: Path, preset: str, options: dict, out_dir: Path | None, label: str) -> None:
    """NIQE and BRISQUE of every photo in ``folder`` before and after ``derain``; one line."""
    from rain2avoid import brisque, niqe
    rows, paths = [], list_images(folder)
    if not paths:
        sys.exit(f"no images in {folder}")
    for path in paths:
        x, meta = read_image(path, with_meta=True)
        r = derain_detailed(x, preset, **options)
        if out_dir is not None:
            write_image(out_dir / path.name, r.image, meta=meta)
        rows.append([niqe(x), niqe(r.image), brisque(x), brisque(r.image), r.seconds])
        print(f"  {path.name}: NIQE {rows[-1][0]:.3f} -> {rows[-1][1]:.3f}  BRISQUE {rows[-1][2]:.2f} -> "
              f"{rows[-1][3]:.2f}  {r.seconds:.1f} s", flush=True)
    a = np.array(rows)
    n = len(rows)
    print(f"{label}: NIQE {a[:, 0].mean():.3f} -> {a[:, 1].mean():.3f} (lower on {int((a[:, 1] < a[:, 0]).sum())}/{n})"
          f"  BRISQUE {a[:, 2].mean():.2f} -> {a[:, 3].mean():.2f} (lower on {int((a[:, 3] < a[:, 2]).sum())}/{n})"
          f"  {a[:, 4].mean():.1f} s/image")


if __name__ == "__main__":
    main(sys.argv[1:])
