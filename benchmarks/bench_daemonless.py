"""Benchmark: daemonless `jr-push --from-archive` against `skopeo copy`, per kind of content.

One command, one run, one machine:

    .venv/bin/python benchmarks/bench_daemonless.py [--rounds 3] [--scale 1.0] [--rss-gb 1]

For each image of benchmarks/image_content.py (random-heavy, jar-like, text-heavy; ~600 MB each at
scale 1.0, written straight as `docker save` archives), each round pushes, in an order rotated per
round, each push to a fresh registry (storage on /dev/shm, so no tool can skip or mount blobs and
writeback of one push cannot stall the next), dirty pages flushed and the archive in the page
cache before each:
  * `jr-push --from-archive` (the CLI as a subprocess; gzip, the default);
  * `jr-push --from-archive --compression none` — the floor: the same bytes uploaded uncompressed;
  * `skopeo copy docker-archive:… docker://…` (gzip; credentials in a temporary --authfile);
  * after the gzip push, the same `jr-push` again (the unchanged re-push, a whole process);
  * the registry alone: the largest blob that gzip push stored, sent again to a fresh registry in
    one monolithic PUT from a client that does nothing else (file in the page cache). The
    registry takes one blob on one goroutine, so no pusher can finish below this.
It prints a table per content kind: medians of wall time, user+sys CPU of the pusher and of the
registry, peak RSS, the lower bound (CPU of both) / cores, and the ratios jr/skopeo and gzip/none
against the targets. `--rss-gb 1` pushes a synthetic 1 GB archive once for the memory bound;
`--compressors` compares deflate backends; `--docker` also times `docker push` (slow).
`--content-dir DIR` keeps the archives between runs (they are deterministic).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import image_content  # noqa: E402

from tests.support import services  # noqa: E402

PYTHON = sys.executable
JR_PUSH = str(Path(PYTHON).with_name("jr-push"))
MB = 1024 * 1024
CORES = os.cpu_count() or 1


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user+sys CPU seconds of the pushing process (dockerd for docker push)
    registry_cpu: float  # CPU seconds the registry spent meanwhile
    rss_mb: int = 0  # peak RSS of the pushing process


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_content(kind: str, path: Path, scale: float) -> None:
    """Write an archive in a child process: a push's peak RSS (ru_maxrss of wait4) starts at this
    process's high-water mark, inherited through fork and exec, so this process must stay small."""
    subprocess.run([PYTHON, str(ROOT / "benchmarks" / "image_content.py"), kind, str(path),
                    "--scale", str(scale)], check=True, stdout=subprocess.DEVNULL)


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


def jr_push(archive: Path, registry: services.Registry, repo: str, compression: str = "gzip") -> Run:
    return run_measured([JR_PUSH, "--from-archive", str(archive), "--registry", registry.host,
                         "--name", repo, "--tag", "v1", "--compression", compression, "--quiet"],
                        jr_env(registry), registry.process.pid)[0]


def skopeo_push(archive: Path, registry: services.Registry, repo: str, workdir: Path) -> Run:
    # the credentials go in a private authfile, never in argv
    auth = workdir / "auth.json"
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"auths": {registry.host: {"auth": token}}}, handle)
    env = dict(os.environ, HOME=str(workdir), XDG_RUNTIME_DIR=str(workdir))
    try:
        return run_measured(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--authfile",
                             str(auth), f"docker-archive:{archive}",
                             f"docker://{registry.host}/{repo}:v1"], env, registry.process.pid)[0]
    finally:
        auth.unlink()


def docker_push(client: object, engine_pid: int | None, image: str, registry: services.Registry,
                repo: str) -> Run:
    target = f"{registry.host}/{repo}"
    client.images.get(image).tag(target, tag="v1")  # type: ignore[attr-defined]
    os.sync()
    engine_before = proc_cpu(engine_pid) if engine_pid else 0.0
    registry_before = proc_cpu(registry.process.pid)
    start = time.perf_counter()
    for event in client.api.push(target, tag="v1", stream=True, decode=True,  # type: ignore[attr-defined]
                                 auth_config={"username": registry.username,
                                              "password": registry.password}):
        if "errorDetail" in event:
            raise RuntimeError(f"docker push failed: {event['errorDetail'].get('message')}")
    elapsed = time.perf_counter() - start
    run = Run(wall=elapsed, cpu=(proc_cpu(engine_pid) - engine_before) if engine_pid else float("nan"),
              registry_cpu=proc_cpu(registry.process.pid) - registry_before)
    client.images.remove(f"{target}:v1")  # type: ignore[attr-defined]
    return run


def largest_blob(registry: services.Registry, keep: Path) -> Path:
    """Copy the largest blob in *registry*'s storage to *keep* (the bytes it received for the
    image's largest layer)."""
    blobs = (registry.root / "data" / "docker" / "registry" / "v2" / "blobs").rglob("data")
    shutil.copyfile(max(blobs, key=lambda path: path.stat().st_size), keep)
    return keep


def registry_alone(blob: Path, registry: services.Registry) -> Run:
    """One monolithic upload (POST, then PUT ?digest= with Content-Length) of *blob*: the
    registry's own time to receive, hash and store it."""
    import hashlib
    import http.client

    with open(blob, "rb") as handle:
        digest = "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    host, port = registry.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    try:
        connection.request("POST", "/v2/bench/floor/blobs/uploads/", headers=auth)
        answer = connection.getresponse()
        answer.read()
        location = answer.getheader("Location") or ""
        url = f"{location}{'&' if '?' in location else '?'}digest={digest}"
        os.sync()
        warm(blob)
        registry_before = proc_cpu(registry.process.pid)
        start = time.perf_counter()
        with open(blob, "rb") as handle:
            connection.request("PUT", url, body=handle, headers={
                **auth, "Content-Length": str(blob.stat().st_size),
                "Content-Type": "application/octet-stream"})
            answer = connection.getresponse()
            answer.read()
        elapsed = time.perf_counter() - start
    finally:
        connection.close()
    if answer.status != 201:
        raise RuntimeError(f"the registry answered the upload with HTTP {answer.status}")
    return Run(wall=elapsed, cpu=0.0, registry_cpu=proc_cpu(registry.process.pid) - registry_before)


# -- compressor micro-benchmark ------------------------------------------------------------------


def compressors() -> None:
    import random
    import zlib

    rng = random.Random(3)
    samples = {"text": b"".join(image_content.text_chunks(rng, 32 * MB)), "random": rng.randbytes(32 * MB)}
    modules: list[tuple[str, object, int]] = [("zlib level 1", zlib, 1), ("zlib level 6", zlib, 6)]
    with contextlib.suppress(ImportError):
        from isal import isal_zlib

        modules += [("isal igzip level 0", isal_zlib, 0), ("isal igzip level 1", isal_zlib, 1),
                    ("isal igzip level 2", isal_zlib, 2)]
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
def fresh_registry(tmpfs: bool) -> Iterator[services.Registry]:
    """A fresh registry; its storage on /dev/shm when *tmpfs*, so that disk writeback left by
    one run (every push writes hundreds of MB) cannot stall the next."""
    saved = tempfile.tempdir
    if tmpfs:
        tempfile.tempdir = "/dev/shm"
    try:
        with services.registry() as registry:
            tempfile.tempdir = saved
            yield registry
    finally:
        tempfile.tempdir = saved


def warm(archive: Path) -> None:
    """Read the archive, so that every tool finds it in the page cache."""
    with open(archive, "rb") as handle:
        while handle.read(8 * MB):
            pass


TOOLS = ("jr gzip", "jr none", "skopeo")


def report(kind: str, runs: dict[str, list[Run]], archive_mb: float) -> dict[str, float]:
    print(f"\n{kind} ({archive_mb:.0f} MB archive), medians of {len(runs['jr gzip'])} rounds; "
          f"CPU = user+sys seconds; bound = (CPU of pusher + registry) / {CORES} cores")
    print(f"  {'':28s} {'wall s':>7s} {'pusher CPU':>10s} {'registry CPU':>12s} {'bound s':>8s} "
          f"{'peak RSS':>9s}")
    labels = {"jr gzip": "jr-push (gzip)", "jr none": "jr-push --compression none",
              "skopeo": "skopeo copy (gzip)", "docker": "docker push (engine CPU)",
              "repush": "jr-push re-push, unchanged", "alone": "registry alone, largest blob"}
    for name, label in labels.items():
        if runs.get(name):
            r = runs[name]
            cpu, reg = _median(r, "cpu"), _median(r, "registry_cpu")
            rss = f"{max(x.rss_mb for x in r)} MB" if name not in ("docker", "alone") else "-"
            print(f"  {label:28s} {_median(r, 'wall'):7.3f} {cpu:10.2f} {reg:12.2f} "
                  f"{(cpu + reg) / CORES:8.2f} {rss:>9s}")
    gz, none, sk = (_median(runs[t], "wall") for t in TOOLS)
    target_none = 1.6 if kind == "text-heavy" else 1.3
    ratios = {"jr/skopeo": gz / sk, "gzip/none": gz / none, "repush": _median(runs["repush"], "wall")}
    print(f"  ratio jr gzip / skopeo     {ratios['jr/skopeo']:6.2f}   (target <= 0.50"
          f"{', stretch 0.35' if kind == 'text-heavy' else ''})")
    print(f"  ratio jr gzip / jr none    {ratios['gzip/none']:6.2f}   (target <= {target_none})")
    print(f"  unchanged re-push          {ratios['repush']:6.3f} s (target <= 0.2 s)")
    if runs.get("alone"):
        alone = _median(runs["alone"], "wall")
        ratios["alone/skopeo"] = alone / sk
        print(f"  registry alone / skopeo    {ratios['alone/skopeo']:6.2f}   (the largest blob "
              f"only; no push of this image can go below it)")
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="image size factor (1.0 ≈ 600 MB)")
    parser.add_argument("--kinds", nargs="+", default=list(image_content.KINDS),
                        choices=image_content.KINDS)
    parser.add_argument("--rss-gb", type=float, default=1.0, help="synthetic archive size (0 = skip)")
    parser.add_argument("--compressors", action="store_true", help="also compare deflate backends")
    parser.add_argument("--docker", action="store_true", help="also time docker push (slow)")
    parser.add_argument("--disk", action="store_true",
                        help="keep the registry's storage on disk instead of /dev/shm")
    parser.add_argument("--content-dir", type=Path, metavar="DIR",
                        help="write the archives here and reuse them in later runs")
    args = parser.parse_args(argv)

    if shutil.which("skopeo") is None:
        print("skopeo is not installed (apt-get install skopeo)", file=sys.stderr)
        return 2
    tmpfs = not args.disk and Path("/dev/shm").is_dir()
    work = Path(tempfile.mkdtemp(prefix="jr-bench-"))
    content = args.content_dir or work
    content.mkdir(parents=True, exist_ok=True)
    print(f"{CORES} cores, load average {os.getloadavg()[0]:.2f}; registry storage on "
          f"{'/dev/shm' if tmpfs else 'disk'}", flush=True)
    summary: dict[str, dict[str, float]] = {}
    try:
        archives: dict[str, Path] = {}
        for kind in args.kinds:
            path = content / f"{kind}-{args.scale:g}.tar"
            if not path.exists():
                print(f"writing the {kind} archive (scale {args.scale:g}) ...", flush=True)
                write_content(kind, path, args.scale)
            archives[kind] = path
        subprocess.run([PYTHON, "-c", "import jenkins_registry.cli.push, jenkins_registry."
                        "daemonless_push, jenkins_registry.compression"],
                       env=python_env(), check=True)  # compile once
        engine_cm = services.docker_engine() if args.docker else contextlib.nullcontext()
        with engine_cm as engine:
            client = None
            if engine is not None:
                import docker

                client = docker.DockerClient(base_url=engine.host, timeout=600)
                for path in archives.values():
                    with open(path, "rb") as handle:
                        client.images.load(handle.read())
            all_runs = {kind: {name: [] for name in (*TOOLS, "repush", "alone", "docker")}
                        for kind in args.kinds}  # type: dict[str, dict[str, list[Run]]]
            for round_index in range(args.rounds):
                for kind, archive in archives.items():
                    runs = all_runs[kind]
                    order = list(TOOLS)
                    order = order[round_index % 3:] + order[:round_index % 3]
                    line = []
                    blob: Path | None = None
                    for tool in order:
                        with fresh_registry(tmpfs) as registry:
                            warm(archive)
                            repo = f"bench/{tool.replace(' ', '-')}-{round_index}"
                            if tool == "skopeo":
                                runs[tool].append(skopeo_push(archive, registry, repo, work))
                            else:
                                runs[tool].append(jr_push(archive, registry, repo, tool.split()[1]))
                            line.append(f"{tool} {runs[tool][-1].wall:.2f} s")
                            if tool == "jr gzip":
                                runs["repush"].append(jr_push(archive, registry, repo))
                                line.append(f"re-push {runs['repush'][-1].wall:.3f} s")
                                blob = largest_blob(registry, work / "largest-blob")
                    if blob is not None:
                        with fresh_registry(tmpfs) as registry:
                            runs["alone"].append(registry_alone(blob, registry))
                        blob.unlink()
                        line.append(f"registry alone {runs['alone'][-1].wall:.2f} s")
                    if client is not None and engine is not None:
                        with fresh_registry(tmpfs) as registry:
                            runs["docker"].append(docker_push(client, engine.pid,
                                                              f"jr-bench/{kind}:1", registry,
                                                              f"bench/docker-{round_index}"))
                            line.append(f"docker push {runs['docker'][-1].wall:.2f} s")
                    print(f"round {round_index + 1} {kind}: {', '.join(line)}", flush=True)
            if client is not None:
                client.close()
        for kind, archive in archives.items():
            summary[kind] = report(kind, all_runs[kind], archive.stat().st_size / 1e6)
        rss_big = None
        if args.rss_gb > 0:
            big = work / "big.tar"
            write_content("synthetic", big, args.rss_gb)
            with fresh_registry(tmpfs) as registry:
                warm(big)
                big_run = jr_push(big, registry, "bench/big")
            rss_big = big_run.rss_mb
            print(f"\nsynthetic {big.stat().st_size / 1e9:.2f} GB archive (random and text layers): "
                  f"jr-push {big_run.wall:.2f} s, peak RSS {rss_big} MB (target < 100 MB)", flush=True)
        print("\nsummary (targets: jr/skopeo <= 0.5; gzip/none <= 1.3, text-heavy <= 1.6; "
              "re-push <= 0.2 s)")
        print(f"  {'content':14s} {'jr/skopeo':>9s} {'gzip/none':>9s} {'re-push s':>9s} "
              f"{'registry alone/skopeo':>21s}")
        for kind, ratios in summary.items():
            print(f"  {kind:14s} {ratios['jr/skopeo']:9.2f} {ratios['gzip/none']:9.2f} "
                  f"{ratios['repush']:9.3f} {ratios.get('alone/skopeo', float('nan')):21.2f}")
        if rss_big is not None:
            print(f"  peak RSS, {args.rss_gb:g} GB image: {rss_big} MB")
        print(f"  load average at the end {os.getloadavg()[0]:.2f}")
        if args.compressors:
            compressors()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
