"""Shared fixtures: isolation of HOME and config dirs, the real Docker engine and registry."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import services
from tests.support.hostile_server import REMOTE


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test reads or writes the developer's real HOME, docker config or keyring."""
    import keyring.core

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    for var in ("DOCKER_LOGIN_USERNAME", "DOCKER_LOGIN_PASSWORD", "JR_REGISTRY", "JENKINS_URL",
                "JENKINS_USER", "JENKINS_API_TOKEN", "NEXUS_USERNAME", "NEXUS_PASSWORD",
                "BUILD_NUMBER", "DOCKER_AUTH_CONFIG", "CI", "HTTP_PROXY", "HTTPS_PROXY",
                "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    # Every Secret ever made is redacted from messages (Secret._seen): start each test with none,
    # as a fresh process does, so that a hostile value one test made a secret cannot mask words
    # in another test's messages.
    from jenkins_registry.secret_types import Secret

    monkeypatch.setattr(Secret, "_seen", set())
    # keyring caches its backend per process: make each test choose afresh from its environment.
    keyring.core._keyring_backend = None
    yield home
    keyring.core._keyring_backend = None
    # A CLI run binds the package's log handler to the sys.stderr of its moment (a test's capture,
    # closed after it): drop it, so that a later test's library calls do not write to a closed file.
    package_log = logging.getLogger("jenkins_registry")
    package_log.handlers.clear()
    package_log.propagate = True
    package_log.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[services.DockerEngine]:
    with services.docker_engine() as engine:
        yield engine


@pytest.fixture(scope="session")
def docker_client(docker_engine: services.DockerEngine) -> Iterator[object]:
    import docker

    client = docker.DockerClient(base_url=docker_engine.host, timeout=300)
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry() -> Iterator[services.Registry]:
    """One htpasswd-protected registry shared by the session (tests use distinct repo names)."""
    with services.registry() as reg:
        yield reg


@pytest.fixture
def docker_env(docker_engine: services.DockerEngine, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    return docker_engine.host


def pytest_report_header() -> list[str]:
    return [f"JR_TEST_DOCKER_HOST={os.environ.get('JR_TEST_DOCKER_HOST', '(start a private dockerd)')}"]


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> str:
    """`registry.test` resolves to 127.0.0.1 in this process: a non-loopback name on loopback."""
    real = socket.getaddrinfo

    def resolve(host: object, *args: object, **kwargs: object) -> object:
        return real("127.0.0.1" if host == REMOTE else host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return REMOTE
