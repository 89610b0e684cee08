"""The Dask backend on real clusters on 127.0.0.1: a LocalCluster, and a scheduler and workers started
with the ``dask`` command line (as on a real cluster: the workers import the installed rain2avoid).

Each cluster has 2 single-threaded worker processes. The same outputs as a local run, bad files
reported, both write modes, and a worker killed mid-run: every image still done exactly once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason="the Dask tests need rain2avoid[dask]")

from conftest import default_sigint, dry_photo, invoke  # noqa: E402
from test_batch import GOOD, TRAINS, done_lines, make_folder, max_difference, tmp_files  # noqa: E402

import rain2avoid  # noqa: E402
import rain2avoid.batch.dask  # noqa: E402
from rain2avoid.batch import DerainTask, Job, run_local  # noqa: E402
from rain2avoid.batch.dask import DaskError, DaskLost, run_dask  # noqa: E402
from rain2avoid.files import claim  # noqa: E402
from rain2avoid.io import read_image  # noqa: E402

STEPS = "30"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_command() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [shutil.which("dask") or "dask"]


class CommandLineCluster:
    """``dask scheduler`` and ``dask worker --nworkers 2 --nthreads 1`` as subprocesses."""

    def __init__(self, tmp: Path):
        port = _free_port()
        self.scheduler_address = f"tcp://127.0.0.1:{port}"
        # The workers import rain2avoid like any installed package; point them at the one under test.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(rain2avoid.__file__).parents[1])] + os.environ.get("PYTHONPATH", "").split(os.pathsep))}
        log = open(tmp / "dask.log", "w")
        self.processes = [subprocess.Popen(
            _dask_command() + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=log, stderr=log, env=env, cwd=tmp)]
        self.processes.append(subprocess.Popen(
            _dask_command() + ["worker", self.scheduler_address, "--nworkers", "2", "--nthreads", "1",
                               "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp)],
            stdout=log, stderr=log, env=env, cwd=tmp))
        with distributed.Client(self.scheduler_address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)

    def close(self):
        for p in reversed(self.processes):  # the workers first, while the scheduler is there
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module", params=["LocalCluster", "dask command line"])
def cluster(request, tmp_path_factory):
    if request.param == "LocalCluster":
        c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                     host="127.0.0.1")
    else:
        c = CommandLineCluster(tmp_path_factory.mktemp("dask"))
    yield c.scheduler_address
    c.close()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Four good images (one in a subfolder) large enough to train on, two bad files, and their
    outputs from a local run."""
    root = tmp_path_factory.mktemp("mixed")
    make_folder(root / "in", GOOD, *TRAINS)
    (root / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "in" / "notes.jpg").write_bytes(b"plain text")
    r = invoke("derain", root / "in", "-o", root / "local", "-r", "--steps", STEPS, "--workers", "1")
    assert r.exit_code == 1 and sorted(done_lines(r)) == sorted(Path(n).name for n in GOOD)
    assert all(max_difference(root / "local" / name, root / "in" / name) > 2 for name in GOOD)   # trained
    return root


@pytest.mark.parametrize("write", ["auto", "client"])
def test_same_outputs_as_local_and_bad_files_reported(tmp_path, cluster, mixed, write):
    out = tmp_path / "out"
    r = invoke("derain", mixed / "in", "-o", out, "-r", "--steps", STEPS, "--dask", cluster, "--dask-write", write)
    assert r.exit_code == 1, r.output
    assert f"outputs written by the {'workers' if write == 'auto' else 'client'}" in r.stdout
    assert sorted(done_lines(r)) == sorted(Path(n).name for n in GOOD)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and any("broken.png" in e for e in errors) and any("notes.jpg" in e for e in errors)
    assert "2 of 6 file(s) failed:" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(GOOD)
    for name in GOOD:
        assert max_difference(out / name, mixed / "local" / name) <= 1
    assert tmp_files(tmp_path) == [] and not list(out.rglob(".rain2avoid-probe-*"))
    r = invoke("derain", mixed / "in", "-o", out, "-r", "--steps", STEPS, "--dask", cluster)  # re-run: all skipped
    assert r.exit_code == 1 and done_lines(r) == [] and r.stdout.count("skip ") == len(GOOD)


@pytest.mark.parametrize("write", ["auto", "client"])
def test_a_photo_without_rain_comes_back_as_its_own_file(tmp_path, cluster, write):
    """Written by the workers or by the client, an untouched JPEG is not compressed a second time."""
    from PIL import Image
    (tmp_path / "in").mkdir()
    Image.fromarray(dry_photo()).save(tmp_path / "in" / "dry.jpg", quality=80)
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", STEPS, "--dask", cluster,
               "--dask-write", write)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "dry.jpg").read_bytes() == (tmp_path / "in" / "dry.jpg").read_bytes()


def test_relative_paths_reach_workers_in_other_folders(tmp_path, cluster, mixed, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the workers' current folder is another one
    r = invoke("derain", os.path.relpath(mixed / "in", tmp_path), "-o", "out", "-r", "--steps", STEPS,
               "--dask", cluster)
    assert r.exit_code == 1 and "outputs written by the workers" in r.stdout, r.output
    for name in GOOD:
        assert max_difference(tmp_path / "out" / name, mixed / "local" / name) <= 1
        assert f" -> {Path('out') / name} " in r.stdout   # named as given, as a local run names them
    assert str(tmp_path) not in r.output and "broken.png" in r.stderr


def _set_worker_tempdir(address: str, folder: str | None) -> None:
    """Point ``tempfile`` in every worker at ``folder`` (None: back to the system's)."""
    with distributed.Client(address, timeout=60) as client:
        client.run(lambda path: setattr(tempfile, "tempdir", path), folder)


@pytest.mark.parametrize("write", ["worker", "client"])
def test_apply(tmp_path, cluster, mixed, write):
    model = tmp_path / "m.pt"
    assert invoke("train", mixed / "in", "--model", model, "--steps", "3", "-q").exit_code == 1
    r = invoke("apply", mixed / "in", "--model", model, "-o", tmp_path / "local", "-r", "--workers", "1")
    assert r.exit_code == 1
    # The workers' model copies: never at a name another user could plant a file at in advance
    # (in client mode, in a private folder per worker process, removed when it exits).
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    planted = worker_tmp / f"rain2avoid-model-{hashlib.sha256(model.read_bytes()).hexdigest()[:16]}.pt"
    planted.write_bytes(b"not the model")
    _set_worker_tempdir(cluster, str(worker_tmp))
    try:
        r = invoke("apply", mixed / "in", "--model", model, "-o", tmp_path / "out", "-r", "--dask", cluster,
                   "--dask-write", write)
    finally:
        _set_worker_tempdir(cluster, None)
    assert r.exit_code == 1 and r.stderr.count("error: ") == 2, r.output
    for name in GOOD:
        assert max_difference(tmp_path / "out" / name, tmp_path / "local" / name) <= 1
    assert planted.read_bytes() == b"not the model"
    for copies in set(worker_tmp.iterdir()) - {planted}:
        assert write == "client" and copies.name.startswith("rain2avoid-models-") and copies.is_dir()
        assert copies.stat().st_mode & 0o777 == 0o700


def _models_loaded_and_folder() -> tuple[int, str | None]:
    """In a worker: how many times it loaded a model, and its private folder for the models' copies."""
    from rain2avoid.batch import dask, work
    return work._load_model.cache_info().misses, getattr(dask, "_model_folder", None)


def test_apply_in_client_mode_loads_the_model_once_per_worker(tmp_path):
    """Not once per image: every task of a worker process reuses its one copy of the model."""
    names = ["a.png", "b.png", "c.png", "d.png"]
    make_folder(tmp_path / "in", names, 24, 32)
    model = tmp_path / "m.pt"
    assert invoke("train", tmp_path / "in", "--model", model, "--steps", "3", "-q").exit_code == 0
    assert invoke("apply", tmp_path / "in", "--model", model, "-o", tmp_path / "local").exit_code == 0
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       host="127.0.0.1")
    try:
        r = invoke("apply", tmp_path / "in", "--model", model, "-o", tmp_path / "out", "--dask",
                   cluster.scheduler_address, "--dask-write", "client")
        assert r.exit_code == 0 and "4 image(s) written" in r.stdout, r.output
        with distributed.Client(cluster.scheduler_address, timeout=60) as client:
            [(loads, folder)] = client.run(_models_loaded_and_folder).values()
        assert loads == 1
        assert [p.name for p in Path(folder).iterdir()] == [f"{hashlib.sha256(model.read_bytes()).hexdigest()[:16]}.pt"]
        assert Path(folder).stat().st_mode & 0o777 == 0o700
    finally:
        cluster.close()
    assert not Path(folder).exists()  # removed when the worker exited
    for name in names:
        assert max_difference(tmp_path / "out" / name, tmp_path / "local" / name) <= 1


def test_derain_init_sends_the_model_to_workers_that_do_not_see_it(tmp_path, cluster, mixed):
    model = tmp_path / "m.pt"
    assert invoke("train", mixed / "in", "--model", model, "--steps", "3", "-q").exit_code == 1
    common = ["-r", "--steps", STEPS, "--init", model]
    r = invoke("derain", mixed / "in", "-o", tmp_path / "local", *common, "--workers", "1")
    assert r.exit_code == 1
    r = invoke("derain", mixed / "in", "-o", tmp_path / "out", *common, "--dask", cluster, "--dask-write", "client")
    assert r.exit_code == 1 and r.stderr.count("error: ") == 2, r.output
    for name in GOOD:
        assert max_difference(tmp_path / "out" / name, tmp_path / "local" / name) <= 1


def test_outputs_another_run_is_making_are_skipped(tmp_path, cluster):
    make_folder(tmp_path / "in", ["a.png", "b.png", "c.png"], 24, 32)
    out = tmp_path / "out"
    out.mkdir()
    other = claim(out / "a.png")  # another run is making a.png
    try:
        r = invoke("derain", tmp_path / "in", "-o", out, "--steps", "2", "--dask", cluster)
    finally:
        other.release()
    assert r.exit_code == 0, r.output
    assert f"skip a.png: {out / 'a.png'} is being written by another run" in r.stdout
    assert sorted(done_lines(r)) == ["b.png", "c.png"] and sorted(os.listdir(out)) == ["b.png", "c.png"]
    assert "2 image(s) written, 1 skipped (0 already done, 1 left to another run)" in r.stdout


def test_ctrl_c_cancels_the_tasks_not_started(tmp_path, cluster):
    make_folder(tmp_path / "in", [f"{i}.png" for i in range(8)], *TRAINS)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rain2avoid.cli", "derain", tmp_path / "in", "-o", out, "--steps", "60",
           "--dask", cluster]
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_sigint)
    deadline = time.monotonic() + 180
    while not any(out.glob("*.png")) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    with distributed.Client(cluster, timeout=30) as client:  # nothing of ours is left queued
        deadline = time.monotonic() + 60
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(client.processing().values())
    finished = sorted(out.glob("*.png"))  # tasks running at Ctrl-C finished and wrote whole files
    assert 1 <= len(finished) < 8 and tmp_files(tmp_path) == []
    for f in finished:
        assert read_image(f).shape == (*TRAINS, 3)


def test_ctrl_c_before_a_dask_call_starts_logs_no_traceback(cluster):
    """distributed's sync() answers Ctrl-C by cancelling the call it waits for; when the
    interrupt comes before the call has started, its cancel finds no future and tornado logs a
    NameError with a traceback (it once failed the command-line test above). run_dask's filter
    drops that record, and only that one."""
    import logging
    from distributed.utils import LoopRunner, sync

    from rain2avoid.batch.dask import CancelRaceFilter

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.records = []

        def emit(self, record):
            self.records.append(record)

    async def nothing():
        return 1

    log, keep, quiet = logging.getLogger("tornado.application"), Keep(), CancelRaceFilter()
    runner = LoopRunner(asynchronous=False)
    runner.start()
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    log.addHandler(keep)
    log.addFilter(quiet)
    try:
        runner.loop.add_callback(time.sleep, 0.5)  # the loop is busy: the call cannot start yet
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            sync(runner.loop, nothing)
        time.sleep(0.8)   # the loop runs the cancel
    finally:
        log.removeFilter(quiet)
        log.removeHandler(keep)
        signal.signal(signal.SIGINT, old)
        runner.stop()
    assert not [r for r in keep.records if r.exc_info and isinstance(r.exc_info[1], NameError)]
    try:
        raise NameError("name 'future' is not defined")   # the same error raised anywhere else passes
    except NameError:
        other = logging.LogRecord("tornado.application", logging.ERROR, __file__, 1, "x", None, sys.exc_info())
    assert quiet.filter(other)
    assert quiet.filter(logging.LogRecord("tornado.application", logging.ERROR, __file__, 1, "x", None, None))
    seen = []   # run_dask has the filter on while it talks to the cluster, and takes it off after
    run_dask(DerainTask(), [], cluster, on_start=lambda *_: seen.extend(type(f) for f in log.filters))
    assert CancelRaceFilter in seen and not any(isinstance(f, CancelRaceFilter) for f in log.filters)


def test_a_killed_worker_loses_nothing(tmp_path, cluster):  # last: the cluster has lost a worker
    files = make_folder(tmp_path / "in", [f"{i}.png" for i in range(6)])
    jobs = [Job(f, tmp_path / "out" / f.name) for f in files]
    task = DerainTask(options=(("steps", 60),))
    outcomes, failure = [], []
    first = threading.Event()

    def run():
        try:
            outcomes.extend(run_dask(task, jobs, cluster, on_outcome=lambda o: first.set()))
        except BaseException as e:  # shown by the assertion below
            failure.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    with distributed.Client(cluster, timeout=30) as client:
        while not first.wait(0.2) and thread.is_alive():  # then the workers are busy with the next images
            pass
        assert first.is_set(), failure
        busy = [address for address, keys in client.processing().items() if keys]
        assert busy, "no task was running"
        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        thread.join(300)
        assert not thread.is_alive() and not failure, failure
    assert sorted(o.src.name for o in outcomes) == sorted(f.name for f in files)  # each exactly once
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    local = run_local(task, [Job(j.src, tmp_path / "local" / j.src.name) for j in jobs])
    assert all(o.ok for o in local)
    for f in files:
        assert max_difference(tmp_path / "out" / f.name, tmp_path / "local" / f.name) <= 1
    assert tmp_files(tmp_path) == []


def test_unreachable_scheduler_is_one_clear_error(tmp_path):
    make_folder(tmp_path / "in", ["a.png"])
    jobs = [Job(tmp_path / "in" / "a.png", tmp_path / "out" / "a.png")]
    start = time.monotonic()
    with pytest.raises(DaskError, match="cannot reach the Dask scheduler"):
        run_dask(DerainTask(), jobs, f"tcp://127.0.0.1:{_free_port()}", timeout=2)
    assert time.monotonic() - start < 30


def test_unreachable_scheduler_exits_2_in_one_line(tmp_path, monkeypatch):
    """Nothing was done: 2, like a usage error, not 1 (some images failed)."""
    monkeypatch.setattr(rain2avoid.batch.dask, "run_dask", functools.partial(run_dask, timeout=2))
    make_folder(tmp_path / "in", ["a.png"], 24, 32)
    address = f"tcp://127.0.0.1:{_free_port()}"
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--dask", address)
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1, r.output
    assert r.stderr.startswith(f"Error: cannot reach the Dask scheduler at {address} ") and "dask scheduler" in r.stderr


def test_a_bad_address_or_an_unreachable_scheduler_is_said_before_any_work(tmp_path):
    """Checked before the videos, which run here first: a malformed address was a traceback after them,
    and a run that never ended."""
    from rain2avoid.video import write_video
    make_folder(tmp_path / "in", ["a.png"], 24, 32)
    write_video(tmp_path / "in" / "clip.mkv", [dry_photo()] * 2)
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--dask", "nonsense")
    assert r.exit_code == 2 and "--dask nonsense is not a scheduler address (missing port number" in r.stderr
    address = f"tcp://127.0.0.1:{_free_port()}"
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--dask", address)
    assert r.exit_code == 2 and r.stderr.startswith(f"Error: cannot reach the Dask scheduler at {address} ")
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--dask-write", "worker")
    assert r.exit_code == 2 and "--dask-write goes with --dask" in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())   # the video was not derained


def test_a_scheduler_lost_mid_run_ends_the_run_saying_so(tmp_path):
    """The client gives up reconnecting after ``timeout``; the run must end then (it waited forever)."""
    make_folder(tmp_path / "in", ["a.png", "b.png"], *TRAINS)
    jobs = [Job(tmp_path / "in" / n, tmp_path / "out" / n) for n in ("a.png", "b.png")]
    lost = CommandLineCluster(tmp_path)
    threading.Timer(3, lambda: [p.kill() for p in lost.processes]).start()
    start = time.monotonic()
    with pytest.raises(DaskLost, match=r"lost the Dask scheduler at .* 0 of 2 image\(s\) done; run the same"):
        run_dask(DerainTask(options=(("steps", 100_000),), threads=1), jobs, lost.scheduler_address, timeout=3)
    assert time.monotonic() - start < 60
    lost.close()
    assert list((tmp_path / "out").glob("*")) + list((tmp_path / "out").glob(".*")) == []   # no claim left
