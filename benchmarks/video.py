"""Video benchmark: synthetic rainy clips (a slow pan, rain redrawn every frame) through ``derain_video``.

    python benchmarks/video.py [--cases all] [--frames 48] [--threads 2] [--network-only]
        [--strip docs/video-strip.png] [--out benchmarks/results/video]

Each clip is ``synth.rainy_clip`` on a scikit-image photo (48 frames of 480x320 by
default), written as a lossless FFV1 .mkv, derained with ``derain_video`` into
another .mkv (defaults), read back and scored against the clean clip (used only to
score): mean Y-PSNR over the frames (``metrics.psnr``) of the rainy and derained
clips, the flicker of each (``metrics.flicker``) and the derained clip's flicker as
a share of the rainy clip's, and the wall and CPU seconds of ``derain_video``
(reading, training, deraining, writing). Prints a Markdown table, writes
``results.md``/``results.json`` in ``--out`` and a strip of frames of the first clip
(rainy | derained) to ``--strip``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rain2avoid import derain_video, psnr, write_image
from rain2avoid.metrics import flicker
from rain2avoid.synth import clean_example, rainy_clip
from rain2avoid.video import read_frames, write_video

# name: (clean photo, rain preset (None: add_rain's defaults), pan (dx, dy) px/frame, seed)
CASES = {
    "astronaut-default": ("astronaut", None, (2.0, 0.5), 1),
    "coffee-heavy": ("coffee", "heavy", (3.0, 0.0), 2),
    "chelsea-wide": ("chelsea", "wide", (1.5, 1.0), 3),
    "rocket-slanted": ("rocket", "slanted-left", (-2.0, 1.0), 4),
    "hubble-light": ("hubble_deep_field", "light", (1.0, -1.0), 5),
    "cells-steep": ("immunohistochemistry", "steep-right", (0.0, 2.0), 6),
    "retina-slanted": ("retina", "slanted-right", (-1.5, -0.5), 7),
}


def run_case(name: str, frames: int, folder: Path, **options) -> dict:
    photo, rain, pan, seed = CASES[name]
    rainy, clean = rainy_clip(clean_example(photo, size=None), frames=frames, pan=pan, rain=rain, seed=seed)
    src, dst = folder / f"{name}.mkv", folder / f"{name}-derained.mkv"
    write_video(src, rainy, fps=24)
    assert np.array_equal(np.stack(list(read_frames(src))), rainy), "FFV1 round trip is not lossless"
    wall, cpu = time.perf_counter(), time.process_time()
    result = derain_video(src, dst, **options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = np.stack(list(read_frames(dst)))
    row = {
        "clip": name, "photo": photo, "rain": rain or "default", "pan": list(pan), "frames": len(out),
        "rainy_psnr": float(np.mean([psnr(a, b) for a, b in zip(rainy, clean)])),
        "psnr": float(np.mean([psnr(a, b) for a, b in zip(out, clean)])),
        "rainy_flicker": flicker(rainy, clean), "flicker": flicker(out, clean),
        "trusted": result.trusted, "wall_s": wall, "cpu_s": cpu,
    }
    row["gain"] = row["psnr"] - row["rainy_psnr"]
    row["flicker_share"] = row["flicker"] / row["rainy_flicker"]
    row["strip"] = (rainy, out)
    return row


def strip(rainy: np.ndarray, out: np.ndarray, picks=(0, 0.5, 1.0), gap: int = 4) -> np.ndarray:
    """Rows of (rainy | derained) for frames at the given fractions of the clip, half size."""
    rows = []
    for f in picks:
        i = int(round(f * (len(rainy) - 1)))
        a, b = rainy[i][::2, ::2], out[i][::2, ::2]
        rows.append(np.concatenate([a, np.full((a.shape[0], gap, 3), 255, np.uint8), b], axis=1))
        rows.append(np.full((gap, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def table(rows: list) -> str:
    lines = ["| clip | rain | pan px/frame | rainy dB | derained dB | gain dB | flicker rainy -> derained (share) "
             "| trusted | wall s | CPU s |", "|" + " --- |" * 10]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['rain']} | {r['pan'][0]:+g}, {r['pan'][1]:+g} | {r['rainy_psnr']:.2f} | "
                     f"{r['psnr']:.2f} | {r['gain']:+.2f} | {r['rainy_flicker']:.2f} -> {r['flicker']:.2f} "
                     f"({100 * r['flicker_share']:.0f} %) | {r['trusted']:.3f} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} |")
    mean = {k: np.mean([r[k] for r in rows]) for k in ("gain", "flicker_share", "wall_s", "cpu_s")}
    lines.append(f"| **mean** | | | | | **{mean['gain']:+.2f}** | ({100 * mean['flicker_share']:.0f} %) | | "
                 f"{mean['wall_s']:.1f} | {mean['cpu_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="all", help=f"comma-separated, from: {', '.join(CASES)}")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: VIDEO_STEPS)")
    ap.add_argument("--network-only", action="store_true", help="write the network's output everywhere")
    ap.add_argument("--strip", type=Path, default=Path("docs/video-strip.png"), help="'' for none")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/video"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(CASES) if args.cases == "all" else args.cases.split(",")
    options = {"fuse": not args.network_only, "seed": 0}
    if args.steps is not None:
        options["steps"] = args.steps
    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(run_case(name, args.frames, Path(tmp), **options))
            r = rows[-1]
            print(f"{name}: {r['rainy_psnr']:.2f} -> {r['psnr']:.2f} dB ({r['gain']:+.2f}), flicker "
                  f"{100 * r['flicker_share']:.0f} % of the rainy clip's, {r['wall_s']:.1f} s wall, "
                  f"{r['cpu_s']:.1f} s CPU", flush=True)
    if str(args.strip) not in ("", "."):
        write_image(args.strip, strip(*rows[0]["strip"]))
        print(f"wrote {args.strip}")
    header = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
              f"{torch.__version__} ({torch.get_num_threads()} threads), load average {load[0]:.1f} at the start "
              f"and {os.getloadavg()[0]:.1f} at the end; {args.frames} frames of 480x320 per clip"
              f"{', network only' if args.network_only else ''}")
    report = f"{header}\n\n{table(rows)}\n"
    print("\n" + report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(report)
    for r in rows:
        r.pop("strip")
    (args.out / "results.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
