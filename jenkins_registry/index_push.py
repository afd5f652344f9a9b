"""Push a multi-platform image (an image index) from an OCI layout or archive, without a daemon.

Order of work, so that no tag points at an incomplete index:
  1. the source, every entry of the index, is read and checked (image_archive) before any network;
  2. entry after entry: a platform's image goes through daemonless_push's pusher (blobs HEADed
     first, so a layer two platforms share is sent once), an entry that is not an image (an
     attestation) has its blobs pushed as they are stored; then its manifest is PUT by digest,
     untagged;
  3. the index, PUT under each tag, last (`publish_tags`: taken back on a failure or an
     interrupt, so a failed push leaves no tag at all).

Byte for byte: when every platform's layers already have the wanted compression, each manifest
and the index are pushed as the source stores them, and the index keeps its digest. When a
platform must be re-encoded (`--compression none` over gzip layers, uncompressed layers to gzip),
its manifest changes, so the index is rewritten with the new digests and sizes (an OCI index
then, if a Docker manifest list would list OCI manifests); the printed digest is that index's.

This module sits below daemonless_push, which calls it: the pusher, the manifest writer, the tag
writer and the blob cache are handed in (`PushTools`), so the import graph has no cycle.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from jenkins_registry.compression import Encoding
from jenkins_registry.image_archive import (
    INDEX_MEDIA_TYPES,
    MEDIA_DOCKER_LIST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    REFERENCE_DIGEST,
    CarriedBlob,
    ImageSource,
    IndexSource,
    LayerBlob,
    platform_of,
)
from jenkins_registry.progress import ProgressSink
from jenkins_registry.push_result import PushResult
from jenkins_registry.push_target import PushTarget
from jenkins_registry.registry_client import Manifest, RegistryClient
from jenkins_registry.target_tags import IMAGE_MANIFESTS, CurrentImages, TaggedImage, parse_tagged
from jenkins_registry.untrusted_json import loads as json_loads

log = logging.getLogger(__name__)

Compression = Literal["gzip", "none"]  # daemonless_push.Compression
ANY_MANIFEST = (*IMAGE_MANIFESTS, *INDEX_MEDIA_TYPES)


# -- what daemonless_push hands in ------------------------------------------------------------------


class PushedBlob(Protocol):
    """A blob as a manifest describes it (daemonless_push.Descriptor)."""

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...


class LayerPlan(Protocol):
    """How one layer is pushed (daemonless_push's plan)."""

    @property
    def layer(self) -> LayerBlob: ...

    @property
    def target(self) -> Encoding: ...


D_co = TypeVar("D_co", bound=PushedBlob, covariant=True)


class ChildPusher(Protocol[D_co]):
    """The pusher of one image (daemonless_push._Pusher): what the registry has, the blobs."""

    @property
    def format(self) -> str: ...  # "verbatim": the source's manifest, byte for byte

    @property
    def plans(self) -> Sequence[LayerPlan]: ...

    def discover(self, tag: str) -> TaggedImage | None: ...

    def unchanged(self, current: TaggedImage) -> Sequence[D_co] | None: ...

    def push_blobs(self) -> tuple[D_co, Sequence[D_co]]: ...


class BlobCache(Protocol):
    """daemonless_push.BlobInfoCache: which compressed blob holds a DiffID, and where."""

    def record(self, diff_id: str, encoding: Encoding, digest: str, size: int, where: str) -> None: ...

    def save(self) -> None: ...


class PublishTags(Protocol):
    """daemonless_push.publish_tags: the manifest under every tag, taken back on a failure."""

    def __call__(self, client: RegistryClient, target: PushTarget, body: bytes, media_type: str,
                 digest: str, progress: ProgressSink, *, existed: bool | None,
                 holding: str | None = None) -> None: ...


class IndexPushOptions(Protocol):
    """The parts of daemonless_push.SourcePushOptions an index push uses."""

    @property
    def compression(self) -> Compression: ...

    @property
    def blob_cache(self) -> Path | None: ...

    @property
    def chunk_size(self) -> int | None: ...


P = TypeVar("P", bound="ChildPusher[Any]")
D = TypeVar("D", bound=PushedBlob)
C = TypeVar("C", bound=BlobCache)


@dataclass(frozen=True)
class PushTools(Generic[P, D, C]):
    """daemonless_push's pusher class, manifest writer, tag writer and blob cache class."""

    make_pusher: Callable[[RegistryClient, ImageSource, CurrentImages, Compression, int, ProgressSink,
                           C | None, int | None], P]
    manifest_bytes: Callable[[P, D, Sequence[D]], tuple[bytes, str]]
    publish_tags: PublishTags
    make_cache: Callable[[Path], C]


# -- what the tags hold now -------------------------------------------------------------------------


class _TagsNow:
    """What each candidate tag points at now (an index or an image), fetched once for all
    platforms of the push; and what an index there holds for one platform."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self._held: dict[str, Manifest | None] = {}

    def held(self, tag: str) -> Manifest | None:
        if tag not in self._held:
            self._held[tag] = self.client.get_manifest(self.repository, tag, ANY_MANIFEST)
        return self._held[tag]

    def image_for(self, tag: str, platform: str | None) -> TaggedImage | None:
        """The image *tag* holds for *platform*: its own image manifest, or the index entry of
        that platform (one GET, by digest)."""
        manifest = self.held(tag)
        if manifest is None:
            return None
        if manifest.media_type in IMAGE_MANIFESTS:
            return parse_tagged(tag, manifest)  # an earlier single-platform push shares layers
        if manifest.media_type not in INDEX_MEDIA_TYPES or platform is None:
            return None
        try:
            entries = json_loads(manifest.body).get("manifests")
            digest = next(str(e["digest"]) for e in entries
                          if platform_of(e) == platform and e.get("mediaType") in IMAGE_MANIFESTS)
        except (ValueError, TypeError, AttributeError, KeyError, StopIteration):
            return None
        child = self.client.get_manifest(self.repository, digest, IMAGE_MANIFESTS)
        return None if child is None else parse_tagged(tag, child)


class _PlatformImages(CurrentImages):
    """CurrentImages for one platform of an index push: a tag's image for that platform."""

    def __init__(self, client: RegistryClient, target: PushTarget, tags_now: _TagsNow,
                 platform: str | None) -> None:
        super().__init__(client, target)
        self._tags_now = tags_now
        self._platform = platform
        self._images: dict[str, TaggedImage | None] = {}

    def get(self, tag: str) -> TaggedImage | None:
        if tag not in self._images:
            self._images[tag] = self._tags_now.image_for(tag, self._platform)
        return self._images[tag]


# -- the push ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pushed:
    """An entry's manifest as pushed: the source's own, or a new one for re-encoded layers."""

    body: bytes
    media_type: str
    digest: str


class _IndexPusher(Generic[P, D, C]):
    """One index push: its entries, then the index under the tags."""

    def __init__(self, client: RegistryClient, source: IndexSource, target: PushTarget,
                 progress: ProgressSink, options: IndexPushOptions, tools: PushTools[P, D, C],
                 jobs: int, cache: C) -> None:
        self.client = client
        self.source = source
        self.target = target
        self.progress = progress
        self.tools = tools
        self.cache = cache
        self.chunk_size = options.chunk_size
        tags_now = _TagsNow(client, target.repository)
        self.tags_now = tags_now
        self.pushers: dict[str, P] = {
            child.digest: tools.make_pusher(
                client, child.image, _PlatformImages(client, target, tags_now, child.platform),
                options.compression, jobs, progress, cache, options.chunk_size)
            for child in source.children if child.image is not None
        }

    @property
    def verbatim(self) -> bool:
        """Whether every manifest, and so the index, is pushed as the source stores it."""
        return all(pusher.format == "verbatim" for pusher in self.pushers.values())

    def tags_holding(self, digest: str) -> list[str]:
        """The wanted tags that point at *digest* now."""
        return [tag for tag in self.target.tags
                if self.client.manifest_digest(self.target.repository, tag, ANY_MANIFEST) == digest]

    def push_entries(self) -> dict[str, _Pushed]:
        """Every entry's blobs and manifest (PUT by digest, unless the registry has it)."""
        pushed: dict[str, _Pushed] = {}
        for child in self.source.children:
            if child.digest in pushed:
                continue
            log.info("pushing %s of the index (%s)", child.label, child.digest[:19])
            if child.image is None:
                self._push_carried(child.blobs)
                entry = _Pushed(child.manifest, child.media_type, child.digest)
            else:
                entry = self._push_image(self.pushers[child.digest])
            repository = self.target.repository
            if self.client.manifest_digest(repository, entry.digest, (entry.media_type,)) is None:
                self.client.put_manifest(repository, entry.digest, entry.body, entry.media_type)
            pushed[child.digest] = entry
        return pushed

    def _push_image(self, pusher: P) -> _Pushed:
        """As daemonless_push does for one image: nothing to send when a candidate tag's image for
        this platform is exactly this manifest; else its blobs, then its manifest."""
        for candidate in self.target.candidate_tags:
            tagged = pusher.discover(candidate)
            layers = pusher.unchanged(tagged) if tagged is not None else None
            if tagged is not None and layers is not None:
                manifest = tagged.manifest
                self._record(pusher, layers)
                return _Pushed(manifest.body, manifest.media_type, manifest.digest)
        config, layers = pusher.push_blobs()
        self._record(pusher, layers)
        body, media_type = self.tools.manifest_bytes(pusher, config, layers)
        return _Pushed(body, media_type, f"sha256:{hashlib.sha256(body).hexdigest()}")

    def _record(self, pusher: P, layers: Sequence[PushedBlob]) -> None:
        """Remember the pushed blobs: a later platform sharing a re-encoded layer finds it."""
        for plan, blob in zip(pusher.plans, layers, strict=True):
            self.cache.record(plan.layer.diff_id, plan.target, blob.digest, blob.size,
                              self.target.name)

    def _push_carried(self, blobs: Sequence[CarriedBlob]) -> None:
        repository = self.target.repository
        for blob in blobs:
            if self.client.blob_exists(repository, blob.digest) is None:
                self.client.upload_blob(repository, functools.partial(_StoredBlob, blob),
                                        digest=blob.digest, size=blob.size,
                                        chunk_size=self.chunk_size)

    def index_bytes(self, pushed: dict[str, _Pushed]) -> tuple[bytes, str]:
        """The source's index when every entry kept its digest; else the index rewritten with the
        new digests, sizes and media types (and attestations pointed at the new manifests)."""
        source = self.source
        renamed = {old: new for old, new in pushed.items() if new.digest != old}
        if not renamed:
            return source.index, source.media_type
        document = json_loads(source.index)
        for entry in document["manifests"]:
            new = pushed[entry["digest"]]
            entry.update(mediaType=new.media_type, digest=new.digest, size=len(new.body))
            annotations = entry.get("annotations")
            if isinstance(annotations, dict) and annotations.get(REFERENCE_DIGEST) in renamed:
                annotations[REFERENCE_DIGEST] = renamed[annotations[REFERENCE_DIGEST]].digest
        media_type = source.media_type
        if media_type == MEDIA_DOCKER_LIST and any(p.media_type == MEDIA_OCI_MANIFEST
                                                   for p in pushed.values()):
            media_type = MEDIA_OCI_INDEX  # a Docker manifest list lists Docker manifests only
        document["mediaType"] = media_type
        log.info("%d of the %d manifests of the index were re-encoded (other layer compression), so "
                 "the index was rewritten: its digest is not the source's %s", len(renamed),
                 len(pushed), source.digest)
        return json.dumps(document, indent=3).encode(), media_type


class _StoredBlob:
    """A carried blob's bytes as stored, read in chunks (a registry_client.BlobBody)."""

    def __init__(self, blob: CarriedBlob) -> None:
        self._blob = blob
        self._hash = hashlib.sha256()
        self._size = 0

    def __iter__(self) -> Iterator[bytes]:
        with self._blob.open() as reader:
            while chunk := reader.read(1 << 20):
                self._hash.update(chunk)
                self._size += len(chunk)
                yield chunk

    @property
    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"

    @property
    def size(self) -> int:
        return self._size


@contextlib.contextmanager
def _run_cache(tools: PushTools[P, D, C], path: Path | None) -> Iterator[C]:
    """The user's blob cache, else one for this run only (never written)."""
    if path is not None:
        yield tools.make_cache(path)
        return
    with tempfile.TemporaryDirectory(prefix="jr-index-") as scratch:
        yield tools.make_cache(Path(scratch) / "blobs.json")


def push_index(source: IndexSource, target: PushTarget, progress: ProgressSink,
               options: IndexPushOptions, tools: PushTools[P, D, C], *, jobs: int,
               client: RegistryClient) -> PushResult:
    """Push every entry of *source*, then the index under every tag of *target*, through
    *client* (the caller's, not closed here). The result's digest, and its image_id, are the
    index's. Raises JrError subclasses, as daemonless_push.push_source does."""
    platforms = ", ".join(child.label for child in source.children)
    log.info("pushing %s (an image index of %s) to %s as %s", source.path, platforms, target.name,
             ", ".join(target.tags))
    if client.base_url is None:
        client.ping()
    client.check_credentials(target.repository, probe=False)
    progress.message(f"The push refers to repository [{target.name}]")
    with _run_cache(tools, options.blob_cache) as cache:
        pusher = _IndexPusher(client, source, target, progress, options, tools, jobs, cache)
        # A tag holding the source's index means the registry has all of it (it checks every
        # entry when the index is PUT): only the other tags are written, if any.
        holding = pusher.tags_holding(source.digest) if pusher.verbatim else []
        if holding:
            body, media_type, digest = source.index, source.media_type, source.digest
            log.info("%s already is this index; nothing to upload", target.reference(holding[0]))
        else:
            body, media_type = pusher.index_bytes(pusher.push_entries())
            digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
            holding = pusher.tags_holding(digest)
        _publish(client, target, body, media_type, digest, progress, tools, holding)
        if options.blob_cache is not None:
            cache.save()
    # image_id: the index's digest, which is what an engine with the containerd image store calls
    # a multi-platform image's ID (export_push compares it with the engine's)
    return PushResult(target=target, digest=digest, manifest_size=len(body), image_size=source.size,
                      image_id=digest, method="daemonless")


def _publish(client: RegistryClient, target: PushTarget, body: bytes, media_type: str, digest: str,
             progress: ProgressSink, tools: PushTools[Any, Any, Any], holding: Sequence[str]) -> None:
    """The index under the tags that do not hold it yet (none: nothing is written)."""
    missing = tuple(tag for tag in target.tags if tag not in holding)
    if missing:
        rest = PushTarget(registry=target.registry, repository=target.repository, tags=missing)
        # a tag already holding it means the index existed: a failure never deletes it
        tools.publish_tags(client, rest, body, media_type, digest, progress,
                           existed=True if holding else None)
    for tag in target.tags:
        if tag in holding:
            progress.message(f"{tag}: digest: {digest} size: {len(body)}")

