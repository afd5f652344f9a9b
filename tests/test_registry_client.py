"""registry_client against the real docker-registry (htpasswd and token auth) and the fault proxy."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from jenkins_registry import registry_errors
from jenkins_registry.errors import (
    AuthenticationError,
    CredentialsError,
    InsecureRegistryError,
    InvalidReferenceError,
    PermissionDeniedError,
    RegistryError,
    UnreachableError,
)
from jenkins_registry.http_transport import ConnectError, TlsError
from jenkins_registry.reference import is_loopback
from jenkins_registry.registry_auth import Challenge, parse_challenge, parse_challenges
from jenkins_registry.registry_blobs import BytesBody, with_digest
from jenkins_registry.registry_client import RegistryClient
from jenkins_registry.registry_session import RetryPolicy, SchemePolicy, retry_after
from jenkins_registry.secret_types import Secret, UsernamePassword
from tests.support import services
from tests.support.fault_proxy import Rule, fault_proxy
from tests.support.token_server import READER_PASSWORD, READER_USER, TokenServer, token_registry

SECRET = services.REGISTRY_PASSWORD
FAST = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05, total_seconds=30)


def creds(user: str = services.REGISTRY_USER, password: str = SECRET) -> UsernamePassword:
    return UsernamePassword(username=user, password=Secret(password), source="test")


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert READER_PASSWORD not in text


@pytest.fixture(scope="module")
def token_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[services.Registry, TokenServer]]:
    with token_registry(tmp_path_factory.mktemp("tokens")) as pair:
        yield pair


# -- challenges and scheme policy ------------------------------------------------------------------


def test_parse_bearer_challenge_with_commas_in_scope() -> None:
    challenge = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                                'scope="repository:samalba/my-app:pull,push"')
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example/token"
    assert challenge.service == "registry.example"
    assert challenge.scope == "repository:samalba/my-app:pull,push"


def test_parse_basic_nexus_and_odd_spacing() -> None:
    challenge = parse_challenge('BASIC realm="Sonatype Nexus Repository Manager"')
    assert challenge == Challenge("basic", {"realm": "Sonatype Nexus Repository Manager"})
    spaced = parse_challenge('Bearer  realm = "http://h/t" , service=plain,error="insufficient_scope"')
    assert (spaced.realm, spaced.service, spaced.error) == ("http://h/t", "plain", "insufficient_scope")


def test_parse_escaped_quotes_multiple_challenges_and_garbage() -> None:
    escaped = parse_challenge(r'Basic realm="say \"hi\", ok"')
    assert escaped.realm == 'say "hi", ok'
    both = 'Negotiate abc==, Basic realm="b", Bearer realm="https://t/token",service="s"'
    assert [c.scheme for c in parse_challenges(both)] == ["negotiate", "basic", "bearer"]
    assert parse_challenge(both).scheme == "bearer"
    assert parse_challenge('Basic realm="b"').scheme == "basic"
    assert parse_challenge("") == Challenge("")
    assert parse_challenge("Negotiate").scheme == "negotiate"


@pytest.mark.parametrize("registry,loopback", [
    ("127.0.0.1:5000", True), ("127.8.9.10", True), ("localhost:5000", True), ("LOCALHOST", True),
    ("[::1]:5000", True), ("10.211.55.6:8082", False), ("registry.example", False),
    ("localhost.localdomain:5000", False), ("[2001:db8::1]:443", False),
])
def test_loopback_policy(registry: str, loopback: bool) -> None:
    assert is_loopback(registry) is loopback
    assert ("http" in SchemePolicy.from_insecure_flag(registry, insecure=False).schemes) is loopback
    assert ("http" in SchemePolicy.from_insecure_flag(registry, insecure=True).schemes) is True


@pytest.mark.parametrize("registry,insecure,schemes,verify", [
    ("127.0.0.1:5000", False, ("http", "https"), False), ("localhost:5000", True, ("http", "https"), False),
    ("[::1]:5000", False, ("http", "https"), False), ("registry.example", True, ("https", "http"), False),
    ("10.211.55.6:8082", False, ("https",), True),
])
def test_policy_from_the_insecure_flag(registry: str, insecure: bool, schemes: tuple[str, ...],
                                       verify: bool) -> None:
    policy = SchemePolicy.from_insecure_flag(registry, insecure=insecure)
    assert (policy.schemes, policy.verify, policy.http_fallback_unless_untrusted) == (schemes, verify, False)


@pytest.mark.parametrize("registry,insecure,schemes,verify", [
    ("127.0.0.1:5000", False, ("https",), True), ("registry.example", False, ("https",), True),
    ("127.0.0.1:5000", True, ("http", "https"), False), ("registry.example", True, ("https", "http"), False),
])
def test_policy_from_the_engine(registry: str, insecure: bool, schemes: tuple[str, ...],
                                verify: bool) -> None:
    policy = SchemePolicy.from_engine(registry, insecure=insecure)
    assert (policy.schemes, policy.verify, policy.http_fallback_unless_untrusted) == (schemes, verify, False)


def test_login_policy_and_pinning() -> None:
    login = SchemePolicy.login("127.0.0.1:5000")
    assert (login.schemes, login.verify) == (("https", "http"), True)
    assert login.http_fallback_unless_untrusted is True
    assert login.pinned("http") == SchemePolicy(schemes=("http",), verify=True,
                                                http_fallback_unless_untrusted=True,
                                                plain_http_credentials=True)
    remote = SchemePolicy.login("10.211.55.6:8082")  # plain HTTP elsewhere only with --insecure
    assert (remote.schemes, remote.verify, remote.plain_http_credentials) == (("https",), True, False)
    assert remote.pinned("http").plain_http_credentials is False  # jr doctor's probe sends none
    assert SchemePolicy.login("10.211.55.6:8082", insecure=True) == \
        SchemePolicy.from_insecure_flag("10.211.55.6:8082", insecure=True)


def test_the_default_policy_is_the_archive_routes_without_insecure() -> None:
    with RegistryClient("r.example") as default:
        assert default.policy == SchemePolicy.from_insecure_flag("r.example", insecure=False)


def test_location_digest_and_retry_after_helpers() -> None:
    assert with_digest("/v2/a/blobs/uploads/u", "sha256:ab") == "/v2/a/blobs/uploads/u?digest=sha256:ab"
    assert with_digest("http://h/v2/a/blobs/uploads/u?_state=x%3D", "sha256:ab") == \
        "http://h/v2/a/blobs/uploads/u?_state=x%3D&digest=sha256:ab"
    assert retry_after("7") == 7.0
    assert retry_after("600") == 600.0  # the registry's figure: the session decides what it waits
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_repr_hides_the_password() -> None:
    client = RegistryClient("127.0.0.1:1", credentials=creds())
    assert SECRET not in repr(client) and "ci-bot" in repr(client)
    client.close()


# -- htpasswd registry -----------------------------------------------------------------------------


def test_ping_and_basic_upload_modes(registry: services.Registry) -> None:
    with RegistryClient(registry.host, credentials=creds()) as client:
        challenge = client.ping()
        assert challenge is not None and challenge.scheme == "basic"
        assert client.base_url == f"http://{registry.host}"
        client.check_credentials("jr-client/modes")
        data = os.urandom(300_000)
        monolithic = client.upload_blob("jr-client/modes", lambda: BytesBody(data), digest=sha(data),
                                        size=len(data))
        assert monolithic.digest == sha(data)
        streamed_data = os.urandom(200_000)
        streamed = client.upload_blob("jr-client/modes", lambda: BytesBody(streamed_data))
        chunked_data = os.urandom(250_000)
        chunked = client.upload_blob("jr-client/modes", lambda: BytesBody(chunked_data),
                                     chunk_size=64 * 1024)
        for blob, raw in ((monolithic, data), (streamed, streamed_data), (chunked, chunked_data)):
            assert client.blob_exists("jr-client/modes", blob.digest) == len(raw)
            assert client.get_blob("jr-client/modes", blob.digest, limit=1 << 20) == raw
        assert client.blob_exists("jr-client/modes", sha(b"never uploaded")) is None


def test_mount_and_fallback(registry: services.Registry) -> None:
    data = os.urandom(10_000)
    with RegistryClient(registry.host, credentials=creds()) as client:
        digest = client.upload_blob("jr-client/source", lambda: BytesBody(data)).digest
        assert client.mount_blob("jr-client/target", digest, "jr-client/source") is True
        assert client.blob_exists("jr-client/target", digest) == len(data)
        assert client.mount_blob("jr-client/target2", sha(b"unknown"), "jr-client/source") is False
        assert client.mount_blob("jr-client/target2", digest, "jr-client/does-not-exist") is False
        assert client.blob_exists("jr-client/target2", digest) is None


def test_manifest_put_get_and_errors(registry: services.Registry) -> None:
    config = b'{"rootfs":{"type":"layers","diff_ids":[]},"os":"linux","architecture":"amd64"}'
    media = "application/vnd.oci.image.manifest.v1+json"
    with RegistryClient(registry.host, credentials=creds()) as client:
        client.upload_blob("jr-client/manifest", lambda: BytesBody(config), digest=sha(config),
                           size=len(config))
        body = (b'{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":'
                b'"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}'
                % (media.encode(), sha(config).encode(), len(config)))
        digest = client.put_manifest("jr-client/manifest", "v1", body, media)
        assert digest == sha(body) == registry.manifest_digest("jr-client/manifest", "v1")
        fetched = client.get_manifest("jr-client/manifest", "v1", [media])
        assert fetched is not None and fetched.body == body and fetched.media_type == media
        assert client.manifest_digest("jr-client/manifest", "v1", [media]) == digest
        assert client.get_manifest("jr-client/manifest", "nope", [media]) is None
        with pytest.raises(RegistryError, match="manifest invalid"):
            client.put_manifest("jr-client/manifest", "v2", body, "application/json")
        missing = body.replace(sha(config).encode(), sha(b"gone").encode())
        with pytest.raises(RegistryError, match="blob unknown"):
            client.put_manifest("jr-client/manifest", "v3", missing, media)
        assert client.tags("jr-client/manifest") == ["v1"]
        assert client.tags("jr-client/never") == []


def test_wrong_password_no_credentials_and_invalid_name(registry: services.Registry,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with RegistryClient(registry.host, credentials=creds(password="wrong-" + SECRET)) as client, \
            pytest.raises(AuthenticationError) as rejected:
        client.check_credentials("jr-client/x")
    assert rejected.value.message == registry_errors.credentials_rejected(registry.host, "ci-bot").message
    with RegistryClient(registry.host) as anonymous, pytest.raises(CredentialsError) as missing:
        anonymous.check_credentials("jr-client/x")
    assert missing.value.message == registry_errors.no_credentials(registry.host).message
    with RegistryClient(registry.host, credentials=creds()) as client, \
            pytest.raises(InvalidReferenceError) as invalid:
        client.start_upload("Bad_Name")
    assert invalid.value.message == registry_errors.invalid_name(registry.host, "Bad_Name").message
    no_secret(str(rejected.value), str(missing.value), caplog.text)


def test_https_to_a_plain_http_port_names_the_rule_that_refused_it(
        registry: services.Registry) -> None:
    """jr-push's own rule refused plain HTTP (--insecure allows it); the engine's rules name the
    engine's insecure-registries."""
    with RegistryClient(registry.host, credentials=creds(),
                        policy=SchemePolicy.from_insecure_flag(registry.host, insecure=False)) as client, \
            pytest.raises(InsecureRegistryError) as info:
        client.ping(scheme="https")
    assert info.value.message == registry_errors.plain_http_refused(registry.host).message
    assert "--insecure" in info.value.hint and "insecure-registries" not in info.value.hint
    with RegistryClient(registry.host, credentials=creds(),
                        policy=SchemePolicy.from_engine(registry.host, insecure=False)) as client, \
            pytest.raises(InsecureRegistryError) as engine:
        client.ping(scheme="https")
    assert engine.value.message == registry_errors.http_to_https(registry.host).message
    no_secret(str(info.value), info.value.hint, str(engine.value))


def test_unreachable_is_the_engine_message() -> None:
    port = services.free_port()
    with RegistryClient(f"127.0.0.1:{port}", retry=FAST) as client, \
            pytest.raises(UnreachableError) as info:
        client.ping()
    assert info.value.message == registry_errors.unreachable(f"127.0.0.1:{port}",
                                                             "connection refused").message


# -- token auth ------------------------------------------------------------------------------------


def test_token_flow_caches_and_scopes(token_auth: tuple[services.Registry, TokenServer]) -> None:
    registry, tokens = token_auth
    with RegistryClient(registry.host, credentials=creds()) as client:
        challenge = client.ping()
        assert challenge is not None and challenge.scheme == "bearer"
        assert challenge.realm == tokens.realm
        before = tokens.token_requests()
        data = os.urandom(50_000)
        blob = client.upload_blob("jr-token/app", lambda: BytesBody(data))
        assert client.blob_exists("jr-token/app", blob.digest) == len(data)
        assert tokens.token_requests() == before + 1  # one token for every push request
        assert tokens.log[-1] == ("ci-bot", ("repository:jr-token/app:pull,push",), 200)
        assert client.mount_blob("jr-token/other", blob.digest, "jr-token/app") is True
        assert list(tokens.log[-1][1]) == ["repository:jr-token/other:pull,push",
                                           "repository:jr-token/app:pull"]
    no_secret(repr(tokens.log))


def test_token_expiry_and_rejected_token_are_refetched(
        token_auth: tuple[services.Registry, TokenServer]) -> None:
    registry, tokens = token_auth
    now = [1000.0]
    with RegistryClient(registry.host, credentials=creds(), clock=lambda: now[0]) as client:
        client.check_credentials("jr-token/expiry")
        first = tokens.token_requests()
        assert client.blob_exists("jr-token/expiry", sha(b"x")) is None
        assert tokens.token_requests() == first
        now[0] += 400  # past expires_in (300 s)
        assert client.blob_exists("jr-token/expiry", sha(b"x")) is None
        assert tokens.token_requests() == first + 1
        tokens.bad_tokens = 1  # the registry will reject the next token: fetch another, once
        now[0] += 400
        assert client.blob_exists("jr-token/expiry", sha(b"x")) is None
        assert tokens.token_requests() == first + 3
        assert tokens.bad_tokens == 0


def test_token_auth_failures_use_engine_messages(token_auth: tuple[services.Registry, TokenServer],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    registry, _ = token_auth
    caplog.set_level(logging.DEBUG)
    with RegistryClient(registry.host, credentials=creds(password="nope-" + SECRET)) as client, \
            pytest.raises(AuthenticationError) as rejected:
        client.check_credentials("jr-token/app")
    assert rejected.value.message == registry_errors.credentials_rejected(registry.host, "ci-bot").message
    with RegistryClient(registry.host) as anonymous, pytest.raises(CredentialsError) as missing:
        anonymous.check_credentials("jr-token/app")
    assert missing.value.message == registry_errors.no_credentials(registry.host).message
    reader = creds(READER_USER, READER_PASSWORD)
    with RegistryClient(registry.host, credentials=reader) as client:
        client.check_access("jr-token/app", ["pull"])
        with pytest.raises(PermissionDeniedError) as denied:
            client.check_access("jr-token/app", ["push"])
    assert denied.value.message == registry_errors.access_denied(registry.host, "jr-token/app",
                                                                 READER_USER).message
    no_secret(str(rejected.value), str(missing.value), str(denied.value), caplog.text)


# -- retries through the fault proxy ---------------------------------------------------------------


def test_retries_5xx_and_429_withretry_after(registry: services.Registry) -> None:
    slept: list[float] = []
    with fault_proxy(registry.host) as proxy, RegistryClient(
            proxy.host, credentials=creds(), retry=FAST, sleep=slept.append) as client:
        client.ping()
        proxy.add(Rule("HEAD", "/blobs/", "status", status=503, times=2))
        assert client.blob_exists("jr-client/retry", sha(b"x")) is None
        assert proxy.count("HEAD", "/blobs/") == 3
        proxy.add(Rule("HEAD", "/blobs/", "status", status=429, headers={"Retry-After": "3"}))
        assert client.blob_exists("jr-client/retry", sha(b"x")) is None
        assert slept[-1] == 3.0  # Retry-After honoured (the injected sleep records it)
        proxy.add(Rule("HEAD", "/blobs/", "status", status=408))
        assert client.blob_exists("jr-client/retry", sha(b"x")) is None
        proxy.add(Rule("HEAD", "/blobs/", "status", status=503, times=100))
        with pytest.raises(RegistryError):
            client.blob_exists("jr-client/retry", sha(b"y"))
        assert proxy.count("HEAD", sha(b"y")) == FAST.attempts  # bounded
        proxy.clear()
        proxy.add(Rule("HEAD", "/blobs/", "status", status=429, times=100))
        with pytest.raises(RegistryError) as limited:
            client.blob_exists("jr-client/retry", sha(b"z"))
        assert limited.value.message == registry_errors.too_many_requests(proxy.host).message
        no_secret(proxy.log_text())


def test_dropped_upload_is_retried_with_a_new_session(registry: services.Registry) -> None:
    data = os.urandom(400_000)
    retries: list[float] = []
    with fault_proxy(registry.host) as proxy, RegistryClient(
            proxy.host, credentials=creds(), retry=FAST) as client:
        proxy.add(Rule("PATCH", "/blobs/uploads/", "drop", after_bytes=50_000))
        blob = client.upload_blob("jr-client/drop", lambda: BytesBody(data), on_retry=retries.append)
        assert client.blob_exists("jr-client/drop", blob.digest) == len(data)
        assert proxy.count("PATCH", "/uploads/", "dropped") == 1
        assert proxy.count("PATCH", "/uploads/", "202") == 1
        assert proxy.count("POST", "/uploads/") == 2
        assert proxy.count("DELETE", "/uploads/") == 1  # the broken session was cancelled
        assert len(retries) == 1
        no_secret(proxy.log_text())


def test_head_before_retry_skips_a_blob_that_arrived(registry: services.Registry) -> None:
    data = os.urandom(100_000)
    with fault_proxy(registry.host) as proxy, RegistryClient(
            proxy.host, credentials=creds(), retry=FAST) as client:
        # the registry stores the blob, but the answer never reaches the client
        proxy.add(Rule("PUT", "/blobs/uploads/", "drop_response"))
        blob = client.upload_blob("jr-client/lost-answer", lambda: BytesBody(data), digest=sha(data),
                                  size=len(data))
        assert blob.digest == sha(data)
        assert proxy.count("PUT", "/uploads/") == 1  # not sent a second time
        assert proxy.count("HEAD", sha(data), "200") == 1


def test_permanent_upload_failure_is_bounded(registry: services.Registry) -> None:
    data = os.urandom(20_000)
    with fault_proxy(registry.host) as proxy, RegistryClient(
            proxy.host, credentials=creds(), retry=FAST) as client:
        proxy.add(Rule("PATCH", "/blobs/uploads/", "drop", times=100))
        with pytest.raises(UnreachableError):
            client.upload_blob("jr-client/never", lambda: BytesBody(data))
        assert proxy.count("PATCH", "/uploads/") == FAST.attempts
        assert client.blob_exists("jr-client/never", sha(data)) is None


# -- redirects never carry credentials to another host ----------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    saw_authorization: ClassVar[list[bool]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).saw_authorization.append("Authorization" in self.headers)
        body = b"blob"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_redirect_to_another_host_drops_authorization(registry: services.Registry, tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.saw_authorization.clear()
    with services.serve_in_thread(server) as port:
        other = f"http://127.0.0.1:{port}/storage/blob"
        with fault_proxy(registry.host) as proxy, RegistryClient(proxy.host, credentials=creds(),
                                                                 retry=FAST) as client:
            proxy.add(Rule("GET", "/blobs/", "redirect", location=other))
            with pytest.raises(RegistryError, match="did not match"):
                client.get_blob("jr-client/redirect", sha(b"blob-elsewhere"))
        assert _Recorder.saw_authorization == [False]


# -- relative Locations, scheme order, token field names ---------------------------------------------


def test_relative_locations_are_followed_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    # distribution's `http.relativeurls` makes every Location relative (set through its env override)
    monkeypatch.setenv("REGISTRY_HTTP_RELATIVEURLS", "true")
    with services.registry() as relative, RegistryClient(relative.host, credentials=creds()) as client:
        location = client.start_upload("jr-client/relative")
        client.cancel_upload(location)
        import requests

        raw = requests.post(f"{relative.url}/v2/jr-client/relative/blobs/uploads/",
                            auth=(relative.username or "", relative.password or ""), timeout=10)
        assert raw.headers["Location"].startswith("/v2/")  # the registry really answers relative
        for chunk_size in (None, 40_000):
            data = os.urandom(100_000)
            blob = client.upload_blob("jr-client/relative", lambda data=data: BytesBody(data),
                                      chunk_size=chunk_size)
            assert client.blob_exists("jr-client/relative", blob.digest) == len(data)
        data = os.urandom(5000)
        client.upload_blob("jr-client/relative", lambda: BytesBody(data), digest=sha(data), size=len(data))
        assert client.blob_exists("jr-client/relative", sha(data)) == len(data)


class _NoNetwork:
    """A stand-in session that records which URLs a ping tried, and fails them all."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def request(self, method: str, url: str, **_: object) -> object:
        self.urls.append(url)
        raise ConnectError("ConnectionRefusedError: [Errno 111] Connection refused")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("registry,insecure,schemes", [
    ("registry.example:5000", False, ["https"]),
    ("registry.example:5000", True, ["https", "http"]),
    ("10.211.55.6:8082", False, ["https"]),
    ("127.0.0.1:5000", False, ["http", "https"]),
    ("localhost:5000", False, ["http", "https"]),
])
def test_scheme_order(registry: str, insecure: bool, schemes: list[str]) -> None:
    session = _NoNetwork()
    client = RegistryClient(registry, policy=SchemePolicy.from_insecure_flag(registry, insecure=insecure),
                            transport=session, retry=FAST)  # type: ignore[arg-type]
    with pytest.raises(UnreachableError):
        client.ping()
    assert [url.split("://")[0] for url in session.urls] == schemes


def test_token_server_errors_are_retried(token_auth: tuple[services.Registry, TokenServer]) -> None:
    registry, tokens = token_auth
    tokens.failures = 2
    slept: list[float] = []
    with RegistryClient(registry.host, credentials=creds(), retry=FAST, sleep=slept.append) as client:
        client.check_credentials("jr-token/flaky-realm")
    assert [status for _, _, status in tokens.log[-3:]] == [503, 503, 200]
    assert len(slept) == 2


def test_token_in_access_token_only(token_auth: tuple[services.Registry, TokenServer]) -> None:
    registry, tokens = token_auth
    tokens.token_fields = ("access_token",)
    try:
        with RegistryClient(registry.host, credentials=creds()) as client:
            client.check_access("jr-token/fields", ["pull", "push"])
    finally:
        tokens.token_fields = ("token", "access_token")


# -- the login policy and the login check (jr login, jr doctor) -------------------------------------


class _TlsFailure(_NoNetwork):
    """A stand-in session whose HTTPS fails with *text* (and plain HTTP is refused); it records the
    `verify` each request asked for."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.verify: list[object] = []

    def request(self, method: str, url: str, **kwargs: object) -> object:
        self.verify.append(kwargs.get("verify"))
        if url.startswith("https://"):
            self.urls.append(url)
            raise TlsError(self.text)
        return super().request(method, url, **kwargs)


@pytest.mark.parametrize("registry,schemes", [
    ("10.211.55.6:8082", ["https"]), ("registry.example", ["https"]),
    ("127.0.0.1:5000", ["https", "http"]), ("localhost:5000", ["https", "http"]),
])
def test_login_rule_tries_verified_https_then_http_on_loopback_only(
        registry: str, schemes: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --insecure nothing switches verification off, and plain HTTP is tried on this
    machine only."""
    monkeypatch.setattr("jenkins_registry.registry_session.speaks_plain_http",
                        lambda *_, **__: False)  # its probe would leave loopback
    session = _TlsFailure("[SSL: WRONG_VERSION_NUMBER] wrong version number")
    client = RegistryClient(registry, policy=SchemePolicy.login(registry),
                            transport=session, retry=FAST)  # type: ignore[arg-type]
    with pytest.raises((UnreachableError, InsecureRegistryError)):
        client.ping()
    assert [url.split("://")[0] for url in session.urls] == schemes
    assert session.verify[0] is True


def test_login_rule_never_falls_back_past_an_untrusted_certificate() -> None:
    session = _TlsFailure("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
                          "certificate")
    client = RegistryClient("127.0.0.1:5000", credentials=creds(),
                            policy=SchemePolicy.login("127.0.0.1:5000"),
                            transport=session, retry=FAST)  # type: ignore[arg-type]
    with pytest.raises(RegistryError) as info:
        client.check_login()
    assert info.value.exit_code == 10  # documented for jr login: an untrusted certificate is exit 10
    assert "does not trust" in info.value.message
    assert "/etc/docker/certs.d/127.0.0.1:5000/ca.crt" in (info.value.hint or "")
    assert session.urls == ["https://127.0.0.1:5000/v2/"]  # one unauthenticated GET, no HTTP
    no_secret(str(info.value), info.value.hint or "")


def test_check_login_basic(registry: services.Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with RegistryClient(registry.host, credentials=creds(),
                        policy=SchemePolicy.login(registry.host)) as client:
        challenge = client.check_login()
        assert challenge is not None and challenge.scheme == "basic"
        assert client.base_url == f"http://{registry.host}"  # no TLS on the port: plain HTTP
    with RegistryClient(registry.host, credentials=creds(password="wrong-" + SECRET),
                        policy=SchemePolicy.login(registry.host)) as client, \
            pytest.raises(AuthenticationError) as info:
        client.check_login()
    assert info.value.message == f"The registry {registry.host} rejected the password of user 'ci-bot'."
    no_secret(str(info.value), info.value.hint or "", caplog.text)


def test_check_login_fetches_a_token_and_repeats_v2_with_it(
        token_auth: tuple[services.Registry, TokenServer], caplog: pytest.LogCaptureFixture) -> None:
    registry, tokens = token_auth
    caplog.set_level(logging.DEBUG)
    with RegistryClient(registry.host, credentials=creds(),
                        policy=SchemePolicy.login(registry.host)) as client:
        challenge = client.check_login()
        assert challenge is not None and challenge.scheme == "bearer"
    assert tokens.log[-1] == ("ci-bot", (), 200)  # no push scope: /v2/ needs none
    token_host = tokens.realm.split("://", 1)[1].split("/", 1)[0]
    with RegistryClient(registry.host, credentials=creds(password="nope-" + SECRET),
                        policy=SchemePolicy.login(registry.host)) as client, \
            pytest.raises(AuthenticationError) as info:
        client.check_login()
    assert info.value.message == (f"The registry {registry.host} rejected the password of user "
                                  f"'ci-bot' at its token service {token_host}.")
    with RegistryClient(registry.host, policy=SchemePolicy.login(registry.host)) as anonymous, \
            pytest.raises(CredentialsError):
        anonymous.check_login()
    no_secret(str(info.value), info.value.hint or "", caplog.text, repr(tokens.log))


def test_probe_upload_returns_refusals_with_their_status(
        registry: services.Registry, token_auth: tuple[services.Registry, TokenServer]) -> None:
    with RegistryClient(registry.host, credentials=creds()) as client:
        allowed = client.probe_upload("jr-client/probe")
    assert (allowed.status, allowed.cancelled, allowed.error) == (202, True, None)
    token_registry_, _ = token_auth
    with RegistryClient(token_registry_.host, credentials=creds(READER_USER, READER_PASSWORD)) as client:
        refused = client.probe_upload("jr-token/probe")
    assert refused.status == 401 and not refused.cancelled  # a pull-only token: insufficient_scope
    assert isinstance(refused.error, PermissionDeniedError)
    assert refused.error.message == registry_errors.access_denied(
        token_registry_.host, "jr-token/probe", READER_USER).message


class _NexusStyle400(http.server.BaseHTTPRequestHandler):
    """`/v2/` answering a wrong Authorization header with Nexus's 400 UNAUTHORIZED (registry-notes §3.1,
    GoogleContainerTools/jib #2898), and the usual 401 Basic challenge without one."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        import base64

        good = "Basic " + base64.b64encode(f"ci-bot:{SECRET}".encode()).decode()
        header = self.headers.get("Authorization")
        if header == good:
            status, body = 200, b"{}"
        elif header:
            status = 400
            body = (b'{"errors":[{"code":"UNAUTHORIZED","message":"[ERROR-400] DOCKER Either '
                    b'Authorization header is missing or invalid"}]}')
        else:
            status = 401
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'BASIC realm="Sonatype Nexus Repository Manager"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_nexus_400_unauthorized_is_a_rejected_password() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NexusStyle400)
    with services.serve_in_thread(server) as port:
        host = f"127.0.0.1:{port}"
        with RegistryClient(host, credentials=creds(), policy=SchemePolicy.login(host), retry=FAST) as client:
            challenge = client.check_login()
            assert challenge is not None and challenge.scheme == "basic"
        with RegistryClient(host, credentials=creds(password="wrong-" + SECRET),
                            policy=SchemePolicy.login(host),
                            retry=FAST) as client, pytest.raises(AuthenticationError) as info:
            client.check_login()
        assert "rejected the password of user 'ci-bot'" in info.value.message
        no_secret(str(info.value))


def test_a_port_that_is_not_a_registry_says_which_port_to_use() -> None:
    from tests.support import nexus_emulator

    with nexus_emulator.nexus() as nexus:
        host = nexus.url.split("://", 1)[1]
        for policy in (SchemePolicy.from_insecure_flag(host, insecure=False), SchemePolicy.login(host)):
            with RegistryClient(host, policy=policy, retry=FAST) as client, \
                    pytest.raises(RegistryError) as info:
                client.ping()
            assert info.value.message == (f"{host} answered GET /v2/ with HTTP 404: this is not a "
                                          "Docker registry API endpoint.")
            assert "8082" in (info.value.hint or "") and "8081" in (info.value.hint or "")
