"""One `jr-push --image` of a repository at a time on one Docker engine.

The engine pushes names, not images: a run tags `HOST:PORT/NAME:TAG`, pushes that name and gives
the name back at the end. Two builds on one agent pushing the same repository share those names
(`latest` at least): the second build's tag moves the first build's name before the first push
reads it, so build 1 could push build 2's image, see its tags resolve to different digests, or
leave a name behind. Holding an exclusive lock per (engine, registry repository) from the first
tag to the last give-back removes that race; builds of different repositories still run side by
side. The lock is `flock` on a file in /tmp (shared by every build on the agent whatever its
TMPDIR); the kernel releases it when the process ends, even on SIGKILL, so nothing goes stale.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from jenkins_registry.push_target import PushTarget

log = logging.getLogger(__name__)

LOCK_DIR = Path("/tmp")  # noqa: S108 - shared on purpose: every build on the agent must see it


def lock_path(engine: str, name: str, directory: Path = LOCK_DIR) -> Path:
    """The lock file of the repository *name* (`HOST:PORT/NAME`) on *engine*."""
    digest = hashlib.sha256(f"{engine}\n{name}".encode()).hexdigest()[:20]
    return directory / f"jr-push-{digest}.lock"


@contextlib.contextmanager
def exclusive_push(engine: str, target: PushTarget, directory: Path = LOCK_DIR) -> Iterator[None]:
    """Hold the lock of *target*'s repository on *engine* (its DOCKER_HOST) for the block.

    Waits as long as the other push takes (a Jenkins abort interrupts the wait like any other).
    Where no lock file can be made (a read-only /tmp), the push goes on unlocked, with a warning.
    """
    import fcntl

    name = target.name
    path = lock_path(engine, name, directory)
    try:
        # 0o666 under the umask: agents running builds as different users may share the engine.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            log.warning("cannot lock %s (%s); another push of it on this engine could interfere",
                        name, exc.strerror or type(exc).__name__)
            yield
            return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            log.info("waiting for another jr-push of %s on this engine to finish", name)
            started = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            log.info("waited %.1f s for the other push of %s", time.monotonic() - started, name)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
