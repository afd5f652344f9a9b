"""jr-push --repository REPO/PATH, the path in the registry; --name stays its alias."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.errors import ExitCode
from tests.support import services
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD
NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture(scope="module")
def archive(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    services.build_image(docker_client, "repo-option/app:3", {"app.txt": b"repository option\n"})
    path = tmp_path_factory.mktemp("repo-option") / "app.tar"
    with open(path, "wb") as handle:
        for chunk in docker_client.images.get("repo-option/app:3").save(named=True):
            handle.write(chunk)
    return path


def push(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = jr_push(argv, {"DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
                          "DOCKER_LOGIN_PASSWORD": SECRET, "DOCKER_HOST": NO_ENGINE})
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err)
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("spelling", [["--repository", "team/by-repository"],
                                      ["--name", "team/by-name"],
                                      ["--repository", "team/both", "--name", "team/both"]],
                         ids=["repository", "name alias", "both, the same"])
def test_each_spelling_names_the_path_in_the_registry(
    spelling: list[str], archive: Path, registry: services.Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = spelling[1]
    code, out, err = push(["--from-archive", str(archive), "--registry", registry.host, *spelling],
                          capsys)
    assert code == 0, err
    assert out.startswith(f"{registry.host}/{path}:3@sha256:")
    assert registry.tags(path) == ["3"]


@pytest.mark.parametrize("argv", [["--repository", "team/one", "--name", "team/other"],
                                  ["--name", "team/one", "--repository", "team/other"],
                                  ["--repository", "team/one", "--repository", "team/other"]],
                         ids=["repository then name", "name then repository", "repository twice"])
def test_two_different_paths_are_a_usage_error_and_nothing_is_pushed(
    argv: list[str], archive: Path, registry: services.Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = push(["--from-archive", str(archive), "--registry", registry.host, *argv],
                          capsys)
    assert code == ExitCode.USAGE
    assert out == ""
    assert "--repository/--name given twice with different values ('team/one' and 'team/other')" in err
    assert registry.tags("team/one") == [] and registry.tags("team/other") == []


def test_help_shows_repository_first_and_name_as_its_alias(capsys: pytest.CaptureFixture[str]) -> None:
    assert jr_push(["--help"]) == 0
    text = capsys.readouterr().out
    assert "--repository REPO/PATH, --name REPO/PATH" in text
    assert "--name is its alias" in " ".join(text.split())


def test_an_image_id_needs_a_repository(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = push(["--image", "46d1a3ebf53b", "--registry", "10.211.55.6:8082"], capsys)
    assert code == ExitCode.USAGE and out == ""
    assert "--repository (alias --name)" in err
