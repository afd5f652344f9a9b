"""The target's tags in the registry: what they hold now, and writing a manifest under them.

What the wanted tags and `latest` hold is fetched once per push (`CurrentImages`): the route
decision (`push_route`) asks whether one of them already is the image and, for an update,
whether one shares its layers; the upload (`daemonless_push`) maps the layers they hold to blobs
the registry has, so that it does not send them again. Both read this one record, so a push
fetches each of these manifests and configs at most once. `put_tags` writes the manifest under
the wanted tags, last, for either route.

"Already there" has one rule, `holds_image`: a tagged image manifest whose config digest is the
image ID is this image, whichever client compressed its layers (a tagged manifest's blobs are all
in the registry: it checked them at PUT, and garbage collection keeps what a tag references).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from jenkins_registry import media_types
from jenkins_registry.errors import JrError, RegistryError
from jenkins_registry.progress import ProgressSink
from jenkins_registry.push_target import PushTarget
from jenkins_registry.registry_client import Manifest, RegistryClient

log = logging.getLogger(__name__)

IMAGE_MANIFESTS = media_types.IMAGE_MANIFEST_TYPES


@dataclass(frozen=True)
class LayerBlob:
    """A layer as a manifest describes it."""

    media_type: str | None
    digest: str
    size: int


@dataclass(frozen=True)
class TaggedImage:
    """The image manifest a tag in the target repository points at now."""

    tag: str
    manifest: Manifest
    config_digest: str
    layers: tuple[LayerBlob, ...]


def holds_image(tagged: TaggedImage, image_id: str) -> bool:
    """Whether *tagged* is the image whose ID (config digest) is *image_id*."""
    return tagged.config_digest == image_id


def parse_tagged(tag: str, manifest: Manifest) -> TaggedImage | None:
    """*manifest* as a TaggedImage; None when it is not an image manifest (an index, schema 1,
    or a document of another shape)."""
    if manifest.media_type not in IMAGE_MANIFESTS:
        return None
    try:
        document = json.loads(manifest.body)
        config_digest = str(document["config"]["digest"])
        layers = tuple(LayerBlob(None if layer.get("mediaType") is None else str(layer["mediaType"]),
                                 str(layer["digest"]), int(layer["size"]))
                       for layer in document["layers"])
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # nested too deep
        return None
    return TaggedImage(tag, manifest, config_digest, layers)


class CurrentImages:
    """The images `target.candidate_tags` point at, fetched lazily and remembered, and their
    configs' DiffIDs. One per push; used from one thread."""

    def __init__(self, client: RegistryClient, target: PushTarget) -> None:
        self.client = client
        self.target = target
        self._tagged: dict[str, TaggedImage | None] = {}
        self._diff_ids: dict[str, tuple[str, ...] | None] = {}

    def get(self, tag: str) -> TaggedImage | None:
        """What *tag* holds (None: nothing, or not an image manifest): one GET, the first time.
        Raises the registry's error; a failed GET is asked again next time."""
        if tag not in self._tagged:
            manifest = self.client.get_manifest(self.target.repository, tag, IMAGE_MANIFESTS)
            self._tagged[tag] = None if manifest is None else parse_tagged(tag, manifest)
        return self._tagged[tag]

    def find_holding(self, image_id: str) -> TaggedImage | None:
        """The first candidate tag that holds *image_id*, fetching them in order until one does
        (the others need not be asked)."""
        for tag in self.target.candidate_tags:
            tagged = self.get(tag)
            if tagged is not None and holds_image(tagged, image_id):
                return tagged
        return None

    def fetched(self) -> tuple[TaggedImage, ...]:
        """The images found so far, in candidate order."""
        return tuple(tagged for tag in self.target.candidate_tags
                     if (tagged := self._tagged.get(tag)) is not None)

    def diff_ids(self, tagged: TaggedImage) -> tuple[str, ...] | None:
        """The DiffIDs in *tagged*'s config (one GET per config, the first time); None when the
        config cannot be read."""
        digest = tagged.config_digest
        if digest not in self._diff_ids:
            try:
                config = json.loads(self.client.get_blob(self.target.repository, digest))
                layers = config["rootfs"]["diff_ids"]
                if not isinstance(layers, list):
                    raise TypeError("diff_ids is not a list")
                self._diff_ids[digest] = tuple(map(str, layers))
            except (RegistryError, ValueError, KeyError, TypeError, RecursionError) as exc:
                log.debug("cannot read the config of %s:%s (%s)", self.target.repository,
                          tagged.tag, type(exc).__name__)
                self._diff_ids[digest] = None
        return self._diff_ids[digest]


def put_tags(client: RegistryClient, target: PushTarget, body: bytes, media_type: str, digest: str,
             progress: ProgressSink, *, existed: bool | None, holding: str | None = None) -> None:
    """PUT the manifest once per tag, in order; on a failure, take back the tags this push wrote.

    *holding* names a tag that holds this manifest already (not written again). *existed* says
    whether the manifest was in the registry before (None: ask it, when it matters).
    """
    tags = [tag for tag in target.tags if tag != holding]
    if existed is None:
        existed = len(tags) > 1 and client.manifest_digest(target.repository, digest,
                                                           (media_type,)) is not None
    written: list[str] = []
    for tag in target.tags:
        if tag != holding:
            try:
                client.put_manifest(target.repository, tag, body, media_type)
            except JrError as exc:
                if written:
                    undone = not existed and client.delete_manifest(target.repository, digest)
                    left = "" if undone else (
                        f" The tags {', '.join(written)} were already published and could not be "
                        "taken back; they point at the complete image.")
                    exc.message += left
                    exc.args = (exc.message,)
                raise
            written.append(tag)
        progress.message(f"{tag}: digest: {digest} size: {len(body)}")
