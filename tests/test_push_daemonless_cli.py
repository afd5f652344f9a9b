"""jr-push --from-archive through the CLI: choosing one image of a multi-image archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.errors import ExitCode
from tests.support import services
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD


@pytest.fixture(scope="module")
def two_image_archive(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    services.build_image(docker_client, "team/app:1.4", {"app.txt": b"app 1.4\n"})
    services.build_image(docker_client, "team/worker:2.0", {"worker.txt": b"worker 2.0\n"})
    path = tmp_path_factory.mktemp("archive") / "both.tar"
    api = docker_client.api
    response = api._get(api._url("/images/get"), params={"names": ["team/app:1.4", "team/worker:2.0"]},
                        stream=True)
    api._raise_for_status(response)
    with open(path, "wb") as handle:
        for chunk in response.iter_content(1 << 20):
            handle.write(chunk)
    return path


def test_image_picks_one_image_of_the_archive(
    two_image_archive: Path, registry: services.Registry, capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"DOCKER_LOGIN_USERNAME": registry.username or "", "DOCKER_LOGIN_PASSWORD": SECRET,
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # no engine needed
    code = jr_push(["--from-archive", str(two_image_archive), "--image", "team/worker:2.0",
                    "--registry", registry.host], env)
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err)
    assert code == 0, err
    assert out.startswith(f"{registry.host}/team/worker:2.0@sha256:")
    assert registry.tags("team/worker") == ["2.0"] and registry.tags("team/app") == []


def test_a_multi_image_archive_without_image_says_how_to_choose(
    two_image_archive: Path, registry: services.Registry, capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"DOCKER_LOGIN_USERNAME": registry.username or "", "DOCKER_LOGIN_PASSWORD": SECRET}
    code = jr_push(["--from-archive", str(two_image_archive), "--registry", registry.host], env)
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert "team/app:1.4" in err and "team/worker:2.0" in err and "--image" in err


def test_nothing_to_push_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert jr_push(["--registry", "127.0.0.1:5000"], {}) == ExitCode.USAGE
    assert "Nothing to push" in capsys.readouterr().err


def test_engine_only_options_are_refused_with_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert jr_push(["--image", "app", "--registry", "127.0.0.1:5000", "--jobs", "2"], {}) == ExitCode.USAGE
    assert "--from-archive" in capsys.readouterr().err


def test_the_ca_bundle_of_the_environment_reaches_the_push(
    two_image_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """REQUESTS_CA_BUNDLE is used for verified HTTPS (any non-loopback registry without
    --insecure); an unreadable one stops the push before a connection is made."""
    env = {"DOCKER_LOGIN_USERNAME": "ci-bot", "DOCKER_LOGIN_PASSWORD": SECRET,
           "REQUESTS_CA_BUNDLE": str(tmp_path / "missing-ca.pem")}
    code = jr_push(["--from-archive", str(two_image_archive), "--image", "team/worker:2.0",
                    "--registry", "registry.invalid:5000"], env)
    out, err = capsys.readouterr()
    assert code == ExitCode.INVALID_INPUT_FILE, err
    assert "missing-ca.pem cannot be loaded" in err and "REQUESTS_CA_BUNDLE" in err
    assert_absent(SECRET, out, err)
