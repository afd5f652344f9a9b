"""Two `jr-push --image` runs of one repository on one engine take turns (push_lock): the second
waits for the first's give-back, so neither pushes the other's image nor leaves a tag behind."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jenkins_registry.push_lock import exclusive_push, lock_path
from jenkins_registry.push_target import PushTarget
from tests.support import services
from tests.support.secret_checks import assert_absent

APP = PushTarget(registry="127.0.0.1:5000", repository="app", tags=("latest",))
OTHER = PushTarget(registry="127.0.0.1:5000", repository="other", tags=("latest",))


def test_the_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    events: list[str] = []
    first_in = threading.Event()
    release = threading.Event()

    def first() -> None:
        with exclusive_push("unix:///e.sock", APP, tmp_path):
            events.append("first in")
            first_in.set()
            release.wait(10)
            events.append("first out")

    def second() -> None:
        with exclusive_push("unix:///e.sock", APP, tmp_path):
            events.append("second in")

    one = threading.Thread(target=first)
    one.start()
    assert first_in.wait(10)
    two = threading.Thread(target=second)
    two.start()
    time.sleep(0.3)
    assert events == ["first in"]  # the second is still waiting
    release.set()
    one.join(10)
    two.join(10)
    assert events == ["first in", "first out", "second in"]


def test_other_repositories_and_engines_do_not_wait(tmp_path: Path) -> None:
    with exclusive_push("unix:///e.sock", APP, tmp_path):
        done = threading.Event()

        def other() -> None:
            with exclusive_push("unix:///e.sock", OTHER, tmp_path), \
                    exclusive_push("unix:///f.sock", APP, tmp_path):
                done.set()

        thread = threading.Thread(target=other)
        thread.start()
        assert done.wait(5)
        thread.join(5)
    assert lock_path("a", "x", tmp_path) != lock_path("b", "x", tmp_path)


def test_an_unwritable_lock_directory_pushes_unlocked(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with exclusive_push("unix:///e.sock", APP, missing):
        pass  # no error: the push goes on (with a warning)


def test_concurrent_pushes_of_one_repository_each_push_their_own_image(
        docker_env: str, docker_client: Any, registry: services.Registry, tmp_path: Path) -> None:
    """Two processes push two images as `latest` and their own tag at the same moment, six times:
    every run succeeds, each own tag holds its own image, and no registry tag stays on the engine."""
    images = {n: services.build_image(docker_client, f"lock-app:{n}", {"n.txt": f"{n}\n".encode()})
              for n in ("a", "b")}
    env = {**os.environ, "DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
           "DOCKER_LOGIN_PASSWORD": services.REGISTRY_PASSWORD}
    for round_ in range(6):
        procs = {n: subprocess.Popen(
            [sys.executable, "-m", "jenkins_registry.cli.push", "--image", f"lock-app:{n}", "--registry",
             registry.host, "--name", "lock/app", "--tag", "latest", "--tag", f"{n}{round_}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in images}
        for n, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            assert_absent(services.REGISTRY_PASSWORD, out, err)
            status, _, body = registry.get(f"/v2/lock/app/manifests/{n}{round_}", {
                "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
            assert status == 200
            assert images[n].split(":")[1] in body.decode()  # its config is its own image
        left = [tag for s in docker_client.api.images() for tag in s.get("RepoTags") or ()
                if tag.startswith(registry.host + "/")]
        assert left == []
