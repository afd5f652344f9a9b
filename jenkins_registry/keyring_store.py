"""Registry and service secrets in the OS keyring (the `keyring` package), optional and fallible.

Layout: the password of USER for registry HOST:PORT is stored under service
`jenkins-registry:HOST:PORT`, username USER; the index entry service `jenkins-registry`,
username HOST:PORT holds USER, because not every backend can look a credential up without a
username. Other secrets (Jenkins API token, Nexus admin password) use `store_secret`/`get_secret`
under their own service names.

Reads raise CredentialsError (KeyringUnavailableError when the backend cannot be loaded) and leave
to `credentials` whether that aborts or falls through; when no backend is configured at all (the
`fail` backend keyring picks on a headless agent), or the keyring package is not installed (the
single-file jr-push leaves it out), there is nothing to read and reads return None; writes raise.
"""

from __future__ import annotations

import logging
from typing import Any

from jenkins_registry.errors import CredentialsError, KeyringUnavailableError, MissingPackageError
from jenkins_registry.optional_packages import is_installed, require
from jenkins_registry.secret_types import Secret, UsernamePassword

log = logging.getLogger(__name__)

SERVICE_PREFIX = "jenkins-registry"


def _load_default_backend() -> Any:
    import keyring

    return keyring.get_keyring()


def _is_unusable(backend: Any) -> bool:
    # keyring's `fail.Keyring` (priority 0) is what it picks when no backend works.
    module = type(backend).__module__
    return module.startswith("keyring.backends.fail") or getattr(backend, "priority", 1) == 0


class KeyringStore:
    """A thin typed wrapper over a keyring backend; every backend error becomes a JrError."""

    def __init__(self, backend: Any | None = None) -> None:
        self._backend = backend

    @property
    def backend(self) -> Any:
        if self._backend is None:
            require(["keyring"], "Using the OS keyring")  # MissingPackageError, not "could not be loaded"
            try:
                self._backend = _load_default_backend()
            except Exception as exc:  # any import/config problem of a third-party backend
                raise KeyringUnavailableError(
                    f"The OS keyring could not be loaded ({type(exc).__name__})."
                ) from exc
        return self._backend

    def available(self) -> bool:
        try:
            return not _is_unusable(self.backend)
        except (KeyringUnavailableError, MissingPackageError):
            return False

    def ensure_usable(self) -> None:
        """Raise KeyringUnavailableError (with how to configure a backend) when none works."""
        self._require()

    def _require(self) -> Any:
        backend = self.backend
        if _is_unusable(backend):
            raise KeyringUnavailableError("No usable OS keyring backend was found on this machine.")
        return backend

    def _readable(self, what: str) -> Any | None:
        """The backend to read from, or None when no backend is configured (nothing stored there).

        A backend that fails to load raises KeyringUnavailableError: a misconfiguration is
        reported, not mistaken for an empty keyring. Without the keyring package nothing can have
        been stored through it: that is no misconfiguration, and not worth a warning.
        """
        if self._backend is None and not is_installed("keyring"):
            log.debug("the keyring package is not installed; skipping the keyring for %s", what)
            return None
        backend = self.backend
        if _is_unusable(backend):
            log.debug("no usable keyring backend; skipping the keyring for %s", what)
            return None
        return backend

    def _call(self, what: str, func: Any, *args: str) -> Any:
        try:
            return func(*args)
        except KeyringUnavailableError:
            raise
        except Exception as exc:  # keyring.errors.* and backend-specific errors
            name = type(exc).__name__
            if name in ("NoKeyringError", "InitError"):
                raise KeyringUnavailableError(f"The OS keyring cannot {what} ({name}).") from exc
            raise CredentialsError(
                f"The OS keyring failed to {what} ({name}).",
                hint="Check the keyring backend (`keyring --list-backends`), or pass the secret "
                "through the environment instead.",
            ) from exc

    # Registry credentials -------------------------------------------------------------------
    def get(self, registry: str) -> UsernamePassword | None:
        """The stored credentials for *registry*, or None (also when no backend is configured)."""
        backend = self._readable(registry)
        if backend is None:
            return None
        username = self._call("read", backend.get_password, SERVICE_PREFIX, registry)
        if not username:
            return None
        password = self._call("read", backend.get_password, f"{SERVICE_PREFIX}:{registry}", username)
        if not password:
            return None
        return UsernamePassword(username=username, password=Secret(password), source="keyring")

    def _store(self, backend: Any, service: str, key: str, secret: Secret) -> None:
        """Store one secret. A backend's error may quote the value it was given, so the chain to
        it is cut: not even a --debug traceback shows it."""
        try:
            self._call("store", backend.set_password, service, key, secret.reveal())
        except CredentialsError as exc:
            raise exc from None

    def set(self, registry: str, username: str, password: Secret) -> None:
        """Store the credentials and read them back: a backend that keeps nothing (keyring's
        `null` backend) raises CredentialsError rather than a false "stored"."""
        backend = self._require()
        self._store(backend, f"{SERVICE_PREFIX}:{registry}", username, password)
        self._call("store", backend.set_password, SERVICE_PREFIX, registry, username)
        stored = self.get(registry)
        if stored is None or stored.username != username or \
                stored.password.reveal() != password.reveal():
            raise _not_kept(backend)

    def delete(self, registry: str) -> bool:
        """Remove the entry for *registry*; False when there was none."""
        backend = self._require()
        username = self._call("read", backend.get_password, SERVICE_PREFIX, registry)
        if not username:
            return False
        for service, user in ((f"{SERVICE_PREFIX}:{registry}", username), (SERVICE_PREFIX, registry)):
            try:
                backend.delete_password(service, user)
            except Exception as exc:  # PasswordDeleteError when already gone: fine
                log.debug("keyring delete %s: %s", service, type(exc).__name__)
        return True

    # Other secrets --------------------------------------------------------------------------
    def get_secret(self, service: str, key: str) -> Secret | None:
        """The secret stored under *service* for *key*, or None (also when no backend is configured)."""
        backend = self._readable(service)
        if backend is None:
            return None
        value = self._call("read", backend.get_password, f"{SERVICE_PREFIX}:{service}", key)
        return Secret(value) if value else None

    def set_secret(self, service: str, key: str, secret: Secret) -> None:
        backend = self._require()
        self._store(backend, f"{SERVICE_PREFIX}:{service}", key, secret)
        stored = self.get_secret(service, key)
        if stored is None or stored.reveal() != secret.reveal():
            raise _not_kept(backend)


def _not_kept(backend: Any) -> CredentialsError:
    return CredentialsError(
        f"The OS keyring backend {type(backend).__name__} ({type(backend).__module__}) accepted "
        "the secret but does not return it: nothing was stored.",
        hint="Choose a keyring backend that keeps secrets (`keyring --list-backends`; set "
        "PYTHON_KEYRING_BACKEND or keyringrc.cfg), or pass the secret through the environment.",
    )
