"""`jr-push --image`: which route a local image takes to the registry, decided in one place.

The engine always does what only it can: it finds the image, tags it under the registry name and
checks the credentials (its login, with reauth). The upload then takes one of two routes: the
engine pushes (`engine_push`), or the image is exported and uploaded by jr-push (`export_push`).
When a wanted tag already holds the image, only the other tags are written (`unchanged`).

`auto`, the default, decides per push, in this order (docs/push.md):
  1. only the engine can: it is remote, keeps images in containerd's store (it then pushes the
     stored compressed layers, no slower), the registry wants a client certificate (certs.d
     *.cert / *.key), or the registry does not answer from here the way the engine reaches it;
  2. unchanged: a wanted tag (or `latest`) already holds this image (`target_tags.holds_image`);
  3. the engine knows the layers: a local image with a digest reference at this registry shares
     a layer with this one, so the engine skips or mounts those → the engine pushes;
  4. an update on an agent that builds here again: a wanted tag or `latest` holds an earlier build
     that shares a layer and whose image this engine still holds. The engine uploads the shared
     layers once, learns which blobs hold them, and from then on sends only new layers, while an
     export would read the whole image every time → the engine pushes;
  5. no room in the temporary directory for the export → the engine pushes;
  6. otherwise export and upload; layers the registry already has under a wanted tag or `latest`
     are skipped (a fresh engine, as on an ephemeral agent, re-uploads every layer).
`export` forces the export (failing with the reason where `auto` would leave the push to the
engine: steps 1 and 5); `engine` always lets the engine push.

Facts first, a pure decision, acting last. Facts cost requests (an unchanged re-push must stay a
handful), so they are gathered one at a time, in the order of the rules: `choose_route` answers
with the next `Fact` it needs until it can answer with a `RouteChoice`. Tests call it with plain
values. Whichever route, and however the push ends, the `HOST:PORT/NAME:TAG` names made for it
are given back afterwards (`engine_tags`), unless the caller keeps them.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from jenkins_registry import engine_push, engine_tags, export_push
from jenkins_registry.docker_engine import DockerEngine, LocalImage, uses_containerd_store
from jenkins_registry.errors import (
    EngineUnavailableError,
    InputFileError,
    InsecureRegistryError,
    JrError,
    ProxyAuthenticationError,
    RegistryError,
    UnreachableError,
    UsageError,
)
from jenkins_registry.export_push import CERTS_DIR, RegistryRules
from jenkins_registry.progress import ProgressSink
from jenkins_registry.push_result import PushResult
from jenkins_registry.push_target import EnginePushPlan, PushTarget
from jenkins_registry.reference import is_loopback
from jenkins_registry.secret_types import UsernamePassword
from jenkins_registry.target_tags import CurrentImages, TaggedImage, holds_image, put_tags

if TYPE_CHECKING:
    from jenkins_registry.http_transport import HttpTransport
    from jenkins_registry.registry_client import RegistryClient, RetryPolicy

log = logging.getLogger(__name__)

Route = Literal["auto", "engine", "export"]
ROUTES: tuple[Route, ...] = ("auto", "engine", "export")
# Inspecting every local image from this registry bounds step 3; past this many, the engine pushes.
MAX_IMAGES_INSPECTED = 64


@dataclass(frozen=True, kw_only=True)
class LocalPushOptions:
    """How `push_local_image` goes about it."""

    route: Route = "auto"
    keep_tags: bool = False  # leave the HOST:PORT/NAME:TAG names on the image
    engine_address: str = "unix:///var/run/docker.sock"  # DOCKER_HOST: where the engine is
    certs_dir: Path = CERTS_DIR
    temp_dir: str | None = None  # for the export (None: the system's temporary directory)
    retry: RetryPolicy | None = None  # jr-push's own registry requests (--timeout); None: defaults


# -- the facts -------------------------------------------------------------------------------------


class NotAsked(enum.Enum):
    """A fact not gathered yet."""

    NOT_ASKED = "not asked"


NOT_ASKED = NotAsked.NOT_ASKED


class Fact(enum.Enum):
    """A fact `choose_route` needs next, in the order of the rules."""

    ENGINE_ONLY = "whether only the engine can push (where it is, client certificates)"
    RULES = "how the engine reaches the registry"
    REGISTRY = "whether the registry answers from here as the engine reaches it"
    CURRENT = "what the wanted tags and latest hold"
    ENGINE_STORE = "whether the engine keeps images in containerd's store"
    ENGINE_LAYERS = "a digest reference at the registry of a local image sharing a layer"
    UPDATE = "an earlier build under a wanted tag or latest that shares a layer"
    ENGINE_HOLDS_UPDATE = "whether this engine holds that earlier build"
    ROOM = "room for the export in the temporary directory"


@dataclass(frozen=True, kw_only=True)
class RouteFacts:
    """What the decision is made from. Each fact is NOT_ASKED until gathered."""

    route: Route
    target: PushTarget
    image_id: str
    # None below: asked, nothing found
    engine_only: str | NotAsked | None = NOT_ASKED  # why only the engine can push
    rules: RegistryRules | NotAsked = NOT_ASKED  # .containerd_store None: `info` not asked yet
    unreachable: JrError | NotAsked | None = NOT_ASKED  # why the ping from here failed
    current: tuple[TaggedImage, ...] | NotAsked = NOT_ASKED  # candidate order, up to a holder
    engine_knows: str | NotAsked | None = NOT_ASKED  # where the engine knows layers of the image
    update: TaggedImage | NotAsked | None = NOT_ASKED  # an earlier build sharing a layer
    engine_holds_update: bool | NotAsked = NOT_ASKED  # whether the engine holds that build
    room_problem: str | NotAsked | None = NOT_ASKED  # why the export has no room


# -- the choices -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnginePushes:
    """The engine pushes; *reason* says why `auto` left it to the engine (None: asked to)."""

    reason: str | None = None


@dataclass(frozen=True)
class Unchanged:
    """*tagged* already is this image: only the other tags are written."""

    tagged: TaggedImage


@dataclass(frozen=True)
class Export:
    """Export the image and upload it."""


@dataclass(frozen=True)
class Refused:
    """A forced export cannot be done: *error* says why."""

    error: JrError


RouteChoice = EnginePushes | Unchanged | Export | Refused


def choose_route(facts: RouteFacts) -> RouteChoice | Fact:
    """The route by the rules of the module docstring, or the next fact they need."""
    if facts.route == "engine":
        return EnginePushes()
    forced = facts.route == "export"
    # 1. only the engine can
    if facts.engine_only is NOT_ASKED:
        return Fact.ENGINE_ONLY
    if facts.engine_only is not None:
        return Refused(UsageError(f"Cannot export and upload: {facts.engine_only}.",
                                  hint="Use --via engine (or auto) for this engine and registry.")
                       ) if forced else EnginePushes(facts.engine_only)
    if facts.rules is NOT_ASKED:
        return Fact.RULES
    if facts.rules.containerd_store:
        return _containerd_store(forced)
    if facts.unreachable is NOT_ASKED:
        return Fact.REGISTRY
    if facts.unreachable is not None:
        return Refused(facts.unreachable) if forced else EnginePushes(
            f"{facts.target.registry} does not answer from here as the engine reaches it "
            f"({facts.unreachable.message})")
    # 2. unchanged
    if facts.current is NOT_ASKED:
        return Fact.CURRENT
    holding = next((tagged for tagged in facts.current if holds_image(tagged, facts.image_id)), None)
    if holding is not None:
        return Unchanged(holding)
    if facts.rules.containerd_store is None:  # the registry's rules did not need `info`
        return Fact.ENGINE_STORE
    if facts.rules.containerd_store:
        return _containerd_store(forced)
    if not forced:
        # 3. the engine knows the layers
        if facts.engine_knows is NOT_ASKED:
            return Fact.ENGINE_LAYERS
        if facts.engine_knows is not None:
            return EnginePushes(f"it already knows layers of this image at {facts.engine_knows}")
        # 4. an update on an agent that builds here again
        if facts.update is NOT_ASKED:
            return Fact.UPDATE
        if facts.update is not None:
            if facts.engine_holds_update is NOT_ASKED:
                return Fact.ENGINE_HOLDS_UPDATE
            if facts.engine_holds_update:
                return EnginePushes(f"an update of {facts.target.name}:{facts.update.tag}, whose "
                                    "image this engine holds")
    # 5. no room
    if facts.room_problem is NOT_ASKED:
        return Fact.ROOM
    if facts.room_problem is not None:
        return Refused(InputFileError(
            f"Cannot export the image: {facts.room_problem}.",
            hint="Point TMPDIR at a larger disk, or use --via engine.")
        ) if forced else EnginePushes(facts.room_problem)
    # 6.
    return Export()


def _containerd_store(forced: bool) -> RouteChoice:
    # Its images are stored compressed and pushed as they are, so its push is not slowed by
    # compression; and its image ID is a manifest digest, not the config's.
    if forced:
        return Refused(UsageError(
            "Cannot export and upload: the Docker engine keeps images in containerd's store.",
            hint="Use --via engine (or auto): that engine pushes without compressing again."))
    return EnginePushes("it keeps images in containerd's store and pushes their stored compressed "
                        "layers")


# -- gathering the facts ---------------------------------------------------------------------------


def engine_only_reason(engine_address: str, registry: str, certs_dir: Path) -> str | None:
    """Why only the engine at *engine_address* (DOCKER_HOST) can push to *registry*, or None."""
    scheme, _, rest = engine_address.partition("://")
    if scheme == "tcp":
        if not is_loopback(rest.split("/", 1)[0]):
            return f"the Docker engine at {engine_address} is on another machine"
    elif scheme not in ("unix", "npipe"):
        return f"the Docker engine at {engine_address} is reached over {scheme}"
    directory = certs_dir / registry
    try:
        names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
    except OSError:
        return f"{directory} cannot be read"
    if any(name.endswith((".cert", ".key")) for name in names):
        return f"{registry} wants a client certificate ({directory})"
    return None


def engine_knows_layers(engine: DockerEngine, registry: str, diff_ids: tuple[str, ...]) -> str | None:
    """A digest reference at *registry* of a local image that shares a layer with *diff_ids*.

    The engine records such a reference when it pushes or pulls a manifest there, together with
    which blobs hold its layers; its push then skips or mounts them instead of uploading.
    """
    wanted = set(diff_ids)
    try:
        candidates = engine.digest_references(registry)
        if len(candidates) > MAX_IMAGES_INSPECTED:
            return f"{len(candidates)} local images from {registry}"
        for image_id, reference in candidates:
            if wanted.intersection(engine.layers_of(image_id)):
                return reference
    except EngineUnavailableError as exc:
        log.debug("could not list local images (%s); the engine pushes",
                  getattr(exc, "detail", type(exc).__name__))
        return "the engine's image list"
    return None


class _FactFinder:
    """Gathers the facts `choose_route` asks for; owns the registry client it opens for them,
    which the push goes on using (`close` at the end)."""

    def __init__(self, engine: DockerEngine, plan: EnginePushPlan, image: LocalImage,
                 credentials: UsernamePassword | None, options: LocalPushOptions) -> None:
        self.engine = engine
        self.plan = plan
        self.image = image
        self.credentials = credentials
        self.options = options
        self.registry: RegistryClient | None = None
        self.transport: HttpTransport | None = None
        self.current: CurrentImages | None = None

    def gather(self, fact: Fact, facts: RouteFacts) -> RouteFacts:
        """*facts* with *fact* gathered (an engine or registry failure on the way is raised)."""
        registry = self.plan.registry
        if fact is Fact.ENGINE_ONLY:
            return dataclasses.replace(facts, engine_only=engine_only_reason(
                self.options.engine_address, registry, self.options.certs_dir))
        if fact is Fact.RULES:
            return dataclasses.replace(facts, rules=export_push.registry_rules(
                self.engine, registry, self.options.certs_dir))
        if fact is Fact.REGISTRY:
            return dataclasses.replace(facts, unreachable=self._reach_registry(facts))
        if fact is Fact.CURRENT:
            assert self.current is not None
            self.current.find_holding(self.image.id)
            return dataclasses.replace(facts, current=self.current.fetched())
        if fact is Fact.ENGINE_STORE:
            assert isinstance(facts.rules, RegistryRules)
            store = uses_containerd_store(self.engine.info())
            return dataclasses.replace(facts, rules=dataclasses.replace(facts.rules,
                                                                        containerd_store=store))
        if fact is Fact.ENGINE_LAYERS:
            return dataclasses.replace(facts, engine_knows=engine_knows_layers(
                self.engine, registry, self.image.diff_ids))
        if fact is Fact.UPDATE:
            return dataclasses.replace(facts, update=self._shared_update(facts))
        if fact is Fact.ENGINE_HOLDS_UPDATE:
            assert isinstance(facts.update, TaggedImage)
            return dataclasses.replace(facts, engine_holds_update=self.engine.has_image(
                facts.update.config_digest))
        assert fact is Fact.ROOM
        # an export is being considered: first free what killed runs' exports hold there
        export_push.remove_stale_exports(self.options.temp_dir)
        return dataclasses.replace(facts, room_problem=export_push.room_problem(
            self.options.temp_dir, self.image.size or 0))

    def _reach_registry(self, facts: RouteFacts) -> JrError | None:
        """Ping the registry by the engine's rules, and check the credentials for the push; the
        ping's failure is a fact (the engine may reach it), a refusal of the credentials is not."""
        assert isinstance(facts.rules, RegistryRules)
        self.registry, self.transport = export_push.open_registry(
            self.plan.registry, self.credentials, facts.rules, retry=self.options.retry)
        try:
            self.registry.ping()
        # a proxy that refuses this process (407) may still let the engine through with its own
        # proxy settings: a fact, like an unreachable registry
        except (UnreachableError, InsecureRegistryError, RegistryError,
                ProxyAuthenticationError) as exc:
            return exc
        self.registry.check_credentials(self.plan.repository, probe=False)
        self.current = CurrentImages(self.registry, self.plan)
        return None

    def _shared_update(self, facts: RouteFacts) -> TaggedImage | None:
        """The first image under a candidate tag that shares a layer with this one."""
        assert self.current is not None and not isinstance(facts.current, NotAsked)
        wanted = set(self.image.diff_ids)
        for tagged in facts.current:
            diff_ids = self.current.diff_ids(tagged)
            if diff_ids is not None and wanted.intersection(diff_ids):
                return tagged
        return None

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()
        if self.transport is not None:
            self.transport.close()


# -- acting ----------------------------------------------------------------------------------------


def push_local_image(engine: DockerEngine, plan: EnginePushPlan,
                     credentials: UsernamePassword | None, progress: ProgressSink,
                     options: LocalPushOptions) -> PushResult:
    """Push *plan* from *engine* by the route `options.route` chooses; all tags or an error. The
    local names made for it are given back when it ends (pushed, failed or interrupted) unless
    `options.keep_tags`."""
    if options.route not in ROUTES:
        raise UsageError(f"Unknown route {options.route!r}.", hint="Use auto, engine or export.")
    image = engine.find_image(plan.image)
    with engine_tags.registry_names(engine, image.id, plan.references, keep=options.keep_tags):
        engine_push.tag_and_login(engine, plan, image, credentials)
        finder = _FactFinder(engine, plan, image, credentials, options)
        try:
            facts = RouteFacts(route=options.route, target=plan, image_id=image.id)
            while isinstance(choice := choose_route(facts), Fact):
                facts = finder.gather(choice, facts)
            if isinstance(choice, Refused):
                raise choice.error
            if isinstance(choice, Unchanged):
                assert finder.registry is not None
                return _publish_unchanged(finder.registry, plan, image, choice.tagged, progress)
            if isinstance(choice, Export):
                assert finder.registry is not None and finder.current is not None
                assert isinstance(facts.rules, RegistryRules)
                return export_push.export_and_upload(
                    engine, finder.registry, plan, image, plan.image, credentials, facts.rules,
                    progress, options.temp_dir, finder.current)
        finally:
            finder.close()
        if choice.reason is not None:
            log.info("the engine pushes: %s", choice.reason)
        return engine_push.push_tags(engine, plan, image, credentials, progress)


def _publish_unchanged(registry: RegistryClient, plan: EnginePushPlan, image: LocalImage,
                       tagged: TaggedImage, progress: ProgressSink) -> PushResult:
    """Write the wanted tags that do not hold *tagged*'s manifest yet; nothing is uploaded."""
    manifest = tagged.manifest
    log.info("%s already is this image; nothing to upload", plan.reference(tagged.tag))
    progress.message(f"The push refers to repository [{plan.name}]")
    for layer in tagged.layers:
        progress.layer(layer.digest.removeprefix("sha256:")[:12], "Layer already exists")
    put_tags(registry, plan, manifest.body, manifest.media_type, manifest.digest, progress,
             existed=True, holding=tagged.tag)
    return PushResult(target=plan, digest=manifest.digest, manifest_size=len(manifest.body),
                      image_size=image.size, image_id=image.id, method="unchanged")
