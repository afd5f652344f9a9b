"""File writes that never leave half a file, and a lock for a load-modify-save of a shared file.

A regular file is replaced atomically: a reader sees the old file or the new one, never half of
either, and a write that fails (a full disk) leaves the old content. What is not a regular file
(`/dev/stdout`, a FIFO, a terminal, `/proc/self/fd/1`) is written in place: replacing it would
swap a device for a plain file. A symbolic link is followed, so the file it points to is replaced
and the link stays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

EDIT_LOCK_TIMEOUT = 30.0  # seconds to wait for another process's edit of the same file


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_in_place(path: Path, payload: bytes) -> bool:
    """Write *payload* into the non-regular file *path*; False when it turned out to be regular.

    O_NONBLOCK makes opening a FIFO without a reader fail (ENXIO) instead of hanging; the writes
    themselves block as usual.
    """
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since it was looked at
            return False
        os.set_blocking(fd, True)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        return True
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes, *, like: os.stat_result | None = None) -> None:
    """Write *data* to *path*: in place when it is not a regular file, else through a temp file in
    the same directory, fsync, then rename.

    The new file takes the mode and owner of *like* (default: the file being replaced), or 0o644
    for a new file; the directory entry is fsynced too, so the rename survives a crash.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        current: os.stat_result | None = path.stat()  # through any link
    except FileNotFoundError:
        current = None
    special = current is not None and not stat.S_ISREG(current.st_mode) and not stat.S_ISDIR(current.st_mode)
    if special and _write_in_place(path, payload):
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))  # replace what the link points to, keep the link
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    if like is None:
        with contextlib.suppress(FileNotFoundError):
            like = path.stat()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, (like.st_mode & 0o7777) if like else 0o644)
        if like is not None and (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.chown(tmp_name, like.st_uid, like.st_gid)
            except PermissionError:
                log.warning("could not keep the owner of %s (uid %d); the new file is owned by uid %d",
                            path, like.st_uid, os.geteuid())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(directory)


@contextlib.contextmanager
def edit_lock(path: Path, *, timeout: float = EDIT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive lock for a load-modify-save of *path*, so concurrent edits all survive.

    The lock is `flock` on the directory holding the file (links resolved), not on the file: each
    save replaces the file, and a lock on the old one would not exclude a process that opens the
    new one. Nothing is left behind; the kernel drops the lock when the process ends. Raises
    TimeoutError after *timeout* seconds, and OSError when the directory cannot be opened.
    """
    import fcntl

    directory = Path(os.path.realpath(path)).parent
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"another edit held the lock on {directory} for "
                                       f"{timeout:.0f} s") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
