"""A Nexus Repository 3 REST emulator on 127.0.0.1, for `jr nexus setup` and `jr doctor` tests.

No real Nexus can be installed here, so this serves the part of Sonatype's documented API the tool
uses, and enforces what the documentation says the server enforces (registry-notes.md §4):
  * every `/service/rest/...` call needs Basic credentials of an admin: 401 without or with wrong
    ones (with `WWW-Authenticate: BASIC realm="Sonatype Nexus Repository Manager"`, §3.1), 403 for
    a user without admin rights;
  * `POST /service/rest/v1/repositories/docker/hosted` validates the required fields of
    `DockerHostedRepositoryApiRequest` (`name`, `online`, `storage.{blobStoreName,
    strictContentTypeValidation, writePolicy}`, `docker.{forceBasicAuth, v1Enabled}`) and answers
    201, or 400 when the repository exists or a field is invalid; `GET`/`PUT .../docker/hosted/<name>`
    read and update (404 when absent);
  * `GET /service/rest/v1/security/realms/available` lists `{id, name}`; `PUT .../realms/active`
    takes an ordered id list that replaces the active list, each id must be an available realm;
    older versions serve the realms under `beta/` (option `realms_api="beta"`);
  * `GET`/`PUT /service/rest/v1/security/anonymous` with `{enabled, userId, realmName}`;
  * the security API of the push account (registry-notes.md §7): roles (`GET`/`POST
    .../security/roles`, `GET`/`PUT .../roles/<id>`: 404 when absent, ids must match, a 400 naming
    an unknown privilege or role), users (`GET .../security/users?userId=` a prefix match, listed
    without passwords; `POST .../users` with exactly `userId, firstName, lastName, emailAddress,
    password, status, roles`; `PUT .../users/<id>` with `source` and no password;
    `PUT .../users/<id>/change-password` only as text/plain), JSON bodies only as application/json
    (415 otherwise), unknown fields refused; the privileges `nx-repository-view-docker-<repo>-*`
    exist once the repository does; a user's roles grant admin (`nx-all`) or push (`...-add`)
    rights, and only an active user authenticates;
  * `GET /service/rest/v1/repositories`: any authenticated user, the repositories it may browse.
  * `GET /service/rest/v1/tasks[?type=…][&continuationToken=…]`: a page `{items, continuationToken}`
    of TaskXO `{id, name, type, message, currentState, lastRunResult, nextRun, lastRun}`, admin
    only (sonatype-nexus-community/nexus-repo-api-client-go docs/TasksAPI.md, PageTaskXO.md,
    TaskXO.md; the type ids `repository.docker.gc` and `blobstore.compact`: nexus-public's
    CompactBlobStoreTaskDescriptor, terraform-provider-sonatyperepo's task constants). The page
    size is not documented; `tasks_page` sets it so that paging is exercised. With
    `tasks_api=False` the path answers 404, as Nexus before 3.12.1 (tasks were under beta/).
The 400 body shape (a list of `{id, message}`) is not in the notes; the client only shows its text.

Optionally a repository's HTTP connector is served too (`connector(name)`), answering `/v2/` as
Nexus does per §3.1 (secondary sources): `BASIC realm="Sonatype Nexus Repository Manager"` when the
repository has forceBasicAuth true or the DockerToken realm is not active, else
`Bearer realm="http://<host>:<port>/v2/token",service="<host>:<port>"`; a token from `/v2/token`
with Basic credentials; blob uploads opened (202) and cancelled (204), refused (403) for users
without write access.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support import services

BASIC_CHALLENGE = 'BASIC realm="Sonatype Nexus Repository Manager"'
NAME_RE = re.compile(r"^[a-zA-Z0-9\-][a-zA-Z0-9_\-.]*$")
WRITE_POLICIES = {"ALLOW", "ALLOW_ONCE", "DENY"}

# Realm ids and names as listed by GET /security/realms/available (help.sonatype.com Realms page).
AVAILABLE_REALMS = [
    {"id": "NexusAuthenticatingRealm", "name": "Local Authenticating Realm"},
    {"id": "NexusAuthorizingRealm", "name": "Local Authorizing Realm"},
    {"id": "DockerToken", "name": "Docker Bearer Token Realm"},
    {"id": "NpmToken", "name": "npm Bearer Token Realm"},
    {"id": "LdapRealm", "name": "LDAP Realm"},
    {"id": "rutauth-realm", "name": "Rut Auth Realm"},
]

# Roles every Nexus has (read-only); the privileges a fresh Nexus lists besides the per-repository ones.
BUILTIN_ROLES: list[dict[str, Any]] = [
    {"id": "nx-admin", "source": "default", "name": "nx-admin", "description": "Administrator Role",
     "readOnly": True, "privileges": ["nx-all"], "roles": []},
    {"id": "nx-anonymous", "source": "default", "name": "nx-anonymous",
     "description": "Anonymous Role", "readOnly": True,
     "privileges": ["nx-healthcheck-read", "nx-search-read", "nx-repository-view-*-*-browse",
                    "nx-repository-view-*-*-read"], "roles": []},
]
BUILTIN_PRIVILEGES = {"nx-all", "nx-healthcheck-read", "nx-search-read", "nx-repository-view-*-*-*",
                      "nx-repository-view-*-*-browse", "nx-repository-view-*-*-read",
                      "nx-users-read", "nx-roles-read"}
REPOSITORY_ACTIONS = ("browse", "read", "edit", "add", "delete", "*")
USER_STATUSES = {"active", "locked", "disabled", "changepassword"}
USER_CREATE_FIELDS = ("userId", "firstName", "lastName", "emailAddress", "password", "status", "roles")
USER_UPDATE_FIELDS = ("userId", "firstName", "lastName", "emailAddress", "source", "status", "roles")
USER_UPDATE_OPTIONAL = ("readOnly", "externalRoles")
ROLE_FIELDS = ("id", "name", "description", "privileges", "roles")


@dataclass
class NexusState:
    """What the emulated server holds; tests read and preset it."""

    users: dict[str, str] = field(default_factory=lambda: {"admin": "admin123"})
    admins: set[str] = field(default_factory=lambda: {"admin"})
    writers: set[str] = field(default_factory=lambda: {"admin"})
    blob_stores: set[str] = field(default_factory=lambda: {"default"})
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)
    available_realms: list[dict[str, str]] = field(default_factory=lambda: list(AVAILABLE_REALMS))
    active_realms: list[str] = field(
        default_factory=lambda: ["NexusAuthenticatingRealm", "NexusAuthorizingRealm"])
    anonymous: dict[str, Any] = field(default_factory=lambda: {
        "enabled": False, "userId": "anonymous", "realmName": "NexusAuthorizingRealm"})
    realms_api: str = "v1"
    # Some servers quote the rejected request in a 400; the client must not pass that on.
    echo_bad_requests: bool = False
    roles: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {role["id"]: json.loads(json.dumps(role)) for role in BUILTIN_ROLES})
    # Security API records (no passwords); a user only in `users` gets one on first use.
    user_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, body (JSON or text)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    # Test hook, not Nexus behaviour: (method or "*", path prefix) -> (3xx status, Location).
    redirects: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)  # TaskXO records (see `task`)
    tasks_page: int = 2
    tasks_api: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [entry for entry in self.log if entry[0] != "GET"]

    def record(self, user_id: str) -> dict[str, Any] | None:
        if user_id not in self.user_records and user_id in self.users:
            self.user_records[user_id] = {
                "userId": user_id, "firstName": user_id, "lastName": "User",
                "emailAddress": f"{user_id}@example.org", "source": "default", "status": "active",
                "readOnly": False, "roles": ["nx-admin"] if user_id in self.admins else [],
                "externalRoles": [],
            }
        return self.user_records.get(user_id)

    def privileges_of(self, user_id: str) -> set[str]:
        record = self.record(user_id)
        pending, seen, privileges = list(record["roles"] if record else []), set(), set()
        while pending:  # roles contain roles; `seen` stops a cycle
            role = self.roles.get(pending.pop())
            if role is None or role["id"] in seen:
                continue
            seen.add(role["id"])
            privileges.update(role["privileges"])
            pending.extend(role["roles"])
        return privileges

    def known_privileges(self) -> set[str]:
        """As Nexus: a repository's view privileges appear when the repository is created."""
        return BUILTIN_PRIVILEGES | {f"nx-repository-view-docker-{name}-{action}"
                                     for name in self.repositories for action in REPOSITORY_ACTIONS}

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admins or "nx-all" in self.privileges_of(user_id)

    def may(self, user_id: str, repository: str, action: str) -> bool:
        held = self.privileges_of(user_id)
        return bool({"nx-all", f"nx-repository-view-docker-{repository}-{action}",
                     f"nx-repository-view-docker-{repository}-*", f"nx-repository-view-*-*-{action}",
                     "nx-repository-view-*-*-*"} & held)


def task(type_id: str, name: str) -> dict[str, Any]:
    """A TaskXO as `GET /service/rest/v1/tasks` lists it."""
    return {"id": str(uuid.uuid4()), "name": name, "type": type_id, "message": None,
            "currentState": "WAITING", "lastRunResult": None,
            "nextRun": "2030-01-01T01:00:00.000+00:00", "lastRun": None}


class _BadRequest(Exception):
    def __init__(self, field_id: str, message: str) -> None:
        super().__init__(message)
        self.field_id = field_id
        self.message = message


def _require(body: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    value = body.get(key)
    if value is None:
        raise _BadRequest(f"PARAMETER {where}{key}", "may not be null")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _BadRequest(f"PARAMETER {where}{key}", f"must be a {kind.__name__}")
    return value


def _validate_repository(state: NexusState, body: Any) -> dict[str, Any]:
    """DockerHostedRepositoryApiRequest: required fields and their types; returns the stored form."""
    if not isinstance(body, dict):
        raise _BadRequest("*", "request body must be a JSON object")
    name = _require(body, "name", str)
    if not NAME_RE.match(name):
        raise _BadRequest("PARAMETER name", "Only letters, digits, underscores(_), hyphens(-), and "
                          "dots(.) are allowed and may not start with underscore or dot.")
    online = _require(body, "online", bool)
    storage = _require(body, "storage", dict)
    blob_store = _require(storage, "blobStoreName", str, "storage.")
    if blob_store not in state.blob_stores:
        raise _BadRequest("PARAMETER storage.blobStoreName", f"Blob store {blob_store} does not exist")
    strict = _require(storage, "strictContentTypeValidation", bool, "storage.")
    policy = _require(storage, "writePolicy", str, "storage.")
    if policy.upper() not in WRITE_POLICIES:
        raise _BadRequest("PARAMETER storage.writePolicy", "must be ALLOW, ALLOW_ONCE or DENY")
    docker = _require(body, "docker", dict)
    force_basic = _require(docker, "forceBasicAuth", bool, "docker.")
    v1 = _require(docker, "v1Enabled", bool, "docker.")
    port = docker.get("httpPort")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)
                             or not 0 < port < 65536):
        raise _BadRequest("PARAMETER docker.httpPort", "must be a port number")
    return {
        "name": name, "format": "docker", "type": "hosted", "online": online,
        "storage": {"blobStoreName": blob_store, "strictContentTypeValidation": strict,
                    "writePolicy": policy.upper(), "latestPolicy": bool(storage.get("latestPolicy"))},
        "cleanup": body.get("cleanup"),
        "component": body.get("component") or {"proprietaryComponents": False},
        "docker": {"v1Enabled": v1, "forceBasicAuth": force_basic, "httpPort": port,
                   "httpsPort": docker.get("httpsPort"), "subdomain": docker.get("subdomain")},
    }


def _exact_fields(body: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()
                  ) -> dict[str, Any]:
    """A JSON object with the documented fields only; each required one present."""
    if not isinstance(body, dict):
        raise _BadRequest("*", "request body must be a JSON object")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise _BadRequest(f"PARAMETER {unknown[0]}", f"Unrecognized field {unknown[0]}")
    for key in required:
        if body.get(key) is None or body.get(key) == "":
            raise _BadRequest(f"PARAMETER {key}", "may not be empty")
    return body


def _string_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _BadRequest(f"PARAMETER {key}", "must be a list of strings")
    return list(value)


def _check_roles(state: NexusState, roles: list[str], *, own_id: str | None = None) -> None:
    unknown = [role for role in roles if role not in state.roles or role == own_id]
    if unknown:
        raise _BadRequest("PARAMETER roles", f"Unknown roles: {', '.join(unknown)}")


def _validate_role(state: NexusState, body: Any) -> dict[str, Any]:
    """RoleXORequest; returns the stored RoleXOResponse."""
    body = _exact_fields(body, ("id", "name"), ("description", "privileges", "roles"))
    for key in ("id", "name", "description"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise _BadRequest(f"PARAMETER {key}", "must be a string")
    privileges = _string_list(body, "privileges")
    unknown = [p for p in privileges if p not in state.known_privileges()]
    if unknown:
        raise _BadRequest("PARAMETER privileges", f"Unknown privileges: {', '.join(unknown)}")
    roles = _string_list(body, "roles")
    _check_roles(state, roles, own_id=body["id"])
    return {"id": body["id"], "source": "default", "name": body["name"],
            "description": body.get("description") or "", "readOnly": False,
            "privileges": privileges, "roles": roles}


def _validate_user(state: NexusState, body: Any, *, create: bool) -> dict[str, Any]:
    """ApiCreateUser (create) or ApiUser (update); returns the stored record, no password."""
    if create:
        body = _exact_fields(body, USER_CREATE_FIELDS)
    else:
        body = _exact_fields(body, USER_UPDATE_FIELDS, USER_UPDATE_OPTIONAL)
    for key in ("userId", "firstName", "lastName", "emailAddress", "status", "password", "source"):
        if key in body and not isinstance(body[key], str):
            raise _BadRequest(f"PARAMETER {key}", "must be a string")
    if not re.match(r"^[^@\s]+@[^@\s]+$", body["emailAddress"]):
        raise _BadRequest("PARAMETER emailAddress", "not a well-formed email address")
    if body["status"] not in USER_STATUSES:
        raise _BadRequest("PARAMETER status", f"must be one of {sorted(USER_STATUSES)}")
    roles = _string_list(body, "roles")
    if not roles:
        raise _BadRequest("PARAMETER roles", "may not be empty")
    _check_roles(state, roles)
    return {"userId": body["userId"], "firstName": body["firstName"], "lastName": body["lastName"],
            "emailAddress": body["emailAddress"], "source": body.get("source", "default"),
            "status": body["status"], "readOnly": False, "roles": roles,
            "externalRoles": _string_list(body, "externalRoles")}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # plumbing
    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def _body(self) -> Any:
        """JSON, or the text of a text/plain body (change-password)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        if self._content_type() == "text/plain":
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return _INVALID
        try:
            return json.loads(raw)
        except ValueError:
            return _INVALID

    def _basic_user(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        state = self.server.state
        if not password or state.users.get(user) != password:
            return None
        record = state.record(user)
        return user if record is None or record["status"] == "active" else None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        body = self._body() if method in ("POST", "PUT") else None
        parts = urlsplit(self.path)
        path = parts.path
        self.query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        state = self.server.state
        with state.lock:
            state.log.append((method, path, body))
            for (redirect_method, prefix), (status, location) in state.redirects.items():
                if redirect_method in ("*", method) and path.startswith(prefix):
                    self._send(status, None, {"Location": location})
                    return
            if self.server.connector is not None:
                self._connector(method, path)
                return
            self._rest(method, path, body)

    # REST API
    def _rest(self, method: str, path: str, body: Any) -> None:
        state = self.server.state
        if not path.startswith("/service/rest/"):
            self._send(404, {"message": "Not Found"})  # e.g. /v2/ on the web port
            return
        user = self._basic_user()
        if user is None:
            self._send(401, None, {"WWW-Authenticate": BASIC_CHALLENGE})
            return
        rest = path[len("/service/rest/"):]
        if rest == "v1/repositories" and method == "GET":  # any user: what it may browse
            self._send(200, [{"name": name, "format": repo.get("format", "docker"),
                              "type": repo.get("type", "hosted"), "url": repo.get("url"),
                              "attributes": {}}
                             for name, repo in state.repositories.items()
                             if state.may(user, name, "browse")])
            return
        if not state.is_admin(user):
            self._send(403, None)
            return
        if method in ("POST", "PUT") and body is not None:
            wanted = "text/plain" if rest.endswith("/change-password") else "application/json"
            if self._content_type() != wanted:
                self._send(415, {"message": f"Content-Type must be {wanted}"})
                return
        if body is _INVALID:
            self._send(400, [{"id": "*", "message": "Unable to parse the request body"}])
            return
        try:
            self._route(method, rest, body)
        except _BadRequest as exc:
            echo = f" (request: {json.dumps(body)})" if state.echo_bad_requests else ""
            self._send(400, [{"id": exc.field_id, "message": exc.message + echo}])

    def _route(self, method: str, rest: str, body: Any) -> None:
        state = self.server.state
        hosted = "v1/repositories/docker/hosted"
        if rest == hosted and method == "POST":
            repo = _validate_repository(state, body)
            if repo["name"] in state.repositories:
                raise _BadRequest("PARAMETER name", f"Repository {repo['name']} already exists")
            repo["url"] = f"{self.server.base_url}/repository/{repo['name']}"
            state.repositories[repo["name"]] = repo
            self._send(201, None)
            return
        if rest.startswith(hosted + "/"):
            name = rest[len(hosted) + 1:]
            current = state.repositories.get(name)
            if method == "GET":
                self._send(200, current) if current else self._send(404, None)
                return
            if method == "PUT":
                if current is None:
                    self._send(404, None)
                    return
                repo = _validate_repository(state, body)
                if repo["name"] != name:
                    raise _BadRequest("PARAMETER name", "Renaming a repository is not supported")
                repo["url"] = current["url"]
                state.repositories[name] = repo
                self._send(204, None)
                return
        realms = f"{state.realms_api}/security/realms/"
        if rest == realms + "available" and method == "GET":
            self._send(200, state.available_realms)
            return
        if rest == realms + "active":
            if method == "GET":
                self._send(200, state.active_realms)
                return
            if method == "PUT":
                ids = {realm["id"] for realm in state.available_realms}
                if not isinstance(body, list) or not all(isinstance(x, str) for x in body):
                    raise _BadRequest("*", "body must be a JSON array of realm ids")
                unknown = [x for x in body if x not in ids]
                if unknown:
                    raise _BadRequest("*", f"Unknown realm(s): {', '.join(unknown)}")
                if len(set(body)) != len(body):
                    raise _BadRequest("*", "Duplicate realm ids")
                state.active_realms = list(body)  # the ordered list replaces the old one
                self._send(204, None)
                return
        if rest == "v1/security/anonymous":
            if method == "GET":
                self._send(200, state.anonymous)
                return
            if method == "PUT":
                if not isinstance(body, dict):
                    raise _BadRequest("*", "request body must be a JSON object")
                enabled = _require(body, "enabled", bool)
                user_id = _require(body, "userId", str)
                realm = _require(body, "realmName", str)
                if realm not in {r["id"] for r in state.available_realms}:
                    raise _BadRequest("PARAMETER realmName", f"Unknown realm {realm}")
                state.anonymous = {"enabled": enabled, "userId": user_id, "realmName": realm}
                self._send(200, state.anonymous)
                return
        if rest == "v1/tasks" and method == "GET" and state.tasks_api:
            wanted = self.query.get("type")
            listed = [t for t in state.tasks if wanted in (None, t["type"])]
            start = int(self.query.get("continuationToken") or 0)
            end = start + state.tasks_page
            self._send(200, {"items": listed[start:end],
                             "continuationToken": str(end) if end < len(listed) else None})
            return
        if rest.startswith("v1/security/roles"):
            self._roles(method, rest[len("v1/security/roles"):], body)
            return
        if rest.startswith("v1/security/users"):
            self._users(method, rest[len("v1/security/users"):], body)
            return
        self._send(404, None)

    def _roles(self, method: str, tail: str, body: Any) -> None:
        state = self.server.state
        if tail == "" and method == "GET":
            self._send(200, list(state.roles.values()))
            return
        if tail == "" and method == "POST":
            role = _validate_role(state, body)
            if role["id"] in state.roles:
                raise _BadRequest("PARAMETER id", f"Role {role['id']} already exists")
            state.roles[role["id"]] = role
            self._send(200, role)
            return
        role_id = unquote(tail[1:]) if tail.startswith("/") and "/" not in tail[1:] else None
        current = state.roles.get(role_id or "")
        if role_id is None or method not in ("GET", "PUT"):
            self._send(404, None)
            return
        if current is None:
            self._send(404, {"message": f"Role {role_id} not found"})
            return
        if method == "GET":
            self._send(200, current)
            return
        role = _validate_role(state, body)
        if role["id"] != role_id:
            raise _BadRequest("PARAMETER id", f"The role id {role['id']} does not match {role_id}")
        if current["readOnly"]:
            raise _BadRequest("*", f"Role {role_id} is read only")
        state.roles[role_id] = role
        self._send(204, None)

    def _users(self, method: str, tail: str, body: Any) -> None:
        state = self.server.state
        for user_id in state.users:
            state.record(user_id)
        if tail == "" and method == "GET":
            prefix, source = self.query.get("userId", ""), self.query.get("source")
            self._send(200, [dict(record) for uid, record in sorted(state.user_records.items())
                             if uid.startswith(prefix) and source in (None, record["source"])])
            return
        if tail == "" and method == "POST":
            record = _validate_user(state, body, create=True)
            if record["userId"] in state.user_records:
                raise _BadRequest("PARAMETER userId", f"User {record['userId']} already exists")
            state.users[record["userId"]] = body["password"]
            state.user_records[record["userId"]] = record
            self._send(200, record)
            return
        segments = tail[1:].split("/") if tail.startswith("/") else []
        if method != "PUT" or len(segments) not in (1, 2) or segments[1:] not in ([], ["change-password"]):
            self._send(404, None)
            return
        user_id = unquote(segments[0])
        current = state.user_records.get(user_id)
        if current is None:
            self._send(404, {"message": f"User {user_id} not found"})
            return
        if segments[1:] == ["change-password"]:
            if not isinstance(body, str) or not body:
                raise _BadRequest("*", "the new password may not be empty")
            state.users[user_id] = body
            self._send(204, None)
            return
        record = _validate_user(state, body, create=False)
        if record["userId"] != user_id:
            raise _BadRequest("PARAMETER userId", f"The user id {record['userId']} does not match "
                              f"{user_id}")
        if record["source"] != current["source"]:
            raise _BadRequest("PARAMETER source", f"User {user_id} is in source {current['source']}")
        state.user_records[user_id] = record
        self._send(204, None)

    # Docker connector
    def _connector(self, method: str, path: str) -> None:
        state = self.server.state
        repo = state.repositories.get(self.server.connector or "")
        if repo is None or repo["docker"].get("httpPort") != self.server.server_address[1]:
            self._send(404, None)
            return
        host = f"127.0.0.1:{self.server.server_address[1]}"
        bearer = (not repo["docker"]["forceBasicAuth"]) and "DockerToken" in state.active_realms
        if path == "/v2/token" and method == "GET":
            if not bearer:
                self._send(404, None)
                return
            user = self._basic_user()
            if user is None and self.headers.get("Authorization"):
                self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                return
            token = secrets.token_hex(16)
            state.tokens[token] = user or "anonymous"
            self._send(200, {"token": token})
            return
        user: str | None
        header = self.headers.get("Authorization") or ""
        if bearer:
            user = state.tokens.get(header[7:]) if header.lower().startswith("bearer ") else None
            challenge = f'Bearer realm="http://{host}/v2/token",service="{host}"'
        else:
            user = self._basic_user()
            challenge = BASIC_CHALLENGE
        if user is None:
            self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "Access denied"}]},
                       {"WWW-Authenticate": challenge})
            return
        if path == "/v2/" and method == "GET":
            self._send(200, {})
            return
        match = re.match(r"^/v2/(.+)/blobs/uploads/([^/]*)$", path)
        if match and method == "POST" and not match.group(2):
            if user not in state.writers and not state.may(user, self.server.connector or "", "add"):
                self._send(403, {"errors": [{"code": "DENIED",
                                             "message": "requested access to the resource is denied"}]})
                return
            self._send(202, None, {"Location": f"/v2/{match.group(1)}/blobs/uploads/{uuid.uuid4()}"})
            return
        if match and method == "DELETE" and match.group(2):
            self._send(204, None)
            return
        self._send(404, None)


_INVALID = object()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: NexusState, connector: str | None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state
        self.connector = connector
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}"


@dataclass
class Nexus:
    url: str
    state: NexusState
    server: _Server

    @contextlib.contextmanager
    def connector(self, repository: str, port: int) -> Iterator[str]:
        """Serve *repository*'s HTTP connector on *port*; yields `127.0.0.1:PORT`."""
        with _serve(_Server(port, self.state, repository)):
            yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def _serve(server: _Server) -> Iterator[_Server]:
    with services.serve_in_thread(server):
        yield server


@contextlib.contextmanager
def nexus(state: NexusState | None = None) -> Iterator[Nexus]:
    """Start the emulator's REST API on a free 127.0.0.1 port (the "8081" web port)."""
    server = _Server(0, state or NexusState(), None)
    with _serve(server):
        yield Nexus(url=server.base_url, state=server.state, server=server)
