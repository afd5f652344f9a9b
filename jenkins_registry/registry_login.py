"""`jr login` / `jr logout`: check a registry password the way `docker login` does, keep it in the
OS keyring instead of ~/.docker/config.json, and remove it again.

The check is `RegistryClient.check_login` under `SchemePolicy.login()` (registry-notes.md §3.1):
`GET /v2/` without credentials over verified HTTPS; plain HTTP only on loopback (and only when
HTTPS fails for another reason than an untrusted certificate) or with `--insecure` (jr-push's
rule: unverified HTTPS, then plain HTTP); then `/v2/` again with Basic credentials, or with a
Bearer token fetched with them. The password never crosses the network in clear text unless the
user opted in for that registry. `jr doctor` runs the same check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jenkins_registry.reference import parse_registry
from jenkins_registry.registry_client import RegistryClient
from jenkins_registry.registry_session import CHECK_RETRY, CHECK_TIMEOUT, SchemePolicy
from jenkins_registry.secret_types import Secret, UsernamePassword

if TYPE_CHECKING:
    from jenkins_registry.keyring_store import KeyringStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LoginResult:
    """A stored login: where the registry answered and how it checked the password."""

    registry: str
    username: str
    url: str  # the base URL the registry API answered on
    auth: str  # "none" (nothing was checked), "basic" or "bearer"
    replaced_user: str | None = None


def login(registry: str, creds: UsernamePassword, *, store: KeyringStore,
          ca_bundle: str | None = None, insecure: bool = False) -> LoginResult:
    """Check *creds* against *registry*, then store them in the keyring (nothing on failure).

    *ca_bundle* adds CA certificates to the default trust store (the CLI passes
    REQUESTS_CA_BUNDLE or SSL_CERT_FILE). *insecure* (`--insecure`) allows plain HTTP and
    unverified HTTPS to a registry that is not this machine.
    """
    registry = parse_registry(registry)
    store.ensure_usable()  # fail before the network round trip when there is nowhere to store
    policy = SchemePolicy.login(registry, insecure=insecure)
    with RegistryClient(registry, credentials=creds, policy=policy,
                        ca_bundle=ca_bundle, timeout=CHECK_TIMEOUT, retry=CHECK_RETRY) as client:
        challenge = client.check_login()
        url = client.base_url or f"https://{registry}"
    if challenge is None:
        log.info("%s does not ask for credentials; any password would be accepted", registry)
    previous = store.get(registry)
    replaced = previous.username if previous and previous.username != creds.username else None
    if replaced:
        store.delete(registry)
    store.set(registry, creds.username, creds.password)
    log.info("stored the password of %s for %s in the OS keyring", creds.username, registry)
    return LoginResult(registry=registry, username=creds.username, url=url,
                       auth=challenge.scheme if challenge else "none", replaced_user=replaced)


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
