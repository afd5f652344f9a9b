"""Push a local image through the Docker engine: tag, log in, push every tag, read the digest.

Why not `client.images.push()` and trust it: the engine reports registry failures inside the JSON
stream with HTTP 200, so the SDK returns normally from a failed push (docker-py #1772, #3161). We
always stream, fail on the first `errorDetail`, and take the digest from the `aux` record or, when
the engine sends none (containerd image store), from the `TAG: digest: sha256:… size: N` line.

Credentials travel per request (`X-Registry-Auth`), never through a config file; an anonymous push
sends an explicitly empty auth so that a stale ~/.docker/config.json entry cannot take over.
The `HOST:PORT/NAME:TAG` names made for the push are given back when it ends (`engine_tags`, run by
`push_route`, which also decides whether the engine pushes at all).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jenkins_registry import registry_errors
from jenkins_registry.docker_engine import DockerEngine, EngineCallError, LocalImage
from jenkins_registry.errors import ImageNotFoundError, JrError, RegistryError, redact
from jenkins_registry.progress import NullProgress, ProgressSink
from jenkins_registry.push_result import PushResult
from jenkins_registry.push_target import EnginePushPlan
from jenkins_registry.secret_types import UsernamePassword

log = logging.getLogger(__name__)

DIGEST_LINE_RE = re.compile(r"^(?P<tag>\S+): digest: (?P<digest>sha256:[0-9a-f]{64}) size: (?P<size>\d+)$")
EXTRA_TAG_WORKERS = 4


def _classify(text: str, plan: EnginePushPlan, credentials: UsernamePassword | None) -> JrError:
    """The engine's words about the registry (stream `errorDetail`, login or push refusal)."""
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
            f"The Docker engine ended the push of {plan.reference(tag)} without reporting a digest.",
            hint="Check the engine's log (journalctl -u docker); the push may not have completed.",
        )
    return _TagPushed(tag=tag, digest=digest, size=size)


def _push_tag(engine: DockerEngine, plan: EnginePushPlan, tag: str,
              credentials: UsernamePassword | None, progress: ProgressSink) -> _TagPushed:
    stream = engine.push(plan.name, tag, credentials,
                         explain=lambda text: _classify(text, plan, credentials))
    return _read_push_stream(stream, tag=tag, plan=plan, credentials=credentials, progress=progress)


def _push_named(engine: DockerEngine, plan: EnginePushPlan, image_id: str, tag: str,
                credentials: UsernamePassword | None, progress: ProgressSink) -> _TagPushed:
    """Push one tag; when its local name has gone meanwhile, name the image again, once.

    Another build on this agent that pushed the same image to the same tag gives the name back
    when it ends (`engine_tags`), possibly between this run's tagging and its push.
    """
    try:
        return _push_tag(engine, plan, tag, credentials, progress)
    except ImageNotFoundError as missing:
        try:
            engine.tag(image_id, plan.reference(tag))
        except EngineCallError:
            raise missing from None
        log.info("%s was untagged during the push (another build?); tagged it again",
                 plan.reference(tag))
        return _push_tag(engine, plan, tag, credentials, progress)


def tag_and_login(engine: DockerEngine, plan: EnginePushPlan, image: LocalImage,
                  credentials: UsernamePassword | None) -> None:
    """Tag *image* under the registry name, check the credentials through the engine. Run inside
    `engine_tags.registry_names`, which gives the names back."""
    for reference in plan.references:
        engine.tag(image.id, reference, shown_as=plan.image)
    log.info("tagged %s as %s", plan.image, ", ".join(plan.references))
    if credentials is not None:
        engine.login(credentials, plan.registry,
                     explain=lambda text: _classify(text, plan, credentials))
        log.info("logged in to %s as %s (checked by the engine; nothing written to disk)",
                 plan.registry, credentials.username)


def push_tags(engine: DockerEngine, plan: EnginePushPlan, image: LocalImage,
              credentials: UsernamePassword | None, progress: ProgressSink) -> PushResult:
    """Let the engine push every tag (made by `tag_and_login`) with per-request credentials."""
    progress.message(f"The push refers to repository [{plan.name}]")
    # The first tag uploads the layers. Only then the others go, side by side: each is a HEAD per
    # layer and a manifest PUT. (Pushing all tags at once made the engine upload the same blob
    # concurrently, which the registry answered with 500.) Their progress would repeat the first's.
    first = _push_named(engine, plan, image.id, plan.tags[0], credentials, progress)
    results = [first]
    if len(plan.tags) > 1:
        # Daemon threads (`worker_pool`): interrupted, the run does not wait for the engine to
        # finish these pushes; closing the engine client then makes it cancel them.
        from jenkins_registry.worker_pool import DetachedPool, wait_done

        futures = []
        with DetachedPool(min(EXTRA_TAG_WORKERS, len(plan.tags) - 1), "jr-push-tag") as pool:
            try:
                futures = [pool.submit(_push_named, engine, plan, image.id, tag, credentials,
                                       NullProgress()) for tag in plan.tags[1:]]
                wait_done(futures)
            except BaseException:
                pool.abandon(futures)
                raise
        results += [future.result() for future in futures]
    digests = {pushed.digest for pushed in results}
    if len(digests) != 1:
        raise RegistryError(
            f"The tags of {plan.name} resolved to different digests ({', '.join(sorted(digests))}).",
            hint="Another push to the same tags ran at the same time; run the push again.",
        )
    return PushResult(target=plan, digest=first.digest, manifest_size=first.size,
                      image_size=image.size, image_id=image.id, method="engine")
