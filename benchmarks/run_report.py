"""The report of ``benchmarks/run.py``: machine facts and the Markdown tables (no measuring here)."""

from __future__ import annotations

import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASH = "—"
REF_STEP_WARMUP = 1
REF_STEP_REPEATS = 5


def machine_info() -> dict:
    """CPU model, core counts, OS, Python; torch numbers come from the reference-step child."""
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {"cpu": model or platform.processor() or platform.machine(), "logical_cores": os.cpu_count(),
            "usable_cores": usable, "os": platform.platform(), "python": platform.python_version(),
            "load_average_start": load}


def git_revision() -> str | None:
    """Commit of the checkout, with a mark when the working tree has changes."""
    try:
        root = HERE.parent
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + (" + uncommitted changes" if dirty else "")) if rev else None
    except (OSError, subprocess.SubprocessError):
        return None


def command_line() -> str:
    argv = getattr(sys, "orig_argv", None) or [Path(sys.executable).name, *sys.argv]
    return shlex.join(argv)


def _f(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _pair(summary: dict, p: str, s: str) -> str:
    return f"{_f(summary.get(p), 2)} / {_f(summary.get(s), 3)}" if summary.get("n") else DASH


def _steps(seconds, ref) -> str:
    if seconds is None or not ref:
        return DASH
    n = seconds / ref
    return _f(n, 0 if n >= 100 else 1 if n >= 1 else 3)


def render_markdown(results: dict) -> tuple[str, str]:
    """The whole report and the main table alone."""
    m, ref = results["machine"], results.get("ref_step", {})
    ref_s = ref.get("seconds")
    lines = [
        "# rain2avoid benchmark",
        "",
        f"- command: `{results['command']}`",
        f"- dataset: `{results['dataset']}` ({results['n_images']} image pairs)",
        f"- machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), "
        f"torch {ref.get('torch_version', DASH)}, torch threads {ref.get('torch_threads', DASH)} "
        f"(inter-op {ref.get('torch_interop_threads', DASH)}), Python {m['python']}, {m['os']}",
        f"- load average (1/5/15 min) at start {_load(m.get('load_average_start'))}, "
        f"at end {_load(m.get('load_average_end'))}",
        f"- rain2avoid {results.get('rain2avoid_version', DASH)}, git {results.get('git') or DASH}; "
        f"{results['started']}, {_f(results.get('total_seconds'), 0)} s in all",
    ]
    if ref.get("error"):
        lines.append(f"- reference U-Net step: FAILED ({ref['error']})")
    else:
        lines.append(
            f"- 1 ref-step = one training step of the reference U-Net ({ref.get('parameters', 0) / 1e6:.2f} M "
            f"parameters; Adam 1e-3, batch 1, MSE, full {ref['size_hw'][1]}x{ref['size_hw'][0]} image "
            f"`{ref['image']}`) = **{_f(ref_s, 3)} s** (median of {REF_STEP_REPEATS} after "
            f"{REF_STEP_WARMUP} warm-up)")
    lines.append("")

    table = ["| method | Y PSNR/SSIM | RGB PSNR/SSIM | s/image | ref-steps/image | peak MB | worse than input |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in results["rows"]:
        s = row.get("summary", {})
        if row.get("error"):
            table.append(f"| {row['label']} | FAILED: {row['error'][:80]} | | | | | |")
            continue
        worse = f"{s['worse_than_input']}/{s['n']}" if s.get("n") and row["kind"] != "input" else DASH
        table.append(
            f"| {row['label']} | {_pair(s, 'psnr_y', 'ssim_y')} | {_pair(s, 'psnr_rgb', 'ssim_rgb')} | "
            f"{_f(row.get('seconds_per_image'))} | {_steps(row.get('seconds_per_image'), ref_s)} | "
            f"{_f(row.get('peak_mb'), 0)} | {worse} |")
    lines += table
    lines += ["",
              "PSNR dB / SSIM, means over the images. Y: BT.601 studio-range luma (floats); RGB: all three "
              "channels. s/image: wall time end to end (read, mask, references, training, inference, write), "
              "each method alone in its own child process. Peak MB: that process's peak resident memory "
              "(VmHWM), imports included. Worse than input: images whose Y PSNR is below the rainy input's."]

    notes = []
    for row in results["rows"]:
        if row.get("missing"):
            notes.append(f"- {row['label']}: no usable output for {len(row['missing'])} image(s) "
                         f"({', '.join(row['missing'][:5])}{' ...' if len(row['missing']) > 5 else ''}); "
                         "its means are over the others.")
        if row.get("baseline_mb") is not None:
            notes.append(f"- {row['label']}: resident memory after imports {_f(row['baseline_mb'], 0)} MB "
                         f"(of the {_f(row.get('peak_mb'), 0)} MB peak).")
        if row["kind"] == "folder" and not row.get("error"):
            default = row.get("preset_steps")
            steps = row["settings"]["steps"]
            note = (f"- {row['label']}: one network trained on all {row['summary'].get('n', 0)} inputs "
                    f"(FOLDER_PRESETS['fast'], {steps} steps"
                    f"{'' if steps == default else f', NOT the preset default {default}'}) in "
                    f"{_f(row['train_seconds'], 1)} s ({_f(row['references_seconds'], 1)} s reading + masks + "
                    f"references, {_f(row['fit_seconds'], 1)} s training; {_steps(row['train_seconds'], ref_s)} "
                    f"ref-steps), then applied at {_f(row['apply_seconds_per_image'], 3)} s/image "
                    f"({_steps(row['apply_seconds_per_image'], ref_s)} ref-steps). Its s/image is "
                    "(training + all applies) / images.")
            notes.append(note)
    if notes:
        lines += ["", "Notes:", ""] + notes

    micro = results.get("micro")
    if micro:
        lines += ["", "## Stages alone (`--micro`)", ""]
        if micro.get("error"):
            lines.append(f"FAILED: {micro['error']}")
        else:
            lines += [f"Median of {micro['repeats']} calls on each image, then over the "
                      f"{len(micro['images'])} images.", "",
                      "| function | median s | mean s | max s | ref-steps (median) |",
                      "| --- | --- | --- | --- | --- |"]
            for key, label in (("rain_mask_s", "`ldgp.rain_mask`"),
                               ("expected_reference_s", "`sdr.expected_reference` (NSS)")):
                vals = [r[key] for r in micro["images"]]
                med = statistics.median(vals)
                lines.append(f"| {label} | {_f(med, 4)} | {_f(statistics.fmean(vals), 4)} | "
                             f"{_f(max(vals), 4)} | {_steps(med, ref_s)} |")

    large = results.get("large")
    if large:
        lines += ["", "## Large photo (`--large`)", ""]
        if large.get("error"):
            lines.append(f"FAILED: {large['error']}")
        else:
            h, w = large["size_hw"]
            lines += [f"A synthetic {w}x{h} rainy photo ({large['source']}) through `derain_detailed` "
                      "with the fast preset, in its own child process.", "",
                      "| size | s (end to end) | of which derain_detailed | ref-steps | peak MB | "
                      "MB after imports | Y PSNR input -> output |",
                      "| --- | --- | --- | --- | --- | --- | --- |",
                      f"| {w}x{h} | {_f(large['seconds'], 1)} | {_f(large['derain_s'], 1)} | "
                      f"{_steps(large['seconds'], ref_s)} | {_f(large['peak_mb'], 0)} | "
                      f"{_f(large.get('baseline_mb'), 0)} | {_f(large.get('psnr_y_input'))} -> "
                      f"{_f(large.get('psnr_y_output'))} |"]

    if results.get("grid"):
        lines += ["", f"Picture grid of the first {results['grid']} images: `grid.png` (50 % scale)."]
    return "\n".join(lines) + "\n", "\n".join(table) + "\n"


def _load(load) -> str:
    return " / ".join(f"{x:.2f}" for x in load) if load else DASH
