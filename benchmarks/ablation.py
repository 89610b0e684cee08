"""One ablation row: per-image ``derain`` with settings overrides, scored on a data set.

    python benchmarks/ablation.py DATASET [preset=fast] [SETTING=VALUE ...]
    python benchmarks/ablation.py ../shared/data/rain100l-dev mask=ldgp guard=0
    python benchmarks/ablation.py ../shared/data/rain100l-dev closed-form mask=ldgp

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
from rain2avoid.io import list_images, read_image
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
    types = {f.name: type(getattr(Settings(), f.name)) for f in dataclasses.fields(Settings)}
    unknown = set(pairs) - set(types)
    if unknown:
        sys.exit(f"unknown setting(s): {', '.join(sorted(unknown))}; valid: {', '.join(types)}")
    options = {k: _parse(v, types[k]) for k, v in pairs.items()}
    settings = resolve_settings(preset, **options)
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
        rows.append([psnr(out, t), ssim(out, t), psnr(out, t, "rgb"), ssim(out, t, "rgb"),
                     psnr(out, t) < psnr(x, t), seconds])
        if rows[-1][4]:
            worse.append(f"{path.name} {psnr(out, t) - psnr(x, t):+.2f} dB")
    m = np.array(rows, dtype=float).mean(axis=0)
    label = " ".join(rest) or "defaults"
    print(f"{label}: Y {m[0]:.2f} / {m[1]:.4f}  RGB {m[2]:.2f} / {m[3]:.4f}  worse {int(m[4] * len(rows))}/"
          f"{len(rows)}{' (' + ', '.join(worse) + ')' if worse else ''}  {m[5]:.2f} s/image")


if __name__ == "__main__":
    main(sys.argv[1:])
