"""A Dask cluster: one task per image on an existing ``dask.distributed`` scheduler.

Needs the extra ``rain2avoid[dask]`` on the client and on every worker (the
workers import ``rain2avoid`` to run :mod:`rain2avoid.batch.work`).

Where the outputs are written (``write``):

* ``"worker"``: each worker reads its input and writes its outputs atomically
  on a filesystem it shares with the client (NFS, Lustre, a bind mount), under
  the same paths. Only names and short results cross the network.
* ``"client"``: the client reads each input and sends its bytes with the task
  (and the model file's bytes to every worker once, for ``apply``); the worker
  sends the encoded outputs back and the client writes them atomically. For
  workers that do not see the client's files. Each worker process writes each
  model it is sent to a file in a private temporary folder of its own, once, and
  loads it once; the folder is removed when the worker process exits.
* ``"auto"`` (default): ``"worker"`` when every worker connected at the start
  sees the first input and a probe file the client puts in the output folder,
  else ``"client"``.

Nothing is done twice or lost: at most a bounded window of tasks is in flight;
a task on a worker that dies is re-run elsewhere by the scheduler, and any task
that still ends in an error (a worker died on it repeatedly, its data was lost)
is submitted again, up to ``attempts`` times, before it is reported as failed.
Writes are atomic and jobs idempotent, so a task that ran twice wrote the same
file twice; temporary files left by killed workers (or a killed run) are removed
at the start and at the end. The client claims each job's output before
submitting it (:class:`~rain2avoid.batch.work.Claims`), so a second run into the
same folder, on this cluster or any other backend, skips the images this one is making.
Ctrl-C cancels the tasks not yet run; tasks already running on a worker finish
(a thread cannot be stopped) and, in ``"worker"`` mode, write complete outputs.
A scheduler lost for good in the middle (the client gives up reconnecting after
``timeout``) ends the run with :class:`DaskLost`: what was reported is done, and a
re-run does the rest. The CLI checks that the scheduler's port answers before any
work (:func:`check_scheduler`), since a folder's videos are derained before it connects.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__
from .plan import Job
from .work import (Claims, Outcome, remove_temporaries, retry_or_give_up, run_job, run_job_on_bytes,
                   set_threads, thread_lock_for_bars)

__all__ = ["run_dask", "require_distributed", "check_scheduler", "DaskError", "DaskLost", "EXTRA_HINT"]

EXTRA_HINT = "pip install 'rain2avoid[dask]'"


class DaskError(RuntimeError):
    """The cluster cannot be used (not installed, unreachable, no workers, wrong rain2avoid)."""


class DaskLost(RuntimeError):
    """The client lost its scheduler in the middle of a run (it gave up reconnecting): the jobs
    reported so far are done, the others are not."""


def check_scheduler(address: str, timeout: float = 10.0) -> None:
    """DaskError unless ``address`` is a scheduler address (``tcp://host:port``, ``host:port``,
    ``tls://...``) whose port accepts a connection within ``timeout`` seconds: a quick check
    before any work, for a run that does other work (videos) before it connects."""
    import socket
    distributed = require_distributed()
    try:
        scheme, location = distributed.comm.parse_address(address)
        host, port = distributed.comm.parse_host_port(location)
    except ValueError as e:
        raise DaskError(f"--dask {address} is not a scheduler address ({e}); give one such as "
                        f"tcp://10.0.0.5:8786") from None
    if scheme not in ("tcp", "tls"):
        return   # inproc, ucx, ...: the client's own connection tells
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise _unreachable(address, e.strerror or str(e)) from None


def _unreachable(address: str, why: str) -> DaskError:
    return DaskError(f"cannot reach the Dask scheduler at {address} ({' '.join(why.split())}); check the "
                     f"address, or start a scheduler there with `dask scheduler`")


def require_distributed():
    """The ``distributed`` module, or DaskError naming the extra to install."""
    try:
        import distributed
    except ImportError:
        raise DaskError(f"--dask needs dask.distributed, which is not installed: {EXTRA_HINT}") from None
    return distributed


class CancelRaceFilter(logging.Filter):
    """Drops one log record that ``distributed`` makes when Ctrl-C lands at the wrong moment.

    ``distributed.utils.sync`` answers a KeyboardInterrupt by scheduling a ``cancel`` of the
    call it is waiting for. If the interrupt comes before that call has started, ``cancel``
    finds no future yet. Tornado then logs its NameError with a traceback on
    ``tornado.application``. The interrupt itself is handled ("interrupted: ..."), and the
    traceback would only alarm the user. Every other record passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, NameError) or error.__traceback__ is None:
            return True
        frame = error.__traceback__
        while frame.tb_next is not None:
            frame = frame.tb_next
        code = frame.tb_frame.f_code
        return not (code.co_name == "cancel" and Path(code.co_filename).parts[-2:] == ("distributed", "utils.py"))


def run_dask(task, jobs: Sequence[Job], address: str, write: str = "auto",
             on_outcome: Callable[[Outcome], None] | None = None, attempts: int = 3,
             timeout: float = 30.0, on_start: Callable[[str, int], None] | None = None,
             skip_existing: bool = False) -> list[Outcome]:
    """Run every job on the Dask cluster whose scheduler is at ``address``.

    Returns one :class:`Outcome` per job (in the order they finished).
    ``on_start(write_mode, worker_threads)`` is called once connected.
    Raises :class:`DaskError` when the cluster cannot be used (before any work), and
    :class:`DaskLost` when the scheduler is lost for good in the middle (the outcomes
    reported until then stand); a KeyboardInterrupt cancels what has not started and
    propagates.
    ``skip_existing``: as for :func:`~rain2avoid.batch.local.run_local`.
    """
    if write not in ("auto", "worker", "client"):
        raise ValueError(f"write must be 'auto', 'worker' or 'client', got {write!r}")
    distributed = require_distributed()
    # Workers run in other folders, often on other machines: absolute paths only; the outcomes
    # name the files as they were given, as every other backend's do.
    given = {Job(Path(os.path.abspath(j.src)), Path(os.path.abspath(j.dst))): j for j in jobs}
    jobs = list(given)
    told = on_outcome or (lambda outcome: None)

    def report(outcome: Outcome) -> None:
        told(_as_given(outcome, given))
    quiet, tornado_log = CancelRaceFilter(), logging.getLogger("tornado.application")
    tornado_log.addFilter(quiet)  # until the client has closed: its loop runs the cancel first
    try:
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise _unreachable(address, str(e)) from None
        try:
            mode, threads = _prepare(client, address, jobs, write, timeout)
            if on_start is not None:
                on_start(mode, threads)
            outcomes = _run(client, distributed, task, jobs, mode, max(8, 2 * threads), report, attempts,
                            Claims(skip_existing), address)
            return [_as_given(outcome, given) for outcome in outcomes]
        finally:
            client.close()
    finally:
        tornado_log.removeFilter(quiet)


def _as_given(outcome: Outcome, given: dict) -> Outcome:
    """``outcome`` of an absolute-path job, naming its files as the caller gave them."""
    job = given.get(Job(outcome.src, outcome.dst))
    if job is None or (job.src, job.dst) == (outcome.src, outcome.dst):
        return outcome

    def named(text: str | None) -> str | None:
        if not text:
            return text
        return text.replace(str(outcome.src), str(job.src)).replace(str(outcome.dst), str(job.dst))

    return dataclasses.replace(outcome, src=job.src, dst=job.dst, error=named(outcome.error),
                               warning=named(outcome.warning), skipped=named(outcome.skipped))


def _prepare(client, address: str, jobs: Sequence[Job], write: str, timeout: float) -> tuple[str, int]:
    """Check the workers can run our tasks; the write mode and the number of worker threads."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise DaskError(f"no Dask workers are connected to {address} after {timeout:.0f} s; "
                        f"start some with `dask worker {address}`") from None
    probe = None
    if jobs and write == "auto":  # a file the workers see if they share the output folder with us
        probe = Path(jobs[0].dst).parent / f".rain2avoid-probe-{uuid.uuid4().hex[:12]}"
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.touch()
        except OSError:
            probe = None
    try:
        info = client.run(worker_info, str(probe) if probe else "", str(jobs[0].src) if jobs else "")
    except Exception as e:  # the workers could not unpickle or run our function
        raise DaskError(f"the Dask workers at {address} cannot run rain2avoid tasks "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); install rain2avoid "
                        f"{__version__} in the workers' Python environment ({EXTRA_HINT})") from None
    finally:
        if probe is not None:
            probe.unlink(missing_ok=True)
    versions = {v["version"] for v in info.values()}
    if versions != {__version__}:
        raise DaskError(f"the Dask workers run rain2avoid {', '.join(sorted(versions))} but this is "
                        f"{__version__}; install the same version on both sides")
    if write == "auto":
        write = "worker" if all(v["sees_files"] for v in info.values()) else "client"
    return write, sum(client.nthreads().values())


def _run(client, distributed, task, jobs: Sequence[Job], mode: str, window: int,
         report: Callable[[Outcome], None], attempts: int, claims: Claims, address: str) -> list[Outcome]:
    remove_temporaries(task, jobs)  # left by a run that was killed; those of live runs stay
    outcomes: list[Outcome] = []
    queue = list(reversed(jobs))
    tries = {job: 0 for job in jobs}
    model = None  # apply in client mode: the model file's bytes, on every worker
    running: dict = {}
    pending = distributed.as_completed(loop=client.loop)
    try:
        while queue or running:
            while queue and len(running) < window:
                job = queue.pop()
                skipped = claims.take(job)
                if skipped is not None:
                    outcomes.append(skipped)
                    report(skipped)
                    continue
                if mode == "client" and getattr(task, "model", None) is not None and model is None:
                    model = client.scatter(Path(task.model).read_bytes(), broadcast=True, hash=False)
                future = _submit(client, task, job, mode, model)
                if isinstance(future, Outcome):  # the client could not read the input
                    claims.release(job)
                    outcomes.append(future)
                    report(future)
                    continue
                running[future] = job
                pending.add(future)
            if not running:
                continue
            future = _next_finished(pending, client, address, len(outcomes), len(jobs))
            job = running.pop(future)
            if future.status == "finished":
                outcome = future.result()
                if mode == "client":
                    outcome = _write_returned(outcome)
                claims.release(job)
                outcomes.append(outcome)
                report(outcome)
                continue
            # A lost worker (repeatedly) or lost data: submit it again.
            if future.status == "error":
                error = future.exception()
                why = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
            else:
                why = f"the task was {future.status}"
            model = None if mode == "client" and hasattr(task, "model") else model  # scatter it again
            gave_up = retry_or_give_up(job, tries, attempts, queue,
                                       lambda n: f"the Dask task failed {n} times ({why})")
            if gave_up is not None:
                claims.release(job)
                outcomes.append(gave_up)
                report(gave_up)
        if mode == "worker":
            remove_temporaries(task, jobs)  # left by killed workers; nothing of ours runs now
        return outcomes
    except BaseException:  # KeyboardInterrupt: cancel what has not run; running tasks finish
        if client.status == "running":   # a client that lost its scheduler has nothing to cancel
            client.cancel(list(running))
        raise
    finally:
        claims.release_all()


def _next_finished(pending, client, address: str, done: int, total: int, poll: float = 1.0):
    """The next future of ``pending`` (a ``distributed.as_completed``) to finish. While the client
    reconnects to a lost scheduler this waits; once it has given up, DaskLost: waiting would
    never end, and the futures it cancels are no task's failure."""
    while True:
        _check_client(client, address, done, total)
        try:   # as ``next(pending)``, for at most ``poll`` seconds
            future = client.sync(_next_within, pending, poll)
            break
        except (TimeoutError, asyncio.TimeoutError):   # two classes before Python 3.11
            pass
    if future.status != "finished":
        _check_client(client, address, done, total)
    return future


async def _next_within(pending, seconds: float):
    """The next future of an ``as_completed``, or TimeoutError after ``seconds``."""
    return await asyncio.wait_for(pending.__anext__(), seconds)


def _check_client(client, address: str, done: int, total: int) -> None:
    """DaskLost once the client has given up reconnecting to its scheduler."""
    if client.status not in ("running", "connecting", "newly-created"):
        raise DaskLost(f"lost the Dask scheduler at {address} (the client gave up reconnecting): {done} of "
                       f"{total} image(s) done; run the same command again to do the rest (finished "
                       f"outputs are skipped)")


def _submit(client, task, job: Job, mode: str, model):
    key = f"rain2avoid-{task.kind}-{uuid.uuid4().hex}"
    if mode == "worker":
        return client.submit(_remote, task, job, key=key, pure=False, retries=1)
    try:
        data = Path(job.src).read_bytes()
    except OSError as e:
        from .work import describe_error
        return Outcome(job.src, job.dst, describe_error(job.src, e))
    with warnings.catch_warnings():  # big images are expected in the task; dask warns about them
        warnings.simplefilter("ignore", UserWarning)
        return client.submit(_remote_bytes, task, job, data, model, key=key, pure=False, retries=1)


def _write_returned(outcome: Outcome) -> Outcome:
    """Client mode: write the files a worker sent back, atomically, in their order."""
    from ..io import write_bytes
    from .work import describe_error
    try:
        for path, data in outcome.files:
            write_bytes(path, data)
    except OSError as e:
        outcome.error = describe_error(outcome.src, e)
    outcome.files = []
    return outcome


# --- run on the workers ----------------------------------------------------------------------------------------

def worker_info(probe: str, source: str) -> dict:
    """What the client needs to know about a worker (run there by ``client.run``)."""
    sees = bool(probe) and os.path.exists(probe) and os.path.isfile(source) and os.access(source, os.R_OK)
    return {"version": __version__, "sees_files": sees}


def _remote(task, job: Job) -> Outcome:
    _worker_threads(task)
    return run_job(task, job)


def _remote_bytes(task, job: Job, data: bytes, model: bytes | None) -> Outcome:
    _worker_threads(task)
    if model is None:
        return run_job_on_bytes(task, job, data)
    path = _private_model_file(model)
    outcome = run_job_on_bytes(dataclasses.replace(task, model=path), job, data)
    if outcome.error:  # name the client's model file, not this worker's copy
        outcome.error = outcome.error.replace(str(path), str(task.model))
    return outcome


_model_folder: str | None = None  # per worker process: a private folder for the models' copies
_model_files: dict[str, Path] = {}  # sha256 of a model's bytes -> its copy there
_model_lock = threading.Lock()  # a worker's task threads share them


def _private_model_file(content: bytes) -> Path:
    """The model's bytes in a file of this worker process, written once per distinct content and
    reused by later tasks, so that :func:`~rain2avoid.batch.work.cached_model` loads it once.

    The file is in a folder made by ``mkdtemp`` (a random name that only this user can read or
    write), so no other user can plant a model there in advance; it is removed at process exit."""
    global _model_folder
    digest = hashlib.sha256(content).hexdigest()
    with _model_lock:
        path = _model_files.get(digest)
        if path is not None and path.is_file():
            return path
        if _model_folder is None or not os.path.isdir(_model_folder):
            _model_folder = tempfile.mkdtemp(prefix="rain2avoid-models-")
            atexit.register(shutil.rmtree, _model_folder, ignore_errors=True)
        path = Path(_model_folder) / f"{digest[:16]}.pt"
        try:
            path.write_bytes(content)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        _model_files[digest] = path
        return path


_first_task = True  # per worker process


def _worker_threads(task) -> None:
    """torch and OpenCV threads for one task: the task's own, else ``OMP_NUM_THREADS`` when set
    (the Dask nanny sets 1), else this machine's cores shared among the worker's task threads."""
    from .local import available_cores
    global _first_task
    if _first_task:
        thread_lock_for_bars()
        _first_task = False
    threads = str(task.threads or "") or os.environ.get("OMP_NUM_THREADS", "")
    if not threads.isdigit() or int(threads) < 1:
        try:
            from distributed import get_worker
            share = get_worker().state.nthreads
        except Exception:
            share = 1
        threads = str(max(1, available_cores() // max(1, share)))
    set_threads(int(threads))
