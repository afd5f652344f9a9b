"""What a finished push produced, whichever route (engine, export or daemonless) did the pushing,
and what a run to several registries produced (`PushReport`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jenkins_registry.errors import ExitCode, JrError, redact
from jenkins_registry.push_target import PushTarget
from jenkins_registry.secret_types import Secret

# The failures that belong to one registry: a run to several goes on with the next registry. Any
# other error (usage, credentials, the local image, the engine, the archive, an interrupt) would
# fail every registry alike, so it ends the run.
REGISTRY_FAILURES = frozenset({ExitCode.AUTH, ExitCode.PERMISSION, ExitCode.UNREACHABLE,
                               ExitCode.INSECURE, ExitCode.REGISTRY})


@dataclass(frozen=True, kw_only=True)
class PushResult:
    """Every tag of `target` resolves to `digest` in its registry."""

    target: PushTarget
    digest: str  # the manifest digest the registry returned, sha256:…
    manifest_size: int | None = None  # bytes of the manifest document
    image_size: int | None = None  # bytes of the image's layers as stored locally (uncompressed)
    image_id: str | None = None  # the config digest (the engine's image ID)
    # "engine", "export" (exported from the engine and uploaded by us), "unchanged" (the registry
    # already had the image; only tags were written) or "daemonless" (--from-archive / --from-oci)
    method: str = "engine"

    @property
    def registry(self) -> str:
        return self.target.registry

    @property
    def repository(self) -> str:
        return self.target.repository

    @property
    def tags(self) -> tuple[str, ...]:
        return self.target.tags

    @property
    def name(self) -> str:
        return self.target.name

    def references(self) -> list[str]:
        """One `HOST:PORT/NAME:TAG@sha256:…` per published tag."""
        return [f"{reference}@{self.digest}" for reference in self.target.references]

    def to_json(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "repository": self.repository,
            "name": self.name,
            "tags": list(self.tags),
            "references": self.references(),
            "digest_reference": f"{self.name}@{self.digest}",
            "digest": self.digest,
            "manifest_size": self.manifest_size,
            "image_size": self.image_size,
            "image_id": self.image_id,
            "method": self.method,
        }


@dataclass(frozen=True, kw_only=True)
class RegistryFailure:
    """The push to `registry` failed with `error`."""

    registry: str
    error: JrError

    @property
    def exit_code(self) -> ExitCode:
        return self.error.exit_code

    def to_json(self) -> dict[str, Any]:
        known = Secret.known_values()  # the messages are redacted already; this is the last guard
        return {"registry": self.registry, "exit_code": int(self.exit_code),
                "error": redact(self.error.message, known), "hint": redact(self.error.hint, known)}


@dataclass(frozen=True, kw_only=True)
class PushReport:
    """One run of jr-push: an outcome per registry in the order pushed, and the registries not
    attempted because an error that is no registry's own ended the run."""

    outcomes: tuple[PushResult | RegistryFailure, ...]
    not_attempted: tuple[str, ...] = ()

    @property
    def results(self) -> tuple[PushResult, ...]:
        return tuple(outcome for outcome in self.outcomes if isinstance(outcome, PushResult))

    @property
    def failures(self) -> tuple[RegistryFailure, ...]:
        return tuple(outcome for outcome in self.outcomes if isinstance(outcome, RegistryFailure))

    @property
    def exit_code(self) -> ExitCode:
        """The first failure's exit code; OK when every registry holds every tag."""
        failures = self.failures
        return failures[0].exit_code if failures else ExitCode.OK

    def to_json(self) -> dict[str, Any] | None:
        """The first pushed registry's object as one push prints it (kept for readers of one
        registry), with `pushes`: one object per registry in order, a result or a failure
        (`registry`, `exit_code`, `error`, `hint`), and `not_attempted`: the registries after an
        error that ended the run. None when nothing was pushed."""
        results = self.results
        if not results:
            return None
        return {**results[0].to_json(), "pushes": [outcome.to_json() for outcome in self.outcomes],
                "not_attempted": list(self.not_attempted)}
