"""`jr-push --image`: choose how a local engine image reaches the registry, and push it.

The engine always does what only it can: it finds the image, tags it under the registry name and
checks the credentials (its login, with reauth). The upload then takes one of two routes:

* `engine`: the engine pushes every tag with the credentials per request (`engine_push`).
* `export`: the image is exported from the engine (`GET /images/{id}/get`, the `docker save`
  format) into a temporary directory and uploaded by our own client (`daemonless_push`), with the
  same credentials per request. The engine gzips each layer on one core; exporting and uploading
  with parallel deflate takes about 0.7 of its time for a first push (bench_engine_push.py).
  The connection follows the engine's own rules for the registry: HTTPS verified against the
  system store and `/etc/docker/certs.d/HOST:PORT/*.crt`, or, for a registry the engine treats as
  insecure (insecure-registries, 127.0.0.0/8), unverified HTTPS and then plain HTTP.

`auto`, the default, decides per push, in this order:
  1. the engine is remote, keeps images in containerd's store (it then pushes the stored
     compressed layers, no slower), the registry wants a client certificate (certs.d *.cert /
     *.key), or the registry does not answer from here the way the engine reaches it → the
     engine pushes;
  2. a wanted tag (or `latest`) already points at this image (its config digest is the image ID):
     only the other tags are written, nothing is exported or uploaded;
  3. the engine already pushed or pulled layers of this image to or from this registry (a local
     image with a digest reference there shares a layer): it skips or mounts those → the engine;
     likewise when a wanted tag or `latest` holds an earlier build that shares a layer and whose
     image this engine still holds (an agent that builds here again): the engine uploads the
     shared layers once, learns which blobs hold them, and from then on sends only new layers,
     while an export would read the whole image every time;
  4. the temporary directory has no room for the export → the engine;
  5. otherwise export and upload; layers the registry already has under a wanted tag or `latest`
     are skipped (a fresh engine, as on an ephemeral agent, re-uploads every layer).
`export` forces the second route (failing where `auto` would fall back); `engine` the first.

Whichever route, and however the push ends, the `HOST:PORT/NAME:TAG` names made for it are given
back afterwards (`engine_tags`), unless the caller keeps them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from jenkins_registry import engine_push, engine_tags
from jenkins_registry.credentials import UsernamePassword
from jenkins_registry.docker_engine import engine_address
from jenkins_registry.engine_push import EnginePushPlan
from jenkins_registry.errors import (
    EngineUnavailableError,
    InputFileError,
    InsecureRegistryError,
    JrError,
    RegistryError,
    UnreachableError,
    UsageError,
)
from jenkins_registry.progress import ProgressSink
from jenkins_registry.push_result import PushResult
from jenkins_registry.registry_client import Manifest, RegistryClient, is_loopback, split_host_port

log = logging.getLogger(__name__)

Route = Literal["auto", "engine", "export"]
ROUTES: tuple[Route, ...] = ("auto", "engine", "export")
CERTS_DIR = Path("/etc/docker/certs.d")
# Inspecting every local image from this registry bounds step 3; past this many, the engine pushes.
MAX_IMAGES_INSPECTED = 64
EXPORT_CHUNK = 1 << 20
# The export is the image's layers as tar plus headers; keep a margin for other writers.
ROOM_MARGIN_BYTES = 256 << 20
# image_archive's MEDIA_DOCKER_MANIFEST and MEDIA_OCI_MANIFEST (not imported: jr-push start-up)
_IMAGE_MANIFESTS = ("application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.oci.image.manifest.v1+json")


@dataclass(frozen=True)
class RegistryRules:
    """How the engine reaches the registry, as far as this process can apply it."""

    insecure: bool
    ca_data: str | None
    containerd_store: bool | None = False


def push_local_image(
    client: Any,
    plan: EnginePushPlan,
    credentials: UsernamePassword | None,
    progress: ProgressSink,
    *,
    route: Route = "auto",
    environ: Mapping[str, str],
    certs_dir: Path = CERTS_DIR,
    temp_dir: str | None = None,
    keep_tags: bool = False,
) -> PushResult:
    """Push *plan* from the engine behind *client* by *route*; all tags or an error. The local
    names made for it are given back when it ends (pushed, failed or interrupted) unless
    *keep_tags*."""
    if route not in ROUTES:
        raise UsageError(f"Unknown route {route!r}.", hint="Use auto, engine or export.")
    image = engine_push.find_image(client, plan)
    with engine_tags.registry_names(client, str(image.id), plan.references, keep=keep_tags):
        engine_push.tag_and_login(client, plan, image, credentials)
        if route == "engine":
            return engine_push.push_tags(client, plan, image, credentials, progress)
        try:
            return _push_unless_engine_should(client, plan, image, credentials, progress,
                                              route=route, environ=environ, certs_dir=certs_dir,
                                              temp_dir=temp_dir)
        except _EngineShouldPush as leave:
            log.info("the engine pushes: %s", leave.reason)
            return engine_push.push_tags(client, plan, image, credentials, progress)


class _EngineShouldPush(Exception):
    """Raised where `auto` leaves the push to the engine (never escapes this module)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _leave_to_engine(route: Route, reason: str, forced: JrError) -> NoReturn:
    """`auto` falls back to the engine; a forced `export` fails with *forced* instead."""
    if route == "export":
        raise forced
    raise _EngineShouldPush(reason)


def _push_unless_engine_should(
    client: Any, plan: EnginePushPlan, image: Any, credentials: UsernamePassword | None,
    progress: ProgressSink, *, route: Route, environ: Mapping[str, str], certs_dir: Path,
    temp_dir: str | None,
) -> PushResult:
    refusal = _engine_only_reason(environ, plan.registry, certs_dir)
    if refusal is not None:
        _leave_to_engine(route, refusal, UsageError(
            f"Cannot export and upload: {refusal}.",
            hint="Use --via engine (or auto) for this engine and registry."))
    rules = _registry_rules(client, plan.registry, certs_dir)
    if rules.containerd_store:
        _leave_containerd_store_to_engine(route)
    from jenkins_registry.http_transport import HttpTransport

    transport = HttpTransport(ca_data=rules.ca_data)
    registry = RegistryClient(plan.registry, credentials=credentials, insecure=rules.insecure,
                              scheme_rule="daemon", transport=transport)
    try:
        try:
            registry.ping()
        except (UnreachableError, InsecureRegistryError, RegistryError) as exc:
            _leave_to_engine(route, f"{plan.registry} does not answer from here as the engine "
                             f"reaches it ({exc.message})", exc)
        registry.check_credentials(plan.repository, probe=False)
        current: list[_TaggedImage] = []
        for tagged in _current_images(registry, plan):
            current.append(tagged)
            if tagged.config_digest == image.id:
                break  # the other tags need not be asked
        unchanged = _push_if_unchanged(registry, plan, str(image.id), current, progress)
        if unchanged is not None:
            return dataclasses.replace(unchanged, image_size=image.attrs.get("Size"))
        if rules.containerd_store is None and uses_containerd_store(_engine_info(client)):
            _leave_containerd_store_to_engine(route)
        diff_ids = list((image.attrs.get("RootFS") or {}).get("Layers") or ())
        if route == "auto":
            known = _engine_knows_layers(client, plan.registry, diff_ids)
            if known is not None:
                raise _EngineShouldPush(f"it already knows layers of this image at {known}")
            update = _registry_shares_layers(registry, plan, current, diff_ids)
            if update is not None and _engine_has_image(client, update.config_digest):
                # This engine built the earlier image, so it builds here again: it uploads the
                # shared layers once, learns where they are, and from the next build on sends
                # only new layers. (A fresh engine would re-upload them every time; the export
                # below skips them instead.)
                raise _EngineShouldPush(f"an update of {plan.target}:{update.tag}, whose image "
                                        "this engine holds")
        room = _room_problem(temp_dir, int(image.attrs.get("Size") or 0))
        if room is not None:
            _leave_to_engine(route, room, InputFileError(
                f"Cannot export the image: {room}.",
                hint="Point TMPDIR at a larger disk, or use --via engine."))
        return _export_and_upload(client, registry, plan, image, credentials, rules, progress,
                                  temp_dir)
    finally:
        registry.close()
        transport.close()


# -- can this process push for the engine? ---------------------------------------------------------


def _engine_only_reason(environ: Mapping[str, str], registry: str, certs_dir: Path) -> str | None:
    """Why only the engine can push here, or None."""
    address = engine_address(environ)
    scheme, _, rest = address.partition("://")
    if scheme == "tcp":
        if not is_loopback(rest.split("/", 1)[0]):
            return f"the Docker engine at {address} is on another machine"
    elif scheme not in ("unix", "npipe"):
        return f"the Docker engine at {address} is reached over {scheme}"
    directory = certs_dir / registry
    try:
        names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
    except OSError:
        return f"{directory} cannot be read"
    if any(name.endswith((".cert", ".key")) for name in names):
        return f"{registry} wants a client certificate ({directory})"
    return None


def _leave_containerd_store_to_engine(route: Route) -> NoReturn:
    # Its images are stored compressed and pushed as they are, so its push is not slowed by
    # compression; and its image ID is a manifest digest, not the config's.
    _leave_to_engine(route, "it keeps images in containerd's store and pushes their stored "
                     "compressed layers", UsageError(
                         "Cannot export and upload: the Docker engine keeps images in "
                         "containerd's store.",
                         hint="Use --via engine (or auto): that engine pushes without "
                         "compressing again."))


def _engine_info(client: Any) -> Mapping[str, Any]:
    import docker
    import requests

    try:
        return dict(client.info())
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise EngineUnavailableError(
            f"The Docker engine did not answer `info` ({type(exc).__name__})."
        ) from None


def _always_insecure(registry: str) -> bool:
    """An IPv4 address in 127.0.0.0/8: the engine always adds that range to its insecure CIDRs,
    and no setting marks a registry secure."""
    host, _ = split_host_port(registry)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback


def _registry_rules(client: Any, registry: str, certs_dir: Path) -> RegistryRules:
    """The engine's view of *registry*: insecure or not, and its certs.d CA certificates; and
    whether the engine keeps images in containerd's store (None: `info` was not needed yet, as
    for 127.0.0.0/8, so an unchanged re-push costs one engine request less)."""
    info = None if _always_insecure(registry) else _engine_info(client)
    if info is None:
        insecure = True
    else:
        from jenkins_registry.daemon_config import insecure_reason

        insecure = insecure_reason(info, registry) is not None
    directory = certs_dir / registry
    pieces: list[str] = []
    if directory.is_dir():
        for path in sorted(directory.glob("*.crt")):
            try:
                pieces.append(path.read_text(encoding="ascii"))
            except (OSError, UnicodeDecodeError):
                log.debug("skipping unreadable CA file %s", path)
    return RegistryRules(insecure=insecure, ca_data="\n".join(pieces) or None,
                         containerd_store=None if info is None else uses_containerd_store(info))


def uses_containerd_store(info: Mapping[str, Any]) -> bool:
    """Whether the engine keeps images in containerd's content store (the default for new
    installations since Docker 29): `docker info` then lists the snapshotter's driver type."""
    status = info.get("DriverStatus") or ()
    return any(isinstance(pair, (list, tuple)) and len(pair) == 2
               and pair[0] == "driver-type" and pair[1] == "io.containerd.snapshotter.v1"
               for pair in status)


# -- the registry already has it --------------------------------------------------------------------


@dataclass(frozen=True)
class _TaggedImage:
    """What a tag in the target repository points at now."""

    tag: str
    manifest: Manifest
    config_digest: str
    layer_digests: tuple[str, ...]


def _current_images(registry: RegistryClient, plan: EnginePushPlan) -> Iterator[_TaggedImage]:
    """The images the wanted tags and `latest` point at now (`latest` often holds the last build),
    fetched one by one as the caller asks."""
    for candidate in dict.fromkeys([*plan.tags, "latest"]):
        manifest = registry.get_manifest(plan.repository, candidate, _IMAGE_MANIFESTS)
        if manifest is None or manifest.media_type not in _IMAGE_MANIFESTS:
            continue
        try:
            document = json.loads(manifest.body)
            config_digest = str(document["config"]["digest"])
            layer_digests = tuple(str(layer["digest"]) for layer in document["layers"])
        except (ValueError, KeyError, TypeError):
            continue
        yield _TaggedImage(candidate, manifest, config_digest, layer_digests)


def _push_if_unchanged(registry: RegistryClient, plan: EnginePushPlan, image_id: str,
                       current: Sequence[_TaggedImage], progress: ProgressSink) -> PushResult | None:
    """When a wanted tag (or `latest`) already points at this image, write the other tags only.

    A tagged manifest's blobs are all in the registry, and its config digest is the image ID, so
    it is this image, whichever client compressed the layers.
    """
    for tagged in current:
        if tagged.config_digest != image_id:
            continue
        candidate, manifest, layer_digests = tagged.tag, tagged.manifest, tagged.layer_digests
        log.info("%s/%s:%s already is this image; nothing to upload", plan.registry,
                 plan.repository, candidate)
        progress.message(f"The push refers to repository [{plan.target}]")
        for digest in layer_digests:
            progress.layer(digest.removeprefix("sha256:")[:12], "Layer already exists")
        for tag in plan.tags:
            if tag != candidate:
                registry.put_manifest(plan.repository, tag, manifest.body, manifest.media_type)
            progress.message(f"{tag}: digest: {manifest.digest} size: {len(manifest.body)}")
        return PushResult(registry=plan.registry, repository=plan.repository, tags=plan.tags,
                          digest=manifest.digest, manifest_size=len(manifest.body),
                          image_size=None, image_id=image_id, method="unchanged")
    return None


def _registry_shares_layers(registry: RegistryClient, plan: EnginePushPlan,
                            current: Sequence[_TaggedImage],
                            diff_ids: Sequence[str]) -> _TaggedImage | None:
    """A tag in the target repository whose image shares a layer with *diff_ids* (an update)."""
    wanted = set(diff_ids)
    for tagged in current:
        try:
            config = json.loads(registry.get_blob(plan.repository, tagged.config_digest))
            layers = config["rootfs"]["diff_ids"]
        except (RegistryError, ValueError, KeyError, TypeError) as exc:
            log.debug("cannot read the config of %s:%s (%s)", plan.repository, tagged.tag,
                      type(exc).__name__)
            continue
        if isinstance(layers, list) and wanted.intersection(map(str, layers)):
            return tagged
    return None


def _engine_has_image(client: Any, image_id: str) -> bool:
    import docker
    import requests

    try:
        client.api.inspect_image(image_id)
    except docker.errors.NotFound:
        return False
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise EngineUnavailableError(
            f"The Docker engine failed to look up {image_id} ({type(exc).__name__})."
        ) from None
    return True


def _engine_knows_layers(client: Any, registry: str, diff_ids: Sequence[str]) -> str | None:
    """A digest reference at *registry* of a local image that shares a layer with *diff_ids*.

    The engine records such a reference when it pushes or pulls a manifest there, together with
    which blobs hold its layers; its push then skips or mounts them instead of uploading.
    """
    import docker
    import requests

    prefix = registry + "/"
    wanted = set(diff_ids)
    try:
        summaries = client.api.images()
        candidates = []
        for summary in summaries:
            here = [ref for ref in summary.get("RepoDigests") or () if ref.startswith(prefix)]
            if here:
                candidates.append((summary["Id"], here[0]))
        if len(candidates) > MAX_IMAGES_INSPECTED:
            return f"{len(candidates)} local images from {registry}"
        for image_id, reference in candidates:
            layers = (client.api.inspect_image(image_id).get("RootFS") or {}).get("Layers") or ()
            if wanted.intersection(layers):
                return str(reference)
    except (docker.errors.APIError, requests.exceptions.RequestException, KeyError, TypeError) as exc:
        log.debug("could not list local images (%s); the engine pushes", type(exc).__name__)
        return "the engine's image list"
    return None


def _room_problem(temp_dir: str | None, size: int) -> str | None:
    import shutil
    import tempfile

    directory = temp_dir or tempfile.gettempdir()
    try:
        free = shutil.disk_usage(directory).free
    except OSError as exc:
        return f"the temporary directory {directory} is not usable ({exc.strerror})"
    needed = size + size // 20 + ROOM_MARGIN_BYTES
    if free < needed:
        return (f"the temporary directory {directory} has {free >> 20} MiB free, the export needs "
                f"about {needed >> 20} MiB")
    return None


# -- export and upload ----------------------------------------------------------------------------


def _export_and_upload(client: Any, registry: RegistryClient, plan: EnginePushPlan, image: Any,
                       credentials: UsernamePassword | None, rules: RegistryRules,
                       progress: ProgressSink, temp_dir: str | None) -> PushResult:
    import tempfile

    from jenkins_registry import daemonless_push

    with tempfile.TemporaryDirectory(prefix="jr-export-", dir=temp_dir) as directory:
        archive = Path(directory) / "image.tar"
        _export(client, str(image.id), archive, int(image.attrs.get("Size") or 0), progress)
        try:
            result = daemonless_push.push_image_source(
                archive, source_kind="archive", registry=plan.registry,
                repository=plan.repository, tags=plan.tags, credentials=credentials,
                compression="gzip", jobs=0, insecure=rules.insecure, progress=progress,
                client=registry,
            )
        except InputFileError as exc:
            raise EngineUnavailableError(
                f"The Docker engine's export of {plan.image} is not a valid image archive "
                f"({exc.message})",
                hint="Run again with --via engine, and check the engine's log.",
            ) from None
    if result.image_id != image.id:
        raise EngineUnavailableError(
            f"The Docker engine exported {result.image_id} for {plan.image} ({image.id}).",
            hint="The image changed during the push; run the push again.",
        )
    return dataclasses.replace(result, method="export")


def _export(client: Any, image_id: str, archive: Path, size: int, progress: ProgressSink) -> None:
    """Stream `GET /images/{id}/get` into *archive*; an engine failure is an EngineUnavailableError."""
    import docker
    import requests

    label = image_id.removeprefix("sha256:")[:12]
    progress.layer(label, "Exporting", 0, size or None)
    written = 0
    try:
        with open(archive, "wb") as handle:
            for chunk in client.api.get_image(image_id, chunk_size=EXPORT_CHUNK):
                handle.write(chunk)
                written += len(chunk)
                progress.layer(label, "Exporting", min(written, size) if size else written,
                               size or None)
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise EngineUnavailableError(
            f"The Docker engine failed to export {image_id} ({type(exc).__name__}).",
            hint="Check the engine's log; or push with --via engine.",
        ) from None
    except OSError as exc:
        raise InputFileError(
            f"Cannot write the export of {image_id} to {archive.parent} ({exc.strerror}).",
            hint="Point TMPDIR at a writable disk with room for the image, or use --via engine.",
        ) from None
    progress.layer(label, "Exported")
    log.info("exported %s: %d bytes", image_id, written)

