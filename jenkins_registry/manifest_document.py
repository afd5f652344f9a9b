"""A manifest or index as a registry served it, checked before `jr registry` acts on it.

The bytes are kept exactly (a tag or copy puts them back byte for byte, so the digest is kept);
what is read from them is checked first, since each digest in it becomes part of a URL and each
size a bound: JSON within `untrusted_json`'s limits, a known media type, sha256 digests only,
sizes that are whole numbers, and at most MAX_ENTRIES children or layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jenkins_registry import media_types, untrusted_json
from jenkins_registry.errors import NotFoundError, RegistryError
from jenkins_registry.reference import DIGEST_RE
from jenkins_registry.registry_client import (
    ANY_MANIFEST_TYPES,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    RegistryClient,
)

MAX_ENTRIES = 1000  # children of an index, or layers of an image: far above any real image
MAX_BLOB_SIZE = 1 << 45  # 32 TiB: a declared size above this is nonsense, not a layer
_FOREIGN = media_types.FOREIGN_LAYERS


@dataclass(frozen=True)
class Descriptor:
    """One entry of a manifest: what it points at, by digest."""

    media_type: str
    digest: str
    size: int
    foreign: bool = False  # a layer the registry does not hold (`urls`, nondistributable)


@dataclass(frozen=True)
class ManifestDocument:
    """A checked manifest: `children` for an index, `config` and `layers` for an image."""

    manifest: Manifest
    media_type: str
    children: tuple[Descriptor, ...] = ()
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def blobs(self) -> tuple[Descriptor, ...]:
        """The blobs the registry must hold for this image: config, then non-foreign layers."""
        wanted = [self.config] if self.config is not None else []
        return tuple(wanted + [layer for layer in self.layers if not layer.foreign])


def _bad(registry: str, where: str, why: str) -> RegistryError:
    return RegistryError(f"The registry {registry} served {where} as something jr cannot use: "
                         f"{why}.", hint="Check what was pushed there; nothing was changed.")


def _descriptor(item: object, registry: str, where: str) -> Descriptor:
    if not isinstance(item, dict):
        raise _bad(registry, where, "an entry is not a JSON object")
    digest, size, media_type = item.get("digest"), item.get("size"), item.get("mediaType", "")
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise _bad(registry, where, "an entry's digest is not sha256:<64 hex>")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_BLOB_SIZE:
        raise _bad(registry, where, f"the size of {digest[:19]} is not a plausible byte count")
    if not isinstance(media_type, str):
        raise _bad(registry, where, f"the media type of {digest[:19]} is not a string")
    return Descriptor(media_type, digest, size, bool(item.get("urls")) or media_type in _FOREIGN)


def _entries(body: dict[str, object], key: str, registry: str, where: str) -> tuple[Descriptor, ...]:
    items = body.get(key)
    if not isinstance(items, list):
        raise _bad(registry, where, f"it has no {key} list")
    if len(items) > MAX_ENTRIES:
        raise _bad(registry, where, f"it lists more than {MAX_ENTRIES} {key}")
    return tuple(_descriptor(item, registry, where) for item in items)


def read_document(manifest: Manifest, registry: str, where: str) -> ManifestDocument:
    """*manifest* checked and read (*where*: how messages name it, e.g. `team/app:v1`)."""
    try:
        body = untrusted_json.loads(manifest.body)
    except (ValueError, UnicodeDecodeError):
        raise _bad(registry, where, "it is not JSON") from None
    if not isinstance(body, dict):
        raise _bad(registry, where, "it is not a JSON object")
    if body.get("schemaVersion") != 2:
        raise _bad(registry, where, "it is not a schema 2 manifest (schema 1 images cannot be "
                   "tagged or copied without changing their digest)")
    declared = body.get("mediaType")
    media_type = manifest.media_type
    if media_type not in ANY_MANIFEST_TYPES:
        media_type = declared if isinstance(declared, str) else ""
    if media_type not in ANY_MANIFEST_TYPES:  # OCI allows leaving mediaType out
        media_type = OCI_INDEX if "manifests" in body else OCI_MANIFEST if "layers" in body else ""
    if media_type not in ANY_MANIFEST_TYPES:
        raise _bad(registry, where, "its media type is not an image manifest or index")
    if media_type in INDEX_TYPES:
        return ManifestDocument(manifest, media_type, children=_entries(body, "manifests",
                                                                         registry, where))
    config = body.get("config")
    return ManifestDocument(manifest, media_type, config=_descriptor(config, registry, where),
                            layers=_entries(body, "layers", registry, where))


def fetch_document(client: RegistryClient, repository: str, reference: str, *,
                   scopes: Sequence[str] | None = None) -> ManifestDocument:
    """The manifest *reference* (tag or digest) of *repository*, checked; NotFoundError when
    it does not exist, RegistryError when a digest's bytes hash to another digest."""
    where = f"{repository}@{reference}" if reference.startswith("sha256:") else \
        f"{repository}:{reference}"
    manifest = client.get_manifest(repository, reference, ANY_MANIFEST_TYPES, scopes=scopes)
    if manifest is None:
        raise NotFoundError(f"{client.registry}/{where} does not exist.",
                            hint="Check the repository and tag (`jr registry` lists nothing "
                            "itself; the registry's tags/list does).")
    if reference.startswith("sha256:") and manifest.digest != reference:
        raise RegistryError(f"The registry {client.registry} served {where} with bytes that hash "
                            f"to {manifest.digest}.", hint="The registry is corrupt or not the "
                            "one meant; nothing was changed.")
    return read_document(manifest, client.registry, where)


def image_created(config: bytes) -> str | None:
    """The `created` text of an image config, or None (absent, or the config not JSON)."""
    try:
        body = untrusted_json.loads(config)
    except (ValueError, UnicodeDecodeError):
        return None
    created = body.get("created") if isinstance(body, dict) else None
    return created if isinstance(created, str) and created else None


def describe(document: ManifestDocument) -> str:
    """A few words for messages: `index of 2 images` / `image of 3 layers`."""
    if document.is_index:
        return f"index of {len(document.children)} manifests"
    return f"image of {len(document.layers)} layers"

