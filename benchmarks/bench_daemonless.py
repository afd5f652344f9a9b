"""Benchmark: daemonless `jr-push --from-archive` against `skopeo copy` and `docker push`.

One run on one machine: a ~600 MB image in 4 layers (random bytes, text-like bytes, 2,000 small
files, binary-like records) is built FROM scratch with COPY in a real dockerd and saved once with
`docker save`. Each round starts a fresh registry (so no tool can mount or skip blobs pushed in an
earlier round) and pushes, to fresh repository names:
  * `jr-push --from-archive` (the CLI, a subprocess; gzip);
  * `skopeo copy docker-archive:… docker://…` (credentials through a temporary --authfile);
  * `docker push` through the engine (SDK, auth_config);
  * `jr-push --from-archive` again to the same tag (the unchanged re-push), also measured
    in-process (the library call without interpreter start-up).
Prints medians of 3 rounds, the ratios against the targets (jr ≤ 0.5 × skopeo, ≤ 0.25 × docker push,
re-push ≤ 0.2 s) and peak RSS per process (from wait4). `--rss-gb 1` adds a synthetic 1 GB archive
pushed once to check the memory bound; `--compressors` measures the deflate backends.

Usage: .venv/bin/python benchmarks/bench_daemonless.py [--rounds 3] [--scale 1.0] [--rss-gb 1]
Uses JR_TEST_DOCKER_HOST when set (an existing engine), else starts a private dockerd.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import services  # noqa: E402

PYTHON = sys.executable
JR_PUSH = str(Path(PYTHON).with_name("jr-push"))
MB = 1024 * 1024


# -- image content --------------------------------------------------------------------------------


def _text_chunks(rng: random.Random, size: int) -> Iterator[bytes]:
    """Text-like bytes: words from a fixed vocabulary, lines of varying length."""
    vocabulary = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 11)))
                  for _ in range(20000)]
    vocabulary += ["the", "and", "of", "to", "in", "is", "for", "on", "with", "as"] * 200
    produced = 0
    while produced < size:
        words = rng.choices(vocabulary, k=170000)
        chunk = " ".join(words).replace(" q", "\nq").encode()[: min(MB, size - produced)]
        produced += len(chunk)
        yield chunk


def _binary_chunks(rng: random.Random, size: int) -> Iterator[bytes]:
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


def write_context(directory: Path, scale: float) -> None:
    rng = random.Random(20240601)
    sizes = {"random": int(200 * MB * scale), "text": int(200 * MB * scale),
             "binary": int(100 * MB * scale)}
    with open(directory / "random.bin", "wb") as out:
        for _ in range(sizes["random"] // MB):
            out.write(os.urandom(MB))
    with open(directory / "text.txt", "wb") as out:
        for chunk in _text_chunks(rng, sizes["text"]):
            out.write(chunk)
    with open(directory / "records.bin", "wb") as out:
        for chunk in _binary_chunks(rng, sizes["binary"]):
            out.write(chunk)
    files = directory / "files"
    files.mkdir()
    text = b"".join(_text_chunks(rng, 8 * MB))
    per_file = int(50 * 1024 * scale)
    for index in range(2000):
        start = rng.randrange(0, len(text) - per_file)
        body = text[start:start + per_file // 2] + rng.randbytes(per_file // 2) \
            if index % 4 == 0 else text[start:start + per_file]
        sub = files / f"d{index % 40:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"file-{index:04d}.dat").write_bytes(body)
    (directory / "Dockerfile").write_text(
        "FROM scratch\nCOPY random.bin /data/random.bin\nCOPY text.txt /data/text.txt\n"
        "COPY files /data/files\nCOPY records.bin /data/records.bin\n"
    )


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # CPU seconds of the pushing process (jr, skopeo) or of dockerd (docker push)
    registry_cpu: float  # CPU seconds the registry spent receiving
    rss_mb: int = 0  # peak RSS of the pushing process


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(argv: Sequence[str], env: dict[str, str], registry_pid: int) -> tuple[Run, str]:
    """Run a process after flushing dirty pages; its wall time, CPU, peak RSS and stderr tail."""
    os.sync()
    registry_before = proc_cpu(registry_pid)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{argv[0]} failed ({code}): {err.decode(errors='replace')[-800:]}")
    run = Run(wall=elapsed, cpu=usage.ru_utime + usage.ru_stime,
              registry_cpu=proc_cpu(registry_pid) - registry_before, rss_mb=usage.ru_maxrss // 1024)
    return run, err.decode(errors="replace")[-300:]


PYCACHE = Path(tempfile.gettempdir()) / "jr-bench-pycache"


def python_env() -> dict[str, str]:
    """Compiled bytecode, as an installed package has it (kept under a private prefix, so the
    source tree gets no .pyc files)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def jr_env(registry: services.Registry) -> dict[str, str]:
    env = python_env()
    env.update({"DOCKER_LOGIN_USERNAME": registry.username or "",
                "DOCKER_LOGIN_PASSWORD": registry.password or ""})
    return env


def jr_push(archive: Path, registry: services.Registry, repo: str, tag: str) -> Run:
    return run_measured([JR_PUSH, "--from-archive", str(archive), "--registry", registry.host,
                         "--name", repo, "--tag", tag, "--quiet"], jr_env(registry),
                        registry.process.pid)[0]


IN_PROCESS = """
import sys, time
import requests  # imported lazily by the library; not part of the push itself
from pathlib import Path
from jenkins_registry.secret_types import Secret, UsernamePassword
from jenkins_registry.daemonless_push import SourcePushOptions, push_source
from jenkins_registry.progress import NullProgress
from jenkins_registry.push_target import parse_request
import os
creds = UsernamePassword(username=os.environ["DOCKER_LOGIN_USERNAME"],
                         password=Secret(os.environ["DOCKER_LOGIN_PASSWORD"]), source="env")
start = time.perf_counter()
push_source(Path(sys.argv[1]), "archive", parse_request(sys.argv[2], sys.argv[3], [sys.argv[4]]), creds,
            NullProgress(), SourcePushOptions())
print(time.perf_counter() - start, file=sys.stderr)
"""


def jr_in_process(archive: Path, registry: services.Registry, repo: str, tag: str) -> float:
    _, err = run_measured([PYTHON, "-c", IN_PROCESS, str(archive), registry.host, repo, tag],
                          jr_env(registry), registry.process.pid)
    return float(err.strip().splitlines()[-1])


def skopeo_push(archive: Path, registry: services.Registry, repo: str, tag: str, workdir: Path) -> Run:
    auth = workdir / "auth.json"
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"auths": {registry.host: {"auth": token}}}, handle)
    env = dict(os.environ, HOME=str(workdir), XDG_RUNTIME_DIR=str(workdir))
    try:
        return run_measured(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--authfile",
                             str(auth), f"docker-archive:{archive}",
                             f"docker://{registry.host}/{repo}:{tag}"], env, registry.process.pid)[0]
    finally:
        auth.unlink()


def docker_push(client: object, engine_pid: int | None, image: str, registry: services.Registry,
                repo: str, tag: str) -> Run:
    target = f"{registry.host}/{repo}"
    client.images.get(image).tag(target, tag=tag)  # type: ignore[attr-defined]
    os.sync()
    engine_before = proc_cpu(engine_pid) if engine_pid else 0.0
    registry_before = proc_cpu(registry.process.pid)
    start = time.perf_counter()
    for event in client.api.push(target, tag=tag, stream=True, decode=True,  # type: ignore[attr-defined]
                                 auth_config={"username": registry.username,
                                              "password": registry.password}):
        if "errorDetail" in event:
            raise RuntimeError(f"docker push failed: {event['errorDetail'].get('message')}")
    elapsed = time.perf_counter() - start
    run = Run(wall=elapsed, cpu=(proc_cpu(engine_pid) - engine_before) if engine_pid else float("nan"),
              registry_cpu=proc_cpu(registry.process.pid) - registry_before)
    client.images.remove(f"{target}:{tag}")  # type: ignore[attr-defined]
    return run


# -- the synthetic 1 GB archive for the memory bound ---------------------------------------------


def synthetic_archive(path: Path, total: int) -> None:
    """A classic `docker save` archive with 4 layers (each a tar of one file) totalling *total*."""
    rng = random.Random(7)
    layer_files = []
    diff_ids = []
    work = path.parent / "synthetic"
    work.mkdir(exist_ok=True)
    for index in range(4):
        layer = work / f"layer{index}.tar"
        payload = work / "payload"
        with open(payload, "wb") as out:
            chunks = _text_chunks(rng, total // 4) if index % 2 else (
                os.urandom(min(MB, total // 4 - n)) for n in range(0, total // 4, MB))
            for chunk in chunks:
                out.write(chunk)
        with tarfile.open(layer, "w") as tar:
            tar.add(payload, arcname=f"data/part{index}.bin")
        payload.unlink()
        digest = hashlib.sha256()
        with open(layer, "rb") as handle:
            for block in iter(lambda: handle.read(MB), b""):
                digest.update(block)
        diff_ids.append(f"sha256:{digest.hexdigest()}")
        layer_files.append(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["synthetic/big:1"],
                            "Layers": [f"l{i}/layer.tar" for i in range(4)]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for index, layer in enumerate(layer_files):
            tar.add(layer, arcname=f"l{index}/layer.tar")
            layer.unlink()
    work.rmdir()


# -- compressor micro-benchmark ------------------------------------------------------------------


def compressors() -> None:
    import zlib

    rng = random.Random(3)
    samples = {"text": b"".join(_text_chunks(rng, 32 * MB)), "random": os.urandom(32 * MB)}
    modules: list[tuple[str, object, int]] = [("zlib level 1", zlib, 1), ("zlib level 6", zlib, 6)]
    with contextlib.suppress(ImportError):
        from isal import isal_zlib

        modules += [("isal igzip level 1", isal_zlib, 1), ("isal igzip level 2", isal_zlib, 2)]
    with contextlib.suppress(ImportError):
        from zlib_ng import zlib_ng

        modules += [("zlib-ng level 1", zlib_ng, 1)]
    print("\ndeflate backends, one core, 1 MiB blocks (MB/s, compressed/original):")
    for name, module, level in modules:
        row = []
        for kind, data in samples.items():
            start = time.perf_counter()
            out = 0
            for offset in range(0, len(data), MB):
                comp = module.compressobj(level, module.DEFLATED, -15)  # type: ignore[attr-defined]
                out += len(comp.compress(data[offset:offset + MB]) + comp.flush(2))
            elapsed = time.perf_counter() - start
            row.append(f"{kind} {len(data) / elapsed / 1e6:6.0f} MB/s {out / len(data):.3f}")
        print(f"  {name:20s} " + "   ".join(row))


# -- main -----------------------------------------------------------------------------------------


def _median(runs: Sequence[Run], field: str) -> float:
    return float(statistics.median(getattr(run, field) for run in runs))


@contextlib.contextmanager
def registry_on_tmpfs(enabled: bool) -> Iterator[services.Registry]:
    """A fresh registry; its storage on /dev/shm when *enabled*, so that disk writeback left by
    one run (every push writes hundreds of MB) cannot stall the next."""
    saved = tempfile.tempdir
    if enabled:
        tempfile.tempdir = "/dev/shm"
    try:
        with services.registry() as registry:
            tempfile.tempdir = saved
            yield registry
    finally:
        tempfile.tempdir = saved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="image size factor (1.0 ≈ 600 MB)")
    parser.add_argument("--rss-gb", type=float, default=1.0, help="synthetic archive size (0 = skip)")
    parser.add_argument("--compressors", action="store_true", help="also compare deflate backends")
    parser.add_argument("--skip-docker", action="store_true", help="do not time docker push")
    parser.add_argument("--disk", action="store_true",
                        help="keep the registry's storage on disk instead of /dev/shm")
    parser.add_argument("--keep-archive", type=Path, metavar="FILE",
                        help="also copy the docker save archive to FILE (for profiling)")
    args = parser.parse_args(argv)

    import docker

    if shutil.which("skopeo") is None:
        print("skopeo is not installed (apt-get install skopeo)", file=sys.stderr)
        return 2
    tmpfs = not args.disk and Path("/dev/shm").is_dir()
    work = Path(tempfile.mkdtemp(prefix="jr-bench-"))
    runs: dict[str, list[Run]] = {"jr": [], "skopeo": [], "docker": [], "repush": []}
    repush_lib: list[float] = []
    try:
        with services.docker_engine() as engine:
            client = docker.DockerClient(base_url=engine.host, timeout=600)
            context = work / "context"
            context.mkdir()
            print(f"writing the build context (scale {args.scale}) ...", flush=True)
            write_context(context, args.scale)
            print("building FROM scratch in dockerd ...", flush=True)
            image, _ = client.images.build(path=str(context), tag="jr-bench/app:1", rm=True)
            shutil.rmtree(context)
            archive = work / "app.tar"
            with open(archive, "wb") as out:
                for chunk in client.images.get("jr-bench/app:1").save(named=True):
                    out.write(chunk)
            if args.keep_archive:
                shutil.copyfile(archive, args.keep_archive)
            sizes = [layer["Size"] for layer in client.api.history("jr-bench/app:1") if layer["Size"]]
            print(f"image {image.id[:19]}: {len(image.attrs['RootFS']['Layers'])} layers "
                  f"({', '.join(f'{s / 1e6:.0f} MB' for s in sizes)}), archive "
                  f"{archive.stat().st_size / 1e6:.0f} MB; registry storage on "
                  f"{'/dev/shm' if tmpfs else 'disk'}", flush=True)
            subprocess.run([PYTHON, "-c", "import jenkins_registry.cli.push, jenkins_registry."
                            "daemonless_push, jenkins_registry.keyring_store, requests, keyring"],
                           env=python_env(), check=True)  # compile once
            for round_index in range(args.rounds):
                with registry_on_tmpfs(tmpfs) as registry:
                    with open(archive, "rb") as handle:  # warm the page cache equally for everyone
                        while handle.read(8 * MB):
                            pass
                    suffix = f"r{round_index}-{int(time.time())}"
                    runs["jr"].append(jr_push(archive, registry, f"bench/jr-{suffix}", "v1"))
                    runs["repush"].append(jr_push(archive, registry, f"bench/jr-{suffix}", "v1"))
                    repush_lib.append(jr_in_process(archive, registry, f"bench/jr-{suffix}", "v1"))
                    runs["skopeo"].append(skopeo_push(archive, registry, f"bench/skopeo-{suffix}", "v1",
                                                      work))
                    if not args.skip_docker:
                        runs["docker"].append(docker_push(client, engine.pid, "jr-bench/app:1", registry,
                                                          f"bench/docker-{suffix}", "v1"))
                    line = ", ".join(f"{name} {r[-1].wall:.2f} s" for name, r in runs.items() if r)
                    print(f"round {round_index + 1}: {line} (re-push library {repush_lib[-1]:.3f} s)",
                          flush=True)
            client.images.remove("jr-bench/app:1", force=True)
            client.close()
        rss_big = None
        if args.rss_gb > 0:
            big = work / "big.tar"
            synthetic_archive(big, int(args.rss_gb * 1024 * MB))
            with registry_on_tmpfs(tmpfs) as registry:
                big_run = jr_push(big, registry, "bench/big", "v1")
            rss_big = big_run.rss_mb
            print(f"synthetic {big.stat().st_size / 1e9:.2f} GB archive: jr-push {big_run.wall:.2f} s, "
                  f"peak RSS {rss_big} MB", flush=True)
        print(f"\nmedians of {args.rounds} rounds (gzip, first push to a fresh repository; CPU = "
              "seconds of the pushing process, dockerd for docker push, and of the registry):")
        labels = {"jr": "jr-push --from-archive", "skopeo": "skopeo copy", "docker": "docker push (engine)",
                  "repush": "jr-push re-push, unchanged"}
        for name, label in labels.items():
            if runs[name]:
                r = runs[name]
                rss = f"   peak RSS {max(x.rss_mb for x in r)} MB" if name != "docker" else ""
                print(f"  {label:27s} {_median(r, 'wall'):7.3f} s   CPU {_median(r, 'cpu'):6.2f} s + "
                      f"registry {_median(r, 'registry_cpu'):5.2f} s{rss}")
        print(f"  {'jr re-push, library call':27s} {statistics.median(repush_lib):7.3f} s   "
              "(without interpreter start-up)")
        jr, sk = _median(runs["jr"], "wall"), _median(runs["skopeo"], "wall")
        print("\nratios (target):")
        print(f"  jr / skopeo               {jr / sk:6.2f}   (<= 0.50)")
        if runs["docker"]:
            print(f"  jr / docker push          {jr / _median(runs['docker'], 'wall'):6.2f}   (<= 0.25)")
        print(f"  re-push                   {_median(runs['repush'], 'wall'):6.3f} s (<= 0.2 s; library "
              f"call {statistics.median(repush_lib):.3f} s)")
        if rss_big is not None:
            print(f"  peak RSS, {args.rss_gb:g} GB image   {rss_big:4d} MB   (< 200 MB)")
        if args.compressors:
            compressors()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
