"""image_archive: docker save (classic and OCI variants), OCI layouts, and refusing broken input.

The helpers at the top write archives in the exact layouts the engines write (registry-notes.md
§3.3); one test reads a real `docker save` from the real dockerd. test_daemonless_push reuses them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.errors import InputFileError, UsageError
from jenkins_registry.image_archive import (
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    ImageSource,
    IndexSource,
    open_docker_archive,
    open_image_source,
    open_oci_layout,
    open_push_source,
)
from tests.support import services

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_config(layers: Sequence[bytes]) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
    }).encode()


def sample_layers() -> list[bytes]:
    return [layer_tar({"a.txt": b"alpha\n" * 1000}), layer_tar({"b.bin": os.urandom(50_000)}),
            layer_tar({"c/d.txt": b"delta\n" * 3000})]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str, symbolic: bool = True) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE if symbolic else tarfile.LNKTYPE
    info.linkname = target
    tar.addfile(info)


def write_classic(path: Path, layers: Sequence[bytes], repo_tags: Sequence[str] | None = ("team/app:v1",),
                  *, config: bytes | None = None, extra_images: int = 0) -> bytes:
    """A `docker save` archive as engines before v25 write it; returns the config."""
    config = config if config is not None else image_config(layers)
    entries = []
    with tarfile.open(path, "w") as tar:
        names = []
        for index, layer in enumerate(layers):
            directory = hashlib.sha256(f"v1-{index}".encode()).hexdigest()
            _add(tar, f"{directory}/VERSION", b"1.0")
            _add(tar, f"{directory}/layer.tar", layer)
            names.append(f"{directory}/layer.tar")
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        _add(tar, config_name, config)
        entries.append({"Config": config_name, "RepoTags": list(repo_tags) if repo_tags else None,
                        "Layers": names})
        for extra in range(extra_images):
            # another image sharing the first layer: the engine writes a symlink to it
            other_layer = layer_tar({f"extra{extra}": b"e" * 100})
            other_config = image_config([layers[0], other_layer])
            directory = hashlib.sha256(f"extra-{extra}".encode()).hexdigest()
            _add_link(tar, f"{directory}/layer.tar", f"../{names[0]}")
            own = hashlib.sha256(f"extra-own-{extra}".encode()).hexdigest()
            _add(tar, f"{own}/layer.tar", other_layer)
            name = hashlib.sha256(other_config).hexdigest() + ".json"
            _add(tar, name, other_config)
            entries.append({"Config": name, "RepoTags": [f"team/other{extra}:latest"],
                            "Layers": [f"{directory}/layer.tar", f"{own}/layer.tar"]})
        _add(tar, "manifest.json", json.dumps(entries).encode())
    return config


def _oci_blobs(layers: Sequence[bytes], config: bytes, compress: bool) -> tuple[dict[str, bytes], bytes]:
    blobs: dict[str, bytes] = {}
    descriptors = []
    for layer in layers:
        stored = gzip.compress(layer, mtime=0) if compress else layer
        blobs[sha(stored)] = stored
        descriptors.append({"mediaType": OCI_LAYER + ("+gzip" if compress else ""),
                            "digest": sha(stored), "size": len(stored)})
    blobs[sha(config)] = config
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                   "size": len(config)},
        "layers": descriptors,
    }).encode()
    blobs[sha(manifest)] = manifest
    return blobs, manifest


def _index(manifest: bytes, annotations: Mapping[str, str] | None) -> bytes:
    descriptor: dict[str, Any] = {"mediaType": MEDIA_OCI_MANIFEST, "digest": sha(manifest),
                                  "size": len(manifest)}
    if annotations:
        descriptor["annotations"] = dict(annotations)
    return json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": [descriptor]}).encode()


def write_v25(path: Path, layers: Sequence[bytes], repo_tag: str = "team/app:v1") -> bytes:
    """A `docker save` archive as engines v25+ write it: OCI layout plus manifest.json."""
    config = image_config(layers)
    blobs, manifest = _oci_blobs(layers, config, compress=False)
    with tarfile.open(path, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        for digest, data in blobs.items():
            _add(tar, f"blobs/sha256/{digest[7:]}", data)
        _add(tar, "index.json", _index(manifest, {"io.containerd.image.name": f"docker.io/{repo_tag}",
                                                  "org.opencontainers.image.ref.name": "v1"}))
        _add(tar, "manifest.json", json.dumps([{
            "Config": f"blobs/sha256/{sha(config)[7:]}", "RepoTags": [repo_tag],
            "Layers": [f"blobs/sha256/{sha(layer)[7:]}" for layer in layers]}]).encode())
    return config


def write_oci_dir(directory: Path, layers: Sequence[bytes], *, compress: bool = True,
                  annotations: Mapping[str, str] | None = None) -> bytes:
    """An OCI image layout directory; returns the manifest bytes."""
    config = image_config(layers)
    blobs, manifest = _oci_blobs(layers, config, compress)
    (directory / "blobs" / "sha256").mkdir(parents=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for digest, data in blobs.items():
        (directory / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    (directory / "index.json").write_bytes(_index(manifest, annotations))
    return manifest


def convert_classic(classic: Path, out: Path, kind: str) -> None:
    """Turn a real classic `docker save` into the v25 archive layout or an OCI directory (gzip)."""
    with tarfile.open(classic) as tar:
        entry = json.loads(tar.extractfile("manifest.json").read())[0]  # type: ignore[union-attr]
        config = tar.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        layers = [tar.extractfile(name).read() for name in entry["Layers"]]  # type: ignore[union-attr]
    assert image_config(layers) != config  # the real config carries more than diff_ids
    if kind == "v25":
        blobs, manifest = _oci_blobs(layers, config, compress=False)
        with tarfile.open(out, "w") as tar:
            _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            for digest, data in blobs.items():
                _add(tar, f"blobs/sha256/{digest[7:]}", data)
            _add(tar, "index.json", _index(manifest, None))
            _add(tar, "manifest.json", json.dumps([{
                "Config": f"blobs/sha256/{sha(config)[7:]}", "RepoTags": entry["RepoTags"],
                "Layers": [f"blobs/sha256/{sha(layer)[7:]}" for layer in layers]}]).encode())
    else:
        blobs, manifest = _oci_blobs(layers, config, compress=True)
        (out / "blobs" / "sha256").mkdir(parents=True)
        (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        for digest, data in blobs.items():
            (out / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        (out / "index.json").write_bytes(_index(manifest, {"org.opencontainers.image.ref.name": "oci1"}))


def read_layer(source: Any, index: int) -> bytes:
    with source.layers[index].open() as reader:
        return bytes(reader.read(source.layers[index].size))


# -- docker save, classic -------------------------------------------------------------------------


def test_classic_archive(tmp_path: Path) -> None:
    layers = sample_layers()
    config = write_classic(tmp_path / "img.tar", layers, ["127.0.0.1:5000/team/app:v2"])
    source = open_docker_archive(tmp_path / "img.tar")
    assert source.kind == "archive" and source.config == config
    assert source.config_digest == sha(config)
    assert source.diff_ids == tuple(sha(layer) for layer in layers)
    assert [layer.encoding for layer in source.layers] == ["none"] * 3
    assert [read_layer(source, i) for i in range(3)] == layers
    assert source.layers[0].short_id == sha(layers[0])[7:19]
    assert source.default_name() == ("team/app", "v2")
    assert source.size == sum(len(layer) for layer in layers)
    assert source.manifest is None


def test_real_docker_save(tmp_path: Path, docker_client: Any) -> None:
    image_id = services.build_image(docker_client, "jr-archive/real:v3",
                                    {"one.txt": b"one\n" * 100, "two.bin": os.urandom(20_000)})
    archive = tmp_path / "real.tar"
    with open(archive, "wb") as out:
        for chunk in docker_client.images.get("jr-archive/real:v3").save(named=True):
            out.write(chunk)
    source = open_docker_archive(archive)
    image = docker_client.images.get("jr-archive/real:v3")
    assert source.config_digest == image_id == image.id
    assert list(source.diff_ids) == image.attrs["RootFS"]["Layers"]
    assert source.default_name() == ("jr-archive/real", "v3")
    for index, layer in enumerate(source.layers):
        assert sha(read_layer(source, index)) == layer.diff_id


def test_shared_layers_as_symlinks_and_selection(tmp_path: Path) -> None:
    layers = sample_layers()
    write_classic(tmp_path / "two.tar", layers, ["team/app:v1"], extra_images=1)
    with pytest.raises(UsageError, match="several images") as info:
        open_docker_archive(tmp_path / "two.tar")
    assert "team/app:v1" in info.value.message and "--image" in info.value.hint
    other = open_docker_archive(tmp_path / "two.tar", "team/other0:latest")
    assert read_layer(other, 0) == layers[0]  # read through the symlink
    assert other.default_name() == ("team/other0", "latest")
    assert open_docker_archive(tmp_path / "two.tar", "team/app:v1").diff_ids[0] == sha(layers[0])
    with pytest.raises(UsageError, match="no image named"):
        open_docker_archive(tmp_path / "two.tar", "nope:1")


def test_untagged_archive_has_no_default_name(tmp_path: Path) -> None:
    write_classic(tmp_path / "img.tar", sample_layers(), None)
    assert open_docker_archive(tmp_path / "img.tar").default_name() == (None, None)


def test_docker_hub_names_lose_library(tmp_path: Path) -> None:
    write_classic(tmp_path / "img.tar", sample_layers(), ["busybox:1.36"])
    assert open_docker_archive(tmp_path / "img.tar").default_name() == ("busybox", "1.36")


# -- docker save, v25+ (OCI layout inside) ---------------------------------------------------------


def test_v25_archive_uses_manifest_json(tmp_path: Path) -> None:
    layers = sample_layers()
    config = write_v25(tmp_path / "v25.tar", layers)
    source = open_docker_archive(tmp_path / "v25.tar")
    assert source.config_digest == sha(config)
    assert [layer.digest for layer in source.layers] == [sha(layer) for layer in layers]
    assert [read_layer(source, i) for i in range(3)] == layers
    assert source.default_name() == ("team/app", "v1")


def test_oci_layout_tar_without_manifest_json(tmp_path: Path) -> None:
    layers = sample_layers()
    config = image_config(layers)
    blobs, manifest = _oci_blobs(layers, config, compress=True)
    with tarfile.open(tmp_path / "oci.tar", "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        for digest, data in blobs.items():
            _add(tar, f"blobs/sha256/{digest[7:]}", data)
        _add(tar, "index.json", _index(manifest, {"org.opencontainers.image.ref.name": "v7"}))
    source = open_image_source(tmp_path / "oci.tar", "archive")
    assert source.manifest == manifest
    assert [layer.encoding for layer in source.layers] == ["gzip"] * 3
    assert source.default_name() == (None, "v7")


# -- OCI layout directories ------------------------------------------------------------------------


def test_oci_directory_gzip(tmp_path: Path) -> None:
    layers = sample_layers()
    manifest = write_oci_dir(tmp_path, layers, annotations={
        "io.containerd.image.name": "registry.example:5000/team/app:2.0",
        "org.opencontainers.image.ref.name": "2.0"})
    source = open_oci_layout(tmp_path)
    assert source.kind == "oci" and source.manifest == manifest
    assert source.manifest_media_type == MEDIA_OCI_MANIFEST
    assert [layer.encoding for layer in source.layers] == ["gzip"] * 3
    assert gzip.decompress(read_layer(source, 2)) == layers[2]
    assert source.default_name() == ("team/app", "2.0")
    assert open_image_source(tmp_path, "oci").config_digest == source.config_digest


def test_oci_directory_uncompressed(tmp_path: Path) -> None:
    layers = sample_layers()
    write_oci_dir(tmp_path, layers, compress=False)
    source = open_oci_layout(tmp_path)
    assert [layer.encoding for layer in source.layers] == ["none"] * 3
    assert source.default_name() == (None, None)


def test_oci_index_with_platforms_needs_a_selector(tmp_path: Path) -> None:
    write_oci_dir(tmp_path, sample_layers())
    index = json.loads((tmp_path / "index.json").read_text())
    arm_layers = [layer_tar({"arm": b"arm"})]
    blobs, arm_manifest = _oci_blobs(arm_layers, image_config(arm_layers), compress=True)
    for digest, data in blobs.items():
        (tmp_path / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    index["manifests"][0]["platform"] = {"os": "linux", "architecture": "amd64"}
    index["manifests"].append({"mediaType": MEDIA_OCI_MANIFEST, "digest": sha(arm_manifest),
                               "size": len(arm_manifest),
                               "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}})
    nested = json.dumps(index).encode()
    (tmp_path / "blobs" / "sha256" / sha(nested)[7:]).write_bytes(nested)
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MEDIA_OCI_INDEX, "digest": sha(nested), "size": len(nested)}]}))
    with pytest.raises(UsageError, match="2 image manifests") as info:
        open_oci_layout(tmp_path)
    assert "linux/arm64/v8" in info.value.hint
    assert open_oci_layout(tmp_path, "linux/arm64/v8").manifest == arm_manifest
    assert open_oci_layout(tmp_path, sha(arm_manifest)).manifest == arm_manifest


# -- refusing broken input -------------------------------------------------------------------------


def _rewrite(path: Path, change: Any) -> None:
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                   for m in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            replaced = change(member.name, data)
            if replaced is None:
                continue
            if data is None:
                tar.addfile(member)
            else:
                _add(tar, member.name, replaced)


@pytest.mark.parametrize("damage,message", [
    ("truncate", "truncated"),
    ("truncate_end", "truncated"),
    ("manifest_json", "manifest.json is not valid JSON"),
    ("config_bytes", "does not match its name"),
    ("drop_layer", "missing from the archive"),
    ("diff_id_count", "3 layers but its config lists 2 diff_ids"),
    ("not_tar", "not a readable tar archive"),
    ("empty_manifest", "does not list any image"),
])
def test_broken_archives_are_refused(tmp_path: Path, damage: str, message: str) -> None:
    path = tmp_path / "img.tar"
    layers = sample_layers()
    config = write_classic(path, layers)
    if damage.startswith("truncate"):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:-12000])
    elif damage == "manifest_json":
        _rewrite(path, lambda name, data: b"[{not json" if name == "manifest.json" else data)
    elif damage == "config_bytes":
        _rewrite(path, lambda name, data: data.replace(b'"amd64"', b'"arm64"') if name.endswith(".json")
                 and name != "manifest.json" else data)
    elif damage == "drop_layer":
        _rewrite(path, lambda name, data: None if name.endswith("layer.tar") and data and
                 data == layers[1] else data)
    elif damage == "diff_id_count":
        write_classic(path, layers, config=image_config(layers[:2]))
    elif damage == "not_tar":
        path.write_bytes(b"this is not an archive" * 100)
    elif damage == "empty_manifest":
        _rewrite(path, lambda name, data: b"[]" if name == "manifest.json" else data)
    assert config
    with pytest.raises(InputFileError) as info:
        open_docker_archive(path)
    assert message in info.value.message
    assert str(path) in info.value.message


def test_compressed_archive_gets_a_clear_hint(tmp_path: Path) -> None:
    write_classic(tmp_path / "img.tar", sample_layers())
    (tmp_path / "img.tar.gz").write_bytes(gzip.compress((tmp_path / "img.tar").read_bytes()))
    with pytest.raises(InputFileError, match="gzip-compressed") as info:
        open_docker_archive(tmp_path / "img.tar.gz")
    assert "gunzip -k img.tar.gz" in info.value.hint


def test_missing_paths_and_wrong_kinds(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        open_image_source(tmp_path / "nope.tar", "archive")
    with pytest.raises(InputFileError, match="does not exist"):
        open_image_source(tmp_path / "nope", "oci")
    with pytest.raises(UsageError, match="is a directory"):
        open_image_source(tmp_path, "archive")
    with pytest.raises(InputFileError, match=r"no index\.json"):
        open_oci_layout(tmp_path)


@pytest.mark.parametrize("damage,message", [
    ("layer_size", "has 5 bytes, the manifest says"),
    ("layer_type", "declared application/vnd.oci.image.layer.v1.tar+gzip but its content is a plain tar"),
    ("manifest_digest", "does not match its content"),
    ("foreign", "foreign"),
    ("layout_version", "unsupported oci-layout version"),
])
def test_broken_oci_layouts_are_refused(tmp_path: Path, damage: str, message: str) -> None:
    layers = sample_layers()
    manifest = write_oci_dir(tmp_path, layers)
    document = json.loads(manifest)
    blob_dir = tmp_path / "blobs" / "sha256"
    first = document["layers"][0]
    if damage == "layer_size":
        (blob_dir / first["digest"][7:]).write_bytes(b"short")
    elif damage in ("layer_type", "foreign"):
        if damage == "layer_type":
            (blob_dir / first["digest"][7:]).write_bytes(layers[0])
            first["size"] = len(layers[0])
        else:
            first["urls"] = ["https://example.invalid/layer"]
        new = json.dumps(document).encode()
        (blob_dir / sha(new)[7:]).write_bytes(new)
        (tmp_path / "index.json").write_bytes(_index(new, None))
    elif damage == "manifest_digest":
        (blob_dir / sha(manifest)[7:]).write_bytes(manifest + b" ")
    elif damage == "layout_version":
        (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    error = UsageError if damage == "foreign" else InputFileError
    with pytest.raises(error) as info:
        open_oci_layout(tmp_path)
    assert message in info.value.message


# -- multi-platform image indexes (open_push_source) -------------------------------------------------

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
PLATFORMS = ("amd64", "arm64")


@dataclass(frozen=True)
class MultiArch:
    """An OCI layout holding one multi-platform image, as `docker buildx build --platform
    linux/amd64,linux/arm64 --output type=oci` writes it: index.json → an image index → one
    manifest per platform (a layer shared by both) and an attestation manifest."""

    layout: Path
    index: bytes  # the image index blob, byte for byte
    manifests: dict[str, bytes]  # "linux/amd64", "linux/arm64", "attestation" → manifest bytes
    configs: dict[str, bytes]  # platform → config
    tars: dict[str, list[bytes]]  # platform → its layers, uncompressed
    blobs: dict[str, bytes]  # every blob of the layout

    @property
    def digest(self) -> str:
        return sha(self.index)

    def manifest_digest(self, key: str) -> str:
        return sha(self.manifests[key])

    def layer_blob(self, platform: str, position: int) -> Path:
        layer = json.loads(self.manifests[platform])["layers"][position]
        return self.layout / "blobs" / "sha256" / layer["digest"][7:]


def platform_config(architecture: str, layers: Sequence[bytes]) -> bytes:
    return json.dumps({
        "architecture": architecture, "os": "linux", "config": {"Cmd": ["/app"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
    }).encode()


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data)}


def write_multiarch(directory: Path, *, compress: bool = True, docker: bool = False,
                    attestation: bool = True, ref_name: str | None = "v1",
                    image_name: str | None = None) -> MultiArch:
    """An OCI layout directory with an image index of linux/amd64 and linux/arm64 (and, unless
    *docker* (a Docker manifest list) or not *attestation*, a BuildKit-style attestation)."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> bytes:
        blobs[sha(data)] = data
        return data

    shared = layer_tar({"etc/shared.txt": b"shared by every platform\n" * 400})
    manifest_type = DOCKER_MANIFEST if docker else MEDIA_OCI_MANIFEST
    layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER + ("+gzip" if compress else "")
    manifests: dict[str, bytes] = {}
    configs: dict[str, bytes] = {}
    tars: dict[str, list[bytes]] = {}
    entries = []
    for arch in PLATFORMS:
        platform = f"linux/{arch}"
        tars[platform] = [shared, layer_tar({"app": f"the {arch} program\n".encode() * 500})]
        configs[platform] = blob(platform_config(arch, tars[platform]))
        stored = [blob(gzip.compress(t, mtime=0) if compress or docker else t) for t in tars[platform]]
        manifests[platform] = blob(json.dumps({
            "schemaVersion": 2, "mediaType": manifest_type,
            "config": _descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, configs[platform]),
            "layers": [_descriptor(layer_type, s) for s in stored]}, indent=2).encode())
        entries.append({**_descriptor(manifest_type, manifests[platform]),
                        "platform": {"architecture": arch, "os": "linux"}})
    if attestation and not docker:
        statement = blob(json.dumps({
            "_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": "pkg:docker/app", "digest": {"sha256": sha(manifests["linux/amd64"])[7:]}}],
            "predicate": {"builder": {"id": "test"}}}).encode())
        config = blob(json.dumps({"architecture": "unknown", "os": "unknown", "config": {},
                                  "rootfs": {"type": "layers", "diff_ids": [sha(statement)]}}).encode())
        manifests["attestation"] = blob(json.dumps({
            "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "config": _descriptor(OCI_CONFIG, config),
            "layers": [{**_descriptor(IN_TOTO, statement),
                        "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}],
        }).encode())
        entries.append({**_descriptor(MEDIA_OCI_MANIFEST, manifests["attestation"]),
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {"vnd.docker.reference.digest": sha(manifests["linux/amd64"]),
                                        "vnd.docker.reference.type": "attestation-manifest"}})
    index_type = DOCKER_LIST if docker else MEDIA_OCI_INDEX
    index = blob(json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": entries}).encode())
    (directory / "blobs" / "sha256").mkdir(parents=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for digest, data in blobs.items():
        (directory / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    annotations = {}
    if ref_name:
        annotations["org.opencontainers.image.ref.name"] = ref_name
    if image_name:
        annotations["io.containerd.image.name"] = image_name
    top: dict[str, Any] = _descriptor(index_type, index)
    if annotations:
        top["annotations"] = annotations
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return MultiArch(layout=directory, index=index, manifests=manifests, configs=configs, tars=tars,
                     blobs=blobs)


def pack(directory: Path, archive: Path, extra: Mapping[str, bytes] | None = None) -> Path:
    """*directory* (an OCI layout) as a tar, with *extra* members added."""
    with tarfile.open(archive, "w") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                _add(tar, path.relative_to(directory).as_posix(), path.read_bytes())
        for name, data in (extra or {}).items():
            _add(tar, name, data)
    return archive


def test_an_index_of_platforms_opens_whole(tmp_path: Path) -> None:
    built = write_multiarch(tmp_path, image_name="registry.example/team/multi:v1")
    source = open_push_source(tmp_path, "oci")
    assert isinstance(source, IndexSource)
    assert source.index == built.index and source.digest == built.digest
    assert source.media_type == MEDIA_OCI_INDEX
    assert [c.platform for c in source.children] == ["linux/amd64", "linux/arm64", "unknown/unknown"]
    amd64, arm64, attestation = source.children
    assert amd64.image is not None and arm64.image is not None and attestation.image is None
    assert amd64.manifest == built.manifests["linux/amd64"] and amd64.image.manifest == amd64.manifest
    assert amd64.image.config == built.configs["linux/amd64"]
    assert amd64.image.diff_ids == tuple(sha(t) for t in built.tars["linux/amd64"])
    assert amd64.image.layers[0].digest == arm64.image.layers[0].digest  # the shared layer
    assert attestation.manifest == built.manifests["attestation"]
    assert attestation.label.startswith("attestation-manifest sha256:")
    assert len(attestation.blobs) == 2 and all(b.digest in built.blobs for b in attestation.blobs)
    with attestation.blobs[1].open() as reader:
        assert sha(reader.read(attestation.blobs[1].size)) == attestation.blobs[1].digest
    assert source.default_name() == ("team/multi", "v1")
    shared, own = (len(gzip.compress(t, mtime=0)) for t in built.tars["linux/amd64"])
    assert source.size == shared + own + len(gzip.compress(built.tars["linux/arm64"][1], mtime=0))
    # a name, a tag or the digest of the index.json entry selects it whole too
    for selector in ("registry.example/team/multi:v1", "team/multi:v1", "v1", built.digest):
        assert isinstance(open_push_source(tmp_path, "oci", selector), IndexSource)
    # the same layout packed as a tar (what --from-archive gets)
    packed = open_push_source(pack(tmp_path, tmp_path.parent / "multi.tar"), "archive")
    assert isinstance(packed, IndexSource) and packed.index == built.index


def test_a_platform_or_a_manifest_digest_selects_one_image(tmp_path: Path) -> None:
    built = write_multiarch(tmp_path)
    arm64 = open_push_source(tmp_path, "oci", "linux/arm64")
    assert isinstance(arm64, ImageSource) and arm64.manifest == built.manifests["linux/arm64"]
    by_digest = open_push_source(tmp_path, "oci", built.manifest_digest("linux/amd64"))
    assert isinstance(by_digest, ImageSource) and by_digest.config == built.configs["linux/amd64"]
    assert open_image_source(tmp_path, "oci", "linux/arm64").manifest == built.manifests["linux/arm64"]
    with pytest.raises(UsageError, match="image manifests"):  # the single-image reader still asks
        open_image_source(tmp_path, "oci")


def test_a_docker_manifest_list_opens_whole(tmp_path: Path) -> None:
    built = write_multiarch(tmp_path, docker=True)
    source = open_push_source(tmp_path, "oci")
    assert isinstance(source, IndexSource) and source.media_type == DOCKER_LIST
    assert [c.media_type for c in source.children] == [DOCKER_MANIFEST] * 2
    assert all(c.image is not None for c in source.children) and source.digest == built.digest


def test_an_index_of_one_manifest_is_that_image(tmp_path: Path) -> None:
    manifest = write_oci_dir(tmp_path, sample_layers())
    nested = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": [{
        "mediaType": MEDIA_OCI_MANIFEST, "digest": sha(manifest), "size": len(manifest),
        "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    (tmp_path / "blobs" / "sha256" / sha(nested)[7:]).write_bytes(nested)
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MEDIA_OCI_INDEX, "digest": sha(nested), "size": len(nested)}]}))
    source = open_push_source(tmp_path, "oci")
    assert isinstance(source, ImageSource) and source.manifest == manifest


@pytest.mark.parametrize("damage,message", [
    ("missing_layer", "is missing"),
    ("attestation_bytes", "does not match its digest"),
    ("attestation_size", "the manifest sha256:"),
    ("index_bytes", "does not match its content"),
    ("config_diff_ids", "2 layers but its config lists 1 diff_ids"),
])
def test_a_broken_index_entry_is_refused(tmp_path: Path, damage: str, message: str) -> None:
    built = write_multiarch(tmp_path)
    blob_dir = tmp_path / "blobs" / "sha256"
    attestation = json.loads(built.manifests["attestation"])
    statement = blob_dir / attestation["layers"][0]["digest"][7:]
    if damage == "missing_layer":
        built.layer_blob("linux/arm64", 1).unlink()
    elif damage == "attestation_bytes":
        statement.write_bytes(statement.read_bytes().replace(b"test", b"TEST"))
    elif damage == "attestation_size":
        statement.write_bytes(statement.read_bytes() + b" ")
    elif damage == "index_bytes":
        (blob_dir / built.digest[7:]).write_bytes(built.index + b"\n")
    elif damage == "config_diff_ids":
        config = json.loads(built.configs["linux/arm64"])
        config["rootfs"]["diff_ids"] = config["rootfs"]["diff_ids"][:1]
        # a consistent layout (digests match) whose arm64 config is wrong
        new_config = json.dumps(config).encode()
        (blob_dir / sha(new_config)[7:]).write_bytes(new_config)
        manifest = json.loads(built.manifests["linux/arm64"])
        manifest["config"] = _descriptor(OCI_CONFIG, new_config)
        new_manifest = json.dumps(manifest).encode()
        (blob_dir / sha(new_manifest)[7:]).write_bytes(new_manifest)
        index = json.loads(built.index)
        index["manifests"][1].update(_descriptor(MEDIA_OCI_MANIFEST, new_manifest))
        new_index = json.dumps(index).encode()
        (blob_dir / sha(new_index)[7:]).write_bytes(new_index)
        (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
            _descriptor(MEDIA_OCI_INDEX, new_index)]}))
    with pytest.raises(InputFileError) as info:
        open_push_source(tmp_path, "oci")
    assert message in info.value.message and str(tmp_path) in info.value.message


def test_an_engine_save_lacking_other_platforms_uses_manifest_json(tmp_path: Path) -> None:
    """An engine with the containerd store saves the index of a pulled image but only the layers
    of its own platform: manifest.json names that image, which is pushed as before."""
    layout = tmp_path / "layout"
    layout.mkdir()
    built = write_multiarch(layout, attestation=False, image_name="docker.io/team/app:v1")
    built.layer_blob("linux/arm64", 1).unlink()
    amd64 = json.loads(built.manifests["linux/amd64"])
    archive = pack(layout, tmp_path / "saved.tar", {"manifest.json": json.dumps([{
        "Config": f"blobs/sha256/{amd64['config']['digest'][7:]}", "RepoTags": ["team/app:v1"],
        "Layers": [f"blobs/sha256/{layer['digest'][7:]}" for layer in amd64["layers"]]}]).encode()})
    source = open_push_source(archive, "archive")
    assert isinstance(source, ImageSource) and source.config == built.configs["linux/amd64"]
    assert source.default_name() == ("team/app", "v1")
    # complete, the same archive is pushed whole
    complete = pack(write_multiarch(tmp_path / "full", attestation=False).layout, tmp_path / "full.tar",
                    {"manifest.json": b"[]"})
    assert isinstance(open_push_source(complete, "archive"), IndexSource)


def test_an_index_listing_an_index_is_read_as_before(tmp_path: Path) -> None:
    built = write_multiarch(tmp_path, attestation=False)
    index = json.loads(built.index)
    index["manifests"].append(_descriptor(MEDIA_OCI_INDEX, built.index))
    outer = json.dumps(index).encode()
    (tmp_path / "blobs" / "sha256" / sha(outer)[7:]).write_bytes(outer)
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        _descriptor(MEDIA_OCI_INDEX, outer)]}))
    with pytest.raises(UsageError, match="4 image manifests"):  # amd64, arm64, and both again
        open_push_source(tmp_path, "oci")
