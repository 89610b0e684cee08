"""Many images on one machine: shards, trees, worker processes, re-runs, Ctrl-C, bounded training memory.

Tiny images and few training steps; the pool tests start real worker processes.
The Dask backend is tested in test_dask.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from conftest import default_sigint, invoke

from rain2avoid.batch import (
    DerainTask,
    Job,
    find_images,
    parse_shard,
    plan_jobs,
    run_local,
    take_shard,
)
from rain2avoid.io import read_image, write_image
from rain2avoid.sdrl import Settings, train_folder, train_stream

H, W = 40, 56
TRAINS = (96, 128)   # the size from which every rainy() image shows its rain (smaller ones need no training)


def rainy(seed, h=H, w=W):
    from rain2avoid.synth import add_rain, clean_example
    name = ("coffee", "chelsea", "rocket", "astronaut")[seed % 4]
    image, _ = add_rain(clean_example(name, size=(h, w)), angle=5 * (seed % 5) - 10, density=0.04, length=14,
                        seed=seed)
    return image


def make_folder(root: Path, names, h=H, w=W) -> list[Path]:
    for i, name in enumerate(names):
        write_image(root / name, rainy(i, h, w))
    return [root / name for name in names]


def tmp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*.tmp")]


def done_lines(result) -> list[str]:
    """The inputs a derain run reports as done (``name -> output (...)``)."""
    return [line.split(" -> ")[0] for line in result.stdout.splitlines() if " -> " in line]


def max_difference(a: Path, b: Path) -> int:
    return int(np.abs(read_image(a).astype(int) - read_image(b).astype(int)).max())


# --- shards -----------------------------------------------------------------------------------------------------

def test_parse_shard():
    assert parse_shard("0/1") == (0, 1) and parse_shard("3/4") == (3, 4) and parse_shard(" 2 / 10 ") == (2, 10)
    for bad, words in [("4/4", "0 to 3"), ("1/0", "at least 1"), ("-1/3", "K/N"), ("a/b", "K/N"), ("3", "K/N"),
                       ("1/2/3", "K/N")]:
        with pytest.raises(ValueError, match=words):
            parse_shard(bad)


@pytest.mark.parametrize("count", [0, 1, 5, 7, 100])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 10])
def test_shards_hold_every_item_exactly_once(count, n):
    items = [f"{i}.png" for i in range(count)]
    shards = [take_shard(items, k, n) for k in range(n)]
    assert sum(shards, []) == items  # in order, each exactly once
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError):
        take_shard(items, n, n)


@pytest.mark.parametrize("n", [3, 7])
def test_cli_shards_cover_the_folder_exactly_once(tmp_path, n):
    names = [f"{i}.png" for i in (1, 2, 10, 11, 20)]  # natural order: 10 after 2 on every machine
    make_folder(tmp_path / "in", names)
    seen = []
    for k in range(n):
        r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "1", "--shard", f"{k}/{n}")
        assert r.exit_code == 0, r.output
        seen += done_lines(r)
    assert sorted(seen) == sorted(names) and len(seen) == len(set(seen))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)


def test_cli_bad_shards_are_usage_errors(tmp_path):
    make_folder(tmp_path / "in", ["a.png"])
    for bad in ("2/2", "1/0", "x", "1/2/3"):
        r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--shard", bad)
        assert r.exit_code == 2 and "--shard" in r.stderr, (bad, r.output)
    assert not (tmp_path / "out").exists()


def test_rerun_of_a_shard_is_idempotent(tmp_path):
    make_folder(tmp_path / "in", [f"{i}.png" for i in range(4)])
    args = ["derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "1", "--shard", "1/2"]
    r = invoke(*args)
    assert r.exit_code == 0 and sorted(done_lines(r)) == ["2.png", "3.png"]
    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "out").iterdir()}
    r = invoke(*args)
    assert r.exit_code == 0 and done_lines(r) == [] and r.stdout.count("skip ") == 2
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "out").iterdir()} == stats


# --- trees ------------------------------------------------------------------------------------------------------

def test_find_images_recursive_order_and_skips(tmp_path):
    make_folder(tmp_path, ["b/10.png", "b/2.png", "a.png", "B2/x.jpg", ".hidden/h.png", "b/.h.png", "out/o.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    found = find_images(tmp_path, recursive=True, exclude=tmp_path / "out")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.png", "b/2.png", "b/10.png", "B2/x.jpg"]
    assert [p.name for p in find_images(tmp_path)] == ["a.png"]
    jobs = plan_jobs(found, tmp_path, Path("/o"), ".png")
    assert jobs[-1] == Job(tmp_path / "B2" / "x.jpg", Path("/o/B2/x.png"))


def test_recursive_mirrors_the_tree_and_skips_its_own_output(tmp_path):
    root = tmp_path / "photos"
    names = ["top.png", "2024/jan/1.png", "2024/feb/2.jpg", "2023/3.png"]
    make_folder(root, names)
    out = root / "derained"  # inside the input tree
    for _ in range(2):  # the second run must not take the first run's outputs for inputs
        r = invoke("derain", root, "-o", out, "-r", "--steps", "1", "--force")
        assert r.exit_code == 0, r.output
        assert len(done_lines(r)) == len(names)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(names)
    for name in names:
        assert read_image(out / name).shape == read_image(root / name).shape
    r = invoke("derain", root, "-o", tmp_path / "flat", "--steps", "1")  # without -r: the top folder only
    assert r.exit_code == 0 and done_lines(r) == ["top.png"]


# --- worker processes ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Four good images (one in a subfolder), large enough to train on, and two bad files."""
    root = tmp_path_factory.mktemp("mixed")
    make_folder(root, ["a.png", "b.png", "c.jpg", "sub/d.png"], *TRAINS)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "notes.jpg").write_bytes(b"plain text")
    return root


GOOD = ["a.png", "b.png", "c.jpg", "sub/d.png"]


def test_two_workers_give_the_outputs_of_one(tmp_path, mixed):
    out = {}
    for workers in ("1", "2"):
        out[workers] = tmp_path / f"w{workers}"
        r = invoke("derain", mixed, "-o", out[workers], "-r", "--steps", "30", "--workers", workers)
        assert r.exit_code == 1, r.output  # the two bad files
        assert sorted(done_lines(r)) == sorted(Path(n).name for n in GOOD)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 2 and any("broken.png" in e for e in errors) and any("notes.jpg" in e for e in errors)
        assert "2 of 6 file(s) failed:" in r.stderr
        assert tmp_files(out[workers]) == []
    for name in GOOD:
        assert max_difference(out["1"] / name, out["2"] / name) <= 1
        assert max_difference(out["1"] / name, mixed / name) > 2   # trained: the rain is taken away


def test_folders_train_with_one_thread_whatever_the_process_has(tmp_path, monkeypatch):
    """Thread counts change float rounding (up to ~6 grey levels at 480x320 and 700 steps,
    benchmarks/scaling.py), so a folder's images train with 1 thread under any --workers."""
    import torch

    import rain2avoid.pipeline
    real, seen = rain2avoid.pipeline.derain_detailed, []

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(rain2avoid.pipeline, "derain_detailed", spy)
    make_folder(tmp_path / "in", ["a.png", "b.png"])
    torch.set_num_threads(2)
    assert invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "1", "--workers", "1").exit_code == 0
    assert seen == [1, 1] and torch.get_num_threads() == 2  # and restored afterwards
    assert invoke("derain", tmp_path / "in" / "a.png", "-o", tmp_path / "one.png", "--steps", "1").exit_code == 0
    assert seen[-1] == 2  # a single image keeps every thread, as before


def test_apply_with_two_workers(tmp_path, mixed):
    model = tmp_path / "m.pt"
    assert invoke("train", mixed, "--model", model, "--steps", "3", "-q").exit_code == 1  # bad files left out
    for workers in ("1", "2"):
        r = invoke("apply", mixed, "--model", model, "-o", tmp_path / f"w{workers}", "-r", "--workers", workers)
        assert r.exit_code == 1 and r.stderr.count("error: ") == 2, r.output
    for name in GOOD:
        assert max_difference(tmp_path / "w1" / name, tmp_path / "w2" / name) <= 1


def test_a_killed_worker_is_replaced_and_its_image_redone(tmp_path):
    import multiprocessing
    files = make_folder(tmp_path / "in", [f"{i}.png" for i in range(5)])
    jobs = [Job(f, tmp_path / "out" / f.name) for f in files]
    task = DerainTask(options=(("steps", 60),))
    killed = []

    def kill_one(outcome):
        if not killed:  # the pool's workers are busy with the next images now
            victim = multiprocessing.active_children()[0]
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    outcomes = run_local(task, jobs, workers=2, on_outcome=kill_one)
    assert killed
    assert sorted(o.src.name for o in outcomes) == [f.name for f in files]  # each exactly once
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    expected = run_local(task, [Job(files[4], tmp_path / "ref.png")])
    assert expected[0].ok and max_difference(tmp_path / "ref.png", tmp_path / "out" / "4.png") <= 1
    assert tmp_files(tmp_path) == []


def _processes() -> dict[int, int]:
    """{pid: parent pid} of the live (not zombie) processes, read from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat:
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                parents[int(entry.name)] = int(ppid)
    return parents


def _descendants(pid: int) -> set[int]:
    """The live processes below ``pid``."""
    parents = _processes()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = {child for child, ppid in parents.items() if ppid == parent}
        todo += children - found
        found |= children
    return found


def _start_folder_run(tmp_path):
    """A derain run of 6 images with 2 workers, once its first output is written (the workers
    are busy with the next ones then); the process, its output folder and its workers."""
    make_folder(tmp_path / "in", [f"{i}.png" for i in range(6)], *TRAINS)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rain2avoid.cli", "derain", tmp_path / "in", "-o", out, "--steps", "150",
           "--workers", "2"]
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("*.png"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return p, out, _descendants(p.pid)


def test_ctrl_c_stops_workers_and_leaves_only_complete_outputs(tmp_path):
    p, out, _ = _start_folder_run(tmp_path)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    finished = sorted(out.glob("*.png"))
    assert 1 <= len(finished) < 6 and tmp_files(out) == []
    for f in finished:
        assert read_image(f).shape == (*TRAINS, 3)
    r = invoke("derain", tmp_path / "in", "-o", out, "--steps", "1", "--workers", "1")  # a re-run does the rest
    assert r.exit_code == 0 and len(done_lines(r)) == 6 - len(finished)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    p, out, workers = _start_folder_run(tmp_path)
    assert len(workers) >= 3  # the forkserver and two workers (and the resource tracker)
    p.kill()
    p.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while workers & _processes().keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workers & _processes().keys(), "worker processes outlived the main process"
    written = sorted(out.glob("*.png"))
    time.sleep(3)
    assert sorted(out.glob("*.png")) == written and len(written) < 6


def test_sigterm_stops_like_ctrl_c(tmp_path):
    p, out, workers = _start_folder_run(tmp_path)
    p.terminate()
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 143, stderr
    assert "interrupted: " in stderr and "Traceback" not in stderr
    assert 1 <= len(list(out.glob("*.png"))) < 6 and tmp_files(out) == []


def _stalled_run(*args):
    """``rain2avoid derain ARGS`` in one process that stops in the middle of writing its first
    output (in the fsync of its temporary file) until its stdin is closed, like a write that a
    SIGKILL cuts short; the running process."""
    code = ("import os, sys\n"
            "def stall(fd, fsync=os.fsync):\n"
            "    print('writing', flush=True)\n"
            "    sys.stdin.read()\n"
            "    fsync(fd)\n"
            "os.fsync = stall\n"
            "from rain2avoid.cli import main\n"
            "main()\n")
    p = subprocess.Popen([sys.executable, "-c", code, "derain", *map(str, args), "--steps", "2", "--workers", "1"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "writing\n", p.communicate()
    return p


def hidden_files(folder: Path) -> list[str]:
    """The temporary files and claims in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_plain_rerun_cleans_up_after_a_killed_run(tmp_path):
    make_folder(tmp_path / "in", ["a.png", "b.png"], 24, 32)
    out = tmp_path / "out"
    p = _stalled_run(tmp_path / "in", "-o", out)
    assert sorted(name.split(".")[-1] for name in hidden_files(out)) == ["claim", "tmp"]  # a.png's, cut short
    p.kill()
    p.communicate(timeout=30)
    r = invoke("derain", tmp_path / "in", "-o", out, "--steps", "2", "--workers", "1")
    assert r.exit_code == 0 and sorted(done_lines(r)) == ["a.png", "b.png"], r.output
    assert hidden_files(out) == []


def test_a_single_file_stopped_while_writing_says_its_output_is_not_written(tmp_path):
    make_folder(tmp_path / "in", ["a.png"], 24, 32)
    out = tmp_path / "out"
    p = _stalled_run(tmp_path / "in" / "a.png", "-o", out / "a.png")
    p.terminate()
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 143 and stderr.strip().splitlines()[-1] == f"interrupted: {out / 'a.png'} not written"
    assert os.listdir(out) == []   # no output, no temporary file, no claim


def test_temporary_files_of_live_writes_are_kept(tmp_path):
    from rain2avoid.batch.work import remove_temporaries
    make_folder(tmp_path / "in", ["a.png", "b.png"], 24, 32)
    out = tmp_path / "out"
    live = _stalled_run(tmp_path / "in" / "a.png", "-o", out / "a.png")
    killed = _stalled_run(tmp_path / "in" / "b.png", "-o", out / "b.png")
    killed.kill()
    killed.communicate(timeout=30)
    assert len(hidden_files(out)) == 4
    jobs = [Job(tmp_path / "in" / name, out / name) for name in ("a.png", "b.png")]
    assert remove_temporaries(DerainTask(), jobs) == 2  # b.png's: its writer is dead
    assert [name[:7] for name in hidden_files(out)] == [".a.png."] * 2
    stdout, stderr = live.communicate("", timeout=60)  # a.png's write goes on and ends well
    assert live.returncode == 0 and "a.png -> " in stdout, stderr
    assert sorted(os.listdir(out)) == ["a.png"]


def test_two_runs_into_one_folder_do_each_image_once(tmp_path):
    make_folder(tmp_path / "in", ["a.png", "b.png", "c.png"], 24, 32)
    out = tmp_path / "out"
    first = _stalled_run(tmp_path / "in", "-o", out)  # writing a.png
    r = invoke("derain", tmp_path / "in", "-o", out, "--steps", "2", "--workers", "2")
    assert r.exit_code == 0, r.output
    assert f"skip a.png: {out / 'a.png'} is being written by another run" in r.stdout
    assert sorted(done_lines(r)) == ["b.png", "c.png"] and tmp_files(out)  # the first run's write is kept
    assert "done: 2 image(s) written, 1 skipped (0 already done, 1 left to another run), 0 failed" in r.stdout
    stdout, stderr = first.communicate("", timeout=60)
    assert first.returncode == 0, stderr
    assert [line.split(" -> ")[0] for line in stdout.splitlines() if " -> " in line] == ["a.png"]
    assert f"skip c.png: {out / 'c.png'} was written by another run" in stdout
    assert sorted(os.listdir(out)) == ["a.png", "b.png", "c.png"]


def test_folder_runs_end_with_one_summary_line(tmp_path):
    make_folder(tmp_path / "in", ["a.png", "b.png"], 24, 32)
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "2", "--workers", "1")
    assert r.exit_code == 0 and r.stdout.splitlines()[-1].startswith(
        "done: 2 image(s) written, 0 skipped (already done), 0 failed in "), r.output
    model = tmp_path / "m.pt"
    assert invoke("train", tmp_path / "in", "--model", model, "--steps", "2", "-q").exit_code == 0
    make_folder(tmp_path / "ap", ["a.png"], 24, 32)
    r = invoke("apply", tmp_path / "in", "--model", model, "-o", tmp_path / "ap", "--workers", "1")
    assert r.exit_code == 0 and "done: 1 image(s) written, 1 skipped (already done), 0 failed in " in r.stdout
    r = invoke("apply", tmp_path / "in", "--model", model, "-o", tmp_path / "ap", "--force", "-q")
    assert r.exit_code == 0 and r.output == ""
    r = invoke("apply", tmp_path / "in" / "a.png", "--model", model, "-o", tmp_path / "one.png")
    assert r.exit_code == 0 and "done:" not in r.output  # one image: no summary


def test_recursive_says_which_links_it_skipped(tmp_path):
    make_folder(tmp_path / "in", ["a.png"], 24, 32)
    make_folder(tmp_path / "elsewhere", ["b.png"], 24, 32)
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "in" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "-r", "--steps", "2")
    assert r.exit_code == 0, r.output
    assert "skipped 1 symbolic link(s) to folders and 1 broken link(s)" in r.stdout
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.png")) == ["a.png"]
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out2", "-r", "--steps", "2", "-q")
    assert r.exit_code == 0 and r.output == ""
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out3", "--steps", "2")   # the top only: its broken link
    assert r.exit_code == 0 and f"note: skipped 1 broken symbolic link(s) in {tmp_path / 'in'}: gone.png" in r.stdout


def test_train_recursive_says_which_links_it_skipped(tmp_path):
    make_folder(tmp_path / "in", ["a.png"], 24, 32)
    make_folder(tmp_path / "elsewhere", ["b.png"], 24, 32)
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "in" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    r = invoke("train", tmp_path / "in", "-r", "--model", tmp_path / "m.pt", "--steps", "2")
    assert r.exit_code == 0, r.output
    assert "skipped 1 symbolic link(s) to folders and 1 broken link(s)" in r.stdout
    assert "trained on 1 image(s)" in r.stdout


def test_worker_count_usage(tmp_path):
    make_folder(tmp_path / "in", ["a.png"])
    for bad in ("0", "many"):
        r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--workers", bad)
        assert r.exit_code == 2 and "--workers" in r.stderr
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--workers", "2", "--dask", "tcp://127.0.0.1:1")
    assert r.exit_code == 2 and "--dask" in r.stderr
    assert "auto" in invoke("derain", "--help").stdout


# --- training memory ---------------------------------------------------------------------------------------------

def _training_data(seed, h=24, w=32):
    rng = np.random.default_rng(seed)
    x = rng.random((h, w, 3), dtype=np.float32)
    return x, (x * 0.9)[None], np.ones((h, w), np.float32)


def test_train_stream_equals_train_folder_when_everything_fits():
    settings = Settings(steps=20, batch=4, crop=16)
    items = [_training_data(i) for i in range(3)]
    x = items[0][0]
    a = train_folder([i[0] for i in items], [i[1] for i in items], settings, weights=[i[2] for i in items])
    b = train_stream([lambda i=i: i for i in items], settings, budget_mb=1)
    assert np.array_equal(a.predict(x), b.predict(x))


def test_train_stream_holds_at_most_its_budget():
    count, steps = 40, 60
    size = sum(a.nbytes for a in _training_data(0))
    alive, most, calls = set(), [0], []

    def source(i):
        def load():
            calls.append(i)
            if i == 7:
                return None  # a file that could not be read
            item = _training_data(i)
            alive.add(i)
            weakref.finalize(item[0], alive.discard, i)
            most[0] = max(most[0], len(alive))
            return item
        return load

    budget_images = 5
    model = train_stream([source(i) for i in range(count)], Settings(steps=steps, batch=2, crop=16),
                         budget_mb=budget_images * size / 2 ** 20)
    assert sorted(calls) == list(range(count))  # every image loaded exactly once
    assert calls[:budget_images + 1] == list(range(budget_images + 1))  # in order until over budget
    assert most[0] <= budget_images + 1  # the budget plus the one image being added
    assert model.predict(_training_data(0)[0]).shape == (24, 32, 3)


def test_train_stream_loads_every_image_when_they_outnumber_the_steps():
    count, steps = 30, 4                         # a pool of 2 images, 28 more to load in 4 steps
    size = sum(a.nbytes for a in _training_data(0))
    calls = []

    def source(i):
        def load():
            calls.append(i)
            return _training_data(i)
        return load

    train_stream([source(i) for i in range(count)], Settings(steps=steps, batch=2, crop=16),
                 budget_mb=1.5 * size / 2 ** 20)
    assert sorted(calls) == list(range(count))


def test_train_cli_streams_a_folder_bigger_than_its_memory(tmp_path):
    # 1.7 MB of training data each (image, reference, weights as float32): one at a time in 1 MB.
    make_folder(tmp_path / "in", [f"{i}.png" for i in range(6)] + ["sub/6.png"], 200, 300)
    (tmp_path / "in" / "bad.png").write_bytes(b"junk")
    r = invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--steps", "12", "-r", "--memory-mb", "1")
    assert r.exit_code == 1 and "bad.png" in r.stderr and "left out" in r.stderr
    assert "trained on 7 image(s)" in r.stdout
    r = invoke("apply", tmp_path / "in" / "0.png", "--model", tmp_path / "m.pt", "-o", tmp_path / "o.png")
    assert r.exit_code == 0 and read_image(tmp_path / "o.png").shape == (200, 300, 3)


def test_dask_not_installed_names_the_extra(tmp_path, monkeypatch):
    """Checked before any work (a folder's videos would otherwise run first): a usage error."""
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    make_folder(tmp_path / "in", ["a.png"])
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--dask", "tcp://127.0.0.1:8786")
    assert r.exit_code == 2 and "rain2avoid[dask]" in r.stderr and "Traceback" not in r.stderr


# --- --workers auto and memory --------------------------------------------------------------------------------

def test_worker_memory_follows_the_measured_peaks():
    """Measured: 0.45 GB per worker at 0.15 MP, 2.5 GB at 12 MP and 4.2 GB at 24 MP (the estimate errs high)."""
    from rain2avoid.batch.local import memory_workers, worker_memory
    assert worker_memory(480 * 320) / 1e9 == pytest.approx(0.43, abs=0.03)
    assert worker_memory(4288 * 2848) / 1e9 == pytest.approx(2.5, abs=0.1)
    assert 4.2 < worker_memory(6089 * 4044) / 1e9 < 4.8
    assert memory_workers(8, 12_000_000, 10_000_000_000) == 4
    assert memory_workers(2, 24_000_000, 1_000_000_000) == 1    # always one
    assert memory_workers(8, 12_000_000, None) == 8              # unknown: as many as the cores say


def test_available_memory_is_known_here():
    from rain2avoid.batch.local import available_memory
    if not Path("/proc/meminfo").exists():
        pytest.skip("available memory is read from /proc/meminfo (Linux)")
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < available_memory() <= total


def test_workers_auto_fits_the_largest_image_in_memory(tmp_path, monkeypatch):
    """A folder of large photos gets fewer workers than cores when they would not fit, and says why."""
    import rain2avoid.cli.batch as cli_batch
    make_folder(tmp_path / "in", ["a.png", "b.png"])
    write_image(tmp_path / "in" / "big.png", rainy(9, h=120, w=160))
    assert cli_batch.largest_pixels(sorted((tmp_path / "in").iterdir())) == 120 * 160
    monkeypatch.setattr(cli_batch, "auto_workers", lambda images, seconds: 2)
    monkeypatch.setattr(cli_batch, "available_memory", lambda: 500_000_000)   # one worker's 0.4 GB and a bit
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "1")
    assert r.exit_code == 0, r.output
    assert "--workers auto: 1 worker(s), not 2: the largest image (0.0 MP) needs about 0.4 GB per worker and " \
           "0.5 GB is available" in r.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png", "big.png"]


# --- the progress bar of a folder run --------------------------------------------------------------------------

def test_pixel_weights_count_unknown_sizes_as_the_mean():
    from rain2avoid.cli.batch import pixel_weights
    assert pixel_weights([100, None, 300]) == [100, 200, 300]
    assert pixel_weights([12_000_000, 300_000, 300_000]) == [12_000_000, 300_000, 300_000]
    assert pixel_weights([None, None]) == [1, 1]   # nothing readable: one unit per image
    assert pixel_weights([]) == []


def test_header_pixels_reads_sizes_and_never_fails(tmp_path):
    from PIL import Image

    from rain2avoid.cli.batch import header_pixels
    Image.new("RGB", (30, 20)).save(tmp_path / "a.jpg")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    assert header_pixels(tmp_path / "a.jpg") == 600
    assert header_pixels(tmp_path / "bad.png") is None
    assert header_pixels(tmp_path / "clip.mp4") is None
    assert header_pixels(tmp_path / "missing.png") is None


def test_images_bar_moves_by_pixels_and_shows_images(tmp_path):
    """After the one big image of four, the bar is 97% done and its time left is from pixels (a count
    would say 3 more images, 30 s more); it still says how many images are done."""
    import io

    from PIL import Image

    from rain2avoid.cli.batch import ImagesBar, image_pixels
    paths = [tmp_path / name for name in ("big.png", "a.png", "b.png", "c.png")]
    Image.new("RGB", (120, 80)).save(paths[0])
    for path in paths[1:]:
        Image.new("RGB", (10, 10)).save(path)
    bar = ImagesBar("derain", paths, image_pixels(paths), file=io.StringIO())
    assert bar.bar.total == 9600 + 3 * 100
    bar.done(paths[0])
    assert bar.bar.n == 9600
    shown = bar.bar.format_meter(**{**bar.bar.format_dict, "elapsed": 10, "rate": None})
    assert shown.startswith("derain:  97%|") and shown.endswith("| 1/4 images [00:10<00:00]"), shown
    for path in paths[1:]:
        bar.done(path)
    shown = bar.bar.format_meter(**{**bar.bar.format_dict, "elapsed": 20, "rate": None})
    assert bar.bar.n == bar.bar.total and shown.endswith("| 4/4 images [00:20<00:00]"), shown
    bar.close()
    off = ImagesBar("derain", paths, None)
    assert off.bar.disable and off.weights == dict.fromkeys(paths, 1)


def test_folder_run_bar_counts_pixels(tmp_path, monkeypatch):
    """A derain of a folder moves its bar by each image's pixels and ends at all images done."""
    import rain2avoid.cli.batch as cli_batch
    from rain2avoid.cli import images
    bars = []

    class Bar(cli_batch.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    class TerminalContext(images.Context):
        def __init__(self, *args):
            super().__init__(*args)
            self.bars = not self.quiet

    monkeypatch.setattr(cli_batch, "tqdm", Bar)
    monkeypatch.setattr(images, "Context", TerminalContext)
    make_folder(tmp_path / "in", ["a.png", "b.png"], 24, 32)
    write_image(tmp_path / "in" / "big.png", rainy(2, 48, 64))
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "1", "--workers", "1")
    assert r.exit_code == 0, r.output
    [bar] = bars
    assert bar.total == bar.n == 2 * 24 * 32 + 48 * 64
    assert "| 3/3 images [" in r.stderr


def test_image_pixels_of_many_files_reads_every_kth_header(tmp_path, monkeypatch):
    import rain2avoid.cli.batch as cli_batch
    read = []
    monkeypatch.setattr(cli_batch, "header_pixels", lambda path: read.append(path) or 100)
    paths = [tmp_path / f"{i}.png" for i in range(50)]
    assert cli_batch.image_pixels(paths, most=10) == [100] * 50       # the others count as the mean
    assert read == paths[::5]


def test_workers_auto_counts_large_photos_as_more_work(tmp_path, monkeypatch):
    """`apply`'s 0.05 s per image is for 480x320: ten 12 MP photos are worth a pool, ten small ones not."""
    import rain2avoid.cli.batch as cli_batch
    from rain2avoid.cli.batch import UNIT_PIXELS, auto_workers, work_units
    assert work_units(None) == 1 and work_units([100, UNIT_PIXELS]) == 1            # small images count as one
    assert work_units([4 * UNIT_PIXELS, 2 * UNIT_PIXELS]) == 3
    assert auto_workers(10, 0.05 * work_units([UNIT_PIXELS] * 10), cores=2) == 1
    assert auto_workers(10, 0.05 * work_units([12_000_000] * 10), cores=2) == 2
    asked = []
    monkeypatch.setattr(cli_batch, "auto_workers", lambda images, seconds: asked.append(seconds) or 1)
    monkeypatch.setattr(cli_batch, "header_pixels", lambda path: 4 * UNIT_PIXELS)
    make_folder(tmp_path / "in", ["a.png", "b.png"], 24, 32)
    model = tmp_path / "m.pt"
    assert invoke("train", tmp_path / "in", "--model", model, "--steps", "1", "-q").exit_code == 0
    r = invoke("apply", tmp_path / "in", "--model", model, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert asked == [pytest.approx(0.05 * 4)]
