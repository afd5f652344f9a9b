"""`jr login` / `jr logout` against the real registry, with a real file-backed keyring."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jenkins_registry.cli import login as login_cli
from jenkins_registry.cli.main import main as jr
from jenkins_registry.credentials import resolve_registry_credentials
from jenkins_registry.errors import ExitCode
from jenkins_registry.http_transport import Response
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.registry_auth import challenge_of
from jenkins_registry.registry_login import read_password_stdin
from tests.support import nexus_emulator, services
from tests.support.secret_checks import assert_absent, assert_absent_in_tree

SECRET = services.REGISTRY_PASSWORD
WRONG = "Wr0ng-Pa55-known-4d2b"

PLAINTEXT_BACKEND = "keyrings.alt.file.PlaintextKeyring"


@pytest.fixture(autouse=True)
def fresh_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """keyring caches its backend per process; each test detects it again from its environment."""
    import keyring.core

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)


@pytest.fixture
def file_keyring(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> Iterator[Path]:
    """keyrings.alt's PlaintextKeyring, its file under the temporary HOME's XDG_DATA_HOME."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", PLAINTEXT_BACKEND)
    import keyring

    backend = keyring.get_keyring()
    assert type(backend).__name__ == "PlaintextKeyring"
    path = Path(backend.file_path)
    assert isolated_home in path.parents
    yield path


def run(argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None,
        secrets: tuple[str, ...] = (SECRET, WRONG)) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    caplog.set_level(logging.DEBUG)
    code = jr(argv, dict(os.environ))
    out, err = capsys.readouterr()
    for secret in secrets:
        assert_absent(secret, out, err, caplog.text)
    # --debug prints the traceback (with its causes); it must not show a secret either.
    assert ("Traceback" in err) == ("--debug" in argv and code != 0)
    return code, out, err


def home_files_outside_keyring(home: Path, keyring_file: Path | None) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and p != keyring_file]


def test_login_stores_in_the_keyring_and_jr_push_finds_it(
    registry: services.Registry, file_keyring: Path, isolated_home: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run(["login", "--registry", registry.host, "--username", services.REGISTRY_USER,
                          "--password-stdin"], capsys, caplog, SECRET + "\n", monkeypatch)
    assert code == 0, err
    assert "Login Succeeded" in out and "PlaintextKeyring" in out
    stored = KeyringStore().get(registry.host)
    assert stored is not None
    assert stored.username == services.REGISTRY_USER
    assert stored.password.reveal() == SECRET  # the trailing newline was trimmed
    # The lookup jr-push does when the environment holds no credentials.
    found = resolve_registry_credentials(registry.host, environ={}, keyring_store=KeyringStore())
    assert found is not None and found.source == "keyring"
    assert not (isolated_home / ".docker" / "config.json").exists()
    for path in home_files_outside_keyring(isolated_home, file_keyring):
        assert_absent(SECRET, path.read_bytes())

    code, out, _ = run(["logout", "--registry", registry.host], capsys, caplog)
    assert code == 0 and "Removed" in out
    assert KeyringStore().get(registry.host) is None
    code, out, _ = run(["logout", "--registry", registry.host], capsys, caplog)
    assert code == 0 and "Not logged in" in out


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_wrong_password_is_rejected_and_nothing_is_stored(
    debug: list[str], registry: services.Registry, file_keyring: Path, isolated_home: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run([*debug, "login", "--registry", registry.host, "--username",
                          services.REGISTRY_USER, "--password-stdin"], capsys, caplog, WRONG, monkeypatch)
    assert code == ExitCode.AUTH
    assert "rejected the password" in err and out == ""
    assert KeyringStore().get(registry.host) is None
    assert_absent_in_tree(WRONG, [isolated_home])


def test_login_replaces_another_users_entry(
    registry: services.Registry, file_keyring: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jenkins_registry.secret_types import Secret

    KeyringStore().set(registry.host, "old-user", Secret("old-password-value"))
    code, _, err = run(["login", "--registry", registry.host, "--username", services.REGISTRY_USER,
                        "--password-stdin"], capsys, caplog, SECRET + "\r\n", monkeypatch)
    assert code == 0, err
    assert "replaced the stored credentials of 'old-user'" in err
    stored = KeyringStore().get(registry.host)
    assert stored is not None and stored.username == services.REGISTRY_USER
    assert stored.password.reveal() == SECRET
    assert "old-password-value" not in file_keyring.read_text()


def test_no_usable_keyring_gives_the_configuration_hint(
    registry: services.Registry, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert os.environ["PYTHON_KEYRING_BACKEND"] == "keyring.backends.fail.Keyring"
    code, _, err = run(["login", "--registry", registry.host, "--username", services.REGISTRY_USER,
                        "--password-stdin"], capsys, caplog, SECRET, monkeypatch)
    assert code == ExitCode.CREDENTIALS
    assert "No usable OS keyring backend" in err
    assert "PYTHON_KEYRING_BACKEND" in err and "keyrings.alt" in err
    code, _, err = run(["logout", "--registry", registry.host], capsys, caplog)
    assert code == ExitCode.CREDENTIALS and "PYTHON_KEYRING_BACKEND" in err


def test_without_stdin_or_terminal_it_errors_instead_of_hanging(
    registry: services.Registry, file_keyring: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    code, _, err = run(["login", "--registry", registry.host, "--username", "ci-bot"], capsys, caplog)
    assert code == ExitCode.CREDENTIALS
    assert "--password-stdin" in err


def test_interactive_prompt(registry: services.Registry, file_keyring: Path,
                            capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    questions: list[str] = []
    monkeypatch.setattr(login_cli, "interactive", lambda environ: True)
    monkeypatch.setattr(login_cli, "prompt_secret", lambda q: questions.append(q) or SECRET)
    code, _, err = run(["login", "--registry", registry.host, "--username", services.REGISTRY_USER],
                       capsys, caplog)
    assert code == 0, err
    assert questions == [f"Password for {services.REGISTRY_USER}@{registry.host}: "]


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_empty_password_is_refused(stdin: str, registry: services.Registry, file_keyring: Path,
                                   capsys: pytest.CaptureFixture[str],
                                   caplog: pytest.LogCaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(["login", "--registry", registry.host, "--username", "ci-bot",
                        "--password-stdin"], capsys, caplog, stdin, monkeypatch)
    assert code == ExitCode.CREDENTIALS and "empty" in err


def test_closed_port_is_unreachable(file_keyring: Path, capsys: pytest.CaptureFixture[str],
                                    caplog: pytest.LogCaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"127.0.0.1:{services.free_port()}"
    code, _, err = run(["login", "--registry", host, "--username", "ci-bot", "--password-stdin"],
                       capsys, caplog, SECRET, monkeypatch)
    assert code == ExitCode.UNREACHABLE
    assert f"jr doctor --registry {host}" in err
    assert KeyringStore().get(host) is None


@pytest.mark.parametrize("registry_arg, username", [("http://10.211.55.6:8082", "u"),
                                                     ("10.211.55.6:8082/repository/x", "u"),
                                                     ("10.211.55.6:8082", "a:b")])
def test_registry_and_username_are_checked(registry_arg: str, username: str, file_keyring: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           caplog: pytest.LogCaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(["login", "--registry", registry_arg, "--username", username,
                        "--password-stdin"], capsys, caplog, SECRET, monkeypatch)
    assert code == ExitCode.USAGE and "what to do:" in err


def test_registry_without_auth_is_stored_with_a_warning(
    file_keyring: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with services.registry(auth="none") as open_registry:
        code, _, err = run(["login", "--registry", open_registry.host, "--username", "anyone",
                            "--password-stdin"], capsys, caplog, SECRET, monkeypatch)
    assert code == 0
    assert "the password was not checked" in err


class BrokenKeyring:
    """A keyring backend that is usable by priority but fails every write (a locked store)."""

    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        import keyring.errors

        # Some backends quote what they were given; the secret must not travel on from here.
        raise keyring.errors.PasswordSetError(f"locked; could not store {password}")

    def delete_password(self, service: str, username: str) -> None:
        raise RuntimeError("locked")


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_failing_keyring_is_reported_without_the_secret(
    debug: list[str], registry: services.Registry, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import keyring.core

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    store = KeyringStore(backend=BrokenKeyring())
    monkeypatch.setattr("jenkins_registry.keyring_store.KeyringStore", lambda: store)
    code, _, err = run([*debug, "login", "--registry", registry.host, "--username",
                        services.REGISTRY_USER, "--password-stdin"], capsys, caplog, SECRET, monkeypatch)
    assert code == ExitCode.CREDENTIALS
    assert "The OS keyring failed to store (PasswordSetError)" in err


def test_bearer_login_against_the_nexus_connector(
    file_keyring: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nexus with the DockerToken realm answers Bearer: the token fetch checks the password."""
    state = nexus_emulator.NexusState(users={"admin": "admin-pw", "ci-bot": SECRET},
                                      active_realms=["NexusAuthenticatingRealm", "DockerToken"])
    port = services.free_port()
    state.repositories["docker-hosted"] = {
        "name": "docker-hosted", "online": True,
        "docker": {"forceBasicAuth": False, "v1Enabled": False, "httpPort": port},
    }
    with nexus_emulator.nexus(state) as nexus, nexus.connector("docker-hosted", port) as host:
        code, _, err = run(["login", "--registry", host, "--username", "ci-bot",
                            "--password-stdin"], capsys, caplog, WRONG, monkeypatch)
        assert code == ExitCode.AUTH and "token service" in err
        code, _, err = run(["login", "--registry", host, "--username", "ci-bot",
                            "--password-stdin"], capsys, caplog, SECRET, monkeypatch)
        assert code == 0, err
    assert any(path == "/v2/token" for _, path, _ in state.log)


def _response(status: int, challenge: str | None) -> Response:
    response = Response(status)
    if challenge is not None:
        response.headers["WWW-Authenticate"] = challenge
    return response


def test_challenges_are_read_with_the_shared_parser() -> None:
    bearer = challenge_of(_response(401, 'Bearer realm="https://auth.example/token",'
                                         'service="registry.example",'
                                         'scope="repository:samalba/my-app:pull,push"'))
    assert bearer is not None and bearer.scheme == "bearer"
    assert (bearer.realm, bearer.service, bearer.scope) == (
        "https://auth.example/token", "registry.example", "repository:samalba/my-app:pull,push")
    basic = challenge_of(_response(401, 'BASIC realm="Sonatype Nexus Repository Manager"'))
    assert basic is not None and basic.scheme == "basic"
    assert basic.realm == "Sonatype Nexus Repository Manager"
    assert challenge_of(_response(401, None)) is None
    assert challenge_of(_response(401, "")) is None


def test_password_stdin_trimming() -> None:
    assert read_password_stdin("pw\n").reveal() == "pw"
    assert read_password_stdin("pw\r\n").reveal() == "pw"
    assert read_password_stdin("pw\n\n").reveal() == "pw\n"
    assert read_password_stdin(" pw ").reveal() == " pw "


def test_login_to_a_port_that_is_not_a_registry(file_keyring: Path, capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The Nexus web UI port answers HTTP, but /v2/ is 404 there: say to use the connector port."""
    with nexus_emulator.nexus() as nexus:
        host = nexus.url.split("://", 1)[1]
        code, out, err = run(["login", "--registry", host, "--username", "ci-bot", "--password-stdin"],
                             capsys, caplog, SECRET, monkeypatch)
    assert code == ExitCode.REGISTRY and out == ""
    assert "not a Docker registry API endpoint" in err and "8082" in err
    assert KeyringStore().get(host) is None


def test_the_registry_as_docker_login_takes_it(
    registry: services.Registry, file_keyring: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`jr login REGISTRY` like `docker login SERVER`; --registry still works; JR_REGISTRY is the
    default; two different registries are a usage error before anything is sent or stored."""
    code, out, err = run(["login", registry.host, "--username", services.REGISTRY_USER,
                          "--password-stdin"], capsys, caplog, SECRET + "\n", monkeypatch)
    assert code == 0 and "Login Succeeded" in out, err
    assert KeyringStore().get(registry.host) is not None
    code, _, err = run(["login", registry.host, "--registry", "other.example:5000", "--username",
                        services.REGISTRY_USER, "--password-stdin"], capsys, caplog, SECRET + "\n",
                       monkeypatch)
    assert code == ExitCode.USAGE and "Two registries given" in err
    monkeypatch.setenv("JR_REGISTRY", registry.host)
    code, out, _ = run(["logout"], capsys, caplog)
    assert code == 0 and "Removed" in out
    assert KeyringStore().get(registry.host) is None
    monkeypatch.delenv("JR_REGISTRY")
    code, _, err = run(["logout"], capsys, caplog)
    assert code == ExitCode.USAGE and "JR_REGISTRY" in err


def test_jr_help_names_jr_push(capsys: pytest.CaptureFixture[str]) -> None:
    assert jr(["--help"], {}) == 0
    assert "jr-push --help" in capsys.readouterr().out
