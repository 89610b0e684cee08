"""Flags and the run loop for many images (derain, apply): workers, trees, shards, a Dask cluster.

The work itself is in :mod:`rain2avoid.batch`; this module turns flags into a
plan, runs it there and reports like every other command (one line per
failure, the list at the end, exit 1 if any failed, 130 on Ctrl-C; 2 when the
Dask cluster cannot be used, as nothing was done).
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import NamedTuple
from pathlib import Path

import click
from tqdm.auto import tqdm

from ..batch import (
    available_cores,
    default_workers,
    parse_shard,
    plan_jobs,
    run,
    split_done,
    take_shard,
)
from ..batch.dask import DaskError, DaskLost, check_scheduler, require_distributed
from ..batch.local import available_memory, memory_workers, worker_memory
from ..batch.plan import Job
from ..batch.work import Outcome, remove_temporaries
from ..files import ImageWriteError, replaceable_mode
from ..io import IMAGE_EXTENSIONS
from .common import (
    Context,
    check_folder_output,
    check_outputs,
    interrupted_line,
    interrupted_exit_code,
    list_inputs,
    output_for,
    report_failures,
    say_skipped,
    sigterm_as_interrupt,
)


def _workers(ctx, param, value):
    if value is None or value == "auto":
        return None
    try:
        workers = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'auto'") from None
    if workers < 1:
        raise click.BadParameter("needs at least 1 worker")
    return workers


def _shard(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def batch_options(f):
    cores = available_cores()
    f = click.option("--dask-write", type=click.Choice(["auto", "worker", "client"]), default=None,
                     help="With --dask, who writes the outputs: 'worker' (workers share the client's "
                          "filesystem, same paths), 'client' (inputs and outputs travel as bytes), 'auto' "
                          "(worker if every worker sees the files).  [default: auto]")(f)
    f = click.option("--dask", "dask", metavar="ADDRESS", default=None,
                     help="Run one task per image on the Dask scheduler at ADDRESS, e.g. "
                          "tcp://10.0.0.5:8786 (needs rain2avoid[dask] here and on the workers).")(f)
    f = click.option("--shard", metavar="K/N", callback=_shard, default=None,
                     help="Only the K-th of N disjoint slices of the sorted file list, K from 0 "
                          "(Slurm: --shard $SLURM_ARRAY_TASK_ID/N; Kubernetes: $JOB_COMPLETION_INDEX/N).")(f)
    f = click.option("--recursive", "-r", is_flag=True,
                     help="Process the whole folder tree; outputs mirror it (the output folder is skipped).")(f)
    f = click.option("--workers", metavar="N|auto", callback=_workers, default="auto", show_default=True,
                     help=f"Worker processes on this machine ({cores} core(s)). derain trains each image of a "
                          f"folder with one thread whatever N, so its outputs do not depend on it; apply gives "
                          f"each worker its share of the cores. "
                          f"auto: {cores} single-threaded workers (fastest measured) when the folder holds "
                          f"enough work (judged from its images' pixels) to repay starting them, else 1 "
                          f"process; fewer when that many of the largest images would not fit in the memory "
                          f"available.")(f)
    return f


def plan(input: Path, output: Path, recursive: bool, shard, suffix: str | None = None,
         videos: bool = False, note=None) -> tuple[list[Job], bool]:
    """The jobs of this run (this shard's) and whether the input is a folder (``videos``: the
    folder's videos too; ``note``: told, in one line, of links ``recursive`` left out)."""
    files, folder = list_inputs(input, recursive, exclude=output, videos=videos, note=note)
    if folder:
        check_folder_output(input, output)
    if shard is not None:
        files = take_shard(files, *shard)
    if folder:
        jobs = plan_jobs(files, input, output, suffix)
        if videos:  # a video with another suffix is written in its own container's
            jobs = [Job(j.src, output_for(j.src, j.dst.parent, True, suffix))
                    if j.src.suffix.lower() not in IMAGE_EXTENSIONS else j for j in jobs]
        return jobs, True
    return [Job(f, output_for(f, output, False, suffix)) for f in files], False


def check_batch_flags(workers, dask: str | None, dask_write: str | None = None) -> None:
    """Usage errors of the scale-out flags, before any work (a --dask scheduler that cannot be
    reached too: exit 2)."""
    if dask and workers is not None:
        raise click.UsageError("--workers is for this machine; with --dask the cluster's workers do the work")
    if dask_write and not dask:
        raise click.UsageError("--dask-write goes with --dask (who writes the outputs of a Dask run)")
    if dask:
        try:
            require_distributed()
        except DaskError as e:
            raise click.UsageError(str(e)) from None
        try:
            check_scheduler(dask)
        except DaskError as e:
            error = click.ClickException(str(e))
            error.exit_code = 2
            raise error from None


class Earlier(NamedTuple):
    """What a run did before its images: a folder's videos, derained here one after another (their
    failures, how many there were and were written; the others were skipped), and when it started."""

    failures: tuple = ()
    files: int = 0
    written: int = 0
    start: float | None = None

    @property
    def skipped(self) -> int:
        return self.files - self.written - len(self.failures)


def run_batch(ctx: Context, task, jobs: list[Job], what: str, force: bool, overwrite: bool, workers,
              dask: str | None, dask_write: str, work_seconds: float, earlier: Earlier = Earlier(),
              folder: bool = True) -> None:
    """Run the jobs as the flags say (checked by the caller with :func:`check_batch_flags`, before
    any work: the videos come first); report like ``run_jobs``; exit 1 if any failed, 130 on Ctrl-C,
    143 on SIGTERM (both after the 'interrupted' line), 2 when the Dask cluster cannot be used.
    An image whose output another run is making (or has made since the plan) is skipped and said so.

    ``work_seconds``: a rough cost of one image here, to decide ``--workers auto``.
    ``earlier``: the videos done before (:class:`Earlier`), counted in the failures listed at the
    end and in the summary.
    ``folder``: end with a one-line summary (written, skipped, failed, time; videos too).
    """
    start = time.perf_counter() if earlier.start is None else earlier.start
    failures: list[str] = list(earlier.failures)

    def summary(written: int, done: int, elsewhere: int, failed: int) -> None:
        if not folder:
            return
        videos = f" and {earlier.written} video(s)" if earlier.files else ""
        done, failed = done + earlier.skipped, failed + len(earlier.failures)
        skipped = (f"{done + elsewhere} skipped ({done} already done, {elsewhere} left to another run)"
                   if elsewhere else f"{done} skipped (already done)")
        ctx.say(f"done: {written} image(s){videos} written, {skipped}, {failed} failed "
                f"in {time.perf_counter() - start:.0f} s")

    if not jobs:
        if not earlier.files:
            ctx.say("no images in this shard")
        report_failures(failures, earlier.files)
        if earlier.files:
            summary(0, 0, 0, 0)
        if failures:
            sys.exit(1)
        return
    check_outputs(jobs, overwrite, task.output_paths)
    todo, done = split_done(jobs, force, overwrite)
    if not folder:   # a single file's read-only output fails now, not after minutes of work
        for job in todo:
            try:
                replaceable_mode(job.dst)
            except ImageWriteError as e:
                raise click.ClickException(str(e)) from None
    remove_temporaries(task, done)  # left by a killed run (the backends do the same for the jobs to do)
    say_skipped(ctx, done)
    show_bar = ctx.bars and len(todo) >= 2
    pixels = image_pixels([job.src for job in todo]) if show_bar or (workers is None and not ctx.debug) else None
    if workers is None:
        workers = auto_workers(len(todo), work_seconds * work_units(pixels)) if not ctx.debug else 1
        if workers > 1 and not dask:   # a Dask cluster's workers are its own
            workers = _fit_memory(ctx, workers, todo)
    workers = min(workers, max(1, len(todo)))  # no idle processes
    bar = ImagesBar(what, [job.src for job in todo], pixels if show_bar else None)
    finished, elsewhere = [], []

    def report(outcome: Outcome) -> None:
        bar.done(outcome.src)
        if outcome.skipped:  # another run makes it
            elsewhere.append(outcome)
            ctx.say(f"skip {outcome.src.name}: {outcome.skipped}")
            return
        finished.append(outcome.ok)
        if outcome.warning:
            tqdm.write(f"warning: {outcome.warning}", file=sys.stderr)
        if outcome.ok:
            ctx.say(f"{outcome.src.name} -> {outcome.dst} {outcome.message}".rstrip())
            return
        failures.append(outcome.error)
        tqdm.write(f"error: {outcome.error}", file=sys.stderr)
        if ctx.debug and outcome.detail:
            tqdm.write(outcome.detail.rstrip(), file=sys.stderr)

    def started(mode: str, threads: int) -> None:
        ctx.say(f"dask: {threads} worker thread(s) at {dask}; outputs written by the "
                f"{'workers' if mode == 'worker' else 'client'}")

    try:
        with sigterm_as_interrupt():
            run(task, todo, workers=workers, dask=dask, dask_write=dask_write or "auto", on_outcome=report,
                raise_errors=ctx.debug and workers == 1 and not dask, on_start=started, skip_existing=not force)
    except KeyboardInterrupt as e:
        bar.close()
        click.echo(interrupted_line(folder, todo, sum(finished)), err=True)
        sys.exit(interrupted_exit_code(e))
    except DaskError as e:  # the cluster cannot be used, so nothing was done: 2, like a usage error
        if ctx.debug:
            raise
        error = click.ClickException(str(e))
        error.exit_code = 2
        raise error from None
    except DaskLost as e:  # what was reported is done; the rest is left for a re-run
        bar.close()
        failures.append(str(e))
        tqdm.write(f"error: {e}", file=sys.stderr)
    bar.close()
    report_failures(failures, len(todo) + earlier.files)
    summary(sum(finished), len(done), len(elsewhere), len(finished) - sum(finished))
    if failures:
        sys.exit(1)


START_SECONDS = 2.0
"""About what starting the worker pool costs here (forkserver, importing torch once; measured)."""


def header_pixels(path: Path) -> int | None:
    """Width times height from the image file's header (no pixels decoded); None when it cannot be
    read: not an image file, damaged, unreadable, or too large for Pillow to open at all."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:  # a video
        return None
    from PIL import Image
    try:
        with warnings.catch_warnings():  # a large photo is the job's to refuse, not a warning here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Exception:  # not an image Pillow knows, damaged or unreadable (the job reports it)
        return None
    return width * height if width > 0 and height > 0 else None


def pixel_weights(pixels: list[int | None]) -> list[int]:
    """Each image's share of a run's work, which grows with its pixel count: ``pixels`` itself, where
    a size not known (None) counts as the mean of the known ones, or 1 each when none is known."""
    known = [p for p in pixels if p]
    unknown = round(sum(known) / len(known)) if known else 1
    return [p or unknown for p in pixels]


def image_pixels(paths: list[Path], most: int = 10_000) -> list[int]:
    """Each image's pixel count from its header (:func:`header_pixels`, :func:`pixel_weights`: a size
    not read counts as the mean of the others). Of more than ``most`` files, every k-th header is read
    (a million reads can take minutes) and the others count as their mean."""
    step = max(1, len(paths) // most)
    return pixel_weights([header_pixels(path) if i % step == 0 else None for i, path in enumerate(paths)])


UNIT_PIXELS = 480 * 320
"""The image size that a run's ``work_seconds`` are given for (Rain100L's, the benchmarks' unit)."""


def work_units(pixels: list[int] | None) -> float:
    """How many ``UNIT_PIXELS`` images the work of a run's images (``pixels``, :func:`image_pixels`) is
    worth on average, a small image counting as one; 1 when the sizes are not known."""
    if not pixels:
        return 1.0
    return sum(max(1.0, p / UNIT_PIXELS) for p in pixels) / len(pixels)


class ImagesBar:
    """The progress bar of a run over images: it shows the images done out of all of them, but moves by
    pixels (``pixels``, :func:`image_pixels`), so that its time left holds with mixed sizes: counting
    images, a few 12 MP photos among 0.3 MP ones would make it far too short until they came.

    No bar is drawn when ``pixels`` is None. ``file``: where it is drawn (tqdm's default, stderr, when None)."""

    def __init__(self, what: str, paths: list[Path], pixels: list[int] | None, file=None):
        weights = pixels if pixels is not None else [1] * len(paths)
        self.weights = dict(zip(paths, weights))
        self.count = [0, len(paths)]  # tqdm's postfix, formatted by bar_format: images done, images
        self.bar = tqdm(total=sum(weights), desc=what, disable=pixels is None, file=file, postfix=self.count,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix[0]}/{postfix[1]} images "
                                   "[{elapsed}<{remaining}]")

    def done(self, path: Path) -> None:
        """One image finished (written, failed or skipped)."""
        self.count[0] += 1
        self.bar.update(self.weights.get(path, 1))

    def close(self) -> None:
        self.bar.close()


def largest_pixels(paths: list[Path], sample: int = 64, most: int = 10_000) -> int:
    """The pixel count of the largest image among the ``sample`` largest files of ``paths`` (from
    their headers; 0 for none readable): a cheap bound on what one worker will hold. Of more
    than ``most`` files, every k-th is looked at (a million ``stat`` calls can take minutes)."""
    paths = paths[::max(1, len(paths) // most)]

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    largest = [header_pixels(path) or 0 for path in sorted(paths, key=size, reverse=True)[:sample]]
    return max(largest, default=0)


def _fit_memory(ctx: Context, workers: int, jobs: list[Job]) -> int:
    """``--workers auto``'s count, lowered (and said) when that many of the largest images would not
    fit in the memory available."""
    pixels = largest_pixels([job.src for job in jobs])
    available = available_memory()
    fitting = memory_workers(workers, pixels, available)
    if fitting < workers:
        ctx.say(f"--workers auto: {fitting} worker(s), not {workers}: the largest image "
                f"({pixels / 1e6:.1f} MP) needs about {worker_memory(pixels) / 1e9:.1f} GB per worker and "
                f"{available / 1e9:.1f} GB is available")
    return fitting


def auto_workers(images: int, work_seconds: float, cores: int | None = None) -> int:
    """``--workers auto``: one single-threaded worker per core when the images' work (``images``
    times ``work_seconds``) is worth at least ~3x the pool's start-up, else 1."""
    if images * work_seconds < 3 * START_SECONDS:
        return 1
    return default_workers(images, cores)
