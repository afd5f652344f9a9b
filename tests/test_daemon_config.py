"""`jr docker insecure-registry`: daemon.json edits on real files, and --reload on a real dockerd."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jenkins_registry import daemon_config
from jenkins_registry.cli.main import main as jr
from jenkins_registry.errors import ExitCode, InputFileError
from tests.support import services

REGISTRY = "10.211.55.6:8082"


def run(argv: list[str], capsys: pytest.CaptureFixture[str],
        environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    code = jr(argv, environ if environ is not None else dict(os.environ))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def backups(directory: Path) -> list[Path]:
    return sorted(directory.glob("daemon.json.*.bak"))


def leftovers(directory: Path) -> list[Path]:
    return sorted(directory.glob(".daemon.json.*"))


def test_add_creates_the_file_and_its_directory(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "etc" / "docker" / "daemon.json"
    code, out, _ = run(["docker", "insecure-registry", "add", REGISTRY, "--daemon-json", str(path)],
                       capsys)
    assert code == 0
    assert path.read_text() == '{\n  "insecure-registries": [\n    "10.211.55.6:8082"\n  ]\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert "created the file" in out
    # Without --reload the exact commands to apply it are printed.
    assert "sudo systemctl reload docker" in out
    assert "sudo kill -HUP $(pidof dockerd)" in out
    assert backups(path.parent) == [] and leftovers(path.parent) == []


def test_add_keeps_other_keys_order_style_mode_and_owner(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    original = (
        '{\n    "registry-mirrors": ["https://8qw0m0z3.mirror.aliyuncs.com"],\n'
        '    "log-opts": {"max-size": "10m", "max-file": "3"},\n'
        '    "insecure-registries": ["192.168.1.10:5000"],\n    "debug": false\n}\n'
    )
    path.write_text(original)
    os.chmod(path, 0o600)
    os.chown(path, 1234, 2345)  # the tests run as root: the owner must survive the rename
    code, out, _ = run(["docker", "insecure-registry", "add", REGISTRY, "--daemon-json", str(path)],
                       capsys)
    assert code == 0
    data = json.loads(path.read_text())
    assert list(data) == ["registry-mirrors", "log-opts", "insecure-registries", "debug"]
    assert data["registry-mirrors"] == ["https://8qw0m0z3.mirror.aliyuncs.com"]
    assert data["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert data["insecure-registries"] == ["192.168.1.10:5000", REGISTRY]
    assert data["debug"] is False
    assert '\n    "registry-mirrors"' in path.read_text()  # the file's own 4-space indent
    st_ = path.stat()
    assert (stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid) == (0o600, 1234, 2345)
    (backup,) = backups(tmp_path)
    assert backup.read_text() == original
    assert str(backup) in out
    assert leftovers(tmp_path) == []


def test_tab_indented_file_stays_tab_indented(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{\n\t"debug": true\n}\n')
    daemon_config.add_insecure_registry(path, REGISTRY)
    assert path.read_text() == (
        '{\n\t"debug": true,\n\t"insecure-registries": [\n\t\t"10.211.55.6:8082"\n\t]\n}\n')


def test_no_duplicate_and_no_write_when_already_listed(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"insecure-registries": ["10.211.55.6:8082", "10.0.0.0/8"]}')
    before = path.stat()
    for entry in (REGISTRY, "http://10.211.55.6:8082/", "10.1.2.3/8"):
        code, out, _ = run(["docker", "insecure-registry", "add", entry, "--daemon-json", str(path)],
                           capsys)
        assert code == 0 and "already listed" in out
        assert "systemctl" not in out  # nothing changed, nothing to reload
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert backups(tmp_path) == []


def test_entry_forms_are_normalised() -> None:
    assert daemon_config.normalize_entry("http://10.211.55.6:8082") == "10.211.55.6:8082"
    assert daemon_config.normalize_entry("HTTPS://registry.example.test:8082/") == (
        "registry.example.test:8082")
    assert daemon_config.normalize_entry("10.211.55.6/24") == "10.211.55.0/24"
    assert daemon_config.normalize_entry("[::1]:5000") == "[::1]:5000"


@pytest.mark.parametrize("entry", ["10.211.55.6:8082/repository/docker-hosted", "host:99999",
                                   "ftp://host:1", "bad host:1", ""])
def test_invalid_entries_are_refused(entry: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    code, _, err = run(["docker", "insecure-registry", "add", entry, "--daemon-json", str(path)],
                       capsys)
    assert code == ExitCode.USAGE
    assert "what to do:" in err
    assert not path.exists()


@pytest.mark.parametrize("content, words", [
    ('{"insecure-registries": ["a:1"],}', "not valid JSON (line 1"),
    ('{"registry-mirrors": ["https://m"]', "not valid JSON"),
    ('["10.211.55.6:8082"]', "must hold a JSON object"),
    ('{"insecure-registries": "10.211.55.6:8082"}', "must be a list of strings"),
    ('{"insecure-registries": [8082]}', "must be a list of strings"),
])
def test_invalid_file_is_refused_and_left_untouched(
    content: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(content)
    before = path.stat()
    for action in ("add", "remove"):
        code, out, err = run(["docker", "insecure-registry", action, REGISTRY, "--daemon-json",
                              str(path)], capsys)
        assert code == ExitCode.INVALID_INPUT_FILE
        assert words in err and str(path) in err
        assert "nothing was changed" in err
        assert out == ""
    assert path.read_text() == content
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert backups(tmp_path) == [] and leftovers(tmp_path) == []
    code, _, err = run(["docker", "insecure-registry", "list", "--daemon-json", str(path)], capsys)
    assert code == ExitCode.INVALID_INPUT_FILE


def test_empty_file_and_byte_order_mark_are_read(tmp_path: Path) -> None:
    empty = tmp_path / "empty" / "daemon.json"
    empty.parent.mkdir()
    empty.write_text("  \n")
    daemon_config.add_insecure_registry(empty, REGISTRY)
    assert json.loads(empty.read_text()) == {"insecure-registries": [REGISTRY]}
    bom = tmp_path / "bom" / "daemon.json"
    bom.parent.mkdir()
    bom.write_bytes(b'\xef\xbb\xbf{"debug": true}')
    daemon_config.add_insecure_registry(bom, REGISTRY)
    assert json.loads(bom.read_text()) == {"debug": True, "insecure-registries": [REGISTRY]}


def test_remove_keeps_the_rest_and_list_prints_entries(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"registry-mirrors": ["https://m.example.test"],
                                "insecure-registries": ["a.example.test:1", REGISTRY]}, indent=2))
    code, out, _ = run(["docker", "insecure-registry", "list", "--daemon-json", str(path)], capsys)
    assert (code, out) == (0, f"a.example.test:1\n{REGISTRY}\n")
    code, out, _ = run(["docker", "insecure-registry", "remove", REGISTRY, "--daemon-json",
                        str(path)], capsys)
    assert code == 0 and f"removed {REGISTRY}" in out
    assert json.loads(path.read_text()) == {"registry-mirrors": ["https://m.example.test"],
                                            "insecure-registries": ["a.example.test:1"]}
    code, out, _ = run(["docker", "insecure-registry", "remove", REGISTRY, "--daemon-json",
                        str(path)], capsys)
    assert code == 0 and "not listed" in out
    assert len(backups(tmp_path)) == 1


def test_list_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["docker", "insecure-registry", "list", "--daemon-json",
                          str(tmp_path / "none.json")], capsys)
    assert (code, out) == (0, "")
    assert "does not exist" in err


def test_symlink_is_kept_and_its_target_edited(tmp_path: Path) -> None:
    real = tmp_path / "managed" / "daemon.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "daemon.json"
    link.symlink_to(real)
    daemon_config.add_insecure_registry(link, REGISTRY)
    assert link.is_symlink()
    assert json.loads(real.read_text()) == {"insecure-registries": [REGISTRY]}


def test_failed_rename_leaves_the_file_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}\n')

    def fail(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(daemon_config.os, "replace", fail)
    code, _, err = run(["docker", "insecure-registry", "add", REGISTRY, "--daemon-json", str(path)],
                       capsys)
    assert code == ExitCode.INVALID_INPUT_FILE
    assert "No space left on device" in err and "--daemon-json" in err
    assert "sudo" not in err  # root would not make room
    assert path.read_text() == '{"debug": true}\n'
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("step", ["replace", "lock"])
def test_permission_denied_says_how_to_run_it_under_sudo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        step: str) -> None:
    """sudo resets PATH, so `sudo jr` misses a venv's or pipx's jr: the hint names this jr."""
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}\n')

    def deny(*_: Any, **__: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    if step == "replace":
        monkeypatch.setattr(daemon_config.os, "replace", deny)
    else:
        monkeypatch.setattr(daemon_config, "edit_lock", deny)
    code, out, err = run(["docker", "insecure-registry", "add", REGISTRY, "--daemon-json", str(path)],
                         capsys)
    assert (code, out) == (ExitCode.PERMISSION, "")
    assert "Permission denied" in err
    assert 'sudo "$(command -v jr)" docker insecure-registry add|remove HOST:PORT' in err
    assert path.read_text() == '{"debug": true}\n'
    assert leftovers(tmp_path) == []


def test_the_entry_defaults_to_jr_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    argv = ["docker", "insecure-registry", "add", "--daemon-json", str(path)]
    code, out, _ = run(argv, capsys, {"JR_REGISTRY": REGISTRY})
    assert code == 0 and f"added {REGISTRY}" in out
    assert json.loads(path.read_text()) == {"insecure-registries": [REGISTRY]}
    code, out, err = run(argv, capsys, {})
    assert (code, out) == (ExitCode.USAGE, "")
    assert "No registry given" in err and 'sudo "$(command -v jr)" docker insecure-registry add' in err
    code, out, _ = run(["docker", "insecure-registry", "remove", "--daemon-json", str(path)], capsys,
                       {"JR_REGISTRY": REGISTRY})
    assert code == 0 and json.loads(path.read_text()) == {"insecure-registries": []}


def test_help_says_how_to_run_it_under_sudo(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["docker", "insecure-registry", "add", "--help"],
                 ["docker", "insecure-registry", "--help"]):
        code, out, _ = run(argv, capsys)
        assert code == 0 and 'sudo "$(command -v jr)" docker insecure-registry add' in out


def test_load_errors_are_input_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is a directory"):
        daemon_config.load(tmp_path)


_json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8)
_json_values = st.recursive(_json_scalars, lambda children: st.lists(children, max_size=3)
                            | st.dictionaries(st.text(max_size=5), children, max_size=3),
                            max_leaves=8)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(other=st.dictionaries(st.text(min_size=1, max_size=12).filter(
    lambda k: k != daemon_config.KEY), _json_values, max_size=5))
def test_add_then_remove_keeps_every_other_key(other: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "prop" / "daemon.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(other, indent=3))
    daemon_config.add_insecure_registry(path, REGISTRY)
    added = json.loads(path.read_text())
    assert list(added)[:-1] == list(other) and added[daemon_config.KEY] == [REGISTRY]
    daemon_config.remove_insecure_registry(path, REGISTRY)
    removed = json.loads(path.read_text())
    assert {k: v for k, v in removed.items() if k != daemon_config.KEY} == other
    for stale in path.parent.iterdir():
        stale.unlink()


# The engine's view ----------------------------------------------------------------------------
def test_loopback_counts_as_insecure_in_the_real_engine(docker_client: Any) -> None:
    info = docker_client.info()
    assert daemon_config.insecure_reason(info, "127.0.0.1:5000") is not None
    assert "loopback" in (daemon_config.insecure_reason(info, "127.0.0.1:5000") or "")
    assert daemon_config.insecure_reason(info, "10.211.55.6:8082") is None


def test_insecure_reason_names_and_cidrs() -> None:
    info = {"RegistryConfig": {
        "IndexConfigs": {"docker.io": {"Secure": True}, REGISTRY: {"Secure": False}},
        "InsecureRegistryCIDRs": ["127.0.0.0/8", "192.168.0.0/16"]}}
    assert "listed in insecure-registries" in (daemon_config.insecure_reason(info, REGISTRY) or "")
    assert "192.168.0.0/16" in (daemon_config.insecure_reason(info, "192.168.3.4:5000") or "")
    assert daemon_config.insecure_reason(info, "docker.io") is None
    resolved = daemon_config.insecure_reason(info, "nexus.lan:8082", resolve=lambda _: ["192.168.9.9"])
    assert resolved is not None and "192.168.9.9" in resolved


# --reload against a real, dedicated dockerd ------------------------------------------------------
@pytest.fixture
def reloadable_engine(tmp_path: Path) -> Iterator[tuple[services.DockerEngine, Path, Path]]:
    """A private dockerd reading tmp daemon.json (--config-file); yields it, the file, a pidfile."""
    config = tmp_path / "engine" / "daemon.json"
    config.parent.mkdir()
    config.write_text('{\n  "registry-mirrors": ["https://mirror.example.test"]\n}\n')
    with services.docker_engine(config_file=config) as engine:
        assert engine.pid is not None
        pidfile = tmp_path / "engine" / "dockerd.pid"
        pidfile.write_text(f"{engine.pid}\n")
        yield engine, config, pidfile


def test_reload_applies_the_change_to_the_real_engine(
    reloadable_engine: tuple[services.DockerEngine, Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import docker

    engine, config, pidfile = reloadable_engine
    name = "registry.example.test:8082"  # not loopback; no traffic goes there
    environ = {**os.environ, "DOCKER_HOST": engine.host}
    client = docker.DockerClient(base_url=engine.host, timeout=60)
    try:
        assert daemon_config.insecure_reason(client.info(), name, resolve=lambda _: []) is None
        code, out, err = run(["docker", "insecure-registry", "add", name, "--daemon-json",
                              str(config), "--reload", "--pidfile", str(pidfile)], capsys, environ)
        assert code == 0, err
        assert f"reloaded dockerd (pid {engine.pid})" in out
        info = client.info()
        assert info["RegistryConfig"]["IndexConfigs"][name]["Secure"] is False
        assert info["RegistryConfig"]["Mirrors"] == ["https://mirror.example.test/"]
        assert json.loads(config.read_text())["registry-mirrors"] == ["https://mirror.example.test"]

        code, out, err = run(["docker", "insecure-registry", "remove", name, "--daemon-json",
                              str(config), "--reload", "--pidfile", str(pidfile)], capsys, environ)
        assert code == 0, err
        assert "no longer lists" in out
        assert name not in client.info()["RegistryConfig"]["IndexConfigs"]
    finally:
        client.close()


def test_reload_refuses_a_dockerd_that_reads_another_file(
    reloadable_engine: tuple[services.DockerEngine, Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, config, pidfile = reloadable_engine
    other = tmp_path / "other.json"
    environ = {**os.environ, "DOCKER_HOST": engine.host}
    code, _, err = run(["docker", "insecure-registry", "add", REGISTRY, "--daemon-json", str(other),
                        "--reload", "--pidfile", str(pidfile)], capsys, environ)
    assert code == ExitCode.USAGE
    assert f"reads {config}" in err


def test_reload_refuses_a_pidfile_that_is_not_dockerd(tmp_path: Path, docker_env: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pidfile = tmp_path / "not-dockerd.pid"
    pidfile.write_text(str(os.getpid()))
    path = tmp_path / "daemon.json"
    code, _, err = run(["docker", "insecure-registry", "add", REGISTRY, "--daemon-json", str(path),
                        "--reload", "--pidfile", str(pidfile)], capsys)
    assert code == ExitCode.USAGE
    assert "not a running dockerd" in err
    assert json.loads(path.read_text())  # the edit itself was made before the reload


def test_reload_without_a_reachable_engine_fails_cleanly(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    environ = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    code, _, err = run(["docker", "insecure-registry", "add", REGISTRY, "--daemon-json",
                        str(tmp_path / "daemon.json"), "--reload"], capsys, environ)
    assert code == ExitCode.ENGINE
    assert "Docker engine" in err
