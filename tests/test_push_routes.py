"""How `jr-push --image` reaches the registry: the engine's push, or export and upload (`--via`).

End to end against the real engine and a fresh registry per test (the route depends on what the
registry and the engine already hold); the pure decisions are also tested on their own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry import export_push, push_route
from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.docker_engine import DockerEngine, uses_containerd_store
from jenkins_registry.errors import ExitCode, InputFileError, JrError, UnreachableError, UsageError
from jenkins_registry.http_transport import HttpTransport
from jenkins_registry.push_target import PushTarget
from jenkins_registry.registry_client import Manifest, RegistryClient, SchemePolicy
from jenkins_registry.target_tags import TaggedImage
from tests.support import services
from tests.support.fault_proxy import fault_proxy
from tests.support.secret_checks import assert_absent, assert_absent_in_tree

SECRET = services.REGISTRY_PASSWORD
UPLOADS = r"/blobs/uploads/$"


@pytest.fixture(scope="module")
def route_image(docker_client: Any) -> str:
    return services.build_image(docker_client, "route-app:1", {"app.bin": os.urandom(300_000),
                                                                "conf.txt": b"route\n"})


@pytest.fixture
def fresh_registry() -> Iterator[services.Registry]:
    with services.registry() as reg:
        yield reg


def push(registry_host: str, docker_env: str, capsys: pytest.CaptureFixture[str], *args: str,
         **env: str) -> tuple[int, dict[str, Any], str]:
    environ = {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
               "DOCKER_LOGIN_PASSWORD": SECRET, **env}
    code = jr_push(["--registry", registry_host, "--json", *args], environ)
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err)
    assert "Traceback" not in err
    return code, (json.loads(out) if code == 0 else {}), err


def test_auto_exports_a_first_push_and_the_engine_pulls_the_same_image_back(
    docker_env: str, docker_client: Any, fresh_registry: services.Registry, route_image: str,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    export_dir = tmp_path / "tmp"
    export_dir.mkdir()
    code, result, err = push(fresh_registry.host, docker_env, capsys, "--image", "route-app:1",
                             "--name", "team/app", "--tag", "1", "--tag", "latest",
                             TMPDIR=str(export_dir))
    assert code == 0, err
    assert result["method"] == "export"
    assert result["image_id"] == route_image
    assert {fresh_registry.manifest_digest("team/app", t) for t in ("1", "latest")} == {result["digest"]}
    assert list(export_dir.iterdir()) == []  # the export was removed
    # What was uploaded is the engine's image: pulled back by digest, it has the same image ID.
    reference = f"{fresh_registry.host}/team/app@{result['digest']}"
    pulled = docker_client.images.pull(reference, auth_config={
        "username": services.REGISTRY_USER, "password": SECRET})
    assert pulled.id == route_image
    docker_client.images.remove(reference)


def test_a_repush_of_the_same_image_uploads_nothing_whoever_pushed_it(
    docker_env: str, fresh_registry: services.Registry, route_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fault_proxy(fresh_registry.host) as proxy:
        code, first, err = push(proxy.host, docker_env, capsys, "--image", "route-app:1",
                                "--name", "again", "--tag", "latest", "--via", "engine")
        assert code == 0 and first["method"] == "engine", err
        uploads = proxy.count("POST", UPLOADS)
        assert uploads > 0
        # a new build-number tag: found through `latest`, written without any upload
        code, second, err = push(proxy.host, docker_env, capsys, "--image", "route-app:1",
                                 "--name", "again", "--tag", "2", "--tag", "latest")
        assert code == 0, err
        assert second["method"] == "unchanged" and second["digest"] == first["digest"]
        assert proxy.count("POST", UPLOADS) == uploads
        assert proxy.count("GET", r"/images/|/blobs/sha256") == 0  # nothing downloaded either
    assert fresh_registry.tags("again") == ["2", "latest"]
    assert "Layer already exists" not in err  # --json: no progress lines


def test_auto_lets_the_engine_push_when_it_knows_the_layers(
    docker_env: str, docker_client: Any, fresh_registry: services.Registry, route_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The engine's digest reference at the registry (`docker images --digests`) goes with the
    # last local tag of that repository: --keep-tags keeps both (as would a pulled base image).
    code, _, err = push(fresh_registry.host, docker_env, capsys, "--image", "route-app:1",
                        "--name", "base", "--via", "engine", "--keep-tags")
    assert code == 0, err
    derived, _ = docker_client.images.build(fileobj=_derived_context(), custom_context=True,
                                            tag="route-derived:1", rm=True)
    code, result, err = push(fresh_registry.host, docker_env, capsys, "--image", "route-derived:1",
                             "--name", "derived")
    assert code == 0, err
    assert result["method"] == "engine"
    assert result["image_id"] == derived.id


def test_an_update_goes_through_the_engine_which_then_sends_only_new_layers(
    docker_env: str, docker_client: Any, fresh_registry: services.Registry, route_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Build 1 is exported; build 2 shares its layers (found through `latest`), so the engine
    pushes it, and build 3 costs the engine only its one new layer."""
    with fault_proxy(fresh_registry.host) as proxy:
        code, first, err = push(proxy.host, docker_env, capsys, "--image", "route-app:1",
                                "--name", "ci/app", "--tag", "1", "--tag", "latest")
        assert code == 0 and first["method"] == "export", err
        builds = [route_image]
        for number in (2, 3):
            image, _ = docker_client.images.build(
                fileobj=_derived_context(f"route-build:{number - 1}" if number > 2 else "route-app:1",
                                         f"build {number}\n".encode()),
                custom_context=True, tag=f"route-build:{number}", rm=True)
            builds.append(image.id)
            before = proxy.count("POST", UPLOADS)
            code, result, err = push(proxy.host, docker_env, capsys, "--image", f"route-build:{number}",
                                     "--name", "ci/app", "--tag", str(number), "--tag", "latest")
            assert code == 0, err
            assert result["method"] == "engine" and result["image_id"] == image.id
            if number == 3:  # the new layer and the config; the engine knew all the others
                assert proxy.count("POST", UPLOADS) - before <= 2
    assert fresh_registry.manifest_digest("ci/app", "latest") == result["digest"]


def test_an_update_on_a_fresh_engine_is_exported_without_the_layers_the_registry_has(
    docker_env: str, docker_client: Any, fresh_registry: services.Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An ephemeral agent: build 1 is no longer in this engine. Build 2 shares its first layer;
    the export skips it (found through `latest`) and uploads only the new layer and the config."""
    shared = {"shared.bin": os.urandom(200_000)}
    services.build_image(docker_client, "fresh-build:1", shared)
    with fault_proxy(fresh_registry.host) as proxy:
        code, first, err = push(proxy.host, docker_env, capsys, "--image", "fresh-build:1",
                                "--name", "eph/app", "--tag", "1", "--tag", "latest")
        assert code == 0 and first["method"] == "export", err
        docker_client.images.remove("fresh-build:1")  # its only name since jr-push untagged
        assert all(proxy.host not in tag for s in docker_client.api.images()
                   for tag in s.get("RepoTags") or ())
        second_id = services.build_image(docker_client, "fresh-build:2",
                                         {**shared, "new.bin": os.urandom(100_000)})
        before = proxy.count("POST", UPLOADS)
        code, second, err = push(proxy.host, docker_env, capsys, "--image", "fresh-build:2",
                                 "--name", "eph/app", "--tag", "2", "--tag", "latest")
        assert code == 0, err
        assert second["method"] == "export" and second["image_id"] == second_id
        assert proxy.count("POST", UPLOADS) - before == 2  # the new layer and the config
    assert fresh_registry.manifest_digest("eph/app", "latest") == second["digest"]


def _derived_context(base: str = "route-app:1", extra: bytes = b"derived\n") -> Any:
    """A build context for `FROM base` plus one more layer."""
    return services.image_context({"extra.txt": extra}, base=base)


def test_no_room_for_the_export(
    docker_env: str, fresh_registry: services.Registry, route_image: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(export_push, "ROOM_MARGIN_BYTES", 1 << 60)
    code, result, err = push(fresh_registry.host, docker_env, capsys, "--image", "route-app:1",
                             "--name", "full/auto")
    assert code == 0, err
    assert result["method"] == "engine"
    code, _, err = push(fresh_registry.host, docker_env, capsys, "--image", "route-app:1",
                        "--name", "full/forced", "--via", "export")
    assert code == ExitCode.INVALID_INPUT_FILE
    assert "Cannot export the image" in err and "TMPDIR" in err
    assert fresh_registry.tags("full/forced") == []


def test_sigterm_during_the_export_removes_it(
    docker_env: str, docker_client: Any, fresh_registry: services.Registry, tmp_path: Path,
) -> None:
    """Jenkins aborts a step with SIGTERM: the process unwinds, the export goes, no tag is made."""
    services.build_image(docker_client, "route-big:1", {"big.bin": os.urandom(96 << 20)})
    export_dir = tmp_path / "tmp"
    export_dir.mkdir()
    env = {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
           "DOCKER_LOGIN_PASSWORD": SECRET, "TMPDIR": str(export_dir), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "JR_PUSH_VIA": "export"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jenkins_registry.cli.push", "--image", "route-big:1",
         "--registry", fresh_registry.host], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not list(export_dir.glob("*/image.tar")):
        time.sleep(0.005)
    assert proc.poll() is None, "the push ended before its export was seen"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert b"interrupted" in err
    assert list(export_dir.iterdir()) == []
    assert fresh_registry.tags("route-big") == []
    assert docker_client.api.inspect_image("route-big:1")["RepoTags"] == ["route-big:1"]  # untagged
    assert_absent(SECRET, out, err)
    assert_absent_in_tree(SECRET, [tmp_path])
    docker_client.images.remove("route-big:1")


# -- the decisions on their own ---------------------------------------------------------------------


@pytest.mark.parametrize(("docker_host", "expected"), [
    ("unix:///var/run/docker.sock", None),
    ("tcp://127.0.0.1:2375", None),
    ("tcp://localhost:2376", None),
    ("tcp://10.211.55.6:2375", "on another machine"),
    ("ssh://ci@build-host", "reached over ssh"),
])
def test_only_a_local_engine_is_exported_from(docker_host: str, expected: str | None,
                                              tmp_path: Path) -> None:
    reason = push_route.engine_only_reason(docker_host, "10.211.55.6:8082", tmp_path)
    assert reason is None if expected is None else expected in (reason or "")


def test_a_client_certificate_leaves_the_push_to_the_engine(tmp_path: Path) -> None:
    host_dir = tmp_path / "10.211.55.6:8082"
    host_dir.mkdir()
    (host_dir / "ca.crt").write_text("x")
    engine = "unix:///var/run/docker.sock"
    assert push_route.engine_only_reason(engine, "10.211.55.6:8082", tmp_path) is None
    (host_dir / "client.cert").write_text("x")
    (host_dir / "client.key").write_text("x")
    reason = push_route.engine_only_reason(engine, "10.211.55.6:8082", tmp_path)
    assert reason is not None and "client certificate" in reason


class _InfoOnly:
    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info

    def info(self) -> dict[str, Any]:
        return self._info


def test_registry_rules_follow_the_engine_configuration(tmp_path: Path) -> None:
    info = {"RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"],
                               "IndexConfigs": {"nexus.example:8082": {"Secure": False},
                                                "harbor.example": {"Secure": True}}}}
    (tmp_path / "harbor.example").mkdir()
    (tmp_path / "harbor.example" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nA\n")
    engine = DockerEngine(_InfoOnly(info))
    rules = export_push.registry_rules(engine, "nexus.example:8082", tmp_path)
    assert rules == export_push.RegistryRules(insecure=True, ca_data=None)
    rules = export_push.registry_rules(engine, "harbor.example", tmp_path)
    assert not rules.insecure and rules.ca_data is not None and "BEGIN CERTIFICATE" in rules.ca_data
    assert export_push.registry_rules(engine, "127.0.0.1:5000", tmp_path).insecure


def test_containerd_image_store_is_recognised() -> None:
    classic = {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]]}
    containerd = {"Driver": "overlayfs",
                  "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}
    assert not uses_containerd_store(classic)
    assert uses_containerd_store(containerd)
    assert not uses_containerd_store({})


class _ContainerdEngine:
    """Docker 29 with the containerd image store cannot run here (Debian ships 20.10): a stand-in
    that answers what jr-push asks and records the calls."""

    IMAGE_ID = "sha256:" + "a" * 64

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.names: dict[str, str] = {"app:1": self.IMAGE_ID}
        image = type("Image", (), {"id": self.IMAGE_ID,
                                   "attrs": {"Size": 10, "RootFS": {"Layers": ["sha256:" + "b" * 64]}}})
        self.images = type("Images", (), {"get": lambda _self, name: self._record("get", image)})()
        self.api = self

    def _record(self, call: str, result: Any = None) -> Any:
        self.calls.append(call)
        return result

    def inspect_image(self, name: str) -> dict[str, Any]:
        import docker

        if name == self.IMAGE_ID:
            return {"Id": name, "RepoTags": [n for n, i in self.names.items() if i == name]}
        if name not in self.names:
            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return {"Id": self.names[name]}

    def tag(self, image: str, repository: str, tag: str, **kwargs: Any) -> bool:
        self.names[f"{repository}:{tag}"] = image
        return bool(self._record("tag", True))

    def remove_image(self, name: str, **kwargs: Any) -> list[dict[str, str]]:
        assert kwargs.get("noprune") is True
        del self.names[name]
        return list(self._record("untag", [{"Untagged": name}]))

    def login(self, **kwargs: Any) -> dict[str, str]:
        return dict(self._record("login", {"Status": "Login Succeeded"}))

    def info(self) -> dict[str, Any]:
        return dict(self._record("info", {"DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
                                          "RegistryConfig": {}}))

    def push(self, repository: str, tag: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(f"push {tag}")
        yield {"aux": {"Tag": tag, "Digest": "sha256:" + "c" * 64, "Size": 500}}

    def get_image(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        raise AssertionError("a containerd-store engine must not be exported from")


def _options(route: push_route.Route) -> push_route.LocalPushOptions:
    return push_route.LocalPushOptions(route=route, engine_address="unix:///run/docker.sock")


def test_a_containerd_store_engine_pushes_itself() -> None:
    from jenkins_registry.progress import NullProgress
    from jenkins_registry.push_target import plan_push
    from jenkins_registry.secret_types import Secret, UsernamePassword

    engine = _ContainerdEngine()
    plan = plan_push("app:1", registry="10.211.55.6:8082", repository=None, tags=["1", "latest"])
    creds = UsernamePassword(username="ci-bot", password=Secret(SECRET), source="test")
    result = push_route.push_local_image(DockerEngine(engine), plan, creds, NullProgress(),
                                         _options("auto"))
    assert result.method == "engine" and result.digest == "sha256:" + "c" * 64
    assert engine.calls[:4] == ["get", "tag", "tag", "login"] and "info" in engine.calls
    assert {"push 1", "push latest"} <= set(engine.calls)
    assert engine.calls[-2:] == ["untag", "untag"] and engine.names == {"app:1": engine.IMAGE_ID}
    with pytest.raises(JrError) as caught:
        push_route.push_local_image(DockerEngine(_ContainerdEngine()), plan, creds, NullProgress(),
                                    _options("export"))
    assert "containerd" in caught.value.message and caught.value.exit_code == ExitCode.USAGE
    assert_absent(SECRET, str(caught.value), caught.value.message, repr(caught.value))


def test_a_containerd_store_engine_pushes_itself_to_a_loopback_registry(
    fresh_registry: services.Registry,
) -> None:
    """For 127.0.0.0/8 `info` is first skipped (always insecure); it is asked once the registry
    does not hold the image already."""
    from jenkins_registry.progress import NullProgress
    from jenkins_registry.push_target import plan_push
    from jenkins_registry.secret_types import Secret, UsernamePassword

    engine = _ContainerdEngine()
    plan = plan_push("app:1", registry=fresh_registry.host, repository=None, tags=["1"])
    creds = UsernamePassword(username=services.REGISTRY_USER, password=Secret(SECRET), source="test")
    result = push_route.push_local_image(DockerEngine(engine), plan, creds, NullProgress(),
                                         _options("auto"))
    assert result.method == "engine" and "info" in engine.calls and "push 1" in engine.calls


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[services.Registry, str]]:
    cert_path, key_path = services.self_signed_certificate(tmp_path_factory.mktemp("route-tls"),
                                                           "route-registry")
    # auth "none" leaves the `http:` section last, so the tls block lands inside it
    tls = f"  tls:\n    certificate: {cert_path}\n    key: {key_path}\n"
    with services.registry(auth="none", extra_config=tls) as reg:
        yield reg, cert_path.read_text()


def test_daemon_rule_verifies_https_with_the_certs_d_ca(tls_registry: tuple[services.Registry, str]) -> None:
    """A registry the engine treats as secure: verified HTTPS only, trusting the certs.d CA."""
    reg, ca_pem = tls_registry
    with HttpTransport(ca_data=ca_pem) as transport:
        client = RegistryClient(reg.host, transport=transport,
                                policy=SchemePolicy.from_engine(reg.host, insecure=False))
        client.ping()
        assert client.base_url == f"https://{reg.host}"
    with HttpTransport() as transport:
        client = RegistryClient(reg.host, transport=transport,
                                policy=SchemePolicy.from_engine(reg.host, insecure=False))
        with pytest.raises(JrError):
            client.ping()
    with HttpTransport() as transport:  # insecure per the engine: unverified HTTPS is accepted
        client = RegistryClient(reg.host, transport=transport,
                                policy=SchemePolicy.from_engine(reg.host, insecure=True))
        client.ping()
        assert client.base_url == f"https://{reg.host}"


def test_daemon_rule_never_uses_plain_http_for_a_secure_registry(
    fresh_registry: services.Registry,
) -> None:
    """Loopback is not special under this rule: only the engine's configuration decides."""
    with HttpTransport() as transport:
        client = RegistryClient(fresh_registry.host,
                                policy=SchemePolicy.from_engine(fresh_registry.host, insecure=False),
                                transport=transport)
        with pytest.raises(JrError) as caught:
            client.ping()
        assert "HTTP response to HTTPS client" in caught.value.message
        insecure = RegistryClient(fresh_registry.host,
                                  policy=SchemePolicy.from_engine(fresh_registry.host, insecure=True),
                                  transport=transport)
        insecure.ping()
        assert insecure.base_url == f"http://{fresh_registry.host}"


def test_route_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = jr_push(["--image", "app", "--registry", "127.0.0.1:5000"],
                   {"JR_PUSH_VIA": "fastest", "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert code == ExitCode.USAGE
    assert "JR_PUSH_VIA" in capsys.readouterr().err
    code = jr_push(["--from-archive", str(tmp_path / "x.tar"), "--registry", "127.0.0.1:5000",
                    "--via", "engine"], {})
    assert code == ExitCode.USAGE
    assert "--via applies to --image" in capsys.readouterr().err


def test_the_cli_offers_exactly_the_library_routes() -> None:
    from jenkins_registry.cli import push as push_cli

    assert push_cli.ROUTES == push_route.ROUTES


# -- choose_route on its own: every rule of docs/push.md, in its order --------------------------------

IMAGE_ID, EARLIER_ID = "sha256:" + "1" * 64, "sha256:" + "2" * 64
TARGET = PushTarget(registry="10.211.55.6:8082", repository="team/app", tags=("7",))
SECURE = export_push.RegistryRules(insecure=False, ca_data=None, containerd_store=False)


def _tagged(tag: str, config_digest: str) -> TaggedImage:
    manifest = Manifest(b"{}", "application/vnd.docker.distribution.manifest.v2+json", "sha256:" + "f" * 64)
    return TaggedImage(tag, manifest, config_digest, ())


def _facts(route: push_route.Route = "auto", **known: Any) -> push_route.RouteFacts:
    """Facts up to the first that *known* leaves out, each with the answer that lets the
    decision go on (nothing found), like the gathering produces them in order."""
    answers: dict[str, Any] = {"engine_only": None, "rules": SECURE, "unreachable": None,
                               "current": (), "engine_knows": None, "update": None,
                               "engine_holds_update": False, "room_problem": None}
    facts: dict[str, Any] = {}
    for name, answer in answers.items():
        if name in known:
            facts[name] = known.pop(name)
        elif known:
            facts[name] = answer
    return push_route.RouteFacts(route=route, target=TARGET, image_id=IMAGE_ID, **facts)


UNREACHABLE = UnreachableError("Cannot reach the registry 10.211.55.6:8082 (connection refused).")
HOLDING = _tagged("latest", IMAGE_ID)
EARLIER = _tagged("latest", EARLIER_ID)
CONTAINERD = "it keeps images in containerd's store and pushes their stored compressed layers"


@pytest.mark.parametrize(("facts", "expected"), [
    # --via engine: no fact is needed
    (_facts("engine"), push_route.EnginePushes(None)),
    # 1. only the engine can
    (_facts(), push_route.Fact.ENGINE_ONLY),
    (_facts(engine_only="the Docker engine at ssh://ci@b is reached over ssh"),
     push_route.EnginePushes("the Docker engine at ssh://ci@b is reached over ssh")),
    (_facts(engine_only=None), push_route.Fact.RULES),
    (_facts(rules=dataclasses.replace(SECURE, containerd_store=True)), push_route.EnginePushes(CONTAINERD)),
    (_facts(rules=SECURE), push_route.Fact.REGISTRY),
    (_facts(unreachable=UNREACHABLE), push_route.EnginePushes(
        "10.211.55.6:8082 does not answer from here as the engine reaches it "
        "(Cannot reach the registry 10.211.55.6:8082 (connection refused).)")),
    # 2. unchanged: a wanted tag or latest holds the image (also when the engine was not asked yet)
    (_facts(unreachable=None), push_route.Fact.CURRENT),
    (_facts(current=(EARLIER, HOLDING)), push_route.Unchanged(HOLDING)),
    (_facts(rules=dataclasses.replace(SECURE, containerd_store=None), current=(HOLDING,)),
     push_route.Unchanged(HOLDING)),
    # ... the engine's store, not asked for a loopback registry until here
    (_facts(rules=dataclasses.replace(SECURE, containerd_store=None), current=(EARLIER,)),
     push_route.Fact.ENGINE_STORE),
    # 3. the engine knows the layers
    (_facts(current=(EARLIER,)), push_route.Fact.ENGINE_LAYERS),
    (_facts(engine_knows="10.211.55.6:8082/base@sha256:" + "e" * 64),
     push_route.EnginePushes("it already knows layers of this image at 10.211.55.6:8082/base@sha256:"
                             + "e" * 64)),
    # 4. an update of an image this engine holds
    (_facts(engine_knows=None), push_route.Fact.UPDATE),
    (_facts(update=EARLIER), push_route.Fact.ENGINE_HOLDS_UPDATE),
    (_facts(update=EARLIER, engine_holds_update=True),
     push_route.EnginePushes("an update of 10.211.55.6:8082/team/app:latest, whose image this engine holds")),
    (_facts(update=EARLIER, engine_holds_update=False), push_route.Fact.ROOM),
    # 5. no room
    (_facts(room_problem="the temporary directory /tmp has 1 MiB free, the export needs about 300 MiB"),
     push_route.EnginePushes("the temporary directory /tmp has 1 MiB free, the export needs about 300 MiB")),
    # 6. otherwise: export
    (_facts(room_problem=None), push_route.Export()),
])
def test_choose_route(facts: push_route.RouteFacts, expected: object) -> None:
    assert push_route.choose_route(facts) == expected


@pytest.mark.parametrize(("facts", "expected"), [
    (_facts("export", engine_only="the Docker engine at tcp://10.0.0.2:2375 is on another machine"),
     (UsageError,
      "Cannot export and upload: the Docker engine at tcp://10.0.0.2:2375 is on another machine.")),
    (_facts("export", rules=dataclasses.replace(SECURE, containerd_store=True)),
     (UsageError, "Cannot export and upload: the Docker engine keeps images in containerd's store.")),
    (_facts("export", unreachable=UNREACHABLE), (UnreachableError, UNREACHABLE.message)),
    (_facts("export", room_problem="the temporary directory /tmp is not usable (No such file)"),
     (InputFileError, "Cannot export the image: the temporary directory /tmp is not usable (No such file).")),
])
def test_a_forced_export_fails_where_auto_leaves_the_push_to_the_engine(
        facts: push_route.RouteFacts, expected: tuple[type[JrError], str]) -> None:
    choice = push_route.choose_route(facts)
    assert isinstance(choice, push_route.Refused)
    assert (type(choice.error), choice.error.message) == expected


def test_a_forced_export_neither_asks_the_engine_about_layers_nor_updates() -> None:
    assert push_route.choose_route(_facts("export", current=(EARLIER,))) is push_route.Fact.ROOM
    assert push_route.choose_route(_facts("export", current=(HOLDING,))) == push_route.Unchanged(HOLDING)
    assert push_route.choose_route(_facts("export", room_problem=None)) == push_route.Export()


def test_an_export_fetches_each_tag_and_config_once(
    docker_env: str, docker_client: Any, fresh_registry: services.Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The route decision and the upload share what the wanted tags and `latest` hold: an update
    exported from a fresh engine asks for each manifest and the earlier build's config once."""
    shared = {"shared.bin": os.urandom(50_000)}
    services.build_image(docker_client, "once-build:1", shared)
    with fault_proxy(fresh_registry.host) as proxy:
        code, first, err = push(proxy.host, docker_env, capsys, "--image", "once-build:1",
                                "--name", "once/app", "--tag", "1", "--tag", "latest")
        assert code == 0 and first["method"] == "export", err
        docker_client.images.remove("once-build:1")
        services.build_image(docker_client, "once-build:2", {**shared, "new.bin": os.urandom(50_000)})
        proxy.clear()
        code, second, err = push(proxy.host, docker_env, capsys, "--image", "once-build:2",
                                 "--name", "once/app", "--tag", "2", "--tag", "latest")
        assert code == 0 and second["method"] == "export", err
        assert proxy.count("GET", r"/manifests/2$") == 1
        assert proxy.count("GET", r"/manifests/latest$") == 1
        assert proxy.count("GET", "/blobs/" + first["image_id"]) == 1
    docker_client.images.remove("once-build:2")
