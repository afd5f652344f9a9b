"""`jr nexus setup` against the Nexus REST emulator (no real Nexus can run here)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.main import main as jr
from jenkins_registry.errors import ExitCode
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.secret_types import Secret
from tests.support import nexus_emulator, services
from tests.support.nexus_emulator import NexusState
from tests.support.secret_checks import assert_absent, assert_absent_in_tree

ADMIN_PASSWORD = "Nexus-Adm1n-Pa55-0c9e"  # a known secret
WRONG = "Wr0ng-Nexus-Pa55-51aa"
PUSH = "Push-Acc0unt-Pa55-7d2f"  # the push account's password, another known secret
PUSH_2 = "Push-R0tated-Pa55-e41b"
ROLE = "jr-docker-hosted-push"
PUSH_PRIVILEGES = [f"nx-repository-view-docker-docker-hosted-{a}" for a in ("browse", "read", "add", "edit")]


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
    for secret in (ADMIN_PASSWORD, WRONG, PUSH, PUSH_2):
        assert_absent(secret, out, err, caplog.text)
    assert ("Traceback" in err) == ("--debug" in argv and code != 0)
    return code, out, err


def steps(out: str) -> dict[str, str]:
    """{step: verdict} from the output lines `<step>: <verdict> (<detail>)`."""
    result = {}
    for line in out.splitlines():
        line = line.removeprefix("dry run: ")
        if line.startswith(("repository ", "realm ", "anonymous ", "role ", "user ", "password ")):
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


# The push account: `--user NAME` ------------------------------------------------------------------
def push_env(password: str | None = PUSH, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("NEXUS_", "DOCKER_LOGIN_")) and k != "CI"}
    environ["NEXUS_PASSWORD"] = ADMIN_PASSWORD
    if password is not None:
        environ["DOCKER_LOGIN_PASSWORD"] = password
    return {**environ, **extra}


def _as_user(url: str, user: str, password: str) -> int:
    """The status of `GET /service/rest/v1/repositories` authenticated as *user*."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(f"{url}/service/rest/v1/repositories",
                                     headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def assert_password_only_where_needed(state: NexusState, *secrets: str) -> None:
    """The emulator logs every request body: the password travels only in the user create and the
    change-password bodies."""
    carriers = {("POST", "/service/rest/v1/security/users")}
    for method, path, body in state.log:
        if (method, path) in carriers or path.endswith("/change-password"):
            continue
        for secret in secrets:
            assert_absent(secret, json.dumps(body))


def test_push_account_created_then_second_run_writes_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        state = nexus.state
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env())
        assert code == 0, err
        assert steps(out) == {"repository docker-hosted": "created", "realm DockerToken": "updated",
                              "anonymous access": "skipped", f"role {ROLE}": "created",
                              "user jenkins": "created", "password of jenkins": "created"}
        role = state.roles[ROLE]
        assert role["privileges"] == PUSH_PRIVILEGES and role["roles"] == []
        assert role["name"] == ROLE and "docker-hosted" in role["description"]
        record = state.user_records["jenkins"]
        assert record["roles"] == [ROLE] and record["status"] == "active"
        assert record["source"] == "default"
        # The password is real: Nexus authenticates the account with it, and only with it.
        assert _as_user(nexus.url, "jenkins", PUSH) == 200
        assert _as_user(nexus.url, "jenkins", WRONG) == 401
        assert "jr jenkins credential --id docker-registry-login --username jenkins" in out
        created = [(m, p) for m, p, _ in state.writes()][-2:]
        assert created == [("POST", "/service/rest/v1/security/roles"),
                           ("POST", "/service/rest/v1/security/users")]

        writes = len(state.writes())
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env())
        assert code == 0, err
        assert steps(out) == {"repository docker-hosted": "unchanged",
                              "realm DockerToken": "unchanged", "anonymous access": "skipped",
                              f"role {ROLE}": "unchanged", "user jenkins": "unchanged",
                              "password of jenkins": "unchanged"}
        assert len(state.writes()) == writes  # idempotent: not one write
        # ... and the password was checked, not assumed.
        assert ("GET", "/service/rest/v1/repositories", None) in state.log
        assert_password_only_where_needed(state, PUSH)


def test_a_changed_password_is_set_again(capsys: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        state = nexus.state
        assert run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env())[0] == 0
        before = len(state.log)
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog,
                             push_env(PUSH_2))
        assert code == 0, err
        assert steps(out)["password of jenkins"] == "updated"
        assert steps(out)["user jenkins"] == "unchanged"
        assert [(m, p, b) for m, p, b in state.log[before:] if m != "GET"] == [
            ("PUT", "/service/rest/v1/security/users/jenkins/change-password", PUSH_2)]
        assert _as_user(nexus.url, "jenkins", PUSH_2) == 200
        assert _as_user(nexus.url, "jenkins", PUSH) == 401
        writes = len(state.writes())
        code, out, _ = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env(PUSH_2))
        assert steps(out)["password of jenkins"] == "unchanged" and len(state.writes()) == writes
        assert_password_only_where_needed(state, PUSH, PUSH_2)


def test_an_existing_user_keeps_its_other_roles_and_is_activated(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    state = new_state()
    state.roles["deployer"] = {"id": "deployer", "source": "default", "name": "deployer",
                               "description": "", "readOnly": False, "privileges": [], "roles": []}
    state.users["jenkins"] = PUSH
    state.user_records["jenkins"] = {
        "userId": "jenkins", "firstName": "Jenkins", "lastName": "CI", "emailAddress": "ci@corp.example",
        "source": "default", "status": "disabled", "readOnly": False,
        "roles": ["nx-anonymous", "deployer"], "externalRoles": []}
    with nexus_emulator.nexus(state) as nexus:
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins", "--dry-run"), capsys, caplog,
                             push_env())
        assert code == 0, err
        assert steps(out)["user jenkins"] == "would be updated"
        assert "role + jr-docker-hosted-push" in out and "status 'disabled' -> 'active'" in out
        assert steps(out)["password of jenkins"] == "would be updated"  # cannot be checked yet
        assert state.writes() == []
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env())
    assert code == 0, err
    assert steps(out)["user jenkins"] == "updated"
    assert steps(out)["password of jenkins"] == "unchanged"  # right once the user is active
    record = state.user_records["jenkins"]
    assert record["roles"] == ["nx-anonymous", "deployer", ROLE]
    assert record["status"] == "active"
    assert (record["firstName"], record["lastName"], record["emailAddress"]) == (
        "Jenkins", "CI", "ci@corp.example")
    assert [p for m, p, _ in state.writes() if "/security/r" not in p or "/roles" in p][1:] == [
        "/service/rest/v1/security/roles", "/service/rest/v1/security/users/jenkins"]
    assert_password_only_where_needed(state, PUSH)


def test_an_existing_role_gets_the_missing_privileges_and_keeps_others(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    state = new_state()
    with nexus_emulator.nexus(state) as nexus:
        assert run(setup_cmd(nexus.url), capsys, caplog, push_env())[0] == 0
        state.roles[ROLE] = {"id": ROLE, "source": "default", "name": ROLE, "description": "mine",
                             "readOnly": False, "privileges": ["nx-search-read", PUSH_PRIVILEGES[0]],
                             "roles": ["nx-anonymous"]}
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env())
    assert code == 0, err
    assert steps(out)[f"role {ROLE}"] == "updated"
    assert state.roles[ROLE]["privileges"] == ["nx-search-read", *PUSH_PRIVILEGES]
    assert state.roles[ROLE]["roles"] == ["nx-anonymous"]
    assert state.roles[ROLE]["description"].startswith("Push and pull docker images in docker-hosted")


def test_push_account_dry_run_only_reads(capsys: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins", "--dry-run"), capsys, caplog,
                             push_env())
        assert code == 0, err
        assert steps(out) == {"repository docker-hosted": "would be created",
                              "realm DockerToken": "would be updated", "anonymous access": "skipped",
                              f"role {ROLE}": "would be created", "user jenkins": "would be created",
                              "password of jenkins": "would be created"}
        assert nexus.state.log and nexus.state.writes() == []
        assert "jenkins" not in nexus.state.user_records and ROLE not in nexus.state.roles
        # An existing account with another password: the dry run says so and still writes nothing.
        assert run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env())[0] == 0
        writes = len(nexus.state.writes())
        code, out, _ = run(setup_cmd(nexus.url, "--user", "jenkins", "--dry-run"), capsys, caplog,
                           push_env(PUSH_2))
        assert steps(out)["password of jenkins"] == "would be updated"
        assert len(nexus.state.writes()) == writes
        assert _as_user(nexus.url, "jenkins", PUSH) == 200


def test_setup_takes_no_password_option(capsys: pytest.CaptureFixture[str],
                                        caplog: pytest.LogCaptureFixture) -> None:
    """The password cannot be in argv: no option takes one (only the names of where it is)."""
    code, out, _ = run(["nexus", "setup", "--help"], capsys, caplog)
    assert code == 0
    options = set(re.findall(r"--[a-z][a-z-]*[a-z]", out))
    assert {o for o in options if "password" in o} == {"--password-env", "--admin-password-file"}


def test_missing_push_password_without_a_terminal(capsys: pytest.CaptureFixture[str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog,
                             push_env(None))
        assert code == ExitCode.CREDENTIALS and out == ""
        assert "No password of the push account jenkins found" in err
        assert "DOCKER_LOGIN_PASSWORD" in err and "Traceback" not in err
        code, _, err = run(setup_cmd(nexus.url, "--user", "jenkins", "--password-env", "JENKINS_PW"),
                           capsys, caplog, push_env())
        assert code == ExitCode.CREDENTIALS and "read -rs JENKINS_PW" in err
        assert nexus.state.log == []  # nothing half-done: not even a read
        code, out, err = run(setup_cmd(nexus.url, "--user", "jenkins", "--password-env", "JENKINS_PW"),
                             capsys, caplog, push_env(None, JENKINS_PW=PUSH))
        assert code == 0, err
    assert nexus.state.users["jenkins"] == PUSH


@pytest.mark.parametrize("argv_extra, words", [
    (["--user", "jen kins"], "--user 'jen kins' is not a valid user name"),
    (["--user", "-jenkins"], "is not a valid user name"),  # argparse takes it as an option
    (["--user", "ci:bot"], "is not a valid user name"),
    (["--user", "a/b"], "is not a valid user name"),
    (["--user", "x" * 65], "is not a valid user name"),
    (["--user", "Admin"], "administrative or built-in"),
    (["--user", "anonymous"], "administrative or built-in"),
    (["--password-env", "PW"], "needs --user NAME"),
    (["--user", "jenkins", "--password-env", ""], "needs a variable name"),
])
def test_bad_push_account_options(argv_extra: list[str], words: str,
                                  capsys: pytest.CaptureFixture[str],
                                  caplog: pytest.LogCaptureFixture) -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        code, out, err = run(setup_cmd(nexus.url, *argv_extra), capsys, caplog, push_env())
        assert nexus.state.log == []
    assert code == ExitCode.USAGE and out == ""
    if argv_extra[1:2] != ["-jenkins"]:
        assert words in err and "what to do:" in err


def test_the_nexus_admin_cannot_become_the_push_account(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    state = new_state()
    state.users["root"] = ADMIN_PASSWORD
    state.admins.add("root")
    with nexus_emulator.nexus(state) as nexus:
        code, _, err = run(setup_cmd(nexus.url, "--user", "root"), capsys, caplog,
                           push_env(NEXUS_USERNAME="root"))
        assert state.log == []
    assert code == ExitCode.USAGE and "administrative or built-in" in err


def test_a_directory_user_is_refused(capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    state = new_state()
    state.user_records["jenkins"] = {
        "userId": "jenkins", "firstName": "J", "lastName": "L", "emailAddress": "j@corp.example",
        "source": "LDAP", "status": "active", "readOnly": True, "roles": [], "externalRoles": []}
    with nexus_emulator.nexus(state) as nexus:
        code, _, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env())
    assert code == ExitCode.USAGE and "comes from the LDAP realm" in err
    assert [p for _, p, _ in state.writes() if "/users" in p] == []


def test_push_password_from_the_jr_login_keyring_entry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    with nexus_emulator.nexus(new_state()) as nexus:
        KeyringStore().set("127.0.0.1:8082", "someone-else", Secret(PUSH))
        code, _, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env(None))
        assert code == ExitCode.CREDENTIALS and "is for user someone-else, not jenkins" in err
        KeyringStore().set("127.0.0.1:8082", "jenkins", Secret(PUSH))
        code, _, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env(None))
        assert code == 0, err
        assert "password of the push account jenkins: from the OS keyring" in err
    assert nexus.state.users["jenkins"] == PUSH


@pytest.mark.parametrize("typed, code", [([PUSH, PUSH], 0), ([PUSH, PUSH_2], ExitCode.CREDENTIALS)])
def test_push_password_typed_twice_at_a_prompt(
    typed: list[str], code: int, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    from jenkins_registry.cli import nexus as nexus_cli

    answers = iter(typed)
    monkeypatch.setattr(nexus_cli, "interactive", lambda environ: True)
    monkeypatch.setattr(nexus_cli, "prompt_secret", lambda question: next(answers))
    with nexus_emulator.nexus(new_state()) as nexus:
        result, _, err = run(setup_cmd(nexus.url, "--user", "jenkins"), capsys, caplog, push_env(None))
        assert result == code, err
        if code:
            assert "The two passwords typed differ" in err and nexus.state.log == []
        else:
            assert nexus.state.users["jenkins"] == PUSH


def test_nexus_error_text_that_echoes_the_password_is_redacted() -> None:
    """A server that quotes the rejected request must not carry the password into the error, not
    even a piece of it where the quoted text is cut short."""
    from jenkins_registry.errors import UsageError
    from jenkins_registry.nexus import NexusClient

    with nexus_emulator.nexus(new_state(echo_bad_requests=True)) as nexus:
        client = NexusClient(nexus.url, "admin", Secret(ADMIN_PASSWORD))
        for pad in range(0, 120, 2):  # one of these cuts the quoted body inside the password
            user = {"userId": "j", "firstName": "f" * (pad + 1), "lastName": "l",
                    "emailAddress": "j@x.y", "status": "active", "roles": ["ghost"]}
            with pytest.raises(UsageError) as info:
                client.create_user(user, Secret(PUSH))
            if pad == 0:  # the emulator did quote the body; the client showed it redacted
                assert '\\"password\\": \\"****\\"' in info.value.message, info.value.message
            for text in (info.value.message, info.value.hint or "", repr(info.value), repr(client)):
                assert PUSH[:5] not in text and ADMIN_PASSWORD[:7] not in text
                assert_absent(PUSH, text)


def test_push_account_can_push_through_the_connector(
    docker_env: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """End to end: the account `--user` made may push (its role's privileges), as `jr doctor` sees."""
    port = services.free_port()
    with nexus_emulator.nexus(new_state()) as nexus:
        code, _, err = run(setup_cmd(nexus.url, "--user", "ci-bot", port=port), capsys, caplog,
                           push_env())
        assert code == 0, err
        assert "ci-bot" not in nexus.state.writers  # only the role grants the push
        with nexus.connector("docker-hosted", port) as host:
            environ = push_env(DOCKER_LOGIN_USERNAME="ci-bot")
            code, out, err = run(["doctor", "--registry", host], capsys, caplog, environ)
    assert code == 0, out + err
    assert "token fetched" in out and "may push to" in out


def test_emulator_enforces_the_security_api() -> None:
    with nexus_emulator.nexus(new_state()) as nexus:
        api = f"{nexus.url}/service/rest/v1/security"
        role = {"id": "r1", "name": "r1", "description": "d", "privileges": PUSH_PRIVILEGES,
                "roles": []}
        status, errors = _raw(f"{api}/roles", "POST", role)
        assert status == 400 and PUSH_PRIVILEGES[0] in errors[0]["message"]  # no repository yet
        nexus.state.repositories["docker-hosted"] = {"name": "docker-hosted"}
        assert _raw(f"{api}/roles", "POST", {**role, "extra": 1})[0] == 400
        assert _raw(f"{api}/roles", "POST", role)[0] == 200
        assert _raw(f"{api}/roles", "POST", role)[0] == 400  # exists
        status, errors = _raw(f"{api}/roles", "POST", {**role, "id": "r2", "roles": ["nope"]})
        assert status == 400 and "nope" in errors[0]["message"]
        assert _raw(f"{api}/roles/absent", "GET")[0] == 404
        assert _raw(f"{api}/roles/absent", "PUT", role)[0] == 404
        assert _raw(f"{api}/roles/r1", "PUT", {**role, "id": "r9"})[0] == 400
        assert _raw(f"{api}/roles/r1", "PUT", {**role, "description": "e"})[0] == 204
        assert _raw(f"{api}/roles/r1", "GET")[1]["description"] == "e"
        assert _raw(f"{api}/roles/nx-admin", "PUT", {"id": "nx-admin", "name": "x"})[0] == 400

        user = {"userId": "jenkins", "firstName": "j", "lastName": "l", "emailAddress": "j@x.invalid",
                "password": PUSH, "status": "active", "roles": ["r1"]}
        for key in user:
            assert _raw(f"{api}/users", "POST", {k: v for k, v in user.items() if k != key})[0] == 400
        status, errors = _raw(f"{api}/users", "POST", {**user, "roles": ["r1", "ghost"]})
        assert status == 400 and "ghost" in errors[0]["message"]
        assert _raw(f"{api}/users", "POST", {**user, "source": "default"})[0] == 400
        status, created = _raw(f"{api}/users", "POST", user)
        assert status == 200 and "password" not in created
        assert _raw(f"{api}/users", "POST", {**user, "userId": "jenkins2"})[0] == 200
        status, found = _raw(f"{api}/users?userId=jenkins", "GET")
        assert status == 200 and [u["userId"] for u in found] == ["jenkins", "jenkins2"]  # a prefix
        assert all("password" not in u for u in found)
        assert _as_user(nexus.url, "jenkins", PUSH) == 200
        assert _as_user(nexus.url, "jenkins", WRONG) == 401

        update = {k: v for k, v in user.items() if k != "password"} | {"source": "default"}
        assert _raw(f"{api}/users/jenkins", "PUT", {**update, "password": PUSH_2})[0] == 400
        assert _raw(f"{api}/users/jenkins", "PUT", {**update, "userId": "jenkins2"})[0] == 400
        assert _raw(f"{api}/users/ghost", "PUT", {**update, "userId": "ghost"})[0] == 404
        assert _raw(f"{api}/users/jenkins", "PUT", {**update, "status": "disabled"})[0] == 204
        assert _as_user(nexus.url, "jenkins", PUSH) == 401  # only an active user authenticates
        assert _raw(f"{api}/users/jenkins", "PUT", update)[0] == 204

        change = f"{api}/users/jenkins/change-password"
        assert _raw(change, "PUT", PUSH_2)[0] == 415  # JSON is not text/plain
        assert _text(change, PUSH_2) == 204 and _as_user(nexus.url, "jenkins", PUSH_2) == 200
        assert _text(f"{api}/users/ghost/change-password", PUSH_2) == 404
        assert _text(change, PUSH, user="jenkins", password=PUSH_2) == 403  # admins only


def _text(url: str, text: str, user: str = "admin", password: str = ADMIN_PASSWORD) -> int:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, data=text.encode(), method="PUT", headers={
        "Content-Type": "text/plain", "Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_plan_decisions_keep_what_others_added() -> None:
    from jenkins_registry.nexus import Outcome
    from jenkins_registry.nexus_account import PushAccount, desired_role, plan_role, plan_user

    wanted = desired_role("docker-hosted")
    assert plan_role(None, wanted).outcome is Outcome.CREATED
    same = {**wanted, "source": "default", "readOnly": False}
    assert plan_role(same, wanted).body is None
    account = PushAccount(repository="docker-hosted", user_id="jenkins", password=Secret(PUSH))
    assert PUSH not in repr(account)
    current = {"userId": "jenkins", "firstName": "J", "lastName": "L", "emailAddress": "e@x.y",
               "source": "default", "status": "active", "roles": ["a", ROLE, "b"]}
    assert plan_user(current, account).outcome is Outcome.UNCHANGED
    plan = plan_user({**current, "roles": ["b", "a"]}, account)
    assert plan.body is not None and plan.body["roles"] == ["b", "a", ROLE]
    assert "password" not in plan.body and plan.body["source"] == "default"


# Cleanup tasks (issue 14) -----------------------------------------------------------------------
def task_lines(out: str) -> dict[str, str]:
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1].split(" (", 1)[0]
            for line in out.splitlines() if line.startswith("task ")}


def test_setup_reports_missing_cleanup_tasks_with_the_steps_to_create_them(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    state = new_state()
    state.tasks = [nexus_emulator.task("db.backup", "backup"),
                   nexus_emulator.task("repository.cleanup", "cleanup"),
                   nexus_emulator.task("security.purge-api-keys", "purge")]  # over two pages
    with nexus_emulator.nexus(state) as nexus:
        code, out, err = run(setup_cmd(nexus.url), capsys, caplog)
    assert code == 0, err
    assert task_lines(out) == {"task repository.docker.gc": "missing",
                               "task blobstore.compact": "missing"}
    assert 'Create task > "Docker - Delete unused manifests and images"' in out
    assert "Repository: docker-hosted; Deploy offset in hours: 24" in out
    assert 'Create task > "Admin - Compact blob store"' in out
    assert "Blob store: default." in out
    pages = [entry for entry in state.log if entry[1] == "/service/rest/v1/tasks"]
    assert len(pages) == 2  # the continuationToken was followed


def test_setup_reports_present_cleanup_tasks(capsys: pytest.CaptureFixture[str],
                                             caplog: pytest.LogCaptureFixture) -> None:
    state = new_state()
    state.blob_stores.add("docker-store")
    state.tasks = [nexus_emulator.task("repository.docker.gc", "docker gc nightly"),
                   nexus_emulator.task("blobstore.compact", "compact docker-store")]
    with nexus_emulator.nexus(state) as nexus:
        code, out, err = run(setup_cmd(nexus.url, "--blob-store", "docker-store", "--dry-run"),
                             capsys, caplog)
    assert code == 0, err
    assert task_lines(out.replace("dry run: ", "")) == {"task repository.docker.gc": "present",
                                                        "task blobstore.compact": "present"}
    assert "docker gc nightly" in out and "Create task" not in out
    assert state.writes() == []


def test_setup_on_a_nexus_without_the_tasks_api_says_it_cannot_tell(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    with nexus_emulator.nexus(new_state(tasks_api=False)) as nexus:
        code, out, err = run(setup_cmd(nexus.url), capsys, caplog)
    assert code == 0, err
    assert set(task_lines(out).values()) == {"unknown"} and "System > Tasks" in out


def test_emulator_lists_tasks_for_admins_only_and_filters_by_type() -> None:
    state = new_state()
    state.tasks = [nexus_emulator.task("blobstore.compact", "c"),
                   nexus_emulator.task("repository.docker.gc", "g")]

    def get(url: str, user: str, password: str) -> tuple[int, Any]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    with nexus_emulator.nexus(state) as nexus:
        tasks = f"{nexus.url}/service/rest/v1/tasks"
        assert get(tasks, "dev", "dev-pw")[0] == 403
        status, body = get(f"{tasks}?type=blobstore.compact", "admin", ADMIN_PASSWORD)
        assert status == 200 and [t["name"] for t in body["items"]] == ["c"]
        assert body["continuationToken"] is None
        assert set(body["items"][0]) == {"id", "name", "type", "message", "currentState",
                                         "lastRunResult", "nextRun", "lastRun"}
