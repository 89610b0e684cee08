"""What every command shares: flags, input listing, output checks and the keep-going file loop.

Exit codes: 0 all done, 1 some files failed (each reported, the rest done),
2 usage errors (bad flags, output equal to input, ...).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

import click
from tqdm.auto import tqdm

from ..batch.plan import Job, find_images, same_file, split_done
from ..batch.work import describe_error
from ..io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, read_image
from ..settings import BACKBONE_NAMES, TARGETS
from ..veil import VEIL_THRESHOLD
from ..video.io import (
    INSTALL_HINT,
    VIDEO_EXTENSIONS,
    is_video,
    list_videos,
    sniff_video,
)

# Measured with `python benchmarks/backbones.py` (README, Backbones): one training step, batch 1, a full
# 480x320 image, on this project's 2-core CPU, in steps of the reference U-Net (0.42-0.78 s there).
BACKBONE_HELP = ("Network. A full-image (480x320) training step on a 2-core CPU costs, in reference "
                 "U-Net steps (0.4-0.8 s): fast 0.04-0.2, resnet 0.4-1.6, unet 1, dncnn 2-6.1, "
                 "restormer 45-85, drsformer 90-180 (README, Backbones). Use --device cuda for restormer "
                 "and drsformer: on a CPU, --preset reference takes days per image with them.")


class Context:
    """Flags shared by every command."""

    def __init__(self, quiet: bool, debug: bool, max_pixels: int):
        self.quiet, self.debug, self.max_pixels = quiet, debug, max_pixels
        # Progress bars only on a terminal: in logs and pipes they are noise around the messages.
        self.bars = not quiet and sys.stderr.isatty()
        if not debug:  # our one-line errors say it; OpenCV's own decoder warnings would repeat it
            import cv2
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

    def say(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(message)

    def read(self, path: Path, with_meta: bool = False):
        return read_image(path, max_pixels=self.max_pixels, with_meta=with_meta)


def common_options(f):
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-file messages.")(f)
    f = click.option("--debug", is_flag=True, help="Show full Python tracebacks on errors.")(f)
    f = click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
                     help="Refuse images with more pixels than this (checked before decoding).")(f)
    return f


def list_inputs(path: Path, recursive: bool = False, exclude: Path | None = None,
                videos: bool = False, note: Callable[[str], None] | None = None) -> tuple[list[Path], bool]:
    """The images to process and whether ``path`` is a folder (``recursive``: the whole tree,
    leaving out ``exclude``; ``videos``: also the videos of the folder itself, told by content,
    and the files named as videos, so that one that is not a video is reported, not ignored,
    and with ``recursive`` the files named as videos in the folders below it; ``note``: called
    with one line when links to folders (``recursive``) or to nothing were left out)."""
    if path.is_dir():
        links: list[Path] = []
        found = find_images(path, recursive, exclude, links, IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if videos else ()))
        files = [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS]
        if links and note is not None and recursive:
            folders = sum(link.is_dir() for link in links)
            note(f"note: skipped {folders} symbolic link(s) to folders and {len(links) - folders} broken "
                 f"link(s) in {path} (--recursive follows neither)")
        elif links and note is not None:
            note(f"note: skipped {len(links)} broken symbolic link(s) in {path}: {', '.join(p.name for p in links[:5])}"
                 f"{' ...' if len(links) > 5 else ''}")
        if videos:  # never an image's name: no overlap; below the top (recursive), by name only: the
            # tree's files are not opened to look
            files = files + list_videos(path) + [f for f in found if f.suffix.lower() in VIDEO_EXTENSIONS
                                                 and f.parent != path]
        if not files:
            where = "folder tree" if recursive else "folder"
            kinds = ", ".join(IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if videos else ()))
            raise click.UsageError(f"no {'images or videos' if videos else 'images'} ({kinds}) in {where} {path}")
        return files, True
    if not path.exists():
        if path.is_symlink():
            raise click.UsageError(f"input {path} is a symbolic link to {os.readlink(path)}, which does not exist")
        raise click.UsageError(f"input {path} does not exist")
    return [path], False


reason = describe_error  # one line naming the file (once) and what went wrong

SEED = click.IntRange(0, 2 ** 32 - 1)
"""--seed of every command: what numpy, torch and the web service all accept."""

STEPS = click.IntRange(0, 1_000_000)
"""--steps of every command (--preset reference trains 5,000)."""


def interrupted_line(folder: bool, jobs: list, done: int | None = None) -> str:
    """What Ctrl-C left, in one line: a single file's output not written (an output is written
    whole or not at all), or how many of a folder's ``jobs`` are ``done`` and how to go on."""
    if not folder:
        return f"interrupted: {jobs[0].dst} not written"
    count = "" if done is None else f"{done} of {len(jobs)} image(s) done; "
    return f"interrupted: {count}run the same command again to do the rest (finished outputs are skipped)"


def make_folder(folder: Path) -> None:
    """Create an output folder and check that files can be written in it, before any work,
    so that a bad output fails fast and clearly."""
    if folder.exists() and not folder.is_dir():
        raise click.UsageError(f"output folder {folder} is an existing file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(f"cannot create output folder {folder}: {e.strerror or e}")
    try:  # permissions, read-only or immutable folders and file systems: only trying tells
        with tempfile.TemporaryFile(dir=folder, prefix=".rain2avoid-", suffix=".tmp"):
            pass
    except OSError as e:
        raise click.UsageError(f"cannot write in output folder {folder}: {(e.strerror or str(e)).lower()}; "
                               f"choose another output")


def check_folder_output(input: Path, output: Path) -> None:
    """A usage error when a folder's results would go to a new folder named like a file (``out.png``)."""
    if output.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS and not output.is_dir():
        raise click.UsageError(f"{input} is a folder, so -o {output} is a folder for its results, but it is "
                               f"named like a file; give a folder name such as {output.with_suffix('')}")


def check_outputs(jobs: list[tuple[Path, Path]], overwrite: bool | None,
                  outputs: Callable[[Path], list[Path]] | None = None) -> None:
    """Usage errors before any work: unknown format, output = input, two inputs -> one output.

    ``overwrite``: whether the command's --overwrite was given (None: it has no such option).
    ``outputs(dst)``: every image file a job writes (e.g. its intermediates as well), when
    that is more than ``dst``; none of them may be written by two jobs.
    """
    written: dict[str, Path] = {}
    for src, dst in jobs:  # cheap per job (string work and a failed stat): folders of millions
        suffix = dst.suffix.lower()
        if suffix not in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:  # an image may become a one-frame video
            video = src.suffix.lower() not in IMAGE_EXTENSIONS and is_video(src)
            kind, suffixes = ("video", VIDEO_EXTENSIONS) if video else ("image", IMAGE_EXTENSIONS)
            both = "" if video or src.suffix.lower() in IMAGE_EXTENSIONS or not src.suffix else (
                f"; nor are {src.suffix!r} files read: convert {src.name} to PNG first")   # a.gif -o b.gif
            raise click.UsageError(f"output {dst}: unsupported {kind} format {dst.suffix!r} "
                                   f"(use one of {' '.join(suffixes)}){both}")
        if suffix in IMAGE_EXTENSIONS and src.suffix.lower() not in IMAGE_EXTENSIONS and is_video(src):
            raise click.UsageError(f"output {dst}: unsupported video format {dst.suffix!r} "
                                   f"(use one of {' '.join(VIDEO_EXTENSIONS)})")
        if not overwrite and same_file(src, dst):
            hint = "" if overwrite is None else " or pass --overwrite"
            raise click.UsageError(f"output {dst} is the input file; choose another output{hint}")
        for path in outputs(dst) if outputs is not None and suffix in IMAGE_EXTENSIONS else [dst]:
            key = os.path.normcase(os.path.abspath(path))
            if key in written:
                raise click.UsageError(f"{written[key]} and {src} would both write {path}; rename one of them")
            written[key] = src
    for folder in sorted({dst.parent for _, dst in jobs}):
        make_folder(folder)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, systemd, Slurm's pre-emption), stopped like Ctrl-C."""


def interrupted_exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit code of a run stopped by ``interrupt``: 143 for SIGTERM, 130 for Ctrl-C (128 + signal)."""
    return 143 if isinstance(interrupt, Terminated) else 130


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within it, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread, so
    that a run stops as on Ctrl-C: workers stopped, no partial output, the 'interrupted' line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated()

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def report_failures(failures: list[str], total: int, what: str = "failed") -> None:
    """List the failures of a multi-file run at the end, where they are seen."""
    if failures and total > 1:
        click.echo(f"{len(failures)} of {total} file(s) {what}:", err=True)
        for line in failures:
            click.echo(f"  {line}", err=True)


def run_jobs(ctx: Context, jobs: list[tuple[Path, Path]], work: Callable[[Path, Path], None], what: str,
             force: bool = True, overwrite: bool | None = None, finish: bool = True) -> list[str]:
    """Run ``work(src, dst)`` for each job; report and skip failures; exit 1 if any failed.

    With ``finish=False`` the failures are returned instead (the caller lists them
    at the end and exits).

    An output equal to its input is a usage error unless ``overwrite`` (None:
    the command has no --overwrite); an existing output is skipped unless
    ``force``. Any error in one file is reported in one line (a traceback only
    with ``--debug``) and the rest go on.
    """
    check_outputs(jobs, overwrite)
    failures: list[str] = []
    todo, done = split_done(jobs, force, bool(overwrite))
    say_skipped(ctx, done)
    bar = tqdm(todo, desc=what, unit="image", disable=not ctx.bars or len(jobs) < 2)
    for src, dst in bar:
        try:
            work(src, dst)
        except Exception as e:  # one bad file must not stop a folder
            if ctx.debug:
                raise
            failures.append(reason(src, e))
            tqdm.write(f"error: {failures[-1]}", file=sys.stderr)
    if not finish:
        return failures
    report_failures(failures, len(jobs))
    if failures:
        sys.exit(1)
    return failures


def say_skipped(ctx: Context, done: list[Job]) -> None:
    """Name the images skipped because their output exists (a count when there are many)."""
    if len(done) > 10:
        ctx.say(f"skip {len(done)} image(s) whose output exists (use --force to redo them)")
        return
    for src, dst in done:
        ctx.say(f"skip {src.name}: {dst} exists (use --force to redo)")


def output_for(src: Path, output: Path, folder: bool, suffix: str | None = None) -> Path:
    """Output path: inside ``output`` for a folder (or when ``output`` is a folder), else ``output``."""
    name = src.stem + suffix if suffix else src.name
    if suffix is None and src.suffix.lower() not in VIDEO_EXTENSIONS + IMAGE_EXTENSIONS and is_video(src):
        name = f"{src.stem}.{sniff_video(src)}"  # a video with another suffix gets its container's
    if folder or output.is_dir() or not output.suffix:
        return output / name
    return output


def video_jobs(jobs: list[tuple[Path, Path]]) -> set[Path]:
    """The inputs of ``jobs`` to go through the video path (videos, or images written as videos);
    a usage error naming the extra when there are some and PyAV is missing."""
    videos = {src for src, dst in jobs if dst.suffix.lower() in VIDEO_EXTENSIONS
              or (src.suffix.lower() not in IMAGE_EXTENSIONS and is_video(src))}
    if videos:
        try:
            import av  # noqa: F401
        except ImportError:
            src, dst = min((src, dst) for src, dst in jobs if src in videos)
            read = src.suffix.lower() not in IMAGE_EXTENSIONS and is_video(src)
            raise click.UsageError(f"{src if read else dst} is a video; {INSTALL_HINT}") from None
    return videos


VEIL_HELP = ("The veil of heavy rain (mist): 'auto' takes it away where a colour photo shows a white "
             "or grey one about as bright as its bright parts (colour casts, pale walls, building facades "
             "and grey photos are left alone), 'on' always, 'off' never. "
             "Photos only: videos keep their veil. "
             "[default: auto; off for --preset reference]")


LAYER_HELP = ("Grey levels (a number >= 0) from which rain the mask missed, found by a directional "
              "sparse model in long colourless pieces along the streaks, is left out of the training "
              "loss, so that the network does not learn to keep it; 0 turns it off (the earlier "
              "default's outputs), which can keep more texture that runs along the rain (grass, "
              "fur). [default: 3; 0 for --preset reference]")


VEIL_THRESHOLD_HELP = ("The veil strength (0 to 1) from which --veil auto takes a veil away: lower "
                       "clears lighter mist (and risks clearing a pale scene), higher only heavy "
                       f"veils; auto's other tests still apply. [default: {VEIL_THRESHOLD}]")


WIDE_RAIN_HELP = ("Also take away wide soft (out-of-focus) streaks of large photos: a photo whose "
                  "shorter side is at least 960 px is derained once more on a copy shrunk to a "
                  "shorter side of 480-959 px, where those streaks are thin, and the larger "
                  "removal kept; skipped where the photo shows a lattice (windows, bricks). About "
                  "25 % more time. Off by default: on buildings it can still take window mullions "
                  "that run along the rain for streaks. Photos only.")


def settings_options(f):
    f = click.option("--layer", type=click.FloatRange(min=0, max=255), default=None, metavar="LEVELS",
                     help=LAYER_HELP)(f)
    f = click.option("--veil-threshold", type=click.FloatRange(min=0, max=1), default=None, metavar="STRENGTH",
                     help=VEIL_THRESHOLD_HELP)(f)
    f = click.option("--veil", type=click.Choice(["auto", "on", "off"]), default=None, help=VEIL_HELP)(f)
    f = click.option("--seed", type=SEED, default=None,
                     help="Random seed (the same seed and number of torch threads, the same output).")(f)
    f = click.option("--sampler", type=click.Choice(["nss", "uniform"]), default=None,
                     help="Reference sampler.")(f)
    f = click.option("--refs", "refs", type=click.IntRange(min=1), default=None,
                     help="Number of sampled references (with --target sampled).")(f)
    f = click.option("--target", type=click.Choice(TARGETS), default=None,
                     help="Train on the closed-form expected reference, on --refs references sampled "
                          "once, or on a fresh reference drawn at every step (online).")(f)
    f = click.option("--steps", type=STEPS, default=None, help="Training steps.")(f)
    f = click.option("--backbone", type=click.Choice(list(BACKBONE_NAMES)), default=None, help=BACKBONE_HELP)(f)
    f = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)(f)
    return f


def check_device(device: str) -> None:
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise click.UsageError("--device cuda: no CUDA GPU is available here; use --device cpu")

