"""Image references, checked against Docker's grammar before any network work.

Grammar (distribution `reference/regexp.go`, as the engine applies it):
  reference  := name [ ":" tag ] [ "@" digest ]
  name       := [domain "/"] path-component ["/" path-component]*
  domain     := host [":" port]; the first component is a domain only if it contains "." or ":",
                is "localhost", or has an uppercase letter
  component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
  tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
  digest     := algorithm ":" hex (sha256: exactly 64 lowercase hex)

A registry address is parsed into host and port here, once (`split_host_port`), and the two host
classes built on it are defined here too: `is_loopback` (this machine) and
`in_engine_implicit_insecure_range` (what every engine treats as insecure without being told).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jenkins_registry.errors import InvalidReferenceError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"

COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
TAG_RE = re.compile(rf"^{_TAG}$")
DIGEST_RE = re.compile(rf"^{_DIGEST}$")
IMAGE_ID_RE = re.compile(r"^(?:sha256:)?[0-9a-f]{12,64}$")

NAME_TOTAL_MAX = 255


@dataclass(frozen=True, kw_only=True)
class ImageReference:
    """A parsed reference; `registry` is None for a name without a registry part."""

    registry: str | None
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The name as the engine knows it: `registry/path` or just `path`."""
        return f"{self.registry}/{self.path}" if self.registry else self.path

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _looks_like_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or (
        component.lower() != component
    )


def _check_printable(text: str, what: str, shown: str | None = None) -> None:
    if not text:
        raise InvalidReferenceError(f"The {what} is empty.")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch.isspace() for ch in text):
        raise InvalidReferenceError(
            f"The {what} {text if shown is None else shown!r} contains white space or control characters.")


def mask_userinfo(text: str) -> str:
    """*text* with a `user:password@` part shown as `****@`, for messages: a password typed into a
    registry address or a URL by mistake is not echoed. Everything up to the last `@` goes, since
    a password may itself hold `@` or `/`."""
    scheme, sep, rest = text.rpartition("://") if "://" in text.split("@", 1)[0] else ("", "", text)
    if "@" not in rest:
        return text
    return f"{scheme}{sep}****@{rest.rpartition('@')[2]}"


_CREDENTIALS_HINT = (" Credentials never go into the address: pass them through DOCKER_LOGIN_USERNAME "
                     "and DOCKER_LOGIN_PASSWORD, or store them with `jr login`.")


def parse_registry(text: str) -> str:
    """Validate `HOST[:PORT]` (a registry address as used in image names) and return it.

    Error messages never show a `user:password@` part (`mask_userinfo`).
    """
    shown = mask_userinfo(text)
    _check_printable(text, "registry", shown)
    credentials = _CREDENTIALS_HINT if shown != text else ""
    if "://" in text:
        address = text.split("://", 1)[1].rpartition("@")[2].split("/", 1)[0]
        raise InvalidReferenceError(
            f"The registry {shown!r} has a URL scheme.",
            hint=f"Give only HOST[:PORT], e.g. {address!r}: Docker picks HTTP or HTTPS itself "
            "(HTTP needs an insecure-registries entry)." + credentials,
        )
    if "/" in text:
        raise InvalidReferenceError(
            f"The registry {shown!r} contains a path.",
            hint="Give only HOST[:PORT]; put the repository path in --name. A Nexus docker "
            "repository is addressed by its connector port, not /repository/NAME." + credentials,
        )
    if not DOMAIN_RE.match(text):
        raise InvalidReferenceError(
            f"The registry {shown!r} is not a valid HOST[:PORT].",
            hint="Use a host name or IP address, optionally with a port, e.g. 10.211.55.6:8082."
            + credentials,
        )
    host, port = _split_port(text)
    if text.startswith("["):
        _check_bracketed(text, host)
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidReferenceError(f"The registry port {port} is out of range (1-65535).")
    return text


def _check_bracketed(text: str, host: str) -> None:
    """`[…]` holds an IPv6 address, hex digits and colons only, as in Docker's grammar."""
    import ipaddress

    if "." in host:
        unbracketed = text.replace(f"[{host}]", host, 1)
        raise InvalidReferenceError(
            f"The registry {text!r} puts brackets around an IPv4 address.",
            hint=f"Brackets are for IPv6 addresses only: write {unbracketed!r}.",
        )
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise InvalidReferenceError(
            f"The registry {text!r} has {host!r} in brackets, which is not an IPv6 address.",
            hint="Write an IPv6 address in brackets, e.g. [fd00::6]:8082, or a host name.",
        ) from None


def parse_path(text: str) -> str:
    """Validate a repository path such as `local/jenkins` (no registry part)."""
    _check_printable(text, "repository name")
    first = text.split("/", 1)[0]
    # Here only an explicit host counts (an uppercase first component is a case error instead).
    if "/" in text and ("." in first or ":" in first or first == "localhost"):
        raise InvalidReferenceError(
            f"The repository name {text!r} starts with a registry address ({first}).",
            hint="Pass the registry with --registry and only the path with --name.",
        )
    if not PATH_RE.match(text):
        hint = None
        if text.lower() != text and PATH_RE.match(text.lower()):
            hint = f"Repository names must be lowercase: use {text.lower()!r}."
        raise InvalidReferenceError(f"The repository name {text!r} is not valid.", hint=hint)
    if len(text) > NAME_TOTAL_MAX:
        raise InvalidReferenceError(f"The repository name is longer than {NAME_TOTAL_MAX} characters.")
    return text


def parse_tag(text: str) -> str:
    _check_printable(text, "tag")
    if not TAG_RE.match(text):
        raise InvalidReferenceError(
            f"The tag {text!r} is not valid.",
            hint="A tag has 1-128 characters from [A-Za-z0-9_.-] and does not start with '.' or '-'.",
        )
    return text


def parse_reference(text: str) -> ImageReference:
    """Parse `[registry/]path[:tag][@digest]`."""
    _check_printable(text, "image reference")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReferenceError(
                f"The digest in {text!r} is not valid.", hint="A digest is sha256: and 64 lowercase hex."
            )
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], parse_tag(rest[colon + 1 :])
    registry = None
    if "/" in rest:
        first, remainder = rest.split("/", 1)
        if _looks_like_domain(first):
            registry, rest = parse_registry(first), remainder
    path = parse_path(rest)
    total = len(f"{registry}/{path}" if registry else path)
    if total > NAME_TOTAL_MAX:
        raise InvalidReferenceError(f"The image name is longer than {NAME_TOTAL_MAX} characters.")
    return ImageReference(registry=registry, path=path, tag=tag, digest=digest)


def looks_like_image_id(text: str) -> bool:
    """True for a full or short image ID (`46d1a3ebf53b`, `sha256:…`)."""
    return bool(IMAGE_ID_RE.match(text))


# -- registry addresses: host, port, loopback ------------------------------------------------------

# The range every Docker engine adds to its insecure registries by itself. Docker 20.10 adds only
# this one; newer engines add ::1/128 as well, so ::1 is not in it.
ENGINE_IMPLICIT_INSECURE_RANGE = "127.0.0.0/8"
# What `docker info` lists in InsecureRegistryCIDRs without being told: the range above, and ::1 on
# newer engines (which the engine then also treats as insecure: the CIDR list is what it checks).
ENGINE_DEFAULT_INSECURE_CIDRS = (ENGINE_IMPLICIT_INSECURE_RANGE, "::1/128")


def _split_port(registry: str) -> tuple[str, str | None]:
    """`HOST[:PORT]` or `[V6][:PORT]` → (host without brackets, port text or None).

    A bare IPv6 address such as `::1` has no port.
    """
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if registry.count(":") == 1:
        host, port = registry.split(":")
        return host, port
    return registry, None


def split_host_port(registry: str) -> tuple[str, int | None]:
    """`HOST[:PORT]` or `[V6]:PORT` → (host without brackets, port or None)."""
    host, port = _split_port(registry)
    return host, None if port is None else int(port)


def is_loopback(registry: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1, with or without a port: this machine."""
    import ipaddress  # not needed by `jr-push --help`, which imports this module

    host, _ = _split_port(registry)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def in_engine_implicit_insecure_range(registry: str) -> bool:
    """True for an IPv4 address in ENGINE_IMPLICIT_INSECURE_RANGE, with or without a port.

    Such a registry is insecure to the engine whatever its configuration says, so its `info` need
    not be asked. Narrower than `is_loopback`: `localhost` would need a name lookup (the engine
    matches resolved addresses), and ::1 is not insecure to Docker 20.10.
    """
    import ipaddress

    host, _ = _split_port(registry)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address in ipaddress.ip_network(ENGINE_IMPLICIT_INSECURE_RANGE)
