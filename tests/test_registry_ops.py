"""`jr registry tag|copy|prune` against the real registry (distribution 2.8, htpasswd, delete
enabled), with a counting proxy where no blob transfer is claimed, and hostile answers staged by
`hostile_server` in front of it.

The commands run through a parser built here from `cli/registry.py`'s `register()`, exactly as
`jr` runs them (`run_command`), so exit codes and messages are the real ones.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jenkins_registry.cli import registry as registry_cli
from jenkins_registry.cli.common import add_common_options, run_command
from jenkins_registry.errors import ExitCode, UnreachableError
from jenkins_registry.registry_client import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    BytesBody,
    RegistryClient,
    RetryPolicy,
)
from jenkins_registry.registry_copy import ImageCopier
from jenkins_registry.registry_prune import PrunePolicy, apply_prune, plan_prune
from jenkins_registry.secret_types import Secret, UsernamePassword
from tests.support import services
from tests.support.counting_proxy import counting_proxy
from tests.support.hostile_server import Reply, Request, hostile_server
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD
USER = services.REGISTRY_USER
ENV = {"DOCKER_LOGIN_USERNAME": USER, "DOCKER_LOGIN_PASSWORD": SECRET}
LAYER_MEDIA = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG_MEDIA = "application/vnd.docker.container.image.v1+json"


def jr(argv: list[str], env: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jr")
    add_common_options(parser)
    registry_cli.register(parser.add_subparsers())
    return run_command("jr", parser, argv, ENV if env is None else env)


def run(argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `jr registry …` with --debug logging captured; the known secret is nowhere."""
    caplog.set_level(logging.DEBUG)
    code = jr(["registry", *argv], env)
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err, caplog.text)
    assert "Traceback" not in err and "this is a bug" not in err, err
    return code, out, err


def creds() -> UsernamePassword:
    return UsernamePassword(username=USER, password=Secret(SECRET), source="test")


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def upload(client: RegistryClient, repository: str, data: bytes) -> dict[str, Any]:
    client.upload_blob(repository, lambda: BytesBody(data), digest=sha(data), size=len(data))
    return {"digest": sha(data), "size": len(data)}


def seed_image(client: RegistryClient, repository: str, reference: str | None, *,
               created: str | None, seed: bytes) -> tuple[str, bytes]:
    """An image of one small layer made here (the registry checks digests, not tar contents);
    put under *reference* (a tag), or by digest when None. Returns (digest, manifest bytes)."""
    layer = gzip.compress(seed * 64, mtime=0)
    config: dict[str, Any] = {"architecture": "amd64", "os": "linux",
                              "rootfs": {"type": "layers", "diff_ids": [sha(seed * 64)]}}
    if created is not None:
        config["created"] = created
    config_bytes = json.dumps(config).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": CONFIG_MEDIA, **upload(client, repository, config_bytes)},
        "layers": [{"mediaType": LAYER_MEDIA, **upload(client, repository, layer)}],
    }, indent=3).encode()  # unusual spacing: a client that re-serialised it would change the digest
    client.put_manifest(repository, reference or sha(manifest), manifest, DOCKER_MANIFEST)
    return sha(manifest), manifest


def seed_index(client: RegistryClient, repository: str, tag: str, *, seed: bytes,
               created: tuple[str, str] = ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")) -> str:
    """An index of two image manifests (amd64, arm64), the children put by digest first."""
    children = []
    for arch, when in zip(("amd64", "arm64"), created, strict=True):
        digest, body = seed_image(client, repository, None, created=when, seed=seed + arch.encode())
        children.append({"mediaType": DOCKER_MANIFEST, "digest": digest, "size": len(body),
                         "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST,
                        "manifests": children}).encode()
    return client.put_manifest(repository, tag, index, DOCKER_MANIFEST_LIST)


@pytest.fixture
def client(registry: services.Registry) -> Iterator[RegistryClient]:
    with RegistryClient(registry.host, credentials=creds()) as opened:
        yield opened


@contextlib.contextmanager
def second_registry() -> Iterator[services.Registry]:
    """An anonymous registry besides the session's htpasswd one (a cross-registry target)."""
    with services.registry(auth="none") as reg:
        yield reg


# -- tag -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["image", "index"])
def test_tag_keeps_the_digest_and_moves_no_blob(kind: str, registry: services.Registry,
                                                client: RegistryClient,
                                                capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    repository = f"ops/tag-{kind}"
    if kind == "image":
        digest, _ = seed_image(client, repository, "v1", created="2024-05-01T10:00:00Z", seed=b"t")
    else:
        digest = seed_index(client, repository, "v1", seed=b"ti")
    with counting_proxy(registry.host) as proxy:
        code, out, err = run(["tag", f"{proxy.host}/{repository}:v1", "stable", "release-1"],
                             capsys, caplog)
        assert code == 0, err
        assert out.splitlines() == [f"{proxy.host}/{repository}:stable@{digest}",
                                    f"{proxy.host}/{repository}:release-1@{digest}"]
        assert proxy.blob_transfers() == [] and proxy.blob_bytes() == 0, proxy.exchanges
        assert len(proxy.matching("PUT", r"/manifests/(stable|release-1)$")) == 2
    for tag in ("v1", "stable", "release-1"):
        assert registry.manifest_digest(repository, tag) == digest


def test_tag_by_digest_with_json(registry: services.Registry, client: RegistryClient,
                                 capsys: pytest.CaptureFixture[str],
                                 caplog: pytest.LogCaptureFixture) -> None:
    digest, _ = seed_image(client, "ops/tag-digest", None, created="2024-05-01T10:00:00Z", seed=b"d")
    code, out, err = run(["tag", "--json", f"{registry.host}/ops/tag-digest@{digest}", "first"],
                         capsys, caplog)
    assert code == 0, err
    assert json.loads(out) == [{"reference": f"{registry.host}/ops/tag-digest:first@{digest}",
                                "repository": "ops/tag-digest", "tag": "first", "digest": digest,
                                "mediaType": DOCKER_MANIFEST}]
    assert registry.tags("ops/tag-digest") == ["first"]


@pytest.mark.parametrize(("argv", "words", "status"), [
    (["tag", "ops/app:v1", "x"], "names no registry", ExitCode.USAGE),
    (["tag", "{host}/ops/app", "x"], "no tag or digest", ExitCode.USAGE),
    (["tag", "{host}/ops/app:v1", "bad tag"], "white space", ExitCode.USAGE),
    (["tag", "{host}/ops/app:v1", ".dot"], "not valid", ExitCode.USAGE),
    (["tag", "{host}/ops/absent:v1", "x"], "does not exist", ExitCode.NOT_FOUND),
    (["copy", "{host}/ops/app:v1", "{host}/ops/b@sha256:" + "0" * 64], "names a digest",
     ExitCode.USAGE),
    (["prune", "{host}/ops/app:v1", "--keep", "2"], "takes a repository", ExitCode.USAGE),
    (["prune", "{host}/ops/app", "--keep", "-1"], "negative", ExitCode.USAGE),
    (["prune", "{host}/ops/app", "--keep", "1", "--keep-tag", "(["], "not a regular expression",
     ExitCode.USAGE),
])
def test_bad_input_fails_clearly(argv: list[str], words: str, status: int,
                                 registry: services.Registry, capsys: pytest.CaptureFixture[str],
                                 caplog: pytest.LogCaptureFixture) -> None:
    code, _, err = run([part.replace("{host}", registry.host) for part in argv], capsys, caplog)
    assert code == status, err
    assert words in err and "what to do:" in err


def test_wrong_password_is_rejected_without_echoing_it(registry: services.Registry,
                                                       client: RegistryClient,
                                                       capsys: pytest.CaptureFixture[str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    seed_image(client, "ops/auth", "v1", created="2024-05-01T10:00:00Z", seed=b"a")
    env = {"DOCKER_LOGIN_USERNAME": USER, "DOCKER_LOGIN_PASSWORD": SECRET + "-wrong"}
    code, _, err = run(["tag", f"{registry.host}/ops/auth:v1", "x"], capsys, caplog, env)
    assert code == ExitCode.AUTH, err
    assert_absent(SECRET + "-wrong", err, caplog.text)
    code, _, err = run(["tag", f"{registry.host}/ops/auth:v1", "x"], capsys, caplog, {})
    assert code == ExitCode.CREDENTIALS, err


# -- copy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["image", "index"])
def test_same_registry_copy_mounts_every_blob(kind: str, registry: services.Registry,
                                              client: RegistryClient,
                                              capsys: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    source, target = f"ops/copy-src-{kind}", f"ops/copy-dst-{kind}"
    if kind == "image":
        digest, _ = seed_image(client, source, "v1", created="2024-05-01T10:00:00Z", seed=b"m")
        blobs = 2
    else:
        digest = seed_index(client, source, "v1", seed=b"mi")
        blobs = 4
    with counting_proxy(registry.host) as proxy:
        code, out, err = run(["copy", f"{proxy.host}/{source}:v1", f"{proxy.host}/{target}:prod"],
                             capsys, caplog)
        assert code == 0, err
        assert out.splitlines() == [f"{proxy.host}/{target}:prod@{digest}"]
        assert proxy.blob_transfers() == [] and proxy.blob_bytes() == 0, proxy.exchanges
        mounts = proxy.matching("POST", r"/blobs/uploads/\?mount=")
        assert len(mounts) == blobs and {m.status for m in mounts} == {201}
        assert f"{blobs} mounted, 0 streamed" in err
    assert registry.manifest_digest(target, "prod") == digest
    status, _, body = registry.get(f"/v2/{target}/manifests/{digest}",
                                   {"Accept": DOCKER_MANIFEST_LIST + ", " + DOCKER_MANIFEST})
    assert status == 200 and sha(body) == digest


def test_cross_registry_copy_pulls_back_with_the_same_image_id(
        registry: services.Registry, docker_client: Any, docker_env: str,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """An image built and pushed by the real engine, copied to a second (anonymous) registry,
    then pulled from there by the engine: the same image ID."""
    import docker.errors

    from jenkins_registry.cli.push import main as jr_push

    image_id = services.build_image(docker_client, "ops-copy/app:v1", {
        "a.bin": os.urandom(300_000), "b.txt": b"copied between registries\n" * 1000})
    assert jr_push(["--image", "ops-copy/app:v1", "--registry", registry.host, "--name",
                    "ops/cross", "--tag", "v1", "--via", "engine"],
                   {**ENV, "DOCKER_HOST": docker_env}) == 0
    capsys.readouterr()
    digest = registry.manifest_digest("ops/cross", "v1")
    with second_registry() as target:
        env = {"SRC_USER": USER, "SRC_PASS": SECRET}  # the destination is anonymous
        argv = ["copy", "--src-username-env", "SRC_USER", "--src-password-env", "SRC_PASS",
                f"{registry.host}/ops/cross:v1", f"{target.host}/mirror/app"]
        code, out, err = run(argv, capsys, caplog, env)
        assert code == 0, err
        assert out.splitlines() == [f"{target.host}/mirror/app:v1@{digest}"]
        first = re.search(r"blobs: 0 present, 0 mounted, (\d+) streamed", err)
        assert first is not None and int(first.group(1)) >= 2, err  # config and layers
        code, out, err = run(argv, capsys, caplog, env)  # again: every blob is there (HEAD)
        assert code == 0, err
        assert f"blobs: {first.group(1)} present, 0 mounted, 0 streamed (0 bytes)" in err
        docker_client.images.remove(image_id, force=True)
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(f"{registry.host}/ops/cross:v1", force=True)
        pulled = docker_client.images.pull(f"{target.host}/mirror/app", tag="v1")
        try:
            assert pulled.id == image_id
            assert target.manifest_digest("mirror/app", "v1") == digest
        finally:
            docker_client.images.remove(pulled.id, force=True)


def test_cross_registry_copy_of_an_index_streams_its_blobs_and_keeps_the_digest(
        registry: services.Registry, client: RegistryClient, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    digest = seed_index(client, "ops/cross-index", "multi", seed=b"xi")
    with second_registry() as target, counting_proxy(target.host) as proxy:
        code, out, err = run(["copy", "--json", f"{registry.host}/ops/cross-index:multi",
                              f"{proxy.host}/mirror/index"], capsys, caplog,
                             {**ENV, "SRC_U": USER, "SRC_P": SECRET} | {
                                 "DOCKER_LOGIN_USERNAME": "", "DOCKER_LOGIN_PASSWORD": ""})
        assert code == ExitCode.CREDENTIALS, err  # the source needs credentials: none given
        code, out, err = run(["copy", "--json", "--src-username-env", "SRC_U",
                              "--src-password-env", "SRC_P",
                              f"{registry.host}/ops/cross-index:multi", f"{proxy.host}/mirror/index"],
                             capsys, caplog, {"SRC_U": USER, "SRC_P": SECRET})
        assert code == 0, err
        [result] = json.loads(out)
        assert result["digest"] == digest and result["manifests"] == 3
        assert result["blobs"]["streamed"] == 4
        # Manifests last: every blob upload completed before the first manifest PUT.
        order = [(e.method, e.path) for e in proxy.exchanges if e.method == "PUT"]
        first_manifest = next(i for i, (_, path) in enumerate(order) if "/manifests/" in path)
        assert all("/blobs/uploads/" in path for _, path in order[:first_manifest])
        assert [path.rsplit("/", 1)[1] for _, path in order[first_manifest:]][-1] == "multi"
        assert target.manifest_digest("mirror/index", "multi") == digest


def test_same_registry_copy_streams_where_the_registry_does_not_mount(
        registry: services.Registry, client: RegistryClient, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """A registry may answer a mount with 202 and an upload session instead: that session is
    cancelled and the blob streamed, the source's GET feeding the destination's PUT through one
    client (each request on its own connection); the digest is kept."""
    digest, _ = seed_image(client, "ops/nomount-src", "v1", created="2024-05-01T10:00:00Z", seed=b"n")

    def no_mount(request: Request) -> Reply | None:
        if request.method == "POST" and "mount=" in request.path:
            repository = request.path.split("/v2/", 1)[1].split("/blobs/", 1)[0]
            return Reply(202, [("Location", f"/v2/{repository}/blobs/uploads/not-mounted"),
                               ("Docker-Upload-UUID", "not-mounted")], b"")
        return None

    with hostile_server(registry.host, hook=no_mount) as server:
        code, _, err = run(["copy", f"{server.host}/ops/nomount-src:v1",
                            f"{server.host}/ops/nomount-dst:v1"], capsys, caplog)
        assert code == 0, err
        assert "0 mounted, 2 streamed" in err and "retrying" not in err, err
        requests = server.record.requests
        assert sum(1 for r in requests if r.method == "POST" and "mount=" in r.path) == 2
        assert [r.path for r in requests if r.method == "DELETE"] == [
            "/v2/ops/nomount-dst/blobs/uploads/not-mounted"] * 2  # each offered session cancelled
    assert registry.manifest_digest("ops/nomount-dst", "v1") == digest


def test_copy_stops_before_any_manifest_when_a_source_blob_is_wrong(
        registry: services.Registry, client: RegistryClient, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    seed_image(client, "ops/corrupt", "v1", created="2024-05-01T10:00:00Z", seed=b"c")

    def corrupt(request: Request, reply: Reply) -> Reply:
        if request.method == "GET" and "/blobs/sha256:" in request.path and isinstance(reply.body, bytes):
            body = bytearray(reply.body)
            body[-1] ^= 0xFF  # same length, other bytes
            return Reply(reply.status, reply.headers, bytes(body))
        return reply

    with hostile_server(registry.host, rewrite=corrupt) as source, second_registry() as target:
        code, _, err = run(["copy", "--src-username-env", "U", "--src-password-env", "P",
                            f"{source.host}/ops/corrupt:v1", f"{target.host}/mirror/corrupt"],
                           capsys, caplog, {"U": USER, "P": SECRET})
        assert code == ExitCode.REGISTRY, err
        assert "other content" in err
        assert target.tags("mirror/corrupt") == []
        status, _, _ = target.get("/v2/mirror/corrupt/manifests/v1")
        assert status == 404


def cut_short(record: dict[str, int], times: int) -> Any:
    """A rewrite that sends the first *times* answers to a blob GET only half their body, with
    the whole body's Content-Length, and then hangs up (counted in *record*)."""

    def rewrite(request: Request, reply: Reply) -> Reply:
        if request.method != "GET" or "/blobs/sha256:" not in request.path \
                or not isinstance(reply.body, bytes) or len(reply.body) < 64:
            return reply
        record["gets"] = record.get("gets", 0) + 1
        if record["gets"] > times:
            return reply
        data = reply.body

        def half_then_hang_up(sock: Any) -> None:
            sock.sendall(data[: len(data) // 2])

        return Reply(reply.status, [*reply.headers, ("Content-Length", str(len(data)))],
                     half_then_hang_up)

    return rewrite


def test_copy_retries_a_source_blob_cut_short_with_a_fresh_get(
        registry: services.Registry, client: RegistryClient, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    digest, _ = seed_image(client, "ops/cut", "v1", created="2024-05-01T10:00:00Z", seed=b"k")
    record: dict[str, int] = {}
    with hostile_server(registry.host, rewrite=cut_short(record, times=1)) as source, \
            second_registry() as target:
        code, out, err = run(["copy", "--src-username-env", "U", "--src-password-env", "P",
                              f"{source.host}/ops/cut:v1", f"{target.host}/mirror/cut"],
                             capsys, caplog, {"U": USER, "P": SECRET})
        assert code == ExitCode.OK, err
        assert record["gets"] == 2  # the layer: cut once, then read again whole
        assert target.manifest_digest("mirror/cut", "v1") == digest
        assert digest in out


def test_copy_gives_up_on_a_source_that_always_cuts_blobs_short(
        registry: services.Registry, client: RegistryClient) -> None:
    seed_image(client, "ops/cut2", "v1", created="2024-05-01T10:00:00Z", seed=b"m")
    record: dict[str, int] = {}
    retry = RetryPolicy(attempts=3, initial_delay=0.05, max_delay=0.05)
    with hostile_server(registry.host, rewrite=cut_short(record, times=99)) as source, \
            second_registry() as target, \
            RegistryClient(source.host, credentials=creds()) as source_client, \
            RegistryClient(target.host, retry=retry) as target_client:
        copier = ImageCopier(source_client, "ops/cut2", target_client, "mirror/cut2",
                             same_registry=False)
        with pytest.raises(UnreachableError) as info:
            copier.copy("v1", ["v1"])
        assert record["gets"] == 3  # one GET per attempt of the upload
        assert source.host in info.value.message
        assert_absent(SECRET, info.value.message, str(info.value), repr(info.value))
        assert target.tags("mirror/cut2") == []


# -- prune ---------------------------------------------------------------------------------------


def seed_six(client: RegistryClient, repository: str, now: datetime) -> dict[str, str]:
    """v1…v6 created 6…1 days ago (v6 newest); `latest` on v6's digest and `candidate` on v5's.
    Returns tag → digest."""
    digests = {}
    for number in range(1, 7):
        when = (now - timedelta(days=7 - number)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
        digests[f"v{number}"], _ = seed_image(client, repository, f"v{number}", created=when,
                                              seed=f"{repository}{number}".encode())
    for alias, target in (("latest", "v6"), ("candidate", "v5")):
        status = client.put_manifest(repository, alias, client.get_manifest(
            repository, target, (DOCKER_MANIFEST,)).body, DOCKER_MANIFEST)  # type: ignore[union-attr]
        digests[alias] = status
    return digests


def test_prune_keeps_the_two_newest_and_their_other_tags(
        registry: services.Registry, client: RegistryClient, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    repository = "ops/prune-six"
    digests = seed_six(client, repository, datetime.now(UTC))
    before = registry.tags(repository)
    with counting_proxy(registry.host) as proxy:
        code, out, err = run(["prune", f"{proxy.host}/{repository}", "--keep", "2"], capsys, caplog)
        assert code == 0, err
        assert proxy.matching("DELETE", ".") == []  # the dry run deletes nothing
    assert registry.tags(repository) == before
    lines = out.splitlines()
    assert all(line.startswith("dry run: ") for line in lines)
    planned = {line.split()[3].rsplit(":", 1)[1]: line.split()[2] for line in lines[:-1]}
    assert planned == {"v6": "keep", "latest": "keep", "v5": "keep", "candidate": "keep",
                       "v4": "delete", "v3": "delete", "v2": "delete", "v1": "delete"}
    assert lines[-1] == "dry run: nothing deleted; --yes deletes 4 manifests"

    code, out, err = run(["prune", "--json", f"{registry.host}/{repository}", "--keep", "2", "--yes"],
                         capsys, caplog)
    assert code == 0, err
    assert registry.tags(repository) == ["candidate", "latest", "v5", "v6"]
    assert {e["tag"] for e in json.loads(out) if e["deleted"]} == {"v1", "v2", "v3", "v4"}
    for tag in ("v1", "v4"):
        status, _, _ = registry.get(f"/v2/{repository}/manifests/{digests[tag]}",
                                    {"Accept": DOCKER_MANIFEST})
        assert status == 404  # deleted by digest, not merely untagged


def test_prune_spares_a_digest_a_tag_moved_onto_after_the_plan(
        registry: services.Registry, client: RegistryClient) -> None:
    """Between the plan and the deletion someone tags an old image `hotfix`: deleting that
    digest would delete `hotfix` too, so it is kept, and the rest of the plan goes ahead."""
    repository = "ops/prune-race"
    digests = seed_six(client, repository, datetime.now(UTC))
    plan = plan_prune(client, repository, PrunePolicy(keep=2))
    assert set(plan.doomed()) == {digests[f"v{n}"] for n in range(1, 5)}
    old = client.get_manifest(repository, "v1", (DOCKER_MANIFEST,))
    assert old is not None
    client.put_manifest(repository, "hotfix", old.body, DOCKER_MANIFEST)

    deleted = apply_prune(client, plan)

    assert set(deleted) == {digests[f"v{n}"] for n in range(2, 5)}
    assert registry.tags(repository) == ["candidate", "hotfix", "latest", "v1", "v5", "v6"]


def test_prune_keep_tag_and_older_than(registry: services.Registry, client: RegistryClient,
                                       capsys: pytest.CaptureFixture[str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    repository = "ops/prune-rules"
    seed_six(client, repository, datetime.now(UTC))
    # v4 is 3 days old, v3 4 days: --older-than 3.5 keeps v4; --keep-tag v1 keeps v1 (whole tag).
    code, out, err = run(["prune", f"{registry.host}/{repository}", "--keep", "1", "--keep-tag", "v1",
                          "--keep-tag", "v", "--older-than", "3.5", "--yes"], capsys, caplog)
    assert code == 0, err
    assert "tag v1 matches --keep-tag" in out and "younger than 3.5 days" in out
    assert registry.tags(repository) == ["candidate", "latest", "v1", "v4", "v5", "v6"]


def test_prune_keeps_an_index_and_its_children_and_what_has_no_created_time(
        registry: services.Registry, client: RegistryClient, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    repository = "ops/prune-index"
    old = "2020-01-01T00:00:00Z"
    index = seed_index(client, repository, "multi", seed=b"pi",
                       created=("2030-01-01T00:00:00Z", "2029-01-01T00:00:00Z"))
    undated, _ = seed_image(client, repository, "undated", created=None, seed=b"pu")
    seed_image(client, repository, "old", created=old, seed=b"po")
    code, out, err = run(["prune", f"{registry.host}/{repository}", "--keep", "1", "--yes"],
                         capsys, caplog)
    assert code == 0, err
    assert registry.tags(repository) == ["multi", "undated"]
    assert "no created time" in out and "2030-01-01T00:00:00Z" in out
    assert registry.manifest_digest(repository, "multi") == index
    assert registry.manifest_digest(repository, "undated") == undated


# -- hostile answers -----------------------------------------------------------------------------


def paged_tags(tags: list[str], page: int, *, link: str | None = None) -> Any:
    """A hook serving tags/list in pages of *page* with `Link` (or the *link* given)."""

    def hook(request: Request) -> Reply | None:
        if "/tags/list" not in request.path:
            return None
        path, _, query = request.path.partition("?")
        start = int(query.split("last=")[1]) if "last=" in query else 0
        headers = [("Content-Type", "application/json")]
        if start + page < len(tags):
            headers.append(("Link", link or f'<{path}?n={page}&last={start + page}>; rel="next"'))
        body = json.dumps({"name": "x", "tags": tags[start:start + page]}).encode()
        return Reply(200, headers, body)

    return hook


def test_prune_follows_link_pagination(registry: services.Registry, client: RegistryClient,
                                       capsys: pytest.CaptureFixture[str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    repository = "ops/prune-pages"
    seed_six(client, repository, datetime.now(UTC))
    tags = registry.tags(repository)
    with hostile_server(registry.host, hook=paged_tags(tags, 3)) as server:
        code, out, err = run(["prune", f"{server.host}/{repository}", "--keep", "2"], capsys, caplog)
        assert code == 0, err
        assert server.record.count("GET", "/tags/list") == 3  # 8 tags, 3 a page
    assert sorted(line.split()[3].rsplit(":", 1)[1] for line in out.splitlines()[:-1]) == tags


@pytest.mark.parametrize(("link", "words"), [
    ('<http://registry.elsewhere.test/v2/ops/prune-link/tags/list?last=3>; rel="next"',
     "points away"),
    ('</v2/other/repo/tags/list?last=3>; rel="next"', "points away"),
    ('</v2/ops/prune-link/tags/list?n=3&last=0>; rel="next"', "loop"),
])
def test_a_link_elsewhere_or_in_a_loop_is_refused(link: str, words: str,
                                                  registry: services.Registry,
                                                  client: RegistryClient,
                                                  capsys: pytest.CaptureFixture[str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    repository = "ops/prune-link"
    seed_six(client, repository, datetime.now(UTC))
    with hostile_server(registry.host, hook=paged_tags(registry.tags(repository), 3,
                                                       link=link)) as server:
        code, _, err = run(["prune", f"{server.host}/{repository}", "--keep", "0", "--yes"],
                           capsys, caplog)
        assert code == ExitCode.REGISTRY, err
        assert words in err
        assert server.record.count("DELETE") == 0
        assert all("elsewhere" not in r.path for r in server.record.requests)
    assert len(registry.tags(repository)) == 8


@pytest.mark.parametrize(("answer", "words"), [
    (b'{"name":"x","tags":["' + b'a' * 64 + b'"' + b',"b"' * 1_200_000 + b"]}", "at most 4 MiB"),
    (b'{"name":"x","tags":["v1","../../evil"]}', "not a valid tag name"),
    (b'{"name":"x","tags":{"v1":1}}', "JSON list of tags"),
])
def test_hostile_tags_lists_are_refused(answer: bytes, words: str, registry: services.Registry,
                                        capsys: pytest.CaptureFixture[str],
                                        caplog: pytest.LogCaptureFixture) -> None:
    def hook(request: Request) -> Reply | None:
        if "/tags/list" in request.path:
            return Reply(200, [("Content-Type", "application/json")], answer)
        return None

    with hostile_server(registry.host, hook=hook) as server:
        code, _, err = run(["prune", f"{server.host}/ops/hostile", "--keep", "0", "--yes"],
                           capsys, caplog)
        assert code == ExitCode.REGISTRY, err
        assert words in err
        assert server.record.count("DELETE") == 0


def test_a_manifest_that_is_not_json_is_refused(registry: services.Registry,
                                                client: RegistryClient,
                                                capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    seed_image(client, "ops/not-json", "v1", created="2024-05-01T10:00:00Z", seed=b"n")

    def hook(request: Request) -> Reply | None:
        if "/manifests/" in request.path and request.method == "GET":
            return Reply(200, [("Content-Type", DOCKER_MANIFEST)], b"<html>not a manifest</html>")
        return None

    with hostile_server(registry.host, hook=hook) as server:
        for argv in (["tag", f"{server.host}/ops/not-json:v1", "v2"],
                     ["copy", f"{server.host}/ops/not-json:v1", f"{server.host}/ops/not-json2:v1"],
                     ["prune", f"{server.host}/ops/not-json", "--keep", "0", "--yes"]):
            code, _, err = run(argv, capsys, caplog)
            assert code == ExitCode.REGISTRY, err
            assert "it is not JSON" in err
        assert server.record.count("PUT") == 0 and server.record.count("DELETE") == 0


def test_a_registry_that_does_not_delete_says_how_to_enable_it(
        registry: services.Registry, client: RegistryClient, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    repository = "ops/prune-405"
    seed_six(client, repository, datetime.now(UTC))

    def hook(request: Request) -> Reply | None:
        if request.method == "DELETE":  # distribution's answer with delete disabled
            return Reply(405, [("Content-Type", "application/json")],
                         b'{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}')
        return None

    with hostile_server(registry.host, hook=hook) as server:
        code, _, err = run(["prune", f"{server.host}/{repository}", "--keep", "2", "--yes"],
                           capsys, caplog)
    assert code == ExitCode.REGISTRY, err
    assert "deletion is disabled" in err and "storage: delete: enabled: true" in err
    assert len(registry.tags(repository)) == 8


def test_list_tags_with_a_page_size_returns_every_tag_of_the_real_registry(
        registry: services.Registry, client: RegistryClient) -> None:
    """Asking for pages of 2 still lists all eight tags. Distribution 2.8 may answer `n` whole
    (no `Link`) or in pages; either is accepted here, which is why `Link` following itself is
    tested with a handmade server."""
    seed_six(client, "ops/n-check", datetime.now(UTC))
    status, headers, body = registry.get("/v2/ops/n-check/tags/list?n=2")
    assert status == 200
    tags = json.loads(body)["tags"]
    links = {k.lower(): v for k, v in headers.items()}.get("link")
    assert (len(tags) == 8 and links is None) or (len(tags) == 2 and links)
    assert sorted(client.list_tags("ops/n-check", page_size=2)) == sorted(registry.tags("ops/n-check"))
