"""Helpers for the `rain2avoid serve` tests: small rainy images, a real server on 127.0.0.1, polling."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import numpy as np

from rain2avoid.io import read_image, write_image

FAST = {"steps": 20}  # the server's Settings overrides in tests: a few training steps per job
TRAINS = (96, 128)  # rainy(*TRAINS) shows its rain, so a job trains; smaller ones are returned untrained


def rainy(h: int = 40, w: int = 56, seed: int = 3) -> np.ndarray:
    from rain2avoid.synth import add_rain, clean_example
    image, _ = add_rain(clean_example("coffee", size=(h, w)), angle=0, density=0.04, length=14, seed=seed)
    return image


def encoded(image: np.ndarray, folder: Path, name: str = "rainy.png", meta=None) -> bytes:
    """The bytes of ``image`` written as ``folder/name`` (format from the suffix)."""
    path = Path(folder) / name
    write_image(path, image, meta=meta)
    return path.read_bytes()


def decoded(data: bytes, folder: Path, name: str = "answer"):
    """(pixels, meta) of image bytes, read back through rain2avoid.io."""
    path = Path(folder) / name
    path.write_bytes(data)
    return read_image(path, with_meta=True)


def wait_done(get, job_id: str, timeout: float = 120.0) -> dict:
    """Poll ``get(f"/api/jobs/{id}")`` until the job is done or failed; returns its last status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = get(f"/api/jobs/{job_id}").json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {status}")


@contextlib.contextmanager
def running_server(app, port: int = 0):
    """Serve ``app`` with uvicorn on ``port`` (0: a free one) of 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # the port of a server just stopped, for a restart
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
