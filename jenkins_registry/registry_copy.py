"""`jr registry copy`: an image (or a whole index) from one repository to another, on one
registry or between two, without the local disk and with the digest kept.

For each blob a manifest names, in order: a HEAD on the destination (present: skipped); on the
same registry, a cross-repository mount (`POST …/blobs/uploads/?mount=&from=`), so no byte
passes through this process; otherwise the source's GET streamed straight into the
destination's upload (`SourceBlob`), one chunk held back at a time, counted and hashed on the
way, so a wrong size or digest fails before the upload completes. Manifests go last: an index's
children by digest, then the index (or the image manifest) by digest, then under each tag, the
bytes as the source served them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from jenkins_registry import registry_errors
from jenkins_registry.errors import RegistryError
from jenkins_registry.http_transport import ConnectError, Timeout
from jenkins_registry.manifest_document import Descriptor, ManifestDocument, describe, fetch_document
from jenkins_registry.push_target import PushTarget
from jenkins_registry.registry_client import RegistryClient, pull_scopes
from jenkins_registry.registry_session import TransientFailure, describe_failure

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read from the source per piece; at most two pieces are held at once


class SourceBlob:
    """A `BlobBody` reading one blob from the source registry as the destination takes it.

    Each iteration opens a fresh GET (an upload retried starts over); the source failing
    mid-blob is a `TransientFailure`, so the destination's upload retries it. The last piece is held
    back until the byte count and the sha256 match the descriptor, so a source that sends too
    much, too little or other bytes fails the upload before it can complete.
    """

    def __init__(self, source: RegistryClient, repository: str, blob: Descriptor) -> None:
        self._source = source
        self._repository = repository
        self._blob = blob
        self._received = 0

    def __iter__(self) -> Iterator[bytes]:
        blob, registry = self._blob, self._source.registry
        response = self._source.open_blob(self._repository, blob.digest)
        hasher = hashlib.sha256()
        received = 0
        held: bytes | None = None
        try:
            for piece in response.iter_content(CHUNK):
                received += len(piece)
                if received > blob.size:
                    raise registry_errors.generic(
                        registry, f"blob {blob.digest[:19]} is longer than the {blob.size} bytes "
                        "its manifest says")
                hasher.update(piece)
                if held is not None:
                    yield held
                held = piece
        except (ConnectError, Timeout) as exc:
            # the upload is retried with a fresh GET, by the destination's retry rules and budget
            raise TransientFailure(registry_errors.unreachable(registry, describe_failure(exc))
                                   ) from None
        finally:
            response.close()
        if received != blob.size or f"sha256:{hasher.hexdigest()}" != blob.digest:
            raise RegistryError(
                f"The source registry {registry} served blob {blob.digest[:19]} with other "
                f"content ({received} of {blob.size} bytes, or another digest); the copy stopped "
                "before any manifest was written.", hint="Check the source registry's storage.")
        self._received = received
        if held is not None:
            yield held

    @property
    def digest(self) -> str:
        return self._blob.digest

    @property
    def size(self) -> int:
        return self._received


@dataclass
class BlobCounts:
    """How the blobs reached the destination."""

    present: int = 0  # the destination had them (HEAD)
    mounted: int = 0  # cross-repository mount: no bytes through this process
    streamed: int = 0  # read from the source and uploaded
    streamed_bytes: int = 0


@dataclass(frozen=True)
class CopyResult:
    """What a copy wrote: the manifest's digest, in *repository* of *registry*, under *tags*."""

    source: str
    registry: str
    repository: str
    tags: tuple[str, ...]
    digest: str
    media_type: str
    manifests: int  # manifests written (an index's children, then the index)
    blobs: BlobCounts = field(default_factory=BlobCounts)

    def references(self) -> list[str]:
        base = PushTarget(registry=self.registry, repository=self.repository, tags=()).name
        if not self.tags:
            return [f"{base}@{self.digest}"]
        return [f"{base}:{tag}@{self.digest}" for tag in self.tags]

    def to_json(self) -> list[dict[str, object]]:
        return [{"source": self.source, "reference": reference, "digest": self.digest,
                 "mediaType": self.media_type, "manifests": self.manifests,
                 "blobs": {"present": self.blobs.present, "mounted": self.blobs.mounted,
                           "streamed": self.blobs.streamed,
                           "streamedBytes": self.blobs.streamed_bytes}}
                for reference in self.references()]


class ImageCopier:
    """Copies from *source_repository* on *source* to *repository* on *destination*.

    *same_registry*: both are one registry, so blobs are mounted rather than streamed (the
    destination's credentials then need pull on the source repository too).
    """

    def __init__(self, source: RegistryClient, source_repository: str,
                 destination: RegistryClient, repository: str, *, same_registry: bool) -> None:
        self._source = source
        self._source_repository = source_repository
        self._destination = destination
        self._repository = repository
        self._same_registry = same_registry
        self._done: set[str] = set()
        self.counts = BlobCounts()

    def copy(self, reference: str, tags: Sequence[str]) -> CopyResult:
        """Copy the manifest *reference* (tag or digest) and all it names; tag it with *tags*."""
        top = self._fetch(reference)
        log.info("copying %s/%s %s (%s)", self._source.registry, self._source_repository,
                 reference, describe(top))
        written = 0
        if top.is_index:
            children = [self._fetch(child.digest) for child in top.children]
            for child in children:  # every child read and checked before the first write
                if child.is_index:
                    raise RegistryError(f"{self._source_repository}@{top.digest[:19]} is an "
                                        "index of indexes, which jr registry copy does not copy.",
                                        hint="Copy each inner index by its digest.")
            for child in children:
                self._copy_blobs(child)
                self._put(child, child.digest)
                written += 1
        else:
            self._copy_blobs(top)
        self._put(top, top.digest)
        for tag in dict.fromkeys(tags):
            self._put(top, tag)
        source = PushTarget(registry=self._source.registry, repository=self._source_repository,
                            tags=()).name + (
            f"@{reference}" if reference.startswith("sha256:") else f":{reference}")
        return CopyResult(source, self._destination.registry, self._repository,
                          tuple(dict.fromkeys(tags)), top.digest, top.media_type, written + 1,
                          self.counts)

    def _fetch(self, reference: str) -> ManifestDocument:
        return fetch_document(self._source, self._source_repository, reference,
                              scopes=pull_scopes(self._source_repository))

    def _put(self, document: ManifestDocument, reference: str) -> None:
        self._destination.put_manifest(self._repository, reference, document.manifest.body,
                                       document.media_type)

    def _copy_blobs(self, image: ManifestDocument) -> None:
        for blob in image.blobs():
            if blob.digest in self._done:
                continue
            self._copy_blob(blob)
            self._done.add(blob.digest)

    def _copy_blob(self, blob: Descriptor) -> None:
        destination, repository = self._destination, self._repository
        if destination.blob_exists(repository, blob.digest) is not None:
            self.counts.present += 1
            return
        if self._same_registry and destination.mount_blob(repository, blob.digest,
                                                          self._source_repository):
            log.info("blob %s mounted from %s", blob.digest[:19], self._source_repository)
            self.counts.mounted += 1
            return
        log.info("blob %s: streaming %d bytes", blob.digest[:19], blob.size)
        destination.upload_blob(
            repository, lambda: SourceBlob(self._source, self._source_repository, blob),
            digest=blob.digest, size=blob.size)
        self.counts.streamed += 1
        self.counts.streamed_bytes += blob.size
