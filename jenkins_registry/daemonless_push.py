"""Push an image from a `docker save` archive or an OCI layout straight to a registry, no daemon.

Order of work, so that a tag never points at an incomplete image:
  1. read and check the source (image_archive) — a corrupt file fails here, before any network;
  2. ping the registry, check the credentials for the repository;
  3. per layer, in parallel (`jobs`): skip it if the registry already has it (HEAD), mount it
     from another repository when a previous push recorded one, else stream it (compressing with
     compression.LayerStream, checking its DiffID on the way) and upload it with retries;
  4. the config blob;
  5. the manifest, PUT once per tag, last. If a later tag fails, or the push is interrupted
     part way (SIGTERM, Ctrl-C: `publish_tags`), the tags already written are removed again (by
     deleting the manifest when this push created it).

Interrupted, the push does not wait for its uploads: they run on daemon threads (`worker_pool`),
since one stuck in a send to a registry that stopped reading cannot be woken. `--jobs` is capped
(MAX_JOBS), and the deflate threads (at most the CPUs) bound the memory (`compression`).

Manifest format: Docker schema2 (`application/vnd.docker.distribution.manifest.v2+json`, gzip
layers) for `compression="gzip"`, which every registry and engine accepts; OCI
(`application/vnd.oci.image.manifest.v1+json`) with `…layer.v1.tar` layers for
`compression="none"` (digest = DiffID), and for sources whose layers are zstd. An OCI layout
whose layers already have the wanted compression is pushed with its own manifest, byte for byte,
so its digest is kept.

Re-pushing an unchanged image costs a few requests: layers are matched to blobs the registry
already has, through the manifests (and configs) the wanted tags and `latest` point at now
(`target_tags`, shared with the route decision when the export route calls), and through an
optional local blob cache (`blob_cache`), which also names repositories to mount from.

`push_source` takes the target as the CLI parsed it (`TargetRequest`) and a `SourcePushOptions`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jenkins_registry import image_archive, media_types
from jenkins_registry.compression import Cancelled, Compressor, Encoding, LayerStream
from jenkins_registry.errors import InputFileError, RegistryError, UsageError
from jenkins_registry.image_archive import (
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_MANIFEST,
    ImageSource,
    LayerBlob,
)
from jenkins_registry.progress import ProgressSink
from jenkins_registry.push_result import PushResult
from jenkins_registry.push_target import PushTarget, TargetRequest
from jenkins_registry.registry_client import BytesBody, RegistryClient, RetryPolicy, SchemePolicy
from jenkins_registry.secret_types import UsernamePassword
from jenkins_registry.target_tags import CurrentImages, TaggedImage, holds_image, put_tags

if TYPE_CHECKING:
    from concurrent.futures import Future

log = logging.getLogger(__name__)

Compression = Literal["gzip", "none"]

DOCKER_LAYER_GZIP = media_types.DOCKER_LAYER_GZIP
OCI_LAYER = media_types.OCI_LAYER
_MEDIA_ENCODING: dict[str, Encoding] = media_types.LAYER_ENCODINGS


# Parallel layer uploads past this many gain nothing (a registry takes a few streams at a time;
# docker's own limit is 5) and each costs a connection and a thread: `--jobs` is capped here.
MAX_JOBS = 16


def default_jobs() -> int:
    """min(4, CPU count): parallel layer uploads."""
    return max(1, min(4, os.cpu_count() or 1))


def effective_jobs(jobs: int) -> int:
    """*jobs* (0: `default_jobs()`), at most MAX_JOBS."""
    return min(jobs, MAX_JOBS) if jobs >= 1 else default_jobs()


def deflate_threads(jobs: int) -> int:
    """Deflate threads for *jobs* parallel uploads: no more than the CPUs, which they saturate."""
    return max(1, min(jobs, os.cpu_count() or 1))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


@dataclass(frozen=True)
class _Known:
    """A blob believed to hold a layer in the wanted encoding, and repositories that have it."""

    digest: str
    size: int
    repositories: tuple[str, ...] = ()


# -- the local blob cache -------------------------------------------------------------------------


class BlobInfoCache:
    """Which compressed blobs this machine pushed for a DiffID, and to which repositories.

    A JSON file (written atomically, read tolerantly: a broken cache is ignored, never fatal).
    Bounded: a few blobs per DiffID, a few repositories per blob, a few thousand DiffIDs.
    """

    MAX_LAYERS = 4000
    MAX_BLOBS = 4
    MAX_REPOSITORIES = 8

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._layers = self._load(path)
        self._recorded: set[str] = set()  # the DiffIDs this run learnt, merged into the file on save

    @staticmethod
    def _load(path: Path) -> dict[str, list[dict[str, Any]]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            layers = data.get("layers") if isinstance(data, dict) and data.get("version") == 1 else None
            if isinstance(layers, dict):
                return {k: v for k, v in layers.items() if isinstance(v, list)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, RecursionError) as exc:
            log.debug("ignoring the unreadable blob cache %s (%s)", path, type(exc).__name__)
        return {}

    def lookup(self, diff_id: str, encoding: Encoding, registry: str) -> list[_Known]:
        found = []
        with self._lock:
            for entry in self._layers.get(diff_id, []):
                try:
                    if entry["encoding"] != encoding:
                        continue
                    repos = tuple(r.split("/", 1)[1] for r in entry["repositories"]
                                  if isinstance(r, str) and r.startswith(registry + "/"))
                    found.append(_Known(str(entry["digest"]), int(entry["size"]), repos))
                except (KeyError, TypeError, ValueError, AttributeError):
                    continue
        return found

    def record(self, diff_id: str, encoding: Encoding, digest: str, size: int, where: str) -> None:
        with self._lock:
            entries = self._layers.pop(diff_id, [])
            entry = next((e for e in entries if isinstance(e, dict) and e.get("digest") == digest), None)
            if entry is None:
                entry = {"digest": digest, "size": size, "encoding": encoding, "repositories": []}
            else:
                entries.remove(entry)
            repos = [r for r in entry.get("repositories", []) if r != where]
            entry["repositories"] = [where, *repos][: self.MAX_REPOSITORIES]
            self._layers[diff_id] = [entry, *entries][: self.MAX_BLOBS]
            self._recorded.add(diff_id)
            while len(self._layers) > self.MAX_LAYERS:
                self._layers.pop(next(iter(self._layers)))

    def save(self) -> None:
        """Merge what this run learnt into the file, under the edit lock so that concurrent pushes
        sharing one cache all keep their entries; written atomically. A failure is logged, never
        raised (it is only a cache)."""
        from jenkins_registry.atomic_file import edit_lock, write_atomic

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with edit_lock(self.path):
                layers = self._load(self.path)
                with self._lock:
                    layers.update({d: self._layers[d] for d in self._recorded if d in self._layers})
                    while len(layers) > self.MAX_LAYERS:
                        layers.pop(next(iter(layers)))
                    text = json.dumps({"version": 1, "layers": layers})
                write_atomic(self.path, text)
        except (OSError, TimeoutError) as exc:
            log.debug("could not write the blob cache %s (%s)", self.path, type(exc).__name__)


# -- planning -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    layer: LayerBlob
    target: Encoding
    media_type: str

    @property
    def as_is(self) -> bool:
        return self.layer.encoding == self.target

    @property
    def digest_before_upload(self) -> str | None:
        """The pushed digest when it is known without reading the layer."""
        if self.as_is:
            return self.layer.digest or (self.layer.diff_id if self.target == "none" else None)
        if self.target == "none":
            return self.layer.diff_id
        return None


def _target_encoding(layer: LayerBlob, compression: Compression, source: Path) -> Encoding:
    if layer.encoding == "zstd":
        if compression == "none":
            raise UsageError(f"{source}: {layer.location} is zstd-compressed and cannot be stored "
                             "uncompressed here.", hint="Use --compression gzip (the layer is then "
                             "pushed as it is).")
        return "zstd"
    return "gzip" if compression == "gzip" else "none"


ManifestFormat = Literal["verbatim", "docker", "oci"]


def _manifest_format(source: ImageSource, targets: Sequence[Encoding]) -> ManifestFormat:
    if source.manifest is not None and all(
            layer.encoding == target for layer, target in zip(source.layers, targets, strict=True)):
        return "verbatim"
    if all(t == "gzip" for t in targets):
        return "docker"
    return "oci"


# -- the push -------------------------------------------------------------------------------------


class _LayerBody:
    """A fresh LayerStream over a fresh reader for each upload attempt; closes the reader."""

    def __init__(self, make: Callable[[image_archive.SliceReader], LayerStream],
                 layer: LayerBlob) -> None:
        self._make = make
        self._layer = layer
        self._stream: LayerStream | None = None

    def __iter__(self) -> Iterator[bytes | memoryview]:
        with self._layer.open() as reader:
            self._stream = self._make(reader)
            yield from self._stream

    @property
    def digest(self) -> str:
        if self._stream is None:
            raise RuntimeError("not read yet")
        return self._stream.digest

    @property
    def size(self) -> int:
        return self._stream.size if self._stream is not None else 0


class _Pusher:
    def __init__(self, client: RegistryClient, source: ImageSource, current: CurrentImages,
                 compression: Compression, jobs: int, progress: ProgressSink,
                 cache: BlobInfoCache | None, chunk_size: int | None) -> None:
        self.client = client
        self.source = source
        self.current = current
        self.repository = current.target.repository
        self.jobs = jobs
        self.progress = progress
        self.cache = cache
        self.chunk_size = chunk_size
        self.cancel = threading.Event()
        targets = [_target_encoding(layer, compression, source.path) for layer in source.layers]
        self.format = _manifest_format(source, targets)
        self.plans = [
            _Plan(layer, target, DOCKER_LAYER_GZIP if self.format == "docker" else
                  (layer.media_type or OCI_LAYER[target]) if self.format == "verbatim" else
                  OCI_LAYER[target])
            for layer, target in zip(source.layers, targets, strict=True)
        ]
        self.known: dict[str, list[_Known]] = {}

    # -- what the registry (or the cache) already has --------------------------------------------

    def discover(self, tag: str) -> TaggedImage | None:
        """Map DiffIDs to blobs through the image *tag* points at now, and the local cache.

        Returns that image (None when the tag does not exist or cannot be used).
        """
        registry = self.client.registry
        if self.cache is not None:
            for plan in self.plans:
                found = self.cache.lookup(plan.layer.diff_id, plan.target, registry)
                if found:
                    self.known.setdefault(plan.layer.diff_id, []).extend(found)
        try:
            tagged = self.current.get(tag)
        except RegistryError as exc:
            log.debug("could not use the current manifest of %s:%s (%s)", self.repository, tag,
                      type(exc).__name__)
            return None
        if tagged is None:
            return None
        if holds_image(tagged, self.source.config_digest):
            diff_ids: Sequence[str] | None = self.source.diff_ids
        else:
            diff_ids = self.current.diff_ids(tagged)
        if diff_ids is None or len(diff_ids) != len(tagged.layers):
            return None
        for diff_id, layer in zip(diff_ids, tagged.layers, strict=True):
            encoding = _MEDIA_ENCODING.get(str(layer.media_type))
            if encoding is not None and encoding == self._target_for(diff_id):
                self.known.setdefault(diff_id, []).append(
                    _Known(layer.digest, layer.size, (self.repository,)))
        return tagged

    def unchanged(self, current: TaggedImage) -> list[Descriptor] | None:
        """The layer descriptors of *current* when it holds this image (`holds_image`) as exactly
        the manifest this push would write: the compression and the manifest format asked for
        (and an OCI layout's own manifest, byte for byte) are kept, so nothing else counts here.
        """
        if not holds_image(current, self.source.config_digest):
            return None
        try:
            layers = [Descriptor(plan.media_type, item.digest, item.size)
                      for plan, item in zip(self.plans, current.layers, strict=True)]
        except ValueError:
            return None
        if self.format == "verbatim":
            same = current.manifest.body == self.source.manifest
        else:
            same = _manifest_bytes(self, self.config_descriptor(), layers)[0] == current.manifest.body
        if not same:
            return None
        for plan in self.plans:
            self.progress.layer(plan.layer.short_id, "Layer already exists")
        return layers

    def _target_for(self, diff_id: str) -> Encoding | None:
        return next((p.target for p in self.plans if p.layer.diff_id == diff_id), None)

    # -- one layer -------------------------------------------------------------------------------

    def push_layer(self, plan: _Plan, compressor: Compressor) -> Descriptor:
        layer = plan.layer
        short = layer.short_id
        if self.cancel.is_set():
            raise Cancelled(layer.location)
        client, repo = self.client, self.repository
        for known in self.known.get(layer.diff_id, []):
            size = client.blob_exists(repo, known.digest)
            if size is not None:
                self.progress.layer(short, "Layer already exists")
                return Descriptor(plan.media_type, known.digest, size or known.size)
        early = plan.digest_before_upload
        if early is not None:
            size = client.blob_exists(repo, early)
            if size is not None:
                self.progress.layer(short, "Layer already exists")
                return Descriptor(plan.media_type, early, size or layer.size)
        for known in self.known.get(layer.diff_id, []):
            for other in known.repositories:
                if other != repo and client.mount_blob(repo, known.digest, other):
                    self.progress.layer(short, f"Mounted from {other}")
                    return Descriptor(plan.media_type, known.digest, known.size)
        total = layer.size if layer.encoding == "none" else None

        def report(done: int) -> None:
            self.progress.layer(short, "Pushing", done, total)

        def make(reader: image_archive.SliceReader) -> LayerStream:
            return LayerStream(
                reader, stored=layer.encoding, target=plan.target, diff_id=layer.diff_id,
                what=f"{self.source.path}: {layer.location}", stored_digest=layer.digest,
                compressor=compressor, cancel=self.cancel, on_progress=report,
            )

        def retrying(delay: float) -> None:
            self.progress.layer(short, f"Retrying in {math.ceil(delay)} seconds")

        self.progress.layer(short, "Pushing", 0, total)
        uploaded = client.upload_blob(
            repo, lambda: _LayerBody(make, layer), digest=early,
            size=layer.size if plan.as_is else None, chunk_size=self.chunk_size, on_retry=retrying,
        )
        self.progress.layer(short, "Pushed")
        return Descriptor(plan.media_type, uploaded.digest, uploaded.size)

    def config_descriptor(self) -> Descriptor:
        media_type = MEDIA_DOCKER_CONFIG if self.format == "docker" else (
            self.source.config_media_type or MEDIA_OCI_CONFIG)
        return Descriptor(media_type, self.source.config_digest, len(self.source.config))

    def push_config(self) -> Descriptor:
        descriptor = self.config_descriptor()
        media_type, digest, data = descriptor.media_type, descriptor.digest, self.source.config
        if self.client.blob_exists(self.repository, digest) is None:
            self.client.upload_blob(self.repository, lambda: BytesBody(data), digest=digest,
                                    size=len(data))
        return Descriptor(media_type, digest, len(data))

    # -- all blobs -------------------------------------------------------------------------------

    def push_blobs(self) -> tuple[Descriptor, list[Descriptor]]:
        """Config and layers, in parallel: largest layer first (it bounds the wall time), each
        distinct DiffID once. On the first failure the others are cancelled and it is raised.

        The uploads run on daemon threads (`worker_pool`): interrupted (SIGTERM, Ctrl-C), the
        push stops waiting at once, even for an upload stuck in a send to a registry that no
        longer reads, and the process can exit."""
        from jenkins_registry.worker_pool import DetachedPool, wait_done

        pool = DetachedPool(self.jobs, "jr-push")
        everything: list[Future[Any]] = []
        with Compressor(deflate_threads(self.jobs)) as compressor:
            try:
                for plan in self.plans:
                    self.progress.layer(plan.layer.short_id, "Preparing")
                config_future = pool.submit(self.push_config)
                by_diff_id: dict[str, Future[Descriptor]] = {}
                for plan in sorted(self.plans, key=lambda p: p.layer.size, reverse=True):
                    if plan.layer.diff_id not in by_diff_id:
                        by_diff_id[plan.layer.diff_id] = pool.submit(self.push_layer, plan,
                                                                     compressor)
                everything = [config_future, *by_diff_id.values()]
                wait_done(everything, first_failure=True)
                if any(f.done() and f.exception() is not None for f in everything):
                    self.cancel.set()
                    wait_done(everything)
                    raise _first_error([f.exception() for f in everything])
            except BaseException:
                self.cancel.set()
                pool.abandon(everything)
                raise
            pool.close()
            return config_future.result(), [by_diff_id[p.layer.diff_id].result() for p in self.plans]


def _first_error(errors: Sequence[BaseException | None]) -> BaseException:
    """The error to report: a corrupt input first, then any real failure, then a cancellation."""
    real = [e for e in errors if e is not None and not isinstance(e, Cancelled)]
    for error in real:
        if isinstance(error, InputFileError):
            return error
    return real[0] if real else next(e for e in errors if e is not None)


def _manifest_bytes(pusher: _Pusher, config: Descriptor, layers: Sequence[Descriptor]) -> tuple[bytes, str]:
    source = pusher.source
    if pusher.format == "verbatim":
        assert source.manifest is not None and source.manifest_media_type is not None
        return source.manifest, source.manifest_media_type
    media_type = MEDIA_DOCKER_MANIFEST if pusher.format == "docker" else MEDIA_OCI_MANIFEST
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    return json.dumps(document, indent=3).encode(), media_type


@dataclass(frozen=True, kw_only=True)
class SourcePushOptions:
    """How `push_source` goes about it.

    *jobs* 0 means `default_jobs()`; more than MAX_JOBS means MAX_JOBS. *blob_cache* names a
    JSON file that remembers pushed blobs between runs (for skipping and cross-repository
    mounts); None keeps no state. *chunk_size* switches blob uploads to chunked PATCHes of that
    many bytes. *ca_bundle* adds CA certificates to the default store for verified HTTPS (the
    CLI passes REQUESTS_CA_BUNDLE). *image_selector* picks one image of a multi-image source.
    """

    compression: Compression = "gzip"
    jobs: int = 0
    insecure: bool = False  # plain HTTP (and unverified HTTPS) to a non-loopback registry
    image_selector: str | None = None
    blob_cache: Path | None = None
    retry: RetryPolicy | None = None
    chunk_size: int | None = None
    ca_bundle: str | None = None


def push_source(
    source_path: Path,
    source_kind: Literal["archive", "oci"],
    request: TargetRequest,
    credentials: UsernamePassword | None,
    progress: ProgressSink,
    options: SourcePushOptions = SourcePushOptions(),
    *,
    client: RegistryClient | None = None,
    current: CurrentImages | None = None,
) -> PushResult:
    """Push the image in *source_path* to the target *request* names, completed with the name
    the source records (its path without the registry part; its tag, else `latest`), without a
    daemon.

    A given *client* (for the registry, already pinged) is used instead of a new one and not
    closed; a given *current* (for that client and the same target) is what the route decision
    fetched already. Raises JrError subclasses (the same as the engine path for registry failures).
    """
    if options.compression not in ("gzip", "none"):
        raise UsageError(f"Unknown compression {options.compression!r}.", hint="Use gzip or none.")
    jobs = effective_jobs(options.jobs)
    if jobs < options.jobs:
        log.info("using %d parallel uploads (the most jr-push runs), not %d", jobs, options.jobs)
    opened = image_archive.open_push_source(Path(source_path), source_kind, options.image_selector)
    target = request.complete_from_file(opened.default_name(), opened.path)
    own_client = client is None
    if client is None:
        policy = SchemePolicy.from_insecure_flag(target.registry, insecure=options.insecure)
        client = RegistryClient(target.registry, credentials=credentials, policy=policy,
                                retry=options.retry, ca_bundle=options.ca_bundle)
    try:
        if isinstance(opened, image_archive.IndexSource):  # multi-platform: docs/multi-arch.md
            from jenkins_registry import index_push  # a floor below: handed this module's pusher

            tools = index_push.PushTools(_Pusher, _manifest_bytes, publish_tags, BlobInfoCache)
            return index_push.push_index(opened, target, progress, options, tools, jobs=jobs,
                                         client=client)
        source = opened
        cache = BlobInfoCache(options.blob_cache) if options.blob_cache is not None else None
        log.info("pushing %s (%d layers, %s) to %s as %s", source.path, len(source.layers),
                 options.compression, target.name, ", ".join(target.tags))
        if current is None:
            current = CurrentImages(client, target)
        pusher = _Pusher(client, source, current, options.compression, jobs, progress, cache,
                         options.chunk_size)
        if client.base_url is None:
            client.ping()
        client.check_credentials(target.repository, probe=False)
        progress.message(f"The push refers to repository [{target.name}]")
        found, layers = None, None
        # The wanted tags, then `latest`: a build-number tag is new each time, while `latest`
        # usually holds the previous build, whose layers need not be sent again.
        for candidate in target.candidate_tags:
            tagged = pusher.discover(candidate)
            layers = pusher.unchanged(tagged) if tagged is not None else None
            if tagged is not None and layers is not None:
                found = tagged
                break
        if found is not None and layers is not None:
            log.info("%s already is this image; nothing to upload", target.reference(found.tag))
            manifest = found.manifest
            body, media_type, digest = manifest.body, manifest.media_type, manifest.digest
            publish_tags(client, target, body, media_type, digest, progress, existed=True,
                         holding=found.tag)
        else:
            config, layers = pusher.push_blobs()
            body, media_type = _manifest_bytes(pusher, config, layers)
            digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
            publish_tags(client, target, body, media_type, digest, progress, existed=None)
        if cache is not None:
            for plan, descriptor in zip(pusher.plans, layers, strict=True):
                cache.record(plan.layer.diff_id, plan.target, descriptor.digest, descriptor.size,
                             target.name)
            cache.save()
    finally:
        if own_client:
            client.close()
    return PushResult(target=target, digest=digest, manifest_size=len(body),
                      image_size=source.size, image_id=source.config_digest, method="daemonless")


# -- the tags, and an interrupt while they are written ----------------------------------------------

# How long an interrupted push waits for the registry to delete its manifest again: the whole
# exit must fit in the 2 s an aborted Jenkins step is given before SIGKILL (docs/push.md).
TAKE_BACK_SECONDS = 1.0


def publish_tags(client: RegistryClient, target: PushTarget, body: bytes, media_type: str,
                 digest: str, progress: ProgressSink, *, existed: bool | None,
                 holding: str | None = None) -> None:
    """`put_tags`, and when an interrupt (SIGTERM, Ctrl-C) stops it part way, the same take-back
    as a failure gets: the manifest is deleted again when this push created it.

    Deleting is by digest (Docker's registry deletes no single tag), which removes every tag of
    that manifest: so a manifest the registry held before (*existed*; None: asked here, before
    any tag is written) is never deleted, and the tags written so far stay, at the complete image.
    """
    if existed is None:
        existed = client.manifest_digest(target.repository, digest, (media_type,)) is not None
    try:
        put_tags(client, target, body, media_type, digest, progress, existed=existed,
                 holding=holding)
    except KeyboardInterrupt:
        _take_back_interrupted(client, target, digest, existed)
        raise


def _take_back_interrupted(client: RegistryClient, target: PushTarget, digest: str,
                           existed: bool) -> None:
    tags = ", ".join(target.tags)
    if existed:
        log.warning("interrupted while writing the tags %s: those written so far stay; they point "
                    "at %s, which the registry held before this push, so it is not deleted",
                    tags, digest)
        return
    from jenkins_registry.worker_pool import DetachedPool

    # on a daemon thread: a registry that does not answer must not hold the exit up
    with DetachedPool(1, "jr-take-back") as pool:
        future = pool.submit(client.delete_manifest, target.repository, digest)
    try:
        deleted = future.result(timeout=TAKE_BACK_SECONDS)
    except Exception:  # no answer in time, or a failure: the tags may stay, said below
        deleted = False
    if deleted:
        log.warning("interrupted while writing the tags %s: took back those written (deleted the "
                    "manifest %s this push created)", tags, digest)
    else:
        log.warning("interrupted while writing the tags %s: the registry did not delete the "
                    "manifest %s again, so the tags written so far stay (at the complete image); "
                    "delete them in the registry if unwanted", tags, digest)

