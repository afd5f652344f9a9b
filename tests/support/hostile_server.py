"""A hostile HTTP server on loopback for the registry client's tests (issue 11).

It forwards every request to an upstream registry (the real one) unless the test's `hook` answers
it, and a `rewrite` may change what the upstream answered, so that one misbehaviour is staged at
a time against an otherwise real registry. Without an upstream, unhooked requests get 404. A
reply's body may be bytes, or a writer that trickles, streams without end, or stops answering.

Every request is recorded with its method, path, and the scheme of its `Authorization` header
(never the value); TLS is available with a certificate made by the test. Writers stop when the
client hangs up and are bounded in bytes and time, so no handler outlives its test by long.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tests.support import services

Writer = Callable[[socket.socket], None]
# A registry name that is not loopback by name; the `remote` fixture (tests/conftest.py) makes this
# process alone resolve it to 127.0.0.1, so the non-loopback rules are tested on loopback.
REMOTE = "registry.test"


@dataclass
class Request:
    method: str
    path: str  # with the query
    auth_scheme: str | None  # "basic", "bearer" or None: the header's value is never kept
    headers: dict[str, str] = field(repr=False)  # without Authorization
    body: bytes = field(repr=False, default=b"")


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Writer = b""  # a writer gets the raw socket after the status line and headers


@dataclass
class Record:
    requests: list[Request] = field(default_factory=list)
    written: int = 0  # body bytes a writer managed to send before the client hung up
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, method: str, path_part: str = "") -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.method == method and path_part in r.path)

    def authorized(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.auth_scheme is not None]


Hook = Callable[[Request], Reply | None]
Rewrite = Callable[[Request, Reply], Reply]


@dataclass
class HostileServer:
    upstream: str | None
    hook: Hook | None = None
    rewrite: Rewrite | None = None
    record: Record = field(default_factory=Record)
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def endless(piece: bytes = b"[" * 65536, limit: int = 256 << 20,
            record: Record | None = None) -> Writer:
    """A body that never ends (up to *limit* bytes), counting in *record* what was sent."""

    def write(sock: socket.socket) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while sent < limit:
                sock.sendall(piece)
                sent += len(piece)
                if record is not None:
                    with record.lock:
                        record.written = sent

    return write


def trickle(data: bytes, every: float, stop: threading.Event) -> Writer:
    """*data* one byte every *every* seconds (until *stop* is set or the client hangs up)."""

    def write(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for byte in data:
                if stop.wait(every):
                    return
                sock.sendall(bytes([byte]))

    return write


def silence(stop: threading.Event, longest: float = 60.0) -> Writer:
    """No answer at all, until *stop* is set (bounded by *longest*)."""

    def write(sock: socket.socket) -> None:
        stop.wait(longest)

    return write


def _forward(upstream: str, request: Request, authorization: str | None) -> Reply:
    host, port = upstream.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        headers = dict(request.headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        headers["Content-Length"] = str(len(request.body))
        connection.request(request.method, request.path, body=request.body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        kept = [(k, v) for k, v in response.getheaders()
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")]
        if request.method == "HEAD" and response.getheader("Content-Length"):
            kept.append(("X-Head-Length", response.getheader("Content-Length") or "0"))
        return Reply(response.status, kept, data)
    finally:
        connection.close()


def _handler(server: HostileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts: list[bytes] = []
                while True:
                    size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline(16)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self) -> None:
            authorization = self.headers.get("Authorization")
            request = Request(
                method=self.command, path=self.path,
                auth_scheme=authorization.split(" ", 1)[0].lower() if authorization else None,
                headers={k: v for k, v in self.headers.items()
                         if k.lower() not in ("authorization", "content-length", "transfer-encoding",
                                              "connection")},
                body=self._body(),
            )
            with server.record.lock:
                server.record.requests.append(request)
            reply = server.hook(request) if server.hook is not None else None
            if reply is None:
                reply = (_forward(server.upstream, request, authorization) if server.upstream
                         else Reply(404, [("Content-Type", "text/plain")], b"404 page not found"))
                if server.rewrite is not None:
                    reply = server.rewrite(request, reply)
            self.send_response(reply.status)
            head_length = None
            for name, value in reply.headers:
                if name == "X-Head-Length":
                    head_length = value
                else:
                    self.send_header(name, value)
            if isinstance(reply.body, bytes):
                self.send_header("Content-Length", head_length or str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)
                return
            self.close_connection = True
            self.end_headers()
            self.wfile.flush()
            reply.body(self.connection)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


class _Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up on purpose, or a TLS handshake it refused


@contextlib.contextmanager
def hostile_server(upstream: str | None = None, *, hook: Hook | None = None,
                   rewrite: Rewrite | None = None, tls: ssl.SSLContext | None = None,
                   raw: Writer | None = None) -> Iterator[HostileServer]:
    """Serve on 127.0.0.1 (TLS with *tls*). *raw*: skip HTTP, hand every connection to it."""
    state = HostileServer(upstream=upstream, hook=hook, rewrite=rewrite)
    handler = _handler(state) if raw is None else _raw_handler(raw, state.record)
    server = _Quiet(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    with services.serve_in_thread(server) as port:
        state.port = port
        yield state


def _raw_handler(raw: Writer, record: Record) -> type[http.server.BaseHTTPRequestHandler]:
    class Raw(http.server.BaseHTTPRequestHandler):
        def handle(self) -> None:
            self.connection.settimeout(10)
            with contextlib.suppress(OSError):
                self.connection.recv(65536)  # the request line and headers
            with record.lock:
                record.requests.append(Request("?", "?", None, {}))  # one per connection
            raw(self.connection)

    return Raw


def server_context(cert: tuple[object, object]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context
