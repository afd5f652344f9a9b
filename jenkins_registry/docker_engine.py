"""Connecting to the Docker engine named by DOCKER_HOST (or the default socket), with clear errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from jenkins_registry.errors import EngineUnavailableError

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# A push can sit silent for minutes while the engine compresses a big layer; the SDK's timeout is
# per socket read, so a generous value only matters when the engine hangs.
PUSH_TIMEOUT_SECONDS = 900


def engine_address(environ: Mapping[str, str]) -> str:
    return environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(environ: Mapping[str, str], timeout: int = PUSH_TIMEOUT_SECONDS) -> Any:
    """A `docker.DockerClient` for the engine the environment names; raises EngineUnavailableError."""
    import docker
    import requests

    address = engine_address(environ)
    try:
        # version="auto" asks the engine for its API version here, which also proves it answers
        client = docker.DockerClient(
            **_client_kwargs(environ), timeout=timeout,
        )
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        reason = _reason(exc)
        raise EngineUnavailableError(
            f"Cannot reach the Docker engine at {address} ({reason}).",
        ) from exc
    log.debug("connected to the Docker engine at %s", address)
    return client


def _client_kwargs(environ: Mapping[str, str]) -> dict[str, Any]:
    from docker.utils import kwargs_from_env

    kwargs: dict[str, Any] = kwargs_from_env(environment=dict(environ))
    kwargs.setdefault("base_url", DEFAULT_SOCKET)
    kwargs["version"] = "auto"
    return kwargs


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker, reason in (
        ("No such file or directory", "no socket there"),
        ("Connection refused", "connection refused"),
        ("Permission denied", "permission denied on the socket; add this user to the docker group"),
        ("timed out", "timed out"),
    ):
        if marker in text:
            return reason
    return type(exc).__name__
