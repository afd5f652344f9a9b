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
  * `GET`/`PUT /service/rest/v1/security/anonymous` with `{enabled, userId, realmName}`.
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
from urllib.parse import urlsplit

from tests import services

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
    log: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, JSON body
    tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    lock: threading.Lock = field(default_factory=threading.Lock)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [entry for entry in self.log if entry[0] != "GET"]


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

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
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
        return user if state.users.get(user) == password and password else None

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
        path = urlsplit(self.path).path
        state = self.server.state
        with state.lock:
            state.log.append((method, path, body))
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
        if user not in state.admins:
            self._send(403, None)
            return
        if body is _INVALID:
            self._send(400, [{"id": "*", "message": "Unable to parse the request body"}])
            return
        rest = path[len("/service/rest/"):]
        try:
            self._route(method, rest, body)
        except _BadRequest as exc:
            self._send(400, [{"id": exc.field_id, "message": exc.message}])

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
        self._send(404, None)

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
            if user not in state.writers:
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
