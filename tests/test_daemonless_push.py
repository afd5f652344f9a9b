"""daemonless_push end to end: real dockerd makes the archives and pulls the result back, the real
docker-registry receives it (htpasswd and token auth), the fault proxy breaks the network."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry import registry_errors
from jenkins_registry.cli import push as push_cli
from jenkins_registry.daemonless_push import SourcePushOptions, push_source
from jenkins_registry.errors import (
    AuthenticationError,
    CredentialsError,
    ExitCode,
    InputFileError,
    InvalidReferenceError,
    PermissionDeniedError,
    RegistryError,
    UnreachableError,
)
from jenkins_registry.push_result import PushResult
from jenkins_registry.push_target import parse_request
from jenkins_registry.registry_client import RegistryClient, RetryPolicy
from jenkins_registry.secret_types import Secret, UsernamePassword
from tests.support import services
from tests.support.fault_proxy import FaultProxy, Rule, fault_proxy
from tests.support.token_server import READER_PASSWORD, READER_USER, TokenServer, token_registry
from tests.test_image_archive import convert_classic

SECRET = services.REGISTRY_PASSWORD
FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05, total_seconds=30)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Recorder:
    """A ProgressSink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.messages: list[str] = []

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        self.events.append((layer_id, status))

    def message(self, text: str) -> None:
        self.messages.append(text)

    def close(self) -> None:
        pass

    def statuses(self) -> set[str]:
        return {status for _, status in self.events}


@dataclass(frozen=True)
class SavedImage:
    archive: Path
    image_id: str
    diff_ids: list[str]
    tag: str


def creds(user: str = services.REGISTRY_USER, password: str = SECRET) -> UsernamePassword:
    return UsernamePassword(username=user, password=Secret(password), source="test")


def text(size: int, seed: int) -> bytes:
    words = [b"jenkins", b"registry", b"layer", b"digest", b"push", b"\n", b"nexus", b"harbor"]
    out = bytearray()
    state = seed
    while len(out) < size:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out += words[state % len(words)] + b" "
    return bytes(out[:size])


@pytest.fixture(scope="module")
def saved(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> SavedImage:
    """A 3-layer image built FROM scratch in the real dockerd, saved with `docker save`."""
    tag = "jr-dl/app:v1"
    image_id = services.build_image(docker_client, tag, {
        "notes.txt": text(600_000, 1), "random.bin": os.urandom(700_000), "more.txt": text(90_000, 2)})
    archive = tmp_path_factory.mktemp("saved") / "app.tar"
    with open(archive, "wb") as out:
        for chunk in docker_client.images.get(tag).save(named=True):
            out.write(chunk)
    diff_ids = docker_client.images.get(tag).attrs["RootFS"]["Layers"]
    return SavedImage(archive=archive, image_id=image_id, diff_ids=diff_ids, tag=tag)


@pytest.fixture(scope="module")
def token_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[services.Registry, TokenServer]]:
    with token_registry(tmp_path_factory.mktemp("tokens")) as pair:
        yield pair


def push(archive: Path, registry: str, repository: str | None, tags: list[str] | None = None,
         credentials: UsernamePassword | None = None, *, kind: str = "archive", compression: str = "gzip",
         progress: Recorder | None = None, **extra: Any) -> PushResult:
    client = extra.pop("client", None)
    options = SourcePushOptions(compression=compression, jobs=extra.pop("jobs", 2), **extra)  # type: ignore[arg-type]
    return push_source(archive, kind, parse_request(registry, repository, tags or []),  # type: ignore[arg-type]
                       credentials if credentials is not None else creds(), progress or Recorder(), options,
                       client=client)


def pull_back(docker_client: Any, registry: services.Registry, reference: str, saved: SavedImage) -> None:
    """Remove the local image, pull *reference* with the engine, and compare ID and diff_ids."""
    import docker.errors

    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(saved.image_id, force=True)
    pulled = docker_client.images.pull(reference, auth_config={"username": registry.username,
                                                               "password": registry.password})
    try:
        assert pulled.id == saved.image_id
        assert pulled.attrs["RootFS"]["Layers"] == saved.diff_ids
    finally:
        docker_client.images.remove(saved.image_id, force=True)


def tags_of(registry: services.Registry, repository: str) -> list[str]:
    with RegistryClient(registry.host, credentials=creds()) as client:
        return client.tags(repository)


def no_secret(*texts: str) -> None:
    for text_ in texts:
        assert SECRET not in text_
        assert READER_PASSWORD not in text_


# -- round trips -----------------------------------------------------------------------------------


def test_round_trip_gzip(saved: SavedImage, registry: services.Registry, docker_client: Any) -> None:
    progress = Recorder()
    result = push(saved.archive, registry.host, None, progress=progress)
    assert result.repository == "jr-dl/app" and result.tags == ("v1",)  # from RepoTags
    assert result.method == "daemonless" and result.image_id == saved.image_id
    assert result.digest == registry.manifest_digest("jr-dl/app", "v1")
    status, _, body = registry.get("/v2/jr-dl/app/manifests/v1", {"Accept": DOCKER_MANIFEST})
    manifest = json.loads(body)
    assert manifest["mediaType"] == DOCKER_MANIFEST and status == 200
    assert [layer["mediaType"] for layer in manifest["layers"]] == \
        ["application/vnd.docker.image.rootfs.diff.tar.gzip"] * 3
    assert {layer_id for layer_id, _ in progress.events} == {d[7:19] for d in saved.diff_ids}
    assert ("Pushed" in progress.statuses()) and progress.messages[0].startswith("The push refers")
    assert progress.messages[-1] == f"v1: digest: {result.digest} size: {result.manifest_size}"
    pull_back(docker_client, registry, f"{registry.host}/jr-dl/app:v1", saved)


def test_round_trip_uncompressed_is_oci_with_diff_ids(saved: SavedImage, registry: services.Registry,
                                                      docker_client: Any) -> None:
    result = push(saved.archive, registry.host, "jr-dl/plain", ["raw"], compression="none")
    _, _, body = registry.get("/v2/jr-dl/plain/manifests/raw", {"Accept": OCI_MANIFEST})
    manifest = json.loads(body)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert [layer["digest"] for layer in manifest["layers"]] == saved.diff_ids
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}
    assert result.digest == registry.manifest_digest("jr-dl/plain", "raw")
    pull_back(docker_client, registry, f"{registry.host}/jr-dl/plain:raw", saved)


def test_round_trip_token_auth(saved: SavedImage, token_auth: tuple[services.Registry, TokenServer],
                               docker_client: Any) -> None:
    registry, tokens = token_auth
    result = push(saved.archive, registry.host, "jr-dl/token", ["t1", "t2"])
    assert result.tags == ("t1", "t2")
    assert all(account == services.REGISTRY_USER for account, _, _ in tokens.log)
    with RegistryClient(registry.host, credentials=creds()) as client:
        assert client.tags("jr-dl/token") == ["t1", "t2"]
    pull_back(docker_client, registry, f"{registry.host}/jr-dl/token:t2", saved)


def test_round_trip_v25_archive_layout(saved: SavedImage, registry: services.Registry,
                                       docker_client: Any, tmp_path: Path) -> None:
    v25 = tmp_path / "v25.tar"
    convert_classic(saved.archive, v25, "v25")
    result = push(v25, registry.host, "jr-dl/v25", ["v25"], chunk_size=256 * 1024)  # chunked PATCHes
    assert result.image_id == saved.image_id
    pull_back(docker_client, registry, f"{registry.host}/jr-dl/v25:v25", saved)


def test_oci_layout_is_pushed_verbatim(saved: SavedImage, registry: services.Registry,
                                       docker_client: Any, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    layout.mkdir()
    convert_classic(saved.archive, layout, "oci")
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    progress = Recorder()
    result = push(layout, registry.host, "jr-dl/oci", kind="oci", progress=progress)
    assert result.tags == ("oci1",)  # the layout's ref.name
    assert result.digest == manifest_digest  # the layout's own manifest, byte for byte
    assert registry.manifest_digest("jr-dl/oci", "oci1") == manifest_digest
    pull_back(docker_client, registry, f"{registry.host}/jr-dl/oci:oci1", saved)


# -- re-push, extra tags, cache ----------------------------------------------------------------------


def test_repush_sends_nothing(saved: SavedImage, registry: services.Registry) -> None:
    with fault_proxy(registry.host) as proxy:
        first = push(saved.archive, proxy.host, "jr-dl/again", ["same"])
        proxy.clear()
        progress = Recorder()
        second = push(saved.archive, proxy.host, "jr-dl/again", ["same"], progress=progress)
        assert second.digest == first.digest
        assert progress.statuses() == {"Layer already exists"}
        assert [m for m, _, _ in proxy.log] == ["GET", "GET"]  # ping and the current manifest
        proxy.clear()
        third = push(saved.archive, proxy.host, "jr-dl/again", ["same", "extra"])
        assert third.digest == first.digest
        assert proxy.count("PUT", "/manifests/extra") == 1 and proxy.count("PUT", "/blobs/") == 0
    assert tags_of(registry, "jr-dl/again") == ["extra", "same"]


def test_blob_cache_mounts_across_repositories(saved: SavedImage, registry: services.Registry,
                                               tmp_path: Path, docker_client: Any) -> None:
    cache = tmp_path / "cache" / "blobs.json"
    push(saved.archive, registry.host, "jr-dl/cache-one", ["c"], blob_cache=cache)
    assert cache.is_file() and len(json.loads(cache.read_text())["layers"]) == 3
    progress = Recorder()
    result = push(saved.archive, registry.host, "jr-dl/cache-two", ["c"], blob_cache=cache,
                  progress=progress)
    assert [s for _, s in progress.events if s.startswith("Mounted")] == ["Mounted from jr-dl/cache-one"] * 3
    assert result.digest == registry.manifest_digest("jr-dl/cache-one", "c")
    cache.write_text("{ broken")  # a broken cache is ignored, never fatal
    push(saved.archive, registry.host, "jr-dl/cache-three", ["c"], blob_cache=cache)
    pull_back(docker_client, registry, f"{registry.host}/jr-dl/cache-two:c", saved)


def test_mount_with_token_auth_asks_for_the_source_scope(
        saved: SavedImage, token_auth: tuple[services.Registry, TokenServer], tmp_path: Path) -> None:
    registry, tokens = token_auth
    cache = tmp_path / "blobs.json"
    push(saved.archive, registry.host, "jr-dl/tm-one", ["m"], blob_cache=cache)
    progress = Recorder()
    push(saved.archive, registry.host, "jr-dl/tm-two", ["m"], blob_cache=cache, progress=progress)
    assert sum(1 for _, s in progress.events if s == "Mounted from jr-dl/tm-one") == 3
    assert any(scopes == ("repository:jr-dl/tm-two:pull,push", "repository:jr-dl/tm-one:pull")
               for _, scopes, _ in tokens.log)


# -- corrupt input ---------------------------------------------------------------------------------


def corrupt_copy(archive: Path, target: Path, layer: int) -> None:
    shutil.copyfile(archive, target)
    with tarfile.open(target) as tar:
        entry = json.loads(tar.extractfile("manifest.json").read())[0]  # type: ignore[union-attr]
        member = tar.getmember(entry["Layers"][layer])
    with open(target, "r+b") as handle:
        handle.seek(member.offset_data + member.size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_corrupted_layer_is_refused_and_nothing_is_tagged(saved: SavedImage, registry: services.Registry,
                                                          tmp_path: Path, compression: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    broken = tmp_path / "broken.tar"
    corrupt_copy(saved.archive, broken, 1)
    repository = f"jr-dl/corrupt-{compression}"
    with pytest.raises(InputFileError) as info:
        push(broken, registry.host, repository, ["bad"], compression=compression)
    assert "layer 2" in info.value.message and "is corrupt" in info.value.message
    assert saved.diff_ids[1] in info.value.message
    assert tags_of(registry, repository) == []
    no_secret(str(info.value), caplog.text)


# -- failures through the fault proxy ---------------------------------------------------------------


def test_transient_faults_are_retried(saved: SavedImage, registry: services.Registry) -> None:
    progress = Recorder()
    with fault_proxy(registry.host) as proxy:
        proxy.add(Rule("PATCH", "/blobs/uploads/", "drop", after_bytes=30_000))
        proxy.add(Rule("HEAD", "/blobs/", "status", status=503))
        proxy.add(Rule("POST", "/blobs/uploads/", "status", status=429, headers={"Retry-After": "1"}))
        proxy.add(Rule("PUT", "/manifests/", "status", status=502))
        result = push(saved.archive, proxy.host, "jr-dl/flaky", ["ok"], progress=progress, retry=FAST)
        assert proxy.count("PATCH", "/uploads/", "dropped") == 1
        assert proxy.count("PUT", "/manifests/ok", "201") == 1
        log_text = proxy.log_text()
    assert any(s.startswith("Retrying in") for s in progress.statuses())
    assert registry.manifest_digest("jr-dl/flaky", "ok") == result.digest
    no_secret(log_text)


@pytest.mark.parametrize("fault", ["manifest_never", "blobs_never", "second_tag"])
def test_failed_runs_leave_no_tag(saved: SavedImage, registry: services.Registry, fault: str,
                                  caplog: pytest.LogCaptureFixture,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    repository = f"jr-dl/fail-{fault.replace('_', '-')}"
    tags = ["first", "second"] if fault == "second_tag" else ["first"]
    proxy: FaultProxy
    with fault_proxy(registry.host) as proxy:
        if fault == "manifest_never":
            proxy.add(Rule("PUT", "/manifests/", "status", status=503, times=100))
        elif fault == "blobs_never":
            proxy.add(Rule("PATCH", "/blobs/uploads/", "drop", times=100, after_bytes=1000))
        else:
            proxy.add(Rule("PUT", "/manifests/second", "status", status=503, times=100))
        with pytest.raises((RegistryError, UnreachableError)) as info:
            push(saved.archive, proxy.host, repository, tags, retry=FAST)
        log_text = proxy.log_text()
        if fault == "second_tag":
            assert proxy.count("PUT", "/manifests/first", "201") == 1
            assert proxy.count("DELETE", "/manifests/sha256:") == 1  # the first tag taken back
        if fault == "manifest_never":
            assert proxy.count("PUT", "/manifests/", "503") == FAST.attempts
    assert tags_of(registry, repository) == []
    out, err = capsys.readouterr()
    no_secret(str(info.value), repr(info.value), caplog.text, log_text, out, err)


# -- the engine's messages -------------------------------------------------------------------------


def test_credential_failures_match_the_engine_path(saved: SavedImage, registry: services.Registry,
                                                   token_auth: tuple[services.Registry, TokenServer],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as wrong:
        push(saved.archive, registry.host, "jr-dl/auth", ["x"], creds(password="bad-" + SECRET))
    assert wrong.value.message == registry_errors.credentials_rejected(registry.host, "ci-bot").message
    with pytest.raises(CredentialsError) as anonymous:
        push_source(saved.archive, "archive", parse_request(registry.host, "jr-dl/auth", ["x"]), None,
                    Recorder(), SourcePushOptions(jobs=1))
    assert anonymous.value.message == registry_errors.no_credentials(registry.host).message
    token_host = token_auth[0].host
    with pytest.raises(PermissionDeniedError) as denied:
        push(saved.archive, token_host, "jr-dl/auth", ["x"], creds(READER_USER, READER_PASSWORD))
    assert denied.value.message == registry_errors.access_denied(token_host, "jr-dl/auth",
                                                                 READER_USER).message
    with pytest.raises(InvalidReferenceError):
        push(saved.archive, registry.host, "Bad_Name", ["x"])
    assert tags_of(registry, "jr-dl/auth") == []
    no_secret(str(wrong.value), str(anonymous.value), str(denied.value), caplog.text)


def test_unreachable_registry(saved: SavedImage) -> None:
    host = f"127.0.0.1:{services.free_port()}"
    with pytest.raises(UnreachableError) as info:
        push(saved.archive, host, "jr-dl/nowhere", ["x"], retry=FAST)
    assert info.value.message == registry_errors.unreachable(host, "connection refused").message


# -- through the lead's CLI ------------------------------------------------------------------------


def test_cli_from_archive(saved: SavedImage, registry: services.Registry, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DOCKER_LOGIN_USERNAME": services.REGISTRY_USER, "DOCKER_LOGIN_PASSWORD": SECRET}
    digest_file = tmp_path / "digest.txt"
    code = push_cli.main(["--from-archive", str(saved.archive), "--registry", registry.host, "--name",
                          "jr-dl/cli", "--tag", "c1", "--digest-file", str(digest_file), "--json"], env)
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    document = json.loads(out)
    assert document["method"] == "daemonless" and document["image_id"] == saved.image_id
    assert digest_file.read_text().strip() == document["digest"]
    bad = dict(env, DOCKER_LOGIN_PASSWORD="wrong-" + SECRET)
    code = push_cli.main(["--from-archive", str(saved.archive), "--registry", registry.host, "--name",
                          "jr-dl/cli", "--tag", "c2"], bad)
    out2, err2 = capsys.readouterr()
    assert code == ExitCode.AUTH
    assert registry_errors.credentials_rejected(registry.host, "ci-bot").message in err2
    broken = tmp_path / "broken.tar"
    corrupt_copy(saved.archive, broken, 0)
    code = push_cli.main(["--from-archive", str(broken), "--registry", registry.host, "--name",
                          "jr-dl/cli", "--tag", "c3"], env)
    out3, err3 = capsys.readouterr()
    assert code == ExitCode.INVALID_INPUT_FILE and "is corrupt" in err3
    assert tags_of(registry, "jr-dl/cli") == ["c1"]
    no_secret(out, err, out2, err2, out3, err3, digest_file.read_text())


def _reprs_reachable(roots: list[Any]) -> tuple[list[str], set[str]]:
    """The reprs of every package object (and container) reachable from *roots* through their
    attributes, and the value of every Secret met on the way. Third-party objects (sockets, locks)
    are not entered; a Secret is not entered either: its repr is what must hide its value."""
    reprs: list[str] = []
    secrets: set[str] = set()
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(root, 0) for root in roots]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > 10 or isinstance(obj, str | bytes | int | float | None):
            continue
        seen.add(id(obj))
        if isinstance(obj, Secret):
            secrets.add(obj.reveal())
            reprs.append(repr(obj))
            continue
        if isinstance(obj, dict):
            children = [*obj.keys(), *obj.values()]
        elif isinstance(obj, list | tuple | set | frozenset):
            children = list(obj)
        elif type(obj).__module__.startswith("jenkins_registry."):
            slots = [name for cls in type(obj).__mro__ for name in getattr(cls, "__slots__", ())]
            children = [*getattr(obj, "__dict__", {}).values(),
                        *(getattr(obj, name) for name in slots if hasattr(obj, name))]
        else:
            continue
        reprs.append(repr(obj))
        stack.extend((child, depth + 1) for child in children)
    return reprs, secrets


def test_result_repr_has_no_secret(saved: SavedImage,
                                   token_auth: tuple[services.Registry, TokenServer]) -> None:
    """What holds a secret during a push (the credentials, the client, its session, the token
    cache, the options, the request, the result) shows none in its repr, nor does anything it
    holds: log lines and --debug tracebacks print reprs."""
    registry, _ = token_auth
    credentials = creds()
    options = SourcePushOptions(jobs=2, retry=FAST)
    request = parse_request(registry.host, "jr-dl/repr", ["r"])
    with RegistryClient(registry.host, credentials=credentials, retry=FAST) as client:
        result = push_source(saved.archive, "archive", request, credentials, Recorder(), options,
                             client=client)
        reprs, secrets = _reprs_reachable([credentials, client, options, request, result])
    # The walk reached the token cache: the password and at least one bearer token were found.
    assert SECRET in secrets and len(secrets) >= 2, "the walk no longer reaches the token cache"
    basic = base64.b64encode(f"{services.REGISTRY_USER}:{SECRET}".encode()).decode()
    for text in [*reprs, json.dumps(result.to_json())]:
        for secret in [*secrets, basic]:
            assert secret not in text, f"a secret shows in {text[:200]}"


# -- content-aware compression on the wire ---------------------------------------------------------


def test_chunked_framing_sends_views_and_gathers_small_pieces() -> None:
    from jenkins_registry.registry_blobs import _chunked

    big = os.urandom(70_000)
    pieces: list[bytes | memoryview] = [b"\x00\xff\xff\x00\x00", memoryview(big)[:65535], b"",
                                        b"\x01" * 10, memoryview(big)[65535:], b"tail"]
    framed = list(_chunked(pieces))
    assert any(piece is not None and isinstance(piece, memoryview) for piece in framed)
    wire = b"".join(framed)
    # decode it as a server does
    decoded, rest, sizes = bytearray(), wire, []
    while True:
        line, rest = rest.split(b"\r\n", 1)
        size = int(line, 16)
        sizes.append(size)
        if size == 0:
            assert rest == b"\r\n"
            break
        decoded += rest[:size]
        assert rest[size:size + 2] == b"\r\n"
        rest = rest[size + 2:]
    assert bytes(decoded) == b"".join(pieces)
    assert sizes == [5 + 65535, 10 + len(big) - 65535, 4, 0]  # small pieces ride along
    assert b"".join(_chunked([])) == b"0\r\n\r\n"


def jar(size: int, seed: int) -> bytes:
    """A jar: a zip of deflated class-file-like entries, incompressible to gzip."""
    import random
    import zipfile

    rng = random.Random(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        index = 0
        while buffer.tell() < size:
            index += 1
            archive.writestr(f"com/example/K{index}.class",
                             text(rng.randint(3000, 20000), index) + rng.randbytes(3000))
    return buffer.getvalue()


def test_incompressible_layers_round_trip_through_the_registry(registry: services.Registry,
                                                                tmp_path: Path) -> None:
    """Random, jar-like and mixed layers pushed with gzip: each blob the registry stores is one
    gzip member whose content is the layer tar, and its DiffID is the config's."""
    from tests.test_image_archive import layer_tar, write_classic

    block = 1 << 20
    layers = [
        layer_tar({"data/random.bin": os.urandom(3 * block + 123)}),
        layer_tar({f"app/lib/dep{i}.jar": jar(block, i) for i in range(4)}),
        layer_tar({"data/mixed.bin": os.urandom(block) + text(2 * block, 7) + jar(block, 9)
                   + os.urandom(block // 3)}),
    ]
    archive = tmp_path / "app.tar"
    write_classic(archive, layers, ("team/stored:v1",))
    push(archive, registry.host, "team/stored", ["v1"], jobs=3)
    with RegistryClient(registry.host, credentials=creds()) as client:
        manifest = client.get_manifest("team/stored", "v1", [DOCKER_MANIFEST])
        assert manifest is not None
        document = json.loads(manifest.body)
        for layer, descriptor in zip(layers, document["layers"], strict=True):
            blob = client.get_blob("team/stored", descriptor["digest"], limit=64 << 20)
            inflater = zlib.decompressobj(31)
            assert inflater.decompress(blob) == layer
            assert inflater.eof and not inflater.unused_data
            assert descriptor["size"] == len(blob)
        stored_sizes = [d["size"] for d in document["layers"]]
    # stored, not deflated: about the size of the tar (its zero padding at the end deflates)
    assert stored_sizes[0] >= len(layers[0]) * 0.99 and stored_sizes[1] >= len(layers[1]) * 0.97
    assert stored_sizes[2] < len(layers[2]) * 0.9  # the text in the mixed layer was deflated
