"""Talking to Jenkins through python-jenkins, with every failure turned into a JrError.

python-jenkins 1.8.3 keeps what we need: Basic auth on every request, the crumb fetched once and sent
back with the JSESSIONID cookie of its `requests.Session` (password logins need both). Its error
mapping is uneven: 400 and 409 surface as raw `requests.HTTPError`, 401/403/500 as a JenkinsException
whose text embeds the response body, connection failures as raw `requests.ConnectionError`. So every
request goes through `JenkinsClient.request`, which sends a `requests.Request` with
`Jenkins.jenkins_request` (auth, crumb and cookie kept) and reads the status from the response itself
(a `requests` response hook), never from python-jenkins' message text. Server text only reaches a
message through `errors.redact`.

Writes never follow a redirect: `requests` would re-send a 307/308's body (a credential's XML,
password included) to wherever the Location points. The same response hook sees the 3xx before
`requests` follows it and ends the request there with an error naming the Location.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jenkins_registry.errors import (
    AuthenticationError,
    JrError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    UnreachableError,
    UsageError,
    redact,
)
from jenkins_registry.secret_types import Secret

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
NO_VALID_CRUMB = "No valid crumb was included in the request"  # CrumbFilter's 403 text


@dataclass(frozen=True, kw_only=True)
class JenkinsSettings:
    """Where Jenkins is and who we are; the token (or password) never shows in a repr."""

    url: str
    user: str
    token: Secret = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Reply:
    """What Jenkins answered to one request (status, decoded body, headers)."""

    status: int
    text: str
    headers: Mapping[str, str]


def normalize_url(url: str) -> str:
    """Return *url* as python-jenkins wants it (ending in `/`), refusing what it cannot be.

    Credentials in the URL are refused: they would end up in logs and process listings.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        parts = urllib.parse.urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"The Jenkins URL {sanitize_url(url)!r} is not an http:// or https:// URL.",
            hint="Pass --jenkins-url (or set JENKINS_URL) to the address you open in a browser, "
            "e.g. http://jenkins.example.com:8080/.",
        )
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "The Jenkins URL contains a user name or password.",
            hint="Remove them from the URL; pass the user with --jenkins-user (or JENKINS_USER) and "
            "the API token through JENKINS_API_TOKEN or the keyring.",
        )
    if parts.query or parts.fragment:
        raise UsageError(
            f"The Jenkins URL {sanitize_url(url)!r} has a query or fragment.",
            hint="Pass only the base address of Jenkins, e.g. http://jenkins.example.com:8080/jenkins/.",
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def sanitize_url(url: str) -> str:
    """*url* without userinfo, query or fragment: safe to print."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<invalid URL>"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def connect(settings: JenkinsSettings, *, secrets: Iterable[Secret] = ()) -> JenkinsClient:
    """Build a python-jenkins `Jenkins` for *settings*; nothing is sent until the first request."""
    import jenkins

    url = normalize_url(settings.url)
    server = jenkins.Jenkins(url, username=settings.user, password=settings.token.reveal(),
                             timeout=settings.timeout)
    return JenkinsClient(server, user=settings.user, secrets=[settings.token, *secrets])


class JenkinsClient:
    """One python-jenkins `Jenkins` object (reused, so the crumb and session cookie are kept), behind
    a request method that raises JrErrors only. Paths are relative to the Jenkins base URL."""

    def __init__(self, server: Any, *, user: str, secrets: Iterable[Secret] = ()) -> None:
        self._server = server
        self.user = user
        self.url = sanitize_url(str(server.server))
        self._secrets: list[Secret] = list(secrets)
        self.requests_sent = 0

    def remember_secret(self, secret: Secret) -> None:
        """Redact *secret* too from any server text that reaches a message."""
        self._secrets.append(secret)

    def redact(self, text: str) -> str:
        return redact(text, [s.reveal() for s in self._secrets])

    # -- requests ------------------------------------------------------------------------------------
    def get(self, path: str, *, what: str, allow: Collection[int] = ()) -> Reply:
        return self.request("GET", path, what=what, allow=allow)

    def post_xml(self, path: str, xml: str, *, what: str, allow: Collection[int] = ()) -> Reply:
        # Jenkins takes the XML path when the Content-Type starts with application/xml or text/xml.
        return self.request("POST", path, what=what, allow=allow, data=xml.encode("utf-8"),
                            content_type="application/xml; charset=utf-8")

    def request(self, method: str, path: str, *, what: str, allow: Collection[int] = (),
                data: bytes | None = None, content_type: str | None = None) -> Reply:
        """Send one request; a status in *allow* is returned, any other failure is raised as a JrError.

        *what* says what the request does ("create job A/b"), for the messages.
        """
        import jenkins
        import requests

        responses: list[requests.Response] = []
        write = method not in ("GET", "HEAD")

        def keep(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
            responses.append(response)
            if write and 300 <= response.status_code < 400:
                # Raised from the hook, before `requests` follows the redirect with the body.
                response.close()
                raise self._redirect_error(response, what)
            return response

        headers = {"Content-Type": content_type} if content_type else {}
        request = requests.Request(method, str(self._server.server) + path, data=data, headers=headers,
                                   hooks={"response": [keep]})
        self.requests_sent += 1
        log.debug("%s %s", method, path)
        try:
            response = self._server.jenkins_request(request)
            return Reply(response.status_code, response.text, response.headers)
        except jenkins.TimeoutException as exc:
            raise UnreachableError(
                f"Jenkins at {self.url} did not answer within {self._server.timeout} s ({what}).",
                hint="Check that Jenkins is up and not overloaded, or raise --timeout.",
            ) from _scrubbed(exc, self.redact)
        except (requests.HTTPError, jenkins.JenkinsException) as exc:
            if responses:  # Jenkins answered our request: judge by its own status and headers
                last = responses[-1]
                reply = Reply(last.status_code, last.text, last.headers)
                if reply.status in allow:
                    log.debug("%s %s → %d", method, path, reply.status)
                    return reply
                raise self._http_error(reply, what) from _scrubbed(exc, self.redact)
            # No answer to our request: the crumb request python-jenkins sends first failed.
            status = _status_in_message(str(exc))
            if status is None:
                raise ServerError(
                    f"Jenkins at {self.url} gave an unexpected answer while asked to {what}.",
                ) from _scrubbed(exc, self.redact)
            crumb_reply = Reply(status, NO_VALID_CRUMB if NO_VALID_CRUMB in str(exc) else "", {})
            raise self._http_error(crumb_reply, "fetch a crumb (crumbIssuer/api/json)") \
                from _scrubbed(exc, self.redact)
        except requests.ConnectionError as exc:
            raise UnreachableError(
                f"Cannot reach Jenkins at {self.url}: {_connection_reason(exc)}.",
                hint="Check --jenkins-url (or JENKINS_URL), that Jenkins is running, and that a "
                "firewall lets the port through.",
            ) from exc
        except requests.RequestException as exc:
            raise UnreachableError(
                f"The request to Jenkins at {self.url} failed ({type(exc).__name__}) while asked to {what}.",
            ) from exc

    # -- status → error --------------------------------------------------------------------------------
    def _redirect_error(self, response: Any, what: str) -> JrError:
        location = response.headers.get("Location")
        try:
            target = (sanitize_url(urllib.parse.urljoin(str(response.url), location))
                      if location else "no Location given")
        except ValueError:
            target = "<invalid URL>"
        return ServerError(
            f"Jenkins at {self.url} answered HTTP {response.status_code} (a redirect to {target}) "
            f"when asked to {what}; writes do not follow redirects, so nothing was sent there.",
            hint="If that address is your Jenkins, pass it as --jenkins-url (or JENKINS_URL); "
            "otherwise check the proxy in front of Jenkins.",
        )

    def _http_error(self, reply: Reply, what: str) -> JrError:
        status = reply.status
        if status == 400:
            reason = self.redact(jenkins_reason(reply) or "no reason given")
            return UsageError(
                f"Jenkins refused to {what}: {reason}",
                hint="Change the value Jenkins names above and run the command again.",
            )
        if status == 401:
            return AuthenticationError(
                f"Jenkins at {self.url} rejected the credentials of user {self.user!r} (HTTP 401).",
                hint="Check JENKINS_USER and JENKINS_API_TOKEN; an API token is created on the user's "
                f"page in Jenkins ({self.url}user/{urllib.parse.quote(self.user)}/security).",
            )
        if status == 403 and NO_VALID_CRUMB in reply.text:
            return PermissionDeniedError(
                f"Jenkins at {self.url} refused to {what}: no valid crumb was included (HTTP 403).",
                hint="Use an API token instead of a password (token requests need no crumb), or make "
                "sure no proxy between here and Jenkins drops the JSESSIONID cookie.",
            )
        if status == 403:
            return PermissionDeniedError(
                f"User {self.user!r} is not allowed to {what} on Jenkins at {self.url} (HTTP 403).",
                hint="Grant the user the permission it needs (Overall/Read, Job/Create, Job/Configure, "
                "Credentials/Create, Credentials/Update), or use an account that has it.",
            )
        if status == 404:
            return NotFoundError(f"Jenkins at {self.url} has nothing there when asked to {what} (HTTP 404).")
        if status >= 500:
            return ServerError(
                f"Jenkins at {self.url} failed to {what} (HTTP {status}).",
                hint="Check the Jenkins system log (Manage Jenkins → System Log); invalid XML or a "
                "missing plugin (workflow-job, credentials-binding, cloudbees-folder) is the usual cause.",
            )
        return ServerError(f"Jenkins at {self.url} answered HTTP {status} when asked to {what}.")


def jenkins_reason(reply: Reply) -> str | None:
    """Jenkins' own reason for a 400: the `X-Error` header, repaired from the HTML body when the web
    server replaced non-Latin-1 characters (Jenkins' typographic quotes) with `?` or spaces."""
    header = reply.headers.get("X-Error")
    if header is None:
        return None
    # http.client decodes header bytes as Latin-1; a server that sent UTF-8 is undone here.
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        header = header.encode("latin-1").decode("utf-8")
    match = re.search(r"<h1>\s*Error\s*</h1>\s*<(p|pre)>(.*?)</\1>", reply.text, re.DOTALL)
    if match:
        body = html.unescape(match.group(2))
        if len(body) == len(header) and all(
            a == b or (a in "? " and ord(b) > 0xFF) for a, b in zip(header, body, strict=True)
        ):
            return body
    return header


def _status_in_message(message: str) -> int | None:
    match = re.search(r"\[(\d{3})\]", message)
    return int(match.group(1)) if match else None


def _connection_reason(exc: BaseException) -> str:
    names: set[str] = set()
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 10:
        names.add(type(seen).__name__)
        for arg in seen.args:
            if isinstance(arg, BaseException):
                names.add(type(arg).__name__)
                reason = getattr(arg, "reason", None)
                if isinstance(reason, BaseException):
                    names.add(type(reason).__name__)
        seen = seen.__cause__ or seen.__context__
        depth += 1
    if "NameResolutionError" in names or "gaierror" in names:
        return "the host name does not resolve"
    if "SSLError" in names:
        return "the TLS handshake failed (is it https on an http port, or an untrusted certificate?)"
    if "ConnectTimeoutError" in names or "ConnectTimeout" in names:
        return "the connection timed out"
    return "the connection was refused or reset"


def _scrubbed(exc: BaseException, scrub: Callable[[str], str]) -> BaseException:
    """*exc* with any known secret removed from its text, so a --debug traceback cannot show it."""
    exc.args = tuple(scrub(a) if isinstance(a, str) else a for a in exc.args)
    return exc
