"""jr-push through the engine vs the hand-written shell step, in one run, same engine and registry.

Scenarios (medians of --runs, interleaved so both see the same machine state):
  (a) first push of a ~600 MB, 4-layer image to an empty registry (a fresh registry each run);
  (b) re-push of the same image where every layer exists (5 per run, beside the floor of
      `python -c 'import docker'`);
  (c) first push with three tags to another empty registry;
  (d) a CI series on a third registry: build 1, then builds 2 and 3, each adding an 8 MB layer on
      top of the one before, each pushed as `--tag N --tag latest` (informational: it shows what
      `--via auto` costs after an export, when the engine does not yet know the layers);
  plus the start-up of `jr-push --help`.
jr-push runs with its default route (auto); `--via engine` is timed for (a) as well.
The reference is the seed's shell: `docker tag`, `docker login --password-stdin` into a throw-away
DOCKER_CONFIG, one `docker push` per tag. Prints medians and ratios; asserts nothing.

    python benchmarks/bench_engine_push.py [--size-mb 600] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
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


def make_context(directory: Path, size_mb: int) -> None:
    """Four layers: random bytes, text-like bytes, 2,000 small files, random bytes again."""
    rng = random.Random(42)
    quarter = size_mb * 1024 * 1024 // 4
    (directory / "random.bin").write_bytes(os.urandom(quarter))
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    with open(directory / "text.txt", "wb") as handle:
        written = 0
        while written < quarter:
            line = b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
            handle.write(line * 64)
            written += len(line) * 64
    small = directory / "small"
    small.mkdir()
    per_file = quarter // 2000
    for index in range(2000):
        (small / f"f{index:04d}.dat").write_bytes(rng.randbytes(per_file // 2) + b"x" * (per_file // 2))
    (directory / "random2.bin").write_bytes(os.urandom(quarter))
    (directory / "Dockerfile").write_text(
        "FROM scratch\nCOPY random.bin /data/random.bin\nCOPY text.txt /data/text.txt\n"
        "COPY small /data/small\nCOPY random2.bin /data/random2.bin\n"
    )


# (b) is short and noisy: several re-pushes per run, each beside the floor every Python tool built
# on the docker SDK pays (the interpreter and `import docker`, which imports requests).
REPUSHES = 5
SERIES = ("bench-app:latest", "bench-app:build2", "bench-app:build3")


def build_series(client: Any, directory: Path) -> None:
    """Builds 2 and 3 of (d): each adds an 8 MB layer on top of the build before."""
    for number, base in ((2, SERIES[0]), (3, SERIES[1])):
        step = directory / f"build{number}"
        step.mkdir()
        (step / "app.bin").write_bytes(os.urandom(8 << 20))
        (step / "Dockerfile").write_text(f"FROM {base}\nCOPY app.bin /app/build{number}.bin\n")
        client.images.build(path=str(step), tag=SERIES[number - 1], rm=True)


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


def run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"failed: {command[:4]}…\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import docker

    install_dir = Path(tempfile.mkdtemp(prefix="jr-bench-install-"))
    jr_push = [str(install_as_users_do(install_dir))]
    results: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        results.setdefault(name, []).append(seconds)
        print(f"  {name}: {seconds:.2f} s", flush=True)

    with services.docker_engine() as engine, tempfile.TemporaryDirectory() as ctx:
        client = docker.DockerClient(base_url=engine.host, timeout=900)
        make_context(Path(ctx), args.size_mb)
        print(f"building a {args.size_mb} MB, 4-layer image …", flush=True)
        image, _ = client.images.build(path=ctx, tag="bench-app:latest", rm=True)
        print(f"image {image.short_id}, {image.attrs['Size'] / 1e6:.0f} MB", flush=True)
        build_series(client, Path(ctx))
        base_env = {**os.environ, "DOCKER_HOST": engine.host, "IMAGE": "bench-app:latest"}

        for run_index in range(args.runs):
            print(f"run {run_index + 1}/{args.runs}", flush=True)
            for tool in (("jr", "shell"), ("shell", "jr"))[run_index % 2]:
                # (a) and (b) share a fresh registry; (c) gets its own, so that its layers must be
                # uploaded too (the same registry would let the engine mount them from app1).
                with services.registry() as reg:
                    env = {**base_env, "DOCKER_LOGIN_USERNAME": reg.username or "",
                           "DOCKER_LOGIN_PASSWORD": reg.password or "", "REGISTRY": reg.host}
                    if tool == "jr":
                        command = [*jr_push, "-q", "--image", "bench-app", "--registry", reg.host,
                                   "--name", "app1", "--tag", "v1"]
                        record("a jr-push first push", timed(run, command, env))
                        for _ in range(REPUSHES):
                            record("b jr-push re-push", timed(run, command, env))
                            record("b floor: python -c 'import docker'",
                                   timed(run, [str(Path(jr_push[0]).with_name("python")), "-c",
                                               "import docker"], env))
                    else:
                        shell_env = {**env, "TARGET": f"{reg.host}/app1", "TAGS": "v1"}
                        record("a shell first push", timed(run, ["sh", "-c", SHELL_STEP], shell_env))
                        for _ in range(REPUSHES):
                            record("b shell re-push", timed(run, ["sh", "-c", SHELL_STEP], shell_env))
                with services.registry() as reg:
                    env = {**base_env, "DOCKER_LOGIN_USERNAME": reg.username or "",
                           "DOCKER_LOGIN_PASSWORD": reg.password or "", "REGISTRY": reg.host}
                    if tool == "jr":
                        record("c jr-push three tags", timed(run,
                            [*jr_push, "-q", "--image", "bench-app", "--registry", reg.host, "--name", "app3",
                             "--tag", "1.0.0", "--tag", "1.0", "--tag", "latest"], env))
                        record("a' jr-push --via engine", timed(run,
                            [*jr_push, "-q", "--via", "engine", "--image", "bench-app", "--registry",
                             reg.host, "--name", "engine1", "--tag", "v1"], env))
                    else:
                        shell3 = {**env, "TARGET": f"{reg.host}/app3", "TAGS": "1.0.0 1.0 latest"}
                        record("c shell three tags", timed(run, ["sh", "-c", SHELL_STEP], shell3))
                with services.registry() as reg:
                    env = {**base_env, "DOCKER_LOGIN_USERNAME": reg.username or "",
                           "DOCKER_LOGIN_PASSWORD": reg.password or "", "REGISTRY": reg.host}
                    for build, image_name in enumerate(SERIES, start=1):
                        if tool == "jr":
                            command = [*jr_push, "-q", "--image", image_name, "--registry", reg.host,
                                       "--name", "ci", "--tag", str(build), "--tag", "latest"]
                            record(f"d{build} jr-push build {build}", timed(run, command, env))
                        else:
                            series_env = {**env, "IMAGE": image_name, "TARGET": f"{reg.host}/ci",
                                          "TAGS": f"{build} latest"}
                            record(f"d{build} shell build {build}",
                                   timed(run, ["sh", "-c", SHELL_STEP], series_env))
        client.close()

    startup = [timed(run, [*jr_push, "--help"], dict(os.environ)) for _ in range(15)]
    results["startup jr-push --help"] = startup
    shutil.rmtree(install_dir, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in results.items()}
    print("\nmedians")
    for name in sorted(med):
        print(f"  {name:28s} {med[name]:7.3f} s   (n={len(results[name])})")
    print("ratios jr-push / shell (target)")
    print(f"  (a) first push   {med['a jr-push first push'] / med['a shell first push']:.3f}  (<= 1.05)")
    floor = med["b floor: python -c 'import docker'"]
    print(f"  (b) re-push      {med['b jr-push re-push'] / med['b shell re-push']:.3f}  "
          f"(jr-push {med['b jr-push re-push']:.3f} s, target <= 0.35 s; of which the floor "
          f"{floor:.3f} s)")
    print(f"  (c) three tags   {med['c jr-push three tags'] / med['c shell three tags']:.3f}  (<= 1.0)")
    via_engine = med["a' jr-push --via engine"]
    print(f"  (a') --via engine {via_engine / med['a shell first push']:.3f}  (jr-push {via_engine:.2f} s)")
    for build in range(1, len(SERIES) + 1):
        jr, shell = med[f"d{build} jr-push build {build}"], med[f"d{build} shell build {build}"]
        print(f"  (d) build {build}      {jr / shell:.3f}  (jr-push {jr:.2f} s, shell {shell:.2f} s)")
    print(f"  start-up --help  {med['startup jr-push --help']:.3f} s  (<= 0.15 s)")


if __name__ == "__main__":
    main()
