"""`jr registry tag`: more tags on a manifest (or index) that is in the registry already.

The manifest is read once and put back under each new tag byte for byte, so its digest is kept
and no blob is read or sent: the registry checks at the PUT that it holds every blob named.
Everything is checked before the first PUT (the tags by the caller, the manifest here), so a
refusal changes nothing; a PUT that fails part-way leaves the tags before it in place, and the
error says which.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from jenkins_registry.errors import JrError
from jenkins_registry.manifest_document import describe, fetch_document
from jenkins_registry.push_target import PushTarget
from jenkins_registry.registry_client import RegistryClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaggedReference:
    """One tag written: where, and the digest it now names."""

    registry: str
    repository: str
    tag: str
    digest: str
    media_type: str

    @property
    def reference(self) -> str:
        target = PushTarget(registry=self.registry, repository=self.repository, tags=(self.tag,))
        return f"{target.reference(self.tag)}@{self.digest}"

    def to_json(self) -> dict[str, str]:
        return {"reference": self.reference, "repository": self.repository, "tag": self.tag,
                "digest": self.digest, "mediaType": self.media_type}


def add_tags(client: RegistryClient, repository: str, reference: str,
             new_tags: Sequence[str]) -> list[TaggedReference]:
    """Put the manifest *reference* (tag or digest) of *repository* under each of *new_tags*
    (already validated); returns one TaggedReference per tag, in order."""
    document = fetch_document(client, repository, reference)
    log.info("%s/%s: %s %s, %s", client.registry, repository, reference, document.digest[:19],
             describe(document))
    done: list[TaggedReference] = []
    for tag in dict.fromkeys(new_tags):  # each tag once, in the order given
        try:
            digest = client.put_manifest(repository, tag, document.manifest.body, document.media_type)
        except JrError as exc:
            if done:
                exc.message = (f"{exc.message.rstrip('.')} (tagged already: "
                               f"{', '.join(t.tag for t in done)}).")
                exc.args = (exc.message,)
            raise
        done.append(TaggedReference(client.registry, repository, tag, digest, document.media_type))
    return done
