"""A keyring backend that cannot be read (a locked store), for the fall-through tests.

Selected where a test wants it: `KeyringStore(LockedKeyring())`, or
PYTHON_KEYRING_BACKEND=tests.support.failing_keyring.LockedKeyring (keyring accepts only
KeyringBackend subclasses there). Subclasses join keyring's backend discovery once imported, so
its priority is kept below every real backend's: detection never prefers it.
"""

from __future__ import annotations

import keyring.backend
import keyring.errors

BACKEND = "tests.support.failing_keyring.LockedKeyring"


class LockedKeyring(keyring.backend.KeyringBackend):
    """Usable by priority, but every read and write fails as a locked Secret Service does."""

    priority = 0.01  # above `fail` (0), below any real backend

    def __init__(self) -> None:  # typed; the base only reads KEYRING_PROPERTY_* variables
        super().__init__()  # type: ignore[no-untyped-call]

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")
