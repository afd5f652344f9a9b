"""A fake registry on loopback for tests of interrupts and load: it answers just enough of the
v2 API for a daemonless push (ping, blob HEAD, uploads, manifests, DELETE by digest), keeps blobs
as digests and sizes only (bodies are read and thrown away), and can stop reading a request.

A `Stall` rule lets the first `skip` matching requests through and then takes the next one's
headers and nothing more: the body is never read and no answer is sent, as a registry that has
stopped reading an upload. Stalled handlers wait (bounded) until the server stops. The log keeps
method and path only.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support import services

STALL_SECONDS = 60.0  # a stalled handler gives up after this long (the test has ended by then)


@dataclass
class Stall:
    method: str
    path: str  # regular expression searched in the path (query excluded)
    skip: int = 0  # matching requests answered before the one that stalls
    seen: int = 0


@dataclass
class FakeRegistry:
    stalls: list[Stall] = field(default_factory=list)
    port: int = 0
    log: list[tuple[str, str]] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # digest -> body, type
    tags: dict[str, str] = field(default_factory=dict)  # "repo:tag" -> digest
    received: int = 0  # body bytes read
    stalled: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def should_stall(self, method: str, path: str) -> bool:
        with self.lock:
            self.log.append((method, path))
            for stall in self.stalls:
                if stall.method == method and re.search(stall.path, path):
                    stall.seen += 1
                    if stall.seen == stall.skip + 1:
                        return True
        return False

    def tags_of(self, repository: str) -> list[str]:
        with self.lock:
            return sorted(key.split(":", 1)[1] for key in self.tags
                          if key.split(":", 1)[0] == repository)


def _handler(registry: FakeRegistry) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _discard_body(self) -> bytes:
            """The body, read to the end (kept only when small: manifests)."""
            kept = bytearray()
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(kept)
                    left = size
                    while left:
                        piece = self.rfile.read(min(left, 1 << 20))
                        if not piece:
                            return bytes(kept)
                        left -= len(piece)
                        registry.received += len(piece)
                        if len(kept) < 1 << 20:
                            kept += piece
                    self.rfile.readline(16)
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                piece = self.rfile.read(min(left, 1 << 20))
                if not piece:
                    break
                left -= len(piece)
                registry.received += len(piece)
                if len(kept) < 1 << 20:
                    kept += piece
            return bytes(kept)

        def _answer(self, status: int, headers: dict[str, str] | None = None,
                    body: bytes = b"") -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _unknown(self, code: str) -> None:
            self._answer(404, {"Content-Type": "application/json"},
                         json.dumps({"errors": [{"code": code, "message": "unknown"}]}).encode())

        def _handle(self) -> None:
            method, path = self.command, self.path.split("?", 1)[0]
            query = self.path.partition("?")[2]
            if registry.should_stall(method, path):
                registry.stalled.set()
                registry.released.wait(STALL_SECONDS)  # neither the body nor an answer
                self.close_connection = True
                return
            if path == "/v2/":
                self._answer(200, {"Docker-Distribution-API-Version": "registry/2.0",
                                   "Content-Type": "application/json"}, b"{}")
                return
            if match := re.fullmatch(r"/v2/(.+)/blobs/uploads/([^/]*)", path):
                name, session = match.groups()
                body = self._discard_body()
                location = f"/v2/{name}/blobs/uploads/{session or uuid.uuid4().hex}"
                if method == "PUT":
                    digest = dict(p.split("=", 1) for p in query.split("&") if "=" in p)["digest"]
                    with registry.lock:
                        registry.blobs[digest] = len(body)
                    self._answer(201, {"Docker-Content-Digest": digest, "Location": location})
                elif method == "DELETE":
                    self._answer(204)
                else:  # POST opens a session, PATCH adds to it
                    self._answer(202, {"Location": location, "Range": "0-0"})
                return
            if match := re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path):
                size = registry.blobs.get(match.group(2))
                if size is None:
                    self._unknown("BLOB_UNKNOWN")
                else:
                    self._answer(200, {"Content-Length": str(size)})
                return
            if match := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path):
                self._manifest(method, *match.groups())
                return
            self._unknown("UNSUPPORTED")

        def _manifest(self, method: str, name: str, reference: str) -> None:
            if method == "PUT":
                body = self._discard_body()
                digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
                with registry.lock:
                    registry.manifests[digest] = (body, self.headers.get("Content-Type", ""))
                    if not reference.startswith("sha256:"):
                        registry.tags[f"{name}:{reference}"] = digest
                self._answer(201, {"Docker-Content-Digest": digest})
                return
            with registry.lock:
                digest = reference if reference.startswith("sha256:") else \
                    registry.tags.get(f"{name}:{reference}", "")
                found = registry.manifests.get(digest)
                if method == "DELETE" and found is not None:
                    del registry.manifests[digest]
                    for key in [k for k, v in registry.tags.items() if v == digest]:
                        del registry.tags[key]
            if found is None:
                self._unknown("MANIFEST_UNKNOWN")
            elif method == "DELETE":
                self._answer(202)
            else:
                self._answer(200, {"Content-Type": found[1], "Docker-Content-Digest": digest},
                             found[0])

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


@contextlib.contextmanager
def fake_registry(*stalls: Stall) -> Iterator[FakeRegistry]:
    """Serve a `FakeRegistry` on 127.0.0.1 (no auth) until the block ends; stalled handlers are
    released then."""
    registry = FakeRegistry(stalls=list(stalls))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    with services.serve_in_thread(server) as port:
        registry.port = port
        try:
            yield registry
        finally:
            registry.released.set()
