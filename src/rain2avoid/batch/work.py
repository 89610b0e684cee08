"""The work on one image, as picklable top-level functions every backend calls.

A task (:class:`DerainTask` or :class:`ApplyTask`) holds the settings; a
:class:`~rain2avoid.batch.plan.Job` names the input and the output.
:func:`run_job` reads the input, runs the same pipeline as a single image
(``pipeline.derain_detailed`` or ``sdrl.load_model(path).apply``) and writes
the outputs atomically; :func:`run_job_on_bytes` does the same on file content
sent over the network and returns the encoded outputs instead of writing them.
Both return an :class:`Outcome`: an error is a value (one line naming the
file), never an exception, so one bad image cannot stop a run on any backend.
Every backend claims each job's output (:class:`Claims`) before its work starts,
so two runs into one folder do each image once.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..files import claim, stale_temporaries
from ..io import DEFAULT_MAX_PIXELS, decode_image, encode_image, encode_result, read_file_bytes, write_bytes
from ..io.write import NO_TRANSPARENCY_IN_JPEG, format_losses, format_suffix, output_format
from .plan import Job, split_done

__all__ = ["DerainTask", "ApplyTask", "Outcome", "Claims", "run_job", "run_job_on_bytes", "check_output_format",
           "describe_error", "retry_or_give_up", "remove_temporaries", "set_threads", "thread_lock_for_bars",
           "cached_model", "process_context"]


@dataclass(frozen=True)
class DerainTask:
    """``derain``: a network trained per image (``pipeline.derain_detailed``).

    options: ``Settings`` overrides as ``(name, value)`` pairs (None values are ignored).
    model: a model file (``rain2avoid train``) that each image's network starts from
        (``derain_detailed``'s ``init``, loaded once per process), or None for a fresh one.
    save_intermediates: also write ``<stem>_mask.png`` and ``<stem>_reference.png``.
    progress: a progress bar of the training steps (for a single image on a terminal).
    threads: torch threads for each image, on every backend (None: whatever the process has).
        The number of threads changes the rounding of training sums, and 700 steps turn
        that into differences of up to ~6 grey levels; with a fixed count (1 for folders)
        the outputs do not depend on the number of workers.
    """

    preset: str = "fast"
    options: tuple = ()
    device: str = "cpu"
    save_intermediates: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool = False
    threads: int | None = None
    model: Path | None = None
    kind = "derain"

    def output_paths(self, dst: Path) -> list[Path]:
        """Every file a job writes, the main output last (so that when it exists, all do)."""
        dst = Path(dst)
        extra = [dst.with_name(f"{dst.stem}_mask.png"), dst.with_name(f"{dst.stem}_reference.png")]
        return (extra if self.save_intermediates else []) + [dst]

    def compute(self, image: np.ndarray, dst: Path):
        """[(path, pixels, use the input's metadata)] in :meth:`output_paths` order; and a message."""
        from ..pipeline import derain_detailed, to_uint8
        init = cached_model(self.model, self.device) if self.model is not None else None
        r = derain_detailed(image, self.preset, device=self.device, progress=self.progress, init=init,
                            **dict(self.options))
        images = ([r.mask, to_uint8(r.targets.mean(axis=0))] if self.save_intermediates else []) + [r.image]
        outputs = [(path, pixels, path == dst) for path, pixels in zip(self.output_paths(dst), images)]
        return outputs, f"({r.seconds:.1f} s, {describe_result(r)})"


@dataclass(frozen=True)
class ApplyTask:
    """``apply``: a model trained by ``rain2avoid train`` (loaded once per process).

    threads: as for :class:`DerainTask`; inference gives the same pixels with any
    number of threads, so None (each worker gets its share of the cores) is fine.
    veil: "auto", "on" or "off" for the veil of heavy rain (None: as the model was trained).
    veil_threshold: the strength from which "auto" takes a veil away (None: the model's).
    """

    model: Path
    device: str = "cpu"
    max_pixels: int = DEFAULT_MAX_PIXELS
    threads: int | None = None
    veil: str | None = None
    veil_threshold: float | None = None
    kind = "apply"

    def output_paths(self, dst: Path) -> list[Path]:
        return [Path(dst)]

    def compute(self, image: np.ndarray, dst: Path):
        model = cached_model(self.model, self.device)
        return [(dst, model.apply(image, self.veil, self.veil_threshold), True)], ""


@dataclass
class Outcome:
    """What became of one job.

    error: None when done, else one line naming the input. message: a note for
    the log (derain: time and streak angle). files: the encoded outputs as
    ``(path, bytes)`` when the caller writes them (:func:`run_job_on_bytes`).
    detail: the traceback of an unexpected error, for ``--debug``. warning: what
    was written with a loss (metadata the format cannot hold), naming the input.
    skipped: why the job was not run (another run is making its output, or made it),
    naming the output; empty when it ran.
    """

    src: Path
    dst: Path
    error: str | None = None
    message: str = ""
    seconds: float = 0.0
    files: list = field(default_factory=list)
    detail: str = ""
    warning: str = ""
    skipped: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def retry_or_give_up(job: Job, tries: dict, attempts: int, queue: list,
                     why: Callable[[int], str]) -> Outcome | None:
    """Count one more lost try of ``job`` (its worker died, its task was lost): put it back on
    ``queue`` while it has had fewer than ``attempts``, else return the Outcome that gives up
    on it, ``why(tries)`` saying what happened."""
    tries[job] += 1
    if tries[job] < attempts:
        queue.append(job)
        return None
    return Outcome(job.src, job.dst, f"{job.src}: {why(tries[job])}")


def describe_result(r) -> str:
    """What ``derain`` did to one photo (``r``, a ``pipeline.DerainResult``), in a few words:
    the streaks' lean or that none were found, the veil taken away, the wide-rain copy."""
    from ..ldgp import rotation_for_angle
    notes = f", veil taken away (strength {r.veil.strength:.2f})" if r.veil is not None else ""
    notes += _wide_note(r.image.shape, r.settings.wide, r.wide)
    if not r.mask.any():
        return f"no rain streaks found{notes}"
    return f"streaks {rotation_for_angle(r.angle):+d} deg from vertical{notes}"


def _wide_note(shape: tuple[int, ...], side: int, factor: int) -> str:
    """What ``--wide-rain`` (``Settings.wide`` = ``side``) did to a photo of ``shape``, for its line;
    empty without it."""
    from ..wide import shrink_factor
    if not side:
        return ""
    if factor:
        return f", wide rain from a copy shrunk {factor}x"
    if not shrink_factor(shape, side):
        return f", no wide-rain copy (shorter side under {2 * side} px)"
    return ", no wide-rain copy (the photo shows a lattice)"


def describe_error(path: Path, error: BaseException) -> str:
    """One line naming ``path`` (once) and what went wrong."""
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, (ValueError, OSError, MemoryError)):  # unexpected: say what it was
        text = f"{type(error).__name__}: {text}"
    return text if str(path) in text else f"{path}: {text}"


def check_output_format(src: Path, dst: Path, image: np.ndarray, content: str) -> None:
    """Before any work: a ValueError when the format of ``dst`` cannot hold ``image`` (read from
    ``src``, whose content is in the format ``content``): its transparency in JPEG, or, when
    ``src`` holds another format than its name says and ``dst`` keeps the name's format (a
    16-bit PNG named .jpg into a .jpg), its 16 bits too: then the message says to rename it."""
    lost = format_losses(dst, image)
    if not lost:
        return
    if output_format(src) == output_format(dst) and content != output_format(src):
        raise ValueError(f"{src} holds {content.upper()} data with {' and '.join(lost)}, which a {dst.suffix} "
                         f"file cannot store: rename it to {src.stem}{format_suffix(content)}")
    if "transparency" in lost:  # as encode_image would say after the work
        raise ValueError(f"cannot write {dst}: {NO_TRANSPARENCY_IN_JPEG}")


def _encoded(task, job: Job, data: bytes, image: np.ndarray, meta):
    """``task``'s outputs of ``job`` (``image`` decoded from ``data``, the input's content) as
    ``[(path, bytes)]``, its message, and its warnings in one line. The main output is ``data``
    itself where the picture came back untouched (``io.encode_result``)."""
    check_output_format(job.src, Path(job.dst), image, meta.format)
    outputs, message = task.compute(image, Path(job.dst))
    losses: list[str] = []  # to the caller's report, not a raw stderr line
    files = [(path, encode_result(path, pixels, image, data, meta, losses) if keep_meta
              else encode_image(path, pixels, losses=losses)) for path, pixels, keep_meta in outputs]
    notes = "; ".join(dict.fromkeys(losses))
    return files, message, describe_error(job.src, ValueError(notes)) if notes else ""


def run_job(task, job: Job, raise_errors: bool = False) -> Outcome:
    """Read ``job.src``, process it with ``task``, write the outputs atomically.

    Errors come back as ``Outcome.error`` (re-raised with ``raise_errors``).
    Running a job twice writes the same files: jobs are idempotent.
    """
    start = time.perf_counter()
    try:
        data = read_file_bytes(job.src)
        image, meta = decode_image(data, job.src, max_pixels=task.max_pixels, with_meta=True)
        files, message, warning = _encoded(task, job, data, image, meta)
        for path, content in files:
            write_bytes(path, content)
        return Outcome(job.src, job.dst, message=message, seconds=time.perf_counter() - start, warning=warning)
    except Exception as e:  # one bad file must not stop the others
        if raise_errors:
            raise
        return Outcome(job.src, job.dst, describe_error(job.src, e), seconds=time.perf_counter() - start,
                       detail=traceback.format_exc())


def run_job_on_bytes(task, job: Job, data: bytes) -> Outcome:
    """:func:`run_job` on the input's content; the outputs come back encoded in ``Outcome.files``.

    For workers that do not see the caller's files: the caller sends ``data`` and writes
    the files (``task.model``, if any, must be a file this process can read).
    """
    start = time.perf_counter()
    try:
        image, meta = decode_image(data, job.src, max_pixels=task.max_pixels, with_meta=True)
        files, message, warning = _encoded(task, job, data, image, meta)
        return Outcome(job.src, job.dst, message=message, seconds=time.perf_counter() - start, files=files,
                       warning=warning)
    except Exception as e:
        return Outcome(job.src, job.dst, describe_error(job.src, e), seconds=time.perf_counter() - start,
                       detail=traceback.format_exc())


def remove_temporaries(task, jobs) -> int:
    """Remove the temporary files (and claims) that writes of ``jobs``' outputs left when their
    process was killed; the number removed. Those of writes still running, in this run or
    another, are kept (``files.stale_temporaries``)."""
    paths = [path for job in jobs for path in task.output_paths(job.dst)]
    leftovers = stale_temporaries(*paths)
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return len(leftovers)


class Claims:
    """The outputs a run is making: each job's output is claimed (``files.claim``) before its
    work starts and released once its outcome is in, so that another run into the same
    folder skips it. A claim whose run was killed is taken over.

    skip_existing: also skip a job whose output exists when it is claimed (another run wrote
    it since this run's plan, ``plan.split_done``); an output that is its own input does not count.
    """

    def __init__(self, skip_existing: bool = False):
        self.skip_existing = skip_existing
        self.held: dict = {}

    def take(self, job: Job) -> Outcome | None:
        """Claim ``job`` (once): None when it is this run's to do, else the Outcome that skips it."""
        if job in self.held:
            return None
        try:
            held = claim(job.dst)
        except OSError:  # a missing or unwritable folder: the job's own write says so
            self.held[job] = None
            return None
        if held is None:
            return Outcome(job.src, job.dst, skipped=f"{job.dst} is being written by another run")
        self.held[job] = held
        if self.skip_existing and split_done([job], overwrite=True)[1]:
            self.release(job)
            return Outcome(job.src, job.dst, skipped=f"{job.dst} was written by another run")
        return None

    def release(self, job: Job) -> None:
        """Give up the claim on ``job``, if this run holds it."""
        held = self.held.pop(job, None)
        if held is not None:
            held.release()

    def release_all(self) -> None:
        for job in list(self.held):
            self.release(job)


def thread_lock_for_bars() -> None:
    """Call first in a worker process: tqdm's default lock is a named semaphore, which a worker
    that is killed (or stopped with ``os._exit``) leaks and Python warns about; workers show no
    bars, and a thread lock does the same job."""
    import threading

    from tqdm.auto import tqdm
    tqdm.set_lock(threading.RLock())


def set_threads(threads: int) -> None:
    """Give this process ``threads`` threads for torch, OpenCV and OpenMP libraries."""
    import cv2
    import torch
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def cached_model(path: Path, device: str = "cpu"):
    """``sdrl.load_model(path)``, loaded once per process (reloaded if the file changes)."""
    if not os.path.isfile(path):  # missing, a folder...: load_model says so, naming the path as given
        return _load_model.__wrapped__(str(path), 0, 0, device)
    stat = os.stat(path)
    return _load_model(os.path.realpath(path), stat.st_mtime_ns, stat.st_size, device)


@functools.lru_cache(maxsize=2)
def _load_model(path: str, mtime_ns: int, size: int, device: str):
    import warnings

    from ..sdrl import load_model
    with warnings.catch_warnings():  # torch's remarks on odd pickles would bury the one-line error
        warnings.simplefilter("ignore")
        return load_model(path, device=device)


def process_context(preload: tuple[str, ...] = ("rain2avoid.pipeline", "rain2avoid.batch.work")):
    """The multiprocessing context for worker and job processes: forkserver where there is one,
    so that processes start from a clean server that has imported ``preload`` once (fast, and
    safe with torch's thread pools); spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))
        return context
    return multiprocessing.get_context("spawn")
