"""A client for the Registry HTTP API v2 (OCI distribution spec), on `http_transport` (stdlib).

What it does, per ../shared/registry-notes.md section 3: ping and scheme choice, the Basic and
Bearer-token challenges (one parser, `parse_challenge`, also used by `jr doctor`), token fetch per
repository scope (with `repository:<from>:pull` for cross-repository mounts), the credentials
check of `jr login` and `jr doctor` (`check_login`), blob HEAD / mount / upload (monolithic,
streamed or chunked, always continuing at the `Location` the registry gave), and manifest PUT.
Failures become the same `registry_errors` the engine path raises.

Scheme, rule `engine` (jr-push): loopback (127.0.0.0/8, ::1, `localhost`) may use plain HTTP, as
the engine allows; any other host must speak HTTPS unless `insecure=True` (then, like the engine,
HTTPS without certificate check first and plain HTTP second). An HTTPS attempt answered in plain
HTTP is reported with the engine's "server gave HTTP response to HTTPS client" message.
Rule `login` (jr login, jr doctor): for any host, HTTPS with certificate verification first, and
plain HTTP only when HTTPS fails for another reason than an untrusted certificate (which is an
error). Rule `daemon` (jr-push exporting from a local engine): the engine's own configuration
decides, as `client.info()` reports it: a registry the engine treats as insecure gets HTTPS
without certificate check first and plain HTTP second; any other, loopback included, verified
HTTPS only. No credentials are sent before the scheme is chosen.

Reliability: idempotent requests are retried in place on connection errors, 408, 429 and 5xx, with
exponential backoff and `Retry-After`, bounded in attempts and in total time. A blob upload is
retried as a whole (a fresh upload session, after a HEAD when the digest is known), because a
streamed body cannot be replayed.

Secrets: the password and tokens travel only in `Authorization` headers, which are attached only
to the registry's own origin (and the token realm); redirects to another host drop them. No header
is logged, and error text from the server is redacted before it reaches a message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from jenkins_registry import registry_errors
from jenkins_registry.credentials import Secret, UsernamePassword
from jenkins_registry.errors import AuthenticationError, JrError, RegistryError, UnreachableError, redact
from jenkins_registry.http_transport import ConnectError, HttpTransport, Response, Timeout, TlsError

log = logging.getLogger(__name__)

Scheme = Literal["https", "http"]
SchemeRule = Literal["engine", "login", "daemon"]

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_SMALL_BLOB_LIMIT = 16 * 1024 * 1024  # configs and manifests read into memory


# -- challenges ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge: the scheme (lowercase) and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")

    @property
    def error(self) -> str | None:
        return self.params.get("error")


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(
    rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)', re.DOTALL
)
_SCHEME_RE = re.compile(rf"\s*,?\s*({_TOKEN})(?:\s+|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a `WWW-Authenticate` value (RFC 7235 syntax; quoted values unescaped)."""
    challenges: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        match = _SCHEME_RE.match(text, pos)
        if match is None:
            break
        scheme = match.group(1).lower()
        pos = match.end()
        params: dict[str, str] = {}
        while pos < len(text):
            param = _PARAM_RE.match(text, pos)
            if param is None:
                break
            # a new challenge starts where a token is followed by a space instead of "="
            value = param.group(2) if param.group(2) is not None else param.group(3)
            params[param.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = param.end()
        if not params and pos < len(text):
            # token68 form (e.g. `Negotiate abc==`): keep the scheme, skip the blob
            skip = text.find(",", pos)
            pos = len(text) if skip < 0 else skip + 1
        challenges.append(Challenge(scheme, params))
    return challenges


def parse_challenge(header: str) -> Challenge:
    """The challenge a registry client should answer: Bearer if offered, else Basic, else the first.

    An empty or unparsable header gives `Challenge("")`.
    """
    challenges = parse_challenges(header)
    for wanted in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == wanted:
                return challenge
    return challenges[0] if challenges else Challenge("")


def challenge_of(response: Response) -> Challenge | None:
    """The challenge of a 401 answer, or None when it carries no usable `WWW-Authenticate`."""
    header = response.headers.get("WWW-Authenticate")
    if not header:
        return None
    challenge = parse_challenge(header)
    return challenge if challenge.scheme else None


def is_unauthorized(response: Response) -> bool:
    """401, or Nexus's `400 … "code":"UNAUTHORIZED"` (GoogleContainerTools/jib #2898)."""
    if response.status_code == 401:
        return True
    if response.status_code == 400:
        try:
            errors = response.json().get("errors") or []
        except (ValueError, AttributeError):
            return False
        return any(isinstance(e, dict) and e.get("code") == "UNAUTHORIZED" for e in errors)
    return False


# -- scheme policy ---------------------------------------------------------------------------------


def split_host_port(registry: str) -> tuple[str, int | None]:
    """`HOST[:PORT]` or `[V6]:PORT` → (host without brackets, port or None)."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if registry.count(":") == 1:
        host, port = registry.split(":")
        return host, int(port)
    return registry, None


def is_loopback(registry: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost` (the engine's implicit insecure registries)."""
    host, _ = split_host_port(registry)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_allowed(registry: str, insecure: bool) -> bool:
    """Whether plain HTTP may be used for *registry*: loopback always, others only if insecure."""
    return insecure or is_loopback(registry)


def is_untrusted_certificate(exc: BaseException) -> bool:
    """Whether a TLS failure is an unverifiable certificate (rather than a port without TLS)."""
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text


def speaks_plain_http(registry: str, timeout: float = 5.0) -> bool:
    """Whether the port answers a plain HTTP request (used to explain a failed TLS handshake)."""
    host, port = split_host_port(registry)
    try:
        with socket.create_connection((host, port or 443), timeout=timeout) as sock:
            sock.sendall(f"GET /v2/ HTTP/1.0\r\nHost: {registry}\r\n\r\n".encode())
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


# -- retries ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounds for retrying one request or one blob: attempts, backoff, and total time."""

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    total_seconds: float = 180.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number *attempt* (1-based): exponential with ±10% jitter."""
        import random

        delay = min(self.max_delay, self.initial_delay * (2.0 ** (attempt - 1)))
        return delay * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not security


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or (status >= 500 and status not in (501, 505))


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds from a `Retry-After` value (delta-seconds or HTTP date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(cap, float(value))
    import email.utils  # rare, and slow to import

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(cap, max(0.0, when.timestamp() - time.time()))


# One-off checks (jr login, jr doctor) have a person waiting: short timeouts, one retry.
CHECK_TIMEOUT = (5.0, 15.0)
CHECK_RETRY = RetryPolicy(attempts=2, initial_delay=0.5, max_delay=2.0, total_seconds=20.0)


class _Retry(Exception):
    """A failure worth retrying, carrying the error to raise when no attempt is left."""

    def __init__(self, error: JrError, delay: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.delay = delay


# -- bodies ----------------------------------------------------------------------------------------


class BlobBody(Protocol):
    """A blob's bytes, produced once; `digest` and `size` are valid after iteration ends."""

    def __iter__(self) -> Iterator[bytes]: ...

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...


class BytesBody:
    """A small in-memory blob (a config) as a `BlobBody`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data

    @property
    def digest(self) -> str:
        return f"sha256:{hashlib.sha256(self._data).hexdigest()}"

    @property
    def size(self) -> int:
        return len(self._data)


class _Sized:
    """An iterable with a length, so the transport sends Content-Length instead of chunked."""

    def __init__(self, chunks: Iterable[bytes], length: int) -> None:
        self._chunks = chunks
        self._length = length

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def __len__(self) -> int:
        return self._length


@dataclass(frozen=True)
class UploadedBlob:
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry serves it: exact bytes, media type and digest."""

    body: bytes = field(repr=False)
    media_type: str
    digest: str


@dataclass(frozen=True)
class UploadProbe:
    """A blob upload opened to prove push permission: the POST's HTTP status, whether the upload
    was cancelled again, and the error a push would raise (None when the upload opened)."""

    status: int
    cancelled: bool = False
    error: JrError | None = None


@dataclass
class _Token:
    value: Secret
    expires_at: float


def _describe(exc: BaseException) -> str:
    """A short, fixed description of a network failure (never the URL or server text)."""
    text = repr(exc)
    for phrase in ("Connection refused", "Name or service not known", "Temporary failure in name "
                   "resolution", "No route to host", "Network is unreachable", "timed out",
                   "Connection reset", "Connection aborted", "Remote end closed connection",
                   "Broken pipe", "IncompleteRead", "InvalidChunkLength"):
        if phrase.lower() in text.lower():
            return phrase.lower()
    return type(exc).__name__


_CONNECT_FAILURES = frozenset({
    "connection refused", "name or service not known", "temporary failure in name resolution",
    "no route to host", "network is unreachable",
})


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _with_digest(location: str, digest: str) -> str:
    separator = "&" if urllib.parse.urlsplit(location).query else "?"
    return f"{location}{separator}digest={digest}"


# -- the client ------------------------------------------------------------------------------------


class RegistryClient:
    """One registry, one set of credentials; safe to share between threads of one push.

    *scheme_rule* chooses how `ping` picks the scheme (see the module docstring): `engine`, the
    default, is jr-push's rule (loopback may use plain HTTP; other hosts HTTPS, or with *insecure*
    unverified HTTPS then HTTP); `login` is `jr login`'s rule for any host (verified HTTPS, then
    plain HTTP unless the certificate is untrusted; *insecure* and the loopback exception do not
    apply, and HTTPS is always verified); `daemon` follows the engine's configuration (*insecure*:
    unverified HTTPS then HTTP; otherwise verified HTTPS only). Verified HTTPS trusts the default store plus
    *ca_bundle* (the CLI passes `REQUESTS_CA_BUNDLE`). A given *transport* is used as is (its own
    CA bundle applies) and not closed; otherwise the client opens its own and closes it.
    """

    def __init__(
        self,
        registry: str,
        *,
        credentials: UsernamePassword | None = None,
        insecure: bool = False,
        scheme_rule: SchemeRule = "engine",
        transport: HttpTransport | None = None,
        ca_bundle: str | None = None,
        timeout: tuple[float, float] = (10.0, 300.0),
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self.insecure = insecure
        self.scheme_rule = scheme_rule
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._own_transport = transport is None
        self._transport = transport if transport is not None else HttpTransport(ca_bundle=ca_bundle)
        # HTTPS to a loopback or --insecure registry is not verified, as the engine does
        self._verify = (not insecure if scheme_rule == "daemon"
                        else scheme_rule == "login" or not plain_http_allowed(registry, insecure))
        self.base_url: str | None = None
        self.challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._token_lock = threading.RLock()  # re-entered when a token fetch error is redacted

    def __repr__(self) -> str:
        user = self.credentials.username if self.credentials else None
        return f"RegistryClient(registry={self.registry!r}, user={user!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        if self._own_transport:
            self._transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def username(self) -> str | None:
        return self.credentials.username if self.credentials else None

    def _secrets(self) -> list[str]:
        values = [self.credentials.password.reveal()] if self.credentials else []
        with self._token_lock:
            values += [token.value.reveal() for token in self._tokens.values()]
        return values

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets())

    def _url(self, path: str) -> str:
        if self.base_url is None:
            self.ping()
        assert self.base_url is not None
        return self.base_url + path

    def _basic(self) -> str | None:
        if self.credentials is None:
            return None
        raw = f"{self.credentials.username}:{self.credentials.password.reveal()}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _network_error(self, exc: BaseException) -> JrError:
        return registry_errors.unreachable(self.registry, _describe(exc))

    def _send(self, method: str, url: str, headers: dict[str, str], data: Any = None,
              replayable: bool = True, stream: bool = False) -> Response:
        """One request; redirects are followed by hand so `Authorization` never leaves its origin."""
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._transport.request(
                method, url, headers=headers, body=data, verify=self._verify,
                timeout=self._timeout, stream=stream,
            )
            log.debug("%s %s -> %s", method, urllib.parse.urlsplit(url).path, response.status_code)
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location or not replayable:
                return response
            response.close()
            url = urllib.parse.urljoin(url, location)
            if _origin(url) != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if response.status_code == 303:
                method, data = "GET", None
        raise registry_errors.generic(self.registry, "too many redirects")

    def _retrying(self, attempt_fn: Callable[[], Response], *,
                  retry_connect: bool = True, tls_context: str = "") -> Response:
        """Run *attempt_fn* until it gives a non-retryable answer, within the retry policy.

        With `retry_connect=False` a refused connection or unknown host fails at once (ping).
        """
        deadline = self._clock() + self.retry.total_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                response = attempt_fn()
                if not _retryable_status(response.status_code):
                    return response
                error = self._error_for(response, None)
                delay = _retry_after(response.headers.get("Retry-After"), self.retry.max_retry_after)
                response.close()
            except (ConnectError, Timeout) as exc:
                if isinstance(exc, TlsError):
                    if not retry_connect:
                        raise  # the ping decides what a TLS failure means for the scheme choice
                    raise registry_errors.tls_failure(self.registry, tls_context + _describe(exc)) \
                        from None
                error, delay = self._network_error(exc), None
                if not retry_connect and _describe(exc) in _CONNECT_FAILURES:
                    raise error from None
            delay = self.retry.backoff(attempt) if delay is None else delay
            if attempt >= self.retry.attempts or self._clock() + delay > deadline:
                raise error
            log.info("%s; retrying in %.1f s (attempt %d of %d)", error.message.rstrip("."), delay,
                     attempt + 1, self.retry.attempts)
            self._sleep(delay)

    def _request(self, method: str, path_or_url: str, *, scopes: Sequence[str] = (),
                 headers: Mapping[str, str] | None = None, data: bytes | None = None,
                 stream: bool = False) -> Response:
        """An idempotent request (replayable body) with auth, retries and one token refresh."""
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        refreshed = False

        def attempt() -> Response:
            nonlocal refreshed
            while True:
                all_headers = dict(headers or {})
                auth = self._authorization(url, tuple(scopes))
                if auth:
                    all_headers["Authorization"] = auth
                response = self._send(method, url, all_headers, data, stream=stream)
                if response.status_code == 401 and not refreshed and self._is_bearer():
                    refreshed = True  # an expired or revoked token: fetch a new one once
                    self._drop_token(tuple(scopes))
                    response.close()
                    continue
                return response

        return self._retrying(attempt)

    # -- authentication --------------------------------------------------------------------------

    def _is_bearer(self) -> bool:
        return self.challenge is not None and self.challenge.scheme == "bearer"

    def _authorization(self, url: str, scopes: tuple[str, ...]) -> str | None:
        if self.base_url is None or _origin(url) != _origin(self.base_url):
            return None
        if self.challenge is None:
            return None
        if self.challenge.scheme == "basic":
            return self._basic()
        if self.challenge.scheme == "bearer":
            token = self._token(scopes)
            return f"Bearer {token.reveal()}" if token else None
        return None

    def _drop_token(self, scopes: tuple[str, ...]) -> None:
        with self._token_lock:
            self._tokens.pop(scopes, None)

    def _token(self, scopes: tuple[str, ...]) -> Secret | None:
        """A bearer token for *scopes*, from the cache while it is valid, else from the realm."""

        with self._token_lock:
            cached = self._tokens.get(scopes)
            if cached is not None and cached.expires_at > self._clock():
                return cached.value
            assert self.challenge is not None
            realm = self.challenge.realm or ""
            if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
                raise registry_errors.generic(self.registry, "the registry's token realm is not a URL")
            params: list[tuple[str, str]] = []
            if self.challenge.service:
                params.append(("service", self.challenge.service))
            wanted = scopes or ((self.challenge.scope,) if self.challenge.scope else ())
            params += [("scope", scope) for scope in wanted]
            if self.credentials is not None:
                params.append(("account", self.credentials.username))
            url = realm + ("&" if urllib.parse.urlsplit(realm).query else "?") + \
                urllib.parse.urlencode(params)
            headers = {"Accept": "application/json"}
            basic = self._basic()
            if basic:
                headers["Authorization"] = basic
            response = self._retrying(lambda: self._send("GET", url, dict(headers)),
                                      tls_context="token realm: ")
            if response.status_code in (401, 403):
                raise self._credentials_error()
            if response.status_code != 200:
                raise registry_errors.generic(
                    self.registry, f"the token server answered HTTP {response.status_code}")
            try:
                body = response.json()
                value = body.get("token") or body.get("access_token")
                expires_in = int(body.get("expires_in") or 60)
            except (ValueError, AttributeError, TypeError):
                value, expires_in = None, 60
            if not isinstance(value, str) or not value:
                raise registry_errors.generic(self.registry, "the token server returned no token")
            lifetime = max(1.0, expires_in - min(30.0, expires_in / 4))
            token = _Token(Secret(value), self._clock() + lifetime)
            self._tokens[scopes] = token
            log.debug("got a registry token for %s (valid %.0f s)", " ".join(wanted) or "the registry",
                      lifetime)
            return token.value

    def _credentials_error(self) -> JrError:
        if self.credentials is None:
            return registry_errors.no_credentials(self.registry)
        return registry_errors.credentials_rejected(self.registry, self.credentials.username)

    # -- error mapping ---------------------------------------------------------------------------

    def _error_for(self, response: Response, repository: str | None) -> JrError:
        """The registry_errors constructor matching a failed response."""
        status = response.status_code
        codes: list[tuple[str, str]] = []
        content_type = response.headers.get("Content-Type", "")
        text = ""
        try:
            text = response.text[:2000]
            if "json" in content_type or text.startswith("{"):
                for item in json.loads(text).get("errors") or []:
                    codes.append((str(item.get("code", "")).upper(), str(item.get("message", ""))))
        except (ValueError, AttributeError, TypeError):
            pass
        names = {code for code, _ in codes}
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        repo = repository or "(registry)"
        if status == 401 or (status == 400 and "UNAUTHORIZED" in names):
            if challenge.error == "insufficient_scope" and self.credentials is not None:
                return registry_errors.access_denied(self.registry, repo, self.username)
            return self._credentials_error()
        if status == 403 or "DENIED" in names:
            return registry_errors.access_denied(self.registry, repo, self.username)
        if "NAME_INVALID" in names or (
            status == 404 and repository is not None and not codes
            and text.strip().lower() == "404 page not found"
        ):
            return registry_errors.invalid_name(self.registry, repo)
        if status == 429 or "TOOMANYREQUESTS" in names:
            return registry_errors.too_many_requests(self.registry)
        detail = f"HTTP {status}"
        if codes:
            code, message = codes[0]
            detail += f" {code.lower().replace('_', ' ')}: {message}"
        return registry_errors.generic(self.registry, self._redact(detail))

    def _check(self, response: Response, ok: Sequence[int], repository: str | None) -> None:
        if response.status_code not in ok:
            error = self._error_for(response, repository)
            response.close()
            raise error

    # -- ping and access -------------------------------------------------------------------------

    def ping(self, scheme: Scheme | None = None) -> Challenge | None:
        """`GET /v2/` without credentials: choose the scheme and remember the auth challenge.

        Returns the challenge (None when the registry is open). *scheme* forces one scheme (as
        `jr doctor` does once its own probes found it). Otherwise, by the `engine` rule: loopback
        tries plain HTTP first and HTTPS second (a local registry rarely has TLS, and a failed
        handshake costs more than a plain request); `insecure` hosts try HTTPS (unverified) then
        HTTP, like the engine; every other host uses HTTPS only. By the `login` rule: verified
        HTTPS, then plain HTTP unless the certificate is untrusted.
        """
        schemes: list[Scheme]
        if scheme is not None:
            schemes = [scheme]
        elif self.scheme_rule == "login":
            schemes = ["https", "http"]
        elif self.scheme_rule == "daemon":
            # the engine's order is HTTPS then HTTP; on loopback, where a TLS port answering a plain
            # request with a redirect is unheard of, HTTP first saves a failed handshake
            if not self.insecure:
                schemes = ["https"]
            else:
                schemes = ["http", "https"] if is_loopback(self.registry) else ["https", "http"]
        elif is_loopback(self.registry):
            schemes = ["http", "https"]
        elif self.insecure:
            schemes = ["https", "http"]
        else:
            schemes = ["https"]
        login_rule = self.scheme_rule == "login"
        problem: JrError | None = None
        for index, candidate in enumerate(schemes):
            last = index + 1 == len(schemes)
            url = f"{candidate}://{self.registry}/v2/"

            def get_v2(url: str = url) -> Response:
                return self._send("GET", url, {})

            try:
                response = self._retrying(get_v2, retry_connect=False)
            except TlsError as exc:
                log.debug("HTTPS to %s failed (%s)", self.registry, _describe(exc))
                if login_rule and is_untrusted_certificate(exc):
                    raise self._untrusted_error() from None  # never plain HTTP past this
                if login_rule and not last:
                    continue  # no TLS on the port: plain HTTP's answer (or error) tells more
                problem = problem or self._tls_error(exc)
                if last:
                    raise problem from None
                continue
            except UnreachableError as exc:
                problem = problem or exc
                if last:
                    raise problem from None
                continue
            if response.status_code != 200 and not is_unauthorized(response):
                status = response.status_code
                response.close()
                problem = problem or self._not_a_registry(status)
                if last:
                    raise problem
                continue
            self.base_url = f"{candidate}://{self.registry}"
            self.challenge = challenge_of(response) if response.status_code != 200 else None
            status = response.status_code
            response.close()
            if status != 200 and (self.challenge is None
                                  or self.challenge.scheme not in ("basic", "bearer")):
                offered = repr(self.challenge.scheme) if self.challenge else "none"
                raise registry_errors.generic(
                    self.registry, f"unsupported authentication scheme {offered} (HTTP {status}); "
                    "Docker supports only Basic and Bearer")
            log.debug("registry %s: %s, auth %s", self.registry, self.base_url,
                      self.challenge.scheme if self.challenge else "none")
            return self.challenge
        raise problem or registry_errors.unreachable(self.registry, "no answer")

    def _not_a_registry(self, status: int) -> RegistryError:
        return RegistryError(
            f"{self.registry} answered GET /v2/ with HTTP {status}: this is not a Docker registry "
            "API endpoint.",
            hint="Use the registry's own port (for Nexus: the docker repository's HTTP connector "
            "port such as 8082, not the web UI port 8081 and not /repository/NAME).",
        )

    def _untrusted_error(self) -> RegistryError:
        """The `login` rule's stop: HTTPS with a certificate that does not verify."""
        return RegistryError(
            f"{self.registry} speaks HTTPS with a certificate this machine does not trust.",
            hint=f"Install its CA certificate (for docker: /etc/docker/certs.d/{self.registry}/"
            "ca.crt; for this tool: the system trust store or REQUESTS_CA_BUNDLE).",
        )

    def _tls_error(self, exc: BaseException) -> JrError:
        """A failed TLS handshake: a port that speaks plain HTTP, or an untrusted certificate."""
        if speaks_plain_http(self.registry):
            error = registry_errors.http_to_https(self.registry)
            error.hint = (
                f"The registry at {self.registry} has no TLS. If that is intended, pass --insecure "
                "to jr-push (plain HTTP: credentials cross the network in clear text); otherwise "
                "use its HTTPS port. For the Docker engine: " + error.hint
            )
            return error
        return registry_errors.tls_failure(self.registry, _describe(exc))

    def check_credentials(self, repository: str | None = None, *,
                          probe: bool = True) -> Challenge | None:
        """Fail early with the engine's messages when the credentials are not accepted.

        Returns the challenge answered (None when the registry asks for no credentials). Basic:
        no credentials is an error at once. Bearer: a token is fetched, scoped for a push to
        *repository* when given, else as the challenge asks. With *probe*, `GET /v2/` is then
        sent with the credentials or the token (else the next request checks them).
        """
        if self.base_url is None:
            self.ping()
        challenge = self.challenge
        if challenge is None:
            return None
        if self.credentials is None and challenge.scheme == "basic":
            raise registry_errors.no_credentials(self.registry)
        scopes = push_scopes(repository) if repository else ()
        if challenge.scheme == "bearer":
            self._token(scopes)
        if probe:
            response = self._request("GET", "/v2/", scopes=scopes)
            self._check(response, (200,), None)
            response.close()
        return challenge

    def check_login(self) -> Challenge | None:
        """What `docker login` checks: `/v2/` with the password, or with a token fetched with it.

        `check_credentials()` without a repository; a rejected password is said as such (naming
        the token service for Bearer), since no push is involved. Returns the challenge answered.
        """
        try:
            return self.check_credentials()
        except AuthenticationError as exc:
            if self.credentials is None:
                raise
            where = ""
            if self._is_bearer() and self.challenge is not None and self.challenge.realm:
                host = urllib.parse.urlsplit(self.challenge.realm).netloc.rpartition("@")[2]
                where = f" at its token service {host}"
            raise AuthenticationError(
                f"The registry {self.registry} rejected the password of user "
                f"{self.credentials.username!r}{where}.",
                hint="Check the username and password and try again.",
            ) from exc

    def check_access(self, repository: str, actions: Sequence[str]) -> None:
        """Prove that the credentials may do *actions* (`pull`, `push`) on *repository*.

        Push is proved by opening an upload session and cancelling it; pull by listing tags.
        Raises the registry_errors a push would raise.
        """
        scopes = (f"repository:{repository}:{','.join(actions)}",)
        if "push" in actions:
            probe = self.probe_upload(repository, scopes=scopes)
            if probe.error is not None:
                raise probe.error
        if "pull" in actions:
            response = self._request("GET", f"/v2/{repository}/tags/list", scopes=scopes)
            if response.status_code == 404 and b"NAME_UNKNOWN" in response.content:
                return
            self._check(response, (200,), repository)

    # -- blobs -----------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> int | None:
        """The size of blob *digest* in *repository*, or None when the registry lacks it."""
        response = self._request("HEAD", f"/v2/{repository}/blobs/{digest}",
                                 scopes=push_scopes(repository))
        if response.status_code == 404:
            return None
        self._check(response, (200,), repository)
        return int(response.headers.get("Content-Length") or 0)

    def _open_upload(self, repository: str,
                     scopes: Sequence[str] | None) -> tuple[str, Response]:
        url = self._url(f"/v2/{repository}/blobs/uploads/")
        response = self._request("POST", url, scopes=scopes or push_scopes(repository),
                                 headers={"Content-Length": "0"})
        return url, response

    def start_upload(self, repository: str, *, scopes: Sequence[str] | None = None) -> str:
        """`POST …/blobs/uploads/`; returns the absolute upload `Location`."""
        url, response = self._open_upload(repository, scopes)
        self._check(response, (202,), repository)
        return self._location(response, url)

    def probe_upload(self, repository: str, *, scopes: Sequence[str] | None = None) -> UploadProbe:
        """Open a blob upload in *repository* and cancel it: push permission, with nothing stored.

        A refusal is returned with its HTTP status (which `jr doctor` shows) instead of raised;
        failures to reach the registry or to get a token still raise.
        """
        url, response = self._open_upload(repository, scopes)
        status = response.status_code
        if status != 202:
            error = self._error_for(response, repository)
            response.close()
            return UploadProbe(status=status, error=error)
        return UploadProbe(status=status,
                           cancelled=self.cancel_upload(self._location(response, url), repository))

    def _location(self, response: Response, request_url: str) -> str:
        location = response.headers.get("Location")
        response.close()
        if not location:
            raise registry_errors.generic(self.registry, "an upload response had no Location header")
        return urllib.parse.urljoin(request_url, location)

    def cancel_upload(self, location: str, repository: str | None = None) -> bool:
        """`DELETE <location>`, best effort: True when cancelled; a failure is only logged.

        The registry's DELETE needs the `*` (or `delete`) action, so the token is asked for that.
        """
        if repository is None:
            match = re.search(r"/v2/(.+?)/blobs/uploads/", urllib.parse.urlsplit(location).path)
            repository = match.group(1) if match else None
        scopes = delete_scopes(repository) if repository else ()
        try:
            response = self._send("DELETE", location, self._auth_headers(location, scopes))
            response.close()
        except Exception as exc:  # cancelling is a courtesy
            log.debug("cancelling an upload failed: %s", _describe(exc))
            return False
        if not 200 <= response.status_code < 300:
            log.debug("cancelling an upload: HTTP %s (the registry expires it)", response.status_code)
            return False
        return True

    def _auth_headers(self, url: str, scopes: Sequence[str]) -> dict[str, str]:
        auth = self._authorization(url, tuple(scopes))
        return {"Authorization": auth} if auth else {}

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; True when mounted, False (never an error) when it was not."""
        scopes = (*push_scopes(repository), f"repository:{from_repository}:pull")
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        url = self._url(f"/v2/{repository}/blobs/uploads/?{query}")
        try:
            response = self._request("POST", url, scopes=scopes, headers={"Content-Length": "0"})
        except JrError as exc:
            log.debug("mounting %s from %s failed: %s", digest[:19], from_repository, exc.message)
            return False
        if response.status_code == 201:
            response.close()
            return True
        if response.status_code == 202 and response.headers.get("Location"):
            self.cancel_upload(self._location(response, url), repository)
        else:
            response.close()
        log.debug("mounting %s from %s: HTTP %s, uploading instead", digest[:19], from_repository,
                  response.status_code)
        return False

    def upload_blob(
        self,
        repository: str,
        open_body: Callable[[], BlobBody],
        *,
        digest: str | None = None,
        size: int | None = None,
        chunk_size: int | None = None,
        on_retry: Callable[[float], None] | None = None,
    ) -> UploadedBlob:
        """Upload one blob, retrying the whole upload with a fresh body on transient failures.

        With *digest* known and no *chunk_size*: POST, then one PUT `?digest=` with the body
        (monolithic). Without a digest: POST, one streamed PATCH, PUT `?digest=<body.digest>`.
        With *chunk_size*: POST, PATCHes with Content-Range, PUT. Before each retry, a blob whose
        digest is known is looked up with HEAD and not sent again.
        """
        deadline = self._clock() + self.retry.total_seconds
        known = digest
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1 and known is not None:
                existing = self.blob_exists(repository, known)
                if existing is not None:
                    log.info("blob %s arrived after all; not sending it again", known[:19])
                    return UploadedBlob(known, existing if size is None else size)
            location: str | None = None
            body = open_body()
            try:
                location = self.start_upload(repository)
                result = self._upload_once(repository, location, body, digest, size, chunk_size)
                location = None
                return result
            except _Retry as retry:
                error, delay = retry.error, retry.delay
            except (ConnectError, Timeout) as exc:
                error, delay = self._network_error(exc), None
            finally:
                if location is not None:
                    self.cancel_upload(location, repository)
            if known is None:
                with contextlib.suppress(RuntimeError):  # unless the body was read to the end
                    known = body.digest
            delay = self.retry.backoff(attempt) if delay is None else delay
            if attempt >= self.retry.attempts or self._clock() + delay > deadline:
                raise error
            log.info("%s; retrying the blob upload in %.1f s (attempt %d of %d)",
                     error.message.rstrip("."), delay, attempt + 1, self.retry.attempts)
            if on_retry is not None:
                on_retry(delay)
            self._sleep(delay)

    def _streaming(self, method: str, url: str, repository: str, data: Any,
                   headers: Mapping[str, str]) -> Response:
        """A request whose body cannot be replayed: no in-place retry, failures become _Retry."""
        all_headers = {**headers, **self._auth_headers(url, push_scopes(repository))}
        response = self._send(method, url, all_headers, data, replayable=False)
        if response.status_code == 401 and self._is_bearer():
            self._drop_token(push_scopes(repository))
            error = self._error_for(response, repository)
            response.close()
            raise _Retry(error)
        if _retryable_status(response.status_code):
            error = self._error_for(response, repository)
            delay = _retry_after(response.headers.get("Retry-After"), self.retry.max_retry_after)
            response.close()
            raise _Retry(error, delay)
        return response

    def _upload_once(self, repository: str, location: str, body: BlobBody, digest: str | None,
                     size: int | None, chunk_size: int | None) -> UploadedBlob:
        octet = {"Content-Type": "application/octet-stream"}
        if digest is not None and chunk_size is None:
            data: Any = _Sized(body, size) if size is not None else iter(body)
            response = self._streaming("PUT", _with_digest(location, digest), repository, data, octet)
            self._check(response, (201,), repository)
            final = digest
        else:
            if chunk_size is None:
                response = self._streaming("PATCH", location, repository, iter(body), octet)
                self._check(response, (202, 204), repository)
                location = self._location(response, location)
            else:
                offset = 0
                for piece in _rechunk(body, chunk_size):
                    headers = {**octet, "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                               "Content-Length": str(len(piece))}
                    response = self._streaming("PATCH", location, repository, piece, headers)
                    self._check(response, (202, 204), repository)
                    location = self._location(response, location)
                    offset += len(piece)
            final = body.digest
            if digest is not None and final != digest:
                raise registry_errors.generic(self.registry, f"blob {final} was expected to be {digest}")
            response = self._streaming("PUT", _with_digest(location, final), repository, None,
                                       {"Content-Length": "0"})
            self._check(response, (201,), repository)
        stored = response.headers.get("Docker-Content-Digest")
        response.close()
        if stored and stored != final:
            raise registry_errors.generic(self.registry, f"the registry stored {stored}, not {final}")
        return UploadedBlob(final, body.size)

    def get_blob(self, repository: str, digest: str, limit: int = _SMALL_BLOB_LIMIT) -> bytes:
        """A small blob (a config), checked against its digest."""
        response = self._request("GET", f"/v2/{repository}/blobs/{digest}",
                                 scopes=push_scopes(repository), stream=True)
        self._check(response, (200,), repository)
        pieces: list[bytes] = []
        received = 0
        try:
            for piece in response.iter_content(1 << 20):
                pieces.append(piece)
                received += len(piece)
                if received > limit:
                    break
        except (ConnectError, Timeout) as exc:
            raise self._network_error(exc) from None
        finally:
            response.close()
        data = b"".join(pieces)[: limit + 1]
        if len(data) > limit or f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
            raise registry_errors.generic(self.registry, f"blob {digest} did not match its digest")
        return data

    # -- manifests -------------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str, accept: Sequence[str]) -> Manifest | None:
        """The manifest *reference* (tag or digest) in *repository*, or None when it does not exist."""
        response = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                                 scopes=push_scopes(repository), headers={"Accept": ", ".join(accept)})
        if response.status_code == 404:
            response.close()
            return None
        self._check(response, (200,), repository)
        body = response.content
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(body, media_type, digest)

    def manifest_digest(self, repository: str, reference: str, accept: Sequence[str]) -> str | None:
        """`HEAD` a manifest: its digest, or None when it does not exist."""
        response = self._request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                 scopes=push_scopes(repository), headers={"Accept": ", ".join(accept)})
        if response.status_code == 404:
            return None
        self._check(response, (200,), repository)
        return response.headers.get("Docker-Content-Digest")

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """`PUT` the manifest bytes under *reference* (a tag or its digest); returns the digest."""
        local = f"sha256:{hashlib.sha256(body).hexdigest()}"
        response = self._request("PUT", f"/v2/{repository}/manifests/{reference}",
                                 scopes=push_scopes(repository),
                                 headers={"Content-Type": media_type}, data=body)
        self._check(response, (200, 201, 202), repository)
        remote = response.headers.get("Docker-Content-Digest")
        response.close()
        if remote and remote != local:
            raise RegistryError(
                f"The registry {self.registry} stored the manifest as {remote}, but its bytes hash "
                f"to {local}.", hint="The registry rewrote the manifest; report this with --debug.")
        return local

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """`DELETE` a manifest by digest (removes its tags); False when the registry refuses."""
        try:
            response = self._request("DELETE", f"/v2/{repository}/manifests/{digest}",
                                     scopes=delete_scopes(repository))
        except JrError as exc:
            log.debug("deleting %s failed: %s", digest[:19], exc.message)
            return False
        response.close()
        return response.status_code in (200, 202)

    def tags(self, repository: str) -> list[str]:
        """The tags of *repository* (empty when it does not exist)."""
        response = self._request("GET", f"/v2/{repository}/tags/list",
                                 scopes=(f"repository:{repository}:pull",))
        if response.status_code == 404:
            response.close()
            return []
        self._check(response, (200,), repository)
        try:
            return sorted(response.json().get("tags") or [])
        except (ValueError, AttributeError) as exc:
            raise registry_errors.generic(self.registry, "tags/list was not JSON") from exc


def push_scopes(repository: str) -> tuple[str, ...]:
    """The token scope a push to *repository* needs."""
    return (f"repository:{repository}:pull,push",)


def delete_scopes(repository: str) -> tuple[str, ...]:
    """The token scope a DELETE needs: distribution 2.x asks for `*`, newer registries `delete`."""
    return (f"repository:{repository}:delete,*",)


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
