"""Where a gzip push's CPU goes in jr-push, per stage and per kind of content, without a network.

    .venv/bin/python benchmarks/profile_layer_stream.py [--mb 128] [--against OLD_compression.py]

First each stage of `compression.LayerStream` alone, on one core, over --mb MiB of random bytes
(what jars and media look like to gzip) and of text: sha256, crc32, the store-or-deflate probe,
the stored-block framing, the read copy, igzip level 1, and the copy http.client makes to frame a
chunk (which registry_blobs now avoids). Then whole LayerStreams (gzip, 2 deflate threads) over
random, jar-like and text content: CPU seconds, wall seconds, output ratio and the blocks stored or
deflated. `--against FILE` runs the same streams with another version of compression.py (e.g.
`git show HEAD~1:jenkins_registry/compression.py > /tmp/old.py`) for a before/after table in the
same run. CPU is the process's user+sys time (resource.getrusage), so it includes every thread.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import image_content  # noqa: E402

from jenkins_registry import compression  # noqa: E402

MB = 1 << 20


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage(label: str, work: Callable[[], object], size: int) -> None:
    before, start = cpu(), time.perf_counter()
    work()
    spent = cpu() - before
    print(f"  {label:44s} {spent:6.3f} s CPU  {spent / (size / MB) * 1000:6.2f} ms/MiB "
          f"(wall {time.perf_counter() - start:.3f} s)")


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("compression_other", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=128, help="MiB of each kind of content")
    parser.add_argument("--against", type=Path, help="another compression.py to compare with")
    args = parser.parse_args()
    size = args.mb * MB
    rng = random.Random(1)
    pool = image_content.ClassPool(rng)
    jars: list[bytes] = []
    while sum(map(len, jars)) < size:
        jars.append(image_content.jar_bytes(pool, rng, 3_000_000))
    content = {"random": rng.randbytes(size), "jar-like": b"".join(jars)[:size],
               "text": b"".join(image_content.text_chunks(rng, size))}

    data, text = content["random"], content["text"]
    blocks = range(0, size, MB)
    print(f"stages, one core, {args.mb} MiB, 1 MiB blocks:")
    with compression.Compressor(1) as comp:
        stage("sha256 (input or output)", lambda: hashlib.sha256(data).digest(), size)
        stage("crc32 (isal)", lambda: [comp.crc32(data[o:o + MB], 0) for o in blocks], size)
        stage("read copy (slicing 1 MiB blocks)", lambda: [data[o:o + MB] for o in blocks], size)
        stage("store-or-deflate probe (3 x 8 KiB)",
              lambda: [comp.worth_deflating(data[o:o + MB]) for o in blocks], size)
        stage("stored framing (views, no copy)",
              lambda: [compression._stored_blocks(data[o:o + MB], False) for o in blocks], size)
        stage("stored framing joined (one copy; before)",
              lambda: [b"".join(compression._stored_blocks(data[o:o + MB], False)) for o in blocks],
              size)
        stage("igzip level 1 on random bytes",
              lambda: [comp.compress_block(data[o:o + MB], False, False) for o in blocks], size)
        stage("igzip level 1 on text",
              lambda: [comp.compress_block(text[o:o + MB], False, False) for o in blocks], size)
        stage("http.client chunk framing (a copy)",
              lambda: [b"%X\r\n" % MB + data[o:o + MB] + b"\r\n" for o in blocks], size)

    versions: list[tuple[str, ModuleType]] = [("this", compression)]
    if args.against is not None:
        versions.insert(0, (args.against.name, load(args.against)))
    print(f"\nwhole layer streams (gzip, 2 deflate threads), {args.mb} MiB each, best of 2:")
    for name, layer in content.items():
        diff_id = f"sha256:{hashlib.sha256(layer).hexdigest()}"
        for label, module in versions:
            best: tuple[float, float, int] | None = None
            counts = ""
            for _ in range(2):
                with module.Compressor(2) as comp:
                    before, start = cpu(), time.perf_counter()
                    stream = module.LayerStream(io.BytesIO(layer), stored="none", target="gzip",
                                                diff_id=diff_id, what="layer", compressor=comp)
                    out = sum(len(piece) for piece in stream)
                    run = (cpu() - before, time.perf_counter() - start, out)
                    if hasattr(comp, "stored_blocks"):
                        counts = f"  stored {comp.stored_blocks}, deflated {comp.deflated_blocks}"
                best = run if best is None or run[0] < best[0] else best
            assert best is not None
            print(f"  {name:9s} {label:16s} CPU {best[0]:6.3f} s  wall {best[1]:6.3f} s  "
                  f"ratio {best[2] / len(layer):.3f}{counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
