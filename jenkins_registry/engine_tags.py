"""The registry names `jr-push --image` gives a local image, and giving them back afterwards.

The engine pushes a name, so the image is first tagged `HOST:PORT/NAME:TAG` for every tag. Left
behind, those names pin every build's image on the agent (`--tag $BUILD_NUMBER`) until its disk
fills, so `registry_names` gives them back when the push ends, however it ends:

* a name that did not exist is removed (`DELETE /images/{name}?noprune=1`, an untag: the image
  and its data stay);
* a name that already named this image is left: this run did not make it;
* a name that named another image is pointed back at that image, which would otherwise lose the
  user's name and dangle.

The engine deletes an image together with its last name (noprune only spares the parents), so a
name is never removed when it would be the image's last: an image given by ID with no other name
keeps one, and a log line says which. Removing the last tag of a repository also drops the
engine's digest references there (`docker images --digests`); what the engine knows about which
registry blobs hold the layers stays, so its next push still skips them.

Facts first (`record`, and the state at the end), a pure decision (`plan_give_back`), acting last.
Giving back never raises: a failure is a warning and the push's own outcome stands.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from jenkins_registry.docker_engine import DockerEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NameBefore:
    """What a registry name named before this run."""

    reference: str  # HOST:PORT/NAME:TAG
    image_id: str | None  # None: the name did not exist


@dataclass(frozen=True, kw_only=True)
class GiveBack:
    """What to do with one run's names at its end (decided by `plan_give_back`)."""

    point_back: tuple[tuple[str, str], ...] = ()  # (reference, the image it named before)
    remove: tuple[str, ...] = ()
    spare: str | None = None  # the image's last name, kept: removing it would delete the image


def plan_give_back(image_id: str, before: Sequence[NameBefore], now: Mapping[str, str | None],
                   names_now: int) -> GiveBack:
    """Decide from facts: *now* maps each reference to the image it names at the end (None: gone),
    *names_now* is how many tags the pushed image has at the end (these among them)."""
    point_back: list[tuple[str, str]] = []
    remove: list[str] = []
    for name in before:
        if name.image_id == image_id:
            continue  # it named this image already: not made by this run
        if now.get(name.reference) != image_id:
            continue  # moved or removed since (another build on this agent): no longer ours
        if name.image_id is None:
            remove.append(name.reference)
        else:
            point_back.append((name.reference, name.image_id))
    # Counting instead of comparing names: RepoTags spells names in their short form (docker.io).
    spare = None
    if remove and names_now - len(point_back) - len(remove) < 1:
        spare, remove = remove[0], remove[1:]
    return GiveBack(point_back=tuple(point_back), remove=tuple(remove), spare=spare)


def record(engine: DockerEngine, references: Sequence[str]) -> tuple[NameBefore, ...]:
    """What each of *references* names now; raises EngineUnavailableError (nothing is changed)."""
    named = engine.images_named(references)
    return tuple(NameBefore(reference, named[reference]) for reference in references)


def give_back(engine: DockerEngine, image_id: str, before: Sequence[NameBefore]) -> GiveBack | None:
    """Undo this run's names on the engine; logs what it did. Never raises an Exception (a
    failure here must not replace the push's result); returns the plan, None when it failed."""
    references = [name.reference for name in before]
    try:
        now = engine.images_named(references)
        names_now = len(engine.tags_of(image_id))
    except Exception as exc:  # whatever failed, the push's outcome stands
        log.warning("could not check the local tags %s (%s); they may remain on this agent: "
                    "see `docker images %s`", ", ".join(references), _why(exc),
                    references[0].rsplit(":", 1)[0] if references else "")
        log.debug("giving back the local tags failed", exc_info=True)
        return None
    plan = plan_give_back(image_id, before, now, names_now)
    for reference, earlier in plan.point_back:
        try:
            engine.tag(earlier, reference)
        except Exception as exc:  # likewise
            log.warning("could not point the local tag %s back at %s (%s); it stays on the pushed "
                        "image", reference, _short(earlier), _why(exc))
        else:
            log.info("pointed the local tag %s back at %s, the image it named before", reference,
                     _short(earlier))
    removed = []
    for reference in plan.remove:
        try:
            engine.untag(reference)
        except Exception as exc:  # likewise
            log.warning("could not remove the local tag %s (%s); `docker rmi %s` removes it",
                        reference, _why(exc), reference)
        else:
            removed.append(reference)
    if removed:
        log.info("removed the local tag%s %s (the image stays)", "s" if len(removed) > 1 else "",
                 ", ".join(removed))
    if plan.spare is not None:
        log.info("kept the local tag %s: it is the only name of %s, and the engine would delete "
                 "the image with it (`docker rmi %s` removes both)", plan.spare, _short(image_id),
                 plan.spare)
    return plan


@contextlib.contextmanager
def registry_names(engine: DockerEngine, image_id: str, references: Sequence[str], *,
                   keep: bool) -> Iterator[tuple[NameBefore, ...]]:
    """Note what *references* name now; when the block ends (returns, raises, or is interrupted)
    give back the names it made, unless *keep*. The block does the tagging."""
    before = record(engine, references)
    try:
        yield before
    finally:
        if keep:
            log.debug("leaving the local tags %s as asked", ", ".join(references))
        else:
            give_back(engine, image_id, before)


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _why(exc: BaseException) -> str:
    """The engine's own words about a local name (it never saw a secret), else the type."""
    detail = getattr(exc, "detail", None)
    return str(detail) if detail else type(exc).__name__
