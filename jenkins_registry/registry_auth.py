"""What a registry asks of its clients, and what they answer: challenges, Basic, bearer tokens.

`parse_challenge` is the one parser of `WWW-Authenticate` (also used by `jr doctor`). Tokens are
asked per repository scope (registry-notes.md §3.1) and kept in a `TokenCache` until shortly
before they expire. Nothing here sends a request: the session layer (`registry_session`) fetches
tokens with what `token_request` builds and `read_token` reads.
"""

from __future__ import annotations

import base64
import math
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from jenkins_registry.http_transport import Response
from jenkins_registry.secret_types import Secret, UsernamePassword

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


# -- answers -----------------------------------------------------------------------------------------


def basic_authorization(credentials: UsernamePassword | None) -> str | None:
    """The `Authorization: Basic …` value for *credentials* (None without credentials)."""
    if credentials is None:
        return None
    raw = f"{credentials.username}:{credentials.password.reveal()}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def token_request(challenge: Challenge, scopes: Sequence[str],
                  username: str | None) -> tuple[str, tuple[str, ...]] | None:
    """The token realm URL to GET for *scopes* (the challenge's own scope when none are given),
    and the scopes asked; None when the realm is not a usable http(s) URL (another scheme, no
    host, a bad port or bracket, spaces, control or non-ASCII characters)."""
    realm = challenge.realm or ""
    try:
        parts = urllib.parse.urlsplit(realm)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0 \
            or not realm.isascii() or any(c.isspace() or not c.isprintable() for c in realm):
        return None
    params: list[tuple[str, str]] = []
    if challenge.service:
        params.append(("service", challenge.service))
    wanted = tuple(scopes) or ((challenge.scope,) if challenge.scope else ())
    params += [("scope", scope) for scope in wanted]
    if username is not None:
        params.append(("account", username))
    url = realm + ("&" if urllib.parse.urlsplit(realm).query else "?") + urllib.parse.urlencode(params)
    return url, wanted


TOKEN_LIMIT = 1 << 20  # a token answer is a few KiB; past 1 MiB it is refused unread
DEFAULT_TOKEN_SECONDS = 60  # the token spec's default for a missing `expires_in`
MAX_TOKEN_SECONDS = 24 * 3600  # longer claims are cut to a day (a rejected token is fetched again)
_TOKEN_VALUE = re.compile(r"[\x21-\x7e]+")  # what may follow `Bearer ` in a header, and nothing else


class UnusableToken(ValueError):
    """The token server's answer holds a token that cannot be sent in a header (control, space
    or non-ASCII characters)."""


def read_token(response: Response) -> tuple[str | None, int]:
    """The token (`token`, else `access_token`) of a 200 from the realm and its `expires_in`
    (60 s when absent or not a finite number; at most a day); the token is None when the answer
    holds none. UnusableToken when it holds one that cannot go in a header."""
    try:
        body = response.json()
        value = body.get("token") or body.get("access_token")
        expires = body.get("expires_in")
    except (ValueError, AttributeError, TypeError):
        return None, DEFAULT_TOKEN_SECONDS
    if not isinstance(value, str) or not value:
        return None, DEFAULT_TOKEN_SECONDS
    if not _TOKEN_VALUE.fullmatch(value):
        raise UnusableToken("the token holds characters a header cannot carry")
    return value, token_lifetime(expires)


def token_lifetime(expires_in: object) -> int:
    """Seconds from an `expires_in` value: a finite positive number (or digits), at most a day;
    else 60."""
    if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
        expires_in = int(expires_in[:9])
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        return DEFAULT_TOKEN_SECONDS
    if not math.isfinite(expires_in) or expires_in <= 0:
        return DEFAULT_TOKEN_SECONDS
    return int(min(expires_in, MAX_TOKEN_SECONDS))


@dataclass
class _Token:
    value: Secret
    expires_at: float


class TokenCache:
    """Bearer tokens per scope, each used until shortly before it expires; thread-safe.

    `lock` is held while a token is fetched, so threads asking for the same scope wait for one
    fetch; it is re-entrant because redacting a failed fetch's error text reads `secrets()`.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self.lock = threading.RLock()

    def get(self, scopes: tuple[str, ...]) -> Secret | None:
        """The cached token for *scopes*, unless it is missing or expiring."""
        with self.lock:
            cached = self._tokens.get(scopes)
            return cached.value if cached is not None and cached.expires_at > self._clock() else None

    def put(self, scopes: tuple[str, ...], value: str, expires_in: int) -> tuple[Secret, float]:
        """Keep *value* for *scopes*; returns it and the seconds it will be used (a margin of a
        quarter of its life, at most 30 s, is left before it expires)."""
        lifetime = max(1.0, expires_in - min(30.0, expires_in / 4))
        token = _Token(Secret(value), self._clock() + lifetime)
        with self.lock:
            self._tokens[scopes] = token
        return token.value, lifetime

    def drop(self, scopes: tuple[str, ...]) -> None:
        """Forget the token for *scopes* (the registry rejected it)."""
        with self.lock:
            self._tokens.pop(scopes, None)

    def secrets(self) -> list[str]:
        """Every token held, for redaction."""
        with self.lock:
            return [token.value.reveal() for token in self._tokens.values()]


# -- scopes ------------------------------------------------------------------------------------------


def push_scopes(repository: str) -> tuple[str, ...]:
    """The token scope a push to *repository* needs."""
    return (f"repository:{repository}:pull,push",)


def delete_scopes(repository: str) -> tuple[str, ...]:
    """The token scope a DELETE needs: distribution 2.x asks for `*`, newer registries `delete`."""
    return (f"repository:{repository}:delete,*",)
