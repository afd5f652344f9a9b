"""jr-push --image with the real Docker engine against the real distribution registry.

Every test runs twice: `--via engine` (the engine pushes) and `--via export` (exported from the
engine, uploaded by jr-push); the choice between them (`auto`) is tested in test_push_routes.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.errors import ExitCode
from tests.support import services
from tests.support.secret_checks import assert_absent, assert_absent_in_tree, process_cmdlines

SECRET = services.REGISTRY_PASSWORD
_ROUTE = ["engine"]  # the current test's route, read by run_push and creds_env


@pytest.fixture(autouse=True, params=["engine", "export"])
def push_route(request: pytest.FixtureRequest) -> str:
    _ROUTE[0] = request.param
    return str(request.param)


@pytest.fixture(scope="module")
def jenkins_test_image(docker_client: Any) -> str:
    """The seed's image: `jenkins-test:latest`, two small layers, FROM scratch."""
    return services.build_image(docker_client, "jenkins-test:latest",
                                {"index.html": b"<h1>hello</h1>\n", "app.txt": b"v1\n"})


def run_push(argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str],
             caplog: pytest.LogCaptureFixture | None = None) -> tuple[int, str, str]:
    code = jr_push(argv, {"JR_PUSH_VIA": _ROUTE[0], **environ})
    out, err = capsys.readouterr()
    logs = caplog.text if caplog is not None else ""
    assert_absent(SECRET, out, err, logs)
    assert "Traceback" not in err
    return code, out, err


def creds_env(docker_env: str, registry: services.Registry, **extra: str) -> dict[str, str]:
    return {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": registry.username or "",
            "DOCKER_LOGIN_PASSWORD": registry.password or "", "JR_PUSH_VIA": _ROUTE[0], **extra}


def test_push_by_name_with_environment_credentials(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    code, out, err = run_push(["--image", "jenkins-test", "--registry", registry.host],
                              creds_env(docker_env, registry), capsys, caplog)
    assert code == 0, err
    (line,) = out.splitlines()
    name, digest = line.split("@")
    assert name == f"{registry.host}/jenkins-test:latest"
    assert registry.manifest_digest("jenkins-test", "latest") == digest
    assert "Pushed" in err or "Layer already exists" in err  # plain progress lines on stderr


def test_push_image_id_under_new_name(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    short_id = jenkins_test_image.removeprefix("sha256:")[:12]
    argv = ["--image", short_id, "--name", "local/jenkins", "--registry", registry.host]
    code, out, err = run_push(argv, creds_env(docker_env, registry), capsys)
    assert code == 0, err
    assert out.startswith(f"{registry.host}/local/jenkins:latest@sha256:")
    assert registry.tags("local/jenkins") == ["latest"]


def test_image_id_without_name_is_a_usage_error_before_any_network(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_push(["--image", "46d1a3ebf53b", "--registry", "10.211.55.6:8082"],
                            {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, capsys)
    assert code == ExitCode.USAGE
    assert "--name" in err


def test_several_tags_in_one_run_share_one_digest(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    digest_file = tmp_path / "out" / "image.digest"
    code, out, err = run_push(
        ["--image", "jenkins-test:latest", "--registry", registry.host, "--name", "multi/app",
         "--tag", "1.0.0", "--tag", "1.0", "--tag", "latest", "--digest-file", str(digest_file)],
        creds_env(docker_env, registry), capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split("@")[0] for line in lines] == [
        f"{registry.host}/multi/app:{tag}" for tag in ("1.0.0", "1.0", "latest")]
    digests = {line.split("@")[1] for line in lines}
    assert len(digests) == 1
    (digest,) = digests
    assert registry.tags("multi/app") == ["1.0", "1.0.0", "latest"]
    assert {registry.manifest_digest("multi/app", t) for t in ("1.0", "1.0.0", "latest")} == {digest}
    assert digest_file.read_text() == digest + "\n"


def test_json_output(docker_env: str, registry: services.Registry, jenkins_test_image: str,
                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_push(["--image", "jenkins-test", "--registry", registry.host, "--json",
                               "--tag", "json"], creds_env(docker_env, registry), capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["references"] == [f"{registry.host}/jenkins-test:json@{result['digest']}"]
    assert result["digest_reference"] == f"{registry.host}/jenkins-test@{result['digest']}"
    assert result["image_id"] == jenkins_test_image
    assert result["manifest_size"] > 0 and result["image_size"] >= 0
    assert registry.manifest_digest("jenkins-test", "json") == result["digest"]
    assert "Pushed" not in err and "Preparing" not in err  # no progress lines with --json


def test_username_and_password_env_options_pick_other_variables(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"DOCKER_HOST": docker_env, "REG_USER": registry.username or "", "REG_PASS": SECRET,
           "DOCKER_LOGIN_USERNAME": "someone-else", "DOCKER_LOGIN_PASSWORD": "wrong-password"}
    code, _, err = run_push(["--image", "jenkins-test", "--registry", registry.host, "--tag", "envopt",
                             "--username-env", "REG_USER", "--password-env", "REG_PASS"], env, capsys)
    assert code == 0, err


# --- failures: each one a clear message, a documented exit code, no secret ------------------


def test_wrong_password_names_registry_and_user(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = SECRET + "-wrong"
    env = {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": "ci-bot", "DOCKER_LOGIN_PASSWORD": wrong}
    code, out, err = run_push(["--image", "jenkins-test", "--registry", registry.host, "--tag", "nope"],
                              env, capsys, caplog)
    assert code == ExitCode.AUTH
    assert registry.host in err and "'ci-bot'" in err and "rejected" in err
    assert_absent(wrong, out, err, caplog.text)
    assert registry.tags("jenkins-test").count("nope") == 0


def test_no_credentials_says_how_to_provide_them(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_push(["--image", "jenkins-test", "--registry", registry.host, "--tag", "anon"],
                            {"DOCKER_HOST": docker_env}, capsys)
    assert code == ExitCode.CREDENTIALS
    assert "no credentials" in err.lower() or "no basic auth credentials" in err
    assert "DOCKER_LOGIN_USERNAME" in err


def test_half_a_credential_pair_is_refused(docker_env: str, registry: services.Registry,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_push(["--image", "jenkins-test", "--registry", registry.host],
                            {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_PASSWORD": SECRET}, capsys)
    assert code == ExitCode.CREDENTIALS
    assert "DOCKER_LOGIN_USERNAME" in err


def test_unreachable_registry(docker_env: str, jenkins_test_image: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    closed = f"127.0.0.1:{services.free_port()}"
    env = {"DOCKER_HOST": docker_env, "DOCKER_LOGIN_USERNAME": "ci-bot", "DOCKER_LOGIN_PASSWORD": SECRET}
    code, _, err = run_push(["--image", "jenkins-test", "--registry", closed], env, capsys)
    assert code == ExitCode.UNREACHABLE
    assert f"Cannot reach the registry {closed}" in err
    assert f"Nothing listens on {closed}" in err and "firewall-cmd" not in err


def test_unreachable_engine_names_docker_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = f"unix://{tmp_path}/missing.sock"
    code, _, err = run_push(["--image", "jenkins-test", "--registry", "127.0.0.1:5000"],
                            {"DOCKER_HOST": host, "DOCKER_LOGIN_USERNAME": "u",
                             "DOCKER_LOGIN_PASSWORD": SECRET}, capsys)
    assert code == ExitCode.ENGINE
    assert host in err and "DOCKER_HOST" in err


def test_missing_image(docker_env: str, registry: services.Registry,
                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_push(["--image", "no-such-image:v9", "--registry", registry.host],
                            creds_env(docker_env, registry), capsys)
    assert code == ExitCode.NOT_FOUND
    assert "'no-such-image:v9' does not exist" in err and "docker build" in err


@pytest.mark.parametrize("argv, fragment", [
    (["--image", "Jenkins-Test"], "lowercase"),
    (["--image", "jenkins-test", "--tag=-bad"], "tag"),
    (["--image", "jenkins-test", "--name", "10.0.0.1:5000/x"], "--registry"),
    (["--image", "jenkins-test", "--registry", "http://10.211.55.6:8082"], "scheme"),
    (["--image", "jenkins-test", "--registry", "10.211.55.6:8082/repository/docker"], "path"),
    (["--image", "jenkins-test", "--registry", "10.211.55.6:99999"], "range"),
    (["--image", "jenkins-test", "--tag", "a" * 129], "tag"),
])
def test_invalid_input_fails_before_network(argv: list[str], fragment: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    if "--registry" not in argv:
        argv = [*argv, "--registry", "10.211.55.6:8082"]
    # DOCKER_HOST points nowhere: reaching the engine would give exit 8, not 2.
    code, _, err = run_push(argv, {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, capsys)
    assert code == ExitCode.USAGE, err
    assert fragment in err
    assert "what to do" in err


def test_no_registry_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_push(["--image", "jenkins-test"], {}, capsys)
    assert code == ExitCode.USAGE and "JR_REGISTRY" in err


def test_registry_from_jr_registry(docker_env: str, registry: services.Registry, jenkins_test_image: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_push(["--image", "jenkins-test", "--tag", "fromenv"],
                              creds_env(docker_env, registry, JR_REGISTRY=registry.host), capsys)
    assert code == 0, err
    assert out.startswith(f"{registry.host}/jenkins-test:fromenv@")


# --- nothing is left behind ---------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_config_files_untouched_and_stale_entries_ignored(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str], isolated_home: Path, tmp_path: Path,
) -> None:
    import base64

    stale = {"auths": {registry.host: {"auth": base64.b64encode(b"ci-bot:stale-password").decode()}}}
    home_docker = isolated_home / ".docker"
    home_docker.mkdir(exist_ok=True)
    (home_docker / "config.json").write_text(json.dumps(stale))
    empty_config_dir = tmp_path / "build-docker-config"  # DOCKER_CONFIG without a config.json:
    empty_config_dir.mkdir()  # the SDK falls back to ~/.docker/config.json
    before_home, before_cfg = _snapshot(isolated_home), _snapshot(empty_config_dir)
    env = creds_env(docker_env, registry, HOME=str(isolated_home), DOCKER_CONFIG=str(empty_config_dir))
    code, _, err = run_push(["--image", "jenkins-test", "--registry", registry.host, "--tag", "stale"],
                            env, capsys)
    assert code == 0, err
    assert _snapshot(isolated_home) == before_home
    assert _snapshot(empty_config_dir) == before_cfg
    assert_absent_in_tree(SECRET, [isolated_home, empty_config_dir])


def test_password_never_in_any_process_argv(
    docker_env: str, registry: services.Registry, jenkins_test_image: str, tmp_path: Path,
) -> None:
    env = {**creds_env(docker_env, registry), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jenkins_registry.cli.push", "--image", "jenkins-test",
         "--registry", registry.host, "--tag", "argv"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    seen = 0
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        for cmdline in process_cmdlines():
            assert SECRET.encode() not in cmdline
        seen += 1
        time.sleep(0.02)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert seen > 0
    assert_absent(SECRET, out, err)


def test_keyring_credentials_used_when_environment_has_none(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str], isolated_home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jenkins_registry.keyring_store import KeyringStore
    from jenkins_registry.secret_types import Secret

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    import keyring.core

    keyring.core._keyring_backend = None  # re-read PYTHON_KEYRING_BACKEND
    try:
        KeyringStore().set(registry.host, registry.username or "", Secret(SECRET))
        code, out, err = run_push(["--image", "jenkins-test", "--registry", registry.host, "--tag", "kr"],
                                  {"DOCKER_HOST": docker_env}, capsys)
        assert code == 0, err
        assert "OS keyring" in err
        assert out.startswith(f"{registry.host}/jenkins-test:kr@")
    finally:
        keyring.core._keyring_backend = None


# --- HTTP registry reached by an engine that expects HTTPS -----------------------------------


@pytest.fixture(scope="module")
def engine_with_v6_name() -> Iterator[services.DockerEngine]:
    with services.docker_engine(private_hosts=True) as engine:
        yield engine


def test_http_registry_not_in_insecure_registries(
    engine_with_v6_name: services.DockerEngine, capsys: pytest.CaptureFixture[str], push_route: str,
) -> None:
    """The name resolves only inside the engine's mount namespace: `auto` cannot reach the registry
    from here, so it lets the engine push, and the engine's own error is explained."""
    import docker

    with services.registry(listen="::1") as reg:
        port = reg.host.rsplit(":", 1)[1]
        name = f"{services.IPV6_REGISTRY_NAME}:{port}"
        client = docker.DockerClient(base_url=engine_with_v6_name.host)
        services.build_image(client, "jenkins-test:latest", {"a.txt": b"a"})
        client.close()
        env = {"DOCKER_HOST": engine_with_v6_name.host, "DOCKER_LOGIN_USERNAME": "ci-bot",
               "DOCKER_LOGIN_PASSWORD": SECRET,
               "JR_PUSH_VIA": "auto" if push_route == "export" else "engine"}
        code, _, err = run_push(["--image", "jenkins-test", "--registry", name], env, capsys)
        assert code == ExitCode.INSECURE, err
        assert "server gave HTTP response to HTTPS client" in err
        assert f'"insecure-registries": ["{name}"]' in err
        assert "/etc/docker/daemon.json" in err


def test_live_display_on_a_terminal(
    docker_env: str, registry: services.Registry, jenkins_test_image: str, tmp_path: Path,
    push_route: str,
) -> None:
    """On a terminal the layer lines are redrawn in place; the result line still ends the output."""
    import os
    import pty

    controller, terminal = pty.openpty()
    env = {**creds_env(docker_env, registry), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jenkins_registry.cli.push", "--image", "jenkins-test",
         "--registry", registry.host, "--name", f"live/{push_route}"],
        env=env, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(controller)
    screen = b"".join(chunks).decode()
    assert proc.returncode == 0, screen
    assert "\x1b[" in screen and "\x1b[2K" in screen  # cursor movement: a live display
    assert f"{registry.host}/live/{push_route}:latest@sha256:" in screen
    assert_absent(SECRET, screen)


def test_unwritable_digest_file_fails_clearly_after_the_push(
    docker_env: str, registry: services.Registry, jenkins_test_image: str,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    code, out, err = run_push(["--image", "jenkins-test", "--registry", registry.host, "--tag", "df",
                               "--digest-file", str(blocker / "image.digest")],
                              creds_env(docker_env, registry), capsys)
    assert code == ExitCode.INVALID_INPUT_FILE
    assert "push succeeded" in err and "--digest-file" in err
    assert out.startswith(f"{registry.host}/jenkins-test:df@sha256:")  # the result is still printed
