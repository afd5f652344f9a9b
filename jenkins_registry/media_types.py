"""The media types of manifests, indexes, configs and layers (Docker schema 2 and OCI), written
once: the push, the archive reader and `jr registry` import them from here (registry-notes.md §3).
Importing this costs nothing, so `jr-push --help` may."""

from __future__ import annotations

from typing import Literal

Encoding = Literal["none", "gzip", "zstd"]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: dict[Encoding, str] = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
OCI_NONDISTRIBUTABLE_LAYERS = (
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)

IMAGE_MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
# A layer's encoding on the wire, by its media type.
LAYER_ENCODINGS: dict[str, Encoding] = {
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
    **{media: encoding for encoding, media in OCI_LAYER.items()},
}
# Layers a registry does not serve (Windows base layers): skipped, as the engine skips them.
FOREIGN_LAYERS = (DOCKER_FOREIGN_LAYER_GZIP, *OCI_NONDISTRIBUTABLE_LAYERS)
