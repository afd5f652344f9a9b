"""A small forward proxy on 127.0.0.1 for the proxy tests: CONNECT tunnels and absolute-form HTTP.

What a corporate proxy does, reduced to what the tests look at:

* `CONNECT host:port` opens a tunnel and relays bytes both ways (TLS stays end to end);
* `GET http://host:port/path` (absolute form) is forwarded to the host as an origin-form request,
  with `Proxy-Authorization` and the other hop-by-hop fields removed, and the answer relayed;
* with `credentials`, every request must carry `Proxy-Authorization: Basic …` for them, else it
  gets 407 with `Proxy-Authenticate` (and the connection is closed);
* host names are resolved from its own `names` map only (e.g. `registry.proxy-only` →
  127.0.0.1): the test process cannot resolve them, so a request that reaches the registry must
  have gone through the proxy. Loopback addresses are reachable as themselves; anything else
  gets 502, so nothing leaves this machine.

Every request is recorded with its request line and all its header fields, values included (the
point: tests assert which credentials reached the proxy, and in which header). Relays are
bounded: a tunnel idle for `IDLE_SECONDS` or open when the proxy stops is closed.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import select
import socket
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import services

IDLE_SECONDS = 60.0
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
               "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length"}
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass
class Seen:
    """One request the proxy received: `CONNECT host:port` or an absolute-form request."""

    method: str
    target: str  # "host:port" for CONNECT, the absolute URL otherwise
    headers: list[tuple[str, str]] = field(repr=False)
    client_port: int = 0  # which of the client's connections carried it
    status: int = 0  # what the proxy (or the origin, through it) answered

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class ForwardProxy:
    names: Mapping[str, str]  # host name → address the proxy connects to
    credentials: tuple[str, str] | None = None  # (user, password) the proxy asks for
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """The proxy's URL, with `user:password@` when given (percent-encoded)."""
        if user is None:
            return f"http://127.0.0.1:{self.port}"
        userinfo = urllib.parse.quote(user, safe="") + ":" + urllib.parse.quote(password or "", safe="")
        return f"http://{userinfo}@127.0.0.1:{self.port}"

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def requests(self, method: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if method is None or s.method == method]

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()

    def authorized(self, value: str | None) -> bool:
        if self.credentials is None:
            return True
        user, password = self.credentials
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return value == expected

    def resolve(self, host: str) -> str | None:
        host = host.strip("[]").lower()
        if host in self.names:
            return self.names[host]
        return host if host in _LOOPBACK else None


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(f"//{authority}")
    return parts.hostname or "", parts.port or default_port


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        pieces: list[bytes] = []
        for _ in range(1 << 20):  # bounded: at most this many chunks
            size = int(handler.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            pieces.append(handler.rfile.read(size))
            handler.rfile.readline(16)
        return b"".join(pieces)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _relay(proxy: ForwardProxy, client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until one side closes, the tunnel idles too long, or the proxy stops."""
    idle = 0.0
    while not proxy.stopping.is_set() and idle < IDLE_SECONDS:
        readable, _, _ = select.select([client, upstream], [], [], 0.5)
        if not readable:
            idle += 0.5
            continue
        idle = 0.0
        for source in readable:
            target = upstream if source is client else client
            try:
                data = source.recv(65536)
                if not data:
                    return
                target.sendall(data)
            except OSError:
                return


def _handler(proxy: ForwardProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, seen: Seen, status: int, headers: list[tuple[str, str]] | None = None,
                    body: bytes = b"", *, close: bool = False, head: bool = False,
                    length: str | None = None) -> None:
            seen.status = status
            self.send_response(status)
            for name, value in headers or []:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", length if head and length is not None else str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _admitted(self, seen: Seen) -> bool:
            if proxy.authorized(self.headers.get("Proxy-Authorization")):
                return True
            if self.command != "CONNECT":
                _read_body(self)
            self._answer(seen, 407, [("Proxy-Authenticate", 'Basic realm="forward-proxy"')],
                         b"proxy credentials required\n", close=True)
            return False

        def do_CONNECT(self) -> None:
            seen = Seen("CONNECT", self.path, list(self.headers.items()), self.client_address[1])
            proxy.record(seen)
            if not self._admitted(seen):
                return
            host, port = _split_authority(self.path, 443)
            address = proxy.resolve(host)
            if address is None:
                self._answer(seen, 502, body=b"unknown host\n", close=True)
                return
            try:
                upstream = socket.create_connection((address, port), timeout=10)
            except OSError:
                self._answer(seen, 502, body=b"cannot connect\n", close=True)
                return
            with upstream:
                seen.status = 200
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                _relay(proxy, self.connection, upstream)
            self.close_connection = True

        def _forward(self) -> None:
            seen = Seen(self.command, self.path, list(self.headers.items()), self.client_address[1])
            proxy.record(seen)
            if not self._admitted(seen):
                return
            parts = urllib.parse.urlsplit(self.path)
            body = _read_body(self)
            if parts.scheme != "http" or not parts.hostname:
                self._answer(seen, 400, body=b"absolute-form http:// requests only\n", close=True)
                return
            address = proxy.resolve(parts.hostname)
            if address is None:
                self._answer(seen, 502, body=b"unknown host\n")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            upstream = http.client.HTTPConnection(address, parts.port or 80, timeout=60)
            try:
                upstream.request(self.command, path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
            except OSError:
                self._answer(seen, 502, body=b"upstream failed\n")
                return
            finally:
                upstream.close()
            self._answer(seen, response.status, list(response.getheaders()), data,
                         head=self.command == "HEAD", length=response.getheader("Content-Length"))

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up


def name_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA certificate for the DNS name *name* (a name only the proxy resolves), and
    its key, as PEM files in *directory*."""
    return services.self_signed_certificate(directory, name, dns_name=name)


@contextlib.contextmanager
def forward_proxy(names: Mapping[str, str],
                  credentials: tuple[str, str] | None = None) -> Iterator[ForwardProxy]:
    """Start the proxy on 127.0.0.1, resolving *names* itself; asks for *credentials* if given."""
    proxy = ForwardProxy(names={k.lower(): v for k, v in names.items()}, credentials=credentials)
    server = _Server(("127.0.0.1", 0), _handler(proxy))
    with services.serve_in_thread(server) as port:
        proxy.port = port
        try:
            yield proxy
        finally:
            proxy.stopping.set()
