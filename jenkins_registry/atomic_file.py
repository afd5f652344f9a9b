"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: str | bytes, *, like: os.stat_result | None = None) -> None:
    """Write *data* to *path* through a temp file in the same directory, fsync, then rename.

    The new file takes the mode and owner of *like* (default: the file being replaced), or 0o644
    for a new file; the directory entry is fsynced too, so the rename survives a crash.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    if like is None:
        with contextlib.suppress(FileNotFoundError):
            like = path.stat()
    payload = data.encode("utf-8") if isinstance(data, str) else data
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
