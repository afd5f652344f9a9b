"""Layer encoding for the daemonless push: parallel gzip with a fast deflate, in one streaming pass.

A layer is read once, in fixed blocks. The reading thread hashes the input (the layer's DiffID is
checked against the image config) and a pool of threads deflates the blocks independently, as pigz
does: each block ends with a sync flush, so the blocks concatenate into one valid gzip member whose
CRC and length the reader keeps. The compressed bytes are hashed as they are handed on, so the
blob digest is known when the stream ends, without a second pass and without a temporary file.

Deflate backend: ISA-L's igzip (`isal`, level 1) when importable, otherwise the standard library's
zlib (level 1). Measured on this project's 2-core benchmark machine, per core and 1 MiB blocks:
igzip ≈ 210 MB/s on text and ≈ 600 MB/s on random bytes; zlib-ng level 1 ≈ 90 / 50 MB/s; zlib
level 1 ≈ 48 / 28 MB/s (see benchmarks/bench_daemonless.py --compressors). Blocks that look
incompressible (a 64 KiB sample does not shrink) are emitted as stored deflate blocks, which are
valid gzip and cost a copy instead of a deflate.

Memory stays bounded whatever the number of layers pushed at once: one `Compressor` admits at
most two blocks per thread in flight across all its layers (`slots`), so memory grows with the
deflate threads (at most the CPUs), never with `--jobs` or a layer's size. The output is
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
_SAMPLE = 1 << 16  # bytes compressed to decide whether a block is worth deflating
_STORED_MAX = 0xFFFF  # largest stored deflate block
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
_SLOT_WAIT = 0.1  # seconds between looks at the cancel flag while waiting for a compressor slot
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


def _stored_blocks(data: bytes, final: bool) -> bytes:
    """`data` as stored (uncompressed) deflate blocks; the stream is byte-aligned before and after."""
    parts: list[bytes] = []
    view = memoryview(data)
    for start in range(0, len(data), _STORED_MAX):
        piece = view[start : start + _STORED_MAX]
        last = final and start + _STORED_MAX >= len(data)
        parts.append(struct.pack("<BHH", 1 if last else 0, len(piece), 0xFFFF ^ len(piece)))
        parts.append(bytes(piece))
    if final and not data:
        parts.append(struct.pack("<BHH", 1, 0, 0xFFFF))
    return b"".join(parts)


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

    @property
    def backend(self) -> str:
        return self._backend.name

    def compress_block(self, data: bytes, final: bool) -> bytes:
        """Raw deflate of one block, ending byte-aligned (sync flush), or final when `final`."""
        backend = self._backend
        if len(data) > 4 * _SAMPLE:
            probe = backend.compressobj()
            sample = probe.compress(data[:_SAMPLE]) + probe.flush(backend.module.Z_SYNC_FLUSH)
            if len(sample) >= _SAMPLE * 0.98:
                return _stored_blocks(data, final)
        comp = backend.compressobj()
        flush_mode = backend.module.Z_FINISH if final else backend.module.Z_SYNC_FLUSH
        return bytes(comp.compress(data) + comp.flush(flush_mode))

    def reserve(self, timeout: float | None = None) -> bool:
        """Take a slot for one block (False: none free within *timeout*; 0 does not wait).

        A stream that holds slots must never wait for another: two layers each waiting for the
        other's slots would stop for good. So it waits only while it holds none."""
        if timeout == 0:
            return self._free.acquire(blocking=False)
        return self._free.acquire(timeout=timeout)

    def submit(self, data: bytes, final: bool) -> Future[bytes]:
        """Deflate *data* in the pool; the caller holds a slot (`reserve`), given back by `take`
        or `give_back`."""
        return self._pool.submit(self.compress_block, data, final)

    def take(self, future: Future[bytes]) -> bytes:
        """The deflated block of *future*, and its slot freed."""
        try:
            return future.result()
        finally:
            self._free.release()

    def give_back(self, future: Future[bytes]) -> None:
        """Drop a block not taken (the stream stopped), and free its slot."""
        future.cancel()
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

    def __iter__(self) -> Iterator[bytes]:
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

    def _gzip(self) -> Iterator[bytes]:
        comp = self._compressor
        assert comp is not None
        sha_in = hashlib.sha256()
        sha_out = hashlib.sha256(_GZIP_HEADER)
        crc = 0
        pending: deque[Future[bytes]] = deque()
        self._size = len(_GZIP_HEADER)
        yield _GZIP_HEADER

        def emit() -> bytes:
            out = comp.take(pending.popleft())
            sha_out.update(out)
            self._size += len(out)
            self._progress()
            return out

        try:
            eof = False
            while not eof:
                self._check_cancel()
                block = _read_block(self._raw, self._block_size)
                eof = len(block) < self._block_size
                if block:
                    sha_in.update(block)
                    crc = comp.crc32(block, crc)
                    self._uncompressed_size += len(block)
                # a slot for this block: hand on earlier blocks while holding some, else wait
                while not comp.reserve(0):
                    if pending:
                        yield emit()
                    else:
                        while not comp.reserve(_SLOT_WAIT):
                            self._check_cancel()
                        break
                pending.append(comp.submit(block, eof))
            # at the end keep the last block back for the checks
            while len(pending) > 1:
                yield emit()
            last = comp.take(pending.popleft())
            self._verify(_digest(sha_in), self._diff_id, "DiffID (sha256 of the layer tar)")
            self._verify(_digest(sha_in), self._stored_digest, "sha256")
            tail = last + struct.pack("<II", crc, self._uncompressed_size & 0xFFFFFFFF)
            sha_out.update(tail)
            self._size += len(tail)
            self._digest = _digest(sha_out)
            self._progress()
            yield tail
        finally:
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
