"""Multi-platform pushes (index_push) end to end: an OCI layout holding an image index goes through
jr-push to the real registry, is read back by the real skopeo and pulled by the real dockerd; the
fault proxy counts what a push sends."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli import push as push_cli
from jenkins_registry.daemonless_push import SourcePushOptions, push_source
from jenkins_registry.errors import ExitCode
from jenkins_registry.push_result import PushResult
from jenkins_registry.push_target import parse_request
from jenkins_registry.secret_types import Secret, UsernamePassword
from tests.support import services
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.secret_checks import assert_absent
from tests.test_daemonless_push import Recorder
from tests.test_image_archive import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MultiArch,
    pack,
    sha,
    write_multiarch,
)

SECRET = services.REGISTRY_PASSWORD
ENV = {"DOCKER_LOGIN_USERNAME": services.REGISTRY_USER, "DOCKER_LOGIN_PASSWORD": SECRET}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT_ALL = {"Accept": ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])}
SKOPEO = "/usr/bin/skopeo"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def jr_push(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> Run:
    """jr-push through its main function, credentials in the environment; its log goes to stderr."""
    code = push_cli.main([str(a) for a in argv], ENV)
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err)
    assert "Traceback" not in err
    return Run(code, out, err)


@pytest.fixture
def built(tmp_path: Path) -> MultiArch:
    layout = tmp_path / "layout"
    layout.mkdir()
    return write_multiarch(layout)


def manifest(registry: services.Registry, repository: str, reference: str) -> bytes:
    status, _, body = registry.get(f"/v2/{repository}/manifests/{reference}", ACCEPT_ALL)
    assert status == 200, (status, body[:200])
    return body


# -- skopeo, with the credentials in an auth file (never on its command line) -------------------------


class Skopeo:
    def __init__(self, registry: services.Registry, directory: Path) -> None:
        directory.mkdir()
        token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        self.authfile = directory / "auth.json"
        self.authfile.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
        self.policy = directory / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(directory),
                    "TMPDIR": str(directory)}

    def run(self, *args: str) -> bytes:
        done = subprocess.run([SKOPEO, "--policy", str(self.policy), *args], capture_output=True,
                              env=self.env, timeout=300, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        return done.stdout

    def inspect_raw(self, reference: str) -> bytes:
        return self.run("inspect", "--raw", "--tls-verify=false", "--authfile", str(self.authfile),
                        f"docker://{reference}")

    def copy_all(self, reference: str, layout: Path) -> None:
        self.run("copy", "--all", "--src-tls-verify=false", "--src-authfile", str(self.authfile),
                 f"docker://{reference}", f"oci:{layout}:copied")


@pytest.fixture
def skopeo(registry: services.Registry, tmp_path: Path) -> Skopeo:
    return Skopeo(registry, tmp_path / "skopeo")


@contextlib.contextmanager
def pulled(docker_client: Any, registry: services.Registry, reference: str) -> Iterator[Any]:
    """*reference* pulled by the engine (its own platform), removed afterwards."""
    image = docker_client.images.pull(reference, auth_config={"username": registry.username,
                                                              "password": registry.password})
    try:
        yield image
    finally:
        docker_client.images.remove(image.id, force=True)


def uploads(proxy: FaultProxy) -> int:
    """Blob uploads started through *proxy* (one POST each)."""
    return proxy.count("POST", r"/blobs/uploads/$")


# -- byte for byte --------------------------------------------------------------------------------------


def test_the_index_is_pushed_byte_for_byte_under_every_tag(
        built: MultiArch, registry: services.Registry, skopeo: Skopeo, docker_client: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    repository = "jr-multi/app"
    digest_file = tmp_path / "digest.txt"
    run = jr_push(capsys, "--from-oci", built.layout, "--registry", registry.host, "--name",
                  repository, "--tag", "t1", "--tag", "t2", "--json", "--digest-file", digest_file, "--debug")
    assert run.code == ExitCode.OK, run.err
    result = run.json()
    assert result["digest"] == built.digest and result["image_id"] == built.digest
    assert result["method"] == "daemonless" and result["manifest_size"] == len(built.index)
    assert result["references"] == [f"{registry.host}/{repository}:{t}@{built.digest}" for t in ("t1", "t2")]
    assert digest_file.read_text().strip() == built.digest
    for tag in ("t1", "t2"):
        assert registry.manifest_digest(repository, tag) == built.digest
    assert manifest(registry, repository, "t1") == built.index
    for key, body in built.manifests.items():  # the platforms and the attestation, as stored
        assert manifest(registry, repository, sha(body)) == body, key
    assert registry.tags(repository) == ["t1", "t2"]

    assert skopeo.inspect_raw(f"{registry.host}/{repository}:t1") == built.index
    copy = tmp_path / "copy"
    skopeo.copy_all(f"{registry.host}/{repository}:t2", copy)
    top = json.loads((copy / "index.json").read_text())["manifests"]
    assert [entry["digest"] for entry in top] == [built.digest]
    for digest, data in built.blobs.items():  # every manifest, config and layer came back unchanged
        assert (copy / "blobs" / "sha256" / digest[7:]).read_bytes() == data

    with pulled(docker_client, registry, f"{registry.host}/{repository}:t1") as image:
        assert image.id == sha(built.configs["linux/amd64"])  # the engine's platform
        assert image.attrs["Architecture"] == "amd64"
        assert image.attrs["RootFS"]["Layers"] == [sha(t) for t in built.tars["linux/amd64"]]


def test_a_packed_layout_pushes_the_same_index(
        built: MultiArch, registry: services.Registry, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    archive = pack(built.layout, tmp_path / "app.tar")
    run = jr_push(capsys, "--from-archive", archive, "--registry", registry.host, "--name",
                  "jr-multi/packed", "--tag", "p1")
    assert run.code == ExitCode.OK, run.err
    assert run.out.splitlines() == [f"{registry.host}/jr-multi/packed:p1@{built.digest}"]
    assert manifest(registry, "jr-multi/packed", "p1") == built.index


def test_a_docker_manifest_list_is_pushed_byte_for_byte(
        tmp_path: Path, registry: services.Registry, docker_client: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    built = write_multiarch(tmp_path, docker=True, image_name="docker.io/jr-multi/list:l1")
    run = jr_push(capsys, "--from-oci", tmp_path, "--registry", registry.host, "--json")
    assert run.code == ExitCode.OK, run.err
    assert run.json()["references"] == [f"{registry.host}/jr-multi/list:l1@{built.digest}"]  # own name
    _, headers, body = registry.get("/v2/jr-multi/list/manifests/l1", ACCEPT_ALL)
    assert body == built.index and headers["Content-Type"] == DOCKER_LIST
    with pulled(docker_client, registry, f"{registry.host}/jr-multi/list:l1") as image:
        assert image.id == sha(built.configs["linux/amd64"])


def test_layers_two_platforms_share_are_sent_once(
        built: MultiArch, registry: services.Registry,
        capsys: pytest.CaptureFixture[str]) -> None:
    with fault_proxy(registry.host) as proxy:
        run = jr_push(capsys, "--from-oci", built.layout, "--registry", proxy.host, "--name",
                      "jr-multi/shared", "--tag", "s")
        assert run.code == ExitCode.OK, run.err
        # shared + 2 own layers, 2 configs, the attestation's config and statement
        assert uploads(proxy) == len(built.blobs) - len(built.manifests) - 1 == 7
        assert proxy.count("PUT", "/manifests/sha256:") == 3 and proxy.count("PUT", "/manifests/s$") == 1


# -- one platform ---------------------------------------------------------------------------------------


def test_image_selects_one_platform_and_the_index_replaces_it_later(
        built: MultiArch, registry: services.Registry,
        capsys: pytest.CaptureFixture[str]) -> None:
    repository = "jr-multi/one"
    arm64 = built.manifest_digest("linux/arm64")
    run = jr_push(capsys, "--from-oci", built.layout, "--image", "linux/arm64", "--registry",
                  registry.host, "--name", repository, "--tag", "x", "--json")
    assert run.code == ExitCode.OK, run.err
    assert run.json()["digest"] == arm64 and run.json()["image_id"] == sha(built.configs["linux/arm64"])
    assert registry.manifest_digest(repository, "x") == arm64
    assert manifest(registry, repository, "x") == built.manifests["linux/arm64"]
    # the whole index onto the tag that holds the single-platform image
    run = jr_push(capsys, "--from-oci", built.layout, "--registry", registry.host, "--name",
                  repository, "--tag", "x")
    assert run.code == ExitCode.OK, run.err
    assert registry.manifest_digest(repository, "x") == built.digest
    assert manifest(registry, repository, "x") == built.index


# -- broken input: nothing tagged -------------------------------------------------------------------------


def test_a_missing_blob_fails_before_any_request(
        built: MultiArch, registry: services.Registry,
        capsys: pytest.CaptureFixture[str]) -> None:
    built.layer_blob("linux/arm64", 1).unlink()
    with fault_proxy(registry.host) as proxy:
        run = jr_push(capsys, "--from-oci", built.layout, "--registry", proxy.host, "--name",
                      "jr-multi/missing", "--tag", "m")
        assert proxy.log == []
    assert run.code == ExitCode.INVALID_INPUT_FILE
    assert "is missing" in run.err and "nothing was pushed" in run.err
    assert registry.tags("jr-multi/missing") == []


def test_a_corrupt_layer_fails_and_no_tag_is_written(
        built: MultiArch, registry: services.Registry,
        capsys: pytest.CaptureFixture[str]) -> None:
    blob = built.layer_blob("linux/arm64", 1)  # checked while it streams: its size is right
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    run = jr_push(capsys, "--from-oci", built.layout, "--registry", registry.host, "--name",
                  "jr-multi/corrupt", "--tag", "c1", "--tag", "c2")
    assert run.code == ExitCode.INVALID_INPUT_FILE, run.err
    assert "layer 2" in run.err
    assert registry.tags("jr-multi/corrupt") == []


# -- re-encoded platforms: a new index ---------------------------------------------------------------------


def check_rewritten(registry: services.Registry, repository: str, tag: str, built: MultiArch,
                    layer_type: str) -> dict[str, Any]:
    """The index *tag* holds: every entry resolves, the platforms' layers are of *layer_type*
    (their DiffIDs unchanged), the attestation is the source's and names the new amd64 manifest."""
    index = json.loads(manifest(registry, repository, tag))
    assert index["mediaType"] == OCI_INDEX
    by_platform = {f"{e['platform']['os']}/{e['platform']['architecture']}": e for e in index["manifests"]}
    for platform in ("linux/amd64", "linux/arm64"):
        entry = by_platform[platform]
        body = manifest(registry, repository, entry["digest"])
        assert sha(body) == entry["digest"] and len(body) == entry["size"]
        child = json.loads(body)
        assert entry["mediaType"] == child["mediaType"]
        assert child["config"]["digest"] == sha(built.configs[platform])
        assert {layer["mediaType"] for layer in child["layers"]} == {layer_type}
        if layer_type.endswith(".tar"):
            assert [layer["digest"] for layer in child["layers"]] == [sha(t) for t in built.tars[platform]]
        for layer in child["layers"]:
            status, _, _ = registry.get(f"/v2/{repository}/blobs/{layer['digest']}")
            assert status == 200
    attestation = by_platform["unknown/unknown"]
    assert attestation["digest"] == built.manifest_digest("attestation")
    assert attestation["annotations"]["vnd.docker.reference.digest"] == by_platform["linux/amd64"]["digest"]
    return index


def test_compression_none_rewrites_the_platforms_and_the_index(
        built: MultiArch, registry: services.Registry, docker_client: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    repository = "jr-multi/raw"
    with fault_proxy(registry.host) as proxy:
        run = jr_push(capsys, "--from-oci", built.layout, "--registry", proxy.host, "--name",
                      repository, "--tag", "raw", "--compression", "none", "--json")
        assert run.code == ExitCode.OK, run.err
        assert uploads(proxy) == 7  # the shared layer once
    digest = run.json()["digest"]
    assert digest != built.digest and registry.manifest_digest(repository, "raw") == digest
    assert "the index was rewritten" in run.err
    check_rewritten(registry, repository, "raw", built, "application/vnd.oci.image.layer.v1.tar")
    with pulled(docker_client, registry, f"{registry.host}/{repository}:raw") as image:
        assert image.id == sha(built.configs["linux/amd64"])
    with fault_proxy(registry.host) as proxy:  # again: the same index, nothing written
        again = jr_push(capsys, "--from-oci", built.layout, "--registry", proxy.host, "--name",
                        repository, "--tag", "raw", "--compression", "none", "--json")
        assert again.code == ExitCode.OK and again.json()["digest"] == digest
        assert proxy.count("PUT", "/manifests/") == 0 and uploads(proxy) == 0


def test_uncompressed_platforms_are_gzipped_into_a_new_index(
        tmp_path: Path, registry: services.Registry,
        capsys: pytest.CaptureFixture[str]) -> None:
    built = write_multiarch(tmp_path, compress=False)
    with fault_proxy(registry.host) as proxy:
        run = jr_push(capsys, "--from-oci", tmp_path, "--registry", proxy.host, "--name",
                      "jr-multi/gz", "--tag", "gz")
        assert run.code == ExitCode.OK, run.err
        assert uploads(proxy) == 7  # the shared layer compressed and sent once
    index = check_rewritten(registry, "jr-multi/gz", "gz", built,
                            "application/vnd.docker.image.rootfs.diff.tar.gzip")
    assert sha(manifest(registry, "jr-multi/gz", "gz")) == run.out.strip().rsplit("@", 1)[1]
    assert {e["mediaType"] for e in index["manifests"]} == {DOCKER_MANIFEST, OCI_MANIFEST}


# -- re-push ----------------------------------------------------------------------------------------------


def test_an_unchanged_repush_writes_nothing(
        built: MultiArch, registry: services.Registry,
        capsys: pytest.CaptureFixture[str]) -> None:
    repository = "jr-multi/again"
    with fault_proxy(registry.host) as proxy:
        args = ["--from-oci", built.layout, "--registry", proxy.host, "--name", repository]
        assert jr_push(capsys, *args, "--tag", "a1", "--tag", "a2").code == ExitCode.OK
        proxy.clear()
        run = jr_push(capsys, *args, "--tag", "a1", "--tag", "a2")
        assert run.code == ExitCode.OK, run.err
        assert run.out.splitlines() == [f"{proxy.host}/{repository}:{t}@{built.digest}" for t in ("a1", "a2")]
        assert [method for method, _, _ in proxy.log if method not in ("GET", "HEAD")] == []
        proxy.clear()
        run = jr_push(capsys, *args, "--tag", "a1", "--tag", "a3")  # one new tag
        assert run.code == ExitCode.OK, run.err
        assert [(m, p) for m, p, _ in proxy.log if m not in ("GET", "HEAD")] == \
            [("PUT", f"/v2/{repository}/manifests/a3")]
    assert registry.tags(repository) == ["a1", "a2", "a3"]
    assert registry.manifest_digest(repository, "a3") == built.digest


def test_the_blob_cache_remembers_every_platform(built: MultiArch, registry: services.Registry,
                                                 tmp_path: Path) -> None:
    """With push_source's blob cache, a second repository mounts every platform's layers."""
    cache = tmp_path / "blobs.json"

    def push(repository: str, progress: Recorder) -> PushResult:
        credentials = UsernamePassword(username=services.REGISTRY_USER, password=Secret(SECRET),
                                       source="test")
        return push_source(built.layout, "oci", parse_request(registry.host, repository, ["c"]),
                           credentials, progress, SourcePushOptions(blob_cache=cache, jobs=2))

    first = push("jr-multi/cache-one", Recorder())
    layers = json.loads(cache.read_text())["layers"]
    assert set(layers) == {sha(t) for tars in built.tars.values() for t in tars}  # 3 DiffIDs
    progress = Recorder()
    second = push("jr-multi/cache-two", progress)
    assert second.digest == first.digest == built.digest
    mounted = [s for _, s in progress.events if s.startswith("Mounted")]
    assert mounted == ["Mounted from jr-multi/cache-one"] * 3
    assert_absent(SECRET, cache.read_text(), repr(second))
