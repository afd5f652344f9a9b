"""A counting HTTP proxy in front of the real registry on 127.0.0.1, for "no blob transfer" claims.

Every request is forwarded unchanged (the Host header too, so the registry's `Location`s point
back at the proxy) and recorded with its method, its path *with the query* (a cross-repository
mount differs from an upload only by `?mount=`), the status, and the body bytes each way. No
header is kept, so never an Authorization value.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support import services

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "transfer-encoding", "upgrade", "content-length"}


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str  # with the query
    status: int
    sent: int  # request body bytes
    received: int  # response body bytes


@dataclass
class CountingProxy:
    upstream: str
    port: int = 0
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def clear(self) -> None:
        with self.lock:
            self.exchanges.clear()

    def matching(self, method: str, pattern: str) -> list[Exchange]:
        with self.lock:
            return [e for e in self.exchanges if e.method == method and re.search(pattern, e.path)]

    def blob_transfers(self) -> list[Exchange]:
        """Every exchange that moves blob bytes, or opens or feeds an upload: a blob GET, an
        upload POST that is not a mount, any PATCH, and the PUT that completes an upload."""
        with self.lock:
            return [e for e in self.exchanges if
                    (e.method == "GET" and "/blobs/sha256:" in e.path)
                    or (e.method == "POST" and "/blobs/uploads/" in e.path and "mount=" not in e.path)
                    or e.method == "PATCH"
                    or (e.method == "PUT" and "/blobs/uploads/" in e.path)]

    def blob_bytes(self) -> int:
        """Body bytes of blob requests and answers, both ways (HEAD answers carry none)."""
        with self.lock:
            return sum(e.sent + e.received for e in self.exchanges if "/blobs/" in e.path)


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        for _ in range(1 << 20):  # bounded: a chunk count no test reaches
            size = int(handler.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            parts.append(handler.rfile.read(size))
            handler.rfile.readline(16)
        return b"".join(parts)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _handler(proxy: CountingProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            body = _read_body(self)
            host, port = proxy.upstream.rsplit(":", 1)
            upstream = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if body or self.command in ("POST", "PUT", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                answer = list(response.getheaders())
                length = response.getheader("Content-Length")
                status = response.status
            finally:
                upstream.close()
            with proxy.lock:
                proxy.exchanges.append(Exchange(self.command, self.path, status, len(body), len(data)))
            self.send_response(status)
            for name, value in answer:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            head = self.command == "HEAD"
            self.send_header("Content-Length", length if head and length else str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


@contextlib.contextmanager
def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    """Start the proxy on 127.0.0.1 in front of *upstream* (`127.0.0.1:PORT`); stopped on exit."""
    proxy = CountingProxy(upstream=upstream)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    with services.serve_in_thread(server) as port:
        proxy.port = port
        yield proxy
