"""Push a local image through the Docker engine: tag, log in, push every tag, read the digest.

Why not `client.images.push()` and trust it: the engine reports registry failures inside the JSON
stream with HTTP 200, so the SDK returns normally from a failed push (docker-py #1772, #3161). We
always stream, fail on the first `errorDetail`, and take the digest from the `aux` record or, when
the engine sends none (containerd image store), from the `TAG: digest: sha256:… size: N` line.

Credentials travel per request (`X-Registry-Auth`), never through a config file; an anonymous push
sends an explicitly empty auth so that a stale ~/.docker/config.json entry cannot take over.
The `HOST:PORT/NAME:TAG` names made for the push are given back when it ends (`engine_tags`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jenkins_registry import engine_tags, registry_errors
from jenkins_registry.credentials import UsernamePassword
from jenkins_registry.errors import (
    EngineUnavailableError,
    ImageNotFoundError,
    JrError,
    RegistryError,
    UsageError,
    redact,
)
from jenkins_registry.progress import NullProgress, ProgressSink
from jenkins_registry.push_result import PushResult
from jenkins_registry.reference import (
    looks_like_image_id,
    parse_path,
    parse_reference,
    parse_registry,
    parse_tag,
)

log = logging.getLogger(__name__)

DIGEST_LINE_RE = re.compile(r"^(?P<tag>\S+): digest: (?P<digest>sha256:[0-9a-f]{64}) size: (?P<size>\d+)$")
EXTRA_TAG_WORKERS = 4


@dataclass(frozen=True, kw_only=True)
class EnginePushPlan:
    """A validated push: which local image, and where it goes. Built before any network work."""

    image: str
    registry: str
    repository: str
    tags: tuple[str, ...]
    image_is_id: bool

    @property
    def target(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def references(self) -> tuple[str, ...]:
        """The local names the engine pushes: `HOST:PORT/NAME:TAG` per tag."""
        return tuple(f"{self.target}:{tag}" for tag in self.tags)


def plan_push(image: str, *, registry: str, repository: str | None, tags: Sequence[str]) -> EnginePushPlan:
    """Check every name against Docker's grammar and fill in the defaults.

    --name defaults to the image's own path (without its registry), --tag to the image's own tag,
    else `latest`. An image ID has no name, so it needs --name.
    """
    registry = parse_registry(registry)
    checked_tags = [parse_tag(tag) for tag in tags]
    is_id = looks_like_image_id(image)
    own_tag: str | None = None
    if is_id:
        if repository is None:
            raise UsageError(
                f"--image {image} is an image ID, which has no repository name.",
                hint="Give the name to push it under with --name, e.g. --name local/jenkins.",
            )
    else:
        ref = parse_reference(image)
        own_tag = ref.tag
        repository = repository if repository is not None else ref.path
    assert repository is not None
    repository = parse_path(repository)
    if not checked_tags:
        checked_tags = [own_tag or "latest"]
    unique = tuple(dict.fromkeys(checked_tags))
    return EnginePushPlan(image=image, registry=registry, repository=repository, tags=unique,
                          image_is_id=is_id)


def find_image(client: Any, plan: EnginePushPlan) -> Any:
    """The SDK's Image for `plan.image`; raises ImageNotFoundError or EngineUnavailableError."""
    import docker
    import requests

    try:
        return client.images.get(plan.image)
    except docker.errors.ImageNotFound as exc:
        raise registry_errors.image_missing(plan.image) from exc
    except docker.errors.APIError as exc:
        raise EngineUnavailableError(
            f"The Docker engine failed to look up {plan.image!r}: {exc.explanation or exc}"
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise EngineUnavailableError(f"Lost the Docker engine while looking up {plan.image!r}.") from exc


def _login(client: Any, plan: EnginePushPlan, credentials: UsernamePassword) -> None:
    """Check the credentials against the registry through the engine; writes no file.

    reauth=True skips the SDK's shortcut that returns a cached entry without asking the registry.
    """
    import docker
    import requests

    try:
        client.login(username=credentials.username, password=credentials.password.reveal(),
                     registry=plan.registry, reauth=True)
    except docker.errors.APIError as exc:
        text = redact(str(exc.explanation or exc), [credentials.password.reveal()])
        raise _classify(text, plan, credentials) from None
    except requests.exceptions.RequestException as exc:
        raise EngineUnavailableError("Lost the Docker engine during the registry login.") from exc
    log.info("logged in to %s as %s (checked by the engine; nothing written to disk)",
             plan.registry, credentials.username)


def _classify(text: str, plan: EnginePushPlan, credentials: UsernamePassword | None) -> JrError:
    return registry_errors.classify_engine_message(
        text, registry=plan.registry, repository=plan.repository,
        username=credentials.username if credentials else None, image=plan.image,
    )


@dataclass(frozen=True)
class _TagPushed:
    tag: str
    digest: str
    size: int | None


def _read_push_stream(
    stream: Iterable[Mapping[str, Any]], *, tag: str, plan: EnginePushPlan,
    credentials: UsernamePassword | None, progress: ProgressSink,
) -> _TagPushed:
    """Consume the whole stream (closing it early would cancel the push) and judge it."""
    secret = credentials.password.reveal() if credentials else None
    digest: str | None = None
    size: int | None = None
    for event in stream:
        if "errorDetail" in event or "error" in event:
            detail = event.get("errorDetail") or {}
            text = str(detail.get("message") or event.get("error") or "unknown error")
            raise _classify(redact(text, [secret]), plan, credentials)
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            digest = str(aux["Digest"])
            size = int(aux["Size"]) if aux.get("Size") is not None else size
            continue
        status = str(event.get("status") or "")
        match = DIGEST_LINE_RE.match(status)
        if match:
            digest = digest or match.group("digest")
            size = size if size is not None else int(match.group("size"))
            continue
        layer_id = event.get("id")
        if layer_id and status:
            detail = event.get("progressDetail") or {}
            progress.layer(str(layer_id), status, detail.get("current"), detail.get("total"))
        elif status:
            log.debug("engine: %s", status)
    if digest is None:
        raise RegistryError(
            f"The Docker engine ended the push of {plan.target}:{tag} without reporting a digest.",
            hint="Check the engine's log (journalctl -u docker); the push may not have completed.",
        )
    return _TagPushed(tag=tag, digest=digest, size=size)


def _push_tag(client: Any, plan: EnginePushPlan, tag: str, credentials: UsernamePassword | None,
              progress: ProgressSink) -> _TagPushed:
    import docker
    import requests

    # An explicit (possibly empty) auth: the SDK would otherwise fall back to config.json entries.
    auth = credentials.auth_config() if credentials else {}
    try:
        stream = client.api.push(plan.target, tag=tag, stream=True, decode=True, auth_config=auth)
        return _read_push_stream(stream, tag=tag, plan=plan, credentials=credentials, progress=progress)
    except docker.errors.APIError as exc:
        text = redact(str(exc.explanation or exc), [auth.get("password")])
        raise _classify(text, plan, credentials) from None
    except requests.exceptions.RequestException as exc:
        raise EngineUnavailableError(
            f"Lost the Docker engine while pushing {plan.target}:{tag} ({type(exc).__name__})."
        ) from None


def _push_named(client: Any, plan: EnginePushPlan, image_id: str, tag: str,
                credentials: UsernamePassword | None, progress: ProgressSink) -> _TagPushed:
    """Push one tag; when its local name has gone meanwhile, name the image again, once.

    Another build on this agent that pushed the same image to the same tag gives the name back
    when it ends (`engine_tags`), possibly between this run's tagging and its push.
    """
    import docker

    try:
        return _push_tag(client, plan, tag, credentials, progress)
    except ImageNotFoundError as missing:
        try:
            client.api.tag(image_id, repository=plan.target, tag=tag)
        except docker.errors.APIError:
            raise missing from None
        log.info("%s:%s was untagged during the push (another build?); tagged it again",
                 plan.target, tag)
        return _push_tag(client, plan, tag, credentials, progress)


def push_with_engine(
    client: Any,
    plan: EnginePushPlan,
    credentials: UsernamePassword | None,
    progress: ProgressSink | None = None,
    *,
    keep_tags: bool = False,
) -> PushResult:
    """Tag the local image under the registry name, log in, push every tag; all or an error.
    The names made for it are given back at the end unless *keep_tags*."""
    image = find_image(client, plan)
    with engine_tags.registry_names(client, str(image.id), plan.references, keep=keep_tags):
        tag_and_login(client, plan, image, credentials)
        return push_tags(client, plan, image, credentials, progress or NullProgress())


def tag_and_login(client: Any, plan: EnginePushPlan, image: Any,
                  credentials: UsernamePassword | None) -> None:
    """Tag *image* (from `find_image`) under the registry name, check the credentials through
    the engine. Run inside `engine_tags.registry_names`, which gives the names back."""
    import docker

    for tag in plan.tags:
        try:
            client.api.tag(image.id, repository=plan.target, tag=tag)
        except docker.errors.APIError as exc:
            raise EngineUnavailableError(
                f"The Docker engine could not tag {plan.image} as {plan.target}:{tag}: "
                f"{exc.explanation or exc}"
            ) from exc
    log.info("tagged %s as %s", plan.image, ", ".join(plan.references))
    if credentials is not None:
        _login(client, plan, credentials)


def push_tags(client: Any, plan: EnginePushPlan, image: Any, credentials: UsernamePassword | None,
              progress: ProgressSink) -> PushResult:
    """Let the engine push every tag (made by `tag_and_login`) with per-request credentials."""
    progress.message(f"The push refers to repository [{plan.target}]")
    # The first tag uploads the layers. Only then the others go, side by side: each is a HEAD per
    # layer and a manifest PUT. (Pushing all tags at once made the engine upload the same blob
    # concurrently, which the registry answered with 500.) Their progress would repeat the first's.
    first = _push_named(client, plan, str(image.id), plan.tags[0], credentials, progress)
    results = [first]
    if len(plan.tags) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(EXTRA_TAG_WORKERS, len(plan.tags) - 1)) as pool:
            futures = [pool.submit(_push_named, client, plan, str(image.id), tag, credentials,
                                   NullProgress()) for tag in plan.tags[1:]]
            results += [future.result() for future in futures]
    digests = {result.digest for result in results}
    if len(digests) != 1:
        raise RegistryError(
            f"The tags of {plan.target} resolved to different digests ({', '.join(sorted(digests))}).",
            hint="Another push to the same tags ran at the same time; run the push again.",
        )
    return PushResult(
        registry=plan.registry,
        repository=plan.repository,
        tags=plan.tags,
        digest=first.digest,
        manifest_size=first.size,
        image_size=image.attrs.get("Size"),
        image_id=image.id,
        method="engine",
    )
