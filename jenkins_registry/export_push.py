"""The `export` route of `jr-push --image`: the engine's image, exported and uploaded by jr-push.

The image is exported from the engine (`GET /images/{id}/get`, the `docker save` format) into a
temporary directory under TMPDIR and uploaded by our own client (`daemonless_push`), with the
credentials per request. The engine gzips each layer on one core; exporting and uploading with
parallel deflate takes 0.43 (jars) to 0.74 (random data) of its time for a first push
(bench_engine_push.py; docs/push.md).

The connection follows the engine's own rules for the registry (`registry_rules`): HTTPS verified
against the system store and `/etc/docker/certs.d/HOST:PORT/*.crt`, or, for a registry the engine
treats as insecure (insecure-registries, 127.0.0.0/8), unverified HTTPS and then plain HTTP.
Whether this route is taken is decided in `push_route`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jenkins_registry.docker_engine import DockerEngine, LocalImage, uses_containerd_store
from jenkins_registry.errors import EngineUnavailableError, InputFileError
from jenkins_registry.progress import ProgressSink
from jenkins_registry.push_result import PushResult
from jenkins_registry.push_target import PushTarget, TargetRequest
from jenkins_registry.reference import in_engine_implicit_insecure_range
from jenkins_registry.registry_client import RegistryClient, RetryPolicy, SchemePolicy
from jenkins_registry.secret_types import UsernamePassword

if TYPE_CHECKING:
    from jenkins_registry.http_transport import HttpTransport
    from jenkins_registry.target_tags import CurrentImages

log = logging.getLogger(__name__)

CERTS_DIR = Path("/etc/docker/certs.d")
EXPORT_CHUNK = 1 << 20
# The export is the image's layers as tar plus headers; keep a margin for other writers.
ROOM_MARGIN_BYTES = 256 << 20
EXPORT_PREFIX = "jr-export-"
# A run killed with SIGKILL (Jenkins escalates an abort that takes too long) removes nothing; its
# export is removed by a later run once nothing in it has changed for this long. A live push
# writes its export in minutes and uploads it within the registry's timeouts, far less than this.
STALE_EXPORT_SECONDS = 24 * 3600


@dataclass(frozen=True)
class RegistryRules:
    """How the engine reaches the registry, as far as this process can apply it."""

    insecure: bool
    ca_data: str | None
    containerd_store: bool | None = False  # None: the engine was not asked (see registry_rules)


def registry_rules(engine: DockerEngine, registry: str, certs_dir: Path = CERTS_DIR) -> RegistryRules:
    """The engine's view of *registry*: insecure or not, and its certs.d CA certificates; and
    whether the engine keeps images in containerd's store (None: `info` was not needed yet, as
    for 127.0.0.0/8, so an unchanged re-push costs one engine request less)."""
    # insecure to the engine whatever its configuration says: no need to ask it
    info = None if in_engine_implicit_insecure_range(registry) else engine.info()
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


def open_registry(registry: str, credentials: UsernamePassword | None, rules: RegistryRules, *,
                  retry: RetryPolicy | None = None) -> tuple[RegistryClient, HttpTransport]:
    """A client for *registry* under the engine's rules, not pinged yet; close both. *retry*
    carries the time bounds (--timeout, --request-timeout); None: the client's defaults."""
    from jenkins_registry.http_transport import HttpTransport

    transport = HttpTransport(ca_data=rules.ca_data)
    client = RegistryClient(registry, credentials=credentials, transport=transport, retry=retry,
                            policy=SchemePolicy.from_engine(registry, insecure=rules.insecure))
    return client, transport


def remove_stale_exports(temp_dir: str | None, now: float | None = None) -> list[str]:
    """Remove the `jr-export-*` directories in *temp_dir* that killed runs left: this user's own,
    with nothing in them changed for STALE_EXPORT_SECONDS (another build's live export is
    younger). Symbolic links and other users' entries are never touched. Returns the paths
    removed; never raises (a failure is logged, and the push goes on)."""
    import shutil
    import stat
    import tempfile
    import time

    directory = temp_dir or tempfile.gettempdir()
    cutoff = (time.time() if now is None else now) - STALE_EXPORT_SECONDS
    removed: list[str] = []
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(EXPORT_PREFIX)]
    except OSError as exc:
        log.debug("cannot list %s for stale exports (%s)", directory, exc.strerror)
        return removed
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                continue
            newest = max([info.st_mtime, *(e.stat(follow_symlinks=False).st_mtime
                                            for e in os.scandir(entry.path))])
            if newest >= cutoff:
                continue
            shutil.rmtree(entry.path)  # fd-based: a link planted inside is removed, not followed
        except OSError as exc:
            log.warning("could not remove the stale export %s (%s)", entry.path,
                        exc.strerror or type(exc).__name__)
            continue
        removed.append(entry.path)
        log.info("removed %s, the export of an earlier run that was killed", entry.path)
    return removed


def room_problem(temp_dir: str | None, size: int) -> str | None:
    """Why the temporary directory cannot hold an export of *size* bytes, or None."""
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


def export_and_upload(engine: DockerEngine, registry: RegistryClient, target: PushTarget,
                      image: LocalImage, image_name: str, credentials: UsernamePassword | None,
                      rules: RegistryRules, progress: ProgressSink, temp_dir: str | None,
                      current: CurrentImages) -> PushResult:
    """Export *image* (given as *image_name*) and upload it to *target* through *registry*, an
    open client; *current* is what the target's tags hold, as the route decision fetched it."""
    import tempfile

    from jenkins_registry import daemonless_push

    with tempfile.TemporaryDirectory(prefix=EXPORT_PREFIX, dir=temp_dir) as directory:
        archive = Path(directory) / "image.tar"
        _export(engine, image.id, archive, image.size or 0, progress)
        request = TargetRequest(registry=target.registry, repository=target.repository,
                                tags=target.tags)
        options = daemonless_push.SourcePushOptions(compression="gzip", jobs=0,
                                                    insecure=rules.insecure)
        try:
            result = daemonless_push.push_source(archive, "archive", request, credentials,
                                                 progress, options, client=registry,
                                                 current=current)
        except InputFileError as exc:
            raise EngineUnavailableError(
                f"The Docker engine's export of {image_name} is not a valid image archive "
                f"({exc.message})",
                hint="Run again with --via engine, and check the engine's log.",
            ) from None
    if result.image_id != image.id:
        raise EngineUnavailableError(
            f"The Docker engine exported {result.image_id} for {image_name} ({image.id}).",
            hint="The image changed during the push; run the push again.",
        )
    return dataclasses.replace(result, method="export")


def _export(engine: DockerEngine, image_id: str, archive: Path, size: int,
            progress: ProgressSink) -> None:
    """Stream the engine's export into *archive*; an engine failure is an EngineUnavailableError."""
    label = image_id.removeprefix("sha256:")[:12]
    progress.layer(label, "Exporting", 0, size or None)
    written = 0
    try:
        with open(archive, "wb") as handle:
            for chunk in engine.export(image_id, EXPORT_CHUNK):
                handle.write(chunk)
                written += len(chunk)
                progress.layer(label, "Exporting", min(written, size) if size else written,
                               size or None)
    except OSError as exc:
        raise InputFileError(
            f"Cannot write the export of {image_id} to {archive.parent} ({exc.strerror}).",
            hint="Point TMPDIR at a writable disk with room for the image, or use --via engine.",
        ) from None
    progress.layer(label, "Exported")
    log.info("exported %s: %d bytes", image_id, written)
