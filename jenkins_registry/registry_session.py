"""The session layer of the registry client: one registry reached over `http_transport`.

It owns what every registry request shares, so that `registry_client` only speaks the v2 API:

* the scheme policy (`SchemePolicy`, a value the caller builds), applied by `ping`: which schemes
  are tried in which order, whether HTTPS is verified, and what a failed handshake means. An
  HTTPS attempt answered in plain HTTP gets the engine's "server gave HTTP response to HTTPS
  client" message. No credentials are sent before the scheme is chosen;
* authentication: the challenge answered, Basic, and bearer tokens per scope (`registry_auth`);
* retries: idempotent requests are retried in place on connection errors, 408, 429 and 5xx, with
  exponential backoff and `Retry-After`, bounded in attempts and in total time (`RetryPolicy`);
  a request whose body cannot be replayed raises `TransientFailure` for its caller to start over;
* redirects, followed by hand so that `Authorization` is attached only to the registry's own
  origin (and the token realm), and dropped on a redirect to another host;
* failures: `error_for` is the one place an HTTP answer becomes a `registry_errors` error, the
  same the engine path raises. No header is logged, and server text is redacted of the password
  and tokens before it reaches a message.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jenkins_registry import registry_errors
from jenkins_registry.errors import JrError, RegistryError, UnreachableError, redact
from jenkins_registry.http_transport import ConnectError, HttpTransport, Response, Timeout, TlsError
from jenkins_registry.reference import is_loopback, split_host_port
from jenkins_registry.registry_auth import (
    Challenge,
    TokenCache,
    basic_authorization,
    challenge_of,
    is_unauthorized,
    parse_challenge,
    read_token,
    token_request,
)
from jenkins_registry.secret_types import Secret, UsernamePassword

log = logging.getLogger(__name__)

Scheme = Literal["https", "http"]

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


# -- the scheme policy -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SchemePolicy:
    """How to reach one registry; build it with a named constructor.

    `schemes`: what `ping` tries, in order. `verify`: whether HTTPS certificates are checked
    (against the default store plus the transport's CA certificates). What a failed TLS handshake
    means: with `http_fallback_unless_untrusted`, an untrusted certificate ends the ping with an
    error, and any other failure gives way to the next scheme, whose answer or error is reported;
    without it, the failure is explained (a port speaking plain HTTP, or the TLS error) and
    reported when no later scheme answers.
    """

    schemes: tuple[Scheme, ...]
    verify: bool
    http_fallback_unless_untrusted: bool = False

    @classmethod
    def from_insecure_flag(cls, registry: str, *, insecure: bool) -> SchemePolicy:
        """jr-push's own rule, for an upload without an engine (`--insecure`): loopback may use
        plain HTTP, tried first (a local registry rarely has TLS, and a failed handshake costs
        more than a plain request), then HTTPS; with *insecure*, HTTPS then plain HTTP, as the
        engine tries an insecure registry; otherwise HTTPS only. HTTPS is verified unless plain
        HTTP is allowed."""
        if is_loopback(registry):
            return cls(schemes=("http", "https"), verify=False)
        if insecure:
            return cls(schemes=("https", "http"), verify=False)
        return cls(schemes=("https",), verify=True)

    @classmethod
    def from_engine(cls, registry: str, *, insecure: bool) -> SchemePolicy:
        """The engine's rules, for uploading what a local engine exported: *insecure* is whether
        the engine treats *registry* as insecure (its insecure-registries, from `docker info`).
        Insecure: unverified HTTPS then plain HTTP, as the engine tries (plain HTTP first on
        loopback, where a TLS port answering a plain request with a redirect is unheard of, to
        save a failed handshake); otherwise verified HTTPS only, loopback included."""
        if not insecure:
            return cls(schemes=("https",), verify=True)
        schemes: tuple[Scheme, ...] = ("http", "https") if is_loopback(registry) else ("https", "http")
        return cls(schemes=schemes, verify=False)

    @classmethod
    def login(cls) -> SchemePolicy:
        """`jr login` and `jr doctor`, for any host: verified HTTPS, then plain HTTP unless the
        certificate is untrusted (an error that never falls back)."""
        return cls(schemes=("https", "http"), verify=True, http_fallback_unless_untrusted=True)

    def pinned(self, scheme: Scheme) -> SchemePolicy:
        """The same rules on *scheme* alone (as `jr doctor` does once its own probes found it)."""
        return dataclasses.replace(self, schemes=(scheme,))


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


# One-off checks (jr login, jr doctor) have a person waiting: short timeouts, one retry.
CHECK_TIMEOUT = (5.0, 15.0)
CHECK_RETRY = RetryPolicy(attempts=2, initial_delay=0.5, max_delay=2.0, total_seconds=20.0)


def retryable_status(status: int) -> bool:
    """408, 429 and 5xx except 501 and 505: worth asking again."""
    return status in (408, 429) or (status >= 500 and status not in (501, 505))


def retry_after(value: str | None, cap: float) -> float | None:
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


class TransientFailure(Exception):
    """A failure worth retrying, carrying the error to raise when no attempt is left, and the
    delay the registry asked for (None: the policy's backoff)."""

    def __init__(self, error: JrError, delay: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.delay = delay


def describe_failure(exc: BaseException) -> str:
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


# -- the session -----------------------------------------------------------------------------------


class RegistrySession:
    """One registry, one set of credentials, one `SchemePolicy`; safe to share between threads.

    A given *transport* is used as is (its own CA certificates apply) and not closed; otherwise
    the session opens its own, trusting *ca_bundle* besides the default store, and closes it.
    """

    def __init__(
        self,
        registry: str,
        policy: SchemePolicy,
        *,
        credentials: UsernamePassword | None = None,
        transport: HttpTransport | None = None,
        ca_bundle: str | None = None,
        timeout: tuple[float, float] = (10.0, 300.0),
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._own_transport = transport is None
        self._transport = transport if transport is not None else HttpTransport(ca_bundle=ca_bundle)
        self.base_url: str | None = None
        self.challenge: Challenge | None = None
        self._tokens = TokenCache(clock)

    def __repr__(self) -> str:
        return f"RegistrySession(registry={self.registry!r}, user={self.username!r}, " \
            f"base_url={self.base_url!r})"

    def close(self) -> None:
        if self._own_transport:
            self._transport.close()

    @property
    def username(self) -> str | None:
        return self.credentials.username if self.credentials else None

    def url(self, path: str) -> str:
        """The absolute URL of *path*. The one lazy place: the first request of a session that
        was not pinged yet pings here, choosing the scheme."""
        if self.base_url is None:
            self.ping()
        assert self.base_url is not None
        return self.base_url + path

    # -- ping: the scheme policy applied -----------------------------------------------------------

    def ping(self, scheme: Scheme | None = None) -> Challenge | None:
        """`GET /v2/` without credentials, on each scheme of the policy in turn (on *scheme*
        alone when given): remember the first base URL a registry answers on, and its challenge.

        Returns the challenge (None when the registry is open).
        """
        policy = self.policy if scheme is None else self.policy.pinned(scheme)
        problem: JrError | None = None
        for index, candidate in enumerate(policy.schemes):
            last = index + 1 == len(policy.schemes)
            url = f"{candidate}://{self.registry}/v2/"

            def get_v2(url: str = url) -> Response:
                return self.send("GET", url, {})

            try:
                response = self.retrying(get_v2, retry_connect=False)
            except TlsError as exc:
                log.debug("HTTPS to %s failed (%s)", self.registry, describe_failure(exc))
                if policy.http_fallback_unless_untrusted and is_untrusted_certificate(exc):
                    raise self._untrusted_error() from None  # never plain HTTP past this
                if policy.http_fallback_unless_untrusted and not last:
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
        """The login policy's stop: HTTPS with a certificate that does not verify."""
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
        return registry_errors.tls_failure(self.registry, describe_failure(exc))

    # -- sending and retrying --------------------------------------------------------------------

    def send(self, method: str, url: str, headers: dict[str, str], data: Any = None,
             replayable: bool = True, stream: bool = False) -> Response:
        """One request; redirects are followed by hand so `Authorization` never leaves its origin."""
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._transport.request(
                method, url, headers=headers, body=data, verify=self.policy.verify,
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

    def deadline(self) -> float:
        """When the retry policy's total time, starting now, runs out (on the session's clock)."""
        return self._clock() + self.retry.total_seconds

    def wait_to_retry(self, error: JrError, delay: float | None, attempt: int, deadline: float, *,
                      what: str = "", on_retry: Callable[[float], None] | None = None) -> None:
        """Sleep before the attempt after *attempt* (*delay*, else the policy's backoff), or
        raise *error* when the policy allows no further attempt."""
        delay = self.retry.backoff(attempt) if delay is None else delay
        if attempt >= self.retry.attempts or self._clock() + delay > deadline:
            raise error
        log.info("%s; retrying%s in %.1f s (attempt %d of %d)", error.message.rstrip("."), what,
                 delay, attempt + 1, self.retry.attempts)
        if on_retry is not None:
            on_retry(delay)
        self._sleep(delay)

    def retrying(self, attempt_fn: Callable[[], Response], *,
                 retry_connect: bool = True, tls_context: str = "") -> Response:
        """Run *attempt_fn* until it gives a non-retryable answer, within the retry policy.

        With `retry_connect=False` a refused connection or unknown host fails at once (ping).
        """
        deadline = self.deadline()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = attempt_fn()
                if not retryable_status(response.status_code):
                    return response
                error = self.error_for(response, None)
                delay = retry_after(response.headers.get("Retry-After"), self.retry.max_retry_after)
                response.close()
            except (ConnectError, Timeout) as exc:
                if isinstance(exc, TlsError):
                    if not retry_connect:
                        raise  # the ping decides what a TLS failure means for the scheme choice
                    raise registry_errors.tls_failure(self.registry,
                                                      tls_context + describe_failure(exc)) from None
                error, delay = self.network_error(exc), None
                if not retry_connect and describe_failure(exc) in _CONNECT_FAILURES:
                    raise error from None
            self.wait_to_retry(error, delay, attempt, deadline)

    def request(self, method: str, path_or_url: str, *, scopes: Sequence[str] = (),
                headers: Mapping[str, str] | None = None, data: bytes | None = None,
                stream: bool = False) -> Response:
        """An idempotent request (replayable body) with auth, retries and one token refresh."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        refreshed = False

        def attempt() -> Response:
            nonlocal refreshed
            while True:
                all_headers = {**(headers or {}), **self.auth_headers(url, scopes)}
                response = self.send(method, url, all_headers, data, stream=stream)
                if response.status_code == 401 and not refreshed and self.is_bearer():
                    refreshed = True  # an expired or revoked token: fetch a new one once
                    self._tokens.drop(tuple(scopes))
                    response.close()
                    continue
                return response

        return self.retrying(attempt)

    def streaming(self, method: str, url: str, scopes: Sequence[str], repository: str, data: Any,
                  headers: Mapping[str, str]) -> Response:
        """A request whose body cannot be replayed: no in-place retry; a rejected token or a
        retryable answer raises TransientFailure, for the caller to start over."""
        all_headers = {**headers, **self.auth_headers(url, scopes)}
        response = self.send(method, url, all_headers, data, replayable=False)
        if response.status_code == 401 and self.is_bearer():
            self._tokens.drop(tuple(scopes))
            error = self.error_for(response, repository)
            response.close()
            raise TransientFailure(error)
        if retryable_status(response.status_code):
            error = self.error_for(response, repository)
            delay = retry_after(response.headers.get("Retry-After"), self.retry.max_retry_after)
            response.close()
            raise TransientFailure(error, delay)
        return response

    # -- authentication --------------------------------------------------------------------------

    def is_bearer(self) -> bool:
        return self.challenge is not None and self.challenge.scheme == "bearer"

    def auth_headers(self, url: str, scopes: Sequence[str]) -> dict[str, str]:
        """`Authorization` for *url* and *scopes*: only on the origin the ping chose."""
        if self.base_url is None or _origin(url) != _origin(self.base_url) or self.challenge is None:
            return {}
        if self.challenge.scheme == "basic":
            basic = basic_authorization(self.credentials)
            return {"Authorization": basic} if basic else {}
        if self.challenge.scheme == "bearer":
            return {"Authorization": f"Bearer {self.token(tuple(scopes)).reveal()}"}
        return {}

    def token(self, scopes: tuple[str, ...]) -> Secret:
        """A bearer token for *scopes*, from the cache while it is valid, else from the realm."""
        with self._tokens.lock:
            cached = self._tokens.get(scopes)
            if cached is not None:
                return cached
            assert self.challenge is not None
            asked = token_request(self.challenge, scopes, self.username)
            if asked is None:
                raise registry_errors.generic(self.registry, "the registry's token realm is not a URL")
            url, wanted = asked
            headers = {"Accept": "application/json"}
            basic = basic_authorization(self.credentials)
            if basic:
                headers["Authorization"] = basic
            response = self.retrying(lambda: self.send("GET", url, dict(headers)),
                                     tls_context="token realm: ")
            if response.status_code in (401, 403):
                raise self.credentials_error()
            if response.status_code != 200:
                raise registry_errors.generic(
                    self.registry, f"the token server answered HTTP {response.status_code}")
            value, expires_in = read_token(response)
            if value is None:
                raise registry_errors.generic(self.registry, "the token server returned no token")
            token, lifetime = self._tokens.put(scopes, value, expires_in)
            log.debug("got a registry token for %s (valid %.0f s)", " ".join(wanted) or "the registry",
                      lifetime)
            return token

    def credentials_error(self) -> JrError:
        """Credentials were asked for: none given, or these rejected (the engine's messages)."""
        if self.credentials is None:
            return registry_errors.no_credentials(self.registry)
        return registry_errors.credentials_rejected(self.registry, self.credentials.username)

    # -- failures --------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        secrets = [self.credentials.password.reveal()] if self.credentials else []
        return redact(text, secrets + self._tokens.secrets())

    def network_error(self, exc: BaseException) -> JrError:
        return registry_errors.unreachable(self.registry, describe_failure(exc))

    def error_for(self, response: Response, repository: str | None) -> JrError:
        """The registry_errors error for a failed answer (*repository*: the one it concerns)."""
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
            return self.credentials_error()
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

    def check(self, response: Response, ok: Sequence[int], repository: str | None) -> None:
        """Raise `error_for` the answer (closing it) unless its status is in *ok*."""
        if response.status_code not in ok:
            error = self.error_for(response, repository)
            response.close()
            raise error
