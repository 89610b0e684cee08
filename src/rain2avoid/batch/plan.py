"""Which images a run processes and where each result goes.

A plan is a list of :class:`Job` (input, output) pairs, built from the sorted
file list so that every machine of an array job computes the same list:

* :func:`find_images` lists a folder, or a whole tree with ``recursive``
  (hidden files and folders and the output folder are left out);
* :func:`take_shard` keeps the K-th of N contiguous slices of that list;
* :func:`plan_jobs` maps each input to its output (the same relative path under
  the output folder, so a tree comes out as the same tree);
* :func:`split_done` sets aside the jobs whose output exists already, which is
  what makes a re-run of a shard idempotent.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple, Sequence

from ..io import IMAGE_EXTENSIONS, list_images

__all__ = ["Job", "find_images", "parse_shard", "take_shard", "plan_jobs", "split_done", "same_file"]


class Job(NamedTuple):
    """One image to process: read ``src``, write ``dst``."""

    src: Path
    dst: Path


def _natural_key(relative: str) -> list:
    """Digit runs compare by value, text without case, folder by folder ("a/2" < "a/10" < "b/1")."""
    key = []
    for part in relative.split("/"):
        pieces = re.split(r"([0-9]+)", part)
        key.append([int(p) if i % 2 else p.casefold() for i, p in enumerate(pieces)])
    return [key, relative]


def find_images(root: Path, recursive: bool = False, exclude: Path | None = None,
                skipped_links: list | None = None, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The image files in ``root`` (and, with ``recursive``, in every folder below it).

    Sorted by relative path in natural order (``2.png`` before ``10.png``), so
    the order is the same on every machine. Hidden files and folders (name
    starting with ".") are skipped; so is ``exclude`` (the output folder, when
    it lies inside the input tree), and so are symbolic links to folders (no
    loops) and links to nothing: those links are appended to ``skipped_links`` when
    it is given, for the caller to say so (without ``recursive``, the links named
    as images that lead nowhere). ``extensions``:
    the suffixes that make a file count, with ``recursive`` (the videos' suffixes,
    say); without it, :func:`rain2avoid.io.list_images`.
    """
    root = Path(root)
    if not recursive:
        if skipped_links is not None:   # a link named as an image that leads nowhere
            with os.scandir(root) as entries:   # the file type comes with the name: only links are looked at
                skipped_links.extend(Path(e.path) for e in entries if e.is_symlink() and not e.name.startswith(".")
                                     and os.path.splitext(e.name)[1].lower() in extensions
                                     and not os.path.exists(e.path))
            skipped_links.sort()
        return list_images(root)
    skip = os.path.realpath(exclude) if exclude is not None else None
    found, folders = [], [str(root)]
    while folders:  # strings and scandir (the file type comes with the name): millions of files
        folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if skip is None or os.path.realpath(entry.path) != skip:
                        folders.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in extensions and entry.is_file():
                    found.append(entry.path)
                elif skipped_links is not None and entry.is_symlink() and (
                        entry.is_dir() or not os.path.exists(entry.path)):
                    skipped_links.append(Path(entry.path))
    start = len(str(root)) + 1
    found.sort(key=lambda p: _natural_key(p[start:].replace(os.sep, "/")))
    return [Path(p) for p in found]


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 0 <= K < N; ValueError saying what is wrong otherwise.

    K counts from 0, like ``$SLURM_ARRAY_TASK_ID`` of ``sbatch --array=0-(N-1)``
    and ``$JOB_COMPLETION_INDEX`` of a Kubernetes indexed job.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"shard {text!r} is not of the form K/N (e.g. 0/4: the first of 4 shards)")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1:
        raise ValueError(f"shard {text!r}: N must be at least 1")
    if k >= n:
        raise ValueError(f"shard {text!r}: K counts from 0, so it must be 0 to {n - 1} for N = {n}")
    return k, n


def take_shard(items: Sequence, k: int, n: int) -> list:
    """The K-th of N contiguous, disjoint slices of ``items`` (sizes differ by at most one).

    Together the N shards hold every item exactly once; with more shards than
    items some shards are empty.
    """
    if not 0 <= k < n:
        raise ValueError(f"shard {k}/{n}: need 0 <= K < N")
    total = len(items)
    return list(items[k * total // n:(k + 1) * total // n])


def plan_jobs(files: Sequence[Path], root: Path, output: Path, suffix: str | None = None) -> list[Job]:
    """Jobs writing each file of the tree ``root`` to the same relative path under ``output``.

    With ``suffix`` (e.g. ".png") the output keeps the stem and takes that suffix.
    """
    jobs, prefix, output = [], os.path.join(str(root), ""), str(output)
    for f in files:
        text = str(f)
        relative = text[len(prefix):] if text.startswith(prefix) else str(Path(f).relative_to(root))
        if suffix:
            relative = os.path.splitext(relative)[0] + suffix
        jobs.append(Job(f if isinstance(f, Path) else Path(f), Path(os.path.join(output, relative))))
    return jobs


def split_done(jobs: Sequence[Job], force: bool = False, overwrite: bool = False) -> tuple[list[Job], list[Job]]:
    """``(to do, already done)``: a job is done when its output exists.

    With ``force`` nothing is done yet; with ``overwrite`` a job whose output
    is its own input (rewriting in place) is never counted as done.
    """
    if force:
        return list(jobs), []
    todo, done = [], []
    for job in jobs:
        finished = os.path.exists(job.dst) and not (overwrite and same_file(job.src, job.dst))
        (done if finished else todo).append(job)
    return todo, done


def same_file(a: Path, b: Path) -> bool:
    """Whether writing ``b`` would replace ``a``: the same path once ``.`` and ``..`` are
    resolved, or the same existing file (through links). Two ``stat`` calls at most."""
    if os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b)):
        return True
    try:
        return os.path.samestat(os.stat(b), os.stat(a))
    except OSError:  # b does not exist (the usual case): nothing to replace
        return False
