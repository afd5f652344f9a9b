"""Credentials: a secret type that never prints itself, and the one precedence rule for finding them.

Precedence (implemented here once, used by every command):
  1. the environment variables chosen on the command line (`--username-env`, `--password-env`);
  2. the default environment variables (DOCKER_LOGIN_USERNAME / DOCKER_LOGIN_PASSWORD, as the
     Jenkins "Username and password (separated)" binding in our templates injects them);
  3. the OS keyring entry stored by `jr login`;
  4. an interactive prompt, only when the caller allows it (a terminal, not under Jenkins);
  5. otherwise: anonymous for a push, an error where a secret is required.
The *source* of each credential is logged, never its value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from jenkins_registry.errors import CredentialsError

if TYPE_CHECKING:
    from jenkins_registry.keyring_store import KeyringStore

log = logging.getLogger(__name__)

DEFAULT_USERNAME_ENV = "DOCKER_LOGIN_USERNAME"
DEFAULT_PASSWORD_ENV = "DOCKER_LOGIN_PASSWORD"


class Secret:
    """A string that shows `****` in str(), repr() and f-strings; `reveal()` is the only way out.

    Every value is also remembered (for this process only) so that the CLI can redact it from any
    text it prints, including --debug tracebacks of third-party errors.
    """

    __slots__ = ("_value",)
    _seen: ClassVar[set[str]] = set()

    def __init__(self, value: str) -> None:
        self._value = value
        if value:
            Secret._seen.add(value)

    @classmethod
    def known_values(cls) -> frozenset[str]:
        return frozenset(cls._seen)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    def __str__(self) -> str:
        return "****"

    def __format__(self, spec: str) -> str:
        return "****"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, kw_only=True)
class UsernamePassword:
    """A username and its password, with where they came from (for the log)."""

    username: str
    password: Secret = field(repr=False)
    source: str

    def auth_config(self) -> dict[str, str]:
        """The dict the Docker engine API takes as X-Registry-Auth / login body."""
        return {"username": self.username, "password": self.password.reveal()}


Prompt = Callable[[str], str]


def _env_value(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value if value else None


def resolve_registry_credentials(
    registry: str,
    *,
    environ: Mapping[str, str],
    username_env: str | None = None,
    password_env: str | None = None,
    keyring_store: KeyringStore | None = None,
    prompt_username: Prompt | None = None,
    prompt_password: Prompt | None = None,
    required: bool = False,
) -> UsernamePassword | None:
    """Find the credentials for *registry*; None means an anonymous push.

    Raises CredentialsError when only half of a pair is given, when a variable chosen on the
    command line is empty, or when *required* and nothing was found.
    """
    chosen = username_env is not None or password_env is not None
    user_var = username_env or DEFAULT_USERNAME_ENV
    pass_var = password_env or DEFAULT_PASSWORD_ENV
    username = _env_value(environ, user_var)
    password = _env_value(environ, pass_var)
    if username and password:
        source = "the variables chosen on the command line" if chosen else "the environment"
        log.info("credentials for %s: %s (%s, %s)", registry, source, user_var, pass_var)
        return UsernamePassword(
            username=username, password=Secret(password), source=f"environment ({user_var}/{pass_var})"
        )
    if username or password:
        present, missing = (user_var, pass_var) if username else (pass_var, user_var)
        raise CredentialsError(
            f"{present} is set but {missing} is empty or missing.",
            hint=f"Set both {user_var} and {pass_var} (the Jenkins 'Username and password "
            "(separated)' binding does), or neither to use the keyring.",
        )
    if chosen:
        raise CredentialsError(
            f"The variables {user_var} and {pass_var} named on the command line are not set.",
            hint="Bind the credential to those variables in the Jenkins job, or drop the options.",
        )
    if keyring_store is not None:
        stored = keyring_store.get(registry)
        if stored is not None:
            log.info("credentials for %s: the OS keyring (user %s)", registry, stored.username)
            return stored
    if prompt_username is not None and prompt_password is not None:
        user = prompt_username(f"Username for {registry}: ").strip()
        secret = prompt_password(f"Password for {user}@{registry}: ")
        if user and secret:
            log.info("credentials for %s: typed at the prompt", registry)
            return UsernamePassword(username=user, password=Secret(secret), source="prompt")
    if required:
        raise CredentialsError(
            f"No credentials for {registry}.",
            hint=f"Set {user_var} and {pass_var}, or store them with "
            f"`jr login --registry {registry} --username USER --password-stdin`.",
        )
    log.info("credentials for %s: none found, pushing anonymously", registry)
    return None


def resolve_secret(
    *,
    what: str,
    environ: Mapping[str, str],
    env_var: str,
    keyring_lookup: Callable[[], Secret | None] | None = None,
    prompt: Prompt | None = None,
) -> Secret:
    """Find one required secret: environment variable, then keyring, then prompt; else an error.

    Used for the Jenkins API token, a Jenkins credential's password and the Nexus admin password.
    """
    value = _env_value(environ, env_var)
    if value:
        log.info("%s: from the environment (%s)", what, env_var)
        return Secret(value)
    if keyring_lookup is not None:
        stored = keyring_lookup()
        if stored:
            log.info("%s: from the OS keyring", what)
            return stored
    if prompt is not None:
        typed = prompt(f"{what}: ")
        if typed:
            log.info("%s: typed at the prompt", what)
            return Secret(typed)
    raise CredentialsError(
        f"No {what} found.",
        hint=f"Set the environment variable {env_var} (for example through a Jenkins credential "
        "binding), or store it in the OS keyring.",
    )
