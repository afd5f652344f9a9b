"""The stdlib HTTP transport under RegistryClient, against small real servers on 127.0.0.1.

Each server is a `http.server` HTTP/1.1 handler (keep-alive, like the registry) that records the
client port of every request, so connection reuse is observable; the TLS servers use a
certificate made here for 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from jenkins_registry.errors import InputFileError, UsageError
from jenkins_registry.http_transport import (
    ConnectError,
    Headers,
    HttpTransport,
    ProxyError,
    Response,
    Timeout,
    TlsError,
    ca_bundle_from,
)
from jenkins_registry.proxy_env import DIRECT, ProxySettings
from jenkins_registry.registry_session import is_untrusted_certificate
from tests.support import forward_proxy, services
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET /blob/N: N bytes; GET /short/N: N bytes announced, half of them sent; GET /chunked: a
    chunked answer; PUT/PATCH: echoes what it received (length, sha256, how it was framed);
    GET /redirect: 307; GET /slow: answers after 2 s; GET /close: answers with
    `Connection: close`. Records (client port, method, path)."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[int, str, str]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _record(self) -> None:
        with self.lock:
            self.seen.append((self.client_address[1], self.command, self.path))

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._record()
        if self.path.startswith("/blob/"):
            size = int(self.path.rsplit("/", 1)[1])
            self._send(200, bytes(i % 251 for i in range(size)))
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"abc", b"defg", b""):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        elif self.path == "/redirect":
            self._send(307, b"", {"Location": "http://elsewhere.invalid/x"})
        elif self.path == "/slow":
            threading.Event().wait(2.0)
            self._send(200, b"late")
        elif self.path == "/close":
            self.close_connection = True
            self._send(200, b"bye", {"Connection": "close"})
        elif self.path.startswith("/short/"):  # announces N bytes, sends half, hangs up
            size = int(self.path.rsplit("/", 1)[1])
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(bytes(size // 2))
        elif self.path == "/headers":
            self.send_response(200)
            self.send_header("WWW-Authenticate", 'Basic realm="a"')
            self.send_header("WWW-Authenticate", 'Bearer realm="b"')
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(200, self.headers.get("User-Agent", "").encode())

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        self._record()
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            framing, parts = "chunked", []
            while True:
                size = int(self.rfile.readline(100).strip(), 16)
                if size == 0:
                    self.rfile.readline(100)
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(100)
            body = b"".join(parts)
        else:
            framing = "length"
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(201, f"{framing} {len(body)} {hashlib.sha256(body).hexdigest()}".encode())

    do_PATCH = do_PUT


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out or hung up on purpose


@contextlib.contextmanager
def _server(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A keep-alive test server on 127.0.0.1; yields its `scheme://127.0.0.1:port`."""
    _Handler.seen.clear()
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    with services.serve_in_thread(server) as port:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"


def _ports() -> list[int]:
    with _Handler.lock:
        return [port for port, _, _ in _Handler.seen]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed CA certificate for 127.0.0.1, and its key."""
    return services.self_signed_certificate(tmp_path_factory.mktemp("transport-tls"),
                                            "jr-test-transport")


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


# -- connections ------------------------------------------------------------------------------------


def test_requests_of_one_thread_share_one_connection() -> None:
    with _server() as base, HttpTransport() as transport:
        for _ in range(3):
            response = transport.request("GET", f"{base}/blob/1000")
            assert response.status_code == 200 and len(response.content) == 1000
        assert transport.request("HEAD", f"{base}/blob/5000").headers["content-length"] == "5000"
        assert transport.request("GET", f"{base}/").content == b"jenkins-registry"  # User-Agent
        assert len(_ports()) == 5 and len(set(_ports())) == 1


def test_each_thread_gets_its_own_connection() -> None:
    with _server() as base, HttpTransport() as transport:
        barrier = threading.Barrier(3, timeout=10)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(3):
                    assert transport.request("GET", f"{base}/blob/10").status_code == 200
                    barrier.wait()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert not errors
        ports = _ports()
        assert len(ports) == 9 and len(set(ports)) == 3


def test_a_connection_the_server_closed_is_replaced() -> None:
    with _server() as base, HttpTransport() as transport:
        assert transport.request("GET", f"{base}/close").content == b"bye"
        assert transport.request("GET", f"{base}/blob/3").content == bytes([0, 1, 2])
        assert transport.request("GET", f"{base}/blob/3").status_code == 200
        ports = _ports()
        assert ports[0] != ports[1] and ports[1] == ports[2]


def test_redirects_are_returned_not_followed() -> None:
    with _server() as base, HttpTransport() as transport:
        response = transport.request("GET", f"{base}/redirect")
        assert response.status_code == 307
        assert response.headers.get("location") == "http://elsewhere.invalid/x"


def test_repeated_header_fields_are_joined() -> None:
    with _server() as base, HttpTransport() as transport:
        response = transport.request("GET", f"{base}/headers")
        assert response.headers["WWW-Authenticate"] == 'Basic realm="a", Bearer realm="b"'
        assert response.headers.get("X-Missing", "none") == "none"
        assert "www-authenticate" in response.headers


# -- bodies -----------------------------------------------------------------------------------------


class _SizedChunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return sum(map(len, self.chunks))


def test_request_bodies_bytes_sized_and_streamed() -> None:
    chunks = [bytes([i]) * 70_000 for i in range(5)]
    whole = b"".join(chunks)
    digest = hashlib.sha256(whole).hexdigest()
    with _server() as base, HttpTransport() as transport:
        url = f"{base}/upload"
        assert transport.request("PUT", url, body=whole).text == f"length {len(whole)} {digest}"
        assert transport.request("PUT", url, body=_SizedChunks(chunks)).text == \
            f"length {len(whole)} {digest}"
        assert transport.request("PATCH", url, body=iter(chunks)).text == f"chunked {len(whole)} {digest}"
        assert transport.request("PUT", url, body=iter([b"", *chunks, b""])).text == \
            f"chunked {len(whole)} {digest}"  # an empty piece does not end the chunked body early
        headers = {"Content-Length": str(len(whole))}
        assert transport.request("PUT", url, body=iter(chunks), headers=headers).text == \
            f"length {len(whole)} {digest}"
        assert transport.request("PUT", url).text == f"length 0 {hashlib.sha256(b'').hexdigest()}"
        assert len(set(_ports())) == 1


def test_a_request_made_while_a_body_is_produced_gets_its_own_connection() -> None:
    """A body that itself asks the same server (a blob streamed from a GET into a PUT, on one
    thread) must not be given the connection the PUT is being sent on."""
    with _server() as base, HttpTransport() as transport:
        def body() -> Iterator[bytes]:
            for size in (1000, 2000):
                yield transport.request("GET", f"{base}/blob/{size}").content

        whole = bytes(i % 251 for i in range(1000)) + bytes(i % 251 for i in range(2000))
        answer = transport.request("PUT", f"{base}/upload", body=body())
        assert answer.text == f"chunked 3000 {hashlib.sha256(whole).hexdigest()}"
        assert transport.request("GET", f"{base}/blob/10").status_code == 200  # the pool still works
        with _Handler.lock:
            port_of = {path: port for port, _, path in _Handler.seen}
        assert port_of["/upload"] != port_of["/blob/1000"] == port_of["/blob/2000"]
        assert port_of["/blob/10"] == port_of["/blob/1000"]  # afterwards the newer connection is pooled


def test_an_error_inside_the_body_passes_unchanged_and_drops_the_connection() -> None:
    class Broken(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"x" * 1000
        raise Broken("the layer changed")

    with _server() as base, HttpTransport() as transport:
        with pytest.raises(Broken):
            transport.request("PATCH", f"{base}/upload", body=body())
        assert transport.request("GET", f"{base}/blob/10").status_code == 200  # a fresh connection


def test_streamed_answers() -> None:
    with _server() as base, HttpTransport() as transport:
        response = transport.request("GET", f"{base}/blob/3000000", stream=True)
        pieces = list(response.iter_content(1 << 20))
        assert [len(p) for p in pieces] == [1 << 20, 1 << 20, 3000000 - 2 * (1 << 20)]
        assert b"".join(pieces) == bytes(i % 251 for i in range(3000000))
        # read to the end: the connection serves the next request
        assert transport.request("GET", f"{base}/blob/10").status_code == 200
        # a streamed answer still being read: the next request opens another connection
        open_answer = transport.request("GET", f"{base}/blob/500000", stream=True)
        assert transport.request("GET", f"{base}/blob/10").content == bytes(range(10))
        assert len(open_answer.content) == 500000
        # abandoned half-way: the connection is closed, not reused
        abandoned = transport.request("GET", f"{base}/blob/3000000", stream=True)
        next(abandoned.iter_content(1000))
        abandoned.close()
        assert transport.request("GET", f"{base}/chunked", stream=True).content == b"abcdefg"
        first, _, _, fourth, fifth, sixth = _ports()
        assert _ports()[:3] == [first] * 3 and fourth != first and fifth == fourth
        assert sixth not in (first, fourth)


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_cut_short_of_its_content_length_is_a_network_failure(stream: bool) -> None:
    # http.client ends such a body quietly when read in pieces; taken as whole, it would be
    # blamed on the content (a digest mismatch) instead of the network, and not retried
    with _server() as base, HttpTransport() as transport:
        with pytest.raises(ConnectError) as info:
            response = transport.request("GET", f"{base}/short/300000", stream=stream)
            b"".join(response.iter_content(1 << 16))
        assert "IncompleteRead" in str(info.value) and "150000 bytes" in str(info.value)
        assert transport.request("GET", f"{base}/blob/10").content == bytes(range(10))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_and_unknown_host() -> None:
    with HttpTransport() as transport:
        with pytest.raises(ConnectError) as refused:
            transport.request("GET", f"http://127.0.0.1:{_free_port()}/v2/")
        assert "Connection refused" in str(refused.value)
        assert not isinstance(refused.value, TlsError)
        with pytest.raises(ConnectError) as unknown:
            transport.request("GET", "http://no-such-host.invalid/v2/", timeout=(5.0, 5.0))
        assert "gaierror" in str(unknown.value)


def test_read_timeout() -> None:
    with _server() as base, HttpTransport() as transport, pytest.raises(Timeout) as info:
        transport.request("GET", f"{base}/slow", timeout=(5.0, 0.3))
    assert "timed out" in str(info.value)


def test_an_answer_that_never_comes() -> None:
    """The server accepts, reads the request and closes: a ConnectError (retryable upstream)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with HttpTransport() as transport, pytest.raises(ConnectError) as info:
            transport.request("GET", f"http://127.0.0.1:{port}/v2/")
        assert "RemoteDisconnected" in str(info.value)
    finally:
        thread.join(timeout=10)
        listener.close()


def test_not_a_url() -> None:
    with HttpTransport() as transport, pytest.raises(ValueError):
        transport.request("GET", "ftp://127.0.0.1/x")


# -- TLS --------------------------------------------------------------------------------------------


def test_tls_verified_with_a_ca_bundle(certificate: tuple[Path, Path]) -> None:
    with _server(_server_context(certificate)) as base:
        with HttpTransport(ca_bundle=str(certificate[0])) as trusted:
            assert trusted.request("GET", f"{base}/blob/10").status_code == 200
            assert trusted.request("GET", f"{base}/blob/10").status_code == 200
        with HttpTransport(ca_bundle=str(certificate[0].parent / "missing.pem")) as broken, \
                pytest.raises(InputFileError) as missing:
            broken.request("GET", f"{base}/blob/10")
        assert "REQUESTS_CA_BUNDLE" in (missing.value.hint or "")
        with HttpTransport() as default:
            with pytest.raises(TlsError) as untrusted:
                default.request("GET", f"{base}/blob/10")
            assert is_untrusted_certificate(untrusted.value)  # what the ping tells apart
            assert default.request("GET", f"{base}/blob/10", verify=False).status_code == 200
        # the trusted transport kept its connection; the untrusted handshake sent no request
        ports = _ports()
        assert len(ports) == 3 and ports[0] == ports[1] != ports[2]


def test_tls_to_a_plain_http_port_is_not_an_untrusted_certificate() -> None:
    with _server() as base, HttpTransport() as transport, pytest.raises(TlsError) as info:
        transport.request("GET", base.replace("http://", "https://") + "/v2/")
    assert not is_untrusted_certificate(info.value)


def test_ca_bundle_from_the_environment() -> None:
    assert ca_bundle_from({}) is None
    assert ca_bundle_from({"SSL_CERT_FILE": "/b.pem"}) == "/b.pem"
    assert ca_bundle_from({"REQUESTS_CA_BUNDLE": "/a.pem", "SSL_CERT_FILE": "/b.pem"}) == "/a.pem"
    assert ca_bundle_from({"REQUESTS_CA_BUNDLE": ""}) is None


# -- secrets ----------------------------------------------------------------------------------------


def test_no_header_value_in_reprs_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authorization = {"Authorization": f"Basic {SECRET}"}
    headers = Headers(authorization)
    assert "Authorization" in repr(headers)
    with HttpTransport() as transport, pytest.raises(ConnectError) as info:
        transport.request("GET", f"http://127.0.0.1:{_free_port()}/v2/", headers=authorization)
    with _server() as base, HttpTransport() as transport:
        response = transport.request("GET", f"{base}/", headers=authorization)
    assert_absent(SECRET, repr(headers), repr(response), repr(response.headers), str(info.value),
                  repr(info.value), caplog.text)


def test_a_response_made_by_hand() -> None:
    response = Response(401, {"WWW-Authenticate": "Basic"}, b'{"errors": []}')
    assert response.json() == {"errors": []} and response.text == '{"errors": []}'
    assert list(response.iter_content()) == [b'{"errors": []}']
    response.close()


# -- forward proxies (tests/support/forward_proxy.py; the rules themselves: tests/test_proxy.py) ----

PROXY_SECRET = "Pr0xy-Secret-5e8a41"
ONLY_THE_PROXY_KNOWS = "origin.proxy-only"  # this process cannot resolve it; the proxy can


def _proxied(proxy: forward_proxy.ForwardProxy, *, user: str | None = "jenkins",
             password: str = PROXY_SECRET, no_proxy: str = "") -> ProxySettings:
    url = proxy.url(user, password) if user is not None else proxy.url()
    return ProxySettings.from_environ({"HTTP_PROXY": url, "HTTPS_PROXY": url, "NO_PROXY": no_proxy})


def test_plain_http_goes_to_the_proxy_in_absolute_form() -> None:
    """Absolute-form request line, Host of the origin, Proxy-Authorization from the proxy URL; the
    caller's own Authorization is passed on (the origin needs it) and no other credential is
    added; one kept-alive connection to the proxy serves every origin behind it."""
    with _server() as base, forward_proxy.forward_proxy(
            {ONLY_THE_PROXY_KNOWS: "127.0.0.1", "other.proxy-only": "127.0.0.1"},
            credentials=("jenkins", PROXY_SECRET)) as proxy:
        port = base.rsplit(":", 1)[1]
        with HttpTransport(proxies=_proxied(proxy)) as transport:
            for host in (ONLY_THE_PROXY_KNOWS, "other.proxy-only", ONLY_THE_PROXY_KNOWS):
                response = transport.request("GET", f"http://{host}:{port}/blob/10",
                                             headers={"Authorization": f"Basic {SECRET}"})
                assert response.status_code == 200 and response.content == bytes(range(10))
        seen = proxy.requests()
        assert [s.target for s in seen] == [f"http://{h}:{port}/blob/10" for h in
                                            (ONLY_THE_PROXY_KNOWS, "other.proxy-only", ONLY_THE_PROXY_KNOWS)]
        assert seen[0].header("Host") == f"{ONLY_THE_PROXY_KNOWS}:{port}"
        assert all(s.header("Proxy-Authorization") == _basic("jenkins", PROXY_SECRET) for s in seen)
        assert all(s.header("Authorization") == f"Basic {SECRET}" for s in seen)
        assert len({s.client_port for s in seen}) == 1  # pooled per proxy, whatever the origin
        assert len(_ports()) == 3  # each forwarded by the proxy (on a connection of its own)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_https_goes_through_a_connect_tunnel(tmp_path: Path) -> None:
    """CONNECT host:port carries the proxy credentials and nothing else; TLS then runs end to end
    with the origin, whose certificate is verified for its own name (which only the proxy
    resolves); the tunnel is kept alive for the next request."""
    cert, key = forward_proxy.name_certificate(tmp_path, ONLY_THE_PROXY_KNOWS)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    with _server(context) as base, forward_proxy.forward_proxy(
            {ONLY_THE_PROXY_KNOWS: "127.0.0.1"}, credentials=("jenkins", PROXY_SECRET)) as proxy:
        url = f"https://{ONLY_THE_PROXY_KNOWS}:{base.rsplit(':', 1)[1]}/blob/10"
        with HttpTransport(ca_bundle=str(cert), proxies=_proxied(proxy)) as transport:
            for _ in range(2):
                response = transport.request("GET", url, headers={"Authorization": f"Basic {SECRET}"})
                assert response.status_code == 200 and response.content == bytes(range(10))
        with HttpTransport(proxies=_proxied(proxy)) as untrusting, pytest.raises(TlsError) as info:
            untrusting.request("GET", url)  # the registry's certificate, not the proxy's, is checked
        assert is_untrusted_certificate(info.value)
        connects = proxy.requests("CONNECT")
        assert [c.target for c in connects] == [url.split("/")[2]] * 2
        assert proxy.requests() == connects  # nothing in clear text
        for connect in connects:
            assert connect.header("Proxy-Authorization") == _basic("jenkins", PROXY_SECRET)
            assert connect.header("Authorization") is None
            assert_absent(SECRET, repr(connect.headers))
        assert len(set(_ports())) == 1  # two requests, one tunnel


def test_loopback_and_no_proxy_hosts_are_reached_directly(remote: str) -> None:
    with _server() as base, forward_proxy.forward_proxy({remote: "127.0.0.1"}) as proxy:
        port = base.rsplit(":", 1)[1]
        with HttpTransport(proxies=_proxied(proxy, no_proxy=remote)) as transport:
            assert transport.request("GET", f"{base}/blob/1").status_code == 200  # 127.0.0.1
            assert transport.request("GET", f"http://{remote}:{port}/blob/1").status_code == 200
        assert proxy.requests() == []
        with HttpTransport(proxies=_proxied(proxy, no_proxy="elsewhere.example")) as transport:
            assert transport.request("GET", f"http://{remote}:{port}/blob/1").status_code == 200
        assert [s.target for s in proxy.requests()] == [f"http://{remote}:{port}/blob/1"]


def test_a_proxied_and_a_direct_connection_are_never_mixed(remote: str) -> None:
    """The pool key holds the proxy: the same origin, direct then through the proxy, gets a
    connection of each kind."""
    with _server() as base, forward_proxy.forward_proxy({remote: "127.0.0.1"}) as proxy:
        url = f"http://{remote}:{base.rsplit(':', 1)[1]}/blob/1"
        with HttpTransport(proxies=DIRECT) as transport:
            assert transport.request("GET", url).status_code == 200
            transport.proxies = _proxied(proxy)
            assert transport.request("GET", url).status_code == 200
            transport.proxies = DIRECT
            assert transport.request("GET", url).status_code == 200
        assert len(proxy.requests()) == 1
        first, second, third = _ports()
        assert first == third != second


def test_the_proxy_wants_other_credentials() -> None:
    with forward_proxy.forward_proxy({ONLY_THE_PROXY_KNOWS: "127.0.0.1"},
                                     credentials=("jenkins", "the-right-one")) as proxy:
        for scheme in ("http", "https"):
            for settings in (_proxied(proxy), _proxied(proxy, user=None)):
                with HttpTransport(proxies=settings) as transport, pytest.raises(ProxyError) as info:
                    transport.request("GET", f"{scheme}://{ONLY_THE_PROXY_KNOWS}:5000/v2/")
                assert info.value.status == 407
                assert f"127.0.0.1:{proxy.port} (HTTPS_PROXY)" in str(info.value) or \
                    f"127.0.0.1:{proxy.port} (HTTP_PROXY)" in str(info.value)
                assert_absent(PROXY_SECRET, str(info.value), repr(info.value), repr(settings),
                              repr(transport))
        assert [s.status for s in proxy.requests()] == [407] * 4


def test_a_proxy_that_cannot_be_reached_or_never_answers() -> None:
    port = _free_port()
    settings = ProxySettings.from_environ(
        {"HTTPS_PROXY": f"http://jenkins:{PROXY_SECRET}@127.0.0.1:{port}"})
    with HttpTransport(proxies=settings) as transport, pytest.raises(ProxyError) as refused:
        transport.request("GET", f"https://{ONLY_THE_PROXY_KNOWS}/v2/")
    assert refused.value.status is None and "Connection refused" in str(refused.value)
    assert f"127.0.0.1:{port} (HTTPS_PROXY)" in str(refused.value)
    assert_absent(PROXY_SECRET, str(refused.value), repr(refused.value))

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, reads CONNECT, never answers
    silent = ProxySettings.from_environ({"HTTPS_PROXY": f"127.0.0.1:{listener.getsockname()[1]}"})
    try:
        with HttpTransport(proxies=silent) as transport, pytest.raises(ProxyError) as info:
            transport.request("GET", f"https://{ONLY_THE_PROXY_KNOWS}/v2/", timeout=(0.5, 5.0))
        assert "timed out" in str(info.value) and info.value.status is None
    finally:
        listener.close()


def test_an_unusable_proxy_url_is_refused_only_where_it_applies() -> None:
    settings = ProxySettings.from_environ(
        {"HTTPS_PROXY": f"socks5://jenkins:{PROXY_SECRET}@127.0.0.1:1080", "NO_PROXY": "direct.test"})
    with _server() as base, HttpTransport(proxies=settings) as transport:
        assert transport.request("GET", f"{base}/blob/1").status_code == 200  # loopback: direct
        with pytest.raises(UsageError) as info:
            transport.request("GET", "https://registry.example:5000/v2/")
    assert "HTTPS_PROXY" in str(info.value) and "socks5://" in str(info.value)
    assert "http://" in (info.value.hint or "")
    assert_absent(PROXY_SECRET, str(info.value), info.value.hint, repr(info.value), repr(settings))
