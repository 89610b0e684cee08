"""No-reference metrics: agreement with the published values and speed.

Scores every photo of a folder whose README has the table of known NIQE and
BRISQUE values (``../shared/data/real-rain-dev``), prints each photo's score,
its difference to the known value and the seconds each metric took (wall and
CPU of this process), then the largest differences.

    python benchmarks/noref.py [../shared/data/real-rain-dev] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

from rain2avoid import brisque, niqe, read_image


def timed(metric, image, repeats: int) -> tuple[float, float, float]:
    """(score, median wall seconds, median CPU seconds) over ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        score = metric(image)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return score, sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("../shared/data/real-rain-dev"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    readme = args.folder / "README.md"
    if not readme.is_file():
        parser.error(f"{readme} not found: the folder needs the README with the table of known NIQE and "
                     f"BRISQUE values (as ../shared/data/real-rain-dev has)")
    table = re.findall(r"^\| (\S+) \| (\S+) \| ([\d.]+) \| ([\d.]+) \|$", readme.read_text(), re.M)
    if not table:
        parser.error(f"{readme} has no table of known NIQE and BRISQUE values")
    missing = [name for name, *_ in table if not (args.folder / name).is_file()]
    if missing:
        parser.error(f"photos listed in {readme} are missing: {', '.join(missing)}")
    print(f"load average {os.getloadavg()[0]:.2f}; {args.repeats} runs each, median seconds")
    print(f"{'photo':<9} {'size':>10} {'NIQE':>7} {'diff':>8} {'s':>6} {'cpu s':>6}  "
          f"{'BRISQUE':>8} {'diff':>7} {'s':>6} {'cpu s':>6}")
    worst = [0.0, 0.0]
    for name, size, known_niqe, known_brisque in table:
        image = read_image(args.folder / name)
        n, n_wall, n_cpu = timed(niqe, image, args.repeats)
        b, b_wall, b_cpu = timed(brisque, image, args.repeats)
        dn, db = n - float(known_niqe), b - float(known_brisque)
        worst = [max(worst[0], abs(dn)), max(worst[1], abs(db))]
        print(f"{name:<9} {size:>10} {n:7.4f} {dn:+8.5f} {n_wall:6.2f} {n_cpu:6.2f}  "
              f"{b:8.3f} {db:+7.4f} {b_wall:6.2f} {b_cpu:6.2f}")
    print(f"largest difference: NIQE {worst[0]:.5f}, BRISQUE {worst[1]:.4f}; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
