"""Writing files so that a user never finds a partial one.

Every output of rain2avoid goes through :func:`write_bytes`: the bytes go to a
hidden temporary file next to the target, which is flushed to disk and renamed
over the target. The target is therefore either the old file or the complete
new one; a process killed mid-write leaves only the hidden temporary file,
which :func:`temporary_files` finds. Problems raise :class:`ImageWriteError`.
A file that is replaced keeps its permissions, and a read-only one (no write
permission for anyone) is not replaced (:func:`replaceable_mode`).

Who is still writing: a write holds an exclusive ``flock`` on its temporary
file until the rename. The kernel drops the lock when the process ends, however
it ends (SIGKILL included), so :func:`stale_temporaries` can tell a leftover of
a dead writer (its lock can be taken) from a write in progress (it cannot), also
on a network filesystem whose server keeps locks (NFS). A run claims an output before
its work starts the same way (:func:`claim`: a lock on a hidden ``.NAME.claim``
file beside it), so a second run sees that it is being made and skips it.
``flock`` was chosen over a PID in the name because it needs no clock, no
host name and no check that a PID was not reused. Where nothing can be locked
(Windows, a filesystem without locks) every temporary file counts as a leftover
and every claim succeeds, as before there were locks.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import uuid
from pathlib import Path
from typing import List, Optional, Tuple, Union

try:
    import fcntl
except ImportError:  # Windows: nothing is locked (see the module docstring)
    fcntl = None

__all__ = ["ImageWriteError", "write_bytes", "temporary_files", "stale_temporaries", "locked_temporary", "Claim",
           "claim", "describe_os_error", "replaceable_mode"]

PathLike = Union[str, "os.PathLike[str]"]


class ImageWriteError(OSError):
    """An output file cannot be written (unwritable folder, disk full, ...).

    The message is one line, ``"cannot write <path>: <reason>"``.
    :attr:`path` and :attr:`reason` hold the parts, :attr:`errno` the error
    number of the underlying OS error when there was one.
    """

    def __init__(self, path: PathLike, reason: str, error_number: Optional[int] = None):
        super().__init__(f"cannot write {os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason
        self.errno = error_number
        self.filename = self.path

    def __str__(self) -> str:
        # OSError would print "[Errno N] ..." once errno is set; keep our one line.
        return f"cannot write {self.path}: {self.reason}"

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.errno))


def write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` (e.g. from ``rain2avoid.io.encode_image``) to ``path`` atomically."""
    target = Path(path)
    write_atomically(target, bytes(data))
    return target


def temporary_files(*paths: PathLike) -> List[Path]:
    """Temporary files left beside ``paths`` by writes to them that never finished.

    Only a process killed in the middle of ``rain2avoid.io.write_image`` leaves one (any
    error removes it), but a write still running has one too: :func:`stale_temporaries`
    keeps only those whose writer has ended. Each folder is listed once, however many
    paths it holds.
    """
    names: dict = {}
    for path in paths:
        target = Path(path)
        names.setdefault(target.parent, set()).add(_temporary_prefix(target))
    pattern = re.compile(r"\.(.*)\.(?:[0-9a-f]{12}\.tmp|claim)")
    found = []
    for folder, prefixes in names.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and match.group(1) in prefixes:
                found.append(folder / entry.name)
    return sorted(found)


def stale_temporaries(*paths: PathLike) -> List[Path]:
    """The :func:`temporary_files` of ``paths`` whose process has ended (killed): safe to
    remove while other processes write to those paths, since a write in progress, or a
    run's claim, holds a lock on its file (see the module docstring)."""
    stale = []
    for temporary in temporary_files(*paths):
        try:
            descriptor = _open_locked(temporary, os.O_WRONLY)  # NFS locks need a writable descriptor
        except OSError:  # gone meanwhile (renamed into place), or not ours to open
            continue
        if descriptor is not None:
            os.close(descriptor)
            stale.append(temporary)
    return stale


class Claim:
    """An output this process is making now (:func:`claim`); :meth:`release` it when done."""

    def __init__(self, path: Path, descriptor: Optional[int]):
        self.path = path
        self._descriptor = descriptor

    def release(self) -> None:
        """Remove the claim file, then unlock it (in that order: see :func:`_open_locked`)."""
        if self._descriptor is not None:
            _remove_quietly(self.path)
            os.close(self._descriptor)
            self._descriptor = None


def claim(path: PathLike) -> Optional[Claim]:
    """Claim the making of ``path`` before the work on it starts: lock a hidden ``.NAME.claim``
    file beside it (:func:`temporary_files` lists it too). None when another live process
    holds that claim (or has just released it: it has finished); a claim whose process
    has ended (killed) is taken over. OSError when the folder cannot be written."""
    target = Path(path)
    file = target.parent / f".{_temporary_prefix(target)}.claim"
    if fcntl is None:  # nothing to lock: no file either (see the module docstring)
        return Claim(file, None)
    descriptor = _open_locked(file, os.O_WRONLY | os.O_CREAT)
    return Claim(file, descriptor) if descriptor is not None else None


def _open_locked(path: Path, flags: int, wait: bool = False) -> Optional[int]:
    """``os.open(path, flags)`` holding an exclusive ``flock`` on the file, or None when
    another process holds that lock (and not ``wait``) or held it and removed the file
    before unlocking it: then ``path`` names another file or none, and the file we opened
    is no one's. Without fcntl, or on a filesystem without locks, nothing is locked."""
    descriptor = os.open(path, flags | getattr(os, "O_BINARY", 0), 0o666)  # 0o666 & ~umask, like open()
    if fcntl is None:
        return descriptor
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        if os.path.samestat(os.fstat(descriptor), os.stat(path)):
            return descriptor
    except (BlockingIOError, FileNotFoundError):  # held by a live process; removed by its holder
        pass
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
            return descriptor  # a filesystem without locks: as before there were locks
        os.close(descriptor)
        raise
    except BaseException:
        os.close(descriptor)
        raise
    os.close(descriptor)
    return None


def _temporary_prefix(target: Path) -> str:
    """What a temporary file of ``target`` is named after: its whole name (``photo.png``, so that
    ``photo.jpg``'s are not taken for it), cut to fit the 255-byte file-name limit."""
    return os.fsdecode(os.fsencode(target.name)[:200])


def replaceable_mode(target: Path) -> Optional[int]:
    """The permission bits of the file ``target``, which a new file written over it is to keep;
    None where there is none. ImageWriteError for a read-only file (write permission for
    nobody): a rename would replace it all the same, since only the folder's permissions
    count, but its owner made it read-only to keep it."""
    try:
        status = os.stat(target)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    if not status.st_mode & 0o222:
        raise ImageWriteError(target, "the file is read-only; make it writable (chmod u+w) to replace it, "
                                      "or write elsewhere", errno.EACCES)
    return stat.S_IMODE(status.st_mode)


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a synced temporary file and a rename.

    The temporary file is locked until the rename (see the module docstring). On any
    failure the temporary file is removed and the target is untouched; OS errors become
    ImageWriteError. A file replaced keeps its permissions; a read-only one is not
    replaced (:func:`replaceable_mode`).
    """
    mode = replaceable_mode(target)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(
            target, f"cannot create folder {folder}: {describe_os_error(exc)}", exc.errno
        ) from exc
    descriptor, created = None, False
    try:
        temporary, descriptor = locked_temporary(target)
        created = True
        with open(descriptor, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            if mode is not None:
                os.chmod(temporary, mode)
            os.fsync(handle.fileno())
        if fcntl is None:  # Windows renames no open file (and nothing is locked there)
            os.close(descriptor)
            descriptor = None
        os.replace(temporary, target)  # still locked: never taken for a leftover
        created = False
    except OSError as exc:
        raise ImageWriteError(target, describe_os_error(exc), exc.errno) from exc
    finally:
        if created:
            _remove_quietly(temporary)
        if descriptor is not None:
            os.close(descriptor)
    _sync_folder(folder)


def locked_temporary(target: Path) -> Tuple[Path, int]:
    """A new empty hidden temporary file beside ``target`` (in an existing folder), named so that
    :func:`temporary_files` finds it, and an open descriptor that holds its lock: keep it open
    until the file is renamed over ``target`` or removed, then close it. For writers that write
    the file through a path of their own (a video muxer); OSError when it cannot be made."""
    while True:   # None: a clean-up took it for a leftover before we locked it
        # Hidden, unique, and short enough for any file-name limit.
        temporary = target.parent / f".{_temporary_prefix(target)}.{uuid.uuid4().hex[:12]}.tmp"
        descriptor = _open_locked(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, wait=True)
        if descriptor is not None:
            return temporary, descriptor


def _remove_quietly(path: Path) -> None:
    """Delete ``path`` if possible; used for cleanup only."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_folder(folder: Path) -> None:
    """Flush a folder entry to disk so the rename survives a crash (best effort)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def describe_os_error(exc: OSError) -> str:
    """Short lower-case reason for an OS error, e.g. 'no space left on device'."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return reason[:1].lower() + reason[1:]
