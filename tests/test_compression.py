"""compression: parallel gzip in one pass, digests, DiffID checks, bounded memory, fallback."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import threading
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jenkins_registry import compression
from jenkins_registry.compression import Cancelled, Compressor, LayerStream, detect_encoding
from jenkins_registry.errors import InputFileError


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def text_bytes(size: int) -> bytes:
    words = [b"alpha", b"beta", b"gamma", b"delta", b"layer", b"registry", b"jenkins", b"\n"]
    out = bytearray()
    state = 12345
    while len(out) < size:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out += words[state % len(words)] + b" "
    return bytes(out[:size])


def gzip_layer(data: bytes, compressor: Compressor, block_size: int = compression.BLOCK_SIZE) -> LayerStream:
    return LayerStream(io.BytesIO(data), stored="none", target="gzip", diff_id=sha(data), what="layer 1",
                       compressor=compressor, block_size=block_size)


@pytest.fixture(params=["isal", "zlib"])
def compressor(request: pytest.FixtureRequest) -> object:
    with Compressor(2, backend=request.param) as comp:
        yield comp


@pytest.mark.parametrize("size", [0, 1, 4096, compression.BLOCK_SIZE, compression.BLOCK_SIZE + 7,
                                  3 * compression.BLOCK_SIZE + 12345])
def test_gzip_round_trip_and_digests(compressor: Compressor, size: int) -> None:
    data = (os.urandom(size // 2) + text_bytes(size))[:size]
    stream = gzip_layer(data, compressor)
    out = b"".join(stream)
    assert gzip.decompress(out) == data
    assert stream.digest == sha(out)
    assert stream.size == len(out)
    assert stream.uncompressed_size == size


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000), block=st.integers(min_value=1, max_value=700))
def test_gzip_any_block_size_is_valid_gzip(data: bytes, block: int) -> None:
    with Compressor(2) as comp:
        out = b"".join(gzip_layer(data, comp, block_size=block))
    assert zlib.decompress(out, 31) == data


def test_output_is_deterministic() -> None:
    data = text_bytes(3 * compression.BLOCK_SIZE)
    with Compressor(1) as one, Compressor(4) as four:
        first, second = gzip_layer(data, one), gzip_layer(data, four)
        assert b"".join(first) == b"".join(second)
    assert first.digest == second.digest


def test_incompressible_blocks_are_stored_not_deflated() -> None:
    data = os.urandom(2 * compression.BLOCK_SIZE)
    with Compressor(2) as comp:
        stream = gzip_layer(data, comp)
        out = b"".join(stream)
    assert gzip.decompress(out) == data
    # stored blocks: 5 bytes per 64 KiB of framing, plus the gzip header and trailer
    assert len(out) <= len(data) + 5 * (len(data) // 0xFFFF + 2) + 18 + 10


def test_text_compresses() -> None:
    data = text_bytes(2 * compression.BLOCK_SIZE)
    with Compressor(2) as comp:
        out = b"".join(gzip_layer(data, comp))
    assert len(out) < len(data) // 2


def test_wrong_diff_id_fails_before_the_last_piece() -> None:
    data = text_bytes(2 * compression.BLOCK_SIZE + 100)
    pieces: list[bytes] = []
    with Compressor(2) as comp:
        stream = LayerStream(io.BytesIO(data), stored="none", target="gzip", diff_id=sha(b"other"),
                             what="layer 2 (abc/layer.tar) of image.tar", compressor=comp)
        with pytest.raises(InputFileError) as info:
            pieces.extend(stream)
    assert "layer 2 (abc/layer.tar) of image.tar is corrupt" in info.value.message
    assert sha(data) in info.value.message and sha(b"other") in info.value.message
    assert "nothing was tagged" in info.value.hint
    with pytest.raises((EOFError, OSError, zlib.error)):
        gzip.decompress(b"".join(pieces))  # the upload never received a complete stream
    assert not stream.done


@pytest.mark.parametrize("target", ["none", "gzip"])
def test_uncompressed_passthrough_and_gunzip(target: str) -> None:
    data = text_bytes(compression.BLOCK_SIZE + 999)
    packed = gzip.compress(data)
    if target == "none":
        stream = LayerStream(io.BytesIO(data), stored="none", target="none", diff_id=sha(data), what="l")
        assert b"".join(stream) == data and stream.digest == sha(data)
        unpacked = LayerStream(io.BytesIO(packed), stored="gzip", target="none", diff_id=sha(data), what="l",
                               stored_digest=sha(packed))
        assert b"".join(unpacked) == data and unpacked.digest == sha(data)
    else:
        stream = LayerStream(io.BytesIO(packed), stored="gzip", target="gzip", diff_id=sha(data), what="l",
                             stored_digest=sha(packed))
        assert b"".join(stream) == packed
        assert stream.digest == sha(packed) and stream.uncompressed_size == len(data)


def test_multi_member_gzip_is_checked_as_one_tar() -> None:
    data = text_bytes(300_000)
    packed = gzip.compress(data[:100_000]) + gzip.compress(data[100_000:])
    stream = LayerStream(io.BytesIO(packed), stored="gzip", target="gzip", diff_id=sha(data), what="l")
    assert b"".join(stream) == packed


@pytest.mark.parametrize("damage", ["diff_id", "truncated", "garbage"])
def test_corrupt_gzip_layer_is_refused(damage: str) -> None:
    data = text_bytes(200_000)
    packed = gzip.compress(data)
    diff_id = sha(data)
    if damage == "diff_id":
        diff_id = sha(b"x")
    elif damage == "truncated":
        packed = packed[: len(packed) // 2]
    else:
        packed = packed[:20] + b"\x00" * 200 + packed[220:]
    stream = LayerStream(io.BytesIO(packed), stored="gzip", target="gzip", diff_id=diff_id, what="layer 1")
    with pytest.raises(InputFileError, match="layer 1"):
        b"".join(stream)


def test_stored_digest_mismatch_is_refused() -> None:
    data = text_bytes(10_000)
    stream = LayerStream(io.BytesIO(data), stored="none", target="none", diff_id=sha(data), what="l",
                         stored_digest=sha(b"named otherwise"))
    with pytest.raises(InputFileError, match="corrupt"):
        b"".join(stream)


def test_zstd_passthrough_checks_only_its_digest() -> None:
    blob = compression.ZSTD_MAGIC + os.urandom(5000)
    stream = LayerStream(io.BytesIO(blob), stored="zstd", target="zstd", diff_id=sha(b"unknown"),
                         what="l", stored_digest=sha(blob))
    assert b"".join(stream) == blob
    with pytest.raises(ValueError, match="cannot turn"):
        LayerStream(io.BytesIO(blob), stored="zstd", target="none", diff_id="x", what="l")


def test_cancel_stops_the_stream() -> None:
    cancel = threading.Event()
    data = text_bytes(4 * compression.BLOCK_SIZE)
    with Compressor(2) as comp:
        stream = LayerStream(io.BytesIO(data), stored="none", target="gzip", diff_id=sha(data), what="l",
                             compressor=comp, cancel=cancel)
        iterator = iter(stream)
        next(iterator)
        cancel.set()
        with pytest.raises(Cancelled):
            list(iterator)


def test_progress_reports_uncompressed_bytes() -> None:
    seen: list[int] = []
    data = text_bytes(3 * compression.BLOCK_SIZE)
    with Compressor(2) as comp:
        stream = LayerStream(io.BytesIO(data), stored="none", target="gzip", diff_id=sha(data), what="l",
                             compressor=comp, on_progress=seen.append)
        b"".join(stream)
    assert seen == sorted(seen) and seen[-1] == len(data)


class _Endless:
    """A reader producing *size* bytes of text lazily, as a big tar member would."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.sha = hashlib.sha256()
        self.chunk = text_bytes(1 << 20)

    def read(self, size: int) -> bytes:
        size = min(size, self.left, len(self.chunk))
        self.left -= size
        data = self.chunk[:size]
        self.sha.update(data)
        return data


def test_memory_stays_bounded_for_a_large_layer() -> None:
    size = 96 * 1024 * 1024
    expected = hashlib.sha256()
    probe = _Endless(size)
    while block := probe.read(1 << 20):
        expected.update(block)
    reader = _Endless(size)
    tracemalloc.start()
    try:
        with Compressor(4) as comp:
            stream = LayerStream(reader, stored="none", target="gzip",
                                 diff_id=f"sha256:{expected.hexdigest()}", what="l", compressor=comp)
            total = sum(len(piece) for piece in stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == stream.size and stream.uncompressed_size == size
    assert peak < 24 * 1024 * 1024, peak  # a window of blocks, never the layer


def test_detect_encoding() -> None:
    assert detect_encoding(b"\x1f\x8b\x08\x00") == "gzip"
    assert detect_encoding(compression.ZSTD_MAGIC) == "zstd"
    assert detect_encoding(b"ustar") == "none"
    assert detect_encoding(b"") == "none"


def test_isal_is_the_default_backend_and_zlib_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compression.backend_name() == "isal"
    monkeypatch.setitem(sys.modules, "isal", None)  # as if isal were not installed
    fallback = compression._load_backend()
    assert fallback.name == "zlib"
    with pytest.raises(ImportError):
        compression._load_backend("isal")
    data = text_bytes(100_000)
    with Compressor(2, backend="zlib") as comp:
        assert comp.backend == "zlib"
        assert gzip.decompress(b"".join(gzip_layer(data, comp))) == data


# -- content-aware compression: stored blocks for what does not shrink --------------------------


def jar_like(size: int, seed: int) -> bytes:
    """A real zip of ZIP_DEFLATED entries (class-file-like and text), as a jar is: to gzip it
    looks like random bytes."""
    import random
    import zipfile

    rng = random.Random(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as jar:
        index = 0
        while buffer.tell() < size:
            index += 1
            body = text_bytes(rng.randint(2000, 30000))[rng.randint(0, 999):] + rng.randbytes(4000)
            jar.writestr(f"org/example/C{index}.class", body)
    return buffer.getvalue()


def kinds_of_blocks(comp: Compressor) -> tuple[int, int]:
    return comp.stored_blocks, comp.deflated_blocks


@pytest.mark.parametrize("content", ["random", "jar", "mixed"])
def test_stored_blocks_are_one_valid_gzip_member(compressor: Compressor, content: str) -> None:
    block = compression.BLOCK_SIZE
    if content == "random":
        data = os.urandom(3 * block + 4321)
    elif content == "jar":
        data = jar_like(3 * block, seed=1)
    else:  # switches between stored and deflated blocks, and within blocks
        data = (os.urandom(block) + text_bytes(block) + jar_like(block, seed=2)[:block]
                + text_bytes(block // 2) + os.urandom(block // 2) + text_bytes(block + 99))
    stream = gzip_layer(data, compressor)
    out = b"".join(stream)
    # one member: zlib stops at the end of the first member and reports what follows
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(out) == data
    assert inflater.eof and inflater.unused_data == b""
    assert gzip.decompress(out) == data
    assert stream.digest == sha(out) and stream.size == len(out)
    stored, deflated = kinds_of_blocks(compressor)
    if content == "mixed":
        assert stored >= 1 and deflated >= 3
        assert len(out) < len(data) * 0.9  # the text blocks were deflated
    else:
        assert stored >= 3
        assert len(out) <= len(data) + 5 * (len(data) // 0xFFFF + 4) + 18 + 10


def test_blocks_that_barely_shrink_are_stored() -> None:
    # 95 % random: deflate would save a few percent for a full deflate pass
    import random

    rng = random.Random(4)
    data = b"".join(rng.randbytes(19 * 1024) + text_bytes(1024)
                    for _ in range(2 * 52))[: 2 * compression.BLOCK_SIZE]
    with Compressor(2) as comp:
        out = b"".join(gzip_layer(data, comp))
        assert comp.stored_blocks == 2 and comp.deflated_blocks == 0
    assert gzip.decompress(out) == data


def test_compressible_data_after_a_run_of_stored_blocks_is_deflated_again() -> None:
    block = compression.BLOCK_SIZE
    run = compression._STORED_RUN + 3
    data = os.urandom(run * block) + text_bytes(8 * block)
    with Compressor(2) as comp:
        out = b"".join(gzip_layer(data, comp))
        stored, deflated = kinds_of_blocks(comp)
    assert gzip.decompress(out) == data
    # at most a stride of text blocks is stored before a probe sees the text again
    assert stored <= run + compression._STORED_STRIDE - 1
    assert deflated >= 8 - (compression._STORED_STRIDE - 1)


def test_the_per_layer_choice_keeps_the_diff_id_check() -> None:
    block = compression.BLOCK_SIZE
    data = os.urandom((compression._STORED_RUN + 6) * block + 777)  # probes skipped at the end
    pieces: list[bytes | memoryview] = []
    with Compressor(2) as comp:
        stream = LayerStream(io.BytesIO(data), stored="none", target="gzip",
                             diff_id=sha(data[:-1] + b"\x00"), what="layer 3", compressor=comp)
        with pytest.raises(InputFileError, match="layer 3 is corrupt"):
            pieces.extend(stream)
        assert comp.stored_blocks > compression._STORED_RUN
    assert not stream.done
    with pytest.raises((EOFError, OSError, zlib.error)):
        gzip.decompress(b"".join(pieces))  # the last piece (and the gzip trailer) was held back
    with Compressor(2) as comp:
        good = gzip_layer(data, comp)
        assert gzip.decompress(b"".join(good)) == data
    assert good.done


def test_the_choice_is_deterministic_whatever_the_threads() -> None:
    block = compression.BLOCK_SIZE
    data = (os.urandom(12 * block) + text_bytes(3 * block)) * 2
    outputs = set()
    for threads in (1, 2, 5):
        with Compressor(threads) as comp:
            outputs.add(b"".join(gzip_layer(data, comp)))
    assert len(outputs) == 1


class _SlowReader:
    """Random bytes produced lazily, with the sha256 of what was read."""

    def __init__(self, size: int, seed: int) -> None:
        import random

        self.rng = random.Random(seed)
        self.left = size

    def read(self, size: int) -> bytes:
        size = min(size, self.left)
        self.left -= size
        return self.rng.randbytes(size)


def _expected_digest(size: int, seed: int) -> str:
    reader, digest = _SlowReader(size, seed), hashlib.sha256()
    while block := reader.read(1 << 20):
        digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def test_blocks_in_flight_stay_bounded_across_parallel_layers() -> None:
    """Three layers at once through one compressor, consumed slowly: the blocks submitted and
    not yet taken never exceed the slots, and no hashing thread lags more than its bound."""
    size = 24 * compression.BLOCK_SIZE + 5
    with Compressor(2) as comp:
        streams = [LayerStream(_SlowReader(size, seed), stored="none", target="gzip",
                               diff_id=_expected_digest(size, seed), what=f"l{seed}", compressor=comp)
                   for seed in range(3)]
        totals: list[int] = []
        errors: list[BaseException] = []

        def consume(stream: LayerStream) -> None:
            try:
                totals.append(sum(len(piece) for piece in stream))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=consume, args=(s,)) for s in streams]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors and len(totals) == 3
        assert 0 < comp.peak_in_flight <= comp.slots == 4
        assert comp.in_flight == 0
        for stream in streams:
            assert stream.done
            assert stream.peak_hash_backlog <= compression.HASH_BACKLOG + comp.slots + 2
