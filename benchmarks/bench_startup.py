"""What every Jenkins build pays before any byte moves: the start-up of `jr-push`, and a whole re-push of
an image the registry already holds (the `unchanged` path: engine look-ups, login, one manifest).

Runs the `jr-push` console script installed next to this interpreter (as an agent runs it), against a
private Docker engine and a local registry started for the run (tests/support/services.py).
References measured in the same run: `python -c pass` and `python -c 'import docker'` (the floor
the docker SDK sets). Prints medians; asserts nothing.

    python benchmarks/bench_startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import services  # noqa: E402


def timed(argv: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def median_of(runs: int, argv: Sequence[str], env: dict[str, str]) -> float:
    timed(argv, env)  # warm the page cache and the bytecode
    return statistics.median(timed(argv, env) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    jr_push = str(Path(sys.executable).parent / "jr-push")
    with services.docker_engine() as engine, services.registry() as registry:
        import docker

        client = docker.DockerClient(base_url=engine.host, timeout=300)
        services.build_image(client, "bench-startup:1", {"app.bin": os.urandom(1 << 20)})
        client.close()
        env = {**os.environ, "DOCKER_HOST": engine.host, "DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
               "DOCKER_LOGIN_PASSWORD": services.REGISTRY_PASSWORD}
        push = [jr_push, "--image", "bench-startup:1", "--registry", registry.host, "--tag", "1", "-q"]
        timed(push, env)  # the first push; every timed one below finds the image already there
        results = {
            "python -c pass": median_of(args.runs, [sys.executable, "-c", "pass"], env),
            "python -c 'import docker'": median_of(args.runs, [sys.executable, "-c", "import docker"], env),
            "jr-push --help": median_of(args.runs, [jr_push, "--help"], env),
            "jr-push re-push (unchanged)": median_of(args.runs, push, env),
        }
    print(f"medians of {args.runs} runs ({sys.executable})")
    for name, seconds in results.items():
        print(f"  {name:32} {seconds * 1000:7.1f} ms")
    floor = results["python -c 'import docker'"]
    print(f"  re-push over the docker-import floor: {results['jr-push re-push (unchanged)'] / floor:.2f}x")


if __name__ == "__main__":
    main()
