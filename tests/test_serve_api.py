"""The `rain2avoid serve` JSON API through the framework's test client: results, every error, jobs, expiry.

Jobs train for a few steps (``FAST``) on tiny images, so each takes well under a second.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import threading
import time
import warnings
from io import BytesIO

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='the web extra is not installed (pip install "rain2avoid[web]")')
pytest.importorskip("httpx", reason="the test client needs httpx")
with warnings.catch_warnings():  # newer Starlette prefers httpx2 to httpx; both work
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from conftest import dry_photo  # noqa: E402
from serving import FAST, TRAINS, decoded, encoded, rainy, wait_done  # noqa: E402

from rain2avoid.pipeline import derain_detailed  # noqa: E402
from rain2avoid.serve import ServeSettings, create_app  # noqa: E402
from rain2avoid.serve import jobs as serve_jobs  # noqa: E402

UUID4_HEX = re.compile(r"^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$")


@pytest.fixture
def make_client(tmp_path):
    """make_client(**ServeSettings fields) -> a TestClient whose app runs its workers (closed at the end)."""
    clients = []

    def make(**fields):
        fields = {"options": FAST, "temp_root": tmp_path, **fields}
        client = TestClient(create_app(ServeSettings(**fields)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


def store(client):
    return client.app.state.store


def post(client, data: bytes, name="rainy.png", **form):
    return client.post("/api/derain", files={"file": (name, data, "application/octet-stream")}, data=form)


# --- the happy path -----------------------------------------------------------------------------------------

def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_png_end_to_end_matches_the_pipeline(client, tmp_path):
    image = rainy(*TRAINS)
    r = post(client, encoded(image, tmp_path), seed="5")
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert UUID4_HEX.match(job_id) and r.headers["location"] == f"/api/jobs/{job_id}"
    status = wait_done(client.get, job_id)
    assert status["status"] == "done" and status["error"] is None, status
    assert status["progress"] == 1.0 and status["steps_done"] == status["steps_total"] == FAST["steps"]
    assert re.fullmatch(r"streaks [+-]\d+ deg from vertical", status["note"]), status   # as the command line says
    assert (status["width"], status["height"], status["format"]) == (128, 96, "png")

    expected = derain_detailed(image, "fast", seed=5, **FAST)   # same pipeline, same seed: same pixels
    assert np.abs(expected.image.astype(int) - image).max() > 2 and expected.mask.any()   # it trained
    result = client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert 'filename="rainy-derained.png"' in result.headers["content-disposition"]
    pixels, meta = decoded(result.content, tmp_path)
    assert meta.format == "png"
    np.testing.assert_array_equal(pixels, expected.image)

    mask = client.get(f"/api/jobs/{job_id}/mask")
    assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(decoded(mask.content, tmp_path, "mask")[0], expected.mask)


def test_jpeg_comes_back_as_jpeg_with_its_exif_xmp_and_comment(client, tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "ServeTestMake"
    buffer = BytesIO()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'
    Image.fromarray(rainy(*TRAINS)).save(buffer, format="JPEG", quality=95, exif=exif.tobytes(), xmp=xmp,
                                         comment=b"wet")
    r = post(client, buffer.getvalue(), name="Holiday photo.JPG")
    assert r.status_code == 202, r.text
    status = wait_done(client.get, r.json()["id"])
    assert status["format"] == "jpeg" and status["filename"] == "Holiday_photo-derained.jpg"
    result = client.get(f"/api/jobs/{status['id']}/result")
    assert result.headers["content-type"] == "image/jpeg"
    with Image.open(BytesIO(result.content)) as picture:
        assert picture.format == "JPEG" and picture.size == TRAINS[::-1]
        assert picture.getexif().get(0x010F) == "ServeTestMake"
        assert picture.info["xmp"] == xmp and picture.info["comment"] == b"wet"
    assert status["note"].startswith("streaks") and result.content != buffer.getvalue()   # derained, not copied


def test_a_photo_without_rain_comes_back_as_it_was_uploaded(client):
    buffer = BytesIO()
    Image.fromarray(dry_photo()).save(buffer, format="JPEG", quality=80)
    r = post(client, buffer.getvalue(), name="dry.jpg")
    assert r.status_code == 202, r.text
    status = wait_done(client.get, r.json()["id"])
    assert status["status"] == "done" and status["note"] == "no rain streaks found", status
    assert client.get(f"/api/jobs/{status['id']}/result").content == buffer.getvalue()  # not compressed again


def test_a_hostile_file_name_never_reaches_the_disk(client, tmp_path):
    r = post(client, encoded(rainy(), tmp_path), name="../../etc/evil name.png")
    status = wait_done(client.get, r.json()["id"])
    assert status["filename"] == "evil_name-derained.png"
    names = [p.name for p in store(client).root.rglob("*")]
    assert not [n for n in names if "evil" in n or "etc" in n], names
    assert set(names) == {status["id"], "result.png", "mask.png"}


def test_eight_clients_at_once_all_get_their_own_result(make_client, tmp_path):
    client = make_client(jobs=2)
    sizes = [(32 + 4 * k, 48 + 8 * k) for k in range(8)]   # a different size each, to catch mix-ups
    answers = [None] * 8

    def one_client(k):
        h, w = sizes[k]
        r = post(client, encoded(rainy(h, w, seed=k), tmp_path, f"in{k}.png"), name=f"in{k}.png")
        assert r.status_code == 202, r.text
        status = wait_done(client.get, r.json()["id"])
        answers[k] = (status, client.get(f"/api/jobs/{status['id']}/result").content)

    threads = [threading.Thread(target=one_client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for k, (status, data) in enumerate(answers):
        assert status["status"] == "done", status
        assert decoded(data, tmp_path, f"out{k}")[0].shape == sizes[k] + (3,)
    assert len({status["id"] for status, _ in answers}) == 8


def test_progress_is_reported_while_training(make_client, tmp_path):
    client = make_client(options={"steps": 150})
    job_id = post(client, encoded(rainy(*TRAINS), tmp_path)).json()["id"]
    seen, stages = set(), set()
    while (status := client.get(f"/api/jobs/{job_id}").json())["status"] != "done":
        if status["status"] == "running":
            seen.add(status["steps_done"])
            assert status["progress"] == round(status["steps_done"] / 150, 4) and status["steps_total"] == 150
            stages.add(status["stage"])
            assert status["stage"] == "training" or status["steps_done"] in (0, 150), status
        time.sleep(0.01)
    assert len([s for s in seen if 0 < s < 150]) >= 2, seen   # real steps, not just 0 and done
    # None while the upload is read, before the pipeline's first stage
    assert "training" in stages and stages <= {None, "rain", "training", "cleaning"} and status["stage"] is None


def test_status_shows_the_seed_actually_used(client, tmp_path):
    png = encoded(rainy(), tmp_path)
    default = post(client, png).json()["id"]
    chosen = post(client, png, seed="7").json()["id"]
    assert client.get(f"/api/jobs/{default}").json()["seed"] == 0   # the preset's seed, not null
    assert client.get(f"/api/jobs/{chosen}").json()["seed"] == 7
    wait_done(client.get, default)
    wait_done(client.get, chosen)


# --- errors -------------------------------------------------------------------------------------------------

def test_not_an_image_is_415(client):
    r = post(client, b"these are not the pixels you are looking for", name="photo.png")
    assert r.status_code == 415 and "not an image" in r.json()["detail"]


def test_unsupported_image_format_is_415_naming_it(client):
    gif = BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    r = post(client, gif.getvalue(), name="photo.gif")
    assert r.status_code == 415 and "unsupported image format: GIF" in r.json()["detail"]


@pytest.mark.parametrize("data, why", [(b"", "empty"), (b"\x89PNG\r\n\x1a\n" + bytes(40), "corrupt")])
def test_unreadable_images_are_400_saying_why(client, tmp_path, data, why):
    r = post(client, data)
    assert r.status_code == 400 and why in r.json()["detail"]


def test_truncated_jpeg_is_refused(client, tmp_path):
    data = encoded(rainy(), tmp_path, "x.jpg")
    assert post(client, data[: len(data) // 3]).status_code == 400


def test_form_mistakes_are_explained(client, tmp_path):
    png = encoded(rainy(), tmp_path)
    r = client.post("/api/derain", data={"preset": "fast"}, files={"other": ("x.png", png)})
    assert r.status_code == 400 and "'file'" in r.json()["detail"]
    r = client.post("/api/derain", content=png, headers={"content-type": "image/png"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = post(client, png, preset="ultra")
    assert r.status_code == 400 and "fast, high, reference" in r.json()["detail"]
    for seed in ("-1", "1.5", "x", str(2 ** 32), "²", "١٢", "５", "1" * 5000):   # ASCII digits only; no 500
        r = post(client, png, seed=seed)
        assert r.status_code == 400 and "seed must be a whole number" in r.json()["detail"], seed
    r = client.post("/api/derain", files=[("file", ("a.png", png)), ("file", ("b.png", png))])
    assert r.status_code == 400
    assert list(store(client).root.iterdir()) == []   # nothing refused stays on disk


def test_too_large_upload_is_413_before_it_is_read(make_client, tmp_path):
    client = make_client(max_upload_bytes=4096)
    r = post(client, bytes(5000))
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert list(store(client).root.iterdir()) == []


def test_too_many_pixels_is_413(make_client, tmp_path):
    client = make_client(max_pixels=1000)
    r = post(client, encoded(rainy(40, 56), tmp_path))
    assert r.status_code == 413 and "56x40" in r.json()["detail"]


@pytest.mark.parametrize("path", [
    "/api/jobs/0123456789abcdef0123456789abcdef", "/api/jobs/nope/result", "/api/jobs/nope/mask",
    "/api/jobs/..%2F..%2Fetc%2Fpasswd", "/api/jobs/%2e%2e", "/api/jobs/..%5C..%5Cwindows",
    "/api/jobs/%2Fetc%2Fpasswd/result",
])
def test_unknown_and_traversal_ids_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404 and "detail" in r.json()


def test_result_before_done_is_409(make_client, tmp_path):
    client = make_client(options={"steps": 100_000})   # stopped by the shutdown
    job_id = post(client, encoded(rainy(*TRAINS), tmp_path)).json()["id"]
    for what in ("result", "mask"):
        r = client.get(f"/api/jobs/{job_id}/{what}")
        assert r.status_code == 409 and "poll" in r.json()["detail"]


def test_queue_full_is_503_with_retry_after(make_client, tmp_path):
    client = make_client(options={"steps": 100_000}, queue_size=1)   # the first job runs until shutdown
    png = encoded(rainy(*TRAINS), tmp_path)
    running = post(client, png).json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/api/jobs/{running}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    waiting = post(client, png)
    assert waiting.status_code == 202
    assert client.get(f"/api/jobs/{waiting.json()['id']}").json()["queue_position"] == 0
    r = post(client, png)
    assert r.status_code == 503 and "full" in r.json()["detail"]
    assert int(r.headers["retry-after"]) >= 1


def test_a_job_that_fails_says_why(client, tmp_path):
    # An upload that turns out unusable in the worker fails with a reason (no crash, no traceback).
    s = store(client)
    job_id2, folder = s.new_folder()
    (folder / "upload").write_bytes(b"not an image")
    job = s.submit(job_id2, folder, "x", "png", 56, 40)
    status = wait_done(client.get, job.id)
    assert status["status"] == "failed" and "not an image" in status["error"]
    assert str(folder) not in status["error"]
    assert client.get(f"/api/jobs/{job.id}/result").status_code == 409


# --- expiry and clean-up ------------------------------------------------------------------------------------

def test_finished_jobs_expire_with_their_files(make_client, tmp_path):
    client = make_client(ttl=0.5)
    job_id = post(client, encoded(rainy(), tmp_path)).json()["id"]
    wait_done(client.get, job_id)
    folder = store(client).root / job_id
    assert (folder / "result.png").is_file()
    time.sleep(0.7)
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    assert client.get(f"/api/jobs/{job_id}/result").status_code == 404
    assert not folder.exists()


def test_only_the_newest_finished_jobs_are_kept(make_client, tmp_path):
    client = make_client(keep=2)
    png = encoded(rainy(), tmp_path)
    ids = []
    for _ in range(3):
        ids.append(post(client, png).json()["id"])
        wait_done(client.get, ids[-1])
    assert client.get(f"/api/jobs/{ids[0]}").status_code == 404
    assert [client.get(f"/api/jobs/{i}").status_code for i in ids[1:]] == [200, 200]
    assert sorted(p.name for p in store(client).root.iterdir()) == sorted(ids[1:])


@pytest.mark.parametrize("fields", [{"keep": 0}, {"ttl": 0}])
def test_settings_that_would_delete_every_result_at_once_are_refused(tmp_path, fields):
    with pytest.raises(ValueError, match="at least 1 and ttl above 0"):
        create_app(ServeSettings(options=FAST, temp_root=tmp_path, **fields))


def test_shutdown_deletes_every_file(tmp_path):
    app = create_app(ServeSettings(options=FAST, temp_root=tmp_path))
    with TestClient(app) as client:
        wait_done(client.get, post(client, encoded(rainy(), tmp_path)).json()["id"])
        root = app.state.store.root
        assert any(root.iterdir())
    assert not root.exists()


# --- cancelling ---------------------------------------------------------------------------------------------

def wait_running(client, job_id: str, steps: int = 1) -> None:
    """Wait until the job has trained ``steps`` steps."""
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{job_id}").json()["steps_done"] < steps:
        assert time.monotonic() < deadline, "the job did not start training"
        time.sleep(0.01)


def test_cancelling_a_queued_job_takes_it_out_of_the_queue(make_client, tmp_path, monkeypatch):
    ran = []   # the jobs a worker took
    run = serve_jobs.JobStore._run

    def running_job(self, job):
        ran.append(job.id)
        return run(self, job)
    monkeypatch.setattr(serve_jobs.JobStore, "_run", running_job)
    client = make_client(options={"steps": 100_000}, queue_size=1)   # the first job runs until cancelled
    running = post(client, encoded(rainy(*TRAINS), tmp_path)).json()["id"]
    wait_running(client, running)
    queued = post(client, encoded(rainy(), tmp_path)).json()["id"]
    assert post(client, encoded(rainy(), tmp_path)).status_code == 503   # the queue is full
    assert (store(client).root / queued / "upload").is_file()

    r = client.delete(f"/api/jobs/{queued}")
    assert r.status_code == 200 and r.json() == {"id": queued, "cancelled": True}
    assert client.get(f"/api/jobs/{queued}").status_code == 404
    assert not (store(client).root / queued).exists()
    assert store(client).counts() == {"queued": 0, "running": 1, "done": 0, "failed": 0}
    after = post(client, encoded(rainy(), tmp_path))   # its place in the queue is free at once
    assert after.status_code == 202, after.text

    assert client.delete(f"/api/jobs/{running}").json()["cancelled"] is True
    assert wait_done(client.get, after.json()["id"])["status"] == "done"
    assert ran == [running, after.json()["id"]]   # the cancelled job never ran


def test_cancelling_a_running_job_stops_it_and_frees_the_worker(make_client, tmp_path):
    client = make_client(options={"steps": 100_000})   # would train for hours
    running = post(client, encoded(rainy(*TRAINS), tmp_path)).json()["id"]
    wait_running(client, running, steps=2)
    following = post(client, encoded(rainy(), tmp_path)).json()["id"]   # too small to train: done at once
    assert client.get(f"/api/jobs/{following}").json()["status"] == "queued"

    start = time.monotonic()
    r = client.delete(f"/api/jobs/{running}")
    assert r.status_code == 200 and r.json() == {"id": running, "cancelled": True}
    assert client.get(f"/api/jobs/{running}").status_code == 404
    assert client.get(f"/api/jobs/{running}/result").status_code == 404
    assert wait_done(client.get, following, timeout=30)["status"] == "done"   # the one worker is free
    assert time.monotonic() - start < 30
    assert sorted(p.name for p in store(client).root.iterdir()) == [following]   # nothing of the cancelled job


def in_rain_stage(client, tmp_path) -> str:
    """Upload a 1.8 MP photo that would then train for hours; its id once it finds its rain.

    Finding the rain and the references of a photo this large takes about ten seconds on a
    2-core machine, before the first training step.
    """
    big = np.tile(rainy(*TRAINS), (12, 12, 1))
    job_id = post(client, encoded(big, tmp_path, "big.png")).json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{job_id}").json()["stage"] != "rain":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.01)
    return job_id


def test_cancelling_a_job_before_it_trains_frees_the_worker_at_once(make_client, tmp_path):
    client = make_client(options={"steps": 100_000})
    running = in_rain_stage(client, tmp_path)
    following = post(client, encoded(rainy(), tmp_path)).json()["id"]   # too small to train: done at once
    status = client.get(f"/api/jobs/{running}").json()
    assert (status["stage"], status["steps_done"]) == ("rain", 0), status   # the cancel comes before training

    start = time.monotonic()
    assert client.delete(f"/api/jobs/{running}").json() == {"id": running, "cancelled": True}
    assert client.get(f"/api/jobs/{running}").status_code == 404
    while client.get(f"/api/jobs/{following}").json()["status"] == "queued":
        assert time.monotonic() - start < 2, "the cancelled job still holds the one worker"
        time.sleep(0.01)
    assert wait_done(client.get, following, timeout=30)["status"] == "done"
    assert sorted(p.name for p in store(client).root.iterdir()) == [following]   # nothing of the cancelled job
    assert multiprocessing.active_children() == []   # its process is gone


def test_shutdown_stops_a_job_before_it_trains_at_once(tmp_path):
    app = create_app(ServeSettings(options={"steps": 100_000}, temp_root=tmp_path))
    with TestClient(app) as client:
        in_rain_stage(client, tmp_path)
        root = app.state.store.root
        start = time.monotonic()
    assert time.monotonic() - start < 2
    assert not root.exists() and multiprocessing.active_children() == []


def test_a_job_whose_process_dies_fails_and_the_worker_goes_on(make_client, tmp_path):
    client = make_client(options={"steps": 100_000})
    running = post(client, encoded(rainy(*TRAINS), tmp_path)).json()["id"]
    wait_running(client, running)
    (process,) = multiprocessing.active_children()
    os.kill(process.pid, signal.SIGKILL)   # as the kernel does to a process out of memory
    status = wait_done(client.get, running, timeout=30)
    assert status["status"] == "failed" and "ended unexpectedly" in status["error"], status
    assert wait_done(client.get, post(client, encoded(rainy(), tmp_path)).json()["id"])["status"] == "done"


def test_deleting_a_finished_job_deletes_its_files(client, tmp_path):
    job_id = post(client, encoded(rainy(), tmp_path)).json()["id"]
    assert wait_done(client.get, job_id)["status"] == "done"
    folder = store(client).root / job_id
    assert (folder / "result.png").is_file() and (folder / "mask.png").is_file()
    r = client.delete(f"/api/jobs/{job_id}")
    assert r.status_code == 200 and r.json() == {"id": job_id, "cancelled": False}
    assert not folder.exists()
    for path in ("", "/result", "/mask"):
        assert client.get(f"/api/jobs/{job_id}{path}").status_code == 404
    assert client.delete(f"/api/jobs/{job_id}").status_code == 404   # once only


def test_cancelling_an_unknown_job_is_404(client):
    for job_id in ("0123456789abcdef0123456789abcdef", "nope"):
        r = client.delete(f"/api/jobs/{job_id}")
        assert r.status_code == 404 and r.json()["detail"] == f"no job {job_id!r}: unknown, or finished and expired"
    for path in ("..%2F..%2Fetc", "%2e%2e", "..%5C..%5Cwindows"):   # no route: nothing is deleted
        assert client.delete(f"/api/jobs/{path}").status_code == 404
    assert store(client).root.is_dir()


# --- the page and the docs ----------------------------------------------------------------------------------

def test_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/", "/app.js", "/style.css"):
        body = client.get(path).text
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", body), path
        assert "@import" not in body and "url(http" not in body
    assert client.get("/app.js").headers["content-type"].startswith("text/javascript")


def test_openapi_documents_the_api(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/health", "/api/derain", "/api/jobs/{job_id}", "/api/jobs/{job_id}/result",
            "/api/jobs/{job_id}/mask"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/jobs/{job_id}"]) == {"get", "delete"}
    assert "Cancel" in spec["paths"]["/api/jobs/{job_id}"]["delete"]["summary"]
    form = spec["paths"]["/api/derain"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form["properties"]) == {"file", "preset", "seed"}
    assert client.get("/docs").status_code == 200
