"""`jr nexus setup` against the Nexus REST emulator (no real Nexus can run here)."""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.main import main as jr
from jenkins_registry.credentials import Secret
from jenkins_registry.errors import ExitCode
from jenkins_registry.keyring_store import KeyringStore
from tests import nexus_emulator, services
from tests.nexus_emulator import NexusState
from tests.secret_checks import assert_absent, assert_absent_in_tree

ADMIN_PASSWORD = "Nexus-Adm1n-Pa55-0c9e"  # a known secret
WRONG = "Wr0ng-Nexus-Pa55-51aa"


@pytest.fixture(autouse=True)
def fresh_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring.core

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)


def new_state(**kwargs: Any) -> NexusState:
    return NexusState(users={"admin": ADMIN_PASSWORD, "dev": "dev-pw"}, **kwargs)


def setup_cmd(url: str, *extra: str, repository: str = "docker-hosted", port: int = 8082) -> list[str]:
    return ["nexus", "setup", "--url", url, "--repository", repository, "--http-port", str(port),
            *extra]


def run(argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    caplog.set_level(logging.DEBUG)
    env = {**os.environ, "NEXUS_PASSWORD": ADMIN_PASSWORD} if environ is None else environ
    code = jr(argv, env)
    out, err = capsys.readouterr()
    for secret in (ADMIN_PASSWORD, WRONG):
        assert_absent(secret, out, err, caplog.text)
    assert ("Traceback" in err) == ("--debug" in argv and code != 0)
    return code, out, err


def steps(out: str) -> dict[str, str]:
    """{step: verdict} from the output lines `<step>: <verdict> (<detail>)`."""
    result = {}
    for line in out.splitlines():
        line = line.removeprefix("dry run: ")
        if line.startswith(("repository ", "realm ", "anonymous ")):
            step, _, rest = line.partition(": ")
            result[step] = rest.split(" (", 1)[0]
    return result


def test_first_setup_creates_then_second_run_changes_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        code, out, err = run(setup_cmd(nexus.url), capsys, caplog)
        assert code == 0, err
        assert steps(out) == {"repository docker-hosted": "created", "realm DockerToken": "updated",
                              "anonymous access": "skipped"}
        repo = nexus.state.repositories["docker-hosted"]
        assert repo["docker"] == {"v1Enabled": False, "forceBasicAuth": False, "httpPort": 8082,
                                  "httpsPort": None, "subdomain": None}
        assert repo["storage"]["blobStoreName"] == "default" and repo["online"] is True
        # The ordered list was extended, not replaced.
        assert nexus.state.active_realms == ["NexusAuthenticatingRealm", "NexusAuthorizingRealm",
                                             "DockerToken"]
        assert "127.0.0.1:8082" in out and "insecure-registry add 127.0.0.1:8082" in out
        assert "--add-port=8082/tcp" in out
        writes = len(nexus.state.writes())
        code, out, err = run(setup_cmd(nexus.url), capsys, caplog)
        assert code == 0, err
        assert steps(out) == {"repository docker-hosted": "unchanged",
                              "realm DockerToken": "unchanged", "anonymous access": "skipped"}
        assert len(nexus.state.writes()) == writes  # idempotent: the second run only read


def test_existing_repository_is_updated_keeping_its_other_settings(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    state = new_state(active_realms=["NexusAuthenticatingRealm", "DockerToken"])
    state.blob_stores.add("fast")
    state.repositories["docker-hosted"] = {
        "name": "docker-hosted", "format": "docker", "type": "hosted", "url": "x", "online": True,
        "storage": {"blobStoreName": "fast", "strictContentTypeValidation": False,
                    "writePolicy": "ALLOW_ONCE", "latestPolicy": True},
        "cleanup": {"policyNames": ["weekly"]}, "component": {"proprietaryComponents": True},
        "docker": {"v1Enabled": False, "forceBasicAuth": True, "httpPort": 8083, "httpsPort": None,
                   "subdomain": None},
    }
    with nexus_emulator.nexus(state) as nexus:
        code, out, err = run(setup_cmd(nexus.url), capsys, caplog)
    assert code == 0, err
    assert steps(out)["repository docker-hosted"] == "updated"
    assert steps(out)["realm DockerToken"] == "unchanged"
    assert "httpPort 8083 -> 8082" in out and "forceBasicAuth True -> False" in out
    assert "stays in blob store 'fast'" in out
    repo = state.repositories["docker-hosted"]
    assert repo["docker"]["httpPort"] == 8082 and repo["docker"]["forceBasicAuth"] is False
    assert repo["storage"] == {"blobStoreName": "fast", "strictContentTypeValidation": False,
                               "writePolicy": "ALLOW_ONCE", "latestPolicy": True}
    assert repo["cleanup"] == {"policyNames": ["weekly"]}
    assert repo["component"] == {"proprietaryComponents": True}
    puts = [(m, p) for m, p, _ in state.writes()]
    assert puts == [("PUT", "/service/rest/v1/repositories/docker/hosted/docker-hosted")]


def test_dry_run_only_reads(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        code, out, err = run(setup_cmd(nexus.url, "--dry-run", "--anonymous-pull"), capsys, caplog)
        assert code == 0, err
        assert steps(out) == {"repository docker-hosted": "would be created",
                              "realm DockerToken": "would be updated",
                              "anonymous access": "would be updated"}
        assert nexus.state.log and nexus.state.writes() == []
        assert nexus.state.repositories == {}


def test_anonymous_access_on_and_off(capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        code, out, _ = run(setup_cmd(nexus.url, "--anonymous-pull"), capsys, caplog)
        assert code == 0
        assert steps(out)["anonymous access"] == "updated"
        assert nexus.state.anonymous == {"enabled": True, "userId": "anonymous",
                                         "realmName": "NexusAuthorizingRealm"}
        code, out, _ = run(setup_cmd(nexus.url, "--anonymous-pull"), capsys, caplog)
        assert steps(out)["anonymous access"] == "unchanged"
        code, out, _ = run(setup_cmd(nexus.url, "--no-anonymous-pull"), capsys, caplog)
        assert steps(out)["anonymous access"] == "updated"
        assert nexus.state.anonymous["enabled"] is False


def test_admin_password_file_for_the_first_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    password_file = tmp_path / "sonatype-work" / "nexus3" / "admin.password"
    password_file.parent.mkdir(parents=True)
    password_file.write_text(ADMIN_PASSWORD)  # Nexus writes it without a newline
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    with nexus_emulator.nexus(new_state()) as nexus:
        code, _, err = run(setup_cmd(nexus.url, "--admin-password-file", str(password_file)),
                           capsys, caplog, environ)
    assert code == 0, err
    assert "docker-hosted" in nexus.state.repositories


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_bad_password_file(content: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "admin.password"
    if content is not None:
        path.write_text(content)
    with nexus_emulator.nexus(new_state()) as nexus:
        code, _, err = run(setup_cmd(nexus.url, "--admin-password-file", str(path)), capsys, caplog)
        assert nexus.state.log == []
    assert code == ExitCode.INVALID_INPUT_FILE
    assert str(path) in err


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_wrong_password_and_non_admin(debug: list[str], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      caplog: pytest.LogCaptureFixture) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        code, out, err = run([*debug, *setup_cmd(nexus.url)], capsys, caplog,
                             {**os.environ, "NEXUS_PASSWORD": WRONG})
        assert code == ExitCode.AUTH and "rejected the credentials of 'admin'" in err
        assert out == ""
        code, _, err = run(setup_cmd(nexus.url), capsys, caplog,
                           {**os.environ, "NEXUS_USERNAME": "dev", "NEXUS_PASSWORD": "dev-pw"})
        assert code == ExitCode.PERMISSION and "nx-admin" in err
        assert nexus.state.writes() == []
    assert_absent_in_tree(WRONG, [tmp_path])


def test_no_credentials_without_a_terminal(capsys: pytest.CaptureFixture[str],
                                           caplog: pytest.LogCaptureFixture) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    code, _, err = run(setup_cmd("http://127.0.0.1:1"), capsys, caplog, environ)
    assert code == ExitCode.CREDENTIALS and "NEXUS_PASSWORD" in err


def test_admin_password_from_the_keyring(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    with nexus_emulator.nexus(new_state()) as nexus:
        KeyringStore().set_secret(f"nexus:{nexus.url}", "admin", Secret(ADMIN_PASSWORD))
        code, _, err = run(setup_cmd(nexus.url), capsys, caplog, environ)
    assert code == 0, err
    assert "from the OS keyring" in err


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_url_with_credentials_is_refused_without_echoing_them(
    debug: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    code, _, err = run([*debug, *setup_cmd(f"http://admin:{ADMIN_PASSWORD}@127.0.0.1:8081")], capsys,
                       caplog)
    assert code == ExitCode.USAGE and "must not contain a user name or password" in err


@pytest.mark.parametrize("argv_extra, words", [
    (["--repository", "_hidden"], "not a valid Nexus repository name"),
    (["--http-port", "70000"], "out of range"),
])
def test_bad_values(argv_extra: list[str], words: str, capsys: pytest.CaptureFixture[str],
                    caplog: pytest.LogCaptureFixture) -> None:
    argv = ["nexus", "setup", "--url", "http://127.0.0.1:1", "--repository", "docker-hosted",
            "--http-port", "8082", *argv_extra]
    code, _, err = run(argv, capsys, caplog)
    assert code == ExitCode.USAGE and words in err


def test_unreachable_nexus(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    code, _, err = run(setup_cmd(f"http://127.0.0.1:{services.free_port()}"), capsys, caplog)
    assert code == ExitCode.UNREACHABLE and "Cannot reach Nexus" in err


def test_missing_blob_store_is_reported_with_nexus_message(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        code, _, err = run(setup_cmd(nexus.url, "--blob-store", "nope"), capsys, caplog)
        assert nexus.state.repositories == {}
    assert code == ExitCode.USAGE
    assert "HTTP 400" in err and "Blob store nope does not exist" in err


def test_nexus_without_the_docker_token_realm(capsys: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    state = new_state()
    state.available_realms = [r for r in state.available_realms if r["id"] != "DockerToken"]
    with nexus_emulator.nexus(state) as nexus:
        code, _, err = run(setup_cmd(nexus.url), capsys, caplog)
    assert code == ExitCode.NOT_FOUND and "DockerToken" in err


def test_older_nexus_with_the_beta_realms_api(capsys: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    state = new_state(realms_api="beta")
    with nexus_emulator.nexus(state) as nexus:
        code, _, err = run(setup_cmd(nexus.url), capsys, caplog)
    assert code == 0, err
    assert state.active_realms[-1] == "DockerToken"
    assert ("PUT", "/service/rest/beta/security/realms/active") in [(m, p) for m, p, _ in state.log]


def test_setup_then_doctor_sees_the_bearer_realm(docker_env: str, capsys: pytest.CaptureFixture[str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """End to end: a repository that forced Basic answers Bearer after `jr nexus setup`."""
    port = services.free_port()
    state = new_state()
    state.users["ci-bot"] = services.REGISTRY_PASSWORD
    state.writers.add("ci-bot")
    with nexus_emulator.nexus(state) as nexus:
        code, _, err = run(setup_cmd(nexus.url, port=port), capsys, caplog)
        assert code == 0, err
        with nexus.connector("docker-hosted", port) as host:
            environ = {**os.environ, "DOCKER_LOGIN_USERNAME": "ci-bot",
                       "DOCKER_LOGIN_PASSWORD": services.REGISTRY_PASSWORD}
            code, out, err = run(["doctor", "--registry", host], capsys, caplog, environ)
    assert code == 0, out + err
    assert "Bearer (token realm" in out and "token fetched" in out
    assert_absent(services.REGISTRY_PASSWORD, out, err)


# The emulator enforces what Nexus enforces: a test that the client's happy path cannot fake.
def _raw(url: str, method: str, body: Any = None, password: str | None = ADMIN_PASSWORD
         ) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    if password is not None:
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def test_emulator_enforces_auth_required_fields_and_realm_ids() -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        hosted = f"{nexus.url}/service/rest/v1/repositories/docker/hosted"
        assert _raw(hosted, "POST", {}, password=None)[0] == 401
        assert _raw(hosted, "POST", {}, password=WRONG)[0] == 401
        body = {"name": "d", "online": True,
                "storage": {"blobStoreName": "default", "strictContentTypeValidation": True,
                            "writePolicy": "ALLOW"},
                "docker": {"v1Enabled": False, "forceBasicAuth": False, "httpPort": 8082}}
        for missing in ("storage", "docker"):
            status, errors = _raw(hosted, "POST", {k: v for k, v in body.items() if k != missing})
            assert status == 400 and missing in errors[0]["id"]
        no_force = {**body, "docker": {"v1Enabled": False, "httpPort": 8082}}
        assert _raw(hosted, "POST", no_force)[0] == 400
        assert _raw(hosted, "POST", body)[0] == 201
        assert _raw(hosted, "POST", body)[0] == 400  # exists
        active = f"{nexus.url}/service/rest/v1/security/realms/active"
        assert _raw(active, "PUT", ["NexusAuthenticatingRealm", "NoSuchRealm"])[0] == 400
        assert _raw(active, "PUT", ["DockerToken", "NexusAuthenticatingRealm"])[0] == 204
        assert _raw(active, "GET") == (200, ["DockerToken", "NexusAuthenticatingRealm"])
