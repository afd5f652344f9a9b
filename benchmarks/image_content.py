"""Benchmark images that look like real ones, written straight to `docker save` archives.

Three kinds, each about 600 MB at scale 1.0 (sizes are scaled, the file counts are not):

* ``random-heavy`` — what jars, zips, pre-compressed assets and media look like to gzip: two 200 MB
  layers of random bytes, one 200 MB text layer and a layer of 2,000 small files (text, a quarter
  half random), 637 MB in all.
* ``jar-like`` — a Java application image: a 60 MB runtime layer of class-file-like data stored
  uncompressed (as a JDK's ``lib/modules``), a layer of ~200 dependency jars and a layer with the
  application's jar and its config. The jars are real zip files (``zipfile``, ``ZIP_DEFLATED``)
  whose entries are class-file-like (constant-pool names, bytecode) and text resources.
* ``text-heavy`` — the image bench_daemonless.py always used: 200 MB random, 200 MB text, 2,000
  small files (100 MB) and 100 MB of binary-like records (half random, half structured), mostly
  compressible.

The archive is the classic `docker save` layout (``manifest.json``, a config named by its digest,
``<id>/layer.tar``), which `docker load`, skopeo's ``docker-archive:`` and ``jr-push
--from-archive`` all read; its content is deterministic for a kind and scale. `synthetic_archive`
writes the mixed 1 GB archive of the memory check.

    python benchmarks/image_content.py KIND ARCHIVE [--scale 1.0]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
KINDS = ("random-heavy", "jar-like", "text-heavy")


# -- content generators ---------------------------------------------------------------------------


_VOCABULARY: list[str] = []


def _vocabulary() -> list[str]:
    if not _VOCABULARY:
        rng = random.Random(5)
        _VOCABULARY.extend("".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                   for _ in range(rng.randint(2, 11))) for _ in range(20000))
        _VOCABULARY.extend(["the", "and", "of", "to", "in", "is", "for", "on", "with", "as"] * 200)
    return _VOCABULARY


def text_chunks(rng: random.Random, size: int) -> Iterator[bytes]:
    """Text-like bytes: words from a fixed vocabulary, lines of varying length (gzip ≈ 0.57)."""
    vocabulary = _vocabulary()
    produced = 0
    while produced < size:
        words = rng.choices(vocabulary, k=min(170000, (size - produced) // 5 + 16))
        chunk = " ".join(words).replace(" q", "\nq").encode()[: min(MB, size - produced)]
        produced += len(chunk)
        yield chunk


def random_chunks(rng: random.Random, size: int) -> Iterator[bytes]:
    for offset in range(0, size, MB):
        yield rng.randbytes(min(MB, size - offset))


def binary_chunks(rng: random.Random, size: int) -> Iterator[bytes]:
    """Binary-like records: a random half, a structured half (zeros, counters, repeated tables)."""
    produced = 0
    counter = 0
    while produced < size:
        parts = []
        for _ in range(256):
            counter += 1
            parts.append(rng.randbytes(2048))
            parts.append(counter.to_bytes(8, "little") * 64 + bytes(1024 + rng.randint(0, 512)))
        chunk = b"".join(parts)[: min(MB, size - produced)]
        produced += len(chunk)
        yield chunk


_PACKAGES = ["java/lang", "java/util", "java/io", "org/apache/commons", "com/fasterxml/jackson",
             "org/springframework/core", "io/netty/buffer", "org/slf4j", "com/google/common"]


class ClassPool:
    """Class-file-like bytes: a constant pool of type and member names, then bytecode (random
    bytes). Deflates to about half, as real class files do."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
                 for _ in range(3000)]
        self.names = [f"{rng.choice(_PACKAGES)}/{w.capitalize()}" for w in words]
        self.members = [w + rng.choice(["", "Value", "Name", "Impl", "Factory", "Handler"]) for w in words]

    def _make_text(self, size: int) -> bytes:
        rng = self.rng
        out = bytearray()
        while len(out) < size:
            name = rng.choice(self.names)
            out += b"\x01" + len(name).to_bytes(2, "big") + name.encode()
            member = rng.choice(self.members)
            descriptor = f"(L{rng.choice(self.names)};I)V"
            out += b"\x01" + len(member).to_bytes(2, "big") + member.encode()
            out += b"\x01" + len(descriptor).to_bytes(2, "big") + descriptor.encode()
            out += b"\x0a" + rng.randbytes(4)
        return bytes(out)

    def class_file(self, size: int) -> bytes:
        """A constant pool (a slice of a shared one, at a random place) and bytecode."""
        if not hasattr(self, "_constants"):
            self._constants = self._make_text(4 * MB)
        rng = self.rng
        names = int(size * 0.6)
        start = rng.randrange(0, len(self._constants) - names)
        return (b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + self._constants[start:start + names]
                + rng.randbytes(max(0, size - names - 8)))


def jar_bytes(pool: ClassPool, rng: random.Random, size: int) -> bytes:
    """A real jar (zip, ZIP_DEFLATED entries) of about *size* bytes: class files, a manifest and
    a few text resources."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: bench\n")
        index = 0
        while buffer.tell() < size:
            index += 1
            if index % 20 == 0:
                text = b"".join(text_chunks(rng, rng.randint(2000, 20000)))
                jar.writestr(f"META-INF/resources/r{index}.properties", text)
            else:
                jar.writestr(f"{rng.choice(pool.names)}{index}.class",
                             pool.class_file(rng.randint(1500, 40000)))
    return buffer.getvalue()


# -- layers ---------------------------------------------------------------------------------------


class _GeneratedFile(io.RawIOBase):
    """A read-only file over a generator of chunks (tarfile copies from it without a temp file)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


FileSpec = tuple[str, int, Callable[[], Iterator[bytes]]]  # path in the layer, size, its chunks


def _write_layer(path: Path, files: Sequence[FileSpec]) -> str:
    """A layer tar of *files*; returns its DiffID."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, size, chunks in files:
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o644
            tar.addfile(info, io.BufferedReader(_GeneratedFile(chunks()), MB))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MB):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _one(data: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter((data,))


def _small_files(rng: random.Random, count: int, total: int, prefix: str) -> list[FileSpec]:
    """*count* files of *total* bytes: text slices, every fourth half random."""
    text = b"".join(text_chunks(rng, 8 * MB))
    per_file = max(64, total // count)
    files: list[FileSpec] = []
    for index in range(count):
        start = rng.randrange(0, len(text) - per_file)
        body = (text[start:start + per_file // 2] + rng.randbytes(per_file - per_file // 2)
                if index % 4 == 0 else text[start:start + per_file])
        files.append((f"{prefix}/d{index % 40:02d}/file-{index:04d}.dat", len(body), _one(body)))
    return files


def _stream(kind: Callable[[random.Random, int], Iterator[bytes]], seed: int,
            size: int) -> Callable[[], Iterator[bytes]]:
    return lambda: kind(random.Random(seed), size)


def layers_of(kind: str, scale: float) -> list[list[FileSpec]]:
    """The files of each layer of a *kind* image."""
    rng = random.Random(20240601)
    size = lambda mb: max(MB, int(mb * MB * scale))  # noqa: E731
    if kind == "random-heavy":
        return [
            [("data/random1.bin", size(200), _stream(random_chunks, 1, size(200)))],
            [("data/random2.bin", size(200), _stream(random_chunks, 2, size(200)))],
            [("data/text.txt", size(200), _stream(text_chunks, 3, size(200)))],
            _small_files(rng, 2000, size(37), "data/files"),
        ]
    if kind == "text-heavy":
        return [
            [("data/random.bin", size(200), _stream(random_chunks, 1, size(200)))],
            [("data/text.txt", size(200), _stream(text_chunks, 3, size(200)))],
            _small_files(rng, 2000, size(100), "data/files"),
            [("data/records.bin", size(100), _stream(binary_chunks, 4, size(100)))],
        ]
    if kind == "jar-like":
        pool = ClassPool(rng)
        runtime = [("opt/java/lib/modules", size(60),
                    lambda: (pool.class_file(min(MB, size(60) - o)) for o in range(0, size(60), MB)))]
        libs: list[FileSpec] = []
        produced, index = 0, 0
        while produced < size(440):
            jar = jar_bytes(pool, rng, rng.choice([200_000, 600_000, 1_500_000, 3_500_000, 6_000_000])
                            if scale >= 0.25 else rng.randint(50_000, 400_000))
            libs.append((f"app/lib/dep-{index:03d}.jar", len(jar), _one(jar)))
            produced += len(jar)
            index += 1
        app = jar_bytes(pool, rng, size(40))
        config = b"".join(text_chunks(rng, size(2)))
        return [runtime, libs, [("app/app.jar", len(app), _one(app)),
                                ("app/config/application.yml", len(config), _one(config))]]
    raise ValueError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")


# -- archives -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    path: Path
    kind: str
    tag: str  # the RepoTag recorded in it (docker load gives the image this name)
    layer_sizes: tuple[int, ...]


def write_archive(kind: str, path: Path, scale: float = 1.0) -> Archive:
    """A `docker save` archive (classic layout) of a *kind* image, FROM scratch."""
    return _archive(path, layers_of(kind, scale), f"jr-bench/{kind}:1", kind)


def _archive(path: Path, layers: Sequence[Sequence[FileSpec]], tag: str, kind: str) -> Archive:
    work = path.parent / f".{path.name}.layers"
    work.mkdir(parents=True, exist_ok=True)
    diff_ids: list[str] = []
    files: list[Path] = []
    try:
        for index, layer in enumerate(layers):
            layer_path = work / f"layer{index}.tar"
            diff_ids.append(_write_layer(layer_path, layer))
            files.append(layer_path)
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2024-06-01T00:00:00Z",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-06-01T00:00:00Z", "created_by": f"COPY layer {i}"}
                        for i in range(len(diff_ids))],
        }, sort_keys=True).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        names = [f"{d.split(':')[1]}/layer.tar" for d in diff_ids]
        manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
        with tarfile.open(path, "w") as tar:
            for name, data in ((config_name, config), ("manifest.json", manifest)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            for name, layer_path in zip(names, files, strict=True):
                tar.add(layer_path, arcname=name)
                layer_path.unlink()
        sizes = tuple(int(sum(size for _, size, _ in layer)) for layer in layers)
        return Archive(path, kind, tag, sizes)
    finally:
        for leftover in files:
            leftover.unlink(missing_ok=True)
        work.rmdir()


def synthetic_archive(path: Path, total: int) -> Archive:
    """The memory check's archive: 4 layers of one file each, random and text alternating."""
    quarter = total // 4
    layers = [[(f"data/part{i}.bin", quarter,
                _stream(text_chunks if i % 2 else random_chunks, 7 + i, quarter))] for i in range(4)]
    return _archive(path, layers, "synthetic/big:1", "synthetic")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=[*KINDS, "synthetic"])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (synthetic: GB)")
    args = parser.parse_args(argv)
    if args.kind == "synthetic":
        made = synthetic_archive(args.archive, int(args.scale * 1024 * MB))
    else:
        made = write_archive(args.kind, args.archive, args.scale)
    print(f"{made.path}: {made.kind}, layers {', '.join(f'{s / 1e6:.0f} MB' for s in made.layer_sizes)}, "
          f"archive {made.path.stat().st_size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
