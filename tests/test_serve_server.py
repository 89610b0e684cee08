"""`rain2avoid serve` as a real server on 127.0.0.1: uvicorn in a thread, raw sockets, and the command itself."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi", reason='the web extra is not installed (pip install "rain2avoid[web]")')
pytest.importorskip("uvicorn", reason='the web extra is not installed (pip install "rain2avoid[web]")')
httpx = pytest.importorskip("httpx", reason="these tests use httpx as the client")

from conftest import invoke  # noqa: E402
from serving import FAST, TRAINS, decoded, encoded, rainy, running_server, wait_done  # noqa: E402

from rain2avoid.serve import ServeSettings, create_app  # noqa: E402

MB = 1024 * 1024


@pytest.fixture
def server(tmp_path):
    """(base URL, app) of a real server with a 1 MB upload limit whose jobs train 100,000 steps (until stopped)."""
    app = create_app(ServeSettings(options={"steps": 100_000}, max_upload_bytes=MB, temp_root=tmp_path))
    with running_server(app) as url:
        yield url, app


def raw_request(url: str, head: bytes, body_chunks=(), timeout: float = 20.0) -> bytes:
    """Send ``head`` and the chunks on a plain socket, then read the answer until the server closes or 5 s."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            sock.sendall(chunk)
        sock.settimeout(5)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except socket.timeout:
            pass
        return answer


def training_job(client, tmp_path, steps: int) -> str:
    """Upload a photo that trains for long and wait until ``steps`` steps are done; its id."""
    job_id = client.post("/api/derain", files={"file": ("r.png", encoded(rainy(*TRAINS), tmp_path))}).json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/api/jobs/{job_id}").json()["steps_done"] < steps:
        assert time.monotonic() < deadline, "the job did not start training"
        time.sleep(0.02)
    return job_id


def test_health_answers_promptly_while_a_job_trains(server, tmp_path):
    url, _ = server
    with httpx.Client(base_url=url, timeout=30) as client:
        job_id = training_job(client, tmp_path, steps=5)
        latencies = []
        for _ in range(20):
            start = time.perf_counter()
            assert client.get("/api/health").json() == {"status": "ok"}
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)
        assert client.get(f"/api/jobs/{job_id}").json()["status"] == "running"
    # Generous bounds for a busy 2-core machine; a server blocked by training would take seconds.
    assert statistics.median(latencies) < 0.25 and max(latencies) < 2.0, latencies


def test_a_photo_over_real_http(tmp_path):
    app = create_app(ServeSettings(options=FAST, temp_root=tmp_path))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/api/derain", files={"file": ("rain.jpg", encoded(rainy(48, 64), tmp_path, "x.jpg"))},
                        data={"preset": "fast", "seed": "3"})
        assert r.status_code == 202, r.text
        assert wait_done(client.get, r.json()["id"])["status"] == "done"
        result = client.get(f"/api/jobs/{r.json()['id']}/result")
        pixels, meta = decoded(result.content, tmp_path)
        assert meta.format == "jpeg" and pixels.shape == (48, 64, 3)


def test_cancel_over_real_http_stops_the_job_and_deletes_its_folder(server, tmp_path):
    url, app = server
    with httpx.Client(base_url=url, timeout=30) as client:
        job_id = training_job(client, tmp_path, steps=1)
        r = client.delete(f"/api/jobs/{job_id}")
        assert r.status_code == 200 and r.json() == {"id": job_id, "cancelled": True}
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert client.delete(f"/api/jobs/{job_id}").status_code == 404
        # The one worker is free: a photo too small to train is done at once.
        small = client.post("/api/derain", files={"file": ("s.png", encoded(rainy(), tmp_path))}).json()["id"]
        assert wait_done(client.get, small, timeout=30)["status"] == "done"
    assert [p.name for p in app.state.store.root.iterdir()] == [small]


def test_declared_oversize_is_refused_before_the_body_is_sent(server):
    url, app = server
    head = (b"POST /api/derain HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 10000000000\r\n\r\n")
    answer = raw_request(url, head)               # no body byte is ever sent
    assert answer.startswith(b"HTTP/1.1 413") and b"limit of 1 MiB" in answer, answer
    assert list(app.state.store.root.iterdir()) == []


def test_streamed_oversize_is_refused_while_it_streams(server):
    url, app = server
    head = (b"POST /api/derain HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
    data = os.urandom(64 * 1024)
    chunks = [b"%x\r\n%s\r\n" % (len(part), part)] + [b"%x\r\n%s\r\n" % (len(data), data)] * 32  # 2 MB
    start = time.monotonic()
    answer = raw_request(url, head, chunks)       # the body is never finished: no last chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert time.monotonic() - start < 10
    assert list(app.state.store.root.iterdir()) == []


def test_a_simple_client_sees_the_413_not_a_reset(server):
    url, _ = server   # urllib reads the answer only after sending the whole body
    body = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + bytes(3 * MB)
    request = urllib.request.Request(f"{url}/api/derain", data=body + b"\r\n--x--\r\n",
                                     headers={"Content-Type": "multipart/form-data; boundary=x"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 413


@pytest.mark.parametrize("path", ["/api/jobs/../../etc/passwd", "/api/jobs/..%2f..%2fetc%2fpasswd/result",
                                  "/api/jobs/../../../etc/passwd/mask", "/api/jobs/%2e%2e%2f%2e%2e"])
def test_traversal_paths_sent_verbatim_are_404(server, path):
    url, _ = server
    host, port = url.rsplit("/", 1)[-1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path)   # http.client sends the path as given, dots and all
    answer = connection.getresponse()
    assert answer.status == 404 and b"detail" in answer.read()
    connection.close()


# --- the command --------------------------------------------------------------------------------------------

def _read_line(stream, timeout: float) -> str:
    line = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else ""


def test_serve_prints_the_url_and_stops_cleanly_on_ctrl_c(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "rain2avoid.cli", "serve", "--port", "0", "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = _read_line(process.stdout, 60)
        assert line.startswith("rain2avoid serve: http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[2].rstrip("/")
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/api/health").json() == {"status": "ok"}
            broken = client.post("/api/derain", content=b"--x\r\nnot a boundary",
                                 headers={"content-type": "multipart/form-data; boundary=xyz"})
            assert broken.status_code == 400   # said to the client only, not logged to the console
            # A job with the slow original settings is training when Ctrl-C comes.
            r = client.post("/api/derain", files={"file": ("r.png", encoded(rainy(), tmp_path))},
                            data={"preset": "reference"})
            deadline = time.monotonic() + 60
            while client.get(f"/api/jobs/{r.json()['id']}").json()["steps_done"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert list(tmp_path.glob("rain2avoid-serve-*"))
        process.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert time.monotonic() - start < 15
        assert "stopped" in out and "Traceback" not in err and "boundary" not in err, err
        assert list(tmp_path.glob("rain2avoid-serve-*")) == []   # uploads and results deleted
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_serve_without_the_web_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)   # import fastapi now raises ImportError
    r = invoke("serve", "--port", "0")
    assert r.exit_code == 1
    assert 'pip install "rain2avoid[web]"' in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_serve_on_a_busy_port_says_so():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = invoke("serve", "--port", port)
    assert r.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_serve_warns_when_exposed_beyond_this_machine(monkeypatch):
    import importlib

    import uvicorn
    command = importlib.import_module("rain2avoid.cli.serve")   # the module, not the click command

    def fake_run(self, sockets=None):
        self.started = True
    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setattr(command, "_bind", lambda host, port: socket.create_server(("127.0.0.1", 0)))
    r = invoke("serve", "--host", "0.0.0.0", "--port", "0")
    assert r.exit_code == 0, r.output
    assert "warning: --host 0.0.0.0" in r.stderr and "reachable from other machines" in r.stderr
    assert "http://127.0.0.1:" in r.stdout
    r = invoke("serve", "--port", "0")
    assert r.exit_code == 0 and "warning" not in r.stderr
    assert [command._is_local(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "192.168.1.2", "::")] == \
        [True, True, True, False, False, False]


@pytest.mark.parametrize("option, message", [("--keep-jobs", "0 is not in the range x>=1"),
                                             ("--keep-minutes", "0 is not in the range x>0")])
def test_serve_refuses_keeping_no_results(monkeypatch, option, message):
    import uvicorn

    def fake_run(self, sockets=None):   # were 0 accepted, the test must not hang serving
        self.started = True
    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    r = invoke("serve", "--port", "0", option, "0")
    assert r.exit_code == 2 and option in r.stderr and message in r.stderr


def test_serve_help_has_usage_and_examples():
    r = invoke("serve", "--help")
    assert r.exit_code == 0 and "Usage:" in r.stdout and "Examples:" in r.stdout
    assert "--max-upload-mb" in r.stdout and "--jobs" in r.stdout
