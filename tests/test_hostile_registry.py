"""The registry client under hostile servers (issue 11): clear-text credentials, token realms,
echoed secrets, endless bodies, trickling and silent servers, redirected writes, and values no
request can carry.

Each test stages one misbehaviour on loopback: `hostile_server` in front of the real registry
(or alone), TLS with certificates made here. A registry that must look like another machine is
reached as `registry.test`, which this process alone resolves to 127.0.0.1 (socket.getaddrinfo
patched): for the client it is not loopback, yet no packet leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jenkins_registry.cli import push as push_cli
from jenkins_registry.cli.main import main as jr
from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.errors import (
    ExitCode,
    InsecureRegistryError,
    JrError,
    RegistryError,
    UnreachableError,
    redact,
)
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.registry_auth import MAX_TOKEN_SECONDS, token_lifetime
from jenkins_registry.registry_blobs import BytesBody
from jenkins_registry.registry_client import MANIFEST_LIMIT, RegistryClient
from jenkins_registry.registry_session import PUSH_BUDGET, REQUEST_TIMEOUT, RetryPolicy, SchemePolicy
from jenkins_registry.secret_types import Secret, UsernamePassword
from tests.support import services
from tests.support.hostile_server import (
    Hook,
    Reply,
    Request,
    endless,
    hostile_server,
    server_context,
    silence,
    trickle,
)
from tests.support.secret_checks import assert_absent
from tests.test_image_archive import sample_layers, write_classic, write_oci_dir

SECRET = services.REGISTRY_PASSWORD
USER = services.REGISTRY_USER
BASIC = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()  # what `Authorization: Basic` carries
FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05, total_seconds=30)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# An endless body is cut at its cap; what the server got into the socket before the client hung
# up stays far below what it would send to a client that reads everything (socket buffers on
# loopback hold a few MiB).
ENDLESS = 64 << 20
FLAT = 32 << 20


def creds(password: str = SECRET) -> UsernamePassword:
    return UsernamePassword(username=USER, password=Secret(password), source="test")


def no_secret(*texts: str | None) -> None:
    for text in texts:
        assert_absent(SECRET, text)
        assert text is None or BASIC[:20] not in text


@pytest.fixture
def file_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    """Two self-signed certificates for 127.0.0.1: the registry's and a stranger's."""
    return (services.self_signed_certificate(tmp_path_factory.mktemp("tls-registry"), "jr-hostile"),
            services.self_signed_certificate(tmp_path_factory.mktemp("tls-realm"), "jr-stranger"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile-archive") / "app.tar"
    write_classic(path, sample_layers(), ("team/app:v1",))
    return path


def push_env(**extra: str) -> dict[str, str]:
    return {"DOCKER_LOGIN_USERNAME": USER, "DOCKER_LOGIN_PASSWORD": SECRET,
            "DOCKER_HOST": "unix:///nonexistent/docker.sock", **extra}


def run_push(argv: list[str], capsys: pytest.CaptureFixture[str],
             env: dict[str, str] | None = None) -> tuple[int, str, str]:
    code = jr_push(argv, push_env() if env is None else env)
    out, err = capsys.readouterr()
    no_secret(out, err)
    return code, out, err


def one_line_error(err: str, prog: str = "jr-push") -> str:
    """The error line of a failed run: no traceback, no "bug" message, one line and its hint."""
    assert "Traceback" not in err and "this is a bug" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: ")]
    assert [line.split(":", 2)[1] for line in lines] == [" error", " what to do"], err
    return lines[0]


def basic_registry(request: Request) -> Reply | None:
    """/v2/ of a Basic-auth registry: 401 and a challenge without credentials, 200 with them."""
    if request.path != "/v2/":
        return None
    if request.auth_scheme == "basic":
        return Reply(200, [("Content-Type", "application/json")], b"{}")
    return Reply(401, [("WWW-Authenticate", 'Basic realm="hostile"')], b"")


def bearer_registry(realm: str) -> Reply:
    return Reply(401, [("WWW-Authenticate", f'Bearer realm="{realm}",service="hostile"')], b"")


# -- 1. no credential over plain HTTP to another machine unless the user opted in --------------------


@pytest.mark.parametrize("command", ["login", "doctor", "push"])
def test_no_command_sends_credentials_in_clear_text_to_a_remote_plain_http_registry(
        command: str, remote: str, archive: Path, file_keyring: None,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with hostile_server(hook=basic_registry) as server:
        registry = f"{remote}:{server.port}"
        env = push_env()
        if command == "login":
            monkeypatch.setattr("sys.stdin", io.StringIO(SECRET))
            code = jr(["login", "--registry", registry, "-u", USER, "--password-stdin"], env)
        elif command == "doctor":
            code = jr(["doctor", "--registry", registry], env)
        else:
            code = jr_push(["--from-archive", str(archive), "--registry", registry], env)
        out, err = capsys.readouterr()
        assert server.record.authorized() == []  # not one request carried Authorization
        assert server.record.requests  # the server was asked (probed) without credentials
    no_secret(out, err)
    assert "Login Succeeded" not in out
    assert KeyringStore().get(registry) is None
    if command == "doctor":
        assert code == ExitCode.CHECK_FAILED
        line = next(line for line in out.splitlines() if "] credentials:" in line)
        assert line.startswith("[FAIL]") and "clear text" in line and "not checked" in line
        assert "jr doctor --insecure" in out
    else:
        assert code == ExitCode.INSECURE, err
        line = one_line_error(err, "jr-push" if command == "push" else "jr")
        assert "speaks plain HTTP" in line and "--insecure" in err
        assert "insecure-registries" not in err  # no engine on this route


@pytest.mark.parametrize("command", ["login", "doctor"])
def test_insecure_opts_in_for_that_registry(command: str, remote: str, file_keyring: None,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with hostile_server(hook=basic_registry) as server:
        registry = f"{remote}:{server.port}"
        if command == "login":
            monkeypatch.setattr("sys.stdin", io.StringIO(SECRET))
            code = jr(["login", "--insecure", "--registry", registry, "-u", USER, "--password-stdin"],
                      push_env())
        else:
            code = jr(["doctor", "--insecure", "--registry", registry], push_env())
        out, err = capsys.readouterr()
        assert [r.auth_scheme for r in server.record.authorized()][:1] == ["basic"]
    no_secret(out, err)
    if command == "login":
        assert code == 0, err
        assert "Login Succeeded" in out and KeyringStore().get(registry) is not None
    else:
        line = next(line for line in out.splitlines() if "] credentials:" in line)
        assert line.startswith("[ ok ]") and "accepted (Basic)" in line


def test_the_session_refuses_clear_text_credentials_whatever_scheme_it_is_pinned_to(
        remote: str) -> None:
    """The guard under every command: even pinned to plain HTTP (as jr doctor pins the scheme its
    probes found), the session sends no password to a remote host without the opt-in."""
    with hostile_server(hook=basic_registry) as server:
        registry = f"{remote}:{server.port}"
        policy = SchemePolicy.login(registry).pinned("http")
        with RegistryClient(registry, credentials=creds(), policy=policy, retry=FAST) as client, \
                pytest.raises(InsecureRegistryError) as info:
            client.check_login()
        assert server.record.authorized() == []
    assert info.value.exit_code == ExitCode.INSECURE
    assert f"to {registry} over plain HTTP" in info.value.message and "--insecure" in info.value.hint
    no_secret(str(info.value), info.value.hint)


@pytest.mark.parametrize("rule,registry,url,allowed", [
    ("login", "registry.test:5000", "http://registry.test:5000/v2/", False),
    ("login", "registry.test:5000", "https://registry.test:5000/v2/", True),
    ("login --insecure", "registry.test:5000", "http://registry.test:5000/v2/", True),
    ("login --insecure", "registry.test:5000", "http://auth.test/token", False),
    ("push", "registry.test:5000", "http://registry.test:5000/v2/", False),
    ("push --insecure", "registry.test:5000", "http://registry.test:9/token", True),
    ("engine", "registry.test:5000", "http://registry.test:5000/v2/", False),
    ("engine insecure", "registry.test:5000", "http://registry.test:5000/v2/", True),
    ("push", "127.0.0.1:5000", "http://127.0.0.1:5001/token", True),
    ("push", "127.0.0.1:5000", "http://auth.test/token", False),
    ("login", "[::1]:5000", "http://[::1]:5000/v2/", True),
    ("login", "registry.test:5000", "http://[::1:80]/v2/", False),  # not ::1 on port 80
])
def test_one_rule_for_credentials_over_plain_http(rule: str, registry: str, url: str,
                                                   allowed: bool) -> None:
    insecure = "insecure" in rule
    policy = (SchemePolicy.login(registry, insecure=insecure) if rule.startswith("login") else
              SchemePolicy.from_insecure_flag(registry, insecure=insecure) if rule.startswith("push")
              else SchemePolicy.from_engine(registry, insecure=insecure))
    assert policy.allows_credentials(url, registry) is allowed


# -- 2. token realms: no plain HTTP for an HTTPS registry; relaxed TLS for the registry's host only ---


def test_an_https_registry_naming_a_plain_http_realm_gets_no_credentials_sent_there(
        certificates: tuple[tuple[Path, Path], tuple[Path, Path]]) -> None:
    cert = certificates[0]
    with hostile_server() as realm:
        def challenge(request: Request) -> Reply | None:
            return bearer_registry(f"http://127.0.0.1:{realm.port}/token")

        with hostile_server(hook=challenge, tls=server_context(cert)) as registry:
            host = registry.host
            with RegistryClient(host, credentials=creds(), policy=SchemePolicy.login(host),
                                ca_bundle=str(cert[0]), retry=FAST) as client, \
                    pytest.raises(RegistryError) as info:
                client.check_login()
            assert client.base_url == f"https://{host}"
        assert realm.record.requests == []  # the password never went out in clear text
    assert info.value.exit_code == ExitCode.REGISTRY
    assert "plain-HTTP token service" in info.value.message
    no_secret(str(info.value))


def test_relaxed_tls_applies_to_the_registry_host_only(
        remote: str, certificates: tuple[tuple[Path, Path], tuple[Path, Path]]) -> None:
    """--insecure relaxes TLS for the registry; a token realm on another host whose certificate
    does not verify gets no connection past the handshake, so no password."""
    own, stranger = certificates
    with hostile_server(tls=server_context(stranger)) as realm:
        def challenge(request: Request) -> Reply | None:
            return bearer_registry(f"https://localhost:{realm.port}/token")

        with hostile_server(hook=challenge, tls=server_context(own)) as registry:
            host = f"{remote}:{registry.port}"
            policy = SchemePolicy.from_insecure_flag(host, insecure=True)
            with RegistryClient(host, credentials=creds(), policy=policy, retry=FAST) as client, \
                    pytest.raises(InsecureRegistryError) as info:
                client.check_login()
            assert client.base_url == f"https://{host}"  # its own, unverified certificate: fine
            assert registry.record.count("GET", "/v2/") == 1
        assert realm.record.requests == []
    assert "(token realm: certificate verify failed)" in info.value.message


# -- 3. echoed credentials are redacted wherever text is shown --------------------------------------


def echo_the_header(request: Request) -> Reply | None:
    if request.method == "POST" and "/blobs/uploads/" in request.path:
        message = f"bad header Basic {BASIC} from {USER}:{SECRET} and base64 {BASIC[4:]}"
        body = json.dumps({"errors": [{"code": "UNKNOWN", "message": message}]}).encode()
        return Reply(503, [("Content-Type", "application/json")], body)
    return None


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_an_error_body_echoing_the_authorization_header_is_redacted(
        debug: list[str], registry: services.Registry, archive: Path,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with hostile_server(registry.host, hook=echo_the_header) as proxy:
        code, out, err = run_push(["--from-archive", str(archive), "--registry", proxy.host,
                                   "--name", "hostile/echo", "--timeout", "2", *debug], capsys)
    assert code == ExitCode.REGISTRY
    assert "bad header Basic ****" in err
    assert "retrying" in err  # the INFO lines went through the same redaction
    no_secret(out, err, caplog.text)
    assert BASIC[4:24] not in err + caplog.text


def test_registry_text_is_redacted_in_retry_logs_and_exception_text(
        registry: services.Registry, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("jenkins_registry"), "propagate", True)  # CLI tests unset it
    caplog.set_level(logging.INFO)
    with hostile_server(registry.host, hook=echo_the_header) as proxy, \
            RegistryClient(proxy.host, credentials=creds(), retry=FAST) as client, \
            pytest.raises(RegistryError) as info:
        client.start_upload("hostile/echo")
    assert "retrying" in caplog.text and "bad header Basic ****" in caplog.text
    no_secret(caplog.text, str(info.value), repr(info.value), repr(info.value.args))


def test_redaction_of_basic_and_bearer_values() -> None:
    text = f"h: Basic {BASIC}; raw {BASIC}; Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln x"
    shown = redact(text, [SECRET])
    assert BASIC not in shown and BASIC[10:] not in shown and "eyJ" not in shown
    assert shown.startswith("h: Basic ****; raw ") and shown.endswith("Bearer **** x")
    prose = 'Docker supports only Basic and Bearer; Bearer realm="https://r/t" Basic authentication'
    assert redact(prose, []) == prose


# -- 4. bodies are capped: past the cap, a clear error and memory stays flat --------------------------


def test_an_endless_manifest_is_refused_at_its_cap(registry: services.Registry) -> None:
    with hostile_server(registry.host) as proxy:
        def manifest(request: Request) -> Reply | None:
            if request.method == "GET" and "/manifests/" in request.path:
                return Reply(200, [("Content-Type", DOCKER_MANIFEST)],
                             endless(limit=ENDLESS, record=proxy.record))
            return None

        proxy.hook = manifest
        with RegistryClient(proxy.host, credentials=creds(), retry=FAST) as client, \
                pytest.raises(RegistryError) as info:
            client.get_manifest("hostile/huge", "v1", (DOCKER_MANIFEST,))
    assert f"larger than {MANIFEST_LIMIT >> 20} MiB" in info.value.message
    assert proxy.record.written < FLAT


def test_an_endless_token_answer_is_refused_at_its_cap() -> None:
    with hostile_server() as server:
        def token(request: Request) -> Reply | None:
            if request.path == "/v2/":
                return bearer_registry(f"http://{server.host}/token")
            return Reply(200, [("Content-Type", "application/json")],
                         endless(b'{"token":"' + b"a" * 65526, limit=ENDLESS, record=server.record))

        server.hook = token
        with RegistryClient(server.host, credentials=creds(), retry=FAST) as client, \
                pytest.raises(RegistryError) as info:
            client.check_credentials("hostile/token")
    assert "token server's answer is larger than 1024 KiB" in info.value.message
    assert server.record.written < FLAT


def test_an_endless_error_body_on_the_upload_post_is_cut(registry: services.Registry) -> None:
    with hostile_server(registry.host) as proxy:
        def error(request: Request) -> Reply | None:
            if request.method == "POST":
                return Reply(500, [("Content-Type", "application/json")],
                             endless(b'{"errors":[' + b" " * 65525, limit=ENDLESS, record=proxy.record))
            return None

        proxy.hook = error
        with RegistryClient(proxy.host, credentials=creds(), retry=FAST) as client, \
                pytest.raises(RegistryError) as info:
            client.start_upload("hostile/error-body")
    assert info.value.message.endswith("failed: HTTP 500")
    assert proxy.record.count("POST") == FAST.attempts
    assert proxy.record.written < FLAT


# -- 5. a deadline per request and a budget per push ---------------------------------------------------


ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


def test_a_server_trickling_its_answer_is_cut_at_the_request_deadline() -> None:
    stop = threading.Event()
    with hostile_server(raw=trickle(ANSWER, 0.2, stop)) as server:  # ~16 s for the whole answer
        retry = RetryPolicy(attempts=3, initial_delay=0.01, request_timeout=1.0)
        started = time.monotonic()
        with RegistryClient(server.host, retry=retry) as client, pytest.raises(UnreachableError):
            client.ping("http")
        elapsed = time.monotonic() - started
        stop.set()
    assert elapsed < 8.0  # the deadline (1 s) plus a loaded machine's margin; 16 s without it
    assert len(server.record.requests) == 1  # the ping does not retry a timeout


def test_a_server_that_never_answers_costs_one_request_timeout() -> None:
    stop = threading.Event()
    with hostile_server(raw=silence(stop)) as server:
        retry = RetryPolicy(attempts=5, initial_delay=0.01, request_timeout=1.0)
        started = time.monotonic()
        with RegistryClient(server.host, retry=retry) as client, \
                pytest.raises(UnreachableError) as info:
            client.ping("http")
        elapsed = time.monotonic() - started
        stop.set()
    assert "timed out" in info.value.message
    assert elapsed < 8.0 and len(server.record.requests) == 1


@pytest.mark.parametrize("how", ["option", "environment"])
def test_request_timeout_is_settable_for_jr_push(how: str, archive: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    with hostile_server(raw=trickle(ANSWER, 0.2, stop)) as server:
        argv = ["--from-archive", str(archive), "--registry", server.host]
        env = push_env()
        if how == "option":
            argv += ["--request-timeout", "1"]
        else:
            env["JR_REQUEST_TIMEOUT"] = "1"
        started = time.monotonic()
        code, _, err = run_push(argv, capsys, env)
        elapsed = time.monotonic() - started
        stop.set()
    assert code == ExitCode.UNREACHABLE, err
    assert "timed out" in one_line_error(err)
    assert elapsed < 10.0  # two schemes of 1 s each, plus margin; 16 s per scheme without it


def test_the_push_budget_bounds_every_retry(registry: services.Registry) -> None:
    with hostile_server(registry.host) as proxy:
        def unavailable(request: Request) -> Reply | None:
            return Reply(503, [], b"") if request.method == "POST" else None

        proxy.hook = unavailable
        retry = RetryPolicy(attempts=60, initial_delay=0.2, max_delay=0.2, total_seconds=600,
                            budget=1.5)
        started = time.monotonic()
        with RegistryClient(proxy.host, credentials=creds(), retry=retry) as client, \
                pytest.raises(RegistryError) as info:
            client.start_upload("hostile/budget")
        elapsed = time.monotonic() - started
    assert "time budget of 1.5 s ran out" in info.value.message
    assert elapsed < 6.0  # the 1.5 s budget plus margin; 60 attempts (12 s) without it


def test_a_budget_ending_during_a_retry_reports_the_registrys_answer(
        registry: services.Registry) -> None:
    stop = threading.Event()
    posts: list[float] = []
    with hostile_server(registry.host) as proxy:
        def unavailable_then_silent(request: Request) -> Reply | None:
            if request.method != "POST":
                return None
            posts.append(time.monotonic())
            if len(posts) > 1:
                stop.wait(10.0)  # the retry gets no answer before the budget ends
            return Reply(503, [], b"")

        proxy.hook = unavailable_then_silent
        retry = RetryPolicy(attempts=5, initial_delay=0.1, max_delay=0.1, total_seconds=600,
                            budget=1.0)
        try:
            with RegistryClient(proxy.host, credentials=creds(), retry=retry) as client, \
                    pytest.raises(JrError) as info:
                client.start_upload("hostile/budget")
        finally:
            stop.set()
    assert len(posts) == 2
    assert not isinstance(info.value, UnreachableError), info.value.message
    assert "HTTP 503" in info.value.message
    assert "time budget of 1 s ran out" in info.value.message
    assert_absent(SECRET, info.value.message, str(info.value), repr(info.value))


def test_jr_push_timeout_bounds_the_whole_push(registry: services.Registry, archive: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_server(registry.host) as proxy:
        def unavailable(request: Request) -> Reply | None:
            return Reply(503, [], b"") if request.method == "POST" else None

        proxy.hook = unavailable
        started = time.monotonic()
        code, out, err = run_push(["--from-archive", str(archive), "--registry", proxy.host,
                                   "--name", "hostile/budget"], capsys, push_env(JR_TIMEOUT="1"))
        elapsed = time.monotonic() - started
    assert code == ExitCode.REGISTRY and out == ""
    assert "time budget of 1 s ran out" in one_line_error(err)
    assert elapsed < 5.0  # 0.5 + 1 + 2 + 4 s of backoff without the budget


def test_retry_after_past_the_budget_fails_at_once_with_the_registrys_figure(
        registry: services.Registry) -> None:
    with hostile_server(registry.host) as proxy:
        def slow_down(request: Request) -> Reply | None:
            if request.method == "POST":
                return Reply(429, [("Retry-After", "999999")], b"")
            return None

        proxy.hook = slow_down
        started = time.monotonic()
        with RegistryClient(proxy.host, credentials=creds()) as client, \
                pytest.raises(RegistryError) as info:
            client.start_upload("hostile/later")
        elapsed = time.monotonic() - started
        assert proxy.record.count("POST") == 1
    assert "asks to wait 999999 s before retrying" in info.value.message
    assert elapsed < 5.0


def test_time_options_are_checked_and_documented(capsys: pytest.CaptureFixture[str]) -> None:
    assert (push_cli.PUSH_TIMEOUT, push_cli.REQUEST_TIMEOUT) == (PUSH_BUDGET, REQUEST_TIMEOUT)
    for argv, env in ((["--timeout", "0"], {}), ([], {"JR_TIMEOUT": "soon"}),
                      ([], {"JR_REQUEST_TIMEOUT": "-1"}), (["--timeout", "nan"], {})):
        code = jr_push(["--from-oci", "/nonexistent", "--registry", "127.0.0.1:9", *argv], env)
        assert code == ExitCode.USAGE
        assert "is not a positive number of seconds" in one_line_error(capsys.readouterr().err)
    # --image takes them too (they bound jr-push's own registry requests: export route, checks)
    assert jr_push(["--image", "app", "--registry", "127.0.0.1:9", "--timeout", "0"], {}) == ExitCode.USAGE
    assert "is not a positive number of seconds" in one_line_error(capsys.readouterr().err)
    no_engine = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    code = jr_push(["--image", "app", "--registry", "127.0.0.1:9", "--timeout", "5"], no_engine)
    assert code == ExitCode.ENGINE
    capsys.readouterr()
    with pytest.raises(SystemExit):
        push_cli.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "JR_TIMEOUT" in text and "3600" in text and "120" in text


# -- 6. writes never follow redirects; a manifest PUT counts only when the registry holds it ---------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_manifest_put_is_not_followed_and_no_reference_is_printed(
        status: int, registry: services.Registry, archive: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_server() as page:
        page.hook = lambda request: Reply(200, [("Content-Type", "text/html")], b"<html>ok</html>")

        def redirect(request: Request) -> Reply | None:
            if request.method == "PUT" and "/manifests/" in request.path:
                return Reply(status, [("Location", f"http://{page.host}/welcome")], b"")
            return None

        with hostile_server(registry.host, hook=redirect) as proxy:
            code, out, err = run_push(["--from-archive", str(archive), "--registry", proxy.host,
                                       "--name", "hostile/redirect", "--tag", "v9"], capsys)
            assert proxy.record.count("PUT", "/manifests/") == 1
        assert page.record.requests == []
    assert code == ExitCode.REGISTRY and out == ""
    assert f"HTTP {status} redirect to {page.host} (writes are never redirected)" in one_line_error(err)
    assert registry.tags("hostile/redirect") == []


def without_digest(request: Request, reply: Reply) -> Reply:
    if request.method == "PUT" and "/manifests/" in request.path:
        reply.headers = [(k, v) for k, v in reply.headers if k.lower() != "docker-content-digest"]
    return reply


def test_a_manifest_put_without_the_digest_header_is_confirmed_with_a_head(
        registry: services.Registry, archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_server(registry.host, rewrite=without_digest) as proxy:
        code, out, err = run_push(["--from-archive", str(archive), "--registry", proxy.host,
                                   "--name", "hostile/no-digest", "--tag", "v1"], capsys)
        assert proxy.record.count("HEAD", "/manifests/v1") == 1
    assert code == 0, err
    digest = registry.manifest_digest("hostile/no-digest", "v1")
    assert out == f"{proxy.host}/hostile/no-digest:v1@{digest}\n"


@pytest.mark.parametrize("answer", [
    Reply(201, [], b""),  # "created", no digest, and the registry does not hold it
    Reply(200, [("Content-Type", "text/html")], b"<html>welcome</html>"),
    Reply(202, [], b""),
    Reply(201, [("Docker-Content-Digest", "sha256:" + "0" * 64)], b""),
])
def test_a_manifest_put_counts_only_when_the_registry_holds_that_manifest(
        answer: Reply, registry: services.Registry, archive: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    def fake(request: Request) -> Reply | None:
        return answer if request.method == "PUT" and "/manifests/" in request.path else None

    with hostile_server(registry.host, hook=fake) as proxy:
        code, out, err = run_push(["--from-archive", str(archive), "--registry", proxy.host,
                                   "--name", "hostile/fake-put", "--tag", "v9"], capsys)
    assert code == ExitCode.REGISTRY and out == ""
    one_line_error(err)
    assert registry.tags("hostile/fake-put") == []


def test_a_blob_put_answered_with_another_digest_fails(registry: services.Registry) -> None:
    def other(request: Request, reply: Reply) -> Reply:
        if request.method == "PUT" and "/blobs/uploads/" in request.path:
            reply.headers = [(k, v) for k, v in reply.headers if k.lower() != "docker-content-digest"]
            reply.headers.append(("Docker-Content-Digest", "sha256:" + "1" * 64))
        return reply

    data = os.urandom(3000)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    with hostile_server(registry.host, rewrite=other) as proxy, \
            RegistryClient(proxy.host, credentials=creds(), retry=FAST) as client:
        for known in (digest, None):
            with pytest.raises(RegistryError) as info:
                client.upload_blob("hostile/blob-digest", lambda: BytesBody(data), digest=known,
                                   size=len(data) if known else None)
            assert f"stored sha256:{'1' * 64}, not {digest}" in info.value.message


# -- 12. values no request can carry: a documented code and one line, never "this is a bug" ----------


def _upload_location(location: str) -> Hook:
    def hook(request: Request) -> Reply | None:
        if request.method == "POST" and "/blobs/uploads/" in request.path:
            return Reply(202, [("Location", location)], b"")
        return None
    return hook


def _realm(realm: str) -> Hook:
    def hook(request: Request) -> Reply | None:
        return bearer_registry(realm) if request.path == "/v2/" else None
    return hook


def _token(body: bytes) -> Hook:
    def hook(request: Request) -> Reply | None:
        if request.path == "/v2/":
            port = request.headers.get("Host", "").rsplit(":", 1)[1]
            return bearer_registry(f"http://127.0.0.1:{port}/token")
        if request.path.startswith("/token"):
            return Reply(200, [("Content-Type", "application/json")], body)
        return None
    return hook


def _retry_after(value: str) -> Hook:
    def hook(request: Request) -> Reply | None:
        if request.method == "POST":
            return Reply(503, [("Retry-After", value)], b"")
        return None
    return hook


def _error_body(body: bytes) -> Hook:
    def hook(request: Request) -> Reply | None:
        if request.method == "POST":
            return Reply(400, [("Content-Type", "application/json")], body)
        return None
    return hook


def _manifest(body: bytes) -> Hook:
    def hook(request: Request) -> Reply | None:
        if request.method == "GET" and "/manifests/" in request.path:
            return Reply(200, [("Content-Type", DOCKER_MANIFEST)], body)
        return None
    return hook


NESTED = b"[" * 100_000


HOSTILE_VALUES = [
    ("Retry-After: \xb2", _retry_after("\xb2"), ExitCode.REGISTRY),
    ("Location file://", _upload_location("file:///etc/passwd"), ExitCode.REGISTRY),
    ("Location ftp://", _upload_location("ftp://127.0.0.1/x"), ExitCode.REGISTRY),
    ("Location port 99999", _upload_location("http://127.0.0.1:99999/x"), ExitCode.REGISTRY),
    ("Location [::1", _upload_location("http://[::1/x"), ExitCode.REGISTRY),
    ("Location non-ASCII", _upload_location("/v2/x/blobs/uploads/\xe9"), ExitCode.REGISTRY),
    ("realm [::1", _realm("http://[::1"), ExitCode.REGISTRY),
    ("realm port 99999", _realm("http://127.0.0.1:99999/token"), ExitCode.REGISTRY),
    ("token CRLF", _token(json.dumps({"token": "abc\r\nX-Injected: 1"}).encode()), ExitCode.REGISTRY),
    ("token non-Latin-1", _token(json.dumps({"token": "t\u20acken"}).encode()), ExitCode.REGISTRY),
    ("token nested", _token(NESTED), ExitCode.REGISTRY),
    ("error body nested", _error_body(b'{"errors":' + NESTED), ExitCode.REGISTRY),
    ("manifest nested", _manifest(NESTED), ExitCode.OK),  # not an image: the push writes the tag
]


@pytest.mark.parametrize("name,hook,expected", HOSTILE_VALUES, ids=[c[0] for c in HOSTILE_VALUES])
def test_hostile_values_get_a_documented_code_and_one_line(
        name: str, hook: Hook, expected: ExitCode, registry: services.Registry, archive: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_server(registry.host, hook=hook) as proxy:
        code, out, err = run_push(["--from-archive", str(archive), "--registry", proxy.host,
                                   "--name", "hostile/values", "--timeout", "2"], capsys)
    assert code == expected, err
    if expected != ExitCode.OK:
        assert out == ""
        one_line_error(err)


def test_a_token_with_an_infinite_lifetime_is_used_and_kept_a_while() -> None:
    body = b'{"token": "abc.def.ghi", "expires_in": Infinity}'
    with hostile_server(hook=_token(body)) as server:
        with RegistryClient(server.host, credentials=creds(), retry=FAST) as client:
            client.check_credentials("hostile/forever", probe=False)
            client.check_credentials("hostile/forever", probe=False)
        assert server.record.count("GET", "/token") == 1  # cached, not fetched again
    assert token_lifetime(float("inf")) == 60 and token_lifetime(1e300) == MAX_TOKEN_SECONDS
    assert token_lifetime(True) == 60 and token_lifetime("300") == 300


# -- what holds today, kept by tests that fail when it breaks ----------------------------------------


def test_authorization_never_follows_an_upload_location_to_another_origin(
        registry: services.Registry) -> None:
    """The blob goes where the registry says, but its credentials stay with the registry."""
    with hostile_server() as storage:
        def store(request: Request) -> Reply | None:
            digest = request.path.split("digest=", 1)[-1]
            return Reply(201, [("Docker-Content-Digest", digest)], b"")

        storage.hook = store

        def elsewhere(request: Request, reply: Reply) -> Reply:
            if request.method == "POST" and "/blobs/uploads/" in request.path:
                location = dict(reply.headers)["Location"].split("/v2/", 1)[1]
                reply.headers = [(k, v) for k, v in reply.headers if k != "Location"]
                reply.headers.append(("Location", f"http://{storage.host}/v2/{location}"))
            return reply

        data = os.urandom(2000)
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        with hostile_server(registry.host, rewrite=elsewhere) as proxy, \
                RegistryClient(proxy.host, credentials=creds(), retry=FAST) as client:
            client.upload_blob("hostile/elsewhere", lambda: BytesBody(data), digest=digest,
                               size=len(data))
            assert [r.auth_scheme for r in proxy.record.requests if r.method == "POST"] == ["basic"]
        assert [r.method for r in storage.record.requests] == ["PUT"]
        assert storage.record.authorized() == []


@pytest.mark.parametrize("kind", ["archive --compression none", "OCI layout verbatim"])
def test_blobs_the_registry_has_are_not_uploaded_again(
        kind: str, registry: services.Registry, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    layers = sample_layers()
    if kind.startswith("archive"):
        write_classic(tmp_path / "app.tar", layers, ("team/app:v1",))
        source = ["--from-archive", str(tmp_path / "app.tar"), "--compression", "none"]
    else:
        write_oci_dir(tmp_path / "oci", layers)
        source = ["--from-oci", str(tmp_path / "oci")]
    repository = f"hostile/again-{'none' if kind.startswith('archive') else 'oci'}"
    with hostile_server(registry.host) as proxy:
        for tag in ("first", "second"):  # the second run has no tag to learn the layers from
            code, _, err = run_push([*source, "--registry", proxy.host, "--name", repository,
                                     "--tag", tag], capsys)
            assert code == 0, err
            if tag == "first":
                uploads = proxy.record.count("POST", "/blobs/uploads/")
                assert uploads == len(layers) + 1
        assert proxy.record.count("POST", "/blobs/uploads/") == uploads  # nothing sent again
        assert proxy.record.count("HEAD", "/blobs/sha256:") >= len(layers) + 1


def bad_request(method: str, path: str) -> Hook:
    def hook(request: Request) -> Reply | None:
        if request.method == method and path in request.path:
            body = b'{"errors":[{"code":"MANIFEST_INVALID","message":"no"}]}'
            return Reply(400, [("Content-Type", "application/json")], body)
        return None
    return hook


@pytest.mark.parametrize("method,path", [("POST", "/blobs/uploads/"), ("PUT", "/manifests/")])
def test_a_400_is_answered_once_never_retried(method: str, path: str,
                                              registry: services.Registry) -> None:
    with hostile_server(registry.host, hook=bad_request(method, path)) as proxy, \
            RegistryClient(proxy.host, credentials=creds(), retry=FAST) as client:
        with pytest.raises(RegistryError) as info:
            if method == "POST":
                client.start_upload("hostile/bad-request")
            else:
                client.put_manifest("hostile/bad-request", "v1", b"{}", DOCKER_MANIFEST)
        assert proxy.record.count(method, path) == 1
    assert info.value.message.endswith("HTTP 400 manifest invalid: no")


def test_a_400_manifest_put_fails_the_push_after_one_request(
        registry: services.Registry, archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_server(registry.host, hook=bad_request("PUT", "/manifests/")) as proxy:
        code, out, err = run_push(["--from-archive", str(archive), "--registry", proxy.host,
                                   "--name", "hostile/bad-request"], capsys)
        assert proxy.record.count("PUT", "/manifests/") == 1
    assert code == ExitCode.REGISTRY and out == ""
    assert "HTTP 400" in one_line_error(err)


def test_no_hostile_answer_escapes_as_a_non_jr_error(registry: services.Registry) -> None:
    """Library level: every staged answer above ends in a JrError, never another exception."""
    with hostile_server(registry.host, hook=_upload_location("http://[::1/x")) as proxy, \
            RegistryClient(proxy.host, credentials=creds(), retry=FAST) as client, \
            pytest.raises(JrError):
        client.start_upload("hostile/values")


@pytest.fixture(autouse=True)
def _fresh_keyring_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import keyring.core

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    yield
