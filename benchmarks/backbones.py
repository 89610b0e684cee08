"""Parameters, seconds per training step and peak memory of every backbone.

    python benchmarks/backbones.py [--steps 3] [--size 320x480] [--backbones unet,restormer]
        [--threads N] [--device cpu|cuda]

One training step as ``--preset reference`` takes it: batch 1, the full image
(default 320 rows x 480 columns, Rain100L's size), Adam, MSE, through
``rain2avoid.sdrl.train_image`` itself (channels-last, the project's Adam).
Each backbone runs alone in a fresh spawned child process, so the peak
resident memory (``VmHWM``) is its own; it includes the Python and torch
imports (``imports MB``). s/step is the median of ``--steps`` steps after one
warm-up step (the first step also allocates; it is reported apart); CPU
s/step is the process's CPU time (all threads) for that step; "x unet step"
divides s/step by the reference U-Net's in the same run. When other jobs
share the machine, wall seconds grow much more than the CPU time and the
ratio do: the load average is printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import time


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _measure(conn, name: str, steps: int, size: tuple[int, int], threads: int | None, device: str) -> None:
    try:
        import numpy as np
        import torch

        from rain2avoid.networks import build_network
        from rain2avoid.sdrl import Settings, train_image
        from rain2avoid.synth import add_rain, clean_example

        if threads:
            torch.set_num_threads(threads)
        imports = _status_mb("VmRSS")
        clean = clean_example("astronaut", size=size)
        rainy, _ = add_rain(clean, angle=10, seed=0)
        x = rainy.astype(np.float32) / 255
        target = clean[None].astype(np.float32) / 255      # the values do not change the cost
        params = sum(p.numel() for p in build_network(name).parameters())
        stamps = [(time.perf_counter(), time.process_time())]

        def on_step(step: int, loss: float) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            stamps.append((time.perf_counter(), time.process_time()))

        settings = Settings(backbone=name, steps=steps + 1, lr=1e-3, batch=1, crop=0, schedule="constant")
        train_image(x, target, settings, device=device, on_step=on_step)
        times = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]
        cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
        conn.send({"params": params, "first": times[0], "step": statistics.median(times[1:]),
                   "cpu": statistics.median(cpu[1:]),
                   "imports_mb": imports, "peak_mb": _status_mb("VmHWM"), "threads": torch.get_num_threads()})
    except BaseException as e:  # noqa: BLE001 - reported by the parent
        conn.send({"error": f"{type(e).__name__}: {e}"})
    finally:
        conn.close()


def measure(name: str, **kwargs) -> dict:
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_measure, args=(sender, name), kwargs=kwargs)
    proc.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        result = {"error": f"child died (exit code {proc.exitcode}; out of memory?)"}
    proc.join()
    return result


def main() -> None:
    from rain2avoid.networks import BACKBONES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated names")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--size", default="320x480", help="ROWSxCOLS of the training image")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    print(f"# one training step, batch 1, full {size[0]}x{size[1]} image ({args.device}); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    results = {}
    for name in args.backbones.split(","):
        results[name] = measure(name, steps=args.steps, size=size, threads=args.threads, device=args.device)
        print(f"# {name}: {results[name]}", flush=True)
    unet = results.get("unet", {}).get("step")
    print("| backbone | parameters | s/step | CPU s/step | x unet step | first step s | peak MB | imports MB "
          "| threads |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | - | {r['error']} | | | | | | |")
            continue
        ratio = f"{r['step'] / unet:.1f}" if unet else "-"
        print(f"| {name} | {r['params']:,} | {r['step']:.2f} | {r['cpu']:.2f} | {ratio} | {r['first']:.2f} | "
              f"{r['peak_mb']:,.0f} | "
              f"{r['imports_mb']:,.0f} | {r['threads']} |")
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
