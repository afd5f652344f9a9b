"""Where a push goes: the registry, the repository path and the tags, checked once.

The CLI checks `--registry` (each one), `--repository` (alias `--name`) and `--tag` against
Docker's grammar (`reference`) here: into a `TargetRequest` for an archive or OCI layout, which
fills in what was not given from the name it records; into an `EnginePushPlan` (`plan_push`) for a
local image, whose own name fills it in. Every layer below takes these values as they are and
never parses the strings again; `HOST:PORT/NAME` is spelled here alone (`PushTarget.name`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jenkins_registry.errors import InvalidReferenceError, UsageError
from jenkins_registry.reference import (
    looks_like_image_id,
    parse_path,
    parse_reference,
    parse_registry,
    parse_tag,
)


@dataclass(frozen=True, kw_only=True)
class PushTarget:
    """A repository in a registry, and the tags to publish there (at least one, no repeats)."""

    registry: str  # HOST[:PORT], as `reference.parse_registry` returned it
    repository: str  # the path in the registry, e.g. local/jenkins
    tags: tuple[str, ...]

    @property
    def name(self) -> str:
        """`HOST:PORT/NAME`: the repository as the engine names it."""
        return f"{self.registry}/{self.repository}"

    def reference(self, tag: str) -> str:
        """`HOST:PORT/NAME:TAG`."""
        return f"{self.name}:{tag}"

    @property
    def references(self) -> tuple[str, ...]:
        """One `HOST:PORT/NAME:TAG` per tag: the local names the engine pushes."""
        return tuple(self.reference(tag) for tag in self.tags)

    @property
    def candidate_tags(self) -> tuple[str, ...]:
        """The tags whose current image a push looks at: the wanted ones, then `latest` (which
        usually holds the previous build, while a build-number tag is new every time)."""
        return tuple(dict.fromkeys([*self.tags, "latest"]))


@dataclass(frozen=True, kw_only=True)
class TargetRequest:
    """The target as given on the command line, checked: `repository` None and empty `tags`
    mean "the image's own" (`complete`)."""

    registry: str
    repository: str | None = None
    tags: tuple[str, ...] = ()

    def complete(self, own_path: str, own_tag: str | None) -> PushTarget:
        """The target, with the image's own path and tag (else `latest`) where none was given.
        *own_path* and *own_tag* are already checked by the caller, which read them."""
        return PushTarget(registry=self.registry, repository=self.repository or own_path,
                          tags=self.tags or (own_tag or "latest",))

    def complete_from_file(self, recorded: tuple[str | None, str | None], source: object) -> PushTarget:
        """`complete` with the name an archive or layout *source* records (*recorded*: its path
        and tag, either None), checked here since they were read from a file."""
        recorded_path, recorded_tag = recorded
        if self.repository is None and recorded_path is None:
            raise UsageError(f"{source} records no image name.",
                             hint="Pass the repository with --repository (e.g. --repository team/app).")
        own_path = self.repository or parse_path(str(recorded_path))
        own_tag = parse_tag(recorded_tag) if not self.tags and recorded_tag is not None else None
        return self.complete(own_path, own_tag)


@dataclass(frozen=True, kw_only=True)
class EnginePushPlan(PushTarget):
    """A push of a local image: the target, and the image as given (a name or an ID). Built by
    `plan_push` before any network work."""

    image: str
    image_is_id: bool


def plan_push(image: str, *, registry: str, repository: str | None,
              tags: Sequence[str]) -> EnginePushPlan:
    """Check the `--image` inputs against Docker's grammar and fill in the defaults: the one place
    they are parsed. *registry* comes from `reference.parse_registry`, checked already.

    --repository defaults to the image's own path (without its registry), --tag to the image's
    own tag, else `latest`. An image ID has no name, so it needs --repository.
    """
    checked_tags = parse_tags(tags)
    is_id = looks_like_image_id(image)
    own_path: str | None = None
    own_tag: str | None = None
    if is_id:
        if repository is None:
            raise UsageError(
                f"--image {image} is an image ID, which has no repository name.",
                hint="Give the path to push it under with --repository (alias --name), e.g. "
                "--repository local/jenkins.",
            )
    else:
        ref = parse_reference(image)
        own_path, own_tag = ref.path, ref.tag
    request = TargetRequest(registry=registry,
                            repository=parse_path(repository) if repository is not None else None,
                            tags=checked_tags)
    target = request.complete(own_path or "", own_tag)
    return EnginePushPlan(registry=target.registry, repository=target.repository, tags=target.tags,
                          image=image, image_is_id=is_id)


def parse_request(registry: str, repository: str | None, tags: Iterable[str]) -> TargetRequest:
    """`--repository` and `--tag`, checked in that order, for *registry* (checked already)."""
    return TargetRequest(registry=registry,
                         repository=parse_path(repository) if repository is not None else None,
                         tags=parse_tags(tags))


def parse_tags(texts: Iterable[str]) -> tuple[str, ...]:
    """Check every `--tag` once (`reference.parse_tag`) and drop repeats, keeping the order. An
    empty one is most often a variable the shell expanded to nothing (`--tag "${GIT_COMMIT}"`)."""
    texts = list(texts)
    if "" in texts:
        raise InvalidReferenceError(
            "The tag given with --tag is empty, probably because a variable in it (such as "
            "${GIT_COMMIT}) was unset and the shell expanded it to nothing.",
            hint="Set the variable in the job (or give it a default: --tag \"${GIT_COMMIT:-dev}\"), "
            "or drop that --tag.")
    return tuple(dict.fromkeys(parse_tag(text) for text in texts))


def parse_registries(texts: Iterable[str]) -> tuple[str, ...]:
    """Check every `--registry` (`reference.parse_registry`) and drop repeats, keeping the order
    given: a registry named twice is pushed once. Registries are the same when their `HOST[:PORT]`
    is spelled the same; `localhost:5000` and `127.0.0.1:5000` are two (two names the engine
    tags, two keyring entries)."""
    return tuple(dict.fromkeys(parse_registry(text) for text in texts))
