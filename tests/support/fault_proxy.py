"""A fault-injecting HTTP proxy for tests, in front of the real registry on 127.0.0.1.

Requests are forwarded unchanged (the Host header too, so the registry's `Location`s point back
at the proxy) unless a rule matches; rules answer with a status (503, 429 + Retry-After, …),
drop the connection after part of the request body, forward the request and then drop the
answer, or redirect elsewhere. Every rule fires a bounded number of times. The log keeps
method, path and outcome only: no header (so never an Authorization header), no body.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import re
import socket
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tests.support import services

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "transfer-encoding", "upgrade", "content-length"}


@dataclass
class Rule:
    """`action`: "status" (answer `status` with `headers`), "drop" (close after reading
    `after_bytes` of the body), "drop_response" (forward, then close without answering),
    "redirect" (answer 307 to `location`)."""

    method: str
    path: str  # regular expression searched in the path (query excluded)
    action: str
    times: int = 1
    status: int = 503
    headers: Mapping[str, str] = field(default_factory=dict)
    after_bytes: int = 0
    location: str = ""
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.fired < self.times and self.method == method and re.search(self.path, path) is not None


@dataclass
class FaultProxy:
    upstream: str  # host:port of the registry
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, outcome)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.log.clear()

    def take_rule(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.fired += 1
                    return rule
        return None

    def record(self, method: str, path: str, outcome: str) -> None:
        with self.lock:
            self.log.append((method, path, outcome))

    def count(self, method: str, pattern: str, outcome: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, p, o in self.log
                       if m == method and re.search(pattern, p) and (outcome is None or o == outcome))

    def log_text(self) -> str:
        with self.lock:
            return "\n".join(" ".join(entry) for entry in self.log)


def _read_chunked(rfile: object, limit: int | None = None) -> bytes:
    """A chunked request body, decoded; with *limit*, stop once that much has been read."""
    parts: list[bytes] = []
    while True:
        if limit is not None and sum(map(len, parts)) >= limit:
            return b"".join(parts)
        line = rfile.readline(1024)  # type: ignore[attr-defined]
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # type: ignore[attr-defined]
                pass
            return b"".join(parts)
        parts.append(rfile.read(size))  # type: ignore[attr-defined]
        rfile.readline(16)  # type: ignore[attr-defined]


def _handler(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # nothing about requests goes to stderr; the proxy's own log has no headers

        def _abort(self) -> None:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.close()

        def _body(self, limit: int | None = None) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return _read_chunked(self.rfile, limit)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length if limit is None else min(limit, length))

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes, head: bool,
                   length: str | None = None) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", length if head and length is not None else str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _handle(self) -> None:
            method = self.command
            path = self.path.split("?", 1)[0]
            rule = proxy.take_rule(method, path)
            if rule is not None and rule.action == "drop":
                self._body(rule.after_bytes)
                proxy.record(method, path, "dropped")
                self._abort()
                return
            body = self._body()
            if rule is not None and rule.action == "status":
                proxy.record(method, path, str(rule.status))
                payload = (b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
                           if rule.status >= 500 else b'{"errors":[{"code":"TOOMANYREQUESTS",'
                           b'"message":"injected fault"}]}')
                self._reply(rule.status, [("Content-Type", "application/json"), *rule.headers.items()],
                            payload, method == "HEAD")
                return
            if rule is not None and rule.action == "redirect":
                proxy.record(method, path, "307")
                self._reply(307, [("Location", rule.location)], b"", method == "HEAD")
                return
            host, port = proxy.upstream.rsplit(":", 1)
            upstream = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if body or method in ("POST", "PUT", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                upstream.request(method, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                answer_headers = list(response.getheaders())
                length = response.getheader("Content-Length")
                status = response.status
            finally:
                upstream.close()
            if rule is not None and rule.action == "drop_response":
                proxy.record(method, path, f"{status}+dropped")
                self._abort()
                return
            proxy.record(method, path, str(status))
            self._reply(status, answer_headers, data, method == "HEAD", length)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """Start the proxy on 127.0.0.1 in front of *upstream* (`127.0.0.1:PORT`); stopped on exit."""
    proxy = FaultProxy(upstream=upstream)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    with services.serve_in_thread(server) as port:
        proxy.port = port
        yield proxy
