"""The secret-holding value types, on the bottom floor: they import nothing from the package.

`Secret` and `UsernamePassword` travel through every layer (the registry client, the engine push,
Jenkins, Nexus, the keyring store), so they sit below all of them; `credentials` decides where a
secret comes from, and re-exports both names for the modules that import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


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
