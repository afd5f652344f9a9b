"""A Jenkins emulator for the tests: an HTTP server on 127.0.0.1 that answers the endpoints python-jenkins
1.8.3 and our provisioning use, the way real Jenkins does.

No real Jenkins can be installed here, so every behaviour below follows /work/shared/jenkins-api.md
(cited as "spec §N"), which in turn cites the Jenkins, credentials-plugin and cloudbees-folder sources.
Where the emulator does something the spec does not establish, the comment says "not modelled".

What it models: users with a password and API tokens (preemptive Basic auth); 401 for bad credentials,
403 for anonymous; crumbs bound to (user, JSESSIONID) and required on POST for password logins only;
createItem (XML and form paths), config.xml GET/POST, api/json with the exact `_class` values, nested
folders; the system credential store (at /credentials/… and /manage/credentials/…) and folder stores;
a switch for "credentials plugin missing". Every request is logged in memory (method, path, user,
auth kind, body, status) so tests can count requests and look for secrets.

Not modelled (provisioning does not use them): builds, the queue, consoleText, views, copy mode.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import html
import json
import secrets
import socket
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JENKINS_VERSION = "2.479.3"
FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
FREESTYLE_CLASS = "hudson.model.FreeStyleProject"
PIPELINE_CLASS = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
USERNAME_PASSWORD_CLASS = "com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl"
STRING_CREDENTIALS_CLASS = "org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl"

# Root element → item class. XStream accepts the alias or the full class name (spec §3b, §3c, §3d);
# any other root is a class that is not installed → the load fails → 500 (spec §2.3 step 7, §3).
ITEM_ROOTS = {
    "project": FREESTYLE_CLASS,
    FREESTYLE_CLASS: FREESTYLE_CLASS,
    "flow-definition": PIPELINE_CLASS,
    PIPELINE_CLASS: PIPELINE_CLASS,
    FOLDER_CLASS: FOLDER_CLASS,
}
# Root element Jenkins writes back for each class (the alias where one is registered).
ITEM_ALIAS = {FREESTYLE_CLASS: "project", PIPELINE_CLASS: "flow-definition", FOLDER_CLASS: FOLDER_CLASS}

# Jenkins writes `plugin="shortName@version"` on elements owned by a plugin; nothing reads it back
# (spec §3, RobustReflectionConverter). Keyed by element tag or by its `class` attribute.
PLUGIN_OF = {
    "flow-definition": "workflow-job@1436.vfa_244484591f",
    "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition": "workflow-cps@3969.vdc9d3a_efcc6a_",
    "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition": "workflow-cps@3969.vdc9d3a_efcc6a_",
    "hudson.plugins.git.GitSCM": "git@5.5.2",
    "org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper":
        "credentials-binding@681.vf91669a_32e45",
    FOLDER_CLASS: "cloudbees-folder@6.955.v81e2a_35c08d3",
}

# Credential classes the emulated plugins know, their UI type name and which fields hold secrets.
CREDENTIAL_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    USERNAME_PASSWORD_CLASS: ("Username with password", ("password",)),  # spec §3a
    STRING_CREDENTIALS_CLASS: ("Secret text", ("secret",)),  # spec §3a, last bullet
}

# Installed plugins (spec §7b): short name → version. The defaults are what the rendered jobs use
# (`jr jenkins check` asks for them); tests remove or disable entries through `JenkinsState.plugins`.
DEFAULT_PLUGINS = {
    "credentials": "1389.vd7a_b_f5fa_50a_2",
    "credentials-binding": "681.vf91669a_32e45",
    "plain-credentials": "183.va_de8f1dd5a_2b_",
    "workflow-job": "1436.vfa_244484591f",
    "workflow-cps": "3969.vdc9d3a_efcc6a_",
    "workflow-basic-steps": "1058.vcb_fc1e3a_21a_9",
    "workflow-durable-task-step": "1371.vb_7cec8f3b_95e",
    "pipeline-model-definition": "2.2218.v56d0cda_37c72",
    "git": "5.5.2",
    "cloudbees-folder": "6.955.v81e2a_35c08d3",
}
PLUGIN_CLASS = "hudson.PluginWrapper"


@dataclass
class Plugin:
    """One entry of the plugin manager; `enabled` False is a plugin switched off in the UI (it is
    then not active after the restart that follows; spec §7b lists both flags)."""

    version: str
    active: bool = True
    enabled: bool = True


DOMAIN_WRAPPER_CLASS = "com.cloudbees.plugins.credentials.CredentialsStoreAction$DomainWrapper"
UNSAFE_NAME_CHARS = "?*/\\%!@#$^&|<>[]:;"  # Jenkins.checkGoodName (spec §2.3 step 5)
NO_VALID_CRUMB = "No valid crumb was included in the request"  # CrumbFilter (spec §2.2)


def _java_trim(text: str) -> str:
    """String.trim(): Jenkins trims a new item's name this way (spec §2.3 step 5)."""
    return text.strip("".join(chr(c) for c in range(0x21)))


def _printable_name(name: str) -> str:
    """Jenkins' toPrintableName: an ISO control character becomes `\\u<decimal>;`."""
    return "".join(f"\\u{ord(ch)};" if _is_iso_control(ch) else ch for ch in name)


def _is_iso_control(ch: str) -> bool:
    return ord(ch) <= 0x1F or 0x7F <= ord(ch) <= 0x9F


def check_good_name(name: str) -> str | None:
    """Jenkins.checkGoodName: None when Jenkins accepts *name*, else its exact message (spec §2.3 step 5)."""
    if not name:
        return "No name is specified"
    for reserved in (".", ".."):
        if _java_trim(name) == reserved:
            return f"“{reserved}” is not an allowed name"
    for ch in name:
        if _is_iso_control(ch):
            return f"No control code is allowed: {_printable_name(name)}"
        if ch in UNSAFE_NAME_CHARS:
            return f"‘{ch}’ is an unsafe character"
    if _java_trim(name).endswith("."):  # SECURITY-2424, since 2.315
        return "A name cannot end with ‘.’"
    return None


def jetty_header_value(value: str) -> str:
    """How Jetty 12 puts a header value on the wire: a char above 0xFF or a CTL (except HTAB) becomes '?'.

    Jenkins' X-Error carries the Failure message with typographic quotes (‘ ’ “ ”), which are not
    ISO-8859-1; Jetty's HttpGenerator.putSanitisedValue replaces them (jetty/jetty.project
    jetty-core/jetty-http/src/main/java/org/eclipse/jetty/http/HttpGenerator.java). The exact message
    stays in the HTML body (error.jelly).
    """
    return "".join("?" if ord(c) > 0xFF or (ord(c) <= 0x1F and c != "\t") else c for c in value)


# --------------------------------------------------------------------------------------------------
# XML as XStream writes it


def _escape_text(text: str) -> str:
    # XStream's PrettyPrintWriter escapes these five, and CR as &#xd;.
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;").replace("\r", "&#xd;"))


def xstream_serialize(elem: ET.Element, *, declaration: bool, add_plugins: bool = True) -> str:
    """Serialise *elem* the way Jenkins re-serialises a config: 2-space indent, `<x/>` for empty
    elements, XStream escaping, and `plugin="…"` attributes added on plugin-owned elements."""
    lines: list[str] = []
    if declaration:
        lines.append('<?xml version="1.1" encoding="UTF-8"?>')  # XStream2.toXMLUTF8 (spec §2.4)

    def emit(node: ET.Element, depth: int) -> None:
        attrs = dict(node.attrib)
        owner = PLUGIN_OF.get(node.tag) or PLUGIN_OF.get(attrs.get("class", ""))
        if add_plugins and owner:
            attrs["plugin"] = owner
        attr_text = "".join(f' {k}="{_escape_text(v)}"' for k, v in attrs.items())
        pad = "  " * depth
        children = list(node)
        if children:
            lines.append(f"{pad}<{node.tag}{attr_text}>")
            for child in children:
                emit(child, depth + 1)
            lines.append(f"{pad}</{node.tag}>")
        elif node.text:
            lines.append(f"{pad}<{node.tag}{attr_text}>{_escape_text(node.text)}</{node.tag}>")
        else:
            lines.append(f"{pad}<{node.tag}{attr_text}/>")

    emit(elem, 0)
    return "\n".join(lines)


def _parse_xml(body: bytes) -> ET.Element | None:
    try:
        return ET.fromstring(body)  # noqa: S314 - the emulator only parses what the tests send it
    except ET.ParseError:
        return None


def _default_item_xml(class_name: str) -> ET.Element:
    """What a form-created item (empty, then saved) looks like."""
    root = ET.Element(ITEM_ALIAS[class_name])
    for tag in ("actions", "description", "properties"):
        ET.SubElement(root, tag)
    if class_name == FOLDER_CLASS:
        ET.SubElement(root, "healthMetrics")
    else:
        ET.SubElement(root, "disabled").text = "false"
    return root


# --------------------------------------------------------------------------------------------------
# State


@dataclass
class User:
    name: str
    password: str
    tokens: set[str] = field(default_factory=set)
    can_write: bool = True  # False: Overall/Read and Job/Read only, so every write is a 403


@dataclass(frozen=True)
class Fault:
    """A test hook: answer *status* instead of the real handling. A 400 carries *x_error* the way a
    Jenkins Failure does; a 5xx is an "Oops" page that, with *echo_body*, quotes the request body
    (as a stack trace quoting the submitted XML would). A *location* goes out as the Location
    header (a 3xx from a proxy or a hostile server)."""

    status: int
    x_error: str | None = None
    echo_body: bool = False
    location: str | None = None


@dataclass
class LoggedRequest:
    method: str
    path: str  # the raw request target, with the query string
    user: str | None
    auth: str  # "password", "token", "anonymous" or "bad"
    headers: dict[str, str]  # without Authorization
    body: bytes
    status: int = 0


@dataclass
class Credential:
    element: ET.Element  # as submitted (the emulator keeps the plaintext; Jenkins would encrypt it)

    @property
    def class_name(self) -> str:
        return self.element.tag

    def field(self, name: str) -> str | None:
        child = self.element.find(name)
        return None if child is None else (child.text or "")

    @property
    def id(self) -> str:
        return self.field("id") or ""


@dataclass
class CredentialStore:
    kind: str  # "system" or "folder" (CredentialsStoreAction.getUrlName, spec §1.5 notes)
    owner_full_name: str  # "" for the system store
    domains: dict[str, dict[str, Credential]] = field(default_factory=lambda: {"_": {}})

    @property
    def scopes(self) -> tuple[str, ...]:
        # System store: GLOBAL and SYSTEM; folder store: GLOBAL only (spec §2.6 "Scopes").
        return ("GLOBAL", "SYSTEM") if self.kind == "system" else ("GLOBAL",)

    def visible_to_builds(self, credential_id: str) -> bool:
        """Whether withCredentials in a build could find it: only GLOBAL scope is (spec §2.6 "Scopes":
        SYSTEM-scoped credentials are invisible to builds, and a folder store offers GLOBAL only)."""
        cred = self.domains["_"].get(credential_id)
        return cred is not None and (cred.field("scope") or "GLOBAL") == "GLOBAL"


@dataclass
class Item:
    name: str
    class_name: str
    element: ET.Element
    parent: Item | None = None
    children: dict[str, Item] = field(default_factory=dict)
    store: CredentialStore | None = None

    @property
    def is_folder(self) -> bool:
        return self.class_name == FOLDER_CLASS

    @property
    def full_name(self) -> str:
        if self.parent is None or self.parent.parent is None:
            return self.name  # the root itself, or a top-level item
        return f"{self.parent.full_name}/{self.name}"

    @property
    def url(self) -> str:
        """Relative URL, e.g. `job/A/job/B/` (Item.getUrl)."""
        if self.parent is None:
            return ""
        return f"{self.parent.url}job/{urllib.parse.quote(self.name, safe='')}/"

    def description(self) -> str:
        node = self.element.find("description")
        return "" if node is None else (node.text or "")


class JenkinsState:
    """Everything the emulated Jenkins knows; guarded by one lock (the server is threaded)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.anonymous_read = False
        self.csrf_enabled = True  # crumbIssuer answers 404 when protection is disabled (spec §2.2)
        self.plugins: dict[str, Plugin] = {name: Plugin(version) for name, version in DEFAULT_PLUGINS.items()}
        self.cookie_name = f"JSESSIONID.{secrets.token_hex(4)}"  # random per start (spec §2.2)
        self.instance_session = secrets.token_hex(4)
        self.salt = secrets.token_hex(16)
        self.sessions: set[str] = set()
        self.root = Item(name="", class_name="hudson.model.Hudson", element=ET.Element("hudson"))
        self.root.store = CredentialStore(kind="system", owner_full_name="")
        self.log: list[LoggedRequest] = []
        # Test hook, not Jenkins behaviour: (method or "*", path prefix) → what to answer instead.
        self.faults: dict[tuple[str, str], Fault] = {}

    @property
    def credentials_plugin(self) -> bool:
        """False when the credentials plugin is absent or inactive: every store URL answers 404."""
        plugin = self.plugins.get("credentials")
        return plugin is not None and plugin.active

    @credentials_plugin.setter
    def credentials_plugin(self, installed: bool) -> None:
        if installed:
            self.plugins["credentials"] = Plugin(DEFAULT_PLUGINS["credentials"])
        else:
            self.plugins.pop("credentials", None)

    def crumb(self, user: str, session: str) -> str:
        # DefaultCrumbIssuer: SHA-256 over authName;sessionId plus a salt; no client IP since 2.543
        # (spec §2.2).
        return hashlib.sha256(f"{user};{session}{self.salt}".encode()).hexdigest()

    def find(self, full_name: str) -> Item | None:
        node: Item | None = self.root
        for part in full_name.split("/"):
            if node is None:
                return None
            node = node.children.get(part)
        return node


# --------------------------------------------------------------------------------------------------
# HTTP


class _Reply(Exception):
    """A complete response, raised from anywhere in the routing."""

    def __init__(self, status: int, body: bytes | str = b"", headers: Mapping[str, str] | None = None,
                 content_type: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.headers = dict(headers or {})
        if content_type:
            self.headers["Content-Type"] = content_type


def _page(title: str, text: str) -> str:
    return (f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")


def _failure(message: str) -> _Reply:
    """hudson.model.Failure → error.jelly: 400, X-Error: <message>, HTML body with it (spec §2.3)."""
    body = ("<!DOCTYPE html><html><head><title>Jenkins</title></head><body><div id=\"main-panel\">"
            f"<h1>Error</h1><p>{html.escape(message, quote=False)}</p></div></body></html>")
    return _Reply(400, body, {"X-Error": message}, "text/html;charset=utf-8")


def _oops(detail: str) -> _Reply:
    """An uncaught exception → the 500 "Oops" page (spec §2.3 step 7)."""
    return _Reply(500, _page("Oops!", f"A problem occurred while processing the request: {detail}"),
                  content_type="text/html;charset=utf-8")


def _not_found() -> _Reply:
    return _Reply(404, _page("Not Found", "HTTP ERROR 404 Not Found"), content_type="text/html;charset=utf-8")


def _tree_filter(value: Any, tree: str | None) -> Any:
    """Apply Jenkins' `?tree=a,b[c,d]` to an api/json document (`_class` is always kept)."""
    if tree is None:
        return value

    def parse(spec: str) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        depth, start, i = 0, 0, 0
        name_end: int | None = None
        for i, ch in enumerate(spec + ","):
            if ch == "[":
                if depth == 0:
                    name_end = i
                depth += 1
            elif ch == "]":
                depth -= 1
            elif ch == "," and depth == 0:
                part = spec[start:i]
                if name_end is not None:
                    out[spec[start:name_end].strip()] = spec[name_end + 1:i - 1]
                elif part.strip():
                    out[part.strip()] = None
                start, name_end = i + 1, None
        return out

    def apply(node: Any, fields: dict[str, str | None]) -> Any:
        if isinstance(node, list):
            return [apply(n, fields) for n in node]
        if not isinstance(node, dict):
            return node
        out = {"_class": node["_class"]} if "_class" in node else {}
        for key, sub in fields.items():
            if key in node:
                out[key] = node[key] if sub is None else apply(node[key], parse(sub))
        return out

    return apply(value, parse(tree))


class JenkinsEmulator:
    """Start with `with JenkinsEmulator() as jenkins:`; `jenkins.url` is the base URL ending in `/`."""

    def __init__(self, *, users: Mapping[str, tuple[str, set[str]]] | None = None) -> None:
        self.state = JenkinsState()
        for name, (password, tokens) in (users or {}).items():
            self.add_user(name, password, tokens)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> JenkinsEmulator:
        emulator = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with emulator._conn_lock:
                    emulator._connections.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request: Any) -> None:
                with emulator._conn_lock:
                    emulator._connections.discard(request)
                super().shutdown_request(request)

        self._server = Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="jenkins-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        with self._conn_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> JenkinsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the emulator is not running"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # -- set-up and inspection helpers for tests ----------------------------------------------------
    def add_user(self, name: str, password: str, tokens: set[str] | None = None, *,
                 can_write: bool = True) -> User:
        user = User(name=name, password=password, tokens=set(tokens or ()), can_write=can_write)
        with self.state.lock:
            self.state.users[name] = user
        return user

    @property
    def requests(self) -> list[LoggedRequest]:
        with self.state.lock:
            return list(self.state.log)

    def clear_log(self) -> None:
        with self.state.lock:
            self.state.log.clear()

    def item(self, full_name: str) -> Item | None:
        with self.state.lock:
            return self.state.find(full_name)

    def job_xml(self, full_name: str) -> str:
        item = self.item(full_name)
        assert item is not None, f"no item {full_name}"
        return xstream_serialize(item.element, declaration=True)

    def store(self, folder: str | None = None) -> CredentialStore:
        if folder is None:
            assert self.state.root.store is not None
            return self.state.root.store
        item = self.item(folder)
        assert item is not None and item.store is not None, f"no folder store {folder}"
        return item.store

    def credential(self, credential_id: str, folder: str | None = None) -> Credential | None:
        with self.state.lock:
            return self.store(folder).domains["_"].get(credential_id)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Jetty(12.0.16)"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection is closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request log on stderr."""
        return

    @property
    def state(self) -> JenkinsState:
        return self.server.state  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    # -- the request pipeline: authentication → crumb → permissions → routing (spec §2.1, §2.2) ------
    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        entry = LoggedRequest(method=method, path=self.path, user=None, auth="anonymous",
                              headers={k: v for k, v in self.headers.items() if k.lower() != "authorization"},
                              body=body)
        self._session_cookie: str | None = None
        try:
            reply = self._process(method, body, entry)
        except _Reply as raised:
            reply = raised
        entry.status = reply.status
        with self.state.lock:
            self.state.log.append(entry)
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, jetty_header_value(value))
        if self._session_cookie:
            self.send_header("Set-Cookie",
                             f"{self.state.cookie_name}={self._session_cookie}; Path=/; HttpOnly")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _jenkins_headers(self) -> dict[str, str]:
        # Functions.advertiseHeaders / Api.java: X-Jenkins on pages and api/json (spec §2.5).
        return {"X-Jenkins": JENKINS_VERSION, "X-Hudson": "1.395",
                "X-Jenkins-Session": self.state.instance_session}

    def _authenticate(self, entry: LoggedRequest) -> User | None:
        header = self.headers.get("Authorization")
        if not header or not header.startswith("Basic "):
            return None  # other schemes are not processed by BasicHeaderProcessor → anonymous
        try:
            user_name, _, secret = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            user_name, secret = "", ""
        with self.state.lock:
            user = self.state.users.get(user_name)
        if user is not None and secret and secret == user.password:
            entry.user, entry.auth = user.name, "password"
            return user
        if user is not None and secret in user.tokens:
            entry.user, entry.auth = user.name, "token"  # BasicHeaderApiTokenAuthenticator
            return user
        entry.user, entry.auth = user_name or None, "bad"
        # BasicAuthenticationEntryPoint, realm "Jenkins" (spec §2.1).
        raise _Reply(401, _page("Unauthorized", "Invalid password/token for user: " + user_name),
                     {"WWW-Authenticate": 'Basic realm="Jenkins"', **self._jenkins_headers()},
                     "text/html;charset=utf-8")

    def _session(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(raw)
        except Exception:  # a malformed Cookie header is ignored
            return None
        morsel = cookie.get(self.state.cookie_name)
        if morsel is None:
            return None
        with self.state.lock:
            return morsel.value if morsel.value in self.state.sessions else None

    def _process(self, method: str, body: bytes, entry: LoggedRequest) -> _Reply:
        user = self._authenticate(entry)
        split = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        content_type = self.headers.get("Content-Type")
        form: dict[str, list[str]] = {}
        if content_type and content_type.startswith("application/x-www-form-urlencoded"):
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)

        # CrumbFilter: POST only; API-token requests are excluded (ApiCrumbExclusion); the crumb comes
        # from the header or a parameter of the same name and must match (user, session) (spec §2.2).
        if method == "POST" and self.state.csrf_enabled and entry.auth != "token":
            given = self.headers.get("Jenkins-Crumb") or next(
                iter(query.get("Jenkins-Crumb") or form.get("Jenkins-Crumb") or []), None)
            session = self._session()
            expected = self.state.crumb(user.name if user else "anonymous", session) if session else None
            if not given or given != expected:
                raise _Reply(403, _page("Error 403", NO_VALID_CRUMB),
                             content_type="text/html;charset=iso-8859-1")

        if user is None and not self.state.anonymous_read:
            # HudsonAuthenticationEntryPoint: 403 (not 401) with the X-Jenkins headers (spec §2.1).
            raise _Reply(403, _page("Authentication required", "Authentication required"),
                         self._jenkins_headers(), "text/html;charset=utf-8")

        for (fault_method, prefix), fault in list(self.state.faults.items()):
            if fault_method in ("*", method) and split.path.startswith(prefix):
                if fault.x_error is not None:
                    raise _failure(fault.x_error)
                if fault.status >= 500:
                    echoed = body.decode("utf-8", "replace") if fault.echo_body else ""
                    oops = _oops(f"injected fault {echoed}")
                    oops.status = fault.status
                    raise oops
                raise _Reply(fault.status, headers={"Location": fault.location} if fault.location else None)

        segments = [urllib.parse.unquote(s) for s in split.path.split("/") if s]
        if segments[:1] == ["manage"]:
            segments = segments[1:]  # ManageJenkinsAction.getStaplerFallback() is Jenkins (spec §1.5 notes)
        request = _Request(method=method, query=query, form=form, body=body, content_type=content_type,
                           user=user, host=self.headers.get("Host") or "127.0.0.1")
        with self.state.lock:
            if segments == ["crumbIssuer", "api", "json"] and method == "GET":
                return self._crumb_issuer(user)
            if segments == ["me", "api", "json"] and method == "GET":
                return self._me(user, request)
            if segments == ["pluginManager", "api", "json"] and method == "GET":
                return self._plugins(request)
            return _Router(self.state, request, self._jenkins_headers()).group(self.state.root, segments)

    def _crumb_issuer(self, user: User | None) -> _Reply:
        if not self.state.csrf_enabled:
            raise _not_found()  # Jenkins.getCrumbIssuer() is null (spec §2.2)
        session = self._session()
        if session is None:
            session = secrets.token_urlsafe(18)  # issuing a crumb creates a session and sets the cookie
            with self.state.lock:
                self.state.sessions.add(session)
            self._session_cookie = session
        crumb = self.state.crumb(user.name if user else "anonymous", session)
        doc = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb,
               "crumbRequestField": "Jenkins-Crumb"}
        return _Reply(200, json.dumps(doc), self._jenkins_headers(), "application/json;charset=utf-8")

    def _me(self, user: User | None, request: _Request) -> _Reply:
        if user is None:
            # Jenkins.getMe(): "/me is not available when not logged in" → 403 (spec §2.1).
            raise _Reply(403, _page("Error", "/me is not available when not logged in"),
                         self._jenkins_headers(), "text/html;charset=utf-8")
        doc: dict[str, Any] = {"_class": "hudson.model.User", "absoluteUrl": f"http://{request.host}/user/{user.name}",
               "description": None, "fullName": user.name, "id": user.name, "property": []}
        return _Reply(200, json.dumps(doc), self._jenkins_headers(), "application/json;charset=utf-8")


    def _plugins(self, request: _Request) -> _Reply:
        """PluginManager's api/json (spec §7b): the entries carry their fields at depth=1 or when
        `tree` names them (at depth 0 they are empty); Overall/Read suffices."""
        shallow = request.param("depth") in (None, "0") and request.param("tree") is None
        plugins: list[dict[str, Any]] = []
        for name, plugin in sorted(self.state.plugins.items()):
            if shallow:
                plugins.append({})
                continue
            plugins.append({"active": plugin.active, "enabled": plugin.enabled, "hasUpdate": False,
                            "longName": name.replace("-", " ").title() + " Plugin", "pinned": False,
                            "shortName": name, "version": plugin.version})
        router = _Router(self.state, request, self._jenkins_headers())
        return router.json({"_class": "hudson.LocalPluginManager", "plugins": plugins})


@dataclass
class _Request:
    method: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    body: bytes
    content_type: str | None
    user: User | None
    host: str

    def param(self, name: str) -> str | None:
        # Servlet getParameter: the query string's value comes before the form body's.
        values = self.query.get(name) or self.form.get(name)
        return values[0] if values else None

    @property
    def is_xml(self) -> bool:
        # "an XML submission iff the Content-Type starts with application/xml or text/xml" (spec §2.3 step 3)
        ctype = self.content_type or ""
        return ctype.startswith("application/xml") or ctype.startswith("text/xml")


class _Router:
    """Stapler-style URL resolution over the item tree and the credential stores (spec §1.4, §1.5)."""

    def __init__(self, state: JenkinsState, request: _Request, jenkins_headers: dict[str, str]) -> None:
        self.state = state
        self.req = request
        self.jenkins_headers = jenkins_headers

    @property
    def base(self) -> str:
        return f"http://{self.req.host}/"

    def json(self, doc: Any) -> _Reply:
        tree = self.req.param("tree")
        return _Reply(200, json.dumps(_tree_filter(doc, tree)), self.jenkins_headers,
                      "application/json;charset=utf-8")

    def require_write(self, permission: str) -> None:
        user = self.req.user
        if user is None or not user.can_write:
            name = user.name if user else "anonymous"
            # AccessDeniedException3 → 403 with "<user> is missing the <permission> permission".
            raise _Reply(403, _page("Access Denied", f"{name} is missing the {permission} permission"),
                         self.jenkins_headers, "text/html;charset=utf-8")

    def require_post(self) -> None:
        if self.req.method != "POST":
            # @RequirePOST answers 405 with a page that offers to retry as POST.
            raise _Reply(405, _page("Error", "This URL requires POST"),
                         content_type="text/html;charset=utf-8")

    # -- item groups (the root, folders) ------------------------------------------------------------
    def group(self, group: Item, segs: list[str]) -> _Reply:
        if not segs:
            if self.req.method != "GET":
                raise _Reply(405, _page("Error", "Method not allowed"), content_type="text/html")
            return _Reply(200, _page("Dashboard [Jenkins]", "Welcome to Jenkins!"), self.jenkins_headers,
                          "text/html;charset=utf-8")
        head, rest = segs[0], segs[1:]
        if head == "api" and rest == ["json"]:
            return self.json(self.group_json(group))
        if head == "job" and rest:
            child = group.children.get(rest[0])
            if child is None:
                raise _not_found()  # Stapler cannot resolve the URL (spec §2.3 "Nested items", §2.5)
            return self.item(child, rest[1:])
        if head == "createItem" and not rest:
            return self.create_item(group)
        if head == "credentials" and rest[:1] == ["store"] and len(rest) >= 2:
            return self.store(group, rest[1], rest[2:])
        raise _not_found()

    def group_json(self, group: Item) -> dict[str, Any]:
        jobs = [{"_class": c.class_name, "name": c.name, "url": self.base + c.url}
                for c in group.children.values()]
        if group.parent is None:
            return {"_class": "hudson.model.Hudson", "mode": "NORMAL", "nodeDescription": "the built-in node",
                    "nodeName": "", "numExecutors": 2, "description": None, "jobs": jobs,
                    "useCrumbs": self.state.csrf_enabled, "useSecurity": True}
        return {**self.item_json(group), "jobs": jobs}

    def item_json(self, item: Item) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_class": item.class_name, "description": item.description(), "displayName": item.name,
            "fullDisplayName": item.full_name.replace("/", " » "), "fullName": item.full_name,
            "name": item.name, "url": self.base + item.url}
        if not item.is_folder:
            disabled = (item.element.findtext("disabled") or "false") == "true"
            doc.update(buildable=not disabled, color="disabled" if disabled else "notbuilt", inQueue=False)
        return doc

    def create_item(self, group: Item) -> _Reply:
        """ItemGroupMixIn.createTopLevelItem, in the order of spec §2.3."""
        self.require_post()
        self.require_write("Job/Create")
        mode = self.req.param("mode")
        if self.req.content_type is None and mode != "copy":
            raise _failure("No Content-Type header set")
        name = self.req.param("name")
        if name is None:
            raise _failure("Query parameter 'name' is required")
        problem = check_good_name(name)
        if problem:
            raise _failure(problem)
        name = _java_trim(name)
        if name in group.children:
            raise _failure(f"A job already exists with the name ‘{name}’")
        if mode == "copy":
            raise _failure("copy mode is not modelled by the emulator")
        if self.req.is_xml:
            root = _parse_xml(self.req.body)
            if root is None:
                raise _oops("java.io.IOException: Failed to persist config.xml")
            class_name = ITEM_ROOTS.get(root.tag)
            if class_name is None:
                raise _oops(f"java.io.IOException: Unable to read {name}/config.xml "
                            f"(com.thoughtworks.xstream.mapper.CannotResolveClassException: {root.tag})")
            self.add_child(group, name, class_name, root)
            return _Reply(200)  # rsp.setStatus(SC_OK), empty body, no Location
        if mode is None:
            raise _failure("No mode given")
        if mode not in ITEM_ALIAS:
            raise _failure(f"No item type ‘{mode}’ is known")
        item = self.add_child(group, name, mode, _default_item_xml(mode))
        # sendRedirect2(<ctx>/<item url>configure); Stapler makes it absolute (spec §2.3 step 8).
        return _Reply(302, b"", {"Location": self.base + item.url + "configure"})

    def add_child(self, group: Item, name: str, class_name: str, element: ET.Element) -> Item:
        item = Item(name=name, class_name=class_name, element=element, parent=group)
        if class_name == FOLDER_CLASS:
            # AbstractFolder.init() fills in what is missing (spec §3d); every Folder has a store.
            for tag in ("properties", "healthMetrics"):
                if element.find(tag) is None:
                    ET.SubElement(element, tag)
            if element.find("icon") is None:
                ET.SubElement(element, "icon",
                              {"class": "com.cloudbees.hudson.plugins.folder.icons.StockFolderIcon"})
            item.store = CredentialStore(kind="folder", owner_full_name="")
        group.children[name] = item
        if item.store is not None:
            item.store.owner_full_name = item.full_name
        return item

    # -- one item -----------------------------------------------------------------------------------
    def item(self, item: Item, segs: list[str]) -> _Reply:
        if not segs or segs == ["configure"]:
            if self.req.method != "GET":
                raise _Reply(405, _page("Error", "Method not allowed"), content_type="text/html")
            return _Reply(200, _page(item.full_name, "configure" if segs else item.description()),
                          self.jenkins_headers, "text/html;charset=utf-8")
        if segs == ["api", "json"]:
            return self.json(self.group_json(item) if item.is_folder else self.item_json(item))
        if segs == ["config.xml"]:
            return self.config_xml(item)
        if segs == ["doDelete"]:
            self.require_post()
            self.require_write("Job/Delete")
            assert item.parent is not None
            del item.parent.children[item.name]
            return _Reply(302, b"", {"Location": self.base + item.parent.url})
        if item.is_folder:
            return self.group(item, segs)
        raise _not_found()

    def config_xml(self, item: Item) -> _Reply:
        """AbstractItem.doConfigDotXml (spec §2.4)."""
        if self.req.method == "GET":
            return _Reply(200, xstream_serialize(item.element, declaration=True),
                          content_type="application/xml;charset=utf-8")
        if self.req.method == "POST":
            self.require_write("Job/Configure")
            root = _parse_xml(self.req.body)
            if root is None:
                raise _oops("java.io.IOException: Failed to persist config.xml")
            got = ITEM_ROOTS.get(root.tag, root.tag)
            if got != item.class_name:
                raise _oops(f"java.io.IOException: Expecting class {item.class_name} but got {got} instead")
            if item.is_folder:
                for tag in ("properties", "healthMetrics"):
                    if root.find(tag) is None:
                        ET.SubElement(root, tag)
            item.element = root
            return _Reply(200)
        raise _Reply(400, _page("Error", "Bad Request"), content_type="text/html")  # any other method

    # -- credentials (spec §1.5, §2.6) ---------------------------------------------------------------
    def store(self, group: Item, store_id: str, segs: list[str]) -> _Reply:
        expected = "system" if group.parent is None else "folder"
        if not self.state.credentials_plugin or group.store is None or store_id != expected:
            raise _not_found()
        store = group.store
        if not segs or segs == ["api", "json"]:
            domains = {d: {"_class": DOMAIN_WRAPPER_CLASS}
                       for d in store.domains}
            return self.json({"_class": "com.cloudbees.plugins.credentials.CredentialsStoreAction",
                              "domains": domains})
        if segs[0] != "domain" or len(segs) < 2 or segs[1] not in store.domains:
            raise _not_found()
        domain = store.domains[segs[1]]
        rest = segs[2:]
        if not rest or rest == ["api", "json"]:
            return self.json({"_class": DOMAIN_WRAPPER_CLASS,
                              "credentials": [self.credential_json(store, c) for c in domain.values()],
                              "description": "Credentials that should be available irrespective of domain "
                                             "specification to requirements matching.",
                              "displayName": "Global credentials (unrestricted)", "fullDisplayName": "",
                              "fullName": f"{self.store_prefix(store)}/_", "global": True, "urlName": "_"})
        if rest == ["createCredentials"]:
            return self.create_credential(store, domain)
        if rest[0] == "credential" and len(rest) >= 2:
            cred = domain.get(rest[1])
            if cred is None:
                raise _not_found()
            tail = rest[2:]
            if not tail:
                return _Reply(200, _page(cred.id, cred.field("description") or ""), self.jenkins_headers,
                              "text/html;charset=utf-8")
            if tail == ["api", "json"]:
                return self.json(self.credential_json(store, cred))
            if tail == ["config.xml"]:
                return self.credential_config(store, domain, cred)
        raise _not_found()

    @staticmethod
    def store_prefix(store: CredentialStore) -> str:
        return "system" if store.kind == "system" else f"{store.owner_full_name}/folder"

    def credential_json(self, store: CredentialStore, cred: Credential) -> dict[str, Any]:
        type_name = CREDENTIAL_TYPES.get(cred.class_name, (cred.class_name, ()))[0]
        description = cred.field("description") or ""
        display = description or cred.id
        if cred.class_name == USERNAME_PASSWORD_CLASS and cred.field("usernameSecret") == "false":
            # StandardUsernamePasswordCredentials.NameProvider (spec §2.6); an omitted usernameSecret
            # means true (spec §3a), and then the display name is the description.
            display = f"{cred.field('username') or ''}/******" + (f" ({description})" if description else "")
        return {"_class": "com.cloudbees.plugins.credentials.CredentialsStoreAction$CredentialsWrapper",
                "description": description, "displayName": display, "fingerprint": None,
                "fullName": f"{self.store_prefix(store)}/_/{cred.id}", "id": cred.id, "typeName": type_name}

    def parse_credential(self) -> Credential:
        root = _parse_xml(self.req.body)
        if root is None:
            raise _oops("java.io.IOException: Failed to parse credential")
        if root.tag not in CREDENTIAL_TYPES:
            raise _oops(f"com.thoughtworks.xstream.mapper.CannotResolveClassException: {root.tag}")
        cred = Credential(element=root)
        if not cred.id:
            # Not modelled: what Jenkins does with an id-less credential is not established by the spec.
            raise _oops("emulator: a credential without <id> is not modelled")
        return cred

    def create_credential(self, store: CredentialStore, domain: dict[str, Credential]) -> _Reply:
        """DomainWrapper.doCreateCredentials (spec §2.6)."""
        self.require_post()
        self.require_write("Credentials/Create")
        if self.req.content_type is None:
            raise _failure("No Content-Type header set")
        if not self.req.is_xml:
            raise _failure("emulator: form submissions to createCredentials are not modelled")
        cred = self.parse_credential()
        if cred.id in domain:
            return _Reply(409)  # same id (BaseStandardCredentials.equals compares ids); old one untouched
        domain[cred.id] = cred
        return _Reply(200)

    def credential_config(self, store: CredentialStore, domain: dict[str, Credential],
                          cred: Credential) -> _Reply:
        """CredentialsWrapper.doConfigDotXml (spec §2.6)."""
        if self.req.method == "GET":
            redacted = copy.deepcopy(cred.element)
            for name in CREDENTIAL_TYPES[cred.class_name][1]:
                node = redacted.find(name)
                if node is not None:
                    node.text = None
                    for child in list(node):
                        node.remove(child)
                    ET.SubElement(node, "secret-redacted")
            # application/xml, and no XML declaration (spec §2.6).
            return _Reply(200, xstream_serialize(redacted, declaration=False, add_plugins=False),
                          content_type="application/xml;charset=utf-8")
        if self.req.method == "POST":
            self.require_write("Credentials/Update")
            replacement = self.parse_credential()
            if replacement.id != cred.id:
                raise _oops("java.lang.IllegalArgumentException: "
                            "Credentials' IDs do not match, will not update.")
            domain[cred.id] = replacement
            return _Reply(200)
        if self.req.method == "DELETE":
            self.require_write("Credentials/Delete")
            del domain[cred.id]
            return _Reply(200)
        raise _Reply(400, _page("Error", "Bad Request"), content_type="text/html")


def iter_job_bodies(log: list[LoggedRequest]) -> Iterator[bytes]:
    """The bodies of every request that carried job or folder XML (createItem, item config.xml)."""
    for entry in log:
        path = urllib.parse.urlsplit(entry.path).path
        if entry.method == "POST" and "/credentials/" not in path and (
                path.endswith("/createItem") or path.endswith("/config.xml")):
            yield entry.body
