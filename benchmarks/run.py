"""The rain2avoid benchmark: quality, speed and memory on a folder of rainy/clean pairs.

    python benchmarks/run.py DATASET [--methods fast,high] [--folder-strategy]
        [--compare NAME=DIR ...] [--limit N] [--out DIR] [--grid K] [--micro] [--large]

DATASET holds ``input/`` (rainy) and ``target/`` (clean, same file names). The
clean images are read only to score outputs; nothing is trained or tuned on them.

Every measured method runs in its own child process (``multiprocessing`` spawn
context), so its peak resident memory (``VmHWM`` of ``/proc/self/status``) is its
own. Per-image seconds are wall time end to end: reading the image, the mask,
the references, training, inference and writing the output. One training step
of the reference U-Net (Adam 1e-3, batch 1, one full dataset image, MSE) is
timed in the same run, and every per-image time is also given in units of that
step ("ref-steps per image"), which makes numbers from different machines
comparable.

Writes ``results.json`` and ``results.md`` (and ``grid.png`` with ``--grid``)
under ``--out`` and prints the Markdown report. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from run_report import (
    REF_STEP_REPEATS,
    REF_STEP_WARMUP,
    command_line,
    git_revision,
    machine_info,
    render_markdown,
)

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "latest"
STEPS_ENV = "RAIN2AVOID_BENCH_STEPS"
LARGE_SIZE = (3000, 4000)  # (h, w): a 12 MP photo


# ---------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------


def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (``VmHWM``, ``VmRSS``) in MB (2**20 bytes)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # the value is in kB
    except OSError:
        pass
    if field == "VmHWM":  # not Linux: ru_maxrss (kB on Linux, bytes on macOS)
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)
    return None


def _child_main(conn, job: str, kwargs: dict) -> None:
    """Entry point of every child: run ``job``, send back its result plus peak memory."""
    try:
        result = JOBS[job](**kwargs)
        result["peak_mb"] = _status_mb("VmHWM")
        conn.send(result)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which goes on
        conn.send({"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
    finally:
        conn.close()


def run_in_child(job: str, **kwargs) -> dict:
    """Run ``JOBS[job](**kwargs)`` in a fresh spawned interpreter and return its result dict.

    A child that dies without answering (killed for memory, a crash in native
    code) gives ``{"error": ...}`` with its exit code, so the run goes on.
    """
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(sender, job, kwargs), name=f"bench-{job}")
    proc.start()
    sender.close()  # so recv() sees EOF if the child dies
    try:
        result = receiver.recv()
    except EOFError:
        result = None
    except BaseException:  # Ctrl-C, ...: do not leave the child running
        proc.terminate()
        raise
    finally:
        receiver.close()
        proc.join()
    if result is None:
        code = proc.exitcode
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        result = {"error": f"child process died without a result ({why}; out of memory?)"}
    return result


def _imports_done() -> float | None:
    """Resident memory once the imports are done: the part of the peak that is not the work."""
    return _status_mb("VmRSS")


def job_ref_step(image_path: str) -> dict:
    """Seconds of one training step of the reference U-Net on one full image."""
    import numpy as np
    import torch

    from rain2avoid.io import read_image, to_float_rgb
    from rain2avoid.networks import build_network

    baseline = _imports_done()
    rgb = to_float_rgb(read_image(image_path))
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    target = x.clone()  # the values do not change the cost of a step
    torch.manual_seed(0)
    net = build_network("unet").train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    for i in range(REF_STEP_WARMUP + REF_STEP_REPEATS):
        start = time.perf_counter()
        loss = torch.mean((net(x) - target) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - start
        if i >= REF_STEP_WARMUP:
            times.append(elapsed)
    return {
        "seconds": statistics.median(times), "all_seconds": times, "image": Path(image_path).name,
        "size_hw": list(rgb.shape[:2]), "parameters": sum(p.numel() for p in net.parameters()),
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "baseline_mb": baseline,
    }


def job_per_image(preset: str, pairs: list, out_dir: str) -> dict:
    """``derain_detailed`` with one preset on every input, timed end to end per image."""
    import dataclasses

    from tqdm.auto import tqdm

    import rain2avoid
    from rain2avoid.io import read_image, write_image

    baseline = _imports_done()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, settings = [], None
    for name, input_path, _ in tqdm(pairs, desc=preset, unit="image"):
        t0 = time.perf_counter()
        image = read_image(input_path)
        t1 = time.perf_counter()
        # the reference preset runs for most of an hour per image: show its training steps
        result = rain2avoid.derain_detailed(image, preset=preset, progress=preset == "reference")
        t2 = time.perf_counter()
        write_image(out / f"{Path(name).stem}.png", result.image)
        t3 = time.perf_counter()
        settings = dataclasses.asdict(result.settings)
        rows.append({"name": name, "seconds": t3 - t0, "read_s": t1 - t0, "derain_s": t2 - t1,
                     "write_s": t3 - t2, "angle": int(result.angle),
                     "rain_fraction": float((result.mask > 10).mean())})
    return {"images": rows, "settings": settings, "baseline_mb": baseline}


def job_folder(pairs: list, out_dir: str, steps: int | None) -> dict:
    """The folder strategy: train one network on all inputs, then apply it to each."""
    import dataclasses

    from tqdm.auto import tqdm

    from rain2avoid.io import read_image, to_float_rgb, write_image
    from rain2avoid.pipeline import training_data
    from rain2avoid.sdrl import FOLDER_PRESETS, resolve_settings, train_folder

    baseline = _imports_done()
    settings = resolve_settings("fast", FOLDER_PRESETS, steps=steps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    inputs, targets, weights = [], [], []
    for _, input_path, _ in tqdm(pairs, desc="folder: references", unit="image"):
        rgb = to_float_rgb(read_image(input_path))
        data = training_data(rgb, settings)
        inputs.append(rgb)
        targets.append(data.targets)
        weights.append(data.weights)
    t1 = time.perf_counter()
    model = train_folder(inputs, targets, settings, progress=True, weights=weights)
    t2 = time.perf_counter()
    del inputs, targets, weights

    rows = []
    for name, input_path, _ in tqdm(pairs, desc="folder: apply", unit="image"):
        start = time.perf_counter()
        image = read_image(input_path)
        write_image(out / f"{Path(name).stem}.png", model.apply(image))
        rows.append({"name": name, "seconds": time.perf_counter() - start})
    return {"images": rows, "settings": dataclasses.asdict(settings), "baseline_mb": baseline,
            "train_seconds": t2 - t0, "references_seconds": t1 - t0, "fit_seconds": t2 - t1}


def job_micro(pairs: list, repeats: int) -> dict:
    """Median seconds of ``rain_mask`` and ``expected_reference`` on each image."""
    from tqdm.auto import tqdm

    from rain2avoid.io import read_image, to_float_rgb
    from rain2avoid.ldgp import rain_mask
    from rain2avoid.pipeline import to_uint8
    from rain2avoid.sdr import expected_reference

    baseline = _imports_done()
    rows = []
    for name, input_path, _ in tqdm(pairs, desc="micro", unit="image"):
        rgb = to_float_rgb(read_image(input_path))
        rgb8 = to_uint8(rgb)
        scaled = rgb * 255.0  # the 0-255 float scale make_targets gives expected_reference
        mask_times, ref_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            mask, _angle = rain_mask(rgb8)
            mask_times.append(time.perf_counter() - start)
        for _ in range(repeats):
            start = time.perf_counter()
            expected_reference(scaled, mask)
            ref_times.append(time.perf_counter() - start)
        rows.append({"name": name, "rain_mask_s": statistics.median(mask_times),
                     "expected_reference_s": statistics.median(ref_times),
                     "rain_pixels": int((mask > 10).sum())})
    return {"images": rows, "repeats": repeats, "baseline_mb": baseline}


def job_large(input_path: str, output_path: str) -> dict:
    """One large photo through the fast preset, end to end."""
    import rain2avoid
    from rain2avoid.io import read_image, write_image

    baseline = _imports_done()
    t0 = time.perf_counter()
    image = read_image(input_path)
    t1 = time.perf_counter()
    result = rain2avoid.derain_detailed(image, preset="fast")
    t2 = time.perf_counter()
    write_image(output_path, result.image)
    t3 = time.perf_counter()
    return {"seconds": t3 - t0, "read_s": t1 - t0, "derain_s": t2 - t1, "write_s": t3 - t2,
            "size_hw": list(image.shape[:2]), "baseline_mb": baseline}


JOBS = {"ref_step": job_ref_step, "per_image": job_per_image, "folder": job_folder,
        "micro": job_micro, "large": job_large}


# ---------------------------------------------------------------------------
# Data set, scoring
# ---------------------------------------------------------------------------


def find_pairs(dataset: Path, limit: int | None) -> list[tuple[str, str, str]]:
    """[(file name, input path, target path)] in natural order; targets matched by name, then stem."""
    from rain2avoid.io import list_images

    inputs_dir, target_dir = dataset / "input", dataset / "target"
    for folder in (inputs_dir, target_dir):
        if not folder.is_dir():
            raise SystemExit(f"error: {folder} is not a folder (DATASET needs input/ and target/)")
    targets = list_images(target_dir)
    by_name = {p.name: p for p in targets}
    by_stem = {p.stem: p for p in targets}
    pairs, unmatched = [], []
    for p in list_images(inputs_dir):
        target = by_name.get(p.name) or by_stem.get(p.stem)
        if target is None:
            unmatched.append(p.name)
        else:
            pairs.append((p.name, str(p), str(target)))
    if unmatched:
        print(f"warning: {len(unmatched)} input(s) without a target, skipped: {', '.join(unmatched[:5])}"
              f"{' ...' if len(unmatched) > 5 else ''}", file=sys.stderr)
    if limit is not None:
        pairs = pairs[:limit]
    if not pairs:
        raise SystemExit(f"error: no input/target pairs in {dataset}")
    return pairs


def _rgb8(image):
    """Any image rain2avoid reads -> uint8 (H, W, 3) RGB (alpha dropped), for scoring."""
    from rain2avoid.io import to_float_rgb
    from rain2avoid.pipeline import to_uint8
    return to_uint8(to_float_rgb(image))


def score(pred, target) -> dict:
    """Y and RGB PSNR / SSIM of two uint8 RGB images."""
    from rain2avoid.metrics import psnr, ssim
    return {"psnr_y": psnr(pred, target, "y"), "ssim_y": ssim(pred, target, "y"),
            "psnr_rgb": psnr(pred, target, "rgb"), "ssim_rgb": ssim(pred, target, "rgb")}


def score_folder(folder: Path, pairs, targets: dict, input_psnr: dict, desc: str) -> tuple[dict, list[str]]:
    """Score the images of ``folder`` (paired with the inputs by stem) against the targets.

    Returns ({name: scores}, [names with no usable output]).
    """
    from tqdm.auto import tqdm

    from rain2avoid.io import ImageReadError, list_images, read_image

    files = {p.stem: p for p in list_images(folder)} if folder.is_dir() else {}
    scores, missing = {}, []
    for name, _, _ in tqdm(pairs, desc=f"scoring {desc}", unit="image", leave=False):
        path = files.get(Path(name).stem)
        if path is None:
            missing.append(name)
            continue
        try:
            pred = _rgb8(read_image(path))
            s = score(pred, targets[name])
        except (ImageReadError, ValueError) as e:
            print(f"warning: {desc}: {path.name}: {e}", file=sys.stderr)
            missing.append(name)
            continue
        s["worse_than_input"] = s["psnr_y"] < input_psnr[name]
        scores[name] = s
    return scores, missing


def summarise(scores: dict) -> dict:
    """Means of the per-image scores and the count of images worse than the input."""
    if not scores:
        return {"n": 0}
    values = list(scores.values())
    out = {k: statistics.fmean(v[k] for v in values) for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")}
    out["n"] = len(values)
    out["worse_than_input"] = sum(bool(v.get("worse_than_input")) for v in values)
    return out


# ---------------------------------------------------------------------------
# Grid picture
# ---------------------------------------------------------------------------


def make_grid(path: Path, pairs, columns: list[tuple[str, Path | None]], k: int) -> None:
    """Rows = the first ``k`` images; columns = input | ours | compares... | clean, at 50 %."""
    import cv2
    import numpy as np

    from rain2avoid.io import list_images, read_image, write_image

    stems = [{p.stem: p for p in list_images(d)} if d is not None and d.is_dir() else {} for _, d in columns]
    rows = []
    for name, input_path, target_path in pairs[:k]:
        cells = []
        for (label, folder), files in zip(columns, stems):
            if label == "rainy input":
                src = Path(input_path)
            elif label == "clean":
                src = Path(target_path)
            else:
                src = files.get(Path(name).stem)
            img = _rgb8(read_image(src)) if src is not None else None
            if img is not None:
                img = cv2.resize(img, (max(1, img.shape[1] // 2), max(1, img.shape[0] // 2)),
                                 interpolation=cv2.INTER_AREA)
            cells.append(img)
        rows.append((name, cells))
    real = [c for _, cells in rows for c in cells if c is not None]
    if not real:
        return
    ch, cw = max(c.shape[0] for c in real), max(c.shape[1] for c in real)
    gap, head = 4, 22
    font = cv2.FONT_HERSHEY_SIMPLEX

    def cell(img, text=None):
        canvas = np.full((ch, cw, 3), 255, np.uint8)
        if img is None:
            cv2.putText(canvas, "missing", (8, ch // 2), font, 0.5, (200, 0, 0), 1, cv2.LINE_AA)
        else:
            canvas[:img.shape[0], :img.shape[1]] = img
        if text:
            cv2.putText(canvas, text, (5, ch - 8), font, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, text, (5, ch - 8), font, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return canvas

    def hjoin(parts, height):
        spacer = np.full((height, gap, 3), 255, np.uint8)
        out = [parts[0]]
        for p in parts[1:]:
            out += [spacer, p]
        return np.concatenate(out, axis=1)

    header_cells = []
    for label, _ in columns:
        h = np.full((head, cw, 3), 255, np.uint8)
        cv2.putText(h, label[:40], (4, head - 7), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        header_cells.append(h)
    blocks = [hjoin(header_cells, head)]
    for name, cells in rows:
        blocks.append(hjoin([cell(c, name if j == 0 else None) for j, c in enumerate(cells)], ch))
    width = blocks[0].shape[1]
    spacer = np.full((gap, width, 3), 255, np.uint8)
    stacked = [blocks[0]]
    for b in blocks[1:]:
        stacked += [spacer, b]
    write_image(path, np.concatenate(stacked, axis=0))


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    from rain2avoid.sdrl import PRESETS

    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmark rain2avoid on DATASET (input/ rainy, target/ clean; targets only score).")
    p.add_argument("dataset", type=Path, metavar="DATASET")
    p.add_argument("--methods", default="fast,high",
                   help="comma-separated per-image presets to run (%(default)s); 'reference' takes about "
                        "45 min per image on a CPU; 'none' runs none")
    p.add_argument("--folder-strategy", action="store_true",
                   help="also train one network on all inputs (FOLDER_PRESETS['fast']) and apply it to each")
    p.add_argument("--folder-steps", type=int, default=None,
                   help=f"training steps of --folder-strategy (default: ${STEPS_ENV} if set, else the preset's); "
                        "for quick checks only")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=DIR",
                   help="score another method's outputs in DIR (paired by file stem, RGB channels); repeatable")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N pairs")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="results folder (default: benchmarks/results/latest)")
    p.add_argument("--grid", type=int, default=0, metavar="K",
                   help="save grid.png: the first K images as input | ours (fast) | compares | clean")
    p.add_argument("--micro", action="store_true", help="time rain_mask and expected_reference alone")
    p.add_argument("--micro-repeats", type=int, default=3, metavar="R",
                   help="calls per image for --micro (median; default %(default)s)")
    p.add_argument("--large", action="store_true",
                   help=f"also time a {LARGE_SIZE[1]}x{LARGE_SIZE[0]} synthetic photo with the fast preset")
    args = p.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip() and m.strip().lower() != "none"]
    unknown = [m for m in methods if m not in PRESETS]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    args.methods = list(dict.fromkeys(methods))
    compares = []
    for item in args.compare:
        name, sep, folder = item.partition("=")
        if not sep or not name.strip() or not folder:
            p.error(f"--compare wants NAME=DIR, got {item!r}")
        if not Path(folder).is_dir():
            p.error(f"--compare {name}: {folder} is not a folder")
        compares.append((name.strip(), Path(folder)))
    args.compare = compares
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be >= 1")
    if args.grid < 0 or args.micro_repeats < 1:
        p.error("--grid must be >= 0 and --micro-repeats >= 1")
    if args.folder_steps is None and os.environ.get(STEPS_ENV):
        try:
            args.folder_steps = int(os.environ[STEPS_ENV])
        except ValueError:
            p.error(f"${STEPS_ENV} must be an integer, got {os.environ[STEPS_ENV]!r}")
    if args.folder_steps is not None and args.folder_steps < 0:
        p.error("--folder-steps must be >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import rain2avoid
    from rain2avoid.io import read_image
    from rain2avoid.sdrl import FOLDER_PRESETS

    started = time.perf_counter()
    if "reference" in args.methods:
        print("warning: the 'reference' preset trains 5000 full-image U-Net steps: about 45 min per "
              "image on a CPU", file=sys.stderr)
    pairs = find_pairs(args.dataset, args.limit)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "command": command_line(), "dataset": str(args.dataset), "n_images": len(pairs),
        "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(), "git": git_revision(), "rain2avoid_version": rain2avoid.__version__,
        "grid": args.grid, "rows": [],
    }

    def save():
        results["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
        report, table = render_markdown(results)
        (out / "results.md").write_text(report)
        return report, table

    print(f"{len(pairs)} image pairs from {args.dataset}; results in {out}", file=sys.stderr)
    print("timing one reference U-Net training step ...", file=sys.stderr)
    results["ref_step"] = run_in_child("ref_step", image_path=pairs[0][1])
    if results["ref_step"].get("error"):
        print(f"warning: reference step failed: {results['ref_step']['error']}", file=sys.stderr)
    else:
        print(f"  {results['ref_step']['seconds']:.3f} s per step", file=sys.stderr)

    targets = {name: _rgb8(read_image(t)) for name, _, t in pairs}
    input_scores = {name: score(_rgb8(read_image(i)), targets[name]) for name, i, _ in pairs}
    input_psnr = {name: s["psnr_y"] for name, s in input_scores.items()}
    results["rows"].append({"label": "rainy input", "kind": "input", "summary": summarise(input_scores),
                            "images": [{"name": n, **s} for n, s in input_scores.items()]})
    save()

    def add_method_row(label, kind, folder, child, extra=None):
        row = {"label": label, "kind": kind, "outputs": str(folder)}
        if child.get("error"):
            print(f"warning: {label} failed: {child['error']}\n{child.get('traceback', '')}", file=sys.stderr)
            row["error"] = child["error"]
            results["rows"].append(row)
            return
        scores, missing = score_folder(folder, pairs, targets, input_psnr, label)
        times = {r["name"]: r for r in child["images"]}
        row.update(summary=summarise(scores), missing=missing, peak_mb=child["peak_mb"],
                   baseline_mb=child.get("baseline_mb"), settings=child["settings"],
                   images=[{**times.get(n, {"name": n}), **scores.get(n, {})} for n, _, _ in pairs])
        row["seconds_per_image"] = statistics.fmean(r["seconds"] for r in child["images"])
        row.update(extra(child, row) if extra else {})
        results["rows"].append(row)

    for method in args.methods:
        folder = out / method
        print(f"per-image preset '{method}' ...", file=sys.stderr)
        child = run_in_child("per_image", preset=method, pairs=pairs, out_dir=str(folder))
        add_method_row(method, "per_image", folder, child)
        save()

    if args.folder_strategy:
        folder = out / "folder-fast"
        print("folder strategy (FOLDER_PRESETS['fast']) ...", file=sys.stderr)
        child = run_in_child("folder", pairs=pairs, out_dir=str(folder), steps=args.folder_steps)

        def folder_extra(child, row):
            apply_mean = row["seconds_per_image"]
            total = child["train_seconds"] + sum(r["seconds"] for r in child["images"])
            return {"train_seconds": child["train_seconds"], "references_seconds": child["references_seconds"],
                    "fit_seconds": child["fit_seconds"], "apply_seconds_per_image": apply_mean,
                    "seconds_per_image": total / len(child["images"]),
                    "preset_steps": FOLDER_PRESETS["fast"].steps}

        steps = FOLDER_PRESETS["fast"].steps if args.folder_steps is None else args.folder_steps
        label = f"folder-fast (train once on {len(pairs)}, apply)"
        if steps != FOLDER_PRESETS["fast"].steps:
            label = f"folder-fast (train once on {len(pairs)}, apply; {steps} steps)"
        add_method_row(label, "folder", folder, child, folder_extra)
        save()

    for name, folder in args.compare:
        scores, missing = score_folder(folder, pairs, targets, input_psnr, name)
        if missing:
            print(f"warning: {name}: no usable output for {len(missing)} of {len(pairs)} images", file=sys.stderr)
        results["rows"].append({"label": f"{name} (given outputs)", "kind": "compare", "outputs": str(folder),
                                "summary": summarise(scores), "missing": missing,
                                "images": [{"name": n, **s} for n, s in scores.items()]})
    save()

    if args.micro:
        print("micro benchmarks ...", file=sys.stderr)
        results["micro"] = run_in_child("micro", pairs=pairs, repeats=args.micro_repeats)
        save()

    if args.large:
        print(f"large photo {LARGE_SIZE[1]}x{LARGE_SIZE[0]} ...", file=sys.stderr)
        results["large"] = run_large()
        save()

    if args.grid:
        ours = "fast" if "fast" in args.methods else (args.methods[0] if args.methods else None)
        columns = [("rainy input", None)]
        if ours is not None:
            columns.append((f"ours ({ours})", out / ours))
        columns += [(name, folder) for name, folder in args.compare]
        columns.append(("clean", None))
        make_grid(out / "grid.png", pairs, columns, args.grid)

    results["total_seconds"] = time.perf_counter() - started
    report, _table = save()
    print()
    print(report)
    return 0


def run_large() -> dict:
    """Make the synthetic photo here (not counted), derain it in a child, score PSNR here."""
    import cv2

    from rain2avoid.io import read_image, write_image
    from rain2avoid.metrics import psnr
    from rain2avoid.synth import add_rain, clean_example

    h, w = LARGE_SIZE
    clean = cv2.resize(clean_example("astronaut"), (w, h), interpolation=cv2.INTER_CUBIC)
    rainy, _layer = add_rain(clean, angle=10.0, density=0.03, seed=0)
    with tempfile.TemporaryDirectory(prefix="rain2avoid-bench-") as tmp:
        src, dst = Path(tmp) / "large_rainy.png", Path(tmp) / "large_derained.png"
        write_image(src, rainy)
        result = run_in_child("large", input_path=str(src), output_path=str(dst))
        if not result.get("error"):
            derained = read_image(dst)
            result["psnr_y_input"] = psnr(rainy, clean, "y")
            result["psnr_y_output"] = psnr(derained, clean, "y")
    result["source"] = "clean_example('astronaut') upscaled with cv2.resize, add_rain(angle=10, density=0.03, seed=0)"
    return result


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; results.json / results.md hold the stages finished so far", file=sys.stderr)
        sys.exit(130)
