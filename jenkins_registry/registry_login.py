"""`jr login` / `jr logout`: check a registry password the way `docker login` does, keep it in the
OS keyring instead of ~/.docker/config.json, and remove it again.

The check talks the Registry HTTP API v2 directly (registry-notes.md §3.1): `GET /v2/` answers 200
(no auth) or 401 with a `WWW-Authenticate` challenge; for `Basic` the same request is repeated with
the credentials; for `Bearer` a token is fetched from the challenge's realm with Basic credentials
(`service`, `scope`, `account` parameters) and `/v2/` is repeated with it. Like dockerd, HTTPS is
tried first; plain HTTP only when HTTPS fails for a reason other than an untrusted certificate (no
password is sent before that choice). `jr doctor` reuses these probes.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import requests

from jenkins_registry.credentials import Secret, UsernamePassword
from jenkins_registry.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RegistryError,
    UnreachableError,
)
from jenkins_registry.reference import parse_registry
from jenkins_registry.registry_client import Challenge, Scheme, parse_challenge

if TYPE_CHECKING:
    from jenkins_registry.keyring_store import KeyringStore

log = logging.getLogger(__name__)

TIMEOUT = (5.0, 15.0)  # (connect, read) seconds per request


# Challenges ---------------------------------------------------------------------------------
# One parser for the package: registry_client.parse_challenge (Bearer preferred, then Basic).
def challenge_of(response: requests.Response) -> Challenge | None:
    """The challenge of a 401 answer, or None when it carries no usable `WWW-Authenticate`."""
    header = response.headers.get("WWW-Authenticate")
    if not header:
        return None
    challenge = parse_challenge(header)
    return challenge if challenge.scheme else None


def is_auth_failure(response: requests.Response) -> bool:
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


def basic_header(creds: UsernamePassword) -> str:
    raw = f"{creds.username}:{creds.password.reveal()}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


# Endpoint -----------------------------------------------------------------------------------
def base_url(scheme: Scheme, registry: str) -> str:
    return f"{scheme}://{registry}"


def tls_failure_kind(exc: requests.exceptions.SSLError) -> Literal["untrusted", "no-tls"]:
    """An SSL error either means an untrusted certificate or a port that does not speak TLS."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "untrusted"
    return "no-tls"


def ping(session: requests.Session, url: str) -> requests.Response:
    """`GET <url>/v2/` without credentials and without following redirects."""
    return session.get(f"{url}/v2/", timeout=TIMEOUT, allow_redirects=False)


def find_endpoint(session: requests.Session, registry: str) -> tuple[str, requests.Response]:
    """The base URL the registry answers on (HTTPS first, then HTTP) and its `/v2/` answer."""
    try:
        return base_url("https", registry), ping(session, base_url("https", registry))
    except requests.exceptions.SSLError as exc:
        if tls_failure_kind(exc) == "untrusted":
            raise RegistryError(
                f"{registry} speaks HTTPS with a certificate this machine does not trust.",
                hint=f"Install its CA certificate (for docker: /etc/docker/certs.d/{registry}/ca.crt; "
                "for this tool: the system trust store or REQUESTS_CA_BUNDLE).",
            ) from exc
        log.debug("%s does not speak TLS; trying plain HTTP", registry)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
        log.debug("no HTTPS answer from %s; trying plain HTTP", registry)
    try:
        return base_url("http", registry), ping(session, base_url("http", registry))
    except requests.exceptions.RequestException as exc:
        raise UnreachableError(
            f"Cannot reach the registry {registry} over HTTPS or HTTP ({type(exc).__name__}).",
            hint=f"Check the address and port, that the registry runs, and that a firewall lets the "
            f"port through; `jr doctor --registry {registry}` checks each step.",
        ) from exc


# Credentials check ----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class AuthCheck:
    """How a registry authenticated a user: scheme `none`, `basic` or `bearer`, and the realm."""

    url: str
    scheme: str
    realm: str | None = None
    anonymous_ok: bool = False


def _request(session: requests.Session, method: str, url: str, what: str,
             headers: Mapping[str, str] | None = None,
             params: Mapping[str, str] | None = None) -> requests.Response:
    try:
        return session.request(method, url, headers=dict(headers or {}), params=params,
                               timeout=TIMEOUT, allow_redirects=False)
    except requests.exceptions.RequestException as exc:
        host = urlsplit(url).netloc
        raise UnreachableError(f"Cannot reach {host} for {what} ({type(exc).__name__}).") from exc


def fetch_token(session: requests.Session, challenge: Challenge, creds: UsernamePassword | None,
                *, scope: str | None = None) -> Secret:
    """Get a Bearer token from the challenge's realm (distribution `token.md`), as a Secret."""
    realm = challenge.realm or ""
    parts = urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryError(f"The registry's Bearer challenge has no usable realm ({realm!r}).")
    params = {"service": challenge.service or ""}
    if scope or challenge.scope:
        params["scope"] = scope or challenge.scope or ""
    headers = {}
    if creds is not None:
        params["account"] = creds.username
        headers["Authorization"] = basic_header(creds)
    response = _request(session, "GET", realm, "a token", headers, params)
    if response.status_code in (401, 403):
        who = f"user {creds.username!r}" if creds else "anonymous access"
        raise AuthenticationError(
            f"The token service at {parts.netloc} rejected {who} (HTTP {response.status_code})."
        )
    if response.status_code != 200:
        raise RegistryError(f"The token service at {parts.netloc} answered HTTP {response.status_code}.")
    try:
        body = response.json()
    except ValueError as exc:
        raise RegistryError(f"The token service at {parts.netloc} did not answer JSON.") from exc
    token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryError(f"The token service at {parts.netloc} answered without a token.")
    return Secret(token)


def authorization(session: requests.Session, challenge: Challenge | None,
                  creds: UsernamePassword | None, *, scope: str | None = None) -> dict[str, str]:
    """The Authorization header to answer *challenge* with (empty when none is needed)."""
    if challenge is None:
        return {}
    if challenge.scheme == "basic":
        return {"Authorization": basic_header(creds)} if creds is not None else {}
    if challenge.scheme == "bearer":
        token = fetch_token(session, challenge, creds, scope=scope)
        return {"Authorization": f"Bearer {token.reveal()}"}
    raise RegistryError(
        f"The registry asks for {challenge.scheme!r} authentication; Docker supports only Basic "
        "and Bearer."
    )


def verify_credentials(session: requests.Session, url: str, registry: str,
                       creds: UsernamePassword, first: requests.Response | None = None) -> AuthCheck:
    """Check *creds* against `<url>/v2/`; raise AuthenticationError when they are rejected."""
    response = first if first is not None else _request(session, "GET", f"{url}/v2/", "/v2/")
    if response.status_code == 200:
        log.info("%s does not ask for credentials; any password would be accepted", registry)
        return AuthCheck(url=url, scheme="none", anonymous_ok=True)
    challenge = challenge_of(response)
    if not is_auth_failure(response) or challenge is None:
        raise RegistryError(
            f"{url}/v2/ answered HTTP {response.status_code} without an auth challenge; this is not "
            "a Docker registry API endpoint.",
            hint="Use the registry's own port (for Nexus: the docker repository's HTTP connector "
            "port such as 8082, not 8081).",
        )
    headers = authorization(session, challenge, creds)
    answer = _request(session, "GET", f"{url}/v2/", "/v2/", headers)
    if answer.status_code == 200:
        return AuthCheck(url=url, scheme=challenge.scheme, realm=challenge.realm)
    if is_auth_failure(answer):
        raise AuthenticationError(
            f"The registry {registry} rejected the password of user {creds.username!r}.",
            hint="Check the username and password and try again.",
        )
    if answer.status_code == 403:
        raise PermissionDeniedError(f"The registry {registry} refused user {creds.username!r} (403).")
    raise RegistryError(f"The registry {registry} answered HTTP {answer.status_code} to the login.")


# Login / logout ------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LoginResult:
    registry: str
    username: str
    check: AuthCheck
    replaced_user: str | None = None


def login(registry: str, creds: UsernamePassword, *, store: KeyringStore,
          session: requests.Session) -> LoginResult:
    """Check *creds* against *registry*, then store them in the keyring (nothing on failure)."""
    registry = parse_registry(registry)
    store.ensure_usable()  # fail before the network round trip when there is nowhere to store
    url, first = find_endpoint(session, registry)
    check = verify_credentials(session, url, registry, creds, first)
    previous = store.get(registry)
    replaced = previous.username if previous and previous.username != creds.username else None
    if replaced:
        store.delete(registry)
    store.set(registry, creds.username, creds.password)
    log.info("stored the password of %s for %s in the OS keyring", creds.username, registry)
    return LoginResult(registry=registry, username=creds.username, check=check,
                       replaced_user=replaced)


def logout(registry: str, *, store: KeyringStore) -> bool:
    """Remove the keyring entry for *registry*; False when there was none."""
    registry = parse_registry(registry)
    store.ensure_usable()
    return store.delete(registry)


def read_password_stdin(text: str) -> Secret:
    """The password piped to --password-stdin: one trailing newline (and CR) trimmed, as docker does."""
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return Secret(text)
