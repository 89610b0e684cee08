"""Latency and throughput of `rain2avoid serve`, measured over HTTP against the real command.

Starts ``rain2avoid serve`` on a free port of 127.0.0.1 in a subprocess, then

* latency: one 480x320 rainy PNG at a time (the default preset), from the
  upload to the downloaded result, ``--runs`` times;
* throughput: ``--clients`` clients at once, each uploading one photo and
  polling until it has downloaded its result; jobs per minute over the whole
  burst, and how long /api/health took to answer meanwhile.

    python benchmarks/serve.py                      # --jobs 1, the server's default threads
    python benchmarks/serve.py --jobs 2 --threads 1

Needs the extra: pip install -e ".[web]". Times depend on the machine and on
what else runs on it; the command line and the torch threads are printed with
the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from io import BytesIO

import numpy as np
from PIL import Image


def rainy_png(seed: int) -> bytes:
    """A 480x320 photo with synthetic rain (the demo's renderer), as PNG bytes."""
    from rain2avoid.synth import add_rain, clean_example
    image, _ = add_rain(clean_example("astronaut", size=(320, 480)), angle=10, intensity=0.5, seed=seed)
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def call(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 600) -> bytes:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.read()


def derain_once(base: str, png: bytes, preset: str) -> float:
    """Upload, poll until done, download; returns the seconds it took."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="preset"\r\n\r\n{preset}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="rainy.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    start = time.perf_counter()
    job = json.loads(call(f"{base}/api/derain", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}))
    while True:
        status = json.loads(call(f"{base}/api/jobs/{job['id']}"))
        if status["status"] == "failed":
            raise RuntimeError(f"job failed: {status['error']}")
        if status["status"] == "done":
            break
        time.sleep(0.1)
    result = call(f"{base}/api/jobs/{job['id']}/result")
    seconds = time.perf_counter() - start
    assert Image.open(BytesIO(result)).size == (480, 320)
    return seconds


def start_server(jobs: int, threads: int | None) -> tuple:
    command = [sys.executable, "-m", "rain2avoid.cli", "serve", "--port", "0", "--jobs", str(jobs)]
    if threads:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("rain2avoid serve: http://"):
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    base = line.split()[2].rstrip("/")
    for _ in range(100):
        try:
            call(f"{base}/api/health", timeout=5)
            return process, base, command
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server does not answer /api/health")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1, help="the server's --jobs")
    parser.add_argument("--threads", type=int, default=None, help="the server's --threads (default: its own)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="single-job latency runs")
    parser.add_argument("--preset", default="fast")
    args = parser.parse_args()

    load_before = os.getloadavg()
    process, base, command = start_server(args.jobs, args.threads)
    try:
        pngs = [rainy_png(seed) for seed in range(max(args.clients, args.runs))]
        derain_once(base, pngs[0], args.preset)   # warm-up: first torch calls
        latency = [derain_once(base, pngs[k], args.preset) for k in range(args.runs)]

        times, health, done = [None] * args.clients, [], threading.Event()

        def client(k: int) -> None:
            times[k] = derain_once(base, pngs[k], args.preset)

        def prober() -> None:
            while not done.is_set():
                start = time.perf_counter()
                call(f"{base}/api/health", timeout=60)
                health.append(time.perf_counter() - start)
                time.sleep(0.2)

        watcher = threading.Thread(target=prober)
        watcher.start()
        start = time.perf_counter()
        clients = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        burst = time.perf_counter() - start
        done.set()
        watcher.join()
    finally:
        process.terminate()
        process.wait(30)

    import torch
    threads = args.threads or max(1, len(os.sched_getaffinity(0)) // args.jobs)
    print(f"server: {' '.join(command[2:])} (torch {torch.__version__}, {threads} torch thread(s) per job, "
          f"{os.cpu_count()} CPUs)")
    load_after = os.getloadavg()
    print(f"image: 480x320 PNG, preset {args.preset}; load average (1 min) {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after\n")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| latency, one job alone (median of {args.runs}) | {statistics.median(latency):.2f} s "
          f"(min {min(latency):.2f}, max {max(latency):.2f}) |")
    print(f"| {args.clients} clients at once: all done after | {burst:.1f} s |")
    print(f"| throughput | {60 * args.clients / burst:.1f} jobs/min |")
    print(f"| per-client wait in the burst (mean / max) | {np.mean(times):.1f} / {max(times):.1f} s |")
    print(f"| /api/health during the burst (median / max, {len(health)} calls) | "
          f"{1000 * statistics.median(health):.0f} / {1000 * max(health):.0f} ms |")


if __name__ == "__main__":
    main()
