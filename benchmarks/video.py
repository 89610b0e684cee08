"""Video benchmark: synthetic rainy clips (a slow pan, rain redrawn every frame) through ``derain_video``.

    python benchmarks/video.py [--cases all] [--frames 48] [--threads 2] [--network-only]
        [--strip docs/video-strip.png] [--out benchmarks/results/video]

Each clip is ``synth.rainy_clip`` on a scikit-image photo (48 frames of 480x320 by
default), written as a lossless FFV1 .mkv, derained with ``derain_video`` into
another .mkv (defaults), read back and scored against the clean clip (used only to
score): mean Y-PSNR over the frames (``metrics.psnr``) of the rainy and derained
clips, the flicker of each (``metrics.flicker``) and the derained clip's flicker as
a share of the rainy clip's, and the wall and CPU seconds of ``derain_video``
(reading, training, deraining, writing), and how far the camera shift found
between a few pairs of frames is from the truth (ours, median-max over the pairs;
in brackets, the median error of OpenCV's DIS optical flow on the same pairs). Prints a Markdown table, writes
``results.md``/``results.json`` in ``--out`` and a strip of the first, middle and
last frames of one clip (rainy | derained, half size) to ``--strip``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from rain2avoid import derain_video, psnr, write_image
from rain2avoid.metrics import flicker
from rain2avoid.synth import clean_example, rainy_clip
from rain2avoid.video import read_frames, write_video
from rain2avoid.video.temporal import alignment_features, estimate_shift, refine_shift

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


def alignment_errors(rainy: np.ndarray, pan, pairs=((0, 1), (10, 13), (20, 23), (30, 31), (40, 43))) -> dict:
    """How far the camera shift between frames (t, n) is from the truth, -pan * (n - t), in px:
    ours (``temporal``: phase correlation and robust Lucas-Kanade) and OpenCV's DIS optical flow
    (median end-point error over the frame, on the same rain-suppressed grey images)."""
    ours, dis = [], []
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for t, n in pairs:
        if n >= len(rainy):
            continue
        truth = -np.asarray(pan, float) * (n - t)
        a, b = alignment_features(rainy[t]), alignment_features(rainy[n])
        dx, dy, _ = estimate_shift(a, b)
        ours.append(float(np.hypot(*(np.array(refine_shift(a, b, dx, dy)) - truth))))
        field = flow.calc(a[0].astype(np.uint8), b[0].astype(np.uint8), None)[16:-16, 16:-16]
        dis.append(float(np.median(np.hypot(*(field - truth).transpose(2, 0, 1)))))
    return {"shift_error_median": float(np.median(ours)), "shift_error_max": float(np.max(ours)),
            "dis_flow_error": float(np.median(dis))}


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
    row.update(alignment_errors(rainy, pan))
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
             "| trusted | shift error px (DIS flow) | wall s | CPU s |", "|" + " --- |" * 11]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['rain']} | {r['pan'][0]:+g}, {r['pan'][1]:+g} | {r['rainy_psnr']:.2f} | "
                     f"{r['psnr']:.2f} | {r['gain']:+.2f} | {r['rainy_flicker']:.2f} -> {r['flicker']:.2f} "
                     f"({100 * r['flicker_share']:.0f} %) | {r['trusted']:.3f} | {r['shift_error_median']:.2f}-"
                     f"{r['shift_error_max']:.2f} ({r['dis_flow_error']:.2f}) | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")
    mean = {k: np.mean([r[k] for r in rows]) for k in ("gain", "flicker_share", "wall_s", "cpu_s")}
    lines.append(f"| **mean** | | | | | **{mean['gain']:+.2f}** | ({100 * mean['flicker_share']:.0f} %) | | | "
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
    ap.add_argument("--strip-clip", default="rocket-slanted", help="the clip the strip shows")
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
    shown = [r for r in rows if r["clip"] == args.strip_clip] or rows[:1]
    if str(args.strip) not in ("", "."):
        write_image(args.strip, strip(*shown[0]["strip"]))
        print(f"wrote {args.strip} ({shown[0]['clip']})")
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
