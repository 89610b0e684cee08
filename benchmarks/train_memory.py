"""Peak memory of `rain2avoid train` on a large folder, with and without the memory budget.

Makes ``--images`` synthetic rainy 480x320 photos (``benchmarks/scaling.py``'s
generator: the project's renderer on scikit-image's photos), then runs

    /usr/bin/time -v rain2avoid train DIR --model m.pt -q --steps STEPS --memory-mb M

for each M of ``--budgets`` (the default 1024 streams 1,000 images; a budget
larger than the folder's training data holds every image at once, as ``train``
did before streaming) and prints wall time and peak resident memory. The number
of training steps does not change the memory (crops are drawn from what is
resident), so ``--steps`` is lowered to keep the run short.

    python benchmarks/train_memory.py [--images 1000] [--steps 200] [--budgets 1024,100000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scaling import load, make_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--budgets", default="1024,100000", help="comma-separated --memory-mb values")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/train_memory"))
    args = ap.parse_args()
    data = args.out / f"rainy-{args.images}"
    if len(list(data.glob("*.png"))) != args.images:
        make_images(data, args.images)
    print(f"{args.images} images of 480x320 in {data}; load average {load()}")
    print("| --memory-mb | wall s | peak RSS MB |\n| --- | --- | --- |")
    for budget in args.budgets.split(","):
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "rain2avoid.cli", "train", str(data),
               "--model", str(args.out / "m.pt"), "-q", "--steps", str(args.steps), "--memory-mb", budget]
        start = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
        seconds = time.perf_counter() - start
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024
        print(f"| {budget} | {seconds:.0f} | {peak:.0f} |", flush=True)
    print(f"load average at the end {load()}")


if __name__ == "__main__":
    main()
