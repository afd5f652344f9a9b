"""Which forward proxy a request goes through, from HTTP_PROXY, HTTPS_PROXY and NO_PROXY.

The rules are those of Go's `net/http.ProxyFromEnvironment` (golang.org/x/net/http/httpproxy),
which the Docker engine and skopeo follow, so that a variable set for them means the same here:

* each variable is read uppercase first, then lowercase (`HTTPS_PROXY`, then `https_proxy`); an
  empty value counts as unset. `HTTPS_PROXY` serves https:// requests, `HTTP_PROXY` http:// ones;
* a proxy value without a scheme means `http://`; the port defaults to 80. Only http:// proxies
  are supported (HTTPS requests are tunnelled through them with CONNECT); an https:// or socks5://
  proxy, or a value that is not a URL, is a `UsageError` naming the variable, raised only when
  that proxy would be used, and never quoting its password;
* `USER:PASSWORD@` in the proxy URL (percent-encoded) becomes Basic proxy credentials;
* `localhost` and loopback addresses (127.0.0.0/8, ::1) are never proxied, whatever the variables
  say (Go's rule: a proxy cannot reach this machine's own ports). Names are not resolved for this:
  a name that resolves to a loopback address is proxied unless NO_PROXY lists it;
* NO_PROXY is a comma-separated list, matched case-insensitively against the request's host and
  port (the port defaulting to 443 or 80): `*` alone disables the proxy; an IP address
  (`10.1.2.3`, `fd00::1`, `[fd00::1]:5000`) or a CIDR range (`10.0.0.0/8`, `fd00::/8`) matches
  requests to an IP address; `example.com` matches that name and its subdomains, `.example.com`
  and `*.example.com` its subdomains only; `HOST:PORT` matches on that port only. Entries that
  cannot be read are ignored, as Go ignores them.

Not carried over from Go: https:// and socks5:// proxies, and its refusal of HTTP_PROXY in a CGI
environment (this tool is never a CGI program).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from jenkins_registry.errors import JrError, ProxyAuthenticationError, UnreachableError, UsageError
from jenkins_registry.reference import is_loopback, mask_userinfo, split_host_port
from jenkins_registry.secret_types import Secret

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PROXY_PORT = 80  # Go's default for an http:// proxy without a port
_PROXY_HINT = ("Set it to http://HOST:PORT, or http://USER:PASSWORD@HOST:PORT for a proxy that asks "
               "for credentials (percent-encode special characters); or list the registry in "
               "NO_PROXY to reach it directly.")


@dataclass(frozen=True)
class ProxyURL:
    """An http:// forward proxy: where it listens, which variable named it, and the value of the
    `Proxy-Authorization` header its URL's credentials make (never shown by repr or str)."""

    host: str  # without brackets
    port: int
    variable: str  # e.g. "HTTPS_PROXY" or "https_proxy": for messages
    authorization: Secret | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """`HOST:PORT` (`[V6]:PORT`), without credentials: what messages name."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.address} ({self.variable})"

    def __repr__(self) -> str:
        credentials = ", with credentials" if self.authorization else ""
        return f"ProxyURL({self.address!r} from {self.variable}{credentials})"


@dataclass(frozen=True)
class UnusableProxy:
    """A proxy variable whose value cannot be used; `reason` never holds its password."""

    variable: str
    reason: str

    def error(self) -> UsageError:
        return UsageError(self.reason, hint=_PROXY_HINT.replace("Set it", f"Set {self.variable}"))


@dataclass(frozen=True)
class _Exclusion:
    """One NO_PROXY entry: a domain (with its leading dot), an IP address or a CIDR range."""

    kind: Literal["domain", "ip", "cidr"]
    domain: str = ""  # ".example.com"
    name_too: bool = False  # the entry had no leading dot: the name itself matches as well
    ip: IPAddress | None = None
    network: IPNetwork | None = None
    port: int | None = None  # None: any port

    def matches(self, host: str, port: int, ip: IPAddress | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.kind == "domain":
            return ip is None and (host.endswith(self.domain)
                                   or (self.name_too and host == self.domain[1:]))
        if ip is None:
            return False
        if self.kind == "ip":
            return ip == self.ip
        assert self.network is not None
        return ip.version == self.network.version and ip in self.network


@dataclass(frozen=True)
class ProxySettings:
    """The proxies of an environment and its exceptions; `DIRECT` uses none.

    `proxy_for(scheme, host, port)` answers for one request.
    """

    http: ProxyURL | UnusableProxy | None = None
    https: ProxyURL | UnusableProxy | None = None
    no_proxy: tuple[_Exclusion, ...] = ()
    no_proxy_all: bool = False  # NO_PROXY holds `*`

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProxySettings:
        """The settings *environ* gives (uppercase names first, then lowercase)."""
        http = _proxy_variable(environ, "HTTP_PROXY")
        https = _proxy_variable(environ, "HTTPS_PROXY")
        no_proxy = _first_set(environ, "NO_PROXY")[1]
        exclusions, everything = _parse_no_proxy(no_proxy)
        return cls(http=http, https=https, no_proxy=exclusions, no_proxy_all=everything)

    def __repr__(self) -> str:  # the ProxyURLs' own reprs hide the credentials
        return (f"ProxySettings(http={self.http!r}, https={self.https!r}, "
                f"no_proxy={len(self.no_proxy)} entries{', *' if self.no_proxy_all else ''})")

    def proxy_for(self, scheme: str, host: str, port: int) -> ProxyURL | None:
        """The proxy for a request to *scheme*://*host*:*port*, or None to connect directly.

        Raises UsageError when the variable that applies holds no usable http:// proxy URL.
        """
        chosen = self.https if scheme.lower() == "https" else self.http
        if chosen is None or self.bypasses(host, port):
            return None
        if isinstance(chosen, UnusableProxy):
            raise chosen.error()
        return chosen

    def bypasses(self, host: str, port: int) -> bool:
        """Whether *host*:*port* is reached directly: loopback, or matched by NO_PROXY."""
        host = host.strip().strip("[]").lower()
        if is_loopback(f"[{host}]" if ":" in host else host):
            return True
        if self.no_proxy_all:
            return True
        ip = _ip_or_none(host)
        return any(entry.matches(host, port, ip) for entry in self.no_proxy)


DIRECT = ProxySettings()


def from_process_environment() -> ProxySettings:
    """The proxy settings of this process's environment.

    The one place below `cli/` that reads `os.environ`, deliberately: the Docker engine, skopeo,
    Go's ProxyFromEnvironment and requests' trust_env all take proxies from the process
    environment, and so does every HTTP client this package makes (`HttpTransport`'s default),
    whichever command built it.
    """
    return ProxySettings.from_environ(os.environ)


def _first_set(environ: Mapping[str, str], name: str) -> tuple[str, str]:
    """(the variable, its value) for *name*: uppercase first, then lowercase; ("", "") if unset."""
    for variable in (name, name.lower()):
        value = environ.get(variable, "")
        if value:
            return variable, value
    return "", ""


def _proxy_variable(environ: Mapping[str, str], name: str) -> ProxyURL | UnusableProxy | None:
    variable, value = _first_set(environ, name)
    if not value.strip():
        return None
    return parse_proxy_url(value, variable)


def parse_proxy_url(value: str, variable: str) -> ProxyURL | UnusableProxy:
    """*value* of *variable* as an http:// proxy (no scheme: http://), or why it cannot be used."""
    value = value.strip()
    text = value if "://" in value else f"http://{value}"
    shown = mask_userinfo(text)
    if not shown.isascii() or not shown.isprintable():
        shown = "(not shown: it holds non-printable or non-ASCII characters)"
    invalid = UnusableProxy(variable, f"{variable} is not a usable proxy URL: {shown}.")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return invalid
    scheme = parts.scheme.lower()
    if scheme != "http":
        return UnusableProxy(
            variable, f"{variable} names a {scheme}:// proxy ({shown}); only http:// proxies are "
            "supported (HTTPS is tunnelled through them with CONNECT).")
    host = parts.hostname or ""
    if not host or not host.isascii() or not host.isprintable() or port == 0:
        return invalid
    authorization = None
    if "@" in parts.netloc:
        username = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        if password:
            Secret(password)  # remembered, so that the CLI redacts it from anything it prints
        pair = f"{username}:{password}".encode()
        authorization = Secret("Basic " + base64.b64encode(pair).decode("ascii"))
    return ProxyURL(host=host, port=port or DEFAULT_PROXY_PORT, variable=variable,
                    authorization=authorization)


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _parse_no_proxy(value: str) -> tuple[tuple[_Exclusion, ...], bool]:
    """NO_PROXY's entries, and whether it holds `*`; unreadable entries are left out."""
    exclusions: list[_Exclusion] = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return (), True
        if "/" in entry:
            with contextlib.suppress(ValueError):  # not a range: ignored, as Go does
                exclusions.append(_Exclusion("cidr", network=ipaddress.ip_network(entry, strict=False)))
            continue
        host, port = _host_and_port(entry)
        if not host:
            continue
        ip = _ip_or_none(host)
        if ip is not None:
            exclusions.append(_Exclusion("ip", ip=ip, port=port))
            continue
        if host.startswith("*."):
            host = host[1:]
        exclusions.append(_Exclusion("domain", domain=host if host.startswith(".") else f".{host}",
                                     name_too=not host.startswith("."), port=port))
    return tuple(exclusions), False


def _host_and_port(entry: str) -> tuple[str, int | None]:
    """A NO_PROXY entry's host (brackets removed) and port; ("", None) when it cannot be read."""
    if _ip_or_none(entry) is not None:  # a bare IPv6 address: its colons are not a port
        return entry, None
    try:
        host, port = split_host_port(entry)
    except ValueError:
        return "", None
    if port is not None and not 0 < port < 65536:
        return "", None
    return host, port


# -- what a failure through a proxy means ----------------------------------------------------------


def proxy_failure(proxy: ProxyURL, target: str, status: int | None, detail: str) -> JrError:
    """The error for a request to *target* (a registry's `HOST[:PORT]`) that failed at *proxy*:
    not reached (*status* None; *detail* says why), or its answer *status* to CONNECT (or to a
    plain-HTTP request: 407). 407 is a `ProxyAuthenticationError` (exit 4, as a rejected
    password): the proxy wants credentials or refused those in its URL; anything else leaves
    the registry unreachable (exit 7). The text names the proxy, never its credentials."""
    if status == 407:
        if proxy.authorization is None:
            return ProxyAuthenticationError(
                f"The proxy {proxy} asks for credentials (HTTP 407) on the way to {target}, and "
                f"{proxy.variable} holds none.",
                hint=f"Put the proxy's user and password in the URL: {proxy.variable}="
                f"http://USER:PASSWORD@{proxy.address} (percent-encode special characters).")
        return ProxyAuthenticationError(
            f"The proxy {proxy} rejected the credentials in its URL (HTTP 407) on the way to "
            f"{target}.",
            hint=f"Check the user and password in {proxy.variable} (percent-encode special "
            "characters), or ask the proxy's administrators whether the account may use it.")
    if status is not None:
        return UnreachableError(
            f"The proxy {proxy} did not open a connection to {target} (HTTP {status}).",
            hint="Check that the proxy may reach the registry (its allow list, its DNS); if the "
            "registry should be reached directly, add its host to NO_PROXY.")
    return UnreachableError(
        f"Could not reach the proxy {proxy} on the way to {target} ({detail}).",
        hint=f"Check the host and port in {proxy.variable} and that the proxy runs; if the registry "
        "should be reached directly, add its host to NO_PROXY.")
