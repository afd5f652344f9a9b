"""What a finished push produced, whichever route (engine, export or daemonless) did the pushing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jenkins_registry.push_target import PushTarget


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
