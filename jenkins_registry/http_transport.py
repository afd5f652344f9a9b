"""A small HTTP/1.1 client on the standard library (http.client, ssl) for the registry protocol.

Why not `requests`: importing it costs about 0.1 s, half of the 0.2 s a re-push may take as a
fresh process, and the registry protocol needs little of it. What this gives `RegistryClient`:

* keep-alive: one connection per thread and origin (the push uploads layers in parallel threads,
  each on its own connection), checked for a server-side close before it is reused;
* TLS verified against the default trust store plus an optional CA bundle (`ca_bundle`: a PEM
  file or a hashed directory; the CLI passes `REQUESTS_CA_BUNDLE` or `SSL_CERT_FILE`), or not
  verified at all (`verify=False`, for the engine's insecure-registry rule);
* request bodies as bytes or iterables of bytes: `Content-Length` when the length is known (a
  header, or a sized iterable), chunked transfer encoding otherwise;
* response bodies read at once (the default; the connection is free again at once), up to a cap
  (`limit`: the rest is never read, the connection is dropped, and the answer says `truncated`),
  or streamed;
* timeouts as (connect, request): connecting is bounded by the first, and each request's answer
  must be complete within the second, in wall-clock time, however slowly a server trickles it
  (every socket wait gets only the time left); an upload body refreshes that deadline with each
  piece it hands over, so a large upload that keeps moving is not cut. An absolute `deadline`
  (the caller's overall budget, on `time.monotonic`) caps all of it.

* forward proxies (`proxies`, a `proxy_env.ProxySettings`; by default the process environment's
  HTTP_PROXY, HTTPS_PROXY and NO_PROXY, as the Docker engine reads them): HTTPS goes through a
  CONNECT tunnel, the proxy credentials on the CONNECT request only, then TLS end to end with the
  registry's name checked; plain HTTP goes to the proxy in absolute form (`GET http://host/path`)
  with `Proxy-Authorization` added. A proxied connection is pooled apart from direct ones (the
  proxy is part of the pool key), and connecting and the CONNECT exchange are bounded by the
  connect timeout.

Deliberately absent: redirects (the caller follows them, so it decides where `Authorization`
may go), retries (the caller's policy), cookies, `.netrc`. Nothing is logged here.

Failures become `ConnectError` (refused, DNS, reset, closed, truncated), its subclasses
`TlsError` (the handshake or the certificate failed; the text keeps OpenSSL's reason, e.g.
`CERTIFICATE_VERIFY_FAILED`) and `ProxyError` (the proxy was not reached, or refused CONNECT, or
answered 407), or `Timeout`. A URL or header value that cannot be sent (not http(s), a bad port,
control or non-ASCII characters) is `UnsendableRequest`, raised before any connection is made;
an unusable proxy variable is proxy_env's `UsageError`. Exceptions raised by a body iterable pass
unchanged.
"""

from __future__ import annotations

import http.client
import io
import math
import os
import re
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any, overload

from jenkins_registry.errors import InputFileError
from jenkins_registry.proxy_env import ProxySettings, ProxyURL, from_process_environment

USER_AGENT = "jenkins-registry"
DEFAULT_TIMEOUT = (10.0, 120.0)  # (connect, whole request) in seconds
DEFAULT_BODY_LIMIT = 1 << 20  # a body read at once is read this far at most (1 MiB)
_DRAIN_LIMIT = 64 * 1024  # a streamed answer this small is read to the end to keep its connection

Body = bytes | Iterable[bytes] | None
Timeouts = tuple[float, float]


class TransportError(Exception):
    """A request failed before a complete answer arrived."""


class ConnectError(TransportError):
    """The connection failed: refused, unknown host, reset, closed early, or a truncated body."""


class TlsError(ConnectError):
    """The TLS handshake failed: an untrusted certificate, or a port that does not speak TLS."""


class ProxyError(ConnectError):
    """Through a proxy: it could not be reached (`status` None), or it answered CONNECT (or a
    plain-HTTP request, with 407) with `status` instead of letting the request through. `proxy`
    says which one; the text names it by address and variable, never its credentials."""

    def __init__(self, proxy: ProxyURL, detail: str, status: int | None = None) -> None:
        super().__init__(f"proxy {proxy}: {detail}")
        self.proxy = proxy
        self.status = status
        self.detail = detail


class Timeout(TransportError):
    """Connecting or waiting for the answer took longer than the timeout."""


class UnsendableRequest(ValueError):
    """The URL or a header value cannot be sent: not http(s), a bad port or host, or control or
    non-ASCII characters (a server-supplied `Location` or token, typically). The text never
    quotes the value."""


_BAD_TARGET = re.compile(r"[^\x21-\x7e]")  # what http.client would refuse or fail to encode
_BAD_HEADER_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls, tab allowed


def _check_header_values(fields: Mapping[str, str]) -> None:
    for name, value in fields.items():
        if _BAD_HEADER_VALUE.search(value):
            raise UnsendableRequest(f"the {name} header value holds control characters")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise UnsendableRequest(f"the {name} header value is not Latin-1 text") from None


def _wrap(exc: BaseException) -> TransportError:
    """The transport error for a socket, TLS or protocol failure (text: type and errno text)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):  # socket.timeout, also a TLS handshake timeout
        return Timeout(text)
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return TlsError(text)
    return ConnectError(text)


_FAILURES = (OSError, http.client.HTTPException)


def _cut_short(missing: int) -> ConnectError:
    """The peer hung up *missing* bytes before the end its Content-Length announced."""
    return ConnectError(f"IncompleteRead: the connection closed {missing} bytes before the end "
                        "of the answer")


def ca_bundle_from(environ: Mapping[str, str]) -> str | None:
    """The CA bundle the environment names (`REQUESTS_CA_BUNDLE`, else `SSL_CERT_FILE`), or None.

    For CLI modules, which pass their environment; library code takes the value as a parameter.
    """
    return environ.get("REQUESTS_CA_BUNDLE") or environ.get("SSL_CERT_FILE") or None


# -- answers ---------------------------------------------------------------------------------------


class Headers:
    """Header fields of an answer, looked up case-insensitively; repeated fields joined by ", "."""

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._fields: dict[str, tuple[str, str]] = {}
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        for name, value in pairs:
            key = name.lower()
            if key in self._fields:
                value = f"{self._fields[key][1]}, {value}"
                name = self._fields[key][0]
            self._fields[key] = (name, value)

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        found = self._fields.get(name.lower())
        return found[1] if found is not None else default

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._fields[name.lower()] = (name, value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields.values())

    def __repr__(self) -> str:  # names only: a header value may be a credential
        return f"Headers({[name for name, _ in self._fields.values()]!r})"


class Response:
    """One answer: status, headers, and the body (read already, or streamed with `iter_content`).

    A streamed answer holds its connection until it is read to the end or closed; `close()` is
    harmless on an answer that was read at once.
    """

    def __init__(
        self,
        status_code: int,
        headers: Headers | Mapping[str, str] | Iterable[tuple[str, str]] = (),
        content: bytes = b"",
        *,
        reason: str = "",
        raw: http.client.HTTPResponse | None = None,
        on_done: Callable[[bool], None] | None = None,
        truncated: bool = False,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.truncated = truncated  # the body went past the request's limit: `content` is its start
        self._content = content
        self._raw = raw
        self._on_done = on_done

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"

    def _finish(self, reusable: bool) -> None:
        self._raw = None
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(reusable)

    def iter_content(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The body in pieces of at most *chunk_size* bytes (from memory when already read)."""
        if self._raw is None:
            if self._content:
                yield self._content
            return
        raw = self._raw
        while True:
            try:
                piece = raw.read(chunk_size)
            except _FAILURES as exc:
                self._finish(False)
                raise _wrap(exc) from exc
            except BaseException:
                self._finish(False)
                raise
            if not piece:
                if raw.length:  # http.client ends a body cut short quietly: not the whole answer
                    self._finish(False)
                    raise _cut_short(raw.length)
                self._finish(not raw.will_close)
                return
            yield piece

    @property
    def content(self) -> bytes:
        """The whole body (a streamed one is read to the end first)."""
        if self._raw is not None:
            self._content = b"".join(self.iter_content())
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON (or nested too deeply)."""
        return parse_json(self.content)

    def close(self) -> None:
        """Release the connection: a small unread rest is read, anything larger closes it."""
        raw = self._raw
        if raw is None:
            return
        if raw.length is not None and raw.length <= _DRAIN_LIMIT and not raw.chunked:
            try:
                raw.read()
            except _FAILURES:
                self._finish(False)
                return
            self._finish(not raw.will_close)
            return
        self._finish(False)


def parse_json(data: bytes | str) -> Any:
    """JSON from a server; ValueError for anything that is not JSON, nesting too deep included
    (the parser's RecursionError would otherwise escape as a crash)."""
    import json

    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# -- connections -----------------------------------------------------------------------------------


class _DeadlineSocket:
    """A connected socket whose every blocking call gets only the time left before `deadline`
    (monotonic seconds): a server trickling a byte at a time cannot stretch a request past it.

    It stands in for the socket http.client holds (sendall, makefile, close); like a real socket,
    it is closed for good only when the reader `makefile` gave out is closed too.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = math.inf
        self._readers = 0
        self._closed = False

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(left)

    def sendall(self, data: Any) -> None:
        self._arm()
        self.sock.sendall(data)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        self._arm()
        return self.sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def release_reader(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self.sock.close()

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def settimeout(self, value: float | None) -> None:
        pass  # each call sets its own from the deadline

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)


class _DeadlineReader(io.RawIOBase):
    def __init__(self, owner: _DeadlineSocket) -> None:
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._owner.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner.release_reader()
        super().close()


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()  # with the connect timeout
        self.sock = _DeadlineSocket(self.sock)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()  # TCP and the TLS handshake, each bounded by the connect timeout
        self.sock = _DeadlineSocket(self.sock)


class _ProxyHTTPConnection(_HTTPConnection):
    """Plain HTTP to a forward proxy, which takes requests for any host in absolute form."""

    def __init__(self, proxy: ProxyURL, timeout: float) -> None:
        super().__init__(proxy.host, proxy.port, timeout=timeout)
        self.proxy = proxy

    def connect(self) -> None:
        try:
            super().connect()
        except OSError as exc:
            raise ProxyError(self.proxy, f"not reached: {type(exc).__name__}: {exc}") from exc


class _TunnelHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS through a forward proxy: TCP to the proxy, `CONNECT host:port` (the one request that
    carries the proxy's credentials), then TLS end to end with *host*, whose name is verified.

    Not http.client's own `set_tunnel`: its CONNECT answer other than 200 is a bare OSError, and
    its exchange is bounded per socket call rather than as a whole.
    """

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext,
                 proxy: ProxyURL) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.proxy = proxy
        self._tls = context

    def connect(self) -> None:
        timeout = float(self.timeout or DEFAULT_TIMEOUT[0])
        until = time.monotonic() + timeout  # the whole CONNECT exchange within the connect timeout
        try:
            sock = socket.create_connection((self.proxy.host, self.proxy.port), timeout)
        except OSError as exc:
            raise ProxyError(self.proxy, f"not reached: {type(exc).__name__}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _open_tunnel(sock, self.proxy, self.host, self.port, until)
            sock.settimeout(timeout)  # the TLS handshake, bounded as on a direct connection
            tls = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(tls)


_CONNECT_ANSWER_LIMIT = 16 * 1024  # a proxy's answer to CONNECT is read this far at most
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?")


def _open_tunnel(sock: socket.socket, proxy: ProxyURL, host: str, port: int, until: float) -> None:
    """Ask *proxy* over *sock* for a tunnel to *host*:*port* and read its answer, by *until*
    (monotonic); ProxyError unless it answers 200 (Go's rule too)."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization.reveal()}")
    answer = b""
    try:
        _time_left(sock, until)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while b"\r\n\r\n" not in answer:
            if len(answer) > _CONNECT_ANSWER_LIMIT:
                raise ProxyError(proxy, "answered CONNECT with too large a header")
            _time_left(sock, until)
            piece = sock.recv(4096)
            if not piece:
                raise ProxyError(proxy, "closed the connection before answering CONNECT")
            answer += piece
    except OSError as exc:
        raise ProxyError(proxy, f"CONNECT failed: {type(exc).__name__}: {exc}") from exc
    head, _, rest = answer.partition(b"\r\n\r\n")
    status_line = _STATUS_LINE.fullmatch(head.split(b"\r\n", 1)[0])
    if status_line is None:
        raise ProxyError(proxy, "answered CONNECT with something that is not HTTP")
    status = int(status_line[1])
    if status != 200:  # the reason phrase is the proxy's text: not quoted
        raise ProxyError(proxy, f"answered CONNECT with HTTP {status}", status)
    if rest:
        raise ProxyError(proxy, "sent data of its own after opening the tunnel")


def _time_left(sock: socket.socket, until: float) -> None:
    left = until - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    sock.settimeout(left)


# scheme, host, port, verified, proxy; a proxied plain-HTTP connection serves any host: ("", 0)
_Key = tuple[str, str, int, bool, ProxyURL | None]


@dataclass(eq=False)
class _Conn:
    http: http.client.HTTPConnection
    busy: bool = False  # a request is under way on it, or its streamed answer is being read
    pooled: bool = True  # False once a newer connection took its place in the pool


def _dropped(sock: socket.socket | None) -> bool:
    """Whether an idle keep-alive socket was closed by the server (it is readable while idle)."""
    if sock is None:
        return False  # http.client connects again on the next request
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):  # AttributeError: no poll() on this OS
        return True


class HttpTransport:
    """Sends requests over kept-alive connections; safe to share between threads.

    *ca_bundle* adds CA certificates (a PEM file, or a directory in OpenSSL's hashed layout) to
    the default trust store for verified HTTPS; *ca_data* adds PEM text (the engine's certs.d CA
    files). *proxies*: the forward proxies (see `proxy_env`); None, the default, takes them from
    the process environment. `close()` closes every connection it opened.
    """

    def __init__(self, *, ca_bundle: str | None = None, ca_data: str | None = None,
                 proxies: ProxySettings | None = None) -> None:
        self.ca_bundle = ca_bundle
        self.ca_data = ca_data
        # None: the process environment's (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as the engine does;
        # proxy_env.DIRECT for none
        self.proxies = proxies if proxies is not None else from_process_environment()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[_Conn] = set()
        self._contexts: dict[bool, ssl.SSLContext] = {}

    def __repr__(self) -> str:
        return f"HttpTransport(ca_bundle={self.ca_bundle!r}, proxies={self.proxies!r})"

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            conn.http.close()
        self._local = threading.local()

    # -- TLS -------------------------------------------------------------------------------------

    def _context(self, verify: bool) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(verify)
            if context is None:
                context = self._contexts[verify] = self._new_context(verify)
            return context

    def _new_context(self, verify: bool) -> ssl.SSLContext:
        if not verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context()
            if self.ca_data:
                try:
                    context.load_verify_locations(cadata=self.ca_data)
                except ssl.SSLError as exc:
                    raise InputFileError(
                        f"The registry's CA certificates cannot be loaded ({type(exc).__name__}).",
                        hint="Check the *.crt files in /etc/docker/certs.d/HOST:PORT/.",
                    ) from None
            if self.ca_bundle:
                try:
                    if os.path.isdir(self.ca_bundle):
                        context.load_verify_locations(capath=self.ca_bundle)
                    else:
                        context.load_verify_locations(cafile=self.ca_bundle)
                except (OSError, ssl.SSLError) as exc:
                    raise InputFileError(
                        f"The CA bundle {self.ca_bundle} cannot be loaded "
                        f"({type(exc).__name__}).",
                        hint="Point REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) at a PEM file of CA "
                        "certificates, or unset it to use the system trust store.",
                    ) from None
        context.set_alpn_protocols(["http/1.1"])
        return context

    # -- connections -----------------------------------------------------------------------------

    def _checkout(self, key: _Key, timeout: Timeouts) -> _Conn:
        pool: dict[_Key, _Conn] | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        conn = pool.get(key)
        if conn is not None and conn.busy:
            conn.pooled = False  # its streamed answer closes it; this thread gets a new one
            conn = None
        elif conn is not None and _dropped(conn.http.sock):
            conn.http.close()  # reopened by the request below
        if conn is None:
            scheme, host, port, verify, proxy = key
            connection: http.client.HTTPConnection
            if proxy is not None and scheme == "https":
                connection = _TunnelHTTPSConnection(host, port, timeout=timeout[0],
                                                    context=self._context(verify), proxy=proxy)
            elif proxy is not None:
                connection = _ProxyHTTPConnection(proxy, timeout=timeout[0])
            elif scheme == "https":
                connection = _HTTPSConnection(host, port, timeout=timeout[0],
                                              context=self._context(verify))
            else:
                connection = _HTTPConnection(host, port, timeout=timeout[0])
            conn = pool[key] = _Conn(connection)
            with self._lock:
                self._connections.add(conn)
        return conn

    def _discard(self, conn: _Conn) -> None:
        conn.http.close()
        conn.busy = False
        if not conn.pooled:
            with self._lock:
                self._connections.discard(conn)

    def _done(self, conn: _Conn, reusable: bool) -> None:
        """A streamed answer was read to the end (*reusable*) or abandoned."""
        if reusable and conn.pooled:
            conn.busy = False
        else:
            self._discard(conn)

    # -- requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        verify: bool = True,
        timeout: Timeouts = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        limit: int = DEFAULT_BODY_LIMIT,
        stream: bool = False,
    ) -> Response:
        """Send one request and return the answer, whatever its status; redirects are not followed.

        *body*: bytes, or an iterable of bytes sent as it is produced (with `Content-Length` when
        *headers* give it or the iterable is sized, else chunked). *verify*: check the HTTPS
        certificate and host name. *timeout*: (connect, request) seconds, the second a wall-clock
        bound on the answer (and on each piece of an upload body); *deadline*: an absolute
        `time.monotonic()` past which nothing waits. *limit*: how much of a body read at once is
        read (past it the answer is `truncated` and its connection dropped). *stream*: leave the
        body to `iter_content` (within the same request deadline).
        """
        parts, port = _split_url(url)
        scheme = parts.scheme.lower()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if _BAD_TARGET.search(target):
            raise UnsendableRequest("the URL holds spaces, control or non-ASCII characters")
        assert parts.hostname is not None
        port = port or (443 if scheme == "https" else 80)
        proxy = self.proxies.proxy_for(scheme, parts.hostname, port)
        key: _Key = (scheme, parts.hostname, port, verify or scheme == "http", proxy)
        fields = {"User-Agent": USER_AGENT, **(headers or {})}
        fields = {name: value for name, value in fields.items()
                  if name.lower() != "proxy-authorization"}  # the proxy's credentials: ours alone
        _check_header_values(fields)
        if proxy is not None and scheme == "http":
            # absolute form to the proxy, over a connection it serves for any host
            target = f"http://{parts.netloc.rpartition('@')[2]}{target}"  # Host: as the URL has it
            key = (scheme, "", 0, True, proxy)
            if proxy.authorization:
                fields["Proxy-Authorization"] = proxy.authorization.reveal()
        cap = math.inf if deadline is None else deadline

        connect_left = min(timeout[0], cap - time.monotonic())
        if connect_left <= 0:
            raise Timeout("TimeoutError: timed out")
        conn = self._checkout(key, timeout)
        # busy from here: a request made while this one's body is still being produced (a blob
        # copied by streaming a GET into this PUT, on one thread) must get a connection of its own
        conn.busy = True
        conn.http.timeout = connect_left

        def renew() -> None:
            """The request time starts again (after connecting, with each piece of a body, for
            the answer), never past the caller's deadline."""
            if isinstance(conn.http.sock, _DeadlineSocket):
                conn.http.sock.deadline = min(time.monotonic() + timeout[1], cap)

        data: Any = body
        if body is not None and not isinstance(body, (bytes, bytearray, memoryview)):
            names = {name.lower() for name in fields}
            if isinstance(body, Sized) and not names & {"content-length", "transfer-encoding"}:
                fields["Content-Length"] = str(len(body))
            data = _refreshing(body, renew)
        truncated = False
        try:
            try:
                if conn.http.sock is None:
                    conn.http.connect()  # here, so that the socket has its deadline before sending
                renew()
                conn.http.request(method, target, body=data, headers=fields)
            except BrokenPipeError as exc:
                # the server may have answered early (401, 413) and stopped reading: take its answer
                renew()
                try:
                    raw = conn.http.getresponse()
                except _FAILURES:
                    raise exc from None
            else:
                renew()
                raw = conn.http.getresponse()
            if raw.status == 407 and proxy is not None and scheme == "http":
                raw.close()  # the proxy's answer, not the registry's
                raise ProxyError(proxy, "answered HTTP 407", 407)
            answer_headers = Headers(raw.getheaders())
            if not stream or method == "HEAD":
                content = raw.read(limit + 1)
                if len(content) > limit:
                    content, truncated = content[:limit], True
                elif raw.length and method != "HEAD":
                    raise _cut_short(raw.length)
        except _FAILURES as exc:
            self._discard(conn)
            raise _wrap(exc) from exc
        except BaseException:
            self._discard(conn)  # e.g. the body iterable failed: the request is half sent
            raise
        if not stream or method == "HEAD":
            if raw.will_close or truncated:
                raw.close()
            self._done(conn, reusable=not (raw.will_close or truncated))
            return Response(raw.status, answer_headers, content, reason=raw.reason,
                            truncated=truncated)
        return Response(raw.status, answer_headers, reason=raw.reason, raw=raw,
                        on_done=lambda reusable: self._done(conn, reusable))


def _refreshing(body: Iterable[bytes], renew: Callable[[], None]) -> Iterator[bytes]:
    """*body*, renewing the request deadline with each piece: an upload that keeps moving is not
    cut by it, one that stalls is."""
    for piece in body:
        renew()
        yield piece


def _split_url(url: str) -> tuple[urllib.parse.SplitResult, int | None]:
    """The parts and port of an http(s) URL; UnsendableRequest for anything else (never quoting
    the URL: its query may matter)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsendableRequest("not a valid http(s) URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UnsendableRequest("not an http(s) URL")
    if port == 0:
        raise UnsendableRequest("not a valid http(s) URL (port 0)")
    try:
        parts.hostname.encode("ascii")
    except UnicodeEncodeError:
        raise UnsendableRequest("not an http(s) URL with an ASCII host name") from None
    return parts, port
