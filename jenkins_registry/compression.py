"""Layer encoding for the daemonless push: parallel gzip with a fast deflate, in one streaming pass.

A layer is read once, in fixed blocks. The reading thread hashes the input (the layer's DiffID is
checked against the image config) and a pool of threads deflates the blocks independently, as pigz
does: each block ends with a sync flush, so the blocks concatenate into one valid gzip member whose
CRC and length the reader keeps. The compressed bytes are hashed as they are handed on, so the
blob digest is known when the stream ends, without a second pass and without a temporary file.

Deflate backend: ISA-L's igzip (`isal`, level 1) when importable, otherwise the standard library's
zlib (level 1). Measured on this project's 2-core benchmark machine, per core and 1 MiB blocks:
igzip ≈ 420 MB/s on text and ≈ 700 MB/s on random bytes; its level 0 is no faster on text and
compresses worse (0.79 against 0.57), level 2 is slower for 1 % (benchmarks/bench_daemonless.py
--compressors). So each block is either deflated at level 1 or, when a probe (three 8 KiB samples
deflated) does not shrink below 90 %, emitted as stored deflate blocks: valid gzip that costs a
copy instead of a deflate. What is already compressed (jars, zips, media, random bytes) then costs
almost what an uncompressed push costs, and a block that would save under a tenth of its size does
not spend more CPU than the bytes it saves cost the registry. The probe runs on the reading thread
in block order, so the choice depends only on the data and the output stays deterministic; after
a run of stored blocks a layer probes only every few blocks.

The two sha256 passes (the input for the DiffID, the output for the blob digest) run on a thread
per layer (`_Hashing`), in order, while the reading thread reads, probes and sends and the pool
deflates: hashlib, igzip and the socket send all release the GIL on large buffers, so one layer
keeps both cores busy.

Memory stays bounded whatever the number of layers pushed at once: one `Compressor` admits at
most two blocks per thread in flight across all its layers (`slots`), and a layer's hashing thread
is never more than a few blocks behind (`HASH_BACKLOG`), so memory grows with the deflate threads
(at most the CPUs) and `--jobs`' few blocks, never with a layer's size. The output is
deterministic for a given backend, level and block size.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from jenkins_registry.errors import InputFileError

if TYPE_CHECKING:
    from concurrent.futures import Future

log = logging.getLogger(__name__)

Encoding = Literal["none", "gzip", "zstd"]

BLOCK_SIZE = 1 << 20  # uncompressed bytes per deflate block and per read
_PROBE = 8 << 10  # bytes per probe sample; three samples (start, middle, end) per block
_STORE_RATIO = 0.9  # a probe that does not shrink below this stores the block
_STORED_RUN = 8  # after this many stored blocks in a row a layer probes only every
_STORED_STRIDE = 4  # _STORED_STRIDE-th block (bounded loss if compressible data follows)
_STORED_MAX = 0xFFFF  # largest stored deflate block
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
_SLOT_WAIT = 0.1  # seconds between looks at the cancel flag while waiting for a compressor slot
HASH_BACKLOG = 4  # blocks a layer's hashing thread may lag behind before the sender waits for it
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Cancelled(Exception):
    """Raised inside a layer stream when another part of the push failed and it must stop."""


class RawReader(Protocol):
    """What a layer stream reads from: `read(n)` returns up to n bytes, b"" at the end."""

    def read(self, size: int, /) -> bytes: ...


class _Backend:
    """One deflate implementation: raw-deflate compressors, decompressors and crc32."""

    def __init__(self, name: str, module: Any, level: int) -> None:
        self.name = name
        self.module = module
        self.level = level

    def compressobj(self) -> Any:
        return self.module.compressobj(self.level, self.module.DEFLATED, -15)

    def decompressobj(self) -> Any:
        return self.module.decompressobj(31)

    def crc32(self, data: bytes, value: int) -> int:
        return int(self.module.crc32(data, value))


def _load_backend(preferred: str | None = None) -> _Backend:
    if preferred in (None, "isal"):
        try:
            from isal import isal_zlib
        except ImportError:
            if preferred == "isal":
                raise
            log.debug("isal is not installed; using the standard library's zlib for gzip")
        else:
            return _Backend("isal", isal_zlib, 1)
    if preferred not in (None, "zlib"):
        raise ValueError(f"unknown deflate backend {preferred!r}")
    return _Backend("zlib", zlib, 1)


_default: _Backend | None = None


def _default_backend() -> _Backend:
    """The preferred backend, loaded on first use: a re-push that uploads nothing never needs it."""
    global _default
    if _default is None:
        _default = _load_backend()
    return _default


def backend_name() -> str:
    """The deflate implementation in use: "isal" or "zlib"."""
    return _default_backend().name


def detect_encoding(head: bytes) -> Encoding:
    """The compression of a stored layer, from its first bytes (tar, gzip or zstd)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


# What one block becomes: pieces to send in order. Stored blocks are views of the input between
# their 5-byte headers, so incompressible data is never copied here (registry_blobs gathers the
# small headers into the chunk framing).
Pieces = tuple[bytes | memoryview, ...]
_STORED_HEADER = struct.pack("<BHH", 0, _STORED_MAX, 0)  # a full, non-final stored block


def _stored_blocks(data: bytes, final: bool) -> Pieces:
    """`data` as stored (uncompressed) deflate blocks; the stream is byte-aligned before and after."""
    parts: list[bytes | memoryview] = []
    view = memoryview(data)
    size = len(data)
    for start in range(0, size, _STORED_MAX):
        length = min(_STORED_MAX, size - start)
        last = final and start + length >= size
        parts.append(_STORED_HEADER if length == _STORED_MAX and not last else
                     struct.pack("<BHH", 1 if last else 0, length, 0xFFFF ^ length))
        parts.append(view[start : start + length])
    if final and not data:
        parts.append(struct.pack("<BHH", 1, 0, 0xFFFF))
    return tuple(parts)


class Compressor:
    """A pool of threads deflating independent blocks; shared by all layers of one push."""

    def __init__(self, threads: int, *, backend: str | None = None) -> None:
        self._backend = _default_backend() if backend is None else _load_backend(backend)
        from concurrent.futures import ThreadPoolExecutor

        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="jr-deflate")
        # blocks in flight across every layer stream: enough to keep each thread busy
        self.slots = 2 * self.threads
        self._free = threading.Semaphore(self.slots)
        self._count_lock = threading.Lock()
        self.in_flight = 0  # blocks submitted and not yet taken or given back
        self.peak_in_flight = 0  # the most at once (the memory bound's witness in tests)
        self.stored_blocks = 0  # blocks the layer streams chose to store (for tests and profiles)
        self.deflated_blocks = 0

    @property
    def backend(self) -> str:
        return self._backend.name

    def worth_deflating(self, data: bytes) -> bool:
        """Whether deflate shrinks *data* below `_STORE_RATIO`, judged on three samples."""
        if len(data) <= 3 * _PROBE:
            return True  # small blocks (a layer's end, a tiny layer): deflate costs nothing
        module = self._backend.module
        probe = self._backend.compressobj()
        middle = len(data) // 2
        out = 0
        for start in (0, middle - _PROBE // 2, len(data) - _PROBE):
            out += len(probe.compress(data[start : start + _PROBE]))
        out += len(probe.flush(module.Z_SYNC_FLUSH))
        return out < 3 * _PROBE * _STORE_RATIO

    def compress_block(self, data: bytes, final: bool, store: bool | None = None) -> Pieces:
        """Raw deflate of one block, ending byte-aligned (sync flush), or final when `final`;
        stored blocks when *store* (None: when `worth_deflating` says no)."""
        if store is None:
            store = not self.worth_deflating(data)
        if store:
            return _stored_blocks(data, final)
        backend = self._backend
        comp = backend.compressobj()
        flush_mode = backend.module.Z_FINISH if final else backend.module.Z_SYNC_FLUSH
        return (comp.compress(data), comp.flush(flush_mode))

    def reserve(self, timeout: float | None = None) -> bool:
        """Take a slot for one block (False: none free within *timeout*; 0 does not wait).

        A stream that holds slots must never wait for another: two layers each waiting for the
        other's slots would stop for good. So it waits only while it holds none."""
        if timeout == 0:
            return self._free.acquire(blocking=False)
        return self._free.acquire(timeout=timeout)

    def submit(self, data: bytes, final: bool, store: bool | None = None) -> Future[Pieces]:
        """Deflate (or store) *data* in the pool; the caller holds a slot (`reserve`), given back
        by `take` or `give_back`."""
        with self._count_lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return self._pool.submit(self.compress_block, data, final, store)

    def take(self, future: Future[Pieces]) -> Pieces:
        """The deflated block of *future*, and its slot freed."""
        try:
            return future.result()
        finally:
            self._release()

    def give_back(self, future: Future[Pieces]) -> None:
        """Drop a block not taken (the stream stopped), and free its slot."""
        future.cancel()
        self._release()

    def count(self, stored: bool) -> None:
        with self._count_lock:
            if stored:
                self.stored_blocks += 1
            else:
                self.deflated_blocks += 1

    def _release(self) -> None:
        with self._count_lock:
            self.in_flight -= 1
        self._free.release()

    def crc32(self, data: bytes, value: int) -> int:
        return self._backend.crc32(data, value)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Compressor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_block(raw: RawReader, size: int) -> bytes:
    """Read exactly `size` bytes unless the input ends first."""
    data = raw.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    have = len(data)
    while have < size:
        more = raw.read(size - have)
        if not more:
            break
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def _digest(h: Any) -> str:
    return f"sha256:{h.hexdigest()}"


class _Hashing:
    """The sha256 of a layer's input and of its output, updated in order on a thread of its own.

    The thread is a daemon: a push that is abandoned (interrupted) does not wait for it, and
    `close` lets it end after the piece it is hashing. `wait` bounds how far it may lag behind
    (each piece queued is a block kept in memory)."""

    def __init__(self, output_start: bytes, what: str) -> None:
        self.sha_in = hashlib.sha256()
        self.sha_out = hashlib.sha256(output_start)
        self._queue: deque[tuple[Any, Pieces]] = deque()
        self._cond = threading.Condition()
        self._queued = 0
        self._hashed = 0
        self.peak_backlog = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"jr-hash {what[-40:]}", daemon=True)
        self._thread.start()

    def add_input(self, data: bytes) -> None:
        self._add(self.sha_in, (data,))

    def add_output(self, pieces: Pieces) -> None:
        self._add(self.sha_out, pieces)

    def _add(self, target: Any, data: Pieces) -> None:
        with self._cond:
            self._queue.append((target, data))
            self._queued += 1
            self.peak_backlog = max(self.peak_backlog, self._queued - self._hashed)
            self._cond.notify_all()

    def wait(self, backlog: int, check_cancel: Callable[[], None]) -> None:
        """Until at most *backlog* pieces are left to hash (0: all hashed)."""
        with self._cond:
            while self._queued - self._hashed > backlog:
                self._cond.wait(_SLOT_WAIT)
                check_cancel()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                target, pieces = self._queue.popleft()
            for piece in pieces:
                target.update(piece)  # outside the lock: hashlib releases the GIL here
            with self._cond:
                self._hashed += 1
                self._cond.notify_all()


class _StoreChoice:
    """Per layer, in block order: store a block, or deflate it? A probe per block, except after a
    run of stored blocks, when only every few blocks are probed (and the others stored)."""

    def __init__(self, compressor: Compressor) -> None:
        self._compressor = compressor
        self._stored_run = 0

    def store(self, block: bytes) -> bool:
        if self._stored_run >= _STORED_RUN and self._stored_run % _STORED_STRIDE:
            store = True
        else:
            store = not self._compressor.worth_deflating(block)
        self._stored_run = self._stored_run + 1 if store else 0
        self._compressor.count(store)
        return store


class LayerStream:
    """One pass over a stored layer, yielding the bytes to upload and computing every digest.

    `stored` is how the layer is stored in the source, `target` how it goes over the wire:
      none → gzip   compressed here (parallel blocks);
      none → none   passed through;
      gzip → gzip   passed through, decompressed on the side to check the DiffID;
      gzip → none   decompressed;
      zstd → zstd   passed through (its DiffID cannot be checked without a zstd decoder).
    The DiffID (and the stored digest, when the source names one) is checked before the last piece
    is yielded, so a corrupt layer never completes an upload. After iteration, `digest` and `size`
    describe the bytes yielded and `uncompressed_size` the layer's tar.
    """

    def __init__(
        self,
        raw: RawReader,
        *,
        stored: Encoding,
        target: Encoding,
        diff_id: str,
        what: str,
        stored_digest: str | None = None,
        compressor: Compressor | None = None,
        cancel: threading.Event | None = None,
        on_progress: Callable[[int], None] | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        if (stored, target) not in (("none", "gzip"), ("none", "none"), ("gzip", "gzip"),
                                    ("gzip", "none"), ("zstd", "zstd")):
            raise ValueError(f"cannot turn a {stored} layer into {target}")
        if target == "gzip" and stored == "none" and compressor is None:
            raise ValueError("a compressor is needed to gzip a layer")
        self._raw = raw
        self._stored = stored
        self._target = target
        self._diff_id = diff_id
        self._stored_digest = stored_digest
        self._what = what
        self._compressor = compressor
        self._cancel = cancel
        self._on_progress = on_progress
        self._block_size = block_size
        self._digest: str | None = None
        self._size = 0
        self._uncompressed_size = 0
        self._started = False
        self.peak_hash_backlog = 0  # the most pieces its hashing thread lagged behind (gzip)

    @property
    def done(self) -> bool:
        return self._digest is not None

    @property
    def digest(self) -> str:
        if self._digest is None:
            raise RuntimeError("the layer stream has not been read to the end")
        return self._digest

    @property
    def size(self) -> int:
        return self._size

    @property
    def uncompressed_size(self) -> int:
        return self._uncompressed_size

    def __iter__(self) -> Iterator[bytes | memoryview]:
        if self._started:
            raise RuntimeError("a layer stream can be read only once")
        self._started = True
        if self._stored == "none" and self._target == "gzip":
            return self._gzip()
        if self._stored == "gzip" and self._target == "none":
            return self._gunzip()
        return self._passthrough()

    # -- helpers ---------------------------------------------------------------------------------

    def _check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled(self._what)

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self._uncompressed_size)

    def _verify(self, actual: str, expected: str | None, what_hash: str) -> None:
        if expected is not None and actual != expected:
            raise InputFileError(
                f"{self._what} is corrupt: its {what_hash} is {actual}, but the image says {expected}.",
                hint="Re-create the archive or layout (e.g. `docker save -o FILE IMAGE`) and push "
                "again; nothing was tagged.",
            )

    # -- the four paths --------------------------------------------------------------------------

    def _gzip(self) -> Iterator[bytes | memoryview]:
        comp = self._compressor
        assert comp is not None
        hashing = _Hashing(_GZIP_HEADER, self._what)
        choice = _StoreChoice(comp)
        crc = 0
        pending: deque[Future[Pieces]] = deque()
        self._size = len(_GZIP_HEADER)
        yield _GZIP_HEADER

        def emit() -> Pieces:
            out = comp.take(pending.popleft())
            # the hashing thread may lag a few blocks behind, no more (memory)
            hashing.wait(HASH_BACKLOG, self._check_cancel)
            hashing.add_output(out)
            self._size += sum(len(piece) for piece in out)
            self._progress()
            return out

        try:
            eof = False
            while not eof:
                self._check_cancel()
                block = _read_block(self._raw, self._block_size)
                eof = len(block) < self._block_size
                if block:
                    hashing.add_input(block)
                    crc = comp.crc32(block, crc)
                    self._uncompressed_size += len(block)
                store = choice.store(block) if block else False
                # a slot for this block: hand on earlier blocks while holding some, else wait
                while not comp.reserve(0):
                    if pending:
                        yield from emit()
                    else:
                        while not comp.reserve(_SLOT_WAIT):
                            self._check_cancel()
                        break
                pending.append(comp.submit(block, eof, store))
            # at the end keep the last block back for the checks
            while len(pending) > 1:
                yield from emit()
            last = comp.take(pending.popleft())
            hashing.wait(0, self._check_cancel)
            diff_id = _digest(hashing.sha_in)
            self._verify(diff_id, self._diff_id, "DiffID (sha256 of the layer tar)")
            self._verify(diff_id, self._stored_digest, "sha256")
            tail = (*last, struct.pack("<II", crc, self._uncompressed_size & 0xFFFFFFFF))
            hashing.add_output(tail)
            hashing.wait(0, self._check_cancel)
            self._size += sum(len(piece) for piece in tail)
            self._digest = _digest(hashing.sha_out)
            self.peak_hash_backlog = hashing.peak_backlog
            self._progress()
            yield from tail
        finally:
            hashing.close()
            for future in pending:
                comp.give_back(future)

    def _passthrough(self) -> Iterator[bytes]:
        sha_stored = hashlib.sha256()
        sha_tar = hashlib.sha256() if self._stored == "gzip" else None
        inflater = _Inflater(self._what) if sha_tar is not None else None
        held: bytes | None = None
        while True:
            self._check_cancel()
            block = _read_block(self._raw, self._block_size)
            if not block:
                break
            sha_stored.update(block)
            if inflater is not None and sha_tar is not None:
                for piece in inflater.feed(block, self._block_size):
                    sha_tar.update(piece)
                    self._uncompressed_size += len(piece)
            else:
                self._uncompressed_size += len(block)
            if held is not None:
                self._size += len(held)
                self._progress()
                yield held
            held = block
        stored_digest = _digest(sha_stored)
        if self._stored == "none":
            self._verify(stored_digest, self._diff_id, "DiffID (sha256 of the layer tar)")
        elif inflater is not None and sha_tar is not None:
            inflater.finish()
            self._verify(_digest(sha_tar), self._diff_id, "DiffID (sha256 of the uncompressed tar)")
        else:
            log.info("%s is zstd-compressed: its DiffID is not checked (only its digest)", self._what)
        self._verify(stored_digest, self._stored_digest, "digest")
        self._digest = stored_digest
        if held is not None:
            self._size += len(held)
            self._progress()
            yield held

    def _gunzip(self) -> Iterator[bytes]:
        sha_stored = hashlib.sha256()
        sha_tar = hashlib.sha256()
        inflater = _Inflater(self._what)
        held: bytes | None = None
        while True:
            self._check_cancel()
            block = _read_block(self._raw, self._block_size)
            if not block:
                break
            sha_stored.update(block)
            for piece in inflater.feed(block, self._block_size):
                sha_tar.update(piece)
                self._uncompressed_size += len(piece)
                if held is not None:
                    self._size += len(held)
                    self._progress()
                    yield held
                held = piece
        inflater.finish()
        self._verify(_digest(sha_stored), self._stored_digest, "digest")
        self._verify(_digest(sha_tar), self._diff_id, "DiffID (sha256 of the uncompressed tar)")
        self._digest = _digest(sha_tar)
        if held is not None:
            self._size += len(held)
            self._progress()
            yield held


class _Inflater:
    """Incremental gzip decoding (several members allowed), with bounded output per call."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._obj = _default_backend().decompressobj()

    def _corrupt(self, exc: Exception | None) -> InputFileError:
        detail = f" ({type(exc).__name__})" if exc is not None else ""
        return InputFileError(
            f"{self._what} is not valid gzip data{detail}.",
            hint="Re-create the archive or layout and push again; nothing was tagged.",
        )

    def feed(self, data: bytes, max_out: int) -> Iterator[bytes]:
        pending = data
        while pending:
            try:
                out = self._obj.decompress(pending, max_out)
            except Exception as exc:  # zlib.error / isal IsalError
                raise self._corrupt(exc) from exc
            if out:
                yield bytes(out)
            if self._obj.unconsumed_tail:
                pending = self._obj.unconsumed_tail
            elif self._obj.eof and self._obj.unused_data:
                pending = self._obj.unused_data
                self._obj = _default_backend().decompressobj()
            else:
                pending = b""

    def finish(self) -> None:
        if not self._obj.eof:
            raise self._corrupt(None)
