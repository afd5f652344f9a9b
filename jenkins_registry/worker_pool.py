"""Worker threads a push can walk away from when it is interrupted.

An upload thread blocked in a socket send (a registry that stopped reading the body) or an engine
push stream waiting for the engine cannot be woken from another thread: closing the socket does
not end a blocked send on Linux, and the socket timeout is minutes. `ThreadPoolExecutor` threads
are joined when the pool is left and again at interpreter exit, so an interrupted push would wait
for them. `DetachedPool` runs its work on daemon threads instead: `abandon` cancels what has not
started and returns at once; what is running ends with the process (or with its socket timeout,
for a library caller that goes on).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ALL_COMPLETED, FIRST_EXCEPTION, Future, wait
from typing import Any, TypeVar

T = TypeVar("T")

# How often a waiting thread looks up from its wait: a signal the kernel hands to another thread
# is only acted on when the main thread runs again.
POLL_SECONDS = 0.25

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class DetachedPool:
    """At most *workers* calls at a time on daemon threads, started as work arrives."""

    def __init__(self, workers: int, name: str) -> None:
        self._max = max(1, workers)
        self._name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            self._queue.put((future, fn, args))
            if self._threads < self._max:  # one thread per call, up to the limit
                self._threads += 1
                threading.Thread(target=self._work, daemon=True,
                                 name=f"{self._name}-{self._threads}").start()
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to whoever waits on the future
                    future.set_exception(exc)
            del item, future, fn, args  # nothing of a finished call stays referenced here

    def close(self) -> None:
        """No more work: each thread ends once the queue is empty (nobody waits for them)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in range(self._threads):
                self._queue.put(None)

    def abandon(self, futures: Iterable[Future[Any]]) -> None:
        """Cancel *futures* that have not started, and close; running calls are left to end."""
        for future in futures:
            future.cancel()
        self.close()

    def __enter__(self) -> DetachedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_done(futures: Iterable[Future[Any]], *, first_failure: bool = False) -> None:
    """Wait until all *futures* are done (or, with *first_failure*, one has failed), looking up
    every POLL_SECONDS so that SIGTERM or Ctrl-C interrupts the wait (KeyboardInterrupt) even
    when the kernel handed the signal to another thread."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=POLL_SECONDS,
                             return_when=FIRST_EXCEPTION if first_failure else ALL_COMPLETED)
        if first_failure and any(not f.cancelled() and f.exception() is not None for f in done):
            return
