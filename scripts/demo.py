"""The main job, end to end: build the example image and push it with `jr-push` to a local registry.

Uses the Docker engine that DOCKER_HOST (or /var/run/docker.sock) names when it answers, else starts a
private one; uses the registry in JR_REGISTRY (with DOCKER_LOGIN_USERNAME/PASSWORD) when set, else
starts Debian's docker-registry on 127.0.0.1 with a fresh htpasswd user. Stops only what it started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jenkins_registry import docker_engine  # noqa: E402
from jenkins_registry.errors import EngineUnavailableError  # noqa: E402
from tests.support import services  # noqa: E402  (the same private engine and registry the tests use)


@contextlib.contextmanager
def engine() -> Iterator[str]:
    try:
        docker_engine.connect(os.environ, timeout=10).close()
        host = docker_engine.engine_address(os.environ)
        print(f"demo: using the Docker engine at {host}")
        yield host
    except EngineUnavailableError:
        print("demo: no Docker engine answers; starting a private dockerd (vfs storage)")
        with services.docker_engine() as started:
            yield started.host


@contextlib.contextmanager
def registry(env: dict[str, str]) -> Iterator[str]:
    if os.environ.get("JR_REGISTRY"):
        print(f"demo: using the registry {os.environ['JR_REGISTRY']} from JR_REGISTRY")
        yield os.environ["JR_REGISTRY"]
        return
    password = secrets.token_urlsafe(18)
    print("demo: starting docker-registry on 127.0.0.1 with htpasswd user 'jenkins'")
    with services.registry(username="jenkins", password=password) as started:
        # What the Jenkins "Username and password (separated)" binding would inject.
        env["DOCKER_LOGIN_USERNAME"] = "jenkins"
        env["DOCKER_LOGIN_PASSWORD"] = password
        yield started.host


def main() -> int:
    import docker

    env = dict(os.environ)
    with engine() as host, registry(env) as registry_host:
        env["DOCKER_HOST"] = host
        client = docker.DockerClient(base_url=host, timeout=300)
        image, _ = client.images.build(path=str(ROOT / "examples" / "app"), tag="jenkins-test:latest", rm=True)
        client.close()
        print(f"demo: built jenkins-test:latest ({image.short_id})")
        build_tag = time.strftime("build-%Y%m%d-%H%M%S")
        command = [sys.executable, "-m", "jenkins_registry.cli.push", "--image", "jenkins-test",
                   "--registry", registry_host, "--tag", "latest", "--tag", build_tag]
        print("demo: $ jr-push " + " ".join(command[3:]))
        result = subprocess.run(command, env=env, check=False)
        if result.returncode == 0:
            print(f"demo: pushed; the lines above are REGISTRY/NAME:TAG@DIGEST (exit {result.returncode})")
        return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
