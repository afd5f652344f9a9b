"""One exception root for the whole package, and the exit codes the commands return.

Every error carries a message (what went wrong) and a hint (what to do). Third-party errors are
wrapped where they enter the package, and their text is only passed through after redaction,
because a registry or Jenkins error may echo what it was sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of `jr` and `jr-push`; the README's table is generated from this list."""

    OK = 0
    FAILURE = 1  # an unexpected error: a bug, reported with --debug for a traceback
    USAGE = 2  # bad options or an invalid value (image reference, name, template value)
    CREDENTIALS = 3  # a secret is missing, or the keyring cannot be used
    AUTH = 4  # the registry, Jenkins or Nexus rejected the credentials (401)
    PERMISSION = 5  # authenticated but not allowed (403, "denied", crumb refused)
    NOT_FOUND = 6  # a local image, a Jenkins folder, a store or a repository does not exist
    UNREACHABLE = 7  # the registry, Jenkins or Nexus cannot be reached (DNS, TCP, timeout)
    ENGINE = 8  # the Docker engine cannot be reached or failed
    INSECURE = 9  # the registry speaks HTTP but the client expects HTTPS
    REGISTRY = 10  # the registry refused or failed the push for another reason
    CONFLICT = 11  # a Jenkins job exists that this tool does not own (use --force)
    INVALID_INPUT_FILE = 12  # a corrupt archive, an invalid daemon.json, an unreadable file
    CHECK_FAILED = 13  # `jr doctor` or `jr jenkins check` found something that blocks a push or a job
    SERVER = 14  # Jenkins or Nexus answered with an unexpected server error
    # A command needs a package this installation lacks: the single-file jr-push (jr-push.pyz)
    # holds only what a push needs, not python-jenkins, jinja2 or keyring.
    MISSING_PACKAGE = 15
    INTERRUPTED = 130  # Ctrl-C


class JrError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE
    default_hint = "Re-run with --debug for details."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(JrError):
    """Raised for a bad option combination or a value that cannot be used as given."""

    exit_code = ExitCode.USAGE
    default_hint = "Run the command with --help to see the accepted options."


class InvalidReferenceError(UsageError):
    """Raised when an image reference, repository name or tag breaks Docker's grammar."""

    default_hint = (
        "Use lowercase path components ([a-z0-9] separated by '.', '_', '__' or '-'), "
        "a tag of at most 128 characters from [A-Za-z0-9_.-], or a digest sha256:<64 hex>."
    )


class UnsafeValueError(UsageError):
    """Raised when a value cannot be represented safely in a rendered file or a Jenkins name."""

    default_hint = "Remove control characters and characters Jenkins rejects from the value."


class CredentialsError(JrError):
    """Raised when a needed secret is missing or cannot be read."""

    exit_code = ExitCode.CREDENTIALS
    default_hint = "Set the environment variables, or store the secret with `jr login`."


class KeyringUnavailableError(CredentialsError):
    """Raised when no usable keyring backend exists (typical on a headless agent)."""

    default_hint = (
        "Install and select a backend, e.g. `pip install keyrings.alt` and "
        "`export PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring`, "
        "or pass the secret through the environment instead."
    )


class AuthenticationError(JrError):
    """Raised when a server rejects the credentials (HTTP 401, `unauthorized`)."""

    exit_code = ExitCode.AUTH
    default_hint = "Check the username and password (or API token) and try again."


class ProxyAuthenticationError(AuthenticationError):
    """Raised when the forward proxy (HTTPS_PROXY/HTTP_PROXY) answers 407: its credentials are
    missing or wrong. Its own class, so that a caller can tell it from the registry's 401 (the
    engine route: the engine has proxy settings of its own)."""

    default_hint = "Put the proxy's user and password in the proxy URL: http://USER:PASSWORD@HOST:PORT."


class PermissionDeniedError(JrError):
    """Raised when the credentials are valid but lack a permission (HTTP 403, `denied`)."""

    exit_code = ExitCode.PERMISSION
    default_hint = "Grant the account the needed permission, or use an account that has it."


class NotFoundError(JrError):
    """Raised when something named on the command line does not exist."""

    exit_code = ExitCode.NOT_FOUND
    default_hint = "Check the name and try again."


class ImageNotFoundError(NotFoundError):
    """Raised when the local image to push does not exist in the Docker engine."""

    default_hint = "Build or load the image first (`docker build -t NAME .`), or check `docker images`."


class UnreachableError(JrError):
    """Raised when a server cannot be reached (DNS failure, refused connection, timeout)."""

    exit_code = ExitCode.UNREACHABLE
    default_hint = "Check the address and port, and that a firewall lets the port through."


class EngineUnavailableError(JrError):
    """Raised when the Docker engine cannot be reached or fails outside a push."""

    exit_code = ExitCode.ENGINE
    default_hint = (
        "Start the Docker engine, or point DOCKER_HOST at it (e.g. unix:///var/run/docker.sock), "
        "and check that this user may use the socket."
    )


class InsecureRegistryError(JrError):
    """Raised when the registry speaks plain HTTP and the client expected HTTPS."""

    exit_code = ExitCode.INSECURE


class RegistryError(JrError):
    """Raised when the registry refuses or fails a push for a reason not covered above."""

    exit_code = ExitCode.REGISTRY
    default_hint = "Check the registry's log; re-run with --debug for the full exchange."


class ConflictError(JrError):
    """Raised when an existing Jenkins item is not owned by this tool and --force was not given."""

    exit_code = ExitCode.CONFLICT
    default_hint = "Pass --force to take the item over, or choose another name."


class InputFileError(JrError):
    """Raised for a file the command must read that is corrupt, invalid or unreadable."""

    exit_code = ExitCode.INVALID_INPUT_FILE
    default_hint = "Fix or replace the file; nothing was changed."


class CheckFailedError(JrError):
    """Raised by `jr doctor` when at least one check blocks a push."""

    exit_code = ExitCode.CHECK_FAILED
    default_hint = "Apply the fixes listed above and run `jr doctor` again."


class MissingPackageError(JrError):
    """Raised when a command needs an optional package that is not installed (`optional_packages`)."""

    exit_code = ExitCode.MISSING_PACKAGE
    default_hint = "Install the full tool on this machine: pipx install jenkins-registry."


class ServerError(JrError):
    """Raised when Jenkins or Nexus answers with an unexpected error status."""

    exit_code = ExitCode.SERVER
    default_hint = "Check the server's log; re-run with --debug for details."


_AUTH_VALUE = re.compile(
    r"\b(basic|bearer)(\s+)([A-Za-z0-9._~+/-]+=*)(?![=\"A-Za-z0-9._~+/-])", re.IGNORECASE)


def _looks_like_credential(value: str) -> bool:
    """Whether the word after `Basic`/`Bearer` is a credential rather than prose ("Basic and
    Bearer", "Basic authentication"): base64 and tokens mix cases, digits or symbols."""
    return len(value) >= 8 and (
        any(c.isdigit() or c in "+/=._~-" for c in value) or any(c.isupper() for c in value[1:]))


def _base64_forms(secret: str) -> set[str]:
    """The base64 text of *secret* wherever it sits in a longer encoded string (`user:password`
    in a Basic header): at each of the three byte alignments, the characters that depend on the
    secret's bytes alone."""
    import base64

    raw = secret.encode()
    forms = set()
    for shift, start in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        whole, rest = divmod(shift + len(raw), 3)
        end = 4 * whole + rest  # a last, partial group: its first *rest* characters are the secret's
        forms.add(encoded[start:end])
        if shift == 0:
            forms.add(encoded.rstrip("="))
    return {form for form in forms if len(form) >= 4}


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return *text* with every non-empty secret (and its common encodings, base64 inside a
    `user:password` encoding included) replaced by `****`, and the value of any `Basic …` or
    `Bearer …` credential too, whoever's it is.

    Used on any third-party text that is about to become part of an error message or a log line,
    because servers and libraries sometimes echo credentials (URLs with userinfo, auth headers).
    """
    import urllib.parse

    text = _AUTH_VALUE.sub(  # first: a header value goes whole, not around a redacted middle
        lambda m: f"{m.group(1)}{m.group(2)}****" if _looks_like_credential(m.group(3)) else m.group(0),
        text)
    for secret in secrets:
        if not secret:
            continue
        forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
        forms = {form for form in forms if len(form) >= 3} | _base64_forms(secret)
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "****")
    return text


class TemplateError(JrError):
    """Raised when a shipped template is missing or fails to render (a packaging bug, not input)."""

    exit_code = ExitCode.FAILURE
    default_hint = "Reinstall jenkins-registry; if it persists, re-run with --debug and report it."
