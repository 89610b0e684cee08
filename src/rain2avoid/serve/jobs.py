"""The server's jobs: a bounded queue, worker threads, and expiry of finished jobs.

Each accepted upload becomes a :class:`Job` with a random id (uuid4 hex). Its
files live in a private folder named by that id under the store's own
temporary folder: ``upload`` (the bytes as received), then ``result.<ext>``
(the derained image, in the uploaded format, with its metadata) and
``mask.png``. No file is ever named after anything the client sent.

Each worker thread runs its job in a child process of its own
(:func:`_derain_in_child`): it reads the upload, calls the same pipeline as the
command line, :func:`rain2avoid.pipeline.derain_detailed`, writes the result and
the mask, and sends each stage and training step back through a pipe. A job is
stopped by stopping its process, so a cancel or a shutdown takes effect within
a tenth of a second whatever the job is doing: decoding a 12 MP photo and
finding its rain take tens of seconds and have no steps at which a thread could
stop. A process that dies (out of memory) fails its job, not the server. The
processes fork from a forkserver that has imported the pipeline once (a job
starts in milliseconds, and forking a threaded server is avoided); all of a
job's memory is given back when it ends.

Finished jobs (done or failed) are deleted with their files after ``ttl``
seconds, or sooner when more than ``keep`` have finished, so memory and disk
stay bounded; the queue holds at most ``queue_size`` waiting jobs.
:meth:`JobStore.cancel` forgets a job at once and deletes its folder: a waiting
job leaves the queue, a running one's process is stopped. A job's files are
only served once its process has said it wrote them all, and a stopped job's
folder is deleted once its process is gone, so no half-written file is ever
served or left behind.

This module does not depend on the web framework; :mod:`.app` puts HTTP on it.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.forkserver
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..batch.work import describe_result, process_context, set_threads, thread_lock_for_bars
from ..io import decode_image, encode_result, read_file_bytes, write_bytes, write_image
from ..pipeline import derain_detailed
from ..sdrl import resolve_settings

__all__ = ["MEDIA_TYPES", "SUFFIXES", "Job", "JobStore", "QueueFull", "safe_stem"]

SUFFIXES = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "tiff": ".tif", "webp": ".webp"}
"""Result file suffix for each format :func:`rain2avoid.io.read_image` reports."""

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "bmp": "image/bmp", "tiff": "image/tiff",
               "webp": "image/webp"}


class QueueFull(Exception):
    """The queue holds ``queue_size`` waiting jobs; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; try again in {retry_after} s")
        self.retry_after = retry_after


_POLL = 0.1
"""Seconds between a worker's looks at whether its running job was cancelled (or the server stops)."""


class _Stopped(Exception):
    """Raised in a worker when the server shuts down or its running job is cancelled."""


def safe_stem(filename: str | None) -> str:
    """A display name from a client's file name: no folders, no suffix, only word characters, '.' and '-'.

    It is used for the download name only, never for a file on the server.
    """
    name = re.split(r"[/\\]", filename or "")[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:80]
    return stem or "image"


@dataclass
class Job:
    """One upload and what became of it. ``status``: queued, running, done or failed.

    ``cancelled`` is set (under the store's lock) when :meth:`JobStore.cancel` forgets the job.
    """

    id: str
    folder: Path
    name: str
    format: str
    width: int
    height: int
    preset: str
    seed: int
    total_steps: int
    created: float = field(default_factory=time.monotonic)
    status: str = "queued"
    done_steps: int = 0
    error: str | None = None
    seconds: float | None = None
    finished: float | None = None
    order: int = 0
    cancelled: bool = False
    stage: str | None = None   # while running: pipeline.STAGES's name of what it does now
    note: str | None = None    # once done: what deraining did (batch.work.describe_result)

    @property
    def upload_path(self) -> Path:
        return self.folder / "upload"

    @property
    def result_path(self) -> Path:
        return self.folder / f"result{SUFFIXES[self.format]}"

    @property
    def mask_path(self) -> Path:
        return self.folder / "mask.png"

    @property
    def download_name(self) -> str:
        return f"{self.name}-derained{SUFFIXES[self.format]}"


class JobStore:
    """Queue, workers and finished jobs of one server.

    workers: images trained at the same time (each in its own process). queue_size: most
    waiting jobs. ttl: seconds a finished job is kept (> 0). keep: most
    finished jobs kept (>= 1: with 0 or a ttl of 0, every result would be
    deleted as soon as it is done, before it could be downloaded).
    max_pixels: as :func:`rain2avoid.io.read_image`. options:
    :class:`rain2avoid.sdrl.Settings` overrides for every job (tests use a
    few ``steps``). root: where the private temporary folder is made
    (default: the system's).

    Call :meth:`start` before use and :meth:`close` at the end; ``close``
    stops the running jobs' processes and deletes every file. :meth:`cancel`
    does the same for one job. A job's process uses as many torch threads as
    the thread that runs the job (``torch.get_num_threads()``).
    """

    def __init__(self, workers: int = 1, queue_size: int = 32, ttl: float = 3600.0, keep: int = 100,
                 max_pixels: int | None = None, options: dict | None = None,
                 root: Path | None = None):
        if workers < 1 or queue_size < 1:
            raise ValueError(f"workers and queue_size must be at least 1, got {workers} and {queue_size}")
        if keep < 1 or ttl <= 0:
            raise ValueError(f"keep must be at least 1 and ttl above 0, got {keep} and {ttl}: otherwise "
                             f"every result is deleted as soon as it is done, before it can be downloaded")
        self.workers, self.ttl, self.keep, self.max_pixels = workers, ttl, keep, max_pixels
        self.queue_size = queue_size
        self.options = dict(options or {})
        self._parent = root
        self._root: Path | None = None
        self._waiting: deque[Job] = deque()   # queued jobs, oldest first; a cancelled one is taken out
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)   # a job was queued, or the store is closing
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count = 0
        self._mean_seconds: float | None = None
        self._context = process_context(("rain2avoid.pipeline", "rain2avoid.serve.jobs"))

    # --- life cycle ------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The private folder holding every job's files (made by :meth:`start`)."""
        if self._root is None:
            raise RuntimeError("the job store is not started")
        return self._root

    def start(self) -> None:
        """Make the private folder and start the workers."""
        self._root = Path(tempfile.mkdtemp(prefix="rain2avoid-serve-", dir=self._parent))
        for k in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"rain2avoid-worker-{k}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 30.0) -> None:
        """Fail the waiting jobs, stop the running ones' processes, delete all files."""
        self._closing.set()
        with self._wake:
            waiting = list(self._waiting)
            self._waiting.clear()
            self._wake.notify_all()
        for job in waiting:
            self._finish(job, error="the server stopped before this job ran")
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    # --- submitting ------------------------------------------------------------------------------

    def new_folder(self) -> tuple:
        """(id, folder) for a new upload: a fresh uuid4 and a private folder named by it."""
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        return job_id, folder

    def discard(self, folder: Path) -> None:
        """Delete the folder of an upload that did not become a job."""
        shutil.rmtree(folder, ignore_errors=True)

    def _settings(self, preset: str, seed: int | None):
        """A job's Settings: the preset, the store's options, then the client's seed when it gave one."""
        options = self.options if seed is None else {**self.options, "seed": seed}
        return resolve_settings(preset, **options)

    def full(self) -> bool:
        with self._lock:
            return len(self._waiting) >= self.queue_size

    def retry_after(self) -> int:
        """Seconds a refused client should wait: about one job's time."""
        return max(1, math.ceil(self._mean_seconds or 10.0))

    def submit(self, job_id: str, folder: Path, name: str, image_format: str, width: int, height: int,
               preset: str = "fast", seed: int | None = None) -> Job:
        """Queue the upload saved as ``folder/upload``; QueueFull when no place is left.

        Without a ``seed`` the job gets the preset's (or the store options') seed,
        and its status shows the seed actually used.
        """
        if self._closing.is_set():
            raise QueueFull(self.retry_after())
        settings = self._settings(preset, seed)
        job = Job(id=job_id, folder=folder, name=name, format=image_format, width=width, height=height,
                  preset=preset, seed=settings.seed, total_steps=settings.ensemble * settings.steps)
        self.expire()
        with self._wake:
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(self.retry_after())
            self._count += 1
            job.order = self._count
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._wake.notify()
        return job

    def cancel(self, job_id: str) -> str | None:
        """Forget a job and delete its folder; returns the status it had, or None when it is unknown.

        A queued job leaves the queue and never runs. A running one's process is
        stopped within :data:`_POLL` seconds, whatever stage it is in, and its
        worker takes the next job. A finished one's files are deleted. In every
        case a later :meth:`get` gives None.
        """
        self.expire()
        with self._lock:
            job = self._jobs.pop(job_id, None)
            if job is None:
                return None
            if job.status == "queued":
                self._waiting.remove(job)
            job.cancelled = True
            status = job.status
        shutil.rmtree(job.folder, ignore_errors=True)
        return status

    # --- looking up ------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None when it is unknown or has expired."""
        self.expire()
        with self._lock:
            return self._jobs.get(job_id)

    def status(self, job: Job) -> dict:
        """The job's state as JSON-ready values (what ``GET /api/jobs/{id}`` answers)."""
        with self._lock:
            ahead = sum(1 for j in self._jobs.values() if j.status == "queued" and j.order < job.order)
            done = job.done_steps if job.status != "done" else job.total_steps
            return {
                "id": job.id, "status": job.status,
                "progress": round(done / job.total_steps, 4) if job.total_steps else float(job.status == "done"),
                "error": job.error, "steps_done": done, "steps_total": job.total_steps,
                "stage": job.stage if job.status == "running" else None,
                "queue_position": ahead if job.status == "queued" else None,
                "preset": job.preset, "seed": job.seed, "width": job.width, "height": job.height,
                "format": job.format, "filename": job.download_name, "seconds": job.seconds,
                "note": job.note if job.status == "done" else None,
            }

    def counts(self) -> dict:
        with self._lock:
            states = [j.status for j in self._jobs.values()]
        return {s: states.count(s) for s in ("queued", "running", "done", "failed")}

    # --- expiry ----------------------------------------------------------------------------------

    def expire(self) -> list[str]:
        """Delete finished jobs older than ``ttl`` or beyond the newest ``keep``; returns their ids."""
        now = time.monotonic()
        with self._lock:
            finished = sorted((j for j in self._jobs.values() if j.finished is not None),
                              key=lambda j: j.finished, reverse=True)
            old = [j for k, j in enumerate(finished) if k >= self.keep or now - j.finished > self.ttl]
            for job in old:
                del self._jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)
        return [job.id for job in old]

    # --- working ---------------------------------------------------------------------------------

    def _work(self) -> None:
        if self._context.get_start_method() == "forkserver":   # start it now, not on the first upload
            multiprocessing.forkserver.ensure_running()         # (it imports torch: seconds)
        while (job := self._next()) is not None:
            self._run(job)
            self.expire()

    def _next(self) -> Job | None:
        """The oldest queued job, now marked running; waits for one. None once the store is closing."""
        with self._wake:
            self._wake.wait_for(lambda: self._waiting or self._closing.is_set())
            if self._closing.is_set():
                return None
            job = self._waiting.popleft()
            job.status = "running"
            return job

    def _run(self, job: Job) -> None:
        start = time.perf_counter()
        try:
            error = self._run_in_child(job)
        except _Stopped:   # the job is forgotten when it was cancelled; this only matters at shutdown
            error = "the server stopped while this job ran"
        except Exception as exc:  # its process could not start, say; one bad job must not stop the worker
            error = " ".join(str(exc).split()) or type(exc).__name__
        finally:   # its process is gone by now: nothing more is written
            job.upload_path.unlink(missing_ok=True)
            if job.cancelled:   # files written after cancel() deleted the folder
                shutil.rmtree(job.folder, ignore_errors=True)
        if error:
            self._finish(job, error=error.replace(str(job.upload_path), "the upload"))
        else:
            self._finish(job, seconds=time.perf_counter() - start)

    def _run_in_child(self, job: Job) -> str | None:
        """Run the job in a process of its own (:func:`_derain_in_child`) and record its stages and steps.

        Returns None once it wrote the result and the mask, or why it failed. Raises
        _Stopped, with the process stopped, when the job is cancelled or the store closes.
        """
        receiver, sender = self._context.Pipe(duplex=False)
        options = {**self.options, "seed": job.seed}
        process = self._context.Process(
            target=_derain_in_child, name=f"rain2avoid-job-{job.id[:8]}", daemon=True,
            args=(sender, str(job.upload_path), str(job.result_path), str(job.mask_path), self.max_pixels,
                  job.preset, options, torch.get_num_threads()))
        ended = False
        try:
            process.start()
            sender.close()   # the child holds the only sending end now: its end is this end's EOF
            while True:
                with self._lock:
                    if self._closing.is_set() or job.cancelled:
                        raise _Stopped
                if not receiver.poll(_POLL):
                    continue
                try:
                    kind, *values = receiver.recv()
                except EOFError:   # it ended without a word: killed (out of memory?) or crashed
                    process.join()
                    return (f"the job's process ended unexpectedly (exit code {process.exitcode}); "
                            f"the photo may need more memory than this machine has free")
                with self._lock:
                    if kind == "stage":
                        job.stage = values[0]
                    elif kind == "progress":
                        job.done_steps, job.total_steps = values
                    elif kind == "done":
                        job.note = values[0]
                if kind in ("done", "failed"):
                    ended = True
                    return values[0] if kind == "failed" else None
        finally:
            receiver.close()
            sender.close()   # (again) in case the process did not start
            _end(process, wait=5.0 if ended else 0.0)

    def _finish(self, job: Job, error: str | None = None, seconds: float | None = None) -> None:
        with self._lock:
            job.status = "failed" if error else "done"
            job.error, job.seconds, job.finished = error, seconds, time.monotonic()
            if seconds is not None:
                self._mean_seconds = seconds if self._mean_seconds is None else \
                    0.7 * self._mean_seconds + 0.3 * seconds


def _end(process, wait: float) -> None:
    """Let ``process`` end by itself for ``wait`` seconds, then stop it (SIGTERM, then SIGKILL); reap it."""
    if process.pid is None:   # it never started
        return
    process.join(wait)
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join()
    process.close()


def _derain_in_child(sender, upload: str, result: str, mask: str, max_pixels: int | None, preset: str,
                     options: dict, threads: int) -> None:
    """One job, in its own process (:meth:`JobStore._run_in_child`): read ``upload``, derain it, write
    ``result`` (in the upload's format, with its metadata; the upload itself where nothing changed)
    and ``mask``.

    Sends ("stage", name) as each pipeline stage starts, ("progress", done, total) after every
    training step, and last ("done", what it did) once both files are written, or ("failed", reason).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the server's to handle: it stops this process
    thread_lock_for_bars()
    set_threads(threads)
    try:
        data = read_file_bytes(upload)
        image, meta = decode_image(data, upload, max_pixels=max_pixels, with_meta=True)
        out = derain_detailed(image, preset, on_stage=lambda name: sender.send(("stage", name)),
                              on_progress=lambda done, total: sender.send(("progress", done, total)), **options)
        write_bytes(result, encode_result(result, out.image, image, data, meta))
        write_image(mask, out.mask)
    except Exception as exc:  # the reason goes to the job's status
        sender.send(("failed", " ".join(str(exc).split()) or type(exc).__name__))
    else:
        sender.send(("done", describe_result(out)))
    finally:
        sender.close()
