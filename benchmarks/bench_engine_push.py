"""jr-push --image against the seed's hand-written shell step, per kind of content, in one run.

One command:

    .venv/bin/python benchmarks/bench_engine_push.py [--runs 3] [--scale 1.0] [--more]

The images are benchmarks/image_content.py's (random-heavy, jar-like, text-heavy; ~600 MB each at
scale 1.0), loaded into a private dockerd with `docker load` (so "docker build is already done").
Per kind and run, interleaved (the order alternates), each push to a fresh registry:
  (a) the first push: `jr-push --image` (route auto, which exports for a first push) against the
      seed's shell step — `docker login --password-stdin` into a throw-away DOCKER_CONFIG, then
      `docker push` — on the same engine and registry;
  (a, floor) the engine's export alone (`GET /images/{id}/get` read and dropped): the part of
      the export route that jr-push cannot shorten, since the engine stages the whole export
      before it sends its first byte; and the same export written to a file in TMPDIR, as the
      route keeps it (a retried layer upload reads it again);
  (b) on the text-heavy image, the unchanged re-push (5 per run) beside the floor of
      `python -c 'import docker'`, and the shell's re-push;
  with --more, on the text-heavy image also:
  (c) a first push with three tags; (a') `--via engine`;
  (d) a CI series (builds 2 and 3 add an 8 MB layer each), `--tag N --tag latest` each;
plus the start-up of `jr-push --help`. jr-push is the console script of a venv installed from the
wheel, as users run it. Prints medians, ratios and targets; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import image_content  # noqa: E402

from tests.support import services  # noqa: E402

SHELL_STEP = """
set -eu
export DOCKER_CONFIG="$(mktemp -d)"
trap 'rm -rf "$DOCKER_CONFIG"' EXIT
for t in $TAGS; do docker tag "$IMAGE" "$TARGET:$t"; done
printf '%s' "$DOCKER_LOGIN_PASSWORD" |
  docker login --username "$DOCKER_LOGIN_USERNAME" --password-stdin "$REGISTRY" >/dev/null
for t in $TAGS; do docker push -q "$TARGET:$t" >/dev/null; done
"""

# (b) is short and noisy: several re-pushes per run, each beside the floor every Python tool built
# on the docker SDK pays (the interpreter and `import docker`, which imports requests).
REPUSHES = 5
TEXT = "text-heavy"


def image_of(kind: str) -> str:
    return f"jr-bench/{kind}:1"


def build_series(client: Any, directory: Path) -> list[str]:
    """Builds 2 and 3 of (d): each adds an 8 MB layer on top of the build before."""
    series = [image_of(TEXT)]
    for number in (2, 3):
        step = directory / f"build{number}"
        step.mkdir()
        (step / "app.bin").write_bytes(os.urandom(8 << 20))
        (step / "Dockerfile").write_text(f"FROM {series[-1]}\nCOPY app.bin /app/build{number}.bin\n")
        tag = f"jr-bench/series:build{number}"
        client.images.build(path=str(step), tag=tag, rm=True)
        series.append(tag)
    return series


def install_as_users_do(workdir: Path) -> Path:
    """The `jr-push` console script of a venv with jenkins-registry installed from its wheel.

    Timed as users run it: `pip install` compiles the bytecode and writes the console script, and
    a non-editable install has no import hook for the source tree to load at every start. The
    dependencies come from this interpreter's site-packages (a path entry, not an install).
    """
    import sysconfig
    import venv

    wheels = workdir / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--wheel-dir", str(wheels), str(ROOT)], check=True, cwd=workdir)
    env_dir = workdir / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-index", "--no-deps", *map(str, wheels.glob("*.whl"))], check=True, cwd=workdir)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "jr-bench-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return env_dir / "bin" / "jr-push"


def timed(func: Callable[..., None], *args: object) -> float:
    # Write back what the previous push left dirty (the registry's and the engine's files), so that
    # no run pays for another's writeback.
    os.sync()
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def export_alone(client: Any, image: str, into: Path | None = None) -> None:
    """The engine's export read in 1 MiB pieces and dropped, or written to the file *into*
    (as the export route writes it to TMPDIR, so that a retried upload can read it again)."""
    with open(into, "wb") if into is not None else contextlib.nullcontext() as handle:
        for piece in client.api.get_image(image, chunk_size=1 << 20):
            if handle is not None:
                handle.write(piece)
    if into is not None:
        into.unlink()


def run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"failed: {command[:4]}…\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="image size factor (1.0 ≈ 600 MB)")
    parser.add_argument("--kinds", nargs="+", default=list(image_content.KINDS),
                        choices=image_content.KINDS)
    parser.add_argument("--more", action="store_true", help="also (c), (a') and (d) (slow)")
    parser.add_argument("--content-dir", type=Path, metavar="DIR",
                        help="write the archives here and reuse them in later runs")
    args = parser.parse_args()
    import docker

    install_dir = Path(tempfile.mkdtemp(prefix="jr-bench-install-"))
    jr_push = [str(install_as_users_do(install_dir))]
    results: dict[str, list[float]] = {}
    kinds = list(args.kinds)
    repush_kind = TEXT if TEXT in kinds else kinds[0]

    def record(name: str, seconds: float) -> None:
        results.setdefault(name, []).append(seconds)
        print(f"  {name}: {seconds:.2f} s", flush=True)

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    with services.docker_engine() as engine, tempfile.TemporaryDirectory() as ctx:
        client = docker.DockerClient(base_url=engine.host, timeout=900)
        content = args.content_dir or Path(ctx)
        content.mkdir(parents=True, exist_ok=True)
        for kind in kinds:
            path = content / f"{kind}-{args.scale:g}.tar"
            if not path.exists():
                print(f"writing the {kind} archive (scale {args.scale:g}) ...", flush=True)
                image_content.write_archive(kind, path, args.scale)
            with open(path, "rb") as handle:
                client.images.load(handle)
            print(f"loaded {image_of(kind)}: {client.images.get(image_of(kind)).attrs['Size'] / 1e6:.0f} MB",
                  flush=True)
        series = build_series(client, Path(ctx)) if args.more and TEXT in kinds else []
        base_env = {**os.environ, "DOCKER_HOST": engine.host}

        def registry_env(reg: services.Registry, image: str) -> dict[str, str]:
            return {**base_env, "IMAGE": image, "DOCKER_LOGIN_USERNAME": reg.username or "",
                    "DOCKER_LOGIN_PASSWORD": reg.password or "", "REGISTRY": reg.host}

        for run_index in range(args.runs):
            print(f"run {run_index + 1}/{args.runs}", flush=True)
            for kind in kinds:
                record(f"a {kind} engine export alone", timed(export_alone, client, image_of(kind)))
                record(f"a {kind} engine export to TMPDIR", timed(
                    export_alone, client, image_of(kind),
                    Path(tempfile.gettempdir()) / "jr-bench-export.tar"))
                for tool in (("jr", "shell"), ("shell", "jr"))[run_index % 2]:
                    with services.registry() as reg:
                        env = registry_env(reg, image_of(kind))
                        jr_command = [*jr_push, "-q", "--image", image_of(kind), "--registry", reg.host,
                                      "--name", "app1", "--tag", "v1"]
                        shell_env = {**env, "TARGET": f"{reg.host}/app1", "TAGS": "v1"}
                        if tool == "jr":
                            record(f"a {kind} jr-push first push", timed(run, jr_command, env))
                        else:
                            record(f"a {kind} shell first push", timed(run, ["sh", "-c", SHELL_STEP],
                                                                       shell_env))
                        if kind != repush_kind:
                            continue
                        for _ in range(REPUSHES):
                            if tool == "jr":
                                record("b jr-push re-push", timed(run, jr_command, env))
                                record("b floor: python -c 'import docker'",
                                       timed(run, [str(Path(jr_push[0]).with_name("python")), "-c",
                                                   "import docker"], env))
                            else:
                                record("b shell re-push", timed(run, ["sh", "-c", SHELL_STEP], shell_env))
            if not args.more or TEXT not in kinds:
                continue
            for tool in (("jr", "shell"), ("shell", "jr"))[run_index % 2]:
                with services.registry() as reg:
                    env = registry_env(reg, image_of(TEXT))
                    if tool == "jr":
                        record("c jr-push three tags", timed(run,
                            [*jr_push, "-q", "--image", image_of(TEXT), "--registry", reg.host,
                             "--name", "app3", "--tag", "1.0.0", "--tag", "1.0", "--tag", "latest"], env))
                        record("a' jr-push --via engine", timed(run,
                            [*jr_push, "-q", "--via", "engine", "--image", image_of(TEXT), "--registry",
                             reg.host, "--name", "engine1", "--tag", "v1"], env))
                    else:
                        shell3 = {**env, "TARGET": f"{reg.host}/app3", "TAGS": "1.0.0 1.0 latest"}
                        record("c shell three tags", timed(run, ["sh", "-c", SHELL_STEP], shell3))
                with services.registry() as reg:
                    for build, image_name in enumerate(series, start=1):
                        env = registry_env(reg, image_name)
                        if tool == "jr":
                            command = [*jr_push, "-q", "--image", image_name, "--registry", reg.host,
                                       "--name", "ci", "--tag", str(build), "--tag", "latest"]
                            record(f"d{build} jr-push build {build}", timed(run, command, env))
                        else:
                            series_env = {**env, "TARGET": f"{reg.host}/ci", "TAGS": f"{build} latest"}
                            record(f"d{build} shell build {build}",
                                   timed(run, ["sh", "-c", SHELL_STEP], series_env))
        client.close()

    startup = [timed(run, [*jr_push, "--help"], dict(os.environ)) for _ in range(15)]
    results["startup jr-push --help"] = startup
    shutil.rmtree(install_dir, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in results.items()}
    print(f"\nmedians (load average at the end {os.getloadavg()[0]:.2f})")
    for name in sorted(med):
        print(f"  {name:40s} {med[name]:7.3f} s   (n={len(results[name])})")
    print("\nfirst push, jr-push --image (export route) / the shell step (target <= 0.60); the "
          "engine's export alone / the shell step")
    print(f"  {'content':14s} {'jr-push s':>9s} {'shell s':>8s} {'ratio':>6s} {'export alone s':>14s} "
          f"{'ratio':>6s} {'export to TMPDIR s':>18s} {'ratio':>6s}")
    for kind in kinds:
        jr, shell = med[f"a {kind} jr-push first push"], med[f"a {kind} shell first push"]
        alone, kept = med[f"a {kind} engine export alone"], med[f"a {kind} engine export to TMPDIR"]
        print(f"  {kind:14s} {jr:9.2f} {shell:8.2f} {jr / shell:6.2f} {alone:14.2f} "
              f"{alone / shell:6.2f} {kept:18.2f} {kept / shell:6.2f}")
    floor = med["b floor: python -c 'import docker'"]
    print(f"re-push ({repush_kind}): jr-push {med['b jr-push re-push']:.3f} s, shell "
          f"{med['b shell re-push']:.3f} s, ratio {med['b jr-push re-push'] / med['b shell re-push']:.3f} "
          f"(target <= 0.35 s; the floor `import docker` {floor:.3f} s)")
    if "c jr-push three tags" in med:
        print(f"(c) three tags   {med['c jr-push three tags'] / med['c shell three tags']:.3f}  (<= 1.0)")
        via_engine = med["a' jr-push --via engine"]
        print(f"(a') --via engine {via_engine / med[f'a {TEXT} shell first push']:.3f}  "
              f"(jr-push {via_engine:.2f} s)")
        for build in range(1, len(series) + 1):
            jr, shell = med[f"d{build} jr-push build {build}"], med[f"d{build} shell build {build}"]
            print(f"(d) build {build}      {jr / shell:.3f}  (jr-push {jr:.2f} s, shell {shell:.2f} s)")
    print(f"start-up --help  {med['startup jr-push --help']:.3f} s  (<= 0.15 s)")


if __name__ == "__main__":
    main()
