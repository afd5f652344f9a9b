"""What a finished push produced, whichever path (engine or daemonless) did the pushing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class PushResult:
    """Every tag in `tags` resolves to `digest` in `registry`/`repository`."""

    registry: str
    repository: str
    tags: tuple[str, ...]
    digest: str  # the manifest digest the registry returned, sha256:…
    manifest_size: int | None = None  # bytes of the manifest document
    image_size: int | None = None  # bytes of the image's layers as stored locally (uncompressed)
    image_id: str | None = None  # the config digest (the engine's image ID)
    # "engine", "export" (exported from the engine and uploaded by us), "unchanged" (the registry
    # already had the image; only tags were written) or "daemonless" (--from-archive / --from-oci)
    method: str = "engine"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def references(self) -> list[str]:
        """One `HOST:PORT/NAME:TAG@sha256:…` per published tag."""
        return [f"{self.name}:{tag}@{self.digest}" for tag in self.tags]

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
