"""Many images: plan the jobs, then run them here (a process pool) or on a Dask cluster.

>>> from rain2avoid.batch import DerainTask, find_images, plan_jobs, run
>>> files = find_images(Path("photos"), recursive=True)
>>> outcomes = run(DerainTask(), plan_jobs(files, Path("photos"), Path("derained")), workers=2)

Every backend calls the same per-image function (:func:`work.run_job`), which
runs the same pipeline as a single image and writes atomically; errors come
back as values (``Outcome.error``), so a bad file is reported and skipped.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .local import available_cores, default_workers, run_local
from .plan import Job, find_images, parse_shard, plan_jobs, split_done, take_shard
from .work import ApplyTask, DerainTask, Outcome, describe_error, run_job

__all__ = ["Job", "find_images", "parse_shard", "take_shard", "plan_jobs", "split_done", "DerainTask",
           "ApplyTask", "Outcome", "describe_error", "run_job", "run", "run_local", "available_cores",
           "default_workers"]


def run(task, jobs: Sequence[Job], workers: int = 1, dask: str | None = None, dask_write: str = "auto",
        on_outcome: Callable[[Outcome], None] | None = None, raise_errors: bool = False,
        on_start: Callable[[str, int], None] | None = None, skip_existing: bool = False) -> list[Outcome]:
    """Run ``jobs`` with ``task``: on the Dask scheduler at ``dask`` if given, else in ``workers`` processes.

    ``on_outcome`` is called with each :class:`Outcome` as it arrives (for
    progress and messages); the outcomes are also returned. A job whose output
    another run is making is skipped (``Outcome.skipped``); so, with
    ``skip_existing``, is one whose output has appeared since the plan. See
    :func:`local.run_local` and :func:`dask.run_dask`.
    """
    if dask:
        from .dask import run_dask
        return run_dask(task, jobs, dask, dask_write, on_outcome, on_start=on_start, skip_existing=skip_existing)
    return run_local(task, jobs, workers, on_outcome=on_outcome, raise_errors=raise_errors,
                     skip_existing=skip_existing)
