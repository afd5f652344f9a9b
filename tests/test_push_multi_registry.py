"""jr-push with several --registry: every tag to every registry, on both routes, against two real
registries (and a closed port for a registry that is down)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.errors import ExitCode
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.secret_types import Secret
from tests.support import services
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD
SECOND_SECRET = "Second-Reg1stry-Pa55-93e1b7"  # the second registry's password, a known secret too
SECOND_USER = "mirror-bot"


@pytest.fixture(scope="module")
def second() -> Iterator[services.Registry]:
    """Another real registry, with its own user and password."""
    with services.registry(username=SECOND_USER, password=SECOND_SECRET) as reg:
        yield reg


@pytest.fixture(scope="module")
def same_login() -> Iterator[services.Registry]:
    """A registry sharing the first one's user and password (the same injected variables)."""
    with services.registry() as reg:
        yield reg


@pytest.fixture
def closed() -> str:
    """A loopback port nothing listens on: a registry that is down."""
    return f"127.0.0.1:{services.free_port()}"


@pytest.fixture(scope="module")
def multi_image(docker_client: Any) -> str:
    return services.build_image(docker_client, "multi-reg/app:1", {"app.txt": b"several registries\n"})


@pytest.fixture(scope="module")
def multi_archive(docker_client: Any, multi_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("multi") / "app.tar"
    with open(path, "wb") as handle:
        for chunk in docker_client.images.get("multi-reg/app:1").save(named=True):
            handle.write(chunk)
    return path


def run(argv: list[str], environ: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = jr_push(argv, environ)
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err)
    assert_absent(SECOND_SECRET, out, err)
    assert "Traceback" not in err
    return code, out, err


def env(docker_env: str, **extra: str) -> dict[str, str]:
    return {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
            "DOCKER_LOGIN_PASSWORD": SECRET, **extra}


def references(out: str) -> list[str]:
    return [line.split("@")[0] for line in out.splitlines()]


@pytest.mark.parametrize("route", ["engine", "export"])
def test_every_tag_goes_to_every_registry_from_the_engine(
    route: str, docker_env: str, docker_client: Any, registry: services.Registry,
    same_login: services.Registry, multi_image: str, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    repository = f"multi/engine-{route}"
    digest_file = tmp_path / "digest"
    code, out, err = run(["--image", "multi-reg/app:1", "--registry", registry.host, "--registry",
                          same_login.host, "--repository", repository, "--tag", "1", "--tag", "latest",
                          "--via", route, "--digest-file", str(digest_file)],
                         env(docker_env), capsys)
    assert code == 0, err
    assert references(out) == [f"{host}/{repository}:{tag}" for host in (registry.host, same_login.host)
                               for tag in ("1", "latest")]
    for reg in (registry, same_login):
        assert reg.tags(repository) == ["1", "latest"]
    first_digest = out.splitlines()[0].split("@")[1]
    assert registry.manifest_digest(repository, "1") == first_digest
    assert digest_file.read_text() == first_digest + "\n"
    # the local names made for both registries are given back
    assert docker_client.images.get(multi_image).tags == ["multi-reg/app:1"]


def test_every_tag_goes_to_every_registry_without_the_engine(
    registry: services.Registry, same_login: services.Registry, multi_archive: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["--from-archive", str(multi_archive), "--registry", same_login.host,
                          "--registry", registry.host, "--name", "multi/daemonless", "--tag", "a",
                          "--tag", "b", "--json"],
                         env("unix:///nonexistent/docker.sock"), capsys)
    assert code == 0, err
    document = json.loads(out)
    # the first registry's object, as one registry prints it, then one object per registry
    assert document["registry"] == same_login.host
    assert document["references"] == [f"{same_login.host}/multi/daemonless:{tag}@{document['digest']}"
                                      for tag in ("a", "b")]
    assert [push["registry"] for push in document["pushes"]] == [same_login.host, registry.host]
    assert [push["method"] for push in document["pushes"]] == ["daemonless", "daemonless"]
    assert document["not_attempted"] == []
    for push, reg in zip(document["pushes"], (same_login, registry), strict=True):
        assert reg.tags("multi/daemonless") == ["a", "b"]
        assert reg.manifest_digest("multi/daemonless", "a") == push["digest"]


def test_credentials_are_found_for_each_registry(
    registry: services.Registry, second: services.Registry, multi_archive: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """No variables: each registry's own keyring entry (`jr login` per registry)."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    store = KeyringStore()
    store.set(registry.host, services.REGISTRY_USER, Secret(SECRET))
    store.set(second.host, SECOND_USER, Secret(SECOND_SECRET))
    code, out, err = run(["--from-archive", str(multi_archive), "--registry", registry.host,
                          "--registry", second.host, "--name", "multi/keyring", "--tag", "k"],
                         {"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
                          "HOME": os.environ["HOME"], "XDG_DATA_HOME": os.environ["XDG_DATA_HOME"]},
                         capsys)
    assert code == 0, err
    assert references(out) == [f"{registry.host}/multi/keyring:k", f"{second.host}/multi/keyring:k"]
    assert registry.tags("multi/keyring") == ["k"] and second.tags("multi/keyring") == ["k"]


@pytest.mark.parametrize("route", ["engine", "export", "daemonless"])
def test_a_registry_that_is_down_is_named_and_the_others_still_print(
    route: str, docker_env: str, docker_client: Any, registry: services.Registry, closed: str,
    multi_image: str, multi_archive: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    repository = f"multi/down-{route}"
    source = (["--from-archive", str(multi_archive)] if route == "daemonless"
              else ["--image", "multi-reg/app:1", "--via", route])
    digest_file = tmp_path / "digest"
    code, out, err = run([*source, "--registry", registry.host, "--registry", closed, "--name",
                          repository, "--tag", "1", "--digest-file", str(digest_file)],
                         env(docker_env, JR_REQUEST_TIMEOUT="10"), capsys)
    assert code == ExitCode.UNREACHABLE, err
    assert references(out) == [f"{registry.host}/{repository}:1"]
    assert registry.tags(repository) == ["1"]
    assert f"jr-push: error: {closed}: " in err
    assert err.splitlines()[-1] == (f"jr-push: pushed to 1 of 2 registries; failed: {closed} (exit 7)")
    assert not digest_file.exists()  # a run that failed somewhere leaves no digest for later steps
    if route != "daemonless":
        assert docker_client.images.get(multi_image).tags == ["multi-reg/app:1"]


def test_a_first_registry_down_does_not_stop_the_second(
    registry: services.Registry, closed: str, multi_archive: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["--from-archive", str(multi_archive), "--registry", closed, "--registry",
                          registry.host, "--name", "multi/first-down", "--tag", "2", "--json"],
                         env("unix:///nonexistent/docker.sock"), capsys)
    assert code == ExitCode.UNREACHABLE, err
    document = json.loads(out)
    assert document["registry"] == registry.host  # the first registry pushed
    failure, success = document["pushes"]
    assert failure["registry"] == closed and failure["exit_code"] == ExitCode.UNREACHABLE
    assert closed in failure["error"] and failure["hint"]
    assert success["references"] == [f"{registry.host}/multi/first-down:2@{document['digest']}"]
    assert registry.tags("multi/first-down") == ["2"]


def test_an_error_of_no_registry_ends_the_run(
    docker_env: str, registry: services.Registry, same_login: services.Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing image would fail every registry alike: said once, the rest not attempted."""
    code, out, err = run(["--image", "multi-reg/missing:1", "--registry", registry.host,
                          "--registry", same_login.host], env(docker_env), capsys)
    assert code == ExitCode.NOT_FOUND
    assert out == ""
    assert err.count("does not exist") == 1
    assert err.splitlines()[-1] == (f"jr-push: pushed to 0 of 2 registries; failed: {registry.host} "
                                    f"(exit 6); not attempted: {same_login.host}")


def test_bad_registries_and_credentials_stop_before_any_push(
    registry: services.Registry, multi_archive: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["--from-archive", str(multi_archive), "--registry", registry.host,
                          "--registry", "http://mirror:5000", "--name", "multi/refused"],
                         env("unix:///nonexistent/docker.sock"), capsys)
    assert code == ExitCode.USAGE and out == "" and "URL scheme" in err
    code, out, err = run(["--from-archive", str(multi_archive), "--registry", registry.host,
                          "--registry", "127.0.0.1:9", "--name", "multi/refused"],
                         {"DOCKER_LOGIN_USERNAME": services.REGISTRY_USER}, capsys)
    assert code == ExitCode.CREDENTIALS and out == ""
    assert registry.tags("multi/refused") == []


def test_a_registry_given_twice_is_pushed_once_and_jr_registry_stays_the_default(
    registry: services.Registry, same_login: services.Registry, multi_archive: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["--from-archive", str(multi_archive), "--registry", registry.host,
                          "--registry", registry.host, "--name", "multi/twice", "--tag", "t"],
                         env("unix:///nonexistent/docker.sock"), capsys)
    assert code == 0, err
    assert references(out) == [f"{registry.host}/multi/twice:t"]
    # JR_REGISTRY when no --registry; a --registry replaces it (they are not added up)
    jr_registry = env("unix:///nonexistent/docker.sock", JR_REGISTRY=same_login.host)
    code, out, err = run(["--from-archive", str(multi_archive), "--name", "multi/default", "--tag",
                          "d"], jr_registry, capsys)
    assert code == 0, err
    assert references(out) == [f"{same_login.host}/multi/default:d"]
    code, out, err = run(["--from-archive", str(multi_archive), "--registry", registry.host,
                          "--name", "multi/default", "--tag", "e"], jr_registry, capsys)
    assert code == 0, err
    assert references(out) == [f"{registry.host}/multi/default:e"]
    assert same_login.tags("multi/default") == ["d"]
