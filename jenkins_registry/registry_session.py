"""The session layer of the registry client: one registry reached over `http_transport`.

It owns what every registry request shares, so that `registry_client` only speaks the v2 API:

* the scheme policy (`SchemePolicy`, a value the caller builds), applied by `ping`: which schemes
  are tried in which order, whether HTTPS is verified (relaxed for the registry's own host only),
  and what a failed handshake means. An HTTPS attempt answered in plain HTTP gets the engine's
  "server gave HTTP response to HTTPS client" message. No credentials are sent before the scheme
  is chosen, and none over plain HTTP where the policy's one rule forbids it (`send`);
* authentication: the challenge answered, Basic, and bearer tokens per scope (`registry_auth`);
  an HTTPS registry's plain-HTTP token realm is refused;
* time: every request has a wall-clock limit for its answer, and the session a budget for all it
  does (`RetryPolicy.request_timeout`, `.budget`);
* retries: idempotent requests are retried in place on connection errors, 408, 429 and 5xx, with
  exponential backoff and `Retry-After`, bounded in attempts and in total time (`RetryPolicy`);
  a `Retry-After` past the time left fails at once. A request whose body cannot be replayed
  raises `TransientFailure` for its caller to start over;
* redirects of reads, followed by hand so that `Authorization` is attached only to the registry's
  own origin (and the token realm), and dropped on a redirect to another host; writes are never
  redirected;
* failures: `error_for` is the one place an HTTP answer becomes a `registry_errors` error, the
  same the engine path raises. No header is logged, and server text (of which at most
  ERROR_TEXT_LIMIT is read) is redacted of the password, the Basic value and tokens before it
  reaches a message.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import socket
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jenkins_registry import registry_errors
from jenkins_registry.errors import (
    InsecureRegistryError,
    JrError,
    RegistryError,
    UnreachableError,
    redact,
)
from jenkins_registry.http_transport import (
    DEFAULT_BODY_LIMIT,
    ConnectError,
    HttpTransport,
    ProxyError,
    Response,
    Timeout,
    TlsError,
    UnsendableRequest,
    parse_json,
)
from jenkins_registry.proxy_env import proxy_failure
from jenkins_registry.reference import is_loopback, split_host_port
from jenkins_registry.registry_auth import (
    TOKEN_LIMIT,
    Challenge,
    TokenCache,
    UnusableToken,
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

    `schemes`: what `ping` tries, in order. `verify`: whether the registry's own host's HTTPS
    certificates are checked (against the default store plus the transport's CA certificates);
    any other host (a token realm, a redirect's target) is always verified. What a failed TLS
    handshake means: with `http_fallback_unless_untrusted`, an untrusted certificate ends the
    ping with an error, and any other failure gives way to the next scheme, whose answer or error
    is reported; without it, the failure is explained (a port speaking plain HTTP, or the TLS
    error) and reported when no later scheme answers.

    `plain_http_credentials`: whether the user opted in (`--insecure`, or the engine's
    insecure-registries) to credentials crossing the network in clear text to the registry's
    host. Whatever it says, `allows_credentials` lets credentials go over plain HTTP only to
    this machine or to an opted-in registry host: the one rule every command follows.

    `engine_rules`: whether these are the engine's rules (`from_engine`), so that a plain-HTTP
    port is explained by the engine's insecure-registries rather than by `--insecure`.
    """

    schemes: tuple[Scheme, ...]
    verify: bool
    http_fallback_unless_untrusted: bool = False
    plain_http_credentials: bool = False
    engine_rules: bool = False

    @classmethod
    def from_insecure_flag(cls, registry: str, *, insecure: bool) -> SchemePolicy:
        """jr-push's own rule, for an upload without an engine (`--insecure`): loopback may use
        plain HTTP, tried first (a local registry rarely has TLS, and a failed handshake costs
        more than a plain request), then HTTPS; with *insecure*, HTTPS then plain HTTP, as the
        engine tries an insecure registry; otherwise HTTPS only. HTTPS is verified unless plain
        HTTP is allowed."""
        if is_loopback(registry):
            return cls(schemes=("http", "https"), verify=False, plain_http_credentials=True)
        if insecure:
            return cls(schemes=("https", "http"), verify=False, plain_http_credentials=True)
        return cls(schemes=("https",), verify=True)

    @classmethod
    def from_engine(cls, registry: str, *, insecure: bool) -> SchemePolicy:
        """The engine's rules, for uploading what a local engine exported: *insecure* is whether
        the engine treats *registry* as insecure (its insecure-registries, from `docker info`).
        Insecure: unverified HTTPS then plain HTTP, as the engine tries (plain HTTP first on
        loopback, where a TLS port answering a plain request with a redirect is unheard of, to
        save a failed handshake); otherwise verified HTTPS only, loopback included."""
        if not insecure:
            return cls(schemes=("https",), verify=True, engine_rules=True)
        schemes: tuple[Scheme, ...] = ("http", "https") if is_loopback(registry) else ("https", "http")
        return cls(schemes=schemes, verify=False, plain_http_credentials=True, engine_rules=True)

    @classmethod
    def login(cls, registry: str, *, insecure: bool = False) -> SchemePolicy:
        """`jr login` and `jr doctor`: verified HTTPS; on loopback, then plain HTTP unless the
        certificate is untrusted (an error that never falls back). Elsewhere plain HTTP only with
        *insecure* (`--insecure`), which is jr-push's `--insecure` rule."""
        if insecure:
            return cls.from_insecure_flag(registry, insecure=True)
        if is_loopback(registry):
            return cls(schemes=("https", "http"), verify=True, http_fallback_unless_untrusted=True,
                       plain_http_credentials=True)
        return cls(schemes=("https",), verify=True, http_fallback_unless_untrusted=True)

    def pinned(self, scheme: Scheme) -> SchemePolicy:
        """The same rules on *scheme* alone (as `jr doctor` does once its own probes found it);
        whether credentials may go over plain HTTP does not change."""
        return dataclasses.replace(self, schemes=(scheme,))

    def allows_credentials(self, url: str, registry: str) -> bool:
        """Whether credentials (a password or a token) may be sent to *url* for *registry*:
        over HTTPS always; over plain HTTP only to this machine, or to the registry's own host
        when the user opted in."""
        try:
            parts = urllib.parse.urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return False
        if parts.scheme.lower() == "https":
            return True
        if host and is_loopback(f"[{host}]" if ":" in host else host):  # brackets: no port split
            return True
        return self.plain_http_credentials and host == registry_host(registry)

    def verify_for(self, url: str, registry: str) -> bool:
        """Whether HTTPS to *url* is verified: relaxed (`verify` False) for the registry's own
        host only, never for a token realm or redirect target elsewhere."""
        try:
            host = (urllib.parse.urlsplit(url).hostname or "").lower()
        except ValueError:
            return True
        return self.verify or host != registry_host(registry)


def registry_host(registry: str) -> str:
    """The host of a `HOST[:PORT]` registry, lowercase, as `urlsplit(...).hostname` gives it."""
    return split_host_port(registry)[0].strip("[]").lower()


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


CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 120.0  # wall-clock seconds for one request's answer (jr-push --request-timeout)
PUSH_BUDGET = 3600.0  # wall-clock seconds for a whole push, every request and wait (jr-push --timeout)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounds in attempts and in time: for retrying one request or one blob (attempts, backoff,
    `total_seconds`), for one request (`request_timeout`: its answer must be complete within
    it, in wall-clock time), and for everything a session does (`budget`, counted from the
    session's start; None: no bound). A `Retry-After` that reaches past what is left ends the
    retries at once, naming the registry's figure."""

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    total_seconds: float = 180.0
    request_timeout: float = REQUEST_TIMEOUT
    budget: float | None = PUSH_BUDGET

    def backoff(self, attempt: int) -> float:
        """Delay before retry number *attempt* (1-based): exponential with ±10% jitter."""
        import random

        delay = min(self.max_delay, self.initial_delay * (2.0 ** (attempt - 1)))
        return delay * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not security


# One-off checks (jr login, jr doctor) have a person waiting: short timeouts, one retry.
CHECK_TIMEOUT = (5.0, 15.0)
CHECK_RETRY = RetryPolicy(attempts=2, initial_delay=0.5, max_delay=2.0, total_seconds=20.0,
                          request_timeout=CHECK_TIMEOUT[1], budget=120.0)


def retryable_status(status: int) -> bool:
    """408, 429 and 5xx except 501 and 505: worth asking again."""
    return status in (408, 429) or (status >= 500 and status not in (501, 505))


_DELTA_SECONDS = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() also takes "²"


def retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` value (delta-seconds or HTTP date); None if absent or not
    understood (the policy's backoff then applies)."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    import email.utils  # rare, and slow to import

    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


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
                   "Broken pipe", "IncompleteRead", "InvalidChunkLength",
                   "certificate verify failed", "wrong version number"):
        if phrase.lower() in text.lower():
            return phrase.lower()
    return type(exc).__name__


_CONNECT_FAILURES = frozenset({
    "connection refused", "name or service not known", "temporary failure in name resolution",
    "no route to host", "network is unreachable",
})


def _origin(url: str) -> tuple[str, str]:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "", "(not a URL)"  # equal to no registry's origin
    return parts.scheme.lower(), parts.netloc.lower()


_WRITES_NOT_REDIRECTED = "writes are never redirected"
ERROR_TEXT_LIMIT = 64 * 1024  # of an error answer's body, this much is read for its message


# -- time ------------------------------------------------------------------------------------------


class RetryTimer:
    """A `RetryPolicy` applied in time, for one session: the budget's end (counted from the
    timer's creation), each retry window, and the waits between attempts."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._ends = clock() + policy.budget if policy.budget is not None else math.inf

    def transport_deadline(self) -> float | None:
        """The budget's end on the transport's clock (time.monotonic); None: no budget."""
        if self._ends == math.inf:
            return None
        return time.monotonic() + (self._ends - self._clock())

    def budget_spent(self) -> bool:
        return self._clock() >= self._ends

    def deadline(self) -> float:
        """When the policy's total time for retrying, starting now, runs out (on the timer's
        clock), never past the budget."""
        return min(self._clock() + self.policy.total_seconds, self._ends)

    def wait(self, error: JrError, delay: float | None, attempt: int, deadline: float, *,
             what: str = "", on_retry: Callable[[float], None] | None = None) -> None:
        """Sleep before the attempt after *attempt* (*delay*, the registry's `Retry-After`, else
        the policy's backoff), or raise *error* when the policy allows no further attempt. A
        `Retry-After` past the time left fails at once, with the registry's figure."""
        policy = self.policy
        left = min(deadline, self._ends) - self._clock()
        if delay is not None and delay > left:
            budget = f", {policy.budget:g} s per push" if policy.budget is not None else ""
            error.message = (
                f"{error.message.rstrip('.')}; the registry asks to wait {delay:.0f} s before "
                f"retrying, more than the {max(left, 0):.0f} s left (at most "
                f"{policy.total_seconds:g} s of retries per request{budget}).")
            error.args = (error.message,)
            raise error
        delay = policy.backoff(attempt) if delay is None else delay
        if attempt >= policy.attempts or delay > left:
            if self._clock() + delay >= self._ends:
                self.mention_budget(error)
            raise error
        log.info("%s; retrying%s in %.1f s (attempt %d of %d)", error.message.rstrip("."), what,
                 delay, attempt + 1, policy.attempts)
        if on_retry is not None:
            on_retry(delay)
        self._sleep(delay)

    def mention_budget(self, error: JrError) -> None:
        """Say in *error* that the budget ran out."""
        if self.policy.budget is not None and "time budget" not in error.message:
            error.message = (f"{error.message.rstrip('.')} (the push's time budget of "
                             f"{self.policy.budget:g} s ran out).")
            error.args = (error.message,)


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
        timeout: tuple[float, float] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._timeout = timeout or (CONNECT_TIMEOUT, self.retry.request_timeout)
        self.timer = RetryTimer(self.retry, clock, sleep)  # the budget runs from here
        self._own_transport = transport is None
        self._transport = transport if transport is not None else HttpTransport(ca_bundle=ca_bundle)
        self.base_url: str | None = None
        self.challenge: Challenge | None = None
        self._tokens = TokenCache(clock)
        basic = basic_authorization(credentials)  # a Secret: the CLI redacts it like the password
        self._basic = Secret(basic) if basic else None

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
            if self.policy.engine_rules:
                return registry_errors.http_to_https(self.registry)
            return registry_errors.plain_http_refused(self.registry)
        return registry_errors.tls_failure(self.registry, describe_failure(exc))

    # -- sending and retrying --------------------------------------------------------------------

    def send(self, method: str, url: str, headers: dict[str, str], data: Any = None,
             stream: bool = False, limit: int = DEFAULT_BODY_LIMIT) -> Response:
        """One request. A GET or HEAD follows redirects by hand, so that `Authorization` never
        leaves its origin; a write (PUT, POST, PATCH, DELETE) never follows one: its 3xx is the
        answer. Credentials never go where `SchemePolicy.allows_credentials` forbids."""
        origin = _origin(url)
        follow = method in ("GET", "HEAD")
        for _ in range(_MAX_REDIRECTS + 1):
            if any(k.lower() == "authorization" for k in headers) and \
                    not self.policy.allows_credentials(url, self.registry):
                raise self._clear_text_refused(url)
            try:
                response = self._transport.request(
                    method, url, headers=headers, body=data,
                    verify=self.policy.verify_for(url, self.registry), timeout=self._timeout,
                    deadline=self.timer.transport_deadline(), limit=limit, stream=stream,
                )
            except UnsendableRequest as exc:
                raise registry_errors.generic(
                    self.registry, f"a URL or header value from the registry or the image cannot "
                    f"be sent ({exc})") from None
            log.debug("%s %s -> %s", method, _path_of(url), response.status_code)
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location or not follow:
                return response
            response.close()
            try:
                url = urllib.parse.urljoin(url, location)
            except ValueError:
                raise registry_errors.generic(self.registry, "it redirected to a URL that cannot "
                                              "be used") from None
            if _origin(url) != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise registry_errors.generic(self.registry, "too many redirects")

    def _clear_text_refused(self, url: str) -> JrError:
        host = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
        return InsecureRegistryError(
            f"Refusing to send the credentials for {self.registry} to {host} over plain HTTP: "
            "they would cross the network in clear text.",
            hint="Serve the registry (and its token service) over HTTPS. If plain HTTP on this "
            "network is intended, opt in for this registry: --insecure (jr-push --from-archive/"
            "--from-oci, jr login, jr doctor) or the engine's insecure-registries (jr-push --image).",
        )

    def deadline(self) -> float:
        """When the retry policy's total time, starting now, runs out (see `RetryTimer`)."""
        return self.timer.deadline()

    def wait_to_retry(self, error: JrError, delay: float | None, attempt: int, deadline: float, *,
                      what: str = "", on_retry: Callable[[float], None] | None = None) -> None:
        """Sleep before the next attempt, or raise *error* (see `RetryTimer.wait`)."""
        self.timer.wait(error, delay, attempt, deadline, what=what, on_retry=on_retry)

    def retrying(self, attempt_fn: Callable[[], Response], *,
                 retry_connect: bool = True, tls_context: str = "") -> Response:
        """Run *attempt_fn* until it gives a non-retryable answer, within the retry policy.

        With `retry_connect=False` (the ping) a refused connection, an unknown host or a timeout
        fails at once.
        """
        deadline = self.deadline()
        attempt = 0
        answered: JrError | None = None  # the last failure the registry itself answered
        while True:
            attempt += 1
            try:
                response = attempt_fn()
                if not retryable_status(response.status_code):
                    return response
                error = answered = self.error_for(response, None)
                delay = retry_after(response.headers.get("Retry-After"))
                response.close()
            except (ConnectError, Timeout) as exc:
                if isinstance(exc, Timeout) and answered is not None and self.timer.budget_spent():
                    # The budget ended during a retry: the registry's own answer is the cause,
                    # not the unfinished attempt ("timed out" would wrongly say it is unreachable).
                    self.timer.mention_budget(answered)
                    raise answered from None
                if isinstance(exc, TlsError):
                    if not retry_connect:
                        raise  # the ping decides what a TLS failure means for the scheme choice
                    raise registry_errors.tls_failure(self.registry,
                                                      tls_context + describe_failure(exc)) from None
                error, delay = self.network_error(exc), None
                if isinstance(exc, ProxyError) and exc.status == 407:
                    raise error from None  # the proxy wants other credentials: asking again won't do
                if not retry_connect and (isinstance(exc, Timeout | ProxyError)
                                          or describe_failure(exc) in _CONNECT_FAILURES):
                    raise error from None
            self.wait_to_retry(error, delay, attempt, deadline)

    def request(self, method: str, path_or_url: str, *, scopes: Sequence[str] = (),
                headers: Mapping[str, str] | None = None, data: bytes | None = None,
                stream: bool = False, limit: int = DEFAULT_BODY_LIMIT) -> Response:
        """An idempotent request (replayable body) with auth, retries and one token refresh;
        a body read at once is read up to *limit* (past it the answer is `truncated`)."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        refreshed = False

        def attempt() -> Response:
            nonlocal refreshed
            while True:
                all_headers = {**(headers or {}), **self.auth_headers(url, scopes)}
                response = self.send(method, url, all_headers, data, stream=stream, limit=limit)
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
        response = self.send(method, url, all_headers, data)
        if response.status_code == 401 and self.is_bearer():
            self._tokens.drop(tuple(scopes))
            error = self.error_for(response, repository)
            response.close()
            raise TransientFailure(error)
        if retryable_status(response.status_code):
            error = self.error_for(response, repository)
            delay = retry_after(response.headers.get("Retry-After"))
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
            return {"Authorization": self._basic.reveal()} if self._basic else {}
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
                raise registry_errors.generic(self.registry, "the registry's token realm is not a "
                                              "usable http(s) URL")
            url, wanted = asked
            if urllib.parse.urlsplit(url).scheme.lower() == "http" and self.base_url is not None \
                    and self.base_url.startswith("https://"):
                raise RegistryError(
                    f"The registry {self.registry} speaks HTTPS but names a plain-HTTP token "
                    "service; the credentials were not sent there in clear text.",
                    hint="Configure the registry's token realm with an https:// URL.")
            headers = {"Accept": "application/json"}
            if self._basic:
                headers["Authorization"] = self._basic.reveal()
            response = self.retrying(lambda: self.send("GET", url, dict(headers), limit=TOKEN_LIMIT),
                                     tls_context="token realm: ")
            if response.status_code in (401, 403):
                raise self.credentials_error()
            if response.status_code != 200:
                raise registry_errors.generic(
                    self.registry, f"the token server answered HTTP {response.status_code}")
            if response.truncated:
                raise registry_errors.generic(
                    self.registry, f"the token server's answer is larger than {TOKEN_LIMIT >> 10} KiB")
            try:
                value, expires_in = read_token(response)
            except UnusableToken:
                raise registry_errors.generic(
                    self.registry, "the token server sent a token with characters a header cannot "
                    "carry") from None
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

    def redact(self, text: str) -> str:
        """*text* without the password, the Basic value, any token, or any credential-looking
        `Basic`/`Bearer` value."""
        secrets = [self.credentials.password.reveal()] if self.credentials else []
        if self._basic:
            secrets.append(self._basic.reveal().removeprefix("Basic "))
        return redact(text, secrets + self._tokens.secrets())

    def network_error(self, exc: BaseException) -> JrError:
        if isinstance(exc, ProxyError):  # named after the proxy, so that it is not mistaken for the registry
            return proxy_failure(exc.proxy, self.registry, exc.status, describe_failure(exc))
        error = registry_errors.unreachable(self.registry, describe_failure(exc))
        if isinstance(exc, Timeout) and self.timer.budget_spent():
            self.timer.mention_budget(error)
        return error

    def error_for(self, response: Response, repository: str | None) -> JrError:
        """The registry_errors error for a failed answer (*repository*: the one it concerns)."""
        status = response.status_code
        codes: list[tuple[str, str]] = []
        content_type = response.headers.get("Content-Type", "")
        text = _text_start(response, ERROR_TEXT_LIMIT)[:2000]
        try:
            if "json" in content_type or text.startswith("{"):
                for item in parse_json(text).get("errors") or []:
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
        if status in _REDIRECTS:
            where = _host_of(response.headers.get("Location", ""))
            detail += f" redirect{' to ' + where if where else ''} ({_WRITES_NOT_REDIRECTED})"
        elif codes:
            code, message = codes[0]
            detail += f" {code.lower().replace('_', ' ')}: {message[:300]}"
        return registry_errors.generic(self.registry, self.redact(detail))

    def check(self, response: Response, ok: Sequence[int], repository: str | None) -> None:
        """Raise `error_for` the answer (closing it) unless its status is in *ok*."""
        if response.status_code not in ok:
            error = self.error_for(response, repository)
            response.close()
            raise error


def _text_start(response: Response, limit: int) -> str:
    """The start of an answer's body as text: at most *limit* bytes are read, even of a streamed
    or endless body (closing the answer drops the rest)."""
    pieces: list[bytes] = []
    size = 0
    try:
        for piece in response.iter_content(min(limit, 1 << 16)):
            pieces.append(piece)
            size += len(piece)
            if size >= limit:
                break
    except (ConnectError, Timeout):
        pass  # the status says enough
    return b"".join(pieces)[:limit].decode("utf-8", errors="replace")


def _path_of(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).path
    except ValueError:
        return "(not a URL)"


def _host_of(url: str) -> str:
    """The host[:port] of *url* (never its path or query, which may hold a secret); "" if none."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return ""
    host = parts.netloc.rpartition("@")[2]
    return host if host.isascii() and host.isprintable() else ""
