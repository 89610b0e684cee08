"""Images per second of `rain2avoid derain` and `apply` on a folder, with 1 and with N worker processes.

Makes synthetic rainy 480x320 photos (the project's renderer on scikit-image's
photos), then times the real command line, each run a fresh process, start-up
included:

* derain ``--workers 1`` (one process, one torch thread per image);
* derain ``--workers N`` (N = the cores: one single-threaded worker each);
* derain in one process with N torch threads per image (what a folder run did
  before; not a command-line option any more, so through the Python API, in a
  fresh process like the others);
* ``apply --workers 1`` (one process, every core) and ``--workers N``, with a
  model trained once on the derain images.

The configurations run in turn, round after round (interleaved), so that a
burst of other work on the machine hits all of them; the table gives the best
(minimum) and the median wall time. Outputs are compared with ``--workers 1``'s
(largest difference in grey levels). Peak memory is the largest process of a
run (``wait4`` of the command, which includes its workers).

    python benchmarks/scaling.py [--images 8] [--apply-images 240] [--rounds 3] [--no-threaded]
        [--out benchmarks/results/scaling]

Writes results.md and results.json in --out; prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rain2avoid.batch import available_cores
from rain2avoid.io import read_image, write_image
from rain2avoid.synth import EXAMPLES, add_rain, clean_example


def make_images(folder: Path, count: int, offset: int = 0) -> None:
    """``count`` rainy 480x320 photos: the built-in photos, mirrored, at varied angles and densities."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(offset, offset + count):
        clean = clean_example(EXAMPLES[i % len(EXAMPLES)], size=(320, 480))
        if (i // len(EXAMPLES)) % 2:
            clean = np.ascontiguousarray(clean[:, ::-1])
        rainy, _ = add_rain(clean, angle=-30 + (i * 7) % 61, density=0.02 + 0.01 * (i % 4), seed=i)
        write_image(folder / f"{i:05d}.png", rainy)


THREADED = """
import sys
from pathlib import Path
from rain2avoid.batch import DerainTask, find_images, plan_jobs, run_local
src, out, threads = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
outcomes = run_local(DerainTask(threads=threads), plan_jobs(find_images(src), src, out))
sys.exit(0 if all(o.ok for o in outcomes) else 1)
"""


def run(args: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak MB (largest process) of ``rain2avoid ARGS`` (``args[0] == "-c"``: Python code)."""
    start = time.perf_counter()
    command = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "-m", "rain2avoid.cli", *args]
    process = subprocess.Popen(command, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"rain2avoid {' '.join(args)} failed:\n{process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def largest_difference(a: Path, b: Path) -> int:
    worst = 0
    for f in sorted(a.glob("*.png")):
        worst = max(worst, int(np.abs(read_image(f).astype(int) - read_image(b / f.name).astype(int)).max()))
    return worst


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8, help="images for derain")
    ap.add_argument("--apply-images", type=int, default=240, help="images for apply")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=available_cores(), help="N, the parallel configuration")
    ap.add_argument("--no-threaded", action="store_true",
                    help="leave out the 1 process x N threads row (very slow on a busy machine)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling"))
    args = ap.parse_args()
    out = args.out
    shutil.rmtree(out / "runs", ignore_errors=True)
    data = out / "data"
    if not (data / "derain").is_dir() or len(list((data / "derain").glob("*.png"))) != args.images:
        shutil.rmtree(data, ignore_errors=True)
        make_images(data / "derain", args.images)
        make_images(data / "apply", args.apply_images, offset=1000)
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    n = args.workers
    model = out / "model.pt"
    if not model.is_file():
        run(["train", str(data / "derain"), "--model", str(model), "--steps", "300", "-q"], base)
    configs = {  # name: (command, images, arguments, environment)
        "derain --workers 1": ("derain", args.images, ["--workers", "1"], base),
        f"derain --workers {n}": ("derain", args.images, ["--workers", str(n)], base),
        f"derain, 1 process x {n} threads": ("threaded", args.images, [str(n)], base),
    }
    if args.no_threaded:
        del configs[f"derain, 1 process x {n} threads"]
    configs |= {
        "apply --workers 1": ("apply", args.apply_images, ["--workers", "1"], base),
        f"apply --workers {n}": ("apply", args.apply_images, ["--workers", str(n)], base),
    }
    started = load()
    times: dict[str, list[float]] = {name: [] for name in configs}
    peaks: dict[str, float] = {name: 0.0 for name in configs}
    for r in range(args.rounds):
        names = list(configs)
        names = names[r % len(names):] + names[:r % len(names)]  # a different order each round
        for name in names:
            command, _, extra, env = configs[name]
            target = out / "runs" / name.replace(" ", "_").replace(",", "").replace("=", "")
            shutil.rmtree(target, ignore_errors=True)
            if command == "threaded":
                cmd = ["-c", THREADED, str(data / "derain"), str(target), *extra]
            else:
                cmd = [command, str(data / command), "-o", str(target), "-q", *extra]
            if command == "apply":
                cmd += ["--model", str(model)]
            seconds, peak = run(cmd, env)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
            print(f"round {r + 1}: {name}: {seconds:.1f} s", flush=True)
    ended = load()

    rows = []
    for name, (command, count, extra, env) in configs.items():
        target = out / "runs" / name.replace(" ", "_").replace(",", "").replace("=", "")
        command = "derain" if command == "threaded" else command
        reference = out / "runs" / f"{command}_--workers_1"
        best, median = min(times[name]), float(np.median(times[name]))
        rows.append({"configuration": name, "images": count, "best_s": best, "median_s": median,
                     "images_per_s": count / best, "peak_mb": peaks[name],
                     "speedup": min(times[f"{command} --workers 1"]) / best,
                     "max_diff": largest_difference(target, reference), "all_s": times[name]})
    header = (f"{platform.processor() or platform.machine()}, {available_cores()} core(s), python "
              f"{platform.python_version()}; load average {started} at the start, {ended} at the end; "
              f"{args.rounds} rounds, interleaved")
    lines = [f"# Scaling: images per second with 1 and {n} workers", "", header, "", "Command: `python "
             + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]) + "`", "",
             "| configuration | images | best s | median s | images/s (best) | vs --workers 1 | peak MB "
             "| max diff vs --workers 1 |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['configuration']} | {row['images']} | {row['best_s']:.1f} | {row['median_s']:.1f} "
                     f"| {row['images_per_s']:.2f} | {row['speedup']:.2f}x | {row['peak_mb']:.0f} "
                     f"| {row['max_diff']} |")
    report = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(report)
    (out / "results.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    print(report)


if __name__ == "__main__":
    main()
