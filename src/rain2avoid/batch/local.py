"""One machine: a pool of worker processes (``concurrent.futures``), each with its share of the cores.

Each worker process runs :func:`~rain2avoid.batch.work.run_job` on one image at
a time with ``cores // workers`` torch/OpenCV threads and writes its outputs
atomically. The model of ``apply`` is loaded once per worker. ``workers=1``
runs in this process, exactly as a plain loop would.

Nothing is lost when something goes wrong:

* a worker that dies (killed, out of memory) breaks the pool; the jobs it was
  running are given to a fresh pool, up to ``attempts`` times each, then
  reported as failed. Temporary files they left are removed.
* Ctrl-C (KeyboardInterrupt) cancels the jobs not started and stops the
  workers; a worker removes the temporary file of a write in progress before it
  exits, so only complete outputs remain and a re-run finishes the rest.
* when this process is killed outright (SIGKILL, out of memory), each worker
  sees it gone within a second and exits at once, writing nothing more (a
  write cut short leaves at most a hidden temporary file, which the next run
  removes when it starts).

Each job's output is claimed before its work starts (:class:`~rain2avoid.batch.work.Claims`),
so a second run into the same folder skips the images this one is making.
"""

from __future__ import annotations

import math
import os
import select
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Sequence

from .plan import Job
from .work import (Claims, Outcome, process_context, remove_temporaries, retry_or_give_up, run_job,
                   set_threads, thread_lock_for_bars)

__all__ = ["available_cores", "available_memory", "worker_memory", "memory_workers", "default_workers", "run_local"]


def available_cores() -> int:
    """CPU cores this process may use: its CPU affinity, capped by a cgroup (container) quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:  # cgroup v2 "max 100000" or "200000 100000" (Docker --cpus, Kubernetes limits)
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def available_memory() -> int | None:
    """Bytes of memory this process may still use: the system's available memory, capped by a
    cgroup (container) limit; None where neither can be read (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v2: "max", or a number of bytes
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def worker_memory(pixels: int) -> int:
    """Bytes one worker needs at its peak for an image of ``pixels`` pixels (measured on derain:
    about 0.45 GB at 0.15 MP, 2.5 GB at 12 MP, 4.2 GB at 24 MP, for which this says 4.7)."""
    return int(0.4e9 + 175 * pixels)


def memory_workers(workers: int, pixels: int, available: int | None) -> int:
    """``workers`` capped so that that many images of ``pixels`` pixels fit in ``available`` bytes
    (at least 1; ``workers`` when ``available`` is unknown)."""
    if available is None:
        return workers
    return max(1, min(workers, available // worker_memory(pixels)))


def default_workers(images: int, cores: int | None = None) -> int:
    """One single-threaded worker per core (at most one per image).

    A fresh network per image trains on small 64x64 crops, which keep one
    thread busy but not several: on the 2-core development machine, busy with
    other work, one process with two threads took 545 s for two 480x320 images
    and one thread 62 s (benchmarks/scaling.py; docs/scaling.md). Workers
    share nothing, so N of them do N images at a time.
    """
    cores = available_cores() if cores is None else cores
    return max(1, min(cores, images))


def run_local(task, jobs: Sequence[Job], workers: int = 1, threads: int | None = None,
              on_outcome: Callable[[Outcome], None] | None = None, raise_errors: bool = False,
              attempts: int = 3, skip_existing: bool = False) -> list[Outcome]:
    """Run every job on this machine; the outcomes in the order they finished.

    ``threads`` per worker defaults to the task's ``threads``, else to
    ``max(1, cores // workers)``; with ``workers=1`` the jobs run in this
    process, with the task's ``threads`` if it sets them.
    ``raise_errors`` (only with one worker) lets an image's error propagate, for
    ``--debug``. KeyboardInterrupt stops the run cleanly and propagates.
    A job whose output another run is making is skipped (``Outcome.skipped``), and so,
    with ``skip_existing``, is one whose output has appeared since the plan (see :class:`Claims`).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    report = on_outcome or (lambda outcome: None)
    outcomes: list[Outcome] = []
    threads = threads or getattr(task, "threads", None)
    remove_temporaries(task, jobs)  # left by a run that was killed; those of live runs stay
    claims = Claims(skip_existing)
    try:
        if workers == 1:
            _run_here(task, jobs, threads, claims, outcomes, report, raise_errors)
            return outcomes
        threads = threads or max(1, available_cores() // workers)
        tries = {job: 0 for job in jobs}
        queue = list(reversed(jobs))  # pop() from the end keeps the planned order
        while queue:
            broken = _run_pool(task, queue, workers, threads, claims, outcomes, report)
            remove_temporaries(task, broken)
            for job in broken:  # the jobs in flight when a worker died
                gave_up = retry_or_give_up(job, tries, attempts, queue, lambda n: f"a worker process died {n} "
                                           "times while processing it (out of memory?)")
                if gave_up is not None:
                    claims.release(job)
                    outcomes.append(gave_up)
                    report(gave_up)
        return outcomes
    finally:
        claims.release_all()


def _run_here(task, jobs: Sequence[Job], threads: int | None, claims: Claims, outcomes: list[Outcome],
              report: Callable[[Outcome], None], raise_errors: bool) -> None:
    """Run the jobs one after another in this process, with ``threads`` torch threads if given."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        for job in jobs:
            skipped = claims.take(job)
            outcomes.append(skipped or run_job(task, job, raise_errors))
            claims.release(job)
            report(outcomes[-1])
    finally:
        torch.set_num_threads(before)


def _run_pool(task, queue: list[Job], workers: int, threads: int, claims: Claims, outcomes: list[Outcome],
              report: Callable[[Outcome], None]) -> list[Job]:
    """Run jobs from ``queue`` (taking them off its end) in one pool; the jobs lost if the pool broke
    (still claimed)."""
    pool = ProcessPoolExecutor(workers, mp_context=process_context(), initializer=_start_worker,
                               initargs=(threads, os.getpid()))
    running: dict = {}
    try:
        while queue or running:
            while queue and len(running) < 2 * workers:  # a bounded window: any number of jobs, little memory
                job = queue.pop()
                skipped = claims.take(job)
                if skipped is not None:
                    outcomes.append(skipped)
                    report(skipped)
                    continue
                running[pool.submit(_work, task, job)] = job
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            lost = []
            for future in finished:
                job = running.pop(future)
                try:
                    outcomes.append(future.result())
                except BrokenProcessPool:
                    lost.append(job)
                    continue
                claims.release(job)
                report(outcomes[-1])
            if lost:
                lost += list(running.values())
                running.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                return lost
        pool.shutdown(wait=True)
        return []
    except BaseException:  # KeyboardInterrupt, or an error in the caller's report function
        # The executor has no public way to stop its workers before Python 3.14; they remove
        # the temporary file of a write in progress on SIGTERM (see _start_worker).
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)  # and the jobs not started are dropped
        remove_temporaries(task, running.values())
        pool = running = None  # free the pool's queues now: the traceback keeps this frame alive
        raise


class _Stop(BaseException):
    """Raised in a worker by SIGTERM during a job, to run its clean-up before exiting."""


_busy = False  # per worker process: a job is running


def _start_worker(threads: int, parent: int) -> None:
    thread_lock_for_bars()
    set_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, _on_sigterm)
    threading.Thread(target=_exit_with, args=(parent,), name="rain2avoid-parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """Wait until process ``parent`` (the one that runs the pool) is gone, then end this worker
    at once: a killed parent cannot stop its workers, and they would otherwise go on with their
    jobs and then idle forever. A pidfd tells at once (Linux); elsewhere, a check every 0.5 s."""
    try:
        descriptor = os.pidfd_open(parent)
    except (AttributeError, OSError):  # not Linux 5.3+, or already gone
        descriptor = None
    if descriptor is not None:
        select.select([descriptor], [], [])  # readable once the parent has exited
    else:
        while _alive(parent):
            time.sleep(0.5)
    os._exit(128 + signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's: our parent's PID was reused
        return False
    return True


def _on_sigterm(signum, frame) -> None:
    if _busy:
        raise _Stop()
    os._exit(128 + signum)


def _work(task, job: Job) -> Outcome:
    global _busy
    _busy = True
    try:
        return run_job(task, job)
    except _Stop:  # the write in progress removed its temporary file on the way out
        sys.stderr.flush()
        os._exit(128 + signal.SIGTERM)
    finally:
        _busy = False

