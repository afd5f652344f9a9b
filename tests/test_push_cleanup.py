"""What `jr-push --image` leaves on the agent: none of the `HOST:PORT/NAME:TAG` tags it made.

Against the real engine and registry; what the engine holds is read from its own image list
(`GET /images/json`), never through the code under test. The decision on its own is tested with
plain values at the end.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import pytest

from jenkins_registry import engine_push, engine_tags, push_route
from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.docker_engine import DockerEngine
from jenkins_registry.engine_tags import NameBefore, plan_give_back
from jenkins_registry.errors import ExitCode, JrError
from jenkins_registry.progress import NullProgress
from jenkins_registry.push_target import plan_push
from jenkins_registry.secret_types import Secret, UsernamePassword
from tests.support import services
from tests.support.fault_proxy import fault_proxy
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD
ROUTES = ["engine", "export", "auto"]


@pytest.fixture(scope="module")
def app_image(docker_client: Any) -> str:
    return services.build_image(docker_client, "cleanup-app:1", {"app.txt": b"cleanup\n",
                                                                  "data.bin": os.urandom(20_000)})


@pytest.fixture(scope="module")
def other_image(docker_client: Any) -> str:
    return services.build_image(docker_client, "cleanup-other:1", {"other.txt": b"other\n"})


def names_at(docker_client: Any, where: str) -> dict[str, str]:
    """Every local tag in the registry or repository *where* (`HOST:PORT[/NAME]`), and the image
    it names, from the engine's image list."""
    return {tag: summary["Id"] for summary in docker_client.api.images()
            for tag in summary.get("RepoTags") or ()
            if tag.startswith(where + "/") or tag.rsplit(":", 1)[0] == where}


def engine_state(docker_client: Any) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Every image with its tags and digest references."""
    return sorted((s["Id"], tuple(sorted(s.get("RepoTags") or ())), tuple(sorted(s.get("RepoDigests") or ())))
                  for s in docker_client.api.images(all=True))


def push(docker_env: str, capsys: pytest.CaptureFixture[str], *argv: str,
         **env: str) -> tuple[int, str, str]:
    environ = {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
               "DOCKER_LOGIN_PASSWORD": SECRET, **env}
    code = jr_push(list(argv), environ)
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err)
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("route", ROUTES)
def test_a_pushed_image_keeps_none_of_the_registry_tags(
    route: str, docker_env: str, docker_client: Any, registry: services.Registry, app_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"cleanup/pushed-{route}"
    code, out, err = push(docker_env, capsys, "--image", "cleanup-app:1", "--registry", registry.host,
                          "--name", name, "--tag", "7", "--tag", "latest", "--via", route)
    assert code == 0, err
    assert registry.tags(name) == ["7", "latest"]
    assert registry.manifest_digest(name, "7") == out.splitlines()[0].split("@")[1]
    assert names_at(docker_client, f"{registry.host}/{name}") == {}
    assert docker_client.api.inspect_image(app_image)["RepoTags"] == ["cleanup-app:1"]
    assert f"removed the local tags {registry.host}/{name}:7, {registry.host}/{name}:latest" in err


def test_an_unchanged_repush_keeps_none_either(
    docker_env: str, docker_client: Any, registry: services.Registry, app_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = "cleanup/unchanged"
    for tag in ("1", "2"):
        code, out, err = push(docker_env, capsys, "--image", "cleanup-app:1", "--registry",
                              registry.host, "--name", name, "--tag", tag, "--tag", "latest", "--json")
        assert code == 0, err
    assert '"method": "unchanged"' in out
    assert registry.tags(name) == ["1", "2", "latest"]
    assert names_at(docker_client, f"{registry.host}/{name}") == {}


@pytest.mark.parametrize("route", ["engine", "export"])
@pytest.mark.parametrize(("failure", "expected"), [("closed port", ExitCode.UNREACHABLE),
                                                   ("wrong password", ExitCode.AUTH),
                                                   ("no credentials", ExitCode.CREDENTIALS)])
def test_a_failed_push_keeps_none_of_the_registry_tags(
    route: str, failure: str, expected: ExitCode, docker_env: str, docker_client: Any,
    registry: services.Registry, app_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    host = "127.0.0.1:9" if failure == "closed port" else registry.host
    password = SECRET + "-wrong" if failure == "wrong password" else SECRET
    credentials = ({"DOCKER_LOGIN_USERNAME": "", "DOCKER_LOGIN_PASSWORD": ""}
                   if failure == "no credentials" else {"DOCKER_LOGIN_PASSWORD": password})
    before = engine_state(docker_client)
    code, _, err = push(docker_env, capsys, "--image", "cleanup-app:1", "--registry", host,
                        "--name", "cleanup/failed", "--tag", "1", "--tag", "latest", "--via", route,
                        **credentials)
    assert code == expected, err
    assert_absent(password, err)
    assert names_at(docker_client, host) == {}
    assert engine_state(docker_client) == before
    assert registry.tags("cleanup/failed") == []


@pytest.mark.parametrize("route", ["engine", "export"])
def test_names_that_existed_are_left_as_they_were(
    route: str, docker_env: str, docker_client: Any, registry: services.Registry, app_image: str,
    other_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """`:1` named another image (an earlier build): it names that image again. `:mine` already
    named this image: this run did not make it, so it stays. `:2` is new: it goes."""
    target = f"{registry.host}/cleanup/existing-{route}"
    docker_client.api.tag(other_image, target, "1")
    docker_client.api.tag(app_image, target, "mine")
    try:
        code, out, err = push(docker_env, capsys, "--image", "cleanup-app:1", "--registry",
                              registry.host, "--name", f"cleanup/existing-{route}", "--tag", "1",
                              "--tag", "2", "--tag", "mine", "--via", route)
        assert code == 0, err
        digest = out.splitlines()[0].split("@")[1]
        assert {registry.manifest_digest(f"cleanup/existing-{route}", t) for t in ("1", "2", "mine")} \
            == {digest}
        assert names_at(docker_client, target) == {f"{target}:1": other_image,
                                                   f"{target}:mine": app_image}
        assert f"pointed the local tag {target}:1 back at {other_image[7:19]}" in err
    finally:
        for tag in ("1", "mine"):
            docker_client.api.remove_image(f"{target}:{tag}", noprune=True)


@pytest.mark.parametrize(("argv", "env", "kept"), [
    (["--keep-tags"], {}, True),
    ([], {"JR_KEEP_TAGS": "1"}, True),
    (["--no-keep-tags"], {"JR_KEEP_TAGS": "yes"}, False),
    ([], {"JR_KEEP_TAGS": "0"}, False),
])
def test_keep_tags_keeps_them(
    argv: list[str], env: dict[str, str], kept: bool, docker_env: str, docker_client: Any,
    registry: services.Registry, app_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"cleanup/keep-{len(argv)}-{len(env)}-{str(kept).lower()}"
    target = f"{registry.host}/{name}"
    code, _, err = push(docker_env, capsys, "--image", "cleanup-app:1", "--registry", registry.host,
                        "--name", name, "--tag", "1", "--tag", "2", "--via", "engine", *argv, **env)
    assert code == 0, err
    names = names_at(docker_client, target)
    if kept:
        assert names == {f"{target}:1": app_image, f"{target}:2": app_image}
        # the old behaviour, digest reference included
        assert any(ref.startswith(target + "@sha256:")
                   for ref in docker_client.api.inspect_image(app_image)["RepoDigests"])
        for tag in ("1", "2"):
            docker_client.api.remove_image(f"{target}:{tag}", noprune=True)
    else:
        assert names == {}
        # the engine drops its digest reference there with the repository's last tag
        assert not any(ref.startswith(target + "@")
                       for ref in docker_client.api.inspect_image(app_image)["RepoDigests"])


def test_an_image_given_by_id_keeps_its_last_name(
    docker_env: str, docker_client: Any, registry: services.Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine deletes an image with its last name: an untagged image pushed by ID keeps the
    first tag, and the log says so."""
    lonely = services.build_image(docker_client, "cleanup-lonely:1", {"lonely.txt": b"alone\n"})
    services.build_image(docker_client, "cleanup-lonely:1", {"lonely.txt": b"successor\n"})
    assert docker_client.api.inspect_image(lonely)["RepoTags"] == []  # dangling, still there
    target = f"{registry.host}/cleanup/lonely"
    code, _, err = push(docker_env, capsys, "--image", lonely[7:19], "--registry", registry.host,
                        "--name", "cleanup/lonely", "--tag", "a", "--tag", "b", "--via", "engine")
    assert code == 0, err
    assert registry.tags("cleanup/lonely") == ["a", "b"]
    assert names_at(docker_client, target) == {f"{target}:a": lonely}
    assert f"kept the local tag {target}:a: it is the only name of {lonely[7:19]}" in err
    assert f"removed the local tag {target}:b " in err
    docker_client.api.remove_image(f"{target}:a")  # the user's choice: the image goes with it
    docker_client.api.remove_image("cleanup-lonely:1")


def test_twenty_builds_leave_the_engine_as_it_was(
    docker_env: str, docker_client: Any, registry: services.Registry, app_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--tag "$BUILD_NUMBER"` on a persistent agent: nothing accumulates, whichever route."""
    before = engine_state(docker_client)
    for number in range(1, 21):
        code, _, err = push(docker_env, capsys, "--image", "cleanup-app:1", "--registry",
                            registry.host, "--name", "cleanup/series", "--tag", str(number),
                            "--via", ROUTES[number % 3], "--quiet")
        assert code == 0, err
    assert registry.tags("cleanup/series") == sorted(str(n) for n in range(1, 21))
    assert engine_state(docker_client) == before


def test_sigterm_during_an_engine_push_leaves_no_tags(
    docker_env: str, docker_client: Any, tmp_path: Path,
) -> None:
    """Jenkins aborts a step with SIGTERM while the engine uploads: the tags go all the same."""
    services.build_image(docker_client, "cleanup-big:1", {"big.bin": os.urandom(48 << 20)})
    with services.registry() as reg, fault_proxy(reg.host) as proxy:
        env = {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
               "DOCKER_LOGIN_PASSWORD": SECRET, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
               "JR_PUSH_VIA": "engine"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "jenkins_registry.cli.push", "--image", "cleanup-big:1",
             "--registry", proxy.host, "--tag", "1", "--tag", "latest"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while (proc.poll() is None and time.monotonic() < deadline
               and proxy.count("POST", r"/blobs/uploads/$") == 0):
            time.sleep(0.005)
        assert proc.poll() is None, "the push ended before its upload was seen"
        assert names_at(docker_client, proxy.host)  # tagged, mid-push
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert b"interrupted" in err
    assert names_at(docker_client, proxy.host) == {}
    assert_absent(SECRET, out, err)
    docker_client.api.remove_image("cleanup-big:1")


def test_a_name_given_back_by_another_build_mid_push_is_made_again(
    docker_client: Any, registry: services.Registry, app_image: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two builds on one agent push the same image to the same tag: the one that ends first
    removes the name, perhaps between the other's tagging and its push."""
    caplog.set_level(logging.INFO, logger="jenkins_registry")
    plan = plan_push("cleanup-app:1", registry=registry.host, repository="cleanup/race",
                     tags=["1", "latest"])
    creds = UsernamePassword(username=services.REGISTRY_USER, password=Secret(SECRET), source="test")
    engine = DockerEngine(docker_client)
    image = engine.find_image(plan.image)
    engine_push.tag_and_login(engine, plan, image, creds)
    for reference in plan.references:  # what the other build's cleanup does
        docker_client.api.remove_image(reference, noprune=True)
    result = engine_push.push_tags(engine, plan, image, creds, NullProgress())
    assert {registry.manifest_digest("cleanup/race", t) for t in ("1", "latest")} == {result.digest}
    assert "cleanup/race:latest was untagged during the push" in caplog.text
    for reference in plan.references:
        docker_client.api.remove_image(reference, noprune=True)


# -- giving back never replaces the push's own outcome ----------------------------------------------


class _FailingUntag:
    """The real engine, except that untagging fails (the real one cannot be made to on demand)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.images = client.images
        self.api = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.api, name)

    def remove_image(self, *args: Any, **kwargs: Any) -> Any:
        import docker

        raise docker.errors.APIError("boom", explanation="the engine's store is read-only")


@pytest.mark.parametrize("password", [SECRET, SECRET + "-wrong"])
def test_a_failing_cleanup_keeps_the_push_result(
    password: str, docker_client: Any, registry: services.Registry, app_image: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="jenkins_registry")
    plan = plan_push("cleanup-app:1", registry=registry.host, repository="cleanup/failing-untag",
                     tags=["1"])
    creds = UsernamePassword(username=services.REGISTRY_USER, password=Secret(password), source="test")
    client = DockerEngine(_FailingUntag(docker_client))
    options = push_route.LocalPushOptions(route="engine")
    try:
        if password == SECRET:
            result = push_route.push_local_image(client, plan, creds, NullProgress(), options)
            assert registry.manifest_digest("cleanup/failing-untag", "1") == result.digest
        else:
            with pytest.raises(JrError) as caught:
                push_route.push_local_image(client, plan, creds, NullProgress(), options)
            assert caught.value.exit_code == ExitCode.AUTH  # the push's error, not the cleanup's
        reference = f"{registry.host}/cleanup/failing-untag:1"
        assert (f"could not remove the local tag {reference} (the engine's store is read-only); "
                f"`docker rmi {reference}` removes it") in caplog.text
        assert_absent(password, caplog.text)
        assert names_at(docker_client, f"{registry.host}/cleanup/failing-untag") == {reference: app_image}
    finally:
        docker_client.api.remove_image(f"{registry.host}/cleanup/failing-untag:1", noprune=True)


# -- usage ------------------------------------------------------------------------------------------


def test_keep_tags_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = jr_push(["--image", "app:1", "--registry", "127.0.0.1:5000"],
                   {"DOCKER_HOST": "unix:///nonexistent.sock", "JR_KEEP_TAGS": "maybe"})
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and "JR_KEEP_TAGS='maybe'" in err and "JR_KEEP_TAGS=1" in err
    code = jr_push(["--from-archive", str(tmp_path / "app.tar"), "--registry", "127.0.0.1:5000",
                    "--keep-tags"], {})
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and "--keep-tags applies to --image" in err
    # a daemonless push tags nothing locally: the environment's default does not apply to it
    code = jr_push(["--from-archive", str(tmp_path / "app.tar"), "--registry", "127.0.0.1:5000"],
                   {"JR_KEEP_TAGS": "1"})
    assert code == ExitCode.INVALID_INPUT_FILE, capsys.readouterr().err


# -- the decision on its own ------------------------------------------------------------------------

ME, OTHER, THIRD = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
R1, R2, R3 = "10.0.0.1:5000/app:1", "10.0.0.1:5000/app:2", "10.0.0.1:5000/app:latest"


@pytest.mark.parametrize(("before", "now", "names_now", "expected"), [
    # new names go, while the image keeps another name (its own tag)
    ({R1: None, R2: None}, {R1: ME, R2: ME}, 3, engine_tags.GiveBack(remove=(R1, R2))),
    # an untagged image pushed by ID: the first of its new names is spared
    ({R1: None, R2: None}, {R1: ME, R2: ME}, 2, engine_tags.GiveBack(remove=(R2,), spare=R1)),
    # a name that named this image already stays; one that named another image goes back to it
    ({R1: ME, R2: OTHER, R3: None}, {R1: ME, R2: ME, R3: ME}, 3,
     engine_tags.GiveBack(point_back=((R2, OTHER),), remove=(R3,))),
    # the name already named this image, and it is the last: nothing to do, nothing spared
    ({R1: ME}, {R1: ME}, 1, engine_tags.GiveBack()),
    # pointing back leaves the image without names; not deleted (a move), and nothing to spare
    ({R1: OTHER}, {R1: ME}, 1, engine_tags.GiveBack(point_back=((R1, OTHER),))),
    # moved or removed since by someone else (another build on this agent): left alone
    ({R1: None, R2: OTHER}, {R1: THIRD, R2: None}, 1, engine_tags.GiveBack()),
])
def test_plan_give_back(before: dict[str, str | None], now: dict[str, str | None], names_now: int,
                        expected: engine_tags.GiveBack) -> None:
    names = [NameBefore(reference, image_id) for reference, image_id in before.items()]
    assert plan_give_back(ME, names, now, names_now) == expected


def test_the_names_are_noted_before_anything_changes() -> None:
    """An engine that fails the look-up: an engine error, before any tag is made."""

    class _Broken:
        api = type("Api", (), {"inspect_image": staticmethod(_raise_engine_error)})()

    broken = DockerEngine(_Broken())
    with pytest.raises(JrError) as caught, engine_tags.registry_names(broken, ME, [R1], keep=False):
        pytest.fail("the block must not run")
    assert caught.value.exit_code == ExitCode.ENGINE


def _raise_engine_error(name: str) -> NoReturn:
    import docker

    raise docker.errors.APIError("500 Server Error", explanation="engine trouble")
