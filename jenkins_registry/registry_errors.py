"""The errors a push can end in, with the same wording whether the engine or our own client pushed.

The engine reports registry failures as text inside its JSON stream (with HTTP 200), so
`classify_engine_message` maps that text onto the constructors below; the daemonless client maps
HTTP statuses onto the same constructors. No constructor takes a password.
"""

from __future__ import annotations

import re

from jenkins_registry.errors import (
    AuthenticationError,
    CredentialsError,
    ImageNotFoundError,
    InsecureRegistryError,
    InvalidReferenceError,
    JrError,
    PermissionDeniedError,
    RegistryError,
    UnreachableError,
)
from jenkins_registry.reference import split_host_port

LOGIN_HINT = (
    "Bind the registry credential to DOCKER_LOGIN_USERNAME / DOCKER_LOGIN_PASSWORD in the Jenkins "
    "job, or store it on this agent with `jr login --registry {registry} --username USER "
    "--password-stdin`."
)


ZIPAPP_LOGIN_HINT = (
    "Bind the registry credential to DOCKER_LOGIN_USERNAME / DOCKER_LOGIN_PASSWORD in the Jenkins "
    "job (the single-file jr-push has no keyring, so `jr login` is not available here)."
)


def no_credentials(registry: str) -> CredentialsError:
    from jenkins_registry.optional_packages import running_from_zipapp

    hint = ZIPAPP_LOGIN_HINT if running_from_zipapp() else LOGIN_HINT.format(registry=registry)
    return CredentialsError(
        f"The registry {registry} requires a login, but no credentials were given "
        "(no basic auth credentials).",
        hint=hint,
    )


def credentials_rejected(registry: str, username: str | None) -> AuthenticationError:
    who = f"user {username!r}" if username else "anonymous access"
    return AuthenticationError(
        f"The registry {registry} rejected the credentials of {who} (unauthorized).",
        hint="Check the username and password stored in the Jenkins credential. On Nexus, also "
        "activate the 'Docker Bearer Token Realm' (jr nexus setup does) and push to the "
        "repository's HTTP connector port.",
    )


def access_denied(registry: str, repository: str, username: str | None) -> PermissionDeniedError:
    who = f"user {username!r}" if username else "anonymous access"
    return PermissionDeniedError(
        f"The registry {registry} denied {who} the right to push to {repository} "
        "(requested access to the resource is denied).",
        hint="Give the account push rights on that repository (Nexus: nx-repository-view-docker-"
        "<repo>-add/edit; Harbor: a robot account with push on the project). Pushing to a Nexus "
        "group port is always denied: use the hosted repository's port.",
    )


def http_to_https(registry: str) -> InsecureRegistryError:
    return InsecureRegistryError(
        f"The registry {registry} speaks plain HTTP, but the Docker engine expects HTTPS "
        "(server gave HTTP response to HTTPS client).",
        hint=f'Add "insecure-registries": ["{registry}"] to /etc/docker/daemon.json on this agent '
        f"and reload dockerd: `jr docker insecure-registry add {registry} --reload` "
        "(or `sudo kill -HUP $(pidof dockerd)`).",
    )


def plain_http_refused(registry: str) -> InsecureRegistryError:
    """Our own client (jr-push without an engine, jr login, jr doctor) found plain HTTP where it
    allows only HTTPS: a registry not on this machine, without `--insecure`."""
    return InsecureRegistryError(
        f"The registry {registry} speaks plain HTTP, and plain HTTP to a registry that is not on "
        "this machine is refused without --insecure (credentials would cross the network in "
        "clear text).",
        hint=f"If {registry} is meant to run without TLS, pass --insecure; otherwise use its "
        "HTTPS port.",
    )


def tls_failure(registry: str, detail: str) -> InsecureRegistryError:
    return InsecureRegistryError(
        f"The TLS certificate of {registry} is not trusted ({detail}).",
        hint=f"Install the registry's CA as /etc/docker/certs.d/{registry}/ca.crt, or list it under "
        "insecure-registries if it is meant to be used without verification.",
    )


def unreachable(registry: str, detail: str) -> UnreachableError:
    """*detail*: the failure in a few words (`describe_failure`, or the engine's text). A refused
    connection means nothing listens on the port; only a timeout (a dropped packet, what a
    firewall does) earns the firewall hint."""
    port = split_host_port(registry)[1]  # a registry that reached a connection is well-formed
    lowered = detail.lower()
    if "connection refused" in lowered:
        hint = (f"Nothing listens on {registry}: check that the registry runs and that the port is "
                f"right (`jr doctor --registry {registry}`).")
    else:
        timed_out = any(word in lowered for word in ("timed out", "timeout", "deadline exceeded"))
        firewall = (
            f" If a firewall is on, open the port: `sudo firewall-cmd --zone=public "
            f"--add-port={port}/tcp --permanent && sudo firewall-cmd --reload`."
            if port and timed_out else ""
        )
        hint = (f"Check that the registry runs and listens on {registry}, and that this agent can "
                f"reach it (`jr doctor --registry {registry}`).{firewall}")
    return UnreachableError(f"Cannot reach the registry {registry} ({detail}).", hint=hint)


def invalid_name(registry: str, repository: str) -> InvalidReferenceError:
    return InvalidReferenceError(
        f"The registry {registry} refused the repository name {repository!r}.",
        hint="Use lowercase path components; on Harbor the first component must be an existing "
        "project.",
    )


def image_missing(image: str) -> ImageNotFoundError:
    return ImageNotFoundError(f"The image {image!r} does not exist in the local Docker engine.")


def too_many_requests(registry: str) -> RegistryError:
    return RegistryError(
        f"The registry {registry} is rate-limiting requests (too many requests).",
        hint="Wait a moment and run the push again.",
    )


def generic(registry: str, detail: str) -> RegistryError:
    return RegistryError(f"The push to {registry} failed: {detail}")


_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in (
        (r"no basic auth credentials", "no_credentials"),
        (r"server gave HTTP response to HTTPS client", "http_to_https"),
        (r"x509:|certificate (?:signed by unknown|is not valid|has expired)|tls: ", "tls"),
        (r"requested access to the resource is denied|^denied:|\bdenied: |\b403\b|forbidden", "denied"),
        (r"unauthorized|authentication required|incorrect username or password|\b401\b", "auth"),
        (r"does not exist locally|tag does not exist|no such image", "image_missing"),
        (r"toomanyrequests|too many requests|\b429\b", "rate"),
        (r"name invalid|invalid reference format|repository name must be|name_invalid", "name"),
        (r"connection refused|no such host|i/o timeout|no route to host|network is unreachable|"
         r"context deadline exceeded|connection reset|dial tcp|server misbehaving|EOF$", "unreachable"),
    )
)


def classify_engine_message(
    message: str, *, registry: str, repository: str, username: str | None, image: str
) -> JrError:
    """Turn an engine error text (push stream `errorDetail`, or /auth failure) into our error."""
    kind = next((k for pattern, k in _PATTERNS if pattern.search(message)), None)
    if kind == "no_credentials":
        return no_credentials(registry)
    if kind == "http_to_https":
        return http_to_https(registry)
    if kind == "tls":
        return tls_failure(registry, message)
    if kind == "denied":
        return access_denied(registry, repository, username)
    if kind == "auth":
        return credentials_rejected(registry, username) if username else no_credentials(registry)
    if kind == "image_missing":
        return image_missing(image)
    if kind == "rate":
        return too_many_requests(registry)
    if kind == "name":
        return invalid_name(registry, repository)
    if kind == "unreachable":
        return unreachable(registry, message)
    return generic(registry, message)
