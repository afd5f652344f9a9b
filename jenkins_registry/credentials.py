"""Credentials: the one precedence rule for finding a secret, and the keyring's username rule.

Precedence (implemented here once, used by every command):
  1. the environment variables chosen on the command line (`--username-env`, `--password-env`);
  2. the default environment variables (DOCKER_LOGIN_USERNAME / DOCKER_LOGIN_PASSWORD, as the
     Jenkins "Username and password (separated)" binding in our templates injects them);
  3. the OS keyring entry stored by `jr login` (for a single password: only when it was stored for
     the same user, see `keyring_password_for`); a keyring that cannot be read is skipped with a
     warning, as twine does, and the next source is tried;
  4. an interactive prompt, only when the caller allows it (a terminal, not under Jenkins);
  5. otherwise: anonymous for a push, an error where a secret is required.
The *source* of each credential is logged, never its value.

`Secret` and `UsernamePassword` live in `secret_types` and are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

from jenkins_registry.errors import CredentialsError
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.secret_types import Secret, UsernamePassword

__all__ = [
    "DEFAULT_PASSWORD_ENV",
    "DEFAULT_USERNAME_ENV",
    "Prompt",
    "Secret",
    "UsernamePassword",
    "keyring_password_for",
    "resolve_registry_credentials",
    "resolve_secret",
]

log = logging.getLogger(__name__)

DEFAULT_USERNAME_ENV = "DOCKER_LOGIN_USERNAME"
DEFAULT_PASSWORD_ENV = "DOCKER_LOGIN_PASSWORD"

_T = TypeVar("_T")


Prompt = Callable[[str], str]


def _read_keyring(what: str, read: Callable[[], _T | None]) -> _T | None:
    """One keyring read during resolution. A keyring that cannot be read (backend error, locked,
    no loadable backend) is not a reason to stop: warn once, naming the problem, and let the caller
    try its next source. KeyringStore's errors name only the backend's exception type, no secret.
    """
    try:
        return read()
    except CredentialsError as exc:
        log.warning("%s: skipped the OS keyring. %s %s", what, exc.message, exc.hint)
        return None


def keyring_password_for(store: KeyringStore, registry: str, username: str) -> Secret | None:
    """The password `jr login` stored for *registry*, only when it was stored for *username*.

    The keyring holds one user per registry: an entry stored for someone else holds that user's
    password, which must not become *username*'s (in a Jenkins credential, a Nexus account), so it
    counts as none. A keyring that cannot be read also counts as none, with a warning. Used by
    `jr jenkins credential --registry` and `jr nexus setup --user`.
    """
    stored = _read_keyring(f"password of {username} for {registry}", lambda: store.get(registry))
    if stored is None:
        return None
    if stored.username != username:
        log.info("keyring: the entry for %s is for user %s, not %s; not used",
                 registry, stored.username, username)
        return None
    return stored.password


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
    anonymous_note: str = "pushing anonymously",
) -> UsernamePassword | None:
    """Find the credentials for *registry*; None means an anonymous push.

    *anonymous_note*: what the log says happens without credentials (the doctor only checks).

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
        stored = _read_keyring(f"credentials for {registry}", lambda: keyring_store.get(registry))
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
    log.info("credentials for %s: none found; %s", registry, anonymous_note)
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

    Used for the Jenkins API token, a Jenkins credential's password, the Nexus admin password and
    the Nexus push account's password. A *keyring_lookup* that raises CredentialsError (the
    keyring cannot be read) is skipped with a warning.
    """
    value = _env_value(environ, env_var)
    if value:
        log.info("%s: from the environment (%s)", what, env_var)
        return Secret(value)
    if keyring_lookup is not None:
        stored = _read_keyring(what, keyring_lookup)
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
