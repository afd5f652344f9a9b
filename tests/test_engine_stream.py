"""Rare push-stream shapes the real engine seldom produces (containerd store, odd errors)."""

from __future__ import annotations

from typing import Any

import pytest

from jenkins_registry import engine_push, push_target
from jenkins_registry.errors import (
    AuthenticationError,
    CredentialsError,
    ImageNotFoundError,
    InsecureRegistryError,
    PermissionDeniedError,
    RegistryError,
    UnreachableError,
)
from jenkins_registry.progress import NullProgress, PlainProgress
from jenkins_registry.secret_types import Secret, UsernamePassword

SECRET = "Kn0wn-Str3am-Secret"
DIGEST = "sha256:" + "ab" * 32
PLAN = push_target.plan_push("jenkins-test", registry="10.211.55.6:8082", repository=None, tags=[])
CREDS = UsernamePassword(username="admin", password=Secret(SECRET), source="test")


def read(events: list[dict[str, Any]], credentials: UsernamePassword | None = CREDS) -> Any:
    return engine_push._read_push_stream(iter(events), tag="latest", plan=PLAN,
                                         credentials=credentials, progress=NullProgress())


def test_digest_from_status_line_when_there_is_no_aux() -> None:
    result = read([{"status": "The push refers to repository [10.211.55.6:8082/jenkins-test]"},
                   {"status": "Pushed", "id": "5f70bf18a086", "progressDetail": {}},
                   {"status": f"latest: digest: {DIGEST} size: 528"}])
    assert (result.digest, result.size) == (DIGEST, 528)


def test_aux_wins_over_status_line() -> None:
    aux_digest = "sha256:" + "cd" * 32
    result = read([{"status": f"latest: digest: {DIGEST} size: 528"},
                   {"progressDetail": {}, "aux": {"Tag": "latest", "Digest": aux_digest, "Size": 600}}])
    assert (result.digest, result.size) == (aux_digest, 600)


def test_stream_without_digest_is_a_failure() -> None:
    with pytest.raises(RegistryError, match="without reporting a digest"):
        read([{"status": "Preparing", "id": "x"}])


@pytest.mark.parametrize("message, error_type", [
    ("unauthorized: authentication required", AuthenticationError),
    ("unauthorized: access to the requested resource is not authorized", AuthenticationError),
    ("denied: requested access to the resource is denied", PermissionDeniedError),
    ("no basic auth credentials", CredentialsError),
    ('Get "https://10.211.55.6:8082/v2/": http: server gave HTTP response to HTTPS client',
     InsecureRegistryError),
    ("An image does not exist locally with the tag: 10.211.55.6:8082/jenkins-test", ImageNotFoundError),
    ("tag does not exist: 10.211.55.6:8082/jenkins-test:v1", ImageNotFoundError),
    ('Get "https://10.211.55.6:8082/v2/": dial tcp 10.211.55.6:8082: connect: connection refused',
     UnreachableError),
    ("toomanyrequests: slow down", RegistryError),
    ("blob upload invalid", RegistryError),
])
def test_error_detail_mid_stream_fails_the_push(message: str, error_type: type[Exception]) -> None:
    events = [{"status": "Preparing", "id": "a"},
              {"errorDetail": {"message": message}, "error": message},
              {"status": f"latest: digest: {DIGEST} size: 1"}]
    with pytest.raises(error_type) as info:
        read(events)
    assert SECRET not in str(info.value) and SECRET not in info.value.hint


def test_error_without_error_detail_and_echoed_secret_is_redacted() -> None:
    with pytest.raises(RegistryError) as info:
        read([{"error": f"registry said: bad password {SECRET}"}])
    assert SECRET not in str(info.value)
    assert "****" in str(info.value)


def test_unauthorized_without_credentials_reads_as_missing_credentials() -> None:
    with pytest.raises(CredentialsError):
        read([{"errorDetail": {"message": "unauthorized: authentication required"}}], credentials=None)


def test_plain_progress_prints_state_changes_and_quarters(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    sink = PlainProgress(sys.stderr)
    for current in range(0, 101, 5):
        sink.layer("abc", "Pushing", current, 100)
    sink.layer("abc", "Pushed")
    sink.layer("abc", "Pushed")
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["abc: Pushing 0% of 100 B", "abc: Pushing 25% of 100 B", "abc: Pushing 50% of 100 B",
                     "abc: Pushing 75% of 100 B", "abc: Pushing 100% of 100 B", "abc: Pushed"]


def test_secret_and_credentials_never_print() -> None:
    assert SECRET not in repr(CREDS) and SECRET not in str(CREDS.password)
    assert SECRET not in f"{CREDS.password}" and SECRET not in repr(CREDS.password)
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(CREDS.password)
