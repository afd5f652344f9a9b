"""`jr registry prune`: a repository's retention, planned first, deleted by digest.

The plan (`plan_prune`) lists every tag (tags/list, following `Link`), reads what each names,
and dates it by the image config's `created`; an index by its newest child's `created` (what its
images say of themselves; an index has no config). The unit is the manifest, not the tag: a
digest with several tags lives or goes with all of them, since deleting it removes every tag on
it. A manifest is kept when it is among the `keep` newest, when one of its tags matches a
`--keep-tag` pattern (the whole tag), when it is younger than `--older-than` days, when it has
no `created` time (reported), or when a kept index names it. Every other manifest is deleted
(`apply_prune`) with `DELETE /v2/<repo>/manifests/<digest>`. Nothing is deleted before the
whole plan is made, so a bad answer anywhere leaves the repository as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jenkins_registry.errors import JrError, RegistryError
from jenkins_registry.manifest_document import ManifestDocument, fetch_document, image_created
from jenkins_registry.reference import TAG_RE
from jenkins_registry.registry_client import ANY_MANIFEST_TYPES, RegistryClient

log = logging.getLogger(__name__)

CONFIG_LIMIT = 4 << 20  # an image config read for its `created` time


@dataclass(frozen=True)
class PrunePolicy:
    """What to keep: the *keep* newest manifests, tags fully matching *keep_tags*, and (with
    *older_than_days*) anything younger than that."""

    keep: int
    keep_tags: tuple[re.Pattern[str], ...] = ()
    older_than_days: float | None = None


@dataclass(frozen=True)
class TagPlan:
    """One tag's fate in the plan."""

    tag: str
    digest: str
    created: datetime | None
    delete: bool
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "digest": self.digest,
                "created": self.created.isoformat() if self.created else None,
                "action": "delete" if self.delete else "keep", "reason": self.reason}


@dataclass(frozen=True)
class PrunePlan:
    registry: str
    repository: str
    tags: tuple[TagPlan, ...]

    def doomed(self) -> list[str]:
        """The digests to delete, each once, newest first."""
        return list(dict.fromkeys(entry.digest for entry in self.tags if entry.delete))


@dataclass
class _Manifest:
    digest: str
    created: datetime | None
    tags: list[str] = field(default_factory=list)
    children: tuple[str, ...] = ()


def parse_created(text: str | None) -> datetime | None:
    """An RFC 3339 time (as image configs carry it), in UTC; None when absent or unreadable."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class _Dating:
    """Reads what tags name and when it was made, each manifest and config once."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self._client = client
        self._repository = repository
        self._configs: dict[str, datetime | None] = {}
        self._children: dict[str, datetime | None] = {}

    def _config_created(self, digest: str) -> datetime | None:
        if digest not in self._configs:
            config = self._client.get_blob(self._repository, digest, CONFIG_LIMIT)
            self._configs[digest] = parse_created(image_created(config))
        return self._configs[digest]

    def created(self, document: ManifestDocument) -> datetime | None:
        if not document.is_index:
            return self._config_created(document.config.digest) if document.config else None
        times = []
        for child in document.children:
            if child.digest not in self._children:
                inner = fetch_document(self._client, self._repository, child.digest)
                self._children[child.digest] = None if inner.is_index else self.created(inner)
            times.append(self._children[child.digest])
        known = [when for when in times if when is not None]
        return max(known) if known else None


def _check_tags(registry: str, repository: str, tags: Iterable[str]) -> None:
    for tag in tags:
        if not TAG_RE.match(tag):
            raise RegistryError(
                f"The registry {registry} lists a tag in {repository} that is not a valid tag "
                f"name ({tag[:40]!r}); nothing was deleted.",
                hint="A registry never stores such a name: check that the address is a registry.")


def plan_prune(client: RegistryClient, repository: str, policy: PrunePolicy, *,
               now: datetime | None = None) -> PrunePlan:
    """What `policy` keeps and deletes in *repository*, read but not changed."""
    now = now or datetime.now(UTC)
    tags = client.list_tags(repository)
    _check_tags(client.registry, repository, tags)
    dating = _Dating(client, repository)
    manifests: dict[str, _Manifest] = {}
    for tag in dict.fromkeys(tags):
        document = fetch_document(client, repository, tag)
        entry = manifests.get(document.digest)
        if entry is None:
            entry = manifests[document.digest] = _Manifest(
                document.digest, dating.created(document),
                children=tuple(child.digest for child in document.children))
        entry.tags.append(tag)
    reasons = _decide(list(manifests.values()), policy, now)
    plans = [TagPlan(tag, entry.digest, entry.created, reasons[entry.digest] is None,
                     reasons[entry.digest] or "beyond the newest, matched by nothing kept")
             for entry in _newest_first(manifests.values()) for tag in sorted(entry.tags)]
    return PrunePlan(client.registry, repository, tuple(plans))


def _newest_first(manifests: Iterable[_Manifest]) -> list[_Manifest]:
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(manifests, key=lambda m: (m.created or oldest, m.digest), reverse=True)


def _decide(manifests: Sequence[_Manifest], policy: PrunePolicy,
            now: datetime) -> dict[str, str | None]:
    """digest → why it is kept, or None when it is deleted."""
    reasons: dict[str, str | None] = {}
    dated = [m for m in _newest_first(manifests) if m.created is not None]
    for rank, manifest in enumerate(dated):
        if rank < policy.keep:
            reasons[manifest.digest] = f"one of the {policy.keep} newest"
            continue
        matched = [tag for tag in manifest.tags for pattern in policy.keep_tags
                   if pattern.fullmatch(tag)]
        young = (policy.older_than_days is not None and manifest.created is not None
                 and manifest.created > now - timedelta(days=policy.older_than_days))
        reasons[manifest.digest] = (
            f"tag {matched[0]} matches --keep-tag" if matched else
            f"younger than {policy.older_than_days:g} days" if young else None)
    for manifest in manifests:
        if manifest.created is None:
            reasons[manifest.digest] = "no created time in its config: kept"
    kept_children = {child for m in manifests if reasons[m.digest] is not None
                     for child in m.children}
    for manifest in manifests:
        if reasons[manifest.digest] is None and manifest.digest in kept_children:
            reasons[manifest.digest] = "named by a kept index"
    return reasons


def spared_since_planned(client: RegistryClient, plan: PrunePlan) -> set[str]:
    """Doomed digests that a tag the plan does not delete points at *now*: a tag pushed or moved
    onto an old image between the plan and the deletion (deleting by digest would take it too)."""
    doomed = set(plan.doomed())
    planned_deletions = {entry.tag for entry in plan.tags if entry.delete}
    spared: set[str] = set()
    for tag in client.list_tags(plan.repository):
        if tag in planned_deletions:
            continue
        digest = client.manifest_digest(plan.repository, tag, ANY_MANIFEST_TYPES)
        if digest in doomed:
            log.warning("%s:%s now points at %s, which the plan deletes: kept", plan.repository,
                        tag, digest[:19])
            spared.add(digest)
    return spared


def apply_prune(client: RegistryClient, plan: PrunePlan) -> list[str]:
    """Delete the plan's doomed manifests by digest, except those a tag the plan keeps points at
    now (`spared_since_planned`); returns the digests deleted (a digest gone already is not
    counted). A failure part-way names what was deleted before it."""
    deleted: list[str] = []
    spared = spared_since_planned(client, plan)
    for digest in (d for d in plan.doomed() if d not in spared):
        try:
            if client.remove_manifest(plan.repository, digest):
                deleted.append(digest)
        except JrError as exc:
            if deleted:
                exc.message = (f"{exc.message.rstrip('.')} ({len(deleted)} manifests were "
                               "deleted before this one).")
                exc.args = (exc.message,)
            raise
        log.info("deleted %s@%s", plan.repository, digest[:19])
    return deleted
