"""Nexus 3 provisioning for Docker: a docker hosted repository on an HTTP connector port, the
Docker Bearer Token Realm, and anonymous access, through Sonatype's REST API, idempotently.

Facts (registry-notes.md §4; Nexus OpenAPI, nexus-repo-api-client-go `RepositoryManagementAPI.md`):
  * every call is `<nexus>/service/rest/...` with Basic admin credentials;
  * `POST v1/repositories/docker/hosted` creates (201; 400 when it exists or is invalid), `GET`/`PUT
    v1/repositories/docker/hosted/<name>` read and update; required fields are `name`, `online`,
    `storage.{blobStoreName, strictContentTypeValidation, writePolicy}`,
    `docker.{forceBasicAuth, v1Enabled}`; `forceBasicAuth` is set explicitly because new
    repositories may default to true, hidden in the UI (sonatype/nexus-public #921);
  * `GET v1/security/realms/available` lists `{id, name}`; `PUT v1/security/realms/active` takes an
    ordered id list that *replaces* the active list, so the current list is read and DockerToken
    appended; older versions serve these under `beta/` instead of `v1/`;
  * `GET`/`PUT v1/security/anonymous` with `{enabled, userId, realmName}`;
  * roles and users of the push account (registry-notes §7): `GET`/`POST`/`PUT
    v1/security/roles[/<id>]`, `GET v1/security/users?userId=` (a prefix match), `POST`/`PUT
    v1/security/users[/<id>]`, and `PUT v1/security/users/<id>/change-password` with a text/plain
    body, the only way a password changes (nexus_account.py decides what to send).
Every step reports created / updated / unchanged; a dry run takes the same path and only reads.
No request follows a redirect (a 307 would carry a new user's password to the Location): a 3xx
answer is an error naming where it pointed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests

from jenkins_registry.errors import (
    AuthenticationError,
    InputFileError,
    JrError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    UnreachableError,
    UsageError,
    redact,
)
from jenkins_registry.reference import mask_userinfo
from jenkins_registry.secret_types import Secret

log = logging.getLogger(__name__)

DOCKER_TOKEN_REALM = "DockerToken"
DEFAULT_ANONYMOUS_USER = "anonymous"
DEFAULT_ANONYMOUS_REALM = "NexusAuthorizingRealm"
TIMEOUT = (5.0, 30.0)
TASK_PAGES = 100  # pages of GET v1/tasks followed at most
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


# Inputs -----------------------------------------------------------------------------------------
def parse_url(text: str) -> str:
    """`http(s)://HOST[:PORT][/context]` without credentials, trailing slash removed."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {mask_userinfo(text)!r} is not an http(s) URL.",
                         hint="Give the Nexus base URL, e.g. http://10.211.55.6:8081.")
    if parts.username or parts.password:
        raise UsageError(
            "--url must not contain a user name or password.",
            hint="Pass the admin password through NEXUS_PASSWORD, the keyring, or "
            "--admin-password-file; never on the command line.",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"--url {parts.scheme}://{parts.netloc}{parts.path} must not have a query.")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def parse_repository_name(text: str) -> str:
    """Nexus repository names: letters, digits, '_', '-', '.'; not starting with '_' or '.'."""
    if not text or set(text) - _NAME_CHARS or text[0] in "_." or len(text) > 200:
        raise UsageError(
            f"--repository {text!r} is not a valid Nexus repository name.",
            hint="Use letters, digits, '-', '_' and '.', starting with a letter or digit "
            "(e.g. docker-hosted).",
        )
    return text


def read_password_file(path: str) -> Secret:
    """The first-run `admin.password` (sonatype-work/nexus3/admin.password, /nexus-data/...)."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except FileNotFoundError as exc:
        raise InputFileError(
            f"The password file {path} does not exist.",
            hint="Nexus deletes admin.password once the setup wizard changed the password; use "
            "NEXUS_USERNAME/NEXUS_PASSWORD instead.",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"Cannot read the password file {path} ({type(exc).__name__}).",
                             hint="Check the path and its permissions.") from exc
    if not value:
        raise InputFileError(f"The password file {path} is empty.", hint="Check the path.")
    return Secret(value)


# Client -----------------------------------------------------------------------------------------
class NexusClient:
    """The few Nexus 3 REST calls the setup needs; each failure becomes a JrError."""

    def __init__(self, url: str, username: str, password: Secret, *,
                 session: requests.Session | None = None) -> None:
        self.url = parse_url(url)
        self.username = username
        self._password = password
        self._secrets = [password]  # every secret this client sends: redacted from Nexus' text
        self._session = session or requests.Session()
        self._realms_api = "v1"

    def __repr__(self) -> str:
        return f"NexusClient({self.url!r}, user={self.username!r})"

    def _remember(self, secret: Secret) -> None:
        if secret not in self._secrets:
            self._secrets.append(secret)

    def _send(self, method: str, path: str, *, json: Any = None, text: Secret | None = None,
              auth: tuple[str, Secret] | None = None) -> requests.Response:
        """One request (admin credentials unless *auth*); transport failures become JrErrors."""
        user, password = auth or (self.username, self._password)
        headers = {"Accept": "application/json"}
        data = None
        if text is not None:
            headers["Content-Type"] = "text/plain; charset=utf-8"
            data = text.reveal().encode("utf-8")
        try:
            response = self._session.request(
                method, f"{self.url}/service/rest/{path}", json=json, data=data,
                auth=(user, password.reveal()), headers=headers, timeout=TIMEOUT,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as exc:
            raise UnreachableError(
                f"Cannot reach Nexus at {self.url} ({type(exc).__name__}).",
                hint="Check --url (the web port, usually 8081), that Nexus has finished starting, "
                "and that a firewall lets the port through.",
            ) from exc
        log.debug("nexus %s %s (as %s) -> %d", method, path.split("?", 1)[0], user,
                  response.status_code)
        if 300 <= response.status_code < 400:
            response.close()
            raise ServerError(
                f"Nexus at {self.url} answered HTTP {response.status_code} (a redirect to "
                f"{_location(response)}) to {method} {path.split('?', 1)[0]}; requests do not "
                "follow redirects, so nothing was sent there.",
                hint="If that address is your Nexus, pass it as --url; otherwise check the proxy "
                "in front of Nexus.",
            )
        return response

    def _call(self, method: str, path: str, *, json: Any = None, text: Secret | None = None,
              missing_ok: bool = False) -> requests.Response:
        response = self._send(method, path, json=json, text=text)
        status = response.status_code
        if status == 401:
            raise AuthenticationError(
                f"Nexus at {self.url} rejected the credentials of {self.username!r}.",
                hint="Check NEXUS_USERNAME/NEXUS_PASSWORD (or --admin-password-file; Nexus deletes "
                "admin.password once the password was changed).",
            )
        if status == 403:
            raise PermissionDeniedError(
                f"Nexus user {self.username!r} may not {method} {path}.",
                hint="Use an administrator account (nx-admin role).",
            )
        if status == 404 and missing_ok:
            return response
        if status >= 400:
            detail = self._detail(response)
            error: type[JrError] = (
                NotFoundError if status == 404 else ServerError if status >= 500 else UsageError
            )
            raise error(f"Nexus answered HTTP {status} to {method} {path}{detail}.",
                        hint="Check the values given, and the Nexus log (nexus.log).")
        return response

    def _detail(self, response: requests.Response) -> str:
        # Redact before cutting short: a cut inside a secret would leave its start unredacted.
        text = redact(response.text, [secret.reveal() for secret in self._secrets])
        text = text.strip().replace("\n", " ")[:300]
        return f": {text}" if text else ""

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(f"Nexus answered {response.request.path_url} with non-JSON.") from exc

    # repositories
    def get_docker_hosted(self, name: str) -> dict[str, Any] | None:
        response = self._call("GET", f"v1/repositories/docker/hosted/{quote(name, safe='')}",
                              missing_ok=True)
        if response.status_code == 404:
            return None
        body = self._json(response)
        if not isinstance(body, dict):
            raise ServerError("Nexus answered the repository request with an unexpected shape.")
        return body

    def create_docker_hosted(self, body: Mapping[str, Any]) -> None:
        self._call("POST", "v1/repositories/docker/hosted", json=dict(body))

    def update_docker_hosted(self, name: str, body: Mapping[str, Any]) -> None:
        self._call("PUT", f"v1/repositories/docker/hosted/{quote(name, safe='')}", json=dict(body))

    # realms
    def _realms(self, method: str, leaf: str, json: Any = None) -> requests.Response:
        if self._realms_api == "v1":
            response = self._call(method, f"v1/security/realms/{leaf}", json=json, missing_ok=True)
            if response.status_code != 404:
                return response
            log.debug("no v1 realms API; trying the beta API of older Nexus versions")
            self._realms_api = "beta"
        return self._call(method, f"beta/security/realms/{leaf}", json=json)

    def available_realms(self) -> list[str]:
        body = self._json(self._realms("GET", "available"))
        return [str(item["id"]) for item in body if isinstance(item, dict) and "id" in item]

    def active_realms(self) -> list[str]:
        body = self._json(self._realms("GET", "active"))
        if not isinstance(body, list):
            raise ServerError("Nexus answered the active realms with an unexpected shape.")
        return [str(item) for item in body]

    def set_active_realms(self, ids: list[str]) -> None:
        self._realms("PUT", "active", json=list(ids))

    # anonymous access
    def get_anonymous(self) -> dict[str, Any]:
        body = self._json(self._call("GET", "v1/security/anonymous"))
        if not isinstance(body, dict):
            raise ServerError("Nexus answered the anonymous settings with an unexpected shape.")
        return body

    def set_anonymous(self, body: Mapping[str, Any]) -> None:
        self._call("PUT", "v1/security/anonymous", json=dict(body))

    # security: roles
    def get_role(self, role_id: str) -> dict[str, Any] | None:
        response = self._call("GET", f"v1/security/roles/{quote(role_id, safe='')}", missing_ok=True)
        if response.status_code == 404:
            return None
        body = self._json(response)
        if not isinstance(body, dict):
            raise ServerError("Nexus answered the role request with an unexpected shape.")
        return body

    def create_role(self, body: Mapping[str, Any]) -> None:
        self._call("POST", "v1/security/roles", json=dict(body))

    def update_role(self, role_id: str, body: Mapping[str, Any]) -> None:
        self._call("PUT", f"v1/security/roles/{quote(role_id, safe='')}", json=dict(body))

    # security: users
    def find_user(self, user_id: str) -> dict[str, Any] | None:
        """The user *user_id* exactly: Nexus' `userId` query is a prefix match."""
        body = self._json(self._call("GET", f"v1/security/users?userId={quote(user_id, safe='')}"))
        if not isinstance(body, list):
            raise ServerError("Nexus answered the user search with an unexpected shape.")
        found = [user for user in body if isinstance(user, dict) and user.get("userId") == user_id]
        return found[0] if found else None

    def create_user(self, body: Mapping[str, Any], password: Secret) -> None:
        self._remember(password)
        self._call("POST", "v1/security/users", json={**body, "password": password.reveal()})

    def update_user(self, user_id: str, body: Mapping[str, Any]) -> None:
        self._call("PUT", f"v1/security/users/{quote(user_id, safe='')}", json=dict(body))

    def change_password(self, user_id: str, password: Secret) -> None:
        self._remember(password)
        self._call("PUT", f"v1/security/users/{quote(user_id, safe='')}/change-password",
                   text=password)

    # tasks
    def list_tasks(self) -> list[dict[str, Any]] | None:
        """Every scheduled task (`GET v1/tasks`, following `continuationToken`, at most
        TASK_PAGES pages); None when this Nexus has no tasks API (404: before 3.12.1)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        for _ in range(TASK_PAGES):
            path = "v1/tasks" + (f"?continuationToken={quote(token, safe='')}" if token else "")
            response = self._call("GET", path, missing_ok=True)
            if response.status_code == 404:
                return None
            body = self._json(response)
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ServerError("Nexus answered the task list with an unexpected shape.")
            items += [item for item in body["items"] if isinstance(item, dict)]
            token = body.get("continuationToken")
            if not token:
                return items
            if not isinstance(token, str) or token in seen:
                raise ServerError("Nexus answered the task list with an unusable continuation token.")
            seen.add(token)
        raise ServerError(f"Nexus lists tasks over more than {TASK_PAGES} pages.")

    def accepts_password(self, user_id: str, password: Secret) -> bool:
        """Whether Nexus authenticates *user_id* with *password*: a request as that user, since a
        password cannot be read back. Any answer but 401 means the login worked (a push account
        may lack the privilege to list repositories: 403)."""
        self._remember(password)
        response = self._send("GET", "v1/repositories", auth=(user_id, password))
        if response.status_code == 401:
            return False
        if response.status_code >= 500:
            raise ServerError(f"Nexus answered HTTP {response.status_code} to a login check of "
                              f"{user_id!r}{self._detail(response)}.")
        return True


def _location(response: requests.Response) -> str:
    """Where a redirect pointed, without user part, query or fragment: safe to print."""
    location = response.headers.get("Location")
    if not location:
        return "no Location given"
    try:
        parts = urlsplit(urljoin(str(response.url), location))
    except ValueError:
        return "<invalid URL>"
    return mask_userinfo(f"{parts.scheme}://{parts.netloc}{parts.path}")


# Plan -------------------------------------------------------------------------------------------
class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    PRESENT = "present"  # a check only (the cleanup tasks): found
    MISSING = "missing"  # a check only: not found; the output says how to create it
    UNKNOWN = "unknown"  # a check only: this Nexus cannot tell


def docker_address(url: str, http_port: int) -> str:
    """`HOST:PORT` Docker clients use for the repository: the --url host, the connector port."""
    host = urlsplit(url).hostname or ""
    return f"[{host}]:{http_port}" if ":" in host else f"{host}:{http_port}"


@dataclass(frozen=True, kw_only=True)
class SetupOptions:
    repository: str
    http_port: int
    anonymous_pull: bool | None = None  # None: leave anonymous access as it is
    blob_store: str = "default"


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """One step of the setup: what it is about, what happened (or would), and the details."""

    step: str
    outcome: Outcome
    detail: str
    dry_run: bool = False

    @property
    def verdict(self) -> str:
        if self.dry_run and self.outcome in (Outcome.CREATED, Outcome.UPDATED):
            return f"would be {self.outcome.value}"
        return self.outcome.value


def desired_repository(options: SetupOptions) -> dict[str, Any]:
    """The create body for a docker hosted repository on an HTTP connector (registry-notes §4)."""
    return {
        "name": options.repository,
        "online": True,
        "storage": {"blobStoreName": options.blob_store, "strictContentTypeValidation": True,
                    "writePolicy": "ALLOW", "latestPolicy": True},
        "docker": {"v1Enabled": False, "forceBasicAuth": False, "httpPort": options.http_port},
    }


def _repository_update(current: Mapping[str, Any], options: SetupOptions
                       ) -> tuple[dict[str, Any], list[str]]:
    """The PUT body (the current settings with ours applied) and the list of differences."""
    docker = dict(current.get("docker") or {})
    changes = []
    wanted = {"httpPort": options.http_port, "forceBasicAuth": False, "v1Enabled": False}
    for key, value in wanted.items():
        if docker.get(key) != value:
            changes.append(f"{key} {docker.get(key)!r} -> {value!r}")
            docker[key] = value
    online = current.get("online")
    if online is not True:
        changes.append(f"online {online!r} -> True")
    storage = dict(current.get("storage") or {})
    body: dict[str, Any] = {"name": current.get("name", options.repository), "online": True,
                            "storage": storage, "docker": docker}
    for key in ("cleanup", "component"):
        if current.get(key) is not None:
            body[key] = current[key]
    return body, changes


def ensure_repository(client: NexusClient, options: SetupOptions, *, dry_run: bool) -> StepResult:
    step = f"repository {options.repository}"
    current = client.get_docker_hosted(options.repository)
    settings = f"httpPort {options.http_port}, forceBasicAuth false, v1Enabled false"
    if current is None:
        if not dry_run:
            try:
                client.create_docker_hosted(desired_repository(options))
            except UsageError:
                # 400 means "exists" or "invalid": a concurrent create shows up on a re-read.
                current = client.get_docker_hosted(options.repository)
                if current is None:
                    raise
        if current is None:
            return StepResult(step=step, outcome=Outcome.CREATED, dry_run=dry_run,
                              detail=f"docker hosted, blob store {options.blob_store}, {settings}")
    body, changes = _repository_update(current, options)
    store = (current.get("storage") or {}).get("blobStoreName")
    note = (f" (it stays in blob store {store!r}; Nexus cannot move a repository)"
            if store and store != options.blob_store else "")
    if not changes:
        return StepResult(step=step, outcome=Outcome.UNCHANGED, detail=settings + note)
    if not dry_run:
        client.update_docker_hosted(options.repository, body)
    return StepResult(step=step, outcome=Outcome.UPDATED, dry_run=dry_run,
                      detail=", ".join(changes) + note)


def ensure_docker_token_realm(client: NexusClient, *, dry_run: bool) -> StepResult:
    step = "realm DockerToken"
    available = client.available_realms()
    if DOCKER_TOKEN_REALM not in available:
        raise NotFoundError(
            "This Nexus offers no DockerToken (Docker Bearer Token) realm.",
            hint="Docker support needs Nexus Repository 3 with the docker format; check the version.",
        )
    active = client.active_realms()
    if DOCKER_TOKEN_REALM in active:
        return StepResult(step=step, outcome=Outcome.UNCHANGED,
                          detail="active: " + ", ".join(active))
    wanted = [*active, DOCKER_TOKEN_REALM]  # the PUT replaces the whole ordered list
    if not dry_run:
        client.set_active_realms(wanted)
    return StepResult(step=step, outcome=Outcome.UPDATED, dry_run=dry_run,
                      detail="active: " + ", ".join(wanted))


def ensure_anonymous(client: NexusClient, enabled: bool | None, *, dry_run: bool) -> StepResult:
    step = "anonymous access"
    current = client.get_anonymous()
    state = "enabled" if current.get("enabled") else "disabled"
    if enabled is None:
        return StepResult(step=step, outcome=Outcome.SKIPPED,
                          detail=f"{state} (not asked to change: --anonymous-pull/--no-anonymous-pull)")
    if bool(current.get("enabled")) == enabled:
        return StepResult(step=step, outcome=Outcome.UNCHANGED, detail=state)
    body = {
        "enabled": enabled,
        "userId": current.get("userId") or DEFAULT_ANONYMOUS_USER,
        "realmName": current.get("realmName") or DEFAULT_ANONYMOUS_REALM,
    }
    if not dry_run:
        client.set_anonymous(body)
    return StepResult(step=step, outcome=Outcome.UPDATED, dry_run=dry_run,
                      detail=f"{state} -> {'enabled' if enabled else 'disabled'}")


def setup(client: NexusClient, options: SetupOptions, *, dry_run: bool = False) -> list[StepResult]:
    """Make Nexus serve Docker on `options.http_port`; each step is skipped when already done."""
    return [
        ensure_repository(client, options, dry_run=dry_run),
        ensure_docker_token_realm(client, dry_run=dry_run),
        ensure_anonymous(client, options.anonymous_pull, dry_run=dry_run),
    ]


# Cleanup tasks ----------------------------------------------------------------------------------
# What gives a docker repository's space back after `jr registry prune` deletes manifests: Nexus
# marks them deleted; "Docker - Delete unused manifests and images" (type repository.docker.gc)
# removes what no tag references, and "Admin - Compact blob store" (blobstore.compact) frees the
# blobs on disk. Type ids and names: sonatype/nexus-public CompactBlobStoreTaskDescriptor
# (TYPE_ID "blobstore.compact", "Admin - Compact blob store"); sonatype-nexus-community/
# terraform-provider-sonatyperepo (TASK_TYPE_REPOSITORY_DOCKER_GC "repository.docker.gc",
# "Docker - Delete unused manifests and images"). The list's shape, `{items: [TaskXO{id, name,
# type, message, currentState, lastRunResult, nextRun, lastRun}], continuationToken}`:
# sonatype-nexus-community/nexus-repo-api-client-go docs/TasksAPI.md, PageTaskXO.md, TaskXO.md.
DOCKER_GC_TASK = "repository.docker.gc"
COMPACT_TASK = "blobstore.compact"
TASK_TITLES = {DOCKER_GC_TASK: "Docker - Delete unused manifests and images",
               COMPACT_TASK: "Admin - Compact blob store"}


def task_creation_steps(type_id: str, repository: str, blob_store: str) -> list[str]:
    """How to create the cleanup task *type_id* in the Nexus UI, step by step."""
    start = ("Sign in to Nexus as an administrator; Settings (gear icon) > System > Tasks > "
             f"Create task > \"{TASK_TITLES[type_id]}\".")
    if type_id == DOCKER_GC_TASK:
        return [start, f"Task name: docker-gc-{repository}; Repository: {repository}; Deploy "
                "offset in hours: 24 (what was pushed in the last day stays).",
                "Task frequency: Daily, e.g. 01:00; Create task."]
    return [start, f"Task name: compact-{blob_store}; Blob store: {blob_store}.",
            "Task frequency: Daily, after the Docker task, e.g. 03:00; Create task."]


def check_cleanup_tasks(client: NexusClient) -> list[StepResult]:
    """Whether the two cleanup tasks exist (by type; the list does not show their settings)."""
    tasks = client.list_tasks()
    if tasks is None:
        return [StepResult(step=f"task {type_id}", outcome=Outcome.UNKNOWN,
                           detail="this Nexus has no /service/rest/v1/tasks; look in System > Tasks")
                for type_id in TASK_TITLES]
    results = []
    for type_id, title in TASK_TITLES.items():
        names = [str(task.get("name") or task.get("id") or "?") for task in tasks
                 if task.get("type") == type_id]
        if names:
            results.append(StepResult(step=f"task {type_id}", outcome=Outcome.PRESENT,
                                      detail=", ".join(sorted(names)[:5])))
        else:
            results.append(StepResult(step=f"task {type_id}", outcome=Outcome.MISSING,
                                      detail=f"no \"{title}\" task: deleted images keep their space"))
    return results
