"""Writing files so that a user never finds a partial one.

Every output of rain2avoid goes through :func:`write_bytes`: the bytes go to a
hidden temporary file next to the target, which is flushed to disk and renamed
over the target. The target is therefore either the old file or the complete
new one; a process killed mid-write leaves only the hidden temporary file,
which :func:`temporary_files` finds. Problems raise :class:`ImageWriteError`.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import List, Optional, Union

__all__ = ["ImageWriteError", "write_bytes", "temporary_files", "describe_os_error"]

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
    error removes it); remove them once no write to those paths is running.
    Each folder is listed once, however many paths it holds.
    """
    names: dict = {}
    for path in paths:
        target = Path(path)
        names.setdefault(target.parent, set()).add(_temporary_prefix(target))
    pattern = re.compile(r"\.(.*)\.[0-9a-f]{12}\.tmp")
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


def _temporary_prefix(target: Path) -> str:
    """What a temporary file of ``target`` is named after: its whole name (``photo.png``, so that
    ``photo.jpg``'s are not taken for it), cut to fit the 255-byte file-name limit."""
    return os.fsdecode(os.fsencode(target.name)[:200])


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a synced temporary file and a rename.

    On any failure the temporary file is removed and the target is untouched;
    OS errors become ImageWriteError.
    """
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(
            target, f"cannot create folder {folder}: {describe_os_error(exc)}", exc.errno
        ) from exc
    # Hidden, unique, and short enough for any file-name limit (temporary_files finds it).
    temporary = folder / f".{_temporary_prefix(target)}.{uuid.uuid4().hex[:12]}.tmp"
    created = False
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        descriptor = os.open(temporary, flags, 0o666)  # 0o666 & ~umask, like open()
        created = True
        with open(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        created = False
    except OSError as exc:
        raise ImageWriteError(target, describe_os_error(exc), exc.errno) from exc
    finally:
        if created:
            _remove_quietly(temporary)
    _sync_folder(folder)


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
