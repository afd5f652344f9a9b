"""`jr doctor` against the real registry, the real engine, closed ports and the Nexus emulator."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.main import main as jr
from jenkins_registry.errors import ExitCode
from jenkins_registry.http_transport import HttpTransport, Response
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.secret_types import Secret
from tests.support import nexus_emulator, services
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD
WRONG = "Wr0ng-Pa55-known-4d2b"


@pytest.fixture(autouse=True)
def fresh_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring.core

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)


def doctor(argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str],
           caplog: pytest.LogCaptureFixture) -> tuple[int, dict[str, str], str, str]:
    """Run `jr doctor`; return the exit code, {check name: its line (and fix)}, stdout, stderr."""
    caplog.set_level(logging.DEBUG)
    code = jr(["doctor", *argv], environ)
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err, caplog.text)
    assert_absent(WRONG, out, err, caplog.text)
    assert ("Traceback" in err) == ("--debug" in argv and code != 0)
    lines: dict[str, str] = {}
    last = ""
    for line in out.splitlines()[1:]:
        if line.startswith("       fix: "):
            lines[last] += "\n" + line.strip()
        elif line.startswith("["):
            last = line[7:].split(":", 1)[0]
            lines[last] = line
    return code, lines, out, err


def base_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def creds_env(registry: services.Registry, password: str = SECRET, **extra: str) -> dict[str, str]:
    return base_env(DOCKER_LOGIN_USERNAME=registry.username or "", DOCKER_LOGIN_PASSWORD=password,
                    **extra)


ORDER = ["name resolution", "TCP connection", "HTTPS /v2/", "HTTP /v2/", "engine allows HTTP",
         "auth scheme", "credentials", "push permission"]


def uploads(registry: services.Registry, repository: str) -> tuple[int, list[Path]]:
    """(upload sessions ever opened, files of sessions still open) in the registry's storage.

    A cancelled session loses its `data` and `startedat` files (distribution keeps `hashstates`).
    """
    root = (registry.root / "data" / "docker" / "registry" / "v2" / "repositories" / repository
            / "_uploads")
    if not root.exists():
        return 0, []
    sessions = list(root.iterdir())
    return len(sessions), [p for s in sessions for p in s.iterdir() if p.name in ("data", "startedat")]


def test_healthy_registry_passes_every_check(
    registry: services.Registry, docker_env: str, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    code, lines, out, err = doctor(["--registry", registry.host, "--image", "doctor/healthy"],
                                   creds_env(registry, DOCKER_HOST=docker_env), capsys, caplog)
    assert list(lines)[:8] == ORDER
    assert lines["name resolution"].startswith("[ ok ]")
    assert lines["TCP connection"].startswith("[ ok ]")
    assert lines["HTTPS /v2/"].startswith("[info]") and "no TLS" in lines["HTTPS /v2/"]
    assert lines["HTTP /v2/"].startswith("[ ok ]") and "plain HTTP (HTTP 401)" in lines["HTTP /v2/"]
    assert lines["engine allows HTTP"].startswith("[ ok ]") and "loopback" in lines["engine allows HTTP"]
    assert 'Basic (realm "basic-realm")' in lines["auth scheme"]
    assert lines["credentials"].startswith("[ ok ]")
    assert "'ci-bot' from environment (DOCKER_LOGIN_USERNAME/DOCKER_LOGIN_PASSWORD)" in lines["credentials"]
    assert lines["push permission"].startswith("[ ok ]")
    assert "doctor/healthy: opened and cancelled a blob upload" in lines["push permission"]
    assert uploads(registry, "doctor/healthy") == (1, [])  # opened, then really cancelled
    # The image was not built, so that one line fails and the exit code says so.
    assert lines["local image"].startswith("[FAIL]") and "docker build -t doctor/healthy" in out
    assert code == ExitCode.CHECK_FAILED
    assert "1 check(s) block a push: local image" in err


def test_keyring_credentials_and_a_local_image(
    registry: services.Registry, docker_env: str, docker_client: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    KeyringStore().set(registry.host, services.REGISTRY_USER, Secret(SECRET))
    services.build_image(docker_client, "doctor-app:1", {"a.txt": b"doctor\n"})
    code, lines, out, _ = doctor(["--registry", registry.host, "--image", "doctor-app:1"],
                                 base_env(DOCKER_HOST=docker_env), capsys, caplog)
    assert code == 0, out
    assert "'ci-bot' from keyring accepted (Basic)" in lines["credentials"]
    assert "may push to doctor-app" in lines["push permission"]
    assert lines["local image"].startswith("[ ok ]") and "doctor-app:1 exists locally" in out
    assert out.rstrip().endswith("nothing blocks a push")


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_wrong_password_fails_the_credentials_check(
    debug: list[str], registry: services.Registry, docker_env: str,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    code, lines, _, err = doctor(["--registry", registry.host, *debug],
                                 creds_env(registry, WRONG, DOCKER_HOST=docker_env), capsys, caplog)
    assert code == ExitCode.CHECK_FAILED
    assert lines["credentials"].startswith("[FAIL]") and "rejected the password" in lines["credentials"]
    assert lines["push permission"].startswith("[skip]")
    assert "credentials" in err


def test_missing_credentials_say_how_to_provide_them(
    registry: services.Registry, docker_env: str, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    code, lines, _, _ = doctor(["--registry", registry.host], base_env(DOCKER_HOST=docker_env),
                               capsys, caplog)
    assert code == ExitCode.CHECK_FAILED
    assert lines["credentials"].startswith("[FAIL]")
    assert "PYTHON_KEYRING_BACKEND" in lines["credentials"]  # the autouse failing keyring
    assert f"jr login --registry {registry.host} --username USER --password-stdin" in lines["credentials"]
    code, lines, _, _ = doctor(["--registry", registry.host],
                               base_env(DOCKER_HOST=docker_env, DOCKER_LOGIN_USERNAME="ci-bot"),
                               capsys, caplog)
    assert code == ExitCode.CHECK_FAILED
    assert "DOCKER_LOGIN_PASSWORD is empty or missing" in lines["credentials"]


def test_closed_port_says_nothing_listens(docker_env: str, capsys: pytest.CaptureFixture[str],
                                          caplog: pytest.LogCaptureFixture) -> None:
    port = services.free_port()
    code, lines, out, _ = doctor(["--registry", f"127.0.0.1:{port}"], base_env(DOCKER_HOST=docker_env),
                                 capsys, caplog)
    assert code == ExitCode.CHECK_FAILED
    assert lines["TCP connection"].startswith("[FAIL]") and "connection refused" in lines["TCP connection"]
    assert f"listens on port {port}" in out and "firewall-cmd" not in out  # refused: not a firewall
    for later in ORDER[2:]:
        assert lines[later].startswith("[skip]"), lines[later]


def test_unresolvable_name(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    code, lines, _, _ = doctor(["--registry", "no-such-registry.invalid:8082"], base_env(), capsys,
                               caplog)
    assert code == ExitCode.CHECK_FAILED
    assert lines["name resolution"].startswith("[FAIL]") and "/etc/hosts" in lines["name resolution"]
    assert lines["TCP connection"].startswith("[skip]")


def test_a_port_that_is_not_a_registry(capsys: pytest.CaptureFixture[str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    """The Nexus web port (8081) answers, but not the registry API."""
    with nexus_emulator.nexus() as nexus:
        host = nexus.url.split("://", 1)[1]
        code, lines, _, _ = doctor(["--registry", host], base_env(), capsys, caplog)
    assert code == ExitCode.CHECK_FAILED
    assert lines["HTTP /v2/"].startswith("[FAIL]") and "HTTP 404" in lines["HTTP /v2/"]
    assert "not the web UI port 8081" in lines["HTTP /v2/"]
    assert lines["credentials"].startswith("[skip]")


def test_engine_without_the_insecure_entry(docker_env: str, capsys: pytest.CaptureFixture[str],
                                           caplog: pytest.LogCaptureFixture) -> None:
    """The real engine counts only 127.0.0.0/8 as implicitly insecure: an HTTP registry on ::1 is
    what a non-loopback HTTP registry looks like to it."""
    with services.registry(listen="::1") as v6:
        code, lines, out, _ = doctor(["--registry", v6.host], creds_env(v6, DOCKER_HOST=docker_env),
                                     capsys, caplog)
    assert code == ExitCode.CHECK_FAILED
    assert lines["engine allows HTTP"].startswith("[FAIL]")
    assert "server gave HTTP response to HTTPS client" in out
    assert f'"insecure-registries": ["{v6.host}"]' in out
    assert f"jr docker insecure-registry add {v6.host} --reload" in out
    assert lines["credentials"].startswith("[ ok ]")  # the rest is still diagnosed


def test_unreachable_engine_is_a_warning(registry: services.Registry, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    environ = creds_env(registry, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    code, lines, out, _ = doctor(["--registry", registry.host, "--image", "anything"], environ,
                                 capsys, caplog)
    assert code == 0, out
    assert lines["engine allows HTTP"].startswith("[warn]")
    assert "Cannot reach the Docker engine" in lines["engine allows HTTP"]
    assert lines["local image"].startswith("[warn]")


def _nexus_with_connector(force_basic: bool, realms: list[str]) -> tuple[nexus_emulator.NexusState, int]:
    port = services.free_port()
    state = nexus_emulator.NexusState(
        users={"admin": "admin-pw", "ci-bot": SECRET, "reader": "reader-pw"},
        writers={"admin", "ci-bot"}, active_realms=realms,
    )
    state.repositories["docker-hosted"] = {
        "name": "docker-hosted", "online": True,
        "docker": {"forceBasicAuth": force_basic, "v1Enabled": False, "httpPort": port},
    }
    return state, port


def test_nexus_basic_realm_is_explained(docker_env: str, capsys: pytest.CaptureFixture[str],
                                        caplog: pytest.LogCaptureFixture) -> None:
    state, port = _nexus_with_connector(True, ["NexusAuthenticatingRealm", "NexusAuthorizingRealm"])
    with nexus_emulator.nexus(state) as nexus, nexus.connector("docker-hosted", port) as host:
        environ = base_env(DOCKER_HOST=docker_env, DOCKER_LOGIN_USERNAME="ci-bot",
                           DOCKER_LOGIN_PASSWORD=SECRET)
        code, lines, out, _ = doctor(["--registry", host], environ, capsys, caplog)
    assert code == 0, out  # Basic works for login and push: a warning, not a blocker
    assert lines["auth scheme"].startswith("[warn]")
    assert 'realm "Sonatype Nexus Repository Manager"' in lines["auth scheme"]
    assert "forceBasicAuth" in lines["auth scheme"] and "DockerToken" in lines["auth scheme"]
    assert "jr nexus setup" in lines["auth scheme"]
    assert lines["push permission"].startswith("[ ok ]")


def test_nexus_bearer_token_and_push_permission(docker_env: str, capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    state, port = _nexus_with_connector(False, ["NexusAuthenticatingRealm", "DockerToken"])
    with nexus_emulator.nexus(state) as nexus, nexus.connector("docker-hosted", port) as host:
        environ = base_env(DOCKER_HOST=docker_env, DOCKER_LOGIN_USERNAME="ci-bot",
                           DOCKER_LOGIN_PASSWORD=SECRET)
        code, lines, out, _ = doctor(["--registry", host, "--image", f"{host}/jenkins-test:v1"],
                                     environ, capsys, caplog)
        assert lines["auth scheme"].startswith("[ ok ]") and "Bearer (token realm" in lines["auth scheme"]
        assert "accepted (token fetched)" in lines["credentials"]
        assert "may push to jenkins-test: opened and cancelled" in lines["push permission"]
        assert code == ExitCode.CHECK_FAILED  # only because the image is not built locally
        assert [m for m, p, _ in state.log if "/blobs/uploads/" in p] == ["POST", "DELETE"]

        reader = base_env(DOCKER_HOST=docker_env, DOCKER_LOGIN_USERNAME="reader",
                          DOCKER_LOGIN_PASSWORD="reader-pw")
        code, lines, out, _ = doctor(["--registry", host], reader, capsys, caplog)
    assert code == ExitCode.CHECK_FAILED
    assert lines["credentials"].startswith("[ ok ]")
    assert lines["push permission"].startswith("[FAIL]") and "HTTP 403" in lines["push permission"]
    assert "nx-repository-view-docker" in out


# A registry that speaks HTTPS (a self-signed certificate for 127.0.0.1) -------------------------
@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cert_path, key_path = services.self_signed_certificate(tmp_path_factory.mktemp("tls"),
                                                           "jr-test-registry")
    # With auth="none" the extra YAML continues the `http:` section.
    tls = f"  tls:\n    certificate: {cert_path}\n    key: {key_path}\n"
    with services.registry(auth="none", extra_config=tls) as reg:
        yield reg, cert_path


def test_untrusted_https_certificate(tls_registry: Any, docker_env: str,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    reg, _ = tls_registry
    code, lines, out, _ = doctor(["--registry", reg.host], base_env(DOCKER_HOST=docker_env), capsys,
                                 caplog)
    assert code == ExitCode.CHECK_FAILED
    assert lines["HTTPS /v2/"].startswith("[FAIL]") and "does not trust" in lines["HTTPS /v2/"]
    assert f"/etc/docker/certs.d/{reg.host}/ca.crt" in out
    assert lines["HTTP /v2/"].startswith("[info]") and "HTTP 400" in lines["HTTP /v2/"]
    # jr login does not fall back to plain HTTP (nor send the password) past an untrusted certificate.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET))
    code = jr(["login", "--registry", reg.host, "--username", "u", "--password-stdin"], base_env())
    out, err = capsys.readouterr()
    assert code == ExitCode.REGISTRY, err
    assert "certificate this machine does not trust" in err and "certs.d" in err
    assert_absent(SECRET, out, err)
    assert KeyringStore().get(reg.host) is None


def test_trusted_https_registry(tls_registry: Any, docker_env: str, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str],
                                caplog: pytest.LogCaptureFixture) -> None:
    reg, cert_path = tls_registry
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_path))
    code, lines, out, _ = doctor(["--registry", reg.host], base_env(DOCKER_HOST=docker_env), capsys,
                                 caplog)
    assert code == 0, out
    assert lines["HTTPS /v2/"].startswith("[ ok ]") and "speaks HTTPS (HTTP 200)" in lines["HTTPS /v2/"]
    assert lines["engine allows HTTP"].startswith("[skip]") and "speaks HTTPS" in lines["engine allows HTTP"]
    assert lines["auth scheme"].startswith("[info]")
    assert "needs none" in lines["credentials"]
    assert lines["push permission"].startswith("[ ok ]")


def test_login_over_verified_https(tls_registry: Any, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str],
                                   caplog: pytest.LogCaptureFixture) -> None:
    """With the CA trusted (REQUESTS_CA_BUNDLE), `jr login` uses HTTPS even on loopback."""
    reg, cert_path = tls_registry
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_path))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET))
    caplog.set_level(logging.DEBUG)
    urls: list[str] = []  # every URL the transport is asked for (urllib3's debug log used to show them)
    real_request = HttpTransport.request

    def recording(self: HttpTransport, method: str, url: str, **kwargs: Any) -> Response:
        urls.append(url)
        return real_request(self, method, url, **kwargs)

    monkeypatch.setattr(HttpTransport, "request", recording)
    code = jr(["login", "--registry", reg.host, "--username", "u", "--password-stdin"], base_env())
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "the password was not checked" in err  # this registry asks for no credentials
    sent = "\n".join(urls)
    assert f"https://{reg.host}" in sent and f"http://{reg.host}" not in sent
    assert_absent(SECRET, out, err, caplog.text)


def test_the_registry_defaults_to_jr_registry(docker_env: str, capsys: pytest.CaptureFixture[str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    port = services.free_port()
    code, _, out, _ = doctor([], base_env(DOCKER_HOST=docker_env, JR_REGISTRY=f"127.0.0.1:{port}"),
                                 capsys, caplog)
    assert code == ExitCode.CHECK_FAILED and out.startswith(f"jr doctor: 127.0.0.1:{port}")
    code, _, _, err = doctor([], base_env(), capsys, caplog)
    assert code == ExitCode.USAGE and "JR_REGISTRY" in err


def test_repository_names_the_path_whose_push_permission_is_checked(
    registry: services.Registry, docker_env: str, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """--repository, as in jr-push and jr render: the path in the registry, whatever --image is."""
    code, lines, _, _ = doctor(["--registry", registry.host, "--repository", "doctor/chosen-path"],
                               creds_env(registry, DOCKER_HOST=docker_env), capsys, caplog)
    assert code == 0
    assert "doctor/chosen-path: opened and cancelled a blob upload" in lines["push permission"]
    assert uploads(registry, "doctor/chosen-path") == (1, [])

    code, _, _, err = doctor(["--registry", registry.host, "--repository", "Not/Valid"],
                             creds_env(registry, DOCKER_HOST=docker_env), capsys, caplog)
    assert code == ExitCode.USAGE and "Not/Valid" in err
