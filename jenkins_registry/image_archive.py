"""Read an image from a `docker save` archive or an OCI image layout, without unpacking it.

Sources understood:
  * a `docker save` tar, classic layout (engines before v25: `manifest.json`, `<id>.json`,
    `<layer>/layer.tar`) or the OCI layout newer engines write (`manifest.json` next to
    `index.json` and `blobs/sha256/…`). `manifest.json` and the config's `rootfs.diff_ids` are the
    source of truth, because `index.json` from some v25 engines is wrong (moby #47065, #47210);
  * an OCI image layout, as a directory or as a tar without `manifest.json` (`index.json` →
    manifest → config and layers);
  * for `jr-push`, a multi-platform image whole (`open_push_source` → `IndexSource`): an image
    index and each of its entries, platform images and the manifests carried as they are
    (attestations); index_push pushes it (docs/multi-arch.md).

Everything that can be checked without reading the layers is checked here, before any network
work: the JSON documents, the config digest against its name, the number of layers against
`rootfs.diff_ids`, every member present and inside the file, blob sizes. Layer contents are
checked while they are streamed (compression.LayerStream). Layers are read straight out of the
tar by offset (`os.pread`), so nothing is extracted to disk.

Hostile input is bounded before it costs anything (docs/security.md): a tar's extended (pax,
GNU long-name) headers are checked before `tarfile` parses them, because Python before 3.11.10
and 3.12.6 parses a crafted pax header in quadratic time (CVE-2024-6232); a tar holds at most
`MAX_TAR_MEMBERS` members; an OCI layout's indexes are each parsed once, and a walk of them meets
at most `MAX_INDEX_ENTRIES` descriptors; a layout directory's files must be regular files inside
it (a symlink out of the layout is refused before anything is read or uploaded); every JSON
document goes through `untrusted_json` (bounded nesting, no NaN).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

from jenkins_registry import media_types
from jenkins_registry.compression import Encoding, detect_encoding
from jenkins_registry.errors import InputFileError, InvalidReferenceError, UsageError
from jenkins_registry.reference import parse_reference
from jenkins_registry.untrusted_json import UntrustedJsonError
from jenkins_registry.untrusted_json import loads as json_loads

log = logging.getLogger(__name__)

SourceKind = Literal["archive", "oci"]

MEDIA_OCI_INDEX = media_types.OCI_INDEX
MEDIA_OCI_MANIFEST = media_types.OCI_MANIFEST
MEDIA_OCI_CONFIG = media_types.OCI_CONFIG
MEDIA_DOCKER_LIST = media_types.DOCKER_MANIFEST_LIST
MEDIA_DOCKER_MANIFEST = media_types.DOCKER_MANIFEST
MEDIA_DOCKER_CONFIG = media_types.DOCKER_CONFIG
INDEX_MEDIA_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST)
MANIFEST_MEDIA_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
# BuildKit marks the manifests of attestations (provenance, SBOM) in an index with this annotation,
# and platform unknown/unknown: they are not images to run, but belong to the index.
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"

_LAYER_ENCODINGS: Mapping[str, Encoding] = media_types.LAYER_ENCODINGS
_JSON_LIMIT = 16 * 1024 * 1024
# Engines write neither pax nor GNU long-name headers for the names of a `docker save` archive;
# other tools write a few hundred bytes at most. 64 KiB is generous and keeps tarfile's own
# parsing cheap; the records are also checked in linear time before tarfile sees them.
MAX_EXTENDED_HEADER = 64 * 1024
MAX_TAR_MEMBERS = 100_000  # a save of hundreds of images with dozens of layers each stays below
MAX_INDEX_ENTRIES = 10_000  # descriptors in index.json and every nested index together
_MAX_DIGIT_RUN = 64  # tarfile's pax regexes backtrack over a run of digits: keep runs short
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HINT = "Re-create it (e.g. `docker save -o FILE IMAGE`) and try again; nothing was pushed."


class SliceReader:
    """Reads `length` bytes of a file from `offset` with pread: thread-safe, no extraction."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._pos = offset
        self._end = offset + length

    def read(self, size: int, /) -> bytes:
        size = min(size, self._end - self._pos)
        if size <= 0:
            return b""
        data = os.pread(self._fd, size, self._pos)
        self._pos += len(data)
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SliceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, kw_only=True)
class LayerBlob:
    """One layer as stored in the source, and how to read its bytes."""

    index: int
    diff_id: str  # from the config's rootfs.diff_ids
    size: int  # bytes as stored
    encoding: Encoding  # as stored: none (a tar), gzip or zstd
    digest: str | None  # sha256 of the stored bytes when the source names it, else None
    media_type: str | None  # as the source manifest declares it (OCI layouts)
    location: str  # member or file name, for messages
    file: Path = field(repr=False)
    offset: int = field(repr=False)

    def open(self) -> SliceReader:
        return SliceReader(self.file, self.offset, self.size)

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the DiffID: the id the engine shows for this layer."""
        return self.diff_id.split(":", 1)[-1][:12]


@dataclass(frozen=True, kw_only=True)
class ImageSource:
    """An image read from an archive or layout: config, layers, and the names it carries."""

    path: Path
    kind: SourceKind
    config: bytes = field(repr=False)
    config_digest: str
    layers: tuple[LayerBlob, ...]
    repo_tags: tuple[str, ...] = ()  # `name:tag` as recorded in the source (registry included)
    manifest: bytes | None = field(default=None, repr=False)  # the OCI source manifest, verbatim
    manifest_media_type: str | None = None
    config_media_type: str | None = None
    ref_tag: str | None = None  # an OCI layout's bare `org.opencontainers.image.ref.name` tag

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def default_name(self) -> tuple[str | None, str | None]:
        """(repository path, tag) from the first recorded name, registry part dropped."""
        return _default_name(self.repo_tags, self.ref_tag)


def _default_name(repo_tags: Sequence[str], ref_tag: str | None) -> tuple[str | None, str | None]:
    for name in repo_tags:
        try:
            ref = parse_reference(name)
        except InvalidReferenceError:
            continue
        path = ref.path
        if ref.registry in (None, "docker.io", "index.docker.io") and path.startswith("library/"):
            path = path[len("library/"):]
        return path, ref.tag or ref_tag
    return None, ref_tag


@dataclass(frozen=True, kw_only=True)
class CarriedBlob:
    """A blob of an index entry that is not a platform image (an attestation): pushed as stored,
    byte for byte. Its size and digest are checked when the source is opened."""

    digest: str
    size: int
    location: str  # file name, for messages
    file: Path = field(repr=False)
    offset: int = field(repr=False)

    def open(self) -> SliceReader:
        return SliceReader(self.file, self.offset, self.size)


@dataclass(frozen=True, kw_only=True)
class IndexChild:
    """One entry of an image index: a platform's image, or a manifest carried as it is."""

    descriptor: Mapping[str, Any] = field(repr=False)  # the entry as the index writes it
    manifest: bytes = field(repr=False)  # verbatim, checked against the entry's digest and size
    media_type: str
    digest: str
    platform: str | None  # OS/ARCH[/VARIANT] from the entry, as `--image` selects it
    image: ImageSource | None = None  # None: not an image (attestation, unknown platform)
    blobs: tuple[CarriedBlob, ...] = ()  # config and layers of a carried entry

    @property
    def label(self) -> str:
        """The platform, or what the entry is, for messages."""
        if self.image is not None and self.platform:
            return self.platform
        annotations = self.descriptor.get("annotations")
        kind = annotations.get(REFERENCE_TYPE) if isinstance(annotations, dict) else None
        return f"{kind or 'manifest'} {self.digest[:19]}"


@dataclass(frozen=True, kw_only=True)
class IndexSource:
    """A multi-platform image: an image index (OCI, or a Docker manifest list) and its entries."""

    path: Path
    kind: SourceKind
    index: bytes = field(repr=False)  # verbatim, checked against its digest and size
    media_type: str
    digest: str
    children: tuple[IndexChild, ...]
    repo_tags: tuple[str, ...] = ()
    ref_tag: str | None = None

    @property
    def images(self) -> tuple[ImageSource, ...]:
        return tuple(child.image for child in self.children if child.image is not None)

    @property
    def size(self) -> int:
        """Bytes of the distinct layers of every platform, as stored."""
        return sum({layer.digest or layer.location: layer.size
                    for image in self.images for layer in image.layers}.values())

    def default_name(self) -> tuple[str | None, str | None]:
        """(repository path, tag) from the first recorded name, registry part dropped."""
        return _default_name(self.repo_tags, self.ref_tag)


def _corrupt(path: Path, what: str, hint: str = _HINT) -> InputFileError:
    return InputFileError(f"{path} is not a usable image: {what}.", hint=hint)


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _loads(path: Path, name: str, data: bytes) -> Any:
    try:
        return json_loads(data)
    except UntrustedJsonError as exc:
        raise _corrupt(path, f"{name} is not usable JSON: {exc}") from None
    except ValueError:  # json.JSONDecodeError, UnicodeDecodeError
        raise _corrupt(path, f"{name} is not valid JSON") from None


# -- storage: a tar or a directory ----------------------------------------------------------------


class _Store:
    """Named files of a source: small ones read into memory, large ones located for streaming."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def locate(self, name: str) -> tuple[Path, int, int]:
        """(file, offset, size) of *name*."""
        raise NotImplementedError

    def read(self, name: str, limit: int = _JSON_LIMIT) -> bytes:
        file, offset, size = self.locate(name)
        if size > limit:
            raise _corrupt(self.path, f"{name} is implausibly large ({size} bytes)")
        with SliceReader(file, offset, size) as reader:
            data = reader.read(size)
        if len(data) != size:
            raise _corrupt(self.path, f"{name} is truncated")
        return data

    def head(self, name: str, size: int = 4) -> bytes:
        file, offset, length = self.locate(name)
        with SliceReader(file, offset, min(size, length)) as reader:
            return reader.read(size)


class _RefusedHeader(Exception):
    """A tar header refused before tarfile parses it; not a tarfile error, so tarfile passes it on
    instead of ending the member list quietly."""


_PAX_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_LONG_NAME_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_PAX_LENGTH = re.compile(rb"([0-9]{1,20}) ")
_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % (_MAX_DIGIT_RUN + 1))


def _check_pax_records(data: bytes) -> None:
    """Refuse pax data tarfile would parse slowly or could not lay out: each record is
    `LENGTH KEYWORD=VALUE\n` within its LENGTH, and no run of digits is long. Linear time."""
    if _LONG_DIGITS.search(data):
        raise _RefusedHeader("a pax header holds an implausibly long number")
    pos = 0
    while pos < len(data) and data[pos] != 0:
        match = _PAX_LENGTH.match(data, pos)
        end = pos + int(match.group(1)) if match else 0
        equals = data.find(b"=", match.end(), end) if match else -1
        if match is None or end > len(data) or equals <= match.end() or data[end - 1] != 0x0A:
            raise _RefusedHeader("a pax header is malformed")
        if data[match.end():equals].startswith(b"GNU.sparse."):
            raise _RefusedHeader("it holds a sparse file, which `docker save` never writes")
        pos = end


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's TarInfo, looking at each header before tarfile processes it (the bound on
    CVE-2024-6232 for interpreters without its fix, 3.11.7 among them)."""

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> Self:
        handle = archive.fileobj
        assert handle is not None
        start = handle.tell()
        try:
            header: tarfile.TarInfo | None = cls.frombuf(handle.read(tarfile.BLOCKSIZE),
                                                         archive.encoding, archive.errors)
        except tarfile.HeaderError:
            header = None  # tarfile reports it (or ends the archive there) as it always does
        if header is not None:
            if header.type == tarfile.GNUTYPE_SPARSE:
                raise _RefusedHeader("it holds a sparse file, which `docker save` never writes")
            if header.type in _PAX_TYPES or header.type in _LONG_NAME_TYPES:
                if not 0 <= header.size <= MAX_EXTENDED_HEADER:
                    raise _RefusedHeader(f"an extended tar header of {header.size} bytes (the limit "
                                         f"is {MAX_EXTENDED_HEADER})")
                if header.type in _PAX_TYPES:
                    _check_pax_records(handle.read(header.size))
        handle.seek(start)
        return super().fromtarfile(archive)


class _TarStore(_Store):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            file_size = path.stat().st_size
            with open(path, "rb") as handle:
                magic = handle.read(6)
        except OSError as exc:
            raise InputFileError(f"Cannot read {path}: {exc.strerror or type(exc).__name__}.",
                                 hint="Check the path and its permissions.") from None
        compressed = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2",
                      b"\xfd7zXZ": "xz"}
        for prefix, kind in compressed.items():
            if magic.startswith(prefix):
                raise InputFileError(
                    f"{path} is a {kind}-compressed file, not a plain tar archive.",
                    hint=f"Decompress it first (e.g. `{'gunzip' if kind == 'gzip' else kind + ' -d'} "
                    f"-k {path.name}`) and pass the .tar file; layers are read straight from it.",
                )
        members: list[tarfile.TarInfo] = []
        try:
            with tarfile.open(path, "r:", tarinfo=_BoundedTarInfo) as tar:
                while (member := tar.next()) is not None:
                    members.append(member)
                    if len(members) > MAX_TAR_MEMBERS:
                        raise _corrupt(path, f"it has more than {MAX_TAR_MEMBERS} members")
        except _RefusedHeader as exc:
            raise _corrupt(path, str(exc)) from None
        except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as exc:
            if "unexpected end of data" in str(exc) or isinstance(exc, EOFError):
                raise _corrupt(path, "the archive is truncated") from None
            raise _corrupt(path, f"it is not a readable tar archive ({type(exc).__name__})") from None
        if not members:
            raise _corrupt(path, "the tar archive is empty")
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            if member.offset_data + member.size > file_size:
                raise _corrupt(path, f"the archive is truncated ({member.name} ends past the end)")
            self._members[self._norm(member.name)] = member

    @staticmethod
    def _norm(name: str) -> str:
        return posixpath.normpath(name.lstrip("/")).removeprefix("./")

    def _resolve(self, name: str) -> tarfile.TarInfo:
        current = self._norm(name)
        for _ in range(16):
            member = self._members.get(current)
            if member is None:
                raise _corrupt(self.path, f"{name} is missing from the archive")
            if member.issym():
                current = self._norm(posixpath.join(posixpath.dirname(current), member.linkname))
            elif member.islnk():
                current = self._norm(member.linkname)
            elif member.isfile():
                return member
            else:
                raise _corrupt(self.path, f"{name} is not a regular file in the archive")
        raise _corrupt(self.path, f"{name} is a loop of links")

    def exists(self, name: str) -> bool:
        return self._norm(name) in self._members

    def locate(self, name: str) -> tuple[Path, int, int]:
        member = self._resolve(name)
        return self.path, member.offset_data, member.size


class _DirStore(_Store):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._root = Path(os.path.realpath(path))

    def exists(self, name: str) -> bool:
        return (self.path / name).is_file()

    def locate(self, name: str) -> tuple[Path, int, int]:
        """The file behind *name*, links resolved: it must stay inside the layout (a link out of
        it could send any file of this machine to the registry) and be a regular file (a FIFO
        would block the read)."""
        real = Path(os.path.realpath(self.path / name))
        if not real.is_relative_to(self._root):
            raise _corrupt(self.path, f"{name} is a link that leads out of the layout",
                           hint="Copy the blob into the layout (e.g. `cp -L`); nothing was pushed.")
        try:
            info = real.stat()
        except OSError:
            raise _corrupt(self.path, f"{name} is missing") from None
        if not stat.S_ISREG(info.st_mode):
            raise _corrupt(self.path, f"{name} is not a regular file")
        return real, 0, info.st_size


# -- docker save (manifest.json) -----------------------------------------------------------------


def open_image_source(path: Path, kind: SourceKind, image_selector: str | None = None) -> ImageSource:
    """Open *path* as a `docker save` archive (`archive`) or an OCI layout directory (`oci`)."""
    return _read_image(_open_store(path, kind), kind, image_selector)


def _open_store(path: Path, kind: SourceKind) -> _Store:
    if kind == "archive":
        if path.is_dir():
            raise UsageError(f"{path} is a directory.",
                             hint="Pass a `docker save` .tar file, or use --from-oci for a layout.")
        if not path.is_file():
            raise InputFileError(f"{path} does not exist or is not a file.", hint="Check the path.")
        return _TarStore(path)
    if path.is_dir():
        return _DirStore(path)
    if path.is_file():
        return _TarStore(path)  # an OCI layout packed as a tar
    raise InputFileError(f"{path} does not exist.", hint="Check the path of the OCI layout.")


def _read_image(store: _Store, kind: SourceKind, image_selector: str | None) -> ImageSource:
    if kind == "archive":
        return _read_docker_archive(store, image_selector)
    return _read_oci(store, "oci", image_selector)


def open_docker_archive(path: Path, image_selector: str | None = None) -> ImageSource:
    """Read a `docker save` tar (classic or OCI-layout variant); a tar with only an OCI layout too."""
    return _read_docker_archive(_open_store(path, "archive"), image_selector)


def _read_docker_archive(store: _Store, image_selector: str | None) -> ImageSource:
    path = store.path
    if not store.exists("manifest.json"):
        if store.exists("index.json"):
            return _read_oci(store, "archive", image_selector)
        raise _corrupt(path, "it has no manifest.json (not a `docker save` archive)")
    entries = _loads(path, "manifest.json", store.read("manifest.json"))
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise _corrupt(path, "manifest.json does not list any image")
    entry = _select_entry(path, entries, image_selector)
    config_name = entry.get("Config")
    layer_names = entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list) or not all(
            isinstance(n, str) for n in layer_names):
        raise _corrupt(path, "manifest.json lacks Config or Layers")
    config = store.read(config_name)
    config_digest = _sha256(config)
    named = _digest_from_name(config_name)
    if named is not None and named != config_digest:
        raise _corrupt(path, f"the config {config_name} does not match its name (it hashes to "
                       f"{config_digest})")
    diff_ids = _diff_ids(path, config, len(layer_names))
    layers = []
    for index, (name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
        file, offset, size = store.locate(name)
        encoding = detect_encoding(store.head(name))
        digest = _digest_from_name(name)
        if encoding == "none" and digest is not None and digest != diff_id:
            raise _corrupt(path, f"layer {index + 1} ({name}) is named {digest} but the config lists "
                           f"{diff_id}")
        layers.append(LayerBlob(index=index, diff_id=diff_id, size=size, encoding=encoding,
                                digest=digest, media_type=None, location=f"layer {index + 1} ({name})",
                                file=file, offset=offset))
    repo_tags = entry.get("RepoTags") or ()
    return ImageSource(
        path=path, kind="archive", config=config, config_digest=config_digest, layers=tuple(layers),
        repo_tags=tuple(t for t in repo_tags if isinstance(t, str)),
    )


def _select_entry(path: Path, entries: list[dict[str, Any]], selector: str | None) -> dict[str, Any]:
    def names(entry: dict[str, Any]) -> list[str]:
        tags = entry.get("RepoTags") or []
        return [t for t in tags if isinstance(t, str)]

    if selector is None:
        if len(entries) == 1:
            return entries[0]
        listed = ", ".join(n for e in entries for n in names(e)) or f"{len(entries)} untagged images"
        raise UsageError(f"{path} holds several images ({listed}).",
                         hint="Choose one with --image NAME:TAG.")
    for entry in entries:
        candidates = names(entry)
        candidates += [n.split("/", 1)[1] for n in candidates if "/" in n]
        config = str(entry.get("Config", ""))
        if selector in candidates or (len(selector) >= 12 and selector.removeprefix("sha256:") in config):
            return entry
    raise UsageError(f"{path} has no image named {selector!r}.",
                     hint="Use one of the names in the archive (`tar -xOf FILE manifest.json`).")


def _digest_from_name(name: str) -> str | None:
    """`blobs/sha256/<hex>` or `<hex>.json` → `sha256:<hex>`; None for other names."""
    base = posixpath.basename(name)
    parent = posixpath.basename(posixpath.dirname(name))
    hexpart = base.removesuffix(".json")
    if re.fullmatch(r"[0-9a-f]{64}", hexpart) and (parent == "sha256" or base.endswith(".json")):
        return f"sha256:{hexpart}"
    return None


def _diff_ids(path: Path, config: bytes, layer_count: int) -> list[str]:
    document = _loads(path, "the image config", config)
    rootfs = document.get("rootfs") if isinstance(document, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and _DIGEST_RE.match(d)
                                                 for d in diff_ids):
        raise _corrupt(path, "the image config has no valid rootfs.diff_ids")
    if len(diff_ids) != layer_count:
        raise _corrupt(path, f"the image has {layer_count} layers but its config lists "
                       f"{len(diff_ids)} diff_ids")
    return diff_ids


# -- OCI image layout -----------------------------------------------------------------------------


def open_oci_layout(path: Path, image_selector: str | None = None) -> ImageSource:
    """Read an OCI image layout (a directory, or a tar of one)."""
    store: _Store = _DirStore(path) if path.is_dir() else _TarStore(path)
    return _read_oci(store, "oci", image_selector)


def _blob_name(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"blobs/{algorithm}/{hexpart}"


def _read_blob(store: _Store, descriptor: Mapping[str, Any], what: str) -> bytes:
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise _corrupt(store.path, f"the {what} has no sha256 digest")
    data = store.read(_blob_name(digest))
    if _sha256(data) != digest:
        raise _corrupt(store.path, f"the {what} {digest} does not match its content")
    size = descriptor.get("size")
    if isinstance(size, int) and size != len(data):
        raise _corrupt(store.path, f"the {what} {digest} has {len(data)} bytes, not {size}")
    return data


def _read_layout_index(store: _Store) -> Any:
    """index.json, after checking the layout's version."""
    path = store.path
    if store.exists("oci-layout"):
        layout = _loads(path, "oci-layout", store.read("oci-layout"))
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise _corrupt(path, f"unsupported oci-layout version {version!r}")
    if not store.exists("index.json"):
        raise _corrupt(path, "it has no index.json (not an OCI image layout)",
                       hint="Pass an OCI image layout directory (with oci-layout and index.json).")
    return _loads(path, "index.json", store.read("index.json"))


def _read_oci(store: _Store, kind: SourceKind, selector: str | None) -> ImageSource:
    index = _read_layout_index(store)
    candidates: list[tuple[dict[str, Any], list[str]]] = []
    _collect_manifests(store, index, [], candidates, depth=0, budget=_IndexBudget())
    descriptor, names = _select_manifest(store.path, candidates, selector)
    manifest = _read_blob(store, descriptor, "manifest")
    document = _loads(store.path, "the manifest", manifest)
    return _image_from_manifest(store, kind, descriptor, names, manifest, document)


def _image_from_manifest(store: _Store, kind: SourceKind, descriptor: Mapping[str, Any],
                         names: Sequence[str], manifest: bytes, document: Any,
                         ref_tag: str | None = None) -> ImageSource:
    """The image an OCI or Docker schema 2 *manifest* (read and checked against *descriptor*)
    describes: its config and layers located and checked."""
    path = store.path
    if not isinstance(document, dict):
        raise _corrupt(path, "the manifest is not a JSON object")
    media_type = document.get("mediaType") or descriptor.get("mediaType") or MEDIA_OCI_MANIFEST
    config_descriptor = document.get("config")
    layer_descriptors = document.get("layers")
    if not isinstance(config_descriptor, dict) or not isinstance(layer_descriptors, list):
        raise _corrupt(path, "the manifest has no config or layers")
    config = _read_blob(store, config_descriptor, "config")
    diff_ids = _diff_ids(path, config, len(layer_descriptors))
    layers = []
    for position, (layer, diff_id) in enumerate(zip(layer_descriptors, diff_ids, strict=True)):
        if not isinstance(layer, dict):
            raise _corrupt(path, f"layer {position + 1} of the manifest is not a descriptor")
        digest = layer.get("digest")
        layer_type = str(layer.get("mediaType", ""))
        _refuse_foreign(path, layer)
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise _corrupt(path, f"layer {position + 1} has no sha256 digest")
        name = _blob_name(digest)
        file, offset, size = store.locate(name)
        if isinstance(layer.get("size"), int) and layer["size"] != size:
            raise _corrupt(path, f"layer {position + 1} ({name}) has {size} bytes, the manifest says "
                           f"{layer['size']}")
        encoding = detect_encoding(store.head(name))
        declared = _LAYER_ENCODINGS.get(layer_type)
        if declared is not None and declared != encoding:
            raise _corrupt(path, f"layer {position + 1} ({name}) is declared {layer_type} but its "
                           f"content is {'a plain tar' if encoding == 'none' else encoding}")
        if encoding == "none" and digest != diff_id:
            raise _corrupt(path, f"layer {position + 1} ({name}) is uncompressed but its digest is not "
                           f"the DiffID {diff_id}")
        layers.append(LayerBlob(index=position, diff_id=diff_id, size=size, encoding=encoding,
                                digest=digest, media_type=layer_type or None,
                                location=f"layer {position + 1} ({name})", file=file, offset=offset))
    config_type = config_descriptor.get("mediaType")
    return ImageSource(
        path=path, kind=kind, config=config, config_digest=_sha256(config), layers=tuple(layers),
        repo_tags=tuple(names), manifest=manifest, manifest_media_type=str(media_type),
        config_media_type=config_type if isinstance(config_type, str) else None,
        ref_tag=ref_tag or _ref_tag(descriptor),
    )


def _refuse_foreign(path: Path, descriptor: Mapping[str, Any]) -> None:
    media_type = str(descriptor.get("mediaType", ""))
    if descriptor.get("urls") or "foreign" in media_type or "nondistributable" in media_type:
        raise UsageError(f"{path} has a foreign (non-distributable) layer, which jr-push does not "
                         "upload.", hint="Push this image with the Docker engine instead.")


def _names(descriptor: Mapping[str, Any]) -> list[str]:
    """Image names recorded in a descriptor's annotations, as `name:tag` where possible."""
    annotations = descriptor.get("annotations")
    if not isinstance(annotations, dict):
        return []
    names = []
    full = annotations.get("io.containerd.image.name")
    if isinstance(full, str) and full:
        names.append(full)
    ref = annotations.get("org.opencontainers.image.ref.name")
    if isinstance(ref, str) and ref and ("/" in ref or ":" in ref) and ref not in names:
        names.append(ref)
    return names


def _ref_tag(descriptor: Mapping[str, Any]) -> str | None:
    annotations = descriptor.get("annotations")
    ref = annotations.get("org.opencontainers.image.ref.name") if isinstance(annotations, dict) else None
    return ref if isinstance(ref, str) and ref and "/" not in ref and ":" not in ref else None


@dataclass
class _IndexBudget:
    """What the walk of an index tree has spent. Indexes that list each other many times over
    cost time and memory exponential in the depth; each is read and parsed once, and the entries
    of every visit count against MAX_INDEX_ENTRIES (a visit, not a digest: the same index listed
    under two tags names two images)."""

    parsed: dict[str, Any] = field(default_factory=dict)  # nested index digest -> its document
    entries: int = 0


def _collect_manifests(store: _Store, index: Any, inherited: list[str],
                       out: list[tuple[dict[str, Any], list[str]]], depth: int,
                       budget: _IndexBudget) -> None:
    if depth > 4:
        raise _corrupt(store.path, "index.json nests indexes too deeply")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise _corrupt(store.path, "index.json lists no manifests")
    budget.entries += len(manifests)
    if budget.entries > MAX_INDEX_ENTRIES:
        raise _corrupt(store.path, f"its indexes list more than {MAX_INDEX_ENTRIES} entries")
    for descriptor in manifests:
        if not isinstance(descriptor, dict):
            continue
        names = _names(descriptor) or inherited
        media_type = descriptor.get("mediaType")
        if media_type in (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST):
            digest = descriptor.get("digest")
            nested = budget.parsed.get(digest) if isinstance(digest, str) else None
            if nested is None:
                nested = _loads(store.path, "a nested index", _read_blob(store, descriptor, "index"))
                budget.parsed[str(digest)] = nested
            _collect_manifests(store, nested, names, out, depth + 1, budget)
        elif media_type in (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST, None):
            out.append((descriptor, names))


def platform_of(descriptor: Mapping[str, Any]) -> str | None:
    """OS/ARCH[/VARIANT] of an index entry, as `--image` selects it; None when it names none."""
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return None
    parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
    return "/".join(str(p) for p in parts if p)


def _select_manifest(path: Path, candidates: list[tuple[dict[str, Any], list[str]]],
                     selector: str | None) -> tuple[dict[str, Any], list[str]]:
    if not candidates:
        raise _corrupt(path, "index.json lists no image manifest")
    if selector is None:
        if len(candidates) == 1:
            return candidates[0]
        labels = sorted({label for d, n in candidates for label in _labels(d, n)})
        raise UsageError(f"{path} holds {len(candidates)} image manifests.",
                         hint="Choose one with --image (one of: " + ", ".join(labels[:12]) + ").")
    matches = [c for c in candidates if selector in _labels(*c)]
    if len(matches) == 1:
        return matches[0]
    raise UsageError(f"{path} has {'no' if not matches else 'more than one'} image matching "
                     f"{selector!r}.", hint="Use a tag, an image name, a manifest digest or "
                     "OS/ARCH as listed in index.json.")


def _labels(descriptor: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    labels = list(names)
    labels += [n.split("/", 1)[1] for n in names if "/" in n]
    tag = _ref_tag(descriptor)
    if tag:
        labels.append(tag)
    if isinstance(descriptor.get("digest"), str):
        labels.append(descriptor["digest"])
    platform = platform_of(descriptor)
    if platform:
        labels.append(platform)
    return labels


# -- an image index, pushed whole -------------------------------------------------------------------


def open_push_source(path: Path, kind: SourceKind,
                     image_selector: str | None = None) -> ImageSource | IndexSource:
    """What `jr-push --from-archive/--from-oci` pushes: `open_image_source`, except that a
    multi-platform image comes back whole, as an IndexSource.

    That is when index.json's entry (its only one, or the one *image_selector* names by image
    name, tag or digest) is an image index of more than one manifest, each an image or a manifest
    to carry as it is (attestations). A selector naming a platform (`linux/arm64`) or a manifest
    digest picks that one image, as before. Every entry is read and checked here, before any
    network work. A `docker save` archive whose index lacks the content of some platforms (an
    engine saves what it pulled) is read through its manifest.json, as before.
    """
    store = _open_store(path, kind)
    index = _read_index_source(store, kind, image_selector)
    return index if index is not None else _read_image(store, kind, image_selector)


def _read_index_source(store: _Store, kind: SourceKind, selector: str | None) -> IndexSource | None:
    if not store.exists("index.json"):
        return None
    path = store.path
    top = _read_layout_index(store)
    entries = top.get("manifests") if isinstance(top, dict) else None
    if not isinstance(entries, list):
        return None  # the single-image reader says what is wrong with it
    entries = [e for e in entries if isinstance(e, dict)]
    if selector is not None:
        entries = [e for e in entries if selector in _labels(e, _names(e))]
    if len({str(e.get("digest")) for e in entries}) != 1 or entries[0].get("mediaType") not in \
            INDEX_MEDIA_TYPES:
        return None
    entry = entries[0]
    data = _read_blob(store, entry, "image index")
    document = _loads(path, "the image index", data)
    children = document.get("manifests") if isinstance(document, dict) else None
    if not isinstance(children, list) or not all(isinstance(c, dict) for c in children):
        raise _corrupt(path, f"the image index {entry['digest']} lists no manifests")
    if len(children) > MAX_INDEX_ENTRIES:
        raise _corrupt(path, f"its indexes list more than {MAX_INDEX_ENTRIES} entries")
    if len(children) < 2:
        return None  # one manifest: pushed as that image, as before
    unsupported = {str(c.get("mediaType")) for c in children} - set(MANIFEST_MEDIA_TYPES)
    if unsupported:
        log.warning("%s: the image index %s lists entries of type %s, which jr-push does not push as "
                    "part of an index; reading one image of it instead", path, entry["digest"][:19],
                    ", ".join(sorted(unsupported)))
        return None
    if kind == "archive" and store.exists("manifest.json"):
        missing = _missing_blobs(store, children)
        if missing:
            log.info("%s: the image index lacks %d blobs (the engine saved only some platforms); "
                     "pushing the image manifest.json names", path, len(missing))
            return None
    names = list(dict.fromkeys(n for e in entries for n in _names(e)))
    ref_tag = next((t for e in entries if (t := _ref_tag(e)) is not None), None)
    media_type = document.get("mediaType") or entry["mediaType"]
    return IndexSource(
        path=path, kind=kind, index=data, media_type=str(media_type), digest=str(entry["digest"]),
        children=tuple(_read_child(store, kind, child, names, ref_tag) for child in children),
        repo_tags=tuple(names), ref_tag=ref_tag,
    )


def _missing_blobs(store: _Store, children: Sequence[Mapping[str, Any]]) -> list[str]:
    """The blobs of *children* the store lacks (manifests, configs, layers)."""
    missing = []
    for child in children:
        digest = child.get("digest")
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            continue  # reading the entry says what is wrong with it
        if not store.exists(_blob_name(digest)):
            missing.append(digest)
            continue
        document = _loads(store.path, "a manifest", _read_blob(store, child, "manifest"))
        if not isinstance(document, dict):
            continue
        layers = document.get("layers")
        for blob in [document.get("config"), *(layers if isinstance(layers, list) else [])]:
            digest = blob.get("digest") if isinstance(blob, dict) else None
            if isinstance(digest, str) and _DIGEST_RE.match(digest) and \
                    not store.exists(_blob_name(digest)):
                missing.append(digest)
    return missing


def _read_child(store: _Store, kind: SourceKind, descriptor: Mapping[str, Any], names: Sequence[str],
                ref_tag: str | None) -> IndexChild:
    manifest = _read_blob(store, descriptor, "manifest")
    document = _loads(store.path, "a manifest of the image index", manifest)
    if not isinstance(document, dict):
        raise _corrupt(store.path, f"the manifest {descriptor['digest']} is not a JSON object")
    digest = str(descriptor["digest"])
    image: ImageSource | None = None
    blobs: tuple[CarriedBlob, ...] = ()
    if _is_platform_image(descriptor, document):
        image = _image_from_manifest(store, kind, descriptor, names, manifest, document, ref_tag)
    else:
        blobs = _carried_blobs(store, document, digest)
    return IndexChild(descriptor=descriptor, manifest=manifest, digest=digest,
                      media_type=str(document.get("mediaType") or descriptor["mediaType"]),
                      platform=platform_of(descriptor), image=image, blobs=blobs)


def _is_platform_image(descriptor: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    annotations = descriptor.get("annotations")
    if isinstance(annotations, dict) and REFERENCE_TYPE in annotations:
        return False
    platform = descriptor.get("platform")
    if isinstance(platform, dict) and "unknown" in (platform.get("os"), platform.get("architecture")):
        return False
    config = document.get("config")
    return isinstance(config, dict) and config.get("mediaType") in (MEDIA_OCI_CONFIG, MEDIA_DOCKER_CONFIG)


def _carried_blobs(store: _Store, document: Mapping[str, Any], manifest: str) -> tuple[CarriedBlob, ...]:
    """The config and layers of a manifest pushed as it is: each present, of its declared size and
    digest (hashed here, as no DiffID checks them on the way)."""
    path = store.path
    config, layers = document.get("config"), document.get("layers", [])
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise _corrupt(path, f"the manifest {manifest} has no config or layers")
    blobs = []
    for descriptor in [config, *layers]:
        if not isinstance(descriptor, dict):
            raise _corrupt(path, f"the manifest {manifest} lists a blob that is not a descriptor")
        _refuse_foreign(path, descriptor)
        digest, declared = descriptor.get("digest"), descriptor.get("size")
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise _corrupt(path, f"the manifest {manifest} lists a blob without a sha256 digest")
        name = _blob_name(digest)
        file, offset, size = store.locate(name)
        if declared != size:
            raise _corrupt(path, f"{name} has {size} bytes, the manifest {manifest} says {declared}")
        if _hash_slice(file, offset, size) != digest:
            raise _corrupt(path, f"{name} does not match its digest")
        blobs.append(CarriedBlob(digest=digest, size=size, location=name, file=file, offset=offset))
    return tuple(blobs)


def _hash_slice(file: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    with SliceReader(file, offset, size) as reader:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
