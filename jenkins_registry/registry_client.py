"""A client for the Registry HTTP API v2 (OCI distribution spec), on `http_transport` (stdlib).

The facade callers use: `RegistryClient` speaks the API (registry-notes.md §3) over a
`RegistrySession`, as docker-py's `APIClient` over its transport:

* `registry_client` (here): ping, the credentials checks of `jr login` and `jr doctor`
  (`check_login`, `check_credentials`, `check_access`), manifests and tags;
* `registry_blobs`: blob HEAD / GET / mount / upload (`BlobApiMixin`);
* `registry_session`: the scheme policy (`SchemePolicy`), auth headers, redirects, retries, and
  the mapping of failed answers to the `registry_errors` the engine path raises;
* `registry_auth`: challenges, Basic, bearer tokens and their scopes.

How the registry is reached is a `SchemePolicy` the caller builds: `from_insecure_flag`
(jr-push without an engine), `from_engine` (jr-push uploading an engine's export) or `login`
(`jr login`, `jr doctor`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jenkins_registry import media_types, registry_errors
from jenkins_registry.errors import AuthenticationError, JrError, RegistryError
from jenkins_registry.http_transport import HttpTransport, Response
from jenkins_registry.registry_auth import Challenge, delete_scopes, push_scopes
from jenkins_registry.registry_blobs import BlobApiMixin, BlobBody, BytesBody, UploadedBlob, UploadProbe
from jenkins_registry.registry_session import RegistrySession, RetryPolicy, Scheme, SchemePolicy
from jenkins_registry.secret_types import UsernamePassword

# The names callers take from this facade; all but Manifest and RegistryClient are defined in the
# layers below.
__all__ = ["BlobBody", "BytesBody", "Manifest", "RegistryClient", "RetryPolicy", "SchemePolicy",
           "UploadProbe", "UploadedBlob"]

log = logging.getLogger(__name__)

MANIFEST_LIMIT = 4 << 20  # 4 MiB: what distribution accepts for a manifest, and what is read of one

# The manifest kinds `jr registry` reads and writes back byte for byte: image manifests and
# indexes (manifest lists), Docker's and OCI's (registry-notes.md §3).
DOCKER_MANIFEST = media_types.DOCKER_MANIFEST
OCI_MANIFEST = media_types.OCI_MANIFEST
DOCKER_MANIFEST_LIST = media_types.DOCKER_MANIFEST_LIST
OCI_INDEX = media_types.OCI_INDEX
IMAGE_MANIFEST_TYPES = media_types.IMAGE_MANIFEST_TYPES
INDEX_TYPES = media_types.INDEX_TYPES
ANY_MANIFEST_TYPES = IMAGE_MANIFEST_TYPES + INDEX_TYPES
TAG_PAGES = 1000  # pages of tags/list followed at most: a registry's `Link` chain is bounded
TAG_COUNT = 100_000  # tags read at most, over all pages

def pull_scopes(repository: str) -> tuple[str, ...]:
    """The token scope a read of *repository* needs (a copy's source, a tags list)."""
    return (f"repository:{repository}:pull",)


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry serves it: exact bytes, media type and digest."""

    body: bytes = field(repr=False)
    media_type: str
    digest: str


class RegistryClient(BlobApiMixin):
    """One registry, one set of credentials; safe to share between threads of one push.

    *policy* says how the registry is reached (default: `SchemePolicy.from_insecure_flag` without
    `--insecure`); the caller builds it (`from_insecure_flag`, `from_engine`, `login`).
    The other arguments are the session's (`RegistrySession`): a given *transport* is used as is
    and not closed; otherwise the client opens its own, trusting *ca_bundle* besides the default
    store (the CLI passes `REQUESTS_CA_BUNDLE`), and closes it.
    """

    def __init__(
        self,
        registry: str,
        *,
        credentials: UsernamePassword | None = None,
        policy: SchemePolicy | None = None,
        transport: HttpTransport | None = None,
        ca_bundle: str | None = None,
        timeout: tuple[float, float] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if policy is None:
            policy = SchemePolicy.from_insecure_flag(registry, insecure=False)
        self._session = RegistrySession(
            registry, policy, credentials=credentials, transport=transport, ca_bundle=ca_bundle,
            timeout=timeout, retry=retry, clock=clock, sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"RegistryClient(registry={self.registry!r}, user={self.username!r}, " \
            f"base_url={self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def registry(self) -> str:
        return self._session.registry

    @property
    def credentials(self) -> UsernamePassword | None:
        return self._session.credentials

    @property
    def username(self) -> str | None:
        return self._session.username

    @property
    def policy(self) -> SchemePolicy:
        return self._session.policy

    @property
    def retry(self) -> RetryPolicy:
        return self._session.retry

    @property
    def base_url(self) -> str | None:
        """Where the registry answered the ping (None before it)."""
        return self._session.base_url

    @property
    def challenge(self) -> Challenge | None:
        """The challenge the ping got (None before it, or for an open registry)."""
        return self._session.challenge

    # -- ping and access -------------------------------------------------------------------------

    def ping(self, scheme: Scheme | None = None) -> Challenge | None:
        """`GET /v2/` without credentials: choose the scheme by the policy (or use *scheme*
        alone) and remember the auth challenge, which is returned (None: an open registry)."""
        return self._session.ping(scheme)

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
            self._session.token(scopes)
        if probe:
            response = self._session.request("GET", "/v2/", scopes=scopes)
            self._session.check(response, (200,), None)
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
            if self._session.is_bearer() and self.challenge is not None and self.challenge.realm:
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
            response = self._session.request("GET", f"/v2/{repository}/tags/list", scopes=scopes)
            if response.status_code == 404 and b"NAME_UNKNOWN" in response.content:
                return
            self._session.check(response, (200,), repository)

    # -- manifests and tags ----------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str, accept: Sequence[str], *,
                     limit: int = MANIFEST_LIMIT,
                     scopes: Sequence[str] | None = None) -> Manifest | None:
        """The manifest *reference* (tag or digest) in *repository*, or None when it does not
        exist. One larger than *limit* is refused after reading *limit* bytes of it. *scopes*:
        the token scopes asked for (default: a push's; a copy's source asks only to pull)."""
        response = self._session.request("GET", f"/v2/{repository}/manifests/{reference}",
                                         scopes=push_scopes(repository) if scopes is None else scopes,
                                         headers={"Accept": ", ".join(accept)}, limit=limit)
        if response.status_code == 404:
            response.close()
            return None
        self._session.check(response, (200,), repository)
        if response.truncated:
            raise registry_errors.generic(
                self.registry, f"the manifest {repository}:{reference} is larger than "
                f"{limit / (1 << 20):g} MiB, the most a registry accepts")
        body = response.content
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(body, media_type, digest)

    def manifest_digest(self, repository: str, reference: str, accept: Sequence[str]) -> str | None:
        """`HEAD` a manifest: its digest, or None when it does not exist."""
        response = self._session.request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                         scopes=push_scopes(repository),
                                         headers={"Accept": ", ".join(accept)})
        if response.status_code == 404:
            return None
        self._session.check(response, (200,), repository)
        return response.headers.get("Docker-Content-Digest")

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """`PUT` the manifest bytes under *reference* (a tag or its digest); returns the digest.

        It counts only as the spec says a registry stores a manifest: 201 Created (a redirect or
        any other status fails; writes are never redirected), with the digest of these bytes in
        `Docker-Content-Digest`, or, where a registry leaves that header out, with a HEAD of the
        reference answering that digest.
        """
        local = f"sha256:{hashlib.sha256(body).hexdigest()}"
        response = self._session.request("PUT", f"/v2/{repository}/manifests/{reference}",
                                         scopes=push_scopes(repository),
                                         headers={"Content-Type": media_type}, data=body)
        self._session.check(response, (201,), repository)
        remote = response.headers.get("Docker-Content-Digest")
        response.close()
        if not remote:
            remote = self.manifest_digest(repository, reference, (media_type,))
            if remote is None:
                raise RegistryError(
                    f"The registry {self.registry} answered the manifest PUT of "
                    f"{repository}:{reference} with 201, but neither that answer nor a HEAD of it "
                    "names the manifest's digest: it is not known to hold it.",
                    hint="Check the registry's log and storage; re-run with --debug.")
        if remote != local:
            raise RegistryError(
                f"The registry {self.registry} holds {repository}:{reference} as {remote}, but "
                f"the manifest sent hashes to {local}.",
                hint="The registry rewrote or lost the manifest; report this with --debug.")
        return local

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """`DELETE` a manifest by digest (removes its tags); False when the registry refuses."""
        try:
            response = self._session.request("DELETE", f"/v2/{repository}/manifests/{digest}",
                                             scopes=delete_scopes(repository))
        except JrError as exc:
            log.debug("deleting %s failed: %s", digest[:19], exc.message)
            return False
        response.close()
        return response.status_code in (200, 202)

    def tags(self, repository: str) -> list[str]:
        """The tags of *repository* (empty when it does not exist)."""
        response = self._session.request("GET", f"/v2/{repository}/tags/list",
                                         scopes=(f"repository:{repository}:pull",),
                                         limit=MANIFEST_LIMIT)
        if response.status_code == 404:
            response.close()
            return []
        self._session.check(response, (200,), repository)
        try:
            if response.truncated:
                raise ValueError("too large")
            return sorted(str(tag) for tag in response.json().get("tags") or [])
        except (ValueError, AttributeError, TypeError):
            raise registry_errors.generic(self.registry, "tags/list was not JSON of at most "
                                          f"{MANIFEST_LIMIT >> 20} MiB") from None

    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of *repository* (empty when it does not exist), following `Link: <…>;
        rel="next"` pagination, in the registry's order.

        Bounded: each page is read up to MANIFEST_LIMIT, at most TAG_PAGES pages and TAG_COUNT
        tags. A `Link` must stay on this registry's origin and this repository's tags/list (it
        is where the credentials go next); any other is refused, as is a page seen twice.
        """
        path = f"/v2/{repository}/tags/list"
        url = self._session.url(path + (f"?n={page_size}" if page_size else ""))
        seen: set[str] = set()
        tags: list[str] = []
        for _ in range(TAG_PAGES):
            seen.add(url)
            response = self._session.request("GET", url, scopes=pull_scopes(repository),
                                             limit=MANIFEST_LIMIT)
            if response.status_code == 404 and not tags:
                response.close()
                return []
            self._session.check(response, (200,), repository)
            tags += self._tag_page(response, repository)
            if len(tags) > TAG_COUNT:
                raise registry_errors.generic(
                    self.registry, f"{repository} lists more than {TAG_COUNT} tags; refusing to read on")
            following = _next_link(response.headers.get("Link"), url)
            if following is None:
                return tags
            if _origin_path(following) != _origin_path(self._session.url(path)):
                raise registry_errors.generic(
                    self.registry, "its tags/list `Link` points away from this registry's "
                    f"{repository} tags; not followed")
            if following in seen:
                raise registry_errors.generic(self.registry, "its tags/list `Link` goes round in a loop")
            url = following
        raise registry_errors.generic(
            self.registry, f"{repository}'s tags/list runs over more than {TAG_PAGES} pages")

    def _tag_page(self, response: Response, repository: str) -> list[str]:
        try:
            if response.truncated:
                raise ValueError("too large")
            listed = response.json().get("tags") or []
            if not isinstance(listed, list) or not all(isinstance(tag, str) for tag in listed):
                raise ValueError("not a list of strings")
            return list(listed)
        except (ValueError, AttributeError, TypeError):
            raise registry_errors.generic(
                self.registry, f"{repository}'s tags/list was not a JSON list of tags of at most "
                f"{MANIFEST_LIMIT >> 20} MiB") from None

    def remove_manifest(self, repository: str, digest: str) -> bool:
        """`DELETE` the manifest *digest* (and so every tag on it): True when deleted, False
        when it was gone already. A registry that does not delete says why (405: deletion is
        disabled), as does any other refusal."""
        response = self._session.request("DELETE", f"/v2/{repository}/manifests/{digest}",
                                         scopes=delete_scopes(repository))
        status = response.status_code
        if status in (200, 202):
            response.close()
            return True
        if status == 404 and b"MANIFEST_UNKNOWN" in response.content:
            return False
        if status == 405:
            response.close()
            raise RegistryError(
                f"The registry {self.registry} does not delete manifests (HTTP 405 unsupported): "
                "deletion is disabled there.",
                hint="On a distribution registry set `storage: delete: enabled: true` (or "
                "REGISTRY_STORAGE_DELETE_ENABLED=true) and restart it. Nexus deletes components "
                "in its UI or REST API; see docs/registry-operations.md.")
        self._session.check(response, (202,), repository)
        return True  # not reached: check() raised


_LINK_NEXT = re.compile(r'<([^<>]*)>\s*;(?:[^,]*?;)?\s*rel="?next"?', re.IGNORECASE)


def _next_link(header: str | None, current: str) -> str | None:
    """The absolute URL a `Link: <url>; rel="next"` header points to, or None."""
    match = _LINK_NEXT.search(header or "")
    if match is None:
        return None
    try:
        return str(urllib.parse.urljoin(current, match.group(1).strip()))
    except ValueError:
        return ""  # no origin: refused by the caller


def _origin_path(url: str) -> tuple[str, str, str]:
    """Scheme, host:port and path of *url* (lowercased origin), to compare where a Link leads."""
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme.lower(), parts.netloc.lower(), parts.path
    except ValueError:
        return "", "", ""
